//! `internet_gateway`: an internet gateway attached to a VPC (what public subnets route to).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttachmentStatus, InternetGateway as AwsIgw, ResourceType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::set_name_tag;
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, aws_error, ec2, parse, Error};
use crate::resources::fields::{check_id_ref, ref_key};
use crate::resources::{Kind, Live, OpCx};

pub struct InternetGateway;

/// An internet gateway, attached to one VPC.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Fields {
    /// The VPC to attach to: a reference like `${main_vpc}` or an existing VPC id
    /// (`vpc-…`). A VPC has at most one internet gateway. Changing it moves the gateway
    /// (detach, then attach).
    vpc: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Attrs {
    name: String,
    /// The attached VPC; `None` (null) when detached, e.g. after an interrupted apply.
    vpc: Option<String>,
}

/// Detaching fails while anything in the VPC holds a public address; that clears as
/// instances stop and addresses are released, so it is worth waiting for.
const DETACH_BUDGET: Duration = Duration::from_secs(600);

#[async_trait]
impl Kind for InternetGateway {
    fn name(&self) -> &'static str {
        "internet_gateway"
    }

    fn attributes(&self) -> &'static [&'static str] {
        &["id"]
    }

    fn schema(&self) -> Json {
        common::schema_of::<Fields>()
    }

    fn check(&self, id: &str, config: &Json, cx: &CheckCx) -> Vec<Issue> {
        let f: Fields = match parse(config) {
            Ok(f) => f,
            Err(i) => return vec![i],
        };
        if let Some(i) = check_id_ref("vpc", &f.vpc, cx, "vpc", "vpc-") {
            return vec![i];
        }
        let key = ref_key(&f.vpc);
        let earlier = cx
            .resources
            .values()
            .take_while(|r| r.id != id)
            .filter(|r| r.kind == "internet_gateway")
            .find(|r| {
                r.config
                    .get("vpc")
                    .and_then(Json::as_str)
                    .map(ref_key)
                    .as_deref()
                    == Some(key.as_str())
            });
        match earlier {
            Some(other) => vec![Issue::new(
                "vpc",
                format!(
                    "internet gateway `{}` is already attached to this VPC; a VPC has at most one",
                    other.id
                ),
            )],
            None => Vec::new(),
        }
    }

    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String> {
        let f: Fields = parse(config).map_err(|i| i.message)?;
        Ok(json!(Attrs {
            name: format!("{stack}-{id}"),
            vpc: Some(f.vpc),
        }))
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &[]
    }

    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        let igws = aws
            .ec2
            .describe_internet_gateways()
            .filters(ec2::stack_filter(stack))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(aws_error("DescribeInternetGateways"))?;
        Ok(igws
            .iter()
            .filter_map(|g| {
                let id = ec2::owned_id(g.tags(), stack)?;
                let attrs = Attrs {
                    name: ec2::name_tag(g.tags()).unwrap_or_default(),
                    vpc: attached_vpc(g),
                };
                Some(live(id, g.internet_gateway_id().unwrap_or_default(), attrs))
            })
            .collect())
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let tags = common::tags(cx.stack, cx.id, &a.name);
        // CreateInternetGateway takes no ClientToken: should a retried call make a
        // second gateway, the next plan sees the duplicate by its tags and deletes it.
        let out = aws
            .ec2
            .create_internet_gateway()
            .tag_specifications(ec2::tag_spec(ResourceType::InternetGateway, &tags))
            .send()
            .await
            .map_err(aws_error("CreateInternetGateway"))?;
        let igw_id = out
            .internet_gateway()
            .and_then(AwsIgw::internet_gateway_id)
            .ok_or_else(|| Error::Invalid("CreateInternetGateway returned no gateway id".into()))?
            .to_string();
        // The gateway exists (and is found by its tags) from here on: if the attach
        // below fails, the next plan shows it detached and update attaches it.
        converge(aws, cx, &igw_id, None, a.vpc.as_deref()).await?;
        Ok(live(cx.id.to_string(), &igw_id, a))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live_igw: &Live,
        desired: &Json,
        changed: &[String],
    ) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let now: Attrs = common::from_desired(&live_igw.attrs)?;
        let has = |f: &str| changed.iter().any(|c| c == f);
        if has("vpc") {
            converge(
                aws,
                cx,
                &live_igw.physical_id,
                now.vpc.as_deref(),
                a.vpc.as_deref(),
            )
            .await?;
        }
        if has("name") {
            set_name_tag(aws, &live_igw.physical_id, &a.name).await?;
        }
        Ok(live(cx.id.to_string(), &live_igw.physical_id, a))
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let igw_id = &live.physical_id;
        // Fresh, not the plan's view: whatever it is attached to now must be detached.
        let out = aws
            .ec2
            .describe_internet_gateways()
            .internet_gateway_ids(igw_id)
            .send()
            .await
            .map_err(aws_error("DescribeInternetGateways"));
        let attached = match out {
            Err(e) if ec2::not_found(e.code()) => return Ok(()),
            Err(e) => return Err(e),
            Ok(o) => o.internet_gateways().first().and_then(attached_vpc),
        };
        if let Some(vpc) = attached {
            detach(aws, cx, igw_id, &vpc).await?;
        }
        ec2::delete_retrying(
            cx,
            Duration::from_secs(120),
            "the gateway is still detaching",
            || async {
                aws.ec2
                    .delete_internet_gateway()
                    .internet_gateway_id(igw_id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(aws_error("DeleteInternetGateway"))
            },
        )
        .await
    }
}

/// Moves the gateway from the VPC it is attached to (if any) to the one wanted.
async fn converge(
    aws: &Aws,
    cx: &OpCx<'_>,
    igw_id: &str,
    now: Option<&str>,
    want: Option<&str>,
) -> Result<(), Error> {
    if now == want {
        return Ok(());
    }
    if let Some(old) = now {
        detach(aws, cx, igw_id, old).await?;
    }
    if let Some(new) = want {
        attach(aws, cx, igw_id, new).await?;
    }
    Ok(())
}

async fn attach(aws: &Aws, cx: &OpCx<'_>, igw_id: &str, vpc: &str) -> Result<(), Error> {
    let r = common::retry_on(
        cx,
        &["InvalidInternetGatewayID.NotFound", "InvalidVpcID.NotFound"],
        Duration::from_secs(60),
        "the new gateway or VPC is not visible yet",
        || async {
            aws.ec2
                .attach_internet_gateway()
                .internet_gateway_id(igw_id)
                .vpc_id(vpc)
                .send()
                .await
                .map(|_| ())
                .map_err(aws_error("AttachInternetGateway"))
        },
    )
    .await;
    match r {
        // Already attached is fine when it is to this VPC (an earlier attempt got there);
        // otherwise the VPC has another gateway, which is not ours to take away.
        Err(e) if e.is_code(&["Resource.AlreadyAssociated"]) => {
            let out = aws
                .ec2
                .describe_internet_gateways()
                .internet_gateway_ids(igw_id)
                .send()
                .await
                .map_err(aws_error("DescribeInternetGateways"))?;
            if out
                .internet_gateways()
                .first()
                .and_then(attached_vpc)
                .as_deref()
                == Some(vpc)
            {
                Ok(())
            } else {
                Err(Error::Conflict(format!(
                    "cannot attach {igw_id} to {vpc}: {e} (a VPC has at most one internet gateway; detach the other one first)"
                )))
            }
        }
        other => other,
    }
}

async fn detach(aws: &Aws, cx: &OpCx<'_>, igw_id: &str, vpc: &str) -> Result<(), Error> {
    let why = format!(
        "{vpc} still has public addresses mapped (Elastic IPs, or instances, NAT gateways or load balancers with public IPs); they must be released before {igw_id} can be detached"
    );
    let r = common::retry_on(
        cx,
        &["DependencyViolation"],
        DETACH_BUDGET,
        &why,
        || async {
            aws.ec2
                .detach_internet_gateway()
                .internet_gateway_id(igw_id)
                .vpc_id(vpc)
                .send()
                .await
                .map(|_| ())
                .map_err(aws_error("DetachInternetGateway"))
        },
    )
    .await;
    match r {
        Err(e) if e.is_code(&["Gateway.NotAttached"]) || ec2::not_found(e.code()) => Ok(()),
        Err(e) if e.is_code(&["DependencyViolation"]) => {
            Err(Error::Conflict(format!("{why}: {e}")))
        }
        other => other,
    }
}

/// The VPC the gateway is attached to, ignoring attachments on their way out.
fn attached_vpc(g: &AwsIgw) -> Option<String> {
    g.attachments()
        .iter()
        .find(|a| {
            !matches!(
                a.state(),
                Some(AttachmentStatus::Detached | AttachmentStatus::Detaching)
            )
        })
        .and_then(|a| a.vpc_id())
        .map(str::to_string)
}

fn live(id: String, igw_id: &str, a: Attrs) -> Live {
    Live {
        id,
        kind: "internet_gateway",
        physical_id: igw_id.to_string(),
        attrs: json!(a),
        outputs: [("id".to_string(), json!(igw_id))].into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use aws_sdk_ec2::types::{InternetGatewayAttachment, Tag};

    #[test]
    fn one_gateway_per_vpc() {
        let p = problems(
            "
name: t
resources:
  main_vpc:
    type: vpc
    cidr_block: 10.0.0.0/16
  igw:
    type: internet_gateway
    vpc: ${main_vpc}
  igw2:
    type: internet_gateway
    vpc: ${main_vpc.id}
  bad:
    type: internet_gateway
    vpc: ${igw}
",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("igw2.vpc") && p[0].contains("`igw` is already attached"),
            "{p:?}"
        );
        assert!(
            p[1].contains("(type internet_gateway); `vpc` needs a vpc"),
            "{p:?}"
        );
    }

    #[test]
    fn desired_matches_read() {
        let d = InternetGateway
            .desired("dev", "igw", &json!({"vpc": "vpc-1"}))
            .unwrap();
        let g = AwsIgw::builder()
            .internet_gateway_id("igw-1")
            .tags(Tag::builder().key("Name").value("dev-igw").build())
            .attachments(
                InternetGatewayAttachment::builder()
                    .vpc_id("vpc-1")
                    .state(AttachmentStatus::from("available"))
                    .build(),
            )
            .build();
        let a = Attrs {
            name: "dev-igw".into(),
            vpc: attached_vpc(&g),
        };
        assert_eq!(d, json!(a));
        let detached = AwsIgw::builder()
            .attachments(
                InternetGatewayAttachment::builder()
                    .vpc_id("vpc-1")
                    .state(AttachmentStatus::Detaching)
                    .build(),
            )
            .build();
        assert_eq!(attached_vpc(&detached), None);
    }
}
