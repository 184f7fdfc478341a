//! What answers loopback clients only, unauthenticated, behind a switch:
//! the simulation (`/simulate/…`, the faults, the receiver's battery) and
//! the explanations of refusals (`/explanations/…`). JSON refusals: 404
//! where the switch is off, 403 to a client that is not local.
//!
//! A request a proxy forwarded is not local, whatever address it came
//! from: behind a reverse proxy on the same machine every request arrives
//! from loopback, and the simulation (which signs up members, injects
//! failures into any brand's requests and explains refusals) would answer
//! whoever reaches the proxy. Proxies say so in `Forwarded` (RFC 7239),
//! `X-Forwarded-For` or `X-Real-IP`; a request carrying any of them is
//! refused.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The headers by which a proxy says it forwarded a request for another
/// client.
const FORWARDING: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// A request's client: its address as the accept loop saw it, and whether
/// the request says a proxy forwarded it. Handlers take it as an
/// extractor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Client {
    address: Option<SocketAddr>,
    forwarded: bool,
}

/// Refuses where `on` is false (naming the setting) or the client is not
/// local (not on loopback, or forwarded by a proxy).
pub(crate) fn local_only(
    on: bool,
    what: &str,
    setting: &str,
    client: Client,
) -> Result<(), Refusal> {
    if !on {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} is off (setting {setting} = true)"),
        ));
    }
    if client.forwarded {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "NO_AUTH",
            format!(
                "{what} answers loopback clients only, and this request was forwarded by a proxy \
                 (it carries Forwarded, X-Forwarded-For or X-Real-IP)"
            ),
        ));
    }
    if !client
        .address
        .is_some_and(|address| address.ip().is_loopback())
    {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "NO_AUTH",
            format!("{what} answers loopback clients only"),
        ));
    }
    Ok(())
}

/// A refusal: its status, code and message.
#[derive(Debug)]
pub(crate) struct Refusal(
    pub(crate) StatusCode,
    pub(crate) &'static str,
    pub(crate) String,
);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"code": self.1, "message": self.2}))).into_response()
    }
}

pub(crate) fn refusal(status: StatusCode, code: &'static str, message: &str) -> Refusal {
    Refusal(status, code, message.to_owned())
}

/// A request's client, taken from its parts: the address the accept loop
/// puts on every request, and its headers.
impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| *address);
        let forwarded = FORWARDING
            .iter()
            .any(|header| parts.headers.contains_key(*header));
        Ok(Client { address, forwarded })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed_for(on: bool, address: Option<SocketAddr>, forwarded: bool) -> Result<(), Refusal> {
        local_only(
            on,
            "the simulation",
            "simulation",
            Client { address, forwarded },
        )
    }

    #[test]
    fn only_loopback_clients_are_answered_and_only_when_the_switch_is_on() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert!(allowed_for(true, Some(local), false).is_ok());
        assert!(allowed_for(true, Some(local6), false).is_ok());
        assert_eq!(
            allowed_for(true, Some(remote), false).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            allowed_for(true, None, false).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            allowed_for(false, Some(local), false).unwrap_err().0,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_request_a_proxy_forwarded_from_loopback_is_not_local() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let refused = allowed_for(true, Some(local), true).unwrap_err();
        assert_eq!(refused.0, StatusCode::FORBIDDEN);
        assert!(refused.2.contains("forwarded by a proxy"), "{}", refused.2);
    }
}
