//! The application: its state, its router and its life cycle.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get, patch, post};
use tokio::net::TcpListener;

use crate::StartError;
use crate::bootstrap;
use crate::connections::{self, ConnectionLimits};
use crate::crypto::Crypto;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::{cards, health, user_cards};
use crate::settings::{Database, Settings};
use crate::storage::{
    AuditEntry, BrandRecord, PostgresStorage, SqliteStorage, Storage, StorageError, TimedStorage,
    UserCardKey,
};
use crate::{auth, layers};

/// Brands by ID with when they were read; `None` for IDs that are no brand.
type BrandCache = HashMap<String, (Instant, Option<Arc<BrandRecord>>)>;

/// Everything a request handler needs.
pub(crate) struct AppState {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) crypto: Crypto,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) body_limit: usize,
    pub(crate) request_timeout: Duration,
    /// Brands by ID, and IDs known not to be brands (`None`).
    brands: RwLock<BrandCache>,
}

/// How long a brand read from the database is trusted before it is read
/// again (to see suspensions and removed certificates).
const BRAND_CACHE_TTL: Duration = Duration::from_secs(5);

/// How soon an unknown brand ID, or a serial a cached brand lacks, is looked
/// up again.
const BRAND_RECHECK: Duration = Duration::from_secs(1);

/// Cached brand IDs before stale and unknown ones are dropped.
const BRAND_CACHE_LIMIT: usize = 10_000;

impl AppState {
    /// The brand. Brands are cached for [`BRAND_CACHE_TTL`]; a miss, or a
    /// serial the cached brand lacks (a brand or certificate added by
    /// `card-member brands add` while the server runs), reads the database.
    pub(crate) async fn brand(
        &self,
        brand_id: &str,
        serial_no: &str,
    ) -> Result<Option<Arc<BrandRecord>>, ApiError> {
        let cached = self
            .brands
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(brand_id)
            .cloned();
        if let Some((loaded, brand)) = cached
            && loaded.elapsed() < BRAND_CACHE_TTL
        {
            let has_serial = brand
                .as_ref()
                .is_some_and(|brand| brand.certificates.iter().any(|c| c.serial_no == serial_no));
            // An unknown brand, or a serial the brand lacks, is looked up
            // again at most once a second: a flood of them costs no database.
            if has_serial || loaded.elapsed() < BRAND_RECHECK {
                return Ok(brand);
            }
        }
        let storage = Arc::clone(&self.storage);
        let id = brand_id.to_owned();
        let loaded = blocking(move || storage.brand(&id)).await?.map(Arc::new);
        let mut brands = self.brands.write().unwrap_or_else(|p| p.into_inner());
        if brands.len() >= BRAND_CACHE_LIMIT {
            brands.retain(|_, (at, brand)| brand.is_some() && at.elapsed() < BRAND_CACHE_TTL);
        }
        brands.insert(brand_id.to_owned(), (Instant::now(), loaded.clone()));
        Ok(loaded)
    }
}

/// Runs storage work on the blocking pool and maps its failures.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, ApiError> {
    run_blocking(move || work().map_err(storage_error)).await
}

/// Runs work that may block (RSA, storage) on the blocking pool.
pub(crate) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::internal(&err))?
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

/// The router: API routes behind authentication and response signing, and
/// the unauthenticated health check; the request ID, log and timeout
/// around everything. Unknown paths answer 404 and wrong methods 405, both
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
    Router::new()
        .route("/brand/card-member/cards", api(post(cards::create_card)))
        .route(
            "/brand/card-member/cards/{card_id}",
            api(get(cards::get_card)),
        )
        .route(
            "/brand/card-member/user-cards/import-by-openid",
            api(post(user_cards::import_user_card)),
        )
        .route(
            "/brand/card-member/user-cards/{user_card_code}",
            api(patch(user_cards::update_user_card).get(user_cards::get_user_card)),
        )
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
        let settings_for_blocking = settings.clone();
        let (state, credentials) =
            tokio::task::spawn_blocking(move || prepare(&settings_for_blocking, address))
                .await
                .map_err(|err| StartError(err.to_string()))??;
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
        let app = router(self.state);
        connections::serve(self.listener, app, self.limits, self.tls, metrics, shutdown).await
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

    /// The audit trail of one card, oldest first.
    pub async fn audit_trail(
        &self,
        brand_id: &str,
        card_id: &str,
        user_card_code: &str,
    ) -> Result<Vec<AuditEntry>, StartError> {
        let storage = Arc::clone(&self.state.storage);
        let (brand_id, card_id, user_card_code) = (
            brand_id.to_owned(),
            card_id.to_owned(),
            user_card_code.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            storage.audit_trail(UserCardKey {
                brand_id: &brand_id,
                card_id: &card_id,
                user_card_code: &user_card_code,
            })
        })
        .await
        .map_err(|err| StartError(err.to_string()))?
        .map_err(|err| StartError(err.to_string()))
    }
}

/// Opens the storage `settings` name and applies its migrations; `true`
/// when no brand is registered yet (a first start).
pub(crate) fn open_storage(settings: &Settings) -> Result<(Arc<dyn Storage>, bool), StartError> {
    let storage: Arc<dyn Storage> = match settings
        .database()
        .map_err(|err| StartError(err.to_string()))?
    {
        Database::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|err| {
                    StartError(format!("cannot create {}: {err}", parent.display()))
                })?;
            }
            Arc::new(
                SqliteStorage::open(&path)
                    .map_err(|err| StartError(format!("{}: {err}", path.display())))?,
            )
        }
        Database::Postgres(url) => Arc::new(
            PostgresStorage::open(&url, settings.database_max_connections)
                .map_err(|err| StartError(format!("PostgreSQL: {err}")))?,
        ),
    };
    let fresh = storage
        .list_brands()
        .map_err(|err| StartError(err.to_string()))?
        .is_empty();
    Ok((storage, fresh))
}

fn prepare(
    settings: &Settings,
    address: SocketAddr,
) -> Result<(AppState, Option<PathBuf>), StartError> {
    let (storage, fresh) = open_storage(settings)?;
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
    let credentials = if fresh && settings.dev_bootstrap {
        let host = if address.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
        } else {
            address
        };
        let path = bootstrap::create_dev_setup(
            storage.as_ref(),
            &settings.data_dir,
            &format!("http://{host}"),
            &wechatpay_key,
            &key_id,
        )?;
        tracing::info!(credentials = %path.display(), "first start: created a development brand, template and card");
        Some(path)
    } else {
        None
    };
    let metrics = Arc::new(Metrics::default());
    let storage: Arc<dyn Storage> = Arc::new(TimedStorage {
        inner: storage,
        metrics: Arc::clone(&metrics),
    });
    let state = AppState {
        storage,
        crypto: Crypto::new(wechatpay_key, key_id, data_key, Arc::clone(&metrics)),
        metrics,
        body_limit: settings.body_limit_bytes,
        request_timeout: Duration::from_secs(settings.request_timeout_secs),
        brands: RwLock::new(HashMap::new()),
    };
    Ok((state, credentials))
}
