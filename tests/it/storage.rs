//! Runs the storage conformance suite against both backends: the local directory store and the
//! S3 store talking to an in-process `s3s-fs` server over HTTP.
//!
//! For the local backend, presigned URLs point at `/storage/{key}`, which the application
//! serves: the local suite runs against a real Trove instance on a TCP port.

use std::sync::Arc;
use std::time::{Duration, Instant};

use trove::storage::local::LocalStore;
use trove::storage::presign::LocalPresigner;
use trove::storage::s3::S3Store;
use trove::storage::{ObjectStore, ObjectStoreExt, PutOptions, StorageError};

use crate::common::s3_server::S3TestServer;

/// A store under test and what must live as long as it.
struct Backend {
    store: Arc<dyn ObjectStore>,
    _guards: Box<dyn std::any::Any + Send>,
}

/// The application served on port 0 with local storage: its store, and its real
/// `/storage/{key}` route serving the presigned URLs.
async fn local_backend() -> Backend {
    let app = crate::common::TestApp::spawn_local().await;
    Backend {
        store: app.state.storage.clone(),
        _guards: Box::new(app),
    }
}

/// An S3 store (key prefix `trove-test`) on a fresh in-process server with a fresh bucket.
async fn s3_backend() -> Backend {
    let server = S3TestServer::start().await;
    let store = S3Store::connect(server.settings("trove-conformance", "trove-test"))
        .await
        .expect("connect");
    store
        .create_bucket_if_missing()
        .await
        .expect("create bucket");
    store
        .create_bucket_if_missing()
        .await
        .expect("bucket exists");
    Backend {
        store: Arc::new(store),
        _guards: Box::new(server),
    }
}

/// One test per conformance check and backend.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let backend = super::local_backend().await;
                    crate::storage_conformance::$check(backend.store.clone(), "conformance").await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let backend = super::s3_backend().await;
                    crate::storage_conformance::$check(backend.store.clone(), "conformance").await;
                }
            )*
        }
    };
}

conformance!(
    put_get_head_roundtrip,
    ranged_get,
    missing_objects_are_not_found,
    delete_is_idempotent,
    create_if_absent_twice,
    concurrent_create_if_absent,
    update_if_match,
    content_md5_mismatch_stores_nothing,
    listing,
    large_streamed_put,
    presigned_put_and_get,
    rename_moves_and_overwrites,
    check_succeeds,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_reports_unavailable_while_the_server_is_down() {
    let mut server = S3TestServer::start().await;
    let mut settings = server.settings("trove-availability", "");
    settings.timeout = Duration::from_secs(2);
    let store = S3Store::connect(settings).await.expect("connect");
    store.create_bucket_if_missing().await.expect("bucket");
    store.check().await.expect("check while up");

    server.stop().await;
    let started = Instant::now();
    match store.check().await {
        Err(StorageError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        store.head("some/key").await,
        Err(StorageError::Unavailable(_))
    ));

    server.restart().await;
    store.check().await.expect("check after restart");
}

#[tokio::test]
async fn local_etag_changes_on_every_write_even_with_identical_content() {
    let backend = local_backend().await;
    let store = backend.store;
    let mut etags = std::collections::HashSet::new();
    for _ in 0..20 {
        let outcome = store
            .put_bytes(
                "p/v1/same.txt",
                bytes::Bytes::from_static(b"same"),
                PutOptions::default(),
            )
            .await
            .expect("put");
        assert!(etags.insert(outcome.meta.etag), "etag repeated");
    }
}

#[tokio::test]
async fn local_store_rejects_a_tmp_dir_inside_the_objects_dir() {
    let root = tempfile::tempdir().expect("temp dir");
    let presigner = LocalPresigner::new(
        url::Url::parse("http://localhost").expect("url"),
        vec![1; 32],
    );
    let result = LocalStore::open(
        root.path().join("objects"),
        root.path().join("objects/tmp"),
        presigner,
    );
    assert!(matches!(result, Err(StorageError::Backend(_))));
}

#[tokio::test]
async fn local_check_fails_when_the_directory_is_gone() {
    let root = tempfile::tempdir().expect("temp dir");
    let presigner = LocalPresigner::new(
        url::Url::parse("http://localhost").expect("url"),
        vec![1; 32],
    );
    let store = LocalStore::open(
        root.path().join("objects"),
        root.path().join("tmp"),
        presigner,
    )
    .expect("open");
    store.check().await.expect("check");
    std::fs::remove_dir_all(root.path().join("objects")).expect("remove");
    assert!(matches!(
        store.check().await,
        Err(StorageError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_writes_survive_concurrent_deletes_of_sibling_keys() {
    // Deleting the only object of a directory removes the directory; a writer of a sibling key
    // racing with that must re-create it and succeed.
    let backend = local_backend().await;
    let store = backend.store;
    let deleter = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for round in 0..200 {
                let key = format!("race/dir/sub/deleted-{}", round % 3);
                store
                    .put_bytes(&key, bytes::Bytes::from_static(b"d"), PutOptions::default())
                    .await
                    .expect("put before delete");
                store.delete(&key).await.expect("delete");
            }
        })
    };
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for round in 0..200 {
                let key = format!("race/dir/sub/written-{round}");
                store
                    .put_bytes(&key, bytes::Bytes::from_static(b"w"), PutOptions::default())
                    .await
                    .expect("put while deleting");
                store.delete(&key).await.expect("delete");
            }
        })
    };
    deleter.await.expect("deleter");
    writer.await.expect("writer");
    assert!(store.list_all("race/").await.expect("list").is_empty());
}
