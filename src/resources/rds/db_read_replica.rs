//! `db_read_replica`: a read-only copy of a `db_instance`, kept up to date by RDS
//! replication, usually in another availability zone. `promote: true` turns it into a
//! standalone instance.

use async_trait::async_trait;
use aws_sdk_rds::types::DbInstance as AwsInstance;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{
    add_tags, applied, check_class, check_ref, check_zone, create_or_adopt, delete_instance,
    describe, described, final_snapshot_name, identifier, instance_outputs, lower_known, rds_tags,
    security_group_ids, stack_instances, status, tag_map, wait_created, wait_ready, CREATE_TIMEOUT,
    GENERATED, MODIFY_TIMEOUT, READY, TAG_FINAL_SNAPSHOT, TAG_KIND,
};
use crate::aws::Aws;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, Error};
use crate::resources::fields::{check_id_ref, id_set};
use crate::resources::typed::{attrs_of, Changed, Listed, Observed, Resource, Site, Typical};
use crate::resources::{Live, OpCx};

pub struct DbReadReplica;

/// Set once securecart has promoted the replica (the emulator keeps reporting the source).
const TAG_PROMOTED: &str = "securecart:promoted";
/// The primary's identifier, which AWS stops reporting once the replica is promoted.
const TAG_SOURCE: &str = "securecart:source";

/// A read replica of a DB instance.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// The primary: a reference like `${primary}` to a `db_instance` with backups on
    /// (`backup_retention` ≥ 1) and a master password RDS may copy: `generated` or a
    /// parameter, not Secrets Manager's (the default). It must be available first,
    /// which the reference ensures. Changing it replaces the replica. The replica has
    /// the source's master password (it has none of its own): a change of the source's
    /// `master_password` reaches it by replication.
    source: String,
    /// Instance class, like `db.t4g.micro`. Changed in place.
    instance_class: String,
    /// Zone of the replica, like `${stack.zones[1]}` or a zone ID: another zone than the primary's
    /// keeps a reader up when that zone fails. Left out, RDS picks one of the subnet
    /// group's zones. Changing it replaces the replica.
    #[serde(default)]
    availability_zone: Option<String>,
    /// Security groups: references like `${db_sg}` or ids (`sg-…`). Left out, the
    /// replica gets the primary's groups when it is created (AWS itself would give it
    /// the VPC's default group). Changed in place.
    #[serde(default)]
    security_groups: Option<Vec<String>>,
    /// Reachable from the internet. Off by default (security baseline CKV_AWS_17 /
    /// RDS.2). Changed in place.
    #[serde(default)]
    publicly_accessible: bool,
    /// `true` promotes the replica to a standalone, writable instance: replication
    /// stops for good (RDS reboots it; minutes on AWS). A promoted replica cannot become
    /// a replica again: setting it back to false is an error at plan time.
    #[serde(default)]
    promote: bool,
    /// Once promoted, take a final snapshot when it is deleted (replicas themselves have
    /// none). On by default; the labs turn it off.
    #[serde(default = "yes")]
    final_snapshot: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    source: String,
    instance_class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    security_groups: Option<Vec<String>>,
    publicly_accessible: bool,
    promoted: bool,
    final_snapshot: bool,
    /// As on `db_instance`: `available` once the replica has its endpoint.
    status: String,
}

#[async_trait]
impl Resource for DbReadReplica {
    const KIND: &'static str = "db_read_replica";
    const ZONE_FIELDS: &'static [&'static str] = &["availability_zone"];
    const ATTRIBUTES: &'static [&'static str] = &["id", "arn", "endpoint", "port"];
    const REPLACE_ON: &'static [&'static str] = &["source", "availability_zone"];

    /// Typical time on AWS: A replica is created from a snapshot of the source: 8–15 minutes,
    /// 10–20 in labs/03/README.md ("primary + read replica ≈ 23 min" in Terraform acceptance
    /// runs, shared/notes/aws-behaviour.md); promote and class changes reboot it (several
    /// minutes); delete as an instance.
    const TYPICAL: Typical = Typical {
        create: 660,
        update: 300,
        delete: 420,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    type Raw = AwsInstance;

    fn check(&self, _id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut issues = Vec::new();
        issues.extend(check_ref(
            "source",
            &f.source,
            cx,
            "db_instance",
            &["id"],
            |s| {
                !s.is_empty()
                    && s.len() <= 63
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            },
            "the identifier of an existing DB instance",
        ));
        issues.extend(check_class("instance_class", &f.instance_class));
        if let Some(az) = &f.availability_zone {
            issues.extend(check_zone("availability_zone", az));
        }
        for (i, sg) in f.security_groups.iter().flatten().enumerate() {
            let path = format!("security_groups[{i}]");
            issues.extend(check_id_ref(&path, sg, cx, "security_group", "sg-"));
        }
        if let Some(primary) = cx.referenced(&f.source).filter(|r| r.kind == "db_instance") {
            let retention = primary
                .config
                .get("backup_retention")
                .and_then(Json::as_i64);
            if retention == Some(0) {
                issues.push(
                    Issue::new(
                        "source",
                        format!(
                            "`{}` has backup_retention 0: RDS builds a replica from the primary's automated backups and streams its transaction log, so a primary without backups cannot have read replicas",
                            primary.id
                        ),
                    )
                    .help(format!("set `backup_retention` of `{}` to 1 or more", primary.id)),
                );
            }
            // Left out (or empty), the primary's password is managed by Secrets Manager.
            let managed = primary
                .config
                .get("master_password")
                .is_none_or(Json::is_null);
            if managed {
                let engine = primary
                    .config
                    .get("engine")
                    .and_then(Json::as_str)
                    .unwrap_or("postgres");
                issues.push(
                    Issue::new(
                        "source",
                        format!(
                            "`{}` lets Secrets Manager manage its master password (it has no `master_password`), and RDS refuses read replicas of such an instance: \"InvalidParameterValue: Creating read replicas for source instance with engine {engine} where ManageMasterUserPassword is enabled is not supported\" (RDS User Guide, \"Password management with Amazon RDS and AWS Secrets Manager\", Limitations)",
                            primary.id
                        ),
                    )
                    .help(format!(
                        "write `master_password: {GENERATED}` in `{}`: securecart then generates the password into an SSM SecureString parameter of the stack and never shows it; a parameter with `secret: true` works too",
                        primary.id
                    )),
                );
            }
            let primary_az = primary
                .config
                .get("availability_zone")
                .and_then(Json::as_str);
            if let (Some(mine), Some(theirs)) = (&f.availability_zone, primary_az) {
                if mine == theirs {
                    issues.push(
                        Issue::new(
                            "availability_zone",
                            format!("the replica is in the zone of its primary `{}` ({mine}); in another zone it keeps a reader up when that zone fails", primary.id),
                        )
                        .warning(),
                    );
                }
            }
        }
        issues
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let a = Attrs {
            name: identifier(site.stack, site.id),
            source: lower_known(&f.source),
            instance_class: f.instance_class.trim().to_ascii_lowercase(),
            availability_zone: f.availability_zone,
            security_groups: f.security_groups.map(id_set),
            publicly_accessible: f.publicly_accessible,
            promoted: f.promote,
            final_snapshot: f.final_snapshot,
            status: READY.to_string(),
        };
        Ok((a, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, _: &Fields) -> Vec<(String, String)> {
        vec![("RDS identifier".into(), identifier(stack, id))]
    }

    fn check_change(&self, live: &Attrs, desired: &Attrs) -> Result<(), String> {
        if live.promoted && !desired.promoted {
            return Err(
                "this replica was promoted to a standalone instance and cannot become a replica again: keep `promote: true`, or rename the resource to create a new replica".into(),
            );
        }
        Ok(())
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        let mut w = Vec::new();
        if a.publicly_accessible {
            w.push("the replica is publicly accessible (checkov CKV_AWS_17, trivy AWS-0180, cfn-nag F22, Security Hub RDS.2): leave `publicly_accessible` at its default, false".to_string());
        }
        w
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        stack_instances(aws, stack, Self::KIND).await
    }

    fn observe(&self, db: &AwsInstance) -> Observed<Attrs> {
        let tags = tag_map(db.tag_list());
        let reported = db.read_replica_source_db_instance_identifier();
        let name = db.db_instance_identifier().unwrap_or_default().to_string();
        Observed {
            physical_id: name.clone(),
            outputs: instance_outputs(db),
            attrs: Attrs {
                name,
                // Kept after promotion (AWS forgets it), so the plan stays quiet and
                // destroy still deletes the replica before its primary.
                source: reported
                    .map(str::to_string)
                    .or_else(|| tags.get(TAG_SOURCE).cloned())
                    .unwrap_or_default(),
                instance_class: db.db_instance_class().unwrap_or_default().to_string(),
                availability_zone: db.availability_zone().map(str::to_string),
                security_groups: Some(security_group_ids(db)),
                publicly_accessible: db.publicly_accessible().unwrap_or(false),
                promoted: promoted_tag(db) || reported.is_none(),
                final_snapshot: tags.get(TAG_FINAL_SNAPSHOT).map(String::as_str) != Some("false"),
                status: status(db),
            },
        }
    }

    async fn create(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        a: &Attrs,
        _: &(),
    ) -> Result<AwsInstance, Error> {
        let source = describe(aws, &a.source).await?.ok_or_else(|| {
            Error::Conflict(format!(
                "the source DB instance {} does not exist",
                a.source
            ))
        })?;
        // A source named by its identifier is not in the blueprint for `check` to see.
        if source.master_user_secret().is_some() {
            return Err(Error::Conflict(format!(
                "the source DB instance {} lets Secrets Manager manage its master password, and RDS creates no read replicas of such an instance (RDS User Guide, \"Password management with Amazon RDS and AWS Secrets Manager\", Limitations): give it `master_password: {GENERATED}` and apply first",
                a.source
            )));
        }
        if source.backup_retention_period() == Some(0) {
            return Err(Error::Conflict(format!(
                "the source DB instance {} has backups off (backup retention 0), and RDS creates replicas only of instances with automated backups",
                a.source
            )));
        }
        // AWS would give the replica the VPC's default group: keep it behind the primary's.
        let groups = a
            .security_groups
            .clone()
            .unwrap_or_else(|| security_group_ids(&source));
        let tags = rds_tags(
            cx.stack,
            cx.id,
            &a.name,
            &[
                (TAG_KIND, "db_read_replica".to_string()),
                (TAG_SOURCE, a.source.clone()),
                (TAG_FINAL_SNAPSHOT, a.final_snapshot.to_string()),
            ],
        );
        // While RDS sets up a sibling replica, the primary can be briefly busy.
        let once = || async {
            aws.rds
                .create_db_instance_read_replica()
                .db_instance_identifier(&a.name)
                .source_db_instance_identifier(&a.source)
                .db_instance_class(&a.instance_class)
                .set_availability_zone(a.availability_zone.clone())
                .publicly_accessible(a.publicly_accessible)
                .set_vpc_security_group_ids((!groups.is_empty()).then(|| groups.clone()))
                .copy_tags_to_snapshot(true)
                .set_tags(Some(tags.clone()))
                .send()
                .await?;
            Ok(())
        };
        let send = || {
            common::retry_on(
                cx,
                &["InvalidDBInstanceState", "InvalidDBInstanceStateFault"],
                CREATE_TIMEOUT,
                "the primary is busy (a backup, a change or another replica in progress)",
                once,
            )
        };
        create_or_adopt(aws, cx, &a.name, send).await?;
        cx.note(format!(
            "RDS is copying {} into the replica (10 minutes or more on AWS)",
            a.source
        ));
        let mut db = wait_ready(
            aws,
            cx,
            &a.name,
            "the replica to be available",
            CREATE_TIMEOUT,
            |_| true,
        )
        .await?;
        if a.promoted {
            db = promote(aws, cx, &db).await?;
        }
        Ok(db)
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        _: &(),
        changed: Changed<'_>,
    ) -> Result<Option<AwsInstance>, Error> {
        let ident = live.physical_id.as_str();
        let mut db = if changed.has("status") {
            wait_created(aws, cx, ident).await?
        } else {
            described(aws, ident).await?
        };
        if changed.has("promoted") && a.promoted {
            db = promote(aws, cx, &db).await?;
        }
        let mut req = aws
            .rds
            .modify_db_instance()
            .db_instance_identifier(ident)
            .apply_immediately(true);
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
        if set("publicly_accessible") {
            req = req.publicly_accessible(a.publicly_accessible);
        }
        if set("security_groups") {
            req = req.set_vpc_security_group_ids(a.security_groups.clone());
        }
        if modify {
            req.send().await.map_err(Error::from)?;
            cx.note("RDS is applying the changes (minutes on AWS)");
            db = wait_ready(
                aws,
                cx,
                &a.name,
                "the changes to be applied",
                MODIFY_TIMEOUT,
                applied,
            )
            .await?;
        }
        if changed.has("final_snapshot") {
            add_tags(
                aws,
                db.db_instance_arn().unwrap_or_default(),
                &[(TAG_FINAL_SNAPSHOT, a.final_snapshot.to_string())],
            )
            .await?;
            db = described(aws, &a.name).await?;
        }
        Ok(Some(db))
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let a = attrs_of::<Self>(live)?;
        // RDS takes no final snapshot of a replica; a promoted one is a database of its own.
        let snapshot =
            (a.promoted && a.final_snapshot).then(|| final_snapshot_name(&live.physical_id));
        delete_instance(aws, cx, &live.physical_id, snapshot).await
    }
}

/// Promotes the replica, waits until it stands alone, and records that in a tag.
async fn promote(aws: &Aws, cx: &OpCx<'_>, db: &AwsInstance) -> Result<AwsInstance, Error> {
    let ident = db.db_instance_identifier().unwrap_or_default().to_string();
    if db.read_replica_source_db_instance_identifier().is_some() && !promoted_tag(db) {
        aws.rds
            .promote_read_replica()
            .db_instance_identifier(&ident)
            .send()
            .await?;
        cx.note("RDS is promoting the replica (it reboots; minutes on AWS)");
    }
    // AWS drops the source once promotion is done; the emulator never does.
    let local = aws.local;
    wait_ready(
        aws,
        cx,
        &ident,
        "the promotion to finish",
        MODIFY_TIMEOUT,
        move |d| local || d.read_replica_source_db_instance_identifier().is_none(),
    )
    .await?;
    add_tags(
        aws,
        db.db_instance_arn().unwrap_or_default(),
        &[(TAG_PROMOTED, "true".to_string())],
    )
    .await?;
    described(aws, &ident).await
}

fn promoted_tag(db: &AwsInstance) -> bool {
    tag_map(db.tag_list()).get(TAG_PROMOTED).map(String::as_str) == Some("true")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::{Kind, TAG_RESOURCE, TAG_STACK};
    use aws_sdk_rds::types::{Endpoint, Tag};
    use serde_json::json;

    const K: Typed<DbReadReplica> = Typed(DbReadReplica);

    /// The attributes `read` gives a replica, as JSON.
    fn attrs(db: &AwsInstance) -> Json {
        serde_json::to_value(DbReadReplica.observe(db).attrs).unwrap()
    }

    const BASE: &str = "
name: t
resources:
  primary:
    type: db_instance
    engine: postgres
    engine_version: \"16\"
    instance_class: db.t4g.micro
    db_subnet_group: g
    availability_zone: ${stack.region}a
    master_password: generated
";

    #[test]
    fn replicas_in_other_zones_pass() {
        let p = problems(&format!(
            "{BASE}  r1:\n    type: db_read_replica\n    source: ${{primary}}\n    instance_class: db.t4g.micro\n    availability_zone: ${{stack.region}}b\n"
        ));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn a_primary_without_backups_is_an_error_that_says_why() {
        let p = problems(&format!(
            "{BASE}    backup_retention: 0\n  r1:\n    type: db_read_replica\n    source: ${{primary}}\n    instance_class: db.t4g.micro\n"
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("Error resources.r1.source"), "{p:?}");
        assert!(
            p[0].contains("backup_retention 0") && p[0].contains("cannot have read replicas"),
            "{p:?}"
        );
    }

    #[test]
    fn a_primary_whose_password_secrets_manager_keeps_is_an_error_that_says_why() {
        let base = BASE.replace("    master_password: generated\n", "");
        let p = problems(&format!(
            "{base}  r1:\n    type: db_read_replica\n    source: ${{primary}}\n    instance_class: db.t4g.micro\n    availability_zone: ${{stack.region}}b\n"
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("Error resources.r1.source"), "{p:?}");
        for want in [
            "`primary` lets Secrets Manager manage its master password",
            "with engine postgres where ManageMasterUserPassword is enabled is not supported",
            "Limitations",
        ] {
            assert!(p[0].contains(want), "`{want}` missing in {p:?}");
        }
        // A password from a secret parameter is one RDS can copy to the replica.
        let with_param = base.replace(
            "resources:\n",
            "parameters:\n  pw:\n    type: string\n    secret: true\n    default: s3cret-pass-word\nresources:\n",
        ) + "    master_password: ${params.pw}\n";
        let p = problems(&format!(
            "{with_param}  r1:\n    type: db_read_replica\n    source: ${{primary}}\n    instance_class: db.t4g.micro\n    availability_zone: ${{stack.region}}b\n"
        ));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn a_replica_has_no_password_of_its_own() {
        // RDS copies the source's master password (and replicates later changes of it):
        // one written on a replica is refused where it stands, without being quoted.
        let p = problems(&format!(
            "{BASE}  r1:\n    type: db_read_replica\n    source: ${{primary}}\n    instance_class: db.t4g.micro\n    availability_zone: ${{stack.region}}b\n    master_password: another-pass-1\n"
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            p[0],
            "Error resources.r1.master_password: unknown field `master_password`"
        );
    }

    #[test]
    fn same_zone_warns_and_wrong_sources_are_errors() {
        let p = problems(&format!(
            "{BASE}  r1:\n    type: db_read_replica\n    source: ${{primary}}\n    instance_class: db.t4g.micro\n    availability_zone: ${{stack.region}}a\n  r2:\n    type: db_read_replica\n    source: ${{r1}}\n    instance_class: db.t4g.micro\n"
        ))
        .join("\n");
        assert!(p.contains("Warning resources.r1.availability_zone"), "{p}");
        assert!(p.contains("refers to `r1` (type db_read_replica)"), "{p}");
    }

    #[test]
    fn demoting_is_refused() {
        let cfg = |promote: bool| {
            K.desired(
                "dev",
                "r1",
                &json!({"source": "dev-primary", "instance_class": "db.t4g.micro", "promote": promote}),
            )
            .unwrap()
        };
        let e = K.check_change(&cfg(true), &cfg(false)).unwrap_err();
        assert!(e.contains("cannot become a replica again"), "{e}");
        assert!(K.check_change(&cfg(false), &cfg(true)).is_ok());
    }

    fn replica(source: Option<&str>, tags: &[(&str, &str)]) -> AwsInstance {
        let mut b = AwsInstance::builder()
            .db_instance_identifier("dev-r1")
            .db_instance_arn("arn:aws:rds:us-east-1:1:db:dev-r1")
            .db_instance_class("db.t4g.micro")
            .availability_zone("us-east-1b")
            .publicly_accessible(false)
            .set_read_replica_source_db_instance_identifier(source.map(str::to_string))
            .endpoint(Endpoint::builder().address("dev-r1.x").port(5432).build());
        for (k, v) in tags {
            b = b.tag_list(Tag::builder().key(*k).value(*v).build());
        }
        b.build()
    }

    #[test]
    fn desired_matches_read_before_and_after_promotion() {
        let tags = [
            (TAG_STACK, "dev"),
            (TAG_RESOURCE, "r1"),
            (TAG_SOURCE, "dev-primary"),
        ];
        let cfg = json!({"source": "dev-primary", "instance_class": "db.t4g.micro", "availability_zone": "us-east-1b"});
        let d = K.desired("dev", "r1", &cfg).unwrap();
        let l = attrs(&replica(Some("dev-primary"), &tags));
        assert_eq!(crate::diff::diff(&d, &l, &[], &Default::default()), vec![]);

        let mut cfg = cfg;
        cfg["promote"] = json!(true);
        let d = K.desired("dev", "r1", &cfg).unwrap();
        let changes = crate::diff::diff(&d, &l, K.replace_on(), &Default::default());
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].attribute, "promoted");
        assert!(!changes[0].forces_replacement);
        // Real AWS forgets the source; the emulator keeps it but the tag says promoted.
        for after in [
            replica(None, &tags),
            replica(
                Some("dev-primary"),
                &[tags[0], tags[1], tags[2], (TAG_PROMOTED, "true")],
            ),
        ] {
            assert_eq!(
                crate::diff::diff(&d, &attrs(&after), &[], &Default::default()),
                vec![]
            );
        }
    }

    #[test]
    fn a_replica_still_being_created_is_an_update_that_waits() {
        let tags = [(TAG_STACK, "dev"), (TAG_RESOURCE, "r1")];
        let mut db = replica(Some("dev-primary"), &tags);
        db.endpoint = None;
        db.db_instance_status = Some("creating".into());
        let o = DbReadReplica.observe(&db);
        assert!(!o.outputs.iter().any(|(k, _)| *k == "endpoint"));
        let cfg = json!({"source": "dev-primary", "instance_class": "db.t4g.micro", "availability_zone": "us-east-1b"});
        let d = K.desired("dev", "r1", &cfg).unwrap();
        let changes = crate::diff::diff(&d, &attrs(&db), K.replace_on(), &Default::default());
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            (
                changes[0].attribute.as_str(),
                &changes[0].before,
                &changes[0].after
            ),
            ("status", &json!("creating"), &json!("available"))
        );
        assert!(!changes[0].forces_replacement);
    }

    #[test]
    fn replicas_go_before_their_primary() {
        let primary = Live {
            id: "primary".into(),
            kind: "db_instance",
            physical_id: "dev-primary".into(),
            attrs: json!({"name": "dev-primary"}),
            outputs: [("id".to_string(), json!("dev-primary"))]
                .into_iter()
                .collect(),
        };
        let o = DbReadReplica.observe(&replica(None, &[(TAG_SOURCE, "dev-primary")]));
        let r = Live {
            id: "r1".into(),
            kind: "db_read_replica",
            physical_id: o.physical_id,
            attrs: serde_json::to_value(o.attrs).unwrap(),
            outputs: o
                .outputs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        };
        let deps = crate::plan::live_dependencies(&[primary, r]);
        assert!(deps[1].contains(&0), "{deps:?}");
        assert!(deps[0].is_empty(), "{deps:?}");
    }
}
