//! What read routes cost (issue 18): a listing page computes the readable versions of all its
//! projects in one index pass, whatever its size; no index search runs on an async worker
//! thread; a version's file listing answers its sidecar records from a cache validated by
//! the listed ETags — and every answer stays what the permission rules say.

use axum::http::StatusCode;
use serde_json::{Value, json};
use trove::permissions::Role;
use trove::storage::keys;

use crate::common::artifacts::{create_project, create_version, enc, upload};
use crate::common::{TestApp, put_json};

/// `projects` projects readable by `olive` (three completed versions each, `v3` hidden from
/// her by a version profile in every third project, an open version `v4` without revision in
/// every fifth), plus one private to `walt`.
async fn seed(app: &TestApp, projects: usize) {
    let storage = app.state.storage.as_ref();
    let profile = |owners: &[&str]| json!({"scope": "project", "owners": owners, "viewers": ["olive"], "read_access": "viewers"});
    for index in 0..=projects {
        let project = if index == projects {
            "walts-own".to_owned()
        } else {
            format!("proj-{index:03}")
        };
        put_json(
            storage,
            &keys::project_record(&project),
            &json!({
                "project_id": project, "title": format!("model {index}"), "type": "MODEL",
                "created_at": "2026-11-01T00:00:00Z", "created_by": "walt"
            }),
        )
        .await;
        let owners: &[&str] = &["walt"];
        let mut project_profile = profile(owners);
        if index == projects {
            project_profile["viewers"] = json!([]);
        }
        put_json(
            storage,
            &keys::project_permissions(&project),
            &project_profile,
        )
        .await;
        let mut versions = vec![("v1", 1), ("v2", 2), ("v3", 3)];
        if index.is_multiple_of(5) {
            versions.push(("v4", 0));
        }
        for (version, revision) in versions {
            let mut record = json!({
                "project_id": project, "version": version, "created_at": "2026-11-01T00:00:00Z",
                "created_by": "walt", "status": "completed", "revision": format!("NUM-{revision}"),
                "numerical_revision": revision
            });
            if revision == 0 {
                record["status"] = json!("open");
                record["revision"] = Value::Null;
                record["numerical_revision"] = Value::Null;
            }
            put_json(storage, &keys::version_record(&project, version), &record).await;
            if version == "v3" && index.is_multiple_of(3) {
                put_json(
                    storage,
                    &keys::version_permissions(&project, version),
                    &json!({"scope": "version", "owners": ["walt"], "read_access": "owners"}),
                )
                .await;
            }
            put_json(
                storage,
                &keys::version_file(&project, version, "card.json"),
                &json!({"title": format!("card {index} {version}"), "path": "card.json"}),
            )
            .await;
        }
    }
    app.index_all().await;
}

/// What olive may read of a project: its versions and latest, by the rules of `seed`.
fn expected(index: usize) -> (Vec<&'static str>, &'static str) {
    let mut versions = vec!["v1", "v2"];
    if !index.is_multiple_of(3) {
        versions.push("v3");
    }
    if index.is_multiple_of(5) {
        versions.push("v4");
    }
    let latest = if index.is_multiple_of(3) { "v2" } else { "v3" };
    (versions, latest)
}

fn searches(app: &TestApp) -> u64 {
    app.state.index.search_counters().total()
}

#[tokio::test]
async fn a_project_listing_reads_all_versions_of_a_page_in_one_pass_and_shows_only_readable_ones() {
    let app = TestApp::local().await;
    seed(&app, 40).await;
    let olive = app.user_token("olive", Role::Maintainer).await;

    let mut costs = Vec::new();
    for size in [3, 40] {
        let before = searches(&app);
        let page = app
            .get_as(
                &format!("/projects?size={size}&sort=_extra.project_id"),
                &olive,
            )
            .await
            .assert_status(StatusCode::OK);
        costs.push(searches(&app) - before);
        let page = page.json();
        assert_eq!(
            page["total"], 40,
            "walt's private project stays hidden: {page}"
        );
        let results = page["results"].as_array().unwrap();
        assert_eq!(results.len(), size);
        for (index, result) in results.iter().enumerate() {
            assert_eq!(result["project_id"], format!("proj-{index:03}"));
            let (versions, latest) = expected(index);
            let aggs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"_extra.version": v}))
                .collect();
            assert_eq!(result["aggs"], json!(aggs), "{result}");
            assert_eq!(
                result["latest"],
                json!({"_extra.version": latest}),
                "{result}"
            );
            // The per-project route agrees with the listing.
            let one = app
                .get_as(&format!("/projects/proj-{index:03}/versions"), &olive)
                .await
                .json();
            assert_eq!(one["aggs"], result["aggs"]);
            assert_eq!(one["latest"], result["latest"]);
        }
    }
    // The page's search plus one pass for the versions of all its projects, whatever its size.
    assert_eq!(
        costs,
        [2, 2],
        "index searches per listing page of 3 and of 40 projects"
    );

    // The owner sees the hidden versions and the private project.
    let walt = app.user_token("walt", Role::Maintainer).await;
    let page = app
        .get_as("/projects?size=500&sort=_extra.project_id", &walt)
        .await
        .json();
    assert_eq!(page["total"], 41);
    assert_eq!(
        page["results"][0]["latest"],
        json!({"_extra.version": "v3"})
    );
    // Anonymous callers see nothing.
    assert_eq!(app.get("/projects").await.json()["total"], 0);
}

/// Olive's `/projects` entry of `proj-000` and her `/projects/proj-000/versions`.
async fn listed(app: &TestApp, olive: &str) -> (Value, Value) {
    let page = app.get_as("/projects", olive).await.json();
    let versions = app
        .get_as("/projects/proj-000/versions", olive)
        .await
        .json();
    (page["results"][0].clone(), versions)
}

#[tokio::test]
async fn an_expired_grant_hides_its_version_from_listings_and_latest_at_once() {
    let app = TestApp::local().await;
    seed(&app, 1).await;
    let storage = app.state.storage.as_ref();
    let expires = chrono::Utc::now() + chrono::Duration::seconds(4);
    put_json(
        storage,
        &keys::version_permissions("proj-000", "v2"),
        &json!({"scope": "version", "owners": ["walt"], "viewers": ["olive"],
                "expires": {"olive": expires.to_rfc3339()}}),
    )
    .await;
    app.index_all().await;
    let olive = app.user_token("olive", Role::Maintainer).await;
    let (listing, versions) = listed(&app, &olive).await;
    // (On a machine too loaded to get here before the expiry, only the second half holds.)
    if chrono::Utc::now() < expires {
        assert_eq!(
            listing["aggs"],
            json!([{"_extra.version": "v1"}, {"_extra.version": "v2"}, {"_extra.version": "v4"}])
        );
        assert_eq!(versions["latest"], json!({"_extra.version": "v2"}));
    }
    let wait = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + std::time::Duration::from_millis(500)).await;
    // Not re-indexed: the stored access data of each document is re-checked at request time.
    let (listing, versions) = listed(&app, &olive).await;
    assert_eq!(
        listing["aggs"],
        json!([{"_extra.version": "v1"}, {"_extra.version": "v4"}])
    );
    assert_eq!(listing["latest"], json!({"_extra.version": "v1"}));
    assert_eq!(versions["latest"], json!({"_extra.version": "v1"}));
    let latest = app
        .get_as("/projects/proj-000/version/latest", &olive)
        .await
        .json();
    assert_eq!(latest["version"], "v1");
}

#[tokio::test]
async fn read_routes_run_no_index_search_on_async_worker_threads() {
    let app = TestApp::local().await;
    seed(&app, 5).await;
    let olive = app.user_token("olive", Role::Maintainer).await;
    // A link to a hidden target is checked (a search) while presenting hits and files.
    let storage = app.state.storage.as_ref();
    put_json(
        storage,
        &keys::version_links("proj-001", "v1"),
        &json!({"alias.bin": {"type": "artifactdb", "id": "walts-own:card.json@v1"}}),
    )
    .await;
    app.index_all().await;
    let before = app.state.index.search_counters().on_async_workers();
    let total_before = searches(&app);
    let scroll = app.get_as("/search?q=*&size=2", &olive).await.json()["next"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        "/projects?size=50".to_owned(),
        "/projects/proj-001/versions".to_owned(),
        "/projects/proj-001/version/latest".to_owned(),
        "/projects/proj-001/version/latest/metadata".to_owned(),
        "/projects/proj-001/metadata".to_owned(),
        "/projects/proj-001/version/v1/files".to_owned(),
        format!("/files/{}/metadata", enc("proj-001:card.json@latest")),
        format!(
            "/files/{}/metadata?follow_link=true",
            enc("proj-001:card.json@v1")
        ),
        "/search?q=card&highlight=true&facets=_extra.version".to_owned(),
        "/search?q=*&latest=true".to_owned(),
        "/aggregate?field=_extra.project_id".to_owned(),
        scroll,
    ] {
        let response = app.get_as(&path, &olive).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{path}: {}",
            response.text()
        );
    }
    assert!(searches(&app) > total_before, "the routes did search");
    assert_eq!(
        app.state.index.search_counters().on_async_workers() - before,
        0,
        "an index search ran on an async worker thread"
    );
    // The hidden link target stays hidden in the file listing.
    let files = app
        .get_as("/projects/proj-001/version/v1/files", &olive)
        .await
        .json();
    let alias = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["path"] == "alias.bin")
        .cloned()
        .unwrap();
    assert_eq!(alias["link"]["id"], Value::Null, "{alias}");
}

#[tokio::test]
async fn an_index_search_on_an_async_worker_is_counted() {
    let app = TestApp::local().await;
    let before = app.state.index.search_counters().on_async_workers();
    let _ = app.state.index.searcher();
    assert_eq!(
        app.state.index.search_counters().on_async_workers(),
        before + 1
    );
    let index = app.state.index.clone();
    trove::index::off_runtime(move || {
        let _ = index.searcher();
    })
    .await
    .unwrap();
    assert_eq!(
        app.state.index.search_counters().on_async_workers(),
        before + 1
    );
}

/// Storage reads (`get`, `read_whole`) so far, from the instance's metrics.
fn storage_reads(app: &TestApp) -> u64 {
    app.state
        .metrics
        .render()
        .lines()
        .filter(|line| {
            line.starts_with("trove_storage_operations_total{operation=\"get\"")
                || line.starts_with("trove_storage_operations_total{operation=\"read_whole\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn a_file_listing_answers_sidecars_from_the_etag_checked_cache() {
    let app = TestApp::local().await;
    let owner = app.user_token("olive", Role::Maintainer).await;
    create_project(&app, &owner, "many-files", "private").await;
    create_version(&app, &owner, "many-files", "v1").await;
    for index in 0..20 {
        upload(
            &app,
            Some(&owner),
            "many-files",
            "v1",
            &format!("data/part-{index:02}.bin"),
            format!("part {index}").as_bytes(),
        )
        .await
        .assert_status(StatusCode::CREATED);
    }
    let path = "/projects/many-files/version/v1/files";
    let first = app.get_as(path, &owner).await.assert_status(StatusCode::OK);
    // Written as `serde_json` writes the object (the files' part comes from the kept
    // rendering, the rest is written around it).
    assert_eq!(serde_json::to_vec(&first.json()).unwrap(), first.bytes);
    assert!(app.state.listed_files.bytes() > 0, "the rendering is kept");
    let reads = storage_reads(&app);
    let second = app.get_as(path, &owner).await;
    assert_eq!(second.bytes, first.bytes, "the same answer");
    let per_listing = storage_reads(&app) - reads;
    assert!(
        per_listing < 10,
        "a repeated listing of 20 files read {per_listing} objects"
    );
    let files = first.json()["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 20);
    assert_eq!(
        files[3]["md5sum"],
        crate::common::artifacts::md5_hex(b"part 3")
    );

    // A re-uploaded file has a new sidecar (new ETag): read afresh.
    upload(
        &app,
        Some(&owner),
        "many-files",
        "v1",
        "data/part-03.bin",
        b"changed",
    )
    .await
    .assert_status(StatusCode::CREATED);
    let third = app.get_as(path, &owner).await.json();
    assert_eq!(
        third["files"][3]["md5sum"],
        crate::common::artifacts::md5_hex(b"changed")
    );
    assert_eq!(third["files"][3]["size"], 7);
    assert_eq!(third["files"][4], files[4]);
    assert_eq!(third["files"].as_array().unwrap().len(), 20);
    // Others still see nothing.
    let stranger = app.user_token("sam", Role::Maintainer).await;
    assert_eq!(
        app.get_as(path, &stranger).await.status,
        StatusCode::NOT_FOUND
    );
}

/// A sidecar record rewritten after the listing that named it is not the listed one: its
/// rendering is not kept under that listing (`file_listing`).
#[tokio::test]
async fn records_read_after_they_changed_are_not_taken_as_listed() {
    let app = TestApp::local().await;
    let owner = app.user_token("olive", Role::Maintainer).await;
    create_project(&app, &owner, "p", "private").await;
    create_version(&app, &owner, "p", "v1").await;
    for name in ["a.bin", "b.bin"] {
        upload(&app, Some(&owner), "p", "v1", name, b"first")
            .await
            .assert_status(StatusCode::CREATED);
    }
    let state = &app.state;
    let before = state
        .indexer
        .version_objects_for_display("p", "v1")
        .await
        .unwrap();
    upload(&app, Some(&owner), "p", "v1", "a.bin", b"second")
        .await
        .assert_status(StatusCode::CREATED);
    // The records as the old listing names them: a.bin's sidecar now has another ETag.
    let listing = state
        .indexer
        .listing_of("p", "v1", before.as_ref().clone())
        .await
        .unwrap();
    let (records, as_listed) = trove::catalog::files::file_records(state, &listing)
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    assert!(!as_listed, "a record read with another ETag than listed");
    // Listed afresh, every record is the listed one.
    let now = state
        .indexer
        .version_objects_for_display("p", "v1")
        .await
        .unwrap();
    let listing = state
        .indexer
        .listing_of("p", "v1", now.as_ref().clone())
        .await
        .unwrap();
    let (records, as_listed) = trove::catalog::files::file_records(state, &listing)
        .await
        .unwrap();
    assert!(as_listed);
    assert_eq!(
        records["a.bin"].md5sum,
        crate::common::artifacts::md5_hex(b"second")
    );
}
