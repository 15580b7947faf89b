//! How long an apply will take on AWS: the executor's own schedule (the same steps, the
//! same waits, the same parallelism bound) run in simulated time with each kind's typical
//! durations ([`crate::resources::Typical`]), giving the estimate and critical path plan
//! shows. Pure: no AWS, no clock.

use super::steps_of;
use crate::plan::{Estimate, PathStep, Plan};
use crate::report::Op;
use crate::resources::{Kind, Live, Typical};

/// The estimate of `plan` run with at most `parallelism` steps at once; `None` when the
/// plan changes nothing.
pub fn estimate(
    plan: &Plan,
    live: &[Live],
    kinds: &dyn Fn(&str) -> Option<&'static dyn Kind>,
    parallelism: usize,
) -> Option<Estimate> {
    let (steps, waits) = steps_of(plan, live);
    if steps.is_empty() {
        return None;
    }
    let took: Vec<u32> = steps
        .iter()
        .map(|s| {
            let t = kinds(&plan.actions[s.action].kind).map_or(Typical::API_CALL, |k| k.typical());
            match s.op {
                Op::Create => t.create,
                Op::Update => t.update,
                Op::Delete => t.delete,
            }
        })
        .collect();
    // As the executor: whenever a step ends, start the ready ones in order, up to the bound.
    let mut end: Vec<Option<u32>> = vec![None; steps.len()];
    let mut started = vec![false; steps.len()];
    // What a step waited on last: its link in the critical path.
    let mut after: Vec<Option<usize>> = vec![None; steps.len()];
    let mut running: Vec<usize> = Vec::new();
    let mut now = 0;
    loop {
        for s in 0..steps.len() {
            if running.len() >= parallelism.max(1) {
                break;
            }
            let ready = waits[s].iter().all(|&w| end[w].is_some_and(|e| e <= now));
            if started[s] || !ready {
                continue;
            }
            started[s] = true;
            after[s] = waits[s]
                .iter()
                .copied()
                .max_by_key(|&w| (end[w], std::cmp::Reverse(w)));
            // A step held back by the bound waits on the one whose end freed its slot.
            if let Some(freed) = (0..steps.len()).find(|&x| end[x] == Some(now) && now > 0) {
                if after[s].and_then(|w| end[w]) < Some(now) {
                    after[s] = Some(freed);
                }
            }
            end[s] = Some(now + took[s]);
            running.push(s);
        }
        let Some(next) = running.iter().filter_map(|&s| end[s]).min() else {
            break;
        };
        now = next;
        running.retain(|&s| end[s] != Some(now));
    }
    let last = (0..steps.len()).max_by_key(|&s| (end[s], std::cmp::Reverse(s)))?;
    let mut path = Vec::new();
    let mut cur = Some(last);
    while let Some(s) = cur {
        let a = &plan.actions[steps[s].action];
        path.push(PathStep {
            id: a.id.clone(),
            action: steps[s].op.verb(),
            seconds: took[s],
        });
        cur = after[s];
    }
    path.reverse();
    Some(Estimate {
        seconds: end[last].unwrap_or_default(),
        critical_path: path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, PlannedAction, Summary};
    use crate::resources;

    fn create(id: &str, kind: &str, deps: &[&str]) -> PlannedAction {
        PlannedAction {
            id: id.into(),
            kind: kind.into(),
            action: Action::Create,
            reason: String::new(),
            physical_id: None,
            changes: vec![],
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            create_before_delete: false,
            live: None,
        }
    }

    /// Lab 03's shape: the database chain decides, the log group runs beside it.
    fn plan() -> Plan {
        Plan {
            stack: "s".into(),
            actions: vec![
                create("vpc", "vpc", &[]),
                create("a", "subnet", &["vpc"]),
                create("b", "subnet", &["vpc"]),
                create("dbs", "db_subnet_group", &["a", "b"]),
                create("db", "db_instance", &["dbs"]),
                create("r1", "db_read_replica", &["db"]),
                create("r2", "db_read_replica", &["db"]),
                create("logs", "log_group", &[]),
            ],
            warnings: vec![],
            errors: vec![],
            summary: Summary::default(),
            estimate: None,
        }
    }

    #[test]
    fn the_longest_chain_decides_and_replicas_run_side_by_side() {
        let e = estimate(&plan(), &[], &resources::kind, 8).unwrap();
        let t = |k: &str| resources::kind(k).unwrap().typical().create;
        let chain = t("vpc") + t("subnet") + t("db_subnet_group") + t("db_instance");
        assert_eq!(e.seconds, chain + t("db_read_replica"));
        let ids: Vec<&str> = e.critical_path.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids[..4], ["vpc", "a", "dbs", "db"]);
        assert!(ids[4] == "r1" || ids[4] == "r2", "{ids:?}");
        assert_eq!(e.critical_path[3].seconds, t("db_instance"));
    }

    #[test]
    fn the_parallelism_bound_serialises_what_could_run_together() {
        let e = estimate(&plan(), &[], &resources::kind, 1).unwrap();
        let total: u32 = plan()
            .actions
            .iter()
            .map(|a| resources::kind(&a.kind).unwrap().typical().create)
            .sum();
        assert_eq!(e.seconds, total, "one at a time: the sum of all");
        // The path still ends with the last step and is a chain of what ran.
        assert_eq!(e.critical_path.last().unwrap().id, "logs");
    }

    #[test]
    fn deletes_count_and_nothing_to_do_has_no_estimate() {
        let mut p = plan();
        p.actions.truncate(1);
        p.actions[0].action = Action::NoOp;
        assert_eq!(estimate(&p, &[], &resources::kind, 8), None);
        let mut p = plan();
        p.actions.truncate(1);
        p.actions[0].action = Action::Delete;
        p.actions[0].live = Some(0);
        let live = [Live {
            id: "vpc".into(),
            kind: "vpc",
            physical_id: "vpc-1".into(),
            attrs: serde_json::json!({}),
            outputs: Default::default(),
        }];
        let e = estimate(&p, &live, &resources::kind, 8).unwrap();
        assert_eq!(e.seconds, resources::kind("vpc").unwrap().typical().delete);
        assert_eq!(e.critical_path[0].action, "delete");
    }
}
