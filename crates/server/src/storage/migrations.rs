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

use super::postgres::PgExec;
use super::sql::{Exec, values};
use super::sqlite::SqliteExec;
use super::{Script, StorageError};

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

/// The migrations of `runner` a count from before refinery (`counted`)
/// says were applied: version, name, checksum.
fn counted_migrations(runner: &Runner, counted: usize) -> Vec<(i64, String, String)> {
    runner
        .get_migrations()
        .iter()
        .filter(|migration| usize::try_from(migration.version()).is_ok_and(|v| v <= counted))
        .map(|migration| {
            let version = i64::from(migration.version());
            (
                version,
                migration.name().to_owned(),
                migration.checksum().to_string(),
            )
        })
        .collect()
}

/// Adopts migrations applied before refinery into refinery's history, in
/// the caller's transaction: one script for both backends.
async fn adopt(db: &mut dyn Exec, applied: Vec<(i64, String, String)>) -> Result<(), StorageError> {
    db.execute(
        &format!(
            "CREATE TABLE {HISTORY} (version INT4 PRIMARY KEY, name VARCHAR(255), \
             applied_on VARCHAR(255), checksum VARCHAR(255))"
        ),
        &[],
    )
    .await?;
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("the current time formats as RFC 3339");
    let insert = format!(
        "INSERT INTO {HISTORY} (version, name, applied_on, checksum) VALUES ($1, $2, $3, $4)"
    );
    for (version, name, checksum) in applied {
        db.execute(&insert, values![version, name, now.as_str(), checksum])
            .await?;
    }
    Ok(())
}

/// Rewrites the templates stored before the provider's template object
/// (`state` `EFFECTIVE`/`INVALID`, `user_information_form`), in the
/// caller's transaction: one script for both backends.
async fn upgrade_templates(db: &mut dyn Exec) -> Result<(), StorageError> {
    let old = db
        .query(
            "SELECT brand_id, card_id, body FROM card_templates \
             WHERE state NOT IN ('CARD_EFFECTIVE', 'CARD_INVALID') #lock",
            &[],
        )
        .await?;
    for row in old {
        let (state, body) = upgrade_template(&row.text(2)?)?;
        db.execute(
            "UPDATE card_templates SET state = $1, body = $2 WHERE brand_id = $3 AND card_id = $4",
            values![state, body, row.text(0)?, row.text(1)?],
        )
        .await?;
    }
    Ok(())
}

/// Runs a migration script in one transaction on a SQLite connection
/// (whose statements are answered at once: the script's future is done in
/// one poll).
fn in_sqlite_transaction(
    connection: &mut rusqlite::Connection,
    script: impl FnOnce(&mut dyn Exec) -> Script<'_, ()>,
) -> Result<(), StorageError> {
    connection.execute_batch("BEGIN").map_err(failed)?;
    let done = super::sqlite::finish(script(&mut SqliteExec::on(connection)));
    let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
    connection.execute_batch(end).map_err(failed)?;
    done
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
        let applied = counted_migrations(&runner, counted);
        in_sqlite_transaction(connection, |db| Box::pin(adopt(db, applied)))?;
    }
    runner.run(connection).map(drop).map_err(failed)?;
    in_sqlite_transaction(connection, |db| Box::pin(upgrade_templates(db)))
}

/// A template body stored before card-member followed the provider's
/// template object, as the provider's: its state and its new body.
///
/// - `state` `EFFECTIVE`/`INVALID` becomes `CARD_EFFECTIVE`/`CARD_INVALID`;
/// - `user_information_form` becomes `user_information`, each custom field
///   `{name}` a `CHECK_BOX` with no choices (the old form had none);
/// - `code_type`, which did not exist, is `NONE_CODE` (old templates showed
///   no code); `notify_url`, `card_picture_url` and the form stay absent
///   where they were.
pub(crate) fn upgrade_template(body: &str) -> Result<(String, String), StorageError> {
    use serde_json::{Value, json};
    let mut value: Value = serde_json::from_str(body).map_err(failed)?;
    let Value::Object(map) = &mut value else {
        return Err(failed("a stored template is not a JSON object"));
    };
    let state = match map.get("state").and_then(Value::as_str) {
        Some("EFFECTIVE") => "CARD_EFFECTIVE",
        Some("INVALID") => "CARD_INVALID",
        Some(other) if other.starts_with("CARD_") => other,
        other => return Err(failed(format!("a stored template has state {other:?}"))),
    }
    .to_owned();
    map.insert("state".to_owned(), json!(state));
    map.entry("code_type").or_insert_with(|| json!("NONE_CODE"));
    if let Some(mut form) = map.remove("user_information_form") {
        if let Some(Value::Array(custom)) = form.get_mut("custom_field_list") {
            for field in custom.iter_mut() {
                let name = field.get("name").cloned().unwrap_or(json!(""));
                *field = json!({"type": "CHECK_BOX", "name": name, "values": []});
            }
        }
        map.insert("user_information".to_owned(), form);
    }
    Ok((state, value.to_string()))
}

/// Applies the PostgreSQL migrations not yet applied, under the advisory
/// lock.
pub(crate) async fn migrate_postgres(
    client: &mut deadpool_postgres::Client,
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
    client: &mut deadpool_postgres::Client,
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
        let applied = counted_migrations(&runner, usize::try_from(counted).unwrap_or(0));
        adopt(&mut PgExec::on(&tx), applied).await?;
        tx.batch_execute("DROP TABLE card_member_schema")
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
    let connection: &mut tokio_postgres::Client = client;
    runner
        .run_async(connection)
        .await
        .map(drop)
        .map_err(failed)?;
    let tx = client.transaction().await.map_err(failed)?;
    upgrade_templates(&mut PgExec::on(&tx)).await?;
    tx.commit().await.map_err(failed)
}

#[cfg(test)]
#[path = "tests/migrations.rs"]
mod tests;
