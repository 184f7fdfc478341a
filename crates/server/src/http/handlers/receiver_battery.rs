//! `POST /simulate/notify-test` `{"brand_id", "url"}`: puts a brand's
//! notification receiver to the test (`admin/receiver_battery.rs`) and answers
//! the report. Part of the simulation: loopback clients only.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::local::{Client, Refusal, local_only};
use crate::admin::receiver_battery;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    brand_id: String,
    url: String,
}

pub(crate) async fn notify_test(
    State(state): State<Arc<AppState>>,
    client: Client,
    raw: Bytes,
) -> Response {
    let bad = |message: String| Refusal(StatusCode::BAD_REQUEST, "PARAM_ERROR", message);
    let run = async {
        local_only(state.simulation, "the simulation", "simulation", client)?;
        let target: Target = serde_json::from_slice(&raw)
            .map_err(|err| bad(format!("the body does not match: {err}")))?;
        let url = reqwest::Url::parse(&target.url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| bad(format!("url: {:?} is not an http(s) URL", target.url)))?;
        if state
            .storage
            .brand(&target.brand_id)
            .await
            .map_err(|err| bad(format!("brand_id: {err}")))?
            .is_none()
        {
            return Err(bad(format!("brand_id: no brand {:?}", target.brand_id)));
        }
        receiver_battery::run(&state, &target.brand_id, url.as_str())
            .await
            .map_err(|why| bad(format!("brand_id: {why}")))
    };
    match run.await {
        Ok(report) => Json(report).into_response(),
        Err(refused) => refused.into_response(),
    }
}
