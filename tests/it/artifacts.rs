//! Artifacts end to end (issue 6) through the real router, each test body run on the local
//! backend and on the in-process S3 server: projects, versions, files, ArtifactDB's upload
//! contract, permissions, sharing, `latest`, path validation, and the purge.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use serde_json::{Value, json};
use trove::permissions::Role;
use trove::storage::{ObjectStoreExt as _, keys};

use crate::both_backends;
use crate::common::artifacts::*;
use crate::common::{Backend, BackendApp, TestApp};

// ------------------------------------------------------------------------------ projects

/// Creates bert; a second bert conflicts, an id is generated when none is given, bad types,
/// visibilities and names are refused, and so are guests and anonymous callers; answers the
/// generated id.
async fn step_creation_rules(app: &TestApp, alice: &str, guest: &str) -> String {
    create_project(app, alice, "bert", "private").await;
    let again = app
        .post_json(
            "/projects",
            alice,
            &json!({"project_id": "bert", "title": "T", "type": "MODEL"}),
        )
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(again.code(), "already_exists");

    let generated = app
        .post_json(
            "/projects",
            alice,
            &json!({"title": "no id", "type": "DATASET", "visibility": "public"}),
        )
        .await;
    assert_eq!(
        generated.status,
        StatusCode::CREATED,
        "{}",
        generated.text()
    );
    let generated_id = generated.json()["project_id"].as_str().unwrap().to_owned();
    assert!(!generated_id.is_empty());

    for body in [
        json!({"title": "x", "type": "ROBOT"}),
        json!({"title": "x", "type": "MODEL", "visibility": "secret"}),
    ] {
        let bad = app.post_json("/projects", alice, &body).await;
        assert_eq!(
            bad.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            bad.text()
        );
    }
    let bad_name = app
        .post_json(
            "/projects",
            alice,
            &json!({"project_id": "../x", "title": "x"}),
        )
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(bad_name.code(), "invalid_name");

    // A guest may not create projects; an anonymous caller neither.
    app.post_json(
        "/projects",
        guest,
        &json!({"project_id": "g1", "title": "x"}),
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    call(
        app,
        Method::POST,
        "/projects",
        None,
        Some(&json!({"project_id": "g2", "title": "x"})),
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
    generated_id
}

/// Who reads the private and the public project, the profiles their visibility implies, and a
/// patched title searchable at once.
async fn step_reads_profiles_and_a_searchable_patch(
    app: &TestApp,
    alice: &str,
    guest: &str,
    generated_id: &str,
) {
    let record = app
        .get_as("/projects/bert", alice)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(record.json()["created_by"], "alice");
    assert_eq!(record.json()["type"], "MODEL");
    // Private: the guest does not see it at all.
    assert_eq!(
        app.get_as("/projects/bert", guest).await.status,
        StatusCode::NOT_FOUND
    );
    // Public: everyone reads the metadata.
    assert_eq!(
        call(
            app,
            Method::GET,
            &format!("/projects/{generated_id}"),
            None,
            None
        )
        .await
        .status,
        StatusCode::OK
    );

    // The profile the visibility implies, creator as owner.
    let profile = app.get_as("/projects/bert/permissions", alice).await.json();
    assert_eq!(profile["owners"], json!(["alice"]));
    assert_eq!(profile["read_access"], "owners");
    let public = app
        .get_as(&format!("/projects/{generated_id}/permissions"), alice)
        .await
        .json();
    assert_eq!(public["read_access"], "public");
    assert_eq!(public["download_access"], "viewers");

    let patched = app
        .patch_json(
            "/projects/bert",
            alice,
            &json!({"title": "BERT base", "tags": ["nlp"]}),
        )
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(patched.json()["title"], "BERT base");
    // The project document is searchable with its new title at once.
    let found = app
        .get_as("/search?kind=project&q=_extra.project_id:bert", alice)
        .await
        .json();
    assert_eq!(found["results"][0]["title"], "BERT base", "{found}");
}

async fn projects_are_created_read_and_changed(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let guest = app.user_token("gina", Role::Guest).await;

    let generated_id = step_creation_rules(&app, &alice, &guest).await;

    step_reads_profiles_and_a_searchable_patch(&app, &alice, &guest, &generated_id).await;

    // Owners deprecate; writes are then refused with 409 deprecated, until reactivated.
    app.patch_json("/projects/bert", &alice, &json!({"state": "deprecated"}))
        .await
        .assert_status(StatusCode::OK);
    let write = app
        .post_json("/projects/bert/versions", &alice, &json!({"version": "v1"}))
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(write.code(), "deprecated");
    // Owners may not disable (admins only).
    app.patch_json("/projects/bert", &alice, &json!({"state": "disabled"}))
        .await
        .assert_status(StatusCode::FORBIDDEN);
    app.patch_json("/projects/bert", &alice, &json!({"state": "active"}))
        .await
        .assert_status(StatusCode::OK);
    create_version(&app, &alice, "bert", "v1").await;
}
both_backends!(projects_are_created_read_and_changed);

// ------------------------------------------------------------------------------ versions

/// Concurrent creators of one version: exactly one wins.
async fn assert_one_of_concurrent_creators_wins(app: &TestApp, alice: &str) {
    // Concurrent creators of one version: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let router = app.router.clone();
        let token = alice.to_owned();
        tasks.push(tokio::spawn(async move {
            use tower::ServiceExt as _;
            let request = Request::builder()
                .method(Method::POST)
                .uri("/projects/p/versions")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(json!({"version": "race"}).to_string()))
                .unwrap();
            router.oneshot(request).await.unwrap().status()
        }));
    }
    let mut created = 0;
    for task in tasks {
        let status = task.await.unwrap();
        if status == StatusCode::CREATED {
            created += 1;
        } else {
            assert_eq!(status, StatusCode::CONFLICT);
        }
    }
    assert_eq!(created, 1);
}

/// v1 may not be stable before it is completed; completed, it is `latest` and takes no new
/// files.
async fn step_complete_v1_then_no_more_files(app: &TestApp, alice: &str) {
    let record = app.get_as("/projects/p/version/v1", alice).await.json();
    assert_eq!(record["status"], "open");
    let early = app
        .patch_json("/projects/p/version/v1", alice, &json!({"stable": true}))
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(early.code(), "version_not_completed");

    assert_eq!(
        upload(app, Some(alice), "p", "v1", "a.txt", b"hello")
            .await
            .status,
        StatusCode::CREATED
    );
    complete(app, alice, "p", "v1", None).await;
    let record = app.get_as("/projects/p/version/latest", alice).await.json();
    assert_eq!(record["version"], "v1");
    assert_eq!(record["status"], "completed");
    assert_eq!(record["revision"], "NUM-1");
    // A completed version takes no new files.
    let late = upload(app, Some(alice), "p", "v1", "b.txt", b"x")
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(late.code(), "version_completed");
}

/// A stable version and its files may not be deleted; unmarked, the version is deleted whole.
async fn step_a_stable_version_resists_deletion_until_unmarked(app: &TestApp, alice: &str) {
    app.patch_json(
        "/projects/p/version/v1",
        alice,
        &json!({"changelog": "fixed"}),
    )
    .await
    .assert_status(StatusCode::OK);
    app.patch_json("/projects/p/version/v1", alice, &json!({"stable": true}))
        .await
        .assert_status(StatusCode::OK);
    let delete = app
        .delete_as("/projects/p/version/v1", alice)
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(delete.code(), "stable_version");
    let delete_file = app
        .delete_as(&format!("/files/{}", enc("p:a.txt@v1")), alice)
        .await;
    assert_eq!(delete_file.code(), "stable_version");
    app.patch_json("/projects/p/version/v1", alice, &json!({"stable": false}))
        .await
        .assert_status(StatusCode::OK);
    app.delete_as("/projects/p/version/v1", alice)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as("/projects/p/version/v1", alice).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(storage_keys(app, "p/v1/").await.is_empty());
    assert!(
        search_ids(app, Some(alice), "_extra.project_id:p")
            .await
            .is_empty()
    );
}

async fn versions_follow_the_stable_rules(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    create_project(&app, &alice, "p", "private").await;
    create_version(&app, &alice, "p", "v1").await;
    app.post_json("/projects/p/versions", &alice, &json!({"version": "v1"}))
        .await
        .assert_status(StatusCode::CONFLICT);
    let latest = app
        .post_json(
            "/projects/p/versions",
            &alice,
            &json!({"version": "latest"}),
        )
        .await;
    assert_eq!(latest.code(), "invalid_name");

    assert_one_of_concurrent_creators_wins(&app, &alice).await;

    step_complete_v1_then_no_more_files(&app, &alice).await;

    step_a_stable_version_resists_deletion_until_unmarked(&app, &alice).await;

    // Writers (not owners) may delete non-stable versions.
    let bob = app.user_token("bob", Role::Maintainer).await;
    let put = app
        .put_json(
            "/projects/p/permissions",
            &alice,
            &json!({"writers": ["bob"], "write_access": "writers", "read_access": "viewers"}),
        )
        .await;
    wait_job(&app, &alice, &put).await;
    app.delete_as("/projects/p/version/race", &bob)
        .await
        .assert_status(StatusCode::NO_CONTENT);
}
both_backends!(versions_follow_the_stable_rules);

// ------------------------------------------------------------------------------ files

/// Uploads model/weights.bin: its record, its search hit and its sidecar carry the checksums.
async fn step_upload_is_searchable_with_its_sidecar(app: &TestApp, alice: &str, body: &[u8]) {
    let stored = upload(app, Some(alice), "p", "v1", "model/weights.bin", body)
        .await
        .assert_status(StatusCode::CREATED);
    let stored = stored.json();
    assert_eq!(stored["id"], "p:model/weights.bin@v1");
    assert_eq!(stored["md5sum"], md5_hex(body));
    assert_eq!(stored["size"], body.len());
    // Searchable at once, with its checksums.
    let hits = app
        .get_as(&format!("/search?q={}", enc("_extra.project_id:p")), alice)
        .await
        .json();
    assert_eq!(
        hits["results"][0]["_extra"]["md5sum"],
        md5_hex(body),
        "{hits}"
    );
    // The sidecar is where the indexer reads it.
    let sidecar = app
        .state
        .storage
        .get_bytes("p/v1/..meta/files/model/weights.bin.json")
        .await
        .unwrap()
        .0;
    let sidecar: Value = serde_json::from_slice(&sidecar).unwrap();
    assert_eq!(sidecar["sha256"], stored["sha256"]);
}

/// Wrong digests keep nothing; a .json file must be a JSON object, and a valid one is the
/// file's searchable metadata document.
async fn step_bad_digests_and_json_documents(app: &TestApp, alice: &str) {
    // Wrong Content-MD5 or sha256: 400 digest_mismatch, nothing kept.
    let wrong = raw(
        app,
        Method::PUT,
        "/projects/p/version/v1/files/bad.bin",
        Some(alice),
        &[("content-md5", md5_b64(b"other").as_str())],
        b"data".to_vec(),
    )
    .await;
    assert_eq!(wrong.code(), "digest_mismatch");
    let wrong = raw(
        app,
        Method::PUT,
        "/projects/p/version/v1/files/bad.bin",
        Some(alice),
        &[("x-checksum-sha256", "00".repeat(32).as_str())],
        b"data".to_vec(),
    )
    .await;
    assert_eq!(wrong.code(), "digest_mismatch");
    assert!(app.state.storage.head("p/v1/bad.bin").await.is_err());
    // A .json file is a metadata document and must be a JSON object.
    let not_json = upload(app, Some(alice), "p", "v1", "meta.json", b"[1,2]").await;
    assert_eq!(not_json.code(), "invalid_json");
    let doc = json!({"path": "model/weights.bin", "title": "weights of bert"}).to_string();
    assert_eq!(
        upload(
            app,
            Some(alice),
            "p",
            "v1",
            "model/weights.bin.json",
            doc.as_bytes()
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let hits = search_ids(app, Some(alice), "title:weights").await;
    assert_eq!(hits, vec!["p:model/weights.bin@v1".to_owned()]);
}

/// Streamed with ETag, Range and If-None-Match.
async fn step_download_with_etag_and_ranges(app: &TestApp, alice: &str, id: &str, body: &[u8]) {
    // Streamed with ETag, Range and If-None-Match.
    let streamed = app
        .get_as(&format!("/files/{id}?redirect=false"), alice)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(streamed.bytes, body);
    let etag = streamed.headers["etag"].to_str().unwrap().to_owned();
    let ranged = raw(
        app,
        Method::GET,
        &format!("/files/{id}?redirect=false"),
        Some(alice),
        &[("range", "bytes=0-6")],
        Vec::new(),
    )
    .await
    .assert_status(StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes, b"weights");
    raw(
        app,
        Method::GET,
        &format!("/files/{id}?redirect=false"),
        Some(alice),
        &[("if-none-match", etag.as_str())],
        Vec::new(),
    )
    .await
    .assert_status(StatusCode::NOT_MODIFIED);
    raw(
        app,
        Method::GET,
        &format!("/files/{id}?redirect=false"),
        Some(alice),
        &[("range", "bytes=9999-")],
        Vec::new(),
    )
    .await
    .assert_status(StatusCode::RANGE_NOT_SATISFIABLE);
}

/// The default download, and the bounds of `expires_in`.
async fn step_default_download_and_expiry(
    app: &TestApp,
    alice: &str,
    id: &str,
    body: &[u8],
    backend: Backend,
) {
    // Default: 302 to a presigned URL on S3, streamed on the local backend.
    let default = app
        .get_as(&format!("/files/{id}?expires_in=60"), alice)
        .await;
    match backend {
        Backend::S3 => {
            assert_eq!(default.status, StatusCode::FOUND);
            let location = default.headers["location"].to_str().unwrap();
            let fetched = reqwest::get(location).await.unwrap();
            assert_eq!(fetched.status(), 200);
            assert_eq!(fetched.bytes().await.unwrap().to_vec(), body);
        }
        Backend::Local => {
            assert_eq!(default.status, StatusCode::OK);
            assert_eq!(default.bytes, body);
        }
    }
    for bad in ["5", "86401", "x"] {
        let response = app
            .get_as(&format!("/files/{id}?expires_in={bad}"), alice)
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// `latest` resolves only among completed versions.
async fn step_latest_resolves_once_completed(app: &TestApp, alice: &str, body: &[u8]) {
    // `latest` resolves only among completed versions.
    app.get_as(
        &format!(
            "/files/{}?redirect=false",
            enc("p:model/weights.bin@latest")
        ),
        alice,
    )
    .await
    .assert_status(StatusCode::NOT_FOUND);
    complete(app, alice, "p", "v1", None).await;
    let latest = app
        .get_as(
            &format!(
                "/files/{}?redirect=false",
                enc("p:model/weights.bin@latest")
            ),
            alice,
        )
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(latest.bytes, body);
}

/// Deleting the file and its document leaves no hit and no sidecar.
async fn step_delete_the_file_and_its_document(app: &TestApp, alice: &str, id: &str) {
    app.delete_as(&format!("/files/{id}"), alice)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as(&format!("/files/{id}?redirect=false"), alice)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let doc_id = enc("p:model/weights.bin.json@v1");
    app.delete_as(&format!("/files/{doc_id}"), alice)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert!(
        search_ids(app, Some(alice), "_extra.project_id:p")
            .await
            .is_empty()
    );
    assert!(
        app.state
            .storage
            .head("p/v1/..meta/files/model/weights.bin.json")
            .await
            .is_err()
    );
}

async fn files_are_uploaded_listed_downloaded_and_deleted(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    create_project(&app, &alice, "p", "private").await;
    create_version(&app, &alice, "p", "v1").await;

    let body = b"weights weights weights".to_vec();
    step_upload_is_searchable_with_its_sidecar(&app, &alice, &body).await;

    step_bad_digests_and_json_documents(&app, &alice).await;

    let listing = app
        .get_as("/projects/p/version/v1/files", &alice)
        .await
        .assert_status(StatusCode::OK);
    let files = listing.json()["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2);
    assert!(
        files
            .iter()
            .any(|f| f["path"] == "model/weights.bin" && f["md5sum"] == md5_hex(&body))
    );

    let id = enc("p:model/weights.bin@v1");
    step_download_with_etag_and_ranges(&app, &alice, &id, &body).await;
    step_default_download_and_expiry(&app, &alice, &id, &body, backend).await;
    step_latest_resolves_once_completed(&app, &alice, &body).await;

    step_delete_the_file_and_its_document(&app, &alice, &id).await;
}
both_backends!(files_are_uploaded_listed_downloaded_and_deleted);

// ------------------------------------------------------------------------------ paths

async fn hostile_paths_are_refused_everywhere_and_nothing_is_written(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    create_project(&app, &alice, "p", "private").await;
    create_version(&app, &alice, "p", "v1").await;
    // The audit log grows on its own clock (buffered events are flushed every second): what
    // must not change is everything else.
    let data_keys = || async {
        let mut keys = storage_keys(&app, "").await;
        keys.retain(|key| !key.starts_with("..meta/audit/"));
        keys
    };
    let before = data_keys().await;

    for path in [
        "..meta/version.json",
        "a/../../b",
        "a/..meta/x",
        "%2e%2e/x",
        "a/./b",
        "a//b",
        "x%00y",
        "..hidden",
    ] {
        let response = upload(&app, Some(&alice), "p", "v1", path, b"x").await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            response.text()
        );
        assert_eq!(response.code(), "invalid_path", "{path}");
    }
    for id in ["p:../x@v1", "p:..meta/version.json@v1", "p:a/../../b@v1"] {
        for method in [Method::GET, Method::DELETE] {
            let response = app
                .bearer(method, &format!("/files/{}", enc(id)), &alice, None)
                .await;
            assert_eq!(response.status, StatusCode::BAD_REQUEST, "{id}");
            assert_eq!(response.code(), "invalid_path");
        }
    }
    for name in ["../x", "..meta/permissions.json", "a/../../b"] {
        let response = app
            .post_json(
                "/projects/p/version/v2/upload",
                &alice,
                &json!({"filenames": ["ok.txt", name]}),
            )
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(response.code(), "invalid_path");
        let response = app
            .post_json(
                "/projects/newp/version/v1/upload",
                &alice,
                &json!({"filenames": [{"filename": name, "check": "simple"}]}),
            )
            .await;
        assert_eq!(response.code(), "invalid_path");
    }
    let b64 = |text: &str| base64::engine::general_purpose::URL_SAFE.encode(text);
    let link = app
        .bearer(
            Method::PUT,
            &format!("/link/{}/to/{}", b64("p:../x@v1"), b64("p:a@v1")),
            &alice,
            None,
        )
        .await;
    assert_eq!(link.code(), "invalid_path");
    let link = app
        .bearer(
            Method::PUT,
            &format!("/link/{}/to/{}", b64("p:a@v1"), b64("p:..meta/x@v1")),
            &alice,
            None,
        )
        .await;
    assert_eq!(link.code(), "invalid_path");
    app.bearer(Method::PUT, "/link/!!!/to/!!!", &alice, None)
        .await
        .assert_status(StatusCode::BAD_REQUEST);

    assert_eq!(data_keys().await, before, "something was written");
}
both_backends!(hostile_paths_are_refused_everywhere_and_nothing_is_written);

// ------------------------------------------------------------------------------ permissions

/// With a.txt uploaded, the profile is the private default, and dave, who cannot see the
/// project, gets 404 for it.
async fn step_default_profile_hidden_from_strangers(app: &TestApp, alice: &str, dave: &str) {
    assert_eq!(
        upload(app, Some(alice), "p", "v1", "a.txt", b"a")
            .await
            .status,
        StatusCode::CREATED
    );

    let profile = app
        .get_as("/projects/p/permissions", alice)
        .await
        .assert_status(StatusCode::OK);
    let profile = profile.json();
    assert_eq!(profile["scope"], "project");
    assert_eq!(profile["write_access"], "owners");
    assert_eq!(profile["download_access"], "owners");

    // Dave can't see it, so 404 for everything.
    assert_eq!(
        app.get_as("/projects/p/permissions", dave).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.put_json(
            "/projects/p/permissions",
            dave,
            &json!({"read_access": "public"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

/// A partial merge changes only read_access (anonymous callers then find the file); readers and
/// anonymous callers may not change the profile.
async fn step_partial_merge_and_who_may_change_it(app: &TestApp, alice: &str, dave: &str) {
    // Partial merge: only read_access changes; anonymous callers then find and read it.
    let put = app
        .put_json(
            "/projects/p/permissions",
            alice,
            &json!({"read_access": "public"}),
        )
        .await;
    wait_job(app, alice, &put).await;
    let profile = app.get_as("/projects/p/permissions", alice).await.json();
    assert_eq!(profile["owners"], json!(["alice"]));
    assert_eq!(profile["read_access"], "public");
    assert_eq!(
        search_ids(app, None, "*").await,
        vec!["p:a.txt@v1".to_owned()]
    );
    // Readers who are not owners may not change it.
    app.put_json(
        "/projects/p/permissions",
        dave,
        &json!({"read_access": "owners"}),
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    call(
        app,
        Method::PUT,
        "/projects/p/permissions",
        None,
        Some(&json!({"read_access": "owners"})),
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
}

/// Bad scopes, grants, rules, principals and JSON are refused with their code; then dave is
/// made a writer.
async fn step_invalid_profiles_refused_then_writers(app: &TestApp, alice: &str) {
    // Another scope, a grant above the role, bad rules and principals: 422 with the code.
    for (body, code) in [
        (json!({"scope": "version"}), "invalid_scope"),
        (json!({"owners": ["alice", "dave"]}), "grant_exceeds_role"),
        (json!({"read_access": "everyone"}), "invalid_access_rule"),
        (json!({"viewers": ["Not A User"]}), "invalid_principal"),
        (json!({"read_acess": "public"}), "unknown_field"),
    ] {
        let response = app.put_json("/projects/p/permissions", alice, &body).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            response.text()
        );
        assert_eq!(response.code(), code, "{body}");
    }
    raw(
        app,
        Method::PUT,
        "/projects/p/permissions",
        Some(alice),
        &[("content-type", "application/json")],
        b"{".to_vec(),
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST);
    // Writers may be developers.
    let put = app
        .put_json(
            "/projects/p/permissions",
            alice,
            &json!({"writers": ["dave"]}),
        )
        .await;
    wait_job(app, alice, &put).await;
}

/// A version profile shadows the project's whole until it is deleted.
async fn step_version_profile_shadows_the_project(app: &TestApp, alice: &str) {
    // A version profile shadows the project's (first found wins whole).
    let put = app
        .put_json(
            "/projects/p/version/v1/permissions",
            alice,
            &json!({"owners": ["alice"], "read_access": "owners"}),
        )
        .await;
    wait_job(app, alice, &put).await;
    assert!(search_ids(app, None, "*").await.is_empty());
    let version_profile = app
        .get_as("/projects/p/version/v1/permissions", alice)
        .await
        .json();
    assert_eq!(version_profile["scope"], "version");
    let wrong_scope = app
        .put_json(
            "/projects/p/version/v1/permissions",
            alice,
            &json!({"scope": "project"}),
        )
        .await;
    assert_eq!(wrong_scope.code(), "invalid_scope");
    let delete = app
        .delete_as("/projects/p/version/v1/permissions", alice)
        .await;
    wait_job(app, alice, &delete).await;
    assert_eq!(search_ids(app, None, "*").await.len(), 1);
}

async fn permission_routes_merge_validate_and_reindex(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let dave = app.user_token("dave", Role::Developer).await;
    let admin = app.user_token("root", Role::Admin).await;
    create_project(&app, &alice, "p", "private").await;
    create_version(&app, &alice, "p", "v1").await;
    step_default_profile_hidden_from_strangers(&app, &alice, &dave).await;

    step_partial_merge_and_who_may_change_it(&app, &alice, &dave).await;

    step_invalid_profiles_refused_then_writers(&app, &alice).await;

    step_version_profile_shadows_the_project(&app, &alice).await;

    // Deleting the project profile falls through to the (absent) global one: admins only.
    let delete = app.delete_as("/projects/p/permissions", &alice).await;
    wait_job(&app, &alice, &delete).await;
    assert_eq!(
        app.get_as("/projects/p", &alice).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as("/projects/p", &admin).await.status,
        StatusCode::OK
    );
    let restore = app
        .put_json(
            "/projects/p/permissions",
            &admin,
            &json!({"owners": ["alice"]}),
        )
        .await;
    wait_job(&app, &admin, &restore).await;
    assert_eq!(
        app.get_as("/projects/p", &alice).await.status,
        StatusCode::OK
    );
}
both_backends!(permission_routes_merge_validate_and_reindex);

// ------------------------------------------------------------------------------ matrix

/// Who, their token, and the statuses of [read, download, upload, delete, share] on a public
/// and on a private project.
type MatrixRow<'a> = (&'a str, Option<&'a str>, [u16; 5], [u16; 5]);

/// Project `project` (`visibility`) with an open version v1 holding `f.txt`, shared with
/// `principal`.
async fn project_with_a_file_shared(
    app: &TestApp,
    owner: &str,
    project: &str,
    visibility: &str,
    principal: &str,
) {
    create_project(app, owner, project, visibility).await;
    create_version(app, owner, project, "v1").await;
    assert_eq!(
        upload(app, Some(owner), project, "v1", "f.txt", b"data")
            .await
            .status,
        StatusCode::CREATED
    );
    app.post_json(
        &format!("/projects/{project}/share"),
        owner,
        &json!({"principal": principal}),
    )
    .await
    .assert_status(StatusCode::CREATED);
}

/// `who`'s statuses of [read, download, upload, delete, share] on `project`.
async fn matrix_statuses(app: &TestApp, who: &str, token: Option<&str>, project: &str) -> [u16; 5] {
    let read = call(
        app,
        Method::GET,
        &format!("/projects/{project}"),
        token,
        None,
    )
    .await
    .status;
    let file = format!(
        "/files/{}?redirect=false",
        enc(&format!("{project}:f.txt@v1"))
    );
    let download = call(app, Method::GET, &file, token, None).await.status;
    let uploaded = upload(app, token, project, "v1", &format!("{who}.txt"), b"x")
        .await
        .status;
    let deleted = call(
        app,
        Method::DELETE,
        &format!("/files/{}", enc(&format!("{project}:{who}.txt@v1"))),
        token,
        None,
    )
    .await
    .status;
    let deleted = if uploaded == StatusCode::CREATED {
        deleted
    } else {
        call(
            app,
            Method::DELETE,
            &format!("/files/{}", enc(&format!("{project}:f.txt@v1"))),
            token,
            None,
        )
        .await
        .status
    };
    let shared_with = call(
        app,
        Method::POST,
        &format!("/projects/{project}/share"),
        token,
        Some(&json!({"principal": "group:friends"})),
    )
    .await
    .status;
    [read, download, uploaded, deleted, shared_with].map(|status| status.as_u16())
}

async fn owner_shared_public_and_stranger_matrix(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let owner = app.user_token("owner", Role::Maintainer).await;
    let shared = app.user_token("shared", Role::Maintainer).await;
    let stranger = app.user_token("stranger", Role::Maintainer).await;
    // Shares name existing groups: `group:friends` is shared with below.
    app.post_json(
        "/groups",
        &owner,
        &json!({"name": "friends", "members": []}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    // A public project: anyone reads metadata; only viewers (shares) download.
    project_with_a_file_shared(&app, &owner, "p", "public", "shared").await;
    // A private project: only the owner and its share.
    project_with_a_file_shared(&app, &owner, "q", "private", "shared").await;

    let cases: [MatrixRow; 4] = [
        // who, token, public project [read, download, upload, delete, share], private project
        (
            "owner",
            Some(owner.as_str()),
            [200, 200, 201, 204, 201],
            [200, 200, 201, 204, 201],
        ),
        (
            "shared",
            Some(shared.as_str()),
            [200, 200, 403, 403, 403],
            [200, 200, 403, 403, 403],
        ),
        (
            "stranger",
            Some(stranger.as_str()),
            [200, 403, 403, 403, 403],
            [404, 404, 404, 404, 404],
        ),
        (
            "anonymous",
            None,
            [200, 401, 401, 401, 401],
            [404, 404, 404, 404, 404],
        ),
    ];
    for (who, token, public, private) in cases {
        for (project, expected) in [("p", public), ("q", private)] {
            let got = matrix_statuses(&app, who, token, project).await;
            assert_eq!(got, expected, "{who} on {project}");
        }
    }
    // A reader's empty patch is refused like any record change (nothing is written).
    for path in ["/projects/p", "/projects/p/version/v1"] {
        let patch = app.patch_json(path, &shared, &json!({})).await;
        assert_eq!(patch.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Search finds exactly what each may read.
    assert_eq!(
        search_ids(&app, Some(&stranger), "*").await,
        vec!["p:f.txt@v1".to_owned()]
    );
    let mut seen = search_ids(&app, Some(&shared), "*").await;
    seen.sort();
    assert_eq!(seen, vec!["p:f.txt@v1".to_owned(), "q:f.txt@v1".to_owned()]);
    // Unsharing ends it.
    app.delete_as("/projects/q/share/shared", &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as("/projects/q", &shared).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        search_ids(&app, Some(&shared), "*").await,
        vec!["p:f.txt@v1".to_owned()]
    );
    app.delete_as("/projects/q/share/shared", &owner)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // An owner can't be "shared" (the expiry would end their ownership).
    let owner_share = app
        .post_json("/projects/q/share", &owner, &json!({"principal": "owner"}))
        .await;
    assert_eq!(owner_share.code(), "already_granted");
}
both_backends!(owner_shared_public_and_stranger_matrix);

async fn an_expired_share_stops_working_at_once(backend: Backend) {
    let app = BackendApp::start(backend).await;
    // What `trove serve` runs: re-index each project when a grant of its expires.
    let _reindexer = trove::jobs::schedule::spawn_expiry_reindexer(app.state.clone());
    let owner = app.user_token("owner", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Guest).await;
    create_project(&app, &owner, "p", "private").await;
    create_version(&app, &owner, "p", "v1").await;
    assert_eq!(
        upload(&app, Some(&owner), "p", "v1", "f.txt", b"data")
            .await
            .status,
        StatusCode::CREATED
    );
    let expires_at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    app.post_json(
        "/projects/p/share",
        &owner,
        &json!({"principal": "bob", "expires_at": expires_at.to_rfc3339()}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    assert_eq!(app.get_as("/projects/p", &bob).await.status, StatusCode::OK);
    app.get_as(
        &format!("/files/{}?redirect=false", enc("p:f.txt@v1")),
        &bob,
    )
    .await
    .assert_status(StatusCode::OK);
    assert_eq!(search_ids(&app, Some(&bob), "*").await.len(), 1);
    app.post_json(
        "/projects/p/share",
        &owner,
        &json!({"principal": "bob", "expires_at": "2000-01-01T00:00:00Z"}),
    )
    .await
    .assert_status(StatusCode::UNPROCESSABLE_ENTITY);

    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        app.get_as("/projects/p", &bob).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(search_ids(&app, Some(&bob), "*").await.is_empty());
    // Totals don't count him either (the index's own re-index at expiry is tested in
    // tests/it/indexing.rs).
    let mut total = Value::Null;
    for _ in 0..100 {
        total = app.get_as("/search?q=*", &bob).await.json()["total"].clone();
        if total == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(total, 0);
    let hits = app.get_as("/search?q=*", &owner).await.json();
    assert_eq!(hits["count"], 1, "{hits}");
}
both_backends!(an_expired_share_stops_working_at_once);

// ------------------------------------------------------------------------------ ArtifactDB

/// Starts an upload of tbl/v1, which creates the project with alice as owner; a second start is
/// a conflict and nothing is searchable yet; answers the started upload.
async fn step_start_creates_the_project(app: &TestApp, alice: &str, data: &[u8]) -> Value {
    // Start: the project does not exist; the upload creates it with alice as owner.
    let started = app.post_json("/projects/tbl/version/v1/upload", alice, &json!({
        "filenames": [
            "data.csv.json",
            {"filename": "data.csv", "check": "md5", "value": {"md5sum": md5_hex(data), "field": "md5sum"}},
        ],
        "completed_by": "in 1 hours",
        "mode": "s3-presigned-url",
    })).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let started = started.json();
    assert_eq!(started["project_id"], "tbl");
    assert_eq!(started["links"], json!([]));
    let profile = app.get_as("/projects/tbl/permissions", alice).await.json();
    assert_eq!(profile["owners"], json!(["alice"]));
    assert_eq!(profile["read_access"], "owners");
    // The version exists now: a second start is a conflict.
    app.post_json(
        "/projects/tbl/version/v1/upload",
        alice,
        &json!({"filenames": ["x"]}),
    )
    .await
    .assert_status(StatusCode::CONFLICT);
    // Not searchable while uploading.
    assert!(search_ids(app, Some(alice), "*").await.is_empty());
    started
}

/// PUTs each file of the started upload to its presigned URL (a tampered body is refused first).
async fn step_put_presigned_files(
    client: &reqwest::Client,
    started: &Value,
    data: &[u8],
    doc: &[u8],
) {
    for entry in started["presigned_urls"].as_array().unwrap() {
        let filename = entry["filename"].as_str().unwrap();
        let body = if filename == "data.csv" {
            data.to_vec()
        } else {
            doc.to_vec()
        };
        let url = entry["url"].as_str().unwrap();
        if let Some(md5) = entry["md5sum"].as_str() {
            assert_eq!(md5, md5_b64(&body));
            // A wrong body for the announced md5 is refused.
            let wrong = client
                .put(url)
                .header("content-md5", md5)
                .body(b"tampered".to_vec())
                .send()
                .await
                .unwrap();
            assert!(wrong.status().is_client_error(), "{}", wrong.status());
        }
        let response = client
            .put(url)
            .header("content-md5", md5_b64(&body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{filename}: {}",
            response.status()
        );
    }
}

/// Bob, a viewer now, finds, reads and downloads the file; its sidecar was written.
async fn step_viewer_searches_reads_and_downloads(
    app: &TestApp,
    alice: &str,
    bob: &str,
    data: &[u8],
) {
    // Search, metadata and download as bob, a viewer now.
    assert_eq!(
        search_ids(app, Some(bob), "title:table").await,
        vec!["tbl:data.csv@v1".to_owned()]
    );
    let metadata = app
        .get_as(&format!("/files/{}/metadata", enc("tbl:data.csv@v1")), bob)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(metadata.json()["_extra"]["revision"], "NUM-1");
    let download = app
        .get_as(
            &format!("/files/{}?redirect=false", enc("tbl:data.csv@latest")),
            bob,
        )
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(download.bytes, data);
    // Sidecars were written at completion.
    let files = app
        .get_as("/projects/tbl/version/v1/files", alice)
        .await
        .json();
    assert!(
        files["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "data.csv" && f["md5sum"] == md5_hex(data)),
        "{files}"
    );
}

/// Uploads v2, where the unchanged file becomes a link to v1; the permissions in its completion
/// body are ignored.
async fn step_second_version_links_the_unchanged_file(
    app: &TestApp,
    alice: &str,
    bob: &str,
    data: &[u8],
) {
    // Second version: the unchanged file becomes a link to v1.
    let second = app.post_json("/projects/tbl/version/v2/upload", alice, &json!({
        "filenames": [{"filename": "data.csv", "check": "md5", "value": {"md5sum": md5_hex(data), "field": "md5sum"}}],
        "expires_in": "in 2 days",
    })).await.json();
    assert_eq!(second["presigned_urls"], json!([]), "{second}");
    let link = second["links"][0]["url"].as_str().unwrap();
    app.bearer(Method::PUT, link, alice, None)
        .await
        .assert_status(StatusCode::OK);
    // Permissions in the body are ignored for an existing project unless asked.
    let answer = app
        .put_json(
            "/projects/tbl/version/v2/complete",
            alice,
            &json!({"read_access": "public"}),
        )
        .await;
    wait_job(app, alice, &answer).await;
    assert_eq!(
        app.get_as("/projects/tbl/permissions", alice).await.json()["read_access"],
        "viewers"
    );
    let v2 = app.get_as("/projects/tbl/version/v2", alice).await.json();
    assert_eq!(v2["revision"], "NUM-2");
    assert!(v2["expires_at"].is_string());
    let via_link = app
        .get_as(
            &format!("/files/{}?redirect=false", enc("tbl:data.csv@latest")),
            bob,
        )
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(via_link.bytes, data);
    // The version's listing shows the link with its target to whoever reads it; the second
    // answer comes from the kept rendering (S3 lists afresh: an equal listing) and is the
    // same, written as `serde_json` writes the object.
    for token in [alice, bob] {
        let first = app
            .get_as("/projects/tbl/version/v2/files", token)
            .await
            .assert_status(StatusCode::OK);
        let second = app.get_as("/projects/tbl/version/v2/files", token).await;
        assert_eq!(second.bytes, first.bytes);
        let listing = first.json();
        assert_eq!(serde_json::to_vec(&listing).unwrap(), first.bytes);
        assert_eq!(listing["project_id"], "tbl");
        assert_eq!(listing["version"], "v2");
        let entries = listing["files"].as_array().unwrap();
        let link = entries
            .iter()
            .find(|entry| entry["path"] == "data.csv")
            .unwrap_or_else(|| panic!("{listing}"));
        assert_eq!(link["id"], "tbl:data.csv@v2", "{listing}");
        assert_eq!(link["link"]["id"], "tbl:data.csv@v1", "{listing}");
    }
}

/// An aborted upload leaves nothing stored; a guest may not start uploads.
async fn step_abort_and_a_guest_upload_refused(
    app: &TestApp,
    alice: &str,
    bob: &str,
    client: &reqwest::Client,
) {
    // Abort deletes what an upload stored.
    let third = app
        .post_json(
            "/projects/tbl/version/v3/upload",
            alice,
            &json!({"filenames": ["x.bin"]}),
        )
        .await
        .json();
    let url = third["presigned_urls"][0]["url"].as_str().unwrap();
    assert!(
        client
            .put(url)
            .body(b"x".to_vec())
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    app.bearer(Method::PUT, "/projects/tbl/version/v3/abort", alice, None)
        .await
        .assert_status(StatusCode::OK);
    assert!(storage_keys(app, "tbl/v3/").await.is_empty());
    // A guest cannot start uploads (no project creation, no write access).
    app.post_json(
        "/projects/other/version/v1/upload",
        bob,
        &json!({"filenames": ["a"]}),
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    assert!(storage_keys(app, "other/").await.is_empty());
}

async fn artifactdb_upload_flow_end_to_end(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Guest).await;
    let client = reqwest::Client::new();
    let data = b"col1,col2\n1,2\n".to_vec();
    let doc = json!({"path": "data.csv", "title": "a small table", "md5sum": md5_hex(&data)})
        .to_string()
        .into_bytes();

    let started = step_start_creates_the_project(&app, &alice, &data).await;

    // Completing before the files arrived names the missing ones.
    let early = app
        .bearer(
            Method::PUT,
            "/projects/tbl/version/v1/complete",
            &alice,
            None,
        )
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(early.code(), "missing_files");
    assert!(
        early.json()["reason"]
            .as_str()
            .unwrap()
            .contains("data.csv")
    );

    step_put_presigned_files(&client, &started, &data, &doc).await;
    let answer = app
        .put_json(
            "/projects/tbl/version/v1/complete",
            &alice,
            &json!({"read_access": "viewers", "viewers": ["bob"]}),
        )
        .await;
    let job = wait_job(&app, &alice, &answer).await;
    assert_eq!(job["status"], "SUCCESS");
    assert!(
        answer.json()["job_url"]
            .as_str()
            .unwrap()
            .ends_with(answer.json()["path"].as_str().unwrap())
    );

    step_viewer_searches_reads_and_downloads(&app, &alice, &bob, &data).await;

    step_second_version_links_the_unchanged_file(&app, &alice, &bob, &data).await;

    // Set permissions, then list projects and versions.
    let put = app
        .put_json(
            "/projects/tbl/permissions",
            &alice,
            &json!({"read_access": "authenticated"}),
        )
        .await;
    wait_job(&app, &alice, &put).await;
    let projects = app.get_as("/projects", &bob).await.json();
    assert_eq!(projects["results"][0]["project_id"], "tbl", "{projects}");
    let versions = app.get_as("/projects/tbl/versions", &bob).await.json();
    assert_eq!(versions["latest"]["_extra.version"], "v2", "{versions}");

    step_abort_and_a_guest_upload_refused(&app, &alice, &bob, &client).await;
}
both_backends!(artifactdb_upload_flow_end_to_end);

async fn purge_removes_late_uploads_and_expired_versions(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    app.post_json(
        "/projects/p/version/late/upload",
        &alice,
        &json!({"filenames": ["a"], "completed_by": "in 1 minutes"}),
    )
    .await
    .assert_status(StatusCode::OK);
    app.post_json(
        "/projects/p/version/tmp/upload",
        &alice,
        &json!({"filenames": [], "expires_in": "in 2 minutes"}),
    )
    .await
    .assert_status(StatusCode::OK);
    complete(&app, &alice, "p", "tmp", None).await;
    app.post_json(
        "/projects/p/version/keep/upload",
        &alice,
        &json!({"filenames": []}),
    )
    .await
    .assert_status(StatusCode::OK);
    complete(&app, &alice, "p", "keep", None).await;

    let now = chrono::Utc::now();
    let nothing = trove::api::uploads::purge_expired(&app.state, now)
        .await
        .unwrap();
    assert_eq!(nothing, trove::api::uploads::PurgeReport::default());
    let report = trove::api::uploads::purge_expired(&app.state, now + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(report.late_uploads, vec!["p/late".to_owned()]);
    assert_eq!(report.expired_versions, vec!["p/tmp".to_owned()]);
    // Each purged version is one audited mutation of the system actor.
    let root = app.user_token("root", Role::Admin).await;
    let purged = app
        .get_as("/audit?action=version.purge", &root)
        .await
        .json();
    let mut purged: Vec<(String, String, String)> = purged["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["resource"].as_str().unwrap_or_default().to_owned(),
                event["actor"].as_str().unwrap_or_default().to_owned(),
                event["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    purged.sort();
    assert_eq!(
        purged,
        vec![
            (
                "version:p@late".to_owned(),
                "system".to_owned(),
                "ok".to_owned()
            ),
            (
                "version:p@tmp".to_owned(),
                "system".to_owned(),
                "ok".to_owned()
            ),
        ]
    );
    assert!(
        app.state
            .storage
            .head(&keys::version_record("p", "late"))
            .await
            .is_err()
    );
    assert!(
        app.state
            .storage
            .head(&keys::version_record("p", "tmp"))
            .await
            .is_err()
    );
    assert!(
        app.state
            .storage
            .head(&keys::version_record("p", "keep"))
            .await
            .is_ok()
    );
    let latest = app.get_as("/projects/p/version/keep", &alice).await.json();
    assert_eq!(latest["revision"], "NUM-2", "{latest}");
    assert_eq!(
        app.get_as("/projects/p/version/tmp", &alice).await.status,
        StatusCode::NOT_FOUND
    );
}
both_backends!(purge_removes_late_uploads_and_expired_versions);

// ------------------------------------------------------------------------------ memory

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs [`streamed_upload_memory_child`] alone in a child process of this test binary, so no
/// other test's allocations disturb the process's memory figures.
#[test]
fn a_200_mib_upload_streams_without_holding_the_body() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "artifacts::streamed_upload_memory_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}

/// The measurement itself (ignored: run by the test above in its own process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a child process by a_200_mib_upload_streams_without_holding_the_body"]
async fn streamed_upload_memory_child() {
    const SIZE: usize = 200 * 1024 * 1024;
    const CHUNK: usize = 256 * 1024;
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    create_project(&app, &alice, "big", "private").await;
    create_version(&app, &alice, "big", "v1").await;

    let rss_before = status_kib("VmRSS:");
    let hwm_before = status_kib("VmHWM:");
    let chunks = futures::stream::iter((0..SIZE / CHUNK).map(|index| {
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![(index % 251) as u8; CHUNK]))
    }));
    let request = Request::builder()
        .method(Method::PUT)
        .uri("/projects/big/version/v1/files/weights.bin")
        .header("authorization", format!("Bearer {alice}"))
        .body(Body::from_stream(chunks))
        .unwrap();
    let response = app.send(request).await.assert_status(StatusCode::CREATED);
    assert_eq!(response.json()["size"], SIZE);
    let rss_after = status_kib("VmRSS:");
    let hwm_after = status_kib("VmHWM:");
    let grown_mib = hwm_after.saturating_sub(hwm_before.max(rss_before)) / 1024;
    eprintln!(
        "200 MiB upload: VmRSS {} -> {} MiB, VmHWM {} -> {} MiB",
        rss_before / 1024,
        rss_after / 1024,
        hwm_before / 1024,
        hwm_after / 1024
    );
    assert!(grown_mib < 64, "peak memory grew by {grown_mib} MiB");
}

// ------------------------------------------------------------------------------ latest

async fn latest_never_resolves_to_a_hidden_version(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Guest).await;
    create_project(&app, &alice, "p", "private").await;
    app.post_json("/projects/p/share", &alice, &json!({"principal": "bob"}))
        .await
        .assert_status(StatusCode::CREATED);
    for (version, body) in [("v1", b"one".as_slice()), ("v2", b"two".as_slice())] {
        create_version(&app, &alice, "p", version).await;
        assert_eq!(
            upload(&app, Some(&alice), "p", version, "f.txt", body)
                .await
                .status,
            StatusCode::CREATED
        );
        complete(&app, &alice, "p", version, None).await;
    }
    // v2 is for owners only: bob's `latest` is v1, alice's v2.
    let put = app
        .put_json(
            "/projects/p/version/v2/permissions",
            &alice,
            &json!({"owners": ["alice"], "read_access": "owners"}),
        )
        .await;
    wait_job(&app, &alice, &put).await;
    let latest = enc("p:f.txt@latest");
    for (token, version, bytes) in [(&alice, "v2", b"two"), (&bob, "v1", b"one")] {
        let record = app.get_as("/projects/p/version/latest", token).await.json();
        assert_eq!(record["version"], version);
        let download = app
            .get_as(&format!("/files/{latest}?redirect=false"), token)
            .await;
        assert_eq!(download.bytes, bytes);
        let metadata = app
            .get_as(&format!("/files/{latest}/metadata"), token)
            .await
            .json();
        assert_eq!(metadata["_extra"]["version"], version);
        let files = app
            .get_as("/projects/p/version/latest/files", token)
            .await
            .json();
        assert_eq!(files["version"], version);
    }
    app.get_as("/projects/p/version/v2", &bob)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // Nothing can be written through `latest` (it is always a completed version).
    upload(&app, Some(&alice), "p", "latest", "g.txt", b"x")
        .await
        .assert_status(StatusCode::CONFLICT);
    // Malformed bodies and ids are 4xx, never 5xx.
    for (method, path, body) in [
        (Method::POST, "/projects", "{"),
        (Method::POST, "/projects/p/versions", "[]"),
        (Method::PATCH, "/projects/p", "{\"state\": \"gone\"}"),
        (Method::PATCH, "/projects/p/version/v1", "{\"stable\": 3}"),
        (
            Method::POST,
            "/projects/p/share",
            "{\"principal\": \"@public\"}",
        ),
        (
            Method::POST,
            "/projects/p/version/v9/upload",
            "{\"filenames\": [7]}",
        ),
        (Method::PUT, "/projects/p/version/v1/complete", "not json"),
    ] {
        let response = raw(
            &app,
            method.clone(),
            path,
            Some(&alice),
            &[("content-type", "application/json")],
            body.as_bytes().to_vec(),
        )
        .await;
        assert!(
            response.status.is_client_error(),
            "{method} {path} {body}: {}",
            response.status
        );
    }
    for id in ["nothing", "p:f.txt", "p:f.txt@", "p:f.txt@LATEST"] {
        let response = app.get_as(&format!("/files/{}", enc(id)), &alice).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{id}");
    }
}
both_backends!(latest_never_resolves_to_a_hidden_version);

async fn concurrent_completions_get_distinct_revisions(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    create_project(&app, &alice, "p", "private").await;
    let versions: Vec<String> = (0..6).map(|index| format!("v{index}")).collect();
    for version in &versions {
        create_version(&app, &alice, "p", version).await;
    }
    let mut tasks = Vec::new();
    for version in &versions {
        let router = app.router.clone();
        let token = alice.to_owned();
        let path = format!("/projects/p/version/{version}/complete");
        tasks.push(tokio::spawn(async move {
            use tower::ServiceExt as _;
            let request = Request::builder()
                .method(Method::PUT)
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            router.oneshot(request).await.unwrap().status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::ACCEPTED);
    }
    let mut revisions = Vec::new();
    for version in &versions {
        let record = app
            .get_as(&format!("/projects/p/version/{version}"), &alice)
            .await
            .json();
        assert_eq!(record["status"], "completed");
        revisions.push(record["numerical_revision"].as_u64().unwrap());
    }
    revisions.sort_unstable();
    assert_eq!(revisions, vec![1, 2, 3, 4, 5, 6]);
    // A second completion is a conflict.
    let again = app
        .bearer(Method::PUT, "/projects/p/version/v0/complete", &alice, None)
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(again.code(), "version_completed");
}
both_backends!(concurrent_completions_get_distinct_revisions);

#[test]
fn purge_cron_is_validated_and_can_be_disabled() {
    let mut settings = trove::config::Settings {
        purge_cron: "every ten minutes".to_owned(),
        ..trove::config::Settings::default()
    };
    let error = settings.validate().expect_err("invalid cron");
    assert!(error.to_string().contains("TROVE_PURGE_CRON"), "{error}");
    settings.purge_cron = String::new();
    settings.validate().unwrap();
    assert_eq!(
        trove::config::Settings::default().purge_cron,
        "0 */10 * * * *"
    );
}
