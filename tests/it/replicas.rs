//! Issue 16: several replicas on one bucket, each always right. Three real `App`s with their
//! own data directories (their own index) on one in-process S3 server, each following the
//! change feed; every wait has a deadline, none is a fixed sleep.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use trove::index::sync::Drift;
use trove::permissions::Role;
use trove::storage::ObjectStoreExt as _;

use crate::common::artifacts::{create_project, create_version, search_ids, upload};
use crate::common::s3_server::S3TestServer;
use crate::common::{TestApp, s3_settings};

const BUCKET: &str = "replicas";
const JWT_SECRET: &str = "replicas-share-this-jwt-secret-0123456789";
const CURSOR_SECRET: &str = "replicas-share-this-cursor-secret-012345";

/// One replica: the app, its follower, and its data directory.
struct Replica {
    app: TestApp,
    settings: trove::config::Settings,
    follower: Option<tokio::task::JoinHandle<()>>,
    scheduler: Option<tokio_cron_scheduler::JobScheduler>,
    _dir: tempfile::TempDir,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(follower) = self.follower.take() {
            follower.abort();
        }
    }
}

impl std::ops::Deref for Replica {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

async fn settings_for(server: &S3TestServer, dir: &std::path::Path) -> trove::config::Settings {
    let mut settings = s3_settings(server, dir, BUCKET).await;
    settings.feed_poll_ms = 50;
    settings.sync_cron = String::new();
    settings.purge_cron = String::new();
    settings.revocation_purge_cron = String::new();
    settings.auth.jwt_secret = Some(trove::config::Secret::new(JWT_SECRET));
    settings.cursor_secret = Some(trove::config::Secret::new(CURSOR_SECRET));
    settings
}

async fn replica(server: &S3TestServer) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(server, dir.path()).await;
    start(settings, dir).await
}

async fn start(settings: trove::config::Settings, dir: tempfile::TempDir) -> Replica {
    let app = TestApp::reopen(settings.clone()).await;
    let follower = trove::jobs::follow::start(&app.state).await;
    Replica {
        app,
        settings,
        follower,
        scheduler: None,
        _dir: dir,
    }
}

/// Polls `check` until it holds, for at most 30 s (a generous bound: CI machines are shared).
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(30, what, check).await;
}

/// Polls `check` until it holds, for at most `seconds`.
async fn within<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {seconds} s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn sorted_hits(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let mut hits = search_ids(app, Some(token), query).await;
    hits.sort();
    hits
}

/// An upload on A is searchable on B and C, and the audit of every replica shows A's events.
async fn step_an_upload_and_its_events_reach_the_others(
    a: &TestApp,
    b: &TestApp,
    c: &TestApp,
    owner: &str,
    admin: &str,
) {
    // An upload on A is searchable on B and C.
    create_project(a, owner, "p", "private").await;
    create_version(a, owner, "p", "v1").await;
    upload(
        a,
        Some(owner),
        "p",
        "v1",
        "data.json",
        br#"{"title": "cats"}"#,
    )
    .await
    .assert_status(StatusCode::CREATED);
    for other in [b, c] {
        eventually("the upload on A is searchable on B and C", || async {
            sorted_hits(other, owner, "cats").await == ["p:data.json@v1"]
        })
        .await;
    }

    // The audit of every replica shows the events stored by the others.
    for other in [b, c] {
        eventually("A's events are in the audit of B and C", || async {
            let page = other
                .get_as("/audit?action=project.create&project=p", admin)
                .await
                .json();
            page["results"].as_array().is_some_and(|events| {
                events.len() == 1 && events[0]["outcome"] == "ok" && events[0]["completed"] == true
            })
        })
        .await;
    }
}

/// A share made on A reaches B; revoked on A, it is gone from B's search and direct access.
async fn step_a_share_and_its_revocation_reach_b(
    a: &TestApp,
    b: &TestApp,
    owner: &str,
    reader: &str,
) {
    // A share made on A reaches B; revoked on A, it is gone from B's search and direct access.
    a.post_json("/projects/p/share", owner, &json!({"principal": "reader"}))
        .await
        .assert_status(StatusCode::CREATED);
    eventually("the share on A opens B's search", || async {
        sorted_hits(b, reader, "cats").await == ["p:data.json@v1"]
    })
    .await;
    assert_eq!(b.get_as("/projects/p", reader).await.status, StatusCode::OK);
    a.delete_as("/projects/p/share/reader", owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    eventually("the revoked share is gone from B", || async {
        sorted_hits(b, reader, "cats").await.is_empty()
            && b.get_as("/projects/p", reader).await.status == StatusCode::NOT_FOUND
    })
    .await;
}

/// A cursor from A is served by B.
async fn step_a_cursor_from_a_is_served_by_b(a: &TestApp, b: &TestApp, owner: &str) {
    // A cursor from A is served by B.
    for path in ["second.json", "third.json"] {
        upload(a, Some(owner), "p", "v1", path, br#"{"title": "cats"}"#)
            .await
            .assert_status(StatusCode::CREATED);
    }
    eventually("B holds the three cat documents", || async {
        sorted_hits(b, owner, "cats").await.len() == 3
    })
    .await;
    let first = a
        .get_as("/search?q=cats&size=1&sort=_extra.uploaded", owner)
        .await
        .json();
    let next = first["next"].as_str().expect("a cursor").to_owned();
    let second = b.get_as(&next, owner).await.assert_status(StatusCode::OK);
    let page = second.json();
    assert_eq!(page["results"].as_array().map(Vec::len), Some(1), "{page}");
    assert_ne!(
        page["results"][0]["_extra"]["id"],
        first["results"][0]["_extra"]["id"]
    );
}

/// A job created on A is polled to SUCCESS on B; somebody else's job stays hidden on every
/// replica.
async fn step_a_job_of_a_is_polled_on_b(
    a: &TestApp,
    b: &TestApp,
    c: &TestApp,
    owner: &str,
    reader: &str,
) {
    // A job created on A is polled to SUCCESS on B.
    let job = a
        .put_json(
            "/projects/p/permissions",
            owner,
            &json!({"read_access": "viewers"}),
        )
        .await
        .assert_status(StatusCode::ACCEPTED);
    let path = job.json()["path"].as_str().unwrap().to_owned();
    eventually("the job of A is answered by B as finished", || async {
        let answer = b.get_as(&path, owner).await.assert_status(StatusCode::OK);
        answer.json()["status"] == "SUCCESS"
    })
    .await;
    // Somebody else's job stays hidden on every replica.
    assert_eq!(c.get_as(&path, reader).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_one_bucket_agree() {
    let server = S3TestServer::start().await;
    let a = replica(&server).await;
    let b = replica(&server).await;
    let c = replica(&server).await;
    let admin = a.user_token("root", Role::Admin).await;
    let owner = a.user_token("owner", Role::Maintainer).await;
    let reader = a.user_token("reader", Role::Guest).await;

    step_an_upload_and_its_events_reach_the_others(&a, &b, &c, &owner, &admin).await;

    step_a_share_and_its_revocation_reach_b(&a, &b, &owner, &reader).await;

    step_a_cursor_from_a_is_served_by_b(&a, &b, &owner).await;

    step_a_job_of_a_is_polled_on_b(&a, &b, &c, &owner, &reader).await;

    // A project disabled on A answers 404 on B (its owner included: only admins see it).
    a.patch_json("/projects/p", &admin, &json!({"state": "disabled"}))
        .await
        .assert_status(StatusCode::OK);
    eventually(
        "the disabled project is 404 and out of search on B",
        || async {
            b.get_as("/projects/p", &owner).await.status == StatusCode::NOT_FOUND
                && sorted_hits(&b, &owner, "cats").await.is_empty()
        },
    )
    .await;
    for replica in [&a, &b, &c] {
        let report =
            trove::index::sync::check_all(&replica.state.indexer, &replica.state.index, false)
                .await
                .unwrap();
        assert_eq!(report.drift_count, 0, "{:?}", report.drift);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_replica_catches_up_on_a_burst_of_changes() {
    let server = S3TestServer::start().await;
    let a = replica(&server).await;
    let b = replica(&server).await;
    let owner = a.user_token("owner", Role::Maintainer).await;
    for project in ["p0", "p1", "p2", "p3", "p4"] {
        create_project(&a, &owner, project, "public").await;
    }
    eventually("B sees the five projects", || async {
        b.get_as("/projects?size=50", &owner).await.json()["results"]
            .as_array()
            .map_or(0, Vec::len)
            == 5
    })
    .await;

    // B stops; 500 changes happen on A; B restarts on its data directory.
    let (settings, dir) = {
        let mut b = b;
        let settings = b.settings.clone();
        let dir = std::mem::replace(&mut b._dir, tempfile::tempdir().unwrap());
        drop(b);
        (settings, dir)
    };
    // The burst: 100 rounds of five changes in flight at once (one per project).
    let mut last = BTreeMap::new();
    for round in 0..100 {
        let changes = ["p0", "p1", "p2", "p3", "p4"].map(|project| {
            let description = format!("round{round} of {project}");
            last.insert(project, description.clone());
            let request = axum::http::Request::builder()
                .method(Method::PATCH)
                .uri(format!("/projects/{project}"))
                .header("authorization", format!("Bearer {owner}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    json!({ "description": description }).to_string(),
                ))
                .unwrap();
            crate::common::send_to(a.router.clone(), request)
        });
        for answer in futures::future::join_all(changes).await {
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        }
    }
    let b = start(settings, dir).await;
    eventually("B caught up with the 500 changes", || async {
        let listing = b.get_as("/projects?size=50", &owner).await.json();
        listing["results"].as_array().is_some_and(|projects| {
            projects.iter().all(|project| {
                let id = project["project_id"].as_str().unwrap_or_default();
                last.get(id).map(String::as_str) == project["description"].as_str()
            }) && projects.len() == 5
        }) && {
            // Each project is found by the word of its last description, on B.
            let mut found = true;
            for (project, description) in &last {
                let word = description.split(' ').next().unwrap_or_default();
                let hits = b
                    .get_as(&format!("/search?q={word}&kind=project"), &owner)
                    .await
                    .json();
                found &= hits["results"]
                    .as_array()
                    .is_some_and(|hits| hits.iter().any(|hit| hit["project_id"] == *project));
            }
            found
        }
    })
    .await;
    let report = trove::index::sync::check_all(&b.state.indexer, &b.state.index, false)
        .await
        .unwrap();
    assert_eq!(report.drift_count, 0, "{:?}", report.drift);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_tasks_run_once_per_period_across_replicas() {
    let server = S3TestServer::start().await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = settings_for(&server, dir.path()).await;
        settings.sync_cron = "*/2 * * * * *".to_owned();
        let mut replica = start(settings, dir).await;
        replica.scheduler = trove::jobs::schedule::start(replica.state.clone())
            .await
            .unwrap();
        replicas.push(replica);
    }
    let store = replicas[0].state.storage.clone();
    let sync_jobs = || async {
        let mut jobs: Vec<Value> = Vec::new();
        for object in store
            .list_all(&trove::storage::keys::jobs_prefix())
            .await
            .unwrap()
        {
            let (bytes, _) = store.get_bytes(&object.key).await.unwrap();
            let job: Value = serde_json::from_slice(&bytes).unwrap();
            if job["kind"] == "sync" {
                jobs.push(job);
            }
        }
        jobs
    };
    eventually("four sync periods went by", || async {
        sync_jobs().await.len() >= 4
    })
    .await;
    for replica in &mut replicas {
        if let Some(mut scheduler) = replica.scheduler.take() {
            scheduler.shutdown().await.unwrap();
        }
    }
    // One run per two-second period, whichever replica ran it.
    let mut per_period: BTreeMap<i64, usize> = BTreeMap::new();
    for job in sync_jobs().await {
        let created: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(job["created_at"].clone()).unwrap();
        *per_period.entry(created.timestamp() / 2).or_default() += 1;
    }
    assert!(
        per_period.values().all(|&runs| runs == 1),
        "runs per period: {per_period:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_demoting_the_last_two_admins_at_once_leave_one() {
    let server = S3TestServer::start().await;
    let a = replica(&server).await;
    let b = replica(&server).await;
    let first = a.user_token("first", Role::Admin).await;
    let second = a.user_token("second", Role::Admin).await;
    for _ in 0..5 {
        let demote = |app: &TestApp, token: String, user: &'static str| {
            let router = app.router.clone();
            async move {
                let request = axum::http::Request::builder()
                    .method(Method::PATCH)
                    .uri(format!("/users/{user}"))
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(json!({"role": "guest"}).to_string()))
                    .unwrap();
                crate::common::send_to(router, request).await
            }
        };
        let (one, two) = tokio::join!(
            demote(&a, first.clone(), "second"),
            demote(&b, second.clone(), "first")
        );
        let admins = a
            .state
            .auth
            .records()
            .accounts()
            .await
            .unwrap()
            .into_iter()
            .filter(|account| account.role == Role::Admin && !account.disabled)
            .count();
        assert_eq!(admins, 1, "{} / {}", one.text(), two.text());
        // One demotion went through; the other was refused (409 last admin, or 403 when the
        // demoted admin's request came after its demotion).
        let done = [&one, &two]
            .iter()
            .filter(|answer| answer.status == StatusCode::OK)
            .count();
        assert_eq!(done, 1, "{} / {}", one.text(), two.text());
        for answer in [&one, &two] {
            assert!(
                [StatusCode::OK, StatusCode::CONFLICT, StatusCode::FORBIDDEN]
                    .contains(&answer.status),
                "{}",
                answer.text()
            );
        }
        // Restore both for the next round, through the service (the guard holds there too).
        for user in ["first", "second"] {
            a.state
                .auth
                .update_account(
                    user,
                    &trove::auth::service::AccountChange {
                        role: Some(Role::Admin),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
        }
    }
}

/// The sync check of `app`'s index against its storage, repairing when `repair`.
async fn sync_check(app: &TestApp, repair: bool) -> trove::index::sync::SyncReport {
    trove::index::sync::check_all(&app.state.indexer, &app.state.index, repair)
        .await
        .unwrap()
}

/// Changes the JSON record at `key` behind the service's back (another writer, a lost feed
/// entry).
async fn rewrite_record(app: &TestApp, key: String, change: fn(&mut Value)) {
    use trove::storage::PutOptions;
    let store = app.state.storage.clone();
    let (bytes, _) = store.get_bytes(&key).await.unwrap();
    let mut record: Value = serde_json::from_slice(&bytes).unwrap();
    change(&mut record);
    store
        .put_bytes(
            &key,
            serde_json::to_vec(&record).unwrap().into(),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

/// Rewrites the record at `key` with `change`: the sync check reports a drift `seen` picks,
/// repairs it, and finds none after.
async fn drift_is_seen_and_repaired(
    app: &TestApp,
    key: String,
    seen: impl Fn(&Drift) -> bool,
    change: fn(&mut Value),
) {
    rewrite_record(app, key, change).await;
    let report = sync_check(app, false).await;
    assert!(report.drift.iter().any(seen), "{:?}", report.drift);
    sync_check(app, true).await;
    assert_eq!(sync_check(app, false).await.drift_count, 0);
}

#[tokio::test]
async fn the_sync_check_sees_record_state_stable_mark_and_content_drift_and_repairs_it() {
    use trove::storage::keys;
    let app = TestApp::local().await;
    let owner = app.user_token("owner", Role::Maintainer).await;
    create_project(&app, &owner, "p", "public").await;
    create_version(&app, &owner, "p", "v1").await;
    upload(&app, Some(&owner), "p", "v1", "a.json", br#"{"x": 1}"#)
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(sync_check(&app, false).await.drift_count, 0);

    // Behind the service's back (another writer, a lost feed entry): the project's
    // description and state, and the version's stable mark.
    let project_drift = |drift: &Drift| drift.project_id == "p" && drift.version.is_none();
    let v1_drift = |drift: &Drift| drift.version.as_deref() == Some("v1");
    drift_is_seen_and_repaired(&app, keys::project_record("p"), project_drift, |record| {
        record["description"] = json!("zebrafish");
    })
    .await;
    let found = app
        .get_as("/search?q=zebrafish&kind=project", &owner)
        .await
        .json();
    assert_eq!(found["results"][0]["project_id"], "p", "{found}");

    drift_is_seen_and_repaired(&app, keys::version_record("p", "v1"), v1_drift, |record| {
        record["stable"] = json!(true);
    })
    .await;

    // A metadata document rewritten in place.
    drift_is_seen_and_repaired(
        &app,
        keys::version_file("p", "v1", "a.json"),
        v1_drift,
        |document| {
            document["x"] = json!("okapi");
        },
    )
    .await;
    assert_eq!(
        search_ids(&app, Some(&owner), "okapi").await,
        ["p:a.json@v1"]
    );

    rewrite_record(&app, keys::project_record("p"), |record| {
        record["state"] = json!("disabled");
    })
    .await;
    assert!(sync_check(&app, false).await.drift_count > 0);
    sync_check(&app, true).await;
    assert_eq!(sync_check(&app, false).await.drift_count, 0);
    assert!(
        search_ids(&app, Some(&owner), "*").await.is_empty(),
        "a disabled project leaves its owner's search once repaired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_of_one_project_all_succeed() {
    // Found by the replica burst: a PATCH without any precondition answered 412 when another
    // PATCH of the same project landed between its read and its conditional write.
    let app = TestApp::local().await;
    let owner = app.user_token("owner", Role::Maintainer).await;
    create_project(&app, &owner, "p", "public").await;
    let changes = (0..10).map(|round| {
        let request = axum::http::Request::builder()
            .method(Method::PATCH)
            .uri("/projects/p")
            .header("authorization", format!("Bearer {owner}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                json!({ "description": format!("change{round}") }).to_string(),
            ))
            .unwrap();
        crate::common::send_to(app.router.clone(), request)
    });
    for answer in futures::future::join_all(changes).await {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    let record = app.get_as("/projects/p", &owner).await.json();
    assert!(
        record["description"]
            .as_str()
            .is_some_and(|description| description.starts_with("change")),
        "{record}"
    );
}

/// Stops a replica the way `trove serve` does on SIGTERM: its follower stopped and awaited,
/// then [`trove::app::App::close`]; answers its settings and data directory for a restart.
async fn stop_cleanly(mut replica: Replica) -> (trove::config::Settings, tempfile::TempDir) {
    if let Some(follower) = replica.follower.take() {
        follower.abort();
        let _ = follower.await;
    }
    assert_eq!(
        replica.state.close().await,
        Ok(()),
        "a quiet replica closes cleanly"
    );
    let settings = replica.settings.clone();
    let dir = std::mem::replace(&mut replica._dir, tempfile::tempdir().unwrap());
    (settings, dir)
}

/// Issue 18 item 7: a replica stopped cleanly opens reads after replaying the change feed
/// since its position — not after checking all of storage — and what another replica changed
/// while it was down is already applied to its very first read: a revoked share, a narrowed
/// project, a deleted version, a new project. The check of all of storage still follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cleanly_stopped_replica_replays_the_feed_before_its_first_read() {
    let server = S3TestServer::start().await;
    let a = replica(&server).await;
    let b = replica(&server).await;
    let owner = a.user_token("owner", Role::Maintainer).await;
    let reader = a.user_token("reader", Role::Maintainer).await;
    for (project, visibility) in [
        ("shared", "private"),
        ("open", "public"),
        ("doomed", "public"),
    ] {
        create_project(&a, &owner, project, visibility).await;
        create_version(&a, &owner, project, "v1").await;
        upload(
            &a,
            Some(&owner),
            project,
            "v1",
            "data.json",
            br#"{"title": "cats"}"#,
        )
        .await
        .assert_status(StatusCode::CREATED);
    }
    a.post_json(
        "/projects/shared/share",
        &owner,
        &json!({"principal": "reader"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let before = [
        "doomed:data.json@v1",
        "open:data.json@v1",
        "shared:data.json@v1",
    ];
    eventually("B finds the reader's three documents", || async {
        sorted_hits(&b, &reader, "cats").await == before
    })
    .await;

    let (settings, dir) = stop_cleanly(b).await;
    assert!(dir.path().join("index-closed-cleanly").exists());
    // While B is down, on A: the share revoked, `open` narrowed to its owners, `doomed`'s
    // version deleted, `fresh` created.
    a.delete_as("/projects/shared/share/reader", &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let narrowed = a
        .put_json(
            "/projects/open/permissions",
            &owner,
            &json!({"read_access": "owners"}),
        )
        .await
        .assert_status(StatusCode::ACCEPTED);
    let job = narrowed.json()["path"].as_str().unwrap().to_owned();
    eventually("the narrowing is applied on A", || async {
        a.get_as(&job, &owner).await.json()["status"] == "SUCCESS"
    })
    .await;
    a.delete_as("/projects/doomed/version/v1", &owner)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    create_project(&a, &owner, "fresh", "public").await;
    create_version(&a, &owner, "fresh", "v1").await;
    upload(
        &a,
        Some(&owner),
        "fresh",
        "v1",
        "data.json",
        br#"{"title": "cats"}"#,
    )
    .await
    .assert_status(StatusCode::CREATED);

    let b = start(settings, dir).await;
    assert!(b.state.closed_cleanly_before);
    assert!(
        !b._dir.path().join("index-closed-cleanly").exists(),
        "consumed at start"
    );
    let mut reads_open = b.state.reconciled.subscribe();
    b.state.reconcile_in_background();
    // The first read on B (the reads it would hold meanwhile answer `503` after the storage
    // timeout, which a loaded machine may reach): nothing stale, nothing missing.
    reads_open.wait_for(|open| *open).await.unwrap();
    assert_eq!(
        sorted_hits(&b, &reader, "cats").await,
        ["fresh:data.json@v1"]
    );
    assert_eq!(
        b.get_as("/projects/shared", &reader).await.status,
        StatusCode::NOT_FOUND
    );
    let status = b.get("/status").await.json();
    assert_eq!(status["reads_opened"]["after"], "feed_replay", "{status}");
    // The check of all of storage follows, and finds nothing the replay missed.
    eventually("the start-up sync check ran", || async {
        b.state.last_sync.lock().unwrap().is_some()
    })
    .await;
    let report = b.state.last_sync.lock().unwrap().clone().unwrap();
    assert_eq!(report.drift_count, 0, "{:?}", report.drift);
}

/// A graceful stop does not wait for a start-up reconciliation that cannot end (storage
/// unreachable: it retries until storage answers): the job is cut short and ends as failed,
/// the stop records no clean close (the index was never checked), and `close` returns without
/// the 30 s it would otherwise wait — an orchestrator's grace period is often no longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_cuts_short_a_reconciliation_that_cannot_end() {
    let mut server = S3TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings_for(&server, dir.path()).await;
    settings.storage_timeout_ms = 1_000;
    let mut b = start(settings, dir).await;
    if let Some(follower) = b.follower.take() {
        follower.abort();
        let _ = follower.await;
    }
    server.stop().await;
    let job = b.state.reconcile_in_background();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !*b.state.reconciled.borrow(),
        "reads opened without storage"
    );
    assert_eq!(
        b.state.jobs.get(&job).map(|job| job.status),
        Some(trove::jobs::JobStatus::Started)
    );

    let started = std::time::Instant::now();
    let closed = b.state.close().await;
    let took = started.elapsed();
    assert_eq!(closed, Err("a job failed or was stopped"));
    assert!(
        took < Duration::from_secs(15),
        "the stop waited {took:?} for a reconciliation that could not end"
    );
    let ended = b.state.jobs.get(&job).unwrap();
    assert_eq!(ended.status, trove::jobs::JobStatus::Failure);
    assert_eq!(
        ended.error.as_deref(),
        Some(trove::jobs::STOPPED_BY_SHUTDOWN)
    );
    assert!(!b._dir.path().join("index-closed-cleanly").exists());
}

/// Without a clean shutdown recorded (a crash: the replica dropped, never closed), or when a
/// re-index of the last run failed, reads wait for the check of all of storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_clean_shutdown_reads_wait_for_the_sync_check() {
    let mut server = S3TestServer::start().await;
    let b = replica(&server).await;
    let owner = b.user_token("owner", Role::Maintainer).await;
    create_project(&b, &owner, "p", "public").await;
    // A crash: dropped without `close`.
    let settings = b.settings.clone();
    let dir = {
        let mut b = b;
        std::mem::replace(&mut b._dir, tempfile::tempdir().unwrap())
    };
    let b = start(settings, dir).await;
    assert!(!b.state.closed_cleanly_before);
    let mut reads_open = b.state.reconciled.subscribe();
    b.state.reconcile_in_background();
    reads_open.wait_for(|open| *open).await.unwrap();
    assert_eq!(b.get_as("/projects/p", &owner).await.status, StatusCode::OK);
    let status = b.get("/status").await.json();
    assert_eq!(status["reads_opened"]["after"], "sync_check", "{status}");

    // A clean stop after a failed re-index (storage down meanwhile) does not vouch for the
    // index either.
    assert!(!b.state.indexer.may_lack_changes());
    server.stop().await;
    assert!(b.state.indexer.index_version("p", "v1").await.is_err());
    server.restart().await;
    assert!(b.state.indexer.may_lack_changes());
    let (settings, dir) = {
        let mut b = b;
        if let Some(follower) = b.follower.take() {
            follower.abort();
            let _ = follower.await;
        }
        assert_eq!(
            b.state.close().await,
            Err("a re-index failed or was dropped"),
            "recorded clean after a failed re-index"
        );
        let settings = b.settings.clone();
        (
            settings,
            std::mem::replace(&mut b._dir, tempfile::tempdir().unwrap()),
        )
    };
    assert!(!dir.path().join("index-closed-cleanly").exists());
    let b = start(settings, dir).await;
    assert!(!b.state.closed_cleanly_before);
}

/// A namespace is never deleted under a project another replica just created: replica B has
/// not seen the project (no follower, so its index never will), yet B's deletion finds the
/// project's claim in storage and is refused; the refusal leaves the namespace usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_is_not_deleted_under_a_project_another_replica_just_created() {
    let server = S3TestServer::start().await;
    let a = replica(&server).await;
    let b_dir = tempfile::tempdir().unwrap();
    let b = TestApp::reopen(settings_for(&server, b_dir.path()).await).await;
    let admin = a.user_token("root", Role::Admin).await;
    a.post_json(
        "/namespaces",
        &admin,
        &json!({"name": "team", "visibility": "private"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    a.post_json(
        "/projects",
        &admin,
        &json!({"project_id": "fresh", "title": "T", "type": "MODEL", "namespace": "team"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    // B's index does not know the project: what B used to trust.
    let known = trove::catalog::namespaces::namespace_projects(&b.state, "team")
        .await
        .unwrap();
    assert!(known.is_empty(), "{known:?}");
    let refused = b
        .delete_as("/namespaces/team", &admin)
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(refused.code(), "namespace_not_empty");
    a.get_as("/projects/fresh", &admin)
        .await
        .assert_status(StatusCode::OK);
    a.post_json(
        "/projects",
        &admin,
        &json!({"project_id": "second", "title": "T", "type": "MODEL", "namespace": "team"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
}

/// Polls `check` until it holds, for at most 10 s: a third of the profile cache's TTL, so
/// what holds by then came through the change feed, not from a cached copy expiring.
async fn through_the_feed<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(10, what, check).await;
}

/// A grant on a namespace without projects, revoked on A, is revoked on B as soon as B follows
/// the feed (nothing to re-index, but B's cached profile is stale); and a namespace deleted on
/// A and created again under the same name does not keep the old one's grants on B.
#[tokio::test]
async fn namespace_grants_changed_on_a_hold_on_b_without_waiting_for_its_cache() {
    let server = S3TestServer::start().await;
    let a = replica(&server).await;
    let b = replica(&server).await;
    let admin = a.user_token("root", Role::Admin).await;
    let mallory = a.user_token("mallory", Role::Maintainer).await;
    // Each step must hold on B (whose cache holds the profile it last read) within the bound.
    let on_b = |what: &'static str, expected: StatusCode| {
        let (b, mallory) = (&b, &mallory);
        async move {
            through_the_feed(what, || async {
                b.get_as("/namespaces/team", mallory).await.status == expected
            })
            .await;
        }
    };
    let create = || async {
        a.post_json(
            "/namespaces",
            &admin,
            &json!({"name": "team", "visibility": "private"}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    };
    let grant = || async {
        a.post_json(
            "/namespaces/team/members",
            &admin,
            &json!({"principal": "mallory", "level": "guest"}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    };
    create().await;
    grant().await;
    on_b("the grant on A holds on B", StatusCode::OK).await;
    a.delete_as("/namespaces/team/members/mallory", &admin)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    on_b("the revocation on A holds on B", StatusCode::NOT_FOUND).await;

    grant().await;
    on_b("the grant again on B", StatusCode::OK).await;
    a.delete_as("/namespaces/team", &admin)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    create().await;
    on_b(
        "the new namespace of the name has no grant of the old one on B",
        StatusCode::NOT_FOUND,
    )
    .await;
}
