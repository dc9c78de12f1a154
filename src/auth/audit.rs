//! The audit hook point of authentication: every login success and failure (and the other
//! account events) goes through [`AuditHook::record`]. The default hook only emits a
//! `tracing` event; the audit module persists them. Events never carry a password, a token or
//! a secret.

use chrono::{DateTime, Utc};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthEventKind {
    /// A password login succeeded.
    LoginSucceeded,
    /// A password login failed (wrong credentials, disabled account).
    LoginFailed,
    /// A login attempt was refused by the rate limiter.
    LoginRateLimited,
    /// An account registered itself.
    Registered,
    /// A token was revoked by logout.
    LoggedOut,
    /// An account changed its password.
    PasswordChanged,
}

impl AuthEventKind {
    /// The action name (`auth.login`, ...).
    #[must_use]
    pub fn action(self) -> &'static str {
        match self {
            Self::LoginSucceeded | Self::LoginFailed | Self::LoginRateLimited => "auth.login",
            Self::Registered => "auth.register",
            Self::LoggedOut => "auth.logout",
            Self::PasswordChanged => "auth.password",
        }
    }

    /// `success` or `failure`.
    #[must_use]
    pub fn outcome(self) -> &'static str {
        match self {
            Self::LoginFailed | Self::LoginRateLimited => "failure",
            _ => "success",
        }
    }
}

/// One authentication event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    /// What happened.
    pub kind: AuthEventKind,
    /// The username concerned (as typed, for failures).
    pub username: String,
    /// The client address, when known.
    pub address: Option<String>,
    /// Why it failed (`invalid_credentials`, `account_disabled`, `rate_limited`).
    pub reason: Option<&'static str>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Receives authentication events.
pub trait AuditHook: Send + Sync + std::fmt::Debug + 'static {
    /// Records one event (must not block for long: called on the request path).
    fn record(&self, event: AuthEvent);
}

/// The default hook: one `tracing` event per authentication event.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAuditHook;

impl AuditHook for TracingAuditHook {
    fn record(&self, event: AuthEvent) {
        tracing::info!(
            action = event.kind.action(),
            outcome = event.kind.outcome(),
            username = %event.username,
            address = event.address.as_deref().unwrap_or("-"),
            reason = event.reason.unwrap_or("-"),
            "auth event"
        );
    }
}
