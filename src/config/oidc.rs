//! The oidc section: an external identity provider (`[oidc]` of `trove.toml`, `TROVE_OIDC_*`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::auth::validate_role;

/// An external OpenID Connect identity provider whose tokens are accepted (`[oidc]` in
/// `trove.toml`, `TROVE_OIDC_*`). Disabled unless a JWKS file or URL is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// JWKS file with the provider's public keys (`TROVE_OIDC_JWKS_FILE`).
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL with the provider's public keys (`TROVE_OIDC_JWKS_URL`), fetched at start-up
    /// and refreshed when a token names an unknown `kid`.
    pub jwks_url: Option<String>,
    /// Required `iss` (`TROVE_OIDC_ISSUER`; required when the provider is enabled).
    pub issuer: Option<String>,
    /// Required `aud` (`TROVE_OIDC_AUDIENCE`; required when the provider is enabled).
    pub audience: Option<String>,
    /// Claim holding the username (`TROVE_OIDC_USERNAME_CLAIM`, default
    /// `preferred_username`).
    pub username_claim: String,
    /// Claim holding the directory groups, a list of strings (`TROVE_OIDC_GROUPS_CLAIM`,
    /// default `groups`).
    pub groups_claim: String,
    /// Claim holding the role (`TROVE_OIDC_ROLE_CLAIM`, default `trove_role`); when absent
    /// from a token, the role is `default_role`.
    pub role_claim: String,
    /// Role of external users whose token has no role claim (`TROVE_OIDC_DEFAULT_ROLE`,
    /// default `guest`).
    pub default_role: String,
    /// Only directory groups matching this regex are kept (`TROVE_OIDC_GROUP_PATTERN`,
    /// default `^CN=`), bounding the size of the search filter.
    pub group_pattern: String,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            jwks_file: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            username_claim: "preferred_username".to_owned(),
            groups_claim: "groups".to_owned(),
            role_claim: "trove_role".to_owned(),
            default_role: "guest".to_owned(),
            group_pattern: "^CN=".to_owned(),
        }
    }
}

impl OidcConfig {
    /// Whether an external provider is configured.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.jwks_file.is_some() || self.jwks_url.is_some()
    }

    /// Checks the provider settings; `jwt_issuer` is the issuer of this service's own tokens,
    /// which an external issuer must differ from.
    pub(super) fn validate(&self, jwt_issuer: &str) -> Result<(), ConfigError> {
        let oidc = self;
        regex::Regex::new(&oidc.group_pattern)
            .map_err(|error| ConfigError::new("TROVE_OIDC_GROUP_PATTERN", error.to_string()))?;
        validate_role("TROVE_OIDC_DEFAULT_ROLE", &oidc.default_role, false)?;
        for (setting, claim) in [
            ("TROVE_OIDC_USERNAME_CLAIM", &oidc.username_claim),
            ("TROVE_OIDC_GROUPS_CLAIM", &oidc.groups_claim),
            ("TROVE_OIDC_ROLE_CLAIM", &oidc.role_claim),
        ] {
            if claim.trim().is_empty() {
                return Err(ConfigError::new(setting, "must not be empty"));
            }
        }
        if let Some(url) = &oidc.jwks_url {
            let parsed = url::Url::parse(url)
                .map_err(|error| ConfigError::new("TROVE_OIDC_JWKS_URL", error.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(ConfigError::new(
                    "TROVE_OIDC_JWKS_URL",
                    "must be an http(s) URL with a host",
                ));
            }
        }
        if oidc.enabled() {
            if oidc.issuer.is_none() {
                return Err(ConfigError::new(
                    "TROVE_OIDC_ISSUER",
                    "required when TROVE_OIDC_JWKS_FILE or TROVE_OIDC_JWKS_URL is set",
                ));
            }
            if oidc.audience.is_none() {
                return Err(ConfigError::new(
                    "TROVE_OIDC_AUDIENCE",
                    "required when TROVE_OIDC_JWKS_FILE or TROVE_OIDC_JWKS_URL is set",
                ));
            }
            if oidc.issuer.as_deref() == Some(jwt_issuer) {
                return Err(ConfigError::new(
                    "TROVE_OIDC_ISSUER",
                    "must differ from TROVE_JWT_ISSUER",
                ));
            }
        }
        Ok(())
    }
}
