//! Requests with sensitive fields in plaintext, and the plaintext of the
//! sensitive fields of a card that came back.
//!
//! The caller never handles ciphertexts: the client encrypts
//! `phone_number` and common form values under the WeChat Pay public key
//! when it sends, and decrypts a card's fields with the brand private key
//! only when asked ([`crate::Client::decrypt`]). Plaintext lives in
//! [`SecretString`], whose `Debug` is redacted.

use card_member_protocol::encryption::encrypt_field;
use card_member_protocol::keys::PublicKey;
use card_member_protocol::model::{
    Ciphertext, CommonField, CommonFieldFlag, CustomField, DateInfo, ImportUserCardRequest,
    UpdateUserCardRequest, UserInfo,
};
use card_member_protocol::secret::SecretString;

use crate::error::BuildError;

/// A platform form field with its plaintext value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommonFieldValue {
    /// Which field.
    pub name: CommonFieldFlag,
    /// The value, in plaintext.
    pub value: SecretString,
}

/// What the user filled in, with platform values in plaintext.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInformation {
    /// Platform fields; `Some` replaces the card's list.
    pub common_field_list: Option<Vec<CommonFieldValue>>,
    /// The merchant field (at most one), sent as given; `Some` replaces the
    /// card's list.
    pub custom_field_list: Option<Vec<CustomField>>,
}

/// An update of a user card: only the fields set change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserCardUpdate {
    /// The card template ID.
    pub card_id: String,
    /// The holder.
    pub openid: String,
    /// `#RRGGBB`.
    pub card_color: Option<String>,
    /// Background image URL.
    pub card_picture_url: Option<String>,
    /// The phone number, in plaintext (encrypted on send).
    pub phone_number: Option<SecretString>,
    /// Level display text.
    pub level: Option<String>,
    /// Validity.
    pub valid_date_information: Option<DateInfo>,
    /// Form values.
    pub user_information: Option<UserInformation>,
    /// Merchant data.
    pub attach: Option<String>,
}

impl UserCardUpdate {
    /// An update of the card `card_id` held by `openid` that changes nothing
    /// yet; set the fields to change.
    pub fn new(card_id: impl Into<String>, openid: impl Into<String>) -> Self {
        Self {
            card_id: card_id.into(),
            openid: openid.into(),
            ..Self::default()
        }
    }

    pub(crate) fn encrypt(
        &self,
        user_card_code: &str,
        key: &PublicKey,
    ) -> Result<UpdateUserCardRequest, BuildError> {
        Ok(UpdateUserCardRequest {
            user_card_code: user_card_code.to_owned(),
            card_id: self.card_id.clone(),
            openid: self.openid.clone(),
            card_color: self.card_color.clone(),
            card_picture_url: self.card_picture_url.clone(),
            phone_number: encrypt_optional(key, self.phone_number.as_ref())?,
            level: self.level.clone(),
            valid_date_information: self.valid_date_information.clone(),
            user_information: encrypt_information(key, self.user_information.as_ref())?,
            attach: self.attach.clone(),
        })
    }
}

/// A card to import (`import-by-openid`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserCardImport {
    /// The card template ID.
    pub card_id: String,
    /// The holder.
    pub openid: String,
    /// The new card's code.
    pub user_card_code: String,
    /// `#RRGGBB`.
    pub card_color: Option<String>,
    /// Background image URL.
    pub card_picture_url: Option<String>,
    /// The phone number, in plaintext (encrypted on send).
    pub phone_number: Option<SecretString>,
    /// Level display text.
    pub level: Option<String>,
    /// Validity; the template's when absent.
    pub valid_date_information: Option<DateInfo>,
    /// Form values.
    pub user_information: Option<UserInformation>,
    /// Merchant data.
    pub attach: Option<String>,
    /// When the user received the card (RFC 3339); now when absent.
    pub pickup_time: Option<String>,
}

impl UserCardImport {
    pub(crate) fn encrypt(&self, key: &PublicKey) -> Result<ImportUserCardRequest, BuildError> {
        Ok(ImportUserCardRequest {
            card_id: self.card_id.clone(),
            openid: self.openid.clone(),
            user_card_code: self.user_card_code.clone(),
            card_color: self.card_color.clone(),
            card_picture_url: self.card_picture_url.clone(),
            phone_number: encrypt_optional(key, self.phone_number.as_ref())?,
            level: self.level.clone(),
            valid_date_information: self.valid_date_information.clone(),
            user_information: encrypt_information(key, self.user_information.as_ref())?,
            attach: self.attach.clone(),
            pickup_time: self.pickup_time.clone(),
        })
    }
}

/// The sensitive fields of a card, decrypted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecryptedFields {
    /// The phone number.
    pub phone_number: Option<SecretString>,
    /// The platform form values.
    pub common_field_list: Vec<CommonFieldValue>,
}

fn encrypt_one(key: &PublicKey, plaintext: &SecretString) -> Result<Ciphertext, BuildError> {
    encrypt_field(key, plaintext.expose())
        .map(Ciphertext)
        .map_err(|err| BuildError::Encryption(err.to_string()))
}

fn encrypt_optional(
    key: &PublicKey,
    plaintext: Option<&SecretString>,
) -> Result<Option<Ciphertext>, BuildError> {
    plaintext
        .map(|plaintext| encrypt_one(key, plaintext))
        .transpose()
}

fn encrypt_information(
    key: &PublicKey,
    info: Option<&UserInformation>,
) -> Result<Option<UserInfo>, BuildError> {
    info.map(|info| {
        let common_field_list = info
            .common_field_list
            .as_ref()
            .map(|fields| {
                fields
                    .iter()
                    .map(|field| {
                        Ok(CommonField {
                            name: field.name,
                            value: encrypt_one(key, &field.value)?,
                        })
                    })
                    .collect::<Result<Vec<_>, BuildError>>()
            })
            .transpose()?;
        Ok(UserInfo {
            common_field_list,
            custom_field_list: info.custom_field_list.clone(),
        })
    })
    .transpose()
}
