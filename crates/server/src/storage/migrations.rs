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
//!
//! Each backend runs its migrations (`SqliteDb::migrate`,
//! `PostgresStorage::migrate`: refinery's runner is per driver, as is
//! finding an old count); the scripts that adopt an old count and upgrade
//! old templates are written here once, over the executor.

use refinery::Runner;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::StorageError;
use super::sql::{Exec, values};

mod sqlite_files {
    refinery::embed_migrations!("migrations/sqlite");
}

mod postgres_files {
    refinery::embed_migrations!("migrations/postgres");
}

/// refinery's table of applied migrations.
pub(super) const HISTORY: &str = "refinery_schema_history";

/// An arbitrary constant naming card-member's migration lock.
pub(super) const MIGRATION_LOCK: i64 = 0x6361_7264_6d65_6d62;

/// The SQLite migrations, as refinery applies them.
pub(super) fn sqlite_runner() -> Runner {
    runner(sqlite_files::migrations::runner())
}

/// The PostgreSQL migrations, as refinery applies them.
pub(super) fn postgres_runner() -> Runner {
    runner(postgres_files::migrations::runner())
}

fn runner(runner: Runner) -> Runner {
    runner.set_abort_missing(true).set_abort_divergent(true)
}

/// What names a failure as a migration's.
const PREFIX: &str = "schema migration: ";

/// A migration's failure.
pub(super) fn failed(error: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(format!("{PREFIX}{error}"))
}

/// A migration script's failure (adopting an old count, upgrading old
/// templates), named as a migration's as refinery's own failures are; its
/// kind is kept (a database that cannot be written stays unavailable).
pub(super) fn in_migration(error: StorageError) -> StorageError {
    match error {
        StorageError::Unavailable(why) if !why.starts_with(PREFIX) => {
            StorageError::Unavailable(format!("{PREFIX}{why}"))
        }
        StorageError::Internal(why) if !why.starts_with(PREFIX) => {
            StorageError::Internal(format!("{PREFIX}{why}"))
        }
        other => other,
    }
}

/// The migrations of `runner` a count from before refinery (`counted`)
/// says were applied: version, name, checksum.
pub(super) fn counted_migrations(runner: &Runner, counted: usize) -> Vec<(i64, String, String)> {
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

/// Whether a database whose newest applied migration is `applied` has the
/// schema `runner` would leave: what administration beside a running
/// server (which migrated it) needs, since it must not migrate it itself.
pub(super) fn same_schema(applied: i64, runner: &Runner) -> Result<(), StorageError> {
    let known = runner
        .get_migrations()
        .iter()
        .map(|migration| i64::from(migration.version()))
        .max()
        .unwrap_or(0);
    if applied == known {
        return Ok(());
    }
    Err(StorageError::Unavailable(format!(
        "{PREFIX}a server is running on this database with schema version {applied}, and this \
         card-member's is version {known}; stop the server (the first to start alone migrates \
         the schema), or run this command with the server's own card-member"
    )))
}

/// Adopts migrations applied before refinery into refinery's history, in
/// the caller's transaction: one script for both backends.
pub(super) async fn adopt(
    db: &mut dyn Exec,
    applied: Vec<(i64, String, String)>,
) -> Result<(), StorageError> {
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
pub(super) async fn upgrade_templates(db: &mut dyn Exec) -> Result<(), StorageError> {
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

#[cfg(test)]
#[path = "tests/migrations.rs"]
mod tests;
