//! `card-member`: runs the card-member service and drives the API.
//!
//! A thin front end: flags are parsed, and the library's
//! [`card_member_cli::run`] starts logging and does the work. An error prints once, with its
//! causes, and the exit code is non-zero.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = card_member_cli::Cli::parse();
    match card_member_cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A closed standard output has no reader left to tell.
            if !error.is_closed_pipe() {
                eprintln!("card-member: error: {error}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}
