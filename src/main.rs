//! The `trove` binary: parse the command line and run it.
//!
//! Exit statuses: 0 ok, 1 the server refused (or a local step failed), 2 usage, 3 not found or
//! no access, 4 network (see `trove::cli::client::out`). A closed stdout ends a command
//! quietly with 0, never a panic.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = trove::cli::Cli::parse();
    match trove::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            let code = trove::cli::client::out::exit_code(&error);
            if code != 0 {
                trove::cli::client::out::error(&format!("{error:#}"));
            }
            std::process::ExitCode::from(code)
        }
    }
}
