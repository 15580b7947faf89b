//! Amazon EventBridge: what the `event_bus` and `event_rule` kinds share — bus names,
//! tags and ownership, finding the stack's buses, paging, error matching.

pub mod event_bus;
pub mod event_rule;

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_eventbridge::types::{EventBus as AwsBus, Tag};

use crate::aws::Aws;
use crate::resources::common::{self, Error};

pub fn bus_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
}

pub fn not_found(e: &Error) -> bool {
    e.is_code(&["ResourceNotFoundException"])
}

/// Already gone counts as deleted.
pub fn gone_is_ok<T>(r: Result<T, Error>) -> Result<(), Error> {
    match r {
        Err(e) if not_found(&e) => Ok(()),
        other => other.map(|_| ()),
    }
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

/// The blueprint id the resource's tags give it in `stack`; `None` when it is not the
/// stack's, or gone meanwhile. EventBridge has no batched tag read: one call a resource.
pub async fn owner(aws: &Aws, stack: &str, arn: &str) -> Result<Option<String>, Error> {
    let out = aws
        .events
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await;
    match out.map_err(Error::from) {
        Ok(o) => {
            let tags: BTreeMap<String, String> = o
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            Ok(common::owned_id(&tags, stack))
        }
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every item of a list call that takes and returns a `NextToken` (the EventBridge SDK has
/// no paginators): `page` is one call with the token, answering the items and the next
/// token. A token that is empty or repeats ends the list.
pub async fn pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, Error>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), Error>>,
{
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let (items, next) = page(token.clone()).await?;
        out.extend(items);
        match next {
            Some(t) if !t.is_empty() && Some(&t) != token.as_ref() => token = Some(t),
            _ => return Ok(out),
        }
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
    pages(|token| async move {
        let page = aws
            .events
            .list_event_buses()
            .name_prefix(format!("{stack}-"))
            .limit(100)
            .set_next_token(token)
            .send()
            .await?;
        let buses = page
            .event_buses()
            .iter()
            .filter(|b| b.name() != Some("default"))
            .cloned()
            .collect();
        Ok((buses, page.next_token().map(str::to_string)))
    })
    .await
}
