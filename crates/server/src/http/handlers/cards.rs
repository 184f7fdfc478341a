//! Card templates (FAMILY.md #1–5): create, list, read, change, invalidate.

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use card_member_protocol::model::{CreateCardRequest, ListQuery, Page, UpdateCardRequest};

use super::{query_params, refuse_body};
use crate::domain::cards;
use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::state::AppState;

fn path_card_id(card_id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    super::path_id(card_id, "card_id")
}

pub(crate) async fn create_card(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
) -> Result<Response, ApiError> {
    let request = CreateCardRequest::from_body(&auth.body).map_err(|v| ApiError::violation(&v))?;
    let card = cards::create(&state, &auth.brand_id, request).await?;
    Ok(super::json_ok(&card))
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
    let card = cards::change(&state, &auth.brand_id, &card_id, request).await?;
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
    let card = cards::invalidate(&state, &auth.brand_id, &card_id).await?;
    Ok(super::json_ok(&card))
}
