//! The auth section: local accounts and tokens (`[auth]` of `trove.toml`, `TROVE_JWT_*`,
//! `TROVE_TOKEN_TTL_SECS`, `TROVE_LOGIN_RATE_LIMIT_*`, ...).

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

/// The role names an account may have (SPEC §3), for validating role settings before the
/// permission engine parses them.
pub const ROLE_NAMES: [&str; 6] = [
    "admin",
    "reviewer",
    "maintainer",
    "developer",
    "guest",
    "machine",
];

/// Local accounts and tokens (`[auth]` in `trove.toml`, `TROVE_JWT_*`, `TROVE_TOKEN_TTL_SECS`,
/// `TROVE_ALLOW_REGISTRATION`, `TROVE_DEFAULT_ROLE`, `TROVE_BOOTSTRAP_ADMIN`,
/// `TROVE_LOGIN_RATE_LIMIT_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 signing secret of access tokens (`TROVE_JWT_SECRET[_FILE]`, at least 32
    /// characters); generated and kept in `secrets/jwt.key` of the data directory when absent.
    pub jwt_secret: Option<Secret>,
    /// Access-token lifetime in seconds (`TROVE_TOKEN_TTL_SECS`, default 3600).
    pub token_ttl_secs: u64,
    /// `iss` of the tokens this service issues (`TROVE_JWT_ISSUER`, default `trove`).
    pub jwt_issuer: String,
    /// `aud` of the tokens this service issues and accepts (`TROVE_JWT_AUDIENCE`, default
    /// `trove`).
    pub jwt_audience: String,
    /// Whether `POST /auth/register` is open (`TROVE_ALLOW_REGISTRATION`, default true).
    pub allow_registration: bool,
    /// Role of self-registered accounts (`TROVE_DEFAULT_ROLE`, default `maintainer`).
    pub default_role: String,
    /// `<name>:<password>` of an admin created at start-up when no admin exists
    /// (`TROVE_BOOTSTRAP_ADMIN[_FILE]`).
    pub bootstrap_admin: Option<Secret>,
    /// Login and password-change attempts per (username, client address) within the window
    /// (`TROVE_LOGIN_RATE_LIMIT_PER_USER_IP`, default 10; successful ones give their slot back;
    /// 0 disables): an attacker's address locks out only itself.
    pub login_rate_limit_per_user_ip: u32,
    /// Login attempts per username within the window, from every address together
    /// (`TROVE_LOGIN_RATE_LIMIT_PER_USER`, default 100; successful logins give their slot
    /// back; 0 disables).
    pub login_rate_limit_per_user: u32,
    /// Login attempts per client address within the window
    /// (`TROVE_LOGIN_RATE_LIMIT_PER_IP`, default 50; successful logins give their slot back;
    /// 0 disables).
    pub login_rate_limit_per_ip: u32,
    /// Length of the rate-limit window in seconds (`TROVE_LOGIN_RATE_LIMIT_WINDOW_SECS`,
    /// default 60).
    pub login_rate_limit_window_secs: u64,
    /// Registrations (`POST /auth/register`, successful or not) per client address per hour
    /// (`TROVE_REGISTER_RATE_LIMIT_PER_IP`, default 20; 0 disables).
    pub register_rate_limit_per_ip: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            token_ttl_secs: 3600,
            jwt_issuer: "trove".to_owned(),
            jwt_audience: "trove".to_owned(),
            allow_registration: true,
            default_role: "maintainer".to_owned(),
            bootstrap_admin: None,
            login_rate_limit_per_user_ip: 10,
            login_rate_limit_per_user: 100,
            login_rate_limit_per_ip: 50,
            login_rate_limit_window_secs: 60,
            register_rate_limit_per_ip: 20,
        }
    }
}

impl AuthConfig {
    /// Checks the token, registration and rate-limit settings.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let auth = self;
        if let Some(secret) = &auth.jwt_secret
            && secret.expose().len() < 32
        {
            return Err(ConfigError::new(
                "TROVE_JWT_SECRET",
                "must be at least 32 characters",
            ));
        }
        if auth.token_ttl_secs < 60 || auth.token_ttl_secs > 30 * 24 * 3600 {
            return Err(ConfigError::new(
                "TROVE_TOKEN_TTL_SECS",
                "must be between 60 and 2592000 (30 days)",
            ));
        }
        if auth.jwt_issuer.trim().is_empty() {
            return Err(ConfigError::new("TROVE_JWT_ISSUER", "must not be empty"));
        }
        if auth.jwt_audience.trim().is_empty() {
            return Err(ConfigError::new("TROVE_JWT_AUDIENCE", "must not be empty"));
        }
        validate_role("TROVE_DEFAULT_ROLE", &auth.default_role, false)?;
        if let Some(bootstrap) = &auth.bootstrap_admin {
            // Never echo the value: it holds a password.
            match bootstrap.expose().split_once(':') {
                Some((name, password)) if !name.is_empty() && password.chars().count() >= 8 => {}
                _ => {
                    return Err(ConfigError::new(
                        "TROVE_BOOTSTRAP_ADMIN",
                        "must be <username>:<password> with a password of at least 8 characters",
                    ));
                }
            }
        }
        if auth.login_rate_limit_window_secs == 0 || auth.login_rate_limit_window_secs > 86_400 {
            return Err(ConfigError::new(
                "TROVE_LOGIN_RATE_LIMIT_WINDOW_SECS",
                "must be between 1 and 86400",
            ));
        }
        Ok(())
    }
}

/// Checks a role setting against [`ROLE_NAMES`] (`machine` only where `allow_machine`).
pub(super) fn validate_role(
    setting: &str,
    role: &str,
    allow_machine: bool,
) -> Result<(), ConfigError> {
    if ROLE_NAMES.contains(&role) && (allow_machine || role != "machine") {
        Ok(())
    } else {
        Err(ConfigError::new(
            setting,
            format!("expected one of admin, reviewer, maintainer, developer, guest; got {role:?}"),
        ))
    }
}
