//! Failures injected on purpose (`/simulate/faults`): kept so that a
//! restart keeps them. The server holds the active ones in memory
//! (`state/faults.rs`) and writes here what changes: a fault added,
//! cleared, or fired (its count).

use super::sql::{Row, values};
use super::{Storage, StorageError};

/// One injected failure, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FaultRecord {
    pub(crate) id: i64,
    pub(crate) brand_id: String,
    /// An endpoint's name, a notification's event type, or `*`.
    pub(crate) endpoint: String,
    /// The kind's name (`error`, `delay`, `notify-twice`, …).
    pub(crate) kind: String,
    pub(crate) status: Option<i64>,
    pub(crate) code: Option<String>,
    pub(crate) delay_ms: Option<i64>,
    /// Firings left (`--count`); `None`: no limit.
    pub(crate) remaining: Option<i64>,
    /// Fires on every Nth matching request (`--every`).
    pub(crate) every: Option<i64>,
    /// Firings so far.
    pub(crate) injected: i64,
    pub(crate) created_at: String,
}

fn fault_from_row(row: &Row) -> Result<FaultRecord, StorageError> {
    Ok(FaultRecord {
        id: row.int(0)?,
        brand_id: row.text(1)?,
        endpoint: row.text(2)?,
        kind: row.text(3)?,
        status: row.opt_int(4)?,
        code: row.opt_text(5)?,
        delay_ms: row.opt_int(6)?,
        remaining: row.opt_int(7)?,
        every: row.opt_int(8)?,
        injected: row.int(9)?,
        created_at: row.text(10)?,
    })
}

impl Storage {
    /// Stores a fault (its `id` is given here and returned).
    pub(crate) async fn add_fault(&self, fault: &FaultRecord) -> Result<i64, StorageError> {
        let sql = "INSERT INTO faults (brand_id, endpoint, kind, status, code, delay_ms, \
                   remaining, every, injected, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9) RETURNING id";
        let values = values![
            &fault.brand_id,
            &fault.endpoint,
            &fault.kind,
            fault.status,
            &fault.code,
            fault.delay_ms,
            fault.remaining,
            fault.every,
            &fault.created_at
        ]
        .to_vec();
        self.run(super::Mode::Write, move |db| {
            Box::pin(async move {
                let rows = db.query(sql, &values).await?;
                rows.first()
                    .ok_or_else(|| StorageError::Internal("no id returned".into()))?
                    .int(0)
            })
        })
        .await
    }

    /// Every fault not spent (a `--count` fault whose count reached 0 is
    /// spent), oldest first.
    pub(crate) async fn faults(&self) -> Result<Vec<FaultRecord>, StorageError> {
        let sql = "SELECT id, brand_id, endpoint, kind, status, code, delay_ms, remaining, \
                   every, injected, created_at FROM faults \
                   WHERE remaining IS NULL OR remaining > 0 ORDER BY id";
        self.rows(sql, Vec::new(), fault_from_row).await
    }

    /// Records that a fault fired: one more injected, one fewer remaining.
    pub(crate) async fn fault_fired(&self, id: i64) -> Result<(), StorageError> {
        let sql = "UPDATE faults SET injected = injected + 1, \
                   remaining = CASE WHEN remaining IS NULL THEN NULL ELSE remaining - 1 END \
                   WHERE id = $1";
        self.change(sql, values![id].to_vec()).await.map(drop)
    }

    /// Removes faults: one (`id`), a brand's, or all; how many.
    pub(crate) async fn clear_faults(
        &self,
        brand_id: Option<&str>,
        id: Option<i64>,
    ) -> Result<u64, StorageError> {
        let sql = "DELETE FROM faults WHERE (CAST($1 AS TEXT) IS NULL OR brand_id = $1) \
                   AND (CAST($2 AS BIGINT) IS NULL OR id = $2)";
        self.change(sql, values![brand_id.map(str::to_owned), id].to_vec())
            .await
    }
}
