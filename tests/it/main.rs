//! The one integration-test binary (every test binary links the whole AWS SDK, so there
//! is only this one). Tests that need AWS run against the bundled emulator, which the
//! first of them starts; each uses its own stack name so they run in parallel.

mod cli;
mod common;
mod emulator_lifecycle;
mod fuzz;
mod iam_regions;
mod interrupt;
mod lock;
mod lookalike;
mod network;
mod rds;
mod regions;
mod replace;
mod saved_plan;
mod secrets;
mod sns;
mod strict;
mod validate;
mod web;
mod workflow;
