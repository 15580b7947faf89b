//! `subnet`: an IPv4 range of a VPC in one availability zone.

use super::{IN_STACK_VPC, SUBNET_ARN};
use crate::resources::access::{Access, When};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, ResourceType, Subnet as AwsSubnet, SubnetState,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::{by_id, earlier, set_name_tag, tagged};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, ec2, parse, Error};
use crate::resources::fields::{check_id_ref, check_zone, has_ref, ref_key};
use crate::resources::typed::{
    Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct Subnet;

/// A subnet of a VPC.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// The VPC the subnet belongs to: a reference like `${main_vpc}` or an existing VPC id
    /// (`vpc-…`). Changing it replaces the subnet.
    vpc: String,
    /// IPv4 range of the subnet, /16 to /28, inside the VPC's range and not overlapping
    /// the VPC's other subnets. Changing it replaces the subnet.
    cidr_block: String,
    /// Availability zone: `${stack.zones[0]}` (the region's first zone, so the blueprint
    /// works in any region), or a name like `us-east-1a`. Changing it replaces the subnet.
    availability_zone: String,
    /// Give instances launched here a public IPv4 address. Only for public subnets
    /// (security baseline: CKV_AWS_88 / EC2.25 want none on application instances).
    #[serde(default)]
    map_public_ip_on_launch: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    vpc: String,
    cidr_block: String,
    availability_zone: String,
    map_public_ip_on_launch: bool,
}

#[async_trait]
impl Resource for Subnet {
    const KIND: &'static str = "subnet";
    const ACCESS: &'static [&'static [Access]] = &[&[
        Access::read(&["ec2:DescribeSubnets", "ec2:DescribeNetworkInterfaces"]),
        Access::change(&["ec2:CreateSubnet"], &[SUBNET_ARN]).when(When::RequestTagged),
        Access {
            actions: &["ec2:CreateSubnet"],
            ..IN_STACK_VPC
        },
        Access::change(&["ec2:CreateTags"], &[SUBNET_ARN])
            .when(When::TagOnCreate(&["CreateSubnet"])),
        Access::change(
            &["ec2:ModifySubnetAttribute", "ec2:CreateTags"],
            &[SUBNET_ARN],
        )
        .when(When::ResourceTagged),
        Access::delete(&["ec2:DeleteSubnet"], &[SUBNET_ARN]).when(When::ResourceTagged),
    ]];
    const ZONE_FIELDS: &'static [&'static str] = &["availability_zone"];
    const ATTRIBUTES: &'static [&'static str] = &["id", "cidr_block", "availability_zone", "arn"];
    const REPLACE_ON: &'static [&'static str] = &["vpc", "cidr_block", "availability_zone"];
    /// CreateSubnet takes no ClientToken; a second try fails with a CIDR conflict, and a
    /// subnet of the range carrying our tags is then the one the first try made.
    const ADOPT: Adopt = Adopt::OnCodes(&["InvalidSubnet.Conflict"]);

    /// Typical time on AWS: CreateSubnet, then a short wait while the new subnet is `pending`;
    /// a delete may retry briefly on ENIs being released.
    const TYPICAL: Typical = Typical {
        create: 3,
        update: 2,
        delete: 5,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    /// The subnet and its region (for the ARN of answers that carry none).
    type Raw = (AwsSubnet, String);

    fn check(&self, id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut issues = Vec::new();
        issues.extend(check_id_ref("vpc", &f.vpc, cx, "vpc", "vpc-"));
        issues.extend(check_zone("availability_zone", &f.availability_zone));
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
        for other in earlier(cx, id, "subnet") {
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

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let a = Attrs {
            name: format!("{}-{}", site.stack, site.id),
            vpc: f.vpc,
            cidr_block: f.cidr_block,
            availability_zone: f.availability_zone,
            map_public_ip_on_launch: f.map_public_ip_on_launch,
        };
        Ok((a, ()))
    }

    /// Subnets are known by their range: a refusal names it.
    fn label(&self, a: &Attrs) -> String {
        format!("a subnet with range {} in {}", a.cidr_block, a.vpc)
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let subnets = tagged!(aws.ec2.describe_subnets(), stack)?;
        Ok(subnets
            .into_iter()
            .map(|(id, s)| (id, (s, aws.region.clone())))
            .collect())
    }

    /// After a CIDR conflict: the subnets of the VPC, for this stack's subnet of the range
    /// or, failing that, what is in the way.
    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let out = aws
            .ec2
            .describe_subnets()
            .filters(Filter::builder().name("vpc-id").values(&a.vpc).build())
            .send()
            .await?;
        meet(out.subnets(), stack, a, &aws.region)
    }

    fn observe(&self, (s, region): &Self::Raw) -> Observed<Attrs> {
        let attrs = Attrs {
            name: ec2::name_tag(s.tags()).unwrap_or_default(),
            vpc: s.vpc_id().unwrap_or_default().to_string(),
            cidr_block: s.cidr_block().unwrap_or_default().to_string(),
            availability_zone: s.availability_zone().unwrap_or_default().to_string(),
            map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
        };
        let subnet_id = s.subnet_id().unwrap_or_default().to_string();
        let arn = (s.subnet_arn().map(str::to_string))
            .unwrap_or_else(|| super::arn(region, s.owner_id(), "subnet", &subnet_id));
        Observed {
            outputs: vec![
                ("id", json!(subnet_id)),
                ("cidr_block", json!(attrs.cidr_block)),
                ("availability_zone", json!(attrs.availability_zone)),
                ("arn", json!(arn)),
            ],
            physical_id: subnet_id,
            attrs,
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
            .create_subnet()
            .vpc_id(&a.vpc)
            .cidr_block(&a.cidr_block)
            .availability_zone(&a.availability_zone)
            .tag_specifications(ec2::tag_spec(ResourceType::Subnet, &tags))
            .send()
            .await?;
        let subnet_id = out
            .subnet()
            .and_then(AwsSubnet::subnet_id)
            .ok_or_else(|| Error::Invalid("CreateSubnet returned no subnet id".into()))?
            .to_string();
        let mut subnet = common::wait_for(
            cx,
            "the subnet to be available",
            Duration::from_secs(300),
            || async {
                // Just-created subnets can be briefly invisible to Describe.
                let req = aws.ec2.describe_subnets().subnet_ids(&subnet_id);
                let subnet = by_id!(req, subnets)?;
                Ok(subnet.filter(|s| s.state() != Some(&SubnetState::Pending)))
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
            subnet.map_public_ip_on_launch = Some(a.map_public_ip_on_launch);
        }
        Ok((subnet, aws.region.clone()))
    }

    async fn update(
        &self,
        aws: &Aws,
        _cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<Self::Raw>, Error> {
        if changed.has("map_public_ip_on_launch") {
            set_map_public_ip(aws, &live.physical_id, a.map_public_ip_on_launch).await?;
        }
        if changed.has("name") {
            set_name_tag(aws, &live.physical_id, &a.name).await?;
        }
        Ok(None)
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
                    .await?;
                Ok(())
            },
        )
        .await
    }
}

/// Of a VPC's subnets, the one of this stack with the wanted range (what an earlier try
/// made, or this stack's under another id: the adapter tells them apart); else, when
/// others overlap the range, an error naming them so the user sees what is in the way.
fn meet(
    subnets: &[AwsSubnet],
    stack: &str,
    a: &Attrs,
    region: &str,
) -> Result<Option<Found<(AwsSubnet, String)>>, Error> {
    let mut in_the_way = Vec::new();
    for s in subnets {
        let owner = ec2::owned_id(s.tags(), stack);
        if owner.is_some() && s.cidr_block() == Some(a.cidr_block.as_str()) {
            return Ok(Some(Found {
                owner,
                raw: (s.clone(), region.to_string()),
            }));
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
        return Ok(None);
    }
    Err(Error::Conflict(format!(
        "{} overlaps {} in {}",
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
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::{Kind, TEST_REGION};
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
        let d = Typed(Subnet)
            .desired("dev", "a", &json!({"vpc": "vpc-1", "cidr_block": "10.0.1.0/24", "availability_zone": "us-east-1a"}))
            .unwrap();
        let s = subnet("subnet-1", "10.0.1.0/24", &[("Name", "dev-a")]);
        let o = Subnet.observe(&(s, "us-east-1".to_string()));
        assert_eq!(d, serde_json::to_value(&o.attrs).unwrap());
        assert_eq!(o.physical_id, "subnet-1");
        let arn = o.outputs.iter().find(|(k, _)| *k == "arn").map(|(_, v)| v);
        assert_eq!(arn, Some(&json!("arn:aws:ec2:us-east-1::subnet/subnet-1")));
    }

    fn subnet(id: &str, cidr: &str, tags: &[(&str, &str)]) -> AwsSubnet {
        let mut b = AwsSubnet::builder()
            .subnet_id(id)
            .vpc_id("vpc-1")
            .cidr_block(cidr)
            .availability_zone("us-east-1a")
            .map_public_ip_on_launch(false);
        for (k, v) in tags {
            b = b.tags(Tag::builder().key(*k).value(*v).build());
        }
        b.build()
    }

    #[test]
    fn a_conflict_finds_our_earlier_subnet_or_names_what_is_in_the_way() {
        let (a, ()) = Subnet
            .desired(
                &Site { stack: "dev", region: TEST_REGION, id: "a", dir: std::path::Path::new(".") },
                serde_json::from_value(json!({"vpc": "vpc-1", "cidr_block": "10.0.1.0/24", "availability_zone": "us-east-1a"})).unwrap(),
            )
            .unwrap();
        let theirs = subnet("subnet-9", "10.0.0.0/20", &[("Name", "legacy")]);
        let ours = subnet(
            "subnet-1",
            "10.0.1.0/24",
            &[("securecart:stack", "dev"), ("securecart:resource", "a")],
        );
        let unrelated = subnet("subnet-5", "10.0.64.0/24", &[]);
        let f = meet(&[theirs.clone(), ours], "dev", &a, "us-east-1")
            .unwrap()
            .unwrap();
        assert_eq!(f.owner.as_deref(), Some("a"));
        assert_eq!(f.raw.0.subnet_id(), Some("subnet-1"));
        let Err(e) = meet(&[unrelated.clone(), theirs], "dev", &a, "us-east-1") else {
            panic!("a foreign subnet in the way must be named");
        };
        let e = e.to_string();
        assert!(
            e.contains("10.0.1.0/24 overlaps subnet-9 `legacy` (10.0.0.0/20) in vpc-1"),
            "{e}"
        );
        assert!(meet(&[unrelated], "dev", &a, "us-east-1")
            .unwrap()
            .is_none());
    }

    #[test]
    fn zone_names_and_ids() {
        use crate::resources::fields::looks_like_zone;
        assert!(looks_like_zone("us-east-1a"));
        assert!(looks_like_zone("us-west-2-lax-1b"));
        assert!(looks_like_zone("use1-az1") && looks_like_zone("apne1-az4"));
        assert!(!looks_like_zone("us-east-1") && !looks_like_zone("use1-az"));
        assert!(!looks_like_zone("US-EAST-1A"));
    }
}
