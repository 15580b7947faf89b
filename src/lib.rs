//! securecart: YAML blueprints → plan against live AWS state → dependency-ordered apply.
//! `run` parses the command line and drives one command; `main.rs` only calls it.

// Output goes through `render` (its sink masks secrets and survives a closed pipe); a
// `print!` anywhere else would bypass both.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
pub mod aws;
pub mod blueprint;
pub mod cli;
mod commands;
pub mod diff;
pub mod error;
pub mod graph;
pub mod local;
pub mod lock;
pub mod partition;
pub mod permissions;
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
    render::install_panic_hook();
    let code = run_command();
    // Output lost other than by a closed pipe (a full disk behind `> plan.json`): the
    // result never reached its reader, so the run is not a success.
    match render::lost_output() {
        Some(why) if code == ExitCode::Ok as i32 || code == ExitCode::Changes as i32 => {
            render::err(&format!("{}\n", render::error_line(&why)));
            ExitCode::Error as i32
        }
        _ => code,
    }
}

fn run_command() -> i32 {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout, errors to stderr, as clap would print them;
            // styled only where clap's own choice (the stream is a terminal) would style.
            let colored = if e.use_stderr() {
                console::colors_enabled_stderr()
            } else {
                console::colors_enabled()
            };
            let styled = e.render();
            let text = if colored {
                styled.ansi().to_string()
            } else {
                styled.to_string()
            };
            return if e.use_stderr() {
                render::err(&text);
                ExitCode::Usage as i32
            } else {
                render::out(&text);
                0
            };
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let settings = match settings::Settings::resolve(&cli.global, &env) {
        Ok(s) => s,
        Err(e) => {
            render::err(&format!("{}\n", render::error_line(&e.to_string())));
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
            render::err(&format!(
                "{}\n",
                render::error_line(&format!("cannot start the async runtime: {e}"))
            ));
            return ExitCode::Error as i32;
        }
    };
    match rt.block_on(commands::dispatch(cli.command, &settings)) {
        Ok(code) => code as i32,
        Err(e) => commands::report_error(&e, &settings) as i32,
    }
}
