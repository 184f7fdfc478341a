//! Personal data never reaches a log line or the database file in
//! plaintext; ciphertexts never reach a log line.

use serde_json::json;

use crate::helpers::{captured_logs, spawn_app};

#[tokio::test]
async fn canary_personal_data_appears_in_no_log_line_and_not_in_plaintext_in_the_database() {
    let app = spawn_app().await;
    let phone = "CANARY-PHONE-7f3a9c";
    let birthday = "CANARY-BIRTHDAY-51be2d";
    let body = app.seed_request(phone, birthday);
    let phone_ciphertext = body["phone_number"].as_str().unwrap().to_owned();
    let card = app.update(&body).await.user_card(&app);
    // Failing paths too: a body that fails validation after the ciphertext.
    let mut invalid = body.clone();
    invalid["card_color"] = json!("not-a-color");
    app.update(&invalid).await.assert_error(400, "PARAM_ERROR");
    app.get_card().await.user_card(&app);

    let logs = captured_logs();
    assert!(logs.contains("request"), "the request log is captured");
    for secret in [
        phone,
        birthday,
        phone_ciphertext.as_str(),
        &phone_ciphertext[..40],
    ] {
        assert!(!logs.contains(secret), "a log line contains {secret}");
    }
    assert!(
        !logs.contains(card.phone_number.unwrap().as_str()),
        "the response ciphertext is not logged"
    );

    for target in ["/metrics", "/openapi.json", "/healthz"] {
        let page = app
            .send(&crate::helpers::Outgoing::unsigned("GET", target))
            .await;
        let page = String::from_utf8_lossy(&page.body);
        assert!(
            !page.contains(phone) && !page.contains(&phone_ciphertext[..40]),
            "{target}"
        );
    }

    // Key material: neither the WeChat Pay key nor the brand key, nor any
    // request signature, reaches a log line.
    let wechatpay_pem =
        std::fs::read_to_string(app.data_dir.join("wechatpay/private_key.pem")).unwrap();
    let brand_pem = app.brand.private_key.to_pkcs8_pem();
    for pem in [wechatpay_pem.as_str(), brand_pem.as_str()] {
        let body_line = pem.lines().nth(1).unwrap();
        assert!(
            !logs.contains(body_line),
            "a log line contains private key material"
        );
    }
    assert!(!logs.contains("PRIVATE KEY"));
    assert!(
        !logs.contains("signature=\""),
        "no request signature is logged"
    );

    let database = app.database_bytes();
    for secret in [phone.as_bytes(), birthday.as_bytes()] {
        assert!(
            !database
                .windows(secret.len())
                .any(|window| window == secret),
            "the database holds plaintext"
        );
    }
}
