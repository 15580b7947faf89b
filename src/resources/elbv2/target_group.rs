//! `target_group`: an Elastic Load Balancing target group of EC2 instances (or IP
//! addresses) with its health check.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Matcher, ProtocolEnum, TargetGroup as AwsTg, TargetGroupAttribute, TargetTypeEnum,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{self as elbv2, elb_name, tag_list, tg_gone, Protocol};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, Error};
use crate::resources::fields::check_id_ref;
use crate::resources::typed::{
    Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct TargetGroup;

const DEREGISTRATION: &str = "deregistration_delay.timeout_seconds";

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
pub struct Fields {
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
#[serde(default, deny_unknown_fields)]
struct HealthCheckField {
    /// Path requested (default `/`).
    path: String,
    /// Port checked; default: the port traffic goes to.
    port: Option<i64>,
    /// `HTTP` or `HTTPS`; default: the target group's protocol.
    protocol: Option<Protocol>,
    /// Seconds between checks, 5 to 300 (default 30).
    interval: i64,
    /// Seconds without an answer that fail a check, 2 to 120 and below `interval`
    /// (default 5).
    timeout: i64,
    /// Checks in a row that make an unhealthy target healthy, 2 to 10 (default 5).
    healthy_threshold: i64,
    /// Checks in a row that make a healthy target unhealthy, 2 to 10 (default 2).
    unhealthy_threshold: i64,
    /// HTTP codes that count as healthy: `200`, `200,302` or `200-399` (default `200`).
    matcher: String,
}

impl Default for HealthCheckField {
    fn default() -> Self {
        HealthCheckField {
            path: "/".into(),
            port: None,
            protocol: None,
            interval: 30,
            timeout: 5,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: "200".into(),
        }
    }
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
pub struct Attrs {
    name: String,
    protocol: String,
    port: i32,
    vpc: String,
    target_type: String,
    health_check: HealthCheck,
    deregistration_delay: i32,
}

/// Sets every health check setting on a CreateTargetGroup or ModifyTargetGroup request
/// (two builder types with the same setters).
macro_rules! with_health_check {
    ($req:expr, $h:expr) => {{
        let h: &HealthCheck = $h;
        $req.health_check_enabled(true)
            .health_check_path(&h.path)
            .health_check_port(&h.port)
            .health_check_protocol(ProtocolEnum::from(h.protocol.as_str()))
            .health_check_interval_seconds(h.interval)
            .health_check_timeout_seconds(h.timeout)
            .healthy_threshold_count(h.healthy_threshold)
            .unhealthy_threshold_count(h.unhealthy_threshold)
            .matcher(Matcher::builder().http_code(&h.matcher).build())
    }};
}

#[async_trait]
impl Resource for TargetGroup {
    const KIND: &'static str = "target_group";
    const ATTRIBUTES: &'static [&'static str] = &["arn", "name"];
    const REPLACE_ON: &'static [&'static str] = &["name", "protocol", "port", "vpc", "target_type"];
    // Names are unique per account and region: a copy made first takes the other name.
    const CREATE_BEFORE_DELETE: bool = true;
    const UNIQUE_NAME: Option<(&'static str, usize)> = Some(("name", 32));
    // A re-run after an interrupted apply finds its own group (AWS answers the same
    // settings with the existing group; other settings fail with this code).
    const ADOPT: Adopt = Adopt::OnCodes(&["DuplicateTargetGroupName"]);

    /// Typical time on AWS: Immediate ELB calls.
    const TYPICAL: Typical = Typical {
        create: 3,
        update: 2,
        delete: 2,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    /// The group and its deregistration delay (an attribute).
    type Raw = (AwsTg, i32);

    fn check(&self, _id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut issues = Vec::new();
        issues.extend(check_id_ref("vpc", &f.vpc, cx, "vpc", "vpc-"));
        let range = |path: &str, v: i64, lo: i64, hi: i64, what: &str| {
            (!(lo..=hi).contains(&v))
                .then(|| Issue::new(path, format!("{what} {v} is out of range: {lo} to {hi}")))
        };
        let h = &f.health_check;
        let ranges = [
            ("port", Some(f.port), 1, 65535, "port"),
            (
                "deregistration_delay",
                Some(f.deregistration_delay),
                0,
                3600,
                "a delay of",
            ),
            ("health_check.port", h.port, 1, 65535, "port"),
            (
                "health_check.interval",
                Some(h.interval),
                5,
                300,
                "an interval of",
            ),
            (
                "health_check.timeout",
                Some(h.timeout),
                2,
                120,
                "a timeout of",
            ),
        ];
        for (path, v, lo, hi, what) in ranges {
            issues.extend(v.and_then(|v| range(path, v, lo, hi, what)));
        }
        if h.timeout >= h.interval {
            issues.push(Issue::new(
                "health_check.timeout",
                format!(
                    "the timeout ({}s) must be shorter than the interval ({}s)",
                    h.timeout, h.interval
                ),
            ));
        }
        for (path, v) in [
            ("health_check.healthy_threshold", h.healthy_threshold),
            ("health_check.unhealthy_threshold", h.unhealthy_threshold),
        ] {
            issues.extend(range(path, v, 2, 10, "a threshold of"));
        }
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

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let h = f.health_check;
        let int32 = common::int32;
        let a = Attrs {
            name: elb_name(site.stack, site.id),
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
                    h.unhealthy_threshold,
                )?,
                matcher: h.matcher,
            },
            deregistration_delay: int32("deregistration_delay", f.deregistration_delay)?,
        };
        Ok((a, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, _: &Fields) -> Vec<(String, String)> {
        vec![("target group name".into(), elb_name(stack, id))]
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let all: Vec<AwsTg> = aws
            .elbv2
            .describe_target_groups()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await?;
        let ours = elbv2::owned(aws, stack, all, AwsTg::target_group_arn).await?;
        // Deleted between the calls: left out.
        elbv2::with_each(ours, AwsTg::target_group_arn, tg_gone, |arn| async move {
            deregistration_delay(aws, &arn).await
        })
        .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let r = aws
            .elbv2
            .describe_target_groups()
            .names(&a.name)
            .send()
            .await
            .map_err(Error::from);
        let tg = match r {
            Ok(out) => out.target_groups().first().cloned(),
            Err(e) if tg_gone(&e) => None,
            Err(e) => return Err(e),
        };
        let Some(tg) = tg else {
            return Ok(None);
        };
        let arn = tg.target_group_arn().unwrap_or_default().to_string();
        Ok(Some(Found {
            owner: elbv2::owner(aws, stack, &arn).await?,
            raw: (tg, deregistration_delay(aws, &arn).await?),
        }))
    }

    fn observe(&self, (tg, deregistration_delay): &Self::Raw) -> Observed<Attrs> {
        let arn = tg.target_group_arn().unwrap_or_default().to_string();
        let name = tg.target_group_name().unwrap_or_default().to_string();
        let protocol = tg
            .protocol()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        Observed {
            outputs: vec![("arn", json!(arn)), ("name", json!(name))],
            physical_id: arn,
            attrs: Attrs {
                name,
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
                deregistration_delay: *deregistration_delay,
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
        let req = aws
            .elbv2
            .create_target_group()
            .name(&a.name)
            .protocol(ProtocolEnum::from(a.protocol.as_str()))
            .port(a.port)
            .vpc_id(&a.vpc)
            .target_type(TargetTypeEnum::from(a.target_type.as_str()));
        let mut req = with_health_check!(req, &a.health_check);
        for t in tag_list(cx.stack, cx.id, &a.name) {
            req = req.tags(t);
        }
        let out = req.send().await.map_err(Error::from)?;
        let tg =
            out.target_groups().first().cloned().ok_or_else(|| {
                Error::Invalid("CreateTargetGroup returned no target group".into())
            })?;
        // The delay is not part of CreateTargetGroup: set after, when AWS's default is not
        // the one wanted.
        let arn = tg.target_group_arn().unwrap_or_default();
        if deregistration_delay(aws, arn).await? != a.deregistration_delay {
            set_deregistration_delay(aws, arn, a.deregistration_delay).await?;
        }
        Ok((tg, a.deregistration_delay))
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
        if changed.has("health_check") {
            let req = aws.elbv2.modify_target_group().target_group_arn(arn);
            with_health_check!(req, &a.health_check).send().await?;
        }
        if changed.has("deregistration_delay") {
            set_deregistration_delay(aws, arn, a.deregistration_delay).await?;
        }
        Ok(None)
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
                    .await?;
                Ok(())
            },
        )
        .await;
        match r {
            Err(e) if tg_gone(&e) => Ok(()),
            Err(e) if e.is_code(&["ResourceInUse"]) => Err(Error::Conflict(format!(
                "target group {arn} is still used by a listener or rule of a load balancer: \
                 delete that listener (or point it elsewhere), then run again ({e})"
            ))),
            other => other,
        }
    }
}

async fn deregistration_delay(aws: &Aws, arn: &str) -> Result<i32, Error> {
    let out = aws
        .elbv2
        .describe_target_group_attributes()
        .target_group_arn(arn)
        .send()
        .await?;
    Ok(out
        .attributes()
        .iter()
        .find(|a| a.key() == Some(DEREGISTRATION))
        .and_then(|a| a.value())
        .and_then(|v| v.parse().ok())
        .unwrap_or(300))
}

async fn set_deregistration_delay(aws: &Aws, arn: &str, secs: i32) -> Result<(), Error> {
    aws.elbv2
        .modify_target_group_attributes()
        .target_group_arn(arn)
        .attributes(
            TargetGroupAttribute::builder()
                .key(DEREGISTRATION)
                .value(secs.to_string())
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::Kind;

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
        let d = Typed(TargetGroup)
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
        let o = TargetGroup.observe(&(aws, 30));
        assert_eq!(d, json!(o.attrs));
        assert!(o.outputs.contains(&("name", json!("dev-tg"))));
    }
}
