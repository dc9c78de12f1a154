//! The indexer over real storage, and the sync check finding and repairing drift.

use bytes::Bytes;
use chrono::Utc;
use serde_json::{Value, json};
use trove::index::search::{KindFilter, SearchRequest, search};
use trove::index::sync::{check_all, check_version};
use trove::permissions::{AccessScope, Caller, Role};
use trove::storage::{ObjectStore, ObjectStoreExt as _, PutOptions, keys};

use crate::common::TestApp;

async fn put_json(storage: &dyn ObjectStore, key: &str, value: Value) {
    storage
        .put_bytes(key, Bytes::from(value.to_string()), PutOptions::default())
        .await
        .unwrap();
}

async fn put_text(storage: &dyn ObjectStore, key: &str, text: &str) {
    storage
        .put_bytes(key, Bytes::from(text.to_owned()), PutOptions::default())
        .await
        .unwrap();
}

/// Project `bert` owned by alice, with one completed version `v1`.
async fn seed(app: &TestApp) {
    let storage = app.state.storage.as_ref();
    put_json(
        storage,
        &keys::project_record("bert"),
        json!({
            "project_id": "bert", "title": "BERT base", "type": "MODEL",
            "created_at": "2026-11-01T00:00:00Z", "created_by": "alice"
        }),
    )
    .await;
    put_json(storage, &keys::project_permissions("bert"), json!({
        "scope": "project", "owners": ["alice"], "viewers": [], "read_access": "viewers", "write_access": "owners"
    })).await;
    put_json(storage, &keys::version_record("bert", "v1"), json!({
        "project_id": "bert", "version": "v1", "created_at": "2026-11-01T00:00:00Z", "created_by": "alice",
        "status": "completed", "revision": "NUM-1", "numerical_revision": 1
    })).await;
    put_json(
        storage,
        &keys::version_file("bert", "v1", "weights.bin.json"),
        json!({"path": "weights.bin", "title": "bert weights", "$schema": "model/v1.json"}),
    )
    .await;
    put_text(
        storage,
        &keys::version_file("bert", "v1", "weights.bin"),
        "0123456789",
    )
    .await;
    put_text(
        storage,
        &keys::version_file("bert", "v1", "notes/readme.txt"),
        "hello",
    )
    .await;
    put_json(
        storage,
        &keys::version_file("bert", "v1", "scratch.json"),
        json!({"title": "scratch"}),
    )
    .await;
    put_text(
        storage,
        &keys::version_adbignore("bert", "v1"),
        "scratch.json\n",
    )
    .await;
}

fn ids(app: &TestApp, caller: &Caller) -> Vec<String> {
    let request = SearchRequest {
        query: "*".into(),
        size: 100,
        kind: KindFilter::All,
        ..SearchRequest::default()
    };
    let page = search(
        &app.state.index,
        &AccessScope::for_caller(caller),
        &request,
        Utc::now(),
    )
    .unwrap();
    let mut ids: Vec<String> = page
        .hits
        .iter()
        .map(|h| h.source()["_extra"]["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_indexer_builds_metadata_automatic_and_project_documents() {
    let app = TestApp::local().await;
    seed(&app).await;
    let report = app.index_all().await;
    assert_eq!(report.projects, 1);
    assert_eq!(report.versions, 1);

    let alice = Caller::account("alice", Role::Maintainer);
    assert_eq!(
        ids(&app, &alice),
        ["bert", "bert:notes/readme.txt@v1", "bert:weights.bin@v1"],
        "one metadata document (describing weights.bin), one automatic, the project; scratch.json ignored"
    );
    assert!(ids(&app, &Caller::account("bob", Role::Maintainer)).is_empty());
    assert!(ids(&app, &Caller::Anonymous).is_empty());

    let request = SearchRequest {
        query: "title:weights".into(),
        size: 10,
        ..SearchRequest::default()
    };
    let page = search(
        &app.state.index,
        &AccessScope::for_caller(&alice),
        &request,
        Utc::now(),
    )
    .unwrap();
    let extra = &page.hits[0].source()["_extra"];
    assert_eq!(extra["metapath"], "weights.bin.json");
    assert_eq!(extra["file_size"], 10);
    assert_eq!(extra["revision"], "NUM-1");
    assert_eq!(extra["type"], "MODEL");
    assert_eq!(extra["$schema"], "model/v1.json");
    assert_eq!(extra["permissions"]["owners"], json!(["alice"]));

    // Indexing again replaces, never duplicates.
    app.index_all().await;
    app.state.indexer.index_version("bert", "v1").await.unwrap();
    assert_eq!(ids(&app, &alice).len(), 3);
    assert_eq!(app.state.index.health().documents, 3);
}

#[tokio::test]
async fn a_profile_edited_in_storage_is_drift_until_repaired() {
    let app = TestApp::local().await;
    seed(&app).await;
    let indexer = &app.state.indexer;
    let index = &app.state.index;
    indexer.index_projects(None, |_, _| {}).await.unwrap();
    let clean = check_version(indexer, index, "bert", "v1", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(clean.status, "ok", "{:?}", clean.anomalies);
    assert_eq!(clean.indexed_docs, 2);
    assert_eq!(check_all(indexer, index, false).await.unwrap().status, "ok");

    // Behind the service's back: bob becomes a viewer of v1.
    put_json(
        app.state.storage.as_ref(),
        &keys::version_permissions("bert", "v1"),
        json!({
            "scope": "version", "owners": ["alice"], "viewers": ["bob"], "read_access": "viewers"
        }),
    )
    .await;
    let bob = Caller::account("bob", Role::Maintainer);
    assert!(ids(&app, &bob).is_empty(), "the index does not know yet");

    let report = check_version(indexer, index, "bert", "v1", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.status, "error");
    assert!(
        report
            .anomalies
            .contains(&"bert:weights.bin@v1: permissions differ".to_owned()),
        "{:?}",
        report.anomalies
    );
    assert_eq!(report.actions, ["re-index project/version"]);
    assert_eq!(report.permissions["viewers"], json!(["bob"]));

    let global = check_all(indexer, index, false).await.unwrap();
    assert_eq!(global.drift_count, 1, "{:?}", global.drift);
    assert!(!global.repaired);
    let repaired = check_all(indexer, index, true).await.unwrap();
    assert!(repaired.repaired);
    assert_eq!(
        ids(&app, &bob),
        ["bert:notes/readme.txt@v1", "bert:weights.bin@v1"]
    );
    assert_eq!(check_all(indexer, index, false).await.unwrap().status, "ok");
    assert_eq!(
        check_version(indexer, index, "bert", "v1", Utc::now())
            .await
            .unwrap()
            .unwrap()
            .status,
        "ok"
    );
}

#[tokio::test]
async fn missing_and_stale_documents_are_drift() {
    let app = TestApp::local().await;
    seed(&app).await;
    let indexer = &app.state.indexer;
    let index = &app.state.index;
    indexer.index_projects(None, |_, _| {}).await.unwrap();
    // A file appears and another disappears without the index being told.
    put_text(
        app.state.storage.as_ref(),
        &keys::version_file("bert", "v1", "extra.csv"),
        "a,b",
    )
    .await;
    app.state
        .storage
        .delete(&keys::version_file("bert", "v1", "notes/readme.txt"))
        .await
        .unwrap();
    let report = check_version(indexer, index, "bert", "v1", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert!(
        report
            .anomalies
            .contains(&"bert:extra.csv@v1: not indexed".to_owned()),
        "{:?}",
        report.anomalies
    );
    assert!(
        report
            .anomalies
            .contains(&"bert:notes/readme.txt@v1: indexed but not in storage".to_owned())
    );
    // A whole project deleted from storage.
    for object in app.state.storage.list_all("bert/").await.unwrap() {
        app.state.storage.delete(&object.key).await.unwrap();
    }
    let global = check_all(indexer, index, true).await.unwrap();
    assert!(global.drift_count >= 1);
    assert_eq!(
        index.health().documents,
        0,
        "repair removed the orphaned documents"
    );
    assert!(
        check_version(indexer, index, "bert", "v1", Utc::now())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_scheduled_sync_check_repairs_drift_and_exports_it() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = crate::common::local_settings(data_dir.path().to_path_buf());
    settings.sync_cron = "*/1 * * * * *".to_owned();
    let app = TestApp::with_settings(settings).await;
    seed(&app).await;
    let _scheduler = trove::jobs::schedule::start(app.state.clone())
        .await
        .unwrap()
        .expect("scheduled");
    let alice = Caller::account("alice", Role::Maintainer);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // The check indexes first and records its report afterwards: wait for both.
    while ids(&app, &alice).len() < 3 || app.state.last_sync.lock().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the scheduled check never indexed the seeded project"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let last = app
        .state
        .last_sync
        .lock()
        .unwrap()
        .clone()
        .expect("a sync ran");
    assert!(last.repaired || last.drift_count == 0);
    // `/metrics` is for admins (issue 12).
    let admin = app.user_token("scraper", Role::Admin).await;
    assert!(
        app.bearer(axum::http::Method::GET, "/metrics", &admin, None)
            .await
            .text()
            .contains("trove_sync_drift")
    );
}

#[test]
fn an_invalid_sync_cron_names_its_setting() {
    let mut settings = crate::common::local_settings(std::env::temp_dir());
    settings.sync_cron = "every five minutes".to_owned();
    assert_eq!(settings.validate().unwrap_err().setting, "TROVE_SYNC_CRON");
}

#[tokio::test]
async fn an_expiring_grant_leaves_search_totals_when_it_expires() {
    let app = TestApp::local().await;
    seed(&app).await;
    let expires = Utc::now() + chrono::Duration::seconds(5);
    put_json(
        app.state.storage.as_ref(),
        &keys::project_permissions("bert"),
        json!({
            "scope": "project", "owners": ["alice"], "viewers": ["carol"], "read_access": "viewers",
            "expires": {"carol": expires}
        }),
    )
    .await;
    app.index_all().await;
    let _task = trove::jobs::schedule::spawn_expiry_reindexer(app.state.clone());
    let carol = Caller::account("carol", Role::Guest);
    let request = SearchRequest {
        query: "*".into(),
        size: 10,
        ..SearchRequest::default()
    };
    let before = expires - chrono::Duration::seconds(1);
    assert_eq!(
        search(
            &app.state.index,
            &AccessScope::for_caller(&carol),
            &request,
            before
        )
        .unwrap()
        .total,
        2
    );
    // Totals come from the index: the re-index at expiry makes them right, not just the hits.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let indexed_total = search(
            &app.state.index,
            &AccessScope::for_caller(&carol),
            &request,
            before,
        )
        .unwrap()
        .total;
        if indexed_total == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not re-indexed after the expiry"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn start_up_reconciliation_rebuilds_a_missing_index_from_storage() {
    let data_dir = tempfile::tempdir().unwrap();
    let settings = crate::common::local_settings(data_dir.path().to_path_buf());
    let first = TestApp::with_settings(settings.clone()).await;
    seed(&first).await;
    first.state.index.close();
    drop(first);
    // The index is lost (or its schema changed): the next start rebuilds it from storage.
    std::fs::remove_dir_all(data_dir.path().join("index")).unwrap();
    let second = TestApp::with_settings(settings).await;
    assert!(second.state.index.needs_rebuild());
    let job = second.state.reconcile_in_background();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let info = second.state.jobs.get(&job).unwrap();
        if info.status == trove::jobs::JobStatus::Success {
            break;
        }
        assert_ne!(
            info.status,
            trove::jobs::JobStatus::Failure,
            "{:?}",
            info.error
        );
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        ids(&second, &Caller::account("alice", Role::Maintainer)).len(),
        3
    );
    assert_eq!(
        second
            .state
            .last_sync
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .drift_count,
        0
    );
}

/// A store that holds the first recursive listing of one prefix until released: a project
/// re-index paused between reading a version's files and applying them.
#[derive(Debug)]
struct PausedListing {
    inner: std::sync::Arc<dyn ObjectStore>,
    prefix: String,
    reached: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
    paused: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ObjectStore for PausedListing {
    fn kind(&self) -> trove::storage::StorageKind {
        self.inner.kind()
    }
    async fn head(&self, key: &str) -> trove::storage::Result<trove::storage::ObjectMeta> {
        self.inner.head(key).await
    }
    async fn get(
        &self,
        key: &str,
        range: Option<trove::storage::ByteRange>,
    ) -> trove::storage::Result<trove::storage::GetObject> {
        self.inner.get(key, range).await
    }
    async fn put(
        &self,
        key: &str,
        body: trove::storage::ByteStream,
        options: PutOptions,
    ) -> trove::storage::Result<trove::storage::PutOutcome> {
        self.inner.put(key, body, options).await
    }
    async fn delete(&self, key: &str) -> trove::storage::Result<()> {
        self.inner.delete(key).await
    }
    async fn list(
        &self,
        request: &trove::storage::ListRequest,
    ) -> trove::storage::Result<trove::storage::ListPage> {
        let page = self.inner.list(request).await?;
        if !request.delimited
            && request.prefix == self.prefix
            && !self.paused.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            // The listing is read; the caller goes on only when released.
            self.reached.notify_one();
            let _ = self.release.acquire().await;
        }
        Ok(page)
    }
    async fn presign(
        &self,
        method: trove::storage::PresignMethod,
        key: &str,
        expires_in: std::time::Duration,
        content_md5: Option<[u8; 16]>,
    ) -> trove::storage::Result<String> {
        self.inner
            .presign(method, key, expires_in, content_md5)
            .await
    }
    async fn presign_download(
        &self,
        key: &str,
        expires_in: std::time::Duration,
        headers: &trove::storage::DownloadHeaders,
    ) -> trove::storage::Result<String> {
        self.inner.presign_download(key, expires_in, headers).await
    }
    async fn check(&self) -> trove::storage::Result<()> {
        self.inner.check().await
    }
}

/// Found by the soak: a project re-index (a profile change's job) read a version, an upload
/// into it was indexed meanwhile, and the re-index then applied its older snapshot — the
/// acknowledged file dropped out of the index until the next sync check. Now the re-index
/// sees that another update of the project applied while it read, and reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_reindex_that_read_before_an_upload_does_not_hide_it() {
    let app = TestApp::local().await;
    seed(&app).await;
    app.index_all().await;
    let paused = std::sync::Arc::new(PausedListing {
        inner: app.state.storage.clone(),
        prefix: keys::project_prefix("bert"),
        reached: tokio::sync::Notify::new(),
        release: tokio::sync::Semaphore::new(0),
        paused: std::sync::atomic::AtomicBool::new(false),
    });
    let slow = trove::index::indexer::Indexer::new(
        paused.clone(),
        std::sync::Arc::new(trove::permissions::ProfileLoader::new(paused.clone())),
        app.state.index.clone(),
    );
    let reindex = tokio::spawn(async move {
        slow.index_projects(Some(vec!["bert".to_owned()]), |_, _| {})
            .await
    });
    paused.reached.notified().await;
    // The upload lands and is indexed while the project re-index holds its older listing.
    put_text(
        app.state.storage.as_ref(),
        &keys::version_file("bert", "v1", "late.txt"),
        "late",
    )
    .await;
    app.state.indexer.index_version("bert", "v1").await.unwrap();
    let alice = Caller::account("alice", Role::Maintainer);
    assert!(ids(&app, &alice).contains(&"bert:late.txt@v1".to_owned()));
    paused.release.add_permits(1);
    reindex.await.unwrap().unwrap();

    assert!(
        ids(&app, &alice).contains(&"bert:late.txt@v1".to_owned()),
        "the re-index put back its older snapshot: {:?}",
        ids(&app, &alice)
    );
    let report = check_all(&app.state.indexer, &app.state.index, false)
        .await
        .unwrap();
    assert_eq!(report.drift_count, 0, "{report:?}");
}
