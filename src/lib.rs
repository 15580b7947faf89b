//! securecart: YAML blueprints → plan against live AWS state → dependency-ordered apply.
//! `run` parses the command line and drives one command; `main.rs` only calls it.

pub mod apply;
pub mod aws;
pub mod blueprint;
pub mod cli;
mod commands;
pub mod error;
pub mod graph;
pub mod local;
pub mod plan;
pub mod render;
pub mod report;
pub mod resources;
pub mod secrets;
pub mod settings;
pub mod workflow;

use clap::Parser;

pub use error::{Error, ExitCode};

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::Usage as i32
            } else {
                0
            };
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let settings = match settings::Settings::resolve(&cli.global, &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", render::error_line(&e.to_string()));
            return ExitCode::Error as i32;
        }
    };
    render::set_color(settings.color && settings.tty_out);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!(
                "{}",
                render::error_line(&format!("cannot start the async runtime: {e}"))
            );
            return ExitCode::Error as i32;
        }
    };
    match rt.block_on(commands::dispatch(cli.command, &settings)) {
        Ok(code) => code as i32,
        Err(e) => commands::report_error(&e, &settings) as i32,
    }
}
