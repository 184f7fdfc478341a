//! Encryption of sensitive fields (`phone_number`,
//! `user_information.common_field_list[].value`).
//!
//! RSAES-OAEP with SHA-1 as the OAEP hash and SHA-1 for MGF1, an empty label,
//! standard base64 (Java: `RSA/ECB/OAEPWithSHA-1AndMGF1Padding`). Upstream
//! the brand encrypts under the WeChat Pay public key; downstream the server
//! encrypts under the brand certificate's public key.

use std::fmt;

use aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::keys::{PrivateKey, PublicKey};
use crate::secret::SecretString;

/// The longest plaintext, in bytes, that fits a 2048-bit key with SHA-1
/// OAEP: 256 − 2 × 20 − 2.
pub const MAX_PLAINTEXT_BYTES: usize = 214;

/// Why a field could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncryptError {
    /// The plaintext is longer than the key allows.
    TooLong {
        /// The plaintext's length in bytes.
        len: usize,
        /// The most this key takes.
        max: usize,
    },
    /// AWS-LC refused the operation.
    Failed,
}

impl fmt::Display for EncryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncryptError::TooLong { len, max } => write!(
                f,
                "plaintext is {len} bytes, RSA-OAEP (SHA-1) with this key takes at most {max}"
            ),
            EncryptError::Failed => f.write_str("RSA-OAEP encryption failed"),
        }
    }
}

impl std::error::Error for EncryptError {}

/// A field could not be decrypted. Deliberately says nothing about why (bad
/// base64, wrong length, wrong key, bad padding, not UTF-8 all look the
/// same), so that answers cannot serve as a padding oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptError;

impl fmt::Display for DecryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the ciphertext could not be decrypted")
    }
}

impl std::error::Error for DecryptError {}

/// Encrypts `plaintext` for the holder of `key`'s private half, as base64.
///
/// The OAEP seed comes from AWS-LC's generator, so two encryptions of the
/// same plaintext differ.
pub fn encrypt_field(key: &PublicKey, plaintext: &str) -> Result<String, EncryptError> {
    let oaep = key.oaep();
    let max = oaep.max_plaintext_size(&OAEP_SHA1_MGF1SHA1);
    if plaintext.len() > max {
        return Err(EncryptError::TooLong {
            len: plaintext.len(),
            max,
        });
    }
    let mut out = vec![0; oaep.ciphertext_size()];
    let ciphertext = oaep
        .encrypt(&OAEP_SHA1_MGF1SHA1, plaintext.as_bytes(), &mut out, None)
        .map_err(|_| EncryptError::Failed)?;
    Ok(STANDARD.encode(ciphertext))
}

/// Decrypts a base64 field with `key`. One private-key operation.
///
/// The plaintext must be UTF-8 of characters of 1 to 3 bytes, as every
/// string of this API; anything else is the same [`DecryptError`].
pub fn decrypt_field(key: &PrivateKey, ciphertext: &str) -> Result<SecretString, DecryptError> {
    let raw = STANDARD.decode(ciphertext).map_err(|_| DecryptError)?;
    let oaep = key.oaep();
    if raw.len() != oaep.key_size_bytes() {
        return Err(DecryptError);
    }
    let mut out = Zeroizing::new(vec![0; oaep.min_output_size()]);
    let plaintext = oaep
        .decrypt(&OAEP_SHA1_MGF1SHA1, &raw, &mut out, None)
        .map_err(|_| DecryptError)?;
    let text = std::str::from_utf8(plaintext).map_err(|_| DecryptError)?;
    if text.chars().any(|c| c.len_utf8() > 3) {
        return Err(DecryptError);
    }
    Ok(SecretString::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (PrivateKey, PublicKey) {
        let private = PrivateKey::from_pkcs8_pem(include_str!(
            "../tests/fixtures/test_wechatpay_private.pem"
        ))
        .unwrap();
        let public = private.public_key();
        (private, public)
    }

    #[test]
    fn encrypted_field_decrypts_to_the_plaintext() {
        let (private, public) = keys();
        let ciphertext = encrypt_field(&public, "13800138000").unwrap();
        assert_eq!(ciphertext.len(), 344);
        assert_eq!(
            decrypt_field(&private, &ciphertext).unwrap().expose(),
            "13800138000"
        );
    }

    #[test]
    fn encryption_is_randomised() {
        let (_, public) = keys();
        assert_ne!(
            encrypt_field(&public, "same").unwrap(),
            encrypt_field(&public, "same").unwrap()
        );
    }

    #[test]
    fn plaintext_of_214_bytes_is_accepted_and_215_refused() {
        let (private, public) = keys();
        let longest = "a".repeat(MAX_PLAINTEXT_BYTES);
        let ciphertext = encrypt_field(&public, &longest).unwrap();
        assert_eq!(
            decrypt_field(&private, &ciphertext).unwrap().expose(),
            longest
        );
        let err = encrypt_field(&public, &"a".repeat(215)).unwrap_err();
        assert_eq!(err, EncryptError::TooLong { len: 215, max: 214 });
        assert!(err.to_string().contains("at most 214"));
    }

    #[test]
    fn every_decryption_failure_is_the_same_error() {
        let (private, public) = keys();
        let good = encrypt_field(&public, "13800138000").unwrap();
        let mut flipped = STANDARD.decode(&good).unwrap();
        flipped[100] ^= 1;
        let other_key =
            PrivateKey::from_pkcs8_pem(include_str!("../tests/fixtures/test_brand_private.pem"))
                .unwrap();
        let cases = [
            ("not base64", "%%%".to_owned()),
            ("short", STANDARD.encode([1u8; 16])),
            ("flipped bit", STANDARD.encode(&flipped)),
            ("empty", String::new()),
        ];
        for (why, ciphertext) in cases {
            assert_eq!(
                decrypt_field(&private, &ciphertext),
                Err(DecryptError),
                "{why}"
            );
        }
        assert_eq!(
            decrypt_field(&other_key, &good),
            Err(DecryptError),
            "wrong key"
        );
    }
}
