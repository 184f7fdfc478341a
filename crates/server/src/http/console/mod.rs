//! The console (`/console`): brands, templates, user cards, the last
//! requests and the notifications of a sandbox, and the member's side as
//! forms, in the browser. Served by the same binary (`console = true`),
//! rendered on the server with maud, no JavaScript at all (the charts are
//! SVG drawn here; the live pages refresh themselves with a meta tag).
//!
//! **Access.** An admin token, made at the first start in
//! `DATA_DIR/console.token` (mode 0600) and printed once with the URL.
//! `/console/?token=…` checks it and sets a session cookie (HttpOnly,
//! SameSite=Strict, Path=/console, 12 hours; Secure over HTTPS), then
//! redirects to a URL without the token. The cookie is
//! `<expiry>.<HMAC-SHA256(token, expiry)>`: nothing is kept on the server
//! and a new token voids every session. Every form carries a CSRF token,
//! an HMAC of the session; a POST without the right one is refused. On a
//! non-loopback address without TLS the console is refused altogether
//! unless `console_allow_insecure = true`. Personal data is shown masked.

mod faults;
mod pages;
mod requests;
mod view;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use card_member_protocol::secret::SecretString;
use serde::Deserialize;

use crate::state::AppState;
use crate::state::console_access::SESSION_SECS;

/// The session cookie's name.
const COOKIE: &str = "cm_console";

/// Whether the console is served: over HTTPS, to a loopback address, or
/// where plain HTTP was allowed on purpose.
pub(crate) fn served(tls: bool, listen: std::net::IpAddr, allow_insecure: bool) -> bool {
    tls || listen.is_loopback() || allow_insecure
}

/// Reads the console token from `DATA_DIR/console.token`, making one if
/// there is none; `true` when it was made now (to print it once).
pub(crate) fn load_or_create_token(
    data_dir: &Path,
) -> Result<(SecretString, bool), crate::error::StartError> {
    let path = data_dir.join("console.token");
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|err| {
            crate::error::StartError(format!("cannot read {}: {err}", path.display()))
        })?;
        return Ok((SecretString::new(text.trim().to_owned()), false));
    }
    let token: String = crate::crypto::random_nonce().chars().take(32).collect();
    crate::admin::bootstrap::write_file(&path, token.as_bytes(), true)?;
    Ok((SecretString::new(token), true))
}

/// The session cookie of a request, if any.
fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// A request's session, established by [`guard`].
#[derive(Clone, Debug)]
pub(crate) struct Session(pub(crate) String);

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Every console request: refused where the console is not open; a token
/// in the query is exchanged for a session cookie; otherwise a live
/// session is required.
async fn guard(
    State(state): State<Arc<AppState>>,
    Query(query): Query<TokenQuery>,
    mut request: Request,
    next: Next,
) -> Response {
    let access = &state.console;
    if !access.open {
        return view::refusal(
            StatusCode::FORBIDDEN,
            "The console is not served over plain HTTP on this address: set tls_cert and tls_key, or console_allow_insecure = true.",
        );
    }
    let now = state.clock.unix_now();
    if let Some(token) = query.token {
        if !access.token_matches(&token) {
            return view::refusal(
                StatusCode::UNAUTHORIZED,
                "That admin token is not this console's.",
            );
        }
        let cookie = format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={SESSION_SECS}{}",
            access.session_cookie(now),
            if access.secure { "; Secure" } else { "" }
        );
        let mut response = Redirect::to(request.uri().path()).into_response();
        if let Ok(value) = cookie.parse() {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    match session_of(request.headers()) {
        Some(session) if access.valid_session(&session, now) => {
            request.extensions_mut().insert(Session(session));
            let mut response = next.run(request).await;
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, "no-store".parse().expect("valid"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
                    .parse()
                    .expect("valid"),
            );
            headers.insert(header::X_FRAME_OPTIONS, "DENY".parse().expect("valid"));
            response
        }
        _ => view::refusal(
            StatusCode::UNAUTHORIZED,
            "The console needs its admin token: open the URL the server printed at its first start (…/console/?token=…, the token is in DATA_DIR/console.token).",
        ),
    }
}

/// A POST's CSRF token must be its session's: the refusal if it is not.
pub(crate) fn csrf_refusal(state: &AppState, session: &Session, given: &str) -> Option<Response> {
    let expected = state.console.csrf(&session.0);
    let matches =
        aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), expected.as_bytes())
            .is_ok();
    (!matches).then(|| {
        view::refusal(
            StatusCode::FORBIDDEN,
            "The form's CSRF token is missing or wrong: reload the page and try again.",
        )
    })
}

/// The console's routes.
pub(crate) fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/console/", get(pages::overview))
        .route("/console/brands", get(pages::brands))
        .route(
            "/console/brands/{brand_id}/{action}",
            post(pages::brand_action),
        )
        .route("/console/templates", get(pages::templates))
        .route(
            "/console/templates/{brand_id}/{card_id}",
            get(pages::template),
        )
        .route("/console/cards", get(pages::cards))
        .route(
            "/console/cards/{brand_id}/{card_id}/{code}",
            get(pages::card),
        )
        .route("/console/requests", get(requests::requests))
        .route("/console/requests/{request_id}", get(requests::request))
        .route("/console/notifications", get(pages::notifications))
        .route("/console/notifications/{id}", get(pages::notification))
        .route("/console/notifications/{id}/resend", post(pages::resend))
        .route("/console/simulator", get(pages::simulator))
        .route("/console/faults", get(faults::faults).post(faults::add))
        .route("/console/faults/{id}/clear", post(faults::clear))
        .route("/console/simulator/{action}", post(pages::simulate))
        .route_layer(from_fn_with_state(Arc::clone(state), guard))
        .route(
            "/console",
            get(|request: Request| async move {
                let query = request
                    .uri()
                    .query()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default();
                Redirect::permanent(&format!("/console/{query}"))
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_off_loopback_is_refused_unless_allowed() {
        let loopback = "127.0.0.1".parse().unwrap();
        let public = "0.0.0.0".parse().unwrap();
        assert!(served(false, loopback, false));
        assert!(served(true, public, false));
        assert!(!served(false, public, false));
        assert!(served(false, public, true));
    }
}
