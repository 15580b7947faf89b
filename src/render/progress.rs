//! Progress reporters: live spinners (one line per resource in flight, with elapsed time)
//! on a terminal, and one plain line per event for CI logs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use console::Style;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::report::{Event, Outcome, Reporter};
// indicatif writes to the terminal itself, so what it is handed is masked first, as the
// output sink (`super::out`) masks everything else.
use crate::secrets::redact;

fn finished_line(
    id: &str,
    kind: &str,
    op: crate::report::Op,
    outcome: &Outcome,
    elapsed: Duration,
) -> String {
    let t = format!("({:.1}s)", elapsed.as_secs_f64());
    match outcome {
        Outcome::Done => format!(
            "{} {} {id} {} {}",
            Style::new().green().apply_to("✓"),
            op.past(),
            Style::new().dim().apply_to(kind),
            Style::new().dim().apply_to(t)
        ),
        Outcome::Failed { error } => format!(
            "{} {} {id} {} failed {}: {error}",
            Style::new().red().apply_to("✗"),
            op.verb(),
            Style::new().dim().apply_to(kind),
            t
        ),
        Outcome::Skipped { because } => format!(
            "{} {} {id} skipped: {because}",
            Style::new().dim().apply_to("-"),
            op.verb()
        ),
    }
}

/// Spinners for steps in flight; finished steps scroll above them.
pub struct ProgressReporter {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Default for ProgressReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressReporter {
    pub fn new() -> Self {
        ProgressReporter {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Reporter for ProgressReporter {
    fn event(&self, e: Event<'_>) {
        let mut bars = self.bars.lock().expect("bars lock");
        match e {
            Event::PhaseStarted { phase } => {
                let pb = self.multi.add(ProgressBar::new_spinner());
                pb.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                        .expect("template"),
                );
                pb.set_message(phase.to_string());
                pb.enable_steady_tick(Duration::from_millis(100));
                bars.insert(format!("phase:{phase}"), pb);
            }
            Event::PhaseFinished { phase, .. } => {
                if let Some(pb) = bars.remove(&format!("phase:{phase}")) {
                    pb.finish_and_clear();
                }
            }
            Event::Note { message } => {
                let line = format!("{} {message}", Style::new().cyan().apply_to("•"));
                let _ = self.multi.println(redact(&line));
            }
            Event::StepStarted { id, kind, op } => {
                let pb = self.multi.add(ProgressBar::new_spinner());
                pb.set_style(
                    ProgressStyle::with_template(
                        "{spinner:.cyan} {prefix} {msg:.dim} {elapsed:.dim}",
                    )
                    .expect("template"),
                );
                let prefix = format!("{} {id} ({kind})", op.progressive());
                pb.set_prefix(redact(&prefix).into_owned());
                pb.enable_steady_tick(Duration::from_millis(100));
                bars.insert(format!("{}:{id}", op.verb()), pb);
            }
            Event::StepProgress { id, op, message } => {
                if let Some(pb) = bars.get(&format!("{}:{id}", op.verb())) {
                    pb.set_message(redact(&format!("— {message}")).into_owned());
                }
            }
            Event::StepFinished {
                id,
                kind,
                op,
                outcome,
                elapsed,
            } => {
                if let Some(pb) = bars.remove(&format!("{}:{id}", op.verb())) {
                    pb.finish_and_clear();
                }
                let line = finished_line(id, kind, op, outcome, elapsed);
                let _ = self.multi.println(redact(&line));
            }
        }
    }
}

/// One line per event, with time since start: what CI logs want.
pub struct LineReporter {
    start: Instant,
    last: Mutex<HashMap<String, String>>,
}

impl Default for LineReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl LineReporter {
    pub fn new() -> Self {
        LineReporter {
            start: Instant::now(),
            last: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, s: String) {
        super::out(&format!(
            "[{:>7.1}s] {s}\n",
            self.start.elapsed().as_secs_f64()
        ));
    }
}

impl Reporter for LineReporter {
    fn event(&self, e: Event<'_>) {
        match e {
            Event::PhaseStarted { .. } => {}
            Event::PhaseFinished { phase, elapsed } => {
                self.line(format!("{phase} done in {:.2}s", elapsed.as_secs_f64()))
            }
            Event::Note { message } => self.line(message.to_string()),
            Event::StepStarted { id, kind, op } => {
                self.line(format!("{} {id} ({kind})", op.progressive()))
            }
            Event::StepProgress { id, op, message } => {
                // Waiters repeat themselves every poll; a log needs each message once.
                let mut last = self.last.lock().expect("last lock");
                let key = format!("{}:{id}", op.verb());
                if last.get(&key).map(String::as_str) != Some(message) {
                    last.insert(key, message.to_string());
                    drop(last);
                    self.line(format!("{} {id}: {message}", op.progressive()));
                }
            }
            Event::StepFinished {
                id,
                kind,
                op,
                outcome,
                elapsed,
            } => self.line(finished_line(id, kind, op, outcome, elapsed)),
        }
    }
}
