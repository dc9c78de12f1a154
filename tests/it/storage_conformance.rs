//! The storage conformance suite: every backend must pass every check here.
//!
//! Each check takes the store under test and a key prefix of its own (so checks can share a
//! store), and panics on the first deviation. `tests/it/storage.rs` runs them against the local
//! backend and against S3 (an in-process `s3s-fs` server).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use md5::{Digest as _, Md5};
use sha2::Sha256;
use trove::storage::{
    ByteRange, ListRequest, ObjectStore, ObjectStoreExt, PresignMethod, PutCondition, PutOptions,
    StorageError,
};

fn md5_of(body: &[u8]) -> [u8; 16] {
    Md5::digest(body).into()
}

async fn read_all(store: &Arc<dyn ObjectStore>, key: &str, range: Option<ByteRange>) -> Vec<u8> {
    let object = store.get(key, range).await.expect("get");
    let chunks: Vec<Bytes> = object.body.try_collect().await.expect("read body");
    chunks.concat()
}

/// Put, head and get return the same object; the outcome carries md5 and sha256 of the body.
pub async fn put_get_head_roundtrip(store: Arc<dyn ObjectStore>, prefix: &str) {
    let key = format!("{prefix}/roundtrip/record.json");
    let body = Bytes::from_static(br#"{"title":"bert","tags":["nlp"]}"#);
    let outcome = store
        .put_bytes(
            &key,
            body.clone(),
            PutOptions {
                content_type: Some("application/json".into()),
                content_md5: Some(md5_of(&body)),
                condition: PutCondition::None,
            },
        )
        .await
        .expect("put");
    assert_eq!(outcome.md5_hex, hex::encode(md5_of(&body)));
    assert_eq!(outcome.sha256_hex, hex::encode(Sha256::digest(&body)));
    assert_eq!(outcome.meta.key, key);
    assert_eq!(outcome.meta.size, body.len() as u64);
    assert!(!outcome.meta.etag.is_empty());

    let head = store.head(&key).await.expect("head");
    assert_eq!(head.key, key);
    assert_eq!(head.size, body.len() as u64);
    assert_eq!(head.etag, outcome.meta.etag);
    assert_eq!(head.content_type.as_deref(), Some("application/json"));
    let age = chrono::Utc::now() - head.last_modified;
    assert!(age.num_seconds().abs() < 120, "last_modified {age:?} away");

    let (bytes, meta) = store.get_bytes(&key).await.expect("get");
    assert_eq!(bytes, body);
    assert_eq!(meta.etag, outcome.meta.etag);
    assert_eq!(meta.size, body.len() as u64);

    let object = store.get(&key, None).await.expect("get");
    assert_eq!(object.range, None);

    // Several whole objects at once, in the order asked, `None` for an absent one.
    let absent = format!("{prefix}/roundtrip/absent.json");
    let many = store
        .read_whole_many(vec![absent.clone(), key.clone(), absent])
        .await
        .expect("read many");
    assert_eq!(many.len(), 3);
    assert!(many[0].is_none() && many[2].is_none());
    let (many_bytes, many_meta) = many[1].as_ref().expect("the stored object");
    assert_eq!(many_bytes, &body);
    assert_eq!(many_meta.etag, outcome.meta.etag);
    assert!(
        store
            .read_whole_many(vec![format!("{prefix}/../escape")])
            .await
            .is_err(),
        "an invalid key is refused, not read"
    );

    // An empty object is an object.
    let empty = format!("{prefix}/roundtrip/empty");
    let outcome = store
        .put_bytes(&empty, Bytes::new(), PutOptions::default())
        .await
        .expect("put empty");
    assert_eq!(outcome.md5_hex, "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(store.head(&empty).await.expect("head empty").size, 0);
    assert!(read_all(&store, &empty, None).await.is_empty());

    // Overwriting replaces the content.
    store
        .put_bytes(&key, Bytes::from_static(b"v2"), PutOptions::default())
        .await
        .expect("overwrite");
    assert_eq!(read_all(&store, &key, None).await, b"v2");
}

/// Ranges: middle, open-ended, clamped past the end; a start past the end is `InvalidRange`.
pub async fn ranged_get(store: Arc<dyn ObjectStore>, prefix: &str) {
    let key = format!("{prefix}/range/digits");
    store
        .put_bytes(
            &key,
            Bytes::from_static(b"0123456789"),
            PutOptions::default(),
        )
        .await
        .expect("put");
    let range = |start, end| Some(ByteRange { start, end });

    let object = store.get(&key, range(2, Some(5))).await.expect("middle");
    assert_eq!(object.range, Some((2, 5)));
    assert_eq!(object.meta.size, 10);
    assert_eq!(read_all(&store, &key, range(2, Some(5))).await, b"2345");

    let object = store.get(&key, range(7, None)).await.expect("open-ended");
    assert_eq!(object.range, Some((7, 9)));
    assert_eq!(read_all(&store, &key, range(7, None)).await, b"789");

    let object = store.get(&key, range(8, Some(100))).await.expect("clamped");
    assert_eq!(object.range, Some((8, 9)));
    assert_eq!(read_all(&store, &key, range(8, Some(100))).await, b"89");

    assert_eq!(read_all(&store, &key, range(0, Some(0))).await, b"0");

    for bad in [
        range(10, None),
        range(10, Some(20)),
        range(1000, Some(1001)),
    ] {
        match store.get(&key, bad).await {
            Err(StorageError::InvalidRange { size }) => assert_eq!(size, 10),
            other => panic!("range {bad:?}: expected InvalidRange, got {other:?}"),
        }
    }

    let empty = format!("{prefix}/range/empty");
    store
        .put_bytes(&empty, Bytes::new(), PutOptions::default())
        .await
        .expect("put empty");
    match store.get(&empty, range(0, None)).await {
        Err(StorageError::InvalidRange { size }) => assert_eq!(size, 0),
        other => panic!("range on empty object: expected InvalidRange, got {other:?}"),
    }
}

/// Missing objects are `NotFound`; hostile keys are `InvalidKey`.
pub async fn missing_objects_are_not_found(store: Arc<dyn ObjectStore>, prefix: &str) {
    let key = format!("{prefix}/missing/nothing.json");
    assert!(store.head(&key).await.expect_err("head").is_not_found());
    assert!(store.get(&key, None).await.expect_err("get").is_not_found());
    assert!(
        store
            .read_whole(&key)
            .await
            .expect_err("read")
            .is_not_found()
    );
    // A "directory" is not an object.
    store
        .put_bytes(
            &format!("{prefix}/missing/dir/file"),
            Bytes::from_static(b"x"),
            PutOptions::default(),
        )
        .await
        .expect("put");
    let dir = format!("{prefix}/missing/dir");
    assert!(store.head(&dir).await.expect_err("head dir").is_not_found());
    assert!(
        store
            .get(&dir, None)
            .await
            .expect_err("get dir")
            .is_not_found()
    );
    assert!(
        store
            .read_whole(&dir)
            .await
            .expect_err("read dir")
            .is_not_found()
    );

    for hostile in ["", "/abs", "a/../../etc/passwd", "..", "a//b", "a\0b"] {
        assert!(
            matches!(store.head(hostile).await, Err(StorageError::InvalidKey(_))),
            "{hostile:?}"
        );
        assert!(
            matches!(
                store
                    .put_bytes(hostile, Bytes::new(), PutOptions::default())
                    .await,
                Err(StorageError::InvalidKey(_))
            ),
            "{hostile:?}"
        );
    }
}

/// Deleting is idempotent and leaves nothing listed.
pub async fn delete_is_idempotent(store: Arc<dyn ObjectStore>, prefix: &str) {
    let key = format!("{prefix}/delete/deep/er/file.bin");
    let sibling = format!("{prefix}/delete/deep/sibling.bin");
    for each in [&key, &sibling] {
        store
            .put_bytes(each, Bytes::from_static(b"bytes"), PutOptions::default())
            .await
            .expect("put");
    }
    store.delete(&key).await.expect("delete");
    assert!(store.head(&key).await.expect_err("head").is_not_found());
    store.delete(&key).await.expect("delete again");
    store
        .delete(&format!("{prefix}/delete/never/existed"))
        .await
        .expect("delete absent");
    assert!(store.head(&sibling).await.is_ok());
    let listed = store
        .list_all(&format!("{prefix}/delete/"))
        .await
        .expect("list");
    let keys: Vec<_> = listed.iter().map(|meta| meta.key.as_str()).collect();
    assert_eq!(keys, [sibling.as_str()]);
    store.delete(&sibling).await.expect("delete sibling");
    assert!(
        store
            .list_all(&format!("{prefix}/delete/"))
            .await
            .expect("list")
            .is_empty()
    );
    // The key can be written again after its directories were cleaned up.
    store
        .put_bytes(&key, Bytes::from_static(b"again"), PutOptions::default())
        .await
        .expect("put again");
    assert_eq!(read_all(&store, &key, None).await, b"again");
}

/// Create-if-absent wins once; the second attempt is `AlreadyExists` and changes nothing.
pub async fn create_if_absent_twice(store: Arc<dyn ObjectStore>, prefix: &str) {
    let key = format!("{prefix}/create/user.json");
    let create = PutOptions {
        condition: PutCondition::IfAbsent,
        ..PutOptions::default()
    };
    store
        .put_bytes(&key, Bytes::from_static(b"first"), create.clone())
        .await
        .expect("first create");
    match store
        .put_bytes(&key, Bytes::from_static(b"second"), create)
        .await
    {
        Err(StorageError::AlreadyExists { key: reported }) => assert_eq!(reported, key),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(read_all(&store, &key, None).await, b"first");
}

/// Fifty concurrent create-if-absent of one key: exactly one wins, and its body is stored.
pub async fn concurrent_create_if_absent(store: Arc<dyn ObjectStore>, prefix: &str) {
    let key = format!("{prefix}/race/project.json");
    let mut tasks = Vec::new();
    for writer in 0..50 {
        let store = Arc::clone(&store);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let body = Bytes::from(format!("writer-{writer}"));
            let result = store
                .put_bytes(
                    &key,
                    body.clone(),
                    PutOptions {
                        condition: PutCondition::IfAbsent,
                        ..PutOptions::default()
                    },
                )
                .await;
            (body, result)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (body, result) = task.await.expect("task");
        match result {
            Ok(_) => winners.push(body),
            Err(StorageError::AlreadyExists { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one creator must win");
    assert_eq!(read_all(&store, &key, None).await, winners[0]);
}

/// Update-if-match succeeds with the current ETag and fails with a stale one or when absent.
pub async fn update_if_match(store: Arc<dyn ObjectStore>, prefix: &str) {
    let key = format!("{prefix}/update/version.json");
    let first = store
        .put_bytes(&key, Bytes::from_static(b"v1"), PutOptions::default())
        .await
        .expect("put v1");
    let if_match = |etag: &str| PutOptions {
        condition: PutCondition::IfMatch(etag.to_owned()),
        ..PutOptions::default()
    };
    let second = store
        .put_bytes(&key, Bytes::from_static(b"v2"), if_match(&first.meta.etag))
        .await
        .expect("update with current etag");
    assert_ne!(second.meta.etag, first.meta.etag, "etag must change");
    assert_eq!(store.head(&key).await.expect("head").etag, second.meta.etag);
    match store
        .put_bytes(&key, Bytes::from_static(b"v3"), if_match(&first.meta.etag))
        .await
    {
        Err(StorageError::PreconditionFailed { key: reported }) => assert_eq!(reported, key),
        other => panic!("expected PreconditionFailed, got {other:?}"),
    }
    assert_eq!(read_all(&store, &key, None).await, b"v2");
    let third = store
        .put_bytes(&key, Bytes::from_static(b"v3"), if_match(&second.meta.etag))
        .await
        .expect("update with the new etag");
    assert_ne!(third.meta.etag, second.meta.etag);

    let absent = format!("{prefix}/update/absent.json");
    assert!(matches!(
        store
            .put_bytes(
                &absent,
                Bytes::from_static(b"x"),
                if_match(&first.meta.etag)
            )
            .await,
        Err(StorageError::PreconditionFailed { .. })
    ));
    assert!(store.head(&absent).await.expect_err("head").is_not_found());
}

/// A Content-MD5 mismatch is `DigestMismatch` and stores nothing (nor replaces anything).
pub async fn content_md5_mismatch_stores_nothing(store: Arc<dyn ObjectStore>, prefix: &str) {
    let key = format!("{prefix}/digest/file.csv");
    let wrong = PutOptions {
        content_md5: Some(md5_of(b"something else")),
        ..PutOptions::default()
    };
    match store
        .put_bytes(&key, Bytes::from_static(b"a,b\n1,2\n"), wrong.clone())
        .await
    {
        Err(StorageError::DigestMismatch { expected, actual }) => {
            assert_eq!(expected, hex::encode(md5_of(b"something else")));
            assert_ne!(expected, actual);
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert!(store.head(&key).await.expect_err("head").is_not_found());

    store
        .put_bytes(&key, Bytes::from_static(b"original"), PutOptions::default())
        .await
        .expect("put");
    assert!(matches!(
        store
            .put_bytes(&key, Bytes::from_static(b"replacement"), wrong)
            .await,
        Err(StorageError::DigestMismatch { .. })
    ));
    assert_eq!(read_all(&store, &key, None).await, b"original");
}

/// Collects every page of a listing, checking that no page exceeds `max_keys`.
async fn collect_pages(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    delimited: bool,
    max_keys: usize,
) -> (Vec<String>, Vec<String>, usize) {
    let mut request = ListRequest {
        prefix: prefix.to_owned(),
        delimited,
        max_keys,
        ..ListRequest::default()
    };
    let (mut objects, mut prefixes, mut pages) = (Vec::new(), Vec::new(), 0);
    loop {
        let page = store.list(&request).await.expect("list page");
        pages += 1;
        if max_keys > 0 {
            assert!(page.objects.len() + page.common_prefixes.len() <= max_keys);
        }
        objects.extend(page.objects.into_iter().map(|meta| meta.key));
        prefixes.extend(page.common_prefixes);
        match page.next {
            Some(next) => request.continuation = Some(next),
            None => return (objects, prefixes, pages),
        }
        assert!(pages < 100, "listing does not terminate");
    }
}

/// Listings: recursive and delimited, prefixes not at `/` boundaries, byte order, pages.
pub async fn listing(store: Arc<dyn ObjectStore>, prefix: &str) {
    let base = format!("{prefix}/list/");
    // Chosen so that byte order differs from naive directory order: '-' < '.' < '/' < '0'.
    let relative = [
        "..meta/x.json",
        "Z.txt",
        "a-b.txt",
        "a.txt",
        "a/b.txt",
        "a/c/d.txt",
        "a0.txt",
        "ab/x.txt",
        "b.txt",
    ];
    // Write in a scrambled order.
    for index in [4, 0, 8, 2, 6, 1, 7, 3, 5] {
        let key = format!("{base}{}", relative[index]);
        store
            .put_bytes(&key, Bytes::from(key.clone()), PutOptions::default())
            .await
            .expect("put");
    }
    let full = |names: &[&str]| -> Vec<String> {
        names.iter().map(|name| format!("{base}{name}")).collect()
    };

    let all = store.list_all(&base).await.expect("list all");
    let keys: Vec<String> = all.iter().map(|meta| meta.key.clone()).collect();
    assert_eq!(keys, full(&relative));
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "keys in byte order");
    // Sizes are required; ETags in listings are best effort (s3s-fs omits them).
    for meta in &all {
        assert_eq!(meta.size, meta.key.len() as u64);
    }

    // A prefix that is not at a '/' boundary.
    let keys: Vec<String> = store
        .list_all(&format!("{base}a"))
        .await
        .expect("list a")
        .into_iter()
        .map(|meta| meta.key)
        .collect();
    assert_eq!(
        keys,
        full(&[
            "a-b.txt",
            "a.txt",
            "a/b.txt",
            "a/c/d.txt",
            "a0.txt",
            "ab/x.txt"
        ])
    );
    let (objects, prefixes, _) = collect_pages(&store, &format!("{base}a"), true, 0).await;
    assert_eq!(objects, full(&["a-b.txt", "a.txt", "a0.txt"]));
    assert_eq!(prefixes, full(&["a/", "ab/"]));

    // Delimited at a '/' boundary.
    let (objects, prefixes, _) = collect_pages(&store, &base, true, 0).await;
    assert_eq!(
        objects,
        full(&["Z.txt", "a-b.txt", "a.txt", "a0.txt", "b.txt"])
    );
    assert_eq!(prefixes, full(&["..meta/", "a/", "ab/"]));
    assert_eq!(
        store
            .list_prefixes(&format!("{base}a/"))
            .await
            .expect("prefixes"),
        full(&["a/c/"])
    );

    // Exact key as prefix, prefixes matching nothing.
    let exact = store
        .list_all(&format!("{base}a/c/d.txt"))
        .await
        .expect("exact");
    assert_eq!(exact.len(), 1);
    assert!(
        store
            .list_all(&format!("{base}zzz"))
            .await
            .expect("none")
            .is_empty()
    );
    assert!(
        store
            .list_all(&format!("{prefix}/no-such-dir/"))
            .await
            .expect("none")
            .is_empty()
    );
    assert!(store.list_all("../").await.expect("hostile").is_empty());

    // More than one page, recursive and delimited: same items, same order, no duplicates.
    let (objects, prefixes, pages) = collect_pages(&store, &base, false, 2).await;
    assert!(pages >= 5, "{pages} pages");
    assert!(prefixes.is_empty());
    assert_eq!(objects, full(&relative));

    let (objects, prefixes, pages) = collect_pages(&store, &base, true, 2).await;
    assert!(pages >= 4, "{pages} pages");
    assert_eq!(
        objects,
        full(&["Z.txt", "a-b.txt", "a.txt", "a0.txt", "b.txt"])
    );
    assert_eq!(prefixes, full(&["..meta/", "a/", "ab/"]));

    let (objects, _, pages) = collect_pages(&store, &base, false, 1).await;
    assert_eq!(objects, full(&relative));
    assert!(pages >= relative.len());

    // A continuation token stays valid when the last key of its page is deleted meanwhile.
    let first = store
        .list(&ListRequest {
            prefix: base.clone(),
            delimited: false,
            max_keys: 5,
            ..ListRequest::default()
        })
        .await
        .expect("first page");
    let last = first.objects.last().expect("a full page").key.clone();
    assert_eq!(last, format!("{base}a/b.txt"));
    store.delete(&last).await.expect("delete");
    let (rest, _, _) = {
        let mut request = ListRequest {
            prefix: base.clone(),
            delimited: false,
            continuation: first.next.clone(),
            max_keys: 2,
            ..ListRequest::default()
        };
        let mut rest = Vec::new();
        loop {
            let page = store.list(&request).await.expect("next page");
            rest.extend(page.objects.into_iter().map(|meta| meta.key));
            match page.next {
                Some(next) => request.continuation = Some(next),
                None => break (rest, (), ()),
            }
        }
    };
    assert_eq!(rest, full(&["a/c/d.txt", "a0.txt", "ab/x.txt", "b.txt"]));

    // `start_after`: only keys after it (it need not exist), pages continue from there.
    let mut request = ListRequest {
        prefix: base.clone(),
        start_after: Some(format!("{base}a/c")),
        max_keys: 2,
        ..ListRequest::default()
    };
    let mut after = Vec::new();
    loop {
        let page = store.list(&request).await.expect("page after");
        after.extend(page.objects.into_iter().map(|meta| meta.key));
        match page.next {
            Some(next) => request.continuation = Some(next),
            None => break,
        }
    }
    assert_eq!(after, full(&["a/c/d.txt", "a0.txt", "ab/x.txt", "b.txt"]));
    let past_the_end = store
        .list(&ListRequest {
            prefix: base.clone(),
            start_after: Some(format!("{base}c")),
            ..ListRequest::default()
        })
        .await
        .expect("past the end");
    assert!(past_the_end.objects.is_empty());
}

/// Deterministic content of the large-object check.
fn pattern_chunk(index: usize, size: usize) -> Bytes {
    #[allow(clippy::cast_possible_truncation)]
    let bytes: Vec<u8> = (0..size)
        .map(|offset| ((index * 31 + offset * 7) % 251) as u8)
        .collect();
    Bytes::from(bytes)
}

/// A 20 MiB body streamed chunk by chunk (multipart on S3): digests, size, ranges across the
/// part boundary; a large body with a wrong Content-MD5 stores nothing.
pub async fn large_streamed_put(store: Arc<dyn ObjectStore>, prefix: &str) {
    const CHUNK: usize = 256 * 1024;
    const CHUNKS: usize = 80; // 20 MiB
    let key = format!("{prefix}/large/weights.bin");
    let mut md5 = Md5::new();
    let mut sha256 = Sha256::new();
    for index in 0..CHUNKS {
        let chunk = pattern_chunk(index, CHUNK);
        md5.update(&chunk);
        sha256.update(&chunk);
    }
    let expected_md5: [u8; 16] = md5.finalize().into();
    let body = futures::stream::iter(0..CHUNKS)
        .map(|index| Ok(pattern_chunk(index, CHUNK)))
        .boxed();
    let outcome = store
        .put(
            &key,
            body,
            PutOptions {
                content_type: Some("application/octet-stream".into()),
                content_md5: Some(expected_md5),
                condition: PutCondition::None,
            },
        )
        .await
        .expect("large put");
    let size = (CHUNK * CHUNKS) as u64;
    assert_eq!(outcome.meta.size, size);
    assert_eq!(outcome.md5_hex, hex::encode(expected_md5));
    assert_eq!(outcome.sha256_hex, hex::encode(sha256.finalize()));
    assert_eq!(store.head(&key).await.expect("head").size, size);

    // Read back, streaming, and compare digests.
    let object = store.get(&key, None).await.expect("get");
    let mut read = Md5::new();
    let mut read_size = 0u64;
    let mut body = object.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        read_size += chunk.len() as u64;
        read.update(&chunk);
    }
    assert_eq!(read_size, size);
    assert_eq!(<[u8; 16]>::from(read.finalize()), expected_md5);

    // A range across the 8 MiB boundary.
    let boundary = 8 * 1024 * 1024_u64;
    let range = Some(ByteRange {
        start: boundary - 3,
        end: Some(boundary + 2),
    });
    let expected: Vec<u8> = (boundary - 3..=boundary + 2)
        .map(|offset| {
            let offset = usize::try_from(offset).expect("offset");
            pattern_chunk(offset / CHUNK, CHUNK)[offset % CHUNK]
        })
        .collect();
    assert_eq!(read_all(&store, &key, range).await, expected);

    // A wrong Content-MD5 on a multi-part body: nothing stored.
    let bad_key = format!("{prefix}/large/corrupt.bin");
    let body = futures::stream::iter(0..40)
        .map(|index| Ok(pattern_chunk(index, CHUNK)))
        .boxed();
    assert!(matches!(
        store
            .put(
                &bad_key,
                body,
                PutOptions {
                    content_md5: Some([0; 16]),
                    ..PutOptions::default()
                },
            )
            .await,
        Err(StorageError::DigestMismatch { .. })
    ));
    assert!(store.head(&bad_key).await.expect_err("head").is_not_found());

    // A failing body stream stores nothing either.
    let failing_key = format!("{prefix}/large/failing.bin");
    let body = futures::stream::iter(0..3)
        .map(|index| {
            if index == 2 {
                Err(std::io::Error::other("client went away"))
            } else {
                Ok(pattern_chunk(index, CHUNK))
            }
        })
        .boxed();
    assert!(matches!(
        store.put(&failing_key, body, PutOptions::default()).await,
        Err(StorageError::Body(_))
    ));
    assert!(
        store
            .head(&failing_key)
            .await
            .expect_err("head")
            .is_not_found()
    );
}

/// Presigned PUT (bound to a Content-MD5) and GET work with a plain HTTP client; a PUT whose
/// body does not match the bound md5, or that announces another md5, is rejected.
pub async fn presigned_put_and_get(store: Arc<dyn ObjectStore>, prefix: &str) {
    let http = reqwest::Client::new();
    let key = format!("{prefix}/presign/data file+ü.csv");
    let body = Bytes::from_static(b"col\n1\n2\n");
    let md5 = md5_of(&body);
    let md5_base64 = base64::engine::general_purpose::STANDARD.encode(md5);

    let url = store
        .presign(
            PresignMethod::Put,
            &key,
            Duration::from_secs(300),
            Some(md5),
        )
        .await
        .expect("presign put");
    let response = http
        .put(&url)
        .header("Content-MD5", &md5_base64)
        .body(body.clone())
        .send()
        .await
        .expect("presigned put");
    assert!(response.status().is_success(), "put: {}", response.status());
    assert_eq!(read_all(&store, &key, None).await, body);

    let url = store
        .presign(PresignMethod::Get, &key, Duration::from_secs(300), None)
        .await
        .expect("presign get");
    let response = http.get(&url).send().await.expect("presigned get");
    assert!(response.status().is_success(), "get: {}", response.status());
    assert_eq!(response.bytes().await.expect("body"), body);

    // The GET URL does not allow a PUT.
    let response = http
        .put(&url)
        .body("overwrite")
        .send()
        .await
        .expect("put with get url");
    assert!(response.status().is_client_error(), "{}", response.status());

    // A body that does not match the bound md5 is rejected and stores nothing.
    let other_key = format!("{prefix}/presign/other.csv");
    let url = store
        .presign(
            PresignMethod::Put,
            &other_key,
            Duration::from_secs(300),
            Some(md5),
        )
        .await
        .expect("presign put");
    let response = http
        .put(&url)
        .header("Content-MD5", &md5_base64)
        .body("tampered body")
        .send()
        .await
        .expect("tampered put");
    assert!(response.status().is_client_error(), "{}", response.status());
    assert!(
        store
            .head(&other_key)
            .await
            .expect_err("head")
            .is_not_found()
    );

    // Announcing another md5 than the bound one is rejected too.
    let tampered = Bytes::from_static(b"tampered body");
    let response = http
        .put(&url)
        .header(
            "Content-MD5",
            base64::engine::general_purpose::STANDARD.encode(md5_of(&tampered)),
        )
        .body(tampered)
        .send()
        .await
        .expect("tampered put");
    assert!(response.status().is_client_error(), "{}", response.status());
    assert!(
        store
            .head(&other_key)
            .await
            .expect_err("head")
            .is_not_found()
    );

    // A signature for another key does not open this one.
    let forged = url.replace("other.csv", "forged.csv");
    let response = http
        .put(&forged)
        .header("Content-MD5", &md5_base64)
        .body(body)
        .send()
        .await
        .expect("forged put");
    assert!(response.status().is_client_error(), "{}", response.status());
}

/// `check` answers for a healthy store.
pub async fn check_succeeds(store: Arc<dyn ObjectStore>, _prefix: &str) {
    store.check().await.expect("check");
}

/// A rename moves the bytes (with any key characters) and overwrites the target; the source
/// is gone and a missing source is `NotFound`.
pub async fn rename_moves_and_overwrites(store: Arc<dyn ObjectStore>, prefix: &str) {
    let from = format!("{prefix}/rename/staging/a b+c%d é.bin");
    let to = format!("{prefix}/rename/final/deep/file.bin");
    store
        .put_bytes(&to, Bytes::from_static(b"old"), PutOptions::default())
        .await
        .expect("put target");
    store
        .put_bytes(
            &from,
            Bytes::from_static(b"new bytes"),
            PutOptions::default(),
        )
        .await
        .expect("put source");
    let meta = store.rename(&from, &to).await.expect("rename");
    assert_eq!(meta.key, to);
    assert_eq!(meta.size, 9);
    assert_eq!(read_all(&store, &to, None).await, b"new bytes");
    assert!(store.head(&from).await.expect_err("source").is_not_found());
    assert!(
        store
            .rename(&from, &to)
            .await
            .expect_err("missing source")
            .is_not_found()
    );
    store.delete(&to).await.expect("delete");
}

/// Every check in turn, on one store.
#[allow(dead_code)]
pub async fn run_all(store: Arc<dyn ObjectStore>, prefix: &str) {
    put_get_head_roundtrip(Arc::clone(&store), prefix).await;
    ranged_get(Arc::clone(&store), prefix).await;
    missing_objects_are_not_found(Arc::clone(&store), prefix).await;
    delete_is_idempotent(Arc::clone(&store), prefix).await;
    create_if_absent_twice(Arc::clone(&store), prefix).await;
    concurrent_create_if_absent(Arc::clone(&store), prefix).await;
    update_if_match(Arc::clone(&store), prefix).await;
    content_md5_mismatch_stores_nothing(Arc::clone(&store), prefix).await;
    listing(Arc::clone(&store), prefix).await;
    large_streamed_put(Arc::clone(&store), prefix).await;
    presigned_put_and_get(Arc::clone(&store), prefix).await;
    rename_moves_and_overwrites(Arc::clone(&store), prefix).await;
    check_succeeds(store, prefix).await;
}
