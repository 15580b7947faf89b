//! The network blueprint end to end on the emulator: apply, a no-change plan, an edit
//! with one update, one replacement and one removal, apply, destroy — checked with
//! direct SDK calls, not securecart's own reading code.

use aws_sdk_ec2::types::Filter;

use super::common::*;

fn stack_filter(stack: &str) -> Filter {
    Filter::builder()
        .name("tag:securecart:stack")
        .values(stack)
        .build()
}

/// Counts what exists of the stack, straight from the APIs.
async fn census(stack: &str) -> std::collections::BTreeMap<&'static str, usize> {
    let cfg = sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&cfg);
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let events = aws_sdk_eventbridge::Client::new(&cfg);
    let mut m = std::collections::BTreeMap::new();
    m.insert(
        "vpc",
        ec2.describe_vpcs()
            .filters(stack_filter(stack))
            .send()
            .await
            .expect("vpcs")
            .vpcs()
            .len(),
    );
    m.insert(
        "subnet",
        ec2.describe_subnets()
            .filters(stack_filter(stack))
            .send()
            .await
            .expect("subnets")
            .subnets()
            .len(),
    );
    m.insert(
        "internet_gateway",
        ec2.describe_internet_gateways()
            .filters(stack_filter(stack))
            .send()
            .await
            .expect("igws")
            .internet_gateways()
            .len(),
    );
    m.insert(
        "route_table",
        ec2.describe_route_tables()
            .filters(stack_filter(stack))
            .send()
            .await
            .expect("rts")
            .route_tables()
            .len(),
    );
    m.insert(
        "security_group",
        ec2.describe_security_groups()
            .filters(stack_filter(stack))
            .send()
            .await
            .expect("sgs")
            .security_groups()
            .len(),
    );
    m.insert(
        "sqs_queue",
        sqs.list_queues()
            .queue_name_prefix(format!("{stack}-"))
            .send()
            .await
            .expect("queues")
            .queue_urls()
            .len(),
    );
    m.insert(
        "event_bus",
        events
            .list_event_buses()
            .name_prefix(format!("{stack}-"))
            .send()
            .await
            .expect("buses")
            .event_buses()
            .len(),
    );
    let mut rules = 0;
    for bus in events
        .list_event_buses()
        .send()
        .await
        .expect("buses")
        .event_buses()
    {
        let name = bus.name().unwrap_or_default();
        // Other tests delete their buses meanwhile: a bus gone since the listing has no rules.
        rules += events
            .list_rules()
            .event_bus_name(name)
            .name_prefix(format!("{stack}-"))
            .send()
            .await
            .map(|r| r.rules().len())
            .unwrap_or(0);
    }
    m.insert("event_rule", rules);
    m
}

pub fn assert_nothing_left(stack: &str) {
    let left: Vec<_> = rt()
        .block_on(census(stack))
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert!(left.is_empty(), "resources of {stack} remain: {left:?}");
}

pub fn expected_network_census() -> Vec<(&'static str, usize)> {
    vec![
        ("event_bus", 1),
        ("event_rule", 1),
        ("internet_gateway", 1),
        ("route_table", 2),
        ("security_group", 3),
        ("sqs_queue", 2),
        ("subnet", 4),
        ("vpc", 1),
    ]
}

pub fn network_census(stack: &str) -> Vec<(&'static str, usize)> {
    rt().block_on(census(stack)).into_iter().collect()
}

#[test]
fn network_lifecycle() {
    let stack = stack("net");
    let (_dir, bp) = copy_blueprint(&repo().join("blueprints/network.yaml"));
    let bp_s = bp.to_str().expect("utf-8 path");

    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "apply failed: {out:#}\n{err}");
    assert_permitted(&["apply", bp_s], &stack, &out);
    assert_eq!(network_census(&stack), expected_network_census());

    // Right after apply: nothing to do, and no mutating call to find that out.
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(
        code,
        0,
        "plan after apply shows changes: {:?}",
        changes(&out["plan"])
    );
    assert_permitted(&["plan", bp_s], &stack, &out);
    assert_eq!(mutating_calls(&out), 0);
    // One batched read per kind, plus per-resource detail reads only where the API has
    // no batched form (VPC DNS attributes, queue attributes and tags, rule targets, bus and rule tags).
    let calls = out["stats"]["calls"].as_array().expect("calls");
    for c in calls {
        let op = c["operation"].as_str().unwrap_or_default();
        if [
            "DescribeSubnets",
            "DescribeSecurityGroups",
            "DescribeRouteTables",
            "DescribeInternetGateways",
            "DescribeVpcs",
            "ListQueues",
        ]
        .contains(&op)
        {
            assert_eq!(c["count"], 1, "{op} called more than once: {calls:?}");
        }
    }
    let (code, out, _) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0);
    assert_eq!(
        mutating_calls(&out),
        0,
        "a no-change apply made mutating calls: {:#}",
        out["stats"]
    );

    // One in-place update, one replacement, one removal.
    edit(&bp, "visibility_timeout: 60", "visibility_timeout: 90");
    edit(
        &bp,
        "description: Web tier to the database",
        "description: Web tier to the PostgreSQL database",
    );
    let text = std::fs::read_to_string(&bp).expect("read");
    let start = text.find("  order_placed:").expect("rule block");
    let end = text.find("\noutputs:").expect("outputs");
    std::fs::write(&bp, format!("{}{}", &text[..start], &text[end + 1..])).expect("write");

    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2);
    assert_eq!(
        changes(&out["plan"]),
        vec![
            ("db_sg".into(), "replace".into()),
            ("order_placed".into(), "delete".into()),
            ("orders_queue".into(), "update".into())
        ]
    );
    let actions = out["plan"]["actions"].as_array().expect("actions");
    let find = |id: &str| {
        actions
            .iter()
            .find(|a| a["id"] == id)
            .expect("action")
            .clone()
    };
    let q = find("orders_queue");
    assert_eq!(q["changes"][0]["attribute"], "visibility_timeout");
    assert_eq!(q["changes"][0]["before"], 60);
    assert_eq!(q["changes"][0]["after"], 90);
    let sg = find("db_sg");
    assert!(
        sg["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("description"),
        "{sg}"
    );
    assert_eq!(find("order_placed")["reason"], "no longer in the blueprint");

    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "apply of the edit failed: {out:#}\n{err}");
    // The blueprint has no rule left, the stack still has one to delete: its kind's actions
    // come with `--kind` (README, Real AWS); without it the policy lacks them.
    assert_permitted(&["apply", bp_s, "--kind", "event_rule"], &stack, &out);
    assert_eq!(
        missing_permissions(&["apply", bp_s], &stack, &out),
        ["events:DeleteRule", "events:RemoveTargets"]
    );
    assert_no_changes(&["plan", bp_s], &stack);

    // Checked straight with the SDK.
    rt().block_on(async {
        let cfg = sdk().await;
        let sqs = aws_sdk_sqs::Client::new(&cfg);
        let url = sqs
            .get_queue_url()
            .queue_name(format!("{stack}-orders_queue"))
            .send()
            .await
            .expect("queue url");
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(url.queue_url().unwrap_or_default())
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .expect("attributes");
        let vt = attrs
            .attributes()
            .and_then(|m| m.get(&aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout))
            .cloned();
        assert_eq!(vt.as_deref(), Some("90"));
        let ec2 = aws_sdk_ec2::Client::new(&cfg);
        let sgs = ec2
            .describe_security_groups()
            .filters(stack_filter(&stack))
            .filters(
                Filter::builder()
                    .name("tag:securecart:resource")
                    .values("db_sg")
                    .build(),
            )
            .send()
            .await
            .expect("sgs");
        assert_eq!(sgs.security_groups().len(), 1);
        assert_eq!(
            sgs.security_groups()[0].description(),
            Some("Web tier to the PostgreSQL database")
        );
    });
    let mut after_edit = expected_network_census();
    after_edit.retain(|(k, _)| *k != "event_rule");
    after_edit.insert(1, ("event_rule", 0));
    assert_eq!(network_census(&stack), after_edit);

    let (code, out, err) = run_json(&["destroy", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "destroy failed: {out:#}\n{err}");
    assert_permitted(&["destroy", bp_s], &stack, &out);
    assert_nothing_left(&stack);
    // A second destroy finds nothing: an error unless an empty stack is expected.
    let (code, _, _) = run_json(&["destroy", bp_s, "--yes"], &stack);
    assert_eq!(code, 1, "a destroy that found nothing succeeded");
    let (code, out, _) = run_json(&["destroy", bp_s, "--yes", "--allow-empty"], &stack);
    assert_eq!(code, 0);
    assert_eq!(
        mutating_calls(&out),
        0,
        "a second destroy changed something"
    );
}

#[test]
fn apply_refuses_without_a_terminal_or_yes() {
    let stack = stack("refuse");
    emulator();
    let out = cli()
        .args(["apply", "--local", "--stack", &stack])
        .arg(repo().join("blueprints/network.yaml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_nothing_left(&stack);
}
