//! Storage, chosen at start-up: SQLite embedded (`sqlite/`) or
//! PostgreSQL for several instances (`postgres.rs`), behind one concrete
//! [`Storage`]. Each query and each transaction script is written once,
//! by aggregate (`brands.rs`, `cards.rs`, `user_cards.rs`,
//! `membership.rs`, `outbox.rs`), over a small executor whose dialect
//! fills in the few words where the two databases differ (`sql.rs`). One
//! test suite (`tests/`, a file an aggregate) runs against both.
//!
//! Every method that changes a user card does it in one transaction, with
//! its audit record, under a lock on the card row: all requested fields
//! change or none, and concurrent changes of different fields never lose
//! one another.
//!
//! What the backends do differently stays in their files: SQLite keeps
//! its one connection behind a mutex, reached through `spawn_blocking` in
//! one place, checks nonces in memory (loaded from its `nonces` table at
//! start) and writes them with the next transaction, keeps rate-limit
//! buckets in memory and images as files. PostgreSQL (`tokio-postgres`
//! with a `deadpool-postgres` pool) keeps nonces, rate-limit buckets and
//! images in the database, shared by every instance. Nonces are durable on
//! both: a nonce accepted before a restart or a crash is refused after it,
//! for the rest of its window.

mod brands;
mod cards;
mod faults;
mod key_checks;
mod media;
mod membership;
mod migrations;
mod outbox;
#[cfg(test)]
#[path = "tests/plans.rs"]
mod plans;
mod postgres;
pub(crate) mod sql;
mod sqlite;
#[cfg(test)]
mod tests;
mod user_cards;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

pub(crate) use card_member_protocol::shared::wire_name;
use serde::Serialize;

pub(crate) use faults::FaultRecord;
pub(crate) use key_checks::{Adoption, KeptWechatpayKey, SealedSample};
pub(crate) use outbox::{Claim, Claimed, Resent};
pub(crate) use postgres::PostgresStorage;
use sql::{Exec, Row, Value};
pub(crate) use sqlite::SqliteStorage;
pub(crate) use sqlite::server_lock::Opener;

use crate::clock::Clock;
use crate::ops::metrics::Metrics;
use crate::ops::settings::{Database, Settings};
use card_member_protocol::model::Card;

use crate::records::{OutboxRecord, TokenRecord, UserCardRecord};

/// Stored JSON of a value (templates, validity, user information).
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("stored types always serialise")
}

/// Reads stored JSON back.
fn decode_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StorageError> {
    serde_json::from_str(text).map_err(|err| StorageError::Internal(format!("stored JSON: {err}")))
}

/// Reads a stored enum wire name back.
fn decode_wire<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StorageError> {
    decode_json(&format!("\"{text}\""))
}

/// What went wrong in storage: storage failures only. A refusal by the
/// rules (a card invalid, a token used) is the domain's: its rule runs
/// inside the transaction, and its error comes back as
/// [`StorageError::Refused`], untouched.
#[derive(Debug)]
pub(crate) enum StorageError {
    /// No such row (a user card, a template, a brand) for this brand.
    NotFound,
    /// A unique key is taken.
    Taken(Taken),
    /// The caller's rule, run on what the transaction read under its
    /// lock, refused; the transaction was rolled back. Its error as it was
    /// (the domain's `Refusal`).
    Refused(Box<dyn std::error::Error + Send + Sync>),
    /// The database cannot be reached or written right now (busy, locked,
    /// full disk, connection lost).
    Unavailable(String),
    /// Anything else: a bug or corrupt data.
    Internal(String),
}

/// Which unique key a write found taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// A user card's code within its template.
    UserCardCode,
    /// A holder's usable card of the template (one per holder).
    HolderCard,
    /// A template's `out_request_no`, by another template.
    TemplateRequestNo,
    /// A member record's `out_request_no`, by another request.
    RecordRequestNo,
    /// A points-for-coupon request's `record_id`.
    ExchangeRecordId,
    /// A brand ID.
    BrandId,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::NotFound => f.write_str("not found"),
            StorageError::Taken(key) => write!(f, "taken: {key:?}"),
            StorageError::Refused(why) => write!(f, "refused: {why}"),
            StorageError::Unavailable(why) => write!(f, "database unavailable: {why}"),
            StorageError::Internal(why) => write!(f, "storage failure: {why}"),
        }
    }
}

impl std::error::Error for StorageError {}

/// Work on a connection or a transaction: a script written once for
/// both backends. Its future borrows the executor.
pub(crate) type Script<'e, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'e>>;

/// A script: work on a connection or a transaction, for either backend.
pub(crate) trait Work<T>:
    for<'e> FnOnce(&'e mut dyn Exec) -> Script<'e, T> + Send + 'static
{
}

impl<T, W> Work<T> for W where W: for<'e> FnOnce(&'e mut dyn Exec) -> Script<'e, T> + Send + 'static {}

/// How a script runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Statements on their own (reads that need no snapshot).
    Read,
    /// Reads from one snapshot (a page and its total).
    Snapshot,
    /// One transaction that writes (on SQLite `IMMEDIATE`, taking the
    /// nonces waiting with it), committed or rolled back whole.
    Write,
}

/// The backend a server runs on.
#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqliteStorage),
    Postgres(PostgresStorage),
}

/// The server's storage: the backend, every database call timed into the
/// metrics (calls answered from memory are not database calls). Cheap to
/// clone.
#[derive(Clone)]
pub(crate) struct Storage {
    pub(crate) backend: Backend,
    pub(crate) metrics: Option<Arc<Metrics>>,
}

impl Storage {
    /// A backend, untimed (administrative commands).
    pub(crate) fn untimed(backend: Backend) -> Self {
        Self {
            backend,
            metrics: None,
        }
    }

    /// A backend whose calls (and SQLite's group commits) are counted in
    /// `metrics`.
    pub(crate) fn counted(backend: Backend, metrics: Arc<Metrics>) -> Self {
        if let Backend::Sqlite(db) = &backend {
            db.count_commits_in(Arc::clone(&metrics));
        }
        Self {
            backend,
            metrics: Some(metrics),
        }
    }

    /// Runs `work` on the backend, timed: the one place every query goes
    /// through.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        mode: Mode,
        work: impl Work<T>,
    ) -> Result<T, StorageError> {
        self.timed(async {
            match &self.backend {
                Backend::Sqlite(db) => db.run(mode, work).await,
                Backend::Postgres(db) => db.run(mode, work).await,
            }
        })
        .await
    }

    /// The rows of one query, each made a `T` by `each`.
    pub(crate) async fn rows<T: Send + 'static>(
        &self,
        sql: &'static str,
        values: Vec<Value>,
        each: fn(&Row) -> Result<T, StorageError>,
    ) -> Result<Vec<T>, StorageError> {
        self.run(Mode::Read, move |db| {
            Box::pin(async move { db.query(sql, &values).await?.iter().map(each).collect() })
        })
        .await
    }

    /// The row of one query, if any, made a `T` by `each`.
    pub(crate) async fn row<T: Send + 'static>(
        &self,
        sql: &'static str,
        values: Vec<Value>,
        each: fn(&Row) -> Result<T, StorageError>,
    ) -> Result<Option<T>, StorageError> {
        Ok(self.rows(sql, values, each).await?.into_iter().next())
    }

    /// One statement in a transaction of its own; how many rows it changed.
    pub(crate) async fn change(
        &self,
        sql: &'static str,
        values: Vec<Value>,
    ) -> Result<u64, StorageError> {
        self.run(Mode::Write, move |db| {
            Box::pin(async move { Ok(db.execute(sql, &values).await?) })
        })
        .await
    }

    /// Times a database call into the metrics.
    async fn timed<T>(&self, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        if let Some(metrics) = &self.metrics {
            metrics.database(started.elapsed());
        }
        result
    }

    /// A server has stopped: on SQLite it lets go of the file, so that
    /// another may start on it while handles on this storage live on (one
    /// server per file: `sqlite/server_lock.rs`). PostgreSQL holds nothing.
    pub(crate) fn server_stopped(&self) {
        if let Backend::Sqlite(db) = &self.backend {
            db.let_go_of_the_file();
        }
    }

    /// Whether administration opened this storage beside a running server
    /// (SQLite, whose server holds the file's lock; on PostgreSQL, whether
    /// instances run cannot be told: `false`).
    pub(crate) fn beside_a_running_server(&self) -> bool {
        matches!(&self.backend, Backend::Sqlite(db) if db.beside_a_server())
    }

    /// After a bulk load (`seed-data`): SQLite's write-ahead log folded
    /// into the database; PostgreSQL's tables vacuumed and analysed.
    pub(crate) async fn settle(&self) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.settle().await,
            Backend::Postgres(postgres) => postgres.settle().await,
        }
    }

    /// Authentication's two checks on storage, in the spec's order: admits
    /// the request's `nonce` (its brand's, signed at `nonce.signed_at`), or
    /// says it was already used within the signature window, and, if it
    /// is new and `rate` is given, takes one request from the GCRA bucket of
    /// its brand and endpoint (`per_second` requests a second, the same
    /// burst) or says how long to wait; a suspended brand's request, refused
    /// between the two, takes none. Every server instance on this storage
    /// shares the nonces and the buckets. On SQLite both are in memory; on
    /// PostgreSQL one statement: one round trip and one commit.
    pub(crate) async fn admit(
        &self,
        nonce: Nonce<'_>,
        now: i64,
        rate: Option<RateSlot<'_>>,
    ) -> Result<Admitted, StorageError> {
        let (nonce, slot) = match &self.backend {
            Backend::Postgres(db) => self.timed(db.admit(nonce, now, rate)).await?,
            Backend::Sqlite(db) => match (db.first_use_of_nonce(nonce, now)?, rate) {
                (NonceAdmission::Replayed, _) => (NonceAdmission::Replayed, Ok(())),
                (admitted, None) => (admitted, Ok(())),
                (admitted, Some(rate)) => (
                    admitted,
                    db.take_rate_slot(nonce.brand_id, rate.endpoint, rate.per_second),
                ),
            },
        };
        Ok(Admitted { nonce, slot })
    }

    /// Makes an admitted nonce durable, if no transaction has yet (a no-op
    /// where [`Storage::admit`] answered `Recorded`).
    pub(crate) async fn record_nonce(
        &self,
        brand_id: &str,
        nonce: &str,
    ) -> Result<(), StorageError> {
        match &self.backend {
            // Usually a change's transaction wrote it already: no database call.
            Backend::Sqlite(db) if !db.nonce_saved(brand_id, nonce) => {
                self.timed(db.save_waiting_nonces()).await
            }
            Backend::Sqlite(_) | Backend::Postgres(_) => Ok(()),
        }
    }
}

/// Storage could not be opened: the database named cannot be reached,
/// created or migrated.
#[derive(Debug)]
pub(crate) struct OpenError(pub(crate) String);

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Opens the storage `settings` name and applies its migrations; `true`
/// when no brand is registered yet (a first start).
pub(crate) async fn open(
    settings: &Settings,
    clock: &Clock,
    opener: Opener,
) -> Result<(Backend, bool), OpenError> {
    let backend = match settings
        .database()
        .map_err(|err| OpenError(err.to_string()))?
    {
        Database::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|err| {
                    OpenError(format!("cannot create {}: {err}", parent.display()))
                })?;
            }
            Backend::Sqlite(
                SqliteStorage::open(&path, clock.clone(), opener)
                    .await
                    .map_err(|err| OpenError(format!("{}: {err}", path.display())))?,
            )
        }
        Database::Postgres(url) => Backend::Postgres(
            PostgresStorage::open(&url, settings.database_max_connections)
                .await
                .map_err(|err| OpenError(format!("PostgreSQL: {err}")))?,
        ),
    };
    let fresh = Storage::untimed(backend.clone())
        .brand_ids()
        .await
        .map_err(|err| OpenError(err.to_string()))?
        .is_empty();
    Ok((backend, fresh))
}

// What scripts are handed (the domain's rules, as functions and
// closures) and what they answer; the records they work on are
// `crate::records`.

/// The domain's rule on a template, by its stored state (`None`: no such
/// template), run under the template's lock.
pub(crate) type TemplateRule = fn(Option<&str>) -> Result<(), StorageError>;

/// The domain's rule on a card about to take a member record for an
/// openid (`None`: no such card), run under the card's lock.
pub(crate) type CardRule = fn(Option<&UserCardRecord>, &str) -> Result<(), StorageError>;

/// The domain's rule on a token about to be spent on a card at a time
/// (`None`: no such token), run under the token's lock.
pub(crate) type TokenRule =
    fn(Option<&TokenRecord>, &UserCardRecord, i64) -> Result<(), StorageError>;

/// A rule a user card's change must pass against its template, checked in
/// the change's transaction before the card is read (the update's form
/// check); a template that is gone is not checked.
pub(crate) type FormCheck = Box<dyn FnOnce(&Card) -> Result<(), StorageError> + Send>;

/// A change to a stored record, applied in its transaction under its lock:
/// `Ok(true)` writes the record (with the audit entry, for user cards),
/// `Ok(false)` leaves it as it is, an error rolls back.
pub(crate) type Change<T> = Box<dyn FnOnce(&mut T) -> Result<bool, StorageError> + Send>;

/// The token a sign-up spends: it must be unused, unexpired at `now` (Unix
/// seconds) and for the card's brand, template and holder.
#[derive(Clone, Debug)]
pub(crate) struct SpentToken {
    pub(crate) token: String,
    pub(crate) now: i64,
    /// Whether it may be spent.
    pub(crate) spendable: TokenRule,
}

/// Which notifications to list.
#[derive(Clone, Debug, Default)]
pub(crate) struct NotificationFilter {
    pub(crate) brand_id: Option<String>,
    /// With `brand_id` and `card_id`: one user card's.
    pub(crate) card_id: Option<String>,
    pub(crate) user_card_code: Option<String>,
}

/// A console search of user cards: every field given must match.
#[derive(Clone, Debug, Default)]
pub(crate) struct CardSearch {
    pub(crate) brand_id: Option<String>,
    pub(crate) card_id: Option<String>,
    pub(crate) user_card_code: Option<String>,
    pub(crate) openid: Option<String>,
    /// The stored state (`UNACTIVATED`, `EFFECTIVE`, `INVALID`).
    pub(crate) state: Option<String>,
    pub(crate) offset: i64,
    pub(crate) limit: i64,
    /// Count the matches up to this many at most [default:
    /// [`COUNT_CAP`]], or to the end of this page if that is further.
    pub(crate) count_cap: Option<i64>,
}

/// How far a search counts its matches by default: a broad search over a
/// million cards is not counted to the end (the console says "10000+").
pub(crate) const COUNT_CAP: i64 = 10_000;

/// How many cards a search matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counted {
    /// This many.
    Exactly(i64),
    /// More than this many (counting stopped there).
    MoreThan(i64),
}

impl Counted {
    /// What a count stopped after `cap + 1` (`SELECT count(*) FROM (…
    /// LIMIT cap + 1)`) says: more than `cap` when it reached that far.
    pub(crate) fn capped(counted: i64, cap: i64) -> Self {
        if counted > cap {
            Counted::MoreThan(cap)
        } else {
            Counted::Exactly(counted)
        }
    }

    /// Whether more than `n` matched.
    pub(crate) fn more_than(self, n: i64) -> bool {
        match self {
            Counted::Exactly(total) => total > n,
            Counted::MoreThan(at_least) => at_least >= n,
        }
    }
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Counted::Exactly(total) => write!(f, "{total}"),
            Counted::MoreThan(at_least) => write!(f, "{at_least}+"),
        }
    }
}

impl CardSearch {
    /// The search's criteria as SQL, only those given (so that the database
    /// can answer from its indexes on `user_card_code` and `openid`; an
    /// `(? IS NULL OR column = ?)` filter made SQLite scan every card), and
    /// their values in placeholder order. `placeholder(n)` writes the n-th
    /// (from 1) placeholder in the backend's dialect; no criterion is `TRUE`.
    ///
    /// `broad` is written before the criteria that narrow a search little
    /// (a brand alone, the state `EFFECTIVE`): SQLite's `+`, which keeps
    /// its planner off their indexes, so that the newest cards are read
    /// newest first until the page is full rather than all of them read
    /// and sorted (6 ms instead of 67 at 100,000 cards); PostgreSQL's
    /// planner weighs that itself (`""`). A template's cards and the rare
    /// states are read newest first through their own indexes
    /// (`V8__cards_by_state.sql`: at a million cards over a thousand
    /// brands, reading the table newest first until a template's 50 turned
    /// up took 99 ms).
    pub(crate) fn filter(
        &self,
        placeholder: impl Fn(usize) -> String,
        broad: &str,
    ) -> (String, Vec<&str>) {
        // A template's cards are read newest first through their index
        // (`user_cards_by_template`); a brand alone narrows little.
        let brand = if self.card_id.is_some() { "" } else { broad };
        let criteria = [
            (brand, "brand_id", &self.brand_id),
            ("", "card_id", &self.card_id),
            ("", "user_card_code", &self.user_card_code),
            ("", "openid", &self.openid),
            // A card is rarely UNACTIVATED or INVALID: those are found
            // through their index; EFFECTIVE narrows little.
            (
                if self.state.as_deref() == Some("EFFECTIVE") {
                    broad
                } else {
                    ""
                },
                "state",
                &self.state,
            ),
        ];
        criteria_given(criteria, placeholder)
    }
}

/// Criteria `(prefix, column, value)` as SQL, only those given (`prefix
/// column = placeholder(n)`, joined by `AND`; `TRUE` when none), and their
/// values in placeholder order: written only when given, a criterion lets
/// the database answer from the column's index, where an `(? IS NULL OR
/// column = ?)` filter made SQLite read the whole table (the console's
/// card search, the notification lists).
pub(crate) fn criteria_given<'a, 'w>(
    criteria: impl IntoIterator<Item = (&'w str, &'w str, &'a Option<String>)>,
    placeholder: impl Fn(usize) -> String,
) -> (String, Vec<&'a str>) {
    let mut values = Vec::new();
    let mut clauses = Vec::new();
    for (prefix, column, value) in criteria {
        if let Some(value) = value {
            values.push(value.as_str());
            clauses.push(format!("{prefix}{column} = {}", placeholder(values.len())));
        }
    }
    if clauses.is_empty() {
        ("TRUE".to_owned(), values)
    } else {
        (clauses.join(" AND "), values)
    }
}

/// The notification a user-card change sends, made from the card as
/// changed, inside the change's transaction.
pub(crate) type NotifyFn = Box<dyn FnOnce(&UserCardRecord) -> OutboxRecord + Send>;

/// What the storage made of a [`MemberRecord`](crate::records::MemberRecord).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Recorded now; answer it.
    First,
    /// The same request was recorded before: its answer (JSON).
    Repeated(String),
}

/// A request's nonce as it was signed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Nonce<'a> {
    /// The brand that signed it (nonces are the brand's own).
    pub(crate) brand_id: &'a str,
    /// The `nonce_str` of its `Authorization`.
    pub(crate) nonce: &'a str,
    /// The signature's timestamp (Unix seconds): the nonce is kept until
    /// the signature window after it ends.
    pub(crate) signed_at: i64,
}

/// The rate limit a request is held to: its endpoint's bucket of its
/// brand, `per_second` requests a second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RateSlot<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) per_second: u32,
}

/// What [`Storage::admit`] found: the nonce, and the rate limit's slot
/// (`Ok` also when none was asked for or the nonce was replayed), or how
/// long to wait for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Admitted {
    pub(crate) nonce: NonceAdmission,
    pub(crate) slot: Result<(), std::time::Duration>,
}

/// What the storage made of a request's nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NonceAdmission {
    /// Used before within its window: the request is a replay.
    Replayed,
    /// First use, and already durable.
    Recorded,
    /// First use, reserved but not yet durable: the server calls
    /// [`Storage::record_nonce`] before it answers, unless a write made it
    /// durable first (a change's transaction carries the nonces waiting).
    Unsaved,
}

/// Whether a card the holder already has still blocks a new one (an
/// import): usable cards do, invalid and expired ones do not.
pub(crate) type HolderCheck = Arc<dyn Fn(&UserCardRecord) -> bool + Send + Sync>;
