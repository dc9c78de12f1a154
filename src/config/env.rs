//! The environment mapping: one table, [`ENV_VARS`], with a row per `TROVE_*` variable (its
//! name, whether it is a secret that may come from `<NAME>_FILE`, and the setting it writes
//! through a parser). A new variable is one new row; [`apply`] walks the table in order, so
//! the first bad variable in table order is the one an error names.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::{ConfigError, Secret, Settings};
use crate::storage::StorageKind;

/// Where environment variables come from: the process, or a map in tests.
pub trait EnvSource {
    /// The value of a variable, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// How a variable's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// `NAME` only.
    Plain,
    /// `NAME`, else the contents of the file named by `NAME_FILE` (trailing newlines cut).
    SecretOrFile,
}

/// One row of the environment mapping.
pub(super) struct EnvVar {
    /// The variable's name.
    pub(super) name: &'static str,
    /// How its value is read.
    pub(super) source: Source,
    /// Parses the value (the name is passed for error messages) into its setting.
    pub(super) apply: fn(&mut Settings, &'static str, String) -> Result<(), ConfigError>,
}

/// A row: `var!("NAME", setting.path, parser)`, or `var!(secret "NAME", setting.path, parser)`
/// for a secret that may also come from `NAME_FILE`.
macro_rules! var {
    ($name:literal, $($field:ident).+, $parser:expr) => {
        var!(@row $name, Source::Plain, $($field).+, $parser)
    };
    (secret $name:literal, $($field:ident).+, $parser:expr) => {
        var!(@row $name, Source::SecretOrFile, $($field).+, $parser)
    };
    (@row $name:literal, $source:expr, $($field:ident).+, $parser:expr) => {
        EnvVar {
            name: $name,
            source: $source,
            apply: |settings, name, value| {
                settings.$($field).+ = $parser(name, value)?;
                Ok(())
            },
        }
    };
}

/// Every `TROVE_*` variable, in the order they are applied.
pub(super) const ENV_VARS: &[EnvVar] = &[
    var!("TROVE_LISTEN", listen, parsed),
    var!("TROVE_METRICS_LISTEN", metrics_listen, optional_parsed),
    var!("TROVE_DATA_DIR", data_dir, path),
    var!("TROVE_PUBLIC_URL", public_url, optional_text),
    var!("TROVE_TRUSTED_PROXIES", trusted_proxies, proxies),
    var!("TROVE_STORAGE", storage, storage_kind),
    var!("TROVE_STORAGE_TIMEOUT_MS", storage_timeout_ms, parsed),
    var!("TROVE_S3_BUCKET", s3.bucket, optional_text),
    var!("TROVE_S3_ENDPOINT", s3.endpoint, optional_text),
    var!("TROVE_S3_REGION", s3.region, optional_text),
    var!("TROVE_S3_PREFIX", s3.prefix, text),
    var!("TROVE_S3_PATH_STYLE", s3.path_style, boolean),
    var!("TROVE_S3_ACCESS_KEY_ID", s3.access_key_id, optional_text),
    var!(secret "TROVE_S3_SECRET_ACCESS_KEY", s3.secret_access_key, secret),
    var!(
        "TROVE_S3_PUBLIC_ENDPOINT",
        s3.public_endpoint,
        optional_text
    ),
    var!(secret "TROVE_PRESIGN_SECRET", presign_secret, secret),
    var!(secret "TROVE_CURSOR_SECRET", cursor_secret, secret),
    var!(secret "TROVE_UI_SECRET", ui_secret, secret),
    var!(secret "TROVE_AUDIT_CHECKPOINT_SECRET", audit_checkpoint_secret, secret),
    var!("TROVE_MAX_JSON_BYTES", max_json_bytes, parsed),
    var!("TROVE_FEED_POLL_MS", feed_poll_ms, parsed),
    var!("TROVE_FEED_RETENTION_SECS", feed_retention_secs, parsed),
    var!("TROVE_PRESIGN_TTL_SECS", presign_ttl_secs, parsed),
    var!("TROVE_SYNC_CRON", sync_cron, text),
    var!("TROVE_PURGE_CRON", purge_cron, text),
    var!("TROVE_REVOCATION_PURGE_CRON", revocation_purge_cron, text),
    var!("TROVE_AUTO_REPAIR", auto_repair, boolean),
    var!("TROVE_AUDIT_SEARCHES", audit_searches, boolean),
    var!("TROVE_LOG", log, text),
    var!("TROVE_LOG_JSON", log_json, boolean),
    // [auth]
    var!(secret "TROVE_JWT_SECRET", auth.jwt_secret, secret),
    var!("TROVE_TOKEN_TTL_SECS", auth.token_ttl_secs, parsed),
    var!("TROVE_JWT_ISSUER", auth.jwt_issuer, text),
    var!("TROVE_JWT_AUDIENCE", auth.jwt_audience, text),
    var!("TROVE_ALLOW_REGISTRATION", auth.allow_registration, boolean),
    var!("TROVE_DEFAULT_ROLE", auth.default_role, role),
    var!(secret "TROVE_BOOTSTRAP_ADMIN", auth.bootstrap_admin, non_empty_secret),
    var!(
        "TROVE_LOGIN_RATE_LIMIT_PER_USER_IP",
        auth.login_rate_limit_per_user_ip,
        parsed
    ),
    var!(
        "TROVE_REGISTER_RATE_LIMIT_PER_IP",
        auth.register_rate_limit_per_ip,
        parsed
    ),
    var!(
        "TROVE_LOGIN_RATE_LIMIT_PER_USER",
        auth.login_rate_limit_per_user,
        parsed
    ),
    var!(
        "TROVE_LOGIN_RATE_LIMIT_PER_IP",
        auth.login_rate_limit_per_ip,
        parsed
    ),
    var!(
        "TROVE_LOGIN_RATE_LIMIT_WINDOW_SECS",
        auth.login_rate_limit_window_secs,
        parsed
    ),
    // [oidc]
    var!("TROVE_OIDC_JWKS_FILE", oidc.jwks_file, optional_path),
    var!("TROVE_OIDC_JWKS_URL", oidc.jwks_url, optional_text),
    var!("TROVE_OIDC_ISSUER", oidc.issuer, optional_text),
    var!("TROVE_OIDC_AUDIENCE", oidc.audience, optional_text),
    var!("TROVE_OIDC_USERNAME_CLAIM", oidc.username_claim, text),
    var!("TROVE_OIDC_GROUPS_CLAIM", oidc.groups_claim, text),
    var!("TROVE_OIDC_ROLE_CLAIM", oidc.role_claim, text),
    var!("TROVE_OIDC_DEFAULT_ROLE", oidc.default_role, role),
    var!("TROVE_OIDC_GROUP_PATTERN", oidc.group_pattern, text),
];

/// Applies every variable of [`ENV_VARS`] that is set, in table order.
pub(super) fn apply(settings: &mut Settings, env: &dyn EnvSource) -> Result<(), ConfigError> {
    for var in ENV_VARS {
        let value = match var.source {
            Source::Plain => env.var(var.name),
            Source::SecretOrFile => secret_value(env, var.name)?,
        };
        if let Some(value) = value {
            (var.apply)(settings, var.name, value)?;
        }
    }
    Ok(())
}

/// A secret from `NAME`, or read from the file named by `NAME_FILE`.
fn secret_value(env: &dyn EnvSource, name: &str) -> Result<Option<String>, ConfigError> {
    if let Some(value) = env.var(name) {
        return Ok(Some(value));
    }
    let file_setting = format!("{name}_FILE");
    match env.var(&file_setting) {
        Some(path) => std::fs::read_to_string(&path)
            .map(|text| Some(text.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|error| {
                ConfigError::new(file_setting, format!("cannot read {path}: {error}"))
            }),
        None => Ok(None),
    }
}

// The parsers: each takes the variable's name (for the error) and its value.

fn parsed<T: std::str::FromStr>(setting: &str, value: String) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|error| ConfigError::new(setting, format!("{error} (got {value:?})")))
}

/// Empty means unset; anything else is parsed.
fn optional_parsed<T: std::str::FromStr>(
    setting: &str,
    value: String,
) -> Result<Option<T>, ConfigError>
where
    T::Err: fmt::Display,
{
    non_empty(value)
        .map(|value| parsed(setting, value))
        .transpose()
}

fn boolean(setting: &str, value: String) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(ConfigError::new(
            setting,
            format!("expected true or false, got {other:?}"),
        )),
    }
}

fn proxies(setting: &str, value: String) -> Result<super::TrustedProxies, ConfigError> {
    super::TrustedProxies::parse(&value).map_err(|message| ConfigError::new(setting, message))
}

fn text(_: &str, value: String) -> Result<String, ConfigError> {
    Ok(value)
}

/// Empty means unset.
fn optional_text(_: &str, value: String) -> Result<Option<String>, ConfigError> {
    Ok(non_empty(value))
}

fn path(_: &str, value: String) -> Result<PathBuf, ConfigError> {
    Ok(PathBuf::from(value))
}

/// Empty means unset.
fn optional_path(_: &str, value: String) -> Result<Option<PathBuf>, ConfigError> {
    Ok(non_empty(value).map(PathBuf::from))
}

/// A role name, trimmed and lower-cased (checked against the roles by `validate`).
fn role(_: &str, value: String) -> Result<String, ConfigError> {
    Ok(value.trim().to_ascii_lowercase())
}

fn storage_kind(setting: &str, value: String) -> Result<StorageKind, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "local" => Ok(StorageKind::Local),
        "s3" => Ok(StorageKind::S3),
        other => Err(ConfigError::new(
            setting,
            format!("expected local or s3, got {other:?}"),
        )),
    }
}

fn secret(_: &str, value: String) -> Result<Option<Secret>, ConfigError> {
    Ok(Some(Secret::new(value)))
}

/// A secret whose empty value means unset.
fn non_empty_secret(_: &str, value: String) -> Result<Option<Secret>, ConfigError> {
    Ok((!value.is_empty()).then(|| Secret::new(value)))
}

fn non_empty(value: String) -> Option<String> {
    if value.trim().is_empty() {
        None
    } else {
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_variable_is_one_distinct_trove_row() {
        let mut names = BTreeSet::new();
        for var in ENV_VARS {
            assert!(var.name.starts_with("TROVE_"), "{}", var.name);
            assert!(names.insert(var.name), "{} is mapped twice", var.name);
        }
        // A secret's `<NAME>_FILE` must not be another row's variable.
        for var in ENV_VARS
            .iter()
            .filter(|var| var.source == Source::SecretOrFile)
        {
            let file = format!("{}_FILE", var.name);
            assert!(!names.contains(file.as_str()), "{file} is also a row");
        }
    }

    #[test]
    fn a_secret_comes_from_its_file_and_a_plain_variable_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwt.key");
        std::fs::write(&file, "from-the-file-0123456789-abcdefghij\n").unwrap();
        let env: BTreeMap<String, String> = [
            ("TROVE_JWT_SECRET_FILE", file.display().to_string()),
            ("TROVE_LISTEN_FILE", file.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut settings = Settings::default();
        apply(&mut settings, &env).unwrap();
        assert_eq!(
            settings.auth.jwt_secret.as_ref().map(Secret::expose),
            Some("from-the-file-0123456789-abcdefghij")
        );
        assert_eq!(settings.listen, Settings::default().listen);
        let missing: BTreeMap<String, String> = [(
            "TROVE_UI_SECRET_FILE".to_owned(),
            "/nonexistent/x".to_owned(),
        )]
        .into();
        let error = apply(&mut Settings::default(), &missing).unwrap_err();
        assert_eq!(error.setting, "TROVE_UI_SECRET_FILE");
    }
}
