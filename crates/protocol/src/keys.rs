//! RSA keys and X.509 certificates, loaded from PEM.
//!
//! - [`PrivateKey`]: a PKCS#8 RSA private key (`-----BEGIN PRIVATE KEY-----`):
//!   the brand's API certificate key (signs requests, decrypts response
//!   fields) or the WeChat Pay key (signs responses, decrypts request fields).
//! - [`PublicKey`]: an SPKI RSA public key (`-----BEGIN PUBLIC KEY-----`).
//! - [`Certificate`]: an X.509 certificate (`-----BEGIN CERTIFICATE-----`),
//!   reduced to what the protocol needs: its public key and its serial number
//!   as uppercase hex, as `openssl x509 -noout -serial` prints it.
//!
//! The keys are parsed once and keep AWS-LC's parsed form, so that signing,
//! verifying and OAEP operations do not re-parse DER on every call.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::secret::REDACTED;

/// Why a key or certificate could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not PEM, or not the PEM type expected.
    Pem(String),
    /// The DER inside is not an acceptable RSA key (2048 to 8192 bits).
    Rejected(&'static str),
    /// The certificate could not be parsed.
    Certificate(String),
    /// Key generation failed.
    Generation,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Pem(why) => write!(f, "not a usable PEM document: {why}"),
            KeyError::Rejected(why) => write!(f, "not an acceptable RSA key: {why}"),
            KeyError::Certificate(why) => write!(f, "not a usable X.509 certificate: {why}"),
            KeyError::Generation => f.write_str("RSA key generation failed"),
        }
    }
}

impl std::error::Error for KeyError {}

fn decode_pem(pem: &str, expected: &'static str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes())
        .map_err(|err| KeyError::Pem(err.to_string()))?;
    let der = Zeroizing::new(der);
    if label != expected {
        let hint = match label {
            "RSA PRIVATE KEY" => {
                "; this is a PKCS#1 key, convert it with `openssl pkcs8 -topk8 -nocrypt`"
            }
            "RSA PUBLIC KEY" => {
                "; this is a PKCS#1 key, convert it with `openssl rsa -RSAPublicKey_in -pubout`"
            }
            _ => "",
        };
        return Err(KeyError::Pem(format!(
            "expected a \"{expected}\" PEM block, found \"{label}\"{hint}"
        )));
    }
    Ok(der)
}

fn encode_pem(label: &'static str, der: &[u8]) -> String {
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der)
        .expect("PEM encoding of an in-memory DER document cannot fail")
}

/// An RSA private key (PKCS#8). `Debug` prints `** redacted **`.
pub struct PrivateKey {
    signing: KeyPair,
    decrypting: OaepPrivateDecryptingKey,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl PrivateKey {
    /// Loads a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let der = decode_pem(pem, "PRIVATE KEY")?;
        Self::from_pkcs8_der(&der)
    }

    /// Loads a PKCS#8 DER document.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let signing =
            KeyPair::from_pkcs8(der).map_err(|err| KeyError::Rejected(err.description_()))?;
        let decrypting = PrivateDecryptingKey::from_pkcs8(der)
            .map_err(|err| KeyError::Rejected(err.description_()))?;
        let decrypting = OaepPrivateDecryptingKey::new(decrypting)
            .map_err(|_| KeyError::Rejected("not usable for RSA-OAEP"))?;
        Ok(Self {
            signing,
            decrypting,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// Generates a fresh 2048-bit key.
    ///
    /// This is the one function of the crate that draws randomness itself:
    /// AWS-LC generates RSA keys from its own generator.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generation)?;
        let der = AsDer::<Pkcs8V1Der<'_>>::as_der(&pair).map_err(|_| KeyError::Generation)?;
        Self::from_pkcs8_der(der.as_ref())
    }

    /// The key as a PKCS#8 PEM document. The caller decides where it may go.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(encode_pem("PRIVATE KEY", &self.pkcs8))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let der =
            AsDer::<PublicKeyX509Der<'_>>::as_der(signature::KeyPair::public_key(&self.signing))
                .expect("a parsed RSA key pair always encodes its public key");
        PublicKey::from_spki_der(der.as_ref())
            .expect("a parsed RSA key pair always has a valid public key")
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`: one private-key
    /// operation. The signature is deterministic.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.signing.public_modulus_len()];
        self.signing
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("PKCS#1 v1.5 signing with a valid key and a right-sized buffer cannot fail");
        signature
    }

    /// [`PrivateKey::sign`], encoded as standard base64 with padding.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        STANDARD.encode(self.sign(message))
    }

    pub(crate) fn oaep(&self) -> &OaepPrivateDecryptingKey {
        &self.decrypting
    }

    /// The PKCS#8 DER document, for the rare operations that need another
    /// parsed form (the diagnosis of a ciphertext that did not open).
    pub(crate) fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Signs with another scheme than the protocol's: what a mistaken
    /// client does, for the diagnosis's tests.
    #[cfg(test)]
    pub(crate) fn sign_as(
        &self,
        scheme: &'static dyn signature::RsaEncoding,
        message: &[u8],
    ) -> Vec<u8> {
        let mut signature = vec![0; self.signing.public_modulus_len()];
        self.signing
            .sign(
                scheme,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("signing with a valid key and a right-sized buffer cannot fail");
        signature
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({REDACTED})")
    }
}

impl Clone for PrivateKey {
    fn clone(&self) -> Self {
        Self::from_pkcs8_der(&self.pkcs8).expect("a key that parsed once parses again")
    }
}

/// An RSA public key (X.509 SubjectPublicKeyInfo). Cheap to clone.
#[derive(Clone)]
pub struct PublicKey {
    verifying: ParsedPublicKey,
    encrypting: Arc<OaepPublicEncryptingKey>,
    spki: Arc<[u8]>,
}

impl PublicKey {
    /// Loads an SPKI PEM document (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_spki_pem(pem: &str) -> Result<Self, KeyError> {
        let der = decode_pem(pem, "PUBLIC KEY")?;
        Self::from_spki_der(&der)
    }

    /// Loads an SPKI DER document.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let encrypting = PublicEncryptingKey::from_der(der)
            .map_err(|err| KeyError::Rejected(err.description_()))?;
        let encrypting = OaepPublicEncryptingKey::new(encrypting)
            .map_err(|_| KeyError::Rejected("not usable for RSA-OAEP"))?;
        let verifying = ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der)
            .map_err(|err| KeyError::Rejected(err.description_()))?;
        Ok(Self {
            verifying,
            encrypting: Arc::new(encrypting),
            spki: der.into(),
        })
    }

    /// The key as an SPKI PEM document.
    pub fn to_spki_pem(&self) -> String {
        encode_pem("PUBLIC KEY", &self.spki)
    }

    /// The key as SPKI DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// A serial number that names this key: the first 20 bytes of the
    /// SHA-256 of its SPKI, as 40 uppercase hex digits (the shape of a
    /// certificate serial). card-member uses it for keys that come without
    /// a certificate (`card-member keys generate`, the development setup).
    pub fn derived_serial(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.spki);
        digest.as_ref()[..20]
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect()
    }

    /// Whether `signature` is a valid RSASSA-PKCS1-v1_5 SHA-256 signature of
    /// `message` under this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifying.verify_sig(message, signature).is_ok()
    }

    /// [`PublicKey::verify`] for a base64 signature. Anything that is not
    /// standard base64 (a `WECHATPAY/SIGNTEST/` probe, say) does not verify.
    pub fn verify_base64(&self, message: &[u8], signature: &str) -> bool {
        match STANDARD.decode(signature) {
            Ok(raw) => self.verify(message, &raw),
            Err(_) => false,
        }
    }

    /// The key's size in bytes: the length of its signatures and
    /// ciphertexts.
    pub fn modulus_len(&self) -> usize {
        self.encrypting.key_size_bytes()
    }

    pub(crate) fn oaep(&self) -> &OaepPublicEncryptingKey {
        &self.encrypting
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki == other.spki
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("spki_len", &self.spki.len())
            .finish_non_exhaustive()
    }
}

/// An X.509 certificate, reduced to its serial number and public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    serial_no: String,
    public_key: PublicKey,
}

impl Certificate {
    /// Loads a PEM certificate (`-----BEGIN CERTIFICATE-----`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        use x509_cert::der::{Decode as _, Encode as _};

        let der = decode_pem(pem, "CERTIFICATE")?;
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|err| KeyError::Certificate(err.to_string()))?;
        let serial_no = serial_hex(cert.tbs_certificate.serial_number.as_bytes());
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|err| KeyError::Certificate(err.to_string()))?;
        let public_key = PublicKey::from_spki_der(&spki)?;
        Ok(Self {
            serial_no,
            public_key,
        })
    }

    /// The serial number as uppercase hex, as `openssl x509 -serial` prints
    /// it (`1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C`).
    pub fn serial_no(&self) -> &str {
        &self.serial_no
    }

    /// The certified public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
}

/// Uppercase hex of a DER INTEGER's content octets without the sign byte
/// DER adds in front of a high bit, as OpenSSL prints serial numbers.
fn serial_hex(content: &[u8]) -> String {
    let trimmed = match content {
        [0, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    trimmed.iter().map(|byte| format!("{byte:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRAND_PRIVATE: &str = include_str!("../tests/fixtures/test_brand_private.pem");
    const BRAND_PUBLIC: &str = include_str!("../tests/fixtures/test_brand_public.pem");
    const BRAND_CERT: &str = include_str!("../tests/fixtures/test_brand_cert.pem");
    const HIGH_BIT_CERT: &str = include_str!("../tests/fixtures/test_highbit_serial_cert.pem");

    #[test]
    fn private_key_debug_is_redacted() {
        let key = PrivateKey::from_pkcs8_pem(BRAND_PRIVATE).unwrap();
        let printed = format!("{key:?}");
        assert_eq!(printed, "PrivateKey(** redacted **)");
    }

    #[test]
    fn private_key_public_half_matches_the_public_pem() {
        let key = PrivateKey::from_pkcs8_pem(BRAND_PRIVATE).unwrap();
        let public = PublicKey::from_spki_pem(BRAND_PUBLIC).unwrap();
        assert_eq!(key.public_key(), public);
        assert_eq!(public.to_spki_pem().trim(), BRAND_PUBLIC.trim());
    }

    #[test]
    fn private_key_pem_round_trips() {
        let key = PrivateKey::from_pkcs8_pem(BRAND_PRIVATE).unwrap();
        assert_eq!(key.to_pkcs8_pem().trim(), BRAND_PRIVATE.trim());
    }

    #[test]
    fn certificate_serial_is_uppercase_hex_like_openssl() {
        let cert = Certificate::from_pem(BRAND_CERT).unwrap();
        assert_eq!(cert.serial_no(), "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C");
        assert_eq!(
            cert.public_key(),
            &PublicKey::from_spki_pem(BRAND_PUBLIC).unwrap()
        );
    }

    #[test]
    fn certificate_serial_drops_the_der_sign_byte() {
        let cert = Certificate::from_pem(HIGH_BIT_CERT).unwrap();
        assert_eq!(cert.serial_no(), "F1020304");
    }

    #[test]
    fn loading_a_public_key_as_private_names_the_pem_type() {
        let err = PrivateKey::from_pkcs8_pem(BRAND_PUBLIC).unwrap_err();
        assert!(err.to_string().contains("found \"PUBLIC KEY\""), "{err}");
    }

    #[test]
    fn derived_serial_is_40_hex_digits_of_the_key_hash() {
        let public = PublicKey::from_spki_pem(BRAND_PUBLIC).unwrap();
        let serial = public.derived_serial();
        assert_eq!(serial.len(), 40);
        assert!(
            serial
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
        );
        assert_ne!(
            serial,
            PrivateKey::generate()
                .unwrap()
                .public_key()
                .derived_serial()
        );
    }

    #[test]
    fn loading_garbage_is_a_pem_error() {
        assert!(matches!(
            PublicKey::from_spki_pem("not a key"),
            Err(KeyError::Pem(_))
        ));
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let key = PrivateKey::generate().unwrap();
        let signature = key.sign(b"message");
        assert!(key.public_key().verify(b"message", &signature));
        assert!(!key.public_key().verify(b"messagf", &signature));
    }
}
