//! The IAM actions a kind calls, declared beside its code on the typed contract
//! ([`super::typed::Resource::ACCESS`]): what `securecart permissions` turns into a
//! least-privilege policy. Each entry says when the actions are needed ([`Phase`]), on
//! what (ARN templates, `*` where the action has no resource-level permissions) and under
//! which condition, as the Service Authorization Reference lists them:
//! https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html

/// When an action is needed: `plan` makes only reads; `destroy` reads and deletes;
/// `apply` may do all three (a removed resource is deleted, a replaced one too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Reads that change nothing (Describe, List, Get).
    Read,
    /// Creates and in-place changes.
    Change,
    /// What removing a resource calls (detach, disassociate, delete).
    Delete,
}

/// The condition an entry's actions are allowed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// No condition.
    Always,
    /// The request tags what it creates with the stack
    /// (`aws:RequestTag/securecart:stack`): EC2 creates, which support it.
    RequestTagged,
    /// The resource acted on is tagged with the stack (`aws:ResourceTag/securecart:stack`).
    ResourceTagged,
    /// Tagging allowed only as part of these create actions (`ec2:CreateAction`,
    /// `elasticloadbalancing:CreateAction`): EC2 and ELB authorize the tags of a create
    /// as a separate CreateTags / AddTags action.
    TagOnCreate(&'static [&'static str]),
    /// `iam:PassRole` only to these services (`iam:PassedToService`).
    PassedTo(&'static [&'static str]),
    /// `iam:CreateServiceLinkedRole` only for this service (`iam:AWSServiceName`).
    ServiceLinked(&'static str),
    /// Instances launched from the account's launch templates only (`ec2:LaunchTemplate`),
    /// as Auto Scaling does on the caller's behalf.
    FromLaunchTemplate,
    /// KMS keys used only through this service on the caller's behalf (`kms:ViaService`
    /// `SERVICE.REGION.amazonaws.com`).
    ViaService(&'static str),
}

/// One declaration: `actions` (`service:Action`) needed in `phase` on `on` under `when`.
///
/// `on` holds ARN templates with these placeholders: `{partition}`, `{region}`,
/// `{account}`, `{stack}` (the stack name) and the prefixes the stack's physical names
/// start with (see `common::physical_name`): `{name}` (`STACK-`), `{elb}` (the same within
/// the 32 characters of load balancer and target group names) and `{rds}` (RDS
/// identifiers, lower case). `*` alone: every resource.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub phase: Phase,
    pub actions: &'static [&'static str],
    pub on: &'static [&'static str],
    pub when: When,
}

impl Access {
    /// Reads of actions without resource-level permissions (most Describe/List calls).
    pub const fn read(actions: &'static [&'static str]) -> Self {
        Access {
            phase: Phase::Read,
            actions,
            on: &["*"],
            when: When::Always,
        }
    }

    /// Reads of the resources `on`.
    pub const fn read_on(actions: &'static [&'static str], on: &'static [&'static str]) -> Self {
        Access {
            phase: Phase::Read,
            actions,
            on,
            when: When::Always,
        }
    }

    /// Creates and changes of the resources `on`.
    pub const fn change(actions: &'static [&'static str], on: &'static [&'static str]) -> Self {
        Access {
            phase: Phase::Change,
            actions,
            on,
            when: When::Always,
        }
    }

    /// Deletes of the resources `on`.
    pub const fn delete(actions: &'static [&'static str], on: &'static [&'static str]) -> Self {
        Access {
            phase: Phase::Delete,
            actions,
            on,
            when: When::Always,
        }
    }

    /// The same under a condition.
    pub const fn when(self, when: When) -> Self {
        Access { when, ..self }
    }
}
