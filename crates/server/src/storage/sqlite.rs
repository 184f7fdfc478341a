//! The embedded default: one SQLite file, WAL with `synchronous=FULL`, so a
//! crash or power loss never loses a committed (acknowledged) write. One
//! server process per file, which it holds locked (`server_lock.rs`): nonces,
//! rate-limit buckets and notification leases live in its memory.
//!
//! Writes are committed in groups: a write queues, one committer on a
//! blocking thread runs what has queued in one transaction, each write in
//! a savepoint of its own (a refused write rolls back alone), commits once
//! (one sync of the write-ahead log for the group) and only then answers
//! each. Alone, a write is a group of one; under load, the writes that
//! arrive while a group commits form the next.
//!
//! Nonces are checked in memory and kept durable in the `nonces` table,
//! loaded back at start. An admitted nonce waits in `unsaved_nonces` until
//! the next group's transaction writes it: a change's own (so an update
//! costs no extra commit), or, for a request that changed nothing, the one
//! [`Storage::record_nonce`](super::Storage::record_nonce) joins before the answer leaves. Nothing is
//! answered before its nonce is on disk. Expired rows are deleted at most
//! once a minute, so the table holds the nonces of the requests verified in
//! the last 5 minutes (their timestamp plus the window), and one minute's
//! more at most.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use card_member_protocol::model::ImageType;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, params};

use super::migrations;
use super::rate_limit::RateLimiter;
use super::replay::{ReplayGuard, expiry};
use super::server_lock::{self, Held, Opener};
use super::sql::{DbError, Dialect, Exec, Row, StatementFuture, Value};
use super::{Mode, Nonce, NonceAdmission, Script, StorageError, Work};
use crate::clock::Clock;
use crate::ops::metrics::Metrics;
use crate::records::MediaRecord;

/// How many prepared statements the connection keeps (rusqlite's default
/// is 16). Storage runs about 55 different statements (the storage suite's
/// count, which its plan check holds under this), 30 or more of them in a
/// server taking the API's whole mix with notifications: with 16, every
/// request would evict another's statements, and a statement prepared
/// again costs 7–33 µs of CPU on this schema (an insert into the audit log,
/// a user card read by its key), against 6–11 µs to run it prepared.
pub(super) const STATEMENT_CACHE: usize = 128;

/// How often expired nonces are deleted, in seconds.
const NONCE_PRUNE_INTERVAL_SECS: i64 = 60;

/// A nonce admitted but not yet written: brand, nonce, expiry.
type UnsavedNonce = (String, String, i64);

/// Nonces not yet on disk. One being written is not saved until its
/// transaction commits: a request whose nonce another request's transaction
/// is writing must wait for that commit (it takes the connection) before it
/// answers.
#[derive(Default)]
struct UnsavedNonces {
    waiting: Vec<UnsavedNonce>,
    writing: Vec<UnsavedNonce>,
}

impl UnsavedNonces {
    fn holds(&self, brand_id: &str, nonce: &str) -> bool {
        self.waiting
            .iter()
            .chain(&self.writing)
            .any(|(b, n, _)| b == brand_id && n == nonce)
    }
}

/// The most writes committed in one transaction: a group is what queued
/// while the previous one committed, up to this many.
const MOST_WRITES_A_GROUP: usize = 128;

/// A write queued for a group commit, its result type hidden.
trait GroupedWrite: Send {
    /// Runs the work in the group's transaction; whether it succeeded
    /// (else its savepoint is rolled back).
    fn run(&mut self, exec: &mut SqliteExec<'_>) -> bool;
    /// Answers the caller once the group's commit is known: a failed
    /// commit answers every write of the group with its error (what a
    /// write read may have been another's uncommitted change).
    fn answer(self: Box<Self>, committed: Result<(), StorageError>);
}

struct QueuedWrite<T, W> {
    work: Option<W>,
    result: Option<Result<T, StorageError>>,
    answer: tokio::sync::oneshot::Sender<Result<T, StorageError>>,
}

impl<T: Send + 'static, W: Work<T>> GroupedWrite for QueuedWrite<T, W> {
    fn run(&mut self, exec: &mut SqliteExec<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = finish(work(exec));
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn answer(self: Box<Self>, committed: Result<(), StorageError>) {
        let result = match (committed, self.result) {
            (Err(err), _) => Err(err),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StorageError::Internal(
                "a storage write panicked".to_owned(),
            )),
        };
        // A caller gone (its request abandoned) needs no answer.
        let _ = self.answer.send(result);
    }
}

/// The writes waiting for the next group, and whether a committer runs.
#[derive(Default)]
struct Writes {
    queue: Vec<Box<dyn GroupedWrite>>,
    committing: bool,
}

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

    /// Queues a write for the next group commit, starts a committer if
    /// none runs, and waits for the answer (given once the group's commit
    /// is known: nothing is answered before it is on disk).
    async fn write<T: Send + 'static>(&self, work: impl Work<T>) -> Result<T, StorageError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let start = {
            let mut writes = self.0.writes();
            writes.queue.push(Box::new(QueuedWrite {
                work: Some(work),
                result: None,
                answer,
            }));
            !std::mem::replace(&mut writes.committing, true)
        };
        if start {
            let db = Arc::clone(&self.0);
            tokio::task::spawn_blocking(move || db.commit_writes());
        }
        answered.await.unwrap_or_else(|_| {
            Err(StorageError::Internal(
                "a storage write failed before it was answered".to_owned(),
            ))
        })
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

    /// Writes an image file.
    pub(super) async fn save_image(&self, image: MediaRecord) -> Result<(), StorageError> {
        self.blocking(move |db| db.save_image_file(&image)).await
    }

    /// Reads an image file.
    pub(super) async fn image(
        &self,
        media_id: String,
    ) -> Result<Option<MediaRecord>, StorageError> {
        self.blocking(move |db| db.image_file(&media_id)).await
    }

    /// Admits a nonce in memory; it waits to be written.
    pub(super) fn first_use_of_nonce(
        &self,
        nonce: Nonce<'_>,
        now: i64,
    ) -> Result<NonceAdmission, StorageError> {
        self.0.first_use_of_nonce(nonce, now)
    }

    /// Writes the nonces waiting, with the next group of writes (one
    /// another request's group is writing is saved only once that commits,
    /// so waiting for the next group is waiting long enough).
    pub(super) async fn save_waiting_nonces(&self) -> Result<(), StorageError> {
        self.write(|_| Box::pin(async { Ok(()) })).await
    }

    /// Whether an admitted nonce is on disk.
    pub(super) fn nonce_saved(&self, brand_id: &str, nonce: &str) -> bool {
        self.0.nonce_saved(brand_id, nonce)
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

    /// Fills the in-memory replay index with the nonces still in their
    /// window, so that a restart refuses what the last run accepted.
    fn load_nonces(&self, now: i64) -> Result<(), StorageError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare("SELECT brand_id, nonce, expires_at FROM nonces WHERE expires_at >= ?1")
            .map_err(classify)?;
        let rows = statement
            .query_map([now], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .map_err(classify)?;
        for row in rows {
            let (brand_id, nonce, expires_at) = row.map_err(classify)?;
            self.replay.remember(brand_id, nonce, expires_at);
        }
        Ok(())
    }

    fn unsaved_nonces(&self) -> MutexGuard<'_, UnsavedNonces> {
        self.unsaved_nonces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn writes(&self) -> MutexGuard<'_, Writes> {
        self.writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Commits the queued writes, a group at a time, until none waits
    /// (runs on a blocking thread; one at a time). Under load, the writes
    /// that queue while a group commits share the next group's one
    /// transaction and its one sync of the write-ahead log.
    fn commit_writes(&self) {
        /// Should a group panic outside the writes, the next write starts
        /// a committer again and the writes of the lost group are answered
        /// (their senders dropped: an internal error).
        struct Committing<'a>(&'a SqliteDb);
        impl Drop for Committing<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.writes().committing = false;
                }
            }
        }
        let _committing = Committing(self);
        loop {
            let group: Vec<_> = {
                let mut writes = self.writes();
                if writes.queue.is_empty() {
                    writes.committing = false;
                    return;
                }
                let take = writes.queue.len().min(MOST_WRITES_A_GROUP);
                writes.queue.drain(..take).collect()
            };
            self.commit_group(group);
        }
    }

    /// Runs a group of writes in one IMMEDIATE transaction (the write lock
    /// taken before the first read, so a read-modify-write cannot
    /// interleave with another writer), each in a savepoint of its own
    /// that is rolled back if it fails, then commits once and answers them.
    fn commit_group(&self, mut group: Vec<Box<dyn GroupedWrite>>) {
        let committed = self.write(|exec| {
            for write in &mut group {
                exec.connection
                    .execute_batch("SAVEPOINT grouped")
                    .map_err(classify)?;
                let succeeded =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write.run(exec)))
                        .unwrap_or(false);
                let end = if succeeded {
                    "RELEASE grouped"
                } else {
                    "ROLLBACK TO grouped; RELEASE grouped"
                };
                exec.connection.execute_batch(end).map_err(classify)?;
            }
            Ok(())
        });
        if let (Ok(()), Some(metrics)) = (&committed, self.metrics.get()) {
            metrics.database_commit(group.len());
        }
        for write in group {
            write.answer(match &committed {
                Ok(()) => Ok(()),
                Err(StorageError::Unavailable(why)) => Err(StorageError::Unavailable(why.clone())),
                Err(err) => Err(StorageError::Internal(err.to_string())),
            });
        }
    }

    /// Runs `work` in one IMMEDIATE transaction that also writes every
    /// nonce waiting. If the transaction does not commit, it is rolled
    /// back and the nonces wait for the next one.
    fn write<T>(
        &self,
        work: impl FnOnce(&mut SqliteExec<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut connection = self.lock();
        let nonces = {
            let mut unsaved = self.unsaved_nonces();
            let nonces = std::mem::take(&mut unsaved.waiting);
            unsaved.writing.clone_from(&nonces);
            nonces
        };
        let result = connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(classify)
            .and_then(|()| {
                let value = work(&mut SqliteExec {
                    connection: &mut connection,
                })?;
                self.save_nonces(&connection, &nonces)?;
                connection.execute_batch("COMMIT").map_err(classify)?;
                Ok(value)
            });
        if result.is_err() && !connection.is_autocommit() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        let mut unsaved = self.unsaved_nonces();
        unsaved.writing.clear();
        if result.is_err() {
            unsaved.waiting.extend(nonces);
        }
        result
    }

    fn save_nonces(
        &self,
        connection: &Connection,
        nonces: &[UnsavedNonce],
    ) -> Result<(), StorageError> {
        if !nonces.is_empty() {
            let mut insert = connection
                .prepare_cached(
                    "INSERT OR REPLACE INTO nonces (brand_id, nonce, expires_at) VALUES (?1, ?2, ?3)",
                )
                .map_err(classify)?;
            for (brand_id, nonce, expires_at) in nonces {
                insert
                    .execute(params![brand_id, nonce, expires_at])
                    .map_err(classify)?;
            }
        }
        let now = self.clock.unix_now();
        if now - self.nonces_pruned_at.load(Ordering::Relaxed) >= NONCE_PRUNE_INTERVAL_SECS {
            connection
                .execute("DELETE FROM nonces WHERE expires_at < ?1", [now])
                .map_err(classify)?;
            self.nonces_pruned_at.store(now, Ordering::Relaxed);
        }
        Ok(())
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

    /// Writes the image file (to a temporary name, synced, then renamed and
    /// the directory synced), so an answered upload survives a crash.
    fn save_image_file(&self, image: &MediaRecord) -> Result<(), StorageError> {
        use std::io::Write as _;
        let io = |err: std::io::Error| StorageError::Unavailable(format!("media: {err}"));
        let path = self.media_dir.join(&image.media_id);
        if path.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.media_dir).map_err(io)?;
        let temporary = self.media_dir.join(format!(
            ".{}.{}",
            image.media_id,
            crate::crypto::random_nonce()
        ));
        let written = (|| {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&image.bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            std::fs::File::open(&self.media_dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written.map_err(io)
    }

    fn image_file(&self, media_id: &str) -> Result<Option<MediaRecord>, StorageError> {
        let Some(kind) = media_id
            .rsplit_once('.')
            .and_then(|(_, extension)| ImageType::from_extension(extension))
        else {
            return Ok(None);
        };
        if !media_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.')
        {
            return Ok(None);
        }
        match std::fs::read(self.media_dir.join(media_id)) {
            Ok(bytes) => Ok(Some(MediaRecord {
                media_id: media_id.to_owned(),
                brand_id: String::new(),
                content_type: kind.content_type().to_owned(),
                bytes,
                created_at: String::new(),
            })),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(StorageError::Unavailable(format!("media: {err}"))),
        }
    }

    fn first_use_of_nonce(
        &self,
        nonce: Nonce<'_>,
        now: i64,
    ) -> Result<NonceAdmission, StorageError> {
        let Nonce {
            brand_id,
            nonce,
            signed_at,
        } = nonce;
        if !self.replay.first_use(brand_id, nonce, signed_at, now) {
            return Ok(NonceAdmission::Replayed);
        }
        self.unsaved_nonces().waiting.push((
            brand_id.to_owned(),
            nonce.to_owned(),
            expiry(signed_at),
        ));
        Ok(NonceAdmission::Unsaved)
    }

    /// Admitted nonces are waiting or written: one not waiting is written.
    fn nonce_saved(&self, brand_id: &str, nonce: &str) -> bool {
        !self.unsaved_nonces().holds(brand_id, nonce)
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
#[path = "tests/sqlite.rs"]
mod tests;
