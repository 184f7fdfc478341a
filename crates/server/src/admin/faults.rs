//! Adding and clearing injected failures (what they do:
//! `state/faults.rs`): one way for `/simulate/faults` and the console.

use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};

use crate::state::AppState;
use crate::state::faults::{Fault, FaultKind, FaultSpec};
use crate::storage::StorageError;

/// The kinds of injected failure, by name, as `/simulate/faults` takes
/// them (what `card-member simulate fault add --kind` offers).
pub fn fault_kinds() -> impl Iterator<Item = &'static str> {
    FaultKind::ALL.into_iter().map(FaultKind::name)
}

/// Why a fault was not added.
#[derive(Debug)]
pub(crate) enum NotAdded {
    /// The spec is wrong: the message names the field.
    Refused(String),
    /// Storage failed.
    Storage(StorageError),
}

/// Stores a fault and makes it active at once.
pub(crate) async fn add_fault(state: &AppState, spec: &FaultSpec) -> Result<Fault, NotAdded> {
    let now = format_rfc3339_millis(time::OffsetDateTime::now_utc(), CHINA_STANDARD_TIME);
    let mut record = spec.check(now).map_err(NotAdded::Refused)?;
    if state
        .storage
        .brand(&record.brand_id)
        .await
        .map_err(NotAdded::Storage)?
        .is_none()
    {
        return Err(NotAdded::Refused(format!(
            "brand_id: no brand {:?}",
            record.brand_id
        )));
    }
    record.id = state
        .storage
        .add_fault(&record)
        .await
        .map_err(NotAdded::Storage)?;
    let id = record.id;
    state.faults.add_record(record);
    state
        .faults
        .list()
        .into_iter()
        .find(|fault| fault.id == id)
        .ok_or_else(|| NotAdded::Refused(format!("kind: {:?} is unknown", spec.kind)))
}

/// Clears faults: one (`id`), a brand's, or all; how many.
pub(crate) async fn clear_faults(
    state: &AppState,
    brand_id: Option<&str>,
    id: Option<i64>,
) -> Result<u64, StorageError> {
    let cleared = state.storage.clear_faults(brand_id, id).await?;
    state.faults.clear(brand_id, id);
    Ok(cleared)
}
