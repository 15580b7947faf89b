//! Asks a port on 127.0.0.1 whether LocalStack answers there, with a minimal HTTP/1.1 GET of /_localstack/health.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// What LocalStack's health endpoint reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    pub(crate) version: Option<String>,
    pub(crate) edition: Option<String>,
    /// Service name to state ("available", "running", ...).
    pub(crate) services: BTreeMap<String, String>,
}

/// Outcome of probing the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Nothing listens (connection refused).
    Down,
    /// Something accepted the connection but gave no answer in time; LocalStack does this while it
    /// is still starting, so callers that know they started it keep waiting.
    Unresponsive,
    /// Something answered that is not LocalStack.
    Foreign(String),
    LocalStack(Health),
}

/// Probes `127.0.0.1:<port>`; `timeout` bounds the connect and each read.
pub(crate) fn probe(port: u16, timeout: Duration) -> Probe {
    match http_get(port, "/_localstack/health", timeout) {
        Ok(raw) => interpret(&raw),
        Err(probe) => probe,
    }
}

/// GETs `path` on `127.0.0.1:<port>` and parses a 200 answer as JSON; `None` otherwise (not
/// running, not served there, not JSON).
pub(crate) fn get_json(port: u16, path: &str, timeout: Duration) -> Option<serde_json::Value> {
    let raw = http_get(port, path, timeout).ok()?;
    let response = parse_http_response(&raw)?;
    (response.status == 200)
        .then(|| serde_json::from_slice(&response.body).ok())
        .flatten()
}

/// The raw answer to a minimal HTTP/1.1 GET, or how the port failed to give one.
fn http_get(port: u16, path: &str, timeout: Duration) -> Result<Vec<u8>, Probe> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err(Probe::Unresponsive),
        Err(_) => return Err(Probe::Down),
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return Err(Probe::Unresponsive);
    }
    let mut raw = Vec::new();
    // A read error after some bytes still leaves a usable (complete, Connection: close) answer.
    if let Err(e) = stream.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Err(match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    Probe::Unresponsive
                }
                _ => Probe::Down,
            });
        }
    }
    if raw.is_empty() {
        return Err(Probe::Unresponsive);
    }
    Ok(raw)
}

fn interpret(raw: &[u8]) -> Probe {
    let Some(response) = parse_http_response(raw) else {
        return Probe::Foreign("not an HTTP answer".into());
    };
    if response.status != 200 {
        return Probe::Foreign(format!("HTTP {} on /_localstack/health", response.status));
    }
    match parse_health(&response.body) {
        Some(h) => Probe::LocalStack(h),
        None => Probe::Foreign("answer to /_localstack/health is not LocalStack's".into()),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// Splits a complete HTTP/1.1 response into status, headers and body (decoding chunked bodies).
pub(crate) fn parse_http_response(raw: &[u8]) -> Option<HttpResponse> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        decode_chunked(rest)?
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.get(..len)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Parses the JSON of /_localstack/health; `None` when it does not look like LocalStack's.
pub(crate) fn parse_health(body: &[u8]) -> Option<Health> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let services = value.get("services")?.as_object()?;
    let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_string);
    Some(Health {
        version: text("version"),
        edition: text("edition"),
        services: services
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"services": {"ec2": "running", "rds": "available", "sqs": "available"}, "edition": "unknown", "version": "4.14.0"}"#;

    #[test]
    fn parses_health_json() {
        let h = parse_health(BODY.as_bytes()).unwrap();
        assert_eq!(h.version.as_deref(), Some("4.14.0"));
        assert_eq!(h.edition.as_deref(), Some("unknown"));
        assert_eq!(h.services.keys().collect::<Vec<_>>(), ["ec2", "rds", "sqs"]);
        assert_eq!(h.services["ec2"], "running");
    }

    #[test]
    fn rejects_json_without_services() {
        assert_eq!(parse_health(br#"{"status": "ok"}"#), None);
        assert_eq!(parse_health(b"<html></html>"), None);
    }

    #[test]
    fn parses_content_length_response() {
        let raw = format!(
            "HTTP/1.1 200 OK\r\nServer: TwistedWeb/25.5.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\nx-localstack: true\r\n\r\n{BODY}",
            BODY.len()
        );
        let r = parse_http_response(raw.as_bytes()).unwrap();
        assert_eq!(r.status, 200);
        assert!(r.headers.contains(&("x-localstack".into(), "true".into())));
        assert_eq!(r.body, BODY.as_bytes());
        assert!(matches!(interpret(raw.as_bytes()), Probe::LocalStack(_)));
    }

    #[test]
    fn parses_chunked_response() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"se\r\n1b\r\nrvices\": {\"s3\": \"running\"}}\r\n0\r\n\r\n";
        let r = parse_http_response(raw).unwrap();
        assert_eq!(r.body, br#"{"services": {"s3": "running"}}"#);
    }

    #[test]
    fn other_servers_are_foreign() {
        assert!(matches!(
            interpret(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            Probe::Foreign(_)
        ));
        assert!(matches!(
            interpret(b"SSH-2.0-OpenSSH_9.2\r\n"),
            Probe::Foreign(_)
        ));
        assert!(matches!(
            interpret(b"HTTP/1.0 200 OK\r\n\r\n{\"ok\": true}"),
            Probe::Foreign(_)
        ));
    }

    #[test]
    fn closed_port_is_down() {
        // Bind then drop to get a port that is very likely closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(probe(port, Duration::from_millis(500)), Probe::Down);
    }
}
