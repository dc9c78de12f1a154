//! Authentication extractors: [`Principal`] (anonymous when there is no `Authorization`
//! header, `401` with a precise code when there is a bad one), [`RequireAccount`],
//! [`RequireAdmin`], and [`ClientAddress`]; and the mapping of [`AuthError`] to the API's
//! error body.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::Principal;
use crate::auth::service::AuthError;
use crate::error::{ApiError, ErrorCode};

/// The mapping is the catalog's.
impl From<crate::audit::AuditError> for ApiError {
    fn from(error: crate::audit::AuditError) -> Self {
        crate::catalog::Error::from(error).into()
    }
}

/// The mapping is the catalog's.
impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        crate::catalog::Error::from(error).into()
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(principal) = parts.extensions.get::<Self>() {
            return Ok(principal.clone());
        }
        let header = match parts.headers.get(AUTHORIZATION) {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::from(AuthError::Token(crate::auth::jwt::TokenError::Malformed))
            })?),
        };
        let principal = state.auth.authenticate(header).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// A logged-in caller (account or machine): `401 token_missing` for anonymous requests.
#[derive(Debug, Clone)]
pub struct RequireAccount(pub Principal);

impl FromRequestParts<AppState> for RequireAccount {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if principal.is_anonymous() {
            return Err(AuthError::Unauthenticated.into());
        }
        Ok(Self(principal))
    }
}

/// An admin caller: `401` when anonymous, `403` otherwise; refusals are audited as
/// `access.denied`.
#[derive(Debug, Clone)]
pub struct RequireAdmin(pub Principal);

impl FromRequestParts<AppState> for RequireAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if principal.is_admin() {
            return Ok(Self(principal));
        }
        let error = if principal.is_anonymous() {
            ApiError::from(AuthError::Unauthenticated)
        } else {
            ApiError::new(ErrorCode::Forbidden, "admins only")
        };
        // The one call site of admin refusals (the path only: queries may carry secrets).
        state.audit.record(
            AuditEvent::new("access.denied")
                .by(&principal)
                .resource(format!("{} {}", parts.method, parts.uri.path()))
                .outcome(Outcome::Denied, error.code().status().as_u16())
                .detail("reason", "admin_required"),
        );
        Err(error)
    }
}

/// The client's address: the TCP peer, or — when the peer is a trusted proxy
/// (`TROVE_TRUSTED_PROXIES`) — the right-most `X-Forwarded-For` address that is not one
/// ([`crate::config::TrustedProxies::client`]); `unknown` when not served over TCP, as in
/// router tests. From anyone else the forwarding header is ignored: anyone can set it.
#[derive(Debug, Clone)]
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Ok(Self("unknown".to_owned()));
        };
        // A value that is not text is not an address: it ends the walk like any other.
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|value| value.to_str().unwrap_or("\u{fffd}"));
        Ok(Self(
            state
                .settings
                .trusted_proxies
                .client(peer.ip(), forwarded)
                .to_string(),
        ))
    }
}
