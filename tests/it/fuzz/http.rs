//! Property tests through the real router: arbitrary query text, ids, upload bodies,
//! profiles, `Authorization` headers, cursors and `Range` headers never answer a `5xx`, a
//! restricted caller's search never returns a document it may not read, and oversized bodies
//! are refused before they are read whole.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};
use trove::permissions::Role;

use crate::common::TestApp;
use crate::common::artifacts::{call, complete, create_project, create_version, enc, raw, upload};

/// Cases per property (a router round trip each; raised with `PROPTEST_CASES`).
fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default_cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// An instance with a private project (`hidden`, alice's), a public one (`open`, bob's) and
/// a guest (`carol`) who was granted nothing; tokens of all three.
struct Seeded {
    runtime: tokio::runtime::Runtime,
    app: TestApp,
    alice: String,
    carol: String,
}

const DATA: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn seeded() -> Seeded {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, alice, carol) = runtime.block_on(async {
        let app = TestApp::local().await;
        let alice = app.user_token("alice", Role::Maintainer).await;
        let bob = app.user_token("bob", Role::Maintainer).await;
        let carol = app.user_token("carol", Role::Guest).await;
        for (token, project, visibility) in
            [(&alice, "hidden", "private"), (&bob, "open", "public")]
        {
            create_project(&app, token, project, visibility).await;
            create_version(&app, token, project, "v1").await;
            upload(&app, Some(token), project, "v1", "data/file.bin", DATA)
                .await
                .assert_status(StatusCode::CREATED);
            let meta =
                json!({"path": "data/file.bin", "title": format!("{project} title"), "score": 3});
            upload(
                &app,
                Some(token),
                project,
                "v1",
                "data/file.bin.json",
                meta.to_string().as_bytes(),
            )
            .await
            .assert_status(StatusCode::CREATED);
            complete(&app, token, project, "v1", None).await;
        }
        (app, alice, carol)
    });
    Seeded {
        runtime,
        app,
        alice,
        carol,
    }
}

/// Query text near the grammar: fields (internal ones too), operators, phrases, ranges,
/// wildcards, regexes, parentheses and boosts.
fn query_text() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("*".to_owned()),
        Just("hidden".to_owned()),
        Just("open".to_owned()),
        Just("title:hidden".to_owned()),
        Just("_extra.project_id:hidden".to_owned()),
        Just("_extra.permissions.read_access:public".to_owned()),
        Just("readers:public".to_owned()),
        Just("source:*".to_owned()),
        Just("_extra.state:disabled".to_owned()),
        Just("score:[0 TO 10]".to_owned()),
        Just("_extra.file_size:[0 TO *]".to_owned()),
        Just("title:/hid.*/".to_owned()),
        Just("\"hidden title\"".to_owned()),
        Just("title:*".to_owned()),
        Just("hid*".to_owned()),
        Just("title:hidden^100".to_owned()),
        "[a-z_.:*\"()^~ -]{1,12}",
    ];
    prop::collection::vec(
        (
            atom,
            prop::sample::select(vec![
                " ", " OR ", " AND ", " NOT ", " -", " +", ") OR (", " (",
            ]),
        ),
        1..6,
    )
    .prop_map(|parts| {
        parts
            .into_iter()
            .map(|(atom, join)| format!("{atom}{join}"))
            .collect::<String>()
    })
}

fn project_ids_of(body: &Value) -> BTreeSet<String> {
    body["results"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|hit| {
                    hit["_extra"]["project_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn no_query_text_widens_a_restricted_search() {
    let seeded = seeded();
    let Seeded {
        runtime,
        app,
        alice,
        carol,
    } = &seeded;
    // The seeding is visible: alice finds her private project, carol does not.
    runtime.block_on(async {
        let mine = app.get_as("/search?q=*", alice).await.json();
        assert!(project_ids_of(&mine).contains("hidden"), "{mine}");
        let theirs = app.get_as("/search?q=*", carol).await.json();
        assert_eq!(
            project_ids_of(&theirs),
            BTreeSet::from(["open".to_owned()]),
            "{theirs}"
        );
    });
    proptest!(config(96), |(query in prop_oneof![query_text(), any::<String>()], prefix in any::<bool>(), latest in any::<bool>(), kind in prop::sample::select(vec!["file", "project", "all"]))| {
        runtime.block_on(async {
            for token in [Some(carol.as_str()), None] {
                let path = format!("/search?q={}&prefix={prefix}&latest={latest}&kind={kind}", enc(&query));
                let response = call(app, Method::GET, &path, token, None).await;
                prop_assert!(response.status.is_success() || response.status.is_client_error(), "{} {}", response.status, response.text());
                if response.status.is_success() {
                    let found = project_ids_of(&response.json());
                    prop_assert!(!found.contains("hidden"), "query {query:?} leaked: {found:?}");
                }
                let path = format!("/aggregate?q={}&field=_extra.project_id", enc(&query));
                let response = call(app, Method::GET, &path, token, None).await;
                prop_assert!(response.status.is_success() || response.status.is_client_error(), "{} {}", response.status, response.text());
                if response.status.is_success() {
                    prop_assert!(!response.text().contains("\"hidden\""), "query {query:?} leaked a count: {}", response.text());
                }
            }
            Ok(())
        })?;
    });
}

#[test]
fn hostile_ids_cursors_and_credentials_answer_4xx() {
    let seeded = seeded();
    let Seeded {
        runtime,
        app,
        carol,
        ..
    } = &seeded;
    proptest!(config(96), |(id in prop_oneof![any::<String>(), "(hidden|open|x)?:[a-z/.:@%]{0,16}@(v1|latest|\\.\\.|)"], cursor in any::<String>(), credential in prop_oneof![any::<String>(), "[A-Za-z0-9._-]{0,80}"])| {
        runtime.block_on(async {
            for path in [
                format!("/files/{}/metadata", enc(&id)),
                format!("/files/{}?redirect=false", enc(&id)),
                format!("/scroll/{}", enc(&cursor)),
            ] {
                let response = app.get_as(&path, carol).await;
                prop_assert!(!response.status.is_server_error(), "{path}: {} {}", response.status, response.text());
                prop_assert!(!response.text().contains("hidden title"), "{path} leaked");
            }
            let Ok(value) = axum::http::HeaderValue::from_str(&format!("Bearer {credential}")) else { return Ok(()); };
            let request = axum::http::Request::builder().uri("/auth/me").header("authorization", value).body(axum::body::Body::empty()).unwrap();
            let response = app.send(request).await;
            prop_assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{}", response.text());
            Ok(())
        })?;
    });
}

/// Upload bodies: arbitrary bytes, and JSON near the documented shape.
fn upload_body() -> impl Strategy<Value = Vec<u8>> {
    let filename = prop_oneof![
        "[a-z/.]{0,12}".prop_map(|path| json!(path)),
        (
            "[a-z/.]{0,12}",
            prop::option::of(prop::sample::select(vec!["simple", "md5", "link", "other"])),
            prop::option::of(prop_oneof![
                Just(json!({"md5sum": "00", "field": "md5sum"})),
                Just(json!({"artifactdb_id": "open:data/file.bin@v1"})),
                Just(json!({"artifactdb_id": "hidden:data/file.bin@v1"})),
                Just(json!(12)),
            ])
        )
            .prop_map(
                |(path, check, value)| json!({"filename": path, "check": check, "value": value})
            ),
        Just(json!(null)),
        Just(json!([1])),
    ];
    let when = prop_oneof![
        Just(json!("in 2 days")),
        Just(json!("in 99999999999999 days")),
        Just(json!("2001-01-01T00:00:00Z")),
        Just(json!(3)),
        any::<String>().prop_map(|text| json!(text)),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (prop::collection::vec(filename, 0..4), prop::option::of(when.clone()), prop::option::of(when), prop::option::of(prop::sample::select(vec!["s3-presigned-url", "other"])))
            .prop_map(|(filenames, completed_by, expires_in, mode)| json!({"filenames": filenames, "completed_by": completed_by, "expires_in": expires_in, "mode": mode}).to_string().into_bytes()),
    ]
}

#[test]
fn arbitrary_upload_and_profile_bodies_never_answer_5xx() {
    let seeded = seeded();
    let Seeded {
        runtime,
        app,
        alice,
        ..
    } = &seeded;
    let case = std::cell::Cell::new(0_u32);
    // Fuzzed rule strings stay shorter than `public`, so no valid profile opens the project
    // to carol and the final check holds whatever was accepted.
    proptest!(config(64), |(body in upload_body(), profile in prop_oneof![prop::collection::vec(any::<u8>(), 0..100), "\\{\"(owners|viewers|read_access|scope|expires|inherit)\": ?(\"[a-z:=]{0,5}\"|\\[\"[a-z]{0,6}\"\\]|null|true|\\{\\}|1)\\}".prop_map(String::into_bytes)])| {
        case.set(case.get() + 1);
        let version = format!("f{}", case.get());
        runtime.block_on(async {
            let path = format!("/projects/fuzzed/version/{version}/upload");
            let response = raw(app, Method::POST, &path, Some(alice), &[("content-type", "application/json")], body.clone()).await;
            prop_assert!(!response.status.is_server_error(), "{} {} for {}", response.status, response.text(), String::from_utf8_lossy(&body));
            for path in ["/projects/hidden/permissions", "/projects/hidden/version/v1/permissions"] {
                let response = raw(app, Method::PUT, path, Some(alice), &[("content-type", "application/json")], profile.clone()).await;
                prop_assert!(!response.status.is_server_error(), "{} {} for {}", response.status, response.text(), String::from_utf8_lossy(&profile));
            }
            Ok(())
        })?;
    });
    // Whatever the profiles became, carol (granted nothing, and no fuzzed principal exists)
    // still cannot read the private project.
    runtime.block_on(async {
        let carol = app.login("carol", "password-of-tests").await;
        let response = app.get_as("/projects/hidden", &carol).await;
        assert_eq!(
            response.status,
            StatusCode::NOT_FOUND,
            "{}",
            response.text()
        );
    });
}

#[test]
fn arbitrary_range_headers_answer_the_right_slice_or_416() {
    let seeded = seeded();
    let Seeded {
        runtime,
        app,
        alice,
        ..
    } = &seeded;
    let path = format!("/files/{}?redirect=false", enc("hidden:data/file.bin@v1"));
    proptest!(config(128), |(range in prop_oneof![any::<String>(), "bytes=[0-9]{0,3}-[0-9]{0,3}", "bytes=-[0-9]{1,22}", "bytes=[0-9]{1,22}-"])| {
        let Ok(value) = axum::http::HeaderValue::from_str(&range) else { return Ok(()); };
        runtime.block_on(async {
            let request = axum::http::Request::builder().uri(&path).header("authorization", format!("Bearer {alice}")).header("range", value).body(axum::body::Body::empty()).unwrap();
            let response = app.send(request).await;
            match response.status {
                StatusCode::OK => prop_assert_eq!(&response.bytes[..], DATA),
                StatusCode::PARTIAL_CONTENT => {
                    // The body is a contiguous slice of the file, as Content-Range says.
                    let content_range = response.headers.get("content-range").unwrap().to_str().unwrap().to_owned();
                    let span = content_range.trim_start_matches("bytes ").split('/').next().unwrap().to_owned();
                    let (start, end) = span.split_once('-').unwrap();
                    let (start, end): (usize, usize) = (start.parse().unwrap(), end.parse().unwrap());
                    prop_assert_eq!(&response.bytes[..], &DATA[start..=end], "{}", content_range);
                }
                StatusCode::RANGE_NOT_SATISFIABLE => {}
                other => prop_assert!(false, "{range:?}: {other} {}", response.text()),
            }
            Ok(())
        })?;
    });
}

#[test]
fn oversized_bodies_and_queries_are_refused_early() {
    let seeded = seeded();
    let Seeded {
        runtime,
        app,
        alice,
        ..
    } = &seeded;
    runtime.block_on(async {
        let limit = app.state.settings.max_json_bytes;
        let huge = vec![b' '; limit + 1];
        for (method, path) in [
            (Method::POST, "/projects/fuzzed/version/big/upload"),
            (Method::PUT, "/projects/hidden/permissions"),
            (Method::POST, "/projects"),
        ] {
            let response = raw(
                app,
                method,
                path,
                Some(alice),
                &[("content-type", "application/json")],
                huge.clone(),
            )
            .await;
            assert_eq!(
                response.status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{path}: {}",
                response.text()
            );
        }
        let query = "a ".repeat(trove::index::search::MAX_QUERY_BYTES);
        let response = app
            .get_as(&format!("/search?q={}", enc(&query)), alice)
            .await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{}",
            response.text()
        );
        let nested = format!("{}a{}", "(".repeat(1000), ")".repeat(1000));
        let response = app
            .get_as(&format!("/search?q={}", enc(&nested)), alice)
            .await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{}",
            response.text()
        );
        let token = "a".repeat(1 << 20);
        let response = app.get_as("/auth/me", &token).await;
        assert!(response.status.is_client_error(), "{}", response.status);
    });
}
