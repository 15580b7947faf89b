//! `security_group`: a VPC security group and its ingress and egress rules, changed in
//! place by adding and revoking only the difference.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType,
    SecurityGroup as AwsGroup, UserIdGroupPair,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::{arn, delete_while_in_use, found, set_name_tag, tagged};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, ec2, Error};
use crate::resources::fields::{check_id_ref, has_ref, ref_key};
use crate::resources::typed::{
    attrs_of, Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct SecurityGroup;

/// A security group of a VPC: stateful firewall rules for what may reach (ingress) and
/// leave (egress) the network interfaces that use it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// What the group is for, shown in the AWS console. Up to 255 characters: letters,
    /// digits, spaces and `._-:/()#,@[]+=&;{}!$*`. AWS cannot change a description, so
    /// changing it replaces the group. Default: `<id> (managed by securecart)`.
    #[serde(default)]
    description: Option<String>,
    /// The VPC of the group: a reference like `${main_vpc}` or an existing VPC id
    /// (`vpc-…`). Changing it replaces the group.
    vpc: String,
    /// Inbound rules; anything not allowed here is dropped. Changed in place.
    #[serde(default)]
    ingress: Vec<RuleField>,
    /// Outbound rules. Leave it out for AWS's default (all traffic to 0.0.0.0/0); `[]`
    /// allows nothing out. Changed in place.
    #[serde(default)]
    egress: Option<Vec<RuleField>>,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
enum Protocol {
    #[default]
    Tcp,
    Udp,
    Icmp,
    /// Every protocol and port.
    #[serde(alias = "-1")]
    All,
}

/// One rule: a protocol and its ports, and exactly one of `cidr` or
/// `source_security_group`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RuleField {
    /// `tcp` (the default), `udp`, `icmp`, or `all` (every protocol and port).
    #[serde(default)]
    protocol: Protocol,
    /// One port (tcp and udp). For a range use `from_port` and `to_port` instead.
    #[serde(default)]
    port: Option<i64>,
    /// First port of a range (tcp, udp); for icmp the ICMP type (-1 or left out: all).
    #[serde(default)]
    from_port: Option<i64>,
    /// Last port of a range (tcp, udp); for icmp the ICMP code (-1 or left out: all).
    #[serde(default)]
    to_port: Option<i64>,
    /// The other end as one IPv4 or IPv6 CIDR block, like `10.0.0.0/16`; `0.0.0.0/0`
    /// is anywhere on the internet.
    #[serde(default)]
    cidr: Option<String>,
    /// The other end as a security group: traffic from (ingress) or to (egress) anything
    /// that uses it. A reference like `${web_sg}`, an id (`sg-…`), or `self` for the
    /// members of this group (a cluster talking to itself).
    #[serde(default)]
    source_security_group: Option<String>,
    /// What the rule is for (same characters as the group description).
    #[serde(default)]
    description: Option<String>,
}

/// A rule as planned and as read: one peer per rule, canonical protocol ("-1" for all),
/// ports only where they mean something, so AWS's grouping and order never show as a
/// change.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Rule {
    protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_security_group: Option<String>,
    /// A prefix-list rule added outside securecart: never desired, so it is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix_list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl Rule {
    /// What identifies the rule in AWS: everything but the description.
    fn key(&self) -> Rule {
        Rule {
            description: None,
            ..self.clone()
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Attrs {
    /// The Name tag (changes in place).
    name: String,
    /// The group name AWS keeps unique within the VPC (cannot change).
    group_name: String,
    vpc: String,
    description: String,
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
}

/// Ports that must not be open to the whole internet (security baseline).
const RISKY_PORTS: &[(i32, &str)] = &[
    (22, "SSH"),
    (3389, "RDP"),
    (3306, "MySQL"),
    (5432, "PostgreSQL"),
    (1433, "SQL Server"),
    (1521, "Oracle"),
    (5439, "Redshift"),
    (27017, "MongoDB"),
    (6379, "Redis"),
];
const BASELINE: &str = "security baseline CKV_AWS_24/25/277 / EC2.19";
/// `source_security_group` naming the group itself, which has no id before it exists.
const SELF: &str = "self";

#[async_trait]
impl Resource for SecurityGroup {
    const KIND: &'static str = "security_group";
    const ATTRIBUTES: &'static [&'static str] = &["id", "arn", "name"];
    const REPLACE_ON: &'static [&'static str] = &["group_name", "vpc", "description"];
    // Group names are unique within a VPC: a copy made first takes the other name.
    const CREATE_BEFORE_DELETE: bool = true;
    const UNIQUE_NAME: Option<(&'static str, usize)> = Some(("group_name", 255));
    // No ClientToken on CreateSecurityGroup: the group name is unique per VPC, so a second
    // try fails with InvalidGroup.Duplicate and the group carrying our tags is the first one.
    const ADOPT: Adopt = Adopt::OnCodes(&["InvalidGroup.Duplicate"]);

    /// Typical time on AWS: Create and authorize are immediate; DeleteSecurityGroup is refused
    /// with DependencyViolation while ENIs of a deleted load balancer or instance linger,
    /// usually seconds to a minute (shared/notes/aws-behaviour.md, "Ordering on destroy").
    const TYPICAL: Typical = Typical {
        create: 3,
        update: 2,
        delete: 30,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    /// The group and its ARN.
    type Raw = (AwsGroup, String);

    fn check(&self, _id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut issues = Vec::new();
        issues.extend(check_id_ref("vpc", &f.vpc, cx, "vpc", "vpc-"));
        if let Some(d) = &f.description {
            issues.extend(check_text("description", d));
        }
        let vpc = ref_key(&f.vpc);
        for (dir, rules) in [("ingress", Some(&f.ingress)), ("egress", f.egress.as_ref())] {
            let Some(rules) = rules else { continue };
            let mut seen: Vec<(Rule, usize)> = Vec::new();
            for (i, r) in rules.iter().enumerate() {
                let at = format!("{dir}[{i}]");
                let found = check_rule(&at, r, cx, &vpc);
                let clean = found.is_empty();
                issues.extend(found);
                if !clean {
                    continue;
                }
                let Ok(rule) = to_rule(r) else { continue };
                if let Some((_, j)) = seen.iter().find(|(k, _)| *k == rule.key()) {
                    issues.push(Issue::new(
                        &at,
                        format!("the same rule as {dir}[{j}] (AWS keeps one rule per protocol, ports and peer)"),
                    ));
                    continue;
                }
                if dir == "ingress" {
                    issues.extend(exposure(&at, &rule));
                }
                seen.push((rule.key(), i));
            }
        }
        issues
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let rules = |list: &[RuleField]| -> Result<Vec<Rule>, String> {
            let mut v = list.iter().map(to_rule).collect::<Result<Vec<_>, _>>()?;
            v.sort();
            v.dedup();
            Ok(v)
        };
        let egress = match &f.egress {
            Some(e) => rules(e)?,
            None => default_egress(),
        };
        let a = Attrs {
            name: format!("{}-{}", site.stack, site.id),
            group_name: group_name(site.stack, site.id),
            vpc: f.vpc,
            description: f
                .description
                .unwrap_or_else(|| default_description(site.id)),
            ingress: rules(&f.ingress)?,
            egress,
        };
        Ok((a, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, f: &Fields) -> Vec<(String, String)> {
        vec![(
            format!("security group name in `{}`", f.vpc),
            group_name(stack, id),
        )]
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        a.ingress
            .iter()
            .filter_map(exposure_message)
            .map(|m| format!("ingress {m}"))
            .collect()
    }

    fn label(&self, a: &Attrs) -> String {
        format!("a security group named `{}` in {}", a.group_name, a.vpc)
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let groups = tagged!(aws.ec2.describe_security_groups(), stack)?;
        Ok(groups
            .into_iter()
            .map(|(id, g)| {
                let arn = arn_of(&g, &aws.region);
                (id, (g, arn))
            })
            .collect())
    }

    /// The group named so in the VPC, after InvalidGroup.Duplicate.
    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let out = aws
            .ec2
            .describe_security_groups()
            .filters(
                Filter::builder()
                    .name("group-name")
                    .values(&a.group_name)
                    .build(),
            )
            .filters(Filter::builder().name("vpc-id").values(&a.vpc).build())
            .send()
            .await?;
        Ok(out.security_groups().first().map(|g| Found {
            owner: ec2::owned_id(g.tags(), stack),
            raw: (g.clone(), arn_of(g, &aws.region)),
        }))
    }

    fn observe(&self, (g, arn): &Self::Raw) -> Observed<Attrs> {
        let group_id = g.group_id().unwrap_or_default().to_string();
        let group_name = g.group_name().unwrap_or_default().to_string();
        Observed {
            outputs: vec![
                ("id", json!(group_id)),
                ("arn", json!(arn)),
                ("name", json!(group_name)),
            ],
            attrs: Attrs {
                name: ec2::name_tag(g.tags()).unwrap_or_default(),
                group_name,
                vpc: g.vpc_id().unwrap_or_default().to_string(),
                description: g.description().unwrap_or_default().to_string(),
                ingress: rules_of(g.ip_permissions(), &group_id),
                egress: rules_of(g.ip_permissions_egress(), &group_id),
            },
            physical_id: group_id,
        }
    }

    async fn create(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        a: &Attrs,
        _: &(),
    ) -> Result<Self::Raw, Error> {
        let tags = common::tags(cx.stack, cx.id, &a.name);
        let out = aws
            .ec2
            .create_security_group()
            .group_name(&a.group_name)
            .description(&a.description)
            .vpc_id(&a.vpc)
            .tag_specifications(ec2::tag_spec(ResourceType::SecurityGroup, &tags))
            .send()
            .await?;
        let group_id = out
            .group_id()
            .ok_or_else(|| Error::Invalid("CreateSecurityGroup returned no group id".into()))?
            .to_string();
        // The rules AWS starts with (the default egress) come from AWS itself, not from
        // an assumption: then the converge below is the same code update runs.
        let mut group = common::wait_for(
            cx,
            "the security group to be visible",
            Duration::from_secs(120),
            || async { found(describe(aws, &group_id).await).map(Option::flatten) },
        )
        .await?;
        for dir in [Direction::Ingress, Direction::Egress] {
            let now = rules_of(dir.permissions(&group), &group_id);
            converge_rules(aws, cx, &group_id, dir, &now, dir.rules(a)).await?;
        }
        // The group as the converge left it: exactly the desired rules (not read again).
        let perms = |rules: &[Rule]| rules.iter().map(|r| permission(r, &group_id)).collect();
        group.ip_permissions = Some(perms(&a.ingress));
        group.ip_permissions_egress = Some(perms(&a.egress));
        let arn = arn_of(&group, &aws.region);
        Ok((group, arn))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<Self::Raw>, Error> {
        let now = attrs_of::<Self>(live)?;
        let group_id = &live.physical_id;
        for dir in [Direction::Ingress, Direction::Egress] {
            if changed.has(dir.name()) {
                converge_rules(aws, cx, group_id, dir, dir.rules(&now), dir.rules(a)).await?;
            }
        }
        if changed.has("name") {
            set_name_tag(aws, group_id, &a.name).await?;
        }
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let group_id = &live.physical_id;
        release_references(aws, cx, group_id).await?;
        delete_while_in_use(aws, cx, "security group", "group-id", group_id, || async {
            aws.ec2
                .delete_security_group()
                .group_id(group_id)
                .send()
                .await?;
            Ok(())
        })
        .await
    }
}

// ---- Fields → rules ---------------------------------------------------------------

fn default_description(id: &str) -> String {
    format!("{id} (managed by securecart)")
}

/// AWS's own default egress: everything, anywhere (IPv4).
fn default_egress() -> Vec<Rule> {
    vec![Rule {
        protocol: "-1".into(),
        cidr: Some("0.0.0.0/0".into()),
        ..Rule::default()
    }]
}

/// `{stack}-{id}`; group names starting with `sg-` are refused by AWS.
fn group_name(stack: &str, id: &str) -> String {
    let name = common::physical_name(stack, id, 255, allowed_char, "");
    if name.to_ascii_lowercase().starts_with("sg-") {
        common::physical_name("securecart", &name, 255, allowed_char, "")
    } else {
        name
    }
}

/// Characters AWS accepts in VPC security group names and descriptions.
fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ' ' || "._-:/()#,@[]+=&;{}!$*".contains(c)
}

fn check_text(path: &str, s: &str) -> Option<Issue> {
    if s.len() > 255 {
        return Some(Issue::new(
            path,
            format!("{} characters is too long: at most 255", s.len()),
        ));
    }
    let bad: String = s.chars().filter(|c| !allowed_char(*c)).collect();
    (!bad.is_empty()).then(|| {
        Issue::new(path, format!("AWS does not accept `{bad}` here"))
            .help("use letters, digits, spaces and ._-:/()#,@[]+=&;{}!$*")
    })
}

/// The canonical text of a CIDR (so `2001:DB8::/32` and `2001:db8::/32` agree); other
/// text (an unresolved value) as it is.
fn canonical_cidr(s: &str) -> String {
    s.parse::<ipnet::IpNet>()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| s.to_string())
}

fn check_cidr(s: &str) -> Result<(), String> {
    if s.contains(':') {
        let net: ipnet::Ipv6Net = s
            .parse()
            .map_err(|_| format!("`{s}` is not a valid CIDR block (like 10.0.0.0/16 or ::/0)"))?;
        if net.network() != net.addr() {
            return Err(format!(
                "`{s}` has host bits set; the network address is {}",
                net.trunc()
            ));
        }
        return Ok(());
    }
    common::parse_cidr(s).map(|_| ())
}

fn check_rule(at: &str, r: &RuleField, cx: &CheckCx, vpc: &str) -> Vec<Issue> {
    let mut issues = Vec::new();
    let p = |f: &str| format!("{at}.{f}");
    match (&r.cidr, &r.source_security_group) {
        (None, None) => issues.push(
            Issue::new(at, "the rule names no peer")
                .help("set `cidr` (addresses) or `source_security_group` (a group)"),
        ),
        (Some(_), Some(_)) => issues.push(
            Issue::new(at, "set either `cidr` or `source_security_group`, not both")
                .help("write two rules to allow both"),
        ),
        (Some(c), None) => {
            if !has_ref(c) {
                if let Err(e) = check_cidr(c) {
                    issues.push(Issue::new(p("cidr"), e));
                }
            }
        }
        (None, Some(g)) if g == SELF => {}
        (None, Some(g)) => {
            match check_id_ref(&p("source_security_group"), g, cx, "security_group", "sg-") {
                Some(i) => issues.push(i),
                None => {
                    let other = cx
                        .referenced(g)
                        .and_then(|s| s.config.get("vpc"))
                        .and_then(Json::as_str)
                        .map(ref_key);
                    if let Some(other) = other.filter(|o| o != vpc) {
                        issues.push(Issue::new(
                            p("source_security_group"),
                            format!("`{g}` is in VPC `{other}`, another VPC than this group's"),
                        ));
                    }
                }
            }
        }
    }
    let port_ok = |f: &str, v: i64| -> Option<Issue> {
        (!(0..=65535).contains(&v))
            .then(|| Issue::new(p(f), format!("port {v} is out of range: 0 to 65535")))
    };
    match r.protocol {
        Protocol::Tcp | Protocol::Udp => match (r.port, r.from_port, r.to_port) {
            (Some(v), None, None) => issues.extend(port_ok("port", v)),
            (None, Some(a), Some(b)) => {
                let bad: Vec<Issue> = port_ok("from_port", a).into_iter().chain(port_ok("to_port", b)).collect();
                if bad.is_empty() && a > b {
                    issues.push(Issue::new(p("from_port"), format!("from_port {a} is above to_port {b}")));
                }
                issues.extend(bad);
            }
            (Some(_), _, _) => issues.push(Issue::new(p("port"), "give `port` or `from_port` and `to_port`, not both")),
            (None, None, None) => issues.push(
                Issue::new(at, "the rule has no port").help("set `port`, or `from_port` and `to_port` for a range; `protocol: all` for every port"),
            ),
            (None, _, _) => issues.push(Issue::new(at, "a port range needs both `from_port` and `to_port`")),
        },
        Protocol::Icmp => {
            if r.port.is_some() {
                issues.push(
                    Issue::new(p("port"), "ICMP has no ports")
                        .help("use `from_port` for the ICMP type and `to_port` for the code, or leave them out for all ICMP"),
                );
            }
            for (f, v) in [("from_port", r.from_port), ("to_port", r.to_port)] {
                if let Some(v) = v.filter(|v| !(-1..=255).contains(v)) {
                    issues.push(Issue::new(p(f), format!("ICMP type and code are -1 (all) to 255, not {v}")));
                }
            }
        }
        Protocol::All => {
            if r.port.is_some() || r.from_port.is_some() || r.to_port.is_some() {
                issues.push(
                    Issue::new(at, "`protocol: all` covers every port").help("remove `port`, `from_port` and `to_port`, or pick tcp or udp"),
                );
            }
        }
    }
    if let Some(d) = &r.description {
        issues.extend(check_text(&p("description"), d));
    }
    issues
}

/// A checked rule field in canonical form.
fn to_rule(r: &RuleField) -> Result<Rule, String> {
    let port = |v: i64| i32::try_from(v).map_err(|_| format!("port {v} is out of range"));
    let (protocol, from_port, to_port) = match r.protocol {
        Protocol::Tcp | Protocol::Udp => {
            let (a, b) = match (r.port, r.from_port, r.to_port) {
                (Some(v), None, None) => (v, v),
                (None, Some(a), Some(b)) => (a, b),
                _ => {
                    return Err(
                        "a tcp or udp rule needs `port`, or `from_port` and `to_port`".into(),
                    )
                }
            };
            let name = if r.protocol == Protocol::Tcp {
                "tcp"
            } else {
                "udp"
            };
            (name, Some(port(a)?), Some(port(b)?))
        }
        Protocol::Icmp => (
            "icmp",
            Some(port(r.from_port.unwrap_or(-1))?),
            Some(port(r.to_port.unwrap_or(-1))?),
        ),
        Protocol::All => ("-1", None, None),
    };
    Ok(Rule {
        protocol: protocol.into(),
        from_port,
        to_port,
        cidr: r.cidr.as_deref().map(canonical_cidr),
        source_security_group: r.source_security_group.clone(),
        prefix_list: None,
        description: r.description.clone().filter(|d| !d.is_empty()),
    })
}

/// The security-baseline warning for an ingress rule open to the whole internet on a
/// remote-access or database port.
fn exposure(at: &str, r: &Rule) -> Option<Issue> {
    let msg = exposure_message(r)?;
    Some(
        Issue::new(format!("{at}.cidr"), msg)
            .help("narrow `cidr` to the addresses that need it, use `source_security_group`, or reach hosts through SSM Session Manager")
            .warning(),
    )
}

fn exposure_message(r: &Rule) -> Option<String> {
    let anywhere = matches!(r.cidr.as_deref(), Some("0.0.0.0/0" | "::/0"));
    if !anywhere || !matches!(r.protocol.as_str(), "tcp" | "udp" | "-1") {
        return None;
    }
    let (lo, hi) = match (r.from_port, r.to_port) {
        (Some(a), Some(b)) => (a, b),
        _ => (0, 65535),
    };
    let hit: Vec<String> = RISKY_PORTS
        .iter()
        .filter(|(p, _)| (lo..=hi).contains(p))
        .map(|(p, what)| format!("{p} ({what})"))
        .collect();
    if hit.is_empty() {
        return None;
    }
    let cidr = r.cidr.as_deref().unwrap_or_default();
    let ports = if r.protocol == "-1" {
        "every port, including"
    } else {
        "port"
    };
    Some(format!(
        "opens {ports} {} to the whole internet ({cidr}) — {BASELINE}",
        hit.join(", ")
    ))
}

// ---- AWS permissions ⇄ rules ------------------------------------------------------

fn canonical_protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "all" => "-1".into(),
        other => other.to_string(),
    }
}

/// One rule per peer: AWS groups several ranges and groups under one permission.
/// `own_id` is the group's id, which rules show as `self`.
fn rules_of(perms: &[IpPermission], own_id: &str) -> Vec<Rule> {
    let mut out = Vec::new();
    for p in perms {
        let protocol = canonical_protocol(p.ip_protocol().unwrap_or("-1"));
        let (from_port, to_port) = if protocol == "-1" {
            (None, None)
        } else {
            (p.from_port(), p.to_port())
        };
        let rule = |cidr: Option<&str>,
                    group: Option<&str>,
                    prefix_list: Option<&str>,
                    description: Option<&str>| Rule {
            protocol: protocol.clone(),
            from_port,
            to_port,
            cidr: cidr.map(canonical_cidr),
            source_security_group: group.map(|g| if g == own_id { SELF } else { g }.to_string()),
            prefix_list: prefix_list.map(str::to_string),
            description: description.filter(|d| !d.is_empty()).map(str::to_string),
        };
        for r in p.ip_ranges() {
            out.push(rule(r.cidr_ip(), None, None, r.description()));
        }
        for r in p.ipv6_ranges() {
            out.push(rule(r.cidr_ipv6(), None, None, r.description()));
        }
        for g in p.user_id_group_pairs() {
            out.push(rule(
                None,
                g.group_id().or(g.group_name()),
                None,
                g.description(),
            ));
        }
        for l in p.prefix_list_ids() {
            out.push(rule(None, None, l.prefix_list_id(), l.description()));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The AWS permission for one rule of group `own_id`.
fn permission(r: &Rule, own_id: &str) -> IpPermission {
    let d = r.description.clone();
    let mut b = IpPermission::builder()
        .ip_protocol(&r.protocol)
        .set_from_port(r.from_port)
        .set_to_port(r.to_port);
    if let Some(c) = &r.cidr {
        b = if c.contains(':') {
            b.ipv6_ranges(
                Ipv6Range::builder()
                    .cidr_ipv6(c)
                    .set_description(d.clone())
                    .build(),
            )
        } else {
            b.ip_ranges(
                IpRange::builder()
                    .cidr_ip(c)
                    .set_description(d.clone())
                    .build(),
            )
        };
    }
    if let Some(g) = &r.source_security_group {
        let g = if g == SELF { own_id } else { g };
        b = b.user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id(g)
                .set_description(d.clone())
                .build(),
        );
    }
    if let Some(l) = &r.prefix_list {
        b = b.prefix_list_ids(
            PrefixListId::builder()
                .prefix_list_id(l)
                .set_description(d)
                .build(),
        );
    }
    b.build()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Direction {
    Ingress,
    Egress,
}

/// The three calls that change a group's rules; each has an ingress and an egress form
/// taking the same input.
#[derive(Debug, Clone, Copy)]
enum Call {
    Authorize,
    Revoke,
    Describe,
}

/// Picks the call for `$which` among `pattern => operation` arms and sends
/// it for `$perms` of group `$group`: the six calls take the same input.
macro_rules! send_rules {
    ($aws:expr, $group:expr, $perms:expr, $which:expr,
     $($pat:pat => $op:ident),+ $(,)?) => {
        match $which {
            $($pat => $aws
                .ec2
                .$op()
                .group_id($group)
                .set_ip_permissions(Some($perms))
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),)+
        }
    };
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    fn rules(self, a: &Attrs) -> &[Rule] {
        match self {
            Direction::Ingress => &a.ingress,
            Direction::Egress => &a.egress,
        }
    }

    fn permissions(self, g: &AwsGroup) -> &[IpPermission] {
        match self {
            Direction::Ingress => g.ip_permissions(),
            Direction::Egress => g.ip_permissions_egress(),
        }
    }

    async fn send(
        self,
        aws: &Aws,
        call: Call,
        group_id: &str,
        perms: Vec<IpPermission>,
    ) -> Result<(), Error> {
        use Direction::{Egress, Ingress};
        send_rules! { aws, group_id, perms, (call, self),
            (Call::Authorize, Ingress) => authorize_security_group_ingress,
            (Call::Authorize, Egress) => authorize_security_group_egress,
            (Call::Revoke, Ingress) => revoke_security_group_ingress,
            (Call::Revoke, Egress) => revoke_security_group_egress,
            (Call::Describe, Ingress) => update_security_group_rule_descriptions_ingress,
            (Call::Describe, Egress) => update_security_group_rule_descriptions_egress,
        }
    }
}

/// Authorizes the rules missing from `now`, fixes descriptions, then revokes the rules
/// not wanted: only the difference changes, and adding first means a changed rule
/// never leaves a gap in what is allowed.
async fn converge_rules(
    aws: &Aws,
    cx: &OpCx<'_>,
    group_id: &str,
    dir: Direction,
    now: &[Rule],
    want: &[Rule],
) -> Result<(), Error> {
    let now_by: BTreeMap<Rule, &Rule> = now.iter().map(|r| (r.key(), r)).collect();
    let want_by: BTreeMap<Rule, &Rule> = want.iter().map(|r| (r.key(), r)).collect();
    let add: Vec<&Rule> = want_by
        .iter()
        .filter(|(k, _)| !now_by.contains_key(*k))
        .map(|(_, r)| *r)
        .collect();
    let redescribe: Vec<&Rule> = want_by
        .iter()
        .filter(|(k, w)| {
            now_by
                .get(*k)
                .is_some_and(|n| n.description != w.description)
        })
        .map(|(_, r)| *r)
        .collect();
    let remove: Vec<&Rule> = now_by
        .iter()
        .filter(|(k, _)| !want_by.contains_key(*k))
        .map(|(_, r)| *r)
        .collect();
    let what = dir.name();
    if !add.is_empty() {
        cx.note(format!("adding {} {what} rule(s)", add.len()));
        // Some were added by an earlier, interrupted attempt: add the rest one by one,
        // and make the description of the existing ones right.
        let dup = ["InvalidPermission.Duplicate"];
        rules_or_each(
            aws,
            group_id,
            dir,
            Call::Authorize,
            &add,
            &dup,
            Some(Call::Describe),
        )
        .await?;
    }
    if !redescribe.is_empty() {
        cx.note(format!(
            "updating the description of {} {what} rule(s)",
            redescribe.len()
        ));
        let perms = redescribe.iter().map(|r| permission(r, group_id)).collect();
        dir.send(aws, Call::Describe, group_id, perms).await?;
    }
    if !remove.is_empty() {
        cx.note(format!("removing {} {what} rule(s)", remove.len()));
        // Already gone: revoked by an earlier attempt, or (InvalidGroup.NotFound) it
        // pointed at a group that was replaced, whose delete took the rule with it. Our
        // own group being gone would have failed the authorize above already. Rules go
        // with the description AWS has: some implementations match on it.
        let gone = ["InvalidPermission.NotFound", "InvalidGroup.NotFound"];
        rules_or_each(aws, group_id, dir, Call::Revoke, &remove, &gone, None).await?;
    }
    Ok(())
}

/// `call` for all of `rules` in one request; when AWS refuses it with one of `codes`
/// (an earlier, interrupted attempt did part of it), one rule at a time, answering each
/// rule refused so with `then` (or nothing).
async fn rules_or_each(
    aws: &Aws,
    group_id: &str,
    dir: Direction,
    call: Call,
    rules: &[&Rule],
    codes: &[&str],
    then: Option<Call>,
) -> Result<(), Error> {
    let perms = |rs: &[&Rule]| rs.iter().map(|r| permission(r, group_id)).collect();
    match dir.send(aws, call, group_id, perms(rules)).await {
        Err(e) if e.is_code(codes) => {
            for r in rules.chunks(1) {
                match dir.send(aws, call, group_id, perms(r)).await {
                    Err(e) if e.is_code(codes) => {
                        if let Some(then) = then {
                            dir.send(aws, then, group_id, perms(r)).await?;
                        }
                    }
                    other => other?,
                }
            }
            Ok(())
        }
        other => other,
    }
}

/// Revokes the rules of this stack's other groups that point at `group_id`. AWS refuses
/// to delete a group other rules refer to, and a replaced group is deleted before the
/// groups that refer to it are updated to its successor (which re-adds those rules),
/// so without this a replacement could never finish. Other stacks' groups are left
/// alone: their rules keep the group in use, and the delete says so.
async fn release_references(aws: &Aws, cx: &OpCx<'_>, group_id: &str) -> Result<(), Error> {
    for (filter, dir) in [
        ("ip-permission.group-id", Direction::Ingress),
        ("egress.ip-permission.group-id", Direction::Egress),
    ] {
        let groups = aws
            .ec2
            .describe_security_groups()
            .filters(Filter::builder().name(filter).values(group_id).build())
            .filters(ec2::stack_filter(cx.stack))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await?;
        for g in &groups {
            let (Some(other), Some(owner)) = (g.group_id(), ec2::owned_id(g.tags(), cx.stack))
            else {
                continue;
            };
            if other == group_id {
                continue;
            }
            let refs: Vec<IpPermission> = rules_of(dir.permissions(g), other)
                .iter()
                .filter(|r| r.source_security_group.as_deref() == Some(group_id))
                .map(|r| permission(r, other))
                .collect();
            if refs.is_empty() {
                continue;
            }
            match dir.send(aws, Call::Revoke, other, refs).await {
                Err(e) if e.is_code(&["InvalidPermission.NotFound"]) || ec2::not_found(e.code()) => {}
                Err(e) => return Err(e),
                Ok(()) => cx.note(format!(
                    "removed the {} rule(s) of `{owner}` ({other}) that refer to {group_id}; its update adds them back for the new group",
                    dir.name()
                )),
            }
        }
    }
    Ok(())
}

async fn describe(aws: &Aws, group_id: &str) -> Result<Option<AwsGroup>, Error> {
    let out = aws
        .ec2
        .describe_security_groups()
        .group_ids(group_id)
        .send()
        .await?;
    Ok(out.security_groups().first().cloned())
}

/// The group's ARN; built from its owner where AWS's answer has none.
fn arn_of(g: &AwsGroup, region: &str) -> String {
    g.security_group_arn()
        .map(str::to_string)
        .unwrap_or_else(|| {
            let id = g.group_id().unwrap_or_default();
            arn(region, g.owner_id(), "security-group", id)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ec2::retry_while_held;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::Kind;

    const K: Typed<SecurityGroup> = Typed(SecurityGroup);

    fn sg(body: &str) -> Vec<String> {
        problems(&format!(
            "
name: t
resources:
  main_vpc:
    type: vpc
    cidr_block: 10.0.0.0/16
  lb:
    type: security_group
    vpc: ${{main_vpc}}
    ingress:
      - port: 443
        cidr: 0.0.0.0/0
  web:
    type: security_group
    vpc: ${{main_vpc}}
{body}"
        ))
    }

    #[test]
    fn good_rules_pass() {
        let p = sg("
    description: Web servers
    ingress:
      - port: 80
        source_security_group: ${lb}
        description: from the load balancer
      - protocol: udp
        from_port: 1000
        to_port: 2000
        cidr: 10.0.0.0/16
      - protocol: icmp
        cidr: 10.0.0.0/16
      - protocol: all
        cidr: 10.0.0.0/8
      - port: 7946
        source_security_group: self
    egress:
      - port: 5432
        cidr: ${main_vpc.cidr_block}
");
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn bad_rules_are_explained() {
        let p = sg("
    description: \"naïve\"
    ingress:
      - port: 80
      - port: 80
        cidr: 10.0.0.0/16
        source_security_group: ${lb}
      - port: 70000
        cidr: 10.0.0.1/16
      - from_port: 90
        to_port: 80
        cidr: 10.0.0.0/16
      - from_port: 90
        cidr: 10.0.0.0/16
      - protocol: all
        port: 22
        cidr: 10.0.0.0/16
      - cidr: 10.0.0.0/16
      - protocol: icmp
        port: 8
        cidr: 10.0.0.0/16
      - port: 443
        source_security_group: ${main_vpc}
      - port: 443
        source_security_group: sg-0abc
      - port: 443
        source_security_group: sg-0abc
        description: same again
");
        let all = p.join("\n");
        for want in [
            "web.description: AWS does not accept `ï`",
            "ingress[0]: the rule names no peer",
            "ingress[1]: set either `cidr` or `source_security_group`, not both",
            "ingress[2].port: port 70000 is out of range",
            "ingress[2].cidr: `10.0.0.1/16` has host bits set",
            "ingress[3].from_port: from_port 90 is above to_port 80",
            "ingress[4]: a port range needs both",
            "ingress[5]: `protocol: all` covers every port",
            "ingress[6]: the rule has no port",
            "ingress[7].port: ICMP has no ports",
            "ingress[8].source_security_group: `${main_vpc}` refers to `main_vpc` (type vpc)",
            "ingress[10]: the same rule as ingress[9]",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
        assert_eq!(p.len(), 12, "{all}");
    }

    #[test]
    fn open_admin_and_database_ports_warn() {
        let p = sg("
    ingress:
      - port: 22
        cidr: 0.0.0.0/0
      - from_port: 3000
        to_port: 4000
        cidr: ::/0
      - port: 5432
        cidr: 10.0.0.0/8
      - protocol: all
        cidr: 0.0.0.0/0
      - port: 80
        cidr: 0.0.0.0/0
");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p.iter()
                .all(|m| m.starts_with("Warning") && m.contains("CKV_AWS_24/25/277 / EC2.19")),
            "{p:?}"
        );
        assert!(
            p[0].contains("ingress[0].cidr") && p[0].contains("22 (SSH)"),
            "{p:?}"
        );
        assert!(
            p[1].contains("3306 (MySQL)") && p[1].contains("3389 (RDP)") && p[1].contains("(::/0)"),
            "{p:?}"
        );
        assert!(p[2].contains("every port"), "{p:?}");
        let d = K
            .desired("dev", "web", &json!({"vpc": "vpc-1", "ingress": [{"port": 22, "cidr": "0.0.0.0/0"}, {"port": 22, "cidr": "10.0.0.0/8"}]}))
            .unwrap();
        let w = K.warnings(&d);
        assert_eq!(w, vec!["ingress opens port 22 (SSH) to the whole internet (0.0.0.0/0) — security baseline CKV_AWS_24/25/277 / EC2.19"]);
    }

    #[test]
    fn desired_is_normalised_and_sorted() {
        let d = K
            .desired(
                "dev",
                "web",
                &json!({"vpc": "vpc-1", "ingress": [
                    {"port": 443, "cidr": "0.0.0.0/0"},
                    {"protocol": "all", "source_security_group": "sg-lb", "description": ""},
                    {"protocol": "icmp", "cidr": "2001:DB8::/32"},
                    {"port": 443, "cidr": "0.0.0.0/0"},
                ]}),
            )
            .unwrap();
        assert_eq!(
            d,
            json!({
                "name": "dev-web",
                "group_name": "dev-web",
                "vpc": "vpc-1",
                "description": "web (managed by securecart)",
                "ingress": [
                    {"protocol": "-1", "source_security_group": "sg-lb"},
                    {"protocol": "icmp", "from_port": -1, "to_port": -1, "cidr": "2001:db8::/32"},
                    {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr": "0.0.0.0/0"},
                ],
                "egress": [{"protocol": "-1", "cidr": "0.0.0.0/0"}],
            })
        );
        let none = K
            .desired("dev", "web", &json!({"vpc": "vpc-1", "egress": []}))
            .unwrap();
        assert_eq!(none["egress"], json!([]));
    }

    #[test]
    fn aws_permissions_expand_to_the_same_rules() {
        let want = K
            .desired(
                "dev",
                "web",
                &json!({"vpc": "vpc-1", "description": "Web", "ingress": [
                    {"port": 443, "cidr": "10.0.0.0/16", "description": "office"},
                    {"port": 443, "cidr": "10.1.0.0/16"},
                    {"port": 443, "source_security_group": "sg-lb"},
                    {"protocol": "all", "cidr": "10.2.0.0/16"},
                    {"port": 9000, "source_security_group": "self"},
                ]}),
            )
            .unwrap();
        // AWS answers with ranges grouped per protocol and port, in its own order, with
        // ports on "all" rules, and numbers for protocol names.
        let g = AwsGroup::builder()
            .group_id("sg-web")
            .group_name("dev-web")
            .vpc_id("vpc-1")
            .description("Web")
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("Name")
                    .value("dev-web")
                    .build(),
            )
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("6")
                    .from_port(443)
                    .to_port(443)
                    .ip_ranges(IpRange::builder().cidr_ip("10.1.0.0/16").build())
                    .ip_ranges(
                        IpRange::builder()
                            .cidr_ip("10.0.0.0/16")
                            .description("office")
                            .build(),
                    )
                    .user_id_group_pairs(
                        UserIdGroupPair::builder()
                            .group_id("sg-lb")
                            .user_id("123")
                            .description("")
                            .build(),
                    )
                    .build(),
            )
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("-1")
                    .from_port(-1)
                    .to_port(-1)
                    .ip_ranges(IpRange::builder().cidr_ip("10.2.0.0/16").build())
                    .build(),
            )
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(9000)
                    .to_port(9000)
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-web").build())
                    .build(),
            )
            .ip_permissions_egress(
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
            )
            .build();
        let arn = arn_of(&g, "us-east-1");
        assert_eq!(arn, "arn:aws:ec2:us-east-1::security-group/sg-web");
        let o = SecurityGroup.observe(&(g, arn));
        assert_eq!(want, json!(o.attrs));
        assert!(o.outputs.contains(&("name", json!("dev-web"))));
    }

    #[test]
    fn group_names_never_start_with_sg() {
        assert_eq!(group_name("dev", "web"), "dev-web");
        assert_eq!(group_name("sg", "web"), "securecart-sg-web");
    }

    #[test]
    fn permissions_carry_descriptions_and_resolve_self() {
        let r = Rule {
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            cidr: Some("::/0".into()),
            description: Some("x".into()),
            ..Rule::default()
        };
        let p = permission(&r.key(), "sg-1");
        assert_eq!(p.ipv6_ranges()[0].cidr_ipv6(), Some("::/0"));
        assert_eq!(p.ipv6_ranges()[0].description(), None);
        assert_eq!(p.from_port(), Some(22));
        assert_eq!(
            permission(&r, "sg-1").ipv6_ranges()[0].description(),
            Some("x")
        );
        let own = Rule {
            cidr: None,
            source_security_group: Some(SELF.into()),
            ..r
        };
        assert_eq!(
            permission(&own, "sg-1").user_id_group_pairs()[0].group_id(),
            Some("sg-1")
        );
    }

    fn dependency(msg: &str) -> Error {
        Error::Aws {
            operation: "DeleteSecurityGroup".into(),
            code: Some("DependencyViolation".into()),
            message: msg.into(),
        }
    }

    #[tokio::test]
    async fn deletes_wait_for_network_interfaces_and_name_them() {
        let notes = std::sync::Mutex::new(Vec::<String>::new());
        let progress = |m: String| notes.lock().unwrap().push(m);
        let cx = OpCx {
            stack: "dev",
            id: "web",
            payload: &crate::resources::Payload::default(),
            progress: &progress,
        };
        let tries = std::sync::atomic::AtomicUsize::new(0);
        let held = || async { "by eni-1: AWS Lambda VPC ENI, lambda, in-use".to_string() };
        let op = || async {
            match tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 | 1 => Err(dependency("resource sg-1 has a dependent object")),
                _ => Ok(()),
            }
        };
        let r = retry_while_held(
            &cx,
            "security group",
            "sg-1",
            Duration::from_secs(5),
            Duration::from_millis(1),
            op,
            held,
        )
        .await;
        assert!(r.is_ok(), "{r:?}");
        let seen = notes.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert!(
            seen[0].contains("sg-1 is still in use (by eni-1: AWS Lambda VPC ENI"),
            "{seen:?}"
        );

        let always = || async { Err(dependency("in use")) };
        let err = retry_while_held(
            &cx,
            "subnet",
            "subnet-1",
            Duration::from_millis(20),
            Duration::from_millis(1),
            always,
            held,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)));
        assert!(
            err.to_string()
                .contains("subnet subnet-1 is still in use after 0s (by eni-1"),
            "{err}"
        );

        let gone = || async {
            Err(Error::Aws {
                operation: "DeleteSubnet".into(),
                code: Some("InvalidSubnetID.NotFound".into()),
                message: String::new(),
            })
        };
        assert!(retry_while_held(
            &cx,
            "subnet",
            "subnet-1",
            Duration::ZERO,
            Duration::ZERO,
            gone,
            held
        )
        .await
        .is_ok());
    }
}
