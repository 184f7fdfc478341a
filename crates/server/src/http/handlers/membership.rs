//! Becoming and being a member (FAMILY.md #10, #12, #15): pre-authorization
//! tokens, the brand's confirm of a sign-up, and its decision on a
//! points-for-coupon request.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::membership::PRE_AUTH_TOKEN_TTL_SECS;
use card_member_protocol::model::{
    ConfirmUserCardRequest, ExchangeCouponConfirmRequest, ExchangeCouponResult, ExchangeDecision,
    ExchangeState, PreAuthToken, PreAuthTokenRequest,
};
use time::{Duration, OffsetDateTime};

use super::CardCall;
use crate::domain::cards::takes_cards;
use crate::domain::refusal::{Refusal, answer, nothing_taken};
use crate::domain::user_cards::change_fields;
use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::records::TokenRecord;
use crate::state::AppState;
use crate::storage::{StorageError, wire_name};

/// A token like the provider's: 32 characters of `0-9a-zA-Z`, 190 bits of
/// randomness.
fn new_token() -> String {
    let nonce = crate::crypto::random_nonce();
    nonce[..32].to_owned()
}

/// A token for one user and one effective template, valid one hour, good
/// for one sign-up. Each request makes a new token (**Decision**: the
/// provider's page gives no idempotency key; an earlier token stays valid).
pub(crate) async fn create_pre_auth_token(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
) -> Result<Response, ApiError> {
    let request =
        PreAuthTokenRequest::from_body(&auth.body).map_err(|v| ApiError::violation(&v))?;
    let now = OffsetDateTime::now_utc();
    let expires = now + Duration::seconds(PRE_AUTH_TOKEN_TTL_SECS);
    let token = TokenRecord {
        token: new_token(),
        brand_id: auth.brand_id.clone(),
        card_id: request.card_id,
        openid: request.openid,
        expires_at: expires.unix_timestamp(),
        created_at: format_rfc3339_millis(now, CHINA_STANDARD_TIME),
        used_at: None,
    };
    state
        .storage
        .create_token(&token, takes_cards)
        .await
        .map_err(|err| answer(err, ApiError::template_not_found, nothing_taken))?;
    Ok(super::json_ok(&PreAuthToken {
        token: token.token,
        expire_time: format_rfc3339_millis(expires, CHINA_STANDARD_TIME),
    }))
}

pub(crate) async fn confirm_user_card(
    State(state): State<Arc<AppState>>,
    CardCall {
        auth,
        request_id,
        request,
    }: CardCall<ConfirmUserCardRequest>,
) -> Result<Response, ApiError> {
    let record = change_fields(
        &state,
        &auth.brand_id,
        &request_id,
        &request.update,
        Some(request.user_card_confirm_state),
    )
    .await?;
    super::card_answer(&state, &auth, &record, state.now_for(&auth.brand_id))
}

/// The brand's decision on a member's points-for-coupon request. The
/// request must match the record (template, card, holder, exchange
/// template); a decision is final: the same one again answers the same
/// result, another is refused. **Decision**: rejecting needs a
/// `reject_reason`; allowing issues a product coupon whose IDs the sandbox
/// makes up (it plays the provider's coupon system).
pub(crate) async fn confirm_point_exchange(
    State(state): State<Arc<AppState>>,
    Extension(auth): Extension<Authenticated>,
) -> Result<Response, ApiError> {
    let request =
        ExchangeCouponConfirmRequest::from_body(&auth.body).map_err(|v| ApiError::violation(&v))?;
    if request.result == ExchangeDecision::PointExchangeCouponReject
        && request.reject_reason.as_deref().is_none_or(str::is_empty)
    {
        return Err(ApiError::body_param(
            "/reject_reason",
            "is required",
            "reject_reason is required when result is POINT_EXCHANGE_COUPON_REJECT",
        ));
    }
    let brand_id = auth.brand_id.clone();
    let decision = wire_name(&request.result);
    let settled = state
        .storage
        .settle_point_exchange(
            &auth.brand_id,
            &request.record_id,
            Box::new(move |exchange| {
                let matches = exchange.card_id == request.card_id
                    && exchange.openid == request.openid
                    && exchange.user_card_code == request.user_card_code
                    && exchange.exchange_coupon_template_id == request.exchange_coupon_template_id;
                if !matches {
                    return Err(Refusal::other(
                        "card_id, openid, user_card_code and exchange_coupon_template_id must be those of the request record_id names",
                    )
                    .into());
                }
                if let Some(earlier) = &exchange.decision {
                    return if *earlier == decision {
                        Ok(false)
                    } else {
                        Err(Refusal::other(format!(
                            "record_id was already decided ({earlier}); a decision cannot change"
                        ))
                        .into())
                    };
                }
                let allowed = request.result == ExchangeDecision::PointExchangeCouponAllow;
                let issued = |prefix: &str| {
                    allowed.then(|| format!("{prefix}{}", &crate::crypto::random_nonce()[..20]))
                };
                let result = ExchangeCouponResult {
                    record_id: exchange.record_id.clone(),
                    exchange_coupon_template_id: exchange.exchange_coupon_template_id.clone(),
                    brand_id,
                    card_id: exchange.card_id.clone(),
                    openid: exchange.openid.clone(),
                    user_card_code: exchange.user_card_code.clone(),
                    state: if allowed {
                        ExchangeState::PointExchangeCouponSuccess
                    } else {
                        ExchangeState::PointExchangeCouponFail
                    },
                    product_coupon_id: issued("PC"),
                    product_coupon_stock_type: allowed.then(|| "NORMAL".to_owned()),
                    stock_id: issued("ST"),
                    coupon_code: issued("CP"),
                    reject_reason: request.reject_reason.clone(),
                };
                exchange.decision = Some(decision);
                exchange.answer = Some(serde_json::to_string(&result).expect("answers serialise"));
                Ok(true)
            }),
        )
        .await
        .map_err(|err| match err {
            StorageError::NotFound => ApiError::not_found("record_id"),
            other => answer(other, ApiError::card_not_found, nothing_taken),
        })?;
    let answer: ExchangeCouponResult =
        serde_json::from_str(settled.answer.as_deref().unwrap_or(""))
            .map_err(|err| ApiError::internal(&format!("stored exchange answer: {err}")))?;
    Ok(super::json_ok(&answer))
}
