//! Elastic Load Balancing (v2): what the `load_balancer`, `target_group` and `listener` kinds
//! share — names, tags, finding the stack's load balancers, error matching.

pub mod listener;
pub mod load_balancer;
pub mod target_group;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer as AwsLb, LoadBalancerTypeEnum, Tag};
use futures::{StreamExt, TryStreamExt};

use crate::aws::Aws;
use crate::resources::common::{self, aws_error, Error};

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
                .await
                .map_err(aws_error("DescribeTags"))?;
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
        .await
        .map_err(aws_error("DescribeLoadBalancers"))?;
    let all: Vec<AwsLb> = all
        .into_iter()
        .filter(|l| l.r#type() == Some(&LoadBalancerTypeEnum::Application))
        .collect();
    let arns: Vec<String> = all
        .iter()
        .filter_map(|l| l.load_balancer_arn().map(str::to_string))
        .collect();
    let tags = tags_of(aws, &arns).await?;
    Ok(all
        .into_iter()
        .filter_map(|l| {
            let t = tags.get(l.load_balancer_arn()?)?;
            Some((common::owned_id(t, stack)?, l))
        })
        .collect())
}

pub fn lb_gone(e: &Error) -> bool {
    e.is_code(&["LoadBalancerNotFound", "LoadBalancerNotFoundException"])
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
