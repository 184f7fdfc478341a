//! Errors by stage: the request was never sent, may have been applied, was
//! refused by the API, came back with a bad signature, or did not decode.

use std::fmt;

use card_member_protocol::error::{ErrorCode, ErrorDetail};
use card_member_protocol::response::ResponseVerifyError;
use card_member_protocol::validation::Violation;

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The request was never sent: it breaks a rule of the spec, a field
    /// could not be encrypted, or the client is misconfigured.
    Build(Box<BuildError>),
    /// The request could not be delivered, or its answer not received. When
    /// [`Error::may_have_been_applied`] is true the server may have acted
    /// on it.
    Transport(TransportError),
    /// The API refused the request.
    Api(Box<ApiError>),
    /// A 2xx response whose signature did not verify: its body is not
    /// trusted and not returned.
    InvalidSignature {
        /// What failed.
        reason: ResponseVerifyError,
        /// The response's `Request-ID`, if any.
        request_id: Option<String>,
    },
    /// A verified response whose body did not decode.
    Decode {
        /// What failed.
        message: String,
        /// The response's `Request-ID`, if any.
        request_id: Option<String>,
    },
}

impl Error {
    pub(crate) fn build(error: BuildError) -> Self {
        Error::Build(Box::new(error))
    }

    pub(crate) fn api_error(error: ApiError) -> Self {
        Error::Api(Box::new(error))
    }

    /// Whether any call, an import too, may be sent again after this error
    /// without the risk of applying it twice: a rate limit (429: the
    /// request was not processed) or a connection that never reached the
    /// server.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api(api) => api.status == 429,
            Error::Transport(transport) => !transport.may_have_been_applied,
            _ => false,
        }
    }

    /// Whether an idempotent call (a read, an update that sets fields) may
    /// be sent again after this error: what [`Error::is_retryable`] allows,
    /// a server error (5xx), and a connection closed or reset before the
    /// whole answer came (a server at its connection cap, a proxy
    /// restarting, an answer cut off): sent twice, such a call leaves the
    /// card as once.
    pub fn is_retryable_when_idempotent(&self) -> bool {
        self.is_retryable()
            || matches!(self, Error::Api(api) if api.status >= 500)
            || matches!(self, Error::Transport(transport) if transport.unanswered)
    }

    /// Whether the server may have applied the request although the call
    /// failed: a connection lost after the request was sent, or a server
    /// error (5xx), which says the server failed but not when; after its
    /// change was committed, the answer lost, is one of the ways (inject
    /// it with `card-member simulate fault add --kind error-after-commit`,
    /// or `--kind drop-after-commit` for the connection lost then).
    /// Such a failed import is not sent again: read the card to find out.
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            Error::Transport(transport) => transport.may_have_been_applied,
            Error::Api(api) => api.status >= 500,
            _ => false,
        }
    }

    /// The API error, if the API refused the request.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(api) => Some(api),
            _ => None,
        }
    }

    /// The `Request-ID` of the response, when there was one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api(api) => api.request_id.as_deref(),
            Error::InvalidSignature { request_id, .. } | Error::Decode { request_id, .. } => {
                request_id.as_deref()
            }
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Build(_) => f.write_str("request not sent"),
            Error::Transport(_) => f.write_str("request failed in transport"),
            Error::Api(api) => write!(f, "API error {} {}: {}", api.status, api.code, api.message),
            Error::InvalidSignature { .. } => f.write_str("response signature rejected"),
            Error::Decode { message, .. } => write!(f, "response did not decode: {message}"),
        }?;
        // What a log line needs to quote the answer to the provider.
        match self.request_id() {
            Some(id) => write!(f, " [Request-ID {id}]"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Build(build) => Some(build.as_ref()),
            Error::Transport(transport) => Some(transport),
            Error::InvalidSignature { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// A request that was not sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The request breaks a rule of the spec.
    Invalid(Violation),
    /// A sensitive field could not be encrypted.
    Encryption(String),
    /// The client's configuration is unusable.
    Config(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Invalid(violation) => write!(f, "invalid request: {}", violation.message),
            BuildError::Encryption(why) => write!(f, "cannot encrypt a sensitive field: {why}"),
            BuildError::Config(why) => write!(f, "client configuration: {why}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// A failure to deliver a request or receive its answer.
#[derive(Debug)]
pub struct TransportError {
    /// Whether the request may have reached the server.
    pub may_have_been_applied: bool,
    /// The connection was closed or reset before the whole answer came
    /// (not a timeout): an idempotent call may be sent again.
    pub(crate) unanswered: bool,
    message: String,
}

impl TransportError {
    pub(crate) fn new(may_have_been_applied: bool, message: String) -> Self {
        Self {
            may_have_been_applied,
            unanswered: false,
            message,
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransportError {}

/// The API's refusal.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The error code (`PARAM_ERROR`, ...), or the status text when the
    /// body was not the API's error format.
    pub code: String,
    /// The message.
    pub message: String,
    /// Which field, where.
    pub detail: Option<ErrorDetail>,
    /// The response's `Request-ID`: quote it to the provider.
    pub request_id: Option<String>,
    /// `Retry-After`, in seconds, on a 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// The code as a known [`ErrorCode`].
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_wire(&self.code)
    }
}

/// An error and its causes, joined by `: ` (what a log line or a command
/// line shows of an error whose `Display` does not repeat its source).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answered_error_shows_its_request_id_for_the_provider() {
        let api = ApiError {
            status: 401,
            code: "SIGN_ERROR".into(),
            message: "signature mismatch".into(),
            detail: None,
            request_id: Some("08F78BB5-0401".into()),
            retry_after: None,
        };
        assert_eq!(
            Error::api_error(api).to_string(),
            "API error 401 SIGN_ERROR: signature mismatch [Request-ID 08F78BB5-0401]"
        );
        let rejected = Error::InvalidSignature {
            reason: ResponseVerifyError::InvalidSignature,
            request_id: Some("08F7-0".into()),
        };
        assert_eq!(
            rejected.to_string(),
            "response signature rejected [Request-ID 08F7-0]"
        );
        let unanswered = Error::Transport(TransportError::new(false, "refused".into()));
        assert_eq!(unanswered.to_string(), "request failed in transport");
    }
}
