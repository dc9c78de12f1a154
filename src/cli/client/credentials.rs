//! The credentials file `trove login` writes and the other client commands read:
//! `{server, username, access_token, expires_at}` as JSON, at `$TROVE_CREDENTIALS`, else
//! `$XDG_CONFIG_HOME/trove/credentials.json`, else `~/.config/trove/credentials.json`.
//!
//! Profiles (`--profile NAME`, or `TROVE_PROFILE`) keep several logins side by side: the
//! default profile is the file above, profile `NAME` the file `credentials.NAME.json` (the
//! stem of the file above, then `.NAME`) beside it. A command given `--server URL` but no
//! profile uses the profile logged in to that server when the default login is for another.
//!
//! On unix the file is created with mode `0600` (its directory `0700` when trove creates it),
//! written to a temporary name in the same directory and renamed, so a reader never sees half
//! a file and an older, wider-open file is replaced rather than rewritten.

use std::ffi::OsString;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Environment variable naming the credentials file.
pub const PATH_VARIABLE: &str = "TROVE_CREDENTIALS";

/// A stored login.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredCredentials {
    /// The server the token was issued by (`http://host:port`).
    pub server: String,
    /// Who logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The bearer access token.
    pub access_token: String,
    /// When the token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("access_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The credentials file's path from an environment lookup (pure, for tests): `None` when
/// neither `TROVE_CREDENTIALS`, `XDG_CONFIG_HOME` nor `HOME` is set.
#[must_use]
pub fn path_from(lookup: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| lookup(name).filter(|value| !value.is_empty());
    if let Some(path) = set(PATH_VARIABLE) {
        return Some(PathBuf::from(path));
    }
    let config = set("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("trove").join("credentials.json"))
}

/// The credentials file's path in this process's environment.
#[must_use]
pub fn default_path() -> Option<PathBuf> {
    path_from(|name| std::env::var_os(name))
}

/// The name of the default profile.
pub const DEFAULT_PROFILE: &str = "default";

/// Checks a profile name: 1 to 64 ASCII letters, digits, `-` or `_`.
///
/// # Errors
/// When the name breaks that rule.
pub fn parse_profile(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if valid {
        Ok(value.to_owned())
    } else {
        Err("a profile name is 1 to 64 ASCII letters, digits, '-' or '_'".to_owned())
    }
}

/// The credentials file of `profile` given the default file `base`.
#[must_use]
pub fn profile_path(base: &Path, profile: Option<&str>) -> PathBuf {
    match profile {
        None | Some(DEFAULT_PROFILE) => base.to_path_buf(),
        Some(name) => {
            let stem = base.file_stem().map_or_else(
                || "credentials".to_owned(),
                |stem| stem.to_string_lossy().into_owned(),
            );
            base.with_file_name(format!("{stem}.{name}.json"))
        }
    }
}

/// The first profile beside `base` (in name order) whose stored server `matches`; unreadable
/// or malformed profile files are passed over.
#[must_use]
pub fn find_by_server(
    base: &Path,
    matches: impl Fn(&str) -> bool,
) -> Option<(PathBuf, StoredCredentials)> {
    let directory = base.parent()?;
    let stem = base.file_stem()?.to_string_lossy().into_owned();
    let prefix = format!("{stem}.");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(directory)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_prefix(&prefix))
                .and_then(|rest| rest.strip_suffix(".json"))
                .is_some_and(|profile| parse_profile(profile).is_ok())
        })
        .collect();
    candidates.sort();
    candidates.into_iter().find_map(|path| {
        let stored = load(&path).ok().flatten()?;
        matches(&stored.server).then_some((path, stored))
    })
}

/// Removes the stored login; `false` when there was none.
///
/// # Errors
/// When the file exists but cannot be removed.
pub fn remove(path: &Path) -> anyhow::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error)
            .with_context(|| format!("cannot remove the credentials file {}", path.display())),
    }
}

/// Reads the stored login; `None` when there is no file.
///
/// # Errors
/// When the file exists but cannot be read or is not a credentials document.
pub fn load(path: &Path) -> anyhow::Result<Option<StoredCredentials>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the credentials file {}", path.display()));
        }
    };
    let stored = serde_json::from_str(&text).map_err(|_| {
        // Not the serde message: it could quote part of the file.
        anyhow::anyhow!(
            "the credentials file {} is not valid; run `trove login` again or remove it",
            path.display()
        )
    })?;
    Ok(Some(stored))
}

/// Writes the stored login (mode `0600` on unix), replacing any earlier one.
///
/// # Errors
/// When the directory or the file cannot be written.
pub fn store(path: &Path, credentials: &StoredCredentials) -> anyhow::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&directory)
        .with_context(|| format!("cannot create the directory {}", directory.display()))?;
    let file_name = path
        .file_name()
        .context("the credentials path names no file")?
        .to_string_lossy()
        .into_owned();
    let temporary = directory.join(format!(".{file_name}.{}.tmp", uuid::Uuid::new_v4()));
    let mut body = serde_json::to_vec_pretty(credentials)?;
    body.push(b'\n');
    let written = write_private(&temporary, &body).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error)
            .with_context(|| format!("cannot write the credentials file {}", path.display()));
    }
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(directory: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if directory.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)
}

#[cfg(not(unix))]
fn create_private_dir(directory: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(directory)
}

fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(body)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        }
    }

    #[test]
    fn the_path_follows_trove_credentials_then_xdg_then_home() {
        assert_eq!(
            path_from(env(&[
                ("TROVE_CREDENTIALS", "/tmp/c.json"),
                ("XDG_CONFIG_HOME", "/x"),
                ("HOME", "/h"),
            ])),
            Some(PathBuf::from("/tmp/c.json"))
        );
        assert_eq!(
            path_from(env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/trove/credentials.json"))
        );
        assert_eq!(
            path_from(env(&[("XDG_CONFIG_HOME", ""), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.config/trove/credentials.json"))
        );
        assert_eq!(path_from(env(&[])), None);
    }

    #[test]
    fn profiles_live_beside_the_default_file() {
        let base = Path::new("/c/trove/credentials.json");
        assert_eq!(profile_path(base, None), base);
        assert_eq!(profile_path(base, Some("default")), base);
        assert_eq!(
            profile_path(base, Some("staging")),
            PathBuf::from("/c/trove/credentials.staging.json")
        );
        assert!(parse_profile("ci_2").is_ok());
        for bad in ["", "../x", "a b", "a.b"] {
            assert!(parse_profile(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_the_token() {
        let stored = StoredCredentials {
            server: "http://h".to_owned(),
            username: None,
            access_token: "very-secret".to_owned(),
            expires_at: None,
        };
        assert!(!format!("{stored:?}").contains("very-secret"));
    }
}
