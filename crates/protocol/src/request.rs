//! The requests of the endpoints without a body (reads, a template's
//! invalidation): what travels in their path and query, bound to their
//! endpoint like every request ([`ApiRequest`]).

use crate::cards::{Card, CardState};
pub use crate::endpoints::ApiRequest;
use crate::endpoints::{self, Endpoint, encode_component};
use crate::shared::{ListQuery, Page, wire_name};
use crate::user_cards::{UserCard, UserCardState, validate_user_card_code};
use crate::validation::Violation;

/// `GET /brand/card-member/user-cards/{user_card_code}?card_id=&openid=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetUserCardRequest {
    /// The card's code.
    pub user_card_code: String,
    /// The template.
    pub card_id: String,
    /// The holder.
    pub openid: String,
}

impl ApiRequest for GetUserCardRequest {
    const ENDPOINT: &'static Endpoint = &endpoints::GET_USER_CARD;
    type Response = UserCard;

    fn path_values(&self) -> Vec<&str> {
        vec![&self.user_card_code]
    }

    fn query(&self) -> Option<String> {
        Some(format!(
            "card_id={}&openid={}",
            encode_component(&self.card_id),
            encode_component(&self.openid)
        ))
    }

    fn check(&self) -> Result<(), Violation> {
        validate_user_card_code(&self.user_card_code)
    }

    fn body(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// `GET /brand/card-member/user-cards?openid=&user_card_state=&offset=&limit=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListUserCardsRequest {
    /// The holder.
    pub openid: String,
    /// Only cards in this state, as read now.
    pub state: Option<UserCardState>,
    /// From 0.
    pub offset: i64,
    /// 1 to 20.
    pub limit: i64,
}

impl ApiRequest for ListUserCardsRequest {
    const ENDPOINT: &'static Endpoint = &endpoints::LIST_USER_CARDS;
    type Response = Page<UserCard>;

    fn query(&self) -> Option<String> {
        let page = ListQuery {
            state: self.state.as_ref().map(wire_name),
            offset: self.offset,
            limit: self.limit,
        };
        Some(format!(
            "openid={}&{}",
            encode_component(&self.openid),
            page.to_query("user_card_state")
        ))
    }

    fn check(&self) -> Result<(), Violation> {
        Ok(())
    }

    fn body(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// `GET /brand/card-member/cards/{card_id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetCardRequest {
    /// The template.
    pub card_id: String,
}

/// `POST /brand/card-member/cards/{card_id}/invalidate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidateCardRequest {
    /// The template.
    pub card_id: String,
}

/// Implements [`ApiRequest`] for a request on one template, without a body.
macro_rules! on_template {
    ($request:ty, $endpoint:expr) => {
        impl ApiRequest for $request {
            const ENDPOINT: &'static Endpoint = &$endpoint;
            type Response = Card;

            fn path_values(&self) -> Vec<&str> {
                vec![&self.card_id]
            }

            fn check(&self) -> Result<(), Violation> {
                Ok(())
            }

            fn body(&self) -> Vec<u8> {
                Vec::new()
            }
        }
    };
}

on_template!(GetCardRequest, endpoints::GET_CARD);
on_template!(InvalidateCardRequest, endpoints::INVALIDATE_CARD);

/// `GET /brand/card-member/cards?state=&offset=&limit=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListCardsRequest {
    /// Only templates in this state.
    pub state: Option<CardState>,
    /// From 0.
    pub offset: i64,
    /// 1 to 20.
    pub limit: i64,
}

impl ApiRequest for ListCardsRequest {
    const ENDPOINT: &'static Endpoint = &endpoints::LIST_CARDS;
    type Response = Page<Card>;

    fn query(&self) -> Option<String> {
        let page = ListQuery {
            state: self.state.as_ref().map(wire_name),
            offset: self.offset,
            limit: self.limit,
        };
        Some(page.to_query("state"))
    }

    fn check(&self) -> Result<(), Violation> {
        Ok(())
    }

    fn body(&self) -> Vec<u8> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_knows_its_endpoint_and_target() {
        let get = GetUserCardRequest {
            user_card_code: "A B".into(),
            card_id: "p1".into(),
            openid: "o/1".into(),
        };
        assert_eq!(
            get.target(),
            "/brand/card-member/user-cards/A%20B?card_id=p1&openid=o%2F1"
        );
        assert_eq!(GetUserCardRequest::ENDPOINT.name, "get_user_card");
        let list = ListCardsRequest {
            state: Some(CardState::CardEffective),
            offset: 20,
            limit: 10,
        };
        assert_eq!(
            list.target(),
            "/brand/card-member/cards?state=CARD_EFFECTIVE&offset=20&limit=10"
        );
        assert!(list.body().is_empty());
    }

    #[test]
    fn a_request_refused_by_its_rules_is_refused_before_it_is_sent() {
        let get = GetUserCardRequest {
            user_card_code: "x".repeat(33),
            card_id: "p1".into(),
            openid: "o1".into(),
        };
        assert!(get.check().is_err(), "a code of 33 characters");
    }
}
