//! `autoscaling_group`: an EC2 Auto Scaling group launched from a launch template,
//! registered in target groups, with an optional target-tracking scaling policy.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{
    Activity, AutoScalingGroup as AwsGroup, Filter, LaunchTemplateSpecification, LifecycleState,
    MetricType, PredefinedMetricSpecification, RefreshPreferences, ScalingActivityStatusCode, Tag,
    TargetTrackingConfiguration,
};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::aws::Aws;
use crate::blueprint::refs::UNKNOWN;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, aws_error, parse, Error};
use crate::resources::elbv2::arn_suffix;
use crate::resources::fields::{check_arn_ref, check_id_ref, has_ref, id_set, ref_key};
use crate::resources::{Kind, Live, OpCx, TAG_RESOURCE, TAG_STACK};

pub struct AutoscalingGroup;

const KIND: &str = "autoscaling_group";
const CPU: &str = "ASGAverageCPUUtilization";
const REQUESTS: &str = "ALBRequestCountPerTarget";
const ELB_HEALTH_BASELINE: &str = "security baseline CKV2_AWS_15";
/// Instances may take minutes to boot and pass their lifecycle hooks.
const CAPACITY_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The largest group size the API takes: MinSize, MaxSize and DesiredCapacity are 32-bit
/// integers (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CreateAutoScalingGroup.html).
const MAX_SIZE: i64 = i32::MAX as i64;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum VersionField {
    Number(i64),
    /// `$Latest`, `$Default`, a version number, or a reference like
    /// `${web_lt.latest_version}`.
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum HealthCheckType {
    /// The instance's EC2 status checks only.
    Ec2,
    /// Also the target groups' health checks: an instance failing them is replaced.
    Elb,
}

/// A target-tracking policy: Auto Scaling adds or removes instances to keep one
/// metric near its target.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PolicyField {
    /// Keep the group's average CPU utilisation near this percentage.
    #[serde(default)]
    cpu_utilization: Option<f64>,
    /// Keep the load balancer's requests per target (per minute) near this number.
    #[serde(default)]
    requests_per_target: Option<f64>,
    /// For `requests_per_target`: the load balancer, like `${web_lb}`.
    #[serde(default)]
    load_balancer: Option<String>,
    /// For `requests_per_target`: the target group (default: the group's only one).
    #[serde(default)]
    target_group: Option<String>,
}

/// An Auto Scaling group: keeps between `min_size` and `max_size` instances from a
/// launch template running in the given subnets.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Fields {
    /// The launch template: a reference like `${web_lt}` or an id (`lt-…`).
    launch_template: String,
    /// Which version to launch: write `${web_lt.latest_version}` so that a template
    /// change updates the group (and starts an instance refresh). Default `$Default`.
    #[serde(default)]
    launch_template_version: Option<VersionField>,
    /// Subnets to launch in (spread over their zones): references or ids (`subnet-…`).
    subnets: Vec<String>,
    /// Fewest instances.
    min_size: i64,
    /// Most instances.
    max_size: i64,
    /// Instances to run (default `min_size`). Not with `scaling_policy`, which moves it
    /// between `min_size` and `max_size` itself.
    #[serde(default)]
    desired_capacity: Option<i64>,
    /// Target groups the instances are registered in: references like `${web_tg}` or ARNs.
    #[serde(default)]
    target_groups: Vec<String>,
    /// `elb` (the default with target groups) or `ec2` (the default without).
    #[serde(default)]
    health_check: Option<HealthCheckType>,
    /// Seconds after launch before health checks count (default 300).
    #[serde(default = "default_grace")]
    health_check_grace_period: i64,
    /// A target-tracking scaling policy.
    #[serde(default)]
    scaling_policy: Option<PolicyField>,
}

fn default_grace() -> i64 {
    300
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Policy {
    metric: String,
    target: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_label: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attrs {
    name: String,
    launch_template: String,
    launch_template_version: String,
    subnets: Vec<String>,
    min_size: i32,
    max_size: i32,
    /// None when a scaling policy sets it.
    desired_capacity: Option<i32>,
    target_groups: Vec<String>,
    health_check_type: String,
    health_check_grace_period: i32,
    scaling_policy: Option<Policy>,
}

#[async_trait]
impl Kind for AutoscalingGroup {
    fn name(&self) -> &'static str {
        KIND
    }

    fn attributes(&self) -> &'static [&'static str] {
        &["name", "arn"]
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
        issues.extend(check_id_ref(
            "launch_template",
            &f.launch_template,
            cx,
            "launch_template",
            "lt-",
        ));
        if let Some(VersionField::Text(v)) = &f.launch_template_version {
            let ok = v == "$Latest"
                || v == "$Default"
                || (!v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
                || has_ref(v);
            if !ok {
                issues.push(
                    Issue::new(
                        "launch_template_version",
                        format!("`{v}` is not a template version"),
                    )
                    .help("use `${my_template.latest_version}`, a number, `$Latest` or `$Default`"),
                );
            }
            if has_ref(v) {
                if let Some(r) = cx.referenced(v) {
                    if ref_key(v) != ref_key(&f.launch_template) || r.kind != "launch_template" {
                        issues.push(Issue::new(
                            "launch_template_version",
                            format!(
                                "`{v}` is not a version of the group's launch template `{}`",
                                f.launch_template
                            ),
                        ));
                    }
                }
            }
        }
        if f.subnets.is_empty() {
            issues.push(Issue::new("subnets", "the group needs at least one subnet"));
        }
        for (i, s) in f.subnets.iter().enumerate() {
            issues.extend(check_id_ref(
                &format!("subnets[{i}]"),
                s,
                cx,
                "subnet",
                "subnet-",
            ));
        }
        for (i, t) in f.target_groups.iter().enumerate() {
            issues.extend(check_arn_ref(
                &format!("target_groups[{i}]"),
                t,
                cx,
                "target_group",
            ));
        }
        // The API's sizes are 32-bit integers: a larger number must be refused here, not
        // wrapped around into another size.
        for (path, v) in [
            ("min_size", Some(f.min_size)),
            ("max_size", Some(f.max_size)),
        ]
        .into_iter()
        .chain([("desired_capacity", f.desired_capacity)])
        {
            if let Some(v) = v.filter(|v| !(0..=MAX_SIZE).contains(v)) {
                issues.push(Issue::new(
                    path,
                    format!("{path} {v} is out of range: 0 to {MAX_SIZE}"),
                ));
            }
        }
        if f.max_size < f.min_size {
            issues.push(Issue::new(
                "max_size",
                format!("max_size {} is below min_size {}", f.max_size, f.min_size),
            ));
        }
        if let Some(d) = f.desired_capacity {
            if d < f.min_size || d > f.max_size {
                issues.push(Issue::new(
                    "desired_capacity",
                    format!(
                        "desired_capacity {d} is outside min_size..max_size ({}..{})",
                        f.min_size, f.max_size
                    ),
                ));
            }
            if f.scaling_policy.is_some() {
                issues.push(
                    Issue::new(
                        "desired_capacity",
                        "the scaling policy sets the desired capacity; it cannot be set too",
                    )
                    .help("remove `desired_capacity`: the group starts with `min_size` instances"),
                );
            }
        }
        if !(0..=7200).contains(&f.health_check_grace_period) {
            issues.push(Issue::new(
                "health_check_grace_period",
                "the grace period is 0 to 7200 seconds",
            ));
        }
        if f.health_check == Some(HealthCheckType::Elb) && f.target_groups.is_empty() {
            issues.push(
                Issue::new("health_check", "ELB health checks need target groups")
                    .help("add `target_groups`, or use `health_check: ec2`"),
            );
        }
        if f.health_check == Some(HealthCheckType::Ec2) && !f.target_groups.is_empty() {
            issues.push(Issue::new("health_check", elb_health_warning()).warning());
        }
        if let Some(p) = &f.scaling_policy {
            issues.extend(check_policy(p, &f.target_groups, cx));
        }
        issues
    }

    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String> {
        let f: Fields = parse(config).map_err(|i| i.message)?;
        let min_size = common::int32("min_size", f.min_size)?;
        let max_size = common::int32("max_size", f.max_size)?;
        let desired_capacity =
            common::int32("desired_capacity", f.desired_capacity.unwrap_or(f.min_size))?;
        let grace = common::int32("health_check_grace_period", f.health_check_grace_period)?;
        let version = match &f.launch_template_version {
            None => "$Default".to_string(),
            Some(VersionField::Number(n)) => n.to_string(),
            Some(VersionField::Text(t)) => t.clone(),
        };
        let health = f.health_check.unwrap_or(if f.target_groups.is_empty() {
            HealthCheckType::Ec2
        } else {
            HealthCheckType::Elb
        });
        let policy = f
            .scaling_policy
            .as_ref()
            .map(|p| policy_attr(p, &f.target_groups))
            .transpose()?;
        Ok(json!(Attrs {
            name: group_name(stack, id),
            launch_template: f.launch_template,
            launch_template_version: version,
            subnets: id_set(f.subnets),
            min_size,
            max_size,
            desired_capacity: if policy.is_some() {
                None
            } else {
                Some(desired_capacity)
            },
            target_groups: id_set(f.target_groups),
            health_check_type: match health {
                HealthCheckType::Ec2 => "EC2",
                HealthCheckType::Elb => "ELB",
            }
            .into(),
            health_check_grace_period: grace,
            scaling_policy: policy,
        }))
    }

    fn physical_names(&self, stack: &str, id: &str, _config: &Json) -> Vec<(String, String)> {
        vec![("Auto Scaling group name".into(), group_name(stack, id))]
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &["name"]
    }

    fn warnings(&self, desired: &Json) -> Vec<String> {
        let with_targets = desired
            .get("target_groups")
            .and_then(Json::as_array)
            .is_some_and(|t| !t.is_empty());
        if with_targets && desired.get("health_check_type").and_then(Json::as_str) == Some("EC2") {
            vec![elb_health_warning()]
        } else {
            Vec::new()
        }
    }

    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        let groups: Vec<AwsGroup> = aws
            .autoscaling
            .describe_auto_scaling_groups()
            .filters(
                Filter::builder()
                    .name(format!("tag:{TAG_STACK}"))
                    .values(stack)
                    .build(),
            )
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(aws_error("DescribeAutoScalingGroups"))?;
        let ours: Vec<(String, AwsGroup)> = groups
            .into_iter()
            .filter_map(|g| Some((owned_id(&g, stack)?, g)))
            .collect();
        // Policies have no batched form for chosen groups: one DescribePolicies each.
        let mut out: Vec<Live> = futures::stream::iter(ours)
            .map(|(id, g)| async move {
                let policy = read_policy(aws, &g, &policy_name(stack, &id)).await?;
                Ok::<_, Error>(live(id, &g, policy))
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        out.sort_by(|a, b| (&a.id, &a.physical_id).cmp(&(&b.id, &b.physical_id)));
        Ok(out)
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let mut req = aws
            .autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(&a.name)
            .launch_template(template_spec(&a))
            .min_size(a.min_size)
            .max_size(a.max_size)
            .desired_capacity(a.desired_capacity.unwrap_or(a.min_size))
            .vpc_zone_identifier(a.subnets.join(","))
            .set_target_group_arns(Some(a.target_groups.clone()))
            .health_check_type(&a.health_check_type)
            .health_check_grace_period(a.health_check_grace_period);
        for (k, v) in common::tags(cx.stack, cx.id, &a.name) {
            req = req.tags(
                Tag::builder()
                    .key(k)
                    .value(v)
                    .propagate_at_launch(true)
                    .resource_id(&a.name)
                    .resource_type("auto-scaling-group")
                    .build(),
            );
        }
        // A re-run after an interrupted apply finds the group the first run made (AWS
        // would answer AlreadyExists; not every emulator does): it converges like an update.
        let existing = match describe(aws, &a.name).await? {
            Some(g) => Some(g),
            None => match with_template_retry(cx, || async {
                req.clone()
                    .send()
                    .await
                    .map_err(aws_error("CreateAutoScalingGroup"))
            })
            .await
            {
                Ok(_) => None,
                Err(e) if e.is_code(&["AlreadyExists"]) => {
                    Some(describe(aws, &a.name).await?.ok_or(e)?)
                }
                Err(e) => return Err(e),
            },
        };
        if let Some(g) = existing {
            if owned_id(&g, cx.stack).as_deref() != Some(cx.id) {
                return Err(common::name_taken("an Auto Scaling group", &a.name, cx));
            }
            cx.note("found the Auto Scaling group an earlier run created");
            let policy = read_policy(aws, &g, &policy_name(cx.stack, cx.id)).await?;
            let now = live(cx.id.to_string(), &g, policy);
            let changed = crate::diff::changed_attributes(desired, &now.attrs);
            return self.update(aws, cx, &now, desired, &changed).await;
        }
        if let Some(p) = &a.scaling_policy {
            put_policy(aws, &a.name, &policy_name(cx.stack, cx.id), p).await?;
        }
        // A new group has no activities from before this call.
        let g = wait_capacity(aws, cx, &a.name, &HashSet::new()).await?;
        let mut l = live(cx.id.to_string(), &g, a.scaling_policy.clone());
        l.attrs = json!(a);
        Ok(l)
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live_g: &Live,
        desired: &Json,
        changed: &[String],
    ) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let before: Attrs = common::from_desired(&live_g.attrs)?;
        let has = |f: &str| changed.iter().any(|c| c == f);
        let core = [
            "launch_template",
            "launch_template_version",
            "subnets",
            "min_size",
            "max_size",
            "desired_capacity",
            "health_check_type",
            "health_check_grace_period",
        ];
        // Failures from before this update are not its doing: the wait below judges only
        // the activities that start after this point.
        let earlier = activity_ids(aws, &a.name).await?;
        if core.iter().any(|f| has(f)) {
            with_template_retry(cx, || async {
                aws.autoscaling
                    .update_auto_scaling_group()
                    .auto_scaling_group_name(&a.name)
                    .launch_template(template_spec(&a))
                    .min_size(a.min_size)
                    .max_size(a.max_size)
                    .set_desired_capacity(a.desired_capacity)
                    .vpc_zone_identifier(a.subnets.join(","))
                    .health_check_type(&a.health_check_type)
                    .health_check_grace_period(a.health_check_grace_period)
                    .send()
                    .await
                    .map_err(aws_error("UpdateAutoScalingGroup"))
            })
            .await?;
        }
        if has("target_groups") {
            let added: Vec<String> = a
                .target_groups
                .iter()
                .filter(|t| !before.target_groups.contains(t))
                .cloned()
                .collect();
            let removed: Vec<String> = before
                .target_groups
                .iter()
                .filter(|t| !a.target_groups.contains(t))
                .cloned()
                .collect();
            if !added.is_empty() {
                aws.autoscaling
                    .attach_load_balancer_target_groups()
                    .auto_scaling_group_name(&a.name)
                    .set_target_group_arns(Some(added))
                    .send()
                    .await
                    .map_err(aws_error("AttachLoadBalancerTargetGroups"))?;
            }
            if !removed.is_empty() {
                aws.autoscaling
                    .detach_load_balancer_target_groups()
                    .auto_scaling_group_name(&a.name)
                    .set_target_group_arns(Some(removed))
                    .send()
                    .await
                    .map_err(aws_error("DetachLoadBalancerTargetGroups"))?;
            }
        }
        let pname = policy_name(cx.stack, cx.id);
        if has("scaling_policy") {
            match &a.scaling_policy {
                Some(p) => put_policy(aws, &a.name, &pname, p).await?,
                None => delete_policy(aws, &a.name, &pname).await?,
            }
        }
        let g = wait_capacity(aws, cx, &a.name, &earlier).await?;
        let template_changed = has("launch_template") || has("launch_template_version");
        if template_changed && !g.instances().is_empty() {
            refresh_instances(aws, cx, &a).await?;
        }
        let mut l = live(cx.id.to_string(), &g, a.scaling_policy.clone());
        l.attrs = json!(a);
        Ok(l)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let name = &live.physical_id;
        if describe(aws, name).await?.is_none() {
            return wait_instances_gone(aws, cx, name).await;
        }
        if live
            .attrs
            .get("scaling_policy")
            .is_some_and(|p| !p.is_null())
        {
            // Deleting the group deletes its policies on AWS; not on every emulator.
            delete_policy(aws, name, &policy_name(cx.stack, &live.id)).await?;
        }
        let r = common::retry_on(
            cx,
            &["ScalingActivityInProgress", "ResourceInUse"],
            Duration::from_secs(300),
            "the group is busy with a scaling activity",
            || async {
                aws.autoscaling
                    .delete_auto_scaling_group()
                    .auto_scaling_group_name(name)
                    .force_delete(true)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(aws_error("DeleteAutoScalingGroup"))
            },
        )
        .await;
        match r {
            Err(e) if group_gone(&e) => {}
            other => other?,
        }
        cx.note("terminating the group's instances");
        common::wait_for(
            cx,
            "the Auto Scaling group to be deleted",
            CAPACITY_TIMEOUT,
            || async { Ok(describe(aws, name).await?.is_none().then_some(())) },
        )
        .await?;
        wait_instances_gone(aws, cx, name).await
    }
}

fn elb_health_warning() -> String {
    format!(
        "the group has target groups but uses EC2 health checks only: instances failing the \
         load balancer's checks stay in service — {ELB_HEALTH_BASELINE}"
    )
}

fn check_policy(p: &PolicyField, target_groups: &[String], cx: &CheckCx) -> Vec<Issue> {
    let mut issues = Vec::new();
    let at = |f: &str| format!("scaling_policy.{f}");
    match (p.cpu_utilization, p.requests_per_target) {
        (None, None) => issues.push(
            Issue::new("scaling_policy", "the policy names no metric")
                .help("set `cpu_utilization` (a percentage) or `requests_per_target`"),
        ),
        (Some(_), Some(_)) => issues.push(Issue::new(
            "scaling_policy",
            "set either `cpu_utilization` or `requests_per_target`, not both",
        )),
        (Some(c), None) => {
            if !(c > 0.0 && c <= 100.0) {
                issues.push(Issue::new(
                    at("cpu_utilization"),
                    format!("{c} is not a percentage above 0 and up to 100"),
                ));
            }
            for (f, v) in [
                ("load_balancer", &p.load_balancer),
                ("target_group", &p.target_group),
            ] {
                if v.is_some() {
                    issues.push(Issue::new(
                        at(f),
                        format!("`{f}` is for `requests_per_target` only"),
                    ));
                }
            }
        }
        (None, Some(r)) => {
            if r <= 0.0 {
                issues.push(Issue::new(
                    at("requests_per_target"),
                    "the target must be above 0",
                ));
            }
            match &p.load_balancer {
                None => issues.push(
                    Issue::new(
                        at("load_balancer"),
                        "requests per target are counted by a load balancer",
                    )
                    .help("set `load_balancer: ${my_load_balancer}`"),
                ),
                Some(lb) => {
                    issues.extend(check_arn_ref(&at("load_balancer"), lb, cx, "load_balancer"))
                }
            }
            match &p.target_group {
                Some(tg) => {
                    issues.extend(check_arn_ref(&at("target_group"), tg, cx, "target_group"));
                    if !target_groups.iter().any(|t| ref_key(t) == ref_key(tg)) {
                        issues.push(Issue::new(
                            at("target_group"),
                            format!("`{tg}` is not one of the group's target_groups"),
                        ));
                    }
                }
                None if target_groups.len() != 1 => issues.push(
                    Issue::new(
                        at("target_group"),
                        format!(
                            "the group has {} target groups: say which one counts",
                            target_groups.len()
                        ),
                    )
                    .help("set `target_group: ${my_target_group}`"),
                ),
                None => {}
            }
        }
    }
    issues
}

fn policy_attr(p: &PolicyField, target_groups: &[String]) -> Result<Policy, String> {
    match (p.cpu_utilization, p.requests_per_target) {
        (Some(c), _) => Ok(Policy {
            metric: CPU.into(),
            target: c,
            resource_label: None,
        }),
        (None, Some(r)) => {
            let lb = p.load_balancer.as_deref().unwrap_or_default();
            let tg = p
                .target_group
                .as_deref()
                .or(target_groups.first().map(String::as_str))
                .unwrap_or_default();
            let label = match (arn_suffix(lb), arn_suffix(tg)) {
                (Some(l), Some(t)) => format!("{l}/{t}"),
                _ if common::unknown(lb) || common::unknown(tg) => UNKNOWN.to_string(),
                _ => {
                    return Err(format!(
                        "scaling_policy: cannot tell the load balancer and target group from `{lb}` and `{tg}`"
                    ))
                }
            };
            Ok(Policy {
                metric: REQUESTS.into(),
                target: r,
                resource_label: Some(label),
            })
        }
        (None, None) => Err("scaling_policy names no metric".into()),
    }
}

/// Names: up to 255 of letters, digits and `-_.`.
fn group_name(stack: &str, id: &str) -> String {
    common::physical_name(stack, id, 255, name_char, "")
}

fn policy_name(stack: &str, id: &str) -> String {
    common::physical_name(stack, &format!("{id}-target-tracking"), 255, name_char, "")
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.".contains(c)
}

fn owned_id(g: &AwsGroup, stack: &str) -> Option<String> {
    let tag = |k: &str| {
        g.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
    };
    (tag(TAG_STACK) == Some(stack))
        .then(|| tag(TAG_RESOURCE).map(str::to_string))
        .flatten()
}

fn template_spec(a: &Attrs) -> LaunchTemplateSpecification {
    LaunchTemplateSpecification::builder()
        .launch_template_id(&a.launch_template)
        .version(&a.launch_template_version)
        .build()
}

fn group_gone(e: &Error) -> bool {
    // AWS says "AutoScalingGroup name not found" as a ValidationError.
    matches!(e, Error::Aws { code: Some(c), message, .. }
        if c == "ValidationError" && message.contains("not found"))
}

async fn describe(aws: &Aws, name: &str) -> Result<Option<AwsGroup>, Error> {
    let out = aws
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(aws_error("DescribeAutoScalingGroups"))?;
    Ok(out.auto_scaling_groups().first().cloned())
}

async fn read_policy(aws: &Aws, g: &AwsGroup, name: &str) -> Result<Option<Policy>, Error> {
    let out = aws
        .autoscaling
        .describe_policies()
        .auto_scaling_group_name(g.auto_scaling_group_name().unwrap_or_default())
        .policy_names(name)
        .send()
        .await
        .map_err(aws_error("DescribePolicies"))?;
    Ok(out
        .scaling_policies()
        .iter()
        .find(|p| p.policy_name() == Some(name))
        .map(|p| {
            let t = p.target_tracking_configuration();
            let spec = t.and_then(|t| t.predefined_metric_specification());
            Policy {
                metric: spec
                    .and_then(|s| s.predefined_metric_type())
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_else(|| "custom".into()),
                target: t.and_then(|t| t.target_value()).unwrap_or_default(),
                resource_label: spec
                    .and_then(|s| s.resource_label())
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            }
        }))
}

async fn put_policy(aws: &Aws, group: &str, name: &str, p: &Policy) -> Result<(), Error> {
    let spec = PredefinedMetricSpecification::builder()
        .predefined_metric_type(MetricType::from(p.metric.as_str()))
        .set_resource_label(p.resource_label.clone())
        .build();
    let config = TargetTrackingConfiguration::builder()
        .predefined_metric_specification(spec)
        .target_value(p.target)
        .build();
    aws.autoscaling
        .put_scaling_policy()
        .auto_scaling_group_name(group)
        .policy_name(name)
        .policy_type("TargetTrackingScaling")
        .target_tracking_configuration(config)
        .send()
        .await
        .map(|_| ())
        .map_err(aws_error("PutScalingPolicy"))
}

async fn delete_policy(aws: &Aws, group: &str, name: &str) -> Result<(), Error> {
    let r = aws
        .autoscaling
        .delete_policy()
        .auto_scaling_group_name(group)
        .policy_name(name)
        .send()
        .await
        .map_err(aws_error("DeletePolicy"));
    match r {
        Err(e) if group_gone(&e) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Rolls the running instances onto the new template version. Not waited for: AWS
/// replaces them one batch at a time, keeping the group at full capacity.
async fn refresh_instances(aws: &Aws, cx: &OpCx<'_>, a: &Attrs) -> Result<(), Error> {
    let r = aws
        .autoscaling
        .start_instance_refresh()
        .auto_scaling_group_name(&a.name)
        .preferences(
            RefreshPreferences::builder()
                .min_healthy_percentage(100)
                .max_healthy_percentage(200)
                .skip_matching(true)
                .instance_warmup(a.health_check_grace_period)
                .build(),
        )
        .send()
        .await
        .map_err(aws_error("StartInstanceRefresh"));
    match r {
        Ok(out) => {
            cx.note(format!(
                "instance refresh {} started: AWS replaces the running instances with new-version ones",
                out.instance_refresh_id().unwrap_or("?")
            ));
            Ok(())
        }
        Err(e) if e.is_code(&["InstanceRefreshInProgress"]) => {
            cx.note(format!(
                "an instance refresh is already running; instances launched from now on use version {}",
                a.launch_template_version
            ));
            Ok(())
        }
        Err(e) if aws.local => {
            cx.note(format!(
                "no instance refresh on the emulator ({e}); new instances use version {}",
                a.launch_template_version
            ));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Waits until the group has its desired number of InService, healthy instances, or
/// Auto Scaling reports that launching them failed.
///
/// AWS answers CreateAutoScalingGroup at once and launches the instances afterwards; when a
/// launch fails (vCPU limit, instance type not offered in the zone, AMI of another
/// architecture) the group simply stays short, and the reason is only in its scaling
/// activities: "If an attempt to launch instances failed, the StatusCode value is Failed or
/// Cancelled and the StatusMessage element in the response indicates the cause of the
/// failure" (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeScalingActivities.html).
/// Reading them ends the wait at once with AWS's reason instead of a 15-minute timeout
/// (hashicorp/terraform#14480, terraform-provider-aws#29753). `before`: the activities the
/// group had before this operation, which are not its doing.
async fn wait_capacity(
    aws: &Aws,
    cx: &OpCx<'_>,
    name: &str,
    before: &HashSet<String>,
) -> Result<AwsGroup, Error> {
    let last_failure: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let r = common::wait_for(
        cx,
        "the group's instances to be InService",
        CAPACITY_TIMEOUT,
        || async {
            let Some(g) = describe(aws, name).await? else {
                return Ok(None);
            };
            let want = g.desired_capacity().unwrap_or_default() as usize;
            let ready = g
                .instances()
                .iter()
                .filter(|i| {
                    i.lifecycle_state() == Some(&LifecycleState::InService)
                        && i.health_status() == Some("Healthy")
                })
                .count();
            if ready >= want {
                return Ok(Some(g));
            }
            match launch_verdict(&recent_activities(aws, name).await?, before) {
                Launches::Failed(e) => return Err(e),
                Launches::Retrying(why) => {
                    cx.note(format!(
                        "{ready} of {want} instances InService; a launch failed and Auto Scaling is retrying: {why}"
                    ));
                    *last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                }
                Launches::Going => cx.note(format!("{ready} of {want} instances InService")),
            }
            Ok(None)
        },
    )
    .await;
    match (
        r,
        last_failure.into_inner().unwrap_or_else(|p| p.into_inner()),
    ) {
        (Err(Error::Timeout { what, secs }), Some(why)) => Err(Error::Timeout {
            what: format!("{what} (the last launch failed: {why})"),
            secs,
        }),
        (r, _) => r,
    }
}

/// What the group's recent scaling activities say about the launches of this operation.
#[derive(Debug)]
enum Launches {
    /// Nothing failed (or a later launch succeeded): keep waiting.
    Going,
    /// The latest launch failed for a reason that passes (AWS's capacity in a zone):
    /// Auto Scaling retries by itself, so keep waiting, saying why.
    Retrying(String),
    /// The latest launch failed for a reason that does not pass by itself.
    Failed(Error),
}

/// Judges the activities that are not in `before`: the outcome of the latest one that has
/// ended decides. A failure followed by a successful launch is AWS recovering (a zone out
/// of capacity, then another zone), not a reason to stop. Insufficient capacity is left
/// to Auto Scaling's own retries, as AWS says ("Our system will be working on provisioning
/// additional capacity"; terraform-provider-aws#41580 and #33665 show applies failed on it
/// needlessly).
fn launch_verdict(activities: &[Activity], before: &HashSet<String>) -> Launches {
    let latest = activities
        .iter()
        .filter(|a| !a.activity_id().is_some_and(|id| before.contains(id)))
        .filter(|a| {
            matches!(
                a.status_code(),
                Some(
                    ScalingActivityStatusCode::Successful
                        | ScalingActivityStatusCode::Failed
                        | ScalingActivityStatusCode::Cancelled
                )
            )
        })
        .max_by(|a, b| a.start_time().cmp(&b.start_time()));
    let Some(act) = latest else {
        return Launches::Going;
    };
    let status = match act.status_code() {
        Some(s @ (ScalingActivityStatusCode::Failed | ScalingActivityStatusCode::Cancelled)) => s,
        _ => return Launches::Going,
    };
    let why = act
        .status_message()
        .or(act.description())
        .unwrap_or("no reason given")
        .to_string();
    if insufficient_capacity(&why) {
        return Launches::Retrying(why);
    }
    Launches::Failed(Error::Aws {
        operation: "Launching the group's instances".into(),
        code: Some(status.as_str().to_string()),
        message: format!(
            "Auto Scaling activity {} {}: {why} (the group stays and keeps trying: \
             fix the cause and apply again, or destroy the stack)",
            act.activity_id().unwrap_or("?"),
            status.as_str()
        ),
    })
}

/// EC2's InsufficientInstanceCapacity as Auto Scaling reports it: "We currently do not have
/// sufficient t3.micro capacity in the Availability Zone you requested (…). Our system will
/// be working on provisioning additional capacity." Spot: "There is no Spot capacity
/// available that matches your request."
fn insufficient_capacity(message: &str) -> bool {
    message.contains("do not have sufficient") || message.contains("no Spot capacity available")
}

/// The group's most recent activities. Auto Scaling lists the ones in progress first,
/// then the newest; one page of 100 holds every activity an operation of securecart
/// starts (one per instance launched), so the rest of the six weeks AWS keeps is not read.
async fn recent_activities(aws: &Aws, name: &str) -> Result<Vec<Activity>, Error> {
    Ok(aws
        .autoscaling
        .describe_scaling_activities()
        .auto_scaling_group_name(name)
        .max_records(100)
        .send()
        .await
        .map_err(aws_error("DescribeScalingActivities"))?
        .activities()
        .to_vec())
}

/// The ids of the group's recent activities, to tell later ones apart.
async fn activity_ids(aws: &Aws, name: &str) -> Result<HashSet<String>, Error> {
    Ok(recent_activities(aws, name)
        .await?
        .iter()
        .filter_map(|a| a.activity_id().map(str::to_string))
        .collect())
}

/// Auto Scaling may not see a launch template EC2 created a moment ago: "You must use a
/// valid fully-formed launch template. The specified launch template, with template ID
/// lt-…, does not exist." (terraform-provider-aws retries it:
/// https://github.com/hashicorp/terraform-provider-aws/pull/40088). Other "fully-formed
/// launch template" errors (a key pair or image that does not exist) are for good.
fn template_not_ready(e: &Error) -> bool {
    common::is_aws_message(e, &["ValidationError"], "The specified launch template")
        && common::is_aws_message(e, &["ValidationError"], "does not exist")
}

/// How long Auto Scaling may take to see a new launch template (or version).
const TEMPLATE_SETTLE: Duration = Duration::from_secs(30);

/// Runs a create or update of the group, retrying briefly while Auto Scaling does not see
/// its launch template yet.
async fn with_template_retry<T, F, Fut>(cx: &OpCx<'_>, op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    common::retry_while(
        cx,
        template_not_ready,
        TEMPLATE_SETTLE,
        "Auto Scaling does not see the new launch template yet (EC2 changes take a moment to reach it)",
        op,
    )
    .await
}

/// Waits until no instance launched by the group is left (terminated ones are gone).
async fn wait_instances_gone(aws: &Aws, cx: &OpCx<'_>, name: &str) -> Result<(), Error> {
    use aws_sdk_ec2::types::Filter as Ec2Filter;
    common::wait_for(
        cx,
        "the group's instances to be terminated",
        CAPACITY_TIMEOUT,
        || async {
            let left = aws
                .ec2
                .describe_instances()
                .filters(
                    Ec2Filter::builder()
                        .name("tag:aws:autoscaling:groupName")
                        .values(name)
                        .build(),
                )
                .filters(
                    Ec2Filter::builder()
                        .name("instance-state-name")
                        .set_values(Some(
                            ["pending", "running", "shutting-down", "stopping", "stopped"]
                                .map(String::from)
                                .to_vec(),
                        ))
                        .build(),
                )
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(aws_error("DescribeInstances"))?;
            let n: usize = left.iter().map(|r| r.instances().len()).sum();
            if n == 0 {
                return Ok(Some(()));
            }
            cx.note(format!("{n} instances of the group still terminating"));
            Ok(None)
        },
    )
    .await
}

fn live(id: String, g: &AwsGroup, policy: Option<Policy>) -> Live {
    let name = g.auto_scaling_group_name().unwrap_or_default().to_string();
    let lt = g.launch_template();
    let attrs = Attrs {
        name: name.clone(),
        launch_template: lt
            .and_then(|t| t.launch_template_id())
            .unwrap_or_default()
            .to_string(),
        launch_template_version: lt
            .and_then(|t| t.version())
            .unwrap_or("$Default")
            .to_string(),
        subnets: id_set(
            g.vpc_zone_identifier()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        min_size: g.min_size().unwrap_or_default(),
        max_size: g.max_size().unwrap_or_default(),
        desired_capacity: if policy.is_some() {
            None
        } else {
            g.desired_capacity()
        },
        target_groups: id_set(g.target_group_arns().to_vec()),
        health_check_type: g.health_check_type().unwrap_or("EC2").to_string(),
        health_check_grace_period: g.health_check_grace_period().unwrap_or_default(),
        scaling_policy: policy,
    };
    let outputs = [
        ("name", json!(name)),
        ("arn", json!(g.auto_scaling_group_arn().unwrap_or_default())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Live {
        id,
        kind: KIND,
        physical_id: name,
        attrs: json!(attrs),
        outputs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use aws_sdk_autoscaling::types::TagDescription;

    fn asg(body: &str) -> Vec<String> {
        problems(&format!(
            "
name: t
resources:
  vpc:
    type: vpc
    cidr_block: 10.0.0.0/16
  a:
    type: subnet
    vpc: ${{vpc}}
    cidr_block: 10.0.1.0/24
    availability_zone: us-east-1a
  lt:
    type: launch_template
  tg:
    type: target_group
    vpc: ${{vpc}}
    port: 80
  lb:
    type: load_balancer
    subnets: [subnet-1, subnet-2]
  g:
    type: autoscaling_group
    launch_template: ${{lt}}
    subnets: [\"${{a}}\"]
{body}"
        ))
    }

    /// An activity as DescribeScalingActivities answers it (recorded AWS messages below).
    fn activity(id: &str, at: i64, status: ScalingActivityStatusCode, message: &str) -> Activity {
        Activity::builder()
            .activity_id(id)
            .auto_scaling_group_name("t-g")
            .cause(format!("At 2026-12-07T10:00:{at:02}Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 0 to 2."))
            .description("Launching a new EC2 instance.  Status Reason: see StatusMessage")
            .start_time(aws_smithy_types::DateTime::from_secs(1_796_000_000 + at))
            .status_code(status)
            .set_status_message((!message.is_empty()).then(|| message.to_string()))
            .progress(100)
            .build()
    }

    const VCPU_LIMIT: &str = "You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit. Launching EC2 instance failed.";
    const NOT_OFFERED: &str = "Your requested instance type (t4g.micro) is not supported in your requested Availability Zone (us-east-1e). Please retry your request by not specifying an Availability Zone or choosing us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f. Launching EC2 instance failed.";
    const ARCHITECTURE: &str = "The architecture 'arm64' of the specified instance type does not match the architecture 'x86_64' of the specified AMI. Specify an instance type and an AMI that have matching architectures, and try again. You can use 'describe-instance-types' or 'describe-images' to discover the architecture of the instance type or AMI. Launching EC2 instance failed.";
    const NO_CAPACITY: &str = "We currently do not have sufficient r6a.xlarge capacity in the Availability Zone you requested (ap-southeast-2b). Our system will be working on provisioning additional capacity. You can currently get r6a.xlarge capacity by not specifying an Availability Zone in your request or choosing ap-southeast-2a, ap-southeast-2c. Launching EC2 instance failed.";

    #[test]
    fn a_failed_launch_ends_the_wait_with_aws_reason() {
        use ScalingActivityStatusCode::*;
        let none = HashSet::new();
        for reason in [VCPU_LIMIT, NOT_OFFERED, ARCHITECTURE] {
            let acts = [
                activity("b", 2, InProgress, ""),
                activity("a", 1, Failed, reason),
            ];
            match launch_verdict(&acts, &none) {
                Launches::Failed(e) => {
                    let text = e.to_string();
                    assert!(text.contains(reason), "{text}");
                    assert!(text.contains("activity a Failed"), "{text}");
                    assert_eq!(e.code(), Some("Failed"));
                }
                other => panic!("{reason}: {other:?}"),
            }
        }
        let cancelled = [activity("c", 1, Cancelled, "")];
        assert!(matches!(
            launch_verdict(&cancelled, &none),
            Launches::Failed(e) if e.to_string().contains("Status Reason")
        ));
    }

    #[test]
    fn launches_that_pass_or_predate_the_change_do_not_end_the_wait() {
        use ScalingActivityStatusCode::*;
        let none = HashSet::new();
        // Nothing yet, or still launching.
        assert!(matches!(launch_verdict(&[], &none), Launches::Going));
        assert!(matches!(
            launch_verdict(&[activity("a", 1, PreInService, "")], &none),
            Launches::Going
        ));
        // A zone out of capacity, then a launch elsewhere that worked: AWS recovered.
        let recovered = [
            activity("b", 5, Successful, ""),
            activity("a", 1, Failed, NOT_OFFERED),
        ];
        assert!(matches!(launch_verdict(&recovered, &none), Launches::Going));
        // The same failure again after that success decides.
        let again = [
            activity("c", 9, Failed, NOT_OFFERED),
            activity("b", 5, Successful, ""),
        ];
        assert!(matches!(launch_verdict(&again, &none), Launches::Failed(_)));
        // Insufficient capacity passes: Auto Scaling retries it by itself.
        match launch_verdict(&[activity("a", 1, Failed, NO_CAPACITY)], &none) {
            Launches::Retrying(why) => assert_eq!(why, NO_CAPACITY),
            other => panic!("{other:?}"),
        }
        // A failure from before this operation is not its doing.
        let before: HashSet<String> = ["old".to_string()].into();
        let old = [activity("old", 1, Failed, VCPU_LIMIT)];
        assert!(matches!(launch_verdict(&old, &before), Launches::Going));
    }

    #[test]
    fn only_a_template_auto_scaling_cannot_see_yet_is_retried() {
        let aws = |message: &str| Error::Aws {
            operation: "CreateAutoScalingGroup".into(),
            code: Some("ValidationError".into()),
            message: format!("ValidationError: {message}"),
        };
        assert!(template_not_ready(&aws("You must use a valid fully-formed launch template. The specified launch template, with template ID lt-0123456789abcdef0, does not exist.")));
        assert!(!template_not_ready(&aws(
            "You must use a valid fully-formed launch template. The key pair 'web' does not exist"
        )));
        assert!(!template_not_ready(&aws(
            "You must use a valid fully-formed launch template. The image id '[ami-04c61f099db4b898d]' does not exist"
        )));
        assert!(!template_not_ready(&aws(
            "AutoScalingGroup name not found - t-g"
        )));
    }

    #[test]
    fn good_groups_pass() {
        let p = asg("    launch_template_version: ${lt.latest_version}\n    min_size: 2\n    max_size: 4\n    target_groups: [\"${tg}\"]\n    scaling_policy:\n      requests_per_target: 500\n      load_balancer: ${lb}\n");
        assert!(p.is_empty(), "{p:?}");
        let p = asg("    min_size: 1\n    max_size: 3\n    desired_capacity: 2\n    scaling_policy: {cpu_utilization: 50}\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("the scaling policy sets the desired capacity"),
            "{p:?}"
        );
    }

    #[test]
    fn bad_groups_are_explained() {
        let p = asg("    launch_template_version: latest\n    min_size: 3\n    max_size: 2\n    desired_capacity: 5\n    target_groups: [\"${lb}\"]\n    health_check: ec2\n    scaling_policy: {requests_per_target: 10}\n");
        let all = p.join("\n");
        for want in [
            "`latest` is not a template version",
            "max_size 2 is below min_size 3",
            "desired_capacity 5 is outside",
            "refers to `lb` (type load_balancer)",
            "CKV2_AWS_15",
            "requests per target are counted by a load balancer",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
    }

    #[test]
    fn desired_defaults() {
        let d = AutoscalingGroup
            .desired("dev", "g", &json!({"launch_template": "lt-1", "launch_template_version": 3, "subnets": ["s-2", "s-1"], "min_size": 2, "max_size": 4, "target_groups": ["arn:tg"]}))
            .unwrap();
        assert_eq!(d["launch_template_version"], json!("3"));
        assert_eq!(d["desired_capacity"], json!(2));
        assert_eq!(d["health_check_type"], json!("ELB"));
        assert_eq!(d["subnets"], json!(["s-1", "s-2"]));
        assert!(AutoscalingGroup.warnings(&d).is_empty());
        let d = AutoscalingGroup
            .desired("dev", "g", &json!({"launch_template": "lt-1", "subnets": ["s-1"], "min_size": 2, "max_size": 4,
                "target_groups": ["arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/t/2"],
                "scaling_policy": {"requests_per_target": 100, "load_balancer": "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/l/1"}}))
            .unwrap();
        assert_eq!(d["desired_capacity"], Json::Null);
        assert_eq!(
            d["scaling_policy"],
            json!({"metric": REQUESTS, "target": 100.0, "resource_label": "app/l/1/targetgroup/t/2"})
        );
    }

    #[test]
    fn read_shape_matches_desired() {
        let d = AutoscalingGroup
            .desired("dev", "g", &json!({"launch_template": "lt-1", "launch_template_version": "2", "subnets": ["s-2", "s-1"], "min_size": 2, "max_size": 4, "target_groups": ["arn:tg"], "scaling_policy": {"cpu_utilization": 50}}))
            .unwrap();
        let g = AwsGroup::builder()
            .auto_scaling_group_name("dev-g")
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_id("lt-1")
                    .version("2")
                    .build(),
            )
            .vpc_zone_identifier("s-1,s-2")
            .min_size(2)
            .max_size(4)
            .desired_capacity(3)
            .target_group_arns("arn:tg")
            .health_check_type("ELB")
            .health_check_grace_period(300)
            .tags(
                TagDescription::builder()
                    .key(TAG_STACK)
                    .value("dev")
                    .build(),
            )
            .tags(
                TagDescription::builder()
                    .key(TAG_RESOURCE)
                    .value("g")
                    .build(),
            )
            .build();
        let p = Policy {
            metric: CPU.into(),
            target: 50.0,
            resource_label: None,
        };
        let l = live("g".into(), &g, Some(p));
        assert_eq!(d, l.attrs);
        assert_eq!(owned_id(&g, "dev"), Some("g".into()));
        assert_eq!(owned_id(&g, "dev2"), None);
    }
}
