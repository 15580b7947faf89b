//! labs/03 (RDS read replicas) end to end on the emulator: apply, a no-change plan, one
//! more replica and a bigger primary, a promotion, destroy — checked with direct SDK
//! calls, not securecart's own reading code.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Filter;
use aws_sdk_rds::types::DbInstance;

use super::common::*;

fn tag(db: &DbInstance, key: &str) -> Option<String> {
    db.tag_list()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value().map(str::to_string))
}

/// The stack's DB instances by blueprint id, straight from DescribeDBInstances.
async fn instances(stack: &str) -> std::collections::BTreeMap<String, DbInstance> {
    let rds = aws_sdk_rds::Client::new(&sdk().await);
    rds.describe_db_instances()
        .send()
        .await
        .expect("describe instances")
        .db_instances()
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
        let primary = &dbs["primary"];
        let primary_id = primary.db_instance_identifier().expect("identifier");
        assert_eq!(primary.engine(), Some("postgres"));
        assert_eq!(primary.storage_encrypted(), Some(true));
        assert_eq!(primary.publicly_accessible(), Some(false));
        assert!(primary.backup_retention_period().unwrap_or(0) >= 1);
        assert!(
            primary.master_user_secret().is_some(),
            "password not in Secrets Manager"
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
        "  # replica_b2:\n  #   type: db_read_replica\n  #   source: ${primary}\n  #   instance_class: ${params.instance_class}\n  #   availability_zone: ${stack.region}b\n  #   final_snapshot: false\n",
        "  replica_b2:\n    type: db_read_replica\n    source: ${primary}\n    instance_class: ${params.instance_class}\n    availability_zone: ${stack.region}b\n    final_snapshot: false\n",
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
    rt().block_on(async {
        let dbs = instances(&stack).await;
        assert_eq!(dbs["primary"].db_instance_class(), Some("db.t4g.small"));
        let b2 = dbs.get("replica_b2").expect("replica_b2 exists");
        assert_eq!(
            b2.read_replica_source_db_instance_identifier(),
            dbs["primary"].db_instance_identifier()
        );
        assert_eq!(b2.availability_zone(), Some("us-east-1b"));
    });
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 0, "changes remain: {:?}", changes(&out["plan"]));

    // Promotion: an update named as such, made, then quiet.
    edit(
        &bp,
        "    availability_zone: ${stack.region}c\n    final_snapshot: false\n",
        "    availability_zone: ${stack.region}c\n    final_snapshot: false\n    promote: true\n",
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
    rt().block_on(async {
        assert!(instances(&stack).await.is_empty(), "DB instances remain");
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
