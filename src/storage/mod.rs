//! Object storage: the source of truth for everything Trove knows.
//!
//! One narrow trait, [`ObjectStore`], with two backends: [`local`] (a directory, the embedded
//! default) and [`s3`] (aws-sdk-s3: AWS S3, MinIO or any S3-compatible server). Both backends
//! pass one conformance suite (`tests/it/storage_conformance.rs`). Keys are logical (`a/b/c`,
//! never starting with `/`); the S3 backend adds its configured prefix, the local backend maps
//! them below its root directory. [`keys`] builds every key of the layout in SPEC §2.

pub mod etag_cache;
pub mod instrumented;
pub mod keys;
pub mod lease;
pub mod local;
pub mod presign;
pub mod records;
pub mod s3;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};

/// A stream of body chunks, used for both directions so nothing is buffered whole.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + 'static>>;

/// Result alias of this module.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything a storage operation can fail with, independent of the backend.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("object not found: {key}")]
    NotFound {
        /// The logical key asked for.
        key: String,
    },
    /// A create-if-absent found the object already there.
    #[error("object already exists: {key}")]
    AlreadyExists {
        /// The logical key written.
        key: String,
    },
    /// An update-if-match found another ETag (someone else wrote in between).
    #[error("precondition failed (stale etag) for {key}")]
    PreconditionFailed {
        /// The logical key written.
        key: String,
    },
    /// The body did not match the `Content-MD5` the writer announced; nothing was stored.
    #[error("content md5 mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Hex md5 announced by the writer.
        expected: String,
        /// Hex md5 of what arrived.
        actual: String,
    },
    /// The key is not a valid logical key (empty segment, `..`, absolute, control characters).
    #[error("invalid storage key: {0}")]
    InvalidKey(String),
    /// A byte range that starts past the end of the object.
    #[error("range not satisfiable for object of {size} bytes")]
    InvalidRange {
        /// Size of the object.
        size: u64,
    },
    /// The backend can't be reached (connection refused, timeout, DNS): retryable.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The body stream given to a put failed.
    #[error("body stream failed: {0}")]
    Body(std::io::Error),
    /// A presigned request whose signature is missing, malformed, wrong or expired (the API
    /// answers `403`).
    #[error("presigned url rejected: {0}")]
    PresignInvalid(String),
    /// The key clashes with another object's path: a file where a directory of the key is
    /// expected (`x` then `x/y`), or objects below the key (`d/b` then `d`). The API answers
    /// `409 path_conflict`.
    #[error("path conflict: {0}")]
    KeyConflict(String),
    /// Any other backend failure (permission denied on disk, unexpected S3 error).
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl StorageError {
    /// Whether this error means "the object is not there".
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Which backend a store is; shown by `GET /` and `GET /status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A directory on the local filesystem.
    Local,
    /// An S3-compatible object store.
    S3,
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Local => "local",
            Self::S3 => "s3",
        })
    }
}

/// What a head, get, put or list tells about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Logical key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Opaque version tag, without quotes; used by [`PutCondition::IfMatch`]. It changes
    /// whenever the content changes (the local backend changes it on every write; S3 derives it
    /// from the content, so rewriting identical bytes may keep it). In listings it may be empty
    /// when the server omits it; head, get and put always report it.
    pub etag: String,
    /// Time of the last write.
    pub last_modified: DateTime<Utc>,
    /// Content type given at upload, when the backend keeps it (S3: on head and get, not in
    /// listings; local: guessed from the key's extension, see
    /// [`local::guess_content_type`]).
    pub content_type: Option<String>,
}

/// The answer headers a presigned download asks the backend to send
/// ([`ObjectStore::presign_download`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadHeaders {
    /// `Content-Disposition` (e.g. `attachment; filename="a.html"`).
    pub content_disposition: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
}

/// The condition a put is subject to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PutCondition {
    /// Write unconditionally (overwrite).
    #[default]
    None,
    /// Create only if no object exists at the key (`If-None-Match: *`); exactly one of many
    /// concurrent creators wins, the others get [`StorageError::AlreadyExists`].
    IfAbsent,
    /// Replace only if the current ETag equals this one (`If-Match`); otherwise
    /// [`StorageError::PreconditionFailed`] (also when the object is gone).
    IfMatch(String),
}

/// Options of a put.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Content type to record.
    pub content_type: Option<String>,
    /// Expected md5 of the whole body (raw 16 bytes, as in `Content-MD5`); a mismatch stores
    /// nothing and answers [`StorageError::DigestMismatch`].
    pub content_md5: Option<[u8; 16]>,
    /// Creation / update condition.
    pub condition: PutCondition,
}

/// What a successful put reports: the stored object and the digests of what was written,
/// computed while streaming.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    /// Metadata of the stored object.
    pub meta: ObjectMeta,
    /// md5 of the body, lower-case hex.
    pub md5_hex: String,
    /// sha256 of the body, lower-case hex.
    pub sha256_hex: String,
}

/// An inclusive byte range, as in HTTP `Range: bytes=start-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset (inclusive); `None` means to the end.
    pub end: Option<u64>,
}

/// A body being read from storage.
pub struct GetObject {
    /// Metadata of the whole object (its `size` is the full size, not the range's).
    pub meta: ObjectMeta,
    /// The range actually served (clamped to the object), `None` when the whole object is.
    pub range: Option<(u64, u64)>,
    /// The bytes.
    pub body: ByteStream,
}

impl fmt::Debug for GetObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetObject")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// A listing request.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Only keys starting with this string (not necessarily at a `/` boundary).
    pub prefix: String,
    /// With `true`, group keys by the next `/` after the prefix into `common_prefixes`
    /// (S3's `delimiter=/`); with `false`, list recursively.
    pub delimited: bool,
    /// Continuation token from the previous page's [`ListPage::next`].
    pub continuation: Option<String>,
    /// Only keys after this one (S3's `start-after`; the change feed lists from its last
    /// position with it). Ignored when `continuation` is given.
    pub start_after: Option<String>,
    /// Page size; backends cap it (S3 at 1000). `0` means the backend's default.
    pub max_keys: usize,
}

/// One page of a listing, keys in ascending byte order.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Objects on this page.
    pub objects: Vec<ObjectMeta>,
    /// With a delimited listing, the "directories" (each ends with `/`).
    pub common_prefixes: Vec<String>,
    /// Token for the next page, `None` on the last page.
    pub next: Option<String>,
}

/// HTTP method a presigned URL is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresignMethod {
    /// Download.
    Get,
    /// Upload.
    Put,
}

/// The storage interface every backend implements. Keep it narrow: anything that can be built
/// from these operations belongs in [`ObjectStoreExt`] or in the caller.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug + 'static {
    /// Which backend this is.
    fn kind(&self) -> StorageKind;

    /// Metadata of one object, [`StorageError::NotFound`] when absent.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Streams an object, or the given range of it.
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject>;

    /// Streams `body` into the object at `key`, subject to `options`; never holds the whole
    /// body in memory (S3 switches to multipart above its threshold).
    async fn put(&self, key: &str, body: ByteStream, options: PutOptions) -> Result<PutOutcome>;

    /// Deletes an object; deleting what is absent succeeds (idempotent).
    async fn delete(&self, key: &str) -> Result<()>;

    /// One page of a listing.
    async fn list(&self, request: &ListRequest) -> Result<ListPage>;

    /// Every object under a prefix (recursive listing), in key order. The default follows
    /// continuation tokens page by page; the local backend walks the directory tree once.
    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut request = ListRequest {
            prefix: prefix.to_owned(),
            ..ListRequest::default()
        };
        let mut objects = Vec::new();
        loop {
            let page = self.list(&request).await?;
            objects.extend(page.objects);
            match page.next {
                Some(next) => request.continuation = Some(next),
                None => return Ok(objects),
            }
        }
    }

    /// [`list_all`](Self::list_all) for what is only displayed (a version's file listing):
    /// the local backend may answer it from a listing it keeps while the directories it read
    /// are unchanged (`storage::local::listing_cache`), which misses a file rewritten in
    /// place by another program. The indexer and the sync check use `list_all`.
    /// The listing is shared: the local backend answers the same `Arc` while its directories
    /// are unchanged, so a caller may key work derived from it by the `Arc`.
    async fn list_all_for_display(&self, prefix: &str) -> Result<Arc<Vec<ObjectMeta>>> {
        Ok(Arc::new(self.list_all(prefix).await?))
    }

    /// A URL a plain HTTP client can use, without other credentials, to GET or PUT the object
    /// until `expires_in` has passed. With `content_md5` on a PUT, the upload must carry that
    /// `Content-MD5`.
    async fn presign(
        &self,
        method: PresignMethod,
        key: &str,
        expires_in: Duration,
        content_md5: Option<[u8; 16]>,
    ) -> Result<String>;

    /// A presigned GET whose answer carries `headers` (`Content-Disposition`, `Content-Type`)
    /// instead of the stored ones, where the backend can sign such overrides (S3's
    /// `response-content-*` parameters). Backends that serve their presigned URLs themselves
    /// (local: `GET /storage/{key}`) set safe headers there and ignore them.
    async fn presign_download(
        &self,
        key: &str,
        expires_in: Duration,
        headers: &DownloadHeaders,
    ) -> Result<String> {
        let _ = headers;
        self.presign(PresignMethod::Get, key, expires_in, None)
            .await
    }

    /// A cheap round trip proving the backend answers (for `/status` and `/readyz`).
    async fn check(&self) -> Result<()>;

    /// Moves the object at `from` to `to` (overwriting `to`), and answers the moved object's
    /// metadata. Staged uploads become visible this way. The default streams a copy and
    /// deletes the source; backends override it with a cheaper move (a `rename` locally, a
    /// server-side copy on S3).
    async fn rename(&self, from: &str, to: &str) -> Result<ObjectMeta> {
        stream_move(self, from, to).await
    }

    /// Reads a whole (small) object into memory: records, profiles, metadata documents.
    /// Backends may do it more cheaply than streaming (the local backend reads the file in
    /// one blocking call instead of a blocking-pool hop per chunk).
    async fn read_whole(&self, key: &str) -> Result<(Bytes, ObjectMeta)> {
        let object = self.get(key, None).await?;
        let chunks: Vec<Bytes> = object.body.try_collect().await.map_err(|error| {
            if error.kind() == std::io::ErrorKind::TimedOut {
                StorageError::Unavailable(error.to_string())
            } else {
                StorageError::Backend(error.to_string())
            }
        })?;
        Ok((Bytes::from(chunks.concat()), object.meta))
    }

    /// Reads several whole (small) objects, in the order of `keys`; `None` for one that is
    /// absent. A rebuild reads a version's metadata documents this way: the local backend
    /// reads them all in one blocking call instead of a blocking-pool hop per document; the
    /// others read [`READ_MANY_CONCURRENCY`] at a time.
    async fn read_whole_many(&self, keys: Vec<String>) -> Result<Vec<Option<(Bytes, ObjectMeta)>>> {
        futures::stream::iter(keys)
            .map(|key| async move {
                match self.read_whole(&key).await {
                    Ok(found) => Ok(Some(found)),
                    Err(error) if error.is_not_found() => Ok(None),
                    Err(error) => Err(error),
                }
            })
            .buffered(READ_MANY_CONCURRENCY)
            .try_collect()
            .await
    }
}

/// Reads in flight at once in [`ObjectStore::read_whole_many`]'s default implementation.
pub const READ_MANY_CONCURRENCY: usize = 32;

/// Conveniences built on [`ObjectStore`], available on every store.
#[async_trait]
pub trait ObjectStoreExt: ObjectStore {
    /// Reads a whole (small) object into memory.
    async fn get_bytes(&self, key: &str) -> Result<(Bytes, ObjectMeta)> {
        self.read_whole(key).await
    }

    /// Writes a small in-memory body.
    async fn put_bytes(&self, key: &str, body: Bytes, options: PutOptions) -> Result<PutOutcome> {
        self.put(key, bytes_stream(body), options).await
    }

    /// Every common prefix ("sub-directory") directly under a prefix ending in `/`.
    async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>> {
        let mut request = ListRequest {
            prefix: prefix.to_owned(),
            delimited: true,
            ..ListRequest::default()
        };
        let mut prefixes = Vec::new();
        loop {
            let page = self.list(&request).await?;
            prefixes.extend(page.common_prefixes);
            match page.next {
                Some(next) => request.continuation = Some(next),
                None => return Ok(prefixes),
            }
        }
    }
}

impl<T: ObjectStore + ?Sized> ObjectStoreExt for T {}

/// Moves an object by streaming it through this process: get, put (with its content type),
/// delete. The default [`ObjectStore::rename`], and the fallback of backends without a cheaper
/// move.
pub async fn stream_move<S: ObjectStore + ?Sized>(
    store: &S,
    from: &str,
    to: &str,
) -> Result<ObjectMeta> {
    let object = store.get(from, None).await?;
    let content_type = object.meta.content_type.clone();
    let outcome = store
        .put(
            to,
            object.body,
            PutOptions {
                content_type,
                ..PutOptions::default()
            },
        )
        .await?;
    store.delete(from).await?;
    Ok(outcome.meta)
}

/// Wraps one in-memory buffer as a [`ByteStream`].
#[must_use]
pub fn bytes_stream(body: Bytes) -> ByteStream {
    futures::stream::once(async move { Ok(body) }).boxed()
}

/// Checks that a logical key is safe for every backend: non-empty, relative, `/`-separated,
/// no empty / `.` / `..` segment, no NUL or control character, at most 2048 bytes. This is a
/// last line of defence below the name validation of [`crate::model::names`].
pub fn validate_key(key: &str) -> Result<()> {
    let invalid = |why: &str| Err(StorageError::InvalidKey(format!("{why}: {key:?}")));
    if key.is_empty() {
        return invalid("empty key");
    }
    if key.len() > 2048 {
        return invalid("key longer than 2048 bytes");
    }
    if key.chars().any(char::is_control) {
        return invalid("control character in key");
    }
    if key.contains('\\') {
        return invalid("backslash in key");
    }
    if key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return invalid("empty, '.' or '..' segment");
    }
    Ok(())
}

/// Whether some valid key (see [`validate_key`]) can start with `prefix`: the part up to the
/// last `/` must itself be a valid key and nothing may contain control characters or
/// backslashes. Backends answer an empty listing for other prefixes instead of asking the
/// filesystem or the server about them.
#[must_use]
pub fn prefix_can_match(prefix: &str) -> bool {
    if prefix.chars().any(char::is_control) || prefix.contains('\\') {
        return false;
    }
    match prefix.rfind('/') {
        None => true,
        Some(index) => validate_key(&prefix[..index]).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::{prefix_can_match, validate_key};

    #[test]
    fn validate_key_accepts_layout_keys() {
        for key in [
            "..meta/permissions.json",
            "proj/v1/..meta/version.json",
            "proj/v1/data/file.csv",
        ] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn validate_key_rejects_hostile_keys() {
        for key in [
            "", "/abs", "a//b", "a/./b", "a/../b", "..", "a/", "a\0b", "a\nb", "a\\b",
        ] {
            assert!(validate_key(key).is_err(), "{key:?}");
        }
        assert!(validate_key(&"a".repeat(2049)).is_err());
    }

    #[test]
    fn prefix_can_match_only_valid_key_prefixes() {
        for prefix in ["", "a", "a/", "a/b", "p/..", "..meta/us"] {
            assert!(prefix_can_match(prefix), "{prefix:?}");
        }
        for prefix in ["/", "/a", "a//", "../", "a/../b", "a\\b", "a\0", "./x"] {
            assert!(!prefix_can_match(prefix), "{prefix:?}");
        }
    }
}
