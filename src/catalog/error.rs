//! The catalog's error: an [`ErrorCode`], a human reason and (for the log) a cause. It knows
//! no HTTP: the API turns it into its answer (`From<Error> for ApiError`), the audit records a
//! mutation's outcome from its code ([`Coded`]).
//!
//! The errors of the floors below (storage, names, the permission engine, profiles) become a
//! catalog error here, in one place each.

use std::fmt;

use crate::audit::AuditError;
use crate::auth::jwt::TokenError;
use crate::auth::password::PasswordError;
use crate::auth::service::AuthError;
use crate::auth::store::StoreError;
use crate::error::{Coded, ErrorCode};
use crate::model::names::NameError;
use crate::permissions::{Denial, LoaderError, ProfileError};
use crate::storage::StorageError;
use crate::storage::records::RecordError;

/// A failed domain operation.
#[derive(Debug)]
pub struct Error {
    code: ErrorCode,
    reason: String,
    retry_after_secs: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result alias of the catalog.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a code and a human reason.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            retry_after_secs: None,
            source: None,
        }
    }

    /// `not_found`.
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, reason)
    }

    /// `bad_request`.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, reason)
    }

    /// `internal`, keeping the cause for the log (never shown to clients).
    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::new(ErrorCode::Internal, "internal error").with_source(source)
    }

    /// Keeps the cause for the log.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Asks the client to retry after `seconds`.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_secs = Some(seconds);
        self
    }

    /// The code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human reason.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The retry delay, when the client should retry.
    #[must_use]
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// Splits the error into its parts (for the API's answer).
    #[must_use]
    pub fn into_parts(
        self,
    ) -> (
        ErrorCode,
        String,
        Option<u64>,
        Option<Box<dyn std::error::Error + Send + Sync>>,
    ) {
        (self.code, self.reason, self.retry_after_secs, self.source)
    }
}

impl Coded for Error {
    fn error_code(&self) -> ErrorCode {
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.reason)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl From<StorageError> for Error {
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
                    ErrorCode::PathConflict,
                    "the path clashes with an existing file or folder of the version",
                );
            }
            StorageError::Backend(_) => return Self::internal(error),
        };
        Self::new(code, reason)
    }
}

/// A record failure: storage maps as storage, a record that does not parse is damage
/// (`internal`, the key in the log), an update that kept losing its race `412`.
impl From<RecordError> for Error {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::Storage(storage) => storage.into(),
            RecordError::Corrupt { .. } => Self::internal(error),
            RecordError::Contended { key } => Self::new(
                ErrorCode::PreconditionFailed,
                format!("{key} changed concurrently, retry"),
            ),
        }
    }
}

/// An audit failure: the audit's own keys never clash with a user's path, so a clash there
/// is damage (`internal`); storage otherwise maps as storage.
impl From<AuditError> for Error {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::Storage(StorageError::KeyConflict(why)) => {
                Self::internal(std::io::Error::other(why))
            }
            AuditError::Storage(storage) => storage.into(),
            AuditError::Index(index) => Self::internal(index),
        }
    }
}

/// The code of a rejected token (`401` with a precise code).
pub fn token_code(token: &TokenError) -> ErrorCode {
    match token {
        TokenError::Missing => ErrorCode::TokenMissing,
        TokenError::UnsupportedScheme => ErrorCode::TokenUnsupportedScheme,
        TokenError::Malformed => ErrorCode::TokenMalformed,
        TokenError::BadSignature => ErrorCode::TokenBadSignature,
        TokenError::AlgNone => ErrorCode::TokenAlgNone,
        TokenError::WrongAlgorithm => ErrorCode::TokenWrongAlgorithm,
        TokenError::Expired => ErrorCode::TokenExpired,
        TokenError::NotYetValid => ErrorCode::TokenNotYetValid,
        TokenError::WrongAudience => ErrorCode::TokenWrongAudience,
        TokenError::WrongIssuer => ErrorCode::TokenWrongIssuer,
        TokenError::Revoked => ErrorCode::TokenRevoked,
        TokenError::Outdated => ErrorCode::TokenOutdated,
        TokenError::AccountDisabled => ErrorCode::AccountDisabled,
        TokenError::UnknownAccount => ErrorCode::TokenUnknownAccount,
        TokenError::UnknownKey => ErrorCode::TokenUnknownKey,
        TokenError::InvalidClaims(_) => ErrorCode::TokenInvalidClaims,
        TokenError::ApiKeyInvalid => ErrorCode::ApiKeyInvalid,
        TokenError::ApiKeyExpired => ErrorCode::ApiKeyExpired,
    }
}

/// An account-service failure, each with its precise code.
impl From<AuthError> for Error {
    fn from(error: AuthError) -> Self {
        let reason = error.to_string();
        match error {
            AuthError::Token(token) => Self::new(token_code(&token), reason),
            AuthError::RegistrationDisabled => Self::new(ErrorCode::RegistrationDisabled, reason),
            AuthError::InvalidCredentials => Self::new(ErrorCode::InvalidCredentials, reason),
            AuthError::RateLimited(seconds) => {
                Self::new(ErrorCode::RateLimited, reason).with_retry_after(seconds)
            }
            AuthError::InvalidName(name) => Self::new(name.error_code(), reason),
            AuthError::Password(PasswordError::TooShort | PasswordError::TooLong) => {
                Self::new(ErrorCode::InvalidPassword, reason)
            }
            AuthError::Password(error) => Self::internal(error),
            AuthError::Unprocessable(_) => Self::new(ErrorCode::Unprocessable, reason),
            AuthError::AlreadyExists(_) => Self::new(ErrorCode::AlreadyExists, reason),
            AuthError::NameRetired(_) => Self::new(ErrorCode::NameRetired, reason),
            AuthError::IdentityProviderUnavailable => {
                Self::new(ErrorCode::IdentityProviderUnavailable, reason).with_retry_after(5)
            }
            AuthError::NotFound(_) => Self::not_found(reason),
            AuthError::LastAdmin => Self::new(ErrorCode::LastAdmin, reason),
            AuthError::Unauthenticated => Self::new(ErrorCode::TokenMissing, reason),
            AuthError::Forbidden(_) => Self::new(ErrorCode::Forbidden, reason),
            AuthError::Store(StoreError::Storage(storage)) => storage.into(),
            AuthError::Store(StoreError::Contended { .. }) => {
                Self::new(ErrorCode::PreconditionFailed, "concurrent updates, retry")
            }
            AuthError::Store(error @ StoreError::Corrupt { .. }) => Self::internal(error),
        }
    }
}

/// A search failure: a bad query or parameter is the caller's, the index failing is ours.
impl From<crate::index::search::SearchError> for Error {
    fn from(error: crate::index::search::SearchError) -> Self {
        use crate::index::search::SearchError;
        match error {
            SearchError::InvalidQuery(message) => Self::new(ErrorCode::InvalidQuery, message),
            SearchError::InvalidParameter(message) => {
                Self::new(ErrorCode::InvalidParameter, message)
            }
            SearchError::Index(error) => Self::internal(error),
        }
    }
}

/// A target that could not be loaded: damage (a corrupt record or profile) is `500
/// internal`, with the cause in the log; storage failures map as storage.
impl From<crate::permissions::target::TargetError> for Error {
    fn from(error: crate::permissions::target::TargetError) -> Self {
        use crate::permissions::target::TargetError;
        match error {
            TargetError::Storage(storage) => storage.into(),
            corrupt @ TargetError::Corrupt { .. } => {
                Error::internal(std::io::Error::other(corrupt.to_string()))
            }
            TargetError::Profile(profile) => {
                Error::internal(std::io::Error::other(profile.to_string()))
            }
        }
    }
}

impl Coded for Denial {
    fn error_code(&self) -> ErrorCode {
        match self {
            Denial::NotFound => ErrorCode::NotFound,
            Denial::Unauthenticated => ErrorCode::Unauthorized,
            Denial::Forbidden => ErrorCode::Forbidden,
            Denial::Deprecated => ErrorCode::Deprecated,
            Denial::StableVersion => ErrorCode::StableVersion,
            Denial::VersionCompleted => ErrorCode::VersionCompleted,
            Denial::VersionNotCompleted => ErrorCode::VersionNotCompleted,
            Denial::ParentDisabled => ErrorCode::ParentDisabled,
        }
    }
}

/// A permission denial: `404` (the caller may not know it exists), `401`, `403` or `409`
/// exactly as the engine says.
impl From<Denial> for Error {
    fn from(denial: Denial) -> Self {
        let reason = match denial {
            Denial::NotFound => "not found",
            Denial::Unauthenticated => "authentication required",
            Denial::Forbidden => "not allowed",
            _ => "not possible in the current state",
        };
        Self::new(denial.error_code(), reason)
    }
}

impl Coded for NameError {
    fn error_code(&self) -> ErrorCode {
        match self {
            NameError::Path { .. } => ErrorCode::InvalidPath,
            _ => ErrorCode::InvalidName,
        }
    }
}

impl From<NameError> for Error {
    fn from(error: NameError) -> Self {
        Self::new(error.error_code(), error.to_string())
    }
}

impl Coded for ProfileError {
    fn error_code(&self) -> ErrorCode {
        match self {
            ProfileError::InvalidJson(_) => ErrorCode::ProfileNotJson,
            ProfileError::InvalidProfile(_) => ErrorCode::InvalidProfile,
            ProfileError::UnknownField { .. } => ErrorCode::UnknownField,
            ProfileError::InvalidAccessRule { .. } => ErrorCode::InvalidAccessRule,
            ProfileError::InvalidPrincipal { .. } => ErrorCode::InvalidPrincipal,
            ProfileError::InvalidExpiry { .. } => ErrorCode::InvalidExpiry,
            ProfileError::InvalidScope(_) => ErrorCode::InvalidScope,
            ProfileError::GrantExceedsRole { .. } => ErrorCode::GrantExceedsRole,
        }
    }
}

/// An invalid profile is `422` with the profile error's code.
impl From<ProfileError> for Error {
    fn from(error: ProfileError) -> Self {
        Self::new(error.error_code(), error.to_string())
    }
}

/// A profile loader error: storage as storage, an invalid profile as `422` with its code.
impl From<LoaderError> for Error {
    fn from(error: LoaderError) -> Self {
        match error {
            LoaderError::Storage(storage) => storage.into(),
            LoaderError::Profile { source, .. } => source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_the_lower_floors_keep_their_wire_names() {
        for denial in [
            Denial::NotFound,
            Denial::Forbidden,
            Denial::Deprecated,
            Denial::StableVersion,
            Denial::VersionCompleted,
            Denial::VersionNotCompleted,
            Denial::ParentDisabled,
        ] {
            assert_eq!(denial.error_code().as_str(), denial.code());
            assert_eq!(denial.error_code().status().as_u16(), denial.status_code());
        }
        assert_eq!(
            Denial::Unauthenticated.error_code(),
            ErrorCode::Unauthorized
        );
        for bad in ["{not json", "[1]", r#"{"nope": 1}"#] {
            let error = crate::permissions::Profile::from_json(bad.as_bytes()).unwrap_err();
            assert_eq!(error.error_code().as_str(), error.code(), "{bad}");
        }
    }

    #[test]
    fn a_key_conflict_is_a_path_conflict_and_unavailable_storage_asks_to_retry() {
        let error: Error = StorageError::KeyConflict("a/b".into()).into();
        assert_eq!(error.code(), ErrorCode::PathConflict);
        let error: Error = StorageError::Unavailable("refused".into()).into();
        assert_eq!(error.code(), ErrorCode::StorageUnavailable);
        assert_eq!(error.retry_after_secs(), Some(1));
    }
}
