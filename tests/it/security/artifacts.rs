//! Attacks on artifacts: presigned upload URLs that outlive their upload or their signer,
//! uploads landing in a version sealed meanwhile, oversized metadata documents, path clashes,
//! `field:*`, and what callers learn about what they cannot see.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use trove::permissions::Role;

use crate::both_backends;
use crate::common::artifacts::*;
use crate::common::{Backend, BackendApp, TestApp};

/// Starts an ArtifactDB upload and answers its JSON.
async fn start_upload(
    app: &TestApp,
    token: &str,
    project: &str,
    version: &str,
    body: &Value,
) -> Value {
    let answer = app
        .post_json(
            &format!("/projects/{project}/version/{version}/upload"),
            token,
            body,
        )
        .await
        .assert_status(StatusCode::OK);
    answer.json()
}

/// PUTs `body` to a presigned URL and answers the status.
async fn put_url(url: &str, body: &[u8]) -> u16 {
    reqwest::Client::new()
        .put(url)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The lifetime a presigned URL announces, in seconds from now.
fn url_lifetime(url: &str) -> i64 {
    let url = url::Url::parse(url).unwrap();
    let pairs: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    if let Some(expires) = pairs.get("X-Trove-Expires") {
        return expires.parse::<i64>().unwrap() - chrono::Utc::now().timestamp();
    }
    pairs
        .get("X-Amz-Expires")
        .expect("an expiry in the url")
        .parse()
        .unwrap()
}

/// The version record as stored (with what answers leave out).
async fn stored_version_record(app: &TestApp, project: &str, version: &str) -> Value {
    use trove::storage::ObjectStoreExt as _;
    let (record, _) = app
        .state
        .storage
        .get_bytes(&trove::storage::keys::version_record(project, version))
        .await
        .unwrap();
    serde_json::from_slice(&record).unwrap()
}

async fn download(app: &TestApp, token: &str, id: &str) -> Vec<u8> {
    let response = app
        .get_as(&format!("/files/{}?redirect=false", enc(id)), token)
        .await
        .assert_status(StatusCode::OK);
    response.bytes
}

async fn listed_md5(app: &TestApp, token: &str, project: &str, version: &str, path: &str) -> Value {
    let listing = app
        .get_as(
            &format!("/projects/{project}/version/{version}/files"),
            token,
        )
        .await
        .json();
    listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["path"] == path)
        .map(|file| file["md5sum"].clone())
        .unwrap_or(Value::Null)
}

/// Point 3: a writer asks for a far `completed_by`, is removed, the version is completed and
/// marked stable — the old URL must not overwrite the stable file.
async fn a_removed_writers_old_presigned_url_overwrites_a_stable_file(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Developer).await;
    create_project(&app, &alice, "p", "private").await;
    let granted = app
        .put_json("/projects/p/permissions", &alice, &json!({"writers": ["bob"], "viewers": ["bob"], "write_access": "writers", "read_access": "viewers"}))
        .await;
    wait_job(&app, &alice, &granted).await;
    let upload = start_upload(
        &app,
        &bob,
        "p",
        "v1",
        &json!({"filenames": ["model.bin"], "completed_by": "in 6 days"}),
    )
    .await;
    let url = upload["presigned_urls"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    // Capped at one hour, whatever `completed_by` says.
    let lifetime = url_lifetime(&url);
    assert!(lifetime <= 3600 && lifetime > 3500, "{lifetime}");
    assert_eq!(put_url(&url, b"the real weights").await, 200);

    grant_nobody(&app, &alice, "p").await;
    complete(&app, &alice, "p", "v1", None).await;
    app.patch_json("/projects/p/version/v1", &alice, &json!({"stable": true}))
        .await
        .assert_status(StatusCode::OK);

    let status = put_url(&url, b"poisoned weights").await;
    if backend == Backend::Local {
        // Checked at use: the upload is over.
        assert_eq!(status, 409);
    }
    // On S3 the bucket takes the bytes, but only into a staging area nothing reads.
    assert_eq!(
        download(&app, &alice, "p:model.bin@v1").await,
        b"the real weights"
    );
    assert_eq!(
        listed_md5(&app, &alice, "p", "v1", "model.bin").await,
        json!(md5_hex(b"the real weights"))
    );
}
both_backends!(a_removed_writers_old_presigned_url_overwrites_a_stable_file);

/// Point 3, use-time checks of the local backend's URLs: a signer removed while the upload is
/// open, and a URL of an aborted upload used on a new upload of the same version name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_are_checked_when_used_not_only_when_made() {
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Developer).await;
    create_project(&app, &alice, "p", "private").await;
    let granted = app
        .put_json("/projects/p/permissions", &alice, &json!({"writers": ["bob"], "viewers": ["bob"], "write_access": "writers", "read_access": "viewers"}))
        .await;
    wait_job(&app, &alice, &granted).await;
    let upload = start_upload(&app, &bob, "p", "v1", &json!({"filenames": ["a.bin"]})).await;
    let url = upload["presigned_urls"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    grant_nobody(&app, &alice, "p").await;
    assert_eq!(put_url(&url, b"late").await, 403);

    // An aborted upload's URL does not fill a new upload of the same version name.
    let first = start_upload(&app, &alice, "p", "v2", &json!({"filenames": ["a.bin"]})).await;
    let old_url = first["presigned_urls"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    app.bearer(Method::PUT, "/projects/p/version/v2/abort", &alice, None)
        .await
        .assert_status(StatusCode::OK);
    start_upload(&app, &alice, "p", "v2", &json!({"filenames": ["a.bin"]})).await;
    assert_eq!(put_url(&old_url, b"from the old upload").await, 409);
    let completion = app
        .bearer(Method::PUT, "/projects/p/version/v2/complete", &alice, None)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(completion.code(), "missing_files");

    // A URL's lifetime never passes `completed_by`.
    let short = start_upload(
        &app,
        &alice,
        "p",
        "v3",
        &json!({"filenames": ["a.bin"], "completed_by": "in 5 minutes"}),
    )
    .await;
    let lifetime = url_lifetime(short["presigned_urls"][0]["url"].as_str().unwrap());
    assert!(lifetime <= 300, "{lifetime}");
}

/// An upload started with an API key: its presigned URLs are checked against that very key
/// when used — disabled, deleted, or its creator no longer allowed, and the URLs stop working
/// (they used to skip the signer check: the key was not recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_keys_upload_urls_stop_when_the_key_does() {
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let admin = app.user_token("root", Role::Admin).await;
    create_project(&app, &alice, "p", "private").await;
    let created = app
        .post_json(
            "/api-keys",
            &alice,
            &json!({"name": "ci-bot", "scopes": [{"project": "p", "access": "write"}]}),
        )
        .await
        .assert_status(StatusCode::CREATED)
        .json();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let files = ["a.bin", "b.bin", "c.bin", "d.bin"];
    let upload = start_upload(&app, &key, "p", "v1", &json!({"filenames": files})).await;
    let url = |path: &str| {
        upload["presigned_urls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["filename"] == path)
            .and_then(|entry| entry["url"].as_str())
            .unwrap_or_else(|| panic!("no url for {path}: {upload}"))
            .to_owned()
    };
    let record = stored_version_record(&app, "p", "v1").await;
    assert_eq!(record["created_by"], "machine:ci-bot");
    assert_eq!(record["upload_key"], json!(id));
    let answered = app
        .get_as("/projects/p/version/v1", &alice)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(answered.json()["created_by"], "machine:ci-bot");
    assert!(!answered.text().contains(&id), "{}", answered.text());

    assert_eq!(put_url(&url("a.bin"), b"a").await, 200);
    let key_path = format!("/api-keys/{id}");
    app.patch_json(&key_path, &alice, &json!({"disabled": true}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(put_url(&url("b.bin"), b"b").await, 403, "a disabled key");
    app.patch_json(&key_path, &alice, &json!({"disabled": false}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(put_url(&url("b.bin"), b"b").await, 200);
    // The key never does more than its creator may now.
    app.patch_json("/users/alice", &admin, &json!({"role": "guest"}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(put_url(&url("c.bin"), b"c").await, 403, "a demoted creator");
    app.patch_json("/users/alice", &admin, &json!({"role": "maintainer"}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(put_url(&url("c.bin"), b"c").await, 200);
    let alice = app.login("alice", "password-of-tests").await;
    app.delete_as(&key_path, &alice)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(put_url(&url("d.bin"), b"d").await, 403, "a deleted key");
    let keys = storage_keys(&app, "p/v1/").await;
    assert!(!keys.iter().any(|key| key.contains("d.bin")), "{keys:?}");
}

/// An upload's URLs belong to the account that started it, not to its name: deleted, the
/// name freed and taken by a new account that is granted the same rights, and the old URL
/// still refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_url_outlives_its_account_but_not_into_a_new_account_of_the_name() {
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let root = app.user_token("root", Role::Admin).await;
    let bob = app.user_token("bob", Role::Developer).await;
    create_project(&app, &alice, "p", "private").await;
    let writers = json!({"writers": ["bob"], "viewers": ["bob"], "write_access": "writers", "read_access": "viewers"});
    let granted = app
        .put_json("/projects/p/permissions", &alice, &writers)
        .await;
    wait_job(&app, &alice, &granted).await;
    let upload = start_upload(
        &app,
        &bob,
        "p",
        "v1",
        &json!({"filenames": ["a.bin", "b.bin"]}),
    )
    .await;
    let url = |index: usize| {
        upload["presigned_urls"][index]["url"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(put_url(&url(0), b"a").await, 200);
    let answered = app.get_as("/projects/p/version/v1", &alice).await;
    assert_eq!(answered.json()["created_by"], "bob");
    assert!(
        answered.json().get("upload_account").is_none(),
        "{}",
        answered.text()
    );

    app.delete_as("/users/bob", &root)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(put_url(&url(1), b"b").await, 403, "a deleted account");
    app.bearer(Method::POST, "/users/bob/free", &root, None)
        .await
        .assert_status(StatusCode::OK);
    app.user_token("bob", Role::Developer).await;
    let granted = app
        .put_json("/projects/p/permissions", &alice, &writers)
        .await;
    wait_job(&app, &alice, &granted).await;
    assert_eq!(
        put_url(&url(1), b"b").await,
        403,
        "a new account of the same name"
    );
    let keys = storage_keys(&app, "p/v1/").await;
    assert!(!keys.iter().any(|key| key.contains("b.bin")), "{keys:?}");
}

/// A presigned URL used after its upload is over: local storage refuses it, S3 cannot (it
/// only checks the signature) and writes into the upload's staging area, which nothing reads.
/// The scheduled purge removes what lands there until the upload's URLs have all expired, and
/// never touches an upload still going on.
async fn what_a_url_writes_after_its_upload_ended_is_removed(backend: Backend) {
    use trove::storage::ObjectStoreExt as _;
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    create_project(&app, &alice, "p", "private").await;
    let done = start_upload(&app, &alice, "p", "v1", &json!({"filenames": ["a.bin"]})).await;
    let url = done["presigned_urls"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(put_url(&url, b"a").await, 200);
    complete(&app, &alice, "p", "v1", None).await;
    let late = put_url(&url, b"written after the completion").await;
    let record = stored_version_record(&app, "p", "v1").await;
    let upload_id = record["upload_id"].as_str().unwrap().to_owned();
    match backend {
        Backend::Local => {
            assert_eq!(late, 409);
            // What a late S3 PUT leaves, written here.
            app.state
                .storage
                .put_bytes(
                    &trove::storage::keys::upload_staging("p", "v1", &upload_id, "a.bin"),
                    bytes::Bytes::from_static(b"written after the completion"),
                    Default::default(),
                )
                .await
                .unwrap();
        }
        Backend::S3 => assert_eq!(late, 200, "S3 takes it"),
    }
    let staged_v1 = "p/v1/..meta/staging/";
    assert_eq!(storage_keys(&app, staged_v1).await.len(), 1);
    // An upload going on keeps its staged files.
    let going = start_upload(&app, &alice, "p", "v2", &json!({"filenames": ["b.bin"]})).await;
    let going_url = going["presigned_urls"][0]["url"].as_str().unwrap();
    assert_eq!(put_url(going_url, b"b").await, 200);

    // A record that cannot be read holds up nothing else.
    let sweeps = trove::storage::keys::staging_sweeps_prefix();
    app.state
        .storage
        .put_bytes(
            &format!("{sweeps}unreadable.json"),
            bytes::Bytes::from_static(b"not json"),
            Default::default(),
        )
        .await
        .unwrap();

    let now = chrono::Utc::now();
    let report = trove::api::uploads::purge_expired(&app.state, now)
        .await
        .unwrap();
    assert_eq!(report.staged_orphans, 1);
    assert_eq!(storage_keys(&app, staged_v1).await, Vec::<String>::new());
    assert_eq!(storage_keys(&app, "p/v2/..meta/staging/").await.len(), 1);
    assert_eq!(storage_keys(&app, &sweeps).await.len(), 3, "URLs alive");
    // Once the URLs have expired, the ended upload's record goes; the other one stays.
    let later = now + chrono::Duration::hours(2);
    let report = trove::api::uploads::purge_expired(&app.state, later)
        .await
        .unwrap();
    assert_eq!(report.staged_orphans, 0);
    assert_eq!(storage_keys(&app, &sweeps).await.len(), 2);
    complete(&app, &alice, "p", "v2", None).await;
    assert_eq!(download(&app, &alice, "p:b.bin@v2").await, b"b");
    assert_eq!(download(&app, &alice, "p:a.bin@v1").await, b"a");
}
both_backends!(what_a_url_writes_after_its_upload_ended_is_removed);

/// Point 4: a direct upload still streaming while the version is completed and marked
/// stable must fail with `409` and leave nothing behind — neither a new file nor an
/// overwritten one.
async fn an_upload_streaming_while_the_version_is_sealed_lands_in_it(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    create_project(&app, &alice, "p", "private").await;
    create_version(&app, &alice, "p", "v1").await;
    let original = b"original weights".to_vec();
    upload(&app, Some(&alice), "p", "v1", "weights.bin", &original)
        .await
        .assert_status(StatusCode::CREATED);

    for path in ["weights.bin", "late.bin"] {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
        let request = Request::builder()
            .method(Method::PUT)
            .uri(format!("/projects/p/version/v1/files/{path}"))
            .header("authorization", format!("Bearer {alice}"))
            .body(Body::from_stream(tokio_stream_of(receiver)))
            .unwrap();
        let router = app.router.clone();
        let pending = tokio::spawn(async move { crate::common::send_to(router, request).await });
        let _ = sender.send(Ok(b"poisoned ".to_vec())).await;
        if path == "weights.bin" {
            // The server is reading the body (it passed the checks at the start): seal now.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while sender.capacity() < sender.max_capacity() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the body is never read"
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            complete(&app, &alice, "p", "v1", None).await;
            app.patch_json("/projects/p/version/v1", &alice, &json!({"stable": true}))
                .await
                .assert_status(StatusCode::OK);
        }
        // For `late.bin` the version is already sealed: the server may refuse the request
        // before reading the body, so the rest may find nobody listening.
        let _ = sender.send(Ok(b"bytes".to_vec())).await;
        drop(sender);
        let answer = pending.await.unwrap();
        assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    }
    assert_eq!(download(&app, &alice, "p:weights.bin@v1").await, original);
    let keys = storage_keys(&app, "p/v1/").await;
    assert!(!keys.iter().any(|key| key.contains("late.bin")), "{keys:?}");
    assert!(
        !keys.iter().any(|key| key.contains("/staging/")),
        "{keys:?}"
    );
    assert_eq!(
        listed_md5(&app, &alice, "p", "v1", "weights.bin").await,
        json!(md5_hex(&original))
    );
}
both_backends!(an_upload_streaming_while_the_version_is_sealed_lands_in_it);

fn tokio_stream_of(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    futures::stream::poll_fn(move |context| receiver.poll_recv(context))
}

/// Point 5: a metadata document over the cap through a presigned PUT never reaches the
/// indexer, and one put in storage behind Trove's back is indexed as a plain file with an
/// `oversized` anomaly, never parsed.
async fn an_oversized_metadata_document_through_a_presigned_put_exhausts_memory(backend: Backend) {
    let app = BackendApp::start_with(backend, |settings| settings.max_json_bytes = 4096).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let upload = start_upload(&app, &alice, "p", "v1", &json!({"filenames": ["big.json"]})).await;
    let url = upload["presigned_urls"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(10_000));
    let status = put_url(&url, big.as_bytes()).await;
    if backend == Backend::Local {
        assert_eq!(status, 413);
    }
    let completion = app
        .bearer(Method::PUT, "/projects/p/version/v1/complete", &alice, None)
        .await;
    assert!(completion.status.is_client_error(), "{}", completion.text());
    if backend == Backend::S3 {
        assert_eq!(completion.code(), "payload_too_large");
    }

    // Written behind Trove's back into a completed version: indexed as a file, flagged.
    create_version(&app, &alice, "p", "v2").await;
    let small = upload_json(
        &app,
        &alice,
        "p",
        "v2",
        "small.json",
        &json!({"title": "ok"}),
    )
    .await;
    assert_eq!(small, StatusCode::CREATED);
    complete(&app, &alice, "p", "v2", None).await;
    use trove::storage::ObjectStoreExt as _;
    app.state
        .storage
        .put_bytes(
            &trove::storage::keys::version_file("p", "v2", "huge.json"),
            bytes::Bytes::from(big.clone()),
            trove::storage::PutOptions::default(),
        )
        .await
        .unwrap();
    app.state.indexer.index_version("p", "v2").await.unwrap();
    let info = app
        .get_as("/projects/p/version/v2/info", &alice)
        .await
        .json();
    let anomalies = info["anomalies"].to_string();
    assert!(anomalies.contains("p:huge.json@v2: oversized"), "{info}");
    // Not parsed: its content is not searchable, but the file is.
    let found = app.get_as("/search?q=pad:*", &alice).await.json();
    assert_eq!(found["results"].as_array().unwrap().len(), 0, "{found}");
    let found = app
        .get_as("/search?q=_extra.oversized:true", &alice)
        .await
        .json();
    assert_eq!(
        found["results"][0]["_extra"]["id"], "p:huge.json@v2",
        "{found}"
    );
}
both_backends!(an_oversized_metadata_document_through_a_presigned_put_exhausts_memory);

async fn upload_json(
    app: &TestApp,
    token: &str,
    project: &str,
    version: &str,
    path: &str,
    body: &Value,
) -> StatusCode {
    upload(
        app,
        Some(token),
        project,
        version,
        path,
        body.to_string().as_bytes(),
    )
    .await
    .status
}

/// Point 9: path clashes inside a version and `field:*` answered `500`.
async fn path_clashes_and_existence_queries_answer_500(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    create_project(&app, &alice, "p", "private").await;
    create_version(&app, &alice, "p", "v1").await;
    assert_eq!(
        upload(&app, Some(&alice), "p", "v1", "x", b"x")
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        upload(&app, Some(&alice), "p", "v1", "d/b", b"b")
            .await
            .status,
        StatusCode::CREATED
    );
    for path in ["x/y", "d"] {
        let clash = upload(&app, Some(&alice), "p", "v1", path, b"clash").await;
        assert_eq!(
            clash.status,
            StatusCode::CONFLICT,
            "{path}: {}",
            clash.text()
        );
        assert_eq!(clash.code(), "path_conflict");
    }
    let announced = app
        .post_json(
            "/projects/p/version/v2/upload",
            &alice,
            &json!({"filenames": ["m", "m/n"]}),
        )
        .await;
    assert_eq!(announced.code(), "path_conflict");
    assert!(storage_keys(&app, "p/v2/").await.is_empty());
    // Nothing was lost: the original files are intact and nothing is staged.
    let keys = storage_keys(&app, "p/v1/").await;
    assert!(
        !keys.iter().any(|key| key.contains("/staging/")),
        "{keys:?}"
    );

    assert_eq!(
        upload_json(
            &app,
            &alice,
            "p",
            "v1",
            "meta.json",
            &json!({"title": "BERT", "training": {"dataset": "imagenet"}})
        )
        .await,
        StatusCode::CREATED
    );
    complete(&app, &alice, "p", "v1", None).await;
    for (query, expected) in [
        ("title:*", vec!["p:meta.json@v1"]),
        ("training.dataset:*", vec!["p:meta.json@v1"]),
        ("nothing_here:*", vec![]),
        ("title:* AND NOT training:*", vec![]),
    ] {
        let response = app
            .get_as(&format!("/search?q={}", enc(query)), &alice)
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{query}: {}",
            response.text()
        );
        let ids: Vec<String> = response.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| hit["_extra"]["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(ids, expected, "{query}");
    }
    app.get_as("/search?q=readers:*", &alice)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
}
both_backends!(path_clashes_and_existence_queries_answer_500);

/// Point 8: hidden and missing resources answer byte-identical `404`s; profiles are shown to
/// managers only; md5 de-duplication never links into a version the uploader cannot read; a
/// link's target is shown only to its readers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_learn_what_they_cannot_see() {
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let carol = app.user_token("carol", Role::Maintainer).await;
    project_with_file(&app, &alice, "hidden", "private", b"secret bytes").await;

    for token in [Some(carol.as_str()), None] {
        for (hidden, missing) in [
            ("/projects/hidden", "/projects/absent"),
            ("/projects/hidden/versions", "/projects/absent/versions"),
            ("/projects/hidden/version/v1", "/projects/absent/version/v1"),
            (
                "/projects/hidden/version/v1/files",
                "/projects/absent/version/v1/files",
            ),
            (
                "/projects/hidden/version/v1/info",
                "/projects/absent/version/v1/info",
            ),
            (
                "/projects/hidden/permissions",
                "/projects/absent/permissions",
            ),
            ("/projects/hidden/members", "/projects/absent/members"),
            (
                "/files/hidden%3Aa.bin%40v1/metadata",
                "/files/absent%3Aa.bin%40v1/metadata",
            ),
            ("/files/hidden%3Aa.bin%40v1", "/files/absent%3Aa.bin%40v1"),
        ] {
            let hidden_answer = call(&app, Method::GET, hidden, token, None).await;
            let missing_answer = call(&app, Method::GET, missing, token, None).await;
            assert_eq!(hidden_answer.status, StatusCode::NOT_FOUND, "{hidden}");
            assert_eq!(
                hidden_answer.headers.get("content-length"),
                missing_answer.headers.get("content-length")
            );
            // Byte for byte, once the one difference the caller typed is undone.
            let renamed = missing_answer.text().replace("absent", "hidden");
            assert_eq!(hidden_answer.text(), renamed, "{hidden} vs {missing}");
        }
    }

    // A public project: readers see it, but not who has access.
    project_with_file(&app, &alice, "open", "public", b"open bytes").await;
    for path in ["/projects/open/permissions", "/projects/open/members"] {
        app.get_as(path, &carol)
            .await
            .assert_status(StatusCode::FORBIDDEN);
    }
    let info = get_json(&app, "/projects/open/version/v1/info", &carol).await;
    assert_eq!(info["permissions"], Value::Null, "{info}");
    let info = get_json(&app, "/projects/open/version/v1/info", &alice).await;
    assert_eq!(info["permissions"]["owners"], json!(["alice"]), "{info}");

    // md5 de-duplication: carol owns a project where alice's hidden bytes also sit in an
    // earlier version she cannot read — here, alice makes carol a writer of `hidden`'s
    // sibling and carol asks for a link by md5: she gets an upload URL, not a link.
    project_with_file(&app, &alice, "shared", "private", b"secret bytes").await;
    let owners_only = json!({"owners": ["alice"], "read_access": "owners"});
    let v1_profile = "/projects/shared/version/v1/permissions";
    let hide_v1 = app
        .put_json(v1_profile, &alice, &owners_only)
        .await
        .assert_status(StatusCode::ACCEPTED);
    wait_job(&app, &alice, &hide_v1).await;
    let carol_writes = json!({"writers": ["carol"], "write_access": "writers", "viewers": ["carol"], "read_access": "viewers"});
    let profile = "/projects/shared/permissions";
    let granted = app.put_json(profile, &alice, &carol_writes).await;
    wait_job(&app, &alice, &granted).await;
    let by_md5 = json!({"filenames": [{"filename": "a.bin", "check": "md5", "value": {"md5sum": md5_hex(b"secret bytes")}}]});
    let dedup = start_upload(&app, &carol, "shared", "v2", &by_md5).await;
    assert_eq!(dedup["links"], json!([]), "{dedup}");
    let urls = dedup["presigned_urls"].as_array().unwrap().len();
    assert_eq!(urls, 1, "{dedup}");
    // Alice herself (who can read v1) gets the link.
    let abort = "/projects/shared/version/v2/abort";
    app.bearer(Method::PUT, abort, &carol, None)
        .await
        .assert_status(StatusCode::OK);
    let own = start_upload(&app, &alice, "shared", "v2", &by_md5).await;
    assert_eq!(own["links"].as_array().unwrap().len(), 1, "{own}");
    let link_url = own["links"][0]["url"].as_str().unwrap();
    app.bearer(Method::PUT, link_url, &alice, None)
        .await
        .assert_status(StatusCode::OK);
    complete(&app, &alice, "shared", "v2", None).await;

    // The listing and the metadata of the link show its target to alice, not to carol.
    let files = "/projects/shared/version/v2/files";
    let listing = get_json(&app, files, &carol).await;
    assert_eq!(listing["files"][0]["link"]["id"], Value::Null, "{listing}");
    let listing = get_json(&app, files, &alice).await;
    let target = &listing["files"][0]["link"]["id"];
    assert_eq!(target, "shared:a.bin@v1", "{listing}");
    let metadata = "/files/shared%3Aa.bin%40v2/metadata";
    let meta = get_json(&app, metadata, &carol).await;
    assert_eq!(meta["_extra"]["link"]["artifactdb"], Value::Null, "{meta}");
    let meta = get_json(&app, metadata, &alice).await;
    let target = &meta["_extra"]["link"]["artifactdb"];
    assert_eq!(target, "shared:a.bin@v1", "{meta}");
}

/// The global profile has its own admin-only route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_profile_is_managed_by_admins_only() {
    let app = BackendApp::start(Backend::Local).await;
    let root = app.user_token("root", Role::Admin).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"read_access": "public"}))),
        (Method::DELETE, None),
    ] {
        let refused = app
            .bearer(method.clone(), "/permissions", &alice, body.as_ref())
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method}");
        let anonymous = call(&app, method.clone(), "/permissions", None, body.as_ref()).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{method}");
    }
    // A project without a profile of its own falls back to the global one.
    app.post_json(
        "/projects/p/version/v1/upload",
        &alice,
        &json!({"filenames": []}),
    )
    .await
    .assert_status(StatusCode::OK);
    complete(&app, &alice, "p", "v1", None).await;
    let deleted = app.delete_as("/projects/p/permissions", &alice).await;
    wait_job(&app, &alice, &deleted).await;
    let put = app
        .put_json(
            "/permissions",
            &root,
            &json!({"read_access": "authenticated", "owners": ["root"]}),
        )
        .await;
    wait_job(&app, &root, &put).await;
    let global = app.get_as("/permissions", &root).await.json();
    assert_eq!(global["read_access"], "authenticated", "{global}");
    assert_eq!(global["scope"], "global", "{global}");
    let bob = app.user_token("bob", Role::Guest).await;
    assert_eq!(app.get_as("/projects/p", &bob).await.status, StatusCode::OK);
    let deleted = app.delete_as("/permissions", &root).await;
    wait_job(&app, &root, &deleted).await;
    assert_eq!(
        app.get_as("/projects/p", &bob).await.status,
        StatusCode::NOT_FOUND
    );
    let bad = app
        .put_json("/permissions", &root, &json!({"scope": "project"}))
        .await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad.text()
    );
}
