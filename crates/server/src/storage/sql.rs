//! One way to run a statement on either backend, so that each query and
//! each transaction script is written once (`brands.rs`, `cards.rs`,
//! `user_cards.rs`, `membership.rs`, `outbox.rs`).
//!
//! SQL is written in PostgreSQL's form, placeholders `$1`, `$2`, … and
//! standard SQL both databases speak (`ON CONFLICT … DO NOTHING`,
//! `… DO UPDATE SET x = excluded.x`, `RETURNING`, `CAST(… AS TEXT)`), with
//! a few words where the two really differ, which [`Dialect::sql`] fills in:
//!
//! | word | SQLite | PostgreSQL | why |
//! |---|---|---|---|
//! | `#seq` | `rowid` | `seq` | insertion order (SQLite's rowid; a `BIGSERIAL` on PostgreSQL) |
//! | `#lock` | (nothing) | `FOR UPDATE` | a row read to be changed: SQLite's write transaction is `IMMEDIATE`, one writer at a time |
//! | `#share` | (nothing) | `FOR SHARE` | a row that must not change under the transaction |
//! | `#skip_locked` | (nothing) | `FOR UPDATE SKIP LOCKED` | instances claim disjoint outbox rows |
//! | `#outbox_order` | `rowid DESC` | `create_time DESC, id DESC` | the outbox has no `seq` on PostgreSQL |
//! | `#outbox_brand_order` | `create_time DESC, rowid DESC` | `create_time DESC, id DESC` | a brand's newest in the order of its index, `outbox_by_brand` |
//! | `#broad` | `+` | (nothing) | keeps SQLite's planner off an index that narrows little |
//! | `#json_elements` | `json_each` | `jsonb_array_elements` | the rows of a JSON array bound as one value (a batch in one statement); each is `value` |
//! | `#jsonb` | `TEXT` | `jsonb` | that value's type |
//!
//! Values are one small enum, [`Value`], bound and read through each
//! driver's own traits (on PostgreSQL it adapts to the column's integer
//! width, so `INTEGER` and `BIGINT` columns both take an `i64`).
//!
//! **Why hand-written.** A query builder (`sea-query`, with binders for
//! rusqlite and tokio-postgres) would write the same statements through a
//! Rust DSL and add its dependency tree to every build; an ORM (Diesel, as
//! vaultwarden uses) would replace both drivers. Nine words and a value
//! enum are all the difference between our two dialects needs, and the
//! statements stay readable SQL that the query-plan tests can `EXPLAIN`.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use super::StorageError;

/// A statement's future; SQLite's are ready at once.
pub(crate) type StatementFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, DbError>> + Send + 'a>>;

/// A value bound to a statement or read from a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<&String> for Value {
    fn from(text: &String) -> Self {
        Value::Text(text.clone())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<i64> for Value {
    fn from(number: i64) -> Self {
        Value::Int(number)
    }
}

impl From<&i64> for Value {
    fn from(number: &i64) -> Self {
        Value::Int(*number)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Bool(flag)
    }
}

impl From<&[u8]> for Value {
    fn from(bytes: &[u8]) -> Self {
        Value::Bytes(bytes.to_vec())
    }
}

impl From<&Vec<u8>> for Value {
    fn from(bytes: &Vec<u8>) -> Self {
        Value::Bytes(bytes.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Value::Bytes(bytes)
    }
}

/// A column that may be NULL: `None` binds NULL.
macro_rules! nullable {
    ($($owned:ty),*) => {$(
        impl From<Option<$owned>> for Value {
            fn from(value: Option<$owned>) -> Self {
                value.map_or(Value::Null, Value::from)
            }
        }

        impl From<&Option<$owned>> for Value {
            fn from(value: &Option<$owned>) -> Self {
                value.as_ref().map_or(Value::Null, Value::from)
            }
        }
    )*};
}

nullable!(String, i64, Vec<u8>);

impl From<Option<&str>> for Value {
    fn from(value: Option<&str>) -> Self {
        value.map_or(Value::Null, Value::from)
    }
}

/// The values of a statement, in placeholder order.
macro_rules! values {
    ($($value:expr),* $(,)?) => {
        &[$($crate::storage::sql::Value::from($value)),*]
    };
}
pub(crate) use values;

/// One row read.
#[derive(Clone, Debug)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    fn at(&self, index: usize) -> Result<&Value, StorageError> {
        self.0
            .get(index)
            .ok_or_else(|| StorageError::Internal(format!("no column {index}")))
    }

    fn mismatch(&self, index: usize, wanted: &str) -> StorageError {
        StorageError::Internal(format!(
            "column {index}: expected {wanted}, found {:?}",
            self.0.get(index)
        ))
    }

    /// A text column.
    pub(crate) fn text(&self, index: usize) -> Result<String, StorageError> {
        match self.at(index)? {
            Value::Text(text) => Ok(text.clone()),
            _ => Err(self.mismatch(index, "text")),
        }
    }

    /// A text column that may be NULL.
    pub(crate) fn opt_text(&self, index: usize) -> Result<Option<String>, StorageError> {
        match self.at(index)? {
            Value::Null => Ok(None),
            _ => self.text(index).map(Some),
        }
    }

    /// An integer column.
    pub(crate) fn int(&self, index: usize) -> Result<i64, StorageError> {
        match self.at(index)? {
            Value::Int(number) => Ok(*number),
            _ => Err(self.mismatch(index, "an integer")),
        }
    }

    /// An integer column that may be NULL.
    pub(crate) fn opt_int(&self, index: usize) -> Result<Option<i64>, StorageError> {
        match self.at(index)? {
            Value::Null => Ok(None),
            _ => self.int(index).map(Some),
        }
    }

    /// A boolean column (an integer 0 or 1 on SQLite).
    pub(crate) fn bool(&self, index: usize) -> Result<bool, StorageError> {
        match self.at(index)? {
            Value::Bool(flag) => Ok(*flag),
            Value::Int(number) => Ok(*number != 0),
            _ => Err(self.mismatch(index, "a boolean")),
        }
    }

    /// A bytes column.
    pub(crate) fn bytes(&self, index: usize) -> Result<Vec<u8>, StorageError> {
        match self.at(index)? {
            Value::Bytes(bytes) => Ok(bytes.clone()),
            _ => Err(self.mismatch(index, "bytes")),
        }
    }

    /// A bytes column that may be NULL.
    pub(crate) fn opt_bytes(&self, index: usize) -> Result<Option<Vec<u8>>, StorageError> {
        match self.at(index)? {
            Value::Null => Ok(None),
            _ => self.bytes(index).map(Some),
        }
    }
}

/// A statement that failed.
#[derive(Debug)]
pub(crate) enum DbError {
    /// A unique or primary key was violated (the caller may know what
    /// that means for its record).
    Unique(String),
    /// The database cannot be reached or written right now.
    Unavailable(String),
    /// Anything else.
    Internal(String),
}

impl From<DbError> for StorageError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unique(why) | DbError::Internal(why) => StorageError::Internal(why),
            DbError::Unavailable(why) => StorageError::Unavailable(why),
        }
    }
}

/// Maps a unique violation to the refusal it means for this statement.
pub(crate) fn unique_means(refusal: StorageError) -> impl FnOnce(DbError) -> StorageError {
    move |error| match error {
        DbError::Unique(_) => refusal,
        other => other.into(),
    }
}

/// The database a statement goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `sql`, written once, in this dialect.
    pub(crate) fn sql(self, sql: &str) -> Cow<'_, str> {
        if !sql.contains('$') && !sql.contains('#') {
            return Cow::Borrowed(sql);
        }
        let words: [(&str, &str); 9] = match self {
            Dialect::Sqlite => [
                ("#seq", "rowid"),
                (" #lock", ""),
                (" #share", ""),
                (" #skip_locked", ""),
                ("#outbox_brand_order", "create_time DESC, rowid DESC"),
                ("#outbox_order", "rowid DESC"),
                ("#broad", "+"),
                ("#json_elements", "json_each"),
                ("#jsonb", "TEXT"),
            ],
            Dialect::Postgres => [
                ("#seq", "seq"),
                ("#lock", "FOR UPDATE"),
                ("#share", "FOR SHARE"),
                ("#skip_locked", "FOR UPDATE SKIP LOCKED"),
                ("#outbox_brand_order", "create_time DESC, id DESC"),
                ("#outbox_order", "create_time DESC, id DESC"),
                ("#broad", ""),
                ("#json_elements", "jsonb_array_elements"),
                ("#jsonb", "jsonb"),
            ],
        };
        let mut text = sql.to_owned();
        for (word, meaning) in words {
            if text.contains(word) {
                text = text.replace(word, meaning);
            }
        }
        if self == Dialect::Sqlite {
            // `?N` binds the N-th value exactly, as `$N` does on PostgreSQL.
            text = text.replace('$', "?");
        }
        Cow::Owned(text)
    }
}

/// A connection or a transaction of either backend.
pub(crate) trait Exec: Send {
    /// Runs a statement; how many rows it changed.
    fn execute<'a>(&'a mut self, sql: &'a str, values: &'a [Value]) -> StatementFuture<'a, u64>;

    /// Runs a query; its rows.
    fn query<'a>(&'a mut self, sql: &'a str, values: &'a [Value]) -> StatementFuture<'a, Vec<Row>>;
}

/// Helpers every script uses.
pub(crate) trait ExecExt: Exec {
    /// At most one row.
    async fn query_opt(&mut self, sql: &str, values: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, values).await?.into_iter().next())
    }

    /// Exactly one row.
    async fn query_one(&mut self, sql: &str, values: &[Value]) -> Result<Row, DbError> {
        self.query_opt(sql, values)
            .await?
            .ok_or_else(|| DbError::Internal("expected a row, found none".to_owned()))
    }
}

impl<E: Exec + ?Sized> ExecExt for E {}

/// A statement meant for one row by its key: `rows` it inserted or
/// changed, none when the row (or its brand) does not exist.
pub(crate) fn one_row(rows: u64) -> Result<(), StorageError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StorageError::NotFound)
    }
}

#[cfg(test)]
#[path = "tests/sql.rs"]
mod tests;
