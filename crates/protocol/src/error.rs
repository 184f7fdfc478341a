//! The API's error body and error codes (PROTOCOL.md §5).
//!
//! ```json
//! {"code": "PARAM_ERROR", "message": "...", "detail": {"field": "/card_color", "value": "red", "issue": "...", "location": "body"}}
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The error codes of the card-member API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: a field breaks its rule, an unknown field, a bad time, an
    /// undecryptable ciphertext.
    ParamError,
    /// 400: the request breaks the API's rules (wrong `Wechatpay-Serial`,
    /// missing `Accept`, openid not the holder, card already invalid, ...).
    InvalidRequest,
    /// 401: the request signature failed (§2).
    SignError,
    /// 403: the brand may not use this function.
    NoAuth,
    /// 404: no such resource for this brand.
    NotFound,
    /// 429: over the per-brand rate limit; nothing was done.
    RatelimitExceeded,
    /// 500: internal failure.
    SystemError,
    /// 503: a dependency is down.
    ServiceUnavailable,
}

impl ErrorCode {
    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::ParamError,
        ErrorCode::InvalidRequest,
        ErrorCode::SignError,
        ErrorCode::NoAuth,
        ErrorCode::NotFound,
        ErrorCode::RatelimitExceeded,
        ErrorCode::SystemError,
        ErrorCode::ServiceUnavailable,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ParamError => "PARAM_ERROR",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::SignError => "SIGN_ERROR",
            ErrorCode::NoAuth => "NO_AUTH",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::RatelimitExceeded => "RATELIMIT_EXCEEDED",
            ErrorCode::SystemError => "SYSTEM_ERROR",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// Looks a wire code up.
    pub fn from_wire(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The HTTP status this code is answered with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::ParamError | ErrorCode::InvalidRequest => 400,
            ErrorCode::SignError => 401,
            ErrorCode::NoAuth => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::RatelimitExceeded => 429,
            ErrorCode::SystemError => 500,
            ErrorCode::ServiceUnavailable => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the request the offending value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// The JSON body.
    Body,
    /// A path parameter.
    Path,
    /// A query parameter.
    Query,
    /// A header.
    Header,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error code, e.g. `PARAM_ERROR`. Kept as a string so that codes
    /// this crate does not know still decode; see [`ErrorCode::from_wire`].
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Which value, where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<ErrorDetail>,
}

impl ErrorBody {
    /// An error without detail.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.as_str().to_owned(),
            message: message.into(),
            detail: None,
        }
    }
}

/// The `detail` of an error body.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A JSON pointer to the field, e.g. `/valid_date_information/type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The offending value, where it is safe to echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// What is wrong with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<String>,
    /// Where the field is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_their_wire_names_and_statuses() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::RatelimitExceeded.http_status(), 429);
        assert_eq!(ErrorCode::SignError.http_status(), 401);
    }

    #[test]
    fn error_body_omits_absent_detail_fields() {
        let body = ErrorBody {
            code: "PARAM_ERROR".into(),
            message: "m".into(),
            detail: Some(ErrorDetail {
                field: Some("/card_color".into()),
                location: Some(Location::Body),
                ..ErrorDetail::default()
            }),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"code": "PARAM_ERROR", "message": "m", "detail": {"field": "/card_color", "location": "body"}})
        );
    }
}
