//! The commands that answer "what went wrong": `explain`, `simulate
//! fault`, `notify-test`, run as a person runs them, against a real
//! server.

use card_member_protocol::auth::Authorization;
use card_member_protocol::keys::PrivateKey;
use serde_json::Value;

use crate::flow::Listening;
use crate::helpers::{args, card_member, free_port, json_of, refusal_of, start_server};

#[tokio::test]
async fn a_refused_signature_points_to_explain_and_explain_names_the_mistake() {
    let server = start_server().await;
    // Credentials that send another serial than the key that signs.
    let mut credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(&server.credentials).unwrap()).unwrap();
    let real_serial = credentials["brand_serial_no"].as_str().unwrap().to_owned();
    credentials["brand_serial_no"] = "0123456789ABCDEF".into();
    let wrong = server.dir.path().join("wrong-serial.json");
    std::fs::write(&wrong, credentials.to_string()).unwrap();

    let output = card_member(
        args(&["cards", "list", "--credentials", wrong.to_str().unwrap()]),
        server.dir.path(),
    )
    .await;
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = stderr
        .lines()
        .find_map(|line| line.strip_prefix("why: "))
        .unwrap_or_else(|| panic!("no explain hint: {stderr}"));
    let id = hint.strip_prefix("card-member explain ").unwrap();

    let explained = card_member(
        args(&[
            "explain",
            id,
            "--credentials",
            server.credentials.to_str().unwrap(),
        ]),
        server.dir.path(),
    )
    .await;
    assert!(explained.status.success(), "{explained:?}");
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(text.contains("refused at: certificate"), "{text}");
    assert!(text.contains("mistake:    other_certificate"), "{text}");
    assert!(text.contains(&real_serial), "{text}");

    let json = json_of(&server, &["explain", id, "--json"]).await;
    assert_eq!(json["mistake"], "other_certificate");
    let last = json_of(&server, &["explain", "--last", "--json"]).await;
    assert_eq!(
        last, json,
        "the brand's latest refusal, without its Request-ID"
    );
}

#[tokio::test]
async fn sign_shows_a_request_signed_as_the_brand_that_the_server_accepts_and_the_same_signature_again()
 {
    let server = start_server().await;
    let target = format!(
        "/brand/card-member/user-cards/{}?card_id={}&openid={}",
        card_member_server::DEV_USER_CARD_CODE,
        card_member_server::DEV_CARD_ID,
        card_member_server::DEV_OPENID
    );
    let signed = json_of(&server, &["sign", "get", &target, "--json"]).await;
    assert_eq!(signed["method"], "GET");
    let message = signed["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("GET\n{target}\n{}\n", signed["timestamp"])),
        "{message:?}"
    );
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(&server.credentials).unwrap()).unwrap();
    let mut request = reqwest::Client::new().get(format!(
        "{}{target}",
        credentials["base_url"].as_str().unwrap()
    ));
    for (name, value) in signed["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), 200, "the headers shown are all it takes");

    // Deterministic: the same timestamp and nonce, the same signature, and
    // one the brand's key made over the message shown.
    let nonce = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS";
    let fixed = [
        "sign",
        "PATCH",
        "/brand/card-member/user-cards/1",
        "--body",
        "{}",
        "--timestamp",
        "1700000000",
        "--nonce",
        nonce,
    ];
    let once = json_of(&server, &[&fixed[..], &["--json"]].concat()).await;
    let again = json_of(&server, &[&fixed[..], &["--json"]].concat()).await;
    assert_eq!(once["signature"], again["signature"]);
    assert_eq!(
        once["message"],
        format!("PATCH\n/brand/card-member/user-cards/1\n1700000000\n{nonce}\n{{}}\n")
    );
    let authorization =
        Authorization::parse(once["headers"]["Authorization"].as_str().unwrap()).unwrap();
    assert_eq!(authorization.signature, once["signature"].as_str().unwrap());
    let key_file = server
        .credentials
        .parent()
        .unwrap()
        .join(credentials["brand_private_key_file"].as_str().unwrap());
    let brand_key =
        PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(key_file).unwrap()).unwrap();
    assert!(authorization.verify(
        &brand_key.public_key(),
        "PATCH",
        "/brand/card-member/user-cards/1",
        b"{}"
    ));
    let text = String::from_utf8_lossy(
        &card_member(
            args(
                &[
                    &fixed[..],
                    &["--credentials", server.credentials.to_str().unwrap()],
                ]
                .concat(),
            ),
            server.dir.path(),
        )
        .await
        .stdout,
    )
    .into_owned();
    assert!(text.contains("  {}\\n\n(2 body bytes"), "{text}");
    assert!(text.contains("ends without a line break"), "{text}");
}

#[tokio::test]
async fn sign_refuses_a_url_for_the_request_target_since_scheme_and_host_are_not_signed() {
    let server = start_server().await;
    let output = card_member(
        args(&[
            "sign",
            "GET",
            "https://api.mch.weixin.qq.com/brand/card-member/cards",
            "--credentials",
            server.credentials.to_str().unwrap(),
        ]),
        server.dir.path(),
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the scheme and host are not signed"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sign_signs_but_warns_of_a_nonce_or_a_millisecond_timestamp_the_server_refuses() {
    let server = start_server().await;
    let output = card_member(
        args(&[
            "sign",
            "GET",
            "/brand/card-member/cards",
            "--nonce",
            "abc",
            "--timestamp",
            "1700000000000",
            "--credentials",
            server.credentials.to_str().unwrap(),
        ]),
        server.dir.path(),
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("32 letters and digits"), "{stderr}");
    assert!(stderr.contains("looks like milliseconds"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("nonce_str=\"abc\""), "{stdout}");
}

#[tokio::test]
async fn explain_of_an_unknown_request_id_exits_3_and_says_why_on_stderr() {
    let server = start_server().await;
    let stderr = refusal_of(
        &server,
        &[
            "explain",
            "00000000000000000000000000000000000000000000-1004",
        ],
    )
    .await;
    assert!(
        stderr.contains("no explanation for this Request-ID"),
        "{stderr}"
    );
}

#[tokio::test]
async fn simulate_fault_adds_lists_and_clears_a_failure_the_next_call_meets() {
    let server = start_server().await;
    let credentials = server.credentials.to_str().unwrap();
    let added = json_of(
        &server,
        &[
            "simulate",
            "fault",
            "add",
            "--endpoint",
            "list_cards",
            "--kind",
            "error",
            "--status",
            "503",
            "--every",
            "1",
        ],
    )
    .await;
    assert_eq!(added["code"], "SERVICE_UNAVAILABLE");
    let listed = card_member(
        args(&["simulate", "fault", "list", "--credentials", credentials]),
        server.dir.path(),
    )
    .await;
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains("list_cards\terror\t503 SERVICE_UNAVAILABLE\tevery 1"),
        "{table}"
    );
    let failed = refusal_of(&server, &["cards", "list"]).await;
    assert!(failed.contains("503 SERVICE_UNAVAILABLE"));

    let cleared = card_member(
        args(&["simulate", "fault", "clear", "--credentials", credentials]),
        server.dir.path(),
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&cleared.stdout).trim(), "cleared 1");
    let _ = json_of(&server, &["cards", "list"]).await;

    let refused = refusal_of(
        &server,
        &[
            "simulate",
            "fault",
            "add",
            "--endpoint",
            "nope",
            "--kind",
            "drop",
        ],
    )
    .await;
    assert!(refused.contains("endpoint:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_test_passes_card_member_listen_and_flags_a_receiver_that_acknowledges_anything() {
    let server = start_server().await;
    let credentials = server.credentials.to_str().unwrap();
    let port = free_port();
    let _listening = Listening::start(&server, port, false);
    let passed = card_member(
        args(&[
            "notify-test",
            "--url",
            &format!("http://127.0.0.1:{port}/notify"),
            "--credentials",
            credentials,
        ]),
        server.dir.path(),
    )
    .await;
    let table = String::from_utf8_lossy(&passed.stdout);
    assert!(
        passed.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&passed.stderr)
    );
    assert!(table.contains("a forged signature"), "{table}");
    assert!(table.contains("passed (deadline 5 s)"), "{table}");

    // A receiver that answers 204 to anything.
    let naive = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = naive.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }),
    );
    tokio::spawn(async move { axum::serve(naive, app).await });
    let flagged = card_member(
        args(&[
            "notify-test",
            "--url",
            &format!("http://{address}/notify"),
            "--json",
            "--credentials",
            credentials,
        ]),
        server.dir.path(),
    )
    .await;
    assert_eq!(flagged.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&flagged.stdout).unwrap();
    assert_eq!(report["accepted_forgeries"], 9);
    assert!(String::from_utf8_lossy(&flagged.stderr).contains("9 notification(s)"));
}
