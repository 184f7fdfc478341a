//! Operational endpoints, without authentication: `GET /healthz` (200 when
//! the database answers), `GET /metrics` (Prometheus text) and
//! `GET /openapi.json` (the API's OpenAPI document).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::app::{AppState, storage_error};
use crate::storage::Storage;

pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.storage.brand("").await {
        Ok(_) => super::json_ok(&serde_json::json!({"status": "ok"})),
        Err(error) => storage_error(error).into_response(),
    }
}

pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(state.brands_cached()),
    )
        .into_response()
}

pub(crate) async fn openapi() -> Response {
    super::json_ok(&crate::openapi::document())
}
