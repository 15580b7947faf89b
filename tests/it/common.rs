//! Shared test helpers: the emulator (started once per run), unique stack names, running
//! the CLI, and SDK clients that check AWS directly rather than through securecart.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use assert_cmd::Command;

/// Starts the bundled emulator once for the whole test run and returns its endpoint.
pub fn emulator() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let opts = securecart::local::LocalOptions::from_env(None);
        let status =
            securecart::local::ensure_running(&opts, &mut |m: &str| eprintln!("emulator: {m}"))
                .unwrap_or_else(|e| panic!("the bundled emulator did not start: {e}"));
        status.endpoint
    })
}

/// A stack name no other test (or earlier run) uses.
pub fn stack(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("t-{prefix}-{:x}", (nanos as u64) & 0xffff_ffff)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The CLI, pointed at the emulator, without colours.
pub fn cli() -> Command {
    let mut c = Command::cargo_bin("securecart").expect("binary");
    c.env("NO_COLOR", "1")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("SECURECART_STACK");
    c
}

/// `securecart <args> --local --stack <stack>` as JSON.
pub fn run_json(args: &[&str], stack: &str) -> (i32, serde_json::Value, String) {
    emulator();
    let out = cli()
        .args(args)
        .args(["--local", "--json", "--stack", stack])
        .output()
        .expect("run securecart");
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}); exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}")
    });
    (code, json, stderr)
}

/// Copies a blueprint into a temp dir so a test can edit it.
pub fn copy_blueprint(src: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dst = dir.path().join("blueprint.yaml");
    std::fs::copy(src, &dst).expect("copy blueprint");
    (dir, dst)
}

pub fn edit(path: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(path).expect("read");
    assert!(s.contains(from), "blueprint has no `{from}`");
    std::fs::write(path, s.replacen(from, to, 1)).expect("write");
}

/// Plan actions as (id, action) pairs, unchanged ones left out, sorted.
pub fn changes(plan: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["action"] != "noop")
        .map(|a| {
            (
                a["id"].as_str().unwrap_or_default().to_string(),
                a["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

pub fn mutating_calls(out: &serde_json::Value) -> u64 {
    out["stats"]["mutating_calls"]
        .as_u64()
        .expect("stats.mutating_calls")
}

/// SDK config for direct checks against the emulator.
pub async fn sdk() -> aws_config::SdkConfig {
    let endpoint = emulator();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs a raw EC2 delete again while AWS answers `DependencyViolation`: the network interfaces
/// of a just-deleted load balancer or DB instance linger for minutes and keep their subnets and
/// security groups in use (EC2 API reference, DeleteSecurityGroup / DeleteSubnet; the strict
/// emulator keeps them for its `eni` window). Gives up after a minute.
pub async fn delete_when_free<T, E, F, Fut>(what: &str, mut op: F) -> T
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let start = std::time::Instant::now();
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e)
                if e.code() == Some("DependencyViolation")
                    && start.elapsed() < std::time::Duration::from_secs(60) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

/// Plans with `args` (`["plan", blueprint, …]`) and asserts there is nothing left to do,
/// naming what remains otherwise: the check after every apply.
pub fn assert_no_changes(args: &[&str], stack: &str) {
    let (code, out, _) = run_json(args, stack);
    assert_eq!(code, 0, "changes remain: {:?}", changes(&out["plan"]));
}

/// Checks that `securecart permissions` covers a run: every AWS operation that `out` (the
/// `--json` output of `args`, e.g. `["apply", blueprint, "--yes"]`) records in its stats is
/// an action the blueprint's policy for that command allows. `args` may add flags of
/// `permissions` (`--kind event_rule`). Only actions are checked: the emulator does not
/// evaluate IAM, so resource scoping and conditions are not.
pub fn assert_permitted(args: &[&str], stack: &str, out: &serde_json::Value) {
    let missing = missing_permissions(args, stack, out);
    assert!(
        missing.is_empty(),
        "`securecart permissions {}` for {} lacks {missing:?}, which the run called",
        args[1],
        args[0]
    );
}

/// The actions a run called (see [`assert_permitted`]) that its policy lacks.
pub fn missing_permissions(args: &[&str], stack: &str, out: &serde_json::Value) -> Vec<String> {
    let command = args[0];
    assert!(
        ["plan", "apply", "destroy"].contains(&command),
        "no policy is made for `{command}`"
    );
    // The blueprint and its --var flags, without the run's own flags.
    let mut rest: Vec<&str> = args[1..]
        .iter()
        .copied()
        .filter(|a| !["--yes", "-y", "--allow-empty", "--all"].contains(a))
        .collect();
    assert!(
        rest.first().is_some_and(|b| !b.starts_with('-')),
        "{args:?}: a blueprint is needed to make its policy"
    );
    rest.extend(["--for", command, "--stack", stack, "--json"]);
    let policy = cli()
        .arg("permissions")
        .args(&rest)
        .output()
        .expect("run securecart permissions");
    assert!(
        policy.status.success(),
        "permissions {rest:?} failed: {}",
        String::from_utf8_lossy(&policy.stderr)
    );
    let policy: serde_json::Value = serde_json::from_slice(&policy.stdout).expect("policy JSON");
    let allowed: Vec<&str> = policy["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .flat_map(|p| p["document"]["Statement"].as_array().expect("statements"))
        .flat_map(|s| s["Action"].as_array().expect("actions"))
        .filter_map(|a| a.as_str())
        .collect();
    let calls = out["stats"]["calls"].as_array().expect("stats.calls");
    assert!(!calls.is_empty(), "{args:?} recorded no calls");
    let mut missing = Vec::new();
    for c in calls {
        let service = c["service"].as_str().expect("service");
        let operation = c["operation"].as_str().expect("operation");
        let prefix = securecart::permissions::iam_prefix(service)
            .unwrap_or_else(|| panic!("no IAM prefix known for the SDK service `{service}`"));
        // "No permissions are required to perform this operation" (STS API reference).
        if (prefix, operation) == ("sts", "GetCallerIdentity") {
            continue;
        }
        let action = format!("{prefix}:{operation}");
        if !allowed
            .iter()
            .any(|p| securecart::permissions::action_matches(p, &action))
        {
            missing.push(action);
        }
    }
    missing
}
