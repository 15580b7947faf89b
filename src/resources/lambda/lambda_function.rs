//! `lambda_function`: an AWS Lambda function whose code is a folder or file beside the
//! blueprint, zipped deterministically: the same source always gives the same bytes, so the
//! code's SHA-256 (which Lambda reports as `CodeSha256`) tells plan whether the code changed.
//!
//! With `role: auto` (the default) the function gets its own least-privilege role,
//! `STACK-ID-role`, derived from what its environment refers to; it is created, updated and
//! deleted with the function, and its policy is an attribute, so a change shows in plan.

use crate::resources::access::{Access, When};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::types::{
    Environment, FunctionCode, FunctionConfiguration, LastUpdateStatus, LogFormat, LoggingConfig,
    Runtime, State, TracingConfig, TracingMode,
};
use aws_smithy_types::Blob;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use crate::aws::Aws;
use crate::blueprint::refs::UNKNOWN;
use crate::blueprint::{files, CheckCx, Inlined, Issue};
use crate::partition::{self, Partition};
use crate::resources::common::{self, Error};
use crate::resources::fields::is_literal;
use crate::resources::iam::{self, check_role, ExecRole, Grants, RoleUser, AUTO};
use crate::resources::typed::{
    attrs_of, Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct LambdaFunction;

/// How Lambda uses a function's role, and what it answers while IAM propagates.
const ROLE: RoleUser = RoleUser {
    kind: "lambda_function",
    noun: "function",
    service: "lambda.amazonaws.com",
    not_assumable: role_not_assumable,
    lacks_permission: xray_denied,
    waiting: "Lambda cannot use the role yet (IAM changes take a moment to reach Lambda), or an update is still in progress",
    hint: XRAY_HINT,
};

const RUNTIMES: &[&str] = &[
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "java11",
    "java17",
    "java21",
    "dotnet8",
    "ruby3.2",
    "ruby3.3",
    "provided.al2",
    "provided.al2023",
];

/// A Lambda function.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// The code: a folder (zipped with everything in it) or a single file, relative to the
    /// blueprint's folder, like `functions/validate_order`. Editing it updates the function
    /// in place.
    code: String,
    /// The runtime, like `python3.12` or `nodejs20.x`.
    runtime: String,
    /// The entry point: `module.function` for Python (`handler.handler` runs `handler()`
    /// in `handler.py`), `file.export` for Node.js.
    handler: String,
    /// Memory in MB (128 to 10240); CPU grows with it.
    // Read wide so that a negative or huge value meets the range check, which names the
    // allowed range, rather than a bare type error.
    #[serde(default = "default_memory")]
    memory: i64,
    /// Seconds an invocation may run (1 to 900).
    #[serde(default = "default_timeout")]
    timeout: i64,
    /// Environment variables; values may refer to other resources, like
    /// `QUEUE_URL: ${orders.url}`. With `role: auto`, the queues, buses, functions and
    /// state machines named here are what the role may use.
    #[serde(default)]
    environment: BTreeMap<String, Json>,
    /// The IAM role the function runs as: `auto` (the default) for a least-privilege role of
    /// its own — logs, X-Ray, and `sqs:SendMessage` / `events:PutEvents` /
    /// `lambda:InvokeFunction` / `states:StartExecution` on what `environment` refers to —
    /// or a role's ARN like `${payments_role.arn}`.
    #[serde(default = "iam::auto")]
    role: String,
    /// AWS X-Ray active tracing. On by default; turning it off fails the security baseline
    /// (CKV_AWS_50). A role other than `auto` then needs `xray:PutTraceSegments` and
    /// `xray:PutTelemetryRecords` (Lambda refuses the function without them).
    #[serde(default = "yes")]
    tracing: bool,
    /// The log group to write to, like `${function_logs.name}`; by default Lambda's own
    /// `/aws/lambda/NAME`, which Lambda creates and which outlives the stack.
    #[serde(default)]
    log_group: Option<String>,
    /// What the function does (up to 256 characters).
    #[serde(default)]
    description: Option<String>,
}

/// A checked number as the 32-bit integer the Lambda API takes (never wrapped around).
fn api_int(field: &str, v: u32) -> Result<i32, Error> {
    common::int32(field, v.into()).map_err(Error::Invalid)
}

fn default_memory() -> i64 {
    128
}

fn default_timeout() -> i64 {
    3
}

fn yes() -> bool {
    true
}

/// Normalised attributes: what `desired` builds and `read` finds, in one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    runtime: String,
    handler: String,
    memory: u32,
    timeout: u32,
    environment: BTreeMap<String, String>,
    /// A role ARN, or `auto`.
    role: String,
    /// The policy of the automatic role (`role: auto` only), normalised.
    role_policy: Option<Json>,
    tracing: bool,
    /// A log group name; `None` is Lambda's default group.
    log_group: Option<String>,
    description: Option<String>,
    /// Base64 SHA-256 of the zipped code, as Lambda reports it.
    code_sha256: String,
}

fn function_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn function_name(stack: &str, id: &str) -> String {
    common::physical_name(stack, id, 64, function_char, "")
}

fn default_log_group(name: &str) -> String {
    format!("/aws/lambda/{name}")
}

/// A log group given by name or ARN, as its name.
fn log_group_name(v: &str) -> String {
    match v.split_once(":log-group:") {
        Some((_, rest)) => rest.trim_end_matches(":*").to_string(),
        None => v.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Code
// ---------------------------------------------------------------------------------------

/// Files to zip: `(name in the zip, path, executable)`, sorted by name, read through the
/// blueprint's confined loader (inside its folder, regular files, size-capped). Caches and
/// editor files never change what runs, so they are left out.
fn code_files(dir: &Path, code: &str) -> Result<Vec<files::CodeFile>, String> {
    files::code_files(dir, code, skipped)
}

fn skipped(name: &str) -> bool {
    matches!(
        name,
        "__pycache__"
            | ".git"
            | ".DS_Store"
            | ".pytest_cache"
            | ".mypy_cache"
            | "node_modules/.cache"
    ) || name.ends_with(".pyc")
        || name.ends_with('~')
        || name.ends_with(".swp")
}

/// The code as a zip that depends only on the files' names, contents and executable bits:
/// entries sorted, timestamps fixed at 1980-01-01, permissions 644 or 755.
fn zip_code(dir: &Path, code: &str) -> Result<Vec<u8>, String> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for f in code_files(dir, code)? {
        let (name, exec) = (f.name.as_str(), f.executable);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(if exec { 0o755 } else { 0o644 });
        let bytes = files::read_code_file(&f)?;
        w.start_file(name, opts)
            .map_err(|e| format!("cannot zip {name}: {e}"))?;
        w.write_all(&bytes)
            .map_err(|e| format!("cannot zip {name}: {e}"))?;
    }
    let out = w
        .finish()
        .map_err(|e| format!("cannot zip `{code}`: {e}"))?
        .into_inner();
    if out.len() > files::CODE_ZIP_MAX {
        return Err(format!(
            "the zipped code of `{code}` is {} MB; Lambda takes at most 50 MB directly",
            out.len() / (1024 * 1024)
        ));
    }
    Ok(out)
}

/// Base64 SHA-256, the form of Lambda's `CodeSha256`.
fn code_sha256(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(Sha256::digest(bytes))
}

/// A Python handler `a.b.func` must find `a/b.py` (or `a/b/__init__.py`) in the code.
fn check_python_handler(handler: &str, names: &BTreeSet<String>) -> Result<(), String> {
    let Some((module, _)) = handler.rsplit_once('.') else {
        return Err(format!(
            "handler `{handler}` must be `module.function`, like `handler.handler`"
        ));
    };
    let path = module.replace('.', "/");
    let candidates = [format!("{path}.py"), format!("{path}/__init__.py")];
    if candidates.iter().any(|c| names.contains(c)) {
        Ok(())
    } else {
        Err(format!(
            "handler `{handler}` needs `{}` in the code, which has {}",
            candidates[0],
            names
                .iter()
                .take(8)
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

// ---------------------------------------------------------------------------------------
// The automatic role
// ---------------------------------------------------------------------------------------

/// The policy of the automatic role: logs, X-Ray, and what the environment refers to.
/// Unknown until every value it depends on is known.
fn auto_policy(
    partition: &Partition,
    name: &str,
    environment: &BTreeMap<String, String>,
    log_group: Option<&str>,
    log_group_arn: Option<&str>,
    tracing: bool,
) -> Json {
    if environment.values().any(|v| common::unknown(v))
        || log_group.is_some_and(common::unknown)
        || log_group_arn.is_some_and(common::unknown)
    {
        return Json::String(UNKNOWN.into());
    }
    let mut g = Grants::default();
    for v in environment.values() {
        iam::grant_for_value(v, &mut g);
    }
    match (log_group_arn, log_group) {
        (Some(arn), _) => {
            let arn = arn.trim_end_matches(":*");
            g.allow("logs:CreateLogStream", format!("{arn}:*"));
            g.allow("logs:PutLogEvents", format!("{arn}:*"));
        }
        (None, Some(group)) => {
            let arn = partition.arn("logs", "*", "*", &format!("log-group:{group}:*"));
            g.allow("logs:CreateLogStream", arn.clone());
            g.allow("logs:PutLogEvents", arn);
        }
        (None, None) => {
            let group = default_log_group(name);
            let arn = partition.arn("logs", "*", "*", &format!("log-group:{group}:*"));
            g.allow("logs:CreateLogGroup", arn.clone());
            g.allow("logs:CreateLogStream", arn.clone());
            g.allow("logs:PutLogEvents", arn);
        }
    }
    if tracing {
        // X-Ray's write APIs take no resource.
        g.allow("xray:PutTraceSegments", "*");
        g.allow("xray:PutTelemetryRecords", "*");
    }
    g.policy()
}

/// Lambda says a just-created or changed role "cannot be assumed" while IAM propagates
/// ("The role defined for the function cannot be assumed by Lambda."; IAM: "changes that I
/// make are not always immediately visible",
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency);
/// an update still in progress is a ResourceConflictException. Both pass with time.
fn role_not_assumable(e: &Error) -> bool {
    common::is_aws_message(e, &["InvalidParameterValueException"], "cannot be assumed")
        || e.is_code(&["ResourceConflictException"])
}

/// With `tracing: true` (TracingConfig Active), Create/UpdateFunctionConfiguration checks
/// the role's X-Ray permissions and answers "The provided execution role does not have
/// permissions to call PutTraceSegments on XRAY" until IAM has propagated a policy that
/// was just put (serverless/serverless#6931:
/// https://github.com/serverless/serverless/issues/6931).
fn xray_denied(e: &Error) -> bool {
    common::is_aws_message(
        e,
        &["InvalidParameterValueException"],
        "permissions to call PutTraceSegments on XRAY",
    )
}

/// What a role needs for `tracing: true`.
const XRAY_HINT: &str = "with `tracing: true` the role needs xray:PutTraceSegments and \
     xray:PutTelemetryRecords (for example the managed policy \
     arn:PARTITION:iam::aws:policy/AWSXRayDaemonWriteAccess); `role: auto` grants them";

/// True when an `iam_role` of the blueprint visibly allows what `tracing: true` needs:
/// X-Ray's write actions in an inline policy, or AWS's X-Ray write policy attached.
fn role_config_grants_xray(config: &Json) -> bool {
    iam::role_config_allows(
        config,
        &["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
        &["AWSXRayDaemonWriteAccess", "AWSXrayWriteOnlyAccess"],
    )
}

// ---------------------------------------------------------------------------------------
// The kind
// ---------------------------------------------------------------------------------------

/// Secrets in a function's environment: anyone allowed `lambda:GetFunctionConfiguration`
/// reads them in clear (Lambda encrypts them at rest only). One written out in the blueprint
/// is also in the repository (checkov CKV_AWS_45); one from a secret parameter stays out of
/// the repository and the plan, but not out of the function's configuration.
fn environment_secret_warnings(
    id: &str,
    environment: &BTreeMap<String, Json>,
    cx: &CheckCx,
) -> Vec<Issue> {
    const READ_AT_RUN_TIME: &str = "keep it in SSM Parameter Store (SecureString) or Secrets \
        Manager, give the function its name, and read it at run time (Lambda Developer Guide, \
        \"Securing environment variables\")";
    let from_secret = cx
        .resources
        .get(id)
        .is_some_and(|r| r.secret_fields.contains("environment"));
    if from_secret {
        return vec![Issue::new(
            "environment",
            "a secret parameter is written into the function's environment, which anyone allowed \
             lambda:GetFunctionConfiguration can read",
        )
        .help(READ_AT_RUN_TIME)
        .warning()];
    }
    let mut out = Vec::new();
    for (k, v) in environment {
        let Some(v) = v.as_str() else { continue };
        let written_out = common::names_a_secret(k) && common::is_literal_secret(v);
        if written_out || common::holds_access_key(v) {
            out.push(
                Issue::new(
                    format!("environment.{k}"),
                    format!(
                        "`{k}` holds a secret written in the blueprint in plain text \
                         (security baseline: checkov CKV_AWS_45)"
                    ),
                )
                .help(format!(
                    "take it from a parameter with `secret: true`, or better: {READ_AT_RUN_TIME}"
                ))
                .warning(),
            );
        }
    }
    out
}

/// Variables Lambda sets itself and refuses in a function's environment.
const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];
/// The stack's functions, named `STACK-ID`.
const FUNCTION_ARN: &str = "arn:{partition}:lambda:{region}:{account}:function:{name}*";

#[async_trait]
impl Resource for LambdaFunction {
    const KIND: &'static str = "lambda_function";
    const ACCESS: &'static [&'static [Access]] = &[
        iam::STACK_ROLE_ACCESS,
        &[
            Access::read(&["lambda:ListFunctions"]),
            Access::read_on(
                &["lambda:GetFunctionConfiguration", "lambda:ListTags"],
                &[FUNCTION_ARN],
            ),
            Access::change(
                &[
                    "lambda:CreateFunction",
                    "lambda:UpdateFunctionCode",
                    "lambda:UpdateFunctionConfiguration",
                    "lambda:TagResource",
                ],
                &[FUNCTION_ARN],
            ),
            Access::change(&["iam:PassRole"], &[iam::STACK_ROLES])
                .when(When::PassedTo(&["lambda.amazonaws.com"])),
            Access::delete(&["lambda:DeleteFunction"], &[FUNCTION_ARN]),
        ],
    ];
    const ATTRIBUTES: &'static [&'static str] = &["arn", "name"];
    const REPLACE_ON: &'static [&'static str] = &["name"];
    /// Look before creating: CreateFunction answers a taken name with
    /// ResourceConflictException, which the role retry also waits out as "an update is in
    /// progress".
    const ADOPT: Adopt = Adopt::LookFirst;

    /// Typical time on AWS: Pending → Active takes seconds; a create may retry for up to ~20 s
    /// while Lambda cannot yet assume a new role (shared/notes/aws-behaviour.md "Eventual
    /// consistency").
    const TYPICAL: Typical = Typical {
        create: 20,
        update: 10,
        delete: 2,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    /// The zipped code (its SHA-256 is the `code_sha256` attribute).
    type Payload = Vec<u8>;
    /// The configuration and the role it runs as.
    type Raw = (FunctionConfiguration, ExecRole);

    fn check(&self, id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut out = Vec::new();
        if f.code.trim().is_empty() {
            out.push(Issue::new(
                "code",
                "`code` names a folder or file beside the blueprint",
            ));
        }
        if is_literal(&f.runtime) && !RUNTIMES.contains(&f.runtime.as_str()) {
            out.push(
                Issue::new("runtime", format!("unknown runtime `{}`", f.runtime)).help(
                    crate::blueprint::did_you_mean(&f.runtime, RUNTIMES.iter().copied())
                        .unwrap_or_else(|| format!("one of: {}", RUNTIMES.join(", "))),
                ),
            );
        }
        if f.runtime.starts_with("python") && !f.handler.contains('.') {
            out.push(
                Issue::new(
                    "handler",
                    format!("handler `{}` must be `module.function`", f.handler),
                )
                .help("like `handler.handler` for `def handler(event, context)` in handler.py"),
            );
        }
        if !(128..=10240).contains(&f.memory) {
            out.push(Issue::new(
                "memory",
                format!("`memory` must be 128 to 10240 MB, not {}", f.memory),
            ));
        }
        if !(1..=900).contains(&f.timeout) {
            out.push(Issue::new(
                "timeout",
                format!("`timeout` must be 1 to 900 seconds, not {}", f.timeout),
            ));
        }
        let mut size = 0;
        for (k, v) in &f.environment {
            let at = format!("environment.{k}");
            let key_ok = k.starts_with(|c: char| c.is_ascii_alphabetic())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !key_ok {
                out.push(Issue::new(
                    at.clone(),
                    format!("`{k}` is not a valid variable name (letters, digits, `_`, starting with a letter)"),
                ));
            } else if RESERVED_ENV.contains(&k.as_str()) {
                out.push(Issue::new(
                    at.clone(),
                    format!("Lambda sets `{k}` itself and refuses it in the environment"),
                ));
            }
            match v {
                Json::String(s) => size += k.len() + s.len(),
                Json::Number(_) | Json::Bool(_) => size += k.len() + v.to_string().len(),
                _ => out.push(Issue::new(
                    at,
                    "an environment value is a string, number or boolean",
                )),
            }
        }
        if size > 4096 {
            out.push(Issue::new(
                "environment",
                format!("the environment is {size} bytes; Lambda allows 4 KB"),
            ));
        }
        out.extend(environment_secret_warnings(id, &f.environment, cx));
        check_role(&f.role, "lambda.amazonaws.com", cx, &mut out);
        if f.tracing && f.role != AUTO {
            // Lambda checks the role's X-Ray permissions at create and update and refuses
            // the function without them; only an `iam_role` of the blueprint can be looked at.
            let seen = cx
                .referenced(&f.role)
                .filter(|r| r.kind == "iam_role")
                .is_some_and(|r| role_config_grants_xray(&r.config));
            if !seen {
                out.push(
                    Issue::new(
                        "role",
                        "with `tracing: true` (the default) Lambda refuses the function unless \
                         this role allows xray:PutTraceSegments and xray:PutTelemetryRecords",
                    )
                    .help(
                        "attach arn:${stack.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess to the role, \
                         or use `role: auto`, which grants them",
                    )
                    .warning(),
                );
            }
        }
        if let Some(lg) = &f.log_group {
            if let Some(res) = cx.referenced(lg) {
                if res.kind != "log_group" {
                    out.push(Issue::new(
                        "log_group",
                        format!("`{lg}` is a {}, not a log_group", res.kind),
                    ));
                }
            }
        }
        if f.description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 256)
        {
            out.push(Issue::new(
                "description",
                "a description has at most 256 characters",
            ));
        }
        if !f.tracing {
            out.push(
                Issue::new(
                    "tracing",
                    "X-Ray tracing is off: this fails the security baseline (CKV_AWS_50)",
                )
                .help("remove `tracing: false`; tracing costs nothing within the X-Ray free tier")
                .warning(),
            );
        }
        out
    }

    /// Nothing is inlined, but the code is looked at while validating, so a missing,
    /// empty or out-of-folder `code` is an error located at the field, before any AWS call.
    fn inline_files(&self, config: &Json, dir: &Path) -> Inlined {
        if let Some(code) = config.get("code").and_then(Json::as_str) {
            if !code.contains("${") {
                if let Err(e) = code_files(dir, code) {
                    return Issue::new("code", e).into();
                }
            }
        }
        Inlined::default()
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, Vec<u8>), String> {
        let zip = zip_code(site.dir, &f.code).map_err(|e| format!("code: {e}"))?;
        if f.runtime.starts_with("python") {
            let names: BTreeSet<String> = code_files(site.dir, &f.code)?
                .into_iter()
                .map(|f| f.name)
                .collect();
            check_python_handler(&f.handler, &names)?;
        }
        let name = function_name(site.stack, site.id);
        let environment: BTreeMap<String, String> = f
            .environment
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect();
        let log_group_arn = f
            .log_group
            .as_deref()
            .filter(|l| l.starts_with("arn:"))
            .map(str::to_string);
        let log_group = f
            .log_group
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                if common::unknown(l) {
                    l.to_string()
                } else {
                    log_group_name(l)
                }
            })
            .filter(|l| *l != default_log_group(&name));
        let role = f.role.trim().to_string();
        let role_policy = (role == AUTO).then(|| {
            auto_policy(
                partition::of(site.region),
                &name,
                &environment,
                log_group.as_deref(),
                log_group_arn.as_deref(),
                f.tracing,
            )
        });
        let a = Attrs {
            name,
            runtime: f.runtime.trim().to_string(),
            handler: f.handler.trim().to_string(),
            memory: common::uint32("memory", f.memory)?,
            timeout: common::uint32("timeout", f.timeout)?,
            environment,
            role,
            role_policy,
            tracing: f.tracing,
            log_group,
            description: f
                .description
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty()),
            code_sha256: code_sha256(&zip),
        };
        Ok((a, zip))
    }

    fn physical_names(&self, stack: &str, id: &str, f: &Fields) -> Vec<(String, String)> {
        let mut out = vec![("function name".into(), function_name(stack, id))];
        out.extend(iam::auto_role_key(stack, id, &f.role));
        out
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        if a.tracing {
            Vec::new()
        } else {
            vec!["`tracing: false` turns X-Ray tracing off (security baseline CKV_AWS_50)".into()]
        }
    }

    fn label(&self, a: &Attrs) -> String {
        format!("a Lambda function named `{}`", a.name)
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let prefix = format!("{stack}-");
        let functions = aws
            .lambda
            .list_functions()
            .max_items(50)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await?;
        // Tags (and the automatic role's policy) have no batched form: calls per function
        // whose name could be ours.
        common::read_each(
            functions
                .into_iter()
                .filter(|f| f.function_name().is_some_and(|n| n.starts_with(&prefix))),
            |f| async move {
                let Some(arn) = f.function_arn() else {
                    return Ok(None);
                };
                let Some(tags) = list_tags(aws, arn).await? else {
                    return Ok(None);
                };
                let Some(id) = common::owned_id(&tags, stack) else {
                    return Ok(None);
                };
                let role = ExecRole::read(aws, stack, f.role().unwrap_or_default()).await?;
                Ok::<_, Error>(Some((id, (f, role))))
            },
        )
        .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let Some(f) = get_configuration(aws, &a.name).await? else {
            return Ok(None);
        };
        let tags = list_tags(aws, f.function_arn().unwrap_or_default())
            .await?
            .unwrap_or_default();
        let role = ExecRole::read(aws, stack, f.role().unwrap_or_default()).await?;
        Ok(Some(Found {
            owner: common::owned_id(&tags, stack),
            raw: (f, role),
        }))
    }

    fn observe(&self, (f, role): &Self::Raw) -> Observed<Attrs> {
        let name = f.function_name().unwrap_or_default().to_string();
        let arn = f.function_arn().unwrap_or_default().to_string();
        Observed {
            physical_id: arn.clone(),
            outputs: vec![("arn", json!(arn)), ("name", json!(name))],
            attrs: Attrs {
                runtime: f
                    .runtime()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default(),
                handler: f.handler().unwrap_or_default().to_string(),
                memory: f
                    .memory_size()
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(128),
                timeout: f.timeout().and_then(|t| u32::try_from(t).ok()).unwrap_or(3),
                environment: f
                    .environment()
                    .and_then(|e| e.variables())
                    .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                role: role.role.clone(),
                role_policy: role.policy.clone(),
                tracing: f
                    .tracing_config()
                    .and_then(|t| t.mode())
                    .is_some_and(|m| *m == TracingMode::Active),
                log_group: f
                    .logging_config()
                    .and_then(|l| l.log_group())
                    .map(str::to_string)
                    .filter(|l| *l != default_log_group(&name)),
                description: f
                    .description()
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
                code_sha256: f.code_sha256().unwrap_or_default().to_string(),
                name,
            },
        }
    }

    async fn create(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        a: &Attrs,
        zip: &Vec<u8>,
    ) -> Result<Self::Raw, Error> {
        let role_arn = ROLE
            .role_arn(aws, cx, &a.role, a.role_policy.as_ref())
            .await?;
        let tags = common::tags(cx.stack, cx.id, &a.name);
        cx.note("creating the function");
        ROLE.retry(cx, &a.role, || async {
            let mut req = aws
                .lambda
                .create_function()
                .function_name(&a.name)
                .runtime(Runtime::from(a.runtime.as_str()))
                .handler(&a.handler)
                .role(&role_arn)
                .memory_size(api_int("memory", a.memory)?)
                .timeout(api_int("timeout", a.timeout)?)
                .code(
                    FunctionCode::builder()
                        .zip_file(Blob::new(zip.clone()))
                        .build(),
                )
                .environment(environment(a))
                .tracing_config(tracing(a))
                .logging_config(logging(a));
            if let Some(d) = &a.description {
                req = req.description(d);
            }
            for (k, v) in &tags {
                req = req.tags(k, v);
            }
            req.send().await.map_err(Error::from)
        })
        .await?;
        let f = wait_ready(aws, cx, &a.name, "the function to become Active").await?;
        // The role is the one just set up: no need to read its policy back.
        let role = ExecRole {
            role: a.role.clone(),
            policy: a.role_policy.clone(),
        };
        Ok((f, role))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        zip: &Vec<u8>,
        changed: Changed<'_>,
    ) -> Result<Option<Self::Raw>, Error> {
        let old = attrs_of::<Self>(live)?;
        const CONFIG: &[&str] = &[
            "runtime",
            "handler",
            "memory",
            "timeout",
            "environment",
            "role",
            "tracing",
            "log_group",
            "description",
        ];
        let config_changes = changed.any(CONFIG);
        // The role first: new permissions must be in place before the code needing them runs.
        let role_arn =
            if a.role == AUTO && (changed.any(&["role", "role_policy"]) || config_changes) {
                ROLE.role_arn(aws, cx, &a.role, a.role_policy.as_ref())
                    .await?
            } else {
                a.role.clone()
            };
        if changed.has("code_sha256") {
            cx.note("updating the code");
            ROLE.retry(cx, &a.role, || async {
                aws.lambda
                    .update_function_code()
                    .function_name(&a.name)
                    .zip_file(Blob::new(zip.clone()))
                    .send()
                    .await
                    .map_err(Error::from)
            })
            .await?;
            wait_ready(aws, cx, &a.name, "the code update to finish").await?;
        }
        if config_changes {
            let what: Vec<&str> = CONFIG.iter().copied().filter(|f| changed.has(f)).collect();
            cx.note(format!("updating {}", what.join(", ")));
            ROLE.retry(cx, &a.role, || async {
                aws.lambda
                    .update_function_configuration()
                    .function_name(&a.name)
                    .runtime(Runtime::from(a.runtime.as_str()))
                    .handler(&a.handler)
                    .role(&role_arn)
                    .memory_size(api_int("memory", a.memory)?)
                    .timeout(api_int("timeout", a.timeout)?)
                    .environment(environment(a))
                    .tracing_config(tracing(a))
                    .logging_config(logging(a))
                    .description(a.description.clone().unwrap_or_default())
                    .send()
                    .await
                    .map_err(Error::from)
            })
            .await?;
            wait_ready(aws, cx, &a.name, "the configuration update to finish").await?;
        }
        ROLE.drop_unused_auto_role(aws, cx, &old.role, &a.role)
            .await?;
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let old = attrs_of::<Self>(live)?;
        // The role goes first: a function left without it is found and deleted by the next
        // run, whereas a role left behind by its function would be an orphan.
        if old.role == AUTO {
            iam::delete_auto_role(aws, cx.stack, cx.id).await?;
        }
        match aws
            .lambda
            .delete_function()
            .function_name(&old.name)
            .send()
            .await
            .map_err(Error::from)
        {
            Err(e) if e.is_code(&["ResourceNotFoundException"]) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

fn environment(a: &Attrs) -> Environment {
    Environment::builder()
        .set_variables(Some(
            a.environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ))
        .build()
}

fn tracing(a: &Attrs) -> TracingConfig {
    TracingConfig::builder()
        .mode(if a.tracing {
            TracingMode::Active
        } else {
            TracingMode::PassThrough
        })
        .build()
}

fn logging(a: &Attrs) -> LoggingConfig {
    LoggingConfig::builder()
        .log_format(LogFormat::Text)
        .log_group(
            a.log_group
                .clone()
                .unwrap_or_else(|| default_log_group(&a.name)),
        )
        .build()
}

/// Waits until the function is Active and no update is in progress; its configuration then.
async fn wait_ready(
    aws: &Aws,
    cx: &OpCx<'_>,
    name: &str,
    what: &str,
) -> Result<FunctionConfiguration, Error> {
    common::wait_for(cx, what, Duration::from_secs(300), || async {
        let Some(c) = get_configuration(aws, name).await? else {
            return Err(Error::Aws {
                operation: "GetFunctionConfiguration".into(),
                code: Some("ResourceNotFoundException".into()),
                message: format!("function `{name}` disappeared"),
            });
        };
        match c.state() {
            Some(State::Failed) => {
                return Err(Error::Aws {
                    operation: "CreateFunction".into(),
                    code: c.state_reason_code().map(|r| r.as_str().to_string()),
                    message: format!(
                        "the function is Failed: {}",
                        c.state_reason().unwrap_or("no reason given")
                    ),
                })
            }
            Some(State::Active) | None => {}
            Some(_) => return Ok(None),
        }
        match c.last_update_status() {
            Some(LastUpdateStatus::Failed) => Err(Error::Aws {
                operation: "UpdateFunction".into(),
                code: c
                    .last_update_status_reason_code()
                    .map(|r| r.as_str().to_string()),
                message: format!(
                    "the update failed: {}",
                    c.last_update_status_reason().unwrap_or("no reason given")
                ),
            }),
            Some(LastUpdateStatus::InProgress) => Ok(None),
            _ => Ok(Some(c)),
        }
    })
    .await
}

async fn get_configuration(aws: &Aws, name: &str) -> Result<Option<FunctionConfiguration>, Error> {
    match aws
        .lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .map_err(Error::from)
    {
        Ok(o) => Ok(Some(
            FunctionConfiguration::builder()
                .set_function_name(o.function_name().map(str::to_string))
                .set_function_arn(o.function_arn().map(str::to_string))
                .set_runtime(o.runtime().cloned())
                .set_role(o.role().map(str::to_string))
                .set_handler(o.handler().map(str::to_string))
                .set_description(o.description().map(str::to_string))
                .set_timeout(o.timeout())
                .set_memory_size(o.memory_size())
                .set_code_sha256(o.code_sha256().map(str::to_string))
                .set_environment(o.environment().cloned())
                .set_tracing_config(o.tracing_config().cloned())
                .set_logging_config(o.logging_config().cloned())
                .set_state(o.state().cloned())
                .set_state_reason(o.state_reason().map(str::to_string))
                .set_state_reason_code(o.state_reason_code().cloned())
                .set_last_update_status(o.last_update_status().cloned())
                .set_last_update_status_reason(o.last_update_status_reason().map(str::to_string))
                .set_last_update_status_reason_code(o.last_update_status_reason_code().cloned())
                .build(),
        )),
        Err(e) if e.is_code(&["ResourceNotFoundException"]) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The function's tags, or `None` when it is gone.
async fn list_tags(aws: &Aws, arn: &str) -> Result<Option<BTreeMap<String, String>>, Error> {
    match aws
        .lambda
        .list_tags()
        .resource(arn)
        .send()
        .await
        .map_err(Error::from)
    {
        Ok(o) => Ok(Some(
            o.tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        )),
        Err(e) if e.is_code(&["ResourceNotFoundException"]) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blueprint::{self, LoadError, Severity, SourceFile};
    use crate::resources::typed::Typed;
    use crate::resources::{Kind, TEST_REGION};

    const K: Typed<LambdaFunction> = Typed(LambdaFunction);

    /// The desired attributes of function `id` of stack `shop`, with its code in `dir`.
    fn attrs(id: &str, config: &Json, dir: &Path) -> Result<Json, String> {
        K.desired_in("shop", TEST_REGION, id, config, dir)
            .map(|d| d.attrs)
    }

    fn problems(resources: &str) -> Vec<(Severity, String, String)> {
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
            .map(|p| (p.severity, p.path.unwrap_or_default(), p.message))
            .collect()
    }

    #[test]
    fn secrets_in_the_environment_are_warned_about() {
        let p = problems("  f:\n    type: lambda_function\n    code: fn\n    runtime: python3.12\n    handler: h.h\n    environment:\n      STRIPE_API_KEY: sk_live_abcdef\n      API_KEY_PARAMETER: /shop/stripe\n      ID: AKIAIOSFODNN7EXAMPLE\n      LIMIT: 5\n");
        let warned: Vec<&str> = p
            .iter()
            .filter(|(s, _, m)| *s == Severity::Warning && m.contains("CKV_AWS_45"))
            .map(|(_, at, _)| at.as_str())
            .collect();
        assert_eq!(
            warned,
            [
                "resources.f.environment.STRIPE_API_KEY",
                "resources.f.environment.ID"
            ],
            "{p:?}"
        );
        assert!(!p.iter().any(|(_, _, m)| m.contains("sk_live")), "{p:?}");
    }

    fn code_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("fn/lib")).unwrap();
        std::fs::create_dir_all(d.path().join("fn/__pycache__")).unwrap();
        std::fs::write(
            d.path().join("fn/handler.py"),
            "def handler(e, c):\n    return e\n",
        )
        .unwrap();
        std::fs::write(d.path().join("fn/lib/util.py"), "X = 1\n").unwrap();
        std::fs::write(
            d.path().join("fn/__pycache__/handler.cpython-312.pyc"),
            "junk",
        )
        .unwrap();
        d
    }

    fn config() -> Json {
        json!({"code": "fn", "runtime": "python3.12", "handler": "handler.handler"})
    }

    #[test]
    fn zips_are_deterministic() {
        let d = code_dir();
        let a = zip_code(d.path(), "fn").unwrap();
        // Touching files (new mtimes) and adding caches changes nothing.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(d.path().join("fn/lib/util.py"), "X = 1\n").unwrap();
        std::fs::write(d.path().join("fn/handler.pyc"), "junk").unwrap();
        let b = zip_code(d.path(), "fn").unwrap();
        assert_eq!(a, b);
        let names: Vec<String> = code_files(d.path(), "fn")
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, vec!["handler.py", "lib/util.py"]);
        // An edit changes the hash.
        std::fs::write(d.path().join("fn/lib/util.py"), "X = 2\n").unwrap();
        let c = zip_code(d.path(), "fn").unwrap();
        assert_ne!(code_sha256(&a), code_sha256(&c));
        // A single file is zipped at the root.
        let single = zip_code(d.path(), "fn/handler.py").unwrap();
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(single)).unwrap();
        assert_eq!(z.len(), 1);
        assert_eq!(z.by_index(0).unwrap().name(), "handler.py");
    }

    #[test]
    fn desired_hashes_the_code_and_derives_the_role() {
        let d = code_dir();
        let mut c = config();
        c["environment"] = json!({
            "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/shop-payments",
            "BUS": "arn:aws:events:eu-west-1:123456789012:event-bus/shop-bus",
            "LIMIT": 5,
        });
        c["log_group"] = json!("arn:aws:logs:eu-west-1:123456789012:log-group:/securecart/shop/fn");
        let desired = K
            .desired_in("shop", TEST_REGION, "pay", &c, d.path())
            .unwrap();
        let a = desired.attrs;
        assert_eq!(a["name"], "shop-pay");
        assert_eq!(a["role"], "auto");
        assert_eq!(a["environment"]["LIMIT"], "5");
        assert_eq!(a["log_group"], "/securecart/shop/fn");
        assert_eq!(a["code_sha256"].as_str().unwrap().len(), 44);
        // The zip travels with the plan to create and update, matching the hash.
        let zip = desired.payload.get::<Vec<u8>>().expect("the zip");
        assert_eq!(a["code_sha256"], code_sha256(zip));
        assert_eq!(zip, &zip_code(d.path(), "fn").unwrap());
        let policy = a["role_policy"].to_string();
        for want in [
            "sqs:SendMessage",
            "arn:aws:sqs:eu-west-1:123456789012:shop-payments",
            "events:PutEvents",
            "xray:PutTraceSegments",
            "arn:aws:logs:eu-west-1:123456789012:log-group:/securecart/shop/fn:*",
        ] {
            assert!(policy.contains(want), "{want} not in {policy}");
        }
        assert!(!policy.contains("\"sqs:*\"") && !policy.contains("\"Action\":\"*\""));
        // An explicit role has no derived policy.
        c["role"] = json!("arn:aws:iam::123456789012:role/x");
        let b = attrs("pay", &c, d.path()).unwrap();
        assert_eq!(b["role_policy"], Json::Null);
        // Values known only after apply make the policy unknown too.
        c["role"] = json!("auto");
        c["environment"]["QUEUE_URL"] = json!(UNKNOWN);
        let u = attrs("pay", &c, d.path()).unwrap();
        assert_eq!(u["role_policy"], UNKNOWN);
    }

    #[test]
    fn missing_code_and_handlers_are_plan_errors() {
        let d = code_dir();
        let mut c = config();
        c["code"] = json!("nope");
        assert!(attrs("f", &c, d.path())
            .unwrap_err()
            .contains("cannot read"));
        let mut c = config();
        c["handler"] = json!("app.handler");
        let e = attrs("f", &c, d.path()).unwrap_err();
        assert!(e.contains("needs `app.py`"), "{e}");
        c["handler"] = json!("lib.util.main");
        assert!(attrs("f", &c, d.path()).is_ok());
    }

    #[test]
    fn read_shape_matches_desired() {
        let d = code_dir();
        let mut c = config();
        c["environment"] = json!({"A": "1"});
        c["log_group"] = json!("/securecart/shop/fn");
        c["role"] = json!("arn:aws:iam::1:role/r");
        let want = attrs("f", &c, d.path()).unwrap();
        let f = FunctionConfiguration::builder()
            .function_name("shop-f")
            .function_arn("arn:aws:lambda:us-east-1:1:function:shop-f")
            .runtime(Runtime::Python312)
            .role("arn:aws:iam::1:role/r")
            .handler("handler.handler")
            .memory_size(128)
            .timeout(3)
            .code_sha256(want["code_sha256"].as_str().unwrap())
            .environment(
                aws_sdk_lambda::types::EnvironmentResponse::builder()
                    .variables("A", "1")
                    .build(),
            )
            .tracing_config(
                aws_sdk_lambda::types::TracingConfigResponse::builder()
                    .mode(TracingMode::Active)
                    .build(),
            )
            .logging_config(
                LoggingConfig::builder()
                    .log_group("/securecart/shop/fn")
                    .log_format(LogFormat::Text)
                    .build(),
            )
            .build();
        let role = ExecRole::of("arn:aws:iam::1:role/r", "shop", TEST_REGION, None);
        let o = LambdaFunction.observe(&(f, role));
        assert_eq!(serde_json::to_value(&o.attrs).unwrap(), want);
        assert_eq!(o.physical_id, "arn:aws:lambda:us-east-1:1:function:shop-f");
        // The default log group reads as none, like the blueprint that leaves it out.
        let g = FunctionConfiguration::builder()
            .function_name("shop-f")
            .logging_config(
                LoggingConfig::builder()
                    .log_group("/aws/lambda/shop-f")
                    .build(),
            )
            .role("arn:aws:iam::1:role/securecart/shop/us-east-1/auto/shop-f-role-us-east-1")
            .build();
        let role = ExecRole::of(
            "arn:aws:iam::1:role/securecart/shop/us-east-1/auto/shop-f-role-us-east-1",
            "shop",
            TEST_REGION,
            Some(json!({"Version": "2012-10-17"})),
        );
        let a = LambdaFunction.observe(&(g, role)).attrs;
        assert_eq!(a.log_group, None);
        assert_eq!(a.role, "auto");
        assert_eq!(a.role_policy, Some(json!({"Version": "2012-10-17"})));
    }

    #[test]
    fn role_errors_are_told_apart() {
        // The messages exactly as Lambda sends them.
        let aws = |code: &str, message: &str| Error::Aws {
            operation: "CreateFunction".into(),
            code: Some(code.into()),
            message: format!("{code}: {message}"),
        };
        let assume = aws(
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda.",
        );
        let xray = aws(
            "InvalidParameterValueException",
            "The provided execution role does not have permissions to call PutTraceSegments on XRAY",
        );
        assert!(ROLE.not_ready(&assume, true));
        assert!(ROLE.not_ready(&assume, false));
        // X-Ray permissions propagate on a role securecart just granted them to; a role from
        // outside the stack without them fails at once.
        assert!(ROLE.not_ready(&xray, true));
        assert!(!ROLE.not_ready(&xray, false));
        assert!(ROLE.not_ready(
            &aws("ResourceConflictException", "An update is in progress"),
            false
        ));
        assert!(!ROLE.not_ready(
            &aws("InvalidParameterValueException", "Unsupported runtime"),
            true
        ));
        // The error that ends the wait says what the role lacks.
        let hinted = common::with_hint(xray, XRAY_HINT).to_string();
        assert!(hinted.contains("PutTraceSegments on XRAY"), "{hinted}");
        assert!(hinted.contains("AWSXRayDaemonWriteAccess"), "{hinted}");
    }

    #[test]
    fn own_roles_with_tracing_are_warned_about_unless_they_grant_xray() {
        let p = problems(concat!(
            "  bare: {type: iam_role, service: lambda.amazonaws.com}\n",
            "  managed: {type: iam_role, service: lambda.amazonaws.com,\n",
            "    managed_policies: [arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess]}\n",
            "  inline: {type: iam_role, service: lambda.amazonaws.com, policies: {xray: {Statement:\n",
            "    [{Effect: Allow, Action: ['xray:Put*'], Resource: '*'}]}}}\n",
            "  half: {type: iam_role, service: lambda.amazonaws.com, policies: {xray: {Statement:\n",
            "    [{Effect: Allow, Action: xray:PutTraceSegments, Resource: '*'}]}}}\n",
            "  a: {type: lambda_function, code: fn, runtime: python3.12, handler: h.h, role: '${bare.arn}'}\n",
            "  b: {type: lambda_function, code: fn, runtime: python3.12, handler: h.h, role: '${managed.arn}'}\n",
            "  c: {type: lambda_function, code: fn, runtime: python3.12, handler: h.h, role: '${inline.arn}'}\n",
            "  d: {type: lambda_function, code: fn, runtime: python3.12, handler: h.h, role: '${half.arn}'}\n",
            "  e: {type: lambda_function, code: fn, runtime: python3.12, handler: h.h, role: 'arn:aws:iam::1:role/x'}\n",
            "  f: {type: lambda_function, code: fn, runtime: python3.12, handler: h.h, role: '${bare.arn}', tracing: false}\n",
            "  g: {type: lambda_function, code: fn, runtime: python3.12, handler: h.h}\n",
        ));
        let xray_warning = |id: &str| {
            p.iter().find(|(_, q, m)| {
                q == &format!("resources.{id}.role") && m.contains("xray:PutTraceSegments")
            })
        };
        let a = xray_warning("a").unwrap_or_else(|| panic!("{p:?}"));
        assert_eq!(a.0, Severity::Warning);
        assert!(xray_warning("b").is_none(), "{p:?}");
        assert!(xray_warning("c").is_none(), "{p:?}");
        assert!(xray_warning("d").is_some(), "{p:?}");
        assert!(xray_warning("e").is_some(), "{p:?}");
        assert!(xray_warning("f").is_none(), "{p:?}");
        assert!(xray_warning("g").is_none(), "{p:?}");
    }

    #[test]
    fn checks_fields() {
        let p = problems(concat!(
            "  q: {type: sqs_queue}\n",
            "  r: {type: iam_role, service: states.amazonaws.com}\n",
            "  f:\n    type: lambda_function\n    code: fn\n    runtime: python3.21\n    handler: handler\n",
            "    memory: 64\n    timeout: 901\n    tracing: false\n    role: '${r.arn}'\n",
            "    environment: {AWS_REGION: x, 1BAD: y, OK: [1]}\n    log_group: '${q.url}'\n",
            "  g: {type: lambda_function, code: fn, runtime: python3.12, handler: h.h, role: admin}\n",
            "  h: {type: lambda_function, code: fn, runtime: python3.12, handler: h.h, role: '${q.arn}'}\n",
        ));
        let at = |path: &str| {
            p.iter()
                .filter(|(_, q, _)| q == path)
                .map(|(_, _, m)| m.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        assert!(
            at("resources.f.runtime").contains("unknown runtime"),
            "{p:?}"
        );
        assert!(
            at("resources.f.handler").contains("module.function"),
            "{p:?}"
        );
        assert!(at("resources.f.memory").contains("128 to 10240"), "{p:?}");
        assert!(at("resources.f.timeout").contains("1 to 900"), "{p:?}");
        assert!(at("resources.f.tracing").contains("CKV_AWS_50"), "{p:?}");
        assert!(
            at("resources.f.role").contains("cannot be assumed by lambda.amazonaws.com"),
            "{p:?}"
        );
        assert!(
            at("resources.f.environment.AWS_REGION").contains("sets"),
            "{p:?}"
        );
        assert!(
            at("resources.f.environment.1BAD").contains("not a valid variable name"),
            "{p:?}"
        );
        assert!(
            at("resources.f.environment.OK").contains("string, number or boolean"),
            "{p:?}"
        );
        assert!(
            at("resources.f.log_group").contains("not a log_group"),
            "{p:?}"
        );
        assert!(at("resources.g.role").contains("not a role ARN"), "{p:?}");
        assert!(at("resources.h.role").contains("not an iam_role"), "{p:?}");
        let tracing = p
            .iter()
            .find(|(_, q, _)| q == "resources.f.tracing")
            .unwrap();
        assert_eq!(tracing.0, Severity::Warning);
    }

    #[test]
    fn valid_function_has_no_problems() {
        let p = problems(concat!(
            "  q: {type: sqs_queue}\n  logs: {type: log_group}\n",
            "  f:\n    type: lambda_function\n    code: functions/f\n    runtime: python3.12\n    handler: handler.handler\n",
            "    environment: {QUEUE_URL: '${q.url}', LIMIT: 5}\n    log_group: '${logs.arn}'\n",
        ));
        assert!(p.is_empty(), "{p:?}");
    }
}
