//! PROTOCOL.md §2 and §3: request authentication in its order, response
//! signatures, `Request-ID`, and the per-brand rate limit.

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{UPDATE_TARGET, random_nonce, spawn_app, unix_now};

fn level(value: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"card_id": crate::helpers::CARD_ID, "openid": crate::helpers::OPENID, "level": value}))
        .unwrap()
}

#[tokio::test]
async fn update_returns_401_when_authorization_is_missing() {
    let app = spawn_app().await;
    let mut request = app.signed("PATCH", UPDATE_TARGET, &level("a"));
    request.remove_header("Authorization");
    let response = app.send(&request).await;
    response.assert_error(401, "SIGN_ERROR");
    assert_eq!(
        response.json()["message"],
        "Authorization header is malformed"
    );
}

#[tokio::test]
async fn update_returns_401_for_every_malformed_authorization() {
    let app = spawn_app().await;
    let good = app.signed("PATCH", UPDATE_TARGET, &level("a"));
    let header = good.header("Authorization").unwrap().to_owned();
    let params = header
        .strip_prefix("WECHATPAY-BRAND-SHA256-RSA2048 ")
        .unwrap();
    let cases = [
        (
            "wrong scheme",
            header.replace(
                "WECHATPAY-BRAND-SHA256-RSA2048",
                "WECHATPAY2-SHA256-RSA2048",
            ),
        ),
        ("space after comma", header.replace(",", ", ")),
        ("single quotes", header.replace('"', "'")),
        (
            "duplicated parameter",
            format!("{header},brand_id=\"1001622624\""),
        ),
        ("unknown parameter", format!("{header},extra=\"1\"")),
        (
            "missing signature",
            format!(
                "WECHATPAY-BRAND-SHA256-RSA2048 {}",
                params
                    .split(',')
                    .filter(|p| !p.starts_with("signature="))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        ("empty", String::new()),
    ];
    for (why, value) in cases {
        let mut request = good.clone();
        request.set_header("Authorization", &value);
        let response = app.send(&request).await;
        assert_eq!(response.status, 401, "{why}");
        assert_eq!(
            response.json()["message"],
            "Authorization header is malformed",
            "{why}"
        );
    }
}

#[tokio::test]
async fn update_accepts_authorization_parameters_in_any_order() {
    let app = spawn_app().await;
    let mut request = app.signed("PATCH", UPDATE_TARGET, &level("order"));
    let header = request.header("Authorization").unwrap().to_owned();
    let params = header
        .strip_prefix("WECHATPAY-BRAND-SHA256-RSA2048 ")
        .unwrap();
    let mut parts: Vec<&str> = params.split(',').collect();
    parts.reverse();
    request.set_header(
        "Authorization",
        &format!("WECHATPAY-BRAND-SHA256-RSA2048 {}", parts.join(",")),
    );
    assert_eq!(app.send(&request).await.status, 200);
}

#[tokio::test]
async fn update_returns_401_when_timestamp_is_stale_or_in_milliseconds() {
    let app = spawn_app().await;
    let body = level("late");
    for (why, timestamp) in [
        ("5 minutes old", unix_now() - 300),
        ("5 minutes ahead", unix_now() + 301),
        ("milliseconds", unix_now() * 1000),
    ] {
        let request = app.sign_with(
            &app.brand,
            "PATCH",
            UPDATE_TARGET,
            &body,
            timestamp,
            &random_nonce(),
        );
        let response = app.send(&request).await;
        response.assert_error(401, "SIGN_ERROR");
        assert_eq!(
            response.json()["message"],
            "timestamp differs from the request time by more than 5 minutes",
            "{why}"
        );
    }
    let fresh = app.sign_with(
        &app.brand,
        "PATCH",
        UPDATE_TARGET,
        &body,
        unix_now() - 290,
        &random_nonce(),
    );
    assert_eq!(
        app.send(&fresh).await.status,
        200,
        "4m50s old is inside the window"
    );
}

#[tokio::test]
async fn update_returns_401_for_an_unknown_brand_or_certificate_serial() {
    let app = spawn_app().await;
    let mut stranger = app.brand.clone();
    stranger.brand_id = "9999999999".into();
    app.send(&app.sign_as(&stranger, "PATCH", UPDATE_TARGET, &level("x")))
        .await
        .assert_error(401, "SIGN_ERROR");
    let mut wrong_serial = app.brand.clone();
    wrong_serial.serial_no = "00FF".into();
    app.send(&app.sign_as(&wrong_serial, "PATCH", UPDATE_TARGET, &level("x")))
        .await
        .assert_error(401, "SIGN_ERROR");
}

#[tokio::test]
async fn update_returns_401_when_the_body_or_target_was_tampered_with() {
    let app = spawn_app().await;
    let mut tampered_body = app.signed("PATCH", UPDATE_TARGET, &level("signed"));
    tampered_body.body = level("changed");
    let response = app.send(&tampered_body).await;
    response.assert_error(401, "SIGN_ERROR");
    assert_eq!(response.json()["message"], "signature is wrong");

    let mut tampered_target = app.signed(
        "PATCH",
        "/brand/card-member/user-cards/478515832666",
        &level("x"),
    );
    tampered_target.target = UPDATE_TARGET.into();
    app.send(&tampered_target)
        .await
        .assert_error(401, "SIGN_ERROR");

    let mut signed_by_another_key = app.signed("PATCH", UPDATE_TARGET, &level("x"));
    let mut impostor = app.brand.clone();
    impostor.private_key = card_member_protocol::keys::PrivateKey::generate().unwrap();
    signed_by_another_key.set_header(
        "Authorization",
        app.sign_as(&impostor, "PATCH", UPDATE_TARGET, &level("x"))
            .header("Authorization")
            .unwrap(),
    );
    app.send(&signed_by_another_key)
        .await
        .assert_error(401, "SIGN_ERROR");

    let card = app.get_card().await.user_card(&app);
    assert_eq!(card.level, None, "no refused request changed the card");
}

#[tokio::test]
async fn update_returns_401_for_a_signtest_probe_or_base64_garbage() {
    let app = spawn_app().await;
    for signature in ["WECHATPAY/SIGNTEST/abc", "%%%notbase64", "c2lnbmF0dXJl"] {
        let mut request = app.signed("PATCH", UPDATE_TARGET, &level("x"));
        let header = request.header("Authorization").unwrap().to_owned();
        let start = header.find("signature=\"").unwrap() + "signature=\"".len();
        let end = start + header[start..].find('"').unwrap();
        request.set_header(
            "Authorization",
            &format!("{}{signature}{}", &header[..start], &header[end..]),
        );
        let response = app.send(&request).await;
        response.assert_error(401, "SIGN_ERROR");
    }
}

#[tokio::test]
async fn update_returns_400_when_wechatpay_serial_is_wrong_or_missing() {
    let app = spawn_app().await;
    let mut wrong = app.signed("PATCH", UPDATE_TARGET, &level("x"));
    wrong.set_header(
        "Wechatpay-Serial",
        "PUB_KEY_ID_0000000000000000000000000000000000",
    );
    let response = app.send(&wrong).await;
    response.assert_error(400, "INVALID_REQUEST");
    assert_eq!(response.json()["detail"]["location"], "header");
    let mut missing = app.signed("PATCH", UPDATE_TARGET, &level("x"));
    missing.remove_header("Wechatpay-Serial");
    app.send(&missing)
        .await
        .assert_error(400, "INVALID_REQUEST");
}

#[tokio::test]
async fn update_returns_401_when_a_nonce_is_replayed() {
    let app = spawn_app().await;
    let request = app.signed("PATCH", UPDATE_TARGET, &level("once"));
    assert_eq!(app.send(&request).await.status, 200);
    let replay = app.send(&request).await;
    replay.assert_refused(401, "SIGN_ERROR", "nonce");
}

#[tokio::test]
async fn a_forged_request_does_not_burn_the_brands_nonce() {
    let app = spawn_app().await;
    let nonce = random_nonce();
    let body = level("nonce");
    let mut forged = app.sign_with(
        &app.brand,
        "PATCH",
        UPDATE_TARGET,
        &body,
        unix_now(),
        &nonce,
    );
    forged.body = level("forged");
    app.send(&forged).await.assert_error(401, "SIGN_ERROR");
    let genuine = app.sign_with(
        &app.brand,
        "PATCH",
        UPDATE_TARGET,
        &body,
        unix_now(),
        &nonce,
    );
    assert_eq!(app.send(&genuine).await.status, 200);
}

#[tokio::test]
async fn update_returns_400_when_accept_or_content_type_is_not_json() {
    let app = spawn_app().await;
    let mut no_accept = app.signed("PATCH", UPDATE_TARGET, &level("x"));
    no_accept.remove_header("Accept");
    app.send_raw(&no_accept)
        .await
        .assert_error(400, "INVALID_REQUEST");
    let mut html = app.signed("PATCH", UPDATE_TARGET, &level("x"));
    html.set_header("Accept", "text/html");
    app.send(&html).await.assert_error(400, "INVALID_REQUEST");
    let mut xml = app.signed("PATCH", UPDATE_TARGET, &level("x"));
    xml.set_header("Content-Type", "application/xml");
    app.send(&xml).await.assert_error(400, "INVALID_REQUEST");
    let mut with_charset = app.signed("PATCH", UPDATE_TARGET, &level("charset"));
    with_charset.set_header("Content-Type", "application/json; charset=utf-8");
    assert_eq!(
        app.send(&with_charset).await.status,
        200,
        "the Java sample's media type is accepted"
    );
}

#[tokio::test]
async fn update_returns_403_no_auth_when_the_brand_is_suspended() {
    let app = spawn_app().await;
    let brand = app.add_brand("2002002002").await;
    app.suspend_brand("2002002002").await;
    app.send(&app.sign_as(&brand, "PATCH", UPDATE_TARGET, &level("x")))
        .await
        .assert_error(403, "NO_AUTH");
}

#[tokio::test]
async fn successful_responses_are_signed_and_errors_are_not() {
    let app = spawn_app().await;
    let response = app
        .send(&app.signed("PATCH", UPDATE_TARGET, &level("signed")))
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.verify(&app), Ok(()));
    assert_eq!(
        response.header("Wechatpay-Serial"),
        Some(app.wechatpay_public_key_id.as_str())
    );
    assert_eq!(
        response.header("Wechatpay-Signature-Type"),
        Some("WECHATPAY-BRAND-SHA256-RSA2048")
    );
    assert_eq!(
        response.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    let request_id = response.header("Request-ID").unwrap();
    assert!(request_id.ends_with("-0"), "{request_id}");
    let (id, _) = request_id.rsplit_once('-').unwrap();
    assert!(
        id.len() >= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
}

#[tokio::test]
async fn request_ids_are_unique_per_request() {
    let app = spawn_app().await;
    let mut ids = HashSet::new();
    for _ in 0..5 {
        let response = app
            .send(&app.signed("GET", "/brand/card-member/cards/none", b""))
            .await;
        assert!(ids.insert(response.header("Request-ID").unwrap().to_owned()));
    }
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405_with_empty_bodies() {
    let app = spawn_app().await;
    let unknown = app
        .send(&app.signed("GET", "/brand/card-member/nothing", b""))
        .await;
    assert_eq!((unknown.status, unknown.body.len()), (404, 0));
    let wrong_method = app.send(&app.signed("DELETE", UPDATE_TARGET, b"")).await;
    assert_eq!((wrong_method.status, wrong_method.body.len()), (405, 0));
    assert!(unknown.header("Request-ID").is_some());
}

#[tokio::test]
async fn health_check_needs_no_authentication() {
    let app = spawn_app().await;
    let response = app
        .send(&crate::helpers::Outgoing::unsigned("GET", "/healthz"))
        .await;
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn twelve_updates_in_one_second_get_429s_and_the_refused_ones_change_nothing() {
    let app = spawn_app().await;
    let requests: Vec<_> = (0..12)
        .map(|i| app.signed("PATCH", UPDATE_TARGET, &level(&format!("L{i}"))))
        .collect();
    let mut accepted = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let response = app.send(request).await;
        match response.status {
            200 => accepted.push(format!("L{i}")),
            429 => {
                response.assert_error(429, "RATELIMIT_EXCEEDED");
                let retry_after: u64 = response.header("Retry-After").unwrap().parse().unwrap();
                assert!(retry_after >= 1);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        accepted.len() >= 5 && accepted.len() < 12,
        "accepted {accepted:?}"
    );
    let card = app.get_card().await.user_card(&app);
    assert_eq!(card.level.as_deref(), accepted.last().map(String::as_str));
    let updates = app.updates_recorded(crate::helpers::CODE).await;
    assert_eq!(
        updates,
        accepted.len(),
        "only accepted requests left an audit record"
    );
}

#[tokio::test]
async fn forged_requests_do_not_spend_the_brands_rate_limit() {
    let app = spawn_app().await;
    for _ in 0..20 {
        let mut forged = app.signed("PATCH", UPDATE_TARGET, &level("a"));
        forged.body = level("forged");
        app.send(&forged).await.assert_error(401, "SIGN_ERROR");
    }
    for i in 0..5 {
        let response = app
            .send(&app.signed("PATCH", UPDATE_TARGET, &level(&format!("{i}"))))
            .await;
        assert_eq!(response.status, 200, "request {i}");
    }
}

#[tokio::test]
async fn a_repeated_unknown_brand_id_costs_at_most_six_database_reads_a_second() {
    let app = spawn_app().await;
    let mut stranger = app.brand.clone();
    stranger.brand_id = "7777777777".into();
    let before = app
        .metric("card_member_database_duration_seconds_count")
        .await;
    let started = std::time::Instant::now();
    for _ in 0..40 {
        app.send(&app.sign_as(&stranger, "PATCH", UPDATE_TARGET, &level("x")))
            .await
            .assert_error(401, "SIGN_ERROR");
    }
    let seconds = started.elapsed().as_secs_f64().ceil() + 1.0;
    let reads = app
        .metric("card_member_database_duration_seconds_count")
        .await
        - before;
    assert!(
        reads <= 6.0 * seconds,
        "{reads} database reads for 40 requests in under {seconds} s"
    );
}

#[tokio::test]
async fn a_brand_registered_while_the_server_runs_is_accepted_on_its_first_request() {
    let app = spawn_app().await;
    let mut stranger = app.brand.clone();
    stranger.brand_id = "7777777777".into();
    // The server reads its list of brand IDs now, before the new brand.
    app.send(&app.sign_as(&stranger, "PATCH", UPDATE_TARGET, &level("x")))
        .await
        .assert_error(401, "SIGN_ERROR");
    let newcomer = app.add_brand("1900000001").await;
    let response = app
        .send(&app.sign_as(&newcomer, "PATCH", UPDATE_TARGET, &level("x")))
        .await;
    response.assert_error(404, "NOT_FOUND");
}
