//! `card-member listen`: a ready receiver of notifications. It verifies and
//! decrypts each one with the SDK's [`Receiver`], prints it as one JSON
//! line on stdout (a repeat of an `id` already printed is answered and
//! noted on stderr, not printed again), and answers 204 at once. With
//! `--auto-confirm` it then answers as a brand would: confirms a sign-up
//! (`CREATE_CARD_SUCCESS`), allows a points exchange, and syncs a balance
//! when asked, each through the API and printed as a line too.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use card_member_client::notify::{Event, Notification, NotifyError, Receiver};
use card_member_client::{
    Client, ExchangeCouponConfirmRequest, ExchangeDecision, PointsSyncRequest,
    UserCardConfirmState, UserCardUpdate,
};
use clap::Args;
use serde_json::json;

use crate::CliError;
use crate::connect::ConnectArgs;

/// Where `listen` listens by default: where the development templates'
/// `notify_url` points.
pub(crate) const DEFAULT_PORT: u16 = 9000;

#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// The port on 127.0.0.1 (the development templates notify
    /// http://127.0.0.1:9000/notify).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Answer as the brand: confirm sign-ups, allow points exchanges, sync
    /// a balance of --balance when asked.
    #[arg(long)]
    auto_confirm: bool,
    /// The balance --auto-confirm syncs.
    #[arg(long, default_value_t = 100)]
    balance: i64,
    #[command(flatten)]
    connect: ConnectArgs,
}

struct Listening {
    receiver: Receiver,
    client: Option<Client>,
    balance: i64,
    seen: Mutex<HashSet<String>>,
}

/// Receives until interrupted.
pub(crate) async fn run(args: ListenArgs) -> Result<(), CliError> {
    let receiver = Receiver::from_credentials_file(&args.connect.credentials)
        .map_err(|err| CliError::from(err.to_string()))?;
    let client = if args.auto_confirm {
        Some(args.connect.client(false)?)
    } else {
        None
    };
    let state = Arc::new(Listening {
        receiver,
        client,
        balance: args.balance,
        seen: Mutex::default(),
    });
    let app = axum::Router::new()
        .route("/notify", post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|err| {
            CliError::from(format!("cannot listen on 127.0.0.1:{}: {err}", args.port))
        })?;
    eprintln!(
        "listening on http://127.0.0.1:{}/notify{}",
        args.port,
        if args.auto_confirm {
            " (answering as the brand)"
        } else {
            ""
        }
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|err| CliError::from(err.to_string()))
}

async fn receive(
    State(state): State<Arc<Listening>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let notification = match state
        .receiver
        .receive(|name| headers.get(name)?.to_str().ok(), &body)
    {
        Ok(notification) => notification,
        Err(error) => {
            eprintln!("refused a notification: {error}");
            let status = match error {
                NotifyError::Signature(_) => StatusCode::UNAUTHORIZED,
                _ => StatusCode::BAD_REQUEST,
            };
            return (status, error.to_string());
        }
    };
    let first = state
        .seen
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(notification.id.clone());
    if !first {
        eprintln!("{} again (already handled)", notification.id);
        return (StatusCode::NO_CONTENT, String::new());
    }
    print_line(&json!({
        "id": notification.id,
        "create_time": notification.create_time,
        "event_type": notification.event.event_type(),
        "summary": notification.summary,
        "resource": event_json(&notification.event),
    }));
    if let Some(client) = state.client.clone() {
        let balance = state.balance;
        tokio::spawn(async move { answer(&client, &notification, balance).await });
    }
    (StatusCode::NO_CONTENT, String::new())
}

fn event_json(event: &Event) -> serde_json::Value {
    match event {
        Event::UserCardCreate(card) | Event::UserCardDelete(card) => json!(card),
        Event::PointExchangeCoupon(exchange) => json!(exchange),
        Event::SyncUserPoint(sync) => json!(sync),
        Event::Other { content, .. } => content.clone(),
    }
}

/// Prints a notification's line. Once the reader of standard output has
/// gone (`listen | head -3`), the listener has nobody to report to: it
/// ends, quietly, with the closed pipe's exit code.
fn print_line(value: &serde_json::Value) {
    if let Err(error) = crate::emit(value) {
        if !error.is_closed_pipe() {
            eprintln!("card-member: error: {error}");
        }
        std::process::exit(i32::from(error.exit_code()));
    }
}

/// What a brand answers, through the API.
async fn answer(client: &Client, notification: &Notification, balance: i64) {
    let answered = match &notification.event {
        Event::UserCardCreate(card) => client
            .user_cards()
            .confirm(
                &card.user_card_code,
                UserCardConfirmState::CreateCardSuccess,
                &UserCardUpdate::new(card.card_id.clone(), card.openid.clone()),
            )
            .await
            .map(|card| json!({"confirmed": card.user_card_code, "user_card_state": card.user_card_state})),
        Event::PointExchangeCoupon(exchange) => client
            .activity()
            .confirm_point_exchange(&ExchangeCouponConfirmRequest {
                record_id: exchange.record_id.clone(),
                exchange_coupon_template_id: exchange.exchange_coupon_template_id.clone(),
                card_id: exchange.card_id.clone(),
                openid: exchange.openid.clone(),
                user_card_code: exchange.user_card_code.clone(),
                result: ExchangeDecision::PointExchangeCouponAllow,
                reject_reason: None,
            })
            .await
            .map(|result| json!({"exchanged": result.record_id, "state": result.state})),
        Event::SyncUserPoint(sync) => client
            .activity()
            .sync_points(&PointsSyncRequest {
                out_request_no: format!("sync-{}", notification.id),
                card_id: sync.card_id.clone(),
                openid: sync.openid.clone(),
                user_card_code: sync.user_card_code.clone(),
                point_balance: balance,
            })
            .await
            .map(|synced| json!({"synced": synced.user_card_code, "point_balance": synced.point_balance})),
        Event::UserCardDelete(_) | Event::Other { .. } => return,
    };
    match answered {
        Ok(line) => print_line(&line),
        Err(error) => eprintln!("answering {} failed: {error}", notification.id),
    }
}
