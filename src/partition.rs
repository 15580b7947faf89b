//! AWS partitions (`aws`, `aws-cn`, `aws-us-gov`, the isolated ones): which one a region
//! is in, and what depends on it — the ARN prefix, the DNS suffix and the form of service
//! principals. Pure: no AWS call.
//!
//! The SDK resolves partitions from the `partitions.json` its endpoint rules embed (each
//! `aws-sdk-*` crate's `endpoint_lib`), but keeps the resolver private (`pub(crate)
//! PartitionResolver`); no public API returns a region's partition name. So the table below
//! copies that file (aws-sdk-iam 1.133, smithy-rs endpoint rules: an explicit region list,
//! else the first `regionRegex` that matches, else `aws`), and a unit test checks it
//! against what the SDK's public endpoint resolvers do with each region.

/// A partition: a group of regions with its own accounts, ARNs and endpoints
/// (<https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/partitions.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// What ARNs begin with: `arn:ID:…`.
    pub id: &'static str,
    /// The domain of the partition's endpoints.
    pub dns_suffix: &'static str,
    /// The regions in it, as `regionRegex` of `partitions.json`: these first labels, then
    /// one word and a number (`^(us|eu|…)-\w+-\d+$`).
    prefixes: &'static [&'static [&'static str]],
}

const AWS: Partition = Partition {
    id: "aws",
    dns_suffix: "amazonaws.com",
    prefixes: &[&["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"]],
};

/// Every partition of the SDK's `partitions.json`.
const PARTITIONS: &[Partition] = &[
    AWS,
    Partition {
        id: "aws-cn",
        dns_suffix: "amazonaws.com.cn",
        prefixes: &[&["cn"]],
    },
    Partition {
        id: "aws-us-gov",
        dns_suffix: "amazonaws.com",
        prefixes: &[&["us"], &["gov"]],
    },
    Partition {
        id: "aws-iso",
        dns_suffix: "c2s.ic.gov",
        prefixes: &[&["us"], &["iso"]],
    },
    Partition {
        id: "aws-iso-b",
        dns_suffix: "sc2s.sgov.gov",
        prefixes: &[&["us"], &["isob"]],
    },
    Partition {
        id: "aws-iso-e",
        dns_suffix: "cloud.adc-e.uk",
        prefixes: &[&["eu"], &["isoe"]],
    },
    Partition {
        id: "aws-iso-f",
        dns_suffix: "csp.hci.ic.gov",
        prefixes: &[&["us"], &["isof"]],
    },
    Partition {
        id: "aws-eusc",
        dns_suffix: "amazonaws.eu",
        prefixes: &[&["eusc"], &["de"]],
    },
];

impl Partition {
    fn matches(&self, region: &str) -> bool {
        let labels: Vec<&str> = region.split('-').collect();
        let n = self.prefixes.len();
        labels.len() == n + 2
            && self
                .prefixes
                .iter()
                .zip(&labels)
                .all(|(any, l)| any.contains(l))
            && !labels[n].is_empty()
            && labels[n]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !labels[n + 1].is_empty()
            && labels[n + 1].chars().all(|c| c.is_ascii_digit())
    }

    /// An ARN in this partition: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
    pub fn arn(&self, service: &str, region: &str, account: &str, resource: &str) -> String {
        format!("arn:{}:{service}:{region}:{account}:{resource}", self.id)
    }

    /// An AWS managed policy's ARN: `arn:PARTITION:iam::aws:policy/NAME`.
    pub fn managed_policy(&self, name: &str) -> String {
        self.arn("iam", "", "aws", &format!("policy/{name}"))
    }

    /// The principal of an AWS service in this partition, for trust and resource policies.
    /// It is `SERVICE.amazonaws.com` in every partition except for a few services in some
    /// (CloudWatch Logs in China and the ISO partitions, CodeDeploy and EMR in China, …),
    /// which use the partition's DNS suffix: the list AWS CDK keeps in `region-info`
    /// (aws-cdk-lib/region-info/lib/default.ts), which terraform-provider-aws also uses
    /// (`aws_service_principal`). Lambda, Step Functions, EventBridge, SQS, SNS, EC2 and RDS —
    /// what securecart's kinds name — are `.amazonaws.com` everywhere.
    pub fn service_principal(&self, service: &str) -> String {
        let regional = match self.id {
            "aws-cn" => ["codedeploy", "elasticmapreduce", "logs"].contains(&service),
            "aws-iso" => ["cloudhsm", "config", "logs", "workspaces"].contains(&service),
            "aws-iso-b" => ["dms", "logs"].contains(&service),
            _ => false,
        };
        let suffix = if regional {
            self.dns_suffix
        } else {
            "amazonaws.com"
        };
        format!("{service}.{suffix}")
    }
}

/// The partition of `region`, resolved as the SDK does; a region no pattern knows is in
/// `aws` (the SDK's fallback, so that new commercial regions work before a table knows them).
pub fn of(region: &str) -> &'static Partition {
    PARTITIONS
        .iter()
        .find(|p| p.matches(region))
        .unwrap_or(&PARTITIONS[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::config::endpoint::ResolveEndpoint as _;

    #[test]
    fn regions_map_to_their_partitions() {
        for (region, id) in [
            ("us-east-1", "aws"),
            ("eu-west-1", "aws"),
            ("ap-southeast-5", "aws"),
            ("mx-central-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-gov-east-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-south-1", "aws-iso-f"),
            ("eusc-de-east-1", "aws-eusc"),
            // Not a region any pattern knows: the SDK falls back to `aws`.
            ("mars-east-1", "aws"),
            ("", "aws"),
        ] {
            assert_eq!(of(region).id, id, "{region}");
        }
    }

    #[test]
    fn arns_take_the_partition() {
        assert_eq!(
            of("us-east-1").arn("sqs", "us-east-1", "123456789012", "q"),
            "arn:aws:sqs:us-east-1:123456789012:q"
        );
        assert_eq!(
            of("cn-north-1").arn("states", "cn-north-1", "123456789012", "stateMachine:f"),
            "arn:aws-cn:states:cn-north-1:123456789012:stateMachine:f"
        );
        assert_eq!(
            of("us-gov-west-1").arn("logs", "us-gov-west-1", "1", "log-group:/x:*"),
            "arn:aws-us-gov:logs:us-gov-west-1:1:log-group:/x:*"
        );
        assert_eq!(
            of("cn-north-1").managed_policy("AWSXRayDaemonWriteAccess"),
            "arn:aws-cn:iam::aws:policy/AWSXRayDaemonWriteAccess"
        );
        assert_eq!(
            of("us-gov-west-1").managed_policy("service-role/AWSLambdaBasicExecutionRole"),
            "arn:aws-us-gov:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        );
    }

    #[test]
    fn service_principals_keep_amazonaws_com_but_for_the_listed_exceptions() {
        for region in ["us-east-1", "cn-north-1", "us-gov-west-1", "us-iso-east-1"] {
            for s in ["lambda", "states", "events", "sqs", "sns", "ec2", "rds"] {
                assert_eq!(
                    of(region).service_principal(s),
                    format!("{s}.amazonaws.com"),
                    "{region}"
                );
            }
        }
        assert_eq!(
            of("cn-north-1").service_principal("logs"),
            "logs.amazonaws.com.cn"
        );
        assert_eq!(
            of("us-east-1").service_principal("logs"),
            "logs.amazonaws.com"
        );
        assert_eq!(
            of("us-isob-east-1").service_principal("logs"),
            "logs.sc2s.sgov.gov"
        );
    }

    /// The table against the SDK's own resolution, through its public endpoint resolvers:
    /// STS's regional endpoint is `sts.REGION.DNS_SUFFIX` in every partition, and IAM has
    /// one endpoint per partition, so regions share an IAM endpoint exactly when they share
    /// a partition (aws and aws-us-gov share a DNS suffix but not IAM).
    #[test]
    fn the_table_agrees_with_the_sdks_endpoint_rules() {
        let regions = [
            "us-east-1",
            "eu-west-1",
            "ap-northeast-1",
            "ca-central-1",
            "il-central-1",
            "cn-north-1",
            "cn-northwest-1",
            "us-gov-west-1",
            "us-gov-east-1",
            "us-iso-east-1",
            "us-iso-west-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
            "us-isof-south-1",
            "us-isof-east-1",
            "eusc-de-east-1",
        ];
        let sts = |region: &str| {
            let p = aws_sdk_sts::config::endpoint::Params::builder()
                .region(region)
                .build()
                .expect("params");
            let r = aws_sdk_sts::config::endpoint::DefaultResolver::new();
            let ep = futures::executor::block_on(
                aws_sdk_sts::config::endpoint::ResolveEndpoint::resolve_endpoint(&r, &p),
            )
            .expect("endpoint");
            ep.url().to_string()
        };
        let iam = |region: &str| {
            let p = aws_sdk_iam::config::endpoint::Params::builder()
                .region(region)
                .build()
                .expect("params");
            let r = aws_sdk_iam::config::endpoint::DefaultResolver::new();
            let ep = futures::executor::block_on(r.resolve_endpoint(&p)).expect("endpoint");
            ep.url().to_string()
        };
        for a in regions {
            assert_eq!(
                sts(a),
                format!("https://sts.{a}.{}", of(a).dns_suffix),
                "{a}"
            );
            for b in regions {
                assert_eq!(
                    iam(a) == iam(b),
                    of(a).id == of(b).id,
                    "{a} ({}) and {b} ({}): IAM at {} and {}",
                    of(a).id,
                    of(b).id,
                    iam(a),
                    iam(b)
                );
            }
        }
    }
}
