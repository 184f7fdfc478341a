//! Why the sandbox refused a call, asked through the SDK: a client
//! misconfigured the two ways brands most often are, against the real
//! server.

use card_member_client::{Client, Error};
use card_member_server::{DEV_CARD_ID, DEV_OPENID, DEV_USER_CARD_CODE};
use serde_json::Value;

use crate::real_server::{Server, start_server};

fn credential(server: &Server, name: &str) -> String {
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(&server.credentials).unwrap()).unwrap();
    credentials[name].as_str().unwrap().to_owned()
}

/// The refusal of a read by `client`.
async fn refused_read(client: &Client) -> card_member_client::ApiError {
    match client
        .user_cards()
        .get(DEV_USER_CARD_CODE, DEV_CARD_ID, DEV_OPENID)
        .await
    {
        Err(Error::Api(api)) => *api,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_with_another_certificate_serial_is_refused_and_the_sandbox_names_the_mistake() {
    let server = start_server().await;
    let real_serial = credential(&server, "brand_serial_no");
    let client = Client::builder_from_credentials_file(&server.credentials)
        .unwrap()
        .brand_serial_no("0123456789ABCDEF")
        .build()
        .unwrap();

    let refusal = refused_read(&client).await;
    assert_eq!((refusal.status, refusal.code.as_str()), (401, "SIGN_ERROR"));
    assert!(refusal.is_explained(), "{refusal:?}");

    let explanation = client
        .explain(refusal.request_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(explanation.step, "certificate");
    assert_eq!(explanation.mistake.as_deref(), Some("other_certificate"));
    assert!(
        explanation.diagnosis.contains(&real_serial),
        "names the serial of the key that signed: {}",
        explanation.diagnosis
    );
    let shown = explanation.to_string();
    assert!(shown.contains("mistake:    other_certificate"), "{shown}");
    assert!(shown.contains(&real_serial), "{shown}");
    assert_eq!(
        client.latest_explanation().await.unwrap(),
        explanation,
        "the brand's latest, without its Request-ID"
    );
}

#[tokio::test]
async fn a_client_sending_its_certificate_serial_as_the_wechatpay_key_id_is_told_so() {
    let server = start_server().await;
    let client = Client::builder_from_credentials_file(&server.credentials)
        .unwrap()
        .wechatpay_public_key_id(credential(&server, "brand_serial_no"))
        .build()
        .unwrap();

    let refusal = refused_read(&client).await;
    assert_eq!(refusal.status, 400);
    assert!(refusal.is_explained(), "{refusal:?}");
    let explanation = client
        .explain(refusal.request_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(explanation.step, "wechatpay_serial");
    assert_eq!(
        explanation.mistake.as_deref(),
        Some("certificate_serial_sent")
    );
    assert!(
        explanation
            .diagnosis
            .contains(&credential(&server, "wechatpay_public_key_id")),
        "{}",
        explanation.diagnosis
    );
}

#[tokio::test]
async fn a_request_id_the_sandbox_did_not_refuse_has_no_explanation_a_404() {
    let server = start_server().await;
    let client = Client::from_credentials_file(&server.credentials).unwrap();
    let answered = client.explain("0000000000000000000000000000-1004").await;
    match answered {
        Err(Error::Api(api)) => {
            assert_eq!((api.status, api.code.as_str()), (404, "NOT_FOUND"));
            assert!(api.message.contains("no explanation"), "{}", api.message);
        }
        other => panic!("expected a 404, got {other:?}"),
    }
}
