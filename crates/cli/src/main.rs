//! `card-member`: runs the card-member service and drives the API.
//!
//! A thin front end: flags are parsed here, settings loaded, tracing
//! started, and the libraries do the work. Errors print once, with their
//! cause, and exit non-zero.

use std::path::PathBuf;
use std::process::ExitCode;

use card_member_server::brands::{self, CertificateSource};
use card_member_server::{Application, Settings};
use clap::{Args, Parser, Subcommand};

/// Run the card-member service (the WeChat Pay brand card-member API) and
/// drive it.
#[derive(Debug, Parser)]
#[command(name = "card-member", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server. On the first start in an empty data directory it
    /// creates keys and a development brand, template and card, and writes
    /// DATA_DIR/dev/credentials.json.
    Serve(ServeArgs),
    /// Register brands allowed to call the API.
    #[command(subcommand)]
    Brands(BrandsCommand),
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
}

#[derive(Debug, Subcommand)]
enum BrandsCommand {
    /// Register a brand with one API certificate, or add a certificate to a
    /// registered brand.
    Add(BrandsAddArgs),
    /// List the registered brands and their certificate serials.
    List(SettingsArgs),
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
}

fn load_settings(args: &SettingsArgs) -> Result<Settings, String> {
    let mut settings = Settings::load(args.config.as_deref()).map_err(|err| err.to_string())?;
    if let Some(dir) = &args.data_dir {
        settings.data_dir.clone_from(dir);
    }
    Ok(settings)
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut settings = load_settings(&args.settings)?;
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    let app = Application::build(settings)
        .await
        .map_err(|err| err.to_string())?;
    if let Some(credentials) = app.created_credentials() {
        eprintln!(
            "card-member: first start, created a development brand, template and card; call the API with {}",
            credentials.display()
        );
    }
    eprintln!("card-member: listening on http://{}", app.local_addr());
    app.run_until(card_member_server::shutdown_signal())
        .await
        .map_err(|err| format!("server failed: {err}"))
}

fn brands_command(command: BrandsCommand) -> Result<(), String> {
    match command {
        BrandsCommand::Add(args) => {
            let settings = load_settings(&args.settings)?;
            let source = match (&args.certificate, &args.public_key) {
                (Some(path), _) => CertificateSource::Certificate(read(path)?),
                (None, Some(path)) => CertificateSource::PublicKey {
                    pem: read(path)?,
                    serial_no: args.serial.clone(),
                },
                (None, None) => return Err("give --certificate or --public-key".to_owned()),
            };
            let brand = brands::add(
                &settings,
                &args.brand_id,
                source,
                args.wechatpay_public_key_id,
            )
            .map_err(|err| err.to_string())?;
            print_brand(&brand);
            Ok(())
        }
        BrandsCommand::Suspend(args) => {
            let settings = load_settings(&args.settings)?;
            brands::set_suspended(&settings, &args.brand_id, true).map_err(|err| err.to_string())
        }
        BrandsCommand::Resume(args) => {
            let settings = load_settings(&args.settings)?;
            brands::set_suspended(&settings, &args.brand_id, false).map_err(|err| err.to_string())
        }
        BrandsCommand::List(args) => {
            let settings = load_settings(&args)?;
            for brand in brands::list(&settings).map_err(|err| err.to_string())? {
                print_brand(&brand);
            }
            Ok(())
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
        "{}\twechatpay_public_key_id={}\tserials={}{}",
        brand.brand_id,
        brand.wechatpay_public_key_id,
        serials.join(","),
        if brand.suspended { "\tSUSPENDED" } else { "" }
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => tokio::runtime::Runtime::new()
            .map_err(|err| format!("cannot start the async runtime: {err}"))
            .and_then(|runtime| runtime.block_on(serve(args))),
        Command::Brands(command) => brands_command(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("card-member: error: {message}");
            ExitCode::FAILURE
        }
    }
}
