//! Amazon EC2 Auto Scaling: the `autoscaling_group` kind, and what reading and waiting on
//! a group takes — finding it by name, its owner by tag, waiting for its capacity (with
//! the reason of a failed launch) or for its instances to go, retrying while Auto Scaling
//! does not see a new launch template yet.

pub mod autoscaling_group;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_autoscaling::types::{
    Activity, AutoScalingGroup as AwsGroup, LifecycleState, ScalingActivityStatusCode,
};

use crate::aws::Aws;
use crate::resources::common::{self, Error};
use crate::resources::{OpCx, TAG_RESOURCE, TAG_STACK};

/// Instances may take minutes to boot and pass their lifecycle hooks.
pub const CAPACITY_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The blueprint id a group's tags give it when they say it is of `stack`.
pub fn owned_id(g: &AwsGroup, stack: &str) -> Option<String> {
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

pub fn group_gone(e: &Error) -> bool {
    // AWS says "AutoScalingGroup name not found" as a ValidationError.
    matches!(e, Error::Aws { code: Some(c), message, .. }
        if c == "ValidationError" && message.contains("not found"))
}

pub async fn describe(aws: &Aws, name: &str) -> Result<Option<AwsGroup>, Error> {
    let out = aws
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await?;
    Ok(out.auto_scaling_groups().first().cloned())
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
pub async fn wait_capacity(
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
pub enum Launches {
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
pub fn launch_verdict(activities: &[Activity], before: &HashSet<String>) -> Launches {
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
        .await?
        .activities()
        .to_vec())
}

/// The ids of the group's recent activities, to tell later ones apart.
pub async fn activity_ids(aws: &Aws, name: &str) -> Result<HashSet<String>, Error> {
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
pub fn template_not_ready(e: &Error) -> bool {
    common::is_aws_message(e, &["ValidationError"], "The specified launch template")
        && common::is_aws_message(e, &["ValidationError"], "does not exist")
}

/// How long Auto Scaling may take to see a new launch template (or version).
const TEMPLATE_SETTLE: Duration = Duration::from_secs(30);

/// Runs a create or update of the group, retrying briefly while Auto Scaling does not see
/// its launch template yet.
pub async fn with_template_retry<T, F, Fut>(cx: &OpCx<'_>, op: F) -> Result<T, Error>
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
pub async fn wait_instances_gone(aws: &Aws, cx: &OpCx<'_>, name: &str) -> Result<(), Error> {
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
                .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
