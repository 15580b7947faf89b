//! The typed contract every kind is written on ([`Resource`]) and the one adapter
//! ([`Typed`]) that turns it into the planner's and executor's [`Kind`]: parsing, schema,
//! ownership by tag, adopting a leftover of an interrupted run and building [`Live`] are
//! done here once, so a kind file holds only what is particular to its AWS resource.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

use super::access::Access;
use super::common::{self, Error};
pub use super::Typical;
use super::{Kind, Live, OpCx};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Inlined, Issue};

/// What `desired` computed besides the compared attributes — a generated password, a
/// function's zip, a launch template's user data — carried as a value from the plan to
/// the create or update that sends it (never through process-global state).
#[derive(Clone, Default)]
pub struct Payload(Option<Arc<dyn Any + Send + Sync>>);

impl Payload {
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Payload(Some(Arc::new(value)))
    }

    /// The payload as the kind made it; `None` when there is none or it is another type.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.as_deref().and_then(|p| p.downcast_ref())
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Payloads hold secrets (passwords): never printed.
        f.write_str(if self.0.is_some() {
            "Payload(..)"
        } else {
            "Payload(none)"
        })
    }
}

/// The desired state of one resource: compared attributes (JSON, what plan shows and
/// diffs) and the payload its create or update sends.
#[derive(Debug, Clone)]
pub struct Desired {
    pub attrs: Json,
    pub payload: Payload,
}

impl Desired {
    /// Attributes without a payload.
    pub fn plain(attrs: Json) -> Self {
        Desired {
            attrs,
            payload: Payload::default(),
        }
    }
}

/// Where a desired state is computed: the stack, its region, the resource's id and the
/// blueprint's folder (for files a kind reads, like user data or function code).
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    pub stack: &'a str,
    pub region: &'a str,
    pub id: &'a str,
    pub dir: &'a Path,
}

/// A resource as AWS shows it, in the kind's terms: what [`Resource::observe`] makes of
/// what was read.
#[derive(Debug, Clone)]
pub struct Observed<A> {
    /// The id AWS knows it by (vpc-…, a queue URL, an ARN).
    pub physical_id: String,
    /// The compared attributes, in the shape [`Resource::desired`] produces.
    pub attrs: A,
    /// Values `${id.attribute}` resolves to.
    pub outputs: Vec<(&'static str, Json)>,
}

/// A resource found by name when a create met one already there: whose it is by its tags
/// (the blueprint id when they say it is of this stack) and what was read.
pub struct Found<R> {
    pub owner: Option<String>,
    pub raw: R,
}

/// The attributes an update is to change (those that differ between live and desired).
#[derive(Debug, Clone, Copy)]
pub struct Changed<'a>(pub &'a [String]);

impl Changed<'_> {
    pub fn has(&self, attribute: &str) -> bool {
        self.0.iter().any(|c| c == attribute)
    }

    pub fn any(&self, attributes: &[&str]) -> bool {
        attributes.iter().any(|a| self.has(a))
    }
}

/// How a create meets a copy of the resource that an interrupted run already made
/// (found by its name, since `read` ran before it existed or the run died between the
/// create and its tags being readable).
#[derive(Debug, Clone, Copy)]
pub enum Adopt {
    /// Nothing to meet: AWS names it (EC2 ids) or a client token makes creates idempotent.
    Never,
    /// Look by name before creating: the create call would overwrite a namesake
    /// (PutRule) or the name is not unique to AWS (a listener's port).
    LookFirst,
    /// Create, and look by name when AWS answers with one of these codes (name taken).
    OnCodes(&'static [&'static str]),
}

/// One AWS resource kind, typed: its blueprint fields, its compared attributes, the
/// payload its create sends and what reading it returns. The author writes the checks,
/// `desired`, `list`/`find`, `observe`, `create`, `update` and `delete`; [`Typed`] does
/// the rest. See `resources/README.md` for the recipe.
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// The `type:` of the kind in blueprints.
    const KIND: &'static str;
    /// Attributes `${id.attribute}` may name; the first one is what `${id}` means.
    const ATTRIBUTES: &'static [&'static str];
    /// Attributes AWS cannot change in place: a change to one replaces the resource.
    const REPLACE_ON: &'static [&'static str];
    /// Outputs an in-place update changes (see [`Kind::volatile_outputs`]).
    const VOLATILE_OUTPUTS: &'static [&'static str] = &[];
    /// Compared attributes computed from fields (see [`Kind::derived_attributes`]).
    const DERIVED: &'static [(&'static str, &'static [&'static str])] = &[];
    /// See [`Kind::create_before_delete`].
    const CREATE_BEFORE_DELETE: bool = false;
    /// See [`Kind::unique_name`].
    const UNIQUE_NAME: Option<(&'static str, usize)> = None;
    /// See [`Kind::zone_fields`].
    const ZONE_FIELDS: &'static [&'static str] = &[];
    /// How a leftover of an interrupted run is met (see [`Adopt`]).
    const ADOPT: Adopt = Adopt::Never;
    /// Whether adopting a leftover calls `update` even when nothing differs: for a kind
    /// whose update also waits until the resource is usable (an Auto Scaling group's
    /// instances InService), which the leftover of an interrupted create may not be yet.
    const UPDATE_ADOPTED: bool = false;
    /// The IAM actions the kind calls, by phase, with their resource scope and conditions
    /// (see [`Access`]): what `securecart permissions` grants. Groups of entries, so a
    /// kind can name what its service shares (`iam::STACK_ROLE_ACCESS`) beside its own.
    const ACCESS: &'static [&'static [Access]];
    /// How long a create, update and delete typically take on AWS, with where the figures
    /// come from in a comment: no default, every kind says.
    const TYPICAL: Typical;

    /// The blueprint fields; their doc comments are the schema's descriptions.
    type Fields: DeserializeOwned + schemars::JsonSchema;
    /// The compared attributes, in one shape for desired and live.
    type Attrs: Serialize + DeserializeOwned + Send + Sync;
    /// What `desired` computes for the create or update besides the attributes.
    type Payload: Send + Sync + 'static;
    /// What reading one resource returns (the SDK object, with what else was read).
    type Raw: Send + Sync;

    /// Semantic checks of parsed fields, without AWS (the parse is already checked).
    fn check(&self, _id: &str, _fields: &Self::Fields, _cx: &CheckCx) -> Vec<Issue> {
        Vec::new()
    }

    /// The attributes (and payload) the resource should have, from its fields with
    /// references resolved (unknown ones hold [`crate::blueprint::refs::UNKNOWN`]).
    fn desired(
        &self,
        site: &Site,
        fields: Self::Fields,
    ) -> Result<(Self::Attrs, Self::Payload), String>;

    /// See [`Kind::inline_files`].
    fn inline_files(&self, _config: &Json, _dir: &Path) -> Inlined {
        Inlined::default()
    }

    /// See [`Kind::check_change`].
    fn check_change(&self, _live: &Self::Attrs, _desired: &Self::Attrs) -> Result<(), String> {
        Ok(())
    }

    /// See [`Kind::physical_names`].
    fn physical_names(
        &self,
        _stack: &str,
        _id: &str,
        _fields: &Self::Fields,
    ) -> Vec<(String, String)> {
        Vec::new()
    }

    /// `desired` adjusted against the live copy (see [`Kind::against_live`]); `None`
    /// keeps it as it is.
    fn against_live(
        &self,
        _desired: &Self::Attrs,
        _payload: &Self::Payload,
        _live: &Self::Attrs,
    ) -> Option<Self::Attrs> {
        None
    }

    /// Security-baseline findings, shown as plan warnings.
    fn warnings(&self, _desired: &Self::Attrs) -> Vec<String> {
        Vec::new()
    }

    /// How the resource is named in a refusal: "a log group named `/securecart/dev/logs`".
    fn label(&self, desired: &Self::Attrs) -> String {
        let name = serde_json::to_value(desired)
            .ok()
            .and_then(|a| a.get("name").and_then(Json::as_str).map(String::from))
            .unwrap_or_default();
        format!("a {} named `{name}`", Self::KIND.replace('_', " "))
    }

    /// Everything of this kind tagged for `stack`, as (blueprint id, what was read), with
    /// batched calls.
    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self>;

    /// The resource `desired` names, found by that name, with its owner by tag; only
    /// called when [`Resource::ADOPT`] is not `Never`.
    async fn find(&self, _aws: &Aws, _stack: &str, _desired: &Self::Attrs) -> Lookup<Self> {
        Ok(None)
    }

    /// What was read, as attributes and outputs.
    fn observe(&self, raw: &Self::Raw) -> Observed<Self::Attrs>;

    /// Creates the resource (tagged for `cx.stack` and `cx.id`) and returns it as read
    /// back once usable.
    async fn create(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        desired: &Self::Attrs,
        payload: &Self::Payload,
    ) -> Result<Self::Raw, Error>;

    /// Brings `live` to `desired`. Returns the resource read back, or `None` when no
    /// output changed: the live copy then takes the desired attributes as they are.
    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        desired: &Self::Attrs,
        payload: &Self::Payload,
        changed: Changed<'_>,
    ) -> Result<Option<Self::Raw>, Error>;

    /// Deletes and waits until it is gone (a resource already gone is success).
    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error>;
}

/// What [`Resource::list`] returns: (blueprint id, what was read) for each resource.
pub type Listed<R> = Result<Vec<(String, <R as Resource>::Raw)>, Error>;

/// What [`Resource::find`] returns: the namesake found, if any.
pub type Lookup<R> = Result<Option<Found<<R as Resource>::Raw>>, Error>;

/// The adapter: any [`Resource`] as a [`Kind`]. The registry holds `&Typed(MyKind)`.
pub struct Typed<R>(pub R);

impl<R: Resource> Typed<R> {
    fn live(&self, id: String, raw: &R::Raw) -> Result<Live, Error> {
        let o = self.0.observe(raw);
        live_of::<R>(id, o)
    }

    fn payload<'a>(cx: &'a OpCx<'_>) -> Result<&'a R::Payload, Error> {
        cx.payload.get::<R::Payload>().ok_or_else(|| {
            Error::Invalid(format!(
                "internal error: `{}` was not planned in this run (no desired state to send)",
                cx.id
            ))
        })
    }

    /// Meets a copy found by name: ours from an interrupted run → converge it; anyone
    /// else's → refuse, never adopting or changing it.
    async fn adopt(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        found: Found<R::Raw>,
        desired: &R::Attrs,
        desired_json: &Json,
        payload: &R::Payload,
    ) -> Result<Live, Error> {
        if found.owner.as_deref() != Some(cx.id) {
            return Err(Error::Conflict(format!(
                "{} already exists and is not tagged as `{}` of stack `{}`; securecart does not \
                 adopt or change it: delete or rename it, or use another resource id",
                self.0.label(desired),
                cx.id,
                cx.stack
            )));
        }
        cx.note("found what an earlier, interrupted run created; bringing it up to date");
        let live = self.live(cx.id.to_string(), &found.raw)?;
        let changed = crate::diff::changed_attributes(desired_json, &live.attrs);
        if changed.is_empty() && !R::UPDATE_ADOPTED {
            return Ok(live);
        }
        let forcing: Vec<&str> = changed
            .iter()
            .map(String::as_str)
            .filter(|c| R::REPLACE_ON.contains(c))
            .collect();
        if !forcing.is_empty() {
            return Err(Error::Conflict(format!(
                "{} from an earlier run differs in {}, which cannot change in place: run plan \
                 and apply again to replace it",
                self.0.label(desired),
                forcing.join(", ")
            )));
        }
        self.converge(aws, cx, &live, desired, payload, &changed)
            .await
    }

    async fn converge(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        desired: &R::Attrs,
        payload: &R::Payload,
        changed: &[String],
    ) -> Result<Live, Error> {
        match self
            .0
            .update(aws, cx, live, desired, payload, Changed(changed))
            .await?
        {
            Some(raw) => self.live(cx.id.to_string(), &raw),
            None => Ok(Live {
                attrs: to_json(desired)?,
                ..live.clone()
            }),
        }
    }
}

/// The typed attributes of a live copy (which [`Typed`] built from them).
pub fn attrs_of<R: Resource>(live: &Live) -> Result<R::Attrs, Error> {
    common::from_desired(&live.attrs)
}

fn to_json<T: Serialize>(v: &T) -> Result<Json, Error> {
    serde_json::to_value(v).map_err(|e| Error::Invalid(format!("cannot encode attributes: {e}")))
}

fn live_of<R: Resource>(id: String, o: Observed<R::Attrs>) -> Result<Live, Error> {
    Ok(Live {
        id,
        kind: R::KIND,
        physical_id: o.physical_id,
        attrs: to_json(&o.attrs)?,
        outputs: o
            .outputs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<_, _>>(),
    })
}

#[async_trait]
impl<R: Resource> Kind for Typed<R> {
    fn name(&self) -> &'static str {
        R::KIND
    }

    fn attributes(&self) -> &'static [&'static str] {
        R::ATTRIBUTES
    }

    fn schema(&self) -> Json {
        common::schema_of::<R::Fields>()
    }

    fn check(&self, id: &str, config: &Json, cx: &CheckCx) -> Vec<Issue> {
        match common::parse::<R::Fields>(config) {
            Ok(f) => self.0.check(id, &f, cx),
            Err(i) => vec![i],
        }
    }

    fn desired_in(
        &self,
        stack: &str,
        region: &str,
        id: &str,
        config: &Json,
        dir: &Path,
    ) -> Result<Desired, String> {
        let fields: R::Fields = common::parse(config).map_err(|i| {
            if i.path.is_empty() {
                i.message
            } else {
                format!("{}: {}", i.path, i.message)
            }
        })?;
        let (attrs, payload) = self.0.desired(
            &Site {
                stack,
                region,
                id,
                dir,
            },
            fields,
        )?;
        Ok(Desired {
            attrs: serde_json::to_value(attrs).map_err(|e| e.to_string())?,
            payload: Payload::new(payload),
        })
    }

    fn inline_files(&self, config: &Json, dir: &Path) -> Inlined {
        self.0.inline_files(config, dir)
    }

    fn volatile_outputs(&self) -> &'static [&'static str] {
        R::VOLATILE_OUTPUTS
    }

    fn check_change(&self, live: &Json, desired: &Json) -> Result<(), String> {
        // Attributes holding a value known only after apply do not parse: nothing to check
        // yet (the apply checks again with everything known).
        match (
            serde_json::from_value::<R::Attrs>(live.clone()),
            serde_json::from_value::<R::Attrs>(desired.clone()),
        ) {
            (Ok(l), Ok(d)) => self.0.check_change(&l, &d),
            _ => Ok(()),
        }
    }

    fn replace_on(&self) -> &'static [&'static str] {
        R::REPLACE_ON
    }

    fn derived_attributes(&self) -> &'static [(&'static str, &'static [&'static str])] {
        R::DERIVED
    }

    fn create_before_delete(&self) -> bool {
        R::CREATE_BEFORE_DELETE
    }

    fn unique_name(&self) -> Option<(&'static str, usize)> {
        R::UNIQUE_NAME
    }

    fn zone_fields(&self) -> &'static [&'static str] {
        R::ZONE_FIELDS
    }

    fn access(&self) -> &'static [&'static [Access]] {
        R::ACCESS
    }

    fn typical(&self) -> Typical {
        R::TYPICAL
    }

    fn physical_names(&self, stack: &str, id: &str, config: &Json) -> Vec<(String, String)> {
        match common::parse::<R::Fields>(config) {
            Ok(f) => self.0.physical_names(stack, id, &f),
            Err(_) => Vec::new(),
        }
    }

    fn against_live(&self, desired: &Json, payload: &Payload, live: &Json) -> Json {
        let adjusted = match (
            serde_json::from_value::<R::Attrs>(desired.clone()),
            serde_json::from_value::<R::Attrs>(live.clone()),
            payload.get::<R::Payload>(),
        ) {
            (Ok(d), Ok(l), Some(p)) => self.0.against_live(&d, p, &l),
            _ => None,
        };
        adjusted
            .and_then(|a| serde_json::to_value(a).ok())
            .unwrap_or_else(|| desired.clone())
    }

    fn warnings(&self, desired: &Json) -> Vec<String> {
        serde_json::from_value::<R::Attrs>(desired.clone())
            .map(|d| self.0.warnings(&d))
            .unwrap_or_default()
    }

    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        let mut out = self
            .0
            .list(aws, stack)
            .await?
            .into_iter()
            .map(|(id, raw)| self.live(id, &raw))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| (&a.id, &a.physical_id).cmp(&(&b.id, &b.physical_id)));
        Ok(out)
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error> {
        let want: R::Attrs = common::from_desired(desired)?;
        let payload = Self::payload(cx)?;
        if let Adopt::LookFirst = R::ADOPT {
            if let Some(found) = self.0.find(aws, cx.stack, &want).await? {
                return self.adopt(aws, cx, found, &want, desired, payload).await;
            }
        }
        match self.0.create(aws, cx, &want, payload).await {
            Ok(raw) => self.live(cx.id.to_string(), &raw),
            Err(e) => match R::ADOPT {
                Adopt::OnCodes(codes) if e.is_code(codes) => {
                    match self.0.find(aws, cx.stack, &want).await? {
                        Some(found) => self.adopt(aws, cx, found, &want, desired, payload).await,
                        None => Err(e),
                    }
                }
                _ => Err(e),
            },
        }
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        desired: &Json,
        changed: &[String],
    ) -> Result<Live, Error> {
        let want: R::Attrs = common::from_desired(desired)?;
        let payload = Self::payload(cx)?;
        self.converge(aws, cx, live, &want, payload, changed).await
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        self.0.delete(aws, cx, live).await
    }
}
