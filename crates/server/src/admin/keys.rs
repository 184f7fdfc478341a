//! A deliberate change of the WeChat Pay platform key: `card-member keys
//! adopt-wechatpay-key` (the check every start makes is
//! `bootstrap::checked_wechatpay_key`).

use super::bootstrap::{wechatpay_key, wechatpay_key_files};
use super::brands::administer;
use crate::error::StartError;
use crate::ops::settings::Settings;
use crate::storage::KeptWechatpayKey;

/// Makes the WeChat Pay key of `settings` the one the database keeps as
/// the key its brands were given: a deliberate change of the platform key,
/// once every brand has the new public key and its ID (instances holding
/// the old key then refuse to start). Answers the key's public key ID.
pub fn adopt_wechatpay_key(settings: &Settings) -> Result<String, StartError> {
    let (key_file, dir, _) = wechatpay_key_files(settings);
    let (key, id) = wechatpay_key(
        &key_file,
        settings.wechatpay_public_key_id.as_deref(),
        &dir,
        false,
    )?;
    let adopted = KeptWechatpayKey {
        public_key_id: id.clone(),
        public_key_pem: key.public_key().to_spki_pem(),
    };
    administer(settings, async |storage| {
        storage
            .keep_wechatpay_key(adopted, true)
            .await
            .map_err(|err| StartError(format!("keeping the WeChat Pay key: {err}")))
    })?;
    Ok(id)
}
