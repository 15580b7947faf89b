//! AWS IAM: what kinds share — policy normalisation (so that IAM's re-ordering
//! and reformatting never shows as a change), the automatic least-privilege roles behind
//! `role: auto` on functions, state machines and rule targets, and how a function or state
//! machine uses its role ([`RoleUser`]: waiting out IAM propagation; [`ExecRole`]: the role
//! read back in blueprint terms).
//!
//! IAM is global but stacks are regional: the same stack name applied in two regions must
//! never share, adopt, rewrite or delete the other's roles. So a role carries its region in
//! its name (`STACK-ID-REGION`), its path (`/securecart/STACK/REGION/`, so one `ListRoles`
//! call with that prefix finds the region's roles) and a `securecart:region` tag, which
//! every read checks: a role of another region is not ours. Automatic roles are
//! `STACK-ID-role-REGION` under `/securecart/STACK/REGION/auto/`, belong to the resource that
//! uses them (which creates, updates and deletes them) and are never read as `iam_role`s.
//!
//! Roles made before roles were per region (`STACK-ID` under `/securecart/STACK/`, no
//! region tag) belong to the region whose resources use them, and only there: see
//! [`claim_legacy_roles`].

pub mod iam_role;

use crate::resources::access::Access;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_iam::types::{Role, Tag};
use serde_json::{json, Map, Value as Json};

use crate::aws::Aws;
use crate::blueprint::refs::{self, Piece};
use crate::blueprint::{CheckCx, Issue};
use crate::partition;
use crate::resources::common::{self, Error};
use crate::resources::fields::is_literal;
use crate::resources::OpCx;

/// The name of the one inline policy of an automatic role.
pub(super) const AUTO_POLICY: &str = "securecart-auto";
/// The tag that marks an automatic role with the kind of the resource that owns it.
const TAG_AUTO_FOR: &str = "securecart:auto-role-for";
/// The tag that says which region's stack a role belongs to (IAM is global).
pub(super) const TAG_REGION: &str = "securecart:region";
/// How long IAM may take to show a just-created role to the other IAM calls.
const IAM_SETTLE: Duration = Duration::from_secs(30);

pub(super) fn iam_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// The name of `iam_role` `id`: `STACK-ID-REGION`, within IAM's 64 characters (the region,
/// at most 15 characters, is kept whole; `STACK-ID` is shortened with a hash if need be).
fn role_name(stack: &str, id: &str, region: &str) -> String {
    common::physical_name(stack, id, 64, iam_char, &format!("-{region}"))
}

/// The path of the stack's roles in `region` (a path may hold `/` and printable ASCII up to
/// 512 characters; stack names and regions are letters, digits and `-`).
fn stack_path(stack: &str, region: &str) -> String {
    format!("/securecart/{stack}/{region}/")
}

/// The path of the stack's automatic roles in `region`.
fn auto_path(stack: &str, region: &str) -> String {
    format!("/securecart/{stack}/{region}/auto/")
}

/// Where roles made before roles were per region live: `iam_role`s here, automatic roles
/// under `auto/`.
fn legacy_path(stack: &str) -> String {
    format!("/securecart/{stack}/")
}

/// The path of a role in its ARN (`arn:P:iam::ACCOUNT:role/PATH/NAME` → `/PATH/`).
fn path_of_arn(arn: &str) -> Option<&str> {
    let rest = arn.split_once(":role/")?.1;
    let end = rest.rfind('/').map_or(0, |i| i + 1);
    Some(&arn[arn.len() - rest.len() - 1..arn.len() - rest.len() + end])
}

/// The blueprint id of a role of `stack` in `region`: its tags name the stack and the region.
fn owned_here(tags: &BTreeMap<String, String>, stack: &str, region: &str) -> Option<String> {
    common::owned_id(tags, stack)
        .filter(|_| tags.get(TAG_REGION).map(String::as_str) == Some(region))
}

/// Why a role of this stack's name is not this region's, for a refusal: it belongs to the
/// stack in another region (IAM is global), or it is not the stack's at all.
fn not_ours(name: &str, tags: &BTreeMap<String, String>, stack: &str, region: &str) -> String {
    match tags.get(TAG_REGION) {
        Some(other) if common::owned_id(tags, stack).is_some() && other != region => format!(
            "an IAM role named `{name}` belongs to stack `{stack}` in region {other} \
             (tag {TAG_REGION}); IAM roles are global, stacks are regional, and securecart \
             never shares, adopts or changes another region's role"
        ),
        _ => format!(
            "an IAM role named `{name}` already exists and is not stack `{stack}`'s in region {region}"
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Policy documents
// ---------------------------------------------------------------------------------------

/// A policy document in one canonical form: keys sorted, `Statement` always a list in a
/// stable order, string lists sorted without duplicates and a one-element list written as
/// its element, scalars as strings. IAM answers with documents re-ordered and reformatted;
/// normalised on both sides, only real differences remain.
pub(super) fn normalise_policy(doc: &Json) -> Json {
    match doc {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                let v = &m[k];
                let v = if k == "Statement" {
                    let list = match v {
                        Json::Array(a) => a.clone(),
                        other => vec![other.clone()],
                    };
                    let mut items: Vec<Json> = list.iter().map(norm_value).collect();
                    items.sort_by_key(|s| s.to_string());
                    items.dedup();
                    Json::Array(items)
                } else if k == "Version" {
                    v.clone()
                } else {
                    norm_value(v)
                };
                out.insert(k.clone(), v);
            }
            Json::Object(out)
        }
        other => other.clone(),
    }
}

fn norm_value(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), norm_value(&m[k])))
                    .collect(),
            )
        }
        Json::Array(a) => {
            let mut items: Vec<Json> = a.iter().map(norm_value).collect();
            items.sort_by_key(|s| match s {
                Json::String(x) => x.clone(),
                other => other.to_string(),
            });
            items.dedup();
            if items.len() == 1 {
                items.pop().unwrap_or(Json::Null)
            } else {
                Json::Array(items)
            }
        }
        Json::Number(n) => Json::String(n.to_string()),
        Json::Bool(b) => Json::String(b.to_string()),
        other => other.clone(),
    }
}

/// A policy document as written in a blueprint: with a `Version`, normalised.
fn policy_of_blueprint(doc: &Json) -> Json {
    let mut doc = doc.clone();
    if let Json::Object(m) = &mut doc {
        m.entry("Version")
            .or_insert_with(|| Json::String("2012-10-17".into()));
    }
    normalise_policy(&doc)
}

/// IAM returns documents URL-encoded (RFC 3986); some emulators return them as is.
pub(super) fn parse_policy_text(s: &str) -> Json {
    let s = s.trim();
    match serde_json::from_str::<Json>(s)
        .or_else(|_| serde_json::from_str::<Json>(&percent_decode(s)))
    {
        // A document encoded twice (the emulator's ListRoles answers so): its text again.
        Ok(Json::String(inner)) if inner.trim_start().starts_with('{') => parse_policy_text(&inner),
        Ok(v) => normalise_policy(&v),
        Err(_) => Json::String(s.to_string()),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The trust policy that lets `services` assume a role.
pub(super) fn trust_policy(services: &[String]) -> Json {
    normalise_policy(&json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": services},
            "Action": "sts:AssumeRole",
        }],
    }))
}

/// Permissions collected for an automatic role: action → resources.
#[derive(Debug, Default, Clone)]
pub(super) struct Grants(BTreeMap<String, BTreeSet<String>>);

impl Grants {
    pub fn allow(&mut self, action: &str, resource: impl Into<String>) {
        self.0
            .entry(action.to_string())
            .or_default()
            .insert(resource.into());
    }

    /// The policy document: one statement per action, naming its resources. Actions are
    /// always exact (never wildcards); only APIs that take no resource get `*`.
    pub fn policy(&self) -> Json {
        // Actions with the same resources share a statement, so the document stays short.
        let mut by_resources: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
        for (action, res) in &self.0 {
            by_resources
                .entry(res.iter().cloned().collect())
                .or_default()
                .push(action.clone());
        }
        let statements: Vec<Json> = by_resources
            .into_iter()
            .map(|(res, actions)| json!({"Effect": "Allow", "Action": actions, "Resource": res}))
            .collect();
        normalise_policy(&json!({"Version": "2012-10-17", "Statement": statements}))
    }
}

/// Parts of an ARN: partition, service, region, account, resource.
pub(super) fn arn_parts(arn: &str) -> Option<(&str, &str, &str, &str, &str)> {
    let mut p = arn.splitn(6, ':');
    if p.next()? != "arn" {
        return None;
    }
    Some((p.next()?, p.next()?, p.next()?, p.next()?, p.next()?))
}

/// The ARN of a queue from its URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, the
/// legacy `https://REGION.queue.amazonaws.com/…` and emulator forms). The region is `*`
/// when the URL does not say.
pub(super) fn queue_arn_of_url(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (host, path) = rest.split_once('/')?;
    let mut segs = path.trim_end_matches('/').split('/');
    let (account, name) = (segs.next()?, segs.next()?);
    if segs.next().is_some()
        || account.len() != 12
        || !account.chars().all(|c| c.is_ascii_digit())
        || name.is_empty()
    {
        return None;
    }
    let host = host.split(':').next().unwrap_or(host);
    let labels: Vec<&str> = host.split('.').collect();
    let region = match labels.as_slice() {
        ["sqs", r, ..] if r.contains('-') => r.to_string(),
        [r, "queue", ..] if r.contains('-') => r.to_string(),
        _ if host == "localhost" || host == "127.0.0.1" || host.ends_with(".localstack.cloud") => {
            "*".to_string()
        }
        _ => return None,
    };
    Some(partition::of(&region).arn("sqs", &region, account, name))
}

/// What an ARN or URL found in a function's environment or a state machine's definition
/// lets the automatic role do: invoke a function, send to a queue, put events on a bus,
/// start a state machine. Anything else needs no permission.
pub(super) fn grant_for_value(value: &str, grants: &mut Grants) {
    let v = value.trim();
    if let Some((_, service, _, _, resource)) = arn_parts(v) {
        match service {
            "lambda" if resource.starts_with("function:") => {
                let base = function_arn_base(v);
                grants.allow("lambda:InvokeFunction", base.clone());
                grants.allow("lambda:InvokeFunction", format!("{base}:*"));
            }
            "sqs" if !resource.is_empty() && !resource.contains('/') => {
                grants.allow("sqs:SendMessage", v)
            }
            "events" if resource.starts_with("event-bus/") => grants.allow("events:PutEvents", v),
            "states" if resource.starts_with("stateMachine:") => {
                grants.allow("states:StartExecution", v)
            }
            _ => {}
        }
    } else if v.starts_with("https://") || v.starts_with("http://") {
        if let Some(arn) = queue_arn_of_url(v) {
            grants.allow("sqs:SendMessage", arn);
        }
    }
}

/// A function ARN without its version or alias.
fn function_arn_base(arn: &str) -> String {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() > 7 {
        parts[..7].join(":")
    } else {
        arn.to_string()
    }
}

// ---------------------------------------------------------------------------------------
// Automatic roles (`role: auto`)
// ---------------------------------------------------------------------------------------

/// The name of the automatic role of resource `id` in `region`: `STACK-ID-role-REGION`.
pub(super) fn auto_role_name(stack: &str, id: &str, region: &str) -> String {
    common::physical_name(stack, id, 64, iam_char, &format!("-role-{region}"))
}

/// The name an automatic role had before roles were per region: `STACK-ID-role`.
fn legacy_auto_role_name(stack: &str, id: &str) -> String {
    common::physical_name(stack, id, 64, iam_char, "-role")
}

/// IAM role names are unique in the account without regard to case
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html#reference_iam-quotas-names).
const ROLE_NAMESPACE: &str = "IAM role name (compared without case)";

/// The region the blueprint's name-collision check names roles in: every role of a stack
/// has the same region suffix, so which region does not change what collides.
const NAME_CHECK_REGION: &str = crate::resources::TEST_REGION;

/// The automatic role's name in the IAM namespace, when `role` is `auto`, for the
/// blueprint's name-collision check.
pub(super) fn auto_role_key(stack: &str, id: &str, role: &str) -> Option<(String, String)> {
    (role == AUTO).then(|| {
        (
            ROLE_NAMESPACE.into(),
            auto_role_name(stack, id, NAME_CHECK_REGION).to_ascii_lowercase(),
        )
    })
}

/// True when `arn` is one of the stack's automatic roles in `region`.
pub(super) fn is_auto_role(arn: &str, stack: &str, region: &str) -> bool {
    path_of_arn(arn) == Some(auto_path(stack, region).as_str())
}

/// True when `arn` is the automatic role resource `id` had before roles were per region.
fn is_legacy_auto_role_of(arn: &str, stack: &str, id: &str) -> bool {
    path_of_arn(arn) == Some(format!("{}auto/", legacy_path(stack)).as_str())
        && role_name_of(arn) == legacy_auto_role_name(stack, id)
}

/// True when `arn` is a role securecart manages for the stack: an `iam_role` of its
/// blueprint or an automatic role, of any region or from before roles were per region
/// (all live under `/securecart/STACK/`). Only decides whether a missing permission is
/// worth waiting for, never ownership.
pub(super) fn is_stack_role(arn: &str, stack: &str) -> bool {
    path_of_arn(arn).is_some_and(|p| p.starts_with(&legacy_path(stack)))
}

fn role_name_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The permissions of an automatic role (its one inline policy, normalised), or `None`
/// when the role or its policy does not exist.
pub(super) async fn auto_role_policy(aws: &Aws, role_arn: &str) -> Result<Option<Json>, Error> {
    match aws
        .iam
        .get_role_policy()
        .role_name(role_name_of(role_arn))
        .policy_name(AUTO_POLICY)
        .send()
        .await
        .map_err(Error::from)
    {
        Ok(o) => Ok(Some(parse_policy_text(o.policy_document()))),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates the automatic role of `cx.id` for `service` if needed and sets its policy.
/// Returns its ARN and whether it was created just now (the caller then expects the
/// services' eventual consistency). A role that is already right costs only reads.
pub(super) async fn ensure_auto_role(
    aws: &Aws,
    cx: &OpCx<'_>,
    owner_kind: &str,
    service: &str,
    policy: &Json,
) -> Result<(String, bool), Error> {
    let region = aws.region.as_str();
    let name = auto_role_name(cx.stack, cx.id, region);
    let trust = trust_policy(&[service.to_string()]);
    let (arn, fresh) = match get_role(aws, &name).await? {
        Some(role) => {
            let tags = role_tags(aws, &name).await?.unwrap_or_default();
            if owned_here(&tags, cx.stack, region).as_deref() != Some(cx.id)
                || !tags.contains_key(TAG_AUTO_FOR)
                || role.path() != auto_path(cx.stack, region)
            {
                return Err(Error::Conflict(format!(
                    "{}; it is not the automatic role of `{}`: securecart does not adopt or change it: \
                     delete it, or give `{}` a `role`",
                    not_ours(&name, &tags, cx.stack, region),
                    cx.id,
                    cx.id
                )));
            }
            let current = role
                .assume_role_policy_document()
                .map(parse_policy_text)
                .unwrap_or(Json::Null);
            if current != trust {
                cx.note(format!("resetting the trust policy of {name}"));
                update_trust(aws, &name, &trust).await?;
            }
            (role.arn().to_string(), false)
        }
        None => {
            let mut tags = role_tags_for(cx.stack, cx.id, &name, region);
            tags.push((TAG_AUTO_FOR.to_string(), owner_kind.to_string()));
            cx.note(format!("creating role {name}"));
            let role = create_role_call(
                aws,
                &name,
                &auto_path(cx.stack, region),
                &trust,
                Some(&format!(
                    "Least-privilege role of {owner_kind} `{}` in stack `{}`, managed by securecart",
                    cx.id, cx.stack
                )),
                &tags,
            )
            .await?;
            (role.arn().to_string(), true)
        }
    };
    if fresh || auto_role_policy(aws, &arn).await?.as_ref() != Some(policy) {
        put_policy(aws, cx, &name, AUTO_POLICY, policy).await?;
    }
    Ok((arn, fresh))
}

/// The tags of a role of `stack` in `region`: the stack's, and the region's.
fn role_tags_for(stack: &str, id: &str, name: &str, region: &str) -> Vec<(String, String)> {
    let mut tags = common::tags(stack, id, name);
    tags.push((TAG_REGION.to_string(), region.to_string()));
    tags
}

/// Deletes the automatic role of `id` in this region (already gone is fine).
pub(super) async fn delete_auto_role(aws: &Aws, stack: &str, id: &str) -> Result<(), Error> {
    delete_role(aws, &auto_role_name(stack, id, &aws.region)).await
}

// ---------------------------------------------------------------------------------------
// The role a function or state machine runs as (`role: auto` or an ARN)
// ---------------------------------------------------------------------------------------

/// How long a just-created or changed role may stay unusable for the service that runs as
/// it (IAM is eventually consistent): terraform-provider-aws waits 2 minutes for IAM
/// propagation (hashicorp/terraform-provider-aws#47447).
const ROLE_PROPAGATION: Duration = Duration::from_secs(120);

/// The default of a `role` field: a least-privilege role of the resource's own.
pub(super) fn auto() -> String {
    AUTO.to_string()
}

/// True when a resource's role (`auto` or an ARN) is its automatic role or an `iam_role`
/// of the stack: one securecart has just granted what it holds.
pub(super) fn manages_role(role: &str, stack: &str) -> bool {
    role == AUTO || is_stack_role(role, stack)
}

/// The role a function or state machine runs as, in blueprint terms: `auto` with the
/// automatic role's policy, or a role's ARN (and no policy).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecRole {
    pub role: String,
    pub policy: Option<Json>,
}

impl ExecRole {
    /// The role ARN read from AWS: the stack's automatic role reads as `auto`, with its
    /// policy; an automatic role whose policy is gone reads as no policy (plan then
    /// restores it).
    pub fn of(role_arn: &str, stack: &str, region: &str, auto_policy: Option<Json>) -> Self {
        if is_auto_role(role_arn, stack, region) {
            ExecRole {
                role: AUTO.to_string(),
                policy: Some(auto_policy.unwrap_or(Json::Null)),
            }
        } else {
            ExecRole {
                role: role_arn.to_string(),
                policy: None,
            }
        }
    }

    /// Reads the role of a resource: the automatic role's policy costs one call.
    pub(super) async fn read(aws: &Aws, stack: &str, role_arn: &str) -> Result<Self, Error> {
        let policy = if is_auto_role(role_arn, stack, &aws.region) {
            auto_role_policy(aws, role_arn).await?
        } else {
            None
        };
        Ok(Self::of(role_arn, stack, &aws.region, policy))
    }
}

/// A service that runs resources as a role (Lambda, Step Functions): who assumes the
/// role, and how the service says it cannot use the role yet while IAM propagates.
pub(super) struct RoleUser {
    /// The kind of the resources (marks their automatic roles).
    pub kind: &'static str,
    /// What progress lines call one of them ("function").
    pub noun: &'static str,
    /// The service principal that assumes the role.
    pub service: &'static str,
    /// The answer while the service cannot assume the role yet: IAM propagation, whoever
    /// made the role.
    pub not_assumable: fn(&Error) -> bool,
    /// The answer while the role lacks a permission the service checks at create and
    /// update: it passes only on a role securecart has just granted it to.
    pub lacks_permission: fn(&Error) -> bool,
    /// What the progress line says while waiting.
    pub waiting: &'static str,
    /// What the role needs, added to the error when the wait ends on a missing permission.
    pub hint: &'static str,
}

impl RoleUser {
    /// Whether an error of a create or update will pass once IAM has propagated. A
    /// missing permission only passes on a role securecart granted it to (`managed_role`:
    /// the automatic role, or an `iam_role` of the stack that was just put); a role from
    /// outside the stack that lacks it keeps lacking it, so that fails at once.
    pub fn not_ready(&self, e: &Error, managed_role: bool) -> bool {
        (self.not_assumable)(e) || (managed_role && (self.lacks_permission)(e))
    }

    /// Runs a create or update of a resource running as `role`, retrying for up to
    /// [`ROLE_PROPAGATION`] while the service cannot use a role that IAM has only just
    /// created or changed.
    pub async fn retry<T, F, Fut>(&self, cx: &OpCx<'_>, role: &str, op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let managed = manages_role(role, cx.stack);
        common::retry_while(
            cx,
            |e| self.not_ready(e, managed),
            ROLE_PROPAGATION,
            self.waiting,
            op,
        )
        .await
        .map_err(|e| {
            if (self.lacks_permission)(&e) {
                common::with_hint(e, self.hint)
            } else {
                e
            }
        })
    }

    /// The ARN to run as: the automatic role (created or brought up to date with
    /// `policy`), or the role the blueprint names.
    pub async fn role_arn(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        role: &str,
        policy: Option<&Json>,
    ) -> Result<String, Error> {
        if role != AUTO {
            return Ok(role.to_string());
        }
        let policy =
            policy.ok_or_else(|| Error::Invalid("`role: auto` without a derived policy".into()))?;
        let (arn, _) = ensure_auto_role(aws, cx, self.kind, self.service, policy).await?;
        Ok(arn)
    }

    /// After an update from `role: auto` to a role of its own: the automatic role goes.
    /// So does the automatic role from before roles were per region, once the resource has
    /// moved off it (see [`drop_legacy_auto_role`]).
    pub async fn drop_unused_auto_role(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        old: &str,
        new: &str,
    ) -> Result<(), Error> {
        if old == AUTO && new != AUTO {
            cx.note(format!(
                "deleting the automatic role, which the {} no longer uses",
                self.noun
            ));
            delete_auto_role(aws, cx.stack, cx.id).await?;
        }
        drop_legacy_auto_role(aws, cx, old, new).await
    }
}

/// A resource that ran as its automatic role from before roles were per region (`old`, an
/// ARN under `/securecart/STACK/auto/`, read as a plain role so plan shows the move to
/// `auto`) and now runs as another: that role was this region's — its resource here used
/// it — and nothing of the stack uses it any more, so it goes rather than linger.
pub(crate) async fn drop_legacy_auto_role(
    aws: &Aws,
    cx: &OpCx<'_>,
    old: &str,
    new: &str,
) -> Result<(), Error> {
    if old != new && is_legacy_auto_role_of(old, cx.stack, cx.id) {
        let name = role_name_of(old);
        let tags = role_tags(aws, name).await?.unwrap_or_default();
        // Only the stack's own untagged-for-region role: one another region has since
        // claimed (tagged) is not ours to delete.
        if common::owned_id(&tags, cx.stack).as_deref() == Some(cx.id)
            && !tags.contains_key(TAG_REGION)
        {
            cx.note(format!(
                "deleting {name}, the automatic role from before roles were per region"
            ));
            delete_role(aws, name).await?;
        }
    }
    Ok(())
}

/// Roles made before roles were per region (`/securecart/STACK/`, no region tag), read by
/// `iam_role` in every region, stay in `live` only where a resource of this region uses
/// one (names its ARN): that is the region it was made for, which plan then moves to its
/// own per-region role (a replacement: the name changes) and deletes the old one after
/// re-pointing what used it. A legacy role no resource here uses is another region's, or
/// an orphan: never read, changed or deleted from here.
pub fn claim_legacy_roles(live: &mut Vec<crate::resources::Live>, stack: &str) {
    let legacy = legacy_path(stack);
    let is_legacy = |l: &crate::resources::Live| {
        l.kind == "iam_role" && path_of_arn(&l.physical_id) == Some(legacy.as_str())
    };
    let used: BTreeSet<String> = live
        .iter()
        .filter(|l| l.kind != "iam_role")
        .flat_map(|l| {
            let mut found = Vec::new();
            strings_in(&l.attrs, &mut found);
            found
        })
        .collect();
    live.retain(|l| !is_legacy(l) || used.contains(&l.physical_id));
}

fn strings_in(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::String(s) => out.push(s.clone()),
        Json::Array(a) => a.iter().for_each(|x| strings_in(x, out)),
        Json::Object(m) => m.values().for_each(|x| strings_in(x, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// The kind
// ---------------------------------------------------------------------------------------

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

/// The actions a statement names (one, or a list).
fn actions(statement: &Json) -> Vec<&str> {
    match statement.get("Action") {
        Some(Json::String(a)) => vec![a.as_str()],
        Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Actions of a statement that contain a wildcard.
fn wildcard_actions(statement: &Json) -> Vec<String> {
    let actions = actions(statement).into_iter();
    actions
        .filter(|a| a.contains('*'))
        .map(str::to_string)
        .collect()
}

/// IAM action matching: case-insensitive, `*` as a wildcard at the end (`xray:*`, `xray:Put*`).
fn action_matches(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match p.strip_suffix('*') {
        Some(prefix) => a.starts_with(prefix),
        None => p == a,
    }
}

/// True when the fields of an `iam_role` of the blueprint visibly allow every one of
/// `wanted`: in an Allow statement of an inline policy, or by attaching one of the AWS
/// managed policies named `managed`.
pub(super) fn role_config_allows(config: &Json, wanted: &[&str], managed: &[&str]) -> bool {
    let attached = config
        .get("managed_policies")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .any(|p| managed.iter().any(|m| p.ends_with(&format!(":policy/{m}"))));
    let statements: Vec<&Json> = config
        .get("policies")
        .and_then(Json::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|doc| match doc.get("Statement") {
            Some(Json::Array(a)) => a.iter().collect(),
            Some(st @ Json::Object(_)) => vec![st],
            _ => Vec::new(),
        })
        .filter(|st| st.get("Effect").and_then(Json::as_str) == Some("Allow"))
        .collect();
    let allowed = |action: &&str| {
        statements
            .iter()
            .any(|st| actions(st).iter().any(|a| action_matches(a, action)))
    };
    attached || wanted.iter().all(allowed)
}

/// Checks of one policy document; paths are relative to `at`.
pub(super) fn check_policy(doc: &Json, at: &str, out: &mut Vec<Issue>) {
    let Json::Object(m) = doc else {
        out.push(Issue::new(
            at,
            "a policy document is a mapping with `Statement`",
        ));
        return;
    };
    let statements = match m.get("Statement") {
        Some(Json::Array(a)) if !a.is_empty() => a.clone(),
        Some(o @ Json::Object(_)) => vec![o.clone()],
        _ => {
            out.push(
                Issue::new(at, "a policy document needs a non-empty `Statement`").help(
                    "e.g. `Statement: [{Effect: Allow, Action: [sqs:SendMessage], Resource: \"${orders.arn}\"}]`",
                ),
            );
            return;
        }
    };
    if let Some(v) = m.get("Version") {
        if !matches!(v.as_str(), Some("2012-10-17" | "2008-10-17")) {
            out.push(Issue::new(
                format!("{at}.Version"),
                "`Version` is `2012-10-17`",
            ));
        }
    }
    for (i, s) in statements.iter().enumerate() {
        let sp = if m.get("Statement").is_some_and(Json::is_array) {
            format!("{at}.Statement[{i}]")
        } else {
            format!("{at}.Statement")
        };
        let Json::Object(st) = s else {
            out.push(Issue::new(sp, "a statement is a mapping"));
            continue;
        };
        match st.get("Effect").and_then(Json::as_str) {
            Some("Allow" | "Deny") => {}
            _ => out.push(Issue::new(
                format!("{sp}.Effect"),
                "`Effect` is `Allow` or `Deny`",
            )),
        }
        if !st.contains_key("Action") && !st.contains_key("NotAction") {
            out.push(Issue::new(sp.clone(), "the statement has no `Action`"));
        }
        if !st.contains_key("Resource") && !st.contains_key("NotResource") {
            out.push(Issue::new(sp.clone(), "the statement has no `Resource`"));
        }
        if st.get("Effect").and_then(Json::as_str) == Some("Allow") {
            let wild = wildcard_actions(s);
            if !wild.is_empty() {
                out.push(
                    Issue::new(
                        format!("{sp}.Action"),
                        format!(
                            "wildcard action {} grants more than needed (security baseline: no wildcard actions, CKV_AWS_60/61 / cfn-nag F3)",
                            wild.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
                        ),
                    )
                    .help("list the exact actions, like `sqs:SendMessage`")
                    .warning(),
                );
            }
        }
    }
}

fn gone(e: &Error) -> bool {
    e.is_code(&["NoSuchEntity", "NoSuchEntityException"])
}

async fn list_roles(aws: &Aws, path: &str) -> Result<Vec<Role>, Error> {
    aws.iam
        .list_roles()
        .path_prefix(path)
        .max_items(1000)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(Error::from)
}

async fn get_role(aws: &Aws, name: &str) -> Result<Option<Role>, Error> {
    match aws
        .iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .map_err(Error::from)
    {
        Ok(o) => Ok(o.role().cloned()),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The role's tags, or `None` when it is gone.
async fn role_tags(aws: &Aws, name: &str) -> Result<Option<BTreeMap<String, String>>, Error> {
    let mut out = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = match aws
            .iam
            .list_role_tags()
            .role_name(name)
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(Error::from)
        {
            Err(e) if gone(&e) => return Ok(None),
            other => other?,
        };
        for t in page.tags() {
            out.insert(t.key().to_string(), t.value().to_string());
        }
        match page.marker() {
            Some(m) if page.is_truncated() && Some(m) != marker.as_deref() => {
                marker = Some(m.to_string())
            }
            _ => return Ok(Some(out)),
        }
    }
}

async fn attached_policies(aws: &Aws, role: &str) -> Result<Vec<String>, Error> {
    let items = aws
        .iam
        .list_attached_role_policies()
        .role_name(role)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?;
    Ok(items
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_string))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect())
}

async fn inline_policy_names(aws: &Aws, role: &str) -> Result<Vec<String>, Error> {
    aws.iam
        .list_role_policies()
        .role_name(role)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(Error::from)
}

async fn create_role_call(
    aws: &Aws,
    name: &str,
    path: &str,
    trust: &Json,
    description: Option<&str>,
    tags: &[(String, String)],
) -> Result<Role, Error> {
    let mut req = aws
        .iam
        .create_role()
        .role_name(name)
        .path(path)
        .assume_role_policy_document(trust.to_string());
    if let Some(d) = description {
        req = req.description(d);
    }
    for (k, v) in tags {
        req = req.tags(
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| Error::Invalid(e.to_string()))?,
        );
    }
    let out = req.send().await.map_err(Error::from)?;
    out.role().cloned().ok_or_else(|| Error::Aws {
        operation: "CreateRole".into(),
        code: None,
        message: format!("no role in the answer for `{name}`"),
    })
}

async fn update_trust(aws: &Aws, name: &str, trust: &Json) -> Result<(), Error> {
    aws.iam
        .update_assume_role_policy()
        .role_name(name)
        .policy_document(trust.to_string())
        .send()
        .await?;
    Ok(())
}

/// Runs a call on a role that may be seconds old: a role just created can be missing for
/// the other IAM calls for a moment. NoSuchEntity names either the new role (wait for it)
/// or a wrong policy ARN, which fails again after the short wait.
async fn on_new_role<F, Fut>(cx: &OpCx<'_>, op: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    common::retry_on(
        cx,
        &["NoSuchEntity"],
        IAM_SETTLE,
        "IAM does not show the new role everywhere yet",
        op,
    )
    .await
}

/// Deleting or detaching what is already gone is done.
fn done_if_gone<T>(r: Result<T, Error>) -> Result<(), Error> {
    match r {
        Err(e) if gone(&e) => Ok(()),
        other => other.map(|_| ()),
    }
}

async fn put_policy(
    aws: &Aws,
    cx: &OpCx<'_>,
    role: &str,
    name: &str,
    doc: &Json,
) -> Result<(), Error> {
    cx.note(format!("putting inline policy {name}"));
    on_new_role(cx, || async {
        aws.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(doc.to_string())
            .send()
            .await?;
        Ok(())
    })
    .await
}

async fn delete_policy(aws: &Aws, role: &str, name: &str) -> Result<(), Error> {
    let r = aws
        .iam
        .delete_role_policy()
        .role_name(role)
        .policy_name(name)
        .send()
        .await;
    done_if_gone(r.map_err(Error::from))
}

async fn attach(aws: &Aws, cx: &OpCx<'_>, role: &str, policy: &str) -> Result<(), Error> {
    cx.note(format!("attaching {policy}"));
    on_new_role(cx, || async {
        aws.iam
            .attach_role_policy()
            .role_name(role)
            .policy_arn(policy)
            .send()
            .await?;
        Ok(())
    })
    .await
}

async fn detach(aws: &Aws, role: &str, policy: &str) -> Result<(), Error> {
    let r = aws
        .iam
        .detach_role_policy()
        .role_name(role)
        .policy_arn(policy)
        .send()
        .await;
    done_if_gone(r.map_err(Error::from))
}

/// Detaches and deletes every policy of the role, then the role (already gone is fine).
async fn delete_role(aws: &Aws, name: &str) -> Result<(), Error> {
    let attached = match attached_policies(aws, name).await {
        Err(e) if gone(&e) => return Ok(()),
        other => other?,
    };
    for p in attached {
        detach(aws, name, &p).await?;
    }
    let inline = match inline_policy_names(aws, name).await {
        Err(e) if gone(&e) => return Ok(()),
        other => other?,
    };
    for p in inline {
        delete_policy(aws, name, &p).await?;
    }
    let r = aws.iam.delete_role().role_name(name).send().await;
    done_if_gone(r.map_err(Error::from))
}

/// `role: auto`: the resource gets a least-privilege role derived from what it refers to.
pub(crate) const AUTO: &str = "auto";

/// Checks a `role` field shared by functions and state machines: `auto`, or a role ARN
/// (a reference to an `iam_role` that `service` may assume).
pub(super) fn check_role(role: &str, service: &str, cx: &CheckCx, out: &mut Vec<Issue>) {
    if role == AUTO {
        return;
    }
    if is_literal(role) && !(role.starts_with("arn:") && role.contains(":role/")) {
        out.push(
            Issue::new("role", format!("`{role}` is not a role ARN"))
                .help("use `auto` for a least-privilege role of its own, or a reference like `${my_role.arn}`"),
        );
        return;
    }
    let Ok(pieces) = refs::scan(role) else { return };
    let [Piece::Ref(r)] = pieces.as_slice() else {
        return;
    };
    let Some(res) = cx.resources.get(&r.target) else {
        return;
    };
    if res.kind != "iam_role" {
        out.push(Issue::new(
            "role",
            format!("`{r}` is a {}, not an iam_role", res.kind),
        ));
        return;
    }
    if !matches!(r.attribute.as_deref(), None | Some("arn")) {
        out.push(
            Issue::new("role", format!("the role is given by its ARN, not `{r}`"))
                .help(format!("use `${{{}.arn}}`", r.target)),
        );
    }
    let services: Vec<String> = match res.config.get("service") {
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => return,
    };
    if services.iter().all(|s| is_literal(s)) && !services.iter().any(|s| s == service) {
        out.push(
            Issue::new(
                "role",
                format!("role `{}` cannot be assumed by {service}", r.target),
            )
            .help(format!(
                "add `{service}` to the `service` of `{}`",
                r.target
            )),
        );
    }
}

// ---- IAM scope (for `securecart permissions`) -----------------------------------------

/// The stack's roles: blueprint `iam_role`s and automatic roles, all under its path.
pub(super) const STACK_ROLES: &str = "arn:{partition}:iam::{account}:role/securecart/{stack}/*";

/// What managing the stack's roles calls: `iam_role`, and the kinds owning an automatic
/// role (`role: auto`). CreateRole with tags also needs iam:TagRole
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags_roles.html).
pub(super) const STACK_ROLE_ACCESS: &[Access] = &[
    Access::read(&["iam:ListRoles"]),
    Access::read_on(
        &[
            "iam:GetRole",
            "iam:GetRolePolicy",
            "iam:ListRolePolicies",
            "iam:ListAttachedRolePolicies",
            "iam:ListRoleTags",
        ],
        &[STACK_ROLES],
    ),
    Access::change(
        &[
            "iam:CreateRole",
            "iam:TagRole",
            "iam:PutRolePolicy",
            "iam:UpdateAssumeRolePolicy",
            "iam:AttachRolePolicy",
            "iam:DetachRolePolicy",
            "iam:DeleteRolePolicy",
        ],
        &[STACK_ROLES],
    ),
    Access::delete(
        &[
            "iam:DeleteRolePolicy",
            "iam:DetachRolePolicy",
            "iam:ListRolePolicies",
            "iam:DeleteRole",
        ],
        &[STACK_ROLES],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems of a blueprint of stack `shop` with these resources, as
    /// "Severity path: message" lines.
    fn problems(resources: &str) -> Vec<String> {
        crate::resources::testing::problems(&format!("name: shop\nresources:\n{resources}"))
    }

    #[test]
    fn policies_normalise_aws_reordering_away() {
        let ours = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "arn:aws:sqs:eu-west-1:1:q"},
            {"Effect": "Allow", "Action": ["lambda:InvokeFunction", "lambda:GetFunction"], "Resource": ["b", "a"],
             "Condition": {"Bool": {"aws:SecureTransport": true}}},
        ]});
        let theirs = json!({"Statement": [
            {"Resource": ["a", "b", "a"], "Condition": {"Bool": {"aws:SecureTransport": "true"}},
             "Action": ["lambda:GetFunction", "lambda:InvokeFunction"], "Effect": "Allow"},
            {"Resource": ["arn:aws:sqs:eu-west-1:1:q"], "Effect": "Allow", "Action": "sqs:SendMessage"},
        ], "Version": "2012-10-17"});
        assert_eq!(normalise_policy(&ours), normalise_policy(&theirs));
        // A single statement not in a list is the same policy as well.
        let one = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}});
        let listed = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["*"]}]});
        assert_eq!(normalise_policy(&one), normalise_policy(&listed));
        // Real differences stay.
        let other = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]});
        assert_ne!(normalise_policy(&one), normalise_policy(&other));
    }

    #[test]
    fn url_encoded_documents_are_read() {
        let doc = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22lambda.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";
        assert_eq!(
            parse_policy_text(doc),
            trust_policy(&["lambda.amazonaws.com".into()])
        );
        let plain = trust_policy(&["states.amazonaws.com".into()]).to_string();
        assert_eq!(
            parse_policy_text(&plain),
            trust_policy(&["states.amazonaws.com".into()])
        );
        assert_eq!(parse_policy_text("%7Bnot"), Json::String("%7Bnot".into()));
        // Encoded twice, as the emulator's ListRoles has it.
        let twice = Json::String(plain.clone()).to_string();
        assert_eq!(
            parse_policy_text(&twice),
            trust_policy(&["states.amazonaws.com".into()])
        );
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn grants_make_least_privilege_policies() {
        let mut g = Grants::default();
        grant_for_value(
            "arn:aws:lambda:eu-west-1:123456789012:function:shop-validate",
            &mut g,
        );
        grant_for_value(
            "https://sqs.eu-west-1.amazonaws.com/123456789012/shop-support",
            &mut g,
        );
        grant_for_value(
            "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/shop-customer",
            &mut g,
        );
        grant_for_value(
            "arn:aws:events:eu-west-1:123456789012:event-bus/shop",
            &mut g,
        );
        grant_for_value("just text", &mut g);
        grant_for_value("$.order_id", &mut g);
        let p = g.policy();
        let text = p.to_string();
        assert!(!text.contains("\"*\""), "{text}");
        assert!(!text.contains(":*\"") || text.contains("function:shop-validate:*"));
        let st = p["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 3, "{p:#}");
        let find = |action: &str| {
            st.iter()
                .find(|s| s["Action"] == action)
                .unwrap_or_else(|| panic!("no {action} in {p:#}"))["Resource"]
                .clone()
        };
        assert_eq!(
            find("lambda:InvokeFunction"),
            json!([
                "arn:aws:lambda:eu-west-1:123456789012:function:shop-validate",
                "arn:aws:lambda:eu-west-1:123456789012:function:shop-validate:*"
            ])
        );
        assert_eq!(
            find("sqs:SendMessage"),
            json!([
                "arn:aws:sqs:eu-west-1:123456789012:shop-support",
                "arn:aws:sqs:us-east-1:000000000000:shop-customer"
            ])
        );
        assert_eq!(
            find("events:PutEvents"),
            json!("arn:aws:events:eu-west-1:123456789012:event-bus/shop")
        );
        assert_eq!(g.policy(), normalise_policy(&g.policy()));
    }

    #[test]
    fn queue_urls_become_arns() {
        assert_eq!(
            queue_arn_of_url("https://eu-west-1.queue.amazonaws.com/123456789012/q").as_deref(),
            Some("arn:aws:sqs:eu-west-1:123456789012:q")
        );
        assert_eq!(
            queue_arn_of_url("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q").as_deref(),
            Some("arn:aws-cn:sqs:cn-north-1:123456789012:q")
        );
        assert_eq!(
            queue_arn_of_url("http://localhost:4566/000000000000/q").as_deref(),
            Some("arn:aws:sqs:*:000000000000:q")
        );
        assert_eq!(queue_arn_of_url("https://example.com/x"), None);
    }

    #[test]
    fn automatic_roles_are_recognised_in_their_region_only() {
        let arn = format!(
            "arn:aws:iam::123456789012:role{}{}",
            auto_path("shop", "eu-west-1"),
            auto_role_name("shop", "orders_rule", "eu-west-1")
        );
        assert_eq!(
            arn,
            "arn:aws:iam::123456789012:role/securecart/shop/eu-west-1/auto/shop-orders_rule-role-eu-west-1"
        );
        assert!(is_auto_role(&arn, "shop", "eu-west-1"));
        // The same stack's automatic role of another region is not this region's.
        assert!(!is_auto_role(&arn, "shop", "us-east-1"));
        assert!(!is_auto_role(&arn, "sho", "eu-west-1"));
        assert!(!is_auto_role(
            "arn:aws:iam::123456789012:role/securecart/shop/eu-west-1/shop-x-eu-west-1",
            "shop",
            "eu-west-1"
        ));
        // A stack named like a region cannot pass for another stack's path.
        assert!(!is_auto_role(&arn, "eu-west-1", "auto"));
        // The form from before roles were per region is no region's automatic role.
        let legacy = "arn:aws:iam::1:role/securecart/shop/auto/shop-orders_rule-role";
        assert!(!is_auto_role(legacy, "shop", "eu-west-1"));
        assert!(is_legacy_auto_role_of(legacy, "shop", "orders_rule"));
        assert!(!is_legacy_auto_role_of(legacy, "shop", "orders"));
        assert!(!is_legacy_auto_role_of(&arn, "shop", "orders_rule"));
    }

    /// IAM's limits: a role name is at most 64 characters of `[\w+=,.@-]`, a path at most
    /// 512 (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html). The
    /// longest stack (40 characters), a long id and the longest region still fit, keep the
    /// region whole and stay apart by region.
    #[test]
    fn role_names_fit_iam_and_differ_by_region() {
        let stack = "s".repeat(40);
        let id = "x".repeat(80);
        for region in [
            "us-east-1",
            "us-isof-south-1",
            "cn-northwest-1",
            "ap-southeast-5",
        ] {
            for name in [
                role_name(&stack, &id, region),
                auto_role_name(&stack, &id, region),
                role_name("shop", "r", region),
            ] {
                assert!(name.len() <= 64, "{name}");
                assert!(name.chars().all(iam_char), "{name}");
                assert!(name.ends_with(region), "{name}");
            }
            assert!(stack_path(&stack, region).len() <= 512);
        }
        assert_eq!(role_name("shop", "r", "us-east-1"), "shop-r-us-east-1");
        assert_ne!(
            role_name(&stack, &id, "us-east-1"),
            role_name(&stack, &id, "us-east-2")
        );
        assert_ne!(
            auto_role_name(&stack, &id, "eu-west-1"),
            auto_role_name(&stack, &format!("{id}y"), "eu-west-1")
        );
        assert_eq!(
            path_of_arn("arn:aws:iam::1:role/securecart/shop/eu-west-1/shop-r-eu-west-1"),
            Some("/securecart/shop/eu-west-1/")
        );
        assert_eq!(path_of_arn("arn:aws:iam::1:role/plain"), Some("/"));
        assert_eq!(path_of_arn("arn:aws:iam::1:user/u"), None);
    }

    #[test]
    fn a_role_of_another_region_is_refused_by_name() {
        let tags = |region: Option<&str>| {
            let mut t: BTreeMap<String, String> =
                common::tags("shop", "r", "n").into_iter().collect();
            if let Some(r) = region {
                t.insert(TAG_REGION.into(), r.into());
            }
            t
        };
        assert_eq!(
            owned_here(&tags(Some("eu-west-1")), "shop", "eu-west-1").as_deref(),
            Some("r")
        );
        assert_eq!(
            owned_here(&tags(Some("us-east-1")), "shop", "eu-west-1"),
            None
        );
        assert_eq!(owned_here(&tags(None), "shop", "eu-west-1"), None);
        let m = not_ours(
            "shop-r-eu-west-1",
            &tags(Some("us-east-1")),
            "shop",
            "eu-west-1",
        );
        assert!(
            m.contains("belongs to stack `shop` in region us-east-1"),
            "{m}"
        );
        let m = not_ours("shop-r-eu-west-1", &tags(None), "other", "eu-west-1");
        assert!(
            m.contains("is not stack `other`'s in region eu-west-1"),
            "{m}"
        );
    }

    /// A role from before roles were per region stays in `live` only where a resource of
    /// the region runs as it; in a region where nothing uses it, it is not read at all.
    #[test]
    fn legacy_roles_belong_to_the_region_that_uses_them() {
        use crate::resources::Live;
        let live = |kind: &'static str, id: &str, physical: &str, attrs: Json| Live {
            id: id.into(),
            kind,
            physical_id: physical.into(),
            attrs,
            outputs: BTreeMap::new(),
        };
        let legacy = "arn:aws:iam::1:role/securecart/shop/shop-runner";
        let legacy_other = "arn:aws:iam::1:role/securecart/shop/shop-idle";
        let here = "arn:aws:iam::1:role/securecart/shop/eu-west-1/shop-runner-eu-west-1";
        let mut all = vec![
            live("iam_role", "runner", legacy, json!({"name": "shop-runner"})),
            live(
                "iam_role",
                "idle",
                legacy_other,
                json!({"name": "shop-idle"}),
            ),
            live(
                "iam_role",
                "runner",
                here,
                json!({"name": "shop-runner-eu-west-1"}),
            ),
            live(
                "state_machine",
                "flow",
                "arn:aws:states:eu-west-1:1:stateMachine:shop-flow",
                json!({"role": legacy, "definition": {"States": {}}}),
            ),
        ];
        claim_legacy_roles(&mut all, "shop");
        let kept: Vec<&str> = all.iter().map(|l| l.physical_id.as_str()).collect();
        assert_eq!(
            kept,
            vec![
                legacy,
                here,
                "arn:aws:states:eu-west-1:1:stateMachine:shop-flow"
            ]
        );
        // In a region where no resource uses either, neither is read.
        let mut other = vec![
            live("iam_role", "runner", legacy, json!({})),
            live("iam_role", "idle", legacy_other, json!({})),
        ];
        claim_legacy_roles(&mut other, "shop");
        assert!(other.is_empty());
    }

    #[test]
    fn checks_fields() {
        let p = problems(concat!(
            "  r:\n    type: iam_role\n    service: [lambda, states.amazonaws.com]\n",
            "    managed_policies: [AdministratorAccess, 'arn:aws:iam::aws:policy/AdministratorAccess']\n",
            "    policies:\n      wide: {Statement: [{Effect: Allow, Action: 's3:*', Resource: '*'}]}\n",
            "      broken: {Statement: [{Effect: Maybe, Resource: x}]}\n",
            "      'bad name': {Statement: [{Effect: Allow, Action: s3:GetObject, Resource: x}]}\n",
            "  fn: {type: sqs_queue}\n  fn-role: {type: iam_role, service: lambda.amazonaws.com}\n",
        ));
        let at = |path: &str| {
            let at_path = format!(" {path}: ");
            let lines = p.iter().filter(|l| l.contains(&at_path));
            lines.map(String::as_str).collect::<Vec<_>>().join(" | ")
        };
        assert!(
            at("resources.r.service[0]").contains("not an AWS service principal"),
            "{p:?}"
        );
        assert!(at("resources.r.service[1]").is_empty(), "{p:?}");
        assert!(
            at("resources.r.managed_policies[0]").contains("not a managed policy ARN"),
            "{p:?}"
        );
        assert!(
            at("resources.r.managed_policies[1]").contains("every action"),
            "{p:?}"
        );
        assert!(
            at("resources.r.policies.wide.Statement[0].Action").contains("CKV_AWS_60/61"),
            "{p:?}"
        );
        assert!(
            at("resources.r.policies.broken.Statement[0].Effect").contains("`Allow` or `Deny`"),
            "{p:?}"
        );
        assert!(
            at("resources.r.policies.broken.Statement[0]").contains("no `Action`"),
            "{p:?}"
        );
        assert!(
            at("resources.r.policies.bad name").contains("policy name"),
            "{p:?}"
        );
        // `fn` is a queue, which has no automatic role: no clash.
        assert!(at("resources.fn-role").is_empty(), "{p:?}");
    }

    #[test]
    fn valid_role_has_no_problems() {
        let p = problems(concat!(
            "  q: {type: sqs_queue}\n",
            "  r:\n    type: iam_role\n    service: lambda.amazonaws.com\n",
            "    policies:\n      send: {Statement: [{Effect: Allow, Action: [sqs:SendMessage], Resource: '${q.arn}'}]}\n",
        ));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn managed_roles_are_the_auto_role_and_the_stacks_own() {
        assert!(manages_role(AUTO, "dev"));
        assert!(manages_role(
            "arn:aws:iam::1:role/securecart/dev/eu-west-1/dev-runner-eu-west-1",
            "dev"
        ));
        assert!(manages_role(
            "arn:aws:iam::1:role/securecart/dev/dev-runner",
            "dev"
        ));
        assert!(manages_role(
            "arn:aws:iam::1:role/securecart/dev/auto/dev-wf-role",
            "dev"
        ));
        assert!(!manages_role(
            "arn:aws:iam::1:role/securecart/prod/prod-runner",
            "dev"
        ));
        assert!(!manages_role("arn:aws:iam::1:role/ops-runner", "dev"));
    }

    #[test]
    fn a_role_read_from_aws_is_auto_only_when_it_is_the_stacks_automatic_role() {
        let auto = "arn:aws:iam::1:role/securecart/dev/us-east-1/auto/dev-wf-role-us-east-1";
        let policy = json!({"Version": "2012-10-17"});
        assert_eq!(
            ExecRole::of(auto, "dev", "us-east-1", Some(policy.clone())),
            ExecRole {
                role: AUTO.into(),
                policy: Some(policy.clone())
            }
        );
        // Its policy gone: no policy, which plan then restores.
        assert_eq!(
            ExecRole::of(auto, "dev", "us-east-1", None).policy,
            Some(Json::Null)
        );
        // Another stack's automatic role is just a role, and so is this stack's in
        // another region, and one from before roles were per region.
        for (arn, stack, region) in [
            (auto, "prod", "us-east-1"),
            (auto, "dev", "eu-west-1"),
            (
                "arn:aws:iam::1:role/securecart/dev/auto/dev-wf-role",
                "dev",
                "us-east-1",
            ),
        ] {
            assert_eq!(
                ExecRole::of(arn, stack, region, Some(policy.clone())),
                ExecRole {
                    role: arn.into(),
                    policy: None
                }
            );
        }
    }
}
