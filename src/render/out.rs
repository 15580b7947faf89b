//! The one door to stdout and stderr: every byte securecart writes goes through [`out`] or
//! [`err`], which mask secrets and never panic.
//!
//! Why one door: the README promises secrets never appear on screen, and `print!` panics
//! when the reader of a pipe has gone (`securecart graph … | head -1` used to die with
//! "failed printing to stdout: Broken pipe", exit 101). Here a write error closes that
//! stream for the rest of the run instead, and the command carries on to its normal end and
//! exit code: an `apply` must not stop half-way because the terminal or `head` went away.
//! A closed pipe is the reader's choice and stays silent; any other failure (a full disk
//! behind `> plan.json`) means the promised output was lost, which [`lost_output`] reports so
//! the process can exit 1 (README, Exit codes).

use std::io::{self, IsTerminal, Write};
use std::sync::{LazyLock, Mutex, MutexGuard};

use crate::secrets;

/// One output stream and whether it still takes output.
pub struct Sink<W> {
    w: W,
    state: State,
}

#[derive(Debug)]
enum State {
    Open,
    /// The reader went away (EPIPE): stop quietly.
    Closed,
    /// Output was lost for another reason; the first error is kept to report.
    Failed(io::Error),
}

impl<W: Write> Sink<W> {
    pub fn new(w: W) -> Self {
        Sink {
            w,
            state: State::Open,
        }
    }

    /// Writes `text` with every registered secret masked; after the first failure, nothing.
    pub fn write(&mut self, text: &str) {
        if !matches!(self.state, State::Open) || text.is_empty() {
            return;
        }
        let masked = secrets::redact(text);
        // Flushed at once: a prompt must show before the answer is read, and a closed pipe
        // should be noticed at the write that hit it, not at exit.
        let r = self
            .w
            .write_all(masked.as_bytes())
            .and_then(|()| self.w.flush());
        if let Err(e) = r {
            self.state = if e.kind() == io::ErrorKind::BrokenPipe {
                State::Closed
            } else {
                State::Failed(e)
            };
        }
    }

    /// Whether the reader has gone (further output is dropped).
    pub fn is_closed(&self) -> bool {
        !matches!(self.state, State::Open)
    }

    /// The error that lost output, other than a closed pipe.
    pub fn lost(&self) -> Option<&io::Error> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    pub fn get_ref(&self) -> &W {
        &self.w
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

type Shared = LazyLock<Mutex<Sink<Box<dyn Write + Send>>>>;

static STDOUT: Shared = LazyLock::new(|| Mutex::new(Sink::new(Box::new(io::stdout()))));
static STDERR: Shared = LazyLock::new(|| Mutex::new(Sink::new(Box::new(io::stderr()))));

fn lock(s: &'static Shared) -> MutexGuard<'static, Sink<Box<dyn Write + Send>>> {
    // A panic while writing leaves the sink as usable as before: its state is one enum.
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes to stdout: command results, `--json` documents, progress lines for logs.
pub fn out(text: &str) {
    lock(&STDOUT).write(text);
}

/// Writes to stderr: diagnostics, errors, prompts.
pub fn err(text: &str) {
    lock(&STDERR).write(text);
}

/// Whether stdout is a terminal (progress spinners and colours) or a pipe or file.
pub fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal()
}

/// Whether stderr is a terminal (annotated diagnostics).
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}

/// Whether stdin is a terminal someone can answer a prompt on.
pub fn stdin_is_terminal() -> bool {
    io::stdin().is_terminal()
}

/// Asks `question` on stderr and returns the line typed in answer.
pub fn ask(question: &str) -> io::Result<String> {
    err(question);
    let mut line = String::new();
    io::stdin().read_line(&mut line)?;
    Ok(line)
}

/// Why stdout or stderr lost output other than by a closed pipe, if either did: the command's
/// result did not reach its reader, so the run must not look like a success.
pub fn lost_output() -> Option<String> {
    for (name, s) in [("stdout", &STDOUT), ("stderr", &STDERR)] {
        if let Some(e) = lock(s).lost() {
            return Some(format!("cannot write to {name}: {e}"));
        }
    }
    None
}

/// Panic messages through the same door: masked, and never a second panic on a closed pipe.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let trace = std::backtrace::Backtrace::capture();
        let trace = match trace.status() {
            std::backtrace::BacktraceStatus::Captured => format!("\n{trace}"),
            _ => "\nnote: run with `RUST_BACKTRACE=1` to display a backtrace".to_string(),
        };
        let text = format!("securecart {info}{trace}\n");
        // `try_lock`: a panic inside a write holds the lock on this very thread, so waiting
        // for it would never end; another thread's write is over in moments.
        for _ in 0..100 {
            match STDERR.try_lock() {
                Ok(mut s) => return s.write(&text),
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner().write(&text),
                Err(std::sync::TryLockError::WouldBlock) => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
            }
        }
    }));
}
