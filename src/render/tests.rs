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
