//! The application, the crate's top floor: it builds the state from the
//! settings (keys, storage, the development setup, the console's token),
//! hands it to the router and runs the connections and the notification
//! worker until shutdown. Nothing but the crate root imports it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use card_member_protocol::secret::SecretString;
use tokio::net::TcpListener;

use crate::admin::{self, bootstrap};
use crate::clock::Clock;
use crate::crypto::Crypto;
use crate::domain::{member, notifications};
use crate::error::StartError;
use crate::http::connections::{self, ConnectionLimits};
use crate::http::router::router;
use crate::http::{console, tls};
use crate::ops::metrics::Metrics;
use crate::ops::settings::Settings;
use crate::records::{AuditEntry, UserCardKey};
use crate::state::{AppState, BrandDirectory, ConsoleAccess, Explanations, Faults, Outbox, Recent};
use crate::storage::{self, NotificationFilter, Opener, Storage};

/// A built server: its listener bound, its storage open, its keys loaded.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    credentials: Option<PathBuf>,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Application {
    /// Loads keys (creating them on a first start), opens storage, applies
    /// migrations, makes the development setup if due, and binds.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            (None, None) => None,
            _ => {
                return Err(StartError(
                    "tls_cert and tls_key go together: set both or neither".to_owned(),
                ));
            }
        };
        let open_files = connections::raise_open_file_limit();
        let (max_connections, max_draining) =
            connections::effective_max_connections(settings.max_connections, open_files);
        let limits = ConnectionLimits {
            max_connections,
            max_draining,
            header_timeout: Duration::from_secs(settings.header_timeout_secs.max(1)),
            max_unfinished_per_address: settings.max_unfinished_per_address.max(1),
            header_timeout_under_pressure: Duration::from_secs(
                settings.header_timeout_under_pressure_secs.max(1),
            ),
            idle_timeout: Duration::from_secs(settings.idle_timeout_secs.max(1)),
        };
        tracing::info!(
            open_file_limit = open_files.map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
            max_connections = limits.max_connections,
            header_timeout_secs = limits.header_timeout.as_secs(),
            idle_timeout_secs = limits.idle_timeout.as_secs(),
            tls = tls.is_some(),
            "connection limits"
        );
        let listener = connections::listen(&settings.listen)
            .await
            .map_err(|err| StartError(format!("cannot listen on {}: {err}", settings.listen)))?;
        let address = listener
            .local_addr()
            .map_err(|err| StartError(err.to_string()))?;
        if tls.is_none() && !address.ip().is_loopback() {
            tracing::warn!(
                %address,
                "serving plain HTTP on a non-loopback address: set tls_cert and tls_key, or put a TLS proxy in front"
            );
        }
        let (state, credentials) = prepare(&settings, address, tls.is_some()).await?;
        Ok(Self {
            listener,
            state: Arc::new(state),
            credentials,
            limits,
            tls,
        })
    }

    /// Whether the server speaks HTTPS (`tls_cert` and `tls_key` set).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The credentials file written by this start's development setup, if
    /// one was made.
    pub fn created_credentials(&self) -> Option<&std::path::Path> {
        self.credentials.as_deref()
    }

    /// A handle for inspecting the running server (tests, benchmarks).
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            state: Arc::clone(&self.state),
        }
    }

    /// The application as a router, for calling it in-process (benchmarks,
    /// embedding in another server). The listener is dropped.
    pub fn into_router(self) -> Router {
        router(self.state)
    }

    /// Serves until `shutdown` completes, then stops accepting connections
    /// and finishes the requests in flight, and the notifications being
    /// delivered (their attempts recorded, within a receiver's deadline and
    /// a second). Connections are capped and timed (see `connections`).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let metrics = Arc::clone(&self.state.metrics);
        let state = Arc::clone(&self.state);
        let worker = notifications::spawn_worker(Arc::clone(&state));
        let app = router(self.state);
        let served =
            connections::serve(self.listener, app, self.limits, self.tls, metrics, shutdown).await;
        state.outbox.stop();
        worker.finish().await;
        state.storage.server_stopped();
        served
    }
}

/// A user card the member's side made or acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedUp {
    /// The brand.
    pub brand_id: String,
    /// The template.
    pub card_id: String,
    /// The card's code.
    pub user_card_code: String,
    /// The holder.
    pub openid: String,
}

impl SignedUp {
    fn key(&self) -> UserCardKey<'_> {
        UserCardKey {
            brand_id: &self.brand_id,
            card_id: &self.card_id,
            user_card_code: &self.user_card_code,
        }
    }
}

/// Inspects a running server.
#[derive(Clone)]
pub struct ServerHandle {
    state: Arc<AppState>,
}

impl ServerHandle {
    /// RSA private-key operations performed so far.
    pub fn private_key_operations(&self) -> u64 {
        self.state.crypto.private_key_operations()
    }

    /// The WeChat Pay public key ID the server signs responses under.
    pub fn wechatpay_public_key_id(&self) -> String {
        self.state.crypto.wechatpay_public_key_id().to_owned()
    }

    /// The member's side: a user signs up with a pre-authorization token
    /// (the card is `UNACTIVATED` until the brand confirms).
    pub async fn sign_up(
        &self,
        token: &str,
        form: member::SignUpForm,
    ) -> Result<SignedUp, member::MemberError> {
        let card = member::sign_up(&self.state, token, form).await?;
        Ok(SignedUp {
            brand_id: card.brand_id,
            card_id: card.card_id,
            user_card_code: card.user_card_code,
            openid: card.openid,
        })
    }

    /// The member's side: a member asks to trade points for a coupon; the
    /// request's `record_id`, which the brand decides on.
    pub async fn request_point_exchange(
        &self,
        card: &SignedUp,
        exchange_coupon_template_id: &str,
        deduct_points: i64,
    ) -> Result<String, member::MemberError> {
        member::request_point_exchange(
            &self.state,
            card.key(),
            &card.openid,
            exchange_coupon_template_id,
            deduct_points,
        )
        .await
    }

    /// The member's side: the user deletes the card in the app
    /// (`USER_CARD.DELETE` is sent).
    pub async fn delete_card(&self, card: &SignedUp) -> Result<(), member::MemberError> {
        member::delete_card(&self.state, card.key(), &card.openid)
            .await
            .map(drop)
    }

    /// The member's side: the provider asks for the member's balance
    /// (`SYNC_USER_POINT`); the notification's ID.
    pub async fn ask_points(&self, card: &SignedUp) -> Result<String, member::MemberError> {
        member::ask_points(&self.state, card.key(), &card.openid).await
    }

    /// Moves a brand's clock forward (the simulation).
    pub async fn advance_clock(
        &self,
        brand_id: &str,
        seconds: i64,
    ) -> Result<i64, member::MemberError> {
        member::advance_clock(&self.state, brand_id, seconds).await
    }

    /// One notification and its attempts.
    pub async fn notification(
        &self,
        id: &str,
    ) -> Result<
        Option<(
            admin::notifications::Notification,
            Vec<admin::notifications::Attempt>,
        )>,
        StartError,
    > {
        Ok(self
            .state
            .storage
            .notification(id)
            .await
            .map_err(|err| StartError(err.to_string()))?
            .map(|(record, attempts)| {
                (
                    record.into(),
                    attempts.into_iter().map(Into::into).collect(),
                )
            }))
    }

    /// The latest notifications, newest first.
    pub async fn notifications(
        &self,
    ) -> Result<Vec<admin::notifications::Notification>, StartError> {
        Ok(self
            .state
            .storage
            .list_notifications(&NotificationFilter::default(), 100)
            .await
            .map_err(|err| StartError(err.to_string()))?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The audit trail of one card, oldest first.
    pub async fn audit_trail(
        &self,
        brand_id: &str,
        card_id: &str,
        user_card_code: &str,
    ) -> Result<Vec<AuditEntry>, StartError> {
        self.state
            .storage
            .audit_trail(UserCardKey {
                brand_id,
                card_id,
                user_card_code,
            })
            .await
            .map_err(|err| StartError(err.to_string()))
    }
}

async fn prepare(
    settings: &Settings,
    address: SocketAddr,
    tls: bool,
) -> Result<(AppState, Option<PathBuf>), StartError> {
    let clock = Clock::default();
    let (backend, fresh) = storage::open(settings, &clock, Opener::Server).await?;
    let metrics = Arc::new(Metrics::default());
    let storage = Storage::counted(backend, Arc::clone(&metrics));
    let (wechatpay_key, key_id) = bootstrap::checked_wechatpay_key(&storage, settings).await?;
    let data_key = bootstrap::checked_data_key(&storage, settings, true).await?;
    // This server's start (not administration's opening of the same file):
    // what a stopped run held is due now.
    storage
        .void_leases_of_a_stopped_run(clock.unix_now())
        .await
        .map_err(|err| StartError(format!("releasing the last run's notifications: {err}")))?;
    let public_url = match &settings.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = if address.ip().is_unspecified() {
                SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
            } else {
                address
            };
            format!("{}://{host}", if tls { "https" } else { "http" })
        }
    };
    for (brand_id, offset_secs) in storage
        .brand_clocks()
        .await
        .map_err(|err| StartError(err.to_string()))?
    {
        clock.set_offset(&brand_id, offset_secs);
    }
    let crypto = Crypto::new(
        wechatpay_key.clone(),
        key_id.clone(),
        data_key,
        Arc::clone(&metrics),
    );
    let credentials = if fresh && settings.dev_bootstrap {
        let path = bootstrap::create_dev_setup(
            &storage,
            &crypto,
            &settings.data_dir,
            &public_url,
            &wechatpay_key,
            &key_id,
        )
        .await?;
        tracing::info!(credentials = %path.display(), "first start: created a development brand, template and card");
        Some(path)
    } else {
        None
    };
    let console = if settings.console {
        let (token, created) = console::load_or_create_token(&settings.data_dir)?;
        let open = console::served(tls, address.ip(), settings.console_allow_insecure);
        if created {
            // Printed once, to the terminal, never to the log (and not a
            // panic if nobody reads standard output).
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stdout(),
                "console: {public_url}/console/?token={}",
                token.expose()
            );
        }
        if !open {
            tracing::warn!(
                "the console is refused over plain HTTP on a non-loopback address (console_allow_insecure)"
            );
        }
        ConsoleAccess::new(token, open, tls)
    } else {
        ConsoleAccess::new(SecretString::new(String::new()), false, tls)
    };
    // The simulation is on where the development setup was made, unless
    // the settings say otherwise.
    let simulation = settings.simulation.unwrap_or_else(|| {
        settings.dev_bootstrap && settings.data_dir.join("dev/credentials.json").exists()
    });
    // Refusals are explained where the development setup was made, unless
    // the settings say otherwise.
    let developing =
        settings.dev_bootstrap && settings.data_dir.join("dev/credentials.json").exists();
    let explanations = Explanations::new(
        settings.explain.unwrap_or(developing),
        settings.explain_per_brand_per_second,
    );
    // Injected failures, kept across restarts, act only with the simulation.
    let faults = if simulation {
        let stored = storage
            .faults()
            .await
            .map_err(|err| StartError(format!("cannot read the injected faults: {err}")))?;
        Faults::load(stored)
    } else {
        Faults::default()
    };
    let state = AppState {
        storage,
        crypto,
        metrics,
        body_limit: settings.body_limit_bytes,
        request_timeout: Duration::from_secs(settings.request_timeout_secs),
        public_url,
        outbox: Outbox::with_speedup(settings.notification_retry_speedup),
        simulation,
        recent: Recent::default(),
        explanations,
        faults,
        console,
        console_enabled: settings.console,
        clock,
        brands: BrandDirectory::default(),
    };
    Ok((state, credentials))
}
