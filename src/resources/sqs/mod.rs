//! Amazon SQS: the `sqs_queue` kind, and the service's calls it makes on a queue — by
//! name, tags, attributes — with SQS's error codes and its first-second wait.

pub mod sqs_queue;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName as Q;

use crate::aws::Aws;
use crate::resources::common::{self, Error};
use crate::resources::OpCx;

/// CreateQueue of a name whose queue was deleted less than 60 s ago.
pub const DELETED_RECENTLY: &[&str] = &[
    "AWS.SimpleQueueService.QueueDeletedRecently",
    "QueueDeletedRecently",
];

/// How long a queue that was just created, or is known to exist, may still be unknown to
/// SQS. The SQS API reference (CreateQueue) says: "After you create a queue, you must wait
/// at least one second after the queue is created to be able to use the queue."
/// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
const NEW_QUEUE_SETTLE: Duration = Duration::from_secs(20);

/// The queue no longer exists (deleted meanwhile, or already gone).
pub fn gone(e: &Error) -> bool {
    e.is_code(&[
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NonExistentQueue",
    ])
}

/// The answer of a call on a queue, `None` when the queue does not exist.
pub fn unless_gone<T>(r: Result<T, Error>) -> Result<Option<T>, Error> {
    match r {
        Err(e) if gone(&e) => Ok(None),
        other => other.map(Some),
    }
}

/// A redrive naming a dead-letter queue SQS does not know (yet): "Value {...} for parameter
/// RedrivePolicy is invalid. Reason: Dead letter target does not exist." (serverless#5215:
/// https://github.com/serverless/serverless/issues/5215). The query code is
/// InvalidParameterValue; the JSON protocol's is InvalidAttributeValue.
fn dead_letter_unknown(e: &Error) -> bool {
    common::is_aws_message(
        e,
        &["InvalidParameterValue", "InvalidAttributeValue"],
        "Dead letter target does not exist",
    )
}

/// What a queue just created answers for about a second: itself or its dead-letter queue
/// not found.
fn not_settled(e: &Error) -> bool {
    gone(e) || dead_letter_unknown(e)
}

/// Runs a call on a queue that was just created or is known to exist, retrying briefly
/// while SQS does not know it (or its dead-letter queue) yet. Never for reads that decide
/// whether a queue exists: there "not found" is the answer.
pub async fn settling<T, F, Fut>(cx: &OpCx<'_>, op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    common::retry_while(
        cx,
        not_settled,
        NEW_QUEUE_SETTLE,
        "SQS makes a new queue usable about a second after CreateQueue",
        op,
    )
    .await
}

/// The URL of the queue called `name`, if there is one.
pub async fn queue_url(aws: &Aws, name: &str) -> Result<Option<String>, Error> {
    let out = aws.sqs.get_queue_url().queue_name(name).send().await;
    Ok(unless_gone(out.map_err(Error::from))?.and_then(|o| o.queue_url().map(str::to_string)))
}

/// The queue's tags (`None` when it does not exist).
pub async fn tags_of(aws: &Aws, url: &str) -> Result<Option<HashMap<String, String>>, Error> {
    let out = aws.sqs.list_queue_tags().queue_url(url).send().await;
    Ok(unless_gone(out.map_err(Error::from))?.map(|o| o.tags().cloned().unwrap_or_default()))
}

/// Every attribute of the queue.
pub async fn get_attributes(aws: &Aws, url: &str) -> Result<HashMap<Q, String>, Error> {
    aws.sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Q::All)
        .send()
        .await
        .map(|o| o.attributes().cloned().unwrap_or_default())
        .map_err(Error::from)
}

pub async fn set_attributes(aws: &Aws, url: &str, attrs: Vec<(Q, String)>) -> Result<(), Error> {
    aws.sqs
        .set_queue_attributes()
        .queue_url(url)
        .set_attributes(Some(attrs.into_iter().collect()))
        .send()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_queue_is_waited_for_only_on_its_own_answers() {
        let aws = |code: &str, message: &str| Error::Aws {
            operation: "GetQueueAttributes".into(),
            code: Some(code.into()),
            message: format!("{code}: {message}"),
        };
        // The JSON protocol's code, and the query code the SDK reads from
        // x-amzn-query-error, for "The specified queue does not exist."
        assert!(not_settled(&aws(
            "QueueDoesNotExist",
            "The specified queue does not exist."
        )));
        assert!(not_settled(&aws(
            "AWS.SimpleQueueService.NonExistentQueue",
            "The specified queue does not exist."
        )));
        assert!(not_settled(&aws(
            "InvalidParameterValue",
            "Value {\"deadLetterTargetArn\":\"arn:aws:sqs:eu-west-1:1:dev-dlq\",\"maxReceiveCount\":3} \
             for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist."
        )));
        // A redrive that is wrong for good is not waited for.
        assert!(!not_settled(&aws(
            "InvalidParameterValue",
            "Value {} for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: 0"
        )));
        assert!(!not_settled(&aws(
            "AccessDenied",
            "Access to the resource is denied."
        )));
    }
}
