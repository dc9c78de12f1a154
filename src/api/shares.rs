//! Read-only shares of a project: `POST /projects/{p}/share` and
//! `DELETE /projects/{p}/share/{principal}` (viewer grants with an optional expiry; owners and
//! admins, `Action::Share`). Audit: `share.create` (details: the grantee and the expiry) and
//! `share.delete` (details: the grantee), one mutation event each.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::authorize_project;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::Principal;
use crate::catalog::permissions::{share, unshare};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::permissions::{Action, PrincipalRef};

/// `POST /projects/{p}/share` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// Who to share with (`alice`, `group:ml`, `CN=...`, `machine:ci`).
    pub principal: String,
    /// When the share ends (RFC 3339); never when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Parses a principal of a request (`422` with the profile error's code when invalid).
pub fn parse_principal(value: &str) -> ApiResult<PrincipalRef> {
    PrincipalRef::parse(value).map_err(|error| ApiError::from(crate::catalog::Error::from(error)))
}

/// Shares a project read-only (metadata and download) with a principal (owners and admins).
#[utoipa::path(post, path = "/projects/{project}/share", tag = "permissions",
    params(("project" = String, Path)), request_body = ShareRequest,
    responses((status = 201, description = "`{project_id, principal, expires_at}`"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 409, description = "The principal already has a higher grant", body = crate::error::ErrorBody)))]
pub async fn post_share(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
    ApiJson(request): ApiJson<ShareRequest>,
) -> ApiResult<Response> {
    authorize_project(&app, &principal, &project, Action::Share).await?;
    let grantee = parse_principal(&request.principal)?;
    // As for member grants: an account or local group must exist.
    super::members::check_grantee(&app, &grantee, super::members::MemberLevel::Guest).await?;
    super::members::check_expiry(request.expires_at, app.clock.now())?;
    let event = AuditEvent::new("share.create")
        .by(&principal)
        .resource(format!("project:{project}"))
        .project(&project)
        .detail("principal", grantee.to_string())
        .detail("expires_at", request.expires_at.map(|at| at.to_rfc3339()));
    app.audit
        .mutation(
            event,
            201,
            share(&app, &project, &grantee, request.expires_at),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(json!({
            "project_id": project,
            "principal": grantee.to_string(),
            "expires_at": request.expires_at,
        })),
    )
        .into_response())
}

/// Removes a read-only share (owners and admins).
#[utoipa::path(delete, path = "/projects/{project}/share/{principal}", tag = "permissions",
    params(("project" = String, Path), ("principal" = String, Path)),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 404, description = "Not shared with this principal", body = crate::error::ErrorBody)))]
pub async fn delete_share(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, grantee)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    authorize_project(&app, &principal, &project, Action::Share).await?;
    let grantee = parse_principal(&grantee)?;
    let event = AuditEvent::new("share.delete")
        .by(&principal)
        .resource(format!("project:{project}"))
        .project(&project)
        .detail("principal", grantee.to_string());
    app.audit
        .mutation(event, 204, unshare(&app, &project, &grantee))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_share))
        .routes(routes!(delete_share))
}
