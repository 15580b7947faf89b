//! Settings resolved once from command-line flags and the environment; nothing else in
//! the program reads environment variables for these.

use std::time::Duration;

use crate::aws::AwsSettings;
use crate::cli::Global;
use crate::lock::LockSettings;

#[derive(Debug, Clone)]
pub struct Settings {
    pub stack: Option<String>,
    pub aws: AwsSettings,
    /// The region as the AWS CLI would take it without a profile (`--region`,
    /// `AWS_REGION`, `AWS_DEFAULT_REGION`): for what is made without calling AWS.
    pub region: Option<String>,
    pub local_port: Option<u16>,
    pub vars: Vec<(String, String)>,
    pub parallelism: usize,
    pub json: bool,
    pub yes: bool,
    pub color: bool,
    pub stats: bool,
    /// stdout is a terminal: live spinners instead of log lines.
    pub tty_out: bool,
    /// stdin is a terminal: we may ask for confirmation.
    pub tty_in: bool,
    /// The stack lock's lease and how this run names itself in it.
    pub lock: LockSettings,
}

/// A stack lock's lease unless `SECURECART_LOCK_LEASE_SECONDS` says otherwise: a run
/// killed with `kill -9` blocks its stack this long at most; renewed every third of it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The CI job this run belongs to, from the variables CI systems set: a link where one
/// can be built, so whoever waits can open the job that holds the stack.
fn ci_job(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    if let (Some(server), Some(repo), Some(run)) = (
        get("GITHUB_SERVER_URL"),
        get("GITHUB_REPOSITORY"),
        get("GITHUB_RUN_ID"),
    ) {
        let attempt = get("GITHUB_RUN_ATTEMPT")
            .map(|a| format!("/attempts/{a}"))
            .unwrap_or_default();
        return Some(format!("{server}/{repo}/actions/runs/{run}{attempt}"));
    }
    [
        "CI_JOB_URL",       // GitLab
        "BUILD_URL",        // Jenkins
        "CIRCLE_BUILD_URL", // CircleCI
        "BUILDKITE_BUILD_URL",
        "CODEBUILD_BUILD_ARN", // AWS CodeBuild
        "GITHUB_RUN_ID",
        "CI_JOB_ID",
    ]
    .iter()
    .find_map(|k| {
        get(k).map(|v| {
            if k.ends_with("_ID") {
                format!("{k}={v}")
            } else {
                v
            }
        })
    })
}

fn host_name(env: &dyn Fn(&str) -> Option<String>) -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            if end > 0 {
                return String::from_utf8_lossy(&buf[..end]).into_owned();
            }
        }
    }
    env("HOSTNAME")
        .or_else(|| env("COMPUTERNAME"))
        .unwrap_or_else(|| "unknown".into())
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "SECURECART_LOCK_LEASE_SECONDS must be a whole number of seconds from 2 to 3600, not `{0}`"
    )]
    Lease(String),
    #[error("--local refuses the non-loopback endpoint {0}: it would send changes to a real AWS endpoint. Drop --local, or point at 127.0.0.1/localhost")]
    NotLoopback(String),
}

/// Only these hosts count as "this machine" for --local.
pub fn is_loopback(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host_port = rest.split('/').next().unwrap_or_default();
    let host = if let Some(h) = host_port.strip_prefix('[') {
        h.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

impl Settings {
    pub fn resolve(
        g: &Global,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let no_color_env = env("NO_COLOR").is_some_and(|v| !v.is_empty());
        let tty_out = crate::render::stdout_is_terminal();
        let endpoint = g.endpoint_url.clone().or_else(|| env("AWS_ENDPOINT_URL"));
        if g.local {
            if let Some(e) = &endpoint {
                if !is_loopback(e) {
                    return Err(SettingsError::NotLoopback(e.clone()));
                }
            }
        }
        // A test knob (the kill -9 test uses a few seconds); real runs keep the default.
        let lease = match env("SECURECART_LOCK_LEASE_SECONDS") {
            None => DEFAULT_LEASE,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (2..=3600).contains(&n) => Duration::from_secs(n),
                _ => return Err(SettingsError::Lease(v)),
            },
        };
        Ok(Settings {
            stack: g.stack.clone(),
            aws: AwsSettings {
                region: g.region.clone(),
                profile: g.profile.clone(),
                endpoint_url: if g.local {
                    None
                } else {
                    g.endpoint_url.clone()
                },
                local: g.local,
            },
            region: g
                .region
                .clone()
                .or_else(|| env("AWS_REGION"))
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .filter(|r| !r.is_empty()),
            local_port: g.local_port,
            vars: g.vars.clone(),
            parallelism: g.parallelism as usize,
            json: g.json,
            yes: g.yes,
            color: !g.no_color && !no_color_env,
            stats: g.stats,
            tty_out,
            tty_in: crate::render::stdin_is_terminal(),
            lock: LockSettings {
                lease,
                host: host_name(env),
                ci_job: ci_job(env),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("http://127.0.0.1:4566"));
        assert!(is_loopback("http://localhost:4566/"));
        assert!(is_loopback("http://[::1]:4566"));
        assert!(is_loopback("http://127.1.2.3"));
        assert!(!is_loopback("https://ec2.us-east-1.amazonaws.com"));
        assert!(!is_loopback("http://10.0.0.1:4566"));
        assert!(!is_loopback("http://localhost.evil.com"));
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn names_the_ci_job_that_holds_a_lock() {
        let gh = env_of(&[
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_RUN_ID", "123"),
            ("GITHUB_RUN_ATTEMPT", "2"),
        ]);
        assert_eq!(
            ci_job(&gh).as_deref(),
            Some("https://github.com/acme/shop/actions/runs/123/attempts/2")
        );
        let gitlab = env_of(&[("CI_JOB_URL", "https://gitlab.com/a/b/-/jobs/9")]);
        assert_eq!(
            ci_job(&gitlab).as_deref(),
            Some("https://gitlab.com/a/b/-/jobs/9")
        );
        let bare = env_of(&[("CI_JOB_ID", "77")]);
        assert_eq!(ci_job(&bare).as_deref(), Some("CI_JOB_ID=77"));
        assert_eq!(ci_job(&env_of(&[])), None);
    }

    #[test]
    fn the_lease_knob_is_checked() {
        let g = <crate::cli::Cli as clap::Parser>::parse_from(["securecart", "schema"]).global;
        let s = Settings::resolve(&g, &env_of(&[])).expect("default");
        assert_eq!(s.lock.lease, DEFAULT_LEASE);
        let s =
            Settings::resolve(&g, &env_of(&[("SECURECART_LOCK_LEASE_SECONDS", "3")])).expect("3 s");
        assert_eq!(s.lock.lease, Duration::from_secs(3));
        for bad in ["0", "1", "soon", "3601"] {
            let e = Settings::resolve(&g, &env_of(&[("SECURECART_LOCK_LEASE_SECONDS", bad)]))
                .expect_err(bad);
            assert!(
                e.to_string().contains("SECURECART_LOCK_LEASE_SECONDS"),
                "{e}"
            );
        }
    }
}
