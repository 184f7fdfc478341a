//! Golden vectors: fixed inputs, expected outputs made by OpenSSL.

use card_member_protocol::auth::{Authorization, string_to_sign};
use card_member_protocol::response::ResponseSignature;

use crate::{brand_private, brand_public, fixture, wechatpay_private, wechatpay_public};

const BODY: &str = r#"{"card_id":"pbLatjvWOibDc5-TBnbUk1pD12o0","openid":"obLatjnx9gnqzS4myYGmLZ7LgLBA","level":"钻石会员"}"#;
const NONCE: &str = "593BEC0C930BF1AFEB40B4A08C8FB242";
const TARGET: &str = "/brand/card-member/user-cards/478515832665";

#[test]
fn string_to_sign_matches_the_golden_message() {
    let message = string_to_sign("PATCH", TARGET, 1554208460, NONCE, BODY.as_bytes());
    assert_eq!(
        String::from_utf8(message).unwrap(),
        fixture("golden_request_message.txt")
    );
}

#[test]
fn request_signature_matches_the_golden_signature() {
    let auth = Authorization::sign(
        &brand_private(),
        "1001622624",
        "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
        "PATCH",
        TARGET,
        1554208460,
        NONCE,
        BODY.as_bytes(),
    );
    assert_eq!(
        auth.signature,
        fixture("golden_request_signature.b64").trim()
    );
    assert!(auth.verify(&brand_public(), "PATCH", TARGET, BODY.as_bytes()));
}

#[test]
fn golden_request_signature_fails_for_any_other_target_or_body() {
    let auth = Authorization {
        brand_id: "1001622624".into(),
        nonce_str: NONCE.into(),
        signature: fixture("golden_request_signature.b64").trim().into(),
        timestamp: 1554208460,
        serial_no: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C".into(),
    };
    let key = brand_public();
    assert!(auth.verify(&key, "PATCH", TARGET, BODY.as_bytes()));
    assert!(!auth.verify(&key, "POST", TARGET, BODY.as_bytes()));
    assert!(!auth.verify(
        &key,
        "PATCH",
        "/brand/card-member/user-cards/478515832666",
        BODY.as_bytes()
    ));
    assert!(!auth.verify(
        &key,
        "PATCH",
        TARGET,
        BODY.replace("钻石", "黄金").as_bytes()
    ));
    assert!(!auth.verify(&wechatpay_public(), "PATCH", TARGET, BODY.as_bytes()));
}

#[test]
fn response_signature_matches_the_golden_signature() {
    let body = br#"{"user_card_code":"478515832665"}"#;
    let signed = ResponseSignature::sign(
        &wechatpay_private(),
        "PUB_KEY_ID_1652966817968711769710052651413695",
        1757488840,
        "e63973074d9d78aff8fb62277b5f95a0",
        body,
    );
    assert_eq!(
        signed.signature,
        fixture("golden_response_signature.b64").trim()
    );
    assert_eq!(
        signed.verify(
            "PUB_KEY_ID_1652966817968711769710052651413695",
            &wechatpay_public(),
            body,
            1757488840
        ),
        Ok(())
    );
}
