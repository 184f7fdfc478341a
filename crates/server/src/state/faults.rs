//! Failures injected on purpose, in the API's own terms (`card-member
//! simulate fault`, `/simulate/faults`, the console's faults page), so
//! that a brand's retry, failover, idempotency and notification handling
//! run before the provider fails for real (Stripe's test triggers and
//! Toxiproxy's toxics are the models).
//!
//! A fault belongs to a brand and matches an endpoint by name (or a
//! notification by event type), or `*` for all. It fires on every
//! matching request, on every Nth (`every`), or on the next N (`count`,
//! then it is spent). The active ones are held here, in memory, so that a
//! request pays one atomic load while there are none; storage keeps them
//! across restarts (each instance loads them at start: on a shared
//! PostgreSQL, a fault added through one instance reaches another at its
//! next start). Only with the simulation on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use card_member_protocol::endpoints::ENDPOINTS;
use card_member_protocol::notify::EVENTS;
use serde::Serialize;

use crate::storage::FaultRecord;

/// The longest delay a fault may add (below a notification's lease and
/// the request timeout's default).
pub(crate) const MAX_DELAY_MS: i64 = 25_000;

/// What an injected failure does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FaultKind {
    /// The provider's error answer (status and code), before anything is
    /// applied.
    Error,
    /// The same error answer after the change was committed: the lost
    /// response.
    ErrorAfterCommit,
    /// The answer, `delay_ms` late.
    Delay,
    /// The connection closed with no answer, before anything is applied.
    Drop,
    /// The connection closed with no answer after the change was
    /// committed: the lost response as a client sees it when a connection
    /// breaks (for a read, the same as `drop`).
    DropAfterCommit,
    /// The real answer, its `Wechatpay-Signature` broken.
    BadSignature,
    /// The real answer's status and headers, then half its body, and the
    /// connection closed: an answer cut off on the way (a proxy or a
    /// network failing mid-answer).
    Truncate,
    /// A notification delivered, then delivered again (same `id`).
    NotifyTwice,
    /// A notification held back `delay_ms` (2 s by default) while the
    /// brand's later ones go ahead of it.
    NotifyOutOfOrder,
    /// A notification's every attempt `delay_ms` late.
    NotifyDelay,
}

impl FaultKind {
    /// Every kind, by name.
    pub(crate) const ALL: [FaultKind; 10] = [
        FaultKind::Error,
        FaultKind::ErrorAfterCommit,
        FaultKind::Delay,
        FaultKind::Drop,
        FaultKind::DropAfterCommit,
        FaultKind::BadSignature,
        FaultKind::Truncate,
        FaultKind::NotifyTwice,
        FaultKind::NotifyOutOfOrder,
        FaultKind::NotifyDelay,
    ];

    /// The kind's name (`error-after-commit`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            FaultKind::Error => "error",
            FaultKind::ErrorAfterCommit => "error-after-commit",
            FaultKind::Delay => "delay",
            FaultKind::Drop => "drop",
            FaultKind::DropAfterCommit => "drop-after-commit",
            FaultKind::BadSignature => "bad-signature",
            FaultKind::Truncate => "truncate",
            FaultKind::NotifyTwice => "notify-twice",
            FaultKind::NotifyOutOfOrder => "notify-out-of-order",
            FaultKind::NotifyDelay => "notify-delay",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Whether it acts on notifications (else on API requests).
    pub(crate) fn is_notification(self) -> bool {
        self.turn() == Turn::Notification
    }

    /// When it is considered.
    pub(crate) fn turn(self) -> Turn {
        match self {
            FaultKind::NotifyTwice | FaultKind::NotifyOutOfOrder | FaultKind::NotifyDelay => {
                Turn::Notification
            }
            FaultKind::ErrorAfterCommit | FaultKind::DropAfterCommit => Turn::AfterCommit,
            FaultKind::Error
            | FaultKind::Delay
            | FaultKind::Drop
            | FaultKind::BadSignature
            | FaultKind::Truncate => Turn::Request,
        }
    }
}

/// When a fault is considered, and so what its `--every` and `--count`
/// count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// As an API request arrives (authenticated).
    Request,
    /// Once an API request's change was committed (a success): a request
    /// refused, which committed nothing, neither fires nor spends it.
    AfterCommit,
    /// As a notification is about to be sent.
    Notification,
}

/// An active fault.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Fault {
    pub(crate) id: i64,
    pub(crate) brand_id: String,
    pub(crate) endpoint: String,
    pub(crate) kind: FaultKind,
    /// The error answer's status and code (error kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) delay_ms: Option<u64>,
    /// Firings left; none: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) remaining: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) every: Option<i64>,
    /// Firings so far.
    pub(crate) injected: i64,
    pub(crate) created_at: String,
}

impl Fault {
    /// A stored fault, if it is one this server knows.
    fn from_record(record: FaultRecord) -> Option<Self> {
        Some(Fault {
            id: record.id,
            kind: FaultKind::parse(&record.kind)?,
            brand_id: record.brand_id,
            endpoint: record.endpoint,
            status: record.status.and_then(|s| u16::try_from(s).ok()),
            code: record.code,
            delay_ms: record.delay_ms.and_then(|d| u64::try_from(d).ok()),
            remaining: record.remaining,
            every: record.every,
            injected: record.injected,
            created_at: record.created_at,
        })
    }

    /// The delay to add.
    pub(crate) fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.unwrap_or(0))
    }
}

/// A fault as asked for (`/simulate/faults`, the console's form).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    pub(crate) brand_id: String,
    /// An endpoint's name, a notification's event type, or `*`.
    pub(crate) endpoint: String,
    pub(crate) kind: String,
    pub(crate) status: Option<u16>,
    pub(crate) code: Option<String>,
    pub(crate) delay_ms: Option<i64>,
    pub(crate) count: Option<i64>,
    pub(crate) every: Option<i64>,
}

/// The provider's code for an error status, where one is usual.
fn usual_code(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "PARAM_ERROR",
        401 => "SIGN_ERROR",
        403 => "NO_AUTH",
        404 => "NOT_FOUND",
        429 => "RATELIMIT_EXCEEDED",
        500 => "SYSTEM_ERROR",
        502 | 503 => "SERVICE_UNAVAILABLE",
        _ => return None,
    })
}

impl FaultSpec {
    /// The fault to store, or what is wrong with the spec (naming the
    /// field).
    pub(crate) fn check(&self, created_at: String) -> Result<FaultRecord, String> {
        let kind = FaultKind::parse(&self.kind).ok_or_else(|| {
            let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
            format!("kind: {:?} is none of {}", self.kind, names.join(", "))
        })?;
        let endpoint = self.endpoint.as_str();
        let known = if kind.is_notification() {
            endpoint == "*" || EVENTS.iter().any(|(event, _, _)| *event == endpoint)
        } else {
            endpoint == "*" || ENDPOINTS.iter().any(|e| e.name == endpoint)
        };
        if !known {
            return Err(if kind.is_notification() {
                format!(
                    "endpoint: {endpoint:?} is not a notification's event type ({}) or *",
                    EVENTS.map(|(event, _, _)| event).join(", ")
                )
            } else {
                format!(
                    "endpoint: {endpoint:?} is not an endpoint's name (update_user_card, get_user_card, …) or *"
                )
            });
        }
        let error = matches!(kind, FaultKind::Error | FaultKind::ErrorAfterCommit);
        let (status, code) = if error {
            let status = self.status.unwrap_or(500);
            if !(400..=599).contains(&status) {
                return Err(format!(
                    "status: {status} is not an error status (400 to 599)"
                ));
            }
            let code = match (&self.code, usual_code(status)) {
                (Some(code), _) => code.clone(),
                (None, Some(code)) => code.to_owned(),
                (None, None) => return Err(format!("code: status {status} needs a code")),
            };
            let word = !code.is_empty()
                && code.len() <= 64
                && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
            if !word {
                return Err(format!("code: {code:?} is not an error code (A-Z and _)"));
            }
            (Some(i64::from(status)), Some(code))
        } else if self.status.is_some() || self.code.is_some() {
            return Err(format!(
                "status: only error and error-after-commit answer a status, not {}",
                kind.name()
            ));
        } else {
            (None, None)
        };
        let delay_ms = match (kind, self.delay_ms) {
            (FaultKind::Delay | FaultKind::NotifyDelay, None) => {
                return Err(format!("delay_ms: {} needs one", kind.name()));
            }
            (FaultKind::NotifyOutOfOrder, None) => Some(2_000),
            (FaultKind::Delay | FaultKind::NotifyDelay | FaultKind::NotifyOutOfOrder, Some(ms)) => {
                if !(1..=MAX_DELAY_MS).contains(&ms) {
                    return Err(format!("delay_ms: {ms} is not 1 to {MAX_DELAY_MS}"));
                }
                Some(ms)
            }
            (_, Some(_)) => {
                return Err(format!("delay_ms: {} takes no delay", kind.name()));
            }
            (_, None) => None,
        };
        for (name, value) in [("count", self.count), ("every", self.every)] {
            if value.is_some_and(|n| !(1..=1_000_000).contains(&n)) {
                return Err(format!("{name}: must be 1 to 1000000"));
            }
        }
        if self.count.is_some() && self.every.is_some() {
            return Err("count: give count or every, not both".into());
        }
        Ok(FaultRecord {
            id: 0,
            brand_id: self.brand_id.clone(),
            endpoint: endpoint.to_owned(),
            kind: kind.name().to_owned(),
            status,
            code,
            delay_ms,
            remaining: self.count,
            every: self.every,
            injected: 0,
            created_at,
        })
    }
}

#[derive(Debug)]
struct Active {
    fault: Fault,
    /// Matching requests seen, for `every`.
    seen: i64,
}

/// The active faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    any: AtomicBool,
    active: Mutex<Vec<Active>>,
}

impl Faults {
    /// The stored faults, active at start.
    pub(crate) fn load(records: Vec<FaultRecord>) -> Self {
        let faults = Faults::default();
        for record in records {
            if let Some(fault) = Fault::from_record(record) {
                faults.add(fault);
            }
        }
        faults
    }

    /// Whether any fault is active (one atomic load).
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    fn active(&self) -> MutexGuard<'_, Vec<Active>> {
        self.active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Activates a stored fault.
    pub(crate) fn add_record(&self, record: FaultRecord) {
        if let Some(fault) = Fault::from_record(record) {
            self.add(fault);
        }
    }

    fn add(&self, fault: Fault) {
        let mut active = self.active();
        active.push(Active { fault, seen: 0 });
        self.any.store(true, Ordering::Release);
    }

    /// Removes faults: one (`id`), a brand's, or all.
    pub(crate) fn clear(&self, brand_id: Option<&str>, id: Option<i64>) {
        let mut active = self.active();
        active.retain(|a| {
            !(brand_id.is_none_or(|b| a.fault.brand_id == b) && id.is_none_or(|i| a.fault.id == i))
        });
        self.any.store(!active.is_empty(), Ordering::Release);
    }

    /// The active faults, oldest first.
    pub(crate) fn list(&self) -> Vec<Fault> {
        self.active().iter().map(|a| a.fault.clone()).collect()
    }

    /// The fault that fires for a request of `brand_id` to `target` (an
    /// endpoint's name, or a notification's event type) at `turn`, if one
    /// does: the oldest matching one whose turn it is. A fault whose count
    /// runs out is removed.
    pub(crate) fn fire(&self, brand_id: &str, target: &str, turn: Turn) -> Option<Fault> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut active = self.active();
        let mut fired = None;
        for (index, a) in active.iter_mut().enumerate() {
            let fault = &mut a.fault;
            let matches = fault.brand_id == brand_id
                && (fault.endpoint == "*" || fault.endpoint == target)
                && fault.kind.turn() == turn;
            if !matches {
                continue;
            }
            a.seen += 1;
            if fault.every.is_some_and(|every| a.seen % every != 0) {
                continue;
            }
            fault.injected += 1;
            if let Some(remaining) = &mut fault.remaining {
                *remaining -= 1;
            }
            fired = Some((index, fault.clone()));
            break;
        }
        let (index, fault) = fired?;
        if fault.remaining == Some(0) {
            active.remove(index);
            self.any.store(!active.is_empty(), Ordering::Release);
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str) -> FaultSpec {
        FaultSpec {
            brand_id: "1001".into(),
            endpoint: "update_user_card".into(),
            kind: kind.into(),
            ..FaultSpec::default()
        }
    }

    fn active(spec: &FaultSpec, id: i64) -> Faults {
        let faults = Faults::default();
        let mut record = spec.check("t".into()).unwrap();
        record.id = id;
        faults.add_record(record);
        faults
    }

    #[test]
    fn an_error_fault_defaults_to_500_system_error_and_takes_the_usual_code_of_its_status() {
        let record = spec("error").check("t".into()).unwrap();
        assert_eq!(
            (record.status, record.code.as_deref()),
            (Some(500), Some("SYSTEM_ERROR"))
        );
        let mut limited = spec("error");
        limited.status = Some(429);
        let record = limited.check("t".into()).unwrap();
        assert_eq!(record.code.as_deref(), Some("RATELIMIT_EXCEEDED"));
        limited.code = Some("FREQUENCY_LIMITED".into());
        let record = limited.check("t".into()).unwrap();
        assert_eq!(record.code.as_deref(), Some("FREQUENCY_LIMITED"));
    }

    #[test]
    fn a_bad_spec_is_refused_naming_its_field() {
        let cases: [(FaultSpec, &str); 8] = [
            (spec("explode"), "kind:"),
            (
                FaultSpec {
                    endpoint: "nope".into(),
                    ..spec("error")
                },
                "endpoint:",
            ),
            (
                FaultSpec {
                    endpoint: "update_user_card".into(),
                    ..spec("notify-twice")
                },
                "endpoint:",
            ),
            (
                FaultSpec {
                    status: Some(200),
                    ..spec("error")
                },
                "status:",
            ),
            (
                FaultSpec {
                    status: Some(418),
                    ..spec("error")
                },
                "code:",
            ),
            (spec("delay"), "delay_ms:"),
            (
                FaultSpec {
                    delay_ms: Some(999_999),
                    ..spec("delay")
                },
                "delay_ms:",
            ),
            (
                FaultSpec {
                    count: Some(1),
                    every: Some(2),
                    ..spec("drop")
                },
                "count:",
            ),
        ];
        for (spec, field) in cases {
            let error = spec.check("t".into()).unwrap_err();
            assert!(error.starts_with(field), "{error}");
        }
    }

    #[test]
    fn a_counted_fault_fires_that_many_times_then_is_spent() {
        let faults = active(
            &FaultSpec {
                count: Some(2),
                ..spec("error")
            },
            1,
        );
        assert!(
            faults
                .fire("1001", "update_user_card", Turn::Request)
                .is_some()
        );
        assert!(
            faults
                .fire("1002", "update_user_card", Turn::Request)
                .is_none(),
            "another brand"
        );
        assert!(
            faults
                .fire("1001", "get_user_card", Turn::Request)
                .is_none(),
            "another endpoint"
        );
        assert!(
            faults
                .fire("1001", "update_user_card", Turn::Notification)
                .is_none(),
            "not a notification"
        );
        assert_eq!(
            faults
                .fire("1001", "update_user_card", Turn::Request)
                .unwrap()
                .remaining,
            Some(0)
        );
        assert!(
            faults
                .fire("1001", "update_user_card", Turn::Request)
                .is_none(),
            "spent"
        );
        assert!(faults.list().is_empty());
    }

    #[test]
    fn an_after_commit_fault_is_considered_only_after_a_commit() {
        let faults = active(
            &FaultSpec {
                count: Some(1),
                ..spec("drop-after-commit")
            },
            1,
        );
        assert!(
            faults
                .fire("1001", "update_user_card", Turn::Request)
                .is_none(),
            "not as the request arrives"
        );
        assert_eq!(faults.list()[0].injected, 0, "nor spent then");
        let fired = faults
            .fire("1001", "update_user_card", Turn::AfterCommit)
            .unwrap();
        assert_eq!(fired.kind, FaultKind::DropAfterCommit);
        assert!(faults.list().is_empty(), "spent");
    }

    #[test]
    fn an_every_fault_fires_on_every_nth_matching_request_until_cleared() {
        let faults = active(
            &FaultSpec {
                every: Some(3),
                endpoint: "*".into(),
                ..spec("drop")
            },
            7,
        );
        let fired: Vec<bool> = (0..6)
            .map(|_| faults.fire("1001", "get_card", Turn::Request).is_some())
            .collect();
        assert_eq!(fired, [false, false, true, false, false, true]);
        faults.clear(Some("1001"), Some(7));
        assert!(faults.fire("1001", "get_card", Turn::Request).is_none());
    }
}
