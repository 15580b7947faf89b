//! Checks of Amazon States Language definitions, before any AWS call: one `StartAt` that
//! names a state, transitions (`Next`, `Default`, `Choices[].Next`, `Catch[].Next`) that
//! name states of the same scope, terminal states, `Retry` and `Catch` fields, and
//! `Parallel` branches and `Map` processors recursively. Every problem points at the state
//! (`definition.States.ProcessPayment.Next`), so it lands on the right line.

use std::collections::{BTreeSet, VecDeque};

use serde_json::{Map, Value as Json};

use crate::blueprint::Issue;

const TYPES: &[&str] = &[
    "Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map",
];

/// The predefined error names a `Retry` or `Catch` may match.
const STATES_ERRORS: &[&str] = &[
    "States.ALL",
    "States.BranchFailed",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.QueryEvaluationError",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.Runtime",
    "States.TaskFailed",
    "States.Timeout",
];

const RETRY_FIELDS: &[&str] = &[
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
    "Comment",
];

const CATCH_FIELDS: &[&str] = &[
    "ErrorEquals",
    "Next",
    "ResultPath",
    "Output",
    "Assign",
    "Comment",
];

/// Checks a definition; `at` is the path of the definition (like `definition`).
pub fn validate(def: &Json, at: &str, out: &mut Vec<Issue>) {
    machine(def, at, out);
}

/// One state machine or branch: `StartAt` and `States`.
fn machine(def: &Json, at: &str, out: &mut Vec<Issue>) {
    let Json::Object(m) = def else {
        out.push(
            Issue::new(at, "a definition is a mapping with `StartAt` and `States`")
                .help("e.g. `{StartAt: Hello, States: {Hello: {Type: Pass, End: true}}}`"),
        );
        return;
    };
    let states = match m.get("States") {
        Some(Json::Object(s)) if !s.is_empty() => s,
        Some(Json::Object(_)) => {
            out.push(Issue::new(format!("{at}.States"), "`States` is empty"));
            return;
        }
        Some(_) => {
            out.push(Issue::new(
                format!("{at}.States"),
                "`States` is a mapping of state name → state",
            ));
            return;
        }
        None => {
            out.push(Issue::new(at, "the definition has no `States`"));
            return;
        }
    };
    let names: BTreeSet<&str> = states.keys().map(String::as_str).collect();
    let start = match m.get("StartAt") {
        Some(Json::String(s)) if names.contains(s.as_str()) => Some(s.as_str()),
        Some(Json::String(s)) => {
            out.push(
                Issue::new(
                    format!("{at}.StartAt"),
                    format!("`StartAt` names `{s}`, which is not a state here"),
                )
                .help(suggest(s, &names)),
            );
            None
        }
        Some(_) => {
            out.push(Issue::new(
                format!("{at}.StartAt"),
                "`StartAt` is the name of the first state",
            ));
            None
        }
        None => {
            out.push(
                Issue::new(at, "the definition has no `StartAt`").help(format!(
                    "add `StartAt: {}`",
                    states.keys().next().cloned().unwrap_or_default()
                )),
            );
            None
        }
    };
    for (name, state) in states {
        let sp = format!("{at}.States.{name}");
        if name.is_empty() || name.chars().count() > 80 {
            out.push(Issue::new(
                sp.clone(),
                format!("state name `{name}` must be 1 to 80 characters"),
            ));
        }
        one_state(state, &sp, &names, out);
    }
    // Every state must be reachable from StartAt (Step Functions rejects the others).
    if let Some(start) = start {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut todo = VecDeque::from([start]);
        while let Some(s) = todo.pop_front() {
            if !seen.insert(s) {
                continue;
            }
            if let Some(state) = states.get(s) {
                for t in transitions(state) {
                    if let Some((n, _)) = states.get_key_value(t) {
                        todo.push_back(n.as_str());
                    }
                }
            }
        }
        for name in states.keys() {
            if !seen.contains(name.as_str()) {
                out.push(
                    Issue::new(
                        format!("{at}.States.{name}"),
                        format!("state `{name}` is never reached from `{start}`"),
                    )
                    .help("point a `Next`, `Default` or `Catch` at it, or remove it"),
                );
            }
        }
    }
}

/// The states a state can go to.
fn transitions(state: &Json) -> Vec<&str> {
    let mut out: Vec<&Json> = vec![];
    out.extend(state.get("Next"));
    out.extend(state.get("Default"));
    for key in ["Choices", "Catch"] {
        if let Some(Json::Array(a)) = state.get(key) {
            out.extend(a.iter().filter_map(|c| c.get("Next")));
        }
    }
    out.into_iter().filter_map(Json::as_str).collect()
}

fn suggest(name: &str, names: &BTreeSet<&str>) -> String {
    crate::blueprint::did_you_mean(name, names.iter().copied()).unwrap_or_else(|| {
        format!(
            "states here: {}",
            names.iter().copied().collect::<Vec<_>>().join(", ")
        )
    })
}

fn check_target(
    v: Option<&Json>,
    at: String,
    field: &str,
    names: &BTreeSet<&str>,
    out: &mut Vec<Issue>,
) {
    match v {
        Some(Json::String(t)) if names.contains(t.as_str()) => {}
        Some(Json::String(t)) => out.push(
            Issue::new(
                at,
                format!("`{field}` names `{t}`, which is not a state here"),
            )
            .help(suggest(t, names)),
        ),
        Some(_) => out.push(Issue::new(at, format!("`{field}` is the name of a state"))),
        None => {}
    }
}

fn one_state(state: &Json, sp: &str, names: &BTreeSet<&str>, out: &mut Vec<Issue>) {
    let Json::Object(s) = state else {
        out.push(Issue::new(sp, "a state is a mapping with a `Type`"));
        return;
    };
    let ty = match s.get("Type") {
        Some(Json::String(t)) if TYPES.contains(&t.as_str()) => t.as_str(),
        Some(Json::String(t)) => {
            out.push(
                Issue::new(format!("{sp}.Type"), format!("unknown state type `{t}`")).help(
                    crate::blueprint::did_you_mean(t, TYPES.iter().copied())
                        .unwrap_or_else(|| format!("one of: {}", TYPES.join(", "))),
                ),
            );
            return;
        }
        _ => {
            out.push(
                Issue::new(sp, "the state has no `Type`")
                    .help(format!("one of: {}", TYPES.join(", "))),
            );
            return;
        }
    };
    let end = s.get("End");
    let next = s.get("Next");
    if let Some(e) = end {
        if !e.is_boolean() {
            out.push(Issue::new(
                format!("{sp}.End"),
                "`End` is `true` or left out",
            ));
        }
    }
    let ends = end == Some(&Json::Bool(true));
    match ty {
        "Succeed" | "Fail" => {
            for f in ["Next", "End"] {
                if s.contains_key(f) {
                    out.push(Issue::new(
                        format!("{sp}.{f}"),
                        format!("a {ty} state ends the execution: it has no `{f}`"),
                    ));
                }
            }
        }
        "Choice" => {
            for f in ["Next", "End"] {
                if s.contains_key(f) {
                    out.push(
                        Issue::new(
                            format!("{sp}.{f}"),
                            format!("a Choice state has no `{f}`: its `Choices` and `Default` say where to go"),
                        ),
                    );
                }
            }
            match s.get("Choices") {
                Some(Json::Array(a)) if !a.is_empty() => {
                    for (i, c) in a.iter().enumerate() {
                        let cp = format!("{sp}.Choices[{i}]");
                        match c.get("Next") {
                            None => out.push(Issue::new(cp.clone(), "a choice needs `Next`")),
                            v => check_target(v, format!("{cp}.Next"), "Next", names, out),
                        }
                    }
                }
                _ => out.push(Issue::new(
                    format!("{sp}.Choices"),
                    "a Choice state needs a non-empty list of `Choices`",
                )),
            }
            check_target(
                s.get("Default"),
                format!("{sp}.Default"),
                "Default",
                names,
                out,
            );
        }
        _ => {
            match (next, ends) {
                (Some(_), true) => out.push(Issue::new(
                    format!("{sp}.End"),
                    "a state has either `Next` or `End: true`, not both",
                )),
                (None, false) => out.push(
                    Issue::new(
                        sp,
                        format!("the {ty} state has neither `Next` nor `End: true`"),
                    )
                    .help("name the next state, or end the execution here with `End: true`"),
                ),
                _ => {}
            }
            check_target(next, format!("{sp}.Next"), "Next", names, out);
        }
    }
    let retries = matches!(ty, "Task" | "Parallel" | "Map");
    for f in ["Retry", "Catch"] {
        if s.contains_key(f) && !retries {
            out.push(Issue::new(
                format!("{sp}.{f}"),
                format!("only Task, Parallel and Map states have `{f}`"),
            ));
        }
    }
    if retries {
        if let Some(r) = s.get("Retry") {
            retry(r, &format!("{sp}.Retry"), out);
        }
        if let Some(c) = s.get("Catch") {
            catch(c, &format!("{sp}.Catch"), names, out);
        }
    }
    match ty {
        "Task" => {
            if !s.contains_key("Resource") {
                out.push(
                    Issue::new(sp, "a Task state needs a `Resource`")
                        .help("like `arn:${stack.partition}:states:::lambda:invoke` with `Parameters: {FunctionName: ${my_function.arn}}`"),
                );
            } else if !s.get("Resource").is_some_and(Json::is_string) {
                out.push(Issue::new(format!("{sp}.Resource"), "`Resource` is an ARN"));
            }
            for f in ["TimeoutSeconds", "HeartbeatSeconds"] {
                if let Some(v) = s.get(f) {
                    if !matches!(v.as_u64(), Some(n) if n > 0) {
                        out.push(Issue::new(
                            format!("{sp}.{f}"),
                            format!("`{f}` is a whole number of seconds above 0"),
                        ));
                    }
                }
            }
        }
        "Wait" => {
            let given: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
                .into_iter()
                .filter(|f| s.contains_key(*f))
                .collect();
            if given.len() != 1 {
                out.push(Issue::new(
                    sp,
                    "a Wait state has exactly one of `Seconds`, `Timestamp`, `SecondsPath`, `TimestampPath`",
                ));
            }
        }
        "Parallel" => match s.get("Branches") {
            Some(Json::Array(b)) if !b.is_empty() => {
                for (i, branch) in b.iter().enumerate() {
                    machine(branch, &format!("{sp}.Branches[{i}]"), out);
                }
            }
            _ => out.push(Issue::new(
                format!("{sp}.Branches"),
                "a Parallel state needs a non-empty list of `Branches`",
            )),
        },
        "Map" => {
            let key = ["ItemProcessor", "Iterator"]
                .into_iter()
                .find(|k| s.contains_key(*k));
            match key {
                Some(k) => machine(&s[k], &format!("{sp}.{k}"), out),
                None => out.push(Issue::new(sp, "a Map state needs an `ItemProcessor`")),
            }
        }
        _ => {}
    }
}

/// `ErrorEquals` of a retrier or catcher; returns whether it holds `States.ALL`.
fn error_equals(m: &Map<String, Json>, at: &str, out: &mut Vec<Issue>) -> bool {
    let p = format!("{at}.ErrorEquals");
    let Some(Json::Array(errors)) = m.get("ErrorEquals") else {
        out.push(
            Issue::new(
                if m.contains_key("ErrorEquals") {
                    p
                } else {
                    at.to_string()
                },
                "`ErrorEquals` is a non-empty list of error names",
            )
            .help("like `ErrorEquals: [States.TaskFailed]` or `[States.ALL]`"),
        );
        return false;
    };
    if errors.is_empty() {
        out.push(Issue::new(p, "`ErrorEquals` is empty: it matches nothing"));
        return false;
    }
    let mut all = false;
    for (i, e) in errors.iter().enumerate() {
        match e.as_str() {
            Some("States.ALL") => {
                all = true;
                if errors.len() > 1 {
                    out.push(Issue::new(
                        format!("{p}[{i}]"),
                        "`States.ALL` must be the only error in its `ErrorEquals`",
                    ));
                }
            }
            Some(name) if name.starts_with("States.") && !STATES_ERRORS.contains(&name) => out
                .push(
                    Issue::new(
                        format!("{p}[{i}]"),
                        format!("`{name}` is not a predefined error"),
                    )
                    .help(
                        crate::blueprint::did_you_mean(name, STATES_ERRORS.iter().copied())
                            .unwrap_or_else(|| {
                                "States.* names are reserved for Step Functions' own errors".into()
                            }),
                    ),
                ),
            Some(_) => {}
            None => out.push(Issue::new(format!("{p}[{i}]"), "an error name is a string")),
        }
    }
    all
}

fn unknown_fields(m: &Map<String, Json>, known: &[&str], at: &str, out: &mut Vec<Issue>) {
    for k in m.keys() {
        if !known.contains(&k.as_str()) {
            out.push(
                Issue::new(format!("{at}.{k}"), format!("unknown field `{k}`")).help(
                    crate::blueprint::did_you_mean(k, known.iter().copied())
                        .unwrap_or_else(|| format!("known fields: {}", known.join(", "))),
                ),
            );
        }
    }
}

fn retry(v: &Json, at: &str, out: &mut Vec<Issue>) {
    let Json::Array(list) = v else {
        out.push(Issue::new(at, "`Retry` is a list of retriers"));
        return;
    };
    for (i, r) in list.iter().enumerate() {
        let rp = format!("{at}[{i}]");
        let Json::Object(m) = r else {
            out.push(Issue::new(rp, "a retrier is a mapping with `ErrorEquals`"));
            continue;
        };
        unknown_fields(m, RETRY_FIELDS, &rp, out);
        if error_equals(m, &rp, out) && i + 1 != list.len() {
            out.push(Issue::new(
                format!("{rp}.ErrorEquals"),
                "the retrier with `States.ALL` must come last",
            ));
        }
        let int = |f: &str, min: u64, out: &mut Vec<Issue>| {
            if let Some(v) = m.get(f) {
                if !matches!(v.as_u64(), Some(n) if n >= min) {
                    out.push(Issue::new(
                        format!("{rp}.{f}"),
                        format!("`{f}` is a whole number, at least {min}"),
                    ));
                }
            }
        };
        int("IntervalSeconds", 1, out);
        int("MaxAttempts", 0, out);
        int("MaxDelaySeconds", 1, out);
        if let Some(b) = m.get("BackoffRate") {
            if !b.as_f64().is_some_and(|x| x >= 1.0) {
                out.push(Issue::new(
                    format!("{rp}.BackoffRate"),
                    "`BackoffRate` is a number, at least 1.0",
                ));
            }
        }
        if let Some(j) = m.get("JitterStrategy") {
            if !matches!(j.as_str(), Some("FULL" | "NONE")) {
                out.push(Issue::new(
                    format!("{rp}.JitterStrategy"),
                    "`JitterStrategy` is `FULL` or `NONE`",
                ));
            }
        }
    }
}

fn catch(v: &Json, at: &str, names: &BTreeSet<&str>, out: &mut Vec<Issue>) {
    let Json::Array(list) = v else {
        out.push(Issue::new(at, "`Catch` is a list of catchers"));
        return;
    };
    for (i, c) in list.iter().enumerate() {
        let cp = format!("{at}[{i}]");
        let Json::Object(m) = c else {
            out.push(Issue::new(
                cp,
                "a catcher is a mapping with `ErrorEquals` and `Next`",
            ));
            continue;
        };
        unknown_fields(m, CATCH_FIELDS, &cp, out);
        if error_equals(m, &cp, out) && i + 1 != list.len() {
            out.push(Issue::new(
                format!("{cp}.ErrorEquals"),
                "the catcher with `States.ALL` must come last",
            ));
        }
        match m.get("Next") {
            None => out.push(Issue::new(
                cp.clone(),
                "a catcher needs `Next`: the state to go to",
            )),
            v => check_target(v, format!("{cp}.Next"), "Next", names, out),
        }
        if let Some(r) = m.get("ResultPath") {
            if !(r.is_null() || r.as_str().is_some_and(|p| p.starts_with('$'))) {
                out.push(Issue::new(
                    format!("{cp}.ResultPath"),
                    "`ResultPath` is a path like `$.error`, or null",
                ));
            }
        }
    }
}

/// Every Task state of a definition, in Parallel branches and Map processors too, with
/// its path.
pub fn tasks(def: &Json, at: &str) -> Vec<(String, Map<String, Json>)> {
    let mut out = Vec::new();
    collect_tasks(def, at, &mut out);
    out
}

fn collect_tasks(def: &Json, at: &str, out: &mut Vec<(String, Map<String, Json>)>) {
    let Some(Json::Object(states)) = def.get("States") else {
        return;
    };
    for (name, s) in states {
        let sp = format!("{at}.States.{name}");
        let Json::Object(m) = s else { continue };
        match m.get("Type").and_then(Json::as_str) {
            Some("Task") => out.push((sp, m.clone())),
            Some("Parallel") => {
                if let Some(Json::Array(b)) = m.get("Branches") {
                    for (i, branch) in b.iter().enumerate() {
                        collect_tasks(branch, &format!("{sp}.Branches[{i}]"), out);
                    }
                }
            }
            Some("Map") => {
                for k in ["ItemProcessor", "Iterator"] {
                    if let Some(p) = m.get(k) {
                        collect_tasks(p, &format!("{sp}.{k}"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issues(def: Json) -> Vec<(String, String)> {
        let mut out = Vec::new();
        validate(&def, "definition", &mut out);
        out.into_iter().map(|i| (i.path, i.message)).collect()
    }

    fn at(found: &[(String, String)], path: &str) -> String {
        found
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    }

    #[test]
    fn a_good_workflow_passes() {
        let def = json!({
            "StartAt": "Validate",
            "States": {
                "Validate": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Catch": [{"ErrorEquals": ["InvalidOrder"], "Next": "Rejected", "ResultPath": "$.error"}],
                    "Next": "Pay"},
                "Pay": {"Type": "Task", "Resource": "arn:x",
                    "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Support"}],
                    "Next": "Fan"},
                "Support": {"Type": "Pass", "Next": "Failed"},
                "Failed": {"Type": "Fail", "Error": "PaymentFailed"},
                "Rejected": {"Type": "Fail"},
                "Fan": {"Type": "Parallel", "Next": "Which", "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
                    {"StartAt": "B", "States": {"B": {"Type": "Wait", "Seconds": 1, "End": true}}},
                ]},
                "Which": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "Done"}], "Default": "Done"},
                "Done": {"Type": "Succeed"},
            }
        });
        assert_eq!(issues(def), Vec::<(String, String)>::new());
    }

    #[test]
    fn problems_point_at_the_state() {
        let found = issues(json!({
            "StartAt": "Validat",
            "States": {
                "Validate": {"Type": "Task", "Resource": "arn:x", "Next": "ProcesPayment"},
                "ProcessPayment": {"Type": "Task", "Resource": "arn:x",
                    "Retry": [
                        {"ErrorEquals": ["States.ALL"], "BackoffRate": 0.5, "MaxAttempts": -1},
                        {"ErrorEquals": [], "IntervalSeconds": 0, "Jitter": "FULL"},
                    ],
                    "Catch": [{"ErrorEquals": ["States.Timeout", "States.ALL"]}, {"ErrorEquals": ["States.Timeot"], "Next": "Nowhere"}]},
                "Notify": {"Type": "Pass", "Next": "Done", "End": true, "Retry": []},
                "Done": {"Type": "Succeed", "Next": "Notify"},
                "Pick": {"Type": "Choice", "End": true, "Choices": [{"Variable": "$.x"}]},
                "Fan": {"Type": "Parallel", "End": true, "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Validate"}}},
                ]},
                "Sleep": {"Type": "Wait", "End": true},
                "Odd": {"Type": "Taks"},
            }
        }));
        let want = [
            ("definition.StartAt", "not a state here"),
            ("definition.States.Validate.Next", "`ProcesPayment`"),
            (
                "definition.States.ProcessPayment",
                "neither `Next` nor `End: true`",
            ),
            (
                "definition.States.ProcessPayment.Retry[0].ErrorEquals",
                "must come last",
            ),
            (
                "definition.States.ProcessPayment.Retry[0].BackoffRate",
                "at least 1.0",
            ),
            (
                "definition.States.ProcessPayment.Retry[0].MaxAttempts",
                "at least 0",
            ),
            (
                "definition.States.ProcessPayment.Retry[1].ErrorEquals",
                "matches nothing",
            ),
            (
                "definition.States.ProcessPayment.Retry[1].IntervalSeconds",
                "at least 1",
            ),
            (
                "definition.States.ProcessPayment.Retry[1].Jitter",
                "unknown field",
            ),
            (
                "definition.States.ProcessPayment.Catch[0].ErrorEquals[1]",
                "only error",
            ),
            ("definition.States.ProcessPayment.Catch[0]", "needs `Next`"),
            (
                "definition.States.ProcessPayment.Catch[1].ErrorEquals[0]",
                "not a predefined error",
            ),
            (
                "definition.States.ProcessPayment.Catch[1].Next",
                "`Nowhere`",
            ),
            ("definition.States.Notify.End", "not both"),
            (
                "definition.States.Notify.Retry",
                "only Task, Parallel and Map",
            ),
            ("definition.States.Done.Next", "ends the execution"),
            ("definition.States.Pick.End", "Choice state has no `End`"),
            ("definition.States.Pick.Choices[0]", "needs `Next`"),
            (
                "definition.States.Fan.Branches[0].States.A.Next",
                "`Validate`, which is not a state here",
            ),
            ("definition.States.Sleep", "exactly one of `Seconds`"),
            ("definition.States.Odd.Type", "unknown state type `Taks`"),
        ];
        for (path, text) in want {
            assert!(
                at(&found, path).contains(text),
                "{path}: {text}\n{found:#?}"
            );
        }
    }

    #[test]
    fn unreachable_states_and_missing_start() {
        let found = issues(json!({
            "StartAt": "A",
            "States": {"A": {"Type": "Pass", "End": true}, "B": {"Type": "Pass", "End": true}}
        }));
        assert!(
            at(&found, "definition.States.B").contains("never reached"),
            "{found:?}"
        );
        let found = issues(json!({"States": {"A": {"Type": "Pass", "End": true}}}));
        assert!(
            at(&found, "definition").contains("no `StartAt`"),
            "{found:?}"
        );
        let found = issues(json!({"StartAt": "A", "States": {}}));
        assert!(
            at(&found, "definition.States").contains("empty"),
            "{found:?}"
        );
        let found = issues(json!(["A"]));
        assert!(at(&found, "definition").contains("mapping"), "{found:?}");
    }

    #[test]
    fn tasks_are_found_in_branches() {
        let def = json!({"StartAt": "P", "States": {
            "P": {"Type": "Parallel", "End": true, "Branches": [
                {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:x", "End": true}}}]},
            "M": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "U", "States": {"U": {"Type": "Task", "Resource": "arn:y", "End": true}}}},
        }});
        let paths: Vec<String> = tasks(&def, "definition")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            paths,
            vec![
                "definition.States.P.Branches[0].States.T",
                "definition.States.M.ItemProcessor.States.U"
            ]
        );
    }
}
