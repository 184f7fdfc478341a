//! Schema migrations: versioned SQL files, one folder per backend
//! (`crates/server/migrations/sqlite/`, `…/postgres/`, named
//! `V<n>__<what>.sql`), embedded at build time and applied by refinery,
//! which records each in `refinery_schema_history` with its checksum and
//! refuses a database whose applied migrations this build does not have
//! (a newer schema) or whose files changed since.
//!
//! Data directories made before refinery counted their migrations another
//! way (`PRAGMA user_version` on SQLite, a `card_member_schema` table on
//! PostgreSQL); the first start of this build adopts that count into
//! refinery's history, so an existing data directory keeps working.
//!
//! On PostgreSQL the whole run holds an advisory lock, so that instances
//! starting together apply each migration once.

use refinery::Runner;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::StorageError;

mod sqlite_files {
    refinery::embed_migrations!("migrations/sqlite");
}

mod postgres_files {
    refinery::embed_migrations!("migrations/postgres");
}

/// refinery's table of applied migrations.
const HISTORY: &str = "refinery_schema_history";

/// An arbitrary constant naming card-member's migration lock.
const MIGRATION_LOCK: i64 = 0x6361_7264_6d65_6d62;

fn runner(runner: Runner) -> Runner {
    runner.set_abort_missing(true).set_abort_divergent(true)
}

fn failed(error: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(format!("schema migration: {error}"))
}

/// The history rows recording the first `applied` migrations of `runner`.
fn adopted_rows(runner: &Runner, applied: usize) -> Vec<(i32, String, String, String)> {
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("the current time formats as RFC 3339");
    runner
        .get_migrations()
        .iter()
        .filter(|migration| usize::try_from(migration.version()).is_ok_and(|v| v <= applied))
        .map(|migration| {
            (
                migration.version(),
                migration.name().to_owned(),
                now.clone(),
                migration.checksum().to_string(),
            )
        })
        .collect()
}

/// Applies the SQLite migrations not yet applied.
pub(crate) fn migrate_sqlite(connection: &mut rusqlite::Connection) -> Result<(), StorageError> {
    let runner = runner(sqlite_files::migrations::runner());
    let has_history: bool = connection
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [HISTORY],
            |row| row.get(0),
        )
        .map_err(failed)?;
    let counted: usize = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(failed)?;
    if !has_history && counted > 0 {
        let tx = connection.transaction().map_err(failed)?;
        tx.execute_batch(&format!(
            "CREATE TABLE {HISTORY} (version INT4 PRIMARY KEY, name VARCHAR(255), \
             applied_on VARCHAR(255), checksum VARCHAR(255))"
        ))
        .map_err(failed)?;
        for row in adopted_rows(&runner, counted) {
            tx.execute(
                &format!(
                    "INSERT INTO {HISTORY} (version, name, applied_on, checksum) VALUES (?1, ?2, ?3, ?4)"
                ),
                rusqlite::params![row.0, row.1, row.2, row.3],
            )
            .map_err(failed)?;
        }
        tx.commit().map_err(failed)?;
    }
    runner.run(connection).map(drop).map_err(failed)
}

/// Applies the PostgreSQL migrations not yet applied, under the advisory
/// lock.
pub(crate) async fn migrate_postgres(
    client: &mut tokio_postgres::Client,
) -> Result<(), StorageError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed)?;
    let result = adopt_and_migrate_postgres(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed);
    result.and(unlocked.map(drop))
}

async fn adopt_and_migrate_postgres(
    client: &mut tokio_postgres::Client,
) -> Result<(), StorageError> {
    let runner = runner(postgres_files::migrations::runner());
    let exists = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, to_regclass('card_member_schema') IS NOT NULL",
            &[&HISTORY],
        )
        .await
        .map_err(failed)?;
    let (has_history, has_old_count): (bool, bool) = (exists.get(0), exists.get(1));
    if !has_history && has_old_count {
        let tx = client.transaction().await.map_err(failed)?;
        let counted: i32 = tx
            .query_opt("SELECT version FROM card_member_schema", &[])
            .await
            .map_err(failed)?
            .map_or(0, |row| row.get(0));
        tx.batch_execute(&format!(
            "CREATE TABLE {HISTORY} (version INT4 PRIMARY KEY, name VARCHAR(255), \
             applied_on VARCHAR(255), checksum VARCHAR(255)); DROP TABLE card_member_schema;"
        ))
        .await
        .map_err(failed)?;
        for row in adopted_rows(&runner, usize::try_from(counted).unwrap_or(0)) {
            tx.execute(
                &format!(
                    "INSERT INTO {HISTORY} (version, name, applied_on, checksum) VALUES ($1, $2, $3, $4)"
                ),
                &[&row.0, &row.1, &row.2, &row.3],
            )
            .await
            .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)?;
    }
    runner.run_async(client).await.map(drop).map_err(failed)
}
