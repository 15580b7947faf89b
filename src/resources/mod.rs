//! AWS resource kinds: one file per kind implementing [`Kind`], all registered in
//! [`REGISTRY`]. Adding a kind means adding a file here and a line in that list.

mod asl;
mod autoscaling_group;
pub mod common;
mod db_instance;
mod db_read_replica;
mod db_subnet_group;
mod elbv2;
mod events;
mod fields;
mod iam_role;
mod internet_gateway;
mod lambda_function;
mod launch_template;
mod log_group;
mod route_table;
mod security_group;
mod sqs_queue;
mod state_machine;
mod subnet;
mod vpc;

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::aws::Aws;
use crate::blueprint::{CheckCx, Inlined, Issue};

pub use common::{aws_error, Error};

/// Tag carrying the stack name on everything securecart creates.
pub const TAG_STACK: &str = "securecart:stack";
/// Tag carrying the blueprint id of the resource.
pub const TAG_RESOURCE: &str = "securecart:resource";

/// Every kind securecart knows, in the order `schema` and help list them.
pub static REGISTRY: &[&dyn Kind] = &[
    &vpc::Vpc,
    &subnet::Subnet,
    &internet_gateway::InternetGateway,
    &route_table::RouteTable,
    &security_group::SecurityGroup,
    &sqs_queue::SqsQueue,
    &events::event_bus::EventBus,
    &events::event_rule::EventRule,
    &iam_role::IamRole,
    &log_group::LogGroupKind,
    &lambda_function::LambdaFunction,
    &state_machine::StateMachine,
    &launch_template::LaunchTemplate,
    &elbv2::load_balancer::LoadBalancer,
    &elbv2::target_group::TargetGroup,
    &elbv2::listener::Listener,
    &autoscaling_group::AutoscalingGroup,
    &db_subnet_group::DbSubnetGroup,
    &db_instance::DbInstance,
    &db_read_replica::DbReadReplica,
];

pub fn kind(name: &str) -> Option<&'static dyn Kind> {
    REGISTRY.iter().copied().find(|k| k.name() == name)
}

/// A resource as it exists in AWS, found by the stack's tags (or names).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Live {
    /// The blueprint id, from the `securecart:resource` tag.
    pub id: String,
    pub kind: &'static str,
    /// The id AWS knows it by (vpc-…, a queue URL, an ARN).
    pub physical_id: String,
    /// Normalised attributes, in the same shape that [`Kind::desired`] produces.
    pub attrs: Json,
    /// Values `${id.attribute}` resolves to.
    pub outputs: BTreeMap<String, Json>,
}

/// Context of one create / update / delete: who it is for and where progress goes.
pub struct OpCx<'a> {
    pub stack: &'a str,
    pub id: &'a str,
    pub progress: &'a (dyn Fn(String) + Send + Sync),
}

impl OpCx<'_> {
    pub fn note(&self, msg: impl Into<String>) {
        (self.progress)(msg.into())
    }
}

/// What a resource kind does: its fields, how they map to AWS, and the calls that
/// read, create, change and delete it.
#[async_trait]
pub trait Kind: Send + Sync {
    /// The `type:` of the kind in blueprints.
    fn name(&self) -> &'static str;

    /// Attributes `${id.attribute}` may name; the first one is what `${id}` means.
    fn attributes(&self) -> &'static [&'static str];

    /// JSON Schema of the fields (used for unknown-field checks and `securecart schema`).
    fn schema(&self) -> Json;

    /// Typed and semantic checks of the fields, without AWS.
    fn check(&self, id: &str, config: &Json, cx: &CheckCx) -> Vec<Issue>;

    /// The normalised attributes the resource should have, from its fields with
    /// references resolved (unknown ones hold [`crate::blueprint::refs::UNKNOWN`]).
    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String>;

    /// Like [`Kind::desired`], for kinds that read files beside the blueprint (user data,
    /// function code): `dir` is the blueprint's folder. The planner and executor call this.
    fn desired_in(
        &self,
        stack: &str,
        id: &str,
        config: &Json,
        _dir: &Path,
    ) -> Result<Json, String> {
        self.desired(stack, id, config)
    }

    /// The fields with the files they name read in (a state machine's `definition_file`),
    /// so references inside files are checked and become dependencies like inline ones.
    fn inline_files(&self, _config: &Json, _dir: &Path) -> Inlined {
        Inlined::default()
    }

    /// Outputs that an in-place update changes (a launch template's latest version):
    /// whatever refers to them is updated after it.
    fn volatile_outputs(&self) -> &'static [&'static str] {
        &[]
    }

    /// Rejects, at plan time, a change AWS cannot make at all (shrinking storage, say).
    fn check_change(&self, _live: &Json, _desired: &Json) -> Result<(), String> {
        Ok(())
    }

    /// Attributes AWS cannot change in place: a change to one replaces the resource.
    fn replace_on(&self) -> &'static [&'static str];

    /// Compared attributes computed from blueprint fields rather than copied from one (a
    /// digest of user data): `(attribute, fields)`. When one of those fields holds a secret,
    /// the attribute is shown as sensitive too (`plan::Sensitivity`).
    fn derived_attributes(&self) -> &'static [(&'static str, &'static [&'static str])] {
        &[]
    }

    /// Whether a replacement may make the new copy while the old one still exists, so
    /// that what uses the old one is re-pointed before it goes (AWS refuses to delete a
    /// target group a listener forwards to, or a security group an interface uses).
    /// Only used when something uses the resource; otherwise the old copy goes first.
    fn create_before_delete(&self) -> bool {
        false
    }

    /// The attribute holding a name AWS keeps unique (per account, region or VPC) and
    /// its longest length. A copy made before the old one goes takes the other of two
    /// names, `name` and [`common::alternate_name`]; either counts as the desired one.
    fn unique_name(&self) -> Option<(&'static str, usize)> {
        None
    }

    /// The names AWS knows the resource by that derive from its id, each with the
    /// namespace AWS keeps it unique in, e.g. `("load balancer name", name)`. A name AWS
    /// compares without case is given in lower case. Kinds without such names: none.
    fn physical_names(&self, _stack: &str, _id: &str, _config: &Json) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Security-baseline findings of the desired attributes, shown as plan warnings.
    fn warnings(&self, _desired: &Json) -> Vec<String> {
        Vec::new()
    }

    /// Everything of this kind that belongs to `stack`, with batched calls.
    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error>;

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error>;

    /// Brings `live` to `desired`; `changed` names the attributes that differ.
    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        desired: &Json,
        changed: &[String],
    ) -> Result<Live, Error>;

    /// Deletes and waits until it is gone (a resource already gone is success).
    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error>;
}

/// The registry seen by the blueprint layer, which knows nothing of AWS.
pub struct Catalog;

impl crate::blueprint::Catalog for Catalog {
    fn kinds(&self) -> Vec<&'static str> {
        REGISTRY.iter().map(|k| k.name()).collect()
    }

    fn has_kind(&self, name: &str) -> bool {
        kind(name).is_some()
    }

    fn attributes(&self, name: &str) -> &'static [&'static str] {
        kind(name).map(|k| k.attributes()).unwrap_or(&[])
    }

    fn schema(&self, name: &str) -> Json {
        kind(name).map(|k| k.schema()).unwrap_or(Json::Null)
    }

    fn check(&self, name: &str, id: &str, config: &Json, cx: &CheckCx) -> Vec<Issue> {
        kind(name)
            .map(|k| k.check(id, config, cx))
            .unwrap_or_default()
    }

    fn inline_files(&self, name: &str, config: &Json, dir: &Path) -> Inlined {
        kind(name).map_or_else(Inlined::default, |k| k.inline_files(config, dir))
    }

    fn physical_names(&self, name: &str, id: &str, config: &Json) -> Vec<(String, String)> {
        // A short stand-in stack: under the stack's own name a long id may be shortened
        // with a hash and escape the clash, which a shorter `--stack` would bring back.
        kind(name).map_or_else(Vec::new, |k| k.physical_names("s", id, config))
    }
}
