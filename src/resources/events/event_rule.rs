//! `event_rule`: an Amazon EventBridge rule (an event pattern or a schedule) on the
//! default bus or a custom one, with the targets it delivers to.

use crate::resources::access::{Access, When};
use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::{Rule, RuleState, SqsParameters, Tag, Target};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::{self as events, bus_char};
use crate::aws::Aws;
use crate::blueprint::refs::{self, Piece, Ref};
use crate::blueprint::{self, CheckCx, Issue};
use crate::resources::common::{self, Error};
use crate::resources::iam::{self, Grants};
use crate::resources::typed::{
    self, Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct EventRule;
const DEFAULT_BUS: &str = "default";
/// EventBridge's limit of targets per rule.
const MAX_TARGETS: usize = 5;

/// An EventBridge rule: matches events (or fires on a schedule) and sends them to targets.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// The event bus the rule listens on, as a reference like `${orders_bus.name}`.
    /// Leave it out for the account's default bus. Changing it replaces the rule.
    #[serde(default)]
    bus: Option<String>,
    /// The events to match, written as YAML: an EventBridge event pattern such as
    /// `{source: [shop.orders], detail-type: [OrderPlaced]}`. Give this or `schedule`.
    #[serde(default)]
    event_pattern: Option<Json>,
    /// Fire on a schedule instead: `rate(5 minutes)` or `cron(0 12 * * ? *)` (UTC).
    /// Schedules run on the default bus only.
    #[serde(default)]
    schedule: Option<String>,
    /// What the rule is for (up to 512 characters).
    #[serde(default)]
    description: Option<String>,
    /// A disabled rule keeps its targets but sends nothing.
    #[serde(default = "yes")]
    enabled: bool,
    /// Where matched events go (at most 5).
    #[serde(default)]
    targets: Vec<TargetField>,
}

fn yes() -> bool {
    true
}

/// One target of a rule.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TargetField {
    /// Id of the target within the rule; by default `target-1`, `target-2`, … by position.
    #[serde(default)]
    id: Option<String>,
    /// ARN of the target, usually a reference like `${orders_queue.arn}`.
    arn: String,
    /// Fixed JSON to send instead of the matched event, written as YAML.
    #[serde(default)]
    input: Option<Json>,
    /// The IAM role EventBridge assumes to call the target, needed for Step Functions,
    /// Kinesis and ECS targets: `auto` for a least-privilege role of the rule's own
    /// (`states:StartExecution` on the state machines it targets), or a reference like
    /// `${events_role.arn}`. Lambda targets need none: the rule allows itself to invoke them.
    #[serde(default)]
    role: Option<String>,
    /// Message group id for a FIFO queue target (required by FIFO queues).
    #[serde(default)]
    sqs_message_group_id: Option<String>,
}

/// Normalised attributes: what `desired` builds and `read` finds, in one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    bus: String,
    event_pattern: Option<Json>,
    schedule: Option<String>,
    description: Option<String>,
    enabled: bool,
    /// Sorted by id: EventBridge lists targets in no particular order.
    targets: Vec<TargetAttrs>,
    /// The policy of the rule's automatic role, when a target has `role: auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role_policy: Option<Json>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TargetAttrs {
    id: String,
    arn: String,
    input: Option<Json>,
    role: Option<String>,
    sqs_message_group_id: Option<String>,
}

fn rule_name(stack: &str, id: &str) -> String {
    common::physical_name(stack, id, 64, bus_char, "")
}

/// A bus given by name or by ARN, as its name; no bus is the default bus.
fn bus_of(bus: Option<&str>) -> String {
    match bus.map(str::trim).filter(|b| !b.is_empty()) {
        None => DEFAULT_BUS.to_string(),
        Some(b) if b.starts_with("arn:") => b
            .rsplit_once("event-bus/")
            .map(|(_, n)| n)
            .unwrap_or(b)
            .to_string(),
        Some(b) => b.to_string(),
    }
}

/// JSON with the keys of every mapping sorted, so that EventBridge's re-ordering of a
/// pattern never shows as a change (and plan shows patterns in one stable order).
fn sorted(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut entries: Vec<(&String, &Json)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Json::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Json::Array(a) => Json::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// JSON text from AWS, normalised; text that is not JSON is kept as a string so a
/// difference still shows.
fn parse_json_text(s: &str) -> Json {
    serde_json::from_str::<Json>(s)
        .map(|v| sorted(&v))
        .unwrap_or_else(|_| Json::String(s.to_string()))
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn target_id_ok(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(bus_char)
}
/// The stack's rules, named `STACK-ID`, on the default bus or on a bus of the stack.
const RULE_ARNS: [&str; 2] = [
    "arn:{partition}:events:{region}:{account}:rule/{name}*",
    "arn:{partition}:events:{region}:{account}:rule/{name}*/{name}*",
];
/// The stack's functions a rule may target.
const FUNCTIONS: &str = "arn:{partition}:lambda:{region}:{account}:function:{name}*";

#[async_trait]
impl Resource for EventRule {
    const KIND: &'static str = "event_rule";
    const ACCESS: &'static [&'static [Access]] = &[
        iam::STACK_ROLE_ACCESS,
        &[
            Access::read(&["events:ListEventBuses", "events:ListRules"]),
            Access::read_on(
                &[
                    "events:DescribeRule",
                    "events:ListTargetsByRule",
                    "events:ListTagsForResource",
                ],
                &RULE_ARNS,
            ),
            Access::change(
                &[
                    "events:PutRule",
                    "events:TagResource",
                    "events:PutTargets",
                    "events:RemoveTargets",
                ],
                &RULE_ARNS,
            ),
            // A Lambda target: the rule allows itself to invoke the stack's function.
            Access::change(
                &["lambda:AddPermission", "lambda:RemovePermission"],
                &[FUNCTIONS],
            ),
            Access::change(&["iam:PassRole"], &[iam::STACK_ROLES])
                .when(When::PassedTo(&["events.amazonaws.com"])),
            Access::delete(&["events:RemoveTargets", "events:DeleteRule"], &RULE_ARNS),
            Access::delete(&["lambda:RemovePermission"], &[FUNCTIONS]),
        ],
    ];
    const ATTRIBUTES: &'static [&'static str] = &["arn", "name"];
    const REPLACE_ON: &'static [&'static str] = &["bus", "name"];
    // PutRule would silently overwrite a same-named rule: look first, and touch it only if
    // it carries this resource's tags (left behind by an interrupted run).
    const ADOPT: Adopt = Adopt::LookFirst;

    /// Typical time on AWS: PutRule and PutTargets (RemoveTargets before DeleteRule).
    const TYPICAL: Typical = Typical {
        create: 3,
        update: 3,
        delete: 3,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    /// The rule's ARN and its attributes as read (see [`read`]).
    type Raw = (String, Attrs);

    fn check(&self, _id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut out = Vec::new();
        match (&f.event_pattern, &f.schedule) {
            (Some(_), Some(_)) => out.push(
                Issue::new(
                    "schedule",
                    "a rule has either `event_pattern` or `schedule`, not both",
                )
                .help("use two rules to react to events and to run on a schedule"),
            ),
            (None, None) => out.push(
                Issue::new("", "a rule needs `event_pattern` or `schedule`").help(
                    "e.g. `event_pattern: {source: [shop.orders]}` or `schedule: rate(5 minutes)`",
                ),
            ),
            _ => {}
        }
        if let Some(p) = &f.event_pattern {
            match p {
                Json::Object(m) if m.is_empty() => out.push(Issue::new(
                    "event_pattern",
                    "an empty pattern matches nothing",
                )),
                Json::Object(_) => check_pattern(p, "event_pattern", &mut out),
                _ => out.push(
                    Issue::new("event_pattern", "an event pattern must be a mapping").help(
                        "e.g. `event_pattern: {source: [shop.orders], detail-type: [OrderPlaced]}`",
                    ),
                ),
            }
        }
        if let Some(s) = &f.schedule {
            if let Err(e) = check_schedule(s) {
                out.push(Issue::new("schedule", e));
            }
            if let Some(b) = &f.bus {
                if bus_of(Some(b)) != DEFAULT_BUS {
                    out.push(
                        Issue::new("bus", "schedules only run on the default event bus")
                            .help("remove `bus` from this rule"),
                    );
                }
            }
        }
        if let Some(b) = &f.bus {
            out.extend(check_bus(b, cx));
        }
        if f.description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 512)
        {
            out.push(Issue::new(
                "description",
                "a description has at most 512 characters",
            ));
        }
        if f.targets.len() > MAX_TARGETS {
            out.push(
                Issue::new(
                    "targets",
                    format!(
                        "a rule has at most {MAX_TARGETS} targets, not {}",
                        f.targets.len()
                    ),
                )
                .help("split the targets over several rules with the same pattern"),
            );
        }
        let mut seen = BTreeMap::new();
        for (i, t) in f.targets.iter().enumerate() {
            let at = |field: &str| format!("targets[{i}].{field}");
            let id = target_id(t, i);
            if !target_id_ok(&id) {
                out.push(Issue::new(
                    at("id"),
                    format!("target id `{id}` must be 1 to 64 letters, digits, `.`, `_` or `-`"),
                ));
            }
            if let Some(j) = seen.insert(id.clone(), i) {
                out.push(Issue::new(
                    at("id"),
                    format!("target id `{id}` is also used by targets[{j}]"),
                ));
            }
            out.extend(check_target(t, cx).into_iter().map(|(field, issue)| Issue {
                path: at(field),
                ..issue
            }));
        }
        out
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let mut targets: Vec<TargetAttrs> = f
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| TargetAttrs {
                id: target_id(t, i),
                arn: t.arn.clone(),
                input: t.input.as_ref().map(sorted),
                role: non_empty(t.role.as_deref()),
                sqs_message_group_id: non_empty(t.sqs_message_group_id.as_deref()),
            })
            .collect();
        targets.sort_by(|a, b| a.id.cmp(&b.id));
        let role_policy = auto_role_policy(&targets);
        let a = Attrs {
            name: rule_name(site.stack, site.id),
            bus: bus_of(f.bus.as_deref()),
            event_pattern: f.event_pattern.as_ref().map(sorted),
            schedule: non_empty(f.schedule.as_deref()),
            description: non_empty(f.description.as_deref()),
            enabled: f.enabled,
            targets,
            role_policy,
        };
        Ok((a, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, f: &Fields) -> Vec<(String, String)> {
        let what = match &f.bus {
            Some(bus) => format!("rule name on `{bus}`"),
            None => "rule name on the default bus".into(),
        };
        vec![(what, rule_name(stack, id))]
    }

    fn label(&self, a: &Attrs) -> String {
        format!("an EventBridge rule named `{}` on bus `{}`", a.name, a.bus)
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        // Rules live on a bus: the default one, or one of the stack's own.
        let mut buses = vec![DEFAULT_BUS.to_string()];
        buses.extend(
            events::stack_buses(aws, stack)
                .await?
                .iter()
                .filter_map(|b| b.name().map(str::to_string)),
        );
        let prefix = format!("{stack}-");
        let per_bus: Vec<Vec<Rule>> = futures::stream::iter(buses)
            .map(|bus| list_rules(aws, bus, &prefix))
            .buffer_unordered(8)
            .try_collect()
            .await?;
        // Tags and targets have no batched form: one call of each per rule.
        common::read_each(per_bus.into_iter().flatten(), |r| async move {
            // Rules that other AWS services manage on our buses are theirs.
            let (None, Some(_), Some(arn)) = (r.managed_by(), r.name(), r.arn()) else {
                return Ok(None);
            };
            let Some(id) = events::owner(aws, stack, arn).await? else {
                return Ok(None);
            };
            Ok::<_, Error>(read(aws, stack, &r).await?.map(|raw| (id, raw)))
        })
        .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let Some(rule) = describe_rule(aws, &a.name, &a.bus).await? else {
            return Ok(None);
        };
        let owner = events::owner(aws, stack, rule.arn().unwrap_or_default()).await?;
        Ok(read(aws, stack, &rule)
            .await?
            .map(|raw| Found { owner, raw }))
    }

    fn observe(&self, (arn, a): &Self::Raw) -> Observed<Attrs> {
        Observed {
            physical_id: arn.clone(),
            outputs: vec![("arn", json!(arn)), ("name", json!(a.name))],
            attrs: a.clone(),
        }
    }

    async fn create(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        a: &Attrs,
        _: &(),
    ) -> Result<Self::Raw, Error> {
        let arn = put_rule(aws, a, events::tag_list(cx.stack, cx.id, &a.name)?).await?;
        // A crash before the targets are in leaves a tagged rule without them; the next
        // plan finds it and update() adds them.
        let role = ensure_role(aws, cx, a).await?;
        put_targets(aws, a, &with_role_arn(&a.targets, role.as_deref())).await?;
        allow_invoke(aws, cx, a, &arn, &a.targets).await?;
        Ok((arn, a.clone()))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<Self::Raw>, Error> {
        let old = typed::attrs_of::<Self>(live)?;
        let mut arn = live.physical_id.clone();
        if changed.any(&["event_pattern", "schedule", "enabled", "description"]) {
            cx.note("updating the rule");
            // PutRule replaces every setting of the rule (not its tags), so it gets all of them.
            arn = put_rule(aws, a, Vec::new()).await?;
        }
        if changed.any(&["targets", "role_policy"]) {
            let role = ensure_role(aws, cx, a).await?;
            let remove: Vec<String> = old
                .targets
                .iter()
                .filter(|o| !a.targets.iter().any(|t| t.id == o.id))
                .map(|o| o.id.clone())
                .collect();
            let put: Vec<&TargetAttrs> = a
                .targets
                .iter()
                .filter(|t| !old.targets.contains(t))
                .collect();
            let gone_fns: Vec<&TargetAttrs> = old
                .targets
                .iter()
                .filter(|o| !a.targets.iter().any(|t| t.id == o.id && t.arn == o.arn))
                .collect();
            // Removed first: the limit of 5 targets counts old and new together.
            if !remove.is_empty() {
                cx.note(format!("removing targets {}", remove.join(", ")));
                remove_targets(aws, &a.name, &a.bus, &remove).await?;
            }
            if !put.is_empty() {
                cx.note(format!(
                    "putting targets {}",
                    put.iter()
                        .map(|t| t.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                put_targets(aws, a, &with_role_arn(put.clone(), role.as_deref())).await?;
                allow_invoke(aws, cx, a, &arn, put).await?;
            }
            revoke_invoke(aws, &a.name, gone_fns).await?;
            // Targets that ran as the rule's automatic role from before roles were per
            // region and now run as another: that role goes.
            for o in &old.targets {
                if let Some(r) = &o.role {
                    let now = a
                        .targets
                        .iter()
                        .find(|t| t.id == o.id)
                        .and_then(|t| t.role.as_deref());
                    iam::drop_legacy_auto_role(aws, cx, r, now.unwrap_or_default()).await?;
                }
            }
            if old.role_policy.is_some() && a.role_policy.is_none() {
                cx.note("deleting the automatic role, which no target uses any more");
                iam::delete_auto_role(aws, cx.stack, cx.id).await?;
            }
        }
        Ok(Some((arn, a.clone())))
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let a = typed::attrs_of::<Self>(live)?;
        // The automatic role first: a rule left without it is found and deleted by the next
        // run, a role left without its rule would be an orphan.
        if a.role_policy.is_some() {
            iam::delete_auto_role(aws, cx.stack, cx.id).await?;
        }
        revoke_invoke(aws, &a.name, &a.targets).await?;
        // A rule with targets cannot be deleted; the list is fresh, not the one read at plan time.
        let Some(targets) = list_targets(aws, &a.name, &a.bus).await? else {
            return Ok(());
        };
        let ids: Vec<String> = targets.iter().map(|t| t.id().to_string()).collect();
        if !ids.is_empty() {
            match remove_targets(aws, &a.name, &a.bus, &ids).await {
                Err(e) if events::not_found(&e) => return Ok(()),
                other => other?,
            }
        }
        events::gone_is_ok(
            aws.events
                .delete_rule()
                .name(&a.name)
                .event_bus_name(&a.bus)
                .send()
                .await
                .map_err(Error::from),
        )
    }
}

fn target_id(t: &TargetField, index: usize) -> String {
    t.id.clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("target-{}", index + 1))
}

fn attrs_of(r: &Rule, targets: &[Target]) -> Attrs {
    let mut targets: Vec<TargetAttrs> = targets
        .iter()
        .map(|t| TargetAttrs {
            id: t.id().to_string(),
            arn: t.arn().to_string(),
            input: t.input().map(parse_json_text),
            role: non_empty(t.role_arn()),
            sqs_message_group_id: non_empty(t.sqs_parameters().and_then(|p| p.message_group_id())),
        })
        .collect();
    targets.sort_by(|a, b| a.id.cmp(&b.id));
    Attrs {
        name: r.name().unwrap_or_default().to_string(),
        bus: bus_of(r.event_bus_name()),
        event_pattern: non_empty(r.event_pattern()).map(|p| parse_json_text(&p)),
        schedule: non_empty(r.schedule_expression()),
        description: non_empty(r.description()),
        enabled: matches!(
            r.state(),
            Some(RuleState::Enabled | RuleState::EnabledWithAllCloudtrailManagementEvents)
        ),
        targets,
        role_policy: None,
    }
}

/// The rule with its targets, as its ARN and attributes (targets that use the stack's
/// automatic role say `auto`, and the role's policy is in); `None` when it is gone.
async fn read(aws: &Aws, stack: &str, r: &Rule) -> Result<Option<(String, Attrs)>, Error> {
    let name = r.name().unwrap_or_default();
    let Some(targets) = list_targets(aws, name, &bus_of(r.event_bus_name())).await? else {
        return Ok(None);
    };
    let attrs = with_auto_role(aws, stack, attrs_of(r, &targets)).await?;
    Ok(Some((r.arn().unwrap_or_default().to_string(), attrs)))
}

async fn list_rules(aws: &Aws, bus: String, prefix: &str) -> Result<Vec<Rule>, Error> {
    let bus = &bus;
    events::pages(|token| async move {
        let page = match aws
            .events
            .list_rules()
            .event_bus_name(bus)
            .name_prefix(prefix)
            .limit(100)
            .set_next_token(token)
            .send()
            .await
            .map_err(Error::from)
        {
            // The bus went away between listing buses and listing its rules.
            Err(e) if events::not_found(&e) => return Ok((Vec::new(), None)),
            other => other?,
        };
        let rules = page.rules().iter().cloned().map(|mut r| {
            // Some answers leave the bus out; the rule is on the bus we asked about.
            r.event_bus_name.get_or_insert_with(|| bus.clone());
            r
        });
        Ok((rules.collect(), page.next_token().map(str::to_string)))
    })
    .await
}

/// The rule's targets, or `None` when the rule does not exist.
async fn list_targets(aws: &Aws, rule: &str, bus: &str) -> Result<Option<Vec<Target>>, Error> {
    let all = events::pages(|token| async move {
        let page = aws
            .events
            .list_targets_by_rule()
            .rule(rule)
            .event_bus_name(bus)
            .limit(100)
            .set_next_token(token)
            .send()
            .await?;
        Ok((
            page.targets().to_vec(),
            page.next_token().map(str::to_string),
        ))
    })
    .await;
    match all {
        Err(e) if events::not_found(&e) => Ok(None),
        other => other.map(Some),
    }
}

/// The rule called `name` on `bus`, as a [`Rule`], if it exists.
async fn describe_rule(aws: &Aws, name: &str, bus: &str) -> Result<Option<Rule>, Error> {
    let d = match aws
        .events
        .describe_rule()
        .name(name)
        .event_bus_name(bus)
        .send()
        .await
        .map_err(Error::from)
    {
        Err(e) if events::not_found(&e) => return Ok(None),
        other => other?,
    };
    Ok(Some(
        Rule::builder()
            .set_name(d.name().map(str::to_string))
            .set_arn(d.arn().map(str::to_string))
            .set_event_pattern(d.event_pattern().map(str::to_string))
            .set_schedule_expression(d.schedule_expression().map(str::to_string))
            .set_state(d.state().cloned())
            .set_description(d.description().map(str::to_string))
            .set_managed_by(d.managed_by().map(str::to_string))
            .event_bus_name(d.event_bus_name().unwrap_or(bus))
            .build(),
    ))
}

/// Creates or replaces the rule's settings; `tags` only on create (PutRule ignores
/// them for an existing rule anyway).
async fn put_rule(aws: &Aws, a: &Attrs, tags: Vec<Tag>) -> Result<String, Error> {
    let state = if a.enabled {
        RuleState::Enabled
    } else {
        RuleState::Disabled
    };
    let mut req = aws
        .events
        .put_rule()
        .name(&a.name)
        .event_bus_name(&a.bus)
        .state(state);
    if let Some(p) = &a.event_pattern {
        req = req.event_pattern(sorted(p).to_string());
    }
    if let Some(s) = &a.schedule {
        req = req.schedule_expression(s);
    }
    if let Some(d) = &a.description {
        req = req.description(d);
    }
    for t in tags {
        req = req.tags(t);
    }
    let out = req.send().await.map_err(Error::from)?;
    Ok(out.rule_arn().unwrap_or_default().to_string())
}

fn aws_target(t: &TargetAttrs) -> Result<Target, Error> {
    let mut b = Target::builder().id(&t.id).arn(&t.arn);
    if let Some(i) = &t.input {
        b = b.input(sorted(i).to_string());
    }
    if let Some(r) = &t.role {
        b = b.role_arn(r);
    }
    if let Some(g) = &t.sqs_message_group_id {
        b = b.sqs_parameters(SqsParameters::builder().message_group_id(g).build());
    }
    b.build()
        .map_err(|e| Error::Invalid(format!("target `{}`: {e}", t.id)))
}

/// PutTargets and RemoveTargets answer 200 even when targets fail: the failures are in
/// the body, as (target id, code, message).
fn failures(
    operation: &str,
    count: i32,
    entries: &[(Option<&str>, Option<&str>, Option<&str>)],
) -> Result<(), Error> {
    if count == 0 && entries.is_empty() {
        return Ok(());
    }
    let why: Vec<String> = entries
        .iter()
        .map(|(id, code, message)| {
            format!(
                "target `{}`: {}{}",
                id.unwrap_or("?"),
                code.map(|c| format!("{c}: ")).unwrap_or_default(),
                message.unwrap_or("failed")
            )
        })
        .collect();
    Err(Error::Aws {
        operation: operation.into(),
        code: entries.first().and_then(|e| e.1).map(str::to_string),
        message: why.join("; "),
    })
}

async fn put_targets(aws: &Aws, a: &Attrs, targets: &[TargetAttrs]) -> Result<(), Error> {
    for chunk in targets.chunks(10) {
        let out = aws
            .events
            .put_targets()
            .rule(&a.name)
            .event_bus_name(&a.bus)
            .set_targets(Some(
                chunk.iter().map(aws_target).collect::<Result<_, _>>()?,
            ))
            .send()
            .await?;
        let failed = out.failed_entries().iter();
        let failed: Vec<_> = failed
            .map(|f| (f.target_id(), f.error_code(), f.error_message()))
            .collect();
        failures("PutTargets", out.failed_entry_count(), &failed)?;
    }
    Ok(())
}

async fn remove_targets(aws: &Aws, rule: &str, bus: &str, ids: &[String]) -> Result<(), Error> {
    for chunk in ids.chunks(100) {
        let out = aws
            .events
            .remove_targets()
            .rule(rule)
            .event_bus_name(bus)
            .set_ids(Some(chunk.to_vec()))
            .send()
            .await?;
        let failed = out.failed_entries().iter();
        let failed: Vec<_> = failed
            .map(|f| (f.target_id(), f.error_code(), f.error_message()))
            .collect();
        failures("RemoveTargets", out.failed_entry_count(), &failed)?;
    }
    Ok(())
}

/// EventBridge rejects a pattern whose leaves are not lists (`source: x` instead of
/// `source: [x]`) with a terse message: say where and how to write it.
fn check_pattern(v: &Json, path: &str, out: &mut Vec<Issue>) {
    let Json::Object(m) = v else { return };
    for (k, x) in m {
        let p = format!("{path}.{k}");
        match x {
            Json::Object(_) => check_pattern(x, &p, out),
            Json::Array(a) if a.is_empty() => {
                out.push(Issue::new(p, format!("`{k}: []` matches nothing")))
            }
            Json::Array(_) => {}
            other => out.push(
                Issue::new(
                    p,
                    "pattern values are lists of values to match, not a single value",
                )
                .help(format!("write `{k}: [{other}]`")),
            ),
        }
    }
}

/// `rate(N unit)` or `cron(min hour day-of-month month day-of-week year)`.
fn check_schedule(s: &str) -> Result<(), String> {
    let s = s.trim();
    if let Some(body) = s.strip_prefix("rate(").and_then(|b| b.strip_suffix(')')) {
        let parts: Vec<&str> = body.split_whitespace().collect();
        let [n, unit] = parts.as_slice() else {
            return Err(format!(
                "`{s}`: a rate is a number and a unit, like `rate(5 minutes)`"
            ));
        };
        let n: u64 = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{s}`: the rate must be a whole number above 0"))?;
        let base = unit.strip_suffix('s').unwrap_or(unit);
        if !["minute", "hour", "day"].contains(&base) {
            return Err(format!("`{s}`: the unit is minute(s), hour(s) or day(s)"));
        }
        let want = if n == 1 {
            base.to_string()
        } else {
            format!("{base}s")
        };
        if *unit != want {
            return Err(format!("`{s}`: EventBridge wants `rate({n} {want})`"));
        }
        return Ok(());
    }
    if let Some(body) = s.strip_prefix("cron(").and_then(|b| b.strip_suffix(')')) {
        let f: Vec<&str> = body.split_whitespace().collect();
        if f.len() != 6 {
            return Err(format!(
                "`{s}`: a cron expression has 6 fields (minutes hours day-of-month month day-of-week year), like `cron(0 12 * * ? *)`"
            ));
        }
        if (f[2] == "?") == (f[4] == "?") {
            return Err(format!("`{s}`: exactly one of day-of-month (3rd field) and day-of-week (5th field) must be `?`"));
        }
        return Ok(());
    }
    Err(format!(
        "`{s}` is not a schedule: use `rate(5 minutes)` or `cron(0 12 * * ? *)`"
    ))
}

/// A field's value when it is exactly one reference, with the resource it names.
fn reference<'a>(value: &str, cx: &'a CheckCx) -> Option<(Ref, &'a blueprint::Resource)> {
    match refs::scan(value).ok()?.as_slice() {
        [Piece::Ref(r)] => cx.resources.get(&r.target).map(|res| (r.clone(), res)),
        _ => None,
    }
}

fn is_literal(value: &str) -> bool {
    matches!(refs::scan(value).as_deref(), Ok([Piece::Lit(_)]))
}

fn check_bus(bus: &str, cx: &CheckCx) -> Vec<Issue> {
    if let Some((r, res)) = reference(bus, cx) {
        if res.kind != "event_bus" {
            return vec![Issue::new(
                "bus",
                format!("`{r}` is a {}, not an event_bus", res.kind),
            )];
        }
        return Vec::new();
    }
    if is_literal(bus) && !bus.starts_with("arn:") && !bus.chars().all(bus_char) {
        return vec![
            Issue::new("bus", format!("`{bus}` is not an event bus name or ARN")).help(
                "use a reference like `${orders_bus.name}`, or leave `bus` out for the default bus",
            ),
        ];
    }
    Vec::new()
}

/// Checks of one target; the field each issue is about comes first.
fn check_target(t: &TargetField, cx: &CheckCx) -> Vec<(&'static str, Issue)> {
    let mut out = Vec::new();
    if is_literal(&t.arn) && !t.arn.starts_with("arn:") {
        out.push((
            "arn",
            Issue::new("", format!("`{}` is not an ARN", t.arn))
                .help("use a reference like `${orders_queue.arn}`"),
        ));
    }
    if let Some((r, res)) = reference(&t.arn, cx) {
        if !matches!(r.attribute.as_deref(), None | Some("arn")) {
            out.push((
                "arn",
                Issue::new("", format!("a target needs an ARN, not `{r}`"))
                    .help(format!("use `${{{}.arn}}`", r.target)),
            ));
        }
        if res.kind == "sqs_queue" {
            let fifo = res
                .config
                .get("fifo")
                .and_then(Json::as_bool)
                .unwrap_or(false);
            match (fifo, &t.sqs_message_group_id) {
                (true, None) => out.push((
                    "sqs_message_group_id",
                    Issue::new(
                        "",
                        format!(
                            "`{}` is a FIFO queue: its target needs `sqs_message_group_id`",
                            r.target
                        ),
                    ),
                )),
                (false, Some(_)) => out.push((
                    "sqs_message_group_id",
                    Issue::new(
                        "",
                        format!(
                            "`{}` is a standard queue: message groups are for FIFO queues",
                            r.target
                        ),
                    ),
                )),
                _ => {}
            }
            let allows = res
                .config
                .get("allow_services")
                .and_then(Json::as_array)
                .is_some_and(|a| {
                    a.iter()
                        .any(|s| s.as_str().map(str::trim) == Some("events.amazonaws.com"))
                });
            if !allows {
                out.push((
                    "arn",
                    Issue::new(
                        "",
                        format!("queue `{}` does not let EventBridge send to it", r.target),
                    )
                    .help(format!(
                        "add `allow_services: [events.amazonaws.com]` to `{}`",
                        r.target
                    ))
                    .warning(),
                ));
            }
        }
    }
    let target_kind = reference(&t.arn, cx).map(|(_, res)| res.kind.clone());
    let starts_machine = target_kind.as_deref() == Some("state_machine")
        || iam::arn_parts(&t.arn)
            .is_some_and(|(_, s, _, _, r)| s == "states" && r.starts_with("stateMachine:"));
    if t.role.is_none() && starts_machine {
        out.push((
            "arn",
            Issue::new("", "EventBridge needs a role to start a state machine")
                .help("add `role: auto` to this target for a role allowed only `states:StartExecution` on it"),
        ));
    }
    if t.role.as_deref() == Some(AUTO_ROLE) && !starts_machine {
        out.push((
            "role",
            Issue::new(
                "",
                "`role: auto` is for state machine targets; this target needs no role (functions and queues allow the rule through their own policies)",
            )
            .help("remove `role`, or give a role ARN"),
        ));
    }
    if let Some(role) = t.role.as_deref().filter(|r| *r != AUTO_ROLE) {
        if is_literal(role) && !role.starts_with("arn:") {
            out.push((
                "role",
                Issue::new("", format!("`{role}` is not a role ARN"))
                    .help("use a reference like `${events_role.arn}`"),
            ));
        }
    }
    out
}

/// `role: auto`: the rule's own least-privilege role.
const AUTO_ROLE: &str = "auto";

/// The automatic role's policy: what the targets with `role: auto` need.
fn auto_role_policy(targets: &[TargetAttrs]) -> Option<Json> {
    let auto: Vec<&TargetAttrs> = targets
        .iter()
        .filter(|t| t.role.as_deref() == Some(AUTO_ROLE))
        .collect();
    if auto.is_empty() {
        return None;
    }
    if auto.iter().any(|t| t.arn == refs::UNKNOWN) {
        return Some(Json::String(refs::UNKNOWN.into()));
    }
    let mut g = Grants::default();
    for t in auto {
        iam::grant_for_value(&t.arn, &mut g);
    }
    Some(g.policy())
}

/// Targets read from AWS that use the stack's automatic role say `auto`, as in the
/// blueprint, and the rule's attributes carry that role's policy.
async fn with_auto_role(aws: &Aws, stack: &str, mut a: Attrs) -> Result<Attrs, Error> {
    let mut auto_arn = None;
    for t in &mut a.targets {
        if let Some(r) = &t.role {
            if iam::is_auto_role(r, stack, &aws.region) {
                auto_arn = Some(r.clone());
                t.role = Some(AUTO_ROLE.to_string());
            }
        }
    }
    if let Some(arn) = auto_arn {
        a.role_policy = Some(
            iam::auto_role_policy(aws, &arn)
                .await?
                .unwrap_or(Json::Null),
        );
    }
    Ok(a)
}

/// Creates or updates the rule's automatic role when a target needs it; its ARN.
async fn ensure_role(aws: &Aws, cx: &OpCx<'_>, a: &Attrs) -> Result<Option<String>, Error> {
    match &a.role_policy {
        None => Ok(None),
        Some(policy) => {
            let (arn, _) =
                iam::ensure_auto_role(aws, cx, EventRule::KIND, "events.amazonaws.com", policy)
                    .await?;
            Ok(Some(arn))
        }
    }
}

/// The targets with `role: auto` replaced by the automatic role's ARN.
fn with_role_arn<'a>(
    targets: impl IntoIterator<Item = &'a TargetAttrs>,
    role: Option<&str>,
) -> Vec<TargetAttrs> {
    targets
        .into_iter()
        .map(|t| {
            let mut t = t.clone();
            if t.role.as_deref() == Some(AUTO_ROLE) {
                t.role = role.map(str::to_string);
            }
            t
        })
        .collect()
}

fn is_function(arn: &str) -> bool {
    iam::arn_parts(arn).is_some_and(|(_, s, _, _, r)| s == "lambda" && r.starts_with("function:"))
}

/// The id of the statement that lets this rule invoke a function target.
fn permission_id(rule: &str, target: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    common::physical_name("securecart", &format!("{rule}-{target}"), 100, ok, "")
}

/// Lets the rule invoke its function targets (lambda:AddPermission for
/// events.amazonaws.com, limited to this rule's ARN).
async fn allow_invoke<'a>(
    aws: &Aws,
    cx: &OpCx<'_>,
    a: &Attrs,
    rule_arn: &str,
    targets: impl IntoIterator<Item = &'a TargetAttrs>,
) -> Result<(), Error> {
    for t in targets.into_iter().filter(|t| is_function(&t.arn)) {
        cx.note(format!("allowing the rule to invoke {}", t.arn));
        match aws
            .lambda
            .add_permission()
            .function_name(&t.arn)
            .statement_id(permission_id(&a.name, &t.id))
            .action("lambda:InvokeFunction")
            .principal("events.amazonaws.com")
            .source_arn(rule_arn)
            .send()
            .await
            .map_err(Error::from)
        {
            // Already there from an earlier run.
            Err(e) if e.is_code(&["ResourceConflictException"]) => {}
            other => other.map(|_| ())?,
        }
    }
    Ok(())
}

/// Takes back what [`allow_invoke`] gave (a function already gone is fine).
async fn revoke_invoke<'a>(
    aws: &Aws,
    rule: &str,
    targets: impl IntoIterator<Item = &'a TargetAttrs>,
) -> Result<(), Error> {
    for t in targets.into_iter().filter(|t| is_function(&t.arn)) {
        match aws
            .lambda
            .remove_permission()
            .function_name(&t.arn)
            .statement_id(permission_id(rule, &t.id))
            .send()
            .await
            .map_err(Error::from)
        {
            Err(e) if e.is_code(&["ResourceNotFoundException"]) => {}
            other => other.map(|_| ())?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::typed::Typed;
    use crate::resources::{testing, Kind};

    fn desired(config: Json) -> Json {
        Typed(EventRule).desired("shop", "placed", &config).unwrap()
    }

    /// Problems of a blueprint with these resources, as `Severity path: message`.
    fn problems(resources: &str) -> Vec<String> {
        testing::problems(&format!("name: shop\nresources:\n{resources}"))
    }

    /// The messages of the problems at `path` whose severity starts with `severity`, joined.
    fn at(p: &[String], severity: &str, path: &str) -> String {
        p.iter()
            .filter_map(|l| {
                let (s, rest) = l.split_once(' ')?;
                s.starts_with(severity).then_some(())?;
                rest.strip_prefix(path)?.strip_prefix(": ")
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }

    #[test]
    fn desired_normalises_and_fills_defaults() {
        let d = desired(json!({
            "bus": "arn:aws:events:eu-west-1:1:event-bus/shop-orders",
            "event_pattern": {"source": ["shop"], "detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 0]}], "a": ["x"]}},
            "targets": [{"arn": "arn:aws:sqs:eu-west-1:1:b"}, {"id": "a", "arn": "arn:aws:sqs:eu-west-1:1:a", "input": {"z": 1, "k": [2]}}],
        }));
        assert_eq!(
            d,
            json!({
                "name": "shop-placed",
                "bus": "shop-orders",
                "event_pattern": {"detail": {"a": ["x"], "total": [{"numeric": [">", 0]}]}, "detail-type": ["OrderPlaced"], "source": ["shop"]},
                "schedule": null,
                "description": null,
                "enabled": true,
                "targets": [
                    {"id": "a", "arn": "arn:aws:sqs:eu-west-1:1:a", "input": {"k": [2], "z": 1}, "role": null, "sqs_message_group_id": null},
                    {"id": "target-1", "arn": "arn:aws:sqs:eu-west-1:1:b", "input": null, "role": null, "sqs_message_group_id": null},
                ],
            })
        );
        // Sorted keys, also in the text sent to AWS.
        assert_eq!(
            d["event_pattern"].to_string(),
            r#"{"detail":{"a":["x"],"total":[{"numeric":[">",0]}]},"detail-type":["OrderPlaced"],"source":["shop"]}"#
        );
        assert_eq!(
            desired(json!({"schedule": " rate(5 minutes) ", "description": ""}))["bus"],
            "default"
        );
    }

    #[test]
    fn read_normalisation_matches_desired() {
        let config = json!({
            "bus": "shop-orders",
            "event_pattern": {"source": ["shop"], "detail-type": ["OrderPlaced"]},
            "description": "orders to the queue",
            "enabled": false,
            "targets": [
                {"arn": "arn:aws:sqs:eu-west-1:1:q.fifo", "sqs_message_group_id": "orders", "input": {"b": 1, "a": 2}},
                {"id": "flow", "arn": "arn:aws:states:eu-west-1:1:stateMachine:s", "role": "arn:aws:iam::1:role/r"},
            ],
        });
        let rule = Rule::builder()
            .name("shop-placed")
            .arn("arn:aws:events:eu-west-1:1:rule/shop-orders/shop-placed")
            // AWS re-orders and re-formats patterns.
            .event_pattern(r#"{ "detail-type": ["OrderPlaced"], "source": ["shop"] }"#)
            .state(RuleState::Disabled)
            .description("orders to the queue")
            .event_bus_name("shop-orders")
            .build();
        let targets = vec![
            Target::builder()
                .id("flow")
                .arn("arn:aws:states:eu-west-1:1:stateMachine:s")
                .role_arn("arn:aws:iam::1:role/r")
                .build()
                .unwrap(),
            Target::builder()
                .id("target-1")
                .arn("arn:aws:sqs:eu-west-1:1:q.fifo")
                .input(r#"{"a":2,"b":1}"#)
                .sqs_parameters(SqsParameters::builder().message_group_id("orders").build())
                .build()
                .unwrap(),
        ];
        assert_eq!(json!(attrs_of(&rule, &targets)), desired(config));
    }

    #[test]
    fn targets_round_trip_through_the_api_shape() {
        let t = TargetAttrs {
            id: "t".into(),
            arn: "arn:aws:sqs:eu-west-1:1:q".into(),
            input: Some(json!({"a": {"c": 1, "b": 2}})),
            role: Some("arn:aws:iam::1:role/r".into()),
            sqs_message_group_id: Some("g".into()),
        };
        let aws = aws_target(&t).unwrap();
        assert_eq!(aws.input(), Some(r#"{"a":{"b":2,"c":1}}"#));
        let rule = Rule::builder().name("n").build();
        assert_eq!(attrs_of(&rule, &[aws]).targets, vec![t]);
    }

    #[test]
    fn schedules() {
        for ok in [
            "rate(1 minute)",
            "rate(5 minutes)",
            "rate(2 days)",
            "cron(0 12 * * ? *)",
            "cron(0/15 * ? * MON-FRI *)",
        ] {
            assert_eq!(check_schedule(ok), Ok(()), "{ok}");
        }
        // Each wrong one with what its message must say ("" for no particular text).
        for (bad, says) in [
            ("rate(1 minutes)", "rate(1 minute)"),
            ("rate(5 minute)", "rate(5 minutes)"),
            ("rate(0 hours)", ""),
            ("rate(5 weeks)", ""),
            ("cron(0 12 * * *)", "6 fields"),
            ("cron(0 12 * * * *)", "`?`"),
            ("every 5 minutes", ""),
        ] {
            let e = check_schedule(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn checks_fields() {
        let p = problems(concat!(
            "  bus: {type: event_bus}\n",
            "  q: {type: sqs_queue, fifo: true}\n",
            "  both: {type: event_rule, event_pattern: {source: [a]}, schedule: rate(5 minutes)}\n",
            "  neither: {type: event_rule}\n",
            "  scalar: {type: event_rule, event_pattern: {source: shop, detail: {x: []}}}\n",
            "  listy: {type: event_rule, event_pattern: [a]}\n",
            "  sched: {type: event_rule, bus: '${bus.name}', schedule: 'cron(0 12 * * *)'}\n",
            "  wrongbus: {type: event_rule, bus: '${q.name}', event_pattern: {source: [a]}}\n",
            "  tg:\n    type: event_rule\n    event_pattern: {source: [a]}\n    targets:\n",
            "      - {id: same, arn: '${q.arn}'}\n",
            "      - {id: same, arn: not-an-arn}\n",
            "      - {arn: '${q.url}', sqs_message_group_id: g}\n",
            "      - {id: 'bad id', arn: 'arn:aws:sns:eu-west-1:1:t', role: admin}\n",
        ));
        let at = |path: &str| at(&p, "", path);
        for (path, needle) in [
            ("resources.both.schedule", "not both"),
            ("resources.neither", "needs `event_pattern` or `schedule`"),
            ("resources.scalar.event_pattern.source", "lists"),
            ("resources.scalar.event_pattern.detail.x", "matches nothing"),
            ("resources.listy.event_pattern", "must be a mapping"),
            ("resources.sched.schedule", "6 fields"),
            ("resources.sched.bus", "default event bus"),
            ("resources.wrongbus.bus", "not an event_bus"),
            ("resources.tg.targets[0].sqs_message_group_id", "FIFO queue"),
            ("resources.tg.targets[0].arn", "does not let EventBridge"),
            ("resources.tg.targets[1].id", "also used by targets[0]"),
            ("resources.tg.targets[1].arn", "not an ARN"),
            ("resources.tg.targets[2].arn", "needs an ARN"),
            ("resources.tg.targets[3].id", "bad id"),
            ("resources.tg.targets[3].role", "not a role ARN"),
        ] {
            assert!(at(path).contains(needle), "{path}: {p:?}");
        }
    }

    #[test]
    fn valid_rules_have_no_problems() {
        let p = problems(concat!(
            "  bus: {type: event_bus}\n",
            "  q: {type: sqs_queue, allow_services: [events.amazonaws.com]}\n",
            "  r:\n    type: event_rule\n    bus: '${bus.name}'\n    event_pattern: {source: [shop], detail: {total: [{numeric: ['>', 0]}]}}\n",
            "    targets: [{arn: '${q.arn}', input: {hello: world}}]\n",
            "  tick: {type: event_rule, schedule: rate(1 hour), enabled: false}\n",
        ));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn state_machine_targets_get_an_automatic_role() {
        let sm = "arn:aws:states:eu-west-1:123456789012:stateMachine:shop-flow";
        let d = desired(json!({
            "event_pattern": {"source": ["shop"]},
            "targets": [{"id": "flow", "arn": sm, "role": "auto"}, {"id": "q", "arn": "arn:aws:sqs:eu-west-1:123456789012:q"}],
        }));
        assert_eq!(d["targets"][0]["role"], "auto");
        assert_eq!(
            d["role_policy"]["Statement"],
            json!([{"Effect": "Allow", "Action": "states:StartExecution", "Resource": sm}])
        );
        // Without `role: auto` the attributes keep their shape.
        let plain = desired(
            json!({"event_pattern": {"source": ["shop"]}, "targets": [{"arn": sm, "role": "arn:aws:iam::1:role/r"}]}),
        );
        assert!(plain.get("role_policy").is_none(), "{plain}");
        // The ARN of the automatic role is put in place of `auto` only when calling AWS.
        let t: Vec<TargetAttrs> = serde_json::from_value(d["targets"].clone()).unwrap();
        let resolved = with_role_arn(
            &t,
            Some("arn:aws:iam::1:role/securecart/shop/auto/shop-placed-role"),
        );
        assert_eq!(
            resolved[0].role.as_deref(),
            Some("arn:aws:iam::1:role/securecart/shop/auto/shop-placed-role")
        );
        assert_eq!(resolved[1].role, None);
        assert!(permission_id(&"r".repeat(64), &"t".repeat(64)).len() <= 100);
    }

    #[test]
    fn state_machine_and_function_targets_are_checked() {
        let p = problems(concat!(
            "  q: {type: sqs_queue, allow_services: [events.amazonaws.com]}\n",
            "  f: {type: lambda_function, code: f, runtime: python3.12, handler: h.h}\n",
            "  sm:\n    type: state_machine\n    definition: {StartAt: A, States: {A: {Type: Pass, End: true}}}\n",
            "  r:\n    type: event_rule\n    event_pattern: {source: [a]}\n    targets:\n",
            "      - {id: a, arn: '${sm.arn}'}\n",
            "      - {id: b, arn: '${q.arn}', role: auto}\n",
            "      - {id: c, arn: '${sm.arn}', role: auto}\n",
            "      - {id: d, arn: '${f.arn}'}\n",
        ));
        let at = |path: &str| at(&p, "Error", path);
        for (path, needle) in [
            ("resources.r.targets[0].arn", "needs a role"),
            ("resources.r.targets[1].role", "for state machine targets"),
        ] {
            assert!(at(path).contains(needle), "{path}: {p:?}");
        }
        assert!(at("resources.r.targets[2].arn").is_empty(), "{p:?}");
        assert!(at("resources.r.targets[2].role").is_empty(), "{p:?}");
        assert!(at("resources.r.targets[3].arn").is_empty(), "{p:?}");
    }
}
