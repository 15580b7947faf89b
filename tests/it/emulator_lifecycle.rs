//! `securecart local status` tells the truth about the running emulator.

use super::common::{cli, emulator};

#[test]
fn status_reports_the_running_emulator() {
    let endpoint = emulator();
    let out = cli()
        .args(["local", "status", "--json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["running"], true);
    assert_eq!(v["endpoint"], endpoint);
    let services: Vec<String> = serde_json::from_value(v["services"].clone()).expect("services");
    for s in ["ec2", "sqs", "events", "rds", "elbv2", "autoscaling"] {
        assert!(
            services.iter().any(|x| x == s),
            "{s} not served: {services:?}"
        );
    }
}
