//! Authorized search through the real router, on both storage backends: for every caller, the
//! search hits equal the documents `GET /files/{id}/metadata` lets them read, which equal what
//! the permission engine allows on direct access. Plus hostile queries, pagination with
//! scroll cursors, aggregations, ArtifactDB listings and drift repaired through `/info` and
//! `/index/sync`.

use std::collections::BTreeSet;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use trove::config::Settings;
use trove::permissions::{Action, Role};
use trove::storage::{ObjectStore, ObjectStoreExt as _, PutOptions, keys};

use crate::common::artifacts::{self, enc, search_id_set, search_id_set_with, token_of};
use crate::common::{TestApp, local_settings, put_json, s3_server::S3TestServer, s3_settings};

/// Everyone the matrix asks.
const EVERY_PRINCIPAL: &[&str] = &[
    "olive",
    "group:team",
    "CN=ML-Team,OU=Groups,DC=corp",
    "machine:ci",
];

fn profile(scope: &str, read_access: &str) -> Value {
    let viewers: Vec<&str> = std::iter::once("vera")
        .chain(EVERY_PRINCIPAL.iter().skip(1).copied())
        .collect();
    json!({
        "scope": scope,
        "owners": ["olive"],
        "writers": ["walt"],
        "viewers": viewers,
        "read_access": read_access,
        "write_access": "owners",
    })
}

/// Seeds projects covering every read rule at every scope, `inherit`, an expired grant, and
/// deprecated and disabled states; each with one completed version holding a metadata
/// document and a data file.
async fn seed(storage: &dyn ObjectStore) -> Vec<String> {
    // (project, namespace, state, project profile, version profile)
    type Seeded<'a> = (
        String,
        Option<&'a str>,
        &'a str,
        Option<Value>,
        Option<Value>,
    );
    let mut projects: Vec<Seeded<'_>> = Vec::new();
    for rule in [
        "owners",
        "writers",
        "viewers",
        "authenticated",
        "public",
        "none",
    ] {
        projects.push((
            format!("p-{rule}"),
            None,
            "active",
            Some(profile("project", rule)),
            None,
        ));
        projects.push((
            format!("v-{rule}"),
            None,
            "active",
            Some(profile("project", "owners")),
            Some(profile("version", rule)),
        ));
    }
    projects.push(("in-ns".into(), Some("team-ns"), "active", None, None));
    let mut inherit = json!({"scope": "project", "viewers": ["oscar"], "inherit": true});
    inherit["owners"] = json!([]);
    projects.push((
        "inherits".into(),
        Some("team-ns"),
        "active",
        Some(inherit),
        None,
    ));
    projects.push(("global-only".into(), None, "active", None, None));
    let mut expired = profile("project", "viewers");
    expired["viewers"] = json!(["oscar", "vera"]);
    expired["expires"] = json!({"oscar": "2020-01-01T00:00:00Z"});
    projects.push(("expired-share".into(), None, "active", Some(expired), None));
    projects.push((
        "deprecated".into(),
        None,
        "deprecated",
        Some(profile("project", "viewers")),
        None,
    ));
    projects.push((
        "disabled".into(),
        None,
        "disabled",
        Some(profile("project", "public")),
        None,
    ));

    put_json(
        storage,
        &keys::global_permissions(),
        &profile("global", "viewers"),
    )
    .await;
    put_json(
        storage,
        &keys::namespace_record("team-ns"),
        &json!({"name": "team-ns"}),
    )
    .await;
    put_json(
        storage,
        &keys::namespace_permissions("team-ns"),
        &profile("namespace", "authenticated"),
    )
    .await;

    let mut ids = Vec::new();
    for (project, namespace, state, project_profile, version_profile) in &projects {
        put_json(
            storage,
            &keys::project_record(project),
            &json!({
                "project_id": project, "title": format!("{project} model"), "type": "MODEL",
                "namespace": namespace, "state": state,
                "created_at": "2026-11-01T00:00:00Z", "created_by": "olive"
            }),
        )
        .await;
        if let Some(profile) = project_profile {
            put_json(storage, &keys::project_permissions(project), profile).await;
        }
        if let Some(profile) = version_profile {
            put_json(storage, &keys::version_permissions(project, "v1"), profile).await;
        }
        put_json(storage, &keys::version_record(project, "v1"), &json!({
            "project_id": project, "version": "v1", "created_at": "2026-11-01T00:00:00Z",
            "created_by": "olive", "status": "completed", "revision": "NUM-1", "numerical_revision": 1
        })).await;
        put_json(
            storage,
            &keys::version_file(project, "v1", "card.json"),
            &json!({"title": format!("card of {project}"), "path": "card.json"}),
        )
        .await;
        storage
            .put_bytes(
                &keys::version_file(project, "v1", "weights.bin"),
                Bytes::from_static(b"w"),
                PutOptions::default(),
            )
            .await
            .unwrap();
        ids.push(format!("{project}:card.json@v1"));
        ids.push(format!("{project}:weights.bin@v1"));
    }
    ids
}

struct Jwks {
    key: EncodingKey,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

fn jwks() -> Jwks {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let key = EncodingKey::from_ec_der(pair.to_pkcs8v1().unwrap().as_ref());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&JwkSet { keys: vec![jwk] }).unwrap(),
    )
    .unwrap();
    Jwks {
        key,
        _dir: dir,
        path,
    }
}

fn configure_oidc(settings: &mut Settings, jwks: &Jwks) {
    settings.oidc.jwks_file = Some(jwks.path.clone());
    settings.oidc.issuer = Some("https://idp.example".into());
    settings.oidc.audience = Some("trove-api".into());
    settings.sync_cron = String::new();
}

fn external_token(jwks: &Jwks) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(
        &header,
        &json!({"iss": "https://idp.example", "aud": "trove-api", "exp": now + 600, "iat": now,
                "preferred_username": "dora", "groups": ["CN=ML-Team,OU=Groups,DC=corp", "CN=Other"]}),
        &jwks.key,
    )
    .unwrap()
}

/// (name, bearer credential or empty for anonymous, username for direct checks)
async fn callers(app: &TestApp, jwks: &Jwks) -> Vec<(String, String)> {
    let mut callers = vec![("anonymous".to_owned(), String::new())];
    for (name, role) in [
        ("root", Role::Admin),
        ("rita", Role::Reviewer),
        ("olive", Role::Maintainer),
        ("walt", Role::Developer),
        ("vera", Role::Guest),
        ("gina", Role::Maintainer),
        ("oscar", Role::Maintainer),
    ] {
        callers.push((name.to_owned(), app.user_token(name, role).await));
    }
    let root = callers[1].1.clone();
    app.post_json(
        "/groups",
        &root,
        &json!({"name": "team", "members": ["gina"]}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    callers.push(("dora (directory group)".to_owned(), external_token(jwks)));
    let olive = callers[3].1.clone();
    let key = app
        .post_json("/api-keys", &olive, &json!({
            "name": "ci", "scopes": [{"project": "p-viewers", "access": "read"}, {"project": "p-owners", "access": "read"}]
        }))
        .await.assert_status(StatusCode::CREATED);
    callers.push((
        "machine:ci".to_owned(),
        key.json()["key"].as_str().unwrap().to_owned(),
    ));
    callers
}

/// A request with a credential (a token, an API key; empty: anonymous).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    credential: &str,
) -> crate::common::TestResponse {
    artifacts::call(app, method, path, token_of(credential), None).await
}

async fn search_ids(app: &TestApp, credential: &str, query: &str) -> BTreeSet<String> {
    search_id_set(app, token_of(credential), query).await
}

async fn matrix(app: TestApp, jwks: &Jwks) {
    let ids = seed(app.state.storage.as_ref()).await;
    app.index_all().await;
    let callers = callers(&app, jwks).await;
    let now = chrono::Utc::now();
    for (name, credential) in &callers {
        let found = search_ids(&app, credential, "*").await;
        let mut readable = BTreeSet::new();
        let mut allowed = BTreeSet::new();
        let header = (!credential.is_empty()).then(|| format!("Bearer {credential}"));
        let principal = app
            .state
            .auth
            .authenticate(header.as_deref())
            .await
            .unwrap();
        for id in &ids {
            let response = call(
                &app,
                Method::GET,
                &format!("/files/{}/metadata", enc(id)),
                credential,
            )
            .await;
            match response.status {
                StatusCode::OK => {
                    assert_eq!(response.json()["_extra"]["id"], id.as_str());
                    readable.insert(id.clone());
                }
                StatusCode::NOT_FOUND => assert_eq!(response.code(), "not_found"),
                other => panic!("{name} {id}: unexpected {other}: {}", response.text()),
            }
            // What the engine allows on direct access, from storage.
            let (project, _) = id.split_once(':').unwrap();
            if let Ok(view) = trove::api::access::authorize_version(
                &app.state,
                &principal,
                project,
                "v1",
                Action::ReadMetadata,
            )
            .await
            {
                assert!(
                    principal
                        .decide(Action::ReadMetadata, &view.target, now)
                        .is_ok()
                );
                allowed.insert(id.clone());
            }
        }
        assert_eq!(
            found, readable,
            "{name}: search hits differ from readable documents"
        );
        assert_eq!(
            readable, allowed,
            "{name}: metadata access differs from the permission engine"
        );
        let expected_projects = |list: &[&str]| -> BTreeSet<String> {
            list.iter()
                .flat_map(|p| [format!("{p}:card.json@v1"), format!("{p}:weights.bin@v1")])
                .collect()
        };
        // Spot checks that the matrix means what SPEC §3 says.
        match name.as_str() {
            "root" => assert_eq!(found.len(), ids.len(), "admins see everything"),
            "anonymous" => assert_eq!(found, expected_projects(&["p-public", "v-public"])),
            // Issue 12: a key acts for its creator (olive owns both) inside its scopes, so a
            // read scope reaches p-owners too (before, only where the rule admitted viewers).
            "machine:ci" => assert_eq!(
                found,
                expected_projects(&["p-owners", "p-viewers"]),
                "the key reaches what its creator reads, inside its scopes only"
            ),
            "rita" => assert!(!found.iter().any(|id| id.starts_with("disabled:"))),
            "oscar" => {
                assert!(
                    found.contains("inherits:card.json@v1"),
                    "inherit unions the grant"
                );
                assert!(
                    !found.contains("expired-share:card.json@v1"),
                    "expired grant"
                );
            }
            "vera" => {
                assert!(
                    found.contains("deprecated:card.json@v1"),
                    "deprecated stays readable"
                );
                assert!(
                    found.contains("global-only:card.json@v1"),
                    "global profile applies"
                );
                assert!(!found.contains("p-writers:card.json@v1"));
            }
            "walt" => assert!(found.contains("p-writers:card.json@v1")),
            "gina" | "dora (directory group)" => {
                assert!(found.contains("p-viewers:card.json@v1"));
                assert!(!found.contains("p-owners:card.json@v1"));
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn search_hits_equal_readable_documents_for_every_caller_on_local_storage() {
    let jwks = jwks();
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = local_settings(data_dir.path().to_path_buf());
    configure_oidc(&mut settings, &jwks);
    let app = TestApp::with_settings(settings).await;
    matrix(app, &jwks).await;
    drop(data_dir);
}

#[tokio::test]
async fn search_hits_equal_readable_documents_for_every_caller_on_s3() {
    let server = S3TestServer::start().await;
    let jwks = jwks();
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = s3_settings(&server, data_dir.path(), "trove-matrix").await;
    configure_oidc(&mut settings, &jwks);
    let app = TestApp::with_settings(settings).await;
    matrix(app, &jwks).await;
    drop((data_dir, server));
}

/// A small corpus for the other tests: olive's private project, a public one.
async fn small(app: &TestApp) -> (String, String) {
    let storage = app.state.storage.as_ref();
    for (project, rule) in [("private-model", "owners"), ("open-data", "public")] {
        put_json(
            storage,
            &keys::project_record(project),
            &json!({
                "project_id": project, "title": project, "type": "DATASET",
                "created_at": "2026-11-01T00:00:00Z", "created_by": "olive"
            }),
        )
        .await;
        put_json(
            storage,
            &keys::project_permissions(project),
            &profile("project", rule),
        )
        .await;
        for (version, revision) in [("v1", 1), ("v2", 2)] {
            put_json(storage, &keys::version_record(project, version), &json!({
                "project_id": project, "version": version, "created_at": "2026-11-01T00:00:00Z",
                "created_by": "olive", "status": "completed", "revision": format!("NUM-{revision}"),
                "numerical_revision": revision
            })).await;
            for index in 0..3 {
                put_json(storage, &keys::version_file(project, version, &format!("doc{index}.json")),
                    &json!({"title": format!("doc {index} of {project}"), "path": format!("doc{index}.json")})).await;
            }
        }
    }
    app.index_all().await;
    (
        app.user_token("olive", Role::Maintainer).await,
        app.user_token("root", Role::Admin).await,
    )
}

#[tokio::test]
async fn hostile_queries_never_widen_the_filter_and_bad_syntax_is_a_400() {
    let app = TestApp::local().await;
    small(&app).await;
    let stranger = app.user_token("mallory", Role::Maintainer).await;
    for query in [
        "* OR title:private",
        "NOT title:nothing",
        "title:private OR *",
        "(* OR _extra.project_id:private-model)",
        "private-model",
        "_extra.permissions.owners:olive",
    ] {
        for id in search_ids(&app, &stranger, query).await {
            assert!(id.starts_with("open-data:"), "{query} leaked {id}");
        }
    }
    let long_terms = (0..400)
        .map(|i| format!("term{i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    assert!(search_ids(&app, &stranger, &long_terms).await.is_empty());
    for query in [
        "readers:olive",
        "readers:*",
        "title:(",
        "((((",
        "title:\"open",
        "AND",
        &"(".repeat(200),
        &"x ".repeat(6000),
    ] {
        let response = app
            .get_as(&format!("/search?q={}", enc(query)), &stranger)
            .await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{query:.40}: {}",
            response.text()
        );
        assert_eq!(response.code(), "invalid_query");
    }
    for bad in [
        "size=0",
        "size=501",
        "size=abc",
        "sort=_extra.permissions",
        "latest=maybe",
        "kind=robot",
    ] {
        let response = app.get_as(&format!("/search?{bad}"), &stranger).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            response.text()
        );
    }
}

/// The ids of every document (files and projects) `credential` finds with `query`.
async fn all_ids(app: &TestApp, credential: &str, query: &str) -> BTreeSet<String> {
    search_id_set_with(app, token_of(credential), query, "&kind=all").await
}

/// `key:*` finds exactly the documents that have the key — `_extra`'s entries that every file
/// or project document has included (they are recorded as one term per document), for a
/// reader who sees everything and one who sees only what is public.
#[tokio::test]
async fn existence_queries_find_exactly_the_documents_that_have_the_key() {
    let app = TestApp::local().await;
    let (olive, _) = small(&app).await;
    let projects: BTreeSet<String> = ["open-data", "private-model"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let everything = all_ids(&app, &olive, "*").await;
    let files: BTreeSet<String> = everything.difference(&projects).cloned().collect();
    assert_eq!((everything.len(), files.len()), (14, 12));
    let none = BTreeSet::new();
    for (query, expected) in [
        ("_extra:*", &everything),
        ("_extra.id:*", &everything),
        ("_extra.kind:*", &everything),
        ("_extra.meta_indexed:*", &everything),
        ("_extra.version:*", &files),
        ("_extra.metapath:*", &files),
        // Written `null` on every file document, as ArtifactDB does.
        ("_extra.link:*", &files),
        ("_extra.sha256:*", &files),
        ("NOT _extra.version:*", &projects),
        ("_extra.version:* AND NOT _extra.kind:*", &none),
        ("_extra.oversized:*", &none),
        ("_extra.link.artifactdb:*", &none),
        ("_extra.permissions:*", &none),
        ("_extra.nothing:*", &none),
        // The documents' own keys.
        ("created_by:*", &projects),
        ("path:*", &files),
        ("title:*", &everything),
    ] {
        assert_eq!(&all_ids(&app, &olive, query).await, expected, "{query}");
    }
    // Anonymous callers find only the public project's documents.
    let public: BTreeSet<String> = everything
        .iter()
        .filter(|id| id.starts_with("open-data"))
        .cloned()
        .collect();
    assert_eq!(public.len(), 7);
    for query in [
        "_extra:*",
        "_extra.id:*",
        "_extra.version:* OR _extra.kind:*",
    ] {
        assert_eq!(all_ids(&app, "", query).await, public, "{query}");
    }
}

#[tokio::test]
async fn pages_scroll_with_signed_cursors_and_permissions_show_only_to_managers() {
    let app = TestApp::local().await;
    let (olive, _) = small(&app).await;
    let first = app
        .get_as("/search?q=*&size=5&sort=-_extra.numerical_revision", &olive)
        .await
        .assert_status(StatusCode::OK);
    let body = first.json();
    assert_eq!(body["total"], 12);
    assert_eq!(body["count"], 5);
    let next = body["next"].as_str().unwrap().to_owned();
    assert!(
        first.headers["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"more\"")
    );
    assert!(
        body["results"][0]["_extra"]["permissions"].is_object(),
        "olive owns: she sees permissions"
    );
    let mut seen: BTreeSet<String> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["_extra"]["id"].as_str().unwrap().to_owned())
        .collect();
    let mut cursor = Some(next);
    while let Some(path) = cursor {
        let page = app
            .get_as(&path, &olive)
            .await
            .assert_status(StatusCode::OK);
        let page = page.json();
        seen.extend(
            page["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|hit| hit["_extra"]["id"].as_str().unwrap().to_owned()),
        );
        cursor = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 12, "every document exactly once across pages");

    let stranger = app.user_token("mallory", Role::Maintainer).await;
    let page = app
        .get_as(
            "/search?q=*&fields=title,_extra.id,_extra.permissions",
            &stranger,
        )
        .await
        .json();
    for hit in page["results"].as_array().unwrap() {
        assert!(
            hit["_extra"].get("permissions").is_none(),
            "not a manager: {hit}"
        );
        assert_eq!(hit.as_object().unwrap().len(), 2, "fields filter: {hit}");
    }
    for bad in ["/scroll/garbage", "/scroll/abc.def"] {
        let response = app
            .get_as(bad, &olive)
            .await
            .assert_status(StatusCode::BAD_REQUEST);
        assert_eq!(response.code(), "invalid_cursor");
    }
}

/// A file's metadata at `latest`, raw as uploaded, and refused for a bad id.
async fn step_metadata_of_latest_raw_and_bad_ids(app: &TestApp, olive: &str) {
    let metadata = app
        .get_as(
            &format!("/files/{}/metadata", enc("private-model:doc1.json@latest")),
            olive,
        )
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(metadata.json()["_extra"]["version"], "v2");
    let raw = app
        .get_as(
            &format!(
                "/files/{}/metadata?raw=true",
                enc("private-model:doc1.json@v1")
            ),
            olive,
        )
        .await
        .json();
    assert!(raw.get("_extra").is_none());
    assert_eq!(raw["title"], "doc 1 of private-model");
    let bad = app
        .get_as("/files/not-an-id/metadata", olive)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "invalid_id");
}

/// The project listing of an anonymous caller, the versions of the private project (hidden from
/// anonymous callers) and its metadata pages.
async fn step_project_and_version_listings(app: &TestApp, olive: &str) {
    let projects = app.get("/projects").await.json();
    assert_eq!(
        projects["total"], 1,
        "anonymous sees the public project only: {projects}"
    );
    assert_eq!(projects["results"][0]["project_id"], "open-data");
    assert_eq!(
        projects["results"][0]["aggs"],
        json!([{"_extra.version": "v1"}, {"_extra.version": "v2"}])
    );
    let versions = app
        .get_as("/projects/private-model/versions", olive)
        .await
        .json();
    assert_eq!(versions["total"], 2);
    assert_eq!(versions["latest"], json!({"_extra.version": "v2"}));
    let hidden = app.get("/projects/private-model/versions").await;
    assert_eq!(
        hidden.status,
        StatusCode::NOT_FOUND,
        "never reveal existence"
    );
    let page = app
        .get_as("/projects/private-model/version/v1/metadata", olive)
        .await
        .json();
    assert_eq!(page["total"], 3);
    let page = app
        .get_as("/projects/private-model/metadata", olive)
        .await
        .json();
    assert_eq!(page["total"], 6);
}

#[tokio::test]
async fn artifactdb_listings_latest_and_aggregations() {
    let app = TestApp::local().await;
    let (olive, _) = small(&app).await;
    let latest = app
        .get_as("/search?q=*&latest=true&size=100", &olive)
        .await
        .json();
    assert!(
        latest["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|hit| hit["_extra"]["version"] == "v2")
    );
    assert_eq!(latest["total"], 6);

    step_metadata_of_latest_raw_and_bad_ids(&app, &olive).await;

    step_project_and_version_listings(&app, &olive).await;

    let aggregate = app
        .get_as("/aggregate?q=*&field=_extra.project_id", &olive)
        .await
        .json();
    assert_eq!(
        aggregate["results"],
        json!([{"_extra.project_id": "open-data", "count": 6}, {"_extra.project_id": "private-model", "count": 6}])
    );
    let anonymous = app.get("/aggregate?field=_extra.project_id").await.json();
    assert_eq!(
        anonymous["results"],
        json!([{"_extra.project_id": "open-data", "count": 6}])
    );
    assert_eq!(
        app.get("/aggregate?field=_extra.permissions").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn drift_is_reported_by_info_and_repaired_by_index_sync() {
    let app = TestApp::local().await;
    let (olive, root) = small(&app).await;
    let info = app
        .get_as("/projects/private-model/version/v1/info", &olive)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(info.json()["status"], "ok");
    assert_eq!(
        app.get("/projects/private-model/version/v1/info")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // A profile edited behind the service's back.
    put_json(app.state.storage.as_ref(), &keys::version_permissions("private-model", "v1"),
        &json!({"scope": "version", "owners": ["olive"], "viewers": ["mallory"], "read_access": "viewers"})).await;
    let info = app
        .get_as("/projects/private-model/version/v1/info", &olive)
        .await
        .json();
    assert_eq!(info["status"], "error");
    assert!(
        info["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().ends_with("permissions differ")),
        "{info}"
    );
    assert_eq!(info["permissions"]["viewers"], json!(["mallory"]));

    assert_eq!(
        app.get_as("/index/sync", &olive).await.status,
        StatusCode::FORBIDDEN
    );
    let sync = app.get_as("/index/sync", &root).await.json();
    assert_eq!(sync["drift_count"], 1, "{sync}");
    let repaired = app.get_as("/index/sync?repair=true", &root).await.json();
    assert_eq!(repaired["repaired"], true);
    let info = app
        .get_as("/projects/private-model/version/v1/info", &olive)
        .await
        .json();
    assert_eq!(info["status"], "ok", "{info}");
    let mallory = app.user_token("mallory", Role::Maintainer).await;
    assert_eq!(
        search_ids(&app, &mallory, "_extra.project_id:private-model")
            .await
            .len(),
        3
    );

    // A rebuild job, and its status for its creator only.
    let job = app
        .bearer(Method::PUT, "/index/build", &root, None)
        .await
        .assert_status(StatusCode::ACCEPTED);
    let job_path = job.json()["path"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = app.get_as(&job_path, &root).await.json();
        if status["status"] == "SUCCESS" {
            break;
        }
        assert_ne!(status["status"], "FAILURE", "{status}");
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.get_as(&job_path, &olive).await.status,
        StatusCode::NOT_FOUND
    );
    let status = app.get_as("/index/status", &root).await.json();
    assert_eq!(status["documents"], 14);
    assert!(status["last_sync"].is_object());
    app.put_json("/index/build", &root, &json!({"project_ids": ["../etc"]}))
        .await
        .assert_status(StatusCode::BAD_REQUEST);
}
