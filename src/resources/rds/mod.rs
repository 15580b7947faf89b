//! Amazon RDS: what the DB kinds share — identifiers, tags, references to DB resources,
//! creating or adopting an instance, waiting for it, deleting it with its final snapshot.

pub mod db_instance;
pub mod db_read_replica;
pub mod db_subnet_group;

use crate::aws::Aws;
use crate::blueprint::refs::{self, Piece, UNKNOWN};
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, owned_id, Error};
use crate::resources::fields::id_set;
use crate::resources::{OpCx, TAG_RESOURCE, TAG_STACK};
use aws_sdk_rds::types::{DbInstance as AwsInstance, Tag};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(super) async fn add_tags(aws: &Aws, arn: &str, tags: &[(&str, String)]) -> Result<(), Error> {
    aws.rds
        .add_tags_to_resource()
        .resource_name(arn)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(*k).value(v).build())
                .collect(),
        ))
        .send()
        .await?;
    Ok(())
}

/// No modification is pending any more. Right after ModifyDBInstance the status can
/// still read `available` for a while: the pending values are what tells.
pub(super) fn applied(db: &AwsInstance) -> bool {
    let Some(p) = db.pending_modified_values() else {
        return true;
    };
    !(p.db_instance_class().is_some()
        || p.allocated_storage().is_some()
        || p.backup_retention_period().is_some()
        || p.multi_az().is_some()
        || p.engine_version().is_some()
        || p.storage_type().is_some()
        || p.db_instance_identifier().is_some()
        || p.db_subnet_group_name().is_some()
        || p.master_user_password().is_some())
}

pub(super) fn check_class(path: &str, class: &str) -> Option<Issue> {
    let ok = class.starts_with("db.")
        && class.len() > 3
        && class.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
    (!ok && !has_ref(class)).then(|| {
        Issue::new(path, format!("`{class}` is not an RDS instance class"))
            .help("instance classes look like `db.t4g.micro` or `db.m7g.large`")
    })
}

/// Checks a field that names another resource: exactly one reference to a resource of
/// `kind` (bare, or naming one of `attrs`), or a literal that `literal` accepts.
pub(super) fn check_ref(
    path: &str,
    value: &str,
    cx: &CheckCx,
    kind: &str,
    attrs: &[&str],
    literal: impl Fn(&str) -> bool,
    literal_desc: &str,
) -> Option<Issue> {
    let pieces = refs::scan(value).ok()?;
    let help = format!("use a reference like `${{my_{kind}}}`, or {literal_desc}");
    match pieces.as_slice() {
        [Piece::Ref(r)] if r.target != refs::STACK => {
            // An unknown target is already reported by the blueprint checks.
            let target = cx.resources.get(&r.target)?;
            if target.kind != kind {
                return Some(
                    Issue::new(
                        path,
                        format!(
                            "`{value}` refers to `{}` (type {}); `{path}` needs a {kind}",
                            r.target, target.kind
                        ),
                    )
                    .help(help),
                );
            }
            match r.attribute.as_deref() {
                None => None,
                Some(a) if attrs.contains(&a) => None,
                Some(a) => Some(
                    Issue::new(
                        path,
                        format!("`{path}` needs the {kind} itself, not its `{a}`"),
                    )
                    .help(format!("write `${{{}}}`", r.target)),
                ),
            }
        }
        [Piece::Lit(l)] if literal(l) => None,
        _ if has_ref(value) => None,
        _ => Some(Issue::new(path, format!("`{value}` is not a {kind}")).help(help)),
    }
}

pub(super) use crate::resources::fields::check_zone;

/// Runs a create call; when the identifier is taken by this very resource (an earlier,
/// interrupted run), carries on with that instance; when by anything else, says so.
/// True when it carried on with an instance an earlier attempt made.
pub(super) async fn create_or_adopt<F, Fut>(
    aws: &Aws,
    cx: &OpCx<'_>,
    ident: &str,
    send: F,
) -> Result<bool, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let err = match send().await {
        Ok(()) => return Ok(false),
        Err(e) if e.is_code(&["DBInstanceAlreadyExists"]) => e,
        Err(e) => return Err(e),
    };
    let Some(db) = describe(aws, ident).await? else {
        return send().await.map(|_| false);
    };
    let owner = tag_map(db.tag_list());
    if owned_id(&owner, cx.stack).as_deref() != Some(cx.id) {
        let whose = match (owner.get(TAG_STACK), owner.get(TAG_RESOURCE)) {
            (Some(s), Some(r)) => format!("it belongs to `{r}` of stack `{s}`"),
            _ => "it is not managed by securecart".to_string(),
        };
        return Err(Error::Conflict(format!(
            "a DB instance named {ident} already exists and {whose}; securecart does not adopt it ({err})"
        )));
    }
    if db.db_instance_status() == Some("deleting") {
        cx.note(format!(
            "{ident} from an earlier run is being deleted; waiting to create it again"
        ));
        wait_gone(aws, cx, ident).await?;
        return send().await.map(|_| false);
    }
    cx.note("found the DB instance an earlier attempt created");
    Ok(true)
}

/// Deletes a DB instance (with a final snapshot when `snapshot` names one) and waits
/// until it is gone. Already gone is success.
pub(super) async fn delete_instance(
    aws: &Aws,
    cx: &OpCx<'_>,
    ident: &str,
    snapshot: Option<String>,
) -> Result<(), Error> {
    let r = common::retry_on(
        cx,
        &["InvalidDBInstanceState", "InvalidDBInstanceStateFault"],
        DELETE_TIMEOUT,
        "the DB instance is busy (being created, modified, backed up or already deleted)",
        || async {
            let req = aws.rds.delete_db_instance().db_instance_identifier(ident);
            let req = match &snapshot {
                Some(s) => req
                    .skip_final_snapshot(false)
                    .final_db_snapshot_identifier(s),
                None => req.skip_final_snapshot(true),
            };
            req.send().await.map(|_| ()).map_err(Error::from)
        },
    )
    .await;
    match r {
        Ok(()) => {}
        Err(e) if instance_not_found(&e) => return Ok(()),
        Err(e) if e.to_string().to_ascii_lowercase().contains("deletion protection") => {
            return Err(Error::Conflict(format!(
                "{ident} has deletion protection on: set `deletion_protection: false` in the blueprint and apply, then delete it ({e})"
            )))
        }
        Err(e) => return Err(e),
    }
    if let Some(s) = &snapshot {
        cx.note(format!("taking the final snapshot {s}"));
    }
    wait_gone(aws, cx, ident).await
}

pub(super) async fn describe(aws: &Aws, ident: &str) -> Result<Option<AwsInstance>, Error> {
    match aws
        .rds
        .describe_db_instances()
        .db_instance_identifier(ident)
        .send()
        .await
        .map_err(Error::from)
    {
        Ok(out) => Ok(out.db_instances().first().cloned()),
        Err(e) if instance_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// [`describe`] of an instance that must be there (just created, changed or waited for).
pub(super) async fn described(aws: &Aws, ident: &str) -> Result<AwsInstance, Error> {
    describe(aws, ident)
        .await?
        .ok_or_else(|| Error::Conflict(format!("DB instance {ident} no longer exists")))
}

/// `<identifier>-final-<UTC yyyymmdd-hhmmss>`: a valid, unique snapshot identifier.
pub(super) fn final_snapshot_name(ident: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!("{ident}-final-{}", utc_stamp(secs))
}

/// A deterministic RDS identifier for `stack-id`: at most 63 lower-case letters, digits
/// and single hyphens, starting with a letter, not ending with a hyphen.
pub(super) fn identifier(stack: &str, id: &str) -> String {
    rds_name(stack, id, 63)
}

/// Outputs every DB instance has: identifier, ARN, endpoint address and port.
pub(super) fn instance_outputs(db: &AwsInstance) -> Vec<(&'static str, Json)> {
    let mut o = vec![
        ("id", json!(db.db_instance_identifier().unwrap_or_default())),
        ("arn", json!(db.db_instance_arn().unwrap_or_default())),
    ];
    // No endpoint before the instance is available: `(known after apply)` until then.
    if let Some(e) = db.endpoint() {
        if let Some(addr) = e.address() {
            o.push(("endpoint", json!(addr)));
        }
        if let Some(port) = e.port().or(db.db_instance_port()) {
            o.push(("port", json!(port)));
        }
    }
    o
}

/// Lower-cases a name (RDS does) unless it is still a placeholder.
pub(super) fn lower_known(s: &str) -> String {
    if s == UNKNOWN {
        s.to_string()
    } else {
        s.to_ascii_lowercase()
    }
}

/// The tags of an RDS resource: securecart's, and `extra` ones.
pub(super) fn rds_tags(stack: &str, id: &str, name: &str, extra: &[(&str, String)]) -> Vec<Tag> {
    common::tags(stack, id, name)
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub(super) fn security_group_ids(db: &AwsInstance) -> Vec<String> {
    id_set(
        db.vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect(),
    )
}

/// The DB instances of `stack` that are of securecart kind `kind`, with their blueprint
/// ids: one paginated DescribeDBInstances (it has no tag filter; TagList comes with it).
pub(super) async fn stack_instances(
    aws: &Aws,
    stack: &str,
    kind: &str,
) -> Result<Vec<(String, AwsInstance)>, Error> {
    // Instances and replicas come from the same call: it is made once for both kinds.
    let all = aws
        .read_once("rds:DescribeDBInstances".into(), || async {
            aws.rds
                .describe_db_instances()
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(Error::from)
        })
        .await?;
    Ok(all
        .iter()
        // One being deleted is on its way out: plan treats it as gone (create waits for it).
        .filter(|db| db.db_instance_status() != Some("deleting"))
        .filter_map(|db| {
            let id = owned_id(&tag_map(db.tag_list()), stack)?;
            (kind_of(db) == kind).then(|| (id, db.clone()))
        })
        .collect())
}

/// The `status` attribute: what a dependent needs of an instance is its endpoint, and
/// RDS has none while the instance is `creating` ("The endpoint might not be shown for
/// instances with the status of creating", RDS API reference, DBInstance:
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DBInstance.html>). An instance
/// an earlier, interrupted run left in that state then differs from the desired
/// [`READY`], so the plan shows an update that waits for it, and what refers to its
/// endpoint waits for that update instead of failing on a value "not known yet".
pub(super) fn status(db: &AwsInstance) -> String {
    if db.endpoint().and_then(|e| e.address()).is_some() {
        READY.to_string()
    } else {
        db.db_instance_status().unwrap_or("creating").to_string()
    }
}

pub(super) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Waits for an instance an earlier run created to become available.
pub(super) async fn wait_created(
    aws: &Aws,
    cx: &OpCx<'_>,
    ident: &str,
) -> Result<AwsInstance, Error> {
    cx.note(format!(
        "{ident} is still being created (by an earlier run); waiting for it (minutes on AWS)"
    ));
    wait_ready(
        aws,
        cx,
        ident,
        "the DB instance to be available",
        CREATE_TIMEOUT,
        |_| true,
    )
    .await
}

/// Waits until the instance is usable (`available`, or `storage-optimization` after a
/// storage change), its security groups are active, and `also` holds (after a modify:
/// [`applied`]). Notes each status change with the time spent so far.
pub(super) async fn wait_ready(
    aws: &Aws,
    cx: &OpCx<'_>,
    ident: &str,
    what: &str,
    timeout: Duration,
    also: impl Fn(&AwsInstance) -> bool + Send + Sync,
) -> Result<AwsInstance, Error> {
    let start = Instant::now();
    let last = Mutex::new(String::new());
    let what = format!("{what} ({ident})");
    common::wait_for(cx, &what, timeout, || async {
        let Some(db) = describe(aws, ident).await? else {
            // Just-created instances can be briefly invisible; a vanished one is not.
            if start.elapsed() < Duration::from_secs(60) {
                return Ok(None);
            }
            return Err(Error::Conflict(format!(
                "DB instance {ident} no longer exists"
            )));
        };
        let status = db.db_instance_status().unwrap_or("unknown").to_string();
        if STUCK.contains(&status.as_str()) {
            return Err(Error::Conflict(format!(
                "DB instance {ident} is `{status}`; see the RDS console's Events for why"
            )));
        }
        let usable = status == "available" || status == "storage-optimization";
        let ready = usable && sgs_active(&db) && also(&db);
        // Each status once, with the time it took to get there (not a note per poll).
        let before = last
            .lock()
            .map(|mut l| std::mem::replace(&mut *l, status.clone()))
            .unwrap_or_default();
        if before != status && !(before.is_empty() && ready) {
            cx.note(format!(
                "{ident} is `{status}` after {}",
                elapsed(start.elapsed())
            ));
        }
        Ok(ready.then_some(db))
    })
    .await
}

/// How long RDS may take: Terraform's provider defaults (40 min create, 80 min update,
/// 60 min delete); typical real-AWS times are 5–10 minutes.
pub(super) const CREATE_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// `master_password: generated`: securecart generates it and keeps it in an SSM
/// SecureString parameter of the stack (see "The generated master password" below).
pub(super) const GENERATED: &str = "generated";

pub(super) const MODIFY_TIMEOUT: Duration = Duration::from_secs(80 * 60);

/// `status` of an instance that has its endpoint: what `desired` always asks for.
pub(super) const READY: &str = "available";

/// `false` when destroy should skip the final snapshot (read by delete, which has no blueprint).
pub(super) const TAG_FINAL_SNAPSHOT: &str = "securecart:final-snapshot";

/// Which securecart kind a DB instance is (a promoted replica stays a `db_read_replica`).
pub(super) const TAG_KIND: &str = "securecart:kind";

/// True when the value holds a `${...}` reference to a resource (not `${stack.*}`).
pub(super) fn has_ref(value: &str) -> bool {
    matches!(refs::scan(value), Ok(p) if p.iter().any(|p| matches!(p, Piece::Ref(r) if r.target != refs::STACK)))
}

/// Like [`identifier`] within `max` characters (DB subnet groups allow 255).
pub(super) fn rds_name(stack: &str, id: &str, max: usize) -> String {
    let stack = stack.to_ascii_lowercase();
    let stack = if stack.starts_with(|c: char| c.is_ascii_lowercase()) {
        stack
    } else {
        format!("db-{stack}")
    };
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let raw = common::physical_name(&stack, &id.to_ascii_lowercase(), max, ok, "");
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

pub(super) const DELETE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Statuses an instance does not leave by itself: waiting longer would not help.
const STUCK: &[&str] = &[
    "failed",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-parameters",
    "incompatible-restore",
    "insufficient-capacity",
    "inaccessible-encryption-credentials",
    "restore-error",
    "storage-full",
];

fn sgs_active(db: &AwsInstance) -> bool {
    db.vpc_security_groups()
        .iter()
        .all(|g| matches!(g.status(), None | Some("active")))
}

fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

pub(super) fn instance_not_found(e: &Error) -> bool {
    e.is_code(&["DBInstanceNotFound", "DBInstanceNotFoundFault"])
}

/// `db_instance` or `db_read_replica`: from the kind tag, else from the replication source.
fn kind_of(db: &AwsInstance) -> &'static str {
    match tag_map(db.tag_list()).get(TAG_KIND).map(String::as_str) {
        Some("db_read_replica") => "db_read_replica",
        Some(_) => "db_instance",
        None if db.read_replica_source_db_instance_identifier().is_some() => "db_read_replica",
        None => "db_instance",
    }
}

/// Seconds since 1970 as `yyyymmdd-hhmmss` in UTC (civil-from-days, H. Hinnant).
fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn wait_gone(aws: &Aws, cx: &OpCx<'_>, ident: &str) -> Result<(), Error> {
    common::wait_for(
        cx,
        &format!("{ident} to be deleted (minutes on AWS)"),
        DELETE_TIMEOUT,
        || async { Ok(describe(aws, ident).await?.is_none().then_some(())) },
    )
    .await
}
