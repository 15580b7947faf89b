//! `load_balancer`: an Application Load Balancer in two or more zones, dropping invalid
//! HTTP headers by default.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    LoadBalancer as AwsLb, LoadBalancerAttribute, LoadBalancerSchemeEnum, LoadBalancerStateEnum,
    LoadBalancerTypeEnum,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::{self as elbv2, elb_name, lb_gone, stack_load_balancers, tag_list};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, Error};
use crate::resources::fields::{check_id_ref, id_set, ref_key};
use crate::resources::typed::{
    Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx, Payload};

pub struct LoadBalancer;

const DROP_INVALID: &str = "routing.http.drop_invalid_header_fields.enabled";
const HEADERS_BASELINE: &str = "security baseline CKV_AWS_131 / ELB.4";

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
enum Scheme {
    /// Reachable from the internet: public subnets with a route to an internet gateway.
    #[default]
    InternetFacing,
    /// Reachable only from inside the VPC (and networks connected to it).
    Internal,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::InternetFacing => "internet-facing",
            Scheme::Internal => "internal",
        }
    }
}

/// An Application Load Balancer: spreads HTTP(S) requests over the targets its
/// listeners forward to.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// `internet-facing` (the default) or `internal`. Changing it replaces the load balancer.
    #[serde(default)]
    scheme: Scheme,
    /// Subnets, in at least two availability zones (one subnet per zone): references like
    /// `${public_a}` or ids (`subnet-…`). Changed in place.
    subnets: Vec<String>,
    /// Security groups of the load balancer: references like `${lb_sg}` or ids (`sg-…`).
    /// Changed in place.
    #[serde(default)]
    security_groups: Vec<String>,
    /// Drop HTTP headers with invalid names instead of passing them to the targets
    /// (security baseline CKV_AWS_131 / ELB.4). Changed in place.
    #[serde(default = "yes")]
    drop_invalid_header_fields: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    scheme: String,
    subnets: Vec<String>,
    security_groups: Vec<String>,
    drop_invalid_header_fields: bool,
}

#[async_trait]
impl Resource for LoadBalancer {
    const KIND: &'static str = "load_balancer";
    const ATTRIBUTES: &'static [&'static str] = &["arn", "dns_name", "zone_id", "name"];
    const REPLACE_ON: &'static [&'static str] = &["name", "scheme"];
    // Names are unique per account and region: a copy made first takes the other name.
    const CREATE_BEFORE_DELETE: bool = true;
    const UNIQUE_NAME: Option<(&'static str, usize)> = Some(("name", 32));
    // AWS answers a second CreateLoadBalancer with the same settings with the existing
    // one, but not with other settings (nor does every emulator): look first.
    const ADOPT: Adopt = Adopt::LookFirst;

    /// Typical time on AWS: An ALB is `provisioning` for about 2–3 minutes before `active`
    /// (labs/02/README.md; "ALB active ≤ 5 min usually", shared/notes/aws-behaviour.md "Typical
    /// real-AWS durations"); deletion returns at once, its ENIs go within about half a minute.
    const TYPICAL: Typical = Typical {
        create: 180,
        update: 5,
        delete: 30,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    /// The load balancer and whether it drops invalid header fields (an attribute).
    type Raw = (AwsLb, bool);

    fn check(&self, _id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut issues = Vec::new();
        let lists = [
            ("subnets", &f.subnets, "subnet", "subnet-"),
            (
                "security_groups",
                &f.security_groups,
                "security_group",
                "sg-",
            ),
        ];
        for (field, ids, kind, prefix) in lists {
            for (i, s) in ids.iter().enumerate() {
                let path = format!("{field}[{i}]");
                issues.extend(check_id_ref(&path, s, cx, kind, prefix));
            }
        }
        issues.extend(check_zones("subnets", &f.subnets, cx));
        if !f.drop_invalid_header_fields {
            issues.push(
                Issue::new(
                    "drop_invalid_header_fields",
                    format!("invalid HTTP headers are passed to the targets — {HEADERS_BASELINE}"),
                )
                .warning(),
            );
        }
        issues
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let a = Attrs {
            name: elb_name(site.stack, site.id),
            scheme: f.scheme.as_str().to_string(),
            subnets: id_set(f.subnets),
            security_groups: id_set(f.security_groups),
            drop_invalid_header_fields: f.drop_invalid_header_fields,
        };
        Ok((a, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, _: &Fields) -> Vec<(String, String)> {
        vec![("load balancer name".into(), elb_name(stack, id))]
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        if a.drop_invalid_header_fields {
            return Vec::new();
        }
        vec![format!(
            "drop_invalid_header_fields is off: invalid HTTP headers reach the targets — {HEADERS_BASELINE}"
        )]
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let lbs = stack_load_balancers(aws, stack).await?;
        // Deleted between the two calls: left out.
        elbv2::with_each(lbs, AwsLb::load_balancer_arn, lb_gone, |arn| async move {
            drop_invalid(aws, &arn).await
        })
        .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let by_name = aws.elbv2.describe_load_balancers().names(&a.name);
        let Some(mut lb) = elbv2::one_lb(by_name).await? else {
            return Ok(None);
        };
        let owner = elbv2::owner(aws, stack, arn_of(&lb)).await?;
        if owner.is_some() {
            // An earlier run's create, interrupted while AWS provisioned it: wait as
            // that create would have (`find` has no progress line to tell of it).
            let quiet = |_: String| {};
            let payload = Payload::default();
            let cx = OpCx {
                stack,
                id: "",
                payload: &payload,
                progress: &quiet,
            };
            lb = wait_active(aws, &cx, arn_of(&lb)).await?;
        }
        let drop = drop_invalid(aws, arn_of(&lb)).await?;
        Ok(Some(Found {
            owner,
            raw: (lb, drop),
        }))
    }

    fn observe(&self, (lb, drop_invalid_header_fields): &Self::Raw) -> Observed<Attrs> {
        let name = lb.load_balancer_name().unwrap_or_default().to_string();
        Observed {
            physical_id: arn_of(lb).to_string(),
            outputs: vec![
                ("arn", json!(arn_of(lb))),
                ("dns_name", json!(lb.dns_name().unwrap_or_default())),
                (
                    "zone_id",
                    json!(lb.canonical_hosted_zone_id().unwrap_or_default()),
                ),
                ("name", json!(name)),
            ],
            attrs: Attrs {
                name,
                scheme: lb
                    .scheme()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                subnets: id_set(
                    lb.availability_zones()
                        .iter()
                        .filter_map(|z| z.subnet_id().map(str::to_string))
                        .collect(),
                ),
                security_groups: id_set(lb.security_groups().to_vec()),
                drop_invalid_header_fields: *drop_invalid_header_fields,
            },
        }
    }

    async fn create(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        a: &Attrs,
        _: &(),
    ) -> Result<Self::Raw, Error> {
        let mut req = aws
            .elbv2
            .create_load_balancer()
            .name(&a.name)
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(LoadBalancerSchemeEnum::from(a.scheme.as_str()))
            .set_subnets(Some(a.subnets.clone()))
            .set_security_groups(Some(a.security_groups.clone()));
        for t in tag_list(cx.stack, cx.id, &a.name) {
            req = req.tags(t);
        }
        let out = req.send().await.map_err(Error::from)?;
        let arn = out
            .load_balancers()
            .first()
            .and_then(|l| l.load_balancer_arn())
            .ok_or_else(|| Error::Invalid("CreateLoadBalancer returned no ARN".into()))?
            .to_string();
        let lb = wait_active(aws, cx, &arn).await?;
        // The attribute is not part of CreateLoadBalancer: set after, when AWS's default
        // is not the one wanted.
        if drop_invalid(aws, &arn).await? != a.drop_invalid_header_fields {
            set_drop_invalid(aws, &arn, a.drop_invalid_header_fields).await?;
        }
        Ok((lb, a.drop_invalid_header_fields))
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
        let arn = &live.physical_id;
        if changed.has("subnets") {
            aws.elbv2
                .set_subnets()
                .load_balancer_arn(arn)
                .set_subnets(Some(a.subnets.clone()))
                .send()
                .await?;
        }
        if changed.has("security_groups") {
            aws.elbv2
                .set_security_groups()
                .load_balancer_arn(arn)
                .set_security_groups(Some(a.security_groups.clone()))
                .send()
                .await?;
        }
        if changed.has("drop_invalid_header_fields") {
            set_drop_invalid(aws, arn, a.drop_invalid_header_fields).await?;
        }
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let arn = &live.physical_id;
        let r = aws
            .elbv2
            .delete_load_balancer()
            .load_balancer_arn(arn)
            .send()
            .await
            .map_err(Error::from);
        match r {
            Err(e) if lb_gone(&e) => return Ok(()),
            other => other?,
        };
        common::wait_for(
            cx,
            "the load balancer to be deleted",
            Duration::from_secs(600),
            || async { Ok(describe_arn(aws, arn).await?.is_none().then_some(())) },
        )
        .await
    }
}

fn arn_of(lb: &AwsLb) -> &str {
    lb.load_balancer_arn().unwrap_or_default()
}

async fn wait_active(aws: &Aws, cx: &OpCx<'_>, arn: &str) -> Result<AwsLb, Error> {
    let lb = common::wait_for(
        cx,
        "the load balancer to be active",
        Duration::from_secs(900),
        || async {
            // Just created: briefly invisible to Describe (`None`).
            Ok(describe_arn(aws, arn).await?.filter(|lb| {
                matches!(
                    lb.state().and_then(|s| s.code()),
                    Some(LoadBalancerStateEnum::Active | LoadBalancerStateEnum::Failed)
                )
            }))
        },
    )
    .await?;
    if lb.state().and_then(|s| s.code()) == Some(&LoadBalancerStateEnum::Failed) {
        let why = lb
            .state()
            .and_then(|s| s.reason())
            .unwrap_or("no reason given");
        return Err(Error::Conflict(format!(
            "load balancer {arn} failed to provision: {why}"
        )));
    }
    Ok(lb)
}

async fn describe_arn(aws: &Aws, arn: &str) -> Result<Option<AwsLb>, Error> {
    elbv2::one_lb(aws.elbv2.describe_load_balancers().load_balancer_arns(arn)).await
}

async fn drop_invalid(aws: &Aws, arn: &str) -> Result<bool, Error> {
    let out = aws
        .elbv2
        .describe_load_balancer_attributes()
        .load_balancer_arn(arn)
        .send()
        .await?;
    Ok(out
        .attributes()
        .iter()
        .any(|a| a.key() == Some(DROP_INVALID) && a.value() == Some("true")))
}

async fn set_drop_invalid(aws: &Aws, arn: &str, on: bool) -> Result<(), Error> {
    aws.elbv2
        .modify_load_balancer_attributes()
        .load_balancer_arn(arn)
        .attributes(
            LoadBalancerAttribute::builder()
                .key(DROP_INVALID)
                .value(on.to_string())
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

/// Zones of the subnets, where the blueprint says them: fewer than two known-distinct
/// zones is an error AWS would give only at apply time.
fn check_zones(path: &str, subnets: &[String], cx: &CheckCx) -> Vec<Issue> {
    let distinct: BTreeSet<String> = subnets.iter().map(|s| ref_key(s)).collect();
    if distinct.len() < 2 {
        return vec![Issue::new(
            path,
            format!(
                "an application load balancer needs subnets in at least two availability zones; {} given",
                distinct.len()
            ),
        )
        .help("list one subnet in each of two or more zones, like `[\"${public_a}\", \"${public_b}\"]`")];
    }
    let mut zones: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in subnets {
        let Some(r) = cx.referenced(s).filter(|r| r.kind == "subnet") else {
            return Vec::new(); // a literal id: its zone is known only to AWS
        };
        let Some(z) = r.config.get("availability_zone").and_then(Json::as_str) else {
            return Vec::new();
        };
        zones.entry(z.to_string()).or_default().push(r.id.clone());
    }
    if zones.len() < 2 {
        let (zone, ids) = zones.into_iter().next().unwrap_or_default();
        return vec![Issue::new(
            path,
            format!(
                "every subnet is in availability zone `{zone}` ({}); an application load balancer needs two zones or more",
                ids.join(", ")
            ),
        )];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::elbv2::arn_suffix;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::Kind;
    use aws_sdk_elasticloadbalancingv2::types::{AvailabilityZone, LoadBalancerState};

    const K: Typed<LoadBalancer> = Typed(LoadBalancer);

    const NET: &str = "
name: t
resources:
  vpc:
    type: vpc
    cidr_block: 10.0.0.0/16
  a:
    type: subnet
    vpc: ${vpc}
    cidr_block: 10.0.1.0/24
    availability_zone: ${stack.region}a
  b:
    type: subnet
    vpc: ${vpc}
    cidr_block: 10.0.2.0/24
    availability_zone: ${stack.region}b
  a2:
    type: subnet
    vpc: ${vpc}
    cidr_block: 10.0.3.0/24
    availability_zone: ${stack.region}a
  sg:
    type: security_group
    vpc: ${vpc}
";

    fn lb(body: &str) -> Vec<String> {
        problems(&format!("{NET}  lb:\n    type: load_balancer\n{body}"))
    }

    #[test]
    fn two_zones_pass() {
        let p = lb("    subnets: [\"${a}\", \"${b}\"]\n    security_groups: [\"${sg}\"]\n");
        assert!(p.is_empty(), "{p:?}");
        let p = lb("    subnets: [subnet-1, subnet-2]\n");
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn one_zone_is_an_error() {
        let p = lb("    subnets: [\"${a}\", \"${a2}\"]\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("every subnet is in availability zone `${stack.region}a` (a, a2)"),
            "{p:?}"
        );
        let p = lb("    subnets: [\"${a}\", \"${a.id}\"]\n");
        assert!(
            p[0].contains("at least two availability zones; 1 given"),
            "{p:?}"
        );
        let p = lb("    subnets: [\"${a}\", \"${sg}\"]\n");
        assert!(
            p.iter()
                .any(|m| m.contains("refers to `sg` (type security_group)")),
            "{p:?}"
        );
    }

    #[test]
    fn keeping_invalid_headers_warns() {
        let p = lb("    subnets: [\"${a}\", \"${b}\"]\n    drop_invalid_header_fields: false\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("Warning") && p[0].contains("CKV_AWS_131 / ELB.4"),
            "{p:?}"
        );
        let d = K
            .desired(
                "dev",
                "lb",
                &json!({"subnets": ["s-2", "s-1"], "drop_invalid_header_fields": false}),
            )
            .unwrap();
        assert!(K.warnings(&d)[0].contains("CKV_AWS_131 / ELB.4"));
        let d = K
            .desired("dev", "lb", &json!({"subnets": ["s-2", "s-1"]}))
            .unwrap();
        assert!(K.warnings(&d).is_empty());
    }

    #[test]
    fn names_fit_elb_rules() {
        assert_eq!(elb_name("dev", "web_lb"), "dev-web-lb");
        assert_eq!(elb_name("dev", "_x__y_"), "dev-x-y");
        let long = elb_name(
            "a-very-long-stack-name-for-tests",
            "application_load_balancer",
        );
        assert!(
            long.len() <= 32 && !long.ends_with('-') && !long.contains("--"),
            "{long}"
        );
        assert_eq!(
            long,
            elb_name(
                "a-very-long-stack-name-for-tests",
                "application_load_balancer"
            )
        );
        assert!(!elb_name("internal", "lb").starts_with("internal-"));
    }

    #[test]
    fn read_shape_matches_desired() {
        let d = K
            .desired(
                "dev",
                "lb",
                &json!({"subnets": ["subnet-b", "subnet-a"], "security_groups": ["sg-1"]}),
            )
            .unwrap();
        let aws = AwsLb::builder()
            .load_balancer_arn(
                "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/dev-lb/abc",
            )
            .load_balancer_name("dev-lb")
            .dns_name("dev-lb-1.us-east-1.elb.amazonaws.com")
            .canonical_hosted_zone_id("Z1")
            .scheme(LoadBalancerSchemeEnum::InternetFacing)
            .state(
                LoadBalancerState::builder()
                    .code(LoadBalancerStateEnum::Active)
                    .build(),
            )
            .availability_zones(
                AvailabilityZone::builder()
                    .subnet_id("subnet-a")
                    .zone_name("us-east-1a")
                    .build(),
            )
            .availability_zones(
                AvailabilityZone::builder()
                    .subnet_id("subnet-b")
                    .zone_name("us-east-1b")
                    .build(),
            )
            .security_groups("sg-1")
            .build();
        let o = LoadBalancer.observe(&(aws, true));
        assert_eq!(d, json!(o.attrs));
        assert!(o.outputs.contains(&("zone_id", json!("Z1"))));
        assert_eq!(arn_suffix(&o.physical_id), Some("app/dev-lb/abc"));
        assert_eq!(
            arn_suffix("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/dev-tg/def"),
            Some("targetgroup/dev-tg/def")
        );
    }
}
