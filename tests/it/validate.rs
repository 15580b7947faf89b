//! Bad blueprints: each fixture in tests/fixtures/bad states the errors it must produce
//! (`# expect: LINE:COL message`, or `# expect: FILE:LINE:COL message` for an error inside
//! a file the blueprint names, FILE relative to the fixture's folder), and `validate` must
//! report all of them, exit 1, and never call AWS. `# args: …` adds command-line
//! arguments; `# expect-only` says the expected errors are all there is (one root cause,
//! reported once); `# absent: TEXT` says TEXT (a secret) must appear in no output.

use super::common::{cli, repo};

#[test]
fn every_bad_blueprint_reports_its_errors_with_positions() {
    let dir = repo().join("tests/fixtures/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        // `files/` holds what the fixtures' file fields name.
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "fixtures missing");
    let mut failures = Vec::new();
    for f in &files {
        // Lossy: one fixture is deliberately not UTF-8.
        let text = String::from_utf8_lossy(&std::fs::read(f).expect("read fixture")).into_owned();
        let expects: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|e| {
                let (pos, msg) = split_position(e).expect("`# expect: LINE:COL message`");
                (pos.to_string(), msg.to_string())
            })
            .collect();
        assert!(
            !expects.is_empty(),
            "{} has no `# expect:` line",
            f.display()
        );
        let args: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# args: "))
            .flat_map(str::split_whitespace)
            .collect();
        let only = text.lines().any(|l| l.starts_with("# expect-only"));
        // An endpoint that cannot answer: any AWS call would fail loudly.
        let out = cli()
            .arg("validate")
            .arg(f)
            .args(&args)
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) {
            failures.push(format!(
                "{}: exit {:?}, expected 1\n{stderr}",
                f.display(),
                out.status.code()
            ));
        }
        let absent: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# absent: "))
            .collect();
        let stdout = String::from_utf8_lossy(&out.stdout);
        for a in &absent {
            if stderr.contains(a) || stdout.contains(a) {
                failures.push(format!(
                    "{}: `{a}` must not be shown:\n{stdout}{stderr}",
                    f.display()
                ));
            }
        }
        for (pos, msg) in &expects {
            let want = match pos.rsplitn(3, ':').collect::<Vec<_>>().as_slice() {
                [col, line, file] => format!(
                    "{}:{line}:{col}: error: ",
                    f.parent().expect("folder").join(file).display()
                ),
                _ => format!("{}:{pos}: error: ", f.display()),
            };
            let found = stderr
                .lines()
                .any(|l| l.starts_with(&want) && l.contains(msg.as_str()));
            if !found {
                failures.push(format!(
                    "{}: expected `{want}…{msg}…` in:\n{stderr}",
                    f.display()
                ));
            }
        }
        let errors = stderr.lines().filter(|l| l.contains(": error: ")).count();
        if only && errors != expects.len() {
            failures.push(format!(
                "{}: {errors} errors where only the {} expected should be:\n{stderr}",
                f.display(),
                expects.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `[FILE:]LINE:COL message` split after its position (FILE may hold spaces).
fn split_position(e: &str) -> Option<(&str, &str)> {
    e.match_indices(' ').map(|(i, _)| i).find_map(|i| {
        let pos = &e[..i];
        let mut parts = pos.rsplitn(3, ':');
        let numbers =
            parts.next()?.parse::<usize>().is_ok() && parts.next()?.parse::<usize>().is_ok();
        numbers.then(|| (pos, &e[i + 1..]))
    })
}

/// Nesting thousands of levels deep once overflowed the stack (exit 134) before any
/// check ran; every command must refuse it as a located error instead.
#[test]
fn deep_nesting_fails_cleanly_in_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = "name: deep\nresources:\n  a:\n    type: vpc\n    tags:\n";
    let cases = [
        ("seq4k", format!("{head}      {}x\n", "- ".repeat(4_000)), 6),
        (
            "seq100k",
            format!("{head}      {}x\n", "- ".repeat(100_000)),
            6,
        ),
        (
            "map4k",
            format!(
                "{head}{}",
                (0..4_000)
                    .map(|i| format!("{}k{i}:\n", " ".repeat(6 + i)))
                    .collect::<String>()
            ),
            // The root, `resources`, `a` and 97 of these make 100 levels.
            103,
        ),
        (
            "flow100k",
            format!("{head}      {}\n", "[".repeat(100_000)),
            6,
        ),
        (
            "flowmap4k",
            format!(
                "{head}      {}1{}\n",
                "{a: ".repeat(4_000),
                "}".repeat(4_000)
            ),
            6,
        ),
    ];
    for (name, text, line) in cases {
        let f = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&f, text).expect("write");
        for cmd in ["validate", "plan", "graph"] {
            let out = cli()
                .arg(cmd)
                .arg(&f)
                .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
                .output()
                .expect("run");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name} {cmd}: {stderr}");
            let want = format!("{}:{line}:", f.display());
            assert!(
                stderr.contains(&want) && stderr.contains("nested more than 100 levels deep"),
                "{name} {cmd}: {stderr}"
            );
        }
    }
}

/// Files that cannot be committed as fixtures: a FIFO (reading it would block forever,
/// like /dev/zero would never end) and a truly empty code folder. Both must fail at
/// `validate`, located at their field, without hanging.
#[cfg(unix)]
#[test]
fn special_files_and_empty_code_folders_fail_at_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let made = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe.json"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
    let bp = dir.path().join("blueprint.yaml");
    std::fs::write(
        &bp,
        "name: special\nresources:\n  flow:\n    type: state_machine\n    definition_file: pipe.json\n  fn:\n    type: lambda_function\n    code: empty\n    runtime: python3.12\n    handler: app.handler\n",
    )
    .expect("write");
    let out = cli()
        .arg("validate")
        .arg(&bp)
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let at = |pos: &str| format!("{}:{pos}: error: ", bp.display());
    assert!(
        stderr.contains(&format!("{}`pipe.json` is not a regular file", at("5:22"))),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}the folder `empty` holds no files", at("8:11"))),
        "{stderr}"
    );
    // A blueprint path that never ends is read up to a cap, not until memory runs out.
    let out = cli()
        .args(["validate", "/dev/zero"])
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("too large to be a blueprint"), "{stderr}");
}

#[test]
fn json_mode_reports_problems_as_data() {
    let out = cli()
        .args(["validate", "--json"])
        .arg(repo().join("tests/fixtures/bad/unknown_field.yaml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let problems = v["problems"].as_array().expect("problems");
    let p = problems
        .iter()
        .find(|p| p["path"] == "resources.vpc.cidr_blok")
        .expect("the unknown field is reported");
    assert_eq!(
        (p["line"].as_u64(), p["column"].as_u64()),
        (Some(6), Some(5))
    );
    assert_eq!(p["severity"], "error");
    assert!(p["help"]
        .as_str()
        .unwrap_or_default()
        .contains("cidr_block"));
    assert!(p.get("file").is_none(), "in the blueprint itself: {p}");
    // A problem inside a definition file names that file.
    let out = cli()
        .args(["validate", "--json"])
        .arg(repo().join("tests/fixtures/bad/definition_file_errors.yaml"))
        .output()
        .expect("run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let p = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .find(|p| p["path"] == "resources.orders.definition.States.Validate.Next")
        .expect("the bad Next is reported");
    assert!(
        p["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("files/order_flow.asl.yaml")),
        "{p}"
    );
    assert_eq!(
        (p["line"].as_u64(), p["column"].as_u64()),
        (Some(6), Some(11))
    );
}

#[test]
fn shipped_blueprints_are_valid() {
    let mut shipped: Vec<_> = std::fs::read_dir(repo().join("blueprints"))
        .expect("blueprints/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    if let Ok(labs) = std::fs::read_dir(repo().join("labs")) {
        shipped.extend(
            labs.map(|e| e.expect("entry").path())
                .filter(|p| p.join("blueprint.yaml").is_file()),
        );
    }
    assert!(!shipped.is_empty());
    for bp in shipped {
        let out = cli().arg("validate").arg(&bp).output().expect("run");
        assert!(
            out.status.success(),
            "{}: {}",
            bp.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_folder_argument_uses_its_blueprint_yaml() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo().join("blueprints/network.yaml"),
        dir.path().join("blueprint.yaml"),
    )
    .expect("copy");
    cli().arg("validate").arg(dir.path()).assert().success();
    let empty = tempfile::tempdir().expect("tempdir");
    let out = cli()
        .arg("validate")
        .arg(empty.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("blueprint.yaml"));
}

#[test]
fn vars_override_parameters_and_unknown_vars_are_errors() {
    let bp = repo().join("blueprints/network.yaml");
    cli()
        .args(["validate", "--var", "vpc_cidr=10.30.0.0/16"])
        .arg(&bp)
        .assert()
        .failure()
        .code(1);
    let out = cli()
        .args(["validate", "--var", "nope=1"])
        .arg(&bp)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no parameter `nope`"));
}

#[test]
fn schema_describes_every_kind() {
    let out = cli().arg("schema").output().expect("run");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let kinds = v["properties"]["resources"]["additionalProperties"]["properties"]["type"]["enum"]
        .as_array()
        .expect("kinds")
        .clone();
    // Every registered kind, not a list that falls behind the registry.
    let registry: Vec<&str> = securecart::resources::REGISTRY
        .iter()
        .map(|k| k.name())
        .collect();
    assert_eq!(kinds.len(), registry.len(), "{kinds:?}");
    for k in registry {
        assert!(kinds.iter().any(|x| x == k), "schema lacks {k}");
        assert!(
            v["$defs"][format!("kind.{k}")].is_object(),
            "no definition for {k}"
        );
    }
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let bp = repo().join("blueprints/network.yaml");
    let out = cli().arg("graph").arg(&bp).output().expect("run");
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("\"vpc\" -> \"public_a\""), "{dot}");
    let out = cli()
        .args(["graph", "--format", "mermaid"])
        .arg(&bp)
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("igw --> public_routes"));
}

#[test]
fn local_refuses_a_non_loopback_endpoint() {
    let out = cli()
        .args([
            "plan",
            "--local",
            "--endpoint-url",
            "https://ec2.us-east-1.amazonaws.com",
        ])
        .arg(repo().join("blueprints/network.yaml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-loopback"));
}

#[test]
fn usage_errors_have_their_own_exit_code() {
    let out = cli().args(["plan"]).output().expect("run");
    assert_eq!(out.status.code(), Some(64));
}
