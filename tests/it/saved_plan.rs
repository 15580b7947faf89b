//! Saved plans: `plan --out FILE` then `apply FILE` applies exactly that plan without asking,
//! with the plan's stack, region and non-secret `--var`s; a plan whose blueprint or live
//! state moved since is refused before any change; the file holds no secret.

use std::path::Path;

use crate::common::{cli, emulator, run_json, stack};

const SECRET: &str = "pw-SAVEDPLAN-9xQ";

const BLUEPRINT: &str = r##"
name: saved
parameters:
  timeout:
    type: number
    default: 30
  pw:
    secret: true
    default: pw-SAVEDPLAN-9xQ
resources:
  q:
    type: sqs_queue
    visibility_timeout: ${params.timeout}
  lt:
    type: launch_template
    user_data: "#!/bin/bash\necho started\n"
    user_data_vars:
      DB_PASSWORD: ${params.pw}
"##;

/// `securecart <args> --local --stack <stack>`: (exit code, stdout, stderr).
fn run(args: &[&str], st: &str) -> (i32, String, String) {
    emulator();
    let out = cli()
        .args(args)
        .args(["--local", "--stack", st])
        .output()
        .expect("run securecart");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn plan_out(bp: &Path, out: &Path, st: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["plan", bp.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(extra);
    let (code, json, err) = run_json(&args, st);
    assert_eq!(code, 2, "plan --out: changes expected\n{json}\n{err}");
    assert_eq!(json["saved_to"], out.to_str().unwrap());
    json
}

#[test]
fn a_saved_plan_applies_as_planned_and_a_stale_one_is_refused() {
    let st = stack("saved");
    let dir = tempfile::tempdir().unwrap();
    let bp = dir.path().join("blueprint.yaml");
    std::fs::write(&bp, BLUEPRINT).unwrap();
    let p1 = dir.path().join("create.plan");

    // Planned with a --var; the file keeps it, and no secret.
    plan_out(&bp, &p1, &st, &["--var", "timeout=45"]);
    let text = std::fs::read_to_string(&p1).unwrap();
    assert!(
        !text.contains(SECRET),
        "the saved plan holds a secret:\n{text}"
    );
    assert!(text.contains("\"timeout\": \"45\""), "{text}");

    // Applied without --yes, without the --var and without --stack (all from the file);
    // no terminal to ask on, so a question would have failed.
    let out = cli()
        .args(["apply", p1.to_str().unwrap(), "--local", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(SECRET));
    let applied: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(applied["plan"]["summary"]["create"], 2, "{applied}");
    let (code, json, _) = run_json(&["plan", bp.to_str().unwrap(), "--var", "timeout=45"], &st);
    assert_eq!(code, 0, "re-plan after the saved apply is empty: {json}");

    // A second apply of the same file: the live state moved (it made the resources).
    let (code, _, err) = run(&["apply", p1.to_str().unwrap()], &st);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the live state moved since the plan was saved")
            && err.contains("sqs_queue `q` appeared"),
        "{err}"
    );

    // The blueprint changed after the plan: refused, nothing changed.
    let p2 = dir.path().join("update.plan");
    plan_out(&bp, &p2, &st, &["--var", "timeout=60"]);
    std::fs::write(&bp, BLUEPRINT.replace("echo started", "echo changed")).unwrap();
    let (code, _, err) = run(&["apply", p2.to_str().unwrap()], &st);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("changed since the plan was saved: plan again"),
        "{err}"
    );
    std::fs::write(&bp, BLUEPRINT).unwrap();

    // Another run changed the stack after the plan: refused by the live digest.
    let (code, _, err) = run(
        &[
            "apply",
            bp.to_str().unwrap(),
            "--var",
            "timeout=50",
            "--yes",
        ],
        &st,
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["apply", p2.to_str().unwrap()], &st);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("sqs_queue `q` changed"), "{err}");

    // A --var against the file's value, or another stack, is refused too.
    let p3 = dir.path().join("again.plan");
    plan_out(&bp, &p3, &st, &["--var", "timeout=60"]);
    let (code, _, err) = run(&["apply", p3.to_str().unwrap(), "--var", "timeout=61"], &st);
    assert_eq!(code, 1);
    assert!(err.contains("--var timeout"), "{err}");
    let (code, _, err) = run(&["apply", p3.to_str().unwrap()], "t-other-stack");
    assert_eq!(code, 1);
    assert!(err.contains("the plan is for stack"), "{err}");
    // The right one still applies.
    let (code, _, err) = run(&["apply", p3.to_str().unwrap()], &st);
    assert_eq!(code, 0, "{err}");

    let (code, _, err) = run(&["destroy", "--yes"], &st);
    assert_eq!(code, 0, "{err}");
}
