//! Handlers, one file per resource, named after the URL: each parses the
//! request, calls the rules below (`domain`, `storage`) and renders the
//! answer. What they share to read a request is here.

pub(crate) mod activity;
pub(crate) mod cards;
pub(crate) mod explain;
pub(crate) mod faults;
pub(crate) mod health;
pub(crate) mod local;
pub(crate) mod media;
pub(crate) mod membership;
pub(crate) mod receiver_battery;
pub(crate) mod simulate;
pub(crate) mod user_cards;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use card_member_protocol::model::{
    ConfirmUserCardRequest, InvalidateUserCardRequest, UpdateUserCardRequest,
};
use card_member_protocol::validation::{Violation, breaks_a_single_line};
use serde::Serialize;

use crate::domain::user_cards::render;
use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::http::layers::RequestId;
use crate::records::UserCardRecord;
use crate::state::AppState;

/// A user card answered to the brand that asked, as read at `now`: its
/// sensitive fields encrypted for the key of the certificate that signed
/// the request.
pub(crate) fn card_answer(
    state: &AppState,
    auth: &Authenticated,
    record: &UserCardRecord,
    now: time::OffsetDateTime,
) -> Result<Response, ApiError> {
    let card = render(&state.crypto, record, &auth.certificate.public_key, now)?;
    Ok(json_ok(&card))
}

/// A 200 JSON answer; the signing layer signs these exact bytes.
pub(crate) fn json_ok<T: Serialize>(value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("response types always serialise");
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The query's parameters; a parameter the endpoint does not define, or one
/// given twice, is refused.
pub(crate) fn query_params(uri: &Uri, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|_| ApiError::invalid_query("query", "is not a valid query string"))?;
    for (index, (name, _)) in pairs.iter().enumerate() {
        if !allowed.contains(&name.as_str()) {
            let name: String = name.chars().take(32).collect();
            return Err(ApiError::invalid_query(
                &name,
                "is not a parameter defined in the API",
            ));
        }
        if pairs[..index].iter().any(|(earlier, _)| earlier == name) {
            return Err(ApiError::invalid_query(name, "is given more than once"));
        }
    }
    for (name, value) in &pairs {
        // `?state=` is not an absent filter: a parameter given has a value.
        if value.is_empty() {
            return Err(ApiError::invalid_query(
                name,
                "is empty: give a value or leave the parameter out",
            ));
        }
        if value.chars().any(breaks_a_single_line) {
            return Err(ApiError::invalid_query(
                name,
                "contains a control character or a line separator",
            ));
        }
    }
    Ok(pairs)
}

/// The value of a query parameter.
pub(crate) fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Endpoints that take no body refuse one (FAMILY.md #5: "no body").
pub(crate) fn refuse_body(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(())
    } else {
        Err(ApiError::body_param(
            "/",
            "must be empty",
            "this endpoint takes no request body",
        ))
    }
}

/// A request that changes one card (`…/user-cards/{code}[/…]`) as its
/// handler takes it: authenticated, with its request ID, and parsed from
/// the path's code, the body and `?card_id=` (the only query parameter
/// allowed; the body may take `card_id` from it).
pub(crate) struct CardCall<R> {
    pub(crate) auth: Authenticated,
    pub(crate) request_id: String,
    pub(crate) request: R,
}

/// A protocol parser of a request on one card: the path's code, the body,
/// `?card_id=`.
type ParseCardRequest<R> = fn(&str, &[u8], Option<&str>) -> Result<R, Violation>;

/// A request type [`CardCall`] parses.
pub(crate) trait CardRequest: Sized {
    const PARSE: ParseCardRequest<Self>;
}

impl CardRequest for UpdateUserCardRequest {
    const PARSE: ParseCardRequest<Self> = Self::from_request_parts;
}

impl CardRequest for InvalidateUserCardRequest {
    const PARSE: ParseCardRequest<Self> = Self::from_request_parts;
}

impl CardRequest for ConfirmUserCardRequest {
    const PARSE: ParseCardRequest<Self> = Self::from_request_parts;
}

impl<R: CardRequest, S: Send + Sync> FromRequestParts<S> for CardCall<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // The authentication layer put both there before any handler runs.
        let (Some(auth), Some(RequestId(request_id))) = (
            parts.extensions.get::<Authenticated>().cloned(),
            parts.extensions.get::<RequestId>().cloned(),
        ) else {
            return Err(ApiError::internal(
                &"a card request reached its handler unauthenticated",
            ));
        };
        let code = path_code(Path::<String>::from_request_parts(parts, state).await)?;
        let query = query_params(&parts.uri, &["card_id"])?;
        let request = R::PARSE(&code, &auth.body, query_value(&query, "card_id"))
            .map_err(|violation| ApiError::violation(&violation))?;
        Ok(Self {
            auth,
            request_id,
            request,
        })
    }
}

/// A path value as an identifier: valid UTF-8 after percent-decoding, and
/// no control character (`%01`, `%C2%85`) or line separator in it.
pub(crate) fn path_id(
    value: Result<Path<String>, PathRejection>,
    name: &str,
) -> Result<String, ApiError> {
    let Path(value) = value
        .map_err(|_| ApiError::invalid_path(name, "is not valid UTF-8 after percent-decoding"))?;
    if value.chars().any(breaks_a_single_line) {
        return Err(ApiError::invalid_path(
            name,
            "contains a control character or a line separator",
        ));
    }
    Ok(value)
}

pub(crate) fn path_code(code: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    code.map(|Path(code)| code).map_err(|_| {
        ApiError::invalid_path(
            "user_card_code",
            "is not valid UTF-8 after percent-decoding",
        )
    })
}
