//! The `card-member` command line: runs the server and drives the API
//! through the SDK.
//!
//! # Layout
//!
//! - [`Cli`]: the commands and flags (clap), and [`run`], which executes them.
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

mod bench;
mod bulk;
mod flood;
mod input;
mod keys;
mod listen;
mod simulate;

use std::fmt;
use std::path::PathBuf;

use card_member_client::SecretString;
use card_member_client::protocol::endpoints;
use card_member_client::protocol::model::{Ciphertext, CreateCardRequest};
use card_member_client::{
    Card, CardState, Client, Error, ExchangeCouponConfirmRequest, ExchangeDecision,
    PointsSyncRequest, UpdateCardRequest, UserCard, UserCardConfirmState, UserCardState,
    UserFeedRequest,
};
use card_member_server::brands::{self, CertificateSource};
use card_member_server::{Application, LogFormat, Settings};
use clap::{Args, Parser, Subcommand};
use futures_util::TryStreamExt as _;

pub use bulk::{BulkOptions, Summary};
pub use input::{CardFlags, CardInput};

/// Run the card-member service (the WeChat Pay brand card-member API) and
/// drive it.
#[derive(Debug, Parser)]
#[command(name = "card-member", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server. On the first start in an empty data directory it
    /// creates keys and a development brand, template and card, and writes
    /// DATA_DIR/dev/credentials.json.
    Serve(ServeArgs),
    /// Register brands allowed to call the API (works on the data directory).
    #[command(subcommand)]
    Brands(BrandsCommand),
    // The API commands' help is the endpoint table's summary.
    #[command(about = endpoints::UPDATE_USER_CARD.summary)]
    Update(UpdateArgs),
    #[command(about = endpoints::GET_USER_CARD.summary)]
    Get(GetArgs),
    #[command(about = endpoints::IMPORT_USER_CARD.summary)]
    Import(ImportArgs),
    #[command(about = endpoints::INVALIDATE_USER_CARD.summary)]
    Invalidate(InvalidateArgs),
    #[command(about = endpoints::LIST_USER_CARDS.summary)]
    List(ListArgs),
    #[command(about = endpoints::CONFIRM_USER_CARD.summary)]
    Confirm(ConfirmArgs),
    /// Card templates: create, read, list, change, invalidate.
    #[command(subcommand)]
    Cards(CardsCommand),
    /// Pre-authorization tokens (they open the membership component).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Card images.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Member activity entries.
    #[command(subcommand)]
    Feeds(FeedsCommand),
    /// Members' points.
    #[command(subcommand)]
    Points(PointsCommand),
    /// Act as a WeChat user against a running server (the simulation, on
    /// with the development setup): sign up, delete a card, ask for points,
    /// trade points, move the clock.
    #[command(subcommand)]
    Simulate(simulate::SimulateCommand),
    /// Receive notifications: verify, decrypt and print each as a JSON line
    /// (and, with --auto-confirm, answer as the brand).
    Listen(listen::ListenArgs),
    /// Notifications sent to brands: list, show one with its attempts, send
    /// one again (works on the data directory).
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Generate key material for trying things out.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Many calls from a file, at the brand's rate limit, resumable.
    #[command(subcommand)]
    Bulk(BulkCommand),
    /// Print the OpenAPI 3.1 document of the API (as the server serves it at
    /// /openapi.json).
    Openapi,
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
struct SettingsArgs {
    /// A TOML settings file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data directory [default: ./card-member-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// The address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Log lines as human-readable text or as JSON [default: text].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// Starts logging to stderr: `RUST_LOG` if set, else `level`.
fn init_tracing(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only on a terminal: `serve 2> file` writes plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[derive(Debug, Subcommand)]
enum BrandsCommand {
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
struct BrandIdArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// The brand ID.
    #[arg(long)]
    brand_id: String,
}

#[derive(Debug, Args)]
struct BrandsAddArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// The brand ID.
    #[arg(long)]
    brand_id: String,
    /// The brand API certificate (X.509 PEM): serial and key are read from it.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "public_key",
        required_unless_present = "public_key"
    )]
    certificate: Option<PathBuf>,
    /// The brand API public key (SPKI PEM), for a key without a certificate.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// The serial for --public-key [default: derived from the key].
    #[arg(long, requires = "public_key")]
    serial: Option<String>,
    /// The WeChat Pay public key ID associated with the brand [default: the
    /// server's].
    #[arg(long)]
    wechatpay_public_key_id: Option<String>,
    /// The brand's APIv3 key (32 characters), for its notifications (or env
    /// CARD_MEMBER_API_V3_KEY).
    #[arg(long, env = "CARD_MEMBER_API_V3_KEY", hide_env_values = true)]
    api_v3_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum NotificationsCommand {
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
    /// sends it within a second).
    Resend {
        /// The notification ID.
        id: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

/// How to reach the API.
#[derive(Debug, Args)]
struct ConnectArgs {
    /// The credentials file (the shape `card-member serve` writes).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "card-member-data/dev/credentials.json"
    )]
    credentials: PathBuf,
    /// Override the credentials' base URL.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Trust this root certificate (PEM) for HTTPS too, e.g. the `cert.pem`
    /// that `card-member keys tls` wrote.
    #[arg(long, value_name = "FILE")]
    tls_root_cert: Option<PathBuf>,
}

impl ConnectArgs {
    fn client(&self, rate_limit: bool) -> Result<Client, CliError> {
        let mut builder = Client::builder_from_credentials_file(&self.credentials)?;
        if let Some(url) = &self.base_url {
            builder = builder.base_url(url.clone());
        }
        if let Some(path) = &self.tls_root_cert {
            builder = builder.trust_root_certificate_file(path);
        }
        Ok(builder.rate_limit(rate_limit).build()?)
    }
}

#[derive(Debug, Args)]
struct UpdateArgs {
    /// The card's code.
    user_card_code: String,
    /// The card template ID.
    #[arg(long)]
    card_id: Option<String>,
    /// The holder's openid.
    #[arg(long)]
    openid: Option<String>,
    #[command(flatten)]
    fields: CardFlags,
    /// Card fields as a JSON object (API field names, sensitive fields in
    /// plaintext); flags override it.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    decrypt: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

impl UpdateArgs {
    /// The update these arguments describe: the JSON file's fields, the
    /// flags over them, then `--card-id` and `--openid` over both.
    fn update(&self) -> Result<card_member_client::UserCardUpdate, CliError> {
        let mut input = card_input(self.json.as_ref(), &self.fields)?;
        input.card_id = self.card_id.clone().or(input.card_id);
        input.openid = self.openid.clone().or(input.openid);
        Ok(input.into_update()?)
    }
}

#[derive(Debug, Args)]
struct GetArgs {
    /// The card's code.
    user_card_code: String,
    /// The card template ID.
    #[arg(long)]
    card_id: String,
    /// The holder's openid.
    #[arg(long)]
    openid: String,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    decrypt: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// The card a member record is about.
#[derive(Debug, Args)]
struct MemberCardArgs {
    /// The template ID.
    #[arg(long)]
    card_id: String,
    /// The card's code.
    #[arg(long)]
    user_card_code: String,
    /// The holder's openid.
    #[arg(long)]
    openid: String,
    /// The idempotency key: the same key and body answer the first result.
    #[arg(long)]
    out_request_no: String,
}

#[derive(Debug, Subcommand)]
enum FeedsCommand {
    #[command(about = endpoints::CREATE_USER_FEED.summary)]
    Create {
        #[command(flatten)]
        card: MemberCardArgs,
        /// The entry's content (at most 128 characters).
        #[arg(long)]
        cell: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Debug, Subcommand)]
enum PointsCommand {
    #[command(about = endpoints::SYNC_USER_POINTS.summary)]
    Sync {
        #[command(flatten)]
        card: MemberCardArgs,
        /// The points balance.
        #[arg(long)]
        balance: i64,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    #[command(about = endpoints::CONFIRM_POINT_EXCHANGE.summary)]
    ConfirmExchange(ConfirmExchangeArgs),
}

#[derive(Debug, Args)]
struct ConfirmExchangeArgs {
    /// The request's ID (from the POINT_EXCHANGE_COUPON notification).
    #[arg(long)]
    record_id: String,
    /// The exchange template.
    #[arg(long)]
    exchange_coupon_template_id: String,
    /// The template ID.
    #[arg(long)]
    card_id: String,
    /// The member's card.
    #[arg(long)]
    user_card_code: String,
    /// The member.
    #[arg(long)]
    openid: String,
    /// Reject, for this reason (at most 32 characters); allow when absent.
    #[arg(long, value_name = "REASON")]
    reject: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// The user.
    #[arg(long)]
    openid: String,
    /// Only cards in this state, as read now.
    #[arg(long, value_enum)]
    state: Option<UserCardStateArg>,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    decrypt: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum UserCardStateArg {
    Unactivated,
    Effective,
    Expired,
    Invalid,
}

impl From<UserCardStateArg> for UserCardState {
    fn from(state: UserCardStateArg) -> Self {
        match state {
            UserCardStateArg::Unactivated => UserCardState::Unactivated,
            UserCardStateArg::Effective => UserCardState::Effective,
            UserCardStateArg::Expired => UserCardState::Expired,
            UserCardStateArg::Invalid => UserCardState::Invalid,
        }
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum CardStateArg {
    CardEffective,
    CardInvalid,
}

// The variants are the API's values, prefix and all.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum ConfirmStateArg {
    CreateCardSuccess,
    CreateCardFail,
    CreateCardAlreadyExists,
}

/// A confirm: the outcome, and the card (its code from the
/// USER_CARD.CREATE notification) with any fields to set, as `update` takes
/// them.
#[derive(Debug, Args)]
struct ConfirmArgs {
    /// The outcome of the sign-up.
    #[arg(long, value_enum)]
    state: ConfirmStateArg,
    #[command(flatten)]
    card: UpdateArgs,
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    #[command(about = endpoints::CREATE_PRE_AUTH_TOKEN.summary)]
    Create {
        /// The template.
        #[arg(long)]
        card_id: String,
        /// The user.
        #[arg(long)]
        openid: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ImagesCommand {
    #[command(about = endpoints::UPLOAD_IMAGE.summary)]
    Upload {
        /// The image file (JPG, PNG or BMP, at most 2 MiB).
        file: PathBuf,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Debug, Args)]
struct InvalidateArgs {
    /// The card's code.
    user_card_code: String,
    /// The card template ID.
    #[arg(long)]
    card_id: String,
    /// The holder's openid.
    #[arg(long)]
    openid: String,
    /// Why (at most 32 characters).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The new card's code.
    #[arg(long)]
    user_card_code: Option<String>,
    /// The card template ID.
    #[arg(long)]
    card_id: Option<String>,
    /// The holder's openid.
    #[arg(long)]
    openid: Option<String>,
    /// When the user received the card (RFC 3339) [default: now].
    #[arg(long, value_name = "TIME")]
    pickup_time: Option<String>,
    #[command(flatten)]
    fields: CardFlags,
    /// Card fields as a JSON object; flags override it.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    decrypt: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Debug, Subcommand)]
enum CardsCommand {
    #[command(about = endpoints::CREATE_CARD.summary, long_about = "Create a template from a JSON file (the API's create-template body); idempotent on out_request_no.")]
    Create {
        /// The request body.
        #[arg(long, value_name = "FILE")]
        json: PathBuf,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    #[command(about = endpoints::GET_CARD.summary)]
    Get {
        /// The template ID.
        card_id: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    #[command(about = endpoints::LIST_CARDS.summary)]
    List {
        /// Only templates in this state.
        #[arg(long, value_enum)]
        state: Option<CardStateArg>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    #[command(about = endpoints::UPDATE_CARD.summary, long_about = "Change a template: the fields of a JSON file (the API's change body) and the flags, which override it.")]
    Update {
        /// The template ID.
        card_id: String,
        /// The change as a JSON object.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// The title (at most 10 characters).
        #[arg(long)]
        card_title: Option<String>,
        /// The background color, #RRGGBB.
        #[arg(long)]
        card_color: Option<String>,
        /// The background image: a URL from `images upload`.
        #[arg(long)]
        card_picture_url: Option<String>,
        /// Where notifications go.
        #[arg(long)]
        notify_url: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    #[command(about = endpoints::INVALIDATE_CARD.summary)]
    Invalidate {
        /// The template ID.
        card_id: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
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
}

#[derive(Debug, Subcommand)]
enum BulkCommand {
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

/// An error and its causes, joined by `: `.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn load_settings(args: &SettingsArgs) -> Result<Settings, CliError> {
    let mut settings = Settings::load(args.config.as_deref()).map_err(|err| err.to_string())?;
    if let Some(dir) = &args.data_dir {
        settings.data_dir.clone_from(dir);
    }
    Ok(settings)
}

fn read(path: &PathBuf) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|err| CliError::from(format!("cannot read {}: {err}", path.display())))
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    runtime_with(512)
}

fn runtime_with(blocking_threads: usize) -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads)
        .build()
        .map_err(|err| CliError::from(format!("cannot start the async runtime: {err}")))
}

/// Prints a verified card as JSON; with `decrypt`, its sensitive fields in
/// plaintext.
fn print_card(client: &Client, card: &UserCard, decrypt: bool) -> Result<(), CliError> {
    print_json(&shown_card(client, card, decrypt)?)
}

/// A card as printed: with `decrypt`, its sensitive fields in plaintext.
fn shown_card(client: &Client, card: &UserCard, decrypt: bool) -> Result<UserCard, CliError> {
    let mut card = card.clone();
    if decrypt {
        // The plaintext takes the ciphertexts' places, so the fields keep the
        // API's order.
        let fields = client.decrypt(&card)?;
        if let Some(phone) = fields.phone_number {
            card.phone_number = Some(Ciphertext(phone.expose().to_owned()));
        }
        let common = card
            .user_information
            .as_mut()
            .and_then(|info| info.common_field_list.as_mut());
        for (item, plain) in common.into_iter().flatten().zip(&fields.common_field_list) {
            item.value = Ciphertext(plain.value.expose().to_owned());
        }
    }
    Ok(card)
}

fn card_input(json: Option<&PathBuf>, flags: &CardFlags) -> Result<CardInput, CliError> {
    let mut input = match json {
        Some(path) => input::read_json(path)?,
        None => CardInput::default(),
    };
    flags.apply(&mut input)?;
    Ok(input)
}

/// Runs a parsed command line (and starts logging: the server's from its
/// settings, the other commands' at `warn`).
pub fn run(cli: Cli) -> Result<(), CliError> {
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Bench(_) | Command::Flood(_)
    ) {
        init_tracing("warn", LogFormat::Text);
    }
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Brands(command) => brands_command(command),
        Command::Update(args) => {
            let update = args.update()?;
            let client = args.connect.client(false)?;
            let card =
                runtime()?.block_on(client.user_cards().update(&args.user_card_code, &update))?;
            print_card(&client, &card, args.decrypt)
        }
        Command::Get(args) => {
            let client = args.connect.client(false)?;
            let card = runtime()?.block_on(client.user_cards().get(
                &args.user_card_code,
                &args.card_id,
                &args.openid,
            ))?;
            print_card(&client, &card, args.decrypt)
        }
        Command::Feeds(FeedsCommand::Create {
            card,
            cell,
            connect,
        }) => {
            let client = connect.client(false)?;
            let feed = runtime()?.block_on(client.activity().feed(&UserFeedRequest {
                card_id: card.card_id,
                user_card_code: card.user_card_code,
                openid: card.openid,
                out_request_no: card.out_request_no,
                cell,
            }))?;
            print_json(&feed)
        }
        Command::Points(PointsCommand::Sync {
            card,
            balance,
            connect,
        }) => {
            let client = connect.client(false)?;
            let sync = runtime()?.block_on(client.activity().sync_points(&PointsSyncRequest {
                out_request_no: card.out_request_no,
                card_id: card.card_id,
                openid: card.openid,
                user_card_code: card.user_card_code,
                point_balance: balance,
            }))?;
            print_json(&sync)
        }
        Command::Invalidate(args) => {
            let client = args.connect.client(false)?;
            let card = runtime()?.block_on(client.user_cards().invalidate(
                &args.user_card_code,
                &args.card_id,
                &args.openid,
                args.reason.as_deref(),
            ))?;
            print_card(&client, &card, false)
        }
        Command::Import(args) => {
            let mut input = card_input(args.json.as_ref(), &args.fields)?;
            input.card_id = args.card_id.or(input.card_id);
            input.openid = args.openid.or(input.openid);
            input.user_card_code = args.user_card_code.or(input.user_card_code);
            input.pickup_time = args.pickup_time.or(input.pickup_time);
            let import = input.into_import()?;
            let client = args.connect.client(false)?;
            let card = runtime()?.block_on(client.user_cards().import(&import))?;
            print_card(&client, &card, args.decrypt)
        }
        Command::Cards(CardsCommand::Create { json, connect }) => {
            let request: CreateCardRequest = serde_json::from_str(&read(&json)?)
                .map_err(|err| CliError::from(format!("{}: {err}", json.display())))?;
            let client = connect.client(false)?;
            let card = runtime()?.block_on(client.cards().create(&request))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&card).expect("cards serialise")
            );
            Ok(())
        }
        Command::Cards(CardsCommand::Get { card_id, connect }) => {
            let client = connect.client(false)?;
            let card = runtime()?.block_on(client.cards().get(&card_id))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&card).expect("cards serialise")
            );
            Ok(())
        }
        Command::Cards(CardsCommand::List { state, connect }) => {
            let client = connect.client(true)?;
            let state = state.map(|state| match state {
                CardStateArg::CardEffective => CardState::CardEffective,
                CardStateArg::CardInvalid => CardState::CardInvalid,
            });
            let cards: Vec<Card> = runtime()?.block_on(client.cards().list(state).try_collect())?;
            print_json(&cards)
        }
        Command::Cards(CardsCommand::Update {
            card_id,
            json,
            card_title,
            card_color,
            card_picture_url,
            notify_url,
            connect,
        }) => {
            let mut change: UpdateCardRequest = match &json {
                Some(path) => serde_json::from_str(&read(path)?)
                    .map_err(|err| CliError::from(format!("{}: {err}", path.display())))?,
                None => UpdateCardRequest::default(),
            };
            change.card_title = card_title.or(change.card_title);
            change.card_color = card_color.or(change.card_color);
            change.card_picture_url = card_picture_url.or(change.card_picture_url);
            change.notify_url = notify_url.or(change.notify_url);
            let client = connect.client(false)?;
            print_json(&runtime()?.block_on(client.cards().update(&card_id, &change))?)
        }
        Command::Cards(CardsCommand::Invalidate { card_id, connect }) => {
            let client = connect.client(false)?;
            print_json(&runtime()?.block_on(client.cards().invalidate(&card_id))?)
        }
        Command::List(args) => {
            let client = args.connect.client(true)?;
            let cards: Vec<UserCard> = runtime()?.block_on(
                client
                    .user_cards()
                    .list(&args.openid, args.state.map(UserCardState::from))
                    .try_collect(),
            )?;
            let cards = cards
                .iter()
                .map(|card| shown_card(&client, card, args.decrypt))
                .collect::<Result<Vec<_>, _>>()?;
            print_json(&cards)
        }
        Command::Confirm(ConfirmArgs { state, card: args }) => {
            let update = args.update()?;
            let outcome = match state {
                ConfirmStateArg::CreateCardSuccess => UserCardConfirmState::CreateCardSuccess,
                ConfirmStateArg::CreateCardFail => UserCardConfirmState::CreateCardFail,
                ConfirmStateArg::CreateCardAlreadyExists => {
                    UserCardConfirmState::CreateCardAlreadyExists
                }
            };
            let client = args.connect.client(false)?;
            let card = runtime()?.block_on(client.user_cards().confirm(
                &args.user_card_code,
                outcome,
                &update,
            ))?;
            print_card(&client, &card, args.decrypt)
        }
        Command::Tokens(TokensCommand::Create {
            card_id,
            openid,
            connect,
        }) => {
            let client = connect.client(false)?;
            print_json(&runtime()?.block_on(client.user_cards().pre_auth_token(&card_id, &openid))?)
        }
        Command::Points(PointsCommand::ConfirmExchange(args)) => {
            let client = args.connect.client(false)?;
            let request = ExchangeCouponConfirmRequest {
                record_id: args.record_id,
                exchange_coupon_template_id: args.exchange_coupon_template_id,
                card_id: args.card_id,
                openid: args.openid,
                user_card_code: args.user_card_code,
                result: if args.reject.is_some() {
                    ExchangeDecision::PointExchangeCouponReject
                } else {
                    ExchangeDecision::PointExchangeCouponAllow
                },
                reject_reason: args.reject,
            };
            print_json(&runtime()?.block_on(client.activity().confirm_point_exchange(&request))?)
        }
        Command::Images(ImagesCommand::Upload { file, connect }) => {
            let client = connect.client(false)?;
            print_json(&runtime()?.block_on(client.media().upload_image_file(&file))?)
        }
        Command::Simulate(command) => runtime()?.block_on(simulate::run(command)),
        Command::Listen(args) => runtime()?.block_on(listen::run(args)),
        Command::Notifications(NotificationsCommand::List {
            settings,
            brand_id,
            limit,
        }) => {
            let settings = load_settings(&settings)?;
            let listed = card_member_server::outbox::list(&settings, brand_id.as_deref(), limit)
                .map_err(|err| err.to_string())?;
            print_json(&listed)
        }
        Command::Notifications(NotificationsCommand::Show { id, settings }) => {
            let settings = load_settings(&settings)?;
            let (notification, attempts) =
                card_member_server::outbox::show(&settings, &id).map_err(|err| err.to_string())?;
            print_json(&serde_json::json!({"notification": notification, "attempts": attempts}))
        }
        Command::Notifications(NotificationsCommand::Resend { id, settings }) => {
            let settings = load_settings(&settings)?;
            card_member_server::outbox::resend(&settings, &id).map_err(|err| err.to_string())?;
            print_json(&serde_json::json!({"resent": id}))
        }
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

fn serve(args: ServeArgs) -> Result<(), CliError> {
    let mut settings = load_settings(&args.settings)?;
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    match args.log_format {
        Some(LogFormatArg::Json) => settings.log_format = LogFormat::Json,
        Some(LogFormatArg::Text) => settings.log_format = LogFormat::Text,
        None => {}
    }
    init_tracing(&settings.log_level, settings.log_format);
    runtime_with(settings.effective_blocking_threads())?.block_on(serve_with(settings))
}

async fn serve_with(settings: Settings) -> Result<(), CliError> {
    let app = Application::build(settings)
        .await
        .map_err(|err| err.to_string())?;
    if let Some(credentials) = app.created_credentials() {
        eprintln!(
            "card-member: first start: created a development brand, template and card; call the API with {}",
            credentials.display()
        );
    }
    eprintln!("card-member: listening on http://{}", app.local_addr());
    app.run_until(card_member_server::shutdown_signal())
        .await
        .map_err(|err| CliError::from(format!("server failed: {err}")))
}

fn brands_command(command: BrandsCommand) -> Result<(), CliError> {
    match command {
        BrandsCommand::Add(args) => {
            let settings = load_settings(&args.settings)?;
            let source = match (&args.certificate, &args.public_key) {
                (Some(path), _) => CertificateSource::Certificate(read(path)?),
                (None, Some(path)) => CertificateSource::PublicKey {
                    pem: read(path)?,
                    serial_no: args.serial.clone(),
                },
                (None, None) => {
                    return Err(CliError::from(
                        "give --certificate or --public-key".to_owned(),
                    ));
                }
            };
            let key = args.api_v3_key.map(SecretString::new);
            if let Some(key) = &key {
                brands::check_api_v3_key(key).map_err(|err| err.to_string())?;
            }
            let mut brand = brands::add(
                &settings,
                &args.brand_id,
                source,
                args.wechatpay_public_key_id,
            )
            .map_err(|err| err.to_string())?;
            if let Some(key) = key {
                brands::set_api_v3_key(&settings, &args.brand_id, &key)
                    .map_err(|err| err.to_string())?;
                brand.api_v3_key = Some(Vec::new());
            }
            print_brand(&brand);
            Ok(())
        }
        BrandsCommand::SetApiV3Key { brand, api_v3_key } => {
            let settings = load_settings(&brand.settings)?;
            Ok(
                brands::set_api_v3_key(&settings, &brand.brand_id, &SecretString::new(api_v3_key))
                    .map_err(|err| err.to_string())?,
            )
        }
        BrandsCommand::List(args) => {
            let settings = load_settings(&args)?;
            for brand in brands::list(&settings).map_err(|err| err.to_string())? {
                print_brand(&brand);
            }
            Ok(())
        }
        BrandsCommand::Suspend(args) => {
            let settings = load_settings(&args.settings)?;
            Ok(brands::set_suspended(&settings, &args.brand_id, true)
                .map_err(|err| err.to_string())?)
        }
        BrandsCommand::Resume(args) => {
            let settings = load_settings(&args.settings)?;
            Ok(brands::set_suspended(&settings, &args.brand_id, false)
                .map_err(|err| err.to_string())?)
        }
    }
}

fn print_brand(brand: &card_member_server::BrandRecord) {
    let serials: Vec<&str> = brand
        .certificates
        .iter()
        .map(|c| c.serial_no.as_str())
        .collect();
    println!(
        "{}\twechatpay_public_key_id={}\tserials={}\tapi_v3_key={}{}",
        brand.brand_id,
        brand.wechatpay_public_key_id,
        serials.join(","),
        if brand.api_v3_key.is_some() {
            "set"
        } else {
            "not set"
        },
        if brand.suspended { "\tSUSPENDED" } else { "" }
    );
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("answers serialise")
    );
    Ok(())
}
