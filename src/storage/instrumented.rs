//! A decorator around any [`ObjectStore`] that bounds every call by the storage timeout and
//! reports each operation's outcome and latency to an observer (the metrics).
//!
//! The timeout is what turns a hung or unreachable backend into a prompt
//! [`StorageError::Unavailable`] (→ `503 storage_unavailable`) instead of a hanging request.
//! Puts are bounded only until the backend has the body, not while the client streams it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    ByteRange, ByteStream, DownloadHeaders, GetObject, ListPage, ListRequest, ObjectMeta,
    ObjectStore, PresignMethod, PutOptions, PutOutcome, Result, StorageError, StorageKind,
};

/// Receives one observation per storage operation.
pub trait StorageObserver: Send + Sync + std::fmt::Debug + 'static {
    /// `operation` is the trait method's name; `outcome` one of `ok`, `not_found`, `conflict`,
    /// `unavailable`, `error`.
    fn observe(&self, operation: &'static str, outcome: &'static str, elapsed: Duration);
}

/// The decorated store.
#[derive(Debug)]
pub struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    observer: Arc<dyn StorageObserver>,
    timeout: Duration,
}

impl InstrumentedStore {
    /// Wraps `inner`; every call (but a put's body transfer) must finish within `timeout`.
    #[must_use]
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        observer: Arc<dyn StorageObserver>,
        timeout: Duration,
    ) -> Self {
        Self {
            inner,
            observer,
            timeout,
        }
    }

    async fn run<T>(
        &self,
        operation: &'static str,
        bounded: bool,
        future: impl Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        let started = Instant::now();
        let result = if bounded {
            match tokio::time::timeout(self.timeout, future).await {
                Ok(result) => result,
                Err(_) => Err(StorageError::Unavailable(format!(
                    "{operation} gave no answer within {} ms",
                    self.timeout.as_millis()
                ))),
            }
        } else {
            future.await
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StorageError::NotFound { .. }) => "not_found",
            Err(StorageError::AlreadyExists { .. } | StorageError::PreconditionFailed { .. }) => {
                "conflict"
            }
            Err(StorageError::Unavailable(_)) => "unavailable",
            Err(_) => "error",
        };
        self.observer.observe(operation, outcome, started.elapsed());
        result
    }
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    fn kind(&self) -> StorageKind {
        self.inner.kind()
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.run("head", true, self.inner.head(key)).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject> {
        self.run("get", true, self.inner.get(key, range)).await
    }

    async fn read_whole(&self, key: &str) -> Result<(Bytes, ObjectMeta)> {
        // Counted as a `get`; the timeout covers the whole read (the object is small).
        self.run("get", true, self.inner.read_whole(key)).await
    }

    async fn read_whole_many(&self, keys: Vec<String>) -> Result<Vec<Option<(Bytes, ObjectMeta)>>> {
        // One observation for the batch; the timeout covers it whole (small objects).
        self.run("get_many", true, self.inner.read_whole_many(keys))
            .await
    }

    async fn put(&self, key: &str, body: ByteStream, options: PutOptions) -> Result<PutOutcome> {
        // The client may legitimately take long to send a large body; the backend's own
        // connect/read timeouts bound the storage side.
        self.run("put", false, self.inner.put(key, body, options))
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.run("delete", true, self.inner.delete(key)).await
    }

    async fn list(&self, request: &ListRequest) -> Result<ListPage> {
        self.run("list", true, self.inner.list(request)).await
    }

    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // One observation for the whole listing; the timeout covers it whole.
        self.run("list", true, self.inner.list_all(prefix)).await
    }

    async fn list_all_for_display(&self, prefix: &str) -> Result<Arc<Vec<ObjectMeta>>> {
        self.run("list", true, self.inner.list_all_for_display(prefix))
            .await
    }

    async fn presign(
        &self,
        method: PresignMethod,
        key: &str,
        expires_in: Duration,
        content_md5: Option<[u8; 16]>,
    ) -> Result<String> {
        self.run(
            "presign",
            true,
            self.inner.presign(method, key, expires_in, content_md5),
        )
        .await
    }

    async fn presign_download(
        &self,
        key: &str,
        expires_in: Duration,
        headers: &DownloadHeaders,
    ) -> Result<String> {
        self.run(
            "presign",
            true,
            self.inner.presign_download(key, expires_in, headers),
        )
        .await
    }

    async fn check(&self) -> Result<()> {
        self.run("check", true, self.inner.check()).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<ObjectMeta> {
        // A server-side copy of a large object may take long: bounded by the backend's own
        // timeouts, like a put.
        self.run("rename", false, self.inner.rename(from, to)).await
    }
}
