//! Card templates: `POST /brand/card-member/cards` and
//! `GET /brand/card-member/cards/{card_id}`.

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::model::{Card, CardState, CardType, CodeMode, CreateCardRequest};
use time::OffsetDateTime;

use crate::app::{AppState, storage_error};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::storage::{Storage, StorageError};

/// A template ID like the provider's: `p` and 27 characters of `0-9a-zA-Z`.
fn new_card_id() -> String {
    let nonce = crate::crypto::random_nonce();
    format!("p{}", &nonce[..27])
}

pub(crate) async fn create_card(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
) -> Result<Response, ApiError> {
    let request = CreateCardRequest::from_body(&auth.body).map_err(|v| ApiError::violation(&v))?;
    if request.card_type != CardType::Normal {
        return Err(ApiError::unsupported_card_type());
    }
    let now = format_rfc3339_millis(OffsetDateTime::now_utc(), CHINA_STANDARD_TIME);
    let card = Card {
        card_id: new_card_id(),
        brand_id: auth.brand_id.clone(),
        appid: request.appid,
        card_type: request.card_type,
        card_title: request.card_title,
        card_color: request.card_color,
        card_picture_url: request.card_picture_url,
        code_mode: request.code_mode.unwrap_or(CodeMode::MerchantAllocate),
        valid_date_information: request.valid_date_information,
        user_information_form: request.user_information_form,
        notify_url: request.notify_url,
        out_request_no: request.out_request_no,
        state: CardState::Effective,
        create_time: now.clone(),
        modify_time: now,
    };
    let record = state
        .storage
        .create_card(&card)
        .await
        .map_err(|err| match err {
            StorageError::OutRequestNoReused => ApiError::out_request_no_reused(),
            other => storage_error(other),
        })?;
    Ok(super::json_ok(&record.card))
}

pub(crate) async fn get_card(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    card_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(card_id) =
        card_id.map_err(|_| ApiError::invalid_path("card_id", "is not valid UTF-8"))?;
    let record = state
        .storage
        .card(&auth.brand_id, &card_id)
        .await
        .map_err(storage_error)?
        .ok_or_else(ApiError::template_not_found)?;
    Ok(super::json_ok(&record.card))
}
