//! Saved plans (`plan --out FILE`, `apply FILE`): the plan with what it was computed from —
//! the blueprint's digest, the stack, region and account, and a digest of each live
//! resource — so that applying it later can refuse a plan the world has moved past.
//!
//! Why digests and not the live state itself: the file is meant to travel (a CI artifact,
//! a pull-request comment) and must not carry secrets. The plan inside is the one `plan
//! --json` shows, where sensitive values are already masked; secret parameters are left
//! out, so `apply FILE` needs them again (as `--var`), as it needs credentials.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::resources::Live;

/// The `format` of files this version writes and reads.
pub const FORMAT: &str = "securecart-plan/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedPlan {
    pub format: String,
    /// The securecart version that made it: another version may plan differently.
    pub securecart: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// The blueprint as it was given to `plan` (relative to where `plan` ran).
    pub blueprint: String,
    /// sha256 of the blueprint file's text.
    pub blueprint_sha256: String,
    pub stack: String,
    pub region: String,
    pub account: Option<String>,
    /// `--var` values of parameters that are not secret (secret ones are never written).
    pub vars: BTreeMap<String, String>,
    /// Each live resource the plan started from, `kind/id/physical id` → digest.
    pub live: BTreeMap<String, String>,
    /// The plan, as `plan --json` shows it (sensitive values masked).
    pub plan: Json,
}

/// Why a saved plan cannot be applied as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Stale {
    #[error("the plan was saved by securecart {0}, this is {1}: plan again with this version")]
    Version(String, String),
    #[error("the plan is for {what} `{saved}`, not `{now}`: drop the option or plan again")]
    Target {
        what: &'static str,
        saved: String,
        now: String,
    },
    #[error("the blueprint {0} changed since the plan was saved: plan again")]
    Blueprint(String),
    #[error("the live state moved since the plan was saved ({}): plan again", .0.join("; "))]
    Live(Vec<String>),
    #[error("the plan computed now differs from the saved one although blueprint and live state are the same (a changed parameter, inline file or lambda code?): plan again")]
    Plan,
}

/// What the saved plan is checked against: the same facts, gathered now.
pub struct Now<'a> {
    pub securecart: &'a str,
    pub blueprint_text: &'a str,
    pub blueprint: &'a str,
    pub stack: &'a str,
    pub region: &'a str,
    pub account: Option<&'a str>,
    pub live: &'a [Live],
    /// The plan computed now, serialized and masked as the saved one was.
    pub plan: &'a Json,
}

impl SavedPlan {
    pub fn new(now: &Now<'_>, vars: BTreeMap<String, String>, created_unix: u64) -> Self {
        SavedPlan {
            format: FORMAT.to_string(),
            securecart: now.securecart.to_string(),
            created_unix,
            blueprint: now.blueprint.to_string(),
            blueprint_sha256: sha256(now.blueprint_text.as_bytes()),
            stack: now.stack.to_string(),
            region: now.region.to_string(),
            account: now.account.map(str::to_string),
            vars,
            live: live_digests(now.live),
            plan: now.plan.clone(),
        }
    }

    /// Whether `text` is a saved plan rather than a blueprint: a JSON object of a known
    /// format. `Err` for a JSON object that says it is a saved plan but cannot be read.
    pub fn parse(text: &str) -> Option<Result<SavedPlan, String>> {
        let value: Json = serde_json::from_str(text).ok()?;
        let format = value.get("format")?.as_str()?;
        if !format.starts_with("securecart-plan/") {
            return None;
        }
        if format != FORMAT {
            return Some(Err(format!(
                "a saved plan of format `{format}`; this securecart reads `{FORMAT}`"
            )));
        }
        Some(serde_json::from_value(value).map_err(|e| format!("a damaged saved plan: {e}")))
    }

    /// The checks `apply FILE` makes before changing anything, in the order that names the
    /// most useful reason first.
    pub fn check(&self, now: &Now<'_>) -> Result<(), Stale> {
        if self.securecart != now.securecart {
            return Err(Stale::Version(
                self.securecart.clone(),
                now.securecart.to_string(),
            ));
        }
        let targets = [
            ("stack", &self.stack, Some(now.stack)),
            ("region", &self.region, Some(now.region)),
        ];
        for (what, saved, now) in targets {
            if let Some(now) = now.filter(|n| *n != saved.as_str()) {
                return Err(Stale::Target {
                    what,
                    saved: saved.clone(),
                    now: now.to_string(),
                });
            }
        }
        if let (Some(saved), Some(acct)) = (&self.account, now.account) {
            if saved != acct {
                return Err(Stale::Target {
                    what: "account",
                    saved: saved.clone(),
                    now: acct.to_string(),
                });
            }
        }
        if self.blueprint_sha256 != sha256(now.blueprint_text.as_bytes()) {
            return Err(Stale::Blueprint(self.blueprint.clone()));
        }
        let moved = moved(&self.live, &live_digests(now.live));
        if !moved.is_empty() {
            return Err(Stale::Live(moved));
        }
        if &self.plan != now.plan {
            return Err(Stale::Plan);
        }
        Ok(())
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a live resource is to the planner: its physical id and compared attributes.
/// Outputs are left out: some change on their own (an Auto Scaling group's instances)
/// without the plan depending on them.
fn live_digests(live: &[Live]) -> BTreeMap<String, String> {
    live.iter()
        .map(|l| {
            let key = format!("{}/{}/{}", l.kind, l.id, l.physical_id);
            (key, sha256(l.attrs.to_string().as_bytes()))
        })
        .collect()
}

/// The resources that appeared, went or changed, in words.
fn moved(saved: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    let name = |k: &str| {
        let mut p = k.splitn(3, '/');
        let (kind, id) = (p.next().unwrap_or_default(), p.next().unwrap_or_default());
        format!("{kind} `{id}`")
    };
    let mut out = Vec::new();
    for (k, d) in saved {
        match now.get(k) {
            None => out.push(format!("{} is gone", name(k))),
            Some(n) if n != d => out.push(format!("{} changed", name(k))),
            Some(_) => {}
        }
    }
    for k in now.keys().filter(|k| !saved.contains_key(*k)) {
        out.push(format!("{} appeared", name(k)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live(id: &str, attrs: Json) -> Live {
        Live {
            id: id.into(),
            kind: "sqs_queue",
            physical_id: format!("https://q/{id}"),
            attrs,
            outputs: Default::default(),
        }
    }

    fn now<'a>(text: &'a str, live: &'a [Live], plan: &'a Json) -> Now<'a> {
        Now {
            securecart: "1.0.0",
            blueprint_text: text,
            blueprint: "labs/01",
            stack: "dev",
            region: "eu-west-1",
            account: Some("123456789012"),
            live,
            plan,
        }
    }

    #[test]
    fn a_plan_applies_while_nothing_moved_and_not_after() {
        let plan = json!({"actions": [{"id": "q", "action": "update"}]});
        let l = vec![live("q", json!({"visibility_timeout": 30}))];
        let saved = SavedPlan::new(&now("name: x", &l, &plan), BTreeMap::new(), 1);
        assert_eq!(saved.check(&now("name: x", &l, &plan)), Ok(()));

        // The blueprint file changed.
        assert_eq!(
            saved.check(&now("name: y", &l, &plan)),
            Err(Stale::Blueprint("labs/01".into()))
        );
        // Someone changed, deleted or added a resource.
        let changed = vec![live("q", json!({"visibility_timeout": 60}))];
        let e = saved.check(&now("name: x", &changed, &plan)).unwrap_err();
        assert_eq!(e, Stale::Live(vec!["sqs_queue `q` changed".into()]));
        let e = saved.check(&now("name: x", &[], &plan)).unwrap_err();
        assert_eq!(e, Stale::Live(vec!["sqs_queue `q` is gone".into()]));
        let more = vec![l[0].clone(), live("r", json!({}))];
        let e = saved.check(&now("name: x", &more, &plan)).unwrap_err();
        assert!(e.to_string().contains("sqs_queue `r` appeared"), "{e}");
        // Same inputs, another plan (a changed --var, an inline file).
        let other = json!({"actions": []});
        assert_eq!(saved.check(&now("name: x", &l, &other)), Err(Stale::Plan));
    }

    #[test]
    fn another_stack_region_account_or_version_is_refused() {
        let plan = json!({});
        let saved = SavedPlan::new(&now("t", &[], &plan), BTreeMap::new(), 1);
        let mut n = now("t", &[], &plan);
        n.region = "us-east-1";
        let e = saved.check(&n).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the plan is for region `eu-west-1`, not `us-east-1`: drop the option or plan again"
        );
        let mut n = now("t", &[], &plan);
        n.account = Some("999999999999");
        assert!(matches!(
            saved.check(&n),
            Err(Stale::Target {
                what: "account",
                ..
            })
        ));
        let mut n = now("t", &[], &plan);
        n.securecart = "1.1.0";
        assert!(matches!(saved.check(&n), Err(Stale::Version(..))));
    }

    #[test]
    fn only_files_of_the_format_are_saved_plans() {
        let plan = json!({"a": 1});
        let saved = SavedPlan::new(&now("t", &[], &plan), BTreeMap::new(), 7);
        let text = serde_json::to_string(&saved).unwrap();
        assert_eq!(SavedPlan::parse(&text), Some(Ok(saved)));
        // A blueprint (YAML, or YAML that happens to be JSON) is not one.
        assert_eq!(SavedPlan::parse("name: shop\nresources: {}\n"), None);
        assert_eq!(SavedPlan::parse(r#"{"name": "shop"}"#), None);
        let future = SavedPlan::parse(r#"{"format": "securecart-plan/9"}"#);
        assert!(future.unwrap().unwrap_err().contains("securecart-plan/9"));
        let damaged = SavedPlan::parse(r#"{"format": "securecart-plan/1"}"#);
        assert!(damaged
            .unwrap()
            .unwrap_err()
            .starts_with("a damaged saved plan"));
    }
}
