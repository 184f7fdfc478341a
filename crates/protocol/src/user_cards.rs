//! User cards: update (`PATCH /brand/card-member/user-cards/{code}`),
//! read (`GET` on the same path) and import (`POST
//! …/user-cards/import-by-openid`); their bodies and the rules that check
//! them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Location;
use crate::shared::{
    CARD_TYPES, CardType, Ciphertext, DATE_INFO, DateInfo, USER_INFO, UserInfo, check_relations,
};
use crate::validation::define::body;
use crate::validation::{
    BodyRules, Format, Kind, Violation, deserialize_validated, formatted, id, no_relations,
    parse_json, text,
};

body! {
    /// `PATCH /brand/card-member/user-cards/{user_card_code}`: update a user's
    /// membership card. Only the fields present change.
    #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct UpdateUserCardRequest in UPDATE_USER_CARD {
        /// Path: the card's code, at most 32 characters of digits, ASCII letters
        /// and half-width punctuation.
        #[serde(skip)]
        pub user_card_code: String,
        /// The card template ID, at most 32 characters.
        pub card_id: String = required(id(32, true)),
        /// The holder's ID under the template's AppID, at most 128 characters.
        pub openid: String = required(id(128, false)),
        /// Card background color, `#RRGGBB`.
        pub card_color: Option<String> = optional(formatted(7, Format::HexColor)),
        /// Card background image URL, at most 256 characters.
        pub card_picture_url: Option<String> = optional(formatted(256, Format::HttpUrl)),
        /// The member's phone number, encrypted (at most 512 characters).
        pub phone_number: Option<Ciphertext> = optional(id(512, false)),
        /// Display text of the member level, at most 10 characters.
        pub level: Option<String> = optional(text(10, true)),
        /// The card's validity.
        pub valid_date_information: Option<DateInfo> = optional(Kind::Obj(DATE_INFO)),
        /// What the user filled in when opening the card.
        pub user_information: Option<UserInfo> = optional(Kind::Obj(USER_INFO)),
        /// Merchant data, invisible to the user, at most 256 characters.
        pub attach: Option<String> = optional(text(256, false)),
    }
}

body! {
    /// A user's membership card, as every user-card endpoint answers it
    /// (PROTOCOL.md §6). Its table is not used to validate input: it
    /// describes output, for the OpenAPI document, and the server's tests
    /// check real answers against it.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UserCard in USER_CARD {
        /// The card's code.
        pub user_card_code: String = required(formatted(32, Format::CardCode)),
        /// The card template ID.
        pub card_id: String = required(id(32, true)),
        /// The holder.
        pub openid: String = required(id(128, false)),
        /// Card background color, `#RRGGBB`.
        pub card_color: Option<String> = optional(formatted(7, Format::HexColor)),
        /// Card background image URL.
        pub card_picture_url: Option<String> = optional(formatted(256, Format::HttpUrl)),
        /// The owning brand.
        pub brand_id: String = required(id(32, true)),
        /// The card type (only `NORMAL` today).
        pub card_type: CardType = required(Kind::Enum(CARD_TYPES)),
        /// The phone number, encrypted for the brand.
        pub phone_number: Option<Ciphertext> = optional(id(512, false)),
        /// Member level display text.
        pub level: Option<String> = optional(text(10, true)),
        /// The card's validity.
        pub valid_date_information: DateInfo = required(Kind::Obj(DATE_INFO)),
        /// When the user received the card (RFC 3339).
        pub pickup_time: String = required(formatted(32, Format::Rfc3339)),
        /// What the user filled in; common values encrypted for the brand.
        pub user_information: Option<UserInfo> = optional(Kind::Obj(USER_INFO)),
        /// Merchant data.
        pub attach: Option<String> = optional(text(256, false)),
        /// The card's state.
        pub user_card_state: UserCardState = required(Kind::Enum(USER_CARD_STATES)),
        /// Why the card was invalidated.
        pub invalid_reason: Option<String> = optional(text(32, false)),
        /// When the card was invalidated (RFC 3339).
        pub invalid_time: Option<String> = optional(formatted(32, Format::Rfc3339)),
        /// When the card was created (RFC 3339).
        pub create_time: String = required(formatted(32, Format::Rfc3339)),
        /// When the card last changed (RFC 3339).
        pub modify_time: String = required(formatted(32, Format::Rfc3339)),
    }
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

body! {
    /// `POST /brand/card-member/user-cards/import-by-openid`: give a user a
    /// card of a template (limit 10 requests/s per brand).
    #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct ImportUserCardRequest in IMPORT_USER_CARD {
        /// The card template ID.
        pub card_id: String = required(id(32, true)),
        /// The holder's ID under the template's AppID.
        pub openid: String = required(id(128, false)),
        /// The new card's code, unique within the template.
        pub user_card_code: String = required(formatted(32, Format::CardCode)),
        /// Card background color, `#RRGGBB`.
        pub card_color: Option<String> = optional(formatted(7, Format::HexColor)),
        /// Card background image URL.
        pub card_picture_url: Option<String> = optional(formatted(256, Format::HttpUrl)),
        /// The member's phone number, encrypted.
        pub phone_number: Option<Ciphertext> = optional(id(512, false)),
        /// Member level display text.
        pub level: Option<String> = optional(text(10, true)),
        /// The card's validity; the template's when absent.
        pub valid_date_information: Option<DateInfo> = optional(Kind::Obj(DATE_INFO)),
        /// What the user filled in.
        pub user_information: Option<UserInfo> = optional(Kind::Obj(USER_INFO)),
        /// Merchant data.
        pub attach: Option<String> = optional(text(256, false)),
        /// When the user received the card (RFC 3339); the time of the import
        /// when absent.
        pub pickup_time: Option<String> = optional(formatted(32, Format::Rfc3339)),
    }
}

pub(crate) const USER_CARD_STATES: &[&str] = &["UNACTIVATED", "EFFECTIVE", "EXPIRED", "INVALID"];

/// A request on one card as received (`…/user-cards/{code}[/…]`): the
/// path's `user_card_code` (already percent-decoded) checked, the raw body
/// parsed with `card_id` taken from the query when the body has none,
/// checked by `rules`, and the request made with the path's code in the
/// place `code` names.
pub(crate) fn parse_card_request<R: serde::de::DeserializeOwned>(
    user_card_code: &str,
    body: &[u8],
    query_card_id: Option<&str>,
    rules: impl FnOnce(&Value) -> Result<(), Violation>,
    code: fn(&mut R) -> &mut String,
) -> Result<R, Violation> {
    validate_user_card_code(user_card_code)?;
    let value = body_with_query_card_id(body, query_card_id)?;
    rules(&value)?;
    let mut request: R = deserialize_validated(value)?;
    *code(&mut request) = user_card_code.to_owned();
    Ok(request)
}

/// The body parsed as JSON, with `card_id` taken from the query when the
/// body has none.
///
/// **Decision** (PROTOCOL.md §1, FAMILY.md): `card_id` is read from the
/// body; copies of the provider's pages put it in the query, so `?card_id=`
/// is accepted too, and when both are present they must be equal.
fn body_with_query_card_id(body: &[u8], query_card_id: Option<&str>) -> Result<Value, Violation> {
    let mut value = parse_json(body)?;
    if let (Some(query), Value::Object(map)) = (query_card_id, &mut value) {
        match map.get("card_id") {
            None | Some(Value::Null) => {
                map.insert("card_id".to_owned(), Value::String(query.to_owned()));
            }
            Some(Value::String(in_body)) if in_body != query => {
                return Err(Violation::param(
                    "/card_id",
                    Location::Query,
                    "differs from the body",
                    "card_id in the query differs from card_id in the body".to_owned(),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(value)
}

body! {
    /// `POST /brand/card-member/user-cards/{user_card_code}/invalidate`: the
    /// brand invalidates a user's card (FAMILY.md #9); answers the card.
    #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct InvalidateUserCardRequest in INVALIDATE_USER_CARD {
        /// Path: the card's code.
        #[serde(skip)]
        pub user_card_code: String,
        /// The template ID (or `?card_id=`).
        pub card_id: String = required(id(32, true)),
        /// The holder.
        pub openid: String = required(id(128, false)),
        /// Why, at most 32 characters.
        pub invalid_reason: Option<String> = optional(text(32, true)),
    }
}

/// The body of an invalidation.
pub const INVALIDATE_USER_CARD_BODY: BodyRules = BodyRules {
    name: "InvalidateUserCardRequest",
    description: "The card to invalidate and, optionally, why (at most 32 characters). Invalidating is final; a card already invalid is answered as it is.",
    fields: INVALIDATE_USER_CARD,
    relations: no_relations,
};

impl InvalidateUserCardRequest {
    /// Parses and validates an invalidation as received: the path's code,
    /// the raw body, and `card_id` from the query if one was given.
    pub fn from_request_parts(
        user_card_code: &str,
        body: &[u8],
        query_card_id: Option<&str>,
    ) -> Result<Self, Violation> {
        parse_card_request(
            user_card_code,
            body,
            query_card_id,
            |value| INVALIDATE_USER_CARD_BODY.validate(value),
            |request: &mut Self| &mut request.user_card_code,
        )
    }

    /// Checks this request against every rule, as the server will.
    pub fn validate(&self) -> Result<(), Violation> {
        validate_user_card_code(&self.user_card_code)?;
        INVALIDATE_USER_CARD_BODY
            .validate(&serde_json::to_value(self).expect("request types always serialise"))
    }
}

/// The body of an update.
pub const UPDATE_USER_CARD_BODY: BodyRules = BodyRules {
    name: "UpdateUserCardRequest",
    description: "Only the fields present change. `phone_number` and `user_information.common_field_list[].value` are RSA-OAEP (SHA-1) ciphertexts under the WeChat Pay public key, base64. `valid_date_information`: FIX_TIME_RANGE needs available_begin_time < available_end_time; FIX_TERM needs available_day_after_receive; a common field name appears at most once.",
    fields: UPDATE_USER_CARD,
    relations: check_relations,
};

/// The body of an import.
pub const IMPORT_USER_CARD_BODY: BodyRules = BodyRules {
    name: "ImportUserCardRequest",
    description: "A user card to create; sensitive fields as in the update.",
    fields: IMPORT_USER_CARD,
    relations: check_relations,
};

/// A user card as every user-card endpoint answers it.
pub const USER_CARD_BODY: BodyRules = BodyRules {
    name: "UserCard",
    description: "`phone_number` and common field values are RSA-OAEP (SHA-1) ciphertexts under the brand certificate's public key.",
    fields: USER_CARD,
    relations: no_relations,
};

/// Validates an update body, already parsed as JSON, against every rule of
/// the spec.
pub fn validate_update_body(body: &Value) -> Result<(), Violation> {
    UPDATE_USER_CARD_BODY.validate(body)
}

/// Validates an import body (`import-by-openid`): the update's rules, plus
/// a required `user_card_code` and an optional RFC 3339 `pickup_time`.
pub fn validate_import_body(body: &Value) -> Result<(), Violation> {
    IMPORT_USER_CARD_BODY.validate(body)
}

/// Validates the `user_card_code` path parameter: 1 to 32 characters of
/// digits, ASCII letters and half-width (ASCII) punctuation.
pub fn validate_user_card_code(code: &str) -> Result<(), Violation> {
    let field = "/user_card_code";
    let problem = if code.is_empty() {
        Some((
            "must not be empty",
            "user_card_code must not be empty".to_owned(),
        ))
    } else if !code.bytes().all(|b| b.is_ascii_graphic()) {
        Some((
            "has characters that are not allowed",
            "user_card_code may only contain digits, ASCII letters and half-width punctuation"
                .to_owned(),
        ))
    } else if code.len() > 32 {
        Some((
            "is too long",
            format!(
                "user_card_code must be at most 32 characters, got {}",
                code.len()
            ),
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some((issue, message)) => {
            let echo = code
                .is_ascii()
                .then(|| Value::String(code.chars().take(64).collect()));
            Err(Violation::param(field, Location::Path, issue, message).with_value(echo))
        }
    }
}

impl UpdateUserCardRequest {
    /// Parses and validates an update request as received: the path's
    /// `user_card_code` (already percent-decoded), the raw body, and
    /// `card_id` from the query string if one was given.
    ///
    /// **Decision** (PROTOCOL.md §1): `card_id` is read from the body; one
    /// copy of the provider's page puts it in the query, so `?card_id=` is
    /// accepted too, and when both are present they must be equal.
    pub fn from_request_parts(
        user_card_code: &str,
        body: &[u8],
        query_card_id: Option<&str>,
    ) -> Result<Self, Violation> {
        parse_card_request(
            user_card_code,
            body,
            query_card_id,
            validate_update_body,
            |request: &mut Self| &mut request.user_card_code,
        )
    }

    /// Checks this request against every rule of the spec, as the server
    /// will, so that a client can refuse it before sending.
    pub fn validate(&self) -> Result<(), Violation> {
        validate_user_card_code(&self.user_card_code)?;
        let value = serde_json::to_value(self).expect("request types always serialise");
        validate_update_body(&value)
    }
}

impl ImportUserCardRequest {
    /// Parses and validates an import body as received.
    pub fn from_body(body: &[u8]) -> Result<Self, Violation> {
        let value = parse_json(body)?;
        validate_import_body(&value)?;
        deserialize_validated(value)
    }

    /// Checks this request against every rule, as the server will.
    pub fn validate(&self) -> Result<(), Violation> {
        validate_import_body(&serde_json::to_value(self).expect("request types always serialise"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::secret::REDACTED;
    use crate::shared::{CommonFieldFlag, DateType};

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
