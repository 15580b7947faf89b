//! Planner tests: blueprints parsed for real, live state built by hand.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value as Json};

use super::*;
use crate::blueprint::{self, SourceFile};
use crate::resources::{self, Live};

pub(crate) const BP: &str = r#"
name: shop
parameters:
  password:
    type: string
    secret: true
    default: hunter2
resources:
  net:
    type: vpc
    cidr_block: 10.0.0.0/16
  web:
    type: subnet
    vpc: ${net}
    cidr_block: 10.0.1.0/24
    availability_zone: ${stack.region}a
"#;

pub(crate) fn bp(text: &str) -> Blueprint {
    let f = SourceFile::new("t.yaml".into(), PathBuf::from("t.yaml"), text.to_string());
    match blueprint::parse(f, PathBuf::from("."), &[], &resources::Catalog) {
        Ok(b) => b,
        Err(blueprint::LoadError::Invalid(d)) => panic!("invalid test blueprint:\n{d}"),
        Err(e) => panic!("{e}"),
    }
}

pub(crate) fn stack() -> StackInfo {
    StackInfo {
        name: "shop".into(),
        region: "eu-west-1".into(),
        account_id: None,
        zones: Vec::new(),
    }
}

/// A live resource exactly as the blueprint would have made it.
pub(crate) fn live_as_desired(
    b: &Blueprint,
    id: &str,
    physical: &str,
    known: &HashMap<String, Option<BTreeMap<String, Json>>>,
) -> Live {
    let r = &b.resources[id];
    let kind = resources::kind(&r.kind).expect("kind");
    let kinds: HashMap<String, String> = b
        .resources
        .values()
        .map(|r| (r.id.clone(), r.kind.clone()))
        .collect();
    let lookup = |rf: &Ref| resolve_ref(rf, &stack(), known, &resources::kind, &kinds);
    let cfg = refs::substitute(&r.config, &lookup);
    let attrs = kind.desired("shop", id, &cfg).expect("desired");
    let mut outputs = BTreeMap::new();
    outputs.insert(kind.attributes()[0].to_string(), json!(physical));
    Live {
        id: id.into(),
        kind: kind.name(),
        physical_id: physical.into(),
        attrs,
        outputs,
    }
}

fn live_world(b: &Blueprint) -> Vec<Live> {
    let mut known = HashMap::new();
    let net = live_as_desired(b, "net", "vpc-1", &known);
    known.insert("net".to_string(), Some(net.outputs.clone()));
    let web = live_as_desired(b, "web", "subnet-1", &known);
    vec![net, web]
}

fn actions(p: &Plan) -> Vec<(String, Action)> {
    p.actions.iter().map(|a| (a.id.clone(), a.action)).collect()
}

#[test]
fn empty_world_creates_everything_in_dependency_order() {
    let b = bp(BP);
    let p = plan(&stack(), &b, &[], &resources::kind);
    assert_eq!(
        actions(&p),
        vec![
            ("net".into(), Action::Create),
            ("web".into(), Action::Create)
        ]
    );
    assert_eq!(
        p.summary,
        Summary {
            create: 2,
            ..Summary::default()
        }
    );
    let web = &p.actions[1];
    assert_eq!(web.depends_on, vec!["net".to_string()]);
    // The subnet's VPC id only exists after apply; the region is known now.
    let vpc = web
        .changes
        .iter()
        .find(|c| c.attribute == "vpc")
        .expect("vpc change");
    assert_eq!(vpc.after, json!(refs::UNKNOWN));
    let az = web
        .changes
        .iter()
        .find(|c| c.attribute == "availability_zone")
        .expect("az");
    assert_eq!(az.after, json!("eu-west-1a"));
}

#[test]
fn matching_world_is_all_noop() {
    let b = bp(BP);
    let live = live_world(&b);
    let p = plan(&stack(), &b, &live, &resources::kind);
    assert_eq!(
        actions(&p),
        vec![("net".into(), Action::NoOp), ("web".into(), Action::NoOp)]
    );
    assert!(!p.summary.has_changes());
}

#[test]
fn in_place_change_is_an_update_with_before_and_after() {
    let b = bp(&BP.replace(
        "cidr_block: 10.0.0.0/16",
        "cidr_block: 10.0.0.0/16\n    enable_dns_hostnames: false",
    ));
    let live = live_world(&bp(BP));
    let p = plan(&stack(), &b, &live, &resources::kind);
    assert_eq!(
        actions(&p),
        vec![("net".into(), Action::Update), ("web".into(), Action::NoOp)]
    );
    let c = &p.actions[0].changes;
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].attribute.as_str(), &c[0].before, &c[0].after),
        ("enable_dns_hostnames", &json!(true), &json!(false))
    );
    assert!(!c[0].forces_replacement);
    assert_eq!(p.actions[0].reason, "enable_dns_hostnames changes in place");
}

#[test]
fn replacement_names_the_attribute_and_cascades_to_dependents() {
    let b = bp(&BP
        .replace("10.0.0.0/16", "10.1.0.0/16")
        .replace("10.0.1.0/24", "10.1.1.0/24"));
    let live = live_world(&bp(BP));
    let p = plan(&stack(), &b, &live, &resources::kind);
    assert_eq!(
        actions(&p),
        vec![
            ("net".into(), Action::Replace),
            ("web".into(), Action::Replace)
        ]
    );
    assert_eq!(p.actions[0].reason, "cidr_block cannot change in place");
    assert!(p.actions[0].changes[0].forces_replacement);
    // The subnet must move to the new VPC, whose id is unknown until it exists.
    assert!(
        p.actions[1].reason.contains("vpc"),
        "{}",
        p.actions[1].reason
    );
}

#[test]
fn resources_gone_from_the_blueprint_are_deleted_with_a_reason() {
    let b = bp(&BP[..BP.find("  web:").expect("web")]);
    let live = live_world(&bp(BP));
    let p = plan(&stack(), &b, &live, &resources::kind);
    assert_eq!(
        actions(&p),
        vec![("net".into(), Action::NoOp), ("web".into(), Action::Delete)]
    );
    assert_eq!(p.actions[1].reason, "no longer in the blueprint");
    assert_eq!(p.actions[1].physical_id.as_deref(), Some("subnet-1"));
}

#[test]
fn duplicates_found_by_tag_are_planned_for_deletion() {
    let b = bp(BP);
    let mut live = live_world(&b);
    let mut twin = live[0].clone();
    twin.physical_id = "vpc-2".into();
    live.push(twin);
    let p = plan(&stack(), &b, &live, &resources::kind);
    let del: Vec<_> = p
        .actions
        .iter()
        .filter(|a| a.action == Action::Delete)
        .collect();
    assert_eq!(del.len(), 1);
    assert_eq!(del[0].physical_id.as_deref(), Some("vpc-2"));
    assert!(del[0].reason.contains("duplicate"));
}

#[test]
fn secret_values_never_reach_the_plan() {
    let text = "name: shop\nparameters:\n  block:\n    secret: true\n    default: 10.7.0.0/16\nresources:\n  net:\n    type: vpc\n    cidr_block: ${params.block}\n";
    let p = plan(&stack(), &bp(text), &[], &resources::kind);
    let json = serde_json::to_string(&p).expect("json");
    assert!(!json.contains("10.7.0.0"), "secret leaked: {json}");
    let c = p.actions[0]
        .changes
        .iter()
        .find(|c| c.attribute == "cidr_block")
        .expect("cidr change");
    assert!(c.sensitive);
    assert_eq!(c.after, json!(SENSITIVE));
}

#[test]
fn normalised_values_compare_equal() {
    let d = json!({"a": [1, 2], "b": "x"});
    assert!(diff(
        &d,
        &json!({"a": [1, 2], "b": "x", "extra": true}),
        &[],
        &Default::default()
    )
    .is_empty());
    let c = diff(
        &d,
        &json!({"a": [2, 1], "b": "x"}),
        &["a"],
        &Default::default(),
    );
    assert_eq!(c.len(), 1);
    assert!(c[0].forces_replacement);
}

#[test]
fn destroy_plan_deletes_everything_live() {
    let live = live_world(&bp(BP));
    let p = destroy_plan("shop", &live);
    assert_eq!(p.summary.delete, 2);
    assert!(p.actions.iter().all(|a| a.action == Action::Delete));
}

#[test]
fn live_dependencies_follow_ids_inside_attributes() {
    let live = live_world(&bp(BP));
    let deps = live_dependencies(&live);
    assert!(deps[1].contains(&0), "the subnet refers to the VPC");
    assert!(deps[0].is_empty());
}

/// A target group a listener forwards to (the listener's load balancer is an existing
/// one, by ARN, so only the target group is ours to replace).
pub(crate) const WEB: &str = r#"  tg:
    type: target_group
    vpc: ${net}
    port: 8080
  http:
    type: listener
    load_balancer: arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/lb/0123456789abcdef
    port: 80
    forward: ${tg}
"#;

/// The BP world plus the target group and its listener, as the blueprint made them.
pub(crate) fn web_world(b: &Blueprint) -> Vec<Live> {
    let mut live = live_world(b);
    let mut known: HashMap<String, Option<BTreeMap<String, Json>>> = HashMap::new();
    for l in &live {
        known.insert(l.id.clone(), Some(l.outputs.clone()));
    }
    let tg = live_as_desired(b, "tg", "arn:tg/old", &known);
    known.insert("tg".into(), Some(tg.outputs.clone()));
    let http = live_as_desired(b, "http", "arn:listener/1", &known);
    live.extend([tg, http]);
    live
}

pub(crate) fn web_bp(port: u16) -> Blueprint {
    bp(&format!("{BP}{}", WEB.replace("8080", &port.to_string())))
}

#[test]
fn a_used_target_group_is_replaced_create_before_delete_and_its_listener_repointed() {
    let live = web_world(&web_bp(8080));
    let p = plan(&stack(), &web_bp(8081), &live, &resources::kind);
    let mut got = actions(&p);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("http".into(), Action::Update),
            ("net".into(), Action::NoOp),
            ("tg".into(), Action::Replace),
            ("web".into(), Action::NoOp),
        ]
    );
    let at = |id: &str| p.actions.iter().position(|a| a.id == id).expect("action");
    let tg = &p.actions[at("tg")];
    assert!(tg.create_before_delete, "{tg:?}");
    assert_eq!(tg.reason, "port cannot change in place");
    let http = &p.actions[at("http")];
    assert!(!http.create_before_delete);
    assert!(
        http.reason.contains("re-pointed to the new `tg`"),
        "{}",
        http.reason
    );
    let json = serde_json::to_value(&p).expect("json");
    assert_eq!(
        json["actions"][at("tg")]["create_before_delete"],
        json!(true)
    );
    assert!(json["actions"][at("http")]
        .get("create_before_delete")
        .is_none());
}

#[test]
fn an_unused_resource_or_one_on_a_replaced_vpc_is_deleted_first() {
    // Nothing forwards to it: the old copy goes first and the name stays.
    let mut live = web_world(&web_bp(8080));
    live.retain(|l| l.id != "http");
    let p = plan(
        &stack(),
        &bp(&format!(
            "{BP}{}",
            &WEB[..WEB.find("  http:").expect("http")].replace("8080", "8081")
        )),
        &live,
        &resources::kind,
    );
    let tg = p.actions.iter().find(|a| a.id == "tg").expect("tg");
    assert_eq!(tg.action, Action::Replace);
    assert!(!tg.create_before_delete);
    // Its VPC goes first: the old group must go before the old VPC can, so before the
    // new VPC (and the new group in it) exists.
    let live = web_world(&web_bp(8080));
    let moved = bp(&format!("{BP}{WEB}")
        .replace("10.0.0.0/16", "10.1.0.0/16")
        .replace("10.0.1.0/24", "10.1.1.0/24"));
    let p = plan(&stack(), &moved, &live, &resources::kind);
    let tg = p.actions.iter().find(|a| a.id == "tg").expect("tg");
    assert_eq!(tg.action, Action::Replace);
    assert!(!tg.create_before_delete);
}

#[test]
fn a_copy_under_the_alternate_name_is_the_desired_one() {
    let b = web_bp(8080);
    let mut live = web_world(&b);
    let tg = live.iter_mut().find(|l| l.id == "tg").expect("tg");
    let name = tg.attrs["name"].as_str().expect("name").to_string();
    tg.attrs["name"] = json!(resources::common::alternate_name(&name, 32));
    let p = plan(&stack(), &b, &live, &resources::kind);
    assert!(!p.summary.has_changes(), "{:?}", actions(&p));
}

#[test]
fn two_copies_left_by_an_interrupted_replacement_keep_the_matching_one() {
    // Killed after the new group was made, before the listener moved to it.
    let old = web_world(&web_bp(8080));
    let mut live = old.clone();
    let mut known: HashMap<String, Option<BTreeMap<String, Json>>> = HashMap::new();
    known.insert("net".into(), Some(old[0].outputs.clone()));
    let mut new = live_as_desired(&web_bp(8081), "tg", "arn:tg/new", &known);
    let name = new.attrs["name"].as_str().expect("name").to_string();
    new.attrs["name"] = json!(resources::common::alternate_name(&name, 32));
    live.push(new);
    let p = plan(&stack(), &web_bp(8081), &live, &resources::kind);
    let tg = p.actions.iter().find(|a| a.id == "tg").expect("tg");
    assert_eq!(tg.action, Action::NoOp);
    assert_eq!(tg.physical_id.as_deref(), Some("arn:tg/new"));
    let gone: Vec<_> = p
        .actions
        .iter()
        .filter(|a| a.action == Action::Delete)
        .map(|a| a.physical_id.as_deref())
        .collect();
    assert_eq!(gone, vec![Some("arn:tg/old")]);
    let http = p.actions.iter().find(|a| a.id == "http").expect("http");
    assert_eq!(http.action, Action::Update);
    // The blueprint went back to 8080 instead: the old copy is the one kept.
    let p = plan(&stack(), &web_bp(8080), &live, &resources::kind);
    let tg = p.actions.iter().find(|a| a.id == "tg").expect("tg");
    assert_eq!(
        (tg.action, tg.physical_id.as_deref()),
        (Action::NoOp, Some("arn:tg/old"))
    );
    let http = p.actions.iter().find(|a| a.id == "http").expect("http");
    assert_eq!(http.action, Action::NoOp);
}

fn bp_in(dir: &str, text: &str) -> Blueprint {
    let f = SourceFile::new("t.yaml".into(), PathBuf::from("t.yaml"), text.to_string());
    match blueprint::parse(f, PathBuf::from(dir), &[], &resources::Catalog) {
        Ok(b) => b,
        Err(blueprint::LoadError::Invalid(d)) => panic!("invalid test blueprint:\n{d}"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_secret_beside_a_value_known_after_apply_is_masked_whole() {
    // The ordinary case: a password next to a queue URL that exists only after apply.
    let text = "name: shop\nparameters:\n  key:\n    secret: true\n    default: TOPSECRET-123\nresources:\n  q:\n    type: sqs_queue\n  fn:\n    type: lambda_function\n    code: functions/process_payment\n    runtime: python3.12\n    handler: handler.handler\n    environment:\n      API_KEY: ${params.key}\n      QUEUE_URL: ${q.url}\n";
    let p = plan(&stack(), &bp_in("labs/01", text), &[], &resources::kind);
    let json = serde_json::to_string(&p).expect("json");
    assert!(!json.contains("TOPSECRET"), "secret leaked: {json}");
    let env = p
        .actions
        .iter()
        .flat_map(|a| &a.changes)
        .find(|c| c.attribute == "environment")
        .expect("environment change");
    assert!(env.sensitive);
    assert_eq!(env.after, json!(SENSITIVE));
}

#[test]
fn an_attribute_holding_a_secret_under_another_name_or_digest_is_sensitive() {
    let fields: BTreeSet<String> = ["user_data_vars".to_string()].into();
    let values = vec!["hunter2-pw".to_string()];
    let s = Sensitivity {
        fields: &fields,
        values: &values,
        derived: &[("user_data_sha256", &["user_data", "user_data_vars"])],
    };
    let c = diff(
        &json!({"user_data_sha256": "abc", "tags": {"K": "x-hunter2-pw-y"}, "name": "n"}),
        &json!({"user_data_sha256": "def", "tags": {}, "name": "m"}),
        &[],
        &s,
    );
    let by = |a: &str| c.iter().find(|c| c.attribute == a).expect(a);
    assert!(by("user_data_sha256").sensitive);
    assert_eq!(by("user_data_sha256").before, json!(SENSITIVE));
    assert!(by("tags").sensitive, "a secret inside a map is found");
    assert!(!by("name").sensitive);
    assert_eq!(by("name").after, json!("n"));
    // The old value can hold the secret too (the live copy of what the blueprint set).
    let c = diff(
        &json!({"x": "new"}),
        &json!({"x": "old hunter2-pw"}),
        &[],
        &s,
    );
    assert_eq!(c[0].before, json!(SENSITIVE));
    assert_eq!(c[0].after, json!(SENSITIVE));
}

#[test]
fn a_part_kept_beside_a_resource_of_the_blueprint_is_not_deleted() {
    let b = bp(BP);
    let part = |id: &str| Live {
        id: id.into(),
        kind: "vpc",
        physical_id: format!("/securecart/shop/{id}"),
        attrs: json!({}),
        outputs: BTreeMap::new(),
    };
    let p = plan(
        &stack(),
        &b,
        &[part("net/stored"), part("gone/stored")],
        &resources::kind,
    );
    let action = |id: &str| {
        p.actions
            .iter()
            .find(|a| a.id == id)
            .map(|a| (a.action, a.reason.clone()))
            .expect(id)
    };
    assert_eq!(
        action("net/stored"),
        (Action::NoOp, "stored of `net`, kept for it".to_string())
    );
    // Its owner is gone from the blueprint: the part goes too.
    assert_eq!(action("gone/stored").0, Action::Delete);
}

#[test]
fn zone_positions_resolve_and_past_the_last_is_a_located_error() {
    let text = "name: shop\nresources:\n  net: {type: vpc, cidr_block: 10.0.0.0/16}\n  a:\n    type: subnet\n    vpc: ${net}\n    cidr_block: 10.0.1.0/24\n    availability_zone: ${stack.zones[0]}\n  c:\n    type: subnet\n    vpc: ${net}\n    cidr_block: 10.0.2.0/24\n    availability_zone: ${stack.zones[2]}\n";
    let mut b = bp(text);
    let zone = |n: &str, id: &str| super::Zone {
        name: n.into(),
        id: id.into(),
    };
    let mut info = stack();
    info.region = "ap-northeast-1".into();
    info.zones = vec![
        zone("ap-northeast-1a", "apne1-az4"),
        zone("ap-northeast-1c", "apne1-az1"),
        zone("ap-northeast-1d", "apne1-az2"),
    ];
    assert!(info.place_zones(&mut b, &resources::kind).is_ok());
    let p = plan(&info, &b, &[], &resources::kind);
    let zone_of = |id: &str| {
        p.actions
            .iter()
            .find(|a| a.id == id)
            .and_then(|a| {
                a.changes
                    .iter()
                    .find(|c| c.attribute == "availability_zone")
            })
            .map(|c| c.after.clone())
    };
    assert_eq!(zone_of("a"), Some(serde_json::json!("ap-northeast-1a")));
    assert_eq!(zone_of("c"), Some(serde_json::json!("ap-northeast-1d")));

    info.zones.truncate(2);
    let d = info.place_zones(&mut b, &resources::kind).unwrap_err();
    assert_eq!(d.problems.len(), 1);
    let p = &d.problems[0];
    assert_eq!((p.line, p.column), (Some(13), Some(24)));
    assert!(
        p.message.contains("ap-northeast-1 has 2 availability zone"),
        "{}",
        p.message
    );
    let help = p.help.as_deref().unwrap_or_default();
    assert!(help.contains("[1] ap-northeast-1c (apne1-az1)"), "{help}");
}

#[test]
fn zone_ids_become_names_and_unknown_zones_are_located_errors() {
    let text = "name: shop\nresources:\n  net: {type: vpc, cidr_block: 10.0.0.0/16}\n  a:\n    type: subnet\n    vpc: ${net}\n    cidr_block: 10.0.1.0/24\n    availability_zone: apne1-az1\n  b:\n    type: subnet\n    vpc: ${net}\n    cidr_block: 10.0.2.0/24\n    availability_zone: ap-northeast-1d\n";
    let mut info = stack();
    info.region = "ap-northeast-1".into();
    info.zones = vec![
        super::Zone {
            name: "ap-northeast-1a".into(),
            id: "apne1-az4".into(),
        },
        super::Zone {
            name: "ap-northeast-1c".into(),
            id: "apne1-az1".into(),
        },
    ];
    let mut b = bp(text);
    let d = info.place_zones(&mut b, &resources::kind).unwrap_err();
    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
    let p = &d.problems[0];
    assert_eq!((p.line, p.column), (Some(13), Some(24)));
    assert!(p
        .message
        .contains("`ap-northeast-1d` is not an availability zone of ap-northeast-1"));
    assert_eq!(
        b.resources["a"].config["availability_zone"],
        "ap-northeast-1c"
    );

    let mut b = bp(&text.replace("ap-northeast-1d", "apne1-az4"));
    info.place_zones(&mut b, &resources::kind)
        .expect("known zones");
    assert_eq!(
        b.resources["b"].config["availability_zone"],
        "ap-northeast-1a"
    );
}
