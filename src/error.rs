//! The one error shape of the API.
//!
//! Every failure leaves the service as `{"status": "error", "reason": "...", "code": "..."}`
//! with the status [`ErrorCode::status`] gives. Clients (and tests) match on `code`, never on
//! `reason`. A 5xx tells the client little and logs the whole cause chain; a 4xx says exactly
//! what was wrong with the request.

use std::fmt;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::storage::StorageError;

/// Every machine-readable error code Trove answers with, and its HTTP status.
///
/// Every code is a variant: there are no ad-hoc wire names elsewhere. Two variants share a
/// wire name where the API always answered so ([`Self::ProfileNotJson`] is `invalid_json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Generic malformed request.
    BadRequest,
    /// The body is not the JSON the route expects.
    InvalidJson,
    /// A query-string parameter is malformed.
    InvalidParameter,
    /// A project id, version, namespace, username or group name breaks the naming rules.
    InvalidName,
    /// A file path breaks the path rules (traversal, reserved `..meta`, control characters).
    InvalidPath,
    /// An ArtifactDB id (`project:path@version`) is malformed.
    InvalidId,
    /// A search query does not parse.
    InvalidQuery,
    /// The body's digest does not match the announced `Content-MD5` / checksum.
    DigestMismatch,
    /// A pagination cursor is not one Trove issued (or not for this route).
    InvalidCursor,
    /// A pagination cursor is too old.
    CursorExpired,
    /// An upload is completed before all its announced files arrived.
    MissingFiles,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// Authentication is required (or the credentials given are not valid).
    Unauthorized,
    /// The username or password is wrong.
    InvalidCredentials,
    /// No bearer token where one is required.
    TokenMissing,
    /// The `Authorization` scheme is not `Bearer`.
    TokenUnsupportedScheme,
    /// The token is not a JWT.
    TokenMalformed,
    /// The token's signature does not verify.
    TokenBadSignature,
    /// The token is unsigned (`alg: none`).
    TokenAlgNone,
    /// The token is signed with another algorithm.
    TokenWrongAlgorithm,
    /// The token expired.
    TokenExpired,
    /// The token is not valid yet.
    TokenNotYetValid,
    /// The token is for another audience.
    TokenWrongAudience,
    /// The token is from another issuer.
    TokenWrongIssuer,
    /// The token was revoked.
    TokenRevoked,
    /// The token predates a change of the account (password, role).
    TokenOutdated,
    /// The account is disabled.
    AccountDisabled,
    /// The token names no known account.
    TokenUnknownAccount,
    /// The token's key id is unknown.
    TokenUnknownKey,
    /// The token's claims are not the ones Trove needs.
    TokenInvalidClaims,
    /// The API key is not valid.
    ApiKeyInvalid,
    /// The API key expired.
    ApiKeyExpired,
    /// Authenticated, but not allowed.
    Forbidden,
    /// A presigned URL is expired, tampered with, or used with another method.
    InvalidSignature,
    /// Self-registration is switched off.
    RegistrationDisabled,
    /// Nothing here (or nothing the caller may know about).
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// The resource to create already exists.
    AlreadyExists,
    /// The path clashes with an existing file or folder of the version.
    PathConflict,
    /// The version is stable: it takes no new files.
    Stable,
    /// The permission engine refuses this on a stable version.
    StableVersion,
    /// The version is completed.
    VersionCompleted,
    /// The version is not completed yet.
    VersionNotCompleted,
    /// The target is deprecated.
    Deprecated,
    /// The version is disabled.
    Disabled,
    /// A parent (project or namespace) is disabled.
    ParentDisabled,
    /// An upload of the version is in progress.
    UploadInProgress,
    /// A presigned upload URL whose upload ended or whose deadline passed.
    UploadClosed,
    /// The namespace still holds projects.
    NamespaceNotEmpty,
    /// The grant is already given at the namespace level.
    RedundantGrant,
    /// The principal already holds this grant.
    AlreadyGranted,
    /// The name belonged to a deleted account and is not reused.
    NameRetired,
    /// The change would leave no active administrator.
    LastAdmin,
    /// A conditional update lost a race; retry with fresh data.
    PreconditionFailed,
    /// The body is larger than this route accepts.
    PayloadTooLarge,
    /// The `Content-Type` is not one this route accepts.
    UnsupportedMediaType,
    /// The `Range` cannot be satisfied.
    RangeNotSatisfiable,
    /// The JSON is well-formed but its content is invalid.
    Unprocessable,
    /// The password is too short or too long.
    InvalidPassword,
    /// A grant names a user or group that does not exist.
    UnknownPrincipal,
    /// The grantee's role cannot hold the level granted.
    RoleTooLow,
    /// `maintainer` is a namespace level only.
    NoMaintainerAtProjectLevel,
    /// A permission profile is invalid.
    InvalidProfile,
    /// A permission profile is not JSON (same wire name as [`Self::InvalidJson`], answered `422`).
    ProfileNotJson,
    /// A permission profile has a field Trove does not know.
    UnknownField,
    /// A permission profile's access rule is invalid.
    InvalidAccessRule,
    /// A permission profile names a malformed principal.
    InvalidPrincipal,
    /// A permission profile's expiry is not an RFC 3339 time.
    InvalidExpiry,
    /// A permission profile's scope is wrong for where it is stored.
    InvalidScope,
    /// A profile grants more than the grantee's role may hold.
    GrantExceedsRole,
    /// Too many requests; retry after the `Retry-After` delay.
    RateLimited,
    /// Object storage can't be reached; retry later.
    StorageUnavailable,
    /// The search index is not ready.
    IndexUnavailable,
    /// The external identity provider's keys are not loaded yet; retry later.
    IdentityProviderUnavailable,
    /// Something failed on our side; the details are in the server log.
    Internal,
}

/// Every variant, for tests and documentation.
pub const ALL_CODES: &[ErrorCode] = &[
    ErrorCode::BadRequest,
    ErrorCode::InvalidJson,
    ErrorCode::InvalidParameter,
    ErrorCode::InvalidName,
    ErrorCode::InvalidPath,
    ErrorCode::InvalidId,
    ErrorCode::InvalidQuery,
    ErrorCode::DigestMismatch,
    ErrorCode::InvalidCursor,
    ErrorCode::CursorExpired,
    ErrorCode::MissingFiles,
    ErrorCode::MethodNotAllowed,
    ErrorCode::Unauthorized,
    ErrorCode::InvalidCredentials,
    ErrorCode::TokenMissing,
    ErrorCode::TokenUnsupportedScheme,
    ErrorCode::TokenMalformed,
    ErrorCode::TokenBadSignature,
    ErrorCode::TokenAlgNone,
    ErrorCode::TokenWrongAlgorithm,
    ErrorCode::TokenExpired,
    ErrorCode::TokenNotYetValid,
    ErrorCode::TokenWrongAudience,
    ErrorCode::TokenWrongIssuer,
    ErrorCode::TokenRevoked,
    ErrorCode::TokenOutdated,
    ErrorCode::AccountDisabled,
    ErrorCode::TokenUnknownAccount,
    ErrorCode::TokenUnknownKey,
    ErrorCode::TokenInvalidClaims,
    ErrorCode::ApiKeyInvalid,
    ErrorCode::ApiKeyExpired,
    ErrorCode::Forbidden,
    ErrorCode::InvalidSignature,
    ErrorCode::RegistrationDisabled,
    ErrorCode::NotFound,
    ErrorCode::Conflict,
    ErrorCode::AlreadyExists,
    ErrorCode::PathConflict,
    ErrorCode::Stable,
    ErrorCode::StableVersion,
    ErrorCode::VersionCompleted,
    ErrorCode::VersionNotCompleted,
    ErrorCode::Deprecated,
    ErrorCode::Disabled,
    ErrorCode::ParentDisabled,
    ErrorCode::UploadInProgress,
    ErrorCode::UploadClosed,
    ErrorCode::NamespaceNotEmpty,
    ErrorCode::RedundantGrant,
    ErrorCode::AlreadyGranted,
    ErrorCode::NameRetired,
    ErrorCode::LastAdmin,
    ErrorCode::PreconditionFailed,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::RangeNotSatisfiable,
    ErrorCode::Unprocessable,
    ErrorCode::InvalidPassword,
    ErrorCode::UnknownPrincipal,
    ErrorCode::RoleTooLow,
    ErrorCode::NoMaintainerAtProjectLevel,
    ErrorCode::InvalidProfile,
    ErrorCode::ProfileNotJson,
    ErrorCode::UnknownField,
    ErrorCode::InvalidAccessRule,
    ErrorCode::InvalidPrincipal,
    ErrorCode::InvalidExpiry,
    ErrorCode::InvalidScope,
    ErrorCode::GrantExceedsRole,
    ErrorCode::RateLimited,
    ErrorCode::StorageUnavailable,
    ErrorCode::IndexUnavailable,
    ErrorCode::IdentityProviderUnavailable,
    ErrorCode::Internal,
];

impl ErrorCode {
    /// The HTTP status this code is answered with.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest
            | Self::InvalidJson
            | Self::InvalidParameter
            | Self::InvalidName
            | Self::InvalidPath
            | Self::InvalidId
            | Self::InvalidQuery
            | Self::DigestMismatch
            | Self::InvalidCursor
            | Self::CursorExpired
            | Self::MissingFiles => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized
            | Self::InvalidCredentials
            | Self::TokenMissing
            | Self::TokenUnsupportedScheme
            | Self::TokenMalformed
            | Self::TokenBadSignature
            | Self::TokenAlgNone
            | Self::TokenWrongAlgorithm
            | Self::TokenExpired
            | Self::TokenNotYetValid
            | Self::TokenWrongAudience
            | Self::TokenWrongIssuer
            | Self::TokenRevoked
            | Self::TokenOutdated
            | Self::AccountDisabled
            | Self::TokenUnknownAccount
            | Self::TokenUnknownKey
            | Self::TokenInvalidClaims
            | Self::ApiKeyInvalid
            | Self::ApiKeyExpired => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::InvalidSignature | Self::RegistrationDisabled => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict
            | Self::AlreadyExists
            | Self::PathConflict
            | Self::Stable
            | Self::StableVersion
            | Self::VersionCompleted
            | Self::VersionNotCompleted
            | Self::Deprecated
            | Self::Disabled
            | Self::ParentDisabled
            | Self::UploadInProgress
            | Self::UploadClosed
            | Self::NamespaceNotEmpty
            | Self::RedundantGrant
            | Self::AlreadyGranted
            | Self::NameRetired
            | Self::LastAdmin => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Unprocessable
            | Self::InvalidPassword
            | Self::UnknownPrincipal
            | Self::RoleTooLow
            | Self::NoMaintainerAtProjectLevel
            | Self::InvalidProfile
            | Self::ProfileNotJson
            | Self::UnknownField
            | Self::InvalidAccessRule
            | Self::InvalidPrincipal
            | Self::InvalidExpiry
            | Self::InvalidScope
            | Self::GrantExceedsRole => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::StorageUnavailable
            | Self::IndexUnavailable
            | Self::IdentityProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The snake_case wire name of the code.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidJson => "invalid_json",
            Self::InvalidParameter => "invalid_parameter",
            Self::InvalidName => "invalid_name",
            Self::InvalidPath => "invalid_path",
            Self::InvalidId => "invalid_id",
            Self::InvalidQuery => "invalid_query",
            Self::DigestMismatch => "digest_mismatch",
            Self::InvalidCursor => "invalid_cursor",
            Self::CursorExpired => "cursor_expired",
            Self::MissingFiles => "missing_files",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TokenMissing => "token_missing",
            Self::TokenUnsupportedScheme => "token_unsupported_scheme",
            Self::TokenMalformed => "token_malformed",
            Self::TokenBadSignature => "token_bad_signature",
            Self::TokenAlgNone => "token_alg_none",
            Self::TokenWrongAlgorithm => "token_wrong_algorithm",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::TokenWrongAudience => "token_wrong_audience",
            Self::TokenWrongIssuer => "token_wrong_issuer",
            Self::TokenRevoked => "token_revoked",
            Self::TokenOutdated => "token_outdated",
            Self::AccountDisabled => "account_disabled",
            Self::TokenUnknownAccount => "token_unknown_account",
            Self::TokenUnknownKey => "token_unknown_key",
            Self::TokenInvalidClaims => "token_invalid_claims",
            Self::ApiKeyInvalid => "api_key_invalid",
            Self::ApiKeyExpired => "api_key_expired",
            Self::Forbidden => "forbidden",
            Self::InvalidSignature => "invalid_signature",
            Self::RegistrationDisabled => "registration_disabled",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::AlreadyExists => "already_exists",
            Self::PathConflict => "path_conflict",
            Self::Stable => "stable",
            Self::StableVersion => "stable_version",
            Self::VersionCompleted => "version_completed",
            Self::VersionNotCompleted => "version_not_completed",
            Self::Deprecated => "deprecated",
            Self::Disabled => "disabled",
            Self::ParentDisabled => "parent_disabled",
            Self::UploadInProgress => "upload_in_progress",
            Self::UploadClosed => "upload_closed",
            Self::NamespaceNotEmpty => "namespace_not_empty",
            Self::RedundantGrant => "redundant_grant",
            Self::AlreadyGranted => "already_granted",
            Self::NameRetired => "name_retired",
            Self::LastAdmin => "last_admin",
            Self::PreconditionFailed => "precondition_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::Unprocessable => "unprocessable",
            Self::InvalidPassword => "invalid_password",
            Self::UnknownPrincipal => "unknown_principal",
            Self::RoleTooLow => "role_too_low",
            Self::NoMaintainerAtProjectLevel => "no_maintainer_at_project_level",
            Self::InvalidProfile => "invalid_profile",
            Self::ProfileNotJson => "invalid_json",
            Self::UnknownField => "unknown_field",
            Self::InvalidAccessRule => "invalid_access_rule",
            Self::InvalidPrincipal => "invalid_principal",
            Self::InvalidExpiry => "invalid_expiry",
            Self::InvalidScope => "invalid_scope",
            Self::GrantExceedsRole => "grant_exceeds_role",
            Self::RateLimited => "rate_limited",
            Self::StorageUnavailable => "storage_unavailable",
            Self::IndexUnavailable => "index_unavailable",
            Self::IdentityProviderUnavailable => "identity_provider_unavailable",
            Self::Internal => "internal",
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An error that carries its [`ErrorCode`]: catalog, permission, name and API errors alike.
/// The audit records a mutation's outcome from it, and the API answers with it.
pub trait Coded {
    /// The stable machine code.
    fn error_code(&self) -> ErrorCode;

    /// The HTTP status the code is answered with.
    fn status(&self) -> StatusCode {
        self.error_code().status()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wire body of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Always `"error"`.
    pub status: &'static str,
    /// A human sentence.
    pub reason: String,
    /// The stable machine code.
    pub code: String,
}

/// An error on its way to becoming an HTTP answer.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    reason: String,
    retry_after_secs: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result alias of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a code and a human reason.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            retry_after_secs: None,
            source: None,
        }
    }

    /// Adds a `Retry-After` header.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_secs = Some(seconds);
        self
    }

    /// Keeps the cause for the server log (never shown to clients on a 5xx).
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// `404 not_found`.
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, reason)
    }

    /// `400 bad_request`.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, reason)
    }

    /// `500 internal`, keeping the cause for the log.
    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::new(ErrorCode::Internal, "internal error").with_source(source)
    }

    /// The code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The wire code name.
    #[must_use]
    pub fn code_name(&self) -> &'static str {
        self.code.as_str()
    }

    /// The human reason.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Coded for ApiError {
    fn error_code(&self) -> ErrorCode {
        self.code
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code_name(), self.reason)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// Renders an error and its causes on one line for the log.
fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        current = cause.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        if status.is_server_error() {
            tracing::error!(code = self.code_name(), error = %cause_chain(&self), "request failed");
        } else if let Some(source) = &self.source {
            tracing::debug!(code = self.code_name(), error = %cause_chain(source.as_ref()), "request rejected");
        }
        let body = ErrorBody {
            status: "error",
            reason: self.reason,
            code: self.code.as_str().to_owned(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"trove\""),
            );
        }
        response
    }
}

impl From<crate::catalog::Error> for ApiError {
    fn from(error: crate::catalog::Error) -> Self {
        let (code, reason, retry_after_secs, source) = error.into_parts();
        Self {
            code,
            reason,
            retry_after_secs,
            source,
        }
    }
}

/// Storage errors map once, in [`crate::catalog::Error`].
impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        crate::catalog::Error::from(error).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match &rejection {
            JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ErrorCode::PayloadTooLarge
            }
            JsonRejection::JsonDataError(_) => ErrorCode::Unprocessable,
            _ => ErrorCode::InvalidJson,
        };
        Self::new(code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(ErrorCode::InvalidParameter, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(ErrorCode::BadRequest, rejection.body_text())
    }
}

/// JSON body extractor whose rejection is our error body (use it instead of `axum::Json`).
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query-string extractor whose rejection is our error body.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path extractor whose rejection is our error body.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_snake_case_name_and_a_4xx_or_5xx_status() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::InvalidPath,
            ErrorCode::Unauthorized,
            ErrorCode::NotFound,
            ErrorCode::StorageUnavailable,
            ErrorCode::Internal,
        ] {
            let name = code.as_str();
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert_eq!(serde_json::to_value(code).unwrap(), name);
        }
    }

    #[test]
    fn listed_codes_have_distinct_wire_names_and_error_statuses() {
        let mut names = std::collections::HashSet::new();
        for code in ALL_CODES {
            let name = code.as_str();
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert_eq!(serde_json::to_value(code).unwrap(), name);
            // A wire name is shared only by the two `invalid_json` variants.
            if !names.insert(name) {
                assert_eq!(name, "invalid_json");
            }
        }
        assert_eq!(names.len() + 1, ALL_CODES.len());
    }

    #[test]
    fn storage_unavailable_maps_to_503_with_retry_after() {
        let error: ApiError = StorageError::Unavailable("connection refused".into()).into();
        assert_eq!(error.code(), ErrorCode::StorageUnavailable);
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn backend_errors_do_not_leak_their_message() {
        let error: ApiError = StorageError::Backend("secret path /srv/x".into()).into();
        assert_eq!(error.code(), ErrorCode::Internal);
        assert_eq!(error.reason(), "internal error");
    }
}
