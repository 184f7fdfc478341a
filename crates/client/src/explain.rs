//! Why the sandbox refused a request: `card-member serve` keeps, for each
//! request it refused for its signature, certificate serial, timestamp,
//! nonce or a ciphertext, an explanation by Request-ID (its
//! `GET /explanations/{request_id}`, on in the development setup and for
//! loopback clients only). The real API has nothing like it: what it
//! answers is all there is.
//!
//! An explanation is a diagnostic, not API data: it is not signed, and
//! nothing in it is acted on. It never holds a secret or a plaintext (the
//! server leaves out the values of sensitive fields).

use std::fmt;

use card_member_protocol::endpoints::encode_component;
use serde::{Deserialize, Serialize};

use crate::client::{Client, read_answer, transport_error};
use crate::error::{ApiError, Error};

/// Why the sandbox refused one request, as `card-member explain` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Explanation {
    /// The refused request's Request-ID (without the error number).
    pub request_id: String,
    /// The brand that sent it.
    pub brand_id: String,
    /// Its method.
    pub method: String,
    /// Its target, path and query, as requested.
    pub target: String,
    /// The step that refused it: `timestamp`, `certificate`, `signature`,
    /// `wechatpay_serial`, `nonce` or `ciphertext`.
    pub step: String,
    /// The known mistake that matched (`query_not_signed`,
    /// `other_certificate`, `nonce_reused`, …), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mistake: Option<String>,
    /// What went wrong and what to do, in words.
    pub diagnosis: String,
    /// The field whose ciphertext did not open (a JSON pointer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The certificate whose key verified the signature (its serial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_no: Option<String>,
    /// That key's fingerprint: the first 20 bytes of the SHA-256 of its
    /// SubjectPublicKeyInfo, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// The known mistakes tried, in order.
    #[serde(default)]
    pub tried: Vec<String>,
    /// The message the server verified, each `\n` of it a line break.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_message: Option<String>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Request-ID {}  brand {}", self.request_id, self.brand_id)?;
        writeln!(f, "{} {}", self.method, self.target)?;
        writeln!(f, "refused at: {}", self.step)?;
        let mistake = self.mistake.as_deref().unwrap_or("none of the known ones");
        writeln!(f, "mistake:    {mistake}")?;
        write!(f, "\n{}\n", self.diagnosis)?;
        for (value, label) in [
            (&self.field, "field"),
            (&self.serial_no, "certificate"),
            (&self.key_fingerprint, "key (SHA-256 of its SPKI, 20 bytes)"),
        ] {
            if let Some(value) = value {
                write!(f, "\n{label}: {value}")?;
            }
        }
        write!(f, "\ntried: {}", self.tried.join(", "))?;
        if let Some(message) = &self.verified_message {
            f.write_str("\n\nthe message the server verified (each \\n is a newline it expects):")?;
            for line in message.lines() {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

impl ApiError {
    /// Whether this is a refusal the sandbox explains: a 401 (signature,
    /// certificate serial, timestamp, nonce), a `Wechatpay-Serial` that is
    /// not the WeChat Pay public key's ID, or a sensitive field that could
    /// not be decrypted. Ask the sandbox why with [`Client::explain`] and
    /// this error's `request_id`.
    pub fn is_explained(&self) -> bool {
        let issue = self.detail.as_ref().and_then(|d| d.issue.as_deref());
        self.request_id.is_some()
            && (self.status == 401
                || issue == Some("could not be decrypted")
                || self.message.contains("Wechatpay-Serial"))
    }
}

impl Client {
    /// Asks the sandbox (`card-member serve`, from a loopback address) why
    /// it refused the request with this Request-ID (as the response header
    /// carries it, or without its error number): see
    /// [`ApiError::is_explained`]. Sent once to the base URL, unsigned;
    /// the answer is a diagnostic and is not verified.
    ///
    /// The sandbox answers 404 `NOT_FOUND` when it has no explanation
    /// (the request was refused for something else, or long ago, or by
    /// another instance) and 403 `NO_AUTH` when explanations are off or
    /// the client is not on its machine; the real API, which has none,
    /// answers 404 too.
    pub async fn explain(&self, request_id: &str) -> Result<Explanation, Error> {
        self.explanation(&format!(
            "/explanations/{}",
            encode_component(request_id.trim())
        ))
        .await
    }

    /// Asks the sandbox for the latest explanation it keeps of this
    /// brand's refusals: for a refusal whose Request-ID was not kept (a
    /// log that has only the status). As [`Client::explain`]; 404
    /// `NOT_FOUND` when none is kept.
    pub async fn latest_explanation(&self) -> Result<Explanation, Error> {
        self.explanation(&format!(
            "/explanations?brand_id={}",
            encode_component(&self.inner.brand_id)
        ))
        .await
    }

    async fn explanation(&self, path: &str) -> Result<Explanation, Error> {
        let response = self
            .inner
            .http
            .get(format!("{}{path}", self.inner.base_url))
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(transport_error)?;
        let answer = read_answer(response).await?;
        serde_json::from_slice(&answer.body).map_err(|err| Error::Decode {
            message: format!("the explanation: {err}"),
            request_id: answer.request_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, message: &str, issue: Option<&str>) -> ApiError {
        let detail = issue.map(|issue| {
            serde_json::from_value(serde_json::json!({ "field": "/phone_number", "issue": issue }))
                .unwrap()
        });
        ApiError {
            status,
            code: "X".into(),
            message: message.into(),
            detail,
            request_id: Some("08F78BB5AF0610D302E7A5BA0C1234".into()),
            retry_after: None,
        }
    }

    #[test]
    fn the_sandbox_explains_authentication_serial_and_decryption_refusals_only() {
        assert!(refusal(401, "signature", None).is_explained());
        assert!(refusal(400, "Wechatpay-Serial is not the key's ID", None).is_explained());
        assert!(refusal(400, "bad", Some("could not be decrypted")).is_explained());
        assert!(!refusal(400, "level is too long", Some("too long")).is_explained());
        assert!(!refusal(429, "slow down", None).is_explained());
        let mut without_id = refusal(401, "signature", None);
        without_id.request_id = None;
        assert!(!without_id.is_explained(), "nothing to ask for");
    }

    #[test]
    fn an_explanation_shows_its_step_mistake_diagnosis_and_the_message_verified() {
        let explanation: Explanation = serde_json::from_value(serde_json::json!({
            "request_id": "08F7", "brand_id": "1001", "method": "GET",
            "target": "/v3/x?b=2&a=1", "step": "signature",
            "mistake": "query_reordered", "diagnosis": "Sign the query as sent.",
            "tried": ["query_not_signed", "query_reordered"],
            "verified_message": "GET\n/v3/x?b=2&a=1\n",
        }))
        .unwrap();
        let shown = explanation.to_string();
        assert!(shown.starts_with("Request-ID 08F7  brand 1001\nGET /v3/x?b=2&a=1\n"));
        assert!(shown.contains("refused at: signature\nmistake:    query_reordered\n"));
        assert!(shown.contains("\nSign the query as sent.\n"));
        assert!(shown.contains("tried: query_not_signed, query_reordered"));
        assert!(
            shown.ends_with("expects):\n  GET\n  /v3/x?b=2&a=1"),
            "{shown}"
        );
        assert!(!shown.contains("certificate:"), "no serial, no line");
    }
}
