//! Amazon CloudWatch Logs: the `log_group` kind.

pub mod log_group;
