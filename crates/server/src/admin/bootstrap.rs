//! Key material on disk, and the development setup made on a first start.
//!
//! Files holding secrets are written with mode 0600, atomically (a
//! temporary file, fsync, rename), so a crash never leaves half a key.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::keys::PrivateKey;
use card_member_protocol::media::ImageType;
use card_member_protocol::model::{
    Card, CardDefinition, CardState, CardType, CodeMode, CodeType, CommonFieldFlag,
    CustomFieldDefinition, CustomFieldType, DateInfo, DateType, JumpInformation, UserCardState,
    UserInformationForm,
};
use card_member_protocol::secret::SecretString;
use serde::Serialize;
use time::OffsetDateTime;

use crate::crypto::sealing::{DataKey, SealContext};
use crate::domain::media::store_image;
use crate::domain::notifications::api_v3_key_context;
use crate::domain::user_cards::{PHONE_NUMBER, seal_context};
use crate::error::StartError;
use crate::ops::settings::Settings;
use crate::records::{AuditEntry, BrandCertificate, BrandRecord, UserCardKey, UserCardRecord};
use crate::storage::{KeptWechatpayKey, SealedSample, Storage, StorageError};

/// The demo brand of the development setup (the seed page's brand ID).
pub const DEV_BRAND_ID: &str = "1001622624";
/// The demo template (the seed page's `card_id`).
pub const DEV_CARD_ID: &str = "pbLatjvWOibDc5-TBnbUk1pD12o0";
/// The second demo template: codes allocated by the server, a year's
/// validity after pickup, for pre-authorization tokens and sign-ups.
pub const DEV_SIGNUP_CARD_ID: &str = "pDevSignUp000000000000000001";
/// Where the development templates' notifications go: the default of
/// `card-member listen`.
pub const DEV_NOTIFY_URL: &str = "http://127.0.0.1:9000/notify";
/// The card image the development setup uploads.
const DEV_CARD_PICTURE: &[u8] = include_bytes!("../../assets/dev-card.png");
/// The demo user card (the seed page's `user_card_code`).
pub const DEV_USER_CARD_CODE: &str = "478515832665";
/// The demo holder (the seed page's `openid`).
pub const DEV_OPENID: &str = "obLatjnx9gnqzS4myYGmLZ7LgLBA";

/// `DATA_DIR/dev/credentials.json`: what a developer hands to the SDK or
/// the CLI to call the local server.
#[derive(Debug, Serialize)]
pub struct DevCredentials {
    /// Where the server listens.
    pub base_url: String,
    /// The demo brand.
    pub brand_id: String,
    /// The demo brand's certificate serial.
    pub brand_serial_no: String,
    /// Absolute path of the demo brand's PKCS#8 private key.
    pub brand_private_key_file: PathBuf,
    /// The WeChat Pay public key ID.
    pub wechatpay_public_key_id: String,
    /// Absolute path of the WeChat Pay SPKI public key.
    pub wechatpay_public_key_file: PathBuf,
    /// The demo template.
    pub card_id: String,
    /// The second demo template (sign-ups).
    pub signup_card_id: String,
    /// The uploaded demo card image.
    pub media_url: String,
    /// The demo brand's APIv3 key (notifications are encrypted with it).
    #[serde(serialize_with = "expose_secret")]
    pub api_v3_key: SecretString,
    /// The demo card.
    pub user_card_code: String,
    /// The demo holder.
    pub openid: String,
}

pub(crate) fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), StartError> {
    let fail = |err: std::io::Error| StartError(format!("cannot write {}: {err}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&temporary).map_err(fail)?;
    file.write_all(contents).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&temporary, path).map_err(fail)?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<String, StartError> {
    std::fs::read_to_string(path)
        .map_err(|err| StartError(format!("cannot read {}: {err}", path.display())))
}

/// Loads the data key, creating it if the default file does not exist.
pub(crate) fn data_key(path: &Path, create: bool) -> Result<DataKey, StartError> {
    if !path.exists() && create {
        let key = crate::crypto::random_bytes::<{ DataKey::LEN }>();
        write_file(path, STANDARD.encode(key).as_bytes(), true)?;
        tracing::info!(path = %path.display(), "created a new data key");
    }
    let text = SecretString::new(read_file(path)?);
    let bytes = STANDARD
        .decode(text.expose().trim())
        .map_err(|_| StartError(format!("{} is not base64", path.display())))?;
    let bytes: [u8; DataKey::LEN] = bytes
        .try_into()
        .map_err(|_| StartError(format!("{} must hold 32 bytes in base64", path.display())))?;
    Ok(DataKey::new(&bytes))
}

/// The data key's file: `data_key_file`, or `DATA_DIR/data.key`.
fn data_key_file(settings: &Settings) -> PathBuf {
    settings
        .data_key_file
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("data.key"))
}

/// Where the data key's check is sealed, and what it seals.
const KEY_CHECK: SealContext<'static> = SealContext {
    brand_id: "",
    card_id: "card-member",
    user_card_code: "",
    field: "data_key_check",
};
const KEY_CHECK_TEXT: &str = "card-member data key check, version 1";

/// Loads the data key of `settings` and checks it against the database,
/// before anything is sealed with it: personal data sealed under two keys
/// is data lost when one of them is (a second instance given a fresh data
/// directory, a `data.key` deleted or replaced, an administrative command
/// run elsewhere).
///
/// - The first start keeps a constant sealed under its key in the
///   database; every later start or command opens it with its own key and
///   refuses to go on if it does not open. A database from before the
///   check is tested on a value already sealed (a brand's APIv3 key, a
///   phone number) before its check is written.
/// - A new key is made (where `may_create` and the default file is
///   missing) only while nothing is sealed in the database: a missing key
///   is otherwise an error that says which key to bring back.
pub(crate) async fn checked_data_key(
    storage: &Storage,
    settings: &Settings,
    may_create: bool,
) -> Result<DataKey, StartError> {
    let path = data_key_file(settings);
    let failed = |err: StorageError| StartError(format!("checking the data key: {err}"));
    let kept = storage.data_key_check().await.map_err(failed)?;
    let sample = match kept {
        Some(_) => None,
        None => storage.a_sealed_sample().await.map_err(failed)?,
    };
    let nothing_sealed = kept.is_none() && sample.is_none();
    if !path.exists() && !nothing_sealed {
        return Err(StartError(format!(
            "{} does not exist, and this database holds personal data sealed under a data key: \
             put that key there (the data.key of the data directory that first served this \
             database) or name it with data_key_file; a new key could not open what is sealed",
            path.display()
        )));
    }
    let create = may_create && settings.data_key_file.is_none() && nothing_sealed;
    let key = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || data_key(&path, create))
            .await
            .map_err(|err| StartError(format!("loading the data key: {err}")))??
    };
    let mismatch = |what: &str| {
        StartError(format!(
            "the data key {} does not open {what}: it is not the key this database's personal \
             data is sealed under. Use the data.key of the data directory that first served \
             this database (instances sharing one database share one data key); with another \
             key, what is sealed could not be opened, and what it sealed no other could open",
            path.display()
        ))
    };
    if let Some(sample) = &sample {
        let (context, sealed, what) = match sample {
            SealedSample::ApiV3Key { brand_id, sealed } => (
                api_v3_key_context(brand_id),
                sealed,
                "a brand's APIv3 key stored in the database",
            ),
            SealedSample::PhoneNumber {
                brand_id,
                card_id,
                user_card_code,
                sealed,
            } => (
                seal_context(
                    UserCardKey {
                        brand_id,
                        card_id,
                        user_card_code,
                    },
                    PHONE_NUMBER,
                ),
                sealed,
                "a phone number stored in the database",
            ),
        };
        key.open(context, sealed).map_err(|_| mismatch(what))?;
    }
    let kept = match kept {
        Some(kept) => kept,
        None => storage
            .keep_data_key_check(&key.seal(KEY_CHECK, &SecretString::new(KEY_CHECK_TEXT)))
            .await
            .map_err(failed)?,
    };
    match key.open(KEY_CHECK, &kept) {
        Ok(text) if text.expose() == KEY_CHECK_TEXT => Ok(key),
        _ => Err(mismatch("the check the database keeps")),
    }
}

/// Where the WeChat Pay key of `settings` is: its private key file, and
/// the directory that holds the files made with it (`public_key.pem`,
/// `public_key_id`); whether it may be made there (the default file).
pub(crate) fn wechatpay_key_files(settings: &Settings) -> (PathBuf, PathBuf, bool) {
    let dir = settings.data_dir.join("wechatpay");
    match &settings.wechatpay_private_key_file {
        Some(file) => (file.clone(), dir, false),
        None => (dir.join("private_key.pem"), dir, true),
    }
}

/// Loads the WeChat Pay platform key of `settings` and checks it against
/// the one the database's brands were given, before anything is signed
/// with it: an instance holding another key (a second instance given a
/// fresh data directory, a key file replaced) would sign its responses and
/// notifications under a key no brand has, and every brand's verification
/// of them would fail.
///
/// - The first start keeps its key's public key ID and public key in the
///   database (nothing secret); every later start compares its own and
///   refuses to start on a difference.
/// - A database from before the key was kept is checked on the public key
///   ID its brands' records were given, then keeps this instance's key.
/// - A new key is made (where the default file is missing) only while the
///   database keeps none and its brands were given none.
/// - A deliberate change of the key is
///   [`adopt_wechatpay_key`](super::keys::adopt_wechatpay_key).
pub(crate) async fn checked_wechatpay_key(
    storage: &Storage,
    settings: &Settings,
) -> Result<(PrivateKey, String), StartError> {
    let failed = |err: StorageError| StartError(format!("checking the WeChat Pay key: {err}"));
    let kept = storage.kept_wechatpay_key().await.map_err(failed)?;
    // A database from before the key was kept: its brands' records say
    // which public key ID they were given (not which key).
    let ids_given = match &kept {
        Some(_) => Vec::new(),
        None => storage.wechatpay_key_ids_given().await.map_err(failed)?,
    };
    let given = match &kept {
        Some(kept) => Some(kept.public_key_id.clone()),
        None => (!ids_given.is_empty()).then(|| ids_given.join(", ")),
    };
    let (key_file, dir, default_file) = wechatpay_key_files(settings);
    if let Some(given) = &given
        && !key_file.exists()
    {
        return Err(StartError(format!(
            "{} does not exist, and this database's brands were given the WeChat Pay key {given}: \
             put that key there (the wechatpay/ directory of the data directory that first \
             served this database) or name it with wechatpay_private_key_file; a new key would \
             sign what no brand can verify",
            key_file.display(),
        )));
    }
    let (key, id) = {
        let key_id = settings.wechatpay_public_key_id.clone();
        tokio::task::spawn_blocking(move || {
            wechatpay_key(&key_file, key_id.as_deref(), &dir, default_file)
        })
        .await
        .map_err(|err| StartError(format!("loading keys: {err}")))??
    };
    let this = KeptWechatpayKey {
        public_key_id: id.clone(),
        public_key_pem: key.public_key().to_spki_pem(),
    };
    let refused = |which: &str, given: &str| {
        StartError(format!(
            "this instance's WeChat Pay key ({which}) is not the key this database's brands were \
             given ({given}): its responses and notifications would be signed under a key no \
             brand has. Use the wechatpay/ directory of the data directory that first served \
             this database (or name its files with wechatpay_private_key_file and \
             wechatpay_public_key_id); to change the key on purpose, once every brand has the \
             new public key and ID, run `card-member keys adopt-wechatpay-key --yes` with \
             this instance's settings"
        ))
    };
    let kept = match kept {
        Some(kept) => kept,
        None if !ids_given.is_empty() && !ids_given.contains(&id) => {
            return Err(refused(&id, &ids_given.join(", ")));
        }
        None => storage
            .keep_wechatpay_key(this.clone())
            .await
            .map_err(failed)?,
    };
    if kept != this {
        let which = if kept.public_key_id == id {
            format!("{id} with another public key")
        } else {
            id
        };
        return Err(refused(&which, &kept.public_key_id));
    }
    Ok((key, id))
}

/// Loads the WeChat Pay private key and its public key ID, generating both
/// in `dir` if they do not exist.
pub(crate) fn wechatpay_key(
    key_file: &Path,
    key_id: Option<&str>,
    dir: &Path,
    create: bool,
) -> Result<(PrivateKey, String), StartError> {
    let id_file = dir.join("public_key_id");
    if !key_file.exists() && create {
        let key = PrivateKey::generate().map_err(|err| StartError(err.to_string()))?;
        write_file(key_file, key.to_pkcs8_pem().as_bytes(), true)?;
        write_file(
            &dir.join("public_key.pem"),
            key.public_key().to_spki_pem().as_bytes(),
            false,
        )?;
        if key_id.is_none() {
            write_file(&id_file, new_public_key_id().as_bytes(), false)?;
        }
        tracing::info!(path = %key_file.display(), "created a new WeChat Pay platform key pair");
    }
    let key = PrivateKey::from_pkcs8_pem(&read_file(key_file)?)
        .map_err(|err| StartError(format!("{}: {err}", key_file.display())))?;
    let id = match key_id {
        Some(id) => id.to_owned(),
        None => read_file(&id_file)?.trim().to_owned(),
    };
    if !id.starts_with("PUB_KEY_ID_") {
        return Err(StartError(format!(
            "the WeChat Pay public key ID {id:?} does not start with PUB_KEY_ID_"
        )));
    }
    Ok((key, id))
}

/// `PUB_KEY_ID_` followed by 34 random digits, the shape of the provider's IDs.
pub(crate) fn new_public_key_id() -> String {
    let digits: String = crate::crypto::random_bytes::<64>()
        .iter()
        .filter(|byte| **byte < 250)
        .take(34)
        .map(|byte| char::from(b'0' + byte % 10))
        .collect();
    format!("PUB_KEY_ID_{digits}")
}

/// Creates the demo brand, template and card, and writes the credentials
/// file. Called once, on the first start in an empty data directory.
pub(crate) async fn create_dev_setup(
    storage: &Storage,
    crypto: &crate::crypto::Crypto,
    data_dir: &Path,
    base_url: &str,
    wechatpay_key: &PrivateKey,
    wechatpay_public_key_id: &str,
) -> Result<PathBuf, StartError> {
    let dev = absolute(&data_dir.join("dev"))?;
    let brand_key = tokio::task::spawn_blocking(PrivateKey::generate)
        .await
        .map_err(|err| StartError(err.to_string()))?
        .map_err(|err| StartError(err.to_string()))?;
    let brand_public = brand_key.public_key();
    let serial_no = brand_public.derived_serial();
    let now = format_rfc3339_millis(OffsetDateTime::now_utc(), CHINA_STANDARD_TIME);
    let storage_error =
        |err: crate::storage::StorageError| StartError(format!("development setup: {err}"));

    storage
        .add_brand(
            &BrandRecord {
                brand_id: DEV_BRAND_ID.to_owned(),
                wechatpay_public_key_id: wechatpay_public_key_id.to_owned(),
                certificates: vec![BrandCertificate {
                    serial_no: serial_no.clone(),
                    public_key: brand_public.clone(),
                }],
                suspended: false,
                api_v3_key: None,
            },
            &now,
        )
        .await
        .map_err(storage_error)?;
    // The development brand's APIv3 key, sealed at rest like personal
    // data; the credentials file holds it for the receiver.
    let api_v3_key: String = crate::crypto::random_nonce().chars().take(32).collect();
    storage
        .set_brand_api_v3_key(
            DEV_BRAND_ID,
            &crypto.seal(
                crate::domain::notifications::api_v3_key_context(DEV_BRAND_ID),
                &SecretString::new(api_v3_key.clone()),
            ),
        )
        .await
        .map_err(storage_error)?;
    let kind = ImageType::sniff(DEV_CARD_PICTURE).expect("the demo picture is a PNG");
    let media_url = store_image(
        storage,
        base_url,
        DEV_BRAND_ID,
        kind,
        DEV_CARD_PICTURE.to_vec(),
        &now,
    )
    .await
    .map_err(storage_error)?;
    for card in dev_templates(&media_url, &now) {
        storage
            .create_card(&card, "")
            .await
            .map_err(storage_error)?;
    }
    let card = UserCardRecord {
        brand_id: DEV_BRAND_ID.to_owned(),
        card_id: DEV_CARD_ID.to_owned(),
        user_card_code: DEV_USER_CARD_CODE.to_owned(),
        openid: DEV_OPENID.to_owned(),
        card_type: CardType::Normal,
        card_color: None,
        card_picture_url: None,
        phone_number: None,
        level: None,
        valid_date_information: DateInfo::permanent(),
        pickup_time: now.clone(),
        user_information: None,
        attach: None,
        state: UserCardState::Effective,
        invalid_reason: None,
        invalid_time: None,
        create_time: now.clone(),
        modify_time: now.clone(),
        version: 1,
    };
    let audit = AuditEntry {
        brand_id: DEV_BRAND_ID.to_owned(),
        card_id: DEV_CARD_ID.to_owned(),
        user_card_code: DEV_USER_CARD_CODE.to_owned(),
        request_id: "dev-bootstrap".to_owned(),
        at: now,
        action: "import".to_owned(),
        fields: Vec::new(),
    };
    storage
        .insert_user_card(
            &card,
            Arc::new(|_| false),
            &audit,
            None,
            None,
            crate::domain::cards::takes_cards,
        )
        .await
        .map_err(storage_error)?;

    let brand_private_key_file = dev.join("brand_private_key.pem");
    let wechatpay_public_key_file = dev.join("wechatpay_public_key.pem");
    write_file(
        &brand_private_key_file,
        brand_key.to_pkcs8_pem().as_bytes(),
        true,
    )?;
    write_file(
        &dev.join("brand_public_key.pem"),
        brand_public.to_spki_pem().as_bytes(),
        false,
    )?;
    write_file(
        &wechatpay_public_key_file,
        wechatpay_key.public_key().to_spki_pem().as_bytes(),
        false,
    )?;
    let credentials = DevCredentials {
        base_url: base_url.to_owned(),
        brand_id: DEV_BRAND_ID.to_owned(),
        brand_serial_no: serial_no,
        brand_private_key_file,
        wechatpay_public_key_id: wechatpay_public_key_id.to_owned(),
        wechatpay_public_key_file,
        card_id: DEV_CARD_ID.to_owned(),
        signup_card_id: DEV_SIGNUP_CARD_ID.to_owned(),
        media_url,
        api_v3_key: SecretString::new(api_v3_key),
        user_card_code: DEV_USER_CARD_CODE.to_owned(),
        openid: DEV_OPENID.to_owned(),
    };
    let path = dev.join("credentials.json");
    let mut json = serde_json::to_vec_pretty(&credentials).expect("credentials serialise");
    json.push(b'\n');
    write_file(&path, &json, true)?;
    Ok(path)
}

/// The credentials file is the one place the development APIv3 key is
/// written in the clear (mode 0600 is the caller's: the file sits beside
/// the brand's private key).
fn expose_secret<S: serde::Serializer>(
    secret: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

/// The two demo templates: the seed page's (codes the brand allocates, no
/// expiry; its form asks for what the seed's request sends) and one for
/// sign-ups (codes the server allocates, a year after pickup).
fn dev_templates(media_url: &str, now: &str) -> [Card; 2] {
    let template = |card_id: &str, out_request_no: &str, definition: CardDefinition| Card {
        card_id: card_id.to_owned(),
        brand_id: DEV_BRAND_ID.to_owned(),
        definition: CardDefinition {
            out_request_no: out_request_no.to_owned(),
            ..definition
        },
        state: CardState::CardEffective,
        create_time: now.to_owned(),
        modify_time: now.to_owned(),
    };
    let seed = CardDefinition {
        card_color: Some("#63B359".to_owned()),
        card_picture_url: Some(media_url.to_owned()),
        code_type: CodeType::BarCodeAndQrCode,
        benefits: Some("积分兑好礼".to_owned()),
        notify_url: Some(DEV_NOTIFY_URL.to_owned()),
        need_pinned: Some(false),
        need_display_level: Some(true),
        init_level: Some("普通会员".to_owned()),
        service_phone: Some("400-000-0000".to_owned()),
        member_information: Some(JumpInformation {
            jump_appid: "wxdevelopment0000".to_owned(),
            jump_path: "/pages/member/index".to_owned(),
        }),
        user_information: Some(UserInformationForm {
            common_field_list: Some(vec![CommonFieldFlag::UserFormFlagBirthday]),
            custom_field_list: Some(vec![CustomFieldDefinition {
                field_type: CustomFieldType::CheckBox,
                name: "喜欢的运动".to_owned(),
                values: vec!["跑步".to_owned(), "游泳".to_owned(), "骑行".to_owned()],
            }]),
        }),
        ..CardDefinition::new(
            "",
            "wxdevelopment0000",
            "开发会员卡",
            CodeMode::MerchantAllocate,
        )
    };
    let signup = CardDefinition {
        card_title: "开发入会卡".to_owned(),
        card_color: Some("#2F7BD9".to_owned()),
        code_mode: CodeMode::SystemAllocate,
        code_type: CodeType::QrCode,
        need_display_level: Some(false),
        init_level: None,
        valid_date_information: DateInfo {
            date_type: DateType::FixTerm,
            available_begin_time: None,
            available_end_time: None,
            available_day_after_receive: Some(365),
        },
        user_information: Some(UserInformationForm {
            common_field_list: Some(vec![
                CommonFieldFlag::UserFormFlagName,
                CommonFieldFlag::UserFormFlagBirthday,
            ]),
            custom_field_list: Some(vec![CustomFieldDefinition {
                field_type: CustomFieldType::Radio,
                name: "到店频率".to_owned(),
                values: vec!["每周".to_owned(), "每月".to_owned()],
            }]),
        }),
        ..seed.clone()
    };
    [
        template(DEV_CARD_ID, "dev-bootstrap", seed),
        template(DEV_SIGNUP_CARD_ID, "dev-bootstrap-signup", signup),
    ]
}

fn absolute(path: &Path) -> Result<PathBuf, StartError> {
    std::path::absolute(path)
        .map_err(|err| StartError(format!("cannot resolve {}: {err}", path.display())))
}
