//! An apply killed with SIGKILL part-way, then run again, finishes the job without
//! duplicates: securecart finds what the first run made by its tags and names.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::common::*;
use super::network::{assert_nothing_left, expected_network_census, network_census};

#[test]
fn apply_killed_midway_then_rerun_makes_no_duplicates() {
    let stack = stack("kill");
    emulator();
    let bp = repo().join("blueprints/network.yaml");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("securecart"))
        .args([
            "apply",
            "--local",
            "--yes",
            "--parallelism",
            "2",
            "--stack",
            &stack,
        ])
        .arg(&bp)
        .env("NO_COLOR", "1")
        // The killed run leaves its stack lock behind: a short lease lets the re-run take
        // it over within seconds instead of the default minute.
        .env("SECURECART_LOCK_LEASE_SECONDS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn apply");
    let stdout = child.stdout.take().expect("stdout");
    let mut created = 0;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if line.contains("✓ created") {
            created += 1;
        }
        lines.push(line);
        if created >= 4 {
            break;
        }
    }
    // SIGKILL: no chance to clean up or finish a step.
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(
        created >= 4,
        "apply ended before it was killed:\n{}",
        lines.join("\n")
    );
    let partial: usize = network_census(&stack).iter().map(|(_, n)| n).sum();
    assert!(
        partial < 15,
        "everything was already created; the kill came too late"
    );

    let (code, out, err) = run_json(
        &[
            "apply",
            bp.to_str().expect("utf-8"),
            "--yes",
            "--lock-timeout",
            "1m",
        ],
        &stack,
    );
    assert_eq!(code, 0, "re-run failed: {out:#}\n{err}");
    assert!(
        out["lock"]["took_over"].is_string(),
        "the killed run's lock was not taken over: {out:#}"
    );
    assert_eq!(
        network_census(&stack),
        expected_network_census(),
        "duplicates or missing resources"
    );
    assert_no_changes(&["plan", bp.to_str().expect("utf-8")], &stack);

    let (code, _, err) = run_json(&["destroy", "--yes"], &stack);
    assert_eq!(code, 0, "{err}");
    assert_nothing_left(&stack);
}
