//! The IAM policy documents `securecart permissions` prints, as typed serde structs in the
//! grammar of the IAM policy language
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html).

use std::collections::BTreeMap;

use serde::Serialize;

/// The policy language version every document declares.
pub const POLICY_VERSION: &str = "2012-10-17";

/// AWS's limit on the size of a customer managed policy: 6,144 characters, whitespace not
/// counted (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
pub const MANAGED_POLICY_LIMIT: usize = 6144;

/// One identity-based policy document, as `aws iam create-policy --policy-document` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    pub version: &'static str,
    pub statement: Vec<Statement>,
}

/// One `Allow` statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub sid: String,
    pub effect: &'static str,
    pub action: Vec<String>,
    pub resource: Vec<String>,
    /// Operator (`StringEquals`, `ArnLike`, …) → condition key → allowed values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub condition: BTreeMap<&'static str, BTreeMap<String, Values>>,
}

/// A condition's values: one string, or several (any of which matches).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Values {
    One(String),
    Any(Vec<String>),
}

impl PolicyDocument {
    pub fn new(statement: Vec<Statement>) -> Self {
        PolicyDocument {
            version: POLICY_VERSION,
            statement,
        }
    }

    /// Its size as IAM counts it: the characters of the document without whitespace
    /// outside strings, which is what compact JSON has (no string here holds a space).
    pub fn characters(&self) -> usize {
        serde_json::to_string(self).map(|s| s.len()).unwrap_or(0)
    }
}

/// `securecart permissions --json`: the documents (more than one when the permissions do
/// not fit one managed policy) and what they were made for.
#[derive(Debug, Serialize)]
pub struct PermissionsDoc {
    pub stack: String,
    /// `*` when no region was given: the policy then allows every region.
    pub region: String,
    /// `*` unless `--account` was given.
    pub account: String,
    /// The commands the policy is for: `plan`, `apply`, `destroy`.
    pub commands: Vec<&'static str>,
    /// The kinds whose actions are in it.
    pub kinds: Vec<&'static str>,
    pub policies: Vec<SizedPolicy>,
    /// AWS's size limit of one managed policy.
    pub limit: usize,
}

/// One document with its size as IAM counts it.
#[derive(Debug, Serialize)]
pub struct SizedPolicy {
    pub characters: usize,
    pub document: PolicyDocument,
}
