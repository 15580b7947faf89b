//! Lab 02 (multi-tier web application) end to end on the emulator: apply, checks with
//! direct SDK calls (listener → target group, the group's instances registered, the
//! database in its subnets behind its group), a no-change plan, an instance type change
//! that is a launch template update plus a group update and nothing else, an app port
//! change that replaces the target group create-before-delete in one apply, destroy.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Filter;

use super::common::*;

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

/// The EC2 id of the stack's resource `id` (subnet or security group).
async fn ec2_id(ec2: &aws_sdk_ec2::Client, stack: &str, id: &str, kind: &str) -> String {
    let filters = [
        tag_filter("securecart:stack", stack),
        tag_filter("securecart:resource", id),
    ];
    match kind {
        "subnet" => ec2
            .describe_subnets()
            .set_filters(Some(filters.to_vec()))
            .send()
            .await
            .expect("subnets")
            .subnets()[0]
            .subnet_id()
            .expect("id")
            .to_string(),
        _ => ec2
            .describe_security_groups()
            .set_filters(Some(filters.to_vec()))
            .send()
            .await
            .expect("groups")
            .security_groups()[0]
            .group_id()
            .expect("id")
            .to_string(),
    }
}

/// What is left of the stack, straight from the APIs, by kind (only kinds with some).
async fn leftovers(stack: &str) -> Vec<(&'static str, usize)> {
    let cfg = sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&cfg);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&cfg);
    let asg = aws_sdk_autoscaling::Client::new(&cfg);
    let rds = aws_sdk_rds::Client::new(&cfg);
    let mine = tag_filter("securecart:stack", stack);
    let mut m = Vec::new();
    let vpcs = ec2
        .describe_vpcs()
        .filters(mine.clone())
        .send()
        .await
        .expect("vpcs");
    m.push(("vpc", vpcs.vpcs().len()));
    let subnets = ec2
        .describe_subnets()
        .filters(mine.clone())
        .send()
        .await
        .expect("subnets");
    m.push(("subnet", subnets.subnets().len()));
    let sgs = ec2
        .describe_security_groups()
        .filters(mine.clone())
        .send()
        .await
        .expect("groups");
    m.push(("security_group", sgs.security_groups().len()));
    let lts = ec2
        .describe_launch_templates()
        .filters(mine.clone())
        .send()
        .await
        .expect("templates");
    m.push(("launch_template", lts.launch_templates().len()));
    let running = ec2
        .describe_instances()
        .filters(mine.clone())
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .set_values(Some(
                    ["pending", "running", "shutting-down", "stopping", "stopped"]
                        .map(String::from)
                        .to_vec(),
                ))
                .build(),
        )
        .send()
        .await
        .expect("instances");
    m.push((
        "ec2_instance",
        running
            .reservations()
            .iter()
            .map(|r| r.instances().len())
            .sum(),
    ));
    let groups = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(format!("{stack}-web_asg"))
        .send()
        .await
        .expect("groups");
    m.push(("autoscaling_group", groups.auto_scaling_groups().len()));
    let policies = asg
        .describe_policies()
        .auto_scaling_group_name(format!("{stack}-web_asg"))
        .send()
        .await
        .expect("policies");
    m.push(("scaling_policy", policies.scaling_policies().len()));
    let lbs = elb.describe_load_balancers().send().await.expect("lbs");
    m.push((
        "load_balancer",
        lbs.load_balancers()
            .iter()
            .filter(|l| l.load_balancer_name() == Some(&format!("{stack}-web-lb")))
            .count(),
    ));
    let tgs = elb.describe_target_groups().send().await.expect("tgs");
    m.push((
        "target_group",
        tgs.target_groups()
            .iter()
            .filter(|t| t.target_group_name() == Some(&format!("{stack}-web-tg")))
            .count(),
    ));
    let dbs = rds.describe_db_instances().send().await.expect("dbs");
    m.push((
        "db_instance",
        dbs.db_instances()
            .iter()
            .filter(|d| {
                d.db_instance_identifier()
                    .is_some_and(|i| i.starts_with(&format!("{stack}-")))
                    && d.db_instance_status() != Some("deleting")
            })
            .count(),
    ));
    let sngs = rds
        .describe_db_subnet_groups()
        .send()
        .await
        .expect("subnet groups");
    m.push((
        "db_subnet_group",
        sngs.db_subnet_groups()
            .iter()
            .filter(|g| {
                g.db_subnet_group_name()
                    .is_some_and(|n| n.starts_with(&format!("{stack}-")))
            })
            .count(),
    ));
    m.retain(|(_, n)| *n > 0);
    m
}

#[test]
fn web_tier_lifecycle() {
    let stack = stack("web");
    let lab = repo().join("labs/02");
    let (dir, bp) = copy_blueprint(&lab.join("blueprint.yaml"));
    std::fs::copy(lab.join("web.sh"), dir.path().join("web.sh")).expect("copy user data");
    let bp_s = bp.to_str().expect("utf-8 path");

    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "apply failed: {out:#}\n{err}");
    assert_permitted(&["apply", bp_s], &stack, &out);

    rt().block_on(async {
        let cfg = sdk().await;
        let ec2 = aws_sdk_ec2::Client::new(&cfg);
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&cfg);
        let asg = aws_sdk_autoscaling::Client::new(&cfg);
        let rds = aws_sdk_rds::Client::new(&cfg);

        // The load balancer is active in the public subnets, behind the LB group.
        let lb = elb
            .describe_load_balancers()
            .names(format!("{stack}-web-lb"))
            .send()
            .await
            .expect("load balancer");
        let lb = &lb.load_balancers()[0];
        assert_eq!(
            lb.state().and_then(|s| s.code()).map(|c| c.as_str()),
            Some("active")
        );
        let lb_subnets: BTreeSet<String> = lb
            .availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id().map(str::to_string))
            .collect();
        let public: BTreeSet<String> = [
            ec2_id(&ec2, &stack, "public_a", "subnet").await,
            ec2_id(&ec2, &stack, "public_b", "subnet").await,
        ]
        .into();
        assert_eq!(lb_subnets, public);
        assert_eq!(
            lb.security_groups(),
            [ec2_id(&ec2, &stack, "lb_sg", "security_group").await]
        );
        let attrs = elb
            .describe_load_balancer_attributes()
            .load_balancer_arn(lb.load_balancer_arn().expect("arn"))
            .send()
            .await
            .expect("attributes");
        assert!(attrs.attributes().iter().any(|a| a.key()
            == Some("routing.http.drop_invalid_header_fields.enabled")
            && a.value() == Some("true")));

        // The listener forwards port 80 to the target group.
        let tg = elb
            .describe_target_groups()
            .names(format!("{stack}-web-tg"))
            .send()
            .await
            .expect("target group");
        let tg_arn = tg.target_groups()[0]
            .target_group_arn()
            .expect("arn")
            .to_string();
        let listeners = elb
            .describe_listeners()
            .load_balancer_arn(lb.load_balancer_arn().expect("arn"))
            .send()
            .await
            .expect("listeners");
        assert_eq!(listeners.listeners().len(), 1);
        let l = &listeners.listeners()[0];
        assert_eq!(l.port(), Some(80));
        let action = &l.default_actions()[0];
        assert_eq!(action.r#type().map(|t| t.as_str()), Some("forward"));
        assert_eq!(action.target_group_arn(), Some(tg_arn.as_str()));

        // The group runs two instances from the template's latest version, in the app
        // subnets, and they are registered in the target group.
        let g = asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(format!("{stack}-web_asg"))
            .send()
            .await
            .expect("group");
        let g = &g.auto_scaling_groups()[0];
        let in_service: BTreeSet<String> = g
            .instances()
            .iter()
            .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        assert_eq!(in_service.len(), 2, "{g:?}");
        assert_eq!(g.launch_template().and_then(|t| t.version()), Some("1"));
        assert_eq!(g.target_group_arns(), std::slice::from_ref(&tg_arn));
        assert_eq!(g.health_check_type(), Some("ELB"));
        let app: BTreeSet<String> = [
            ec2_id(&ec2, &stack, "app_a", "subnet").await,
            ec2_id(&ec2, &stack, "app_b", "subnet").await,
        ]
        .into();
        let zone_ids: BTreeSet<String> = g
            .vpc_zone_identifier()
            .unwrap_or_default()
            .split(',')
            .map(str::to_string)
            .collect();
        assert_eq!(zone_ids, app);
        let health = elb
            .describe_target_health()
            .target_group_arn(&tg_arn)
            .send()
            .await
            .expect("target health");
        let registered: BTreeSet<String> = health
            .target_health_descriptions()
            .iter()
            .filter_map(|d| d.target().and_then(|t| t.id()).map(str::to_string))
            .collect();
        assert_eq!(registered, in_service);
        let policies = asg
            .describe_policies()
            .auto_scaling_group_name(format!("{stack}-web_asg"))
            .send()
            .await
            .expect("policies");
        assert_eq!(policies.scaling_policies().len(), 1);

        // The template requires IMDSv2 and gives no public IP.
        let lt = ec2
            .describe_launch_template_versions()
            .launch_template_id(
                g.launch_template()
                    .and_then(|t| t.launch_template_id())
                    .expect("lt"),
            )
            .versions("$Latest")
            .send()
            .await
            .expect("template");
        let data = lt.launch_template_versions()[0]
            .launch_template_data()
            .expect("data");
        assert_eq!(
            data.metadata_options()
                .and_then(|m| m.http_tokens())
                .map(|t| t.as_str()),
            Some("required")
        );
        assert_eq!(
            data.network_interfaces()[0].associate_public_ip_address(),
            Some(false)
        );
        assert!(data.image_id().is_some_and(|i| i.starts_with("ami-")));

        // The database sits in the database subnets, behind the database group.
        let db = rds
            .describe_db_instances()
            .db_instance_identifier(format!("{stack}-db"))
            .send()
            .await
            .expect("db instance");
        let db = &db.db_instances()[0];
        let db_subnets: BTreeSet<String> = db
            .db_subnet_group()
            .map(|g| {
                g.subnets()
                    .iter()
                    .filter_map(|s| s.subnet_identifier().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let want: BTreeSet<String> = [
            ec2_id(&ec2, &stack, "db_a", "subnet").await,
            ec2_id(&ec2, &stack, "db_b", "subnet").await,
        ]
        .into();
        assert_eq!(db_subnets, want);
        let groups: Vec<&str> = db
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id())
            .collect();
        assert_eq!(
            groups,
            [ec2_id(&ec2, &stack, "db_sg", "security_group")
                .await
                .as_str()]
        );
        assert_eq!(db.publicly_accessible(), Some(false));
    });

    // Right after apply: nothing to do, found with one batched read per kind.
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 0, "plan after apply shows changes: {:#}", out["plan"]);
    assert_permitted(&["plan", bp_s], &stack, &out);
    assert_eq!(mutating_calls(&out), 0);
    let calls = out["stats"]["calls"].as_array().expect("calls");
    let count = |op: &str| {
        calls
            .iter()
            .filter(|c| c["operation"] == op)
            .map(|c| c["count"].as_u64().unwrap_or_default())
            .sum::<u64>()
    };
    for op in [
        "DescribeLaunchTemplates",
        "DescribeAutoScalingGroups",
        "DescribeTargetGroups",
    ] {
        assert_eq!(count(op), 1, "{op}: {calls:?}");
    }
    // The load balancer and listener kinds share one listing of the stack's load balancers.
    assert_eq!(count("DescribeLoadBalancers"), 1, "{calls:?}");
    assert_eq!(count("DescribeListeners"), 1, "{calls:?}");

    // Outputs resolve from live state.
    let (code, out, _) = run_json(&["outputs", bp_s], &stack);
    assert_eq!(code, 0, "{out:#}");
    let text = out.to_string();
    assert!(
        text.contains(&format!("http://{stack}-web-lb")),
        "no site URL in {out:#}"
    );

    // A new instance type: a new template version and the group moved onto it, nothing else.
    edit(&bp, "default: t3.micro", "default: t3.small");
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2, "{:#}", out["plan"]);
    assert_eq!(
        changes(&out["plan"]),
        vec![
            ("web_asg".into(), "update".into()),
            ("web_lt".into(), "update".into())
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
    let lt = find("web_lt");
    assert_eq!(lt["changes"].as_array().map(Vec::len), Some(1), "{lt:#}");
    assert_eq!(lt["changes"][0]["attribute"], "instance_type");
    assert_eq!(lt["changes"][0]["after"], "t3.small");
    let g = find("web_asg");
    assert_eq!(g["changes"].as_array().map(Vec::len), Some(1), "{g:#}");
    assert_eq!(g["changes"][0]["attribute"], "launch_template_version");
    assert_eq!(g["changes"][0]["before"], "1");

    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "apply of the edit failed: {out:#}\n{err}");
    assert_permitted(&["apply", bp_s], &stack, &out);
    assert_no_changes(&["plan", bp_s], &stack);
    rt().block_on(async {
        let cfg = sdk().await;
        let asg = aws_sdk_autoscaling::Client::new(&cfg);
        let ec2 = aws_sdk_ec2::Client::new(&cfg);
        let g = asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(format!("{stack}-web_asg"))
            .send()
            .await
            .expect("group");
        let spec = g.auto_scaling_groups()[0]
            .launch_template()
            .expect("template")
            .clone();
        assert_eq!(spec.version(), Some("2"));
        let v = ec2
            .describe_launch_template_versions()
            .launch_template_id(spec.launch_template_id().expect("id"))
            .versions("$Default")
            .send()
            .await
            .expect("versions");
        let v = &v.launch_template_versions()[0];
        assert_eq!(v.version_number(), Some(2));
        assert_eq!(
            v.launch_template_data()
                .and_then(|d| d.instance_type())
                .map(|t| t.as_str()),
            Some("t3.small")
        );
    });

    // A new app port: the target group cannot change its port, and the listener forwards
    // to it (AWS refuses to delete it then), so the new group is made first, the listener
    // and the Auto Scaling group move to it, and the old one goes last: one apply.
    let port = ["--var", "app_port=8081"];
    let (code, out, _) = run_json(&[&["plan", bp_s][..], &port].concat(), &stack);
    assert_eq!(code, 2, "{:#}", out["plan"]);
    assert_eq!(
        changes(&out["plan"]),
        vec![
            ("http".into(), "update".into()),
            ("web_asg".into(), "update".into()),
            ("web_lt".into(), "update".into()),
            ("web_sg".into(), "update".into()),
            ("web_tg".into(), "replace".into()),
        ]
    );
    let actions = out["plan"]["actions"].as_array().expect("actions");
    let tg = actions
        .iter()
        .find(|a| a["id"] == "web_tg")
        .expect("web_tg");
    assert_eq!(tg["create_before_delete"], true, "{tg:#}");
    let (code, out, err) = run_json(&[&["apply", bp_s, "--yes"][..], &port].concat(), &stack);
    assert_eq!(code, 0, "the app port change failed: {out:#}\n{err}");
    let steps = out["apply"]["steps"].as_array().expect("steps");
    assert!(
        steps.iter().all(|s| s["outcome"] == "done"),
        "a step did not succeed: {steps:#?}"
    );
    assert_no_changes(&[&["plan", bp_s][..], &port].concat(), &stack);
    rt().block_on(async {
        let cfg = sdk().await;
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&cfg);
        let asg = aws_sdk_autoscaling::Client::new(&cfg);
        // One target group is left, on the new port, under the alternate name; the
        // listener and the Auto Scaling group use it.
        let all = elb
            .describe_target_groups()
            .send()
            .await
            .expect("target groups");
        let ours: Vec<_> = all
            .target_groups()
            .iter()
            .filter(|t| {
                t.target_group_name()
                    .is_some_and(|n| n.starts_with(&format!("{stack}-web-tg")))
            })
            .collect();
        assert_eq!(ours.len(), 1, "{ours:#?}");
        assert_eq!(ours[0].port(), Some(8081));
        assert_eq!(
            ours[0].target_group_name(),
            Some(format!("{stack}-web-tg-2").as_str())
        );
        let tg_arn = ours[0].target_group_arn().expect("arn");
        let lb = elb
            .describe_load_balancers()
            .names(format!("{stack}-web-lb"))
            .send()
            .await
            .expect("load balancer");
        let listeners = elb
            .describe_listeners()
            .load_balancer_arn(lb.load_balancers()[0].load_balancer_arn().expect("arn"))
            .send()
            .await
            .expect("listeners");
        assert_eq!(
            listeners.listeners()[0].default_actions()[0].target_group_arn(),
            Some(tg_arn)
        );
        let g = asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(format!("{stack}-web_asg"))
            .send()
            .await
            .expect("group");
        assert_eq!(g.auto_scaling_groups()[0].target_group_arns(), [tg_arn]);
    });

    let (code, out, err) = run_json(&["destroy", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "destroy failed: {out:#}\n{err}");
    let left = rt().block_on(leftovers(&stack));
    assert_permitted(&["destroy", bp_s], &stack, &out);
    assert!(left.is_empty(), "resources of {stack} remain: {left:?}");
}

/// A create that runs again (after an apply was killed between the create call and
/// the next read) finds what the first one made instead of making a second copy; a name
/// taken by something not of the stack is an error, never an adoption.
#[test]
fn web_kinds_create_twice_without_duplicates() {
    let stack = stack("webre");
    rt().block_on(async {
        let cfg = sdk().await;
        let ec2 = aws_sdk_ec2::Client::new(&cfg);
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&cfg);
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.41.0.0/16")
            .send()
            .await
            .expect("vpc");
        let vpc = vpc
            .vpc()
            .and_then(|v| v.vpc_id())
            .expect("vpc id")
            .to_string();
        let mut subnets = Vec::new();
        for (i, z) in ["a", "b"].iter().enumerate() {
            let s = ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.41.{i}.0/24"))
                .availability_zone(format!("us-east-1{z}"))
                .send()
                .await
                .expect("subnet");
            subnets.push(
                s.subnet()
                    .and_then(|s| s.subnet_id())
                    .expect("id")
                    .to_string(),
            );
        }
        let sg = ec2
            .create_security_group()
            .group_name(format!("{stack}-sg"))
            .description("test")
            .vpc_id(&vpc)
            .send()
            .await
            .expect("sg");
        let sg = sg.group_id().expect("sg id").to_string();

        let aws = securecart::aws::Aws::connect(&securecart::aws::AwsSettings {
            region: Some("us-east-1".into()),
            profile: None,
            endpoint_url: Some(emulator().to_string()),
            local: true,
        })
        .await
        .expect("connect");
        let quiet = |_: String| {};
        let mut made: Vec<(&str, &str, securecart::resources::Live)> = Vec::new();
        let mut ids = std::collections::HashMap::new();
        let steps: Vec<(&str, &str)> = vec![
            ("launch_template", "lt"),
            ("target_group", "tg"),
            ("load_balancer", "lb"),
            ("listener", "http"),
            ("autoscaling_group", "asg"),
        ];
        for (kind_name, id) in steps {
            let config = match kind_name {
                "launch_template" => {
                    serde_json::json!({"instance_type": "t3.micro", "security_groups": [sg]})
                }
                "target_group" => serde_json::json!({"vpc": vpc, "port": 8080}),
                "load_balancer" => serde_json::json!({"subnets": subnets, "security_groups": [sg]}),
                "listener" => serde_json::json!({"load_balancer": ids["lb"], "forward": ids["tg"]}),
                _ => serde_json::json!({
                    "launch_template": ids["lt"], "launch_template_version": 1, "subnets": subnets,
                    "min_size": 1, "max_size": 2, "target_groups": [ids["tg"]],
                }),
            };
            let kind = securecart::resources::kind(kind_name).expect("kind");
            let want = kind
                .desired_in(&stack, "us-east-1", id, &config, std::path::Path::new("."))
                .expect("desired");
            let desired = want.attrs.clone();
            let cx = securecart::resources::OpCx {
                stack: &stack,
                id,
                payload: &want.payload,
                progress: &quiet,
            };
            let first = kind
                .create(&aws, &cx, &desired)
                .await
                .expect("first create");
            let second = kind
                .create(&aws, &cx, &desired)
                .await
                .unwrap_or_else(|e| panic!("second create of {kind_name}: {e}"));
            assert_eq!(first.physical_id, second.physical_id, "{kind_name}");
            let found = kind.read(&aws, &stack).await.expect("read");
            assert_eq!(found.len(), 1, "{kind_name}: {found:?}");
            assert_eq!(found[0].attrs, desired, "{kind_name}");
            ids.insert(id, first.physical_id.clone());
            made.push((kind_name, id, first));
        }

        // Someone else's target group with the name the stack wants.
        elb.create_target_group()
            .name(format!("{stack}-taken"))
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(80)
            .vpc_id(&vpc)
            .send()
            .await
            .expect("foreign target group");
        let kind = securecart::resources::kind("target_group").expect("kind");
        let want = kind
            .desired_in(
                &stack,
                "us-east-1",
                "taken",
                &serde_json::json!({"vpc": vpc, "port": 80}),
                std::path::Path::new("."),
            )
            .expect("desired");
        let desired = want.attrs.clone();
        let cx = securecart::resources::OpCx {
            stack: &stack,
            id: "taken",
            payload: &want.payload,
            progress: &quiet,
        };
        let err = kind
            .create(&aws, &cx, &desired)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not tagged as `taken`"), "{err}");

        for (kind_name, id, live) in made.iter().rev() {
            let kind = securecart::resources::kind(kind_name).expect("kind");
            let cx = securecart::resources::OpCx {
                stack: &stack,
                id,
                payload: &securecart::resources::Payload::default(),
                progress: &quiet,
            };
            kind.delete(&aws, &cx, live).await.expect("delete");
            assert!(
                kind.read(&aws, &stack).await.expect("read").is_empty(),
                "{kind_name}"
            );
        }
        let tgs = elb
            .describe_target_groups()
            .names(format!("{stack}-taken"))
            .send()
            .await
            .expect("foreign target group survives");
        elb.delete_target_group()
            .target_group_arn(tgs.target_groups()[0].target_group_arn().expect("arn"))
            .send()
            .await
            .expect("cleanup");
        delete_when_free("cleanup", || {
            ec2.delete_security_group().group_id(&sg).send()
        })
        .await;
        for s in &subnets {
            delete_when_free("cleanup", || ec2.delete_subnet().subnet_id(s).send()).await;
        }
        ec2.delete_vpc().vpc_id(&vpc).send().await.expect("cleanup");
    });
}

const SMALL_GROUP: &str = r#"name: small-group
resources:
  vpc: {type: vpc, cidr_block: 10.60.0.0/16}
  app_a:
    type: subnet
    vpc: ${vpc}
    cidr_block: 10.60.1.0/24
    availability_zone: ${stack.region}a
  web_lt:
    type: launch_template
    instance_type: t3.micro
  web_asg:
    type: autoscaling_group
    launch_template: ${web_lt}
    launch_template_version: ${web_lt.latest_version}
    subnets: ['${app_a}']
    min_size: 1
    max_size: 2
"#;

/// The strict emulator's Auto Scaling does not see a launch template for a moment after
/// EC2 created it, as AWS may answer (terraform-provider-aws #40088): the group's create
/// waits for it, says so, and converges; a later template change is an update.
#[test]
fn a_group_waits_for_its_new_launch_template() {
    emulator();
    let stack = stack("lt");
    let dir = tempfile::tempdir().expect("tempdir");
    let bp = dir.path().join("blueprint.yaml");
    std::fs::write(&bp, SMALL_GROUP).expect("blueprint");
    let bp_s = bp.to_str().expect("utf-8 path");

    // Line-by-line progress, as a CI log shows it.
    let out = cli()
        .args(["apply", bp_s, "--yes", "--local", "--stack", &stack])
        .output()
        .expect("run securecart");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().any(|l| l.contains("creating web_asg: ")
            && l.contains("The specified launch template, with template ID lt-")),
        "no wait for the new launch template:\n{stdout}"
    );
    let (code, plan, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 0, "plan after apply: {:?}", changes(&plan["plan"]));

    // A new template version: the template and the group change in place.
    edit(&bp, "instance_type: t3.micro", "instance_type: t3.small");
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "apply of the change failed: {out:#}\n{err}");
    let (code, plan, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 0, "plan after update: {:?}", changes(&plan["plan"]));

    let (code, out, err) = run_json(&["destroy", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "destroy failed: {out:#}\n{err}");
    let left = rt().block_on(leftovers(&stack));
    assert!(left.is_empty(), "left after destroy: {left:?}");
}
