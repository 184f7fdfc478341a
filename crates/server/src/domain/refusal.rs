//! The rules' refusals: what a change is refused for by the card's,
//! the template's or the token's state. A rule that runs inside a storage
//! transaction returns one as `StorageError::Refused` (storage rolls back
//! and hands it back untouched); [`refusal_of`] reads it back. The API
//! answers each with its error (`From<Refusal> for ApiError`).

use std::fmt;

use card_member_protocol::error::Location;

use crate::error::ApiError;
use crate::storage::{StorageError, Taken};

/// Why the rules refused a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The openid is not the card's holder.
    OpenidMismatch,
    /// The card was invalidated.
    CardInvalid,
    /// The card's validity has ended.
    CardExpired,
    /// The template was invalidated.
    TemplateInvalid,
    /// Anything else the state refuses (a used token, a decision already
    /// taken): 400 `INVALID_REQUEST` with this message.
    Other(String),
}

impl Refusal {
    /// A refusal with its own message.
    pub(crate) fn other(why: impl Into<String>) -> Self {
        Refusal::Other(why.into())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::OpenidMismatch => f.write_str("openid is not the holder"),
            Refusal::CardInvalid => f.write_str("card is invalid"),
            Refusal::CardExpired => f.write_str("card has expired"),
            Refusal::TemplateInvalid => f.write_str("template is invalid"),
            Refusal::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Refusal {}

impl From<Refusal> for StorageError {
    fn from(refusal: Refusal) -> Self {
        StorageError::Refused(Box::new(refusal))
    }
}

/// The rules' refusal a storage error carries, if it is one.
pub(crate) fn refusal_of(error: &StorageError) -> Option<&Refusal> {
    match error {
        StorageError::Refused(refusal) => refusal.downcast_ref(),
        _ => None,
    }
}

/// A storage error as the API answers it: no such row as `not_found`, a
/// taken key as `taken` says (`None`: a storage failure), the rules'
/// refusal (or an answer a rule gave, such as the form check's) as its own
/// answer, any other failure as a storage failure.
pub(crate) fn answer(
    error: StorageError,
    not_found: fn() -> ApiError,
    taken: fn(Taken) -> Option<ApiError>,
) -> ApiError {
    match error {
        StorageError::NotFound => not_found(),
        StorageError::Taken(key) => taken(key).unwrap_or_else(|| ApiError::internal(&error)),
        StorageError::Refused(refusal) => match refusal.downcast::<Refusal>() {
            Ok(refusal) => (*refusal).into(),
            Err(other) => match other.downcast::<ApiError>() {
                Ok(answer) => *answer,
                Err(other) => ApiError::internal(&other),
            },
        },
        other => other.into(),
    }
}

/// No unique key is expected taken.
pub(crate) fn nothing_taken(_: Taken) -> Option<ApiError> {
    None
}

/// The answer to a refusal, the openid read from the body.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::OpenidMismatch => ApiError::openid_mismatch(Location::Body),
            Refusal::CardInvalid => ApiError::card_invalid(),
            Refusal::CardExpired => ApiError::card_expired(),
            Refusal::TemplateInvalid => ApiError::template_invalid(),
            Refusal::Other(why) => ApiError::refused(why),
        }
    }
}
