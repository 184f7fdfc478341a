//! Notifications to a brand's `notify_url` (FAMILY.md "Notifications"):
//! the envelope, its encrypted resource (AES-256-GCM under the brand's
//! 32-byte APIv3 key) and the events it carries. The request is signed by
//! the WeChat Pay key exactly like a response
//! ([`crate::response::ResponseSignature`]).
//!
//! The server seals and sends with [`seal_resource`]; a receiver opens with
//! [`open_resource`] and reads the plaintext as an [`Event`].

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::user_cards::UserCard;

/// `resource_type` of every notification.
pub const RESOURCE_TYPE: &str = "encrypt-resource";
/// `resource.algorithm`.
pub const ALGORITHM: &str = "AEAD_AES_256_GCM";
/// The associated data every notification's resource is sealed with
/// (**Decision**: the pages do not fix it; the provider's payment
/// notifications use a short ASCII word, so does this).
pub const ASSOCIATED_DATA: &str = "brand_member_card";

/// A user signed up: the card, `UNACTIVATED` until the brand confirms.
pub const USER_CARD_CREATE: &str = "BRAND_MEMBER_CARD.USER_CARD.CREATE";
/// A user deleted their card in the app.
pub const USER_CARD_DELETE: &str = "BRAND_MEMBER_CARD.USER_CARD.DELETE";
/// A member asked to trade points for a coupon.
pub const POINT_EXCHANGE_COUPON: &str = "BRAND_MEMBER_CARD.POINT_EXCHANGE_COUPON";
/// The provider asks for a member's points balance.
pub const SYNC_USER_POINT: &str = "BRAND_MEMBER_CARD.SYNC_USER_POINT";

/// The four events, their `original_type`s and summaries.
pub const EVENTS: [(&str, &str, &str); 4] = [
    (USER_CARD_CREATE, "user_card", "用户开卡"),
    (USER_CARD_DELETE, "user_card", "用户删卡"),
    (POINT_EXCHANGE_COUPON, "point_coupon", "积分兑换商品券"),
    (SYNC_USER_POINT, "sync_user_point", "同步用户积分"),
];

/// The JSON body POSTed to `notify_url`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The notification's ID: the same on every retry.
    pub id: String,
    /// When the event happened (RFC 3339).
    pub create_time: String,
    /// One of the four events.
    pub event_type: String,
    /// Always `encrypt-resource`.
    pub resource_type: String,
    /// A short description.
    pub summary: String,
    /// The event's content, encrypted.
    pub resource: EncryptedResource,
}

/// The sealed content of a notification.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    /// `user_card`, `point_coupon` or `sync_user_point`.
    pub original_type: String,
    /// Always `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// Base64 of the ciphertext followed by the 16-byte tag.
    pub ciphertext: String,
    /// The associated data, as its UTF-8 string.
    pub associated_data: String,
    /// The 12-character nonce, as its UTF-8 string.
    pub nonce: String,
}

impl fmt::Debug for EncryptedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedResource")
            .field("original_type", &self.original_type)
            .field("algorithm", &self.algorithm)
            .field("ciphertext", &crate::secret::REDACTED)
            .finish_non_exhaustive()
    }
}

/// Why a resource could not be sealed or opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceError {
    /// The APIv3 key is not 32 bytes.
    KeyLength(usize),
    /// The nonce is not 12 bytes.
    NonceLength(usize),
    /// `algorithm` is not `AEAD_AES_256_GCM`.
    Algorithm(String),
    /// The ciphertext is not base64.
    Base64,
    /// The tag does not verify: another key, or altered content.
    Tag,
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyLength(n) => write!(f, "the APIv3 key must be 32 bytes, got {n}"),
            Self::NonceLength(n) => write!(f, "the nonce must be 12 bytes, got {n}"),
            Self::Algorithm(a) => write!(f, "unsupported algorithm {a:?}"),
            Self::Base64 => f.write_str("the ciphertext is not base64"),
            Self::Tag => f.write_str(
                "the resource does not decrypt under this APIv3 key (wrong key, or altered)",
            ),
        }
    }
}

impl std::error::Error for ResourceError {}

fn key(api_v3_key: &[u8]) -> Result<LessSafeKey, ResourceError> {
    let unbound = UnboundKey::new(&AES_256_GCM, api_v3_key)
        .map_err(|_| ResourceError::KeyLength(api_v3_key.len()))?;
    Ok(LessSafeKey::new(unbound))
}

fn nonce(text: &str) -> Result<Nonce, ResourceError> {
    Nonce::try_assume_unique_for_key(text.as_bytes())
        .map_err(|_| ResourceError::NonceLength(text.len()))
}

/// Seals `plaintext` under the brand's APIv3 key with a 12-character
/// `nonce_text` (unique per notification attempt).
pub fn seal_resource(
    api_v3_key: &[u8],
    original_type: &str,
    nonce_text: &str,
    plaintext: &[u8],
) -> Result<EncryptedResource, ResourceError> {
    let key = key(api_v3_key)?;
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(
        nonce(nonce_text)?,
        Aad::from(ASSOCIATED_DATA.as_bytes()),
        &mut in_out,
    )
    .map_err(|_| ResourceError::Tag)?;
    Ok(EncryptedResource {
        original_type: original_type.to_owned(),
        algorithm: ALGORITHM.to_owned(),
        ciphertext: STANDARD.encode(in_out),
        associated_data: ASSOCIATED_DATA.to_owned(),
        nonce: nonce_text.to_owned(),
    })
}

/// Opens a resource with the brand's APIv3 key: its plaintext.
pub fn open_resource(
    api_v3_key: &[u8],
    resource: &EncryptedResource,
) -> Result<Vec<u8>, ResourceError> {
    if resource.algorithm != ALGORITHM {
        return Err(ResourceError::Algorithm(resource.algorithm.clone()));
    }
    let key = key(api_v3_key)?;
    let mut in_out = STANDARD
        .decode(&resource.ciphertext)
        .map_err(|_| ResourceError::Base64)?;
    let plaintext = key
        .open_in_place(
            nonce(&resource.nonce)?,
            Aad::from(resource.associated_data.as_bytes()),
            &mut in_out,
        )
        .map_err(|_| ResourceError::Tag)?;
    Ok(plaintext.to_vec())
}

/// `POINT_EXCHANGE_COUPON`'s content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointExchangeCoupon {
    /// The request's ID: the brand answers with it (endpoint 15).
    pub record_id: String,
    /// The brand.
    pub brand_id: String,
    /// The template.
    pub card_id: String,
    /// The member.
    pub openid: String,
    /// The member's card.
    pub user_card_code: String,
    /// The points to deduct.
    pub deduct_points: u64,
    /// The exchange template.
    pub exchange_coupon_template_id: String,
}

/// `SYNC_USER_POINT`'s content: whose balance the provider wants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncUserPoint {
    /// The brand.
    pub brand_id: String,
    /// The template.
    pub card_id: String,
    /// The member.
    pub openid: String,
    /// The member's card.
    pub user_card_code: String,
}

/// A notification's event, its content decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A user signed up (the card awaits the brand's confirm).
    UserCardCreate(UserCard),
    /// A user deleted their card.
    UserCardDelete(UserCard),
    /// A member asked to trade points for a coupon.
    PointExchangeCoupon(PointExchangeCoupon),
    /// The provider asks for a member's balance.
    SyncUserPoint(SyncUserPoint),
    /// An event this version does not know. The provider adds events: a
    /// receiver acknowledges one (2xx) rather than refuse it, or the
    /// provider retries it for a day.
    Other {
        /// Its `event_type`.
        event_type: String,
        /// Its content, as JSON.
        content: serde_json::Value,
    },
}

impl Event {
    /// The event's `event_type`.
    pub fn event_type(&self) -> &str {
        match self {
            Self::UserCardCreate(_) => USER_CARD_CREATE,
            Self::UserCardDelete(_) => USER_CARD_DELETE,
            Self::PointExchangeCoupon(_) => POINT_EXCHANGE_COUPON,
            Self::SyncUserPoint(_) => SYNC_USER_POINT,
            Self::Other { event_type, .. } => event_type,
        }
    }

    /// Reads a decrypted resource of `event_type`.
    pub fn from_plaintext(event_type: &str, plaintext: &[u8]) -> Result<Self, String> {
        let read = |err: serde_json::Error| format!("{event_type}: {err}");
        Ok(match event_type {
            USER_CARD_CREATE => {
                Self::UserCardCreate(serde_json::from_slice(plaintext).map_err(read)?)
            }
            USER_CARD_DELETE => {
                Self::UserCardDelete(serde_json::from_slice(plaintext).map_err(read)?)
            }
            POINT_EXCHANGE_COUPON => {
                Self::PointExchangeCoupon(serde_json::from_slice(plaintext).map_err(read)?)
            }
            SYNC_USER_POINT => {
                Self::SyncUserPoint(serde_json::from_slice(plaintext).map_err(read)?)
            }
            other => Self::Other {
                event_type: other.to_owned(),
                content: serde_json::from_slice(plaintext).map_err(read)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn an_unknown_event_type_is_read_as_other_not_refused() {
        let event = Event::from_plaintext("BRAND_MEMBER_CARD.NEW", b"{\"x\":1}").unwrap();
        assert_eq!(event.event_type(), "BRAND_MEMBER_CARD.NEW");
        assert!(matches!(event, Event::Other { content, .. } if content["x"] == 1));
        assert!(
            Event::from_plaintext(SYNC_USER_POINT, b"{}").is_err(),
            "a known one is checked"
        );
    }

    #[test]
    fn a_sealed_resource_opens_with_the_same_key_only() {
        let sealed = seal_resource(KEY, "sync_user_point", "abcdefghijkl", b"{\"x\":1}").unwrap();
        assert_eq!(sealed.algorithm, "AEAD_AES_256_GCM");
        assert_eq!(open_resource(KEY, &sealed).unwrap(), b"{\"x\":1}");
        let other = b"fedcba9876543210fedcba9876543210";
        assert_eq!(open_resource(other, &sealed), Err(ResourceError::Tag));
        let mut altered = sealed;
        altered.associated_data = "other".into();
        assert_eq!(open_resource(KEY, &altered), Err(ResourceError::Tag));
        assert_eq!(
            seal_resource(b"short", "x", "abcdefghijkl", b"").unwrap_err(),
            ResourceError::KeyLength(5)
        );
    }

    #[test]
    fn the_tag_is_appended_to_the_ciphertext() {
        let sealed = seal_resource(KEY, "x", "abcdefghijkl", b"12345").unwrap();
        assert_eq!(STANDARD.decode(sealed.ciphertext).unwrap().len(), 5 + 16);
    }
}
