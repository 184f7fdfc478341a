//! A deliberate change of the WeChat Pay platform key: `card-member keys
//! adopt-wechatpay-key` (the check every start makes is
//! `bootstrap::checked_wechatpay_key`).

use super::bootstrap::{wechatpay_key, wechatpay_key_files, write_file};
use super::brands::administer;
use crate::error::StartError;
use crate::ops::settings::Settings;
use crate::storage::{Adoption, KeptWechatpayKey};

/// What adopting a WeChat Pay key did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Adopted {
    /// The adopted key's public key ID.
    #[serde(rename = "adopted_wechatpay_public_key_id")]
    pub id: String,
    /// How many brands' records moved to this key's ID from another.
    pub brands_moved: u64,
}

/// Makes the WeChat Pay key of `settings` the one the database keeps as
/// the key its brands were given: a deliberate change of the platform key,
/// once every brand has the new public key and its ID (instances holding
/// the old key then refuse to start). What the data directory hands out is
/// brought in line: a key in its default place has its public key written
/// beside it again (`wechatpay/public_key.pem`), and the development
/// setup's credentials, if any, name the new key and its ID. Every brand
/// is recorded with the new ID (the `Wechatpay-Serial` its requests must
/// name).
///
/// Unless `confirmed`, a change is refused, saying what it would change
/// (the key kept, the brands that would move; a database that keeps no key
/// yet, whose brands were given another ID, too): run on a misconfigured
/// instance to make its start error go away, it would take every brand's
/// key from under it. Adopting the key already kept needs no confirmation.
pub fn adopt_wechatpay_key(settings: &Settings, confirmed: bool) -> Result<Adopted, StartError> {
    let (key_file, dir, default_file) = wechatpay_key_files(settings);
    let (key, id) = wechatpay_key(
        &key_file,
        settings.wechatpay_public_key_id.as_deref(),
        &dir,
        false,
    )?;
    let public_key_pem = key.public_key().to_spki_pem();
    let adopted = KeptWechatpayKey {
        public_key_id: id.clone(),
        public_key_pem: public_key_pem.clone(),
    };
    let failed = |err: crate::storage::StorageError| {
        StartError(format!("keeping the WeChat Pay key: {err}"))
    };
    let brands_moved = administer(settings, async |storage| {
        // Beside a server running on the SQLite file, no change: it would
        // go on signing with the key it started with.
        let allowed = confirmed && !storage.beside_a_running_server();
        match storage
            .adopt_wechatpay_key(adopted, allowed)
            .await
            .map_err(failed)?
        {
            Adoption::Adopted { brands_moved } => Ok(brands_moved),
            Adoption::WouldChange { kept, moving } if !confirmed => {
                let before = kept.unwrap_or_else(|| "none kept".to_owned());
                Err(StartError(format!(
                    "nothing changed: adopting {id} replaces the WeChat Pay key this database keeps \
                     as its brands' ({before}), and records {moving} brand(s) with the new ID; \
                     every instance with another key then refuses to start. Once every brand has \
                     the new public key and ID, run this again with --yes"
                )))
            }
            Adoption::WouldChange { .. } => Err(StartError(
                "nothing changed: a server is running on this data directory, and it signs with \
                 the key it started with; stop it, adopt the new key, then start it with the \
                 new key"
                    .to_owned(),
            )),
        }
    })?;
    if default_file {
        write_file(
            &dir.join("public_key.pem"),
            public_key_pem.as_bytes(),
            false,
        )?;
    }
    let dev = settings.data_dir.join("dev");
    let credentials_file = dev.join("credentials.json");
    if credentials_file.exists() {
        let unreadable = |err: &dyn std::fmt::Display| {
            StartError(format!("{}: {err}", credentials_file.display()))
        };
        let text = std::fs::read_to_string(&credentials_file).map_err(|err| unreadable(&err))?;
        let mut credentials: serde_json::Value =
            serde_json::from_str(&text).map_err(|err| unreadable(&err))?;
        let public_key_file = dev.join("wechatpay_public_key.pem");
        if std::fs::read_to_string(&public_key_file).ok().as_ref() != Some(&public_key_pem) {
            write_file(&public_key_file, public_key_pem.as_bytes(), false)?;
        }
        let named = [
            ("wechatpay_public_key_id", id.clone()),
            (
                "wechatpay_public_key_file",
                public_key_file.display().to_string(),
            ),
        ];
        // Rewritten only when it changes (its fields come back in another order).
        if named
            .iter()
            .any(|(field, value)| credentials[field] != value.as_str())
        {
            for (field, value) in named {
                credentials[field] = value.into();
            }
            let mut json = serde_json::to_vec_pretty(&credentials).expect("credentials serialise");
            json.push(b'\n');
            write_file(&credentials_file, &json, true)?;
        }
    }
    Ok(Adopted { id, brands_moved })
}
