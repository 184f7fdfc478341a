//! The application: its state, its router and its life cycle.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter, get, on, post};
use card_member_protocol::endpoints::{self, Endpoint};
use card_member_protocol::secret::SecretString;
use tokio::net::TcpListener;

use crate::StartError;
use crate::bootstrap;
use crate::connections::{self, ConnectionLimits};
use crate::crypto::Crypto;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::{activity, cards, health, media, membership, simulate, user_cards};
use crate::settings::{Database, Settings};
use crate::storage::{
    AuditEntry, Backend, BrandRecord, PostgresStorage, SqliteStorage, Storage, StorageError,
    TimedStorage, UserCardKey,
};
use crate::{auth, layers};

/// Everything a request handler needs.
pub(crate) struct AppState {
    pub(crate) storage: TimedStorage,
    pub(crate) crypto: Crypto,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) body_limit: usize,
    pub(crate) request_timeout: Duration,
    /// The server's URL as its clients reach it (`public_url`, or the
    /// listen address), for the image URLs it answers.
    pub(crate) public_url: String,
    /// The notification worker's handle.
    pub(crate) outbox: crate::notifications::Outbox,
    /// Whether the member's side may be played (`/simulate/…`).
    pub(crate) simulation: bool,
    /// The recent API traffic, for the console.
    pub(crate) recent: crate::recent::Recent,
    /// The console's token and switches.
    pub(crate) console: crate::console::ConsoleAccess,
    /// Whether the console is served at all (`console`).
    pub(crate) console_enabled: bool,
    /// Each brand's simulated clock offset, in seconds.
    clocks: std::sync::RwLock<std::collections::HashMap<String, i64>>,
    brands: BrandDirectory,
}

/// How long a brand read from the database is trusted before it is read
/// again (to see suspensions and removed certificates).
const BRAND_CACHE_TTL: Duration = Duration::from_secs(5);

/// How soon the list of brand IDs, or a brand whose certificate serial was
/// not found, is read again.
const BRAND_RECHECK: Duration = Duration::from_secs(1);

/// Brand IDs outside the list that may be looked up one by one each second,
/// in all (a brand registered a moment ago is found on its first request,
/// unless a flood of unknown IDs took these).
const UNKNOWN_BRAND_LOOKUPS_PER_SECOND: u32 = 5;

/// The brands authentication looks up. Its size depends only on the
/// brands registered, never on what callers send: an ID that is no brand is
/// remembered nowhere, and costs a database read only within a fixed
/// budget (the list of IDs read again at most once a second, and
/// [`UNKNOWN_BRAND_LOOKUPS_PER_SECOND`] single lookups), however many
/// unknown IDs arrive.
#[derive(Default)]
struct BrandDirectory {
    /// Every registered brand ID, and when the list was read.
    ids: RwLock<(Option<Instant>, HashSet<String>)>,
    /// Records of registered brands that called, with when each was read.
    records: RwLock<HashMap<String, (Instant, Arc<BrandRecord>)>>,
    /// Held while the ID list is read again, so that a flood of unknown IDs
    /// reads it once and waits for it.
    reloading: tokio::sync::Mutex<()>,
    /// Single lookups of unknown IDs this second: (the second's start, count).
    lookups: std::sync::Mutex<(Option<Instant>, u32)>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl BrandDirectory {
    /// Takes one single lookup of this second's budget, if one is left.
    fn take_lookup(&self) -> bool {
        let mut lookups = self
            .lookups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if lookups
            .0
            .is_none_or(|start| start.elapsed() >= Duration::from_secs(1))
        {
            *lookups = (Some(Instant::now()), 0);
        }
        if lookups.1 < UNKNOWN_BRAND_LOOKUPS_PER_SECOND {
            lookups.1 += 1;
            true
        } else {
            false
        }
    }
}

impl AppState {
    /// The time for `brand_id`: now, moved forward by its simulated clock
    /// (the simulation's "advance the clock"; 0 for every brand otherwise).
    pub(crate) fn now_for(&self, brand_id: &str) -> time::OffsetDateTime {
        let offset = self
            .clocks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(brand_id)
            .copied()
            .unwrap_or(0);
        time::OffsetDateTime::now_utc() + time::Duration::seconds(offset)
    }

    /// Moves a brand's clock to `offset_secs` ahead of real time, durably.
    pub(crate) async fn set_clock(&self, brand_id: &str, offset_secs: i64) -> Result<(), ApiError> {
        self.storage
            .set_brand_clock(brand_id, offset_secs)
            .await
            .map_err(storage_error)?;
        self.clocks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(brand_id.to_owned(), offset_secs);
        Ok(())
    }

    /// A brand's clock offset, in seconds.
    pub(crate) fn clock_offset(&self, brand_id: &str) -> i64 {
        self.clocks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(brand_id)
            .copied()
            .unwrap_or(0)
    }

    /// The brand, if `brand_id` is registered. A brand's record is trusted
    /// for [`BRAND_CACHE_TTL`]; a serial it lacks (a certificate added by
    /// `card-member brands add` while the server runs) reads it again, at
    /// most once per [`BRAND_RECHECK`]. An ID not in the list of brand IDs
    /// reads the list again if it is older than [`BRAND_RECHECK`], else is
    /// looked up alone within the budget, else is refused.
    pub(crate) async fn brand(
        &self,
        brand_id: &str,
        serial_no: &str,
    ) -> Result<Option<Arc<BrandRecord>>, ApiError> {
        let directory = &self.brands;
        let cached = read(&directory.records).get(brand_id).cloned();
        if let Some((loaded, brand)) = cached
            && loaded.elapsed() < BRAND_CACHE_TTL
        {
            let has_serial = brand.certificates.iter().any(|c| c.serial_no == serial_no);
            if has_serial || loaded.elapsed() < BRAND_RECHECK {
                return Ok(Some(brand));
            }
        } else if !self.may_be_registered(brand_id).await? {
            return Ok(None);
        }
        let Some(loaded) = self
            .storage
            .brand(brand_id)
            .await
            .map_err(storage_error)?
            .map(Arc::new)
        else {
            write(&directory.records).remove(brand_id);
            return Ok(None);
        };
        write(&directory.ids).1.insert(brand_id.to_owned());
        write(&directory.records)
            .insert(brand_id.to_owned(), (Instant::now(), Arc::clone(&loaded)));
        Ok(Some(loaded))
    }

    /// Whether `brand_id` is worth a database read: it is in the list of
    /// brand IDs (read again first if older than [`BRAND_RECHECK`], by one
    /// request while the others wait), or the budget of single lookups
    /// allows one.
    async fn may_be_registered(&self, brand_id: &str) -> Result<bool, ApiError> {
        let directory = &self.brands;
        let stale = |ids: &(Option<Instant>, HashSet<String>)| {
            ids.0.is_none_or(|at| at.elapsed() >= BRAND_RECHECK)
        };
        {
            let ids = read(&directory.ids);
            if ids.1.contains(brand_id) {
                return Ok(true);
            }
            if !stale(&ids) {
                return Ok(directory.take_lookup());
            }
        }
        // One request reads the list; the others wait for it (a moment)
        // rather than read it too or refuse a brand the list will hold.
        let _reloading = directory.reloading.lock().await;
        if stale(&read(&directory.ids)) {
            let ids: HashSet<String> = self
                .storage
                .brand_ids()
                .await
                .map_err(storage_error)?
                .into_iter()
                .collect();
            write(&directory.records).retain(|id, _| ids.contains(id));
            *write(&directory.ids) = (Some(Instant::now()), ids);
        }
        Ok(read(&directory.ids).1.contains(brand_id))
    }

    /// Brands whose records authentication holds (for `/metrics`).
    pub(crate) fn brands_cached(&self) -> usize {
        read(&self.brands.records).len()
    }
}

/// The answer for a storage failure that a handler did not map itself.
pub(crate) fn storage_error(error: StorageError) -> ApiError {
    match error {
        StorageError::Unavailable(_) => ApiError::unavailable(&error),
        other => ApiError::internal(&other),
    }
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The handler of an endpoint of the table, on its method.
fn handler(endpoint: &Endpoint) -> MethodRouter<Arc<AppState>> {
    let method = MethodFilter::try_from(
        axum::http::Method::from_bytes(endpoint.method.as_bytes())
            .expect("the table's methods are valid"),
    )
    .expect("the table's methods are routable");
    match endpoint.name {
        "update_user_card" => on(method, user_cards::update_user_card),
        "get_user_card" => on(method, user_cards::get_user_card),
        "invalidate_user_card" => on(method, user_cards::invalidate_user_card),
        "import_user_card" => on(method, user_cards::import_user_card),
        "create_card" => on(method, cards::create_card),
        "get_card" => on(method, cards::get_card),
        "list_cards" => on(method, cards::list_cards),
        "update_card" => on(method, cards::update_card),
        "invalidate_card" => on(method, cards::invalidate_card),
        "list_user_cards" => on(method, user_cards::list_user_cards),
        "create_pre_auth_token" => on(method, membership::create_pre_auth_token),
        "confirm_user_card" => on(method, membership::confirm_user_card),
        "confirm_point_exchange" => on(method, membership::confirm_point_exchange),
        "upload_image" => on(method, media::upload_image),
        "create_user_feed" => on(method, activity::create_user_feed),
        "sync_user_points" => on(method, activity::sync_user_points),
        other => panic!("the endpoint {other} has no handler"),
    }
}

/// The router: API routes behind authentication and response signing, and
/// the unauthenticated health check; the request ID, log and timeout
/// around everything. The API routes are the endpoint table's
/// ([`card_member_protocol::endpoints::ENDPOINTS`]). Unknown paths answer 404 and wrong methods 405, both
/// with an empty body, before authentication.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    // Layers go on each method router's matched routes, so that a wrong
    // method is answered 405 before authentication.
    let api = |methods: MethodRouter<Arc<AppState>>| {
        methods
            .route_layer(from_fn_with_state(
                Arc::clone(&state),
                layers::sign_response,
            ))
            .route_layer(from_fn_with_state(Arc::clone(&state), auth::authenticate))
    };
    let mut router = Router::new();
    if state.console_enabled {
        router = router.merge(crate::console::routes(&state));
    }
    for endpoint in endpoints::ENDPOINTS {
        router = router.route(endpoint.path, api(handler(endpoint)));
    }
    router
        .route(
            &format!("{}/{{media_id}}", media::MEDIA_PATH),
            get(media::serve_image),
        )
        .route("/simulate/tokens/{token}", get(simulate::open_token))
        .route("/simulate/sign-up", post(simulate::sign_up))
        .route("/simulate/delete-card", post(simulate::delete_card))
        .route("/simulate/ask-points", post(simulate::ask_points))
        .route("/simulate/exchange-points", post(simulate::exchange_points))
        .route("/simulate/advance-clock", post(simulate::advance_clock))
        .route("/healthz", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .layer(from_fn_with_state(
            Arc::clone(&state),
            layers::request_id_and_log,
        ))
        .with_state(state)
}

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
            (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
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
        let listener = TcpListener::bind(&settings.listen)
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
    /// and finishes the requests in flight. Connections are capped and
    /// timed (see `connections`).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let metrics = Arc::clone(&self.state.metrics);
        let state = Arc::clone(&self.state);
        crate::notifications::spawn_worker(Arc::clone(&state));
        let app = router(self.state);
        let served =
            connections::serve(self.listener, app, self.limits, self.tls, metrics, shutdown).await;
        state.outbox.stop();
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
        form: crate::member::SignUpForm,
    ) -> Result<SignedUp, crate::member::MemberError> {
        let card = crate::member::sign_up(&self.state, token, form).await?;
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
    ) -> Result<String, crate::member::MemberError> {
        crate::member::request_point_exchange(
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
    pub async fn delete_card(&self, card: &SignedUp) -> Result<(), crate::member::MemberError> {
        crate::member::delete_card(&self.state, card.key(), &card.openid)
            .await
            .map(drop)
    }

    /// The member's side: the provider asks for the member's balance
    /// (`SYNC_USER_POINT`); the notification's ID.
    pub async fn ask_points(&self, card: &SignedUp) -> Result<String, crate::member::MemberError> {
        crate::member::ask_points(&self.state, card.key(), &card.openid).await
    }

    /// Moves a brand's clock forward (the simulation).
    pub async fn advance_clock(
        &self,
        brand_id: &str,
        seconds: i64,
    ) -> Result<i64, crate::member::MemberError> {
        crate::member::advance_clock(&self.state, brand_id, seconds).await
    }

    /// One notification and its attempts.
    pub async fn notification(
        &self,
        id: &str,
    ) -> Result<Option<(crate::outbox::Notification, Vec<crate::outbox::Attempt>)>, StartError>
    {
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
    pub async fn notifications(&self) -> Result<Vec<crate::outbox::Notification>, StartError> {
        Ok(self
            .state
            .storage
            .list_notifications(&crate::storage::NotificationFilter::default(), 100)
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

/// Opens the storage `settings` name and applies its migrations; `true`
/// when no brand is registered yet (a first start).
pub(crate) async fn open_storage(settings: &Settings) -> Result<(Backend, bool), StartError> {
    let backend = match settings
        .database()
        .map_err(|err| StartError(err.to_string()))?
    {
        Database::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|err| {
                    StartError(format!("cannot create {}: {err}", parent.display()))
                })?;
            }
            Backend::Sqlite(
                SqliteStorage::open(&path)
                    .await
                    .map_err(|err| StartError(format!("{}: {err}", path.display())))?,
            )
        }
        Database::Postgres(url) => Backend::Postgres(
            PostgresStorage::open(&url, settings.database_max_connections)
                .await
                .map_err(|err| StartError(format!("PostgreSQL: {err}")))?,
        ),
    };
    let fresh = TimedStorage::untimed(backend.clone())
        .list_brands()
        .await
        .map_err(|err| StartError(err.to_string()))?
        .is_empty();
    Ok((backend, fresh))
}

async fn prepare(
    settings: &Settings,
    address: SocketAddr,
    tls: bool,
) -> Result<(AppState, Option<PathBuf>), StartError> {
    let (backend, fresh) = open_storage(settings).await?;
    let keys_settings = settings.clone();
    let keys = tokio::task::spawn_blocking(move || {
        let settings = keys_settings;
        let data_key_file = settings
            .data_key_file
            .clone()
            .unwrap_or_else(|| settings.data_dir.join("data.key"));
        let data_key = bootstrap::data_key(&data_key_file, settings.data_key_file.is_none())?;
        let wechatpay_dir = settings.data_dir.join("wechatpay");
        let key_file = settings
            .wechatpay_private_key_file
            .clone()
            .unwrap_or_else(|| wechatpay_dir.join("private_key.pem"));
        let (wechatpay_key, key_id) = bootstrap::wechatpay_key(
            &key_file,
            settings.wechatpay_public_key_id.as_deref(),
            &wechatpay_dir,
            settings.wechatpay_private_key_file.is_none(),
        )?;
        Ok::<_, StartError>((data_key, wechatpay_key, key_id))
    })
    .await
    .map_err(|err| StartError(format!("loading keys: {err}")))?;
    let (data_key, wechatpay_key, key_id) = keys?;
    let metrics = Arc::new(Metrics::default());
    let storage = TimedStorage {
        backend,
        metrics: Some(Arc::clone(&metrics)),
    };
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
    let clocks = storage
        .brand_clocks()
        .await
        .map_err(|err| StartError(err.to_string()))?
        .into_iter()
        .collect();
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
        let (token, created) = crate::console::load_or_create_token(&settings.data_dir)?;
        let open = crate::console::served(tls, address.ip(), settings.console_allow_insecure);
        if created {
            // Printed once, to the terminal, never to the log.
            println!("console: {public_url}/console/?token={}", token.expose());
        }
        if !open {
            tracing::warn!(
                "the console is refused over plain HTTP on a non-loopback address (console_allow_insecure)"
            );
        }
        crate::console::ConsoleAccess::new(token, open, tls)
    } else {
        crate::console::ConsoleAccess::new(SecretString::new(String::new()), false, tls)
    };
    // The simulation is on where the development setup was made, unless
    // the settings say otherwise.
    let simulation = settings.simulation.unwrap_or_else(|| {
        settings.dev_bootstrap && settings.data_dir.join("dev/credentials.json").exists()
    });
    let state = AppState {
        storage,
        crypto,
        metrics,
        body_limit: settings.body_limit_bytes,
        request_timeout: Duration::from_secs(settings.request_timeout_secs),
        public_url,
        outbox: crate::notifications::Outbox::default(),
        simulation,
        recent: crate::recent::Recent::default(),
        console,
        console_enabled: settings.console,
        clocks: std::sync::RwLock::new(clocks),
        brands: BrandDirectory::default(),
    };
    state.outbox.speedup.store(
        settings.notification_retry_speedup.max(1),
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok((state, credentials))
}
