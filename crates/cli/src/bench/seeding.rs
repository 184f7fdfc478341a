//! What the bench stores before it measures, straight into storage: its
//! brands, and `--extra-cards` (as `card-member seed-data` does). With
//! another build's server (`--server`), that build's own `brands add` and
//! `seed-data` do it: administration beside a running server works only
//! with that server's schema (RELIABILITY.md "1b"), which another build
//! may not share.

use card_member_server::Settings;
use card_member_server::brands::{self, CertificateSource};
use serde_json::{Value, json};

use super::Signer;
use crate::CliError;

/// Registers the bench's brands `ids`, each with the public key `pem`
/// under `serial`: through `binary`'s own `brands add` when the server is
/// another build's, else here.
pub(super) fn register_brands(
    settings: &Settings,
    ids: &[String],
    pem: String,
    serial: String,
    binary: Option<&std::path::Path>,
) -> Result<(), String> {
    if let Some(binary) = binary {
        return register_with(binary, settings, ids, &pem, &serial);
    }
    let source = CertificateSource::PublicKey {
        pem,
        serial_no: Some(serial),
    };
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    brands::add_all(settings, &ids, source, None).map_err(|err| err.to_string())?;
    Ok(())
}

/// The cards `--extra-cards` wrote straight into the database.
#[derive(Clone, Debug, Default)]
pub(super) struct Extra {
    pub(super) cards: usize,
    brands: usize,
    seconds: f64,
    database_bytes: Option<u64>,
}

/// Seeded brands' ID prefix.
const EXTRA_PREFIX: &str = "bulk";
/// Seeded cards per brand, and templates per brand.
const EXTRA_PER_BRAND: usize = 1_000;
const EXTRA_TEMPLATES: usize = 10;

impl Extra {
    /// The brand and holder the `i`-th list request reads, spread over
    /// every seeded brand and holder.
    pub(super) fn list_target(&self, i: usize) -> Option<(String, String)> {
        if self.brands == 0 {
            return None;
        }
        let brand = i % self.brands;
        let holders = (self.cards / self.brands / 2).max(1);
        let k = 2 * ((i / self.brands * 7919) % holders);
        let (_, holder, _) = card_member_server::seed_data::seeded_card(brand, k, EXTRA_TEMPLATES);
        Some((
            card_member_server::seed_data::seeded_brand_id(EXTRA_PREFIX, brand),
            holder,
        ))
    }

    pub(super) fn report(&self) -> Value {
        json!({
            "cards": self.cards, "brands": self.brands, "templates": self.brands * EXTRA_TEMPLATES,
            "seed_seconds": self.seconds,
            "sqlite_bytes": self.database_bytes,
            "sqlite_bytes_per_card": self.database_bytes.map(|bytes| bytes as f64 / self.cards.max(1) as f64),
        })
    }
}

/// `--extra-cards`: seeded as `card-member seed-data` does, signed with the
/// bench brands' key; with another build's server (`binary`), by that
/// build's own `seed-data`, whose schema it is.
pub(super) async fn seed_extra(
    settings: &Settings,
    signer: &Signer,
    cards: usize,
    binary: Option<&std::path::Path>,
) -> Result<Extra, CliError> {
    if cards == 0 {
        return Ok(Extra::default());
    }
    let brands = cards.div_ceil(EXTRA_PER_BRAND);
    eprintln!(
        "bench: writing {cards} extra cards over {brands} brands straight into the database…"
    );
    let (settings, pem, serial) = (
        settings.clone(),
        signer.key.public_key().to_spki_pem(),
        signer.serial.clone(),
    );
    let binary = binary.map(std::path::Path::to_path_buf);
    let (seeded, database_bytes) = tokio::task::spawn_blocking(move || {
        let seeded = match binary {
            Some(binary) => seed_with(&binary, &settings, cards, brands, &pem, &serial)?,
            None => {
                let plan = card_member_server::seed_data::SeedPlan {
                    prefix: EXTRA_PREFIX.to_owned(),
                    brands,
                    templates_per_brand: EXTRA_TEMPLATES,
                    cards,
                    certificate: CertificateSource::PublicKey {
                        pem,
                        serial_no: Some(serial),
                    },
                };
                let report = card_member_server::seed_data::seed(&settings, plan, &mut |done| {
                    if done % 100 == 0 {
                        eprintln!("bench: {done}/{brands} extra brands");
                    }
                })
                .map_err(|err| err.to_string())?;
                Extra {
                    cards: report.cards,
                    brands: report.brands,
                    seconds: report.seconds,
                    database_bytes: None,
                }
            }
        };
        let bytes = settings.database_url.is_none().then(|| {
            std::fs::read_dir(&settings.data_dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().contains(".db"))
                .filter_map(|entry| entry.metadata().ok())
                .map(|meta| meta.len())
                .sum()
        });
        Ok::<_, String>((seeded, bytes))
    })
    .await
    .map_err(|err| err.to_string())??;
    Ok(Extra {
        database_bytes,
        ..seeded
    })
}

/// `--extra-cards` written by `binary`'s own `card-member seed-data`, on
/// the storage `settings` name.
fn seed_with(
    binary: &std::path::Path,
    settings: &Settings,
    cards: usize,
    brands: usize,
    pem: &str,
    serial: &str,
) -> Result<Extra, String> {
    let (cards, brands, templates) = (
        cards.to_string(),
        brands.to_string(),
        EXTRA_TEMPLATES.to_string(),
    );
    let key_file = public_key_file(settings, pem)?;
    let stdout = run_its_own(
        binary,
        settings,
        &key_file,
        &[
            "seed-data",
            "--cards",
            &cards,
            "--brands",
            &brands,
            "--templates-per-brand",
            &templates,
            "--prefix",
            EXTRA_PREFIX,
            "--serial",
            serial,
        ],
    )?;
    let report: Value = serde_json::from_slice(&stdout)
        .map_err(|err| format!("{} seed-data's report: {err}", binary.display()))?;
    let count = |field: &str| report[field].as_u64().map_or(0, |n| n as usize);
    Ok(Extra {
        cards: count("cards"),
        brands: count("brands"),
        seconds: report["seconds"].as_f64().unwrap_or(0.0),
        database_bytes: None,
    })
}

/// The bench brands' public key `pem`, written into the data directory
/// for another build's commands to read.
fn public_key_file(settings: &Settings, pem: &str) -> Result<std::path::PathBuf, String> {
    let key_file = settings.data_dir.join("bench-public-key.pem");
    std::fs::write(&key_file, pem).map_err(|err| format!("{}: {err}", key_file.display()))?;
    Ok(key_file)
}

/// Runs `binary`'s own `card-member ARGS --public-key KEY_FILE --data-dir
/// DIR` on the storage `settings` name, as an older build administers its
/// own schema; answers its standard output.
fn run_its_own(
    binary: &std::path::Path,
    settings: &Settings,
    key_file: &std::path::Path,
    args: &[&str],
) -> Result<Vec<u8>, String> {
    let mut command = std::process::Command::new(binary);
    command
        .args(args)
        .arg("--public-key")
        .arg(key_file)
        .arg("--data-dir")
        .arg(&settings.data_dir);
    if let Some(url) = &settings.database_url {
        command.env("CARD_MEMBER_DATABASE_URL", url);
    }
    let output = command
        .output()
        .map_err(|err| format!("{}: {err}", binary.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} {}: {}",
            binary.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(output.stdout)
}

/// Registers `ids`, each with the public key `pem` under `serial`, through
/// `binary`'s own `card-member brands add`, one process a brand, on the
/// storage `settings` name.
fn register_with(
    binary: &std::path::Path,
    settings: &Settings,
    ids: &[String],
    pem: &str,
    serial: &str,
) -> Result<(), String> {
    let key_file = public_key_file(settings, pem)?;
    for id in ids {
        run_its_own(
            binary,
            settings,
            &key_file,
            &["brands", "add", "--brand-id", id, "--serial", serial],
        )?;
    }
    Ok(())
}
