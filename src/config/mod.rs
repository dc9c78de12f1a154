//! Settings: defaults that work on a laptop, overridden by an optional `trove.toml`, then by
//! `TROVE_*` environment variables (secrets also from `TROVE_*_FILE`), then by command-line
//! flags. [`Settings::validate`] runs at start-up and names the setting that is wrong.

//!
//! One file per section: `storage.rs` ([`S3Config`], `[s3]`), `auth.rs` ([`AuthConfig`],
//! `[auth]`), `oidc.rs` ([`OidcConfig`], `[oidc]`), `secret.rs` (the masked [`Secret`]); the
//! top-level settings live here. Every `TROVE_*` variable is one row of the table in
//! `env.rs` (`ENV_VARS`: name, setting, parser).

mod auth;
mod env;
mod oidc;
mod proxies;
mod secret;
mod storage;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::storage::StorageKind;

/// A configuration error, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {message}")]
pub struct ConfigError {
    /// The setting (environment variable name, or `trove.toml` key) at fault.
    pub setting: String,
    /// What is wrong with it.
    pub message: String,
}

pub use auth::{AuthConfig, ROLE_NAMES};
pub use env::{EnvSource, ProcessEnv};
pub use oidc::OidcConfig;
pub use proxies::{Network, TrustedProxies};
pub use secret::Secret;
pub use storage::S3Config;

impl ConfigError {
    fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

/// Every setting of the service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on (`TROVE_LISTEN`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Separate address serving `/metrics` without authentication (`TROVE_METRICS_LISTEN`);
    /// when set, the main listener no longer serves it. Unset: `/metrics` is for admins.
    pub metrics_listen: Option<SocketAddr>,
    /// Directory for local storage, the index and generated secrets (`TROVE_DATA_DIR`,
    /// default `./data`).
    pub data_dir: PathBuf,
    /// URL clients reach this service at, used in links and presigned URLs
    /// (`TROVE_PUBLIC_URL`, default `http://<listen>`).
    pub public_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`TROVE_TRUSTED_PROXIES`:
    /// comma-separated addresses and networks such as `10.0.0.0/8`; default none, the TCP
    /// peer is the client). The client address keys the login limits and is audited.
    pub trusted_proxies: TrustedProxies,
    /// Storage backend (`TROVE_STORAGE`: `local` or `s3`).
    pub storage: StorageKind,
    /// Storage operations giving no answer within this many milliseconds fail with `503
    /// storage_unavailable` (`TROVE_STORAGE_TIMEOUT_MS`, default 5000).
    pub storage_timeout_ms: u64,
    /// S3 settings.
    pub s3: S3Config,
    /// Secret signing local presigned URLs (`TROVE_PRESIGN_SECRET[_FILE]`); generated and
    /// kept in the data directory when absent.
    pub presign_secret: Option<Secret>,
    /// Key signing scroll cursors (`TROVE_CURSOR_SECRET[_FILE]`, at least 32 characters);
    /// generated and kept in `secrets/cursor.key` of the data directory when absent, which
    /// suits one process: replicas behind one load balancer must share it so that any of them
    /// serves a cursor another made.
    pub cursor_secret: Option<Secret>,
    /// Key of the web interface's CSRF tokens (`TROVE_UI_SECRET[_FILE]`, at least 32
    /// characters). When absent it is derived from `TROVE_JWT_SECRET` when that is set (HMAC
    /// domain separation: replicas sharing the token key share this one too), else generated
    /// and kept in `secrets/ui-csrf.key` of the data directory.
    pub ui_secret: Option<Secret>,
    /// Key signing the audit chain's checkpoints (`TROVE_AUDIT_CHECKPOINT_SECRET[_FILE]`, at
    /// least 32 characters; never stored in the bucket); generated and kept in
    /// `secrets/audit-checkpoint.key` of the data directory when absent.
    pub audit_checkpoint_secret: Option<Secret>,
    /// Largest JSON body accepted, in bytes (`TROVE_MAX_JSON_BYTES`, default 2 MiB); also the
    /// cap of a metadata document on every path that writes one, and in the indexer.
    pub max_json_bytes: usize,
    /// Longest life of a presigned upload URL, in seconds (`TROVE_PRESIGN_TTL_SECS`, default
    /// 3600); never past the upload's `complete_before` either.
    pub presign_ttl_secs: u64,
    /// Cron (six fields, seconds first) of the global sync check (`TROVE_SYNC_CRON`, default
    /// every 5 minutes; empty disables it).
    pub sync_cron: String,
    /// Whether the scheduled sync check repairs the drift it finds (`TROVE_AUTO_REPAIR`,
    /// default true).
    pub auto_repair: bool,
    /// Cron (six fields, seconds first) of the purge of uploads not completed in time and of
    /// expired transient versions (`TROVE_PURGE_CRON`, default every 10 minutes; empty
    /// disables it).
    pub purge_cron: String,
    /// Cron (six fields, seconds first) of the purge of revoked-token records past their
    /// token's expiry (`TROVE_REVOCATION_PURGE_CRON`, default hourly; empty disables it).
    pub revocation_purge_cron: String,
    /// How often this replica reads the change feed for changes made by other replicas, in
    /// milliseconds (`TROVE_FEED_POLL_MS`, default 250; 0 disables following — only for a
    /// single process).
    pub feed_poll_ms: u64,
    /// How long change feed entries are kept, in seconds (`TROVE_FEED_RETENTION_SECS`,
    /// default 86400); a replica down for longer rebuilds its index when it returns.
    pub feed_retention_secs: u64,
    /// Whether searches, scrolls and aggregations are audited as `search.query` read events
    /// (`TROVE_AUDIT_SEARCHES`, default false: they are frequent and change nothing).
    pub audit_searches: bool,
    /// Log filter (`TROVE_LOG`, `RUST_LOG` syntax, default `info`).
    pub log: String,
    /// Log as JSON lines instead of text (`TROVE_LOG_JSON`).
    pub log_json: bool,
    /// Local accounts and tokens.
    pub auth: AuthConfig,
    /// External identity provider.
    pub oidc: OidcConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            data_dir: PathBuf::from("./data"),
            public_url: None,
            trusted_proxies: TrustedProxies::default(),
            storage: StorageKind::Local,
            storage_timeout_ms: 5000,
            s3: S3Config::default(),
            presign_secret: None,
            cursor_secret: None,
            ui_secret: None,
            audit_checkpoint_secret: None,
            max_json_bytes: 2 * 1024 * 1024,
            presign_ttl_secs: 3600,
            sync_cron: "0 */5 * * * *".to_owned(),
            auto_repair: true,
            purge_cron: "0 */10 * * * *".to_owned(),
            revocation_purge_cron: "0 17 * * * *".to_owned(),
            feed_poll_ms: 250,
            feed_retention_secs: 86_400,
            audit_searches: false,
            log: "info".to_owned(),
            log_json: false,
            auth: AuthConfig::default(),
            oidc: OidcConfig::default(),
        }
    }
}

/// Command-line overrides, which win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

impl Settings {
    /// Loads the settings: defaults, then the TOML file (when `config_file` is given it must
    /// exist; otherwise `./trove.toml` is read if present), then the environment, then
    /// `overrides`; and validates the result.
    pub fn load(
        config_file: Option<&Path>,
        env: &dyn EnvSource,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let file_text = match config_file {
            Some(path) => Some((
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|error| {
                    ConfigError::new(
                        "--config",
                        format!("cannot read {}: {error}", path.display()),
                    )
                })?,
            )),
            None => std::fs::read_to_string("trove.toml")
                .ok()
                .map(|text| ("trove.toml".to_owned(), text)),
        };
        let mut settings = match file_text {
            Some((name, text)) => Self::from_toml(&name, &text)?,
            None => Self::default(),
        };
        settings.apply_env(env)?;
        if let Some(listen) = overrides.listen {
            settings.listen = listen;
        }
        if let Some(data_dir) = &overrides.data_dir {
            settings.data_dir.clone_from(data_dir);
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Parses a `trove.toml` document over the defaults.
    pub fn from_toml(file_name: &str, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| {
            ConfigError::new(
                file_name,
                error.message().to_owned() + &span_hint(text, error.span()),
            )
        })
    }

    /// Applies `TROVE_*` variables over the current values.
    /// Applies `TROVE_*` variables over the current values, in the order of
    /// the table of `config/env.rs` (`ENV_VARS`).
    pub fn apply_env(&mut self, env: &dyn EnvSource) -> Result<(), ConfigError> {
        env::apply(self, env)
    }

    /// Checks the settings are coherent; the error names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("TROVE_DATA_DIR", "must not be empty"));
        }
        if let Some(public_url) = &self.public_url {
            let parsed = url::Url::parse(public_url)
                .map_err(|error| ConfigError::new("TROVE_PUBLIC_URL", error.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(ConfigError::new(
                    "TROVE_PUBLIC_URL",
                    "must be an http(s) URL with a host",
                ));
            }
        }
        if self.storage_timeout_ms == 0 || self.storage_timeout_ms > 600_000 {
            return Err(ConfigError::new(
                "TROVE_STORAGE_TIMEOUT_MS",
                "must be between 1 and 600000",
            ));
        }
        if !(60..=604_800).contains(&self.presign_ttl_secs) {
            return Err(ConfigError::new(
                "TROVE_PRESIGN_TTL_SECS",
                "must be between 60 and 604800 (seven days)",
            ));
        }
        if self.feed_poll_ms > 60_000 {
            return Err(ConfigError::new(
                "TROVE_FEED_POLL_MS",
                "must be at most 60000 (0 disables following)",
            ));
        }
        if self.feed_retention_secs < 60 {
            return Err(ConfigError::new(
                "TROVE_FEED_RETENTION_SECS",
                "must be at least 60",
            ));
        }
        if self.max_json_bytes < 1024 {
            return Err(ConfigError::new(
                "TROVE_MAX_JSON_BYTES",
                "must be at least 1024",
            ));
        }
        for (setting, secret) in [
            ("TROVE_PRESIGN_SECRET", &self.presign_secret),
            ("TROVE_CURSOR_SECRET", &self.cursor_secret),
            ("TROVE_UI_SECRET", &self.ui_secret),
            (
                "TROVE_AUDIT_CHECKPOINT_SECRET",
                &self.audit_checkpoint_secret,
            ),
        ] {
            if secret
                .as_ref()
                .is_some_and(|secret| secret.expose().len() < 32)
            {
                return Err(ConfigError::new(setting, "must be at least 32 characters"));
            }
        }
        if self
            .metrics_listen
            .is_some_and(|metrics| metrics == self.listen && metrics.port() != 0)
        {
            return Err(ConfigError::new(
                "TROVE_METRICS_LISTEN",
                "must differ from TROVE_LISTEN",
            ));
        }
        for (setting, cron) in [
            ("TROVE_SYNC_CRON", &self.sync_cron),
            ("TROVE_PURGE_CRON", &self.purge_cron),
            ("TROVE_REVOCATION_PURGE_CRON", &self.revocation_purge_cron),
        ] {
            let fields = cron.split_whitespace().count();
            if !cron.trim().is_empty() && !(6..=7).contains(&fields) {
                return Err(ConfigError::new(
                    setting,
                    "expected six fields (sec min hour day month weekday), or empty to disable",
                ));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|error| ConfigError::new("TROVE_LOG", error.to_string()))?;
        self.auth.validate()?;
        self.oidc.validate(&self.auth.jwt_issuer)?;
        if self.storage == StorageKind::S3 {
            self.s3.validate()?;
        }
        Ok(())
    }

    /// The URL clients reach this service at, without a trailing slash.
    #[must_use]
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The storage timeout as a duration.
    #[must_use]
    pub fn storage_timeout(&self) -> Duration {
        Duration::from_millis(self.storage_timeout_ms)
    }

    /// The effective configuration as TOML, secrets masked (for `trove check-config`).
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|error| format!("# cannot render: {error}\n"))
    }
}

/// " (line N)" for a TOML error span, so the message points at the setting.
fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|span| {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        format!(" (line {line})")
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn settings_from(toml_text: &str, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut settings = Settings::from_toml("trove.toml", toml_text)?;
        settings.apply_env(&env(pairs))?;
        settings.validate()?;
        Ok(settings)
    }

    #[test]
    fn metrics_listener_and_checkpoint_secret_are_validated() {
        let settings = settings_from(
            "",
            &[
                ("TROVE_METRICS_LISTEN", "127.0.0.1:9090"),
                (
                    "TROVE_AUDIT_CHECKPOINT_SECRET",
                    "checkpoint-secret-0123456789-abcdef",
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            settings.metrics_listen.map(|address| address.to_string()),
            Some("127.0.0.1:9090".to_owned())
        );
        assert!(settings.audit_checkpoint_secret.is_some());
        assert!(settings_from("", &[]).unwrap().metrics_listen.is_none());
        for (pairs, setting) in [
            (
                &[("TROVE_METRICS_LISTEN", "not an address")][..],
                "TROVE_METRICS_LISTEN",
            ),
            (
                &[("TROVE_METRICS_LISTEN", "127.0.0.1:8080")][..],
                "TROVE_METRICS_LISTEN",
            ),
            (
                &[("TROVE_AUDIT_CHECKPOINT_SECRET", "short")][..],
                "TROVE_AUDIT_CHECKPOINT_SECRET",
            ),
        ] {
            let error = settings_from("", pairs).unwrap_err();
            assert!(error.to_string().contains(setting), "{error}");
        }
    }

    #[test]
    fn defaults_are_the_embedded_laptop_setup() {
        let settings = settings_from("", &[]).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.data_dir, PathBuf::from("./data"));
        assert_eq!(settings.storage, StorageKind::Local);
        assert_eq!(settings.public_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn environment_overrides_the_file() {
        let settings = settings_from(
            "listen = \"0.0.0.0:9000\"\nstorage_timeout_ms = 100\n[s3]\nprefix = \"a/\"\n",
            &[
                ("TROVE_LISTEN", "127.0.0.1:9999"),
                ("TROVE_S3_PREFIX", "b/"),
            ],
        )
        .unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(settings.storage_timeout_ms, 100);
        assert_eq!(settings.s3.prefix, "b/");
    }

    #[test]
    fn s3_settings_come_from_the_environment() {
        let settings = settings_from(
            "",
            &[
                ("TROVE_STORAGE", "s3"),
                ("TROVE_S3_BUCKET", "artifacts"),
                ("TROVE_S3_ENDPOINT", "http://127.0.0.1:9000"),
                ("TROVE_S3_REGION", "us-east-1"),
                ("TROVE_S3_PATH_STYLE", "true"),
            ],
        )
        .unwrap();
        assert_eq!(settings.storage, StorageKind::S3);
        assert_eq!(settings.s3.bucket.as_deref(), Some("artifacts"));
        assert!(settings.s3.path_style);
    }

    #[test]
    fn invalid_values_name_the_setting() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case<'_>] = &[
            ("", &[("TROVE_LISTEN", "not an address")], "TROVE_LISTEN"),
            ("", &[("TROVE_STORAGE", "ftp")], "TROVE_STORAGE"),
            ("", &[("TROVE_STORAGE", "s3")], "TROVE_S3_BUCKET"),
            (
                "",
                &[("TROVE_STORAGE_TIMEOUT_MS", "0")],
                "TROVE_STORAGE_TIMEOUT_MS",
            ),
            (
                "",
                &[("TROVE_STORAGE_TIMEOUT_MS", "-5")],
                "TROVE_STORAGE_TIMEOUT_MS",
            ),
            (
                "",
                &[("TROVE_S3_PATH_STYLE", "maybe")],
                "TROVE_S3_PATH_STYLE",
            ),
            ("", &[("TROVE_PUBLIC_URL", "ftp://x")], "TROVE_PUBLIC_URL"),
            (
                "",
                &[("TROVE_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local")],
                "TROVE_TRUSTED_PROXIES",
            ),
            ("trusted_proxies = [\"10.0.0.0/40\"]", &[], "trove.toml"),
            (
                "",
                &[("TROVE_STORAGE", "s3"), ("TROVE_S3_BUCKET", "Bad_Bucket")],
                "TROVE_S3_BUCKET",
            ),
            (
                "",
                &[
                    ("TROVE_STORAGE", "s3"),
                    ("TROVE_S3_BUCKET", "ok-bucket"),
                    ("TROVE_S3_ENDPOINT", "::::"),
                ],
                "TROVE_S3_ENDPOINT",
            ),
            ("", &[("TROVE_JWT_SECRET", "short")], "TROVE_JWT_SECRET"),
            ("", &[("TROVE_TOKEN_TTL_SECS", "5")], "TROVE_TOKEN_TTL_SECS"),
            (
                "",
                &[("TROVE_TOKEN_TTL_SECS", "soon")],
                "TROVE_TOKEN_TTL_SECS",
            ),
            (
                "",
                &[("TROVE_ALLOW_REGISTRATION", "perhaps")],
                "TROVE_ALLOW_REGISTRATION",
            ),
            (
                "",
                &[("TROVE_DEFAULT_ROLE", "emperor")],
                "TROVE_DEFAULT_ROLE",
            ),
            (
                "",
                &[("TROVE_DEFAULT_ROLE", "machine")],
                "TROVE_DEFAULT_ROLE",
            ),
            (
                "",
                &[("TROVE_BOOTSTRAP_ADMIN", "root")],
                "TROVE_BOOTSTRAP_ADMIN",
            ),
            (
                "",
                &[("TROVE_BOOTSTRAP_ADMIN", "root:short")],
                "TROVE_BOOTSTRAP_ADMIN",
            ),
            (
                "",
                &[("TROVE_LOGIN_RATE_LIMIT_WINDOW_SECS", "0")],
                "TROVE_LOGIN_RATE_LIMIT_WINDOW_SECS",
            ),
            (
                "",
                &[("TROVE_LOGIN_RATE_LIMIT_PER_IP", "-1")],
                "TROVE_LOGIN_RATE_LIMIT_PER_IP",
            ),
            (
                "",
                &[("TROVE_OIDC_GROUP_PATTERN", "(")],
                "TROVE_OIDC_GROUP_PATTERN",
            ),
            (
                "",
                &[("TROVE_OIDC_JWKS_FILE", "/x.json")],
                "TROVE_OIDC_ISSUER",
            ),
            (
                "",
                &[
                    ("TROVE_OIDC_JWKS_FILE", "/x.json"),
                    ("TROVE_OIDC_ISSUER", "https://idp"),
                ],
                "TROVE_OIDC_AUDIENCE",
            ),
            (
                "",
                &[("TROVE_OIDC_JWKS_URL", "file:///etc/x")],
                "TROVE_OIDC_JWKS_URL",
            ),
            (
                "",
                &[("TROVE_CURSOR_SECRET", "short")],
                "TROVE_CURSOR_SECRET",
            ),
            ("", &[("TROVE_UI_SECRET", "short")], "TROVE_UI_SECRET"),
            (
                "",
                &[
                    ("TROVE_STORAGE", "s3"),
                    ("TROVE_S3_BUCKET", "ok-bucket"),
                    ("TROVE_S3_PUBLIC_ENDPOINT", "minio:9000"),
                ],
                "TROVE_S3_PUBLIC_ENDPOINT",
            ),
            (
                "",
                &[
                    ("TROVE_STORAGE", "s3"),
                    ("TROVE_S3_BUCKET", "ok-bucket"),
                    ("TROVE_S3_PUBLIC_ENDPOINT", "ftp://127.0.0.1:9000"),
                ],
                "TROVE_S3_PUBLIC_ENDPOINT",
            ),
            ("listen = 5", &[], "trove.toml"),
            ("unknown_key = 1", &[], "trove.toml"),
        ];
        for (toml_text, pairs, setting) in cases {
            let error = settings_from(toml_text, pairs).unwrap_err();
            assert_eq!(&error.setting, setting, "{toml_text} {pairs:?}: {error}");
        }
    }

    #[test]
    fn auth_settings_come_from_the_environment() {
        let settings = settings_from(
            "[auth]\ntoken_ttl_secs = 600\n",
            &[
                ("TROVE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("TROVE_ALLOW_REGISTRATION", "false"),
                ("TROVE_DEFAULT_ROLE", "Guest"),
                ("TROVE_LOGIN_RATE_LIMIT_PER_USER", "3"),
                ("TROVE_LOGIN_RATE_LIMIT_PER_USER_IP", "2"),
                ("TROVE_REGISTER_RATE_LIMIT_PER_IP", "5"),
                ("TROVE_REVOCATION_PURGE_CRON", ""),
                ("TROVE_OIDC_JWKS_FILE", "/etc/trove/jwks.json"),
                ("TROVE_OIDC_ISSUER", "https://idp.example"),
                ("TROVE_OIDC_AUDIENCE", "trove-api"),
                ("TROVE_OIDC_GROUP_PATTERN", "^CN=ML-"),
            ],
        )
        .unwrap();
        assert_eq!(settings.auth.token_ttl_secs, 600);
        assert!(!settings.auth.allow_registration);
        assert_eq!(settings.auth.default_role, "guest");
        assert_eq!(settings.auth.login_rate_limit_per_user, 3);
        assert_eq!(settings.auth.login_rate_limit_per_user_ip, 2);
        assert_eq!(settings.auth.register_rate_limit_per_ip, 5);
        assert!(settings.revocation_purge_cron.is_empty());
        assert!(settings.oidc.enabled());
        assert_eq!(settings.oidc.group_pattern, "^CN=ML-");
        let defaults = settings_from("", &[]).unwrap();
        assert_eq!(defaults.auth.default_role, "maintainer");
        assert_eq!(defaults.auth.token_ttl_secs, 3600);
        assert!(defaults.auth.allow_registration);
        assert_eq!(defaults.auth.login_rate_limit_per_user_ip, 10);
        assert_eq!(defaults.auth.login_rate_limit_per_user, 100);
        assert_eq!(defaults.revocation_purge_cron, "0 17 * * * *");
        assert!(!defaults.oidc.enabled());
    }

    #[test]
    fn replica_settings_come_from_the_environment() {
        let settings = settings_from(
            "",
            &[
                ("TROVE_STORAGE", "s3"),
                ("TROVE_S3_BUCKET", "artifacts"),
                ("TROVE_S3_ENDPOINT", "http://minio:9000"),
                ("TROVE_S3_PUBLIC_ENDPOINT", "http://127.0.0.1:9000"),
                ("TROVE_CURSOR_SECRET", "cursor-secret-0123456789-abcdefgh"),
                ("TROVE_UI_SECRET", "ui-secret-0123456789-abcdefghijklm"),
                ("TROVE_TRUSTED_PROXIES", "10.0.0.0/8,::1"),
            ],
        )
        .unwrap();
        assert!(settings.trusted_proxies.trusts("10.2.3.4".parse().unwrap()));
        assert!(settings.trusted_proxies.trusts("::1".parse().unwrap()));
        assert!(!settings.trusted_proxies.trusts("11.0.0.1".parse().unwrap()));
        let from_file = settings_from("trusted_proxies = [\"192.168.0.0/16\"]", &[]).unwrap();
        assert!(
            from_file
                .trusted_proxies
                .trusts("192.168.4.4".parse().unwrap())
        );
        assert_eq!(
            settings.s3.public_endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            settings.cursor_secret.as_ref().map(Secret::expose),
            Some("cursor-secret-0123456789-abcdefgh")
        );
        assert_eq!(
            settings.ui_secret.as_ref().map(Secret::expose),
            Some("ui-secret-0123456789-abcdefghijklm")
        );
        let defaults = settings_from("", &[]).unwrap();
        assert!(defaults.s3.public_endpoint.is_none());
        assert!(defaults.cursor_secret.is_none() && defaults.ui_secret.is_none());
        // Empty means unset, as for the other endpoints.
        let empty = settings_from("", &[("TROVE_S3_PUBLIC_ENDPOINT", "")]).unwrap();
        assert!(empty.s3.public_endpoint.is_none());
    }

    #[test]
    fn masked_toml_never_shows_secrets() {
        let settings = settings_from(
            "",
            &[
                ("TROVE_STORAGE", "s3"),
                ("TROVE_S3_BUCKET", "artifacts"),
                ("TROVE_S3_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("TROVE_S3_SECRET_ACCESS_KEY", "very-secret-value"),
                (
                    "TROVE_PRESIGN_SECRET",
                    "another-very-secret-value-0123456789",
                ),
                (
                    "TROVE_JWT_SECRET",
                    "jwt-very-secret-value-0123456789-abcdef",
                ),
                ("TROVE_BOOTSTRAP_ADMIN", "root:bootstrap-password"),
                ("TROVE_CURSOR_SECRET", "cursor-very-secret-value-0123456789"),
                ("TROVE_UI_SECRET", "csrf-very-secret-value-0123456789"),
            ],
        )
        .unwrap();
        let rendered = settings.to_masked_toml();
        assert!(!rendered.contains("cursor-very-secret"), "{rendered}");
        assert!(!rendered.contains("csrf-very-secret"), "{rendered}");
        assert!(!format!("{settings:?}").contains("cursor-very-secret"));
        assert!(!format!("{settings:?}").contains("csrf-very-secret"));
        assert!(!rendered.contains("very-secret-value"), "{rendered}");
        assert!(!rendered.contains("another-very-secret"), "{rendered}");
        assert!(!rendered.contains("jwt-very-secret"), "{rendered}");
        assert!(!rendered.contains("bootstrap-password"), "{rendered}");
        assert!(rendered.contains("***"));
        assert!(!format!("{settings:?}").contains("very-secret-value"));
    }
}
