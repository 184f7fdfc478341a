//! The SDK's retries, failover and verification against the real server
//! failing on purpose (`/simulate/faults`): what a brand's code meets
//! when the provider fails.

use std::time::{Duration, Instant};

use card_member_client::{Client, Error, UserCardImport, UserCardUpdate};
use card_member_server::{DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE};
use serde_json::{Value, json};

use crate::real_server::{Server, start_server};

fn base_url(server: &Server) -> String {
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(&server.credentials).unwrap()).unwrap();
    credentials["base_url"].as_str().unwrap().to_owned()
}

fn brand_id(server: &Server) -> String {
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(&server.credentials).unwrap()).unwrap();
    credentials["brand_id"].as_str().unwrap().to_owned()
}

/// Injects a fault for the development brand; its ID.
async fn inject(server: &Server, mut fault: Value) -> i64 {
    fault["brand_id"] = brand_id(server).into();
    let response = reqwest::Client::new()
        .post(format!("{}/simulate/faults", base_url(server)))
        .header("Content-Type", "application/json")
        .body(fault.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let added: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    added["id"].as_i64().unwrap()
}

/// How often a fault has fired: how many attempts the SDK made into it.
async fn fired(server: &Server, id: i64) -> i64 {
    let listed: Value = serde_json::from_slice(
        &reqwest::get(format!("{}/simulate/faults?id={id}", base_url(server)))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    listed["data"][0]["injected"].as_i64().unwrap_or(-1)
}

/// Reads the development card.
async fn read_card(client: &Client) -> Result<card_member_client::UserCard, Error> {
    client
        .user_cards()
        .get(DEV_USER_CARD_CODE, DEV_CARD_ID, DEV_OPENID)
        .await
}

fn level(level: &str) -> UserCardUpdate {
    UserCardUpdate {
        level: Some(level.into()),
        ..UserCardUpdate::new(DEV_CARD_ID, DEV_OPENID)
    }
}

fn import(code: &str) -> UserCardImport {
    UserCardImport {
        card_id: DEV_CARD_ID.into(),
        openid: format!("o-{code}"),
        user_card_code: code.into(),
        ..UserCardImport::default()
    }
}

#[tokio::test]
async fn a_500_is_retried_with_a_fresh_signature_the_server_accepts() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let id = inject(
        &server,
        json!({"endpoint": "update_user_card", "kind": "error", "every": 2}),
    )
    .await;
    // Every second attempt fails: the first call succeeds at once, the
    // second only on its retry (a reused nonce would be refused).
    for value in ["one", "two"] {
        let card = client
            .user_cards()
            .update(DEV_USER_CARD_CODE, &level(value))
            .await
            .unwrap();
        assert_eq!(card.level.as_deref(), Some(value));
    }
    assert_eq!(fired(&server, id).await, 1);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    inject(
        &server,
        json!({"endpoint": "get_user_card", "kind": "error", "status": 429, "count": 1}),
    )
    .await;
    let started = Instant::now();
    read_card(&client).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn retries_stop_after_the_policys_attempts_and_a_400_is_not_retried() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let unavailable = inject(
        &server,
        json!({"endpoint": "get_user_card", "kind": "error", "status": 503}),
    )
    .await;
    let error = read_card(&client).await.unwrap_err();
    assert_eq!(error.api().unwrap().status, 503);
    assert_eq!(
        fired(&server, unavailable).await,
        3,
        "three attempts in all"
    );

    let refused = inject(
        &server,
        json!({"endpoint": "update_user_card", "kind": "error", "status": 400}),
    )
    .await;
    let error = client
        .user_cards()
        .update(DEV_USER_CARD_CODE, &level("never"))
        .await
        .unwrap_err();
    assert_eq!(error.api().unwrap().code, "PARAM_ERROR");
    assert_eq!(fired(&server, refused).await, 1, "a 400 is not retried");
}

/// The three ways a response is lost after its change was committed: an
/// error answer, none (the connection closed), or one cut off on the way.
const LOST_AFTER_COMMIT: [&str; 3] = ["error-after-commit", "drop-after-commit", "truncate"];

#[tokio::test]
async fn a_lost_update_response_is_retried_and_leaves_the_card_as_once() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    for (kind, lost) in LOST_AFTER_COMMIT
        .into_iter()
        .zip(["lost once", "lost twice", "cut off"])
    {
        let id = inject(
            &server,
            json!({"endpoint": "update_user_card", "kind": kind, "count": 1}),
        )
        .await;
        let card = client
            .user_cards()
            .update(DEV_USER_CARD_CODE, &level(lost))
            .await
            .unwrap_or_else(|error| panic!("{kind}: {error}"));
        assert_eq!(card.level.as_deref(), Some(lost), "{kind}");
        assert_eq!(
            fired(&server, id).await,
            -1,
            "{kind}: fired once, then spent"
        );
    }
}

#[tokio::test]
async fn a_lost_import_response_is_not_sent_again_and_says_it_may_have_been_applied() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    for (kind, code) in LOST_AFTER_COMMIT
        .into_iter()
        .zip(["LOST-1", "LOST-2", "LOST-3"])
    {
        inject(
            &server,
            json!({"endpoint": "import_user_card", "kind": kind, "count": 1}),
        )
        .await;
        let error = client.user_cards().import(&import(code)).await.unwrap_err();
        if kind == "error-after-commit" {
            assert_eq!(error.api().unwrap().status, 500);
        } else {
            assert!(matches!(error, Error::Transport(_)), "{error:?}");
        }
        assert!(error.may_have_been_applied(), "{kind}: {error}");
        assert!(
            !error.is_retryable(),
            "{kind}: an import is not sent again: {error}"
        );
        let card = client
            .user_cards()
            .get(code, DEV_CARD_ID, &format!("o-{code}"))
            .await
            .expect("it was applied: reading it is how to find out");
        assert_eq!(card.user_card_code, code);
    }
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_resends_an_update_but_not_an_import() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    inject(
        &server,
        json!({"endpoint": "update_user_card", "kind": "drop", "count": 1}),
    )
    .await;
    let card = client
        .user_cards()
        .update(DEV_USER_CARD_CODE, &level("retried"))
        .await
        .expect("an update sets fields: sending it again is safe");
    assert_eq!(card.level.as_deref(), Some("retried"));

    inject(
        &server,
        json!({"endpoint": "import_user_card", "kind": "drop", "count": 1}),
    )
    .await;
    let error = client
        .user_cards()
        .import(&import("ONCE-1"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");
    assert!(error.may_have_been_applied(), "{error}");
    assert!(!error.is_retryable(), "{error}");
}

#[tokio::test]
async fn an_answer_whose_signature_does_not_verify_is_rejected_not_returned() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    inject(
        &server,
        json!({"endpoint": "get_user_card", "kind": "bad-signature", "count": 1}),
    )
    .await;
    let error = read_card(&client).await.unwrap_err();
    assert!(matches!(error, Error::InvalidSignature { .. }), "{error:?}");
}

#[tokio::test]
async fn a_refused_connection_fails_over_to_the_backup_host() {
    let server = start_server().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = Client::builder_from_credentials_file(&server.credentials)
        .unwrap()
        .base_url(dead_url)
        .backup_url(Some(base_url(&server)))
        .build()
        .unwrap();
    let card = client
        .user_cards()
        .update(DEV_USER_CARD_CODE, &level("via backup"))
        .await
        .unwrap();
    assert_eq!(card.level.as_deref(), Some("via backup"));
}

#[path = "../../examples/receiver.rs"]
#[allow(dead_code, unreachable_pub)]
mod receiver_example;

#[tokio::test]
async fn the_receiver_example_passes_the_servers_notify_test() {
    let server = start_server().await;
    let receiver =
        card_member_client::notify::Receiver::from_credentials_file(&server.credentials).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = receiver_example::app(std::sync::Arc::new(receiver));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let response = reqwest::Client::new()
        .post(format!("{}/simulate/notify-test", base_url(&server)))
        .header("Content-Type", "application/json")
        .body(
            json!({"brand_id": brand_id(&server), "url": format!("http://{address}/notify")})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(report["passed"], true, "{report:#}");
}
