//! `target_group`: an Elastic Load Balancing target group of EC2 instances (or IP
//! addresses) with its health check.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Matcher, ProtocolEnum, TargetGroup as AwsTg, TargetGroupAttribute, TargetTypeEnum,
};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::{elb_name, tag_list, tags_of};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, aws_error, parse, Error};
use crate::resources::fields::check_id_ref;
use crate::resources::{Kind, Live, OpCx};

pub struct TargetGroup;

const KIND: &str = "target_group";
const DEREGISTRATION: &str = "deregistration_delay.timeout_seconds";

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
enum Protocol {
    #[default]
    Http,
    Https,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
        }
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
enum TargetType {
    /// EC2 instances, registered by id (an Auto Scaling group does that itself).
    #[default]
    Instance,
    /// IP addresses.
    Ip,
}

/// A target group: where a listener sends requests, and how the load balancer checks
/// that each target is healthy.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Fields {
    /// `HTTP` (the default) or `HTTPS`: how the load balancer talks to the targets.
    /// Changing it replaces the target group.
    #[serde(default)]
    protocol: Protocol,
    /// Port the targets listen on. Changing it replaces the target group.
    port: i64,
    /// The VPC of the targets: a reference like `${vpc}` or an id (`vpc-…`). Changing it
    /// replaces the target group.
    vpc: String,
    /// `instance` (the default) or `ip`. Changing it replaces the target group.
    #[serde(default)]
    target_type: TargetType,
    /// How targets are checked. Changed in place.
    #[serde(default)]
    health_check: HealthCheckField,
    /// Seconds a deregistered target keeps its open connections (0 to 3600, default 300).
    /// A short delay makes scale-in and destroy faster. Changed in place.
    #[serde(default = "default_deregistration")]
    deregistration_delay: i64,
}

fn default_deregistration() -> i64 {
    300
}

/// The health check: a request to `path` every `interval` seconds.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct HealthCheckField {
    /// Path requested (default `/`).
    #[serde(default = "default_path")]
    path: String,
    /// Port checked; default: the port traffic goes to.
    #[serde(default)]
    port: Option<i64>,
    /// `HTTP` or `HTTPS`; default: the target group's protocol.
    #[serde(default)]
    protocol: Option<Protocol>,
    /// Seconds between checks, 5 to 300 (default 30).
    #[serde(default = "default_interval")]
    interval: i64,
    /// Seconds without an answer that fail a check, 2 to 120 and below `interval`
    /// (default 5).
    #[serde(default = "default_timeout")]
    timeout: i64,
    /// Checks in a row that make an unhealthy target healthy, 2 to 10 (default 5).
    #[serde(default = "default_healthy")]
    healthy_threshold: i64,
    /// Checks in a row that make a healthy target unhealthy, 2 to 10 (default 2).
    #[serde(default = "default_unhealthy")]
    unhealthy_threshold: i64,
    /// HTTP codes that count as healthy: `200`, `200,302` or `200-399` (default `200`).
    #[serde(default = "default_matcher")]
    matcher: String,
}

impl Default for HealthCheckField {
    fn default() -> Self {
        HealthCheckField {
            path: default_path(),
            port: None,
            protocol: None,
            interval: default_interval(),
            timeout: default_timeout(),
            healthy_threshold: default_healthy(),
            unhealthy_threshold: default_unhealthy(),
            matcher: default_matcher(),
        }
    }
}

fn default_path() -> String {
    "/".into()
}
fn default_interval() -> i64 {
    30
}
fn default_timeout() -> i64 {
    5
}
fn default_healthy() -> i64 {
    5
}
fn default_unhealthy() -> i64 {
    2
}
fn default_matcher() -> String {
    "200".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HealthCheck {
    path: String,
    port: String,
    protocol: String,
    interval: i32,
    timeout: i32,
    healthy_threshold: i32,
    unhealthy_threshold: i32,
    matcher: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attrs {
    name: String,
    protocol: String,
    port: i32,
    vpc: String,
    target_type: String,
    health_check: HealthCheck,
    deregistration_delay: i32,
}

#[async_trait]
impl Kind for TargetGroup {
    fn name(&self) -> &'static str {
        KIND
    }

    fn attributes(&self) -> &'static [&'static str] {
        &["arn", "name"]
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
        issues.extend(check_id_ref("vpc", &f.vpc, cx, "vpc", "vpc-"));
        let range = |path: &str, v: i64, lo: i64, hi: i64, what: &str| {
            (!(lo..=hi).contains(&v))
                .then(|| Issue::new(path, format!("{what} {v} is out of range: {lo} to {hi}")))
        };
        issues.extend(range("port", f.port, 1, 65535, "port"));
        issues.extend(range(
            "deregistration_delay",
            f.deregistration_delay,
            0,
            3600,
            "a delay of",
        ));
        let h = &f.health_check;
        if let Some(p) = h.port {
            issues.extend(range("health_check.port", p, 1, 65535, "port"));
        }
        issues.extend(range(
            "health_check.interval",
            h.interval,
            5,
            300,
            "an interval of",
        ));
        issues.extend(range(
            "health_check.timeout",
            h.timeout,
            2,
            120,
            "a timeout of",
        ));
        if h.timeout >= h.interval {
            issues.push(Issue::new(
                "health_check.timeout",
                format!(
                    "the timeout ({}s) must be shorter than the interval ({}s)",
                    h.timeout, h.interval
                ),
            ));
        }
        issues.extend(range(
            "health_check.healthy_threshold",
            h.healthy_threshold,
            2,
            10,
            "a threshold of",
        ));
        issues.extend(range(
            "health_check.unhealthy_threshold",
            h.unhealthy_threshold,
            2,
            10,
            "a threshold of",
        ));
        if !h.path.starts_with('/') {
            issues.push(Issue::new(
                "health_check.path",
                format!("`{}` must start with `/`", h.path),
            ));
        }
        let codes_ok = !h.matcher.is_empty()
            && h.matcher.split(',').all(|part| {
                let mut ends = part.splitn(2, '-');
                ends.all(|n| n.len() == 3 && n.chars().all(|c| c.is_ascii_digit()))
            });
        if !codes_ok {
            issues.push(
                Issue::new(
                    "health_check.matcher",
                    format!("`{}` is not a list of HTTP codes", h.matcher),
                )
                .help("like `200`, `200,302` or `200-399`"),
            );
        }
        issues
    }

    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String> {
        let f: Fields = parse(config).map_err(|i| i.message)?;
        let h = f.health_check;
        let int32 = common::int32;
        Ok(json!(Attrs {
            name: elb_name(stack, id),
            protocol: f.protocol.as_str().into(),
            port: int32("port", f.port)?,
            vpc: f.vpc,
            target_type: match f.target_type {
                TargetType::Instance => "instance",
                TargetType::Ip => "ip",
            }
            .into(),
            health_check: HealthCheck {
                path: h.path,
                port: h
                    .port
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "traffic-port".into()),
                protocol: h.protocol.unwrap_or(f.protocol).as_str().into(),
                interval: int32("health_check.interval", h.interval)?,
                timeout: int32("health_check.timeout", h.timeout)?,
                healthy_threshold: int32("health_check.healthy_threshold", h.healthy_threshold)?,
                unhealthy_threshold: int32(
                    "health_check.unhealthy_threshold",
                    h.unhealthy_threshold
                )?,
                matcher: h.matcher,
            },
            deregistration_delay: int32("deregistration_delay", f.deregistration_delay)?,
        }))
    }

    fn physical_names(&self, stack: &str, id: &str, _config: &Json) -> Vec<(String, String)> {
        vec![("target group name".into(), elb_name(stack, id))]
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &["name", "protocol", "port", "vpc", "target_type"]
    }

    // Names are unique per account and region: a copy made first takes the other name.
    fn create_before_delete(&self) -> bool {
        true
    }

    fn unique_name(&self) -> Option<(&'static str, usize)> {
        Some(("name", 32))
    }

    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        let all: Vec<AwsTg> = aws
            .elbv2
            .describe_target_groups()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(aws_error("DescribeTargetGroups"))?;
        let arns: Vec<String> = all
            .iter()
            .filter_map(|t| t.target_group_arn().map(str::to_string))
            .collect();
        let tags = tags_of(aws, &arns).await?;
        let ours: Vec<(String, AwsTg)> = all
            .into_iter()
            .filter_map(|t| {
                let id = common::owned_id(tags.get(t.target_group_arn()?)?, stack)?;
                Some((id, t))
            })
            .collect();
        // Attributes have no batched form: one DescribeTargetGroupAttributes each.
        let mut out: Vec<Live> = futures::stream::iter(ours)
            .map(|(id, tg)| async move {
                match deregistration_delay(aws, tg.target_group_arn().unwrap_or_default()).await {
                    Ok(d) => Ok(Some(live(id, &tg, d))),
                    Err(e) if gone(&e) => Ok(None),
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
        let h = &a.health_check;
        let mut req = aws
            .elbv2
            .create_target_group()
            .name(&a.name)
            .protocol(ProtocolEnum::from(a.protocol.as_str()))
            .port(a.port)
            .vpc_id(&a.vpc)
            .target_type(TargetTypeEnum::from(a.target_type.as_str()))
            .health_check_enabled(true)
            .health_check_path(&h.path)
            .health_check_port(&h.port)
            .health_check_protocol(ProtocolEnum::from(h.protocol.as_str()))
            .health_check_interval_seconds(h.interval)
            .health_check_timeout_seconds(h.timeout)
            .healthy_threshold_count(h.healthy_threshold)
            .unhealthy_threshold_count(h.unhealthy_threshold)
            .matcher(Matcher::builder().http_code(&h.matcher).build());
        for t in tag_list(cx.stack, cx.id, &a.name) {
            req = req.tags(t);
        }
        let tg = match req.send().await.map_err(aws_error("CreateTargetGroup")) {
            Ok(out) => out.target_groups().first().cloned().ok_or_else(|| {
                Error::Invalid("CreateTargetGroup returned no target group".into())
            })?,
            // A re-run after an interrupted apply finds its own group (AWS answers the
            // same settings with the existing group; other settings fail here).
            Err(e) if e.is_code(&["DuplicateTargetGroupName"]) => {
                let tg = find_by_name(aws, &a.name).await?.ok_or(e)?;
                let arn = tg.target_group_arn().unwrap_or_default().to_string();
                let tags = tags_of(aws, std::slice::from_ref(&arn)).await?;
                if common::owned_id(&tags.get(&arn).cloned().unwrap_or_default(), cx.stack)
                    .as_deref()
                    != Some(cx.id)
                {
                    return Err(common::name_taken("a target group", &a.name, cx));
                }
                cx.note("found the target group an earlier run created");
                tg
            }
            Err(e) => return Err(e),
        };
        let arn = tg.target_group_arn().unwrap_or_default().to_string();
        let now = live(
            cx.id.to_string(),
            &tg,
            deregistration_delay(aws, &arn).await?,
        );
        let changed = crate::diff::changed_attributes(desired, &now.attrs);
        if changed
            .iter()
            .any(|c| self.replace_on().contains(&c.as_str()))
        {
            return Err(Error::Conflict(format!(
                "target group `{}` from an earlier run differs in {}, which cannot change in place: \
                 run plan and apply again to replace it",
                a.name,
                changed.join(", ")
            )));
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
        live_tg: &Live,
        desired: &Json,
        changed: &[String],
    ) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        converge(aws, &live_tg.physical_id, &a, changed).await?;
        let mut l = live_tg.clone();
        l.attrs = json!(a);
        Ok(l)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let arn = &live.physical_id;
        let r = common::retry_on(
            cx,
            &["ResourceInUse"],
            Duration::from_secs(180),
            "a listener or rule still forwards to the target group",
            || async {
                aws.elbv2
                    .delete_target_group()
                    .target_group_arn(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(aws_error("DeleteTargetGroup"))
            },
        )
        .await;
        match r {
            Err(e) if gone(&e) => Ok(()),
            Err(e) if e.is_code(&["ResourceInUse"]) => Err(Error::Conflict(format!(
                "target group {arn} is still used by a listener or rule of a load balancer: \
                 delete that listener (or point it elsewhere), then run again ({e})"
            ))),
            other => other,
        }
    }
}

async fn converge(aws: &Aws, arn: &str, a: &Attrs, changed: &[String]) -> Result<(), Error> {
    let has = |f: &str| changed.iter().any(|c| c == f);
    if has("health_check") {
        let h = &a.health_check;
        aws.elbv2
            .modify_target_group()
            .target_group_arn(arn)
            .health_check_enabled(true)
            .health_check_path(&h.path)
            .health_check_port(&h.port)
            .health_check_protocol(ProtocolEnum::from(h.protocol.as_str()))
            .health_check_interval_seconds(h.interval)
            .health_check_timeout_seconds(h.timeout)
            .healthy_threshold_count(h.healthy_threshold)
            .unhealthy_threshold_count(h.unhealthy_threshold)
            .matcher(Matcher::builder().http_code(&h.matcher).build())
            .send()
            .await
            .map_err(aws_error("ModifyTargetGroup"))?;
    }
    if has("deregistration_delay") {
        aws.elbv2
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .attributes(
                TargetGroupAttribute::builder()
                    .key(DEREGISTRATION)
                    .value(a.deregistration_delay.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(aws_error("ModifyTargetGroupAttributes"))?;
    }
    Ok(())
}

async fn find_by_name(aws: &Aws, name: &str) -> Result<Option<AwsTg>, Error> {
    match aws
        .elbv2
        .describe_target_groups()
        .names(name)
        .send()
        .await
        .map_err(aws_error("DescribeTargetGroups"))
    {
        Ok(out) => Ok(out.target_groups().first().cloned()),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn deregistration_delay(aws: &Aws, arn: &str) -> Result<i32, Error> {
    let out = aws
        .elbv2
        .describe_target_group_attributes()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(aws_error("DescribeTargetGroupAttributes"))?;
    Ok(out
        .attributes()
        .iter()
        .find(|a| a.key() == Some(DEREGISTRATION))
        .and_then(|a| a.value())
        .and_then(|v| v.parse().ok())
        .unwrap_or(300))
}

fn gone(e: &Error) -> bool {
    e.is_code(&["TargetGroupNotFound", "TargetGroupNotFoundException"])
}

fn live(id: String, tg: &AwsTg, deregistration_delay: i32) -> Live {
    let arn = tg.target_group_arn().unwrap_or_default().to_string();
    let name = tg.target_group_name().unwrap_or_default().to_string();
    let protocol = tg
        .protocol()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let attrs = Attrs {
        name: name.clone(),
        protocol: protocol.clone(),
        port: tg.port().unwrap_or_default(),
        vpc: tg.vpc_id().unwrap_or_default().to_string(),
        target_type: tg
            .target_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_else(|| "instance".into()),
        health_check: HealthCheck {
            path: tg.health_check_path().unwrap_or("/").to_string(),
            port: tg.health_check_port().unwrap_or("traffic-port").to_string(),
            protocol: tg
                .health_check_protocol()
                .map(|p| p.as_str().to_string())
                .unwrap_or(protocol),
            interval: tg.health_check_interval_seconds().unwrap_or_default(),
            timeout: tg.health_check_timeout_seconds().unwrap_or_default(),
            healthy_threshold: tg.healthy_threshold_count().unwrap_or_default(),
            unhealthy_threshold: tg.unhealthy_threshold_count().unwrap_or_default(),
            matcher: tg
                .matcher()
                .and_then(|m| m.http_code())
                .unwrap_or_default()
                .to_string(),
        },
        deregistration_delay,
    };
    let outputs = [("arn", json!(arn)), ("name", json!(name))]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;

    fn tg(body: &str) -> Vec<String> {
        problems(&format!(
            "
name: t
resources:
  vpc:
    type: vpc
    cidr_block: 10.0.0.0/16
  tg:
    type: target_group
{body}"
        ))
    }

    #[test]
    fn good_and_bad_fields() {
        let p = tg("    vpc: ${vpc}\n    port: 80\n    health_check:\n      path: /health\n      interval: 10\n      matcher: 200-399\n");
        assert!(p.is_empty(), "{p:?}");
        let p = tg("    vpc: ${vpc.cidr_block}\n    port: 0\n    health_check:\n      path: health\n      interval: 5\n      timeout: 5\n      matcher: ok\n");
        let all = p.join("\n");
        for want in [
            "needs the vpc's id",
            "port 0 is out of range",
            "must start with `/`",
            "timeout (5s) must be shorter than the interval (5s)",
            "`ok` is not a list of HTTP codes",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
    }

    #[test]
    fn read_shape_matches_desired() {
        let d = TargetGroup
            .desired("dev", "tg", &json!({"vpc": "vpc-1", "port": 8080, "deregistration_delay": 30, "health_check": {"path": "/health"}}))
            .unwrap();
        let aws = AwsTg::builder()
            .target_group_arn("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/dev-tg/abc")
            .target_group_name("dev-tg")
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id("vpc-1")
            .target_type(TargetTypeEnum::Instance)
            .health_check_path("/health")
            .health_check_port("traffic-port")
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_interval_seconds(30)
            .health_check_timeout_seconds(5)
            .healthy_threshold_count(5)
            .unhealthy_threshold_count(2)
            .matcher(Matcher::builder().http_code("200").build())
            .build();
        let l = live("tg".into(), &aws, 30);
        assert_eq!(d, l.attrs);
        assert_eq!(l.outputs["name"], json!("dev-tg"));
    }
}
