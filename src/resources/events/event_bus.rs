//! `event_bus`: a custom Amazon EventBridge event bus, which rules name in their `bus`.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::EventBus as AwsBus;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super as events;
use crate::aws::Aws;
use crate::resources::common::{self, Error};
use crate::resources::typed::{
    Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct EventBus;

/// A custom event bus. It has no settings: rules name it in their `bus` field.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
}

fn bus_name(stack: &str, id: &str) -> String {
    common::physical_name(stack, id, 256, events::bus_char, "")
}

#[async_trait]
impl Resource for EventBus {
    const KIND: &'static str = "event_bus";
    const ATTRIBUTES: &'static [&'static str] = &["arn", "name"];
    const REPLACE_ON: &'static [&'static str] = &["name"];
    // A re-run after an interrupted apply finds its own bus; anyone else's stays untouched.
    const ADOPT: Adopt = Adopt::OnCodes(&["ResourceAlreadyExistsException"]);

    /// Typical time on AWS: One EventBridge call each.
    const TYPICAL: Typical = Typical::API_CALL;

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    /// Its name and ARN.
    type Raw = AwsBus;

    fn desired(&self, site: &Site, _: Fields) -> Result<(Attrs, ()), String> {
        let name = bus_name(site.stack, site.id);
        Ok((Attrs { name }, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, _: &Fields) -> Vec<(String, String)> {
        vec![("event bus name".into(), bus_name(stack, id))]
    }

    fn label(&self, a: &Attrs) -> String {
        format!("an event bus named `{}`", a.name)
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let buses = events::stack_buses(aws, stack).await?;
        common::read_each(buses, |b| async move {
            let (Some(_), Some(arn)) = (b.name(), b.arn()) else {
                return Ok(None);
            };
            let owner = events::owner(aws, stack, arn).await?;
            Ok::<_, Error>(owner.map(|id| (id, b)))
        })
        .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let d = match aws
            .events
            .describe_event_bus()
            .name(&a.name)
            .send()
            .await
            .map_err(Error::from)
        {
            Err(e) if events::not_found(&e) => return Ok(None),
            other => other?,
        };
        let arn = d.arn().unwrap_or_default();
        Ok(Some(Found {
            owner: events::owner(aws, stack, arn).await?,
            raw: bus(&a.name, arn),
        }))
    }

    fn observe(&self, b: &AwsBus) -> Observed<Attrs> {
        let name = b.name().unwrap_or_default().to_string();
        Observed {
            // The name, which is also how rules refer to their bus: deletes of rules then
            // come before the delete of their bus.
            physical_id: name.clone(),
            outputs: vec![("arn", json!(b.arn())), ("name", json!(name))],
            attrs: Attrs { name },
        }
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, a: &Attrs, _: &()) -> Result<AwsBus, Error> {
        let out = aws
            .events
            .create_event_bus()
            .name(&a.name)
            .set_tags(Some(events::tag_list(cx.stack, cx.id, &a.name)?))
            .send()
            .await?;
        Ok(bus(&a.name, out.event_bus_arn().unwrap_or_default()))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        _: Changed<'_>,
    ) -> Result<Option<AwsBus>, Error> {
        // Only the name can differ, and that replaces the bus; what is left to keep right
        // are securecart's own tags.
        let arn = live.outputs.get("arn").and_then(Json::as_str);
        aws.events
            .tag_resource()
            .resource_arn(arn.unwrap_or_default())
            .set_tags(Some(events::tag_list(cx.stack, cx.id, &a.name)?))
            .send()
            .await?;
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, _cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        events::gone_is_ok(
            aws.events
                .delete_event_bus()
                .name(&live.physical_id)
                .send()
                .await
                .map_err(Error::from),
        )
    }
}

fn bus(name: &str, arn: &str) -> AwsBus {
    AwsBus::builder().name(name).arn(arn).build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::blueprint::{self, LoadError, SourceFile};
    use crate::resources::typed::Typed;
    use crate::resources::{Kind, TAG_RESOURCE, TAG_STACK};

    const K: Typed<EventBus> = Typed(EventBus);

    #[test]
    fn desired_is_the_name() {
        assert_eq!(
            K.desired("shop", "orders", &json!({})).unwrap(),
            json!({"name": "shop-orders"})
        );
        let long = K.desired("shop", &"b".repeat(300), &json!({})).unwrap();
        assert_eq!(long["name"].as_str().unwrap().len(), 256);
    }

    #[test]
    fn read_shape_matches_desired() {
        let arn = "arn:aws:events:eu-west-1:1:event-bus/shop-orders";
        let o = EventBus.observe(&bus("shop-orders", arn));
        assert_eq!(
            json!(o.attrs),
            K.desired("shop", "orders", &json!({})).unwrap()
        );
        assert_eq!(o.physical_id, "shop-orders");
        assert_eq!(
            o.outputs,
            vec![("arn", json!(arn)), ("name", json!("shop-orders"))]
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
