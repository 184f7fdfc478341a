//! The console's pages and forms.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use card_member_protocol::model::CommonFieldFlag;
use card_member_protocol::secret::SecretString;
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;

use super::view::{chart, csrf_field, mask, mask_phone, page, refusal};
use super::{Session, csrf_refusal};
use crate::domain::member::{self, SignUpForm};
use crate::domain::notifications::being_sent;
use crate::domain::user_cards::{base64_decode_sealed, current_state, seal_context};
use crate::records::UserCardKey;
use crate::state::AppState;
use crate::storage::{CardSearch, Counted, NotificationFilter, Resent, StorageError, wire_name};

/// A storage failure, as a page.
fn failed(error: impl std::fmt::Display) -> Response {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("The storage failed: {error}"),
    )
}

pub(crate) async fn overview(State(state): State<Arc<AppState>>) -> Response {
    let hour = state
        .recent
        .last_hour(state.clock.unix_now().div_euclid(60));
    #[allow(clippy::cast_precision_loss)]
    let rates: Vec<f64> = hour.iter().map(|(_, m)| m.requests as f64 / 60.0).collect();
    let p99s: Vec<f64> = hour.iter().map(|(_, m)| m.p99()).collect();
    let requests: u64 = hour.iter().map(|(_, m)| m.requests).sum();
    let refused: u64 = hour.iter().map(|(_, m)| m.rate_limited).sum();
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, minute) in &hour {
        for (code, count) in &minute.errors {
            *errors.entry(code).or_default() += count;
        }
    }
    let counts = match state
        .storage
        .count_notifications(&["PENDING", "FAILED"], DASHBOARD_COUNT_CAP)
        .await
    {
        Ok(counts) => counts,
        Err(err) => return failed(err),
    };
    let count = |wanted: &str| {
        counts
            .iter()
            .find(|(state, _)| state == wanted)
            .map_or(Counted::Exactly(0), |(_, n)| *n)
    };
    let p99_now = p99s
        .iter()
        .rev()
        .find(|p| **p > 0.0)
        .copied()
        .unwrap_or(0.0);
    let body = html! {
        div.cards {
            div.card { "requests, last hour" b #requests-hour { (requests) } }
            div.card { "p99 latency, last minute with traffic" b { (format!("{p99_now:.1} ms")) } }
            div.card { "rate-limit refusals, last hour" b #rate-limited { (refused) } }
            div.card { "notifications waiting" b #backlog { (count("PENDING")) } }
            div.card { "notifications failed" b { (count("FAILED")) } }
        }
        h2 { "Traffic" }
        (chart(&rates, &p99s))
        h2 { "Errors by code, last hour" }
        @if errors.is_empty() {
            p.muted { "None." }
        } @else {
            div.scroll { table {
                tr { th { "code" } th { "count" } }
                @for (code, n) in &errors { tr { td { (code) } td { (n) } } }
            } }
        }
    };
    page("Overview", "overview", state.simulation, Some(10), body)
}

pub(crate) async fn brands(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Response {
    let brands = match state.storage.list_brands().await {
        Ok(brands) => brands,
        Err(err) => return failed(err),
    };
    let csrf = state.console.csrf(&session.0);
    let body = html! {
        div.scroll { table #brands {
            tr { th { "brand" } th { "certificate serials" } th { "WeChat Pay public key ID" } th { "APIv3 key" } th { "state" } th {} }
            @for brand in &brands {
                tr {
                    td { (brand.brand_id) }
                    td { @for certificate in &brand.certificates { (certificate.serial_no) br; } }
                    td { (brand.wechatpay_public_key_id) }
                    td { @if brand.api_v3_key.is_some() { "set" } @else { span.muted { "not set" } } }
                    td { @if brand.suspended { span.bad { "suspended" } } @else { span.ok { "active" } } }
                    td {
                        @let action = if brand.suspended { "resume" } else { "suspend" };
                        form.inline method="post" action=(format!("/console/brands/{}/{action}", brand.brand_id)) {
                            (csrf_field(&csrf))
                            button type="submit" name="do" value=(action) id=(format!("{action}-{}", brand.brand_id)) { (action) }
                        }
                    }
                }
            }
        } }
        p.muted { "The APIv3 key is never shown; set it with card-member brands set-api-v3-key." }
    };
    page("Brands", "brands", state.simulation, None, body)
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    csrf: String,
}

pub(crate) async fn brand_action(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path((brand_id, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&state, &session, &form.csrf) {
        return refused;
    }
    let suspended = match action.as_str() {
        "suspend" => true,
        "resume" => false,
        _ => return refusal(StatusCode::NOT_FOUND, "No such action."),
    };
    match state
        .storage
        .set_brand_suspended(&brand_id, suspended)
        .await
    {
        Ok(()) => Redirect::to("/console/brands").into_response(),
        Err(err) => failed(err),
    }
}

#[derive(Deserialize)]
pub(crate) struct TemplatesQuery {
    brand: Option<String>,
    state: Option<String>,
}

pub(crate) async fn templates(
    State(state): State<Arc<AppState>>,
    Query(query): Query<TemplatesQuery>,
) -> Response {
    let brand_ids = match state.storage.brand_ids().await {
        Ok(ids) => ids,
        Err(err) => return failed(err),
    };
    let brand = query
        .brand
        .filter(|b| brand_ids.contains(b))
        .or_else(|| brand_ids.first().cloned())
        .unwrap_or_default();
    let filter = query
        .state
        .filter(|s| s == "CARD_EFFECTIVE" || s == "CARD_INVALID");
    let (cards, total) = match state
        .storage
        .list_cards(&brand, filter.as_deref(), 0, 100)
        .await
    {
        Ok(found) => found,
        Err(err) => return failed(err),
    };
    let body = html! {
        form.stack method="get" {
            label { "brand " select name="brand" { @for id in &brand_ids { option value=(id) selected[*id == brand] { (id) } } } }
            label { "state " select name="state" {
                option value="" { "any" }
                @for s in ["CARD_EFFECTIVE", "CARD_INVALID"] { option value=(s) selected[filter.as_deref() == Some(s)] { (s) } }
            } }
            button type="submit" { "filter" }
        }
        p.muted { (total) " templates (the newest 100 shown)" }
        div.scroll { table #templates {
            tr { th { "card_id" } th { "title" } th { "state" } th { "code" } th { "validity" } th { "created" } }
            @for card in &cards {
                tr {
                    td { a href=(format!("/console/templates/{}/{}", card.brand_id, card.card_id)) { (card.card_id) } }
                    td { (card.definition.card_title) }
                    td { (wire_name(&card.state)) }
                    td { (wire_name(&card.definition.code_mode)) }
                    td { (wire_name(&card.definition.valid_date_information.date_type)) }
                    td { (card.create_time) }
                }
            }
        } }
    };
    page("Templates", "templates", state.simulation, None, body)
}

pub(crate) async fn template(
    State(state): State<Arc<AppState>>,
    Path((brand_id, card_id)): Path<(String, String)>,
) -> Response {
    let template = match state.storage.card(&brand_id, &card_id).await {
        Ok(Some(record)) => record.card,
        Ok(None) => return refusal(StatusCode::NOT_FOUND, "No such template."),
        Err(err) => return failed(err),
    };
    let search = CardSearch {
        brand_id: Some(brand_id.clone()),
        card_id: Some(card_id.clone()),
        limit: 50,
        ..CardSearch::default()
    };
    let (cards, total) = match state.storage.search_user_cards(&search).await {
        Ok(found) => found,
        Err(err) => return failed(err),
    };
    let now = state.now_for(&brand_id);
    let body = html! {
        p { "brand " (brand_id) " · " (wire_name(&template.state)) " · created " (template.create_time) }
        h2 { "Fields" }
        pre { (serde_json::to_string_pretty(&template.definition).unwrap_or_default()) }
        h2 { "Cards (" (total) ", the newest 50)" }
        (card_table(&cards, |_| now))
    };
    page(
        &format!("Template {}", template.definition.card_title),
        "templates",
        state.simulation,
        None,
        body,
    )
}

/// Cards as a table; each card's state is read at its brand's time
/// (`now_for`: the real clock, or the brand's simulated one), as its own
/// page and the API read it.
fn card_table(
    cards: &[crate::records::UserCardRecord],
    now_for: impl Fn(&str) -> OffsetDateTime,
) -> Markup {
    html! {
        div.scroll { table.user-cards {
            tr { th { "code" } th { "template" } th { "openid" } th { "state" } th { "level" } th { "created" } }
            @for card in cards {
                tr {
                    td { a href=(format!("/console/cards/{}/{}/{}", card.brand_id, card.card_id, card.user_card_code)) { (card.user_card_code) } }
                    td { (card.card_id) }
                    td { (card.openid) }
                    td { (wire_name(&current_state(card, now_for(&card.brand_id)))) }
                    td { (card.level.clone().unwrap_or_default()) }
                    td { (card.create_time) }
                }
            }
        } }
    }
}

#[derive(Deserialize)]
pub(crate) struct CardsQuery {
    q: Option<String>,
    state: Option<String>,
    page: Option<i64>,
}

/// How far the dashboard counts the notifications waiting and failed
/// ("100000+" beyond): each refresh reads at most this many entries of the
/// outbox's index, however large a backlog.
const DASHBOARD_COUNT_CAP: i64 = 100_000;

/// Cards per page.
const PAGE: i64 = 20;

pub(crate) async fn cards(
    State(state): State<Arc<AppState>>,
    Query(query): Query<CardsQuery>,
) -> Response {
    let q = query.q.unwrap_or_default().trim().to_owned();
    let stored_state = query
        .state
        .filter(|s| ["UNACTIVATED", "EFFECTIVE", "INVALID"].contains(&s.as_str()));
    let page_number = query.page.unwrap_or(0).max(0);
    let mut search = CardSearch {
        state: stored_state.clone(),
        offset: page_number * PAGE,
        limit: PAGE,
        ..CardSearch::default()
    };
    // A code first; nothing by that code, an openid.
    let mut found = (Vec::new(), Counted::Exactly(0));
    if q.is_empty() {
        found = match state.storage.search_user_cards(&search).await {
            Ok(found) => found,
            Err(err) => return failed(err),
        };
    } else {
        for by_openid in [false, true] {
            search.user_card_code = (!by_openid).then(|| q.clone());
            search.openid = by_openid.then(|| q.clone());
            found = match state.storage.search_user_cards(&search).await {
                Ok(found) => found,
                Err(err) => return failed(err),
            };
            if found.1.more_than(0) {
                break;
            }
        }
    }
    let (cards, total) = found;
    let link = |p: i64| {
        format!(
            "/console/cards?q={}&state={}&page={p}",
            card_member_protocol::endpoints::encode_component(&q),
            stored_state.clone().unwrap_or_default()
        )
    };
    let body = html! {
        form.stack method="get" {
            input type="search" name="q" value=(q) placeholder="card code or openid" id="card-search";
            select name="state" {
                option value="" { "any state" }
                @for s in ["UNACTIVATED", "EFFECTIVE", "INVALID"] { option value=(s) selected[stored_state.as_deref() == Some(s)] { (s) } }
            }
            button type="submit" id="search" { "search" }
        }
        p.muted { (total) " cards · page " (page_number + 1) " · the state filter is the stored state; EXPIRED is shown as read now" }
        (card_table(&cards, |brand| state.now_for(brand)))
        p {
            @if page_number > 0 { a href=(link(page_number - 1)) { "← newer" } " " }
            @if total.more_than((page_number + 1) * PAGE) { a href=(link(page_number + 1)) { "older →" } }
        }
    };
    page("User cards", "user cards", state.simulation, None, body)
}

pub(crate) async fn card(
    State(state): State<Arc<AppState>>,
    Path((brand_id, card_id, code)): Path<(String, String, String)>,
) -> Response {
    let key = UserCardKey {
        brand_id: &brand_id,
        card_id: &card_id,
        user_card_code: &code,
    };
    let card = match state.storage.user_card(key).await {
        Ok(Some(card)) => card,
        Ok(None) => return refusal(StatusCode::NOT_FOUND, "No such card."),
        Err(err) => return failed(err),
    };
    let trail = match state.storage.audit_trail(key).await {
        Ok(trail) => trail,
        Err(err) => return failed(err),
    };
    let filter = NotificationFilter {
        brand_id: Some(brand_id.clone()),
        card_id: Some(card_id.clone()),
        user_card_code: Some(code.clone()),
    };
    let notifications = match state.storage.list_notifications(&filter, 50).await {
        Ok(list) => list,
        Err(err) => return failed(err),
    };
    let open = |field: &str, sealed: &[u8]| {
        state
            .crypto
            .open(seal_context(key, field), sealed)
            .map(|value| value.expose().to_owned())
            .unwrap_or_default()
    };
    let phone = card
        .phone_number
        .as_deref()
        .map(|sealed| mask_phone(&open("phone_number", sealed)));
    let common: Vec<(String, String)> = card
        .user_information
        .iter()
        .flat_map(|info| info.common_field_list.iter().flatten())
        .map(|field| {
            let sealed = base64_decode_sealed(&field.sealed).unwrap_or_default();
            (
                field.name.as_str().to_owned(),
                mask(&open(field.name.as_str(), &sealed)),
            )
        })
        .collect();
    let now = state.now_for(&brand_id);
    let body = html! {
        div.scroll { table.kv #card-fields {
            tr { th { "brand" } td { (card.brand_id) } }
            tr { th { "template" } td { a href=(format!("/console/templates/{brand_id}/{card_id}")) { (card.card_id) } } }
            tr { th { "openid" } td { (card.openid) } }
            tr { th { "state" } td #card-state { (wire_name(&current_state(&card, now))) } }
            tr { th { "phone_number" } td #phone { (phone.unwrap_or_default()) } }
            @for (name, value) in &common { tr { th { (name) } td { (value) } } }
            tr { th { "level" } td { (card.level.clone().unwrap_or_default()) } }
            tr { th { "validity" } td { (serde_json::to_string(&card.valid_date_information).unwrap_or_default()) } }
            tr { th { "pickup_time" } td { (card.pickup_time) } }
            tr { th { "invalid_reason" } td { (card.invalid_reason.clone().unwrap_or_default()) } }
            tr { th { "modified" } td { (card.modify_time) " (version " (card.version) ")" } }
        } }
        p.muted { "Personal data is shown masked." }
        h2 { "How it got here" }
        div.scroll { table #audit {
            tr { th { "when" } th { "what" } th { "fields" } th { "Request-ID" } }
            @for entry in &trail { tr { td { (entry.at) } td { (entry.action) } td { (entry.fields.join(", ")) } td { (entry.request_id) } } }
        } }
        h2 { "Its notifications" }
        (notification_table(&notifications))
    };
    page(
        &format!("Card {code}"),
        "user cards",
        state.simulation,
        None,
        body,
    )
}

fn notification_table(list: &[crate::records::OutboxRecord]) -> Markup {
    html! {
        div.scroll { table.notifications {
            tr { th { "id" } th { "event" } th { "brand" } th { "card" } th { "state" } th { "attempts" } th { "created" } th { "last error" } }
            @for n in list {
                tr {
                    td { a href=(format!("/console/notifications/{}", n.id)) { (n.id) } }
                    td { (n.event_type) }
                    td { (n.brand_id) }
                    td { (n.user_card_code) }
                    td class=(match n.state.as_str() { "DELIVERED" => "ok", "FAILED" => "bad", _ => "" }) { (n.state) }
                    td { (n.attempts) }
                    td { (n.create_time) }
                    td { (n.last_error.clone().unwrap_or_default()) }
                }
            }
        } }
    }
}

pub(crate) async fn notifications(State(state): State<Arc<AppState>>) -> Response {
    let list = match state
        .storage
        .list_notifications(&NotificationFilter::default(), 100)
        .await
    {
        Ok(list) => list,
        Err(err) => return failed(err),
    };
    let body = html! {
        p.muted { "The newest 100. A notification is retried with the same id on the provider's schedule; its content is never shown." }
        (notification_table(&list))
    };
    page(
        "Notifications",
        "notifications",
        state.simulation,
        Some(10),
        body,
    )
}

pub(crate) async fn notification(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let (record, attempts) = match state.storage.notification(&id).await {
        Ok(Some(found)) => found,
        Ok(None) => return refusal(StatusCode::NOT_FOUND, "No such notification."),
        Err(err) => return failed(err),
    };
    let csrf = state.console.csrf(&session.0);
    let body = html! {
        p { (record.event_type) " · brand " (record.brand_id) " · card " (record.user_card_code) " · " strong #notification-state { (record.state) } }
        form.inline method="post" action=(format!("/console/notifications/{id}/resend")) {
            (csrf_field(&csrf))
            button type="submit" id="resend" { "send again (same id)" }
        }
        h2 { "Attempts" }
        div.scroll { table #attempts {
            tr { th { "#" } th { "when" } th { "receiver's status" } th { "ms" } th { "error" } }
            @for a in &attempts {
                tr {
                    td { (a.attempt) }
                    td { (a.at) }
                    td class=(if a.status.is_some_and(|s| (200..300).contains(&s)) { "ok" } else { "bad" }) {
                        (a.status.map_or_else(|| "-".to_owned(), |s| s.to_string()))
                    }
                    td { (a.latency_ms) }
                    td { (a.error.clone().unwrap_or_default()) }
                }
            }
        } }
    };
    page(
        &format!("Notification {id}"),
        "notifications",
        state.simulation,
        Some(5),
        body,
    )
}

pub(crate) async fn resend(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&state, &session, &form.csrf) {
        return refused;
    }
    let now = state.clock.unix_now();
    match state.storage.resend_notification(&id, now).await {
        Ok(Resent::Due) => {
            state.outbox.wake();
            Redirect::to(&format!("/console/notifications/{id}")).into_response()
        }
        Ok(Resent::InFlight { until }) => {
            refusal(StatusCode::CONFLICT, &being_sent(&id, until, now))
        }
        Err(StorageError::NotFound) => refusal(StatusCode::NOT_FOUND, "No such notification."),
        Err(err) => failed(err),
    }
}

fn simulator_page(
    state: &AppState,
    session: &Session,
    message: Option<Result<String, String>>,
) -> Response {
    let csrf = state.console.csrf(&session.0);
    let card_fields = html! {
        input name="brand_id" placeholder="brand_id" required;
        input name="card_id" placeholder="card_id" required;
        input name="user_card_code" placeholder="user_card_code" required;
        input name="openid" placeholder="openid" required;
    };
    let body = html! {
        @if let Some(message) = &message {
            @match message {
                Ok(text) => p.ok #result { (text) },
                Err(text) => p.bad #result { (text) },
            }
        }
        h2 { "Sign up with a token" }
        form.stack method="post" action="/console/simulator/sign-up" {
            (csrf_field(&csrf))
            input name="token" placeholder="pre-authorization token" required id="sign-up-token";
            @for flag in CommonFieldFlag::ALL {
                input name=(flag.as_str()) placeholder=(flag.as_str());
            }
            input name="choices" placeholder="choices, comma-separated";
            button type="submit" id="sign-up" { "sign up" }
        }
        p.muted { "Fill exactly the platform fields the template's form asks for." }
        h2 { "Delete a card" }
        form.stack method="post" action="/console/simulator/delete-card" { (csrf_field(&csrf)) (card_fields) button type="submit" { "delete" } }
        h2 { "Ask for the points balance" }
        form.stack method="post" action="/console/simulator/ask-points" { (csrf_field(&csrf)) (card_fields) button type="submit" { "ask" } }
        h2 { "Trade points for a coupon" }
        form.stack method="post" action="/console/simulator/exchange-points" {
            (csrf_field(&csrf)) (card_fields)
            input name="exchange_coupon_template_id" placeholder="exchange template" value="EXT-DEV-1";
            input name="points" type="number" value="100" min="1";
            button type="submit" { "trade" }
        }
        h2 { "Move a brand's clock forward" }
        form.stack method="post" action="/console/simulator/advance-clock" {
            (csrf_field(&csrf))
            input name="brand_id" placeholder="brand_id" required;
            input name="days" type="number" value="1" min="0";
            button type="submit" { "advance" }
        }
    };
    page("Simulator", "simulator", state.simulation, None, body)
}

pub(crate) async fn simulator(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Response {
    if !state.simulation {
        return refusal(
            StatusCode::NOT_FOUND,
            "The simulation is off (setting simulation).",
        );
    }
    simulator_page(&state, &session, None)
}

pub(crate) async fn simulate(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(action): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !state.simulation {
        return refusal(
            StatusCode::NOT_FOUND,
            "The simulation is off (setting simulation).",
        );
    }
    if let Some(refused) = csrf_refusal(
        &state,
        &session,
        form.get("csrf").map_or("", String::as_str),
    ) {
        return refused;
    }
    let field = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let key_parts = (field("brand_id"), field("card_id"), field("user_card_code"));
    let key = UserCardKey {
        brand_id: &key_parts.0,
        card_id: &key_parts.1,
        user_card_code: &key_parts.2,
    };
    let outcome: Result<String, String> = match action.as_str() {
        "sign-up" => {
            let common_fields = CommonFieldFlag::ALL
                .into_iter()
                .filter_map(|flag| {
                    let value = field(flag.as_str());
                    (!value.is_empty()).then(|| (flag, SecretString::new(value)))
                })
                .collect();
            let choices: Vec<String> = field("choices")
                .split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            let form = SignUpForm {
                common_fields,
                custom_choices: (!choices.is_empty()).then_some(choices),
            };
            member::sign_up(&state, &field("token"), form)
                .await
                .map(|card| {
                    format!(
                        "Signed up: card {} of {} ({}), UNACTIVATED until the brand confirms.",
                        card.user_card_code, card.card_id, card.openid
                    )
                })
                .map_err(|err| err.0)
        }
        "delete-card" => member::delete_card(&state, key, &field("openid"))
            .await
            .map(|card| {
                format!(
                    "Deleted: card {} is {}.",
                    card.user_card_code,
                    wire_name(&card.state)
                )
            })
            .map_err(|err| err.0),
        "ask-points" => member::ask_points(&state, key, &field("openid"))
            .await
            .map(|id| format!("Asked the brand for the balance: notification {id}."))
            .map_err(|err| err.0),
        "exchange-points" => {
            let points = field("points").parse().unwrap_or(0);
            member::request_point_exchange(
                &state,
                key,
                &field("openid"),
                &field("exchange_coupon_template_id"),
                points,
            )
            .await
            .map(|record| format!("Requested: record {record}; the brand allows or rejects it."))
            .map_err(|err| err.0)
        }
        "advance-clock" => {
            let days: i64 = field("days").parse().unwrap_or(0);
            member::advance_clock(&state, &field("brand_id"), days.saturating_mul(86_400))
                .await
                .map(|offset| {
                    format!(
                        "The clock of brand {} is {} days ahead.",
                        field("brand_id"),
                        offset / 86_400
                    )
                })
                .map_err(|err| err.0)
        }
        _ => return refusal(StatusCode::NOT_FOUND, "No such action."),
    };
    simulator_page(&state, &session, Some(outcome))
}
