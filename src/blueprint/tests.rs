//! Loader tests: parameters, references and problems, through the real kind catalog.

use std::path::PathBuf;

use super::*;
use crate::resources::Catalog as Kinds;

fn load(text: &str, vars: &[(&str, &str)]) -> Result<Blueprint, Diagnostics> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let f = SourceFile::new("t.yaml".into(), PathBuf::from("t.yaml"), text.to_string());
    match parse(f, PathBuf::from("."), &vars, &Kinds) {
        Ok(b) => Ok(b),
        Err(LoadError::Invalid(d)) => Err(d),
        Err(e) => panic!("{e}"),
    }
}

fn messages(d: &Diagnostics) -> Vec<String> {
    d.problems
        .iter()
        .map(|p| {
            format!(
                "{}:{} {}",
                p.line.unwrap_or(0),
                p.column.unwrap_or(0),
                p.message
            )
        })
        .collect()
}

const PARAMS: &str = "name: p\nparameters:\n  block:\n    default: 10.0.0.0/16\n  hosts:\n    type: boolean\n    default: true\nresources:\n  net:\n    type: vpc\n    cidr_block: ${params.block}\n    enable_dns_hostnames: ${params.hosts}\n";

#[test]
fn parameters_take_defaults_and_typed_overrides() {
    let b = load(PARAMS, &[]).expect("valid");
    assert_eq!(b.resources["net"].config["cidr_block"], "10.0.0.0/16");
    assert_eq!(b.resources["net"].config["enable_dns_hostnames"], true);
    let b = load(PARAMS, &[("hosts", "false"), ("block", "10.1.0.0/16")]).expect("valid");
    assert_eq!(b.resources["net"].config["enable_dns_hostnames"], false);
    assert_eq!(b.resources["net"].config["cidr_block"], "10.1.0.0/16");
}

#[test]
fn bad_overrides_and_missing_values_are_reported() {
    let d = load(PARAMS, &[("hosts", "perhaps")]).unwrap_err();
    assert!(
        messages(&d)[0].contains("--var hosts=perhaps: expected true or false"),
        "{d}"
    );
    let d = load(
        &PARAMS.replace(
            "    default: 10.0.0.0/16\n",
            "    description: no default\n",
        ),
        &[],
    )
    .unwrap_err();
    assert!(
        messages(&d)
            .iter()
            .any(|m| m.starts_with("3:3 parameter `block` has no default")),
        "{d}"
    );
}

#[test]
fn secret_parameters_mark_the_fields_they_fill() {
    let b = load(
        &PARAMS.replace("  block:\n", "  block:\n    secret: true\n"),
        &[],
    )
    .expect("valid");
    assert!(b.resources["net"].secret_fields.contains("cidr_block"));
    assert!(!b.resources["net"]
        .secret_fields
        .contains("enable_dns_hostnames"));
}

#[test]
fn references_become_dependencies() {
    let b = load("name: r\nresources:\n  net:\n    type: vpc\n    cidr_block: 10.0.0.0/16\n  sub:\n    type: subnet\n    vpc: ${net.id}\n    cidr_block: 10.0.1.0/24\n    availability_zone: ${stack.region}a\n", &[]).expect("valid");
    assert_eq!(
        b.resources["sub"]
            .dependencies()
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["net".to_string()]
    );
    assert_eq!(b.resources["sub"].refs[0].0, "vpc");
}

#[test]
fn a_cycle_names_every_member_once() {
    let d = load("name: c\nresources:\n  a:\n    type: vpc\n    cidr_block: 10.0.0.0/16\n    depends_on: [b]\n  b:\n    type: vpc\n    cidr_block: 10.1.0.0/16\n    depends_on: [a]\n", &[]).unwrap_err();
    assert_eq!(messages(&d), vec!["3:3 dependency cycle: a → b → a"]);
}

#[test]
fn self_references_and_reserved_ids_are_errors() {
    let d = load(
        "name: s\nresources:\n  params:\n    type: vpc\n    cidr_block: 10.0.0.0/16\n",
        &[],
    )
    .unwrap_err();
    assert!(messages(&d)[0].contains("reserved"), "{d}");
}

#[test]
fn paths_join_like_the_position_index_expects() {
    assert_eq!(
        join_path("resources.a", "rules[0].port"),
        "resources.a.rules[0].port"
    );
    assert_eq!(join_path("resources.a", "[2]"), "resources.a[2]");
    assert_eq!(join_path("", "name"), "name");
    assert_eq!(join_path("x", ""), "x");
}

#[test]
fn suggestions_only_for_close_names() {
    assert_eq!(
        did_you_mean("cidr_blok", ["cidr_block", "vpc"]),
        Some("did you mean `cidr_block`?".into())
    );
    assert_eq!(did_you_mean("zzz", ["cidr_block", "vpc"]), None);
}

#[test]
fn non_finite_var_numbers_are_refused_at_the_parameter() {
    let text = "name: n\nparameters:\n  mem:\n    type: number\n    default: 128\n    secret: true\nresources:\n  q:\n    type: sqs_queue\n    delay: ${params.mem}\n";
    for v in ["NaN", "inf", "-infinity", "1e400"] {
        let d = load(text, &[("mem", v)]).unwrap_err();
        // (The follow-on "unknown parameter" is another slice's to remove.)
        assert_eq!(
            messages(&d)[0],
            "3:3 --var mem=(secret): not a finite number",
            "{v}"
        );
    }
    assert_eq!(
        coerce(ParamType::Number, "1e2"),
        Ok(serde_json::json!(100.0))
    );
    assert_eq!(coerce(ParamType::Number, "-7"), Ok(serde_json::json!(-7)));
}

#[test]
fn escaped_dollar_braces_stay_literal_beside_references_and_parameters() {
    let text = "name: e\nparameters:\n  env:\n    default: prod\n  owner:\n    default: ${b.arn}\nresources:\n  b:\n    type: event_bus\n  r:\n    type: event_rule\n    bus: ${b.name}\n    description: \"${params.env} costs $${price}; owner ${params.owner}\"\n    event_pattern: {source: [shop]}\n";
    let b = load(text, &[]).expect("valid");
    let r = &b.resources["r"];
    // `$${price}` and the `${…}` inside a parameter's value are no references.
    let found: Vec<String> = r.refs.iter().map(|(p, x)| format!("{p} {x}")).collect();
    assert_eq!(found, vec!["bus ${b.name}"]);
    let lookup =
        |x: &Ref| (x.target == "b").then(|| refs::Resolved::Known(Json::String("shop-bus".into())));
    let cfg = refs::substitute(&r.config, &lookup);
    assert_eq!(cfg["description"], "prod costs ${price}; owner ${b.arn}");
    assert_eq!(cfg["bus"], "shop-bus");
}

#[test]
fn name_collisions_follow_each_kinds_names_and_namespaces() {
    // SQS names keep `_` and case: three queues.
    load(
        "name: q\nresources:\n  orders:\n    type: sqs_queue\n  Orders:\n    type: sqs_queue\n  orders_:\n    type: sqs_queue\n",
        &[],
    )
    .expect("three distinct queue names");
    // Load balancer and target group names are two namespaces: one name in each is fine.
    load(
        "name: l\nresources:\n  web_x:\n    type: load_balancer\n    subnets: [subnet-12345678, subnet-23456789]\n    security_groups: [sg-12345678]\n  web-x:\n    type: target_group\n    vpc: vpc-12345678\n    port: 80\n    protocol: HTTP\n",
        &[],
    )
    .expect("a load balancer and a target group may share a name");
    // RDS instances and replicas share one namespace of lower-case identifiers.
    let d = load(
        "name: r\nresources:\n  g:\n    type: db_subnet_group\n    subnets: [subnet-12345678, subnet-23456789]\n  Main:\n    type: db_instance\n    engine: postgres\n    engine_version: \"16\"\n    instance_class: db.t4g.micro\n    db_subnet_group: ${g}\n    master_password: generated\n  main:\n    type: db_read_replica\n    source: ${Main}\n    instance_class: db.t4g.micro\n",
        &[],
    )
    .unwrap_err();
    assert!(
        messages(&d)
            .iter()
            .any(|m| m.starts_with("13:3 `main` and `Main` (at 6:3) give the same RDS identifier")),
        "{d}"
    );
}

#[test]
fn secrets_never_reach_a_validation_message() {
    // A secret that reaches a checked field is refused without being named.
    let text = "name: s\nparameters:\n  block:\n    secret: true\n    default: TOPSECRET_xyz987\nresources:\n  net:\n    type: vpc\n    cidr_block: ${params.block}\n";
    let d = load(text, &[]).unwrap_err();
    let shown = format!("{d}");
    assert!(!shown.contains("TOPSECRET"), "{shown}");
    assert!(messages(&d)[0].contains("(secret)"), "{shown}");
    // The same through --var, and in a runtime name.
    let d = load(text, &[("block", "TOPSECRET_via_var")]).unwrap_err();
    assert!(!format!("{d}").contains("TOPSECRET"), "{d}");
    // A secret outside `allowed`: neither it nor the allowed values are listed.
    let text = "name: s\nparameters:\n  tier:\n    secret: true\n    default: gold-tier-key\n    allowed: [platinum-key, silver-key]\nresources:\n  q:\n    type: sqs_queue\n";
    let d = load(text, &[]).unwrap_err();
    let shown = messages(&d).join("\n");
    assert!(
        shown.contains("the value of secret parameter `tier` is not one of its allowed values"),
        "{shown}"
    );
    assert!(
        !shown.contains("platinum") && !shown.contains("gold"),
        "{shown}"
    );
}

#[test]
fn a_secret_too_short_to_mask_is_warned_about() {
    let text = "name: s\nparameters:\n  pin:\n    secret: true\n    default: abc\nresources:\n  q:\n    type: sqs_queue\n";
    let b = load(text, &[]).expect("valid");
    assert_eq!(b.secrets, vec!["abc".to_string()]);
    let w: Vec<_> = b.warnings.iter().map(|p| p.message.as_str()).collect();
    assert!(
        w.iter()
            .any(|m| m.contains("secret parameter `pin` is shorter than 4 characters")),
        "{w:?}"
    );
}

#[test]
fn zones_are_named_by_position() {
    let sub = |zone: &str| {
        format!("name: z\nresources:\n  net:\n    type: vpc\n    cidr_block: 10.0.0.0/16\n  sub:\n    type: subnet\n    vpc: ${{net.id}}\n    cidr_block: 10.0.1.0/24\n    availability_zone: {zone}\n")
    };
    let b = load(&sub("${stack.zones[1]}"), &[]).expect("valid");
    let refs = b.stack_references();
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(refs[0].0, "resources.sub.availability_zone");
    assert_eq!(refs[0].1.attribute.as_deref(), Some("zones[1]"));
    // The list itself is not a zone; other attributes take no index.
    let d = load(&sub("${stack.zones}"), &[]).unwrap_err();
    assert_eq!(
        messages(&d),
        vec!["10:24 unknown stack attribute in `${stack.zones}`"]
    );
    assert!(d.problems[0]
        .help
        .as_deref()
        .is_some_and(|h| h.contains("${stack.zones[0]}")));
    let d = load(&sub("${stack.region[0]}"), &[]).unwrap_err();
    assert_eq!(
        messages(&d),
        vec!["10:24 unknown stack attribute in `${stack.region[0]}`"]
    );
    for bad in ["${stack.zones[]}", "${stack.zones[x]}", "${stack.zones[0}"] {
        assert!(load(&sub(bad), &[]).is_err(), "{bad}");
    }
}
