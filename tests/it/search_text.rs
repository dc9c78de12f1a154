//! Search as a new user types it (issue 13): free text over projects, metadata values and
//! paths; prefix search; highlights built from the hit itself; complete project listings;
//! ArtifactDB's `readers` for those who manage. Every check also runs as a caller who sees
//! only part of the corpus.

use axum::http::StatusCode;
use serde_json::{Value, json};
use trove::permissions::Role;

use crate::common::artifacts::*;
use crate::common::{Backend, BackendApp, TestApp};

/// Ids of the hits of `GET /search?{query}`.
async fn hits(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let response = app.get_as(&format!("/search?{query}"), token).await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{query}: {}",
        response.text()
    );
    response.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["_extra"]["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Alice pushes "BERT base" (private) with a metadata document, weights and a README; Bob
/// pushes a public "ResNet" whose description mentions BERT.
async fn seed(app: &TestApp, alice: &str, bob: &str) {
    app
        .post_json("/projects", alice, &json!({"project_id": "bert-base", "title": "BERT base", "type": "MODEL",
                "description": "A transformer encoder", "tags": ["nlp", "encoder"], "visibility": "private"}))
        .await.assert_status(StatusCode::CREATED);
    create_version(app, alice, "bert-base", "v1").await;
    let document = json!({"path": "config/model.json", "training": {"dataset": "bookcorpus", "epochs": 40},
        "notes": ["pretrained on <wikipedia>"]});
    for (path, body) in [
        ("config/model.json", document.to_string().into_bytes()),
        ("weights.bin", b"weights".to_vec()),
        ("README.md", b"# readme".to_vec()),
    ] {
        upload(app, Some(alice), "bert-base", "v1", path, &body)
            .await
            .assert_status(StatusCode::CREATED);
    }
    complete(app, alice, "bert-base", "v1", None).await;

    app
        .post_json("/projects", bob, &json!({"project_id": "resnet", "title": "ResNet 50", "type": "MODEL",
                "description": "Image classifier, not BERT", "tags": ["vision"], "visibility": "public"}))
        .await.assert_status(StatusCode::CREATED);
    create_version(app, bob, "resnet", "v1").await;
    upload(app, Some(bob), "resnet", "v1", "weights.bin", b"other")
        .await
        .assert_status(StatusCode::CREATED);
    complete(app, bob, "resnet", "v1", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_people_type_finds_the_project_its_files_and_nothing_hidden() {
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Maintainer).await;
    seed(&app, &alice, &bob).await;

    // Every document of the project is found by the project's words, its files by theirs.
    for query in ["bert", "BERT", "Bert%20base", "encoder", "nlp", "bert-base"] {
        let found = hits(&app, &alice, &format!("q={query}&kind=all")).await;
        for id in [
            "bert-base",
            "bert-base:config/model.json@v1",
            "bert-base:weights.bin@v1",
            "bert-base:README.md@v1",
        ] {
            assert!(found.contains(&id.to_owned()), "{query}: {found:?}");
        }
    }
    assert!(
        hits(&app, &alice, "q=weights")
            .await
            .contains(&"bert-base:weights.bin@v1".to_owned())
    );
    assert_eq!(
        hits(&app, &alice, "q=model.json")
            .await
            .first()
            .map(String::as_str),
        Some("bert-base:config/model.json@v1")
    );
    // Nested metadata values and arrays.
    assert_eq!(
        hits(&app, &alice, "q=bookcorpus").await,
        ["bert-base:config/model.json@v1"]
    );
    assert_eq!(
        hits(&app, &alice, "q=wikipedia").await,
        ["bert-base:config/model.json@v1"]
    );
    // Relevance: the project named BERT ranks above the one whose description mentions it.
    let ranked = hits(&app, &alice, "q=bert&kind=project").await;
    assert_eq!(ranked, ["bert-base", "resnet"]);
    // An exact project id ranks its project first.
    assert_eq!(
        hits(&app, &alice, "q=resnet&kind=project").await[0],
        "resnet"
    );
    // Field-qualified queries work as before.
    assert_eq!(
        hits(&app, &alice, "q=title:bert&kind=project").await,
        ["bert-base"]
    );
    assert_eq!(
        hits(&app, &alice, "q=training.dataset:bookcorpus").await,
        ["bert-base:config/model.json@v1"]
    );
    // A prefix, for a search box.
    assert!(hits(&app, &alice, "q=bookc").await.is_empty());
    assert_eq!(
        hits(&app, &alice, "q=bookc&prefix=true").await,
        ["bert-base:config/model.json@v1"]
    );

    // An exclusion nested under AND means what it says; a range the index cannot run is a 400.
    assert_eq!(
        hits(&app, &alice, "q=bert%20AND%20NOT%20weights&kind=project").await,
        ["bert-base", "resnet"]
    );
    assert!(
        !hits(&app, &alice, "q=bert%20AND%20NOT%20weights")
            .await
            .contains(&"bert-base:weights.bin@v1".to_owned())
    );
    for query in [
        "document.year:%5B2021%20TO%202021%5D",
        "year:%5B2021%20TO%202021%5D",
    ] {
        // Ranges over metadata keys run on the key's terms (no document has a year here).
        assert!(hits(&app, &alice, &format!("q={query}")).await.is_empty());
    }
    // The user's own regular expressions stay refused.
    app.get_as("/search?q=title:/b.*/", &alice)
        .await
        .assert_status(StatusCode::BAD_REQUEST);

    // Bob sees none of alice's private project, whatever he types.
    for query in [
        "bert",
        "weights",
        "bookcorpus",
        "bookc&prefix=true",
        "nlp",
        "model.json",
    ] {
        let found = hits(&app, &bob, &format!("q={query}&kind=all")).await;
        assert!(
            found.iter().all(|id| id.starts_with("resnet")),
            "{query}: {found:?}"
        );
    }
    let total = app.get_as("/search?q=bert&kind=all", &bob).await.json()["total"].clone();
    // His project's file is found by his project's words too.
    assert_eq!(total, json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highlights_mark_the_words_in_the_hits_own_text() {
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Maintainer).await;
    seed(&app, &alice, &bob).await;
    let answer = app
        .get_as("/search?q=wikipedia&highlight=true", &alice)
        .await
        .json();
    assert_eq!(
        answer["results"][0]["_extra"]["highlight"], "pretrained on &lt;<em>wikipedia</em>&gt;",
        "{answer}"
    );
    // Built from the hit itself: bob's hit for "bert" highlights his own description.
    let answer = app
        .get_as("/search?q=bert&kind=all&highlight=true", &bob)
        .await
        .json();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{answer}");
    assert_eq!(results[0]["_extra"]["id"], "resnet", "{answer}");
    assert_eq!(
        results[0]["_extra"]["highlight"],
        "Image classifier, not <em>BERT</em>"
    );
    // The file matched through its project's words; its own text has none of them.
    assert_eq!(results[1]["_extra"]["highlight"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_project_is_reachable_through_the_listing_pages() {
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Maintainer).await;
    for index in 0..7 {
        for (owner, visibility) in [(&alice, "private"), (&bob, "public")] {
            let who = if owner == &alice { "a" } else { "b" };
            app
                .post_json("/projects", owner, &json!({"project_id": format!("{who}{index}"), "title": "T", "type": "MODEL", "visibility": visibility}))
                .await.assert_status(StatusCode::CREATED);
        }
    }
    for (token, expected) in [(&alice, 14), (&bob, 7)] {
        let mut seen = Vec::new();
        let mut next = Some("/projects?size=3".to_owned());
        while let Some(path) = next {
            let response = app.get_as(&path, token).await.assert_status(StatusCode::OK);
            let body = response.json();
            assert_eq!(body["total"], expected, "{body}");
            for project in body["results"].as_array().unwrap() {
                seen.push(project["project_id"].as_str().unwrap().to_owned());
            }
            next = body["next"].as_str().map(str::to_owned);
            if next.is_some() {
                assert!(response.headers.get("link").is_some());
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), expected, "{seen:?}");
        if expected == 7 {
            assert!(seen.iter().all(|id| id.starts_with('b')), "{seen:?}");
        }
    }
    let bad = app
        .get_as("/projects?cursor=forged", &alice)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "invalid_cursor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_see_artifactdb_readers_and_readers_do_not() {
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Maintainer).await;
    seed(&app, &alice, &bob).await;
    let shared = app
        .put_json(
            "/projects/bert-base/permissions",
            &alice,
            &json!({"viewers": ["bob"], "read_access": "viewers"}),
        )
        .await;
    wait_job(&app, &alice, &shared).await;
    let id = "/files/bert-base%3Aweights.bin%40v1/metadata";
    let own: Value = app.get_as(id, &alice).await.json();
    assert_eq!(
        own["_extra"]["permissions"]["readers"],
        json!(["alice", "bob"]),
        "{own}"
    );
    let theirs: Value = app.get_as(id, &bob).await.json();
    assert!(theirs["_extra"].get("permissions").is_none(), "{theirs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facets_count_only_what_the_caller_may_read() {
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Maintainer).await;
    seed(&app, &alice, &bob).await;
    let facets = |answer: &Value, field: &str| -> Vec<(String, u64)> {
        answer["facets"][field]
            .as_array()
            .unwrap_or_else(|| panic!("{field}: {answer}"))
            .iter()
            .map(|entry| {
                (
                    entry["value"].as_str().unwrap().to_owned(),
                    entry["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let fields = "_extra.type,tags,_extra.extension,_extra.project_id,_extra.content_type";
    let own = app
        .get_as(&format!("/search?q=*&facets={fields}"), &alice)
        .await
        .json();
    assert_eq!(
        facets(&own, "_extra.project_id"),
        [("bert-base".to_owned(), 3), ("resnet".to_owned(), 1)]
    );
    assert_eq!(facets(&own, "_extra.type"), [("MODEL".to_owned(), 4)]);
    assert!(
        facets(&own, "_extra.tags").contains(&("nlp".to_owned(), 3)),
        "{own}"
    );
    assert!(
        facets(&own, "_extra.extension").contains(&("bin".to_owned(), 2)),
        "{own}"
    );
    assert!(
        facets(&own, "_extra.extension").contains(&("json".to_owned(), 1)),
        "{own}"
    );
    // Bob's counts know nothing of alice's private project.
    let theirs = app
        .get_as(&format!("/search?q=*&facets={fields}"), &bob)
        .await
        .json();
    assert_eq!(
        facets(&theirs, "_extra.project_id"),
        [("resnet".to_owned(), 1)]
    );
    assert!(
        !facets(&theirs, "_extra.tags")
            .iter()
            .any(|(tag, _)| tag == "nlp"),
        "{theirs}"
    );
    // /aggregate: ArtifactDB's shape for one field, several at once under `facets`.
    let aggregate = app
        .get_as("/aggregate?q=*&field=_extra.project_id,_extra.type", &bob)
        .await
        .json();
    assert_eq!(
        aggregate["results"],
        json!([{"_extra.project_id": "resnet", "count": 1}]),
        "{aggregate}"
    );
    assert_eq!(facets(&aggregate, "_extra.type"), [("MODEL".to_owned(), 1)]);
    let single = app
        .get_as("/aggregate?q=*&field=_extra.project_id", &bob)
        .await
        .json();
    assert_eq!(
        single["results"],
        json!([{"_extra.project_id": "resnet", "count": 1}]),
        "{single}"
    );
    app.get_as("/search?q=*&facets=_extra.permissions", &bob)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
}

/// Alice's project `papers` with one metadata document per year of `years` (`paper-<i>.json`,
/// every one about "alpha"), and a public project of Bob's likewise.
async fn seed_papers(app: &TestApp, alice: &str, years: &[Value]) {
    app.post_json(
        "/projects",
        alice,
        &json!({"project_id": "papers", "title": "Papers", "type": "DATASET",
                "description": "A reading list", "tags": [], "visibility": "private"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    create_version(app, alice, "papers", "v1").await;
    for (index, year) in years.iter().enumerate() {
        let document = json!({"title": "alpha notes", "year": year});
        upload(
            app,
            Some(alice),
            "papers",
            "v1",
            &format!("paper-{index:02}.json"),
            document.to_string().as_bytes(),
        )
        .await
        .assert_status(StatusCode::CREATED);
    }
    complete(app, alice, "papers", "v1", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_equal_scores_neither_repeat_nor_skip_a_hit() {
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let years: Vec<Value> = (0..23).map(|year| json!(2000 + year)).collect();
    seed_papers(&app, &alice, &years).await;

    // 23 documents scoring alike (same words, same lengths), four a page, through `next`.
    let mut seen = Vec::new();
    let mut next = Some("/search?q=alpha&size=4".to_owned());
    while let Some(url) = next {
        let response = app.get_as(&url, &alice).await.assert_status(StatusCode::OK);
        let body = response.json();
        assert_eq!(body["total"], 23, "{body}");
        // Fewer matches than the counting cap: the total is exact.
        assert_eq!(body["total_relation"], "eq", "{body}");
        for hit in body["results"].as_array().unwrap() {
            seen.push(hit["_extra"]["id"].as_str().unwrap().to_owned());
        }
        next = body["next"].as_str().map(str::to_owned);
        assert!(seen.len() <= 23, "more hits than documents: {seen:?}");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 23, "pages repeated or skipped hits: {seen:?}");
    // The order of equal scores is the documents' own (project, version, path), not the
    // order they were indexed in.
    assert_eq!(seen, unique);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_over_metadata_keys_find_numbers_and_words() {
    let app = BackendApp::start(Backend::Local).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    let bob = app.user_token("bob", Role::Maintainer).await;
    // Integers, a float and a year written as a word.
    let years = [
        json!(2019),
        json!(2020),
        json!(2021.0),
        json!(2021.5),
        json!(2022),
        json!("unknown"),
    ];
    seed_papers(&app, &alice, &years).await;
    let paper = |index: usize| format!("papers:paper-{index:02}.json@v1");
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    for (query, expected) in [
        ("year:[2020 TO 2021]", vec![1, 2]),
        ("year:[2020 TO 2022}", vec![1, 2, 3]),
        ("year:{2020 TO *]", vec![2, 3, 4]),
        ("year:[* TO 2019]", vec![0]),
        ("document.year:[2021 TO 2021.5]", vec![2, 3]),
        ("year:[2021 TO 2021] AND title:alpha", vec![2]),
        ("year:[u TO v]", vec![5]),
    ] {
        let found = sorted(hits(&app, &alice, &format!("q={}&size=50", urlencode(query))).await);
        assert_eq!(
            found,
            expected.into_iter().map(paper).collect::<Vec<_>>(),
            "{query}"
        );
        // Bob reads none of Alice's private project.
        assert!(
            hits(&app, &bob, &format!("q={}", urlencode(query)))
                .await
                .is_empty(),
            "{query}"
        );
    }
}

/// `text` for a query string.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
