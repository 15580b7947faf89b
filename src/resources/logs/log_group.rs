//! `log_group`: an Amazon CloudWatch Logs log group with its retention, for the logs of
//! functions and state machines. Named `/securecart/STACK/ID`, so one DescribeLogGroups
//! call with that prefix finds every log group of a stack.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::types::LogGroup;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, aws_error, parse, Error};
use crate::resources::{Kind, Live, OpCx};

pub struct LogGroupKind;

const KIND: &str = "log_group";

/// The retention periods CloudWatch Logs accepts, in days.
const RETENTIONS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// A CloudWatch Logs log group.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Fields {
    /// Days to keep log events: one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400,
    /// 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 — or `never` to keep them forever
    /// (storage is billed per GB-month).
    #[serde(default = "default_retention")]
    #[schemars(with = "RetentionSchema")]
    retention_days: Json,
}

/// Days, or `never`.
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum RetentionSchema {
    Days(u32),
    Never(NeverSchema),
}

#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
enum NeverSchema {
    #[serde(rename = "never")]
    Never,
}

fn default_retention() -> Json {
    json!(365)
}

/// Normalised attributes: what `desired` builds and `read` finds, in one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Attrs {
    name: String,
    /// `None`: kept forever.
    retention_days: Option<u32>,
}

/// `/securecart/STACK/ID`: stack names and ids are short and use only characters log
/// group names allow.
fn group_name(stack: &str, id: &str) -> String {
    format!("/securecart/{stack}/{id}")
}

fn retention_of(v: &Json) -> Result<Option<u32>, String> {
    match v {
        Json::String(s) if s == "never" => Ok(None),
        Json::Number(n) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(d) if RETENTIONS.contains(&d) => Ok(Some(d)),
            _ => Err(format!(
                "`retention_days` must be one of {} or `never`, not {n}",
                RETENTIONS
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
        other => Err(format!(
            "`retention_days` is a number of days or `never`, not {other}"
        )),
    }
}

#[async_trait]
impl Kind for LogGroupKind {
    fn name(&self) -> &'static str {
        KIND
    }

    fn attributes(&self) -> &'static [&'static str] {
        &["arn", "name"]
    }

    fn schema(&self) -> Json {
        common::schema_of::<Fields>()
    }

    fn check(&self, _id: &str, config: &Json, _cx: &CheckCx) -> Vec<Issue> {
        let f: Fields = match parse(config) {
            Ok(f) => f,
            Err(i) => return vec![i],
        };
        match retention_of(&f.retention_days) {
            Ok(_) => Vec::new(),
            Err(e) => {
                let mut i = Issue::new("retention_days", e);
                if let Some(n) = f.retention_days.as_u64() {
                    let next = RETENTIONS.iter().find(|&&r| u64::from(r) >= n);
                    if let Some(r) = next {
                        i = i.help(format!("the closest longer period is {r}"));
                    }
                }
                vec![i]
            }
        }
    }

    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String> {
        let f: Fields = parse(config).map_err(|i| i.message)?;
        let a = Attrs {
            name: group_name(stack, id),
            retention_days: retention_of(&f.retention_days)?,
        };
        serde_json::to_value(a).map_err(|e| e.to_string())
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &["name"]
    }

    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        let groups = aws
            .logs
            .describe_log_groups()
            .log_group_name_prefix(format!("/securecart/{stack}/"))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(aws_error("DescribeLogGroups"))?;
        // Tags have no batched form: one call per group.
        let found: Vec<Option<Live>> = futures::stream::iter(groups)
            .map(|g| async move {
                let Some(arn) = arn_of(&g) else {
                    return Ok(None);
                };
                let Some(tags) = tags_of(aws, &arn).await? else {
                    return Ok(None);
                };
                Ok::<_, Error>(common::owned_id(&tags, stack).map(|id| live_of(id, &g, &arn)))
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        let mut out: Vec<Live> = found.into_iter().flatten().collect();
        out.sort_by(|a, b| (&a.id, &a.physical_id).cmp(&(&b.id, &b.physical_id)));
        Ok(out)
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let mut req = aws.logs.create_log_group().log_group_name(&a.name);
        for (k, v) in common::tags(cx.stack, cx.id, &a.name) {
            req = req.tags(k, v);
        }
        match req.send().await.map_err(aws_error("CreateLogGroup")) {
            Ok(_) => {}
            Err(e) if e.is_code(&["ResourceAlreadyExistsException"]) => {
                let Some(g) = describe(aws, &a.name).await? else {
                    return Err(e);
                };
                let arn = arn_of(&g).unwrap_or_default();
                let tags = tags_of(aws, &arn).await?.unwrap_or_default();
                if common::owned_id(&tags, cx.stack).as_deref() != Some(cx.id) {
                    return Err(Error::Conflict(format!(
                        "a log group named `{}` already exists and is not tagged as `{}` of stack `{}`; \
                         securecart does not adopt or change it: delete it or use another resource id",
                        a.name, cx.id, cx.stack
                    )));
                }
                cx.note("the log group exists from an earlier run; bringing it up to date");
                let l = live_of(cx.id.to_string(), &g, &arn);
                let changed: Vec<String> = crate::diff::changed_attributes(desired, &l.attrs);
                if changed.is_empty() {
                    return Ok(l);
                }
                return self.update(aws, cx, &l, desired, &changed).await;
            }
            Err(e) => return Err(e),
        }
        if let Some(d) = a.retention_days {
            set_retention(aws, &a.name, Some(d)).await?;
        }
        let g = describe(aws, &a.name).await?.ok_or_else(|| Error::Aws {
            operation: "DescribeLogGroups".into(),
            code: None,
            message: format!("log group `{}` is not there after creating it", a.name),
        })?;
        let arn = arn_of(&g).unwrap_or_default();
        Ok(live(cx.id.to_string(), &arn, a))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live_group: &Live,
        desired: &Json,
        changed: &[String],
    ) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        if changed.iter().any(|c| c == "retention_days") {
            cx.note("setting the retention");
            set_retention(aws, &a.name, a.retention_days).await?;
        }
        let arn = live_group
            .outputs
            .get("arn")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(live(cx.id.to_string(), &arn, a))
    }

    async fn delete(&self, aws: &Aws, _cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        match aws
            .logs
            .delete_log_group()
            .log_group_name(&live.physical_id)
            .send()
            .await
            .map_err(aws_error("DeleteLogGroup"))
        {
            Err(e) if e.is_code(&["ResourceNotFoundException"]) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// The ARN without the `:*` suffix (what tags and IAM policies name).
fn arn_of(g: &LogGroup) -> Option<String> {
    g.log_group_arn()
        .map(str::to_string)
        .or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))
}

fn live_of(id: String, g: &LogGroup, arn: &str) -> Live {
    let a = Attrs {
        name: g.log_group_name().unwrap_or_default().to_string(),
        retention_days: g.retention_in_days().and_then(|d| u32::try_from(d).ok()),
    };
    live(id, arn, a)
}

fn live(id: String, arn: &str, a: Attrs) -> Live {
    let outputs: BTreeMap<String, Json> = [
        ("arn".to_string(), json!(arn)),
        ("name".to_string(), json!(a.name)),
    ]
    .into_iter()
    .collect();
    Live {
        id,
        kind: KIND,
        physical_id: a.name.clone(),
        attrs: json!(a),
        outputs,
    }
}

async fn describe(aws: &Aws, name: &str) -> Result<Option<LogGroup>, Error> {
    let out = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .map_err(aws_error("DescribeLogGroups"))?;
    Ok(out
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))
        .cloned())
}

/// The group's tags, or `None` when it is gone.
async fn tags_of(aws: &Aws, arn: &str) -> Result<Option<BTreeMap<String, String>>, Error> {
    match aws
        .logs
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(aws_error("ListTagsForResource"))
    {
        Ok(o) => Ok(Some(
            o.tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        )),
        Err(e) if e.is_code(&["ResourceNotFoundException"]) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn set_retention(aws: &Aws, name: &str, days: Option<u32>) -> Result<(), Error> {
    match days {
        Some(d) => aws
            .logs
            .put_retention_policy()
            .log_group_name(name)
            .retention_in_days(
                i32::try_from(d)
                    .map_err(|_| Error::Invalid(format!("{d} days is out of range")))?,
            )
            .send()
            .await
            .map(|_| ())
            .map_err(aws_error("PutRetentionPolicy")),
        None => aws
            .logs
            .delete_retention_policy()
            .log_group_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(aws_error("DeleteRetentionPolicy")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blueprint::{self, LoadError, SourceFile};

    #[test]
    fn names_and_retention() {
        let d = LogGroupKind
            .desired("shop", "workflow_logs", &json!({}))
            .unwrap();
        assert_eq!(
            d,
            json!({"name": "/securecart/shop/workflow_logs", "retention_days": 365})
        );
        let d = LogGroupKind
            .desired("shop", "l", &json!({"retention_days": "never"}))
            .unwrap();
        assert_eq!(d["retention_days"], Json::Null);
        assert!(LogGroupKind
            .desired("shop", "l", &json!({"retention_days": 10}))
            .unwrap_err()
            .contains("one of 1, 3"));
    }

    #[test]
    fn read_shape_matches_desired() {
        let g = LogGroup::builder()
            .log_group_name("/securecart/shop/logs")
            .arn("arn:aws:logs:us-east-1:1:log-group:/securecart/shop/logs:*")
            .retention_in_days(14)
            .build();
        let arn = arn_of(&g).unwrap();
        assert_eq!(
            arn,
            "arn:aws:logs:us-east-1:1:log-group:/securecart/shop/logs"
        );
        let l = live_of("logs".into(), &g, &arn);
        assert_eq!(
            l.attrs,
            LogGroupKind
                .desired("shop", "logs", &json!({"retention_days": 14}))
                .unwrap()
        );
    }

    #[test]
    fn bad_retention_is_reported_with_a_suggestion() {
        let text = "name: shop\nresources:\n  l: {type: log_group, retention_days: 10}\n";
        let file = SourceFile::new("t.yaml".into(), "t.yaml".into(), text.into());
        let Err(LoadError::Invalid(d)) =
            blueprint::parse(file, ".".into(), &[], &crate::resources::Catalog)
        else {
            panic!("a bad retention must be an error");
        };
        let p = &d.problems[0];
        assert_eq!(p.path.as_deref(), Some("resources.l.retention_days"));
        assert!(
            p.help.as_deref().unwrap_or_default().contains("14"),
            "{p:?}"
        );
    }
}
