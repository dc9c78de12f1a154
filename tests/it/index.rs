//! The index core: schema versioning, the single writer, the cached access filter and
//! authorized search, on hand-built documents.

use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use trove::index::document::{DocKind, IndexDocument, Shared};

use chrono::{DateTime, Utc};
use trove::index::search::{KindFilter, SearchError, SearchRequest, SortKey};
use trove::index::writer::WriteOp;
use trove::index::{IndexSchema, SearchIndex};
use trove::permissions::{AccessScope, DocumentAccess};

#[test]
fn a_changed_schema_version_recreates_the_index() {
    let directory = tempfile::tempdir().unwrap();
    let first = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    assert!(
        first.needs_rebuild(),
        "a new index must be built from storage"
    );
    first.close();

    let again = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    assert!(!again.needs_rebuild(), "an up-to-date index is kept");
    again.close();

    let mut bumped = IndexSchema::builtin().unwrap();
    bumped.version += 1;
    let rebuilt = SearchIndex::open(directory.path(), bumped.clone()).unwrap();
    assert!(rebuilt.needs_rebuild(), "a new schema version rebuilds");
    assert_eq!(rebuilt.health().schema_version, bumped.version);
}

fn access(readers: &[&str], state: &str) -> DocumentAccess {
    DocumentAccess {
        readers: readers.iter().map(|r| ((*r).to_owned(), None)).collect(),
        disabled: state == "disabled",
        next_expiry: None,
    }
}

fn search(
    index: &SearchIndex,
    scope: &AccessScope,
    request: &SearchRequest,
) -> Result<trove::index::search::SearchPage, SearchError> {
    trove::index::search::search(index, scope, request, Utc::now())
}

fn file_doc(
    project: &str,
    version: &str,
    path: &str,
    revision: u64,
    readers: &[&str],
    state: &str,
) -> IndexDocument {
    let id = format!("{project}:{path}@{version}");
    IndexDocument {
        id: id.clone(),
        kind: DocKind::File,
        project_id: project.to_owned(),
        version: Some(version.to_owned()),
        path: Some(path.to_owned()),
        file_key: Some(path.to_owned()),
        perm_hash: 0,
        namespace: None,
        numerical_revision: Some(revision),
        uploaded: None,
        access: Shared::new(access(readers, state)),
        state: state.to_owned(),
        source: json!({
            "title": format!("{project} {path}"),
            "path": path,
            "_extra": {"id": id, "project_id": project, "version": version, "numerical_revision": revision}
        }),
        version_extra: None,
        permissions: Shared::new(json!({"owners": readers, "read_access": "viewers"})),
        project_text: std::sync::Arc::default(),
    }
}

async fn corpus() -> (tempfile::TempDir, SearchIndex) {
    let directory = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    let fields = *index.fields();
    let versions: Vec<(&str, &str, Vec<IndexDocument>)> = vec![
        (
            "p1",
            "v1",
            vec![
                file_doc("p1", "v1", "model.json", 1, &["alice", "bob"], "active"),
                file_doc("p1", "v1", "weights.bin", 1, &["alice", "bob"], "active"),
            ],
        ),
        (
            "p1",
            "v2",
            vec![file_doc("p1", "v2", "model.json", 2, &["bob"], "active")],
        ),
        (
            "p2",
            "v1",
            vec![file_doc("p2", "v1", "data.json", 1, &["alice"], "disabled")],
        ),
        (
            "p3",
            "v1",
            vec![file_doc(
                "p3",
                "v1",
                "paper.json",
                1,
                &["@public"],
                "active",
            )],
        ),
    ];
    let mut ops: Vec<WriteOp> = versions
        .into_iter()
        .map(|(project, version, docs)| WriteOp::Replace {
            owner: format!("{project}/{version}"),
            documents: docs.iter().map(|d| d.to_tantivy(&fields)).collect(),
        })
        .collect();
    let project = IndexDocument {
        id: "p1".into(),
        kind: DocKind::Project,
        project_id: "p1".into(),
        version: None,
        path: None,
        file_key: None,
        perm_hash: 0,
        namespace: None,
        numerical_revision: None,
        uploaded: None,
        access: Shared::new(access(&["alice", "bob"], "active")),
        state: "active".into(),
        source: json!({"title": "project one", "_extra": {"kind": "project", "project_id": "p1"}}),
        version_extra: None,
        permissions: Shared::new(json!({"owners": ["alice", "bob"]})),
        project_text: std::sync::Arc::default(),
    };
    ops.push(WriteOp::Replace {
        owner: project.owner_key(),
        documents: vec![project.to_tantivy(&fields)],
    });
    index.writer().apply(ops).await.unwrap();
    (directory, index)
}

fn ids(index: &SearchIndex, access: &AccessScope, request: &SearchRequest) -> Vec<String> {
    let page = search(index, access, request).unwrap();
    let mut ids: Vec<String> = page
        .hits
        .iter()
        .map(|hit| {
            hit.source()["_extra"]["id"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

fn request(query: &str) -> SearchRequest {
    SearchRequest {
        query: query.to_owned(),
        size: 100,
        ..SearchRequest::default()
    }
}

fn readers(tokens: &[&str]) -> AccessScope {
    AccessScope::Principals {
        tokens: std::sync::Arc::new(
            tokens
                .iter()
                .map(|t| (*t).to_owned())
                .collect::<BTreeSet<_>>(),
        ),
    }
}

#[tokio::test]
async fn documents_are_searchable_as_soon_as_apply_returns() {
    let (_dir, index) = corpus().await;
    assert_eq!(index.health().documents, 6);
    assert_eq!(index.writer().status().commits, 1, "one batch, one commit");
}

/// The kind a search asks for is folded into the access filter's cached set
/// (`AllowQuery::and_term`): each kind's set and the plain one are kept apart, whichever is
/// asked for first.
#[tokio::test]
async fn a_kind_folded_into_the_allowed_set_keeps_each_kind_apart() {
    use KindFilter::{All, File, Project};
    for order in [
        [File, All, Project],
        [All, Project, File],
        [Project, File, All],
    ] {
        let (_dir, index) = corpus().await;
        for kind in order {
            let request = SearchRequest {
                kind,
                ..request("_extra.project_id:p1")
            };
            // Counted as aggregations count: no per-hit re-check to hide a wrong set.
            let found = |who: &[&str]| {
                let names = ["_extra.project_id".to_owned()];
                let facets = trove::index::search::facets(
                    &index,
                    &readers(who),
                    &request,
                    &names,
                    10,
                    Utc::now(),
                )
                .unwrap();
                assert_eq!(
                    search(&index, &readers(who), &request).unwrap().total as u64,
                    facets[0].1[0].1,
                    "the search's total agrees"
                );
                facets[0].1[0].1
            };
            let expected = match kind {
                File => (2, 3),
                Project => (1, 1),
                All => (3, 4),
            };
            assert_eq!(
                (found(&["alice"]), found(&["bob"])),
                expected,
                "{kind:?} in {order:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_access_filter_admits_exactly_the_allowed_documents() {
    let (_dir, index) = corpus().await;
    let all = request("*");
    assert_eq!(
        ids(&index, &AccessScope::Unrestricted, &all),
        [
            "p1:model.json@v1",
            "p1:model.json@v2",
            "p1:weights.bin@v1",
            "p2:data.json@v1",
            "p3:paper.json@v1"
        ]
    );
    assert_eq!(
        ids(&index, &AccessScope::AllButDisabled, &all),
        [
            "p1:model.json@v1",
            "p1:model.json@v2",
            "p1:weights.bin@v1",
            "p3:paper.json@v1"
        ],
        "reviewers never see disabled documents"
    );
    assert_eq!(
        ids(&index, &readers(&["alice", "@public"]), &all),
        ["p1:model.json@v1", "p1:weights.bin@v1", "p3:paper.json@v1"],
        "alice: her grants and public, never the disabled one"
    );
    assert_eq!(
        ids(&index, &readers(&["carol"]), &all),
        Vec::<String>::new()
    );
    let both = AccessScope::Both(Box::new(readers(&["bob"])), Box::new(readers(&["alice"])));
    assert_eq!(
        ids(&index, &both, &all),
        ["p1:model.json@v1", "p1:weights.bin@v1"],
        "a conjunction admits what both sides admit"
    );
    // The same filter twice hits the cache.
    let (hits_before, _) = index.allow_cache().stats();
    ids(&index, &readers(&["alice", "@public"]), &all);
    assert!(index.allow_cache().stats().0 > hits_before);
}

#[tokio::test]
async fn user_queries_cannot_widen_the_filter() {
    let (_dir, index) = corpus().await;
    let alice = readers(&["alice"]);
    for query in [
        "* OR title:p3",
        "NOT title:nothing",
        "title:p2 OR title:p1",
        "(* OR *)",
        "_extra.project_id:p2",
    ] {
        for id in ids(&index, &alice, &request(query)) {
            assert!(
                id.starts_with("p1:") && id.ends_with("@v1"),
                "{query} leaked {id}"
            );
        }
    }
    for query in [
        "readers:bob",
        "readers:*",
        "source:x",
        "title:(",
        "((((",
        "title:\"unclosed",
        &"(".repeat(100),
    ] {
        let error = search(&index, &alice, &request(query)).unwrap_err();
        assert!(
            matches!(error, SearchError::InvalidQuery(_)),
            "{query}: {error:?}"
        );
    }
    // Columns the sync check and aggregations read, kept out of the inverted index: not
    // searchable by term (`400`, as before for `readers`).
    for query in ["file_key:model.json", "perm_hash:0", "grant_expiry:0"] {
        assert!(
            matches!(
                search(&index, &alice, &request(query)),
                Err(SearchError::InvalidQuery(_))
            ),
            "{query}"
        );
    }
    let long_or = (0..5000)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    assert!(matches!(
        search(&index, &alice, &request(&long_or)),
        Err(SearchError::InvalidQuery(_))
    ));
    let many_terms = (0..600)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    assert!(
        search(&index, &alice, &request(&many_terms))
            .unwrap()
            .hits
            .is_empty()
    );
}

#[tokio::test]
async fn metadata_fields_are_searchable_but_permissions_are_not() {
    let (_dir, index) = corpus().await;
    let all = AccessScope::Unrestricted;
    assert_eq!(
        ids(&index, &all, &request("path:weights.bin")),
        ["p1:weights.bin@v1"]
    );
    assert_eq!(
        ids(&index, &all, &request("_extra.version:v2")),
        ["p1:model.json@v2"]
    );
    assert!(ids(&index, &all, &request("_extra.permissions.owners:bob")).is_empty());
}

#[tokio::test]
async fn latest_keeps_each_projects_latest_readable_version() {
    let (_dir, index) = corpus().await;
    let mut latest = request("*");
    latest.latest = true;
    assert_eq!(
        ids(&index, &readers(&["alice"]), &latest),
        ["p1:model.json@v1", "p1:weights.bin@v1"],
        "v2 is bob's only: alice's latest of p1 is v1"
    );
    assert_eq!(
        ids(&index, &readers(&["bob"]), &latest),
        ["p1:model.json@v2"]
    );
}

#[tokio::test]
async fn kinds_sorting_paging_and_reindexing() {
    let (_dir, index) = corpus().await;
    let all = AccessScope::Unrestricted;
    let mut projects = request("*");
    projects.kind = KindFilter::Project;
    let page = search(&index, &all, &projects).unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.hits[0].source()["title"], "project one");

    let mut sorted = request("*");
    sorted.sort = Some(SortKey::parse(index.schema(), "-_extra.numerical_revision").unwrap());
    sorted.size = 2;
    let page = search(&index, &all, &sorted).unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(page.hits[0].source()["_extra"]["numerical_revision"], 2);
    sorted.offset = 4;
    assert_eq!(search(&index, &all, &sorted).unwrap().hits.len(), 1);
    assert!(SortKey::parse(index.schema(), "_extra.permissions").is_err());
    sorted.size = 501;
    assert!(matches!(
        search(&index, &all, &sorted),
        Err(SearchError::InvalidParameter(_))
    ));

    // Re-indexing a version replaces its documents, never duplicates them.
    let fields = *index.fields();
    let again = file_doc("p1", "v1", "model.json", 1, &["alice"], "active");
    for _ in 0..3 {
        index
            .writer()
            .apply(vec![WriteOp::Replace {
                owner: "p1/v1".into(),
                documents: vec![again.to_tantivy(&fields)],
            }])
            .await
            .unwrap();
    }
    assert_eq!(
        ids(&index, &all, &request("_extra.project_id:p1")),
        ["p1:model.json@v1", "p1:model.json@v2"]
    );
}

#[tokio::test]
async fn an_expired_grant_never_returns_a_hit_even_before_reindexing() {
    let directory = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    let fields = *index.fields();
    let past: DateTime<Utc> = "2020-01-01T00:00:00Z".parse().unwrap();
    let future: DateTime<Utc> = "2999-01-01T00:00:00Z".parse().unwrap();
    let mut expired = file_doc("p9", "v1", "a.json", 1, &[], "active");
    let mut access = (*expired.access).clone();
    access.readers = BTreeMap::from([
        ("carol".to_owned(), Some(past)),
        ("dave".to_owned(), Some(future)),
    ]);
    expired.access = Shared::new(access);
    index
        .writer()
        .apply(vec![WriteOp::Replace {
            owner: "p9/v1".into(),
            documents: vec![expired.to_tantivy(&fields)],
        }])
        .await
        .unwrap();
    let page = search(&index, &readers(&["carol"]), &request("*")).unwrap();
    assert!(page.hits.is_empty(), "carol's grant expired");
    assert_eq!(page.total, 0);
    assert_eq!(
        search(&index, &readers(&["dave"]), &request("*"))
            .unwrap()
            .hits
            .len(),
        1
    );
    // Aggregations and version lists re-check expired grants like hits.
    let count = |who: &str| {
        trove::index::search::aggregate(
            &index,
            &readers(&[who]),
            "*",
            "_extra.project_id",
            10,
            Utc::now(),
        )
        .unwrap()
    };
    assert!(count("carol").is_empty(), "{:?}", count("carol"));
    assert_eq!(count("dave"), [("p9".to_owned(), 1)]);
    assert!(
        trove::index::search::project_versions(
            &index,
            &readers(&["carol"]),
            "p9",
            chrono::Utc::now()
        )
        .unwrap()
        .is_empty()
    );
    assert_eq!(
        trove::index::search::project_versions(
            &index,
            &readers(&["dave"]),
            "p9",
            chrono::Utc::now()
        )
        .unwrap(),
        ["v1"]
    );
}

/// A kept aggregate (`index::facet_cache`) is answered only while what it counted holds:
/// not past the first grant expiry among its documents, not after the index changed, never
/// for another filter.
#[tokio::test]
async fn a_kept_aggregate_ends_when_a_counted_grant_expires_or_the_index_changes() {
    let directory = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    let fields = *index.fields();
    let start: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
    let expires: DateTime<Utc> = "2030-01-01T01:00:00Z".parse().unwrap();
    let write = |document: IndexDocument| {
        let owner = format!("{}/v1", document.project_id);
        index.writer().apply(vec![WriteOp::Replace {
            owner,
            documents: vec![document.to_tantivy(&fields)],
        }])
    };
    let mut expiring = file_doc("p9", "v1", "a.json", 1, &[], "active");
    let mut access = (*expiring.access).clone();
    access.readers = BTreeMap::from([("carol".to_owned(), Some(expires))]);
    expiring.access = Shared::new(access);
    write(expiring).await.unwrap();
    let count = |who: &str, at: DateTime<Utc>| {
        trove::index::search::aggregate(&index, &readers(&[who]), "*", "_extra.project_id", 10, at)
            .unwrap()
    };
    let p9 = vec![("p9".to_owned(), 1)];
    assert_eq!(count("carol", start), p9);
    assert_eq!(index.facet_cache().len(), 1, "kept");
    assert_eq!(count("carol", start), p9);
    assert_eq!(count("carol", expires - chrono::Duration::seconds(1)), p9);
    // At the expiry the kept count no longer holds: counted afresh, the document re-checked.
    assert!(count("carol", expires).is_empty());
    assert!(count("carol", expires + chrono::Duration::days(1)).is_empty());
    // Another filter has its own count.
    assert!(count("dave", start).is_empty());
    // A change of the index: counted afresh.
    let mut other = file_doc("p8", "v1", "b.json", 1, &[], "active");
    let mut access = (*other.access).clone();
    access.readers = BTreeMap::from([("carol".to_owned(), None)]);
    other.access = Shared::new(access);
    write(other).await.unwrap();
    assert_eq!(
        count("carol", start),
        [("p8".to_owned(), 1), ("p9".to_owned(), 1)]
    );
    assert_eq!(count("carol", expires), [("p8".to_owned(), 1)]);

    // A count that had to re-check a document (one grant expired, another still held) is
    // not kept: it changes again when the other grant expires.
    let later = expires + chrono::Duration::hours(1);
    let mut twice = file_doc("p7", "v1", "c.json", 1, &[], "active");
    let mut access = (*twice.access).clone();
    access.readers = BTreeMap::from([
        ("erin".to_owned(), Some(expires)),
        ("frank".to_owned(), Some(later)),
    ]);
    twice.access = Shared::new(access);
    write(twice).await.unwrap();
    let both = |at| {
        trove::index::search::aggregate(
            &index,
            &readers(&["erin", "frank"]),
            "*",
            "_extra.project_id",
            10,
            at,
        )
        .unwrap()
    };
    assert_eq!(both(expires), [("p7".to_owned(), 1)], "frank's grant holds");
    assert!(both(later).is_empty(), "both grants expired");
}

#[tokio::test]
async fn a_query_of_thousands_of_distinct_plain_words_is_answered() {
    let (_directory, index) = corpus().await;
    // Near the size limit: 1,200 distinct words, each a clause of the free-text query;
    // coordination and proximity take only the first words, so this stays a plain OR.
    let words: Vec<String> = (0..1_200).map(|n| format!("w{n}")).collect();
    let text = words.join(" ");
    assert!(text.len() <= trove::index::search::MAX_QUERY_BYTES);
    let page = search(&index, &readers(&["alice"]), &request(&text)).unwrap();
    assert!(page.hits.is_empty(), "no document holds those words");
    let page = search(
        &index,
        &readers(&["alice"]),
        &request(&format!("{text} p1")),
    )
    .unwrap();
    assert!(!page.hits.is_empty(), "p1's documents hold the last word");
}

/// 3,000 files whose names all hold `model` (its idf ≈ 0 in every free-text field); five
/// also hold `zebra`, two of them readable by alice. Projects alternate between alice and bob.
async fn universal_word_corpus() -> (tempfile::TempDir, SearchIndex) {
    let directory = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    let fields = *index.fields();
    let mut ops = Vec::new();
    for project in 0..60_u32 {
        let reader = if project.is_multiple_of(2) {
            "alice"
        } else {
            "bob"
        };
        let name = format!("p{project:02}");
        let documents = (0..50)
            .map(|file| {
                let zebra = matches!((project, file), (2 | 40, 7) | (1 | 3 | 59, 9));
                let path = if zebra {
                    format!("zebra-model-{file}.json")
                } else {
                    format!("model-{file}.json")
                };
                file_doc(&name, "v1", &path, 1, &[reader], "active").to_tantivy(&fields)
            })
            .collect();
        ops.push(WriteOp::Replace {
            owner: format!("{name}/v1"),
            documents,
        });
    }
    index.writer().apply(ops).await.unwrap();
    (directory, index)
}

#[tokio::test]
async fn a_word_in_every_document_neither_hides_nor_outranks_the_informative_ones() {
    let (_directory, index) = universal_word_corpus().await;
    let alice = readers(&["alice"]);
    let page_of = |query: &str, offset: usize| {
        let request = SearchRequest {
            query: query.to_owned(),
            size: 10,
            offset,
            ..SearchRequest::default()
        };
        let page = search(&index, &alice, &request).unwrap();
        let ids: Vec<String> = page
            .hits
            .iter()
            .map(|hit| hit.source()["_extra"]["id"].as_str().unwrap().to_owned())
            .collect();
        (ids, page.total)
    };
    let alices = |ids: &[String]| {
        ids.iter().all(|id| {
            let project: usize = id[1..3].parse().unwrap();
            project.is_multiple_of(2)
        })
    };
    // The informative word leads; the universal one fills the page (the candidate pass set
    // its lists aside and refilled the short window with them).
    let (ids, total) = page_of("model zebra", 0);
    assert_eq!(ids.len(), 10, "{ids:?}");
    let mut leading = ids[..2].to_vec();
    leading.sort();
    assert_eq!(
        leading,
        ["p02:zebra-model-7.json@v1", "p40:zebra-model-7.json@v1"],
        "{ids:?}"
    );
    assert!(alices(&ids), "{ids:?}");
    assert_eq!(total, 1_500, "every file of alice's projects holds `model`");
    // Only the universal word: a full page of what alice may read, and the next page goes on
    // without repeating it.
    let (first, total) = page_of("model", 0);
    let (second, _) = page_of("model", 10);
    assert_eq!((first.len(), second.len(), total), (10, 10, 1_500));
    assert!(alices(&first) && alices(&second), "{first:?} {second:?}");
    assert!(
        first.iter().all(|id| !second.contains(id)),
        "{first:?} {second:?}"
    );
    // Bob's zebras stay bob's.
    let (ids, total) = page_of("zebra", 0);
    assert_eq!((ids.len(), total), (2, 2), "{ids:?}");
}

#[tokio::test]
async fn a_rare_word_in_a_new_segment_is_found_beside_a_word_in_every_document() {
    let (_directory, index) = universal_word_corpus().await;
    let fields = *index.fields();
    // A later upload: its own commit, so its own segment, the only one holding `okapi`.
    let upload = file_doc("p70", "v1", "okapi-model-1.json", 1, &["alice"], "active");
    index
        .writer()
        .apply(vec![WriteOp::Replace {
            owner: "p70/v1".to_owned(),
            documents: vec![upload.to_tantivy(&fields)],
        }])
        .await
        .unwrap();
    let request = SearchRequest {
        query: "model okapi".to_owned(),
        size: 10,
        ..SearchRequest::default()
    };
    let page = search(&index, &readers(&["alice"]), &request).unwrap();
    assert_eq!(page.hits.len(), 10);
    assert_eq!(
        page.hits[0].source()["_extra"]["id"],
        "p70:okapi-model-1.json@v1",
        "the informative word leads whichever segment holds it"
    );
}

/// A namespace's projects are counted under the caller's scope like every other index
/// query: a caller never learns of a project they cannot read; the system's unrestricted
/// scope sees all of them (re-indexing a namespace change).
#[tokio::test]
async fn projects_in_a_namespace_are_those_the_scope_may_read() {
    let directory = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    let fields = *index.fields();
    let in_lab = |project: &str, readers: &[&str], state: &str| {
        let mut document = file_doc(project, "v1", "a.json", 1, readers, state);
        document.namespace = Some("lab".to_owned());
        WriteOp::Replace {
            owner: document.owner_key(),
            documents: vec![document.to_tantivy(&fields)],
        }
    };
    index
        .writer()
        .apply(vec![
            in_lab("open", &["@public"], "active"),
            in_lab("secret", &["alice"], "active"),
            in_lab("off", &["bob"], "disabled"),
            // Another namespace's project is never counted.
            WriteOp::Replace {
                owner: "elsewhere/v1".to_owned(),
                documents: vec![
                    file_doc("elsewhere", "v1", "a.json", 1, &["@public"], "active")
                        .to_tantivy(&fields),
                ],
            },
        ])
        .await
        .unwrap();
    let projects = |scope: &AccessScope| {
        trove::index::search::projects_in_namespace(&index, scope, "lab").unwrap()
    };
    assert_eq!(
        projects(&AccessScope::Unrestricted),
        ["off", "open", "secret"]
    );
    assert_eq!(projects(&AccessScope::AllButDisabled), ["open", "secret"]);
    assert_eq!(projects(&readers(&["@public"])), ["open"]);
    assert_eq!(
        projects(&readers(&["alice", "@public"])),
        ["open", "secret"]
    );
    assert_eq!(projects(&readers(&["bob"])), Vec::<String>::new());
}

#[tokio::test]
async fn cached_stored_documents_are_rechecked_at_use_and_never_outlive_their_replacement() {
    let directory = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    let fields = *index.fields();
    let granted: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
    let until: DateTime<Utc> = "2030-01-02T00:00:00Z".parse().unwrap();
    let after: DateTime<Utc> = "2030-01-03T00:00:00Z".parse().unwrap();
    let mut shared = file_doc("p7", "v1", "card.json", 1, &[], "active");
    let mut access = (*shared.access).clone();
    access.readers = BTreeMap::from([("dave".to_owned(), Some(until))]);
    shared.access = Shared::new(access);
    index
        .writer()
        .apply(vec![WriteOp::Replace {
            owner: "p7/v1".into(),
            documents: vec![shared.to_tantivy(&fields)],
        }])
        .await
        .unwrap();
    let dave = readers(&["dave"]);
    let all = request("*");
    let found = |scope: &AccessScope, at: DateTime<Utc>| {
        trove::index::search::search(&index, scope, &all, at)
            .unwrap()
            .hits
            .into_iter()
            .map(|hit| hit.source()["title"].as_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(found(&dave, granted), ["p7 card.json"]);
    let (hits_before, _, entries) = index.document_cache().stats();
    assert_eq!(entries, 1, "the hit's stored document is cached");
    assert_eq!(found(&dave, granted), ["p7 card.json"]);
    assert!(
        index.document_cache().stats().0 > hits_before,
        "served from the cache"
    );
    // The grant expires: the cached document is re-checked at the time of use.
    assert!(
        found(&dave, after).is_empty(),
        "an expired grant stays expired in the cache"
    );
    let one = |scope: &AccessScope, at: DateTime<Utc>| {
        trove::index::search::get_by_id(&index, scope, "p7:card.json@v1", at).unwrap()
    };
    assert!(one(&dave, granted).is_some());
    assert!(one(&dave, after).is_none());

    // The version is replaced: its new document (new title, new reader) is what is found,
    // never the cached old one.
    let mut replaced = file_doc("p7", "v1", "card.json", 1, &["erin"], "active");
    replaced.source["title"] = json!("replaced card");
    index
        .writer()
        .apply(vec![WriteOp::Replace {
            owner: "p7/v1".into(),
            documents: vec![replaced.to_tantivy(&fields)],
        }])
        .await
        .unwrap();
    assert!(found(&dave, granted).is_empty());
    assert_eq!(found(&readers(&["erin"]), granted), ["replaced card"]);
    assert_eq!(
        one(&readers(&["erin"]), granted).unwrap().source()["title"],
        "replaced card"
    );
}

#[tokio::test]
async fn kept_ordinal_names_belong_to_their_segment() {
    let directory = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    let fields = *index.fields();
    let write = |version: &'static str, revision: u64| {
        let document = file_doc("p8", version, "card.json", revision, &["erin"], "active");
        WriteOp::Replace {
            owner: format!("p8/{version}"),
            documents: vec![document.to_tantivy(&fields)],
        }
    };
    let versions = || {
        trove::index::search::readable_versions(
            &index,
            &readers(&["erin"]),
            &["p8".to_owned()],
            Utc::now(),
        )
        .unwrap()
        .remove("p8")
        .unwrap_or_default()
    };
    index.writer().apply(vec![write("v1", 1)]).await.unwrap();
    assert_eq!(versions().versions, ["v1"]);
    assert_eq!(versions().versions, ["v1"], "answered from the kept names");
    // A new segment whose dictionary numbers its own strings: its ordinal 0 is `a-first`, not
    // the first segment's `v1`.
    index
        .writer()
        .apply(vec![write("a-first", 2)])
        .await
        .unwrap();
    let found = versions();
    assert_eq!(found.versions, ["a-first", "v1"]);
    assert_eq!(found.latest.as_deref(), Some("a-first"));
}

/// The fast columns a readable-versions pass or a relevance-ordered search opens are kept per
/// segment and only for the segments of the searcher: a segment whose documents are all replaced is forgotten (its
/// files are not held open), and the answers stay those of the index.
#[tokio::test]
async fn opened_columns_are_kept_only_for_live_segments() {
    let directory = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    let fields = *index.fields();
    let write = |path: &'static str, revision: u64| {
        let document = file_doc("p9", "v1", path, revision, &["erin"], "active");
        WriteOp::Replace {
            owner: "p9/v1".to_owned(),
            documents: vec![document.to_tantivy(&fields)],
        }
    };
    let versions = || {
        trove::index::search::readable_versions(
            &index,
            &readers(&["erin"]),
            &["p9".to_owned()],
            Utc::now(),
        )
        .unwrap()
        .remove("p9")
        .unwrap_or_default()
    };
    let live = || -> Vec<_> {
        index
            .searcher()
            .segment_readers()
            .iter()
            .map(tantivy::SegmentReader::segment_id)
            .collect()
    };
    index
        .writer()
        .apply(vec![write("a.json", 1)])
        .await
        .unwrap();
    assert_eq!(versions().latest.as_deref(), Some("v1"));
    let first = live();
    assert_eq!(index.columns().segments(), first);
    // The columns a relevance-ordered search reads (equal scores ordered by project,
    // version and path) too, kept from one search to the next.
    let found = || ids(&index, &readers(&["erin"]), &request("p9"));
    assert_eq!(found(), ["p9:a.json@v1"]);
    assert_eq!(index.columns().tie_segments(), first);
    assert_eq!(found(), ["p9:a.json@v1"]);
    assert_eq!(index.columns().tie_segments(), first);
    // Replaced whole: the first segment is gone from the searcher, and from the kept columns
    // once the new segment's are opened.
    index
        .writer()
        .apply(vec![write("b.json", 2)])
        .await
        .unwrap();
    let second = live();
    assert!(first.iter().all(|segment| !second.contains(segment)));
    assert_eq!(versions().latest.as_deref(), Some("v1"));
    assert_eq!(index.columns().segments(), second);
    assert_eq!(found(), ["p9:b.json@v1"]);
    assert_eq!(index.columns().tie_segments(), second);
}

/// The readable versions of a page's projects are those of the documents the caller may
/// read: not a version only others read, nothing of a disabled project, nothing of a version
/// replaced away (its documents deleted in an older segment), and a project's record never
/// counts as a version.
/// Kept readable versions (`index::answer_cache`) are answered only while what they read
/// holds: not from the first grant expiry among the documents read on, not after the index
/// changed (a new version, a profile that no longer admits the caller), never for another
/// filter.
#[tokio::test]
async fn kept_readable_versions_end_when_a_grant_expires_or_the_index_changes() {
    let directory = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(directory.path(), IndexSchema::builtin().unwrap()).unwrap();
    let fields = *index.fields();
    let start: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
    let expires: DateTime<Utc> = "2030-01-01T01:00:00Z".parse().unwrap();
    let write = |version: &str, grants: BTreeMap<String, Option<DateTime<Utc>>>| {
        let mut document = file_doc("p9", version, "a.json", 1, &[], "active");
        let mut access = (*document.access).clone();
        access.readers = grants;
        document.access = Shared::new(access);
        index.writer().apply(vec![WriteOp::Replace {
            owner: format!("p9/{version}"),
            documents: vec![document.to_tantivy(&fields)],
        }])
    };
    write("v1", BTreeMap::from([("carol".to_owned(), Some(expires))]))
        .await
        .unwrap();
    let versions = |who: &str, at: DateTime<Utc>| {
        trove::index::search::readable_versions(&index, &readers(&[who]), &["p9".to_owned()], at)
            .unwrap()
            .remove("p9")
            .map(|found| found.versions)
            .unwrap_or_default()
    };
    assert_eq!(versions("carol", start), ["v1"]);
    assert_eq!(index.versions_cache().len(), 1, "kept");
    assert_eq!(
        versions("carol", expires - chrono::Duration::seconds(1)),
        ["v1"]
    );
    // At the expiry the kept answer no longer holds: read afresh, the document re-checked.
    assert!(versions("carol", expires).is_empty());
    assert!(versions("carol", expires + chrono::Duration::days(1)).is_empty());
    // Another filter has its own answer.
    assert!(versions("dave", start).is_empty());
    // A new version: read afresh.
    write("v2", BTreeMap::from([("carol".to_owned(), None)]))
        .await
        .unwrap();
    assert_eq!(versions("carol", start), ["v1", "v2"]);
    assert_eq!(versions("carol", start), ["v1", "v2"]);
    // v2's profile no longer admits carol: read afresh.
    write("v2", BTreeMap::from([("dave".to_owned(), None)]))
        .await
        .unwrap();
    assert_eq!(versions("carol", start), ["v1"]);
    assert_eq!(versions("dave", start), ["v2"]);
}

#[tokio::test]
async fn readable_versions_of_projects_are_those_the_caller_reads() {
    let (_dir, index) = corpus().await;
    let projects: Vec<String> = ["p1", "p2", "p3", "p4"].map(str::to_owned).to_vec();
    let versions = |tokens: &[&str]| -> BTreeMap<String, (Vec<String>, Option<String>)> {
        trove::index::search::readable_versions(&index, &readers(tokens), &projects, Utc::now())
            .unwrap()
            .into_iter()
            .map(|(project, found)| (project, (found.versions, found.latest)))
            .collect()
    };
    let one = |versions: &[&str], latest: &str| {
        (
            versions.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>(),
            Some(latest.to_owned()),
        )
    };
    assert_eq!(
        versions(&["alice", "@public"]),
        BTreeMap::from([
            ("p1".to_owned(), one(&["v1"], "v1")),
            ("p3".to_owned(), one(&["v1"], "v1")),
        ]),
        "v2 is bob's only; p2 is disabled"
    );
    assert_eq!(
        versions(&["bob", "@public"]),
        BTreeMap::from([
            ("p1".to_owned(), one(&["v1", "v2"], "v2")),
            ("p3".to_owned(), one(&["v1"], "v1")),
        ])
    );
    assert_eq!(
        trove::index::search::readable_versions(
            &index,
            &AccessScope::Unrestricted,
            &projects,
            Utc::now()
        )
        .unwrap()
        .get("p2")
        .map(|found| found.versions.clone()),
        Some(vec!["v1".to_owned()]),
        "an admin reads the disabled project's version"
    );
    // v2 replaced away: its document is deleted (still in its segment, not alive).
    index
        .writer()
        .apply(vec![WriteOp::Replace {
            owner: "p1/v2".to_owned(),
            documents: Vec::new(),
        }])
        .await
        .unwrap();
    assert_eq!(versions(&["bob", "@public"])["p1"], one(&["v1"], "v1"));
}
