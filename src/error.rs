//! The library's error type and the process exit codes it maps to.

use crate::blueprint::LoadError;

/// Exit codes, documented in the README and `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    /// Success; for `plan`, also "no changes".
    Ok = 0,
    /// Any error: invalid blueprint, AWS failure or unreachable endpoint, failed or
    /// refused apply, a destroy that found nothing of the stack.
    Error = 1,
    /// `plan` found changes to make.
    Changes = 2,
    /// The command line itself is wrong.
    Usage = 64,
    /// Ctrl-C stopped an apply or destroy part-way.
    Interrupted = 130,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Blueprint(#[from] LoadError),
    #[error("invalid stack name `{name}`: {why}")]
    StackName { name: String, why: String },
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error(transparent)]
    Connect(#[from] crate::aws::ConnectError),
    #[error(transparent)]
    Unreachable(#[from] crate::aws::Unreachable),
    #[error("nothing is tagged with stack `{stack}` in {region}: check --stack and --region, or pass --allow-empty when an empty stack is expected")]
    NothingToDestroy { stack: String, region: String },
    #[error("cannot read the live state of {kind} resources: {source}")]
    Read {
        kind: &'static str,
        source: crate::resources::Error,
    },
    #[error(transparent)]
    Local(#[from] crate::local::LocalError),
    #[error("{0}")]
    Refused(String),
    /// A saved plan (`plan --out`) that cannot be written, read or applied as it is.
    #[error("{path}: {why}")]
    PlanFile { path: String, why: String },
    #[error("{0}")]
    Usage(String),
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}
