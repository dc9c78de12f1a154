//! The service skeleton: instance info, health, metrics, OpenAPI, error shape, request ids.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use crate::common::TestApp;

#[tokio::test]
async fn root_names_the_service_and_its_storage() {
    let app = TestApp::local().await;
    let response = app.get("/").await.assert_status(StatusCode::OK);
    let body = response.json();
    assert_eq!(body["name"], "trove");
    assert_eq!(body["storage"], "local");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn status_reports_storage_and_index_health() {
    let app = TestApp::local().await;
    let response = app.get("/status").await.assert_status(StatusCode::OK);
    let body = response.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["storage"]["ok"], true);
    assert_eq!(body["storage"]["kind"], "local");
    assert_eq!(body["index"]["ok"], true);
    assert!(body["index"]["schema_version"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn probes_answer_ok() {
    let app = TestApp::local().await;
    for path in ["/healthz", "/readyz"] {
        let response = app.get(path).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert_eq!(response.json()["status"], "ok");
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_storage_operations() {
    let app = TestApp::local().await;
    // `/metrics` is for admins (issue 12).
    let admin = app
        .user_token("root", trove::permissions::Role::Admin)
        .await;
    app.get("/status").await;
    app.get("/status").await;
    let text = app.get_as("/metrics", &admin).await.text();
    assert!(
        text.contains(r#"trove_http_requests_total{method="GET",route="/status",status="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains("trove_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(r#"trove_storage_operations_total{operation="check",outcome="ok"} 2"#),
        "{text}"
    );
    assert!(text.contains("trove_storage_up 1"), "{text}");
}

#[tokio::test]
async fn openapi_document_lists_the_routes_and_docs_page_is_served() {
    let app = TestApp::local().await;
    let response = app.get("/openapi.json").await.assert_status(StatusCode::OK);
    let document = response.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/", "/status", "/healthz", "/readyz", "/metrics"] {
        assert!(document["paths"][path].is_object(), "missing {path}");
    }
    let docs = app.get("/docs").await.assert_status(StatusCode::OK);
    assert!(docs.text().contains("<html"), "{}", docs.text());
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_the_error_shape() {
    let app = TestApp::local().await;
    let response = app
        .get("/no/such/route")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    assert_eq!(response.code(), "not_found");
    assert!(response.json()["reason"].is_string());

    let response = app
        .request(Method::DELETE, "/status", Body::empty())
        .await
        .assert_status(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.code(), "method_not_allowed");
}

#[tokio::test]
async fn request_ids_are_generated_or_propagated() {
    let app = TestApp::local().await;
    let response = app.get("/healthz").await;
    let generated = response.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 36, "a uuid: {generated}");

    let response = app
        .send(
            Request::builder()
                .uri("/healthz")
                .header("x-request-id", "client-chosen-id")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.headers["x-request-id"], "client-chosen-id");
}

#[tokio::test]
async fn presigned_storage_routes_refuse_unsigned_requests() {
    let app = TestApp::local().await;
    let response = app.get("/storage/some/key").await;
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        response.text()
    );
    assert_eq!(response.code(), "invalid_signature");
    app.request(Method::PUT, "/storage/some/key", Body::from("data"))
        .await
        .assert_status(StatusCode::FORBIDDEN);
    assert!(
        app.state
            .storage
            .head("some/key")
            .await
            .unwrap_err()
            .is_not_found(),
        "nothing written"
    );
}

#[tokio::test]
async fn a_real_tcp_server_serves_status() {
    let app = TestApp::spawn_local().await;
    let url = format!("{}/status", app.base_url.as_ref().unwrap());
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["storage"]["ok"], true);
}

async fn s3_app(
    server: &crate::common::s3_server::S3TestServer,
    data_dir: &std::path::Path,
) -> TestApp {
    TestApp::with_settings(crate::common::s3_settings(server, data_dir, "trove-app").await).await
}

#[tokio::test]
async fn storage_outage_answers_503_within_the_timeout_and_recovers_without_restart() {
    let mut server = crate::common::s3_server::S3TestServer::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let app = s3_app(&server, data_dir.path()).await;

    let response = app.get("/status").await.assert_status(StatusCode::OK);
    assert_eq!(response.json()["storage"]["kind"], "s3");
    assert_eq!(app.get("/").await.json()["storage"], "s3");

    server.stop().await;
    for path in ["/status", "/readyz"] {
        let started = std::time::Instant::now();
        let response = app.get(path).await;
        let elapsed = started.elapsed();
        assert_eq!(
            response.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            response.text()
        );
        assert_eq!(response.json()["code"], "storage_unavailable", "{path}");
        assert!(
            elapsed < std::time::Duration::from_millis(1500 + 1000),
            "{path} took {elapsed:?}"
        );
    }
    // Read through the metrics listener's router (TROVE_METRICS_LISTEN): on the main one
    // `/metrics` is for admins, and authenticating needs storage (issue 12).
    let metrics = tower::ServiceExt::oneshot(
        trove::api::system::metrics_router(app.state.clone()),
        Request::builder()
            .uri("/metrics")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let metrics = http_body_util::BodyExt::collect(metrics.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&metrics).contains("trove_storage_up 0"));
    // Storage-independent routes keep answering.
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);

    server.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let response = app.get("/status").await;
        if response.status == StatusCode::OK {
            assert_eq!(response.json()["storage"]["ok"], true);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not recover: {}",
            response.text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}

/// A replica started while storage is unreachable cannot tell whether its index is wider than
/// the stored profiles (a crash between a profile write and its re-index): reads wait —
/// `503 index_unavailable` — until the start-up reconciliation has succeeded, retried until
/// storage answers again, instead of serving that index.
#[tokio::test]
async fn reads_wait_until_the_start_up_reconciliation_reaches_storage() {
    let mut server = crate::common::s3_server::S3TestServer::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let app = s3_app(&server, data_dir.path()).await;
    assert_eq!(app.get("/search?q=x").await.status, StatusCode::OK);

    server.stop().await;
    let job = app.state.reconcile_in_background();
    let response = app.get("/search?q=x").await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.text()
    );
    assert_eq!(response.json()["code"], "index_unavailable");
    assert_eq!(
        app.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Still waiting after several failed attempts: nothing gave up and let reads through.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        app.get("/search?q=x").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    server.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let response = app.get("/search?q=x").await;
        if response.status == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reads never resumed: {}",
            response.text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    assert_eq!(
        app.state.jobs.get(&job).map(|job| job.status),
        Some(trove::jobs::JobStatus::Success)
    );
}

#[tokio::test]
async fn the_same_binary_serves_from_s3_with_the_documented_variables() {
    let server = crate::common::s3_server::S3TestServer::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let _bucket = s3_app(&server, data_dir.path()).await;
    let port = crate::common::free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_trove"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir.path().join("s3-replica"))
        .env("TROVE_STORAGE", "s3")
        .env("TROVE_S3_BUCKET", "trove-app")
        .env("TROVE_S3_ENDPOINT", server.endpoint())
        .env("TROVE_S3_REGION", "us-east-1")
        .env("TROVE_S3_PATH_STYLE", "true")
        .env("TROVE_S3_PREFIX", "replica/")
        .env("AWS_ACCESS_KEY_ID", crate::common::s3_server::ACCESS_KEY)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            crate::common::s3_server::SECRET_KEY,
        )
        .env_remove("TROVE_CONFIG")
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/status");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body: serde_json::Value = loop {
        if let Ok(response) = reqwest::get(&url).await {
            break response.json().await.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["storage"]["kind"], "s3");
    child.kill().await.unwrap();
}
