//! Card templates' rules (FAMILY.md #1–5): only `NORMAL` cards are made,
//! a template is created once per `out_request_no` (the same request again
//! answers the same template), an invalid template takes no change, and
//! invalidating is final (an invalid template is answered as it is).

use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::media::sha256_hex;
use card_member_protocol::model::{
    Card, CardState, CardType, CreateCardRequest, UpdateCardRequest,
};
use time::OffsetDateTime;

use crate::domain::refusal::{Refusal, refusal_of};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{Change, StorageError, Taken, wire_name};

/// A template ID like the provider's: `p` and 27 characters of `0-9a-zA-Z`.
fn new_card_id() -> String {
    let nonce = crate::crypto::random_nonce();
    format!("p{}", &nonce[..27])
}

fn now_text() -> String {
    format_rfc3339_millis(OffsetDateTime::now_utc(), CHINA_STANDARD_TIME)
}

/// Creates a template of the brand (idempotent on `out_request_no` with the
/// same request).
pub(crate) async fn create(
    state: &AppState,
    brand_id: &str,
    request: CreateCardRequest,
) -> Result<Card, ApiError> {
    if request.card_type != CardType::Normal {
        return Err(ApiError::unsupported_card_type());
    }
    // The request as parsed: the same fields in another order or spacing
    // are the same request.
    let digest = sha256_hex(&serde_json::to_vec(&request).expect("requests serialise"));
    let now = now_text();
    let card = Card {
        card_id: new_card_id(),
        brand_id: brand_id.to_owned(),
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
            StorageError::Taken(Taken::TemplateRequestNo) => ApiError::out_request_no_reused(),
            other => other.into(),
        })?;
    Ok(record.card)
}

/// Changes the fields `request` sets, on an effective template.
pub(crate) async fn change(
    state: &AppState,
    brand_id: &str,
    card_id: &str,
    request: UpdateCardRequest,
) -> Result<Card, ApiError> {
    let now = now_text();
    change_template(
        state,
        brand_id,
        card_id,
        Box::new(move |card| {
            if card.state == CardState::CardInvalid {
                return Err(Refusal::TemplateInvalid.into());
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
}

/// Invalidates a template (final; **Decision**: idempotent, like the user
/// card's invalidation).
pub(crate) async fn invalidate(
    state: &AppState,
    brand_id: &str,
    card_id: &str,
) -> Result<Card, ApiError> {
    let now = now_text();
    change_template(
        state,
        brand_id,
        card_id,
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
}

/// A change of a template under its lock, refusals answered as the API's.
async fn change_template(
    state: &AppState,
    brand_id: &str,
    card_id: &str,
    change: Change<Card>,
) -> Result<Card, ApiError> {
    let changed = state
        .storage
        .change_card(brand_id, card_id, change)
        .await
        .map_err(|error| match (&error, refusal_of(&error)) {
            (StorageError::NotFound, _) => ApiError::template_not_found(),
            (_, Some(Refusal::TemplateInvalid)) => ApiError::template_not_changeable(),
            _ => error.into(),
        })?;
    // The next delivery reads the template again (its `notify_url`).
    state.outbox.template_changed();
    Ok(changed)
}

/// Whether a template, by its stored state (`None`: no such template),
/// takes new user cards and tokens: only an effective one does. Run by
/// storage under the template's lock.
pub(crate) fn takes_cards(state: Option<&str>) -> Result<(), StorageError> {
    match state {
        None => Err(StorageError::NotFound),
        Some(state) if state != wire_name(&CardState::CardEffective) => {
            Err(Refusal::TemplateInvalid.into())
        }
        Some(_) => Ok(()),
    }
}
