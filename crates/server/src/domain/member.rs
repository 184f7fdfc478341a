//! The member's side of the card's life (FAMILY.md "The user card's
//! life"): what the provider does when a user acts in WeChat. A user opens
//! the membership component with a pre-authorization token and signs up
//! (a card `UNACTIVATED` until the brand confirms); a member asks to trade
//! points for a coupon (a request the brand decides with endpoint 15).
//!
//! Reached through the server handle (the tests), the simulation's routes
//! (`/simulate/…`, `card-member simulate`) and the console's simulator.

use std::sync::Arc;

use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::model::{
    CardState, CommonFieldFlag, CustomField, CustomFieldType, UserCardState,
};
use card_member_protocol::secret::SecretString;

use card_member_protocol::keys::PublicKey;
use card_member_protocol::notify;

use crate::domain::cards::takes_cards;
use crate::domain::notifications::new_notification;
use crate::domain::refusal::{Refusal, refusal_of};
use crate::domain::user_cards::{base64_encode, current_state, render, seal_context};
use crate::records::{
    AuditEntry, PointExchangeRecord, StoredCommonField, StoredUserInfo, TokenRecord, UserCardKey,
    UserCardRecord,
};
use crate::state::AppState;
use crate::storage::{HolderCheck, SpentToken, StorageError, Taken};

/// What a user fills in the sign-up form: the platform fields the template
/// asks for (plaintext, sealed at once) and, optionally, the merchant
/// field's choices.
#[derive(Clone, Debug, Default)]
pub struct SignUpForm {
    /// Every platform field the template asks for, with its value.
    pub common_fields: Vec<(CommonFieldFlag, SecretString)>,
    /// The merchant field's chosen values, if the template has one.
    pub custom_choices: Option<Vec<String>>,
}

/// Why the member's action was refused, for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberError(pub String);

impl std::fmt::Display for MemberError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MemberError {}

fn refused(why: impl Into<String>) -> MemberError {
    MemberError(why.into())
}

fn storage(err: StorageError) -> MemberError {
    match (&err, refusal_of(&err)) {
        (_, Some(Refusal::TemplateInvalid)) => refused("the card template has been invalidated"),
        (_, Some(refusal)) => MemberError(refusal.to_string()),
        (StorageError::Taken(Taken::HolderCard), _) => {
            refused("the user already holds an unactivated or effective card of this template")
        }
        (StorageError::NotFound, _) => refused("the card template does not exist"),
        _ => MemberError(err.to_string()),
    }
}

/// Whether `token` (`None`: no such token) may be spent on `card` at
/// `now`: made for its template and user, unused, unexpired. Run by
/// storage under the token's lock.
pub(crate) fn token_spendable(
    token: Option<&TokenRecord>,
    card: &UserCardRecord,
    now: i64,
) -> Result<(), StorageError> {
    let refused = |why: &str| Err(Refusal::other(why).into());
    let Some(token) = token else {
        return refused("the pre-authorization token does not exist");
    };
    if token.brand_id != card.brand_id
        || token.card_id != card.card_id
        || token.openid != card.openid
    {
        return refused("the pre-authorization token was made for another template or user");
    }
    if token.used_at.is_some() {
        return refused("the pre-authorization token was used already");
    }
    if token.expires_at <= now {
        return refused("the pre-authorization token has expired");
    }
    Ok(())
}

/// A card code the server allocates: 12 digits, like the seed page's.
fn new_code() -> String {
    crate::crypto::random_nonce()
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .take(12)
        .collect()
}

/// Signs a user up with `token`: the form must answer the template's
/// (every platform field it asks for and no other; the merchant field's
/// choices among its values, one for `RADIO`). The card is created
/// `UNACTIVATED` with a code the server allocates (**Decision**: also for
/// `MERCHANT_ALLOCATE` templates: the confirm's body has no code field, so
/// the brand takes the code it is given) and the template's validity from
/// now; the token is spent in the same transaction.
pub(crate) async fn sign_up(
    state: &Arc<AppState>,
    token: &str,
    form: SignUpForm,
) -> Result<UserCardRecord, MemberError> {
    let record = state
        .storage
        .token(token)
        .await
        .map_err(storage)?
        .ok_or_else(|| refused("the pre-authorization token does not exist"))?;
    let now = state.now_for(&record.brand_id);
    let template = state
        .storage
        .card(&record.brand_id, &record.card_id)
        .await
        .map_err(storage)?
        .ok_or_else(|| refused("the card template does not exist"))?
        .card;
    if template.state != CardState::CardEffective {
        return Err(refused("the card template has been invalidated"));
    }
    let asked = template
        .definition
        .user_information
        .as_ref()
        .and_then(|form| form.common_field_list.clone())
        .unwrap_or_default();
    for flag in &asked {
        if !form.common_fields.iter().any(|(given, _)| given == flag) {
            return Err(refused(format!("the form asks for {}", flag.as_str())));
        }
    }
    for (index, (flag, _)) in form.common_fields.iter().enumerate() {
        if !asked.contains(flag) || form.common_fields[..index].iter().any(|(f, _)| f == flag) {
            return Err(refused(format!(
                "the form does not ask for {} (or it is given twice)",
                flag.as_str()
            )));
        }
    }
    let custom = match (&form.custom_choices, template_custom_field(&template)) {
        (None, _) => None,
        (Some(_), None) => return Err(refused("the form has no merchant field")),
        (Some(choices), Some(field)) => {
            if field.field_type == CustomFieldType::Radio && choices.len() > 1 {
                return Err(refused(format!("{} takes one choice", field.name)));
            }
            if let Some(wrong) = choices.iter().find(|c| !field.values.contains(c)) {
                return Err(refused(format!(
                    "{wrong:?} is not a choice of {} (choices: {})",
                    field.name,
                    field.values.join(", ")
                )));
            }
            Some(vec![CustomField {
                name: field.name.clone(),
                user_chosen_values: Some(choices.clone()),
            }])
        }
    };
    let now_text = format_rfc3339_millis(now, CHINA_STANDARD_TIME);
    let code = new_code();
    let key = UserCardKey {
        brand_id: &record.brand_id,
        card_id: &record.card_id,
        user_card_code: &code,
    };
    let common = form
        .common_fields
        .iter()
        .map(|(flag, value)| StoredCommonField {
            name: *flag,
            sealed: base64_encode(&state.crypto.seal(seal_context(key, flag.as_str()), value)),
        })
        .collect::<Vec<_>>();
    let user_information = (!common.is_empty() || custom.is_some()).then(|| StoredUserInfo {
        common_field_list: (!common.is_empty()).then_some(common),
        custom_field_list: custom,
    });
    let card = UserCardRecord {
        brand_id: record.brand_id.clone(),
        card_id: record.card_id.clone(),
        user_card_code: code.clone(),
        openid: record.openid.clone(),
        card_type: template.definition.card_type,
        card_color: template.definition.card_color.clone(),
        card_picture_url: template.definition.card_picture_url.clone(),
        phone_number: None,
        level: template.definition.init_level.clone(),
        valid_date_information: template.definition.valid_date_information.clone(),
        pickup_time: now_text.clone(),
        user_information,
        attach: None,
        state: UserCardState::Unactivated,
        invalid_reason: None,
        invalid_time: None,
        create_time: now_text.clone(),
        modify_time: now_text.clone(),
        version: 1,
    };
    let audit = AuditEntry {
        brand_id: record.brand_id.clone(),
        card_id: record.card_id.clone(),
        user_card_code: code,
        request_id: format!("sign-up:{}", &token[..token.len().min(8)]),
        at: now_text,
        action: "sign-up".to_owned(),
        fields: card
            .user_information
            .iter()
            .map(|_| "user_information".to_owned())
            .collect(),
    };
    let is_usable: HolderCheck = Arc::new(move |held: &UserCardRecord| {
        matches!(
            current_state(held, now),
            UserCardState::Unactivated | UserCardState::Effective
        )
    });
    let spent = SpentToken {
        token: token.to_owned(),
        now: now.unix_timestamp(),
        spendable: token_spendable,
    };
    let brand_key = brand_key(state, &card.brand_id).await?;
    let rendered = render(&state.crypto, &card, &brand_key, now)
        .map_err(|_| refused("the card could not be rendered for the brand"))?;
    let notification = new_notification(
        state,
        &card.brand_id,
        &card.card_id,
        &card.user_card_code,
        notify::USER_CARD_CREATE,
        serde_json::to_string(&rendered).expect("cards serialise"),
        now,
    );
    state
        .storage
        .insert_user_card(
            &card,
            is_usable,
            &audit,
            Some(spent),
            Some(notification),
            takes_cards,
        )
        .await
        .map_err(storage)?;
    state.outbox.wake();
    Ok(card)
}

/// The key a brand's notifications encrypt personal data for: its first
/// certificate's (by serial).
async fn brand_key(state: &Arc<AppState>, brand_id: &str) -> Result<PublicKey, MemberError> {
    state
        .storage
        .brand(brand_id)
        .await
        .map_err(storage)?
        .and_then(|brand| brand.certificates.into_iter().next())
        .map(|certificate| certificate.public_key)
        .ok_or_else(|| refused("the brand has no certificate"))
}

/// The reason a card the user deleted is invalid with.
const USER_DELETED: &str = "USER_DELETE";

/// A user deletes their card in the app: it becomes `INVALID` (reason
/// `USER_DELETE`) and `USER_CARD.DELETE` is sent, in one transaction.
pub(crate) async fn delete_card(
    state: &Arc<AppState>,
    key: UserCardKey<'_>,
    openid: &str,
) -> Result<UserCardRecord, MemberError> {
    let now = state.now_for(key.brand_id);
    let at = format_rfc3339_millis(now, CHINA_STANDARD_TIME);
    let audit = AuditEntry {
        brand_id: key.brand_id.to_owned(),
        card_id: key.card_id.to_owned(),
        user_card_code: key.user_card_code.to_owned(),
        request_id: "member:delete".to_owned(),
        at: at.clone(),
        action: "delete".to_owned(),
        fields: vec!["user_card_state".to_owned(), "invalid_reason".to_owned()],
    };
    let brand_key = brand_key(state, key.brand_id).await?;
    let openid = openid.to_owned();
    let change_audit = audit.clone();
    let notifier = Arc::clone(state);
    state
        .storage
        .change_user_card(
            key,
            Box::new(move |card| {
                if card.openid != openid {
                    return Err(Refusal::other("the card is held by another user").into());
                }
                if card.state == UserCardState::Invalid {
                    return Err(Refusal::other("the card is already invalid").into());
                }
                Ok(card.invalidate(Some(USER_DELETED), &change_audit))
            }),
            &audit,
            Some(Box::new(move |card: &UserCardRecord| {
                let rendered = render(&notifier.crypto, card, &brand_key, now)
                    .map(|card| serde_json::to_string(&card).expect("cards serialise"))
                    .unwrap_or_default();
                new_notification(
                    &notifier,
                    &card.brand_id,
                    &card.card_id,
                    &card.user_card_code,
                    notify::USER_CARD_DELETE,
                    rendered,
                    now,
                )
            })),
        )
        .await
        .map_err(|err| match err {
            StorageError::NotFound => refused("no such card"),
            other => storage(other),
        })
        .inspect(|_| state.outbox.wake())
}

/// The card at `key`, held by `openid`.
async fn held_card(
    state: &Arc<AppState>,
    key: UserCardKey<'_>,
    openid: &str,
) -> Result<UserCardRecord, MemberError> {
    let card = state
        .storage
        .user_card(key)
        .await
        .map_err(storage)?
        .ok_or_else(|| refused("no such card"))?;
    if card.openid != openid {
        return Err(refused("the card is held by another user"));
    }
    Ok(card)
}

/// The provider asks the brand for a member's points balance
/// (`SYNC_USER_POINT`); the brand answers with a points sync.
pub(crate) async fn ask_points(
    state: &Arc<AppState>,
    key: UserCardKey<'_>,
    openid: &str,
) -> Result<String, MemberError> {
    let card = held_card(state, key, openid).await?;
    let content = notify::SyncUserPoint {
        brand_id: card.brand_id.clone(),
        card_id: card.card_id.clone(),
        openid: card.openid.clone(),
        user_card_code: card.user_card_code.clone(),
    };
    let notification = new_notification(
        state,
        &card.brand_id,
        &card.card_id,
        &card.user_card_code,
        notify::SYNC_USER_POINT,
        serde_json::to_string(&content).expect("events serialise"),
        state.now_for(key.brand_id),
    );
    let id = notification.id.clone();
    state
        .storage
        .enqueue_notifications(vec![notification])
        .await
        .map_err(storage)?;
    state.outbox.wake();
    Ok(id)
}

/// Moves one brand's clock forward by `seconds` (cards expire as if that
/// time had passed; the brand's reads, lists and writes see it).
pub(crate) async fn advance_clock(
    state: &Arc<AppState>,
    brand_id: &str,
    seconds: i64,
) -> Result<i64, MemberError> {
    if seconds < 0 {
        return Err(refused("the clock only moves forward"));
    }
    if state
        .storage
        .brand(brand_id)
        .await
        .map_err(storage)?
        .is_none()
    {
        return Err(refused(format!("no brand {brand_id}")));
    }
    let offset = state.clock.offset(brand_id).saturating_add(seconds);
    state
        .set_clock(brand_id, offset)
        .await
        .map_err(|_| refused("the clock could not be stored"))?;
    Ok(offset)
}

fn template_custom_field(
    template: &card_member_protocol::model::Card,
) -> Option<&card_member_protocol::model::CustomFieldDefinition> {
    template
        .definition
        .user_information
        .as_ref()?
        .custom_field_list
        .as_ref()?
        .first()
}

/// A member's request to trade `deduct_points` for a coupon of
/// `exchange_coupon_template_id`, on a usable card they hold; its
/// `record_id`.
pub(crate) async fn request_point_exchange(
    state: &Arc<AppState>,
    key: UserCardKey<'_>,
    openid: &str,
    exchange_coupon_template_id: &str,
    deduct_points: i64,
) -> Result<String, MemberError> {
    let now = state.now_for(key.brand_id);
    let card = held_card(state, key, openid).await?;
    if current_state(&card, now) != UserCardState::Effective {
        return Err(refused("only an effective card can trade points"));
    }
    if deduct_points <= 0 {
        return Err(refused("deduct_points must be positive"));
    }
    let record_id = format!("EX{}", &crate::crypto::random_nonce()[..30]);
    let content = notify::PointExchangeCoupon {
        record_id: record_id.clone(),
        brand_id: key.brand_id.to_owned(),
        card_id: key.card_id.to_owned(),
        openid: openid.to_owned(),
        user_card_code: key.user_card_code.to_owned(),
        deduct_points: deduct_points.unsigned_abs(),
        exchange_coupon_template_id: exchange_coupon_template_id.to_owned(),
    };
    let notification = new_notification(
        state,
        key.brand_id,
        key.card_id,
        key.user_card_code,
        notify::POINT_EXCHANGE_COUPON,
        serde_json::to_string(&content).expect("events serialise"),
        now,
    );
    state
        .storage
        .create_point_exchange(
            &PointExchangeRecord {
                brand_id: key.brand_id.to_owned(),
                record_id: record_id.clone(),
                card_id: key.card_id.to_owned(),
                user_card_code: key.user_card_code.to_owned(),
                openid: openid.to_owned(),
                exchange_coupon_template_id: exchange_coupon_template_id.to_owned(),
                deduct_points,
                created_at: format_rfc3339_millis(now, CHINA_STANDARD_TIME),
                decision: None,
                answer: None,
            },
            Some(notification),
        )
        .await
        .map_err(storage)?;
    state.outbox.wake();
    Ok(record_id)
}
