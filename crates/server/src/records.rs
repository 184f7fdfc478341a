//! The records: the aggregates as the service keeps them (brands, card
//! templates, user cards with their personal data sealed, tokens, member
//! records, points exchanges, images, notifications and their attempts),
//! and the audit trail's entries. A floor below storage and the domain:
//! storage persists them, the domain's rules change them, neither owns
//! their shape.

use card_member_protocol::keys::PublicKey;
use card_member_protocol::model::{
    Card, CardType, CommonFieldFlag, CustomField, DateInfo, UserCardState,
};
use serde::{Deserialize, Serialize};

/// A brand allowed to call the API.
#[derive(Clone, Debug)]
pub struct BrandRecord {
    /// The brand ID.
    pub brand_id: String,
    /// The WeChat Pay public key ID associated with the brand: requests must
    /// carry it in `Wechatpay-Serial`.
    pub wechatpay_public_key_id: String,
    /// The brand's API certificates (at least one).
    pub certificates: Vec<BrandCertificate>,
    /// A suspended brand's verified requests are refused with 403
    /// `NO_AUTH`.
    pub suspended: bool,
    /// The brand's APIv3 key (the AES-256-GCM key of its notifications),
    /// sealed with the data key; `None` until one is set.
    pub api_v3_key: Option<Vec<u8>>,
}

/// One API certificate of a brand: the key that signs its requests and
/// under which its responses' sensitive fields are encrypted.
#[derive(Clone, Debug)]
pub struct BrandCertificate {
    /// Serial number, uppercase hex.
    pub serial_no: String,
    /// The certificate's public key.
    pub public_key: PublicKey,
}

/// A user card as stored: personal data sealed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct UserCardRecord {
    pub(crate) brand_id: String,
    pub(crate) card_id: String,
    pub(crate) user_card_code: String,
    pub(crate) openid: String,
    pub(crate) card_type: CardType,
    pub(crate) card_color: Option<String>,
    pub(crate) card_picture_url: Option<String>,
    pub(crate) phone_number: Option<Vec<u8>>,
    pub(crate) level: Option<String>,
    pub(crate) valid_date_information: DateInfo,
    pub(crate) pickup_time: String,
    pub(crate) user_information: Option<StoredUserInfo>,
    pub(crate) attach: Option<String>,
    /// `UNACTIVATED`, `EFFECTIVE` or `INVALID`; `EXPIRED` is derived when read.
    pub(crate) state: UserCardState,
    pub(crate) invalid_reason: Option<String>,
    pub(crate) invalid_time: Option<String>,
    pub(crate) create_time: String,
    pub(crate) modify_time: String,
    /// Incremented on every change.
    pub(crate) version: i64,
}

impl UserCardRecord {
    /// Invalidates the card as of `audit` (a card already invalid is left
    /// as it is); `false` if there was nothing to change.
    pub(crate) fn invalidate(&mut self, reason: Option<&str>, audit: &AuditEntry) -> bool {
        if self.state == UserCardState::Invalid {
            return false;
        }
        self.state = UserCardState::Invalid;
        self.invalid_reason = reason.map(str::to_owned);
        self.invalid_time = Some(audit.at.clone());
        self.modify_time.clone_from(&audit.at);
        self.version += 1;
        true
    }

    /// How this card is addressed.
    pub(crate) fn key(&self) -> UserCardKey<'_> {
        UserCardKey {
            brand_id: &self.brand_id,
            card_id: &self.card_id,
            user_card_code: &self.user_card_code,
        }
    }
}

/// `user_information` as stored: common values sealed (base64), custom
/// values as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredUserInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) common_field_list: Option<Vec<StoredCommonField>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) custom_field_list: Option<Vec<CustomField>>,
}

/// A common field with its sealed value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredCommonField {
    pub(crate) name: CommonFieldFlag,
    pub(crate) sealed: String,
}

/// The fields an update sets; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub(crate) struct UserCardPatch {
    pub(crate) card_color: Option<String>,
    pub(crate) card_picture_url: Option<String>,
    pub(crate) phone_number: Option<Vec<u8>>,
    pub(crate) level: Option<String>,
    pub(crate) valid_date_information: Option<DateInfo>,
    pub(crate) user_information: Option<StoredUserInfo>,
    pub(crate) attach: Option<String>,
}

impl UserCardPatch {
    /// The names of the fields this patch sets, for the audit trail.
    pub(crate) fn field_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut note = |present: bool, name: &'static str| {
            if present {
                names.push(name);
            }
        };
        note(self.card_color.is_some(), "card_color");
        note(self.card_picture_url.is_some(), "card_picture_url");
        note(self.phone_number.is_some(), "phone_number");
        note(self.level.is_some(), "level");
        note(
            self.valid_date_information.is_some(),
            "valid_date_information",
        );
        note(self.user_information.is_some(), "user_information");
        note(self.attach.is_some(), "attach");
        names
    }

    /// Applies the patch. Within `user_information`, each list sent
    /// replaces that list and a list not sent is kept (**Decision**: an
    /// update of the merchant field must not wipe the user's platform
    /// fields).
    pub(crate) fn apply(self, card: &mut UserCardRecord) {
        fn set<T>(slot: &mut Option<T>, value: Option<T>) {
            if value.is_some() {
                *slot = value;
            }
        }
        set(&mut card.card_color, self.card_color);
        set(&mut card.card_picture_url, self.card_picture_url);
        set(&mut card.phone_number, self.phone_number);
        set(&mut card.level, self.level);
        set(&mut card.attach, self.attach);
        if let Some(validity) = self.valid_date_information {
            card.valid_date_information = validity;
        }
        if let Some(info) = self.user_information {
            let stored = card
                .user_information
                .get_or_insert_with(StoredUserInfo::default);
            set(&mut stored.common_field_list, info.common_field_list);
            set(&mut stored.custom_field_list, info.custom_field_list);
        }
    }
}

/// One line of the audit trail: who changed which fields of which card,
/// never the values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// The brand that made the change.
    pub brand_id: String,
    /// The template.
    pub card_id: String,
    /// The card.
    pub user_card_code: String,
    /// The `Request-ID` of the request that made it.
    pub request_id: String,
    /// When (RFC 3339).
    pub at: String,
    /// `import` or `update`.
    pub action: String,
    /// The names of the fields set.
    pub fields: Vec<String>,
}

/// A card template as stored.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CardRecord {
    pub(crate) card: Card,
}

/// A pre-authorization token (FAMILY.md #10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenRecord {
    pub(crate) token: String,
    pub(crate) brand_id: String,
    pub(crate) card_id: String,
    pub(crate) openid: String,
    /// Unix seconds.
    pub(crate) expires_at: i64,
    pub(crate) created_at: String,
    /// When a sign-up used it.
    pub(crate) used_at: Option<String>,
}

/// A member's points-for-coupon request (FAMILY.md "Points") and, once
/// the brand decided, its decision and answer (JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PointExchangeRecord {
    pub(crate) brand_id: String,
    pub(crate) record_id: String,
    pub(crate) card_id: String,
    pub(crate) user_card_code: String,
    pub(crate) openid: String,
    pub(crate) exchange_coupon_template_id: String,
    pub(crate) deduct_points: i64,
    pub(crate) created_at: String,
    pub(crate) decision: Option<String>,
    pub(crate) answer: Option<String>,
}

/// An uploaded image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MediaRecord {
    /// `<sha256>.<extension>`: the same bytes are one image.
    pub(crate) media_id: String,
    pub(crate) brand_id: String,
    pub(crate) content_type: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) created_at: String,
}

/// A notification in the outbox: its envelope's fields, its resource's
/// plaintext sealed with the data key (personal data is never stored
/// readable), and where its delivery stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutboxRecord {
    pub(crate) id: String,
    pub(crate) brand_id: String,
    /// The template, whose `notify_url` it goes to.
    pub(crate) card_id: String,
    /// The user card it is about (empty when none).
    pub(crate) user_card_code: String,
    pub(crate) event_type: String,
    pub(crate) original_type: String,
    pub(crate) summary: String,
    pub(crate) sealed_resource: Vec<u8>,
    pub(crate) create_time: String,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    pub(crate) state: String,
    pub(crate) attempts: i64,
    /// Unix seconds.
    pub(crate) next_attempt_at: i64,
    pub(crate) last_error: Option<String>,
}

/// One delivery attempt of a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AttemptRecord {
    pub(crate) notification_id: String,
    /// 1 for the first.
    pub(crate) attempt: i64,
    pub(crate) at: String,
    /// The receiver's HTTP status, if it answered.
    pub(crate) status: Option<i64>,
    pub(crate) latency_ms: i64,
    pub(crate) error: Option<String>,
}

/// Where a notification goes after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeliveryOutcome {
    /// The receiver answered 2xx in time: done.
    Delivered,
    /// Try again at this Unix second.
    RetryAt(i64),
    /// The schedule is used up.
    Failed,
}

impl DeliveryOutcome {
    /// The outbox state and next attempt time (Unix seconds; `None` keeps
    /// the stored one) the outcome stores.
    pub(crate) fn columns(self) -> (&'static str, Option<i64>) {
        match self {
            DeliveryOutcome::Delivered => ("DELIVERED", None),
            DeliveryOutcome::RetryAt(at) => ("PENDING", Some(at)),
            DeliveryOutcome::Failed => ("FAILED", None),
        }
    }
}

/// A member activity entry or points sync to record once per
/// `out_request_no` (FAMILY.md #13, #14).
#[derive(Clone, Debug)]
pub(crate) struct MemberRecord {
    pub(crate) brand_id: String,
    /// `feed` or `points`.
    pub(crate) kind: &'static str,
    pub(crate) out_request_no: String,
    /// SHA-256 of the request as parsed: the same key with another digest
    /// is another request.
    pub(crate) request_digest: String,
    pub(crate) card_id: String,
    pub(crate) user_card_code: String,
    pub(crate) openid: String,
    /// The answer (JSON), stored so that a repeat answers it again.
    pub(crate) answer: String,
    pub(crate) created_at: String,
}

/// How a user card is addressed: within a brand, by template and code.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UserCardKey<'a> {
    pub(crate) brand_id: &'a str,
    pub(crate) card_id: &'a str,
    pub(crate) user_card_code: &'a str,
}

/// How a user card is addressed, owned (to move into a blocking task).
#[derive(Clone, Debug)]
pub(crate) struct UserCardId {
    pub(crate) brand_id: String,
    pub(crate) card_id: String,
    pub(crate) user_card_code: String,
}

impl UserCardId {
    pub(crate) fn key(&self) -> UserCardKey<'_> {
        UserCardKey {
            brand_id: &self.brand_id,
            card_id: &self.card_id,
            user_card_code: &self.user_card_code,
        }
    }
}

impl UserCardKey<'_> {
    pub(crate) fn to_id(self) -> UserCardId {
        UserCardId {
            brand_id: self.brand_id.to_owned(),
            card_id: self.card_id.to_owned(),
            user_card_code: self.user_card_code.to_owned(),
        }
    }
}
