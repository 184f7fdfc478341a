//! Becoming and being a member (FAMILY.md #7, #10, #12, #15): a user's
//! cards under the brand, pre-authorization tokens, the brand's confirm of
//! a sign-up, and the brand's answer to a points-for-coupon request.

use serde::{Deserialize, Serialize};

use crate::shared::{DATE_INFO, USER_INFO, check_relations};
use crate::user_cards::{UpdateUserCardRequest, body_with_query_card_id, validate_user_card_code};
use crate::validation::{
    BodyRules, Field, Format, Kind, Violation, deserialize_validated, formatted, id, no_relations,
    optional, parse_json, required, text,
};

/// The query filter's values of `GET /brand/card-member/user-cards`.
pub const USER_CARD_STATES: &[&str] = crate::user_cards::USER_CARD_STATES;

/// How long a pre-authorization token is valid, in seconds (one hour).
pub const PRE_AUTH_TOKEN_TTL_SECS: i64 = 3600;

/// `POST /brand/card-member/pre-auth-tokens`: a token that opens the
/// membership component for one user and one template.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PreAuthTokenRequest {
    /// The template.
    pub card_id: String,
    /// The user.
    pub openid: String,
}

/// The token and when it stops working.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreAuthToken {
    /// The token, opaque.
    pub token: String,
    /// When it expires (RFC 3339), an hour after it was made.
    pub expire_time: String,
}

/// The outcome of a sign-up, as the brand reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserCardConfirmState {
    /// The brand registered the member: the card becomes `EFFECTIVE`.
    CreateCardSuccess,
    /// The brand could not: the card becomes `INVALID` (reason
    /// `CREATE_CARD_FAIL`).
    CreateCardFail,
    /// The user was a member already and is linked: `EFFECTIVE`.
    CreateCardAlreadyExists,
}

/// `POST /brand/card-member/user-cards/{user_card_code}/confirm`: the
/// update's fields plus the outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmUserCardRequest {
    /// The fields to set with the confirm (`card_id`, `openid` required).
    #[serde(flatten)]
    pub update: UpdateUserCardRequest,
    /// The outcome.
    pub user_card_confirm_state: UserCardConfirmState,
}

/// The brand's decision on a points-for-coupon request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExchangeDecision {
    /// Deduct the points and issue the coupon.
    PointExchangeCouponAllow,
    /// Refuse (`reject_reason` says why).
    PointExchangeCouponReject,
}

/// The outcome of a points-for-coupon request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExchangeState {
    /// The coupon was issued.
    PointExchangeCouponSuccess,
    /// It was not.
    PointExchangeCouponFail,
}

/// `POST /brand/card-member/user-points/exchange-coupon/confirm`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeCouponConfirmRequest {
    /// The request's ID, from the `POINT_EXCHANGE_COUPON` notification.
    pub record_id: String,
    /// The exchange template.
    pub exchange_coupon_template_id: String,
    /// The template.
    pub card_id: String,
    /// The member.
    pub openid: String,
    /// The member's card.
    pub user_card_code: String,
    /// Allow or reject.
    pub result: ExchangeDecision,
    /// Why it was rejected, at most 32 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_reason: Option<String>,
}

/// The exchange as settled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeCouponResult {
    /// The request's ID.
    pub record_id: String,
    /// The exchange template.
    pub exchange_coupon_template_id: String,
    /// The brand.
    pub brand_id: String,
    /// The template.
    pub card_id: String,
    /// The member.
    pub openid: String,
    /// The member's card.
    pub user_card_code: String,
    /// Success or failure.
    pub state: ExchangeState,
    /// The product coupon issued (success only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_coupon_id: Option<String>,
    /// Its stock type (success only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_coupon_stock_type: Option<String>,
    /// Its stock (success only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_id: Option<String>,
    /// The coupon's code (success only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_reason: Option<String>,
}

const PRE_AUTH_TOKEN_REQUEST: &[Field] = &[
    required("card_id", id(32, true)),
    required("openid", id(128, false)),
];

const PRE_AUTH_TOKEN_ANSWER: &[Field] = &[
    required("token", id(128, false)),
    required("expire_time", formatted(32, Format::Rfc3339)),
];

/// The outcomes a brand's confirm may give, as the API names them.
pub const CONFIRM_STATES: &[&str] = &[
    "CREATE_CARD_SUCCESS",
    "CREATE_CARD_FAIL",
    "CREATE_CARD_ALREADY_EXISTS",
];

/// The update's fields (`crate::user_cards`) and the outcome.
const CONFIRM_USER_CARD: &[Field] = &[
    required("card_id", id(32, true)),
    required("openid", id(128, false)),
    optional("card_color", formatted(7, Format::HexColor)),
    optional("card_picture_url", formatted(256, Format::HttpUrl)),
    optional("phone_number", id(512, false)),
    optional("level", text(10, true)),
    optional("valid_date_information", Kind::Obj(DATE_INFO)),
    optional("user_information", Kind::Obj(USER_INFO)),
    optional("attach", text(256, false)),
    required("user_card_confirm_state", Kind::Enum(CONFIRM_STATES)),
];

const DECISIONS: &[&str] = &[
    "POINT_EXCHANGE_COUPON_ALLOW",
    "POINT_EXCHANGE_COUPON_REJECT",
];
const EXCHANGE_STATES: &[&str] = &[
    "POINT_EXCHANGE_COUPON_SUCCESS",
    "POINT_EXCHANGE_COUPON_FAIL",
];

const EXCHANGE_CONFIRM: &[Field] = &[
    required("record_id", id(64, true)),
    required("exchange_coupon_template_id", id(64, true)),
    required("card_id", id(32, true)),
    required("openid", id(128, false)),
    required("user_card_code", formatted(32, Format::CardCode)),
    required("result", Kind::Enum(DECISIONS)),
    optional("reject_reason", text(32, true)),
];

const EXCHANGE_RESULT: &[Field] = &[
    required("record_id", id(64, true)),
    required("exchange_coupon_template_id", id(64, true)),
    required("brand_id", id(32, true)),
    required("card_id", id(32, true)),
    required("openid", id(128, false)),
    required("user_card_code", formatted(32, Format::CardCode)),
    required("state", Kind::Enum(EXCHANGE_STATES)),
    optional("product_coupon_id", id(64, true)),
    optional("product_coupon_stock_type", id(32, true)),
    optional("stock_id", id(64, true)),
    optional("coupon_code", id(64, true)),
    optional("reject_reason", text(32, true)),
];

/// The body of a token request.
pub const PRE_AUTH_TOKEN_BODY: BodyRules = BodyRules {
    name: "PreAuthTokenRequest",
    description: "The template and the user the membership component opens for. The template must be CARD_EFFECTIVE.",
    fields: PRE_AUTH_TOKEN_REQUEST,
    relations: no_relations,
};

/// A token, as answered.
pub const PRE_AUTH_TOKEN_ANSWER_BODY: BodyRules = BodyRules {
    name: "PreAuthToken",
    description: "Valid one hour, for one sign-up.",
    fields: PRE_AUTH_TOKEN_ANSWER,
    relations: no_relations,
};

/// The body of a confirm.
pub const CONFIRM_USER_CARD_BODY: BodyRules = BodyRules {
    name: "ConfirmUserCardRequest",
    description: "The update's fields, set with the outcome of a sign-up. Only a card awaiting confirmation (UNACTIVATED) can be confirmed; the same outcome sent again answers the card as it is.",
    fields: CONFIRM_USER_CARD,
    relations: check_relations,
};

/// The body of a points-for-coupon decision.
pub const EXCHANGE_CONFIRM_BODY: BodyRules = BodyRules {
    name: "ExchangeCouponConfirmRequest",
    description: "The brand's decision on a POINT_EXCHANGE_COUPON request; a decision cannot be changed, the same one sent again answers the same result.",
    fields: EXCHANGE_CONFIRM,
    relations: no_relations,
};

/// A settled exchange, as answered.
pub const EXCHANGE_RESULT_BODY: BodyRules = BodyRules {
    name: "ExchangeCouponResult",
    description: "Coupon fields are present on success only.",
    fields: EXCHANGE_RESULT,
    relations: no_relations,
};

impl PreAuthTokenRequest {
    /// Parses and validates a token request as received.
    pub fn from_body(body: &[u8]) -> Result<Self, Violation> {
        let value = parse_json(body)?;
        PRE_AUTH_TOKEN_BODY.validate(&value)?;
        deserialize_validated(value)
    }
}

impl ConfirmUserCardRequest {
    /// Parses and validates a confirm as received: the path's code, the
    /// body, and `?card_id=` if given.
    pub fn from_request_parts(
        user_card_code: &str,
        body: &[u8],
        query_card_id: Option<&str>,
    ) -> Result<Self, Violation> {
        validate_user_card_code(user_card_code)?;
        let value = body_with_query_card_id(body, query_card_id)?;
        CONFIRM_USER_CARD_BODY.validate(&value)?;
        let mut request: Self = deserialize_validated(value)?;
        request.update.user_card_code = user_card_code.to_owned();
        Ok(request)
    }

    /// Checks this request against every rule, as the server will.
    pub fn validate(&self) -> Result<(), Violation> {
        validate_user_card_code(&self.update.user_card_code)?;
        CONFIRM_USER_CARD_BODY
            .validate(&serde_json::to_value(self).expect("request types always serialise"))
    }
}

impl ExchangeCouponConfirmRequest {
    /// Parses and validates a decision as received.
    pub fn from_body(body: &[u8]) -> Result<Self, Violation> {
        let value = parse_json(body)?;
        EXCHANGE_CONFIRM_BODY.validate(&value)?;
        deserialize_validated(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirm_is_the_update_plus_its_outcome() {
        let body = br#"{"card_id":"p1","openid":"o1","level":"gold","user_card_confirm_state":"CREATE_CARD_SUCCESS"}"#;
        let confirm = ConfirmUserCardRequest::from_request_parts("C1", body, None).unwrap();
        assert_eq!(confirm.update.level.as_deref(), Some("gold"));
        assert_eq!(confirm.update.user_card_code, "C1");
        let missing = ConfirmUserCardRequest::from_request_parts(
            "C1",
            br#"{"card_id":"p1","openid":"o1"}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(missing.field, "/user_card_confirm_state");
        let wrong = ConfirmUserCardRequest::from_request_parts(
            "C1",
            br#"{"card_id":"p1","openid":"o1","user_card_confirm_state":"OK"}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(wrong.issue, "is not an allowed value");
    }

    #[test]
    fn an_exchange_decision_limits_its_fields() {
        let long = format!(
            r#"{{"record_id":"{}","exchange_coupon_template_id":"t","card_id":"p","openid":"o","user_card_code":"c","result":"POINT_EXCHANGE_COUPON_ALLOW"}}"#,
            "r".repeat(65)
        );
        let violation = ExchangeCouponConfirmRequest::from_body(long.as_bytes()).unwrap_err();
        assert_eq!(violation.field, "/record_id");
        let reason = r#"{"record_id":"r","exchange_coupon_template_id":"t","card_id":"p","openid":"o","user_card_code":"c","result":"POINT_EXCHANGE_COUPON_REJECT","reject_reason":"理由理由理由理由理由理由理由理由理由理由理由理由理由理由理由理由理"}"#;
        let violation = ExchangeCouponConfirmRequest::from_body(reason.as_bytes()).unwrap_err();
        assert_eq!(violation.field, "/reject_reason");
    }

    #[test]
    fn a_token_request_needs_template_and_user() {
        let violation = PreAuthTokenRequest::from_body(br#"{"card_id":"p1"}"#).unwrap_err();
        assert_eq!(violation.field, "/openid");
    }
}
