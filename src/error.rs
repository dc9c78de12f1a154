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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
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
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// Authentication is required (or the credentials given are not valid).
    Unauthorized,
    /// Authenticated, but not allowed.
    Forbidden,
    /// A presigned URL is expired, tampered with, or used with another method.
    InvalidSignature,
    /// Nothing here (or nothing the caller may know about).
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// The resource to create already exists.
    AlreadyExists,
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
            | Self::DigestMismatch => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::InvalidSignature => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::AlreadyExists => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
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
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::InvalidSignature => "invalid_signature",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::AlreadyExists => "already_exists",
            Self::PreconditionFailed => "precondition_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::Unprocessable => "unprocessable",
            Self::RateLimited => "rate_limited",
            Self::StorageUnavailable => "storage_unavailable",
            Self::IndexUnavailable => "index_unavailable",
            Self::IdentityProviderUnavailable => "identity_provider_unavailable",
            Self::Internal => "internal",
        }
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
    /// Overrides the code's wire name (for finer codes such as `token_expired`).
    code_name: Option<&'static str>,
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
            code_name: None,
            reason: reason.into(),
            retry_after_secs: None,
            source: None,
        }
    }

    /// A finer wire code under the same status (e.g. `token_expired` under `unauthorized`).
    #[must_use]
    pub fn with_code_name(mut self, name: &'static str) -> Self {
        self.code_name = Some(name);
        self
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
        self.code_name.unwrap_or_else(|| self.code.as_str())
    }

    /// The human reason.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
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
            code: self
                .code_name
                .unwrap_or_else(|| self.code.as_str())
                .to_owned(),
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

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        let reason = error.to_string();
        let code = match &error {
            StorageError::NotFound { .. } => ErrorCode::NotFound,
            StorageError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            StorageError::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
            StorageError::DigestMismatch { .. } => ErrorCode::DigestMismatch,
            StorageError::InvalidKey(_) => ErrorCode::InvalidPath,
            StorageError::InvalidRange { .. } => ErrorCode::RangeNotSatisfiable,
            StorageError::Unavailable(_) => {
                return Self::new(
                    ErrorCode::StorageUnavailable,
                    "object storage is unavailable, retry later",
                )
                .with_retry_after(1)
                .with_source(error);
            }
            StorageError::Body(_) => ErrorCode::BadRequest,
            StorageError::PresignInvalid(_) => ErrorCode::InvalidSignature,
            StorageError::KeyConflict(_) => {
                return Self::new(
                    ErrorCode::Conflict,
                    "the path clashes with an existing file or folder of the version",
                )
                .with_code_name("path_conflict");
            }
            StorageError::Backend(_) => return Self::internal(error),
        };
        Self::new(code, reason)
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
