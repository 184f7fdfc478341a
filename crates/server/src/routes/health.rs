//! `GET /healthz`: no authentication; 200 when the database answers.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::app::{AppState, blocking};

pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    let storage = Arc::clone(&state.storage);
    match blocking(move || storage.brand("")).await {
        Ok(_) => super::json_ok(&serde_json::json!({"status": "ok"})),
        Err(error) => error.into_response(),
    }
}
