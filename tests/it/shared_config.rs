//! Configuration replicas share (issue 16): the scroll-cursor key (`TROVE_CURSOR_SECRET`) and
//! the web interface's CSRF key (`TROVE_UI_SECRET`, else derived from `TROVE_JWT_SECRET`), so
//! any replica accepts what another made; and presigned S3 URLs signed for a public endpoint
//! (`TROVE_S3_PUBLIC_ENDPOINT`) while the server itself talks to `TROVE_S3_ENDPOINT`.
//!
//! "Replicas" here are separate `App`s with their own data directories (their own index and
//! generated secrets): on the S3 backend on one bucket of one in-process S3 server, as in a
//! real deployment; on the local backend each on its own directory, seeded identically.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use trove::config::{Overrides, Secret, Settings};
use trove::permissions::Role;

use crate::both_backends;
use crate::common::artifacts::{
    complete, create_project, create_version, enc, md5_b64, upload, wait_job,
};
use crate::common::s3_server::S3TestServer;
use crate::common::{Backend, TestApp, TestResponse, hidden_value, local_settings, s3_settings};

const SHARED_SECRET: &str = "shared-replica-secret-0123456789-abcdef";
const OTHER_SECRET: &str = "another-replica-secret-0123456789-abcd";
const PASSWORD: &str = "password-of-tests";

/// Two instances with their own data directories, on one bucket (S3) or on identical
/// local storages.
struct Replicas {
    a: TestApp,
    b: TestApp,
    backend: Backend,
    _s3: Option<S3TestServer>,
    _dirs: [tempfile::TempDir; 2],
}

impl Replicas {
    async fn start(
        backend: Backend,
        configure_a: impl FnOnce(&mut Settings),
        configure_b: impl FnOnce(&mut Settings),
    ) -> Self {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let s3 = match backend {
            Backend::Local => None,
            Backend::S3 => Some(S3TestServer::start().await),
        };
        let mut settings = Vec::new();
        for dir in &dirs {
            let mut one = match &s3 {
                Some(server) => s3_settings(server, dir.path(), "replicas").await,
                None => local_settings(dir.path().to_path_buf()),
            };
            one.sync_cron = String::new();
            one.purge_cron = String::new();
            settings.push(one);
        }
        let mut settings_b = settings.pop().unwrap();
        let mut settings_a = settings.pop().unwrap();
        configure_a(&mut settings_a);
        configure_b(&mut settings_b);
        settings_a.validate().unwrap();
        settings_b.validate().unwrap();
        Self {
            a: TestApp::with_settings(settings_a).await,
            b: TestApp::with_settings(settings_b).await,
            backend,
            _s3: s3,
            _dirs: dirs,
        }
    }

    /// The instances whose storage is their own (both on local storage, the first on S3).
    fn storage_owners(&self) -> Vec<&TestApp> {
        match self.backend {
            Backend::Local => vec![&self.a, &self.b],
            Backend::S3 => vec![&self.a],
        }
    }

    /// Creates account `olive` and a project of five versions of one metadata document where
    /// each replica reads them (on S3 the second replica indexes what the first wrote);
    /// answers olive's token on each replica.
    async fn seed(&self) -> (String, String) {
        for app in self.storage_owners() {
            let olive = app.user_token("olive", Role::Maintainer).await;
            create_project(app, &olive, "pages", "private").await;
            for number in 1..=5 {
                let version = format!("v{number}");
                create_version(app, &olive, "pages", &version).await;
                let document = json!({"path": "doc.json", "title": "paged"});
                upload(
                    app,
                    Some(&olive),
                    "pages",
                    &version,
                    "doc.json",
                    document.to_string().as_bytes(),
                )
                .await
                .assert_status(StatusCode::CREATED);
                complete(app, &olive, "pages", &version, None).await;
            }
        }
        if self.backend == Backend::S3 {
            self.b.index_all().await;
        }
        (
            self.a.login("olive", PASSWORD).await,
            self.b.login("olive", PASSWORD).await,
        )
    }
}

fn hit_ids(page: &TestResponse) -> Vec<String> {
    page.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["_extra"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Page 1 of a search on `replicas.a`: its ids and the `next` path.
async fn first_page(replicas: &Replicas, token: &str) -> (Vec<String>, String) {
    let first = replicas
        .a
        .get_as("/search?q=title:paged&size=2&sort=_extra.version", token)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(first.json()["total"], 5, "{}", first.text());
    let next = first.json()["next"].as_str().unwrap().to_owned();
    (hit_ids(&first), next)
}

/// What a replica answers to a cursor made with another key, and to a tampered cursor.
async fn assert_refused_like_a_tampered_cursor(app: &TestApp, token: &str, next: &str) {
    let foreign = app.get_as(next, token).await;
    // Flip one character of the signature: a cursor this replica could have made, tampered.
    let mut tampered = next.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = app.get_as(&tampered, token).await;
    assert_eq!(
        tampered.status,
        StatusCode::BAD_REQUEST,
        "{}",
        tampered.text()
    );
    assert_eq!(foreign.status, tampered.status, "{}", foreign.text());
    assert_eq!(foreign.code(), tampered.code());
    assert_eq!(foreign.code(), "invalid_cursor");
}

async fn replicas_sharing_the_cursor_secret_serve_each_others_cursors(backend: Backend) {
    let shared = |settings: &mut Settings| {
        settings.cursor_secret = Some(Secret::new(SHARED_SECRET));
    };
    let replicas = Replicas::start(backend, shared, shared).await;
    let (olive_a, olive_b) = replicas.seed().await;
    let (page_one, next) = first_page(&replicas, &olive_a).await;
    assert_eq!(page_one, ["pages:doc.json@v1", "pages:doc.json@v2"]);
    assert!(next.starts_with("/scroll/"), "{next}");
    let on_b = replicas
        .b
        .get_as(&next, &olive_b)
        .await
        .assert_status(StatusCode::OK);
    let on_a = replicas.a.get_as(&next, &olive_a).await;
    assert_eq!(hit_ids(&on_b), hit_ids(&on_a), "B serves A's page 2");
    assert_eq!(hit_ids(&on_b), ["pages:doc.json@v3", "pages:doc.json@v4"]);
    // And B's own next cursor works on A in turn.
    let next_of_b = on_b.json()["next"].as_str().unwrap().to_owned();
    let back_on_a = replicas
        .a
        .get_as(&next_of_b, &olive_a)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(hit_ids(&back_on_a), vec!["pages:doc.json@v5".to_owned()]);
}
both_backends!(replicas_sharing_the_cursor_secret_serve_each_others_cursors);

async fn replicas_with_other_cursor_keys_refuse_each_others_cursors(backend: Backend) {
    // Different configured secrets.
    let replicas = Replicas::start(
        backend,
        |settings| settings.cursor_secret = Some(Secret::new(SHARED_SECRET)),
        |settings| settings.cursor_secret = Some(Secret::new(OTHER_SECRET)),
    )
    .await;
    let (olive_a, olive_b) = replicas.seed().await;
    let (_, next) = first_page(&replicas, &olive_a).await;
    assert_refused_like_a_tampered_cursor(&replicas.b, &olive_b, &next).await;
    // Nothing configured: each data directory generates its own key (one process).
    let replicas = Replicas::start(backend, |_| {}, |_| {}).await;
    let (olive_a, olive_b) = replicas.seed().await;
    let (_, next) = first_page(&replicas, &olive_a).await;
    assert_refused_like_a_tampered_cursor(&replicas.b, &olive_b, &next).await;
}
both_backends!(replicas_with_other_cursor_keys_refuse_each_others_cursors);

// ------------------------------------------------------------------------------ web interface

/// Gets the sign-in form from `form_from` and posts it, with its pre-login cookie, to
/// `post_to`: the status of the answer (`303` signed in, `403` the form's token refused).
async fn sign_in_across(form_from: &TestApp, post_to: &TestApp) -> StatusCode {
    let form = form_from
        .send(
            Request::builder()
                .uri("/ui/login")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .assert_status(StatusCode::OK);
    let cookie = form
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .find(|value| value.starts_with("trove_login="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = hidden_value(&form.text(), "csrf");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("username", "olive")
        .append_pair("password", PASSWORD)
        .append_pair("csrf", &csrf)
        .finish();
    let answer = post_to
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/ui/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", cookie)
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    answer.status
}

async fn ui_forms_work_across_replicas_sharing_the_ui_or_token_secret(backend: Backend) {
    type Configure = fn(&mut Settings);
    let cases: [(&str, Configure, Configure, StatusCode); 4] = [
        (
            "same TROVE_UI_SECRET",
            |settings| settings.ui_secret = Some(Secret::new(SHARED_SECRET)),
            |settings| settings.ui_secret = Some(Secret::new(SHARED_SECRET)),
            StatusCode::SEE_OTHER,
        ),
        (
            "no TROVE_UI_SECRET, same TROVE_JWT_SECRET",
            |settings| settings.auth.jwt_secret = Some(Secret::new(SHARED_SECRET)),
            |settings| settings.auth.jwt_secret = Some(Secret::new(SHARED_SECRET)),
            StatusCode::SEE_OTHER,
        ),
        (
            "other TROVE_UI_SECRETs, same TROVE_JWT_SECRET",
            |settings| {
                settings.ui_secret = Some(Secret::new(SHARED_SECRET));
                settings.auth.jwt_secret = Some(Secret::new(SHARED_SECRET));
            },
            |settings| {
                settings.ui_secret = Some(Secret::new(OTHER_SECRET));
                settings.auth.jwt_secret = Some(Secret::new(SHARED_SECRET));
            },
            StatusCode::FORBIDDEN,
        ),
        ("nothing configured", |_| {}, |_| {}, StatusCode::FORBIDDEN),
    ];
    for (case, configure_a, configure_b, expected) in cases {
        let replicas = Replicas::start(backend, configure_a, configure_b).await;
        for app in replicas.storage_owners() {
            app.user_token("olive", Role::Maintainer).await;
        }
        // Each replica accepts its own form in every case.
        assert_eq!(
            sign_in_across(&replicas.a, &replicas.a).await,
            StatusCode::SEE_OTHER,
            "{case}"
        );
        assert_eq!(
            sign_in_across(&replicas.a, &replicas.b).await,
            expected,
            "{case}: A's form posted to B"
        );
        assert_eq!(
            sign_in_across(&replicas.b, &replicas.a).await,
            expected,
            "{case}: B's form posted to A"
        );
    }
}
both_backends!(ui_forms_work_across_replicas_sharing_the_ui_or_token_secret);

#[tokio::test]
async fn cursor_and_ui_secrets_are_read_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let cursor_file = dir.path().join("cursor.key");
    let ui_file = dir.path().join("ui.key");
    std::fs::write(&cursor_file, format!("{SHARED_SECRET}\n")).unwrap();
    std::fs::write(&ui_file, format!("{OTHER_SECRET}\n")).unwrap();
    let env: BTreeMap<String, String> = [
        (
            "TROVE_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        (
            "TROVE_CURSOR_SECRET_FILE",
            cursor_file.display().to_string(),
        ),
        ("TROVE_UI_SECRET_FILE", ui_file.display().to_string()),
        ("TROVE_SYNC_CRON", String::new()),
        ("TROVE_PURGE_CRON", String::new()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    let settings = Settings::load(None, &env, &Overrides::default()).unwrap();
    assert_eq!(
        settings.cursor_secret.as_ref().map(Secret::expose),
        Some(SHARED_SECRET),
        "the trailing newline is not part of the secret"
    );
    assert_eq!(
        settings.ui_secret.as_ref().map(Secret::expose),
        Some(OTHER_SECRET)
    );
    assert!(!settings.to_masked_toml().contains(SHARED_SECRET));
    assert!(!format!("{settings:?}").contains(OTHER_SECRET));
    // The app signs cursors with it: a codec with the same key reads them.
    let app = TestApp::with_settings(settings).await;
    let codec = trove::index::cursor::CursorCodec::new(SHARED_SECRET.as_bytes().to_vec());
    let state = trove::index::cursor::CursorState {
        q: "*".to_owned(),
        kind: "file".to_owned(),
        sort: None,
        fields: None,
        size: 1,
        offset: 1,
        latest: false,
        project: None,
        version: None,
        prefix: false,
        highlight: false,
        exp: 0,
    };
    let now = chrono::Utc::now();
    assert!(
        app.state
            .cursors
            .decode(&codec.encode(state, now), now)
            .is_ok()
    );
    // No generated key was written where a configured one is used.
    assert!(!dir.path().join("data/secrets/cursor.key").exists());
    assert!(!dir.path().join("data/secrets/ui-csrf.key").exists());
    // A short secret in a file is refused, naming the setting.
    std::fs::write(&cursor_file, "short\n").unwrap();
    let error = Settings::load(None, &env, &Overrides::default()).unwrap_err();
    assert_eq!(error.setting, "TROVE_CURSOR_SECRET");
}

// ------------------------------------------------------------------------- public S3 endpoint

/// A TCP forwarder to `target` on another port of 127.0.0.1 — a second address reaching the
/// same S3 server, as `127.0.0.1:9000` reaches the `minio:9000` of a compose network — that
/// counts the connections it carried.
struct Forwarder {
    address: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self {
            address,
            connections,
            task,
        }
    }

    fn carried(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn authority(url: &str) -> String {
    let parsed = url::Url::parse(url).unwrap();
    format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port_or_known_default().unwrap()
    )
}

/// Download: the 302 names the public endpoint, and a plain HTTP client fetches it there; the URL
/// was signed for that host. Answers the client (a new connection per request).
async fn step_downloads_redirect_to_the_public_endpoint(
    app: &TestApp,
    alice: &str,
    forwarder: &Forwarder,
    private_authority: &str,
    body: &[u8],
) -> reqwest::Client {
    // Download: the 302 names the public endpoint, and a plain HTTP client fetches it there.
    let redirect = app
        .get_as(
            &format!("/files/{}?expires_in=60", enc("pub:model.bin@v1")),
            alice,
        )
        .await
        .assert_status(StatusCode::FOUND);
    let location = redirect.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(
        authority(&location),
        forwarder.address.to_string(),
        "{location}"
    );
    assert_eq!(
        forwarder.carried(),
        0,
        "the server itself never goes through the public endpoint"
    );
    // A new connection per request, so the forwarder counts each one.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let fetched = client.get(&location).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), body);
    assert!(forwarder.carried() >= 1);
    // Signed for that host: the same URL sent to the private address is refused, so the URL
    // was signed for the public endpoint, not rewritten after signing.
    let moved = location.replacen(&forwarder.address.to_string(), private_authority, 1);
    let refused = client.get(&moved).send().await.unwrap();
    assert_eq!(refused.status(), 403, "{moved}");
    client
}

/// ArtifactDB upload URLs: signed for the public endpoint, usable there.
async fn step_presigned_uploads_go_through_the_public_endpoint(
    app: &TestApp,
    alice: &str,
    forwarder: &Forwarder,
    client: &reqwest::Client,
) {
    // ArtifactDB upload URLs: signed for the public endpoint, usable there.
    let data = b"a presigned upload from outside".to_vec();
    let started = app
        .post_json(
            "/projects/pub/version/v2/upload",
            alice,
            &json!({"filenames": ["data.bin"], "mode": "s3-presigned-url"}),
        )
        .await
        .assert_status(StatusCode::OK);
    let url = started.json()["presigned_urls"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(authority(&url), forwarder.address.to_string(), "{url}");
    let carried_before = forwarder.carried();
    let put = client
        .put(&url)
        .header("content-md5", md5_b64(&data))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    assert!(forwarder.carried() > carried_before);
    let completed = app
        .bearer(
            Method::PUT,
            "/projects/pub/version/v2/complete",
            alice,
            None,
        )
        .await;
    wait_job(app, alice, &completed).await;
    let streamed = app
        .get_as(
            &format!("/files/{}?redirect=false", enc("pub:data.bin@v2")),
            alice,
        )
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(streamed.bytes, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_are_signed_for_the_public_s3_endpoint() {
    let server = S3TestServer::start().await;
    let private_endpoint = server.endpoint();
    let private_authority = authority(&private_endpoint);
    let forwarder = Forwarder::start(private_authority.parse().unwrap()).await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = s3_settings(&server, data_dir.path(), "public-endpoint").await;
    settings.sync_cron = String::new();
    settings.purge_cron = String::new();
    settings.s3.public_endpoint = Some(format!("http://{}", forwarder.address));
    settings.validate().unwrap();
    let app = TestApp::with_settings(settings).await;

    let alice = app.user_token("alice", Role::Maintainer).await;
    create_project(&app, &alice, "pub", "private").await;
    create_version(&app, &alice, "pub", "v1").await;
    let body = b"weights behind a public endpoint".to_vec();
    upload(&app, Some(&alice), "pub", "v1", "model.bin", &body)
        .await
        .assert_status(StatusCode::CREATED);
    complete(&app, &alice, "pub", "v1", None).await;

    let client = step_downloads_redirect_to_the_public_endpoint(
        &app,
        &alice,
        &forwarder,
        &private_authority,
        &body,
    )
    .await;

    step_presigned_uploads_go_through_the_public_endpoint(&app, &alice, &forwarder, &client).await;

    // With the public endpoint unreachable, the server still works (it talks to its own
    // endpoint); only the URLs it hands out point elsewhere.
    // (Polled with a deadline: a loaded machine may exceed the 1.5 s storage timeout once.)
    drop(forwarder);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let status = app.get("/status").await;
        if status.status == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "storage unreachable without the public endpoint: {}",
            status.text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
