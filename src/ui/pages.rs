//! The page handlers: each extracts the browser's session, calls the API in-process as that
//! session, and renders what it answers (or the error page with the API's status).

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::UiState;
use super::forward::{ApiAnswer, csrf_refused};
use super::session::{Browser, LOGIN_COOKIE, SESSION_COOKIE, set_cookie};

/// Files shown per page of a version.
const FILES_PER_PAGE: usize = 100;
/// Search hits per page.
const HITS_PER_PAGE: usize = 20;
/// The facets the search page asks for, with their query-string names and labels.
const FACETS: &[(&str, &str, &str)] = &[
    ("_extra.type", "type", "Type"),
    ("_extra.namespace", "namespace", "Namespace"),
    ("_extra.tags", "tag", "Tags"),
    ("_extra.project_id", "project", "Project"),
];

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
#[must_use]
pub fn segment(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A query string from pairs (form-encoded).
fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key, value);
    }
    serializer.finish()
}

/// What every page shows around its content: who is signed in, the CSRF token.
#[derive(Debug, Serialize)]
pub(super) struct Frame {
    user: Option<Value>,
    csrf: String,
    is_admin: bool,
}

/// Signs the browser out: the session cookie deleted, back to the sign-in page.
fn signed_out(browser: &Browser, next: &str) -> Response {
    let location = format!("/ui/login?{}", query_string([("next", next)]));
    (
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, "", 0, browser.https),
        )],
        Redirect::to(&location),
    )
        .into_response()
}

impl UiState {
    /// The frame of a page; a stale session (expired, revoked) signs the browser out.
    pub(super) async fn frame(&self, browser: &Browser, here: &str) -> Result<Frame, Response> {
        let Some(_) = &browser.token else {
            return Ok(Frame {
                user: None,
                csrf: String::new(),
                is_admin: false,
            });
        };
        let me = self.get_json(browser, "/auth/me").await;
        if me.status == StatusCode::UNAUTHORIZED {
            return Err(signed_out(browser, here));
        }
        if !me.ok() {
            return Err(self.error_page(browser, None, &me));
        }
        Ok(Frame {
            is_admin: me.body["role"] == "admin",
            user: Some(me.body),
            csrf: self.session_csrf(browser),
        })
    }

    /// The error page for an API answer, with the API's status: `404` says only that there
    /// is nothing here the caller may see.
    pub(super) fn error_page(
        &self,
        browser: &Browser,
        frame: Option<&Frame>,
        answer: &ApiAnswer,
    ) -> Response {
        let (title, message) = match answer.status {
            StatusCode::NOT_FOUND => (
                "Not found",
                "There is nothing here, or you may not see it.".to_owned(),
            ),
            StatusCode::UNAUTHORIZED => ("Sign in needed", "Sign in to see this page.".to_owned()),
            StatusCode::FORBIDDEN => ("Not allowed", answer.reason().to_owned()),
            StatusCode::TOO_MANY_REQUESTS => (
                "Too many requests",
                "Too many attempts: wait a moment and try again.".to_owned(),
            ),
            status if status.is_client_error() => ("Cannot do that", answer.reason().to_owned()),
            _ => (
                "Something went wrong",
                "The server could not answer. Try again later.".to_owned(),
            ),
        };
        let anonymous = Frame {
            user: None,
            csrf: String::new(),
            is_admin: false,
        };
        let _ = browser;
        self.render(
            answer.status,
            "error.html",
            serde_json::json!({ "frame": frame.unwrap_or(&anonymous), "title": title, "message": message, "status": answer.status.as_u16(), "code": answer.code() }),
        )
    }
}

/// `GET /`: browsers (asking for HTML) go to `/ui/`; API clients get the instance's JSON.
pub async fn get_root(State(state): State<UiState>, request: Request) -> Response {
    let wants_html = request.method() == Method::GET
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        return Redirect::to("/ui/").into_response();
    }
    let (parts, body) = request.into_parts();
    let Ok(response) = state
        .inner
        .api
        .clone()
        .oneshot(super::forward::fresh(parts, body))
        .await;
    response
}

/// `GET /ui`: to `/ui/`.
pub async fn redirect_to_ui() -> Redirect {
    Redirect::permanent("/ui/")
}

/// `GET /ui/`: the search page.
pub async fn get_ui_home() -> Redirect {
    Redirect::to("/ui/search")
}

/// Unknown pages under `/ui/`.
pub async fn ui_not_found(State(state): State<UiState>, browser: Browser) -> Response {
    let frame = match state.frame(&browser, "/ui/").await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    state.error_page(&browser, Some(&frame), &not_found())
}

fn not_found() -> ApiAnswer {
    ApiAnswer {
        status: StatusCode::NOT_FOUND,
        headers: HeaderMap::new(),
        body: json!({"status": "error", "reason": "not found", "code": "not_found"}),
    }
}

// ------------------------------------------------------------------------- sign-in

/// `GET /ui/login` query.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only our own pages are followed after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with("/ui/") && !next.starts_with("//") && !next.contains('\\') =>
        {
            next.to_owned()
        }
        _ => "/ui/search".to_owned(),
    }
}

fn new_nonce() -> String {
    let mut bytes = [0_u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

/// `GET /ui/login`: the sign-in form, bound to a fresh pre-login nonce.
pub async fn get_login(
    State(state): State<UiState>,
    browser: Browser,
    Query(query): Query<NextQuery>,
) -> Response {
    login_form(
        &state,
        &browser,
        query.next.as_deref(),
        None,
        StatusCode::OK,
    )
}

fn login_form(
    state: &UiState,
    browser: &Browser,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let nonce = new_nonce();
    let page = state.render(
        status,
        "login.html",
        serde_json::json!({ "frame": Frame { user: None, csrf: String::new(), is_admin: false }, "login_csrf": state.login_csrf(&nonce), "next": safe_next(next), "error": error }),
    );
    (
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &nonce, 3600, browser.https),
        )],
        page,
    )
        .into_response()
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// `POST /ui/login`: signs in through `POST /auth/login` (same accounts, rate limits and
/// audit) and keeps the token in the session cookie.
pub async fn post_login(
    State(state): State<UiState>,
    browser: Browser,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if !state.login_csrf_valid(&browser, &form.csrf) {
        return login_form(
            &state,
            &browser,
            form.next.as_deref(),
            Some("The form expired: please sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    let answer = state
        .call(
            &browser,
            Method::POST,
            "/auth/login",
            Some(&json!({"username": form.username, "password": form.password})),
        )
        .await;
    if !answer.ok() {
        let message = match answer.status {
            StatusCode::UNAUTHORIZED => "Wrong username or password.".to_owned(),
            StatusCode::TOO_MANY_REQUESTS => {
                "Too many attempts: wait a moment and try again.".to_owned()
            }
            _ => answer.reason().to_owned(),
        };
        return login_form(
            &state,
            &browser,
            form.next.as_deref(),
            Some(&message),
            answer.status,
        );
    }
    let token = answer.body["access_token"].as_str().unwrap_or_default();
    let lifetime = answer.body["expires_in"].as_u64().unwrap_or(3600);
    let mut response = Redirect::to(&safe_next(form.next.as_deref())).into_response();
    let headers = response.headers_mut();
    for cookie in [
        set_cookie(SESSION_COOKIE, token, lifetime, browser.https),
        set_cookie(LOGIN_COOKIE, "", 0, browser.https),
    ] {
        if let Ok(value) = cookie.parse() {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A form that only carries the CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

impl CsrfForm {
    /// The token sent.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.csrf
    }
}

/// `POST /ui/logout`: revokes the token (`POST /auth/logout`) and deletes the cookie.
pub async fn post_logout(
    State(state): State<UiState>,
    browser: Browser,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let _ = state
        .call(&browser, Method::POST, "/auth/logout", None)
        .await;
    (
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, "", 0, browser.https),
        )],
        Redirect::to("/ui/search"),
    )
        .into_response()
}

/// `GET /ui/account/password`: the change-password form.
pub async fn get_password(State(state): State<UiState>, browser: Browser) -> Response {
    if browser.token.is_none() {
        return signed_out(&browser, "/ui/account/password");
    }
    let frame = match state.frame(&browser, "/ui/account/password").await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    state.render(
        StatusCode::OK,
        "password.html",
        serde_json::json!({ "frame": frame }),
    )
}

/// The change-password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    old_password: String,
    new_password: String,
}

/// `POST /ui/account/password`: `PUT /auth/password`; the new token replaces the session's
/// (every earlier token stops working).
pub async fn post_password(
    State(state): State<UiState>,
    browser: Browser,
    axum::Form(form): axum::Form<PasswordForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let frame = match state.frame(&browser, "/ui/account/password").await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let answer = state
        .call(
            &browser,
            Method::PUT,
            "/auth/password",
            Some(&json!({"old_password": form.old_password, "new_password": form.new_password})),
        )
        .await;
    if answer.ok() {
        let token = answer.body["access_token"].as_str().unwrap_or_default();
        let lifetime = answer.body["expires_in"].as_u64().unwrap_or(3600);
        let renewed = Browser {
            token: Some(token.to_owned()),
            ..browser.clone()
        };
        let frame = Frame {
            csrf: state.session_csrf(&renewed),
            ..frame
        };
        let page = state.render(
            StatusCode::OK,
            "password.html",
            serde_json::json!({ "frame": frame, "done": true }),
        );
        return (
            [(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, token, lifetime, browser.https),
            )],
            page,
        )
            .into_response();
    }
    let (old_error, new_error, error) = match answer.status {
        StatusCode::UNAUTHORIZED => (Some("The current password is wrong."), None, None),
        StatusCode::UNPROCESSABLE_ENTITY => (None, Some(answer.reason()), None),
        _ => (None, None, Some(answer.reason())),
    };
    state.render(
        answer.status,
        "password.html",
        serde_json::json!({ "frame": frame, "old_error": old_error, "new_error": new_error, "error": error }),
    )
}

// -------------------------------------------------------------------------- search

/// `GET /ui/search` query: the box, the facet filters, the kind, the page cursor.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default, rename = "type")]
    project_type: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

impl SearchQuery {
    fn filter(&self, name: &str) -> Option<&str> {
        match name {
            "type" => self.project_type.as_deref(),
            "namespace" => self.namespace.as_deref(),
            "tag" => self.tag.as_deref(),
            "project" => self.project.as_deref(),
            _ => None,
        }
        .filter(|value| !value.is_empty())
    }

    fn kind(&self) -> &str {
        match self.kind.as_deref() {
            Some("file") => "file",
            Some("project") => "project",
            _ => "all",
        }
    }

    /// The page's URL with one filter changed (`None` removes it), without the cursor.
    fn url_with(&self, name: &str, value: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = vec![("q", self.q.as_str())];
        if self.kind() != "all" || name == "kind" {
            let kind = if name == "kind" {
                value.unwrap_or("all")
            } else {
                self.kind()
            };
            pairs.push(("kind", kind));
        }
        for (_, key, _) in FACETS {
            let current = if *key == name {
                value
            } else {
                self.filter(key)
            };
            if let Some(current) = current {
                pairs.push((key, current));
            }
        }
        format!("/ui/search?{}", query_string(pairs))
    }

    /// The API query: the box (`*` when empty) AND each facet filter as a quoted term.
    fn api_query(&self) -> String {
        let mut parts = Vec::new();
        let text = self.q.trim();
        if !text.is_empty() && text != "*" {
            parts.push(format!("({text})"));
        }
        for (field, key, _) in FACETS {
            if let Some(value) = self.filter(key) {
                // Quotes and backslashes cannot be expressed in a quoted term: such a
                // filter matches nothing rather than changing the query's meaning.
                let value: String = value.chars().filter(|c| *c != '"' && *c != '\\').collect();
                parts.push(format!("{field}:\"{value}\""));
            }
        }
        if parts.is_empty() {
            "*".to_owned()
        } else {
            parts.join(" AND ")
        }
    }
}

/// A highlight snippet split into escaped-by-the-template pieces: the API marks matches with
/// `<em>` and HTML-escapes the rest; we undo that and let the template escape again.
#[derive(Debug, Serialize)]
struct Piece {
    text: String,
    mark: bool,
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn highlight_pieces(snippet: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = snippet;
    while let Some(start) = rest.find("<em>") {
        if start > 0 {
            pieces.push(Piece {
                text: unescape(&rest[..start]),
                mark: false,
            });
        }
        let after = &rest[start + 4..];
        let end = after.find("</em>").unwrap_or(after.len());
        pieces.push(Piece {
            text: unescape(&after[..end]),
            mark: true,
        });
        rest = after.get(end + 5..).unwrap_or("");
    }
    if !rest.is_empty() {
        pieces.push(Piece {
            text: unescape(rest),
            mark: false,
        });
    }
    pieces
}

/// One hit as the search page shows it.
#[derive(Debug, Serialize)]
struct Hit {
    kind: String,
    project_id: String,
    version: String,
    path: String,
    title: String,
    project_type: String,
    highlight: Vec<Piece>,
    project_url: String,
    version_url: String,
    download_url: String,
}

fn hit_of(document: &Value) -> Hit {
    let extra = &document["_extra"];
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let project_id = text(&extra["project_id"]);
    let version = text(&extra["version"]);
    let id = text(&extra["id"]);
    let kind = text(&extra["kind"]);
    let title = match text(&extra["title"]) {
        title if !title.is_empty() => title,
        _ => text(&document["title"]),
    };
    Hit {
        project_url: format!("/ui/projects/{}", segment(&project_id)),
        version_url: if version.is_empty() {
            String::new()
        } else {
            format!(
                "/ui/projects/{}/versions/{}",
                segment(&project_id),
                segment(&version)
            )
        },
        download_url: if kind == "project" || id.is_empty() {
            String::new()
        } else {
            format!("/ui/download/{}", segment(&id))
        },
        highlight: highlight_pieces(extra["highlight"].as_str().unwrap_or_default()),
        path: text(&extra["path"]),
        project_type: text(&extra["type"]),
        kind,
        project_id,
        version,
        title,
    }
}

/// One facet value with the link that applies it.
#[derive(Debug, Serialize)]
struct FacetValue {
    value: String,
    count: u64,
    url: String,
    active: bool,
}

/// `GET /ui/search?q=&kind=&type=&namespace=&tag=&project=&cursor=`: the authorized search
/// of the API, with facets, highlights and cursor paging.
pub async fn get_search(
    State(state): State<UiState>,
    browser: Browser,
    Query(query): Query<SearchQuery>,
) -> Response {
    let here = query.url_with("", None);
    let frame = match state.frame(&browser, &here).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let facet_fields = FACETS
        .iter()
        .map(|(field, ..)| *field)
        .collect::<Vec<_>>()
        .join(",");
    let size = HITS_PER_PAGE.to_string();
    let api_query = query.api_query();
    let search_path = |size: &str| {
        format!(
            "/search?{}",
            query_string([
                ("q", api_query.as_str()),
                ("kind", query.kind()),
                ("highlight", "true"),
                ("prefix", "true"),
                ("facets", facet_fields.as_str()),
                ("size", size),
            ])
        )
    };
    let cursor = query.cursor.as_deref().filter(|cursor| !cursor.is_empty());
    let (page, facets_answer) = match cursor {
        Some(cursor) => {
            let page = state
                .get_json(&browser, &format!("/scroll/{}", segment(cursor)))
                .await;
            let facets = state.get_json(&browser, &search_path("1")).await;
            (page, facets)
        }
        None => {
            let page = state.get_json(&browser, &search_path(&size)).await;
            let facets = ApiAnswer {
                status: page.status,
                headers: HeaderMap::new(),
                body: json!({"facets": page.body["facets"].clone()}),
            };
            (page, facets)
        }
    };
    let error = (!page.ok()).then(|| page.reason().to_owned());
    if !page.ok() && !page.status.is_client_error() {
        return state.error_page(&browser, Some(&frame), &page);
    }
    let hits: Vec<Hit> = page.body["results"]
        .as_array()
        .map(|results| results.iter().map(hit_of).collect())
        .unwrap_or_default();
    let facets: Vec<Value> = FACETS
        .iter()
        .map(|(field, key, label)| {
            let values: Vec<FacetValue> = facets_answer.body["facets"][field]
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .map(|entry| {
                            let value = entry["value"].as_str().unwrap_or_default().to_owned();
                            let active = query.filter(key) == Some(value.as_str());
                            FacetValue {
                                url: query.url_with(key, (!active).then_some(value.as_str())),
                                count: entry["count"].as_u64().unwrap_or_default(),
                                active,
                                value,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({"key": key, "label": label, "values": values})
        })
        .collect();
    let next_url = page.body["next"]
        .as_str()
        .and_then(|next| next.strip_prefix("/scroll/"))
        .map(|cursor| {
            format!(
                "{}&{}",
                query.url_with("", None),
                query_string([("cursor", cursor)])
            )
        });
    let kinds: Vec<Value> = [("all", "Everything"), ("project", "Projects"), ("file", "Files")]
        .iter()
        .map(|(kind, label)| {
            json!({"label": label, "url": query.url_with("kind", Some(kind)), "active": query.kind() == *kind})
        })
        .collect();
    let active_filters: Vec<Value> = FACETS
        .iter()
        .filter_map(|(_, key, label)| {
            query.filter(key).map(|value| {
                json!({"key": key, "label": label, "value": value, "remove_url": query.url_with(key, None)})
            })
        })
        .collect();
    let status = if page.ok() {
        StatusCode::OK
    } else {
        page.status
    };
    state.render(
        status,
        "search.html",
        serde_json::json!({ "frame": frame, "q": query.q, "kind": query.kind(), "kinds": kinds, "hits": hits, "facets": facets, "active_filters": active_filters, "total": page.body["total"].as_u64().unwrap_or_default(), "next_url": next_url, "error": error, "paged": cursor.is_some() }),
    )
}

// ------------------------------------------------------------------------ projects

/// A version row of the project page.
#[derive(Debug, Serialize)]
struct VersionRow {
    version: String,
    url: String,
    revision: String,
    numerical_revision: u64,
    status: String,
    stable: bool,
    latest: bool,
    state: String,
    changelog: String,
    created_at: String,
    created_by: String,
}

/// `GET /ui/projects/{project}`: the record, its versions (stable marks, the latest) and
/// their changelogs.
pub async fn get_project(
    State(state): State<UiState>,
    browser: Browser,
    Path(project): Path<String>,
) -> Response {
    let base = format!("/projects/{}", segment(&project));
    let here = format!("/ui{base}");
    let frame = match state.frame(&browser, &here).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let versions_path = format!("{base}/versions");
    let (record, versions) = tokio::join!(
        state.get_json(&browser, &base),
        state.get_json(&browser, &versions_path),
    );
    if !record.ok() {
        return state.error_page(&browser, Some(&frame), &record);
    }
    let latest = versions.body["latest"]["_extra.version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let names: Vec<String> = versions.body["aggs"]
        .as_array()
        .map(|aggs| {
            aggs.iter()
                .filter_map(|agg| agg["_extra.version"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let records = futures::future::join_all(names.iter().map(|name| {
        let state = &state;
        let browser = &browser;
        let path = format!("{base}/version/{}", segment(name));
        async move { state.get_json(browser, &path).await }
    }))
    .await;
    let mut rows: Vec<VersionRow> = records
        .into_iter()
        .filter(ApiAnswer::ok)
        .map(|answer| {
            let record = answer.body;
            let text = |key: &str| record[key].as_str().unwrap_or_default().to_owned();
            let version = text("version");
            VersionRow {
                url: format!(
                    "/ui/projects/{}/versions/{}",
                    segment(&project),
                    segment(&version)
                ),
                latest: version == latest,
                revision: text("revision"),
                numerical_revision: record["numerical_revision"].as_u64().unwrap_or_default(),
                status: text("status"),
                stable: record["stable"].as_bool().unwrap_or_default(),
                state: text("state"),
                changelog: text("changelog"),
                created_at: text("created_at"),
                created_by: text("created_by"),
                version,
            }
        })
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.numerical_revision));
    state.render(
        StatusCode::OK,
        "project.html",
        serde_json::json!({ "frame": frame, "project": record.body, "project_url": format!("/ui/projects/{}", segment(&project)), "versions": rows, "latest": latest }),
    )
}

/// `GET /ui/projects/{p}/versions/{v}` query: the page of the file list.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    page: Option<usize>,
}

/// A file row of the version page.
#[derive(Debug, Serialize)]
struct FileRow {
    path: String,
    size: u64,
    md5sum: String,
    sha256: String,
    uploaded_at: String,
    download_url: String,
}

/// `GET /ui/projects/{project}/versions/{version}`: the files (size, checksums, download
/// links) and the metadata documents as formatted JSON.
pub async fn get_version(
    State(state): State<UiState>,
    browser: Browser,
    Path((project, version)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Response {
    let base = format!(
        "/projects/{}/version/{}",
        segment(&project),
        segment(&version)
    );
    let project_url = format!("/ui/projects/{}", segment(&project));
    let here = format!("{project_url}/versions/{}", segment(&version));
    let frame = match state.frame(&browser, &here).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let files_path = format!("{base}/files");
    let metadata_path = format!("{base}/metadata?size=200");
    let (record, files, metadata) = tokio::join!(
        state.get_json(&browser, &base),
        state.get_json(&browser, &files_path),
        state.get_json(&browser, &metadata_path),
    );
    if !record.ok() {
        return state.error_page(&browser, Some(&frame), &record);
    }
    let all_files: Vec<FileRow> = files.body["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .map(|file| {
                    let text = |key: &str| file[key].as_str().unwrap_or_default().to_owned();
                    FileRow {
                        download_url: format!("/ui/download/{}", segment(&text("id"))),
                        path: text("path"),
                        size: file["size"].as_u64().unwrap_or_default(),
                        md5sum: text("md5sum"),
                        sha256: text("sha256"),
                        uploaded_at: text("uploaded_at"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let page_count = all_files.len().div_ceil(FILES_PER_PAGE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, page_count);
    let total_files = all_files.len();
    let shown: Vec<FileRow> = all_files
        .into_iter()
        .skip((page - 1) * FILES_PER_PAGE)
        .take(FILES_PER_PAGE)
        .collect();
    let documents: Vec<Value> = metadata.body["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter(|document| {
                    document["_extra"]["metapath"]
                        .as_str()
                        .is_some_and(|path| path.ends_with(".json"))
                })
                .map(|document| {
                    let mut shown = document.clone();
                    if let Some(object) = shown.as_object_mut() {
                        object.remove("_extra");
                    }
                    json!({
                        "path": document["_extra"]["metapath"],
                        "json": serde_json::to_string_pretty(&shown).unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let page_url = |page: usize| format!("{here}?page={page}");
    state.render(
        StatusCode::OK,
        "version.html",
        serde_json::json!({ "frame": frame, "here": here, "project_id": project, "project_url": project_url, "record": record.body, "files": shown, "total_files": total_files, "page": page, "page_count": page_count, "previous_url": (page > 1).then(|| page_url(page - 1)), "next_url": (page < page_count).then(|| page_url(page + 1)), "documents": documents }),
    )
}

/// The stable form of a version.
#[derive(Debug, Deserialize)]
pub struct StableForm {
    csrf: String,
    stable: String,
}

/// `POST /ui/projects/{project}/versions/{version}/stable`: `PATCH .../version/{v}`
/// `{stable}` (owners and admins; the API refuses the rest).
pub async fn post_stable(
    State(state): State<UiState>,
    browser: Browser,
    Path((project, version)): Path<(String, String)>,
    axum::Form(form): axum::Form<StableForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let here = format!(
        "/ui/projects/{}/versions/{}",
        segment(&project),
        segment(&version)
    );
    let answer = state
        .call(
            &browser,
            Method::PATCH,
            &format!(
                "/projects/{}/version/{}",
                segment(&project),
                segment(&version)
            ),
            Some(&json!({"stable": form.stable == "true"})),
        )
        .await;
    if answer.ok() {
        return Redirect::to(&here).into_response();
    }
    let frame = match state.frame(&browser, &here).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    state.error_page(&browser, Some(&frame), &answer)
}

/// `GET /ui/download/{id}`: the API's download of the file (an attachment), as the session.
pub async fn get_download(
    State(state): State<UiState>,
    browser: Browser,
    Path(id): Path<String>,
) -> Response {
    let response = state
        .pass_through(&browser, &format!("/files/{}?redirect=false", segment(&id)))
        .await;
    if response.status().is_success() || response.status().is_redirection() {
        return response;
    }
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    let frame = match state.frame(&browser, "/ui/search").await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    state.error_page(
        &browser,
        Some(&frame),
        &ApiAnswer {
            status,
            headers: HeaderMap::new(),
            body,
        },
    )
}

// ---------------------------------------------------------------- create and upload

/// The new-project form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct NewProjectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    project_id: String,
    #[serde(default)]
    title: String,
    #[serde(default, rename = "type")]
    project_type: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    visibility: String,
    #[serde(default)]
    namespace: String,
}

/// `GET /ui/new`: the new-project form.
pub async fn get_new_project(State(state): State<UiState>, browser: Browser) -> Response {
    if browser.token.is_none() {
        return signed_out(&browser, "/ui/new");
    }
    let frame = match state.frame(&browser, "/ui/new").await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    state.render(
        StatusCode::OK,
        "new_project.html",
        serde_json::json!({ "frame": frame, "form": NewProjectForm { visibility: "private".into(), project_type: "MODEL".into(), ..Default::default() } }),
    )
}

/// `POST /ui/new`: `POST /projects`, then the upload page; the API's validation errors are
/// shown next to their field.
pub async fn post_new_project(
    State(state): State<UiState>,
    browser: Browser,
    axum::Form(form): axum::Form<NewProjectForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let frame = match state.frame(&browser, "/ui/new").await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let tags: Vec<&str> = form
        .tags
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let mut body = json!({
        "project_id": form.project_id.trim(),
        "title": form.title,
        "type": form.project_type,
        "description": form.description,
        "tags": tags,
        "visibility": form.visibility,
    });
    if !form.namespace.trim().is_empty() {
        body["namespace"] = json!(form.namespace.trim());
    }
    let answer = state
        .call(&browser, Method::POST, "/projects", Some(&body))
        .await;
    if answer.ok() {
        let id = answer.body["project_id"].as_str().unwrap_or_default();
        return Redirect::to(&format!("/ui/projects/{}/upload", segment(id))).into_response();
    }
    let reason = answer.reason().to_owned();
    let field = match answer.code() {
        "invalid_name" | "already_exists" | "conflict" => "project_id",
        code if code.contains("namespace") => "namespace",
        _ if reason.contains("title") => "title",
        _ if reason.contains("tag") => "tags",
        _ if reason.contains("type") => "type",
        _ if reason.contains("namespace") => "namespace",
        _ => "",
    };
    state.render(
        answer.status,
        "new_project.html",
        serde_json::json!({ "frame": frame, "form": form, "field_error": {"field": field, "reason": reason} }),
    )
}

/// `GET /ui/projects/{project}/upload`: push a new version (the page's script does the work
/// through `/ui/api/...`).
pub async fn get_upload(
    State(state): State<UiState>,
    browser: Browser,
    Path(project): Path<String>,
) -> Response {
    let here = format!("/ui/projects/{}/upload", segment(&project));
    if browser.token.is_none() {
        return signed_out(&browser, &here);
    }
    let frame = match state.frame(&browser, &here).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let record = state
        .get_json(&browser, &format!("/projects/{}", segment(&project)))
        .await;
    if !record.ok() {
        return state.error_page(&browser, Some(&frame), &record);
    }
    state.render(
        StatusCode::OK,
        "upload.html",
        serde_json::json!({ "frame": frame, "project": record.body, "project_url": format!("/ui/projects/{}", segment(&project)) }),
    )
}

// ----------------------------------------------------------------- members, sharing

async fn members_page(
    state: &UiState,
    browser: &Browser,
    project: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let here = format!("/ui/projects/{}/members", segment(project));
    let frame = match state.frame(browser, &here).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let members = state
        .get_json(browser, &format!("/projects/{}/members", segment(project)))
        .await;
    if !members.ok() {
        return state.error_page(browser, Some(&frame), &members);
    }
    // Only the project's own grants can be revoked here (the others come from above).
    let own = format!("project:{project}");
    let mut members = members;
    if let Some(list) = members.body["members"].as_array_mut() {
        for member in list {
            let revocable = member["grants"]
                .as_array()
                .is_some_and(|grants| grants.iter().any(|grant| grant["source"] == own.as_str()));
            member["revocable"] = json!(revocable);
        }
    }
    state.render(
        status,
        "members.html",
        serde_json::json!({ "frame": frame, "project_id": project, "project_url": format!("/ui/projects/{}", segment(project)), "here": here, "members": members.body, "error": error }),
    )
}

/// `GET /ui/projects/{project}/members`: who can access the project and through which grant,
/// with grant, share and revoke forms.
pub async fn get_members(
    State(state): State<UiState>,
    browser: Browser,
    Path(project): Path<String>,
) -> Response {
    members_page(&state, &browser, &project, StatusCode::OK, None).await
}

/// The grant form.
#[derive(Debug, Deserialize)]
pub struct GrantForm {
    csrf: String,
    principal: String,
    level: String,
}

/// After a successful change, back to the members page; else the page with the API's reason.
async fn after_change(
    state: &UiState,
    browser: &Browser,
    project: &str,
    answer: &ApiAnswer,
) -> Response {
    if answer.ok() {
        return Redirect::to(&format!("/ui/projects/{}/members", segment(project))).into_response();
    }
    // The members page itself answers the API's 404 when the project is not readable.
    members_page(
        state,
        browser,
        project,
        answer.status,
        Some(answer.reason()),
    )
    .await
}

/// `POST /ui/projects/{project}/members`: `POST /projects/{p}/members`.
pub async fn post_member(
    State(state): State<UiState>,
    browser: Browser,
    Path(project): Path<String>,
    axum::Form(form): axum::Form<GrantForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let answer = state
        .call(
            &browser,
            Method::POST,
            &format!("/projects/{}/members", segment(&project)),
            Some(&json!({"principal": form.principal.trim(), "level": form.level})),
        )
        .await;
    after_change(&state, &browser, &project, &answer).await
}

/// The share form: a principal and an optional expiry date (`YYYY-MM-DD`, the end of that
/// day in UTC).
#[derive(Debug, Deserialize)]
pub struct ShareForm {
    csrf: String,
    principal: String,
    #[serde(default)]
    expires_on: String,
}

/// `POST /ui/projects/{project}/share`: `POST /projects/{p}/share`.
pub async fn post_share(
    State(state): State<UiState>,
    browser: Browser,
    Path(project): Path<String>,
    axum::Form(form): axum::Form<ShareForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let mut body = json!({"principal": form.principal.trim()});
    let expires_on = form.expires_on.trim();
    if !expires_on.is_empty() {
        match chrono::NaiveDate::parse_from_str(expires_on, "%Y-%m-%d") {
            Ok(date) => body["expires_at"] = json!(format!("{date}T23:59:59Z")),
            Err(_) => {
                return members_page(
                    &state,
                    &browser,
                    &project,
                    StatusCode::BAD_REQUEST,
                    Some("The expiry must be a date (YYYY-MM-DD)."),
                )
                .await;
            }
        }
    }
    let answer = state
        .call(
            &browser,
            Method::POST,
            &format!("/projects/{}/share", segment(&project)),
            Some(&body),
        )
        .await;
    after_change(&state, &browser, &project, &answer).await
}

/// The revoke form.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    csrf: String,
    principal: String,
}

/// `POST /ui/projects/{project}/members/revoke`: `DELETE /projects/{p}/members/{principal}`.
pub async fn post_revoke_member(
    State(state): State<UiState>,
    browser: Browser,
    Path(project): Path<String>,
    axum::Form(form): axum::Form<RevokeForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let answer = state
        .call(
            &browser,
            Method::DELETE,
            &format!(
                "/projects/{}/members/{}",
                segment(&project),
                segment(form.principal.trim())
            ),
            None,
        )
        .await;
    after_change(&state, &browser, &project, &answer).await
}

// ---------------------------------------------------------------------------- audit

/// `GET /ui/projects/{project}/audit` query.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    cursor: Option<String>,
}

/// `GET /ui/projects/{project}/audit`: the project's audit timeline (owners and admins),
/// paged.
pub async fn get_project_audit(
    State(state): State<UiState>,
    browser: Browser,
    Path(project): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let here = format!("/ui/projects/{}/audit", segment(&project));
    let frame = match state.frame(&browser, &here).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let mut path = format!("/projects/{}/audit?size=50", segment(&project));
    if let Some(cursor) = query.cursor.as_deref().filter(|c| !c.is_empty()) {
        path.push('&');
        path.push_str(&query_string([("next", cursor)]));
    }
    let answer = state.get_json(&browser, &path).await;
    if !answer.ok() {
        return state.error_page(&browser, Some(&frame), &answer);
    }
    let next_url = answer.body["next"]
        .as_str()
        .map(|cursor| format!("{here}?{}", query_string([("cursor", cursor)])));
    state.render(
        StatusCode::OK,
        "audit.html",
        serde_json::json!({ "frame": frame, "project_id": project, "project_url": format!("/ui/projects/{}", segment(&project)), "events": answer.body["results"], "next_url": next_url }),
    )
}

/// `GET /ui/admin/audit` query: the API's filters and the page cursor.
#[derive(Debug, Deserialize)]
pub struct GlobalAuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    project: String,
    cursor: Option<String>,
}

/// `GET /ui/admin/audit`: the whole audit log (admins), filtered by actor, action or project,
/// paged.
pub async fn get_global_audit(
    State(state): State<UiState>,
    browser: Browser,
    Query(query): Query<GlobalAuditQuery>,
) -> Response {
    let filters = [
        ("actor", query.actor.trim()),
        ("action", query.action.trim()),
        ("project", query.project.trim()),
    ];
    let kept: Vec<(&str, &str)> = filters
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    let here = format!("/ui/admin/audit?{}", query_string(kept.iter().copied()));
    let frame = match state.frame(&browser, &here).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let mut pairs = kept.clone();
    pairs.push(("size", "50"));
    if let Some(cursor) = query.cursor.as_deref().filter(|c| !c.is_empty()) {
        pairs.push(("next", cursor));
    }
    let answer = state
        .get_json(&browser, &format!("/audit?{}", query_string(pairs)))
        .await;
    if !answer.ok() && !answer.status.is_client_error() {
        return state.error_page(&browser, Some(&frame), &answer);
    }
    if answer.status == StatusCode::UNAUTHORIZED || answer.status == StatusCode::FORBIDDEN {
        return state.error_page(&browser, Some(&frame), &answer);
    }
    let next_url = answer.body["next"].as_str().map(|cursor| {
        let mut pairs = kept.clone();
        pairs.push(("cursor", cursor));
        format!("/ui/admin/audit?{}", query_string(pairs))
    });
    let status = if answer.ok() {
        StatusCode::OK
    } else {
        answer.status
    };
    state.render(
        status,
        "audit.html",
        json!({
            "frame": frame,
            "global": true,
            "filters": {"actor": query.actor, "action": query.action, "project": query.project},
            "events": answer.body["results"],
            "next_url": next_url,
            "error": (!answer.ok()).then(|| answer.reason().to_owned()),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_are_split_and_unescaped_for_the_template_to_escape_again() {
        let pieces = highlight_pieces("a &lt;script&gt; <em>bert</em> tail");
        let texts: Vec<(&str, bool)> = pieces.iter().map(|p| (p.text.as_str(), p.mark)).collect();
        assert_eq!(
            texts,
            [("a <script> ", false), ("bert", true), (" tail", false)]
        );
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(segment("bert-base_1.0~x"), "bert-base_1.0~x");
    }

    #[test]
    fn only_ui_pages_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/ui/projects/p")), "/ui/projects/p");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/search");
        assert_eq!(safe_next(Some("//evil.example/ui/")), "/ui/search");
        assert_eq!(safe_next(None), "/ui/search");
    }

    #[test]
    fn facet_filters_are_quoted_terms_anded_with_the_box() {
        let query = SearchQuery {
            q: "bert".into(),
            project_type: Some("MODEL".into()),
            tag: Some("a\"b".into()),
            ..SearchQuery::default()
        };
        assert_eq!(
            query.api_query(),
            "(bert) AND _extra.type:\"MODEL\" AND _extra.tags:\"ab\""
        );
        assert_eq!(SearchQuery::default().api_query(), "*");
    }
}
