//! The console's request pages: the recent API requests of this instance,
//! and one request with the explanation of its refusal, if it has one
//! (`state/explanations.rs`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::view::{page, refusal, when};
use crate::state::{AppState, recent};

#[derive(Deserialize)]
pub(crate) struct RequestsQuery {
    brand: Option<String>,
    status: Option<String>,
    route: Option<String>,
}

pub(crate) async fn requests(
    State(state): State<Arc<AppState>>,
    Query(query): Query<RequestsQuery>,
) -> Response {
    let brand = query.brand.unwrap_or_default();
    let status = query.status.unwrap_or_default();
    let route = query.route.unwrap_or_default();
    let shown: Vec<_> = state
        .recent
        .requests()
        .into_iter()
        .filter(|r| brand.is_empty() || r.brand_id.as_deref() == Some(brand.as_str()))
        .filter(|r| status.is_empty() || r.status.to_string().starts_with(&status))
        .filter(|r| route.is_empty() || r.route.contains(&route))
        .take(200)
        .collect();
    let body = html! {
        form.stack method="get" {
            input name="brand" value=(brand) placeholder="brand";
            input name="status" value=(status) placeholder="status (4, 429…)";
            input name="route" value=(route) placeholder="route contains";
            button type="submit" { "filter" }
        }
        p.muted { "The last " (recent::KEPT) " API requests of this instance, newest first (200 shown). Never bodies or personal data." }
        div.scroll { table #requests {
            tr { th { "time" } th { "brand" } th { "method" } th { "route" } th { "status" } th { "code" } th { "ms" } th { "Request-ID" } }
            @for r in &shown {
                tr {
                    td { (when(r.at_ms)) }
                    td { (r.brand_id.clone().unwrap_or_else(|| "-".into())) }
                    td { (r.method) }
                    td { (r.route) }
                    td class=(if r.status < 400 { "ok" } else { "bad" }) { (r.status) }
                    td {
                        (r.code)
                        @if let Some(kind) = r.injected { " " span.bad { "injected: " (kind) } }
                    }
                    td { (format!("{:.1}", r.latency_ms)) }
                    td { a href=(format!("/console/requests/{}", r.request_id)) { (r.request_id) } }
                }
            }
        } }
    };
    page("Requests", "requests", state.simulation, Some(10), body)
}

/// One request: what the list shows of it, and why it was refused where
/// the refusal was explained.
pub(crate) async fn request(
    State(state): State<Arc<AppState>>,
    Path(request_id): Path<String>,
) -> Response {
    let entry = state
        .recent
        .requests()
        .into_iter()
        .find(|r| r.request_id == request_id);
    let explanation = state.explanations.get(&request_id);
    if entry.is_none() && explanation.is_none() {
        return refusal(
            StatusCode::NOT_FOUND,
            "No such request among the recent ones of this instance.",
        );
    }
    let body = html! {
        @if let Some(r) = &entry {
            table {
                tr { th { "time" } td { (when(r.at_ms)) } }
                tr { th { "brand" } td { (r.brand_id.clone().unwrap_or_else(|| "-".into())) } }
                tr { th { "route" } td { (r.method) " " (r.route) } }
                tr { th { "status" } td { (r.status) " " (r.code) } }
                @if let Some(kind) = r.injected {
                    tr { th { "injected" } td.bad { (kind) " (card-member simulate fault: not a real failure)" } }
                }
                tr { th { "Request-ID" } td { (r.request_id) } }
            }
        }
        @match &explanation {
            Some(e) => {
                h2 { "Why it was refused" }
                p #diagnosis { (e.diagnosis) }
                table #explanation {
                    tr { th { "step" } td { (e.step.as_str()) } }
                    tr { th { "mistake" } td { (e.mistake.unwrap_or("none of the known mistakes")) } }
                    tr { th { "request" } td { (e.method) " " (e.target) } }
                    @if let Some(serial) = &e.serial_no {
                        tr { th { "certificate" } td { (serial) } }
                    }
                    @if let Some(key) = &e.key_fingerprint {
                        tr { th { "key (SHA-256 of its SPKI)" } td { (key) } }
                    }
                    @if let Some(field) = &e.field {
                        tr { th { "field" } td { (field) } }
                    }
                    tr { th { "tried" } td { (e.tried.join(", ")) } }
                }
                @if let Some(message) = &e.verified_message {
                    h2 { "The message the server verified" }
                    pre #message { (message) }
                }
                p.muted { "Sensitive values are never shown. `card-member explain " (e.request_id) "` prints the same." }
            }
            None => {
                p.muted { "No explanation: only requests refused for their signature, certificate serial, timestamp, nonce or a ciphertext are explained, where the setting explain is on and within the brand's budget." }
            }
        }
    };
    page("Request", "requests", state.simulation, None, body)
}
