//! Becoming and being a member (FAMILY.md #7, #10, #12, #15): a user's
//! cards under the brand, pre-authorization tokens, the brand's confirm of
//! a sign-up, and the brand's answer to a points-for-coupon request.

use serde::{Deserialize, Serialize};

use crate::shared::{BRAND_ID, CARD_ID, OPENID, TIME, USER_CARD_CODE, check_relations};
use crate::user_cards::{
    UPDATE_USER_CARD, UpdateUserCardRequest, parse_card_request, validate_user_card_code,
};
use crate::validation::define::body;
use crate::validation::{
    BodyRules, Kind, Violation, deserialize_validated, id, no_relations, parse_json, text,
};

/// The query filter's values of `GET /brand/card-member/user-cards`.
pub const USER_CARD_STATES: &[&str] = crate::user_cards::USER_CARD_STATES;

/// How long a pre-authorization token is valid, in seconds (one hour).
pub const PRE_AUTH_TOKEN_TTL_SECS: i64 = 3600;

body! {
    /// `POST /brand/card-member/pre-auth-tokens`: a token that opens the
    /// membership component for one user and one template.
    #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct PreAuthTokenRequest in PRE_AUTH_TOKEN_REQUEST {
        /// The template.
        pub card_id: String = required(CARD_ID),
        /// The user.
        pub openid: String = required(OPENID),
    }
}

body! {
    /// The token and when it stops working.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PreAuthToken in PRE_AUTH_TOKEN_ANSWER {
        /// The token, opaque.
        pub token: String = required(id(128, false)),
        /// When it expires (RFC 3339), an hour after it was made.
        pub expire_time: String = required(TIME),
    }
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

body! {
    /// `POST /brand/card-member/user-cards/{user_card_code}/confirm`: the
    /// update's fields plus the outcome.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ConfirmUserCardRequest in CONFIRM_USER_CARD {
        /// The fields to set with the confirm (`card_id`, `openid` required).
        pub update: UpdateUserCardRequest = flatten(UPDATE_USER_CARD),
        /// The outcome.
        pub user_card_confirm_state: UserCardConfirmState = required(Kind::Enum(CONFIRM_STATES)),
    }
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

body! {
    /// `POST /brand/card-member/user-points/exchange-coupon/confirm`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ExchangeCouponConfirmRequest in EXCHANGE_CONFIRM {
        /// The request's ID, from the `POINT_EXCHANGE_COUPON` notification.
        pub record_id: String = required(id(64, true)),
        /// The exchange template.
        pub exchange_coupon_template_id: String = required(id(64, true)),
        /// The template.
        pub card_id: String = required(CARD_ID),
        /// The member.
        pub openid: String = required(OPENID),
        /// The member's card.
        pub user_card_code: String = required(USER_CARD_CODE),
        /// Allow or reject.
        pub result: ExchangeDecision = required(Kind::Enum(DECISIONS)),
        /// Why it was rejected, at most 32 characters.
        pub reject_reason: Option<String> = optional(text(32, true)),
    }
}

body! {
    /// The exchange as settled.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ExchangeCouponResult in EXCHANGE_RESULT {
        /// The request's ID.
        pub record_id: String = required(id(64, true)),
        /// The exchange template.
        pub exchange_coupon_template_id: String = required(id(64, true)),
        /// The brand.
        pub brand_id: String = required(BRAND_ID),
        /// The template.
        pub card_id: String = required(CARD_ID),
        /// The member.
        pub openid: String = required(OPENID),
        /// The member's card.
        pub user_card_code: String = required(USER_CARD_CODE),
        /// Success or failure.
        pub state: ExchangeState = required(Kind::Enum(EXCHANGE_STATES)),
        /// The product coupon issued (success only).
        pub product_coupon_id: Option<String> = optional(id(64, true)),
        /// Its stock type (success only).
        pub product_coupon_stock_type: Option<String> = optional(id(32, true)),
        /// Its stock (success only).
        pub stock_id: Option<String> = optional(id(64, true)),
        /// The coupon's code (success only).
        pub coupon_code: Option<String> = optional(id(64, true)),
        /// Why it was rejected.
        pub reject_reason: Option<String> = optional(text(32, true)),
    }
}

/// The outcomes a brand's confirm may give, as the API names them.
pub const CONFIRM_STATES: &[&str] = &[
    "CREATE_CARD_SUCCESS",
    "CREATE_CARD_FAIL",
    "CREATE_CARD_ALREADY_EXISTS",
];

const DECISIONS: &[&str] = &[
    "POINT_EXCHANGE_COUPON_ALLOW",
    "POINT_EXCHANGE_COUPON_REJECT",
];
const EXCHANGE_STATES: &[&str] = &[
    "POINT_EXCHANGE_COUPON_SUCCESS",
    "POINT_EXCHANGE_COUPON_FAIL",
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
        parse_card_request(
            user_card_code,
            body,
            query_card_id,
            |value| CONFIRM_USER_CARD_BODY.validate(value),
            |request: &mut Self| &mut request.update.user_card_code,
        )
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
