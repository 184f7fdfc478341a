//! Every endpoint's request, typed: each request type knows its
//! [`Endpoint`], the type of its answer, its path values and query, and
//! how it is checked before it is sent. The SDK has one generic send over
//! [`ApiRequest`]; the server's router attaches each handler to the
//! endpoint of the request it parses.
//!
//! Endpoints without a body (reads, a template's invalidation) have a
//! request type here too, holding what travels in the path and the query.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cards::{Card, CardState};
use crate::endpoints::{self, Endpoint, encode_component};
use crate::shared::{ListQuery, Page};
use crate::user_cards::{UserCard, UserCardState, validate_user_card_code};
use crate::validation::Violation;

/// A request of one endpoint of the family.
pub trait ApiRequest {
    /// The endpoint it is sent to.
    const ENDPOINT: &'static Endpoint;
    /// What a 2xx answer's body decodes to.
    type Response: DeserializeOwned;

    /// The path's values, in the template's order (percent-encoded by
    /// [`ApiRequest::target`]).
    fn path_values(&self) -> Vec<&str> {
        Vec::new()
    }

    /// The query string, without its `?`, where the request has one.
    fn query(&self) -> Option<String> {
        None
    }

    /// Checks the request against every rule the server applies, so that
    /// a client refuses it before signing or sending it.
    fn check(&self) -> Result<(), Violation>;

    /// The body's bytes (JSON; empty for an endpoint without a body).
    fn body(&self) -> Vec<u8>;

    /// The request target: the path with its values, and the query.
    fn target(&self) -> String {
        let mut target = Self::ENDPOINT.target(&self.path_values());
        if let Some(query) = self.query() {
            target.push('?');
            target.push_str(&query);
        }
        target
    }
}

/// A request's JSON body.
pub(crate) fn json<T: Serialize>(request: &T) -> Vec<u8> {
    serde_json::to_vec(request).expect("request types always serialise")
}

/// Checks a body against its endpoint's rule table.
pub(crate) fn check_body<T: Serialize>(endpoint: &Endpoint, request: &T) -> Result<(), Violation> {
    match endpoint.request {
        Some(rules) => {
            rules.validate(&serde_json::to_value(request).expect("request types serialise"))
        }
        None => Ok(()),
    }
}

/// Implements [`ApiRequest`] for a request with a JSON body: its type,
/// endpoint, answer, path values and check. Each resource module binds its
/// requests with it, beside their types.
macro_rules! with_body {
    ($request:ty, $endpoint:expr, $response:ty, |$this:ident| $path:expr, $check:expr) => {
        impl $crate::request::ApiRequest for $request {
            const ENDPOINT: &'static $crate::endpoints::Endpoint = &$endpoint;
            type Response = $response;

            fn path_values(&self) -> Vec<&str> {
                let $this = self;
                $path
            }

            fn check(&self) -> Result<(), $crate::validation::Violation> {
                let check: fn(&Self) -> Result<(), $crate::validation::Violation> = $check;
                check(self)
            }

            fn body(&self) -> Vec<u8> {
                $crate::request::json(self)
            }
        }
    };
}

pub(crate) use with_body;

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

/// An enum's wire name (`CARD_EFFECTIVE`, `EXPIRED`).
fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
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
