//! The `trove` binary: parse the command line and run it.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = trove::cli::Cli::parse();
    match trove::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("trove: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
