//! `db_subnet_group`: the subnets (in at least two availability zones) that RDS may
//! place a DB instance and its replicas or standby in.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::DbSubnetGroup as AwsGroup;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use super::{check_ref, has_ref, owned_id, rds_name, rds_tags, sorted};
use crate::aws::Aws;
use crate::blueprint::refs::{self, Piece, UNKNOWN};
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, aws_error, parse, Error};
use crate::resources::{Kind, Live, OpCx};

pub struct DbSubnetGroup;

/// A DB subnet group.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Fields {
    /// Subnets of one VPC, covering at least two availability zones: references like
    /// `${db_a}` or subnet ids (`subnet-…`). Changed in place.
    subnets: Vec<String>,
    /// What the group is for. Default: `<id> (managed by securecart)`. Changed in place.
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attrs {
    name: String,
    description: String,
    subnets: Vec<String>,
}

#[async_trait]
impl Kind for DbSubnetGroup {
    fn name(&self) -> &'static str {
        "db_subnet_group"
    }

    fn attributes(&self) -> &'static [&'static str] {
        &["name", "arn", "vpc_id"]
    }

    fn schema(&self) -> Json {
        common::schema_of::<Fields>()
    }

    fn check(&self, _id: &str, config: &Json, cx: &CheckCx) -> Vec<Issue> {
        let f: Fields = match parse(config) {
            Ok(f) => f,
            Err(i) => return vec![i],
        };
        let mut issues = Vec::new();
        for (i, s) in f.subnets.iter().enumerate() {
            issues.extend(check_ref(
                &format!("subnets[{i}]"),
                s,
                cx,
                "subnet",
                &["id"],
                |s| s.starts_with("subnet-"),
                "a subnet id (`subnet-…`)",
            ));
        }
        let keys: Vec<String> = f.subnets.iter().map(|s| target_key(s)).collect();
        let distinct: BTreeSet<&String> = keys.iter().collect();
        if distinct.len() < keys.len() {
            issues.push(Issue::new("subnets", "a subnet is listed twice"));
        }
        if distinct.len() < 2 {
            issues.push(
                Issue::new(
                    "subnets",
                    "a DB subnet group needs subnets in at least two availability zones",
                )
                .help("add a subnet in another zone, like `${stack.region}b`"),
            );
            return issues;
        }
        // The zones of referenced subnets, where the blueprint spells them out.
        let zones: Option<BTreeSet<String>> = f
            .subnets
            .iter()
            .map(|s| {
                let r = cx.referenced(s).filter(|r| r.kind == "subnet")?;
                let az = r.config.get("availability_zone")?.as_str()?;
                (!has_ref(az)).then(|| az.to_string())
            })
            .collect();
        if let Some(zones) = zones {
            if zones.len() < 2 {
                let zone = zones.into_iter().next().unwrap_or_default();
                issues.push(
                    Issue::new(
                        "subnets",
                        format!("all these subnets are in one availability zone ({zone}); RDS needs subnets in at least two"),
                    )
                    .help("add a subnet in another zone"),
                );
            }
        }
        if let Some(d) = &f.description {
            if d.len() > 255 || d.trim().is_empty() {
                issues.push(Issue::new(
                    "description",
                    "a description is 1 to 255 characters",
                ));
            }
        }
        issues
    }

    fn desired(&self, stack: &str, id: &str, config: &Json) -> Result<Json, String> {
        let f: Fields = parse(config).map_err(|i| i.message)?;
        Ok(json!(Attrs {
            name: group_name(stack, id),
            description: f
                .description
                .unwrap_or_else(|| format!("{id} (managed by securecart)")),
            subnets: sorted(f.subnets),
        }))
    }

    fn physical_names(&self, stack: &str, id: &str, _config: &Json) -> Vec<(String, String)> {
        vec![("DB subnet group name".into(), group_name(stack, id))]
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &[]
    }

    async fn read(&self, aws: &Aws, stack: &str) -> Result<Vec<Live>, Error> {
        let groups = aws
            .rds
            .describe_db_subnet_groups()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(aws_error("DescribeDBSubnetGroups"))?;
        // Subnet groups come without tags: only names that could be ours get a
        // ListTagsForResource, and only tags decide.
        let prefix = name_prefix(stack);
        let mut out = Vec::new();
        for g in groups {
            let name = g.db_subnet_group_name().unwrap_or_default();
            if !name.starts_with(&prefix) {
                continue;
            }
            let Some(arn) = g.db_subnet_group_arn() else {
                continue;
            };
            if let Some(id) = owned_id(&tags_of(aws, arn).await?, stack) {
                out.push(live(id, &g));
            }
        }
        Ok(out)
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, desired: &Json) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        check_zones(aws, &a.subnets).await?;
        let created = aws
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(&a.name)
            .db_subnet_group_description(&a.description)
            .set_subnet_ids(Some(a.subnets.clone()))
            .set_tags(Some(rds_tags(cx.stack, cx.id, &a.name, &[])))
            .send()
            .await
            .map_err(aws_error("CreateDBSubnetGroup"));
        let group = match created {
            Ok(out) => out
                .db_subnet_group()
                .cloned()
                .ok_or_else(|| Error::Invalid("CreateDBSubnetGroup returned no group".into()))?,
            Err(e)
                if e.is_code(&[
                    "DBSubnetGroupAlreadyExists",
                    "DBSubnetGroupAlreadyExistsFault",
                ]) =>
            {
                // Ours from an interrupted run: bring it to the blueprint; anyone else's: say so.
                let g = describe(aws, &a.name).await?.ok_or(e.clone())?;
                let arn = g.db_subnet_group_arn().unwrap_or_default();
                if owned_id(&tags_of(aws, arn).await?, cx.stack).as_deref() != Some(cx.id) {
                    return Err(Error::Conflict(format!(
                        "a DB subnet group named {} already exists and is not this stack's `{}`; securecart does not adopt it ({e})",
                        a.name, cx.id
                    )));
                }
                cx.note("found the subnet group an earlier attempt created");
                modify(aws, &a).await?
            }
            Err(e) => return Err(e),
        };
        Ok(live(cx.id.to_string(), &group))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        _live: &Live,
        desired: &Json,
        _changed: &[String],
    ) -> Result<Live, Error> {
        let a: Attrs = common::from_desired(desired)?;
        check_zones(aws, &a.subnets).await?;
        let group = modify(aws, &a).await?;
        Ok(live(cx.id.to_string(), &group))
    }

    async fn delete(&self, aws: &Aws, cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let r = common::retry_on(
            cx,
            &[
                "InvalidDBSubnetGroupStateFault",
                "InvalidDBSubnetGroupState",
            ],
            Duration::from_secs(30 * 60),
            "a DB instance still uses the subnet group (RDS takes minutes to delete one)",
            || async {
                aws.rds
                    .delete_db_subnet_group()
                    .db_subnet_group_name(&live.physical_id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(aws_error("DeleteDBSubnetGroup"))
            },
        )
        .await;
        match r {
            Err(e) if e.is_code(&["DBSubnetGroupNotFoundFault", "DBSubnetGroupNotFound"]) => Ok(()),
            other => other,
        }
    }
}

/// The group's name: like an instance identifier (lower-case; RDS lower-cases it anyway).
fn group_name(stack: &str, id: &str) -> String {
    rds_name(stack, id, 255)
}

/// What every group name of `stack` starts with.
fn name_prefix(stack: &str) -> String {
    let n = group_name(stack, "x");
    n[..n.len() - 1].to_string()
}

/// What a subnet entry points at: the referenced resource, or the literal id.
fn target_key(s: &str) -> String {
    match refs::scan(s).ok().as_deref() {
        Some([Piece::Ref(r)]) => format!("${{{}}}", r.target),
        _ => s.to_string(),
    }
}

async fn tags_of(aws: &Aws, arn: &str) -> Result<Vec<aws_sdk_rds::types::Tag>, Error> {
    Ok(aws
        .rds
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(aws_error("ListTagsForResource"))?
        .tag_list()
        .to_vec())
}

async fn describe(aws: &Aws, name: &str) -> Result<Option<AwsGroup>, Error> {
    match aws
        .rds
        .describe_db_subnet_groups()
        .db_subnet_group_name(name)
        .send()
        .await
        .map_err(aws_error("DescribeDBSubnetGroups"))
    {
        Ok(o) => Ok(o.db_subnet_groups().first().cloned()),
        Err(e) if e.is_code(&["DBSubnetGroupNotFoundFault", "DBSubnetGroupNotFound"]) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn modify(aws: &Aws, a: &Attrs) -> Result<AwsGroup, Error> {
    aws.rds
        .modify_db_subnet_group()
        .db_subnet_group_name(&a.name)
        .db_subnet_group_description(&a.description)
        .set_subnet_ids(Some(a.subnets.clone()))
        .send()
        .await
        .map_err(aws_error("ModifyDBSubnetGroup"))?
        .db_subnet_group()
        .cloned()
        .ok_or_else(|| Error::Invalid("ModifyDBSubnetGroup returned no group".into()))
}

/// RDS refuses a group in fewer than two zones; the emulator does not, so say it here,
/// naming the zone, before asking.
async fn check_zones(aws: &Aws, subnets: &[String]) -> Result<(), Error> {
    if subnets.iter().any(|s| s == UNKNOWN) {
        return Ok(());
    }
    let out = aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(subnets.to_vec()))
        .send()
        .await
        .map_err(aws_error("DescribeSubnets"))?;
    let zones: BTreeSet<&str> = out
        .subnets()
        .iter()
        .filter_map(|s| s.availability_zone())
        .collect();
    if zones.len() < 2 {
        return Err(Error::Invalid(format!(
            "the subnets {} cover only {}; a DB subnet group needs at least two availability zones",
            subnets.join(", "),
            zones
                .into_iter()
                .next()
                .map(|z| format!("zone {z}"))
                .unwrap_or_else(|| "no zone".into())
        )));
    }
    Ok(())
}

fn live(id: String, g: &AwsGroup) -> Live {
    let name = g.db_subnet_group_name().unwrap_or_default().to_string();
    let attrs = Attrs {
        name: name.clone(),
        description: g
            .db_subnet_group_description()
            .unwrap_or_default()
            .to_string(),
        subnets: sorted(
            g.subnets()
                .iter()
                .filter_map(|s| s.subnet_identifier().map(str::to_string))
                .collect(),
        ),
    };
    let outputs = [
        ("name".to_string(), json!(name)),
        (
            "arn".to_string(),
            json!(g.db_subnet_group_arn().unwrap_or_default()),
        ),
        ("vpc_id".to_string(), json!(g.vpc_id().unwrap_or_default())),
    ]
    .into_iter()
    .collect();
    Live {
        id,
        kind: "db_subnet_group",
        physical_id: name,
        attrs: json!(attrs),
        outputs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use aws_sdk_rds::types::Subnet;

    const NET: &str = "
name: t
resources:
  vpc:
    type: vpc
    cidr_block: 10.0.0.0/16
  a:
    type: subnet
    vpc: ${vpc}
    cidr_block: 10.0.1.0/24
    availability_zone: ${stack.region}a
  a2:
    type: subnet
    vpc: ${vpc}
    cidr_block: 10.0.2.0/24
    availability_zone: ${stack.region}a
  b:
    type: subnet
    vpc: ${vpc}
    cidr_block: 10.0.3.0/24
    availability_zone: ${stack.region}b
";

    #[test]
    fn two_zones_pass() {
        let p = problems(&format!(
            "{NET}  g:\n    type: db_subnet_group\n    subnets: [\"${{a}}\", \"${{b.id}}\"]\n"
        ));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn one_zone_is_an_error_naming_it() {
        let p = problems(&format!(
            "{NET}  g:\n    type: db_subnet_group\n    subnets: [\"${{a}}\", \"${{a2}}\"]\n"
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("one availability zone (${stack.region}a)"),
            "{p:?}"
        );
        let p = problems(&format!(
            "{NET}  g:\n    type: db_subnet_group\n    subnets: [\"${{a}}\", \"${{a}}\"]\n  h:\n    type: db_subnet_group\n    subnets: [\"${{vpc}}\", subnet-1]\n"
        ))
        .join("\n");
        assert!(p.contains("listed twice"), "{p}");
        assert!(p.contains("at least two availability zones"), "{p}");
        assert!(p.contains("refers to `vpc` (type vpc)"), "{p}");
    }

    #[test]
    fn desired_matches_the_shape_read_produces() {
        let d = DbSubnetGroup
            .desired(
                "Dev",
                "db_subnets",
                &json!({"subnets": ["subnet-b", "subnet-a"]}),
            )
            .unwrap();
        let g = AwsGroup::builder()
            .db_subnet_group_name("dev-db-subnets")
            .db_subnet_group_description("db_subnets (managed by securecart)")
            .db_subnet_group_arn("arn:aws:rds:us-east-1:1:subgrp:dev-db-subnets")
            .vpc_id("vpc-1")
            .subnets(Subnet::builder().subnet_identifier("subnet-a").build())
            .subnets(Subnet::builder().subnet_identifier("subnet-b").build())
            .build();
        let l = live("db_subnets".into(), &g);
        assert_eq!(d, l.attrs);
        assert_eq!(l.outputs["vpc_id"], json!("vpc-1"));
        assert_eq!(name_prefix("Dev"), "dev-");
        assert_eq!(name_prefix("1x"), "db-1x-");
    }
}
