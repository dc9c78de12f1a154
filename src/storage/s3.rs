//! The S3 backend (aws-sdk-s3): AWS S3, MinIO or any S3-compatible server.
//!
//! * Logical keys get the configured prefix (normalised to end with `/` when non-empty);
//!   listings strip it again.
//! * Puts stream: md5 and sha256 are computed while reading. A body that ends within the first
//!   8 MiB is sent as one `PutObject` (with its `Content-MD5`, and `If-None-Match: *` /
//!   `If-Match` for conditional writes); a longer one goes up as a multipart upload of 8 MiB
//!   parts, aborted on any error or when the whole body's md5 differs from the announced one.
//!   Conditional writes of bodies above 8 MiB are refused (records are small).
//! * An announced `Content-MD5` is checked before anything is sent (single put) or completed
//!   (multipart), so a mismatch never stores anything, whatever the server does.
//! * ETags are reported without their quotes.
//! * Unreachable servers, timeouts and 5xx answers map to [`StorageError::Unavailable`]; the
//!   client uses the configured timeout for connecting, reading, each attempt and the whole
//!   operation, with at most two attempts.
//! * Presigned URLs are signed for the public endpoint when one is configured (a second
//!   client, same credentials and addressing), so clients that cannot resolve the address
//!   Trove uses (`minio:9000` inside a compose network) can still use them.
//! * A multipart upload interrupted by dropping the future (client gone) is left for the
//!   bucket's lifecycle rule (`AbortIncompleteMultipartUpload`) to clean up.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use tokio_util::io::ReaderStream;

use super::{
    ByteRange, ByteStream, DownloadHeaders, GetObject, ListPage, ListRequest, ObjectMeta,
    ObjectStore, PresignMethod, PutCondition, PutOptions, PutOutcome, Result, StorageError,
    StorageKind, prefix_can_match, validate_key,
};

/// Bodies that end within this many bytes go up in one `PutObject`; longer ones are uploaded
/// in parts of (at least) this size.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Largest listing page S3 returns.
const MAX_PAGE: usize = 1000;
/// Read buffer of streamed gets.
const READ_CHUNK: usize = 64 * 1024;

/// How to reach the bucket.
#[derive(Clone)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL for S3-compatible servers (MinIO, ...); `None` means AWS.
    pub endpoint: Option<String>,
    /// Region; `None` means the standard AWS chain, falling back to `us-east-1`.
    pub region: Option<String>,
    /// Prefix of every key in the bucket (`""` for none; a missing trailing `/` is added).
    pub prefix: String,
    /// Path-style addressing (`endpoint/bucket/key`), needed by MinIO and most local servers.
    pub path_style: bool,
    /// Connect, read and per-operation timeout.
    pub timeout: Duration,
    /// Static access key id and secret; `None` means the standard AWS credential chain.
    pub credentials: Option<(String, String)>,
    /// Endpoint URL presigned URLs are signed for, when clients reach the server at another
    /// address than this process does (`None`: `endpoint`). SigV4 signs the `Host`, so these
    /// URLs are made by a second client configured for this endpoint, never by rewriting.
    pub public_endpoint: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("public_endpoint", &self.public_endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("timeout", &self.timeout)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(key_id, _)| (key_id, "<redacted>")),
            )
            .finish()
    }
}

/// An [`ObjectStore`] on an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    /// Signs presigned URLs: `client` itself, or a client for the public endpoint (it only
    /// signs, never sends a request).
    presigning_client: Client,
    bucket: String,
    prefix: String,
}

/// What an error is mapped against: the key and, for puts, the condition and announced md5.
#[derive(Clone, Copy)]
struct ErrorContext<'a> {
    key: &'a str,
    condition: &'a PutCondition,
    content_md5: Option<&'a [u8; 16]>,
}

impl<'a> ErrorContext<'a> {
    fn read(key: &'a str) -> Self {
        Self {
            key,
            condition: &PutCondition::None,
            content_md5: None,
        }
    }
}

/// Maps an SDK error to a [`StorageError`].
fn map_error<E>(error: &SdkError<E, HttpResponse>, context: ErrorContext<'_>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let describe = || DisplayErrorContext(error).to_string();
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return StorageError::Unavailable(describe());
        }
        SdkError::ConstructionFailure(_) => return StorageError::Backend(describe()),
        _ => {}
    }
    let status = error
        .raw_response()
        .map(|response| response.status().as_u16());
    let code = error.code().unwrap_or_default();
    let key = context.key.to_owned();
    match (status, code) {
        (_, "NoSuchBucket") => {
            StorageError::Backend(format!("bucket does not exist: {}", describe()))
        }
        (Some(404), _) | (_, "NoSuchKey" | "NotFound") => StorageError::NotFound { key },
        (Some(412 | 409), _) | (_, "PreconditionFailed" | "ConditionalRequestConflict") => {
            match context.condition {
                PutCondition::IfAbsent => StorageError::AlreadyExists { key },
                PutCondition::IfMatch(_) => StorageError::PreconditionFailed { key },
                PutCondition::None => StorageError::Backend(describe()),
            }
        }
        (_, "BadDigest") => StorageError::DigestMismatch {
            expected: context.content_md5.map(hex::encode).unwrap_or_default(),
            actual: "(computed by the server)".into(),
        },
        (Some(500..=599), _) | (_, "SlowDown" | "ServiceUnavailable" | "InternalError") => {
            StorageError::Unavailable(describe())
        }
        _ => StorageError::Backend(describe()),
    }
}

fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_owned()
}

fn quote(etag: &str) -> String {
    format!("\"{}\"", etag.trim_matches('"'))
}

fn to_chrono(time: Option<&aws_sdk_s3::primitives::DateTime>) -> DateTime<Utc> {
    time.and_then(|time| DateTime::from_timestamp(time.secs(), time.subsec_nanos()))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn size_of(length: Option<i64>) -> u64 {
    length
        .and_then(|length| u64::try_from(length).ok())
        .unwrap_or(0)
}

/// Parses `Content-Range: bytes first-last/size`.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.strip_prefix("bytes ")?;
    let (range, size) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, size.parse().ok()?))
}

/// Digests of a body being read.
struct Digests {
    md5: Md5,
    sha256: Sha256,
    size: u64,
}

impl Digests {
    fn new() -> Self {
        Self {
            md5: Md5::new(),
            sha256: Sha256::new(),
            size: 0,
        }
    }
}

/// A body being read part by part, with the digests of everything read so far.
struct BodyReader {
    body: ByteStream,
    buffer: BytesMut,
    digests: Digests,
}

impl BodyReader {
    fn new(body: ByteStream) -> Self {
        Self {
            body,
            buffer: BytesMut::with_capacity(PART_SIZE),
            digests: Digests::new(),
        }
    }

    /// Reads into the buffer until it holds at least [`PART_SIZE`] bytes or the body ends.
    /// Returns `true` when the body ended.
    async fn fill(&mut self) -> Result<bool> {
        while self.buffer.len() < PART_SIZE {
            match self.body.next().await {
                None => return Ok(true),
                Some(Err(error)) => return Err(StorageError::Body(error)),
                Some(Ok(chunk)) => {
                    self.digests.md5.update(&chunk);
                    self.digests.sha256.update(&chunk);
                    self.digests.size += chunk.len() as u64;
                    self.buffer.extend_from_slice(&chunk);
                }
            }
        }
        Ok(false)
    }
}

fn check_md5(expected: Option<&[u8; 16]>, actual: &[u8; 16]) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => Err(StorageError::DigestMismatch {
            expected: hex::encode(expected),
            actual: hex::encode(actual),
        }),
        _ => Ok(()),
    }
}

impl S3Store {
    /// Builds the client for `settings`. Makes no request: use [`ObjectStore::check`] (or
    /// [`S3Store::create_bucket_if_missing`]) to prove the server answers.
    pub async fn connect(settings: S3Settings) -> Result<Self> {
        if settings.bucket.is_empty() {
            return Err(StorageError::Backend("s3 bucket name is empty".into()));
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some((key_id, secret)) = &settings.credentials {
            loader = loader.credentials_provider(Credentials::new(
                key_id.clone(),
                secret.clone(),
                None,
                None,
                "trove-static",
            ));
        }
        let shared = loader.load().await;
        let timeout = settings.timeout;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.path_style)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout)
                    .read_timeout(timeout)
                    .operation_attempt_timeout(timeout)
                    .operation_timeout(timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            // Only the checksums an operation requires: S3-compatible servers vary in their
            // support of the newer flexible checksums, and Content-MD5 already covers puts.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if shared.region().is_none() {
            builder = builder.region(Region::new("us-east-1"));
        }
        // The same configuration (credentials, region, addressing) for the URLs clients use,
        // pointed at the public endpoint when there is one.
        let presigning_builder = settings
            .public_endpoint
            .as_ref()
            .map(|public| builder.clone().endpoint_url(public));
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let client = Client::from_conf(builder.build());
        let presigning_client = match presigning_builder {
            Some(public) => Client::from_conf(public.build()),
            None => client.clone(),
        };
        let prefix = match settings.prefix.trim_matches('/') {
            "" => String::new(),
            trimmed => format!("{trimmed}/"),
        };
        if !prefix.is_empty() {
            validate_key(&prefix[..prefix.len() - 1])
                .map_err(|_| StorageError::Backend(format!("invalid s3 key prefix {prefix:?}")))?;
        }
        Ok(Self {
            client,
            presigning_client,
            bucket: settings.bucket,
            prefix,
        })
    }

    /// Creates the bucket when it does not exist yet (tests, docker setups).
    pub async fn create_bucket_if_missing(&self) -> Result<()> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(error) => match map_error(&error, ErrorContext::read(&self.bucket)) {
                StorageError::NotFound { .. } => {}
                other => return Err(other),
            },
        }
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        if let Some(region) = self.client.config().region()
            && region.as_ref() != "us-east-1"
        {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_ref()))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(error)
                if matches!(
                    error.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(error) => Err(map_error(&error, ErrorContext::read(&self.bucket))),
        }
    }

    /// The bucket key of a logical key.
    fn full_key(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    /// The logical key of a bucket key (`None` for keys outside the prefix).
    fn logical_key<'k>(&self, full: &'k str) -> Option<&'k str> {
        full.strip_prefix(&self.prefix)
    }

    async fn put_single(
        &self,
        key: &str,
        full: String,
        reader: BodyReader,
        options: &PutOptions,
    ) -> Result<PutOutcome> {
        let BodyReader {
            buffer, digests, ..
        } = reader;
        let body = buffer.freeze();
        let md5: [u8; 16] = digests.md5.finalize().into();
        check_md5(options.content_md5.as_ref(), &md5)?;
        let size = body.len();
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(full)
            .content_md5(BASE64.encode(md5))
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .set_content_type(options.content_type.clone())
            .body(S3Body::from(body));
        match &options.condition {
            PutCondition::None => {}
            PutCondition::IfAbsent => request = request.if_none_match("*"),
            PutCondition::IfMatch(etag) => request = request.if_match(quote(etag)),
        }
        let output = request.send().await.map_err(|error| {
            map_error(
                &error,
                ErrorContext {
                    key,
                    condition: &options.condition,
                    content_md5: options.content_md5.as_ref(),
                },
            )
        })?;
        Ok(PutOutcome {
            meta: ObjectMeta {
                key: key.to_owned(),
                size: digests.size,
                etag: unquote(output.e_tag()),
                last_modified: Utc::now(),
                content_type: options.content_type.clone(),
            },
            md5_hex: hex::encode(md5),
            sha256_hex: hex::encode(digests.sha256.finalize()),
        })
    }

    /// Uploads the parts of a multipart upload, starting with the buffered first part, and
    /// completes it. The caller aborts the upload when this fails.
    async fn upload_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        mut reader: BodyReader,
        options: &PutOptions,
    ) -> Result<PutOutcome> {
        let context = ErrorContext::read(key);
        let mut parts = Vec::new();
        let mut ended = false;
        loop {
            if !reader.buffer.is_empty() {
                let part_number = i32::try_from(parts.len() + 1)
                    .map_err(|_| StorageError::Backend("too many parts".into()))?;
                let chunk = reader.buffer.split().freeze();
                let length = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
                let output = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(full)
                    .upload_id(upload_id)
                    .part_number(part_number)
                    .content_length(length)
                    .body(S3Body::from(chunk))
                    .send()
                    .await
                    .map_err(|error| map_error(&error, context))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(part_number)
                        .set_e_tag(output.e_tag().map(str::to_owned))
                        .build(),
                );
            }
            if ended {
                break;
            }
            ended = reader.fill().await?;
        }
        let digests = reader.digests;
        let md5: [u8; 16] = digests.md5.finalize().into();
        check_md5(options.content_md5.as_ref(), &md5)?;
        let output = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|error| map_error(&error, context))?;
        Ok(PutOutcome {
            meta: ObjectMeta {
                key: key.to_owned(),
                size: digests.size,
                etag: unquote(output.e_tag()),
                last_modified: Utc::now(),
                content_type: options.content_type.clone(),
            },
            md5_hex: hex::encode(md5),
            sha256_hex: hex::encode(digests.sha256.finalize()),
        })
    }

    async fn put_multipart(
        &self,
        key: &str,
        full: String,
        reader: BodyReader,
        options: &PutOptions,
    ) -> Result<PutOutcome> {
        if options.condition != PutCondition::None {
            return Err(StorageError::Backend(format!(
                "conditional writes are limited to bodies below {PART_SIZE} bytes on s3"
            )));
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .set_content_type(options.content_type.clone())
            .send()
            .await
            .map_err(|error| map_error(&error, ErrorContext::read(key)))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StorageError::Backend("multipart upload without an id".into()))?
            .to_owned();
        let result = self
            .upload_parts(key, &full, &upload_id, reader, options)
            .await;
        if result.is_err() {
            // Best effort: the error that made us abort is the one worth reporting.
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(error) = aborted {
                tracing::warn!(key, error = %DisplayErrorContext(&error), "aborting multipart upload failed");
            }
        }
        result
    }
}

/// Percent-encodes a `bucket/key` copy source: every byte but unreserved characters and `/`.
fn encode_copy_source(source: &str) -> String {
    use std::fmt::Write as _;
    let mut encoded = String::with_capacity(source.len());
    for byte in source.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[async_trait]
impl ObjectStore for S3Store {
    fn kind(&self) -> StorageKind {
        StorageKind::S3
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let full = self.full_key(key)?;
        let output = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(full)
            .send()
            .await
            .map_err(|error| map_error(&error, ErrorContext::read(key)))?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: size_of(output.content_length()),
            etag: unquote(output.e_tag()),
            last_modified: to_chrono(output.last_modified()),
            content_type: output.content_type().map(str::to_owned),
        })
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject> {
        let full = self.full_key(key)?;
        if let Some(ByteRange {
            start,
            end: Some(end),
        }) = range
            && end < start
        {
            let size = self.head(key).await?.size;
            return Err(StorageError::InvalidRange { size });
        }
        let mut request = self.client.get_object().bucket(&self.bucket).key(full);
        if let Some(ByteRange { start, end }) = range {
            let end = end.map(|end| end.to_string()).unwrap_or_default();
            request = request.range(format!("bytes={start}-{end}"));
        }
        let output = match request.send().await {
            Ok(output) => output,
            Err(error)
                if error
                    .raw_response()
                    .map(|response| response.status().as_u16())
                    == Some(416)
                    || error.code() == Some("InvalidRange") =>
            {
                let size = self.head(key).await?.size;
                return Err(StorageError::InvalidRange { size });
            }
            Err(error) => return Err(map_error(&error, ErrorContext::read(key))),
        };
        let length = size_of(output.content_length());
        let (served, size) = match (range, output.content_range().and_then(parse_content_range)) {
            (None, _) => (None, length),
            (Some(_), Some((first, last, size))) => (Some((first, last)), size),
            // The server ignored the range and sent the whole object: fine when the range
            // started at 0, since the end is clamped anyway.
            (Some(ByteRange { start: 0, end }), None) if length > 0 => {
                let last = end.map_or(length - 1, |end| end.min(length - 1));
                if last != length - 1 {
                    return Err(StorageError::Backend(
                        "server ignored the requested byte range".into(),
                    ));
                }
                (Some((0, last)), length)
            }
            (Some(_), None) => return Err(StorageError::InvalidRange { size: length }),
        };
        let meta = ObjectMeta {
            key: key.to_owned(),
            size,
            etag: unquote(output.e_tag()),
            last_modified: to_chrono(output.last_modified()),
            content_type: output.content_type().map(str::to_owned),
        };
        let reader = output.body.into_async_read();
        Ok(GetObject {
            meta,
            range: served,
            body: ReaderStream::with_capacity(reader, READ_CHUNK).boxed(),
        })
    }

    async fn put(&self, key: &str, body: ByteStream, options: PutOptions) -> Result<PutOutcome> {
        let full = self.full_key(key)?;
        let mut reader = BodyReader::new(body);
        if reader.fill().await? {
            self.put_single(key, full, reader, &options).await
        } else {
            self.put_multipart(key, full, reader, &options).await
        }
    }

    async fn rename(&self, from: &str, to: &str) -> Result<ObjectMeta> {
        // One CopyObject request copies at most 5 GiB; larger objects stream through us.
        const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;
        let source = self.head(from).await?;
        if source.size > MAX_SINGLE_COPY {
            return super::stream_move(self, from, to).await;
        }
        let full_from = self.full_key(from)?;
        let full_to = self.full_key(to)?;
        // The copy source is `bucket/key`, percent-encoded (keys may hold any UTF-8).
        let copy_source = encode_copy_source(&format!("{}/{full_from}", self.bucket));
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(&full_to)
            .copy_source(copy_source)
            .send()
            .await;
        match copied {
            Ok(_) => {}
            // Servers without server-side copy (s3s-fs, some gateways): stream it.
            Err(error)
                if error.code() == Some("NotImplemented")
                    || error
                        .raw_response()
                        .is_some_and(|response| response.status().as_u16() == 501) =>
            {
                return super::stream_move(self, from, to).await;
            }
            Err(error) => return Err(map_error(&error, ErrorContext::read(from))),
        }
        self.delete(from).await?;
        self.head(to).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key)?;
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(full)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => match map_error(&error, ErrorContext::read(key)) {
                StorageError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list(&self, request: &ListRequest) -> Result<ListPage> {
        if !prefix_can_match(&request.prefix) {
            return Ok(ListPage::default());
        }
        let max_keys = match request.max_keys {
            0 => MAX_PAGE,
            requested => requested.min(MAX_PAGE),
        };
        let mut call = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}{}", self.prefix, request.prefix))
            .max_keys(i32::try_from(max_keys).unwrap_or(1000))
            .set_continuation_token(request.continuation.clone());
        if request.continuation.is_none()
            && let Some(after) = &request.start_after
        {
            call = call.start_after(format!("{}{after}", self.prefix));
        }
        if request.delimited {
            call = call.delimiter("/");
        }
        let output = call
            .send()
            .await
            .map_err(|error| map_error(&error, ErrorContext::read(&request.prefix)))?;
        let objects = output
            .contents()
            .iter()
            .filter_map(|object| {
                let key = self.logical_key(object.key()?)?;
                Some(ObjectMeta {
                    key: key.to_owned(),
                    size: size_of(object.size()),
                    etag: unquote(object.e_tag()),
                    last_modified: to_chrono(object.last_modified()),
                    content_type: None,
                })
            })
            .collect();
        let common_prefixes = output
            .common_prefixes()
            .iter()
            .filter_map(|prefix| Some(self.logical_key(prefix.prefix()?)?.to_owned()))
            .collect();
        let next = if output.is_truncated() == Some(true) {
            output.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok(ListPage {
            objects,
            common_prefixes,
            next,
        })
    }

    async fn presign(
        &self,
        method: PresignMethod,
        key: &str,
        expires_in: Duration,
        content_md5: Option<[u8; 16]>,
    ) -> Result<String> {
        let full = self.full_key(key)?;
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|error| StorageError::Backend(format!("presign: {error}")))?;
        let context = ErrorContext::read(key);
        let presigned = match method {
            PresignMethod::Get => self
                .presigning_client
                .get_object()
                .bucket(&self.bucket)
                .key(full)
                .presigned(config)
                .await
                .map_err(|error| map_error(&error, context))?,
            PresignMethod::Put => self
                .presigning_client
                .put_object()
                .bucket(&self.bucket)
                .key(full)
                .set_content_md5(content_md5.map(|md5| BASE64.encode(md5)))
                .presigned(config)
                .await
                .map_err(|error| map_error(&error, context))?,
        };
        Ok(presigned.uri().to_owned())
    }

    async fn presign_download(
        &self,
        key: &str,
        expires_in: Duration,
        headers: &DownloadHeaders,
    ) -> Result<String> {
        let full = self.full_key(key)?;
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|error| StorageError::Backend(format!("presign: {error}")))?;
        // Signed `response-content-*` parameters: S3 answers with these headers, not the
        // stored ones, and nobody can change them without breaking the signature.
        let presigned = self
            .presigning_client
            .get_object()
            .bucket(&self.bucket)
            .key(full)
            .set_response_content_disposition(headers.content_disposition.clone())
            .set_response_content_type(headers.content_type.clone())
            .presigned(config)
            .await
            .map_err(|error| map_error(&error, ErrorContext::read(key)))?;
        Ok(presigned.uri().to_owned())
    }

    async fn check(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(
                |error| match map_error(&error, ErrorContext::read(&self.bucket)) {
                    StorageError::NotFound { key } => {
                        StorageError::Backend(format!("bucket does not exist: {key}"))
                    }
                    other => other,
                },
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("garbage"), None);
    }

    #[test]
    fn etags_lose_and_regain_quotes() {
        assert_eq!(unquote(Some("\"abc\"")), "abc");
        assert_eq!(unquote(None), "");
        assert_eq!(quote("abc"), "\"abc\"");
        assert_eq!(quote("\"abc\""), "\"abc\"");
    }

    #[test]
    fn settings_debug_redacts_the_secret() {
        let settings = S3Settings {
            bucket: "b".into(),
            endpoint: None,
            region: None,
            prefix: String::new(),
            path_style: true,
            timeout: Duration::from_secs(5),
            credentials: Some(("AKID".into(), "very-secret".into())),
            public_endpoint: None,
        };
        let shown = format!("{settings:?}");
        assert!(shown.contains("AKID"));
        assert!(!shown.contains("very-secret"));
    }
}
