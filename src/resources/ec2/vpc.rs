//! `vpc`: an Amazon VPC with its IPv4 CIDR block and DNS settings.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName, VpcState};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, aws_error, ec2, parse, Error};
use crate::resources::{Kind, Live, OpCx};

pub struct Vpc;

/// A VPC.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Fields {
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

#[derive(Debug, Serialize, Deserialize)]
struct Attrs {
    name: String,
    cidr_block: String,
    enable_dns_support: bool,
    enable_dns_hostnames: bool,
}

#[async_trait]
impl Kind for Vpc {
    fn name(&self) -> &'static str {
        "vpc"
    }

    fn attributes(&self) -> &'static [&'static str] {
        &["id", "cidr_block", "arn"]
    }

    fn schema(&self) -> Json {
        common::schema_of::<Fields>()
    }

    fn check(&self, _id: &str, config: &Json, _cx: &CheckCx) -> Vec<Issue> {
        let f: Fields = match parse(config) {
            Ok(f) => f,
            Err(i) => return vec![i],
        };
        match common::parse_cidr(&f.cidr_block) {
            Err(e) => vec![Issue::new("cidr_block", e)],
            Ok(net) if !(16..=28).contains(&net.prefix_len()) => vec![Issue::new(
                "cidr_block",
                format!("a VPC block must be /16 to /28, not /{}", net.prefix_len()),
            )],
            Ok(_) => Vec::new(),
        }
    }

    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String> {
        let f: Fields = parse(config).map_err(|i| i.message)?;
        Ok(json!(Attrs {
            name: format!("{stack}-{id}"),
            cidr_block: f.cidr_block,
            enable_dns_support: f.enable_dns_support,
            enable_dns_hostnames: f.enable_dns_hostnames,
        }))
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &["cidr_block"]
    }

    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        let vpcs = aws
            .ec2
            .describe_vpcs()
            .filters(ec2::stack_filter(stack))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(aws_error("DescribeVpcs"))?;
        let mut out = Vec::new();
        for v in vpcs {
            let Some(id) = ec2::owned_id(v.tags(), stack) else {
                continue;
            };
            let vpc_id = v.vpc_id().unwrap_or_default().to_string();
            // DNS settings have no batched form: one DescribeVpcAttribute per setting.
            let support = dns_attribute(aws, &vpc_id, VpcAttributeName::EnableDnsSupport).await?;
            let hostnames =
                dns_attribute(aws, &vpc_id, VpcAttributeName::EnableDnsHostnames).await?;
            let attrs = Attrs {
                name: ec2::name_tag(v.tags()).unwrap_or_default(),
                cidr_block: v.cidr_block().unwrap_or_default().to_string(),
                enable_dns_support: support,
                enable_dns_hostnames: hostnames,
            };
            out.push(live(
                id,
                &vpc_id,
                attrs,
                &aws.region,
                v.owner_id().unwrap_or_default(),
            ));
        }
        Ok(out)
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let tags = common::tags(cx.stack, cx.id, &a.name);
        let out = aws
            .ec2
            .create_vpc()
            .cidr_block(&a.cidr_block)
            .tag_specifications(ec2::tag_spec(ResourceType::Vpc, &tags))
            .send()
            .await
            .map_err(aws_error("CreateVpc"))?;
        let vpc = out
            .vpc()
            .ok_or_else(|| Error::Invalid("CreateVpc returned no VPC".into()))?;
        let vpc_id = vpc.vpc_id().unwrap_or_default().to_string();
        let owner = vpc.owner_id().unwrap_or_default().to_string();
        common::wait_for(
            cx,
            "the VPC to be available",
            Duration::from_secs(300),
            || async {
                let d = aws
                    .ec2
                    .describe_vpcs()
                    .vpc_ids(&vpc_id)
                    .send()
                    .await
                    .map_err(aws_error("DescribeVpcs"));
                match d {
                    // Just-created VPCs can be briefly invisible to Describe.
                    Err(e) if ec2::not_found(e.code()) => Ok(None),
                    Err(e) => Err(e),
                    Ok(d) => Ok(d
                        .vpcs()
                        .first()
                        .filter(|v| v.state() == Some(&VpcState::Available))
                        .map(|_| ())),
                }
            },
        )
        .await?;
        set_dns(aws, &vpc_id, &a, true, true).await?;
        Ok(live(cx.id.to_string(), &vpc_id, a, &aws.region, &owner))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live_vpc: &Live,
        desired: &Json,
        changed: &[String],
    ) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let vpc_id = &live_vpc.physical_id;
        let has = |f: &str| changed.iter().any(|c| c == f);
        set_dns(
            aws,
            vpc_id,
            &a,
            has("enable_dns_support"),
            has("enable_dns_hostnames"),
        )
        .await?;
        if has("name") {
            aws.ec2
                .create_tags()
                .resources(vpc_id)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Name")
                        .value(&a.name)
                        .build(),
                )
                .send()
                .await
                .map_err(aws_error("CreateTags"))?;
        }
        let owner = live_vpc
            .outputs
            .get("arn")
            .and_then(Json::as_str)
            .and_then(|s| s.split(':').nth(4))
            .unwrap_or_default()
            .to_string();
        Ok(live(cx.id.to_string(), vpc_id, a, &aws.region, &owner))
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
                    .await
                    .map(|_| ())
                    .map_err(aws_error("DeleteVpc"))
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
            aws_sdk_ec2::types::Filter::builder()
                .name("attachment.vpc-id")
                .values(vpc_id)
                .build(),
        )
        .send()
        .await
        .map_err(aws_error("DescribeInternetGateways"))?;
    for igw in igws.internet_gateways() {
        let Some(id) = igw.internet_gateway_id() else {
            continue;
        };
        cx.note(format!("detaching internet gateway {id} first"));
        let r = aws
            .ec2
            .detach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc_id)
            .send()
            .await
            .map_err(aws_error("DetachInternetGateway"));
        match r {
            Err(e) if ec2::not_found(e.code()) || e.is_code(&["Gateway.NotAttached"]) => {}
            other => {
                other?;
            }
        }
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
        .await
        .map_err(aws_error("DescribeVpcAttribute"))?;
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
    let val = |b: bool| AttributeBooleanValue::builder().value(b).build();
    if support {
        aws.ec2
            .modify_vpc_attribute()
            .vpc_id(vpc_id)
            .enable_dns_support(val(a.enable_dns_support))
            .send()
            .await
            .map_err(aws_error("ModifyVpcAttribute"))?;
    }
    if hostnames {
        aws.ec2
            .modify_vpc_attribute()
            .vpc_id(vpc_id)
            .enable_dns_hostnames(val(a.enable_dns_hostnames))
            .send()
            .await
            .map_err(aws_error("ModifyVpcAttribute"))?;
    }
    Ok(())
}

fn live(id: String, vpc_id: &str, a: Attrs, region: &str, owner: &str) -> Live {
    let outputs = [
        ("id".to_string(), json!(vpc_id)),
        ("cidr_block".to_string(), json!(a.cidr_block)),
        (
            "arn".to_string(),
            json!(format!("arn:aws:ec2:{region}:{owner}:vpc/{vpc_id}")),
        ),
    ]
    .into_iter()
    .collect();
    Live {
        id,
        kind: "vpc",
        physical_id: vpc_id.to_string(),
        attrs: json!(a),
        outputs,
    }
}
