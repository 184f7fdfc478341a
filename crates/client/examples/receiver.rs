//! A notification receiver in a few lines: verifies, decrypts, prints each
//! event, answers 204 (or 401/400 with why).
//!
//! ```sh
//! cargo run -p card-member-client --example receiver -- card-member-data/dev/credentials.json 9000
//! ```

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use card_member_client::notify::{NotifyError, Receiver};

async fn notify(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    match receiver.receive(|name| headers.get(name)?.to_str().ok(), &body) {
        Ok(notification) => {
            println!("{} {:?}", notification.id, notification.event);
            (StatusCode::NO_CONTENT, String::new())
        }
        Err(error @ NotifyError::Signature(_)) => (StatusCode::UNAUTHORIZED, error.to_string()),
        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()),
    }
}

/// The receiver's routes: `POST /notify`.
pub fn app(receiver: Arc<Receiver>) -> axum::Router {
    axum::Router::new()
        .route("/notify", post(notify))
        .with_state(receiver)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let credentials = args
        .next()
        .unwrap_or_else(|| "card-member-data/dev/credentials.json".into());
    let port = args.next().unwrap_or_else(|| "9000".into());
    let receiver = Arc::new(Receiver::from_credentials_file(credentials)?);
    let app = app(receiver);
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
