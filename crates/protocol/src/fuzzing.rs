//! The properties the fuzz targets (`fuzz/`) check, kept here so that the
//! committed corpus replays through exactly the same code in every test
//! run (`tests/interop/fuzz_corpus.rs`), without a nightly toolchain.
//!
//! Each function panics when a property breaks; any other input, however
//! malformed, must return normally.

use crate::auth::{Authorization, string_to_sign};
use crate::keys::PublicKey;
use crate::model::UpdateUserCardRequest;
use crate::response::ResponseSignature;

/// `Authorization` parsing never panics, and what parses writes back to a
/// header that parses to the same value.
pub fn authorization_header(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = Authorization::parse(text) {
        let again =
            Authorization::parse(&parsed.to_header_value()).expect("a written header parses");
        assert_eq!(again, parsed);
    }
}

/// Body parsing and validation never panic; an accepted body validates
/// again as a typed request and survives a serialise/parse round trip.
pub fn update_body(data: &[u8]) {
    if let Ok(request) = UpdateUserCardRequest::from_request_parts("478515832665", data, None) {
        request.validate().expect("an accepted request validates");
        let body = serde_json::to_vec(&request).expect("requests serialise");
        let again = UpdateUserCardRequest::from_request_parts("478515832665", &body, None)
            .expect("its serialisation is accepted");
        assert_eq!(again, request);
    }
}

/// The string to sign is the five parts, each followed by `\n`, whatever
/// they hold.
pub fn signing_message(data: &[u8]) {
    let mut parts = data.splitn(4, |b| *b == 0);
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let target = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let nonce = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let timestamp = i64::try_from(data.len()).unwrap_or(0) - 100;
    let message = string_to_sign(&method, &target, timestamp, &nonce, body);
    let expected = format!("{method}\n{target}\n{timestamp}\n{nonce}\n");
    assert!(message.starts_with(expected.as_bytes()));
    assert_eq!(&message[expected.len()..message.len() - 1], body);
    assert_eq!(message.last(), Some(&b'\n'));
}

/// Response verification never panics and never accepts a signature the
/// fuzzer made up (it has no private key).
pub fn response_verification(data: &[u8], key: &PublicKey) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let signature = ResponseSignature {
        timestamp: parts.next().unwrap_or_default().to_owned(),
        nonce: parts.next().unwrap_or_default().to_owned(),
        serial: "PUB_KEY_ID_1".to_owned(),
        signature: parts.next().unwrap_or_default().to_owned(),
    };
    let body = parts.next().unwrap_or_default();
    let now = signature.timestamp.parse().unwrap_or(0);
    assert!(
        signature
            .verify("PUB_KEY_ID_1", key, body.as_bytes(), now)
            .is_err()
    );
}
