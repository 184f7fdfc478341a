//! Personal data at rest: AES-256-GCM under the data key, each value bound
//! (as associated data) to its brand, template, card and field, so a sealed
//! value copied to another card or field does not open.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use card_member_protocol::secret::{REDACTED, SecretString};

/// Where a sealed value belongs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SealContext<'a> {
    pub(crate) brand_id: &'a str,
    pub(crate) card_id: &'a str,
    pub(crate) user_card_code: &'a str,
    pub(crate) field: &'a str,
}

impl SealContext<'_> {
    fn aad(&self) -> Vec<u8> {
        // Lengths first, so that no two contexts encode alike.
        let mut aad = b"card-member/v1".to_vec();
        for part in [self.brand_id, self.card_id, self.user_card_code, self.field] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// The data key. `Debug` is redacted.
pub(crate) struct DataKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

/// A sealed value could not be opened: the data key is wrong or the
/// database was tampered with.
#[derive(Debug)]
pub(crate) struct OpenError;

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sealed value did not open: wrong data key or tampered data")
    }
}

impl DataKey {
    pub(crate) const LEN: usize = 32;

    pub(crate) fn new(bytes: &[u8; Self::LEN]) -> Self {
        let key =
            UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte key is a valid AES-256 key");
        Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        }
    }

    /// `nonce || ciphertext || tag`.
    pub(crate) fn seal(&self, context: SealContext<'_>, plaintext: &SecretString) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("the system RNG works");
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.expose().len() + 16);
        sealed.extend_from_slice(&nonce);
        let mut in_out = plaintext.expose().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.aad()),
                &mut in_out,
            )
            .expect("AES-GCM sealing of a short value cannot fail");
        sealed.extend_from_slice(&in_out);
        in_out.fill(0);
        sealed
    }

    pub(crate) fn open(
        &self,
        context: SealContext<'_>,
        sealed: &[u8],
    ) -> Result<SecretString, OpenError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(context.aad()), &mut in_out)
            .map_err(|_| OpenError)?;
        let text = String::from_utf8(plaintext.to_vec()).map_err(|_| OpenError)?;
        in_out.fill(0);
        Ok(SecretString::from(text))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({REDACTED})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(field: &str) -> SealContext<'_> {
        SealContext {
            brand_id: "1001622624",
            card_id: "card",
            user_card_code: "478515832665",
            field,
        }
    }

    #[test]
    fn sealed_value_opens_in_its_own_context_only() {
        let key = DataKey::new(&[7; 32]);
        let sealed = key.seal(context("phone_number"), &SecretString::new("13800138000"));
        assert!(!sealed.windows(11).any(|w| w == b"13800138000"));
        assert_eq!(
            key.open(context("phone_number"), &sealed).unwrap().expose(),
            "13800138000"
        );
        assert!(key.open(context("USER_FORM_FLAG_NAME"), &sealed).is_err());
        assert!(
            DataKey::new(&[8; 32])
                .open(context("phone_number"), &sealed)
                .is_err()
        );
    }

    #[test]
    fn data_key_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", DataKey::new(&[1; 32])),
            "DataKey(** redacted **)"
        );
    }
}
