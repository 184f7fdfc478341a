//! The explanations of refusals, built at the step that refused (what they
//! are and what bounds them: `state/explanations.rs`). Authentication calls
//! these only for a registered brand whose budget admitted one.

use card_member_protocol::auth::{Authorization, string_to_sign};
use card_member_protocol::diagnosis::{self, ArrivedRequest, Diagnosis, visible_newlines};
use card_member_protocol::keys::PublicKey;

use crate::crypto::Crypto;
use crate::error::UndecryptedField;
use crate::records::{BrandCertificate, BrandRecord};
use crate::state::explanations::{Explanation, Step, shown_body};

/// A request as it arrived.
#[derive(Clone, Copy)]
pub(super) struct Arrived<'a> {
    pub(super) method: &'a str,
    pub(super) target: &'a str,
    pub(super) host: Option<&'a str>,
    pub(super) body: &'a [u8],
    pub(super) authorization: &'a Authorization,
}

impl Arrived<'_> {
    fn request(&self) -> ArrivedRequest<'_> {
        ArrivedRequest {
            method: self.method,
            target: self.target,
            host: self.host,
            body: self.body,
            authorization: self.authorization,
        }
    }

    /// The message the server verified, `\n` made visible, sensitive
    /// values left out.
    fn shown_message(&self) -> String {
        let authorization = self.authorization;
        match shown_body(self.body) {
            Some(body) => visible_newlines(&string_to_sign(
                self.method,
                self.target,
                authorization.timestamp,
                &authorization.nonce_str,
                body.as_bytes(),
            )),
            None => {
                let head = string_to_sign(
                    self.method,
                    self.target,
                    authorization.timestamp,
                    &authorization.nonce_str,
                    b"",
                );
                let mut shown = visible_newlines(&head[..head.len() - 1]);
                shown.push_str("«the body, not shown: it is not JSON or a sensitive value in it could not be left out»\\n\n");
                shown
            }
        }
    }

    fn explanation(&self, step: Step, diagnosis: String) -> Explanation {
        Explanation {
            request_id: String::new(),
            brand_id: self.authorization.brand_id.clone(),
            method: self.method.to_owned(),
            target: self.target.to_owned(),
            step,
            verified_message: None,
            serial_no: None,
            key_fingerprint: None,
            field: None,
            tried: Vec::new(),
            mistake: None,
            diagnosis,
        }
    }
}

/// The message that verified (the signature was fine; a later step
/// refused), with the certificate whose key verified it.
fn with_verified(
    mut explanation: Explanation,
    arrived: &Arrived<'_>,
    certificate: &BrandCertificate,
) -> Explanation {
    explanation.verified_message = Some(arrived.shown_message());
    explanation.serial_no = Some(certificate.serial_no.clone());
    explanation.key_fingerprint = Some(certificate.public_key.derived_serial());
    explanation
}

fn with_diagnosis(mut explanation: Explanation, diagnosis: Diagnosis) -> Explanation {
    explanation.tried = diagnosis.tried;
    if let Some(finding) = diagnosis.finding {
        explanation.mistake = Some(finding.mistake);
        explanation.diagnosis = finding.advice;
    }
    explanation
}

/// The timestamp is 5 minutes or more from the server's clock.
pub(super) fn timestamp(arrived: Arrived<'_>, now: i64) -> Explanation {
    let sent = arrived.authorization.timestamp;
    let mut explanation = arrived.explanation(Step::Timestamp, String::new());
    explanation.tried = vec!["timestamp_in_milliseconds", "clock_off"];
    if sent > 100_000_000_000 {
        explanation.mistake = Some("timestamp_in_milliseconds");
        explanation.diagnosis = format!(
            "timestamp=\"{sent}\" is in milliseconds: send Unix seconds (the server's is {now})"
        );
    } else {
        let gap = sent - now;
        explanation.mistake = Some("clock_off");
        explanation.diagnosis = format!(
            "timestamp=\"{sent}\" is {} s {} the server's clock ({now}); requests must be signed \
             within 300 s of it: set the machine's clock (NTP) and sign each request, retries \
             too, when it is sent",
            gap.unsigned_abs(),
            if gap < 0 { "behind" } else { "ahead of" }
        );
    }
    explanation
}

fn others<'a>(brand: &'a BrandRecord, except: &str) -> Vec<(&'a str, &'a PublicKey)> {
    brand
        .certificates
        .iter()
        .filter(|certificate| certificate.serial_no != except)
        .map(|certificate| (certificate.serial_no.as_str(), &certificate.public_key))
        .collect()
}

/// `serial_no` names none of the brand's certificates.
pub(super) fn certificate(arrived: Arrived<'_>, brand: &BrandRecord) -> Explanation {
    let serials: Vec<&str> = brand
        .certificates
        .iter()
        .map(|certificate| certificate.serial_no.as_str())
        .collect();
    let explanation = arrived.explanation(
        Step::Certificate,
        format!(
            "serial_no=\"{}\" is not a certificate of brand {}; its certificates are {}: send \
             the serial of the certificate whose key signs (`card-member brands show`)",
            arrived.authorization.serial_no,
            brand.brand_id,
            serials.join(", ")
        ),
    );
    let diagnosis = diagnosis::unknown_serial(&arrived.request(), &others(brand, ""));
    with_diagnosis(explanation, diagnosis)
}

/// The signature did not verify under the named certificate's key.
pub(super) fn signature(
    arrived: Arrived<'_>,
    brand: &BrandRecord,
    certificate: &BrandCertificate,
) -> Explanation {
    let diagnosis = diagnosis::signature(
        &arrived.request(),
        &certificate.public_key,
        &others(brand, &certificate.serial_no),
    );
    let fallback = format!(
        "the signature does not verify under certificate {} over the message shown, and none \
         of the {} known mistakes tried explains it: check that the key you sign with is that \
         certificate's and that you sign exactly these five lines",
        certificate.serial_no,
        diagnosis.tried.len()
    );
    let explanation = with_diagnosis(arrived.explanation(Step::Signature, fallback), diagnosis);
    with_verified(explanation, &arrived, certificate)
}

/// `Wechatpay-Serial` is missing or not the brand's WeChat Pay public key
/// ID.
pub(super) fn wechatpay_serial(
    arrived: Arrived<'_>,
    brand: &BrandRecord,
    certificate: &BrandCertificate,
    sent: Option<&str>,
) -> Explanation {
    let expected = &brand.wechatpay_public_key_id;
    let mut explanation = arrived.explanation(Step::WechatpaySerial, String::new());
    explanation.tried = vec!["wechatpay_serial_missing", "certificate_serial_sent"];
    let (mistake, diagnosis) = match sent {
        None => (
            "wechatpay_serial_missing",
            format!(
                "the request has no Wechatpay-Serial header: send this brand's WeChat Pay public \
                 key ID, {expected}"
            ),
        ),
        Some(sent) if brand.certificates.iter().any(|c| c.serial_no == sent) => (
            "certificate_serial_sent",
            format!(
                "Wechatpay-Serial is {sent}, your own API certificate's serial: send the WeChat \
                 Pay public key ID, {expected} (the key you encrypt sensitive fields under)"
            ),
        ),
        Some(sent) => (
            "other_wechatpay_key",
            format!(
                "Wechatpay-Serial is {sent}, but this brand's WeChat Pay public key ID is \
                 {expected}: send that, and encrypt sensitive fields under its key"
            ),
        ),
    };
    explanation.mistake = Some(mistake);
    explanation.diagnosis = diagnosis;
    with_verified(explanation, &arrived, certificate)
}

/// The nonce was used before.
pub(super) fn nonce(arrived: Arrived<'_>, certificate: &BrandCertificate) -> Explanation {
    let mut explanation = arrived.explanation(
        Step::Nonce,
        format!(
            "nonce_str=\"{}\" was already used by brand {} within the last 5 minutes: make a \
             fresh random nonce for every request, and sign a retried request again (a resent \
             Authorization header is a replay)",
            arrived.authorization.nonce_str, arrived.authorization.brand_id
        ),
    );
    explanation.tried = vec!["nonce_reused"];
    explanation.mistake = Some("nonce_reused");
    with_verified(explanation, &arrived, certificate)
}

/// A sensitive field did not decrypt under the server's WeChat Pay key.
pub(super) fn ciphertext(
    crypto: &Crypto,
    brand_id: &str,
    method: &str,
    target: &str,
    field: &UndecryptedField,
) -> Explanation {
    let diagnosis = crypto.diagnose_ciphertext(&field.ciphertext);
    let explanation = Explanation {
        request_id: String::new(),
        brand_id: brand_id.to_owned(),
        method: method.to_owned(),
        target: target.to_owned(),
        step: Step::Ciphertext,
        verified_message: None,
        serial_no: None,
        key_fingerprint: None,
        field: Some(field.pointer.clone()),
        tried: Vec::new(),
        mistake: None,
        diagnosis: format!(
            "{} did not decrypt, and none of the known mistakes explains it",
            field.pointer
        ),
    };
    with_diagnosis(explanation, diagnosis)
}
