//! The commands and their flags (clap): the whole command line's shape.
//! Wire values (states, outcomes) are parsed straight into the protocol's
//! types.

use std::path::PathBuf;

use crate::connect::ConnectArgs;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::{api, bench, explain, flood, listen, receiver_battery, sign, simulate};

/// What `card-member --help` ends with (and the man page): the exit codes,
/// as the README's "Exit codes" gives them.
const EXIT_CODES: &str = "Exit codes:
  0    success
  1    the command failed: a flag value it cannot use, an unreadable file, a transport
       error, a response whose signature does not verify; notify-test: the receiver failed
       a check
  2    the command line was refused (unknown command or flag, a missing argument)
  3    the API refused the request: its status, code, message, field and Request-ID on
       standard error (and, for a refused signature, the `card-member explain` to run)
  141  standard output closed before the command finished writing (a pipe's reader gone):
       it stops quietly
Errors go to standard error; output to standard output.";

/// What every subcommand's `--help` ends with: the exit codes in short.
const EXIT_CODES_IN_SHORT: &str = "Exit codes: 0 success, 1 the command failed, 2 the command line \
was refused, 3 the API refused the request, 141 standard output closed (`card-member --help` says \
more).";

/// The command line as `card-member` parses it, its help and its man
/// pages: [`Cli`]'s, with every subcommand's help ending with the exit
/// codes too (the top level's gives them in full).
pub fn command() -> clap::Command {
    fn with_codes(command: clap::Command) -> clap::Command {
        command
            .after_help(EXIT_CODES_IN_SHORT)
            .mut_subcommands(with_codes)
    }
    Cli::command().mut_subcommands(with_codes)
}

/// Run the card-member service (the WeChat Pay brand card-member API) and
/// drive it.
#[derive(Debug, Parser)]
#[command(
    name = "card-member",
    version,
    about,
    propagate_version = true,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server. On the first start in an empty data directory it
    /// creates keys and a development brand, template and card, and writes
    /// DATA_DIR/dev/credentials.json.
    Serve(ServeArgs),
    /// Register brands allowed to call the API (works on the data directory).
    #[command(subcommand)]
    Brands(BrandsCommand),
    #[command(flatten)]
    Api(Box<api::ApiCommand>),
    /// Act as a WeChat user against a running server (the simulation, on
    /// with the development setup): sign up, delete a card, ask for points,
    /// trade points, move the clock.
    #[command(subcommand)]
    Simulate(simulate::SimulateCommand),
    /// Why a running server refused a request for its signature,
    /// certificate serial, timestamp, nonce or a ciphertext: the step, the
    /// exact message it verified, and which known mistake matches (the
    /// server's setting `explain`, on with the development setup).
    Explain(explain::ExplainArgs),
    /// Sign a request as the brand and show the message signed (line by
    /// line), the signature and the headers to send, to hold your own
    /// signing code against: with --timestamp and --nonce set to your
    /// code's, the signatures are equal exactly when the messages and keys
    /// are (PKCS#1 v1.5 signatures are deterministic). Sends nothing.
    Sign(sign::SignArgs),
    /// Receive notifications: verify, decrypt and print each as a JSON line
    /// (and, with --auto-confirm, answer as the brand).
    Listen(listen::ListenArgs),
    /// Put a notification receiver to the test through a running server:
    /// genuine notifications (expect 2xx), the same id again, one whose
    /// JSON is laid out otherwise (expect 2xx: verify the bytes that
    /// arrived), a forged signature, the WECHATPAY/SIGNTEST/ probe, no
    /// signature headers at all, a wrong Wechatpay-Serial, timestamps 6
    /// minutes off, a tampered ciphertext or
    /// associated_data, another APIv3 key (expect refusals), an unknown
    /// event type (expect 2xx). Exit 1 if it failed a check.
    NotifyTest(receiver_battery::NotifyTestArgs),
    /// Notifications sent to brands: list, show one with its attempts, send
    /// one again (works on the data directory).
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Key material: generate keys for trying things out; adopt a changed
    /// WeChat Pay key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Many calls from a file, at the brand's rate limit, resumable.
    #[command(subcommand)]
    Bulk(BulkCommand),
    /// Print the OpenAPI 3.1 document of the API (as the server serves it at
    /// /openapi.json).
    Openapi,
    /// Print a shell's completion script: `source <(card-member completions
    /// bash)`, or save it where the shell looks (see the README).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write a man page for every command (`card-member.1`,
    /// `card-member-cards-list.1`, …) into a directory.
    Man {
        /// Where to write them [created if missing].
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Fill the database with a brand program's worth of data, straight
    /// into storage (not through the API): brands, templates, and user
    /// cards with sealed personal data and their audit entries. For
    /// measuring at size (BENCHMARKS.md "A million cards").
    SeedData(SeedDataArgs),
    /// Load benchmark: start a server, drive the seed update (or another
    /// workload) over loopback, report throughput, latency, CPU per request,
    /// peak RSS and the ratio to the RSA floor. See BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Flood the server with unauthenticated requests and report what it
    /// costs and what it leaves a legitimate brand (RELIABILITY.md).
    Flood(flood::FloodArgs),
}

/// Where the settings come from: defaults, then --config, then
/// CARD_MEMBER_* environment variables, then these flags.
#[derive(Debug, Args)]
pub(crate) struct SettingsArgs {
    /// A TOML settings file.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The data directory [default: ./card-member-data].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) settings: SettingsArgs,
    /// The address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// Log lines as human-readable text or as JSON [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BrandsCommand {
    /// Register a brand with one API certificate, or add a certificate to a
    /// registered brand.
    Add(BrandsAddArgs),
    /// List the registered brands and their certificate serials.
    List(SettingsArgs),
    /// Set a brand's APIv3 key (32 characters): its notifications are
    /// encrypted with it. Sealed at rest, never printed.
    SetApiV3Key {
        #[command(flatten)]
        brand: BrandIdArgs,
        /// The key (or env CARD_MEMBER_API_V3_KEY, which keeps it out of the
        /// shell's history).
        #[arg(long, env = "CARD_MEMBER_API_V3_KEY", hide_env_values = true)]
        api_v3_key: String,
    },
    /// Suspend a brand: its signed requests are refused with 403 NO_AUTH.
    Suspend(BrandIdArgs),
    /// Resume a suspended brand.
    Resume(BrandIdArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BrandIdArgs {
    #[command(flatten)]
    pub(crate) settings: SettingsArgs,
    /// The brand ID.
    #[arg(long)]
    pub(crate) brand_id: String,
}

#[derive(Debug, Args)]
pub(crate) struct BrandsAddArgs {
    #[command(flatten)]
    pub(crate) settings: SettingsArgs,
    /// The brand ID.
    #[arg(long)]
    pub(crate) brand_id: String,
    /// The brand API certificate (X.509 PEM): serial and key are read from it.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "public_key",
        required_unless_present = "public_key"
    )]
    pub(crate) certificate: Option<PathBuf>,
    /// The brand API public key (SPKI PEM), for a key without a certificate.
    #[arg(long, value_name = "FILE")]
    pub(crate) public_key: Option<PathBuf>,
    /// The serial for --public-key [default: derived from the key].
    #[arg(long, requires = "public_key")]
    pub(crate) serial: Option<String>,
    /// The WeChat Pay public key ID associated with the brand [default: the
    /// server's].
    #[arg(long)]
    pub(crate) wechatpay_public_key_id: Option<String>,
    /// The brand's APIv3 key (32 characters), for its notifications (or env
    /// CARD_MEMBER_API_V3_KEY).
    #[arg(long, env = "CARD_MEMBER_API_V3_KEY", hide_env_values = true)]
    pub(crate) api_v3_key: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SeedDataArgs {
    #[command(flatten)]
    pub(crate) settings: SettingsArgs,
    /// User cards in all, spread evenly over the brands.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) cards: usize,
    /// Brands (IDs: the prefix and five digits).
    #[arg(long, default_value_t = 1_000)]
    pub(crate) brands: usize,
    /// Templates per brand (at least 2: each holder has two cards, of two
    /// templates).
    #[arg(long, default_value_t = 10)]
    pub(crate) templates_per_brand: usize,
    /// The brand IDs' prefix.
    #[arg(long, default_value = "seed")]
    pub(crate) prefix: String,
    /// The public key (SPKI PEM) every seeded brand signs with [default:
    /// the development brand's, from DATA_DIR/dev/credentials.json].
    #[arg(long, value_name = "FILE")]
    pub(crate) public_key: Option<PathBuf>,
    /// The serial for --public-key [default: derived from the key].
    #[arg(long, requires = "public_key")]
    pub(crate) serial: Option<String>,
    /// Instead of cards: this many pending notifications in the outbox,
    /// due now, for one card's brand (its holder asking for points, as
    /// after hours with the brand's receiver down).
    #[arg(
        long,
        value_name = "N",
        conflicts_with_all = ["cards", "brands", "templates_per_brand", "prefix", "public_key"]
    )]
    pub(crate) backlog: Option<usize>,
    /// With --backlog: the card's brand.
    #[arg(long, requires = "backlog", default_value = card_member_server::DEV_BRAND_ID)]
    pub(crate) brand_id: String,
    /// With --backlog: the card's template.
    #[arg(long, requires = "backlog", default_value = card_member_server::DEV_CARD_ID)]
    pub(crate) card_id: String,
    /// With --backlog: the card's code.
    #[arg(long, requires = "backlog", default_value = card_member_server::DEV_USER_CARD_CODE)]
    pub(crate) user_card_code: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum NotificationsCommand {
    /// The latest notifications, newest first: ID, event, state, attempts.
    List {
        #[command(flatten)]
        settings: SettingsArgs,
        /// Only this brand's.
        #[arg(long)]
        brand_id: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One notification and its delivery attempts (never its content).
    Show {
        /// The notification ID.
        id: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Send a notification again now, with the same ID (a running server
    /// sends it within a second). One being sent right now is left as it
    /// is, and the command exits 1 saying so: try again once its attempt
    /// ends (within the receiver's 5 seconds).
    Resend {
        /// The notification ID.
        id: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate a brand key pair (PKCS#8 private key, SPKI public key) and a
    /// serial derived from the key, for `brands add --public-key`.
    Generate {
        /// The directory to write brand_private_key.pem, brand_public_key.pem
        /// and serial_no into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Write a self-signed TLS certificate and key for a development server
    /// (`tls_cert`, `tls_key`); clients trust the certificate with
    /// `--tls-root-cert`.
    Tls {
        /// The directory to write cert.pem and key.pem into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A host name or IP address the certificate is for (repeatable).
        #[arg(long = "host", value_name = "NAME", required = true)]
        hosts: Vec<String>,
    },
    /// Make the settings' WeChat Pay platform key the one the database
    /// keeps as the key its brands were given. A server refuses to start
    /// with another key than the kept one (its responses and notifications
    /// would be signed under a key no brand has); after a deliberate change
    /// of the key, once every brand has the new public key and its ID, run
    /// this once with --yes while every instance is stopped (refused beside
    /// a server running on the SQLite file), and start every instance with
    /// the new key.
    /// Every brand is recorded with the new key's ID (its requests'
    /// Wechatpay-Serial), and the data directory's public
    /// key file and development credentials are brought in line. Works on
    /// the data directory or the database, like `brands`; prints the key's
    /// ID and how many brands moved to it.
    AdoptWechatpayKey {
        /// Change the key: without it, a change is refused, saying what it
        /// would change (exit 1).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BulkCommand {
    /// Update one card per row of a .csv (header of API field names) or
    /// .jsonl file. Rows are checked before anything is sent; sending keeps
    /// to the brand's limit; INPUT.journal makes a killed run resumable;
    /// failed rows go to INPUT.failed.jsonl.
    Update {
        /// The input file.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Send the valid rows even when some rows are invalid.
        #[arg(long)]
        skip_invalid: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}
