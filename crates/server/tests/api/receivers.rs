//! Receivers put to the test (`/simulate/notify-test`, what `card-member
//! notify-test` calls): a receiver that verifies, checks the time and
//! decrypts passes; one that acknowledges anything is flagged, each
//! forgery it accepted named; one that verifies JSON it wrote again
//! refuses a genuine notification laid out otherwise; one that verifies
//! only what comes signed accepts an unsigned one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use card_member_protocol::keys::PublicKey;
use card_member_protocol::notify::{Envelope, open_resource};
use card_member_protocol::response::ResponseSignature;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, unix_now};
use crate::notifications::TestReceiver;

/// A receiver written as the spec asks: the signature under the WeChat
/// Pay key whose ID the serial names, the timestamp within 5 minutes, the
/// resource opened with the APIv3 key; a 2xx for any event type.
struct Careful {
    key_id: String,
    key: PublicKey,
    api_v3_key: String,
    bug: Bug,
}

/// A bug a careful receiver may still have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bug {
    None,
    /// It binds the body to an object and verifies the signature over that
    /// object written again as JSON.
    VerifiesJsonWrittenAgain,
    /// It verifies a notification that carries signature headers, and
    /// skips the check on one that carries none.
    VerifiesOnlyWhenSigned,
}

async fn careful(
    State(receiver): State<Arc<Careful>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name)?.to_str().ok();
    let unsigned = header("Wechatpay-Signature").is_none();
    if !(unsigned && receiver.bug == Bug::VerifiesOnlyWhenSigned) {
        let Ok(signature) = ResponseSignature::from_headers(header) else {
            return StatusCode::UNAUTHORIZED;
        };
        let written_again;
        let signed = if receiver.bug == Bug::VerifiesJsonWrittenAgain {
            let Ok(bound) = serde_json::from_slice::<Envelope>(&body) else {
                return StatusCode::BAD_REQUEST;
            };
            written_again = serde_json::to_vec(&bound).unwrap();
            &written_again
        } else {
            &body[..]
        };
        if signature
            .verify(&receiver.key_id, &receiver.key, signed, unix_now())
            .is_err()
        {
            return StatusCode::UNAUTHORIZED;
        }
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    match open_resource(receiver.api_v3_key.as_bytes(), &envelope.resource) {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn start_careful(app: &TestApp, bug: Bug) -> SocketAddr {
    let receiver = Arc::new(Careful {
        key_id: app.wechatpay_public_key_id.clone(),
        key: app.wechatpay_public_key.clone(),
        api_v3_key: app.api_v3_key.clone(),
        bug,
    });
    let router = axum::Router::new()
        .route("/notify", axum::routing::post(careful))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

async fn notify_test(app: &TestApp, url: &str) -> (u16, Value) {
    let target = json!({"brand_id": app.brand.brand_id, "url": url});
    app.local("POST", "/simulate/notify-test", Some(&target))
        .await
}

fn verdicts(report: &Value) -> Vec<(String, bool)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| {
            (
                check["name"].as_str().unwrap().to_owned(),
                check["passed"] == true,
            )
        })
        .collect()
}

/// The battery against a careful receiver with `bug`: its report, and the
/// one check it failed.
async fn the_one_check_failed(app: &TestApp, bug: Bug) -> (Value, Value) {
    let address = start_careful(app, bug).await;
    let (_, report) = notify_test(app, &format!("http://{address}/notify")).await;
    assert_eq!(report["passed"], false, "{report:#}");
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|check| check["passed"] != true)
        .collect();
    assert_eq!(failed.len(), 1, "{report:#}");
    let failed = failed[0].clone();
    (report, failed)
}

#[tokio::test]
async fn a_receiver_that_verifies_checks_the_time_and_decrypts_passes_every_check() {
    let app = spawn_app().await;
    let address = start_careful(&app, Bug::None).await;
    let (status, report) = notify_test(&app, &format!("http://{address}/notify")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["passed"], true, "{report:#}");
    let names: Vec<String> = verdicts(&report)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for wanted in [
        "genuine USER_CARD.CREATE",
        "genuine USER_CARD.DELETE",
        "genuine POINT_EXCHANGE_COUPON",
        "genuine SYNC_USER_POINT",
        "the same id again",
        "genuine, its JSON spaced and escaped",
        "a forged signature",
        "a signature probe (WECHATPAY/SIGNTEST/…)",
        "no signature headers",
        "a wrong Wechatpay-Serial",
        "a timestamp 6 minutes old",
        "a timestamp 6 minutes ahead",
        "a tampered ciphertext",
        "an altered associated_data",
        "sealed with another APIv3 key",
        "an unknown event_type",
    ] {
        assert!(
            names.iter().any(|name| name == wanted),
            "{wanted}: {names:?}"
        );
    }
    let again = &report["checks"][4];
    assert!(
        again["note"]
            .as_str()
            .unwrap()
            .contains("deduplicate by id")
    );
    assert!(report["checks"][0]["latency_ms"].as_u64().unwrap() < 5000);
}

#[tokio::test]
async fn a_receiver_that_acknowledges_anything_is_flagged_for_each_forgery_it_accepted() {
    let app = spawn_app().await;
    let naive = TestReceiver::start(&[]).await;
    let (_, report) = notify_test(&app, &naive.url()).await;
    assert_eq!(report["passed"], false);
    assert_eq!(report["accepted_forgeries"], 9, "{report:#}");
    for (name, passed) in verdicts(&report) {
        let should_refuse = !(name.starts_with("genuine")
            || name == "the same id again"
            || name == "an unknown event_type");
        assert_eq!(passed, !should_refuse, "{name}");
    }
}

#[tokio::test]
async fn a_receiver_that_verifies_json_it_wrote_again_fails_the_genuine_notification_laid_out_otherwise()
 {
    let app = spawn_app().await;
    let (report, failed) = the_one_check_failed(&app, Bug::VerifiesJsonWrittenAgain).await;
    assert_eq!(report["accepted_forgeries"], 0, "{report:#}");
    assert_eq!(failed["name"], "genuine, its JSON spaced and escaped");
    assert!(
        failed["note"]
            .as_str()
            .unwrap()
            .contains("over the body's bytes as they arrived"),
        "{report:#}"
    );
}

#[tokio::test]
async fn a_receiver_that_verifies_only_what_comes_signed_accepts_an_unsigned_notification_and_is_told()
 {
    let app = spawn_app().await;
    let (report, failed) = the_one_check_failed(&app, Bug::VerifiesOnlyWhenSigned).await;
    assert_eq!(report["accepted_forgeries"], 1, "{report:#}");
    assert_eq!(failed["name"], "no signature headers");
    let note = failed["note"].as_str().unwrap();
    assert!(note.starts_with("ACCEPTED"), "{note}");
    assert!(note.contains("do not skip the check"), "{note}");
}

#[tokio::test]
async fn a_receiver_that_is_not_there_fails_and_a_bad_target_is_refused() {
    let app = spawn_app().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", closed.local_addr().unwrap());
    drop(closed);
    let (_, report) = notify_test(&app, &url).await;
    assert_eq!(report["passed"], false);
    assert_eq!(
        report["accepted_forgeries"], 0,
        "no answer is not acceptance"
    );
    let (status, refused) = notify_test(&app, "ftp://example.com/notify").await;
    assert_eq!(status, 400);
    assert!(refused["message"].as_str().unwrap().starts_with("url:"));
}
