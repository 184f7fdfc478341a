//! The member's side, simulated (`/simulate/…`): a person acts as a
//! WeChat user, and the server does what the provider would, notifications
//! included. Unauthenticated, so answered only when `simulation` is on
//! (404 otherwise) and only to loopback clients (403 otherwise). JSON in
//! and out; a refusal is 400 with `INVALID_REQUEST` and a message.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use card_member_protocol::model::CommonFieldFlag;
use card_member_protocol::secret::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::local::{Client, Refusal, local_only, refusal};
use crate::domain::member::{self, MemberError, SignUpForm};
use crate::records::UserCardKey;
use crate::state::AppState;
use crate::storage::wire_name;

/// Refuses the simulation where it is off or the client is not local.
fn allowed(state: &AppState, peer: Client) -> Result<(), Refusal> {
    local_only(state.simulation, "the simulation", "simulation", peer)
}

fn refused(error: MemberError) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, "INVALID_REQUEST", error.0)
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

/// What a simulation endpoint answers: its JSON, or a refusal.
type Answer = Result<Json<Value>, Refusal>;

/// A simulation request's body, once the caller may simulate.
fn admitted<T: serde::de::DeserializeOwned>(
    state: &AppState,
    client: Client,
    raw: &[u8],
) -> Result<T, Refusal> {
    allowed(state, client)?;
    body(raw)
}

/// `GET /simulate/tokens/{token}`: what the membership component shows for
/// a token: the template's title and form.
pub(crate) async fn open_token(
    State(state): State<Arc<AppState>>,
    client: Client,
    Path(token): Path<String>,
) -> Answer {
    allowed(&state, client)?;
    let record = state
        .storage
        .token(&token)
        .await
        .map_err(|err| refused(MemberError(err.to_string())))?
        .ok_or_else(|| {
            refused(MemberError(
                "the pre-authorization token does not exist".into(),
            ))
        })?;
    let template = match state.storage.card(&record.brand_id, &record.card_id).await {
        Ok(Some(template)) => template.card,
        _ => {
            return Err(refused(MemberError(
                "the card template does not exist".into(),
            )));
        }
    };
    Ok(Json(json!({
        "brand_id": record.brand_id,
        "card_id": record.card_id,
        "openid": record.openid,
        "used": record.used_at.is_some(),
        "expired": record.expires_at <= state.now_for(&record.brand_id).unix_timestamp(),
        "card_title": template.definition.card_title,
        "user_information": template.definition.user_information,
    })))
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
    client: Client,
    raw: axum::body::Bytes,
) -> Answer {
    let body: SignUpBody = admitted(&state, client, &raw)?;
    let mut common_fields = Vec::new();
    for (name, value) in body.common_fields {
        let flag = CommonFieldFlag::from_wire(&name)
            .ok_or_else(|| refused(MemberError(format!("{name} is not a platform field"))))?;
        common_fields.push((flag, SecretString::new(value)));
    }
    let form = SignUpForm {
        common_fields,
        custom_choices: body.custom_choices,
    };
    let card = member::sign_up(&state, &body.token, form)
        .await
        .map_err(refused)?;
    Ok(Json(json!({
        "brand_id": card.brand_id,
        "card_id": card.card_id,
        "user_card_code": card.user_card_code,
        "openid": card.openid,
        "user_card_state": wire_name(&card.state),
    })))
}

/// `POST /simulate/delete-card`: the user deletes the card in the app.
pub(crate) async fn delete_card(
    State(state): State<Arc<AppState>>,
    client: Client,
    raw: axum::body::Bytes,
) -> Answer {
    let card: CardRef = admitted(&state, client, &raw)?;
    let record = member::delete_card(&state, card.key(), &card.openid)
        .await
        .map_err(refused)?;
    Ok(Json(json!({
        "user_card_code": record.user_card_code,
        "user_card_state": wire_name(&record.state),
        "invalid_reason": record.invalid_reason,
    })))
}

/// `POST /simulate/ask-points`: the provider asks the brand for the
/// member's balance.
pub(crate) async fn ask_points(
    State(state): State<Arc<AppState>>,
    client: Client,
    raw: axum::body::Bytes,
) -> Answer {
    let card: CardRef = admitted(&state, client, &raw)?;
    let id = member::ask_points(&state, card.key(), &card.openid)
        .await
        .map_err(refused)?;
    Ok(Json(json!({"notification_id": id})))
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
    client: Client,
    raw: axum::body::Bytes,
) -> Answer {
    let request: ExchangeBody = admitted(&state, client, &raw)?;
    let key = UserCardKey {
        brand_id: &request.brand_id,
        card_id: &request.card_id,
        user_card_code: &request.user_card_code,
    };
    let record_id = member::request_point_exchange(
        &state,
        key,
        &request.openid,
        &request.exchange_coupon_template_id,
        request.deduct_points,
    )
    .await
    .map_err(refused)?;
    Ok(Json(json!({"record_id": record_id})))
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
    client: Client,
    raw: axum::body::Bytes,
) -> Answer {
    let request: ClockBody = admitted(&state, client, &raw)?;
    let seconds = request
        .days
        .saturating_mul(86_400)
        .saturating_add(request.seconds);
    let offset = member::advance_clock(&state, &request.brand_id, seconds)
        .await
        .map_err(refused)?;
    Ok(Json(json!({
        "brand_id": request.brand_id,
        "offset_secs": offset,
        "now": card_member_protocol::datetime::format_rfc3339_millis(
            state.now_for(&request.brand_id),
            card_member_protocol::datetime::CHINA_STANDARD_TIME,
        ),
    })))
}
