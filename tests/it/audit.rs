//! The audit log: exactly one event per audited request, denials recorded as denied, the
//! durable chained sink on both backends, tamper evidence (`trove audit verify`), crash
//! semantics of two-phase mutations, queries and the project timeline, the metric, and that no
//! secret is ever recorded.

use std::collections::HashMap;

use axum::http::{Method, Method as M, StatusCode, StatusCode as S};
use bytes::Bytes;
use serde_json::{Value, json};
use trove::audit::verify::{ProblemKind, verify};
use trove::audit::{ActorKind, AuditEvent, Outcome};
use trove::permissions::Role;
use trove::storage::{ObjectStoreExt as _, PutOptions, keys};

use crate::common::{TestApp, local_settings, put_json};

/// Project `bert` owned by alice, carol a viewer.
async fn seed_project(app: &TestApp) {
    let storage = app.state.storage.as_ref();
    put_json(
        storage,
        &keys::project_record("bert"),
        &json!({
            "project_id": "bert", "title": "BERT base", "type": "MODEL",
            "created_at": "2026-11-01T00:00:00Z", "created_by": "alice"
        }),
    )
    .await;
    put_json(
        storage,
        &keys::project_permissions("bert"),
        &json!({
            "scope": "project", "owners": ["alice"], "viewers": ["carol"],
            "read_access": "viewers", "write_access": "owners"
        }),
    )
    .await;
}

/// Every event view of the log (admin query, all pages).
async fn all_events(app: &TestApp, admin: &str, filter: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut path = format!("/audit?size=7{filter}");
    loop {
        let response = app.get_as(&path, admin).await.assert_status(StatusCode::OK);
        let body = response.json();
        events.extend(body["results"].as_array().unwrap().iter().cloned());
        match body["next"].as_str() {
            Some(next) => {
                path = format!(
                    "/audit?size=7{filter}&next={}",
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
            }
            None => return events,
        }
    }
}

fn count_of(events: &[Value], action: &str, actor: &str) -> usize {
    events
        .iter()
        .filter(|event| event["action"] == action && event["actor"] == actor)
        .count()
}

fn find<'a>(events: &'a [Value], action: &str, actor: &str) -> &'a Value {
    events
        .iter()
        .find(|event| event["action"] == action && event["actor"] == actor)
        .unwrap_or_else(|| panic!("no {action} by {actor} in {events:#?}"))
}

/// Bob registers and logs in (once with a wrong password), root changes his role, creates and
/// changes and deletes a group, creates and deletes an API key (answered: its id), builds the
/// index; bob changes his password and logs out; root deletes bob.
async fn step_account_group_key_and_index_requests(app: &TestApp, admin: &str) -> String {
    assert_eq!(
        app.register("bob", "bob-password-1").await.status,
        StatusCode::CREATED
    );
    let bob = app.login("bob", "bob-password-1").await;
    assert_eq!(
        app.login_response("bob", "wrong-password").await.status,
        StatusCode::UNAUTHORIZED
    );
    app.patch_json("/users/bob", admin, &json!({"role": "developer"}))
        .await
        .assert_status(StatusCode::OK);
    app.post_json("/groups", admin, &json!({"name": "ml", "members": ["bob"]}))
        .await
        .assert_status(StatusCode::CREATED);
    app.put_json("/groups/ml/members", admin, &json!({"remove": ["bob"]}))
        .await
        .assert_status(StatusCode::OK);
    app.delete_as("/groups/ml", admin)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let response = app
        .post_json(
            "/api-keys",
            admin,
            &json!({"name": "ci", "scopes": [{"project": "bert", "access": "read"}]}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    let key_id = response.json()["id"].as_str().unwrap().to_owned();
    app.delete_as(&format!("/api-keys/{key_id}"), admin)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.bearer(Method::PUT, "/index/build", admin, None)
        .await
        .assert_status(StatusCode::ACCEPTED);
    let response = app
        .put_json(
            "/auth/password",
            &bob,
            &json!({"old_password": "bob-password-1", "new_password": "bob-password-2"}),
        )
        .await
        .assert_status(StatusCode::OK);
    let bob = response.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.bearer(Method::POST, "/auth/logout", &bob, None)
            .await
            .status,
        StatusCode::OK
    );
    app.delete_as("/users/bob", admin)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    key_id
}

/// Each request of the scenario is in the log once with its status and outcome and details,
/// newest first.
fn assert_each_request_once_newest_first(events: &[Value], key_id: &str) {
    for (action, actor, status) in [
        ("auth.register", "bob", 201),
        ("auth.login", "bob", 200),
        ("auth.login", "root", 200),
        ("auth.login_failed", "bob", 401),
        ("user.role_change", "root", 200),
        ("group.create", "root", 201),
        ("group.members_change", "root", 200),
        ("group.delete", "root", 204),
        ("api_key.create", "root", 201),
        ("api_key.delete", "root", 204),
        ("index.build", "root", 202),
        ("auth.password_change", "bob", 200),
        ("auth.logout", "bob", 200),
        ("user.delete", "root", 204),
    ] {
        assert_eq!(
            count_of(events, action, actor),
            1,
            "{action} by {actor}: {events:#?}"
        );
        let event = find(events, action, actor);
        assert_eq!(event["status"], status, "{event}");
        assert_eq!(event["completed"], true, "{event}");
        let expected = if action == "auth.login_failed" {
            "denied"
        } else {
            "ok"
        };
        assert_eq!(event["outcome"], expected, "{event}");
        assert!(
            event["id"].is_string() && event["ts"].is_string(),
            "{event}"
        );
        assert!(
            event.get("actor_kind").is_some() && event.get("ip").is_some(),
            "{event}"
        );
    }
    assert_eq!(
        find(events, "user.role_change", "root")["details"]["role"],
        "developer"
    );
    assert_eq!(
        find(events, "user.role_change", "root")["resource"],
        "user:bob"
    );
    assert_eq!(
        find(events, "api_key.create", "root")["details"]["key_id"],
        key_id
    );
    assert_eq!(
        find(events, "auth.login_failed", "bob")["details"]["reason"],
        "invalid_credentials"
    );
    // Newest first.
    let times: Vec<&str> = events
        .iter()
        .map(|event| event["ts"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
}

#[tokio::test]
async fn each_audited_request_appears_exactly_once_with_its_outcome() {
    let app = TestApp::local().await;
    seed_project(&app).await;
    let admin = app.user_token("root", Role::Admin).await;

    let key_id = step_account_group_key_and_index_requests(&app, &admin).await;

    let events = all_events(&app, &admin, "").await;
    assert_each_request_once_newest_first(&events, &key_id);
    assert!(verify(app.state.storage.as_ref()).await.unwrap().is_ok());
}

#[tokio::test]
async fn denied_requests_are_recorded_as_denied_with_the_reason() {
    let app = TestApp::local().await;
    seed_project(&app).await;
    let admin = app.user_token("root", Role::Admin).await;
    let dave = app.user_token("dave", Role::Maintainer).await;
    let carol = app.user_token("carol", Role::Guest).await;

    assert_eq!(
        app.get_as("/users", &dave).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get("/users").await.status, StatusCode::UNAUTHORIZED);
    // Hidden project: 404, recorded with the engine's reason.
    let response = app.get_as("/projects/bert/audit", &dave).await;
    assert_eq!(
        response.status,
        StatusCode::NOT_FOUND,
        "{}",
        response.text()
    );
    // Readable but not manageable: 403.
    let response = app.get_as("/projects/bert/audit", &carol).await;
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        response.text()
    );
    // A mutation refused by the service is a denied mutation.
    app.post_json("/groups", &admin, &json!({"name": "ops"}))
        .await
        .assert_status(StatusCode::CREATED);
    let response = app.delete_as("/groups/ops", &dave).await;
    assert!(response.status == StatusCode::FORBIDDEN || response.status == StatusCode::NOT_FOUND);

    let denied = all_events(&app, &admin, "&action=access.denied").await;
    assert_eq!(denied.len(), 4, "{denied:#?}");
    let admin_refusal = find(&denied, "access.denied", "dave");
    assert_eq!(admin_refusal["outcome"], "denied");
    let by_resource: HashMap<String, &Value> = denied
        .iter()
        .map(|event| {
            (
                format!(
                    "{}|{}",
                    event["actor"].as_str().unwrap(),
                    event["resource"].as_str().unwrap()
                ),
                event,
            )
        })
        .collect();
    let event = by_resource["dave|GET /users"];
    assert_eq!(
        (
            event["status"].as_u64(),
            event["details"]["reason"].as_str()
        ),
        (Some(403), Some("admin_required"))
    );
    let event = by_resource["anonymous|GET /users"];
    assert_eq!(event["status"], 401);
    assert_eq!(event["actor_kind"], "anonymous");
    let event = by_resource["dave|project:bert"];
    assert_eq!(
        (
            event["status"].as_u64(),
            event["details"]["reason"].as_str()
        ),
        (Some(404), Some("not_found"))
    );
    assert_eq!(event["project"], "bert");
    let event = by_resource["carol|project:bert"];
    assert_eq!(
        (
            event["status"].as_u64(),
            event["details"]["reason"].as_str()
        ),
        (Some(403), Some("forbidden"))
    );

    let deletes = all_events(&app, &admin, "&action=group.delete").await;
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        deletes[0]["outcome"],
        if deletes[0]["status"] == 403 {
            "denied"
        } else {
            "error"
        }
    );
    let outcome_denied = all_events(&app, &admin, "&outcome=denied").await;
    assert!(
        outcome_denied
            .iter()
            .all(|event| event["outcome"] == "denied")
    );
    assert!(outcome_denied.len() >= 4);
}

#[tokio::test]
async fn the_project_timeline_is_for_its_owners_and_admins() {
    let app = TestApp::local().await;
    seed_project(&app).await;
    let admin = app.user_token("root", Role::Admin).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let stranger = app.user_token("dave", Role::Maintainer).await;
    app.state.audit.record(
        AuditEvent::new("file.download")
            .actor("carol", ActorKind::User)
            .resource("file:bert:weights.bin@v1")
            .project("bert")
            .outcome(Outcome::Ok, 200),
    );
    app.state.audit.record(
        AuditEvent::new("file.download")
            .actor("carol", ActorKind::User)
            .resource("file:other:x@v1")
            .project("other")
            .outcome(Outcome::Ok, 200),
    );

    let response = app
        .get_as("/projects/bert/audit", &alice)
        .await
        .assert_status(StatusCode::OK);
    let results = response.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(results[0]["resource"], "file:bert:weights.bin@v1");
    assert!(results[0].get("ip").is_none(), "owners don't see addresses");

    app.get_as("/projects/bert/audit", &stranger)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/projects/bert/audit").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as("/projects/nope/audit", &alice).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as("/projects/..bad/audit", &alice).await.status,
        StatusCode::BAD_REQUEST
    );

    // The admin sees the project's timeline, now including the stranger's denial.
    let response = app
        .get_as("/projects/bert/audit", &admin)
        .await
        .assert_status(StatusCode::OK);
    let results = response.json()["results"].as_array().unwrap().clone();
    assert!(results.iter().all(|event| event["project"] == "bert"));
    assert_eq!(results.len(), 3, "{results:#?}");
    assert_eq!(results[0]["action"], "access.denied");
    assert_eq!(results[0]["actor"], "anonymous");
    assert_eq!(results[1]["action"], "access.denied");
    assert_eq!(results[1]["actor"], "dave");
    assert_eq!(results[2]["action"], "file.download");
    // The project filter of the timeline can't be widened by a query parameter.
    let response = app
        .get_as("/projects/bert/audit?project=other", &alice)
        .await;
    assert!(
        response.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|event| event["project"] == "bert")
    );
}

/// Records 30 events a millisecond apart (alice every third, denied every fifth, downloads and
/// searches alternating, over projects p0..p3), then two events with one timestamp 10 s later;
/// answers when the first was stamped.
fn record_thirty_events_and_a_tie(app: &TestApp) -> chrono::DateTime<chrono::Utc> {
    let started = chrono::Utc::now();
    for index in 0..30_u32 {
        let actor = if index % 3 == 0 { "alice" } else { "bob" };
        let outcome = if index % 5 == 0 {
            Outcome::Denied
        } else {
            Outcome::Ok
        };
        let mut event = AuditEvent::new(if index % 2 == 0 {
            "file.download"
        } else {
            "search.query"
        })
        .actor(actor, ActorKind::User)
        .resource(format!("file:p{}:f{index}@v1", index % 4))
        .project(format!("p{}", index % 4))
        .outcome(outcome, if outcome == Outcome::Ok { 200 } else { 403 })
        .detail("n", index);
        event.ts = started + chrono::Duration::milliseconds(i64::from(index));
        app.state.audit.record(event);
    }
    let mut same_time = AuditEvent::new("tie.a").outcome(Outcome::Ok, 200);
    same_time.ts = started + chrono::Duration::seconds(10);
    let mut tie = same_time.clone();
    tie.id = uuid::Uuid::now_v7().to_string();
    tie.action = "tie.b".to_owned();
    app.state.audit.record(same_time);
    app.state.audit.record(tie);
    started
}

#[tokio::test]
async fn queries_filter_paginate_newest_first_and_refuse_bad_parameters() {
    let app = TestApp::local().await;
    let admin = app.user_token("root", Role::Admin).await;
    let started = record_thirty_events_and_a_tie(&app);

    let since =
        url::form_urlencoded::byte_serialize(started.to_rfc3339().as_bytes()).collect::<String>();
    let all = all_events(&app, &admin, &format!("&since={since}")).await;
    let generated: Vec<&Value> = all
        .iter()
        .filter(|event| {
            event["details"]["n"].is_number()
                || event["action"].as_str().unwrap().starts_with("tie.")
        })
        .collect();
    assert_eq!(generated.len(), 32);
    let ids: std::collections::HashSet<&str> = all
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), all.len(), "pages must not repeat events");
    assert!(all[0]["action"].as_str().unwrap().starts_with("tie."));
    assert_eq!(all[2]["details"]["n"], 29);

    let alice = all_events(&app, &admin, "&actor=alice").await;
    assert_eq!(alice.len(), 10);
    assert!(alice.iter().all(|event| event["actor"] == "alice"));
    let downloads = all_events(&app, &admin, "&action=file.download").await;
    assert_eq!(downloads.len(), 15);
    let p1 = all_events(&app, &admin, "&project=p1").await;
    assert_eq!(p1.len(), 8);
    let denied = all_events(&app, &admin, "&outcome=denied&action=file.download").await;
    assert_eq!(denied.len(), 3);
    let until = url::form_urlencoded::byte_serialize(
        (started + chrono::Duration::milliseconds(10))
            .to_rfc3339()
            .as_bytes(),
    )
    .collect::<String>();
    let window = all_events(&app, &admin, &format!("&since={since}&until={until}")).await;
    assert_eq!(window.len(), 10, "{window:#?}");

    let response = app.get_as("/audit?size=5", &admin).await;
    let link = response
        .headers
        .get("link")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        link.contains("rel=\"more\"") && link.contains("next="),
        "{link}"
    );
    assert_eq!(response.json()["count"], 5);

    for bad in [
        "size=0",
        "size=501",
        "size=lots",
        "since=yesterday",
        "until=2026-13-01",
        "outcome=maybe",
        "next=garbage",
        "next=1.x",
        "actor=",
    ] {
        let response = app.get_as(&format!("/audit?{bad}"), &admin).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            response.text()
        );
        assert_eq!(response.code(), "invalid_parameter", "{bad}");
    }
}

#[tokio::test]
async fn tampering_with_a_stored_event_is_detected_where_it_happened() {
    let app = TestApp::local().await;
    for index in 0..6_u32 {
        app.state
            .audit
            .record(AuditEvent::new("file.download").resource(format!("file:{index}")));
    }
    app.state.audit.flush().await.unwrap();
    let storage = app.state.storage.clone();
    let report = verify(storage.as_ref()).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events, 6);
    let keys: Vec<String> = storage
        .list_all(&keys::audit_prefix())
        .await
        .unwrap()
        .into_iter()
        .map(|object| object.key)
        .collect();
    assert_eq!(keys.len(), 6);

    // Edit one event's content.
    let (original, _) = storage.get_bytes(&keys[2]).await.unwrap();
    let edited = String::from_utf8(original.to_vec())
        .unwrap()
        .replace("file:2", "file:X");
    storage
        .put_bytes(&keys[2], Bytes::from(edited), PutOptions::default())
        .await
        .unwrap();
    let report = verify(storage.as_ref()).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].kind, ProblemKind::Modified);
    assert_eq!(report.problems[0].key, keys[2]);

    // Edit it and recompute its own hash: its successor's link breaks.
    let mut event: AuditEvent = serde_json::from_slice(&original).unwrap();
    event.resource = "file:Y".to_owned();
    event.hash = Some(event.compute_hash());
    storage
        .put_bytes(
            &keys[2],
            Bytes::from(serde_json::to_vec(&event).unwrap()),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let report = verify(storage.as_ref()).await.unwrap();
    assert_eq!(
        report.problems[0].kind,
        ProblemKind::BrokenLink,
        "{report:?}"
    );
    assert_eq!(report.problems[0].key, keys[3]);

    // Restore it, then delete another: a missing link.
    storage
        .put_bytes(&keys[2], original, PutOptions::default())
        .await
        .unwrap();
    assert!(verify(storage.as_ref()).await.unwrap().is_ok());
    storage.delete(&keys[4]).await.unwrap();
    let report = verify(storage.as_ref()).await.unwrap();
    assert_eq!(report.problems[0].kind, ProblemKind::Missing, "{report:?}");
    assert_eq!(report.problems[0].key, keys[5]);
}

#[tokio::test]
async fn trove_audit_verify_reports_the_first_broken_link() {
    let data_dir = tempfile::tempdir().unwrap();
    let app = TestApp::with_settings(local_settings(data_dir.path().to_path_buf())).await;
    for index in 0..3_u32 {
        app.state
            .audit
            .record(AuditEvent::new("file.download").resource(format!("file:{index}")));
    }
    app.state.audit.close().await.unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_trove"))
            .current_dir(std::env::temp_dir())
            .env_remove("TROVE_CONFIG")
            .env("TROVE_LOG", "error")
            .args(["audit", "--data-dir"])
            .arg(data_dir.path())
            .arg("verify")
            .output()
            .unwrap()
    };
    let output = run();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("3 events in 1 chains") && stdout.contains("intact"),
        "{stdout}"
    );

    let keys: Vec<String> = app
        .state
        .storage
        .list_all(&keys::audit_prefix())
        .await
        .unwrap()
        .into_iter()
        .map(|object| object.key)
        .collect();
    let (bytes, _) = app.state.storage.get_bytes(&keys[1]).await.unwrap();
    let edited = String::from_utf8(bytes.to_vec())
        .unwrap()
        .replace("file:1", "file:9");
    app.state
        .storage
        .put_bytes(&keys[1], Bytes::from(edited), PutOptions::default())
        .await
        .unwrap();
    let output = run();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("Modified") && stdout.contains(&keys[1]),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_crash_between_event_and_mutation_leaves_a_pending_event_not_a_silent_mutation() {
    let data_dir = tempfile::tempdir().unwrap();
    let settings = local_settings(data_dir.path().to_path_buf());
    let app = TestApp::with_settings(settings.clone()).await;
    let admin = app.user_token("root", Role::Admin).await;
    // The process "dies" after storing the event, before the mutation reports back.
    let pending = app
        .state
        .audit
        .begin(
            AuditEvent::new("project.create")
                .actor("alice", ActorKind::User)
                .resource("project:crashed")
                .project("crashed"),
        )
        .await
        .unwrap();
    let id = pending.event().id.clone();
    drop(pending);

    let events = all_events(&app, &admin, "&outcome=pending").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["id"], id.as_str());
    assert_eq!(events[0]["completed"], false);
    assert!(verify(app.state.storage.as_ref()).await.unwrap().is_ok());

    // After a restart (index not closed cleanly: rebuilt from storage) it is still pending.
    drop(app);
    let app = TestApp::reopen(settings).await;
    let admin = app.login("root", "password-of-tests").await;
    let events = all_events(&app, &admin, "&action=project.create").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["outcome"], "pending");
    assert_eq!(events[0]["completed"], false);
    // The first process's login is there too, completed, and two chains verify.
    assert_eq!(
        all_events(&app, &admin, "&action=auth.login").await.len(),
        2
    );
    let report = verify(app.state.storage.as_ref()).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.writers, 2);
}

#[tokio::test]
async fn a_mutation_whose_event_cannot_be_stored_does_not_happen() {
    let data_dir = tempfile::tempdir().unwrap();
    let app = TestApp::with_settings(local_settings(data_dir.path().to_path_buf())).await;
    // Make the audit prefix unwritable: a file where the directory must be.
    let audit_dir = data_dir.path().join("objects/..meta/audit");
    let _ = std::fs::remove_dir_all(&audit_dir);
    std::fs::create_dir_all(audit_dir.parent().unwrap()).unwrap();
    std::fs::write(&audit_dir, b"not a directory").unwrap();
    let response = app.register("eve", "eve-password-1").await;
    assert!(response.status.is_server_error(), "{}", response.text());
    assert!(app.state.auth.account("eve").await.unwrap().is_none());
}

#[tokio::test]
async fn no_secret_token_or_password_is_ever_recorded() {
    let app = TestApp::local().await;
    seed_project(&app).await;
    let admin = app.user_token("root", Role::Admin).await;
    app.register("bob", "first-Secret-pw").await;
    let token = app.login("bob", "first-Secret-pw").await;
    app.login_response("bob", "wrong-Secret-pw").await;
    let response = app
        .put_json(
            "/auth/password",
            &token,
            &json!({"old_password": "first-Secret-pw", "new_password": "second-Secret-pw"}),
        )
        .await;
    let new_token = response.json()["access_token"].as_str().unwrap().to_owned();
    let response = app
        .post_json(
            "/api-keys",
            &admin,
            &json!({"name": "ci", "scopes": [{"project": "bert", "access": "read"}]}),
        )
        .await;
    let key = response.json()["key"].as_str().unwrap().to_owned();
    app.get_as("/users", &key).await;
    app.state.audit.record(
        AuditEvent::new("test.secret")
            .detail("password", "detail-Secret-pw")
            .detail("nested", json!({"access_token": "detail-token"})),
    );
    app.state.audit.flush().await.unwrap();

    let mut stored = String::new();
    for object in app
        .state
        .storage
        .list_all(&keys::audit_prefix())
        .await
        .unwrap()
    {
        let (bytes, _) = app.state.storage.get_bytes(&object.key).await.unwrap();
        stored.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(stored.contains("auth.password_change") && stored.contains("api_key.create"));
    for secret in [
        "first-Secret-pw",
        "wrong-Secret-pw",
        "second-Secret-pw",
        "detail-Secret-pw",
        "detail-token",
        "password-of-tests",
        token.as_str(),
        new_token.as_str(),
        admin.as_str(),
        key.as_str(),
    ] {
        assert!(!stored.contains(secret), "{secret} recorded");
    }
    let secret_part = key.rsplit('_').next().unwrap();
    assert!(!stored.contains(secret_part));
}

#[tokio::test]
async fn the_metric_counts_events_by_action_and_outcome() {
    let app = TestApp::local().await;
    let admin = app.user_token("root", Role::Admin).await;
    app.login_response("root", "wrong-password").await;
    app.login_response("root", "wrong-password").await;
    // `/metrics` is for admins (issue 12).
    let metrics = app.get_as("/metrics", &admin).await.text();
    assert!(
        metrics.contains("trove_audit_events_total{action=\"auth.login\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "trove_audit_events_total{action=\"auth.login_failed\",outcome=\"denied\"} 2"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn buffered_events_survive_a_graceful_shutdown_and_the_index_is_rebuilt() {
    let data_dir = tempfile::tempdir().unwrap();
    let settings = local_settings(data_dir.path().to_path_buf());
    let app = TestApp::with_settings(settings.clone()).await;
    app.state
        .audit
        .record(AuditEvent::new("file.download").resource("file:a"));
    app.state.audit.close().await.unwrap();
    let stored = trove::audit::sink::read_all(app.state.storage.as_ref())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    drop(app);

    // Clean shutdown: the index is reused; removed: rebuilt from storage.
    std::fs::remove_dir_all(data_dir.path().join("audit-index")).unwrap();
    let app = TestApp::reopen(settings).await;
    let admin = app.user_token("root", Role::Admin).await;
    let events = all_events(&app, &admin, "&action=file.download").await;
    assert_eq!(events.len(), 1);
}

async fn s3_app(
    server: &crate::common::s3_server::S3TestServer,
    data_dir: &std::path::Path,
) -> TestApp {
    use trove::storage::StorageKind;
    let store = trove::storage::s3::S3Store::connect(server.settings("trove-audit", ""))
        .await
        .unwrap();
    store.create_bucket_if_missing().await.unwrap();
    let mut settings = local_settings(data_dir.to_path_buf());
    settings.storage = StorageKind::S3;
    settings.storage_timeout_ms = 1500;
    settings.s3.bucket = Some("trove-audit".to_owned());
    settings.s3.endpoint = Some(server.endpoint());
    settings.s3.region = Some("us-east-1".to_owned());
    settings.s3.path_style = true;
    settings.s3.access_key_id = Some(crate::common::s3_server::ACCESS_KEY.to_owned());
    settings.s3.secret_access_key = Some(trove::config::Secret::new(
        crate::common::s3_server::SECRET_KEY,
    ));
    settings.validate().unwrap();
    TestApp::with_settings(settings).await
}

#[tokio::test]
async fn the_sink_works_on_s3_and_refuses_mutations_while_storage_is_down() {
    let mut server = crate::common::s3_server::S3TestServer::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let app = s3_app(&server, data_dir.path()).await;
    let admin = app.user_token("root", Role::Admin).await;
    assert_eq!(
        app.register("bob", "bob-password-1").await.status,
        StatusCode::CREATED
    );
    app.state
        .audit
        .record(AuditEvent::new("file.download").resource("file:a"));
    let events = all_events(&app, &admin, "").await;
    assert_eq!(count_of(&events, "auth.register", "bob"), 1);
    assert_eq!(count_of(&events, "file.download", "system"), 1);
    let report = verify(app.state.storage.as_ref()).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events, 4, "{report:?}"); // login, register begin + completion, download

    server.stop().await;
    let response = app.register("carl", "carl-password-1").await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.text()
    );
    assert_eq!(response.code(), "storage_unavailable");
    server.restart().await;
    assert!(app.state.auth.account("carl").await.unwrap().is_none());
    assert!(verify(app.state.storage.as_ref()).await.unwrap().is_ok());
}

#[tokio::test]
async fn events_carry_the_client_address_over_tcp_and_version_denials_name_the_version() {
    let app = TestApp::spawn_local().await;
    seed_project(&app).await;
    put_json(
        app.state.storage.as_ref(),
        &keys::version_record("bert", "v1"),
        &json!({
            "project_id": "bert", "version": "v1", "created_at": "2026-11-01T00:00:00Z",
            "created_by": "alice", "status": "completed", "revision": "NUM-1",
            "numerical_revision": 1
        }),
    )
    .await;
    let admin = app.user_token("root", Role::Admin).await;
    let base = app.base_url.clone().unwrap();
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "mallory", "password": "guess-guess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = client
        .get(format!("{base}/projects/bert/version/v1/info"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);

    let failed = all_events(&app, &admin, "&action=auth.login_failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["ip"], "127.0.0.1");
    assert_eq!(failed[0]["actor"], "mallory");
    let denied = all_events(&app, &admin, "&action=access.denied").await;
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0]["resource"], "version:bert@v1");
    assert_eq!(denied[0]["ip"], "127.0.0.1");
    assert_eq!(denied[0]["actor"], "anonymous");
}

#[tokio::test]
async fn trove_serve_stores_buffered_events_at_graceful_shutdown() {
    let data_dir = tempfile::tempdir().unwrap();
    let port = crate::common::free_port();
    let mut child = crate::common::trove_serve(data_dir.path(), port)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "server did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for _ in 0..5 {
        let response = client.get(format!("{base}/users")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }
    let _ = std::process::Command::new("kill")
        .arg(child.id().unwrap().to_string())
        .status();
    let status = tokio::time::timeout(std::time::Duration::from_secs(15), child.wait())
        .await
        .expect("server did not stop on SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        data_dir.path().join("audit-index/clean-shutdown").exists(),
        "the audit log was closed cleanly"
    );

    let settings = local_settings(data_dir.path().to_path_buf());
    let app = TestApp::reopen(settings).await;
    let stored = trove::audit::sink::read_all(app.state.storage.as_ref())
        .await
        .unwrap();
    let denials = stored
        .iter()
        .filter_map(|(_, parsed)| parsed.as_ref().ok())
        .filter(|(_, event)| event.action == "access.denied")
        .count();
    assert_eq!(denials, 5);
    assert!(verify(app.state.storage.as_ref()).await.unwrap().is_ok());
}

#[tokio::test]
async fn each_download_is_recorded_once() {
    let app = TestApp::local().await;
    let admin = app.user_token("root", Role::Admin).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    app.post_json(
        "/projects",
        &alice,
        &json!({
            "project_id": "dl", "title": "dl", "type": "DATASET", "visibility": "private"
        }),
    )
    .await
    .assert_status(StatusCode::CREATED);
    app.post_json("/projects/dl/versions", &alice, &json!({"version": "v1"}))
        .await
        .assert_status(StatusCode::CREATED);
    app.send(
        axum::http::Request::builder()
            .method(Method::PUT)
            .uri("/projects/dl/version/v1/files/data.csv")
            .header("authorization", format!("Bearer {alice}"))
            .body(axum::body::Body::from("a,b\n1,2\n"))
            .unwrap(),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let id = url::form_urlencoded::byte_serialize(b"dl:data.csv@v1").collect::<String>();
    for _ in 0..2 {
        app.get_as(&format!("/files/{id}?redirect=false"), &alice)
            .await
            .assert_status(StatusCode::OK);
    }
    let stranger = app.user_token("mallory", Role::Maintainer).await;
    app.get_as(&format!("/files/{id}?redirect=false"), &stranger)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let events = all_events(&app, &admin, "&action=file.download").await;
    assert_eq!(count_of(&events, "file.download", "alice"), 2, "{events:?}");
    assert_eq!(
        count_of(&events, "file.download", "mallory"),
        0,
        "a denial is not a download"
    );
    let event = find(&events, "file.download", "alice");
    assert_eq!(event["project"], "dl");
}

/// A direct upload of `body` to `path` in `project`/`version` by `token`.
async fn put_file(
    app: &TestApp,
    token: &str,
    project: &str,
    version: &str,
    path: &str,
    body: &'static str,
) -> crate::common::TestResponse {
    app.send(
        axum::http::Request::builder()
            .method(Method::PUT)
            .uri(format!(
                "/projects/{project}/version/{version}/files/{path}"
            ))
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::from(body))
            .unwrap(),
    )
    .await
}

/// One request of a scenario: method, path, body, the status it must answer, and the
/// audit event (action, resource) it must leave.
type Step<'a> = (
    Method,
    &'a str,
    Option<Value>,
    StatusCode,
    &'static str,
    &'a str,
);

/// Runs `steps` as `token`, adding the expected events to `expected`; answers the last
/// response.
async fn run_steps(
    app: &TestApp,
    token: &str,
    expected: &mut Vec<(&'static str, String, u16)>,
    steps: Vec<Step<'_>>,
) -> crate::common::TestResponse {
    let mut last = None;
    for (method, path, body, status, action, resource) in steps {
        let response = app.bearer(method, path, token, body.as_ref()).await;
        assert_eq!(response.status, status, "{path}: {}", response.text());
        expected.push((action, resource.to_owned(), status.as_u16()));
        last = Some(response);
    }
    last.expect("at least one step")
}

/// The events a scenario expects: action, resource, status.
type Expected = Vec<(&'static str, String, u16)>;

/// The events of `events` with this action and resource.
fn matching<'a>(events: &'a [Value], action: &str, resource: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["action"] == action && event["resource"] == resource)
        .collect()
}

/// Creates project art, changes it, creates v1, changes it, uploads data.csv.
async fn step_create_project_version_and_upload(
    app: &TestApp,
    alice: &str,
    expected: &mut Expected,
) {
    let project = json!({
        "project_id": "art", "title": "Art", "type": "MODEL", "visibility": "private"
    });
    run_steps(
        app,
        alice,
        expected,
        vec![
            (
                M::POST,
                "/projects",
                Some(project),
                S::CREATED,
                "project.create",
                "project:art",
            ),
            (
                M::PATCH,
                "/projects/art",
                Some(json!({"title": "Art 2", "tags": ["x"]})),
                S::OK,
                "project.update",
                "project:art",
            ),
            (
                M::POST,
                "/projects/art/versions",
                Some(json!({"version": "v1", "changelog": "first"})),
                S::CREATED,
                "version.create",
                "version:art@v1",
            ),
            (
                M::PATCH,
                "/projects/art/version/v1",
                Some(json!({"changelog": "first!"})),
                S::OK,
                "version.update",
                "version:art@v1",
            ),
        ],
    )
    .await;
    put_file(app, alice, "art", "v1", "data.csv", "a,b\n1,2\n")
        .await
        .assert_status(StatusCode::CREATED);
    expected.push(("file.upload", "file:art:data.csv@v1".to_owned(), 201));
}

/// Completes v1, makes it stable, sets and deletes its permissions, starts an upload of v2
/// linking to v1's file; answers the started upload.
async fn step_complete_stabilize_and_start_v2(
    app: &TestApp,
    alice: &str,
    expected: &mut Expected,
) -> crate::common::TestResponse {
    run_steps(
        app,
        alice,
        expected,
        vec![
            (
                M::PUT,
                "/projects/art/version/v1/complete",
                None,
                S::ACCEPTED,
                "upload.complete",
                "version:art@v1",
            ),
            (
                M::PATCH,
                "/projects/art/version/v1",
                Some(json!({"stable": true})),
                S::OK,
                "version.stable",
                "version:art@v1",
            ),
            (
                M::PUT,
                "/projects/art/version/v1/permissions",
                Some(json!({"viewers": ["bob"], "inherit": true})),
                S::ACCEPTED,
                "permissions.update",
                "version:art@v1",
            ),
            (
                M::DELETE,
                "/projects/art/version/v1/permissions",
                None,
                S::ACCEPTED,
                "permissions.delete",
                "version:art@v1",
            ),
            (
                M::POST,
                "/projects/art/version/v2/upload",
                Some(json!({"filenames": [{
                    "filename": "copy.csv", "check": "link",
                    "value": {"artifactdb_id": "art:data.csv@v1"}
                }]})),
                S::OK,
                "upload.start",
                "version:art@v2",
            ),
        ],
    )
    .await
}

/// Links the started v2 file, deletes it, aborts v2, creates and deletes v3, deprecates v1,
/// shares and unshares the project, sets and deletes its permissions.
async fn step_link_delete_share_and_permissions(
    app: &TestApp,
    alice: &str,
    expected: &mut Expected,
    started: &crate::common::TestResponse,
) {
    let link = started.json()["links"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = url::form_urlencoded::byte_serialize(b"art:copy.csv@v2").collect::<String>();
    let delete_link = format!("/files/{id}");
    run_steps(
        app,
        alice,
        expected,
        vec![
            (
                M::PUT,
                &link,
                None,
                S::OK,
                "link.create",
                "file:art:copy.csv@v2",
            ),
            (
                M::DELETE,
                &delete_link,
                None,
                S::NO_CONTENT,
                "file.delete",
                "file:art:copy.csv@v2",
            ),
            (
                M::PUT,
                "/projects/art/version/v2/abort",
                None,
                S::OK,
                "upload.abort",
                "version:art@v2",
            ),
            (
                M::POST,
                "/projects/art/versions",
                Some(json!({"version": "v3"})),
                S::CREATED,
                "version.create",
                "version:art@v3",
            ),
            (
                M::DELETE,
                "/projects/art/version/v3",
                None,
                S::NO_CONTENT,
                "version.delete",
                "version:art@v3",
            ),
            (
                M::PATCH,
                "/projects/art/version/v1",
                Some(json!({"state": "deprecated"})),
                S::OK,
                "state.change",
                "version:art@v1",
            ),
            (
                M::POST,
                "/projects/art/share",
                Some(json!({"principal": "carol"})),
                S::CREATED,
                "share.create",
                "project:art",
            ),
            (
                M::DELETE,
                "/projects/art/share/carol",
                None,
                S::NO_CONTENT,
                "share.delete",
                "project:art",
            ),
            (
                M::PUT,
                "/projects/art/permissions",
                Some(json!({"viewers": ["bob"]})),
                S::ACCEPTED,
                "permissions.update",
                "project:art",
            ),
            // Last: without its profile the project falls back to the global scope.
            (
                M::DELETE,
                "/projects/art/permissions",
                None,
                S::ACCEPTED,
                "permissions.delete",
                "project:art",
            ),
        ],
    )
    .await;
}

/// Each expected event is in the log once, ok and completed, and on the project's timeline;
/// nothing else was recorded as alice's; answers alice's events.
async fn assert_each_mutation_once(app: &TestApp, admin: &str, expected: &Expected) -> Vec<Value> {
    let events = all_events(app, admin, "&actor=alice").await;
    let response = app
        .get_as("/projects/art/audit", admin)
        .await
        .assert_status(StatusCode::OK);
    let timeline = response.json()["results"].as_array().unwrap().clone();
    for (action, resource, status) in expected {
        let found = matching(&events, action, resource);
        assert_eq!(found.len(), 1, "{action} {resource}: {events:#?}");
        let event = found[0];
        assert_eq!(event["status"], *status, "{event}");
        assert_eq!(event["outcome"], "ok", "{event}");
        assert_eq!(event["completed"], true, "{event}");
        assert_eq!(event["project"], "art", "{event}");
        assert_eq!(event["actor_kind"], "user", "{event}");
        assert_eq!(
            matching(&timeline, action, resource).len(),
            1,
            "{action} {resource} on the timeline: {timeline:#?}"
        );
    }
    // Nothing else was recorded as a mutation of alice's: one event per request.
    let mutations: Vec<&Value> = events
        .iter()
        .filter(|event| event["action"] != "auth.login")
        .collect();
    assert_eq!(mutations.len(), expected.len(), "{mutations:#?}");
    assert!(
        all_events(app, admin, "&action=access.denied")
            .await
            .is_empty()
    );
    events
}

/// The details each mutation event of the artifact scenario carries.
fn assert_mutation_details(events: &[Value]) {
    let one = |action: &str, resource: &str| matching(events, action, resource)[0].clone();
    assert_eq!(
        one("project.create", "project:art")["details"]["visibility"],
        "private"
    );
    assert_eq!(
        one("project.update", "project:art")["details"]["fields"],
        json!(["title", "tags"])
    );
    assert_eq!(
        one("version.update", "version:art@v1")["details"]["fields"],
        json!(["changelog"])
    );
    assert_eq!(
        one("version.stable", "version:art@v1")["details"]["stable"],
        true
    );
    let change = one("state.change", "version:art@v1");
    assert_eq!(
        (&change["details"]["from"], &change["details"]["to"]),
        (&json!("active"), &json!("deprecated"))
    );
    assert_eq!(
        one("permissions.update", "project:art")["details"]["changes"]["viewers"],
        json!(["bob"])
    );
    assert_eq!(
        one("permissions.update", "version:art@v1")["details"]["scope"],
        "version"
    );
    assert_eq!(
        one("share.create", "project:art")["details"]["principal"],
        "carol"
    );
    assert_eq!(
        one("share.delete", "project:art")["details"]["principal"],
        "carol"
    );
    assert_eq!(
        one("link.create", "file:art:copy.csv@v2")["details"]["target"],
        "art:data.csv@v1"
    );
    let start = one("upload.start", "version:art@v2");
    assert_eq!(start["details"]["creates_project"], false);
    assert_eq!(start["details"]["files"], json!(["copy.csv"]));
}

#[tokio::test]
async fn each_artifact_mutation_appears_exactly_once_with_its_outcome() {
    let app = TestApp::local().await;
    let admin = app.user_token("root", Role::Admin).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    app.user_token("bob", Role::Developer).await;
    app.user_token("carol", Role::Guest).await;
    let mut expected: Expected = Vec::new();

    step_create_project_version_and_upload(&app, &alice, &mut expected).await;
    let started = step_complete_stabilize_and_start_v2(&app, &alice, &mut expected).await;
    step_link_delete_share_and_permissions(&app, &alice, &mut expected, &started).await;
    // Reads are not mutations.
    app.get_as("/projects/art", &admin)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(expected.len(), 20);

    let events = assert_each_mutation_once(&app, &admin, &expected).await;

    assert_mutation_details(&events);
    assert!(verify(app.state.storage.as_ref()).await.unwrap().is_ok());
}

#[tokio::test]
async fn denied_artifact_requests_are_recorded_as_access_denied_not_as_mutations() {
    let app = TestApp::local().await;
    let admin = app.user_token("root", Role::Admin).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let carol = app.user_token("carol", Role::Guest).await;
    let mallory = app.user_token("mallory", Role::Maintainer).await;
    for (path, body) in [
        (
            "/projects",
            json!({"project_id": "den", "title": "den", "visibility": "private"}),
        ),
        ("/projects/den/versions", json!({"version": "v1"})),
        ("/projects/den/share", json!({"principal": "carol"})),
    ] {
        app.post_json(path, &alice, &body)
            .await
            .assert_status(StatusCode::CREATED);
    }

    // A stranger uploading: hidden (404); a viewer changing permissions: 403.
    put_file(&app, &mallory, "den", "v1", "x.csv", "1\n")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let response = app
        .put_json(
            "/projects/den/permissions",
            &carol,
            &json!({"viewers": ["mallory"]}),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        response.text()
    );
    let response = app.delete_as("/projects/den/share/carol", &carol).await;
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        response.text()
    );

    let denied = all_events(&app, &admin, "&action=access.denied").await;
    assert_eq!(denied.len(), 3, "{denied:#?}");
    let upload = find(&denied, "access.denied", "mallory");
    assert_eq!(upload["resource"], "version:den@v1");
    assert_eq!(upload["status"], 404);
    assert_eq!(upload["outcome"], "denied");
    assert_eq!(upload["details"]["reason"], "not_found");
    assert_eq!(upload["details"]["attempted"], "UploadFile");
    assert_eq!(upload["project"], "den");
    let carols = matching(&denied, "access.denied", "project:den");
    assert_eq!(carols.len(), 2, "{denied:#?}");
    for event in carols {
        assert_eq!(event["actor"], "carol");
        assert_eq!(event["status"], 403);
        assert_eq!(event["details"]["reason"], "forbidden");
    }

    let events = all_events(&app, &admin, "").await;
    for action in ["file.upload", "permissions.update", "share.delete"] {
        assert!(
            events.iter().all(|event| event["action"] != action),
            "a refused {action} is not a mutation: {events:#?}"
        );
    }
    // The owner's timeline shows the denials.
    let response = app
        .get_as("/projects/den/audit", &alice)
        .await
        .assert_status(StatusCode::OK);
    let timeline = response.json()["results"].as_array().unwrap().clone();
    assert_eq!(
        timeline
            .iter()
            .filter(|event| event["action"] == "access.denied")
            .count(),
        3,
        "{timeline:#?}"
    );
}

#[tokio::test]
async fn one_patch_changing_several_things_is_one_event_named_by_precedence() {
    let app = TestApp::local().await;
    let admin = app.user_token("root", Role::Admin).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let carol = app.user_token("carol", Role::Guest).await;
    for (method, path, body) in [
        (
            Method::POST,
            "/projects",
            Some(json!({"project_id": "pre", "title": "pre", "visibility": "private"})),
        ),
        (
            Method::POST,
            "/projects/pre/versions",
            Some(json!({"version": "v1"})),
        ),
        (Method::PUT, "/projects/pre/version/v1/complete", None),
        (
            Method::POST,
            "/projects/pre/share",
            Some(json!({"principal": "carol"})),
        ),
        (
            Method::PATCH,
            "/projects/pre/version/v1",
            Some(json!({"stable": true})),
        ),
        (
            Method::PATCH,
            "/projects/pre/version/v1",
            Some(json!({"stable": false, "changelog": "unfrozen"})),
        ),
        (
            Method::PATCH,
            "/projects/pre",
            Some(json!({"state": "deprecated"})),
        ),
        (
            Method::PATCH,
            "/projects/pre",
            Some(json!({"state": "active", "title": "back"})),
        ),
    ] {
        let response = app.bearer(method, path, &alice, body.as_ref()).await;
        assert!(response.status.is_success(), "{path}: {}", response.text());
    }
    // A reader passes the access gate (may read) and is refused by the route's own decision:
    // recorded once, as the mutation, denied.
    let response = app
        .patch_json("/projects/pre", &carol, &json!({"title": "mine"}))
        .await;
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        response.text()
    );

    let events = all_events(&app, &admin, "&project=pre").await;
    let alices: Vec<&Value> = events
        .iter()
        .filter(|event| event["actor"] == "alice")
        .collect();
    let count = |action: &str| {
        alices
            .iter()
            .filter(|event| event["action"] == action)
            .count()
    };
    assert_eq!(count("version.stable"), 2, "{alices:#?}");
    assert_eq!(count("version.update"), 0, "{alices:#?}");
    assert_eq!(count("state.change"), 2, "{alices:#?}");
    assert_eq!(count("project.update"), 0, "{alices:#?}");
    let unfrozen = alices
        .iter()
        .find(|event| event["action"] == "version.stable" && event["details"]["stable"] == false)
        .unwrap();
    assert_eq!(
        unfrozen["details"]["fields"],
        json!(["changelog", "stable"])
    );
    assert_eq!(unfrozen["outcome"], "ok");
    let back = alices
        .iter()
        .find(|event| event["action"] == "state.change" && event["details"]["to"] == "active")
        .unwrap();
    assert_eq!(back["details"]["from"], "deprecated");
    assert_eq!(back["details"]["fields"], json!(["title", "state"]));
    assert_eq!(back["resource"], "project:pre");

    // A refused PATCH is one access.denied with the engine's reason, and no mutation event.
    let refused = find(&events, "access.denied", "carol");
    assert_eq!(refused["outcome"], "denied");
    assert_eq!(refused["status"], 403);
    assert_eq!(refused["details"]["reason"], "forbidden");
    assert_eq!(
        count_of(&events, "access.denied", "carol"),
        1,
        "{events:#?}"
    );
    assert_eq!(count_of(&events, "project.update", "carol"), 0);
}

#[tokio::test]
async fn an_upload_that_creates_its_project_is_one_upload_start_event() {
    let app = TestApp::local().await;
    let admin = app.user_token("root", Role::Admin).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let guest = app.user_token("gus", Role::Guest).await;
    let body = json!({"filenames": ["a.csv"]});
    app.post_json("/projects/fresh/version/v1/upload", &alice, &body)
        .await
        .assert_status(StatusCode::OK);
    // A guest may not create projects: refused inside the mutation, recorded once.
    let response = app
        .post_json("/projects/other/version/v1/upload", &guest, &body)
        .await;
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        response.text()
    );

    let events = all_events(&app, &admin, "").await;
    let started = find(&events, "upload.start", "alice");
    assert_eq!(started["resource"], "version:fresh@v1");
    assert_eq!(started["project"], "fresh");
    assert_eq!(started["details"]["creates_project"], true);
    assert_eq!(
        (started["outcome"].as_str(), started["status"].as_u64()),
        (Some("ok"), Some(200))
    );
    assert_eq!(count_of(&events, "upload.start", "alice"), 1);
    assert_eq!(count_of(&events, "project.create", "alice"), 0);
    // A guest may not create projects: one access.denied, no upload.start.
    let refused = find(&events, "access.denied", "gus");
    assert_eq!(
        (refused["outcome"].as_str(), refused["status"].as_u64()),
        (Some("denied"), Some(403))
    );
    assert_eq!(refused["details"]["reason"], "forbidden");
    assert_eq!(count_of(&events, "upload.start", "gus"), 0);
    assert_eq!(count_of(&events, "access.denied", "gus"), 1);
    assert!(
        app.state
            .storage
            .get_bytes(&keys::project_record("other"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_repairing_sync_is_audited_and_a_check_is_not() {
    let app = TestApp::local().await;
    let root = app.user_token("root", Role::Admin).await;
    app.get_as("/index/sync", &root)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        count_of(&all_events(&app, &root, "").await, "index.sync", "root"),
        0
    );
    app.get_as("/index/sync?repair=true", &root)
        .await
        .assert_status(StatusCode::OK);
    let events = all_events(&app, &root, "").await;
    assert_eq!(count_of(&events, "index.sync", "root"), 1);
    let event = find(&events, "index.sync", "root");
    assert_eq!(event["outcome"], "ok");
    assert_eq!(event["details"]["repair"], true);
}

/// Asserts a success.
fn ok(response: crate::common::TestResponse) {
    assert!(response.status.is_success(), "{}", response.text());
}

/// Root creates namespace nlp and makes alice its maintainer; alice creates project tok in it,
/// grants bob developer, bob's own grant is refused, alice revokes bob.
async fn step_namespace_project_and_member_grants(
    app: &TestApp,
    root: &str,
    alice: &str,
    bob: &str,
) {
    ok(app
        .post_json(
            "/namespaces",
            root,
            &json!({"name": "nlp", "visibility": "private"}),
        )
        .await);
    ok(app
        .post_json(
            "/namespaces/nlp/members",
            root,
            &json!({"principal": "alice", "level": "maintainer"}),
        )
        .await);
    ok(app
        .post_json(
            "/projects",
            alice,
            &json!({"project_id": "tok", "namespace": "nlp"}),
        )
        .await);
    ok(app
        .post_json(
            "/projects/tok/members",
            alice,
            &json!({"principal": "bob", "level": "developer"}),
        )
        .await);
    // Bob, a developer of the project, may not grant: one access.denied, no member.grant.
    app.post_json(
        "/projects/tok/members",
        bob,
        &json!({"principal": "alice", "level": "guest"}),
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    ok(app.delete_as("/projects/tok/members/bob", alice).await);
}

/// Alice describes nlp, deprecates and reactivates it, sets its permissions; root creates and
/// deletes namespace tmp.
async fn step_namespace_changes_and_a_deleted_namespace(app: &TestApp, root: &str, alice: &str) {
    ok(app
        .patch_json(
            "/namespaces/nlp",
            alice,
            &json!({"description": "language"}),
        )
        .await);
    ok(app
        .patch_json("/namespaces/nlp", alice, &json!({"state": "deprecated"}))
        .await);
    ok(app
        .patch_json("/namespaces/nlp", alice, &json!({"state": "active"}))
        .await);
    ok(app
        .put_json(
            "/namespaces/nlp/permissions",
            alice,
            &json!({"viewers": ["bob"]}),
        )
        .await);
    ok(app
        .post_json("/namespaces", root, &json!({"name": "tmp"}))
        .await);
    ok(app.delete_as("/namespaces/tmp", root).await);
}

/// Each namespace and member action is in the log as often as it was done, ok; bob's refused
/// grant is no member.grant.
fn assert_namespace_and_member_events(events: &[Value]) {
    for (action, actor, resource, count) in [
        ("namespace.create", "root", "namespace:nlp", 1),
        ("namespace.create", "root", "namespace:tmp", 1),
        ("namespace.delete", "root", "namespace:tmp", 1),
        ("member.grant", "root", "namespace:nlp", 1),
        ("member.grant", "alice", "project:tok", 1),
        ("member.revoke", "alice", "project:tok", 1),
        ("namespace.update", "alice", "namespace:nlp", 1),
        ("state.change", "alice", "namespace:nlp", 2),
        ("permissions.update", "alice", "namespace:nlp", 1),
        ("project.create", "alice", "project:tok", 1),
        ("member.grant", "bob", "project:tok", 0),
    ] {
        let matching: Vec<&Value> = events
            .iter()
            .filter(|event| {
                event["action"] == action
                    && event["actor"] == actor
                    && event["resource"] == resource
            })
            .collect();
        assert_eq!(
            matching.len(),
            count,
            "{action} by {actor} on {resource}: {events:#?}"
        );
        for event in matching {
            assert_eq!(event["outcome"], "ok", "{event}");
        }
    }
}

#[tokio::test]
async fn namespace_and_member_actions_appear_exactly_once() {
    let app = TestApp::local().await;
    let root = app.user_token("root", Role::Admin).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Developer).await;
    step_namespace_project_and_member_grants(&app, &root, &alice, &bob).await;
    step_namespace_changes_and_a_deleted_namespace(&app, &root, &alice).await;

    let events = all_events(&app, &root, "").await;
    assert_namespace_and_member_events(&events);
    let denied = find(&events, "access.denied", "bob");
    assert_eq!(denied["resource"], "project:tok");
    assert_eq!(denied["details"]["reason"], "forbidden");
    // Project grants are on the project's timeline.
    let timeline = app.get_as("/projects/tok/audit", &alice).await.json();
    let actions: Vec<&str> = timeline["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["action"].as_str())
        .collect();
    assert!(actions.contains(&"member.grant"), "{timeline}");
    assert!(actions.contains(&"member.revoke"), "{timeline}");
}

#[tokio::test]
async fn searches_are_audited_only_when_enabled() {
    for enabled in [false, true] {
        let app = TestApp::local_with(|settings| settings.audit_searches = enabled).await;
        let root = app.user_token("root", Role::Admin).await;
        let alice = app.user_token("alice", Role::Maintainer).await;
        for path in [
            "/search?q=title:bert&size=1",
            "/aggregate?q=*&field=_extra.project_id",
        ] {
            app.get_as(path, &alice).await.assert_status(StatusCode::OK);
        }
        let events = all_events(&app, &root, "&action=search.query").await;
        if enabled {
            assert_eq!(count_of(&events, "search.query", "alice"), 2, "{events:#?}");
            let search = events
                .iter()
                .find(|event| event["resource"] == "search")
                .unwrap();
            assert_eq!(search["details"]["q"], "title:bert");
            assert_eq!(search["outcome"], "ok");
            assert!(events.iter().any(|event| event["resource"] == "aggregate"));
        } else {
            assert!(events.is_empty(), "{events:#?}");
        }
    }
}
