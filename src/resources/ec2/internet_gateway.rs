//! `internet_gateway`: an internet gateway attached to a VPC (what public subnets route to).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttachmentStatus, InternetGateway as AwsIgw, InternetGatewayAttachment, ResourceType, Tag,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{by_id, detach_gateway, earlier, named_vpc, set_name_tag, tagged};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue, Resource as Declared};
use crate::resources::common::{self, ec2, Error};
use crate::resources::fields::{check_id_ref, ref_key};
use crate::resources::typed::{attrs_of, Changed, Listed, Observed, Resource, Site, Typical};
use crate::resources::{Live, OpCx};

pub struct InternetGateway;

/// An internet gateway, attached to one VPC.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// The VPC to attach to: a reference like `${main_vpc}` or an existing VPC id
    /// (`vpc-…`). A VPC has at most one internet gateway. Changing it moves the gateway
    /// (detach, then attach).
    vpc: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    /// The attached VPC; `None` (null) when detached, e.g. after an interrupted apply.
    vpc: Option<String>,
}

#[async_trait]
impl Resource for InternetGateway {
    const KIND: &'static str = "internet_gateway";
    const ATTRIBUTES: &'static [&'static str] = &["id"];
    const REPLACE_ON: &'static [&'static str] = &[];

    /// Typical time on AWS: Create and attach; a detach is refused while public addresses are
    /// still mapped in the VPC and is retried (docs: DetachInternetGateway).
    const TYPICAL: Typical = Typical {
        create: 3,
        update: 3,
        delete: 10,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    type Raw = AwsIgw;

    fn check(&self, id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        if let Some(i) = check_id_ref("vpc", &f.vpc, cx, "vpc", "vpc-") {
            return vec![i];
        }
        let key = ref_key(&f.vpc);
        let same_vpc = |r: &&Declared| named_vpc(r).as_deref() == Some(key.as_str());
        match earlier(cx, id, "internet_gateway").find(same_vpc) {
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

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let a = Attrs {
            name: format!("{}-{}", site.stack, site.id),
            vpc: Some(f.vpc),
        };
        Ok((a, ()))
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        tagged!(aws.ec2.describe_internet_gateways(), stack)
    }

    fn observe(&self, g: &AwsIgw) -> Observed<Attrs> {
        let igw_id = g.internet_gateway_id().unwrap_or_default().to_string();
        Observed {
            outputs: vec![("id", json!(igw_id))],
            physical_id: igw_id,
            attrs: Attrs {
                name: ec2::name_tag(g.tags()).unwrap_or_default(),
                vpc: attached_vpc(g),
            },
        }
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, a: &Attrs, _: &()) -> Result<AwsIgw, Error> {
        let tags = ec2::tag_spec(
            ResourceType::InternetGateway,
            &common::tags(cx.stack, cx.id, &a.name),
        );
        // CreateInternetGateway takes no ClientToken: should a retried call make a
        // second gateway, the next plan sees the duplicate by its tags and deletes it.
        let out = aws
            .ec2
            .create_internet_gateway()
            .tag_specifications(tags.clone())
            .send()
            .await?;
        let igw_id = out
            .internet_gateway()
            .and_then(AwsIgw::internet_gateway_id)
            .ok_or_else(|| Error::Invalid("CreateInternetGateway returned no gateway id".into()))?
            .to_string();
        // The gateway exists (and is found by its tags) from here on: if the attach
        // below fails, the next plan shows it detached and update attaches it.
        converge(aws, cx, &igw_id, None, a.vpc.as_deref()).await?;
        Ok(as_made(&igw_id, tags.tags, a.vpc.as_deref()))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<AwsIgw>, Error> {
        if changed.has("vpc") {
            let now = attrs_of::<Self>(live)?;
            converge(
                aws,
                cx,
                &live.physical_id,
                now.vpc.as_deref(),
                a.vpc.as_deref(),
            )
            .await?;
        }
        if changed.has("name") {
            set_name_tag(aws, &live.physical_id, &a.name).await?;
        }
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let igw_id = &live.physical_id;
        // Fresh, not the plan's view: whatever it is attached to now must be detached.
        let Some(g) = describe(aws, igw_id).await? else {
            return Ok(());
        };
        if let Some(vpc) = attached_vpc(&g) {
            detach_gateway(aws, cx, igw_id, &vpc).await?;
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
                    .await?;
                Ok(())
            },
        )
        .await
    }
}

/// The gateway as made: its tags, attached to the VPC (what a Describe would say, without
/// making one).
fn as_made(igw_id: &str, tags: Option<Vec<Tag>>, vpc: Option<&str>) -> AwsIgw {
    let attached = vpc.map(|v| {
        vec![InternetGatewayAttachment::builder()
            .vpc_id(v)
            .state(AttachmentStatus::from("available"))
            .build()]
    });
    AwsIgw::builder()
        .internet_gateway_id(igw_id)
        .set_tags(tags)
        .set_attachments(attached)
        .build()
}

async fn describe(aws: &Aws, igw_id: &str) -> Result<Option<AwsIgw>, Error> {
    let req = aws
        .ec2
        .describe_internet_gateways()
        .internet_gateway_ids(igw_id);
    by_id!(req, internet_gateways)
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
        detach_gateway(aws, cx, igw_id, old).await?;
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
                .await?;
            Ok(())
        },
    )
    .await;
    match r {
        // Already attached is fine when it is to this VPC (an earlier attempt got there);
        // otherwise the VPC has another gateway, which is not ours to take away.
        Err(e) if e.is_code(&["Resource.AlreadyAssociated"]) => {
            let now = describe(aws, igw_id).await?;
            if now.as_ref().and_then(attached_vpc).as_deref() == Some(vpc) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::Kind;

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
        let d = Typed(InternetGateway)
            .desired("dev", "igw", &json!({"vpc": "vpc-1"}))
            .unwrap();
        let name = vec![Tag::builder().key("Name").value("dev-igw").build()];
        let g = AwsIgw::builder()
            .internet_gateway_id("igw-1")
            .set_tags(Some(name.clone()))
            .attachments(
                InternetGatewayAttachment::builder()
                    .vpc_id("vpc-1")
                    .state(AttachmentStatus::Attached)
                    .build(),
            )
            .build();
        let o = InternetGateway.observe(&g);
        assert_eq!(d, serde_json::to_value(&o.attrs).unwrap());
        assert_eq!(o.outputs, vec![("id", json!("igw-1"))]);
        // What create returns reads the same.
        let made = InternetGateway.observe(&as_made("igw-1", Some(name), Some("vpc-1")));
        assert_eq!(d, serde_json::to_value(&made.attrs).unwrap());
        assert_eq!(made.physical_id, "igw-1");
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
