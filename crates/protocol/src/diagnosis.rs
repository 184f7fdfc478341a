//! Why a request's signature or a ciphertext was refused: the known
//! mistakes of clients, tried one by one.
//!
//! A refusal on the wire says only `SIGN_ERROR` or `PARAM_ERROR`. What
//! goes wrong in practice is a short list of mechanical mistakes (the URL
//! signed without its query string, with its parameters in another order
//! or with the scheme and host, a body re-serialised after signing or
//! signed without the line break it ends with, a missing trailing `\n`,
//! SHA-1 instead of SHA-256, another certificate's key, a sensitive field
//! sent unencrypted, a ciphertext made with OAEP-SHA256 or PKCS#1 v1.5 or
//! under another key). Each is tried here as one public-key verification
//! (or, for a ciphertext, one private-key decryption whose plaintext is
//! thrown away unread), the most common first, and the first that matches
//! is named with its fix. The cost of a diagnosis is bounded: at most
//! [`MAX_SIGNATURE_TRIES`] verifications, however many certificates the
//! brand has, and two decryptions.

use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    self, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use crate::auth::{Authorization, string_to_sign};
use crate::encryption::decrypt_field;
use crate::keys::{PrivateKey, PublicKey};

/// The host of the provider's API, which clients copied from its samples
/// put in front of the path they sign.
pub const PROVIDER_HOST: &str = "api.mch.weixin.qq.com";

/// The most signature verifications one diagnosis makes (each one
/// public-key operation, some tens of microseconds).
pub const MAX_SIGNATURE_TRIES: usize = 24;

/// A request as it arrived, with what its `Authorization` claims.
#[derive(Clone, Copy, Debug)]
pub struct ArrivedRequest<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The request target as sent: raw path and `?query`.
    pub target: &'a str,
    /// The `Host` header, if any.
    pub host: Option<&'a str>,
    /// The body's exact bytes.
    pub body: &'a [u8],
    /// The parsed `Authorization` header.
    pub authorization: &'a Authorization,
}

impl ArrivedRequest<'_> {
    /// The message the server verifies: the five lines of
    /// [`string_to_sign`].
    pub fn expected_message(&self) -> Vec<u8> {
        string_to_sign(
            self.method,
            self.target,
            self.authorization.timestamp,
            &self.authorization.nonce_str,
            self.body,
        )
    }
}

/// A mistake that explains a refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// A stable name (`query_not_signed`, `oaep_sha256`, …).
    pub mistake: &'static str,
    /// What happened and how to fix it, in a sentence or two.
    pub advice: String,
}

/// What a diagnosis tried and what it found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// The mistakes tried, by name, in order.
    pub tried: Vec<&'static str>,
    /// The first that matched, if any.
    pub finding: Option<Finding>,
    /// The signature verifications made, at most
    /// [`MAX_SIGNATURE_TRIES`].
    pub verifications: usize,
}

impl Diagnosis {
    fn found(&mut self, mistake: &'static str, advice: String) {
        self.tried.push(mistake);
        self.finding = Some(Finding { mistake, advice });
    }

    /// Tries `mistake` by one verification, `verifies`, unless the budget
    /// is spent (`None`); whether it matched, named with `advice` if so.
    fn try_one(
        &mut self,
        mistake: &'static str,
        advice: impl FnOnce() -> String,
        verifies: impl FnOnce() -> bool,
    ) -> Option<bool> {
        if self.verifications >= MAX_SIGNATURE_TRIES {
            return None;
        }
        self.verifications += 1;
        if !self.tried.contains(&mistake) {
            self.tried.push(mistake);
        }
        let matched = verifies();
        if matched {
            self.finding = Some(Finding {
                mistake,
                advice: advice(),
            });
        }
        Some(matched)
    }
}

/// A signature as the client sent it, decoded, or why it cannot be.
fn decoded_signature(authorization: &Authorization) -> Result<Vec<u8>, String> {
    STANDARD.decode(&authorization.signature).map_err(|_| {
        "the signature is not standard base64 (A–Z a–z 0–9 + /, padded with =): \
         encode the raw RSA signature bytes with standard base64"
            .to_owned()
    })
}

/// Tries the known mistakes of a signature that did not verify under
/// `named` (the key of the certificate `serial_no` names). `others` are
/// the brand's other certificates, by serial.
pub fn signature(
    request: &ArrivedRequest<'_>,
    named: &PublicKey,
    others: &[(&str, &PublicKey)],
) -> Diagnosis {
    let mut diagnosis = Diagnosis::default();
    let raw = match decoded_signature(request.authorization) {
        Ok(raw) => raw,
        Err(advice) => {
            diagnosis.found("signature_not_base64", advice);
            return diagnosis;
        }
    };
    let modulus = named.modulus_len();
    if raw.len() != modulus {
        diagnosis.found(
            "signature_wrong_length",
            format!(
                "the signature is {} bytes, but certificate {}'s {}-bit key makes {modulus}-byte \
                 signatures: it was made with another key",
                raw.len(),
                request.authorization.serial_no,
                modulus * 8
            ),
        );
        return diagnosis;
    }
    let authorization = request.authorization;
    let message = |method: &str, target: &str, body: &[u8]| {
        string_to_sign(
            method,
            target,
            authorization.timestamp,
            &authorization.nonce_str,
            body,
        )
    };
    let mut variants: Vec<(&'static str, Vec<u8>, String)> = Vec::new();
    if let Some((path, query)) = request.target.split_once('?') {
        variants.push((
            "query_not_signed",
            message(request.method, path, request.body),
            format!(
                "you signed `{path}` but requested `{}`: sign the path with its query string, \
                 exactly as sent",
                request.target
            ),
        ));
        for reordered in reorderings(query) {
            let signed = format!("{path}?{reordered}");
            variants.push((
                "query_reordered",
                message(request.method, &signed, request.body),
                format!(
                    "you signed `{signed}` but requested `{}`: the same parameters in another \
                     order (a map that does not keep its order, or a library that sorts \
                     them); sign the query exactly as it goes on the wire",
                    request.target
                ),
            ));
        }
    }
    let mut hosts: Vec<&str> = request.host.into_iter().collect();
    if !hosts.contains(&PROVIDER_HOST) {
        hosts.push(PROVIDER_HOST);
    }
    for host in hosts {
        for scheme in ["https", "http"] {
            let url = format!("{scheme}://{host}{}", request.target);
            variants.push((
                "scheme_and_host_signed",
                message(request.method, &url, request.body),
                format!(
                    "you signed `{url}`: sign only the path and query (`{}`), without the \
                     scheme and host",
                    request.target
                ),
            ));
        }
    }
    let decoded = percent_decoded(request.target);
    if decoded != request.target {
        variants.push((
            "target_decoded",
            message(request.method, &decoded, request.body),
            format!(
                "you signed the decoded target `{decoded}` but sent `{}`: sign the target \
                 exactly as it goes on the wire, percent-encoding kept",
                request.target
            ),
        ));
    }
    let lowercase = request.method.to_ascii_lowercase();
    if lowercase != request.method {
        variants.push((
            "method_not_uppercase",
            message(&lowercase, request.target, request.body),
            format!(
                "you signed the method as `{lowercase}`: sign it in capitals, `{}`",
                request.method
            ),
        ));
    }
    let exact = request.expected_message();
    // For a body that ends with a line break, the same message is the
    // body signed without it: both causes are named.
    let lacking = if request.body.ends_with(b"\n") {
        "your message lacks a `\\n` at its end: the one after the body (every one of the five \
         lines ends in `\\n`), or the line break your body ends with (a file read as it is, a \
         serialiser's last newline) was left out of what you signed: sign the body's exact \
         bytes, then `\\n`"
    } else {
        "your message lacks the `\\n` after the body: every one of the five lines ends in \
         `\\n`, the body's too (an empty body leaves a lone `\\n`)"
    };
    variants.push((
        "no_trailing_newline",
        exact[..exact.len() - 1].to_vec(),
        lacking.to_owned(),
    ));
    if !request.body.is_empty() {
        variants.push((
            "body_not_signed",
            message(request.method, request.target, b""),
            "you signed an empty body but sent one: sign the body's exact bytes".to_owned(),
        ));
        // A body that ends with one `\n` signed without it is the message
        // without its last `\n`: `no_trailing_newline` tried it.
        let trimmed = request.body.trim_ascii_end();
        let (variant, advice) = if trimmed.len() == request.body.len() {
            let with_break = [request.body, b"\n"].concat();
            (
                Some(with_break),
                "you signed the body with a line break at its end that the request does not \
                 carry: sign the body's exact bytes, or send what you signed",
            )
        } else if request.body.len() - trimmed.len() > 1 || !request.body.ends_with(b"\n") {
            (
                Some(trimmed.to_vec()),
                "the body you sent ends with white space or a line break (`\\r\\n`, a file \
                 read as it is, a serialiser's last newline) that you did not sign: sign the \
                 body's exact bytes, or send what you signed",
            )
        } else {
            (None, "")
        };
        if let Some(variant) = variant {
            variants.push((
                "body_line_break_at_end",
                message(request.method, request.target, &variant),
                advice.to_owned(),
            ));
        }
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(request.body) {
            let compact = serde_json::to_vec(&value).unwrap_or_default();
            let pretty = serde_json::to_vec_pretty(&value).unwrap_or_default();
            for (form, bytes) in [("compact", compact), ("indented", pretty)] {
                if bytes != request.body {
                    variants.push((
                        "body_reserialized",
                        message(request.method, request.target, &bytes),
                        format!(
                            "you signed another serialisation of the body (the same JSON, \
                             {form}) than the bytes you sent: serialise once, sign those bytes \
                             and send them unchanged"
                        ),
                    ));
                }
            }
        }
    }
    for (mistake, variant, advice) in variants {
        match diagnosis.try_one(mistake, || advice, || named.verify(&variant, &raw)) {
            Some(false) => {}
            Some(true) | None => return diagnosis,
        }
    }
    let schemes: [(&'static str, &'static signature::RsaParameters, &str); 2] = [
        (
            "sha1_not_sha256",
            &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "you signed with SHA-1 (SHA1withRSA): sign with SHA-256, RSASSA-PKCS1-v1_5 \
             (SHA256withRSA)",
        ),
        (
            "pss_not_pkcs1",
            &RSA_PSS_2048_8192_SHA256,
            "you signed with RSA-PSS: sign with RSASSA-PKCS1-v1_5 and SHA-256 (SHA256withRSA)",
        ),
    ];
    for (mistake, parameters, advice) in schemes {
        let verifies = || {
            UnparsedPublicKey::new(parameters, named.spki_der())
                .verify(&exact, &raw)
                .is_ok()
        };
        match diagnosis.try_one(mistake, || advice.to_owned(), verifies) {
            Some(false) => {}
            Some(true) | None => return diagnosis,
        }
    }
    for (serial, key) in others {
        let advice = || {
            format!(
                "you signed with the key of certificate {serial} but sent serial_no=\"{}\": \
                 send the serial of the certificate whose key signs",
                authorization.serial_no
            )
        };
        match diagnosis.try_one("other_certificate", advice, || key.verify(&exact, &raw)) {
            Some(false) => {}
            Some(true) | None => return diagnosis,
        }
    }
    diagnosis
}

/// The other orders of a query's parameters, for two or three of them
/// (one or five): a client that builds its query from a map signs it in
/// one order and sends it in another.
fn reorderings(query: &str) -> Vec<String> {
    let parameters: Vec<&str> = query.split('&').collect();
    let orders: &[&[usize]] = match parameters.len() {
        2 => &[&[1, 0]],
        3 => &[&[0, 2, 1], &[1, 0, 2], &[1, 2, 0], &[2, 0, 1], &[2, 1, 0]],
        _ => &[],
    };
    orders
        .iter()
        .map(|order| {
            order
                .iter()
                .map(|&index| parameters[index])
                .collect::<Vec<_>>()
                .join("&")
        })
        .filter(|reordered| reordered != query)
        .collect()
}

/// A `serial_no` that is none of the brand's certificates: whose key made
/// the signature, if one of them did.
pub fn unknown_serial(
    request: &ArrivedRequest<'_>,
    certificates: &[(&str, &PublicKey)],
) -> Diagnosis {
    let mut diagnosis = Diagnosis::default();
    let Ok(raw) = decoded_signature(request.authorization) else {
        return diagnosis;
    };
    let exact = request.expected_message();
    for (serial, key) in certificates {
        let advice = || {
            format!(
                "you signed with the key of certificate {serial} but sent serial_no=\"{}\": send \
                 the serial of the certificate whose key signs",
                request.authorization.serial_no
            )
        };
        match diagnosis.try_one("other_certificate", advice, || key.verify(&exact, &raw)) {
            Some(false) => {}
            Some(true) | None => break,
        }
    }
    diagnosis
}

/// Tries the known mistakes of a ciphertext that `key` (the WeChat Pay
/// key whose ID `Wechatpay-Serial` named) did not open. Nothing decrypted
/// is kept or returned: a padding that opens is all it says.
pub fn ciphertext(key: &PrivateKey, key_id: &str, ciphertext: &str) -> Diagnosis {
    let mut diagnosis = Diagnosis::default();
    let modulus = key.oaep().key_size_bytes();
    // Standard base64 of one RSA block: 344 characters for 2048 bits.
    // Fewer than half of that is no ciphertext under a key of half the
    // size (1024 bits) or more: the value was sent as it is, unencrypted.
    // Its length alone is said, never the value.
    let base64_len = modulus.div_ceil(3) * 4;
    let characters = ciphertext.chars().count();
    if characters < base64_len / 2 {
        diagnosis.found(
            "not_encrypted",
            format!(
                "the field holds {characters} characters, where a ciphertext under the {}-bit \
                 WeChat Pay public key {key_id} is {base64_len} characters of base64: it looks \
                 sent as plaintext; encrypt its UTF-8 bytes with RSA-OAEP (SHA-1) under that \
                 key and send the standard base64 of the result",
                modulus * 8
            ),
        );
        return diagnosis;
    }
    let raw = match STANDARD.decode(ciphertext) {
        Ok(raw) => raw,
        Err(_) => {
            let url_safe =
                URL_SAFE.decode(ciphertext).is_ok() || URL_SAFE_NO_PAD.decode(ciphertext).is_ok();
            let advice = if url_safe {
                "the ciphertext is URL-safe base64 (- and _): encode it with standard base64 \
                 (+ and /, padded with =)"
            } else {
                "the ciphertext is not standard base64: encode the raw RSA-OAEP output with \
                 standard base64"
            };
            diagnosis.found("ciphertext_not_base64", advice.to_owned());
            return diagnosis;
        }
    };
    diagnosis.tried.push("ciphertext_wrong_length");
    if raw.len() != modulus {
        diagnosis.finding = Some(Finding {
            mistake: "ciphertext_wrong_length",
            advice: format!(
                "the ciphertext is {} bytes: it was encrypted under a {}-bit key, not the \
                 {}-bit WeChat Pay public key {key_id} that Wechatpay-Serial names",
                raw.len(),
                raw.len() * 8,
                modulus * 8
            ),
        });
        return diagnosis;
    }
    diagnosis.tried.push("oaep_sha1_not_text");
    let mut out = Zeroizing::new(vec![0; key.oaep().min_output_size()]);
    if key
        .oaep()
        .decrypt(&OAEP_SHA1_MGF1SHA1, &raw, &mut out, None)
        .is_ok()
    {
        if decrypt_field(key, ciphertext).is_ok() {
            // It opens and holds text: nothing to blame.
            return diagnosis;
        }
        diagnosis.finding = Some(Finding {
            mistake: "oaep_sha1_not_text",
            advice: "the ciphertext opens, but what it holds is not UTF-8 text of the \
                     characters the API allows (none beyond 3 UTF-8 bytes): encrypt the \
                     field's UTF-8 bytes"
                .to_owned(),
        });
        return diagnosis;
    }
    diagnosis.tried.push("oaep_sha256");
    if key
        .oaep()
        .decrypt(&OAEP_SHA256_MGF1SHA256, &raw, &mut out, None)
        .is_ok()
    {
        diagnosis.finding = Some(Finding {
            mistake: "oaep_sha256",
            advice: "you encrypted with RSA-OAEP SHA-256 (OAEPWithSHA-256AndMGF1Padding): use \
                     RSA-OAEP with SHA-1 for the hash and MGF1 (RSA/ECB/OAEPWithSHA-1AndMGF1Padding)"
                .to_owned(),
        });
        return diagnosis;
    }
    diagnosis.tried.push("pkcs1_v15");
    let pkcs1 = PrivateDecryptingKey::from_pkcs8(key.pkcs8_der())
        .ok()
        .and_then(|key| Pkcs1PrivateDecryptingKey::new(key).ok());
    if let Some(pkcs1) = pkcs1 {
        let mut out = Zeroizing::new(vec![0; pkcs1.min_output_size()]);
        if pkcs1.decrypt(&raw, &mut out).is_ok() {
            diagnosis.finding = Some(Finding {
                mistake: "pkcs1_v15",
                advice: "you encrypted with PKCS#1 v1.5 padding (RSA/ECB/PKCS1Padding): use \
                         RSA-OAEP with SHA-1 (RSA/ECB/OAEPWithSHA-1AndMGF1Padding)"
                    .to_owned(),
            });
            return diagnosis;
        }
    }
    diagnosis.found(
        "other_key",
        format!(
            "the ciphertext does not open under the WeChat Pay private key of {key_id} with \
             any padding: it was encrypted under another public key (your own API \
             certificate's, or another WeChat Pay public key's); encrypt under the key whose \
             ID you send in Wechatpay-Serial"
        ),
    );
    diagnosis
}

/// `%XX` sequences decoded (anything else kept), for the variant of a
/// client that signed the decoded target.
fn percent_decoded(target: &str) -> String {
    let bytes = target.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|byte| (*byte as char).to_digit(16));
        if bytes[index] == b'%'
            && let (Some(high), Some(low)) = (hex(index + 1), hex(index + 2))
        {
            out.push((high * 16 + low) as u8);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| target.to_owned())
}

/// A message as text, each `\n` shown as `\n` and kept as a line break.
pub fn visible_newlines(message: &[u8]) -> String {
    String::from_utf8_lossy(message).replace('\n', "\\n\n")
}

#[cfg(test)]
mod tests;
