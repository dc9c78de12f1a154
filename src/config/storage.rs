//! The storage section: the `[s3]` table of `trove.toml` and `TROVE_S3_*` (the backend choice
//! and the storage timeout are top-level settings, see [`super::Settings`]).

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

/// S3 backend settings (`[s3]` in `trove.toml`, `TROVE_S3_*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Bucket name (required with `storage = "s3"`).
    pub bucket: Option<String>,
    /// Endpoint URL for MinIO or other S3-compatible servers; AWS when absent.
    pub endpoint: Option<String>,
    /// Region; from the AWS chain when absent, else `us-east-1`.
    pub region: Option<String>,
    /// Key prefix inside the bucket (e.g. `trove/`), empty for the bucket root.
    pub prefix: String,
    /// Path-style addressing (needed by MinIO and most self-hosted servers).
    pub path_style: bool,
    /// Static access key id; when absent credentials come from the standard AWS chain.
    pub access_key_id: Option<String>,
    /// Static secret access key (with `access_key_id`).
    pub secret_access_key: Option<Secret>,
    /// Endpoint URL that presigned URLs (downloads' `302`, ArtifactDB upload URLs) are
    /// signed for (`TROVE_S3_PUBLIC_ENDPOINT`), when clients reach the S3 server at another
    /// address than Trove does (e.g. `http://127.0.0.1:9000` outside a compose network whose
    /// Trove uses `http://minio:9000`); `endpoint` when absent.
    pub public_endpoint: Option<String>,
}

impl S3Config {
    /// Checks the S3 settings (only called with `storage = "s3"`).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match &self.bucket {
            None => {
                return Err(ConfigError::new(
                    "TROVE_S3_BUCKET",
                    "required when TROVE_STORAGE=s3",
                ));
            }
            Some(bucket) if !valid_bucket_name(bucket) => {
                return Err(ConfigError::new(
                    "TROVE_S3_BUCKET",
                    format!("{bucket:?} is not a valid bucket name"),
                ));
            }
            Some(_) => {}
        }
        for (setting, endpoint) in [
            ("TROVE_S3_ENDPOINT", &self.endpoint),
            ("TROVE_S3_PUBLIC_ENDPOINT", &self.public_endpoint),
        ] {
            let Some(endpoint) = endpoint else { continue };
            let parsed = url::Url::parse(endpoint)
                .map_err(|error| ConfigError::new(setting, error.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(ConfigError::new(
                    setting,
                    "must be an http(s) URL with a host",
                ));
            }
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(ConfigError::new(
                "TROVE_S3_ACCESS_KEY_ID",
                "set both TROVE_S3_ACCESS_KEY_ID and TROVE_S3_SECRET_ACCESS_KEY, or neither",
            ));
        }
        let prefix = &self.prefix;
        if prefix.starts_with('/') || prefix.contains("//") || prefix.chars().any(char::is_control)
        {
            return Err(ConfigError::new(
                "TROVE_S3_PREFIX",
                "must be relative, without empty segments or control characters",
            ));
        }
        Ok(())
    }
}

/// Loose check of S3 bucket naming (3–63 chars of lower-case letters, digits, `.` and `-`).
fn valid_bucket_name(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
}
