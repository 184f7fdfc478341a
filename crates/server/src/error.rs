//! The one server error type: every failure is answered through it, with the
//! API's error body, its HTTP status and a stable internal error number that
//! ends the `Request-ID` (`…-1004`); and the error of starting the server
//! or of an administrative command.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use card_member_protocol::error::{ErrorBody, ErrorCode, ErrorDetail, Location};
use card_member_protocol::validation::Violation;

use crate::storage::{OpenError, StorageError};

/// The server could not start (or an administrative command failed).
#[derive(Debug)]
pub struct StartError(pub(crate) String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

impl From<OpenError> for StartError {
    fn from(error: OpenError) -> Self {
        StartError(error.0)
    }
}

/// A storage failure no handler mapped itself: a database that cannot be
/// reached or written right now is 503, anything else 500 (its cause
/// logged, the body generic).
impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable(_) => ApiError::unavailable(&error),
            other => ApiError::internal(&other),
        }
    }
}

/// The internal error number of a response, read by the `Request-ID` layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ErrorNumber(pub(crate) u32);

/// The error code of a response, read by the request log and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ErrorCodeOf(pub(crate) ErrorCode);

/// A sensitive field that did not decrypt, on its refusal's response, for
/// authentication to explain (never on the wire).
#[derive(Clone, Debug)]
pub(crate) struct UndecryptedField {
    /// The field, as a JSON pointer.
    pub(crate) pointer: String,
    /// Its ciphertext as sent.
    pub(crate) ciphertext: String,
}

/// An error answered to the caller.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    number: u32,
    body: Box<ErrorBody>,
    retry_after: Option<u64>,
    undecrypted: Option<Box<UndecryptedField>>,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, number: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            number,
            body: Box::new(ErrorBody::new(code, message)),
            retry_after: None,
            undecrypted: None,
        }
    }

    fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.body.detail = Some(detail);
        self
    }

    fn header_detail(self, name: &str, issue: &str) -> Self {
        self.with_detail(ErrorDetail {
            field: Some(name.to_owned()),
            issue: Some(issue.to_owned()),
            location: Some(Location::Header),
            value: None,
        })
    }

    pub(crate) fn malformed_authorization(issue: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::SignError,
            1001,
            "Authorization header is malformed",
        )
        .header_detail("Authorization", issue)
    }

    pub(crate) fn stale_timestamp() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::SignError,
            1002,
            "timestamp differs from the request time by more than 5 minutes",
        )
        .header_detail(
            "Authorization",
            "timestamp is outside the 5-minute window (is it in milliseconds?)",
        )
    }

    pub(crate) fn unknown_brand_or_serial() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::SignError,
            1003,
            "brand_id or serial_no is not a registered brand API certificate",
        )
    }

    pub(crate) fn bad_signature() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::SignError,
            1004,
            "signature is wrong",
        )
    }

    pub(crate) fn replayed_nonce() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::SignError,
            1005,
            "nonce_str was already used; sign every request with a fresh nonce",
        )
    }

    pub(crate) fn brand_suspended() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::NoAuth,
            1101,
            "this brand may not use this function; it is suspended",
        )
    }

    pub(crate) fn wrong_wechatpay_serial() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2001,
            "Wechatpay-Serial is not the WeChat Pay public key ID of this brand",
        )
        .header_detail(
            "Wechatpay-Serial",
            "must be the WeChat Pay public key ID associated with brand_id",
        )
    }

    pub(crate) fn unacceptable_accept() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2002,
            "Accept must be application/json",
        )
        .header_detail("Accept", "must be application/json")
    }

    pub(crate) fn wrong_content_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2003,
            "Content-Type must be application/json",
        )
        .header_detail("Content-Type", "must be application/json")
    }

    pub(crate) fn openid_mismatch(location: Location) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2004,
            "openid is not the holder of this card",
        )
        .with_detail(ErrorDetail {
            field: Some("/openid".into()),
            issue: Some("is not the card's holder".into()),
            location: Some(location),
            value: None,
        })
    }

    pub(crate) fn card_invalid() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2005,
            "the card has been invalidated and can no longer be changed",
        )
    }

    pub(crate) fn duplicate_code() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2006,
            "user_card_code is already used by another card of this template",
        )
    }

    pub(crate) fn holder_has_card() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2007,
            "the user already holds an unactivated or effective card of this template",
        )
    }

    pub(crate) fn template_invalid() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2008,
            "the card template has been invalidated",
        )
    }

    pub(crate) fn record_key_reused() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2010,
            "out_request_no was already used for a different request; send a new one",
        )
    }

    pub(crate) fn out_request_no_reused() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2009,
            "out_request_no was already used for a different template",
        )
    }

    /// The request conflicts with the state of what it addresses (a used
    /// token, a decision already taken, ...): the message says how.
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2011,
            message,
        )
    }

    pub(crate) fn card_expired() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2012,
            "the card has expired (its validity ended) and can no longer be changed",
        )
    }

    pub(crate) fn template_not_changeable() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2014,
            "the card template has been invalidated and can no longer be changed",
        )
    }

    /// A body field broke a rule only the server can check (against the
    /// template, the stored record, the uploaded file).
    pub(crate) fn body_param(pointer: &str, issue: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ParamError,
            4007,
            message,
        )
        .with_detail(ErrorDetail {
            field: Some(pointer.to_owned()),
            issue: Some(issue.to_owned()),
            location: Some(Location::Body),
            value: None,
        })
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            5003,
            format!("{what} does not exist for this brand"),
        )
    }

    pub(crate) fn rate_limited(retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RatelimitExceeded,
            3001,
            "too many requests for this brand; slow down",
        );
        error.retry_after = Some(retry_after_secs.max(1));
        error
    }

    pub(crate) fn violation(violation: &Violation) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, violation.code, 4001, "");
        error.body = Box::new(violation.to_error_body());
        error
    }

    /// A sensitive field that did not decrypt. The answer is one for
    /// every cause, so that it cannot be used as a padding oracle; the
    /// ciphertext rides along (never on the wire) for the explanation.
    pub(crate) fn undecryptable(pointer: &str, ciphertext: &str) -> Self {
        let mut error = Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ParamError,
            4002,
            "a sensitive field could not be decrypted; encrypt it with RSA-OAEP (SHA-1) under the WeChat Pay public key",
        )
        .with_detail(ErrorDetail {
            field: Some(pointer.to_owned()),
            issue: Some("could not be decrypted".into()),
            location: Some(Location::Body),
            value: None,
        });
        error.undecrypted = Some(Box::new(UndecryptedField {
            pointer: pointer.to_owned(),
            ciphertext: ciphertext.to_owned(),
        }));
        error
    }

    pub(crate) fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ParamError,
            4003,
            format!("the request body is larger than {} KiB", limit / 1024),
        )
    }

    pub(crate) fn wrong_upload_content_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            2015,
            "an image upload must be Content-Type: multipart/form-data with a boundary",
        )
        .header_detail("Content-Type", "must be multipart/form-data")
    }

    pub(crate) fn image_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ParamError,
            4008,
            format!("the image is larger than {} MiB", limit / 1024 / 1024),
        )
        .with_detail(ErrorDetail {
            field: Some("/file".into()),
            issue: Some("is too large".into()),
            location: Some(Location::Body),
            value: None,
        })
    }

    pub(crate) fn invalid_path(name: &str, issue: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ParamError,
            4004,
            format!("{name} {issue}"),
        )
        .with_detail(ErrorDetail {
            field: Some(format!("/{name}")),
            issue: Some(issue.to_owned()),
            location: Some(Location::Path),
            value: None,
        })
    }

    pub(crate) fn invalid_query(name: &str, issue: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ParamError,
            4005,
            format!("{name} {issue}"),
        )
        .with_detail(ErrorDetail {
            field: Some(format!("/{name}")),
            issue: Some(issue.to_owned()),
            location: Some(Location::Query),
            value: None,
        })
    }

    pub(crate) fn unsupported_card_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ParamError,
            4006,
            "card_type: only NORMAL cards can be created today",
        )
        .with_detail(ErrorDetail {
            field: Some("/card_type".into()),
            issue: Some("only NORMAL is supported".into()),
            location: Some(Location::Body),
            value: None,
        })
    }

    pub(crate) fn card_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            5001,
            "no such user card for this brand",
        )
    }

    pub(crate) fn template_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            5002,
            "no such card template for this brand",
        )
    }

    /// An internal failure: the cause is logged here, the caller gets a
    /// generic message.
    pub(crate) fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::SystemError,
            9001,
            "system error, try again later",
        )
    }

    /// A dependency (the database) is unavailable right now.
    pub(crate) fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            9002,
            "service temporarily unavailable, try again later",
        )
    }

    pub(crate) fn timed_out() -> Self {
        tracing::error!("request timed out");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            9003,
            "the request took too long; it may or may not have been applied",
        )
    }
}

/// An answer a rule run inside a storage transaction can carry back out
/// (as `StorageError::Refused`), such as the form check of an update.
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.body.code, self.body.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body).expect("error bodies always serialise");
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ErrorNumber(self.number));
        response.extensions_mut().insert(ErrorCodeOf(self.code));
        if let Some(field) = self.undecrypted {
            response.extensions_mut().insert(*field);
        }
        response
    }
}
