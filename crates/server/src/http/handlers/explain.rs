//! `GET /explanations/{request_id}`: why a request was refused for its
//! signature, certificate serial, timestamp, nonce or a ciphertext
//! (`state/explanations.rs`), for `card-member explain`; `GET
//! /explanations?brand_id=`: the brand's latest (`explain --last`).
//! Loopback clients only, and only where explanations are on (setting
//! `explain`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::local::{Client, Refusal, local_only, refusal};
use crate::state::AppState;

/// Explanations are on, and the client is local.
fn allowed(state: &AppState, client: Client) -> Result<(), Refusal> {
    local_only(
        state.explanations.enabled(),
        "explaining refusals",
        "explain",
        client,
    )
}

/// Whose latest explanation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Whose {
    brand_id: String,
}

/// The latest explanation kept of a brand's refusals.
pub(crate) async fn latest(
    State(state): State<Arc<AppState>>,
    client: Client,
    Query(whose): Query<Whose>,
) -> Response {
    if let Err(refused) = allowed(&state, client) {
        return refused.into_response();
    }
    match state.explanations.latest_of(&whose.brand_id) {
        Some(explanation) => Json(explanation.as_ref()).into_response(),
        None => refusal(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no explanation kept for this brand: none of its requests was refused for its \
             signature, serial, timestamp, nonce or a ciphertext among the last 500 refusals here",
        )
        .into_response(),
    }
}

pub(crate) async fn explanation(
    State(state): State<Arc<AppState>>,
    client: Client,
    Path(request_id): Path<String>,
) -> Response {
    if let Err(refused) = allowed(&state, client) {
        return refused.into_response();
    }
    match state.explanations.get(&request_id) {
        Some(explanation) => Json(explanation.as_ref()).into_response(),
        None => refusal(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no explanation for this Request-ID: it was not refused for its signature, serial, \
             timestamp, nonce or a ciphertext, it is older than the last 500 refusals, another \
             instance answered it, or the brand's budget of explanations was spent",
        )
        .into_response(),
    }
}
