//! Receiving notifications: what the provider (or a card-member server)
//! POSTs to a template's `notify_url`.
//!
//! [`Receiver::receive`] checks, in order, each stage with its own error:
//! the signature headers (present, the configured WeChat Pay public key
//! ID, a timestamp less than five minutes from now, a signature over the
//! exact raw body), the envelope (JSON of the documented shape), the
//! resource (AES-256-GCM under the brand's APIv3 key), and the event (the
//! plaintext of the event type). Only then is the event returned, typed.
//! Answer 2xx quickly and work afterwards: a notification not answered
//! within five seconds is sent again, with the same `id` (deduplicate on
//! it).
//!
//! ```no_run
//! # fn demo(headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use card_member_client::notify::{Event, Receiver};
//!
//! let receiver = Receiver::from_credentials_file("card-member-data/dev/credentials.json")?;
//! let notification = receiver.receive(|name| headers.get(name)?.to_str().ok(), body)?;
//! if let Event::UserCardCreate(card) = &notification.event {
//!     println!("{} signed up: card {}", card.openid, card.user_card_code);
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use card_member_protocol::keys::PublicKey;
use card_member_protocol::notify::open_resource;
pub use card_member_protocol::notify::{
    EncryptedResource, Envelope, Event, PointExchangeCoupon, ResourceError, SyncUserPoint,
};
use card_member_protocol::response::{ResponseSignature, ResponseVerifyError};
use card_member_protocol::secret::SecretString;
use serde::Deserialize;

/// A verified, decrypted notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Its ID: the same on every retry.
    pub id: String,
    /// When the event happened.
    pub create_time: String,
    /// The event's summary.
    pub summary: String,
    /// The event, typed.
    pub event: Event,
}

/// Why a notification was not accepted, by stage.
#[derive(Debug)]
pub enum NotifyError {
    /// The signature headers: missing, another key ID, stale, or a
    /// signature that does not verify. Answer 401.
    Signature(ResponseVerifyError),
    /// The body is not a notification envelope. Answer 400.
    Envelope(String),
    /// The resource does not decrypt under the APIv3 key (a wrong key, or
    /// altered content). Answer 400; check the key.
    Decrypt(ResourceError),
    /// The plaintext is not the event type's content.
    Event(String),
    /// The receiver could not be set up.
    Config(String),
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signature(err) => write!(f, "signature: {err}"),
            Self::Envelope(err) => write!(f, "envelope: {err}"),
            Self::Decrypt(err) => write!(f, "decryption: {err}"),
            Self::Event(err) => write!(f, "event: {err}"),
            Self::Config(err) => write!(f, "receiver: {err}"),
        }
    }
}

impl std::error::Error for NotifyError {}

/// Checks and opens notifications for one brand.
#[derive(Clone)]
pub struct Receiver {
    wechatpay_public_key_id: String,
    wechatpay_key: PublicKey,
    api_v3_key: SecretString,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("wechatpay_public_key_id", &self.wechatpay_public_key_id)
            .field("api_v3_key", &self.api_v3_key)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Credentials {
    wechatpay_public_key_id: String,
    wechatpay_public_key_file: String,
    api_v3_key: Option<String>,
}

impl Receiver {
    /// A receiver for notifications signed under the WeChat Pay public key
    /// `wechatpay_key` (ID `wechatpay_public_key_id`), encrypted with
    /// `api_v3_key` (32 bytes).
    pub fn new(
        wechatpay_public_key_id: impl Into<String>,
        wechatpay_key: PublicKey,
        api_v3_key: SecretString,
    ) -> Result<Self, NotifyError> {
        if api_v3_key.expose().len() != 32 {
            return Err(NotifyError::Config(format!(
                "the APIv3 key must be 32 bytes, got {}",
                api_v3_key.expose().len()
            )));
        }
        Ok(Self {
            wechatpay_public_key_id: wechatpay_public_key_id.into(),
            wechatpay_key,
            api_v3_key,
        })
    }

    /// A receiver for the brand of a `credentials.json` (the development
    /// setup of `card-member serve` writes one, with `api_v3_key`).
    pub fn from_credentials_file(path: impl AsRef<Path>) -> Result<Self, NotifyError> {
        let path = path.as_ref();
        let config = |message: String| NotifyError::Config(message);
        let text = std::fs::read_to_string(path)
            .map_err(|err| config(format!("cannot read {}: {err}", path.display())))?;
        let file: Credentials = serde_json::from_str(&text)
            .map_err(|err| config(format!("{}: {err}", path.display())))?;
        let api_v3_key = file
            .api_v3_key
            .ok_or_else(|| config(format!("{} has no api_v3_key", path.display())))?;
        let pem = std::fs::read_to_string(&file.wechatpay_public_key_file).map_err(|err| {
            config(format!(
                "cannot read {}: {err}",
                file.wechatpay_public_key_file
            ))
        })?;
        let key = PublicKey::from_spki_pem(&pem)
            .map_err(|err| config(format!("{}: {err}", file.wechatpay_public_key_file)))?;
        Self::new(
            file.wechatpay_public_key_id,
            key,
            SecretString::new(api_v3_key),
        )
    }

    /// Checks and opens a notification: `header` looks a request header
    /// up, `body` is the raw body as received.
    pub fn receive<'a>(
        &self,
        header: impl FnMut(&str) -> Option<&'a str>,
        body: &[u8],
    ) -> Result<Notification, NotifyError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.receive_at(header, body, now)
    }

    /// [`Receiver::receive`] with the clock given (Unix seconds).
    pub fn receive_at<'a>(
        &self,
        header: impl FnMut(&str) -> Option<&'a str>,
        body: &[u8],
        now: i64,
    ) -> Result<Notification, NotifyError> {
        let signature = ResponseSignature::from_headers(header).map_err(NotifyError::Signature)?;
        signature
            .verify(
                &self.wechatpay_public_key_id,
                &self.wechatpay_key,
                body,
                now,
            )
            .map_err(NotifyError::Signature)?;
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|err| NotifyError::Envelope(err.to_string()))?;
        let plaintext = open_resource(self.api_v3_key.expose().as_bytes(), &envelope.resource)
            .map_err(NotifyError::Decrypt)?;
        let event =
            Event::from_plaintext(&envelope.event_type, &plaintext).map_err(NotifyError::Event)?;
        Ok(Notification {
            id: envelope.id,
            create_time: envelope.create_time,
            summary: envelope.summary,
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use card_member_protocol::keys::PrivateKey;
    use card_member_protocol::notify::{ASSOCIATED_DATA, SYNC_USER_POINT, seal_resource};

    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    /// A notification as a server sends it, signed at `timestamp`.
    fn sent(wechatpay: &PrivateKey, timestamp: i64) -> (ResponseSignature, Vec<u8>) {
        let plaintext = br#"{"brand_id":"b","card_id":"c","openid":"o","user_card_code":"1"}"#;
        let envelope = Envelope {
            id: "n-1".into(),
            create_time: "2026-11-29T10:00:00+08:00".into(),
            event_type: SYNC_USER_POINT.into(),
            resource_type: "encrypt-resource".into(),
            summary: "同步用户积分".into(),
            resource: seal_resource(KEY.as_bytes(), "sync_user_point", "abcdefghijkl", plaintext)
                .unwrap(),
        };
        assert_eq!(envelope.resource.associated_data, ASSOCIATED_DATA);
        let body = serde_json::to_vec(&envelope).unwrap();
        let signature =
            ResponseSignature::sign(wechatpay, "PUB_KEY_ID_1", timestamp, "nonce", &body);
        (signature, body)
    }

    fn header<'a>(signature: &'a ResponseSignature) -> impl FnMut(&str) -> Option<&'a str> {
        move |name| {
            signature
                .headers()
                .into_iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        }
    }

    #[test]
    fn each_stage_fails_with_its_own_error() {
        let wechatpay = PrivateKey::generate().unwrap();
        let receiver = Receiver::new(
            "PUB_KEY_ID_1",
            wechatpay.public_key(),
            SecretString::new(KEY),
        )
        .unwrap();
        let now = 1_800_000_000;
        let (signature, body) = sent(&wechatpay, now);
        let notification = receiver.receive_at(header(&signature), &body, now).unwrap();
        assert_eq!(notification.id, "n-1");
        assert!(matches!(notification.event, Event::SyncUserPoint(_)));
        assert!(matches!(
            receiver.receive_at(header(&signature), &body, now + 300),
            Err(NotifyError::Signature(
                ResponseVerifyError::StaleTimestamp { .. }
            ))
        ));
        let mut altered = body.clone();
        altered.push(b' ');
        assert!(matches!(
            receiver.receive_at(header(&signature), &altered, now),
            Err(NotifyError::Signature(
                ResponseVerifyError::InvalidSignature
            ))
        ));
        let other = Receiver::new(
            "PUB_KEY_ID_2",
            wechatpay.public_key(),
            SecretString::new(KEY),
        )
        .unwrap();
        let refused = other.receive_at(header(&signature), &body, now);
        assert!(matches!(
            &refused,
            Err(NotifyError::Signature(
                ResponseVerifyError::UnexpectedSerial { .. }
            ))
        ));
        // The receiver's log says which key signed and which it expected.
        let said = refused.err().unwrap().to_string();
        assert_eq!(
            said,
            "signature: response is signed under WeChat Pay public key ID \"PUB_KEY_ID_1\", \
             not the configured \"PUB_KEY_ID_2\""
        );
        let not_json = ResponseSignature::sign(&wechatpay, "PUB_KEY_ID_1", now, "n", b"[]");
        assert!(matches!(
            receiver.receive_at(header(&not_json), b"[]", now),
            Err(NotifyError::Envelope(_))
        ));
        let wrong_key = Receiver::new(
            "PUB_KEY_ID_1",
            wechatpay.public_key(),
            SecretString::new("fedcba9876543210fedcba9876543210"),
        )
        .unwrap();
        assert!(matches!(
            wrong_key.receive_at(header(&signature), &body, now),
            Err(NotifyError::Decrypt(ResourceError::Tag))
        ));
    }
}
