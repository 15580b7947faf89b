//! The stack lock: apply and destroy of one stack never run at once. There is no state
//! file to lock, and two CI runners share nothing but the AWS account, so the lock is one
//! small S3 object per stack, `stacks/STACK.json` in the bucket
//! `securecart-lock-ACCOUNT-REGION` (created on first use: private, encrypted, versioning
//! off). Every write is an S3 conditional write, S3's compare-and-swap:
//!
//! - take a free stack: `PutObject` with `If-None-Match: *` (fails if the object exists);
//! - renew, release, or take over a released or expired lease: `PutObject` with
//!   `If-Match: ETAG` of the record just read (fails if anyone wrote it since).
//!
//! Of two writers racing on one condition one wins; the other gets `412
//! PreconditionFailed` (or `409 ConditionalRequestConflict` when the writes overlap, which
//! AWS says to retry), re-reads, and sees the winner as holder
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html>,
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html>, `If-Match` /
//! `If-None-Match`). Reads see the last write at once: S3 is strongly read-after-write
//! consistent (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel>).
//! Reading a lock object that does not exist yet needs `s3:ListBucket` too: without it S3
//! answers `403 AccessDenied` instead of `404 NoSuchKey`
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html>, Permissions).
//! This is how Terraform's S3 backend locks state since 1.10 (`use_lockfile`).
//!
//! Release writes a `released` record rather than deleting the object: S3 honours
//! `If-Match` on `DeleteObject` only in recent API versions and the bundled emulator not
//! at all, while a conditional overwrite is the same compare-and-swap as every other write.
//!
//! A lease: the holder rewrites the record every lease/3; a record not rewritten for a
//! whole lease is expired and may be taken over (a `kill -9`ed run blocks the stack for
//! one lease at most). Age is S3's `LastModified` against the `Date` of the response that
//! read it: both S3's clock, so clock skew between runners does not matter.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::date_time::{DateTime, Format};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::aws::{Aws, Error as AwsError};
use crate::report::{Event, Reporter};

/// The version of the record's layout; a newer one is refused rather than misread.
const FORMAT: u32 = 1;

/// Lease settings, resolved in `settings`.
#[derive(Debug, Clone)]
pub struct LockSettings {
    /// How long a record stays valid without renewal.
    pub lease: Duration,
    /// This machine's name.
    pub host: String,
    /// The CI job this run belongs to, when the environment names one.
    pub ci_job: Option<String>,
}

/// Who holds the lock, as written in the record and shown to whoever waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The caller's ARN (`sts:GetCallerIdentity`).
    pub caller: String,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job: Option<String>,
    /// `apply` or `destroy`.
    pub command: String,
    pub pid: u32,
}

/// The lock object's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    pub stack: String,
    /// Random per run: tells one run's lease from another's.
    pub run_id: String,
    pub holder: Holder,
    /// When the holder took the lock (its own clock, Unix seconds): for people.
    pub since: u64,
    /// How long the record stays valid without renewal.
    pub lease_seconds: u64,
    /// Written on release (and by `unlock`): the stack is free.
    pub released: bool,
}

impl Record {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a lock record serializes")
    }

    pub fn parse(bytes: &[u8]) -> Result<Record, String> {
        let r: Record = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if r.format > FORMAT {
            return Err(format!(
                "written by a newer securecart (lock format {}): upgrade securecart",
                r.format
            ));
        }
        Ok(r)
    }
}

/// What a read of the lock object found, judged by S3's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// No lock object: the stack was never locked.
    Absent,
    /// Released by its last holder (or by `unlock`).
    Released { etag: String },
    /// A live lease.
    Held {
        record: Record,
        etag: String,
        /// Since the holder last wrote the record.
        age: Duration,
    },
    /// A lease not renewed in time: its holder is gone (or lost its way) and the lock
    /// may be taken over.
    Expired {
        record: Record,
        etag: String,
        age: Duration,
    },
}

/// Judges a record by the time since it was last written: both instants are S3's.
pub fn judge(
    record: Record,
    etag: String,
    last_modified: SystemTime,
    server_now: SystemTime,
) -> Seen {
    if record.released {
        return Seen::Released { etag };
    }
    // A `LastModified` ahead of `Date` (second granularity of both) counts as age 0.
    let age = server_now
        .duration_since(last_modified)
        .unwrap_or(Duration::ZERO);
    if age >= Duration::from_secs(record.lease_seconds) {
        Seen::Expired { record, etag, age }
    } else {
        Seen::Held { record, etag, age }
    }
}

/// `2026-12-08T00:15:00Z` from Unix seconds.
pub fn utc(secs: u64) -> String {
    DateTime::from_secs(secs as i64)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| secs.to_string())
}

/// The holder in words, for "locked by …" messages.
pub fn describe(record: &Record, age: Duration) -> String {
    let h = &record.holder;
    let ci = h
        .ci_job
        .as_deref()
        .map(|j| format!(", CI job {j}"))
        .unwrap_or_default();
    format!(
        "`{}` by {} on host {} (pid {}{ci}) since {}, lease renewed {} s ago (lease {} s)",
        h.command,
        h.caller,
        h.host,
        h.pid,
        utc(record.since),
        age.as_secs(),
        record.lease_seconds
    )
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("stack `{stack}` is locked: {holder}{waited}. Try again when it ends, wait for it with --lock-timeout (e.g. 10m), or, if that run is gone for good, `securecart unlock --stack {stack}` (its lease also expires by itself)")]
    Locked {
        stack: String,
        holder: String,
        waited: String,
    },
    #[error("the stack lock s3://{bucket}/{key} holds something securecart cannot read ({why}); if no securecart run holds it, `securecart unlock --stack {stack}` overwrites it")]
    Unreadable {
        stack: String,
        bucket: String,
        key: String,
        why: String,
    },
    #[error("the lock bucket {bucket} exists but belongs to another AWS account (S3 bucket names are global): securecart cannot lock stacks in this account and region until it is deleted or renamed")]
    BucketTaken { bucket: String },
    #[error("the stack lock in bucket {bucket} cannot be used ({error}): the identity needs s3:GetObject and s3:PutObject on it (see the README's Real AWS section), or a bucket of that name belongs to another AWS account")]
    Denied { bucket: String, error: String },
    #[error("the stack lock changed while unlocking (another run took or renewed it): run `securecart unlock` again to see the new holder")]
    Raced,
    #[error("stack lock: {0}")]
    Aws(#[from] AwsError),
}

/// Where a stack's lock lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub bucket: String,
    pub key: String,
    /// Every call names the expected owner: a bucket of this name in another account
    /// (names are global) is refused by S3 rather than trusted with our records.
    pub owner: String,
}

impl Place {
    pub fn new(account: &str, region: &str, stack: &str) -> Place {
        Place {
            bucket: format!("securecart-lock-{account}-{region}"),
            key: format!("stacks/{stack}.json"),
            owner: account.to_string(),
        }
    }

    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// Captures the `Date` header of a response: S3's clock at the time of the read.
#[derive(Debug, Clone, Default)]
struct ServerDate(Arc<Mutex<Option<SystemTime>>>);

impl Intercept for ServerDate {
    fn name(&self) -> &'static str {
        "securecart-lock-server-date"
    }

    fn read_before_deserialization(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let date = ctx
            .response()
            .headers()
            .get("date")
            .and_then(|d| DateTime::from_str(d, Format::HttpDate).ok())
            .and_then(|d| SystemTime::try_from(d).ok());
        *self.0.lock().expect("date lock") = date;
        Ok(())
    }
}

fn is_code(e: &AwsError, codes: &[&str]) -> bool {
    e.is_code(codes)
}

/// A condition that did not hold: someone else wrote the object first (412), is writing
/// it right now (409), or deleted it (`If-Match` on a missing key: 404 `NoSuchKey`).
fn lost_race(e: &AwsError) -> bool {
    is_code(
        e,
        &[
            "PreconditionFailed",
            "ConditionalRequestConflict",
            "NoSuchKey",
        ],
    )
}

/// The lock store of one stack.
pub struct Store<'a> {
    aws: &'a Aws,
    pub place: Place,
    stack: String,
}

impl<'a> Store<'a> {
    pub async fn open(aws: &'a Aws, stack: &str) -> Result<Store<'a>, LockError> {
        let id = aws.identity().await?;
        Ok(Store {
            aws,
            place: Place::new(&id.account, &aws.region, stack),
            stack: stack.to_string(),
        })
    }

    /// Reads and judges the lock object.
    pub async fn read(&self) -> Result<Seen, LockError> {
        let date = ServerDate::default();
        let r = self
            .aws
            .s3
            .get_object()
            .bucket(&self.place.bucket)
            .key(&self.place.key)
            .expected_bucket_owner(&self.place.owner)
            .customize()
            .interceptor(date.clone())
            .send()
            .await;
        let out = match r.map_err(AwsError::from) {
            Ok(out) => out,
            Err(e) if is_code(&e, &["NoSuchKey", "NoSuchBucket"]) => return Ok(Seen::Absent),
            Err(e) => return Err(self.bucket_error(e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let last_modified = out
            .last_modified()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or(UNIX_EPOCH);
        let server_now = date
            .0
            .lock()
            .expect("date lock")
            .unwrap_or_else(SystemTime::now);
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| {
                LockError::Aws(AwsError::Invalid(format!(
                    "reading {}: {e}",
                    self.place.uri()
                )))
            })?
            .into_bytes();
        let record = Record::parse(&bytes).map_err(|why| LockError::Unreadable {
            stack: self.stack.clone(),
            bucket: self.place.bucket.clone(),
            key: self.place.key.clone(),
            why,
        })?;
        Ok(judge(record, etag, last_modified, server_now))
    }

    /// Writes the record if the object is still `expect` (an ETag), or absent when
    /// `expect` is `None`; the new ETag, or `None` when the condition did not hold.
    async fn put(
        &self,
        record: &Record,
        expect: Option<&str>,
    ) -> Result<Option<String>, LockError> {
        match self.put_once(record, expect).await {
            // The first lock in this account and region: make the bucket, then try again.
            Err(LockError::Aws(e)) if expect.is_none() && is_code(&e, &["NoSuchBucket"]) => {
                self.create_bucket().await?;
                self.put_once(record, expect).await
            }
            other => other,
        }
    }

    async fn put_once(
        &self,
        record: &Record,
        expect: Option<&str>,
    ) -> Result<Option<String>, LockError> {
        let req = self.put_request(record);
        let req = match expect {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await.map_err(AwsError::from) {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            Err(e) if lost_race(&e) => Ok(None),
            Err(e) => Err(self.bucket_error(e)),
        }
    }

    /// An unconditional write of `record` to the lock object.
    fn put_request(
        &self,
        record: &Record,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        self.aws
            .s3
            .put_object()
            .bucket(&self.place.bucket)
            .key(&self.place.key)
            .expected_bucket_owner(&self.place.owner)
            .content_type("application/json")
            .body(ByteStream::from(record.to_json()))
    }

    /// S3 answers a bucket of another account (`ExpectedBucketOwner` mismatch) and a
    /// missing permission alike, `403 AccessDenied`: the error names both causes.
    fn bucket_error(&self, e: AwsError) -> LockError {
        if is_code(&e, &["AccessDenied"]) {
            LockError::Denied {
                bucket: self.place.bucket.clone(),
                error: e.to_string(),
            }
        } else {
            LockError::Aws(e)
        }
    }

    /// The lock bucket, made private, encrypted (SSE-S3) and without versioning (the
    /// default; every renewal would otherwise keep a version). Two first runs racing
    /// here is fine: the second gets `BucketAlreadyOwnedByYou`.
    /// https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html
    async fn create_bucket(&self) -> Result<(), LockError> {
        use aws_sdk_s3::types::{
            BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration,
            ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
            ServerSideEncryptionRule,
        };
        let s3 = &self.aws.s3;
        let mut req = s3.create_bucket().bucket(&self.place.bucket);
        // us-east-1 takes no location constraint (CreateBucket refuses one naming it).
        if self.aws.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.aws.region.as_str()))
                    .build(),
            );
        }
        match req.send().await.map_err(AwsError::from) {
            Ok(_) => {}
            Err(e) if is_code(&e, &["BucketAlreadyOwnedByYou"]) => return Ok(()),
            Err(e) if is_code(&e, &["BucketAlreadyExists"]) => {
                return Err(LockError::BucketTaken {
                    bucket: self.place.bucket.clone(),
                })
            }
            Err(e) => return Err(e.into()),
        }
        s3.put_public_access_block()
            .bucket(&self.place.bucket)
            .expected_bucket_owner(&self.place.owner)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(AwsError::from)?;
        let by_default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::Aes256)
            .build()
            .map_err(|e| AwsError::Invalid(e.to_string()))?;
        let config = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(by_default)
                    .build(),
            )
            .build()
            .map_err(|e| AwsError::Invalid(e.to_string()))?;
        s3.put_bucket_encryption()
            .bucket(&self.place.bucket)
            .expected_bucket_owner(&self.place.owner)
            .server_side_encryption_configuration(config)
            .send()
            .await
            .map_err(AwsError::from)?;
        Ok(())
    }

    /// Forces the lock free (`securecart unlock`), if it is still what `seen` read.
    pub async fn force_release(&self, seen: &Seen) -> Result<(), LockError> {
        let (record, etag) = match seen {
            Seen::Absent | Seen::Released { .. } => return Ok(()),
            Seen::Held { record, etag, .. } | Seen::Expired { record, etag, .. } => (record, etag),
        };
        let released = Record {
            released: true,
            ..record.clone()
        };
        match self.put(&released, Some(etag)).await? {
            Some(_) => Ok(()),
            None => Err(LockError::Raced),
        }
    }

    /// Overwrites whatever the object holds with a released record (for an object
    /// securecart cannot read: there is no record to compare against).
    pub async fn overwrite_released(&self) -> Result<(), LockError> {
        let id = self.aws.identity().await?;
        let record = Record {
            format: FORMAT,
            stack: self.stack.clone(),
            run_id: String::new(),
            holder: Holder {
                caller: id.arn,
                host: String::new(),
                ci_job: None,
                command: "unlock".into(),
                pid: std::process::id(),
            },
            since: unix_now(),
            lease_seconds: 0,
            released: true,
        };
        self.put_request(&record)
            .send()
            .await
            .map_err(|e| self.bucket_error(e.into()))?;
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn run_id() -> String {
    let mut b = [0u8; 8];
    // Without randomness, pid and time still tell runs apart well enough.
    if getrandom::getrandom(&mut b).is_err() {
        b = (unix_now() ^ (std::process::id() as u64) << 32).to_be_bytes();
    }
    hex::encode(b)
}

/// A held lock: renewed in the background until released.
pub struct Lock {
    renewer: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    /// Becomes `Some(why)` when the lease is lost.
    lost: watch::Receiver<Option<String>>,
    state: Arc<Mutex<(Record, String)>>,
    place: Place,
    aws: Aws,
}

/// How one acquisition went, for the view.
#[derive(Debug, Clone, Default)]
pub struct Acquired {
    /// Someone held it when we first looked.
    pub waited: bool,
    /// The expired lease we took over, in words.
    pub took_over: Option<String>,
}

/// Takes the stack's lock, waiting up to `timeout` for a holder to finish.
pub async fn acquire(
    aws: &Aws,
    stack: &str,
    command: &str,
    s: &LockSettings,
    timeout: Duration,
    reporter: &dyn Reporter,
) -> Result<(Lock, Acquired), LockError> {
    let store = Store::open(aws, stack).await?;
    let id = aws.identity().await?;
    let record = Record {
        format: FORMAT,
        stack: stack.to_string(),
        run_id: run_id(),
        holder: Holder {
            caller: id.arn,
            host: s.host.clone(),
            ci_job: s.ci_job.clone(),
            command: command.to_string(),
            pid: std::process::id(),
        },
        since: unix_now(),
        lease_seconds: s.lease.as_secs().max(1),
        released: false,
    };
    let started = tokio::time::Instant::now();
    let mut how = Acquired::default();
    let mut said = None;
    loop {
        let seen = store.read().await?;
        let expect = match &seen {
            Seen::Absent => None,
            Seen::Released { etag } => Some(etag.clone()),
            Seen::Expired {
                record: old,
                etag,
                age,
            } => {
                how.took_over = Some(describe(old, *age));
                Some(etag.clone())
            }
            Seen::Held {
                record: old, age, ..
            } => {
                how.waited = true;
                let waited = started.elapsed();
                if waited >= timeout {
                    return Err(LockError::Locked {
                        stack: stack.to_string(),
                        holder: describe(old, *age),
                        waited: if timeout.is_zero() {
                            String::new()
                        } else {
                            format!("; waited {} s", waited.as_secs())
                        },
                    });
                }
                if said.as_ref() != Some(&old.run_id) {
                    let message = format!(
                        "waiting for the stack lock (up to {} s): held by {}",
                        timeout.as_secs(),
                        describe(old, *age)
                    );
                    reporter.event(Event::Note { message: &message });
                    said = Some(old.run_id.clone());
                }
                // Poll at most every 2 s: a lock is a few GETs a minute, far below S3's
                // 5,500 GET/s per prefix.
                let left = timeout.saturating_sub(waited);
                tokio::time::sleep(left.min(Duration::from_secs(2))).await;
                continue;
            }
        };
        if let Some(etag) = store.put(&record, expect.as_deref()).await? {
            if let Some(old) = &how.took_over {
                let message = format!("took over an expired stack lock: {old}");
                reporter.event(Event::Note { message: &message });
            }
            return Ok((Lock::start(aws, store.place.clone(), record, etag), how));
        }
        // Another run wrote first: read again and see who.
        how.took_over = None;
    }
}

impl Lock {
    fn start(aws: &Aws, place: Place, record: Record, etag: String) -> Lock {
        let (stop, mut stopped) = watch::channel(false);
        let (lost_tx, lost) = watch::channel(None);
        let state = Arc::new(Mutex::new((record, etag)));
        let lease = Duration::from_secs(state.lock().expect("lock state").0.lease_seconds);
        let task_state = state.clone();
        let task_aws = aws.clone();
        let task_place = place.clone();
        let renewer = tokio::spawn(async move {
            let store = Store {
                aws: &task_aws,
                place: task_place,
                stack: task_state.lock().expect("lock state").0.stack.clone(),
            };
            let mut last_ok = tokio::time::Instant::now();
            let every = (lease / 3).max(Duration::from_millis(300));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
                let (record, etag) = task_state.lock().expect("lock state").clone();
                match store.put(&record, Some(&etag)).await {
                    Ok(Some(new)) => {
                        task_state.lock().expect("lock state").1 = new;
                        last_ok = tokio::time::Instant::now();
                    }
                    Ok(None) => {
                        let _ = lost_tx.send(Some(format!(
                            "the stack lock was taken from this run (forced with `securecart unlock`, or taken over after this run failed to renew it): {}",
                            store.place.uri()
                        )));
                        return;
                    }
                    // A failed renewal is retried at the next tick while the lease
                    // lasts; once it has run out, others may take the lock.
                    Err(e) if last_ok.elapsed() + every >= lease => {
                        let _ = lost_tx.send(Some(format!(
                            "cannot renew the stack lock within its {} s lease: {e}",
                            lease.as_secs()
                        )));
                        return;
                    }
                    Err(_) => {}
                }
            }
        });
        Lock {
            renewer,
            stop,
            lost,
            state,
            place,
            aws: aws.clone(),
        }
    }

    /// Resolves with the reason once the lease is lost; never while it is held.
    pub fn lost(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut rx = self.lost.clone();
        async move {
            loop {
                if let Some(why) = rx.borrow_and_update().clone() {
                    return why;
                }
                if rx.changed().await.is_err() {
                    // The renewer ended without losing the lease (released): never.
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// `s3://BUCKET/KEY` of the record.
    pub fn object(&self) -> String {
        self.place.uri()
    }

    /// Stops renewing and frees the stack. A lease already lost is left to its new
    /// holder.
    pub async fn release(self) -> Result<(), Unreleased> {
        let _ = self.stop.send(true);
        let _ = self.renewer.await;
        if let Some(why) = self.lost.borrow().clone() {
            return Err(Unreleased::Lost(why));
        }
        let (record, etag) = self.state.lock().expect("lock state").clone();
        let store = Store {
            aws: &self.aws,
            place: self.place.clone(),
            stack: record.stack.clone(),
        };
        let released = Record {
            released: true,
            ..record
        };
        match store.put(&released, Some(&etag)).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Unreleased::Lost(format!(
                "the stack lock was taken from this run before it ended: {}",
                self.place.uri()
            ))),
            Err(e) => Err(Unreleased::Failed(format!(
                "cannot release the stack lock {} ({e}); it expires by itself within {} s",
                self.place.uri(),
                self.state.lock().expect("lock state").0.lease_seconds
            ))),
        }
    }
}

/// Why a lock was not released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreleased {
    /// Someone else holds it now: this run may have overlapped with theirs.
    Lost(String),
    /// The release failed; the lease runs out by itself.
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lease: u64, released: bool) -> Record {
        Record {
            format: FORMAT,
            stack: "shop".into(),
            run_id: "0123456789abcdef".into(),
            holder: Holder {
                caller: "arn:aws:sts::123456789012:assumed-role/ci/run-7".into(),
                host: "runner-3".into(),
                ci_job: Some("https://github.com/o/r/actions/runs/42".into()),
                command: "apply".into(),
                pid: 4242,
            },
            since: 1_796_688_000,
            lease_seconds: lease,
            released,
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_record_round_trips_and_a_newer_format_is_refused() {
        let r = record(60, false);
        assert_eq!(Record::parse(&r.to_json()).expect("parses"), r);
        let newer = Record {
            format: FORMAT + 1,
            ..r.clone()
        };
        let e = Record::parse(&newer.to_json()).expect_err("newer format");
        assert!(e.contains("newer securecart"), "{e}");
        assert!(Record::parse(b"not json").is_err());
        // A record without a CI job leaves the field out.
        let local = Record {
            holder: Holder {
                ci_job: None,
                ..r.holder.clone()
            },
            ..r
        };
        assert!(!String::from_utf8(local.to_json())
            .expect("utf8")
            .contains("ci_job"));
    }

    #[test]
    fn a_lease_expires_after_its_length_by_the_servers_clock() {
        let r = record(60, false);
        let held = judge(r.clone(), "e1".into(), at(1000), at(1059));
        assert!(
            matches!(&held, Seen::Held { age, .. } if *age == Duration::from_secs(59)),
            "{held:?}"
        );
        let expired = judge(r.clone(), "e1".into(), at(1000), at(1060));
        assert!(matches!(expired, Seen::Expired { .. }), "{expired:?}");
        // A Date a second behind LastModified (both whole seconds) is age 0, not an error.
        let fresh = judge(r, "e1".into(), at(1001), at(1000));
        assert!(
            matches!(fresh, Seen::Held { age, .. } if age.is_zero()),
            "{fresh:?}"
        );
    }

    #[test]
    fn a_released_record_is_free_whatever_its_age() {
        let r = record(60, true);
        assert_eq!(
            judge(r.clone(), "e2".into(), at(1000), at(1001)),
            Seen::Released { etag: "e2".into() }
        );
        assert_eq!(
            judge(r, "e2".into(), at(1000), at(99_000)),
            Seen::Released { etag: "e2".into() }
        );
    }

    #[test]
    fn the_holder_is_named_with_host_ci_job_and_time() {
        let text = describe(&record(60, false), Duration::from_secs(12));
        for part in [
            "`apply`",
            "arn:aws:sts::123456789012:assumed-role/ci/run-7",
            "host runner-3",
            "pid 4242",
            "CI job https://github.com/o/r/actions/runs/42",
            "since 2026-12-08T00:00:00Z",
            "renewed 12 s ago",
        ] {
            assert!(text.contains(part), "{part} missing from: {text}");
        }
    }

    #[test]
    fn the_lock_lives_in_one_bucket_per_account_and_region() {
        let p = Place::new("123456789012", "eu-west-1", "shop-main");
        assert_eq!(p.bucket, "securecart-lock-123456789012-eu-west-1");
        assert_eq!(p.key, "stacks/shop-main.json");
        assert_eq!(
            p.uri(),
            "s3://securecart-lock-123456789012-eu-west-1/stacks/shop-main.json"
        );
        // Longest region name today (ap-southeast-5 has 14 characters; allow 30): still
        // within S3's 63-character bucket names.
        assert!(
            Place::new("123456789012", &"x".repeat(30), "s")
                .bucket
                .len()
                <= 63
        );
    }

    #[test]
    fn run_ids_differ() {
        assert_ne!(run_id(), run_id());
        assert_eq!(run_id().len(), 16);
    }
}
