//! Handlers, one file per resource, named after the URL.

pub(crate) mod activity;
pub(crate) mod cards;
pub(crate) mod health;
pub(crate) mod user_cards;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

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
