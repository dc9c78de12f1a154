//! An in-process S3 server for tests: `s3s-fs` on a temporary directory, served over HTTP on
//! `127.0.0.1` with static credentials.
//!
//! `s3s-fs` 0.14.1 checks `If-None-Match`/`If-Match` before writing and renames afterwards, so
//! concurrent conditional writes can all succeed, and it verifies `Content-MD5` only after the
//! object is stored. Its reads open the file and then load the ETag apart, so a read that
//! overlaps a write can pair the old content with the new ETag (a torn read: a record update
//! with `If-Match` on that ETag then succeeds on stale content — two concurrent completions
//! got the same revision number once this way). Real S3 and MinIO do none of this. The
//! [`Linearized`] wrapper makes this test double behave like them: conditional puts are
//! serialised and exclude reads (gets and heads) while they run, and a put carrying
//! `Content-MD5` is checked before it reaches the filesystem; a "directory" is not an
//! object. (Listings of
//! `s3s-fs` carry no ETags; the suite does not require them there.)
//!
//! [`S3TestServer::stop`] closes the listener and every open connection;
//! [`S3TestServer::restart`] serves the same data again on the same port (for tests of an
//! unavailable backend).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::TryStreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use md5::{Digest as _, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CreateBucketInput, CreateBucketOutput,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteObjectInput, DeleteObjectOutput,
    GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput,
    HeadObjectOutput, ListObjectsV2Input, ListObjectsV2Output, PutObjectInput, PutObjectOutput,
    StreamingBlob, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use trove::storage::s3::S3Settings;

/// Access key id the server accepts.
pub const ACCESS_KEY: &str = "trove-test-access";
/// Secret key the server accepts.
pub const SECRET_KEY: &str = "trove-test-secret-0123456789";

/// `s3s_fs::FileSystem` with linearizable conditional puts, Content-MD5 checked up front, and
/// "directories" that are not objects (as on S3).
struct Linearized {
    inner: s3s_fs::FileSystem,
    root: PathBuf,
    /// Held exclusively by a conditional put, shared by reads: a read never sees a
    /// conditional put half done (content and ETag from different writes).
    conditional_puts: tokio::sync::RwLock<()>,
}

impl Linearized {
    /// `s3s-fs` answers a head or get of a directory as if it were an object; S3 has no
    /// directories.
    fn reject_directory(&self, bucket: &str, key: &str) -> S3Result<()> {
        if self.root.join(bucket).join(key).is_dir() {
            return Err(s3_error!(NoSuchKey));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl S3 for Linearized {
    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        if let Some(announced) = req.input.content_md5.clone() {
            let body = req
                .input
                .body
                .take()
                .ok_or_else(|| s3_error!(IncompleteBody))?;
            let chunks: Vec<Bytes> = body
                .try_collect()
                .await
                .map_err(|_| s3_error!(IncompleteBody))?;
            let body = Bytes::from(chunks.concat());
            let actual = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
            if actual != announced {
                return Err(s3_error!(BadDigest, "content md5 mismatch"));
            }
            req.input.body = Some(StreamingBlob::from(s3s::Body::from(body)));
        }
        if req.input.if_match.is_some() || req.input.if_none_match.is_some() {
            let _serialised = self.conditional_puts.write().await;
            return self.inner.put_object(req).await;
        }
        self.inner.put_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.reject_directory(&req.input.bucket, &req.input.key)?;
        let _consistent = self.conditional_puts.read().await;
        self.inner.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.reject_directory(&req.input.bucket, &req.input.key)?;
        let _consistent = self.conditional_puts.read().await;
        self.inner.head_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.inner.list_objects_v2(req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.inner.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.inner.upload_part(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.inner.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.inner.abort_multipart_upload(req).await
    }
}

/// What runs while the server is up.
struct Running {
    shutdown: CancellationToken,
    accept_loop: JoinHandle<()>,
}

/// An S3 server on `127.0.0.1`, storing into a temporary directory that outlives restarts.
pub struct S3TestServer {
    address: SocketAddr,
    service: s3s::service::S3Service,
    running: Option<Running>,
    _root: tempfile::TempDir,
}

impl S3TestServer {
    /// Starts a server on a free port.
    pub async fn start() -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir for s3")).await
    }

    /// Starts a server on a free port storing into `root` (e.g. a copy of another server's
    /// [`Self::root`] taken while it was idle, or a directory on tmpfs).
    pub async fn start_in(root: tempfile::TempDir) -> Self {
        let filesystem = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs root");
        let mut builder = s3s::service::S3ServiceBuilder::new(Linearized {
            inner: filesystem,
            root: root.path().to_path_buf(),
            conditional_puts: tokio::sync::RwLock::new(()),
        });
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind s3");
        let address = listener.local_addr().expect("s3 address");
        let mut server = Self {
            address,
            service,
            running: None,
            _root: root,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: TcpListener) {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let service = self.service.clone();
        let accept_loop = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let service = service.clone();
                        let token = token.clone();
                        connections.spawn(async move {
                            let builder =
                                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                            let connection =
                                builder.serve_connection(TokioIo::new(stream), service);
                            tokio::select! {
                                _ = connection => {}
                                // Dropping the connection closes its socket.
                                () = token.cancelled() => {}
                            }
                        });
                    }
                    // Reap finished connections so the set does not grow without bound.
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
            drop(listener);
            connections.shutdown().await;
        });
        self.running = Some(Running {
            shutdown,
            accept_loop,
        });
    }

    /// The directory the buckets (and s3s-fs's metadata files) are stored in.
    pub fn root(&self) -> &std::path::Path {
        self._root.path()
    }

    /// The endpoint URL (`http://127.0.0.1:<port>`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Settings of an [`trove::storage::s3::S3Store`] for this server.
    pub fn settings(&self, bucket: &str, prefix: &str) -> S3Settings {
        S3Settings {
            bucket: bucket.to_owned(),
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".to_owned()),
            prefix: prefix.to_owned(),
            path_style: true,
            timeout: Duration::from_secs(5),
            credentials: Some((ACCESS_KEY.to_owned(), SECRET_KEY.to_owned())),
            public_endpoint: None,
        }
    }

    /// Stops accepting and closes every open connection; the data stays.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.cancel();
            running.accept_loop.await.expect("s3 accept loop");
        }
    }

    /// Serves again on the same port (after [`Self::stop`]).
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("re-bind s3 on {}: {error}", self.address),
            }
        };
        self.serve(listener);
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.cancel();
        }
    }
}
