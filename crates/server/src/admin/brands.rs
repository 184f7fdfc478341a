//! Registering brands: what `card-member brands add` and `brands list` do.
//! Works on the database directly, so the server may be running or not; a
//! running server sees a new brand or certificate on its next request.

use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::keys::{Certificate, PublicKey};
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::error::StartError;
use crate::ops::settings::Settings;
use crate::records::{BrandCertificate, BrandRecord};
use crate::storage;
use crate::storage::{Opener, Storage, StorageError, Taken};

/// A brand API certificate given to `brands add`.
#[derive(Debug)]
pub enum CertificateSource {
    /// An X.509 certificate PEM: its serial and key are read from it.
    Certificate(String),
    /// An SPKI public key PEM with an explicit serial (or the key's
    /// derived serial when `None`).
    PublicKey {
        /// The public key PEM.
        pem: String,
        /// The serial number, uppercase hex.
        serial_no: Option<String>,
    },
}

impl CertificateSource {
    pub(crate) fn load(self) -> Result<BrandCertificate, StartError> {
        match self {
            CertificateSource::Certificate(pem) => {
                let certificate =
                    Certificate::from_pem(&pem).map_err(|err| StartError(err.to_string()))?;
                Ok(BrandCertificate {
                    serial_no: certificate.serial_no().to_owned(),
                    public_key: certificate.public_key().clone(),
                })
            }
            CertificateSource::PublicKey { pem, serial_no } => {
                let public_key =
                    PublicKey::from_spki_pem(&pem).map_err(|err| StartError(err.to_string()))?;
                let serial_no = serial_no
                    .unwrap_or_else(|| public_key.derived_serial())
                    .to_uppercase();
                if serial_no.is_empty() || !serial_no.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(StartError(format!(
                        "serial {serial_no:?} is not hexadecimal"
                    )));
                }
                Ok(BrandCertificate {
                    serial_no,
                    public_key,
                })
            }
        }
    }
}

/// Registers a brand, or adds a certificate to an existing one. The WeChat
/// Pay public key ID defaults to the server's own, and must be the one the
/// database keeps (once a server has started on it). Returns the brand as
/// stored.
pub fn add(
    settings: &Settings,
    brand_id: &str,
    certificate: CertificateSource,
    wechatpay_public_key_id: Option<String>,
) -> Result<BrandRecord, StartError> {
    let mut added = add_all(settings, &[brand_id], certificate, wechatpay_public_key_id)?;
    Ok(added.remove(0))
}

/// [`add`] for several brands sharing one certificate, through one
/// connection to the database (the load benchmark registers thousands).
pub fn add_all(
    settings: &Settings,
    brand_ids: &[&str],
    certificate: CertificateSource,
    wechatpay_public_key_id: Option<String>,
) -> Result<Vec<BrandRecord>, StartError> {
    for brand_id in brand_ids {
        if brand_id.is_empty()
            || brand_id.chars().count() > 32
            || !brand_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(StartError(format!(
                "brand ID {brand_id:?} must be 1 to 32 visible ASCII characters"
            )));
        }
    }
    let certificate = certificate.load()?;
    let key_id = match wechatpay_public_key_id {
        Some(id) => id,
        None => server_public_key_id(settings)?,
    };
    administer(settings, async |storage| {
        the_kept_key_id(storage, &key_id).await?;
        let now = format_rfc3339_millis(OffsetDateTime::now_utc(), CHINA_STANDARD_TIME);
        let mut added = Vec::with_capacity(brand_ids.len());
        for &brand_id in brand_ids {
            let brand = BrandRecord {
                brand_id: brand_id.to_owned(),
                wechatpay_public_key_id: key_id.clone(),
                certificates: vec![certificate.clone()],
                suspended: false,
                api_v3_key: None,
            };
            match storage.add_brand(&brand, &now).await {
                Ok(()) => {}
                Err(StorageError::Taken(Taken::BrandId)) => storage
                    .add_brand_certificate(brand_id, &certificate, &now)
                    .await
                    .map_err(|err| {
                        StartError(format!(
                            "cannot add the certificate to brand {brand_id}: {err}"
                        ))
                    })?,
                Err(err) => return Err(StartError(err.to_string())),
            }
            added.push(
                storage
                    .brand(brand_id)
                    .await
                    .map_err(|err| StartError(err.to_string()))?
                    .ok_or_else(|| StartError(format!("brand {brand_id} vanished")))?,
            );
        }
        Ok(added)
    })
}

/// Sets a brand's APIv3 key: the 32-byte (32 ASCII characters, as the
/// provider's are) AES-256-GCM key its notifications are encrypted with.
/// Sealed with the data key before it is stored; never logged.
pub fn set_api_v3_key(
    settings: &Settings,
    brand_id: &str,
    key: &card_member_protocol::secret::SecretString,
) -> Result<(), StartError> {
    check_api_v3_key(key)?;
    administer(settings, async |storage| {
        let data_key = crate::admin::bootstrap::checked_data_key(storage, settings, false).await?;
        let sealed = data_key.seal(
            crate::domain::notifications::api_v3_key_context(brand_id),
            key,
        );
        storage
            .set_brand_api_v3_key(brand_id, &sealed)
            .await
            .map_err(|err| match err {
                StorageError::NotFound => StartError(format!("no brand {brand_id}")),
                other => StartError(other.to_string()),
            })
    })
}

/// An APIv3 key is 32 bytes of visible ASCII.
pub fn check_api_v3_key(
    key: &card_member_protocol::secret::SecretString,
) -> Result<(), StartError> {
    let bytes = key.expose().as_bytes();
    if bytes.len() == 32 && bytes.iter().all(u8::is_ascii_graphic) {
        Ok(())
    } else {
        Err(StartError(format!(
            "an APIv3 key is 32 visible ASCII characters, got {} bytes",
            bytes.len()
        )))
    }
}

/// Suspends a brand (its verified requests get 403 `NO_AUTH`) or resumes
/// it. A running server notices within its brand cache's lifetime (5 s).
pub fn set_suspended(
    settings: &Settings,
    brand_id: &str,
    suspended: bool,
) -> Result<(), StartError> {
    administer(settings, async |storage| {
        storage
            .set_brand_suspended(brand_id, suspended)
            .await
            .map_err(|err| match err {
                StorageError::NotFound => StartError(format!("no brand {brand_id}")),
                other => StartError(other.to_string()),
            })
    })
}

/// Every registered brand.
pub fn list(settings: &Settings) -> Result<Vec<BrandRecord>, StartError> {
    administer(settings, async |storage| {
        storage
            .list_brands()
            .await
            .map_err(|err| StartError(err.to_string()))
    })
}

/// Runs an administrative change on the storage `settings` name, on a
/// runtime of its own: these functions are called from synchronous code
/// (the command line, or a test's blocking task).
pub(crate) fn administer<T>(
    settings: &Settings,
    work: impl AsyncFnOnce(&Storage) -> Result<T, StartError>,
) -> Result<T, StartError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| StartError(format!("cannot start a runtime: {err}")))?;
    runtime.block_on(async {
        let (backend, _) =
            storage::open(settings, &Clock::default(), Opener::Administration).await?;
        work(&Storage::untimed(backend)).await
    })
}

/// Refuses to record brands under `key_id` unless it is the WeChat Pay
/// public key ID the database keeps (if it keeps one: a server has
/// started on it): a brand recorded with another would have every request
/// refused (its `Wechatpay-Serial`).
pub(crate) async fn the_kept_key_id(storage: &Storage, key_id: &str) -> Result<(), StartError> {
    let kept = storage
        .kept_wechatpay_key()
        .await
        .map_err(|err| StartError(err.to_string()))?;
    match kept {
        Some(kept) if kept.public_key_id != key_id => Err(StartError(format!(
            "the WeChat Pay public key ID {key_id} is not the one this database's brands are \
             given ({}): a brand recorded with it would have every request refused. Leave \
             --wechatpay-public-key-id out, with the settings of an instance serving this \
             database",
            kept.public_key_id
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn server_public_key_id(settings: &Settings) -> Result<String, StartError> {
    if let Some(id) = &settings.wechatpay_public_key_id {
        return Ok(id.clone());
    }
    let (_, dir, _) = super::bootstrap::wechatpay_key_files(settings);
    let path = dir.join("public_key_id");
    std::fs::read_to_string(&path).map(|id| id.trim().to_owned()).map_err(|err| {
        StartError(format!(
            "cannot read the server's WeChat Pay public key ID from {} ({err}); start the server once or pass --wechatpay-public-key-id",
            path.display()
        ))
    })
}
