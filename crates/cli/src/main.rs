//! `card-member`: runs the card-member service and drives the API.
//!
//! A thin front end: flags are parsed, tracing started, and the library's
//! [`card_member_cli::run`] does the work. An error prints once, with its
//! causes, and the exit code is non-zero.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = card_member_cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match card_member_cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("card-member: error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
