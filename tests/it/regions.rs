//! Any region: blueprints name zones by position (`${stack.zones[N]}`), so they apply
//! unchanged in regions whose zone letters skip (ap-northeast-1: a, c, d; ca-central-1:
//! a, b, d), and a position a region lacks is a located error before any change.

use crate::common::{changes, emulator, repo, run_json};

/// Apply, a no-change plan and destroy of `blueprints/network.yaml` in `region`; the
/// subnets land in the region's first two zones.
fn network_in(region: &str, zones: [&str; 2]) {
    let stack = crate::common::stack(&format!("zones-{}", &region[..2]));
    let bp = repo().join("blueprints/network.yaml");
    let bp = bp.to_str().expect("utf-8 path");
    let (code, out, stderr) = run_json(&["apply", bp, "--yes", "--region", region], &stack);
    assert_eq!(code, 0, "{region}: {out:#}\n{stderr}");
    let zone_of = |id: &str| {
        out["plan"]["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .find(|a| a["id"] == id)
            .and_then(|a| {
                a["changes"]
                    .as_array()?
                    .iter()
                    .find(|c| c["attribute"] == "availability_zone")
                    .map(|c| c["after"].clone())
            })
            .unwrap_or_else(|| panic!("{region}: no zone for {id}: {out:#}"))
    };
    assert_eq!(zone_of("public_a"), zones[0], "{region}");
    assert_eq!(zone_of("public_b"), zones[1], "{region}");
    let (code, plan, stderr) = run_json(&["plan", bp, "--region", region], &stack);
    assert_eq!(code, 0, "{region}: {plan:#}\n{stderr}");
    assert!(changes(&plan["plan"]).is_empty(), "{region}: {plan:#}");
    let (code, out, stderr) = run_json(&["destroy", bp, "--yes", "--region", region], &stack);
    assert_eq!(code, 0, "{region}: {out:#}\n{stderr}");
}

#[test]
fn network_applies_in_tokyo_whose_zones_skip_b() {
    network_in("ap-northeast-1", ["ap-northeast-1a", "ap-northeast-1c"]);
}

#[test]
fn network_applies_in_canada_whose_zones_skip_c() {
    network_in("ca-central-1", ["ca-central-1a", "ca-central-1b"]);
}

/// Lab 03 wants three zones; a region with two stops at `${stack.zones[2]}` with the
/// zones it has, before any change.
#[test]
fn a_zone_position_past_the_region_is_a_located_error() {
    emulator();
    let stack = crate::common::stack("zones-two");
    let out = crate::common::cli()
        .args([
            "plan",
            "labs/03",
            "--local",
            "--region",
            "us-west-1",
            "--stack",
            &stack,
        ])
        .current_dir(repo())
        .output()
        .expect("run securecart");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("labs/03/blueprint.yaml:36:") || stderr.contains("blueprint.yaml:36:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("us-west-1 has 2 availability zone"),
        "{stderr}"
    );
    assert!(
        stderr.contains("us-west-1a") && stderr.contains("us-west-1b"),
        "{stderr}"
    );
}

/// A zone named by its ID (the same data centre in every account) plans as the zone's name
/// in this account; a zone the region lacks is an error at that place, before any read.
#[test]
fn zone_ids_plan_as_names_and_unknown_zones_are_refused() {
    let region = "ap-northeast-1";
    let zones = crate::common::rt().block_on(async {
        let sdk = crate::common::sdk().await;
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&sdk)
                .region(aws_sdk_ec2::config::Region::new(region))
                .build(),
        );
        let out = ec2
            .describe_availability_zones()
            .send()
            .await
            .expect("zones");
        let mut z: Vec<(String, String)> = out
            .availability_zones()
            .iter()
            .map(|z| {
                (
                    z.zone_name().unwrap_or_default().to_string(),
                    z.zone_id().unwrap_or_default().to_string(),
                )
            })
            .collect();
        z.sort();
        z
    });
    let (name, id) = zones.get(1).cloned().expect("a second zone");
    let (_dir, bp) = crate::common::copy_blueprint(&repo().join("blueprints/network.yaml"));
    crate::common::edit(&bp, "${stack.zones[1]}", &id);
    let stack = crate::common::stack("zone-id");
    let bp_s = bp.to_str().expect("utf-8 path");
    let (code, plan, stderr) = run_json(&["plan", bp_s, "--region", region], &stack);
    assert_eq!(code, 2, "{plan:#}\n{stderr}");
    let zone = plan["plan"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["id"] == "public_b")
        .and_then(|a| {
            a["changes"]
                .as_array()?
                .iter()
                .find(|c| c["attribute"] == "availability_zone")
                .map(|c| c["after"].clone())
        });
    assert_eq!(zone, Some(serde_json::json!(name)), "{id}");

    crate::common::edit(&bp, &id, "ap-northeast-1b");
    let out = crate::common::cli()
        .args([
            "plan", bp_s, "--local", "--region", region, "--stack", &stack,
        ])
        .output()
        .expect("run securecart");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("blueprint.yaml:35:"), "{stderr}");
    assert!(
        stderr.contains("`ap-northeast-1b` is not an availability zone of ap-northeast-1"),
        "{stderr}"
    );
}
