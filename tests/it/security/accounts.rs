//! Attacks on accounts: recycled identities (users and groups), pre-claimed principals,
//! unauthenticated inflation, login throttling; and the account usability defects of the same
//! issue (API keys acting for their creators, disabling keys, CLI audit, the revocation purge
//! schedule, a late JWKS URL).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use md5::Digest as _;
use serde_json::{Value, json};
use trove::auth::store::RevokedToken;
use trove::permissions::Role;
use trove::storage::keys;

use crate::common::artifacts::{create_project, hit_project_ids};
use crate::common::idp::Provider;
use crate::common::{Backend, BackendApp, TestApp, TestResponse, local_settings};

const PASSWORD: &str = "correct horse battery";

use crate::both_backends;

fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A JSON request from a given client address (the TCP peer the server would see).
fn from_address(
    address: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let mut request = builder.body(Body::from(body.to_string())).unwrap();
    request.extensions_mut().insert(axum::extract::ConnectInfo(
        format!("{address}:4000")
            .parse::<std::net::SocketAddr>()
            .unwrap(),
    ));
    request
}

async fn upload(
    app: &TestApp,
    token: &str,
    project: &str,
    version: &str,
    path: &str,
    body: &[u8],
) -> TestResponse {
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body));
    app.send(
        Request::builder()
            .method(Method::PUT)
            .uri(format!(
                "/projects/{project}/version/{version}/files/{path}"
            ))
            .header("authorization", format!("Bearer {token}"))
            .header("content-md5", md5)
            .body(Body::from(body.to_vec()))
            .unwrap(),
    )
    .await
}

/// Project ids found by a project search of `token`.
async fn found_projects(app: &TestApp, token: &str) -> Vec<String> {
    let response = app
        .get_as("/search?q=*&kind=project&size=500", token)
        .await
        .assert_status(StatusCode::OK);
    hit_project_ids(&response.json())
}

/// Polls `check` until it holds (the index commits in the background; a retry backs off), for
/// at most 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

/// Total bytes stored under the audit prefix.
async fn audit_bytes(app: &TestApp) -> u64 {
    app.state
        .storage
        .list_all(&keys::audit_prefix())
        .await
        .unwrap()
        .iter()
        .map(|object| object.size)
        .sum()
}

// ------------------------------------------------------------------ 1. recycled accounts

/// frank registers, creates a private project and an API key reading it; answers his token
/// and key.
async fn step_frank_with_a_project_and_an_api_key(app: &TestApp) -> (String, String) {
    assert_eq!(
        app.register("frank", PASSWORD).await.status,
        StatusCode::CREATED
    );
    let old_token = app.login("frank", PASSWORD).await;
    create_project(app, &old_token, "franks-model", "private").await;
    let key = app
        .post_json("/api-keys", &old_token, &json!({"name": "franks-ci", "scopes": [{"project": "franks-model", "access": "read"}]}))
        .await.assert_status(StatusCode::CREATED);
    let old_key = key.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get_as("/projects/franks-model", &old_key).await.status,
        StatusCode::OK
    );
    (old_token, old_key)
}

/// The name is retired: registering it (or creating it from the CLI) is refused; only admins
/// free it, once, and freeing names the profiles it scrubbed.
async fn step_the_name_stays_retired_until_an_admin_frees_it(app: &TestApp, root: &str) {
    // The name is retired: registering it (or creating it from the CLI) is refused.
    let again = app
        .register("frank", "another password 1")
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(again.code(), "name_retired");
    let direct = app
        .state
        .auth
        .create_account("frank", "another password 1", Role::Admin, None)
        .await;
    assert!(
        matches!(direct, Err(trove::auth::service::AuthError::NameRetired(_))),
        "{direct:?}"
    );
    // Only admins free it.
    let mallory = app.user_token("mallory", Role::Maintainer).await;
    assert_eq!(
        app.bearer(Method::POST, "/users/frank/free", &mallory, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let freed = app
        .bearer(Method::POST, "/users/frank/free", root, None)
        .await
        .assert_status(StatusCode::OK);
    assert!(
        freed.json()["profiles"]
            .as_array()
            .unwrap()
            .contains(&json!(keys::project_permissions("franks-model"))),
        "{}",
        freed.text()
    );
    assert_eq!(
        app.bearer(Method::POST, "/users/frank/free", root, None)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "a name is freed once"
    );
}

/// frank owns a private project, holds a token and an API key, and is deleted; someone
/// registers `frank` again. Before: the old token worked again and the new account read the
/// project. Now the name is retired until an admin frees it, freeing scrubs every grant, and
/// the old credentials stay dead for good.
async fn a_deleted_account_re_registered_inherits_nothing(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let root = app.user_token("root", Role::Admin).await;
    let (old_token, old_key) = step_frank_with_a_project_and_an_api_key(&app).await;

    app.delete_as("/users/frank", &root)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let stale = app
        .get_as("/auth/me", &old_token)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(stale.code(), "token_unknown_account");
    assert_eq!(
        app.get_as("/auth/me", &old_key).await.code(),
        "api_key_invalid"
    );

    step_the_name_stays_retired_until_an_admin_frees_it(&app, &root).await;

    // A new frank: none of the old credentials or grants come back.
    assert_eq!(
        app.register("frank", "another password 1").await.status,
        StatusCode::CREATED
    );
    let new_token = app.login("frank", "another password 1").await;
    for credential in [&old_token, &old_key] {
        let response = app.get_as("/auth/me", credential).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{}",
            response.text()
        );
    }
    for credential in [&old_token, &old_key] {
        assert_eq!(
            app.get_as("/projects/franks-model", credential)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.get_as("/projects/franks-model", &new_token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(
        !found_projects(&app, &new_token)
            .await
            .contains(&"franks-model".to_owned())
    );
    let profile = app
        .get_as("/projects/franks-model/permissions", &root)
        .await
        .json();
    assert!(!profile.to_string().contains("\"frank\""), "{profile}");
}

both_backends!(a_deleted_account_re_registered_inherits_nothing);

// ------------------------------------------------------------------ 2. recycled groups

/// A group `ml` is granted read on a private project and deleted; another maintainer creates
/// `ml` again with herself as member. Before: she inherited the grant. Now the name is
/// retired until an admin frees it, which removes `group:ml` from every profile.
async fn a_deleted_group_re_created_inherits_nothing(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let root = app.user_token("root", Role::Admin).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Guest).await;
    let mallory = app.user_token("mallory", Role::Maintainer).await;
    create_project(&app, &alice, "secret", "private").await;
    app.post_json("/groups", &root, &json!({"name": "ml", "members": ["bob"]}))
        .await
        .assert_status(StatusCode::CREATED);
    app.put_json(
        "/projects/secret/permissions",
        &alice,
        &json!({"viewers": ["group:ml"], "read_access": "viewers"}),
    )
    .await
    .assert_status(StatusCode::ACCEPTED);
    assert_eq!(
        app.get_as("/projects/secret", &bob).await.status,
        StatusCode::OK
    );

    assert_eq!(
        app.delete_as("/groups/ml", &root).await.status,
        StatusCode::NO_CONTENT
    );
    let recreated = app
        .post_json("/groups", &mallory, &json!({"name": "ml", "members": []}))
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(recreated.code(), "name_retired");

    app.bearer(Method::POST, "/groups/ml/free", &root, None)
        .await
        .assert_status(StatusCode::OK);
    let recreated = app
        .post_json("/groups", &mallory, &json!({"name": "ml", "members": []}))
        .await;
    assert_eq!(
        recreated.status,
        StatusCode::CREATED,
        "{}",
        recreated.text()
    );
    assert_eq!(
        app.get_as("/projects/secret", &mallory).await.status,
        StatusCode::NOT_FOUND
    );
    let profile = app
        .get_as("/projects/secret/permissions", &alice)
        .await
        .json();
    assert_eq!(profile["viewers"], json!([]), "{profile}");
}

both_backends!(a_deleted_group_re_created_inherits_nothing);

/// Profiles pre-claiming names nobody holds (`ghostuser`, `group:ghost`) were accepted; a
/// later account or group of that name would have inherited the grant.
#[tokio::test]
async fn permissions_refuse_principals_that_do_not_exist() {
    let app = TestApp::local().await;
    let root = app.user_token("root", Role::Admin).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    app.user_token("bob", Role::Guest).await;
    create_project(&app, &alice, "p", "private").await;
    assert_eq!(
        app.post_json("/projects/p/versions", &alice, &json!({"version": "v1"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let namespace = app
        .post_json(
            "/namespaces",
            &root,
            &json!({"name": "team", "description": "t", "visibility": "private"}),
        )
        .await;
    assert_eq!(
        namespace.status,
        StatusCode::CREATED,
        "{}",
        namespace.text()
    );

    for (path, token) in [
        ("/projects/p/permissions", &alice),
        ("/projects/p/version/v1/permissions", &alice),
        ("/namespaces/team/permissions", &root),
    ] {
        for ghost in [
            json!({"viewers": ["ghostuser"]}),
            json!({"owners": ["group:ghost"]}),
            json!({"writers": ["bob", "ghostuser"]}),
        ] {
            let refused = app.put_json(path, token, &ghost).await;
            assert_eq!(
                refused.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path} {ghost}"
            );
            assert_eq!(refused.code(), "unknown_principal", "{path} {ghost}");
        }
        // Directory groups and machines are taken as given; existing accounts are fine.
        let accepted = app
            .put_json(path, token, &json!({"owners": ["alice"], "viewers": ["bob", "CN=Readers,OU=Groups", "machine:ci"]}))
            .await;
        assert_eq!(
            accepted.status,
            StatusCode::ACCEPTED,
            "{path}: {}",
            accepted.text()
        );
    }

    // The completion body's profile is checked the same way.
    assert_eq!(
        upload(&app, &alice, "p", "v1", "a.txt", b"hello")
            .await
            .status,
        StatusCode::CREATED
    );
    let completed = app
        .put_json(
            "/projects/p/version/v1/complete?overwrite_permissions=true",
            &alice,
            &json!({"viewers": ["ghostuser"]}),
        )
        .await;
    assert_eq!(
        completed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        completed.text()
    );
    assert_eq!(completed.code(), "unknown_principal");

    // A name already listed (e.g. of an account deleted since) does not block other changes.
    app.user_token("carol", Role::Guest).await;
    app.put_json(
        "/projects/p/permissions",
        &alice,
        &json!({"viewers": ["bob", "carol"]}),
    )
    .await
    .assert_status(StatusCode::ACCEPTED);
    assert_eq!(
        app.delete_as("/users/carol", &root).await.status,
        StatusCode::NO_CONTENT
    );
    app.put_json(
        "/projects/p/permissions",
        &alice,
        &json!({"read_access": "viewers"}),
    )
    .await
    .assert_status(StatusCode::ACCEPTED);
}

// ------------------------------------------------------------------ 6. inflation

/// A 1.9 MB username at registration stored ~3.8 MB of audit per request (and a huge name at
/// login grew the log and the limiter). Now it is a clear 400 and the audit grows by a small,
/// bounded amount.
#[tokio::test]
async fn a_huge_username_cannot_inflate_the_audit_log() {
    let app = TestApp::local().await;
    let huge = "a".repeat(1_900_000);
    let before = audit_bytes(&app).await;
    let registered = app
        .register(&huge, PASSWORD)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(registered.code(), "invalid_name");
    assert!(registered.bytes.len() < 4096, "the answer echoes the name");
    let after_register = audit_bytes(&app).await;
    assert!(
        after_register - before < 16 * 1024,
        "registration stored {} bytes of audit",
        after_register - before
    );

    let login = app
        .login_response(&huge, PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(login.code(), "invalid_credentials");
    app.state.audit.flush().await.unwrap();
    let after_login = audit_bytes(&app).await;
    assert!(
        after_login - after_register < 16 * 1024,
        "a login stored {} bytes of audit",
        after_login - after_register
    );
    // The events name a bounded prefix of what was typed.
    let objects = app
        .state
        .storage
        .list_all(&keys::audit_prefix())
        .await
        .unwrap();
    for object in objects {
        assert!(
            object.size < 8 * 1024,
            "{} is {} bytes",
            object.key,
            object.size
        );
    }
}

/// Registration had no limit per client address: one address could create accounts (and
/// audit events) without end.
#[tokio::test]
async fn registration_is_rate_limited_per_client_address() {
    let app = TestApp::local_with(|settings| settings.auth.register_rate_limit_per_ip = 3).await;
    for index in 0..3 {
        let body = json!({"username": format!("user{index}"), "password": PASSWORD});
        app.send(from_address(
            "10.0.0.1",
            Method::POST,
            "/auth/register",
            None,
            &body,
        ))
        .await
        .assert_status(StatusCode::CREATED);
    }
    let body = json!({"username": "user9", "password": PASSWORD});
    let limited = app
        .send(from_address(
            "10.0.0.1",
            Method::POST,
            "/auth/register",
            None,
            &body,
        ))
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    let elsewhere = app
        .send(from_address(
            "10.0.0.2",
            Method::POST,
            "/auth/register",
            None,
            &body,
        ))
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::CREATED,
        "{}",
        elsewhere.text()
    );
}

// ------------------------------------------------------------------ 10. login throttling

/// Ten wrong passwords from anywhere locked the real user out for a minute. Now the attacker's
/// address is throttled, and the user logs in from another address.
#[tokio::test]
async fn an_attacker_address_cannot_lock_the_real_user_out() {
    let app = TestApp::local().await;
    app.register("alice", PASSWORD).await;
    let guess = json!({"username": "alice", "password": "wrong password"});
    for _ in 0..10 {
        app.send(from_address(
            "10.6.6.6",
            Method::POST,
            "/auth/login",
            None,
            &guess,
        ))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    }
    let limited = app
        .send(from_address(
            "10.6.6.6",
            Method::POST,
            "/auth/login",
            None,
            &guess,
        ))
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    app.send(from_address(
        "10.0.0.1",
        Method::POST,
        "/auth/login",
        None,
        &json!({"username": "alice", "password": PASSWORD}),
    ))
    .await
    .assert_status(StatusCode::OK);
}

/// `PUT /auth/password` checked the old password without any throttle: a stolen token could
/// guess the password at full speed.
#[tokio::test]
async fn wrong_old_passwords_are_throttled() {
    let app = TestApp::local().await;
    app.register("alice", PASSWORD).await;
    let token = app.login("alice", PASSWORD).await;
    let guess = json!({"old_password": "not the password", "new_password": "new password 123"});
    for _ in 0..10 {
        let response = app
            .put_json("/auth/password", &token, &guess)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
        assert_eq!(response.code(), "invalid_credentials");
    }
    let limited = app
        .put_json("/auth/password", &token, &guess)
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
}

// ------------------------------------------------------------------ API keys

/// A key its creator scoped `read` on their own private project could not read it (it had
/// to be listed as `machine:<name>` too). Now a key acts for its creator inside its scopes,
/// capped at the scope's access.
async fn a_scoped_key_acts_for_its_creator_within_its_scope(backend: Backend) {
    let app = BackendApp::start(backend).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    create_project(&app, &alice, "private-model", "private").await;
    create_project(&app, &alice, "other-model", "private").await;
    let key = |access: &str| json!({"name": "ci", "scopes": [{"project": "private-model", "access": access}]});
    let read = app
        .post_json("/api-keys", &alice, &key("read"))
        .await
        .assert_status(StatusCode::CREATED);
    let read = read.json()["key"].as_str().unwrap().to_owned();
    let write = app
        .post_json("/api-keys", &alice, &key("write"))
        .await
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // Read: metadata and search, within the scope only.
    assert_eq!(
        app.get_as("/projects/private-model", &read).await.status,
        StatusCode::OK
    );
    eventually("the key finds its creator's private project", || async {
        found_projects(&app, &read).await == vec!["private-model".to_owned()]
    })
    .await;
    assert_eq!(
        app.get_as("/projects/other-model", &read).await.status,
        StatusCode::NOT_FOUND
    );
    // A read key never writes.
    let version = json!({"version": "v1"});
    app.post_json("/projects/private-model/versions", &read, &version)
        .await
        .assert_status(StatusCode::FORBIDDEN);

    // Write: creates a version and uploads into it; still nothing outside the scope, and
    // never managing.
    app.post_json("/projects/private-model/versions", &write, &version)
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(
        upload(&app, &write, "private-model", "v1", "weights.bin", b"w")
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        upload(&app, &read, "private-model", "v1", "other.bin", b"w")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post_json("/projects/other-model/versions", &write, &version)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.put_json(
            "/projects/private-model/permissions",
            &write,
            &json!({"read_access": "public"})
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
}

both_backends!(a_scoped_key_acts_for_its_creator_within_its_scope);

/// SPEC §7 promises list, disable and delete for API keys; there was no way to disable one.
#[tokio::test]
async fn api_keys_can_be_disabled_and_enabled_again() {
    let app = TestApp::local().await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let eve = app.user_token("eve", Role::Maintainer).await;
    create_project(&app, &alice, "p", "private").await;
    let created = app
        .post_json(
            "/api-keys",
            &alice,
            &json!({"name": "ci", "scopes": [{"project": "p", "access": "read"}]}),
        )
        .await
        .json();
    let key = created["key"].as_str().unwrap().to_owned();
    let path = format!("/api-keys/{}", created["id"].as_str().unwrap());
    assert_eq!(app.get_as("/auth/me", &key).await.status, StatusCode::OK);
    // Another user can't touch it.
    assert_eq!(
        app.patch_json(&path, &eve, &json!({"disabled": true}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let disabled = app
        .patch_json(&path, &alice, &json!({"disabled": true}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(disabled.json()["disabled"], true);
    assert!(
        disabled.json().get("key").is_none(),
        "the secret is never shown again"
    );
    let refused = app
        .get_as("/auth/me", &key)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(refused.code(), "api_key_invalid");
    let listed = app.get_as("/api-keys", &alice).await.json();
    assert_eq!(listed["results"][0]["disabled"], true);
    app.patch_json(&path, &alice, &json!({"disabled": false}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(app.get_as("/auth/me", &key).await.status, StatusCode::OK);
}

// ------------------------------------------------------------------ CLI, schedule, OIDC

/// `trove user add|set-role|free` changed accounts without any audit event.
#[tokio::test]
async fn cli_user_changes_are_audited_as_the_cli() {
    use trove::cli::user::{UserCommand, run_user};

    let data_dir = tempfile::tempdir().unwrap();
    let settings = local_settings(data_dir.path().to_path_buf());
    let mut output = Vec::new();
    run_user(
        &settings,
        &UserCommand::Add {
            name: "ops".into(),
            role: "admin".into(),
        },
        &mut "an admin password\n".as_bytes(),
        &mut output,
    )
    .await
    .unwrap();
    run_user(
        &settings,
        &UserCommand::SetRole {
            name: "ops".into(),
            role: "maintainer".into(),
        },
        &mut "".as_bytes(),
        &mut output,
    )
    .await
    .unwrap_err();
    let (storage, _) =
        trove::app::build_storage(&settings, Arc::new(trove::telemetry::Metrics::new()))
            .await
            .unwrap();
    let events: Vec<Value> = trove::audit::sink::read_all(storage.as_ref())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(_, parsed)| parsed.ok())
        .map(|(_, event)| serde_json::to_value(event).unwrap())
        .collect();
    let by_action = |action: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|event| event["action"] == action)
            .collect()
    };
    let created = by_action("user.create");
    assert_eq!(created.len(), 2, "pending and completion: {events:?}");
    for event in &created {
        assert_eq!(event["actor"], "cli");
        assert_eq!(event["actor_kind"], "system");
        assert_eq!(event["resource"], "user:ops");
    }
    assert!(created.iter().any(|event| event["outcome"] == "ok"));
    // The refused demotion of the last admin is recorded as an error.
    let demoted = by_action("user.role_change");
    assert!(
        demoted.iter().any(|event| event["outcome"] == "error"),
        "{demoted:?}"
    );
    assert!(
        !events
            .iter()
            .any(|event| event.to_string().contains("an admin password"))
    );
}

/// `purge_expired_revocations` existed but nothing ever ran it: revocation records piled up.
#[tokio::test]
async fn expired_revocations_are_purged_on_schedule() {
    let app = TestApp::local_with(|settings| {
        settings.sync_cron = String::new();
        settings.purge_cron = String::new();
        settings.revocation_purge_cron = "* * * * * *".to_owned();
    })
    .await;
    let records = app.state.auth.records();
    for (jti, expires_at) in [("old", now_secs() - 3600), ("live", now_secs() + 3600)] {
        records
            .revoke(&RevokedToken {
                jti: jti.to_owned(),
                sub: "alice".to_owned(),
                expires_at,
            })
            .await
            .unwrap();
    }
    let mut scheduler = trove::jobs::schedule::start(app.state.clone())
        .await
        .unwrap()
        .expect("the revocation purge is scheduled");
    eventually("the expired revocation is purged", || async {
        !records.is_revoked("old").await.unwrap()
    })
    .await;
    assert!(records.is_revoked("live").await.unwrap());
    scheduler.shutdown().await.unwrap();
}

/// The server refused to start when the identity provider's JWKS URL was briefly
/// unreachable. Now it starts, answers external tokens `503` until the keys are loaded (local
/// tokens keep working), and loads them in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_jwks_url_is_retried_in_the_background() {
    // The provider is down (503) until it is set up.
    let provider = Provider::start("late-key", false).await;
    let app = provider.trusting_app().await;
    let external = provider.token("erin");
    let waiting = app.get_as("/auth/me", &external).await;
    assert_eq!(
        waiting.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        waiting.text()
    );
    assert_eq!(waiting.code(), "identity_provider_unavailable");
    assert!(waiting.headers.contains_key("retry-after"));
    let local = app.user_token("alice", Role::Guest).await;
    assert_eq!(app.get_as("/auth/me", &local).await.status, StatusCode::OK);

    provider.up.store(true, Ordering::SeqCst);
    eventually(
        "external tokens are accepted once the keys load",
        || async { app.get_as("/auth/me", &external).await.status == StatusCode::OK },
    )
    .await;
}
