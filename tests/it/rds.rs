//! labs/03 (RDS read replicas) end to end on the emulator: apply, a no-change plan, one
//! more replica and a bigger primary, a promotion, destroy — checked with direct SDK
//! calls, not securecart's own reading code. Also: the primary's generated password
//! (stored in SSM, never shown, never regenerated, deleted with the stack), the replica
//! of a Secrets-Manager-managed primary refused at plan time, and a re-run after an
//! apply killed while RDS was still creating the primary.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use aws_sdk_ec2::types::Filter;
use aws_sdk_rds::types::DbInstance;
use aws_sdk_ssm::types::{Parameter, ParameterType};

use super::common::*;

/// An SSM parameter, decrypted, straight from SSM (None: not there).
async fn ssm_parameter(name: String) -> Option<Parameter> {
    let ssm = aws_sdk_ssm::Client::new(&sdk().await);
    match ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
    {
        Ok(out) => out.parameter().cloned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_parameter_not_found()) =>
        {
            None
        }
        Err(e) => panic!("GetParameter: {e:?}"),
    }
}

/// The generated master password's parameter of the primary.
async fn password_parameter(stack: &str) -> Option<Parameter> {
    ssm_parameter(format!("/securecart/{stack}/primary/master-password")).await
}

/// The digest record of a DB instance's blueprint password.
async fn digest_record(stack: &str, id: &str) -> Option<Parameter> {
    ssm_parameter(format!("/securecart/{stack}/{id}/master-password-digest")).await
}

/// Checks that no output of a run shows `secret`.
fn assert_not_shown(secret: &str, outputs: &[&str]) {
    for o in outputs {
        assert!(!o.contains(secret), "the master password is on screen");
    }
}

fn tag(db: &DbInstance, key: &str) -> Option<String> {
    db.tag_list()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value().map(str::to_string))
}

/// The stack's DB instances by blueprint id, straight from DescribeDBInstances (every
/// page: AWS, and the strict emulator, answer in pages).
async fn instances(stack: &str) -> std::collections::BTreeMap<String, DbInstance> {
    let rds = aws_sdk_rds::Client::new(&sdk().await);
    rds.describe_db_instances()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("describe instances")
        .iter()
        .filter(|db| tag(db, "securecart:stack").as_deref() == Some(stack))
        .filter(|db| db.db_instance_status() != Some("deleting"))
        .filter_map(|db| Some((tag(db, "securecart:resource")?, db.clone())))
        .collect()
}

/// EC2 ids of the stack's resources with blueprint id `id`.
async fn ec2_ids(stack: &str, what: &str, id: &str) -> Vec<String> {
    let ec2 = aws_sdk_ec2::Client::new(&sdk().await);
    let f = |k: &str, v: &str| Filter::builder().name(format!("tag:{k}")).values(v).build();
    match what {
        "subnet" => ec2
            .describe_subnets()
            .filters(f("securecart:stack", stack))
            .filters(f("securecart:resource", id))
            .send()
            .await
            .expect("subnets")
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id().map(str::to_string))
            .collect(),
        "vpc" => ec2
            .describe_vpcs()
            .filters(f("securecart:stack", stack))
            .filters(f("securecart:resource", id))
            .send()
            .await
            .expect("vpcs")
            .vpcs()
            .iter()
            .filter_map(|v| v.vpc_id().map(str::to_string))
            .collect(),
        _ => ec2
            .describe_security_groups()
            .filters(f("securecart:stack", stack))
            .filters(f("securecart:resource", id))
            .send()
            .await
            .expect("security groups")
            .security_groups()
            .iter()
            .filter_map(|s| s.group_id().map(str::to_string))
            .collect(),
    }
}

/// Destroys the stack and checks, with the SDK, that no DB instance of it and no
/// password parameter is left.
fn destroy_leaves_no_instance_or_password(stack: &str, bp: &str) {
    let (code, out, err) = run_json(&["destroy", bp, "--yes"], stack);
    assert_eq!(code, 0, "destroy failed: {out:#}\n{err}");
    rt().block_on(async {
        assert!(instances(stack).await.is_empty(), "DB instances remain");
        assert!(
            password_parameter(stack).await.is_none(),
            "the password parameter remains"
        );
    });
}

/// Destroys the stack if the test fails half-way, so the shared emulator stays clean.
struct Cleanup<'a>(&'a str, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = run_json(&["destroy", self.1, "--yes"], self.0);
        }
    }
}

#[test]
fn rds_read_replicas_lab() {
    let stack = stack("rds");
    let (_dir, bp) = copy_blueprint(&repo().join("labs/03/blueprint.yaml"));
    let bp_s = bp.to_str().expect("utf-8 path");
    let _cleanup = Cleanup(&stack, bp_s);

    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "apply failed: {out:#}\n{err}");
    assert_permitted(&["apply", bp_s], &stack, &out);
    for o in ["primary_endpoint", "reader_b_endpoint", "reader_c_endpoint"] {
        let v = out["outputs"][o].as_str().unwrap_or_default();
        assert!(v.contains(".rds."), "output {o} = {v:?}");
    }
    assert_eq!(
        out["outputs"]["master_password_parameter"],
        format!("/securecart/{stack}/primary/master-password")
    );
    // Generated into SSM as a SecureString of the stack, and shown nowhere.
    let password = rt().block_on(async {
        let p = password_parameter(&stack)
            .await
            .expect("no password parameter");
        assert_eq!(p.r#type(), Some(&ParameterType::SecureString));
        assert_eq!(p.version(), 1);
        assert_tagged_for(p.name().unwrap_or_default(), &stack, "primary").await;
        p.value().unwrap_or_default().to_string()
    });
    assert!(
        password.len() >= 32,
        "a weak password: {} chars",
        password.len()
    );
    assert_not_shown(&password, &[&out.to_string(), &err]);

    rt().block_on(async {
        let dbs = instances(&stack).await;
        assert_eq!(
            dbs.keys().map(String::as_str).collect::<Vec<_>>(),
            ["primary", "replica_b", "replica_c"]
        );
        let primary = &dbs["primary"];
        let primary_id = primary.db_instance_identifier().expect("identifier");
        assert_eq!(primary.engine(), Some("postgres"));
        assert_eq!(primary.storage_encrypted(), Some(true));
        assert_eq!(primary.publicly_accessible(), Some(false));
        assert!(primary.backup_retention_period().unwrap_or(0) >= 1);
        // RDS refuses replicas of a primary whose password Secrets Manager manages.
        assert!(
            primary.master_user_secret().is_none(),
            "the primary's password is managed by Secrets Manager"
        );
        assert_eq!(
            tag(primary, "securecart:master-password-parameter"),
            Some(format!("/securecart/{stack}/primary/master-password"))
        );

        // Each replica's source is the primary, and every instance has a zone of its own.
        let mut zones = BTreeSet::new();
        for (id, db) in &dbs {
            if id != "primary" {
                assert_eq!(
                    db.read_replica_source_db_instance_identifier(),
                    Some(primary_id),
                    "{id}"
                );
            }
            assert!(
                zones.insert(db.availability_zone().unwrap_or_default().to_string()),
                "{id} shares a zone: {zones:?}"
            );
        }

        // In the subnet group of the stack's three DB subnets, behind the DB security group.
        let group = primary.db_subnet_group().expect("subnet group");
        let in_group: BTreeSet<String> = group
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_identifier().map(str::to_string))
            .collect();
        let mut ours = BTreeSet::new();
        for s in ["db_a", "db_b", "db_c"] {
            ours.extend(ec2_ids(&stack, "subnet", s).await);
        }
        assert_eq!(in_group, ours);
        let group_zones: BTreeSet<&str> = group
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_availability_zone()?.name())
            .collect();
        let db_sg = ec2_ids(&stack, "security_group", "db_sg").await;
        assert_eq!(db_sg.len(), 1);
        for (id, db) in &dbs {
            assert!(
                group_zones.contains(db.availability_zone().unwrap_or_default()),
                "{id} is outside the subnet group's zones"
            );
            let sgs: Vec<&str> = db
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id())
                .collect();
            assert_eq!(sgs, [db_sg[0].as_str()], "{id}");
        }
    });

    // Right after apply: nothing to do, found without a mutating call.
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_permitted(&["plan", bp_s], &stack, &out);
    assert_eq!(
        code, 0,
        "plan after apply shows changes: {:#}",
        out["plan"]["actions"]
    );
    assert_eq!(mutating_calls(&out), 0);

    // A third replica and a bigger primary: the plan shows exactly those.
    edit(
        &bp,
        "    instance_class: db.t4g.micro\n",
        "    instance_class: db.t4g.small\n",
    );
    edit(
        &bp,
        "  # replica_b2:\n  #   type: db_read_replica\n  #   source: ${primary}\n  #   instance_class: ${params.instance_class}\n  #   availability_zone: ${stack.zones[1]}\n  #   final_snapshot: false\n",
        "  replica_b2:\n    type: db_read_replica\n    source: ${primary}\n    instance_class: ${params.instance_class}\n    availability_zone: ${stack.zones[1]}\n    final_snapshot: false\n",
    );
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2);
    assert_eq!(
        changes(&out["plan"]),
        [
            ("primary".to_string(), "update".to_string()),
            ("replica_b2".to_string(), "create".to_string())
        ]
    );
    let primary = out["plan"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["id"] == "primary")
        .expect("primary")
        .clone();
    assert_eq!(
        primary["changes"].as_array().map(Vec::len),
        Some(1),
        "{primary:#}"
    );
    assert_eq!(primary["changes"][0]["attribute"], "instance_class");
    assert_eq!(primary["changes"][0]["before"], "db.t4g.micro");
    assert_eq!(primary["changes"][0]["after"], "db.t4g.small");

    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "apply of the edit failed: {out:#}\n{err}");
    assert_not_shown(&password, &[&out.to_string(), &err]);
    rt().block_on(async {
        // A later apply keeps the password: same value, never written again.
        let p = password_parameter(&stack)
            .await
            .expect("password parameter");
        assert_eq!((p.version(), p.value()), (1, Some(password.as_str())));
        let dbs = instances(&stack).await;
        assert_eq!(dbs["primary"].db_instance_class(), Some("db.t4g.small"));
        let b2 = dbs.get("replica_b2").expect("replica_b2 exists");
        assert_eq!(
            b2.read_replica_source_db_instance_identifier(),
            dbs["primary"].db_instance_identifier()
        );
        assert_eq!(b2.availability_zone(), Some("us-east-1b"));
    });
    assert_no_changes(&["plan", bp_s], &stack);

    // Promotion: an update named as such, made, then quiet.
    edit(
        &bp,
        "    availability_zone: ${stack.zones[2]}\n    final_snapshot: false\n",
        "    availability_zone: ${stack.zones[2]}\n    final_snapshot: false\n    promote: true\n",
    );
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2);
    assert_eq!(
        changes(&out["plan"]),
        [("replica_c".to_string(), "update".to_string())]
    );
    let action = &out["plan"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["id"] == "replica_c")
        .expect("replica_c")
        .clone();
    assert!(
        action["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("promoted"),
        "{action:#}"
    );
    assert_eq!(action["changes"][0]["attribute"], "promoted");
    assert_eq!(action["changes"][0]["before"], false);
    assert_eq!(action["changes"][0]["after"], true);
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "promotion failed: {out:#}\n{err}");
    assert_permitted(&["apply", bp_s], &stack, &out);
    let promoted = out["stats"]["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .any(|c| c["operation"] == "PromoteReadReplica" && c["count"] == 1);
    assert!(promoted, "no PromoteReadReplica call: {:#}", out["stats"]);
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(
        code,
        0,
        "plan after the promotion shows changes: {:?}",
        changes(&out["plan"])
    );

    // Destroy: nothing of the stack is left, checked with the SDK.
    let (code, out, err) = run_json(&["destroy", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "destroy failed: {out:#}\n{err}");
    assert_permitted(&["destroy", bp_s], &stack, &out);
    rt().block_on(async {
        assert!(instances(&stack).await.is_empty(), "DB instances remain");
        assert!(
            password_parameter(&stack).await.is_none(),
            "the password parameter remains"
        );
        let rds = aws_sdk_rds::Client::new(&sdk().await);
        let groups = rds
            .describe_db_subnet_groups()
            .send()
            .await
            .expect("subnet groups");
        let left: Vec<_> = groups
            .db_subnet_groups()
            .iter()
            .filter_map(|g| g.db_subnet_group_name())
            .filter(|n| n.starts_with(&format!("{stack}-")))
            .collect();
        assert!(left.is_empty(), "subnet groups remain: {left:?}");
        let snapshots = rds.describe_db_snapshots().send().await.expect("snapshots");
        assert!(
            !snapshots.db_snapshots().iter().any(|s| s
                .db_snapshot_identifier()
                .unwrap_or_default()
                .starts_with(&stack)),
            "a final snapshot was taken although the lab turns them off"
        );
        for s in ["db_a", "db_b", "db_c"] {
            assert!(ec2_ids(&stack, "subnet", s).await.is_empty(), "{s} remains");
        }
        assert!(ec2_ids(&stack, "security_group", "db_sg").await.is_empty());
        assert!(ec2_ids(&stack, "vpc", "vpc").await.is_empty());
    });
}

#[test]
fn a_replica_of_a_primary_whose_password_secrets_manager_keeps_fails_at_plan_time() {
    let stack = stack("rdsmanaged");
    let (_dir, bp) = copy_blueprint(&repo().join("labs/03/blueprint.yaml"));
    // Lab 03 as it was: the primary's password left to Secrets Manager.
    edit(&bp, "    master_password: generated\n", "");
    let text = std::fs::read_to_string(&bp).expect("read");
    let (code, out, err) = run_json(&["plan", bp.to_str().expect("utf-8")], &stack);
    assert_eq!(code, 1, "{out:#}\n{err}");
    assert_eq!(out["error"], "invalid blueprint", "{out:#}");
    // One error per replica, each at its own `source:` line, saying why and what to do.
    for replica in ["replica_b", "replica_c"] {
        let start = text
            .find(&format!("\n  {replica}:\n"))
            .expect("replica in the lab");
        let line = text[..start + text[start..].find("    source:").expect("source")]
            .lines()
            .count()
            + 1;
        let p = out["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .find(|p| p["path"] == format!("resources.{replica}.source"))
            .unwrap_or_else(|| panic!("no problem at {replica}.source: {out:#}"));
        assert_eq!(p["severity"], "error");
        assert_eq!(
            (p["line"].as_u64(), p["column"].as_u64()),
            (Some(line as u64), Some(13)),
            "{p:#}"
        );
        let message = p["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("ManageMasterUserPassword is enabled is not supported")
                && message.contains("Limitations"),
            "{message}"
        );
        assert!(
            p["help"]
                .as_str()
                .unwrap_or_default()
                .contains("master_password: generated"),
            "{p:#}"
        );
    }
    // Refused before anything was made.
    rt().block_on(async {
        assert!(instances(&stack).await.is_empty());
        assert!(ec2_ids(&stack, "vpc", "vpc").await.is_empty());
    });
}

#[test]
fn a_stored_password_is_reused_and_a_foreign_one_is_refused() {
    let stack = stack("rdspw");
    let (_dir, bp) = copy_blueprint(&repo().join("labs/03/blueprint.yaml"));
    let bp_s = bp.to_str().expect("utf-8 path");
    let _cleanup = Cleanup(&stack, bp_s);
    let name = format!("/securecart/{stack}/primary/master-password");
    let put = |value: &'static str, tagged: bool| {
        let name = name.clone();
        let stack = stack.clone();
        rt().block_on(async move {
            let ssm = aws_sdk_ssm::Client::new(&sdk().await);
            let mut req = ssm
                .put_parameter()
                .name(&name)
                .value(value)
                .r#type(ParameterType::SecureString);
            if tagged {
                for (k, v) in [
                    ("securecart:stack", stack.as_str()),
                    ("securecart:resource", "primary"),
                ] {
                    req = req.tags(
                        aws_sdk_ssm::types::Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                            .expect("tag"),
                    );
                }
            }
            req.send().await.expect("put parameter");
        })
    };

    // Someone else's parameter at that name: refused, neither used nor overwritten.
    const FOREIGN: &str = "Someone-elses-value-0123456789";
    put(FOREIGN, false);
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 1, "{out:#}\n{err}");
    let failed = out["apply"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == "primary")
        .expect("primary step")
        .clone();
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("is not tagged as the master password of `primary`"),
        "{failed:#}"
    );
    assert_not_shown(FOREIGN, &[&out.to_string(), &err]);
    rt().block_on(async {
        assert!(instances(&stack).await.is_empty(), "a primary was created");
        let p = password_parameter(&stack).await.expect("parameter");
        assert_eq!((p.version(), p.value()), (1, Some(FOREIGN)));
        aws_sdk_ssm::Client::new(&sdk().await)
            .delete_parameter()
            .name(&name)
            .send()
            .await
            .expect("delete parameter");
    });

    // What an apply killed after storing the password leaves: the next one uses it.
    const STORED: &str = "Stored-by-an-earlier-run-0123456789";
    put(STORED, true);
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    assert_not_shown(STORED, &[&out.to_string(), &err]);
    rt().block_on(async {
        let p = password_parameter(&stack).await.expect("parameter");
        assert_eq!((p.version(), p.value()), (1, Some(STORED)));
        assert_eq!(instances(&stack).await.len(), 3);
    });

    destroy_leaves_no_instance_or_password(&stack, bp_s);
}

#[test]
fn a_rerun_waits_for_the_primary_a_killed_apply_left_creating() {
    let stack = stack("rdskill");
    emulator();
    let (_dir, bp) = copy_blueprint(&repo().join("labs/03/blueprint.yaml"));
    let bp_s = bp.to_str().expect("utf-8 path");
    let _cleanup = Cleanup(&stack, bp_s);
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("securecart"))
        .args(["apply", "--local", "--yes", "--stack", &stack, bp_s])
        .env("NO_COLOR", "1")
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn apply");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let created = line.contains("creating primary: RDS is creating the instance");
        lines.push(line);
        if created {
            break;
        }
    }
    // SIGKILL right after CreateDBInstance: no chance to wait for it.
    child.kill().expect("kill -9");
    let _ = child.wait();
    let lines = lines.join("\n");
    assert!(
        lines.contains("RDS is creating the instance"),
        "apply ended before CreateDBInstance:\n{lines}"
    );

    rt().block_on(async {
        let dbs = instances(&stack).await;
        let primary = dbs.get("primary").expect("the primary was created");
        // The emulator's strict layer (SECURECART_STRICT rds window) keeps a new
        // instance `creating` without an Endpoint, as RDS does for minutes.
        assert_eq!(
            (primary.db_instance_status(), primary.endpoint().is_some()),
            (Some("creating"), false),
            "the emulator made the primary available at once: is its strict rds window on?"
        );
        assert!(!dbs.contains_key("replica_b") && !dbs.contains_key("replica_c"));
    });

    // The killed run still holds the stack lock (its lease runs a minute): force it free
    // at once, while the primary is still `creating`.
    let (code, out, _) = run_json(&["unlock", "--yes"], &stack);
    assert_eq!(
        (code, &out["unlocked"]),
        (0, &serde_json::json!(true)),
        "{out:#}"
    );
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "re-run failed: {out:#}\n{err}");
    // The re-run saw the primary still `creating`: an update that waits, not a failure
    // of the replicas on values "not known yet".
    let primary = out["plan"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["id"] == "primary")
        .expect("primary")
        .clone();
    assert_eq!(
        primary["action"], "update",
        "the re-run read the primary after the strict rds window ended (a slow machine? raise SECURECART_STRICT rds=): {primary:#}"
    );
    assert_eq!(primary["changes"][0]["attribute"], "status", "{primary:#}");
    assert_eq!(primary["changes"][0]["before"], "creating");
    assert_eq!(primary["changes"][0]["after"], "available");
    for o in ["primary_endpoint", "reader_b_endpoint", "reader_c_endpoint"] {
        let v = out["outputs"][o].as_str().unwrap_or_default();
        assert!(v.contains(".rds."), "output {o} = {v:?}");
    }
    rt().block_on(async {
        let dbs = instances(&stack).await;
        assert_eq!(
            dbs.keys().map(String::as_str).collect::<Vec<_>>(),
            ["primary", "replica_b", "replica_c"]
        );
        // One password, stored before CreateDBInstance by the killed run, and kept.
        let p = password_parameter(&stack)
            .await
            .expect("password parameter");
        assert_eq!(p.version(), 1);
    });
    assert_no_changes(&["plan", bp_s], &stack);

    destroy_leaves_no_instance_or_password(&stack, bp_s);
}

#[test]
fn switching_between_secrets_manager_and_a_generated_password_converges() {
    let stack = stack("rdsswitch");
    let lab = std::fs::read_to_string(repo().join("labs/03/blueprint.yaml")).expect("lab");
    // Lab 03's primary alone, its password left to Secrets Manager.
    let primary_only = lab[..lab.find("\n  replica_b:\n").expect("replica_b")]
        .replace("    master_password: generated\n", "")
        + "\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let bp = dir.path().join("blueprint.yaml");
    std::fs::write(&bp, &primary_only).expect("write");
    let bp_s = bp.to_str().expect("utf-8 path");
    let _cleanup = Cleanup(&stack, bp_s);
    let primary = || rt().block_on(async { instances(&stack).await.remove("primary") });
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    assert!(primary().expect("primary").master_user_secret().is_some());

    // To a generated password: one in-place change, RDS drops its secret, SSM holds it.
    edit(
        &bp,
        "    master_username: labadmin\n",
        "    master_username: labadmin\n    master_password: generated\n",
    );
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2);
    assert_eq!(
        changes(&out["plan"]),
        [("primary".to_string(), "update".to_string())]
    );
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    let db = primary().expect("primary");
    assert!(db.master_user_secret().is_none(), "the secret remains");
    let password = rt()
        .block_on(password_parameter(&stack))
        .expect("password parameter")
        .value()
        .unwrap_or_default()
        .to_string();
    assert_not_shown(&password, &[&out.to_string(), &err]);
    assert_no_changes(&["plan", bp_s], &stack);

    // And back: Secrets Manager again, the parameter and the instance's tag gone.
    edit(&bp, "    master_password: generated\n", "");
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    let db = primary().expect("primary");
    assert!(db.master_user_secret().is_some());
    assert_eq!(tag(&db, "securecart:master-password-parameter"), None);
    assert!(rt().block_on(password_parameter(&stack)).is_none());
    assert_no_changes(&["plan", bp_s], &stack);

    destroy_leaves_no_instance_or_password(&stack, bp_s);
}

/// Lab 03's primary alone, its password from a secret parameter given with `--var`.
fn primary_with_secret_password() -> (tempfile::TempDir, std::path::PathBuf) {
    let lab = std::fs::read_to_string(repo().join("labs/03/blueprint.yaml")).expect("lab");
    let primary_only = lab[..lab.find("\n  replica_b:\n").expect("replica_b")]
        .replace(
            "    master_password: generated\n",
            "    master_password: ${params.db_password}\n",
        )
        .replace(
            "parameters:\n",
            // A default (the first password) lets destroy and the cleanup load it bare.
            "parameters:\n  db_password:\n    type: string\n    secret: true\n    default: First-Secret-Pass-111\n",
        )
        + "\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let bp = dir.path().join("blueprint.yaml");
    std::fs::write(&bp, primary_only).expect("write");
    (dir, bp)
}

#[test]
fn a_changed_secret_password_is_planned_applied_and_never_shown() {
    let stack = stack("rdspwchg");
    let (_dir, bp) = primary_with_secret_password();
    let bp_s = bp.to_str().expect("utf-8 path");
    let _cleanup = Cleanup(&stack, bp_s);
    const A: &str = "First-Secret-Pass-111";
    const B: &str = "Second-Secret-Pass-222";
    let var = |p: &str| format!("db_password={p}");

    let (code, out, err) = run_json(&["apply", bp_s, "--yes", "--var", &var(A)], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    assert_not_shown(A, &[&out.to_string(), &err]);
    // The record: a SecureString of the stack holding a salted digest, not the password.
    let first = rt().block_on(async {
        let p = digest_record(&stack, "primary").await.expect("no record");
        assert_eq!(p.r#type(), Some(&ParameterType::SecureString));
        assert_tagged_for(p.name().unwrap_or_default(), &stack, "primary").await;
        p.value().unwrap_or_default().to_string()
    });
    assert!(first.starts_with("pbkdf2-sha256$"), "{first}");
    assert!(!first.contains(A));
    let digest = first.rsplit('$').next().expect("digest").to_string();
    assert_no_changes(&["plan", bp_s, "--var", &var(A)], &stack);

    // Another password: an in-place update of `master_password`, shown as sensitive, with
    // neither password nor any part of the record on screen, in JSON or in text.
    let (code, out, err) = run_json(&["plan", bp_s, "--var", &var(B)], &stack);
    assert_eq!(code, 2, "{out:#}\n{err}");
    assert_eq!(
        changes(&out["plan"]),
        [("primary".to_string(), "update".to_string())]
    );
    let primary = out["plan"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["id"] == "primary")
        .expect("primary")
        .clone();
    let changed = primary["changes"].as_array().expect("changes");
    assert_eq!(changed.len(), 1, "{primary:#}");
    assert_eq!(changed[0]["attribute"], "master_password");
    assert_eq!(changed[0]["before"], "(sensitive)");
    assert_eq!(changed[0]["after"], "(sensitive)");
    assert_eq!(changed[0]["forces_replacement"], false);
    let text = cli()
        .args(["plan", bp_s, "--local", "--stack", &stack, "--var", &var(B)])
        .output()
        .expect("plan");
    let (t_out, t_err) = (
        String::from_utf8_lossy(&text.stdout).to_string(),
        String::from_utf8_lossy(&text.stderr).to_string(),
    );
    assert!(
        t_out.contains("master_password") && t_out.contains("(sensitive) → (sensitive)"),
        "{t_out}"
    );
    for secret in [A, B, &first, &digest, "pbkdf2"] {
        assert!(
            ![&out.to_string(), &err, &t_out, &t_err]
                .iter()
                .any(|o| o.contains(secret)),
            "the password or its record is on screen"
        );
    }

    // Applied: ModifyDBInstance sets it, the record follows, the next plan is empty.
    let (code, out, err) = run_json(&["apply", bp_s, "--yes", "--var", &var(B)], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    let second = rt().block_on(async { digest_record(&stack, "primary").await.expect("record") });
    let second_value = second.value().unwrap_or_default().to_string();
    assert_ne!(second_value, first, "the record was not rewritten");
    for secret in [A, B, &first, &digest, &second_value] {
        assert!(
            !out.to_string().contains(secret) && !err.contains(secret),
            "the password or its record is on screen"
        );
    }
    assert_no_changes(&["plan", bp_s, "--var", &var(B)], &stack);
    // And the old password is a change again.
    let (code, out, _) = run_json(&["plan", bp_s, "--var", &var(A)], &stack);
    assert_eq!(code, 2, "{out:#}");

    // No record (an instance from before securecart kept one): no blind change, a note;
    // the next change applied to the instance sets the password and records it.
    rt().block_on(async {
        aws_sdk_ssm::Client::new(&sdk().await)
            .delete_parameter()
            .name(format!(
                "/securecart/{stack}/primary/master-password-digest"
            ))
            .send()
            .await
            .expect("delete record");
    });
    let (code, out, err) = run_json(&["plan", bp_s, "--var", &var(A)], &stack);
    assert_eq!(
        code, 0,
        "a blind change was planned: {out:#}
{err}"
    );
    let notes = out["plan"]["warnings"].to_string();
    assert!(
        notes.contains("no record of its master password"),
        "{notes}"
    );
    edit(&bp, "    backup_retention: 1 ", "    backup_retention: 2 ");
    let (code, out, err) = run_json(&["apply", bp_s, "--yes", "--var", &var(A)], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    assert!(rt().block_on(digest_record(&stack, "primary")).is_some());
    assert_no_changes(&["plan", bp_s, "--var", &var(A)], &stack);

    destroy_leaves_no_instance_or_password(&stack, bp_s);
    assert!(
        rt().block_on(digest_record(&stack, "primary")).is_none(),
        "the record remains"
    );
}

#[test]
fn destroy_deletes_the_parameters_a_killed_apply_left_and_only_those() {
    let stack = stack("rdsleft");
    emulator();
    let put = |name: String, tag_stack: Option<&str>, id: &str| {
        let id = id.to_string();
        let tag_stack = tag_stack.map(str::to_string);
        rt().block_on(async move {
            let ssm = aws_sdk_ssm::Client::new(&sdk().await);
            let mut req = ssm
                .put_parameter()
                .name(&name)
                .value("Left-behind-value-0123456789")
                .r#type(ParameterType::SecureString);
            if let Some(s) = tag_stack {
                for (k, v) in [
                    ("securecart:stack", s.as_str()),
                    ("securecart:resource", &id),
                ] {
                    req = req.tags(
                        aws_sdk_ssm::types::Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                            .expect("tag"),
                    );
                }
            }
            req.send().await.expect("put parameter");
        })
    };
    let path = |id: &str, leaf: &str| format!("/securecart/{stack}/{id}/{leaf}");
    // What a run killed between PutParameter and CreateDBInstance leaves, for either kind
    // of password: tagged with the stack, with no instance.
    put(path("primary", "master-password"), Some(&stack), "primary");
    put(
        path("other", "master-password-digest"),
        Some(&stack),
        "other",
    );
    // Not ours to delete: untagged, another stack's tag, or a name securecart never writes.
    put(path("foreign", "master-password"), None, "foreign");
    put(
        path("elsewhere", "master-password"),
        Some("another-stack"),
        "elsewhere",
    );
    put(path("notes", "something-else"), Some(&stack), "notes");

    let (code, out, err) = run_json(&["destroy", "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    let mut deleted: Vec<String> = out["plan"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["action"].as_str().unwrap_or(""),
                a["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        [
            "delete other/master-password-digest",
            "delete primary/master-password"
        ]
    );
    assert!(!err.contains("Left-behind-value"));
    rt().block_on(async {
        let ssm = aws_sdk_ssm::Client::new(&sdk().await);
        let exists = |name: String| {
            let ssm = ssm.clone();
            async move { ssm.get_parameter().name(name).send().await.is_ok() }
        };
        assert!(!exists(path("primary", "master-password")).await);
        assert!(!exists(path("other", "master-password-digest")).await);
        for (id, leaf) in [
            ("foreign", "master-password"),
            ("elsewhere", "master-password"),
            ("notes", "something-else"),
        ] {
            assert!(exists(path(id, leaf)).await, "{id}/{leaf} was deleted");
            ssm.delete_parameter()
                .name(path(id, leaf))
                .send()
                .await
                .expect("clean up");
        }
    });
    // Nothing of the stack left: destroy says so.
    let (code, _, _) = run_json(&["destroy", "--yes"], &stack);
    assert_ne!(code, 0);
}

#[test]
fn a_create_that_fails_after_storing_its_passwords_leaves_nothing_after_destroy() {
    // The state a kill -9 between PutParameter and CreateDBInstance leaves, made by the
    // binary itself: RDS refuses the create (no such subnet group) after securecart has
    // stored the generated password and the blueprint password's record.
    let stack = stack("rdsfail");
    let dir = tempfile::tempdir().expect("tempdir");
    let bp = dir.path().join("blueprint.yaml");
    let db = |id: &str, password: &str| {
        format!(
            "  {id}:\n    type: db_instance\n    engine: postgres\n    engine_version: \"16\"\n    instance_class: db.t4g.micro\n    db_subnet_group: no-such-group-{id}\n    master_password: {password}\n    final_snapshot: false\n"
        )
    };
    std::fs::write(
        &bp,
        format!(
            "name: t\nparameters:\n  pw:\n    type: string\n    secret: true\n    default: Failed-Create-Pass-333\nresources:\n{}{}",
            db("first", "generated"),
            db("second", "${params.pw}")
        ),
    )
    .expect("write");
    let bp_s = bp.to_str().expect("utf-8 path");
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 1, "the create was not refused: {out:#}\n{err}");
    assert_not_shown("Failed-Create-Pass-333", &[&out.to_string(), &err]);
    let names = [
        format!("/securecart/{stack}/first/master-password"),
        format!("/securecart/{stack}/second/master-password-digest"),
    ];
    let exists = |name: &str| {
        let name = name.to_string();
        rt().block_on(async move {
            aws_sdk_ssm::Client::new(&sdk().await)
                .get_parameter()
                .name(name)
                .send()
                .await
                .is_ok()
        })
    };
    for n in &names {
        assert!(exists(n), "{n} was not stored before CreateDBInstance");
    }
    assert!(rt().block_on(instances(&stack)).is_empty());

    // The blueprint is still there: the next plan creates the instances and keeps the
    // stored parameters for them (the password RDS gets must be the stored one); they are
    // listed, unchanged, as parts of their instances — never planned as deletes.
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2, "{out:#}");
    let mut planned = changes(&out["plan"]);
    planned.sort();
    assert_eq!(
        planned,
        [
            ("first".to_string(), "create".to_string()),
            ("second".to_string(), "create".to_string()),
        ]
    );
    let mut kept: Vec<&str> = out["plan"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["action"] == "noop")
        .filter_map(|a| a["id"].as_str())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        ["first/master-password", "second/master-password-digest"]
    );
    // Destroy finds them although no instance exists, and deletes them.
    let (code, out, err) = run_json(&["destroy", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    for n in &names {
        assert!(!exists(n), "{n} remains after destroy");
    }
    let (code, _, _) = run_json(&["destroy", bp_s, "--yes"], &stack);
    assert_ne!(code, 0, "a second destroy still found something");
}

/// Asserts that SSM parameter `name` carries the tags of resource `id` of `stack`.
async fn assert_tagged_for(name: &str, stack: &str, id: &str) {
    let ssm = aws_sdk_ssm::Client::new(&sdk().await);
    let tags = ssm
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .send()
        .await
        .expect("parameter tags");
    let tag = |k: &str| {
        tags.tag_list()
            .iter()
            .find(|t| t.key() == k)
            .map(|t| t.value().to_string())
    };
    assert_eq!(tag("securecart:stack").as_deref(), Some(stack), "{name}");
    assert_eq!(tag("securecart:resource").as_deref(), Some(id), "{name}");
}
