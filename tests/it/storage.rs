//! Runs the storage conformance suite against both backends: the local directory store and the
//! S3 store talking to an in-process `s3s-fs` server over HTTP.
//!
//! For the local backend, presigned URLs point at `/storage/{key}`. The suite checks what the
//! storage layer promises (signature, method, expiry, Content-MD5), so it serves that route
//! with nothing but the store's own presigner on a TCP port; the application's route adds
//! its upload policy on top (only staged files of an upload in progress, checked at use
//! time), tested in `security::artifacts`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
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

/// A local store whose presigned URLs are served on port 0 by a server that verifies them
/// with the store's presigner and does nothing else.
async fn local_backend() -> Backend {
    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use base64::Engine as _;
    use futures::TryStreamExt as _;
    use std::collections::HashMap;
    use trove::storage::PresignMethod;

    type Shared = Arc<LocalStore>;

    async fn serve_get(
        State(store): State<Shared>,
        Path(key): Path<String>,
        Query(query): Query<HashMap<String, String>>,
    ) -> axum::response::Response {
        if store
            .presigner()
            .verify(PresignMethod::Get, &key, &query)
            .is_err()
        {
            return StatusCode::FORBIDDEN.into_response();
        }
        match store.get_bytes(&key).await {
            Ok((bytes, _)) => bytes.into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        }
    }

    async fn serve_put(
        State(store): State<Shared>,
        Path(key): Path<String>,
        Query(query): Query<HashMap<String, String>>,
        headers: HeaderMap,
        body: axum::body::Body,
    ) -> axum::response::Response {
        let Ok(verified) = store.presigner().verify(PresignMethod::Put, &key, &query) else {
            return StatusCode::FORBIDDEN.into_response();
        };
        let sent: Option<[u8; 16]> = headers
            .get("content-md5")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| base64::engine::general_purpose::STANDARD.decode(value).ok())
            .and_then(|raw| raw.try_into().ok());
        if let (Some(bound), Some(sent)) = (verified.content_md5, sent)
            && bound != sent
        {
            return StatusCode::BAD_REQUEST.into_response();
        }
        let stream = body.into_data_stream().map_err(std::io::Error::other);
        let options = PutOptions {
            content_md5: verified.content_md5.or(sent),
            ..PutOptions::default()
        };
        match store.put(&key, Box::pin(stream), options).await {
            Ok(_) => StatusCode::OK.into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        }
    }

    struct Served {
        _dir: tempfile::TempDir,
        task: tokio::task::JoinHandle<()>,
    }
    impl Drop for Served {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = url::Url::parse(&format!("http://{}", listener.local_addr().expect("addr")))
        .expect("base url");
    let store: Shared = Arc::new(
        LocalStore::open(
            dir.path().join("objects"),
            dir.path().join("tmp"),
            LocalPresigner::new(base, vec![9; 32]),
        )
        .expect("open store"),
    );
    let router = axum::Router::new()
        .route(
            "/storage/{*key}",
            axum::routing::get(serve_get).put(serve_put),
        )
        .with_state(Arc::clone(&store));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Backend {
        store,
        _guards: Box::new(Served { _dir: dir, task }),
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

#[tokio::test]
async fn local_get_of_an_object_truncated_under_the_reader_fails_instead_of_ending_short() {
    // The body is read chunk by chunk after the object was opened and sized: a file cut short
    // on disk meanwhile must end the stream with an error, never with fewer bytes than the
    // size the response announced.
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
    let body = bytes::Bytes::from(vec![5_u8; 3 * 1024 * 1024]);
    store
        .put_bytes("cut/short.bin", body, PutOptions::default())
        .await
        .expect("put");
    let mut object = store.get("cut/short.bin", None).await.expect("get");
    assert_eq!(object.meta.size, 3 * 1024 * 1024);
    let first = object
        .body
        .next()
        .await
        .expect("a first chunk")
        .expect("read");
    assert!(!first.is_empty() && first.len() < 3 * 1024 * 1024);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(root.path().join("objects/cut/short.bin"))
        .expect("open on disk");
    file.set_len(first.len() as u64 + 10).expect("truncate");
    let mut read = first.len();
    let mut failed = false;
    while let Some(chunk) = object.body.next().await {
        match chunk {
            Ok(chunk) => read += chunk.len(),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        failed,
        "the stream ended after {read} bytes without an error"
    );
}
