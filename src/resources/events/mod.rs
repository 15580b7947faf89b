//! Amazon EventBridge: what the `event_bus` and `event_rule` kinds share — bus names,
//! tags, finding the stack's buses, error matching.

pub mod event_bus;
pub mod event_rule;

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::{EventBus as AwsBus, Tag};

use crate::aws::Aws;
use crate::resources::common::{self, aws_error, Error};

pub fn bus_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
}

pub fn not_found(e: &Error) -> bool {
    e.is_code(&["ResourceNotFoundException"])
}

/// securecart's tags in EventBridge's form.
pub fn tag_list(stack: &str, id: &str, name: &str) -> Result<Vec<Tag>, Error> {
    common::tags(stack, id, name)
        .into_iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| Error::Invalid(e.to_string()))
        })
        .collect()
}

/// The tags of an EventBridge resource, or `None` when it is gone meanwhile.
pub async fn tags_of(aws: &Aws, arn: &str) -> Result<Option<BTreeMap<String, String>>, Error> {
    match aws
        .events
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(aws_error("ListTagsForResource"))
    {
        Ok(o) => Ok(Some(
            o.tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
        )),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every custom bus whose name starts like this stack's names (ours or not: the caller
/// decides by tags).
pub async fn stack_buses(aws: &Aws, stack: &str) -> Result<Vec<AwsBus>, Error> {
    // Buses and the rules on them both start here: one read serves both kinds.
    let key = format!("events:stack-buses:{stack}");
    let found = aws.read_once(key, || read_stack_buses(aws, stack)).await?;
    Ok(found.as_ref().clone())
}

async fn read_stack_buses(aws: &Aws, stack: &str) -> Result<Vec<AwsBus>, Error> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = aws
            .events
            .list_event_buses()
            .name_prefix(format!("{stack}-"))
            .limit(100)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(aws_error("ListEventBuses"))?;
        out.extend(
            page.event_buses()
                .iter()
                .filter(|b| b.name() != Some("default"))
                .cloned(),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() && Some(t) != token.as_deref() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}
