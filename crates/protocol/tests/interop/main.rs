//! Interoperability of the protocol crate: golden vectors made by an
//! independent implementation (OpenSSL), and live cross-checks with the
//! `openssl` command line.

mod fuzz_corpus;
mod golden;
mod openssl;
mod properties;

use card_member_protocol::keys::{PrivateKey, PublicKey};

pub(crate) fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

pub(crate) fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn brand_private() -> PrivateKey {
    PrivateKey::from_pkcs8_pem(&fixture("test_brand_private.pem")).unwrap()
}

pub(crate) fn brand_public() -> PublicKey {
    PublicKey::from_spki_pem(&fixture("test_brand_public.pem")).unwrap()
}

pub(crate) fn wechatpay_private() -> PrivateKey {
    PrivateKey::from_pkcs8_pem(&fixture("test_wechatpay_private.pem")).unwrap()
}

pub(crate) fn wechatpay_public() -> PublicKey {
    PublicKey::from_spki_pem(&fixture("test_wechatpay_public.pem")).unwrap()
}
