//! `sns_topic`: an Amazon SNS topic (standard or FIFO), encrypted at rest with a KMS key
//! (the AWS managed key `alias/aws/sns` unless the blueprint names another or turns it
//! off), named `STACK-ID` (`.fifo` for FIFO). Subscriptions are not part of this kind.

use crate::resources::access::Access;
use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sns::types::Tag;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super as sns;
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, Error};
use crate::resources::typed::{
    Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct SnsTopic;

/// The AWS managed key for SNS: encryption that costs nothing to set up.
const AWS_MANAGED_KEY: &str = "alias/aws/sns";
/// SNS's limit on a display name, in characters (SetTopicAttributes, `DisplayName`).
const DISPLAY_NAME_MAX: usize = 100;

/// An SNS topic.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// A FIFO topic: strict ordering and deduplication, for FIFO queues to subscribe to.
    /// Its name ends in `.fifo`. Changing it replaces the topic.
    #[serde(default)]
    fifo: bool,
    /// The name shown as the sender of SMS and email notifications (up to 100 characters).
    #[serde(default)]
    display_name: Option<String>,
    /// The KMS key that encrypts messages at rest: an id, ARN or alias. The default is
    /// the AWS managed key `alias/aws/sns`; `none` stores messages unencrypted, which
    /// fails the security baseline (CKV_AWS_26 / SNS.1).
    #[serde(default = "default_kms_key")]
    kms_key: String,
}

fn default_kms_key() -> String {
    AWS_MANAGED_KEY.to_string()
}

/// Normalised attributes: what `desired` builds and `read` finds, in one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    fifo: bool,
    /// `None`: no display name (SNS answers an empty one).
    display_name: Option<String>,
    /// `None`: not encrypted.
    kms_key: Option<String>,
}

/// A topic as read: its ARN and every attribute GetTopicAttributes answered.
#[derive(Debug, Clone)]
pub struct Topic {
    arn: String,
    attributes: HashMap<String, String>,
}

/// Topic names: ASCII letters, digits, `-` and `_`, up to 256 characters with `.fifo`
/// (CreateTopic, `Name`).
fn topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn topic_name(stack: &str, id: &str, fifo: bool) -> String {
    common::physical_name(stack, id, 256, topic_char, if fifo { ".fifo" } else { "" })
}

/// The topic's name: the last part of its ARN.
fn name_of(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or_default()
}

fn kms_key_of(field: &str) -> Option<String> {
    let k = field.trim();
    (k != "none").then(|| k.to_string())
}
/// The stack's topics, named `STACK-ID`.
const TOPIC_ARN: &str = "arn:{partition}:sns:{region}:{account}:{name}*";

#[async_trait]
impl Resource for SnsTopic {
    const KIND: &'static str = "sns_topic";
    const ACCESS: &'static [&'static [Access]] = &[&[
        Access::read(&["sns:ListTopics"]),
        Access::read_on(
            &["sns:GetTopicAttributes", "sns:ListTagsForResource"],
            &[TOPIC_ARN],
        ),
        // CreateTopic with tags also needs TagResource
        // (https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html).
        Access::change(
            &[
                "sns:CreateTopic",
                "sns:TagResource",
                "sns:SetTopicAttributes",
            ],
            &[TOPIC_ARN],
        ),
        Access::delete(&["sns:DeleteTopic"], &[TOPIC_ARN]),
    ]];
    const ATTRIBUTES: &'static [&'static str] = &["arn", "name"];
    const REPLACE_ON: &'static [&'static str] = &["fifo", "name"];
    // CreateTopic "is idempotent, so if the requester already owns a topic with the
    // specified name, that topic's ARN is returned without creating a new topic"
    // (https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html): the leftover of
    // an interrupted run with the same attributes and tags is simply returned. A namesake
    // with other attributes or other tags is refused with `InvalidParameter` ("Invalid
    // parameter: Attributes Reason: Topic already exists with different attributes", "…
    // Tags Reason: Topic already exists with different tags"; the latter is AWS's answer
    // quoted in https://github.com/localstack/localstack/issues/2405), and is then looked
    // up by name: ours is converged, anyone else's refused. When no namesake exists the
    // error was about the request itself and is reported as it is.
    const ADOPT: Adopt = Adopt::OnCodes(&["InvalidParameter"]);

    /// Typical time on AWS: One SNS call each.
    const TYPICAL: Typical = Typical::API_CALL;

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    type Raw = Topic;

    fn check(&self, _id: &str, f: &Fields, _cx: &CheckCx) -> Vec<Issue> {
        let mut out = Vec::new();
        if let Some(d) = &f.display_name {
            let n = d.chars().count();
            if n > DISPLAY_NAME_MAX {
                out.push(Issue::new(
                    "display_name",
                    format!(
                        "`display_name` is {n} characters; SNS allows up to {DISPLAY_NAME_MAX}"
                    ),
                ));
            }
        }
        match kms_key_of(&f.kms_key) {
            Some(k) if k.is_empty() => out.push(
                Issue::new("kms_key", "`kms_key` must name a KMS key (id, ARN or alias/…) or be `none`")
                    .help(format!("remove it to use the AWS managed key `{AWS_MANAGED_KEY}`")),
            ),
            Some(_) => {}
            None => out.push(
                Issue::new(
                    "kms_key",
                    "messages in this topic are stored unencrypted: this fails the security baseline (CKV_AWS_26 / SNS.1)",
                )
                .help(format!("remove `kms_key: none` to use the AWS managed key `{AWS_MANAGED_KEY}`, which costs nothing to set up"))
                .warning(),
            ),
        }
        out
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let a = Attrs {
            name: topic_name(site.stack, site.id, f.fifo),
            fifo: f.fifo,
            display_name: f.display_name.filter(|d| !d.is_empty()),
            kms_key: kms_key_of(&f.kms_key),
        };
        Ok((a, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, f: &Fields) -> Vec<(String, String)> {
        vec![("topic name".into(), topic_name(stack, id, f.fifo))]
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        if a.kms_key.is_none() {
            vec!["`kms_key: none` stores messages unencrypted (security baseline CKV_AWS_26 / SNS.1)".into()]
        } else {
            Vec::new()
        }
    }

    fn label(&self, a: &Attrs) -> String {
        format!("an SNS topic named `{}`", a.name)
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let arns = aws
            .sns
            .list_topics()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await?;
        // ListTopics has no name filter: the stack's names all start `STACK-` (as
        // `topic_name` makes them), which keeps the per-topic calls to this stack's.
        let prefix = topic_name(stack, "", false);
        let arns = arns
            .into_iter()
            .filter_map(|t| t.topic_arn().map(str::to_string))
            .filter(|arn| name_of(arn).starts_with(&prefix));
        // SNS has no batched form of either call: one ListTagsForResource per topic, then
        // GetTopicAttributes only for the topics that are ours.
        common::read_each(arns, |arn| async move {
            let Some(tags) = sns::tags_of(aws, &arn).await? else {
                return Ok(None);
            };
            let Some(id) = common::owned_id(&tags, stack) else {
                return Ok(None);
            };
            let read = sns::attributes_of(aws, &arn).await?;
            Ok(read.map(|attributes| (id, Topic { arn, attributes })))
        })
        .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        // A topic's ARN follows from its name, region and account (SNS API reference,
        // CreateTopic: TopicArn): one GetTopicAttributes instead of listing every topic.
        let account = aws.account_id().await?;
        let arn = aws.partition().arn("sns", &aws.region, &account, &a.name);
        let Some(attributes) = sns::attributes_of(aws, &arn).await? else {
            return Ok(None);
        };
        let tags = sns::tags_of(aws, &arn).await?.unwrap_or_default();
        Ok(Some(Found {
            owner: common::owned_id(&tags, stack),
            raw: Topic { arn, attributes },
        }))
    }

    fn observe(&self, t: &Topic) -> Observed<Attrs> {
        let get = |k: &str| {
            t.attributes
                .get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let name = name_of(&t.arn).to_string();
        Observed {
            physical_id: t.arn.clone(),
            outputs: vec![("arn", json!(t.arn)), ("name", json!(name))],
            attrs: Attrs {
                fifo: get("FifoTopic").is_some_and(|v| v.eq_ignore_ascii_case("true")),
                display_name: get("DisplayName"),
                kms_key: get("KmsMasterKeyId"),
                name,
            },
        }
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, a: &Attrs, _: &()) -> Result<Topic, Error> {
        let mut attributes = HashMap::new();
        if a.fifo {
            attributes.insert("FifoTopic".to_string(), "true".to_string());
        }
        if let Some(d) = &a.display_name {
            attributes.insert("DisplayName".to_string(), d.clone());
        }
        if let Some(k) = &a.kms_key {
            attributes.insert("KmsMasterKeyId".to_string(), k.clone());
        }
        let tags = common::tags(cx.stack, cx.id, &a.name)
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Invalid(format!("cannot build the tags: {e}")))?;
        let created = common::retry_on(
            cx,
            &["StaleTag"],
            Duration::from_secs(60),
            // CreateTopic, Errors: "StaleTag — A tag has been added to a resource with the
            // same ARN as a deleted resource. Wait a short while and then retry the
            // operation." https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html
            "a topic of this name was deleted a moment ago and SNS still holds its tags",
            || async {
                aws.sns
                    .create_topic()
                    .name(&a.name)
                    .set_attributes(Some(attributes.clone()))
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .map_err(Error::from)
            },
        )
        .await?;
        let arn = created.topic_arn().unwrap_or_default().to_string();
        if arn.is_empty() {
            return Err(Error::Aws {
                operation: "CreateTopic".into(),
                code: None,
                message: format!("no topic ARN in the answer for `{}`", a.name),
            });
        }
        // By its documentation CreateTopic returns a namesake the account already has
        // without making anything: only the tags say whether that one is ours (a topic
        // someone else made keeps its own, and is never changed here). A topic made just now
        // may be unknown to SNS's other calls for a moment: both reads wait that out.
        let tags = sns::settling(cx, || sns::tags(aws, &arn)).await?;
        if common::owned_id(&tags, cx.stack).as_deref() != Some(cx.id) {
            return Err(common::name_taken("an SNS topic", &a.name, cx));
        }
        let attributes = sns::settling(cx, || sns::attributes(aws, &arn)).await?;
        Ok(Topic { arn, attributes })
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<Topic>, Error> {
        let arn = &live.physical_id;
        // An empty value removes the attribute: no display name, or no encryption.
        if changed.has("display_name") {
            cx.note("setting the display name");
            let d = a.display_name.as_deref().unwrap_or_default();
            sns::set_attribute(aws, arn, "DisplayName", d).await?;
        }
        if changed.has("kms_key") {
            cx.note("setting the KMS key");
            let k = a.kms_key.as_deref().unwrap_or_default();
            sns::set_attribute(aws, arn, "KmsMasterKeyId", k).await?;
        }
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, _cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        // DeleteTopic "is idempotent, so deleting a topic that does not exist does not
        // result in an error" (https://docs.aws.amazon.com/sns/latest/api/API_DeleteTopic.html);
        // a `NotFound` from an endpoint that answers otherwise means the same.
        let out = aws
            .sns
            .delete_topic()
            .topic_arn(&live.physical_id)
            .send()
            .await;
        sns::unless_gone(out.map_err(Error::from)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::Kind;
    use aws_sdk_sns::operation::get_topic_attributes::GetTopicAttributesOutput;

    const K: Typed<SnsTopic> = Typed(SnsTopic);

    #[test]
    fn desired_of_a_minimal_topic_is_encrypted_with_the_aws_managed_key() {
        assert_eq!(
            K.desired("shop", "orders", &json!({})).unwrap(),
            json!({"name": "shop-orders", "fifo": false, "display_name": null, "kms_key": "alias/aws/sns"})
        );
        let d = K
            .desired(
                "shop",
                "orders",
                &json!({"fifo": true, "display_name": "Orders", "kms_key": "none"}),
            )
            .unwrap();
        assert_eq!(
            d,
            json!({"name": "shop-orders.fifo", "fifo": true, "display_name": "Orders", "kms_key": null})
        );
        assert!(K
            .desired("shop", "t", &json!({"fifo": "yes"}))
            .unwrap_err()
            .contains("fifo"));
    }

    #[test]
    fn long_names_are_shortened_within_the_limit() {
        let id = "x".repeat(300);
        let d = K.desired("shop", &id, &json!({"fifo": true})).unwrap();
        let name = d["name"].as_str().unwrap();
        assert_eq!(name.len(), 256);
        assert!(name.ends_with(".fifo") && name.starts_with("shop-x"));
    }

    /// What GetTopicAttributes answers (as the SDK builds it) reads back as `desired`.
    #[test]
    fn read_shape_matches_desired() {
        let arn = "arn:aws:sns:eu-west-1:123456789012:shop-orders.fifo";
        let out = GetTopicAttributesOutput::builder()
            .attributes("TopicArn", arn)
            .attributes("Owner", "123456789012")
            .attributes("DisplayName", "Orders")
            .attributes("FifoTopic", "true")
            .attributes("ContentBasedDeduplication", "false")
            .attributes("KmsMasterKeyId", "alias/orders")
            .attributes("SubscriptionsConfirmed", "0")
            .build();
        let t = Topic {
            arn: arn.to_string(),
            attributes: out.attributes().cloned().unwrap_or_default(),
        };
        let o = SnsTopic.observe(&t);
        assert_eq!(o.physical_id, arn);
        assert_eq!(o.outputs[0], ("arn", json!(arn)));
        assert_eq!(o.outputs[1], ("name", json!("shop-orders.fifo")));
        assert_eq!(
            serde_json::to_value(o.attrs).unwrap(),
            K.desired(
                "shop",
                "orders",
                &json!({"fifo": true, "display_name": "Orders", "kms_key": "alias/orders"})
            )
            .unwrap()
        );
        // A standard, unencrypted topic without a display name: SNS answers an empty
        // DisplayName and no FifoTopic or KmsMasterKeyId.
        let out = GetTopicAttributesOutput::builder()
            .attributes("TopicArn", "arn:aws:sns:eu-west-1:1:shop-plain")
            .attributes("DisplayName", "")
            .build();
        let t = Topic {
            arn: "arn:aws:sns:eu-west-1:1:shop-plain".into(),
            attributes: out.attributes().cloned().unwrap_or_default(),
        };
        assert_eq!(
            serde_json::to_value(SnsTopic.observe(&t).attrs).unwrap(),
            K.desired(
                "shop",
                "plain",
                &json!({"kms_key": "none", "display_name": ""})
            )
            .unwrap()
        );
    }

    #[test]
    fn checks_name_the_field_and_the_baseline() {
        let p = problems("name: shop\nresources:\n  t: {type: sns_topic, kms_key: none}\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("Warning resources.t.kms_key:") && p[0].contains("CKV_AWS_26"),
            "{p:?}"
        );
        assert_eq!(
            K.warnings(&K.desired("shop", "t", &json!({"kms_key": "none"})).unwrap()),
            vec!["`kms_key: none` stores messages unencrypted (security baseline CKV_AWS_26 / SNS.1)".to_string()]
        );
        assert!(K
            .warnings(&K.desired("shop", "t", &json!({})).unwrap())
            .is_empty());

        let long = "d".repeat(101);
        let p = problems(&format!(
            "name: shop\nresources:\n  t: {{type: sns_topic, display_name: {long}}}\n"
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("Error resources.t.display_name:") && p[0].contains("up to 100"),
            "{p:?}"
        );

        let p = problems("name: shop\nresources:\n  t: {type: sns_topic, kms_key: ' '}\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("Error resources.t.kms_key:") && p[0].contains("must name a KMS key"),
            "{p:?}"
        );
        assert!(
            problems("name: shop\nresources:\n  t: {type: sns_topic, kms_key: alias/orders, display_name: Orders}\n")
                .is_empty()
        );
    }
}
