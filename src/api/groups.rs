//! Local groups: `POST·GET /groups`, `GET·DELETE /groups/{g}`, `PUT /groups/{g}/members`, and
//! `POST /groups/{g}/free` (admins), which frees the name a deleted group left retired.
//! Members become `group:<name>` identities on their next request (no re-index needed: the
//! index stores principals, and the caller's identities are computed per request).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{RequireAccount, RequireAdmin};
use super::users::{FreedView, free_name};
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::service::bounded_name;
use crate::auth::store::{GroupRecord, TombstoneKind};
use crate::error::{ApiJson, ApiPath, ApiResult};

/// `POST /groups` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// Group name (the username rule).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Initial members.
    #[serde(default)]
    pub members: Vec<String>,
}

/// Creates a group (admins and maintainers); the creator becomes its owner.
#[utoipa::path(post, path = "/groups", tag = "groups", request_body = NewGroup,
    responses(
        (status = 201, description = "Created", body = GroupRecord),
        (status = 403, description = "Role may not create groups", body = crate::error::ErrorBody),
        (status = 409, description = "Name taken, or retired (`name_retired`)", body = crate::error::ErrorBody),
    ))]
pub async fn post_group(
    State(state): State<AppState>,
    RequireAccount(principal): RequireAccount,
    ApiJson(body): ApiJson<NewGroup>,
) -> ApiResult<(StatusCode, ApiJson<GroupRecord>)> {
    let event = AuditEvent::new("group.create")
        .by(&principal)
        .resource(format!("group:{}", body.name))
        .detail("members", body.members.clone());
    let group = state
        .audit
        .mutation(event, 201, async {
            Ok::<_, crate::error::ApiError>(
                state
                    .auth
                    .create_group(&principal, &body.name, body.description, body.members)
                    .await?,
            )
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(group)))
}

/// `GET /groups` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    /// Groups the caller sees (all for admins, else its own).
    pub results: Vec<GroupRecord>,
    /// How many.
    pub count: usize,
}

/// The groups the caller may see.
#[utoipa::path(get, path = "/groups", tag = "groups",
    responses((status = 200, description = "Groups", body = GroupList)))]
pub async fn get_groups(
    State(state): State<AppState>,
    RequireAccount(principal): RequireAccount,
) -> ApiResult<ApiJson<GroupList>> {
    let results = state.auth.visible_groups(&principal).await?;
    Ok(ApiJson(GroupList {
        count: results.len(),
        results,
    }))
}

/// One group (admins, its owners and members; `404` for others).
#[utoipa::path(get, path = "/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group name")),
    responses(
        (status = 200, description = "The group", body = GroupRecord),
        (status = 404, description = "No such group", body = crate::error::ErrorBody),
    ))]
pub async fn get_group(
    State(state): State<AppState>,
    RequireAccount(principal): RequireAccount,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<ApiJson<GroupRecord>> {
    Ok(ApiJson(state.auth.visible_group(&principal, &name).await?))
}

/// `PUT /groups/{g}/members` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    /// Usernames to add.
    #[serde(default)]
    pub add: Vec<String>,
    /// Usernames to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Adds and removes members (admins or the group's owners).
#[utoipa::path(put, path = "/groups/{group}/members", tag = "groups", request_body = MemberChange,
    params(("group" = String, Path, description = "Group name")),
    responses(
        (status = 200, description = "The group", body = GroupRecord),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 404, description = "No such group", body = crate::error::ErrorBody),
    ))]
pub async fn put_group_members(
    State(state): State<AppState>,
    RequireAccount(principal): RequireAccount,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<MemberChange>,
) -> ApiResult<ApiJson<GroupRecord>> {
    let event = AuditEvent::new("group.members_change")
        .by(&principal)
        .resource(format!("group:{name}"))
        .detail("add", body.add.clone())
        .detail("remove", body.remove.clone());
    let group = state
        .audit
        .mutation(event, 200, async {
            Ok::<_, crate::error::ApiError>(
                state
                    .auth
                    .change_members(&principal, &name, &body.add, &body.remove)
                    .await?,
            )
        })
        .await?;
    Ok(ApiJson(group))
}

/// Deletes a group (admins or its owners). Its name is retired: nobody can create a group of
/// that name (and inherit its grants) until an admin frees it.
#[utoipa::path(delete, path = "/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 404, description = "No such group", body = crate::error::ErrorBody),
    ))]
pub async fn delete_group(
    State(state): State<AppState>,
    RequireAccount(principal): RequireAccount,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let event = AuditEvent::new("group.delete")
        .by(&principal)
        .resource(format!("group:{name}"));
    state
        .audit
        .mutation(event, 204, async {
            state.auth.delete_group(&principal, &name).await?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

/// Frees the name of a deleted group (admins): `group:<name>` is removed from every profile
/// first, so a new group of that name inherits nothing.
#[utoipa::path(post, path = "/groups/{group}/free", tag = "groups",
    params(("group" = String, Path, description = "Group name")),
    responses(
        (status = 200, description = "Freed; what was cleaned", body = FreedView),
        (status = 404, description = "The name is not retired", body = crate::error::ErrorBody),
    ))]
pub async fn post_group_free(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<ApiJson<FreedView>> {
    let event = AuditEvent::new("group.free")
        .by(&admin)
        .resource(format!("group:{}", bounded_name(&name)));
    state
        .audit
        .mutation(event, 200, free_name(&state, TombstoneKind::Group, &name))
        .await
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_group, get_groups))
        .routes(routes!(get_group, delete_group))
        .routes(routes!(put_group_members))
        .routes(routes!(post_group_free))
}
