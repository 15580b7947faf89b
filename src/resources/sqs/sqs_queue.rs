//! `sqs_queue`: an Amazon SQS queue (standard or FIFO) with its dead-letter redrive,
//! at-rest encryption and the AWS services allowed to send to it.

use crate::resources::access::Access;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName as Q;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value as Json};

use super as sqs;
use crate::aws::Aws;
use crate::blueprint::refs::{self, Piece};
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, Error};
use crate::resources::typed::{
    self, Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct SqsQueue;

/// An SQS queue.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// A FIFO queue: exactly-once processing, in order within a message group. Its
    /// name ends in `.fifo`. Changing it replaces the queue (and loses its messages).
    #[serde(default)]
    fifo: bool,
    /// FIFO queues only: deduplicate messages by a SHA-256 hash of their body, so
    /// senders need not give a deduplication id.
    #[serde(default)]
    content_based_deduplication: bool,
    /// Seconds a received message stays hidden from other consumers (0 to 43200).
    // The numbers are read wide so that a negative or huge value meets the range check
    // (which names the allowed range) rather than a bare type error.
    #[serde(default = "int::<VISIBILITY>")]
    visibility_timeout: i64,
    /// Seconds a message is kept before SQS drops it (60 to 1209600, i.e. 14 days).
    #[serde(default = "int::<RETENTION>")]
    message_retention: i64,
    /// Seconds every new message waits before it can be received (0 to 900).
    #[serde(default)]
    delay: i64,
    /// Largest message accepted, in bytes (1024 to 1048576).
    #[serde(default = "int::<MAX_SIZE>")]
    max_message_size: i64,
    /// Seconds a receive call waits for a message to arrive (long polling, 0 to 20).
    #[serde(default)]
    receive_wait_time: i64,
    /// Move messages that keep failing to another queue.
    #[serde(default)]
    dead_letter: Option<DeadLetter>,
    /// Encryption at rest: `sqs` (SQS-managed keys, the default), a mapping with
    /// `kms_key` to use a KMS key, or `none`, which fails the security baseline
    /// (CKV_AWS_27 / SQS.1) and must be written out explicitly.
    #[serde(default)]
    encryption: Encryption,
    /// AWS services allowed to send messages to this queue for this account only, such
    /// as `events.amazonaws.com` for EventBridge rules that target it.
    #[serde(default)]
    allow_services: Vec<String>,
}

/// SQS's defaults, which a queue read back without the attribute has too.
const VISIBILITY: u32 = 30;
const RETENTION: u32 = 345_600;
const MAX_SIZE: u32 = 262_144;
/// SQS's default data key reuse period, in seconds.
const REUSE: u32 = 300;

/// A number field's default (serde takes a function).
fn int<const N: u32>() -> i64 {
    N.into()
}

/// The redrive policy of a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeadLetter {
    /// ARN of the dead-letter queue, usually a reference like `${orders_dlq.arn}`. It
    /// must be FIFO if this queue is, and standard if this queue is.
    queue: String,
    /// Failed receives after which a message moves to the dead-letter queue (1 to 1000).
    #[serde(default = "int::<5>")]
    max_receives: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
enum Encryption {
    #[default]
    Sqs,
    Off,
    Kms(KmsKey),
}

/// Encryption with a KMS key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct KmsKey {
    /// The KMS key: an id, ARN or alias such as `alias/orders`.
    kms_key: String,
    /// Seconds SQS reuses a data key before calling KMS again (60 to 86400).
    #[serde(default = "int::<REUSE>")]
    data_key_reuse_period: i64,
}

impl Serialize for Encryption {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Encryption::Sqs => s.serialize_str("sqs"),
            Encryption::Off => s.serialize_str("none"),
            Encryption::Kms(k) => k.serialize(s),
        }
    }
}

// Written by hand: an untagged enum's error ("did not match any variant") tells the
// user nothing.
impl<'de> Deserialize<'de> for Encryption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = Json::deserialize(d)?;
        match v {
            Json::String(s) if s == "sqs" => Ok(Encryption::Sqs),
            Json::String(s) if s == "none" => Ok(Encryption::Off),
            Json::Object(_) => serde_json::from_value(v)
                .map(Encryption::Kms)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "expected `sqs`, `none` or a mapping with `kms_key`, not {other}"
            ))),
        }
    }
}

impl schemars::JsonSchema for Encryption {
    fn schema_name() -> Cow<'static, str> {
        "Encryption".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Inline rather than a `$ref`: the blueprint schema moves each kind's `$defs`
        // under prefixed names, and a reference from one definition to another would dangle.
        let kms = <KmsKey as schemars::JsonSchema>::json_schema(g);
        schemars::json_schema!({
            "anyOf": [{"type": "string", "enum": ["sqs", "none"]}, kms],
            "default": "sqs",
        })
    }
}

/// Normalised attributes: what `desired` builds and `read` finds, in one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    fifo: bool,
    content_based_deduplication: bool,
    visibility_timeout: u32,
    message_retention: u32,
    delay: u32,
    max_message_size: u32,
    receive_wait_time: u32,
    dead_letter: Option<DeadLetter>,
    encryption: Encryption,
    allow_services: Vec<String>,
}

fn queue_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn queue_name(stack: &str, id: &str, fifo: bool) -> String {
    common::physical_name(stack, id, 80, queue_char, if fifo { ".fifo" } else { "" })
}

/// Sorted and without duplicates, so the order in the blueprint never shows as a change.
fn normalise_services(services: &[String]) -> Vec<String> {
    services
        .iter()
        .map(|s| s.trim().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn valid_service(s: &str) -> bool {
    let host = s
        .strip_suffix(".amazonaws.com")
        .or_else(|| s.strip_suffix(".amazonaws.com.cn"));
    host.is_some_and(|h| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    })
}

impl Fields {
    fn limits(&self) -> [(&'static str, i64, i64, i64); 5] {
        [
            ("visibility_timeout", self.visibility_timeout, 0, 43_200),
            ("message_retention", self.message_retention, 60, 1_209_600),
            ("delay", self.delay, 0, 900),
            ("max_message_size", self.max_message_size, 1024, 1_048_576),
            ("receive_wait_time", self.receive_wait_time, 0, 20),
        ]
    }
}
/// The stack's queues, named `STACK-ID`.
const QUEUE_ARN: &str = "arn:{partition}:sqs:{region}:{account}:{name}*";

#[async_trait]
impl Resource for SqsQueue {
    const KIND: &'static str = "sqs_queue";
    const ACCESS: &'static [&'static [Access]] = &[&[
        Access::read(&["sqs:ListQueues"]),
        Access::read_on(
            &[
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:ListQueueTags",
            ],
            &[QUEUE_ARN],
        ),
        // CreateQueue with tags also needs TagQueue
        // (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html).
        Access::change(
            &["sqs:CreateQueue", "sqs:TagQueue", "sqs:SetQueueAttributes"],
            &[QUEUE_ARN],
        ),
        Access::delete(&["sqs:DeleteQueue"], &[QUEUE_ARN]),
    ]];
    const ATTRIBUTES: &'static [&'static str] = &["arn", "url", "name"];
    const REPLACE_ON: &'static [&'static str] = &["fifo", "name"];
    // Looked up by name first: CreateQueue answers with the URL of an existing queue whose
    // attributes happen to match, even when it belongs to someone else.
    const ADOPT: Adopt = Adopt::LookFirst;

    /// Typical time on AWS: One SQS call each (a name deleted within 60 s cannot be reused:
    /// replacements wait, see the kind).
    const TYPICAL: Typical = Typical::API_CALL;

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    type Raw = Queue;

    fn check(&self, _id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut out = Vec::new();
        for (field, v, lo, hi) in f.limits() {
            if !(lo..=hi).contains(&v) {
                out.push(Issue::new(
                    field,
                    format!("`{field}` must be {lo} to {hi}, not {v}"),
                ));
            }
        }
        if f.content_based_deduplication && !f.fifo {
            out.push(
                Issue::new(
                    "content_based_deduplication",
                    "only FIFO queues deduplicate messages",
                )
                .help("set `fifo: true`, or remove `content_based_deduplication`"),
            );
        }
        if let Some(dl) = &f.dead_letter {
            if !(1..=1000).contains(&dl.max_receives) {
                out.push(Issue::new(
                    "dead_letter.max_receives",
                    format!("`max_receives` must be 1 to 1000, not {}", dl.max_receives),
                ));
            }
            out.extend(check_dead_letter(&dl.queue, f.fifo, cx));
        }
        match &f.encryption {
            Encryption::Off => out.push(
                Issue::new(
                    "encryption",
                    "messages in this queue are stored unencrypted: this fails the security baseline (CKV_AWS_27 / SQS.1)",
                )
                .help("remove `encryption: none` to get SQS-managed encryption, which costs nothing")
                .warning(),
            ),
            Encryption::Kms(k) => {
                if k.kms_key.trim().is_empty() {
                    out.push(Issue::new("encryption.kms_key", "`kms_key` must name a KMS key (id, ARN or alias/…)"));
                }
                if !(60..=86_400).contains(&k.data_key_reuse_period) {
                    out.push(Issue::new(
                        "encryption.data_key_reuse_period",
                        format!("`data_key_reuse_period` must be 60 to 86400, not {}", k.data_key_reuse_period),
                    ));
                }
            }
            Encryption::Sqs => {}
        }
        for (i, s) in f.allow_services.iter().enumerate() {
            if !valid_service(s.trim()) {
                out.push(
                    Issue::new(format!("allow_services[{i}]"), format!("`{s}` is not an AWS service principal"))
                        .help("service principals look like `events.amazonaws.com` or `sns.amazonaws.com`"),
                );
            }
        }
        out
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let a = Attrs {
            name: queue_name(site.stack, site.id, f.fifo),
            fifo: f.fifo,
            content_based_deduplication: f.fifo && f.content_based_deduplication,
            visibility_timeout: common::uint32("visibility_timeout", f.visibility_timeout)?,
            message_retention: common::uint32("message_retention", f.message_retention)?,
            delay: common::uint32("delay", f.delay)?,
            max_message_size: common::uint32("max_message_size", f.max_message_size)?,
            receive_wait_time: common::uint32("receive_wait_time", f.receive_wait_time)?,
            dead_letter: f.dead_letter,
            encryption: f.encryption,
            allow_services: normalise_services(&f.allow_services),
        };
        Ok((a, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, f: &Fields) -> Vec<(String, String)> {
        vec![("queue name".into(), queue_name(stack, id, f.fifo))]
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        if a.encryption == Encryption::Off {
            vec!["`encryption: none` stores messages unencrypted (security baseline CKV_AWS_27 / SQS.1)".into()]
        } else {
            Vec::new()
        }
    }

    fn label(&self, a: &Attrs) -> String {
        format!("an SQS queue named `{}`", a.name)
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let urls = aws
            .sqs
            .list_queues()
            .queue_name_prefix(format!("{stack}-"))
            .max_results(1000)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await?;
        // SQS has no batched form of either call: one ListQueueTags per queue, then
        // GetQueueAttributes only for the queues that are ours.
        common::read_each(urls, |url| async move {
            let Some(tags) = sqs::tags_of(aws, &url).await? else {
                return Ok(None);
            };
            let Some(id) = common::owned_id(&tags, stack) else {
                return Ok(None);
            };
            let read = sqs::unless_gone(sqs::get_attributes(aws, &url).await)?;
            read.map(|m| Ok((id, Queue::read(url, &m)?))).transpose()
        })
        .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let Some(url) = sqs::queue_url(aws, &a.name).await? else {
            return Ok(None);
        };
        let Some(tags) = sqs::tags_of(aws, &url).await? else {
            return Ok(None);
        };
        // Not waited for: GetQueueUrl found the queue, and SQS answers it only once the
        // queue is usable (as GetQueueAttributes does; tests/it/strict.rs
        // a_new_sqs_queue_does_not_exist_for_a_moment).
        let m = sqs::get_attributes(aws, &url).await?;
        Ok(Some(Found {
            owner: common::owned_id(&tags, stack),
            raw: Queue::read(url, &m)?,
        }))
    }

    fn observe(&self, q: &Queue) -> Observed<Attrs> {
        Observed {
            physical_id: q.url.clone(),
            outputs: vec![
                ("arn", json!(q.arn)),
                ("url", json!(q.url)),
                ("name", json!(q.attrs.name)),
            ],
            attrs: q.attrs.clone(),
        }
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, a: &Attrs, _: &()) -> Result<Queue, Error> {
        let tags = common::tags(cx.stack, cx.id, &a.name);
        let created = common::retry_on(
            cx,
            sqs::DELETED_RECENTLY,
            Duration::from_secs(90),
            "a queue of this name was deleted less than 60 s ago and SQS keeps the name until then",
            || {
                // The redrive names a dead-letter queue that may have been created a moment
                // ago, which SQS may not know yet.
                sqs::settling(cx, || async {
                    aws.sqs
                        .create_queue()
                        .queue_name(&a.name)
                        .set_attributes(Some(create_attributes(a).into_iter().collect()))
                        .set_tags(Some(tags.clone().into_iter().collect()))
                        .send()
                        .await
                        .map_err(Error::from)
                })
            },
        )
        .await;
        let created = match created {
            Err(e) if e.is_code(&["QueueAlreadyExists", "QueueNameExists"]) => {
                return Err(taken(a, cx))
            }
            other => other?,
        };
        let url = created
            .queue_url()
            .ok_or_else(|| Error::Aws {
                operation: "CreateQueue".into(),
                code: None,
                message: format!("no queue URL in the answer for `{}`", a.name),
            })?
            .to_string();
        // The look-up by name above misses a queue made less than a second ago (SQS does
        // not know it yet), and CreateQueue then answers with that queue's URL if the
        // attributes match, whoever made it: its tags say whether it is ours (for an
        // existing name CreateQueue "returns the queue URL for the existing queue" and
        // makes nothing, so a queue someone else made keeps its own tags).
        let tags = sqs::settling(cx, || async {
            let out = aws.sqs.list_queue_tags().queue_url(&url).send().await;
            out.map(|o| o.tags().cloned().unwrap_or_default())
                .map_err(Error::from)
        })
        .await?;
        if common::owned_id(&tags, cx.stack).as_deref() != Some(cx.id) {
            return Err(taken(a, cx));
        }
        // The policy names the queue ARN, known only now; until it is set the queue
        // only refuses more, and a re-run after a crash here converges in update().
        // Both calls are on the queue just created: SQS may not know it yet.
        let attrs = sqs::settling(cx, || sqs::get_attributes(aws, &url)).await?;
        let arn = attrs.get(&Q::QueueArn).cloned().unwrap_or_default();
        if !a.allow_services.is_empty() {
            let arn = require_arn(&arn, &a.name)?;
            let policy = vec![(Q::Policy, policy_document(arn, &a.allow_services))];
            sqs::settling(cx, || sqs::set_attributes(aws, &url, policy.clone())).await?;
        }
        Ok(Queue {
            url,
            arn,
            attrs: a.clone(),
        })
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<Queue>, Error> {
        let old = typed::attrs_of::<Self>(live)?;
        let url = &live.physical_id;
        let arn = live.outputs.get("arn").and_then(Json::as_str).unwrap_or("");
        let mut set: Vec<(Q, String)> = numbers(a)
            .into_iter()
            .filter(|(field, _, _)| changed.has(field))
            .map(|(_, key, value)| (key, value.to_string()))
            .collect();
        // Standard queues reject the attribute, even set to false.
        if changed.has("content_based_deduplication") && a.fifo {
            set.push((
                Q::ContentBasedDeduplication,
                a.content_based_deduplication.to_string(),
            ));
        }
        if changed.has("dead_letter") {
            // An empty policy removes the redrive.
            let redrive = a.dead_letter.as_ref().map(redrive_policy);
            set.push((Q::RedrivePolicy, redrive.unwrap_or_default()));
        }
        if changed.has("encryption") {
            set.extend(encryption_change(&old.encryption, &a.encryption));
        }
        if changed.has("allow_services") {
            let doc = if a.allow_services.is_empty() {
                String::new()
            } else {
                policy_document(require_arn(arn, &a.name)?, &a.allow_services)
            };
            set.push((Q::Policy, doc));
        }
        if !set.is_empty() {
            let keys: Vec<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
            cx.note(format!("setting {}", keys.join(", ")));
            // The queue is known to exist (read found it), perhaps made a moment ago by an
            // interrupted run, and a new redrive may name a dead-letter queue this apply
            // just created.
            sqs::settling(cx, || sqs::set_attributes(aws, url, set.clone())).await?;
        }
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, _cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let out = aws
            .sqs
            .delete_queue()
            .queue_url(&live.physical_id)
            .send()
            .await;
        sqs::unless_gone(out.map_err(Error::from)).map(|_| ())
    }
}

/// A queue as read: its URL, its ARN and its attributes.
pub struct Queue {
    url: String,
    arn: String,
    attrs: Attrs,
}

impl Queue {
    fn read(url: String, m: &HashMap<Q, String>) -> Result<Queue, Error> {
        Ok(Queue {
            attrs: attrs_of(m, &url)?,
            arn: m.get(&Q::QueueArn).cloned().unwrap_or_default(),
            url,
        })
    }
}

/// The refusal of a name taken by a queue that is not this resource's.
fn taken(a: &Attrs, cx: &OpCx<'_>) -> Error {
    common::name_taken("an SQS queue", &a.name, cx)
}

fn require_arn<'a>(arn: &'a str, name: &str) -> Result<&'a str, Error> {
    if arn.is_empty() {
        Err(Error::Aws {
            operation: "GetQueueAttributes".into(),
            code: None,
            message: format!("no QueueArn for `{name}`, which the access policy needs"),
        })
    } else {
        Ok(arn)
    }
}

/// Normalises GetQueueAttributes into [`Attrs`], filling in AWS's defaults for
/// anything it leaves out.
fn attrs_of(m: &HashMap<Q, String>, url: &str) -> Result<Attrs, Error> {
    let num = |k: Q, default: u32| -> Result<u32, Error> {
        match m.get(&k) {
            None => Ok(default),
            Some(s) => s.trim().parse().map_err(|_| Error::Aws {
                operation: "GetQueueAttributes".into(),
                code: None,
                message: format!("{k} of {url} is `{s}`, not a whole number"),
            }),
        }
    };
    let flag = |k: Q| m.get(&k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let arn = m.get(&Q::QueueArn).map(String::as_str).unwrap_or_default();
    let name = arn
        .rsplit(':')
        .next()
        .filter(|n| !n.is_empty())
        .or_else(|| url.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    let kms = m
        .get(&Q::KmsMasterKeyId)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    let encryption = match kms {
        Some(k) => Encryption::Kms(KmsKey {
            kms_key: k.to_string(),
            data_key_reuse_period: num(Q::KmsDataKeyReusePeriodSeconds, REUSE)?.into(),
        }),
        None if flag(Q::SqsManagedSseEnabled) => Encryption::Sqs,
        None => Encryption::Off,
    };
    let fifo = flag(Q::FifoQueue);
    Ok(Attrs {
        name,
        fifo,
        content_based_deduplication: fifo && flag(Q::ContentBasedDeduplication),
        visibility_timeout: num(Q::VisibilityTimeout, VISIBILITY)?,
        message_retention: num(Q::MessageRetentionPeriod, RETENTION)?,
        delay: num(Q::DelaySeconds, 0)?,
        max_message_size: num(Q::MaximumMessageSize, MAX_SIZE)?,
        receive_wait_time: num(Q::ReceiveMessageWaitTimeSeconds, 0)?,
        dead_letter: dead_letter_of(m.get(&Q::RedrivePolicy).map(String::as_str)),
        encryption,
        allow_services: services_of_policy(m.get(&Q::Policy).map(String::as_str), arn),
    })
}

/// The numbers of a queue: (attribute, SQS attribute, value).
fn numbers(a: &Attrs) -> [(&'static str, Q, u32); 5] {
    [
        (
            "visibility_timeout",
            Q::VisibilityTimeout,
            a.visibility_timeout,
        ),
        (
            "message_retention",
            Q::MessageRetentionPeriod,
            a.message_retention,
        ),
        ("delay", Q::DelaySeconds, a.delay),
        (
            "max_message_size",
            Q::MaximumMessageSize,
            a.max_message_size,
        ),
        (
            "receive_wait_time",
            Q::ReceiveMessageWaitTimeSeconds,
            a.receive_wait_time,
        ),
    ]
}

fn create_attributes(a: &Attrs) -> Vec<(Q, String)> {
    let mut v: Vec<(Q, String)> = numbers(a)
        .into_iter()
        .map(|(_, key, value)| (key, value.to_string()))
        .collect();
    if a.fifo {
        v.push((Q::FifoQueue, "true".into()));
        v.push((
            Q::ContentBasedDeduplication,
            a.content_based_deduplication.to_string(),
        ));
    }
    if let Some(dl) = &a.dead_letter {
        v.push((Q::RedrivePolicy, redrive_policy(dl)));
    }
    // Stated even for the default: SSE-SQS is only on by default for queues created
    // since 2022, and `none` must really turn it off.
    v.extend(encryption_change(&Encryption::Off, &a.encryption));
    if a.encryption == Encryption::Off {
        v.push((Q::SqsManagedSseEnabled, "false".into()));
    }
    v
}

/// The attributes that move a queue from one encryption setting to another: SSE-SQS
/// and a KMS key exclude each other, so the one going away is switched off explicitly.
fn encryption_change(old: &Encryption, new: &Encryption) -> Vec<(Q, String)> {
    let mut v = Vec::new();
    match new {
        Encryption::Sqs => {
            if matches!(old, Encryption::Kms(_)) {
                v.push((Q::KmsMasterKeyId, String::new()));
            }
            v.push((Q::SqsManagedSseEnabled, "true".into()));
        }
        Encryption::Off => {
            if matches!(old, Encryption::Kms(_)) {
                v.push((Q::KmsMasterKeyId, String::new()));
            }
            if old != &Encryption::Off {
                v.push((Q::SqsManagedSseEnabled, "false".into()));
            }
        }
        Encryption::Kms(k) => {
            if old == &Encryption::Sqs {
                v.push((Q::SqsManagedSseEnabled, "false".into()));
            }
            v.push((Q::KmsMasterKeyId, k.kms_key.clone()));
            v.push((
                Q::KmsDataKeyReusePeriodSeconds,
                k.data_key_reuse_period.to_string(),
            ));
        }
    }
    v
}

fn redrive_policy(dl: &DeadLetter) -> String {
    json!({"deadLetterTargetArn": dl.queue, "maxReceiveCount": dl.max_receives}).to_string()
}

/// Reads a RedrivePolicy back; `maxReceiveCount` comes as a number from AWS and as a
/// string from some emulators. Anything unreadable is kept visible so plan shows it.
fn dead_letter_of(raw: Option<&str>) -> Option<DeadLetter> {
    let raw = raw?.trim();
    if raw.is_empty() {
        return None;
    }
    let v: Json = serde_json::from_str(raw).unwrap_or(Json::Null);
    let arn = v.get("deadLetterTargetArn").and_then(Json::as_str);
    let n = match v.get("maxReceiveCount") {
        Some(Json::Number(n)) => n.as_i64(),
        Some(Json::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Some(match (arn, n) {
        (Some(a), Some(n)) => DeadLetter {
            queue: a.to_string(),
            max_receives: n,
        },
        _ => DeadLetter {
            queue: format!("(unrecognised redrive policy {raw})"),
            max_receives: 0,
        },
    })
}

fn statement_id(service: &str) -> String {
    let mut sid = String::from("SecurecartAllow");
    for part in service
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        let mut cs = part.chars();
        if let Some(first) = cs.next() {
            sid.push(first.to_ascii_uppercase());
            sid.extend(cs);
        }
    }
    sid
}

/// The queue policy for `allow_services`: each service may SendMessage, and only on
/// behalf of the queue's own account (aws:SourceAccount), so no other account's rule
/// or topic can use it as a confused deputy.
fn policy_document(arn: &str, services: &[String]) -> String {
    let account = arn.split(':').nth(4).unwrap_or_default();
    let statements: Vec<Json> = services
        .iter()
        .map(|s| {
            json!({
                "Sid": statement_id(s),
                "Effect": "Allow",
                "Principal": {"Service": s},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            })
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// Reads a queue policy back into the `allow_services` list. A statement not of the
/// shape securecart writes shows up as an entry of its own, so plan reports it and
/// apply replaces the policy with what the blueprint says.
fn services_of_policy(policy: Option<&str>, arn: &str) -> Vec<String> {
    let Some(policy) = policy.map(str::trim).filter(|p| !p.is_empty()) else {
        return Vec::new();
    };
    let Ok(doc) = serde_json::from_str::<Json>(policy) else {
        return vec![format!(
            "(unreadable policy {})",
            common::short_hash(policy)
        )];
    };
    let statements = match doc.get("Statement") {
        Some(Json::Array(a)) => a.clone(),
        Some(s @ Json::Object(_)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let account = arn.split(':').nth(4).unwrap_or_default();
    let mut out = BTreeSet::new();
    for st in &statements {
        match services_of_statement(st, arn, account) {
            Some(services) => out.extend(services),
            None => {
                let label = st
                    .get("Sid")
                    .and_then(Json::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| common::short_hash(&st.to_string()));
                out.insert(format!("(other policy statement {label})"));
            }
        }
    }
    out.into_iter().collect()
}

fn services_of_statement(st: &Json, arn: &str, account: &str) -> Option<Vec<String>> {
    let m = st.as_object()?;
    if m.keys().any(|k| {
        ![
            "Sid",
            "Effect",
            "Principal",
            "Action",
            "Resource",
            "Condition",
        ]
        .contains(&k.as_str())
    }) {
        return None;
    }
    // Policies come back as stored or lightly reformatted: a single value may be a list.
    let one = |v: Option<&Json>| -> Option<String> {
        match v? {
            Json::String(s) => Some(s.clone()),
            Json::Array(a) if a.len() == 1 => a[0].as_str().map(str::to_string),
            _ => None,
        }
    };
    if m.get("Effect")?.as_str()? != "Allow" {
        return None;
    }
    if !one(m.get("Action"))?.eq_ignore_ascii_case("sqs:SendMessage")
        || one(m.get("Resource"))? != arn
    {
        return None;
    }
    let cond = m.get("Condition")?.as_object()?;
    let eq = cond.get("StringEquals")?.as_object()?;
    if cond.len() != 1 || eq.len() != 1 || one(eq.get("aws:SourceAccount"))? != account {
        return None;
    }
    let principal = m.get("Principal")?.as_object()?;
    if principal.len() != 1 {
        return None;
    }
    match principal.get("Service")? {
        Json::String(s) => Some(vec![s.clone()]),
        Json::Array(a) => a.iter().map(|v| v.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

/// A dead-letter queue must be an ARN, and of the same type as the queue it serves.
fn check_dead_letter(queue: &str, fifo: bool, cx: &CheckCx) -> Vec<Issue> {
    const AT: &str = "dead_letter.queue";
    let Ok(pieces) = refs::scan(queue) else {
        // Malformed references are reported by the reference checks.
        return Vec::new();
    };
    match pieces.as_slice() {
        [Piece::Ref(r)] => {
            let Some(target) = cx.resources.get(&r.target) else {
                return Vec::new();
            };
            if target.kind != SqsQueue::KIND {
                return vec![Issue::new(
                    AT,
                    format!("`{r}` is a {}, not an sqs_queue", target.kind),
                )];
            }
            if !matches!(r.attribute.as_deref(), None | Some("arn")) {
                return vec![Issue::new(
                    AT,
                    format!("a redrive policy needs the queue's ARN, not `{r}`"),
                )
                .help(format!("use `${{{}.arn}}`", r.target))];
            }
            let dlq_fifo = target
                .config
                .get("fifo")
                .and_then(Json::as_bool)
                .unwrap_or(false);
            if dlq_fifo != fifo {
                let (this, that) = if fifo {
                    ("a FIFO", "a standard")
                } else {
                    ("a standard", "a FIFO")
                };
                return vec![Issue::new(
                    AT,
                    format!(
                        "{this} queue cannot use {that} queue (`{}`) as its dead-letter queue",
                        r.target
                    ),
                )];
            }
            Vec::new()
        }
        [Piece::Lit(s)] if !s.starts_with("arn:") => vec![Issue::new(
            AT,
            format!("`{s}` is not a queue ARN"),
        )
        .help(
            "use a reference like `${orders_dlq.arn}` or an ARN (arn:PARTITION:sqs:REGION:ACCOUNT:NAME)",
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::typed::Typed;
    use crate::resources::{testing, Kind};

    const ARN: &str = "arn:aws:sqs:eu-west-1:123456789012:shop-orders";
    const K: Typed<SqsQueue> = Typed(SqsQueue);

    fn desired(config: Json) -> Json {
        K.desired("shop", "orders", &config).unwrap()
    }

    /// Problems of a blueprint with these resources, as `Severity path: message`.
    fn problems(resources: &str) -> Vec<String> {
        testing::problems(&format!("name: shop\nresources:\n{resources}"))
    }

    #[test]
    fn defaults_are_filled_in() {
        assert_eq!(
            desired(json!({})),
            json!({
                "name": "shop-orders",
                "fifo": false,
                "content_based_deduplication": false,
                "visibility_timeout": 30,
                "message_retention": 345600,
                "delay": 0,
                "max_message_size": 262144,
                "receive_wait_time": 0,
                "dead_letter": null,
                "encryption": "sqs",
                "allow_services": [],
            })
        );
    }

    #[test]
    fn fifo_names_and_deduplication() {
        let d = desired(json!({"fifo": true, "content_based_deduplication": true}));
        assert_eq!(d["name"], "shop-orders.fifo");
        assert_eq!(d["content_based_deduplication"], true);
        let long = K
            .desired("shop", &"q".repeat(90), &json!({"fifo": true}))
            .unwrap();
        let name = long["name"].as_str().unwrap();
        assert!(name.len() <= 80 && name.ends_with(".fifo"), "{name}");
    }

    #[test]
    fn encryption_forms() {
        assert_eq!(desired(json!({"encryption": "none"}))["encryption"], "none");
        let d = desired(json!({"encryption": {"kms_key": "alias/orders"}}));
        assert_eq!(
            d["encryption"],
            json!({"kms_key": "alias/orders", "data_key_reuse_period": 300})
        );
        let e = K
            .desired("shop", "orders", &json!({"encryption": "off"}))
            .unwrap_err();
        assert!(e.contains("expected `sqs`, `none`"), "{e}");
        assert_eq!(K.warnings(&desired(json!({"encryption": "none"}))).len(), 1);
        assert!(K.warnings(&desired(json!({}))).is_empty());
    }

    #[test]
    fn services_are_sorted_and_deduplicated() {
        let d = desired(
            json!({"allow_services": ["sns.amazonaws.com", "events.amazonaws.com", "sns.amazonaws.com"]}),
        );
        assert_eq!(
            d["allow_services"],
            json!(["events.amazonaws.com", "sns.amazonaws.com"])
        );
    }

    #[test]
    fn policy_round_trips() {
        let services = vec![
            "events.amazonaws.com".to_string(),
            "sns.amazonaws.com".to_string(),
        ];
        let doc = policy_document(ARN, &services);
        assert_eq!(services_of_policy(Some(&doc), ARN), services);
        let v: Json = serde_json::from_str(&doc).unwrap();
        assert_eq!(
            v["Statement"][0]["Sid"],
            "SecurecartAllowEventsAmazonawsCom"
        );
        assert_eq!(
            v["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"],
            "123456789012"
        );
        assert_eq!(services_of_policy(Some(""), ARN), Vec::<String>::new());
        assert_eq!(services_of_policy(None, ARN), Vec::<String>::new());
    }

    #[test]
    fn policy_read_back_tolerates_reformatting_and_flags_foreign_statements() {
        let reformatted = json!({"Version": "2012-10-17", "Statement": {
            "Effect": "Allow", "Principal": {"Service": ["events.amazonaws.com"]},
            "Action": ["SQS:SendMessage"], "Resource": [ARN],
            "Condition": {"StringEquals": {"aws:SourceAccount": ["123456789012"]}}}});
        assert_eq!(
            services_of_policy(Some(&reformatted.to_string()), ARN),
            vec!["events.amazonaws.com"]
        );
        // Any account, or any action: not ours, so plan must show it.
        let open = json!({"Statement": [{"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "sqs:*", "Resource": ARN}]});
        assert_eq!(
            services_of_policy(Some(&open.to_string()), ARN),
            vec!["(other policy statement Open)"]
        );
        let other_account = policy_document(
            "arn:aws:sqs:eu-west-1:999999999999:shop-orders",
            &["events.amazonaws.com".into()],
        );
        assert_eq!(services_of_policy(Some(&other_account), ARN).len(), 1);
        assert_ne!(
            services_of_policy(Some(&other_account), ARN),
            vec!["events.amazonaws.com"]
        );
        assert!(services_of_policy(Some("{not json"), ARN)[0].starts_with("(unreadable policy"));
    }

    /// What GetQueueAttributes(All) answers for a queue created from `d`.
    fn aws_answer(extra: &[(Q, &str)]) -> HashMap<Q, String> {
        let mut m: HashMap<Q, String> = [
            (Q::QueueArn, ARN),
            (Q::VisibilityTimeout, "30"),
            (Q::MessageRetentionPeriod, "345600"),
            (Q::DelaySeconds, "0"),
            (Q::MaximumMessageSize, "262144"),
            (Q::ReceiveMessageWaitTimeSeconds, "0"),
            (Q::ApproximateNumberOfMessages, "3"),
            (Q::CreatedTimestamp, "1700000000"),
            (Q::SqsManagedSseEnabled, "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        for (k, v) in extra {
            m.insert(k.clone(), v.to_string());
        }
        m
    }

    #[test]
    fn read_normalisation_matches_desired() {
        let url = "http://sqs.eu-west-1.localhost.localstack.cloud:4566/123456789012/shop-orders";
        assert_eq!(
            json!(attrs_of(&aws_answer(&[]), url).unwrap()),
            desired(json!({}))
        );

        let dlq = "arn:aws:sqs:eu-west-1:123456789012:shop-dlq";
        let config = json!({
            "visibility_timeout": 60,
            "dead_letter": {"queue": dlq},
            "allow_services": ["events.amazonaws.com"],
        });
        let a = desired(config);
        let policy = policy_document(ARN, &["events.amazonaws.com".into()]);
        // Some emulators give maxReceiveCount as a string.
        let redrive = format!(r#"{{"deadLetterTargetArn":"{dlq}","maxReceiveCount":"5"}}"#);
        let m = aws_answer(&[
            (Q::VisibilityTimeout, "60"),
            (Q::RedrivePolicy, &redrive),
            (Q::Policy, &policy),
        ]);
        assert_eq!(json!(attrs_of(&m, url).unwrap()), a);

        let kms = desired(
            json!({"encryption": {"kms_key": "alias/orders", "data_key_reuse_period": 600}}),
        );
        let m = aws_answer(&[
            (Q::SqsManagedSseEnabled, "false"),
            (Q::KmsMasterKeyId, "alias/orders"),
            (Q::KmsDataKeyReusePeriodSeconds, "600"),
        ]);
        assert_eq!(json!(attrs_of(&m, url).unwrap()), kms);

        let off = desired(json!({"encryption": "none"}));
        assert_eq!(
            json!(attrs_of(&aws_answer(&[(Q::SqsManagedSseEnabled, "false")]), url).unwrap()),
            off
        );

        let bad = aws_answer(&[(Q::DelaySeconds, "soon")]);
        assert!(attrs_of(&bad, url)
            .unwrap_err()
            .to_string()
            .contains("DelaySeconds"));
    }

    #[test]
    fn encryption_changes_switch_the_old_mode_off() {
        let kms = Encryption::Kms(KmsKey {
            kms_key: "k".into(),
            data_key_reuse_period: 300,
        });
        let keys = |v: Vec<(Q, String)>| {
            v.into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(encryption_change(&kms, &Encryption::Sqs)),
            ["KmsMasterKeyId=", "SqsManagedSseEnabled=true"]
        );
        assert_eq!(
            keys(encryption_change(&Encryption::Sqs, &kms)),
            [
                "SqsManagedSseEnabled=false",
                "KmsMasterKeyId=k",
                "KmsDataKeyReusePeriodSeconds=300"
            ]
        );
        assert_eq!(
            keys(encryption_change(&Encryption::Sqs, &Encryption::Off)),
            ["SqsManagedSseEnabled=false"]
        );
        let off = Attrs {
            encryption: Encryption::Off,
            ..from_json(desired(json!({})))
        };
        assert!(keys(create_attributes(&off)).contains(&"SqsManagedSseEnabled=false".to_string()));
        let std_q: Attrs = from_json(desired(json!({})));
        assert!(!keys(create_attributes(&std_q))
            .iter()
            .any(|k| k.starts_with("ContentBasedDeduplication")));
    }

    fn from_json(v: Json) -> Attrs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn unreadable_redrive_stays_visible() {
        let d = dead_letter_of(Some("garbage")).unwrap();
        assert!(d.queue.contains("garbage"));
        assert_eq!(dead_letter_of(Some("")), None);
    }

    #[test]
    fn checks_fields() {
        let p = problems(
            "  dlq: {type: sqs_queue, fifo: true}\n  vpc: {type: vpc, cidr_block: 10.0.0.0/16}\n  q:\n    type: sqs_queue\n    content_based_deduplication: true\n    delay: 901\n    dead_letter: {queue: '${dlq.arn}', max_receives: 0}\n    allow_services: [events, sns.amazonaws.com]\n  r:\n    type: sqs_queue\n    dead_letter: {queue: '${vpc.id}'}\n  s:\n    type: sqs_queue\n    dead_letter: {queue: orders-dlq}\n",
        );
        let at = |path: &str| {
            p.iter()
                .filter_map(|l| l.split_once(' ')?.1.strip_prefix(path)?.strip_prefix(": "))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        for (path, needle) in [
            ("resources.q.content_based_deduplication", "only FIFO"),
            ("resources.q.delay", "0 to 900"),
            ("resources.q.dead_letter.max_receives", "1 to 1000"),
            (
                "resources.q.dead_letter.queue",
                "a standard queue cannot use a FIFO queue",
            ),
            (
                "resources.q.allow_services[0]",
                "not an AWS service principal",
            ),
            ("resources.r.dead_letter.queue", "not an sqs_queue"),
            ("resources.s.dead_letter.queue", "not a queue ARN"),
        ] {
            assert!(at(path).contains(needle), "{path}: {p:?}");
        }
        assert!(at("resources.q.allow_services[1]").is_empty(), "{p:?}");
    }

    #[test]
    fn unencrypted_queue_is_a_baseline_warning() {
        let p = problems("  q: {type: sqs_queue, encryption: none}\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("Warning "), "{p:?}");
        assert!(p[0].contains("CKV_AWS_27 / SQS.1"));
        assert!(problems("  q: {type: sqs_queue, encryption: {kms_key: alias/x}}\n").is_empty());
        let p = problems("  q: {type: sqs_queue, encryption: {kms_key: alias/x, rotate: true}}\n");
        assert!(
            p.iter()
                .any(|l| l.starts_with("Error ") && l.contains("rotate")),
            "{p:?}"
        );
    }

    #[test]
    fn valid_blueprint_has_no_problems() {
        let p = problems(
            "  dlq: {type: sqs_queue}\n  q:\n    type: sqs_queue\n    visibility_timeout: 120\n    dead_letter: {queue: '${dlq.arn}'}\n    allow_services: [events.amazonaws.com]\n",
        );
        assert!(p.is_empty(), "{p:?}");
    }
}
