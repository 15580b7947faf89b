//! `load_balancer`: an Application Load Balancer. Also home of the Elastic Load
//! Balancing helpers `target_group` and `listener` share (names, tags, ARN references).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    LoadBalancer as AwsLb, LoadBalancerAttribute, LoadBalancerSchemeEnum, LoadBalancerStateEnum,
    LoadBalancerTypeEnum,
};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::{elb_name, lb_gone, stack_load_balancers, tag_list, tags_of};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, aws_error, parse, Error};
use crate::resources::fields::{check_id_ref, id_set, ref_key};
use crate::resources::{Kind, Live, OpCx};

pub struct LoadBalancer;

const KIND: &str = "load_balancer";
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
struct Fields {
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
struct Attrs {
    name: String,
    scheme: String,
    subnets: Vec<String>,
    security_groups: Vec<String>,
    drop_invalid_header_fields: bool,
}

#[async_trait]
impl Kind for LoadBalancer {
    fn name(&self) -> &'static str {
        KIND
    }

    fn attributes(&self) -> &'static [&'static str] {
        &["arn", "dns_name", "zone_id", "name"]
    }

    fn schema(&self) -> Json {
        common::schema_of::<Fields>()
    }

    fn check(&self, _id: &str, config: &Json, cx: &CheckCx) -> Vec<Issue> {
        let f: Fields = match parse(config) {
            Ok(f) => f,
            Err(i) => return vec![i],
        };
        let mut issues = Vec::new();
        for (i, s) in f.subnets.iter().enumerate() {
            issues.extend(check_id_ref(
                &format!("subnets[{i}]"),
                s,
                cx,
                "subnet",
                "subnet-",
            ));
        }
        for (i, s) in f.security_groups.iter().enumerate() {
            issues.extend(check_id_ref(
                &format!("security_groups[{i}]"),
                s,
                cx,
                "security_group",
                "sg-",
            ));
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

    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String> {
        let f: Fields = parse(config).map_err(|i| i.message)?;
        Ok(json!(Attrs {
            name: elb_name(stack, id),
            scheme: f.scheme.as_str().to_string(),
            subnets: id_set(f.subnets),
            security_groups: id_set(f.security_groups),
            drop_invalid_header_fields: f.drop_invalid_header_fields,
        }))
    }

    fn physical_names(&self, stack: &str, id: &str, _config: &Json) -> Vec<(String, String)> {
        vec![("load balancer name".into(), elb_name(stack, id))]
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &["name", "scheme"]
    }

    // Names are unique per account and region: a copy made first takes the other name.
    fn create_before_delete(&self) -> bool {
        true
    }

    fn unique_name(&self) -> Option<(&'static str, usize)> {
        Some(("name", 32))
    }

    fn warnings(&self, desired: &Json) -> Vec<String> {
        if desired.get("drop_invalid_header_fields") == Some(&Json::Bool(false)) {
            vec![format!(
                "drop_invalid_header_fields is off: invalid HTTP headers reach the targets — {HEADERS_BASELINE}"
            )]
        } else {
            Vec::new()
        }
    }

    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        let lbs = stack_load_balancers(aws, stack).await?;
        // Attributes have no batched form: one DescribeLoadBalancerAttributes each.
        let mut out: Vec<Live> = futures::stream::iter(lbs)
            .map(|(id, lb)| async move {
                let arn = lb.load_balancer_arn().unwrap_or_default();
                match drop_invalid(aws, arn).await {
                    Ok(drop) => Ok(Some(live(id, &lb, drop))),
                    // Deleted between the two calls.
                    Err(e) if lb_gone(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(8)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        out.sort_by(|a, b| (&a.id, &a.physical_id).cmp(&(&b.id, &b.physical_id)));
        Ok(out)
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        // AWS answers a second CreateLoadBalancer with the same settings with the existing
        // one, but not with other settings (nor does every emulator): look first.
        let arn = match find_by_name(aws, &a.name).await? {
            Some(lb) => {
                let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
                let tags = tags_of(aws, std::slice::from_ref(&arn)).await?;
                let tags = tags.get(&arn).cloned().unwrap_or_default();
                if common::owned_id(&tags, cx.stack).as_deref() != Some(cx.id) {
                    return Err(common::name_taken("a load balancer", &a.name, cx));
                }
                cx.note("found the load balancer an earlier run created");
                arn
            }
            None => {
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
                let out = req.send().await.map_err(aws_error("CreateLoadBalancer"))?;
                out.load_balancers()
                    .first()
                    .and_then(|l| l.load_balancer_arn())
                    .ok_or_else(|| Error::Invalid("CreateLoadBalancer returned no ARN".into()))?
                    .to_string()
            }
        };
        let lb = wait_active(aws, cx, &arn).await?;
        let now = live(cx.id.to_string(), &lb, drop_invalid(aws, &arn).await?);
        let changed = crate::diff::changed_attributes(desired, &now.attrs);
        if changed.is_empty() {
            return Ok(now);
        }
        converge(aws, &arn, &a, &changed).await?;
        let mut l = now;
        l.attrs = json!(a);
        Ok(l)
    }

    async fn update(
        &self,
        aws: &Aws,
        _cx: &OpCx<'_>,
        live_lb: &Live,
        desired: &Json,
        changed: &[String],
    ) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        converge(aws, &live_lb.physical_id, &a, changed).await?;
        let mut l = live_lb.clone();
        l.attrs = json!(a);
        Ok(l)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let arn = &live.physical_id;
        let r = aws
            .elbv2
            .delete_load_balancer()
            .load_balancer_arn(arn)
            .send()
            .await
            .map_err(aws_error("DeleteLoadBalancer"));
        match r {
            Err(e) if lb_gone(&e) => return Ok(()),
            other => other?,
        };
        common::wait_for(
            cx,
            "the load balancer to be deleted",
            Duration::from_secs(600),
            || async {
                match describe_arn(aws, arn).await {
                    Ok(None) => Ok(Some(())),
                    Ok(Some(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }
}

/// Brings subnets, security groups and attributes to `a`.
async fn converge(aws: &Aws, arn: &str, a: &Attrs, changed: &[String]) -> Result<(), Error> {
    let has = |f: &str| changed.iter().any(|c| c == f);
    if has("subnets") {
        aws.elbv2
            .set_subnets()
            .load_balancer_arn(arn)
            .set_subnets(Some(a.subnets.clone()))
            .send()
            .await
            .map_err(aws_error("SetSubnets"))?;
    }
    if has("security_groups") {
        aws.elbv2
            .set_security_groups()
            .load_balancer_arn(arn)
            .set_security_groups(Some(a.security_groups.clone()))
            .send()
            .await
            .map_err(aws_error("SetSecurityGroups"))?;
    }
    if has("drop_invalid_header_fields") {
        aws.elbv2
            .modify_load_balancer_attributes()
            .load_balancer_arn(arn)
            .attributes(
                LoadBalancerAttribute::builder()
                    .key(DROP_INVALID)
                    .value(a.drop_invalid_header_fields.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(aws_error("ModifyLoadBalancerAttributes"))?;
    }
    Ok(())
}

async fn wait_active(aws: &Aws, cx: &OpCx<'_>, arn: &str) -> Result<AwsLb, Error> {
    let lb = common::wait_for(
        cx,
        "the load balancer to be active",
        Duration::from_secs(900),
        || async {
            match describe_arn(aws, arn).await {
                // Just created: briefly invisible to Describe.
                Ok(None) => Ok(None),
                Err(e) => Err(e),
                Ok(Some(lb)) => {
                    let state = lb.state().and_then(|s| s.code());
                    Ok(matches!(
                        state,
                        Some(LoadBalancerStateEnum::Active | LoadBalancerStateEnum::Failed)
                    )
                    .then_some(lb))
                }
            }
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
    let r = aws
        .elbv2
        .describe_load_balancers()
        .load_balancer_arns(arn)
        .send()
        .await
        .map_err(aws_error("DescribeLoadBalancers"));
    match r {
        Ok(out) => Ok(out.load_balancers().first().cloned()),
        Err(e) if lb_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn find_by_name(aws: &Aws, name: &str) -> Result<Option<AwsLb>, Error> {
    let r = aws
        .elbv2
        .describe_load_balancers()
        .names(name)
        .send()
        .await
        .map_err(aws_error("DescribeLoadBalancers"));
    match r {
        Ok(out) => Ok(out.load_balancers().first().cloned()),
        Err(e) if lb_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn drop_invalid(aws: &Aws, arn: &str) -> Result<bool, Error> {
    let out = aws
        .elbv2
        .describe_load_balancer_attributes()
        .load_balancer_arn(arn)
        .send()
        .await
        .map_err(aws_error("DescribeLoadBalancerAttributes"))?;
    Ok(out
        .attributes()
        .iter()
        .any(|a| a.key() == Some(DROP_INVALID) && a.value() == Some("true")))
}

fn live(id: String, lb: &AwsLb, drop_invalid_header_fields: bool) -> Live {
    let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
    let name = lb.load_balancer_name().unwrap_or_default().to_string();
    let attrs = Attrs {
        name: name.clone(),
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
        drop_invalid_header_fields,
    };
    let outputs = [
        ("arn", json!(arn)),
        ("dns_name", json!(lb.dns_name().unwrap_or_default())),
        (
            "zone_id",
            json!(lb.canonical_hosted_zone_id().unwrap_or_default()),
        ),
        ("name", json!(name)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Live {
        id,
        kind: KIND,
        physical_id: arn,
        attrs: json!(attrs),
        outputs,
    }
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
    use aws_sdk_elasticloadbalancingv2::types::{AvailabilityZone, LoadBalancerState};

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
        let d = LoadBalancer
            .desired(
                "dev",
                "lb",
                &json!({"subnets": ["s-2", "s-1"], "drop_invalid_header_fields": false}),
            )
            .unwrap();
        assert!(LoadBalancer.warnings(&d)[0].contains("CKV_AWS_131 / ELB.4"));
        let d = LoadBalancer
            .desired("dev", "lb", &json!({"subnets": ["s-2", "s-1"]}))
            .unwrap();
        assert!(LoadBalancer.warnings(&d).is_empty());
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
        let d = LoadBalancer
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
        let l = live("lb".into(), &aws, true);
        assert_eq!(d, l.attrs);
        assert_eq!(l.outputs["zone_id"], json!("Z1"));
        assert_eq!(arn_suffix(&l.physical_id), Some("app/dev-lb/abc"));
        assert_eq!(
            arn_suffix("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/dev-tg/def"),
            Some("targetgroup/dev-tg/def")
        );
    }
}
