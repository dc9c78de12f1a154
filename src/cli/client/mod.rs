//! The client commands for people and CI (`login`, `whoami`, `logout`, `ls`, `show`,
//! `members`, `push`, `pull`, `search`, `perms`, `share`): they talk to a running Trove over
//! HTTP.
//!
//! Where the server and the credential come from, in order: `--server URL` (or
//! `TROVE_SERVER`), else the server `trove login` stored, else `http://127.0.0.1:8080`; the
//! bearer credential is `TROVE_TOKEN` (an access token or an API key) when set, else the
//! access token `trove login` stored — sent only to the server it was issued by, so pointing
//! `--server` elsewhere never leaks it. The credentials file is described in [`credentials`].
//!
//! `--profile NAME` (or `TROVE_PROFILE`) picks another stored login, so several servers (or
//! accounts) can be used side by side.
//!
//! Errors are `anyhow` errors whose chain names what failed and, for an HTTP error, the
//! server's `reason` and `code` ([`http::ApiFailure`]); `main` prints them on one line and
//! exits with the status [`out::exit_code`] gives: 0 ok, 1 server refused, 2 usage, 3 not
//! found or no access, 4 network. Output goes through [`out`], so a closed pipe never panics.

pub mod browse;
pub mod credentials;
pub mod http;
pub mod login;
pub mod out;
pub mod perms;
pub mod progress;
pub mod pull;
pub mod push;
pub mod search;
pub mod share;

use std::path::PathBuf;

use clap::Args;

use self::http::{ApiClient, ServerUrl};

/// The server used when neither `--server`, `TROVE_SERVER` nor a stored login names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Environment variable holding a bearer credential (access token or API key).
pub const TOKEN_VARIABLE: &str = "TROVE_TOKEN";

/// The `--server` flag every client command takes.
#[derive(Debug, Clone, Args, Default)]
pub struct ServerArgs {
    /// Trove server URL (default: the server `trove login` stored, else http://127.0.0.1:8080).
    #[arg(long, env = "TROVE_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Stored login to use (default: `default`); see `trove login --profile`.
    #[arg(id = "login_profile", long = "profile", env = "TROVE_PROFILE", value_name = "NAME",
        value_parser = credentials::parse_profile)]
    pub profile: Option<String>,
}

impl ServerArgs {
    /// The credentials file of the chosen profile; `None` when no location is known.
    #[must_use]
    pub fn credentials_path(&self) -> Option<PathBuf> {
        credentials::default_path()
            .map(|base| credentials::profile_path(&base, self.profile.as_deref()))
    }
}

/// Where a credential came from, for the hints of `401` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// No credential: requests are anonymous.
    None,
    /// The `TROVE_TOKEN` environment variable.
    Environment,
    /// The credentials file written by `trove login`.
    File,
}

/// What [`resolve`] decided: the server, the credential and where it came from.
pub struct Resolved {
    /// The server to talk to.
    pub server: ServerUrl,
    /// The bearer credential, if any (never printed).
    pub credential: Option<String>,
    /// Where the credential came from.
    pub source: CredentialSource,
    /// A note for the user (a stored login for another server was not used).
    pub note: Option<String>,
}

/// Picks the server and the credential from the flag, the token variable and the stored
/// login (pure: the caller reads the environment and the file).
///
/// # Errors
/// When the chosen server URL is not a usable `http://` URL.
pub fn resolve(
    flag: Option<&str>,
    token_variable: Option<String>,
    stored: Option<&credentials::StoredCredentials>,
) -> anyhow::Result<Resolved> {
    let server = match (flag, stored) {
        (Some(flag), _) => ServerUrl::parse(flag)?,
        (None, Some(stored)) => ServerUrl::parse(&stored.server)?,
        (None, None) => ServerUrl::parse(DEFAULT_SERVER)?,
    };
    if let Some(token) = token_variable.filter(|token| !token.trim().is_empty()) {
        return Ok(Resolved {
            server,
            credential: Some(token.trim().to_owned()),
            source: CredentialSource::Environment,
            note: None,
        });
    }
    let Some(stored) = stored else {
        return Ok(Resolved {
            server,
            credential: None,
            source: CredentialSource::None,
            note: None,
        });
    };
    // A token is only ever sent to the server that issued it.
    if ServerUrl::parse(&stored.server).is_ok_and(|issuer| issuer == server) {
        return Ok(Resolved {
            server,
            credential: Some(stored.access_token.clone()),
            source: CredentialSource::File,
            note: None,
        });
    }
    let note = format!(
        "the stored login is for {}, not {server}: sending no credentials (run `trove login --server {server}` or set {TOKEN_VARIABLE})",
        stored.server
    );
    Ok(Resolved {
        server,
        credential: None,
        source: CredentialSource::None,
        note: Some(note),
    })
}

/// Builds the client of a command from `--server`, `TROVE_TOKEN` and the credentials file.
///
/// # Errors
/// When the credentials file is unreadable or malformed, or the server URL is unusable.
pub fn connect(args: &ServerArgs) -> anyhow::Result<ApiClient> {
    Ok(session(args)?.client)
}

/// A command's client with the stored login it may use.
pub struct Session {
    /// The client.
    pub client: ApiClient,
    /// The stored login of the chosen profile, if any.
    pub stored: Option<credentials::StoredCredentials>,
    /// The credentials file of the chosen profile.
    pub path: Option<PathBuf>,
    /// Where the credential came from.
    pub source: CredentialSource,
    /// The profile used (`default` unless `--profile` or a match on `--server`).
    pub profile: String,
}

/// Builds the [`Session`] of a command from `--server`, `--profile`, `TROVE_TOKEN` and the
/// credentials file.
///
/// # Errors
/// As [`connect`].
pub fn session(args: &ServerArgs) -> anyhow::Result<Session> {
    let token = std::env::var(TOKEN_VARIABLE).ok();
    // With both a server and a token given, the file is not needed (nor read: a broken file
    // must not stop CI).
    let needs_file = args.server.is_none() || token.as_deref().is_none_or(str::is_empty);
    let (path, stored, profile) = if needs_file {
        stored_login(args)?
    } else {
        (args.credentials_path(), None, profile_of(args))
    };
    if args.profile.is_some() && needs_file && stored.is_none() {
        out::note(&format!(
            "profile {} has no stored login (run `trove login --profile {0}`)",
            args.profile.as_deref().unwrap_or_default()
        ));
    }
    let resolved = resolve(args.server.as_deref(), token, stored.as_ref())?;
    if let Some(note) = &resolved.note {
        out::note(&format!("note: {note}"));
    }
    let source = resolved.source;
    let client = ApiClient::new(resolved.server, resolved.credential, resolved.source)?;
    Ok(Session {
        client,
        stored,
        path,
        source,
        profile,
    })
}

fn profile_of(args: &ServerArgs) -> String {
    args.profile
        .clone()
        .unwrap_or_else(|| credentials::DEFAULT_PROFILE.to_owned())
}

/// The stored login the arguments designate: its file, its content (when there is one) and
/// its profile name. `--server` without `--profile` picks the profile logged in to that
/// server when the default login is for another one.
///
/// # Errors
/// When the chosen credentials file is unreadable or malformed.
pub fn stored_login(
    args: &ServerArgs,
) -> anyhow::Result<(
    Option<PathBuf>,
    Option<credentials::StoredCredentials>,
    String,
)> {
    let path = args.credentials_path();
    let stored = match &path {
        Some(path) => credentials::load(path)?,
        None => None,
    };
    if let (Some(server), None, Some(base)) = (
        args.server.as_deref(),
        &args.profile,
        credentials::default_path(),
    ) && !stored
        .as_ref()
        .is_some_and(|stored| same_server(&stored.server, server))
        && let Some((found, login)) =
            credentials::find_by_server(&base, |stored| same_server(stored, server))
    {
        let profile = found
            .file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(|stem| stem.rsplit_once('.'))
            .map_or_else(|| profile_of(args), |(_, name)| name.to_owned());
        return Ok((Some(found), Some(login), profile));
    }
    Ok((path, stored, profile_of(args)))
}

fn same_server(left: &str, right: &str) -> bool {
    matches!((ServerUrl::parse(left), ServerUrl::parse(right)), (Ok(left), Ok(right)) if left == right)
}

/// Reports a usage error found after parsing and exits with status 2, as clap does.
pub fn usage_error(message: &str) -> ! {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("{message}\n"),
    )
    .exit()
}

/// The `{p}@{v}` form: project and version (a usage error otherwise).
///
/// # Errors
/// When the text is not `project@version` with valid names.
pub fn parse_project_version(value: &str) -> Result<(String, String), String> {
    let Some((project, version)) = value.rsplit_once('@') else {
        return Err("expected project@version".to_owned());
    };
    crate::model::names::validate_project_id(project).map_err(|error| error.to_string())?;
    crate::model::id::VersionSelector::parse(version).map_err(|error| error.to_string())?;
    Ok((project.to_owned(), version.to_owned()))
}

/// A human size: `512 B`, `3.0 MiB`.
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::credentials::StoredCredentials;
    use super::*;

    fn stored(server: &str) -> StoredCredentials {
        StoredCredentials {
            server: server.to_owned(),
            username: Some("alice".to_owned()),
            access_token: "stored-token".to_owned(),
            expires_at: None,
        }
    }

    #[test]
    fn the_stored_login_gives_server_and_token() {
        let file = stored("http://trove.example:8080/");
        let resolved = resolve(None, None, Some(&file)).unwrap();
        assert_eq!(resolved.server.to_string(), "http://trove.example:8080");
        assert_eq!(resolved.credential.as_deref(), Some("stored-token"));
        assert_eq!(resolved.source, CredentialSource::File);
    }

    #[test]
    fn the_token_variable_and_the_flag_override_the_file() {
        let file = stored("http://trove.example:8080");
        let resolved = resolve(
            Some("http://other.example"),
            Some("env-token".to_owned()),
            Some(&file),
        )
        .unwrap();
        assert_eq!(resolved.server.to_string(), "http://other.example");
        assert_eq!(resolved.credential.as_deref(), Some("env-token"));
        assert_eq!(resolved.source, CredentialSource::Environment);
    }

    #[test]
    fn a_stored_token_is_never_sent_to_another_server() {
        let file = stored("http://trove.example:8080");
        let resolved = resolve(Some("http://elsewhere.example"), None, Some(&file)).unwrap();
        assert_eq!(resolved.credential, None);
        assert!(resolved.note.is_some());
        let same = resolve(Some("trove.example:8080/"), None, Some(&file)).unwrap();
        assert_eq!(same.credential.as_deref(), Some("stored-token"));
    }

    #[test]
    fn without_anything_the_default_server_is_anonymous() {
        let resolved = resolve(None, Some("  ".to_owned()), None).unwrap();
        assert_eq!(resolved.server.to_string(), "http://127.0.0.1:8080");
        assert_eq!(resolved.credential, None);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
