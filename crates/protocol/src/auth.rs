//! Request authentication, scheme `WECHATPAY-BRAND-SHA256-RSA2048`.
//!
//! The brand signs five lines, each ending in `\n`:
//!
//! ```text
//! PATCH
//! /brand/card-member/user-cards/478515832665
//! 1554208460
//! 593BEC0C930BF1AFEB40B4A08C8FB242
//! {"card_id":"…","openid":"…"}
//! ```
//!
//! with RSASSA-PKCS1-v1_5 SHA-256 under its API certificate key, and sends
//!
//! ```text
//! Authorization: WECHATPAY-BRAND-SHA256-RSA2048 brand_id="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"
//! ```
//!
//! Line 2 is the request target exactly as sent (raw path, percent-encoding
//! kept, plus `?query`); line 5 is the body's exact bytes.

use std::fmt;

use crate::keys::{PrivateKey, PublicKey};
use crate::nonce::is_valid_nonce;

/// The authorization scheme of brand APIs.
pub const SCHEME: &str = "WECHATPAY-BRAND-SHA256-RSA2048";

/// Builds the string to sign: method, request target, timestamp, nonce and
/// body, each followed by `\n`.
pub fn string_to_sign(
    method: &str,
    request_target: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let mut message = Vec::with_capacity(
        method.len() + request_target.len() + timestamp.len() + nonce.len() + body.len() + 5,
    );
    for part in [
        method.as_bytes(),
        request_target.as_bytes(),
        timestamp.as_bytes(),
        nonce.as_bytes(),
        body,
    ] {
        message.extend_from_slice(part);
        message.push(b'\n');
    }
    message
}

/// The parameters of an `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The brand the request is made for.
    pub brand_id: String,
    /// 32 characters of `0-9a-zA-Z`, fresh for every request.
    pub nonce_str: String,
    /// Base64 RSASSA-PKCS1-v1_5 SHA-256 signature of the string to sign.
    pub signature: String,
    /// Unix seconds when the request was signed.
    pub timestamp: i64,
    /// Serial number of the brand API certificate whose key signed.
    pub serial_no: String,
}

impl Authorization {
    /// Signs a request and returns its `Authorization`. One private-key
    /// operation.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        key: &PrivateKey,
        brand_id: &str,
        serial_no: &str,
        method: &str,
        request_target: &str,
        timestamp: i64,
        nonce: &str,
        body: &[u8],
    ) -> Self {
        let message = string_to_sign(method, request_target, timestamp, nonce, body);
        Self {
            brand_id: brand_id.to_owned(),
            nonce_str: nonce.to_owned(),
            signature: key.sign_base64(&message),
            timestamp,
            serial_no: serial_no.to_owned(),
        }
    }

    /// Whether the signature verifies, under `key`, for this request.
    pub fn verify(&self, key: &PublicKey, method: &str, request_target: &str, body: &[u8]) -> bool {
        let message = string_to_sign(
            method,
            request_target,
            self.timestamp,
            &self.nonce_str,
            body,
        );
        key.verify_base64(&message, &self.signature)
    }

    /// The header value, parameters in the spec's order.
    pub fn to_header_value(&self) -> String {
        format!(
            "{SCHEME} brand_id=\"{}\",nonce_str=\"{}\",signature=\"{}\",timestamp=\"{}\",serial_no=\"{}\"",
            self.brand_id, self.nonce_str, self.signature, self.timestamp, self.serial_no
        )
    }

    /// Parses a header value strictly: the scheme, one space, then the five
    /// parameters in any order as `name="value"` joined by `,`, with no
    /// spaces, no duplicates, no other parameters and no empty values.
    pub fn parse(header: &str) -> Result<Self, AuthorizationError> {
        if header.is_empty() {
            return Err(AuthorizationError::Empty);
        }
        let params = header
            .strip_prefix(SCHEME)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or(AuthorizationError::WrongScheme)?;
        if params.is_empty() {
            return Err(AuthorizationError::Missing("brand_id"));
        }
        let mut brand_id = None;
        let mut nonce_str = None;
        let mut signature = None;
        let mut timestamp = None;
        let mut serial_no = None;
        for param in params.split(',') {
            if param.starts_with(char::is_whitespace) || param.ends_with(char::is_whitespace) {
                return Err(AuthorizationError::Whitespace);
            }
            let (name, quoted) = param
                .split_once('=')
                .ok_or(AuthorizationError::NotNameValue)?;
            let value = quoted
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or(AuthorizationError::Unquoted(name_of(name)))?;
            if value.contains('"') {
                return Err(AuthorizationError::Unquoted(name_of(name)));
            }
            if value.is_empty() {
                return Err(AuthorizationError::EmptyValue(name_of(name)));
            }
            if value.chars().any(char::is_whitespace) || name.chars().any(char::is_whitespace) {
                return Err(AuthorizationError::Whitespace);
            }
            let slot = match name {
                "brand_id" => &mut brand_id,
                "nonce_str" => &mut nonce_str,
                "signature" => &mut signature,
                "timestamp" => &mut timestamp,
                "serial_no" => &mut serial_no,
                _ => return Err(AuthorizationError::Unknown(name.to_owned())),
            };
            if slot.replace(value).is_some() {
                return Err(AuthorizationError::Duplicate(name_of(name)));
            }
        }
        let nonce_str = nonce_str.ok_or(AuthorizationError::Missing("nonce_str"))?;
        if !is_valid_nonce(nonce_str) {
            return Err(AuthorizationError::InvalidNonce);
        }
        let timestamp = timestamp.ok_or(AuthorizationError::Missing("timestamp"))?;
        if !timestamp.bytes().all(|b| b.is_ascii_digit()) || timestamp.len() > 18 {
            return Err(AuthorizationError::InvalidTimestamp);
        }
        Ok(Self {
            brand_id: brand_id
                .ok_or(AuthorizationError::Missing("brand_id"))?
                .to_owned(),
            nonce_str: nonce_str.to_owned(),
            signature: signature
                .ok_or(AuthorizationError::Missing("signature"))?
                .to_owned(),
            timestamp: timestamp
                .parse()
                .map_err(|_| AuthorizationError::InvalidTimestamp)?,
            serial_no: serial_no
                .ok_or(AuthorizationError::Missing("serial_no"))?
                .to_owned(),
        })
    }
}

fn name_of(name: &str) -> &'static str {
    match name {
        "brand_id" => "brand_id",
        "nonce_str" => "nonce_str",
        "signature" => "signature",
        "timestamp" => "timestamp",
        "serial_no" => "serial_no",
        _ => "parameter",
    }
}

/// Why an `Authorization` header was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// The header is empty.
    Empty,
    /// The scheme is not `WECHATPAY-BRAND-SHA256-RSA2048` followed by one space.
    WrongScheme,
    /// A parameter is not `name="value"`.
    NotNameValue,
    /// A value is not in double quotes, or contains one.
    Unquoted(&'static str),
    /// A value is empty.
    EmptyValue(&'static str),
    /// White space where none is allowed (between parameters, in a value).
    Whitespace,
    /// A parameter the scheme does not define.
    Unknown(String),
    /// A parameter given twice.
    Duplicate(&'static str),
    /// A required parameter is missing.
    Missing(&'static str),
    /// `nonce_str` is not 32 characters of `0-9a-zA-Z`.
    InvalidNonce,
    /// `timestamp` is not a whole number of seconds.
    InvalidTimestamp,
}

impl fmt::Display for AuthorizationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthorizationError::Empty => f.write_str("the Authorization header is empty"),
            AuthorizationError::WrongScheme => {
                write!(
                    f,
                    "the Authorization scheme must be {SCHEME} followed by one space"
                )
            }
            AuthorizationError::NotNameValue => {
                f.write_str("an Authorization parameter is not of the form name=\"value\"")
            }
            AuthorizationError::Unquoted(name) => {
                write!(f, "Authorization parameter {name} must be in double quotes")
            }
            AuthorizationError::EmptyValue(name) => {
                write!(f, "Authorization parameter {name} is empty")
            }
            AuthorizationError::Whitespace => {
                f.write_str("the Authorization parameters must not contain spaces")
            }
            AuthorizationError::Unknown(name) => {
                let name: String = name.chars().take(32).collect();
                write!(
                    f,
                    "Authorization parameter {name:?} is not defined by the scheme"
                )
            }
            AuthorizationError::Duplicate(name) => {
                write!(f, "Authorization parameter {name} is given more than once")
            }
            AuthorizationError::Missing(name) => {
                write!(f, "Authorization parameter {name} is missing")
            }
            AuthorizationError::InvalidNonce => {
                f.write_str("Authorization nonce_str must be 32 characters of 0-9a-zA-Z")
            }
            AuthorizationError::InvalidTimestamp => {
                f.write_str("Authorization timestamp must be Unix time in seconds")
            }
        }
    }
}

impl std::error::Error for AuthorizationError {}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "593BEC0C930BF1AFEB40B4A08C8FB242";
    const SPEC_HEADER: &str = "WECHATPAY-BRAND-SHA256-RSA2048 brand_id=\"1001622624\",nonce_str=\"593BEC0C930BF1AFEB40B4A08C8FB242\",signature=\"c2lnbmF0dXJl\",timestamp=\"1554208460\",serial_no=\"1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C\"";

    fn spec_authorization() -> Authorization {
        Authorization {
            brand_id: "1001622624".into(),
            nonce_str: NONCE.into(),
            signature: "c2lnbmF0dXJl".into(),
            timestamp: 1554208460,
            serial_no: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C".into(),
        }
    }

    #[test]
    fn string_to_sign_is_five_lines_each_ending_in_newline() {
        let message = string_to_sign(
            "PATCH",
            "/brand/card-member/user-cards/478515832665",
            1554208460,
            NONCE,
            b"{}",
        );
        assert_eq!(
            message,
            b"PATCH\n/brand/card-member/user-cards/478515832665\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{}\n"
        );
    }

    #[test]
    fn string_to_sign_keeps_the_newline_of_an_empty_body() {
        let message = string_to_sign("GET", "/brand/card-member/cards/x?a=1", 1, NONCE, b"");
        assert!(message.ends_with(b"593BEC0C930BF1AFEB40B4A08C8FB242\n\n"));
    }

    #[test]
    fn header_is_written_in_the_spec_order() {
        assert_eq!(spec_authorization().to_header_value(), SPEC_HEADER);
    }

    #[test]
    fn header_parses_back_to_its_parameters() {
        assert_eq!(
            Authorization::parse(SPEC_HEADER).unwrap(),
            spec_authorization()
        );
    }

    #[test]
    fn header_parameters_may_come_in_any_order() {
        let reordered = "WECHATPAY-BRAND-SHA256-RSA2048 serial_no=\"1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C\",timestamp=\"1554208460\",brand_id=\"1001622624\",signature=\"c2lnbmF0dXJl\",nonce_str=\"593BEC0C930BF1AFEB40B4A08C8FB242\"";
        assert_eq!(
            Authorization::parse(reordered).unwrap(),
            spec_authorization()
        );
    }

    #[test]
    fn malformed_headers_are_refused_each_with_its_own_reason() {
        let valid = SPEC_HEADER;
        let cases: Vec<(String, AuthorizationError)> = vec![
            (String::new(), AuthorizationError::Empty),
            (
                valid.replace(
                    "WECHATPAY-BRAND-SHA256-RSA2048",
                    "WECHATPAY2-SHA256-RSA2048",
                ),
                AuthorizationError::WrongScheme,
            ),
            (
                valid.replace("RSA2048 ", "RSA2048"),
                AuthorizationError::WrongScheme,
            ),
            (
                "WECHATPAY-BRAND-SHA256-RSA2048 ".into(),
                AuthorizationError::Missing("brand_id"),
            ),
            (
                valid.replace(",nonce_str", ", nonce_str"),
                AuthorizationError::Whitespace,
            ),
            (
                valid.replace("RSA2048 ", "RSA2048  "),
                AuthorizationError::Whitespace,
            ),
            (
                valid.replace("\"1001622624\"", "'1001622624'"),
                AuthorizationError::Unquoted("brand_id"),
            ),
            (
                valid.replace("\"1001622624\"", "1001622624"),
                AuthorizationError::Unquoted("brand_id"),
            ),
            (
                valid.replace("\"1001622624\"", "\"\""),
                AuthorizationError::EmptyValue("brand_id"),
            ),
            (
                valid.replace("brand_id=", "brand_id:"),
                AuthorizationError::NotNameValue,
            ),
            (
                format!("{valid},extra=\"1\""),
                AuthorizationError::Unknown("extra".into()),
            ),
            (
                format!("{valid},brand_id=\"2\""),
                AuthorizationError::Duplicate("brand_id"),
            ),
            (
                valid.replace(
                    ",serial_no=\"1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C\"",
                    "",
                ),
                AuthorizationError::Missing("serial_no"),
            ),
            (
                valid.replace("signature=\"c2lnbmF0dXJl\",", ""),
                AuthorizationError::Missing("signature"),
            ),
            (
                valid.replace(NONCE, "short"),
                AuthorizationError::InvalidNonce,
            ),
            (
                valid.replace("1554208460", "-1554208460"),
                AuthorizationError::InvalidTimestamp,
            ),
            (
                valid.replace("1554208460", "1554208460.5"),
                AuthorizationError::InvalidTimestamp,
            ),
            (format!("{valid},"), AuthorizationError::NotNameValue),
        ];
        for (header, expected) in cases {
            assert_eq!(Authorization::parse(&header), Err(expected), "{header}");
        }
    }

    #[test]
    fn millisecond_timestamp_parses_so_the_window_check_can_refuse_it() {
        let header = SPEC_HEADER.replace("1554208460", "1554208460000");
        assert_eq!(
            Authorization::parse(&header).unwrap().timestamp,
            1554208460000
        );
    }
}
