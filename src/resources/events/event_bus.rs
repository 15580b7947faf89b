//! `event_bus`: a custom Amazon EventBridge event bus, plus the EventBridge helpers
//! (tags, pagination of buses) that `event_rule` shares.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::{bus_char, not_found, stack_buses, tag_list, tags_of};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, aws_error, parse, Error};
use crate::resources::{Kind, Live, OpCx};

pub struct EventBus;

const KIND: &str = "event_bus";

/// A custom event bus. It has no settings: rules name it in their `bus` field.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Fields {}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attrs {
    name: String,
}

fn bus_name(stack: &str, id: &str) -> String {
    common::physical_name(stack, id, 256, bus_char, "")
}

#[async_trait]
impl Kind for EventBus {
    fn name(&self) -> &'static str {
        KIND
    }

    fn attributes(&self) -> &'static [&'static str] {
        &["arn", "name"]
    }

    fn schema(&self) -> Json {
        common::schema_of::<Fields>()
    }

    fn check(&self, _id: &str, config: &Json, _cx: &CheckCx) -> Vec<Issue> {
        match parse::<Fields>(config) {
            Ok(_) => Vec::new(),
            Err(i) => vec![i],
        }
    }

    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String> {
        parse::<Fields>(config).map_err(|i| i.message)?;
        Ok(json!(Attrs {
            name: bus_name(stack, id)
        }))
    }

    fn physical_names(&self, stack: &str, id: &str, _config: &Json) -> Vec<(String, String)> {
        vec![("event bus name".into(), bus_name(stack, id))]
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &["name"]
    }

    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        let buses = stack_buses(aws, stack).await?;
        // EventBridge has no batched tag read: one ListTagsForResource per bus.
        let found: Vec<Option<Live>> = futures::stream::iter(buses)
            .map(|b| async move {
                let (Some(name), Some(arn)) = (b.name(), b.arn()) else {
                    return Ok(None);
                };
                let Some(tags) = tags_of(aws, arn).await? else {
                    return Ok(None);
                };
                Ok::<_, Error>(common::owned_id(&tags, stack).map(|id| live(id, name, arn)))
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        let mut out: Vec<Live> = found.into_iter().flatten().collect();
        out.sort_by(|a, b| (&a.id, &a.physical_id).cmp(&(&b.id, &b.physical_id)));
        Ok(out)
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let mut req = aws.events.create_event_bus().name(&a.name);
        for t in tag_list(cx.stack, cx.id, &a.name)? {
            req = req.tags(t);
        }
        match req.send().await.map_err(aws_error("CreateEventBus")) {
            Ok(out) => {
                let arn = out.event_bus_arn().unwrap_or_default();
                Ok(live(cx.id.to_string(), &a.name, arn))
            }
            // A re-run after an interrupted apply finds its own bus; anyone else's stays
            // untouched.
            Err(e) if e.is_code(&["ResourceAlreadyExistsException"]) => {
                let d = aws
                    .events
                    .describe_event_bus()
                    .name(&a.name)
                    .send()
                    .await
                    .map_err(aws_error("DescribeEventBus"))?;
                let arn = d.arn().unwrap_or_default();
                let tags = tags_of(aws, arn).await?.unwrap_or_default();
                if common::owned_id(&tags, cx.stack).as_deref() != Some(cx.id) {
                    return Err(Error::Conflict(format!(
                        "an event bus named `{}` already exists and is not tagged as `{}` of stack `{}`; \
                         securecart does not adopt or change it: delete it or use another resource id",
                        a.name, cx.id, cx.stack
                    )));
                }
                cx.note("the event bus exists from an earlier run");
                Ok(live(cx.id.to_string(), &a.name, arn))
            }
            Err(e) => Err(e),
        }
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live_bus: &Live,
        desired: &Json,
        _changed: &[String],
    ) -> Result<Live, Error> {
        // Only the name can differ, and that replaces the bus; what is left to keep right
        // are securecart's own tags.
        let a: Attrs = common::from_desired(desired)?;
        let arn = live_bus
            .outputs
            .get("arn")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let mut req = aws.events.tag_resource().resource_arn(&arn);
        for t in tag_list(cx.stack, cx.id, &a.name)? {
            req = req.tags(t);
        }
        req.send().await.map_err(aws_error("TagResource"))?;
        Ok(live(cx.id.to_string(), &live_bus.physical_id, &arn))
    }

    async fn delete(&self, aws: &Aws, _cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        match aws
            .events
            .delete_event_bus()
            .name(&live.physical_id)
            .send()
            .await
            .map_err(aws_error("DeleteEventBus"))
        {
            Err(e) if not_found(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

fn live(id: String, name: &str, arn: &str) -> Live {
    let outputs: BTreeMap<String, Json> = [
        ("arn".to_string(), json!(arn)),
        ("name".to_string(), json!(name)),
    ]
    .into_iter()
    .collect();
    Live {
        id,
        kind: KIND,
        // The name, which is also how rules refer to their bus: deletes of rules then
        // come before the delete of their bus.
        physical_id: name.to_string(),
        attrs: json!(Attrs {
            name: name.to_string()
        }),
        outputs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blueprint::{self, LoadError, SourceFile};
    use crate::resources::{TAG_RESOURCE, TAG_STACK};

    #[test]
    fn desired_is_the_name() {
        assert_eq!(
            EventBus.desired("shop", "orders", &json!({})).unwrap(),
            json!({"name": "shop-orders"})
        );
        let long = EventBus
            .desired("shop", &"b".repeat(300), &json!({}))
            .unwrap();
        assert_eq!(long["name"].as_str().unwrap().len(), 256);
    }

    #[test]
    fn read_shape_matches_desired() {
        let l = live(
            "orders".into(),
            "shop-orders",
            "arn:aws:events:eu-west-1:1:event-bus/shop-orders",
        );
        assert_eq!(
            l.attrs,
            EventBus.desired("shop", "orders", &json!({})).unwrap()
        );
        assert_eq!(
            l.outputs["arn"],
            "arn:aws:events:eu-west-1:1:event-bus/shop-orders"
        );
    }

    #[test]
    fn owned_only_with_the_stack_tag() {
        let tags = |s: &str| {
            BTreeMap::from([
                (TAG_STACK.to_string(), s.to_string()),
                (TAG_RESOURCE.to_string(), "b".to_string()),
            ])
        };
        assert_eq!(common::owned_id(&tags("shop"), "shop"), Some("b".into()));
        assert_eq!(common::owned_id(&tags("shop-two"), "shop"), None);
        assert_eq!(common::owned_id(&BTreeMap::new(), "shop"), None);
    }

    #[test]
    fn fields_are_rejected() {
        let text = "name: shop\nresources:\n  b: {type: event_bus, description: x}\n";
        let file = SourceFile::new("t.yaml".into(), "t.yaml".into(), text.into());
        let Err(LoadError::Invalid(d)) =
            blueprint::parse(file, ".".into(), &[], &crate::resources::Catalog)
        else {
            panic!("an unknown field must be an error");
        };
        assert!(
            d.problems.iter().any(|p| p.message.contains("description")),
            "{:?}",
            d.problems
        );
    }
}
