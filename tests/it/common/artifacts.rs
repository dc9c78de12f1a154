//! Shared steps of artifact scenarios: requests with a token, projects, versions, uploads,
//! completion, jobs, search ids and storage keys.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use md5::Digest as _;
use serde_json::{Value, json};

use super::{TestApp, TestResponse};

pub fn md5_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(bytes))
}

pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(md5::Md5::digest(bytes))
}

/// An id (or any text) encoded for a URL path segment or query value (a space as `+`).
pub fn enc(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// As [`enc`], with a space as `%20` (`+` is a literal plus in a path, so a file name with a
/// space must be sent this way to reach the file).
pub fn enc_path(text: &str) -> String {
    enc(text).replace('+', "%20")
}

/// A request with an optional bearer token and a raw body and headers.
pub async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> TestResponse {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    app.send(builder.body(Body::from(body)).unwrap()).await
}

/// A JSON request with an optional bearer token.
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> TestResponse {
    match (token, body) {
        (Some(token), body) => app.bearer(method, path, token, body).await,
        (None, Some(body)) => app.json(method, path, body).await,
        (None, None) => app.request(method, path, Body::empty()).await,
    }
}

pub async fn create_project(app: &TestApp, token: &str, project: &str, visibility: &str) {
    app.post_json(
        "/projects",
        token,
        &json!({"project_id": project, "title": "T", "type": "MODEL", "visibility": visibility}),
    )
    .await
    .assert_status(StatusCode::CREATED);
}

pub async fn create_version(app: &TestApp, token: &str, project: &str, version: &str) {
    app.post_json(
        &format!("/projects/{project}/versions"),
        token,
        &json!({"version": version, "changelog": "first"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
}

pub async fn upload(
    app: &TestApp,
    token: Option<&str>,
    project: &str,
    version: &str,
    path: &str,
    body: &[u8],
) -> TestResponse {
    let md5 = md5_b64(body);
    raw(
        app,
        Method::PUT,
        &format!("/projects/{project}/version/{version}/files/{path}"),
        token,
        &[("content-md5", md5.as_str())],
        body.to_vec(),
    )
    .await
}

pub async fn wait_job(app: &TestApp, token: &str, answer: &TestResponse) -> Value {
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let path = answer.json()["path"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        let job = app.get_as(&path, token).await.json();
        if job["status"] == "SUCCESS" || job["status"] == "FAILURE" {
            assert_eq!(job["status"], "SUCCESS", "{job}");
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job did not finish");
}

/// Leaves `project` with no writers and no viewers (its owners only) and waits for the
/// re-index the change starts.
pub async fn grant_nobody(app: &TestApp, token: &str, project: &str) {
    let removed = app
        .put_json(
            &format!("/projects/{project}/permissions"),
            token,
            &json!({"writers": [], "viewers": []}),
        )
        .await;
    wait_job(app, token, &removed).await;
}

pub async fn complete(
    app: &TestApp,
    token: &str,
    project: &str,
    version: &str,
    body: Option<&Value>,
) {
    let answer = call(
        app,
        Method::PUT,
        &format!("/projects/{project}/version/{version}/complete"),
        Some(token),
        body,
    )
    .await;
    wait_job(app, token, &answer).await;
}

/// Project `project` (`visibility`) with one completed version `v1` holding the file `a.bin`.
pub async fn project_with_file(
    app: &TestApp,
    token: &str,
    project: &str,
    visibility: &str,
    bytes: &[u8],
) {
    create_project(app, token, project, visibility).await;
    create_version(app, token, project, "v1").await;
    upload(app, Some(token), project, "v1", "a.bin", bytes).await;
    complete(app, token, project, "v1", None).await;
}

/// The JSON answer of `GET path` as `token` (whatever its status).
pub async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    app.get_as(path, token).await.json()
}

/// The `_extra.id` of every hit of `GET /search?q=<query>` (one default-sized page).
pub async fn search_ids(app: &TestApp, token: Option<&str>, query: &str) -> Vec<String> {
    let path = format!("/search?q={}", enc(query));
    search_page(app, token, &path).await["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["_extra"]["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `_extra.id` of every hit of a 500-hit page of `GET /search?q=<query>`, as a set; the
/// page's `count` is checked against its hits.
pub async fn search_id_set(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
) -> std::collections::BTreeSet<String> {
    search_id_set_with(app, token, query, "").await
}

/// [`search_id_set`] with more parameters (`&kind=all`).
pub async fn search_id_set_with(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    parameters: &str,
) -> std::collections::BTreeSet<String> {
    let path = format!("/search?q={}&size=500{parameters}", enc(query));
    let body = search_page(app, token, &path).await;
    let hits = body["results"].as_array().unwrap();
    assert_eq!(body["count"], hits.len());
    hits.iter()
        .map(|hit| hit["_extra"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The body of a search page, asserted `200`.
async fn search_page(app: &TestApp, token: Option<&str>, path: &str) -> Value {
    let response = call(app, Method::GET, path, token, None).await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{path}: {}",
        response.text()
    );
    response.json()
}

/// A credential where the empty string means anonymous, as a token for [`call`].
pub fn token_of(credential: &str) -> Option<&str> {
    (!credential.is_empty()).then_some(credential)
}

pub async fn storage_keys(app: &TestApp, prefix: &str) -> Vec<String> {
    app.state
        .storage
        .list_all(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|object| object.key)
        .collect()
}

/// The `_extra.project_id` of every hit of a search page.
pub fn hit_project_ids(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|hit| hit["_extra"]["project_id"].as_str().map(str::to_owned))
        .collect()
}
