//! Looking at notifications and sending them again: what `card-member
//! notifications list|show|resend` do. Works on the database directly, like
//! [`crate::brands`]; a running server's worker sends a resent notification
//! within a second. Never shows a notification's content (it holds personal
//! data): its event, its state and its attempts.

use serde::Serialize;

use super::brands;
use crate::clock::Clock;
use crate::domain::notifications::being_sent;
use crate::error::StartError;
use crate::ops::settings::Settings;
use crate::records::{AttemptRecord, OutboxRecord};
use crate::storage::{NotificationFilter, Resent, StorageError};

/// A notification, without its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// The ID every attempt carries.
    pub id: String,
    /// The brand it goes to.
    pub brand_id: String,
    /// The template whose `notify_url` it goes to.
    pub card_id: String,
    /// The event.
    pub event_type: String,
    /// When the event happened.
    pub create_time: String,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (Unix seconds), while `PENDING`.
    pub next_attempt_at: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// One attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// 1 for the first.
    pub attempt: i64,
    /// When it started.
    pub at: String,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<i64>,
    /// How long it took.
    pub latency_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
}

impl From<OutboxRecord> for Notification {
    fn from(record: OutboxRecord) -> Self {
        Self {
            next_attempt_at: (record.state == "PENDING").then_some(record.next_attempt_at),
            id: record.id,
            brand_id: record.brand_id,
            card_id: record.card_id,
            event_type: record.event_type,
            create_time: record.create_time,
            state: record.state,
            attempts: record.attempts,
            last_error: record.last_error,
        }
    }
}

impl From<AttemptRecord> for Attempt {
    fn from(record: AttemptRecord) -> Self {
        Self {
            attempt: record.attempt,
            at: record.at,
            status: record.status,
            latency_ms: record.latency_ms,
            error: record.error,
        }
    }
}

/// The latest `limit` notifications (of one brand, or all), newest first.
pub fn list(
    settings: &Settings,
    brand_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Notification>, StartError> {
    brands::administer(settings, async |storage| {
        Ok(storage
            .list_notifications(
                &NotificationFilter {
                    brand_id: brand_id.map(str::to_owned),
                    ..NotificationFilter::default()
                },
                limit,
            )
            .await
            .map_err(|err| StartError(err.to_string()))?
            .into_iter()
            .map(Notification::from)
            .collect())
    })
}

/// One notification and its attempts.
pub fn show(settings: &Settings, id: &str) -> Result<(Notification, Vec<Attempt>), StartError> {
    brands::administer(settings, async |storage| {
        let (record, attempts) = storage
            .notification(id)
            .await
            .map_err(|err| StartError(err.to_string()))?
            .ok_or_else(|| StartError(format!("no notification {id}")))?;
        Ok((
            record.into(),
            attempts.into_iter().map(Attempt::from).collect(),
        ))
    })
}

/// Sends a notification again from now, with the same ID, whatever its
/// state (a delivered one too: the receiver deduplicates by ID), unless
/// it is being sent right now (an error that says so).
pub fn resend(settings: &Settings, id: &str) -> Result<(), StartError> {
    brands::administer(settings, async |storage| {
        let now = Clock::default().unix_now();
        match storage.resend_notification(id, now).await {
            Ok(Resent::Due) => Ok(()),
            Ok(Resent::InFlight { until }) => Err(StartError(being_sent(id, until, now))),
            Err(StorageError::NotFound) => Err(StartError(format!("no notification {id}"))),
            Err(other) => Err(StartError(other.to_string())),
        }
    })
}
