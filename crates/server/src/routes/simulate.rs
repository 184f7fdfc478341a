//! The member's side, simulated (`/simulate/…`): a person acts as a
//! WeChat user, and the server does what the provider would, notifications
//! included. Unauthenticated, so answered only when `simulation` is on
//! (404 otherwise) and only to loopback clients (403 otherwise). JSON in
//! and out; a refusal is 400 with `INVALID_REQUEST` and a message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use card_member_protocol::model::CommonFieldFlag;
use card_member_protocol::secret::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::member::{self, MemberError, SignUpForm};
use crate::storage::{Storage, UserCardKey, wire_name};

/// Refuses the simulation where it is off or the client is not local.
fn allowed(state: &AppState, peer: Option<SocketAddr>) -> Result<(), Refusal> {
    allowed_for(state.simulation, peer)
}

fn allowed_for(simulation: bool, peer: Option<SocketAddr>) -> Result<(), Refusal> {
    if !simulation {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "the simulation is off (setting simulation = true)",
        ));
    }
    if !peer.is_some_and(|peer| peer.ip().is_loopback()) {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "NO_AUTH",
            "the simulation answers loopback clients only",
        ));
    }
    Ok(())
}

/// A refusal: its status, code and message.
#[derive(Debug)]
pub(crate) struct Refusal(StatusCode, &'static str, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"code": self.1, "message": self.2}))).into_response()
    }
}

fn refusal(status: StatusCode, code: &'static str, message: &str) -> Refusal {
    Refusal(status, code, message.to_owned())
}

fn refused(error: MemberError) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, "INVALID_REQUEST", error.0)
}

/// The client's address, which the accept loop puts on every request.
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn peer(info: Peer) -> Option<SocketAddr> {
    info.map(|Extension(ConnectInfo(address))| address)
}

/// A body that does not parse is a refusal naming what is wrong.
fn body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(raw).map_err(|err| {
        refusal(
            StatusCode::BAD_REQUEST,
            "PARAM_ERROR",
            &format!("the body does not match: {err}"),
        )
    })
}

/// A card the member acts on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardRef {
    brand_id: String,
    card_id: String,
    user_card_code: String,
    openid: String,
}

impl CardRef {
    fn key(&self) -> UserCardKey<'_> {
        UserCardKey {
            brand_id: &self.brand_id,
            card_id: &self.card_id,
            user_card_code: &self.user_card_code,
        }
    }
}

/// `GET /simulate/tokens/{token}`: what the membership component shows for
/// a token: the template's title and form.
pub(crate) async fn open_token(
    State(state): State<Arc<AppState>>,
    info: Peer,
    Path(token): Path<String>,
) -> Response {
    if let Err(refused) = allowed(&state, peer(info)) {
        return refused.into_response();
    }
    let record = match state.storage.token(&token).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return refused(MemberError(
                "the pre-authorization token does not exist".into(),
            ))
            .into_response();
        }
        Err(err) => return refused(MemberError(err.to_string())).into_response(),
    };
    let template = match state.storage.card(&record.brand_id, &record.card_id).await {
        Ok(Some(template)) => template.card,
        _ => {
            return refused(MemberError("the card template does not exist".into())).into_response();
        }
    };
    Json(json!({
        "brand_id": record.brand_id,
        "card_id": record.card_id,
        "openid": record.openid,
        "used": record.used_at.is_some(),
        "expired": record.expires_at <= state.now_for(&record.brand_id).unix_timestamp(),
        "card_title": template.definition.card_title,
        "user_information": template.definition.user_information,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUpBody {
    token: String,
    /// Platform fields by name (`USER_FORM_FLAG_NAME`), plaintext values.
    #[serde(default)]
    common_fields: BTreeMap<String, String>,
    #[serde(default)]
    custom_choices: Option<Vec<String>>,
}

/// `POST /simulate/sign-up`: the user fills the form and agrees.
pub(crate) async fn sign_up(
    State(state): State<Arc<AppState>>,
    info: Peer,
    raw: axum::body::Bytes,
) -> Response {
    if let Err(refused) = allowed(&state, peer(info)) {
        return refused.into_response();
    }
    let body: SignUpBody = match body(&raw) {
        Ok(body) => body,
        Err(refused) => return refused.into_response(),
    };
    let mut common_fields = Vec::new();
    for (name, value) in body.common_fields {
        let Some(flag) = CommonFieldFlag::from_wire(&name) else {
            return refused(MemberError(format!("{name} is not a platform field"))).into_response();
        };
        common_fields.push((flag, SecretString::new(value)));
    }
    let form = SignUpForm {
        common_fields,
        custom_choices: body.custom_choices,
    };
    match member::sign_up(&state, &body.token, form).await {
        Ok(card) => Json(json!({
            "brand_id": card.brand_id,
            "card_id": card.card_id,
            "user_card_code": card.user_card_code,
            "openid": card.openid,
            "user_card_state": wire_name(&card.state),
        }))
        .into_response(),
        Err(error) => refused(error).into_response(),
    }
}

/// `POST /simulate/delete-card`: the user deletes the card in the app.
pub(crate) async fn delete_card(
    State(state): State<Arc<AppState>>,
    info: Peer,
    raw: axum::body::Bytes,
) -> Response {
    if let Err(refused) = allowed(&state, peer(info)) {
        return refused.into_response();
    }
    let card: CardRef = match body(&raw) {
        Ok(card) => card,
        Err(refused) => return refused.into_response(),
    };
    match member::delete_card(&state, card.key(), &card.openid).await {
        Ok(record) => Json(json!({
            "user_card_code": record.user_card_code,
            "user_card_state": wire_name(&record.state),
            "invalid_reason": record.invalid_reason,
        }))
        .into_response(),
        Err(error) => refused(error).into_response(),
    }
}

/// `POST /simulate/ask-points`: the provider asks the brand for the
/// member's balance.
pub(crate) async fn ask_points(
    State(state): State<Arc<AppState>>,
    info: Peer,
    raw: axum::body::Bytes,
) -> Response {
    if let Err(refused) = allowed(&state, peer(info)) {
        return refused.into_response();
    }
    let card: CardRef = match body(&raw) {
        Ok(card) => card,
        Err(refused) => return refused.into_response(),
    };
    match member::ask_points(&state, card.key(), &card.openid).await {
        Ok(id) => Json(json!({"notification_id": id})).into_response(),
        Err(error) => refused(error).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeBody {
    brand_id: String,
    card_id: String,
    user_card_code: String,
    openid: String,
    exchange_coupon_template_id: String,
    deduct_points: i64,
}

/// `POST /simulate/exchange-points`: the member trades points for a
/// coupon; the brand decides with endpoint 15.
pub(crate) async fn exchange_points(
    State(state): State<Arc<AppState>>,
    info: Peer,
    raw: axum::body::Bytes,
) -> Response {
    if let Err(refused) = allowed(&state, peer(info)) {
        return refused.into_response();
    }
    let request: ExchangeBody = match body(&raw) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    let card = CardRef {
        brand_id: request.brand_id,
        card_id: request.card_id,
        user_card_code: request.user_card_code,
        openid: request.openid,
    };
    match member::request_point_exchange(
        &state,
        card.key(),
        &card.openid,
        &request.exchange_coupon_template_id,
        request.deduct_points,
    )
    .await
    {
        Ok(record_id) => Json(json!({"record_id": record_id})).into_response(),
        Err(error) => refused(error).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    brand_id: String,
    #[serde(default)]
    days: i64,
    #[serde(default)]
    seconds: i64,
}

/// `POST /simulate/advance-clock`: one brand's clock moves forward.
pub(crate) async fn advance_clock(
    State(state): State<Arc<AppState>>,
    info: Peer,
    raw: axum::body::Bytes,
) -> Response {
    if let Err(refused) = allowed(&state, peer(info)) {
        return refused.into_response();
    }
    let request: ClockBody = match body(&raw) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    let seconds = request
        .days
        .saturating_mul(86_400)
        .saturating_add(request.seconds);
    match member::advance_clock(&state, &request.brand_id, seconds).await {
        Ok(offset) => Json(json!({
            "brand_id": request.brand_id,
            "offset_secs": offset,
            "now": card_member_protocol::datetime::format_rfc3339_millis(
                state.now_for(&request.brand_id),
                card_member_protocol::datetime::CHINA_STANDARD_TIME,
            ),
        }))
        .into_response(),
        Err(error) => refused(error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_clients_may_simulate_and_only_when_it_is_on() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert!(allowed_for(true, Some(local)).is_ok());
        assert!(allowed_for(true, Some(local6)).is_ok());
        assert_eq!(
            allowed_for(true, Some(remote)).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            allowed_for(true, None).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            allowed_for(false, Some(local)).unwrap_err().0,
            StatusCode::NOT_FOUND
        );
    }
}
