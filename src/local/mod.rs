//! The bundled LocalStack emulator behind `--local` and `securecart local`: install on first use, start detached, check, stop.
//!
//! Layout under the cache folder (`$SECURECART_CACHE_DIR`, else the user cache dir + `securecart`):
//! - `emulator-<recipe hash>/`: `venv/`, `recipe/` (the embedded `emulator/` files), `install.log`,
//!   `installed.json` (written last; marks the install complete). A changed recipe gets a new folder.
//! - `run/<port>/`: `emulator.pid`, `emulator.log`, `fs/` (LocalStack's data), `tmp/` (unzipped Lambda code).
//! - `install.lock`; starting and stopping lock `securecart-local-<port>.lock` in the temp dir.

mod health;
mod install;
mod lock;
mod python;

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use health::Probe;

/// Port LocalStack listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 4566;
/// The Lambda runtime executor plugin in `emulator/securecart_localstack` (runs functions as local
/// processes, since there is no Docker).
const LAMBDA_EXECUTOR: &str = "securecart-local";
/// The gateway server plugin in `emulator/securecart_localstack`: LocalStack's own Twisted server
/// would listen on all interfaces and keep running when the port is taken.
const GATEWAY_SERVER: &str = "securecart-twisted";
/// How long a fresh start may take before giving up; a cold start on a busy 2-core machine
/// (importing LocalStack without cached bytecode) has been seen to take ~10 s.
const START_TIMEOUT: Duration = Duration::from_secs(180);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "no Python 3.13 found for the local emulator (LocalStack 4.14 needs 3.13; tried: {tried}).\n\
         Install Python 3.13 with its venv module, e.g. `pyenv install 3.13`, `uv python install 3.13`, \
         `brew install python@3.13`, or `apt-get install python3.13 python3.13-venv` where your distribution \
         has it; or set SECURECART_PYTHON to a Python 3.13 interpreter"
    )]
    PythonNotFound { tried: String },
    #[error("SECURECART_PYTHON={} cannot run the local emulator: {reason}; point it at Python 3.13", path.display())]
    BadPythonOverride { path: PathBuf, reason: String },
    #[error("installing the local emulator failed ({step}); full log: {}\n{tail}", log.display())]
    Install {
        step: String,
        log: PathBuf,
        tail: String,
    },
    #[error("the local emulator did not answer on {endpoint} within {secs} s; last lines of {}:\n{tail}", log.display())]
    NotReady {
        endpoint: String,
        secs: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("the local emulator exited while starting ({status}); last lines of {}:\n{tail}", log.display())]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("port {port} on 127.0.0.1 is taken by something that is not LocalStack ({what}); pick another port with --local-port or SECURECART_LOCAL_PORT")]
    PortInUse { port: u16, what: String },
    #[error("the LocalStack at {endpoint} was not started by securecart (no pid file at {}); stop it the way it was started", pid_file.display())]
    NotManaged { endpoint: String, pid_file: PathBuf },
    #[error("the local emulator (pid {pid}) did not stop within {secs} s")]
    StopTimeout { pid: u32, secs: u64 },
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LocalError {
    let path = path.to_path_buf();
    move |source| LocalError::Io {
        action,
        path,
        source,
    }
}

#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub port: u16,
    pub cache_dir: PathBuf,
    /// `SECURECART_STRICT` for an emulator this starts (see emulator/README.md): `Some` overrides
    /// the caller's environment, e.g. a test that wants its own throttled emulator; `None` passes the
    /// environment on. An emulator that already runs keeps the settings it was started with.
    pub strict: Option<String>,
}

impl LocalOptions {
    /// Port: the argument, else `$SECURECART_LOCAL_PORT`, else 4566. Cache: `$SECURECART_CACHE_DIR`,
    /// else the platform cache dir + `securecart`.
    pub fn from_env(port: Option<u16>) -> Self {
        let port = port
            .or_else(|| {
                std::env::var("SECURECART_LOCAL_PORT")
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
            })
            .unwrap_or(DEFAULT_PORT);
        let cache_dir = std::env::var_os("SECURECART_CACHE_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("securecart")))
            .unwrap_or_else(|| std::env::temp_dir().join("securecart-cache"));
        Self {
            port,
            cache_dir,
            strict: None,
        }
    }

    fn run_dir(&self) -> PathBuf {
        self.cache_dir.join("run").join(self.port.to_string())
    }

    fn pid_file(&self) -> PathBuf {
        self.run_dir().join("emulator.pid")
    }

    fn log_file(&self) -> PathBuf {
        self.run_dir().join("emulator.log")
    }

    /// Serialises starting and stopping on this port. It lives in the temp dir rather than the
    /// cache folder because callers with different cache folders still share the port.
    fn port_lock(&self) -> PathBuf {
        std::env::temp_dir().join(format!("securecart-local-{}.lock", self.port))
    }
}

pub fn endpoint_url(opts: &LocalOptions) -> String {
    format!("http://127.0.0.1:{}", opts.port)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LocalStatus {
    pub running: bool,
    pub endpoint: String,
    /// Pid of the emulator that securecart started on this port; `None` when not running or when
    /// the LocalStack answering there was started some other way.
    pub pid: Option<u32>,
    pub version: Option<String>,
    /// Services the running emulator serves, sorted.
    pub services: Vec<String>,
    /// Where the embedded recipe is (or would be) installed.
    pub install_dir: PathBuf,
    pub installed: bool,
    pub log_file: PathBuf,
    /// What the emulator's strict layer reports at `GET /_securecart/strict`: `{"enabled": bool}`
    /// plus its windows in seconds, `page` and `throttle` when enabled. `None` when not running or
    /// when the LocalStack there has no strict layer (started some other way, or an older recipe).
    pub strict: Option<serde_json::Value>,
}

/// The strict layer's status route, served by `emulator/securecart_localstack/strict.py`.
const STRICT_STATUS_PATH: &str = "/_securecart/strict";

impl LocalStatus {
    /// One line for `securecart local status`: whether the strict layer is on, and its settings.
    pub fn strict_summary(&self) -> String {
        let Some(strict) = &self.strict else {
            return "unknown (this emulator does not report one)".into();
        };
        if strict["enabled"] != true {
            return "off (SECURECART_STRICT=off when it was started)".into();
        }
        let value = |key: &str| match &strict[key] {
            // 2.0 reads as "2": Rust prints floats without a needless ".0".
            serde_json::Value::Number(n) => n.as_f64().map_or(n.to_string(), |f| f.to_string()),
            _ => "?".into(),
        };
        let windows = ["iam", "sqs", "rds", "eni", "lt", "sns"]
            .map(|k| format!("{k}={} s", value(k)))
            .join(", ");
        format!(
            "on ({windows}, page={}, throttle={}); tune or turn off with SECURECART_STRICT",
            value("page"),
            value("throttle")
        )
    }
}

/// What the pid file records about the emulator that securecart started.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PidRecord {
    pid: u32,
    install_dir: PathBuf,
}

fn parse_pid_record(text: &str) -> Option<PidRecord> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let install_dir = PathBuf::from(lines.next().unwrap_or("").trim());
    Some(PidRecord { pid, install_dir })
}

fn read_pid_record(opts: &LocalOptions) -> Option<PidRecord> {
    parse_pid_record(&fs::read_to_string(opts.pid_file()).ok()?)
}

/// The recorded process still exists and is a LocalStack runtime (not a recycled pid).
fn pid_is_emulator(pid: u32) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if Path::new("/proc/self/stat").exists() {
        let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else {
            return false;
        };
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
        {
            return false;
        }
        return fs::read(proc_dir.join("cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("localstack.runtime.main"));
    }
    // Without /proc (macOS), `kill -0` at least tells whether the pid exists.
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Install folders that emulators started from this cache folder (on any port) are running from.
fn live_install_dirs(opts: &LocalOptions) -> Vec<PathBuf> {
    let Ok(ports) = fs::read_dir(opts.cache_dir.join("run")) else {
        return Vec::new();
    };
    ports
        .filter_map(Result::ok)
        .filter_map(|p| fs::read_to_string(p.path().join("emulator.pid")).ok())
        .filter_map(|text| parse_pid_record(&text))
        .filter(|r| pid_is_emulator(r.pid))
        .map(|r| r.install_dir)
        .collect()
}

fn live_pid_record(opts: &LocalOptions) -> Option<PidRecord> {
    read_pid_record(opts).filter(|r| pid_is_emulator(r.pid))
}

/// Last `n` lines of a (log) file, or a note that it cannot be read.
fn tail_lines(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("({} cannot be read)", path.display());
    };
    // Only the end of a log matters, and LocalStack logs can grow large.
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    last_lines(&String::from_utf8_lossy(&buf), n)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn status(opts: &LocalOptions) -> Result<LocalStatus, LocalError> {
    Ok(status_with(opts, health::probe(opts.port, PROBE_TIMEOUT)))
}

fn status_with(opts: &LocalOptions, probe: Probe) -> LocalStatus {
    let install_dir = install::install_dir(opts);
    let installed = install::is_installed(&install_dir);
    let (running, version, services) = match probe {
        Probe::LocalStack(h) => (true, h.version, h.services.into_keys().collect()),
        _ => (false, None, Vec::new()),
    };
    let strict = running
        .then(|| health::get_json(opts.port, STRICT_STATUS_PATH, PROBE_TIMEOUT))
        .flatten();
    let pid = if running {
        live_pid_record(opts).map(|r| r.pid)
    } else {
        None
    };
    LocalStatus {
        running,
        endpoint: endpoint_url(opts),
        pid,
        version,
        services,
        install_dir,
        installed,
        log_file: opts.log_file(),
        strict,
    }
}

/// Installs the emulator if needed, starts it if it is not running and waits until it answers.
/// When it already runs from the current recipe this is two HTTP GETs (health, strict layer) and a
/// file read.
pub fn ensure_running(
    opts: &LocalOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<LocalStatus, LocalError> {
    let wanted_install = install::install_dir(opts);
    let current = |opts: &LocalOptions, probe: &Probe| -> Option<bool> {
        // Some(true): ours and current; Some(false): ours but from another recipe; None: not ours.
        matches!(probe, Probe::LocalStack(_))
            .then(|| live_pid_record(opts))
            .flatten()
            .map(|r| r.install_dir == wanted_install)
    };
    let probe = health::probe(opts.port, PROBE_TIMEOUT);
    if current(opts, &probe) == Some(true) {
        return Ok(status_with(opts, probe));
    }

    let _guard = lock::acquire(&opts.port_lock(), progress, "starting the emulator")?;
    // Whoever held the lock may have just started it.
    let mut probe = health::probe(opts.port, PROBE_TIMEOUT);
    match current(opts, &probe) {
        Some(true) => return Ok(status_with(opts, probe)),
        Some(false) => {
            progress("the running emulator was installed from an older recipe; restarting it");
            stop_locked(opts)?;
            probe = health::probe(opts.port, PROBE_TIMEOUT);
        }
        None => {
            if let Some(stale) = live_pid_record(opts) {
                // Ours and alive but not answering: hung, or its starter died while it started.
                progress(&format!(
                    "the emulator (pid {}) does not answer; restarting it",
                    stale.pid
                ));
                stop_locked(opts)?;
                probe = health::probe(opts.port, PROBE_TIMEOUT);
            }
        }
    }
    // Nothing of ours runs on the port now; whatever still answers there belongs to someone else.
    match probe {
        // A LocalStack started some other way (by hand, or from another cache folder) is used as is.
        Probe::LocalStack(ref health) => {
            let missing = missing_services(&health.services);
            progress(&format!(
                "using the LocalStack already running on {} (not started from {}){}",
                endpoint_url(opts),
                opts.cache_dir.display(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; it does not serve {}", missing.join(", "))
                }
            ));
            return Ok(status_with(opts, probe));
        }
        Probe::Foreign(what) => {
            return Err(LocalError::PortInUse {
                port: opts.port,
                what,
            })
        }
        Probe::Unresponsive => {
            return Err(LocalError::PortInUse {
                port: opts.port,
                what: "accepts connections but does not answer".into(),
            })
        }
        Probe::Down => {}
    }

    let install_dir = install::ensure_installed(opts, progress)?;
    start(opts, &install_dir, progress)?;
    status(opts)
}

/// Services that securecart's blueprints use and that only the bundled plugins add to LocalStack
/// Community.
const PLUGIN_SERVICES: [&str; 3] = ["rds", "elbv2", "autoscaling"];

fn missing_services(services: &std::collections::BTreeMap<String, String>) -> Vec<&'static str> {
    PLUGIN_SERVICES
        .into_iter()
        .filter(|s| !services.contains_key(*s))
        .collect()
}

fn start(
    opts: &LocalOptions,
    install_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LocalError> {
    let run_dir = opts.run_dir();
    let fs_root = run_dir.join("fs");
    for dir in [fs_root.clone(), run_dir.join("tmp")] {
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    }
    let log_path = opts.log_file();
    let log = File::create(&log_path).map_err(io_err("create", &log_path))?;
    let log_err = log.try_clone().map_err(io_err("open", &log_path))?;
    let endpoint = endpoint_url(opts);
    progress(&format!(
        "starting LocalStack {} on {endpoint} (log: {})",
        install::pinned_localstack_version(),
        log_path.display()
    ));

    let python = install::venv_python(install_dir);
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "localstack.runtime.main"])
        .current_dir(&run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .env("GATEWAY_LISTEN", format!("127.0.0.1:{}", opts.port))
        .env("GATEWAY_SERVER", GATEWAY_SERVER)
        .env("DISABLE_EVENTS", "1")
        .env("SKIP_SSL_CERT_DOWNLOAD", "1")
        // Its DNS server would try port 53 and an upstream resolver; nothing here needs it.
        .env("DNS_ADDRESS", "0")
        .env("FILESYSTEM_ROOT", &fs_root)
        .env("LOCALSTACK_VOLUME_DIR", run_dir.join("volume"))
        // Unzipped Lambda code and other scratch files stay inside this emulator's folder.
        .env("TMPDIR", run_dir.join("tmp"))
        .env("PYTHONUNBUFFERED", "1")
        // Cached bytecode roughly halves later start times; an inherited opt-out would prevent it.
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env_remove("VIRTUAL_ENV");
    cmd.env("LAMBDA_RUNTIME_EXECUTOR", LAMBDA_EXECUTOR);
    // Read once by the strict layer at start; a bad value makes the emulator exit naming it.
    if let Some(strict) = &opts.strict {
        cmd.env("SECURECART_STRICT", strict);
    }
    // Its own process group keeps it alive when the CLI exits or the terminal sends SIGINT, and
    // lets `stop` signal it together with the Lambda processes it spawns.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);

    let started = Instant::now();
    let mut child = cmd.spawn().map_err(io_err("run", &python))?;
    let record = format!("{}\n{}\n", child.id(), install_dir.display());
    fs::write(opts.pid_file(), record).map_err(io_err("write", &opts.pid_file()))?;

    loop {
        if let Ok(Some(exit)) = child.try_wait() {
            let _ = fs::remove_file(opts.pid_file());
            return Err(LocalError::Exited {
                status: exit.to_string(),
                log: log_path.clone(),
                tail: tail_lines(&log_path, 20),
            });
        }
        if let Probe::LocalStack(_) = health::probe(opts.port, PROBE_TIMEOUT) {
            progress(&format!(
                "LocalStack ready on {endpoint} after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        if started.elapsed() > START_TIMEOUT {
            let tail = tail_lines(&log_path, 20);
            signal_group(child.id(), "KILL");
            let _ = child.wait();
            let _ = fs::remove_file(opts.pid_file());
            return Err(LocalError::NotReady {
                endpoint,
                secs: START_TIMEOUT.as_secs(),
                log: log_path,
                tail,
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Sends a signal to the emulator's whole process group (LocalStack and any Lambda processes).
fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops the emulator that securecart started on this port; `Ok(true)` if one was running.
pub fn stop(opts: &LocalOptions) -> Result<bool, LocalError> {
    let _guard = lock::acquire(
        &opts.port_lock(),
        &mut |_| {},
        "starting or stopping the emulator",
    )?;
    stop_locked(opts)
}

fn stop_locked(opts: &LocalOptions) -> Result<bool, LocalError> {
    let Some(record) = live_pid_record(opts) else {
        let _ = fs::remove_file(opts.pid_file());
        if let Probe::LocalStack(_) = health::probe(opts.port, PROBE_TIMEOUT) {
            return Err(LocalError::NotManaged {
                endpoint: endpoint_url(opts),
                pid_file: opts.pid_file(),
            });
        }
        return Ok(false);
    };
    // SIGTERM lets LocalStack shut its services down; SIGKILL is the fallback for a hung one.
    signal_group(record.pid, "TERM");
    let deadline = Instant::now() + STOP_TIMEOUT;
    while pid_is_emulator(record.pid) {
        if Instant::now() > deadline {
            signal_group(record.pid, "KILL");
            std::thread::sleep(Duration::from_millis(500));
            if pid_is_emulator(record.pid) {
                return Err(LocalError::StopTimeout {
                    pid: record.pid,
                    secs: STOP_TIMEOUT.as_secs(),
                });
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Lambda processes left in the group go with it.
    signal_group(record.pid, "KILL");
    let _ = fs::remove_file(opts.pid_file());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_arguments_and_defaults() {
        let o = LocalOptions {
            port: 4599,
            cache_dir: PathBuf::from("/c"),
            strict: None,
        };
        assert_eq!(endpoint_url(&o), "http://127.0.0.1:4599");
        assert_eq!(o.pid_file(), PathBuf::from("/c/run/4599/emulator.pid"));
        assert_eq!(o.log_file(), PathBuf::from("/c/run/4599/emulator.log"));
        // An explicit port wins over the environment.
        assert_eq!(LocalOptions::from_env(Some(5001)).port, 5001);
    }

    #[test]
    fn pid_records_round_trip() {
        assert_eq!(
            parse_pid_record("1234\n/c/emulator-abc\n"),
            Some(PidRecord {
                pid: 1234,
                install_dir: PathBuf::from("/c/emulator-abc")
            })
        );
        assert_eq!(
            parse_pid_record("1234"),
            Some(PidRecord {
                pid: 1234,
                install_dir: PathBuf::new()
            })
        );
        assert_eq!(parse_pid_record("garbage"), None);
        assert_eq!(parse_pid_record(""), None);
    }

    #[test]
    fn reports_services_a_foreign_localstack_lacks() {
        let mut services = std::collections::BTreeMap::new();
        services.insert("ec2".to_string(), "running".to_string());
        services.insert("elbv2".to_string(), "available".to_string());
        assert_eq!(missing_services(&services), ["rds", "autoscaling"]);
    }

    #[test]
    fn strict_summary_says_on_off_or_unknown() {
        let mut st = status_with(
            &LocalOptions {
                port: 1,
                cache_dir: PathBuf::from("/nonexistent-sc"),
                strict: None,
            },
            Probe::Down,
        );
        assert!(st.strict_summary().starts_with("unknown"));
        st.strict = Some(serde_json::json!({"enabled": false}));
        assert!(st.strict_summary().starts_with("off"));
        st.strict = Some(
            serde_json::json!({"enabled": true, "iam": 2.0, "sqs": 1.0, "rds": 3.0,
            "eni": 3.0, "lt": 1.0, "sns": 1.0, "page": 2, "throttle": 0.2}),
        );
        assert_eq!(
            st.strict_summary(),
            "on (iam=2 s, sqs=1 s, rds=3 s, eni=3 s, lt=1 s, sns=1 s, page=2, throttle=0.2); \
             tune or turn off with SECURECART_STRICT"
        );
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }

    #[test]
    fn own_process_is_not_taken_for_the_emulator() {
        assert!(!pid_is_emulator(std::process::id()));
    }

    #[test]
    fn status_without_emulator_reports_not_running() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = LocalOptions {
            port,
            cache_dir: std::env::temp_dir().join("sc-status-test-empty"),
            strict: None,
        };
        let st = status(&opts).unwrap();
        assert!(!st.running);
        assert_eq!(st.pid, None);
        assert!(!st.installed);
        assert!(st.services.is_empty());
        assert_eq!(st.strict, None);
        assert!(!stop(&opts).unwrap());
        let _ = fs::remove_dir_all(&opts.cache_dir);
    }

    /// The real thing: installs (minutes on an empty cache), starts, checks and stops the emulator.
    /// Run with `cargo test local::tests::emulator_end_to_end -- --ignored --nocapture`.
    #[test]
    #[ignore = "installs LocalStack (~0.5 GB) and starts it"]
    fn emulator_end_to_end() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = LocalOptions::from_env(Some(port));
        let mut notes = Vec::new();
        let mut say = |m: &str| notes.push(m.to_string());
        let st = ensure_running(&opts, &mut say).unwrap();
        assert!(st.running && st.installed && st.pid.is_some(), "{st:?}");
        for svc in [
            "ec2",
            "rds",
            "elbv2",
            "autoscaling",
            "sqs",
            "events",
            "stepfunctions",
            "lambda",
        ] {
            assert!(
                st.services.iter().any(|s| s == svc),
                "{svc} missing from {:?}",
                st.services
            );
        }
        let again = Instant::now();
        ensure_running(&opts, &mut say).unwrap();
        assert!(again.elapsed() < Duration::from_secs(2));

        let smoke = st.install_dir.join("recipe").join("smoke_test.py");
        let out = Command::new(install::venv_python(&st.install_dir))
            .arg(&smoke)
            .env("ENDPOINT", &st.endpoint)
            .output()
            .unwrap();
        let stopped = stop(&opts).unwrap();
        assert!(
            out.status.success(),
            "smoke test failed:\n{}{}\nwhile starting: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            notes.join("\n")
        );
        assert!(stopped);
        assert!(!status(&opts).unwrap().running);
        assert!(!stop(&opts).unwrap());
    }
}
