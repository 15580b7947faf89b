//! `db_instance`: an Amazon RDS DB instance (PostgreSQL or MySQL), and its master
//! password: generated into SSM, taken from the blueprint (with a salted digest in SSM so
//! a change shows in the plan) or left to Secrets Manager.

use super::{DB_ARN, INSTANCE_SCOPE, SERVICE_LINKED_ROLE};
use crate::resources::access::{Access, When};
use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_rds::types::DbInstance as AwsInstance;
use aws_sdk_ssm::operation::put_parameter::builders::PutParameterFluentBuilder;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::*;
use crate::aws::Aws;
use crate::blueprint::refs::UNKNOWN;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, owned_id, Error};
use crate::resources::fields::{check_id_ref, id_set};
use crate::resources::typed::{attrs_of, Changed, Listed, Observed, Resource, Site, Typical};
use crate::resources::{Live, OpCx};

pub struct DbInstance;

/// The engine version as the blueprint wrote it (`16` while AWS runs 16.4).
const TAG_ENGINE_VERSION: &str = "securecart:engine-version";

/// The master password's origin, as far as AWS can tell us (the value itself is
/// write-only: RDS never returns it, so securecart never compares it).
const MANAGED: &str = "secrets_manager";
const FROM_BLUEPRINT: &str = "blueprint";
/// On an instance whose password securecart generated: the SSM parameter holding it.
const TAG_PASSWORD_PARAMETER: &str = "securecart:master-password-parameter";

/// An RDS DB instance.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// Database engine: `postgres` or `mysql`. Changing it replaces the instance (its
    /// data is lost unless you migrate it).
    engine: Engine,
    /// Engine version: a major version like `"16"` (PostgreSQL) or `"8.0"` (MySQL) lets
    /// RDS pick the current minor version and keep it up to date; an exact one like
    /// `"16.4"` pins it. Raising it upgrades in place; lowering it is refused at plan time.
    engine_version: String,
    /// Instance class, like `db.t4g.micro` or `db.m7g.large`. Changed in place (a reboot).
    instance_class: String,
    /// Storage in GiB, 20 to 65536. Can grow in place (by at least 10 % at a time);
    /// RDS cannot shrink it, so a smaller value is an error at plan time.
    #[serde(default = "default_storage")]
    allocated_storage: i64,
    /// `gp3` (the default) or `gp2`. Changed in place.
    #[serde(default)]
    storage_type: StorageType,
    /// Encrypt storage, snapshots and backups with the account's RDS KMS key. On by
    /// default (security baseline CKV_AWS_16 / RDS.3); changing it replaces the instance.
    #[serde(default = "yes")]
    storage_encrypted: bool,
    /// Give the instance a public DNS name reachable from the internet. Off by default
    /// (security baseline CKV_AWS_17 / RDS.2). Changed in place.
    #[serde(default)]
    publicly_accessible: bool,
    /// Keep a synchronous standby in another availability zone, with automatic failover.
    /// Changed in place. Cannot be combined with `availability_zone`.
    #[serde(default)]
    multi_az: bool,
    /// Zone of a single-AZ instance, like `${stack.zones[0]}`; left out, RDS picks one of
    /// the subnet group's zones. Changing it replaces the instance.
    #[serde(default)]
    availability_zone: Option<String>,
    /// Days of automated backups, 0 to 35 (default 7). 0 turns backups off, which also
    /// rules out read replicas (security baseline CKV_AWS_133 / RDS.11). Changed in place.
    #[serde(default = "default_backup_retention")]
    backup_retention: i64,
    /// Refuse deletion (RDS.8, for production). Off by default so `securecart destroy`
    /// works; while on, destroy fails until you set it to false and apply.
    #[serde(default)]
    deletion_protection: bool,
    /// Take a final snapshot named `<identifier>-final-<UTC time>` when the instance is
    /// deleted (by destroy, a removal from the blueprint, or a replacement). On by
    /// default; the labs turn it off so cleanup leaves nothing behind.
    #[serde(default = "yes")]
    final_snapshot: bool,
    /// The DB subnet group: a reference like `${db_subnets}` or the name of an existing
    /// group. It decides the VPC and the subnets the instance may use. Changed in place.
    db_subnet_group: String,
    /// VPC security groups: references like `${db_sg}` or ids (`sg-…`). Left out, RDS
    /// uses the VPC's default group. Changed in place.
    #[serde(default)]
    security_groups: Option<Vec<String>>,
    /// Name of the master user (default `dbadmin`). Changing it replaces the instance.
    #[serde(default = "default_username")]
    master_username: String,
    /// The master password. `generated`: securecart generates a strong random one,
    /// keeps it in the SSM SecureString parameter `/securecart/STACK/ID/master-password`
    /// (the `master_password_parameter` attribute; read it with `aws ssm get-parameter
    /// --with-decryption`), never shows it, and deletes the parameter with the instance;
    /// an instance with read replicas needs this or a parameter. Otherwise a parameter
    /// with `secret: true`. Left out (the default), RDS generates it and keeps it in AWS
    /// Secrets Manager (`ManageMasterUserPassword`; the `master_user_secret_arn`
    /// attribute), which rules out read replicas. AWS never returns a password: for a
    /// password from the blueprint securecart keeps a salted digest of it in the SSM
    /// SecureString `/securecart/STACK/ID/master-password-digest`, so a changed value
    /// plans `master_password (sensitive)` and apply sets it in place.
    #[serde(default)]
    master_password: Option<String>,
    /// Name of a database to create in the instance. Changing it replaces the instance.
    #[serde(default)]
    db_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Engine {
    Postgres,
    Mysql,
}

impl Engine {
    fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
enum StorageType {
    /// General purpose SSD with 3000 IOPS baseline.
    #[default]
    Gp3,
    /// Previous-generation general purpose SSD.
    Gp2,
}

impl StorageType {
    fn as_str(self) -> &'static str {
        match self {
            StorageType::Gp3 => "gp3",
            StorageType::Gp2 => "gp2",
        }
    }
}

fn yes() -> bool {
    true
}
fn default_storage() -> i64 {
    20
}
fn default_backup_retention() -> i64 {
    7
}
fn default_username() -> String {
    "dbadmin".into()
}

/// The normalised attributes: what `desired` produces and `read` reads back. Optional
/// ones are compared only when the blueprint sets them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Db {
    name: String,
    engine: String,
    engine_version: String,
    instance_class: String,
    allocated_storage: i64,
    storage_type: String,
    storage_encrypted: bool,
    publicly_accessible: bool,
    multi_az: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    availability_zone: Option<String>,
    backup_retention: i64,
    deletion_protection: bool,
    final_snapshot: bool,
    db_subnet_group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    security_groups: Option<Vec<String>>,
    master_username: String,
    /// `secrets_manager`, `generated` or `blueprint` — never the password.
    master_password_source: String,
    /// A password from the blueprint, as far as plan can compare it: [`PASSWORD_SAME`]
    /// when it matches the stack's record of it, [`PASSWORD_CHANGED`] when it does not
    /// (set by `against_live`); absent when there is nothing to compare (see "The
    /// blueprint's master password"). Never the password or its digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    master_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    db_name: Option<String>,
    /// [`READY`] once the instance has its endpoint, else its RDS status (`creating`):
    /// see [`status`].
    status: String,
    /// Live: what `read` found of the record of a blueprint password. Desired: its state
    /// when there is no record to compare with (the same as live's, so never a change;
    /// `warnings` and `check_change` read it). Never compared, never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_record: Option<Seen>,
}

/// The compared attributes of an instance, or of a parameter a killed run left (see
/// "Leftover parameters"), which `read` reports as a resource of this kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Attrs {
    Instance(Box<Db>),
    Leftover {
        leftover_parameter: String,
        db_instance_id: String,
    },
}

/// What create and update send besides the attributes: a password from the blueprint
/// (`None` for a generated one, which lives in SSM, and for Secrets Manager's). Never
/// printed: no `Debug`.
pub struct Password(Option<String>);

/// What `read` finds: an instance with what was found of its password record (only a
/// blueprint password has one), or a leftover parameter with the instance id it is for.
pub enum Raw {
    Instance(Box<AwsInstance>, Option<Seen>),
    Leftover { name: String, owner: String },
}

/// The instance's attributes; a leftover parameter's are an internal error here.
fn instance(a: &Attrs) -> Result<&Db, Error> {
    match a {
        Attrs::Instance(db) => Ok(db),
        Attrs::Leftover {
            leftover_parameter, ..
        } => Err(Error::Invalid(format!(
            "internal error: {leftover_parameter} is a leftover parameter, not a DB instance"
        ))),
    }
}
/// The stack's password records (see `password_parameter`).
const PARAMETERS: &str = "arn:{partition}:ssm:{region}:{account}:parameter/securecart/{stack}/*";
/// GetParametersByPath is authorized on the path itself.
const PARAMETER_PATH: &str = "arn:{partition}:ssm:{region}:{account}:parameter/securecart/{stack}";

#[async_trait]
impl Resource for DbInstance {
    const KIND: &'static str = "db_instance";
    const ACCESS: &'static [&'static [Access]] = &[&[
        Access::read(&["rds:DescribeDBInstances"]),
        Access::read_on(&["rds:ListTagsForResource"], &[DB_ARN]),
        // Password records: SecureStrings under the stack's path, encrypted with the AWS
        // managed key `aws/ssm`, which "grants Decrypt permission to all IAM principals in
        // the AWS account": no KMS grant needed
        // (https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-restrict-decryption.html).
        Access::read_on(
            &[
                "ssm:GetParameter",
                "ssm:GetParametersByPath",
                "ssm:ListTagsForResource",
            ],
            &[PARAMETERS, PARAMETER_PATH],
        ),
        Access::change(
            &[
                "rds:CreateDBInstance",
                "rds:ModifyDBInstance",
                "rds:AddTagsToResource",
                "rds:RemoveTagsFromResource",
            ],
            INSTANCE_SCOPE,
        ),
        // PutParameter with tags also needs AddTagsToResource
        // (https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-access.html).
        Access::change(
            &["ssm:PutParameter", "ssm:AddTagsToResource"],
            &[PARAMETERS],
        ),
        // `master_password` left out: RDS keeps it in a Secrets Manager secret it creates
        // (named `rds!…`) with the caller's permissions
        // (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-secrets-manager.html#rds-secrets-manager-permissions).
        Access::change(
            &["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
            &["arn:{partition}:secretsmanager:{region}:{account}:secret:rds!*"],
        ),
        Access::change(
            &["kms:DescribeKey", "kms:GenerateDataKey", "kms:Decrypt"],
            &["arn:{partition}:kms:{region}:{account}:key/*"],
        )
        .when(When::ViaService("secretsmanager")),
        SERVICE_LINKED_ROLE,
        Access::delete(&["rds:DeleteDBInstance"], &[DB_ARN]),
        Access::delete(&["ssm:DeleteParameter"], &[PARAMETERS]),
    ]];
    const ZONE_FIELDS: &'static [&'static str] = &["availability_zone"];
    const ATTRIBUTES: &'static [&'static str] = &[
        "id",
        "arn",
        "endpoint",
        "port",
        "master_user_secret_arn",
        "resource_id",
        "master_password_parameter",
    ];
    const REPLACE_ON: &'static [&'static str] = &[
        "engine",
        "storage_encrypted",
        "availability_zone",
        "master_username",
        "db_name",
    ];

    /// Typical time on AWS: Create until `available`, first backup included: 5–10 minutes,
    /// often 6–12 for PostgreSQL (shared/notes/aws-behaviour.md "Typical real-AWS durations",
    /// labs/02/README.md; Terraform's provider allows 40 minutes); a modification applied
    /// immediately (class, storage) takes a few minutes with a reboot (labs/03/README.md);
    /// delete without a final snapshot 5–10 minutes.
    const TYPICAL: Typical = Typical {
        create: 540,
        update: 300,
        delete: 420,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = Password;
    type Raw = Raw;

    fn check(&self, id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut issues = Vec::new();
        if let Some(i) = check_version(f.engine, &f.engine_version) {
            issues.push(i);
        }
        issues.extend(check_class("instance_class", &f.instance_class));
        if !(20..=65536).contains(&f.allocated_storage) {
            issues.push(Issue::new(
                "allocated_storage",
                format!(
                    "{} GiB is out of range: RDS {} storage is 20 to 65536 GiB",
                    f.allocated_storage,
                    f.storage_type.as_str()
                ),
            ));
        }
        if !(0..=35).contains(&f.backup_retention) {
            issues.push(Issue::new(
                "backup_retention",
                format!(
                    "{} days is out of range: 0 (no backups) to 35",
                    f.backup_retention
                ),
            ));
        }
        if let Some(az) = &f.availability_zone {
            if f.multi_az {
                issues.push(
                    Issue::new(
                        "availability_zone",
                        "a Multi-AZ instance cannot be placed in one zone: RDS picks the primary's and the standby's zones",
                    )
                    .help("remove `availability_zone`, or set `multi_az: false`"),
                );
            } else if let Some(i) = check_zone("availability_zone", az) {
                issues.push(i);
            }
        }
        issues.extend(check_ref(
            "db_subnet_group",
            &f.db_subnet_group,
            cx,
            "db_subnet_group",
            &["name"],
            valid_group_name,
            "the name of an existing DB subnet group",
        ));
        for (i, sg) in f.security_groups.iter().flatten().enumerate() {
            let path = format!("security_groups[{i}]");
            issues.extend(check_id_ref(&path, sg, cx, "security_group", "sg-"));
        }
        issues.extend(check_username(f.engine, &f.master_username));
        if let Some(p) = f.master_password.as_deref().filter(|p| *p != GENERATED) {
            issues.extend(check_password(f.engine, p));
            let secret = cx
                .resources
                .get(id)
                .is_some_and(|r| r.secret_fields.contains("master_password"));
            if !secret && !has_ref(p) {
                issues.push(
                    Issue::new(
                        "master_password",
                        "the master password is written in the blueprint in plain text (security baseline: cfn-nag F23)",
                    )
                    .help("write `master_password: generated` (securecart generates it into an SSM SecureString parameter), or take it from a parameter with `secret: true` (`${params.db_password}`)")
                    .warning(),
                );
            }
        }
        if let Some(n) = &f.db_name {
            issues.extend(check_db_name(f.engine, n));
        }
        issues
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, Password), String> {
        let mut password = None;
        let source = match f.master_password.as_deref() {
            Some(GENERATED) => GENERATED,
            Some(p) => {
                if p != UNKNOWN {
                    // A password written in plain text is still a password: never printed either.
                    crate::secrets::register(p);
                    password = Some(p.to_string());
                }
                FROM_BLUEPRINT
            }
            None => MANAGED,
        };
        let db = Db {
            name: identifier(site.stack, site.id),
            engine: f.engine.as_str().to_string(),
            engine_version: f.engine_version.trim().to_string(),
            instance_class: f.instance_class.trim().to_ascii_lowercase(),
            allocated_storage: f.allocated_storage,
            storage_type: f.storage_type.as_str().to_string(),
            storage_encrypted: f.storage_encrypted,
            publicly_accessible: f.publicly_accessible,
            multi_az: f.multi_az,
            availability_zone: f.availability_zone,
            backup_retention: f.backup_retention,
            deletion_protection: f.deletion_protection,
            final_snapshot: f.final_snapshot,
            db_subnet_group: lower_known(&f.db_subnet_group),
            security_groups: f.security_groups.map(id_set),
            master_username: f.master_username,
            master_password_source: source.to_string(),
            master_password: None,
            db_name: f.db_name,
            status: READY.to_string(),
            password_record: None,
        };
        Ok((Attrs::Instance(Box::new(db)), Password(password)))
    }

    /// A blueprint password against the record `read` found: the verdict in
    /// `master_password`, or the record's state when there is nothing to compare with.
    /// One PBKDF2 per instance per plan (the planner calls this once per match).
    fn against_live(&self, desired: &Attrs, password: &Password, live: &Attrs) -> Option<Attrs> {
        let (Attrs::Instance(d), Attrs::Instance(l)) = (desired, live) else {
            return None;
        };
        if d.master_password_source != FROM_BLUEPRINT {
            return None;
        }
        let mut d = d.clone();
        match (&l.password_record, password.0.as_deref()) {
            (Some(Seen::Record(r)), Some(p)) => {
                let same = r.matches(p);
                d.master_password = Some(
                    if same {
                        PASSWORD_SAME
                    } else {
                        PASSWORD_CHANGED
                    }
                    .to_string(),
                );
            }
            (Some(Seen::Foreign), Some(_)) => d.password_record = Some(Seen::Foreign),
            (Some(s @ (Seen::Missing | Seen::Unreadable)), _) => {
                d.password_record = Some(s.clone())
            }
            _ => return None,
        }
        Some(Attrs::Instance(d))
    }

    fn physical_names(&self, stack: &str, id: &str, _: &Fields) -> Vec<(String, String)> {
        vec![("RDS identifier".into(), identifier(stack, id))]
    }

    fn check_change(&self, live: &Attrs, desired: &Attrs) -> Result<(), String> {
        let (Attrs::Instance(l), Attrs::Instance(d)) = (live, desired) else {
            return Ok(());
        };
        if matches!(d.password_record, Some(Seen::Foreign)) {
            return Err("an SSM parameter exists where securecart keeps the digest of this instance's master password, but it is not tagged as this resource's; securecart does not read or overwrite it: delete or rename it".into());
        }
        // A replacement starts afresh: only in-place changes have limits.
        let (lj, dj) = (json!(l), json!(d));
        let replaced = Self::REPLACE_ON
            .iter()
            .any(|k| dj.get(*k).is_some_and(|v| lj.get(*k) != Some(v)));
        if replaced {
            return Ok(());
        }
        let (was, want) = (l.allocated_storage, d.allocated_storage);
        if want < was {
            return Err(format!(
                "allocated_storage cannot shrink from {was} to {want} GiB: RDS only grows storage. Keep {was} or more, or move the data to a new instance"
            ));
        }
        // RDS refuses increases below 10 % ("at least 10 percent greater").
        if want > was && want * 10 < was * 11 {
            return Err(format!(
                "allocated_storage can grow from {was} GiB only by at least 10 %: ask for {} GiB or more",
                (was * 11 + 9) / 10
            ));
        }
        let (was, want) = (&l.engine_version, &d.engine_version);
        if version_lower(want, was) {
            return Err(format!(
                "engine_version cannot go down from {was} to {want}: RDS only upgrades. \
                 If RDS upgraded the minor version itself (auto minor version upgrade), write `{was}` or just the major version"
            ));
        }
        Ok(())
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        let Attrs::Instance(a) = a else {
            return Vec::new();
        };
        let mut w = Vec::new();
        if !a.storage_encrypted {
            w.push("storage is not encrypted (checkov CKV_AWS_16, trivy AWS-0080, cfn-nag F27, Security Hub RDS.3): leave `storage_encrypted` at its default, true".to_string());
        }
        if a.publicly_accessible {
            w.push("the instance is publicly accessible (checkov CKV_AWS_17, trivy AWS-0180, cfn-nag F22, Security Hub RDS.2): leave `publicly_accessible` at its default, false".to_string());
        }
        if a.backup_retention == 0 {
            w.push("automated backups are off (checkov CKV_AWS_133, trivy AWS-0077, cfn-nag W75, Security Hub RDS.11), and without them the instance can have no read replicas: set `backup_retention` to 1 or more".to_string());
        }
        if a.master_password_source == FROM_BLUEPRINT && a.master_password.is_none() {
            let why = match a.password_record {
                Some(Seen::Missing) => "has no record of its master password (it was created before securecart kept one, or the record was deleted)",
                Some(Seen::Unreadable) => "has a record of its master password that securecart cannot read",
                _ => "",
            };
            if !why.is_empty() {
                w.push(format!(
                    "the instance {why}, so a change of `master_password` cannot be seen and none is planned; the next change securecart applies to this instance also sets the password from the blueprint and records it"
                ));
            }
        }
        if !a.deletion_protection && !a.final_snapshot {
            w.push("neither deletion protection nor a final snapshot: deleting the instance loses its data for good (fine for a lab; production wants `deletion_protection: true`, checkov CKV_AWS_293, Security Hub RDS.8)".to_string());
        }
        w
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let dbs = stack_instances(aws, stack, Self::KIND).await?;
        let owners: BTreeSet<String> = dbs.iter().map(|(id, _)| id.clone()).collect();
        let reads = dbs.into_iter().map(|(id, db)| async move {
            // Only a blueprint password has a record to compare with.
            let record = match source_of(&db) {
                FROM_BLUEPRINT => Some(read_record(aws, stack, &id).await?),
                _ => None,
            };
            Ok::<_, Error>((id, Raw::Instance(Box::new(db), record)))
        });
        let mut out = futures::future::try_join_all(reads).await?;
        out.extend(leftover_parameters(aws, stack, &owners).await?);
        Ok(out)
    }

    fn observe(&self, raw: &Raw) -> Observed<Attrs> {
        match raw {
            Raw::Instance(db, record) => observe_instance(db, record),
            Raw::Leftover { name, owner } => Observed {
                physical_id: name.clone(),
                attrs: Attrs::Leftover {
                    leftover_parameter: name.clone(),
                    db_instance_id: owner.clone(),
                },
                outputs: Vec::new(),
            },
        }
    }

    async fn create(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        a: &Attrs,
        password: &Password,
    ) -> Result<Raw, Error> {
        let a = instance(a)?;
        let mut extra = vec![
            (TAG_KIND, "db_instance".to_string()),
            (TAG_FINAL_SNAPSHOT, a.final_snapshot.to_string()),
            (TAG_ENGINE_VERSION, a.engine_version.clone()),
        ];
        // Whether an instance an earlier attempt made may have another password than
        // the blueprint's (for a blueprint password: unless its record says the same).
        let mut unsure = false;
        let mut record = None;
        let password = match a.master_password_source.as_str() {
            FROM_BLUEPRINT => {
                let p = recall(password)?;
                // Recorded before RDS sees it: see "The blueprint's master password".
                unsure = match read_record(aws, cx.stack, cx.id).await? {
                    Seen::Record(r) => !r.matches(&p),
                    _ => true,
                };
                record = Some(Seen::Record(write_record(aws, cx, &p).await?));
                Some(p)
            }
            GENERATED => {
                // Stored before RDS sees it: a run killed in between finds it again.
                let name = password_parameter(cx.stack, cx.id);
                let p = stored_password(aws, cx, &name).await?;
                extra.push((TAG_PASSWORD_PARAMETER, name));
                Some(p)
            }
            _ => None,
        };
        let tags = rds_tags(cx.stack, cx.id, &a.name, &extra);
        let send = || async {
            let mut req = aws
                .rds
                .create_db_instance()
                .db_instance_identifier(&a.name)
                .engine(&a.engine)
                .engine_version(&a.engine_version)
                .db_instance_class(&a.instance_class)
                .allocated_storage(api_int("allocated_storage", a.allocated_storage)?)
                .storage_type(&a.storage_type)
                .storage_encrypted(a.storage_encrypted)
                .publicly_accessible(a.publicly_accessible)
                .multi_az(a.multi_az)
                .backup_retention_period(api_int("backup_retention", a.backup_retention)?)
                .deletion_protection(a.deletion_protection)
                .db_subnet_group_name(&a.db_subnet_group)
                .master_username(&a.master_username)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(tags.clone()))
                .set_availability_zone(a.availability_zone.clone())
                .set_vpc_security_group_ids(a.security_groups.clone())
                .set_db_name(a.db_name.clone());
            req = match &password {
                Some(p) => req.master_user_password(p),
                None => req.manage_master_user_password(true),
            };
            req.send().await.map(|_| ()).map_err(Error::from)
        };
        let adopted = create_or_adopt(aws, cx, &a.name, send).await?;
        cx.note("RDS is creating the instance (5–10 minutes on AWS)");
        let mut db = wait_ready(
            aws,
            cx,
            &a.name,
            "the DB instance to be available",
            CREATE_TIMEOUT,
            |_| true,
        )
        .await?;
        if let (true, true, Some(p)) = (adopted, unsure, &password) {
            // The instance an earlier attempt made got that attempt's password.
            cx.note("setting the master password of the instance an earlier attempt created");
            db = set_password(aws, cx, &a.name, p).await?;
        }
        Ok(Raw::Instance(Box::new(db), record))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        password: &Password,
        changed: Changed<'_>,
    ) -> Result<Option<Raw>, Error> {
        let a = instance(a)?;
        let was = attrs_of::<Self>(live)?;
        let was = instance(&was)?;
        let has = |f: &str| changed.has(f);
        let ident = live.physical_id.clone();
        if has("status") {
            wait_created(aws, cx, &ident).await?;
        }
        let mut req = aws
            .rds
            .modify_db_instance()
            .db_instance_identifier(&ident)
            .apply_immediately(true);
        // Whether ModifyDBInstance has something to send: each changed field sets it.
        let mut modify = false;
        let mut set = |f: &str| {
            modify |= changed.has(f);
            changed.has(f)
        };
        if set("name") {
            req = req.new_db_instance_identifier(&a.name);
        }
        if set("instance_class") {
            req = req.db_instance_class(&a.instance_class);
        }
        if set("allocated_storage") {
            req = req.allocated_storage(api_int("allocated_storage", a.allocated_storage)?);
        }
        if set("storage_type") {
            req = req.storage_type(&a.storage_type);
        }
        if set("publicly_accessible") {
            req = req.publicly_accessible(a.publicly_accessible);
        }
        if set("multi_az") {
            req = req.multi_az(a.multi_az);
        }
        if set("backup_retention") {
            req = req.backup_retention_period(api_int("backup_retention", a.backup_retention)?);
        }
        if set("deletion_protection") {
            req = req.deletion_protection(a.deletion_protection);
        }
        if set("db_subnet_group") {
            req = req.db_subnet_group_name(&a.db_subnet_group);
        }
        if set("security_groups") {
            req = req.set_vpc_security_group_ids(a.security_groups.clone());
        }
        if set("engine_version") {
            req = req
                .engine_version(&a.engine_version)
                .allow_major_version_upgrade(
                    major(&a.engine_version) != major(&was.engine_version),
                );
        }
        let parameter = password_parameter(cx.stack, cx.id);
        let password_source =
            has("master_password_source").then_some(a.master_password_source.as_str());
        // A blueprint password kept as it was is set when its record says it changed, and
        // along with any other modification when there is no record to tell.
        let mut record = password_source == Some(FROM_BLUEPRINT);
        if password_source.is_none() && a.master_password_source == FROM_BLUEPRINT {
            let unrecorded = matches!(was.password_record, Some(Seen::Missing | Seen::Unreadable));
            if has("master_password") || (modify && unrecorded) {
                // ModifyDBInstance, MasterUserPassword: "doesn't result in an outage and the
                // change is asynchronously applied as soon as possible"; it stays in
                // PendingModifiedValues until then, which `applied` waits out.
                req = req.master_user_password(recall(password)?);
                modify = true;
                record = true;
            }
        }
        if let Some(source) = password_source {
            // Turning Secrets Manager off takes the new password in the same call, and
            // RDS then deletes its secret (ModifyDBInstance, ManageMasterUserPassword).
            let turn_off = (was.master_password_source == MANAGED).then_some(false);
            req = match source {
                FROM_BLUEPRINT => req
                    .set_manage_master_user_password(turn_off)
                    .master_user_password(recall(password)?),
                GENERATED => req
                    .set_manage_master_user_password(turn_off)
                    .master_user_password(stored_password(aws, cx, &parameter).await?),
                _ => req.manage_master_user_password(true),
            };
            modify = true;
        }
        if modify {
            req.send().await.map_err(Error::from)?;
            cx.note(
                "RDS is applying the changes (minutes on AWS; a class change reboots the instance)",
            );
        }
        let db = wait_ready(
            aws,
            cx,
            &a.name,
            "the changes to be applied",
            MODIFY_TIMEOUT,
            applied,
        )
        .await?;
        let arn = db.db_instance_arn().unwrap_or_default();
        if has("final_snapshot") || has("engine_version") {
            add_tags(
                aws,
                arn,
                &[
                    (TAG_FINAL_SNAPSHOT, a.final_snapshot.to_string()),
                    (TAG_ENGINE_VERSION, a.engine_version.clone()),
                ],
            )
            .await?;
        }
        // The tag follows the password, never leads it: a run killed in between finds
        // the instance without it and sets the same stored password again.
        match password_source {
            Some(GENERATED) => {
                add_tags(aws, arn, &[(TAG_PASSWORD_PARAMETER, parameter)]).await?;
            }
            Some(_) if was.master_password_source == GENERATED => {
                remove_tag(aws, arn, TAG_PASSWORD_PARAMETER).await?;
                delete_password_parameter(aws, &parameter).await?;
            }
            _ => {}
        }
        // The record follows the password too: after ModifyDBInstance succeeded.
        let mut seen = (a.master_password_source == FROM_BLUEPRINT)
            .then(|| was.password_record.clone())
            .flatten();
        if record {
            seen = Some(Seen::Record(
                write_record(aws, cx, &recall(password)?).await?,
            ));
        } else if password_source.is_some() && was.master_password_source == FROM_BLUEPRINT {
            // No longer a blueprint password: its record describes nothing.
            let name = digest_parameter(cx.stack, cx.id);
            delete_owned_parameter(aws, cx.stack, cx.id, &name).await?;
        }
        let db = described(aws, &a.name).await?;
        Ok(Some(Raw::Instance(Box::new(db), seen)))
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let a = match attrs_of::<Self>(live)? {
            Attrs::Instance(a) => a,
            Attrs::Leftover { db_instance_id, .. } => {
                return delete_leftover(aws, cx, &live.physical_id, &db_instance_id).await
            }
        };
        let snapshot = a
            .final_snapshot
            .then(|| final_snapshot_name(&live.physical_id));
        delete_instance(aws, cx, &live.physical_id, snapshot).await?;
        // Only once the instance is gone: until then the password still opens it.
        if let Some(name) = live
            .outputs
            .get("master_password_parameter")
            .and_then(Json::as_str)
            .filter(|n| !n.is_empty())
        {
            delete_password_parameter(aws, name).await?;
        }
        // Whatever else securecart keeps for this id (a generated password an earlier
        // switch of source left, the record), if tagged as this resource's.
        for name in [
            password_parameter(cx.stack, cx.id),
            digest_parameter(cx.stack, cx.id),
        ] {
            delete_owned_parameter(aws, cx.stack, cx.id, &name).await?;
        }
        Ok(())
    }
}

/// Where the master password comes from, as far as AWS can tell.
fn source_of(db: &AwsInstance) -> &'static str {
    if db.master_user_secret().is_some() {
        MANAGED
    } else if tag_map(db.tag_list()).contains_key(TAG_PASSWORD_PARAMETER) {
        GENERATED
    } else {
        FROM_BLUEPRINT
    }
}

fn observe_instance(db: &AwsInstance, record: &Option<Seen>) -> Observed<Attrs> {
    let tags = tag_map(db.tag_list());
    let actual_version = db.engine_version().unwrap_or_default();
    // The blueprint's `16` stays `16` while AWS runs 16.4; `16.3` against 16.4 shows.
    let engine_version = match tags.get(TAG_ENGINE_VERSION) {
        Some(v) if version_matches(actual_version, v) => v.clone(),
        _ => actual_version.to_string(),
    };
    let attrs = Db {
        name: db.db_instance_identifier().unwrap_or_default().to_string(),
        engine: db.engine().unwrap_or_default().to_string(),
        engine_version,
        instance_class: db.db_instance_class().unwrap_or_default().to_string(),
        allocated_storage: db.allocated_storage().unwrap_or_default() as i64,
        storage_type: db.storage_type().unwrap_or_default().to_string(),
        storage_encrypted: db.storage_encrypted().unwrap_or(false),
        publicly_accessible: db.publicly_accessible().unwrap_or(false),
        multi_az: db.multi_az().unwrap_or(false),
        availability_zone: db.availability_zone().map(str::to_string),
        backup_retention: db.backup_retention_period().unwrap_or_default() as i64,
        deletion_protection: db.deletion_protection().unwrap_or(false),
        final_snapshot: tags.get(TAG_FINAL_SNAPSHOT).map(String::as_str) != Some("false"),
        db_subnet_group: db
            .db_subnet_group()
            .and_then(|g| g.db_subnet_group_name())
            .unwrap_or_default()
            .to_string(),
        security_groups: Some(security_group_ids(db)),
        master_username: db.master_username().unwrap_or_default().to_string(),
        master_password_source: source_of(db).to_string(),
        // `read` looked for the stack's record of a blueprint password.
        master_password: matches!(record, Some(Seen::Record(_))).then(|| PASSWORD_SAME.into()),
        db_name: db.db_name().map(str::to_string),
        status: status(db),
        password_record: record.clone(),
    };
    let mut outputs = instance_outputs(db);
    outputs.extend([
        (
            "master_user_secret_arn",
            json!(db
                .master_user_secret()
                .and_then(|s| s.secret_arn())
                .unwrap_or_default()),
        ),
        (
            "resource_id",
            json!(db.dbi_resource_id().unwrap_or_default()),
        ),
        (
            "master_password_parameter",
            json!(tags
                .get(TAG_PASSWORD_PARAMETER)
                .map(String::as_str)
                .unwrap_or_default()),
        ),
    ]);
    Observed {
        physical_id: attrs.name.clone(),
        attrs: Attrs::Instance(Box::new(attrs)),
        outputs,
    }
}

// ---- The master password ----------------------------------------------------------
//
// AWS never returns a password, so it cannot be part of the compared attributes; and it
// must never appear in a plan. `desired` hands it to the create or update of the same
// run as the payload ([`Password`]); the attributes say only where it comes from.

fn recall(password: &Password) -> Result<String, Error> {
    password
        .0
        .clone()
        .ok_or_else(|| Error::Invalid("the master password is not known in this run".into()))
}

// ---- The blueprint's master password: change detection ---------------------------
//
// RDS never returns a password (DescribeDBInstances has no such field; ModifyDBInstance
// takes `MasterUserPassword` write-only:
// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBInstance.html>),
// and securecart keeps no state file. So a changed `master_password` would go unseen
// while functions and user data get the new one. securecart therefore keeps, in AWS, a
// record plan can compare without holding the password: a PBKDF2-HMAC-SHA256 digest of
// it with a random salt, in an SSM SecureString parameter of the stack beside the
// generated one (`/securecart/STACK/ID/master-password-digest`, tagged like it).
//
// Why this design:
// - A digest, not the password: the record only has to tell "same or not"; a copy of the
//   password would be one more place to steal it from.
// - Random salt and 600,000 iterations (OWASP Password Storage Cheat Sheet for
//   PBKDF2-HMAC-SHA256), not a plain or stack-derived salt: a blueprint password can be
//   weak and the same in many accounts (every learner's lab has a `primary`); whoever can
//   read the record can test guesses offline, so each guess must cost, and equal passwords
//   must not give equal records. The parameters travel in the record, so they can rise.
// - A SecureString, not a tag: tags show to anyone with `rds:DescribeDBInstances` and in
//   the console; a SecureString is encrypted with the account's `aws/ssm` KMS key and
//   reading it needs `kms:Decrypt` as well
//   (<https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-securestring.html>).
// - Order: on create the record is written BEFORE CreateDBInstance (a run killed in
//   between leaves a record of what it was about to send, at worst one with no instance,
//   which destroy sweeps); on update it is written AFTER ModifyDBInstance succeeded (a run
//   killed in between leaves the old record, so the next plan shows the change again —
//   never "unchanged" for a password the instance does not have).
// - Who compares: `read` has AWS but not the blueprint, `desired` the password but not
//   AWS. `read` puts what it found in the live attributes (`password_record`: the record,
//   or that it is missing, unreadable or someone else's); `against_live`, which the
//   planner and the executor call with the desired attributes, the payload holding the
//   password and the live attributes, compares, so the plan is a pure function of the
//   blueprint and what was read. The compared attributes carry only the verdict
//   ([`PASSWORD_SAME`] / [`PASSWORD_CHANGED`]) — never the password, the digest or the
//   salt; `password_record` is never compared (desired holds at most its state) and the
//   record is registered as a secret, masked wherever text is printed.
// - No record for an instance that exists (made before securecart kept one, or the
//   parameter was deleted): securecart cannot tell, so it plans no blind change; a plan
//   warning says so, and the next ModifyDBInstance securecart sends to the instance for
//   another change also sets the password and writes the record.
// - Only `blueprint` passwords are compared: a `generated` one lives in its own
//   parameter, Secrets Manager's is RDS's; a switch between sources is its own change
//   (`master_password_source`) that sets the password. A read replica has none of its
//   own: RDS replicates the source's.

/// `master_password` of an instance whose record matches the blueprint's password.
const PASSWORD_SAME: &str = "(sensitive)";
/// `master_password` the blueprint wants when the record does not match.
const PASSWORD_CHANGED: &str = "(sensitive, changed)";

/// Where the digest record of DB instance `id` of `stack` lives.
pub(super) fn digest_parameter(stack: &str, id: &str) -> String {
    format!("/securecart/{stack}/{id}/master-password-digest")
}

const KDF: &str = "pbkdf2-sha256";
const KDF_ROUNDS: u32 = 600_000;
const SALT_LEN: usize = 16;

/// A salted digest of a master password: `pbkdf2-sha256$ROUNDS$SALT$DIGEST` (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Record {
    rounds: u32,
    salt: Vec<u8>,
    digest: [u8; 32],
}

impl Record {
    fn new(password: &str) -> Result<Record, Error> {
        Record::with_rounds(password, KDF_ROUNDS)
    }

    fn with_rounds(password: &str, rounds: u32) -> Result<Record, Error> {
        let mut salt = vec![0u8; SALT_LEN];
        os_random(&mut salt)?;
        Ok(Record {
            rounds,
            digest: kdf(password, &salt, rounds),
            salt,
        })
    }

    fn matches(&self, password: &str) -> bool {
        // Not constant-time: both sides are on this machine, nobody times the comparison.
        kdf(password, &self.salt, self.rounds) == self.digest
    }

    fn encode(&self) -> String {
        format!(
            "{KDF}${}${}${}",
            self.rounds,
            hex::encode(&self.salt),
            hex::encode(self.digest)
        )
    }

    fn decode(text: &str) -> Option<Record> {
        let mut parts = text.trim().split('$');
        if parts.next()? != KDF {
            return None;
        }
        let rounds: u32 = parts.next()?.parse().ok()?;
        let salt = hex::decode(parts.next()?).ok()?;
        let digest = hex::decode(parts.next()?).ok()?.try_into().ok()?;
        // A record that costs nothing to test guesses against is no record of ours.
        let sane = (1_000..=10_000_000).contains(&rounds) && salt.len() >= 8;
        (sane && parts.next().is_none()).then_some(Record {
            rounds,
            salt,
            digest,
        })
    }
}

impl From<Record> for String {
    fn from(r: Record) -> String {
        r.encode()
    }
}

impl TryFrom<String> for Record {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Record, Self::Error> {
        Record::decode(&text).ok_or("not a password record")
    }
}

fn kdf(password: &str, salt: &[u8], rounds: u32) -> [u8; 32] {
    pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(password.as_bytes(), salt, rounds)
}

/// What `read` found of an instance's password record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seen {
    Record(Record),
    /// No parameter (an instance made before securecart kept records, or it was deleted).
    Missing,
    /// A parameter that is not a record securecart can read.
    Unreadable,
    /// A parameter at that name that is not tagged as this resource's.
    Foreign,
}

/// Whose an SSM parameter is: `None` when it does not exist, else the blueprint id its
/// tags give it in `stack` (`Some(None)`: not one of the stack's).
async fn parameter_owner(
    aws: &Aws,
    name: &str,
    stack: &str,
) -> Result<Option<Option<String>>, Error> {
    let tags = aws
        .ssm
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .send()
        .await
        .map_err(Error::from);
    let tags = match tags {
        Ok(t) => t,
        Err(e) if e.is_code(&["InvalidResourceId", "ParameterNotFound"]) => return Ok(None),
        Err(e) => return Err(e),
    };
    let tags: BTreeMap<String, String> = tags
        .tag_list()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    Ok(Some(owned_id(&tags, stack)))
}

/// A SecureString's value, decrypted; `None` when there is no such parameter. Whatever it
/// turns out to be, it is registered as a secret: never printed.
async fn secure_value(aws: &Aws, name: &str) -> Result<Option<String>, Error> {
    let got = aws
        .ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(Error::from);
    let value = match got {
        Ok(out) => out
            .parameter()
            .and_then(|p| p.value())
            .unwrap_or_default()
            .to_string(),
        Err(e) if e.is_code(&["ParameterNotFound"]) => return Ok(None),
        Err(e) => return Err(e),
    };
    crate::secrets::register(&value);
    Ok(Some(value))
}

/// The record of DB instance `id` of `stack`, as `read` finds it.
async fn read_record(aws: &Aws, stack: &str, id: &str) -> Result<Seen, Error> {
    let name = digest_parameter(stack, id);
    // Masked by value wherever text is printed: the digest is for comparing, not showing.
    let Some(value) = secure_value(aws, &name).await? else {
        return Ok(Seen::Missing);
    };
    match parameter_owner(aws, &name, stack).await? {
        None => Ok(Seen::Missing),
        Some(owner) if owner.as_deref() != Some(id) => Ok(Seen::Foreign),
        Some(_) => Ok(Record::decode(&value).map_or(Seen::Unreadable, Seen::Record)),
    }
}

/// Writes the record of `password` for the resource of `cx`. A new parameter gets its
/// tags; an existing one (ours: checked) is overwritten, without tags (see [`put_new`]).
async fn write_record(aws: &Aws, cx: &OpCx<'_>, password: &str) -> Result<Record, Error> {
    const WHAT: &str = "Salted digest of an RDS master password, for securecart's change detection";
    let name = digest_parameter(cx.stack, cx.id);
    let made = Record::new(password)?;
    let record = made.encode();
    crate::secrets::register(&record);
    if put_new(aws, cx, &name, WHAT, &record).await? {
        return Ok(made);
    }
    match parameter_owner(aws, &name, cx.stack).await? {
        Some(Some(r)) if r == cx.id => {}
        _ => {
            return Err(Error::Conflict(format!(
                "the SSM parameter {name} exists but is not tagged as the password record of `{}` of stack `{}`; securecart does not overwrite it: delete it or rename the resource",
                cx.id, cx.stack
            )))
        }
    }
    put_secure(aws, &name, WHAT, &record)
        .overwrite(true)
        .send()
        .await?;
    Ok(made)
}

/// PutParameter of a SecureString (encrypted with the account's `aws/ssm` key).
fn put_secure(aws: &Aws, name: &str, what: &str, value: &str) -> PutParameterFluentBuilder {
    aws.ssm
        .put_parameter()
        .name(name)
        .description(what)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
}

/// Stores a new SecureString tagged as the resource of `cx`; false when a parameter is
/// already there. No `Overwrite` at all (it defaults to false, so an existing value is
/// never replaced): SSM refuses Tags together with the Overwrite flag ("tags and
/// overwrite can't be used together", terraform-provider-aws #18550; PutParameter:
/// <https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html>).
async fn put_new(
    aws: &Aws,
    cx: &OpCx<'_>,
    name: &str,
    what: &str,
    value: &str,
) -> Result<bool, Error> {
    let tags = common::tags(cx.stack, cx.id, name)
        .into_iter()
        .map(|(k, v)| aws_sdk_ssm::types::Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Invalid(format!("cannot tag {name}: {e}")))?;
    match put_secure(aws, name, what, value)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(Error::from)
    {
        Ok(_) => Ok(true),
        Err(e) if e.is_code(&["ParameterAlreadyExists"]) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes `name` if it is tagged as resource `id` of `stack`; gone is success, and one
/// that is not ours is left alone (returns false).
async fn delete_owned_parameter(
    aws: &Aws,
    stack: &str,
    id: &str,
    name: &str,
) -> Result<bool, Error> {
    match parameter_owner(aws, name, stack).await? {
        None => Ok(true),
        Some(Some(r)) if r == id => {
            delete_password_parameter(aws, name).await?;
            Ok(true)
        }
        Some(_) => Ok(false),
    }
}

/// Sets the master password of `ident` and waits until RDS has applied it.
async fn set_password(
    aws: &Aws,
    cx: &OpCx<'_>,
    ident: &str,
    password: &str,
) -> Result<AwsInstance, Error> {
    aws.rds
        .modify_db_instance()
        .db_instance_identifier(ident)
        .master_user_password(password)
        .apply_immediately(true)
        .send()
        .await?;
    wait_ready(
        aws,
        cx,
        ident,
        "the new master password to be applied",
        MODIFY_TIMEOUT,
        applied,
    )
    .await
}

// ---- Leftover parameters ----------------------------------------------------------
//
// A run killed between PutParameter and CreateDBInstance (or a create AWS refused)
// leaves a parameter with no instance to delete it with. `read` reports each such
// parameter of the stack as a resource of its own (`ID/master-password`, kind
// `db_instance`), so destroy deletes it; only parameters named like securecart's and
// tagged with the stack and a resource id that has no DB instance count — anything else
// under `/securecart/STACK/` is left alone. While the blueprint has that instance the
// plan keeps the parameter as a part of it (`plan`: `OWNER/part` ids), and the instance's
// create takes it up; so one apply never both creates an instance and removes its
// parameter, and nothing has to serialise the two. A parameter is removed only when the
// plan says so (a destroy, or a blueprint without the instance), and even then not if
// an instance has appeared since (another run made it).

/// The parameter leaves securecart writes for a DB instance.
const PARAMETER_LEAVES: &[&str] = &["master-password", "master-password-digest"];

/// The stack's leftover parameters: tagged for `stack`, named for a DB instance id not in
/// `owners`.
async fn leftover_parameters(
    aws: &Aws,
    stack: &str,
    owners: &BTreeSet<String>,
) -> Result<Vec<(String, Raw)>, Error> {
    let prefix = format!("/securecart/{stack}/");
    let listed = aws
        .ssm
        .get_parameters_by_path()
        .path(&prefix)
        .recursive(true)
        .with_decryption(false)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(Error::from);
    let listed: Vec<_> = match listed {
        Ok(pages) => pages
            .into_iter()
            .flat_map(|p| p.parameters.unwrap_or_default())
            .collect(),
        // An identity allowed to plan without it still plans; only leftovers go unseen.
        Err(e) if e.is_code(&["AccessDeniedException"]) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for p in listed {
        let Some(name) = p.name() else { continue };
        let Some((id, leaf)) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        if !PARAMETER_LEAVES.contains(&leaf) || owners.contains(id) {
            continue;
        }
        match parameter_owner(aws, name, stack).await? {
            Some(Some(r)) if r == id => {}
            _ => continue,
        }
        out.push((
            format!("{id}/{leaf}"),
            Raw::Leftover {
                name: name.to_string(),
                owner: id.to_string(),
            },
        ));
    }
    Ok(out)
}

/// Deletes leftover parameter `name` of DB instance `id`, unless that instance appeared
/// since the plan (another run created it): then it is that instance's again.
async fn delete_leftover(aws: &Aws, cx: &OpCx<'_>, name: &str, id: &str) -> Result<(), Error> {
    if describe(aws, &identifier(cx.stack, id)).await?.is_some() {
        cx.note(format!("{name} belongs to DB instance `{id}` again; kept"));
        return Ok(());
    }
    if !delete_owned_parameter(aws, cx.stack, id, name).await? {
        cx.note(format!(
            "{name} is no longer tagged as `{id}` of this stack; left alone"
        ));
    }
    Ok(())
}

// ---- The generated master password -------------------------------------------------
//
// RDS cannot create read replicas of an instance whose password Secrets Manager manages
// (RDS User Guide, "Password management with Amazon RDS and AWS Secrets Manager" →
// Limitations, <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-secrets-manager.html>;
// terraform-aws-modules/terraform-aws-rds #512, #532). With `master_password: generated` securecart makes the password itself
// and keeps it where the learner can read it and securecart can find it again: an SSM
// SecureString parameter of the stack (free in the standard tier, encrypted with the
// account's `aws/ssm` key). It is stored BEFORE CreateDBInstance, so a run killed in
// between finds it and never sends RDS a second one; it is read back on every later
// create or password change and never regenerated while it exists.

/// Where the generated password of DB instance `id` of `stack` lives.
pub(super) fn password_parameter(stack: &str, id: &str) -> String {
    format!("/securecart/{stack}/{id}/master-password")
}

/// The password stored in `name`, or a new one stored there first. A parameter there
/// that is not this resource's is refused, never overwritten or adopted.
async fn stored_password(aws: &Aws, cx: &OpCx<'_>, name: &str) -> Result<String, Error> {
    // Two attempts: a concurrent run can store it between our read and our write, and
    // PutParameter without Overwrite then answers ParameterAlreadyExists
    // (<https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html>).
    for _ in 0..2 {
        if let Some(p) = read_password(aws, cx, name).await? {
            cx.note(format!("using the master password stored in {name}"));
            return Ok(p);
        }
        let password = generate_password()?;
        crate::secrets::register(&password);
        let what = "Master password of an RDS instance, generated by securecart";
        if put_new(aws, cx, name, what, &password).await? {
            cx.note(format!("generated the master password into {name}"));
            return Ok(password);
        }
    }
    Err(Error::Conflict(format!(
        "{name} appeared and vanished while securecart stored the master password; run again"
    )))
}

/// The stored password, if `name` exists; an error if it is not this resource's.
async fn read_password(aws: &Aws, cx: &OpCx<'_>, name: &str) -> Result<Option<String>, Error> {
    let Some(value) = secure_value(aws, name).await? else {
        return Ok(None);
    };
    match parameter_owner(aws, name, cx.stack).await? {
        // Gone since: generated anew.
        None => Ok(None),
        Some(Some(r)) if r == cx.id => Ok(Some(value)),
        Some(_) => Err(Error::Conflict(format!(
            "the SSM parameter {name} exists but is not tagged as the master password of `{}` of stack `{}`; securecart does not use or overwrite it: delete it or rename the resource",
            cx.id, cx.stack
        ))),
    }
}

/// Deletes the stored password; already gone is success.
async fn delete_password_parameter(aws: &Aws, name: &str) -> Result<(), Error> {
    match aws
        .ssm
        .delete_parameter()
        .name(name)
        .send()
        .await
        .map_err(Error::from)
    {
        Err(e) if !e.is_code(&["ParameterNotFound"]) => Err(e),
        _ => Ok(()),
    }
}

/// Characters of generated passwords: a subset of what RDS allows (printable ASCII but
/// `/`, `@`, `"` and space; CreateDBInstance, MasterUserPassword) that also needs no
/// quoting in a shell or escaping in a `postgresql://` URI.
const PASSWORD_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
/// 32 of 65 characters: about 190 bits, within MySQL's 41-character limit.
const PASSWORD_LEN: usize = 32;

/// A password from the operating system's random source, uniformly over
/// [`PASSWORD_CHARS`] (bytes past the last whole multiple of 65 are dropped).
fn generate_password() -> Result<String, Error> {
    let n = PASSWORD_CHARS.len();
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(PASSWORD_LEN);
    while out.len() < PASSWORD_LEN {
        let mut buf = [0u8; 64];
        os_random(&mut buf)?;
        for b in buf.iter().map(|&b| usize::from(b)).filter(|&b| b < limit) {
            if out.len() == PASSWORD_LEN {
                break;
            }
            out.push(char::from(PASSWORD_CHARS[b % n]));
        }
    }
    Ok(out)
}

/// Fills `buf` from the operating system's CSPRNG (getrandom: the same source on every platform).
fn os_random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::getrandom(buf).map_err(|e| {
        Error::Invalid(format!(
            "cannot read the system's random source to generate the master password: {e}"
        ))
    })
}

// ---- Requests ----------------------------------------------------------------------

/// A checked number as the 32-bit integer the RDS API takes (never wrapped around).
fn api_int(field: &str, v: i64) -> Result<i32, Error> {
    common::int32(field, v).map_err(Error::Invalid)
}

async fn remove_tag(aws: &Aws, arn: &str, key: &str) -> Result<(), Error> {
    aws.rds
        .remove_tags_from_resource()
        .resource_name(arn)
        .tag_keys(key)
        .send()
        .await?;
    Ok(())
}

// ---- Checks ------------------------------------------------------------------------

fn check_version(engine: Engine, v: &str) -> Option<Issue> {
    let parts: Vec<&str> = v.trim().split('.').collect();
    let ok = !v.trim().is_empty()
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    let example = match engine {
        Engine::Postgres => "`\"16\"` or `\"16.4\"`",
        Engine::Mysql => "`\"8.0\"` or `\"8.0.39\"`",
    };
    (!ok && !has_ref(v)).then(|| {
        Issue::new("engine_version", format!("`{v}` is not an engine version"))
            .help(format!("write it as a quoted string like {example}"))
    })
}

fn check_username(engine: Engine, u: &str) -> Option<Issue> {
    let max = match engine {
        Engine::Postgres => 63,
        Engine::Mysql => 32,
    };
    let ok = u.starts_with(|c: char| c.is_ascii_alphabetic())
        && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && u.len() <= max;
    if !ok {
        return Some(Issue::new(
            "master_username",
            format!("`{u}` is not a valid master user name for {}: 1 to {max} letters, digits and `_`, starting with a letter", engine.as_str()),
        ));
    }
    (u.eq_ignore_ascii_case("rdsadmin"))
        .then(|| Issue::new("master_username", "`rdsadmin` is reserved by RDS"))
}

/// Password rules, reported without ever quoting the value.
fn check_password(engine: Engine, p: &str) -> Option<Issue> {
    if has_ref(p) {
        return None;
    }
    let max = match engine {
        Engine::Postgres => 128,
        Engine::Mysql => 41,
    };
    let n = p.chars().count();
    if !(8..=max).contains(&n) {
        return Some(Issue::new(
            "master_password",
            format!(
                "the master password must be 8 to {max} characters long for {}",
                engine.as_str()
            ),
        ));
    }
    let bad = p
        .chars()
        .any(|c| !c.is_ascii_graphic() || matches!(c, '/' | '@' | '"'));
    bad.then(|| {
        Issue::new(
            "master_password",
            "the master password may use printable ASCII characters except `/`, `@`, `\"` and spaces",
        )
    })
}

fn check_db_name(engine: Engine, n: &str) -> Option<Issue> {
    let max = match engine {
        Engine::Postgres => 63,
        Engine::Mysql => 64,
    };
    let ok = n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && n.len() <= max;
    (!ok).then(|| {
        Issue::new(
            "db_name",
            format!("`{n}` is not a valid database name: 1 to {max} letters, digits and `_`, starting with a letter"),
        )
    })
}

fn valid_group_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.eq_ignore_ascii_case("default")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '))
}

// ---- Versions ----------------------------------------------------------------------

fn version_parts(v: &str) -> Vec<u64> {
    v.split('.').map_while(|p| p.parse().ok()).collect()
}

fn major(v: &str) -> Vec<u64> {
    // PostgreSQL 10+ majors are one number; MySQL's are two (8.0).
    let p = version_parts(v);
    let n = if p.first().is_some_and(|&m| m >= 10) {
        1
    } else {
        2
    };
    p.into_iter().take(n).collect()
}

/// `actual` (what AWS runs) is within `wanted` (what the blueprint says): equal, or
/// `wanted` is a prefix at a dot (`16` covers `16.4`).
fn version_matches(actual: &str, wanted: &str) -> bool {
    actual == wanted || actual.starts_with(&format!("{wanted}."))
}

/// `want` is older than `was`, comparing only as many parts as `want` gives.
fn version_lower(want: &str, was: &str) -> bool {
    if version_matches(was, want) {
        return false;
    }
    let (a, b) = (version_parts(want), version_parts(was));
    let n = a.len().min(b.len());
    a[..n] < b[..n]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::{Desired, Kind, TAG_RESOURCE, TAG_STACK, TEST_REGION};
    use aws_sdk_rds::types::{
        DbSubnetGroup, Endpoint, MasterUserSecret, Tag, VpcSecurityGroupMembership,
    };
    use std::path::Path;

    const K: Typed<DbInstance> = Typed(DbInstance);

    /// What `read` makes of an instance (with `record` found of its password record):
    /// attributes as JSON, and outputs.
    fn read(db: &AwsInstance, record: Option<Seen>) -> (Json, BTreeMap<&'static str, Json>) {
        let o = DbInstance.observe(&Raw::Instance(Box::new(db.clone()), record));
        (
            serde_json::to_value(o.attrs).unwrap(),
            o.outputs.into_iter().collect(),
        )
    }

    fn desired_in(stack: &str, id: &str, c: &Json) -> Desired {
        K.desired_in(stack, TEST_REGION, id, c, Path::new("."))
            .unwrap()
    }

    #[test]
    fn identifiers_follow_rds_rules() {
        assert_eq!(identifier("Shop-Dev", "primary"), "shop-dev-primary");
        assert_eq!(identifier("dev", "replica_b"), "dev-replica-b");
        assert_eq!(identifier("dev", "a__b_"), "dev-a-b");
        assert_eq!(identifier("9lives", "db"), "db-9lives-db");
        let long = identifier(
            "a-very-long-stack-name-for-testing-rds",
            "an_even_longer_resource_id_here",
        );
        assert!(long.len() <= 63, "{long}");
        assert!(!long.contains("--") && !long.ends_with('-'), "{long}");
        assert_eq!(
            long,
            identifier(
                "a-very-long-stack-name-for-testing-rds",
                "an_even_longer_resource_id_here"
            )
        );
    }

    #[test]
    fn snapshot_names_are_dated() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114-221320");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        let n = final_snapshot_name("dev-primary");
        assert!(n.starts_with("dev-primary-final-2"), "{n}");
        assert!(!n.contains("--"));
    }

    #[test]
    fn versions() {
        assert!(version_matches("16.4", "16"));
        assert!(!version_matches("16.4", "16.3"));
        assert!(!version_matches("160.1", "16"));
        assert!(version_lower("16.3", "16.4"));
        assert!(version_lower("15", "16.4"));
        assert!(!version_lower("16", "16.4"));
        assert!(!version_lower("17", "16.4"));
        assert!(!version_lower("8.0.40", "8.0.39"));
        assert_eq!(major("16.4"), vec![16]);
        assert_eq!(major("8.0.39"), vec![8, 0]);
    }

    fn config() -> Json {
        json!({
            "engine": "postgres", "engine_version": "16", "instance_class": "db.t4g.micro",
            "db_subnet_group": "dev-db-subnets", "security_groups": ["sg-2", "sg-1"],
        })
    }

    fn aws_instance(tags: &[(&str, &str)]) -> AwsInstance {
        let mut b = AwsInstance::builder()
            .db_instance_identifier("dev-primary")
            .db_instance_arn("arn:aws:rds:us-east-1:1:db:dev-primary")
            .db_instance_status("available")
            .engine("postgres")
            .engine_version("16.4")
            .db_instance_class("db.t4g.micro")
            .allocated_storage(20)
            .storage_type("gp3")
            .storage_encrypted(true)
            .publicly_accessible(false)
            .multi_az(false)
            .availability_zone("us-east-1a")
            .backup_retention_period(7)
            .deletion_protection(false)
            .db_subnet_group(
                DbSubnetGroup::builder()
                    .db_subnet_group_name("dev-db-subnets")
                    .build(),
            )
            .vpc_security_groups(
                VpcSecurityGroupMembership::builder()
                    .vpc_security_group_id("sg-1")
                    .status("active")
                    .build(),
            )
            .vpc_security_groups(
                VpcSecurityGroupMembership::builder()
                    .vpc_security_group_id("sg-2")
                    .status("active")
                    .build(),
            )
            .master_username("dbadmin")
            .master_user_secret(MasterUserSecret::builder().secret_arn("arn:secret").build())
            .endpoint(
                Endpoint::builder()
                    .address("dev-primary.x.rds.amazonaws.com")
                    .port(5432)
                    .build(),
            );
        for (k, v) in tags {
            b = b.tag_list(Tag::builder().key(*k).value(*v).build());
        }
        b.build()
    }

    #[test]
    fn desired_matches_the_shape_read_produces() {
        let d = K.desired("dev", "primary", &config()).unwrap();
        let (l, out) = read(
            &aws_instance(&[
                (TAG_STACK, "dev"),
                (TAG_RESOURCE, "primary"),
                (TAG_ENGINE_VERSION, "16"),
            ]),
            None,
        );
        assert_eq!(crate::diff::diff(&d, &l, &[], &Default::default()), vec![]);
        assert_eq!(out["endpoint"], json!("dev-primary.x.rds.amazonaws.com"));
        assert_eq!(out["port"], json!(5432));
        assert_eq!(out["master_user_secret_arn"], json!("arn:secret"));
        // Without the version tag, AWS's exact version shows.
        let (l, _) = read(&aws_instance(&[]), None);
        assert_eq!(l["engine_version"], json!("16.4"));
        assert_eq!(l["final_snapshot"], json!(true));
    }

    #[test]
    fn the_password_never_enters_the_attributes() {
        let mut c = config();
        c["master_password"] = json!("correct-horse-battery");
        let d = desired_in("pwtest", "primary", &c);
        assert!(
            !d.attrs.to_string().contains("correct-horse"),
            "{}",
            d.attrs
        );
        assert_eq!(d.attrs["master_password_source"], json!("blueprint"));
        // The payload carries it to create and update, and never prints it.
        let p = d.payload.get::<Password>().expect("the password payload");
        assert_eq!(recall(p).unwrap(), "correct-horse-battery");
        assert!(!format!("{d:?}").contains("correct-horse"));
        assert_eq!(
            K.desired("pwtest", "other", &config()).unwrap()["master_password_source"],
            json!("secrets_manager")
        );
    }

    #[test]
    fn a_generated_password_is_named_but_never_held() {
        let mut c = config();
        c["master_password"] = json!(GENERATED);
        let d = desired_in("gentest", "primary", &c);
        assert_eq!(d.attrs["master_password_source"], json!("generated"));
        // Nothing to carry: create and update read it from (or put it into) SSM.
        assert!(recall(d.payload.get::<Password>().unwrap()).is_err());
        // Read back: the parameter tag, and no Secrets Manager secret, say `generated`.
        let name = password_parameter("dev", "primary");
        assert_eq!(name, "/securecart/dev/primary/master-password");
        let mut db = aws_instance(&[
            (TAG_STACK, "dev"),
            (TAG_RESOURCE, "primary"),
            (TAG_ENGINE_VERSION, "16"),
            (TAG_PASSWORD_PARAMETER, &name),
        ]);
        db.master_user_secret = None;
        let (l, out) = read(&db, None);
        let d = K.desired("dev", "primary", &c).unwrap();
        assert_eq!(crate::diff::diff(&d, &l, &[], &Default::default()), vec![]);
        assert_eq!(out["master_password_parameter"], json!(name));
        // Switching from Secrets Manager is an in-place change of the source alone.
        let (managed, out) = read(&aws_instance(&[(TAG_ENGINE_VERSION, "16")]), None);
        assert_eq!(out["master_password_parameter"], json!(""));
        assert_eq!(
            crate::diff::changed_attributes(&d, &managed),
            ["master_password_source"]
        );
        // `generated` is a keyword, not a password: no length error, no plain-text warning.
        let p = problems(&format!("{BASE}    master_password: generated\n"));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn password_records_tell_same_from_changed_and_hold_no_password() {
        // Few rounds here (they travel in the record): unoptimised, 600,000 take seconds.
        let r = Record::with_rounds("correct-horse-battery", 1_000).unwrap();
        assert!(r.matches("correct-horse-battery"));
        assert!(!r.matches("correct-horse-battery2"));
        let text = r.encode();
        assert!(!text.contains("correct-horse"), "{text}");
        assert!(text.starts_with("pbkdf2-sha256$1000$"), "{text}");
        assert_eq!(Record::decode(&text), Some(r.clone()));
        // A fresh salt each time: equal passwords never give equal records.
        let again = Record::with_rounds("correct-horse-battery", 1_000).unwrap();
        assert_ne!(again.encode(), text);
        // PBKDF2-HMAC-SHA256 itself: RFC 7914 section 11's test vector.
        assert_eq!(
            hex::encode(pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 64>(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
        assert_eq!(KDF_ROUNDS, 600_000);
        // As live attributes carry it: the encoded text, which only a record decodes from.
        let seen = serde_json::to_value(Seen::Record(r.clone())).unwrap();
        assert_eq!(seen, json!({ "record": text }));
        assert_eq!(
            serde_json::from_value::<Seen>(seen).unwrap(),
            Seen::Record(r)
        );
        assert_eq!(json!(Seen::Missing), json!("missing"));
        assert!(
            serde_json::from_value::<Seen>(json!({"record": "pbkdf2-sha256$1$00$00"})).is_err()
        );
        for bad in [
            "",
            "sha256$1$00$00",
            "pbkdf2-sha256$1$0011223344556677$00",
            "pbkdf2-sha256$600000$zz$00",
            &format!("{text}$extra"),
        ] {
            assert_eq!(Record::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_plan_compares_a_blueprint_password_with_its_record() {
        let mut c = config();
        c["master_password"] = json!("first-password-1");
        let want = |c: &Json| desired_in("cmptest", "primary", c);
        // What the planner and the executor compare: desired against the live copy.
        let against = |d: &Desired, l: &Json| K.against_live(&d.attrs, &d.payload, l);
        // Nothing read (a create): nothing to compare, and no note.
        let d = want(&c);
        assert!(d.attrs.get("master_password").is_none());
        assert!(K.warnings(&d.attrs).is_empty());
        // An instance with a blueprint password, as `read` finds it with its record.
        let mut db = aws_instance(&[(TAG_STACK, "cmptest"), (TAG_ENGINE_VERSION, "16")]);
        db.master_user_secret = None;
        db.db_instance_identifier = Some(identifier("cmptest", "primary"));
        let live = |seen: Seen| read(&db, Some(seen)).0;
        // The record matches: the same token `read` gives the live instance.
        let record = Record::with_rounds("first-password-1", 1_000).unwrap();
        let r_salt = record.salt.clone();
        let l = live(Seen::Record(record));
        assert_eq!(l["master_password"], json!(PASSWORD_SAME));
        let d = against(&want(&c), &l);
        assert_eq!(d["master_password"], json!(PASSWORD_SAME));
        assert_eq!(
            crate::diff::changed_attributes(&d, &l),
            Vec::<String>::new()
        );
        // Another password: an in-place change, shown as sensitive when it is a secret.
        c["master_password"] = json!("second-password-2");
        let d = against(&want(&c), &l);
        assert_eq!(d["master_password"], json!(PASSWORD_CHANGED));
        let changes = crate::diff::diff(&d, &l, K.replace_on(), &Default::default());
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].attribute, "master_password");
        assert!(!changes[0].forces_replacement);
        // Even unmasked, neither side holds anything of the password or its record, and
        // the desired attributes carry none of the record either.
        let shown = serde_json::to_string(&changes).unwrap() + &d.to_string();
        assert!(
            !shown.contains("second-password") && !shown.contains("pbkdf2"),
            "{shown}"
        );
        assert!(!shown.contains(&hex::encode(&r_salt)), "{shown}");
        // No record for an instance that exists: no blind change, one note.
        let l = live(Seen::Missing);
        let d = against(&want(&c), &l);
        assert!(d.get("master_password").is_none());
        assert!(crate::diff::changed_attributes(&d, &l).is_empty());
        let w = K.warnings(&d).join("\n");
        assert!(w.contains("no record of its master password"), "{w}");
        // A parameter someone else owns at the record's name: a plan error, never used.
        let l = live(Seen::Foreign);
        let e = K.check_change(&l, &against(&want(&c), &l)).unwrap_err();
        assert!(e.contains("not tagged as this resource's"), "{e}");
        // Other sources are not compared.
        c["master_password"] = json!(GENERATED);
        let l = live(Seen::Record(Record::with_rounds("x", 1_000).unwrap()));
        assert!(against(&want(&c), &l).get("master_password").is_none());
    }

    #[test]
    fn generated_passwords_are_long_random_and_acceptable_to_rds() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_ne!(a, b);
        for p in [&a, &b] {
            assert_eq!(p.len(), PASSWORD_LEN);
            assert!(p.bytes().all(|c| PASSWORD_CHARS.contains(&c)), "{p}");
            assert!(check_password(Engine::Postgres, p).is_none());
            assert!(check_password(Engine::Mysql, p).is_none());
        }
        // Every character can come up (a skewed or stuck source would miss some).
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            seen.extend(generate_password().unwrap().bytes());
        }
        assert_eq!(seen.len(), PASSWORD_CHARS.len());
    }

    #[test]
    fn an_instance_still_being_created_is_an_update_that_waits() {
        let tags = [
            (TAG_STACK, "dev"),
            (TAG_RESOURCE, "primary"),
            (TAG_ENGINE_VERSION, "16"),
        ];
        let mut db = aws_instance(&tags);
        db.endpoint = None;
        db.db_instance_status = Some("creating".into());
        let (l, out) = read(&db, None);
        assert!(!out.contains_key("endpoint"));
        let d = K.desired("dev", "primary", &config()).unwrap();
        let changes = crate::diff::diff(&d, &l, K.replace_on(), &Default::default());
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].attribute, "status");
        assert_eq!(changes[0].before, json!("creating"));
        assert_eq!(changes[0].after, json!("available"));
        assert!(!changes[0].forces_replacement);
        // `backing-up` right after creation has its endpoint: nothing to wait for.
        let mut db = aws_instance(&tags);
        db.db_instance_status = Some("backing-up".into());
        assert_eq!(read(&db, None).0["status"], json!("available"));
    }

    #[test]
    fn storage_only_grows_and_versions_only_rise() {
        let at = |engine: &str, storage: i64, version: &str| {
            let mut c = config();
            c["engine"] = json!(engine);
            c["allocated_storage"] = json!(storage);
            c["engine_version"] = json!(version);
            K.desired("dev", "p", &c).unwrap()
        };
        let live = at("postgres", 100, "16.4");
        let shrink = K
            .check_change(&live, &at("postgres", 50, "16"))
            .unwrap_err();
        assert!(shrink.contains("cannot shrink from 100 to 50"), "{shrink}");
        let small = K
            .check_change(&live, &at("postgres", 105, "16.4"))
            .unwrap_err();
        assert!(small.contains("110 GiB"), "{small}");
        assert!(K.check_change(&live, &at("postgres", 110, "17")).is_ok());
        let down = K
            .check_change(&live, &at("postgres", 100, "16.2"))
            .unwrap_err();
        assert!(down.contains("cannot go down"), "{down}");
        // Another engine replaces the instance: its version and size start afresh.
        assert!(K.check_change(&live, &at("mysql", 20, "8.0")).is_ok());
    }

    #[test]
    fn weakened_defaults_are_named() {
        let mut c = config();
        let d = K.desired("dev", "p", &c).unwrap();
        assert!(K.warnings(&d).is_empty());
        c["storage_encrypted"] = json!(false);
        c["publicly_accessible"] = json!(true);
        c["backup_retention"] = json!(0);
        c["final_snapshot"] = json!(false);
        let w = K.warnings(&K.desired("dev", "p", &c).unwrap()).join("\n");
        for id in ["CKV_AWS_16", "RDS.2", "CKV_AWS_133", "RDS.8"] {
            assert!(w.contains(id), "{id} missing in {w}");
        }
    }

    const BASE: &str = "
name: t
parameters:
  pw:
    type: string
    secret: true
    default: s3cret-pass-word
resources:
  sg:
    type: security_group
    vpc: vpc-1
    description: db
  primary:
    type: db_instance
    engine: postgres
    engine_version: \"16\"
    instance_class: db.t4g.micro
    db_subnet_group: dev-db-subnets
    security_groups: [\"${sg}\"]
";

    #[test]
    fn a_good_instance_passes() {
        let p = problems(BASE);
        assert!(p.is_empty(), "{p:?}");
        let p = problems(&format!("{BASE}    master_password: ${{params.pw}}\n"));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn bad_fields_are_explained() {
        let p = problems(&format!(
            "{BASE}    allocated_storage: 10\n    backup_retention: 40\n    multi_az: true\n    availability_zone: us-east-1a\n    master_username: 1admin\n    master_password: short\n  other:\n    type: db_instance\n    engine: mysql\n    engine_version: latest\n    instance_class: t3.micro\n    db_subnet_group: ${{sg}}\n"
        ))
        .join("\n");
        for want in [
            "10 GiB is out of range",
            "40 days is out of range",
            "Multi-AZ instance cannot be placed",
            "not a valid master user name",
            "8 to 128 characters",
            "plain text (security baseline: cfn-nag F23)",
            "`latest` is not an engine version",
            "`t3.micro` is not an RDS instance class",
            "refers to `sg` (type security_group)",
        ] {
            assert!(p.contains(want), "`{want}` missing in:\n{p}");
        }
        assert!(!p.contains("short"), "the password leaked: {p}");
    }

    #[test]
    fn colliding_identifiers_are_reported() {
        let p = problems(&format!(
            "{BASE}    master_password: generated\n  primary_2:\n    type: db_instance\n    engine: postgres\n    engine_version: \"16\"\n    instance_class: db.t4g.micro\n    db_subnet_group: g\n  primary-2:\n    type: db_read_replica\n    source: ${{primary}}\n    instance_class: db.t4g.micro\n"
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("same RDS identifier"), "{p:?}");
    }
}
