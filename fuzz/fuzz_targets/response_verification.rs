#![no_main]

use std::sync::LazyLock;

use card_member_protocol::keys::PublicKey;

static KEY: LazyLock<PublicKey> = LazyLock::new(|| {
    PublicKey::from_spki_pem(include_str!(
        "../../crates/protocol/tests/fixtures/test_wechatpay_public.pem"
    ))
    .unwrap()
});

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| card_member_protocol::fuzzing::response_verification(data, &KEY)
);
