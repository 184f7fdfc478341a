//! The load: requests signed ahead of their window, sent over loopback, their answers checked.

use card_member_client::protocol::auth::Authorization;
use card_member_client::protocol::keys::{PrivateKey, PublicKey};
use serde_json::Value;

use crate::{random_nonce, unix_now};

/// A request signed and ready to send.
pub(super) struct Prepared {
    pub(super) method: reqwest::Method,
    pub(super) target: String,
    pub(super) body: Vec<u8>,
    pub(super) authorization: String,
}

pub(super) struct Signer {
    pub(super) key: PrivateKey,
    pub(super) serial: String,
    pub(super) key_id: String,
    pub(super) wechatpay: PublicKey,
}

impl Signer {
    pub(super) fn sign(
        &self,
        brand: &str,
        method: &str,
        target: String,
        body: Vec<u8>,
    ) -> Prepared {
        let authorization = Authorization::sign(
            &self.key,
            brand,
            &self.serial,
            method,
            &target,
            unix_now(),
            &random_nonce(),
            &body,
        );
        Prepared {
            method: reqwest::Method::from_bytes(method.as_bytes()).expect("valid method"),
            target,
            body,
            authorization: authorization.to_header_value(),
        }
    }
}

/// Sends a signed request; its status and body.
pub(super) async fn exchange(
    http: &reqwest::Client,
    base_url: &str,
    key_id: &str,
    request: &Prepared,
) -> Result<(u16, Vec<u8>), reqwest::Error> {
    let response = http
        .request(
            request.method.clone(),
            format!("{base_url}{}", request.target),
        )
        .header("Authorization", &request.authorization)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .header("Wechatpay-Serial", key_id)
        .body(request.body.clone())
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((
        status,
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default(),
    ))
}

/// Sends a signed request; its status and error code (empty on 200,
/// `TIMEOUT` or `TRANSPORT` with status 0 when there was no answer).
pub(super) async fn send(
    http: &reqwest::Client,
    base_url: &str,
    key_id: &str,
    request: &Prepared,
) -> (u16, String) {
    match exchange(http, base_url, key_id, request).await {
        Ok((200, _)) => (200, String::new()),
        Ok((status, body)) => {
            let code = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_owned))
                .unwrap_or_default();
            (status, code)
        }
        Err(err) => (
            0,
            if err.is_timeout() {
                "TIMEOUT".into()
            } else {
                "TRANSPORT".into()
            },
        ),
    }
}
