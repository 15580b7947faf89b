//! Events the engine emits while it works; `render` turns them into progress bars,
//! log lines or nothing (JSON mode). The engine never prints.

use std::time::Duration;

use serde::Serialize;

/// What one step did to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn verb(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    pub fn progressive(self) -> &'static str {
        match self {
            Op::Create => "creating",
            Op::Update => "updating",
            Op::Delete => "deleting",
        }
    }

    pub fn past(self) -> &'static str {
        match self {
            Op::Create => "created",
            Op::Update => "updated",
            Op::Delete => "deleted",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    Done,
    Failed { error: String },
    Skipped { because: String },
}

#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A phase (reading live state, planning, applying) began.
    PhaseStarted {
        phase: &'a str,
    },
    PhaseFinished {
        phase: &'a str,
        elapsed: Duration,
    },
    /// A free-form status line (the emulator installing, say).
    Note {
        message: &'a str,
    },
    StepStarted {
        id: &'a str,
        kind: &'a str,
        op: Op,
    },
    StepProgress {
        id: &'a str,
        op: Op,
        message: &'a str,
    },
    StepFinished {
        id: &'a str,
        kind: &'a str,
        op: Op,
        outcome: &'a Outcome,
        elapsed: Duration,
    },
}

pub trait Reporter: Send + Sync {
    fn event(&self, e: Event<'_>);
}

/// A reporter that drops everything (JSON mode, tests).
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _e: Event<'_>) {}
}
