//! Calls into the API router in-process: pages render what the API answers for the session's
//! token, and `/ui/api/...` forwards browser scripts' requests (CSRF-checked) to it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tower::ServiceExt as _;

use super::UiState;
use super::session::{Browser, CSRF_HEADER};

/// Largest API answer a page reads whole (listings are paged well below it).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// An API answer read whole.
#[derive(Debug)]
pub struct ApiAnswer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

impl ApiAnswer {
    /// Whether the status is a success.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The error body's `code` (empty on success).
    #[must_use]
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// The error body's `reason` (empty on success).
    #[must_use]
    pub fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or_default()
    }
}

impl UiState {
    /// Calls the API as `browser`'s session: `method path` with an optional JSON body.
    pub async fn call(
        &self,
        browser: &Browser,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> ApiAnswer {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = &browser.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let Ok(mut request) = builder.body(body) else {
            return bad_path();
        };
        if let Some(peer) = browser.peer {
            request.extensions_mut().insert(peer);
        }
        let Ok(response) = self.inner.api.clone().oneshot(request).await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = match axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES).await {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(error = %error, "cannot read an api answer for a page");
                return ApiAnswer {
                    status: StatusCode::BAD_GATEWAY,
                    headers,
                    body: Value::Null,
                };
            }
        };
        ApiAnswer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// `GET path` as `browser`'s session.
    pub async fn get_json(&self, browser: &Browser, path: &str) -> ApiAnswer {
        self.call(browser, Method::GET, path, None).await
    }

    /// Streams an API answer back unchanged (downloads).
    pub async fn pass_through(&self, browser: &Browser, path: &str) -> Response {
        let mut builder = Request::builder().method(Method::GET).uri(path);
        if let Some(token) = &browser.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let Ok(mut request) = builder.body(Body::empty()) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        if let Some(peer) = browser.peer {
            request.extensions_mut().insert(peer);
        }
        let Ok(response) = self.inner.api.clone().oneshot(request).await;
        response
    }
}

fn bad_path() -> ApiAnswer {
    ApiAnswer {
        status: StatusCode::BAD_REQUEST,
        headers: HeaderMap::new(),
        body: serde_json::json!({"status": "error", "reason": "invalid path", "code": "invalid_path"}),
    }
}

/// `ANY /ui/api/{*rest}`: forwards a browser script's request to the API as the session,
/// when it carries the session's CSRF token in `X-CSRF-Token`. Cookies are stripped; the body
/// is streamed through (uploads).
pub async fn forward_api(
    State(state): State<UiState>,
    browser: Browser,
    request: Request,
) -> Response {
    let token = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !state.session_csrf_valid(&browser, token) {
        return csrf_refused();
    }
    let (mut parts, body) = request.into_parts();
    let original = parts.uri.path_and_query().map_or("", |pq| pq.as_str());
    let Some(api_path) = original.strip_prefix("/ui/api") else {
        return csrf_refused();
    };
    let Ok(uri) = api_path.parse() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    parts.uri = uri;
    parts.headers.remove(header::COOKIE);
    parts.headers.remove(CSRF_HEADER);
    if let Some(session) = &browser.token
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {session}"))
    {
        parts.headers.insert(header::AUTHORIZATION, value);
    }
    let Ok(response) = state.inner.api.clone().oneshot(fresh(parts, body)).await;
    response
}

/// A request for the API router from the parts of one the UI router matched: the outer
/// router's extensions (its path parameters, its matched path) must not leak into the API's
/// extractors; only the client address goes along.
#[must_use]
pub fn fresh(parts: axum::http::request::Parts, body: Body) -> Request {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .copied();
    let mut request = Request::new(body);
    *request.method_mut() = parts.method;
    *request.uri_mut() = parts.uri;
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers;
    if let Some(peer) = peer {
        request.extensions_mut().insert(peer);
    }
    request
}

/// The answer to a request without a valid CSRF token: `403 csrf_failed` in the API's error
/// shape.
#[must_use]
pub fn csrf_refused() -> Response {
    let body = serde_json::json!({
        "status": "error",
        "reason": "missing or invalid csrf token: reload the page and try again",
        "code": "csrf_failed",
    });
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}
