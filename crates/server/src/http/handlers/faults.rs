//! `/simulate/faults`: the failures injected on purpose (what they do:
//! `state/faults.rs`). `POST` adds one, `GET` lists the active ones,
//! `DELETE` clears (one with `?id=`, a brand's with `?brand_id=`, else
//! all). Part of the simulation: answered only when it is on, and only to
//! loopback clients.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::local::{Client, Refusal, local_only, refusal};
use crate::admin::{self, faults::NotAdded};
use crate::state::AppState;
use crate::state::faults::FaultSpec;

fn allowed(state: &AppState, client: Client) -> Result<(), Refusal> {
    local_only(state.simulation, "the simulation", "simulation", client)
}

fn failed(error: impl std::fmt::Display) -> Refusal {
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
        format!("the storage failed: {error}"),
    )
}

/// `POST /simulate/faults`: a fault, active at once and kept across
/// restarts. 201 with the fault; 400 naming the field that is wrong.
pub(crate) async fn add(
    State(state): State<Arc<AppState>>,
    client: Client,
    raw: Bytes,
) -> Response {
    match add_fault(&state, client, &raw).await {
        Ok(answer) => answer,
        Err(refused) => refused.into_response(),
    }
}

async fn add_fault(state: &AppState, client: Client, raw: &[u8]) -> Result<Response, Refusal> {
    allowed(state, client)?;
    let spec: FaultSpec = serde_json::from_slice(raw).map_err(|err| {
        refusal(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            &format!("the body does not match: {err}"),
        )
    })?;
    match admin::faults::add_fault(state, &spec).await {
        Ok(fault) => Ok((StatusCode::CREATED, Json(json!(fault))).into_response()),
        Err(NotAdded::Refused(why)) => Err(Refusal(StatusCode::BAD_REQUEST, "PARAM_ERROR", why)),
        Err(NotAdded::Storage(err)) => Err(failed(err)),
    }
}

/// Which faults a list or a clear is about.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Which {
    brand_id: Option<String>,
    id: Option<i64>,
}

/// `GET /simulate/faults[?brand_id=]`: the active faults, oldest first,
/// with how often each has fired.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    client: Client,
    Query(which): Query<Which>,
) -> Response {
    if let Err(refused) = allowed(&state, client) {
        return refused.into_response();
    }
    let data: Vec<_> = state
        .faults
        .list()
        .into_iter()
        .filter(|fault| which.brand_id.as_ref().is_none_or(|b| &fault.brand_id == b))
        .filter(|fault| which.id.is_none_or(|id| fault.id == id))
        .collect();
    Json(json!({ "data": data })).into_response()
}

/// `DELETE /simulate/faults[?brand_id=][&id=]`: clears faults; how many.
pub(crate) async fn clear(
    State(state): State<Arc<AppState>>,
    client: Client,
    Query(which): Query<Which>,
) -> Response {
    if let Err(refused) = allowed(&state, client) {
        return refused.into_response();
    }
    match admin::faults::clear_faults(&state, which.brand_id.as_deref(), which.id).await {
        Ok(cleared) => Json(json!({ "cleared": cleared })).into_response(),
        Err(err) => failed(err).into_response(),
    }
}
