//! AWS Lambda: the `lambda_function` kind.

pub mod lambda_function;
