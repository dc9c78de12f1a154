//! The web interface (`/ui/`): server-rendered pages over the API.
//!
//! Every page is rendered on the server with minijinja templates compiled into the binary
//! (`include_str!`), auto-escaping every value; one CSS file and one small plain JavaScript
//! file are embedded too (no CDN, no build step beyond `cargo build`).
//!
//! Authorization is the API's own: a UI handler never reads storage or the index itself. It
//! calls the API router in-process (`tower::ServiceExt::oneshot`) with the session's bearer
//! token, and renders the JSON it answers. Every permission check, every `404` for what the
//! caller cannot see, every audit event is therefore exactly the API's.
//!
//! The session is the API access token kept in an `HttpOnly; SameSite=Strict; Path=/` cookie
//! (`Secure` over https). Every state-changing form carries a CSRF token bound to the session
//! (an HMAC of the token under a server secret). Browser scripts reach the API only through
//! `/ui/api/...`, which requires that token in the `X-CSRF-Token` header and adds the cookie's
//! bearer token: the public API itself never accepts cookies.

pub mod assets;
pub mod docs;
mod forward;
mod manage;
mod pages;
mod session;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{any, get, post};

use crate::app::AppState;

pub use forward::ApiAnswer;

/// `Content-Security-Policy` of UI pages: scripts, styles and connections to this origin only,
/// no inline script, never framed.
pub const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// The shared state of the UI handlers.
#[derive(Clone)]
pub struct UiState {
    inner: Arc<UiInner>,
}

struct UiInner {
    app: AppState,
    api: Router,
    templates: minijinja::Environment<'static>,
    csrf_key: Vec<u8>,
    openapi: serde_json::Value,
}

impl std::fmt::Debug for UiState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("UiState").finish_non_exhaustive()
    }
}

impl UiState {
    /// Builds the UI state over the API router (`api`, with its state) and the OpenAPI
    /// document it serves. The CSRF key is [`crate::app::ui_csrf_key`]: configured (shared by
    /// replicas), derived from the configured token key, or kept in the data directory (mode
    /// 0600); when it cannot be kept, a random one lives in memory (sessions' forms then need
    /// a reload after a restart).
    #[must_use]
    pub fn new(app: AppState, api: Router, openapi: serde_json::Value) -> Self {
        let csrf_key = crate::app::ui_csrf_key(&app.settings).unwrap_or_else(|error| {
            tracing::warn!(error = %error, "cannot keep the ui csrf secret, using a random one");
            let mut key = vec![0_u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
            key
        });
        Self {
            inner: Arc::new(UiInner {
                app,
                api,
                templates: view::environment(),
                csrf_key,
                openapi,
            }),
        }
    }

    /// The shared services.
    #[must_use]
    pub fn app(&self) -> &AppState {
        &self.inner.app
    }
}

/// The whole router: the UI's routes (`/`, `/docs`, `/ui/...`) in front of the API router,
/// which answers everything else.
pub fn router(state: UiState) -> Router {
    let api = state.inner.api.clone();
    let pages = Router::new()
        .route("/ui/", get(pages::get_ui_home))
        .route("/ui/login", get(pages::get_login).post(pages::post_login))
        .route("/ui/logout", post(pages::post_logout))
        .route(
            "/ui/account/password",
            get(pages::get_password).post(pages::post_password),
        )
        .route("/ui/search", get(pages::get_search))
        .route(
            "/ui/new",
            get(pages::get_new_project).post(pages::post_new_project),
        )
        .route("/ui/projects/{project}", get(pages::get_project))
        .route("/ui/projects/{project}/upload", get(pages::get_upload))
        .route(
            "/ui/projects/{project}/members",
            get(pages::get_members).post(pages::post_member),
        )
        .route(
            "/ui/projects/{project}/members/revoke",
            post(pages::post_revoke_member),
        )
        .route("/ui/projects/{project}/share", post(pages::post_share))
        .route(
            "/ui/projects/{project}/audit",
            get(pages::get_project_audit),
        )
        .route(
            "/ui/projects/{project}/versions/{version}",
            get(pages::get_version),
        )
        .route(
            "/ui/projects/{project}/permissions",
            get(manage::get_permissions).post(manage::post_permissions),
        )
        .route(
            "/ui/namespaces",
            get(manage::get_namespaces).post(manage::post_namespace),
        )
        .route("/ui/namespaces/{namespace}", get(manage::get_namespace))
        .route(
            "/ui/namespaces/{namespace}/members",
            post(manage::post_namespace_member),
        )
        .route(
            "/ui/namespaces/{namespace}/members/revoke",
            post(manage::post_namespace_revoke),
        )
        .route("/ui/admin/audit", get(pages::get_global_audit))
        .route("/ui/admin/users", get(manage::get_users))
        .route("/ui/admin/users/{username}", post(manage::post_user))
        .route(
            "/ui/admin/groups",
            get(manage::get_groups).post(manage::post_group),
        )
        .route(
            "/ui/admin/groups/{group}/members",
            post(manage::post_group_members),
        )
        .route(
            "/ui/admin/sync",
            get(manage::get_sync).post(manage::post_sync),
        )
        .route(
            "/ui/keys",
            get(manage::get_api_keys).post(manage::post_api_key),
        )
        .route("/ui/keys/{id}/delete", post(manage::post_delete_api_key))
        .route(
            "/ui/projects/{project}/versions/{version}/stable",
            post(pages::post_stable),
        )
        .route("/ui/download/{id}", get(pages::get_download))
        .route("/ui/assets/{name}", get(assets::get_asset))
        .route("/ui/{*rest}", any(pages::ui_not_found));
    let forwarding = Router::new()
        .route("/ui/api/{*rest}", any(forward::forward_api))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/", any(pages::get_root))
        .route("/docs", get(docs::get_docs))
        .route("/ui", get(pages::redirect_to_ui))
        .merge(pages)
        .merge(forwarding)
        .route_layer(axum::middleware::from_fn(page_headers))
        .with_state(state)
        .fallback_service(api)
}

/// Safe headers on UI answers; a route that sets its own (downloads, forwarded API answers)
/// keeps them.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(UI_CSP));
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    response
}
