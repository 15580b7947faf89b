//! Amazon CloudWatch Logs: the `log_group` kind, and reading a group's tags.

pub mod log_group;

use std::collections::BTreeMap;

use crate::aws::Aws;
use crate::resources::common::Error;

/// A log group's tags (by its ARN without `:*`), or `None` when it is gone.
pub async fn tags_of(aws: &Aws, arn: &str) -> Result<Option<BTreeMap<String, String>>, Error> {
    match aws
        .logs
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(Error::from)
    {
        Ok(o) => Ok(Some(
            o.tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        )),
        Err(e) if e.is_code(&["ResourceNotFoundException"]) => Ok(None),
        Err(e) => Err(e),
    }
}
