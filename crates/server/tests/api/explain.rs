//! Explanations of refusals: a request refused for its signature,
//! certificate serial, timestamp, nonce or a ciphertext is answered as the
//! provider answers it, and `/explanations/{Request-ID}` (what `card-member
//! explain` and the console show) says which known mistake matches.

use std::time::Instant;

use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use card_member_protocol::auth::Authorization;
use serde_json::json;

use crate::helpers::{
    CARD_ID, CODE, OPENID, TestApp, UPDATE_TARGET, random_nonce, spawn_app,
    spawn_app_with_settings, unix_now,
};

fn get_target() -> String {
    format!("/brand/card-member/user-cards/{CODE}?card_id={CARD_ID}&openid={OPENID}")
}

/// A GET of the development card signed over its path alone.
fn signed_without_query(app: &TestApp) -> crate::helpers::Outgoing {
    let path = get_target().split_once('?').unwrap().0.to_owned();
    let mut request = app.signed("GET", &path, b"");
    request.target = get_target();
    request
}

#[tokio::test]
async fn a_path_signed_without_its_query_is_explained_and_the_answer_on_the_wire_is_unchanged() {
    let app = spawn_app().await;
    let response = app.send(&signed_without_query(&app)).await;
    response.assert_error(401, "SIGN_ERROR");
    let body = response.json();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["code", "message"],
        "the wire answer is the provider's: {body}"
    );
    let (status, explanation) = app.explanation(&response).await;
    assert_eq!(status, 200, "{explanation}");
    assert_eq!(explanation["step"], "signature");
    assert_eq!(explanation["mistake"], "query_not_signed");
    assert_eq!(explanation["serial_no"], app.brand.serial_no.as_str());
    let diagnosis = explanation["diagnosis"].as_str().unwrap();
    assert!(
        diagnosis.contains(&format!(
            "you signed `/brand/card-member/user-cards/{CODE}`"
        )) && diagnosis.contains(&get_target()),
        "{diagnosis}"
    );
    let message = explanation["verified_message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("GET\\n\n{}\\n\n", get_target())),
        "the exact message, each \\n visible: {message}"
    );
}

#[tokio::test]
async fn a_query_signed_in_another_order_and_a_body_signed_without_its_last_line_break_are_explained()
 {
    let app = spawn_app().await;
    let (path, query) = get_target()
        .split_once('?')
        .map(|(p, q)| (p.to_owned(), q.to_owned()))
        .unwrap();
    let (first, second) = query.split_once('&').unwrap();
    let mut reordered = app.signed("GET", &format!("{path}?{second}&{first}"), b"");
    reordered.target = get_target();
    let response = app.send(&reordered).await;
    response.assert_error(401, "SIGN_ERROR");
    let (_, explanation) = app.explanation(&response).await;
    assert_eq!(explanation["mistake"], "query_reordered", "{explanation}");

    // A body read from a file with Windows line endings, signed trimmed.
    let body = json!({"card_id": CARD_ID, "openid": OPENID, "level": "gold"}).to_string();
    let mut from_a_file = app.signed("PATCH", UPDATE_TARGET, body.as_bytes());
    from_a_file.body = format!("{body}\r\n").into_bytes();
    let response = app.send(&from_a_file).await;
    response.assert_error(401, "SIGN_ERROR");
    let (_, explanation) = app.explanation(&response).await;
    assert_eq!(
        explanation["mistake"], "body_line_break_at_end",
        "{explanation}"
    );
}

#[tokio::test]
async fn the_console_request_page_shows_the_explanation() {
    let app = spawn_app().await;
    let response = app.send(&signed_without_query(&app)).await;
    let id = response
        .header("request-id")
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .to_owned();
    let page = app.console_page(&format!("/console/requests/{id}")).await;
    assert!(page.contains("query_not_signed"), "{page}");
    assert!(
        page.contains("sign the path with its query string"),
        "{page}"
    );
}

#[tokio::test]
async fn a_wrong_wechatpay_serial_a_replayed_nonce_and_a_millisecond_timestamp_are_each_explained()
{
    let app = spawn_app().await;
    let mut own_serial = app.signed("GET", &get_target(), b"");
    own_serial.set_header("Wechatpay-Serial", &app.brand.serial_no);
    let response = app.send(&own_serial).await;
    response.assert_error(400, "INVALID_REQUEST");
    let (_, explanation) = app.explanation(&response).await;
    assert_eq!(explanation["step"], "wechatpay_serial");
    assert_eq!(explanation["mistake"], "certificate_serial_sent");
    assert!(
        explanation["diagnosis"]
            .as_str()
            .unwrap()
            .contains(&app.wechatpay_public_key_id)
    );

    let first = app.signed("GET", &get_target(), b"");
    assert_eq!(app.send(&first).await.status, 200);
    let replay = app.send(&first).await;
    replay.assert_error(401, "SIGN_ERROR");
    let (_, explanation) = app.explanation(&replay).await;
    assert_eq!(explanation["mistake"], "nonce_reused");
    assert!(
        explanation["verified_message"]
            .as_str()
            .unwrap()
            .starts_with("GET\\n\n"),
        "the signature verified; the message is shown: {explanation}"
    );

    let millis = app.sign_with(
        &app.brand,
        "GET",
        &get_target(),
        b"",
        unix_now() * 1000,
        &random_nonce(),
    );
    let response = app.send(&millis).await;
    response.assert_error(401, "SIGN_ERROR");
    let (_, explanation) = app.explanation(&response).await;
    assert_eq!(explanation["step"], "timestamp");
    assert_eq!(explanation["mistake"], "timestamp_in_milliseconds");
}

#[tokio::test]
async fn the_latest_explanation_of_a_brand_is_its_last_explained_refusal_and_none_is_a_404() {
    let app = spawn_app().await;
    let latest = format!("/explanations?brand_id={}", app.brand.brand_id);
    let (status, none) = app.local("GET", &latest, None).await;
    assert_eq!(status, 404, "{none}");

    let first = app.send(&signed_without_query(&app)).await;
    first.assert_error(401, "SIGN_ERROR");
    let mut brand = app.brand.clone();
    brand.serial_no = "0123456789ABCDEF".into();
    let second = app
        .send(&app.sign_as(&brand, "GET", &get_target(), b""))
        .await;
    second.assert_error(401, "SIGN_ERROR");

    let (status, explanation) = app.local("GET", &latest, None).await;
    assert_eq!(status, 200, "{explanation}");
    let second_id = second.header("request-id").unwrap();
    assert_eq!(
        explanation["request_id"],
        second_id.split('-').next().unwrap(),
        "the second, the later"
    );
    assert_eq!(explanation["mistake"], "other_certificate");
    let (status, other) = app
        .local("GET", "/explanations?brand_id=1999999999", None)
        .await;
    assert_eq!(status, 404, "another brand's are not its: {other}");
}

#[tokio::test]
async fn a_serial_that_is_not_the_brands_names_the_certificate_whose_key_signed() {
    let app = spawn_app().await;
    let mut brand = app.brand.clone();
    brand.serial_no = "0123456789ABCDEF".into();
    let response = app
        .send(&app.sign_as(&brand, "GET", &get_target(), b""))
        .await;
    response.assert_error(401, "SIGN_ERROR");
    let (_, explanation) = app.explanation(&response).await;
    assert_eq!(explanation["step"], "certificate");
    assert_eq!(explanation["mistake"], "other_certificate");
    let diagnosis = explanation["diagnosis"].as_str().unwrap();
    assert!(
        diagnosis.contains(&app.brand.serial_no) && diagnosis.contains("0123456789ABCDEF"),
        "{diagnosis}"
    );
}

#[tokio::test]
async fn a_ciphertext_made_with_oaep_sha256_is_explained_and_never_shown() {
    let app = spawn_app().await;
    let key = OaepPublicEncryptingKey::new(
        PublicEncryptingKey::from_der(app.wechatpay_public_key.spki_der()).unwrap(),
    )
    .unwrap();
    let mut out = vec![0; key.ciphertext_size()];
    let ciphertext = STANDARD.encode(
        key.encrypt(&OAEP_SHA256_MGF1SHA256, b"13800138000", &mut out, None)
            .unwrap(),
    );
    let response = app
        .update(&json!({"card_id": CARD_ID, "openid": OPENID, "phone_number": ciphertext}))
        .await;
    response.assert_error(400, "PARAM_ERROR");
    let (_, explanation) = app.explanation(&response).await;
    assert_eq!(explanation["step"], "ciphertext");
    assert_eq!(explanation["field"], "/phone_number");
    assert_eq!(explanation["mistake"], "oaep_sha256");
    let shown = explanation.to_string();
    assert!(
        !shown.contains(&ciphertext) && !shown.contains("13800138000"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_phone_number_sent_unencrypted_is_explained_by_its_length_never_shown() {
    let app = spawn_app().await;
    let response = app
        .update(&json!({"card_id": CARD_ID, "openid": OPENID, "phone_number": "13800138000"}))
        .await;
    response.assert_error(400, "PARAM_ERROR");
    let (_, explanation) = app.explanation(&response).await;
    assert_eq!(explanation["step"], "ciphertext");
    assert_eq!(explanation["field"], "/phone_number");
    assert_eq!(explanation["mistake"], "not_encrypted", "{explanation}");
    let diagnosis = explanation["diagnosis"].as_str().unwrap();
    assert!(diagnosis.contains("holds 11 characters"), "{diagnosis}");
    assert!(
        !explanation.to_string().contains("13800138000"),
        "{explanation}"
    );
}

#[tokio::test]
async fn explanations_are_bounded_per_brand_per_second_and_given_to_registered_brands_only() {
    let app = spawn_app().await;
    let started = Instant::now();
    let mut responses = Vec::new();
    for _ in 0..8 {
        responses.push(app.send(&signed_without_query(&app)).await);
    }
    let elapsed = started.elapsed();
    let mut explained = 0;
    for response in &responses {
        response.assert_error(401, "SIGN_ERROR");
        if app.explanation(response).await.0 == 200 {
            explained += 1;
        }
    }
    let seconds = elapsed.as_secs() + 1;
    assert!(explained >= 5, "the budget is 5 a second: {explained}");
    assert!(
        explained <= 5 * seconds,
        "{explained} explained in {elapsed:?}"
    );

    let stranger = Authorization::sign(
        &app.brand.private_key,
        "9999999",
        &app.brand.serial_no,
        "GET",
        &get_target(),
        unix_now(),
        &random_nonce(),
        b"",
    );
    let mut request = app.signed("GET", &get_target(), b"");
    request.set_header("Authorization", &stranger.to_header_value());
    let response = app.send(&request).await;
    response.assert_error(401, "SIGN_ERROR");
    let (status, _) = app.explanation(&response).await;
    assert_eq!(
        status, 404,
        "no explanation for a brand that is not registered"
    );
}

#[tokio::test]
async fn explanations_are_off_when_the_setting_says_so() {
    let app = spawn_app_with_settings(|settings| settings.explain = Some(false)).await;
    let response = app.send(&signed_without_query(&app)).await;
    response.assert_error(401, "SIGN_ERROR");
    let (status, answer) = app.explanation(&response).await;
    assert_eq!(status, 404);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("explain = true"),
        "{answer}"
    );
}
