//! One function per command: load, read live state, plan, apply, and hand the results
//! to `render`. Phases are timed here for `--stats`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::apply::{estimate::estimate, ApplyResult, Executor};
use crate::aws::Aws;
use crate::blueprint::{self, refs, Blueprint, LoadError};
use crate::cli::{
    ApplyArgs, Command, DestroyArgs, GraphArgs, GraphFormat, LocalAction, PermissionsArgs,
    PermissionsFor, PlanArgs, RunArgs, UnlockArgs,
};
use crate::error::{Error, ExitCode};
use crate::local;
use crate::lock::{self, Lock, LockError, Seen, Unreleased};
use crate::permissions;
use crate::plan::{self, saved::SavedPlan, Plan, StackInfo};
use crate::render::{
    self,
    policy::{PermissionsDoc, SizedPolicy, MANAGED_POLICY_LIMIT},
    views::{ApplyDoc, DestroyDoc, LockDoc, RunDoc, RunStats, UnlockDoc},
    View,
};
use crate::report::{Event, Reporter, Silent};
use crate::resources::{self, Live};
use crate::secrets;
use crate::settings::Settings;

struct Loaded {
    bp: Blueprint,
    aws: Aws,
    live: Vec<Live>,
    info: StackInfo,
}

struct Session<'a> {
    s: &'a Settings,
    reporter: Arc<dyn Reporter>,
    phases: Vec<(String, Duration)>,
    view: View,
}

impl<'a> Session<'a> {
    fn new(s: &'a Settings) -> Self {
        let reporter: Arc<dyn Reporter> = if s.json {
            Arc::new(Silent)
        } else if s.tty_out {
            Arc::new(render::ProgressReporter::new())
        } else {
            Arc::new(render::LineReporter::new())
        };
        Session {
            s,
            reporter,
            phases: Vec::new(),
            view: View::new(s.json, s.stats),
        }
    }

    async fn phase<T>(&mut self, name: &'static str, f: impl std::future::Future<Output = T>) -> T {
        self.reporter.event(Event::PhaseStarted { phase: name });
        let t = Instant::now();
        let out = f.await;
        let elapsed = t.elapsed();
        self.reporter.event(Event::PhaseFinished {
            phase: name,
            elapsed,
        });
        self.phases.push((name.to_string(), elapsed));
        out
    }

    fn load(&mut self, path: &Path) -> Result<Blueprint, Error> {
        let t = Instant::now();
        // The secrets are registered before anything about the blueprint is shown: a
        // diagnostic may quote one, and the output sink masks only what it knows.
        let bp = match blueprint::load(path, &self.s.vars, &resources::Catalog) {
            Ok(bp) => bp,
            Err(e) => {
                if let LoadError::Invalid(d) = &e {
                    d.secrets.iter().for_each(|v| secrets::register(v));
                }
                return Err(e.into());
            }
        };
        bp.secrets.iter().for_each(|v| secrets::register(v));
        self.phases.push(("validate".into(), t.elapsed()));
        if !bp.warnings.is_empty() {
            self.view.warnings(&blueprint::Diagnostics {
                file: bp.source.clone(),
                problems: bp.warnings.clone(),
                secrets: bp.secrets.clone(),
            });
        }
        Ok(bp)
    }

    fn stack_name(&self, bp: Option<&Blueprint>) -> Result<String, Error> {
        let name = match (&self.s.stack, bp) {
            (Some(s), _) => s.clone(),
            (None, Some(bp)) => bp.name.clone(),
            (None, None) => {
                return Err(Error::Usage(
                    "which stack? pass a blueprint or --stack NAME".into(),
                ))
            }
        };
        blueprint::check_stack_name(&name).map_err(|why| Error::StackName {
            name: name.clone(),
            why,
        })?;
        Ok(name)
    }

    /// The stack a command without a live blueprint works on: `--stack`, or the name of
    /// the blueprint given (loaded, so that a broken one is reported as such).
    fn named_stack(&mut self, blueprint: Option<&Path>) -> Result<String, Error> {
        let bp = match blueprint {
            Some(p) => Some(self.load(p)?),
            None => None,
        };
        self.stack_name(bp.as_ref())
    }

    async fn connect(&mut self) -> Result<Aws, Error> {
        let mut aws = self.s.aws.clone();
        if aws.local {
            let opts = local::LocalOptions::from_env(self.s.local_port);
            let reporter = self.reporter.clone();
            let status = self
                .phase("emulator", async {
                    tokio::task::spawn_blocking(move || {
                        local::ensure_running(&opts, &mut |m: &str| {
                            reporter.event(Event::Note { message: m })
                        })
                    })
                    .await
                    .expect("emulator task")
                })
                .await?;
            aws.endpoint_url = Some(status.endpoint);
        }
        Ok(Aws::connect(&aws).await?)
    }

    async fn read_live(&mut self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        self.read_live_as(aws, stack, "read").await
    }

    async fn read_live_as(
        &mut self,
        aws: &Aws,
        stack: &str,
        phase: &'static str,
    ) -> Result<Vec<Live>, Error> {
        let reads = resources::REGISTRY
            .iter()
            .map(|k| async move { (k.name(), k.read(aws, stack).await) });
        let results = self.phase(phase, futures::future::join_all(reads)).await;
        let mut live = Vec::new();
        for (kind, r) in results {
            live.extend(r.map_err(|source| read_error(aws, kind, source))?);
        }
        // IAM is global: roles from before roles were per region count only where used.
        resources::claim_legacy_roles(&mut live, stack);
        Ok(live)
    }

    /// The facts `${stack.*}` references need, read only when the blueprint uses them.
    async fn stack_info(
        &self,
        aws: &Aws,
        name: &str,
        bp: Option<&Blueprint>,
    ) -> Result<StackInfo, Error> {
        let account_id = if bp.is_some_and(|b| uses_stack(b, "account_id")) {
            aws.account_id().await.ok()
        } else {
            None
        };
        let zones = if bp.is_some_and(names_zones) {
            aws.availability_zones()
                .await
                .map_err(|source| read_error(aws, "availability zones", source))?
                .into_iter()
                .map(|(name, id)| plan::Zone { name, id })
                .collect()
        } else {
            Vec::new()
        };
        let info = StackInfo {
            name: name.to_string(),
            region: aws.region.clone(),
            account_id,
            zones,
        };
        Ok(info)
    }

    /// What plan, apply and outputs all start from: the blueprint, the stack's live
    /// resources and the facts about the stack.
    async fn load_stack(&mut self, path: &Path) -> Result<Loaded, Error> {
        let bp = self.load(path)?;
        let name = self.stack_name(Some(&bp))?;
        let aws = self.connect().await?;
        // Zones first: a zone the region lacks is an error before the (longer) read.
        let info = self.stack_info(&aws, &name, Some(&bp)).await?;
        let mut bp = bp;
        info.place_zones(&mut bp, &resources::kind)
            .map_err(|d| Error::Blueprint(LoadError::Invalid(d)))?;
        let live = self.read_live(&aws, &name).await?;
        Ok(Loaded {
            bp,
            aws,
            live,
            info,
        })
    }

    fn plan(&mut self, info: &StackInfo, bp: &Blueprint, live: &[Live]) -> Plan {
        let t = Instant::now();
        let plan = plan::plan(info, bp, live, &resources::kind);
        let plan = self.estimated(plan, live);
        self.phases.push(("plan".into(), t.elapsed()));
        plan
    }

    /// The plan with how long it will take on AWS at this run's parallelism.
    fn estimated(&self, mut plan: Plan, live: &[Live]) -> Plan {
        plan.estimate = estimate(&plan, live, &resources::kind, self.s.parallelism);
        plan
    }

    fn stats(&self, aws: &Aws) -> RunStats {
        RunStats::new(aws, &self.phases)
    }

    /// Asks on the terminal; refuses without one unless --yes.
    fn confirm(&self, question: &str) -> Result<(), Error> {
        if self.s.yes {
            return Ok(());
        }
        if !self.s.tty_in || self.s.json {
            return Err(Error::Refused(
                "not asking for confirmation without a terminal: pass --yes to go ahead".into(),
            ));
        }
        let line = render::ask(&format!("{question} Type `yes` to go ahead: "))?;
        if line.trim() == "yes" {
            Ok(())
        } else {
            Err(Error::Refused("cancelled: nothing was changed".into()))
        }
    }

    /// Takes the stack lock (see `lock.rs`), waiting up to `timeout` for another run.
    async fn lock(
        &mut self,
        aws: &Aws,
        stack: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<(Lock, LockDoc), Error> {
        let reporter = self.reporter.clone();
        let settings = self.s.lock.clone();
        let (lock, how) = self
            .phase(
                "lock",
                lock::acquire(aws, stack, command, &settings, timeout, reporter.as_ref()),
            )
            .await?;
        let doc = LockDoc {
            object: lock.object(),
            waited: how.waited,
            took_over: how.took_over,
            replanned: false,
        };
        Ok((lock, doc))
    }
}

/// What apply and destroy did under the stack lock.
struct UnderLock {
    plan: Plan,
    live: Vec<Live>,
    result: Option<ApplyResult>,
    lock: LockDoc,
}

/// Apply and destroy once the user said yes to `first`: take the stack lock, read live
/// state again under it and plan again (another run may have changed the stack since the
/// first read — the run this one waited for, or one that ended just before it looked: a
/// plan from before the lock could create a second copy of everything), show and confirm
/// the new plan if it differs, run it while the lease is renewed, then free the lock.
/// `desired` is the blueprint to plan for; `None` plans the stack's deletion.
#[allow(clippy::too_many_arguments)]
async fn run_locked(
    ss: &mut Session<'_>,
    aws: &Aws,
    info: &StackInfo,
    desired: Option<&Blueprint>,
    first: &Plan,
    command: &'static str,
    timeout: Duration,
    question: Option<&str>,
) -> Result<UnderLock, Error> {
    let (lock, mut doc) = ss.lock(aws, &info.name, command, timeout).await?;
    let view = ss.view.clone();
    let outcome = async {
        aws.forget_reads();
        let live = ss.read_live_as(aws, &info.name, "read under lock").await?;
        let plan = match desired {
            Some(bp) => ss.plan(info, bp, &live),
            None => plan::destroy_plan(&info.name, &live),
        };
        if !same_plan(first, &plan) {
            doc.replanned = true;
            view.replanned(&aws.region, &plan);
            if !plan.errors.is_empty() {
                return Err(Error::Refused(
                    "the plan made under the stack lock has errors: nothing was changed".into(),
                ));
            }
            match question {
                _ if !plan.summary.has_changes() => {}
                Some(q) => ss.confirm(q)?,
                // A saved plan was reviewed as it was: another one is not what was approved.
                None => {
                    return Err(Error::Refused(
                        "the stack changed since the plan was saved (another run, while this one waited for the stack lock): nothing was changed; plan again".into(),
                    ))
                }
            }
        }
        let result = if plan.summary.has_changes() {
            let exec = Executor {
                aws,
                kinds: &resources::kind,
                stack: info,
                blueprint: desired,
                parallelism: ss.s.parallelism,
                reporter: ss.reporter.clone(),
            };
            Some(
                ss.phase(command, exec.run_until(&plan, &live, lock.lost()))
                    .await,
            )
        } else {
            None
        };
        Ok((plan, live, result))
    }
    .await;
    let released = lock.release().await;
    let (plan, live, mut result) = outcome?;
    match released {
        Ok(()) => {}
        // Taken from this run after its last step started: its changes may have overlapped
        // another run's, so the run is not a success.
        Err(Unreleased::Lost(why)) => {
            if let Some(r) = result.as_mut() {
                r.stopped.get_or_insert(why);
            }
        }
        Err(Unreleased::Failed(why)) => ss.reporter.event(Event::Note { message: &why }),
    }
    Ok(UnderLock {
        plan,
        live,
        result,
        lock: doc,
    })
}

/// The same actions with the same changes: what the user confirmed is what runs.
fn same_plan(a: &Plan, b: &Plan) -> bool {
    a.errors.len() == b.errors.len()
        && serde_json::to_value(&a.actions).ok() == serde_json::to_value(&b.actions).ok()
}

/// Whether the blueprint refers to `${stack.ATTRIBUTE}` (or an element of it).
fn uses_stack(bp: &Blueprint, attribute: &str) -> bool {
    bp.stack_references().iter().any(|(_, r)| {
        r.attribute
            .as_deref()
            .is_some_and(|a| a == attribute || a.starts_with(&format!("{attribute}[")))
    })
}

/// Whether a run of the blueprint reads the region's zones: `${stack.zones[N]}`, or a
/// zone written in a zone field, which plan checks against the region's list.
fn names_zones(bp: &Blueprint) -> bool {
    uses_stack(bp, "zones") || !plan::literal_zones(bp, &resources::kind).is_empty()
}

pub async fn dispatch(cmd: Command, s: &Settings) -> Result<ExitCode, Error> {
    let mut ss = Session::new(s);
    match cmd {
        Command::Validate(a) => {
            ss.view.clone().validate(&ss.load(&a.blueprint)?);
            Ok(ExitCode::Ok)
        }
        Command::Plan(a) => plan_cmd(&mut ss, a).await,
        Command::Apply(a) => apply_cmd(&mut ss, a).await,
        Command::Destroy(a) => destroy_cmd(&mut ss, a).await,
        Command::Unlock(a) => unlock_cmd(&mut ss, a).await,
        Command::Graph(a) => graph_cmd(&mut ss, a),
        Command::Outputs(a) => {
            let Loaded { bp, live, info, .. } = ss.load_stack(&a.blueprint).await?;
            ss.view
                .clone()
                .outputs(&resolve_outputs(&bp, &info, &live_outputs(&live)));
            Ok(ExitCode::Ok)
        }
        Command::Run(a) => run_workflow(&mut ss, &a).await,
        Command::Local { action } => local_cmd(&mut ss, s, action).await,
        Command::Permissions(a) => permissions_cmd(&mut ss, a),
        Command::Schema => {
            ss.view
                .clone()
                .schema(&blueprint::schema::blueprint_schema(&resources::Catalog));
            Ok(ExitCode::Ok)
        }
    }
}

/// `permissions`: the IAM policy the blueprint's runs need, made without calling AWS.
fn permissions_cmd(ss: &mut Session<'_>, a: PermissionsArgs) -> Result<ExitCode, Error> {
    let bp = ss.load(&a.blueprint)?;
    let stack = ss.stack_name(Some(&bp))?;
    if let Some(id) = &a.account {
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::Usage(format!(
                "--account {id}: an AWS account id is 12 digits"
            )));
        }
    }
    let mut wanted: BTreeSet<&str> = bp.resources.values().map(|r| r.kind.as_str()).collect();
    for k in &a.kinds {
        if k == "all" {
            wanted.extend(resources::REGISTRY.iter().map(|k| k.name()));
        } else if resources::kind(k).is_some() {
            wanted.insert(k);
        } else {
            return Err(Error::Usage(format!(
                "--kind {k}: no such kind (one of: all, {})",
                resources::REGISTRY
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    // In the registry's order, so the policy does not depend on the blueprint's.
    let kinds: Vec<&'static dyn resources::Kind> = resources::REGISTRY
        .iter()
        .copied()
        .filter(|k| wanted.contains(k.name()))
        .collect();
    let mut commands: Vec<permissions::For> = a
        .commands
        .iter()
        .map(|c| match c {
            PermissionsFor::Plan => permissions::For::Plan,
            PermissionsFor::Apply => permissions::For::Apply,
            PermissionsFor::Destroy => permissions::For::Destroy,
        })
        .collect();
    if commands.is_empty() {
        commands = vec![
            permissions::For::Plan,
            permissions::For::Apply,
            permissions::For::Destroy,
        ];
    }
    commands.sort();
    commands.dedup();
    let target = permissions::Target {
        stack,
        region: ss.s.region.clone(),
        account: a.account.clone(),
    };
    let statements = permissions::statements(
        &permissions::entries(&permissions::Request {
            target: &target,
            commands: &commands,
            kinds: &kinds,
            // Every run reads every kind (see `read_live`).
            read_kinds: resources::REGISTRY,
            zones: names_zones(&bp),
        }),
        &target,
    );
    let policies = permissions::split(statements)
        .into_iter()
        .map(|document| SizedPolicy {
            characters: document.characters(),
            document,
        })
        .collect();
    ss.view.clone().permissions(&PermissionsDoc {
        region: target.region.clone().unwrap_or_else(|| "*".into()),
        account: target.account.clone().unwrap_or_else(|| "*".into()),
        stack: target.stack,
        commands: commands.iter().map(|c| c.name()).collect(),
        kinds: kinds.iter().map(|k| k.name()).collect(),
        policies,
        limit: MANAGED_POLICY_LIMIT,
    });
    Ok(ExitCode::Ok)
}

/// `plan`: exit 2 when there are changes, 1 when the plan has errors; `--out` saves it.
async fn plan_cmd(ss: &mut Session<'_>, a: PlanArgs) -> Result<ExitCode, Error> {
    let view = ss.view.clone();
    let Loaded {
        bp,
        aws,
        live,
        info,
    } = ss.load_stack(&a.blueprint).await?;
    let plan = ss.plan(&info, &bp, &live);
    let l = Loaded {
        bp,
        aws,
        live,
        info,
    };
    let saved_to = match &a.out {
        Some(out) if plan.errors.is_empty() => {
            let account = l
                .aws
                .account_id()
                .await
                .map_err(|e| read_error(&l.aws, "account", e))?;
            let vars =
                ss.s.vars
                    .iter()
                    .filter(|(k, _)| l.bp.parameters.get(k).is_some_and(|p| !p.secret))
                    .cloned()
                    .collect();
            let (name, json) = (a.blueprint.display().to_string(), plan_json(&plan));
            let saved = SavedPlan::new(&saved_now(&name, &l, &account, &json), vars, unix_now());
            write_plan(out, &saved)?;
            Some(out.display().to_string())
        }
        _ => None,
    };
    let stats = ss.stats(&l.aws);
    view.plan(&l.aws.region, &plan, a.all, saved_to.as_deref(), &stats);
    Ok(if !plan.errors.is_empty() {
        ExitCode::Error
    } else if plan.summary.has_changes() {
        ExitCode::Changes
    } else {
        ExitCode::Ok
    })
}

/// `apply`: the plan, a confirmation, the stack lock, the executor, and the outputs; or a
/// saved plan, checked against the world and applied without asking again.
async fn apply_cmd(ss: &mut Session<'_>, a: ApplyArgs) -> Result<ExitCode, Error> {
    if let Some(saved) = saved_plan(&a.blueprint)? {
        return apply_saved(ss.s, &a.blueprint, saved, a.lock.lock_timeout).await;
    }
    let loaded = ss.load_stack(&a.blueprint).await?;
    let plan = ss.plan(&loaded.info, &loaded.bp, &loaded.live);
    ss.view.proposed(&loaded.aws.region, &plan);
    refuse_errors(&plan)?;
    let question = format!(
        "Apply these changes to stack `{}` in {}?",
        loaded.info.name, loaded.aws.region
    );
    if plan.summary.has_changes() {
        ss.confirm(&question)?;
    }
    apply_plan(ss, loaded, plan, Some(&question), a.lock.lock_timeout).await
}

fn refuse_errors(plan: &Plan) -> Result<(), Error> {
    if plan.errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(
            "the plan has errors: nothing was changed".into(),
        ))
    }
}

/// Runs a plan that was shown (and confirmed, or saved and reviewed) under the stack
/// lock, then the outputs. `question`: what to ask again should the plan made under the
/// lock differ; `None` (a saved plan) refuses instead.
async fn apply_plan(
    ss: &mut Session<'_>,
    l: Loaded,
    plan: Plan,
    question: Option<&str>,
    timeout: Duration,
) -> Result<ExitCode, Error> {
    // No changes, no lock: a no-change apply makes no mutating call at all.
    let done = if plan.summary.has_changes() {
        Some(
            run_locked(
                ss,
                &l.aws,
                &l.info,
                Some(&l.bp),
                &plan,
                "apply",
                timeout,
                question,
            )
            .await?,
        )
    } else {
        None
    };
    let (plan, live, result, lock) = match done {
        Some(u) => (u.plan, u.live, u.result, Some(u.lock)),
        None => (plan, l.live.clone(), None, None),
    };
    let outputs = match &result {
        Some(r) => resolve_outputs(&l.bp, &l.info, &r.resources),
        None => resolve_outputs(&l.bp, &l.info, &live_outputs(&live)),
    };
    ss.view.clone().applied(&ApplyDoc {
        region: &l.aws.region,
        plan: &plan,
        apply: result.as_ref(),
        outputs: &outputs,
        lock: lock.as_ref(),
        stats: &ss.stats(&l.aws),
    });
    Ok(step_code(result.as_ref()))
}

/// `path` read as a saved plan, or `None` when it is a blueprint (or a folder).
fn saved_plan(path: &Path) -> Result<Option<SavedPlan>, Error> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match SavedPlan::parse(&text) {
        None => Ok(None),
        Some(Ok(saved)) => Ok(Some(saved)),
        Some(Err(why)) => Err(Error::PlanFile {
            path: path.display().to_string(),
            why,
        }),
    }
}

/// `apply FILE`: the blueprint, stack, region and non-secret parameters come from the
/// file; the blueprint and live state are read again and must be what the plan was made
/// from (as `terraform apply PLANFILE` refuses a stale plan), and the plan computed now
/// must be the saved one. Then it runs without asking: the plan was the question.
async fn apply_saved(
    s: &Settings,
    path: &Path,
    saved: SavedPlan,
    lock_timeout: Duration,
) -> Result<ExitCode, Error> {
    let file = |why: String| Error::PlanFile {
        path: path.display().to_string(),
        why,
    };
    let mut vars = s.vars.clone();
    for (k, v) in &saved.vars {
        match s.vars.iter().find(|(n, _)| n == k) {
            Some((_, given)) if given != v => {
                return Err(file(format!(
                "the plan was made with --var {k}=… of another value: drop --var {k} or plan again"
            )))
            }
            Some(_) => {}
            None => vars.push((k.clone(), v.clone())),
        }
    }
    let mut settings = s.clone();
    settings.vars = vars;
    settings.stack = s.stack.clone().or(Some(saved.stack.clone()));
    settings.aws.region = s.aws.region.clone().or(Some(saved.region.clone()));
    let mut ss = Session::new(&settings);
    let bp_path = Path::new(&saved.blueprint);
    let loaded = ss.load_stack(bp_path).await?;
    let account = loaded
        .aws
        .account_id()
        .await
        .map_err(|e| read_error(&loaded.aws, "account", e))?;
    let plan = ss.plan(&loaded.info, &loaded.bp, &loaded.live);
    let json = plan_json(&plan);
    let now = saved_now(&saved.blueprint, &loaded, &account, &json);
    saved.check(&now).map_err(|e| file(e.to_string()))?;
    ss.view.proposed(&loaded.aws.region, &plan);
    refuse_errors(&plan)?;
    apply_plan(&mut ss, loaded, plan, None, lock_timeout).await
}

/// The facts a saved plan records and is checked against.
fn saved_now<'a>(
    blueprint: &'a str,
    l: &'a Loaded,
    account: &'a str,
    plan_json: &'a Json,
) -> plan::saved::Now<'a> {
    plan::saved::Now {
        securecart: env!("CARGO_PKG_VERSION"),
        blueprint_text: &l.bp.source.text,
        blueprint,
        stack: &l.info.name,
        region: &l.aws.region,
        account: Some(account),
        live: &l.live,
        plan: plan_json,
    }
}

/// The plan as `plan --json` shows it, secrets masked: what a saved plan holds.
fn plan_json(plan: &Plan) -> Json {
    let text = serde_json::to_string(plan).unwrap_or_default();
    serde_json::from_str(&secrets::redact(&text)).unwrap_or_default()
}

fn write_plan(out: &Path, saved: &SavedPlan) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::PlanFile {
        path: out.display().to_string(),
        why: format!("cannot write the plan: {e}"),
    };
    let text = serde_json::to_string_pretty(saved).unwrap_or_default();
    // Written beside and renamed: a reader never sees half a plan.
    let tmp = out.with_extension("securecart-tmp");
    std::fs::write(&tmp, secrets::redact(&text).as_bytes()).map_err(fail)?;
    std::fs::rename(&tmp, out).map_err(fail)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `destroy`: everything tagged with the stack, found without a blueprint if need be.
async fn destroy_cmd(ss: &mut Session<'_>, a: DestroyArgs) -> Result<ExitCode, Error> {
    let view = ss.view.clone();
    let name = ss.named_stack(a.blueprint.as_deref())?;
    let aws = ss.connect().await?;
    let live = ss.read_live(&aws, &name).await?;
    if live.is_empty() && !a.allow_empty {
        return Err(Error::NothingToDestroy {
            stack: name,
            region: aws.region.clone(),
        });
    }
    let info = ss.stack_info(&aws, &name, None).await?;
    let plan = ss.estimated(plan::destroy_plan(&name, &live), &live);
    view.proposed(&aws.region, &plan);
    let done = if plan.summary.has_changes() {
        let question = format!(
            "Delete all {} resource(s) of stack `{name}` in {}?",
            plan.summary.delete, aws.region
        );
        ss.confirm(&question)?;
        Some(
            run_locked(
                ss,
                &aws,
                &info,
                None,
                &plan,
                "destroy",
                a.lock.lock_timeout,
                Some(&question),
            )
            .await?,
        )
    } else {
        None
    };
    let (plan, result, lock) = match done {
        Some(u) => (u.plan, u.result, Some(u.lock)),
        None => (plan, None, None),
    };
    view.destroyed(&DestroyDoc {
        region: &aws.region,
        plan: &plan,
        destroy: result.as_ref(),
        lock: lock.as_ref(),
        stats: &ss.stats(&aws),
    });
    Ok(step_code(result.as_ref()))
}

/// `unlock`: forces the stack lock free, after saying whose it is and asking.
async fn unlock_cmd(ss: &mut Session<'_>, a: UnlockArgs) -> Result<ExitCode, Error> {
    let view = ss.view.clone();
    let name = ss.named_stack(a.blueprint.as_deref())?;
    let aws = ss.connect().await?;
    let store = lock::Store::open(&aws, &name).await?;
    let seen = match store.read().await {
        Ok(seen) => Some(seen),
        // Not a record securecart can read: overwritten (after asking) all the same.
        Err(LockError::Unreadable { why, .. }) => {
            view.unlock_warning(&name, &format!("something unreadable ({why})"), false);
            None
        }
        Err(e) => return Err(e.into()),
    };
    let (holder, expired) = match &seen {
        None => (Some("an unreadable record".to_string()), false),
        Some(Seen::Absent | Seen::Released { .. }) => (None, false),
        Some(Seen::Held { record, age, .. }) => (Some(lock::describe(record, *age)), false),
        Some(Seen::Expired { record, age, .. }) => (Some(lock::describe(record, *age)), true),
    };
    let mut doc = UnlockDoc {
        stack: name.clone(),
        object: store.place.uri(),
        holder,
        expired,
        unlocked: false,
    };
    if doc.holder.is_none() {
        view.unlocked(&doc);
        return Ok(ExitCode::Ok);
    }
    if let (Some(h), Some(_)) = (&doc.holder, &seen) {
        view.unlock_warning(&name, h, expired);
    }
    ss.confirm(&format!(
        "Force the lock of stack `{name}` in {} free?",
        aws.region
    ))?;
    match &seen {
        Some(seen) => store.force_release(seen).await?,
        None => store.overwrite_released().await?,
    }
    doc.unlocked = true;
    view.unlocked(&doc);
    Ok(ExitCode::Ok)
}

/// `graph`: the blueprint's dependency graph as DOT or Mermaid.
fn graph_cmd(ss: &mut Session<'_>, a: GraphArgs) -> Result<ExitCode, Error> {
    let view = ss.view.clone();
    let bp = ss.load(&a.blueprint)?;
    let nodes: Vec<crate::graph::Node> = bp
        .resources
        .values()
        .map(|r| crate::graph::Node {
            id: &r.id,
            label: &r.kind,
        })
        .collect();
    let edges: BTreeMap<String, Vec<String>> = bp
        .resources
        .values()
        .map(|r| (r.id.clone(), r.dependencies().into_iter().collect()))
        .collect();
    view.graph(&match a.format {
        GraphFormat::Dot => crate::graph::to_dot(&bp.name, &nodes, &edges),
        GraphFormat::Mermaid => crate::graph::to_mermaid(&nodes, &edges),
    });
    Ok(ExitCode::Ok)
}

/// `local start|stop|status`: the bundled emulator.
async fn local_cmd(
    ss: &mut Session<'_>,
    s: &Settings,
    action: LocalAction,
) -> Result<ExitCode, Error> {
    let view = ss.view.clone();
    let opts = local::LocalOptions::from_env(s.local_port);
    let status = match action {
        LocalAction::Start => {
            let reporter = ss.reporter.clone();
            tokio::task::spawn_blocking(move || {
                local::ensure_running(&opts, &mut |m: &str| {
                    reporter.event(Event::Note { message: m })
                })
            })
            .await
            .expect("emulator task")?
        }
        LocalAction::Stop => {
            view.emulator_stopped(local::stop(&opts)?);
            local::status(&opts)?
        }
        LocalAction::Status => local::status(&opts)?,
    };
    view.emulator(&status, !matches!(action, LocalAction::Stop));
    Ok(
        if matches!(action, LocalAction::Status) && !status.running {
            ExitCode::Error
        } else {
            ExitCode::Ok
        },
    )
}

/// The exit code of an apply or destroy from its result (`None`: nothing needed doing).
fn step_code(result: Option<&ApplyResult>) -> ExitCode {
    match result {
        Some(r) if r.interrupted => ExitCode::Interrupted,
        Some(r) if !r.ok() => ExitCode::Error,
        _ => ExitCode::Ok,
    }
}

/// The outputs of the live resources, by id: what outputs resolve against without an apply.
fn live_outputs(live: &[Live]) -> HashMap<String, BTreeMap<String, Json>> {
    live.iter()
        .map(|l| (l.id.clone(), l.outputs.clone()))
        .collect()
}

/// `securecart run`: starts the state machine and follows its history until it ends.
async fn run_workflow(ss: &mut Session<'_>, a: &RunArgs) -> Result<ExitCode, Error> {
    let bp = ss.load(&a.blueprint)?;
    let name = ss.stack_name(Some(&bp))?;
    let machines: Vec<&str> = bp
        .resources
        .values()
        .filter(|r| r.kind == "state_machine")
        .map(|r| r.id.as_str())
        .collect();
    let id = match (&a.machine, machines.as_slice()) {
        (Some(m), _) if machines.contains(&m.as_str()) => m.clone(),
        (Some(m), _) => {
            return Err(Error::Usage(format!(
                "the blueprint has no state machine `{m}` (it has: {})",
                machines.join(", ")
            )))
        }
        (None, [one]) => one.to_string(),
        (None, []) => {
            return Err(Error::Usage(format!(
                "{} declares no state_machine to run",
                bp.source.name
            )))
        }
        (None, _) => {
            return Err(Error::Usage(format!(
                "the blueprint has several state machines; pick one with --machine ({})",
                machines.join(", ")
            )))
        }
    };
    let input = match &a.input {
        None => "{}".to_string(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Error::Usage(format!("cannot read the input {}: {e}", p.display())))?;
            if let Err(e) = serde_json::from_str::<Json>(&text) {
                return Err(Error::Usage(format!(
                    "{}:{}:{}: the input is not JSON: {e}",
                    p.display(),
                    e.line(),
                    e.column()
                )));
            }
            text
        }
    };
    let kind = resources::kind("state_machine")
        .ok_or_else(|| Error::Usage("this securecart has no state_machine kind".into()))?;
    let aws = ss.connect().await?;
    let live = kind
        .read(&aws, &name)
        .await
        .map_err(|source| read_error(&aws, "state_machine", source))?;
    let arn = live
        .iter()
        .find(|l| l.id == id)
        .map(|l| l.physical_id.clone())
        .ok_or_else(|| Error::Refused(format!("state machine `{id}` does not exist in stack `{name}`: run `securecart apply` first")))?;
    let t = Instant::now();
    let view = crate::workflow::watch(
        &aws,
        &arn,
        &input,
        Duration::from_secs(a.timeout),
        ss.reporter.as_ref(),
    )
    .await
    .map_err(|e| Error::Refused(e.to_string()))?;
    ss.phases.push(("run".into(), t.elapsed()));
    ss.view.execution(&RunDoc {
        execution: &view,
        stats: &ss.stats(&aws),
    });
    Ok(if view.status == "SUCCEEDED" {
        ExitCode::Ok
    } else {
        ExitCode::Error
    })
}

/// A failed read, or the plain reason behind it when the endpoint never answered at all
/// (the read's own error would only be the SDK's account of a failed connection).
fn read_error(aws: &Aws, kind: &'static str, source: resources::Error) -> Error {
    match aws.unreachable() {
        Some(u) => Error::Unreachable(u),
        None => Error::Read { kind, source },
    }
}

/// Output values from the resources' attributes; secrets stay hidden.
fn resolve_outputs(
    bp: &Blueprint,
    info: &StackInfo,
    resources: &HashMap<String, BTreeMap<String, Json>>,
) -> BTreeMap<String, Json> {
    let known: HashMap<String, Option<BTreeMap<String, Json>>> = resources
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    let kinds: HashMap<String, String> = bp
        .resources
        .values()
        .map(|r| (r.id.clone(), r.kind.clone()))
        .collect();
    bp.outputs
        .iter()
        .map(|(name, o)| {
            let lookup = |r: &refs::Ref| {
                if r.target != refs::STACK && !known.contains_key(&r.target) {
                    return Some(refs::Resolved::Known(Json::String("(not created)".into())));
                }
                plan::resolve_ref(r, info, &known, &resources::kind, &kinds)
            };
            let v = if o.sensitive {
                Json::String(plan::SENSITIVE.into())
            } else {
                refs::substitute(&o.value, &lookup)
            };
            (name.clone(), v)
        })
        .collect()
}

/// Shows an error the way the user can act on it and returns the exit code.
pub fn report_error(e: &Error, s: &Settings) -> ExitCode {
    View::new(s.json, s.stats).error(e);
    match e {
        // A bad --stack (or SECURECART_STACK) is a command-line error; a blueprint's own
        // name is checked when the blueprint loads.
        Error::Usage(_) | Error::StackName { .. } => ExitCode::Usage,
        _ => ExitCode::Error,
    }
}
