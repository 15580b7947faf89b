//! One view per command (as Terraform's `command/views`): text for people, or with `--json`
//! one document built from the typed structs below, so its shape is checked by the compiler
//! and by the snapshot tests rather than assembled by hand. Commands hand results here and
//! never print.

use std::collections::BTreeMap;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value as Json;

use super::out::stderr_is_terminal;
use crate::apply::ApplyResult;
use crate::aws::{Aws, CallCount};
use crate::blueprint::diagnostic::Problem;
use crate::blueprint::{Blueprint, Diagnostics, LoadError};
use crate::error::Error;
use crate::local::LocalStatus;
use crate::plan::Plan;
use crate::workflow::ExecutionView;

/// `--stats`, and `stats` in every `--json` document that talked to AWS.
#[derive(Debug, Clone, Serialize)]
pub struct RunStats {
    pub calls: Vec<CallCount>,
    pub total_calls: u64,
    pub mutating_calls: u64,
    pub retried_attempts: u64,
    /// Phase name → milliseconds, in the order the phases ran.
    pub phases_ms: IndexMap<String, u128>,
    #[serde(skip)]
    phases: Vec<(String, Duration)>,
}

impl RunStats {
    pub fn new(aws: &Aws, phases: &[(String, Duration)]) -> Self {
        Self::of(aws.stats.calls(), aws.stats.retries(), phases)
    }

    /// The totals come from the same `calls`, so they always add up.
    pub fn of(calls: Vec<CallCount>, retries: u64, phases: &[(String, Duration)]) -> Self {
        RunStats {
            total_calls: calls.iter().map(|c| c.count).sum(),
            mutating_calls: calls.iter().filter(|c| c.mutating).map(|c| c.count).sum(),
            calls,
            retried_attempts: retries,
            phases_ms: phases
                .iter()
                .map(|(p, d)| (p.clone(), d.as_millis()))
                .collect(),
            phases: phases.to_vec(),
        }
    }
}

#[derive(Serialize)]
pub struct ValidateDoc<'a> {
    pub valid: bool,
    pub name: &'a str,
    pub resources: usize,
    pub warnings: &'a [Problem],
}

#[derive(Serialize)]
pub struct PlanDoc<'a> {
    pub region: &'a str,
    pub plan: &'a Plan,
    /// Where `plan --out` saved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_to: Option<&'a str>,
    pub stats: &'a RunStats,
}

#[derive(Serialize)]
pub struct ApplyDoc<'a> {
    pub region: &'a str,
    pub plan: &'a Plan,
    /// `null` when there was nothing to do.
    pub apply: Option<&'a ApplyResult>,
    pub outputs: &'a BTreeMap<String, Json>,
    pub stats: &'a RunStats,
}

#[derive(Serialize)]
pub struct DestroyDoc<'a> {
    pub region: &'a str,
    pub plan: &'a Plan,
    /// `null` when there was nothing to delete.
    pub destroy: Option<&'a ApplyResult>,
    pub stats: &'a RunStats,
}

#[derive(Serialize)]
pub struct RunDoc<'a> {
    pub execution: &'a ExecutionView,
    pub stats: &'a RunStats,
}

#[derive(Serialize)]
pub struct ErrorDoc<'a> {
    pub error: &'a str,
}

/// An invalid blueprint under `--json`: every problem with its location.
#[derive(Serialize)]
pub struct InvalidDoc<'a> {
    /// Always "invalid blueprint".
    pub error: &'static str,
    pub file: &'a str,
    pub problems: &'a [Problem],
}

/// A document on stdout: indented, as people read it too.
fn pretty(doc: &impl Serialize) -> String {
    match serde_json::to_string_pretty(doc) {
        Ok(s) => s + "\n",
        // Only a map with non-string keys fails, and none of the documents has one.
        Err(e) => unencodable(e),
    }
}

/// A one-line document: the short answers scripts test with `jq -e`.
fn line(doc: &impl Serialize) -> String {
    match serde_json::to_string(doc) {
        Ok(s) => s + "\n",
        Err(e) => unencodable(e),
    }
}

fn unencodable(e: serde_json::Error) -> String {
    let msg = format!("cannot encode the output: {e}");
    format!("{}\n", serde_json::json!({ "error": msg }))
}

/// Where a view writes: the process's stdout and stderr, or (in tests) two in-memory
/// sinks that mask secrets exactly as the real ones do.
#[derive(Clone)]
enum Target {
    Console,
    #[cfg(test)]
    Memory(std::sync::Arc<std::sync::Mutex<Recorded>>),
}

/// What a view wrote, in tests: stdout and stderr as the user would see them.
#[cfg(test)]
pub(crate) struct Recorded {
    pub out: super::Sink<Vec<u8>>,
    pub err: super::Sink<Vec<u8>>,
}

/// What every command shows, as text or as `--json`.
#[derive(Clone)]
pub struct View {
    json: bool,
    stats: bool,
    to: Target,
}

impl View {
    pub fn new(json: bool, stats: bool) -> Self {
        View {
            json,
            stats,
            to: Target::Console,
        }
    }

    /// A view writing into memory, and what it wrote.
    #[cfg(test)]
    pub(crate) fn recording(
        json: bool,
        stats: bool,
    ) -> (Self, std::sync::Arc<std::sync::Mutex<Recorded>>) {
        let rec = std::sync::Arc::new(std::sync::Mutex::new(Recorded {
            out: super::Sink::new(Vec::new()),
            err: super::Sink::new(Vec::new()),
        }));
        let view = View {
            json,
            stats,
            to: Target::Memory(rec.clone()),
        };
        (view, rec)
    }

    fn out(&self, text: &str) {
        match &self.to {
            Target::Console => super::out(text),
            #[cfg(test)]
            Target::Memory(m) => m.lock().expect("recording").out.write(text),
        }
    }

    fn err(&self, text: &str) {
        match &self.to {
            Target::Console => super::err(text),
            #[cfg(test)]
            Target::Memory(m) => m.lock().expect("recording").err.write(text),
        }
    }

    /// Annotated diagnostics only on a terminal; plain `file:line:col` lines otherwise.
    fn fancy_err(&self) -> bool {
        matches!(self.to, Target::Console) && stderr_is_terminal()
    }

    fn stats_text(&self, st: &RunStats) {
        if self.stats {
            self.out(&super::stats_text(
                &st.calls,
                &st.phases,
                st.retried_attempts,
            ));
        }
    }

    /// Warnings of a blueprint that loaded (the `--json` documents carry them instead).
    pub fn warnings(&self, d: &Diagnostics) {
        if !self.json && !d.problems.is_empty() {
            self.err(&super::diagnostics(d, false));
        }
    }

    pub fn validate(&self, bp: &Blueprint) {
        if self.json {
            self.out(&line(&ValidateDoc {
                valid: true,
                name: &bp.name,
                resources: bp.resources.len(),
                warnings: &bp.warnings,
            }));
        } else {
            self.out(&format!(
                "{} is valid: {} resource(s), {} output(s).\n",
                bp.source.name,
                bp.resources.len(),
                bp.outputs.len()
            ));
        }
    }

    pub fn plan(
        &self,
        region: &str,
        plan: &Plan,
        show_unchanged: bool,
        saved_to: Option<&str>,
        stats: &RunStats,
    ) {
        if self.json {
            self.out(&pretty(&PlanDoc {
                region,
                plan,
                saved_to,
                stats,
            }));
        } else {
            self.out(&super::plan_text(plan, region, show_unchanged));
            if let Some(path) = saved_to {
                self.out(&format!(
                    "\nSaved this plan to {path}. `securecart apply {path}` applies exactly it \
                     (secret parameters must be given again).\n"
                ));
            }
            self.stats_text(stats);
        }
    }

    /// What apply or destroy is about to do, shown before asking.
    pub fn proposed(&self, region: &str, plan: &Plan) {
        if !self.json {
            self.out(&super::plan_text(plan, region, false));
        }
    }

    pub fn applied(&self, doc: &ApplyDoc<'_>) {
        if self.json {
            self.out(&pretty(doc));
        } else {
            if let Some(r) = doc.apply {
                self.out(&super::apply_summary(r, "apply"));
            }
            self.out(&outputs_text(doc.outputs));
            self.stats_text(doc.stats);
        }
    }

    pub fn destroyed(&self, doc: &DestroyDoc<'_>) {
        if self.json {
            self.out(&pretty(doc));
        } else {
            if let Some(r) = doc.destroy {
                self.out(&super::apply_summary(r, "destroy"));
            }
            self.stats_text(doc.stats);
        }
    }

    /// `graph`: DOT or Mermaid text, whatever `--json` says (there is no JSON form).
    pub fn graph(&self, text: &str) {
        self.out(text);
    }

    pub fn outputs(&self, outputs: &BTreeMap<String, Json>) {
        if self.json {
            self.out(&pretty(outputs));
        } else {
            self.out(&outputs_text(outputs));
        }
    }

    pub fn execution(&self, doc: &RunDoc<'_>) {
        if self.json {
            self.out(&pretty(doc));
        } else {
            self.out(&super::execution_text(doc.execution));
            self.stats_text(doc.stats);
        }
    }

    /// `local stop`: the sentence first, then (with `--json`) the status document.
    pub fn emulator_stopped(&self, was_running: bool) {
        if !self.json {
            self.out(if was_running {
                "The emulator is stopped.\n"
            } else {
                "The emulator was not running.\n"
            });
        }
    }

    /// `local start|status|stop`; `sentence` is false after `stop` has said its piece.
    pub fn emulator(&self, st: &LocalStatus, sentence: bool) {
        if self.json {
            self.out(&pretty(st));
            return;
        }
        if sentence {
            self.out(&emulator_text(st));
        }
    }

    pub fn schema(&self, schema: &Json) {
        self.out(&pretty(schema));
    }

    /// A failed command: located diagnostics for an invalid blueprint, one line otherwise.
    pub fn error(&self, e: &Error) {
        if let Error::Blueprint(LoadError::Invalid(d)) = e {
            if self.json {
                self.out(&line(&InvalidDoc {
                    error: "invalid blueprint",
                    file: &d.file.name,
                    problems: &d.problems,
                }));
            } else {
                self.err(&super::diagnostics(d, self.fancy_err()));
            }
            return;
        }
        let msg = e.to_string();
        if self.json {
            self.out(&line(&ErrorDoc { error: &msg }));
        } else {
            self.err(&format!("{}\n", super::error_line(&msg)));
        }
    }
}

/// The outputs block after apply, and what `outputs` prints.
pub fn outputs_text(outputs: &BTreeMap<String, Json>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if outputs.is_empty() {
        return s;
    }
    let _ = writeln!(s, "\nOutputs:");
    let w = outputs.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in outputs {
        let _ = writeln!(s, "  {k:<w$} = {}", super::value(v));
    }
    s
}

/// `local status` as sentences.
pub fn emulator_text(st: &LocalStatus) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if st.running {
        let _ = writeln!(
            s,
            "LocalStack {} is running at {} (pid {}).",
            st.version.as_deref().unwrap_or("?"),
            st.endpoint,
            st.pid.map(|p| p.to_string()).unwrap_or("?".into())
        );
        let _ = writeln!(s, "Services: {}", st.services.join(", "));
        let _ = writeln!(s, "Strict layer: {}", st.strict_summary());
    } else {
        let _ = writeln!(
            s,
            "The emulator is not running ({}).",
            if st.installed {
                "installed"
            } else {
                "not installed yet"
            }
        );
    }
    let _ = writeln!(
        s,
        "Install: {}\nLog: {}",
        st.install_dir.display(),
        st.log_file.display()
    );
    s
}
