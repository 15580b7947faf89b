//! labs/01 end to end on the emulator: apply the order workflow, run each sample order
//! (good, transient payment failure, declined payment, invalid order), start a run by
//! publishing an `OrderPlaced` event, edit one function's source (plan shows an update of
//! that function only), and destroy — checked with direct SDK calls, not securecart's own
//! reading code.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::common::*;

/// Copies the lab folder (blueprint, functions, orders) so the test can edit it.
fn copy_lab() -> (tempfile::TempDir, std::path::PathBuf) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read lab") {
            let e = e.expect("entry");
            let name = e.file_name();
            if name == "__pycache__" {
                continue;
            }
            let (src, dst) = (e.path(), to.join(&name));
            if src.is_dir() {
                copy(&src, &dst);
            } else {
                std::fs::copy(&src, &dst).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = dir.path().join("01");
    copy(&repo().join("labs/01"), &lab);
    (dir, lab)
}

/// `securecart run` of one sample order: (exit code, the execution).
fn run_order(lab: &str, order: &str, stack: &str) -> (i32, Json) {
    let input = repo().join("labs/01/orders").join(order);
    let (code, out, err) = run_json(
        &["run", lab, "--input", input.to_str().expect("utf-8 path")],
        stack,
    );
    assert!(
        out.get("execution").is_some(),
        "run {order} gave no execution: {out:#}\n{err}"
    );
    (code, out["execution"].clone())
}

/// (state, outcome, attempts) of each state the execution went through.
fn path(execution: &Json) -> Vec<(String, String, u64)> {
    execution["states"]
        .as_array()
        .expect("states")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["outcome"].as_str().unwrap_or_default().to_string(),
                s["attempts"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn state<'a>(p: &'a [(String, String, u64)], name: &str) -> &'a (String, String, u64) {
    p.iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("{name} is not on the path {p:?}"))
}

/// Message bodies on the queue `{stack}-{id}` (received and deleted), as JSON.
async fn drain(sqs: &aws_sdk_sqs::Client, stack: &str, id: &str) -> Vec<Json> {
    let url = sqs
        .get_queue_url()
        .queue_name(format!("{stack}-{id}"))
        .send()
        .await
        .expect("queue url")
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if got.messages().is_empty() {
            return out;
        }
        for m in got.messages() {
            out.push(serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Json::Null));
            if let Some(h) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(h)
                    .send()
                    .await
                    .expect("delete message");
            }
        }
    }
}

fn with_order<'a>(messages: &'a [Json], order_id: &str) -> Vec<&'a Json> {
    messages
        .iter()
        .filter(|m| m["order_id"] == order_id || m["detail"]["order_id"] == order_id)
        .collect()
}

/// What is left of the stack, straight from the APIs.
async fn leftovers(stack: &str) -> Vec<String> {
    let cfg = sdk().await;
    let mut left = Vec::new();
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let fns = lambda.list_functions().send().await.expect("functions");
    left.extend(
        fns.functions()
            .iter()
            .filter_map(|f| f.function_name())
            .filter(|n| n.starts_with(&format!("{stack}-")))
            .map(|n| format!("function {n}")),
    );
    let sfn = aws_sdk_sfn::Client::new(&cfg);
    let machines = sfn.list_state_machines().send().await.expect("machines");
    left.extend(
        machines
            .state_machines()
            .iter()
            .filter(|m| m.name().starts_with(&format!("{stack}-")))
            .map(|m| format!("state machine {}", m.name())),
    );
    let iam = aws_sdk_iam::Client::new(&cfg);
    let roles = iam
        .list_roles()
        .path_prefix(format!("/securecart/{stack}/"))
        .send()
        .await
        .expect("roles");
    left.extend(
        roles
            .roles()
            .iter()
            .map(|r| format!("role {}", r.role_name())),
    );
    let logs = aws_sdk_cloudwatchlogs::Client::new(&cfg);
    // The functions log to their declared group, so no /aws/lambda/… group is left either.
    for prefix in [
        format!("/securecart/{stack}/"),
        format!("/aws/lambda/{stack}-"),
    ] {
        let groups = logs
            .describe_log_groups()
            .log_group_name_prefix(prefix)
            .send()
            .await
            .expect("log groups");
        left.extend(
            groups
                .log_groups()
                .iter()
                .filter_map(|g| g.log_group_name())
                .map(|n| format!("log group {n}")),
        );
    }
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let queues = sqs
        .list_queues()
        .queue_name_prefix(format!("{stack}-"))
        .send()
        .await
        .expect("queues");
    left.extend(queues.queue_urls().iter().map(|q| format!("queue {q}")));
    let events = aws_sdk_eventbridge::Client::new(&cfg);
    let buses = events
        .list_event_buses()
        .name_prefix(format!("{stack}-"))
        .send()
        .await
        .expect("buses");
    left.extend(
        buses
            .event_buses()
            .iter()
            .filter_map(|b| b.name())
            .map(|n| format!("event bus {n}")),
    );
    let rules = events
        .list_rules()
        .name_prefix(format!("{stack}-"))
        .send()
        .await
        .expect("rules");
    left.extend(
        rules
            .rules()
            .iter()
            .filter_map(|r| r.name())
            .map(|n| format!("rule {n}")),
    );
    left
}

#[test]
fn order_workflow_lifecycle() {
    let stack = stack("flow");
    let (_dir, lab) = copy_lab();
    let lab_s = lab.to_str().expect("utf-8 path");

    let t = Instant::now();
    let (code, out, err) = run_json(&["apply", lab_s, "--yes"], &stack);
    assert_eq!(code, 0, "apply failed: {out:#}\n{err}");
    eprintln!("apply of labs/01: {:.1}s", t.elapsed().as_secs_f64());
    assert_permitted(&["apply", lab_s], &stack, &out);

    // Right after apply: nothing to do (policies, definitions and code hashes read back
    // equal), found without a mutating call.
    let (code, out, _) = run_json(&["plan", lab_s], &stack);
    assert_eq!(code, 0, "plan after apply: {:?}", changes(&out["plan"]));
    assert_eq!(mutating_calls(&out), 0);
    assert_permitted(&["plan", lab_s], &stack, &out);

    let rt = rt();
    let cfg = rt.block_on(sdk());
    let sqs = aws_sdk_sqs::Client::new(&cfg);

    // A good order: every state succeeds, the customer is told, the payment is recorded,
    // and the low stock of posters reaches the restock queue through the low_stock rule.
    let (code, ex) = run_order(lab_s, "good.json", &stack);
    assert_eq!(code, 0, "{ex:#}");
    assert_eq!(ex["status"], "SUCCEEDED");
    let p = path(&ex);
    let names: Vec<&str> = p.iter().map(|(n, _, _)| n.as_str()).collect();
    for want in [
        "ValidateOrder",
        "ProcessPayment",
        "FulfilOrder",
        "UpdateInventory",
        "NotifyCustomer",
        "ShipOrder",
    ] {
        assert!(names.contains(&want), "{want} missing from {p:?}");
        assert_eq!(state(&p, want).1, "succeeded", "{p:?}");
    }
    assert_eq!(state(&p, "ProcessPayment").2, 1);
    assert!(ex["output"]["shipment"]["tracking_number"]
        .as_str()
        .is_some_and(|t| t.starts_with("SC")));
    let customer = rt.block_on(drain(&sqs, &stack, "customer_notifications"));
    let mine = with_order(&customer, "ord-1001");
    assert_eq!(mine.len(), 1, "customer queue: {customer:?}");
    assert_eq!(mine[0]["type"], "OrderConfirmed");
    let payments = rt.block_on(drain(&sqs, &stack, "payments"));
    assert_eq!(with_order(&payments, "ord-1001").len(), 1, "{payments:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut restock = Vec::new();
    while restock.is_empty() && Instant::now() < deadline {
        restock = rt.block_on(drain(&sqs, &stack, "restock_requests"));
    }
    let low = with_order(&restock, "ord-1001");
    assert_eq!(low.len(), 1, "restock queue: {restock:?}");
    assert_eq!(low[0]["source"], "securecart.inventory");
    assert_eq!(low[0]["detail-type"], "InventoryLevelChanged");
    assert_eq!(low[0]["detail"]["sku"], "SKU-POSTER");
    assert_eq!(low[0]["detail"]["low_stock"], true);

    // A transient payment failure: retried with backoff, then it goes through.
    let (code, ex) = run_order(lab_s, "transient-payment.json", &stack);
    assert_eq!(code, 0, "{ex:#}");
    assert_eq!(ex["status"], "SUCCEEDED");
    let p = path(&ex);
    assert_eq!(
        state(&p, "ProcessPayment"),
        &("ProcessPayment".to_string(), "succeeded".to_string(), 3),
        "{p:?}"
    );
    assert_eq!(ex["output"]["payment"]["attempts"], 3);

    // A declined payment: not retried, caught, support notified, the execution fails.
    let (code, ex) = run_order(lab_s, "declined-payment.json", &stack);
    assert_eq!(code, 1);
    assert_eq!(ex["status"], "FAILED");
    assert_eq!(ex["error"], "PaymentFailed");
    let p = path(&ex);
    let pay = state(&p, "ProcessPayment");
    assert_eq!((pay.1.as_str(), pay.2), ("caught", 1), "{p:?}");
    assert_eq!(state(&p, "NotifySupport").1, "succeeded");
    assert!(!p.iter().any(|(n, _, _)| n == "ShipOrder"), "{p:?}");
    let support = rt.block_on(drain(&sqs, &stack, "support_tickets"));
    let ticket = with_order(&support, "ord-1003");
    assert_eq!(ticket.len(), 1, "support queue: {support:?}");
    assert_eq!(ticket[0]["error"], "PaymentDeclinedError");

    // An invalid order: the validation-failure path, nothing charged.
    let (code, ex) = run_order(lab_s, "invalid.json", &stack);
    assert_eq!(code, 1);
    assert_eq!(ex["status"], "FAILED");
    assert_eq!(ex["error"], "OrderRejected");
    let p = path(&ex);
    assert_eq!(
        p.iter()
            .map(|(n, o, _)| (n.as_str(), o.as_str()))
            .collect::<Vec<_>>(),
        vec![("ValidateOrder", "caught"), ("OrderRejected", "failed")]
    );

    // Publishing an OrderPlaced event starts an execution (order_placed rule → workflow).
    let machine =
        format!("arn:aws:states:us-east-1:000000000000:stateMachine:{stack}-order_workflow");
    rt.block_on(async {
        let sfn = aws_sdk_sfn::Client::new(&cfg);
        let events = aws_sdk_eventbridge::Client::new(&cfg);
        let count = |sfn: aws_sdk_sfn::Client, machine: String| async move {
            sfn.list_executions()
                .state_machine_arn(machine)
                .send()
                .await
                .expect("executions")
                .executions()
                .to_vec()
        };
        let before: Vec<String> = count(sfn.clone(), machine.clone())
            .await
            .iter()
            .map(|e| e.execution_arn().to_string())
            .collect();
        let mut order: Json = serde_json::from_str(
            &std::fs::read_to_string(repo().join("labs/01/orders/good.json")).expect("order"),
        )
        .expect("json");
        order["order_id"] = Json::String("ord-from-event".into());
        let put = events
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(format!("{stack}-shop_bus"))
                    .source("securecart.orders")
                    .detail_type("OrderPlaced")
                    .detail(order.to_string())
                    .build(),
            )
            .send()
            .await
            .expect("put events");
        assert_eq!(put.failed_entry_count(), 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        let new = loop {
            let all = count(sfn.clone(), machine.clone()).await;
            if let Some(e) = all
                .into_iter()
                .find(|e| !before.iter().any(|b| b == e.execution_arn()))
            {
                break e;
            }
            assert!(
                Instant::now() < deadline,
                "no execution started after PutEvents"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d = sfn
                .describe_execution()
                .execution_arn(new.execution_arn())
                .send()
                .await
                .expect("describe execution");
            if d.status().as_str() != "RUNNING" {
                assert_eq!(d.status().as_str(), "SUCCEEDED", "{:?}", d.error());
                let out: Json = serde_json::from_str(d.output().unwrap_or("{}")).expect("output");
                assert_eq!(out["order_id"], "ord-from-event");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the event's execution never ended"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    // Editing one function's source: plan shows an in-place code update of that
    // function only.
    let handler = lab.join("functions/ship_order/handler.py");
    let mut src = std::fs::read_to_string(&handler).expect("read handler");
    src.push_str("\n# Carrier: SecureCart Post (edited by the test)\n");
    std::fs::write(&handler, src).expect("write handler");
    let (code, out, _) = run_json(&["plan", lab_s], &stack);
    assert_eq!(code, 2);
    assert_eq!(
        changes(&out["plan"]),
        vec![("ship_order".to_string(), "update".to_string())]
    );
    let action = out["plan"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["id"] == "ship_order")
        .expect("ship_order")
        .clone();
    let attrs: Vec<&str> = action["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["attribute"].as_str())
        .collect();
    assert_eq!(attrs, vec!["code_sha256"]);
    let (code, out, err) = run_json(&["apply", lab_s, "--yes"], &stack);
    assert_eq!(code, 0, "apply of the edit failed: {out:#}\n{err}");
    let new_sha = action["changes"][0]["after"]
        .as_str()
        .expect("sha")
        .to_string();
    rt.block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&cfg);
        let c = lambda
            .get_function_configuration()
            .function_name(format!("{stack}-ship_order"))
            .send()
            .await
            .expect("function");
        assert_eq!(c.code_sha256(), Some(new_sha.as_str()));
    });
    assert_no_changes(&["plan", lab_s], &stack);

    // Destroy leaves nothing: functions, their roles, the state machine, the rules and
    // their roles, queues, the bus and the log groups.
    let (code, out, err) = run_json(&["destroy", lab_s, "--yes"], &stack);
    assert_eq!(code, 0, "destroy failed: {out:#}\n{err}");
    assert_permitted(&["destroy", lab_s], &stack, &out);
    let left = rt.block_on(leftovers(&stack));
    assert!(left.is_empty(), "left after destroy: {left:?}");
    // A second destroy finds nothing: an error unless an empty stack is expected.
    let (code, _, _) = run_json(&["destroy", lab_s, "--yes"], &stack);
    assert_eq!(code, 1, "a destroy that found nothing succeeded");
    let (code, out, _) = run_json(&["destroy", lab_s, "--yes", "--allow-empty"], &stack);
    assert_eq!(code, 0);
    assert_eq!(
        mutating_calls(&out),
        0,
        "a second destroy changed something"
    );
}

#[test]
fn invalid_definitions_are_reported_before_any_aws_call() {
    let (_dir, lab) = copy_lab();
    let bp = lab.join("blueprint.yaml");
    edit(
        &bp,
        "          Next: FulfilOrder\n",
        "          Next: FulfillOrder\n",
    );
    let out = cli()
        .args(["validate"])
        .arg(&lab)
        .output()
        .expect("run securecart");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = std::fs::read_to_string(&bp)
        .expect("read")
        .lines()
        .position(|l| l.contains("Next: FulfillOrder"))
        .expect("edited line")
        + 1;
    assert!(
        err.contains(&format!("blueprint.yaml:{line}:")),
        "the error does not point at line {line}:\n{err}"
    );
    assert!(err.contains("FulfillOrder"), "{err}");
    assert!(err.contains("did you mean `FulfilOrder`"), "{err}");
}

/// `securecart <args> --local --stack <stack>` with its line-by-line progress (what CI
/// logs show): (exit code, stdout, stderr).
fn run_lines(args: &[&str], stack: &str) -> (i32, String, String) {
    emulator();
    let out = cli()
        .args(args)
        .args(["--local", "--stack", stack])
        .output()
        .expect("run securecart");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The progress lines of step `op id` that mention `needle`.
fn noted(stdout: &str, op_id: &str, needle: &str) -> bool {
    stdout
        .lines()
        .any(|l| l.contains(&format!("{op_id}: ")) && l.contains(needle))
}

const SMALL_FLOW: &str = r#"name: small-flow
resources:
  jobs: {type: sqs_queue}
  logs: {type: log_group, retention_days: 1}
  worker:
    type: lambda_function
    code: worker
    runtime: python3.12
    handler: handler.handler
    log_group: ${logs.arn}
    environment:
      JOBS_URL: ${jobs.url}
  flow:
    type: state_machine
    logging: {log_group: '${logs.arn}', level: ALL}
    definition:
      StartAt: Work
      States:
        Work:
          Type: Task
          Resource: arn:aws:states:::lambda:invoke
          Parameters: {FunctionName: '${worker.arn}', Payload.$: $}
          End: true
  audit:
    type: state_machine
    definition:
      StartAt: Note
      States:
        Note: {Type: Pass, End: true}
"#;

/// The strict emulator answers as AWS does while IAM propagates a role's new policy and
/// while a new queue is not usable yet (on by default in every test): apply must wait
/// for exactly those answers on create and on update, say so, and converge.
#[test]
fn iam_propagation_and_new_queues_are_waited_for_on_create_and_update() {
    let stack = stack("settle");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("worker")).expect("mkdir");
    std::fs::write(
        dir.path().join("worker/handler.py"),
        "def handler(event, context):\n    return event\n",
    )
    .expect("handler");
    let bp = dir.path().join("blueprint.yaml");
    std::fs::write(&bp, SMALL_FLOW).expect("blueprint");
    let bp_s = dir.path().to_str().expect("utf-8 path");

    // Create: the automatic roles are seconds old when Lambda (tracing on) and Step
    // Functions (with and without logging) check them; the queue is read right after
    // CreateQueue.
    let (code, out, err) = run_lines(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "apply failed:\n{out}\n{err}");
    for (step, answer) in [
        ("creating worker", "PutTraceSegments on XRAY"),
        (
            "creating flow",
            "not authorized to access the Log Destination",
        ),
        (
            "creating audit",
            "Neither the global service principal states.amazonaws.com",
        ),
        ("creating jobs", "The specified queue does not exist"),
    ] {
        assert!(
            noted(&out, step, answer),
            "{step}: no wait for `{answer}`:\n{out}"
        );
    }
    let (code, plan, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 0, "plan after apply: {:?}", changes(&plan["plan"]));

    // Update: a second queue in the function's environment widens its automatic policy
    // (then UpdateFunctionConfiguration, tracing on); logging turned on for `audit` adds
    // log delivery to its policy (then UpdateStateMachine with the logging).
    let text = SMALL_FLOW
        .replace(
            "  jobs: {type: sqs_queue}\n",
            "  jobs: {type: sqs_queue}\n  done: {type: sqs_queue}\n",
        )
        .replace(
            "      JOBS_URL: ${jobs.url}\n",
            "      JOBS_URL: ${jobs.url}\n      DONE_URL: ${done.url}\n",
        )
        .replace(
            "    type: state_machine\n    definition:\n",
            "    type: state_machine\n    logging: {log_group: '${logs.arn}', level: ERROR}\n    definition:\n",
        );
    std::fs::write(&bp, text).expect("blueprint");
    let (code, out, err) = run_lines(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "apply of the change failed:\n{out}\n{err}");
    for (step, answer) in [
        ("updating worker", "PutTraceSegments on XRAY"),
        (
            "updating audit",
            "not authorized to access the Log Destination",
        ),
    ] {
        assert!(
            noted(&out, step, answer),
            "{step}: no wait for `{answer}`:\n{out}"
        );
    }
    let (code, plan, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 0, "plan after update: {:?}", changes(&plan["plan"]));

    let (code, out, err) = run_json(&["destroy", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "destroy failed: {out:#}\n{err}");
    let left = rt().block_on(leftovers(&stack));
    assert!(left.is_empty(), "left after destroy: {left:?}");
}
