//! The commands and their flags (clap): the whole command line's shape.
//! Wire values (states, outcomes) are parsed straight into the protocol's
//! types.

use std::path::PathBuf;

use card_member_client::protocol::cards::CARD_STATES;
use card_member_client::protocol::endpoints;
use card_member_client::protocol::membership::{CONFIRM_STATES, USER_CARD_STATES};
use card_member_client::{CardState, Client, UserCardConfirmState, UserCardState};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use serde::de::DeserializeOwned;

use crate::api::card_input;
use crate::input::CardFlags;
use crate::{CliError, bench, flood, listen, simulate};

/// Run the card-member service (the WeChat Pay brand card-member API) and
/// drive it.
#[derive(Debug, Parser)]
#[command(name = "card-member", version, about, propagate_version = true)]
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
    Api(Box<ApiCommand>),
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

/// The API's calls, one command per endpoint (or per resource).
#[derive(Debug, Subcommand)]
pub(crate) enum ApiCommand {
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
pub(crate) struct ConnectArgs {
    /// The credentials file (the shape `card-member serve` writes).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "card-member-data/dev/credentials.json"
    )]
    pub(crate) credentials: PathBuf,
    /// Override the credentials' base URL.
    #[arg(long, value_name = "URL")]
    pub(crate) base_url: Option<String>,
    /// Trust this root certificate (PEM) for HTTPS too, e.g. the `cert.pem`
    /// that `card-member keys tls` wrote.
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_root_cert: Option<PathBuf>,
}

impl ConnectArgs {
    pub(crate) fn client(&self, rate_limit: bool) -> Result<Client, CliError> {
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
pub(crate) struct UpdateArgs {
    /// The card's code.
    pub(crate) user_card_code: String,
    /// The card template ID.
    #[arg(long)]
    pub(crate) card_id: Option<String>,
    /// The holder's openid.
    #[arg(long)]
    pub(crate) openid: Option<String>,
    #[command(flatten)]
    pub(crate) fields: CardFlags,
    /// Card fields as a JSON object (API field names, sensitive fields in
    /// plaintext); flags override it.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    pub(crate) decrypt: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

impl UpdateArgs {
    /// The update these arguments describe: the JSON file's fields, the
    /// flags over them, then `--card-id` and `--openid` over both.
    pub(crate) fn update(&self) -> Result<card_member_client::UserCardUpdate, CliError> {
        let mut input = card_input(self.json.as_ref(), &self.fields)?;
        input.card_id = self.card_id.clone().or(input.card_id);
        input.openid = self.openid.clone().or(input.openid);
        Ok(input.into_update()?)
    }
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The card's code.
    pub(crate) user_card_code: String,
    /// The card template ID.
    #[arg(long)]
    pub(crate) card_id: String,
    /// The holder's openid.
    #[arg(long)]
    pub(crate) openid: String,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    pub(crate) decrypt: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// The card a member record is about.
#[derive(Debug, Args)]
pub(crate) struct MemberCardArgs {
    /// The template ID.
    #[arg(long)]
    pub(crate) card_id: String,
    /// The card's code.
    #[arg(long)]
    pub(crate) user_card_code: String,
    /// The holder's openid.
    #[arg(long)]
    pub(crate) openid: String,
    /// The idempotency key: the same key and body answer the first result.
    #[arg(long)]
    pub(crate) out_request_no: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FeedsCommand {
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
pub(crate) enum PointsCommand {
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
pub(crate) struct ConfirmExchangeArgs {
    /// The request's ID (from the POINT_EXCHANGE_COUPON notification).
    #[arg(long)]
    pub(crate) record_id: String,
    /// The exchange template.
    #[arg(long)]
    pub(crate) exchange_coupon_template_id: String,
    /// The template ID.
    #[arg(long)]
    pub(crate) card_id: String,
    /// The member's card.
    #[arg(long)]
    pub(crate) user_card_code: String,
    /// The member.
    #[arg(long)]
    pub(crate) openid: String,
    /// Reject, for this reason (at most 32 characters); allow when absent.
    #[arg(long, value_name = "REASON")]
    pub(crate) reject: Option<String>,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The user.
    #[arg(long)]
    pub(crate) openid: String,
    /// Only cards in this state, as read now.
    #[arg(long, value_parser = wire::<UserCardState>(USER_CARD_STATES))]
    pub(crate) state: Option<UserCardState>,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    pub(crate) decrypt: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// Parses a wire enum from its API name (`EFFECTIVE`, `CARD_INVALID`, …):
/// clap offers `names`, the endpoint table's list of the values, and the
/// protocol's own type is what the command gets (no mirror enum to keep in
/// step).
fn wire<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).map(|name| {
        serde_json::from_value(serde_json::Value::String(name))
            .expect("the table's names are the type's values")
    })
}

/// A confirm: the outcome, and the card (its code from the
/// USER_CARD.CREATE notification) with any fields to set, as `update` takes
/// them.
#[derive(Debug, Args)]
pub(crate) struct ConfirmArgs {
    /// The outcome of the sign-up.
    #[arg(long, value_parser = wire::<UserCardConfirmState>(CONFIRM_STATES))]
    pub(crate) state: UserCardConfirmState,
    #[command(flatten)]
    pub(crate) card: UpdateArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
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
pub(crate) enum ImagesCommand {
    #[command(about = endpoints::UPLOAD_IMAGE.summary)]
    Upload {
        /// The image file (JPG, PNG or BMP, at most 2 MiB).
        file: PathBuf,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct InvalidateArgs {
    /// The card's code.
    pub(crate) user_card_code: String,
    /// The card template ID.
    #[arg(long)]
    pub(crate) card_id: String,
    /// The holder's openid.
    #[arg(long)]
    pub(crate) openid: String,
    /// Why (at most 32 characters).
    #[arg(long)]
    pub(crate) reason: Option<String>,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The new card's code.
    #[arg(long)]
    pub(crate) user_card_code: Option<String>,
    /// The card template ID.
    #[arg(long)]
    pub(crate) card_id: Option<String>,
    /// The holder's openid.
    #[arg(long)]
    pub(crate) openid: Option<String>,
    /// When the user received the card (RFC 3339) [default: now].
    #[arg(long, value_name = "TIME")]
    pub(crate) pickup_time: Option<String>,
    #[command(flatten)]
    pub(crate) fields: CardFlags,
    /// Card fields as a JSON object; flags override it.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Print sensitive fields decrypted.
    #[arg(long)]
    pub(crate) decrypt: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CardsCommand {
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
        #[arg(long, value_parser = wire::<CardState>(CARD_STATES))]
        state: Option<CardState>,
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
