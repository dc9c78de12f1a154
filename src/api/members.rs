//! Grants the way a team registry speaks of them (SPEC §8): `POST·GET /namespaces/{ns}/members`,
//! `DELETE /namespaces/{ns}/members/{principal}`, `POST·GET /projects/{p}/members`,
//! `DELETE /projects/{p}/members/{principal}`.
//!
//! Levels map onto the profile lists: `maintainer` → `owners`, `developer` → `writers`,
//! `guest` → `viewers`. The rules:
//!
//! * Namespace grants: admins and the namespace's owners.
//! * Project grants: admins, the namespace's owners and the project's owners. `maintainer`
//!   is refused at project level (`422 no_maintainer_at_project_level`: maintainers are a
//!   namespace's). A principal that the namespace already grants as much (developer or
//!   maintainer; guest for a guest grant) is refused as redundant (`409 redundant_grant`) —
//!   only while the namespace's grants reach the project (no project profile, or one with
//!   `inherit: true`). A namespace guest may be elevated to developer on one project.
//! * Every grant checks the grantee's role (`422 role_too_low`): a guest or reviewer may only
//!   be a guest, a developer or machine at most a developer.
//! * `GET .../members` answers "who can access this?" in one call: the access rules in force
//!   and every effective member with where each of its grants comes from.
//!
//! A grant names an existing account or local group (`422 unknown_principal` otherwise);
//! directory groups (`CN=...`) and machines are taken as given. Each change re-indexes what
//! it affects before the answer.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::{authorize_namespace, authorize_project};
use super::namespaces::{new_namespace_profile, reindex_namespace};
use super::projects::{loader_error, reindex_project};
use super::shares::parse_principal;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::Principal;
pub use crate::catalog::members::{GrantRequest, MemberLevel, check_expiry, check_grantee};
use crate::catalog::members::{
    admit, chain_levels, check_project_grant, grant_on_project, not_a_member, remove, set_level,
    update_profile,
};
pub use crate::catalog::permissions::ensure_principal_exists;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::permissions::{Action, Level, PrincipalRef, Profile, ProfileLocation, ResolvedProfile};

fn granted(resource: &str, grantee: &PrincipalRef, request: &GrantRequest) -> Response {
    (
        StatusCode::CREATED,
        ApiJson(json!({
            "resource": resource,
            "principal": grantee.to_string(),
            "level": request.level,
            "expires_at": request.expires_at,
        })),
    )
        .into_response()
}

/// Grants a principal a level in a namespace (admins and the namespace's owners).
#[utoipa::path(post, path = "/namespaces/{namespace}/members", tag = "members",
    params(("namespace" = String, Path)), request_body = GrantRequest,
    responses((status = 201, description = "`{resource, principal, level, expires_at}`"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown principal, or its role is too low", body = crate::error::ErrorBody)))]
pub async fn post_namespace_member(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(namespace): ApiPath<String>,
    ApiJson(request): ApiJson<GrantRequest>,
) -> ApiResult<Response> {
    let view = authorize_namespace(&app, &principal, &namespace, Action::GrantMember).await?;
    let grantee = parse_principal(&request.principal)?;
    check_expiry(request.expires_at, app.clock.now())?;
    check_grantee(&app, &grantee, request.level).await?;
    let resource = format!("namespace:{namespace}");
    let event = AuditEvent::new("member.grant")
        .by(&principal)
        .resource(resource.clone())
        .detail("principal", grantee.to_string())
        .detail("level", request.level.as_str());
    app.audit
        .mutation(event, 201, async {
            update_profile(
                &app,
                &ProfileLocation::Namespace(namespace.clone()),
                new_namespace_profile(view.record.visibility),
                &|profile| {
                    set_level(profile, &grantee, request.level.level(), request.expires_at);
                    admit(profile, &view.target.profile, request.level.level());
                    Ok(true)
                },
            )
            .await?;
            reindex_namespace(&app, &namespace).await?;
            Ok(granted(&resource, &grantee, &request))
        })
        .await
}

/// Removes a principal's grant from a namespace (admins and the namespace's owners).
#[utoipa::path(delete, path = "/namespaces/{namespace}/members/{principal}", tag = "members",
    params(("namespace" = String, Path), ("principal" = String, Path)),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "Not a member", body = crate::error::ErrorBody)))]
pub async fn delete_namespace_member(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((namespace, grantee)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let view = authorize_namespace(&app, &principal, &namespace, Action::GrantMember).await?;
    let grantee = parse_principal(&grantee)?;
    let resource = format!("namespace:{namespace}");
    let event = AuditEvent::new("member.revoke")
        .by(&principal)
        .resource(resource.clone())
        .detail("principal", grantee.to_string());
    app.audit
        .mutation(event, 204, async {
            update_profile(
                &app,
                &ProfileLocation::Namespace(namespace.clone()),
                new_namespace_profile(view.record.visibility),
                &|profile| {
                    if remove(profile, &grantee) {
                        Ok(true)
                    } else {
                        Err(not_a_member(&resource, &grantee))
                    }
                },
            )
            .await?;
            reindex_namespace(&app, &namespace).await?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

/// Grants a principal `developer` or `guest` on one project (admins, the namespace's owners,
/// the project's owners).
#[utoipa::path(post, path = "/projects/{project}/members", tag = "members",
    params(("project" = String, Path)), request_body = GrantRequest,
    responses((status = 201, description = "`{resource, principal, level, expires_at}`"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 409, description = "Redundant: the namespace already grants as much", body = crate::error::ErrorBody),
        (status = 422, description = "Maintainer at project level, unknown principal, or role too low", body = crate::error::ErrorBody)))]
pub async fn post_project_member(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
    ApiJson(request): ApiJson<GrantRequest>,
) -> ApiResult<Response> {
    let view = authorize_project(&app, &principal, &project, Action::GrantMember).await?;
    let namespace = view.record.namespace.clone();
    let grantee = check_project_grant(&app, &project, namespace.as_deref(), &request).await?;
    let resource = format!("project:{project}");
    let event = AuditEvent::new("member.grant")
        .by(&principal)
        .resource(resource.clone())
        .project(&project)
        .detail("principal", grantee.to_string())
        .detail("level", request.level.as_str());
    app.audit
        .mutation(event, 201, async {
            grant_on_project(
                &app,
                &project,
                namespace.is_some(),
                &view.target.profile,
                &grantee,
                &request,
            )
            .await?;
            Ok::<_, ApiError>(granted(&resource, &grantee, &request))
        })
        .await
}

/// Removes a principal's grant from one project (admins, the namespace's owners, the
/// project's owners).
#[utoipa::path(delete, path = "/projects/{project}/members/{principal}", tag = "members",
    params(("project" = String, Path), ("principal" = String, Path)),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "Not a member of the project", body = crate::error::ErrorBody)))]
pub async fn delete_project_member(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, grantee)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    authorize_project(&app, &principal, &project, Action::GrantMember).await?;
    let grantee = parse_principal(&grantee)?;
    let resource = format!("project:{project}");
    let event = AuditEvent::new("member.revoke")
        .by(&principal)
        .resource(resource.clone())
        .project(&project)
        .detail("principal", grantee.to_string());
    app.audit
        .mutation(event, 204, async {
            let location = ProfileLocation::Project(project.clone());
            // An absent profile lists nobody: the change below answers 404.
            update_profile(&app, &location, Profile::default(), &|profile| {
                if remove(profile, &grantee) {
                    Ok(true)
                } else {
                    Err(not_a_member(&resource, &grantee))
                }
            })
            .await?;
            reindex_project(&app, &project).await?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

/// One grant of a member and where it comes from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Grant {
    /// The level granted there.
    pub level: MemberLevel,
    /// `project:<p>`, `namespace:<ns>` or `global`.
    pub source: String,
    /// When it ends; never when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// One effective member.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The principal.
    pub principal: String,
    /// Its effective level (the highest of its grants).
    pub level: MemberLevel,
    /// Every grant it holds here, nearest scope first.
    pub grants: Vec<Grant>,
}

/// The access rules in force.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessRules {
    /// Who sees the metadata.
    pub read_access: String,
    /// Who downloads.
    pub download_access: String,
    /// Who pushes.
    pub write_access: String,
}

/// `GET .../members` answer: who can access this, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberList {
    /// `project:<p>` or `namespace:<ns>`.
    pub resource: String,
    /// The rules of the resolved profile (`authenticated` and `public` reach beyond members).
    pub access: AccessRules,
    /// Effective members, by principal.
    pub members: Vec<Member>,
    /// How many.
    pub count: usize,
}

/// The unexpired grants of each principal in the profiles that resolution uses: the first
/// profile found, then, while it says `inherit`, the next one above.
fn grants_by_principal(
    levels: &[(String, Option<&Profile>)],
    now: DateTime<Utc>,
) -> BTreeMap<String, Vec<Grant>> {
    let mut members: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
    let contributing = levels
        .iter()
        .filter_map(|(source, profile)| profile.map(|profile| (source, profile)));
    for (source, profile) in contributing {
        for level in [Level::Owner, Level::Writer, Level::Viewer] {
            for (principal, expiry) in profile.entries(level) {
                if expiry.is_some_and(|at| now >= at) {
                    continue;
                }
                members
                    .entry(principal.to_string())
                    .or_default()
                    .push(Grant {
                        level: MemberLevel::of(level),
                        source: source.clone(),
                        expires_at: expiry,
                    });
            }
        }
        if !profile.inherit {
            break;
        }
    }
    members
}

/// The effective members from the profiles that resolution uses: the first profile found,
/// then, while it says `inherit`, the next one above.
fn effective_members(
    resource: String,
    levels: &[(String, Option<&Profile>)],
    resolved: &ResolvedProfile,
    now: DateTime<Utc>,
) -> MemberList {
    let members: Vec<Member> = grants_by_principal(levels, now)
        .into_iter()
        .map(|(principal, grants)| Member {
            principal,
            level: grants
                .iter()
                .map(|grant| grant.level)
                .max()
                .unwrap_or(MemberLevel::Guest),
            grants,
        })
        .collect();
    MemberList {
        resource,
        access: AccessRules {
            read_access: resolved.read_access.as_str().to_owned(),
            download_access: resolved.download_access.as_str().to_owned(),
            write_access: resolved.write_access.as_str().to_owned(),
        },
        count: members.len(),
        members,
    }
}

/// Who can access a namespace, and through which grant.
#[utoipa::path(get, path = "/namespaces/{namespace}/members", tag = "members",
    params(("namespace" = String, Path)),
    responses((status = 200, description = "Effective members", body = MemberList),
        (status = 404, description = "No such namespace, or not visible", body = crate::error::ErrorBody)))]
pub async fn get_namespace_members(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(namespace): ApiPath<String>,
) -> ApiResult<ApiJson<MemberList>> {
    let view = authorize_namespace(&app, &principal, &namespace, Action::ReadPermissions).await?;
    let chain = app
        .profiles
        .load_chain(Some(&namespace), None, None)
        .await
        .map_err(loader_error)?;
    Ok(ApiJson(effective_members(
        format!("namespace:{namespace}"),
        &chain_levels(&chain, Some(&namespace), None),
        &view.target.profile,
        app.clock.now(),
    )))
}

/// Who can access a project, and through which grant (its own, its namespace's, global).
#[utoipa::path(get, path = "/projects/{project}/members", tag = "members",
    params(("project" = String, Path)),
    responses((status = 200, description = "Effective members", body = MemberList),
        (status = 404, description = "No such project, or not readable", body = crate::error::ErrorBody)))]
pub async fn get_project_members(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
) -> ApiResult<ApiJson<MemberList>> {
    let view = authorize_project(&app, &principal, &project, Action::ReadPermissions).await?;
    let namespace = view.record.namespace.clone();
    let chain = app
        .profiles
        .load_chain(namespace.as_deref(), Some(&project), None)
        .await
        .map_err(loader_error)?;
    Ok(ApiJson(effective_members(
        format!("project:{project}"),
        &chain_levels(&chain, namespace.as_deref(), Some(&project)),
        &view.target.profile,
        app.clock.now(),
    )))
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_namespace_member, get_namespace_members))
        .routes(routes!(delete_namespace_member))
        .routes(routes!(post_project_member, get_project_members))
        .routes(routes!(delete_project_member))
}
