//! Request authentication (PROTOCOL.md §2), in the spec's order, each
//! failure answered before anything touches a card:
//!
//! 1. `Authorization` missing or malformed → 401 `SIGN_ERROR`;
//! 2. timestamp 5 minutes or more away → 401 `SIGN_ERROR`;
//! 3. unknown brand or certificate serial → 401 `SIGN_ERROR`;
//! 4. signature does not verify over the raw target and body → 401;
//! 5. `Wechatpay-Serial` not the brand's WeChat Pay public key ID → 400
//!    `INVALID_REQUEST`;
//! 6. nonce seen before (recorded only now, after the signature verified)
//!    → 401 `SIGN_ERROR`. Whatever the answer, it leaves only once the
//!    nonce is durable, so a restart or a crash cannot make a captured
//!    request new again;
//! 7. a suspended brand → 403 `NO_AUTH`;
//! 8. the brand's rate limit → 429 `RATELIMIT_EXCEEDED` (only verified
//!    requests count, so a forger cannot spend a brand's quota).
//!
//! Then the request's own header rules: `Accept` must allow JSON and a body
//! must be `Content-Type: application/json` (400 `INVALID_REQUEST`). Only
//! after all this do handlers validate the body and decrypt.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use card_member_protocol::TIMESTAMP_WINDOW_SECS;
use card_member_protocol::auth::Authorization;
use card_member_protocol::endpoints::{self, Endpoint};
use card_member_protocol::response::HEADER_SERIAL;

use card_member_protocol::media::MAX_IMAGE_BYTES;

use super::explain;
use crate::error::{ApiError, UndecryptedField};
use crate::records::{BrandCertificate, BrandRecord};
use crate::state::AppState;
use crate::state::explanations::Explanation;
use crate::storage::{Nonce, NonceAdmission, RateSlot, Storage};

/// What authentication established about a request, for the handlers.
#[derive(Clone, Debug)]
pub(crate) struct Authenticated {
    pub(crate) brand_id: String,
    /// The certificate that signed: responses encrypt for its key.
    pub(crate) certificate: BrandCertificate,
    /// The raw body the signature covered (an upload's `meta` part).
    pub(crate) body: Bytes,
    /// An upload's `file` part.
    pub(crate) upload: Option<Bytes>,
}

/// The brand of a request, on its response, for the request log.
#[derive(Clone, Debug)]
pub(crate) struct BrandOfRequest(pub(crate) String);

pub(crate) async fn authenticate(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let mut unsaved = None;
    let mut explained = None;
    // Kept only while explanations are on (the development setup): a
    // ciphertext refused by the handler is explained with them.
    let requested = state
        .explanations
        .enabled()
        .then(|| (request.method().to_string(), target_of(request.uri())));
    let (mut response, brand_id) = match verify(&state, request, &mut unsaved, &mut explained).await
    {
        Ok(request) => {
            let brand_id = request
                .extensions()
                .get::<Authenticated>()
                .map(|auth| auth.brand_id.clone());
            (next.run(request).await, brand_id)
        }
        Err((error, brand_id)) => (error.into_response(), brand_id),
    };
    if let Some(nonce) = unsaved
        && let Err(error) = nonce.save().await
    {
        response = error.into_response();
    }
    if let (Some(field), Some(brand_id), Some((method, target))) = (
        response.extensions_mut().remove::<UndecryptedField>(),
        brand_id.as_deref(),
        requested,
    ) && state.explanations.admit(brand_id)
    {
        explained = Some(explain::ciphertext(
            &state.crypto,
            brand_id,
            &method,
            &target,
            &field,
        ));
    }
    if let Some(explanation) = explained {
        response.extensions_mut().insert(explanation);
    }
    if let Some(brand_id) = brand_id {
        response.extensions_mut().insert(BrandOfRequest(brand_id));
    }
    response
}

fn target_of(uri: &axum::http::Uri) -> String {
    uri.path_and_query()
        .map_or("/", |target| target.as_str())
        .to_owned()
}

/// A nonce admitted but perhaps not yet durable. It is saved before the
/// answer leaves (a change's transaction may have saved it already); if the
/// request is abandoned first (its timeout, a client gone), it is saved
/// in the background when dropped.
struct UnsavedNonce {
    storage: Storage,
    brand_id: String,
    nonce: String,
    saved: bool,
}

impl UnsavedNonce {
    async fn save(mut self) -> Result<(), ApiError> {
        self.saved = true;
        self.storage
            .record_nonce(&self.brand_id, &self.nonce)
            .await
            .map_err(ApiError::from)
    }
}

impl Drop for UnsavedNonce {
    fn drop(&mut self) {
        if self.saved {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let storage = self.storage.clone();
        let (brand_id, nonce) = (
            std::mem::take(&mut self.brand_id),
            std::mem::take(&mut self.nonce),
        );
        runtime.spawn(async move {
            if let Err(err) = storage.record_nonce(&brand_id, &nonce).await {
                tracing::warn!(%err, brand_id, "could not save the nonce of an abandoned request");
            }
        });
    }
}

type Refusal = (ApiError, Option<String>);

/// Whether a refusal of a registered brand's request is explained: on, and
/// within the brand's budget.
fn explaining(state: &AppState, brand: &BrandRecord) -> bool {
    state.explanations.admit(&brand.brand_id)
}

async fn verify(
    state: &AppState,
    request: Request,
    unsaved: &mut Option<UnsavedNonce>,
    explained: &mut Option<Explanation>,
) -> Result<Request, Refusal> {
    let (mut parts, body) = request.into_parts();
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| (ApiError::malformed_authorization("is missing"), None))?
        .to_str()
        .map_err(|_| {
            (
                ApiError::malformed_authorization("is not visible ASCII"),
                None,
            )
        })
        .and_then(|value| {
            Authorization::parse(value)
                .map_err(|err| (ApiError::malformed_authorization(&err.to_string()), None))
        })?;
    let brand_id = Some(authorization.brand_id.clone());
    let refuse = |error: ApiError| (error, brand_id.clone());
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    let arrived = explain::Arrived {
        method: parts.method.as_str(),
        target,
        host,
        body: b"",
        authorization: &authorization,
    };

    let brand_of_request = || {
        state.brands.brand(
            &state.storage,
            &authorization.brand_id,
            &authorization.serial_no,
        )
    };
    let now = state.clock.unix_now();
    if now.abs_diff(authorization.timestamp) >= TIMESTAMP_WINDOW_SECS.unsigned_abs() {
        // Looked up only to explain: a stale request otherwise costs no
        // brand lookup.
        if state.explanations.enabled()
            && let Ok(Some(brand)) = brand_of_request().await
            && explaining(state, &brand)
        {
            *explained = Some(explain::timestamp(arrived, now));
        }
        return Err(refuse(ApiError::stale_timestamp()));
    }

    let brand = brand_of_request()
        .await
        .map_err(refuse)?
        .ok_or_else(|| refuse(ApiError::unknown_brand_or_serial()))?;

    // The router attached each API route's endpoint when it built it.
    let endpoint: &'static Endpoint = parts
        .extensions
        .get::<&'static Endpoint>()
        .copied()
        .ok_or_else(|| refuse(ApiError::internal(&"an API route without its endpoint")))?;
    let certificate = brand
        .certificates
        .iter()
        .find(|certificate| certificate.serial_no == authorization.serial_no)
        .cloned();
    let Some(certificate) = certificate else {
        if explaining(state, &brand)
            && let Ok((body, _)) = read_signed(state, endpoint, &parts.headers, body).await
        {
            let arrived = explain::Arrived {
                body: &body,
                ..arrived
            };
            *explained = Some(explain::certificate(arrived, &brand));
        }
        return Err(refuse(ApiError::unknown_brand_or_serial()));
    };
    let (body, mut upload) = read_signed(state, endpoint, &parts.headers, body)
        .await
        .map_err(refuse)?;
    let arrived = explain::Arrived {
        body: &body,
        ..arrived
    };
    if !authorization.verify(
        &certificate.public_key,
        parts.method.as_str(),
        target,
        &body,
    ) {
        if explaining(state, &brand) {
            *explained = Some(explain::signature(arrived, &brand, &certificate));
        }
        return Err(refuse(ApiError::bad_signature()));
    }

    let serial = parts
        .headers
        .get(HEADER_SERIAL)
        .and_then(|value| value.to_str().ok());
    if serial != Some(brand.wechatpay_public_key_id.as_str()) {
        if explaining(state, &brand) {
            *explained = Some(explain::wechatpay_serial(
                arrived,
                &brand,
                &certificate,
                serial,
            ));
        }
        return Err(refuse(ApiError::wrong_wechatpay_serial()));
    }

    // The nonce, then (for a brand not suspended) the rate limit: one
    // call, one statement on PostgreSQL.
    let bucket = format!("{} {}", endpoint.method, endpoint.path);
    let admitted = state
        .storage
        .admit(
            Nonce {
                brand_id: &authorization.brand_id,
                nonce: &authorization.nonce_str,
                signed_at: authorization.timestamp,
            },
            now,
            (!brand.suspended).then_some(RateSlot {
                endpoint: &bucket,
                per_second: endpoint.per_second,
            }),
        )
        .await
        .map_err(|err| refuse(ApiError::from(err)))?;
    match admitted.nonce {
        NonceAdmission::Replayed => {
            if explaining(state, &brand) {
                *explained = Some(explain::nonce(arrived, &certificate));
            }
            return Err(refuse(ApiError::replayed_nonce()));
        }
        NonceAdmission::Recorded => {}
        NonceAdmission::Unsaved => {
            *unsaved = Some(UnsavedNonce {
                storage: state.storage.clone(),
                brand_id: authorization.brand_id.clone(),
                nonce: authorization.nonce_str.clone(),
                saved: false,
            });
        }
    }

    if brand.suspended {
        return Err(refuse(ApiError::brand_suspended()));
    }

    if let Err(wait) = admitted.slot {
        state.metrics.rate_limited(&authorization.brand_id);
        return Err(refuse(ApiError::rate_limited(
            wait.as_secs_f64().ceil() as u64
        )));
    }

    let file = match upload.take() {
        Some(rest) => Some(read_file(rest).await.map_err(refuse)?),
        None => {
            check_content_headers(&parts.headers, &parts.method, &body).map_err(refuse)?;
            None
        }
    };

    parts.extensions.insert(Authenticated {
        brand_id: authorization.brand_id,
        certificate,
        body: body.clone(),
        upload: file,
    });
    Ok(Request::from_parts(parts, Body::from(body)))
}

/// What the signature covers: the body, or an upload's `meta` part (only
/// that is read before the signature, the nonce and the rate limit are
/// checked; the image after them).
async fn read_signed(
    state: &AppState,
    endpoint: &Endpoint,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Option<RestOfUpload>), ApiError> {
    if endpoints::is_multipart(endpoint) {
        let (meta, rest) = read_meta(headers, body).await?;
        Ok((meta, Some(rest)))
    } else {
        let body = axum::body::to_bytes(body, state.body_limit)
            .await
            .map_err(|_| ApiError::body_too_large(state.body_limit))?;
        Ok((body, None))
    }
}

fn check_content_headers(
    headers: &HeaderMap,
    method: &Method,
    body: &Bytes,
) -> Result<(), ApiError> {
    let accepts_json = headers.get_all(header::ACCEPT).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value.split(',').any(|range| {
                let range = range
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                matches!(range.as_str(), "application/json" | "application/*" | "*/*")
            })
        })
    });
    if !accepts_json {
        return Err(ApiError::unacceptable_accept());
    }
    // A POST without a body (a template's invalidation takes none) needs
    // no Content-Type.
    let sends_body = !body.is_empty() || matches!(*method, Method::PATCH | Method::PUT);
    if sends_body {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::wrong_content_type());
        }
    }
    Ok(())
}

/// The most bytes the `meta` part may have.
const MAX_META_BYTES: u64 = 16 * 1024;

/// An upload whose `meta` part has been read.
type RestOfUpload = multer::Multipart<'static>;

fn malformed(why: impl std::fmt::Display) -> ApiError {
    ApiError::body_param(
        "/",
        "is not valid multipart",
        format!("the upload is not valid multipart/form-data: {why}"),
    )
}

/// Reads a `multipart/form-data` upload up to the end of its `meta` part,
/// which must come first (**Decision**: as the provider's samples send
/// it, so that nothing more than `meta` is read from a caller whose
/// signature has not been checked). Parsed with `multer`.
async fn read_meta(headers: &HeaderMap, body: Body) -> Result<(Bytes, RestOfUpload), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let boundary =
        multer::parse_boundary(content_type).map_err(|_| ApiError::wrong_upload_content_type())?;
    let limits = multer::SizeLimit::new()
        .whole_stream((MAX_IMAGE_BYTES as u64) + MAX_META_BYTES + 4096)
        .for_field("meta", MAX_META_BYTES)
        .for_field("file", MAX_IMAGE_BYTES as u64);
    let mut multipart = multer::Multipart::with_constraints(
        body.into_data_stream(),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let field = multipart
        .next_field()
        .await
        .map_err(upload_error)?
        .ok_or_else(|| {
            ApiError::body_param("/meta", "is required", "the upload has no meta part")
        })?;
    if field.name() != Some("meta") {
        return Err(ApiError::body_param(
            "/meta",
            "must come first",
            "the upload's first part must be meta (the JSON the signature covers), then file",
        ));
    }
    let meta = field.bytes().await.map_err(upload_error)?;
    Ok((meta, multipart))
}

/// The `file` part, the only one after `meta`.
async fn read_file(mut rest: RestOfUpload) -> Result<Bytes, ApiError> {
    let field = rest
        .next_field()
        .await
        .map_err(upload_error)?
        .ok_or_else(|| {
            ApiError::body_param("/file", "is required", "the upload has no file part")
        })?;
    if field.name() != Some("file") {
        let name: String = field
            .name()
            .unwrap_or("(unnamed)")
            .chars()
            .take(32)
            .collect();
        return Err(malformed(format!(
            "unexpected part {name}: meta, then file"
        )));
    }
    let file = field.bytes().await.map_err(upload_error)?;
    if rest.next_field().await.map_err(upload_error)?.is_some() {
        return Err(malformed(
            "a part after file: meta, then file, nothing else",
        ));
    }
    Ok(file)
}

fn upload_error(error: multer::Error) -> ApiError {
    match error {
        multer::Error::FieldSizeExceeded { field_name, .. }
            if field_name.as_deref() == Some("meta") =>
        {
            ApiError::body_too_large(MAX_META_BYTES as usize)
        }
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            ApiError::image_too_large(MAX_IMAGE_BYTES)
        }
        other => malformed(other),
    }
}
