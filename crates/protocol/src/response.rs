//! Response signatures.
//!
//! Every 2xx response is signed by the WeChat Pay private key over
//! `timestamp\nnonce\nbody\n` (the body's exact bytes) and carries the
//! headers named here. A client accepts a 2xx only when all four signature
//! headers are present, the serial is the configured WeChat Pay public key
//! ID, the timestamp is less than five minutes from its clock and the
//! signature verifies.

use std::fmt;

use crate::TIMESTAMP_WINDOW_SECS;
use crate::auth::SCHEME;
use crate::keys::{PrivateKey, PublicKey};

/// `Request-ID`: on every response, `<id>-<internal error number>`.
pub const HEADER_REQUEST_ID: &str = "Request-ID";
/// `Wechatpay-Nonce`.
pub const HEADER_NONCE: &str = "Wechatpay-Nonce";
/// `Wechatpay-Timestamp`: Unix seconds.
pub const HEADER_TIMESTAMP: &str = "Wechatpay-Timestamp";
/// `Wechatpay-Serial`: the WeChat Pay public key ID (also a request header).
pub const HEADER_SERIAL: &str = "Wechatpay-Serial";
/// `Wechatpay-Signature`: base64 signature.
pub const HEADER_SIGNATURE: &str = "Wechatpay-Signature";
/// `Wechatpay-Signature-Type`: always [`SCHEME`].
pub const HEADER_SIGNATURE_TYPE: &str = "Wechatpay-Signature-Type";

/// Builds the message a response signature covers.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    for part in [timestamp.as_bytes(), nonce.as_bytes(), body] {
        message.extend_from_slice(part);
        message.push(b'\n');
    }
    message
}

/// The signature headers of one response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseSignature {
    /// `Wechatpay-Timestamp`.
    pub timestamp: String,
    /// `Wechatpay-Nonce`.
    pub nonce: String,
    /// `Wechatpay-Serial`.
    pub serial: String,
    /// `Wechatpay-Signature`.
    pub signature: String,
}

impl ResponseSignature {
    /// Signs a response body. One private-key operation.
    pub fn sign(key: &PrivateKey, serial: &str, timestamp: i64, nonce: &str, body: &[u8]) -> Self {
        let timestamp = timestamp.to_string();
        let signature = key.sign_base64(&response_message(&timestamp, nonce, body));
        Self {
            timestamp,
            nonce: nonce.to_owned(),
            serial: serial.to_owned(),
            signature,
        }
    }

    /// Collects the four headers through `get` (a header-map lookup), in
    /// the order a reader checks them.
    pub fn from_headers<'a>(
        mut get: impl FnMut(&str) -> Option<&'a str>,
    ) -> Result<Self, ResponseVerifyError> {
        let mut take = |name: &'static str| {
            get(name)
                .map(str::to_owned)
                .ok_or(ResponseVerifyError::MissingHeader(name))
        };
        Ok(Self {
            timestamp: take(HEADER_TIMESTAMP)?,
            nonce: take(HEADER_NONCE)?,
            serial: take(HEADER_SERIAL)?,
            signature: take(HEADER_SIGNATURE)?,
        })
    }

    /// Checks the signature of `body` against the expected WeChat Pay public
    /// key ID and key, and the timestamp against `now` (Unix seconds).
    pub fn verify(
        &self,
        expected_serial: &str,
        key: &PublicKey,
        body: &[u8],
        now: i64,
    ) -> Result<(), ResponseVerifyError> {
        if self.serial != expected_serial {
            return Err(ResponseVerifyError::UnexpectedSerial {
                received: self.serial.chars().take(SERIAL_SHOWN).collect(),
                expected: expected_serial.to_owned(),
            });
        }
        let timestamp: i64 = self
            .timestamp
            .parse()
            .map_err(|_| ResponseVerifyError::InvalidTimestamp)?;
        if now.abs_diff(timestamp) >= TIMESTAMP_WINDOW_SECS.unsigned_abs() {
            return Err(ResponseVerifyError::StaleTimestamp { timestamp, now });
        }
        let message = response_message(&self.timestamp, &self.nonce, body);
        if key.verify_base64(&message, &self.signature) {
            Ok(())
        } else {
            Err(ResponseVerifyError::InvalidSignature)
        }
    }

    /// The headers to send: the four signature headers and the signature type.
    pub fn headers(&self) -> [(&'static str, &str); 5] {
        [
            (HEADER_NONCE, &self.nonce),
            (HEADER_TIMESTAMP, &self.timestamp),
            (HEADER_SERIAL, &self.serial),
            (HEADER_SIGNATURE, &self.signature),
            (HEADER_SIGNATURE_TYPE, SCHEME),
        ]
    }
}

/// How much of a `Wechatpay-Serial` that is not the one expected an
/// error keeps (an ID is 43 characters).
const SERIAL_SHOWN: usize = 64;

/// Why a response was not accepted as genuine.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseVerifyError {
    /// A signature header is missing.
    MissingHeader(&'static str),
    /// `Wechatpay-Serial` is not the configured WeChat Pay public key ID:
    /// the response was signed under another key (the provider's key
    /// changed, or the client was given another server's ID).
    UnexpectedSerial {
        /// The `Wechatpay-Serial` received (its first 64 characters: it
        /// comes from the wire).
        received: String,
        /// The WeChat Pay public key ID the client was given.
        expected: String,
    },
    /// `Wechatpay-Timestamp` is not a number.
    InvalidTimestamp,
    /// `Wechatpay-Timestamp` is five minutes or more from the local clock
    /// (a replayed response, or a clock that is wrong here or there).
    StaleTimestamp {
        /// `Wechatpay-Timestamp`, Unix seconds.
        timestamp: i64,
        /// The local clock when it was checked, Unix seconds.
        now: i64,
    },
    /// The signature does not verify (probe signatures included).
    InvalidSignature,
}

impl fmt::Display for ResponseVerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseVerifyError::MissingHeader(name) => {
                write!(f, "response header {name} is missing")
            }
            ResponseVerifyError::UnexpectedSerial { received, expected } => write!(
                f,
                "response is signed under WeChat Pay public key ID {received:?}, not the \
                 configured {expected:?}"
            ),
            ResponseVerifyError::InvalidTimestamp => {
                f.write_str("response timestamp is not a number")
            }
            ResponseVerifyError::StaleTimestamp { timestamp, now } => {
                let (seconds, side) = if timestamp < now {
                    (now.abs_diff(*timestamp), "behind")
                } else {
                    (timestamp.abs_diff(*now), "ahead of")
                };
                write!(
                    f,
                    "response timestamp {timestamp} is {seconds} s {side} the local clock \
                     ({now}): 5 minutes or more is refused (a replayed response, or a \
                     clock that is wrong here or there)"
                )
            }
            ResponseVerifyError::InvalidSignature => f.write_str(
                "invalid response signature: the body or its timestamp or nonce was changed on \
                 the way, or the WeChat Pay public key configured is not the one of its key ID",
            ),
        }
    }
}

impl std::error::Error for ResponseVerifyError {}

#[cfg(test)]
mod tests {
    use super::*;

    const SERIAL: &str = "PUB_KEY_ID_1652966817968711769710052651413695";
    const NONCE: &str = "e63973074d9d78aff8fb62277b5f95a0";

    fn key() -> PrivateKey {
        PrivateKey::from_pkcs8_pem(include_str!("../tests/fixtures/test_wechatpay_private.pem"))
            .unwrap()
    }

    #[test]
    fn response_message_is_timestamp_nonce_body_each_with_newline() {
        assert_eq!(
            response_message("1757488840", NONCE, b"{}"),
            b"1757488840\ne63973074d9d78aff8fb62277b5f95a0\n{}\n"
        );
        assert_eq!(response_message("1", "n", b""), b"1\nn\n\n");
    }

    #[test]
    fn signed_response_verifies() {
        let key = key();
        let signed = ResponseSignature::sign(&key, SERIAL, 1757488840, NONCE, b"{\"a\":1}");
        assert_eq!(
            signed.verify(SERIAL, &key.public_key(), b"{\"a\":1}", 1757488840 + 299),
            Ok(())
        );
    }

    #[test]
    fn response_with_changed_body_fails() {
        let key = key();
        let signed = ResponseSignature::sign(&key, SERIAL, 1757488840, NONCE, b"{\"a\":1}");
        assert_eq!(
            signed.verify(SERIAL, &key.public_key(), b"{\"a\":2}", 1757488840),
            Err(ResponseVerifyError::InvalidSignature)
        );
    }

    #[test]
    fn a_response_checked_with_another_key_under_its_id_is_refused_naming_both_causes() {
        let key = key();
        let signed = ResponseSignature::sign(&key, SERIAL, 1757488840, NONCE, b"{\"a\":1}");
        // The key's ID right, the key itself another: the same refusal as
        // a changed body, and what it says names both causes.
        let other = PrivateKey::generate().unwrap().public_key();
        let refused = signed
            .verify(SERIAL, &other, b"{\"a\":1}", 1757488840)
            .unwrap_err();
        assert_eq!(refused, ResponseVerifyError::InvalidSignature);
        assert!(
            refused.to_string().contains("changed on the way")
                && refused.to_string().contains("not the one of its key ID"),
            "{refused}"
        );
    }

    #[test]
    fn response_five_minutes_old_is_stale() {
        let key = key();
        let signed = ResponseSignature::sign(&key, SERIAL, 1757488840, NONCE, b"");
        let late = signed
            .verify(SERIAL, &key.public_key(), b"", 1757488840 + 300)
            .unwrap_err();
        assert_eq!(
            late,
            ResponseVerifyError::StaleTimestamp {
                timestamp: 1757488840,
                now: 1757488840 + 300
            }
        );
        assert!(
            late.to_string()
                .starts_with("response timestamp 1757488840 is 300 s behind the local clock"),
            "{late}"
        );
        let early = signed
            .verify(SERIAL, &key.public_key(), b"", 1757488840 - 300)
            .unwrap_err();
        assert!(
            early
                .to_string()
                .starts_with("response timestamp 1757488840 is 300 s ahead of the local clock"),
            "{early}"
        );
        assert!(
            signed
                .verify(SERIAL, &key.public_key(), b"", 1757488840 + 299)
                .is_ok(),
            "299 s is within the window"
        );
    }

    #[test]
    fn response_from_another_serial_is_refused() {
        let key = key();
        let signed = ResponseSignature::sign(&key, SERIAL, 1757488840, NONCE, b"");
        let refused = signed
            .verify("PUB_KEY_ID_0000", &key.public_key(), b"", 1757488840)
            .unwrap_err();
        assert_eq!(
            refused,
            ResponseVerifyError::UnexpectedSerial {
                received: SERIAL.to_owned(),
                expected: "PUB_KEY_ID_0000".to_owned()
            }
        );
        assert_eq!(
            refused.to_string(),
            format!(
                "response is signed under WeChat Pay public key ID \"{SERIAL}\", not the configured \"PUB_KEY_ID_0000\""
            )
        );
        // What comes from the wire is shown cut short, its control
        // characters escaped.
        let mut forged = signed;
        forged.serial = format!("\n{}", "X".repeat(1000));
        let shown = forged
            .verify(SERIAL, &key.public_key(), b"", 1757488840)
            .unwrap_err()
            .to_string();
        assert!(
            shown.contains(&format!("\"\\n{}\"", "X".repeat(63))),
            "{shown}"
        );
        assert!(!shown.contains('\n') && shown.len() < 200, "{shown}");
    }

    #[test]
    fn signtest_probe_is_an_invalid_signature_not_a_panic() {
        let key = key();
        let mut signed = ResponseSignature::sign(&key, SERIAL, 1757488840, NONCE, b"");
        signed.signature = "WECHATPAY/SIGNTEST/ZHVtbXkgc2lnbmF0dXJl".into();
        assert_eq!(
            signed.verify(SERIAL, &key.public_key(), b"", 1757488840),
            Err(ResponseVerifyError::InvalidSignature)
        );
    }

    #[test]
    fn missing_header_is_named() {
        let err = ResponseSignature::from_headers(|name| (name != HEADER_SIGNATURE).then_some("1"))
            .unwrap_err();
        assert_eq!(err, ResponseVerifyError::MissingHeader(HEADER_SIGNATURE));
    }
}
