//! `launch_template`: an EC2 launch template: the AMI, instance type, user data,
//! security groups and metadata settings Auto Scaling launches instances with. A change
//! is a new template version (made the default), never a replacement.

use super::LT_ARN;
use crate::resources::access::{Access, When};
use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    InstanceType, LaunchTemplate as AwsTemplate, LaunchTemplateHttpTokensState,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateInstanceNetworkInterfaceSpecificationRequest, LaunchTemplateVersion,
    RequestLaunchTemplateData, ResourceType, ResponseLaunchTemplateData,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use super::tagged;
use crate::aws::Aws;
use crate::blueprint::refs::UNKNOWN;
use crate::blueprint::{files, CheckCx, Inlined, Issue};
use crate::resources::common::{self, ec2, Error};
use crate::resources::fields::{check_id_ref, has_ref, id_set};
use crate::resources::typed::{
    Adopt, Changed, Found, Listed, Lookup, Observed, Resource, Site, Typical,
};
use crate::resources::{Live, OpCx};

pub struct LaunchTemplate;

/// The Amazon Linux 2023 AMI of the region, as AWS publishes it in SSM.
pub const AL2023: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
/// AWS limit on user data, before base64.
const USER_DATA_MAX: usize = files::USER_DATA_MAX;
/// Where the version description records the image as the blueprint named it.
const IMAGE_NOTE: &str = "securecart image=";

/// A launch template for the instances of an Auto Scaling group.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// The AMI: an id (`ami-…`), or the path of an SSM parameter holding one, resolved
    /// when apply creates a template version (default: Amazon Linux 2023,
    /// `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`). A newer
    /// AMI behind the parameter is not a change by itself; it is picked up by the next
    /// version the template gets.
    #[serde(default = "default_image")]
    image: String,
    /// Instance type, like `t3.micro` (the default). Changed in place (a new version).
    #[serde(default = "default_instance_type")]
    instance_type: String,
    /// User data script, inline. `${…}` in it are blueprint references: write `$${VAR}`
    /// for shell variables, or use `user_data_file`.
    #[serde(default)]
    user_data: Option<String>,
    /// User data script in a file, relative to the blueprint's folder (read as is: no
    /// references inside). Plans show its SHA-256, not its text.
    #[serde(default)]
    user_data_file: Option<String>,
    /// Values the script needs, exported as shell variables right after its `#!` line,
    /// like `DB_HOST: ${db.address}` (the template then waits for what they refer to).
    #[serde(default)]
    user_data_vars: BTreeMap<String, Json>,
    /// Security groups of the instances: references like `${web_sg}` or ids (`sg-…`).
    #[serde(default)]
    security_groups: Vec<String>,
    /// Require IMDSv2 session tokens for the instance metadata service (security
    /// baseline CKV_AWS_79 / EC2.170). Default true.
    #[serde(default = "yes")]
    require_imdsv2: bool,
    /// Give instances a public IPv4 address. Default false (security baseline
    /// CKV_AWS_88 / EC2.25): app instances sit behind a load balancer.
    #[serde(default)]
    associate_public_ip_address: bool,
}

fn default_image() -> String {
    AL2023.into()
}

fn default_instance_type() -> String {
    "t3.micro".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attrs {
    name: String,
    /// `ami-…`, or `ssm:/path` for an AMI from an SSM parameter.
    image: String,
    instance_type: String,
    user_data_sha256: Option<String>,
    security_groups: Vec<String>,
    require_imdsv2: bool,
    associate_public_ip_address: bool,
}

/// A template as read, or as a create or update just made it: ids, version numbers, the
/// AMI its latest version launches and that version's settings as attributes.
pub struct Read {
    id: String,
    name: String,
    latest: i64,
    default: i64,
    image_id: String,
    attrs: Attrs,
}

#[async_trait]
impl Resource for LaunchTemplate {
    const KIND: &'static str = "launch_template";
    const ACCESS: &'static [&'static [Access]] = &[&[
        Access::read(&[
            "ec2:DescribeLaunchTemplates",
            "ec2:DescribeLaunchTemplateVersions",
        ]),
        // `image` as an SSM parameter: AWS's public AMI parameters, which have no account
        // in their ARN (https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-public-parameters-ami.html).
        Access::read_on(
            &["ssm:GetParameter"],
            &["arn:{partition}:ssm:{region}::parameter/aws/service/*"],
        ),
        Access::change(&["ec2:CreateLaunchTemplate"], &[LT_ARN]).when(When::RequestTagged),
        Access::change(&["ec2:CreateTags"], &[LT_ARN])
            .when(When::TagOnCreate(&["CreateLaunchTemplate"])),
        Access::change(
            &[
                "ec2:CreateLaunchTemplateVersion",
                "ec2:ModifyLaunchTemplate",
            ],
            &[LT_ARN],
        )
        .when(When::ResourceTagged),
        Access::delete(&["ec2:DeleteLaunchTemplate"], &[LT_ARN]).when(When::ResourceTagged),
    ]];
    const ATTRIBUTES: &'static [&'static str] = &[
        "id",
        "name",
        "latest_version",
        "default_version",
        "image_id",
    ];
    const REPLACE_ON: &'static [&'static str] = &["name"];
    const VOLATILE_OUTPUTS: &'static [&'static str] =
        &["latest_version", "default_version", "image_id"];
    const DERIVED: &'static [(&'static str, &'static [&'static str])] = &[(
        "user_data_sha256",
        &["user_data", "user_data_file", "user_data_vars"],
    )];
    // Names are unique per account and region: a copy made first takes the other name.
    const CREATE_BEFORE_DELETE: bool = true;
    const UNIQUE_NAME: Option<(&'static str, usize)> = Some(("name", 128));
    // A re-run after an interrupted apply: our own template is brought up to date with a
    // new version; anyone else's is left alone.
    const ADOPT: Adopt = Adopt::OnCodes(&["InvalidLaunchTemplateName.AlreadyExistsException"]);

    /// Typical time on AWS: An SSM read for the AMI and one EC2 call (a new version on update).
    const TYPICAL: Typical = Typical {
        create: 3,
        update: 3,
        delete: 2,
    };

    type Fields = Fields;
    type Attrs = Attrs;
    /// The user data script as sent (the attributes carry only its SHA-256).
    type Payload = Option<String>;
    type Raw = Read;

    fn check(&self, id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
        let mut issues = Vec::new();
        if !has_ref(&f.image) {
            if let Err(e) = image_attr(&f.image) {
                issues.push(Issue::new("image", e).help(format!(
                    "use an AMI id (`ami-…`) or an SSM parameter path like `{AL2023}`"
                )));
            }
        }
        if !has_ref(&f.instance_type) && !looks_like_instance_type(&f.instance_type) {
            issues.push(
                Issue::new(
                    "instance_type",
                    format!("`{}` is not an instance type", f.instance_type),
                )
                .help("like `t3.micro` or `m7g.large`"),
            );
        }
        if f.user_data.is_some() && f.user_data_file.is_some() {
            issues.push(Issue::new(
                "user_data_file",
                "set either `user_data` or `user_data_file`, not both",
            ));
        }
        if !f.user_data_vars.is_empty() && f.user_data.is_none() && f.user_data_file.is_none() {
            issues.push(Issue::new(
                "user_data_vars",
                "there is no user data script to give these variables to",
            ));
        }
        for (k, v) in &f.user_data_vars {
            let path = format!("user_data_vars.{k}");
            if !valid_var(k) {
                issues.push(
                    Issue::new(&path, format!("`{k}` is not a shell variable name"))
                        .help("letters, digits and `_`, not starting with a digit"),
                );
            }
            if v.is_object() || v.is_array() || v.is_null() {
                issues.push(Issue::new(
                    &path,
                    "a variable takes a string, number or boolean",
                ));
            }
        }
        if let Some(u) = &f.user_data {
            if u.len() > USER_DATA_MAX {
                issues.push(Issue::new(
                    "user_data",
                    format!("{} bytes is more than AWS takes ({USER_DATA_MAX})", u.len()),
                ));
            }
        }
        for (i, g) in f.security_groups.iter().enumerate() {
            issues.extend(check_id_ref(
                &format!("security_groups[{i}]"),
                g,
                cx,
                "security_group",
                "sg-",
            ));
        }
        issues.extend(user_data_secret_warnings(id, f, cx));
        let weakened = baseline(f.require_imdsv2, f.associate_public_ip_address);
        issues.extend(
            weakened
                .into_iter()
                .map(|(p, m)| Issue::new(p, m).warning()),
        );
        issues
    }

    /// Nothing is inlined, but `user_data_file` is read while validating, so a missing,
    /// oversized or out-of-folder file is an error located at the field.
    fn inline_files(&self, config: &Json, dir: &Path) -> Inlined {
        if config.get("user_data").is_none() {
            if let Some(file) = config.get("user_data_file").and_then(Json::as_str) {
                if !file.contains("${") {
                    if let Err(e) = read_user_data_file(dir, file) {
                        return Issue::new("user_data_file", e).into();
                    }
                }
            }
        }
        Inlined::default()
    }

    fn desired(&self, site: &Site, f: Fields) -> Result<(Attrs, Option<String>), String> {
        let image = if common::unknown(&f.image) {
            f.image.clone()
        } else {
            image_attr(&f.image)?
        };
        let script = match (&f.user_data, &f.user_data_file) {
            (Some(u), _) => Some(u.clone()),
            (None, Some(file)) => Some(
                read_user_data_file(site.dir, file).map_err(|e| format!("user_data_file: {e}"))?,
            ),
            (None, None) => None,
        };
        let text = match &script {
            Some(s) if !common::unknown(s) => with_vars(s, &f.user_data_vars)?,
            _ => None,
        };
        if let Some(t) = text.as_ref().filter(|t| t.len() > USER_DATA_MAX) {
            return Err(format!(
                "the user data is {} bytes, more than AWS takes ({USER_DATA_MAX})",
                t.len()
            ));
        }
        let user_data_sha256 = match (&script, &text) {
            (None, _) => None,
            (Some(_), Some(t)) => Some(sha256(t.as_bytes())),
            (Some(_), None) => Some(UNKNOWN.to_string()),
        };
        let a = Attrs {
            name: template_name(site.stack, site.id),
            image,
            instance_type: f.instance_type,
            user_data_sha256,
            security_groups: id_set(f.security_groups),
            require_imdsv2: f.require_imdsv2,
            associate_public_ip_address: f.associate_public_ip_address,
        };
        Ok((a, text))
    }

    fn physical_names(&self, stack: &str, id: &str, _: &Fields) -> Vec<(String, String)> {
        vec![("launch template name".into(), template_name(stack, id))]
    }

    fn warnings(&self, a: &Attrs) -> Vec<String> {
        let weakened = baseline(a.require_imdsv2, a.associate_public_ip_address);
        weakened.into_iter().map(|(_, m)| m.to_string()).collect()
    }

    async fn list(&self, aws: &Aws, stack: &str) -> Listed<Self> {
        let ours = tagged!(aws.ec2.describe_launch_templates(), stack)?;
        // Template data has no batched form for chosen templates: one
        // DescribeLaunchTemplateVersions ($Latest) each.
        common::read_each(ours, |(id, t)| async move {
            match latest(aws, t.launch_template_id().unwrap_or_default()).await {
                Ok(v) => Ok(v.map(|v| (id, read_of(&t, &v)))),
                Err(e) if gone(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn find(&self, aws: &Aws, stack: &str, a: &Attrs) -> Lookup<Self> {
        let found = aws
            .ec2
            .describe_launch_templates()
            .launch_template_names(&a.name)
            .send()
            .await?;
        let Some(t) = found.launch_templates().first() else {
            return Ok(None);
        };
        let v = latest(aws, t.launch_template_id().unwrap_or_default())
            .await?
            .ok_or_else(|| Error::Invalid("the launch template has no version".into()))?;
        Ok(Some(Found {
            owner: ec2::owned_id(t.tags(), stack),
            raw: read_of(t, &v),
        }))
    }

    fn observe(&self, r: &Read) -> Observed<Attrs> {
        Observed {
            physical_id: r.id.clone(),
            attrs: r.attrs.clone(),
            outputs: vec![
                ("id", json!(r.id)),
                ("name", json!(r.name)),
                ("latest_version", json!(r.latest)),
                ("default_version", json!(r.default)),
                ("image_id", json!(r.image_id)),
            ],
        }
    }

    async fn create(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        a: &Attrs,
        user_data: &Option<String>,
    ) -> Result<Read, Error> {
        let (data, image_id) = request_data(aws, cx, a, user_data).await?;
        let tags = common::tags(cx.stack, cx.id, &a.name);
        let out = aws
            .ec2
            .create_launch_template()
            .launch_template_name(&a.name)
            .client_token(common::client_token(cx.stack, cx.id, &json!(a)))
            .version_description(format!("{IMAGE_NOTE}{}", a.image))
            .launch_template_data(data)
            .tag_specifications(ec2::tag_spec(ResourceType::LaunchTemplate, &tags))
            .send()
            .await?;
        let t = out
            .launch_template()
            .ok_or_else(|| Error::Invalid("CreateLaunchTemplate returned no template".into()))?;
        let version = t.latest_version_number().unwrap_or(1);
        Ok(Read {
            id: t.launch_template_id().unwrap_or_default().to_string(),
            name: t.launch_template_name().unwrap_or_default().to_string(),
            latest: version,
            default: version,
            image_id,
            attrs: a.clone(),
        })
    }

    /// Every change is a new version, made the default.
    async fn update(
        &self,
        aws: &Aws,
        cx: &OpCx<'_>,
        live: &Live,
        a: &Attrs,
        user_data: &Option<String>,
        _: Changed<'_>,
    ) -> Result<Option<Read>, Error> {
        let (data, image_id) = request_data(aws, cx, a, user_data).await?;
        let lt_id = &live.physical_id;
        let out = aws
            .ec2
            .create_launch_template_version()
            .launch_template_id(lt_id)
            .client_token(common::client_token(
                cx.stack,
                cx.id,
                &json!([a, live.outputs.get("latest_version")]),
            ))
            .version_description(format!("{IMAGE_NOTE}{}", a.image))
            .launch_template_data(data)
            .send()
            .await?;
        let version = out
            .launch_template_version()
            .and_then(|v| v.version_number())
            .ok_or_else(|| {
                Error::Invalid("CreateLaunchTemplateVersion returned no version".into())
            })?;
        aws.ec2
            .modify_launch_template()
            .launch_template_id(lt_id)
            .default_version(version.to_string())
            .send()
            .await?;
        cx.note(format!("version {version} is the default now"));
        Ok(Some(Read {
            id: lt_id.clone(),
            name: a.name.clone(),
            latest: version,
            default: version,
            image_id,
            attrs: a.clone(),
        }))
    }

    async fn delete(&self, aws: &Aws, _cx: &OpCx<'_>, live: &Live) -> Result<(), Error> {
        let r = aws
            .ec2
            .delete_launch_template()
            .launch_template_id(&live.physical_id)
            .send()
            .await
            .map_err(Error::from);
        match r {
            Err(e) if gone(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

const IMDS_V1: &str = "require_imdsv2 is off: instances accept IMDSv1 metadata requests — \
    security baseline CKV_AWS_79 / EC2.170";
const PUBLIC_IP: &str = "associate_public_ip_address is on: instances get public IPv4 addresses \
    — security baseline CKV_AWS_88 / EC2.25";

/// The security-baseline findings of the two settings, by field: the blueprint's check
/// and the plan's warnings say the same.
fn baseline(require_imdsv2: bool, public_ip: bool) -> Vec<(&'static str, &'static str)> {
    [
        (!require_imdsv2, "require_imdsv2", IMDS_V1),
        (public_ip, "associate_public_ip_address", PUBLIC_IP),
    ]
    .into_iter()
    .filter_map(|(weak, field, msg)| weak.then_some((field, msg)))
    .collect()
}

fn gone(e: &Error) -> bool {
    ec2::not_found(e.code())
        || e.is_code(&[
            "InvalidLaunchTemplateName.NotFoundException",
            "InvalidLaunchTemplateId.Malformed",
        ])
}

/// Names: 3 to 128 of letters, digits and `().-/_`.
fn template_name(stack: &str, id: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || "().-/_".contains(c);
    common::physical_name(stack, id, 128, ok, "")
}

/// The `image` attribute: `ami-…` as it is, an SSM parameter path as `ssm:/path`.
fn image_attr(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.starts_with("ami-") && s.len() > 4 && s[4..].chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(s.to_string());
    }
    let path = s
        .strip_prefix("resolve:ssm:")
        .or_else(|| s.strip_prefix("ssm:"))
        .unwrap_or(s);
    if path.starts_with('/') && path.len() > 1 && !path.contains(char::is_whitespace) {
        return Ok(format!("ssm:{path}"));
    }
    Err(format!(
        "`{s}` is neither an AMI id nor an SSM parameter path"
    ))
}

fn looks_like_instance_type(s: &str) -> bool {
    let mut parts = s.splitn(2, '.');
    let (Some(family), Some(size)) = (parts.next(), parts.next()) else {
        return false;
    };
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    ok(family)
        && ok(size)
        && family
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
}

fn valid_var(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Secrets in user data: "user data is not protected by authentication or cryptographic
/// methods" — anyone allowed ec2:DescribeLaunchTemplateVersions reads it, and so does any
/// process on the instance through the instance metadata service (EC2 User Guide, "Run
/// commands when you launch an EC2 instance with user data"). Written out in the blueprint
/// it is also in the repository (checkov CKV_AWS_46).
fn user_data_secret_warnings(id: &str, f: &Fields, cx: &CheckCx) -> Vec<Issue> {
    const INSTEAD: &str = "keep it in SSM Parameter Store (SecureString) or Secrets Manager and \
        have the script read it at boot with the instance role (`aws ssm get-parameter \
        --with-decryption`)";
    let secret_field = cx.resources.get(id).and_then(|r| {
        ["user_data_vars", "user_data", "user_data_file"]
            .into_iter()
            .find(|k| r.secret_fields.contains(*k))
    });
    if let Some(field) = secret_field {
        return vec![Issue::new(
            field,
            "a secret parameter is written into user data, which anyone allowed \
             ec2:DescribeLaunchTemplateVersions can read, and any process on the instance",
        )
        .help(INSTEAD)
        .warning()];
    }
    let mut out = Vec::new();
    for (k, v) in &f.user_data_vars {
        let Some(v) = v.as_str() else { continue };
        if (common::names_a_secret(k) && common::is_literal_secret(v))
            || common::holds_access_key(v)
        {
            out.push(
                Issue::new(
                    format!("user_data_vars.{k}"),
                    format!("`{k}` holds a secret written in the blueprint in plain text (security baseline: checkov CKV_AWS_46)"),
                )
                .help(INSTEAD)
                .warning(),
            );
        }
    }
    if let Some(script) = &f.user_data {
        let mut names = common::hard_coded_secrets(script);
        if common::holds_access_key(script) {
            names.push("an AWS access key".into());
        }
        if !names.is_empty() {
            out.push(
                Issue::new(
                    "user_data",
                    format!(
                        "the script writes out a secret in plain text ({}) (security baseline: checkov CKV_AWS_46)",
                        names.join(", ")
                    ),
                )
                .help(INSTEAD)
                .warning(),
            );
        }
    }
    out
}

/// The user data script through the blueprint's confined loader, capped at what EC2 takes.
fn read_user_data_file(dir: &Path, file: &str) -> Result<String, String> {
    files::read_text(
        dir,
        file,
        files::USER_DATA_MAX,
        "the most EC2 takes as user data",
    )
}

/// The script with `export NAME='value'` lines after its `#!` line; `None` while a
/// value is only known after apply.
fn with_vars(script: &str, vars: &BTreeMap<String, Json>) -> Result<Option<String>, String> {
    if vars.is_empty() {
        return Ok(Some(script.to_string()));
    }
    let mut exports = String::new();
    for (k, v) in vars {
        let v = match v {
            Json::String(s) if common::unknown(s) => return Ok(None),
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            _ => {
                return Err(format!(
                    "user_data_vars.{k}: a variable takes a string, number or boolean"
                ))
            }
        };
        exports.push_str(&format!("export {k}='{}'\n", v.replace('\'', r"'\''")));
    }
    let Some(rest) = script.strip_prefix("#!") else {
        return Err(
            "user_data_vars needs a script that starts with a `#!` line (like `#!/bin/bash`)"
                .into(),
        );
    };
    let (first, body) = rest.split_once('\n').unwrap_or((rest, ""));
    Ok(Some(format!("#!{first}\n{exports}{body}")))
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The template data for `a` and its user data, with the image resolved (and that AMI id).
async fn request_data(
    aws: &Aws,
    cx: &OpCx<'_>,
    a: &Attrs,
    user_data: &Option<String>,
) -> Result<(RequestLaunchTemplateData, String), Error> {
    let image_id = match a.image.strip_prefix("ssm:") {
        None => a.image.clone(),
        Some(path) => {
            let out = aws
                .ssm
                .get_parameter()
                .name(path)
                .send()
                .await
                .map_err(Error::from)
                .map_err(|e| match e.code() {
                    Some("ParameterNotFound") => Error::Invalid(format!(
                        "the SSM parameter `{path}` does not exist in this region: {e}"
                    )),
                    _ => e,
                })?;
            let ami = out
                .parameter()
                .and_then(|p| p.value())
                .unwrap_or_default()
                .to_string();
            cx.note(format!("{path} is {ami}"));
            ami
        }
    };
    let user_data = match (&a.user_data_sha256, user_data) {
        (None, _) => None,
        (Some(_), Some(text)) => Some(aws_smithy_types::base64::encode(text.as_bytes())),
        (Some(sha), None) => {
            return Err(Error::Invalid(format!(
                "the user data with SHA-256 {sha} was not loaded"
            )))
        }
    };
    let data = RequestLaunchTemplateData::builder()
        .image_id(&image_id)
        .instance_type(InstanceType::from(a.instance_type.as_str()))
        .set_user_data(user_data)
        .network_interfaces(
            LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                .device_index(0)
                .associate_public_ip_address(a.associate_public_ip_address)
                .delete_on_termination(true)
                .set_groups(Some(a.security_groups.clone()))
                .build(),
        )
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .http_tokens(if a.require_imdsv2 {
                    LaunchTemplateHttpTokensState::Required
                } else {
                    LaunchTemplateHttpTokensState::Optional
                })
                .build(),
        )
        .build();
    Ok((data, image_id))
}

async fn latest(aws: &Aws, lt_id: &str) -> Result<Option<LaunchTemplateVersion>, Error> {
    let out = aws
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(lt_id)
        .versions("$Latest")
        .send()
        .await?;
    Ok(out.launch_template_versions().first().cloned())
}

/// What reading a template and its latest version found, in the kind's terms.
fn read_of(t: &AwsTemplate, v: &LaunchTemplateVersion) -> Read {
    let none = ResponseLaunchTemplateData::builder().build();
    let d = v.launch_template_data().unwrap_or(&none);
    let number = v.version_number().unwrap_or_default();
    let image_id = d.image_id().unwrap_or_default().to_string();
    // The image as the blueprint named it, recorded when the version was made; an AMI
    // changed outside securecart shows as itself.
    let noted = v
        .version_description()
        .and_then(|s| s.strip_prefix(IMAGE_NOTE))
        .filter(|n| n.starts_with("ssm:") || *n == image_id);
    let nic = d
        .network_interfaces()
        .iter()
        .find(|n| n.device_index().unwrap_or(0) == 0);
    let groups = match nic {
        Some(n) if !n.groups().is_empty() => n.groups().to_vec(),
        _ => d.security_group_ids().to_vec(),
    };
    let user_data_sha256 = d.user_data().filter(|u| !u.is_empty()).map(|u| {
        match aws_smithy_types::base64::decode(u) {
            Ok(bytes) => sha256(&bytes),
            Err(_) => sha256(u.as_bytes()),
        }
    });
    let attrs = Attrs {
        name: t.launch_template_name().unwrap_or_default().to_string(),
        image: noted
            .map(str::to_string)
            .unwrap_or_else(|| image_id.clone()),
        instance_type: d
            .instance_type()
            .map(|i| i.as_str().to_string())
            .unwrap_or_default(),
        user_data_sha256,
        security_groups: id_set(groups),
        require_imdsv2: d
            .metadata_options()
            .and_then(|m| m.http_tokens())
            .is_some_and(|t| *t == LaunchTemplateHttpTokensState::Required),
        associate_public_ip_address: nic
            .and_then(|n| n.associate_public_ip_address())
            .unwrap_or(false),
    };
    Read {
        id: t.launch_template_id().unwrap_or_default().to_string(),
        name: attrs.name.clone(),
        latest: number,
        default: t.default_version_number().unwrap_or(number),
        image_id,
        attrs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::problems;
    use crate::resources::typed::Typed;
    use crate::resources::{Kind, TEST_REGION};
    use aws_sdk_ec2::types::{
        LaunchTemplateInstanceMetadataOptions, LaunchTemplateInstanceNetworkInterfaceSpecification,
    };

    const K: Typed<LaunchTemplate> = Typed(LaunchTemplate);

    fn lt(body: &str) -> Vec<String> {
        problems(&format!(
            "
name: t
resources:
  vpc:
    type: vpc
    cidr_block: 10.0.0.0/16
  sg:
    type: security_group
    vpc: ${{vpc}}
  lt:
    type: launch_template
{body}"
        ))
    }

    #[test]
    fn secrets_in_user_data_are_warned_about() {
        let p = lt("    security_groups: [\"${sg}\"]\n    user_data: \"#!/bin/bash\\nexport DB_PASSWORD='hunter2'\\nDB_HOST=db\\n\"\n");
        assert!(
            p.iter().any(|m| m
                .contains("user_data: the script writes out a secret in plain text (DB_PASSWORD)")),
            "{p:?}"
        );
        let p = lt("    security_groups: [\"${sg}\"]\n    user_data: \"#!/bin/bash\\n\"\n    user_data_vars:\n      API_TOKEN: tok-123456\n      DB_SECRET_ARN: arn:aws:secretsmanager:x\n");
        assert!(
            p.iter().any(|m| m.contains(
                "user_data_vars.API_TOKEN: `API_TOKEN` holds a secret written in the blueprint"
            )),
            "{p:?}"
        );
        assert!(!p.iter().any(|m| m.contains("DB_SECRET_ARN")), "{p:?}");
        // From a secret parameter: out of the repository, still readable in AWS.
        let p = problems("name: t\nparameters:\n  pw:\n    secret: true\n    default: hunter2-pw\nresources:\n  lt:\n    type: launch_template\n    user_data: \"#!/bin/bash\\n\"\n    user_data_vars:\n      DB_PASSWORD: ${params.pw}\n");
        assert!(
            p.iter().any(|m| m.contains("user_data_vars: a secret parameter is written into user data")),
            "{p:?}"
        );
        assert!(!p.iter().any(|m| m.contains("hunter2")), "{p:?}");
    }

    #[test]
    fn defaults_pass_the_baseline() {
        let p = lt("    security_groups: [\"${sg}\"]\n");
        assert!(p.is_empty(), "{p:?}");
        let d = K.desired("dev", "lt", &json!({})).unwrap();
        assert_eq!(d["image"], json!(format!("ssm:{AL2023}")));
        assert_eq!(d["require_imdsv2"], json!(true));
        assert_eq!(d["associate_public_ip_address"], json!(false));
        assert!(K.warnings(&d).is_empty());
    }

    #[test]
    fn weakening_the_baseline_warns() {
        let p = lt("    require_imdsv2: false\n    associate_public_ip_address: true\n");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("Warning") && p[0].contains("CKV_AWS_79 / EC2.170"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("Warning") && p[1].contains("CKV_AWS_88 / EC2.25"),
            "{p:?}"
        );
        let d = K
            .desired("dev", "lt", &json!({"require_imdsv2": false}))
            .unwrap();
        assert!(K.warnings(&d)[0].contains("CKV_AWS_79 / EC2.170"));
    }

    #[test]
    fn bad_fields_are_explained() {
        let p = lt("    image: ubuntu\n    instance_type: large\n    user_data: x\n    user_data_file: y.sh\n    user_data_vars:\n      1X: a\n    security_groups: [\"${vpc}\"]\n");
        let all = p.join("\n");
        for want in [
            "neither an AMI id nor an SSM parameter path",
            "`large` is not an instance type",
            "either `user_data` or `user_data_file`",
            "`1X` is not a shell variable name",
            "refers to `vpc` (type vpc)",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
    }

    #[test]
    fn images() {
        assert_eq!(image_attr("ami-0abc12").unwrap(), "ami-0abc12");
        assert_eq!(image_attr("/aws/x").unwrap(), "ssm:/aws/x");
        assert_eq!(image_attr("resolve:ssm:/aws/x").unwrap(), "ssm:/aws/x");
        assert!(image_attr("ami-").is_err());
    }

    #[test]
    fn user_data_from_a_file_with_vars_is_hashed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("web.sh"),
            "#!/bin/bash\necho \"$DB_HOST\"\n",
        )
        .unwrap();
        let cfg = json!({"user_data_file": "web.sh", "user_data_vars": {"DB_HOST": "db.example", "PORT": 5432, "Q": "it's"}});
        let d = K
            .desired_in("dev", TEST_REGION, "lt", &cfg, dir.path())
            .unwrap();
        let want = "#!/bin/bash\nexport DB_HOST='db.example'\nexport PORT='5432'\nexport Q='it'\\''s'\necho \"$DB_HOST\"\n";
        assert_eq!(d.attrs["user_data_sha256"], json!(sha256(want.as_bytes())));
        // The text itself travels as the payload, for create and update to send.
        assert_eq!(
            d.payload.get::<Option<String>>(),
            Some(&Some(want.to_string()))
        );
        let cfg = json!({"user_data_file": "web.sh", "user_data_vars": {"DB_HOST": UNKNOWN}});
        let d = K
            .desired_in("dev", TEST_REGION, "lt", &cfg, dir.path())
            .unwrap();
        assert_eq!(d.attrs["user_data_sha256"], json!(UNKNOWN));
        assert_eq!(d.payload.get::<Option<String>>(), Some(&None));
        let e = K
            .desired_in(
                "dev",
                TEST_REGION,
                "lt",
                &json!({"user_data_file": "nope.sh"}),
                dir.path(),
            )
            .map(|d| d.attrs)
            .unwrap_err();
        assert!(e.contains("user_data_file: cannot read `nope.sh`"), "{e}");
        let e = with_vars(
            "echo",
            &[("A".to_string(), json!("b"))].into_iter().collect(),
        )
        .unwrap_err();
        assert!(e.contains("#!"), "{e}");
    }

    #[test]
    fn read_shape_matches_desired() {
        let d = K
            .desired("dev", "lt", &json!({"instance_type": "t3.small", "user_data": "#!/bin/sh\n", "security_groups": ["sg-2", "sg-1"]}))
            .unwrap();
        let t = AwsTemplate::builder()
            .launch_template_id("lt-1")
            .launch_template_name("dev-lt")
            .default_version_number(3)
            .latest_version_number(3)
            .build();
        let data = ResponseLaunchTemplateData::builder()
            .image_id("ami-0123")
            .instance_type(InstanceType::T3Small)
            .user_data(aws_smithy_types::base64::encode("#!/bin/sh\n"))
            .network_interfaces(
                LaunchTemplateInstanceNetworkInterfaceSpecification::builder()
                    .device_index(0)
                    .associate_public_ip_address(false)
                    .groups("sg-1")
                    .groups("sg-2")
                    .build(),
            )
            .metadata_options(
                LaunchTemplateInstanceMetadataOptions::builder()
                    .http_tokens(LaunchTemplateHttpTokensState::Required)
                    .build(),
            )
            .build();
        let mut v = LaunchTemplateVersion::builder()
            .version_number(3)
            .version_description(format!("{IMAGE_NOTE}ssm:{AL2023}"))
            .launch_template_data(data)
            .build();
        let o = LaunchTemplate.observe(&read_of(&t, &v));
        assert_eq!(d, json!(o.attrs));
        assert!(o.outputs.contains(&("latest_version", json!(3))));
        assert!(o.outputs.contains(&("image_id", json!("ami-0123"))));
        // An AMI set outside securecart is seen as itself.
        v.version_description = Some(format!("{IMAGE_NOTE}ami-0999"));
        assert_eq!(read_of(&t, &v).attrs.image, "ami-0123");
    }
}
