//! `card-member`: runs the card-member service and drives the API.
//!
//! A thin front end: flags are parsed, and the library's
//! [`card_member_cli::run`] starts logging and does the work. An error prints once, with its
//! causes, and the exit code is non-zero.

use std::process::ExitCode;

use clap::FromArgMatches;

fn main() -> ExitCode {
    // Parsed through `command()`, whose subcommands' help ends with the
    // exit codes; clap's own errors exit 2 (`--help` 0).
    let cli = card_member_cli::Cli::from_arg_matches(&card_member_cli::command().get_matches())
        .unwrap_or_else(|error| error.exit());
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
