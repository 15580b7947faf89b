//! Step-graph tests: what waits for what when a plan creates, replaces and deletes.

use std::collections::HashMap;

use super::*;
use crate::plan::tests::{bp, live_as_desired, stack, BP};

fn describe(plan: &Plan, steps: &[Step], waits: &[BTreeSet<usize>]) -> Vec<String> {
    let name = |s: &Step| format!("{} {}", s.op.verb(), plan.actions[s.action].id);
    steps
        .iter()
        .zip(waits)
        .map(|(s, w)| {
            let mut after: Vec<String> = w.iter().map(|&i| name(&steps[i])).collect();
            after.sort();
            format!("{} <- [{}]", name(s), after.join(", "))
        })
        .collect()
}

fn world() -> Vec<Live> {
    let b = bp(BP);
    let mut known = HashMap::new();
    let net = live_as_desired(&b, "net", "vpc-1", &known);
    known.insert("net".to_string(), Some(net.outputs.clone()));
    let web = live_as_desired(&b, "web", "subnet-1", &known);
    vec![net, web]
}

#[test]
fn creates_wait_for_what_they_reference() {
    let b = bp(BP);
    let p = plan::plan(&stack(), &b, &[], &resources::kind);
    let (steps, waits) = steps_of(&p, &[]);
    assert_eq!(
        describe(&p, &steps, &waits),
        vec!["create net <- []", "create web <- [create net]"]
    );
}

#[test]
fn replacements_delete_dependents_first_and_recreate_in_order() {
    let b = bp(&BP
        .replace("10.0.0.0/16", "10.1.0.0/16")
        .replace("10.0.1.0/24", "10.1.1.0/24"));
    let live = world();
    let p = plan::plan(&stack(), &b, &live, &resources::kind);
    let (steps, waits) = steps_of(&p, &live);
    assert_eq!(
        describe(&p, &steps, &waits),
        vec![
            "delete net <- [delete web]",
            "create net <- [delete net]",
            "delete web <- []",
            "create web <- [create net, delete web]",
        ]
    );
}

#[test]
fn destroy_goes_in_reverse_dependency_order() {
    let live = world();
    let p = plan::destroy_plan("shop", &live);
    let (steps, waits) = steps_of(&p, &live);
    assert_eq!(
        describe(&p, &steps, &waits),
        vec!["delete net <- [delete web]", "delete web <- []"]
    );
}

#[test]
fn unchanged_resources_make_no_steps() {
    let live = world();
    let p = plan::plan(&stack(), &bp(BP), &live, &resources::kind);
    assert!(steps_of(&p, &live).0.is_empty());
}
