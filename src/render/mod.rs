//! Everything users see: plans, summaries, statistics and diagnostics as text, the views of
//! each command (`views`), the progress reporters, and the one door to stdout and stderr
//! (`out`), which masks secrets and survives a closed pipe. The only module that touches
//! colours, indicatif, stdout or stderr.

mod out;
mod progress;
pub mod views;

use std::fmt::Write as _;
use std::time::Duration;

use console::Style;
use serde_json::Value as Json;

pub use out::{
    ask, err, install_panic_hook, lost_output, out, stdin_is_terminal, stdout_is_terminal, Sink,
};
pub use progress::{LineReporter, ProgressReporter};
pub use views::View;

use crate::apply::ApplyResult;
use crate::aws::CallCount;
use crate::blueprint::diagnostic::ProblemReport;
use crate::blueprint::refs::UNKNOWN;
use crate::blueprint::Diagnostics;
use crate::plan::{Action, Estimate, Plan, PlannedAction};
use crate::report::Outcome;

/// Turns colours off everywhere (--no-color, NO_COLOR, or not a terminal).
pub fn set_color(enabled: bool) {
    console::set_colors_enabled(enabled);
    console::set_colors_enabled_stderr(enabled);
}

fn style(a: Action) -> (Style, &'static str) {
    match a {
        Action::Create => (Style::new().green(), "+"),
        Action::Update => (Style::new().yellow(), "~"),
        Action::Replace => (Style::new().magenta(), "±"),
        Action::Delete => (Style::new().red(), "-"),
        Action::NoOp => (Style::new().dim(), " "),
    }
}

/// A value as a short human string: strings bare, everything else as compact JSON.
pub fn value(v: &Json) -> String {
    match v {
        Json::Null => "(none)".into(),
        Json::String(s) if s == UNKNOWN => s.clone(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The plan as text: one block per change, then warnings and a summary line.
pub fn plan_text(plan: &Plan, region: &str, show_unchanged: bool) -> String {
    let mut s = String::new();
    let bold = Style::new().bold();
    let dim = Style::new().dim();
    let _ = writeln!(
        s,
        "{} {} {}",
        bold.apply_to("Stack"),
        bold.apply_to(&plan.stack),
        dim.apply_to(format!("({region})"))
    );
    let width = plan.actions.iter().map(|a| a.id.len()).max().unwrap_or(0);
    for a in &plan.actions {
        if a.action == Action::NoOp && !show_unchanged {
            continue;
        }
        action_block(&mut s, a, width);
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(s, "\n{}", Style::new().yellow().bold().apply_to("Warnings"));
        for w in &plan.warnings {
            let _ = writeln!(
                s,
                "  {} {}: {}",
                Style::new().yellow().apply_to("!"),
                w.id,
                w.message
            );
        }
    }
    if !plan.errors.is_empty() {
        let _ = writeln!(s, "\n{}", Style::new().red().bold().apply_to("Errors"));
        for w in &plan.errors {
            let _ = writeln!(
                s,
                "  {} {}: {}",
                Style::new().red().apply_to("✗"),
                w.id,
                w.message
            );
        }
    }
    let _ = writeln!(s, "\n{}", summary_line(plan));
    if let Some(e) = &plan.estimate {
        let _ = writeln!(s, "{}", dim.apply_to(estimate_line(e)));
    }
    s
}

/// "Estimated time on AWS: ≈ 19 min; critical path: vpc → db (9 min) → replica (11 min)".
pub fn estimate_line(e: &Estimate) -> String {
    let path: Vec<String> = e
        .critical_path
        .iter()
        .map(|p| {
            let verb = if p.action == "create" {
                String::new()
            } else {
                format!("{} ", p.action)
            };
            if p.seconds >= 60 {
                format!("{verb}{} ({})", p.id, duration_words(p.seconds))
            } else {
                format!("{verb}{}", p.id)
            }
        })
        .collect();
    format!(
        "Estimated time on AWS: ≈ {}; critical path: {}",
        duration_words(e.seconds),
        path.join(" → ")
    )
}

/// Seconds below a minute, whole minutes above.
fn duration_words(secs: u32) -> String {
    if secs < 60 {
        format!("{secs} s")
    } else {
        format!("{} min", (secs + 30) / 60)
    }
}

fn action_block(s: &mut String, a: &PlannedAction, width: usize) {
    let (st, sym) = style(a.action);
    let dim = Style::new().dim();
    let _ = writeln!(
        s,
        "  {} {:<7} {:<width$}  {:<16} {}",
        st.apply_to(sym),
        st.apply_to(a.action.verb()),
        a.id,
        dim.apply_to(&a.kind),
        dim.apply_to(&a.reason),
        width = width
    );
    if a.create_before_delete {
        let _ = writeln!(
            s,
            "      {}",
            st.apply_to(
                "replace (create before delete): the new copy is made first, what uses the old \
                 one is re-pointed to it, then the old one is deleted"
            )
        );
    }
    if a.action == Action::Delete {
        if let Some(p) = &a.physical_id {
            let _ = writeln!(s, "      {}", dim.apply_to(p));
        }
        return;
    }
    let aw = a
        .changes
        .iter()
        .map(|c| c.attribute.len())
        .max()
        .unwrap_or(0);
    for c in &a.changes {
        let forced = if c.forces_replacement {
            Style::new()
                .magenta()
                .apply_to(" (forces replacement)")
                .to_string()
        } else {
            String::new()
        };
        let long = |v: &Json| (v.is_object() || v.is_array()) && value(v).len() > LONG;
        if long(&c.after) || long(&c.before) {
            // Policies, definitions, rule lists: one line each would be unreadable, so
            // they show as indented JSON, and a change as a line diff of it.
            let _ = writeln!(s, "      {}{}", c.attribute, forced);
            if a.action == Action::Create || c.before.is_null() {
                for line in pretty(&c.after).lines() {
                    let _ = writeln!(s, "          {line}");
                }
            } else {
                json_diff(s, &c.before, &c.after);
            }
        } else if a.action == Action::Create {
            let _ = writeln!(
                s,
                "      {:<aw$}  {}",
                c.attribute,
                value(&c.after),
                aw = aw
            );
        } else {
            let _ = writeln!(
                s,
                "      {:<aw$}  {} → {}{}",
                c.attribute,
                dim.apply_to(value(&c.before)),
                value(&c.after),
                forced,
                aw = aw
            );
        }
    }
}

/// Values longer than this print as indented JSON rather than on one line.
const LONG: usize = 72;

fn pretty(v: &Json) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// The changed lines of two JSON values, with two lines of context around each change.
fn json_diff(s: &mut String, before: &Json, after: &Json) {
    let (b, a) = (pretty(before), pretty(after));
    let diff = similar::TextDiff::from_lines(&b, &a);
    for (i, group) in diff.grouped_ops(2).iter().enumerate() {
        if i > 0 {
            let _ = writeln!(s, "          {}", Style::new().dim().apply_to("…"));
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let line = change.value().trim_end_matches('\n');
                let _ = match change.tag() {
                    similar::ChangeTag::Delete => writeln!(
                        s,
                        "        {}",
                        Style::new().red().apply_to(format!("- {line}"))
                    ),
                    similar::ChangeTag::Insert => writeln!(
                        s,
                        "        {}",
                        Style::new().green().apply_to(format!("+ {line}"))
                    ),
                    similar::ChangeTag::Equal => {
                        writeln!(s, "          {}", Style::new().dim().apply_to(line))
                    }
                };
            }
        }
    }
}

pub fn summary_line(plan: &Plan) -> String {
    let m = &plan.summary;
    if !m.has_changes() {
        return format!("No changes. {} resource(s) up to date.", m.unchanged);
    }
    format!(
        "Plan: {} to create, {} to update, {} to replace, {} to delete, {} unchanged.",
        Style::new().green().apply_to(m.create),
        Style::new().yellow().apply_to(m.update),
        Style::new().magenta().apply_to(m.replace),
        Style::new().red().apply_to(m.delete),
        m.unchanged
    )
}

/// After apply or destroy: counts, then every failure and skip with its reason.
pub fn apply_summary(r: &ApplyResult, verb: &str) -> String {
    let mut s = String::new();
    let done = r
        .steps
        .iter()
        .filter(|x| matches!(x.outcome, Outcome::Done))
        .count();
    let failed: Vec<_> = r.failed().collect();
    let skipped: Vec<_> = r
        .steps
        .iter()
        .filter(|x| matches!(x.outcome, Outcome::Skipped { .. }))
        .collect();
    if r.ok() {
        let _ = writeln!(
            s,
            "{} {verb} complete: {done} step(s) done, up to {} at once.",
            Style::new().green().bold().apply_to("✓"),
            r.peak_in_flight
        );
        return s;
    }
    let head = if r.interrupted {
        "interrupted"
    } else {
        "failed"
    };
    let _ = writeln!(
        s,
        "{} {verb} {head}: {done} done, {} failed, {} skipped.",
        Style::new().red().bold().apply_to("✗"),
        failed.len(),
        skipped.len()
    );
    for f in failed {
        if let Outcome::Failed { error } = &f.outcome {
            let _ = writeln!(
                s,
                "  {} {} {} ({}): {error}",
                Style::new().red().apply_to("✗"),
                f.op.verb(),
                f.id,
                f.kind
            );
        }
    }
    for k in skipped {
        if let Outcome::Skipped { because } = &k.outcome {
            let _ = writeln!(
                s,
                "  {} {} {} ({}): skipped, {because}",
                Style::new().dim().apply_to("-"),
                k.op.verb(),
                k.id,
                k.kind
            );
        }
    }
    let _ = writeln!(
        s,
        "Run the same command again to finish: securecart finds what exists by its tags."
    );
    s
}

/// `--stats`: API calls by service and operation, and the time of each phase.
pub fn stats_text(calls: &[CallCount], phases: &[(String, Duration)], retries: u64) -> String {
    let mut s = String::new();
    let total: u64 = calls.iter().map(|c| c.count).sum();
    let mutating: u64 = calls.iter().filter(|c| c.mutating).map(|c| c.count).sum();
    let _ = writeln!(s, "\nStatistics");
    let _ = writeln!(
        s,
        "  AWS API calls: {total} ({mutating} mutating, {retries} retried attempts)"
    );
    for c in calls {
        let _ = writeln!(
            s,
            "    {:<28} {:<36} {:>4}{}",
            c.service,
            c.operation,
            c.count,
            if c.mutating { "  *" } else { "" }
        );
    }
    for (p, d) in phases {
        let _ = writeln!(s, "  {:<14} {:>8.3}s", p, d.as_secs_f64());
    }
    s
}

/// `securecart run`: the path the workflow took, then its result.
pub fn execution_text(v: &crate::workflow::ExecutionView) -> String {
    use crate::workflow::StateOutcome;
    let mut s = String::new();
    let _ = writeln!(s, "\nExecution {}", Style::new().bold().apply_to(&v.name));
    let w = v.states.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in &v.states {
        let (sym, st) = match r.outcome {
            StateOutcome::Succeeded => ("✓", Style::new().green()),
            StateOutcome::Caught => ("↪", Style::new().yellow()),
            StateOutcome::Failed => ("✗", Style::new().red()),
            StateOutcome::Running => ("…", Style::new().cyan()),
        };
        let took = r
            .duration_ms
            .map(|d| format!("{:.2}s", d as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        let retries = if r.attempts > 1 {
            format!(" ({} attempts)", r.attempts)
        } else {
            String::new()
        };
        let outcome = format!("{:?}", r.outcome).to_lowercase();
        let _ = write!(
            s,
            "  {} {:<w$}  {:<9} +{:>6.2}s {:>7}  {}{}",
            st.apply_to(sym),
            r.name,
            Style::new().dim().apply_to(&r.ty),
            r.started_ms as f64 / 1000.0,
            took,
            outcome,
            retries,
            w = w
        );
        if let Some(e) = &r.error {
            let _ = write!(s, "  {}", Style::new().dim().apply_to(e));
        }
        let _ = writeln!(s);
    }
    let st = if v.status == "SUCCEEDED" {
        Style::new().green().bold()
    } else {
        Style::new().red().bold()
    };
    let _ = writeln!(
        s,
        "\n{} in {:.2}s",
        st.apply_to(&v.status),
        v.duration_ms as f64 / 1000.0
    );
    if let Some(o) = &v.output {
        let _ = writeln!(
            s,
            "Output: {}",
            serde_json::to_string_pretty(o).unwrap_or_default()
        );
    }
    if let Some(e) = &v.error {
        let _ = writeln!(
            s,
            "Error: {e}{}",
            v.cause
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(s, "Execution ARN: {}", v.execution_arn);
    s
}

/// Blueprint problems: annotated snippets on a terminal, `file:line:col` lines otherwise.
pub fn diagnostics(d: &Diagnostics, fancy: bool) -> String {
    // miette wraps long messages at the terminal's width and can cut a secret in two, where
    // the sink's masking by value no longer finds it whole: mask before the layout.
    let mut masked = d.clone();
    for p in &mut masked.problems {
        p.message = crate::secrets::redact(&p.message).into_owned();
        p.help = p
            .help
            .as_deref()
            .map(|h| crate::secrets::redact(h).into_owned());
    }
    let d = &masked;
    if !fancy {
        return format!("{d}\n");
    }
    let handler = miette::GraphicalReportHandler::new_themed(if console::colors_enabled_stderr() {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    });
    let mut s = String::new();
    for r in ProblemReport::all(d) {
        let _ = handler.render_report(&mut s, &r);
    }
    // The plain lines too: they are what editors and CI logs can jump to.
    let _ = writeln!(s, "{d}");
    let n = d.errors().count();
    let _ = writeln!(s, "{n} error(s) in {}", d.file.name);
    s
}

pub fn error_line(msg: &str) -> String {
    format!(
        "{} {msg}",
        Style::new().red().bold().for_stderr().apply_to("error:")
    )
}

#[cfg(test)]
mod tests;
