//! The user card's rules (FAMILY.md "The user card's life"): its state as
//! read now, the template's form, sealing personal data at rest and
//! rendering a card for its brand, and the changes an update, a confirm or
//! an invalidation make under the card's lock. The handlers, the simulated
//! member and the console all call down into these.

use std::sync::Arc;

use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis, parse_rfc3339};
use card_member_protocol::keys::PublicKey;
use card_member_protocol::model::{
    Card, Ciphertext, CommonField, CustomFieldType, DateType, ImportUserCardRequest,
    InvalidateUserCardRequest, UpdateUserCardRequest, UserCard, UserCardConfirmState,
    UserCardState, UserInfo,
};
use time::{Duration, OffsetDateTime};

use crate::crypto::Crypto;
use crate::crypto::sealing::SealContext;
use crate::domain::cards::takes_cards;
use crate::domain::refusal::{Refusal, answer, nothing_taken};
use crate::error::ApiError;
use crate::records::{
    AuditEntry, StoredCommonField, StoredUserInfo, UserCardKey, UserCardPatch, UserCardRecord,
};
use crate::state::AppState;
use crate::storage::{Change, FormCheck, HolderCheck, StorageError, Taken, wire_name};

/// The field name a phone number is sealed under.
pub(crate) const PHONE_NUMBER: &str = "phone_number";

/// An update's or a confirm's change of a card's fields: checked against
/// the template's form, sensitive fields sealed, applied under the card's
/// lock to a card held by the request's openid that is usable (not
/// invalid, not expired), or, for a confirm, awaiting confirmation.
pub(crate) async fn change_fields(
    state: &AppState,
    brand_id: &str,
    request_id: &str,
    request: &UpdateUserCardRequest,
    confirm: Option<UserCardConfirmState>,
) -> Result<UserCardRecord, ApiError> {
    let key = UserCardKey {
        brand_id,
        card_id: &request.card_id,
        user_card_code: &request.user_card_code,
    };
    // Checked in the change's transaction, before the card is read: one
    // trip to the database, not two. A template that is gone leaves the
    // card's own 404 to the change.
    let form: Option<FormCheck> = request.user_information.clone().map(|info| {
        Box::new(move |template: &Card| {
            check_against_form(template, &info)
                .map_err(|answer| StorageError::Refused(answer.into()))
        }) as FormCheck
    });
    let (phone_number, user_information) = seal_sensitive(
        &state.crypto,
        key,
        request.phone_number.as_ref(),
        request.user_information.as_ref(),
    )?;
    let patch = UserCardPatch {
        card_color: request.card_color.clone(),
        card_picture_url: request.card_picture_url.clone(),
        phone_number,
        level: request.level.clone(),
        valid_date_information: request.valid_date_information.clone(),
        user_information,
        attach: request.attach.clone(),
    };
    let now = state.now_for(brand_id);
    let mut fields = patch.field_names();
    let action = if confirm.is_some() {
        fields.push("user_card_state");
        "confirm"
    } else {
        "update"
    };
    let audit = audit_entry(key, request_id, now, action, fields);
    let openid = request.openid.clone();
    let at = audit.at.clone();
    let change: Change<UserCardRecord> = Box::new(move |card| {
        if card.openid != openid {
            return Err(Refusal::OpenidMismatch.into());
        }
        let current = current_state(card, now);
        match confirm {
            None => match current {
                UserCardState::Invalid => return Err(Refusal::CardInvalid.into()),
                UserCardState::Expired => return Err(Refusal::CardExpired.into()),
                UserCardState::Unactivated | UserCardState::Effective => {}
            },
            Some(outcome) => {
                if current == UserCardState::Expired {
                    return Err(Refusal::CardExpired.into());
                }
                if current != UserCardState::Unactivated {
                    return confirmed_before(card, outcome);
                }
                card.state = match outcome {
                    UserCardConfirmState::CreateCardFail => {
                        card.invalid_reason = Some(CONFIRM_FAILED.to_owned());
                        card.invalid_time = Some(at.clone());
                        UserCardState::Invalid
                    }
                    _ => UserCardState::Effective,
                };
            }
        }
        patch.apply(card);
        card.modify_time = at;
        card.version += 1;
        Ok(true)
    });
    state
        .storage
        .change_user_card_under_form(key, form, change, &audit)
        .await
        .map_err(|err| answer(err, ApiError::card_not_found, nothing_taken))
}

/// Invalidates a card (FAMILY.md #3) held by the request's openid, as of
/// `now`; a card invalid already is answered as it is.
pub(crate) async fn invalidate(
    state: &AppState,
    brand_id: &str,
    request_id: &str,
    request: &InvalidateUserCardRequest,
    now: OffsetDateTime,
) -> Result<UserCardRecord, ApiError> {
    let key = UserCardKey {
        brand_id,
        card_id: &request.card_id,
        user_card_code: &request.user_card_code,
    };
    let audit = audit_entry(
        key,
        request_id,
        now,
        "invalidate",
        vec!["user_card_state", "invalid_reason"],
    );
    let (openid, reason, at) = (
        request.openid.clone(),
        request.invalid_reason.clone(),
        audit.clone(),
    );
    state
        .storage
        .change_user_card(
            key,
            Box::new(move |card| {
                if card.openid != openid {
                    return Err(Refusal::OpenidMismatch.into());
                }
                Ok(card.invalidate(reason.as_deref(), &at))
            }),
            &audit,
            None,
        )
        .await
        .map_err(|err| answer(err, ApiError::card_not_found, nothing_taken))
}

/// Imports a card (FAMILY.md #4) for an effective template of the brand,
/// its fields defaulting to the template's, unless the code is taken or
/// the holder already has a usable card of the template.
pub(crate) async fn import(
    state: &AppState,
    brand_id: &str,
    request_id: &str,
    request: &ImportUserCardRequest,
    now: OffsetDateTime,
) -> Result<UserCardRecord, ApiError> {
    let key = UserCardKey {
        brand_id,
        card_id: &request.card_id,
        user_card_code: &request.user_card_code,
    };
    let template = state
        .storage
        .card(brand_id, &request.card_id)
        .await?
        .ok_or_else(ApiError::template_not_found)?
        .card;
    if let Some(info) = &request.user_information {
        check_against_form(&template, info)?;
    }
    let template = template.definition;
    let (phone_number, user_information) = seal_sensitive(
        &state.crypto,
        key,
        request.phone_number.as_ref(),
        request.user_information.as_ref(),
    )?;
    let now_text = format_rfc3339_millis(now, CHINA_STANDARD_TIME);
    let record = UserCardRecord {
        brand_id: brand_id.to_owned(),
        card_id: request.card_id.clone(),
        user_card_code: request.user_card_code.clone(),
        openid: request.openid.clone(),
        card_type: template.card_type,
        card_color: request.card_color.clone().or(template.card_color),
        card_picture_url: request
            .card_picture_url
            .clone()
            .or(template.card_picture_url),
        phone_number,
        level: request.level.clone(),
        valid_date_information: request
            .valid_date_information
            .clone()
            .unwrap_or(template.valid_date_information),
        pickup_time: request
            .pickup_time
            .clone()
            .unwrap_or_else(|| now_text.clone()),
        user_information,
        attach: request.attach.clone(),
        state: UserCardState::Effective,
        invalid_reason: None,
        invalid_time: None,
        create_time: now_text.clone(),
        modify_time: now_text,
        version: 1,
    };
    let fields = imported_fields(request);
    let audit = audit_entry(key, request_id, now, "import", fields);
    let is_usable: HolderCheck = Arc::new(move |held: &UserCardRecord| {
        matches!(
            current_state(held, now),
            UserCardState::Unactivated | UserCardState::Effective
        )
    });
    state
        .storage
        .insert_user_card(&record, is_usable, &audit, None, None, takes_cards)
        .await
        .map_err(|err| answer(err, ApiError::template_not_found, card_taken))?;
    Ok(record)
}

/// A taken code, or a holder's usable card, as the API answers them.
pub(crate) fn card_taken(key: Taken) -> Option<ApiError> {
    match key {
        Taken::UserCardCode => Some(ApiError::duplicate_code()),
        Taken::HolderCard => Some(ApiError::holder_has_card()),
        _ => None,
    }
}

/// Whether a stored card (`None`: no such card) may take a member record
/// for `openid`: its holder's, and not invalid. Run by storage under the
/// card's lock.
pub(crate) fn takes_records(
    card: Option<&UserCardRecord>,
    openid: &str,
) -> Result<(), StorageError> {
    let card = card.ok_or(StorageError::NotFound)?;
    if card.openid != openid {
        return Err(Refusal::OpenidMismatch.into());
    }
    if card.state == UserCardState::Invalid {
        return Err(Refusal::CardInvalid.into());
    }
    Ok(())
}

fn imported_fields(request: &ImportUserCardRequest) -> Vec<&'static str> {
    let mut fields = vec!["card_id", "openid", "user_card_code"];
    let optional = [
        ("card_color", request.card_color.is_some()),
        ("card_picture_url", request.card_picture_url.is_some()),
        (PHONE_NUMBER, request.phone_number.is_some()),
        ("level", request.level.is_some()),
        (
            "valid_date_information",
            request.valid_date_information.is_some(),
        ),
        ("user_information", request.user_information.is_some()),
        ("attach", request.attach.is_some()),
        ("pickup_time", request.pickup_time.is_some()),
    ];
    fields.extend(
        optional
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(name, _)| name),
    );
    fields
}

/// The reason a card refused by its brand's confirm is invalid with.
const CONFIRM_FAILED: &str = "CREATE_CARD_FAIL";

/// A confirm of a card no longer awaiting one: the same outcome again is
/// answered with the card as it is (a retry); another is refused.
fn confirmed_before(
    card: &UserCardRecord,
    outcome: UserCardConfirmState,
) -> Result<bool, StorageError> {
    let same = match outcome {
        UserCardConfirmState::CreateCardFail => {
            card.state == UserCardState::Invalid
                && card.invalid_reason.as_deref() == Some(CONFIRM_FAILED)
        }
        _ => card.state == UserCardState::Effective,
    };
    if same {
        Ok(false)
    } else {
        Err(Refusal::other(format!(
            "the card is {}: only a card awaiting confirmation (UNACTIVATED) can take this outcome",
            wire_name(&card.state)
        ))
        .into())
    }
}

/// What a user filled in must answer the template's form: a platform field
/// the form does not ask for, or a merchant field it does not have, is
/// refused; a `RADIO` field takes one value. The chosen values themselves
/// are not matched against the form's choices (**Decision**: the seed
/// page's own example sends an opaque 344-character value for its merchant
/// field, and the provider's samples must work unchanged). A template from
/// before forms were the provider's, without one, checks nothing.
pub(crate) fn check_against_form(template: &Card, info: &UserInfo) -> Result<(), ApiError> {
    let Some(form) = &template.definition.user_information else {
        return Ok(());
    };
    let asked = form.common_field_list.as_deref().unwrap_or_default();
    for (index, field) in info.common_field_list.iter().flatten().enumerate() {
        if !asked.contains(&field.name) {
            return Err(ApiError::body_param(
                &format!("/user_information/common_field_list/{index}/name"),
                "is not asked for by the template",
                format!(
                    "user_information.common_field_list[{index}].name: the template's form does not ask for {}",
                    field.name.as_str()
                ),
            ));
        }
    }
    let defined = form.custom_field_list.as_deref().unwrap_or_default();
    for (index, field) in info.custom_field_list.iter().flatten().enumerate() {
        let Some(definition) = defined.iter().find(|d| d.name == field.name) else {
            return Err(ApiError::body_param(
                &format!("/user_information/custom_field_list/{index}/name"),
                "is not a field of the template",
                format!(
                    "user_information.custom_field_list[{index}].name: the template's form has no field of this name"
                ),
            ));
        };
        let chosen = field.user_chosen_values.as_ref().map_or(0, Vec::len);
        if definition.field_type == CustomFieldType::Radio && chosen > 1 {
            return Err(ApiError::body_param(
                &format!("/user_information/custom_field_list/{index}/user_chosen_values"),
                "has more than one value",
                format!(
                    "user_information.custom_field_list[{index}].user_chosen_values: the field is RADIO, one value at most"
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn audit_entry(
    key: UserCardKey<'_>,
    request_id: &str,
    now: OffsetDateTime,
    action: &str,
    fields: Vec<&'static str>,
) -> AuditEntry {
    AuditEntry {
        brand_id: key.brand_id.to_owned(),
        card_id: key.card_id.to_owned(),
        user_card_code: key.user_card_code.to_owned(),
        request_id: request_id.to_owned(),
        at: format_rfc3339_millis(now, CHINA_STANDARD_TIME),
        action: action.to_owned(),
        fields: fields.into_iter().map(str::to_owned).collect(),
    }
}

pub(crate) fn seal_context<'a>(key: UserCardKey<'a>, field: &'a str) -> SealContext<'a> {
    SealContext {
        brand_id: key.brand_id,
        card_id: key.card_id,
        user_card_code: key.user_card_code,
        field,
    }
}

/// Decrypts the request's ciphertexts (one private-key operation each) and
/// seals them for storage.
///
/// Runs on the async worker that handles the request, like the response
/// signature: the runtime has one worker per core, so at most as many
/// private-key operations run at once as there are cores, and none waits
/// for a hand-off to another thread (BENCHMARKS.md, "The server's
/// private-key operations, measured where they run": on the blocking pool,
/// up to three times as many ran at once, preempting each other, and the
/// seed update's throughput on two cores was 7–21 % lower).
pub(crate) fn seal_sensitive(
    crypto: &Crypto,
    key: UserCardKey<'_>,
    phone_number: Option<&Ciphertext>,
    user_information: Option<&UserInfo>,
) -> Result<(Option<Vec<u8>>, Option<StoredUserInfo>), ApiError> {
    let phone = phone_number
        .map(|ciphertext| {
            let plaintext = crypto
                .decrypt(ciphertext)
                .map_err(|_| ApiError::undecryptable("/phone_number", ciphertext.as_str()))?;
            Ok::<_, ApiError>(crypto.seal(seal_context(key, PHONE_NUMBER), &plaintext))
        })
        .transpose()?;
    let info = user_information
        .map(|info| {
            let common = info
                .common_field_list
                .as_ref()
                .map(|fields| {
                    fields
                        .iter()
                        .enumerate()
                        .map(|(index, field)| {
                            let plaintext = crypto.decrypt(&field.value).map_err(|_| {
                                ApiError::undecryptable(
                                    &format!("/user_information/common_field_list/{index}/value"),
                                    field.value.as_str(),
                                )
                            })?;
                            let sealed =
                                crypto.seal(seal_context(key, field.name.as_str()), &plaintext);
                            Ok(StoredCommonField {
                                name: field.name,
                                sealed: base64_encode(&sealed),
                            })
                        })
                        .collect::<Result<Vec<_>, ApiError>>()
                })
                .transpose()?;
            Ok::<_, ApiError>(StoredUserInfo {
                common_field_list: common,
                custom_field_list: info.custom_field_list.clone(),
            })
        })
        .transpose()?;
    Ok((phone, info))
}

pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A stored sealed value's bytes (the console's masked view).
pub(crate) fn base64_decode_sealed(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

fn base64_decode(text: &str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|err| ApiError::internal(&format!("stored sealed value is not base64: {err}")))
}

/// The card's state now: a usable card whose validity has ended reads
/// `EXPIRED`.
pub(crate) fn current_state(card: &UserCardRecord, now: OffsetDateTime) -> UserCardState {
    if !matches!(
        card.state,
        UserCardState::Effective | UserCardState::Unactivated
    ) {
        return card.state;
    }
    let validity = &card.valid_date_information;
    let end = match validity.date_type {
        DateType::Permanent => None,
        DateType::FixTimeRange => validity
            .available_end_time
            .as_deref()
            .and_then(parse_rfc3339),
        DateType::FixTerm => parse_rfc3339(&card.pickup_time)
            .zip(validity.available_day_after_receive)
            .map(|(pickup, days)| pickup + Duration::days(days)),
    };
    match end {
        Some(end) if now >= end => UserCardState::Expired,
        _ => card.state,
    }
}

/// The card as the brand sees it: sensitive fields re-encrypted under the
/// key of the certificate that signed the request.
pub(crate) fn render(
    crypto: &Crypto,
    card: &UserCardRecord,
    brand_key: &PublicKey,
    now: OffsetDateTime,
) -> Result<UserCard, ApiError> {
    let key = card.key();
    let reencrypt = |field: &str, sealed: &[u8]| {
        let plaintext = crypto
            .open(seal_context(key, field), sealed)
            .map_err(|err| ApiError::internal(&err))?;
        crypto
            .encrypt_for(brand_key, &plaintext)
            .map_err(|err| ApiError::internal(&err))
    };
    let phone_number = card
        .phone_number
        .as_deref()
        .map(|sealed| reencrypt(PHONE_NUMBER, sealed))
        .transpose()?;
    let user_information = card
        .user_information
        .as_ref()
        .map(|info| {
            let common_field_list = info
                .common_field_list
                .as_ref()
                .map(|fields| {
                    fields
                        .iter()
                        .map(|field| {
                            Ok(CommonField {
                                name: field.name,
                                value: reencrypt(
                                    field.name.as_str(),
                                    &base64_decode(&field.sealed)?,
                                )?,
                            })
                        })
                        .collect::<Result<Vec<_>, ApiError>>()
                })
                .transpose()?;
            Ok::<_, ApiError>(UserInfo {
                common_field_list,
                custom_field_list: info.custom_field_list.clone(),
            })
        })
        .transpose()?;
    Ok(UserCard {
        user_card_code: card.user_card_code.clone(),
        card_id: card.card_id.clone(),
        openid: card.openid.clone(),
        card_color: card.card_color.clone(),
        card_picture_url: card.card_picture_url.clone(),
        brand_id: card.brand_id.clone(),
        card_type: card.card_type,
        phone_number,
        level: card.level.clone(),
        valid_date_information: card.valid_date_information.clone(),
        pickup_time: card.pickup_time.clone(),
        user_information,
        attach: card.attach.clone(),
        user_card_state: current_state(card, now),
        invalid_reason: card.invalid_reason.clone(),
        invalid_time: card.invalid_time.clone(),
        create_time: card.create_time.clone(),
        modify_time: card.modify_time.clone(),
    })
}
