//! Attacks on transport: files served as live HTML, `/metrics` readable by anyone, and the
//! audit chain truncated or rewritten without `trove audit verify` noticing (issue 12, points
//! 7, 11 and 12).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine as _;
use md5::Digest as _;
use serde_json::json;
use trove::permissions::Role;
use trove::storage::{PresignMethod, keys};

use crate::common::artifacts::enc_path;
use crate::common::{Backend, BackendApp, TestApp, TestResponse};

use crate::both_backends;

/// Percent-encodes everything but unreserved characters (ids and path segments).
fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|value| value.to_str().unwrap())
        .unwrap_or_default()
}

/// Asserts the headers every download must carry.
fn assert_inert_attachment(headers: &HeaderMap, file_name: &str) {
    assert_eq!(
        header(headers, "content-disposition"),
        format!("attachment; filename=\"{file_name}\""),
        "{headers:?}"
    );
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(headers, "content-security-policy"),
        "default-src 'none'; sandbox"
    );
    assert_eq!(
        header(headers, "content-type"),
        "application/octet-stream",
        "an HTML file is never served as HTML"
    );
}

async fn expect(response: TestResponse, status: StatusCode) -> TestResponse {
    assert_eq!(response.status, status, "{}", response.text());
    response
}

async fn wait_job(app: &TestApp, token: &str, answer: &TestResponse) {
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let path = answer.json()["path"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let job = app.get_as(&path, token).await.json();
        if job["status"] == "SUCCESS" {
            return;
        }
        assert_ne!(job["status"], "FAILURE", "{job}");
        assert!(std::time::Instant::now() < deadline, "job did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn upload(app: &TestApp, token: &str, path: &str, body: &[u8], content_type: &str) {
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body));
    app.send(
        Request::builder()
            .method(Method::PUT)
            .uri(format!(
                "/projects/site/version/v1/files/{}",
                enc_path(path)
            ))
            .header("authorization", format!("Bearer {token}"))
            .header("content-md5", md5)
            .header("content-type", content_type)
            .body(Body::from(body.to_vec()))
            .unwrap(),
    )
    .await
    .assert_status(StatusCode::CREATED);
}

/// A public project `site` (anyone reads and downloads) with a completed version `v1` holding
/// `page.html` and a file whose name tries to break the `Content-Disposition` header.
async fn public_site(app: &TestApp, hostile_name: &str) {
    let owner = app.user_token("owner", Role::Maintainer).await;
    expect(
        app.post_json(
            "/projects",
            &owner,
            &json!({"project_id": "site", "title": "T", "type": "MODEL", "visibility": "public"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    expect(
        app.post_json("/projects/site/versions", &owner, &json!({"version": "v1"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    upload(app, &owner, "page.html", PAGE, "text/html").await;
    upload(app, &owner, hostile_name, PAGE, "text/html; charset=utf-8").await;
    let complete = app
        .bearer(
            Method::PUT,
            "/projects/site/version/v1/complete",
            &owner,
            None,
        )
        .await;
    wait_job(app, &owner, &complete).await;
    let permissions = app
        .put_json(
            "/projects/site/permissions",
            &owner,
            &json!({"read_access": "public", "download_access": "public"}),
        )
        .await;
    wait_job(app, &owner, &permissions).await;
}

const PAGE: &[u8] =
    b"<html><script>fetch('/auth/me').then(r => r.text()).then(alert)</script></html>";

/// A hostile file name: quotes, a header-parameter injection, a CR LF that looks
/// percent-encoded and a non-ASCII letter (control characters and Unicode line separators
/// are refused as paths; the unit tests of `api::download` cover them).
const HOSTILE: &str = "evil\"; filename=x.exe %0d%0a \u{e9}.html";

/// The download route of `path` in the public site's v1.
fn site_file(path: &str) -> String {
    format!("/files/{}", enc_path(&format!("site:{path}@v1")))
}

/// Range, ETag and 304 keep working, with the same headers.
async fn step_range_etag_and_304_keep_the_headers(app: &TestApp, page: &TestResponse) {
    let range = app
        .send(
            Request::builder()
                .uri(format!("{}?redirect=false", site_file("page.html")))
                .header("range", "bytes=0-5")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .assert_status(StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.bytes, &PAGE[..6]);
    assert_inert_attachment(&range.headers, "page.html");
    let etag = header(&page.headers, "etag").to_owned();
    assert!(!etag.is_empty());
    let cached = app
        .send(
            Request::builder()
                .uri(format!("{}?redirect=false", site_file("page.html")))
                .header("if-none-match", &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .assert_status(StatusCode::NOT_MODIFIED);
    assert_eq!(header(&cached.headers, "x-content-type-options"), "nosniff");
}

/// A presigned download answers an inert attachment too: the local backend's presigned GET with
/// the same headers, S3 through signed `response-content-*` overrides.
async fn step_presigned_downloads_answer_inert_attachments(app: &TestApp, backend: Backend) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    match backend {
        Backend::Local => {
            // The local backend's presigned GET answers the same headers.
            let url = app
                .state
                .storage
                .presign(
                    PresignMethod::Get,
                    &keys::version_file("site", "v1", "page.html"),
                    Duration::from_secs(60),
                    None,
                )
                .await
                .unwrap();
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            assert_inert_attachment(response.headers(), "page.html");
            assert_eq!(response.bytes().await.unwrap().as_ref(), PAGE);
        }
        Backend::S3 => {
            // The redirect's presigned URL makes S3 answer an attachment with an inert type
            // (signed `response-content-*` overrides; S3 cannot send nosniff or a CSP).
            let redirect = expect(app.get(&site_file("page.html")).await, StatusCode::FOUND).await;
            let location = header(&redirect.headers, "location").to_owned();
            let query: std::collections::HashMap<String, String> = url::Url::parse(&location)
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect();
            assert_eq!(
                query
                    .get("response-content-disposition")
                    .map(String::as_str),
                Some("attachment; filename=\"page.html\""),
                "{location}"
            );
            assert_eq!(
                query.get("response-content-type").map(String::as_str),
                Some("application/octet-stream"),
                "{location}"
            );
            assert_eq!(
                header(&redirect.headers, "x-content-type-options"),
                "nosniff"
            );
            // The overrides are signed: the URL works as given.
            let response = client.get(&location).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            assert_eq!(response.bytes().await.unwrap().as_ref(), PAGE);
        }
    }
}

async fn an_anonymous_download_of_a_public_html_file_is_served_as_live_html(backend: Backend) {
    let app = BackendApp::start(backend).await;
    public_site(&app, HOSTILE).await;

    // Streamed through Trove (`?redirect=false`; the default on the local backend).
    let page = expect(
        app.get(&format!("{}?redirect=false", site_file("page.html")))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page.bytes, PAGE);
    assert_inert_attachment(&page.headers, "page.html");

    // Range, ETag and 304 keep working, with the same headers.
    step_range_etag_and_304_keep_the_headers(&app, &page).await;

    // The hostile name cannot add a parameter or a header line.
    let hostile = expect(
        app.get(&format!("{}?redirect=false", site_file(HOSTILE)))
            .await,
        StatusCode::OK,
    )
    .await;
    let disposition = header(&hostile.headers, "content-disposition");
    assert!(
        disposition.starts_with(
            "attachment; filename=\"evil_; filename=x.exe _0d_0a _.html\"; filename*=UTF-8''evil%22%3B%20filename%3Dx.exe%20%250d%250a%20%C3%A9.html"
        ),
        "{disposition}"
    );
    assert_eq!(disposition.matches('"').count(), 2, "{disposition}");
    assert_eq!(
        hostile
            .headers
            .get_all("content-disposition")
            .iter()
            .count(),
        1
    );
    assert_eq!(
        header(&hostile.headers, "x-content-type-options"),
        "nosniff"
    );

    step_presigned_downloads_answer_inert_attachments(&app, backend).await;
}
both_backends!(an_anonymous_download_of_a_public_html_file_is_served_as_live_html);

#[tokio::test]
async fn api_answers_could_be_sniffed_or_framed() {
    let app = TestApp::local().await;
    for path in ["/", "/no/such/route"] {
        let response = app.get(path).await;
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            (
                "content-security-policy",
                "default-src 'none'; frame-ancestors 'none'",
            ),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
        ] {
            assert_eq!(header(&response.headers, name), value, "{path}");
        }
    }
    // The docs page is rendered on the server from embedded assets: nothing from a CDN.
    let docs = expect(app.get("/docs").await, StatusCode::OK).await;
    assert!(!docs.text().contains("cdn.jsdelivr.net"));
    let policy = header(&docs.headers, "content-security-policy");
    assert!(
        policy.contains("script-src 'self'")
            && policy.contains("frame-ancestors 'none'")
            && !policy.contains("https:"),
        "{policy}"
    );
    assert_eq!(
        docs.headers
            .get_all("content-security-policy")
            .iter()
            .count(),
        1
    );
    assert_eq!(header(&docs.headers, "x-content-type-options"), "nosniff");
}

// ------------------------------------------------------------------------------ metrics

#[tokio::test]
async fn anyone_can_read_the_metrics() {
    let app = TestApp::local().await;
    let admin = app.user_token("root", Role::Admin).await;
    let developer = app.user_token("dev", Role::Developer).await;
    let anonymous = expect(app.get("/metrics").await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(anonymous.code(), "token_missing");
    let refused = expect(
        app.get_as("/metrics", &developer).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(refused.code(), "forbidden");
    let metrics = expect(app.get_as("/metrics", &admin).await, StatusCode::OK).await;
    assert!(
        metrics.text().contains("trove_http_requests_total"),
        "{}",
        metrics.text()
    );
}

#[tokio::test]
async fn metrics_moved_to_their_own_listener_are_not_served_on_the_main_one() {
    let app = TestApp::local_with(|settings| {
        settings.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let admin = app.user_token("root", Role::Admin).await;
    for token in [None, Some(admin.as_str())] {
        let response = match token {
            Some(token) => app.get_as("/metrics", token).await,
            None => app.get("/metrics").await,
        };
        assert_eq!(
            response.status,
            StatusCode::NOT_FOUND,
            "{}",
            response.text()
        );
        assert_eq!(response.code(), "not_found");
    }
    let document = app.get("/openapi.json").await.json();
    assert!(document["paths"]["/metrics"].is_null());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(trove::api::system::serve_metrics(
        listener,
        app.state.clone(),
    ));
    let response = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("trove_http_requests_total")
    );
    server.abort();
}

/// `trove serve` with `TROVE_METRICS_LISTEN`: the metrics port answers, the main port does not.
#[tokio::test]
async fn trove_serve_serves_metrics_only_on_the_metrics_listener() {
    let data_dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (crate::common::free_port(), crate::common::free_port());
    let mut child = crate::common::trove_serve(data_dir.path(), port)
        .env("TROVE_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
        {
            break response;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(metrics.status().as_u16(), 200);
    let main = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status().as_u16(), 404);
    child.kill().await.unwrap();
}
// ------------------------------------------------------------------------- audit anchors

mod audit_chain {
    use bytes::Bytes;
    use trove::audit::AuditEvent;
    use trove::audit::checkpoint::CheckpointKey;
    use trove::audit::event::sha256_hex;
    use trove::audit::verify::{ProblemKind, verify, verify_anchored};
    use trove::storage::{ObjectStore, ObjectStoreExt as _, PutOptions, keys};

    use crate::common::{TestApp, local_settings};

    /// An instance on a data directory that stored `count` events in one chain, flushed (so
    /// the last checkpoint covers them all); answers the event keys in chain order.
    async fn chain_of(count: u32) -> (TestApp, tempfile::TempDir, Vec<String>) {
        let data_dir = tempfile::tempdir().unwrap();
        let app = TestApp::with_settings(local_settings(data_dir.path().to_path_buf())).await;
        for index in 0..count {
            app.state
                .audit
                .record(AuditEvent::new("file.download").resource(format!("file:{index}")));
        }
        app.state.audit.flush().await.unwrap();
        let keys = event_keys(app.state.storage.as_ref()).await;
        assert_eq!(keys.len(), count as usize);
        (app, data_dir, keys)
    }

    async fn event_keys(storage: &dyn ObjectStore) -> Vec<String> {
        let mut events: Vec<(u64, String)> = Vec::new();
        for object in storage.list_all(&keys::audit_prefix()).await.unwrap() {
            let (bytes, _) = storage.get_bytes(&object.key).await.unwrap();
            let event: AuditEvent = serde_json::from_slice(&bytes).unwrap();
            events.push((event.seq, object.key));
        }
        events.sort();
        events.into_iter().map(|(_, key)| key).collect()
    }

    /// `trove audit verify` on `data_dir`: success and stdout.
    fn run_verify(data_dir: &std::path::Path) -> (bool, String) {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_trove"))
            .current_dir(std::env::temp_dir())
            .env_remove("TROVE_CONFIG")
            .env("TROVE_LOG", "error")
            .args(["audit", "--data-dir"])
            .arg(data_dir)
            .arg("verify")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    #[tokio::test]
    async fn deleting_the_last_20_audit_events_goes_unnoticed() {
        let (app, data_dir, keys) = chain_of(30).await;
        let (ok, stdout) = run_verify(data_dir.path());
        assert!(ok, "{stdout}");
        assert!(stdout.contains("audit log intact"), "{stdout}");

        for key in &keys[10..] {
            app.state.storage.delete(key).await.unwrap();
        }
        // The chain alone still looks intact: only the checkpoint knows.
        assert!(verify(app.state.storage.as_ref()).await.unwrap().is_ok());
        let report = verify_anchored(app.state.storage.as_ref(), &checkpoint_key(&data_dir))
            .await
            .unwrap();
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert_eq!(report.problems[0].kind, ProblemKind::Truncated);
        let (ok, stdout) = run_verify(data_dir.path());
        assert!(!ok, "{stdout}");
        assert!(
            stdout.contains("Truncated") && stdout.contains("20 events"),
            "{stdout}"
        );
    }

    #[tokio::test]
    async fn rewriting_an_audit_event_and_rehashing_the_rest_goes_unnoticed() {
        let (app, data_dir, keys) = chain_of(8).await;
        let storage = app.state.storage.clone();
        // Rewrite event 3, then re-link and re-hash every later event: a "valid" chain.
        let mut previous: Option<Bytes> = None;
        for (index, key) in keys.iter().enumerate() {
            let (bytes, _) = storage.get_bytes(key).await.unwrap();
            let mut event: AuditEvent = serde_json::from_slice(&bytes).unwrap();
            if index < 3 {
                previous = Some(bytes);
                continue;
            }
            if index == 3 {
                event.resource = "file:nothing-to-see".to_owned();
            }
            event.prev_hash = previous.as_ref().map(|bytes| sha256_hex(bytes));
            event.hash = None;
            event.hash = Some(event.compute_hash());
            let rewritten = Bytes::from(serde_json::to_vec(&event).unwrap());
            storage
                .put_bytes(key, rewritten.clone(), PutOptions::default())
                .await
                .unwrap();
            previous = Some(rewritten);
        }
        assert!(verify(storage.as_ref()).await.unwrap().is_ok());
        let report = verify_anchored(storage.as_ref(), &checkpoint_key(&data_dir))
            .await
            .unwrap();
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert_eq!(report.problems[0].kind, ProblemKind::CheckpointMismatch);
        let (ok, stdout) = run_verify(data_dir.path());
        assert!(!ok && stdout.contains("CheckpointMismatch"), "{stdout}");
    }

    #[tokio::test]
    async fn forging_or_deleting_the_audit_checkpoint_goes_unnoticed() {
        let (app, data_dir, keys) = chain_of(5).await;
        let storage = app.state.storage.clone();
        let checkpoints = storage
            .list_all(&keys::audit_checkpoint_prefix())
            .await
            .unwrap();
        assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
        let checkpoint_key_name = checkpoints[0].key.clone();
        // Truncate and lower the checkpoint's count to match: the signature no longer does.
        storage.delete(&keys[4]).await.unwrap();
        let (bytes, _) = storage.get_bytes(&checkpoint_key_name).await.unwrap();
        let mut checkpoint: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        checkpoint["count"] = 4.into();
        storage
            .put_bytes(
                &checkpoint_key_name,
                Bytes::from(serde_json::to_vec(&checkpoint).unwrap()),
                PutOptions::default(),
            )
            .await
            .unwrap();
        let key = checkpoint_key(&data_dir);
        let report = verify_anchored(storage.as_ref(), &key).await.unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|problem| problem.kind == ProblemKind::ForgedCheckpoint),
            "{report:?}"
        );
        // Deleting the checkpoint of a chain that has events is noticed too.
        storage.delete(&checkpoint_key_name).await.unwrap();
        let report = verify_anchored(storage.as_ref(), &key).await.unwrap();
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert_eq!(report.problems[0].kind, ProblemKind::MissingCheckpoint);
    }

    #[tokio::test]
    async fn an_untouched_log_verifies_across_restarts() {
        let (app, data_dir, _) = chain_of(3).await;
        app.state.audit.close().await.unwrap();
        drop(app);
        let app = TestApp::reopen(local_settings(data_dir.path().to_path_buf())).await;
        app.state
            .audit
            .record(AuditEvent::new("file.download").resource("file:again"));
        app.state.audit.close().await.unwrap();
        let report = verify_anchored(app.state.storage.as_ref(), &checkpoint_key(&data_dir))
            .await
            .unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.writers, 2);
        let (ok, stdout) = run_verify(data_dir.path());
        assert!(ok && stdout.contains("audit log intact"), "{stdout}");
    }

    /// The key the instance generated in its data directory.
    fn checkpoint_key(data_dir: &tempfile::TempDir) -> CheckpointKey {
        CheckpointKey::new(
            std::fs::read(data_dir.path().join("secrets/audit-checkpoint.key")).unwrap(),
        )
    }
}
