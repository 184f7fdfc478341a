//! Operational endpoints, without authentication: `GET /healthz` (200 when
//! the database answers), `GET /metrics` (Prometheus text) and
//! `GET /openapi.json` (the API's OpenAPI document).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::ops::metrics::OPENMETRICS;
use crate::state::AppState;

pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.storage.brand("").await {
        Ok(_) => super::json_ok(&serde_json::json!({"status": "ok"})),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// The metrics. OpenMetrics text, labelled as such for a scraper that asks
/// for it (Prometheus does); plain text otherwise, which every Prometheus
/// text parser also reads.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    let content_type = if wants_openmetrics {
        OPENMETRICS
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.render(state.brands.cached()),
    )
        .into_response()
}

pub(crate) async fn openapi() -> Response {
    super::json_ok(&crate::http::openapi::document())
}
