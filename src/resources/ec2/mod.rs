//! Amazon EC2 (VPC networking and launch templates): what its kinds share — reading
//! everything tagged for a stack, answers of resources that are gone, ARNs, Name tags,
//! deleting what network interfaces still hold. (Tag filters, tag specifications and
//! error matching are in `common::ec2`.)

pub mod internet_gateway;
pub mod launch_template;
pub mod route_table;
pub mod security_group;
pub mod subnet;
pub mod vpc;

use crate::resources::access::{Access, When};
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, Tag};
use serde_json::Value as Json;

use crate::aws::Aws;
use crate::blueprint::{CheckCx, Resource as Declared};
use crate::partition;
use crate::resources::common::{self, ec2, Error};
use crate::resources::fields::ref_key;
use crate::resources::OpCx;

/// Sets the Name tag, for a resource someone renamed outside securecart.
pub async fn set_name_tag(aws: &Aws, resource_id: &str, name: &str) -> Result<(), Error> {
    aws.ec2
        .create_tags()
        .resources(resource_id)
        .tags(Tag::builder().key("Name").value(name).build())
        .send()
        .await?;
    Ok(())
}

/// Everything one paginated EC2 Describe request (`$request`) finds under the stack's tag
/// filter, each with the blueprint id its tags give it; what the filter lets through but is
/// not this stack's by [`ec2::owned_id`] is left out.
/// A macro because every Describe call has its own request, paginator and item types.
macro_rules! tagged {
    ($request:expr, $stack:expr) => {{
        let stack: &str = $stack;
        $request
            .filters($crate::resources::common::ec2::stack_filter(stack))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err($crate::resources::common::Error::from)
            .map(|all| {
                all.into_iter()
                    .filter_map(|x| {
                        Some((
                            $crate::resources::common::ec2::owned_id(x.tags(), stack)?,
                            x,
                        ))
                    })
                    .collect::<Vec<_>>()
            })
    }};
}
pub(crate) use tagged;

/// The resource an EC2 Describe request by id (`$request`) answers with, the first of its
/// list `$items`; `None` when it is gone or, just made, not visible yet (see [`found`]).
/// The find-by-id of terraform-provider-aws's `find.go`.
macro_rules! by_id {
    ($request:expr, $items:ident) => {
        $crate::resources::ec2::found(
            $request
                .send()
                .await
                .map_err($crate::resources::common::Error::from),
        )
        .map(|out| out.and_then(|o| o.$items().first().cloned()))
    };
}
pub(crate) use by_id;

/// An EC2 answer with `*.NotFound` as `None`: the resource is gone, or was just made and
/// is not visible to Describe yet (EC2 is eventually consistent:
/// <https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html>).
pub fn found<T>(answer: Result<T, Error>) -> Result<Option<T>, Error> {
    match answer {
        Err(e) if ec2::not_found(e.code()) => Ok(None),
        other => other.map(Some),
    }
}

/// The ARN of an EC2 resource whose answer carries none (`what` is its ARN's resource
/// type: `vpc`, `subnet`).
pub fn arn(region: &str, owner: Option<&str>, what: &str, id: &str) -> String {
    partition::of(region).arn(
        "ec2",
        region,
        owner.unwrap_or_default(),
        &format!("{what}/{id}"),
    )
}

/// The resources of `kind` declared before `id`: a clash between two of them is reported
/// once, on the later one.
pub fn earlier<'a>(
    cx: &'a CheckCx,
    id: &'a str,
    kind: &'a str,
) -> impl Iterator<Item = &'a Declared> + 'a {
    cx.resources
        .values()
        .take_while(move |r| r.id != id)
        .filter(move |r| r.kind == kind)
}

/// The VPC a declared resource's `vpc` field names, as a reference key (`${v}` and
/// `${v.id}` alike), to catch resources of two VPCs used together.
pub fn named_vpc(r: &Declared) -> Option<String> {
    r.config.get("vpc").and_then(Json::as_str).map(ref_key)
}

/// Detaching fails while anything in the VPC holds a public address; that clears as
/// instances stop and addresses are released, so it is worth waiting for
/// (<https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DetachInternetGateway.html>).
const DETACH_BUDGET: Duration = Duration::from_secs(600);

/// Detaches an internet gateway from a VPC; not attached (or gone) counts as done.
pub async fn detach_gateway(
    aws: &Aws,
    cx: &OpCx<'_>,
    igw_id: &str,
    vpc: &str,
) -> Result<(), Error> {
    let why = format!(
        "{vpc} still has public addresses mapped (Elastic IPs, or instances, NAT gateways or load balancers with public IPs); they must be released before {igw_id} can be detached"
    );
    let r = common::retry_on(
        cx,
        &["DependencyViolation"],
        DETACH_BUDGET,
        &why,
        || async {
            aws.ec2
                .detach_internet_gateway()
                .internet_gateway_id(igw_id)
                .vpc_id(vpc)
                .send()
                .await?;
            Ok(())
        },
    )
    .await;
    match found(r) {
        Err(e) if e.is_code(&["Gateway.NotAttached"]) => Ok(()),
        Err(e) if e.is_code(&["DependencyViolation"]) => {
            Err(Error::Conflict(format!("{why}: {e}")))
        }
        other => other.map(|_| ()),
    }
}

/// Network interfaces may hold a subnet or security group for many minutes after what
/// made them is gone (Lambda's: 45 minutes or more). Long, but bounded.
const IN_USE_BUDGET: Duration = Duration::from_secs(20 * 60);

/// Runs `op` (a delete) until it stops failing with DependencyViolation, saying which
/// network interfaces (found with the filter `eni_filter` = `id`) still hold it, for at
/// most [`IN_USE_BUDGET`]. Already gone counts as deleted.
pub async fn delete_while_in_use<F, Fut>(
    aws: &Aws,
    cx: &OpCx<'_>,
    what: &str,
    eni_filter: &str,
    id: &str,
    op: F,
) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let held_by = || holders(aws, eni_filter, id);
    retry_while_held(
        cx,
        what,
        id,
        IN_USE_BUDGET,
        Duration::from_secs(2),
        op,
        held_by,
    )
    .await
}

async fn retry_while_held<F, Fut, H, HFut>(
    cx: &OpCx<'_>,
    what: &str,
    id: &str,
    budget: Duration,
    first_delay: Duration,
    mut op: F,
    held_by: H,
) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
    H: Fn() -> HFut,
    HFut: Future<Output = String>,
{
    let start = Instant::now();
    let mut delay = first_delay;
    loop {
        let e = match op().await {
            Ok(()) => return Ok(()),
            Err(e) if ec2::not_found(e.code()) => return Ok(()),
            Err(e) if e.is_code(&["DependencyViolation"]) => e,
            Err(e) => return Err(e),
        };
        let holders = held_by().await;
        if start.elapsed() >= budget {
            return Err(Error::Conflict(format!(
                "{what} {id} is still in use after {}s ({holders}): delete or detach what uses it, then run again ({e})",
                budget.as_secs()
            )));
        }
        cx.note(format!(
            "{what} {id} is still in use ({holders}); waiting for it to be released"
        ));
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}

/// What holds a subnet or group, in words: its network interfaces and, for a group,
/// the other groups whose rules refer to it.
async fn holders(aws: &Aws, eni_filter: &str, id: &str) -> String {
    let mut found = Vec::new();
    let enis = aws
        .ec2
        .describe_network_interfaces()
        .filters(Filter::builder().name(eni_filter).values(id).build())
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await;
    if let Ok(enis) = enis {
        for n in enis {
            let mut about: Vec<String> = Vec::new();
            if let Some(d) = n.description().filter(|d| !d.is_empty()) {
                about.push(d.to_string());
            }
            if let Some(t) = n.interface_type() {
                about.push(t.as_str().to_string());
            }
            if let Some(s) = n.status() {
                about.push(s.as_str().to_string());
            }
            let eni = n.network_interface_id().unwrap_or("?");
            found.push(if about.is_empty() {
                eni.to_string()
            } else {
                format!("{eni}: {}", about.join(", "))
            });
        }
    }
    if eni_filter == "group-id" {
        for f in ["ip-permission.group-id", "egress.ip-permission.group-id"] {
            let out = aws
                .ec2
                .describe_security_groups()
                .filters(Filter::builder().name(f).values(id).build())
                .send()
                .await;
            if let Ok(out) = out {
                for g in out
                    .security_groups()
                    .iter()
                    .filter(|g| g.group_id() != Some(id))
                {
                    found.push(format!(
                        "rules of security group {}",
                        g.group_id().unwrap_or("?")
                    ));
                }
            }
        }
    }
    found.dedup();
    if found.is_empty() {
        "by something AWS does not list as a network interface".to_string()
    } else {
        format!("by {}", found.join("; "))
    }
}

// ---- IAM scope of the EC2 kinds (for `securecart permissions`) ---------------------------

/// EC2 resource ARNs by type; EC2 names them by id, so the stack is told by its tag:
/// creates carry `aws:RequestTag/securecart:stack`, everything after acts on resources
/// with `aws:ResourceTag/securecart:stack` (EC2 supports both on these types:
/// https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html).
pub(super) const VPC_ARN: &str = "arn:{partition}:ec2:{region}:{account}:vpc/*";
pub(super) const SUBNET_ARN: &str = "arn:{partition}:ec2:{region}:{account}:subnet/*";
pub(super) const IGW_ARN: &str = "arn:{partition}:ec2:{region}:{account}:internet-gateway/*";
pub(super) const RTB_ARN: &str = "arn:{partition}:ec2:{region}:{account}:route-table/*";
pub(super) const SG_ARN: &str = "arn:{partition}:ec2:{region}:{account}:security-group/*";
pub(super) const LT_ARN: &str = "arn:{partition}:ec2:{region}:{account}:launch-template/*";

/// A create inside one of the stack's VPCs: the VPC is a resource of the call too
/// (CreateSubnet, CreateSecurityGroup, CreateRouteTable), authorized by its tag.
pub(super) const IN_STACK_VPC: Access = Access::change(&[], &[VPC_ARN]).when(When::ResourceTagged);
