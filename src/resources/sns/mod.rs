//! Amazon SNS: the `sns_topic` kind, and the service's calls on a topic by ARN — its
//! attributes and tags — with SNS's "not found" codes.

pub mod sns_topic;

use std::collections::{BTreeMap, HashMap};

use crate::aws::Aws;
use crate::resources::common::{aws_error, Error};

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

/// Every attribute of the topic (`None` when it does not exist).
pub async fn attributes_of(aws: &Aws, arn: &str) -> Result<Option<HashMap<String, String>>, Error> {
    let out = aws.sns.get_topic_attributes().topic_arn(arn).send().await;
    Ok(unless_gone(out.map_err(aws_error("GetTopicAttributes")))?
        .map(|o| o.attributes().cloned().unwrap_or_default()))
}

/// The topic's tags (`None` when it does not exist).
pub async fn tags_of(aws: &Aws, arn: &str) -> Result<Option<BTreeMap<String, String>>, Error> {
    let out = aws
        .sns
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await;
    Ok(
        unless_gone(out.map_err(aws_error("ListTagsForResource")))?.map(|o| {
            o.tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        }),
    )
}

/// Sets one attribute: SetTopicAttributes takes one name and value per call.
pub async fn set_attribute(aws: &Aws, arn: &str, name: &str, value: &str) -> Result<(), Error> {
    aws.sns
        .set_topic_attributes()
        .topic_arn(arn)
        .attribute_name(name)
        .attribute_value(value)
        .send()
        .await
        .map(|_| ())
        .map_err(aws_error("SetTopicAttributes"))
}
