//! Crash consistency (issue 14, point 2): the real `trove serve` binary runs as a child
//! process and dies abruptly at a chosen point (`TROVE_TEST_CRASH_AT`, see `trove::crash`) —
//! mid-upload, between an audit event and its mutation, between a profile write and its
//! re-index job, during an index build, during a version deletion (the purge's deletion) — then
//! restarts on the same data directory. After each crash: every acknowledged upload is
//! downloadable with its checksum, no unacknowledged partial file is visible, `/index/sync`
//! finds no drift, the interrupted mutation's audit event is still `pending` (not completed),
//! and nobody reads what they could not read before. A storage outage mid-upload and
//! mid-completion (the in-process S3 server stopped) leaves the same guarantees.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use md5::Digest as _;
use serde_json::{Value, json};

use crate::common::artifacts::{call, create_project, create_version, enc, upload, wait_job};
use crate::common::{Backend, BackendApp, free_port};

const ROOT_PASSWORD: &str = "password-of-the-crash-root";

/// A `trove serve` child process on a data directory.
struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer of the child server, read whole.
struct Answer {
    status: StatusCode,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.bytes)))
    }
}

impl Server {
    /// Starts `trove serve` on `data_dir`, dying at `crash_at` when given; waits until it
    /// answers `/healthz`.
    async fn start(data_dir: &Path, crash_at: Option<&str>) -> Self {
        Self::start_with_env(data_dir, crash_at, &[]).await
    }

    /// Spawns `trove serve` on `data_dir` with more environment variables (e.g. a purge
    /// every second), dying at `crash_at` when given; does not wait for it (it may die at
    /// start).
    fn spawn(data_dir: &Path, crash_at: Option<&str>, extra_env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = std::fs::File::create(data_dir.with_extension(format!("{port}.log"))).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_trove"));
        command
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .env("TROVE_BOOTSTRAP_ADMIN", format!("root:{ROOT_PASSWORD}"))
            .env("TROVE_LOG", "warn")
            .env("TROVE_SYNC_CRON", "")
            .env("TROVE_PURGE_CRON", "")
            .env("TROVE_LOGIN_RATE_LIMIT_PER_USER_IP", "0")
            .env("TROVE_LOGIN_RATE_LIMIT_PER_USER", "0")
            .env("TROVE_LOGIN_RATE_LIMIT_PER_IP", "0")
            .env("TROVE_REGISTER_RATE_LIMIT_PER_IP", "0")
            .env_remove(trove::crash::CRASH_AT_ENV)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(point) = crash_at {
            command.env(trove::crash::CRASH_AT_ENV, point);
        }
        command.envs(extra_env.iter().copied());
        Self {
            child: command.spawn().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    /// Starts `trove serve` like [`Server::spawn`] and waits until it answers `/healthz`.
    async fn start_with_env(
        data_dir: &Path,
        crash_at: Option<&str>,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let mut server = Self::spawn(data_dir, crash_at, extra_env);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = server
                .client
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                && response.status().is_success()
            {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("trove serve exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "trove serve did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts `trove serve` like [`Server::start`], pausing `millis` at the test-only pause
    /// point `point` (`trove::crash::pause`) each time it is reached.
    async fn start_paused_at(data_dir: &Path, point: &str, millis: u64) -> Self {
        let millis = millis.to_string();
        Self::start_with_env(
            data_dir,
            None,
            &[
                (trove::crash::PAUSE_AT_ENV, point),
                (trove::crash::PAUSE_MS_ENV, &millis),
            ],
        )
        .await
    }

    /// A request; `None` when the connection broke (the process died answering it).
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Option<Answer> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.ok()?;
        let status = response.status();
        let bytes = response.bytes().await.ok()?.to_vec();
        Some(Answer { status, bytes })
    }

    async fn ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let answer = self
            .send(
                method,
                path,
                token,
                body.map(|body| body.to_string().into_bytes()),
            )
            .await
            .unwrap_or_else(|| panic!("{path}: connection broke"));
        assert!(
            answer.status.is_success(),
            "{path}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.bytes)
        );
        answer
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let answer = self
            .ok(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        answer.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// Waits until the process has died (after a crash point), within 30 s.
    async fn wait_for_death(mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the crash point was not reached");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server as an orchestrator does (SIGTERM) and waits for it to exit, which it
    /// must do with success.
    async fn stop_gracefully(mut self) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "trove serve stopped with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "trove serve did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a job of a `202` answer to succeed.
    async fn wait_job(&self, token: &str, answer: &Answer) {
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        let path = answer.json()["path"].as_str().unwrap().to_owned();
        for _ in 0..500 {
            let job = self.ok(Method::GET, &path, Some(token), None).await.json();
            if job["status"] == "SUCCESS" {
                return;
            }
            assert_ne!(job["status"], "FAILURE", "{job}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job did not finish");
    }

    /// Uploads `bytes` as `path` into an open version; answers the acknowledged md5 (hex).
    async fn upload(
        &self,
        token: &str,
        project: &str,
        version: &str,
        path: &str,
        bytes: &[u8],
    ) -> Option<Answer> {
        let md5 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            md5::Md5::digest(bytes),
        );
        let response = self
            .client
            .put(format!(
                "{}/projects/{project}/version/{version}/files/{path}",
                self.base
            ))
            .bearer_auth(token)
            .header("content-md5", md5)
            .body(bytes.to_vec())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .ok()?;
        let status = response.status();
        Some(Answer {
            status,
            bytes: response.bytes().await.ok()?.to_vec(),
        })
    }

    /// Waits until the start-up reconciliation is over and `/index/sync` (without repair)
    /// reports no drift; fails after 30 s.
    async fn assert_no_drift(&self, token: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let report = self
                .ok(Method::GET, "/index/sync", Some(token), None)
                .await
                .json();
            if report["drift_count"] == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "drift remains after restart: {report}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends `GET path` every 200 ms until it answers `done`, every answer before it being
    /// `meanwhile`; fails with `what` after 60 s. Answers the final answer.
    async fn wait_for_status(
        &self,
        path: &str,
        token: &str,
        (done, meanwhile): (StatusCode, StatusCode),
        what: &str,
    ) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self
                .send(Method::GET, path, Some(token), None)
                .await
                .unwrap_or_else(|| panic!("{path}: connection broke"));
            if answer.status == done {
                return answer;
            }
            assert_eq!(answer.status, meanwhile, "{path}");
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates the empty private namespace `team` as `root`.
    async fn create_team_namespace(&self, root: &str) {
        self.ok(
            Method::POST,
            "/namespaces",
            Some(root),
            Some(json!({"name": "team", "description": "", "visibility": "private", "auto_create": false})),
        )
        .await;
    }

    /// The acknowledged file `id` downloads with exactly `bytes`.
    async fn assert_downloads(&self, token: &str, id: &str, bytes: &[u8]) {
        let answer = self
            .ok(
                Method::GET,
                &format!("/files/{}?redirect=false", enc(id)),
                Some(token),
                None,
            )
            .await;
        assert_eq!(answer.bytes, bytes, "{id} lost or changed");
        let metadata = self
            .ok(
                Method::GET,
                &format!("/files/{}/metadata", enc(id)),
                Some(token),
                None,
            )
            .await
            .json();
        assert_eq!(
            metadata["_extra"]["md5sum"],
            hex::encode(md5::Md5::digest(bytes)),
            "{id}"
        );
    }

    /// The ids search finds for `token`.
    async fn search_ids(&self, token: Option<&str>, query: &str) -> Vec<String> {
        let answer = self
            .ok(
                Method::GET,
                &format!("/search?q={}&size=500", enc(query)),
                token,
                None,
            )
            .await
            .json();
        let mut ids: Vec<String> = answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| hit["_extra"]["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// The audit events of `action`, newest first.
    async fn audit(&self, token: &str, action: &str) -> Vec<Value> {
        let answer = self
            .ok(
                Method::GET,
                &format!("/audit?action={action}&size=50"),
                Some(token),
                None,
            )
            .await
            .json();
        answer["results"].as_array().cloned().unwrap_or_default()
    }
}

/// What every scenario starts from: root, an outsider (`eve`, a maintainer granted nothing),
/// a private project `secret` with a completed version holding an acknowledged file, and a
/// public project `open` whose version is still open for uploads.
struct Scene {
    _directory: tempfile::TempDir,
    data_dir: PathBuf,
    acknowledged: Vec<(String, Vec<u8>)>,
}

async fn scene() -> (Scene, Server, String) {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let server = Server::start(&data_dir, None).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    server
        .ok(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"username": "eve", "password": "password-of-eve"})),
        )
        .await;
    let mut acknowledged = Vec::new();
    for (project, visibility, complete) in [("secret", "private", true), ("open", "public", false)]
    {
        server
            .ok(Method::POST, "/projects", Some(&root), Some(json!({"project_id": project, "title": project, "type": "MODEL", "visibility": visibility})))
            .await;
        server
            .ok(
                Method::POST,
                &format!("/projects/{project}/versions"),
                Some(&root),
                Some(json!({"version": "v1"})),
            )
            .await;
        let bytes = format!("acknowledged bytes of {project}")
            .repeat(1000)
            .into_bytes();
        let answer = server
            .upload(&root, project, "v1", "a.bin", &bytes)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(
            answer.json()["md5sum"],
            hex::encode(md5::Md5::digest(&bytes))
        );
        acknowledged.push((format!("{project}:a.bin@v1"), bytes));
        if complete {
            let answer = server
                .send(
                    Method::PUT,
                    &format!("/projects/{project}/version/v1/complete"),
                    Some(&root),
                    None,
                )
                .await
                .unwrap();
            server.wait_job(&root, &answer).await;
        }
    }
    (
        Scene {
            _directory: directory,
            data_dir,
            acknowledged,
        },
        server,
        root,
    )
}

impl Scene {
    /// Restarts after a crash and checks the promises every scenario shares.
    async fn restart_and_check(&self) -> (Server, String) {
        let server = Server::start(&self.data_dir, None).await;
        let root = server.login("root", ROOT_PASSWORD).await;
        server.assert_no_drift(&root).await;
        for (id, bytes) in &self.acknowledged {
            server.assert_downloads(&root, id, bytes).await;
        }
        // Nobody gained anything: eve and anonymous callers still cannot read `secret`.
        let eve = server.login("eve", "password-of-eve").await;
        for token in [Some(eve.as_str()), None] {
            let answer = server
                .send(
                    Method::GET,
                    &format!("/files/{}/metadata", enc("secret:a.bin@v1")),
                    token,
                    None,
                )
                .await
                .unwrap();
            assert_eq!(answer.status, StatusCode::NOT_FOUND);
            assert!(
                server
                    .search_ids(token, "*")
                    .await
                    .iter()
                    .all(|id| !id.starts_with("secret:"))
            );
        }
        (server, root)
    }
}

/// Dies after the bytes of an upload reached the staging area: after restart the file is not
/// there at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_upload_leaves_no_partial_file() {
    let (scene, server, _) = scene().await;
    drop(server);
    let server = Server::start(&scene.data_dir, Some("upload.staged")).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    let bytes = vec![7_u8; 3 << 20];
    assert!(
        server
            .upload(&root, "open", "v1", "b.bin", &bytes)
            .await
            .is_none(),
        "the upload was answered"
    );
    server.wait_for_death().await;

    let (server, root) = scene.restart_and_check().await;
    let answer = server
        .send(
            Method::GET,
            &format!("/files/{}/metadata", enc("open:b.bin@v1")),
            Some(&root),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let listing = server
        .ok(
            Method::GET,
            "/projects/open/version/v1/files",
            Some(&root),
            None,
        )
        .await;
    assert!(!String::from_utf8_lossy(&listing.bytes).contains("b.bin"));
    // The same upload succeeds after the restart.
    let answer = server
        .upload(&root, "open", "v1", "b.bin", &bytes)
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::CREATED);
    server
        .assert_downloads(&root, "open:b.bin@v1", &bytes)
        .await;
}

/// Dies after an unacknowledged upload was moved into the version, before its record: what
/// is visible after restart is the whole file, never a part of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_upload_is_acknowledged_never_shows_a_partial_file() {
    let (scene, server, _) = scene().await;
    drop(server);
    let server = Server::start(&scene.data_dir, Some("upload.moved")).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    let bytes: Vec<u8> = (0..(2_u32 << 20)).map(|i| (i % 251) as u8).collect();
    assert!(
        server
            .upload(&root, "open", "v1", "c.bin", &bytes)
            .await
            .is_none()
    );
    server.wait_for_death().await;

    let (server, root) = scene.restart_and_check().await;
    let answer = server
        .send(
            Method::GET,
            &format!("/files/{}?redirect=false", enc("open:c.bin@v1")),
            Some(&root),
            None,
        )
        .await
        .unwrap();
    match answer.status {
        StatusCode::NOT_FOUND => {}
        StatusCode::OK => assert_eq!(answer.bytes, bytes, "a partial file is visible"),
        other => panic!("unexpected {other}"),
    }
}

/// Dies between a mutation's `pending` audit event and the mutation: the event stays
/// visibly not completed and the profile did not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_audit_event_and_its_mutation_leaves_it_pending() {
    let (scene, server, _) = scene().await;
    drop(server);
    let server = Server::start(&scene.data_dir, Some("audit.begun")).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    let widened = json!({"read_access": "public", "viewers": ["eve"]})
        .to_string()
        .into_bytes();
    assert!(
        server
            .send(
                Method::PUT,
                "/projects/secret/permissions",
                Some(&root),
                Some(widened)
            )
            .await
            .is_none()
    );
    server.wait_for_death().await;

    let (server, root) = scene.restart_and_check().await;
    let events = server.audit(&root, "permissions.update").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "pending", "{}", events[0]);
    let profile = server
        .ok(
            Method::GET,
            "/projects/secret/permissions",
            Some(&root),
            None,
        )
        .await
        .json();
    assert_eq!(profile["read_access"], "owners", "{profile}");
}

/// Dies after a profile change was stored, before its re-index job ran: after restart the
/// index follows storage (the narrowed project is not found by anyone it no longer admits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_a_profile_write_and_its_reindex_is_repaired_at_start() {
    let (scene, server, root) = scene().await;
    // `open` is public: anonymous callers find its document.
    assert!(
        server
            .search_ids(None, "*")
            .await
            .contains(&"open:a.bin@v1".to_owned())
    );
    let completed = server
        .send(
            Method::PUT,
            "/projects/open/version/v1/complete",
            Some(&root),
            None,
        )
        .await
        .unwrap();
    server.wait_job(&root, &completed).await;
    drop(server);
    let server = Server::start(&scene.data_dir, Some("reindex.start")).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    let narrowed = json!({"read_access": "owners"}).to_string().into_bytes();
    // Acknowledged (202) before the job runs; the job's first step kills the process.
    let answer = server
        .send(
            Method::PUT,
            "/projects/open/permissions",
            Some(&root),
            Some(narrowed),
        )
        .await;
    assert!(answer.is_none_or(|answer| answer.status == StatusCode::ACCEPTED));
    server.wait_for_death().await;

    // At once after the restart, before the start-up reconciliation has repaired the index,
    // the stale public document must not be found: hits are re-checked against storage.
    {
        let server = Server::start(&scene.data_dir, None).await;
        let found = server.search_ids(None, "*").await;
        assert!(found.is_empty(), "found at once after restart: {found:?}");
    }
    let (server, _) = scene.restart_and_check().await;
    let eve = server.login("eve", "password-of-eve").await;
    for token in [Some(eve.as_str()), None] {
        assert!(
            server.search_ids(token, "*").await.is_empty(),
            "the narrowed project is still found"
        );
        let answer = server
            .send(
                Method::GET,
                &format!("/files/{}/metadata", enc("open:a.bin@v1")),
                token,
                None,
            )
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
    }
}

/// Dies in the middle of an index build: after restart every document is indexed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_an_index_build_loses_and_duplicates_nothing() {
    let (scene, server, root) = scene().await;
    for project in ["r1", "r2", "r3"] {
        server
            .ok(Method::POST, "/projects", Some(&root), Some(json!({"project_id": project, "title": project, "type": "DATASET", "visibility": "private"})))
            .await;
        server
            .ok(
                Method::POST,
                &format!("/projects/{project}/versions"),
                Some(&root),
                Some(json!({"version": "v1"})),
            )
            .await;
        for file in ["x.bin", "y.bin"] {
            let answer = server
                .upload(&root, project, "v1", file, file.as_bytes())
                .await
                .unwrap();
            assert_eq!(answer.status, StatusCode::CREATED);
        }
        let answer = server
            .send(
                Method::PUT,
                &format!("/projects/{project}/version/v1/complete"),
                Some(&root),
                None,
            )
            .await
            .unwrap();
        server.wait_job(&root, &answer).await;
    }
    let before = server.search_ids(Some(&root), "*").await;
    assert_eq!(before.len(), 8, "{before:?}");
    drop(server);
    let server = Server::start(&scene.data_dir, Some("rebuild.progress")).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    let answer = server
        .send(Method::PUT, "/index/build", Some(&root), None)
        .await;
    assert!(answer.is_none_or(|answer| answer.status == StatusCode::ACCEPTED));
    server.wait_for_death().await;

    let (server, root) = scene.restart_and_check().await;
    let after = server.search_ids(Some(&root), "*").await;
    assert_eq!(after, before, "documents lost or duplicated");
}

/// Dies after a version deletion (the purge's deletion) removed its first object: every file
/// still listed downloads whole, the index follows storage, and the event stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_version_deletion_leaves_a_consistent_remainder() {
    let (scene, server, root) = scene().await;
    server
        .ok(
            Method::POST,
            "/projects/secret/versions",
            Some(&root),
            Some(json!({"version": "v2"})),
        )
        .await;
    let mut files = Vec::new();
    for name in ["m.bin", "n.bin", "o.bin"] {
        let bytes = format!("{name} bytes").repeat(100).into_bytes();
        let answer = server
            .upload(&root, "secret", "v2", name, &bytes)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::CREATED);
        files.push((format!("secret:{name}@v2"), bytes));
    }
    let answer = server
        .send(
            Method::PUT,
            "/projects/secret/version/v2/complete",
            Some(&root),
            None,
        )
        .await
        .unwrap();
    server.wait_job(&root, &answer).await;
    drop(server);
    let objects_before = count_files(&scene.data_dir.join("objects/secret/v2"));
    let server = Server::start(&scene.data_dir, Some("version.delete.partial")).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    assert!(
        server
            .send(
                Method::DELETE,
                "/projects/secret/version/v2",
                Some(&root),
                None
            )
            .await
            .is_none()
    );
    server.wait_for_death().await;

    let (server, root) = scene.restart_and_check().await;
    let found: Vec<String> = server.search_ids(Some(&root), "_extra.version:v2").await;
    let mut remaining = 0;
    for (id, bytes) in &files {
        let answer = server
            .send(
                Method::GET,
                &format!("/files/{}?redirect=false", enc(id)),
                Some(&root),
                None,
            )
            .await
            .unwrap();
        match answer.status {
            StatusCode::OK => {
                remaining += 1;
                assert_eq!(&answer.bytes, bytes, "{id} changed");
                assert!(found.contains(id), "{id} is in storage but not found");
            }
            StatusCode::NOT_FOUND => assert!(!found.contains(id), "{id} is found but gone"),
            other => panic!("{id}: {other}"),
        }
    }
    // The crash came mid-deletion: some objects of the version are gone (the first may be a
    // record under `..meta/` rather than a data file), the version record is still there.
    let objects_after = count_files(&scene.data_dir.join("objects/secret/v2"));
    assert!(
        objects_after < objects_before && objects_after > 0,
        "{objects_before} objects before, {objects_after} after ({remaining} data files remain)"
    );
    let events = server.audit(&root, "version.delete").await;
    assert_eq!(
        events.first().map(|event| event["outcome"].clone()),
        Some(json!("pending")),
        "{events:?}"
    );
    // The deletion can be finished after the restart.
    let answer = server
        .send(
            Method::DELETE,
            "/projects/secret/version/v2",
            Some(&root),
            None,
        )
        .await
        .unwrap();
    assert!(
        answer.status.is_success(),
        "{}",
        String::from_utf8_lossy(&answer.bytes)
    );
    server.assert_no_drift(&root).await;
}

/// The purge every second (six-field cron, seconds first).
const PURGE_EVERY_SECOND: (&str, &str) = ("TROVE_PURGE_CRON", "* * * * * *");

/// Adds a completed transient version `project@version` holding `t.bin`, expiring two
/// seconds from now (the purge deletes it once that moment passed).
async fn transient_version(server: &Server, root: &str, project: &str, version: &str) {
    let expires = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let answer = server
        .ok(
            Method::POST,
            &format!("/projects/{project}/version/{version}/upload"),
            Some(root),
            Some(json!({"filenames": ["t.bin"], "expires_in": expires})),
        )
        .await
        .json();
    let url = answer["presigned_urls"][0]["url"].as_str().unwrap();
    let response = server
        .client
        .put(url)
        .body(b"transient bytes".to_vec())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let completed = server
        .send(
            Method::PUT,
            &format!("/projects/{project}/version/{version}/complete"),
            Some(root),
            None,
        )
        .await
        .unwrap();
    server.wait_job(root, &completed).await;
    let id = format!("{project}:t.bin@{version}");
    assert!(server.search_ids(Some(root), "*").await.contains(&id));
}

/// After a crash during a purge and a restart whose purge runs again: the expired version is
/// gone from storage, search and direct access, and nothing else changed.
async fn assert_purged(server: &Server, root: &str, scene: &Scene) {
    let id = "secret:t.bin@t1";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = server
            .send(
                Method::GET,
                &format!("/files/{}/metadata", enc(id)),
                Some(root),
                None,
            )
            .await
            .unwrap();
        let gone_from_storage = !scene.data_dir.join("objects/secret/t1").exists()
            || count_files(&scene.data_dir.join("objects/secret/t1")) == 0;
        if answer.status == StatusCode::NOT_FOUND && gone_from_storage {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expired version is still there: {}",
            answer.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !server
            .search_ids(Some(root), "*")
            .await
            .contains(&id.to_owned())
    );
    server.assert_no_drift(root).await;
    let purges = server.audit(root, "version.purge").await;
    assert!(
        purges.iter().any(|event| event["outcome"] != "pending"),
        "no purge completed: {purges:?}"
    );
}

/// Dies during the purge of an expired transient version, after its first object was
/// deleted: after a restart (its purge finishes the job) the version is wholly gone, the
/// index follows storage and every acknowledged file is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_purge_is_finished_by_the_next_purge() {
    let (scene, server, root) = scene().await;
    transient_version(&server, &root, "secret", "t1").await;
    drop(server);
    Server::spawn(
        &scene.data_dir,
        Some("version.delete.partial"),
        &[PURGE_EVERY_SECOND],
    )
    .wait_for_death()
    .await;
    let purges_pending = {
        let server = Server::start(&scene.data_dir, None).await;
        let root = server.login("root", ROOT_PASSWORD).await;
        server.audit(&root, "version.purge").await
    };
    assert_eq!(
        purges_pending.first().map(|event| event["outcome"].clone()),
        Some(json!("pending")),
        "{purges_pending:?}"
    );

    let (server, _) = scene.restart_and_check().await;
    drop(server);
    let server = Server::start_with_env(&scene.data_dir, None, &[PURGE_EVERY_SECOND]).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    assert_purged(&server, &root, &scene).await;
    for (id, bytes) in &scene.acknowledged {
        server.assert_downloads(&root, id, bytes).await;
    }
}

/// Dies after the purge deleted an expired version and completed its audit event, before the
/// re-index: after restart its documents are not found by anyone and the index equals storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_a_purge_and_its_reindex_is_repaired_at_start() {
    let (scene, server, root) = scene().await;
    transient_version(&server, &root, "secret", "t1").await;
    drop(server);
    Server::spawn(
        &scene.data_dir,
        Some("purge.deleted"),
        &[PURGE_EVERY_SECOND],
    )
    .wait_for_death()
    .await;

    let (server, root) = scene.restart_and_check().await;
    assert_purged(&server, &root, &scene).await;
}

/// The revoked-token records under `objects/..meta/revoked-tokens/` of a local data directory
/// (their token ids).
fn revocation_records(data_dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(data_dir.join("objects/..meta/revoked-tokens")) {
        Ok(entries) => entries
            .map(|entry| {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                name.trim_end_matches(".json").to_owned()
            })
            .collect(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(error) => panic!("{error}"),
    }
}

/// How `/auth/me` answers `token`.
async fn me_status(server: &Server, token: &str) -> StatusCode {
    server
        .send(Method::GET, "/auth/me", Some(token), None)
        .await
        .unwrap()
        .status
}

/// Dies during the purge of revoked-token records, after its first deletion: a purge only
/// deletes records of tokens that have expired anyway, so after the crash and a restart every
/// revoked live token is still refused, and the next purge finishes the job (the expired
/// records go, the live one stays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_revocation_purge_revives_no_token() {
    let (scene, server, root) = scene().await;
    // A live token, logged out: its revocation must outlive every purge until it expires.
    let revoked = server.login("eve", "password-of-eve").await;
    server
        .ok(Method::POST, "/auth/logout", Some(&revoked), None)
        .await;
    assert_eq!(me_status(&server, &revoked).await, StatusCode::UNAUTHORIZED);
    let live = revocation_records(&scene.data_dir);
    assert_eq!(live.len(), 1, "{live:?}");
    // Records of tokens that expired an hour ago (past the 30 s leeway): the purge's work.
    let directory = scene.data_dir.join("objects/..meta/revoked-tokens");
    let expired_at = chrono::Utc::now().timestamp() - 3_600;
    for n in 0..5 {
        let jti = format!("expired{n}");
        let record = json!({"jti": jti, "sub": "eve", "expires_at": expired_at});
        std::fs::write(directory.join(format!("{jti}.json")), record.to_string()).unwrap();
    }
    drop(server);

    let every_second = ("TROVE_REVOCATION_PURGE_CRON", "* * * * * *");
    Server::spawn(
        &scene.data_dir,
        Some("revocation_purge.deleted"),
        &[every_second],
    )
    .wait_for_death()
    .await;
    let after_crash = revocation_records(&scene.data_dir);
    assert!(after_crash.is_superset(&live), "{after_crash:?}");
    assert!(
        (2..=5).contains(&(after_crash.len() - 1)),
        "the crash came after exactly one deletion: {after_crash:?}"
    );

    let (server, _) = scene.restart_and_check().await;
    assert_eq!(me_status(&server, &revoked).await, StatusCode::UNAUTHORIZED);
    drop(server);
    let server = Server::start_with_env(&scene.data_dir, None, &[every_second]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while revocation_records(&scene.data_dir) != live {
        assert!(
            Instant::now() < deadline,
            "the purge did not finish: {:?}",
            revocation_records(&scene.data_dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(me_status(&server, &revoked).await, StatusCode::UNAUTHORIZED);
    let _ = root;
}

/// Dies while the start-up reconciliation rebuilds a missing index: the next start repairs
/// it — every document indexed exactly once, no drift, nobody reads more than before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_the_startup_rebuild_is_repaired_by_the_next_start() {
    let (scene, server, root) = scene().await;
    for project in ["r1", "r2", "r3"] {
        server
            .ok(Method::POST, "/projects", Some(&root), Some(json!({"project_id": project, "title": project, "type": "DATASET", "visibility": "private"})))
            .await;
        server
            .ok(
                Method::POST,
                &format!("/projects/{project}/versions"),
                Some(&root),
                Some(json!({"version": "v1"})),
            )
            .await;
        let answer = server
            .upload(&root, project, "v1", "x.bin", project.as_bytes())
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::CREATED);
        let answer = server
            .send(
                Method::PUT,
                &format!("/projects/{project}/version/v1/complete"),
                Some(&root),
                None,
            )
            .await
            .unwrap();
        server.wait_job(&root, &answer).await;
    }
    let before = server.search_ids(Some(&root), "*").await;
    assert_eq!(before.len(), 5, "{before:?}");
    drop(server);
    // The index is lost: the next start rebuilds it from storage, and dies doing so.
    std::fs::remove_dir_all(scene.data_dir.join("index")).unwrap();
    Server::spawn(&scene.data_dir, Some("startup.rebuild.progress"), &[])
        .wait_for_death()
        .await;

    let (server, root) = scene.restart_and_check().await;
    let after = server.search_ids(Some(&root), "*").await;
    assert_eq!(after, before, "documents lost or duplicated");
}

/// The S3 server stops while an upload streams and while a version completes: each answers
/// `503 storage_unavailable` (never a 500); once it is back, what was acknowledged is intact,
/// nothing half-written is visible, and the same requests succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_mid_upload_and_mid_completion_loses_nothing() {
    let mut backend = BackendApp::start(Backend::S3).await;
    let token = backend
        .user_token("olive", trove::permissions::Role::Maintainer)
        .await;
    create_project(&backend, &token, "p", "private").await;
    create_version(&backend, &token, "p", "v1").await;
    let kept = b"acknowledged before the outage".to_vec();
    assert_eq!(
        upload(&backend, Some(&token), "p", "v1", "kept.bin", &kept)
            .await
            .status,
        StatusCode::CREATED
    );

    // Mid-upload: the body streams while the server goes away.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let body = axum::body::Body::from_stream(tokio_stream_from(receiver));
    let request = axum::http::Request::builder()
        .method(Method::PUT)
        .uri("/projects/p/version/v1/files/lost.bin")
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .unwrap();
    let router = backend.router.clone();
    let pending = tokio::spawn(crate::common::send_to(router, request));
    sender
        .send(Ok(bytes::Bytes::from(vec![1_u8; 1 << 20])))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    backend.s3.as_mut().unwrap().stop().await;
    let _ = sender
        .send(Ok(bytes::Bytes::from(vec![2_u8; 1 << 20])))
        .await;
    drop(sender);
    let answer = pending.await.unwrap();
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    assert_eq!(answer.code(), "storage_unavailable");

    // Mid-completion.
    let answer = call(
        &backend,
        Method::PUT,
        "/projects/p/version/v1/complete",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );

    backend.s3.as_mut().unwrap().restart().await;
    backend
        .get_as(&format!("/files/{}/metadata", enc("p:lost.bin@v1")), &token)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let answer = call(
        &backend,
        Method::PUT,
        "/projects/p/version/v1/complete",
        Some(&token),
        None,
    )
    .await;
    wait_job(&backend, &token, &answer).await;
    let answer = backend
        .get_as(
            &format!("/files/{}?redirect=false", enc("p:kept.bin@v1")),
            &token,
        )
        .await;
    assert_eq!(answer.bytes, kept);
    let listing = backend.get_as("/projects/p/version/v1/files", &token).await;
    assert!(!listing.text().contains("lost.bin"), "{}", listing.text());
    let admin = backend
        .user_token("root", trove::permissions::Role::Admin)
        .await;
    let report = backend.get_as("/index/sync", &admin).await.json();
    assert_eq!(report["drift_count"], 0, "{report}");
}

/// A stream over a channel's receiver (what `Body::from_stream` needs).
fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |context| receiver.poll_recv(context))
}

/// Regular files under `directory`, recursively.
fn count_files(directory: &Path) -> usize {
    std::fs::read_dir(directory).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|entry| {
                let path = entry.path();
                if path.is_dir() { count_files(&path) } else { 1 }
            })
            .sum()
    })
}

/// A graceful stop (SIGTERM) records that the index held everything acknowledged; the next
/// start opens reads after replaying the change feed instead of checking all of storage, and
/// keeps every promise of a restart. The record is consumed by that start: a crash after it
/// makes the following start check all of storage before reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_lets_the_next_start_open_reads_after_the_feed() {
    let (scene, server, _) = scene().await;
    server.stop_gracefully().await;
    let marker = scene.data_dir.join("index-closed-cleanly");
    assert!(marker.exists(), "SIGTERM did not record a clean close");
    let (server, _) = scene.restart_and_check().await;
    assert!(
        !marker.exists(),
        "the record outlived the start that used it"
    );
    let status = server.ok(Method::GET, "/status", None, None).await.json();
    assert_eq!(status["reads_opened"]["after"], "feed_replay", "{status}");
    // Killed: the next start checks all of storage first.
    drop(server);
    let (server, _) = scene.restart_and_check().await;
    let status = server.ok(Method::GET, "/status", None, None).await.json();
    assert_eq!(status["reads_opened"]["after"], "sync_check", "{status}");
}

/// The shared scene plus an empty private namespace `team`, its server stopped.
async fn scene_with_team_namespace() -> Scene {
    let (scene, server, root) = scene().await;
    server.create_team_namespace(&root).await;
    scene
}

/// The shared scene with namespace `team`, after a `DELETE /namespaces/team` whose server
/// died at crash point `point`.
async fn namespace_deletion_dying_at(point: &str) -> Scene {
    let scene = scene_with_team_namespace().await;
    let server = Server::start(&scene.data_dir, Some(point)).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    assert!(
        server
            .send(Method::DELETE, "/namespaces/team", Some(&root), None)
            .await
            .is_none(),
        "the deletion was answered"
    );
    server.wait_for_death().await;
    scene
}

/// Makes the `deleting` mark of the namespace record at `record_path` 16 minutes older, as
/// that much time passing would (stale: `STALE_DELETION_MARK` is 15).
fn age_deletion_mark(record_path: &Path) {
    let mut record: Value = serde_json::from_slice(&std::fs::read(record_path).unwrap()).unwrap();
    assert_eq!(record["deleting"], json!(true), "{record}");
    let since: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(record["deleting_since"].clone()).unwrap();
    record["deleting_since"] = json!(since - chrono::TimeDelta::minutes(16));
    std::fs::write(record_path, record.to_string()).unwrap();
}

impl Scene {
    /// Where local storage keeps the record of namespace `team`.
    fn team_record_path(&self) -> PathBuf {
        self.data_dir
            .join("objects/..meta/namespaces/team/namespace.json")
    }
}

/// Dies after a namespace deletion marked the namespace `deleting`, before it looked for its
/// projects: after restart the namespace is still there and refuses creations while the mark
/// could belong to a deletion in progress; once the mark is older than any deletion takes
/// (aged here by rewriting its time, as 15 minutes passing would), the scheduled purge takes
/// it back and creations work again — no admin has to ask for the deletion a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_namespace_deletion_leaves_a_mark_the_purge_takes_back() {
    let scene = namespace_deletion_dying_at("namespace.delete.marked").await;

    let project = |id: &str| json!({"project_id": id, "title": id, "type": "MODEL", "visibility": "private", "namespace": "team"});
    let record_path = scene.team_record_path();
    {
        // A fresh mark may be a deletion still running: even a purge every second keeps it.
        let server = Server::start_with_env(&scene.data_dir, None, &[PURGE_EVERY_SECOND]).await;
        let root = server.login("root", ROOT_PASSWORD).await;
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        let refused = server
            .send(
                Method::POST,
                "/projects",
                Some(&root),
                Some(project("early").to_string().into_bytes()),
            )
            .await
            .unwrap();
        assert_eq!(refused.status, StatusCode::CONFLICT);
        server
            .ok(Method::GET, "/namespaces/team", Some(&root), None)
            .await;
    }
    age_deletion_mark(&record_path);

    let server = Server::start_with_env(&scene.data_dir, None, &[PURGE_EVERY_SECOND]).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let answer = server
            .send(
                Method::POST,
                "/projects",
                Some(&root),
                Some(project("late").to_string().into_bytes()),
            )
            .await
            .unwrap();
        if answer.status == StatusCode::CREATED {
            break;
        }
        assert_eq!(answer.status, StatusCode::CONFLICT);
        assert!(
            std::time::Instant::now() < deadline,
            "the stale mark was never taken back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let record: Value = serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    assert!(record.get("deleting").is_none(), "{record}");
    assert!(record.get("deleting_since").is_none(), "{record}");
    // The namespace now holds a project: a deletion is refused, and takes its own mark back.
    let refused = server
        .send(Method::DELETE, "/namespaces/team", Some(&root), None)
        .await
        .unwrap();
    assert_eq!(refused.status, StatusCode::CONFLICT);
    drop(server);
    scene.restart_and_check().await;
}

/// A namespace deletion stalled after it found no project (a paused process): meanwhile its
/// mark is taken back (as the purge does with a mark 15 minutes old; here the test rewrites
/// the record) and a project is created in the namespace. When the deletion resumes it sees
/// that the record is no longer the one it marked and gives up: the namespace and its new
/// project stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_deletion_that_stalled_past_its_mark_deletes_nothing() {
    let scene = scene_with_team_namespace().await;
    let server = Server::start_paused_at(&scene.data_dir, "namespace.delete.checked", 3_000).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    let record_path = scene.team_record_path();
    let project = json!({"project_id": "late", "title": "late", "type": "MODEL", "visibility": "private", "namespace": "team"});
    let (deletion, created) = tokio::join!(
        server.send(Method::DELETE, "/namespaces/team", Some(&root), None),
        async {
            // The deletion has marked the record and found nothing; take its mark back.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut record: Value = loop {
                let record: Value =
                    serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
                if record["deleting"] == json!(true) {
                    break record;
                }
                assert!(std::time::Instant::now() < deadline, "never marked");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            tokio::time::sleep(Duration::from_millis(300)).await;
            let object = record.as_object_mut().unwrap();
            object.remove("deleting");
            object.remove("deleting_since");
            let written = record_path.with_extension("rewritten");
            std::fs::write(&written, record.to_string()).unwrap();
            std::fs::rename(&written, &record_path).unwrap();
            server
                .send(
                    Method::POST,
                    "/projects",
                    Some(&root),
                    Some(project.to_string().into_bytes()),
                )
                .await
                .unwrap()
        }
    );
    assert_eq!(created.status, StatusCode::CREATED);
    let deletion = deletion.unwrap();
    assert_eq!(
        deletion.status,
        StatusCode::CONFLICT,
        "{:?}",
        deletion.bytes
    );
    server
        .ok(Method::GET, "/namespaces/team", Some(&root), None)
        .await;
    let kept = server
        .ok(Method::GET, "/projects/late", Some(&root), None)
        .await
        .json();
    assert_eq!(kept["namespace"], json!("team"), "{kept}");
}

/// A sync check reads the index, then storage project by project: a change stored and
/// indexed in between (here while the check stalls after reading the index, as a starved
/// process does) is not drift. What looked drifted is compared again, storage read anew
/// against the index as it is then, and only what still differs is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_during_a_sync_check_is_not_reported_as_drift() {
    let (scene, server, _) = scene().await;
    drop(server);
    // Long enough for the changes below to be stored and indexed on a loaded machine.
    let server = Server::start_paused_at(&scene.data_dir, "sync.index_read", 6_000).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    // Reads open once the start-up reconciliation (its check stalls too) is over; until then
    // they answer 503.
    let report = server
        .wait_for_status(
            "/index/sync",
            &root,
            (StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE),
            "reads never opened",
        )
        .await
        .json();
    assert_eq!(report["drift_count"], 0, "{report}");
    let (report, ()) = tokio::join!(
        server.ok(Method::GET, "/index/sync", Some(&root), None),
        async {
            // The check has read the index and waits; a file and a project land meanwhile.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let answer = server
                .upload(&root, "open", "v1", "late.json", br#"{"title": "late"}"#)
                .await
                .unwrap();
            assert_eq!(answer.status, StatusCode::CREATED);
            server
                .ok(
                    Method::POST,
                    "/projects",
                    Some(&root),
                    Some(json!({"project_id": "fresh", "title": "fresh", "type": "MODEL", "visibility": "private"})),
                )
                .await;
        }
    );
    let report = report.json();
    assert_eq!(report["drift_count"], 0, "{report}");
    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(
        report["projects"], 3,
        "the check saw the new project: {report}"
    );
}

/// Dies after a namespace deletion deleted the namespace's profile, before its claims and
/// record: after restart the namespace is still there, marked, refusing creations; once the
/// mark is stale (aged here by rewriting its time) the scheduled purge finishes the deletion
/// — the namespace is gone rather than left without its grants — and the name can be taken
/// again from scratch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_a_namespace_deletion_removed_its_profile_is_finished_by_the_purge() {
    let scene = namespace_deletion_dying_at("namespace.delete.profile_deleted").await;

    let record_path = scene.team_record_path();
    age_deletion_mark(&record_path);

    let server = Server::start_with_env(&scene.data_dir, None, &[PURGE_EVERY_SECOND]).await;
    let root = server.login("root", ROOT_PASSWORD).await;
    server
        .wait_for_status(
            "/namespaces/team",
            &root,
            (StatusCode::NOT_FOUND, StatusCode::OK),
            "the interrupted deletion was never finished",
        )
        .await;
    assert!(!record_path.exists());
    server.create_team_namespace(&root).await;
    server
        .ok(
            Method::POST,
            "/projects",
            Some(&root),
            Some(json!({"project_id": "again", "title": "again", "type": "MODEL", "visibility": "private", "namespace": "team"})),
        )
        .await;
    drop(server);
    scene.restart_and_check().await;
}
