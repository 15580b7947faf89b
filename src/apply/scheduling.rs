//! Executor scheduling tests with fake kinds (no AWS): a failure skips its dependents and
//! only them, the parallelism bound holds, a panicking kind fails only its own step, and
//! the payload `desired_in` computed reaches the create.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value as Json};

use super::*;
use crate::blueprint::{self, CheckCx, Issue, SourceFile};
use crate::plan::tests::stack;
use crate::report::Silent;
use crate::resources::{Desired, Error, Payload};

/// A kind that makes nothing: it records what ran, how many ran at once, and fails or
/// panics on the ids it is told to.
#[derive(Default)]
struct Fake {
    events: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    fail: BTreeSet<&'static str>,
    panic: BTreeSet<&'static str>,
    delay: Duration,
}

impl Fake {
    fn leak(self) -> &'static Fake {
        Box::leak(Box::new(self))
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Kind for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn attributes(&self) -> &'static [&'static str] {
        &["id"]
    }

    fn schema(&self) -> Json {
        json!({"type": "object"})
    }

    fn check(&self, _id: &str, _config: &Json, _cx: &CheckCx) -> Vec<Issue> {
        Vec::new()
    }

    fn desired_in(
        &self,
        _stack: &str,
        _region: &str,
        id: &str,
        config: &Json,
        _dir: &Path,
    ) -> Result<Desired, String> {
        Ok(Desired {
            attrs: config.clone(),
            payload: Payload::new(format!("payload of {id}")),
        })
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &[]
    }

    fn access(&self) -> &'static [&'static [crate::resources::access::Access]] {
        &[]
    }

    async fn read(&self, _aws: &Aws, _stack: &str) -> Result<Vec<Live>, Error> {
        Ok(Vec::new())
    }

    async fn create(&self, _aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.events
            .lock()
            .expect("lock")
            .push(format!("start {}", cx.id));
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        assert!(!self.panic.contains(cx.id), "a bug in the kind");
        let want = format!("payload of {}", cx.id);
        if cx.payload.get::<String>() != Some(&want) {
            return Err(Error::Invalid(format!("payload missing for {}", cx.id)));
        }
        if self.fail.contains(cx.id) {
            return Err(Error::Invalid(format!("{} failed", cx.id)));
        }
        self.events
            .lock()
            .expect("lock")
            .push(format!("done {}", cx.id));
        Ok(Live {
            id: cx.id.to_string(),
            kind: "fake",
            physical_id: format!("p-{}", cx.id),
            attrs: desired.clone(),
            outputs: BTreeMap::from([("id".to_string(), json!(format!("p-{}", cx.id)))]),
        })
    }

    async fn update(
        &self,
        _aws: &Aws,
        _cx: &OpCx<'_>,
        live: &Live,
        _desired: &Json,
        _changed: &[String],
    ) -> Result<Live, Error> {
        Ok(live.clone())
    }

    async fn delete(&self, _aws: &Aws, _cx: &OpCx<'_>, _live: &Live) -> Result<(), Error> {
        Ok(())
    }
}

/// The blueprint layer's view of the one fake kind.
struct FakeCatalog;

impl blueprint::Catalog for FakeCatalog {
    fn kinds(&self) -> Vec<&'static str> {
        vec!["fake"]
    }

    fn has_kind(&self, kind: &str) -> bool {
        kind == "fake"
    }

    fn attributes(&self, _kind: &str) -> &'static [&'static str] {
        &["id"]
    }

    fn schema(&self, _kind: &str) -> Json {
        json!({"type": "object"})
    }

    fn check(&self, _kind: &str, _id: &str, _config: &Json, _cx: &CheckCx) -> Vec<Issue> {
        Vec::new()
    }
}

/// Applies `resources` (YAML lines under `resources:`) with `fake` and `parallelism`.
async fn apply(fake: &'static Fake, resources: &str, parallelism: usize) -> ApplyResult {
    // Not while another test sends Ctrl-C: this executor would stop too.
    let _no_signals = super::tests::SIGNALS.read().await;
    apply_reporting(fake, resources, parallelism, Arc::new(Silent)).await
}

async fn apply_reporting(
    fake: &'static Fake,
    resources: &str,
    parallelism: usize,
    reporter: Arc<dyn crate::report::Reporter>,
) -> ApplyResult {
    apply_until(
        fake,
        resources,
        parallelism,
        reporter,
        std::future::pending(),
    )
    .await
}

/// `apply_reporting` that stops starting steps once `stop` resolves (a lost stack lock).
async fn apply_until(
    fake: &'static Fake,
    resources: &str,
    parallelism: usize,
    reporter: Arc<dyn crate::report::Reporter>,
    stop: impl std::future::Future<Output = String>,
) -> ApplyResult {
    let text = format!("name: shop\nresources:\n{resources}");
    let file = SourceFile::new("t.yaml".into(), PathBuf::from("t.yaml"), text);
    let b = blueprint::parse(file, PathBuf::from("."), &[], &FakeCatalog).expect("blueprint");
    let kinds = move |n: &str| (n == "fake").then_some(fake as &'static dyn Kind);
    let p = plan::plan(&stack(), &b, &[], &kinds);
    // Nothing calls AWS: a port nothing listens on.
    let aws = Aws::connect(&crate::aws::AwsSettings {
        endpoint_url: Some("http://127.0.0.1:9".into()),
        local: true,
        ..Default::default()
    })
    .await
    .expect("connect");
    let ex = Executor {
        aws: &aws,
        kinds: &kinds,
        stack: &stack(),
        blueprint: Some(&b),
        parallelism,
        reporter,
    };
    ex.run_until(&p, &[], stop).await
}

fn outcome<'a>(r: &'a ApplyResult, id: &str) -> &'a Outcome {
    &r.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step for {id}: {:?}", r.steps))
        .outcome
}

#[tokio::test]
async fn a_failure_skips_its_dependents_and_lets_independent_branches_finish() {
    let fake = Fake {
        fail: BTreeSet::from(["a"]),
        ..Default::default()
    }
    .leak();
    let r = apply(
        fake,
        "  a: {type: fake}\n  b: {type: fake, after: '${a}'}\n  c: {type: fake, after: '${b.id}'}\n  \
         x: {type: fake}\n  y: {type: fake, after: '${x}'}\n",
        4,
    )
    .await;
    assert!(matches!(outcome(&r, "a"), Outcome::Failed { error } if error.contains("a failed")));
    for id in ["b", "c"] {
        match outcome(&r, id) {
            Outcome::Skipped { because } => assert!(
                because.contains("`a` did not succeed") || because.contains("`b` did not succeed"),
                "{id}: {because}"
            ),
            other => panic!("{id}: {other:?}"),
        }
    }
    assert!(matches!(outcome(&r, "x"), Outcome::Done));
    assert!(matches!(outcome(&r, "y"), Outcome::Done));
    assert!(!r.ok());
    let ev = fake.events();
    assert!(
        !ev.iter().any(|e| e.ends_with(" b") || e.ends_with(" c")),
        "{ev:?}"
    );
    // y started only after x was done, with x's output resolved.
    let pos = |e: &str| ev.iter().position(|x| x == e).expect(e);
    assert!(pos("done x") < pos("start y"), "{ev:?}");
    assert_eq!(r.resources["y"]["id"], "p-y");
}

#[tokio::test]
async fn no_more_steps_run_at_once_than_the_parallelism_allows() {
    let many: String = (0..6)
        .map(|i| format!("  r{i}: {{type: fake}}\n"))
        .collect();
    for (bound, expect) in [(1, 1), (2, 2), (8, 6)] {
        // Long enough that all six start before the first ends even on a loaded
        // machine (at 40 ms, a descheduled test thread once saw a peak of 5).
        let fake = Fake {
            delay: Duration::from_millis(250),
            ..Default::default()
        }
        .leak();
        let r = apply(fake, &many, bound).await;
        assert!(r.ok(), "{:?}", r.steps);
        assert_eq!(fake.peak.load(Ordering::SeqCst), expect, "bound {bound}");
        assert_eq!(r.peak_in_flight, expect, "bound {bound}");
    }
}

#[tokio::test]
async fn a_panicking_kind_fails_its_step_only() {
    let fake = Fake {
        panic: BTreeSet::from(["bad"]),
        ..Default::default()
    }
    .leak();
    let r = apply(
        fake,
        "  bad: {type: fake}\n  after_bad: {type: fake, after: '${bad}'}\n  good: {type: fake}\n",
        2,
    )
    .await;
    assert!(
        matches!(outcome(&r, "bad"), Outcome::Failed { error } if error.contains("panicked")),
        "{:?}",
        r.steps
    );
    assert!(matches!(outcome(&r, "after_bad"), Outcome::Skipped { .. }));
    assert!(matches!(outcome(&r, "good"), Outcome::Done));
}

#[tokio::test]
async fn a_first_ctrl_c_lets_running_steps_finish_and_starts_nothing_new() {
    let _one_at_a_time = super::tests::SIGNALS.write().await;
    let fake = Fake {
        delay: Duration::from_millis(600),
        ..Default::default()
    }
    .leak();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reporter = Arc::new(super::tests::Started(Mutex::new(Some(tx))));
    let run = apply_reporting(
        fake,
        "  first: {type: fake}\n  second: {type: fake, after: '${first}'}\n",
        2,
        reporter,
    );
    let signal = async {
        rx.await.expect("a step started");
        tokio::time::sleep(Duration::from_millis(100)).await;
        super::tests::ctrl_c();
    };
    let (r, ()) = futures::future::join(run, signal).await;
    assert!(r.interrupted);
    assert!(
        matches!(outcome(&r, "first"), Outcome::Done),
        "{:?}",
        r.steps
    );
    match outcome(&r, "second") {
        Outcome::Skipped { because } => assert!(because.contains("interrupted"), "{because}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.events(), ["start first", "done first"]);
}

/// A run that loses the stack lock stops as after a Ctrl-C: what is in flight finishes,
/// nothing new starts, and the rest is skipped with the reason.
#[tokio::test]
async fn a_lost_lock_lets_running_steps_finish_and_starts_nothing_new() {
    // Every executor listens for Ctrl-C: a signal another test sends must not reach this one.
    let _no_signals = super::tests::SIGNALS.read().await;
    let fake = Fake {
        delay: Duration::from_millis(600),
        ..Default::default()
    }
    .leak();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reporter = Arc::new(super::tests::Started(Mutex::new(Some(tx))));
    let lost = async {
        rx.await.expect("a step started");
        tokio::time::sleep(Duration::from_millis(100)).await;
        "the stack lock was taken from this run".to_string()
    };
    let r = apply_until(
        fake,
        "  first: {type: fake}\n  second: {type: fake, after: '${first}'}\n",
        2,
        reporter,
        lost,
    )
    .await;
    assert!(!r.interrupted);
    assert!(!r.ok());
    assert_eq!(
        r.stopped.as_deref(),
        Some("the stack lock was taken from this run")
    );
    assert!(
        matches!(outcome(&r, "first"), Outcome::Done),
        "{:?}",
        r.steps
    );
    match outcome(&r, "second") {
        Outcome::Skipped { because } => assert!(because.contains("stack lock"), "{because}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.events(), ["start first", "done first"]);
}
