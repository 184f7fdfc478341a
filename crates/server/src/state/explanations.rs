//! Why requests were refused for their signature, certificate serial,
//! timestamp, nonce or a ciphertext that did not open: one explanation per
//! refused request, kept by Request-ID for `card-member explain`, the
//! console's request page and the log line at debug level. The answer on
//! the wire stays the provider's.
//!
//! Bounded on every side: on only where the development setup was made
//! (setting `explain`), only for registered brands, at most
//! `explain_per_brand_per_second` explanations per brand per second (each
//! is a fixed list of public-key verifications; a ciphertext's also up to
//! three private-key decryptions), the last [`KEPT`] kept in memory. An
//! explanation never holds a secret or a plaintext: the message it shows
//! is what the client sent, with the values of sensitive fields (which
//! should be ciphertexts) left out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How many explanations are kept.
pub(crate) const KEPT: usize = 500;

/// Brands whose budget is tracked at once (registered brands only; past
/// this, budgets older than a second are forgotten).
const BUDGETS: usize = 10_000;

/// The step of authentication (or of decryption) that refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Step {
    /// The timestamp is 5 minutes or more away.
    Timestamp,
    /// `serial_no` is none of the brand's certificates.
    Certificate,
    /// The signature did not verify.
    Signature,
    /// `Wechatpay-Serial` is not the brand's WeChat Pay public key ID.
    WechatpaySerial,
    /// The nonce was used before.
    Nonce,
    /// A sensitive field did not decrypt.
    Ciphertext,
}

impl Step {
    /// The step as named in explanations.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Step::Timestamp => "timestamp",
            Step::Certificate => "certificate",
            Step::Signature => "signature",
            Step::WechatpaySerial => "wechatpay_serial",
            Step::Nonce => "nonce",
            Step::Ciphertext => "ciphertext",
        }
    }
}

/// Why one request was refused.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Explanation {
    /// The Request-ID (without the error number), set when kept.
    pub(crate) request_id: String,
    pub(crate) brand_id: String,
    /// The method and target as requested.
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) step: Step,
    /// The message the server verified, each `\n` shown as `\n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) verified_message: Option<String>,
    /// The certificate whose key verified (its serial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) serial_no: Option<String>,
    /// That key's fingerprint: the first 20 bytes of the SHA-256 of its
    /// SubjectPublicKeyInfo, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_fingerprint: Option<String>,
    /// The field whose ciphertext did not open (a JSON pointer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<String>,
    /// The known mistakes tried, in order.
    pub(crate) tried: Vec<&'static str>,
    /// The one that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mistake: Option<&'static str>,
    /// What went wrong and what to do, in words.
    pub(crate) diagnosis: String,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, Arc<Explanation>>,
    order: VecDeque<String>,
    /// Per brand: the second's start and the explanations made in it.
    budgets: HashMap<String, (Instant, u32)>,
}

/// The kept explanations and each brand's budget.
#[derive(Debug)]
pub(crate) struct Explanations {
    enabled: bool,
    per_brand_per_second: u32,
    inner: Mutex<Inner>,
}

impl Explanations {
    /// `enabled` from the setting `explain`; `per_brand_per_second` from
    /// `explain_per_brand_per_second`.
    pub(crate) fn new(enabled: bool, per_brand_per_second: u32) -> Self {
        Self {
            enabled,
            per_brand_per_second,
            inner: Mutex::default(),
        }
    }

    /// Whether refusals are explained at all.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes one explanation of `brand_id`'s budget for this second, if
    /// explanations are on and one is left. Call only for a registered
    /// brand.
    pub(crate) fn admit(&self, brand_id: &str) -> bool {
        if !self.enabled {
            return false;
        }
        let mut inner = self.inner();
        if inner.budgets.len() >= BUDGETS {
            inner
                .budgets
                .retain(|_, (start, _)| start.elapsed() < Duration::from_secs(1));
        }
        let budget = inner
            .budgets
            .entry(brand_id.to_owned())
            .or_insert((Instant::now(), 0));
        if budget.0.elapsed() >= Duration::from_secs(1) {
            *budget = (Instant::now(), 0);
        }
        if budget.1 < self.per_brand_per_second {
            budget.1 += 1;
            true
        } else {
            false
        }
    }

    /// Keeps an explanation under its request's ID, forgetting the oldest
    /// past [`KEPT`].
    pub(crate) fn keep(&self, request_id: &str, mut explanation: Explanation) {
        explanation.request_id = request_id.to_owned();
        let mut inner = self.inner();
        if inner.order.len() >= KEPT
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.by_id.remove(&oldest);
        }
        inner.order.push_back(request_id.to_owned());
        inner
            .by_id
            .insert(request_id.to_owned(), Arc::new(explanation));
    }

    /// The latest explanation kept of `brand_id`'s refusals, if any.
    pub(crate) fn latest_of(&self, brand_id: &str) -> Option<Arc<Explanation>> {
        let inner = self.inner();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.by_id.get(id))
            .find(|explanation| explanation.brand_id == brand_id)
            .cloned()
    }

    /// The explanation of a request, by its Request-ID as the response
    /// carried it (`ID-NUMBER`) or without the number.
    pub(crate) fn get(&self, request_id: &str) -> Option<Arc<Explanation>> {
        let id = request_id.split('-').next().unwrap_or_default();
        self.inner().by_id.get(id).cloned()
    }
}

/// A body as an explanation shows it: as sent, but with the value of every
/// sensitive field (`phone_number`, `user_information.common_field_list[]
/// .value`) replaced by its length, and nothing at all when such a value
/// cannot be found in the text to be replaced.
pub(crate) fn shown_body(body: &[u8]) -> Option<String> {
    let mut text = String::from_utf8_lossy(body).into_owned();
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        // Not JSON: nothing sensitive can be told apart, so none of it.
        return body.is_empty().then(String::new);
    };
    let mut sensitive: Vec<&serde_json::Value> = Vec::new();
    sensitive.extend(value.pointer("/phone_number"));
    if let Some(fields) = value
        .pointer("/user_information/common_field_list")
        .and_then(serde_json::Value::as_array)
    {
        sensitive.extend(fields.iter().filter_map(|field| field.get("value")));
    }
    for value in sensitive {
        let quoted = serde_json::to_string(value).unwrap_or_default();
        if !text.contains(&quoted) {
            return None;
        }
        let length = value.as_str().map_or(0, |value| value.chars().count());
        text = text.replace(&quoted, &format!("\"«{length} characters, not shown»\""));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explanation() -> Explanation {
        Explanation {
            request_id: String::new(),
            brand_id: "1001".into(),
            method: "GET".into(),
            target: "/".into(),
            step: Step::Signature,
            verified_message: None,
            serial_no: None,
            key_fingerprint: None,
            field: None,
            tried: vec![],
            mistake: None,
            diagnosis: "d".into(),
        }
    }

    #[test]
    fn a_brand_gets_at_most_its_budget_of_explanations_per_second_and_none_when_off() {
        let explanations = Explanations::new(true, 3);
        let admitted = (0..10).filter(|_| explanations.admit("1001")).count();
        assert_eq!(admitted, 3);
        assert!(
            explanations.admit("1002"),
            "another brand has its own budget"
        );
        assert!(!Explanations::new(false, 3).admit("1001"));
    }

    #[test]
    fn explanations_are_found_by_the_request_id_with_or_without_its_error_number_and_the_oldest_go()
    {
        let explanations = Explanations::new(true, 3);
        for index in 0..=KEPT {
            explanations.keep(&format!("ID{index}"), explanation());
        }
        assert!(
            explanations.get("ID0").is_none(),
            "past KEPT the oldest goes"
        );
        let kept = explanations.get(&format!("ID{KEPT}-1004")).unwrap();
        assert_eq!(kept.request_id, format!("ID{KEPT}"));
    }

    #[test]
    fn a_shown_body_never_holds_a_sensitive_value() {
        let body = br#"{"openid":"o1","phone_number":"c2VjcmV0","user_information":{"common_field_list":[{"name":"USER_NAME","value":"plain name"}]}}"#;
        let shown = shown_body(body).unwrap();
        assert!(shown.contains(r#""openid":"o1""#), "{shown}");
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("plain name"),
            "{shown}"
        );
        assert!(shown.contains("«8 characters, not shown»"), "{shown}");
        let escaped = br#"{"phone_number":"a\u0041"}"#;
        assert_eq!(
            shown_body(escaped),
            None,
            "a value not found as written hides the body"
        );
        assert_eq!(shown_body(b"not json"), None);
    }
}
