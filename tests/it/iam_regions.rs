//! IAM is global, stacks are regional: one stack name applied in two regions gets two sets
//! of roles, each named, pathed and tagged with its region; destroying one region's stack
//! leaves the other's roles untouched, and a role of another region is refused, not adopted.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;

use crate::common::{changes, rt, run_json, sdk, stack};

const BLUEPRINT: &str = r#"name: iam-regions
resources:
  runner:
    type: iam_role
    service: states.amazonaws.com
    description: runs the flow
  flow:
    type: state_machine
    role: ${runner.arn}
    tracing: false
    definition:
      StartAt: Hold
      States:
        Hold: {Type: Pass, End: true}
  auto_flow:
    type: state_machine
    definition:
      StartAt: Hold
      States:
        Hold: {Type: Pass, End: true}
"#;

/// An IAM client of the emulator whose requests are signed for `region`.
async fn iam_in(region: &str) -> aws_sdk_iam::Client {
    let cfg = sdk().await;
    aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&cfg)
            .region(aws_sdk_iam::config::Region::new(region.to_string()))
            .build(),
    )
}

/// The stack's roles as (name → its `securecart:region` tag), seen from `seen_from`.
fn roles_of(st: &str, seen_from: &str) -> BTreeMap<String, Option<String>> {
    rt().block_on(async {
        let iam = iam_in(seen_from).await;
        let roles = iam
            .list_roles()
            .path_prefix(format!("/securecart/{st}/"))
            .send()
            .await
            .expect("ListRoles");
        let mut out = BTreeMap::new();
        for r in roles.roles() {
            let tags = iam
                .list_role_tags()
                .role_name(r.role_name())
                .send()
                .await
                .expect("ListRoleTags");
            let region = tags
                .tags()
                .iter()
                .find(|t| t.key() == "securecart:region")
                .map(|t| t.value().to_string());
            out.insert(r.role_name().to_string(), region);
        }
        out
    })
}

/// Creates a role as something other than securecart would: `name` under `path`, trusted by
/// Step Functions, with these tags; its ARN.
async fn make_role(name: &str, path: &str, tags: &[(&str, &str)]) -> String {
    let iam = iam_in("us-east-1").await;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"states.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let mut req = iam
        .create_role()
        .role_name(name)
        .path(path)
        .assume_role_policy_document(trust);
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(*k).value(*v).build().expect("tag"));
    }
    let out = req.send().await.expect("CreateRole");
    out.role().expect("role").arn().to_string()
}

fn bp(dir: &tempfile::TempDir, text: &str) -> String {
    let p = dir.path().join("blueprint.yaml");
    std::fs::write(&p, text).expect("write blueprint");
    p.to_str().expect("utf-8").to_string()
}

#[test]
fn one_stack_name_in_two_regions_never_shares_roles() {
    let st = stack("iamreg");
    let dir = tempfile::tempdir().expect("tempdir");
    let bp = bp(&dir, BLUEPRINT);
    for region in ["us-east-1", "eu-west-1"] {
        let (code, out, err) = run_json(&["apply", &bp, "--yes", "--region", region], &st);
        assert_eq!(code, 0, "{region}: {out:#}\n{err}");
    }
    let want = |regions: &[&str]| -> BTreeMap<String, Option<String>> {
        regions
            .iter()
            .flat_map(|r| {
                [
                    (format!("{st}-runner-{r}"), Some(r.to_string())),
                    (format!("{st}-auto_flow-role-{r}"), Some(r.to_string())),
                ]
            })
            .collect()
    };
    // The emulator's IAM is global like AWS's (one store per account and partition, not per
    // region): a client of either region sees both regions' roles. Otherwise two regions
    // could never meet in IAM and this test would prove nothing.
    for seen_from in ["us-east-1", "eu-west-1"] {
        assert_eq!(
            roles_of(&st, seen_from),
            want(&["us-east-1", "eu-west-1"]),
            "seen from {seen_from}"
        );
    }
    for region in ["us-east-1", "eu-west-1"] {
        let (code, plan, err) = run_json(&["plan", &bp, "--region", region], &st);
        assert_eq!(code, 0, "{region}: {:?}\n{err}", changes(&plan["plan"]));
    }

    let (code, out, err) = run_json(&["destroy", &bp, "--yes", "--region", "us-east-1"], &st);
    assert_eq!(code, 0, "{out:#}\n{err}");
    // Only us-east-1's roles went; eu-west-1's are untouched and its stack plans clean.
    assert_eq!(roles_of(&st, "us-east-1"), want(&["eu-west-1"]));
    let (code, plan, err) = run_json(&["plan", &bp, "--region", "eu-west-1"], &st);
    assert_eq!(code, 0, "{:?}\n{err}", changes(&plan["plan"]));

    let (code, out, err) = run_json(&["destroy", &bp, "--yes", "--region", "eu-west-1"], &st);
    assert_eq!(code, 0, "{out:#}\n{err}");
    assert!(roles_of(&st, "eu-west-1").is_empty());
}

/// A role that takes this region's name but is tagged for the stack's other region is
/// refused, saying whose it is; a role from before roles were per region that nothing in
/// this region uses is not read as the stack's here (plan stays empty, destroy leaves it).
#[test]
fn another_regions_role_is_refused_and_an_unused_legacy_role_left_alone() {
    let st = stack("iamclash");
    let dir = tempfile::tempdir().expect("tempdir");
    let bp = bp(
        &dir,
        "name: iam-clash\nresources:\n  runner:\n    type: iam_role\n    service: states.amazonaws.com\n",
    );
    rt().block_on(async {
        // This region's name, tagged as the stack's role in another region.
        make_role(
            &format!("{st}-runner-eu-west-1"),
            &format!("/securecart/{st}/us-east-1/"),
            &[
                ("securecart:stack", &st),
                ("securecart:resource", "runner"),
                ("securecart:region", "us-east-1"),
            ],
        )
        .await;
        // The form an earlier securecart made: no region anywhere.
        make_role(
            &format!("{st}-runner"),
            &format!("/securecart/{st}/"),
            &[("securecart:stack", &st), ("securecart:resource", "runner")],
        )
        .await;
    });
    // Nothing in eu-west-1 uses the legacy role: it is not this region's to replace.
    let (code, plan, err) = run_json(&["plan", &bp, "--region", "eu-west-1"], &st);
    assert_eq!(code, 2, "{plan:#}\n{err}");
    assert_eq!(
        changes(&plan["plan"]),
        vec![("runner".to_string(), "create".to_string())]
    );
    let (code, out, err) = run_json(&["apply", &bp, "--yes", "--region", "eu-west-1"], &st);
    assert_eq!(code, 1, "{out:#}\n{err}");
    let text = format!("{out}\n{err}");
    assert!(
        text.contains(&format!(
            "an IAM role named `{st}-runner-eu-west-1` belongs to stack `{st}` in region us-east-1"
        )),
        "{text}"
    );
    // Neither role was changed or deleted.
    let (code, out, err) = run_json(
        &["destroy", "--yes", "--allow-empty", "--region", "eu-west-1"],
        &st,
    );
    assert_eq!(code, 0, "{out:#}\n{err}");
    let left = roles_of(&st, "eu-west-1");
    assert_eq!(
        left,
        BTreeMap::from([
            (format!("{st}-runner"), None),
            (
                format!("{st}-runner-eu-west-1"),
                Some("us-east-1".to_string())
            ),
        ])
    );
    rt().block_on(async {
        let iam = iam_in("us-east-1").await;
        for name in left.keys() {
            iam.delete_role()
                .role_name(name)
                .send()
                .await
                .expect("DeleteRole");
        }
    });
}

/// A role an earlier securecart made (`STACK-runner` under `/securecart/STACK/`, no region
/// tag) that a state machine of the stack in us-east-1 runs as belongs to us-east-1: its
/// plan replaces it with `STACK-runner-us-east-1` and re-points the machine, apply deletes
/// the old role after, and the next plan is empty.
#[test]
fn a_legacy_role_moves_to_its_region_where_it_is_used() {
    let st = stack("iamlegacy");
    let dir = tempfile::tempdir().expect("tempdir");
    let bp = bp(
        &dir,
        "name: iam-legacy\nresources:\n  runner:\n    type: iam_role\n    service: states.amazonaws.com\n  flow:\n    type: state_machine\n    role: ${runner.arn}\n    tracing: false\n    definition:\n      StartAt: Hold\n      States:\n        Hold: {Type: Pass, End: true}\n",
    );
    rt().block_on(async {
        let cfg = sdk().await;
        let arn = make_role(
            &format!("{st}-runner"),
            &format!("/securecart/{st}/"),
            &[("securecart:stack", &st), ("securecart:resource", "runner")],
        )
        .await;
        // The strict emulator refuses a role younger than its IAM window, as AWS may.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let sfn = aws_sdk_sfn::Client::new(&cfg);
        let stag = |k: &str, v: &str| aws_sdk_sfn::types::Tag::builder().key(k).value(v).build();
        sfn.create_state_machine()
            .name(format!("{st}-flow"))
            .role_arn(arn)
            .definition(r#"{"StartAt":"Hold","States":{"Hold":{"Type":"Pass","End":true}}}"#)
            .tags(stag("securecart:stack", &st))
            .tags(stag("securecart:resource", "flow"))
            .send()
            .await
            .expect("CreateStateMachine");
    });
    // eu-west-1 has nothing that uses it: not its role.
    let (code, plan, err) = run_json(&["plan", &bp, "--region", "eu-west-1"], &st);
    assert_eq!(code, 2, "{plan:#}\n{err}");
    assert_eq!(
        changes(&plan["plan"]),
        vec![
            ("flow".to_string(), "create".to_string()),
            ("runner".to_string(), "create".to_string())
        ]
    );
    // us-east-1 runs a machine as it: replaced there, the machine re-pointed.
    let (code, plan, err) = run_json(&["plan", &bp, "--region", "us-east-1"], &st);
    assert_eq!(code, 2, "{plan:#}\n{err}");
    let planned = changes(&plan["plan"]);
    assert!(
        planned.contains(&("runner".to_string(), "replace".to_string()))
            && planned.contains(&("flow".to_string(), "update".to_string())),
        "{planned:?}"
    );
    let (code, out, err) = run_json(&["apply", &bp, "--yes", "--region", "us-east-1"], &st);
    assert_eq!(code, 0, "{out:#}\n{err}");
    assert_eq!(
        roles_of(&st, "us-east-1"),
        BTreeMap::from([(
            format!("{st}-runner-us-east-1"),
            Some("us-east-1".to_string())
        )])
    );
    let (code, plan, err) = run_json(&["plan", &bp, "--region", "us-east-1"], &st);
    assert_eq!(code, 0, "{:?}\n{err}", changes(&plan["plan"]));
    let (code, out, err) = run_json(&["destroy", &bp, "--yes", "--region", "us-east-1"], &st);
    assert_eq!(code, 0, "{out:#}\n{err}");
    assert!(roles_of(&st, "us-east-1").is_empty());
}
