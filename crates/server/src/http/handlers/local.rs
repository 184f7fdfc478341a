//! What answers loopback clients only, unauthenticated, behind a switch:
//! the simulation (`/simulate/…`) and the explanations of refusals
//! (`/explanations/…`). JSON refusals: 404 where the switch is off, 403 to
//! a client that is not local.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

/// Refuses where `on` is false (naming the setting) or the client is not
/// local.
pub(crate) fn local_only(
    on: bool,
    what: &str,
    setting: &str,
    peer: Option<SocketAddr>,
) -> Result<(), Refusal> {
    if !on {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} is off (setting {setting} = true)"),
        ));
    }
    if !peer.is_some_and(|peer| peer.ip().is_loopback()) {
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

/// The client's address, which the accept loop puts on every request.
pub(crate) type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

pub(crate) fn peer(info: Peer) -> Option<SocketAddr> {
    info.map(|Extension(ConnectInfo(address))| address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed_for(on: bool, peer: Option<SocketAddr>) -> Result<(), Refusal> {
        local_only(on, "the simulation", "simulation", peer)
    }

    #[test]
    fn only_loopback_clients_are_answered_and_only_when_the_switch_is_on() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert!(allowed_for(true, Some(local)).is_ok());
        assert!(allowed_for(true, Some(local6)).is_ok());
        assert_eq!(
            allowed_for(true, Some(remote)).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            allowed_for(true, None).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            allowed_for(false, Some(local)).unwrap_err().0,
            StatusCode::NOT_FOUND
        );
    }
}
