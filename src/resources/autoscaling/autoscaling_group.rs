//! `autoscaling_group`: an EC2 Auto Scaling group launched from a launch template,
//! registered in target groups, with an optional target-tracking scaling policy.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{
    AutoScalingGroup as AwsGroup, Filter, LaunchTemplateSpecification, MetricType,
    PredefinedMetricSpecification, RefreshPreferences, Tag, TargetTrackingConfiguration,
};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    activity_ids, describe, group_gone, owned_id, wait_capacity, wait_instances_gone,
    with_template_retry, CAPACITY_TIMEOUT,
};
use crate::aws::Aws;
use crate::blueprint::refs::UNKNOWN;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, Error};
use crate::resources::elbv2::arn_suffix;
use crate::resources::fields::{check_arn_ref, check_id_ref, has_ref, id_set, ref_key};
use crate::resources::typed::{
    attrs_of, Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx, TAG_STACK};

pub struct AutoscalingGroup;

const CPU: &str = "ASGAverageCPUUtilization";
const REQUESTS: &str = "ALBRequestCountPerTarget";
const ELB_HEALTH_BASELINE: &str = "security baseline CKV2_AWS_15";
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
pub struct Fields {
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
pub struct Policy {
    metric: String,
    target: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_label: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attrs {
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
impl Resource for AutoscalingGroup {
    const KIND: &'static str = "autoscaling_group";
    const ATTRIBUTES: &'static [&'static str] = &["name", "arn"];
    const REPLACE_ON: &'static [&'static str] = &["name"];
    // A re-run after an interrupted apply finds the group the first run made (AWS would
    // answer AlreadyExists; not every emulator does, so look first).
    const ADOPT: Adopt = Adopt::LookFirst;
    // The interrupted create may have died waiting for the instances: the update waits
    // for them (and reports a failed launch) even when nothing else is to change.
    const UPDATE_ADOPTED: bool = true;

    /// Typical time on AWS: Create waits until the instances are InService: 1–2 minutes
    /// (labs/02/README.md); an update starts an instance refresh and does not wait for it;
    /// delete scales to zero and waits for the instances to terminate, 2–3 minutes.
    const TYPICAL: Typical = Typical {
        create: 120,
        update: 10,
        delete: 150,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    /// The group and its target-tracking policy (read by the policy's name).
    type Raw = (AwsGroup, Option<Policy>);

    fn check(&self, _id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
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

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
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
        let a = Attrs {
            name: group_name(site.stack, site.id),
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
        };
        Ok((a, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, _: &Fields) -> Vec<(String, String)> {
        vec![("Auto Scaling group name".into(), group_name(stack, id))]
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        if !a.target_groups.is_empty() && a.health_check_type == "EC2" {
            vec![elb_health_warning()]
        } else {
            Vec::new()
        }
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
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
            .await?;
        let ours: Vec<(String, AwsGroup)> = groups
            .into_iter()
            .filter_map(|g| Some((owned_id(&g, stack)?, g)))
            .collect();
        // Policies have no batched form for chosen groups: one DescribePolicies each.
        futures::stream::iter(ours)
            .map(|(id, g)| async move {
                let policy = read_policy(aws, &g, &policy_name(stack, &id)).await?;
                Ok::<_, Error>((id, (g, policy)))
            })
            .buffer_unordered(8)
            .try_collect()
            .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let Some(g) = describe(aws, &a.name).await? else {
            return Ok(None);
        };
        let owner = owned_id(&g, stack);
        // The policy is named after the group's id: only one of the stack's has one.
        let policy = match &owner {
            Some(id) => read_policy(aws, &g, &policy_name(stack, id)).await?,
            None => None,
        };
        Ok(Some(Found {
            owner,
            raw: (g, policy),
        }))
    }

    fn observe(&self, (g, policy): &Self::Raw) -> Observed<Attrs> {
        let name = g.auto_scaling_group_name().unwrap_or_default().to_string();
        let lt = g.launch_template();
        Observed {
            physical_id: name.clone(),
            outputs: vec![
                ("name", json!(name)),
                ("arn", json!(g.auto_scaling_group_arn().unwrap_or_default())),
            ],
            attrs: Attrs {
                name,
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
                scaling_policy: policy.clone(),
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
            .autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(&a.name)
            .launch_template(template_spec(a))
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
        with_template_retry(cx, || async {
            req.clone().send().await.map_err(Error::from)
        })
        .await?;
        if let Some(p) = &a.scaling_policy {
            put_policy(aws, &a.name, &policy_name(cx.stack, cx.id), p).await?;
        }
        // A new group has no activities from before this call.
        let g = wait_capacity(aws, cx, &a.name, &HashSet::new()).await?;
        Ok((g, a.scaling_policy.clone()))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<Self::Raw>, Error> {
        let before = attrs_of::<Self>(live)?;
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
        if changed.any(&core) {
            with_template_retry(cx, || async {
                aws.autoscaling
                    .update_auto_scaling_group()
                    .auto_scaling_group_name(&a.name)
                    .launch_template(template_spec(a))
                    .min_size(a.min_size)
                    .max_size(a.max_size)
                    .set_desired_capacity(a.desired_capacity)
                    .vpc_zone_identifier(a.subnets.join(","))
                    .health_check_type(&a.health_check_type)
                    .health_check_grace_period(a.health_check_grace_period)
                    .send()
                    .await
                    .map_err(Error::from)
            })
            .await?;
        }
        if changed.has("target_groups") {
            let added = missing_from(&a.target_groups, &before.target_groups);
            let removed = missing_from(&before.target_groups, &a.target_groups);
            if !added.is_empty() {
                aws.autoscaling
                    .attach_load_balancer_target_groups()
                    .auto_scaling_group_name(&a.name)
                    .set_target_group_arns(Some(added))
                    .send()
                    .await?;
            }
            if !removed.is_empty() {
                aws.autoscaling
                    .detach_load_balancer_target_groups()
                    .auto_scaling_group_name(&a.name)
                    .set_target_group_arns(Some(removed))
                    .send()
                    .await?;
            }
        }
        let pname = policy_name(cx.stack, cx.id);
        if changed.has("scaling_policy") {
            match &a.scaling_policy {
                Some(p) => put_policy(aws, &a.name, &pname, p).await?,
                None => delete_policy(aws, &a.name, &pname).await?,
            }
        }
        let g = wait_capacity(aws, cx, &a.name, &earlier).await?;
        if changed.any(&["launch_template", "launch_template_version"]) && !g.instances().is_empty()
        {
            refresh_instances(aws, cx, a).await?;
        }
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let name = &live.physical_id;
        if describe(aws, name).await?.is_none() {
            return wait_instances_gone(aws, cx, name).await;
        }
        if attrs_of::<Self>(live)?.scaling_policy.is_some() {
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
                    .await?;
                Ok(())
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

/// The entries of `a` that `b` lacks.
fn missing_from(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|t| !b.contains(t)).cloned().collect()
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

fn template_spec(a: &Attrs) -> LaunchTemplateSpecification {
    LaunchTemplateSpecification::builder()
        .launch_template_id(&a.launch_template)
        .version(&a.launch_template_version)
        .build()
}

async fn read_policy(aws: &Aws, g: &AwsGroup, name: &str) -> Result<Option<Policy>, Error> {
    let out = aws
        .autoscaling
        .describe_policies()
        .auto_scaling_group_name(g.auto_scaling_group_name().unwrap_or_default())
        .policy_names(name)
        .send()
        .await?;
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
        .await?;
    Ok(())
}

async fn delete_policy(aws: &Aws, group: &str, name: &str) -> Result<(), Error> {
    let r = aws
        .autoscaling
        .delete_policy()
        .auto_scaling_group_name(group)
        .policy_name(name)
        .send()
        .await
        .map_err(Error::from);
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
        .map_err(Error::from);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::{Kind, TAG_RESOURCE};
    use aws_sdk_autoscaling::types::TagDescription;
    use serde_json::Value as Json;

    const K: Typed<AutoscalingGroup> = Typed(AutoscalingGroup);

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
        let d = K
            .desired("dev", "g", &json!({"launch_template": "lt-1", "launch_template_version": 3, "subnets": ["s-2", "s-1"], "min_size": 2, "max_size": 4, "target_groups": ["arn:tg"]}))
            .unwrap();
        assert_eq!(d["launch_template_version"], json!("3"));
        assert_eq!(d["desired_capacity"], json!(2));
        assert_eq!(d["health_check_type"], json!("ELB"));
        assert_eq!(d["subnets"], json!(["s-1", "s-2"]));
        assert!(K.warnings(&d).is_empty());
        let d = K
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
        let d = K
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
        let o = AutoscalingGroup.observe(&(g.clone(), Some(p)));
        assert_eq!(d, json!(o.attrs));
        assert_eq!(owned_id(&g, "dev"), Some("g".into()));
        assert_eq!(owned_id(&g, "dev2"), None);
    }
}
