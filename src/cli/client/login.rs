//! `trove login`: exchanges a username and password for an access token (`POST /auth/login`)
//! and stores `{server, username, access_token, expires_at}` in the credentials file.
//!
//! The password comes from stdin (`--password-stdin`, one line) or `TROVE_PASSWORD` — never
//! from a command-line argument (visible in `ps` and shell history) — and is neither echoed,
//! logged nor stored.

use std::io::BufRead as _;

use anyhow::Context as _;
use clap::Args;
use reqwest::Method;
use serde_json::json;

use super::credentials::{self, StoredCredentials};
use super::http::{ApiClient, ServerUrl};
use super::{CredentialSource, DEFAULT_SERVER, ServerArgs, usage_error};

/// Environment variable holding the password when `--password-stdin` is not given.
pub const PASSWORD_VARIABLE: &str = "TROVE_PASSWORD";

/// `trove login` arguments.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Server and credentials.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Username.
    #[arg(long, env = "TROVE_USERNAME")]
    pub username: String,
    /// Read the password from the first line of stdin (otherwise from TROVE_PASSWORD).
    #[arg(long)]
    pub password_stdin: bool,
}

/// Runs `trove login`.
///
/// # Errors
/// When the password cannot be read, the server refuses the login, or the credentials file
/// cannot be written.
pub async fn run_login(args: &LoginArgs) -> anyhow::Result<()> {
    let password = read_password(args.password_stdin)?;
    let path = credentials::default_path().context(
        "cannot tell where to store the credentials: set TROVE_CREDENTIALS, XDG_CONFIG_HOME or HOME",
    )?;
    let server = match &args.server.server {
        Some(server) => ServerUrl::parse(server)?,
        None => match credentials::load(&path).ok().flatten() {
            Some(stored) => ServerUrl::parse(&stored.server)?,
            None => ServerUrl::parse(DEFAULT_SERVER)?,
        },
    };
    // The login itself is anonymous: no stale token is sent along.
    let client = ApiClient::new(server.clone(), None, CredentialSource::None)?;
    let answer = client
        .json(
            Method::POST,
            &["auth", "login"],
            Some(&json!({"username": args.username, "password": password})),
        )
        .await
        .with_context(|| format!("cannot log in to {server} as {}", args.username))?;
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
        username: Some(args.username.clone()),
        access_token,
        expires_at,
    };
    credentials::store(&path, &stored)?;
    let until = expires_at.map_or_else(String::new, |at| {
        format!(
            " (token valid until {})",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        )
    });
    println!(
        "logged in to {server} as {}{until}; credentials stored in {}",
        args.username,
        path.display()
    );
    Ok(())
}

/// The password from stdin (one line) or `TROVE_PASSWORD`; a usage error when neither.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
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
            Err(_) => usage_error(
                "no password given: pipe it with --password-stdin, or set TROVE_PASSWORD \
                 (a password is never taken as a command-line argument)",
            ),
        }
    };
    if password.is_empty() {
        usage_error("the password is empty");
    }
    Ok(password)
}
