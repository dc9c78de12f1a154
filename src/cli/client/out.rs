//! Output of the client commands, safe for pipes and CI.
//!
//! Data goes to stdout through [`line`](fn@line) and [`json`]: a closed pipe (`trove search x | head
//! -1`) turns into a [`ClosedPipe`] error that ends the command quietly with exit status 0,
//! never a panic. Notes go to stderr through [`note`] (dropped with `--quiet`, and write
//! errors ignored). `--json` and `--quiet` are process-wide switches set once by
//! [`configure`].
//!
//! Exit statuses ([`exit_code`]): 0 ok, 1 the server refused (or a local failure), 2 usage,
//! 3 not found or no access (`401`, `403`, `404`), 4 network (the server could not be
//! reached or the connection broke).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use serde_json::Value;

use super::http::{ApiFailure, TransportFailure};

static JSON: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicBool = AtomicBool::new(false);

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the server refused the request (or a local step failed).
pub const EXIT_REFUSED: u8 = 1;
/// Exit status: a usage error (clap's own too).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: not found, or no access (`401`, `403`, `404`).
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit status: the server could not be reached, or the connection broke.
pub const EXIT_NETWORK: u8 = 4;

/// stdout was closed by its reader: the command stops quietly.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed")]
pub struct ClosedPipe;

/// A usage error found after parsing (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Sets the process-wide `--json` and `--quiet` switches.
pub fn configure(json: bool, quiet: bool) {
    JSON.store(json, Ordering::Relaxed);
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `--json` was given.
#[must_use]
pub fn json_mode() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Whether `--quiet` was given.
#[must_use]
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Writes `text` and a newline to stdout.
///
/// # Errors
/// [`ClosedPipe`] when the reader went away; another error when stdout cannot be written.
pub fn line(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        Err(error) => Err(anyhow::Error::new(error).context("cannot write to stdout")),
    }
}

/// Writes a human line unless `--quiet` (data printed with `--json` is never dropped).
///
/// # Errors
/// As [`line`](fn@line).
pub fn human(text: &str) -> anyhow::Result<()> {
    if quiet() {
        return Ok(());
    }
    line(text)
}

/// Writes `value` as pretty JSON to stdout.
///
/// # Errors
/// As [`line`](fn@line).
pub fn json(value: &Value) -> anyhow::Result<()> {
    line(&serde_json::to_string_pretty(value)?)
}

/// Writes a note to stderr (`trove: ...`) unless `--quiet`; write errors are ignored.
pub fn note(text: &str) {
    if quiet() {
        return;
    }
    let _ = writeln!(std::io::stderr().lock(), "trove: {text}");
}

/// Writes an error to stderr (always, even with `--quiet`); write errors are ignored.
pub fn error(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "trove: {text}");
}

/// The exit status of a failed command (see the module documentation).
#[must_use]
pub fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<ClosedPipe>() {
            return EXIT_OK;
        }
        if cause.is::<UsageError>() {
            return EXIT_USAGE;
        }
        if cause.is::<TransportFailure>() {
            return EXIT_NETWORK;
        }
        if let Some(failure) = cause.downcast_ref::<ApiFailure>() {
            return match failure.status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                    EXIT_NOT_FOUND
                }
                _ => EXIT_REFUSED,
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return EXIT_OK;
        }
    }
    EXIT_REFUSED
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: StatusCode) -> anyhow::Error {
        anyhow::Error::new(ApiFailure {
            status,
            reason: String::new(),
            code: String::new(),
            hint: "",
        })
        .context("while doing something")
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(exit_code(&failure(StatusCode::NOT_FOUND)), 3);
        assert_eq!(exit_code(&failure(StatusCode::FORBIDDEN)), 3);
        assert_eq!(exit_code(&failure(StatusCode::UNAUTHORIZED)), 3);
        assert_eq!(exit_code(&failure(StatusCode::CONFLICT)), 1);
        assert_eq!(exit_code(&failure(StatusCode::INTERNAL_SERVER_ERROR)), 1);
        assert_eq!(
            exit_code(&anyhow::Error::new(TransportFailure("x".into()))),
            4
        );
        assert_eq!(exit_code(&anyhow::Error::new(ClosedPipe).context("a")), 0);
        assert_eq!(exit_code(&anyhow::Error::new(UsageError("u".into()))), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("local")), 1);
    }
}
