//! Cross-cutting middleware: the `Request-ID`, the request log line and the
//! request timeout (outermost, on every response), and response signing
//! (on API routes, for 2xx answers).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCodeOf, ErrorNumber};
use crate::http::auth::BrandOfRequest;
use crate::http::faults::Injected;
use crate::state::AppState;
use crate::state::explanations::Explanation;

/// The request's ID, without the error-number suffix.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub(crate) String);

/// `Request-ID` (PROTOCOL.md §3), lowercase as HTTP/2 and `http` want it.
const REQUEST_ID: &str = "request-id";

fn new_request_id() -> String {
    crate::crypto::random_bytes::<21>()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect()
}

/// Gives every request an ID, bounds its time, answers `Request-ID:
/// <id>-<error number>` and logs one line for it: method, route template,
/// status, error number, latency, brand. Never the path's values, the
/// query, headers or bodies, which may carry personal data.
pub(crate) async fn request_id_and_log(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let _in_flight = state.metrics.request_started();
    let id = new_request_id();
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |path| path.as_str().to_owned());

    let mut response = match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timed_out().into_response(),
    };

    let status = response.status();
    let number = match response.extensions().get::<ErrorNumber>() {
        Some(ErrorNumber(number)) => *number,
        None if status.is_success() => 0,
        None => u32::from(status.as_u16()),
    };
    let code = response
        .extensions()
        .get::<ErrorCodeOf>()
        .map_or("", |code| code.0.as_str());
    let injected = response.extensions().get::<Injected>().cloned();
    let counted_code = injected
        .as_ref()
        .map(|injected| injected.metrics_code(code));
    state.metrics.request(
        method.as_str(),
        &route,
        status.as_u16(),
        counted_code.as_deref().unwrap_or(code),
        started.elapsed(),
    );
    let injected = injected.map(|injected| injected.kind.name());
    let brand = response
        .extensions()
        .get::<BrandOfRequest>()
        .map(|brand| brand.0.clone());
    if let Ok(value) = HeaderValue::from_str(&format!("{id}-{number}")) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), value);
    }
    if let Some(explanation) = response.extensions_mut().remove::<Explanation>() {
        // The step and the mistake's name only: the diagnosis may quote the
        // request's target, whose values this log never holds.
        tracing::debug!(
            target: "card_member::explain",
            request_id = %id,
            brand_id = %explanation.brand_id,
            step = explanation.step.as_str(),
            mistake = explanation.mistake.unwrap_or("none found"),
            serial_no = explanation.serial_no.as_deref().unwrap_or("-"),
            "refusal explained: card-member explain {id}"
        );
        state.explanations.keep(&id, explanation);
    }
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if route.starts_with(card_member_protocol::API_PREFIX) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        state.recent.record(crate::state::recent::RequestEntry {
            at_ms,
            brand_id: brand.clone(),
            method: method.to_string(),
            route: route.clone(),
            status: status.as_u16(),
            code,
            latency_ms,
            request_id: id.clone(),
            injected,
        });
    }
    tracing::info!(
        target: "card_member::request",
        %method,
        route,
        status = status.as_u16(),
        error_number = number,
        code,
        latency_ms = format!("{latency_ms:.2}"),
        request_id = %id,
        brand_id = brand.as_deref().unwrap_or("-"),
        injected = injected.unwrap_or("-"),
        "request"
    );
    response
}

/// Signs every 2xx response body with the WeChat Pay private key
/// (PROTOCOL.md §3): one private-key operation per response.
pub(crate) async fn sign_response(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(err) => return ApiError::internal(&err).into_response(),
    };
    let signature = state.crypto.sign_response(state.clock.unix_now(), &body);
    for (name, value) in signature.headers() {
        let name =
            HeaderName::from_bytes(name.as_bytes()).expect("the protocol's header names are valid");
        if let Ok(value) = HeaderValue::from_str(value) {
            parts.headers.insert(name, value);
        }
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Response::from_parts(parts, Body::from(body))
}
