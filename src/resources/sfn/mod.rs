//! AWS Step Functions: the `state_machine` kind and its Amazon States Language checks.

pub mod asl;
pub mod state_machine;
