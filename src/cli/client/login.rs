//! `trove login`: exchanges a username and password for an access token (`POST /auth/login`)
//! and stores `{server, username, access_token, expires_at}` in the credentials file.
//!
//! The password comes from stdin (`--password-stdin`, one line), `TROVE_PASSWORD`, or a
//! prompt with hidden input when stdin is a terminal — never from a command-line argument
//! (visible in `ps` and shell history) — and is neither echoed, logged nor stored. Without a
//! terminal and without either source, the command is a usage error (exit 2), never a hang.
//!
//! Also here: `trove whoami` (`GET /auth/me`, with the stored login's server and expiry) and
//! `trove logout` (`POST /auth/logout`, then the stored login is deleted).

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::Context as _;
use clap::Args;
use reqwest::Method;
use serde_json::json;

use super::credentials::{self, StoredCredentials};
use super::http::{ApiClient, ApiFailure, ServerUrl};
use super::{CredentialSource, DEFAULT_SERVER, ServerArgs, out, session, usage_error};

/// Environment variable holding the password when `--password-stdin` is not given.
pub const PASSWORD_VARIABLE: &str = "TROVE_PASSWORD";

/// `trove login` arguments.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Server and credentials.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Username (asked for on a terminal when absent).
    #[arg(long, env = "TROVE_USERNAME")]
    pub username: Option<String>,
    /// Read the password from the first line of stdin (otherwise TROVE_PASSWORD, else a
    /// hidden prompt on a terminal).
    #[arg(long)]
    pub password_stdin: bool,
}

/// `trove whoami` / `trove logout` arguments.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// Server and credentials.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `trove login`.
///
/// # Errors
/// When the password cannot be read, the server refuses the login, or the credentials file
/// cannot be written.
pub async fn run_login(args: &LoginArgs) -> anyhow::Result<()> {
    let path = args.server.credentials_path().context(
        "cannot tell where to store the credentials: set TROVE_CREDENTIALS, XDG_CONFIG_HOME or HOME",
    )?;
    let server = match &args.server.server {
        Some(server) => ServerUrl::parse(server)?,
        None => match credentials::load(&path).ok().flatten() {
            Some(stored) => ServerUrl::parse(&stored.server)?,
            None => ServerUrl::parse(DEFAULT_SERVER)?,
        },
    };
    let username = match &args.username {
        Some(username) => username.clone(),
        None => read_username()?,
    };
    let password = read_password(args.password_stdin, &username, &server)?;
    // The login itself is anonymous: no stale token is sent along.
    let client = ApiClient::new(server.clone(), None, CredentialSource::None)?;
    let answer = client
        .json(
            Method::POST,
            &["auth", "login"],
            Some(&json!({"username": username, "password": password})),
        )
        .await
        .with_context(|| format!("cannot log in to {server} as {username}"))?;
    drop(password);
    let access_token = answer["access_token"]
        .as_str()
        .filter(|token| !token.is_empty())
        .context("the server's login answer holds no access_token")?
        .to_owned();
    let expires_at = answer["expires_in"]
        .as_i64()
        .and_then(chrono::TimeDelta::try_seconds)
        .map(|lifetime| chrono::Utc::now() + lifetime);
    let stored = StoredCredentials {
        server: server.to_string(),
        username: Some(username.clone()),
        access_token,
        expires_at,
    };
    credentials::store(&path, &stored)?;
    if out::json_mode() {
        return out::json(&json!({
            "server": server.to_string(),
            "username": username,
            "profile": profile_name(&args.server),
            "expires_at": expires_at,
            "credentials_file": path.display().to_string(),
        }));
    }
    let until = expires_at.map_or_else(String::new, |at| {
        format!(
            " (token valid until {})",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        )
    });
    out::human(&format!(
        "logged in to {server} as {username}{until}; credentials stored in {}",
        path.display()
    ))
}

fn profile_name(args: &ServerArgs) -> &str {
    args.profile
        .as_deref()
        .unwrap_or(credentials::DEFAULT_PROFILE)
}

/// Runs `trove whoami`: who the server says the credential belongs to.
///
/// # Errors
/// When the server refuses (exit 3 when not logged in) or cannot be reached.
pub async fn run_whoami(args: &SessionArgs) -> anyhow::Result<()> {
    let session = session(&args.server)?;
    let client = &session.client;
    let me = client
        .get_json(&["auth", "me"])
        .await
        .context("cannot tell who you are")?;
    let expires_at = match session.source {
        CredentialSource::File => session.stored.as_ref().and_then(|stored| stored.expires_at),
        _ => None,
    };
    let source = match session.source {
        CredentialSource::None => "none",
        CredentialSource::Environment => "TROVE_TOKEN",
        CredentialSource::File => "stored login",
    };
    if out::json_mode() {
        return out::json(&json!({
            "username": me["username"],
            "role": me["role"],
            "groups": me["groups"],
            "kind": me["kind"],
            "server": client.server().to_string(),
            "profile": session.profile,
            "credential": source,
            "expires_at": expires_at,
        }));
    }
    let groups = me["groups"]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .filter_map(serde_json::Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    out::line(&format!(
        "user:    {}",
        me["username"].as_str().unwrap_or("")
    ))?;
    out::line(&format!("role:    {}", me["role"].as_str().unwrap_or("")))?;
    out::line(&format!(
        "groups:  {}",
        if groups.is_empty() { "-" } else { &groups }
    ))?;
    out::line(&format!("server:  {}", client.server()))?;
    out::line(&format!("profile: {}", session.profile))?;
    out::line(&format!(
        "token:   {source}{}",
        expires_at.map_or_else(String::new, |at| format!(
            ", expires {}",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ))
    ))
}

/// Runs `trove logout`: revokes the stored token on its server, then deletes it.
///
/// # Errors
/// When the server cannot be reached (the stored login is kept, so it can be retried), or
/// refuses for another reason than the token being already invalid.
pub async fn run_logout(args: &SessionArgs) -> anyhow::Result<()> {
    let (path, stored, profile) = super::stored_login(&args.server)?;
    let path = path.context(
        "cannot tell where the credentials are: set TROVE_CREDENTIALS, XDG_CONFIG_HOME or HOME",
    )?;
    let stored = match stored {
        Some(stored)
            if args.server.server.as_deref().is_none_or(|server| {
                ServerUrl::parse(server).ok() == ServerUrl::parse(&stored.server).ok()
            }) =>
        {
            stored
        }
        _ => {
            out::note(&format!("not logged in (profile {profile})"));
            return Ok(());
        }
    };
    let server = ServerUrl::parse(&stored.server)?;
    let client = ApiClient::new(
        server.clone(),
        Some(stored.access_token.clone()),
        CredentialSource::File,
    )?;
    match client.json(Method::POST, &["auth", "logout"], None).await {
        Ok(_) => {}
        // Already expired or revoked: nothing left to revoke.
        Err(error)
            if error
                .downcast_ref::<ApiFailure>()
                .is_some_and(|failure| failure.status == reqwest::StatusCode::UNAUTHORIZED) =>
        {
            out::note("the stored token was no longer valid");
        }
        Err(error) => {
            return Err(error.context(format!(
                "cannot log out of {server}; the stored login is kept"
            )));
        }
    }
    credentials::remove(&path)?;
    if out::json_mode() {
        return out::json(&json!({"server": server.to_string(), "logged_out": true}));
    }
    out::human(&format!(
        "logged out of {server}; removed {}",
        path.display()
    ))
}

/// The username typed on a terminal; a usage error without one.
fn read_username() -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        usage_error("no username given: pass --username or set TROVE_USERNAME");
    }
    let _ = write!(std::io::stderr(), "Username: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the username")?;
    let username = line.trim().to_owned();
    if username.is_empty() {
        usage_error("the username is empty");
    }
    Ok(username)
}

/// The password from stdin (one line), `TROVE_PASSWORD`, or a hidden prompt on a terminal;
/// a usage error when none.
fn read_password(from_stdin: bool, username: &str, server: &ServerUrl) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        match std::env::var(PASSWORD_VARIABLE) {
            Ok(password) => password,
            Err(_) if std::io::stdin().is_terminal() => {
                match rpassword::prompt_password(format!("Password for {username} at {server}: ")) {
                    Ok(password) => password,
                    Err(_) => usage_error(
                        "cannot read the password from the terminal: pipe it with \
                         --password-stdin, or set TROVE_PASSWORD",
                    ),
                }
            }
            Err(_) => usage_error(
                "no password given and no terminal to ask on: pipe it with --password-stdin, \
                 or set TROVE_PASSWORD (a password is never taken as a command-line argument)",
            ),
        }
    };
    if password.is_empty() {
        usage_error("the password is empty");
    }
    Ok(password)
}
