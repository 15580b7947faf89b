//! Step-graph tests: what waits for what when a plan creates, replaces and deletes.

use std::collections::HashMap;

use super::*;
use crate::plan::tests::{bp, live_as_desired, stack, web_bp, web_world, BP};

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

fn ordered(p: &Plan, live: &[Live]) -> Vec<String> {
    let (steps, waits) = steps_of(p, live);
    let mut d = describe(p, &steps, &waits);
    d.sort();
    d
}

#[test]
fn create_before_delete_makes_the_new_copy_repoints_then_deletes() {
    let live = web_world(&web_bp(8080));
    let p = plan::plan(&stack(), &web_bp(8081), &live, &resources::kind);
    assert_eq!(
        ordered(&p, &live),
        vec![
            "create tg <- []",
            "delete tg <- [create tg, update http]",
            "update http <- [create tg]",
        ]
    );
}

#[test]
fn a_leftover_copy_goes_after_what_still_uses_it_is_repointed() {
    let old = web_world(&web_bp(8080));
    let mut live = old.clone();
    let mut known = HashMap::new();
    known.insert("net".to_string(), Some(old[0].outputs.clone()));
    live.push(live_as_desired(&web_bp(8081), "tg", "arn:tg/new", &known));
    let p = plan::plan(&stack(), &web_bp(8081), &live, &resources::kind);
    assert_eq!(
        ordered(&p, &live),
        vec!["delete tg <- [update http]", "update http <- []"]
    );
}

#[test]
fn replacements_on_a_replaced_vpc_delete_first_without_a_cycle() {
    let live = web_world(&web_bp(8080));
    let moved = bp(&format!("{BP}{}", crate::plan::tests::WEB)
        .replace("10.0.0.0/16", "10.1.0.0/16")
        .replace("10.0.1.0/24", "10.1.1.0/24"));
    let p = plan::plan(&stack(), &moved, &live, &resources::kind);
    let (steps, waits) = steps_of(&p, &live);
    for s in 0..steps.len() {
        assert!(
            !waits[s].iter().any(|&w| waits_on(&waits, w, s)),
            "cycle through {}",
            describe(&p, &steps, &waits)[s]
        );
    }
    let d = describe(&p, &steps, &waits);
    assert!(
        d.contains(&"create tg <- [create net, delete tg]".to_string()),
        "{d:#?}"
    );
    assert!(
        d.contains(&"delete net <- [delete tg, delete web]".to_string()),
        "{d:#?}"
    );
}

/// Every executor running in this process receives a `SIGINT` a test sends: tests that
/// send one hold this for writing, tests that run an executor for reading.
pub(super) static SIGNALS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Sends `SIGINT` to this test process (what Ctrl-C does to securecart).
pub(super) fn ctrl_c() {
    let ok = std::process::Command::new("kill")
        .args(["-INT", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success());
}

/// Tells the test when the first step has started (so the executor listens for Ctrl-C).
pub(super) struct Started(pub(super) std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl crate::report::Reporter for Started {
    fn event(&self, e: Event<'_>) {
        if let Event::StepStarted { .. } = e {
            if let Some(tx) = self.0.lock().expect("lock").take() {
                let _ = tx.send(());
            }
        }
    }
}

#[tokio::test]
async fn a_second_ctrl_c_stops_waiting_for_steps_in_flight() {
    let _one_at_a_time = SIGNALS.write().await;
    // An endpoint that accepts connections and never answers: the create waits for the
    // SDK's 120 s attempt timeout, as a long AWS wait would.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let aws = Aws::connect(&crate::aws::AwsSettings {
        endpoint_url: Some(url),
        local: true,
        ..Default::default()
    })
    .await
    .expect("connect");
    let b = bp(&BP[..BP.find("  web:").expect("web")]);
    let p = plan::plan(&stack(), &b, &[], &resources::kind);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let ex = Executor {
        aws: &aws,
        kinds: &resources::kind,
        stack: &stack(),
        blueprint: Some(&b),
        parallelism: 2,
        reporter: Arc::new(Started(std::sync::Mutex::new(Some(tx)))),
    };
    let t0 = Instant::now();
    let run = ex.run(&p, &[]);
    let signals = async {
        rx.await.expect("a step started");
        tokio::time::sleep(Duration::from_millis(300)).await;
        ctrl_c();
        // The first one lets the step finish: still running a while later.
        tokio::time::sleep(Duration::from_millis(700)).await;
        ctrl_c();
    };
    let (r, ()) =
        tokio::time::timeout(Duration::from_secs(30), futures::future::join(run, signals))
            .await
            .expect("the second Ctrl-C did not stop the wait");
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert!(r.interrupted);
    assert_eq!(r.steps.len(), 1, "{:?}", r.steps);
    match &r.steps[0].outcome {
        Outcome::Skipped { because } => assert!(because.contains("second Ctrl-C"), "{because}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_old_copy_waits_for_what_uses_its_users_too() {
    // The template uses the group and the Auto Scaling group the template: its update
    // (an instance refresh) moves the instances off the old group, which waits for it.
    let text = format!(
        "{BP}{}  lt:\n    type: launch_template\n    security_groups:\n      - ${{sg}}\n  sg:\n    type: security_group\n    vpc: ${{net}}\n    description: one\n  asg:\n    type: autoscaling_group\n    launch_template: ${{lt}}\n    launch_template_version: ${{lt.latest_version}}\n    subnets:\n      - ${{web}}\n    min_size: 1\n    max_size: 1\n",
        crate::plan::tests::WEB
    );
    let old = bp(&text);
    let mut known = HashMap::new();
    let mut live = Vec::new();
    for (id, phys) in [
        ("net", "vpc-1"),
        ("web", "subnet-1"),
        ("sg", "sg-1"),
        ("lt", "lt-1"),
        ("asg", "asg-1"),
    ] {
        let mut l = live_as_desired(&old, id, phys, &known);
        if id == "lt" {
            l.outputs
                .insert("latest_version".into(), serde_json::json!("1"));
        }
        known.insert(id.to_string(), Some(l.outputs.clone()));
        live.push(l);
    }
    let new = bp(&text.replace("description: one", "description: two"));
    let p = plan::plan(&stack(), &new, &live, &resources::kind);
    let sg = p.actions.iter().find(|a| a.id == "sg").expect("sg");
    assert!(sg.create_before_delete, "{sg:?}");
    let d = ordered(&p, &live);
    assert!(
        d.contains(&"delete sg <- [create sg, update asg, update lt]".to_string()),
        "{d:#?}"
    );
}

#[test]
fn a_dependent_that_cannot_be_repointed_is_replaced_between_the_two_copies() {
    // A listener cannot move to another load balancer: it is replaced, on the new one,
    // before the old load balancer goes.
    let text = |scheme: &str| {
        format!(
            "{BP}  lb:\n    type: load_balancer\n    scheme: {scheme}\n    subnets:\n      - subnet-0a\n      - subnet-0b\n  http:\n    type: listener\n    load_balancer: ${{lb}}\n    port: 80\n    forward: arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg/0123456789abcdef\n"
        )
    };
    let old = bp(&text("internal"));
    let mut known = HashMap::new();
    let lb = live_as_desired(&old, "lb", "arn:lb/1", &known);
    known.insert("lb".to_string(), Some(lb.outputs.clone()));
    let http = live_as_desired(&old, "http", "arn:listener/1", &known);
    let mut live = world();
    live.extend([lb, http]);
    let p = plan::plan(
        &stack(),
        &bp(&text("internet-facing")),
        &live,
        &resources::kind,
    );
    let lb = p.actions.iter().find(|a| a.id == "lb").expect("lb");
    let http = p.actions.iter().find(|a| a.id == "http").expect("http");
    assert_eq!(
        (lb.action, lb.create_before_delete),
        (Action::Replace, true)
    );
    assert_eq!(
        (http.action, http.create_before_delete),
        (Action::Replace, false)
    );
    assert_eq!(
        ordered(&p, &live),
        vec![
            "create http <- [create lb, delete http]",
            "create lb <- []",
            "delete http <- []",
            "delete lb <- [create http, create lb, delete http]",
        ]
    );
}
