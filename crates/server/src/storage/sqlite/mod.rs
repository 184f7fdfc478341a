//! The embedded default: one SQLite file, WAL with `synchronous=FULL`, so a
//! crash or power loss never loses a committed (acknowledged) write. One
//! server process per file, which it holds locked (`server_lock.rs`): nonces,
//! rate-limit buckets and notification leases live in its memory.
//!
//! This room holds the connection, how work reaches it (`run`, on a
//! blocking thread; statements answered at once) and the file's life (open,
//! migrate, settle). What only the embedded backend does has a room of its
//! own beside it:
//!
//! - `group_commit.rs`: writes committed in groups, one sync of the
//!   write-ahead log for all that queued while the last group committed;
//! - `nonces.rs`: nonces checked in memory (`replay.rs`) and written with
//!   the next group;
//! - `rate_limit.rs`: the rate-limit buckets, in memory;
//! - `files.rs`: uploaded images, kept as files beside the database;
//! - `server_lock.rs`: one server per file.

mod files;
mod group_commit;
mod nonces;
mod rate_limit;
mod replay;
pub(super) mod server_lock;

use std::path::Path;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode};

use super::migrations;
use super::sql::{DbError, Dialect, Exec, Row, StatementFuture, Value};
use super::{Mode, Script, StorageError, Work};
use crate::clock::Clock;
use crate::ops::metrics::Metrics;
use group_commit::Writes;
use nonces::UnsavedNonces;
use rate_limit::RateLimiter;
use replay::ReplayGuard;
use server_lock::{Held, Opener};

/// How many prepared statements the connection keeps (rusqlite's default
/// is 16). Storage runs about 55 different statements (the storage suite's
/// count, which its plan check holds under this), 30 or more of them in a
/// server taking the API's whole mix with notifications: with 16, every
/// request would evict another's statements, and a statement prepared
/// again costs 7–33 µs of CPU on this schema (an insert into the audit log,
/// a user card read by its key), against 6–11 µs to run it prepared.
pub(super) const STATEMENT_CACHE: usize = 128;

/// SQLite storage: a handle on the database, cheap to clone.
#[derive(Clone)]
pub(crate) struct SqliteStorage(Arc<SqliteDb>);

/// The database: one connection, writes serialised by SQLite itself and by
/// the mutex around the connection. Its methods block.
pub(crate) struct SqliteDb {
    connection: Mutex<Connection>,
    replay: ReplayGuard,
    /// Admitted nonces not yet on disk: waiting for the next transaction,
    /// or being written by the one in progress.
    unsaved_nonces: Mutex<UnsavedNonces>,
    /// Writes waiting for the next group commit.
    writes: Mutex<Writes>,
    /// Where group commits are counted (the server's metrics).
    metrics: OnceLock<Arc<Metrics>>,
    /// When expired nonces were last deleted (Unix seconds).
    nonces_pruned_at: AtomicI64,
    limiter: RateLimiter,
    /// Where uploaded images are kept: `media/` beside the database file.
    media_dir: std::path::PathBuf,
    clock: Clock,
    /// The file's lock while this process holds it: a server's until it
    /// stops, administration's when no server runs (`None`: beside a
    /// server, or let go).
    file_lock: Mutex<Held>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database file for `opener` and applies
    /// migrations unless a server runs on it (off the async workers).
    pub(crate) async fn open(
        path: &Path,
        clock: Clock,
        opener: Opener,
    ) -> Result<Self, StorageError> {
        let path = path.to_owned();
        let db = tokio::task::spawn_blocking(move || SqliteDb::open(&path, clock, opener))
            .await
            .map_err(|err| StorageError::Internal(err.to_string()))??;
        Ok(Self(Arc::new(db)))
    }

    /// The one place SQLite work leaves the async workers: `work` runs on
    /// a blocking thread with the connection, its statements answered at
    /// once (so its future is finished in one poll). A write joins the
    /// group of writes committed together (see [`SqliteDb::commit_writes`]).
    pub(super) async fn run<T: Send + 'static>(
        &self,
        mode: Mode,
        work: impl Work<T>,
    ) -> Result<T, StorageError> {
        match mode {
            Mode::Write => self.write(work).await,
            // One connection: nothing writes between a read's statements.
            Mode::Read | Mode::Snapshot => {
                self.blocking(move |db| {
                    finish(work(&mut SqliteExec {
                        connection: &mut db.lock(),
                    }))
                })
                .await
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SqliteDb) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let db = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|err| StorageError::Internal(format!("a storage task failed: {err}")))?
    }

    /// Counts this database's group commits in `metrics` from now on.
    pub(super) fn count_commits_in(&self, metrics: Arc<Metrics>) {
        let _ = self.0.metrics.set(metrics);
    }

    /// A stopped server lets go of the file (see [`server_lock`]), while
    /// handles on its storage may live on (another may start on the file).
    pub(super) fn let_go_of_the_file(&self) {
        *self.0.file_lock() = None;
    }

    /// Whether this is administration's, beside a running server (which
    /// holds the file's lock).
    pub(super) fn beside_a_server(&self) -> bool {
        self.0.file_lock().is_none()
    }

    /// After a bulk load: the write-ahead log folded into the database
    /// file and emptied (no statistics are taken: the planner's choices
    /// are the ones the query-plan tests check, made without them).
    pub(super) async fn settle(&self) -> Result<(), StorageError> {
        self.blocking(|db| {
            db.lock()
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .map_err(classify)
        })
        .await
    }

    /// Takes a slot of the in-memory bucket, or says how long to wait.
    pub(super) fn take_rate_slot(
        &self,
        brand_id: &str,
        endpoint: &str,
        per_second: u32,
    ) -> Result<(), Duration> {
        self.0.take_rate_slot(brand_id, endpoint, per_second)
    }
}

/// Runs a script in one (deferred) transaction outside the group commit:
/// at open, before anything else uses the connection.
fn in_transaction(
    connection: &mut Connection,
    script: impl FnOnce(&mut dyn Exec) -> Script<'_, ()>,
) -> Result<(), StorageError> {
    connection.execute_batch("BEGIN").map_err(classify)?;
    match finish(script(&mut SqliteExec { connection })) {
        Ok(()) => connection.execute_batch("COMMIT").map_err(classify),
        // The script's error is the one to report, not the rollback's.
        Err(err) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

/// The output of a script whose statements are all answered at once.
fn finish<T>(script: Script<'_, T>) -> Result<T, StorageError> {
    let mut script = script;
    match script
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => Err(StorageError::Internal(
            "a SQLite script waited on something other than SQLite".to_owned(),
        )),
    }
}

impl SqliteDb {
    /// Opens (creating if needed) the database file and applies migrations,
    /// or, beside a running server, checks the schema is this build's.
    fn open(path: &Path, clock: Clock, opener: Opener) -> Result<Self, StorageError> {
        let lock = server_lock::take(path, opener)?;
        let migrates = lock.is_some();
        let connection = Connection::open(path).map_err(classify)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(classify)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )
            .map_err(classify)?;
        let storage = Self {
            connection: Mutex::new(connection),
            replay: ReplayGuard::default(),
            unsaved_nonces: Mutex::new(UnsavedNonces::default()),
            writes: Mutex::new(Writes::default()),
            metrics: OnceLock::new(),
            nonces_pruned_at: AtomicI64::new(0),
            limiter: RateLimiter::default(),
            media_dir: path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join("media"),
            clock,
            file_lock: Mutex::new(lock),
        };
        if migrates {
            storage.migrate()?;
        } else {
            storage.check_schema_beside_a_server()?;
        }
        storage.load_nonces(storage.clock.unix_now())?;
        // The leases of a stopped run are the server's to void at its start
        // (`Storage::void_leases_of_a_stopped_run`), not any opener's:
        // administration opens this file beside a running server.
        Ok(storage)
    }

    /// Applies the migrations not yet applied (adopting a count kept in
    /// `PRAGMA user_version` by builds before refinery), then upgrades
    /// templates stored before the provider's template object.
    fn migrate(&self) -> Result<(), StorageError> {
        let connection = &mut *self.lock();
        let runner = migrations::sqlite_runner();
        let has_history: bool = connection
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [migrations::HISTORY],
                |row| row.get(0),
            )
            .map_err(migrations::failed)?;
        let counted: usize = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(migrations::failed)?;
        if !has_history && counted > 0 {
            let applied = migrations::counted_migrations(&runner, counted);
            in_transaction(connection, |db| Box::pin(migrations::adopt(db, applied)))
                .map_err(migrations::in_migration)?;
        }
        runner
            .run(connection)
            .map(drop)
            .map_err(migrations::failed)?;
        in_transaction(connection, |db| Box::pin(migrations::upgrade_templates(db)))
            .map_err(migrations::in_migration)
    }

    /// The file's lock, if this process holds it.
    fn file_lock(&self) -> MutexGuard<'_, Held> {
        self.file_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Beside a running server, which migrated the file at its start: this
    /// build works on it only if it knows the same migrations.
    fn check_schema_beside_a_server(&self) -> Result<(), StorageError> {
        let applied: i64 = self
            .lock()
            .query_row(
                &format!(
                    "SELECT coalesce(max(version), 0) FROM {}",
                    migrations::HISTORY
                ),
                [],
                |row| row.get(0),
            )
            .map_err(migrations::failed)?;
        migrations::same_schema(applied, &migrations::sqlite_runner())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock may leave a transaction open: it
        // is rolled back, so the connection stays usable.
        self.connection.lock().unwrap_or_else(|poisoned| {
            let connection = poisoned.into_inner();
            if !connection.is_autocommit() {
                let _ = connection.execute_batch("ROLLBACK");
            }
            connection
        })
    }

    fn take_rate_slot(
        &self,
        brand_id: &str,
        endpoint: &str,
        per_second: u32,
    ) -> Result<(), Duration> {
        self.limiter
            .check(brand_id, endpoint, per_second, std::time::Instant::now())
    }
}

/// Full disk, I/O errors, a locked or unopenable file are passing
/// conditions (503); anything else is internal (500).
fn classify(error: rusqlite::Error) -> StorageError {
    db_error(error).into()
}

fn db_error(error: rusqlite::Error) -> DbError {
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::OutOfMemory,
        ) => DbError::Unavailable(error.to_string()),
        Some(ErrorCode::ConstraintViolation)
            if matches!(
                error,
                rusqlite::Error::SqliteFailure(ref failure, _)
                    if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            DbError::Unique(error.to_string())
        }
        _ => DbError::Internal(error.to_string()),
    }
}

/// The connection, inside a transaction or not: statements run at once.
pub(super) struct SqliteExec<'c> {
    connection: &'c mut Connection,
}

impl SqliteExec<'_> {
    fn execute_now(&mut self, sql: &str, values: &[Value]) -> Result<u64, DbError> {
        let sql = Dialect::Sqlite.sql(sql);
        #[cfg(test)]
        plans::check(self.connection, &sql, values);
        let mut statement = self.connection.prepare_cached(&sql).map_err(db_error)?;
        let changed = statement
            .execute(rusqlite::params_from_iter(values))
            .map_err(db_error)?;
        Ok(changed as u64)
    }

    fn query_now(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, DbError> {
        let sql = Dialect::Sqlite.sql(sql);
        #[cfg(test)]
        plans::check(self.connection, &sql, values);
        let mut statement = self.connection.prepare_cached(&sql).map_err(db_error)?;
        let columns = statement.column_count();
        let mut rows = statement
            .query(rusqlite::params_from_iter(values))
            .map_err(db_error)?;
        let mut read = Vec::new();
        while let Some(row) = rows.next().map_err(db_error)? {
            let values = (0..columns)
                .map(|index| row.get_ref(index).map(value_of))
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_error)?;
            read.push(Row(values));
        }
        Ok(read)
    }
}

impl Exec for SqliteExec<'_> {
    fn execute<'a>(&'a mut self, sql: &'a str, values: &'a [Value]) -> StatementFuture<'a, u64> {
        Box::pin(std::future::ready(self.execute_now(sql, values)))
    }

    fn query<'a>(&'a mut self, sql: &'a str, values: &'a [Value]) -> StatementFuture<'a, Vec<Row>> {
        Box::pin(std::future::ready(self.query_now(sql, values)))
    }
}

fn value_of(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(number) => Value::Int(number),
        // No column is REAL; a float read is kept as its text.
        ValueRef::Real(number) => Value::Text(number.to_string()),
        ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => Value::Bytes(bytes.to_vec()),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(number) => ToSqlOutput::Borrowed(ValueRef::Integer(*number)),
            Value::Bool(flag) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*flag))),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Bytes(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

#[cfg(test)]
#[path = "tests/plans.rs"]
mod plans;

#[cfg(test)]
mod tests;
