//! `log_group`: an Amazon CloudWatch Logs log group with its retention, for the logs of
//! functions and state machines. Named `/securecart/STACK/ID`, or for Step Functions
//! `/aws/vendedlogs/states/securecart/STACK/ID`, so one DescribeLogGroups call per prefix
//! finds every log group of a stack.

use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::types::LogGroup;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super as logs;
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, owned_id, Error};
use crate::resources::typed::{
    Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct LogGroupKind;

/// The retention periods CloudWatch Logs accepts, in days.
const RETENTIONS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// A CloudWatch Logs log group.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// Days to keep log events: one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400,
    /// 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 — or `never` to keep them forever
    /// (storage is billed per GB-month).
    #[serde(default = "default_retention")]
    #[schemars(with = "RetentionSchema")]
    retention_days: Json,
    /// `step_functions` for a state machine's execution logs: the group is then named under
    /// `/aws/vendedlogs/states/`, as AWS advises, so the CloudWatch Logs resource policy
    /// that log delivery needs covers it with one wildcard instead of growing with every
    /// state machine (that policy is limited to 5,120 characters). Changing it replaces
    /// the group.
    #[serde(default, rename = "for")]
    for_service: Option<LogsFor>,
}

/// The AWS service that delivers into the group, when that decides its name.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogsFor {
    StepFunctions,
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
pub struct Attrs {
    name: String,
    /// `None`: kept forever.
    retention_days: Option<u32>,
}

/// Where a stack's log groups are, by the service delivering into them.
/// https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html
/// https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/AWS-logs-and-resource-policy.html
fn prefix(stack: &str, for_service: Option<LogsFor>) -> String {
    match for_service {
        None => format!("/securecart/{stack}/"),
        Some(LogsFor::StepFunctions) => format!("/aws/vendedlogs/states/securecart/{stack}/"),
    }
}

/// Stack names and ids are short and use only characters log group names allow.
fn group_name(stack: &str, id: &str, for_service: Option<LogsFor>) -> String {
    format!("{}{id}", prefix(stack, for_service))
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
impl Resource for LogGroupKind {
    const KIND: &'static str = "log_group";
    const ATTRIBUTES: &'static [&'static str] = &["arn", "name"];
    const REPLACE_ON: &'static [&'static str] = &["name"];
    const ADOPT: Adopt = Adopt::OnCodes(&["ResourceAlreadyExistsException"]);

    /// Typical time on AWS: One CloudWatch Logs call each.
    const TYPICAL: Typical = Typical::API_CALL;

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    /// The group and its ARN without the `:*` suffix.
    type Raw = (LogGroup, String);

    fn check(&self, _id: &str, f: &Fields, _cx: &CheckCx) -> Vec<Issue> {
        let Err(e) = retention_of(&f.retention_days) else {
            return Vec::new();
        };
        let mut i = Issue::new("retention_days", e);
        let longer = f
            .retention_days
            .as_u64()
            .and_then(|n| RETENTIONS.iter().find(|&&r| u64::from(r) >= n));
        if let Some(r) = longer {
            i = i.help(format!("the closest longer period is {r}"));
        }
        vec![i]
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let a = Attrs {
            name: group_name(site.stack, site.id, f.for_service),
            retention_days: retention_of(&f.retention_days)?,
        };
        Ok((a, ()))
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let mut groups = Vec::new();
        for for_service in [None, Some(LogsFor::StepFunctions)] {
            let found = aws
                .logs
                .describe_log_groups()
                .log_group_name_prefix(prefix(stack, for_service))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await?;
            groups.extend(found);
        }
        // Tags have no batched form: one call per group.
        common::read_each(groups, |g| async move {
            let Some(arn) = arn_of(&g) else {
                return Ok(None);
            };
            let owner = logs::tags_of(aws, &arn)
                .await?
                .and_then(|t| owned_id(&t, stack));
            Ok::<_, Error>(owner.map(|id| (id, (g, arn))))
        })
        .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let Some(g) = describe(aws, &a.name).await? else {
            return Ok(None);
        };
        let arn = arn_of(&g).unwrap_or_default();
        let tags = logs::tags_of(aws, &arn).await?.unwrap_or_default();
        Ok(Some(Found {
            owner: owned_id(&tags, stack),
            raw: (g, arn),
        }))
    }

    fn observe(&self, (g, arn): &Self::Raw) -> Observed<Attrs> {
        let name = g.log_group_name().unwrap_or_default().to_string();
        Observed {
            physical_id: name.clone(),
            outputs: vec![("arn", json!(arn)), ("name", json!(name))],
            attrs: Attrs {
                name,
                retention_days: g.retention_in_days().and_then(|d| u32::try_from(d).ok()),
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
        let mut req = aws.logs.create_log_group().log_group_name(&a.name);
        for (k, v) in common::tags(cx.stack, cx.id, &a.name) {
            req = req.tags(k, v);
        }
        req.send().await.map_err(Error::from)?;
        if let Some(d) = a.retention_days {
            set_retention(aws, &a.name, Some(d)).await?;
        }
        let g = describe(aws, &a.name).await?.ok_or_else(|| Error::Aws {
            operation: "DescribeLogGroups".into(),
            code: None,
            message: format!("log group `{}` is not there after creating it", a.name),
        })?;
        let arn = arn_of(&g).unwrap_or_default();
        Ok((g, arn))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        _live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<Self::Raw>, Error> {
        if changed.has("retention_days") {
            cx.note("setting the retention");
            set_retention(aws, &a.name, a.retention_days).await?;
        }
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, _cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        match aws
            .logs
            .delete_log_group()
            .log_group_name(&live.physical_id)
            .send()
            .await
            .map_err(Error::from)
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

async fn describe(aws: &Aws, name: &str) -> Result<Option<LogGroup>, Error> {
    let out = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await?;
    Ok(out
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))
        .cloned())
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
            .map_err(Error::from),
        None => aws
            .logs
            .delete_retention_policy()
            .log_group_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(Error::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blueprint::{self, LoadError, SourceFile};
    use crate::resources::typed::Typed;
    use crate::resources::Kind;

    const K: Typed<LogGroupKind> = Typed(LogGroupKind);

    #[test]
    fn names_and_retention() {
        let d = K.desired("shop", "workflow_logs", &json!({})).unwrap();
        assert_eq!(
            d,
            json!({"name": "/securecart/shop/workflow_logs", "retention_days": 365})
        );
        let d = K
            .desired("shop", "l", &json!({"retention_days": "never"}))
            .unwrap();
        assert_eq!(d["retention_days"], Json::Null);
        assert!(K
            .desired("shop", "l", &json!({"retention_days": 10}))
            .unwrap_err()
            .contains("one of 1, 3"));
        let d = K
            .desired("shop", "wf", &json!({"for": "step_functions"}))
            .unwrap();
        assert_eq!(d["name"], "/aws/vendedlogs/states/securecart/shop/wf");
        assert!(K
            .desired("shop", "wf", &json!({"for": "lambda"}))
            .unwrap_err()
            .contains("step_functions"));
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
        let o = LogGroupKind.observe(&(g, arn));
        assert_eq!(
            serde_json::to_value(o.attrs).unwrap(),
            K.desired("shop", "logs", &json!({"retention_days": 14}))
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
