//! Member activity and points: a member activity entry (`POST
//! /brand/card-member/user-feeds`) and a member's points balance (`POST
//! /brand/card-member/user-points/sync`), FAMILY.md #13 and #14; their
//! bodies and the rules that check them.
//!
//! Both are keyed by the brand's `out_request_no`: the same key with the
//! same body answers the first result again, the same key with another body
//! is refused (400 `INVALID_REQUEST`).

use serde::{Deserialize, Serialize};

use crate::shared::{BRAND_ID, CARD_ID, OPENID, USER_CARD_CODE};
use crate::validation::define::body;
use crate::validation::{
    BodyRules, Kind, Violation, deserialize_validated, id, no_relations, parse_json,
};

body! {
    /// `POST /brand/card-member/user-feeds`: an entry in the member's activity.
    #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct UserFeedRequest in USER_FEED {
        /// The template ID.
        pub card_id: String = required(CARD_ID),
        /// The card's code.
        pub user_card_code: String = required(USER_CARD_CODE),
        /// The holder.
        pub openid: String = required(OPENID),
        /// The brand's key for this entry, at most 64 characters: sending it
        /// again with the same body answers the first result.
        pub out_request_no: String = required(id(64, true)),
        /// The entry's content, at most 128 characters.
        pub cell: String = required(id(128, true)),
    }
}

body! {
    /// The answer: the entry as recorded.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UserFeed in USER_FEED_ANSWER {
        /// The brand.
        pub brand_id: String = required(BRAND_ID),
        /// The template ID.
        pub card_id: String = required(CARD_ID),
        /// The card's code.
        pub user_card_code: String = required(USER_CARD_CODE),
        /// The holder.
        pub openid: String = required(OPENID),
        /// The brand's key for this entry.
        pub out_request_no: String = required(id(64, true)),
        /// The entry's content.
        pub cell: String = required(id(128, true)),
    }
}

/// **Decision**: a balance is a count of points, so never negative.
const POINT_BALANCE: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};

body! {
    /// `POST /brand/card-member/user-points/sync`: the member's points balance
    /// (10 requests/s per brand).
    #[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct PointsSyncRequest in POINTS_SYNC {
        /// The brand's key for this sync, at most 64 characters.
        pub out_request_no: String = required(id(64, true)),
        /// The template ID.
        pub card_id: String = required(CARD_ID),
        /// The holder.
        pub openid: String = required(OPENID),
        /// The card's code.
        pub user_card_code: String = required(USER_CARD_CODE),
        /// The balance, a whole number of points, not negative.
        pub point_balance: i64 = required(POINT_BALANCE),
    }
}

body! {
    /// The answer: the sync as recorded.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PointsSync in POINTS_SYNC_ANSWER {
        /// The brand.
        pub brand_id: String = required(BRAND_ID),
        /// The brand's key for this sync.
        pub out_request_no: String = required(id(64, true)),
        /// The template ID.
        pub card_id: String = required(CARD_ID),
        /// The holder.
        pub openid: String = required(OPENID),
        /// The card's code.
        pub user_card_code: String = required(USER_CARD_CODE),
        /// The balance.
        pub point_balance: i64 = required(POINT_BALANCE),
    }
}

/// The body of a member activity entry.
pub const USER_FEED_BODY: BodyRules = BodyRules {
    name: "UserFeedRequest",
    description: "A member activity entry; out_request_no is the idempotency key.",
    fields: USER_FEED,
    relations: no_relations,
};

/// A member activity entry, as answered.
pub const USER_FEED_ANSWER_BODY: BodyRules = BodyRules {
    name: "UserFeed",
    description: "The entry as recorded.",
    fields: USER_FEED_ANSWER,
    relations: no_relations,
};

/// The body of a points sync.
pub const POINTS_SYNC_BODY: BodyRules = BodyRules {
    name: "PointsSyncRequest",
    description: "A member's points balance; out_request_no is the idempotency key.",
    fields: POINTS_SYNC,
    relations: no_relations,
};

/// A points sync, as answered.
pub const POINTS_SYNC_ANSWER_BODY: BodyRules = BodyRules {
    name: "PointsSync",
    description: "The sync as recorded.",
    fields: POINTS_SYNC_ANSWER,
    relations: no_relations,
};

impl UserFeedRequest {
    /// Parses and validates an entry as received.
    pub fn from_body(body: &[u8]) -> Result<Self, Violation> {
        let value = parse_json(body)?;
        USER_FEED_BODY.validate(&value)?;
        deserialize_validated(value)
    }

    /// Checks this request against every rule, as the server will.
    pub fn validate(&self) -> Result<(), Violation> {
        USER_FEED_BODY
            .validate(&serde_json::to_value(self).expect("request types always serialise"))
    }
}

impl PointsSyncRequest {
    /// Parses and validates a sync as received.
    pub fn from_body(body: &[u8]) -> Result<Self, Violation> {
        let value = parse_json(body)?;
        POINTS_SYNC_BODY.validate(&value)?;
        deserialize_validated(value)
    }

    /// Checks this request against every rule, as the server will.
    pub fn validate(&self) -> Result<(), Violation> {
        POINTS_SYNC_BODY
            .validate(&serde_json::to_value(self).expect("request types always serialise"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_needs_every_field_and_limits_cell_to_128_characters() {
        let body = |cell: &str| {
            format!(
                r#"{{"card_id":"c","user_card_code":"1","openid":"o","out_request_no":"r","cell":"{cell}"}}"#
            )
        };
        assert!(UserFeedRequest::from_body(body("签到").as_bytes()).is_ok());
        let long = UserFeedRequest::from_body(body(&"长".repeat(129)).as_bytes()).unwrap_err();
        assert_eq!(long.field, "/cell");
        let missing = UserFeedRequest::from_body(br#"{"card_id":"c"}"#).unwrap_err();
        assert_eq!(missing.field, "/user_card_code");
    }

    #[test]
    fn a_points_balance_is_a_whole_number_not_negative() {
        let body = |balance: &str| {
            format!(
                r#"{{"out_request_no":"r","card_id":"c","openid":"o","user_card_code":"1","point_balance":{balance}}}"#
            )
        };
        assert_eq!(
            PointsSyncRequest::from_body(body("120").as_bytes())
                .unwrap()
                .point_balance,
            120
        );
        for bad in ["-1", "1.5", "\"120\""] {
            let violation = PointsSyncRequest::from_body(body(bad).as_bytes()).unwrap_err();
            assert_eq!(violation.field, "/point_balance", "{bad}");
        }
    }
}
