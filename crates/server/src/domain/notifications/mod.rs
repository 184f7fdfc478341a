//! Notifications to brands (FAMILY.md "Notifications"): made into the
//! outbox in the same transaction as the change that causes them, then
//! delivered by a worker.
//!
//! **Delivery.** The worker leases due notifications (on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so instances share the outbox without sending
//! one twice at once), and delivers each in its own task: the resource
//! sealed with AES-256-GCM under the brand's APIv3 key, a fresh nonce per
//! attempt, the body signed by the WeChat Pay key like a response, POSTed
//! to the template's `notify_url`. A 2xx within 5 seconds is success;
//! anything else is retried on [`SCHEDULE`] with the same `id`, and after
//! the last try the notification is `FAILED`. Every attempt is recorded
//! (time, status, latency, error) after it ends, with the others that end
//! meanwhile in one transaction, so a crash between the
//! send and the record sends it again: at least once, and the receiver
//! deduplicates by `id`. A record the database refuses (down, disk full)
//! is tried again while the notification's lease lasts, so an outage
//! shorter than a lease sends nothing twice. A success recorded is never sent again. A
//! graceful stop claims nothing more, starts no delivery that waits for a
//! slot, waits (up to a deadline and a little) for the deliveries in
//! flight to end and be recorded, so a restart does not send them again,
//! and hands back what it claimed and did not send, due at once.
//!
//! **Isolation.** Each delivery is its own task with a 5-second deadline;
//! at most [`PER_BRAND`](worker::PER_BRAND) run for one brand and [`IN_FLIGHT`](worker::IN_FLIGHT) in all, and
//! the worker claims only what a brand may hold (`HELD`: its running ones
//! and a few waiting for its slots), brands taken in turn
//! (`Storage::claim_notifications`), and claims again as soon as a
//! delivery ends. So a receiver
//! that hangs, crawls or refuses connections costs its own brand its slots
//! and nobody else anything, a backlog of any length takes no other
//! brand's turn, and a claimed notification never waits for a slot past
//! its lease (which would let it be claimed and sent a second time at
//! once).
//!
//! This room makes the outbox's rows and says what an attempt leads to;
//! [`worker`] claims and delivers them, [`recorder`] writes what each
//! attempt ended with.

use std::time::Duration;

use card_member_protocol::datetime::{CHINA_STANDARD_TIME, format_rfc3339_millis};
use card_member_protocol::notify::EVENTS;
use card_member_protocol::secret::SecretString;
use time::OffsetDateTime;

use crate::crypto::sealing::SealContext;
use crate::records::{DeliveryOutcome, OutboxRecord};
use crate::state::AppState;

mod recorder;
mod worker;

pub(crate) use worker::spawn_worker;

/// Waits after each failed attempt: after the first, 15 s, then 15 s,
/// 30 s, 3 min, 10 min, 20 min, 30 min, 30 min, 30 min, 60 min, 3 h, 3 h,
/// 3 h, 6 h, 6 h; then given up (FAMILY.md's **Decision**: the provider's
/// payment notifications' schedule). 16 attempts in all.
pub(crate) const SCHEDULE: [u64; 15] = [
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
];

/// How long a receiver has to answer.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// Why a notification was not sent again by hand ([`Resent::InFlight`]):
/// it is being sent now, under a lease until `until`, at `now` (Unix
/// seconds).
///
/// [`Resent::InFlight`]: crate::storage::Resent::InFlight
pub(crate) fn being_sent(id: &str, until: i64, now: i64) -> String {
    format!(
        "notification {id} is being sent now (its attempt ends within {} s): it was left as it \
         is, since sending it again meanwhile would send it twice at once; see its attempts \
         then, and send it again if it was not delivered",
        (until - now).max(0)
    )
}

/// The seal context of a notification's resource.
fn seal_context<'a>(brand_id: &'a str, id: &'a str) -> SealContext<'a> {
    SealContext {
        brand_id,
        card_id: "outbox",
        user_card_code: id,
        field: "resource",
    }
}

/// The seal context of a brand's APIv3 key.
pub(crate) fn api_v3_key_context(brand_id: &str) -> SealContext<'_> {
    SealContext {
        brand_id,
        card_id: "brand",
        user_card_code: "",
        field: "api_v3_key",
    }
}

/// A notification ID: 32 hexadecimal digits in UUID form, of version 7
/// (RFC 9562): the milliseconds since 1970 it was made at, then 74 random
/// bits. Time-ordered, so the outbox's and the attempts' indexes on it
/// grow at their end instead of taking a write in a page anywhere in them
/// for each notification made and each attempt recorded (BENCHMARKS.md
/// "Recording deliveries in batches"). It tells when the notification was
/// made, as its `create_time` does anyway.
pub(crate) fn new_id() -> String {
    let mut bytes = crate::crypto::random_bytes::<16>();
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A notification of `event_type` about the card `user_card_code` of the
/// template `card_id`, its plaintext sealed with the data key, due now.
pub(crate) fn new_notification(
    state: &AppState,
    brand_id: &str,
    card_id: &str,
    user_card_code: &str,
    event_type: &str,
    plaintext: String,
    now: OffsetDateTime,
) -> OutboxRecord {
    sealed_notification(
        |context, plaintext| state.crypto.seal(context, plaintext),
        (brand_id, card_id, user_card_code),
        event_type,
        plaintext,
        now,
        state.clock.unix_now(),
    )
}

/// A pending notification as [`new_notification`] makes it, sealed by
/// `seal` and due at `due` (Unix seconds): also what `seed-data
/// --backlog` writes, without a running server's state.
pub(crate) fn sealed_notification(
    seal: impl FnOnce(SealContext<'_>, &SecretString) -> Vec<u8>,
    (brand_id, card_id, user_card_code): (&str, &str, &str),
    event_type: &str,
    plaintext: String,
    now: OffsetDateTime,
    due: i64,
) -> OutboxRecord {
    let (_, original_type, summary) = EVENTS
        .iter()
        .find(|(event, _, _)| *event == event_type)
        .copied()
        .expect("one of the four events");
    let id = new_id();
    let sealed = seal(seal_context(brand_id, &id), &SecretString::from(plaintext));
    OutboxRecord {
        id,
        brand_id: brand_id.to_owned(),
        card_id: card_id.to_owned(),
        user_card_code: user_card_code.to_owned(),
        event_type: event_type.to_owned(),
        original_type: original_type.to_owned(),
        summary: summary.to_owned(),
        sealed_resource: sealed,
        create_time: format_rfc3339_millis(now, CHINA_STANDARD_TIME),
        state: "PENDING".to_owned(),
        attempts: 0,
        next_attempt_at: due,
        last_error: None,
    }
}

/// Where a notification goes after its `attempt`-th try (1 for the
/// first) ended at `now`: delivered, retried after the schedule's wait
/// (divided by `speedup`), or, after the 16th failure, failed.
pub(crate) fn next_outcome(
    succeeded: bool,
    attempt: i64,
    speedup: u64,
    now: i64,
) -> DeliveryOutcome {
    if succeeded {
        return DeliveryOutcome::Delivered;
    }
    match usize::try_from(attempt - 1)
        .ok()
        .and_then(|index| SCHEDULE.get(index))
    {
        Some(wait) => {
            let wait_secs = wait / speedup.max(1);
            DeliveryOutcome::RetryAt(now + i64::try_from(wait_secs).unwrap_or(i64::MAX))
        }
        None => DeliveryOutcome::Failed,
    }
}

/// A brand's APIv3 key, opened with the data key, or why not.
pub(crate) async fn api_v3_key(state: &AppState, brand_id: &str) -> Result<SecretString, String> {
    let brand = state
        .storage
        .brand(brand_id)
        .await
        .map_err(|err| format!("reading the brand: {err}"))?
        .ok_or("the brand no longer exists")?;
    let sealed_key = brand
        .api_v3_key
        .ok_or("the brand has no APIv3 key (card-member brands set-api-v3-key)")?;
    state
        .crypto
        .open(api_v3_key_context(&brand.brand_id), &sealed_key)
        .map_err(|_| "the brand's APIv3 key does not open with this data key".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_ids_are_uuids_of_version_7_ordered_by_when_they_were_made() {
        let first = new_id();
        std::thread::sleep(Duration::from_millis(2));
        let second = new_id();
        for id in [&first, &second] {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
            assert_eq!(&id[14..15], "7", "version 7: {id}");
            assert!("89ab".contains(&id[19..20]), "RFC 9562 variant: {id}");
        }
        assert!(first < second, "{first} is older than {second}");
        assert_ne!(first[15..], second[15..], "random beyond the time");
    }

    #[test]
    fn failures_are_retried_on_the_providers_schedule_and_the_sixteenth_is_final() {
        let now = 1_000;
        let waits: Vec<i64> = (1..=15)
            .map(|attempt| match next_outcome(false, attempt, 1, now) {
                DeliveryOutcome::RetryAt(at) => at - now,
                other => panic!("attempt {attempt}: {other:?}"),
            })
            .collect();
        assert_eq!(
            waits,
            [
                15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600,
                21600
            ]
        );
        assert_eq!(next_outcome(false, 16, 1, now), DeliveryOutcome::Failed);
        assert_eq!(next_outcome(true, 16, 1, now), DeliveryOutcome::Delivered);
        assert_eq!(
            next_outcome(false, 15, 1000, now),
            DeliveryOutcome::RetryAt(now + 21),
            "the speedup divides the waits"
        );
    }
}
