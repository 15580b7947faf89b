//! `db_subnet_group`: the subnets (in at least two availability zones) that RDS may
//! place a DB instance and its replicas or standby in.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::DbSubnetGroup as AwsGroup;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{has_ref, rds_name, rds_tags, tag_map};
use crate::aws::Aws;
use crate::blueprint::refs::UNKNOWN;
use crate::blueprint::{CheckCx, Issue};
use crate::resources::common::{self, owned_id, Error};
use crate::resources::fields::{check_id_ref, id_set, ref_key};
use crate::resources::typed::{
    Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct DbSubnetGroup;

/// A DB subnet group.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// Subnets of one VPC, covering at least two availability zones: references like
    /// `${db_a}` or subnet ids (`subnet-…`). Changed in place.
    subnets: Vec<String>,
    /// What the group is for. Default: `<id> (managed by securecart)`. Changed in place.
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    description: String,
    subnets: Vec<String>,
}

#[async_trait]
impl Resource for DbSubnetGroup {
    const KIND: &'static str = "db_subnet_group";
    const ATTRIBUTES: &'static [&'static str] = &["name", "arn", "vpc_id"];
    const REPLACE_ON: &'static [&'static str] = &[];
    const ADOPT: Adopt = Adopt::OnCodes(&[
        "DBSubnetGroupAlreadyExists",
        "DBSubnetGroupAlreadyExistsFault",
    ]);

    /// Typical time on AWS: Immediate RDS calls.
    const TYPICAL: Typical = Typical {
        create: 2,
        update: 2,
        delete: 2,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    type Payload = ();
    type Raw = AwsGroup;

    fn check(&self, _id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut issues = Vec::new();
        for (i, s) in f.subnets.iter().enumerate() {
            issues.extend(check_id_ref(
                &format!("subnets[{i}]"),
                s,
                cx,
                "subnet",
                "subnet-",
            ));
        }
        let keys: Vec<String> = f.subnets.iter().map(|s| ref_key(s)).collect();
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
                .help("add a subnet in another zone, like `${stack.zones[1]}`"),
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

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, ()), String> {
        let a = Attrs {
            name: group_name(site.stack, site.id),
            description: f
                .description
                .unwrap_or_else(|| format!("{} (managed by securecart)", site.id)),
            subnets: id_set(f.subnets),
        };
        Ok((a, ()))
    }

    fn physical_names(&self, stack: &str, id: &str, _: &Fields) -> Vec<(String, String)> {
        vec![("DB subnet group name".into(), group_name(stack, id))]
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let groups = aws
            .rds
            .describe_db_subnet_groups()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await?;
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
                out.push((id, g));
            }
        }
        Ok(out)
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let Some(g) = describe(aws, &a.name).await? else {
            return Ok(None);
        };
        let tags = tags_of(aws, g.db_subnet_group_arn().unwrap_or_default()).await?;
        Ok(Some(Found {
            owner: owned_id(&tags, stack),
            raw: g,
        }))
    }

    fn observe(&self, g: &AwsGroup) -> Observed<Attrs> {
        let name = g.db_subnet_group_name().unwrap_or_default().to_string();
        Observed {
            physical_id: name.clone(),
            outputs: vec![
                ("name", json!(name)),
                ("arn", json!(g.db_subnet_group_arn().unwrap_or_default())),
                ("vpc_id", json!(g.vpc_id().unwrap_or_default())),
            ],
            attrs: Attrs {
                name,
                description: g
                    .db_subnet_group_description()
                    .unwrap_or_default()
                    .to_string(),
                subnets: id_set(
                    g.subnets()
                        .iter()
                        .filter_map(|s| s.subnet_identifier().map(str::to_string))
                        .collect(),
                ),
            },
        }
    }

    async fn create(&self, aws: &Aws, cx: &OpCx<'_>, a: &Attrs, _: &()) -> Result<AwsGroup, Error> {
        check_zones(aws, &a.subnets).await?;
        aws.rds
            .create_db_subnet_group()
            .db_subnet_group_name(&a.name)
            .db_subnet_group_description(&a.description)
            .set_subnet_ids(Some(a.subnets.clone()))
            .set_tags(Some(rds_tags(cx.stack, cx.id, &a.name, &[])))
            .send()
            .await?
            .db_subnet_group()
            .cloned()
            .ok_or_else(|| Error::Invalid("CreateDBSubnetGroup returned no group".into()))
    }

    async fn update(
        &self,
        aws: &Aws,
        _cx: &OpCx<'_>,
        _live: &Live,
        a: &Attrs,
        _: &(),
        _changed: Changed<'_>,
    ) -> Result<Option<AwsGroup>, Error> {
        check_zones(aws, &a.subnets).await?;
        aws.rds
            .modify_db_subnet_group()
            .db_subnet_group_name(&a.name)
            .db_subnet_group_description(&a.description)
            .set_subnet_ids(Some(a.subnets.clone()))
            .send()
            .await?
            .db_subnet_group()
            .cloned()
            .map(Some)
            .ok_or_else(|| Error::Invalid("ModifyDBSubnetGroup returned no group".into()))
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
                    .await?;
                Ok(())
            },
        )
        .await;
        match r {
            Err(e) if e.is_code(NOT_FOUND) => Ok(()),
            other => other,
        }
    }
}

const NOT_FOUND: &[&str] = &["DBSubnetGroupNotFoundFault", "DBSubnetGroupNotFound"];

/// The group's name: like an instance identifier (lower-case; RDS lower-cases it anyway).
fn group_name(stack: &str, id: &str) -> String {
    rds_name(stack, id, 255)
}

/// What every group name of `stack` starts with.
fn name_prefix(stack: &str) -> String {
    let n = group_name(stack, "x");
    n[..n.len() - 1].to_string()
}

/// A group's tags (they do not come with DescribeDBSubnetGroups).
async fn tags_of(
    aws: &Aws,
    arn: &str,
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let out = aws
        .rds
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await?;
    Ok(tag_map(out.tag_list()))
}

async fn describe(aws: &Aws, name: &str) -> Result<Option<AwsGroup>, Error> {
    match aws
        .rds
        .describe_db_subnet_groups()
        .db_subnet_group_name(name)
        .send()
        .await
        .map_err(Error::from)
    {
        Ok(o) => Ok(o.db_subnet_groups().first().cloned()),
        Err(e) if e.is_code(NOT_FOUND) => Ok(None),
        Err(e) => Err(e),
    }
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
        .await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::Kind;
    use aws_sdk_rds::types::Subnet;
    use serde_json::Value as Json;

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
        let d = Typed(DbSubnetGroup)
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
        let o = DbSubnetGroup.observe(&g);
        assert_eq!(d, serde_json::to_value(&o.attrs).unwrap());
        assert_eq!(o.physical_id, "dev-db-subnets");
        let vpc: Option<&Json> = o
            .outputs
            .iter()
            .find(|(k, _)| *k == "vpc_id")
            .map(|(_, v)| v);
        assert_eq!(vpc, Some(&json!("vpc-1")));
        assert_eq!(name_prefix("Dev"), "dev-");
        assert_eq!(name_prefix("1x"), "db-1x-");
    }
}
