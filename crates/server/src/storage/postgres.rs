//! PostgreSQL (or a PostgreSQL-compatible distributed database), for
//! several stateless server instances behind one database.
//!
//! Everything instances must share lives here: cards and templates, the
//! audit trail, the nonces seen (a primary key on `(brand_id, nonce)`) and
//! the rate-limit buckets (one row per brand and endpoint, updated in one
//! atomic statement against the database's clock, so instance clocks do not
//! matter). A user-card change locks its row (`SELECT … FOR UPDATE`) for
//! its read-modify-write transaction; an import locks the template row, so
//! two imports for one holder cannot both pass the one-card check.
//!
//! Natively async: `tokio-postgres` on the server's own runtime, with a
//! `deadpool-postgres` pool of at most `database_max_connections`
//! connections per instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use card_member_protocol::TIMESTAMP_WINDOW_SECS;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Statement};

use super::migrations;
use super::sql::{DbError, Dialect, Exec, Row, StatementFuture, Value};
use super::{Mode, Nonce, NonceAdmission, RateSlot, StorageError, Work};

/// PostgreSQL storage: a pool of connections (cheap to clone).
#[derive(Clone)]
pub(crate) struct PostgresStorage {
    pool: Pool,
    /// Nonces written, to sweep expired ones every thousandth time.
    nonce_writes: Arc<AtomicU64>,
}

/// Connection problems, a full disk, timeouts and lock waits are passing
/// (503); anything else is internal (500).
fn classify(error: tokio_postgres::Error) -> StorageError {
    let Some(database) = error.as_db_error() else {
        return StorageError::Unavailable(error.to_string());
    };
    let code = database.code().code();
    let passing = code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || matches!(code, "55P03" | "40001" | "40P01");
    if passing {
        StorageError::Unavailable(error.to_string())
    } else {
        StorageError::Internal(error.to_string())
    }
}

fn db_error(error: tokio_postgres::Error) -> DbError {
    if error
        .as_db_error()
        .is_some_and(|db| db.code().code() == "23505")
    {
        return DbError::Unique(error.to_string());
    }
    match classify(error) {
        StorageError::Unavailable(why) => DbError::Unavailable(why),
        other => DbError::Internal(other.to_string()),
    }
}

impl PostgresStorage {
    /// Connects (checking the database answers) and applies migrations.
    pub(crate) async fn open(url: &str, max_connections: usize) -> Result<Self, StorageError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| StorageError::Internal(format!("invalid database_url: {err}")))?;
        // A request never waits long on a lock or a slow statement: it fails
        // as 503 and the client retries.
        config.options("-c lock_timeout=5000 -c statement_timeout=30000");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|err| StorageError::Internal(format!("cannot build the pool: {err}")))?;
        let storage = Self {
            pool,
            nonce_writes: Arc::new(AtomicU64::new(0)),
        };
        storage.migrate().await?;
        Ok(storage)
    }

    /// A connection from the pool; none within 5 s, or the database not
    /// answering, is a passing condition (503).
    async fn client(&self) -> Result<Object, StorageError> {
        self.pool.get().await.map_err(|err| match err {
            PoolError::Backend(err) => classify(err),
            other => StorageError::Unavailable(format!("no database connection: {other}")),
        })
    }

    /// After a bulk load: the tables vacuumed and their statistics taken
    /// now, not by autovacuum in the middle of what runs next; and, where
    /// the role may, a checkpoint, so that the load's gigabyte of dirty
    /// pages is not written out under the next requests (a role without
    /// the right leaves that to the server's own schedule).
    pub(super) async fn settle(&self) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .batch_execute("VACUUM ANALYZE")
            .await
            .map_err(classify)?;
        if let Err(err) = client.batch_execute("CHECKPOINT").await {
            tracing::info!(%err, "no checkpoint after the bulk load");
        }
        Ok(())
    }

    /// Applies the migrations not yet applied under an advisory lock, so
    /// that instances starting together apply each once.
    async fn migrate(&self) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let lock = migrations::MIGRATION_LOCK;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&lock])
            .await
            .map_err(migrations::failed)?;
        let result = migrate_locked(&mut client).await;
        let unlocked = client
            .execute("SELECT pg_advisory_unlock($1)", &[&lock])
            .await
            .map_err(migrations::failed);
        result.and(unlocked.map(drop))
    }

    /// Runs `work` on a pooled connection: statements on their own, in a
    /// read-only `REPEATABLE READ` transaction (one snapshot), or in a
    /// transaction committed when the script succeeds.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        mode: Mode,
        work: impl Work<T>,
    ) -> Result<T, StorageError> {
        let mut client = self.client().await?;
        if mode == Mode::Read {
            return work(&mut PgExec(&client)).await;
        }
        let builder = client.build_transaction();
        let builder = if mode == Mode::Snapshot {
            builder
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
        } else {
            builder
        };
        let tx = builder.start().await.map_err(classify)?;
        let value = work(&mut PgExec(&tx)).await?;
        tx.commit().await.map_err(classify)?;
        Ok(value)
    }

    /// Admits a nonce with one statement every instance sees and, if it
    /// is new and `rate` is given, takes a slot of the rate-limit bucket of
    /// its brand and endpoint in the same statement: one round trip and one
    /// commit (one sync of the write-ahead log) instead of two each. A
    /// replayed nonce takes no slot, as when they were two statements in
    /// turn.
    ///
    /// The wait of a refused slot is read from the statement's snapshot
    /// (a data-modifying CTE's change is not visible to the rest of its
    /// statement): another instance's slot taken since makes it a few
    /// microseconds short, against a `Retry-After` given in seconds.
    pub(super) async fn admit(
        &self,
        Nonce {
            brand_id,
            nonce,
            signed_at,
        }: Nonce<'_>,
        now: i64,
        rate: Option<RateSlot<'_>>,
    ) -> Result<(NonceAdmission, Result<(), Duration>), StorageError> {
        let expires_at = signed_at + TIMESTAMP_WINDOW_SECS;
        let bucket = rate.map(|rate| format!("{brand_id} {}", rate.endpoint));
        let (interval, tolerance) = gcra(rate.map_or(1, |rate| rate.per_second));
        let pooled = self.client().await?;
        self.sweep_nonces(&pooled, now).await?;
        // Prepared once per connection, as every other statement (a
        // statement given as text is prepared anew: a round trip more). One
        // row lock per bucket: the buckets are exact however many instances
        // share them, and the database's clock is the clock.
        let statement = pooled.prepare_cached(ADMIT).await.map_err(classify)?;
        let values: [&(dyn ToSql + Sync); 7] = [
            &brand_id,
            &nonce,
            &expires_at,
            &now,
            &bucket,
            &interval,
            &tolerance,
        ];
        #[cfg(test)]
        plans::check(&pooled, ADMIT, &values).await;
        let row = pooled
            .query_one(&statement, &values)
            .await
            .map_err(classify)?;
        let (admitted, taken): (bool, bool) = (row.get(0), row.get(1));
        if !admitted {
            return Ok((NonceAdmission::Replayed, Ok(())));
        }
        if taken || bucket.is_none() {
            return Ok((NonceAdmission::Recorded, Ok(())));
        }
        let ahead: Option<i64> = row.get(2);
        Ok((
            NonceAdmission::Recorded,
            Err(wait(ahead.unwrap_or(interval), tolerance)),
        ))
    }

    /// Deletes the expired nonces at every thousandth admission.
    async fn sweep_nonces(&self, pooled: &Object, now: i64) -> Result<(), StorageError> {
        if self.nonce_writes.fetch_add(1, Ordering::Relaxed) % 1000 == 999 {
            let sweep = "DELETE FROM nonces WHERE expires_at < $1";
            #[cfg(test)]
            plans::check(pooled, sweep, &[&now]).await;
            pooled.execute(sweep, &[&now]).await.map_err(classify)?;
        }
        Ok(())
    }
}

/// A request's nonce admitted and, if it is new and a bucket is named
/// (`$5`), a slot of its rate limit taken: [`PostgresStorage::admit`].
const ADMIT: &str = "WITH admitted AS ( \
       INSERT INTO nonces AS n (brand_id, nonce, expires_at) VALUES ($1, $2, $3) \
       ON CONFLICT (brand_id, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at \
       WHERE n.expires_at < $4 RETURNING 1 \
     ), taken AS ( \
       INSERT INTO rate_limits AS r (bucket, tat_micros) \
       SELECT $5, (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT + $6 \
       WHERE EXISTS (SELECT 1 FROM admitted) AND $5::TEXT IS NOT NULL \
       ON CONFLICT (bucket) DO UPDATE \
       SET tat_micros = GREATEST(r.tat_micros, EXCLUDED.tat_micros - $6) + $6 \
       WHERE GREATEST(r.tat_micros, EXCLUDED.tat_micros - $6) - (EXCLUDED.tat_micros - $6) <= $7 \
       RETURNING 1 \
     ) \
     SELECT EXISTS (SELECT 1 FROM admitted), EXISTS (SELECT 1 FROM taken), \
       (SELECT tat_micros - (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT \
        FROM rate_limits WHERE bucket = $5)";

/// A bucket of `per_second` requests a second (the same burst), in
/// microseconds: the emission interval and the tolerance (GCRA).
fn gcra(per_second: u32) -> (i64, i64) {
    let per_second = i64::from(per_second.max(1));
    let interval = 1_000_000 / per_second;
    (interval, interval * (per_second - 1))
}

/// How long a refused request waits, its bucket's theoretical arrival time
/// `ahead` microseconds from now.
fn wait(ahead: i64, tolerance: i64) -> Duration {
    Duration::from_micros((ahead - tolerance).max(1) as u64)
}

/// Applies the migrations not yet applied (adopting a count kept in a
/// `card_member_schema` table by builds before refinery), then upgrades
/// templates stored before the provider's template object.
async fn migrate_locked(client: &mut Object) -> Result<(), StorageError> {
    let runner = migrations::postgres_runner();
    let exists = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, to_regclass('card_member_schema') IS NOT NULL",
            &[&migrations::HISTORY],
        )
        .await
        .map_err(migrations::failed)?;
    let (has_history, has_old_count): (bool, bool) = (exists.get(0), exists.get(1));
    if !has_history && has_old_count {
        let tx = client.transaction().await.map_err(migrations::failed)?;
        let counted: i32 = tx
            .query_opt("SELECT version FROM card_member_schema", &[])
            .await
            .map_err(migrations::failed)?
            .map_or(0, |row| row.get(0));
        let applied =
            migrations::counted_migrations(&runner, usize::try_from(counted).unwrap_or(0));
        migrations::adopt(&mut PgExec(&tx), applied)
            .await
            .map_err(migrations::in_migration)?;
        tx.batch_execute("DROP TABLE card_member_schema")
            .await
            .map_err(migrations::failed)?;
        tx.commit().await.map_err(migrations::failed)?;
    }
    let connection: &mut Client = client;
    runner
        .run_async(connection)
        .await
        .map(drop)
        .map_err(migrations::failed)?;
    let tx = client.transaction().await.map_err(migrations::failed)?;
    migrations::upgrade_templates(&mut PgExec(&tx))
        .await
        .map_err(migrations::in_migration)?;
    tx.commit().await.map_err(migrations::failed)
}

/// A pooled connection, or a transaction on one: each statement prepared
/// once per connection (deadpool's statement cache).
struct PgExec<'a, C>(&'a C);

impl<C: GenericClient> PgExec<'_, C> {
    /// The statement in PostgreSQL's words, prepared (once per
    /// connection), and its values as `tokio-postgres` takes them; in tests,
    /// its plan checked with those values.
    async fn prepared<'v>(
        &self,
        sql: &str,
        values: &'v [Value],
    ) -> Result<(Statement, Vec<&'v (dyn ToSql + Sync)>), DbError> {
        let sql = Dialect::Postgres.sql(sql);
        let statement = self.0.prepare_cached(&sql).await.map_err(db_error)?;
        let parameters: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|value| value as &(dyn ToSql + Sync))
            .collect();
        #[cfg(test)]
        plans::check(self.0, &sql, &parameters).await;
        Ok((statement, parameters))
    }
}

impl<C: GenericClient> Exec for PgExec<'_, C> {
    fn execute<'a>(&'a mut self, sql: &'a str, values: &'a [Value]) -> StatementFuture<'a, u64> {
        Box::pin(async move {
            let (statement, parameters) = self.prepared(sql, values).await?;
            self.0
                .execute(&statement, &parameters)
                .await
                .map_err(db_error)
        })
    }

    fn query<'a>(&'a mut self, sql: &'a str, values: &'a [Value]) -> StatementFuture<'a, Vec<Row>> {
        Box::pin(async move {
            let (statement, parameters) = self.prepared(sql, values).await?;
            self.0
                .query(&statement, &parameters)
                .await
                .map_err(db_error)?
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|index| row.try_get::<_, Value>(index))
                        .collect::<Result<Vec<_>, _>>()
                        .map(Row)
                        .map_err(db_error)
                })
                .collect()
        })
    }
}

/// A value bound to whatever the statement's parameter is: an integer to
/// `INTEGER` or `BIGINT` alike (checked), a boolean, text, bytes.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(number) if *ty == Type::INT4 => i32::try_from(*number)?.to_sql(ty, out),
            Value::Int(number) if *ty == Type::INT2 => i16::try_from(*number)?.to_sql(ty, out),
            Value::Int(number) => number.to_sql(ty, out),
            Value::Bool(flag) => flag.to_sql(ty, out),
            // A JSON document (`CAST($n AS #jsonb)`): jsonb's binary form
            // is a version byte, 1, before the text.
            Value::Text(text) if *ty == Type::JSONB => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            Value::Text(text) => text.to_sql(ty, out),
            Value::Bytes(bytes) => bytes.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::BOOL,
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
            Type::UNKNOWN,
            Type::BYTEA,
            Type::JSONB,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

/// A column read as what it holds.
impl<'a> FromSql<'a> for Value {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::BYTEA => Value::Bytes(Vec::<u8>::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        <Value as ToSql>::accepts(ty) || <String as FromSql>::accepts(ty)
    }
}

#[cfg(test)]
#[path = "tests/postgres_plans.rs"]
mod plans;
