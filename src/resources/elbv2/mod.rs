//! Elastic Load Balancing (v2): what the `load_balancer`, `target_group` and `listener` kinds
//! share — names, tags read by ARN in batches, ownership, describe-by-name, error matching.

pub mod listener;
pub mod load_balancer;
pub mod target_group;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use aws_sdk_elasticloadbalancingv2::operation::describe_load_balancers::builders::DescribeLoadBalancersFluentBuilder;
use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer as AwsLb, LoadBalancerTypeEnum, Tag};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::aws::Aws;
use crate::resources::common::{self, Error};

// How a listener takes requests and how a target group reaches its targets (no doc
// comment: the fields that use it describe it in the schema).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    #[default]
    Http,
    Https,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
        }
    }
}

/// A name for load balancers and target groups: at most 32 letters, digits and hyphens,
/// no hyphen at either end or twice in a row, not starting with `internal-`.
pub fn elb_name(stack: &str, id: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let tidy = |s: String| -> String {
        let mut out = String::new();
        for c in s.chars() {
            if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
                out.push(c);
            }
        }
        out.trim_end_matches('-').to_string()
    };
    let name = tidy(common::physical_name(stack, id, 32, ok, ""));
    if name.to_ascii_lowercase().starts_with("internal-") {
        tidy(common::physical_name("sc", &name, 32, ok, ""))
    } else {
        name
    }
}

pub fn tag_list(stack: &str, id: &str, name: &str) -> Vec<Tag> {
    common::tags(stack, id, name)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Tags of up to any number of ELB resources: DescribeTags takes 20 ARNs per call.
pub async fn tags_of(
    aws: &Aws,
    arns: &[String],
) -> Result<HashMap<String, BTreeMap<String, String>>, Error> {
    let chunks: Vec<Vec<String>> = arns.chunks(20).map(<[String]>::to_vec).collect();
    let found: Vec<Vec<(String, BTreeMap<String, String>)>> = futures::stream::iter(chunks)
        .map(|chunk| async move {
            let out = aws
                .elbv2
                .describe_tags()
                .set_resource_arns(Some(chunk))
                .send()
                .await?;
            Ok::<_, Error>(
                out.tag_descriptions()
                    .iter()
                    .map(|d| {
                        let tags = d
                            .tags()
                            .iter()
                            .filter_map(|t| {
                                Some((
                                    t.key()?.to_string(),
                                    t.value().unwrap_or_default().to_string(),
                                ))
                            })
                            .collect();
                        (d.resource_arn().unwrap_or_default().to_string(), tags)
                    })
                    .collect(),
            )
        })
        .buffer_unordered(4)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// The items whose tags say they are of `stack`, with their blueprint ids: one batched
/// DescribeTags over their ARNs.
pub async fn owned<T>(
    aws: &Aws,
    stack: &str,
    items: Vec<T>,
    arn: impl Fn(&T) -> Option<&str>,
) -> Result<Vec<(String, T)>, Error> {
    let arns: Vec<String> = items
        .iter()
        .filter_map(|t| arn(t).map(str::to_string))
        .collect();
    let tags = tags_of(aws, &arns).await?;
    Ok(items
        .into_iter()
        .filter_map(|t| Some((common::owned_id(tags.get(arn(&t)?)?, stack)?, t)))
        .collect())
}

/// The blueprint id one resource's tags give it in `stack` (`None`: not of the stack).
pub async fn owner(aws: &Aws, stack: &str, arn: &str) -> Result<Option<String>, Error> {
    let tags = tags_of(aws, &[arn.to_string()]).await?;
    Ok(tags.get(arn).and_then(|t| common::owned_id(t, stack)))
}

/// Reads one more thing for each item by its ARN (load balancer and target group
/// attributes have no batched form: one call each), leaving out the items deleted
/// meanwhile.
pub async fn with_each<T, A, F, Fut>(
    items: Vec<(String, T)>,
    arn: fn(&T) -> Option<&str>,
    gone: fn(&Error) -> bool,
    read: F,
) -> Result<Vec<(String, (T, A))>, Error>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<A, Error>>,
{
    let read = &read;
    common::read_each(items, |(id, t)| async move {
        match read(arn(&t).unwrap_or_default().to_string()).await {
            Ok(a) => Ok(Some((id, (t, a)))),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await
}

/// The stack's application load balancers with their blueprint ids: every load
/// balancer of the region (paginated), kept by their tags.
pub async fn stack_load_balancers(aws: &Aws, stack: &str) -> Result<Vec<(String, AwsLb)>, Error> {
    // Load balancers and listeners both start here: one read serves both kinds.
    let key = format!("elbv2:stack-load-balancers:{stack}");
    let found = aws
        .read_once(key, || read_stack_load_balancers(aws, stack))
        .await?;
    Ok(found.as_ref().clone())
}

async fn read_stack_load_balancers(aws: &Aws, stack: &str) -> Result<Vec<(String, AwsLb)>, Error> {
    let all: Vec<AwsLb> = aws
        .elbv2
        .describe_load_balancers()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?;
    let all: Vec<AwsLb> = all
        .into_iter()
        .filter(|l| l.r#type() == Some(&LoadBalancerTypeEnum::Application))
        .collect();
    owned(aws, stack, all, AwsLb::load_balancer_arn).await
}

/// The one load balancer a DescribeLoadBalancers by name or ARN answers, `None` when
/// there is none.
pub async fn one_lb(req: DescribeLoadBalancersFluentBuilder) -> Result<Option<AwsLb>, Error> {
    match req.send().await.map_err(Error::from) {
        Ok(out) => Ok(out.load_balancers().first().cloned()),
        Err(e) if lb_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn lb_gone(e: &Error) -> bool {
    e.is_code(&["LoadBalancerNotFound", "LoadBalancerNotFoundException"])
}

pub fn tg_gone(e: &Error) -> bool {
    e.is_code(&["TargetGroupNotFound", "TargetGroupNotFoundException"])
}

pub fn listener_gone(e: &Error) -> bool {
    e.is_code(&["ListenerNotFound", "ListenerNotFoundException"]) || lb_gone(e)
}

/// The `app/NAME/ID` or `targetgroup/NAME/ID` tail of an ELB ARN (what CloudWatch
/// metrics and ALBRequestCountPerTarget resource labels use).
pub fn arn_suffix(arn: &str) -> Option<&str> {
    if common::unknown(arn) {
        return None;
    }
    let resource = arn.splitn(6, ':').nth(5)?;
    Some(resource.strip_prefix("loadbalancer/").unwrap_or(resource))
}
