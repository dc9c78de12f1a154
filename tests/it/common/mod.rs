//! `TestApp`: a Trove instance on temp directories, driven through its router or over TCP.

#![allow(dead_code)]

pub mod artifacts;
pub mod idp;
pub mod s3_server;

/// Runs a test body on both backends.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                super::$name($crate::common::Backend::Local).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                super::$name($crate::common::Backend::S3).await;
            }
        }
    };
}

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use trove::app::{App, AppState};
use trove::config::Settings;

/// A response read whole.
#[derive(Debug)]
pub struct TestResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub bytes: Vec<u8>,
}

impl TestResponse {
    /// The body as JSON (panics with the body text when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Asserts the status (showing the body when it differs) and answers the response.
    #[track_caller]
    pub fn assert_status(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "{}", self.text());
        self
    }

    /// The error code of an error body.
    pub fn code(&self) -> String {
        let body = self.json();
        assert_eq!(body["status"], "error", "not an error body: {body}");
        body["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// Settings of a test instance on `data_dir` with local storage.
pub fn local_settings(data_dir: PathBuf) -> Settings {
    Settings {
        data_dir,
        listen: "127.0.0.1:0".parse().unwrap(),
        log: "warn".to_owned(),
        ..Settings::default()
    }
}

/// Settings of an instance on the in-process S3 server, with `bucket` created first; the
/// storage timeout is short (1.5 s) so outage tests stay quick.
pub async fn s3_settings(
    server: &s3_server::S3TestServer,
    data_dir: &std::path::Path,
    bucket: &str,
) -> Settings {
    let store = trove::storage::s3::S3Store::connect(server.settings(bucket, ""))
        .await
        .unwrap();
    store.create_bucket_if_missing().await.unwrap();
    let mut settings = local_settings(data_dir.to_path_buf());
    settings.storage = trove::storage::StorageKind::S3;
    settings.storage_timeout_ms = 1500;
    settings.s3.bucket = Some(bucket.to_owned());
    settings.s3.endpoint = Some(server.endpoint());
    settings.s3.region = Some("us-east-1".to_owned());
    settings.s3.path_style = true;
    settings.s3.access_key_id = Some(s3_server::ACCESS_KEY.to_owned());
    settings.s3.secret_access_key = Some(trove::config::Secret::new(s3_server::SECRET_KEY));
    settings.validate().unwrap();
    settings
}

/// A Trove instance for one test.
pub struct TestApp {
    /// The shared services (storage, index, metrics...).
    pub state: AppState,
    /// The router, for `oneshot` requests.
    pub router: Router,
    /// `http://127.0.0.1:<port>` when served over TCP.
    pub base_url: Option<String>,
    server: Option<tokio::task::JoinHandle<()>>,
    _data_dir: Option<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

impl TestApp {
    /// A local-storage instance driven through its router only.
    pub async fn local() -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let state = App::build(local_settings(data_dir.path().to_path_buf()))
            .await
            .unwrap();
        Self::from_state(state, Some(data_dir))
    }

    /// An instance built from `settings`, driven through its router only.
    pub async fn with_settings(settings: Settings) -> Self {
        let state = App::build(settings).await.unwrap();
        Self::from_state(state, None)
    }

    /// An instance on the data directory of an instance just dropped: its background tasks
    /// may hold the index locks for a moment, so building is retried for a few seconds.
    pub async fn reopen(settings: Settings) -> Self {
        let mut attempts = 0;
        loop {
            match App::build(settings.clone()).await {
                Ok(state) => return Self::from_state(state, None),
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    let _ = error;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(error) => panic!("cannot reopen the app: {error:#}"),
            }
        }
    }

    fn from_state(state: AppState, data_dir: Option<tempfile::TempDir>) -> Self {
        Self {
            router: trove::api::router(state.clone()),
            state,
            base_url: None,
            server: None,
            _data_dir: data_dir,
        }
    }

    /// A local-storage instance served on a real TCP port (needed for presigned URLs).
    pub async fn spawn_local() -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut settings = local_settings(data_dir.path().to_path_buf());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        settings.public_url = Some(format!("http://{address}"));
        let mut app = Self::from_state(App::build(settings).await.unwrap(), Some(data_dir));
        app.serve_on(listener);
        app
    }

    /// Serves this instance on `listener` in the background.
    pub fn serve_on(&mut self, listener: tokio::net::TcpListener) {
        let address = listener.local_addr().unwrap();
        let state = self.state.clone();
        self.server = Some(tokio::spawn(async move {
            let _ = trove::api::serve(listener, state, std::future::pending()).await;
        }));
        self.base_url = Some(format!("http://{address}"));
    }

    /// Sends a request through the router.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send_to(self.router.clone(), request).await
    }
}

/// Sends a request through `router` (an owned router, e.g. for a request in another task).
pub async fn send_to(router: Router, request: Request<Body>) -> TestResponse {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    TestResponse {
        status,
        headers,
        bytes,
    }
}

impl TestApp {
    /// `GET path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::GET, path, Body::empty()).await
    }

    /// A request with a method and a body.
    pub async fn request(&self, method: Method, path: &str, body: Body) -> TestResponse {
        self.send(
            Request::builder()
                .method(method)
                .uri(path)
                .body(body)
                .unwrap(),
        )
        .await
    }

    /// A request with a JSON body.
    pub async fn json(&self, method: Method, path: &str, body: &Value) -> TestResponse {
        self.send(
            Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }
}

impl TestApp {
    /// A local-storage instance whose settings `configure` adjusts first.
    pub async fn local_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut settings = local_settings(data_dir.path().to_path_buf());
        configure(&mut settings);
        let state = App::build(settings).await.unwrap();
        Self::from_state(state, Some(data_dir))
    }

    /// A request with optional bearer credential and optional JSON body.
    pub async fn bearer(
        &self,
        method: Method,
        path: &str,
        credential: &str,
        body: Option<&Value>,
    ) -> TestResponse {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {credential}"));
        let body = match body {
            Some(body) => {
                builder = builder.header("content-type", "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).unwrap()).await
    }

    /// `GET path` with a bearer credential.
    pub async fn get_as(&self, path: &str, credential: &str) -> TestResponse {
        self.bearer(Method::GET, path, credential, None).await
    }

    /// `DELETE path` with a bearer credential.
    pub async fn delete_as(&self, path: &str, credential: &str) -> TestResponse {
        self.bearer(Method::DELETE, path, credential, None).await
    }

    /// Indexes every project from storage, as `trove index` does; answers its report.
    pub async fn index_all(&self) -> trove::index::indexer::IndexReport {
        self.state
            .indexer
            .index_projects(None, |_, _| {})
            .await
            .unwrap()
    }

    /// `POST path` with a bearer credential and a JSON body.
    pub async fn post_json(&self, path: &str, credential: &str, body: &Value) -> TestResponse {
        self.bearer(Method::POST, path, credential, Some(body))
            .await
    }

    /// `PUT path` with a bearer credential and a JSON body.
    pub async fn put_json(&self, path: &str, credential: &str, body: &Value) -> TestResponse {
        self.bearer(Method::PUT, path, credential, Some(body)).await
    }

    /// `PATCH path` with a bearer credential and a JSON body.
    pub async fn patch_json(&self, path: &str, credential: &str, body: &Value) -> TestResponse {
        self.bearer(Method::PATCH, path, credential, Some(body))
            .await
    }

    /// `POST /auth/register`.
    pub async fn register(&self, username: &str, password: &str) -> TestResponse {
        self.json(
            Method::POST,
            "/auth/register",
            &serde_json::json!({"username": username, "password": password}),
        )
        .await
    }

    /// `POST /auth/login` with JSON.
    pub async fn login_response(&self, username: &str, password: &str) -> TestResponse {
        self.json(
            Method::POST,
            "/auth/login",
            &serde_json::json!({"username": username, "password": password}),
        )
        .await
    }

    /// Logs in and answers the access token (panics on failure).
    pub async fn login(&self, username: &str, password: &str) -> String {
        let response = self.login_response(username, password).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        response.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates an account with `role` directly through the service, then logs in.
    pub async fn user_token(&self, username: &str, role: trove::permissions::Role) -> String {
        self.state
            .auth
            .create_account(username, "password-of-tests", role, None)
            .await
            .unwrap();
        self.login(username, "password-of-tests").await
    }
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (jsonwebtoken's aws-lc backend
/// signs RS256 with PKCS#1 DER).
pub fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Vec<u8> {
    fn element(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (length, header) = if der[1] < 0x80 {
            (usize::from(der[1]), 2)
        } else {
            let count = usize::from(der[1] & 0x7f);
            let length = der[2..2 + count]
                .iter()
                .fold(0_usize, |acc, byte| (acc << 8) | usize::from(*byte));
            (length, 2 + count)
        };
        (
            der[0],
            &der[header..header + length],
            &der[header + length..],
        )
    }
    let (_, info, _) = element(pkcs8);
    let (_, _version, rest) = element(info);
    let (_, _algorithm, rest) = element(rest);
    let (_, private_key, _) = element(rest);
    private_key.to_vec()
}

/// Which storage backend a test instance runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temp directory.
    Local,
    /// The in-process S3 server on 127.0.0.1.
    S3,
}

/// A served instance on one backend, with what keeps it alive.
pub struct BackendApp {
    /// The instance, also served over TCP (`base_url`).
    pub app: TestApp,
    /// The S3 server, on the S3 backend.
    pub s3: Option<s3_server::S3TestServer>,
    _data_dir: tempfile::TempDir,
}

impl std::ops::Deref for BackendApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl BackendApp {
    /// Starts an instance on `backend`, served on a real TCP port (presigned URLs of the local
    /// backend point at it).
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// [`Self::start`] with settings changed by `configure` first.
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Self {
        Self::start_with_clock(backend, trove::clock::Clock::system(), configure).await
    }

    /// [`Self::start_with`] deciding grant expiry against `clock` (a
    /// [`trove::clock::Clock::manual`] the test moves past expiries).
    pub async fn start_with_clock(
        backend: Backend,
        clock: trove::clock::Clock,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        let s3 = match backend {
            Backend::Local => None,
            Backend::S3 => Some(s3_server::S3TestServer::start().await),
        };
        Self::start_on(tempfile::tempdir().unwrap(), s3, clock, configure).await
    }

    /// [`Self::start_with_clock`] on a given data directory and, for the S3 backend, a given
    /// S3 server (bucket `trove-app`, created when missing): local storage when `s3` is `None`.
    /// Lets a test start an instance on a copy of another instance's directories.
    pub async fn start_on(
        data_dir: tempfile::TempDir,
        s3: Option<s3_server::S3TestServer>,
        clock: trove::clock::Clock,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings = local_settings(data_dir.path().to_path_buf());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        settings.public_url = Some(format!("http://{address}"));
        settings.sync_cron = String::new();
        settings.purge_cron = String::new();
        let s3 = match s3 {
            None => None,
            Some(server) => {
                let store = trove::storage::s3::S3Store::connect(server.settings("trove-app", ""))
                    .await
                    .unwrap();
                store.create_bucket_if_missing().await.unwrap();
                settings.storage = trove::storage::StorageKind::S3;
                settings.s3.bucket = Some("trove-app".to_owned());
                settings.s3.endpoint = Some(server.endpoint());
                settings.s3.region = Some("us-east-1".to_owned());
                settings.s3.path_style = true;
                settings.s3.access_key_id = Some(s3_server::ACCESS_KEY.to_owned());
                settings.s3.secret_access_key =
                    Some(trove::config::Secret::new(s3_server::SECRET_KEY));
                Some(server)
            }
        };
        configure(&mut settings);
        settings.validate().unwrap();
        let mut app =
            TestApp::from_state(App::build_with_clock(settings, clock).await.unwrap(), None);
        app.serve_on(listener);
        Self {
            app,
            s3,
            _data_dir: data_dir,
        }
    }

    /// The instance's data directory (local storage, index, secrets).
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }
}

/// Writes `value` as JSON at `key`, as-is (a record seeded, or damaged, outside Trove).
pub async fn put_json(storage: &dyn trove::storage::ObjectStore, key: &str, value: &Value) {
    use trove::storage::ObjectStoreExt as _;
    storage
        .put_bytes(
            key,
            bytes::Bytes::from(value.to_string()),
            trove::storage::PutOptions::default(),
        )
        .await
        .unwrap();
}

/// A TCP port free right now on the loopback interface (for a child process to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the hidden form field `name` of an HTML page (panics when there is none).
pub fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// `trove serve` of the built binary on `127.0.0.1:port` over `data_dir`, started from the temp
/// directory without a config file, logging errors only, its output discarded.
pub fn trove_serve(data_dir: &std::path::Path, port: u16) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_trove"));
    command
        .current_dir(std::env::temp_dir())
        .env_remove("TROVE_CONFIG")
        .env("TROVE_LOG", "error")
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}
