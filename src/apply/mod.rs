//! The executor: walks a plan's steps as a dependency graph with bounded concurrency.
//! A step starts once everything it needs is done; a failure skips its dependents while
//! independent branches finish; Ctrl-C stops starting new steps and lets running ones end,
//! a second Ctrl-C stops waiting for them (AWS carries on; a re-run picks them up).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde::Serialize;
use serde_json::Value as Json;
use tokio::task::JoinSet;

use crate::aws::Aws;
use crate::blueprint::refs::{self, Ref};
use crate::blueprint::Blueprint;
use crate::plan::{self, Action, Plan, StackInfo};
use crate::report::{Event, Op, Outcome, Reporter};
use crate::resources::{self, Kind, Live, OpCx};

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub id: String,
    pub kind: String,
    pub op: Op,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// When the step started, from the start of the run: overlapping steps ran at once.
    pub started_ms: u128,
    pub elapsed_ms: u128,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApplyResult {
    pub steps: Vec<StepResult>,
    pub interrupted: bool,
    /// Why the run stopped starting steps before the end, other than Ctrl-C: it lost the
    /// stack lock (see `lock.rs`), so another run may be changing the stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The most steps that were in flight at once.
    pub peak_in_flight: usize,
    /// Attributes of every resource of the stack after the run (for outputs).
    #[serde(skip)]
    pub resources: HashMap<String, BTreeMap<String, Json>>,
}

impl ApplyResult {
    pub fn failed(&self) -> impl Iterator<Item = &StepResult> {
        self.steps
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Failed { .. }))
    }

    pub fn ok(&self) -> bool {
        !self.interrupted
            && self.stopped.is_none()
            && self
                .steps
                .iter()
                .all(|s| matches!(s.outcome, Outcome::Done))
    }
}

/// One thing to do: the plan action it belongs to and what to do.
#[derive(Debug, Clone, Copy)]
struct Step {
    action: usize,
    op: Op,
}

/// Steps and, for each, the steps it waits for.
fn steps_of(plan: &Plan, live: &[Live]) -> (Vec<Step>, Vec<BTreeSet<usize>>) {
    let mut steps = Vec::new();
    let mut put_of: HashMap<usize, usize> = HashMap::new();
    let mut del_of: HashMap<usize, usize> = HashMap::new();
    for (i, a) in plan.actions.iter().enumerate() {
        if matches!(a.action, Action::Replace | Action::Delete) {
            del_of.insert(i, steps.len());
            steps.push(Step {
                action: i,
                op: Op::Delete,
            });
        }
        let op = match a.action {
            Action::Create | Action::Replace => Op::Create,
            Action::Update => Op::Update,
            _ => continue,
        };
        put_of.insert(i, steps.len());
        steps.push(Step { action: i, op });
    }
    let action_by_id: HashMap<&str, usize> = plan
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.action != Action::Delete)
        .map(|(i, a)| (a.id.as_str(), i))
        .collect();
    let live_deps = plan::live_dependencies(live);
    let mut waits = vec![BTreeSet::new(); steps.len()];
    for (s, step) in steps.iter().enumerate() {
        let a = &plan.actions[step.action];
        match step.op {
            Op::Create | Op::Update => {
                for d in &a.depends_on {
                    if let Some(p) = action_by_id.get(d.as_str()).and_then(|j| put_of.get(j)) {
                        waits[s].insert(*p);
                    }
                }
                // The old copy goes first (names are unique in most services), unless
                // this replacement makes the new copy first under another name.
                for (j, b) in plan.actions.iter().enumerate() {
                    if b.id == a.id && !(j == step.action && a.create_before_delete) {
                        if let Some(&d) = del_of.get(&j) {
                            waits[s].insert(d);
                        }
                    }
                }
            }
            Op::Delete => {
                // Whatever refers to this resource is deleted before it.
                let Some(li) = a.live else { continue };
                for (&j, &d) in &del_of {
                    if let Some(lj) = plan.actions[j].live {
                        if live_deps[lj].contains(&li) {
                            waits[s].insert(d);
                        }
                    }
                }
            }
        }
        waits[s].remove(&s);
    }

    // Edges that keep an old copy until nothing uses it; each is added only where it
    // makes no cycle (then the delete runs as before, and AWS may refuse it).
    let mut later: Vec<(usize, usize)> = Vec::new();
    for (i, a) in plan.actions.iter().enumerate() {
        if a.action != Action::Replace || !a.create_before_delete {
            continue;
        }
        // Create before delete: the old copy goes once the new one exists and whatever
        // uses it has been re-pointed (updated) or rebuilt on the new one.
        let (Some(&d), Some(&p)) = (del_of.get(&i), put_of.get(&i)) else {
            continue;
        };
        later.push((d, p));
        // Transitively: a security group's instances are replaced by the Auto Scaling
        // group's update after the launch template's, and only then free the old group.
        let mut users: BTreeSet<&str> = BTreeSet::from([a.id.as_str()]);
        let mut grew = true;
        while grew {
            grew = false;
            for b in &plan.actions {
                if !users.contains(b.id.as_str())
                    && b.depends_on.iter().any(|x| users.contains(x.as_str()))
                {
                    users.insert(b.id.as_str());
                    grew = true;
                }
            }
        }
        for (j, b) in plan.actions.iter().enumerate() {
            if b.id != a.id && users.contains(b.id.as_str()) {
                if let Some(&q) = put_of.get(&j) {
                    later.push((d, q));
                }
            }
        }
    }
    // A resource that stays but still refers to one that goes (a listener forwarding to
    // a duplicate target group an interrupted run left) is updated first: AWS refuses
    // DeleteTargetGroup with ResourceInUse while a listener forwards to it
    // (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DeleteTargetGroup.html)
    // and DeleteSecurityGroup with DependencyViolation while anything uses the group
    // (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSecurityGroup.html).
    for (&j, &d) in &del_of {
        let a = &plan.actions[j];
        let Some(li) = a.live else { continue };
        for (k, b) in plan.actions.iter().enumerate() {
            if b.action != Action::Update {
                continue;
            }
            if let (Some(lk), Some(&q)) = (b.live, put_of.get(&k)) {
                if live_deps[lk].contains(&li) {
                    later.push((d, q));
                }
            }
        }
    }
    for (s, t) in later {
        if s != t && !waits_on(&waits, t, s) {
            waits[s].insert(t);
        }
    }
    (steps, waits)
}

/// Whether step `from` waits, directly or through others, for step `to`.
fn waits_on(waits: &[BTreeSet<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; waits.len()];
    let mut stack = vec![from];
    while let Some(s) = stack.pop() {
        if s == to {
            return true;
        }
        if !std::mem::replace(&mut seen[s], true) {
            stack.extend(waits[s].iter().copied());
        }
    }
    false
}

pub struct Executor<'a> {
    pub aws: &'a Aws,
    /// The kinds by name: the registry's (`resources::kind`), or fakes in tests.
    pub kinds: &'a (dyn Fn(&str) -> Option<&'static dyn Kind> + Sync),
    pub stack: &'a StackInfo,
    pub blueprint: Option<&'a Blueprint>,
    pub parallelism: usize,
    pub reporter: Arc<dyn Reporter>,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Running,
    Finished(bool),
}

impl Executor<'_> {
    pub async fn run(&self, plan: &Plan, live: &[Live]) -> ApplyResult {
        self.run_until(plan, live, std::future::pending()).await
    }

    /// `run`, but once `stop` resolves (the stack lock's lease was lost) nothing new
    /// starts, as after a Ctrl-C: steps in flight finish, the rest is skipped with the
    /// reason `stop` gave.
    pub async fn run_until(
        &self,
        plan: &Plan,
        live: &[Live],
        stop: impl std::future::Future<Output = String>,
    ) -> ApplyResult {
        let (steps, waits) = steps_of(plan, live);
        let mut known: HashMap<String, Option<BTreeMap<String, Json>>> = HashMap::new();
        for a in &plan.actions {
            let out = match (a.action, a.live) {
                (Action::NoOp | Action::Update, Some(li)) => Some(live[li].outputs.clone()),
                (Action::Delete, _) => continue,
                _ => None,
            };
            known.insert(a.id.clone(), out);
        }
        let kinds: HashMap<String, String> = plan
            .actions
            .iter()
            .filter(|a| a.action != Action::Delete)
            .map(|a| (a.id.clone(), a.kind.clone()))
            .collect();

        let mut state = vec![State::Waiting; steps.len()];
        let mut results: Vec<Option<StepResult>> = vec![None; steps.len()];
        let mut tasks: JoinSet<(usize, Result<Option<Live>, String>, Duration)> = JoinSet::new();
        let mut interrupted = false;
        let mut peak_in_flight = 0;
        let mut started: Vec<Option<Instant>> = vec![None; steps.len()];
        let t0 = Instant::now();
        let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
        let mut stop = Box::pin(stop);
        let mut stopped: Option<String> = None;

        loop {
            // Skip everything downstream of a failure, then start what is ready.
            let mut changed = true;
            while changed {
                changed = false;
                for s in 0..steps.len() {
                    if state[s] != State::Waiting {
                        continue;
                    }
                    let blocked = waits[s]
                        .iter()
                        .find(|&&w| state[w] == State::Finished(false));
                    if let Some(&w) = blocked {
                        let why = if let Some(why) = &stopped {
                            why.clone()
                        } else if interrupted {
                            "the run was interrupted".to_string()
                        } else {
                            let b = &plan.actions[steps[w].action];
                            format!("{} of `{}` did not succeed", steps[w].op.verb(), b.id)
                        };
                        self.finish(
                            t0,
                            plan,
                            &steps,
                            s,
                            Outcome::Skipped { because: why },
                            Duration::ZERO,
                            &mut results,
                        );
                        state[s] = State::Finished(false);
                        changed = true;
                    }
                }
            }
            if !interrupted && stopped.is_none() {
                for s in 0..steps.len() {
                    if tasks.len() >= self.parallelism.max(1) {
                        break;
                    }
                    if state[s] != State::Waiting
                        || !waits[s].iter().all(|&w| state[w] == State::Finished(true))
                    {
                        continue;
                    }
                    state[s] = State::Running;
                    match self.prepare(plan, live, &steps[s], &known, &kinds) {
                        Ok(job) => {
                            let reporter = self.reporter.clone();
                            let aws = self.aws.clone();
                            let stack = self.stack.name.clone();
                            let a = &plan.actions[steps[s].action];
                            reporter.event(Event::StepStarted {
                                id: &a.id,
                                kind: &a.kind,
                                op: steps[s].op,
                            });
                            started[s] = Some(Instant::now());
                            tasks.spawn(async move {
                                let t = Instant::now();
                                // A bug in one kind must fail its step, not the whole run.
                                let r = AssertUnwindSafe(job.run(&aws, &stack, reporter))
                                    .catch_unwind()
                                    .await
                                    .unwrap_or_else(|_| Err("internal error: this step panicked (a securecart bug; please report it)".into()));
                                (s, r, t.elapsed())
                            });
                            peak_in_flight = peak_in_flight.max(tasks.len());
                        }
                        Err(e) => {
                            self.finish(
                                t0,
                                plan,
                                &steps,
                                s,
                                Outcome::Failed { error: e },
                                Duration::ZERO,
                                &mut results,
                            );
                            state[s] = State::Finished(false);
                        }
                    }
                }
            }
            if tasks.is_empty() {
                // Whatever still waits can never start: its dependencies will not finish.
                let because = if let Some(why) = &stopped {
                    why.as_str()
                } else if interrupted {
                    "the run was interrupted"
                } else {
                    "a dependency could not run"
                };
                for (s, st) in state.iter_mut().enumerate() {
                    if *st == State::Waiting {
                        let outcome = Outcome::Skipped {
                            because: because.into(),
                        };
                        self.finish(t0, plan, &steps, s, outcome, Duration::ZERO, &mut results);
                        *st = State::Finished(false);
                    }
                }
                break;
            }
            tokio::select! {
                joined = tasks.join_next() => {
                    let Some(joined) = joined else { continue };
                    // Steps catch their own panics, and nothing aborts them: a join error
                    // can only mean the runtime is shutting down.
                    let Ok((s, r, elapsed)) = joined else { break };
                    let a = &plan.actions[steps[s].action];
                    match r {
                        Ok(done) => {
                            if let Some(l) = done {
                                known.insert(a.id.clone(), Some(l.outputs));
                            }
                            self.finish(t0, plan, &steps, s, Outcome::Done, elapsed, &mut results);
                            state[s] = State::Finished(true);
                        }
                        Err(e) => {
                            self.finish(t0, plan, &steps, s, Outcome::Failed { error: e }, elapsed, &mut results);
                            state[s] = State::Finished(false);
                        }
                    }
                }
                why = &mut stop, if stopped.is_none() => {
                    let message = format!("{why}: starting nothing new, waiting for the steps in progress");
                    self.reporter.event(Event::Note { message: &message });
                    stopped = Some(why);
                }
                _ = &mut ctrl_c => {
                    // Listen again: the next Ctrl-C is a new signal.
                    ctrl_c = Box::pin(tokio::signal::ctrl_c());
                    if !interrupted {
                        interrupted = true;
                        self.reporter.event(Event::Note { message: "interrupted: waiting for the steps in progress to finish (nothing new starts; Ctrl-C again to stop waiting)" });
                        continue;
                    }
                    // A second Ctrl-C: stop waiting (an RDS or Auto Scaling wait can take
                    // an hour). What was asked of AWS carries on there; a re-run finds it
                    // by its tags and waits for it or finishes it.
                    self.reporter.event(Event::Note { message: "interrupted again: no longer waiting for the steps in progress; AWS carries on with what was started. Run the same command again to resume: it finds what was started by its tags and converges." });
                    tasks.abort_all();
                    for s in 0..steps.len() {
                        let (outcome, elapsed) = match state[s] {
                            State::Running => (
                                Outcome::Skipped { because: "abandoned on a second Ctrl-C while in progress (AWS may still be doing it)".into() },
                                started[s].map(|t| t.elapsed()).unwrap_or_default(),
                            ),
                            State::Waiting => (
                                Outcome::Skipped { because: "the run was interrupted".into() },
                                Duration::ZERO,
                            ),
                            State::Finished(_) => continue,
                        };
                        self.finish(t0, plan, &steps, s, outcome, elapsed, &mut results);
                        state[s] = State::Finished(false);
                    }
                    break;
                }
            }
        }
        let resources = known
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        ApplyResult {
            steps: results.into_iter().flatten().collect(),
            interrupted,
            stopped,
            peak_in_flight,
            resources,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        t0: Instant,
        plan: &Plan,
        steps: &[Step],
        s: usize,
        outcome: Outcome,
        elapsed: Duration,
        results: &mut [Option<StepResult>],
    ) {
        let a = &plan.actions[steps[s].action];
        self.reporter.event(Event::StepFinished {
            id: &a.id,
            kind: &a.kind,
            op: steps[s].op,
            outcome: &outcome,
            elapsed,
        });
        results[s] = Some(StepResult {
            id: a.id.clone(),
            kind: a.kind.clone(),
            op: steps[s].op,
            outcome,
            started_ms: t0.elapsed().saturating_sub(elapsed).as_millis(),
            elapsed_ms: elapsed.as_millis(),
        });
    }

    /// Resolves the step's references with the values known now.
    fn prepare(
        &self,
        plan: &Plan,
        live: &[Live],
        step: &Step,
        known: &HashMap<String, Option<BTreeMap<String, Json>>>,
        kinds: &HashMap<String, String>,
    ) -> Result<Job, String> {
        let a = &plan.actions[step.action];
        let old = a.live.map(|i| live[i].clone());
        if step.op == Op::Delete {
            let old =
                old.ok_or_else(|| format!("internal error: no live copy of `{}` to delete", a.id))?;
            let kind = (self.kinds)(old.kind).ok_or_else(|| {
                format!("internal error: `{}` has unknown kind {}", a.id, old.kind)
            })?;
            return Ok(Job {
                id: a.id.clone(),
                op: Op::Delete,
                kind,
                live: Some(old),
                desired: Json::Null,
                payload: resources::Payload::default(),
            });
        }
        let kind = (self.kinds)(&a.kind)
            .ok_or_else(|| format!("internal error: `{}` has unknown kind {}", a.id, a.kind))?;
        let bp = self.blueprint.ok_or_else(|| {
            format!(
                "internal error: no blueprint to {} `{}` from",
                step.op.verb(),
                a.id
            )
        })?;
        let r = bp
            .resources
            .get(&a.id)
            .ok_or_else(|| format!("internal error: `{}` is not in the blueprint", a.id))?;
        let lookup = |rf: &Ref| plan::resolve_ref(rf, self.stack, known, self.kinds, kinds);
        let config = refs::substitute(&r.config, &lookup);
        if refs::has_unknown(&config) {
            let pending: Vec<String> = r
                .refs
                .iter()
                .filter(|(_, rf)| lookup(rf) == Some(refs::Resolved::Unknown))
                .map(|(path, rf)| format!("{path} = {rf}"))
                .collect();
            return Err(format!(
                "values it refers to are not known yet: {}",
                pending.join(", ")
            ));
        }
        let resources::Desired { attrs, payload } = kind.desired_in(
            &self.stack.name,
            &self.stack.region,
            &a.id,
            &config,
            &bp.dir,
        )?;
        let desired = attrs;
        let desired = match (&old, step.op) {
            // Made beside the old copy: the other of its two unique names.
            (Some(o), Op::Create) if a.create_before_delete => {
                plan::replacement_name(kind, &desired, &o.attrs)
            }
            (Some(o), Op::Update) => kind.against_live(
                &plan::keep_live_name(kind, &desired, &o.attrs),
                &payload,
                &o.attrs,
            ),
            _ => desired,
        };
        // A replaced resource is created afresh (beside the old copy, or after it went).
        let live = if step.op == Op::Update { old } else { None };
        Ok(Job {
            id: a.id.clone(),
            op: step.op,
            kind,
            live,
            desired,
            payload,
        })
    }
}

struct Job {
    id: String,
    op: Op,
    kind: &'static dyn Kind,
    live: Option<Live>,
    desired: Json,
    /// What `desired_in` computed for the create or update besides the attributes.
    payload: resources::Payload,
}

impl Job {
    async fn run(
        self,
        aws: &Aws,
        stack: &str,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Option<Live>, String> {
        let id = self.id.clone();
        let op = self.op;
        let progress = move |m: String| {
            reporter.event(Event::StepProgress {
                id: &id,
                op,
                message: &m,
            })
        };
        let cx = OpCx {
            stack,
            id: &self.id,
            payload: &self.payload,
            progress: &progress,
        };
        let r = match (self.op, &self.live) {
            (Op::Create, _) => self.kind.create(aws, &cx, &self.desired).await.map(Some),
            (Op::Update, Some(l)) => {
                let changed: Vec<String> = plan::changed_attributes(&self.desired, &l.attrs);
                if changed.is_empty() {
                    Ok(Some(l.clone()))
                } else {
                    self.kind
                        .update(aws, &cx, l, &self.desired, &changed)
                        .await
                        .map(Some)
                }
            }
            (Op::Delete, Some(l)) => self.kind.delete(aws, &cx, l).await.map(|_| None),
            _ => {
                return Err(format!(
                    "internal error: no live copy of `{}` to {}",
                    self.id,
                    self.op.verb()
                ))
            }
        };
        r.map_err(|e| e.to_string())
    }
}

pub mod estimate;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod scheduling;
