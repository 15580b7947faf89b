//! `listener`: a port and protocol of an Application Load Balancer with its default
//! action: forward to a target group, or redirect HTTP to HTTPS.

use super::{LB_ARN, LISTENER_ARN, READS};
use crate::resources::access::{Access, When};
use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, Listener as AwsListener, ProtocolEnum,
    RedirectActionConfig, RedirectActionStatusCodeEnum,
};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{self as elbv2, lb_gone, listener_gone, stack_load_balancers, tag_list, Protocol};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, Error};
use crate::resources::fields::check_arn_ref;
use crate::resources::typed::{
    Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct Listener;

const DEFAULT_SSL_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";
const HTTPS_BASELINE: &str = "security baseline CKV_AWS_2 / ELB.1";

/// A listener: what a load balancer does with requests on one port.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// The load balancer: a reference like `${web_lb}` or an ARN. Changing it replaces
    /// the listener.
    load_balancer: String,
    /// `HTTP` (the default) or `HTTPS`. Changed in place.
    #[serde(default)]
    protocol: Protocol,
    /// Port; default 80 for HTTP, 443 for HTTPS. Changed in place.
    #[serde(default)]
    port: Option<i64>,
    /// The ACM (or IAM) certificate ARN of an HTTPS listener.
    #[serde(default)]
    certificate_arn: Option<String>,
    /// TLS policy of an HTTPS listener (default `ELBSecurityPolicy-TLS13-1-2-2021-06`).
    #[serde(default)]
    ssl_policy: Option<String>,
    /// Forward every request to this target group: a reference like `${web_tg}` or an ARN.
    #[serde(default)]
    forward: Option<String>,
    /// Answer every request with a permanent redirect (301) to HTTPS on port 443, keeping
    /// host, path and query. For an HTTP listener beside an HTTPS one.
    #[serde(default)]
    redirect_to_https: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DefaultAction {
    /// The target group's ARN.
    Forward(String),
    Redirect {
        protocol: String,
        port: String,
        status_code: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attrs {
    load_balancer: String,
    protocol: String,
    port: i32,
    certificate_arn: Option<String>,
    ssl_policy: Option<String>,
    default_action: DefaultAction,
}

/// Sets protocol, port, default action, certificate and TLS policy on a CreateListener or
/// ModifyListener request (two builder types with the same setters).
macro_rules! with_settings {
    ($req:expr, $a:expr) => {{
        let a: &Attrs = $a;
        $req.protocol(ProtocolEnum::from(a.protocol.as_str()))
            .port(a.port)
            .default_actions(action(&a.default_action))
            .set_certificates(certificates(a))
            .set_ssl_policy(a.ssl_policy.clone())
    }};
}

#[async_trait]
impl Resource for Listener {
    const KIND: &'static str = "listener";
    const ACCESS: &'static [&'static [Access]] = &[&[
        READS,
        Access::read(&["elasticloadbalancing:DescribeListeners"]),
        Access::change(
            &[
                "elasticloadbalancing:CreateListener",
                "elasticloadbalancing:ModifyListener",
            ],
            &[LISTENER_ARN, LB_ARN],
        ),
        Access::change(&["elasticloadbalancing:AddTags"], &[LISTENER_ARN])
            .when(When::TagOnCreate(&["CreateListener"])),
        Access::delete(&["elasticloadbalancing:DeleteListener"], &[LISTENER_ARN]),
    ]];
    const ATTRIBUTES: &'static [&'static str] = &["arn"];
    const REPLACE_ON: &'static [&'static str] = &["load_balancer"];
    // A port holds one listener: a re-run finds the one an earlier run made.
    const ADOPT: Adopt = Adopt::LookFirst;

    /// Typical time on AWS: Immediate ELB calls.
    const TYPICAL: Typical = Typical {
        create: 2,
        update: 2,
        delete: 2,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    type Raw = AwsListener;

    fn check(&self, _id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut issues = Vec::new();
        issues.extend(check_arn_ref(
            "load_balancer",
            &f.load_balancer,
            cx,
            "load_balancer",
        ));
        if let Some(tg) = &f.forward {
            issues.extend(check_arn_ref("forward", tg, cx, "target_group"));
        }
        match (&f.forward, f.redirect_to_https) {
            (None, false) => issues.push(
                Issue::new("", "the listener has no default action")
                    .help("set `forward: ${my_target_group}`, or `redirect_to_https: true`"),
            ),
            (Some(_), true) => issues.push(Issue::new(
                "redirect_to_https",
                "set either `forward` or `redirect_to_https`, not both",
            )),
            _ => {}
        }
        if let Some(p) = f.port.filter(|p| !(1..=65535).contains(p)) {
            issues.push(Issue::new(
                "port",
                format!("port {p} is out of range: 1 to 65535"),
            ));
        }
        match f.protocol {
            Protocol::Https => {
                if f.certificate_arn.is_none() {
                    issues.push(
                        Issue::new("certificate_arn", "an HTTPS listener needs a certificate")
                            .help(
                                "set `certificate_arn` to an ACM certificate ARN (`arn:PARTITION:acm:…`)",
                            ),
                    );
                }
                if f.redirect_to_https {
                    issues.push(Issue::new(
                        "redirect_to_https",
                        "an HTTPS listener redirecting to HTTPS would send clients to itself",
                    ));
                }
            }
            Protocol::Http => {
                for (field, set) in [
                    ("certificate_arn", f.certificate_arn.is_some()),
                    ("ssl_policy", f.ssl_policy.is_some()),
                ] {
                    if set {
                        issues.push(
                            Issue::new(field, format!("`{field}` applies to HTTPS listeners only"))
                                .help("set `protocol: HTTPS`, or remove it"),
                        );
                    }
                }
                if f.forward.is_some() {
                    issues.push(Issue::new("forward", http_forward_warning()).warning());
                }
            }
        }
        issues
    }

    fn desired(&self, _site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let https = f.protocol == Protocol::Https;
        let default_action = match f.forward {
            Some(tg) => DefaultAction::Forward(tg),
            None => DefaultAction::Redirect {
                protocol: "HTTPS".into(),
                port: "443".into(),
                status_code: "HTTP_301".into(),
            },
        };
        let a = Attrs {
            load_balancer: f.load_balancer,
            protocol: f.protocol.as_str().into(),
            port: common::int32("port", f.port.unwrap_or(if https { 443 } else { 80 }))?,
            certificate_arn: f.certificate_arn.filter(|_| https),
            ssl_policy: https.then(|| f.ssl_policy.unwrap_or_else(|| DEFAULT_SSL_POLICY.into())),
            default_action,
        };
        Ok((a, ()))
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        if a.protocol == "HTTP" && matches!(a.default_action, DefaultAction::Forward(_)) {
            vec![http_forward_warning()]
        } else {
            Vec::new()
        }
    }

    fn label(&self, a: &Attrs) -> String {
        format!(
            "a listener on port {} of load balancer {}",
            a.port, a.load_balancer
        )
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let lbs = stack_load_balancers(aws, stack).await?;
        // DescribeListeners takes one load balancer per call.
        let listeners: Vec<Vec<AwsListener>> = futures::stream::iter(lbs)
            .map(|(_, lb)| async move {
                match listeners_of(aws, lb.load_balancer_arn().unwrap_or_default()).await {
                    Err(e) if lb_gone(&e) => Ok(Vec::new()),
                    other => other,
                }
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        let listeners = listeners.into_iter().flatten().collect();
        elbv2::owned(aws, stack, listeners, AwsListener::listener_arn).await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let existing = listeners_of(aws, &a.load_balancer).await?;
        let Some(l) = existing.into_iter().find(|l| l.port() == Some(a.port)) else {
            return Ok(None);
        };
        Ok(Some(Found {
            owner: elbv2::owner(aws, stack, l.listener_arn().unwrap_or_default()).await?,
            raw: l,
        }))
    }

    fn observe(&self, l: &AwsListener) -> Observed<Attrs> {
        let arn = l.listener_arn().unwrap_or_default().to_string();
        let protocol = l
            .protocol()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let https = protocol == "HTTPS";
        Observed {
            outputs: vec![("arn", json!(arn))],
            physical_id: arn,
            attrs: Attrs {
                load_balancer: l.load_balancer_arn().unwrap_or_default().to_string(),
                protocol,
                port: l.port().unwrap_or_default(),
                certificate_arn: l
                    .certificates()
                    .first()
                    .and_then(|c| c.certificate_arn())
                    .map(str::to_string)
                    .filter(|_| https),
                ssl_policy: l.ssl_policy().map(str::to_string).filter(|_| https),
                default_action: read_action(l),
            },
        }
    }

    async fn create(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        a: &Attrs,
        _: &(),
    ) -> Result<AwsListener, Error> {
        let req = aws
            .elbv2
            .create_listener()
            .load_balancer_arn(&a.load_balancer);
        let mut req = with_settings!(req, a);
        for t in tag_list(cx.stack, cx.id, &format!("{}-{}", cx.stack, cx.id)) {
            req = req.tags(t);
        }
        let out = req.send().await.map_err(Error::from)?;
        out.listeners()
            .first()
            .cloned()
            .ok_or_else(|| Error::Invalid("CreateListener returned no listener".into()))
    }

    /// ModifyListener with everything: port, protocol, certificate, policy and action.
    async fn update(
        &self,
        aws: &Aws,
        _cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        _changed: Changed<'_>,
    ) -> Result<Option<AwsListener>, Error> {
        let req = aws.elbv2.modify_listener().listener_arn(&live.physical_id);
        with_settings!(req, a).send().await?;
        Ok(None)
    }

    async fn delete(&self, aws: &Aws, _cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let r = aws
            .elbv2
            .delete_listener()
            .listener_arn(&live.physical_id)
            .send()
            .await
            .map_err(Error::from);
        match r {
            Err(e) if listener_gone(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// Every listener of one load balancer (paginated).
async fn listeners_of(aws: &Aws, lb_arn: &str) -> Result<Vec<AwsListener>, Error> {
    aws.elbv2
        .describe_listeners()
        .load_balancer_arn(lb_arn)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(Error::from)
}

fn http_forward_warning() -> String {
    format!(
        "a plain HTTP listener forwards traffic unencrypted; add an HTTPS listener and use \
         `redirect_to_https: true` here — {HTTPS_BASELINE}"
    )
}

fn certificates(a: &Attrs) -> Option<Vec<Certificate>> {
    a.certificate_arn
        .as_ref()
        .map(|c| vec![Certificate::builder().certificate_arn(c).build()])
}

fn action(a: &DefaultAction) -> Action {
    match a {
        DefaultAction::Forward(tg) => Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(tg)
            .build(),
        DefaultAction::Redirect {
            protocol,
            port,
            status_code,
        } => Action::builder()
            .r#type(ActionTypeEnum::Redirect)
            .redirect_config(
                RedirectActionConfig::builder()
                    .protocol(protocol)
                    .port(port)
                    .host("#{host}")
                    .path("/#{path}")
                    .query("#{query}")
                    .status_code(RedirectActionStatusCodeEnum::from(status_code.as_str()))
                    .build(),
            )
            .build(),
    }
}

/// What a listener does by default, as the blueprint says it (other actions, such as
/// fixed responses set outside securecart, read as an empty forward and so differ).
fn read_action(l: &AwsListener) -> DefaultAction {
    let Some(a) = l.default_actions().first() else {
        return DefaultAction::Forward(String::new());
    };
    match a.r#type() {
        Some(ActionTypeEnum::Redirect) => {
            let r = a.redirect_config();
            DefaultAction::Redirect {
                protocol: r.and_then(|r| r.protocol()).unwrap_or_default().to_string(),
                port: r.and_then(|r| r.port()).unwrap_or_default().to_string(),
                status_code: r
                    .and_then(|r| r.status_code())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            }
        }
        Some(ActionTypeEnum::Forward) => {
            let tg = a.target_group_arn().map(str::to_string).or_else(|| {
                let groups = a.forward_config()?.target_groups();
                (groups.len() == 1)
                    .then(|| groups[0].target_group_arn().map(str::to_string))
                    .flatten()
            });
            DefaultAction::Forward(tg.unwrap_or_default())
        }
        _ => DefaultAction::Forward(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::Kind;

    const K: Typed<Listener> = Typed(Listener);

    fn listener(body: &str) -> Vec<String> {
        problems(&format!(
            "
name: t
resources:
  vpc:
    type: vpc
    cidr_block: 10.0.0.0/16
  tg:
    type: target_group
    vpc: ${{vpc}}
    port: 80
  lb:
    type: load_balancer
    subnets: [subnet-1, subnet-2]
  l:
    type: listener
{body}"
        ))
    }

    #[test]
    fn https_with_redirect_passes() {
        let p = listener("    load_balancer: ${lb}\n    protocol: HTTPS\n    certificate_arn: arn:aws:acm:us-east-1:1:certificate/x\n    forward: ${tg.arn}\n  r:\n    type: listener\n    load_balancer: ${lb}\n    redirect_to_https: true\n");
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn plain_http_forward_warns() {
        let p = listener("    load_balancer: ${lb}\n    forward: ${tg}\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("Warning") && p[0].contains("CKV_AWS_2 / ELB.1"),
            "{p:?}"
        );
        let d = K
            .desired(
                "dev",
                "l",
                &json!({"load_balancer": "arn:lb", "forward": "arn:tg"}),
            )
            .unwrap();
        assert!(K.warnings(&d)[0].contains("CKV_AWS_2 / ELB.1"));
        let d = K
            .desired(
                "dev",
                "l",
                &json!({"load_balancer": "arn:lb", "redirect_to_https": true}),
            )
            .unwrap();
        assert!(K.warnings(&d).is_empty());
    }

    #[test]
    fn bad_fields_are_explained() {
        let p = listener("    load_balancer: ${tg}\n    protocol: HTTPS\n    redirect_to_https: true\n    port: 70000\n");
        let all = p.join("\n");
        for want in [
            "refers to `tg` (type target_group); `load_balancer` needs a load_balancer",
            "an HTTPS listener needs a certificate",
            "would send clients to itself",
            "port 70000 is out of range",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
        let p = listener("    load_balancer: ${lb}\n    certificate_arn: arn:x\n");
        let all = p.join("\n");
        assert!(
            all.contains("no default action") && all.contains("HTTPS listeners only"),
            "{all}"
        );
    }

    #[test]
    fn read_shape_matches_desired() {
        let d = K
            .desired(
                "dev",
                "l",
                &json!({"load_balancer": "arn:lb", "redirect_to_https": true}),
            )
            .unwrap();
        let aws = AwsListener::builder()
            .listener_arn("arn:listener")
            .load_balancer_arn("arn:lb")
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(action(&DefaultAction::Redirect {
                protocol: "HTTPS".into(),
                port: "443".into(),
                status_code: "HTTP_301".into(),
            }))
            .build();
        assert_eq!(d, json!(Listener.observe(&aws).attrs));

        let d = K
            .desired("dev", "l", &json!({"load_balancer": "arn:lb", "protocol": "HTTPS", "certificate_arn": "arn:cert", "forward": "arn:tg"}))
            .unwrap();
        let aws = AwsListener::builder()
            .listener_arn("arn:listener")
            .load_balancer_arn("arn:lb")
            .protocol(ProtocolEnum::Https)
            .port(443)
            .ssl_policy(DEFAULT_SSL_POLICY)
            .certificates(Certificate::builder().certificate_arn("arn:cert").build())
            .default_actions(action(&DefaultAction::Forward("arn:tg".into())))
            .build();
        assert_eq!(d, json!(Listener.observe(&aws).attrs));
        assert_eq!(d["default_action"], json!({"forward": "arn:tg"}));
    }
}
