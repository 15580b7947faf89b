//! Settings resolved once from command-line flags and the environment; nothing else in
//! the program reads environment variables for these.

use crate::aws::AwsSettings;
use crate::cli::Global;

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
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
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
}
