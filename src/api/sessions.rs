//! `POST /auth/register`, `POST /auth/login`, `GET /auth/me`, `POST /auth/logout`,
//! `PUT /auth/password` (SPEC §7).

use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ClientAddress, RequireAccount};
use crate::app::AppState;
use crate::audit::{ActorKind, AuditEvent};
use crate::auth::Principal;
use crate::auth::jwt::IssuedToken;
use crate::auth::principal::CredentialKind;
use crate::auth::service::bounded_name;
use crate::config::Secret;
use crate::error::{ApiError, ApiJson, ApiResult, ErrorCode};
use crate::permissions::Caller;

/// `POST /auth/register` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// `[a-z0-9][a-z0-9._-]{1,63}`.
    pub username: String,
    /// At least 8 characters.
    #[schema(value_type = String)]
    pub password: Secret,
    /// Optional e-mail address.
    #[serde(default)]
    pub email: Option<String>,
}

/// An account as its owner sees it after registration.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredAccount {
    /// The username.
    pub username: String,
    /// The role given.
    pub role: String,
}

/// Creates an account (when registration is enabled) with the configured default role.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = RegisteredAccount),
        (status = 400, description = "Invalid username", body = crate::error::ErrorBody),
        (status = 403, description = "registration_disabled", body = crate::error::ErrorBody),
        (status = 409, description = "Username taken, or retired (`name_retired`)", body = crate::error::ErrorBody),
        (status = 422, description = "Password too short", body = crate::error::ErrorBody),
        (status = 429, description = "Too many registrations from this address", body = crate::error::ErrorBody),
    ))]
pub async fn post_register(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, ApiJson<RegisteredAccount>)> {
    // Unauthenticated input: bounded before it reaches the audit log (the service validates).
    let name = bounded_name(&body.username);
    let event = AuditEvent::new("auth.register")
        .actor(name.clone(), ActorKind::User)
        .resource(format!("user:{name}"));
    let account = state
        .audit
        .mutation(event, 201, async {
            Ok::<_, crate::error::ApiError>(
                state
                    .auth
                    .register(
                        &body.username,
                        body.password.expose(),
                        body.email,
                        Some(&address),
                    )
                    .await?,
            )
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(RegisteredAccount {
            username: account.username,
            role: account.role.to_string(),
        }),
    ))
}

/// `POST /auth/login` body (form fields of the OAuth2 password flow, or JSON).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The username.
    pub username: String,
    /// The password.
    #[schema(value_type = String)]
    pub password: Secret,
}

/// A login body, from `application/x-www-form-urlencoded` or JSON.
#[derive(Debug)]
pub struct LoginBody(pub LoginRequest);

impl<S: Send + Sync> FromRequest<S> for LoginBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let axum::Form(body) = axum::Form::<LoginRequest>::from_request(request, state)
                .await
                .map_err(|rejection| {
                    let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ErrorCode::PayloadTooLarge
                    } else {
                        ErrorCode::Unprocessable
                    };
                    ApiError::new(code, "the form needs the fields username and password")
                })?;
            return Ok(Self(body));
        }
        let ApiJson(body) = ApiJson::<LoginRequest>::from_request(request, state).await?;
        Ok(Self(body))
    }
}

/// An access token (OAuth2 token response).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

impl From<IssuedToken> for TokenResponse {
    fn from(issued: IssuedToken) -> Self {
        Self {
            access_token: issued.token,
            token_type: "bearer",
            expires_in: issued.expires_in,
        }
    }
}

/// Logs in with username and password; wrong credentials answer `401 invalid_credentials`
/// whether or not the account exists; too many attempts `429` with `Retry-After`.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body(content = LoginRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "invalid_credentials", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limited", body = crate::error::ErrorBody),
    ))]
pub async fn post_login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    LoginBody(body): LoginBody,
) -> ApiResult<ApiJson<TokenResponse>> {
    let issued = state
        .auth
        .login(&body.username, body.password.expose(), &address)
        .await?;
    Ok(ApiJson(issued.into()))
}

/// `GET /auth/me` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// Username (the machine name for API keys).
    pub username: String,
    /// Role.
    pub role: String,
    /// Local groups.
    pub groups: Vec<String>,
    /// Every principal the caller matches in profiles.
    pub identities: Vec<String>,
    /// `account`, `external` or `machine`.
    pub kind: &'static str,
}

/// Who the caller is.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
    ))]
pub async fn get_me(RequireAccount(principal): RequireAccount) -> ApiJson<Me> {
    let identities = principal.caller.identities().into_iter().collect();
    let role = principal
        .caller
        .role()
        .map(|role| role.to_string())
        .unwrap_or_default();
    let kind = match principal.credential {
        CredentialKind::External => "external",
        CredentialKind::ApiKey => "machine",
        _ => "account",
    };
    let (username, groups) = match principal.caller {
        Caller::Account {
            username, groups, ..
        } => (username, groups.to_vec()),
        Caller::Machine { name, .. } => (name, Vec::new()),
        Caller::Anonymous => (String::new(), Vec::new()),
    };
    ApiJson(Me {
        username,
        role,
        groups,
        identities,
        kind,
    })
}

/// A plain acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ack {
    /// Always `ok`.
    pub status: &'static str,
}

/// Revokes the token of this request.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses(
        (status = 200, description = "Token revoked", body = Ack),
        (status = 400, description = "Not a Trove token", body = crate::error::ErrorBody),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
    ))]
pub async fn post_logout(
    State(state): State<AppState>,
    RequireAccount(principal): RequireAccount,
) -> ApiResult<ApiJson<Ack>> {
    let session = principal
        .session
        .as_ref()
        .ok_or_else(|| ApiError::bad_request("only trove access tokens can be logged out"))?;
    let event = AuditEvent::new("auth.logout")
        .by(&principal)
        .resource(format!("user:{}", session.username));
    state
        .audit
        .mutation(event, 200, async {
            Ok::<_, crate::error::ApiError>(state.auth.logout(session).await?)
        })
        .await?;
    Ok(ApiJson(Ack { status: "ok" }))
}

/// `PUT /auth/password` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password.
    #[schema(value_type = String)]
    pub old_password: Secret,
    /// The new password (at least 8 characters).
    #[schema(value_type = String)]
    pub new_password: Secret,
}

/// Changes the caller's password; every earlier token of the account stops working, and a
/// fresh token is answered. Wrong old passwords are throttled like logins (`429`).
#[utoipa::path(put, path = "/auth/password", tag = "auth", request_body = PasswordChange,
    responses(
        (status = 200, description = "Password changed; a new token", body = TokenResponse),
        (status = 401, description = "Wrong old password", body = crate::error::ErrorBody),
        (status = 422, description = "New password too short", body = crate::error::ErrorBody),
        (status = 429, description = "Too many wrong old passwords", body = crate::error::ErrorBody),
    ))]
pub async fn put_password(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    principal: Principal,
    ApiJson(body): ApiJson<PasswordChange>,
) -> ApiResult<ApiJson<TokenResponse>> {
    let session = match (&principal.session, principal.is_anonymous()) {
        (Some(session), _) => session,
        (None, true) => return Err(crate::auth::service::AuthError::Unauthenticated.into()),
        (None, false) => {
            return Err(ApiError::bad_request(
                "only local accounts logged in with a trove token change passwords here",
            ));
        }
    };
    let event = AuditEvent::new("auth.password_change")
        .by(&principal)
        .resource(format!("user:{}", session.username));
    let issued = state
        .audit
        .mutation(event, 200, async {
            Ok::<_, crate::error::ApiError>(
                state
                    .auth
                    .change_password(
                        &session.username,
                        body.old_password.expose(),
                        body.new_password.expose(),
                        &address,
                    )
                    .await?,
            )
        })
        .await?;
    Ok(ApiJson(issued.into()))
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_register))
        .routes(routes!(post_login))
        .routes(routes!(get_me))
        .routes(routes!(post_logout))
        .routes(routes!(put_password))
}
