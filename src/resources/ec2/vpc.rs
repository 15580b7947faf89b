//! `vpc`: an Amazon VPC with its IPv4 CIDR block and DNS settings.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, ResourceType, Vpc as AwsVpc, VpcAttributeName, VpcState,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{by_id, detach_gateway, set_name_tag, tagged};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, ec2, Error};
use crate::resources::typed::{Changed, Listed, Observed, Resource, Site, Typical};
use crate::resources::{Live, OpCx};

pub struct Vpc;

/// A VPC.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// IPv4 range of the VPC, /16 to /28. Changing it replaces the VPC.
    cidr_block: String,
    /// Resolve DNS through the Amazon-provided server.
    #[serde(default = "yes")]
    enable_dns_support: bool,
    /// Give instances public DNS hostnames.
    #[serde(default = "yes")]
    enable_dns_hostnames: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    cidr_block: String,
    enable_dns_support: bool,
    enable_dns_hostnames: bool,
}

/// A VPC as read, with what DescribeVpcs does not say: its DNS settings, and the region
/// its ARN names.
pub struct Read {
    vpc: AwsVpc,
    dns_support: bool,
    dns_hostnames: bool,
    region: String,
}

#[async_trait]
impl Resource for Vpc {
    const KIND: &'static str = "vpc";
    const ATTRIBUTES: &'static [&'static str] = &["id", "cidr_block", "arn"];
    const REPLACE_ON: &'static [&'static str] = &["cidr_block"];

    /// Typical time on AWS: One EC2 call each (plus DNS attribute calls); no waiter.
    const TYPICAL: Typical = Typical::API_CALL;

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    type Raw = Read;

    fn check(&self, _id: &str, f: &Fields, _cx: &CheckCx) -> Vec<Issue> {
        match common::parse_cidr(&f.cidr_block) {
            Err(e) => vec![Issue::new("cidr_block", e)],
            Ok(net) if !(16..=28).contains(&net.prefix_len()) => vec![Issue::new(
                "cidr_block",
                format!("a VPC block must be /16 to /28, not /{}", net.prefix_len()),
            )],
            Ok(_) => Vec::new(),
        }
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let a = Attrs {
            name: format!("{}-{}", site.stack, site.id),
            cidr_block: f.cidr_block,
            enable_dns_support: f.enable_dns_support,
            enable_dns_hostnames: f.enable_dns_hostnames,
        };
        Ok((a, ()))
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let mut out = Vec::new();
        for (id, v) in tagged!(aws.ec2.describe_vpcs(), stack)? {
            let vpc_id = v.vpc_id().unwrap_or_default().to_string();
            // DNS settings have no batched form: one DescribeVpcAttribute per setting.
            let support = dns_attribute(aws, &vpc_id, VpcAttributeName::EnableDnsSupport).await?;
            let hostnames =
                dns_attribute(aws, &vpc_id, VpcAttributeName::EnableDnsHostnames).await?;
            let region = aws.region.clone();
            out.push((
                id,
                Read {
                    vpc: v,
                    dns_support: support,
                    dns_hostnames: hostnames,
                    region,
                },
            ));
        }
        Ok(out)
    }

    fn observe(&self, r: &Read) -> Observed<Attrs> {
        let vpc_id = r.vpc.vpc_id().unwrap_or_default().to_string();
        let attrs = Attrs {
            name: ec2::name_tag(r.vpc.tags()).unwrap_or_default(),
            cidr_block: r.vpc.cidr_block().unwrap_or_default().to_string(),
            enable_dns_support: r.dns_support,
            enable_dns_hostnames: r.dns_hostnames,
        };
        Observed {
            outputs: vec![
                ("id", json!(vpc_id)),
                ("cidr_block", json!(attrs.cidr_block)),
                (
                    "arn",
                    json!(super::arn(&r.region, r.vpc.owner_id(), "vpc", &vpc_id)),
                ),
            ],
            physical_id: vpc_id,
            attrs,
        }
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, a: &Attrs, _: &()) -> Result<Read, Error> {
        let tags = common::tags(cx.stack, cx.id, &a.name);
        let out = aws
            .ec2
            .create_vpc()
            .cidr_block(&a.cidr_block)
            .tag_specifications(ec2::tag_spec(ResourceType::Vpc, &tags))
            .send()
            .await?;
        let vpc_id = out
            .vpc()
            .and_then(AwsVpc::vpc_id)
            .ok_or_else(|| Error::Invalid("CreateVpc returned no VPC".into()))?
            .to_string();
        let vpc = common::wait_for(
            cx,
            "the VPC to be available",
            Duration::from_secs(300),
            || async {
                // Just-created VPCs can be briefly invisible to Describe.
                let vpc = by_id!(aws.ec2.describe_vpcs().vpc_ids(&vpc_id), vpcs)?;
                Ok(vpc.filter(|v| v.state() == Some(&VpcState::Available)))
            },
        )
        .await?;
        set_dns(aws, &vpc_id, a, true, true).await?;
        Ok(Read {
            vpc,
            dns_support: a.enable_dns_support,
            dns_hostnames: a.enable_dns_hostnames,
            region: aws.region.clone(),
        })
    }

    async fn update(
        &self,
        aws: &Aws,
        _cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<Read>, Error> {
        let vpc_id = &live.physical_id;
        set_dns(
            aws,
            vpc_id,
            a,
            changed.has("enable_dns_support"),
            changed.has("enable_dns_hostnames"),
        )
        .await?;
        if changed.has("name") {
            set_name_tag(aws, vpc_id, &a.name).await?;
        }
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        detach_stack_gateways(aws, cx, &live.physical_id).await?;
        ec2::delete_retrying(
            cx,
            Duration::from_secs(300),
            "the VPC still has dependencies (network interfaces, gateways or subnets)",
            || async {
                aws.ec2
                    .delete_vpc()
                    .vpc_id(&live.physical_id)
                    .send()
                    .await?;
                Ok(())
            },
        )
        .await
    }
}

/// A replaced VPC goes before its internet gateway moves (the move is an in-place update
/// that needs the new VPC), and AWS refuses to delete a VPC with a gateway attached: so
/// this stack's gateways let go of it first. Gateways of others are left alone.
async fn detach_stack_gateways(aws: &Aws, cx: &OpCx<'_>, vpc_id: &str) -> Result<(), Error> {
    let igws = aws
        .ec2
        .describe_internet_gateways()
        .filters(ec2::stack_filter(cx.stack))
        .filters(
            Filter::builder()
                .name("attachment.vpc-id")
                .values(vpc_id)
                .build(),
        )
        .send()
        .await?;
    for igw in igws.internet_gateways() {
        let Some(id) = igw.internet_gateway_id() else {
            continue;
        };
        cx.note(format!("detaching internet gateway {id} first"));
        detach_gateway(aws, cx, id, vpc_id).await?;
    }
    Ok(())
}

async fn dns_attribute(aws: &Aws, vpc_id: &str, attr: VpcAttributeName) -> Result<bool, Error> {
    let out = aws
        .ec2
        .describe_vpc_attribute()
        .vpc_id(vpc_id)
        .attribute(attr.clone())
        .send()
        .await?;
    let v = match attr {
        VpcAttributeName::EnableDnsHostnames => out.enable_dns_hostnames(),
        _ => out.enable_dns_support(),
    };
    Ok(v.and_then(AttributeBooleanValue::value).unwrap_or(false))
}

/// ModifyVpcAttribute takes one attribute per call.
async fn set_dns(
    aws: &Aws,
    vpc_id: &str,
    a: &Attrs,
    support: bool,
    hostnames: bool,
) -> Result<(), Error> {
    let val = |b: bool| Some(AttributeBooleanValue::builder().value(b).build());
    for (set, support, hostnames) in [
        (support, val(a.enable_dns_support), None),
        (hostnames, None, val(a.enable_dns_hostnames)),
    ] {
        if set {
            aws.ec2
                .modify_vpc_attribute()
                .vpc_id(vpc_id)
                .set_enable_dns_support(support)
                .set_enable_dns_hostnames(hostnames)
                .send()
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::typed::Typed;
    use crate::resources::Kind;
    use aws_sdk_ec2::types::Tag;

    #[test]
    fn desired_matches_the_shape_read_produces() {
        let d = Typed(Vpc)
            .desired(
                "dev",
                "main",
                &json!({"cidr_block": "10.0.0.0/16", "enable_dns_hostnames": false}),
            )
            .unwrap();
        let v = AwsVpc::builder()
            .vpc_id("vpc-1")
            .owner_id("123")
            .cidr_block("10.0.0.0/16")
            .tags(Tag::builder().key("Name").value("dev-main").build())
            .build();
        let r = Read {
            vpc: v,
            dns_support: true,
            dns_hostnames: false,
            region: "us-east-1".into(),
        };
        let o = Vpc.observe(&r);
        assert_eq!(serde_json::to_value(&o.attrs).unwrap(), d);
        assert_eq!(o.physical_id, "vpc-1");
        assert_eq!(
            o.outputs,
            vec![
                ("id", json!("vpc-1")),
                ("cidr_block", json!("10.0.0.0/16")),
                ("arn", json!("arn:aws:ec2:us-east-1:123:vpc/vpc-1")),
            ]
        );
    }

    #[test]
    fn blocks_must_be_16_to_28() {
        let p = crate::resources::testing::problems(
            "name: t\nresources:\n  v: {type: vpc, cidr_block: 10.0.0.0/8}\n  w: {type: vpc, cidr_block: 10.0.0.1/16}\n",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("v.cidr_block: a VPC block must be /16 to /28, not /8"),
            "{p:?}"
        );
        assert!(
            p[1].contains("w.cidr_block") && p[1].contains("host bits"),
            "{p:?}"
        );
    }
}
