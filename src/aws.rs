//! AWS clients for every service securecart manages, built once from the standard
//! credential chain, with an interceptor that counts API calls for `--stats` and one
//! that notices an endpoint that cannot be reached at all.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime::client::retries::{RetryPartition, TokenBucket};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef, InterceptorContext,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tokio::sync::OnceCell;

/// Where and as whom to call AWS (resolved from flags and environment in `settings`).
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// Talking to the bundled emulator: fixed test credentials, default region.
    pub local: bool,
}

/// How long to wait for a TCP (and TLS) connection before calling an endpoint
/// unreachable. An AWS endpoint answers a connect in well under a second; a black-hole
/// address never does, and the SDK's own default waits much longer per attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no AWS region configured: pass --region, set AWS_REGION, or set a region in your AWS profile")]
    NoRegion,
}

/// API calls made, by service and operation, and retried attempts.
#[derive(Debug, Default)]
pub struct Stats {
    calls: Mutex<BTreeMap<(String, String), u64>>,
    attempts: Mutex<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CallCount {
    pub service: String,
    pub operation: String,
    pub count: u64,
    pub mutating: bool,
}

impl Stats {
    fn record(&self, service: &str, operation: &str) {
        let mut c = self.calls.lock().expect("stats lock");
        *c.entry((service.to_string(), operation.to_string()))
            .or_default() += 1;
    }

    pub fn calls(&self) -> Vec<CallCount> {
        self.calls
            .lock()
            .expect("stats lock")
            .iter()
            .map(|((s, o), n)| CallCount {
                service: s.clone(),
                operation: o.clone(),
                count: *n,
                mutating: is_mutating(o),
            })
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.calls.lock().expect("stats lock").values().sum()
    }

    pub fn mutating(&self) -> u64 {
        self.calls()
            .iter()
            .filter(|c| c.mutating)
            .map(|c| c.count)
            .sum()
    }

    /// Attempts beyond the first of each call: the SDK's retries.
    pub fn retries(&self) -> u64 {
        self.attempts
            .lock()
            .expect("stats lock")
            .saturating_sub(self.total())
    }
}

/// Reads never change anything; everything else counts as a mutating call.
pub fn is_mutating(operation: &str) -> bool {
    ![
        "Describe", "List", "Get", "Search", "Lookup", "Test", "Validate",
    ]
    .iter()
    .any(|p| operation.starts_with(p))
}

/// An endpoint that never answered: no HTTP response came back from it at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot reach {endpoint}: {reason}")]
pub struct Unreachable {
    /// Scheme, host and port only: a request's path and query are not the endpoint.
    pub endpoint: String,
    pub reason: String,
}

/// Whether any endpoint has answered yet in this command, and the first endpoint that
/// could not be reached before one did.
#[derive(Debug, Default)]
struct Reach {
    answered: AtomicBool,
    unreachable: Mutex<Option<Unreachable>>,
}

/// The endpoint of the attempt in flight, kept in the operation's config bag between
/// transmit (where the request is visible) and the attempt's end (where it is gone).
#[derive(Debug, Clone)]
struct AttemptEndpoint(String);

impl Storable for AttemptEndpoint {
    type Storer = StoreReplace<Self>;
}

/// `scheme://host[:port]` of a request URI.
fn endpoint_of(uri: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    // Credentials in a URL (`user:pass@host`) are not part of what to name.
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if scheme.is_empty() {
        host.to_string()
    } else {
        format!("{scheme}://{host}")
    }
}

/// One plain phrase for why a connection failed: the OS's reason without its error
/// number, or the connect timeout.
fn reason_of(e: &ConnectorError) -> String {
    if e.is_timeout() {
        return format!("no connection within {} s", CONNECT_TIMEOUT.as_secs());
    }
    let mut cause: &(dyn std::error::Error + 'static) = e;
    let mut deepest = None;
    while let Some(next) = cause.source() {
        if let Some(io) = next.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "connection refused".into();
            }
        }
        deepest = Some(next);
        cause = next;
    }
    let text = deepest
        .map(|d| d.to_string())
        .unwrap_or_else(|| e.to_string());
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "the connection failed".into(),
    }
}

/// Watches attempts: any HTTP response proves the network path works; a connection
/// failure before any response names the endpoint that could not be reached.
#[derive(Debug)]
struct ReachWatch(Arc<Reach>);

impl Intercept for ReachWatch {
    fn name(&self) -> &'static str {
        "securecart-reach"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let endpoint = endpoint_of(ctx.request().uri());
        cfg.interceptor_state().store_put(AttemptEndpoint(endpoint));
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        _ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.answered.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.0.answered.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(Err(e)) = ctx.output_or_error() else {
            return Ok(());
        };
        let (Some(c), Some(AttemptEndpoint(endpoint))) =
            (e.as_connector_error(), cfg.load::<AttemptEndpoint>())
        else {
            return Ok(());
        };
        self.0
            .unreachable
            .lock()
            .expect("reach lock")
            .get_or_insert_with(|| Unreachable {
                endpoint: endpoint.clone(),
                reason: reason_of(c),
            });
        Ok(())
    }
}

/// No retry of a connection failure until some endpoint has answered: the SDK treats
/// refused connections and connect timeouts as transient and would retry them all
/// (minutes of silence for a wrong `--endpoint-url`). Once an endpoint has answered,
/// the SDK's standard classification applies again, so a dropped connection on a
/// working network is retried as before; throttling is never affected.
#[derive(Debug)]
struct NoRetryBeforeAnswer(Arc<Reach>);

impl ClassifyRetry for NoRetryBeforeAnswer {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(e)) if e.is_connector_error() && !self.0.answered.load(Ordering::SeqCst) => {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "securecart-no-retry-before-answer"
    }
}

/// Error codes that mean an account quota is reached, which waiting does not change: the
/// SDK counts `LimitExceededException` as throttling (aws-runtime `THROTTLING_ERRORS`) and
/// would retry it for minutes. IAM (`LimitExceeded`: "Cannot exceed quota for
/// RolesPerAccount"), EventBridge, CloudWatch Logs, Lambda and Auto Scaling (`LimitExceeded`)
/// use them for quotas; their throttling has codes of its own (`Throttling`,
/// `ThrottlingException`, `TooManyRequestsException`, EC2's `RequestLimitExceeded`), which
/// stay retried. https://docs.aws.amazon.com/IAM/latest/APIReference/CommonErrors.html
const QUOTA_CODES: &[&str] = &["LimitExceededException", "LimitExceeded"];

/// Stops retries of a quota error (see [`QUOTA_CODES`]). It runs before the SDK's own
/// classifiers, and a forbidden retry ends the classification.
#[derive(Debug)]
struct QuotaIsNotThrottling;

impl ClassifyRetry for QuotaIsNotThrottling {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let quota = matches!(ctx.output_or_error(), Some(Err(_)))
            && ctx
                .response()
                .and_then(error_code_of)
                .is_some_and(|c| QUOTA_CODES.contains(&c.as_str()));
        if quota {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "securecart-quota-is-not-throttling"
    }
}

/// The AWS error code of an error response, for any service's protocol: the
/// `x-amzn-ErrorType` header (JSON protocols), `<Code>` (XML/query protocols) or `__type`
/// (JSON bodies). A classifier sees the response, not the operation's typed error.
fn error_code_of(r: &HttpResponse) -> Option<String> {
    let bare = |c: &str| {
        let c = c.split(':').next().unwrap_or(c);
        c.rsplit('#').next().unwrap_or(c).trim().to_string()
    };
    if let Some(h) = r.headers().get("x-amzn-errortype") {
        return Some(bare(h));
    }
    let body = std::str::from_utf8(r.body().bytes()?).ok()?;
    if let Some(i) = body.find("<Code>") {
        let rest = &body[i + "<Code>".len()..];
        return Some(bare(&rest[..rest.find("</Code>")?]));
    }
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("__type")
        .or_else(|| v.get("code"))
        .and_then(|c| c.as_str())
        .map(bare)
}

#[derive(Debug)]
struct Counter(Arc<Stats>);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "securecart-stats"
    }

    // The operation's metadata is in the config bag from serialization on, once per call.
    fn read_before_serialization(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            self.0.record(m.service(), m.name());
        }
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        *self.0.attempts.lock().expect("stats lock") += 1;
        Ok(())
    }
}

/// One client per service, sharing one configuration and one call counter.
#[derive(Debug, Clone)]
pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub iam: aws_sdk_iam::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub rds: aws_sdk_rds::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// Only for the stack lock (`lock.rs`): securecart manages no S3 resources.
    pub s3: aws_sdk_s3::Client,
    sts: aws_sdk_sts::Client,
    pub region: String,
    pub local: bool,
    pub stats: Arc<Stats>,
    reach: Arc<Reach>,
    identity: Arc<OnceCell<Identity>>,
    reads: Arc<Mutex<HashMap<String, SharedRead>>>,
}

type SharedRead = Arc<OnceCell<Arc<dyn Any + Send + Sync>>>;

/// Who the credentials belong to (`sts:GetCallerIdentity`, which needs no permission).
#[derive(Debug, Clone)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

macro_rules! client {
    ($krate:ident, $sdk:expr, $icpt:expr, $reach:expr, $partition:expr) => {
        $krate::Client::from_conf(
            $krate::config::Builder::from($sdk)
                .interceptor($icpt.clone())
                .interceptor(ReachWatch($reach.clone()))
                .retry_classifier(NoRetryBeforeAnswer($reach.clone()))
                .retry_classifier(QuotaIsNotThrottling)
                .retry_partition($partition.clone())
                .build(),
        )
    };
}

impl Aws {
    pub async fn connect(s: &AwsSettings) -> Result<Aws, ConnectError> {
        // Throttling on a 50-resource apply is normal; the SDK's 3 attempts lose calls
        // (see shared notes), so allow more with the standard backoff.
        let retry = RetryConfig::standard()
            .with_max_attempts(if s.local { 10 } else { 12 })
            .with_initial_backoff(Duration::from_millis(if s.local { 100 } else { 500 }))
            .with_max_backoff(Duration::from_secs(20));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(Duration::from_secs(120))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(p) = &s.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &s.region {
            loader = loader.region(Region::new(r.clone()));
        } else if s.local {
            loader = loader.region(Region::new("us-east-1"));
        }
        if let Some(u) = &s.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        if s.local {
            loader = loader.credentials_provider(aws_sdk_sts::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "securecart-local",
            ));
        }
        let sdk = loader.load().await;
        let region = sdk.region().ok_or(ConnectError::NoRegion)?.to_string();
        let stats = Arc::new(Stats::default());
        let icpt = SharedInterceptor::new(Counter(stats.clone()));
        let reach = Arc::new(Reach::default());
        // The standard retry strategy shares a quota of 500 tokens per region, 5 per retry:
        // under sustained throttling (a large apply, or several CI runs in one account) it
        // runs dry and later calls fail on their first throttle, with attempts left
        // (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html,
        // "retry quota"). securecart bounds retries by attempts and backoff instead.
        let partition = RetryPartition::custom("securecart")
            .token_bucket(TokenBucket::unlimited())
            .build();
        Ok(Aws {
            ec2: client!(aws_sdk_ec2, &sdk, icpt, reach, partition),
            sqs: client!(aws_sdk_sqs, &sdk, icpt, reach, partition),
            sns: client!(aws_sdk_sns, &sdk, icpt, reach, partition),
            events: client!(aws_sdk_eventbridge, &sdk, icpt, reach, partition),
            sfn: client!(aws_sdk_sfn, &sdk, icpt, reach, partition),
            lambda: client!(aws_sdk_lambda, &sdk, icpt, reach, partition),
            iam: client!(aws_sdk_iam, &sdk, icpt, reach, partition),
            elbv2: client!(aws_sdk_elasticloadbalancingv2, &sdk, icpt, reach, partition),
            autoscaling: client!(aws_sdk_autoscaling, &sdk, icpt, reach, partition),
            rds: client!(aws_sdk_rds, &sdk, icpt, reach, partition),
            ssm: client!(aws_sdk_ssm, &sdk, icpt, reach, partition),
            logs: client!(aws_sdk_cloudwatchlogs, &sdk, icpt, reach, partition),
            // Path-style addressing for a custom endpoint (the emulator, a proxy): a virtual
            // host `BUCKET.127.0.0.1` does not resolve. AWS itself gets virtual hosts.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(s.endpoint_url.is_some())
                    .interceptor(icpt.clone())
                    .interceptor(ReachWatch(reach.clone()))
                    .retry_classifier(NoRetryBeforeAnswer(reach.clone()))
                    .retry_classifier(QuotaIsNotThrottling)
                    .retry_partition(partition.clone())
                    .build(),
            ),
            sts: client!(aws_sdk_sts, &sdk, icpt, reach, partition),
            region,
            local: s.local,
            stats,
            reach,
            identity: Arc::new(OnceCell::new()),
            reads: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The partition of the region in use: what ARNs begin with, how services are named
    /// in policies.
    pub fn partition(&self) -> &'static crate::partition::Partition {
        crate::partition::of(&self.region)
    }

    /// Runs a whole-kind read once per command and shares its result: two kinds that
    /// come from one API (DB instances and their replicas, load balancers and their
    /// listeners) then cost one call, not two. Only for reading live state, never for
    /// the checks a create or delete makes, which must see AWS as it is now.
    pub async fn read_once<T, F, Fut>(&self, key: String, read: F) -> Result<Arc<T>, Error>
    where
        T: Any + Send + Sync,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let cell = self
            .reads
            .lock()
            .expect("reads lock")
            .entry(key)
            .or_default()
            .clone();
        let v = cell
            .get_or_try_init(|| async {
                read()
                    .await
                    .map(|t| Arc::new(t) as Arc<dyn Any + Send + Sync>)
            })
            .await?
            .clone();
        v.downcast::<T>()
            .map_err(|_| Error::Invalid("a shared read was used with two types".into()))
    }

    /// Forgets the shared reads, so that the next read of live state asks AWS again (after
    /// waiting for the stack lock, when another run may have changed the stack).
    pub fn forget_reads(&self) {
        self.reads.lock().expect("reads lock").clear();
    }

    /// The endpoint that could not be reached, when no endpoint has answered in this
    /// command: the plain reason behind whatever error a call then returned.
    pub fn unreachable(&self) -> Option<Unreachable> {
        self.reach.unreachable.lock().expect("reach lock").clone()
    }

    /// The caller's account id (one STS call, made only when something needs it).
    pub async fn account_id(&self) -> Result<String, Error> {
        Ok(self.identity().await?.account)
    }

    /// The caller's account and ARN, from one STS call per command.
    pub async fn identity(&self) -> Result<Identity, Error> {
        self.identity
            .get_or_try_init(|| async {
                let out = self.sts.get_caller_identity().send().await?;
                Ok(Identity {
                    account: out.account().unwrap_or_default().to_string(),
                    arn: out.arn().unwrap_or_default().to_string(),
                })
            })
            .await
            .cloned()
    }

    /// The region's availability zones this account can use, as (name, ID) sorted by
    /// name: available, and not a Local or Wavelength Zone nor one that needs opting in.
    /// Names are mapped per account (`us-east-1a` differs between accounts) and some
    /// regions skip letters (ap-northeast-1 has a, c and d):
    /// https://docs.aws.amazon.com/ram/latest/userguide/working-with-az-ids.html
    pub async fn availability_zones(&self) -> Result<Vec<(String, String)>, Error> {
        // Filtered here rather than with request filters, which the same call answers
        // differently across endpoints (a filter name it does not know is an error).
        let out = self
            .ec2
            .describe_availability_zones()
            .send()
            .await
            .map_err(aws_error("DescribeAvailabilityZones"))?;
        let mut zones: Vec<(String, String)> = out
            .availability_zones()
            .iter()
            .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
            .filter(|z| {
                z.opt_in_status().is_none_or(|o| {
                    *o == aws_sdk_ec2::types::AvailabilityZoneOptInStatus::OptInNotRequired
                })
            })
            .filter(|z| {
                z.state()
                    .is_none_or(|s| *s == aws_sdk_ec2::types::AvailabilityZoneState::Available)
            })
            .filter_map(|z| {
                Some((
                    z.zone_name()?.to_string(),
                    z.zone_id().unwrap_or_default().to_string(),
                ))
            })
            .collect();
        zones.sort();
        Ok(zones)
    }
}

// ---- Errors of AWS calls, in words -------------------------------------------------

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// An AWS API call failed (after the SDK's own retries).
    #[error("{operation} failed: {message}")]
    Aws {
        operation: String,
        code: Option<String>,
        message: String,
    },
    /// Something in AWS stands in the way and is not ours to change.
    #[error("{0}")]
    Conflict(String),
    #[error("timed out after {secs}s waiting for {what}")]
    Timeout { what: String, secs: u64 },
    /// The desired attributes cannot be turned into a request.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn is_code(&self, codes: &[&str]) -> bool {
        self.code().is_some_and(|c| codes.contains(&c))
    }
}

/// An error and its causes in words, `outer: inner: …` (DisplayErrorContext would append a
/// Debug dump of the whole error, which is not for users).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.last().is_some_and(|p| p.ends_with(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}

/// `?` on an SDK call: the operation is named by the error type, as each SDK operation has
/// its own (`aws_sdk_rds::operation::create_db_instance::CreateDBInstanceError` belongs to
/// `CreateDBInstance`), so no call site spells the name and none can misspell it.
impl<E> From<SdkError<E, HttpResponse>> for Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn from(e: SdkError<E, HttpResponse>) -> Self {
        aws_error(operation_of::<E>())(e)
    }
}

/// `CreateDBInstance` from `aws_sdk_rds::operation::create_db_instance::CreateDBInstanceError`.
fn operation_of<E>() -> &'static str {
    let name = std::any::type_name::<E>();
    let last = name.rsplit("::").next().unwrap_or(name);
    last.strip_suffix("Error").unwrap_or(last)
}

/// The IAM action of a call, `ec2:CreateVpc`, from its SDK crate (the first segment of
/// the error type, `aws_sdk_ec2::operation::create_vpc::CreateVpcError`) and operation.
fn iam_action_of<E>(operation: &str) -> Option<String> {
    let krate = std::any::type_name::<E>().split("::").next()?;
    crate::permissions::iam_prefix_of_crate(krate).map(|p| format!("{p}:{operation}"))
}

/// Maps an SDK error to [`Error`], keeping the service's error code and message.
pub fn aws_error<E>(operation: &'static str) -> impl FnOnce(SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |e| {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().map(str::to_string);
        let message = match (&e, e.message()) {
            (_, Some(m)) => format!(
                "{}{m}",
                code.as_deref()
                    .map(|c| format!("{c}: "))
                    .unwrap_or_default()
            ),
            // The error chain in words (io error, connection refused), never a Debug dump.
            (SdkError::DispatchFailure(_), None) => {
                let chain = error_chain(&e);
                // The SDK loads credentials while dispatching: no endpoint was tried at all.
                if chain.contains("loading credentials") {
                    format!("no usable AWS credentials (environment, profile, SSO or instance role; see the README's Real AWS section): {chain}")
                } else {
                    format!("cannot reach the AWS endpoint: {chain}")
                }
            }
            (SdkError::TimeoutError(_), None) => "the request timed out".to_string(),
            (_, None) => match (&code, status) {
                (Some(c), _) => c.clone(),
                // Something answered, but not with an AWS error (a proxy, a web server).
                (None, Some(s)) if s >= 300 => format!(
                    "the endpoint answered HTTP {s} without an AWS error in the body (is it an AWS endpoint?)"
                ),
                (None, _) => error_chain(&e),
            },
        };
        let message = match code.as_deref() {
            Some(c) if QUOTA_CODES.contains(&c) => format!(
                "{message} (an account quota, not throttling: raise it in Service Quotas or \
                 remove resources you no longer use)"
            ),
            _ => message,
        };
        // Denied: say which action (and resource) the identity lacks and where the policy
        // that has it comes from.
        let message = match code.as_deref() {
            Some(c) if crate::permissions::ACCESS_DENIED_CODES.contains(&c) => format!(
                "{message} ({})",
                crate::permissions::access_denied_hint(
                    &message,
                    iam_action_of::<E>(operation).as_deref()
                )
            ),
            _ => message,
        };
        let message = if status == Some(501) && code.is_some() {
            format!("{message} (the endpoint does not implement {operation}; the bundled emulator lacks it)")
        } else {
            message
        };
        Error::Aws {
            operation: operation.to_string(),
            code,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn names_the_operation_by_its_error_type() {
        use aws_sdk_ec2::operation::create_subnet::CreateSubnetError;
        use aws_sdk_rds::operation::create_db_instance_read_replica::CreateDBInstanceReadReplicaError;
        assert_eq!(operation_of::<CreateSubnetError>(), "CreateSubnet");
        assert_eq!(
            operation_of::<CreateDBInstanceReadReplicaError>(),
            "CreateDBInstanceReadReplica"
        );
        let e: Error = SdkError::<CreateSubnetError, HttpResponse>::timeout_error("slow").into();
        assert_eq!(e.to_string(), "CreateSubnet failed: the request timed out");
    }

    #[test]
    fn classifies_mutating_operations() {
        assert!(!is_mutating("DescribeVpcs"));
        assert!(!is_mutating("GetQueueAttributes"));
        assert!(!is_mutating("ListTagsForResource"));
        assert!(is_mutating("CreateVpc"));
        assert!(is_mutating("SetQueueAttributes"));
        assert!(is_mutating("TagQueue"));
    }

    #[test]
    fn names_the_endpoint_without_path_or_credentials() {
        assert_eq!(endpoint_of("http://127.0.0.1:9/"), "http://127.0.0.1:9");
        assert_eq!(
            endpoint_of("https://ec2.us-east-1.amazonaws.com/?Action=DescribeVpcs"),
            "https://ec2.us-east-1.amazonaws.com"
        );
        assert_eq!(
            endpoint_of("http://u:p@10.0.0.1:4566/x"),
            "http://10.0.0.1:4566"
        );
    }

    #[test]
    fn a_refused_connection_is_said_plainly() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = ConnectorError::io(Box::new(io));
        assert_eq!(reason_of(&e), "connection refused");
        let e = ConnectorError::timeout("HTTP connect timeout occurred after 3s".into());
        assert_eq!(reason_of(&e), "no connection within 3 s");
        let dns = std::io::Error::other("Failed to lookup address information (os error -2)");
        let e = ConnectorError::io(Box::new(dns));
        assert_eq!(reason_of(&e), "failed to lookup address information");
    }

    /// A stand-in STS endpoint: every call is answered `error_code` until its attempt
    /// number (the SDK's `amz-sdk-request: attempt=N` header) reaches `ok_from`, then
    /// succeeds. Counts the requests it answered.
    async fn sts_answering(error_code: &'static str, ok_from: u32) -> (String, Arc<AtomicU64>) {
        sts_answering_with(error_code, "stand-in", ok_from).await
    }

    /// [`sts_answering`] with the error's message.
    async fn sts_answering_with(
        error_code: &'static str,
        error_message: &'static str,
        ok_from: u32,
    ) -> (String, Arc<AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let served = Arc::new(AtomicU64::new(0));
        let count = served.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Headers, then a body of Content-Length bytes.
                    let (head, need) = loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (head, end + 4 + len);
                        }
                    };
                    while buf.len() < need {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let attempt = head
                        .lines()
                        .find_map(|l| l.strip_prefix("amz-sdk-request:"))
                        .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("attempt=")))
                        .and_then(|n| n.parse::<u32>().ok())
                        .unwrap_or(1);
                    let (status, body) = if attempt >= ok_from {
                        ("200 OK", "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/t</Arn><UserId>T</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>".to_string())
                    } else {
                        ("400 Bad Request", format!("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{error_code}</Code><Message>{error_message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"))
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        (url, served)
    }

    async fn connect(url: String) -> Aws {
        Aws::connect(&AwsSettings {
            endpoint_url: Some(url),
            local: true,
            ..Default::default()
        })
        .await
        .expect("connect")
    }

    /// 300 calls throttled twice each need 600 retries: more than the SDK's default retry
    /// quota (500 tokens, 5 a retry) allows, so without securecart's own partition most of
    /// them would fail with attempts left.
    #[tokio::test]
    async fn sustained_throttling_does_not_exhaust_a_retry_quota() {
        let (url, served) = sts_answering("Throttling", 3).await;
        let aws = connect(url).await;
        let calls = (0..300).map(|_| aws.sts.get_caller_identity().send());
        let results = futures::future::join_all(calls).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(failed, 0, "{:?}", results.iter().find(|r| r.is_err()));
        assert_eq!(served.load(Ordering::SeqCst), 900);
    }

    /// Denied: the error names the action and resource AWS's message names, or else the
    /// call's own action, and points to `securecart permissions`; one call, no retry.
    #[tokio::test]
    async fn access_denied_names_the_action_and_the_permissions_command() {
        let denied = "User: arn:aws:iam::123456789012:user/t is not authorized to perform: sts:GetCallerIdentity on resource: arn:aws:iam::123456789012:user/t because no identity-based policy allows the sts:GetCallerIdentity action";
        for (code, message, says) in [
            ("AccessDenied", denied, Some("the identity may not call `sts:GetCallerIdentity` on `arn:aws:iam::123456789012:user/t`; `securecart permissions BLUEPRINT` prints the IAM policy")),
            ("AccessDenied", "Access Denied", Some("Access Denied (the identity may not call `sts:GetCallerIdentity`; `securecart permissions BLUEPRINT`")),
            ("AuthorizationError", denied, Some("`sts:GetCallerIdentity` on `arn:aws:iam::123456789012:user/t`; `securecart permissions")),
            // Other errors get no such hint.
            ("InvalidClientTokenId", denied, None),
        ] {
            let (url, served) = sts_answering_with(code, message, 99).await;
            let e = connect(url)
                .await
                .sts
                .get_caller_identity()
                .send()
                .await
                .map_err(Error::from)
                .expect_err("refused")
                .to_string();
            assert_eq!(served.load(Ordering::SeqCst), 1, "{code} was retried");
            assert!(e.starts_with("GetCallerIdentity failed: "), "{e}");
            match says {
                Some(says) => assert!(e.contains(says), "{e}"),
                None => assert!(!e.contains("securecart permissions"), "{e}"),
            }
        }
    }

    /// A quota is not throttling: one call, and the error says what to do.
    #[tokio::test]
    async fn a_quota_error_is_not_retried_and_says_so() {
        for code in QUOTA_CODES {
            let (url, served) = sts_answering(code, 99).await;
            let aws = connect(url).await;
            let e = aws
                .sts
                .get_caller_identity()
                .send()
                .await
                .map_err(aws_error("GetCallerIdentity"))
                .expect_err("a quota error");
            assert_eq!(served.load(Ordering::SeqCst), 1, "{code} was retried");
            assert!(
                e.to_string().contains("an account quota, not throttling"),
                "{e}"
            );
        }
        // Throttling under another name is still retried.
        let (url, served) = sts_answering("RequestLimitExceeded", 2).await;
        connect(url)
            .await
            .sts
            .get_caller_identity()
            .send()
            .await
            .expect("retried");
        assert_eq!(served.load(Ordering::SeqCst), 2);
    }
}
