//! Resources that merely look like a stack's (same name prefix, a Name tag, another
//! stack's tag) are never touched: destroy leaves them, and apply refuses to adopt a
//! queue whose name is taken by something it does not own.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use super::common::*;

const SMALL: &str = "name: lookalike\nresources:\n  vpc:\n    type: vpc\n    cidr_block: 10.60.0.0/16\n  jobs:\n    type: sqs_queue\n";

#[test]
fn lookalikes_survive_destroy_and_block_adoption() {
    let stack = stack("look");
    let dir = tempfile::tempdir().expect("tempdir");
    let bp = dir.path().join("blueprint.yaml");
    std::fs::write(&bp, SMALL).expect("write");
    let bp_s = bp.to_str().expect("utf-8");
    let (code, out, err) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");

    let (vpc_id, other_vpc_id, queue_urls) = rt().block_on(async {
        let cfg = sdk().await;
        let ec2 = aws_sdk_ec2::Client::new(&cfg);
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        // Same Name tag as the stack's VPC, but no securecart tags.
        let v = ec2
            .create_vpc()
            .cidr_block("10.61.0.0/16")
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Vpc)
                    .tags(tag("Name", &format!("{stack}-vpc")))
                    .build(),
            )
            .send()
            .await
            .expect("vpc");
        // Tagged for another stack with the same resource id.
        let o = ec2
            .create_vpc()
            .cidr_block("10.62.0.0/16")
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Vpc)
                    .tags(tag("securecart:stack", &format!("{stack}-other")))
                    .tags(tag("securecart:resource", "vpc"))
                    .build(),
            )
            .send()
            .await
            .expect("vpc");
        let sqs = aws_sdk_sqs::Client::new(&cfg);
        let mut urls = Vec::new();
        for name in [format!("{stack}-jobs2"), format!("{stack}-taken")] {
            let q = sqs
                .create_queue()
                .queue_name(name)
                .send()
                .await
                .expect("queue");
            urls.push(q.queue_url().unwrap_or_default().to_string());
        }
        (
            v.vpc()
                .and_then(|v| v.vpc_id())
                .unwrap_or_default()
                .to_string(),
            o.vpc()
                .and_then(|v| v.vpc_id())
                .unwrap_or_default()
                .to_string(),
            urls,
        )
    });

    // A plan must not offer to delete the look-alikes.
    let (code, out, _) = run_json(&["plan", bp_s], &stack);
    assert_eq!(
        code,
        0,
        "look-alikes show up in the plan: {:?}",
        changes(&out["plan"])
    );

    // Apply must refuse to adopt a queue it does not own, and leave it alone.
    std::fs::write(
        &bp,
        format!("{SMALL}  taken:\n    type: sqs_queue\n    visibility_timeout: 99\n"),
    )
    .expect("write");
    let (code, out, _) = run_json(&["apply", bp_s, "--yes"], &stack);
    assert_eq!(code, 1, "adopted a queue it does not own: {out:#}");
    let text = out.to_string();
    assert!(
        text.contains("taken") && text.contains("not"),
        "unclear conflict message: {text}"
    );

    let (code, out, err) = run_json(&["destroy", "--yes"], &stack);
    assert_eq!(code, 0, "{out:#}\n{err}");

    rt().block_on(async {
        let cfg = sdk().await;
        let ec2 = aws_sdk_ec2::Client::new(&cfg);
        for id in [&vpc_id, &other_vpc_id] {
            let d = ec2
                .describe_vpcs()
                .vpc_ids(id)
                .send()
                .await
                .expect("look-alike VPC is gone");
            assert_eq!(d.vpcs().len(), 1);
        }
        let sqs = aws_sdk_sqs::Client::new(&cfg);
        for url in &queue_urls {
            // A queue made moments ago may answer "does not exist" for about a second (SQS API
            // reference, CreateQueue); one that destroy deleted keeps answering so.
            let mut tries = 0;
            let a = loop {
                match sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)
                    .send()
                    .await
                {
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_queue_does_not_exist())
                            && tries < 10 =>
                    {
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    r => break r.expect("look-alike queue is gone"),
                }
            };
            let vt = a
                .attributes()
                .and_then(|m| m.get(&aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout))
                .cloned();
            assert_eq!(
                vt.as_deref(),
                Some("30"),
                "the look-alike queue was modified"
            );
        }
        // Tidy up what the test itself made.
        for id in [&vpc_id, &other_vpc_id] {
            let _ = ec2.delete_vpc().vpc_id(id).send().await;
        }
        for url in &queue_urls {
            let _ = sqs.delete_queue().queue_url(url).send().await;
        }
    });
    super::network::assert_nothing_left(&stack);
}
