//! Hostile requests through the real server: every one is refused with the
//! spec's error, the server stays up, and no card changes.

use serde_json::{Value, json};

use crate::helpers::{
    CARD_ID, CODE, Incoming, OPENID, Outgoing, TestApp, UPDATE_TARGET, spawn_app,
};

struct Case {
    name: String,
    request: Outgoing,
    status: u16,
    code: Option<&'static str>,
    signed: bool,
}

fn body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn level(value: &str) -> Vec<u8> {
    body(&json!({"card_id": CARD_ID, "openid": OPENID, "level": value}))
}

fn with_authorization(app: &TestApp, value: String) -> Outgoing {
    let mut request = app.signed("PATCH", UPDATE_TARGET, &level("hostile"));
    request.set_header("Authorization", &value);
    request
}

fn authorization_cases(app: &TestApp) -> Vec<Case> {
    let good = app.signed("PATCH", UPDATE_TARGET, &level("hostile"));
    let header = good.header("Authorization").unwrap().to_owned();
    let params: Vec<String> = header
        .strip_prefix("WECHATPAY-BRAND-SHA256-RSA2048 ")
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let join = |parts: &[String]| format!("WECHATPAY-BRAND-SHA256-RSA2048 {}", parts.join(","));
    let mut cases = Vec::new();
    let mut push = |name: String, value: String| {
        cases.push(Case {
            name,
            request: with_authorization(app, value),
            status: 401,
            code: Some("SIGN_ERROR"),
            signed: false,
        });
    };
    for (index, param) in params.iter().enumerate() {
        let name = param.split('=').next().unwrap().to_owned();
        let mut missing = params.clone();
        missing.remove(index);
        push(format!("{name} missing"), join(&missing));
        let mut duplicated = params.clone();
        duplicated.push(param.clone());
        push(format!("{name} duplicated"), join(&duplicated));
        let mut single = params.clone();
        single[index] = param.replace('"', "'");
        push(format!("{name} single-quoted"), join(&single));
        let mut spaced = params.clone();
        spaced[index] = param.replacen('=', " = ", 1);
        push(format!("{name} spaced"), join(&spaced));
        let mut empty = params.clone();
        empty[index] = format!("{name}=\"\"");
        push(format!("{name} empty"), join(&empty));
    }
    push(
        "wrong scheme".into(),
        header.replace(
            "WECHATPAY-BRAND-SHA256-RSA2048",
            "WECHATPAY2-SHA256-RSA2048",
        ),
    );
    push(
        "lowercase scheme".into(),
        header.replace(
            "WECHATPAY-BRAND-SHA256-RSA2048",
            "wechatpay-brand-sha256-rsa2048",
        ),
    );
    push(
        "no parameters".into(),
        "WECHATPAY-BRAND-SHA256-RSA2048".into(),
    );
    push("bearer token".into(), "Bearer abc".into());
    let signature_at = |value: &str| {
        let start = header.find("signature=\"").unwrap() + "signature=\"".len();
        let end = start + header[start..].find('"').unwrap();
        format!("{}{value}{}", &header[..start], &header[end..])
    };
    push(
        "base64 garbage signature".into(),
        signature_at("!!!!not-base64!!!!"),
    );
    push(
        "SIGNTEST probe".into(),
        signature_at("WECHATPAY/SIGNTEST/c2lnbmF0dXJl"),
    );
    push("truncated signature".into(), signature_at("c2ln"));
    push("4 KiB signature".into(), signature_at(&"A".repeat(4096)));
    push(
        "non-ASCII brand".into(),
        header.replace("brand_id=\"", "brand_id=\"品牌"),
    );
    cases
}

fn signed_case(
    app: &TestApp,
    name: &str,
    method: &str,
    target: &str,
    payload: Vec<u8>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name: name.to_owned(),
        request: app.signed(method, target, &payload),
        status,
        code: Some(code),
        signed: true,
    }
}

#[tokio::test]
async fn hostile_requests_are_refused_keep_the_server_up_and_change_nothing() {
    let app = spawn_app().await;
    let before = app.get_card().await.json();
    let mut cases = authorization_cases(&app);

    let too_long = |field: &str, length: usize| {
        body(&json!({"card_id": CARD_ID, "openid": OPENID, field: "a".repeat(length)}))
    };
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let mut many_keys = serde_json::Map::new();
    for i in 0..3000 {
        many_keys.insert(format!("k{i}"), Value::from(i));
    }
    let signed_cases = [
        (
            "body over 64 KiB",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            too_long("attach", 70_000),
            413,
            "PARAM_ERROR",
        ),
        (
            "level of 11 characters",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            too_long("level", 11),
            400,
            "PARAM_ERROR",
        ),
        (
            "attach of 257 characters",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            too_long("attach", 257),
            400,
            "PARAM_ERROR",
        ),
        (
            "phone_number of 513 characters",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            too_long("phone_number", 513),
            400,
            "PARAM_ERROR",
        ),
        (
            "openid of 129 characters",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            body(&json!({"card_id": CARD_ID, "openid": "o".repeat(129)})),
            400,
            "PARAM_ERROR",
        ),
        (
            "JSON nested 200 deep",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            deep.into_bytes(),
            400,
            "PARAM_ERROR",
        ),
        (
            "3000 unknown keys",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            body(&Value::Object(many_keys)),
            400,
            "PARAM_ERROR",
        ),
        (
            "invalid UTF-8",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            b"{\"card_id\":\"\xc3\x28\",\"openid\":\"o\"}".to_vec(),
            400,
            "PARAM_ERROR",
        ),
        (
            "4-byte characters",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            level("🎉🎉"),
            400,
            "PARAM_ERROR",
        ),
        (
            "duplicate keys",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            br#"{"card_id":"x","card_id":"y","openid":"o"}"#.to_vec(),
            400,
            "PARAM_ERROR",
        ),
        (
            "path traversal",
            "PATCH",
            "/brand/card-member/user-cards/..%2F..%2Fetc%2Fpasswd".to_owned(),
            level("x"),
            404,
            "NOT_FOUND",
        ),
        (
            "over-long code",
            "PATCH",
            format!("/brand/card-member/user-cards/{}", "4".repeat(300)),
            level("x"),
            400,
            "PARAM_ERROR",
        ),
        (
            "NUL in the code",
            "PATCH",
            "/brand/card-member/user-cards/4785%00".to_owned(),
            level("x"),
            400,
            "PARAM_ERROR",
        ),
        (
            "openid of another holder",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            body(&json!({"card_id": CARD_ID, "openid": "intruder", "level": "x"})),
            400,
            "INVALID_REQUEST",
        ),
        (
            "undecryptable phone",
            "PATCH",
            UPDATE_TARGET.to_owned(),
            body(&json!({"card_id": CARD_ID, "openid": OPENID, "phone_number": "A".repeat(344)})),
            400,
            "PARAM_ERROR",
        ),
    ];
    for (name, method, target, payload, status, code) in signed_cases {
        cases.push(signed_case(
            &app, name, method, &target, payload, status, code,
        ));
    }
    let mut text_plain = app.signed("PATCH", UPDATE_TARGET, &level("x"));
    text_plain.set_header("Content-Type", "text/plain");
    cases.push(Case {
        name: "text/plain body".into(),
        request: text_plain,
        status: 400,
        code: Some("INVALID_REQUEST"),
        signed: true,
    });
    let mut form = app.signed("PATCH", UPDATE_TARGET, b"level=x");
    form.set_header("Content-Type", "application/x-www-form-urlencoded");
    cases.push(Case {
        name: "form body".into(),
        request: form,
        status: 400,
        code: Some("INVALID_REQUEST"),
        signed: true,
    });

    let other = app.add_brand("6006006006").await;
    cases.push(Case {
        name: "another brand writes the card".into(),
        request: app.sign_as(&other, "PATCH", UPDATE_TARGET, &level("stolen")),
        status: 404,
        code: Some("NOT_FOUND"),
        signed: false,
    });
    cases.push(Case {
        name: "another brand reads the card".into(),
        request: app.sign_as(
            &other,
            "GET",
            &format!("{UPDATE_TARGET}?card_id={CARD_ID}&openid={OPENID}"),
            b"",
        ),
        status: 404,
        code: Some("NOT_FOUND"),
        signed: false,
    });
    cases.push(Case {
        name: "unknown path".into(),
        request: app.signed("GET", "/brand/card-member/../../etc/passwd", b""),
        status: 404,
        code: None,
        signed: false,
    });

    let total = cases.len();
    for case in cases {
        if case.signed {
            // Refused bodies count against the brand's 5/s: pace them.
            tokio::time::sleep(std::time::Duration::from_millis(210)).await;
        }
        let response = app.send(&case.request).await;
        assert_eq!(
            response.status,
            case.status,
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&response.body)
        );
        if let Some(code) = case.code {
            assert_eq!(response.code(), code, "{}", case.name);
        }
        assert!(response.header("Request-ID").is_some(), "{}", case.name);
    }

    let after = app.get_card().await.json();
    assert_eq!(after, before, "no hostile request changed the card");
    let trail = app
        .handle
        .audit_trail(&app.brand.brand_id, CARD_ID, CODE)
        .await
        .unwrap();
    assert_eq!(trail.len(), 1, "only the import is in the audit trail");
    eprintln!("hostile requests: {total} cases tried, 0 changed data");
}

/// What a flood cost the server.
struct Flood {
    answers: Vec<Incoming>,
    database_calls: f64,
    /// Whole seconds it took, plus one (a second boundary may fall inside).
    seconds: f64,
}

/// After one legitimate update (so the brand is known and cached), `count`
/// requests signed with `brand`'s key for the brand ID `brand_id` (`None`:
/// a different random one each; `Some`: that brand's ID and serial, signed
/// with another key).
async fn flood(app: &TestApp, count: usize, brand_id: Option<&str>) -> Flood {
    app.update(&json!({"card_id": CARD_ID, "openid": OPENID, "level": "before"}))
        .await
        .user_card(app);
    let database_before = app
        .metric("card_member_database_duration_seconds_count")
        .await;
    let started = std::time::Instant::now();
    let mut brand = app.brand.clone();
    if brand_id.is_some() {
        brand.private_key = card_member_protocol::keys::PrivateKey::generate().unwrap();
    }
    let mut answers = Vec::with_capacity(count);
    for _ in 0..count {
        brand.brand_id = brand_id.map_or_else(crate::helpers::random_nonce, str::to_owned);
        let request = app.sign_as(&brand, "PATCH", UPDATE_TARGET, &level("flood"));
        answers.push(app.send(&request).await);
    }
    let seconds = started.elapsed().as_secs_f64().ceil() + 1.0;
    let database_calls = app
        .metric("card_member_database_duration_seconds_count")
        .await
        - database_before;
    Flood {
        answers,
        database_calls,
        seconds,
    }
}

#[tokio::test]
async fn a_flood_of_distinct_unknown_brand_ids_costs_at_most_six_database_reads_a_second_and_is_remembered_nowhere()
 {
    let app = spawn_app().await;
    let Flood {
        answers,
        database_calls,
        seconds,
    } = flood(&app, 300, None).await;
    for answer in &answers {
        answer.assert_error(401, "SIGN_ERROR");
    }
    // Six a second for the flood (the list of IDs read again once, five
    // single lookups), and the notification worker's claim, once a second
    // while the outbox is idle, which runs beside it whatever arrives: at
    // most seven calls a second in all (without the budget, 300).
    assert!(
        database_calls <= 7.0 * seconds,
        "{database_calls} database calls for 300 unknown brands in under {seconds} s"
    );
    assert_eq!(
        app.metric("card_member_brands_cached").await,
        1.0,
        "only the registered brand that called is held"
    );
}

#[tokio::test]
async fn a_flood_of_bad_signatures_for_a_real_brand_costs_no_database_and_spends_none_of_its_quota()
{
    let app = spawn_app().await;
    let brand_id = app.brand.brand_id.clone();
    let Flood {
        answers,
        database_calls,
        seconds,
    } = flood(&app, 100, Some(&brand_id)).await;
    for answer in answers {
        answer.assert_error(401, "SIGN_ERROR");
    }
    // None for the flood: what calls there are, are the notification
    // worker's claims, once a second, however long a loaded machine takes.
    assert!(
        database_calls <= seconds.max(5.0),
        "{database_calls} database calls for 100 forged requests"
    );
    app.update(&json!({"card_id": CARD_ID, "openid": OPENID, "level": "after"}))
        .await
        .user_card(&app);
}

/// (what, method, target, body, the field the answer names)
type TextCase = (&'static str, &'static str, String, Vec<u8>, &'static str);

#[tokio::test]
async fn control_characters_are_refused_in_bodies_queries_and_paths_with_the_field_named() {
    let app = spawn_app().await;
    let import = |openid: &str| {
        body(&json!({"card_id": CARD_ID, "openid": openid, "user_card_code": "HOSTILE1"}))
    };
    let cases: Vec<TextCase> = vec![
        // The finding: an openid with a C1 control character was imported.
        (
            "openid with C1 NEL",
            "POST",
            "/brand/card-member/user-cards/import-by-openid".into(),
            import("\u{b4}\u{80}N\u{d1}#"),
            "/openid",
        ),
        (
            "openid with a line separator",
            "POST",
            "/brand/card-member/user-cards/import-by-openid".into(),
            import("o\u{2028}1"),
            "/openid",
        ),
        (
            "level with ESC",
            "PATCH",
            UPDATE_TARGET.into(),
            level("金\u{1b}[2J"),
            "/level",
        ),
        (
            "invalid_reason with LF",
            "POST",
            format!("/brand/card-member/user-cards/{CODE}/invalidate"),
            body(&json!({"card_id": CARD_ID, "openid": OPENID, "invalid_reason": "a\nb"})),
            "/invalid_reason",
        ),
        (
            "empty state filter",
            "GET",
            "/brand/card-member/cards?state=".into(),
            Vec::new(),
            "/state",
        ),
        (
            "empty user_card_state filter",
            "GET",
            format!("/brand/card-member/user-cards?openid={OPENID}&user_card_state="),
            Vec::new(),
            "/user_card_state",
        ),
        (
            "openid query with a control character",
            "GET",
            "/brand/card-member/user-cards?openid=o%01x".into(),
            Vec::new(),
            "/openid",
        ),
        (
            "card_id query with C1",
            "GET",
            format!("/brand/card-member/user-cards/{CODE}?card_id=p%C2%85&openid={OPENID}"),
            Vec::new(),
            "/card_id",
        ),
        (
            "card_id path with a control character",
            "GET",
            "/brand/card-member/cards/p%07x".into(),
            Vec::new(),
            "/card_id",
        ),
    ];
    for (what, method, target, payload, field) in cases {
        let answer = app.send(&app.signed(method, &target, &payload)).await;
        assert_eq!(
            answer.status,
            400,
            "{what}: {:?}",
            String::from_utf8_lossy(&answer.body)
        );
        let error = answer.json();
        assert_eq!(error["code"], "PARAM_ERROR", "{what}: {error}");
        assert_eq!(error["detail"]["field"], field, "{what}: {error}");
    }
    // Nothing was imported.
    let listed = app
        .send(&app.signed(
            "GET",
            "/brand/card-member/user-cards?openid=o%E2%80%A81",
            &[],
        ))
        .await;
    assert_eq!(
        listed.status, 400,
        "the separator is refused in the query too"
    );
}
