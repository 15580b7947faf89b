//! The planner: a pure function from the desired blueprint and the live resources of a
//! stack to the actions (no-op, create, update, replace, delete) that reconcile them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub mod saved;

use serde::Serialize;
use serde_json::Value as Json;

pub use crate::diff::{changed_attributes, diff, Change, Sensitivity, SENSITIVE};

use crate::blueprint::refs::{self, Ref, Resolved, UNKNOWN};
use crate::blueprint::{Blueprint, Diagnostics, Problem};
use crate::graph::DepGraph;
use crate::resources::{Kind, Live};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::NoOp => "no change",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedAction {
    pub id: String,
    pub kind: String,
    pub action: Action,
    /// Why: what forces a replacement, what changes, or why something goes.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Blueprint ids this action waits for (creates and updates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// A replacement that makes the new copy first, re-points what uses the old one
    /// (those show as updates), then deletes the old one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub create_before_delete: bool,
    /// Index into the live resources this action starts from (update, replace, delete).
    #[serde(skip)]
    pub live: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    pub id: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Summary {
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.replace + self.delete > 0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub stack: String,
    pub actions: Vec<PlannedAction>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Warning>,
    pub summary: Summary,
    /// How long the apply will take on AWS (set by the caller: `apply::estimate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
}

/// The estimated wall time of an apply from each kind's typical AWS durations, and the
/// chain of steps that decides it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub seconds: u32,
    pub critical_path: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathStep {
    pub id: String,
    /// create, update or delete.
    pub action: &'static str,
    pub seconds: u32,
}

impl Plan {
    pub fn changes(&self) -> impl Iterator<Item = &PlannedAction> {
        self.actions.iter().filter(|a| a.action != Action::NoOp)
    }
}

/// Facts about the stack that `${stack.*}` references resolve to.
#[derive(Debug, Clone)]
pub struct StackInfo {
    pub name: String,
    pub region: String,
    pub account_id: Option<String>,
    /// The region's availability zones by name, in the order `${stack.zones[N]}` counts
    /// them; read only when the blueprint names zones (empty otherwise).
    pub zones: Vec<Zone>,
}

/// An availability zone: its name (mapped per account: `us-east-1a` here may be another
/// data centre than `us-east-1a` elsewhere) and its ID (the same everywhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub id: String,
}

impl StackInfo {
    pub fn lookup(&self, attr: Option<&str>) -> Option<Resolved> {
        let attr = attr?;
        let v = match attr {
            "name" => self.name.clone(),
            "region" => self.region.clone(),
            "account_id" => self.account_id.clone()?,
            "partition" => crate::partition::of(&self.region).id.to_string(),
            _ => match refs::split_index(attr) {
                Some(("zones", i)) => self.zones.get(i)?.name.clone(),
                _ => return None,
            },
        };
        Some(Resolved::Known(Json::String(v)))
    }

    /// Checks every zone the blueprint names against the region's zones and puts names in
    /// place of zone IDs (`use1-az1` → the name it has in this account): a
    /// `${stack.zones[N]}` past the last zone, or a name or ID the region lacks, is an
    /// error at that place naming the zones there are.
    pub fn place_zones(
        &self,
        bp: &mut Blueprint,
        kind_of: &dyn Fn(&str) -> Option<&'static dyn Kind>,
    ) -> Result<(), Diagnostics> {
        let listed = self
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| format!("[{i}] {} ({})", z.name, z.id))
            .collect::<Vec<_>>()
            .join(", ");
        let help = || {
            if self.zones.is_empty() {
                "no zone is available without opting in: try another region".to_string()
            } else {
                format!(
                    "the zones are {listed}; `${{stack.zones[N]}}` takes a position from 0 to {}",
                    self.zones.len() - 1
                )
            }
        };
        let mut problems = Vec::new();
        for (path, r) in bp.stack_references() {
            let Some((_, i)) = r
                .attribute
                .as_deref()
                .and_then(refs::split_index)
                .filter(|(name, _)| *name == "zones")
            else {
                continue;
            };
            if i >= self.zones.len() {
                let message = format!(
                    "`{r}`: region {} has {} availability zone(s) this account can use",
                    self.region,
                    self.zones.len()
                );
                problems.push(
                    Problem::error(message)
                        .with_help(Some(help()))
                        .at(&bp.source, &path, false),
                );
            }
        }
        for (id, field, value) in literal_zones(bp, kind_of) {
            let path = format!("resources.{id}.{field}");
            match self.zones.iter().find(|z| z.name == value || z.id == value) {
                Some(z) if z.id == value => {
                    if let Some(r) = bp.resources.get_mut(&id) {
                        r.config[field] = Json::String(z.name.clone());
                    }
                }
                Some(_) => {}
                None => problems.push(
                    Problem::error(format!(
                        "`{value}` is not an availability zone of {} that this account can use",
                        self.region
                    ))
                    .with_help(Some(help()))
                    .at(&bp.source, &path, false),
                ),
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Diagnostics {
            file: bp.source.clone(),
            problems,
            secrets: bp.secrets.clone(),
        })
    }
}

/// Zones written out (names or IDs) in the blueprint's zone fields, as (resource, field,
/// value); references are left to [`StackInfo::place_zones`]'s other check.
pub fn literal_zones(
    bp: &Blueprint,
    kind_of: &dyn Fn(&str) -> Option<&'static dyn Kind>,
) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    for r in bp.resources.values() {
        let Some(kind) = kind_of(&r.kind) else {
            continue;
        };
        for &field in kind.zone_fields() {
            let Some(v) = r.config.get(field).and_then(Json::as_str) else {
                continue;
            };
            let written = matches!(refs::scan(v), Ok(p) if p.iter().all(|p| matches!(p, refs::Piece::Lit(_))));
            if written {
                out.push((r.id.clone(), field, v.to_string()));
            }
        }
    }
    out
}

/// The value a reference takes, given the outputs known so far and the default
/// attribute of each kind. `None` outputs mean "only known after apply".
pub fn resolve_ref(
    r: &Ref,
    stack: &StackInfo,
    outputs: &HashMap<String, Option<BTreeMap<String, Json>>>,
    kind_of: &dyn Fn(&str) -> Option<&'static dyn Kind>,
    kinds: &HashMap<String, String>,
) -> Option<Resolved> {
    if r.target == refs::STACK {
        return stack.lookup(r.attribute.as_deref());
    }
    let kind = kind_of(kinds.get(&r.target)?)?;
    let attr = r.attribute.as_deref().unwrap_or(kind.attributes()[0]);
    match outputs.get(&r.target)? {
        None => Some(Resolved::Unknown),
        Some(o) => Some(
            o.get(attr)
                .cloned()
                .map(Resolved::Known)
                .unwrap_or(Resolved::Unknown),
        ),
    }
}

/// `desired` with the unique name the live copy has, when that is the alternate name of
/// the desired one (made by a create before delete): either name is the desired one.
pub fn keep_live_name(kind: &dyn Kind, desired: &Json, live: &Json) -> Json {
    let mut d = desired.clone();
    if let Some((attr, max)) = kind.unique_name() {
        if let (Some(want), Some(have)) = (
            desired.get(attr).and_then(Json::as_str),
            live.get(attr).and_then(Json::as_str),
        ) {
            if !refs::has_unknown(&Json::String(want.into()))
                && have == crate::resources::common::alternate_name(want, max)
            {
                d[attr] = Json::String(have.to_string());
            }
        }
    }
    d
}

/// `desired` for the new copy of a create before delete: the other of the two names,
/// so it can exist beside the old copy (which has `old`'s name).
pub fn replacement_name(kind: &dyn Kind, desired: &Json, old: &Json) -> Json {
    let mut d = desired.clone();
    if let Some((attr, max)) = kind.unique_name() {
        if let Some(want) = desired.get(attr).and_then(Json::as_str) {
            if old.get(attr).and_then(Json::as_str) == Some(want) {
                d[attr] = Json::String(crate::resources::common::alternate_name(want, max));
            }
        }
    }
    d
}

/// Builds the plan for `bp` against the live resources of the stack.
pub fn plan(
    stack: &StackInfo,
    bp: &Blueprint,
    live: &[Live],
    kind_of: &dyn Fn(&str) -> Option<&'static dyn Kind>,
) -> Plan {
    let mut actions = Vec::new();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let kinds: HashMap<String, String> = bp
        .resources
        .values()
        .map(|r| (r.id.clone(), r.kind.clone()))
        .collect();

    // Live resources by blueprint id. Several of one kind (an interrupted create before
    // delete leaves two) are ranked below: one is kept, the others are deleted.
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, l) in live.iter().enumerate() {
        by_id.entry(l.id.as_str()).or_default().push(i);
    }
    let mut claimed = vec![false; live.len()];

    let edges: Vec<(String, String)> = bp
        .resources
        .values()
        .flat_map(|r| r.dependencies().into_iter().map(move |d| (r.id.clone(), d)))
        .collect();
    let order = DepGraph::new(bp.resources.keys().cloned(), &edges)
        .order()
        .unwrap_or_else(|_| bp.resources.keys().cloned().collect());
    // What is in use: by a resource of the blueprint, or (by its id or ARN) by a live one.
    let used_in_bp: BTreeSet<&str> = edges.iter().map(|(_, d)| d.as_str()).collect();
    let live_deps = live_dependencies(live);
    let mut referenced = vec![false; live.len()];
    for deps in &live_deps {
        for &j in deps {
            referenced[j] = true;
        }
    }
    // Replacements whose old copy goes before the new one is made: what depends on them
    // cannot be made first (its old copy has to go before theirs).
    let mut delete_first: BTreeSet<String> = BTreeSet::new();

    let mut outputs: HashMap<String, Option<BTreeMap<String, Json>>> = HashMap::new();
    for id in order {
        let r = &bp.resources[&id];
        let Some(kind) = kind_of(&r.kind) else {
            continue;
        };
        let secret = Sensitivity {
            fields: &r.secret_fields,
            values: &bp.secrets,
            derived: kind.derived_attributes(),
        };
        let lookup = |rf: &Ref| resolve_ref(rf, stack, &outputs, kind_of, &kinds);
        let config = refs::substitute(&r.config, &lookup);
        let (desired, payload) =
            match kind.desired_in(&stack.name, &stack.region, &id, &config, &bp.dir) {
                Ok(d) => (d.attrs, d.payload),
                Err(e) => {
                    errors.push(Warning {
                        id: id.clone(),
                        message: e,
                    });
                    outputs.insert(id.clone(), None);
                    continue;
                }
            };
        let mut deps: Vec<String> = r.dependencies().into_iter().collect();
        deps.sort();
        let candidates: Vec<usize> = by_id
            .get(id.as_str())
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|&i| live[i].kind == r.kind)
                    .collect()
            })
            .unwrap_or_default();
        // Keep the copy that matches the blueprint best (nothing forcing a replacement,
        // then fewest changes), then the one in use, then the first by physical id.
        let ranked = candidates.iter().copied().min_by_key(|&i| {
            let d = keep_live_name(kind, &desired, &live[i].attrs);
            let changes = diff(&d, &live[i].attrs, kind.replace_on(), &secret);
            let forcing = changes.iter().filter(|c| c.forces_replacement).count();
            (forcing, changes.len(), !referenced[i], i)
        });
        let desired = match ranked {
            Some(li) => {
                let l = &live[li].attrs;
                kind.against_live(&keep_live_name(kind, &desired, l), &payload, l)
            }
            None => desired,
        };
        for w in kind.warnings(&desired) {
            warnings.push(Warning {
                id: id.clone(),
                message: w,
            });
        }
        let Some(li) = ranked else {
            actions.push(PlannedAction {
                id: id.clone(),
                kind: r.kind.clone(),
                action: Action::Create,
                reason: "not found in AWS".into(),
                physical_id: None,
                changes: diff(&desired, &Json::Null, &[], &secret),
                depends_on: deps,
                create_before_delete: false,
                live: None,
            });
            outputs.insert(id.clone(), None);
            continue;
        };
        claimed[li] = true;
        let l = &live[li];
        if let Err(e) = kind.check_change(&l.attrs, &desired) {
            errors.push(Warning {
                id: id.clone(),
                message: e,
            });
        }
        let changes = diff(&desired, &l.attrs, kind.replace_on(), &secret);
        let forcing: Vec<&str> = changes
            .iter()
            .filter(|c| c.forces_replacement)
            .map(|c| c.attribute.as_str())
            .collect();
        // Dependencies being replaced: this one is re-pointed to (or rebuilt on) the new copy.
        let replaced: Vec<&str> = deps
            .iter()
            .filter(|d| {
                actions
                    .iter()
                    .any(|a: &PlannedAction| &a.id == *d && a.action == Action::Replace)
            })
            .map(String::as_str)
            .collect();
        let mut create_before_delete = false;
        let (action, reason) = if changes.is_empty() {
            (Action::NoOp, "up to date".to_string())
        } else if !forcing.is_empty() {
            // Made first only where AWS allows two copies, something uses it, and nothing
            // it stands on goes first (that would wait for this old copy to go).
            create_before_delete = kind.create_before_delete()
                && (used_in_bp.contains(id.as_str()) || referenced[li])
                && !deps.iter().any(|d| delete_first.contains(d));
            if !create_before_delete {
                delete_first.insert(id.clone());
            }
            (
                Action::Replace,
                format!("{} cannot change in place", forcing.join(", ")),
            )
        } else {
            let names: Vec<&str> = changes.iter().map(|c| c.attribute.as_str()).collect();
            let mut why = format!("{} changes in place", names.join(", "));
            if !replaced.is_empty() {
                let new: Vec<String> = replaced.iter().map(|d| format!("`{d}`")).collect();
                why.push_str(&format!(" (re-pointed to the new {})", new.join(", ")));
            }
            (Action::Update, why)
        };
        let out = match action {
            Action::Replace => None,
            Action::Update => {
                let mut o = l.outputs.clone();
                for v in kind.volatile_outputs() {
                    o.insert(v.to_string(), Json::String(UNKNOWN.into()));
                }
                for c in &changes {
                    if o.contains_key(&c.attribute) {
                        o.insert(
                            c.attribute.clone(),
                            desired.get(&c.attribute).cloned().unwrap_or(Json::Null),
                        );
                    }
                }
                Some(o)
            }
            _ => Some(l.outputs.clone()),
        };
        outputs.insert(id.clone(), out);
        actions.push(PlannedAction {
            id: id.clone(),
            kind: r.kind.clone(),
            action,
            reason,
            physical_id: Some(l.physical_id.clone()),
            changes,
            depends_on: deps,
            create_before_delete,
            live: Some(li),
        });
    }

    for (i, l) in live.iter().enumerate() {
        if claimed[i] {
            continue;
        }
        // A part a kind keeps beside a resource under `OWNER/part` (a DB instance's stored
        // password, left by a run killed before the instance was made) stays while the
        // blueprint has its owner: the owner's create takes it up.
        if let Some((owner, part)) = l.id.split_once('/') {
            if kinds.get(owner).is_some_and(|k| k == l.kind) {
                actions.push(PlannedAction {
                    id: l.id.clone(),
                    kind: l.kind.to_string(),
                    action: Action::NoOp,
                    reason: format!("{part} of `{owner}`, kept for it"),
                    physical_id: Some(l.physical_id.clone()),
                    changes: Vec::new(),
                    depends_on: Vec::new(),
                    create_before_delete: false,
                    live: Some(i),
                });
                continue;
            }
        }
        let reason = match kinds.get(&l.id) {
            None => "no longer in the blueprint".to_string(),
            Some(k) if k != l.kind => format!("the blueprint declares `{}` as a {k} now", l.id),
            Some(_) => format!(
                "a duplicate of `{}` (another {} carries the same tags)",
                l.id, l.kind
            ),
        };
        actions.push(delete_action(l, i, reason));
    }
    let summary = summarize(&actions);
    Plan {
        stack: stack.name.clone(),
        actions,
        warnings,
        errors,
        summary,
        estimate: None,
    }
}

fn delete_action(l: &Live, i: usize, reason: String) -> PlannedAction {
    PlannedAction {
        id: l.id.clone(),
        kind: l.kind.to_string(),
        action: Action::Delete,
        reason,
        physical_id: Some(l.physical_id.clone()),
        changes: Vec::new(),
        depends_on: Vec::new(),
        create_before_delete: false,
        live: Some(i),
    }
}

fn summarize(actions: &[PlannedAction]) -> Summary {
    let mut summary = Summary::default();
    for a in actions {
        match a.action {
            Action::NoOp => summary.unchanged += 1,
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Replace => summary.replace += 1,
            Action::Delete => summary.delete += 1,
        }
    }
    summary
}

/// Destroy: every live resource of the stack goes.
pub fn destroy_plan(stack: &str, live: &[Live]) -> Plan {
    let actions: Vec<_> = live
        .iter()
        .enumerate()
        .map(|(i, l)| delete_action(l, i, "destroying the stack".into()))
        .collect();
    Plan {
        stack: stack.to_string(),
        summary: summarize(&actions),
        actions,
        warnings: Vec::new(),
        errors: Vec::new(),
        estimate: None,
    }
}

/// For each live resource, the other live resources it refers to (found by their ids,
/// ARNs or URLs inside its attributes): what must outlive it during deletes.
pub fn live_dependencies(live: &[Live]) -> Vec<BTreeSet<usize>> {
    // Only identities count: ids, ARNs, names and URLs. A zone or a CIDR in another
    // resource's attributes says nothing about what depends on what.
    const IDENTITIES: &[&str] = &["id", "arn", "name", "url"];
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, l) in live.iter().enumerate() {
        owner.insert(l.physical_id.as_str(), i);
        for (k, v) in &l.outputs {
            if let Some(s) = v.as_str() {
                if IDENTITIES.contains(&k.as_str()) && s != UNKNOWN && !s.is_empty() {
                    owner.entry(s).or_insert(i);
                }
            }
        }
    }
    live.iter()
        .enumerate()
        .map(|(i, l)| {
            let mut found = BTreeSet::new();
            strings(&l.attrs, &mut |s| {
                if let Some(&j) = owner.get(s) {
                    if j != i {
                        found.insert(j);
                    }
                }
            });
            found
        })
        .collect()
}

fn strings(v: &Json, f: &mut dyn FnMut(&str)) {
    match v {
        Json::String(s) => f(s),
        Json::Array(a) => a.iter().for_each(|x| strings(x, f)),
        Json::Object(m) => m.values().for_each(|x| strings(x, f)),
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests;
