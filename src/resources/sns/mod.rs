//! Amazon SNS: the `sns_topic` kind, and the service's calls on a topic by ARN — its
//! attributes and tags — with SNS's "not found" codes and the moment a new topic may
//! still be unknown.

pub mod sns_topic;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::aws::Aws;
use crate::resources::common::{self, Error};
use crate::resources::OpCx;

/// How long a topic just created may still be unknown to SNS's other calls. AWS documents
/// no such window for SNS, but it is seen: calls on a new topic answering `NotFound`
/// (https://github.com/ansible/ansible/pull/67089), CloudFormation's own SNS handler
/// waiting after creating a topic
/// (https://github.com/aws-cloudformation/aws-cloudformation-resource-providers-sns/pull/55).
const NEW_TOPIC_SETTLE: Duration = Duration::from_secs(30);

/// The topic does not exist: `NotFound` from GetTopicAttributes / SetTopicAttributes,
/// `ResourceNotFound` from the tagging calls (SNS API reference, each action's Errors).
pub fn gone(e: &Error) -> bool {
    e.is_code(&["NotFound", "ResourceNotFound"])
}

/// The answer of a call on a topic, `None` when the topic does not exist.
pub fn unless_gone<T>(r: Result<T, Error>) -> Result<Option<T>, Error> {
    match r {
        Err(e) if gone(&e) => Ok(None),
        other => other.map(Some),
    }
}

/// Runs a call on a topic that was just created, retrying briefly while SNS answers that
/// it does not exist. Never for reads that decide whether a topic exists.
pub async fn settling<T, F, Fut>(cx: &OpCx<'_>, op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let why = "SNS does not know a topic for a moment after CreateTopic";
    common::retry_while(cx, gone, NEW_TOPIC_SETTLE, why, op).await
}

/// Every attribute of the topic.
pub async fn attributes(aws: &Aws, arn: &str) -> Result<HashMap<String, String>, Error> {
    let out = aws.sns.get_topic_attributes().topic_arn(arn).send().await;
    out.map(|o| o.attributes().cloned().unwrap_or_default())
        .map_err(Error::from)
}

/// Every attribute of the topic (`None` when it does not exist).
pub async fn attributes_of(aws: &Aws, arn: &str) -> Result<Option<HashMap<String, String>>, Error> {
    unless_gone(attributes(aws, arn).await)
}

/// The topic's tags.
pub async fn tags(aws: &Aws, arn: &str) -> Result<BTreeMap<String, String>, Error> {
    let out = aws
        .sns
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await;
    out.map(|o| {
        o.tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()
    })
    .map_err(Error::from)
}

/// The topic's tags (`None` when it does not exist).
pub async fn tags_of(aws: &Aws, arn: &str) -> Result<Option<BTreeMap<String, String>>, Error> {
    unless_gone(tags(aws, arn).await)
}

/// Sets one attribute: SetTopicAttributes takes one name and value per call.
pub async fn set_attribute(aws: &Aws, arn: &str, name: &str, value: &str) -> Result<(), Error> {
    aws.sns
        .set_topic_attributes()
        .topic_arn(arn)
        .attribute_name(name)
        .attribute_value(value)
        .send()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_not_found_answers_mean_the_topic_is_gone() {
        let aws = |operation: &str, code: &str| Error::Aws {
            operation: operation.into(),
            code: Some(code.into()),
            message: format!("{code}: …"),
        };
        assert!(gone(&aws("GetTopicAttributes", "NotFound")));
        assert!(gone(&aws("ListTagsForResource", "ResourceNotFound")));
        assert!(!gone(&aws("CreateTopic", "InvalidParameter")));
        assert!(!gone(&aws("ListTagsForResource", "AuthorizationError")));
        assert_eq!(
            unless_gone::<()>(Err(aws("DeleteTopic", "NotFound"))).unwrap(),
            None
        );
        assert!(unless_gone::<()>(Err(aws("DeleteTopic", "AuthorizationError"))).is_err());
    }
}
