//! `iam_role`: an IAM role that an AWS service assumes, with managed and inline policies.
//! The IAM code other kinds share (policies, automatic roles) is in the service module.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value as Json};

use super::*;
use crate::resources::common::{self, parse, Error};
use crate::resources::{Kind, Live, OpCx};

pub struct IamRole;

const KIND: &str = "iam_role";

/// An IAM role that an AWS service (Lambda, Step Functions, EventBridge, …) assumes.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Fields {
    /// The AWS service or services that may assume the role, like `lambda.amazonaws.com`.
    service: Services,
    /// ARNs of managed policies to attach, like
    /// `arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole`.
    #[serde(default)]
    managed_policies: Vec<String>,
    /// Inline policies: name → policy document, written as YAML
    /// (`Statement: [{Effect: Allow, Action: [sqs:SendMessage], Resource: "${orders.arn}"}]`).
    /// `Version: 2012-10-17` is added when left out.
    #[serde(default)]
    policies: BTreeMap<String, Json>,
    /// What the role is for (up to 1000 characters).
    #[serde(default)]
    description: Option<String>,
}

/// One service principal or a list of them.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Services(Vec<String>);

impl<'de> Deserialize<'de> for Services {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match Json::deserialize(d)? {
            Json::String(s) => Ok(Services(vec![s])),
            Json::Array(a) => a
                .into_iter()
                .map(|v| match v {
                    Json::String(s) => Ok(s),
                    other => Err(D::Error::custom(format!(
                        "expected a service principal like `lambda.amazonaws.com`, not {other}"
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(Services),
            other => Err(D::Error::custom(format!(
                "expected a service principal like `lambda.amazonaws.com` or a list of them, not {other}"
            ))),
        }
    }
}

impl schemars::JsonSchema for Services {
    fn schema_name() -> Cow<'static, str> {
        "Services".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1}
            ]
        })
    }
}

/// Normalised attributes: what `desired` builds and `read` finds, in one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Attrs {
    name: String,
    description: Option<String>,
    /// The trust policy, normalised.
    trust_policy: Json,
    /// Sorted, without duplicates.
    managed_policies: Vec<String>,
    /// Name → normalised document.
    policies: BTreeMap<String, Json>,
}

#[async_trait]
impl Kind for IamRole {
    fn name(&self) -> &'static str {
        KIND
    }

    fn attributes(&self) -> &'static [&'static str] {
        &["arn", "name"]
    }

    fn schema(&self) -> Json {
        common::schema_of::<Fields>()
    }

    fn check(&self, id: &str, config: &Json, cx: &CheckCx) -> Vec<Issue> {
        let f: Fields = match parse(config) {
            Ok(f) => f,
            Err(i) => return vec![i],
        };
        let mut out = Vec::new();
        if f.service.0.is_empty() {
            out.push(Issue::new(
                "service",
                "name at least one service that assumes the role",
            ));
        }
        for (i, s) in f.service.0.iter().enumerate() {
            if is_literal(s) && !valid_service(s) {
                let at = if config.get("service").is_some_and(Json::is_array) {
                    format!("service[{i}]")
                } else {
                    "service".to_string()
                };
                out.push(
                    Issue::new(at, format!("`{s}` is not an AWS service principal"))
                        .help("like `lambda.amazonaws.com` or `states.amazonaws.com`"),
                );
            }
        }
        for (i, p) in f.managed_policies.iter().enumerate() {
            if is_literal(p) && !(p.starts_with("arn:") && p.contains(":policy/")) {
                out.push(
                    Issue::new(
                        format!("managed_policies[{i}]"),
                        format!("`{p}` is not a managed policy ARN"),
                    )
                    .help(
                        "like `arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole`",
                    ),
                );
            }
            if p.ends_with("policy/AdministratorAccess") || p.ends_with("policy/PowerUserAccess") {
                out.push(
                    Issue::new(
                        format!("managed_policies[{i}]"),
                        format!("`{p}` allows every action (security baseline: no wildcard actions, CKV_AWS_60/61 / cfn-nag F3)"),
                    )
                    .warning(),
                );
            }
        }
        if f.managed_policies.len() > 20 {
            out.push(Issue::new(
                "managed_policies",
                format!(
                    "a role has at most 20 managed policies, not {}",
                    f.managed_policies.len()
                ),
            ));
        }
        for (name, doc) in &f.policies {
            let at = format!("policies.{name}");
            if name.is_empty() || name.len() > 128 || !name.chars().all(iam_char) {
                out.push(Issue::new(
                    at.clone(),
                    format!("policy name `{name}` must be 1 to 128 letters, digits or `_+=,.@-`"),
                ));
            }
            check_policy(doc, &at, &mut out);
        }
        if f.description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            out.push(Issue::new(
                "description",
                "a description has at most 1000 characters",
            ));
        }
        // An automatic role of a resource called `X` is `STACK-X-role`: it would take this
        // role's name.
        if let Some(base) = id.strip_suffix("-role") {
            if let Some(r) = cx.resources.get(base) {
                if ["lambda_function", "state_machine", "event_rule"].contains(&r.kind.as_str()) {
                    out.push(Issue::new(
                        "",
                        format!("`{base}` may get an automatic role with the same IAM name as this one (`…-{id}`)"),
                    ).help(format!("rename this role, e.g. `{base}_exec_role`")));
                }
            }
        }
        out
    }

    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String> {
        let f: Fields = parse(config).map_err(|i| {
            if i.path.is_empty() {
                i.message
            } else {
                format!("{}: {}", i.path, i.message)
            }
        })?;
        let services: Vec<String> = f
            .service
            .0
            .iter()
            .map(|s| s.trim().to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let a = Attrs {
            name: role_name(stack, id),
            description: f
                .description
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty()),
            trust_policy: trust_policy(&services),
            managed_policies: f
                .managed_policies
                .iter()
                .map(|p| p.trim().to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            policies: f
                .policies
                .iter()
                .map(|(k, v)| (k.clone(), policy_of_blueprint(v)))
                .collect(),
        };
        serde_json::to_value(a).map_err(|e| e.to_string())
    }

    fn physical_names(&self, stack: &str, id: &str, _config: &Json) -> Vec<(String, String)> {
        vec![(
            ROLE_NAMESPACE.into(),
            role_name(stack, id).to_ascii_lowercase(),
        )]
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &["name"]
    }

    fn warnings(&self, desired: &Json) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(Json::Object(p)) = desired.get("policies") {
            for (name, doc) in p {
                let mut issues = Vec::new();
                check_policy(doc, name, &mut issues);
                out.extend(
                    issues
                        .into_iter()
                        .filter(|i| i.warning)
                        .map(|i| format!("policy `{name}`: {}", i.message)),
                );
            }
        }
        out
    }

    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        let path = stack_path(stack);
        let roles = list_roles(aws, &path).await?;
        // Tags, attached and inline policies have no batched form: calls per role.
        let found: Vec<Option<Live>> =
            futures::stream::iter(roles.into_iter().filter(|r| r.path() == path))
                .map(|r| read_role(aws, stack, r))
                .buffer_unordered(8)
                .try_collect()
                .await?;
        let mut out: Vec<Live> = found.into_iter().flatten().collect();
        out.sort_by(|a, b| (&a.id, &a.physical_id).cmp(&(&b.id, &b.physical_id)));
        Ok(out)
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let tags = common::tags(cx.stack, cx.id, &a.name);
        let role = match create_role_call(
            aws,
            &a.name,
            &stack_path(cx.stack),
            &a.trust_policy,
            a.description.as_deref(),
            &tags,
        )
        .await
        {
            Ok(r) => r,
            Err(e) if e.is_code(&["EntityAlreadyExists"]) => {
                // Ours from an interrupted run, or someone else's.
                let tags = role_tags(aws, &a.name).await?.unwrap_or_default();
                let existing = get_role(aws, &a.name).await?;
                let Some(existing) = existing.filter(|r| {
                    common::owned_id(&tags, cx.stack).as_deref() == Some(cx.id)
                        && r.path() == stack_path(cx.stack)
                }) else {
                    return Err(Error::Conflict(format!(
                        "an IAM role named `{}` already exists and is not tagged as `{}` of stack `{}`; \
                         securecart does not adopt or change it: delete it or use another resource id",
                        a.name, cx.id, cx.stack
                    )));
                };
                cx.note("the role exists from an earlier run; bringing it up to date");
                let live = role_live(aws, cx.id.to_string(), existing).await?;
                let changed: Vec<String> = crate::diff::changed_attributes(desired, &live.attrs);
                if changed.is_empty() {
                    return Ok(live);
                }
                return self.update(aws, cx, &live, desired, &changed).await;
            }
            Err(e) => return Err(e),
        };
        for p in &a.managed_policies {
            attach(aws, cx, &a.name, p).await?;
        }
        for (name, doc) in &a.policies {
            put_policy(aws, cx, &a.name, name, doc).await?;
        }
        Ok(live(cx.id.to_string(), role.arn(), a))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live_role: &Live,
        desired: &Json,
        changed: &[String],
    ) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        let old: Attrs = common::from_desired(&live_role.attrs)?;
        let has = |f: &str| changed.iter().any(|c| c == f);
        if has("description") {
            cx.note("updating the description");
            aws.iam
                .update_role()
                .role_name(&a.name)
                .description(a.description.clone().unwrap_or_default())
                .send()
                .await
                .map_err(aws_error("UpdateRole"))?;
        }
        if has("trust_policy") {
            cx.note("updating the trust policy");
            update_trust(aws, &a.name, &a.trust_policy).await?;
        }
        if has("managed_policies") {
            for p in old
                .managed_policies
                .iter()
                .filter(|p| !a.managed_policies.contains(p))
            {
                cx.note(format!("detaching {p}"));
                detach(aws, &a.name, p).await?;
            }
            for p in a
                .managed_policies
                .iter()
                .filter(|p| !old.managed_policies.contains(p))
            {
                attach(aws, cx, &a.name, p).await?;
            }
        }
        if has("policies") {
            for name in old.policies.keys().filter(|n| !a.policies.contains_key(*n)) {
                cx.note(format!("deleting inline policy {name}"));
                delete_policy(aws, &a.name, name).await?;
            }
            for (name, doc) in &a.policies {
                if old.policies.get(name) != Some(doc) {
                    put_policy(aws, cx, &a.name, name, doc).await?;
                }
            }
        }
        let arn = live_role
            .outputs
            .get("arn")
            .and_then(Json::as_str)
            .unwrap_or(&live_role.physical_id)
            .to_string();
        Ok(live(cx.id.to_string(), &arn, a))
    }

    async fn delete(&self, aws: &Aws, _cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let name = live
            .outputs
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or_else(|| role_name_of(&live.physical_id))
            .to_string();
        delete_role(aws, &name).await
    }
}

pub(super) fn live(id: String, arn: &str, a: Attrs) -> Live {
    let outputs: BTreeMap<String, Json> = [
        ("arn".to_string(), json!(arn)),
        ("name".to_string(), json!(a.name)),
    ]
    .into_iter()
    .collect();
    Live {
        id,
        kind: KIND,
        physical_id: arn.to_string(),
        attrs: json!(a),
        outputs,
    }
}

pub(super) async fn read_role(aws: &Aws, stack: &str, role: Role) -> Result<Option<Live>, Error> {
    let Some(tags) = role_tags(aws, role.role_name()).await? else {
        return Ok(None);
    };
    let Some(id) = common::owned_id(&tags, stack) else {
        return Ok(None);
    };
    match role_live(aws, id, role).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The role as [`Live`]: its listing plus its attached and inline policies.
pub(super) async fn role_live(aws: &Aws, id: String, role: Role) -> Result<Live, Error> {
    let name = role.role_name().to_string();
    let managed = attached_policies(aws, &name).await?;
    let names = inline_policy_names(aws, &name).await?;
    let mut policies = BTreeMap::new();
    for p in names {
        let doc = aws
            .iam
            .get_role_policy()
            .role_name(&name)
            .policy_name(&p)
            .send()
            .await
            .map_err(aws_error("GetRolePolicy"))?;
        policies.insert(p, parse_policy_text(doc.policy_document()));
    }
    let a = Attrs {
        name: name.clone(),
        description: role
            .description()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string),
        trust_policy: role
            .assume_role_policy_document()
            .map(parse_policy_text)
            .unwrap_or(Json::Null),
        managed_policies: managed,
        policies,
    };
    Ok(live(id, role.arn(), a))
}
