//! The `card-member` command line: runs the server and drives the API
//! through the SDK.
//!
//! # Layout
//!
//! - [`Cli`] (`args`): the commands and flags (clap); [`run`] executes them.
//! - `api`: the API commands, one SDK call each; `connect`: how they reach
//!   the API.
//! - `admin`: `serve`, `brands`, `notifications` (on the data directory).
//! - `simulate`, `listen`: the member's side and a notification receiver.
//! - `explain`: why a server refused a request; `sign`: a request signed
//!   as the brand, to hold a brand's own code against; `faults`: failures
//!   injected on purpose (`simulate fault`); `receiver_battery`: a receiver
//!   put to the test.
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
mod connect;
mod explain;
mod faults;
mod flood;
mod input;
mod keys;
mod listen;
mod receiver_battery;
mod sign;
mod simulate;

use std::fmt;
use std::path::PathBuf;

use card_member_client::{Error, error_chain};
use card_member_server::{LogFormat, Settings};

pub use args::{Cli, command};
pub use bulk::{BulkOptions, Summary};
pub use input::{CardFlags, CardInput};

use args::{BulkCommand, Command, KeysCommand, SettingsArgs};

/// A failed command: a message for a person and an exit code.
#[derive(Debug)]
pub struct CliError {
    message: String,
    exit_code: u8,
}

/// The exit code when standard output was closed before the command
/// finished writing (`card-member … | head -1`): 128 + SIGPIPE, as a shell
/// reports a process a closed pipe ended. Nothing is printed for it.
pub const EXIT_CLOSED_PIPE: u8 = 141;

impl CliError {
    /// The process exit code: 1 for most failures, 3 when the API refused
    /// the request.
    pub fn exit_code(&self) -> u8 {
        self.exit_code
    }

    /// Whether this is standard output closed early: the reader has gone,
    /// and there is nobody to tell (exit [`EXIT_CLOSED_PIPE`], no message).
    pub fn is_closed_pipe(&self) -> bool {
        self.exit_code == EXIT_CLOSED_PIPE
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
                    "{} {}: {}{}{}{}",
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
                        .unwrap_or_default(),
                    explain_hint(api)
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

/// For a refusal a server explains (signature, serial, timestamp, nonce, a
/// ciphertext), the command that says why.
fn explain_hint(api: &card_member_client::ApiError) -> String {
    match &api.request_id {
        Some(id) if api.is_explained() => format!("\nwhy: card-member explain {id}"),
        _ => String::new(),
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

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A fresh random nonce, as the SDK makes one.
pub(crate) fn random_nonce() -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let rng = SystemRandom::new();
    card_member_client::protocol::nonce::generate_nonce(|buffer| {
        rng.fill(buffer).expect("the system RNG works")
    })
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
        Command::Explain(args) => runtime()?.block_on(explain::run(args)),
        Command::Sign(args) => sign::run(args),
        Command::Listen(args) => runtime()?.block_on(listen::run(args)),
        Command::NotifyTest(args) => runtime()?.block_on(receiver_battery::run(args)),
        Command::Notifications(command) => admin::notifications(command),
        Command::Keys(KeysCommand::Generate { out }) => keys::generate(&out),
        Command::Keys(KeysCommand::Tls { out, hosts }) => keys::tls(&out, hosts),
        Command::Keys(KeysCommand::AdoptWechatpayKey { yes, settings }) => {
            admin::adopt_wechatpay_key(&settings, yes)
        }
        Command::SeedData(args) => admin::seed_data(args),
        Command::Bench(args) => runtime()?.block_on(bench::run(args)),
        Command::Flood(args) => runtime()?.block_on(flood::run(args)),
        Command::Openapi => print_json(&card_member_server::openapi::document()),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command(), "card-member", &mut script);
            emit(String::from_utf8_lossy(&script).trim_end())
        }
        Command::Man { out } => {
            let written = man_pages(&out)?;
            emit(format_args!(
                "wrote {written} man pages to {}",
                out.display()
            ))
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

/// Writes a man page for the command line and each of its subcommands,
/// named after their path (`card-member-cards-list.1`); how many.
fn man_pages(out: &std::path::Path) -> Result<usize, CliError> {
    fn write(
        command: &clap::Command,
        name: &str,
        out: &std::path::Path,
    ) -> Result<usize, CliError> {
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone().name(name.to_owned()))
            .render(&mut page)
            .map_err(|err| CliError::from(format!("cannot render {name}.1: {err}")))?;
        let path = out.join(format!("{name}.1"));
        std::fs::write(&path, page)
            .map_err(|err| CliError::from(format!("cannot write {}: {err}", path.display())))?;
        let mut written = 1;
        for sub in command
            .get_subcommands()
            .filter(|sub| sub.get_name() != "help")
        {
            written += write(sub, &format!("{name}-{}", sub.get_name()), out)?;
        }
        Ok(written)
    }
    std::fs::create_dir_all(out)
        .map_err(|err| CliError::from(format!("cannot create {}: {err}", out.display())))?;
    let mut command = command();
    command.build();
    write(&command, "card-member", out)
}

/// Writes `value` as pretty JSON, one line per field, to standard output.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    emit(serde_json::to_string_pretty(value).expect("answers serialise"))
}

/// Writes a line to standard output. A reader that went away (a closed
/// pipe) ends the command quietly with [`EXIT_CLOSED_PIPE`]; `println!`
/// would panic there.
pub(crate) fn emit(line: impl fmt::Display) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|err| {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                CliError {
                    message: String::new(),
                    exit_code: EXIT_CLOSED_PIPE,
                }
            } else {
                CliError::from(format!("cannot write to standard output: {err}"))
            }
        })
}
