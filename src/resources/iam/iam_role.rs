//! `iam_role`: an IAM role that an AWS service assumes, with managed and inline policies.
//! The IAM code other kinds share (policies, automatic roles) is in the service module.

use super::{STACK_ROLES, STACK_ROLE_ACCESS};
use crate::resources::access::Access;
use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value as Json};

use super::*;
use crate::resources::common::{self, Error};
use crate::resources::fields::is_literal;
use crate::resources::typed::{
    attrs_of, Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct IamRole;

/// An IAM role that an AWS service (Lambda, Step Functions, EventBridge, …) assumes.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// The AWS service or services that may assume the role, like `lambda.amazonaws.com`.
    service: Services,
    /// ARNs of managed policies to attach, like
    /// `arn:${stack.partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole`.
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

/// One service principal or a list of them (kept apart so a problem names `service` or
/// `service[i]` as written).
#[derive(Debug, Clone)]
pub enum Services {
    One(String),
    Many(Vec<String>),
}

impl Services {
    fn all(&self) -> &[String] {
        match self {
            Services::One(s) => std::slice::from_ref(s),
            Services::Many(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for Services {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match Json::deserialize(d)? {
            Json::String(s) => Ok(Services::One(s)),
            Json::Array(a) => a
                .into_iter()
                .map(|v| match v {
                    Json::String(s) => Ok(s),
                    other => Err(D::Error::custom(format!(
                        "expected a service principal like `lambda.amazonaws.com`, not {other}"
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(Services::Many),
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
pub struct Attrs {
    name: String,
    description: Option<String>,
    /// The trust policy, normalised.
    trust_policy: Json,
    /// Sorted, without duplicates.
    managed_policies: Vec<String>,
    /// Name → normalised document.
    policies: BTreeMap<String, Json>,
}

/// A role as read: its listing, the ARNs of its attached policies and its inline
/// policies (name → normalised document).
pub type RoleRead = (Role, Vec<String>, BTreeMap<String, Json>);

#[async_trait]
impl Resource for IamRole {
    const KIND: &'static str = "iam_role";
    const ACCESS: &'static [&'static [Access]] = &[
        STACK_ROLE_ACCESS,
        &[Access::change(&["iam:UpdateRole"], &[STACK_ROLES])],
    ];
    const ATTRIBUTES: &'static [&'static str] = &["arn", "name"];
    const REPLACE_ON: &'static [&'static str] = &["name"];
    const ADOPT: Adopt = Adopt::OnCodes(&["EntityAlreadyExists"]);
    /// A new name (a role from before roles were per region moving to its region's name)
    /// never clashes with the old one, so the new role is made first and what runs as the
    /// old one is re-pointed before it goes: no function is without a role meanwhile.
    const CREATE_BEFORE_DELETE: bool = true;

    /// Typical time on AWS: IAM calls are immediate; a new role is usable after ~2 s of
    /// propagation (shared/notes/aws-behaviour.md "Eventual consistency").
    const TYPICAL: Typical = Typical {
        create: 5,
        update: 3,
        delete: 3,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    type Raw = RoleRead;

    fn check(&self, id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut out = Vec::new();
        if f.service.all().is_empty() {
            out.push(Issue::new(
                "service",
                "name at least one service that assumes the role",
            ));
        }
        for (i, s) in f.service.all().iter().enumerate() {
            if is_literal(s) && !valid_service(s) {
                let at = match f.service {
                    Services::Many(_) => format!("service[{i}]"),
                    Services::One(_) => "service".to_string(),
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
                        "like `arn:${stack.partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole`",
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

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let services: Vec<String> = f
            .service
            .all()
            .iter()
            .map(|s| s.trim().to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let a = Attrs {
            name: role_name(site.stack, site.id, site.region),
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
        Ok((a, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, _: &Fields) -> Vec<(String, String)> {
        vec![(
            ROLE_NAMESPACE.into(),
            role_name(stack, id, NAME_CHECK_REGION).to_ascii_lowercase(),
        )]
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        let mut out = Vec::new();
        for (name, doc) in &a.policies {
            let mut issues = Vec::new();
            check_policy(doc, name, &mut issues);
            out.extend(
                issues
                    .into_iter()
                    .filter(|i| i.warning)
                    .map(|i| format!("policy `{name}`: {}", i.message)),
            );
        }
        out
    }

    fn label(&self, a: &Attrs) -> String {
        format!("an IAM role named `{}`", a.name)
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let region = aws.region.as_str();
        let (path, legacy) = (stack_path(stack, region), legacy_path(stack));
        // One call finds this region's roles and those from before roles were per region
        // (both under the legacy path as a prefix); other regions' are filtered out by path
        // here and by tag below.
        let roles = list_roles(aws, &legacy).await?;
        let legacy = legacy.as_str();
        // Tags, attached and inline policies have no batched form: calls per role.
        common::read_each(
            roles
                .into_iter()
                .filter(|r| r.path() == path || r.path() == legacy)
                .collect::<Vec<_>>(),
            |r| async move {
                let Some(tags) = role_tags(aws, r.role_name()).await? else {
                    return Ok(None);
                };
                let id = if r.path() == legacy {
                    // Made before roles were per region: a candidate, kept only where a
                    // resource of this region uses it (`claim_legacy_roles`).
                    common::owned_id(&tags, stack).filter(|_| !tags.contains_key(TAG_REGION))
                } else {
                    owned_here(&tags, stack, region)
                };
                let Some(id) = id else {
                    return Ok(None);
                };
                match read_policies(aws, r).await {
                    Ok(read) => Ok(Some((id, read))),
                    Err(e) if gone(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let region = aws.region.as_str();
        let tags = role_tags(aws, &a.name).await?.unwrap_or_default();
        let Some(role) = get_role(aws, &a.name).await? else {
            return Ok(None);
        };
        // Ours only under the stack's path in this region, tagged for it (an automatic role
        // is not an `iam_role`); the stack's role in another region is refused in words
        // that say so.
        let owner =
            owned_here(&tags, stack, region).filter(|_| role.path() == stack_path(stack, region));
        if owner.is_none() && tags.get(TAG_REGION).is_some_and(|r| r != region) {
            return Err(Error::Conflict(format!(
                "{}: delete it there or use another stack name",
                not_ours(&a.name, &tags, stack, region)
            )));
        }
        if owner.is_none() {
            // Not ours: the refusal needs nothing more of it.
            return Ok(Some(Found {
                owner,
                raw: (role, Vec::new(), BTreeMap::new()),
            }));
        }
        Ok(Some(Found {
            owner,
            raw: read_policies(aws, role).await?,
        }))
    }

    fn observe(&self, (role, managed, policies): &RoleRead) -> Observed<Attrs> {
        Observed {
            physical_id: role.arn().to_string(),
            outputs: vec![
                ("arn", json!(role.arn())),
                ("name", json!(role.role_name())),
            ],
            attrs: Attrs {
                name: role.role_name().to_string(),
                description: role
                    .description()
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
                trust_policy: role
                    .assume_role_policy_document()
                    .map(parse_policy_text)
                    .unwrap_or(Json::Null),
                managed_policies: managed.clone(),
                policies: policies.clone(),
            },
        }
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, a: &Attrs, _: &()) -> Result<RoleRead, Error> {
        let tags = role_tags_for(cx.stack, cx.id, &a.name, &aws.region);
        let role = create_role_call(
            aws,
            &a.name,
            &stack_path(cx.stack, &aws.region),
            &a.trust_policy,
            a.description.as_deref(),
            &tags,
        )
        .await?;
        for p in &a.managed_policies {
            attach(aws, cx, &a.name, p).await?;
        }
        for (name, doc) in &a.policies {
            put_policy(aws, cx, &a.name, name, doc).await?;
        }
        // CreateRole answers the role; the policies are what was just attached and put.
        Ok((role, a.managed_policies.clone(), a.policies.clone()))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<RoleRead>, Error> {
        let old = attrs_of::<Self>(live)?;
        if changed.has("description") {
            cx.note("updating the description");
            aws.iam
                .update_role()
                .role_name(&a.name)
                .description(a.description.clone().unwrap_or_default())
                .send()
                .await?;
        }
        if changed.has("trust_policy") {
            cx.note("updating the trust policy");
            update_trust(aws, &a.name, &a.trust_policy).await?;
        }
        if changed.has("managed_policies") {
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
        if changed.has("policies") {
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
        Ok(None)
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

/// The role with its attached and inline policies.
async fn read_policies(aws: &Aws, role: Role) -> Result<RoleRead, Error> {
    let name = role.role_name().to_string();
    let managed = attached_policies(aws, &name).await?;
    let mut policies = BTreeMap::new();
    for p in inline_policy_names(aws, &name).await? {
        let doc = aws
            .iam
            .get_role_policy()
            .role_name(&name)
            .policy_name(&p)
            .send()
            .await?;
        policies.insert(p, parse_policy_text(doc.policy_document()));
    }
    Ok((role, managed, policies))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::typed::Typed;
    use crate::resources::Kind;

    #[test]
    fn desired_normalises_and_reads_back_the_same() {
        let d = Typed(IamRole)
            .desired(
                "shop",
                "events_role",
                &json!({
                    "service": "events.amazonaws.com",
                    "description": " starts the workflow ",
                    "managed_policies": ["arn:aws:iam::aws:policy/b", "arn:aws:iam::aws:policy/a"],
                    "policies": {"start": {"Statement": [{"Effect": "Allow", "Action": ["states:StartExecution"], "Resource": ["arn:x"]}]}},
                }),
            )
            .unwrap();
        assert_eq!(d["name"], "shop-events_role-us-east-1");
        assert_eq!(d["description"], "starts the workflow");
        assert_eq!(
            d["managed_policies"],
            json!(["arn:aws:iam::aws:policy/a", "arn:aws:iam::aws:policy/b"])
        );
        assert_eq!(d["policies"]["start"]["Version"], "2012-10-17");
        assert_eq!(
            d["policies"]["start"]["Statement"][0]["Action"],
            "states:StartExecution"
        );
        assert_eq!(
            d["trust_policy"]["Statement"][0]["Principal"]["Service"],
            "events.amazonaws.com"
        );
        // What IAM answers for it (re-ordered, URL-encoded) reads back as equal.
        let role = Role::builder()
            .path("/securecart/shop/us-east-1/")
            .role_name("shop-events_role-us-east-1")
            .role_id("AROA")
            .arn("arn:aws:iam::1:role/securecart/shop/us-east-1/shop-events_role-us-east-1")
            .description("starts the workflow")
            .create_date(aws_smithy_types::DateTime::from_secs(0))
            .assume_role_policy_document(
                "%7B%22Statement%22%3A%5B%7B%22Action%22%3A%22sts%3AAssumeRole%22%2C%22Principal%22%3A%7B%22Service%22%3A%5B%22events.amazonaws.com%22%5D%7D%2C%22Effect%22%3A%22Allow%22%7D%5D%2C%22Version%22%3A%222012-10-17%22%7D",
            )
            .build()
            .unwrap();
        let start = "%7B%22Statement%22%3A%5B%7B%22Resource%22%3A%22arn%3Ax%22%2C%22Action%22%3A%22states%3AStartExecution%22%2C%22Effect%22%3A%22Allow%22%7D%5D%2C%22Version%22%3A%222012-10-17%22%7D";
        let read = (
            role,
            vec![
                "arn:aws:iam::aws:policy/a".to_string(),
                "arn:aws:iam::aws:policy/b".to_string(),
            ],
            BTreeMap::from([("start".to_string(), parse_policy_text(start))]),
        );
        let o = IamRole.observe(&read);
        assert_eq!(serde_json::to_value(&o.attrs).unwrap(), d);
        assert_eq!(
            o.physical_id,
            "arn:aws:iam::1:role/securecart/shop/us-east-1/shop-events_role-us-east-1"
        );
        assert_eq!(o.outputs[1], ("name", json!("shop-events_role-us-east-1")));
    }

    #[test]
    fn a_namesake_is_refused_in_iam_words() {
        let (a, ()) = IamRole
            .desired(
                &Site {
                    stack: "shop",
                    region: "eu-west-1",
                    id: "r",
                    dir: std::path::Path::new("."),
                },
                serde_json::from_value(json!({"service": "lambda.amazonaws.com"})).unwrap(),
            )
            .unwrap();
        assert_eq!(IamRole.label(&a), "an IAM role named `shop-r-eu-west-1`");
    }
}
