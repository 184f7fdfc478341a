//! One description per endpoint: method, path template, parameters with
//! their rules, request and response bodies (the rule tables validation
//! runs on), the fields that travel as RSA-OAEP ciphertexts, the per-brand
//! rate limit and a summary; and, beside each, its request type bound to it
//! ([`ApiRequest`]: the type of its answer, its path values, its check).
//!
//! The server's router attaches the
//! endpoint to the handler of its request type, the SDK's one generic send
//! reads it (method, path, rate limit, whether it may be sent again), and
//! the OpenAPI document and the CLI read [`ENDPOINTS`]. The server has a
//! test that every route it serves is described here and every endpoint
//! here is served. Adding an endpoint: docs/architecture.md.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::activity::{PointsSync, PointsSyncRequest, UserFeed, UserFeedRequest};
use crate::cards::{Card, CardDefinition, UpdateCardRequest};
use crate::media::{ImageMeta, ImageUpload};
use crate::membership::{
    ConfirmUserCardRequest, ExchangeCouponConfirmRequest, ExchangeCouponResult, PreAuthToken,
    PreAuthTokenRequest,
};
use crate::shared::MAX_PAGE_SIZE;
use crate::user_cards::{
    ImportUserCardRequest, InvalidateUserCardRequest, UpdateUserCardRequest, UserCard,
};
use crate::validation::{BodyRules, Field, Kind, Violation, no_relations, required};
use crate::{
    IMPORT_RATE_LIMIT_PER_SECOND, RATE_LIMIT_PER_SECOND, activity, cards, media, membership,
    user_cards,
};

/// A path or query parameter.
#[derive(Debug)]
pub struct Param {
    /// Its name (`user_card_code`, `card_id`).
    pub name: &'static str,
    /// Whether the request must carry it (path parameters always).
    pub required: bool,
    /// What it is.
    pub description: &'static str,
    /// The most characters it may have, where limited.
    pub max_chars: Option<usize>,
    /// The regular expression every value matches, where there is one.
    pub pattern: Option<&'static str>,
}

/// One endpoint of the card-member family.
#[derive(Debug)]
pub struct Endpoint {
    /// Its operation name, snake_case: the server's handler, the SDK's
    /// method and the OpenAPI `operationId` carry it.
    pub name: &'static str,
    /// The HTTP method, upper case.
    pub method: &'static str,
    /// The path template, parameters in braces.
    pub path: &'static str,
    /// The path's parameters, in order.
    pub path_params: &'static [Param],
    /// The query parameters.
    pub query_params: &'static [Param],
    /// The request body's rules, for endpoints that take one.
    pub request: Option<&'static BodyRules>,
    /// The answer's body.
    pub response: &'static BodyRules,
    /// JSON pointers of the fields that travel as RSA-OAEP ciphertexts
    /// (`-` stands for every element of an array), in the request and in
    /// the answer.
    pub ciphertext_fields: &'static [&'static str],
    /// Requests per second (and burst) each brand may send here.
    pub per_second: u32,
    /// Whether the same request sent twice has the effect of sending it
    /// once (reads; updates, which set fields; invalidation, which is final;
    /// creations keyed by `out_request_no`): a client may send it again when
    /// a connection failed before any answer. An import is not.
    pub idempotent: bool,
    /// What it does, in one line.
    pub summary: &'static str,
}

impl Endpoint {
    /// The request target for the path parameters' values, each
    /// percent-encoded (the signature covers the encoded form), without a
    /// query.
    pub fn target(&self, values: &[&str]) -> String {
        let mut values = values.iter();
        self.path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    encode_component(values.next().copied().unwrap_or_default())
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Percent-encodes a path segment: everything but unreserved characters
/// (RFC 3986).
pub fn encode_component(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

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
        impl $crate::endpoints::ApiRequest for $request {
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
                $crate::endpoints::json(self)
            }
        }
    };
}

const USER_CARD_CODE: Param = Param {
    name: "user_card_code",
    required: true,
    description: "Percent-encoded on the wire; the signature covers the encoded form.",
    max_chars: Some(32),
    pattern: Some("^[!-~]+$"),
};

const CARD_ID: Param = Param {
    name: "card_id",
    required: true,
    description: "Percent-encoded on the wire; the signature covers the encoded form.",
    max_chars: Some(32),
    pattern: None,
};

/// `?card_id=`, accepted where the body may carry it instead.
const CARD_ID_IN_QUERY: Param = Param {
    name: "card_id",
    required: false,
    description: "The template ID, if not in the body (must equal the body's)",
    max_chars: None,
    pattern: None,
};

const OFFSET: Param = Param {
    name: "offset",
    required: false,
    description: "From 0 (default 0)",
    max_chars: Some(10),
    pattern: Some("^[0-9]+$"),
};

const LIMIT: Param = Param {
    name: "limit",
    required: false,
    description: "1 to 20 (default 20)",
    max_chars: Some(2),
    pattern: Some("^[0-9]+$"),
};

/// A page of templates.
const CARD_PAGE: BodyRules = page_rules("CardPage", &CARD_PAGE_FIELDS);
const CARD_PAGE_FIELDS: [Field; 4] = page_fields(&CARD_ITEM);
const CARD_ITEM: Kind = Kind::Obj(cards::CARD);

/// A page of user cards.
const USER_CARD_PAGE: BodyRules = page_rules("UserCardPage", &USER_CARD_PAGE_FIELDS);
const USER_CARD_PAGE_FIELDS: [Field; 4] = page_fields(&USER_CARD_ITEM);
const USER_CARD_ITEM: Kind = Kind::Obj(user_cards::USER_CARD);

const fn page_fields(item: &'static Kind) -> [Field; 4] {
    [
        required(
            "data",
            Kind::Arr {
                item,
                max_items: MAX_PAGE_SIZE as usize,
            },
        ),
        required(
            "total_count",
            Kind::Int {
                min: 0,
                max: i64::MAX,
            },
        ),
        required(
            "offset",
            Kind::Int {
                min: 0,
                max: i32::MAX as i64,
            },
        ),
        required(
            "limit",
            Kind::Int {
                min: 1,
                max: MAX_PAGE_SIZE,
            },
        ),
    ]
}

const fn page_rules(name: &'static str, fields: &'static [Field]) -> BodyRules {
    BodyRules {
        name,
        description: "One page: the items (newest first), how many match in all, and the offset and limit asked for.",
        fields,
        relations: no_relations,
    }
}

/// The sensitive fields of a user card, in requests and answers.
const USER_CARD_CIPHERTEXTS: &[&str] = &[
    "/phone_number",
    "/user_information/common_field_list/-/value",
];

/// `PATCH /brand/card-member/user-cards/{user_card_code}`.
pub const UPDATE_USER_CARD: Endpoint = Endpoint {
    name: "update_user_card",
    method: "PATCH",
    path: "/brand/card-member/user-cards/{user_card_code}",
    path_params: &[USER_CARD_CODE],
    query_params: &[CARD_ID_IN_QUERY],
    request: Some(&user_cards::UPDATE_USER_CARD_BODY),
    response: &user_cards::USER_CARD_BODY,
    ciphertext_fields: USER_CARD_CIPHERTEXTS,
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Update a user's membership card (only the fields sent change)",
};
with_body!(
    UpdateUserCardRequest,
    UPDATE_USER_CARD,
    UserCard,
    |r| vec![&r.user_card_code],
    UpdateUserCardRequest::validate
);

/// `GET /brand/card-member/user-cards/{user_card_code}`.
pub const GET_USER_CARD: Endpoint = Endpoint {
    name: "get_user_card",
    method: "GET",
    path: "/brand/card-member/user-cards/{user_card_code}",
    path_params: &[USER_CARD_CODE],
    query_params: &[
        Param {
            name: "card_id",
            required: true,
            description: "The template ID",
            max_chars: None,
            pattern: None,
        },
        Param {
            name: "openid",
            required: true,
            description: "The holder",
            max_chars: None,
            pattern: None,
        },
    ],
    request: None,
    response: &user_cards::USER_CARD_BODY,
    ciphertext_fields: USER_CARD_CIPHERTEXTS,
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Read a user's membership card",
};

/// `POST /brand/card-member/user-cards/{user_card_code}/invalidate`.
pub const INVALIDATE_USER_CARD: Endpoint = Endpoint {
    name: "invalidate_user_card",
    method: "POST",
    path: "/brand/card-member/user-cards/{user_card_code}/invalidate",
    path_params: &[USER_CARD_CODE],
    query_params: &[CARD_ID_IN_QUERY],
    request: Some(&user_cards::INVALIDATE_USER_CARD_BODY),
    response: &user_cards::USER_CARD_BODY,
    ciphertext_fields: USER_CARD_CIPHERTEXTS,
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Invalidate a user's membership card (final; answers the card)",
};
with_body!(
    InvalidateUserCardRequest,
    INVALIDATE_USER_CARD,
    UserCard,
    |r| vec![&r.user_card_code],
    InvalidateUserCardRequest::validate
);

/// `POST /brand/card-member/user-cards/import-by-openid`.
pub const IMPORT_USER_CARD: Endpoint = Endpoint {
    name: "import_user_card",
    method: "POST",
    path: "/brand/card-member/user-cards/import-by-openid",
    path_params: &[],
    query_params: &[],
    request: Some(&user_cards::IMPORT_USER_CARD_BODY),
    response: &user_cards::USER_CARD_BODY,
    ciphertext_fields: USER_CARD_CIPHERTEXTS,
    per_second: IMPORT_RATE_LIMIT_PER_SECOND,
    idempotent: false,
    summary: "Import a user card (10 requests/s per brand)",
};
with_body!(
    ImportUserCardRequest,
    IMPORT_USER_CARD,
    UserCard,
    |_r| Vec::new(),
    ImportUserCardRequest::validate
);

/// `POST /brand/card-member/cards`.
pub const CREATE_CARD: Endpoint = Endpoint {
    name: "create_card",
    method: "POST",
    path: "/brand/card-member/cards",
    path_params: &[],
    query_params: &[],
    request: Some(&cards::CREATE_CARD_BODY),
    response: &cards::CARD_BODY,
    ciphertext_fields: &[],
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Create a card template (idempotent on out_request_no)",
};
with_body!(
    CardDefinition,
    CREATE_CARD,
    Card,
    |_r| Vec::new(),
    CardDefinition::validate
);

/// `GET /brand/card-member/cards/{card_id}`.
pub const GET_CARD: Endpoint = Endpoint {
    name: "get_card",
    method: "GET",
    path: "/brand/card-member/cards/{card_id}",
    path_params: &[CARD_ID],
    query_params: &[],
    request: None,
    response: &cards::CARD_BODY,
    ciphertext_fields: &[],
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Read a card template",
};

/// `GET /brand/card-member/cards?state=&offset=&limit=`.
pub const LIST_CARDS: Endpoint = Endpoint {
    name: "list_cards",
    method: "GET",
    path: "/brand/card-member/cards",
    path_params: &[],
    query_params: &[
        Param {
            name: "state",
            required: false,
            description: "CARD_EFFECTIVE or CARD_INVALID; all when absent",
            max_chars: Some(16),
            pattern: Some("^(CARD_EFFECTIVE|CARD_INVALID)$"),
        },
        OFFSET,
        LIMIT,
    ],
    request: None,
    response: &CARD_PAGE,
    ciphertext_fields: &[],
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "List the brand's card templates, newest first",
};

/// `PATCH /brand/card-member/cards/{card_id}`.
pub const UPDATE_CARD: Endpoint = Endpoint {
    name: "update_card",
    method: "PATCH",
    path: "/brand/card-member/cards/{card_id}",
    path_params: &[CARD_ID],
    query_params: &[],
    request: Some(&cards::UPDATE_CARD_BODY),
    response: &cards::CARD_BODY,
    ciphertext_fields: &[],
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Change a card template (only the fields sent change)",
};
with_body!(
    UpdateCardRequest,
    UPDATE_CARD,
    Card,
    |r| vec![&r.card_id],
    UpdateCardRequest::validate
);

/// `POST /brand/card-member/cards/{card_id}/invalidate` (no body).
pub const INVALIDATE_CARD: Endpoint = Endpoint {
    name: "invalidate_card",
    method: "POST",
    path: "/brand/card-member/cards/{card_id}/invalidate",
    path_params: &[CARD_ID],
    query_params: &[],
    request: None,
    response: &cards::CARD_BODY,
    ciphertext_fields: &[],
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Invalidate a card template (final: no new tokens or imports)",
};

/// `GET /brand/card-member/user-cards?openid=&user_card_state=&offset=&limit=`.
pub const LIST_USER_CARDS: Endpoint = Endpoint {
    name: "list_user_cards",
    method: "GET",
    path: "/brand/card-member/user-cards",
    path_params: &[],
    query_params: &[
        Param {
            name: "openid",
            required: true,
            description: "The user",
            max_chars: Some(128),
            pattern: None,
        },
        Param {
            name: "user_card_state",
            required: false,
            description: "UNACTIVATED, EFFECTIVE, EXPIRED or INVALID (as read now); all when absent",
            max_chars: Some(16),
            pattern: Some("^(UNACTIVATED|EFFECTIVE|EXPIRED|INVALID)$"),
        },
        OFFSET,
        LIMIT,
    ],
    request: None,
    response: &USER_CARD_PAGE,
    ciphertext_fields: &[
        "/data/-/phone_number",
        "/data/-/user_information/common_field_list/-/value",
    ],
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "List a user's cards under the brand, newest first",
};

/// `POST /brand/card-member/pre-auth-tokens`.
pub const CREATE_PRE_AUTH_TOKEN: Endpoint = Endpoint {
    name: "create_pre_auth_token",
    method: "POST",
    path: "/brand/card-member/pre-auth-tokens",
    path_params: &[],
    query_params: &[],
    request: Some(&membership::PRE_AUTH_TOKEN_BODY),
    response: &membership::PRE_AUTH_TOKEN_ANSWER_BODY,
    ciphertext_fields: &[],
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Get a one-hour token that opens the membership component for a user",
};
with_body!(
    PreAuthTokenRequest,
    CREATE_PRE_AUTH_TOKEN,
    PreAuthToken,
    |_r| Vec::new(),
    |r| check_body(&CREATE_PRE_AUTH_TOKEN, r)
);

/// `POST /brand/card-member/user-cards/{user_card_code}/confirm`.
pub const CONFIRM_USER_CARD: Endpoint = Endpoint {
    name: "confirm_user_card",
    method: "POST",
    path: "/brand/card-member/user-cards/{user_card_code}/confirm",
    path_params: &[USER_CARD_CODE],
    query_params: &[CARD_ID_IN_QUERY],
    request: Some(&membership::CONFIRM_USER_CARD_BODY),
    response: &user_cards::USER_CARD_BODY,
    ciphertext_fields: USER_CARD_CIPHERTEXTS,
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Report the outcome of a sign-up (the card turns EFFECTIVE or INVALID)",
};
with_body!(
    ConfirmUserCardRequest,
    CONFIRM_USER_CARD,
    UserCard,
    |r| vec![&r.update.user_card_code],
    ConfirmUserCardRequest::validate
);

/// `POST /brand/card-member/user-points/exchange-coupon/confirm`.
pub const CONFIRM_POINT_EXCHANGE: Endpoint = Endpoint {
    name: "confirm_point_exchange",
    method: "POST",
    path: "/brand/card-member/user-points/exchange-coupon/confirm",
    path_params: &[],
    query_params: &[],
    request: Some(&membership::EXCHANGE_CONFIRM_BODY),
    response: &membership::EXCHANGE_RESULT_BODY,
    ciphertext_fields: &[],
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Allow or reject a member's points-for-coupon request",
};
with_body!(
    ExchangeCouponConfirmRequest,
    CONFIRM_POINT_EXCHANGE,
    ExchangeCouponResult,
    |_r| Vec::new(),
    |r| check_body(&CONFIRM_POINT_EXCHANGE, r)
);

/// `POST /brand/card-member/media/image-upload` (multipart; the signature
/// covers the `meta` part).
pub const UPLOAD_IMAGE: Endpoint = Endpoint {
    name: "upload_image",
    method: "POST",
    path: "/brand/card-member/media/image-upload",
    path_params: &[],
    query_params: &[],
    request: Some(&media::IMAGE_META_BODY),
    response: &media::IMAGE_UPLOAD_BODY,
    ciphertext_fields: &[],
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Upload a card image (JPG, PNG or BMP, at most 2 MiB); answers its permanent URL",
};
with_body!(ImageMeta, UPLOAD_IMAGE, ImageUpload, |_r| Vec::new(), |r| {
    check_body(&UPLOAD_IMAGE, r)
});

/// `POST /brand/card-member/user-feeds` (no limit stated for brands: 5/s).
pub const CREATE_USER_FEED: Endpoint = Endpoint {
    name: "create_user_feed",
    method: "POST",
    path: "/brand/card-member/user-feeds",
    path_params: &[],
    query_params: &[],
    request: Some(&activity::USER_FEED_BODY),
    response: &activity::USER_FEED_ANSWER_BODY,
    ciphertext_fields: &[],
    per_second: RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Post a member activity entry (idempotent on out_request_no)",
};
with_body!(
    UserFeedRequest,
    CREATE_USER_FEED,
    UserFeed,
    |_r| Vec::new(),
    UserFeedRequest::validate
);

/// `POST /brand/card-member/user-points/sync` (10/s, doc 4015897319).
pub const SYNC_USER_POINTS: Endpoint = Endpoint {
    name: "sync_user_points",
    method: "POST",
    path: "/brand/card-member/user-points/sync",
    path_params: &[],
    query_params: &[],
    request: Some(&activity::POINTS_SYNC_BODY),
    response: &activity::POINTS_SYNC_ANSWER_BODY,
    ciphertext_fields: &[],
    per_second: IMPORT_RATE_LIMIT_PER_SECOND,
    idempotent: true,
    summary: "Sync a member's points balance (10 requests/s per brand; idempotent on out_request_no)",
};
with_body!(
    PointsSyncRequest,
    SYNC_USER_POINTS,
    PointsSync,
    |_r| Vec::new(),
    PointsSyncRequest::validate
);

/// Every endpoint, in the order the OpenAPI document lists them.
pub const ENDPOINTS: &[&Endpoint] = &[
    &UPDATE_USER_CARD,
    &GET_USER_CARD,
    &INVALIDATE_USER_CARD,
    &IMPORT_USER_CARD,
    &CREATE_CARD,
    &GET_CARD,
    &CREATE_USER_FEED,
    &SYNC_USER_POINTS,
    &LIST_CARDS,
    &UPDATE_CARD,
    &INVALIDATE_CARD,
    &LIST_USER_CARDS,
    &CREATE_PRE_AUTH_TOKEN,
    &CONFIRM_USER_CARD,
    &CONFIRM_POINT_EXCHANGE,
    &UPLOAD_IMAGE,
];

/// Whether the endpoint's request is multipart (the image upload): its
/// signature covers the `meta` part, not the body.
pub fn is_multipart(endpoint: &Endpoint) -> bool {
    endpoint.name == UPLOAD_IMAGE.name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_described_once_under_the_api_prefix() {
        for (index, endpoint) in ENDPOINTS.iter().enumerate() {
            assert!(
                endpoint.path.starts_with(crate::API_PREFIX),
                "{}",
                endpoint.name
            );
            let params: Vec<&str> = endpoint
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let described: Vec<&str> = endpoint.path_params.iter().map(|p| p.name).collect();
            assert_eq!(params, described, "{}: path parameters", endpoint.name);
            for other in &ENDPOINTS[..index] {
                assert_ne!(other.name, endpoint.name);
                assert!(
                    other.method != endpoint.method || other.path != endpoint.path,
                    "{} and {} share a route",
                    other.name,
                    endpoint.name
                );
            }
        }
    }

    #[test]
    fn import_and_points_sync_allow_ten_per_second_and_the_rest_five() {
        let ten = ["import_user_card", "sync_user_points"];
        for endpoint in ENDPOINTS {
            let expected = if ten.contains(&endpoint.name) { 10 } else { 5 };
            assert_eq!(endpoint.per_second, expected, "{}", endpoint.name);
        }
    }

    #[test]
    fn targets_percent_encode_path_values() {
        assert_eq!(
            UPDATE_USER_CARD.target(&["A B/1"]),
            "/brand/card-member/user-cards/A%20B%2F1"
        );
    }
}
