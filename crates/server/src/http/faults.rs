//! Injecting the failures `state/faults.rs` describes into API answers.
//! Runs after authentication (the brand is known, the nonce recorded) and
//! outside response signing, so that an error comes before anything is
//! applied, a lost response (an error answer, or none) after the change is
//! committed, and a broken signature or a cut-off body on a real answer.
//! Every injected answer is marked, so that the request log, the console
//! and `/metrics` never take it for a real failure.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use card_member_protocol::endpoints::Endpoint;
use card_member_protocol::response::HEADER_SIGNATURE;
use futures_util::{StreamExt as _, stream};
use serde_json::json;

use super::auth::Authenticated;
use crate::state::AppState;
use crate::state::faults::{Fault, FaultKind, Turn};

/// On a response whose failure was injected: its kind and, for an
/// injected error answer, its code.
#[derive(Clone, Debug)]
pub(crate) struct Injected {
    pub(crate) kind: FaultKind,
    pub(crate) code: Option<String>,
}

impl Injected {
    /// The code the metrics count the answer under: its own where only a
    /// delay was injected (the answer is real), else `INJECTED_…`.
    pub(crate) fn metrics_code(&self, real: &str) -> String {
        match (&self.kind, &self.code) {
            (FaultKind::Delay, _) => real.to_owned(),
            (_, Some(code)) => format!("INJECTED_{code}"),
            (kind, None) => format!(
                "INJECTED_{}",
                kind.name().to_ascii_uppercase().replace('-', "_")
            ),
        }
    }
}

/// On a response the connection must not deliver: it is closed instead.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropConnection;

pub(crate) async fn inject(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if !state.faults.any() {
        return next.run(request).await;
    }
    let brand = request
        .extensions()
        .get::<Authenticated>()
        .map(|auth| auth.brand_id.clone());
    let endpoint = request.extensions().get::<&'static Endpoint>().copied();
    let (Some(brand), Some(endpoint)) = (brand, endpoint) else {
        return next.run(request).await;
    };
    let first = state.fire_fault(&brand, endpoint.name, Turn::Request);
    let real = match &first {
        Some(fault) => match fault.kind {
            FaultKind::Error => return marked(error_answer(fault), fault),
            FaultKind::Drop => return marked(dropped(), fault),
            FaultKind::BadSignature => {
                let mut response = next.run(request).await;
                break_signature(&mut response);
                return marked(response, fault);
            }
            FaultKind::Truncate => {
                let response = next.run(request).await;
                return marked(truncated(response).await, fault);
            }
            FaultKind::Delay => {
                tokio::time::sleep(fault.delay()).await;
                next.run(request).await
            }
            // Not of this turn: never fired here.
            FaultKind::ErrorAfterCommit
            | FaultKind::DropAfterCommit
            | FaultKind::NotifyTwice
            | FaultKind::NotifyOutOfOrder
            | FaultKind::NotifyDelay => next.run(request).await,
        },
        None => next.run(request).await,
    };
    // A refused request committed nothing: there is no response to lose,
    // and an after-commit fault neither fires nor is spent. A delayed one
    // may still lose its answer (a slow provider that then fails).
    if real.status().is_success()
        && let Some(fault) = state.fire_fault(&brand, endpoint.name, Turn::AfterCommit)
    {
        let lost = if fault.kind == FaultKind::ErrorAfterCommit {
            error_answer(&fault)
        } else {
            dropped()
        };
        return marked(lost, &fault);
    }
    match &first {
        Some(fault) => marked(real, fault),
        None => real,
    }
}

/// `response`, marked as shaped by `fault`: the request log, the console
/// and `/metrics` tell it from a real answer (a delay and a lost answer
/// after it are both counted in `/metrics`, the answer marked with the
/// lost one).
fn marked(mut response: Response, fault: &Fault) -> Response {
    response.extensions_mut().insert(Injected {
        kind: fault.kind,
        code: fault.code.clone(),
    });
    response
}

/// What the connection closes instead of answering.
fn dropped() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

/// The most of an answer `truncate` reads to cut it (the server's own
/// answers are far smaller: a page of 20 templates).
const MAX_TRUNCATED: usize = 16 << 20;

/// How long after the half of its body a truncated answer ends.
const TRUNCATE_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// `response`'s status and headers, its `Content-Length` the whole body's,
/// then the first half of its body and an error, on which hyper closes the
/// connection: the client reads an answer that ends early. An answer with
/// no body (none of the API's) can only be cut before its head: dropped.
async fn truncated(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let whole = match axum::body::to_bytes(body, MAX_TRUNCATED).await {
        Ok(whole) if !whole.is_empty() => whole,
        _ => return dropped(),
    };
    let half = whole.slice(..whole.len() / 2);
    // The error comes a moment after the half, once hyper has written the
    // head and the half out: an error polled at once would abort the
    // connection with them still in its buffer, unsent.
    let cut = stream::once(async move { Ok(half) }).chain(stream::once(async {
        tokio::time::sleep(TRUNCATE_AFTER).await;
        Err(std::io::Error::other("an injected truncate"))
    }));
    let mut response = Response::from_parts(parts, Body::from_stream(cut));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(whole.len()));
    response
}

/// The provider's error answer: the fault's status and code, a message
/// that says it was injected.
fn error_answer(fault: &Fault) -> Response {
    let status = fault
        .status
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = fault.code.as_deref().unwrap_or("SYSTEM_ERROR");
    let body = json!({
        "code": code,
        "message": format!("an injected failure (card-member simulate fault, id {})", fault.id),
    });
    let mut response = (status, Body::from(body.to_string())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
    }
    response
}

/// Flips one bit of the answer's `Wechatpay-Signature`: still base64 of
/// the right length, but no longer a signature of the answer.
fn break_signature(response: &mut Response) {
    let headers = response.headers_mut();
    let Some(signature) = headers
        .get(HEADER_SIGNATURE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| STANDARD.decode(value).ok())
    else {
        return;
    };
    let mut broken = signature;
    if let Some(first) = broken.first_mut() {
        *first ^= 0x01;
    }
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(HEADER_SIGNATURE.as_bytes()),
        HeaderValue::from_str(&STANDARD.encode(broken)),
    ) {
        headers.insert(name, value);
    }
}
