//! Snapshots of rendered plans and summaries (colours off), so a change in what users
//! read shows up in review.

use std::collections::HashMap;

use super::*;
use crate::apply::StepResult;
use crate::plan::tests::{bp, live_as_desired, stack, BP};
use crate::plan::{self, Warning};
use crate::report::Op;
use crate::resources;

fn mixed_plan() -> Plan {
    let old = bp(&format!(
        "{BP}  extra:\n    type: vpc\n    cidr_block: 10.50.0.0/16\n"
    ));
    let mut known = HashMap::new();
    let net = live_as_desired(&old, "net", "vpc-1", &known);
    known.insert("net".to_string(), Some(net.outputs.clone()));
    let web = live_as_desired(&old, "web", "subnet-1", &known);
    let extra = live_as_desired(&old, "extra", "vpc-9", &known);
    let new = bp(&BP.replace("cidr_block: 10.0.1.0/24", "cidr_block: 10.0.2.0/24").replace(
        "cidr_block: 10.0.0.0/16",
        "cidr_block: 10.0.0.0/16\n    enable_dns_hostnames: false\n  fresh:\n    type: vpc\n    cidr_block: 10.40.0.0/16",
    ));
    let mut p = plan::plan(&stack(), &new, &[net, web, extra], &resources::kind);
    p.warnings.push(Warning {
        id: "fresh".into(),
        message: "an example warning".into(),
    });
    p
}

#[test]
fn plan_with_every_action() {
    set_color(false);
    insta::assert_snapshot!(plan_text(&mixed_plan(), "eu-west-1", false));
}

#[test]
fn plan_without_changes() {
    set_color(false);
    let b = bp(BP);
    let mut known = HashMap::new();
    let net = live_as_desired(&b, "net", "vpc-1", &known);
    known.insert("net".to_string(), Some(net.outputs.clone()));
    let web = live_as_desired(&b, "web", "subnet-1", &known);
    insta::assert_snapshot!(plan_text(
        &plan::plan(&stack(), &b, &[net, web], &resources::kind),
        "eu-west-1",
        false
    ));
}

#[test]
fn failed_apply_summary_names_failures_and_skips() {
    set_color(false);
    let step = |id: &str, outcome| StepResult {
        id: id.into(),
        kind: "vpc".into(),
        op: Op::Create,
        outcome,
        started_ms: 0,
        elapsed_ms: 10,
    };
    let r = ApplyResult {
        steps: vec![
            step("net", Outcome::Done),
            step(
                "web",
                Outcome::Failed {
                    error: "CreateSubnet failed: InvalidSubnet.Conflict: overlaps".into(),
                },
            ),
            step(
                "routes",
                Outcome::Skipped {
                    because: "create of `web` did not succeed".into(),
                },
            ),
        ],
        interrupted: false,
        peak_in_flight: 1,
        resources: Default::default(),
    };
    insta::assert_snapshot!(apply_summary(&r, "apply"));
}

#[test]
fn long_values_print_as_indented_json_and_changes_as_a_line_diff() {
    set_color(false);
    let before = serde_json::json!({"Statement": [{"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": "arn:aws:sqs:eu-west-1:1:shop-orders"}], "Version": "2012-10-17"});
    let mut after = before.clone();
    after["Statement"][0]["Action"] = serde_json::json!(["sqs:SendMessage", "sqs:GetQueueUrl"]);
    let p = Plan {
        stack: "shop".into(),
        actions: vec![PlannedAction {
            id: "role".into(),
            kind: "iam_role".into(),
            action: Action::Update,
            reason: "policy changes in place".into(),
            physical_id: Some("shop-role".into()),
            changes: vec![plan::Change {
                attribute: "policy".into(),
                before,
                after,
                forces_replacement: false,
                sensitive: false,
            }],
            depends_on: vec![],
            create_before_delete: false,
            live: None,
        }],
        warnings: vec![],
        errors: vec![],
        summary: plan::Summary {
            update: 1,
            ..Default::default()
        },
        estimate: None,
    };
    insta::assert_snapshot!(plan_text(&p, "eu-west-1", false));
}

#[test]
fn plan_with_a_create_before_delete_replacement() {
    set_color(false);
    let live = crate::plan::tests::web_world(&crate::plan::tests::web_bp(8080));
    let p = plan::plan(
        &stack(),
        &crate::plan::tests::web_bp(8081),
        &live,
        &resources::kind,
    );
    insta::assert_snapshot!(plan_text(&p, "eu-west-1", false));
}

/// A writer that fails every write with `kind`, counting the attempts.
struct Failing {
    kind: std::io::ErrorKind,
    attempts: usize,
}

impl std::io::Write for Failing {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        self.attempts += 1;
        Err(std::io::Error::from(self.kind))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_closed_pipe_closes_the_sink_quietly() {
    let mut s = Sink::new(Failing {
        kind: std::io::ErrorKind::BrokenPipe,
        attempts: 0,
    });
    s.write("first\n");
    assert!(s.is_closed());
    // The reader chose to stop: that is not lost output.
    assert!(s.lost().is_none());
    s.write("second\n");
    s.write("third\n");
    assert_eq!(s.into_inner().attempts, 1, "wrote again after EPIPE");
}

#[test]
fn any_other_write_error_is_kept_as_lost_output() {
    let mut s = Sink::new(Failing {
        kind: std::io::ErrorKind::StorageFull,
        attempts: 0,
    });
    s.write("a document\n");
    assert!(s.is_closed());
    assert_eq!(
        s.lost().map(|e| e.kind()),
        Some(std::io::ErrorKind::StorageFull)
    );
}

/// Registered only by these tests, so other tests' output cannot contain it by chance.
const SECRET: &str = "Zq7-sink-\"secret\"-41";

#[test]
fn the_sink_masks_a_registered_secret_raw_and_json_escaped() {
    crate::secrets::register(SECRET);
    let mut s = Sink::new(Vec::new());
    s.write(&format!("password {SECRET} in a line\n"));
    s.write(&format!("{}\n", serde_json::json!({ "p": SECRET })));
    let text = String::from_utf8(s.into_inner()).expect("utf-8");
    assert!(!text.contains("Zq7"), "{text}");
    assert_eq!(
        text,
        "password (sensitive) in a line\n{\"p\":\"(sensitive)\"}\n"
    );
}

/// The blueprint of issue 8: a secret parameter that reaches a checked field, so the
/// validator's message names it.
fn secret_in_a_checked_field() -> crate::blueprint::Diagnostics {
    let text = format!(
        "name: shop\nparameters:\n  token:\n    type: string\n    secret: true\n    default: {}\nresources:\n  net:\n    type: vpc\n    cidr_block: ${{params.token}}\n",
        serde_json::to_string(SECRET).expect("quoted")
    );
    let f = crate::blueprint::SourceFile::new(
        "t.yaml".into(),
        std::path::PathBuf::from("t.yaml"),
        text,
    );
    match crate::blueprint::parse(f, ".".into(), &[], &resources::Catalog) {
        Err(crate::blueprint::LoadError::Invalid(d)) => d,
        Ok(_) => panic!("a secret is not a CIDR block"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn no_view_shows_a_registered_secret() {
    set_color(false);
    let d = secret_in_a_checked_field();
    assert_eq!(d.secrets, vec![SECRET.to_string()]);
    // What commands do when loading fails: register, then show.
    d.secrets.iter().for_each(|v| crate::secrets::register(v));
    let mut plan = mixed_plan();
    plan.warnings.push(Warning {
        id: "net".into(),
        message: format!("token {SECRET} in clear"),
    });
    let stats = views::RunStats::of(vec![], 0, &[]);
    for json in [false, true] {
        let (view, rec) = View::recording(json, true);
        view.error(&crate::Error::Blueprint(
            crate::blueprint::LoadError::Invalid(d.clone()),
        ));
        view.warnings(&d);
        view.plan("eu-west-1", &plan, true, Some("saved.plan"), &stats);
        view.error(&crate::Error::Refused(format!(
            "AWS said: the value {SECRET} is not allowed"
        )));
        let (out, err) = recorded(&rec);
        let both = format!("{out}{err}");
        assert!(both.contains("(sensitive)"), "json={json}: {both}");
        assert!(!both.contains("Zq7"), "json={json}: {both}");
        // Where `plan --out` saved it, in words or as `saved_to`.
        assert!(out.contains("saved.plan"), "json={json}: {out}");
    }
}

/// stdout and stderr of a recording view.
fn recorded(rec: &std::sync::Mutex<views::Recorded>) -> (String, String) {
    let r = rec.lock().expect("recording");
    (
        String::from_utf8_lossy(r.out.get_ref()).into_owned(),
        String::from_utf8_lossy(r.err.get_ref()).into_owned(),
    )
}

fn sample_stats() -> views::RunStats {
    let call = |operation: &str, count, mutating| crate::aws::CallCount {
        service: "ec2".into(),
        operation: operation.into(),
        count,
        mutating,
    };
    views::RunStats::of(
        vec![call("CreateVpc", 1, true), call("DescribeVpcs", 2, false)],
        1,
        &[
            ("validate".to_string(), std::time::Duration::from_millis(3)),
            ("read".to_string(), std::time::Duration::from_millis(250)),
        ],
    )
}

#[test]
fn validate_views() {
    set_color(false);
    let b = bp(BP);
    let (text, rec) = View::recording(false, false);
    text.validate(&b);
    let (json, rec_json) = View::recording(true, false);
    json.validate(&b);
    let (out, _) = recorded(&rec);
    let (out_json, _) = recorded(&rec_json);
    insta::assert_snapshot!(format!("{out}{out_json}"));
}

#[test]
fn apply_json_document() {
    set_color(false);
    let b = bp(BP);
    let p = plan::plan(&stack(), &b, &[], &resources::kind);
    let r = ApplyResult {
        steps: vec![StepResult {
            id: "net".into(),
            kind: "vpc".into(),
            op: Op::Create,
            outcome: Outcome::Done,
            started_ms: 0,
            elapsed_ms: 10,
        }],
        interrupted: false,
        peak_in_flight: 1,
        resources: Default::default(),
    };
    let outputs = [("vpc_id".to_string(), serde_json::json!("vpc-1"))].into();
    let (view, rec) = View::recording(true, true);
    view.applied(&views::ApplyDoc {
        region: "eu-west-1",
        plan: &p,
        apply: Some(&r),
        outputs: &outputs,
        stats: &sample_stats(),
    });
    let (out, err) = recorded(&rec);
    assert_eq!(err, "");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    // The fields the README and the integration tests read.
    for path in [
        "/region",
        "/plan/actions/0/id",
        "/plan/actions/0/action",
        "/plan/summary",
        "/apply/peak_in_flight",
        "/apply/steps/0/started_ms",
        "/outputs/vpc_id",
        "/stats/calls",
        "/stats/total_calls",
        "/stats/mutating_calls",
        "/stats/retried_attempts",
        "/stats/phases_ms/read",
    ] {
        assert!(doc.pointer(path).is_some(), "no {path} in {out}");
    }
    insta::assert_snapshot!(out);
}

#[test]
fn text_views_of_apply_with_outputs_and_stats() {
    set_color(false);
    let outputs = [
        ("vpc_id".to_string(), serde_json::json!("vpc-1")),
        ("db_password".to_string(), serde_json::json!("(sensitive)")),
    ]
    .into();
    let (view, rec) = View::recording(false, true);
    view.applied(&views::ApplyDoc {
        region: "eu-west-1",
        plan: &mixed_plan(),
        apply: None,
        outputs: &outputs,
        stats: &sample_stats(),
    });
    let (out, err) = recorded(&rec);
    assert_eq!(err, "");
    insta::assert_snapshot!(out);
}

#[test]
fn errors_as_text_and_json() {
    set_color(false);
    let e = crate::Error::Refused("the plan has errors: nothing was changed".into());
    let (text, rec) = View::recording(false, false);
    text.error(&e);
    let (json, rec_json) = View::recording(true, false);
    json.error(&e);
    let (out, err) = recorded(&rec);
    let (out_json, err_json) = recorded(&rec_json);
    assert_eq!(out, "", "errors go to stderr as text");
    assert_eq!(err_json, "", "and to stdout as JSON");
    insta::assert_snapshot!(format!("{err}{out_json}"));
}

/// The sink is only a guarantee if nothing goes around it: no module but `render` opens
/// stdout or stderr (clippy's `print_stdout`/`print_stderr`, denied in lib.rs, catch the
/// print macros).
#[test]
fn only_render_opens_stdout_or_stderr() {
    fn rust_files(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                rust_files(&p, found);
            } else if p.extension().is_some_and(|x| x == "rs") {
                found.push(p);
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut offenders = Vec::new();
    for f in files.iter().filter(|f| !f.starts_with(src.join("render"))) {
        let text = std::fs::read_to_string(f).expect("read source");
        for (n, line) in text.lines().enumerate() {
            for needle in ["stdout(", "stderr("] {
                let hit = line.match_indices(needle).any(|(i, _)| {
                    // `use_stderr(` is clap's question and `.stdout(Stdio…)` a child's
                    // redirection, not this process's streams.
                    !line[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
                });
                if hit {
                    offenders.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(files.len() > 20, "found only {} source files", files.len());
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

#[test]
fn emulator_status_views() {
    let status = |running: bool| crate::local::LocalStatus {
        running,
        endpoint: "http://127.0.0.1:4566".into(),
        pid: running.then_some(4242),
        version: running.then(|| "4.0.0".to_string()),
        services: if running {
            vec!["ec2".into(), "sqs".into()]
        } else {
            vec![]
        },
        install_dir: "/cache/securecart/localstack".into(),
        installed: true,
        log_file: "/cache/securecart/localstack-4566.log".into(),
        strict: running.then(|| serde_json::json!({ "enabled": true })),
    };
    let (text, rec) = View::recording(false, false);
    text.emulator(&status(true), true);
    text.emulator(&status(false), true);
    // After `local stop` only the sentence about stopping shows.
    text.emulator_stopped(true);
    text.emulator(&status(false), false);
    let (json, rec_json) = View::recording(true, false);
    json.emulator_stopped(true);
    json.emulator(&status(false), false);
    let (out, _) = recorded(&rec);
    let (out_json, _) = recorded(&rec_json);
    insta::assert_snapshot!(format!("{out}---\n{out_json}"));
}

/// miette wraps long messages, which can cut a secret in two where masking by value no
/// longer finds it whole: the annotated form must be masked before it is laid out.
#[test]
fn annotated_diagnostics_mask_a_long_secret_before_wrapping() {
    set_color(false);
    let long = format!("Zq7-long-{}", "x7".repeat(200));
    crate::secrets::register(&long);
    let text = "name: shop\nresources: {}\n".to_string();
    let d = crate::blueprint::Diagnostics {
        file: std::sync::Arc::new(crate::blueprint::SourceFile::new(
            "t.yaml".into(),
            "t.yaml".into(),
            text,
        )),
        problems: vec![crate::blueprint::diagnostic::Problem::error(format!(
            "`{long}` is not a valid IPv4 CIDR block"
        ))
        .with_help(Some(format!("did you mean {long}?")))],
        secrets: vec![long.clone()],
    };
    let shown = diagnostics(&d, true);
    assert!(shown.contains("(sensitive)"), "{shown}");
    assert!(!shown.contains("x7x7"), "{shown}");
}

#[test]
fn the_estimate_reads_as_time_and_a_chain() {
    let e = crate::plan::Estimate {
        seconds: 1207,
        critical_path: vec![
            crate::plan::PathStep {
                id: "vpc".into(),
                action: "create",
                seconds: 2,
            },
            crate::plan::PathStep {
                id: "db".into(),
                action: "create",
                seconds: 540,
            },
            crate::plan::PathStep {
                id: "replica".into(),
                action: "update",
                seconds: 660,
            },
        ],
    };
    assert_eq!(
        super::estimate_line(&e),
        "Estimated time on AWS: ≈ 20 min; critical path: vpc → db (9 min) → update replica (11 min)"
    );
}
