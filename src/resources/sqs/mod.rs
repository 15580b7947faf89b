//! Amazon SQS: the `sqs_queue` kind.

pub mod sqs_queue;
