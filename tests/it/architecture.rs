//! The import rules of `docs/ARCHITECTURE.md`, checked on the source: a change that breaks a
//! layer boundary fails here, not in review.
//!
//! - Nothing outside `src/api/` and `src/cli/` names the `api` module (`jobs` call `catalog`,
//!   never `api`; the `ui` reaches the API router only through the state it is given).
//! - Only `src/api/`, `src/ui/` and `src/error.rs` use axum.
//! - `src/catalog/` imports no floor above it (`api`, `ui`, `cli`, the scheduled jobs and
//!   the feed follower of `jobs`); it may use the job registry (`jobs::{JobKind, JobRegistry}`) to
//!   start a re-index job.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `(path relative to src/, line number, line)` of every code line (comments skipped) of
/// the crate's sources that contains one of `needles`.
fn code_lines_naming(needles: &[&str]) -> Vec<(String, usize, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "the sources were not found under {src:?}");
    let mut hits = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).expect("read source");
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            if needles.iter().any(|needle| line.contains(needle)) {
                hits.push((relative.clone(), number + 1, line.trim().to_owned()));
            }
        }
    }
    hits
}

#[test]
fn nothing_outside_api_and_cli_imports_the_api() {
    let offenders: Vec<_> =
        code_lines_naming(&["crate::api", "super::api", "trove::api", "use api::"])
            .into_iter()
            .filter(|(path, _, _)| !path.starts_with("api/") && !path.starts_with("cli/"))
            .collect();
    assert!(
        offenders.is_empty(),
        "only api/ and cli/ may import the api module: {offenders:#?}"
    );
}

#[test]
fn only_api_ui_and_error_use_axum() {
    let offenders: Vec<_> = code_lines_naming(&["axum::", "use axum"])
        .into_iter()
        .filter(|(path, _, _)| {
            !path.starts_with("api/") && !path.starts_with("ui/") && path != "error.rs"
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "only api/, ui/ and error.rs may use axum: {offenders:#?}"
    );
}

#[test]
fn the_catalog_imports_no_floor_above_it() {
    let offenders: Vec<_> = code_lines_naming(&[
        "crate::api",
        "crate::ui",
        "crate::cli",
        "crate::jobs::schedule",
        "crate::jobs::follow",
    ])
    .into_iter()
    .filter(|(path, _, _)| path.starts_with("catalog/"))
    .collect();
    assert!(
        offenders.is_empty(),
        "catalog/ may not import api, ui, cli or the scheduled jobs: {offenders:#?}"
    );
}

/// Longest handler (any top-level function of `src/api/`, from its `fn` line to its closing
/// brace) and longest file of `src/api/` the rule allows.
const MAX_API_FUNCTION_LINES: usize = 40;
const MAX_API_FILE_LINES: usize = 400;

/// The functions and files of `src/api/` above the limits when the rule was written, each
/// with the length it may not exceed: the list may only shrink (move the workflow into
/// `catalog/`, then delete its line here). Empty since the route table became one `routes()`
/// per resource module.
const API_LENGTH_EXCEPTIONS: &[(&str, usize)] = &[];

/// `(name, lines)` of every file of `src/api/` and of every top-level function in it
/// (`file.rs::function`).
fn api_lengths() -> Vec<(String, usize)> {
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut files = Vec::new();
    rust_files(&api, &mut files);
    assert!(
        files.len() > 10,
        "the api sources were not found under {api:?}"
    );
    let mut lengths = Vec::new();
    for file in files {
        let name = file
            .strip_prefix(&api)
            .expect("under src/api")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).expect("read source");
        let lines: Vec<&str> = text.lines().collect();
        lengths.push((name.clone(), lines.len()));
        for (start, line) in lines.iter().enumerate() {
            let signature = line
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub(super) ")
                .trim_start_matches("async ");
            let Some(rest) = signature.strip_prefix("fn ") else {
                continue;
            };
            let function: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let end = lines[start..]
                .iter()
                .position(|line| *line == "}")
                .map_or(lines.len(), |offset| start + offset);
            lengths.push((format!("{name}::{function}"), end - start + 1));
        }
    }
    lengths
}

#[test]
fn api_handlers_and_files_stay_short() {
    let offenders: Vec<_> = api_lengths()
        .into_iter()
        .filter(|(name, lines)| {
            let limit = if name.contains("::") {
                MAX_API_FUNCTION_LINES
            } else {
                MAX_API_FILE_LINES
            };
            let allowed = API_LENGTH_EXCEPTIONS
                .iter()
                .find(|(exception, _)| exception == name)
                .map_or(limit, |(_, allowed)| (*allowed).max(limit));
            *lines > allowed
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "api/ handlers are at most {MAX_API_FUNCTION_LINES} lines and its files at most \
         {MAX_API_FILE_LINES} (or their recorded length in API_LENGTH_EXCEPTIONS, which may \
         only shrink): {offenders:#?}"
    );
}

#[test]
fn the_api_length_exceptions_name_existing_code() {
    let lengths = api_lengths();
    let stale: Vec<_> = API_LENGTH_EXCEPTIONS
        .iter()
        .filter(|(exception, allowed)| {
            // An exception whose code is gone, or that now fits the rule, must be deleted
            // (or lowered), so the list only ever shrinks.
            !lengths
                .iter()
                .any(|(name, lines)| name == exception && lines == allowed)
        })
        .collect();
    assert!(
        stale.is_empty(),
        "delete or lower these exceptions to the code's current length: {stale:#?}"
    );
}

/// Writes `body` as-is at `key` (a record damaged outside Trove).
async fn put_raw(app: &crate::common::TestApp, key: &str, body: &str) {
    use trove::storage::ObjectStoreExt as _;
    app.state
        .storage
        .put_bytes(
            key,
            bytes::Bytes::from(body.to_owned()),
            trove::storage::PutOptions::default(),
        )
        .await
        .expect("put");
}

/// The one target loader gives one answer for a damaged project record: `500 internal`, on a
/// route reaching the project and on an API key scoped to it alike (scoping answered `404`
/// before the loaders were one).
#[tokio::test]
async fn a_corrupt_project_record_answers_500_internal_wherever_its_target_is_loaded() {
    use axum::http::{Method, StatusCode};
    use serde_json::json;
    use trove::permissions::Role;
    use trove::storage::keys;

    let app = crate::common::TestApp::local().await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    put_raw(
        &app,
        &keys::project_record("bert"),
        &json!({"project_id": "bert", "title": "bert", "type": "MODEL", "state": "active",
            "created_at": "2026-01-01T00:00:00Z", "created_by": "alice"})
        .to_string(),
    )
    .await;
    put_raw(
        &app,
        &keys::project_permissions("bert"),
        &json!({"scope": "project", "owners": ["alice"]}).to_string(),
    )
    .await;
    let scope = json!({"name": "ci-bot", "scopes": [{"project": "bert", "access": "read"}],
        "expires_in_days": 1});
    let read = app
        .bearer(Method::GET, "/projects/bert", &alice, None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());

    put_raw(&app, &keys::project_record("bert"), "{not json").await;
    let read = app
        .bearer(Method::GET, "/projects/bert", &alice, None)
        .await;
    assert_eq!(read.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(read.json()["code"], "internal");
    let key = app
        .bearer(Method::POST, "/api-keys", &alice, Some(&scope))
        .await;
    assert_eq!(key.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(key.json()["code"], "internal");
}
