//! The client and its one send path: encrypt → serialise → sign → send →
//! verify → decode.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use card_member_protocol::auth::Authorization;
use card_member_protocol::encryption::decrypt_field;
use card_member_protocol::endpoints::{Endpoint, UPDATE_USER_CARD};
use card_member_protocol::error::ErrorBody;
use card_member_protocol::keys::{PrivateKey, PublicKey};
use card_member_protocol::model::UserCard;
use card_member_protocol::nonce::generate_nonce;
use card_member_protocol::request::ApiRequest;
use card_member_protocol::response::{HEADER_REQUEST_ID, ResponseSignature, ResponseVerifyError};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, BuildError, Error, TransportError, error_chain};
use crate::limiter::Limiter;
use crate::retry::RetryPolicy;
use crate::sensitive::{CommonFieldValue, DecryptedFields, UserCardUpdate};

/// A client of the card-member API for one brand. Cheap to clone; clones
/// share connections and the rate limiter.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) brand_id: String,
    pub(crate) brand_serial_no: String,
    pub(crate) brand_key: PrivateKey,
    pub(crate) wechatpay_public_key_id: String,
    pub(crate) wechatpay_key: PublicKey,
    pub(crate) base_url: String,
    pub(crate) backup_url: Option<String>,
    pub(crate) retry: RetryPolicy,
    pub(crate) limiter: Option<Limiter>,
}

/// An image upload's file: sent as the multipart `file` part, while the
/// request's body (what the signature covers) is its `meta` part.
#[derive(Clone, Debug)]
pub(crate) struct Upload {
    pub(crate) filename: String,
    pub(crate) bytes: Vec<u8>,
}

/// A request signed and ready to send, as it goes on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    /// The HTTP method.
    pub method: String,
    /// The request target: path and query, percent-encoded.
    pub target: String,
    /// The body's exact bytes.
    pub body: Vec<u8>,
    /// The `Authorization` header value.
    pub authorization: String,
    /// When it was signed (Unix seconds): it is accepted for 5 minutes.
    pub timestamp: i64,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn random_nonce() -> String {
    let rng = SystemRandom::new();
    generate_nonce(|buffer| rng.fill(buffer).expect("the system RNG works"))
}

impl Client {
    /// The brand this client calls for.
    pub fn brand_id(&self) -> &str {
        &self.inner.brand_id
    }

    /// The WeChat Pay public key ID its requests name in
    /// `Wechatpay-Serial` and its answers must be signed under.
    pub fn wechatpay_public_key_id(&self) -> &str {
        &self.inner.wechatpay_public_key_id
    }

    /// Decrypts a card's sensitive fields with the brand private key (one
    /// private-key operation per field).
    pub fn decrypt(&self, card: &UserCard) -> Result<DecryptedFields, Error> {
        let undecryptable = |field: &str| Error::Decode {
            message: format!("{field} could not be decrypted with the brand private key"),
            request_id: None,
        };
        let phone_number = card
            .phone_number
            .as_ref()
            .map(|ciphertext| {
                decrypt_field(&self.inner.brand_key, ciphertext.as_str())
                    .map_err(|_| undecryptable("phone_number"))
            })
            .transpose()?;
        let common_field_list = card
            .user_information
            .as_ref()
            .and_then(|info| info.common_field_list.as_ref())
            .map(|fields| {
                fields
                    .iter()
                    .map(|field| {
                        Ok(CommonFieldValue {
                            name: field.name,
                            value: decrypt_field(&self.inner.brand_key, field.value.as_str())
                                .map_err(|_| undecryptable(field.name.as_str()))?,
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(DecryptedFields {
            phone_number,
            common_field_list,
        })
    }

    /// Checks an update against every rule of the spec without sending or
    /// signing it (a batch reports its invalid rows before it sends any).
    pub fn validate_update(
        &self,
        user_card_code: &str,
        update: &UserCardUpdate,
    ) -> Result<(), Error> {
        self.prepare_update(user_card_code, update).map(drop)
    }

    /// Encrypts, validates and signs an update without sending it, for
    /// callers that must be able to send the very same request again (a
    /// resumed batch: the server accepts a nonce once, so a resend of a
    /// request that was applied is refused, not applied twice).
    pub fn sign_update(
        &self,
        user_card_code: &str,
        update: &UserCardUpdate,
    ) -> Result<SignedRequest, Error> {
        let (target, body) = self.prepare_update(user_card_code, update)?;
        Ok(self.sign("PATCH", target, body, unix_now()))
    }

    /// Sends a signed update once (no retry, no re-signing; failover to
    /// the backup host on a refused connection) and verifies the answer.
    pub async fn send_signed_update(&self, request: &SignedRequest) -> Result<UserCard, Error> {
        if let Some(limiter) = &self.inner.limiter {
            limiter
                .acquire(UPDATE_USER_CARD.name, UPDATE_USER_CARD.per_second)
                .await;
        }
        let response = self.send_once(request, None).await?;
        self.finish(response).await
    }

    fn prepare_update(
        &self,
        user_card_code: &str,
        update: &UserCardUpdate,
    ) -> Result<(String, Vec<u8>), Error> {
        let request = update
            .encrypt(user_card_code, &self.inner.wechatpay_key)
            .map_err(Error::build)?;
        request
            .check()
            .map_err(|violation| Error::build(BuildError::Invalid(violation)))?;
        Ok((request.target(), request.body()))
    }

    fn sign(&self, method: &str, target: String, body: Vec<u8>, timestamp: i64) -> SignedRequest {
        self.signed(method, target, body, timestamp, &random_nonce())
    }

    /// Signs a request as this brand, without checking, encrypting or
    /// sending anything: `method` as sent (upper-case), `target` the path
    /// and query exactly as sent (percent-encoded), `body` its exact bytes,
    /// at `timestamp` (Unix seconds) with `nonce`. For comparing a brand's
    /// own signing code with this one, or sending through another HTTP
    /// client (with `Wechatpay-Serial`:
    /// [`Client::wechatpay_public_key_id`]). The signature
    /// (RSASSA-PKCS1-v1_5, SHA-256) is deterministic: the same five values
    /// and key always give the same one. The typed calls sign for
    /// themselves, afresh for every attempt.
    pub fn sign_request(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
        timestamp: i64,
        nonce: &str,
    ) -> SignedRequest {
        self.signed(method, target.to_owned(), body.to_vec(), timestamp, nonce)
    }

    fn signed(
        &self,
        method: &str,
        target: String,
        body: Vec<u8>,
        timestamp: i64,
        nonce: &str,
    ) -> SignedRequest {
        let authorization = Authorization::sign(
            &self.inner.brand_key,
            &self.inner.brand_id,
            &self.inner.brand_serial_no,
            method,
            &target,
            timestamp,
            nonce,
            &body,
        );
        SignedRequest {
            method: method.to_owned(),
            target,
            body,
            authorization: authorization.to_header_value(),
            timestamp,
        }
    }

    /// Sends a request of any endpoint: checked against the endpoint's
    /// rules first (a request the server would refuse is never signed),
    /// then [`Client::execute`].
    pub(crate) async fn send<R: ApiRequest>(&self, request: &R) -> Result<R::Response, Error> {
        request
            .check()
            .map_err(|violation| Error::build(BuildError::Invalid(violation)))?;
        self.execute(R::ENDPOINT, request.target(), request.body())
            .await
    }

    /// The one send path: sign afresh for every attempt, send, retry what
    /// may be retried, verify, decode.
    pub(crate) async fn execute<T: DeserializeOwned>(
        &self,
        endpoint: &'static Endpoint,
        target: String,
        body: Vec<u8>,
    ) -> Result<T, Error> {
        self.execute_with(endpoint, target, body, None).await
    }

    /// [`Client::execute`], with an upload's file.
    pub(crate) async fn execute_with<T: DeserializeOwned>(
        &self,
        endpoint: &'static Endpoint,
        target: String,
        body: Vec<u8>,
        upload: Option<&Upload>,
    ) -> Result<T, Error> {
        let method = endpoint.method;
        let policy = &self.inner.retry;
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            if let Some(limiter) = &self.inner.limiter {
                limiter.acquire(endpoint.name, endpoint.per_second).await;
            }
            let request = self.sign(method, target.clone(), body.clone(), unix_now());
            let outcome = match self.send_once(&request, upload).await {
                Ok(response) => self.finish(response).await,
                Err(error) => Err(error),
            };
            let error = match outcome {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            // The endpoint table says which calls may be sent again after an
            // unanswered attempt (all but imports).
            let delay = self.retry_delay(attempt, &error, endpoint.idempotent);
            match delay {
                Some(delay)
                    if attempt < policy.max_attempts
                        && started.elapsed() + delay <= policy.max_elapsed =>
                {
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => return Err(error),
            }
        }
    }

    fn retry_delay(&self, attempt: u32, error: &Error, idempotent: bool) -> Option<Duration> {
        let retryable = if idempotent {
            error.is_retryable_when_idempotent()
        } else {
            error.is_retryable()
        };
        if !retryable {
            return None;
        }
        let policy = &self.inner.retry;
        let exponential = policy
            .initial_delay
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(policy.max_delay);
        let mut jitter = [0u8; 2];
        SystemRandom::new()
            .fill(&mut jitter)
            .expect("the system RNG works");
        let fraction = f64::from(u16::from_le_bytes(jitter)) / f64::from(u16::MAX);
        let jittered = exponential.mul_f64(0.5 + 0.5 * fraction);
        let retry_after = error
            .api()
            .and_then(|api| api.retry_after)
            .map(Duration::from_secs)
            .unwrap_or_default();
        Some(jittered.max(retry_after))
    }

    /// Sends to the base URL, and to the backup URL if the base URL refused
    /// the connection.
    async fn send_once(
        &self,
        request: &SignedRequest,
        upload: Option<&Upload>,
    ) -> Result<reqwest::Response, Error> {
        let primary = self.send_to(&self.inner.base_url, request, upload).await;
        match (primary, &self.inner.backup_url) {
            (Err(error), Some(backup)) if error.is_connect() => self
                .send_to(backup, request, upload)
                .await
                .map_err(transport_error),
            (result, _) => result.map_err(transport_error),
        }
    }

    async fn send_to(
        &self,
        base_url: &str,
        request: &SignedRequest,
        upload: Option<&Upload>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let method =
            reqwest::Method::from_bytes(request.method.as_bytes()).expect("methods are valid");
        let mut builder = self
            .inner
            .http
            .request(method, format!("{base_url}{}", request.target))
            .header("Authorization", &request.authorization)
            .header("Accept", "application/json")
            .header("Wechatpay-Serial", &self.inner.wechatpay_public_key_id);
        if let Some(upload) = upload {
            // reqwest encodes the multipart body (a fresh random boundary
            // per attempt); the signature covers the meta part's bytes.
            let meta = reqwest::multipart::Part::bytes(request.body.clone())
                .mime_str("application/json")?;
            let file = reqwest::multipart::Part::bytes(upload.bytes.clone())
                .file_name(upload.filename.clone());
            builder = builder.multipart(
                reqwest::multipart::Form::new()
                    .part("meta", meta)
                    .part("file", file),
            );
        } else if request.method != "GET" {
            builder = builder
                .header("Content-Type", "application/json")
                .body(request.body.clone());
        }
        builder.send().await
    }

    /// Reads the answer: an API error, or a 2xx that must verify before its
    /// body is decoded.
    async fn finish<T: DeserializeOwned>(&self, response: reqwest::Response) -> Result<T, Error> {
        let Answer {
            headers,
            body,
            request_id,
        } = read_answer(response).await?;
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let invalid = |reason: ResponseVerifyError| Error::InvalidSignature {
            reason,
            request_id: request_id.clone(),
        };
        let signature = ResponseSignature::from_headers(header).map_err(invalid)?;
        signature
            .verify(
                &self.inner.wechatpay_public_key_id,
                &self.inner.wechatpay_key,
                &body,
                unix_now(),
            )
            .map_err(invalid)?;
        serde_json::from_slice(&body).map_err(|err| Error::Decode {
            message: err.to_string(),
            request_id,
        })
    }
}

/// A 2xx answer, read.
pub(crate) struct Answer {
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
    /// Its `Request-ID`.
    pub(crate) request_id: Option<String>,
}

/// Reads an answer (at most [`MAX_RESPONSE_BYTES`]): a 2xx as it came,
/// anything else as the API's error.
pub(crate) async fn read_answer(response: reqwest::Response) -> Result<Answer, Error> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let request_id = header(HEADER_REQUEST_ID).map(str::to_owned);
    let body = read_capped(response).await?;
    if !(200..300).contains(&status) {
        return Err(Error::api_error(api_error(
            status,
            &body,
            request_id,
            header("Retry-After"),
        )));
    }
    Ok(Answer {
        headers,
        body,
        request_id,
    })
}

/// The most of an answer the client reads: far above the largest answer
/// the spec's field limits allow (a page of at most 20 templates). A larger
/// answer, a proxy's or a server's gone wrong, is refused before it is read
/// whole, not held in memory however long it runs.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// An answer's body, at most [`MAX_RESPONSE_BYTES`]: a `Content-Length`
/// over it is refused unread, a body that runs over it as it arrives.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, Error> {
    let failed = |message: String| Error::Transport(TransportError::new(true, message));
    let too_large = || {
        failed(format!(
            "the answer is larger than {} MiB, the most the client reads: not read",
            MAX_RESPONSE_BYTES >> 20
        ))
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_large());
    }
    let cut_off = |err: reqwest::Error| {
        let mut transport = TransportError::new(
            true,
            format!("reading the response failed: {}", error_chain(&err)),
        );
        // Closed or reset mid-answer (not a timeout): as with no answer at
        // all, an idempotent call may be sent again.
        transport.unanswered = !err.is_timeout();
        Error::Transport(transport)
    };
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(cut_off)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(crate) fn transport_error(error: reqwest::Error) -> Error {
    // A refused or failed connection never carried the request; anything
    // later (a timeout, a reset) may have.
    let never_sent = error.is_connect() || error.is_builder();
    let mut transport = TransportError::new(!never_sent, error_chain(&error));
    transport.unanswered = !never_sent && !error.is_timeout();
    Error::Transport(transport)
}

fn api_error(
    status: u16,
    body: &[u8],
    request_id: Option<String>,
    retry_after: Option<&str>,
) -> ApiError {
    let retry_after = retry_after.and_then(|value| value.trim().parse().ok());
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => ApiError {
            status,
            code: error.code,
            message: error.message,
            detail: error.detail,
            request_id,
            retry_after,
        },
        Err(_) => ApiError {
            status,
            code: format!("HTTP_{status}"),
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            detail: None,
            request_id,
            retry_after,
        },
    }
}

#[cfg(test)]
mod tests {
    use card_member_protocol::endpoints::encode_component;

    use super::*;

    #[test]
    fn path_components_are_percent_encoded_except_unreserved() {
        assert_eq!(encode_component("478515832665"), "478515832665");
        assert_eq!(encode_component("A-b_c.d~e"), "A-b_c.d~e");
        assert_eq!(encode_component("a/b c#?"), "a%2Fb%20c%23%3F");
        assert_eq!(encode_component("会"), "%E4%BC%9A");
    }

    #[test]
    fn a_non_json_error_body_still_makes_an_api_error() {
        let error = api_error(502, b"<html>bad gateway</html>", Some("X-1".into()), None);
        assert_eq!(error.code, "HTTP_502");
        assert!(error.message.contains("bad gateway"));
    }
}
