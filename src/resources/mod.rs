//! AWS resource kinds: one folder per AWS service (`ec2/`, `rds/`, `iam/`, …) with one file
//! per kind written on the typed contract [`typed::Resource`] (the adapter [`typed::Typed`]
//! makes it a [`Kind`]), all registered in [`REGISTRY`]; how to add one: `README.md` here.
//! What the kinds of one service share (tags, find, wait, error matching) is in that service's `mod.rs`, as
//! terraform-provider-aws keeps find/status/wait beside each service; what every kind shares
//! is in `common` and `fields`. A kind never imports another kind (a test checks). Adding a
//! kind means a file in its service's folder and a line in the registry.

pub mod access;
mod autoscaling;
pub mod common;
mod ec2;
mod elbv2;
mod events;
mod iam;
mod lambda;
mod logs;
mod rds;
mod sfn;
mod sns;
mod sqs;

mod fields;
pub mod typed;

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::aws::Aws;
use crate::blueprint::{CheckCx, Inlined, Issue};

pub use common::Error;
pub use iam::claim_legacy_roles;
use typed::Typed;
pub use typed::{Desired, Payload};

/// Tag carrying the stack name on everything securecart creates.
pub const TAG_STACK: &str = "securecart:stack";
/// Tag carrying the blueprint id of the resource.
pub const TAG_RESOURCE: &str = "securecart:resource";

/// Every kind securecart knows, in the order `schema` and help list them.
pub static REGISTRY: &[&dyn Kind] = &[
    &Typed(ec2::vpc::Vpc),
    &Typed(ec2::subnet::Subnet),
    &Typed(ec2::internet_gateway::InternetGateway),
    &Typed(ec2::route_table::RouteTable),
    &Typed(ec2::security_group::SecurityGroup),
    &Typed(sqs::sqs_queue::SqsQueue),
    &Typed(sns::sns_topic::SnsTopic),
    &Typed(events::event_bus::EventBus),
    &Typed(events::event_rule::EventRule),
    &Typed(iam::iam_role::IamRole),
    &Typed(logs::log_group::LogGroupKind),
    &Typed(lambda::lambda_function::LambdaFunction),
    &Typed(sfn::state_machine::StateMachine),
    &Typed(ec2::launch_template::LaunchTemplate),
    &Typed(elbv2::load_balancer::LoadBalancer),
    &Typed(elbv2::target_group::TargetGroup),
    &Typed(elbv2::listener::Listener),
    &Typed(autoscaling::autoscaling_group::AutoscalingGroup),
    &Typed(rds::db_subnet_group::DbSubnetGroup),
    &Typed(rds::db_instance::DbInstance),
    &Typed(rds::db_read_replica::DbReadReplica),
];

/// The region [`Kind::desired`] computes in.
pub const TEST_REGION: &str = "us-east-1";

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

/// How long a create, an update and a delete of a kind typically take on AWS, in
/// seconds, waits included: what plan adds up into the apply's estimated time and
/// critical path (`apply::estimate`). Each kind declares its own, citing where the
/// figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typical {
    pub create: u32,
    pub update: u32,
    pub delete: u32,
}

impl Typical {
    /// One API call, no waiter.
    pub const API_CALL: Typical = Typical {
        create: 2,
        update: 2,
        delete: 2,
    };
}

/// Context of one create / update / delete: who it is for, what its desired state
/// computed besides attributes (see [`Payload`]) and where progress goes.
pub struct OpCx<'a> {
    pub stack: &'a str,
    pub id: &'a str,
    pub payload: &'a Payload,
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
    /// references resolved (unknown ones hold [`crate::blueprint::refs::UNKNOWN`]), and the
    /// payload its create or update sends; `dir` is the blueprint's folder, for kinds that
    /// read files beside it (user data, function code); `region` is the stack's (names that
    /// IAM keeps unique across regions carry it, ARNs take its partition). The planner and
    /// executor call this.
    fn desired_in(
        &self,
        stack: &str,
        _region: &str,
        id: &str,
        config: &Json,
        _dir: &Path,
    ) -> Result<Desired, String> {
        self.desired(stack, id, config).map(Desired::plain)
    }

    /// The attributes of [`Kind::desired_in`] in [`TEST_REGION`] for a blueprint in the
    /// current folder (what unit tests compare).
    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String> {
        self.desired_in(stack, TEST_REGION, id, config, Path::new("."))
            .map(|d| d.attrs)
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

    /// `desired` adjusted against the live copy it is compared with, for what only the
    /// pair can tell (whether a write-only password matches the record kept of it): the
    /// planner calls it once per matched resource before `check_change`, the diff and
    /// `warnings`, and the executor before an update. As it is by default.
    fn against_live(&self, desired: &Json, _payload: &Payload, _live: &Json) -> Json {
        desired.clone()
    }

    /// Top-level fields that name an availability zone: plan checks a name or ID written
    /// there against the region's zones and puts the zone's name in place of an ID.
    fn zone_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// The IAM actions the kind calls (see [`access::Access`]), for `securecart permissions`.
    fn access(&self) -> &'static [&'static [access::Access]];

    /// How long its create, update and delete typically take on AWS (see [`Typical`]).
    fn typical(&self) -> Typical {
        Typical::API_CALL
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

/// Helpers for the kinds' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::blueprint::{LoadError, SourceFile};

    /// Validates a blueprint; the error and warning messages, each prefixed with its path.
    pub(crate) fn problems(yaml: &str) -> Vec<String> {
        let file = SourceFile::new("t.yaml".to_string(), "t.yaml".into(), yaml.to_string());
        let diags = match crate::blueprint::parse(file, ".".into(), &[], &crate::resources::Catalog)
        {
            Ok(bp) => bp.warnings,
            Err(LoadError::Invalid(d)) => d.problems,
            Err(e) => panic!("{e}"),
        };
        diags
            .iter()
            .map(|p| {
                format!(
                    "{:?} {}: {}",
                    p.severity,
                    p.path.as_deref().unwrap_or(""),
                    p.message
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod layout_tests {
    use std::path::Path;

    /// Kinds import their service module and `common`, never another kind: shared code
    /// lives where every kind of the service finds it.
    #[test]
    fn no_kind_imports_another_kind() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/resources");
        let mut kinds = Vec::new();
        for svc in std::fs::read_dir(&root).expect("resources/") {
            let svc = svc.expect("entry").path();
            if !svc.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&svc).expect("service folder") {
                let f = f.expect("entry").path();
                let text = std::fs::read_to_string(&f).expect("source");
                if text.contains("impl Resource for ")
                    && f.file_name().is_some_and(|n| n != "mod.rs")
                {
                    kinds.push((f, text));
                }
            }
        }
        assert!(kinds.len() >= 20, "found {} kind files", kinds.len());
        let stems: Vec<String> = kinds
            .iter()
            .filter_map(|(f, _)| f.file_stem()?.to_str().map(String::from))
            .collect();
        let mut found = Vec::new();
        for (f, text) in &kinds {
            let rel = f.strip_prefix(&root).expect("under resources/");
            let rel = rel.to_string_lossy().replace('\\', "/");
            let me = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            for other in stems.iter().filter(|s| s.as_str() != me) {
                let imports = [format!("::{other}::"), format!("super::{other}")]
                    .iter()
                    .any(|p| {
                        text.lines()
                            .any(|l| !l.trim_start().starts_with("//") && l.contains(p.as_str()))
                    });
                if imports {
                    found.push((rel.clone(), other.clone()));
                }
            }
        }
        assert!(
            found.is_empty(),
            "kinds importing another kind (move the shared code into the service's mod.rs): {found:?}"
        );
    }

    /// One way to write a kind (the typed contract), and no process-global state: what a
    /// kind computes for a create travels as its payload, what a read found as attributes.
    #[test]
    fn kinds_are_typed_and_hold_no_global_state() {
        for (f, code) in resource_code() {
            for banned in [
                "impl Kind for",
                "static ",
                "OnceLock",
                "LazyLock",
                "thread_local!",
            ] {
                let hit = code.lines().any(|l| {
                    let l = l.trim_start();
                    // The registry is a constant table, not state.
                    !l.starts_with("//")
                        && l.contains(banned)
                        && !l.contains("'static")
                        && !l.starts_with("pub static REGISTRY")
                });
                assert!(!hit, "{} has `{banned}`", f.display());
            }
        }
    }

    /// Every Rust file under `src/resources/` with the code before its unit tests.
    fn resource_code() -> Vec<(std::path::PathBuf, String)> {
        let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src/resources")];
        let mut out = Vec::new();
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("dir") {
                let f = e.expect("entry").path();
                if f.is_dir() {
                    stack.push(f);
                } else if f.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&f).expect("source");
                    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                    out.push((f.clone(), code.to_string()));
                }
            }
        }
        out
    }

    /// ARNs take the region's partition (`arn:aws-cn:…` in China, `arn:aws-us-gov:…` in
    /// GovCloud): no ARN in the kinds' code is written for `aws` alone, managed policies
    /// included (`crate::partition`). Unit tests may spell ARNs out.
    #[test]
    fn no_arn_is_hard_coded_to_one_partition() {
        let mut found = Vec::new();
        for (f, code) in resource_code() {
            for (n, l) in code.lines().enumerate() {
                if l.contains("arn:aws:") || l.contains("\"arn:aws\"") {
                    found.push(format!("{}:{}: {}", f.display(), n + 1, l.trim()));
                }
            }
        }
        assert!(
            found.is_empty(),
            "ARNs written for the `aws` partition only (use `aws.partition()` or \
             `crate::partition::of(region)`):\n{}",
            found.join("\n")
        );
    }

    /// No cycles: kinds do not reach into the planner (the diff they share is `crate::diff`),
    /// and AWS calls' error mapping (`aws.rs`) knows nothing of kinds.
    #[test]
    fn kinds_do_not_import_the_planner_nor_aws_rs_the_kinds() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let code = |f: &Path| {
            let text = std::fs::read_to_string(f).expect("source");
            // The code, not its unit tests.
            match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        };
        let mut stack = vec![src.join("resources")];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("dir") {
                let f = e.expect("entry").path();
                if f.is_dir() {
                    stack.push(f);
                } else if f.extension().is_some_and(|x| x == "rs") {
                    assert!(
                        !code(&f).contains("crate::plan"),
                        "{} imports the planner",
                        f.display()
                    );
                }
            }
        }
        assert!(
            !code(&src.join("aws.rs")).contains("crate::resources"),
            "aws.rs imports resources"
        );
    }
}

/// Tests over the whole registry: what every kind must declare, checked for all of them.
#[cfg(test)]
mod registry_tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use serde_json::{json, Value as Json};

    use super::{REGISTRY, TEST_REGION};
    use crate::blueprint::refs::{self, Resolved};

    #[test]
    fn names_are_unique_and_every_kind_has_a_schema_and_a_readme_row() {
        let names: BTreeSet<&str> = REGISTRY.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), REGISTRY.len(), "two kinds share a name");
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .expect("README.md");
        let schema = crate::blueprint::schema::blueprint_schema(&super::Catalog).to_string();
        for k in REGISTRY {
            let s = k.schema();
            assert_eq!(
                s["type"],
                "object",
                "{}: its schema is not an object: {s}",
                k.name()
            );
            assert!(!k.attributes().is_empty(), "{}: no attributes", k.name());
            assert!(
                readme.contains(&format!("| `{}` |", k.name())),
                "{} has no row in the README's kinds table",
                k.name()
            );
            assert!(
                schema.contains(&format!("\"{}\"", k.name())),
                "{} is not in `securecart schema`",
                k.name()
            );
        }
    }

    /// `replace_on`, `derived_attributes` and `unique_name` name attributes that `desired`
    /// produces: a typo there would silently never replace or never mask. Checked on every
    /// resource of the shipped blueprints (plus a role, which none ships).
    #[test]
    fn declared_attributes_are_attributes_desired_produces() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        // Attributes are optional (a zone left out is not compared): the union over every
        // exercised configuration is what `desired` can produce.
        let mut produced: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
        let mut check = |kind: &'static dyn super::Kind, id: &str, config: &Json, dir: &Path| {
            let unknown = |_: &refs::Ref| Some(Resolved::Unknown);
            let config = refs::substitute(config, &unknown);
            let d = kind
                .desired_in("s", TEST_REGION, id, &config, dir)
                .unwrap_or_else(|e| panic!("{}: desired of `{id}`: {e}", kind.name()))
                .attrs;
            produced
                .entry(kind.name())
                .or_default()
                .extend(d.as_object().expect("an object").keys().cloned());
        };
        let mut files: Vec<_> = std::fs::read_dir(root.join("blueprints"))
            .expect("blueprints/")
            .map(|e| e.expect("entry").path())
            .collect();
        for lab in ["labs/01", "labs/02", "labs/03"] {
            files.push(root.join(lab).join("blueprint.yaml"));
        }
        for f in files {
            let bp = crate::blueprint::load(&f, &[], &super::Catalog)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            for r in bp.resources.values() {
                let kind = super::kind(&r.kind).expect("registered");
                check(kind, &r.id, &r.config, &bp.dir);
                if r.kind == "db_instance" {
                    // No shipped primary pins a zone (Multi-AZ or RDS's choice).
                    let mut pinned = r.config.clone();
                    pinned["availability_zone"] = json!("us-east-1a");
                    check(kind, &r.id, &pinned, &bp.dir);
                }
            }
        }
        let role = super::kind("iam_role").expect("iam_role");
        check(
            role,
            "role",
            &json!({"service": "lambda.amazonaws.com"}),
            root,
        );
        for kind in REGISTRY {
            let Some(keys) = produced.get(kind.name()) else {
                panic!("no shipped blueprint exercises `{}`", kind.name());
            };
            let unique = kind.unique_name();
            let declared = kind
                .replace_on()
                .iter()
                .chain(kind.derived_attributes().iter().map(|(a, _)| a))
                .chain(unique.iter().map(|(a, _)| a));
            for a in declared {
                assert!(
                    keys.contains(*a),
                    "{}: `{a}` is declared but desired produces only {keys:?}",
                    kind.name()
                );
            }
        }
    }
}

/// Names as the ELB kinds make them, for the permissions tests.
#[cfg(test)]
pub(crate) fn elbv2_name_for_tests(stack: &str, id: &str) -> String {
    elbv2::elb_name(stack, id)
}

/// DB instance identifiers as the RDS kinds make them, for the permissions tests.
#[cfg(test)]
pub(crate) fn rds_name_for_tests(stack: &str, id: &str) -> String {
    rds::rds_name(stack, id, 63)
}
