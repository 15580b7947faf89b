//! `route_table`: a VPC route table with its routes and the subnets that use it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    Filter, ResourceType, Route as AwsRoute, RouteOrigin, RouteTable as AwsRouteTable,
    RouteTableAssociation, RouteTableAssociationStateCode, Tag,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::{by_id, earlier, found, named_vpc, set_name_tag, tagged};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue, Resource as Declared};
use crate::resources::common::{self, ec2, Error};
use crate::resources::fields::{check_id_ref, has_ref, ref_key};
use crate::resources::typed::{self, Changed, Listed, Observed, Resource, Site, Typical};
use crate::resources::{Live, OpCx};

pub struct RouteTable;

/// A route table of a VPC.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// The VPC of the table: a reference like `${main_vpc}` or an existing VPC id
    /// (`vpc-…`). Changing it replaces the table.
    vpc: String,
    /// Routes besides the VPC's own `local` route, which every table has. Changed in
    /// place.
    #[serde(default)]
    routes: Vec<RouteField>,
    /// Subnets that use this table: references like `${public_a}` or subnet ids. A
    /// subnet uses one route table; subnets not listed in any use the VPC's main table.
    #[serde(default)]
    subnets: Vec<String>,
}

/// A route: where traffic goes (`destination`) and exactly one target.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteField {
    /// The addresses this route covers: an IPv4 or IPv6 CIDR block like `0.0.0.0/0`
    /// (the internet) or `10.1.0.0/16`, or a managed prefix list id (`pl-…`). One route
    /// per destination.
    destination: String,
    /// Send the traffic to an internet gateway: `${my_igw}` or an id (`igw-…`).
    #[serde(default)]
    gateway: Option<String>,
}

/// A route target type: the field that sets it, the kind a reference must point at,
/// and the prefix of literal ids. Adding a target type means a field on
/// [`RouteField`] and [`Route`], an entry here, and its setter in `with_target!` and
/// mapping in `route_of`.
struct TargetType {
    field: &'static str,
    kind: &'static str,
    prefix: &'static str,
}

const TARGETS: &[TargetType] = &[TargetType {
    field: "gateway",
    kind: "internet_gateway",
    prefix: "igw-",
}];

impl RouteField {
    /// The targets set on this route, as (field, value).
    fn targets(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Some(g) = &self.gateway {
            out.push(("gateway", g.as_str()));
        }
        out
    }
}

/// A route as planned and as read: the same shape on both sides.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    destination: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
    /// A target securecart does not set (NAT gateway, peering, instance…), found in
    /// AWS. Never desired, so such a route shows as a change and is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    other_target: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    vpc: String,
    routes: Vec<Route>,
    subnets: Vec<String>,
}

#[async_trait]
impl Resource for RouteTable {
    const KIND: &'static str = "route_table";
    const ATTRIBUTES: &'static [&'static str] = &["id"];
    const REPLACE_ON: &'static [&'static str] = &["vpc"];

    /// Typical time on AWS: A few EC2 calls (routes, associations); no waiter.
    const TYPICAL: Typical = Typical {
        create: 3,
        update: 3,
        delete: 3,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    type Raw = AwsRouteTable;

    fn check(&self, id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut issues = Vec::new();
        issues.extend(check_id_ref("vpc", &f.vpc, cx, "vpc", "vpc-"));
        let vpc = ref_key(&f.vpc);
        // The VPC another resource's `vpc` field names, to catch cross-VPC mix-ups.
        let vpc_of = |value: &str| cx.referenced(value).and_then(named_vpc);

        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, r) in f.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            if !has_ref(&r.destination) {
                match canonical_destination(&r.destination) {
                    Err(e) => issues.push(Issue::new(format!("{at}.destination"), e)),
                    Ok(d) => {
                        if let Some(j) = seen.insert(d.clone(), i) {
                            issues.push(Issue::new(
                                format!("{at}.destination"),
                                format!("routes[{j}] already routes {d}; a table has one route per destination"),
                            ));
                        }
                    }
                }
            }
            let targets = r.targets();
            let fields: Vec<&str> = TARGETS.iter().map(|t| t.field).collect();
            match targets.as_slice() {
                [] => issues.push(
                    Issue::new(&at, "the route has no target")
                        .help(format!("set one of: {}", fields.join(", "))),
                ),
                [(field, value)] => {
                    let Some(t) = TARGETS.iter().find(|t| t.field == *field) else {
                        continue;
                    };
                    let path = format!("{at}.{field}");
                    match check_id_ref(&path, value, cx, t.kind, t.prefix) {
                        Some(issue) => issues.push(issue),
                        None => {
                            if let Some(other) = vpc_of(value).filter(|v| *v != vpc) {
                                issues.push(Issue::new(
                                    path,
                                    format!("`{value}` belongs to VPC `{other}`, but this table is in `{}`", f.vpc),
                                ));
                            }
                        }
                    }
                }
                _ => issues.push(
                    Issue::new(&at, "a route has exactly one target").help(format!(
                        "set only one of: {}",
                        targets
                            .iter()
                            .map(|(f, _)| *f)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ),
            }
        }

        let mut listed: BTreeMap<String, usize> = BTreeMap::new();
        for (i, s) in f.subnets.iter().enumerate() {
            let at = format!("subnets[{i}]");
            if let Some(issue) = check_id_ref(&at, s, cx, "subnet", "subnet-") {
                issues.push(issue);
                continue;
            }
            let key = ref_key(s);
            if let Some(j) = listed.insert(key.clone(), i) {
                issues.push(Issue::new(
                    &at,
                    format!("`{s}` is already listed as subnets[{j}]"),
                ));
                continue;
            }
            if let Some(other) = vpc_of(s).filter(|v| *v != vpc) {
                issues.push(Issue::new(
                    &at,
                    format!(
                        "`{s}` is in VPC `{other}`, but this table is in `{}`",
                        f.vpc
                    ),
                ));
            }
            // A subnet has one route table: report it on the later table only.
            let lists_it = |r: &&Declared| {
                let listed = r.config.get("subnets").and_then(Json::as_array);
                listed.is_some_and(|l| l.iter().filter_map(Json::as_str).any(|o| ref_key(o) == key))
            };
            if let Some(other) = earlier(cx, id, "route_table").find(lists_it) {
                issues.push(Issue::new(
                    &at,
                    format!(
                        "`{s}` already uses route table `{}`; a subnet uses one route table",
                        other.id
                    ),
                ));
            }
        }
        issues
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let mut routes: Vec<Route> = f
            .routes
            .into_iter()
            .map(|r| Route {
                destination: canonical_destination(&r.destination).unwrap_or(r.destination),
                gateway: r.gateway,
                other_target: None,
            })
            .collect();
        routes.sort();
        routes.dedup();
        let subnets: BTreeSet<String> = f.subnets.into_iter().collect();
        let a = Attrs {
            name: format!("{}-{}", site.stack, site.id),
            vpc: f.vpc,
            routes,
            subnets: subnets.into_iter().collect(),
        };
        Ok((a, ()))
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        tagged!(aws.ec2.describe_route_tables(), stack)
    }

    fn observe(&self, t: &AwsRouteTable) -> Observed<Attrs> {
        let rtb_id = t.route_table_id().unwrap_or_default().to_string();
        let mut routes: Vec<Route> = t.routes().iter().filter_map(route_of).collect();
        routes.sort();
        Observed {
            outputs: vec![("id", json!(rtb_id))],
            physical_id: rtb_id,
            attrs: Attrs {
                name: ec2::name_tag(t.tags()).unwrap_or_default(),
                vpc: t.vpc_id().unwrap_or_default().to_string(),
                routes,
                subnets: in_effect(t)
                    .filter_map(|a| a.subnet_id())
                    .map(String::from)
                    .collect(),
            },
        }
    }

    async fn create(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        a: &Attrs,
        _: &(),
    ) -> Result<AwsRouteTable, Error> {
        let tags = ec2::tag_spec(
            ResourceType::RouteTable,
            &common::tags(cx.stack, cx.id, &a.name),
        );
        // The token guards the SDK's own retries of this one call. It is unique per
        // attempt on purpose: EC2 answers a reused token with the table it made then,
        // even after a destroy, and a later run finds an earlier table by its tags.
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let token = common::client_token(
            cx.stack,
            cx.id,
            &json!({ "vpc": a.vpc, "attempt": nonce.to_string() }),
        );
        let out = aws
            .ec2
            .create_route_table()
            .vpc_id(&a.vpc)
            .client_token(token)
            .tag_specifications(tags.clone())
            .send()
            .await?;
        let rtb_id = out
            .route_table()
            .and_then(AwsRouteTable::route_table_id)
            .ok_or_else(|| Error::Invalid("CreateRouteTable returned no route table id".into()))?
            .to_string();
        // From here the table is found by its tags: if a step below fails, the next
        // plan shows the missing routes or subnets and update adds them.
        converge_routes(aws, cx, &rtb_id, &[], &a.routes).await?;
        converge_subnets(aws, cx, &rtb_id, &BTreeMap::new(), &a.subnets).await?;
        Ok(as_made(&rtb_id, tags.tags, a))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<AwsRouteTable>, Error> {
        let rtb_id = &live.physical_id;
        if changed.has("routes") {
            let now = typed::attrs_of::<Self>(live)?;
            converge_routes(aws, cx, rtb_id, &now.routes, &a.routes).await?;
        }
        if changed.has("subnets") {
            // Disassociating needs the association ids, which only a fresh read has.
            let table = describe(aws, rtb_id)
                .await?
                .ok_or_else(|| Error::Conflict(format!("route table {rtb_id} no longer exists")))?;
            converge_subnets(aws, cx, rtb_id, &associations(&table), &a.subnets).await?;
        }
        if changed.has("name") {
            set_name_tag(aws, rtb_id, &a.name).await?;
        }
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let rtb_id = &live.physical_id;
        let Some(table) = describe(aws, rtb_id).await? else {
            return Ok(());
        };
        if table.associations().iter().any(|a| a.main() == Some(true)) {
            return Err(Error::Conflict(format!(
                "{rtb_id} is the main route table of its VPC and cannot be deleted; make another table the main one first"
            )));
        }
        converge_subnets(aws, cx, rtb_id, &associations(&table), &[]).await?;
        ec2::delete_retrying(
            cx,
            Duration::from_secs(120),
            "subnets are still being disassociated",
            || async {
                aws.ec2
                    .delete_route_table()
                    .route_table_id(rtb_id)
                    .send()
                    .await?;
                Ok(())
            },
        )
        .await
    }
}

/// IPv4 / IPv6 CIDR in canonical form (AWS prints IPv6 compressed and lower-case);
/// prefix lists (`pl-…`) as they are.
fn canonical_destination(s: &str) -> Result<String, String> {
    if s.starts_with("pl-") {
        return Ok(s.to_string());
    }
    if s.contains(':') {
        let net: ipnet::Ipv6Net = s
            .parse()
            .map_err(|_| format!("`{s}` is not a valid CIDR block (like 0.0.0.0/0 or ::/0)"))?;
        if net.network() != net.addr() {
            return Err(format!(
                "`{s}` has host bits set; the network address is {}",
                net.trunc()
            ));
        }
        return Ok(net.to_string());
    }
    common::parse_cidr(s).map(|n| n.to_string())
}

/// The destination of a route request: IPv6, prefix list or IPv4.
macro_rules! with_destination {
    ($b:expr, $dest:expr) => {{
        let d: &str = &$dest;
        if d.starts_with("pl-") {
            $b.destination_prefix_list_id(d)
        } else if d.contains(':') {
            $b.destination_ipv6_cidr_block(d)
        } else {
            $b.destination_cidr_block(d)
        }
    }};
}

/// The target of a route request: one setter per entry of [`TARGETS`].
macro_rules! with_target {
    ($b:expr, $route:expr) => {{
        let r: &Route = $route;
        $b.set_gateway_id(r.gateway.clone())
    }};
}

/// Adds every missing route, changes the ones with another target, then removes the
/// ones not wanted (adding first keeps a changed destination reachable throughout).
async fn converge_routes(
    aws: &Aws,
    cx: &OpCx<'_>,
    rtb_id: &str,
    now: &[Route],
    want: &[Route],
) -> Result<(), Error> {
    let now_by: BTreeMap<&str, &Route> = now.iter().map(|r| (r.destination.as_str(), r)).collect();
    let want_dest: BTreeSet<&str> = want.iter().map(|r| r.destination.as_str()).collect();
    for w in want {
        match now_by.get(w.destination.as_str()) {
            None => create_route(aws, cx, rtb_id, w).await?,
            Some(n) if *n != w => replace_route(aws, rtb_id, w).await?,
            Some(_) => {}
        }
    }
    for n in now
        .iter()
        .filter(|n| !want_dest.contains(n.destination.as_str()))
    {
        let r = with_destination!(aws.ec2.delete_route().route_table_id(rtb_id), n.destination)
            .send()
            .await
            .map_err(Error::from);
        if found(r)?.is_some() {
            cx.note(format!("removed the route to {}", n.destination));
        }
    }
    Ok(())
}

async fn create_route(aws: &Aws, cx: &OpCx<'_>, rtb_id: &str, r: &Route) -> Result<(), Error> {
    let res = common::retry_on(
        cx,
        &[
            "InvalidRouteTableID.NotFound",
            "InvalidInternetGatewayID.NotFound",
            "InvalidGatewayID.NotFound",
        ],
        Duration::from_secs(60),
        "the new route table or its target is not visible yet",
        || async {
            let b = with_destination!(aws.ec2.create_route().route_table_id(rtb_id), r.destination);
            with_target!(b, r).send().await?;
            Ok(())
        },
    )
    .await;
    match res {
        // Made by an earlier, interrupted attempt (maybe with another target).
        Err(e) if e.is_code(&["RouteAlreadyExists"]) => replace_route(aws, rtb_id, r).await,
        other => other,
    }
}

async fn replace_route(aws: &Aws, rtb_id: &str, r: &Route) -> Result<(), Error> {
    let b = with_destination!(
        aws.ec2.replace_route().route_table_id(rtb_id),
        r.destination
    );
    with_target!(b, r).send().await?;
    Ok(())
}

/// Associates the wanted subnets and disassociates the others. `now` maps each
/// associated subnet to its association id.
async fn converge_subnets(
    aws: &Aws,
    cx: &OpCx<'_>,
    rtb_id: &str,
    now: &BTreeMap<String, String>,
    want: &[String],
) -> Result<(), Error> {
    for s in want.iter().filter(|s| !now.contains_key(*s)) {
        let r = common::retry_on(
            cx,
            &["InvalidRouteTableID.NotFound", "InvalidSubnetID.NotFound"],
            Duration::from_secs(60),
            "the new route table or subnet is not visible yet",
            || async {
                aws.ec2
                    .associate_route_table()
                    .route_table_id(rtb_id)
                    .subnet_id(s)
                    .send()
                    .await?;
                Ok(())
            },
        )
        .await;
        match r {
            Err(e) if e.is_code(&["Resource.AlreadyAssociated"]) => {
                take_over(aws, cx, rtb_id, s, e).await?
            }
            other => other?,
        }
    }
    for (s, assoc) in now.iter().filter(|(s, _)| !want.contains(s)) {
        let r = aws
            .ec2
            .disassociate_route_table()
            .association_id(assoc)
            .send()
            .await
            .map_err(Error::from);
        if found(r)?.is_some() {
            cx.note(format!("disassociated {s}"));
        }
    }
    Ok(())
}

/// A subnet still associated with another table: moved over when that table is this
/// stack's (it is giving the subnet up in the same apply), refused otherwise.
async fn take_over(
    aws: &Aws,
    cx: &OpCx<'_>,
    rtb_id: &str,
    subnet: &str,
    err: Error,
) -> Result<(), Error> {
    let out = aws
        .ec2
        .describe_route_tables()
        .filters(
            Filter::builder()
                .name("association.subnet-id")
                .values(subnet)
                .build(),
        )
        .send()
        .await?;
    for t in out.route_tables() {
        let Some(assoc) = t
            .associations()
            .iter()
            .find(|a| a.subnet_id() == Some(subnet))
            .and_then(|a| a.route_table_association_id())
        else {
            continue;
        };
        let other = t.route_table_id().unwrap_or_default();
        if other == rtb_id {
            return Ok(());
        }
        if ec2::owned_id(t.tags(), cx.stack).is_none() {
            let name = ec2::name_tag(t.tags())
                .map(|n| format!(" `{n}`"))
                .unwrap_or_default();
            return Err(Error::Conflict(format!(
                "{subnet} is associated with route table {other}{name}, which this stack does not manage; disassociate it there first"
            )));
        }
        aws.ec2
            .replace_route_table_association()
            .association_id(assoc)
            .route_table_id(rtb_id)
            .send()
            .await?;
        cx.note(format!("moved {subnet} over from {other}"));
        return Ok(());
    }
    Err(err)
}

/// The table as made: its tags, routes and subnets (what a Describe would say of what
/// this stack manages, without making one).
fn as_made(rtb_id: &str, tags: Option<Vec<Tag>>, a: &Attrs) -> AwsRouteTable {
    let route = |r: &Route| {
        let b = with_destination!(AwsRoute::builder(), r.destination);
        with_target!(b, r).origin(RouteOrigin::CreateRoute).build()
    };
    AwsRouteTable::builder()
        .route_table_id(rtb_id)
        .vpc_id(&a.vpc)
        .set_tags(tags)
        .set_routes(Some(a.routes.iter().map(route).collect()))
        .set_associations(Some(
            a.subnets
                .iter()
                .map(|s| RouteTableAssociation::builder().subnet_id(s).build())
                .collect(),
        ))
        .build()
}

async fn describe(aws: &Aws, rtb_id: &str) -> Result<Option<AwsRouteTable>, Error> {
    let req = aws.ec2.describe_route_tables().route_table_ids(rtb_id);
    by_id!(req, route_tables)
}

/// The explicit subnet associations in effect.
fn in_effect(t: &AwsRouteTable) -> impl Iterator<Item = &RouteTableAssociation> {
    t.associations().iter().filter(|a| {
        !matches!(
            a.association_state().and_then(|s| s.state()),
            Some(
                RouteTableAssociationStateCode::Disassociated
                    | RouteTableAssociationStateCode::Disassociating
                    | RouteTableAssociationStateCode::Failed
            )
        )
    })
}

/// Subnet → association id, for the explicit subnet associations in effect.
fn associations(t: &AwsRouteTable) -> BTreeMap<String, String> {
    in_effect(t)
        .filter_map(|a| {
            Some((
                a.subnet_id()?.to_string(),
                a.route_table_association_id()?.to_string(),
            ))
        })
        .collect()
}

/// A route as securecart sees it: `None` for what is not ours to manage (the `local`
/// route, routes propagated from a VPN gateway or advertised by a route server).
fn route_of(r: &AwsRoute) -> Option<Route> {
    if r.origin().is_some_and(|o| *o != RouteOrigin::CreateRoute) || r.gateway_id() == Some("local")
    {
        return None;
    }
    let destination = r
        .destination_cidr_block()
        .or(r.destination_ipv6_cidr_block())
        .or(r.destination_prefix_list_id())?;
    let destination =
        canonical_destination(destination).unwrap_or_else(|_| destination.to_string());
    let gateway = r
        .gateway_id()
        .filter(|g| g.starts_with("igw-"))
        .map(str::to_string);
    let other_target = match gateway {
        Some(_) => None,
        None => [
            r.gateway_id(),
            r.nat_gateway_id(),
            r.transit_gateway_id(),
            r.vpc_peering_connection_id(),
            r.egress_only_internet_gateway_id(),
            r.network_interface_id(),
            r.instance_id(),
            r.local_gateway_id(),
            r.carrier_gateway_id(),
            r.core_network_arn(),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(str::to_string),
    };
    Some(Route {
        destination,
        gateway,
        other_target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::Kind;
    use aws_sdk_ec2::types::RouteTableAssociationState;

    const NET: &str = "
name: t
resources:
  main_vpc:
    type: vpc
    cidr_block: 10.0.0.0/16
  other_vpc:
    type: vpc
    cidr_block: 10.1.0.0/16
  igw:
    type: internet_gateway
    vpc: ${main_vpc}
  a:
    type: subnet
    vpc: ${main_vpc}
    cidr_block: 10.0.1.0/24
    availability_zone: us-east-1a
  far:
    type: subnet
    vpc: ${other_vpc}
    cidr_block: 10.1.1.0/24
    availability_zone: us-east-1a
";

    #[test]
    fn a_public_table_passes() {
        let p = problems(&format!(
            "{NET}
  public:
    type: route_table
    vpc: ${{main_vpc}}
    routes:
      - destination: 0.0.0.0/0
        gateway: ${{igw}}
    subnets: [\"${{a}}\", subnet-0abc]
"
        ));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn routes_and_subnets_are_checked() {
        let p = problems(&format!(
            "{NET}
  public:
    type: route_table
    vpc: ${{main_vpc}}
    routes:
      - destination: 0.0.0.0/0
        gateway: ${{igw}}
      - destination: 0.0.0.0/0
        gateway: igw-1
      - destination: 10.2.0.1/16
        gateway: ${{a}}
      - destination: 10.3.0.0/16
    subnets: [\"${{a}}\", \"${{a.id}}\", \"${{far}}\"]
  again:
    type: route_table
    vpc: ${{main_vpc}}
    subnets: [\"${{a}}\"]
  elsewhere:
    type: route_table
    vpc: ${{other_vpc}}
    routes:
      - destination: 0.0.0.0/0
        gateway: ${{igw}}
"
        ));
        let all = p.join("\n");
        assert!(
            all.contains("routes[1].destination: routes[0] already routes 0.0.0.0/0"),
            "{all}"
        );
        assert!(
            all.contains("routes[2].destination: `10.2.0.1/16` has host bits"),
            "{all}"
        );
        assert!(
            all.contains("routes[2].gateway: `${a}` refers to `a` (type subnet)"),
            "{all}"
        );
        assert!(all.contains("routes[3]: the route has no target"), "{all}");
        assert!(
            all.contains("subnets[1]: `${a.id}` is already listed as subnets[0]"),
            "{all}"
        );
        assert!(
            all.contains("subnets[2]: `${far}` is in VPC `${other_vpc}`"),
            "{all}"
        );
        assert!(
            all.contains("again.subnets[0]: `${a}` already uses route table `public`"),
            "{all}"
        );
        assert!(
            all.contains("elsewhere.routes[0].gateway: `${igw}` belongs to VPC `${main_vpc}`"),
            "{all}"
        );
        assert_eq!(p.len(), 8, "{all}");
    }

    #[test]
    fn desired_matches_read_and_ignores_the_local_route() {
        let d = Typed(RouteTable)
            .desired(
                "dev",
                "public",
                &json!({"vpc": "vpc-1", "subnets": ["subnet-b", "subnet-a"], "routes": [
                    {"destination": "2001:DB8::/32", "gateway": "igw-1"},
                    {"destination": "0.0.0.0/0", "gateway": "igw-1"},
                ]}),
            )
            .unwrap();
        let assoc = |s: &str| {
            RouteTableAssociation::builder()
                .subnet_id(s)
                .route_table_association_id(format!("rtbassoc-{s}"))
                .association_state(
                    RouteTableAssociationState::builder()
                        .state(RouteTableAssociationStateCode::Associated)
                        .build(),
                )
                .build()
        };
        let t = AwsRouteTable::builder()
            .route_table_id("rtb-1")
            .vpc_id("vpc-1")
            .tags(Tag::builder().key("Name").value("dev-public").build())
            .routes(
                AwsRoute::builder()
                    .destination_cidr_block("10.0.0.0/16")
                    .gateway_id("local")
                    .origin(RouteOrigin::CreateRouteTable)
                    .build(),
            )
            .routes(
                AwsRoute::builder()
                    .destination_ipv6_cidr_block("2001:db8::/32")
                    .gateway_id("igw-1")
                    .origin(RouteOrigin::CreateRoute)
                    .build(),
            )
            .routes(
                AwsRoute::builder()
                    .destination_cidr_block("0.0.0.0/0")
                    .gateway_id("igw-1")
                    .origin(RouteOrigin::CreateRoute)
                    .build(),
            )
            .associations(assoc("subnet-a"))
            .associations(assoc("subnet-b"))
            .associations(
                RouteTableAssociation::builder()
                    .main(true)
                    .route_table_association_id("rtbassoc-main")
                    .build(),
            )
            .build();
        let o = RouteTable.observe(&t);
        assert_eq!(d, json!(o.attrs));
        assert_eq!(o.outputs, vec![("id", json!("rtb-1"))]);
        // What create returns reads the same.
        let made = RouteTable.observe(&as_made("rtb-1", t.tags.clone(), &o.attrs));
        assert_eq!(d, json!(made.attrs));
    }

    #[test]
    fn foreign_targets_show_up_so_they_can_be_removed() {
        let r = AwsRoute::builder()
            .destination_cidr_block("10.9.0.0/16")
            .nat_gateway_id("nat-1")
            .build();
        let got = route_of(&r).unwrap();
        assert_eq!(got.other_target.as_deref(), Some("nat-1"));
        assert_eq!(
            json!(got),
            json!({"destination": "10.9.0.0/16", "other_target": "nat-1"})
        );
        let propagated = AwsRoute::builder()
            .destination_cidr_block("10.8.0.0/16")
            .gateway_id("vgw-1")
            .origin(RouteOrigin::EnableVgwRoutePropagation)
            .build();
        assert!(route_of(&propagated).is_none());
    }
}
