//! Secrets never reach the screen: a blueprint where secret parameters flow into every kind of
//! field (environments beside values known after apply, descriptions, rule inputs, a state
//! machine definition, user data, security group rules, outputs) goes through validate, plan,
//! apply, a changed secret, outputs, `--json`, `--stats`, errors and destroy, and no byte of a
//! secret may appear on stdout or stderr of any of them.

use std::path::Path;

use crate::common::{cli, emulator, stack};

const KEY: &str = "Zq8-TOPSECRET-5fH";
const KEY2: &str = "Wx3-OTHERSECRET-9kL";
const PW: &str = "pw-SECRETPASS-77a";

const BLUEPRINT: &str = r##"
name: secrets
parameters:
  key:
    secret: true
    default: Zq8-TOPSECRET-5fH
  pw:
    secret: true
    default: pw-SECRETPASS-77a
  net:
    secret: true
    default: 10.44.0.0/16
resources:
  q:
    type: sqs_queue
  logs:
    type: log_group
  vpc:
    type: vpc
    cidr_block: ${params.net}
  sg:
    type: security_group
    vpc: ${vpc}
    description: web tier ${params.key}
    ingress:
      - port: 443
        cidr: 10.44.0.0/16
        description: from ${params.key}
  lt:
    type: launch_template
    security_groups: ["${sg}"]
    user_data: "#!/bin/bash\necho $DB_PASSWORD > /dev/null\n"
    user_data_vars:
      DB_PASSWORD: ${params.pw}
      QUEUE: ${q.url}
  role:
    type: iam_role
    service: lambda.amazonaws.com
    description: role ${params.key}
  fn:
    type: lambda_function
    code: fn
    runtime: python3.12
    handler: handler.handler
    description: key ${params.key} here
    environment:
      API_KEY: ${params.key}
      QUEUE_URL: ${q.url}
  flow:
    type: state_machine
    definition:
      StartAt: Hold
      States:
        Hold:
          Type: Pass
          Result:
            token: ${params.key}
          End: true
  tick:
    type: event_rule
    schedule: rate(1 day)
    description: tick ${params.pw}
    targets:
      - id: to-queue
        arn: ${q.arn}
        input:
          token: ${params.key}
outputs:
  queue: ${q.url}
  key_out: ${params.key}
  mixed: prefix-${params.pw}-${q.url}
"##;

fn folder() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(d.path().join("fn")).unwrap();
    std::fs::write(
        d.path().join("fn/handler.py"),
        "def handler(event, context):\n    return event\n",
    )
    .unwrap();
    std::fs::write(d.path().join("blueprint.yaml"), BLUEPRINT).unwrap();
    d
}

/// Runs securecart and fails if any secret is in what it printed; returns the exit code and
/// stdout.
fn run_clean(dir: &Path, args: &[&str], st: &str, secrets: &[&str]) -> (i32, String) {
    let out = cli()
        .current_dir(dir)
        .args(args)
        .args(["--local", "--stack", st])
        .output()
        .expect("run securecart");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    for s in secrets {
        // A fragment is enough to leak: look for the distinctive middle too.
        let middle = &s[4..s.len() - 4];
        for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            assert!(
                !text.contains(middle),
                "`securecart {}` printed a secret on {what}:\n{text}",
                args.join(" ")
            );
        }
    }
    (out.status.code().unwrap_or(-1), stdout)
}

#[test]
fn no_secret_reaches_stdout_or_stderr() {
    emulator();
    let dir = folder();
    let d = dir.path();
    let st = stack("secrets");
    let all = [KEY, KEY2, PW];

    // Validation: warnings about secrets in the environment and user data, none of them shown.
    let (code, _) = run_clean(d, &["validate", "."], &st, &all);
    assert_eq!(code, 0);
    // Errors that name the refused value: a secret that is no CIDR block, a secret of the
    // wrong type, a description too long for Lambda.
    let (code, _) = run_clean(d, &["plan", ".", "--var", &format!("net={KEY}")], &st, &all);
    assert_eq!(code, 1, "a secret that is no CIDR block is refused");

    for json in [false, true] {
        let mut args = vec!["plan", ".", "--stats"];
        if json {
            args.push("--json");
        }
        let (code, out) = run_clean(d, &args, &st, &all);
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("(sensitive)"), "{out}");
    }
    let (code, out) = run_clean(d, &["apply", ".", "--yes", "--stats"], &st, &all);
    assert_eq!(code, 0, "{out}");
    let (code, _) = run_clean(d, &["plan", "."], &st, &all);
    assert_eq!(code, 0, "nothing left to change after apply");

    // A changed secret: the plan shows the update, masked on both sides.
    let var = format!("key={KEY2}");
    for json in [false, true] {
        let mut args = vec!["plan", ".", "--var", &var];
        if json {
            args.push("--json");
        }
        let (code, out) = run_clean(d, &args, &st, &all);
        assert_eq!(code, 2, "{out}");
    }
    let (code, out) = run_clean(
        d,
        &["apply", ".", "--yes", "--json", "--var", &var],
        &st,
        &all,
    );
    assert_eq!(code, 0, "{out}");
    for json in [false, true] {
        let mut args = vec!["outputs", ".", "--var", &var];
        if json {
            args.push("--json");
        }
        let (code, out) = run_clean(d, &args, &st, &all);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("(sensitive)"),
            "outputs holding a secret are shown masked: {out}"
        );
    }
    let (code, out) = run_clean(d, &["destroy", "--yes", "--stats"], &st, &all);
    assert_eq!(code, 0, "{out}");
}
