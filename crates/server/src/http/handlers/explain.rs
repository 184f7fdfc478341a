//! `GET /explanations/{request_id}`: why a request was refused for its
//! signature, certificate serial, timestamp, nonce or a ciphertext
//! (`state/explanations.rs`), for `card-member explain`. Loopback clients
//! only, and only where explanations are on (setting `explain`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::local::{Client, local_only, refusal};
use crate::state::AppState;

pub(crate) async fn explanation(
    State(state): State<Arc<AppState>>,
    client: Client,
    Path(request_id): Path<String>,
) -> Response {
    if let Err(refused) = local_only(
        state.explanations.enabled(),
        "explaining refusals",
        "explain",
        client,
    ) {
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
