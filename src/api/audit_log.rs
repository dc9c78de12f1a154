//! `GET /audit` (admins) and `GET /projects/{p}/audit` (the project's owners and admins): the
//! audit log, newest first, paginated with a `next` cursor, from the audit query index.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse as _, Response};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::authorize_project;
use super::extract::RequireAdmin;
use crate::app::AppState;
use crate::audit::{AuditQuery, Cursor, Outcome};
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorCode};
use crate::permissions::Action;

/// Default page size.
const DEFAULT_SIZE: usize = 100;
/// Largest page size.
const MAX_SIZE: usize = 500;

/// Filters of the audit log (all exact; all optional).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Actor: `alice`, `machine:ci`, `anonymous`, `system`.
    pub actor: Option<String>,
    /// Action: `project.create`, `access.denied`, ...
    pub action: Option<String>,
    /// Project id (only on `GET /audit`).
    pub project: Option<String>,
    /// `ok`, `denied`, `error` or `pending` (not completed).
    pub outcome: Option<String>,
    /// Events at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Events before this RFC 3339 time.
    pub until: Option<String>,
    /// Page size, 1 to 500 (default 100).
    pub size: Option<String>,
    /// The `next` cursor of the previous page.
    pub next: Option<String>,
}

fn invalid(reason: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, reason)
}

fn time(name: &str, value: Option<&String>) -> ApiResult<Option<i64>> {
    value
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .and_then(|time| time.timestamp_nanos_opt())
                .ok_or_else(|| invalid(format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

fn bounded(name: &str, value: Option<&String>) -> ApiResult<Option<String>> {
    match value {
        Some(text) if text.is_empty() || text.len() > 1024 => {
            Err(invalid(format!("{name} must be 1 to 1024 bytes")))
        }
        Some(text) => Ok(Some(text.clone())),
        None => Ok(None),
    }
}

impl AuditParams {
    fn query(&self, project: Option<&str>) -> ApiResult<AuditQuery> {
        let size = match &self.size {
            None => DEFAULT_SIZE,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|size| (1..=MAX_SIZE).contains(size))
                .ok_or_else(|| invalid(format!("size must be between 1 and {MAX_SIZE}")))?,
        };
        if let Some(outcome) = &self.outcome
            && Outcome::parse(outcome).is_none()
        {
            return Err(invalid("outcome must be ok, denied, error or pending"));
        }
        let cursor = self
            .next
            .as_deref()
            .map(|text| {
                Cursor::decode(text).ok_or_else(|| invalid("next is not a cursor of this log"))
            })
            .transpose()?;
        Ok(AuditQuery {
            actor: bounded("actor", self.actor.as_ref())?,
            action: bounded("action", self.action.as_ref())?,
            project: match project {
                Some(project) => Some(project.to_owned()),
                None => bounded("project", self.project.as_ref())?,
            },
            outcome: self.outcome.clone(),
            since: time("since", self.since.as_ref())?,
            until: time("until", self.until.as_ref())?,
            size,
            cursor,
        })
    }

    /// The path and query of the next page: these filters and `next=<cursor>`.
    fn next_url(&self, path: &str, cursor: &str) -> String {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("project", &self.project),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
            ("size", &self.size),
        ] {
            if let Some(value) = value {
                url.append_pair(key, value);
            }
        }
        url.append_pair("next", cursor);
        format!("{path}?{}", url.finish())
    }
}

/// Answers `{results, count, next}` and a `Link: rel="more"` header when there is more.
async fn answer(
    state: &AppState,
    path: &str,
    params: &AuditParams,
    query: AuditQuery,
    hide_addresses: bool,
) -> ApiResult<Response> {
    let mut page = state.audit.query(query).await?;
    if hide_addresses {
        page.hide_addresses();
    }
    let next = page.next.map(|cursor| cursor.encode());
    let body = json!({
        "results": page.results,
        "count": page.results.len(),
        "next": next,
    });
    let mut response = ApiJson(body).into_response();
    if let Some(cursor) = &next
        && let Ok(link) = HeaderValue::from_str(&format!(
            "<{}{}>; rel=\"more\"",
            state.settings.public_url(),
            params.next_url(path, cursor)
        ))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// The whole audit log (admins), newest first.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditParams),
    responses(
        (status = 200, description = "`{results, count, next}`; `Link: <...>; rel=\"more\"` when there is more"),
        (status = 400, description = "Invalid parameter", body = crate::error::ErrorBody),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
    ))]
pub async fn get_audit(
    State(state): State<AppState>,
    RequireAdmin(_admin): RequireAdmin,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> ApiResult<Response> {
    let query = params.query(None)?;
    answer(&state, "/audit", &params, query, false).await
}

/// A project's activity timeline (its owners and admins), newest first; client addresses are
/// shown to admins only.
#[utoipa::path(get, path = "/projects/{project}/audit", tag = "audit", params(
        ("project" = String, Path, description = "Project id"), AuditParams),
    responses(
        (status = 200, description = "`{results, count, next}`"),
        (status = 400, description = "Invalid parameter", body = crate::error::ErrorBody),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 404, description = "No such project (or hidden)", body = crate::error::ErrorBody),
    ))]
pub async fn get_project_audit(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> ApiResult<Response> {
    let query = params.query(Some(&project))?;
    authorize_project(&state, &principal, &project, Action::ReadAudit).await?;
    let path = format!("/projects/{project}/audit");
    // Owners see who did what to their project, not where other people connect from.
    answer(&state, &path, &params, query, !principal.is_admin()).await
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_audit))
        .routes(routes!(get_project_audit))
}
