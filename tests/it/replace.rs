//! Replacements of resources that others use, on the emulator: a security group behind
//! a load balancer and a target group behind a listener are made anew first (under
//! their alternate names), what uses them is re-pointed, then the old copies go; and
//! two copies of one resource (what an apply killed mid-replacement leaves) converge
//! to one on the next apply.

use aws_sdk_ec2::types::Filter;
use aws_sdk_elasticloadbalancingv2::types::Tag;

use super::common::*;

const BLUEPRINT: &str = r#"name: replace
resources:
  vpc:
    type: vpc
    cidr_block: 10.60.0.0/16
  a:
    type: subnet
    vpc: ${vpc}
    cidr_block: 10.60.0.0/24
    availability_zone: ${stack.region}a
  b:
    type: subnet
    vpc: ${vpc}
    cidr_block: 10.60.1.0/24
    availability_zone: ${stack.region}b
  lb_sg:
    type: security_group
    vpc: ${vpc}
    description: Clients to the load balancer
    ingress:
      - port: 80
        cidr: 10.0.0.0/8
  lb:
    type: load_balancer
    scheme: internal
    subnets:
      - ${a}
      - ${b}
    security_groups:
      - ${lb_sg}
  tg:
    type: target_group
    vpc: ${vpc}
    port: 8080
  http:
    type: listener
    load_balancer: ${lb}
    port: 80
    forward: ${tg}
"#;

/// The stack's target groups as (name, port, ARN), and where its listener forwards.
async fn target_groups(stack: &str) -> (Vec<(String, i32, String)>, Option<String>) {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk().await);
    let all = elb.describe_target_groups().send().await.expect("tgs");
    let mut tgs: Vec<(String, i32, String)> = all
        .target_groups()
        .iter()
        .filter(|t| {
            t.target_group_name()
                .is_some_and(|n| n.starts_with(&format!("{stack}-tg")))
        })
        .map(|t| {
            (
                t.target_group_name().unwrap_or_default().to_string(),
                t.port().unwrap_or_default(),
                t.target_group_arn().unwrap_or_default().to_string(),
            )
        })
        .collect();
    tgs.sort();
    let forward = match elb
        .describe_load_balancers()
        .names(format!("{stack}-lb"))
        .send()
        .await
    {
        Ok(lbs) => {
            let arn = lbs.load_balancers()[0].load_balancer_arn().expect("arn");
            let ls = elb
                .describe_listeners()
                .load_balancer_arn(arn)
                .send()
                .await
                .expect("listeners");
            ls.listeners()
                .first()
                .and_then(|l| l.default_actions().first())
                .and_then(|a| a.target_group_arn())
                .map(str::to_string)
        }
        Err(_) => None,
    };
    (tgs, forward)
}

/// The stack's security groups as (resource id, group name, group id), and the groups
/// of its load balancer.
async fn security_groups(stack: &str) -> (Vec<(String, String, String)>, Vec<String>) {
    let cfg = sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&cfg);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&cfg);
    let out = ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name("tag:securecart:stack")
                .values(stack)
                .build(),
        )
        .send()
        .await
        .expect("groups");
    let mut groups: Vec<(String, String, String)> = out
        .security_groups()
        .iter()
        .map(|g| {
            let id = g
                .tags()
                .iter()
                .find(|t| t.key() == Some("securecart:resource"))
                .and_then(|t| t.value())
                .unwrap_or_default();
            (
                id.to_string(),
                g.group_name().unwrap_or_default().to_string(),
                g.group_id().unwrap_or_default().to_string(),
            )
        })
        .collect();
    groups.sort();
    let lb_groups = match elb
        .describe_load_balancers()
        .names(format!("{stack}-lb"))
        .send()
        .await
    {
        Ok(lbs) => lbs.load_balancers()[0].security_groups().to_vec(),
        Err(_) => Vec::new(),
    };
    (groups, lb_groups)
}

fn apply_converges(bp: &str, stack: &str) {
    let (code, out, err) = run_json(&["apply", bp, "--yes"], stack);
    assert_eq!(code, 0, "apply failed: {out:#}\n{err}");
    let steps = out["apply"]["steps"].as_array().expect("steps");
    assert!(
        steps.iter().all(|s| s["outcome"] == "done"),
        "a step did not succeed: {steps:#?}"
    );
    assert_no_changes(&["plan", bp], stack);
}

#[test]
fn used_resources_are_replaced_create_before_delete_and_leftover_copies_converge() {
    let stack = stack("replace");
    let dir = tempfile::tempdir().expect("tempdir");
    let bp = dir.path().join("blueprint.yaml");
    std::fs::write(&bp, BLUEPRINT).expect("write blueprint");
    let bp_s = bp.to_str().expect("utf-8 path");
    apply_converges(bp_s, &stack);

    // The group's description and the target group's port cannot change in place.
    edit(
        &bp,
        "Clients to the load balancer",
        "Clients of the load balancer",
    );
    edit(&bp, "port: 8080", "port: 8081");
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2);
    assert_eq!(
        changes(&out["plan"]),
        vec![
            ("http".into(), "update".into()),
            ("lb".into(), "update".into()),
            ("lb_sg".into(), "replace".into()),
            ("tg".into(), "replace".into()),
        ]
    );
    for a in out["plan"]["actions"].as_array().expect("actions") {
        if a["action"] == "replace" {
            assert_eq!(a["create_before_delete"], true, "{a:#}");
        }
    }
    apply_converges(bp_s, &stack);
    rt().block_on(async {
        let (groups, lb_groups) = security_groups(&stack).await;
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0].1, format!("{stack}-lb_sg-2"));
        assert_eq!(lb_groups, vec![groups[0].2.clone()]);
        let (tgs, forward) = target_groups(&stack).await;
        assert_eq!(tgs.len(), 1, "{tgs:?}");
        assert_eq!(
            (tgs[0].0.as_str(), tgs[0].1),
            (&*format!("{stack}-tg-2"), 8081)
        );
        assert_eq!(forward.as_deref(), Some(tgs[0].2.as_str()));
    });

    // An apply to port 8082 killed after it made the new group, before the listener
    // moved: two groups carry the tags of `tg`. The next apply keeps the one that
    // matches, moves the listener, deletes the other.
    rt().block_on(async {
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk().await);
        let vpc = aws_sdk_ec2::Client::new(&sdk().await)
            .describe_vpcs()
            .filters(
                Filter::builder()
                    .name("tag:securecart:stack")
                    .values(&stack)
                    .build(),
            )
            .send()
            .await
            .expect("vpcs")
            .vpcs()[0]
            .vpc_id()
            .expect("vpc")
            .to_string();
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        elb.create_target_group()
            .name(format!("{stack}-tg"))
            .protocol("HTTP".into())
            .port(8082)
            .vpc_id(vpc)
            .tags(tag("securecart:stack", &stack))
            .tags(tag("securecart:resource", "tg"))
            .tags(tag("Name", &format!("{stack}-tg")))
            .send()
            .await
            .expect("the copy an interrupted run made");
    });
    edit(&bp, "port: 8081", "port: 8082");
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2);
    let plan = &out["plan"];
    let tg_actions: Vec<&serde_json::Value> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["id"] == "tg" && a["action"] != "noop")
        .collect();
    assert!(
        tg_actions
            .iter()
            .all(|a| a["action"] != "replace" && a["action"] != "create"),
        "{tg_actions:#?}"
    );
    assert!(
        tg_actions.iter().any(|a| a["action"] == "delete"
            && a["reason"]
                .as_str()
                .is_some_and(|r| r.contains("duplicate"))),
        "{tg_actions:#?}"
    );
    apply_converges(bp_s, &stack);
    rt().block_on(async {
        let (tgs, forward) = target_groups(&stack).await;
        assert_eq!(tgs.len(), 1, "{tgs:?}");
        assert_eq!(
            (tgs[0].0.as_str(), tgs[0].1),
            (&*format!("{stack}-tg"), 8082)
        );
        assert_eq!(forward.as_deref(), Some(tgs[0].2.as_str()));
    });

    // Back to the first description: the group returns to its first name.
    edit(
        &bp,
        "Clients of the load balancer",
        "Clients to the load balancer",
    );
    apply_converges(bp_s, &stack);
    rt().block_on(async {
        let (groups, lb_groups) = security_groups(&stack).await;
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0].1, format!("{stack}-lb_sg"));
        assert_eq!(lb_groups, vec![groups[0].2.clone()]);
    });

    let (code, out, err) = run_json(&["destroy", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "destroy failed: {out:#}\n{err}");
    rt().block_on(async {
        assert!(target_groups(&stack).await.0.is_empty());
        assert!(security_groups(&stack).await.0.is_empty());
    });
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2);
    assert!(
        changes(&out["plan"]).iter().all(|(_, a)| a == "create"),
        "{:?}",
        changes(&out["plan"])
    );
}
