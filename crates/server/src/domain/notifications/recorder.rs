//! The recorder: one task that writes the attempts that ended, in batches.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::ops::repeated::{Repeated, WARN_AT_MOST_EVERY};
use crate::records::{AttemptRecord, DeliveryOutcome};
use crate::state::AppState;

/// What records ended attempts: one task that writes every attempt that
/// ended meanwhile in one transaction. Each comes with the end of the
/// lease it was sent under: a batch that cannot be written (the database
/// down, the disk full) is tried again, with what ends meanwhile, as long
/// as its leases last; an attempt whose lease ran out first is given up
/// and its notification sent again (at least once). Storage writes an
/// attempt only while its notification is under that lease, so a record
/// that comes late never overwrites what a later claim sent.
pub(super) type Recorder = mpsc::Sender<Ended>;

/// How often the recorder writes at most. An attempt that ends after a
/// quiet spell is written at once; under a backlog, one transaction
/// writes what ended over this time (a few dozen attempts) instead of the
/// three or four that end during one commit: each commit writes every
/// index page its rows touch, so on SQLite a delivery cost 13 write calls
/// and 0.4 syncs recorded a few at a time (BENCHMARKS.md "Recording
/// deliveries in batches"). What waits stays leased, so it is not sent
/// again meanwhile; a crash in between sends it again when its lease ends,
/// as any unrecorded delivery (at least once).
const RECORD_EVERY: Duration = Duration::from_millis(20);

/// The first wait before a batch that could not be written is tried
/// again; each failure doubles it, up to [`RECORD_RETRY_MOST`].
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two tries of a batch not written: a database
/// back within a lease (60 s) is written to within this.
const RECORD_RETRY_MOST: Duration = Duration::from_secs(2);

/// An ended attempt: where its notification goes, and the end of the
/// lease it was sent under.
type Ended = (AttemptRecord, DeliveryOutcome, i64);

/// Gives up the attempts whose lease has ended by `now` (their
/// notifications are due again and sent again; a record would no longer be
/// written); how many.
fn give_up_lapsed(batch: &mut Vec<Ended>, now: i64) -> usize {
    let before = batch.len();
    batch.retain(|&(_, _, lease_until)| lease_until > now);
    before - batch.len()
}

/// Starts the recorder: it writes what its senders send and ends once
/// every sender is gone and the last batch is written (or given up).
///
/// `capacity`: how many ended attempts may wait to be received (the
/// notifications the worker holds).
pub(super) fn spawn_recorder(
    state: Arc<AppState>,
    capacity: usize,
) -> (Recorder, tokio::task::JoinHandle<()>) {
    let (recorder, mut ended) = mpsc::channel(capacity);
    let recorded = tokio::spawn(async move {
        let mut batch: Vec<Ended> = Vec::new();
        let mut wait = RECORD_EVERY;
        let mut refused = Repeated::every(WARN_AT_MOST_EVERY);
        loop {
            if batch.is_empty() {
                if ended.recv_many(&mut batch, capacity).await == 0 {
                    return;
                }
            } else {
                // A batch not written yet: what ended meanwhile joins it.
                while let Ok(one) = ended.try_recv() {
                    batch.push(one);
                }
            }
            let started = tokio::time::Instant::now();
            match state.storage.record_deliveries(&batch).await {
                Ok(()) => {
                    refused.log_end("delivery attempts are recorded again");
                    batch.clear();
                    wait = RECORD_EVERY;
                    // Retries may be due, leases are released: look again.
                    state.outbox.wake();
                }
                Err(err) => {
                    let count = batch.len();
                    let given_up = give_up_lapsed(&mut batch, state.clock.unix_now());
                    wait = (wait * 2).clamp(RECORD_RETRY_FIRST, RECORD_RETRY_MOST);
                    if let Some(failed) = refused.happened(std::time::Instant::now()) {
                        tracing::warn!(
                            %err,
                            count,
                            failed,
                            retry_in_ms = wait.as_millis() as u64,
                            "could not record delivery attempts: trying again while their leases last (said at most once a minute while it lasts)"
                        );
                    }
                    if given_up > 0 {
                        tracing::warn!(
                            given_up,
                            "delivery attempts not recorded before their lease ended: their notifications are sent again when due"
                        );
                    }
                }
            }
            tokio::time::sleep_until(started + wait).await;
        }
    });
    (recorder, recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_not_recorded_is_kept_while_its_lease_lasts_and_given_up_when_it_ends() {
        let attempt = |id: &str| AttemptRecord {
            notification_id: id.into(),
            attempt: 1,
            at: String::new(),
            status: Some(204),
            latency_ms: 1,
            error: None,
        };
        let mut batch: Vec<Ended> = [("a", 100), ("b", 160), ("c", 100), ("d", 161)]
            .into_iter()
            .map(|(id, lease_until)| (attempt(id), DeliveryOutcome::Delivered, lease_until))
            .collect();
        assert_eq!(give_up_lapsed(&mut batch, 99), 0);
        assert_eq!(
            give_up_lapsed(&mut batch, 100),
            2,
            "a lease ending now has ended"
        );
        let kept: Vec<(&str, i64)> = batch
            .iter()
            .map(|(a, _, lease)| (a.notification_id.as_str(), *lease))
            .collect();
        assert_eq!(kept, [("b", 160), ("d", 161)]);
    }
}
