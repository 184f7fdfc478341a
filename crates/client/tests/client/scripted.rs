//! A scripted server answers what a real one cannot produce on demand:
//! forged, stale or missing signatures, probes, wrong serials, 5xx and 429
//! sequences, a refusing primary host, non-JSON errors, answers too large
//! to read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use card_member_client::protocol::auth::Authorization;
use card_member_client::protocol::encryption::decrypt_field;
use card_member_client::protocol::keys::PrivateKey;
use card_member_client::protocol::response::{ResponseSignature, ResponseVerifyError};
use card_member_client::{Client, Error, RetryPolicy, SecretString, UserCardUpdate};

const KEY_ID: &str = "PUB_KEY_ID_0112233445566778899001122334455667";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../protocol/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn wechatpay_key() -> PrivateKey {
    PrivateKey::from_pkcs8_pem(&fixture("test_wechatpay_private.pem")).unwrap()
}

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

type Reply = Box<dyn FnOnce(&Seen) -> Response + Send>;

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
}

async fn answer(
    State(script): State<Arc<Script>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method: method.to_string(),
        target: uri.path_and_query().unwrap().to_string(),
        headers,
        body,
    };
    script.seen.lock().unwrap().push(seen.clone());
    let reply = script
        .replies
        .lock()
        .unwrap()
        .pop_front()
        .expect("the script has a reply left");
    reply(&seen)
}

const CARD: &str = r#"{"user_card_code":"478515832665","card_id":"pbLatjvWOibDc5-TBnbUk1pD12o0","openid":"o","brand_id":"1001622624","card_type":"NORMAL","valid_date_information":{"type":"PERMANENT"},"pickup_time":"2020-05-20T13:29:35.120+08:00","user_card_state":"EFFECTIVE","create_time":"2020-05-20T13:29:35.120+08:00","modify_time":"2020-05-20T13:29:35.120+08:00"}"#;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A 200 with the card, signed as `tweak` leaves it.
fn signed_card(tweak: impl FnOnce(&mut ResponseSignature, &mut String) + Send + 'static) -> Reply {
    Box::new(move |_| {
        let mut body = CARD.to_owned();
        let mut signature = ResponseSignature::sign(
            &wechatpay_key(),
            KEY_ID,
            now(),
            "e63973074d9d78aff8fb62277b5f95a0",
            body.as_bytes(),
        );
        tweak(&mut signature, &mut body);
        let mut response = (StatusCode::OK, body).into_response();
        for (name, value) in signature.headers() {
            response.headers_mut().insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        response
    })
}

fn plain(
    status: u16,
    body: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> Reply {
    Box::new(move |_| {
        let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
        for (name, value) in headers {
            response.headers_mut().insert(*name, value.parse().unwrap());
        }
        response
    })
}

struct Scripted {
    script: Arc<Script>,
    url: String,
}

async fn scripted(replies: Vec<Reply>) -> Scripted {
    let script = Arc::new(Script::default());
    script.replies.lock().unwrap().extend(replies);
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(Arc::clone(&script));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Scripted { script, url }
}

impl Scripted {
    fn seen(&self) -> Vec<Seen> {
        self.script.seen.lock().unwrap().clone()
    }
}

fn client(base_url: &str, backup: Option<String>) -> Client {
    Client::builder()
        .brand_id("1001622624")
        .brand_serial_no("1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C")
        .brand_private_key_pem(&fixture("test_brand_private.pem"))
        .wechatpay_public_key_id(KEY_ID)
        .wechatpay_public_key_pem(&fixture("test_wechatpay_public.pem"))
        .base_url(base_url)
        .backup_url(backup)
        .retry_policy(RetryPolicy {
            initial_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap()
}

fn update() -> UserCardUpdate {
    UserCardUpdate {
        level: Some("gold".into()),
        phone_number: Some(SecretString::new("13800138000")),
        ..UserCardUpdate::new("pbLatjvWOibDc5-TBnbUk1pD12o0", "o")
    }
}

async fn call(server: &Scripted) -> Result<card_member_client::UserCard, Error> {
    client(&server.url, None)
        .user_cards()
        .update("478515832665", &update())
        .await
}

fn signature_error(result: Result<card_member_client::UserCard, Error>) -> ResponseVerifyError {
    match result {
        Err(Error::InvalidSignature { reason, .. }) => reason,
        other => panic!("expected a rejected signature, got {other:?}"),
    }
}

#[tokio::test]
async fn a_verified_response_is_returned_and_the_request_is_signed_and_encrypted() {
    let server = scripted(vec![signed_card(|_, _| {})]).await;
    let card = call(&server).await.unwrap();
    assert_eq!(card.user_card_code, "478515832665");
    let seen = &server.seen()[0];
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("PATCH", "/brand/card-member/user-cards/478515832665")
    );
    let authorization =
        Authorization::parse(seen.headers["authorization"].to_str().unwrap()).unwrap();
    let brand_public = PrivateKey::from_pkcs8_pem(&fixture("test_brand_private.pem"))
        .unwrap()
        .public_key();
    assert!(authorization.verify(&brand_public, "PATCH", &seen.target, &seen.body));
    assert_eq!(seen.headers["wechatpay-serial"], KEY_ID);
    assert_eq!(seen.headers["accept"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    let phone = body["phone_number"].as_str().unwrap();
    assert!(
        !String::from_utf8_lossy(&seen.body).contains("13800138000"),
        "plaintext never on the wire"
    );
    assert_eq!(
        decrypt_field(&wechatpay_key(), phone).unwrap().expose(),
        "13800138000"
    );
}

#[tokio::test]
async fn a_tampered_response_body_is_rejected() {
    let server = scripted(vec![signed_card(|_, body| {
        *body = body.replace("EFFECTIVE", "EXPIRED")
    })])
    .await;
    assert_eq!(
        signature_error(call(&server).await),
        ResponseVerifyError::InvalidSignature
    );
}

#[tokio::test]
async fn a_response_without_signature_is_rejected() {
    let server = scripted(vec![plain(200, CARD, &[])]).await;
    assert!(matches!(
        signature_error(call(&server).await),
        ResponseVerifyError::MissingHeader(_)
    ));
}

#[tokio::test]
async fn a_stale_response_timestamp_is_rejected() {
    let server = scripted(vec![signed_card(|signature, body| {
        *signature =
            ResponseSignature::sign(&wechatpay_key(), KEY_ID, now() - 301, "n", body.as_bytes());
    })])
    .await;
    let stale = signature_error(call(&server).await);
    let ResponseVerifyError::StaleTimestamp { timestamp, now } = stale else {
        panic!("{stale:?}");
    };
    assert!(now - timestamp >= 301, "{stale}");
    assert!(
        stale.to_string().contains(" s behind the local clock"),
        "{stale}"
    );
}

#[tokio::test]
async fn a_signtest_probe_is_an_invalid_signature() {
    let server = scripted(vec![signed_card(|signature, _| {
        signature.signature = "WECHATPAY/SIGNTEST/abc".into()
    })])
    .await;
    assert_eq!(
        signature_error(call(&server).await),
        ResponseVerifyError::InvalidSignature
    );
}

#[tokio::test]
async fn a_response_signed_under_another_key_id_is_rejected() {
    let server = scripted(vec![signed_card(|signature, _| {
        signature.serial = "PUB_KEY_ID_9".into()
    })])
    .await;
    assert_eq!(
        signature_error(call(&server).await),
        ResponseVerifyError::UnexpectedSerial {
            received: "PUB_KEY_ID_9".into(),
            expected: KEY_ID.into()
        }
    );
}

#[tokio::test]
async fn a_non_json_error_body_is_reported_as_an_api_error() {
    let server = scripted(vec![plain(404, "<html>not here</html>", &[])]).await;
    let api = call(&server).await.unwrap_err().api().cloned().unwrap();
    assert_eq!((api.status, api.code.as_str()), (404, "HTTP_404"));
    assert!(api.message.contains("not here"));
}

/// The transport error of an answer too large to read.
fn too_large(result: Result<card_member_client::UserCard, Error>) -> Error {
    let error = result.unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");
    assert!(
        card_member_client::error_chain(&error).contains("larger than 4 MiB"),
        "{error:?}"
    );
    assert!(error.may_have_been_applied(), "it was answered");
    error
}

#[tokio::test]
async fn an_answer_longer_than_the_client_reads_is_refused_before_it_is_read() {
    let oversized = card_member_client::MAX_RESPONSE_BYTES + 1;
    let server = scripted(vec![Box::new(move |_| {
        (StatusCode::OK, vec![b' '; oversized]).into_response()
    })])
    .await;
    too_large(call(&server).await);
    assert_eq!(server.seen().len(), 1, "not sent again");
}

#[tokio::test]
async fn an_endless_answer_is_cut_off_at_the_most_the_client_reads() {
    let server = scripted(vec![Box::new(|_| {
        let endless = futures_util::stream::repeat_with(|| {
            Ok::<_, std::convert::Infallible>(Bytes::from(vec![b' '; 64 * 1024]))
        });
        (StatusCode::OK, axum::body::Body::from_stream(endless)).into_response()
    })])
    .await;
    // Read whole, it would end only at the 30 s timeout, as a timeout.
    too_large(call(&server).await);
}

#[tokio::test]
async fn a_refused_connection_without_backup_is_a_transport_error_not_applied() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = client(&dead_url, None)
        .user_cards()
        .update("478515832665", &update())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");
    assert!(!error.may_have_been_applied());
}

#[test]
fn sign_request_reproduces_openssls_signature_of_the_same_message() {
    let message = fixture("golden_request_message.txt");
    let lines: Vec<&str> = message.splitn(5, '\n').collect();
    let body = lines[4].strip_suffix('\n').unwrap();
    let signed = client("http://127.0.0.1:1", None).sign_request(
        lines[0],
        lines[1],
        body.as_bytes(),
        lines[2].parse().unwrap(),
        lines[3],
    );
    let golden = fixture("golden_request_signature.b64");
    assert!(
        signed
            .authorization
            .contains(&format!("signature=\"{}\"", golden.trim())),
        "{}",
        signed.authorization
    );
    assert_eq!(signed.target, lines[1]);
    assert_eq!(signed.body, body.as_bytes());
}

#[tokio::test]
async fn secrets_do_not_print_in_debug() {
    let printed = format!("{:?} {:?}", update(), client("http://127.0.0.1:1", None));
    assert!(!printed.contains("13800138000"), "{printed}");
    assert!(!printed.contains("BEGIN PRIVATE KEY"), "{printed}");
}
