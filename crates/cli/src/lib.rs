//! The `card-member` command line: runs the server and drives the API
//! through the SDK.
//!
//! # Layout
//!
//! - [`Cli`] (`args`): the commands and flags (clap); [`run`] executes them.
//! - `api`: the API commands, one SDK call each.
//! - `admin`: `serve`, `brands`, `notifications` (on the data directory).
//! - `simulate`, `listen`: the member's side and a notification receiver.
//! - `input`: card fields from flags, JSON files and bulk rows.
//! - `bulk`: resumable bulk updates at the brand's rate limit.
//! - `keys`: key generation for trying things out.
//!
//! # Example
//!
//! ```no_run
//! use clap::Parser as _;
//!
//! let cli = card_member_cli::Cli::parse_from(["card-member", "serve", "--listen", "127.0.0.1:8080"]);
//! card_member_cli::run(cli).unwrap();
//! ```

mod admin;
mod api;
mod args;
mod bench;
mod bulk;
mod flood;
mod input;
mod keys;
mod listen;
mod simulate;

use std::fmt;
use std::path::PathBuf;

use card_member_client::{Error, error_chain};
use card_member_server::{LogFormat, Settings};

pub use args::Cli;
pub use bulk::{BulkOptions, Summary};
pub use input::{CardFlags, CardInput};

use args::{BulkCommand, Command, KeysCommand, SettingsArgs};

/// A failed command: a message for a person and an exit code.
#[derive(Debug)]
pub struct CliError {
    message: String,
    exit_code: u8,
}

impl CliError {
    /// The process exit code: 1 for most failures, 3 when the API refused
    /// the request.
    pub fn exit_code(&self) -> u8 {
        self.exit_code
    }

    /// A refusal by the server (exit 3), like the API's.
    pub(crate) fn api(message: String) -> Self {
        Self {
            message,
            exit_code: 3,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        Self {
            message,
            exit_code: 1,
        }
    }
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        match error.api() {
            Some(api) => Self {
                message: format!(
                    "{} {}: {}{}{}",
                    api.status,
                    api.code,
                    api.message,
                    api.detail
                        .as_ref()
                        .and_then(|d| d.field.as_ref())
                        .map(|field| format!(" (field {field})"))
                        .unwrap_or_default(),
                    api.request_id
                        .as_ref()
                        .map(|id| format!(" [Request-ID {id}]"))
                        .unwrap_or_default()
                ),
                exit_code: 3,
            },
            None => Self {
                message: error_chain(&error),
                exit_code: 1,
            },
        }
    }
}

pub(crate) fn load_settings(args: &SettingsArgs) -> Result<Settings, CliError> {
    let mut settings = Settings::load(args.config.as_deref()).map_err(|err| err.to_string())?;
    if let Some(dir) = &args.data_dir {
        settings.data_dir.clone_from(dir);
    }
    Ok(settings)
}

pub(crate) fn read(path: &PathBuf) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|err| CliError::from(format!("cannot read {}: {err}", path.display())))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    runtime_with(512)
}

pub(crate) fn runtime_with(blocking_threads: usize) -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads)
        .build()
        .map_err(|err| CliError::from(format!("cannot start the async runtime: {err}")))
}

/// Runs a parsed command line (and starts logging: the server's from its
/// settings, the other commands' at `warn`).
pub fn run(cli: Cli) -> Result<(), CliError> {
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Bench(_) | Command::Flood(_)
    ) {
        admin::init_tracing("warn", LogFormat::Text);
    }
    match cli.command {
        Command::Serve(args) => admin::serve(args),
        Command::Brands(command) => admin::brands(command),
        Command::Api(command) => api::run(*command),
        Command::Simulate(command) => runtime()?.block_on(simulate::run(command)),
        Command::Listen(args) => runtime()?.block_on(listen::run(args)),
        Command::Notifications(command) => admin::notifications(command),
        Command::Keys(KeysCommand::Generate { out }) => keys::generate(&out),
        Command::Keys(KeysCommand::Tls { out, hosts }) => keys::tls(&out, hosts),
        Command::Bench(args) => runtime()?.block_on(bench::run(args)),
        Command::Flood(args) => runtime()?.block_on(flood::run(args)),
        Command::Openapi => {
            let document = card_member_server::openapi::document();
            println!(
                "{}",
                serde_json::to_string_pretty(&document).expect("JSON values serialise")
            );
            Ok(())
        }
        Command::Bulk(BulkCommand::Update {
            input,
            skip_invalid,
            connect,
        }) => {
            let client = connect.client(true)?;
            let summary = runtime()?.block_on(bulk::run(
                &client,
                &BulkOptions {
                    input,
                    skip_invalid,
                },
            ))?;
            if summary.failed + summary.in_doubt > 0 {
                return Err(CliError::from(format!(
                    "{} rows failed and {} are in doubt",
                    summary.failed, summary.in_doubt
                )));
            }
            Ok(())
        }
    }
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("answers serialise")
    );
    Ok(())
}
