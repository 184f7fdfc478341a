//! The card-member service: the WeChat Pay brand card-member API, served.
//!
//! An axum application with signed-request authentication, validation to
//! the letter of the spec, per-brand rate limits, personal data sealed at
//! rest, signed responses and durable storage (SQLite by default).
//!
//! # Layout
//!
//! Floors, top down; imports only run down (docs/architecture.md draws
//! them):
//!
//! - [`Application`] (`application`): build from [`Settings`], then
//!   `run_until(shutdown)`; [`ServerHandle`] inspects a running server.
//! - `http`: the router (every route and layer in one place), connections
//!   and TLS, layers (`Request-ID`, log, timeout, response signing),
//!   authentication in the spec's order, the handlers (one file per
//!   resource) and the console.
//! - `admin`: [`brands`] and [`outbox`] (what the `card-member brands` and
//!   `notifications` commands do), the first start's keys and development
//!   setup.
//! - `domain`: the card's rules, the member's side, the notifications and
//!   their delivery, images.
//! - `state`: what requests share (storage, keys, metrics, the clock, the
//!   brand directory).
//! - `error`: the API's error type, [`StartError`].
//! - `storage`: each query written once for SQLite and PostgreSQL.
//! - `crypto`, `ops` ([`settings`], metrics), `clock`, `records` (the
//!   aggregates as kept: storage persists them, the domain changes them):
//!   the ground floor.
//!
//! # Example
//!
//! ```no_run
//! use card_member_server::{Application, Settings};
//!
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Application::build(Settings::default()).await?;
//! println!("listening on http://{}", app.local_addr());
//! app.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

mod admin;
mod application;
mod clock;
mod crypto;
mod domain;
mod error;
mod http;
mod ops;
mod records;
mod state;
mod storage;

pub use admin::bootstrap::{
    DEV_BRAND_ID, DEV_CARD_ID, DEV_NOTIFY_URL, DEV_OPENID, DEV_SIGNUP_CARD_ID, DEV_USER_CARD_CODE,
    DevCredentials,
};
pub use admin::faults::fault_kinds;
pub use admin::keys::{Adopted, adopt_wechatpay_key};
pub use admin::{brands, notifications as outbox, seed_data};
pub use application::{Application, ServerHandle, SignedUp};
pub use domain::member::{MemberError, SignUpForm};
pub use error::StartError;
pub use http::openapi;
pub use ops::settings::{self, Database, LogFormat, Settings};
pub use records::{AuditEntry, BrandCertificate, BrandRecord};

/// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
