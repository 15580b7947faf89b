//! `sns_topic` on the emulator, from blueprints/notifications.yaml: a topic a killed run
//! left is brought up to date (not duplicated), a no-change plan after every apply, an
//! in-place update (display name, encryption off), a replacement when `fifo` changes,
//! look-alike topics (same name prefix; another stack's tags; a namesake the blueprint
//! wants) never touched, destroy, and an apply right after it (SNS's `StaleTag`).

use std::collections::HashMap;

use aws_sdk_sns::types::Tag;

use super::common::*;

/// Every topic of the emulator's account whose name starts with `stack`, by name, with
/// its attributes and tags.
async fn topics(stack: &str) -> HashMap<String, (HashMap<String, String>, Vec<(String, String)>)> {
    let sns = aws_sdk_sns::Client::new(&sdk().await);
    let mut out = HashMap::new();
    let arns = sns
        .list_topics()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("topics");
    for t in arns {
        let arn = t.topic_arn().unwrap_or_default();
        let name = arn.rsplit(':').next().unwrap_or_default().to_string();
        if !name.starts_with(stack) {
            continue;
        }
        let attrs = sns
            .get_topic_attributes()
            .topic_arn(arn)
            .send()
            .await
            .expect("attributes")
            .attributes()
            .cloned()
            .unwrap_or_default();
        let mut tags: Vec<(String, String)> = sns
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .expect("tags")
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        tags.sort();
        out.insert(name, (attrs, tags));
    }
    out
}

/// Makes a topic with the SDK, as someone else (or a killed run) would.
async fn make_topic(name: &str, display_name: &str, tags: &[(&str, &str)]) -> String {
    let sns = aws_sdk_sns::Client::new(&sdk().await);
    let mut req = sns
        .create_topic()
        .name(name)
        .attributes("DisplayName", display_name);
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(*k).value(*v).build().expect("tag"));
    }
    let out = req.send().await.expect("create topic");
    out.topic_arn().unwrap_or_default().to_string()
}

#[test]
fn sns_topic_lifecycle() {
    let stack = stack("sns");
    let (_dir, bp) = copy_blueprint(&repo().join("blueprints/notifications.yaml"));
    let bp_s = bp.to_str().expect("utf-8 path");
    let orders = format!("{stack}-order_events");
    let payments = format!("{stack}-payment_events.fifo");

    // What a run killed right after CreateTopic leaves: the topic with the stack's tags
    // (SNS tags it in the same call), its display name not yet what the blueprint says.
    let leftover_tags = [
        ("securecart:stack", stack.as_str()),
        ("securecart:resource", "order_events"),
        ("Name", orders.as_str()),
    ];
    let leftover = rt().block_on(make_topic(&orders, "half made", &leftover_tags));
    // Look-alikes: the stack's name prefix without tags, another stack's tags with the
    // same resource id, and the namesake of a resource the blueprint will want.
    let other_stack = format!("{stack}x");
    let lookalikes = rt().block_on(async {
        vec![
            make_topic(&format!("{stack}-stray"), "stray", &[]).await,
            make_topic(
                &format!("{stack}-order_events2"),
                "other",
                &[
                    ("securecart:stack", other_stack.as_str()),
                    ("securecart:resource", "order_events"),
                ],
            )
            .await,
            make_topic(&format!("{stack}-taken"), "not yours", &[]).await,
        ]
    });

    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2, "{out:#}");
    assert_permitted(&["plan", bp_s], &stack, &out);
    assert_eq!(
        changes(&out["plan"]),
        [
            ("order_events".to_string(), "update".to_string()),
            ("payment_events".to_string(), "create".to_string())
        ],
        "the leftover is this stack's; the look-alikes are nobody's business"
    );
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    let t = rt().block_on(topics(&stack));
    assert_permitted(&["apply", bp_s], &stack, &out);
    let (o, _) = t.get(&orders).expect("the standard topic");
    let attr = |m: &HashMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
    assert_eq!(
        attr(o, "TopicArn"),
        leftover,
        "the leftover was replaced, not adopted"
    );
    assert_eq!(attr(o, "DisplayName"), "SecureCart orders");
    assert_eq!(attr(o, "KmsMasterKeyId"), "alias/aws/sns", "{o:?}");
    let (p, tags) = t.get(&payments).expect("the FIFO topic");
    assert_eq!(attr(p, "FifoTopic"), "true", "{p:?}");
    assert_eq!(attr(p, "KmsMasterKeyId"), "alias/aws/sns", "{p:?}");
    assert!(
        tags.contains(&("securecart:resource".into(), "payment_events".into())),
        "{tags:?}"
    );
    assert_no_changes(&["plan", bp_s], &stack);

    // In place: a new display name, and encryption turned off (a plan warning).
    edit(
        &bp,
        "display_name: SecureCart orders",
        "display_name: Orders\n    kms_key: none",
    );
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2, "{out:#}");
    assert_eq!(
        changes(&out["plan"]),
        [("order_events".to_string(), "update".to_string())]
    );
    assert!(out.to_string().contains("CKV_AWS_26"), "{out:#}");
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    let t = rt().block_on(topics(&stack));
    let (o, _) = t.get(&orders).expect("the standard topic");
    assert_eq!(
        attr(o, "TopicArn"),
        leftover,
        "an in-place change replaced the topic"
    );
    assert_eq!(attr(o, "DisplayName"), "Orders");
    assert!(
        o.get("KmsMasterKeyId").is_none_or(|k| k.is_empty()),
        "{o:?}"
    );
    assert_no_changes(&["plan", bp_s], &stack);

    // `fifo` cannot change in place: the topic is replaced by `STACK-order_events.fifo`.
    edit(
        &bp,
        "display_name: Orders",
        "display_name: Orders\n    fifo: true",
    );
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(code, 2, "{out:#}");
    assert_eq!(
        changes(&out["plan"]),
        [("order_events".to_string(), "replace".to_string())]
    );
    assert!(out.to_string().contains("fifo"), "{out:#}");
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    let t = rt().block_on(topics(&stack));
    assert!(
        !t.contains_key(&orders),
        "the standard topic is still there"
    );
    let fifo = &t.get(&format!("{orders}.fifo")).expect("the FIFO topic").0;
    assert_eq!(attr(fifo, "FifoTopic"), "true");
    assert_no_changes(&["plan", bp_s], &stack);

    // A resource whose name a topic of someone else's already has: refused, untouched.
    let text = std::fs::read_to_string(&bp).expect("read");
    std::fs::write(&bp, format!("{text}\n  taken:\n    type: sns_topic\n")).expect("write");
    let (code, out, _) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 1, "adopted a topic it does not own: {out:#}");
    assert!(
        out.to_string().contains("not tagged as `taken`"),
        "unclear refusal: {out:#}"
    );
    std::fs::write(&bp, text).expect("write");

    // Destroyed, then applied again at once: SNS refuses tags on the name of a topic
    // deleted a moment ago (`StaleTag`, strict rule 6b) and the create waits it out. The
    // re-apply meets the refusal when it starts within the `sns` window (its creates then
    // take a retry's second); a slower start finds the window passed.
    let (code, out, err) = run_json(&["destroy", "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    assert_no_changes(&["plan", bp_s], &stack);
    let (code, out, err) = run_json(&["destroy", "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");
    // Destroy without the blueprint reads and deletes what the blueprint's policy allows.
    assert_permitted(&["destroy", bp_s], &stack, &out);

    let t = rt().block_on(topics(&stack));
    let mut left: Vec<&String> = t.keys().collect();
    left.sort();
    assert_eq!(
        left,
        [
            &format!("{stack}-order_events2"),
            &format!("{stack}-stray"),
            &format!("{stack}-taken")
        ],
        "destroy must delete the stack's topics and only those"
    );
    let (taken, tags) = &t[&format!("{stack}-taken")];
    assert_eq!(
        attr(taken, "DisplayName"),
        "not yours",
        "the namesake was changed"
    );
    assert!(tags.is_empty(), "the namesake was tagged: {tags:?}");
    assert_eq!(
        attr(&t[&format!("{stack}-stray")].0, "DisplayName"),
        "stray"
    );

    rt().block_on(async {
        let sns = aws_sdk_sns::Client::new(&sdk().await);
        for arn in &lookalikes {
            sns.delete_topic()
                .topic_arn(arn)
                .send()
                .await
                .expect("tidy up");
        }
    });
}
