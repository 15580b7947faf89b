//! Helpers every kind shares: physical names, tags, typed field parsing,
//! waiting with backoff and bounded retries of eventual-consistency errors.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::{OpCx, TAG_RESOURCE, TAG_STACK};
use crate::blueprint::refs::UNKNOWN;
use crate::blueprint::Issue;

pub use crate::aws::Error;

/// A deterministic physical name `stack-id`, within `max` characters (including
/// `suffix`), using only characters `ok` accepts; too long → shortened with a hash.
pub fn physical_name(
    stack: &str,
    id: &str,
    max: usize,
    ok: impl Fn(char) -> bool,
    suffix: &str,
) -> String {
    let raw = format!("{stack}-{id}");
    let clean: String = raw.chars().map(|c| if ok(c) { c } else { '-' }).collect();
    let room = max.saturating_sub(suffix.len());
    if clean.len() <= room {
        return format!("{clean}{suffix}");
    }
    let hash = short_hash(&raw);
    let keep = room.saturating_sub(hash.len() + 1);
    format!("{}-{hash}{suffix}", &clean[..keep])
}

/// First 8 hex digits of SHA-256: stable across runs and machines.
pub fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..4])
}

/// A stable idempotency token for one create of one resource with given attributes,
/// so a retried or re-run create never makes a second copy.
pub fn client_token(stack: &str, id: &str, desired: &Json) -> String {
    let h = Sha256::digest(format!("{stack}\0{id}\0{desired}").as_bytes());
    format!("sc-{}", &hex::encode(h)[..48])
}

/// The tags securecart puts on everything: stack, resource id, and a Name.
pub fn tags(stack: &str, id: &str, name: &str) -> Vec<(String, String)> {
    vec![
        (TAG_STACK.to_string(), stack.to_string()),
        (TAG_RESOURCE.to_string(), id.to_string()),
        ("Name".to_string(), name.to_string()),
    ]
}

/// The refusal when a name the resource needs is taken by something not of this stack:
/// never adopted, never changed.
pub fn name_taken(what: &str, name: &str, cx: &super::OpCx<'_>) -> Error {
    Error::Conflict(format!(
        "{what} named `{name}` already exists and is not tagged as `{}` of stack `{}`; \
         securecart does not adopt or change it: delete or rename it, or use another resource id",
        cx.id, cx.stack
    ))
}

/// Tags as a service returns them (a map, or a list of key/value pairs), so that one
/// [`owned_id`] reads them all.
pub trait TagSet {
    fn tag(&self, key: &str) -> Option<&str>;
}

impl TagSet for std::collections::BTreeMap<String, String> {
    fn tag(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl TagSet for std::collections::HashMap<String, String> {
    fn tag(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// The blueprint id a resource's tags give it when they say it belongs to `stack`; `None`
/// for anything else, however alike its name: ownership is by tag, never by name.
pub fn owned_id(tags: &impl TagSet, stack: &str) -> Option<String> {
    (tags.tag(TAG_STACK) == Some(stack))
        .then(|| tags.tag(TAG_RESOURCE).map(str::to_string))
        .flatten()
}

/// Deserialises a kind's fields, reporting the path of the first bad field.
pub fn parse<T: DeserializeOwned>(config: &Json) -> Result<T, Issue> {
    serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        Issue::new(path, e.inner().to_string())
    })
}

/// Like [`parse`] for desired attributes built by the kind itself: a failure is a bug
/// in the kind or an unresolved value, reported as [`Error::Invalid`].
pub fn from_desired<T: DeserializeOwned>(desired: &Json) -> Result<T, Error> {
    serde_json::from_value(desired.clone())
        .map_err(|e| Error::Invalid(format!("cannot build the request: {e}")))
}

/// A blueprint number as the 32-bit integer an AWS API takes. The kind's checks refuse
/// out-of-range values with the allowed range first; this keeps a value that slipped
/// past them from wrapping around into a different one (`4294967300` into `4`).
pub fn int32(field: &str, v: i64) -> Result<i32, String> {
    i32::try_from(v).map_err(|_| format!("{field} {v} is out of range for AWS (a 32-bit integer)"))
}

/// Like [`int32`] for attributes kept as unsigned 32-bit numbers.
pub fn uint32(field: &str, v: i64) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{field} {v} is out of range for AWS (a 32-bit integer)"))
}

/// True when a resolved value is only known after apply.
pub fn unknown(s: &str) -> bool {
    s == UNKNOWN
}

/// Polls `check` with backoff (1 s → 10 s) until it yields a value, or times out.
pub async fn wait_for<T, F, Fut>(
    cx: &OpCx<'_>,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.to_string(),
                secs: timeout.as_secs(),
            });
        }
        cx.note(format!("waiting for {what}"));
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Runs `op` again while it fails with one of `codes` (a known eventual-consistency or
/// dependency error), for at most `budget`, saying so in the progress line.
pub async fn retry_on<T, F, Fut>(
    cx: &OpCx<'_>,
    codes: &[&str],
    budget: Duration,
    why: &str,
    op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    retry_while(cx, |e| e.is_code(codes), budget, why, op).await
}

/// Runs `op` again while `transient` says its error will pass (IAM propagation shows as
/// a particular message, not a code of its own), for at most `budget`, saying so in the
/// progress line.
pub async fn retry_while<T, F, Fut>(
    cx: &OpCx<'_>,
    transient: impl Fn(&Error) -> bool,
    budget: Duration,
    why: &str,
    mut op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        match op().await {
            Err(e) if transient(&e) && start.elapsed() < budget => {
                cx.note(format!("{why}; retrying ({e})"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            other => return other,
        }
    }
}

/// Runs `read` on every item with at most 8 in flight — for the calls that have no
/// batched form (tags of one resource, its policies) — keeping what it found.
pub async fn read_each<I, T, F, Fut>(items: I, read: F) -> Result<Vec<T>, Error>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    use futures::{StreamExt, TryStreamExt};
    let found: Vec<Option<T>> = futures::stream::iter(items)
        .map(read)
        .buffer_unordered(8)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Parses a CIDR block, insisting on the network address (10.0.0.0/16, not 10.0.0.5/16).
pub fn parse_cidr(s: &str) -> Result<ipnet::Ipv4Net, String> {
    let net: ipnet::Ipv4Net = s
        .parse()
        .map_err(|_| format!("`{s}` is not a valid IPv4 CIDR block (like 10.0.0.0/16)"))?;
    if net.network() != net.addr() {
        return Err(format!(
            "`{s}` has host bits set; the network address is {}",
            net.trunc()
        ));
    }
    Ok(net)
}

/// The schema of a fields struct as JSON.
pub fn schema_of<T: schemars::JsonSchema>() -> Json {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Json::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_and_bounded() {
        let sqs = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        assert_eq!(physical_name("dev", "orders", 80, sqs, ""), "dev-orders");
        assert_eq!(
            physical_name("dev", "orders", 80, sqs, ".fifo"),
            "dev-orders.fifo"
        );
        let long = "a".repeat(100);
        let n = physical_name("dev", &long, 64, sqs, "");
        assert_eq!(n.len(), 64);
        assert_eq!(n, physical_name("dev", &long, 64, sqs, ""));
        assert_ne!(n, physical_name("dev", &format!("{long}b"), 64, sqs, ""));
        assert_eq!(physical_name("my.stack", "q", 80, sqs, ""), "my-stack-q");
    }

    #[test]
    fn cidrs_must_be_network_addresses() {
        assert!(parse_cidr("10.0.0.0/16").is_ok());
        assert!(parse_cidr("10.0.0.5/16")
            .unwrap_err()
            .contains("10.0.0.0/16"));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("banana").is_err());
    }

    #[test]
    fn client_tokens_fit_ec2_limits() {
        let t = client_token("s", "id", &serde_json::json!({"a": 1}));
        assert!(t.len() <= 64);
        assert_eq!(t, client_token("s", "id", &serde_json::json!({"a": 1})));
    }
}

/// EC2 helpers: every EC2 kind finds its resources with one tag-filtered Describe call.
pub mod ec2 {
    use std::collections::BTreeMap;

    use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

    use super::super::{TAG_RESOURCE, TAG_STACK};

    /// The filter that selects exactly this stack's resources.
    pub fn stack_filter(stack: &str) -> Filter {
        Filter::builder()
            .name(format!("tag:{TAG_STACK}"))
            .values(stack)
            .build()
    }

    pub fn tag_spec(rtype: ResourceType, tags: &[(String, String)]) -> TagSpecification {
        let mut b = TagSpecification::builder().resource_type(rtype);
        for (k, v) in tags {
            b = b.tags(Tag::builder().key(k).value(v).build());
        }
        b.build()
    }

    pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
        tags.iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect()
    }

    /// The blueprint id of a resource tagged for `stack`, if it is one of ours.
    pub fn owned_id(tags: &[Tag], stack: &str) -> Option<String> {
        let m = tag_map(tags);
        (m.get(TAG_STACK).map(String::as_str) == Some(stack))
            .then(|| m.get(TAG_RESOURCE).cloned())
            .flatten()
    }

    pub fn name_tag(tags: &[Tag]) -> Option<String> {
        tag_map(tags).get("Name").cloned()
    }

    pub fn not_found(code: Option<&str>) -> bool {
        code.is_some_and(|c| c.ends_with(".NotFound") || c.ends_with("NotFound"))
    }

    /// Deletes with `op`, retrying while AWS says something still depends on the
    /// resource (`why` says what, in the progress line); already gone counts as done.
    pub async fn delete_retrying<F, Fut>(
        cx: &super::super::OpCx<'_>,
        budget: std::time::Duration,
        why: &str,
        op: F,
    ) -> Result<(), super::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), super::Error>>,
    {
        match super::retry_on(cx, &["DependencyViolation"], budget, why, op).await {
            Err(e) if not_found(e.code()) => Ok(()),
            other => other,
        }
    }
}

/// True when `e` is an AWS error with one of `codes` whose message contains `needle`.
/// Eventual-consistency answers share their code with permanent refusals (Lambda's
/// InvalidParameterValueException, Auto Scaling's ValidationError): only the message
/// tells them apart.
pub fn is_aws_message(e: &Error, codes: &[&str], needle: &str) -> bool {
    matches!(e, Error::Aws { code: Some(c), message, .. }
        if codes.contains(&c.as_str()) && message.contains(needle))
}

/// Adds what to do about an AWS error to its message.
pub fn with_hint(e: Error, hint: &str) -> Error {
    match e {
        Error::Aws {
            operation,
            code,
            message,
        } => Error::Aws {
            operation,
            code,
            message: format!("{message} ({hint})"),
        },
        other => other,
    }
}

/// The second name of a resource whose name AWS keeps unique, for a copy made while the
/// old one still exists (create before delete): `base-2`, shortened to fit `max`. A
/// later replacement of that copy goes back to `base`, so two names are ever needed.
/// Only ASCII letters, digits and `-` are added: every such name accepts them.
pub fn alternate_name(base: &str, max: usize) -> String {
    let room = max.saturating_sub(2);
    let mut cut: String = base.chars().take(room).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    let alt = format!("{cut}-2");
    if alt == base {
        format!("{cut}-3")
    } else {
        alt
    }
}

#[cfg(test)]
mod alternate_name_tests {
    use super::alternate_name;

    #[test]
    fn alternate_names_differ_and_fit() {
        assert_eq!(alternate_name("dev-web", 32), "dev-web-2");
        let long = "a".repeat(32);
        let alt = alternate_name(&long, 32);
        assert_eq!(alt.len(), 32);
        assert_ne!(alt, long);
        // No double hyphen where the cut lands, and never the base itself.
        assert_eq!(
            alternate_name(&format!("{}-bc", "a".repeat(29)), 32),
            format!("{}-2", "a".repeat(29))
        );
        let ends_2 = format!("{}-2", "a".repeat(30));
        assert_ne!(alternate_name(&ends_2, 32), ends_2);
    }
}

/// Whether a variable name says it holds a secret (`DB_PASSWORD`, `API_KEY`, `STRIPE_TOKEN`)
/// rather than where one is kept (`DB_SECRET_ARN`, `API_KEY_PARAMETER`): the names secret
/// scanners look for (checkov CKV_AWS_45 / CKV_AWS_46).
pub fn names_a_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    const SECRET: &[&str] = &[
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
        "CREDENTIAL",
    ];
    const WHERE: &[&str] = &[
        "_ARN",
        "_NAME",
        "_PARAM",
        "_PARAMETER",
        "_PATH",
        "_ID",
        "_URL",
        "_FILE",
    ];
    SECRET.iter().any(|s| n.contains(s)) && !WHERE.iter().any(|w| n.ends_with(w))
}

/// Whether `value`, given to a secret-named variable, is the secret itself written out
/// (not a reference, an ARN, a parameter path or a shell expansion).
pub fn is_literal_secret(value: &str) -> bool {
    let v = value.trim().trim_matches(|c| c == '"' || c == '\'');
    !v.is_empty()
        && !v.contains("${")
        && !v.starts_with('$')
        && !v.starts_with("arn:")
        && !v.starts_with('/')
        && v != crate::blueprint::refs::UNKNOWN
}

/// An AWS access key id (`AKIA…`/`ASIA…`) anywhere in `text`: never a value to write down.
pub fn holds_access_key(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(20).any(|w| {
        (w.starts_with(b"AKIA") || w.starts_with(b"ASIA"))
            && w[4..]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

/// Secret-named variables a script assigns a literal value (`DB_PASSWORD=hunter2`,
/// `export API_KEY="…"`), by name: what secret scanners flag in user data (CKV_AWS_46).
pub fn hard_coded_secrets(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in script.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let valid_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid_name && names_a_secret(name) && is_literal_secret(value) {
            out.push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod secret_scan_tests {
    use super::*;

    #[test]
    fn secret_names_values_and_scripts() {
        assert!(names_a_secret("DB_PASSWORD") && names_a_secret("stripe_api_key"));
        assert!(!names_a_secret("DB_SECRET_ARN") && !names_a_secret("API_KEY_PARAMETER"));
        assert!(!names_a_secret("QUEUE_URL"));
        assert!(is_literal_secret("hunter2") && is_literal_secret("\"hunter2\""));
        assert!(
            !is_literal_secret("$DB_PASSWORD") && !is_literal_secret("arn:aws:secretsmanager:x")
        );
        assert!(!is_literal_secret("/prod/db/password") && !is_literal_secret("${params.pw}"));
        assert!(holds_access_key("key AKIAIOSFODNN7EXAMPLE here"));
        assert!(!holds_access_key("AKIA-not-a-key"));
        let s = "#!/bin/bash\nexport DB_PASSWORD='hunter2'\nAPI_TOKEN=$(aws ssm get-parameter)\nDB_HOST=db\nSECRET_ARN=arn:aws:x\n";
        assert_eq!(hard_coded_secrets(s), vec!["DB_PASSWORD".to_string()]);
    }
}
