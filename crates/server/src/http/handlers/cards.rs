//! Card templates (FAMILY.md #1–5): create, list, read, change, invalidate.

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::media::sha256_hex;
use card_member_protocol::model::{
    Card, CardState, CardType, CreateCardRequest, ListQuery, Page, UpdateCardRequest,
};
use time::OffsetDateTime;

use super::{query_params, refuse_body};
use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::state::AppState;
use crate::storage::StorageError;

/// A template ID like the provider's: `p` and 27 characters of `0-9a-zA-Z`.
fn new_card_id() -> String {
    let nonce = crate::crypto::random_nonce();
    format!("p{}", &nonce[..27])
}

fn now_text() -> String {
    format_rfc3339_millis(OffsetDateTime::now_utc(), CHINA_STANDARD_TIME)
}

fn path_card_id(card_id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    super::path_id(card_id, "card_id")
}

fn card_error(error: StorageError) -> ApiError {
    match error {
        StorageError::NotFound => ApiError::template_not_found(),
        StorageError::TemplateInvalid => ApiError::template_not_changeable(),
        other => other.into(),
    }
}

pub(crate) async fn create_card(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
) -> Result<Response, ApiError> {
    let request = CreateCardRequest::from_body(&auth.body).map_err(|v| ApiError::violation(&v))?;
    if request.card_type != CardType::Normal {
        return Err(ApiError::unsupported_card_type());
    }
    // The request as parsed: the same fields in another order or spacing
    // are the same request.
    let digest = sha256_hex(&serde_json::to_vec(&request).expect("requests serialise"));
    let now = now_text();
    let card = Card {
        card_id: new_card_id(),
        brand_id: auth.brand_id.clone(),
        definition: request,
        state: CardState::CardEffective,
        create_time: now.clone(),
        modify_time: now,
    };
    let record = state
        .storage
        .create_card(&card, &digest)
        .await
        .map_err(|err| match err {
            StorageError::OutRequestNoReused => ApiError::out_request_no_reused(),
            other => other.into(),
        })?;
    Ok(super::json_ok(&record.card))
}

pub(crate) async fn get_card(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    card_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let card_id = path_card_id(card_id)?;
    let record = state
        .storage
        .card(&auth.brand_id, &card_id)
        .await?
        .ok_or_else(ApiError::template_not_found)?;
    Ok(super::json_ok(&record.card))
}

pub(crate) async fn list_cards(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let pairs = query_params(&uri, &["state", "offset", "limit"])?;
    let query = ListQuery::from_pairs(&pairs, "state", &["CARD_EFFECTIVE", "CARD_INVALID"])
        .map_err(|v| ApiError::violation(&v))?;
    let (data, total_count) = state
        .storage
        .list_cards(
            &auth.brand_id,
            query.state.as_deref(),
            query.offset,
            query.limit,
        )
        .await?;
    Ok(super::json_ok(&Page {
        data,
        total_count,
        offset: query.offset,
        limit: query.limit,
    }))
}

pub(crate) async fn update_card(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    card_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let card_id = path_card_id(card_id)?;
    let request = UpdateCardRequest::from_request_parts(&card_id, &auth.body)
        .map_err(|v| ApiError::violation(&v))?;
    let now = now_text();
    let card = state
        .storage
        .change_card(
            &auth.brand_id,
            &card_id,
            Box::new(move |card| {
                if card.state == CardState::CardInvalid {
                    return Err(StorageError::TemplateInvalid);
                }
                if request.field_names().is_empty() {
                    return Ok(false);
                }
                request.apply(&mut card.definition);
                card.modify_time = now;
                Ok(true)
            }),
        )
        .await
        .map_err(card_error)?;
    Ok(super::json_ok(&card))
}

/// Invalidating is final and answers the template; a template already
/// invalid is answered as it is (**Decision**: idempotent, like the user
/// card's invalidation).
pub(crate) async fn invalidate_card(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    card_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let card_id = path_card_id(card_id)?;
    refuse_body(&auth.body)?;
    let now = now_text();
    let card = state
        .storage
        .change_card(
            &auth.brand_id,
            &card_id,
            Box::new(move |card| {
                if card.state == CardState::CardInvalid {
                    return Ok(false);
                }
                card.state = CardState::CardInvalid;
                card.modify_time = now;
                Ok(true)
            }),
        )
        .await
        .map_err(card_error)?;
    Ok(super::json_ok(&card))
}
