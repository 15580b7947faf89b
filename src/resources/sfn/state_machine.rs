//! `state_machine`: an AWS Step Functions state machine (STANDARD or EXPRESS). Its
//! definition is written inline as YAML or in an `.asl.json` / `.asl.yaml` file beside the
//! blueprint, checked before any AWS call (see [`super::asl`]) and compared in one
//! normalised form (parsed JSON, keys sorted), so formatting never shows as a change.
//!
//! With `role: auto` (the default) it gets its own least-privilege role, `STACK-ID-role`,
//! derived from its Task states: `lambda:InvokeFunction` on the functions it invokes,
//! `sqs:SendMessage` on the queues it sends to, `events:PutEvents` on the buses it puts
//! events on, `states:StartExecution` on the state machines it starts, plus log delivery
//! when logging is on and X-Ray when tracing is on.

use crate::resources::access::{Access, When};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sfn::operation::describe_state_machine::DescribeStateMachineOutput;
use aws_sdk_sfn::types::{
    CloudWatchLogsLogGroup, LogDestination, LogLevel, LoggingConfiguration, StateMachineType, Tag,
    TracingConfiguration,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::asl;
use crate::aws::Aws;
use crate::blueprint::refs::{self, Piece, UNKNOWN};
use crate::blueprint::source::Pos;
use crate::blueprint::{self, files, CheckCx, FileSource, Inlined, Issue, Problem, SourceFile};
use crate::partition::{self, Partition};
use crate::resources::common::{self, Error};
use crate::resources::fields::is_literal;
use crate::resources::iam::{self, check_role, ExecRole, Grants, RoleUser, AUTO};
use crate::resources::typed::{
    attrs_of, Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct StateMachine;

/// How Step Functions uses a state machine's role, and what it answers while IAM
/// propagates.
const ROLE: RoleUser = RoleUser {
    kind: "state_machine",
    noun: "state machine",
    service: "states.amazonaws.com",
    not_assumable: role_not_assumable,
    lacks_permission: log_destination_denied,
    waiting: "Step Functions cannot use the role yet (IAM changes take a moment to reach it)",
    hint: "the role needs logs:CreateLogDelivery, logs:GetLogDelivery, \
           logs:UpdateLogDelivery, logs:DeleteLogDelivery, logs:ListLogDeliveries, \
           logs:PutResourcePolicy, logs:DescribeResourcePolicies and \
           logs:DescribeLogGroups on `*`; `role: auto` grants them",
};
/// The tracing flag as a tag too: the bundled emulator leaves `tracingConfiguration` out of
/// DescribeStateMachine (AWS always answers it, and that answer wins).
const TAG_TRACING: &str = "securecart:tracing";

/// A Step Functions state machine.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// `STANDARD` (the default: durable, exactly-once, up to a year, priced per state
    /// transition) or `EXPRESS` (high-volume, up to 5 minutes, priced per request and
    /// duration). Changing it replaces the state machine.
    #[serde(default)]
    workflow_type: WorkflowType,
    /// The definition in Amazon States Language, written as YAML. References like
    /// `${validate_order.arn}` become real ARNs and URLs. Give this or `definition_file`.
    #[serde(default)]
    definition: Option<Json>,
    /// A file beside the blueprint holding the definition: `workflow.asl.json` or
    /// `workflow.asl.yaml`.
    #[serde(default)]
    definition_file: Option<String>,
    /// The IAM role the state machine runs as: `auto` (the default) for a least-privilege
    /// role derived from its Task states, or a role's ARN like `${workflow_role.arn}`.
    #[serde(default = "iam::auto")]
    role: String,
    /// Execution history to CloudWatch Logs. Without it, this fails the security baseline
    /// (CKV_AWS_285 / StepFunctions.1).
    #[serde(default)]
    logging: Option<LoggingField>,
    /// AWS X-Ray tracing of executions. On by default; off fails the security baseline
    /// (CKV_AWS_284).
    #[serde(default = "yes")]
    tracing: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
enum WorkflowType {
    #[default]
    Standard,
    Express,
}

/// Where and how much a state machine logs.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoggingField {
    /// The log group's ARN, like `${workflow_logs.arn}`.
    log_group: String,
    /// `ALL`, `ERROR`, `FATAL` or `OFF`.
    #[serde(default = "default_level")]
    level: Level,
    /// Log the input and output of each state too (they may hold personal data).
    #[serde(default = "yes")]
    include_execution_data: bool,
}

fn default_level() -> Level {
    Level::All
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
enum Level {
    All,
    Error,
    Fatal,
    Off,
}

/// Normalised attributes: what `desired` builds and `read` finds, in one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    workflow_type: WorkflowType,
    /// Parsed, keys sorted.
    definition: Json,
    /// A role ARN, or `auto`.
    role: String,
    /// The policy of the automatic role (`role: auto` only), normalised.
    role_policy: Option<Json>,
    /// `None` when logging is off.
    logging: Option<LoggingAttrs>,
    tracing: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LoggingAttrs {
    /// The log group's ARN, without the `:*` suffix.
    log_group: String,
    level: Level,
    include_execution_data: bool,
}

fn machine_name(stack: &str, id: &str) -> String {
    common::physical_name(
        stack,
        id,
        80,
        |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
        "",
    )
}

/// JSON with every mapping's keys sorted.
fn sorted(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Json::Array(a) => Json::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn parse_definition_text(text: &str) -> Json {
    serde_json::from_str::<Json>(text)
        .map(|v| sorted(&v))
        .unwrap_or_else(|_| Json::String(text.to_string()))
}

/// A definition file as read: its text (for placing problems inside it at their own line
/// and column) and the definition, or the problems that keep it from being one.
type DefinitionFile = (Arc<SourceFile>, Result<Json, Vec<Problem>>);

/// Reads a definition file (JSON or YAML) beside the blueprint, through the confined
/// loader, capped at the largest definition Step Functions takes. Fails, as an issue at
/// `definition_file`, when the file cannot be read at all.
fn load_definition_file(dir: &Path, file: &str) -> Result<DefinitionFile, Issue> {
    // The path first: one leading outside the folder says so whatever its name.
    let bytes = files::read(
        dir,
        file,
        files::DEFINITION_MAX,
        "the most Step Functions takes as a definition",
    )
    .map_err(|e| Issue::new("definition_file", e))?;
    let lower = file.to_ascii_lowercase();
    let json = lower.ends_with(".json");
    if !json && !lower.ends_with(".yaml") && !lower.ends_with(".yml") {
        return Err(Issue::new(
            "definition_file",
            format!("`{file}` is not a JSON or YAML file"),
        )
        .help("name it like `workflow.asl.json` or `workflow.asl.yaml`"));
    }
    let path = dir.join(file);
    let (text, not_utf8) = match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            // Invalid bytes replaced: every offset before the first one is kept.
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let pos = blueprint::pos_at(&text, at);
            (text, Some(pos))
        }
    };
    let source = Arc::new(SourceFile::new(path.display().to_string(), path, text));
    let parsed = if let Some(pos) = not_utf8 {
        Err(vec![Problem::error(
            "the file is not UTF-8 text: this byte is invalid",
        )
        .with_help(Some(
            "save the file as UTF-8; it may be Latin-1 or UTF-16".into(),
        ))
        .at_pos(pos)])
    } else if json {
        parse_json(&source)
    } else {
        blueprint::parse_yaml(&source)
    };
    let parsed = parsed.map_err(|ps| {
        ps.into_iter()
            .map(|p| p.in_file(source.clone()))
            .collect::<Vec<_>>()
    });
    Ok((source, parsed))
}

/// A JSON definition, with a syntax error placed where serde_json found it.
fn parse_json(source: &SourceFile) -> Result<Json, Vec<Problem>> {
    if let Some(pos) = source.too_deep {
        // serde_json's own limit (128) would do, but every walk of the value after it
        // assumes the blueprint's.
        return Err(vec![Problem::error(format!(
            "nested more than {} levels deep",
            blueprint::source::MAX_DEPTH
        ))
        .at_pos(pos)]);
    }
    serde_json::from_str(&source.text).map_err(|e| {
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        let (line, column) = (e.line().max(1), e.column().max(1));
        vec![Problem::error(format!("not JSON: {message}")).at_pos(Pos {
            line,
            column,
            offset: source.offset_of(line, column),
            len: 1,
        })]
    })
}

/// A problem placed in a file, as its plain line.
fn placed(source: &SourceFile, p: &Problem) -> String {
    match (p.line, p.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}: {}", source.name, p.message),
        _ => format!("{}: {}", source.name, p.message),
    }
}

fn log_group_arn(v: &str) -> String {
    v.trim().trim_end_matches(":*").to_string()
}

// ---------------------------------------------------------------------------------------
// The automatic role
// ---------------------------------------------------------------------------------------

/// A Task's service integration, from its `Resource`, without the partition.
fn integration(resource: &str) -> Option<&str> {
    let (_, service, region, account, rest) = iam::arn_parts(resource)?;
    (service == "states" && region.is_empty() && account.is_empty()).then_some(rest)
}

/// What `role: auto` can derive permissions for. Checked on the unresolved definition, so
/// problems are found before any AWS call.
fn check_auto_role(def: &Json, out: &mut Vec<Issue>) {
    for (path, task) in asl::tasks(def, "definition") {
        let Some(resource) = task.get("Resource").and_then(Json::as_str) else {
            continue;
        };
        let params = task.get("Parameters").and_then(Json::as_object);
        let need = |field: &str, what: &str, out: &mut Vec<Issue>| {
            let dynamic = params.is_some_and(|p| p.contains_key(&format!("{field}.$")));
            let given = params.and_then(|p| p.get(field)).and_then(Json::as_str);
            match given {
                _ if dynamic => out.push(
                    Issue::new(
                        format!("{path}.Parameters.{field}.$"),
                        format!("with `role: auto`, `{field}` must name the {what} itself: a path chosen at run time cannot be granted in advance"),
                    )
                    .help("write it out (like `${orders.url}`), or give the state machine a `role` of its own"),
                ),
                None => out.push(Issue::new(
                    format!("{path}.Parameters"),
                    format!("the task needs `Parameters: {{{field}: …}}` naming the {what}"),
                )),
                Some(v) if !v.contains("${") && !v.starts_with("arn:") && !v.starts_with("http") => out.push(
                    Issue::new(
                        format!("{path}.Parameters.{field}"),
                        format!("with `role: auto`, `{field}` must be an ARN or URL (like a reference `${{…}}`), not `{v}`"),
                    ),
                ),
                Some(_) => {}
            }
        };
        let is_lambda_arn = resource.contains("${")
            || iam::arn_parts(resource)
                .is_some_and(|(_, s, _, _, r)| s == "lambda" && r.starts_with("function:"));
        match integration(resource) {
            Some("lambda:invoke" | "lambda:invoke.waitForTaskToken") => {
                need("FunctionName", "function", out)
            }
            Some("sqs:sendMessage" | "sqs:sendMessage.waitForTaskToken") => {
                need("QueueUrl", "queue", out)
            }
            Some("states:startExecution") => need("StateMachineArn", "state machine", out),
            Some("events:putEvents" | "events:putEvents.waitForTaskToken") => {
                if let Some(Json::Array(entries)) = params.and_then(|p| p.get("Entries")) {
                    for (i, e) in entries.iter().enumerate() {
                        if e.get("EventBusName.$").is_some() {
                            out.push(Issue::new(
                                format!("{path}.Parameters.Entries[{i}].EventBusName.$"),
                                "with `role: auto`, the event bus must be named in the definition, not chosen at run time",
                            ));
                        }
                    }
                } else if params.is_some_and(|p| p.contains_key("Entries.$")) {
                    out.push(Issue::new(
                        format!("{path}.Parameters.Entries.$"),
                        "with `role: auto`, `Entries` must be written out so the buses are known",
                    ));
                }
            }
            None if is_lambda_arn => {}
            _ => out.push(
                Issue::new(
                    format!("{path}.Resource"),
                    format!("`role: auto` derives permissions for Lambda, SQS, EventBridge and Step Functions tasks, not for `{resource}`"),
                )
                .help("give the state machine a role of its own: `role: ${workflow_role.arn}`"),
            ),
        }
    }
}

/// The automatic role's policy, from the resolved definition; unknown while any name it
/// depends on is.
fn auto_policy(partition: &Partition, def: &Json, logging: bool, tracing: bool) -> Json {
    let mut g = Grants::default();
    let mut unknown = false;
    let grant =
        |v: Option<&Json>, g: &mut Grants, unknown: &mut bool| match v.and_then(Json::as_str) {
            Some(s) if common::unknown(s) => *unknown = true,
            Some(s) => iam::grant_for_value(s, g),
            None => {}
        };
    for (_, task) in asl::tasks(def, "definition") {
        let Some(resource) = task.get("Resource").and_then(Json::as_str) else {
            continue;
        };
        if common::unknown(resource) {
            unknown = true;
            continue;
        }
        let params = task.get("Parameters");
        match integration(resource) {
            Some(i) if i.starts_with("lambda:invoke") => grant(
                params.and_then(|p| p.get("FunctionName")),
                &mut g,
                &mut unknown,
            ),
            Some(i) if i.starts_with("sqs:sendMessage") => {
                grant(params.and_then(|p| p.get("QueueUrl")), &mut g, &mut unknown)
            }
            Some("states:startExecution") => grant(
                params.and_then(|p| p.get("StateMachineArn")),
                &mut g,
                &mut unknown,
            ),
            Some(i) if i.starts_with("events:putEvents") => {
                let entries = params
                    .and_then(|p| p.get("Entries"))
                    .and_then(Json::as_array)
                    .cloned()
                    .unwrap_or_default();
                for e in entries {
                    match e.get("EventBusName").and_then(Json::as_str) {
                        Some(b) if common::unknown(b) => unknown = true,
                        Some(b) if b.starts_with("arn:") => g.allow("events:PutEvents", b),
                        Some(b) => g.allow(
                            "events:PutEvents",
                            partition.arn("events", "*", "*", &format!("event-bus/{b}")),
                        ),
                        None => g.allow(
                            "events:PutEvents",
                            partition.arn("events", "*", "*", "event-bus/default"),
                        ),
                    }
                }
            }
            Some(_) => {}
            None => iam::grant_for_value(resource, &mut g),
        }
    }
    if unknown {
        return Json::String(UNKNOWN.into());
    }
    if logging {
        // CloudWatch Logs delivery APIs take no resource (AWS documents `*` for them).
        for a in LOG_DELIVERY {
            g.allow(a, "*");
        }
    }
    if tracing {
        for a in [
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
        ] {
            g.allow(a, "*");
        }
    }
    g.policy()
}

/// Step Functions refuses a role it cannot assume yet with AccessDenied naming its
/// service principal ("Neither the global service principal states.amazonaws.com, nor
/// the regional one is authorized to assume the provided role."): IAM propagation, "changes
/// that I make are not always immediately visible"
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
fn role_not_assumable(e: &Error) -> bool {
    common::is_aws_message(e, &["AccessDeniedException"], "states.amazonaws.com")
        || common::is_aws_message(e, &["AccessDeniedException"], "assume the provided role")
}

/// With logging configured, Step Functions checks the role's log-delivery permissions at
/// Create/UpdateStateMachine and answers "The state machine IAM Role is not authorized to
/// access the Log Destination" until IAM has propagated a policy that was just put
/// (go-to-k/cdkd#2783, #2791; terraform-provider-aws retries it for 2 minutes, #47447:
/// https://github.com/hashicorp/terraform-provider-aws/issues/47447).
fn log_destination_denied(e: &Error) -> bool {
    common::is_aws_message(
        e,
        &["AccessDeniedException"],
        "not authorized to access the Log Destination",
    )
}

/// A state machine as read: its description, its tags (the tracing flag's fallback) and
/// the role it runs as.
pub struct Machine {
    d: DescribeStateMachineOutput,
    tags: BTreeMap<String, String>,
    role: ExecRole,
}
/// What setting up a state machine's log delivery to CloudWatch Logs calls: its role needs
/// them, and so does whoever creates or updates it with logging. AWS documents `*` for them
/// (https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html).
const LOG_DELIVERY: &[&str] = &[
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
];

/// The stack's state machines, named `STACK-ID`.
const MACHINE_ARN: &str = "arn:{partition}:states:{region}:{account}:stateMachine:{name}*";

#[async_trait]
impl Resource for StateMachine {
    const KIND: &'static str = "state_machine";
    const ACCESS: &'static [&'static [Access]] = &[
        iam::STACK_ROLE_ACCESS,
        &[
            Access::read(&["states:ListStateMachines"]),
            Access::read_on(
                &["states:DescribeStateMachine", "states:ListTagsForResource"],
                &[MACHINE_ARN],
            ),
            Access::change(
                &[
                    "states:CreateStateMachine",
                    "states:UpdateStateMachine",
                    "states:TagResource",
                ],
                &[MACHINE_ARN],
            ),
            Access::change(&["iam:PassRole"], &[iam::STACK_ROLES])
                .when(When::PassedTo(&["states.amazonaws.com"])),
            // Logging to CloudWatch Logs is a vended log delivery the caller sets up; these
            // actions have no resource-level permissions
            // (https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html).
            Access::change(LOG_DELIVERY, &["*"]),
            Access::delete(&["states:DeleteStateMachine"], &[MACHINE_ARN]),
            Access::delete(
                &[
                    "logs:GetLogDelivery",
                    "logs:DeleteLogDelivery",
                    "logs:ListLogDeliveries",
                ],
                &["*"],
            ),
        ],
    ];
    const ATTRIBUTES: &'static [&'static str] = &["arn", "name"];
    const REPLACE_ON: &'static [&'static str] = &["name", "workflow_type"];
    /// CreateStateMachine answers with an existing machine of the same name and
    /// definition whoever owns it: look first.
    const ADOPT: Adopt = Adopt::LookFirst;

    /// Typical time on AWS: Immediate, but a create may retry ~20 s while a new role or its
    /// log-delivery grant propagates (shared/notes/real-aws-gaps.md row 2).
    const TYPICAL: Typical = Typical {
        create: 15,
        update: 5,
        delete: 5,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    type Raw = Machine;

    fn check(&self, _id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut out = Vec::new();
        match (&f.definition, &f.definition_file) {
            (Some(_), Some(_)) => out.push(Issue::new(
                "definition_file",
                "a state machine has either `definition` or `definition_file`, not both",
            )),
            (None, None) => out.push(
                Issue::new(
                    "",
                    "a state machine needs `definition` or `definition_file`",
                )
                .help(
                    "e.g. `definition_file: workflow.asl.json`, or the definition inline as YAML",
                ),
            ),
            (Some(def), None) => {
                asl::validate(def, "definition", &mut out);
                if f.role == AUTO {
                    check_auto_role(def, &mut out);
                }
                if f.workflow_type == WorkflowType::Express {
                    for (path, task) in asl::tasks(def, "definition") {
                        let r = task
                            .get("Resource")
                            .and_then(Json::as_str)
                            .unwrap_or_default();
                        if r.ends_with(".sync")
                            || r.contains(".sync:")
                            || r.ends_with(".waitForTaskToken")
                        {
                            out.push(Issue::new(
                                format!("{path}.Resource"),
                                format!("EXPRESS workflows cannot wait for a job or a callback (`{r}`)"),
                            ).help("use `workflow_type: STANDARD`"));
                        }
                    }
                }
            }
            // Reading the file (and its problems) happened at load: a file that could be
            // read is `definition` by now, and what kept the others out is reported.
            (None, Some(_)) => {}
        }
        check_role(&f.role, "states.amazonaws.com", cx, &mut out);
        match &f.logging {
            None => out.push(
                Issue::new(
                    "",
                    "execution logging is off: this fails the security baseline (CKV_AWS_285 / StepFunctions.1)",
                )
                .help("add `logging: {log_group: ${workflow_logs.arn}}` with a log_group resource")
                .warning(),
            ),
            Some(l) => {
                if l.level == Level::Off {
                    out.push(
                        Issue::new(
                            "logging.level",
                            "execution logging is off: this fails the security baseline (CKV_AWS_285 / StepFunctions.1)",
                        )
                        .warning(),
                    );
                }
                if is_literal(&l.log_group) && !l.log_group.starts_with("arn:") {
                    out.push(
                        Issue::new(
                            "logging.log_group",
                            format!("`{}` is not a log group ARN", l.log_group),
                        )
                        .help("use a reference like `${workflow_logs.arn}`"),
                    );
                }
                if let Ok(pieces) = refs::scan(&l.log_group) {
                    if let [Piece::Ref(r)] = pieces.as_slice() {
                        if let Some(res) = cx.resources.get(&r.target) {
                            if res.kind != "log_group" {
                                out.push(Issue::new(
                                    "logging.log_group",
                                    format!("`{r}` is a {}, not a log_group", res.kind),
                                ));
                            } else if !matches!(r.attribute.as_deref(), None | Some("arn")) {
                                out.push(
                                    Issue::new(
                                        "logging.log_group",
                                        format!("logging needs the log group's ARN, not `{r}`"),
                                    )
                                    .help(format!("use `${{{}.arn}}`", r.target)),
                                );
                            } else if res.config.get("for").and_then(Json::as_str)
                                != Some("step_functions")
                            {
                                // Log delivery adds the group to the account's CloudWatch
                                // Logs resource policy (5,120 characters at most) unless it
                                // is under /aws/vendedlogs/, which one wildcard covers:
                                // https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html
                                out.push(
                                    Issue::new(
                                        "logging.log_group",
                                        format!(
                                            "`{}` is not named for Step Functions: each state \
                                             machine logging outside /aws/vendedlogs/ grows the \
                                             account's log resource policy, which is limited to \
                                             5,120 characters",
                                            r.target
                                        ),
                                    )
                                    .help(format!(
                                        "add `for: step_functions` to `{}`",
                                        r.target
                                    ))
                                    .warning(),
                                );
                            }
                        }
                    }
                }
            }
        }
        if !f.tracing {
            out.push(
                Issue::new(
                    "tracing",
                    "X-Ray tracing is off: this fails the security baseline (CKV_AWS_284)",
                )
                .help("remove `tracing: false`")
                .warning(),
            );
        }
        out
    }

    /// The definition file read in as `definition`: its problems (and those the checks
    /// find in it later) are placed in the file, at their own line and column.
    fn inline_files(&self, config: &Json, dir: &Path) -> Inlined {
        let Some(file) = config.get("definition_file").and_then(Json::as_str) else {
            return Inlined::default();
        };
        // check() reports having both; a path made of references is only known at plan.
        if config.get("definition").is_some() || file.contains("${") {
            return Inlined::default();
        }
        let (source, parsed) = match load_definition_file(dir, file) {
            Ok(read) => read,
            Err(issue) => return issue.into(),
        };
        let sources = vec![FileSource {
            content: "definition".into(),
            named_by: "definition_file".into(),
            file: source,
        }];
        match parsed {
            Ok(definition) => {
                let mut c = config.clone();
                if let Some(m) = c.as_object_mut() {
                    m.remove("definition_file");
                    m.insert("definition".into(), definition);
                }
                Inlined {
                    config: Some(c),
                    sources,
                    ..Inlined::default()
                }
            }
            Err(problems) => Inlined {
                sources,
                problems,
                ..Inlined::default()
            },
        }
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let definition = match (&f.definition, &f.definition_file) {
            (Some(d), _) => d.clone(),
            (None, Some(file)) => {
                let (source, parsed) = load_definition_file(site.dir, file)
                    .map_err(|i| format!("definition_file: {}", i.message))?;
                let d = parsed
                    .map_err(|ps| ps.first().map(|p| placed(&source, p)).unwrap_or_default())?;
                // Checked here when the path was only known now (validate reads the rest).
                let mut issues = Vec::new();
                asl::validate(&d, "definition", &mut issues);
                if f.role == AUTO {
                    check_auto_role(&d, &mut issues);
                }
                if let Some(i) = issues.iter().find(|i| !i.warning) {
                    let rel = i.path.strip_prefix("definition").unwrap_or(&i.path);
                    let p = Problem::error(i.message.clone()).at(
                        &source,
                        rel.trim_start_matches('.'),
                        false,
                    );
                    return Err(placed(&source, &p));
                }
                d
            }
            (None, None) => {
                return Err("a state machine needs `definition` or `definition_file`".into())
            }
        };
        let definition = sorted(&definition);
        let logging = f
            .logging
            .as_ref()
            .filter(|l| l.level != Level::Off)
            .map(|l| LoggingAttrs {
                log_group: log_group_arn(&l.log_group),
                level: l.level,
                include_execution_data: l.include_execution_data,
            });
        let role = f.role.trim().to_string();
        let role_policy = (role == AUTO).then(|| {
            auto_policy(
                partition::of(site.region),
                &definition,
                logging.is_some(),
                f.tracing,
            )
        });
        let a = Attrs {
            name: machine_name(site.stack, site.id),
            workflow_type: f.workflow_type,
            definition,
            role,
            role_policy,
            logging,
            tracing: f.tracing,
        };
        Ok((a, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, f: &Fields) -> Vec<(String, String)> {
        let mut out = vec![("state machine name".into(), machine_name(stack, id))];
        out.extend(iam::auto_role_key(stack, id, &f.role));
        out
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        let mut out = Vec::new();
        if a.logging.is_none() {
            out.push(
                "execution logging is off (security baseline CKV_AWS_285 / StepFunctions.1)".into(),
            );
        }
        if !a.tracing {
            out.push(
                "`tracing: false` turns X-Ray tracing off (security baseline CKV_AWS_284)".into(),
            );
        }
        out
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let prefix = format!("{stack}-");
        let machines = aws
            .sfn
            .list_state_machines()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await?;
        // Tags and definitions have no batched form: calls per state machine whose name
        // could be ours.
        common::read_each(
            machines
                .into_iter()
                .filter(|m| m.name().starts_with(&prefix))
                .map(|m| m.state_machine_arn().to_string()),
            |arn| async move {
                let Some(tags) = tags_of(aws, &arn).await? else {
                    return Ok(None);
                };
                let Some(id) = common::owned_id(&tags, stack) else {
                    return Ok(None);
                };
                Ok(describe(aws, stack, &arn, tags).await?.map(|m| (id, m)))
            },
        )
        .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let account = aws.account_id().await?;
        let arn = aws.partition().arn(
            "states",
            &aws.region,
            &account,
            &format!("stateMachine:{}", a.name),
        );
        let tags = tags_of(aws, &arn).await?.unwrap_or_default();
        let owner = common::owned_id(&tags, stack);
        Ok(describe(aws, stack, &arn, tags)
            .await?
            .map(|raw| Found { owner, raw }))
    }

    fn observe(&self, m: &Machine) -> Observed<Attrs> {
        let d = &m.d;
        let logging = d.logging_configuration().and_then(|l| {
            let level = match l.level()? {
                LogLevel::All => Level::All,
                LogLevel::Error => Level::Error,
                LogLevel::Fatal => Level::Fatal,
                _ => return None,
            };
            let group = l
                .destinations()
                .first()
                .and_then(|d| d.cloud_watch_logs_log_group())
                .and_then(|g| g.log_group_arn())
                .map(log_group_arn)
                .unwrap_or_default();
            Some(LoggingAttrs {
                log_group: group,
                level,
                include_execution_data: l.include_execution_data(),
            })
        });
        Observed {
            physical_id: d.state_machine_arn().to_string(),
            outputs: vec![
                ("arn", json!(d.state_machine_arn())),
                ("name", json!(d.name())),
            ],
            attrs: Attrs {
                name: d.name().to_string(),
                workflow_type: if *d.r#type() == StateMachineType::Express {
                    WorkflowType::Express
                } else {
                    WorkflowType::Standard
                },
                definition: parse_definition_text(d.definition()),
                role: m.role.role.clone(),
                role_policy: m.role.policy.clone(),
                logging,
                tracing: d
                    .tracing_configuration()
                    .map(|t| t.enabled())
                    .unwrap_or_else(|| m.tags.get(TAG_TRACING).is_some_and(|v| v == "true")),
            },
        }
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, a: &Attrs, _: &()) -> Result<Machine, Error> {
        let role_arn = ROLE
            .role_arn(aws, cx, &a.role, a.role_policy.as_ref())
            .await?;
        let mut tags: BTreeMap<String, String> =
            common::tags(cx.stack, cx.id, &a.name).into_iter().collect();
        tags.insert(TAG_TRACING.into(), a.tracing.to_string());
        cx.note("creating the state machine");
        let created = ROLE
            .retry(cx, &a.role, || async {
                let mut req = aws
                    .sfn
                    .create_state_machine()
                    .name(&a.name)
                    .definition(a.definition.to_string())
                    .role_arn(&role_arn)
                    .r#type(machine_type(a.workflow_type))
                    .logging_configuration(logging_configuration(a))
                    .tracing_configuration(tracing_configuration(a));
                for (k, v) in &tags {
                    req = req.tags(Tag::builder().key(k).value(v).build());
                }
                req.send().await.map_err(Error::from)
            })
            .await?;
        // CreateStateMachine answers the ARN and date only: the machine is what was sent.
        let d = DescribeStateMachineOutput::builder()
            .state_machine_arn(created.state_machine_arn())
            .name(&a.name)
            .definition(a.definition.to_string())
            .role_arn(&role_arn)
            .r#type(machine_type(a.workflow_type))
            .creation_date(*created.creation_date())
            .logging_configuration(logging_configuration(a))
            .tracing_configuration(tracing_configuration(a))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot describe the new state machine: {e}")))?;
        let role = ExecRole {
            role: a.role.clone(),
            policy: a.role_policy.clone(),
        };
        Ok(Machine { d, tags, role })
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<Machine>, Error> {
        let old = attrs_of::<Self>(live)?;
        let arn = &live.physical_id;
        let role_arn = if a.role == AUTO && changed.any(&["role", "role_policy"]) {
            Some(
                ROLE.role_arn(aws, cx, &a.role, a.role_policy.as_ref())
                    .await?,
            )
        } else if changed.has("role") {
            Some(a.role.clone())
        } else {
            None
        };
        const CHANGEABLE: &[&str] = &["definition", "role", "logging", "tracing"];
        if changed.any(CHANGEABLE) {
            let what: Vec<&str> = CHANGEABLE
                .iter()
                .copied()
                .filter(|f| changed.has(f))
                .collect();
            cx.note(format!("updating {}", what.join(", ")));
            ROLE.retry(cx, &a.role, || async {
                let mut req = aws.sfn.update_state_machine().state_machine_arn(arn);
                if changed.has("definition") {
                    req = req.definition(a.definition.to_string());
                }
                if let (true, Some(r)) = (changed.has("role"), &role_arn) {
                    req = req.role_arn(r);
                }
                if changed.has("logging") {
                    req = req.logging_configuration(logging_configuration(a));
                }
                if changed.has("tracing") {
                    req = req.tracing_configuration(tracing_configuration(a));
                }
                req.send().await.map_err(Error::from)
            })
            .await?;
            if changed.has("tracing") {
                aws.sfn
                    .tag_resource()
                    .resource_arn(arn)
                    .tags(
                        Tag::builder()
                            .key(TAG_TRACING)
                            .value(a.tracing.to_string())
                            .build(),
                    )
                    .send()
                    .await?;
            }
        }
        ROLE.drop_unused_auto_role(aws, cx, &old.role, &a.role)
            .await?;
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let old = attrs_of::<Self>(live)?;
        // The role first: a state machine left without it is found and deleted by the next
        // run; a role left without its state machine would be an orphan.
        if old.role == AUTO {
            iam::delete_auto_role(aws, cx.stack, cx.id).await?;
        }
        let arn = &live.physical_id;
        match aws
            .sfn
            .delete_state_machine()
            .state_machine_arn(arn)
            .send()
            .await
            .map_err(Error::from)
        {
            Err(e) if gone(&e) => return Ok(()),
            other => other.map(|_| ())?,
        }
        // Deletion is asynchronous; a replacement needs the name free.
        common::wait_for(
            cx,
            "the state machine to be deleted",
            Duration::from_secs(300),
            || async {
                match aws
                    .sfn
                    .describe_state_machine()
                    .state_machine_arn(arn)
                    .send()
                    .await
                    .map_err(Error::from)
                {
                    Err(e) if gone(&e) => Ok(Some(())),
                    Err(e) => Err(e),
                    Ok(_) => Ok(None),
                }
            },
        )
        .await
    }
}

fn machine_type(t: WorkflowType) -> StateMachineType {
    match t {
        WorkflowType::Standard => StateMachineType::Standard,
        WorkflowType::Express => StateMachineType::Express,
    }
}

fn tracing_configuration(a: &Attrs) -> TracingConfiguration {
    TracingConfiguration::builder().enabled(a.tracing).build()
}

fn logging_configuration(a: &Attrs) -> LoggingConfiguration {
    match &a.logging {
        None => LoggingConfiguration::builder().level(LogLevel::Off).build(),
        Some(l) => LoggingConfiguration::builder()
            .level(match l.level {
                Level::All => LogLevel::All,
                Level::Error => LogLevel::Error,
                Level::Fatal => LogLevel::Fatal,
                Level::Off => LogLevel::Off,
            })
            .include_execution_data(l.include_execution_data)
            .destinations(
                LogDestination::builder()
                    .cloud_watch_logs_log_group(
                        CloudWatchLogsLogGroup::builder()
                            .log_group_arn(format!("{}:*", l.log_group))
                            .build(),
                    )
                    .build(),
            )
            .build(),
    }
}

fn gone(e: &Error) -> bool {
    e.is_code(&["StateMachineDoesNotExist", "ResourceNotFound"])
}

/// The state machine's tags, or `None` when it is gone.
async fn tags_of(aws: &Aws, arn: &str) -> Result<Option<BTreeMap<String, String>>, Error> {
    match aws
        .sfn
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(Error::from)
    {
        Ok(o) => Ok(Some(
            o.tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
        )),
        Err(e) if gone(&e) || e.is_code(&["InvalidArn"]) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The state machine at `arn` with the role it runs as, or `None` when there is none (or
/// it is being deleted).
async fn describe(
    aws: &Aws,
    stack: &str,
    arn: &str,
    tags: BTreeMap<String, String>,
) -> Result<Option<Machine>, Error> {
    let d = match aws
        .sfn
        .describe_state_machine()
        .state_machine_arn(arn)
        .send()
        .await
        .map_err(Error::from)
    {
        Err(e) if gone(&e) => return Ok(None),
        other => other?,
    };
    if d.status().is_some_and(|s| s.as_str() == "DELETING") {
        return Ok(None);
    }
    let role = ExecRole::read(aws, stack, d.role_arn()).await?;
    Ok(Some(Machine { d, tags, role }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blueprint::{self, LoadError, Severity, SourceFile};
    use crate::resources::typed::Typed;
    use crate::resources::{Kind, TEST_REGION};

    const K: Typed<StateMachine> = Typed(StateMachine);

    fn problems(resources: &str) -> Vec<(Severity, String, String, Option<usize>)> {
        let text = format!("name: shop\nresources:\n{resources}");
        let dir = blueprint::files::folder_with_code(&text);
        let file = SourceFile::new("t.yaml".into(), "t.yaml".into(), text);
        let problems =
            match blueprint::parse(file, dir.path().into(), &[], &crate::resources::Catalog) {
                Ok(bp) => bp.warnings,
                Err(LoadError::Invalid(d)) => d.problems,
                Err(e) => panic!("{e}"),
            };
        problems
            .into_iter()
            .map(|p| (p.severity, p.path.unwrap_or_default(), p.message, p.line))
            .collect()
    }

    const FLOW: &str = concat!(
        "  logs: {type: log_group, for: step_functions}\n",
        "  support: {type: sqs_queue}\n",
        "  pay: {type: lambda_function, code: f, runtime: python3.12, handler: h.h}\n",
        "  flow:\n",
        "    type: state_machine\n",
        "    logging: {log_group: '${logs.arn}'}\n",
        "    definition:\n",
        "      StartAt: ProcessPayment\n",
        "      States:\n",
        "        ProcessPayment:\n",
        "          Type: Task\n",
        "          Resource: arn:aws:states:::lambda:invoke\n",
        "          Parameters: {FunctionName: '${pay.arn}', Payload.$: $}\n",
        "          Retry: [{ErrorEquals: [Busy], IntervalSeconds: 1, BackoffRate: 2, MaxAttempts: 3}]\n",
        "          Catch: [{ErrorEquals: [States.ALL], Next: NotifySupport}]\n",
        "          Next: Done\n",
        "        NotifySupport:\n",
        "          Type: Task\n",
        "          Resource: arn:aws:states:::sqs:sendMessage\n",
        "          Parameters: {QueueUrl: '${support.url}', MessageBody.$: $}\n",
        "          Next: Failed\n",
        "        Failed: {Type: Fail}\n",
        "        Done: {Type: Succeed}\n",
    );

    #[test]
    fn a_valid_workflow_has_no_problems() {
        let p = problems(FLOW);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn logging_to_a_group_not_named_for_step_functions_is_a_warning() {
        let p = problems(&FLOW.replace(", for: step_functions", ""));
        assert_eq!(p.len(), 1, "{p:?}");
        let (sev, path, msg, _) = &p[0];
        assert_eq!(*sev, Severity::Warning);
        assert_eq!(path, "resources.flow.logging.log_group");
        assert!(msg.contains("5,120 characters"), "{msg}");
    }

    #[test]
    fn definition_problems_land_on_the_state() {
        let bad = FLOW.replace("          Next: Done\n", "          Next: Dne\n");
        let p = problems(&bad);
        let (sev, path, msg, line) = &p[0];
        assert_eq!(*sev, Severity::Error);
        assert_eq!(path, "resources.flow.definition.States.ProcessPayment.Next");
        assert!(msg.contains("`Dne`"), "{msg}");
        // The line of `Next: Dne` in the blueprint (2 header lines before the resources).
        let want = 2 + FLOW.lines().position(|l| l.contains("Next: Done")).unwrap() + 1;
        assert_eq!(*line, Some(want), "{p:?}");
    }

    #[test]
    fn baseline_warnings_and_auto_role_limits() {
        let quiet = FLOW
            .replace(
                "    logging: {log_group: '${logs.arn}'}\n",
                "    tracing: false\n",
            )
            .replace(
                "Resource: arn:aws:states:::sqs:sendMessage",
                "Resource: arn:aws:states:::dynamodb:putItem",
            );
        let p = problems(&quiet);
        let msgs: Vec<&str> = p.iter().map(|x| x.2.as_str()).collect();
        assert!(msgs.iter().any(|m| m.contains("CKV_AWS_285")), "{p:?}");
        assert!(msgs.iter().any(|m| m.contains("CKV_AWS_284")), "{p:?}");
        let role = p
            .iter()
            .find(|x| x.1 == "resources.flow.definition.States.NotifySupport.Resource")
            .unwrap_or_else(|| panic!("{p:?}"));
        assert!(role.2.contains("dynamodb:putItem"), "{p:?}");
        // Dynamic names cannot be granted in advance.
        let dynamic = FLOW.replace("FunctionName: '${pay.arn}'", "FunctionName.$: $.fn");
        let p = problems(&dynamic);
        assert!(
            p.iter().any(|x| x.1.ends_with("Parameters.FunctionName.$")),
            "{p:?}"
        );
    }

    #[test]
    fn desired_sorts_the_definition_and_derives_the_role() {
        let config = json!({
            "logging": {"log_group": "arn:aws:logs:us-east-1:000000000000:log-group:/securecart/shop/logs:*"},
            "definition": {
                "States": {
                    "Pay": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"Payload.$": "$", "FunctionName": "arn:aws:lambda:us-east-1:000000000000:function:shop-pay"},
                        "Next": "Tell"},
                    "Tell": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                        "Parameters": {"QueueUrl": "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/shop-support", "MessageBody.$": "$"},
                        "Next": "Put"},
                    "Put": {"Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
                        "Parameters": {"Entries": [{"EventBusName": "arn:aws:events:us-east-1:000000000000:event-bus/shop-bus", "Detail.$": "$", "DetailType": "X", "Source": "s"}]},
                        "End": true},
                },
                "StartAt": "Pay",
            }
        });
        let d = K.desired("shop", "flow", &config).unwrap();
        assert_eq!(d["name"], "shop-flow");
        assert_eq!(d["workflow_type"], "STANDARD");
        let keys: Vec<&String> = d["definition"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["StartAt", "States"]);
        assert_eq!(
            d["logging"],
            json!({"log_group": "arn:aws:logs:us-east-1:000000000000:log-group:/securecart/shop/logs", "level": "ALL", "include_execution_data": true})
        );
        let policy = d["role_policy"].to_string();
        for want in [
            "arn:aws:lambda:us-east-1:000000000000:function:shop-pay",
            "arn:aws:sqs:us-east-1:000000000000:shop-support",
            "arn:aws:events:us-east-1:000000000000:event-bus/shop-bus",
            "logs:CreateLogDelivery",
            "xray:PutTraceSegments",
        ] {
            assert!(policy.contains(want), "{want} not in {policy}");
        }
        // What Step Functions answers (the text we sent, in any key order) reads back equal.
        let text = serde_json::to_string_pretty(&config["definition"]).unwrap();
        assert_eq!(parse_definition_text(&text), d["definition"]);
        // Unknown names make the policy unknown, not silently narrower.
        let mut c = config.clone();
        c["definition"]["States"]["Pay"]["Parameters"]["FunctionName"] = json!(UNKNOWN);
        let u = K.desired("shop", "flow", &c).unwrap();
        assert_eq!(u["role_policy"], UNKNOWN);
    }

    #[test]
    fn definition_files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ok.asl.yaml"),
            "StartAt: A\nStates:\n  A: {Type: Pass, End: true}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("bad.asl.json"),
            r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("refs.asl.json"),
            r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${fn.arn}", "End": true}}}"#,
        )
        .unwrap();
        let from_file = |file: &str| {
            let config = json!({ "definition_file": file });
            K.desired_in("shop", TEST_REGION, "f", &config, dir.path())
                .map(|d| d.attrs)
        };
        let ok = from_file("ok.asl.yaml").unwrap();
        assert_eq!(ok["definition"]["StartAt"], "A");
        let bad = from_file("bad.asl.json").unwrap_err();
        let name = dir.path().join("bad.asl.json").display().to_string();
        assert_eq!(
            bad,
            format!("{name}:1:59: `Next` names `B`, which is not a state here")
        );
        // Read in at load time, so its references are substituted like inline ones.
        let inlined = K
            .inline_files(&json!({"definition_file": "refs.asl.json"}), dir.path())
            .config
            .unwrap();
        assert!(inlined.get("definition_file").is_none());
        assert_eq!(
            inlined["definition"]["States"]["A"]["Resource"],
            "${fn.arn}"
        );
        let gone = K
            .inline_files(&json!({"definition_file": "gone.asl.json"}), dir.path())
            .issues;
        assert_eq!(gone[0].path, "definition_file");
        let missing = from_file("nope.json").unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
    }

    /// Problems inside a definition file are placed in the file, with its name, line and
    /// column; a file that cannot be read or parsed leaves the resource's other checks
    /// running.
    #[test]
    fn definition_file_problems_are_placed_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("flow.asl.yaml"),
            "StartAt: A\nStates:\n  A:\n    Type: Pass\n    Next: B\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("broken.asl.json"),
            "{\n  \"StartAt\": \"A\",\n  \"States\": {\n    \"A\": {\"Type\": \"Pass\" \"End\": true}\n  }\n}\n",
        )
        .unwrap();
        let text = concat!(
            "name: shop\n",
            "resources:\n",
            "  flow:\n",
            "    type: state_machine\n",
            "    definition_file: flow.asl.yaml\n",
            "  broken:\n",
            "    type: state_machine\n",
            "    definition_file: broken.asl.json\n",
            "    tracing: maybe\n",
            "  gone:\n",
            "    type: state_machine\n",
            "    definition_file: gone.asl.yaml\n",
            "    role: not-an-arn\n",
        );
        let file = SourceFile::new("t.yaml".into(), "t.yaml".into(), text.into());
        let d = match blueprint::parse(file, dir.path().into(), &[], &crate::resources::Catalog) {
            Err(LoadError::Invalid(d)) => d,
            other => panic!("{other:?}"),
        };
        let lines: Vec<String> = d
            .errors()
            .map(|p| {
                let f = p.source.as_ref().map_or("t.yaml".to_string(), |f| {
                    f.path.file_name().unwrap().to_string_lossy().to_string()
                });
                format!(
                    "{f}:{}:{}: {}",
                    p.line.unwrap_or(0),
                    p.column.unwrap_or(0),
                    p.message
                )
            })
            .collect();
        let want = [
            "t.yaml:9:14: invalid type: string \"maybe\", expected a boolean",
            "t.yaml:12:22: cannot read `gone.asl.yaml`: there is no such file in the blueprint's folder",
            "t.yaml:13:11: `not-an-arn` is not a role ARN",
            "broken.asl.json:4:26: not JSON: expected `,` or `}`",
            "flow.asl.yaml:5:11: `Next` names `B`, which is not a state here",
        ];
        for w in want {
            assert!(lines.iter().any(|l| l.starts_with(w)), "{w}\n{lines:#?}");
        }
        assert_eq!(lines.len(), want.len(), "{lines:#?}");
    }

    #[test]
    fn role_errors_are_told_apart() {
        // The messages exactly as Step Functions sends them (AWS error text).
        let denied = |message: &str| Error::Aws {
            operation: "CreateStateMachine".into(),
            code: Some("AccessDeniedException".into()),
            message: format!("AccessDeniedException: {message}"),
        };
        let assume = denied("Neither the global service principal states.amazonaws.com, nor the regional one is authorized to assume the provided role.");
        let logs =
            denied("The state machine IAM Role is not authorized to access the Log Destination");
        // Assuming is IAM propagation whoever made the role.
        assert!(ROLE.not_ready(&assume, true));
        assert!(ROLE.not_ready(&assume, false));
        // A missing log permission passes only on a role securecart just granted it to.
        assert!(ROLE.not_ready(&logs, true));
        assert!(!ROLE.not_ready(&logs, false));
        assert!(!ROLE.not_ready(&denied("not allowed to tag"), true));
        let other_code = Error::Aws {
            operation: "CreateStateMachine".into(),
            code: Some("InvalidDefinition".into()),
            message: "The state machine IAM Role is not authorized to access the Log Destination"
                .into(),
        };
        assert!(!ROLE.not_ready(&other_code, true));
    }

    #[test]
    fn read_shape_matches_desired() {
        let config = json!({
            "workflow_type": "EXPRESS",
            "role": "arn:aws:iam::1:role/securecart/shop/shop-runner",
            "logging": {"log_group": "arn:aws:logs:us-east-1:1:log-group:/securecart/shop/logs:*", "level": "ERROR", "include_execution_data": false},
            "definition": {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
        });
        let want = K.desired("shop", "flow", &config).unwrap();
        let a: Attrs = serde_json::from_value(want.clone()).unwrap();
        // As DescribeStateMachine answers it: the definition as text, the log group with
        // `:*`, the tracing flag only as a tag (the bundled emulator's answer).
        let d = DescribeStateMachineOutput::builder()
            .state_machine_arn("arn:aws:states:us-east-1:1:stateMachine:shop-flow")
            .name("shop-flow")
            .definition(r#"{"States": {"A": {"End": true, "Type": "Pass"}}, "StartAt": "A"}"#)
            .role_arn("arn:aws:iam::1:role/securecart/shop/shop-runner")
            .r#type(StateMachineType::Express)
            .creation_date(aws_smithy_types::DateTime::from_secs(0))
            .logging_configuration(logging_configuration(&a))
            .build()
            .unwrap();
        let m = Machine {
            d,
            tags: BTreeMap::from([(TAG_TRACING.to_string(), "true".to_string())]),
            role: ExecRole::of(
                "arn:aws:iam::1:role/securecart/shop/shop-runner",
                "shop",
                TEST_REGION,
                None,
            ),
        };
        let o = StateMachine.observe(&m);
        assert_eq!(serde_json::to_value(&o.attrs).unwrap(), want);
        assert_eq!(
            o.physical_id,
            "arn:aws:states:us-east-1:1:stateMachine:shop-flow"
        );
        // An answer with tracing wins over the tag.
        let mut m = m;
        m.d = DescribeStateMachineOutput::builder()
            .state_machine_arn("arn:aws:states:us-east-1:1:stateMachine:shop-flow")
            .name("shop-flow")
            .definition("{}")
            .role_arn("r")
            .r#type(StateMachineType::Standard)
            .creation_date(aws_smithy_types::DateTime::from_secs(0))
            .tracing_configuration(TracingConfiguration::builder().enabled(false).build())
            .build()
            .unwrap();
        assert!(!StateMachine.observe(&m).attrs.tracing);
    }
}
