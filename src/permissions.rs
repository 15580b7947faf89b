//! `securecart permissions`: the least-privilege IAM policy that plan, apply and destroy of a
//! blueprint need, built from what each kind declares ([`crate::resources::access`]) and
//! what every run calls besides, with the stack's names, tags and roles filled in. Pure: no
//! AWS call. The emulator does not evaluate IAM, so a test checks only that every action a
//! run calls is in the policy (`tests/it/common.rs`, `assert_permitted`), not the scoping.

use std::collections::{BTreeMap, BTreeSet};

use crate::render::policy::{PolicyDocument, Statement, Values, MANAGED_POLICY_LIMIT};
use crate::resources::access::{Access, Phase, When};
use crate::resources::Kind;

/// A command the policy is for, and the phases of actions it may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum For {
    Plan,
    Apply,
    Destroy,
}

impl For {
    pub fn name(self) -> &'static str {
        match self {
            For::Plan => "plan",
            For::Apply => "apply",
            For::Destroy => "destroy",
        }
    }

    /// `plan` only reads; `destroy` reads and deletes; `apply` creates, changes, and
    /// deletes what the blueprint dropped or replaces.
    fn phases(self) -> &'static [Phase] {
        match self {
            For::Plan => &[Phase::Read],
            For::Apply => &[Phase::Read, Phase::Change, Phase::Delete],
            For::Destroy => &[Phase::Read, Phase::Delete],
        }
    }
}

/// Where the policy applies: the stack, and the region and account when known (`*`
/// otherwise).
#[derive(Debug, Clone)]
pub struct Target {
    pub stack: String,
    pub region: Option<String>,
    pub account: Option<String>,
}

/// The reads a run makes besides its kinds' own: the region's availability zones when the
/// blueprint names zones (`${stack.zones[N]}` or a zone field). STS GetCallerIdentity
/// (`${stack.account_id}`) needs no permission: "No permissions are required to perform
/// this operation" (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html).
const ZONES: Access = Access::read(&["ec2:DescribeAvailabilityZones"]);

/// The stack lock that apply and destroy take (`crate::lock`): its object, read and
/// written with conditions; `s3:ListBucket` so that S3 answers a missing object with
/// `NoSuchKey` rather than `AccessDenied` (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html);
/// and, on the first run in an account and region, the bucket made private and encrypted.
const LOCK: &[Access] = &[
    Access::change(
        &["s3:GetObject", "s3:PutObject"],
        &["arn:{partition}:s3:::securecart-lock-{account}-{region}/stacks/{stack}.json"],
    ),
    Access::change(
        &[
            "s3:ListBucket",
            "s3:CreateBucket",
            "s3:PutBucketPublicAccessBlock",
            "s3:PutEncryptionConfiguration",
        ],
        &["arn:{partition}:s3:::securecart-lock-{account}-{region}"],
    ),
];

/// What the policy is made of: the blueprint's kinds, and the kinds a run reads.
pub struct Request<'a> {
    pub target: &'a Target,
    pub commands: &'a [For],
    /// The kinds whose resources the stack may hold: the blueprint's, plus any named with
    /// `--kind` (resources of a kind dropped from the blueprint still need deleting).
    pub kinds: &'a [&'static dyn Kind],
    /// The kinds every run reads (today: every kind securecart knows, see
    /// `commands::read_live`).
    pub read_kinds: &'a [&'static dyn Kind],
    /// Whether the blueprint names zones.
    pub zones: bool,
}

/// The declarations a request needs, in a stable order.
pub fn entries(req: &Request) -> Vec<Access> {
    let phases: BTreeSet<Phase> = req
        .commands
        .iter()
        .flat_map(|c| c.phases().iter().copied())
        .collect();
    let mut out = Vec::new();
    for k in req.kinds {
        for a in k.access().iter().flat_map(|g| g.iter()) {
            if phases.contains(&a.phase) {
                out.push(*a);
            }
        }
    }
    for k in req.read_kinds {
        for a in k.access().iter().flat_map(|g| g.iter()) {
            if a.phase == Phase::Read {
                out.push(*a);
            }
        }
    }
    if req.zones {
        out.push(ZONES);
    }
    if req.commands.iter().any(|c| *c != For::Plan) {
        out.extend(LOCK);
    }
    out
}

/// The partition of a region's ARNs (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html),
/// as the SDK resolves it (`crate::partition`).
pub fn partition(region: &str) -> &'static str {
    crate::partition::of(region).id
}

/// `STACK-` within names of at most `max` characters: what `common::physical_name` keeps of
/// `STACK-ID` before a hash when the name is too long (8 hex digits and a hyphen).
fn name_prefix(stack: &str, max: usize) -> String {
    let p = format!("{stack}-");
    let keep = max.saturating_sub(9);
    // Stack names are ASCII letters, digits and hyphens: byte positions are characters.
    let mut p = p[..p.len().min(keep)].to_string();
    // ELB and RDS names never hold two hyphens in a row.
    while p.contains("--") {
        p = p.replace("--", "-");
    }
    p
}

/// The prefix of the stack's load balancer and target group names (`elbv2::elb_name`).
fn elb_prefix(stack: &str) -> String {
    let p = name_prefix(stack, 32);
    if p.to_ascii_lowercase().starts_with("internal-") {
        // AWS reserves the prefix; such names start with `sc-` instead.
        "sc-".into()
    } else {
        p
    }
}

/// The prefix of the stack's RDS identifiers (`rds::rds_name`): lower case, and starting
/// with a letter.
fn rds_prefix(stack: &str) -> String {
    let s = stack.to_ascii_lowercase();
    let s = if s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s
    } else {
        format!("db-{s}")
    };
    name_prefix(&s, 63)
}

impl Target {
    fn region(&self) -> &str {
        self.region.as_deref().unwrap_or("*")
    }

    fn account(&self) -> &str {
        self.account.as_deref().unwrap_or("*")
    }

    fn partition(&self) -> &'static str {
        partition(self.region.as_deref().unwrap_or(""))
    }

    /// An ARN template of a declaration with the stack's values in place.
    pub fn expand(&self, template: &str) -> String {
        template
            .replace("{partition}", self.partition())
            .replace("{region}", self.region())
            .replace("{account}", self.account())
            .replace("{elb}", &elb_prefix(&self.stack))
            .replace("{rds}", &rds_prefix(&self.stack))
            .replace("{name}", &format!("{}-", self.stack))
            .replace("{stack}", &self.stack)
    }
}

/// A condition as the statement writes it.
type Condition = BTreeMap<&'static str, BTreeMap<String, Values>>;

/// Tagging only within these creates, under the service's own condition key.
fn tag_on_create(actions: &[&str], creates: &[&str]) -> Condition {
    let service = actions
        .first()
        .and_then(|a| a.split_once(':'))
        .map(|(s, _)| s)
        .unwrap_or("ec2");
    let values = match creates {
        [one] => Values::One(one.to_string()),
        many => Values::Any(many.iter().map(|s| s.to_string()).collect()),
    };
    BTreeMap::from([(
        "StringEquals",
        BTreeMap::from([(format!("{service}:CreateAction"), values)]),
    )])
}

fn condition(when: &When, actions: &[&str], t: &Target) -> Condition {
    let one = |op: &'static str, key: String, v: Values| {
        BTreeMap::from([(op, BTreeMap::from([(key, v)]))])
    };
    let list = |v: &[&str]| match v {
        [one] => Values::One(one.to_string()),
        many => Values::Any(many.iter().map(|s| s.to_string()).collect()),
    };
    let tag = crate::resources::TAG_STACK;
    match when {
        When::Always => Condition::new(),
        When::RequestTagged => one(
            "StringEquals",
            format!("aws:RequestTag/{tag}"),
            Values::One(t.stack.clone()),
        ),
        When::ResourceTagged => one(
            "StringEquals",
            format!("aws:ResourceTag/{tag}"),
            Values::One(t.stack.clone()),
        ),
        When::TagOnCreate(creates) => tag_on_create(actions, creates),
        When::PassedTo(services) => {
            one("StringEquals", "iam:PassedToService".into(), list(services))
        }
        When::ServiceLinked(service) => one(
            "StringEquals",
            "iam:AWSServiceName".into(),
            Values::One(service.to_string()),
        ),
        When::FromLaunchTemplate => one(
            "ArnLike",
            "ec2:LaunchTemplate".into(),
            Values::One(t.expand("arn:{partition}:ec2:{region}:{account}:launch-template/*")),
        ),
        When::ViaService(service) => one(
            if t.region.is_some() {
                "StringEquals"
            } else {
                "StringLike"
            },
            "kms:ViaService".into(),
            Values::One(format!("{service}.{}.amazonaws.com", t.region())),
        ),
    }
}

/// The statements of `entries` for `t`, as few as keep the policy as narrow as declared:
/// entries with the same condition and resources share a statement, statements with the
/// same actions and condition share one with their resources together, and where adding
/// resources to a statement cannot widen what its actions may do, entries share one
/// statement whatever their resources:
/// - reads of the stack's resources (an action never applies to another type's ARN);
/// - actions on resources tagged with the stack, and tags on the stack's creates (each
///   resource they touch must carry the stack's tag or be made by one of them);
/// - tagged creates, except CreateVpc: a VPC is also a resource of the creates inside it
///   (CreateSubnet, …), which would then be allowed in any VPC, since the request's tags
///   are in the context of every resource of the call.
///
/// Actions and resources are sorted, so the policy is stable.
pub fn statements(entries: &[Access], t: &Target) -> Vec<Statement> {
    struct Group {
        when: When,
        actions: BTreeSet<String>,
        resources: BTreeSet<String>,
        creates: BTreeSet<&'static str>,
    }
    // (resources unless merged, condition class) → group
    let mut by_scope: BTreeMap<(Vec<String>, String), Group> = BTreeMap::new();
    for e in entries {
        if e.actions.is_empty() {
            continue;
        }
        let mut resources: Vec<String> = e.on.iter().map(|r| t.expand(r)).collect();
        resources.sort();
        resources.dedup();
        if resources.iter().any(|r| r == "*") {
            resources = vec!["*".into()];
        }
        let merge = match e.when {
            When::ResourceTagged | When::TagOnCreate(_) => true,
            When::RequestTagged => !resources.iter().any(|r| r.contains(":vpc/")),
            When::Always => resources != ["*"] && e.actions.iter().all(|a| is_read(a)),
            _ => false,
        };
        let class = match e.when {
            // Tags on create share a statement per service: their conditions merge.
            When::TagOnCreate(_) => format!("tag-on-create {}", e.actions.join(",")),
            w => serde_json::to_string(&condition(&w, e.actions, t)).unwrap_or_default(),
        };
        let key = (if merge { Vec::new() } else { resources.clone() }, class);
        let g = by_scope.entry(key).or_insert_with(|| Group {
            when: e.when,
            actions: BTreeSet::new(),
            resources: BTreeSet::new(),
            creates: BTreeSet::new(),
        });
        g.actions.extend(e.actions.iter().map(|a| a.to_string()));
        g.resources.extend(resources);
        if let When::TagOnCreate(c) = e.when {
            g.creates.extend(c.iter().copied());
        }
    }
    // (actions, condition) → resources
    let mut by_actions: BTreeMap<(Vec<String>, String), (Condition, BTreeSet<String>)> =
        BTreeMap::new();
    for g in by_scope.into_values() {
        let actions: Vec<String> = g.actions.into_iter().collect();
        let acts: Vec<&str> = actions.iter().map(String::as_str).collect();
        let creates: Vec<&str> = g.creates.into_iter().collect();
        let cond = match g.when {
            When::TagOnCreate(_) => tag_on_create(&acts, &creates),
            w => condition(&w, &acts, t),
        };
        let cond_key = serde_json::to_string(&cond).unwrap_or_default();
        by_actions
            .entry((actions, cond_key))
            .or_insert_with(|| (cond, BTreeSet::new()))
            .1
            .extend(g.resources);
    }
    let mut out: Vec<Statement> = by_actions
        .into_iter()
        .map(|((action, _), (condition, resources))| {
            let resource: Vec<String> = if resources.contains("*") {
                vec!["*".into()]
            } else {
                resources.into_iter().collect()
            };
            Statement {
                sid: String::new(),
                effect: "Allow",
                action,
                resource,
                condition,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (service_of(a), a.condition.is_empty(), &a.action).cmp(&(
            service_of(b),
            b.condition.is_empty(),
            &b.action,
        ))
    });
    name_statements(&mut out);
    out
}

/// The service prefix of a statement's first action.
fn service_of(s: &Statement) -> &str {
    s.action
        .first()
        .and_then(|a| a.split_once(':'))
        .map(|(p, _)| p)
        .unwrap_or("")
}

/// Sids say what a statement is for (`Ec2ReadAll`, `IamPassRole`), numbered when two
/// would share one. IAM allows letters and digits only.
fn name_statements(statements: &mut [Statement]) {
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    for s in statements.iter_mut() {
        let services: BTreeSet<&str> = s
            .action
            .iter()
            .filter_map(|a| a.split_once(':').map(|(p, _)| p))
            .collect();
        let one_service = if services.len() == 1 {
            service_of(s)
        } else {
            ""
        };
        let service: String = one_service
            .split(|c: char| !c.is_ascii_alphanumeric())
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        let keys: Vec<&str> = s
            .condition
            .values()
            .flat_map(|m| m.keys().map(String::as_str))
            .collect();
        let purpose = match keys.first().copied() {
            None if s.resource == ["*"] => {
                if s.action.iter().all(|a| is_read(a)) {
                    "Read"
                } else {
                    "AnyResource"
                }
            }
            None if s.action.iter().all(|a| is_read(a)) => "ReadStack",
            None => "Stack",
            Some(k) if k.starts_with("aws:RequestTag") => "CreateTagged",
            Some(k) if k.starts_with("aws:ResourceTag") => "StackTagged",
            Some(k) if k.ends_with(":CreateAction") => "TagOnCreate",
            Some("iam:PassedToService") => "PassRole",
            Some("iam:AWSServiceName") => "ServiceLinkedRole",
            Some("ec2:LaunchTemplate") => "LaunchFromTemplate",
            Some("kms:ViaService") => "ViaService",
            Some(_) => "Conditional",
        };
        let base = format!("{service}{purpose}");
        let n = used.entry(base.clone()).or_insert(0);
        *n += 1;
        s.sid = if *n == 1 { base } else { format!("{base}{n}") };
    }
}

fn is_read(action: &str) -> bool {
    let op = action.split_once(':').map(|(_, o)| o).unwrap_or(action);
    !crate::aws::is_mutating(op)
}

/// The statements in as few documents as fit AWS's managed-policy limit, in order. A
/// statement that alone exceeds the limit gets a document of its own (and IAM refuses
/// it: the caller says so).
pub fn split(statements: Vec<Statement>) -> Vec<PolicyDocument> {
    let mut docs: Vec<PolicyDocument> = Vec::new();
    let mut current = PolicyDocument::new(Vec::new());
    for s in statements {
        current.statement.push(s);
        if current.characters() > MANAGED_POLICY_LIMIT && current.statement.len() > 1 {
            let s = current.statement.pop().expect("just pushed");
            docs.push(std::mem::replace(
                &mut current,
                PolicyDocument::new(vec![s]),
            ));
        }
    }
    if !current.statement.is_empty() || docs.is_empty() {
        docs.push(current);
    }
    docs
}

/// The IAM service prefix of an SDK service name (what `--stats` records): the SDK names
/// services by their API (`Elastic Load Balancing v2`), IAM by its prefix
/// (`elasticloadbalancing`).
pub fn iam_prefix(sdk_service: &str) -> Option<&'static str> {
    Some(match sdk_service {
        "EC2" => "ec2",
        "SQS" => "sqs",
        "SNS" => "sns",
        "EventBridge" => "events",
        "SFN" => "states",
        "Lambda" => "lambda",
        "IAM" => "iam",
        "Elastic Load Balancing v2" => "elasticloadbalancing",
        "Auto Scaling" => "autoscaling",
        "RDS" => "rds",
        "SSM" => "ssm",
        "CloudWatch Logs" => "logs",
        "STS" => "sts",
        "Resource Groups Tagging API" => "tag",
        "Secrets Manager" => "secretsmanager",
        "KMS" => "kms",
        "S3" => "s3",
        _ => return None,
    })
}

/// The IAM service prefix of an SDK crate (`aws_sdk_ec2`), for naming the action of a
/// failed call by its error type.
pub fn iam_prefix_of_crate(krate: &str) -> Option<&'static str> {
    Some(match krate {
        "aws_sdk_ec2" => "ec2",
        "aws_sdk_sqs" => "sqs",
        "aws_sdk_sns" => "sns",
        "aws_sdk_eventbridge" => "events",
        "aws_sdk_sfn" => "states",
        "aws_sdk_lambda" => "lambda",
        "aws_sdk_iam" => "iam",
        "aws_sdk_elasticloadbalancingv2" => "elasticloadbalancing",
        "aws_sdk_autoscaling" => "autoscaling",
        "aws_sdk_rds" => "rds",
        "aws_sdk_ssm" => "ssm",
        "aws_sdk_cloudwatchlogs" => "logs",
        "aws_sdk_sts" => "sts",
        "aws_sdk_resourcegroupstagging" => "tag",
        "aws_sdk_s3" => "s3",
        _ => return None,
    })
}

/// Error codes AWS answers a call the identity may not make with: IAM, STS, SQS, ELB and
/// RDS (`AccessDenied`), the JSON services (`AccessDeniedException`), EC2
/// (`UnauthorizedOperation`), SNS (`AuthorizationError`).
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html
pub const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "UnauthorizedAccess",
];

/// What to add to an access-denied message: the action and resource AWS names ("User: … is
/// not authorized to perform: ec2:CreateVpc on resource: arn:… because …"), else the
/// action of the call (`fallback`), and where the policy comes from.
pub fn access_denied_hint(message: &str, fallback: Option<&str>) -> String {
    let after = |marker: &str| {
        let i = message.find(marker)? + marker.len();
        let word = message[i..].split_whitespace().next()?;
        Some(word.trim_end_matches(['.', ',', ';']).to_string())
    };
    let action = after("not authorized to perform: ").or_else(|| fallback.map(String::from));
    let resource = after(" on resource: ");
    let what = match (&action, &resource) {
        (Some(a), Some(r)) => format!("the identity may not call `{a}` on `{r}`; "),
        (Some(a), None) => format!("the identity may not call `{a}`; "),
        _ => String::new(),
    };
    format!(
        "{what}`securecart permissions BLUEPRINT` prints the IAM policy that plan, apply and \
         destroy of the blueprint need (README, Real AWS)"
    )
}

/// Whether an IAM action pattern (`ec2:Describe*`) matches an action, as IAM compares
/// them: without regard to case, `*` any run of characters, `?` one.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    fn rec(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], a) || (!a.is_empty() && rec(p, &a[1..])),
            (Some(b'?'), Some(_)) => rec(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => rec(&p[1..], &a[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), action.as_bytes())
}

/// Whether any statement of the documents allows `action` (on some resource).
pub fn allows(docs: &[PolicyDocument], action: &str) -> bool {
    docs.iter()
        .flat_map(|d| &d.statement)
        .flat_map(|s| &s.action)
        .any(|p| action_matches(p, action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::REGISTRY;

    fn target() -> Target {
        Target {
            stack: "shop".into(),
            region: Some("eu-west-1".into()),
            account: Some("123456789012".into()),
        }
    }

    fn kinds(names: &[&str]) -> Vec<&'static dyn Kind> {
        names
            .iter()
            .map(|n| crate::resources::kind(n).expect("kind"))
            .collect()
    }

    fn policy(names: &[&str], commands: &[For], zones: bool) -> Vec<Statement> {
        let t = target();
        let k = kinds(names);
        statements(
            &entries(&Request {
                target: &t,
                commands,
                kinds: &k,
                read_kinds: &k,
                zones,
            }),
            &t,
        )
    }

    fn actions(s: &[Statement]) -> BTreeSet<String> {
        s.iter().flat_map(|s| s.action.clone()).collect()
    }

    #[test]
    fn every_kind_declares_reads_changes_and_deletes() {
        for k in REGISTRY {
            let all: Vec<&Access> = k.access().iter().flat_map(|g| g.iter()).collect();
            for phase in [Phase::Read, Phase::Change, Phase::Delete] {
                assert!(
                    all.iter().any(|a| a.phase == phase),
                    "{} declares no {phase:?} action",
                    k.name()
                );
            }
            for a in &all {
                for action in a.actions {
                    let (service, op) = action.split_once(':').expect("service:Action");
                    assert!(
                        !service.is_empty() && op.starts_with(|c: char| c.is_ascii_uppercase()),
                        "{}: `{action}` is not service:Action",
                        k.name()
                    );
                    // Reads are reads: `plan` must never be granted a change.
                    if a.phase == Phase::Read {
                        assert!(is_read(action), "{}: {action} declared a read", k.name());
                    }
                }
                for on in a.on {
                    assert!(
                        *on == "*" || on.starts_with("arn:{partition}:"),
                        "{}: `{on}` is neither * nor an ARN of the region's partition",
                        k.name()
                    );
                }
            }
        }
    }

    #[test]
    fn plan_is_read_only_and_destroy_adds_only_deletes() {
        let names = [
            "vpc",
            "subnet",
            "sqs_queue",
            "lambda_function",
            "db_instance",
        ];
        let plan = actions(&policy(&names, &[For::Plan], false));
        assert!(plan.iter().all(|a| is_read(a)), "{plan:?}");
        let destroy = actions(&policy(&names, &[For::Destroy], false));
        assert!(destroy.contains("ec2:DeleteVpc") && destroy.contains("sqs:DeleteQueue"));
        assert!(!destroy.contains("ec2:CreateVpc"), "{destroy:?}");
        let apply = actions(&policy(&names, &[For::Apply], false));
        assert!(destroy.is_subset(&apply) && apply.contains("lambda:CreateFunction"));
        // The default (all three) is apply's.
        let all = actions(&policy(
            &names,
            &[For::Plan, For::Apply, For::Destroy],
            false,
        ));
        assert_eq!(all, apply);
    }

    #[test]
    fn zones_are_read_only_when_named() {
        assert!(!allows(
            &[PolicyDocument::new(policy(
                &["subnet"],
                &[For::Plan],
                false
            ))],
            "ec2:DescribeAvailabilityZones"
        ));
        assert!(allows(
            &[PolicyDocument::new(policy(&["subnet"], &[For::Plan], true))],
            "ec2:DescribeAvailabilityZones"
        ));
    }

    #[test]
    fn names_are_scoped_to_the_stack() {
        let t = target();
        assert_eq!(
            t.expand("arn:{partition}:sqs:{region}:{account}:{name}*"),
            "arn:aws:sqs:eu-west-1:123456789012:shop-*"
        );
        let long = Target {
            stack: "A-very-long-stack-name-for-the-branch".into(),
            region: Some("cn-north-1".into()),
            account: None,
        };
        // Load balancer names keep 23 characters before their hash; RDS ones are lower case.
        assert_eq!(
            long.expand(
                "arn:{partition}:elasticloadbalancing:{region}:{account}:targetgroup/{elb}*/*"
            ),
            "arn:aws-cn:elasticloadbalancing:cn-north-1:*:targetgroup/A-very-long-stack-name-*/*"
        );
        assert_eq!(
            long.expand("{rds}"),
            "a-very-long-stack-name-for-the-branch-"
        );
        assert_eq!(
            Target {
                stack: "internal-x".into(),
                region: None,
                account: None
            }
            .expand("{elb}"),
            "sc-"
        );
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("ap-northeast-1"), "aws");
    }

    /// The names the kinds really make start with the prefixes the policy allows.
    #[test]
    fn prefixes_match_the_kinds_names() {
        for stack in ["shop", "A-very-long-stack-name-for-the-branch-1", "x--y"] {
            let t = Target {
                stack: stack.into(),
                region: None,
                account: None,
            };
            let elb = crate::resources::elbv2_name_for_tests(stack, "web_tg");
            assert!(
                elb.starts_with(&t.expand("{elb}")),
                "{elb} vs {}",
                t.expand("{elb}")
            );
            let rds = crate::resources::rds_name_for_tests(stack, "primary");
            assert!(
                rds.starts_with(&t.expand("{rds}")),
                "{rds} vs {}",
                t.expand("{rds}")
            );
            let plain = crate::resources::common::physical_name(stack, "orders", 80, |_| true, "");
            assert!(plain.starts_with(&t.expand("{name}")));
        }
    }

    #[test]
    fn access_denied_names_the_action_and_resource() {
        let ec2 = "You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/dev is not authorized to perform: ec2:CreateVpc on resource: arn:aws:ec2:eu-west-1:123456789012:vpc/* because no identity-based policy allows the ec2:CreateVpc action. Encoded authorization failure message: AbC";
        assert_eq!(
            access_denied_hint(ec2, Some("ec2:CreateVpc")),
            "the identity may not call `ec2:CreateVpc` on `arn:aws:ec2:eu-west-1:123456789012:vpc/*`; `securecart permissions BLUEPRINT` prints the IAM policy that plan, apply and destroy of the blueprint need (README, Real AWS)"
        );
        // SNS spells the service in capitals; a message without them falls back to the call.
        let sns = "User: arn:aws:sts::1:assumed-role/r/s is not authorized to perform: SNS:CreateTopic on resource: arn:aws:sns:us-east-1:1:shop-orders because no identity-based policy allows the SNS:CreateTopic action";
        assert!(access_denied_hint(sns, None).starts_with(
            "the identity may not call `SNS:CreateTopic` on `arn:aws:sns:us-east-1:1:shop-orders`;"
        ));
        assert!(
            access_denied_hint("Access Denied", Some("rds:CreateDBInstance")).starts_with(
                "the identity may not call `rds:CreateDBInstance`; `securecart permissions"
            )
        );
        assert!(access_denied_hint("Access Denied", None).starts_with("`securecart permissions"));
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(action_matches("ec2:Describe*", "ec2:DescribeVpcs"));
        assert!(action_matches("EC2:describevpcs", "ec2:DescribeVpcs"));
        assert!(action_matches(
            "sqs:?etQueueAttributes",
            "sqs:GetQueueAttributes"
        ));
        assert!(!action_matches("ec2:Describe*", "ec2:CreateVpc"));
        assert!(!action_matches("ec2:DescribeVpc", "ec2:DescribeVpcs"));
        assert!(action_matches("*", "rds:DeleteDBInstance"));
    }

    #[test]
    fn large_policies_split_within_the_limit() {
        let all: Vec<&str> = REGISTRY.iter().map(|k| k.name()).collect();
        let docs = split(policy(&all, &[For::Apply], true));
        for d in &docs {
            assert!(d.characters() <= MANAGED_POLICY_LIMIT, "{}", d.characters());
        }
        let statements: usize = docs.iter().map(|d| d.statement.len()).sum();
        assert_eq!(statements, policy(&all, &[For::Apply], true).len());
    }

    #[test]
    fn lab_like_policy_snapshot() {
        let names = ["vpc", "subnet", "autoscaling_group", "lambda_function"];
        insta::assert_json_snapshot!(PolicyDocument::new(policy(&names, &[For::Apply], true)));
    }
}
