//! Account administration (admins): `GET /users`, `GET·PATCH·DELETE /users/{u}`, and
//! `POST /users/{u}/free`, which frees the name a deleted account left retired.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::RequireAdmin;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::service::bounded_name;
use crate::auth::store::{AccountRecord, TombstoneKind};
use crate::catalog::accounts;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::permissions::ProfileLocation;

/// An account as admins see it (never its password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Username.
    pub username: String,
    /// Role.
    pub role: String,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// E-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<AccountRecord> for UserView {
    fn from(account: AccountRecord) -> Self {
        Self {
            username: account.username,
            role: account.role.to_string(),
            disabled: account.disabled,
            email: account.email,
            created_at: account.created_at,
            updated_at: account.updated_at,
        }
    }
}

/// `GET /users` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// The accounts, by username.
    pub results: Vec<UserView>,
    /// How many.
    pub count: usize,
}

/// Every account.
#[utoipa::path(get, path = "/users", tag = "users",
    responses(
        (status = 200, description = "Accounts", body = UserList),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
    ))]
pub async fn get_users(
    State(state): State<AppState>,
    RequireAdmin(_admin): RequireAdmin,
) -> ApiResult<ApiJson<UserList>> {
    let results: Vec<UserView> = state
        .auth
        .list_accounts()
        .await?
        .into_iter()
        .map(UserView::from)
        .collect();
    Ok(ApiJson(UserList {
        count: results.len(),
        results,
    }))
}

/// One account.
#[utoipa::path(get, path = "/users/{username}", tag = "users",
    params(("username" = String, Path, description = "Username")),
    responses(
        (status = 200, description = "The account", body = UserView),
        (status = 404, description = "No such account", body = crate::error::ErrorBody),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    RequireAdmin(_admin): RequireAdmin,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<ApiJson<UserView>> {
    let account = accounts::account(&state, &username).await?;
    Ok(ApiJson(account.into()))
}

/// `PATCH /users/{u}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New role: admin, reviewer, maintainer, developer or guest.
    #[serde(default)]
    pub role: Option<String>,
    /// Disable (true) or re-enable (false).
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// Changes an account's role or disables it; takes effect on the account's next request.
/// The last enabled admin can't be demoted or disabled (`409 last_admin`).
#[utoipa::path(patch, path = "/users/{username}", tag = "users", request_body = UserPatch,
    params(("username" = String, Path, description = "Username")),
    responses(
        (status = 200, description = "The changed account", body = UserView),
        (status = 404, description = "No such account", body = crate::error::ErrorBody),
        (status = 409, description = "last_admin", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown role", body = crate::error::ErrorBody),
    ))]
pub async fn patch_user(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    ApiPath(username): ApiPath<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<ApiJson<UserView>> {
    let action = match (&patch.role, patch.disabled) {
        (Some(_), _) => "user.role_change",
        (None, Some(true)) => "user.disable",
        (None, Some(false)) => "user.enable",
        (None, None) => "user.update",
    };
    let mut event = AuditEvent::new(action)
        .by(&admin)
        .resource(format!("user:{username}"));
    if let Some(role) = &patch.role {
        event = event.detail("role", role.clone());
    }
    if let Some(disabled) = patch.disabled {
        event = event.detail("disabled", disabled);
    }
    let change = accounts::change_account(&state, &username, patch.role.as_deref(), patch.disabled);
    let account = state.audit.mutation(event, 200, change).await?;
    Ok(ApiJson(account.into()))
}

/// Deletes an account (not the last enabled admin).
#[utoipa::path(delete, path = "/users/{username}", tag = "users",
    params(("username" = String, Path, description = "Username")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such account", body = crate::error::ErrorBody),
        (status = 409, description = "last_admin", body = crate::error::ErrorBody),
    ))]
pub async fn delete_user(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let event = AuditEvent::new("user.delete")
        .by(&admin)
        .resource(format!("user:{username}"));
    state
        .audit
        .mutation(event, 204, async {
            accounts::delete_account(&state, &username, &admin.actor()).await?;
            Ok::<_, ApiError>(StatusCode::NO_CONTENT)
        })
        .await
}

/// What freeing a retired name changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FreedView {
    /// The freed name.
    pub name: String,
    /// `user` or `group`.
    pub kind: &'static str,
    /// When the identity was deleted.
    pub deleted_at: DateTime<Utc>,
    /// Storage keys of the profiles the old principal was removed from.
    pub profiles: Vec<String>,
    /// Groups the old user was removed from.
    pub groups: Vec<String>,
}

/// Frees a retired name ([`crate::catalog::accounts::free_name`]) and answers what changed.
pub async fn free_name(
    state: &AppState,
    kind: TombstoneKind,
    name: &str,
) -> ApiResult<ApiJson<FreedView>> {
    let freed = accounts::free_name(state, kind, name).await?;
    Ok(ApiJson(FreedView {
        name: freed.tombstone.name,
        kind: freed.tombstone.kind.as_str(),
        deleted_at: freed.tombstone.deleted_at,
        profiles: freed.profiles.iter().map(ProfileLocation::key).collect(),
        groups: freed.groups,
    }))
}

/// Frees the name of a deleted account (admins): until then it cannot be registered again
/// (`409 name_retired`). The old name is removed from every profile and group first, so a new
/// account of that name inherits nothing.
#[utoipa::path(post, path = "/users/{username}/free", tag = "users",
    params(("username" = String, Path, description = "Username")),
    responses(
        (status = 200, description = "Freed; what was cleaned", body = FreedView),
        (status = 404, description = "The name is not retired", body = crate::error::ErrorBody),
    ))]
pub async fn post_user_free(
    State(state): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<ApiJson<FreedView>> {
    let event = AuditEvent::new("user.free")
        .by(&admin)
        .resource(format!("user:{}", bounded_name(&username)));
    state
        .audit
        .mutation(
            event,
            200,
            free_name(&state, TombstoneKind::User, &username),
        )
        .await
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_users))
        .routes(routes!(get_user, patch_user, delete_user))
        .routes(routes!(post_user_free))
}
