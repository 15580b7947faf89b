//! The stack lock on the emulator: two applies of one stack started together make no
//! duplicates (one applies, the other fails naming the holder or waits and finds nothing
//! left to do); a `kill -9`ed holder blocks the stack until its lease expires, then the
//! next apply takes over; `unlock` forces a lock free, and a run whose lock is forced
//! stops starting changes. Plus the S3 conditional writes the lock relies on, refused as
//! AWS refuses them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::common::*;
use super::network::{assert_nothing_left, expected_network_census, network_census};

fn network() -> String {
    repo()
        .join("blueprints/network.yaml")
        .to_str()
        .expect("utf-8")
        .to_string()
}

/// `securecart <args> --local --stack STACK` as a child process.
fn spawn(args: &[&str], stack: &str, envs: &[(&str, &str)]) -> Child {
    emulator();
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("securecart"));
    c.args(args)
        .args(["--local", "--stack", stack])
        .env("NO_COLOR", "1")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("SECURECART_STACK")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.spawn().expect("spawn securecart")
}

fn json_of(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}); exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Create steps an apply document shows as done.
fn creates_done(doc: &serde_json::Value) -> usize {
    doc["apply"]["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .filter(|s| s["op"] == "create" && s["outcome"] == "done")
                .count()
        })
        .unwrap_or(0)
}

/// Starts an apply (text output, one line per event) and kills it with SIGKILL once it
/// has created `created` resources: it dies holding the stack lock. Returns its pid.
fn apply_killed_holding_the_lock(stack: &str, bp: &str, lease: &str, created: usize) -> u32 {
    let mut child = spawn(
        &["apply", bp, "--yes", "--parallelism", "1"],
        stack,
        &[("SECURECART_LOCK_LEASE_SECONDS", lease)],
    );
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let mut done = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if line.contains("✓ created") {
            done += 1;
        }
        lines.push(line);
        if done >= created {
            break;
        }
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(
        done >= created,
        "the apply ended before it was killed:\n{}",
        lines.join("\n")
    );
    pid
}

#[test]
fn two_concurrent_applies_of_one_stack_make_no_duplicates() {
    let stack = stack("lock2");
    let bp = network();
    // Started together, as two pipelines of one branch would; the default lock timeout
    // (fail at once).
    let a = spawn(&["apply", &bp, "--yes", "--json"], &stack, &[]);
    let b = spawn(&["apply", &bp, "--yes", "--json"], &stack, &[]);
    let outs = [
        a.wait_with_output().expect("first apply"),
        b.wait_with_output().expect("second apply"),
    ];
    let mut created = 0;
    let mut refused = 0;
    for out in &outs {
        let doc = json_of(out);
        match out.status.code() {
            Some(0) => created += creates_done(&doc),
            Some(1) => {
                let e = doc["error"].as_str().expect("error");
                assert!(e.contains(&format!("stack `{stack}` is locked")), "{e}");
                for part in ["`apply` by arn:aws:", " on host ", "(pid ", " since "] {
                    assert!(e.contains(part), "the holder's {part:?} is missing: {e}");
                }
                refused += 1;
            }
            other => panic!("exit {other:?}: {doc:#}"),
        }
    }
    assert_eq!(
        created, 15,
        "the network blueprint was not created exactly once"
    );
    assert!(refused <= 1, "both applies were refused");
    assert_eq!(
        network_census(&stack),
        expected_network_census(),
        "duplicates or missing resources"
    );
    assert_no_changes(&["plan", &bp], &stack);

    // Both wait this time: the second takes the lock when the first ends, reads the
    // stack again under it, and finds nothing to do. (`--allow-empty`: should one start
    // late enough to find the stack gone already, that is no error either.)
    let destroy = [
        "destroy",
        "--yes",
        "--json",
        "--lock-timeout",
        "2m",
        "--allow-empty",
    ];
    let a = spawn(&destroy, &stack, &[]);
    let b = spawn(&destroy, &stack, &[]);
    let outs = [
        a.wait_with_output().expect("a"),
        b.wait_with_output().expect("b"),
    ];
    let mut deleted = 0;
    for out in &outs {
        let doc = json_of(out);
        assert_eq!(out.status.code(), Some(0), "{doc:#}");
        deleted += doc["destroy"]["steps"]
            .as_array()
            .map(|s| s.iter().filter(|s| s["outcome"] == "done").count())
            .unwrap_or(0);
    }
    assert_eq!(deleted, 15, "each resource deleted once: {outs:?}");
    assert_nothing_left(&stack);
}

#[test]
fn waiting_applies_take_turns_and_the_second_finds_nothing_to_do() {
    let stack = stack("lockwait");
    let bp = network();
    let a = spawn(
        &["apply", &bp, "--yes", "--json", "--lock-timeout", "2m"],
        &stack,
        &[],
    );
    let b = spawn(
        &["apply", &bp, "--yes", "--json", "--lock-timeout", "2m"],
        &stack,
        &[],
    );
    let outs = [
        a.wait_with_output().expect("a"),
        b.wait_with_output().expect("b"),
    ];
    let docs: Vec<serde_json::Value> = outs.iter().map(json_of).collect();
    for (out, doc) in outs.iter().zip(&docs) {
        assert_eq!(out.status.code(), Some(0), "{doc:#}");
    }
    let created: Vec<usize> = docs.iter().map(creates_done).collect();
    assert_eq!(created.iter().sum::<usize>(), 15, "{created:?}");
    // The one that created nothing waited for the other and planned again under the lock
    // (or, had it started after the other's run, planned no changes and took no lock).
    let second = &docs[created
        .iter()
        .position(|&n| n == 0)
        .expect("one created nothing")];
    assert_eq!(second["plan"]["summary"]["create"], 0, "{second:#}");
    if !second["lock"].is_null() {
        assert_eq!(second["lock"]["replanned"], true, "{second:#}");
    }
    assert_eq!(network_census(&stack), expected_network_census());

    let (code, _, err) = run_json(&["destroy", "--yes"], &stack);
    assert_eq!(code, 0, "{err}");
    assert_nothing_left(&stack);
}

#[test]
fn a_killed_holder_blocks_the_stack_until_its_lease_expires() {
    let stack = stack("lockkill");
    let bp = network();
    let lease = 6;
    let pid = apply_killed_holding_the_lock(&stack, &bp, &lease.to_string(), 1);
    let killed_at = Instant::now();

    // At once: refused, naming the dead holder.
    let (code, out, _) = run_json(&["apply", &bp, "--yes"], &stack);
    assert!(
        killed_at.elapsed() < Duration::from_secs(lease - 2),
        "too slow to see the lease held; the test needs a longer lease"
    );
    assert_eq!(code, 1, "{out:#}");
    let e = out["error"].as_str().expect("error");
    assert!(e.contains(&format!("(pid {pid}")), "{e}");
    assert!(e.contains("`apply` by"), "{e}");
    assert!(e.contains(&format!("lease {lease} s")), "{e}");
    assert!(e.contains("securecart unlock --stack"), "{e}");

    // Once the lease has run out, the next apply takes over and finishes the job.
    std::thread::sleep(Duration::from_secs(lease).saturating_sub(killed_at.elapsed()));
    let (code, out, err) = run_json(&["apply", &bp, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    let took_over = out["lock"]["took_over"].as_str().expect("took over");
    assert!(took_over.contains(&format!("(pid {pid}")), "{took_over}");
    assert_eq!(network_census(&stack), expected_network_census());

    let (code, _, err) = run_json(&["destroy", "--yes"], &stack);
    assert_eq!(code, 0, "{err}");
    assert_nothing_left(&stack);
}

#[test]
fn unlock_forces_a_lock_free_after_a_warning() {
    let stack = stack("unlock");
    let bp = network();
    // Nothing to unlock yet.
    let (code, out, _) = run_json(&["unlock", "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["unlocked"], false);

    // A holder killed with an hour-long lease: only `unlock` frees the stack soon.
    let pid = apply_killed_holding_the_lock(&stack, &bp, "3600", 1);
    let (code, out, _) = run_json(&["apply", &bp, "--yes"], &stack);
    assert_eq!(code, 1, "{out:#}");

    // Without --yes and without a terminal: the warning, then a refusal.
    let out = cli()
        .args(["unlock", "--local", "--stack", &stack])
        .output()
        .expect("unlock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("warning: stack `{stack}` is locked by `apply`")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("(pid {pid}")), "{stderr}");
    assert!(stderr.contains("a live lease"), "{stderr}");
    assert!(stderr.contains("pass --yes"), "{stderr}");

    let (code, out, _) = run_json(&["unlock", "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["unlocked"], true);
    assert_eq!(out["expired"], false);
    assert!(
        out["holder"]
            .as_str()
            .expect("holder")
            .contains(&format!("(pid {pid}")),
        "{out:#}"
    );
    assert!(
        out["object"]
            .as_str()
            .expect("object")
            .ends_with(&format!("/stacks/{stack}.json")),
        "{out:#}"
    );

    let (code, out, err) = run_json(&["apply", &bp, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    assert_eq!(out["lock"]["waited"], false, "{out:#}");
    assert_eq!(network_census(&stack), expected_network_census());
    let (code, _, err) = run_json(&["destroy", "--yes"], &stack);
    assert_eq!(code, 0, "{err}");
}

/// A run whose lock is forced away notices at its next renewal and starts nothing new.
/// Lab 03: the primary stays `creating` for the strict layer's `rds` window (3 s), so the
/// replicas have not started when the lock goes.
#[test]
fn a_run_that_loses_its_lock_stops_starting_changes() {
    let stack = stack("locklost");
    let bp = repo().join("labs/03").to_str().expect("utf-8").to_string();
    let mut child = spawn(
        &["apply", &bp, "--yes"],
        &stack,
        &[("SECURECART_LOCK_LEASE_SECONDS", "3")],
    );
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        let started = line.contains("creating primary");
        seen.push(line);
        if started {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("creating primary")),
        "{}",
        seen.join("\n")
    );
    let (code, out, _) = run_json(&["unlock", "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["unlocked"], true, "{out:#}");
    seen.extend(lines.map(|l| l.expect("line")));
    let status = child.wait().expect("apply");
    let text = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("the stack lock was taken from this run"),
        "{text}"
    );
    assert!(
        text.contains("apply stopped (the stack lock was lost)"),
        "{text}"
    );
    assert!(!text.contains("creating replica_b"), "{text}");
    assert!(!text.contains("creating replica_c"), "{text}");

    let (code, _, err) = run_json(&["destroy", &bp, "--yes"], &stack);
    assert_eq!(code, 0, "{err}");
}

/// The two S3 conditions the lock is made of, straight through the SDK: AWS refuses a
/// create-if-absent of an existing object and a replace-if-unchanged of a changed one
/// with `412 PreconditionFailed`
/// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html), and
/// so does the bundled emulator (LocalStack's own S3 provider checks both under one
/// lock; see emulator/README.md).
#[test]
fn s3_conditional_writes_refuse_as_aws_does() {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;
    rt().block_on(async {
        let cfg = sdk().await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&cfg)
                .force_path_style(true)
                .build(),
        );
        let bucket = stack("cond");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket");
        let put = |body: &'static str| {
            s3.put_object()
                .bucket(&bucket)
                .key("k")
                .body(ByteStream::from_static(body.as_bytes()))
        };
        let first = put("one").if_none_match("*").send().await.expect("create");
        let e = put("two")
            .if_none_match("*")
            .send()
            .await
            .expect_err("a second create-if-absent");
        assert_eq!(e.code(), Some("PreconditionFailed"), "{e:?}");
        let etag = first.e_tag().expect("etag").to_string();
        let second = put("three").if_match(&etag).send().await.expect("replace");
        let e = put("four")
            .if_match(&etag)
            .send()
            .await
            .expect_err("a replace against a stale ETag");
        assert_eq!(e.code(), Some("PreconditionFailed"), "{e:?}");
        assert_ne!(second.e_tag(), first.e_tag());
        let body = s3
            .get_object()
            .bucket(&bucket)
            .key("k")
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        assert_eq!(&body[..], b"three");
        s3.delete_object()
            .bucket(&bucket)
            .key("k")
            .send()
            .await
            .expect("delete");
        s3.delete_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("delete bucket");
    });
}
