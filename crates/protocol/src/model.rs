//! Request and response bodies of the card-member API.
//!
//! Optional fields are `Option`s that serialise as absent, never `null`;
//! `null` on input reads as absent. Path parameters are `#[serde(skip)]`.
//! Sensitive fields travel as [`Ciphertext`]: RSA-OAEP under the WeChat Pay
//! public key in requests, under the brand certificate's key in responses.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::secret::REDACTED;

/// A base64 RSA-OAEP ciphertext of a sensitive field. Not secret in
/// itself, but kept out of logs all the same: `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ciphertext(pub String);

impl Ciphertext {
    /// The base64 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ciphertext({REDACTED})")
    }
}

/// `PATCH /brand/card-member/user-cards/{user_card_code}`: update a user's
/// membership card. Only the fields present change.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpdateUserCardRequest {
    /// Path: the card's code, at most 32 characters of digits, ASCII letters
    /// and half-width punctuation.
    #[serde(skip)]
    pub user_card_code: String,
    /// The card template ID, at most 32 characters.
    pub card_id: String,
    /// The holder's ID under the template's AppID, at most 128 characters.
    pub openid: String,
    /// Card background color, `#RRGGBB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_color: Option<String>,
    /// Card background image URL, at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_picture_url: Option<String>,
    /// The member's phone number, encrypted (at most 512 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<Ciphertext>,
    /// Display text of the member level, at most 10 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The card's validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_date_information: Option<DateInfo>,
    /// What the user filled in when opening the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_information: Option<UserInfo>,
    /// Merchant data, invisible to the user, at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
}

/// A user's membership card, as every user-card endpoint answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCard {
    /// The card's code.
    pub user_card_code: String,
    /// The card template ID.
    pub card_id: String,
    /// The holder.
    pub openid: String,
    /// Card background color, `#RRGGBB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_color: Option<String>,
    /// Card background image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_picture_url: Option<String>,
    /// The owning brand.
    pub brand_id: String,
    /// The card type (only `NORMAL` today).
    pub card_type: CardType,
    /// The phone number, encrypted for the brand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<Ciphertext>,
    /// Member level display text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The card's validity.
    pub valid_date_information: DateInfo,
    /// When the user received the card (RFC 3339).
    pub pickup_time: String,
    /// What the user filled in; common values encrypted for the brand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_information: Option<UserInfo>,
    /// Merchant data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    /// The card's state.
    pub user_card_state: UserCardState,
    /// Why the card was invalidated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    /// When the card was invalidated (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_time: Option<String>,
    /// When the card was created (RFC 3339).
    pub create_time: String,
    /// When the card last changed (RFC 3339).
    pub modify_time: String,
}

/// A card's validity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateInfo {
    /// Which kind of validity.
    #[serde(rename = "type")]
    pub date_type: DateType,
    /// `FIX_TIME_RANGE`: start (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_begin_time: Option<String>,
    /// `FIX_TIME_RANGE`: end (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_end_time: Option<String>,
    /// `FIX_TERM`: valid this many natural days after receipt, 1..=10958.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_day_after_receive: Option<i64>,
}

impl DateInfo {
    /// A permanent validity.
    pub fn permanent() -> Self {
        Self {
            date_type: DateType::Permanent,
            available_begin_time: None,
            available_end_time: None,
            available_day_after_receive: None,
        }
    }
}

/// What the user filled in when opening the card.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserInfo {
    /// Platform-defined fields; values encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_field_list: Option<Vec<CommonField>>,
    /// Merchant-defined fields (at most one); values as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_field_list: Option<Vec<CustomField>>,
}

/// A platform-defined form field and its encrypted value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommonField {
    /// Which field.
    pub name: CommonFieldFlag,
    /// The value, encrypted.
    pub value: Ciphertext,
}

/// A merchant-defined form field and the values the user chose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomField {
    /// The field's name.
    pub name: String,
    /// The values chosen, stored and returned exactly as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_chosen_values: Option<Vec<String>>,
}

/// Membership card types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CardType {
    /// Paid membership (not supported yet by the provider).
    Purchase,
    /// Ordinary membership.
    Normal,
    /// Stored-value membership (not supported yet by the provider).
    Balance,
}

/// The state of a user's card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserCardState {
    /// Received, not activated.
    Unactivated,
    /// Usable.
    Effective,
    /// Validity has ended.
    Expired,
    /// Invalidated (irreversible).
    Invalid,
}

/// Kinds of validity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DateType {
    /// Absolute: from `available_begin_time` to `available_end_time`.
    FixTimeRange,
    /// Relative: `available_day_after_receive` days after receipt.
    FixTerm,
    /// Never expires.
    Permanent,
}

/// Platform-defined form fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommonFieldFlag {
    /// Sex.
    UserFormFlagSex,
    /// Name.
    UserFormFlagName,
    /// Birthday.
    UserFormFlagBirthday,
    /// Address.
    UserFormFlagAddress,
    /// Email.
    UserFormFlagEmail,
    /// City.
    UserFormFlagCity,
}

impl CommonFieldFlag {
    /// Every flag.
    pub const ALL: [CommonFieldFlag; 6] = [
        CommonFieldFlag::UserFormFlagSex,
        CommonFieldFlag::UserFormFlagName,
        CommonFieldFlag::UserFormFlagBirthday,
        CommonFieldFlag::UserFormFlagAddress,
        CommonFieldFlag::UserFormFlagEmail,
        CommonFieldFlag::UserFormFlagCity,
    ];

    /// The flag as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CommonFieldFlag::UserFormFlagSex => "USER_FORM_FLAG_SEX",
            CommonFieldFlag::UserFormFlagName => "USER_FORM_FLAG_NAME",
            CommonFieldFlag::UserFormFlagBirthday => "USER_FORM_FLAG_BIRTHDAY",
            CommonFieldFlag::UserFormFlagAddress => "USER_FORM_FLAG_ADDRESS",
            CommonFieldFlag::UserFormFlagEmail => "USER_FORM_FLAG_EMAIL",
            CommonFieldFlag::UserFormFlagCity => "USER_FORM_FLAG_CITY",
        }
    }

    /// Looks a wire name up.
    pub fn from_wire(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// `POST /brand/card-member/user-cards/import-by-openid`: give a user a
/// card of a template (limit 10 requests/s per brand).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImportUserCardRequest {
    /// The card template ID.
    pub card_id: String,
    /// The holder's ID under the template's AppID.
    pub openid: String,
    /// The new card's code, unique within the template.
    pub user_card_code: String,
    /// Card background color, `#RRGGBB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_color: Option<String>,
    /// Card background image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_picture_url: Option<String>,
    /// The member's phone number, encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<Ciphertext>,
    /// Member level display text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The card's validity; the template's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_date_information: Option<DateInfo>,
    /// What the user filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_information: Option<UserInfo>,
    /// Merchant data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    /// When the user received the card (RFC 3339); the time of the import
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_time: Option<String>,
}

/// How user card codes are allocated for a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CodeMode {
    /// WeChat Pay allocates codes.
    SystemAllocate,
    /// The merchant allocates codes (and imports cards with them).
    MerchantAllocate,
}

/// The state of a card template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CardState {
    /// Usable: cards can be issued.
    Effective,
    /// Invalidated (irreversible).
    Invalid,
}

/// The form a user fills in when opening a card of a template.
///
/// **Decision**: the provider's template form is not part of the seed
/// page; this shape (the platform fields asked for, and at most one
/// merchant field) is what user cards need and no more.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserInformationForm {
    /// Platform-defined fields the form asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_field_list: Option<Vec<CommonFieldFlag>>,
    /// Merchant-defined fields the form asks for (at most one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_field_list: Option<Vec<CustomFieldDefinition>>,
}

/// A merchant-defined form field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomFieldDefinition {
    /// The field's name, e.g. `喜欢的运动`.
    pub name: String,
}

/// `POST /brand/card-member/cards`: create a card template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCardRequest {
    /// The brand's idempotency key: the same key creates one template.
    pub out_request_no: String,
    /// The AppID user openids belong to.
    pub appid: String,
    /// Only `NORMAL` can be created today.
    pub card_type: CardType,
    /// The title, at most 10 characters.
    pub card_title: String,
    /// Card background color, `#RRGGBB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_color: Option<String>,
    /// Card background image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_picture_url: Option<String>,
    /// How codes are allocated; `MERCHANT_ALLOCATE` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_mode: Option<CodeMode>,
    /// The validity cards of this template get by default.
    pub valid_date_information: DateInfo,
    /// The form users fill in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_information_form: Option<UserInformationForm>,
    /// Where notifications about this template's cards go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
}

/// A card template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The template ID.
    pub card_id: String,
    /// The owning brand.
    pub brand_id: String,
    /// The AppID user openids belong to.
    pub appid: String,
    /// The card type.
    pub card_type: CardType,
    /// The title.
    pub card_title: String,
    /// Card background color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_color: Option<String>,
    /// Card background image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_picture_url: Option<String>,
    /// How codes are allocated.
    pub code_mode: CodeMode,
    /// The default validity.
    pub valid_date_information: DateInfo,
    /// The form users fill in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_information_form: Option<UserInformationForm>,
    /// Where notifications go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    /// The idempotency key it was created with.
    pub out_request_no: String,
    /// The template's state.
    pub state: CardState,
    /// When it was created (RFC 3339).
    pub create_time: String,
    /// When it last changed (RFC 3339).
    pub modify_time: String,
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// The seed page's request example, verbatim.
    pub(crate) const SEED_REQUEST: &str = include_str!("../tests/fixtures/seed_request.json");
    const SEED_RESPONSE: &str = include_str!("../tests/fixtures/seed_response.json");

    #[test]
    fn seed_request_round_trips_to_equal_json() {
        let request: UpdateUserCardRequest = serde_json::from_str(SEED_REQUEST).unwrap();
        assert_eq!(request.card_id, "pbLatjvWOibDc5-TBnbUk1pD12o0");
        assert_eq!(
            request.valid_date_information.as_ref().unwrap().date_type,
            DateType::Permanent
        );
        let again = serde_json::to_value(&request).unwrap();
        assert_eq!(again, serde_json::from_str::<Value>(SEED_REQUEST).unwrap());
    }

    #[test]
    fn seed_response_round_trips_to_equal_json() {
        let card: UserCard = serde_json::from_str(SEED_RESPONSE).unwrap();
        assert_eq!(card.user_card_state, UserCardState::Effective);
        assert_eq!(card.card_type, CardType::Normal);
        let again = serde_json::to_value(&card).unwrap();
        assert_eq!(again, serde_json::from_str::<Value>(SEED_RESPONSE).unwrap());
    }

    #[test]
    fn absent_optional_fields_are_omitted_not_null() {
        let request = UpdateUserCardRequest {
            user_card_code: "478515832665".into(),
            card_id: "c".into(),
            openid: "o".into(),
            level: Some("gold".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"card_id":"c","openid":"o","level":"gold"}"#
        );
    }

    #[test]
    fn null_reads_as_absent() {
        let request: UpdateUserCardRequest =
            serde_json::from_str(r#"{"card_id":"c","openid":"o","level":null}"#).unwrap();
        assert_eq!(request.level, None);
    }

    #[test]
    fn ciphertext_debug_is_redacted() {
        let request: UpdateUserCardRequest = serde_json::from_str(SEED_REQUEST).unwrap();
        let printed = format!(
            "{:?}",
            (
                &request.phone_number,
                &request.user_information.unwrap().common_field_list
            )
        );
        assert!(!printed.contains("vvysDQeEaH3I"), "{printed}");
        assert_eq!(printed.matches(REDACTED).count(), 2, "{printed}");
    }

    #[test]
    fn common_field_flags_match_their_serde_names() {
        for flag in CommonFieldFlag::ALL {
            assert_eq!(
                serde_json::to_value(flag).unwrap(),
                Value::from(flag.as_str())
            );
        }
    }
}
