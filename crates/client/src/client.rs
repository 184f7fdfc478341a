//! The client and its one send path: encrypt → serialise → sign → send →
//! verify → decode.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use card_member_protocol::activity::{PointsSync, PointsSyncRequest, UserFeed, UserFeedRequest};
use card_member_protocol::auth::Authorization;
use card_member_protocol::encryption::decrypt_field;
use card_member_protocol::endpoints::{
    CONFIRM_POINT_EXCHANGE, CONFIRM_USER_CARD, CREATE_CARD, CREATE_PRE_AUTH_TOKEN,
    CREATE_USER_FEED, Endpoint, GET_CARD, GET_USER_CARD, IMPORT_USER_CARD, INVALIDATE_CARD,
    INVALIDATE_USER_CARD, LIST_CARDS, LIST_USER_CARDS, SYNC_USER_POINTS, UPDATE_CARD,
    UPDATE_USER_CARD, UPLOAD_IMAGE,
};
use card_member_protocol::error::ErrorBody;
use card_member_protocol::keys::{PrivateKey, PublicKey};
use card_member_protocol::media::MAX_IMAGE_BYTES;
use card_member_protocol::model::{
    Card, CardState, ConfirmUserCardRequest, CreateCardRequest, ExchangeCouponConfirmRequest,
    ExchangeCouponResult, ImageMeta, ImageType, ImageUpload, InvalidateUserCardRequest, ListQuery,
    Page, PreAuthToken, PreAuthTokenRequest, UpdateCardRequest, UserCard, UserCardConfirmState,
    UserCardState,
};
use card_member_protocol::nonce::generate_nonce;
use card_member_protocol::response::{HEADER_REQUEST_ID, ResponseSignature, ResponseVerifyError};
use futures_util::Stream;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::builder::{ClientBuilder, RetryPolicy};
use crate::error::{ApiError, BuildError, Error, TransportError, error_chain};
use crate::limiter::Limiter;
use crate::sensitive::{CommonFieldValue, DecryptedFields, UserCardImport, UserCardUpdate};

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

/// The `credentials.json` a card-member server writes on its first start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    base_url: String,
    brand_id: String,
    brand_serial_no: String,
    brand_private_key_file: String,
    wechatpay_public_key_id: String,
    wechatpay_public_key_file: String,
    // The demo card's identity: part of the file's shape (so that a file of
    // another shape is refused), not needed to build a client.
    #[allow(dead_code)]
    card_id: String,
    #[allow(dead_code)]
    user_card_code: String,
    #[allow(dead_code)]
    openid: String,
    // Written by servers since the whole family (the second demo template,
    // the demo image); absent from older files.
    #[allow(dead_code)]
    #[serde(default)]
    signup_card_id: Option<String>,
    #[allow(dead_code)]
    #[serde(default)]
    media_url: Option<String>,
    // The brand's APIv3 key, for `notify::Receiver`.
    #[allow(dead_code)]
    #[serde(default)]
    api_v3_key: Option<String>,
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

pub(crate) use card_member_protocol::endpoints::encode_component;

impl Client {
    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client for the server that wrote `credentials.json` (the
    /// development setup of `card-member serve`): its base URL, brand and
    /// keys, no backup host.
    pub fn from_credentials_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::builder_from_credentials_file(path)?.build()
    }

    /// [`Client::from_credentials_file`], as a builder to adjust further.
    pub fn builder_from_credentials_file(path: impl AsRef<Path>) -> Result<ClientBuilder, Error> {
        let path = path.as_ref();
        let config = |message: String| Error::build(BuildError::Config(message));
        let text = std::fs::read_to_string(path)
            .map_err(|err| config(format!("cannot read {}: {err}", path.display())))?;
        let file: CredentialsFile = serde_json::from_str(&text)
            .map_err(|err| config(format!("{}: {err}", path.display())))?;
        Ok(Self::builder()
            .base_url(file.base_url)
            .backup_url(None)
            .brand_id(file.brand_id)
            .brand_serial_no(file.brand_serial_no)
            .brand_private_key_file(file.brand_private_key_file)
            .wechatpay_public_key_id(file.wechatpay_public_key_id)
            .wechatpay_public_key_file(file.wechatpay_public_key_file))
    }

    /// User-card calls.
    pub fn user_cards(&self) -> UserCards<'_> {
        UserCards { client: self }
    }

    /// Card-template calls.
    pub fn cards(&self) -> Cards<'_> {
        Cards { client: self }
    }

    /// Member activity and points calls.
    pub fn activity(&self) -> Activity<'_> {
        Activity { client: self }
    }

    /// Image calls.
    pub fn media(&self) -> Media<'_> {
        Media { client: self }
    }

    /// The brand this client calls for.
    pub fn brand_id(&self) -> &str {
        &self.inner.brand_id
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
            .validate()
            .map_err(|violation| Error::build(BuildError::Invalid(violation)))?;
        let target = UPDATE_USER_CARD.target(&[user_card_code]);
        Ok((
            target,
            serde_json::to_vec(&request).expect("request types serialise"),
        ))
    }

    fn sign(&self, method: &str, target: String, body: Vec<u8>, timestamp: i64) -> SignedRequest {
        let authorization = Authorization::sign(
            &self.inner.brand_key,
            &self.inner.brand_id,
            &self.inner.brand_serial_no,
            method,
            &target,
            timestamp,
            &random_nonce(),
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
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let request_id = header(HEADER_REQUEST_ID).map(str::to_owned);
        let body = response.bytes().await.map_err(|err| {
            Error::Transport(TransportError::new(
                true,
                format!("reading the response failed: {err}"),
            ))
        })?;
        if !(200..300).contains(&status) {
            return Err(Error::api_error(api_error(
                status,
                &body,
                request_id,
                header("Retry-After"),
            )));
        }
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

fn transport_error(error: reqwest::Error) -> Error {
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

/// User-card calls: `client.user_cards().update(...)`.
#[derive(Clone, Copy, Debug)]
pub struct UserCards<'a> {
    client: &'a Client,
}

impl<'a> UserCards<'a> {
    /// `PATCH /brand/card-member/user-cards/{user_card_code}`: changes the
    /// fields set in `update` and answers the whole card.
    pub async fn update(
        &self,
        user_card_code: &str,
        update: &UserCardUpdate,
    ) -> Result<UserCard, Error> {
        let (target, body) = self.client.prepare_update(user_card_code, update)?;
        self.client.execute(&UPDATE_USER_CARD, target, body).await
    }

    /// `GET /brand/card-member/user-cards/{user_card_code}?card_id=&openid=`.
    pub async fn get(
        &self,
        user_card_code: &str,
        card_id: &str,
        openid: &str,
    ) -> Result<UserCard, Error> {
        card_member_protocol::validation::validate_user_card_code(user_card_code)
            .map_err(|violation| Error::build(BuildError::Invalid(violation)))?;
        let target = format!(
            "{}?card_id={}&openid={}",
            GET_USER_CARD.target(&[user_card_code]),
            encode_component(card_id),
            encode_component(openid)
        );
        self.client
            .execute(&GET_USER_CARD, target, Vec::new())
            .await
    }

    /// `POST /brand/card-member/user-cards/{user_card_code}/invalidate`:
    /// invalidates the card (final) and answers it; a card already invalid
    /// is answered as it is.
    pub async fn invalidate(
        &self,
        user_card_code: &str,
        card_id: &str,
        openid: &str,
        invalid_reason: Option<&str>,
    ) -> Result<UserCard, Error> {
        let request = InvalidateUserCardRequest {
            user_card_code: user_card_code.to_owned(),
            card_id: card_id.to_owned(),
            openid: openid.to_owned(),
            invalid_reason: invalid_reason.map(str::to_owned),
        };
        request
            .validate()
            .map_err(|violation| Error::build(BuildError::Invalid(violation)))?;
        let body = serde_json::to_vec(&request).expect("request types serialise");
        self.client
            .execute(
                &INVALIDATE_USER_CARD,
                INVALIDATE_USER_CARD.target(&[user_card_code]),
                body,
            )
            .await
    }

    /// `GET /brand/card-member/user-cards?openid=&user_card_state=&offset=&limit=`:
    /// one page of a user's cards under the brand, newest first.
    pub async fn list_page(
        &self,
        openid: &str,
        state: Option<UserCardState>,
        offset: i64,
        limit: i64,
    ) -> Result<Page<UserCard>, Error> {
        let query = ListQuery {
            state: state.map(|state| wire(&state)),
            offset,
            limit,
        };
        let target = format!(
            "{}?openid={}&{}",
            LIST_USER_CARDS.target(&[]),
            encode_component(openid),
            query.to_query("user_card_state")
        );
        self.client
            .execute(&LIST_USER_CARDS, target, Vec::new())
            .await
    }

    /// Every card `openid` holds under the brand (in `state` as read now,
    /// or all), newest first, fetched a page at a time as consumed.
    pub fn list(
        self,
        openid: &'a str,
        state: Option<UserCardState>,
    ) -> impl Stream<Item = Result<UserCard, Error>> + 'a {
        let cards = self;
        crate::pages::paged(
            move |offset, limit| async move { cards.list_page(openid, state, offset, limit).await },
            |card: &UserCard| format!("{}/{}", card.card_id, card.user_card_code),
        )
    }

    /// `POST /brand/card-member/user-cards/{user_card_code}/confirm`: the
    /// outcome of a sign-up (the card turns `EFFECTIVE`, or `INVALID` for
    /// `CREATE_CARD_FAIL`), with the fields set in `update`.
    pub async fn confirm(
        &self,
        user_card_code: &str,
        outcome: UserCardConfirmState,
        update: &UserCardUpdate,
    ) -> Result<UserCard, Error> {
        let request = ConfirmUserCardRequest {
            update: update
                .encrypt(user_card_code, &self.client.inner.wechatpay_key)
                .map_err(Error::build)?,
            user_card_confirm_state: outcome,
        };
        request
            .validate()
            .map_err(|violation| Error::build(BuildError::Invalid(violation)))?;
        let body = serde_json::to_vec(&request).expect("request types serialise");
        self.client
            .execute(
                &CONFIRM_USER_CARD,
                CONFIRM_USER_CARD.target(&[user_card_code]),
                body,
            )
            .await
    }

    /// `POST /brand/card-member/pre-auth-tokens`: a token, valid one hour,
    /// that opens the membership component for `openid` and the template.
    pub async fn pre_auth_token(&self, card_id: &str, openid: &str) -> Result<PreAuthToken, Error> {
        let body = serde_json::to_vec(&PreAuthTokenRequest {
            card_id: card_id.to_owned(),
            openid: openid.to_owned(),
        })
        .expect("request types serialise");
        self.client
            .execute(
                &CREATE_PRE_AUTH_TOKEN,
                CREATE_PRE_AUTH_TOKEN.target(&[]),
                body,
            )
            .await
    }

    /// `POST /brand/card-member/user-cards/import-by-openid`. Not sent again
    /// after a connection lost before any answer: it may have been applied.
    pub async fn import(&self, import: &UserCardImport) -> Result<UserCard, Error> {
        let request = import
            .encrypt(&self.client.inner.wechatpay_key)
            .map_err(Error::build)?;
        request
            .validate()
            .map_err(|violation| Error::build(BuildError::Invalid(violation)))?;
        let body = serde_json::to_vec(&request).expect("request types serialise");
        self.client
            .execute(&IMPORT_USER_CARD, IMPORT_USER_CARD.target(&[]), body)
            .await
    }
}

/// Card-template calls: `client.cards().create(...)`.
#[derive(Clone, Copy, Debug)]
pub struct Cards<'a> {
    client: &'a Client,
}

impl<'a> Cards<'a> {
    /// `POST /brand/card-member/cards`.
    pub async fn create(&self, request: &CreateCardRequest) -> Result<Card, Error> {
        request
            .validate()
            .map_err(|violation| Error::build(BuildError::Invalid(violation)))?;
        let body = serde_json::to_vec(request).expect("request types serialise");
        self.client
            .execute(&CREATE_CARD, CREATE_CARD.target(&[]), body)
            .await
    }

    /// `GET /brand/card-member/cards/{card_id}`.
    pub async fn get(&self, card_id: &str) -> Result<Card, Error> {
        self.client
            .execute(&GET_CARD, GET_CARD.target(&[card_id]), Vec::new())
            .await
    }

    /// `GET /brand/card-member/cards?state=&offset=&limit=`: one page of
    /// the brand's templates, newest first (`limit` 1 to 20).
    pub async fn list_page(
        &self,
        state: Option<CardState>,
        offset: i64,
        limit: i64,
    ) -> Result<Page<Card>, Error> {
        let query = ListQuery {
            state: state.map(|state| wire(&state)),
            offset,
            limit,
        };
        let target = format!("{}?{}", LIST_CARDS.target(&[]), query.to_query("state"));
        self.client.execute(&LIST_CARDS, target, Vec::new()).await
    }

    /// Every template of the brand (in `state`, or all), newest first, as
    /// a stream that fetches a page when the items before it are consumed.
    /// Templates created while it runs do not make it repeat or skip one
    /// (see [`crate::pages`]).
    pub fn list(self, state: Option<CardState>) -> impl Stream<Item = Result<Card, Error>> + 'a {
        let cards = self;
        crate::pages::paged(
            move |offset, limit| async move { cards.list_page(state, offset, limit).await },
            |card: &Card| card.card_id.clone(),
        )
    }

    /// `PATCH /brand/card-member/cards/{card_id}`: changes the fields set
    /// in `change` and answers the template.
    pub async fn update(&self, card_id: &str, change: &UpdateCardRequest) -> Result<Card, Error> {
        change
            .validate()
            .map_err(|violation| Error::build(BuildError::Invalid(violation)))?;
        let body = serde_json::to_vec(change).expect("request types serialise");
        self.client
            .execute(&UPDATE_CARD, UPDATE_CARD.target(&[card_id]), body)
            .await
    }

    /// `POST /brand/card-member/cards/{card_id}/invalidate`: invalidates
    /// the template (final: no new tokens or imports) and answers it.
    pub async fn invalidate(&self, card_id: &str) -> Result<Card, Error> {
        self.client
            .execute(
                &INVALIDATE_CARD,
                INVALIDATE_CARD.target(&[card_id]),
                Vec::new(),
            )
            .await
    }
}

/// A stored enum's wire name (`CARD_EFFECTIVE`, `EXPIRED`).
fn wire<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
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

/// Member activity and points calls: `client.activity().feed(...)`.
#[derive(Clone, Copy, Debug)]
pub struct Activity<'a> {
    client: &'a Client,
}

impl Activity<'_> {
    /// `POST /brand/card-member/user-feeds`: a member activity entry. The
    /// same `out_request_no` with the same body answers the first result.
    pub async fn feed(&self, request: &UserFeedRequest) -> Result<UserFeed, Error> {
        request
            .validate()
            .map_err(|violation| Error::build(BuildError::Invalid(violation)))?;
        let body = serde_json::to_vec(request).expect("request types serialise");
        self.client
            .execute(&CREATE_USER_FEED, CREATE_USER_FEED.target(&[]), body)
            .await
    }

    /// `POST /brand/card-member/user-points/sync`: a member's points
    /// balance (10 requests/s). The same `out_request_no` with the same body
    /// answers the first result.
    pub async fn sync_points(&self, request: &PointsSyncRequest) -> Result<PointsSync, Error> {
        request
            .validate()
            .map_err(|violation| Error::build(BuildError::Invalid(violation)))?;
        let body = serde_json::to_vec(request).expect("request types serialise");
        self.client
            .execute(&SYNC_USER_POINTS, SYNC_USER_POINTS.target(&[]), body)
            .await
    }

    /// `POST /brand/card-member/user-points/exchange-coupon/confirm`: allow
    /// or reject a member's points-for-coupon request (final; the same
    /// decision again answers the same result).
    pub async fn confirm_point_exchange(
        &self,
        request: &ExchangeCouponConfirmRequest,
    ) -> Result<ExchangeCouponResult, Error> {
        let body = serde_json::to_vec(request).expect("request types serialise");
        self.client
            .execute(
                &CONFIRM_POINT_EXCHANGE,
                CONFIRM_POINT_EXCHANGE.target(&[]),
                body,
            )
            .await
    }
}

/// Image calls: `client.media().upload_image(...)`.
#[derive(Clone, Copy, Debug)]
pub struct Media<'a> {
    client: &'a Client,
}

impl Media<'_> {
    /// `POST /brand/card-member/media/image-upload`: uploads a JPG, PNG or
    /// BMP image of at most 2 MiB and answers its permanent URL (usable as
    /// `card_picture_url`). Checked before sending: the size and the type
    /// (by content). The request is signed over its `meta` part, which
    /// carries the file's SHA-256.
    pub async fn upload_image(&self, filename: &str, bytes: Vec<u8>) -> Result<ImageUpload, Error> {
        let invalid = |message: String| Error::build(BuildError::Config(message));
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(invalid(format!(
                "{filename}: {} bytes; images are at most 2 MiB",
                bytes.len()
            )));
        }
        if ImageType::sniff(&bytes).is_none() {
            return Err(invalid(format!(
                "{filename}: not a JPG, PNG or BMP image (read from its content)"
            )));
        }
        let meta =
            serde_json::to_vec(&ImageMeta::new(filename, &bytes)).expect("request types serialise");
        let upload = Upload {
            filename: filename.to_owned(),
            bytes,
        };
        self.client
            .execute_with(&UPLOAD_IMAGE, UPLOAD_IMAGE.target(&[]), meta, Some(&upload))
            .await
    }

    /// [`Media::upload_image`] of a file (its name is sent as `filename`).
    pub async fn upload_image_file(&self, path: impl AsRef<Path>) -> Result<ImageUpload, Error> {
        let path = path.as_ref();
        let bytes = tokio::fs::read(path).await.map_err(|err| {
            Error::build(BuildError::Config(format!(
                "cannot read {}: {err}",
                path.display()
            )))
        })?;
        let filename = path.file_name().map_or_else(
            || "image".to_owned(),
            |name| name.to_string_lossy().into_owned(),
        );
        self.upload_image(&filename, bytes).await
    }
}
