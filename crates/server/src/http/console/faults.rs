//! The console's faults page: the failures injected on purpose
//! (`state/faults.rs`), added and cleared here as with `card-member
//! simulate fault`. Only with the simulation on.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use card_member_protocol::endpoints::ENDPOINTS;
use maud::html;
use serde::Deserialize;

use super::view::{csrf_field, page, refusal};
use super::{Session, csrf_refusal};
use crate::admin::{self, faults::NotAdded};
use crate::state::AppState;
use crate::state::faults::{FaultKind, FaultSpec};

fn simulation_off() -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        "Faults are part of the simulation, which is off (setting simulation = true).",
    )
}

pub(crate) async fn faults(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Response {
    if !state.simulation {
        return simulation_off();
    }
    let csrf = state.console.csrf(&session.0);
    let list = state.faults.list();
    let body = html! {
        p.muted { "Failures injected on purpose, to test a client's retries, failover and idempotency and a receiver's duplicates. Each injected answer is marked in the request log, the requests page and /metrics (card_member_injected_faults)." }
        div.scroll { table #faults {
            tr { th { "id" } th { "brand" } th { "endpoint or event" } th { "kind" } th { "answer" } th { "when" } th { "injected" } th {} }
            @for f in &list {
                tr {
                    td { (f.id) }
                    td { (f.brand_id) }
                    td { (f.endpoint) }
                    td { (f.kind.name()) }
                    td {
                        @if let (Some(status), Some(code)) = (f.status, &f.code) { (status) " " (code) }
                        @if let Some(ms) = f.delay_ms { (ms) " ms" }
                    }
                    td {
                        @if let Some(left) = f.remaining { "next " (left) }
                        @else if let Some(every) = f.every { "every " (every) }
                        @else { "always" }
                    }
                    td { (f.injected) }
                    td {
                        form.inline method="post" action=(format!("/console/faults/{}/clear", f.id)) {
                            (csrf_field(&csrf))
                            button id=(format!("clear-{}", f.id)) type="submit" { "clear" }
                        }
                    }
                }
            }
        } }
        h2 { "Add a fault" }
        form.stack #add-fault method="post" action="/console/faults" {
            (csrf_field(&csrf))
            input name="brand_id" placeholder="brand ID" required;
            select name="endpoint" {
                option value="*" { "* (all)" }
                @for endpoint in ENDPOINTS { option value=(endpoint.name) { (endpoint.name) } }
                @for (event, _, _) in card_member_protocol::notify::EVENTS { option value=(event) { (event) } }
            }
            select name="kind" {
                @for kind in FaultKind::ALL { option value=(kind.name()) { (kind.name()) } }
            }
            input name="status" placeholder="status (500)" size="6";
            input name="code" placeholder="code (SYSTEM_ERROR)" size="18";
            input name="delay_ms" placeholder="delay ms" size="8";
            input name="count" placeholder="count" size="5";
            input name="every" placeholder="every" size="5";
            button #add type="submit" { "add" }
        }
    };
    page("Faults", "faults", state.simulation, None, body)
}

/// The add form: empty fields are absent.
#[derive(Deserialize)]
pub(crate) struct AddForm {
    csrf: String,
    brand_id: String,
    endpoint: String,
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    delay_ms: String,
    #[serde(default)]
    count: String,
    #[serde(default)]
    every: String,
}

fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<Option<T>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("{name}: {text:?} is not a whole number"))
}

pub(crate) async fn add(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Form(form): Form<AddForm>,
) -> Response {
    if !state.simulation {
        return simulation_off();
    }
    if let Some(refused) = csrf_refusal(&state, &session, &form.csrf) {
        return refused;
    }
    let spec = (|| {
        Ok::<_, String>(FaultSpec {
            brand_id: form.brand_id.trim().to_owned(),
            endpoint: form.endpoint.clone(),
            kind: form.kind.clone(),
            status: number("status", &form.status)?,
            code: Some(form.code.trim().to_owned()).filter(|code| !code.is_empty()),
            delay_ms: number("delay_ms", &form.delay_ms)?,
            count: number("count", &form.count)?,
            every: number("every", &form.every)?,
        })
    })();
    let spec = match spec {
        Ok(spec) => spec,
        Err(why) => return refusal(StatusCode::BAD_REQUEST, &format!("Not added: {why}")),
    };
    match admin::faults::add_fault(&state, &spec).await {
        Ok(_) => Redirect::to("/console/faults").into_response(),
        Err(NotAdded::Refused(why)) => {
            refusal(StatusCode::BAD_REQUEST, &format!("Not added: {why}"))
        }
        Err(NotAdded::Storage(err)) => refusal(StatusCode::SERVICE_UNAVAILABLE, &err.to_string()),
    }
}

#[derive(Deserialize)]
pub(crate) struct ClearForm {
    csrf: String,
}

pub(crate) async fn clear(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
    Form(form): Form<ClearForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&state, &session, &form.csrf) {
        return refused;
    }
    match admin::faults::clear_faults(&state, None, Some(id)).await {
        Ok(_) => Redirect::to("/console/faults").into_response(),
        Err(err) => refusal(StatusCode::SERVICE_UNAVAILABLE, &err.to_string()),
    }
}
