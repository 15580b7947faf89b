//! `subnet`: an IPv4 range of a VPC in one availability zone. Also home of the checks
//! and calls the network kinds share (references to ids, the Name tag).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, ResourceType, Subnet as AwsSubnet, SubnetState,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::set_name_tag;
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, aws_error, ec2, parse, Error};
use crate::resources::fields::{check_id_ref, has_ref, ref_key};
use crate::resources::{Kind, Live, OpCx};

pub struct Subnet;

/// A subnet of a VPC.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Fields {
    /// The VPC the subnet belongs to: a reference like `${main_vpc}` or an existing VPC id
    /// (`vpc-…`). Changing it replaces the subnet.
    vpc: String,
    /// IPv4 range of the subnet, /16 to /28, inside the VPC's range and not overlapping
    /// the VPC's other subnets. Changing it replaces the subnet.
    cidr_block: String,
    /// Availability zone, like `us-east-1a` or `${stack.region}a`. Changing it replaces
    /// the subnet.
    availability_zone: String,
    /// Give instances launched here a public IPv4 address. Only for public subnets
    /// (security baseline: CKV_AWS_88 / EC2.25 want none on application instances).
    #[serde(default)]
    map_public_ip_on_launch: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Attrs {
    name: String,
    vpc: String,
    cidr_block: String,
    availability_zone: String,
    map_public_ip_on_launch: bool,
}

#[async_trait]
impl Kind for Subnet {
    fn name(&self) -> &'static str {
        "subnet"
    }

    fn attributes(&self) -> &'static [&'static str] {
        &["id", "cidr_block", "availability_zone", "arn"]
    }

    fn schema(&self) -> Json {
        common::schema_of::<Fields>()
    }

    fn check(&self, id: &str, config: &Json, cx: &CheckCx) -> Vec<Issue> {
        let f: Fields = match parse(config) {
            Ok(f) => f,
            Err(i) => return vec![i],
        };
        let mut issues = Vec::new();
        issues.extend(check_id_ref("vpc", &f.vpc, cx, "vpc", "vpc-"));
        if !has_ref(&f.availability_zone) && !looks_like_az(&f.availability_zone) {
            issues.push(
                Issue::new("availability_zone", format!("`{}` is not an availability zone name", f.availability_zone))
                    .help("use a zone name like `us-east-1a`, or `${stack.region}a` to follow the stack's region"),
            );
        }
        if has_ref(&f.cidr_block) {
            return issues;
        }
        let net = match common::parse_cidr(&f.cidr_block) {
            Ok(n) => n,
            Err(e) => {
                issues.push(Issue::new("cidr_block", e));
                return issues;
            }
        };
        if !(16..=28).contains(&net.prefix_len()) {
            issues.push(Issue::new(
                "cidr_block",
                format!(
                    "a subnet block must be /16 to /28, not /{}",
                    net.prefix_len()
                ),
            ));
            return issues;
        }
        if let Some(vpc) = cx.referenced(&f.vpc).filter(|r| r.kind == "vpc") {
            let vpc_net = vpc
                .config
                .get("cidr_block")
                .and_then(Json::as_str)
                .and_then(|s| common::parse_cidr(s).ok());
            if let Some(vpc_net) = vpc_net {
                if !vpc_net.contains(&net) {
                    issues.push(Issue::new(
                        "cidr_block",
                        format!("{net} is outside the range of VPC `{}` ({vpc_net})", vpc.id),
                    ));
                }
            }
        }
        // Only earlier subnets: an overlap is reported once, on the later of the two.
        let key = ref_key(&f.vpc);
        for other in cx.resources.values().take_while(|r| r.id != id) {
            if other.kind != "subnet" {
                continue;
            }
            let Ok(o) = parse::<Fields>(&other.config) else {
                continue;
            };
            if ref_key(&o.vpc) != key {
                continue;
            }
            let Ok(onet) = common::parse_cidr(&o.cidr_block) else {
                continue;
            };
            if onet.contains(&net) || net.contains(&onet) {
                issues.push(Issue::new(
                    "cidr_block",
                    format!(
                        "{net} overlaps subnet `{}` ({onet}) in the same VPC",
                        other.id
                    ),
                ));
            }
        }
        issues
    }

    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String> {
        let f: Fields = parse(config).map_err(|i| i.message)?;
        Ok(json!(Attrs {
            name: format!("{stack}-{id}"),
            vpc: f.vpc,
            cidr_block: f.cidr_block,
            availability_zone: f.availability_zone,
            map_public_ip_on_launch: f.map_public_ip_on_launch,
        }))
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &["vpc", "cidr_block", "availability_zone"]
    }

    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        let subnets = aws
            .ec2
            .describe_subnets()
            .filters(ec2::stack_filter(stack))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(aws_error("DescribeSubnets"))?;
        Ok(subnets
            .iter()
            .filter_map(|s| {
                let id = ec2::owned_id(s.tags(), stack)?;
                Some(live(id, s, &aws.region))
            })
            .collect())
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let tags = common::tags(cx.stack, cx.id, &a.name);
        // CreateSubnet takes no ClientToken; a second try fails with a CIDR conflict,
        // and a subnet carrying our tags is then the one the first try made.
        let created = aws
            .ec2
            .create_subnet()
            .vpc_id(&a.vpc)
            .cidr_block(&a.cidr_block)
            .availability_zone(&a.availability_zone)
            .tag_specifications(ec2::tag_spec(ResourceType::Subnet, &tags))
            .send()
            .await
            .map_err(aws_error("CreateSubnet"));
        let subnet_id = match created {
            Ok(out) => out
                .subnet()
                .and_then(AwsSubnet::subnet_id)
                .ok_or_else(|| Error::Invalid("CreateSubnet returned no subnet id".into()))?
                .to_string(),
            Err(e) if e.is_code(&["InvalidSubnet.Conflict"]) => {
                adopt_or_explain(aws, cx, &a, e).await?
            }
            Err(e) => return Err(e),
        };
        let subnet = common::wait_for(
            cx,
            "the subnet to be available",
            Duration::from_secs(300),
            || async {
                match describe_one(aws, &subnet_id).await {
                    // Just-created subnets can be briefly invisible to Describe.
                    Err(e) if ec2::not_found(e.code()) => Ok(None),
                    Err(e) => Err(e),
                    Ok(s) => Ok(s.filter(|s| s.state() != Some(&SubnetState::Pending))),
                }
            },
        )
        .await?;
        if subnet.state() != Some(&SubnetState::Available) {
            let state = subnet.state().map(|s| s.as_str()).unwrap_or("unknown");
            return Err(Error::Conflict(format!(
                "subnet {subnet_id} is `{state}` instead of available"
            )));
        }
        if subnet.map_public_ip_on_launch().unwrap_or(false) != a.map_public_ip_on_launch {
            set_map_public_ip(aws, &subnet_id, a.map_public_ip_on_launch).await?;
        }
        let mut l = live(cx.id.to_string(), &subnet, &aws.region);
        l.attrs = json!(a);
        Ok(l)
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        desired: &Json,
        changed: &[String],
    ) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let has = |f: &str| changed.iter().any(|c| c == f);
        if has("map_public_ip_on_launch") {
            set_map_public_ip(aws, &live.physical_id, a.map_public_ip_on_launch).await?;
        }
        if has("name") {
            set_name_tag(aws, &live.physical_id, &a.name).await?;
        }
        let mut l = live.clone();
        l.id = cx.id.to_string();
        l.attrs = json!(a);
        Ok(l)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        super::delete_while_in_use(
            aws,
            cx,
            "subnet",
            "subnet-id",
            &live.physical_id,
            || async {
                aws.ec2
                    .delete_subnet()
                    .subnet_id(&live.physical_id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(aws_error("DeleteSubnet"))
            },
        )
        .await
    }
}

async fn describe_one(aws: &Aws, subnet_id: &str) -> Result<Option<AwsSubnet>, Error> {
    let out = aws
        .ec2
        .describe_subnets()
        .subnet_ids(subnet_id)
        .send()
        .await
        .map_err(aws_error("DescribeSubnets"))?;
    Ok(out.subnets().first().cloned())
}

/// After a CIDR conflict: our own subnet from an earlier try is adopted; anything else
/// is named so the user can see what is in the way.
async fn adopt_or_explain(
    aws: &Aws,
    cx: &OpCx<'_>,
    a: &Attrs,
    err: Error,
) -> Result<String, Error> {
    let out = aws
        .ec2
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(&a.vpc).build())
        .send()
        .await
        .map_err(aws_error("DescribeSubnets"))?;
    let mut in_the_way = Vec::new();
    for s in out.subnets() {
        let ours = ec2::owned_id(s.tags(), cx.stack).as_deref() == Some(cx.id);
        if ours && s.cidr_block() == Some(a.cidr_block.as_str()) {
            cx.note("found the subnet an earlier attempt created");
            return Ok(s.subnet_id().unwrap_or_default().to_string());
        }
        let (Some(cidr), Ok(want)) = (s.cidr_block(), common::parse_cidr(&a.cidr_block)) else {
            continue;
        };
        if let Ok(net) = common::parse_cidr(cidr) {
            if net.contains(&want) || want.contains(&net) {
                let name = ec2::name_tag(s.tags())
                    .map(|n| format!(" `{n}`"))
                    .unwrap_or_default();
                in_the_way.push(format!("{}{name} ({cidr})", s.subnet_id().unwrap_or("?")));
            }
        }
    }
    if in_the_way.is_empty() {
        return Err(err);
    }
    Err(Error::Conflict(format!(
        "{} overlaps {} in {}: {err}",
        a.cidr_block,
        in_the_way.join(", "),
        a.vpc
    )))
}

async fn set_map_public_ip(aws: &Aws, subnet_id: &str, on: bool) -> Result<(), Error> {
    aws.ec2
        .modify_subnet_attribute()
        .subnet_id(subnet_id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map(|_| ())
        .map_err(aws_error("ModifySubnetAttribute"))
}

fn live(id: String, s: &AwsSubnet, region: &str) -> Live {
    let subnet_id = s.subnet_id().unwrap_or_default().to_string();
    let attrs = Attrs {
        name: ec2::name_tag(s.tags()).unwrap_or_default(),
        vpc: s.vpc_id().unwrap_or_default().to_string(),
        cidr_block: s.cidr_block().unwrap_or_default().to_string(),
        availability_zone: s.availability_zone().unwrap_or_default().to_string(),
        map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
    };
    let arn = s.subnet_arn().map(str::to_string).unwrap_or_else(|| {
        format!(
            "arn:aws:ec2:{region}:{}:subnet/{subnet_id}",
            s.owner_id().unwrap_or_default()
        )
    });
    let outputs = [
        ("id".to_string(), json!(subnet_id)),
        ("cidr_block".to_string(), json!(attrs.cidr_block)),
        (
            "availability_zone".to_string(),
            json!(attrs.availability_zone),
        ),
        ("arn".to_string(), json!(arn)),
    ]
    .into_iter()
    .collect();
    Live {
        id,
        kind: "subnet",
        physical_id: subnet_id,
        attrs: json!(attrs),
        outputs,
    }
}

// ---- Shared by the network kinds -------------------------------------------------

/// Names like `us-east-1a` or `us-west-2-lax-1a`: a region, a number, a zone letter.
fn looks_like_az(s: &str) -> bool {
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let mut rev = s.chars().rev();
    let letter = rev.next().is_some_and(|c| c.is_ascii_lowercase());
    let digit = rev.next().is_some_and(|c| c.is_ascii_digit());
    ok_chars && letter && digit && s.contains('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use aws_sdk_ec2::types::Tag;

    const NET: &str = "
name: t
resources:
  main_vpc:
    type: vpc
    cidr_block: 10.0.0.0/16
";

    fn with(extra: &str) -> Vec<String> {
        problems(&format!("{NET}{extra}"))
    }

    #[test]
    fn a_good_subnet_passes() {
        let p = with(
            "
  a:
    type: subnet
    vpc: ${main_vpc}
    cidr_block: 10.0.1.0/24
    availability_zone: ${stack.region}a
  b:
    type: subnet
    vpc: ${main_vpc.id}
    cidr_block: 10.0.2.0/24
    availability_zone: us-east-1b
    map_public_ip_on_launch: true
",
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn subnet_must_lie_inside_its_vpc() {
        let p = with(
            "
  a:
    type: subnet
    vpc: ${main_vpc}
    cidr_block: 10.1.0.0/24
    availability_zone: us-east-1a
",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("10.1.0.0/24")
                && p[0].contains("10.0.0.0/16")
                && p[0].contains("main_vpc"),
            "{p:?}"
        );
    }

    #[test]
    fn overlapping_subnets_are_reported_on_the_later_one() {
        let p = with(
            "
  a:
    type: subnet
    vpc: ${main_vpc}
    cidr_block: 10.0.0.0/20
    availability_zone: us-east-1a
  b:
    type: subnet
    vpc: ${main_vpc.id}
    cidr_block: 10.0.1.0/24
    availability_zone: us-east-1b
  other_vpc_same_range:
    type: subnet
    vpc: vpc-0123
    cidr_block: 10.0.1.0/24
    availability_zone: us-east-1b
",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("overlaps subnet `a` (10.0.0.0/20)"), "{p:?}");
    }

    #[test]
    fn bad_fields_are_explained() {
        let p = with(
            "
  a:
    type: subnet
    vpc: ${main_vpc.cidr_block}
    cidr_block: 10.0.1.7/24
    availability_zone: east
  b:
    type: subnet
    vpc: main_vpc
    cidr_block: 10.0.0.0/29
    availability_zone: us-east-1a
",
        );
        let all = p.join("\n");
        assert!(
            all.contains("needs the vpc's id, not its `cidr_block`"),
            "{all}"
        );
        assert!(all.contains("host bits"), "{all}");
        assert!(all.contains("not an availability zone"), "{all}");
        assert!(all.contains("`main_vpc` is not a vpc"), "{all}");
        assert!(all.contains("/16 to /28, not /29"), "{all}");
    }

    #[test]
    fn vpc_must_refer_to_a_vpc() {
        let p = with(
            "
  a:
    type: subnet
    vpc: ${main_vpc}
    cidr_block: 10.0.1.0/24
    availability_zone: us-east-1a
  b:
    type: subnet
    vpc: ${a}
    cidr_block: 10.0.2.0/24
    availability_zone: us-east-1a
",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("refers to `a` (type subnet)"), "{p:?}");
    }

    #[test]
    fn desired_matches_the_shape_read_produces() {
        let d = Subnet
            .desired("dev", "a", &json!({"vpc": "vpc-1", "cidr_block": "10.0.1.0/24", "availability_zone": "us-east-1a"}))
            .unwrap();
        let s = AwsSubnet::builder()
            .subnet_id("subnet-1")
            .vpc_id("vpc-1")
            .cidr_block("10.0.1.0/24")
            .availability_zone("us-east-1a")
            .map_public_ip_on_launch(false)
            .tags(Tag::builder().key("Name").value("dev-a").build())
            .build();
        let l = live("a".into(), &s, "us-east-1");
        assert_eq!(d, l.attrs);
        assert_eq!(
            l.outputs["arn"],
            json!("arn:aws:ec2:us-east-1::subnet/subnet-1")
        );
    }

    #[test]
    fn zone_names() {
        assert!(looks_like_az("us-east-1a"));
        assert!(looks_like_az("us-west-2-lax-1b"));
        assert!(!looks_like_az("us-east-1"));
        assert!(!looks_like_az("use1-az1"));
    }
}
