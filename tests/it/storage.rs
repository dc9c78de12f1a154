//! Runs the storage conformance suite against both backends: the local directory store and the
//! S3 store talking to an in-process `s3s-fs` server over HTTP.
//!
//! For the local backend, presigned URLs point at `/storage/{key}`, which the application
//! serves. Until the app's route exists, [`local_presign_router`] is a minimal stand-in built
//! only from `LocalPresigner::verify` and the store — TODO(api): replace it with the real app
//! router when it lands.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::TryStreamExt;
use trove::storage::local::LocalStore;
use trove::storage::presign::LocalPresigner;
use trove::storage::s3::S3Store;
use trove::storage::{ObjectStore, ObjectStoreExt, PresignMethod, PutOptions, StorageError};

use crate::common::s3_server::S3TestServer;

/// A store under test and what must live as long as it.
struct Backend {
    store: Arc<dyn ObjectStore>,
    _guards: Box<dyn std::any::Any + Send>,
}

/// Stand-in for the app's `GET`/`PUT /storage/{*key}` route (see the module doc).
async fn local_presign_route(
    State(store): State<Arc<LocalStore>>,
    method: Method,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let presign_method = match method {
        Method::GET => PresignMethod::Get,
        Method::PUT => PresignMethod::Put,
        _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    let verified = match store.presigner().verify(presign_method, &key, &query) {
        Ok(verified) => verified,
        Err(_) => return StatusCode::FORBIDDEN.into_response(),
    };
    let status_of = |error: &StorageError| match error {
        StorageError::NotFound { .. } => StatusCode::NOT_FOUND,
        StorageError::DigestMismatch { .. } | StorageError::InvalidKey(_) => {
            StatusCode::BAD_REQUEST
        }
        StorageError::PresignInvalid(_) => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    match presign_method {
        PresignMethod::Get => match store.get(&key, None).await {
            Ok(object) => Body::from_stream(object.body).into_response(),
            Err(error) => status_of(&error).into_response(),
        },
        PresignMethod::Put => {
            if let Some(bound) = verified.content_md5 {
                let announced = headers
                    .get("content-md5")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| base64::engine::general_purpose::STANDARD.decode(value).ok());
                if announced.as_deref() != Some(bound.as_slice()) {
                    return StatusCode::FORBIDDEN.into_response();
                }
            }
            let stream = body.into_data_stream().map_err(std::io::Error::other);
            let options = PutOptions {
                content_md5: verified.content_md5,
                ..PutOptions::default()
            };
            match store.put(&key, Box::pin(stream), options).await {
                Ok(_) => StatusCode::OK.into_response(),
                Err(error) => status_of(&error).into_response(),
            }
        }
    }
}

fn local_presign_router(store: Arc<LocalStore>) -> Router {
    Router::new()
        .route(
            "/storage/{*key}",
            axum::routing::get(local_presign_route).put(local_presign_route),
        )
        .with_state(store)
}

/// A local store in a temporary directory, with the presign stand-in served on port 0.
async fn local_backend() -> Backend {
    let root = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let presigner = LocalPresigner::new(
        url::Url::parse(&format!("http://{address}")).expect("url"),
        rand::random::<[u8; 32]>().to_vec(),
    );
    let store = Arc::new(
        LocalStore::open(
            root.path().join("objects"),
            root.path().join("tmp"),
            presigner,
        )
        .expect("open local store"),
    );
    let router_store = Arc::clone(&store);
    let server = tokio::spawn(async move {
        axum::serve(listener, local_presign_router(router_store))
            .await
            .expect("serve");
    });
    Backend {
        store,
        _guards: Box::new((root, AbortOnDrop(server))),
    }
}

/// Stops a spawned server task when the backend goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
