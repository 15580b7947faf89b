//! Watching a Step Functions execution (`securecart run`): turns the execution history
//! into the path the workflow took — each state with its timing, attempts and outcome.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::Aws;
use crate::report::{Event, Reporter};
use crate::resources::Error;

/// A finished (or given-up-on) execution, as `run` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionView {
    pub execution_arn: String,
    pub name: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
    pub status: String,
    pub duration_ms: i64,
    pub states: Vec<StateRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// Starts an execution and follows it, reporting each state as it is entered and left.
pub async fn watch(
    aws: &Aws,
    machine_arn: &str,
    input: &str,
    timeout: Duration,
    reporter: &dyn Reporter,
) -> Result<ExecutionView, Error> {
    let name = format!(
        "run-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let started = aws
        .sfn
        .start_execution()
        .state_machine_arn(machine_arn)
        .name(&name)
        .input(input)
        .send()
        .await?;
    let arn = started.execution_arn().to_string();
    reporter.event(Event::Note {
        message: &format!("started execution {name}"),
    });
    let t = Instant::now();
    let mut delay = Duration::from_millis(200);
    let mut said: HashMap<(usize, bool), ()> = HashMap::new();
    loop {
        let d = aws
            .sfn
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await?;
        let status = d.status().as_str().to_string();
        let done = status != "RUNNING";
        let events = history(aws, &arn).await?;
        let states = timeline(&events, done, done && status != "SUCCEEDED");
        for (i, s) in states.iter().enumerate() {
            if said.insert((i, false), ()).is_none() {
                reporter.event(Event::Note {
                    message: &format!("→ {} ({})", s.name, s.ty),
                });
            }
            if s.outcome != StateOutcome::Running && said.insert((i, true), ()).is_none() {
                let outcome = format!("{:?}", s.outcome).to_lowercase();
                reporter.event(Event::Note {
                    message: &format!("  {} {outcome}", s.name),
                });
            }
        }
        if done || t.elapsed() >= timeout {
            let duration_ms = match (d.start_date(), d.stop_date()) {
                (start, Some(stop)) => ((stop.as_secs_f64() - start.as_secs_f64()) * 1000.0) as i64,
                _ => t.elapsed().as_millis() as i64,
            };
            return Ok(ExecutionView {
                execution_arn: arn,
                name,
                status,
                duration_ms,
                states,
                output: d.output().map(|o| {
                    serde_json::from_str(o)
                        .unwrap_or_else(|_| serde_json::Value::String(o.to_string()))
                }),
                error: d.error().map(str::to_string),
                cause: d.cause().map(str::to_string),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

async fn history(aws: &Aws, arn: &str) -> Result<Vec<HistEvent>, Error> {
    let pages = aws
        .sfn
        .get_execution_history()
        .execution_arn(arn)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?;
    Ok(pages
        .into_iter()
        .map(|e| {
            let (error, cause) = if let Some(f) = e.task_failed_event_details() {
                (f.error(), f.cause())
            } else if let Some(f) = e.lambda_function_failed_event_details() {
                (f.error(), f.cause())
            } else if let Some(f) = e.execution_failed_event_details() {
                (f.error(), f.cause())
            } else if let Some(f) = e.task_timed_out_event_details() {
                (f.error(), f.cause())
            } else if let Some(f) = e.lambda_function_timed_out_event_details() {
                (f.error(), f.cause())
            } else {
                (None, None)
            };
            let state = e
                .state_entered_event_details()
                .map(|s| s.name().to_string())
                .or_else(|| e.state_exited_event_details().map(|s| s.name().to_string()));
            HistEvent {
                id: e.id(),
                previous: e.previous_event_id(),
                kind: e.r#type().as_str().to_string(),
                at_ms: (e.timestamp().as_secs_f64() * 1000.0) as i64,
                state,
                error: error.map(str::to_string),
                cause: cause.map(str::to_string),
            }
        })
        .collect())
}

/// One history event, reduced to what the timeline needs.
#[derive(Debug, Clone)]
pub struct HistEvent {
    pub id: i64,
    pub previous: i64,
    /// The event type, e.g. `TaskStateEntered`, `LambdaFunctionFailed`.
    pub kind: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The state name, on `…StateEntered` / `…StateExited` events.
    pub state: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StateOutcome {
    Succeeded,
    /// It failed, and a Catch sent the workflow elsewhere.
    Caught,
    Failed,
    Running,
}

#[derive(Debug, Clone, Serialize)]
pub struct StateRun {
    pub name: String,
    /// The state type, from the event (`Task`, `Parallel`, `Choice`, …).
    #[serde(rename = "type")]
    pub ty: String,
    /// When it was entered, relative to the start of the execution.
    pub started_ms: i64,
    pub duration_ms: Option<i64>,
    /// Task attempts (1 + retries).
    pub attempts: u32,
    pub outcome: StateOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_attempt(kind: &str) -> bool {
    matches!(
        kind,
        "TaskScheduled" | "LambdaFunctionScheduled" | "ActivityScheduled"
    )
}

fn is_failure(kind: &str) -> bool {
    matches!(
        kind,
        "TaskFailed"
            | "TaskTimedOut"
            | "TaskStartFailed"
            | "TaskSubmitFailed"
            | "LambdaFunctionFailed"
            | "LambdaFunctionTimedOut"
            | "LambdaFunctionStartFailed"
            | "ActivityFailed"
            | "ActivityTimedOut"
    )
}

fn is_success(kind: &str) -> bool {
    matches!(
        kind,
        "TaskSucceeded" | "LambdaFunctionSucceeded" | "ActivitySucceeded"
    )
}

/// The states the execution went through, in the order they were entered.
pub fn timeline(
    events: &[HistEvent],
    execution_done: bool,
    execution_failed: bool,
) -> Vec<StateRun> {
    let start = events.first().map(|e| e.at_ms).unwrap_or(0);
    let by_id: HashMap<i64, &HistEvent> = events.iter().map(|e| (e.id, e)).collect();
    let mut runs: Vec<StateRun> = Vec::new();
    let mut run_of_entry: HashMap<i64, usize> = HashMap::new();
    let mut last_ok: Vec<Option<bool>> = Vec::new();
    // Parallel branches interleave in the history, so each task event is traced back
    // through `previous` links to the state entry it belongs to.
    let owner = |e: &HistEvent| -> Option<i64> {
        let mut cur = e.previous;
        for _ in 0..1000 {
            let p = by_id.get(&cur)?;
            if p.kind.ends_with("StateEntered") {
                return Some(p.id);
            }
            cur = p.previous;
        }
        None
    };
    for e in events {
        if let Some(ty) = e.kind.strip_suffix("StateEntered") {
            run_of_entry.insert(e.id, runs.len());
            last_ok.push(None);
            runs.push(StateRun {
                name: e.state.clone().unwrap_or_default(),
                ty: ty.to_string(),
                started_ms: e.at_ms - start,
                duration_ms: None,
                attempts: 0,
                outcome: StateOutcome::Running,
                error: None,
            });
        } else if e.kind.ends_with("StateExited") {
            let name = e.state.clone().unwrap_or_default();
            if let Some(i) = runs
                .iter()
                .rposition(|r| r.name == name && r.duration_ms.is_none())
            {
                runs[i].duration_ms = Some(e.at_ms - start - runs[i].started_ms);
                runs[i].outcome = match last_ok[i] {
                    Some(false) => StateOutcome::Caught,
                    _ => StateOutcome::Succeeded,
                };
            }
        } else if is_attempt(&e.kind) || is_failure(&e.kind) || is_success(&e.kind) {
            let Some(i) = owner(e).and_then(|id| run_of_entry.get(&id).copied()) else {
                continue;
            };
            if is_attempt(&e.kind) {
                runs[i].attempts += 1;
            } else if is_failure(&e.kind) {
                last_ok[i] = Some(false);
                runs[i].error = Some(match (&e.error, &e.cause) {
                    (Some(er), Some(c)) => format!("{er}: {}", short(c)),
                    (Some(er), None) => er.clone(),
                    (None, Some(c)) => short(c),
                    (None, None) => e.kind.clone(),
                });
            } else {
                last_ok[i] = Some(true);
                runs[i].error = None;
            }
        }
    }
    if execution_done {
        for r in runs.iter_mut().filter(|r| r.duration_ms.is_none()) {
            r.outcome = if execution_failed {
                StateOutcome::Failed
            } else {
                StateOutcome::Succeeded
            };
        }
    }
    runs
}

/// Lambda error causes are JSON documents; the message is what a reader wants.
fn short(cause: &str) -> String {
    serde_json::from_str::<serde_json::Value>(cause)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| cause.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, previous: i64, kind: &str, at_ms: i64, state: Option<&str>) -> HistEvent {
        HistEvent {
            id,
            previous,
            kind: kind.into(),
            at_ms,
            state: state.map(Into::into),
            error: None,
            cause: None,
        }
    }

    #[test]
    fn retries_catches_and_parallel_branches() {
        let mut fail = ev(5, 4, "LambdaFunctionFailed", 1300, None);
        fail.error = Some("PaymentTransient".into());
        fail.cause = Some(r#"{"errorMessage":"gateway busy"}"#.into());
        let mut fail2 = ev(7, 6, "LambdaFunctionFailed", 1900, None);
        fail2.error = Some("PaymentDeclined".into());
        let events = vec![
            ev(1, 0, "ExecutionStarted", 1000, None),
            ev(2, 1, "TaskStateEntered", 1000, Some("Pay")),
            ev(3, 2, "LambdaFunctionScheduled", 1001, None),
            ev(4, 3, "LambdaFunctionStarted", 1002, None),
            ev(5, 4, "LambdaFunctionFailed", 1300, None),
            ev(6, 5, "LambdaFunctionScheduled", 1800, None),
            ev(7, 6, "LambdaFunctionFailed", 1900, None),
            ev(8, 7, "TaskStateExited", 1900, Some("Pay")),
            ev(9, 8, "ParallelStateEntered", 1900, Some("Fan")),
            ev(10, 9, "TaskStateEntered", 1901, Some("A")),
            ev(11, 9, "TaskStateEntered", 1901, Some("B")),
            ev(12, 10, "LambdaFunctionScheduled", 1902, None),
            ev(13, 11, "LambdaFunctionScheduled", 1902, None),
            ev(14, 13, "LambdaFunctionSucceeded", 1950, None),
            ev(15, 14, "TaskStateExited", 1950, Some("B")),
        ];
        let mut events = events;
        events[4] = fail;
        events[6] = fail2;
        let t = timeline(&events, false, false);
        let names: Vec<_> = t
            .iter()
            .map(|r| (r.name.as_str(), r.attempts, r.outcome))
            .collect();
        assert_eq!(
            names,
            vec![
                ("Pay", 2, StateOutcome::Caught),
                ("Fan", 0, StateOutcome::Running),
                ("A", 1, StateOutcome::Running),
                ("B", 1, StateOutcome::Succeeded),
            ]
        );
        assert_eq!(t[0].error.as_deref(), Some("PaymentDeclined"));
        assert_eq!(t[0].duration_ms, Some(900));
        assert_eq!(t[3].started_ms, 901);
        let done = timeline(&events, true, true);
        assert_eq!(done[2].outcome, StateOutcome::Failed);
    }

    #[test]
    fn lambda_causes_shorten_to_their_message() {
        assert_eq!(
            short(r#"{"errorMessage":"bad card","errorType":"X"}"#),
            "bad card"
        );
        assert_eq!(short("plain"), "plain");
    }
}
