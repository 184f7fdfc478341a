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

impl Param {
    /// A parameter the request must carry, of any length.
    const fn required(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            required: true,
            description,
            max_chars: None,
            pattern: None,
        }
    }

    /// A parameter the request may leave out, of any length.
    const fn optional(name: &'static str, description: &'static str) -> Self {
        Self {
            required: false,
            ..Self::required(name, description)
        }
    }

    /// At most `max_chars` characters.
    const fn max_chars(self, max_chars: usize) -> Self {
        Self {
            max_chars: Some(max_chars),
            ..self
        }
    }

    /// Every value matches `pattern`.
    const fn pattern(self, pattern: &'static str) -> Self {
        Self {
            pattern: Some(pattern),
            ..self
        }
    }
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
    /// An endpoint answering `response`: no parameters, no request body,
    /// no field encrypted, the usual rate limit, idempotent. The methods
    /// below each add one thing to it (`const`, so that every endpoint
    /// stays a constant).
    const fn new(
        name: &'static str,
        method: &'static str,
        path: &'static str,
        response: &'static BodyRules,
        summary: &'static str,
    ) -> Self {
        Self {
            name,
            method,
            path,
            path_params: &[],
            query_params: &[],
            request: None,
            response,
            ciphertext_fields: &[],
            per_second: RATE_LIMIT_PER_SECOND,
            idempotent: true,
            summary,
        }
    }

    const fn path_params(self, path_params: &'static [Param]) -> Self {
        Self {
            path_params,
            ..self
        }
    }

    const fn query_params(self, query_params: &'static [Param]) -> Self {
        Self {
            query_params,
            ..self
        }
    }

    const fn request(self, rules: &'static BodyRules) -> Self {
        Self {
            request: Some(rules),
            ..self
        }
    }

    const fn ciphertexts(self, ciphertext_fields: &'static [&'static str]) -> Self {
        Self {
            ciphertext_fields,
            ..self
        }
    }

    const fn per_second(self, per_second: u32) -> Self {
        Self { per_second, ..self }
    }

    const fn not_idempotent(self) -> Self {
        Self {
            idempotent: false,
            ..self
        }
    }

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

const USER_CARD_CODE: Param = Param::required(
    "user_card_code",
    "Percent-encoded on the wire; the signature covers the encoded form.",
)
.max_chars(32)
.pattern("^[!-~]+$");

const CARD_ID: Param = Param::required(
    "card_id",
    "Percent-encoded on the wire; the signature covers the encoded form.",
)
.max_chars(32);

/// `?card_id=`, accepted where the body may carry it instead.
const CARD_ID_IN_QUERY: Param = Param::optional(
    "card_id",
    "The template ID, if not in the body (must equal the body's)",
);

const OFFSET: Param = Param::optional("offset", "From 0 (default 0)")
    .max_chars(10)
    .pattern("^[0-9]+$");

const LIMIT: Param = Param::optional("limit", "1 to 20 (default 20)")
    .max_chars(2)
    .pattern("^[0-9]+$");

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
pub const UPDATE_USER_CARD: Endpoint = Endpoint::new(
    "update_user_card",
    "PATCH",
    "/brand/card-member/user-cards/{user_card_code}",
    &user_cards::USER_CARD_BODY,
    "Update a user's membership card (only the fields sent change)",
)
.path_params(&[USER_CARD_CODE])
.query_params(&[CARD_ID_IN_QUERY])
.request(&user_cards::UPDATE_USER_CARD_BODY)
.ciphertexts(USER_CARD_CIPHERTEXTS);
with_body!(
    UpdateUserCardRequest,
    UPDATE_USER_CARD,
    UserCard,
    |r| vec![&r.user_card_code],
    UpdateUserCardRequest::validate
);

/// `GET /brand/card-member/user-cards/{user_card_code}`.
pub const GET_USER_CARD: Endpoint = Endpoint::new(
    "get_user_card",
    "GET",
    "/brand/card-member/user-cards/{user_card_code}",
    &user_cards::USER_CARD_BODY,
    "Read a user's membership card",
)
.path_params(&[USER_CARD_CODE])
.query_params(&[
    Param::required("card_id", "The template ID"),
    Param::required("openid", "The holder"),
])
.ciphertexts(USER_CARD_CIPHERTEXTS);

/// `POST /brand/card-member/user-cards/{user_card_code}/invalidate`.
pub const INVALIDATE_USER_CARD: Endpoint = Endpoint::new(
    "invalidate_user_card",
    "POST",
    "/brand/card-member/user-cards/{user_card_code}/invalidate",
    &user_cards::USER_CARD_BODY,
    "Invalidate a user's membership card (final; answers the card)",
)
.path_params(&[USER_CARD_CODE])
.query_params(&[CARD_ID_IN_QUERY])
.request(&user_cards::INVALIDATE_USER_CARD_BODY)
.ciphertexts(USER_CARD_CIPHERTEXTS);
with_body!(
    InvalidateUserCardRequest,
    INVALIDATE_USER_CARD,
    UserCard,
    |r| vec![&r.user_card_code],
    InvalidateUserCardRequest::validate
);

/// `POST /brand/card-member/user-cards/import-by-openid`.
pub const IMPORT_USER_CARD: Endpoint = Endpoint::new(
    "import_user_card",
    "POST",
    "/brand/card-member/user-cards/import-by-openid",
    &user_cards::USER_CARD_BODY,
    "Import a user card (10 requests/s per brand)",
)
.request(&user_cards::IMPORT_USER_CARD_BODY)
.ciphertexts(USER_CARD_CIPHERTEXTS)
.per_second(IMPORT_RATE_LIMIT_PER_SECOND)
.not_idempotent();
with_body!(
    ImportUserCardRequest,
    IMPORT_USER_CARD,
    UserCard,
    |_r| Vec::new(),
    ImportUserCardRequest::validate
);

/// `POST /brand/card-member/cards`.
pub const CREATE_CARD: Endpoint = Endpoint::new(
    "create_card",
    "POST",
    "/brand/card-member/cards",
    &cards::CARD_BODY,
    "Create a card template (idempotent on out_request_no)",
)
.request(&cards::CREATE_CARD_BODY);
with_body!(
    CardDefinition,
    CREATE_CARD,
    Card,
    |_r| Vec::new(),
    CardDefinition::validate
);

/// `GET /brand/card-member/cards/{card_id}`.
pub const GET_CARD: Endpoint = Endpoint::new(
    "get_card",
    "GET",
    "/brand/card-member/cards/{card_id}",
    &cards::CARD_BODY,
    "Read a card template",
)
.path_params(&[CARD_ID]);

/// `GET /brand/card-member/cards?state=&offset=&limit=`.
pub const LIST_CARDS: Endpoint = Endpoint::new(
    "list_cards",
    "GET",
    "/brand/card-member/cards",
    &CARD_PAGE,
    "List the brand's card templates, newest first",
)
.query_params(&[
    Param::optional("state", "CARD_EFFECTIVE or CARD_INVALID; all when absent")
        .max_chars(16)
        .pattern("^(CARD_EFFECTIVE|CARD_INVALID)$"),
    OFFSET,
    LIMIT,
]);

/// `PATCH /brand/card-member/cards/{card_id}`.
pub const UPDATE_CARD: Endpoint = Endpoint::new(
    "update_card",
    "PATCH",
    "/brand/card-member/cards/{card_id}",
    &cards::CARD_BODY,
    "Change a card template (only the fields sent change)",
)
.path_params(&[CARD_ID])
.request(&cards::UPDATE_CARD_BODY);
with_body!(
    UpdateCardRequest,
    UPDATE_CARD,
    Card,
    |r| vec![&r.card_id],
    UpdateCardRequest::validate
);

/// `POST /brand/card-member/cards/{card_id}/invalidate` (no body).
pub const INVALIDATE_CARD: Endpoint = Endpoint::new(
    "invalidate_card",
    "POST",
    "/brand/card-member/cards/{card_id}/invalidate",
    &cards::CARD_BODY,
    "Invalidate a card template (final: no new tokens or imports)",
)
.path_params(&[CARD_ID]);

/// `GET /brand/card-member/user-cards?openid=&user_card_state=&offset=&limit=`.
pub const LIST_USER_CARDS: Endpoint = Endpoint::new(
    "list_user_cards",
    "GET",
    "/brand/card-member/user-cards",
    &USER_CARD_PAGE,
    "List a user's cards under the brand, newest first",
)
.query_params(&[
    Param::required("openid", "The user").max_chars(128),
    Param::optional(
        "user_card_state",
        "UNACTIVATED, EFFECTIVE, EXPIRED or INVALID (as read now); all when absent",
    )
    .max_chars(16)
    .pattern("^(UNACTIVATED|EFFECTIVE|EXPIRED|INVALID)$"),
    OFFSET,
    LIMIT,
])
.ciphertexts(&[
    "/data/-/phone_number",
    "/data/-/user_information/common_field_list/-/value",
]);

/// `POST /brand/card-member/pre-auth-tokens`.
pub const CREATE_PRE_AUTH_TOKEN: Endpoint = Endpoint::new(
    "create_pre_auth_token",
    "POST",
    "/brand/card-member/pre-auth-tokens",
    &membership::PRE_AUTH_TOKEN_ANSWER_BODY,
    "Get a one-hour token that opens the membership component for a user",
)
.request(&membership::PRE_AUTH_TOKEN_BODY);
with_body!(
    PreAuthTokenRequest,
    CREATE_PRE_AUTH_TOKEN,
    PreAuthToken,
    |_r| Vec::new(),
    |r| check_body(&CREATE_PRE_AUTH_TOKEN, r)
);

/// `POST /brand/card-member/user-cards/{user_card_code}/confirm`.
pub const CONFIRM_USER_CARD: Endpoint = Endpoint::new(
    "confirm_user_card",
    "POST",
    "/brand/card-member/user-cards/{user_card_code}/confirm",
    &user_cards::USER_CARD_BODY,
    "Report the outcome of a sign-up (the card turns EFFECTIVE or INVALID)",
)
.path_params(&[USER_CARD_CODE])
.query_params(&[CARD_ID_IN_QUERY])
.request(&membership::CONFIRM_USER_CARD_BODY)
.ciphertexts(USER_CARD_CIPHERTEXTS);
with_body!(
    ConfirmUserCardRequest,
    CONFIRM_USER_CARD,
    UserCard,
    |r| vec![&r.update.user_card_code],
    ConfirmUserCardRequest::validate
);

/// `POST /brand/card-member/user-points/exchange-coupon/confirm`.
pub const CONFIRM_POINT_EXCHANGE: Endpoint = Endpoint::new(
    "confirm_point_exchange",
    "POST",
    "/brand/card-member/user-points/exchange-coupon/confirm",
    &membership::EXCHANGE_RESULT_BODY,
    "Allow or reject a member's points-for-coupon request",
)
.request(&membership::EXCHANGE_CONFIRM_BODY);
with_body!(
    ExchangeCouponConfirmRequest,
    CONFIRM_POINT_EXCHANGE,
    ExchangeCouponResult,
    |_r| Vec::new(),
    |r| check_body(&CONFIRM_POINT_EXCHANGE, r)
);

/// `POST /brand/card-member/media/image-upload` (multipart; the signature
/// covers the `meta` part).
pub const UPLOAD_IMAGE: Endpoint = Endpoint::new(
    "upload_image",
    "POST",
    "/brand/card-member/media/image-upload",
    &media::IMAGE_UPLOAD_BODY,
    "Upload a card image (JPG, PNG or BMP, at most 2 MiB); answers its permanent URL",
)
.request(&media::IMAGE_META_BODY);
with_body!(ImageMeta, UPLOAD_IMAGE, ImageUpload, |_r| Vec::new(), |r| {
    check_body(&UPLOAD_IMAGE, r)
});

/// `POST /brand/card-member/user-feeds` (no limit stated for brands: 5/s).
pub const CREATE_USER_FEED: Endpoint = Endpoint::new(
    "create_user_feed",
    "POST",
    "/brand/card-member/user-feeds",
    &activity::USER_FEED_ANSWER_BODY,
    "Post a member activity entry (idempotent on out_request_no)",
)
.request(&activity::USER_FEED_BODY);
with_body!(
    UserFeedRequest,
    CREATE_USER_FEED,
    UserFeed,
    |_r| Vec::new(),
    UserFeedRequest::validate
);

/// `POST /brand/card-member/user-points/sync` (10/s, doc 4015897319).
pub const SYNC_USER_POINTS: Endpoint = Endpoint::new(
    "sync_user_points",
    "POST",
    "/brand/card-member/user-points/sync",
    &activity::POINTS_SYNC_ANSWER_BODY,
    "Sync a member's points balance (10 requests/s per brand; idempotent on out_request_no)",
)
.request(&activity::POINTS_SYNC_BODY)
.per_second(IMPORT_RATE_LIMIT_PER_SECOND);
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
