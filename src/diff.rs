//! Comparing desired and live attributes: which differ, and which of them are sensitive.
//! Shared by the planner and by kinds that converge a leftover of an interrupted run, so
//! neither has to import the other.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value as Json;

/// Shown instead of any value that came from a secret parameter.
pub const SENSITIVE: &str = "(sensitive)";

/// One attribute that differs, before → after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub attribute: String,
    pub before: Json,
    pub after: Json,
    pub forces_replacement: bool,
    pub sensitive: bool,
}

/// Names of the attributes where `live` differs from `desired`: what an update must
/// change (also used when a create finds the resource an interrupted run made).
pub fn changed_attributes(desired: &Json, live: &Json) -> Vec<String> {
    diff(desired, live, &[], &Sensitivity::default())
        .into_iter()
        .map(|c| c.attribute)
        .collect()
}

/// What makes an attribute of one resource sensitive, so its before and after both show as
/// [`SENSITIVE`] — one rule for every kind and every action:
/// - its field holds a secret parameter (`fields`), or
/// - it is computed from such a field (`derived`: a digest of secret-bearing user data
///   would let anyone test guesses of the secret offline), or
/// - its value, before or after, contains a secret value (`values`): a secret next to
///   other text or next to a value known only after apply, under another attribute name.
#[derive(Debug, Clone, Copy)]
pub struct Sensitivity<'a> {
    pub fields: &'a BTreeSet<String>,
    pub values: &'a [String],
    pub derived: &'a [(&'static str, &'static [&'static str])],
}

static NO_FIELDS: BTreeSet<String> = BTreeSet::new();

impl Default for Sensitivity<'_> {
    fn default() -> Self {
        Sensitivity {
            fields: &NO_FIELDS,
            values: &[],
            derived: &[],
        }
    }
}

impl Sensitivity<'_> {
    /// Whether `attribute` is sensitive, with `values` its before and after.
    pub fn covers(&self, attribute: &str, values: &[&Json]) -> bool {
        if self.fields.contains(attribute) {
            return true;
        }
        if self
            .derived
            .iter()
            .any(|(a, from)| *a == attribute && from.iter().any(|f| self.fields.contains(*f)))
        {
            return true;
        }
        values.iter().any(|v| self.holds_secret(v))
    }

    fn holds_secret(&self, v: &Json) -> bool {
        match v {
            Json::String(s) => self
                .values
                .iter()
                .any(|x| !x.is_empty() && s.contains(x.as_str())),
            Json::Array(a) => a.iter().any(|x| self.holds_secret(x)),
            Json::Object(m) => m
                .iter()
                .any(|(k, x)| self.holds_secret(&Json::String(k.clone())) || self.holds_secret(x)),
            Json::Number(n) => self.values.iter().any(|x| *x == n.to_string()),
            _ => false,
        }
    }
}

/// Diffs `desired` against `live`, returning the attributes that differ.
pub fn diff(
    desired: &Json,
    live: &Json,
    replace_on: &[&str],
    secret: &Sensitivity<'_>,
) -> Vec<Change> {
    let mut out = Vec::new();
    let Some(d) = desired.as_object() else {
        return out;
    };
    for (k, after) in d {
        let before = live.get(k).cloned().unwrap_or(Json::Null);
        if &before == after {
            continue;
        }
        let sensitive = secret.covers(k, &[&before, after]);
        let masked = |v: Json| {
            if sensitive && !v.is_null() {
                Json::String(SENSITIVE.into())
            } else {
                v
            }
        };
        out.push(Change {
            attribute: k.clone(),
            before: masked(before),
            after: masked(after.clone()),
            forces_replacement: replace_on.contains(&k.as_str()),
            sensitive,
        });
    }
    out
}
