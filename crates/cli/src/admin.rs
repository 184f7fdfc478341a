//! The commands that run or administer a server: `serve`, `brands`,
//! `notifications` (they work on the data directory or the database the
//! settings name, not through the API).

use card_member_client::SecretString;
use card_member_server::brands::{self, CertificateSource};
use card_member_server::seed_data::{self, BacklogPlan, SeedPlan};
use card_member_server::{Application, LogFormat, Settings, outbox};

use crate::args::{
    BrandsCommand, LogFormatArg, NotificationsCommand, SeedDataArgs, ServeArgs, SettingsArgs,
};
use crate::{CliError, emit, load_settings, print_json, read, runtime_with};

/// Starts logging to stderr: `RUST_LOG` if set, else `level`.
pub(crate) fn init_tracing(level: &str, format: LogFormat) {
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

/// `notifications list|show|resend`.
pub(crate) fn notifications(command: NotificationsCommand) -> Result<(), CliError> {
    match command {
        NotificationsCommand::List {
            settings,
            brand_id,
            limit,
        } => {
            let settings = load_settings(&settings)?;
            let listed = outbox::list(&settings, brand_id.as_deref(), limit)
                .map_err(|err| err.to_string())?;
            print_json(&listed)
        }
        NotificationsCommand::Show { id, settings } => {
            let settings = load_settings(&settings)?;
            let (notification, attempts) =
                outbox::show(&settings, &id).map_err(|err| err.to_string())?;
            print_json(&serde_json::json!({"notification": notification, "attempts": attempts}))
        }
        NotificationsCommand::Resend { id, settings } => {
            let settings = load_settings(&settings)?;
            outbox::resend(&settings, &id).map_err(|err| err.to_string())?;
            print_json(&serde_json::json!({"resent": id}))
        }
    }
}

/// `keys adopt-wechatpay-key`: the settings' WeChat Pay key becomes the one
/// the database keeps.
pub(crate) fn adopt_wechatpay_key(settings: &SettingsArgs, yes: bool) -> Result<(), CliError> {
    let settings = load_settings(settings)?;
    let adopted =
        card_member_server::adopt_wechatpay_key(&settings, yes).map_err(|err| err.to_string())?;
    print_json(&adopted)
}

/// `seed-data`: a brand program's worth of data, straight into storage.
pub(crate) fn seed_data(args: SeedDataArgs) -> Result<(), CliError> {
    let settings = load_settings(&args.settings)?;
    if let Some(notifications) = args.backlog {
        return seed_backlog(&settings, args, notifications);
    }
    let certificate = match args.public_key {
        Some(path) => CertificateSource::PublicKey {
            pem: read(&path)?,
            serial_no: args.serial,
        },
        None => development_key(&settings)?,
    };
    let plan = SeedPlan {
        prefix: args.prefix,
        brands: args.brands,
        templates_per_brand: args.templates_per_brand,
        cards: args.cards,
        certificate,
    };
    let step = (plan.brands / 10).max(1);
    let total = plan.brands;
    let report = seed_data::seed(&settings, plan, &mut |done| {
        if done % step == 0 || done == total {
            eprintln!("seed-data: {done}/{total} brands");
        }
    })
    .map_err(|err| err.to_string())?;
    print_json(&serde_json::json!({
        "brands": report.brands,
        "templates": report.templates,
        "cards": report.cards,
        "seconds": (report.seconds * 10.0).round() / 10.0,
        "cards_per_second": (report.cards as f64 / report.seconds.max(1e-9)).round(),
    }))
}

/// `seed-data --backlog N`: pending notifications, straight into the outbox.
fn seed_backlog(
    settings: &Settings,
    args: SeedDataArgs,
    notifications: usize,
) -> Result<(), CliError> {
    let plan = BacklogPlan {
        brand_id: args.brand_id,
        card_id: args.card_id,
        user_card_code: args.user_card_code,
        notifications,
    };
    // A line each tenth (and the end); batches are 10,000, so a small
    // backlog reports every batch.
    let mut tenths_shown = 0;
    let report = seed_data::seed_backlog(settings, plan, &mut |done| {
        let tenths = done * 10 / notifications.max(1);
        if tenths > tenths_shown || done == notifications {
            tenths_shown = tenths;
            eprintln!("seed-data: {done}/{notifications} notifications");
        }
    })
    .map_err(|err| err.to_string())?;
    print_json(&serde_json::json!({
        "notifications": report.notifications,
        "seconds": (report.seconds * 10.0).round() / 10.0,
        "notifications_per_second": (report.notifications as f64 / report.seconds.max(1e-9)).round(),
    }))
}

/// The development brand's public key and serial, from its credentials.
fn development_key(settings: &Settings) -> Result<CertificateSource, CliError> {
    let path = settings.data_dir.join("dev/credentials.json");
    let credentials: serde_json::Value = serde_json::from_str(&read(&path)?)
        .map_err(|err| CliError::from(format!("{}: {err}", path.display())))?;
    let key_file = credentials["brand_private_key_file"]
        .as_str()
        .unwrap_or_default();
    let key = card_member_protocol::keys::PrivateKey::from_pkcs8_pem(&read(
        &std::path::PathBuf::from(key_file),
    )?)
    .map_err(|err| CliError::from(format!("{key_file}: {err}")))?;
    Ok(CertificateSource::PublicKey {
        pem: key.public_key().to_spki_pem(),
        serial_no: credentials["brand_serial_no"].as_str().map(str::to_owned),
    })
}

pub(crate) fn serve(args: ServeArgs) -> Result<(), CliError> {
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

pub(crate) fn brands(command: BrandsCommand) -> Result<(), CliError> {
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
            print_brand(&brand)?;
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
                print_brand(&brand)?;
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

fn print_brand(brand: &card_member_server::BrandRecord) -> Result<(), CliError> {
    let serials: Vec<&str> = brand
        .certificates
        .iter()
        .map(|c| c.serial_no.as_str())
        .collect();
    emit(format_args!(
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
    ))
}
