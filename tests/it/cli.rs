//! Command-line outcomes that must not mislead: an endpoint that cannot be reached fails
//! within seconds in one sentence naming it, a destroy that finds nothing of its stack is
//! an error unless `--allow-empty`, a bad `--stack` is a command-line error (64), and
//! `permissions` makes its policy without AWS.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::common::{cli, emulator, mutating_calls, repo, run_json, stack};

/// `plan` against `endpoint` with credentials and a region from the environment, so
/// nothing but the endpoint itself is reached for (no instance metadata look-up).
fn plan_at(endpoint: &str) -> (Option<i32>, String, String, Duration) {
    let t = Instant::now();
    let out = cli()
        .arg("plan")
        .arg(repo().join("blueprints/network.yaml"))
        .args(["--endpoint-url", endpoint, "--region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", "unreachable-test")
        .env("AWS_SECRET_ACCESS_KEY", "unreachable-test")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run securecart");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        t.elapsed(),
    )
}

/// The error lines of a run (progress lines start with a timestamp).
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| !l.starts_with('[')).collect()
}

#[test]
fn a_refused_endpoint_fails_at_once_in_one_sentence() {
    // A port that was free a moment ago: nothing listens there now.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let (code, _, stderr, took) = plan_at(&endpoint);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        vec![format!(
            "error: cannot reach {endpoint}: connection refused"
        )],
        "{stderr}"
    );
    // One attempt per call, not ten with backoff (that took 155 s).
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn a_black_hole_endpoint_fails_after_the_connect_timeout() {
    // A listener with a backlog of 0 whose queue is full: the kernel drops further SYNs,
    // so a connect neither succeeds nor is refused — what a firewalled address does.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let listener = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().expect("socket");
        s.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        s.listen(0).expect("listen")
    });
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let mut fill = Vec::new();
    let full =
        (0..64).any(
            |_| match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => {
                    fill.push(s);
                    false
                }
                Err(_) => true,
            },
        );
    assert!(full, "could not fill the listen queue of {addr}");
    let endpoint = format!("http://{addr}");
    let (code, _, stderr, took) = plan_at(&endpoint);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        vec![format!(
            "error: cannot reach {endpoint}: no connection within 3 s"
        )],
        "{stderr}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    drop(fill);
    drop(listener);
}

#[test]
fn destroying_a_stack_with_nothing_in_it_fails_unless_allowed() {
    emulator();
    let stack = stack("empty");
    let (code, out, err) = run_json(&["destroy", "--yes"], &stack);
    assert_eq!(code, 1, "{out:#}\n{err}");
    assert_eq!(
        out["error"],
        format!(
            "nothing is tagged with stack `{stack}` in us-east-1: check --stack and --region, \
             or pass --allow-empty when an empty stack is expected"
        ),
        "{out:#}"
    );

    let (code, out, err) = run_json(&["destroy", "--yes", "--allow-empty"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    assert_eq!(mutating_calls(&out), 0, "{out:#}");
    assert!(out["destroy"].is_null(), "{out:#}");
}

#[test]
fn an_invalid_stack_name_is_a_command_line_error() {
    for (name, why) in [
        (
            "shop_main",
            "`_` is not allowed: use letters, digits and `-`",
        ),
        ("9lives", "it must start with a letter"),
    ] {
        // No endpoint is needed: the name is refused before any AWS call.
        let out = cli()
            .args([
                "destroy",
                "--stack",
                name,
                "--yes",
                "--endpoint-url",
                "http://127.0.0.1:9",
            ])
            .output()
            .expect("run securecart");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{stderr}");
        assert_eq!(
            stderr.trim_end(),
            format!("error: invalid stack name `{name}`: {why}")
        );
    }
}

/// Runs securecart with stdout a pipe whose reader is already gone (`… | head -0` where
/// head has exited), so every write to stdout fails with EPIPE.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_securecart"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("SECURECART_STACK")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run securecart");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_closed_stdout_ends_output_quietly_with_the_normal_exit_code() {
    let labs01 = repo().join("labs/01");
    let labs01 = labs01.to_str().expect("utf-8 path");
    let network = repo().join("blueprints/network.yaml");
    let network = network.to_str().expect("utf-8 path");
    let mut cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["validate", labs01], 0),
        (vec!["validate", labs01, "--json"], 0),
        (vec!["graph", labs01], 0),
        (vec!["graph", labs01, "--format", "mermaid"], 0),
        (vec!["schema"], 0),
        (vec!["--help"], 0),
        // Errors go to stderr as text, but to stdout with --json.
        (vec!["validate", "/nonexistent/blueprint.yaml", "--json"], 1),
    ];
    emulator();
    let st = stack("pipe");
    // A stack that does not exist: the plan has changes (2), outputs are "(not created)".
    cases.push((vec!["plan", network, "--local", "--stack", &st], 2));
    cases.push((
        vec!["plan", network, "--local", "--json", "--stack", &st],
        2,
    ));
    cases.push((vec!["outputs", labs01, "--local", "--stack", &st], 0));
    cases.push((
        vec!["outputs", labs01, "--local", "--json", "--stack", &st],
        0,
    ));
    for (args, want) in cases {
        let (code, stderr) = with_closed_stdout(&args);
        assert_eq!(code, Some(want), "{args:?}\n{stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}\n{stderr}"
        );
    }
}

#[test]
fn output_lost_to_a_full_disk_is_an_error() {
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_securecart"))
        .args(["schema"])
        .env("NO_COLOR", "1")
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run securecart");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot write to stdout: No space left on device"),
        "{stderr}"
    );
}

/// Issue 8: a secret parameter that reaches a checked field used to be echoed by the
/// validator's message, in text and in `--json`.
#[test]
fn a_secret_in_a_failing_blueprint_never_reaches_the_screen() {
    const SECRET: &str = "TOPSECRET_xyz987";
    let dir = tempfile::tempdir().expect("tempdir");
    let bp = dir.path().join("blueprint.yaml");
    std::fs::write(
        &bp,
        format!(
            "name: leak\nparameters:\n  token:\n    type: string\n    secret: true\n    \
             default: {SECRET}\nresources:\n  net:\n    type: vpc\n    cidr_block: ${{params.token}}\n"
        ),
    )
    .expect("write blueprint");
    let bp = bp.to_str().expect("utf-8 path");
    let given = format!("token={SECRET}-from-var");
    for args in [
        vec!["validate", bp],
        vec!["validate", bp, "--json"],
        vec!["plan", bp, "--json"],
        vec!["graph", bp],
        vec!["validate", bp, "--var", &given],
        vec!["validate", bp, "--var", &given, "--json"],
    ] {
        let out = cli().args(&args).output().expect("run securecart");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}\n{stdout}{stderr}");
        assert!(
            !stdout.contains("TOPSECRET") && !stderr.contains("TOPSECRET"),
            "{args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        // The problem is still reported.
        assert!(
            format!("{stdout}{stderr}").contains("is not a valid IPv4 CIDR block"),
            "{args:?}\n{stdout}{stderr}"
        );
    }
}

/// Issue 8: a secret beside a value known only after apply (a password next to a queue URL)
/// was printed in full on create. Whatever field marking does, the output sink masks it.
#[test]
fn a_secret_in_a_plan_never_reaches_stdout() {
    const SECRET: &str = "TOPSECRET-plan-4417";
    emulator();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("fn")).expect("mkdir");
    std::fs::write(
        dir.path().join("fn/handler.py"),
        "def handler(event, context):\n    return event\n",
    )
    .expect("write code");
    let bp = dir.path().join("blueprint.yaml");
    std::fs::write(
        &bp,
        "name: leak\nparameters:\n  api_key:\n    type: string\n    secret: true\n\
         resources:\n  q:\n    type: sqs_queue\n  f:\n    type: lambda_function\n    \
         code: fn\n    runtime: python3.12\n    handler: handler.handler\n    environment:\n      \
         API_KEY: ${params.api_key}\n      QUEUE_URL: ${q.url}\n",
    )
    .expect("write blueprint");
    let bp = bp.to_str().expect("utf-8 path");
    let given = format!("api_key={SECRET}");
    let st = stack("leak");
    for json in [false, true] {
        let mut args = vec!["plan", bp, "--local", "--stats", "--stack", &st];
        args.extend(["--var", &given]);
        if json {
            args.push("--json");
        }
        let out = cli().args(&args).output().expect("run securecart");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{stdout}{stderr}");
        // The plan hides the whole environment that holds the secret (one rule: a field
        // with a secret in it is sensitive), and shows that it does.
        assert!(stdout.contains("(sensitive)"), "{stdout}");
        assert!(
            !stdout.contains("TOPSECRET") && !stderr.contains("TOPSECRET"),
            "{args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        if json {
            let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
            assert!(doc["plan"]["actions"].is_array(), "{doc:#}");
        }
    }
}

/// `permissions` needs no AWS (a black-hole endpoint is never called): the document alone
/// on stdout, `--for plan` only reads, and a wrong `--kind` or `--account` is a command-line
/// error naming what is allowed.
#[test]
fn permissions_are_made_without_aws() {
    let run = |args: &[&str]| {
        let out = cli()
            .arg("permissions")
            .args(args)
            .args([
                "--endpoint-url",
                "http://127.0.0.1:9",
                "--region",
                "ca-central-1",
            ])
            .output()
            .expect("run securecart");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let lab = repo().join("labs/01");
    let lab = lab.to_str().expect("utf-8");
    let (code, stdout, stderr) = run(&[lab, "--for", "plan", "--stack", "ci-1"]);
    assert_eq!(code, Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("a policy document");
    assert_eq!(doc["Version"], "2012-10-17");
    let actions: Vec<&str> = doc["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|s| s["Action"].as_array().expect("actions"))
        .filter_map(|a| a.as_str())
        .collect();
    assert!(actions.contains(&"sqs:ListQueues"), "{actions:?}");
    assert!(
        actions
            .iter()
            .all(|a| !securecart::aws::is_mutating(a.split(':').nth(1).unwrap_or(a))),
        "plan is granted a change: {actions:?}"
    );
    // Scoped to the stack and region given.
    assert!(
        stdout.contains("arn:aws:sqs:ca-central-1:*:ci-1-*"),
        "{stdout}"
    );
    assert!(stderr.contains("pass --account to pin them"), "{stderr}");

    let (code, _, stderr) = run(&[lab, "--kind", "vpcs"]);
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains("--kind vpcs: no such kind (one of: all, vpc, subnet"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&[lab, "--account", "1234"]);
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains("an AWS account id is 12 digits"),
        "{stderr}"
    );
}
