//! The server's keys and every cryptographic operation it performs, in one
//! place so that RSA private-key operations (about 0.75 ms each, the floor
//! of this API's cost) are counted.
//!
//! Per request: one private-key operation per ciphertext received (the
//! seed's update has two: `phone_number` and one common field), plus one to
//! sign a 2xx response. Verifying the request signature and encrypting
//! response fields for the brand are public-key operations (tens of
//! microseconds). Personal data at rest is sealed with AES-256-GCM, never
//! RSA, so reads cost no decryption beyond the response signature.

pub(crate) mod sealing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use card_member_protocol::diagnosis::{self, Diagnosis};
use card_member_protocol::encryption::{DecryptError, EncryptError, decrypt_field, encrypt_field};
use card_member_protocol::keys::{PrivateKey, PublicKey};
use card_member_protocol::model::Ciphertext;
use card_member_protocol::nonce::generate_nonce;
use card_member_protocol::response::ResponseSignature;
use card_member_protocol::secret::SecretString;

use crate::ops::metrics::{Metrics, PrivateKeyOperation};
use sealing::{DataKey, OpenError, SealContext};

/// The server's key material.
#[derive(Debug)]
pub(crate) struct Crypto {
    wechatpay_key: PrivateKey,
    wechatpay_public_key_id: String,
    data_key: DataKey,
    metrics: Arc<Metrics>,
}

impl Crypto {
    pub(crate) fn new(
        wechatpay_key: PrivateKey,
        wechatpay_public_key_id: String,
        data_key: DataKey,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            wechatpay_key,
            wechatpay_public_key_id,
            data_key,
            metrics,
        }
    }

    /// The WeChat Pay public key ID responses are signed under.
    pub(crate) fn wechatpay_public_key_id(&self) -> &str {
        &self.wechatpay_public_key_id
    }

    /// How many RSA private-key operations this server has performed.
    pub(crate) fn private_key_operations(&self) -> u64 {
        self.metrics.private_key_operations()
    }

    /// Decrypts a request field sent under the WeChat Pay public key.
    pub(crate) fn decrypt(&self, ciphertext: &Ciphertext) -> Result<SecretString, DecryptError> {
        self.private_key_operation(PrivateKeyOperation::OaepDecrypt, || {
            decrypt_field(&self.wechatpay_key, ciphertext.as_str())
        })
    }

    /// Why a request field did not decrypt: the known mistakes tried
    /// (up to three private-key decryptions, counted as `diagnosis`; what
    /// they open is thrown away unread).
    pub(crate) fn diagnose_ciphertext(&self, ciphertext: &str) -> Diagnosis {
        self.private_key_operation(PrivateKeyOperation::Diagnosis, || {
            diagnosis::ciphertext(
                &self.wechatpay_key,
                &self.wechatpay_public_key_id,
                ciphertext,
            )
        })
    }

    /// Encrypts a response field for the brand (a public-key operation).
    pub(crate) fn encrypt_for(
        &self,
        brand_key: &PublicKey,
        plaintext: &SecretString,
    ) -> Result<Ciphertext, EncryptError> {
        encrypt_field(brand_key, plaintext.expose()).map(Ciphertext)
    }

    /// Signs a response body with a fresh nonce.
    pub(crate) fn sign_response(&self, timestamp: i64, body: &[u8]) -> ResponseSignature {
        let nonce = random_nonce();
        self.private_key_operation(PrivateKeyOperation::ResponseSignature, || {
            ResponseSignature::sign(
                &self.wechatpay_key,
                &self.wechatpay_public_key_id,
                timestamp,
                &nonce,
                body,
            )
        })
    }

    /// Runs one private-key operation and counts it, with the CPU time
    /// it took on this thread and its wall time (`/metrics`).
    fn private_key_operation<T>(
        &self,
        kind: PrivateKeyOperation,
        operation: impl FnOnce() -> T,
    ) -> T {
        let (cpu, wall) = (thread_cpu_time(), Instant::now());
        let result = operation();
        self.metrics.private_key_operation(
            kind,
            thread_cpu_time().saturating_sub(cpu),
            wall.elapsed(),
        );
        result
    }

    pub(crate) fn seal(&self, context: SealContext<'_>, plaintext: &SecretString) -> Vec<u8> {
        self.data_key.seal(context, plaintext)
    }

    pub(crate) fn open(
        &self,
        context: SealContext<'_>,
        sealed: &[u8],
    ) -> Result<SecretString, OpenError> {
        self.data_key.open(context, sealed)
    }
}

/// CPU time this thread has used (zero where the platform has no such
/// clock).
fn thread_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(
            u64::try_from(now.tv_sec).unwrap_or(0),
            u32::try_from(now.tv_nsec).unwrap_or(0),
        )
    }
    #[cfg(not(unix))]
    {
        Duration::ZERO
    }
}

/// A nonce from the system CSPRNG.
pub(crate) fn random_nonce() -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let rng = SystemRandom::new();
    generate_nonce(|buffer| rng.fill(buffer).expect("the system RNG works"))
}

/// Random bytes from the system CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system RNG works");
    bytes
}
