//! User cards: update (`PATCH /brand/card-member/user-cards/{code}`), read
//! (`GET` on the same path), invalidate (`POST …/{code}/invalidate`) and
//! import (`POST …/user-cards/import-by-openid`).
//!
//! Each handler parses and validates, calls the card's rules
//! (`domain::user_cards`: ciphertexts decrypted on the request's async
//! worker, one private-key operation each, then storage), and renders the
//! answer (public-key operations and AES only).

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use card_member_protocol::error::Location;
use card_member_protocol::membership::USER_CARD_STATES;
use card_member_protocol::model::{
    ImportUserCardRequest, InvalidateUserCardRequest, ListQuery, Page, UpdateUserCardRequest,
    UserCard,
};
use card_member_protocol::validation::validate_user_card_code;

use super::{CardCall, path_code, query_params, query_value};
use crate::domain::user_cards::{self, change_fields, current_state, render};
use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::http::layers::RequestId;
use crate::records::{UserCardKey, UserCardRecord};
use crate::state::AppState;
use crate::storage::wire_name;

pub(crate) async fn update_user_card(
    State(state): State<Arc<AppState>>,
    CardCall {
        auth,
        request_id,
        request,
    }: CardCall<UpdateUserCardRequest>,
) -> Result<Response, ApiError> {
    let record = change_fields(&state, &auth.brand_id, &request_id, &request, None).await?;
    super::card_answer(&state, &auth, &record, state.now_for(&auth.brand_id))
}

pub(crate) async fn invalidate_user_card(
    State(state): State<Arc<AppState>>,
    CardCall {
        auth,
        request_id,
        request,
    }: CardCall<InvalidateUserCardRequest>,
) -> Result<Response, ApiError> {
    let now = state.now_for(&auth.brand_id);
    let record = user_cards::invalidate(&state, &auth.brand_id, &request_id, &request, now).await?;
    super::card_answer(&state, &auth, &record, now)
}

/// A user's cards under the brand, newest first. **Decision**: the state
/// filter applies to the state as read now (a card past its validity is
/// `EXPIRED` without a write), so the filter runs over the holder's cards
/// in memory: a user holds few cards of a brand (at most one usable per
/// template). The order is the insertion order, so a card created while a
/// client pages adds to the front: the SDK's stream skips the items the
/// growth of `total_count` pushed back onto the next page.
pub(crate) async fn list_user_cards(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let pairs = query_params(&uri, &["openid", "user_card_state", "offset", "limit"])?;
    let openid = query_value(&pairs, "openid")
        .filter(|openid| !openid.is_empty())
        .ok_or_else(|| ApiError::invalid_query("openid", "is required"))?;
    if openid.chars().count() > 128 {
        return Err(ApiError::invalid_query("openid", "is too long"));
    }
    let query = ListQuery::from_pairs(&pairs, "user_card_state", USER_CARD_STATES)
        .map_err(|v| ApiError::violation(&v))?;
    let now = state.now_for(&auth.brand_id);
    let cards = state
        .storage
        .list_user_cards(&auth.brand_id, openid)
        .await?;
    let matching: Vec<&UserCardRecord> = cards
        .iter()
        .filter(|card| {
            query
                .state
                .as_deref()
                .is_none_or(|wanted| wire_name(&current_state(card, now)) == wanted)
        })
        .collect();
    let data = matching
        .iter()
        .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(query.limit).unwrap_or_default())
        .map(|card| render(&state.crypto, card, &auth.certificate.public_key, now))
        .collect::<Result<Vec<UserCard>, ApiError>>()?;
    Ok(super::json_ok(&Page {
        data,
        total_count: i64::try_from(matching.len()).unwrap_or(i64::MAX),
        offset: query.offset,
        limit: query.limit,
    }))
}

pub(crate) async fn get_user_card(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    code: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let code = path_code(code)?;
    validate_user_card_code(&code).map_err(|violation| ApiError::violation(&violation))?;
    let query = query_params(&uri, &["card_id", "openid"])?;
    let card_id = query_value(&query, "card_id")
        .ok_or_else(|| ApiError::invalid_query("card_id", "is required"))?
        .to_owned();
    let openid = query_value(&query, "openid")
        .ok_or_else(|| ApiError::invalid_query("openid", "is required"))?
        .to_owned();
    let key = UserCardKey {
        brand_id: &auth.brand_id,
        card_id: &card_id,
        user_card_code: &code,
    };
    let record = state
        .storage
        .user_card(key)
        .await?
        .ok_or_else(ApiError::card_not_found)?;
    if record.openid != openid {
        return Err(ApiError::openid_mismatch(Location::Query));
    }
    super::card_answer(&state, &auth, &record, state.now_for(&auth.brand_id))
}

pub(crate) async fn import_user_card(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
    Extension(request_id): Extension<RequestId>,
) -> Result<Response, ApiError> {
    let request = ImportUserCardRequest::from_body(&auth.body)
        .map_err(|violation| ApiError::violation(&violation))?;
    let now = state.now_for(&auth.brand_id);
    let record = user_cards::import(&state, &auth.brand_id, &request_id.0, &request, now).await?;
    super::card_answer(&state, &auth, &record, now)
}
