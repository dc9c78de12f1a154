//! Account administration (admins): `GET /users`, `GET·PATCH·DELETE /users/{u}`.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::RequireAdmin;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::service::AccountChange;
use crate::auth::store::AccountRecord;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorCode};

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
    let account = state
        .auth
        .records()
        .account(&username)
        .await
        .map_err(crate::auth::service::AuthError::from)?
        .filter(|_| crate::model::names::validate_username(&username).is_ok())
        .ok_or_else(|| ApiError::not_found(format!("user {username} not found")))?;
    Ok(ApiJson(account.record.into()))
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
    state
        .audit
        .mutation(event, 200, change_user(&state, &username, &patch))
        .await
}

async fn change_user(
    state: &AppState,
    username: &str,
    patch: &UserPatch,
) -> ApiResult<ApiJson<UserView>> {
    if crate::model::names::validate_username(username).is_err() {
        return Err(ApiError::not_found(format!("user {username} not found")));
    }
    let role = match &patch.role {
        Some(role) => Some(
            role.parse()
                .map_err(|error: crate::permissions::UnknownRole| {
                    ApiError::new(ErrorCode::Unprocessable, error.to_string())
                })?,
        ),
        None => None,
    };
    let updated = state
        .auth
        .update_account(
            username,
            &AccountChange {
                role,
                disabled: patch.disabled,
            },
        )
        .await?;
    Ok(ApiJson(updated.into()))
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
            if crate::model::names::validate_username(&username).is_err() {
                return Err(ApiError::not_found(format!("user {username} not found")));
            }
            state.auth.delete_account(&username).await?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}
