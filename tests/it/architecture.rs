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
    use axum::http::StatusCode;
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
    app.get_as("/projects/bert", &alice)
        .await
        .assert_status(StatusCode::OK);

    put_raw(&app, &keys::project_record("bert"), "{not json").await;
    let read = app
        .get_as("/projects/bert", &alice)
        .await
        .assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(read.json()["code"], "internal");
    let key = app
        .post_json("/api-keys", &alice, &scope)
        .await
        .assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(key.json()["code"], "internal");
}

/// Longest scenario test (a `#[test]`/`#[tokio::test]` function, or the body a
/// `both_backends!` invocation runs, from its `fn` line to its closing brace) the rule allows:
/// a longer one is split into named steps or a table of cases.
const MAX_TEST_FUNCTION_LINES: usize = 120;

/// Where each brace of code (not of a string, char literal or comment) of `text` stands:
/// `(line index, true for '{')`.
fn code_braces(text: &str) -> Vec<(usize, bool)> {
    let chars: Vec<char> = text.chars().collect();
    let mut braces = Vec::new();
    let mut line = 0;
    let mut index = 0;
    // Moves past `count` characters, counting the line breaks among them.
    let advance = |index: &mut usize, line: &mut usize, count: usize| {
        for offset in 0..count {
            if chars.get(*index + offset) == Some(&'\n') {
                *line += 1;
            }
        }
        *index += count;
    };
    while index < chars.len() {
        let current = chars[index];
        let next = chars.get(index + 1).copied();
        let previous_is_ident =
            index > 0 && (chars[index - 1].is_alphanumeric() || chars[index - 1] == '_');
        match current {
            '/' if next == Some('/') => {
                while index < chars.len() && chars[index] != '\n' {
                    index += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                loop {
                    if index >= chars.len() {
                        break;
                    }
                    if chars[index] == '/' && chars.get(index + 1) == Some(&'*') {
                        depth += 1;
                        advance(&mut index, &mut line, 2);
                    } else if chars[index] == '*' && chars.get(index + 1) == Some(&'/') {
                        depth -= 1;
                        advance(&mut index, &mut line, 2);
                        if depth == 0 {
                            break;
                        }
                    } else {
                        advance(&mut index, &mut line, 1);
                    }
                }
            }
            'r' if !previous_is_ident
                || (index > 1
                    && chars[index - 1] == 'b'
                    && !chars[index - 2].is_alphanumeric()) =>
            {
                // A raw string `r"…"` or `r#"…"#` (also `br…`), or just an identifier.
                let hashes = chars[index + 1..].iter().take_while(|c| **c == '#').count();
                if chars.get(index + 1 + hashes) == Some(&'"') {
                    let closing: String = std::iter::once('"')
                        .chain(std::iter::repeat_n('#', hashes))
                        .collect();
                    advance(&mut index, &mut line, 2 + hashes);
                    while index < chars.len()
                        && !chars[index..]
                            .iter()
                            .take(closing.len())
                            .copied()
                            .eq(closing.chars())
                    {
                        advance(&mut index, &mut line, 1);
                    }
                    advance(&mut index, &mut line, closing.len());
                } else {
                    index += 1;
                }
            }
            '"' => {
                advance(&mut index, &mut line, 1);
                while index < chars.len() && chars[index] != '"' {
                    let step = if chars[index] == '\\' { 2 } else { 1 };
                    advance(&mut index, &mut line, step);
                }
                index += 1;
            }
            '\'' => {
                // A char literal (`'{'`, `'\''`, `'\u{7b}'`), or a lifetime (`'a`) left as is.
                if next == Some('\\') {
                    index += 2;
                    while index < chars.len() && chars[index] != '\'' {
                        index += 1;
                    }
                    index += 1;
                } else if chars.get(index + 2) == Some(&'\'') {
                    index += 3;
                } else {
                    index += 1;
                }
            }
            '{' | '}' => {
                braces.push((line, current == '{'));
                index += 1;
            }
            '\n' => {
                line += 1;
                index += 1;
            }
            _ => index += 1,
        }
    }
    braces
}

/// The name a line declares as a function (`fn name`, after `pub`/`async`), if any.
fn declared_function(line: &str) -> Option<String> {
    let signature = line
        .trim_start()
        .trim_start_matches("pub ")
        .trim_start_matches("pub(crate) ")
        .trim_start_matches("pub(super) ")
        .trim_start_matches("async ");
    let rest = signature.strip_prefix("fn ")?;
    Some(
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect(),
    )
}

/// `(file::function, lines)` of every scenario test of `tests/it/`: a function under a
/// `#[test]` or `#[tokio::test]` attribute, or one a `both_backends!(name)` of its file runs;
/// its length runs from the `fn` line to the brace closing its body.
fn test_lengths() -> Vec<(String, usize)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 20, "the tests were not found under {root:?}");
    let mut lengths = Vec::new();
    for file in files {
        let name = file
            .strip_prefix(&root)
            .expect("under tests/it")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).expect("read test source");
        let lines: Vec<&str> = text.lines().collect();
        let run_on_both_backends: Vec<String> = lines
            .iter()
            .filter_map(|line| {
                let rest = line.trim().strip_prefix("both_backends!(")?;
                Some(rest.trim_end_matches(");").trim().to_owned())
            })
            .collect();
        let braces = code_braces(&text);
        let mut under_test_attribute = false;
        for (start, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("#[test]") || trimmed.starts_with("#[tokio::test") {
                under_test_attribute = true;
                continue;
            }
            let Some(function) = declared_function(line) else {
                continue;
            };
            let is_test = std::mem::take(&mut under_test_attribute)
                || run_on_both_backends.contains(&function);
            if !is_test {
                continue;
            }
            let mut depth = 0_usize;
            let mut end = None;
            for (brace_line, opening) in braces.iter().skip_while(|(at, _)| *at < start) {
                if *opening {
                    depth += 1;
                } else {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = Some(*brace_line);
                        break;
                    }
                }
            }
            let end = end.unwrap_or_else(|| panic!("{name}::{function} has no closing brace"));
            lengths.push((format!("{name}::{function}"), end - start + 1));
        }
    }
    lengths
}

#[test]
fn scenario_tests_stay_short() {
    let lengths = test_lengths();
    assert!(
        lengths.len() > 200,
        "too few tests found ({}): is the scanner broken?",
        lengths.len()
    );
    let offenders: Vec<_> = lengths
        .into_iter()
        .filter(|(_, lines)| *lines > MAX_TEST_FUNCTION_LINES)
        .collect();
    assert!(
        offenders.is_empty(),
        "a scenario test is at most {MAX_TEST_FUNCTION_LINES} lines: split it into named steps \
         (helpers of its file, or of tests/it/common/ when several files share them) or a table \
         of cases: {offenders:#?}"
    );
}

#[test]
fn the_test_scanner_counts_only_code_braces() {
    let text = "fn f() {\n    let a = \"{\";\n    let b = r#\"}\"#;\n    // }\n    /* { */\n    \
                let c = '{';\n    let d: &'static str = \"\\\"}\";\n    if a.is_empty() { g() }\n}\n";
    let braces = code_braces(text);
    assert_eq!(
        braces,
        vec![(0, true), (7, true), (7, false), (8, false)],
        "{text}"
    );
}
