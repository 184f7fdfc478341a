//! The wire protocol of the WeChat Pay brand card-member API
//! (`/brand/card-member/...`): types, validation, request signing, response
//! signatures and field encryption, shared by the card-member server and SDK.
//!
//! Everything here is pure: no I/O, no clock and no random-number generator
//! is touched behind the caller's back. Times and nonces are arguments. The
//! two exceptions are forced by the cryptography and documented where they
//! occur: RSA key generation ([`keys::PrivateKey::generate`]) and the random
//! seed inside RSA-OAEP padding ([`encryption::encrypt_field`]) come from
//! AWS-LC's own generator, which `aws-lc-rs` does not let a caller replace.
//!
//! # Layout
//!
//! - [`model`]: request and response bodies (`UpdateUserCardRequest`,
//!   `UserCard`, card templates, imports) as serde types.
//! - [`validation`]: every field rule of the spec, with the error code, a
//!   JSON pointer to the field and a message a person understands.
//! - [`error`]: the API's error body and error codes.
//! - [`auth`]: the `WECHATPAY-BRAND-SHA256-RSA2048` request signature and
//!   the `Authorization` header.
//! - [`response`]: response signatures (`Wechatpay-Signature` and friends).
//! - [`encryption`]: RSA-OAEP (SHA-1) encryption of sensitive fields.
//! - [`keys`]: RSA keys and X.509 certificates from PEM.
//! - [`nonce`], [`datetime`], [`secret`]: small helpers the rest builds on.
//!
//! # Example
//!
//! ```
//! use card_member_protocol::auth::{self, Authorization};
//! use card_member_protocol::keys::PrivateKey;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let pem = include_str!("../tests/fixtures/test_brand_private.pem");
//! let key = PrivateKey::from_pkcs8_pem(pem)?;
//! let body = br#"{"card_id":"pbLatjvWOibDc5-TBnbUk1pD12o0","openid":"obLatjnx9gnqzS4myYGmLZ7LgLBA"}"#;
//! let message = auth::string_to_sign(
//!     "PATCH",
//!     "/brand/card-member/user-cards/478515832665",
//!     1554208460,
//!     "593BEC0C930BF1AFEB40B4A08C8FB242",
//!     body,
//! );
//! let header = Authorization {
//!     brand_id: "1001622624".into(),
//!     nonce_str: "593BEC0C930BF1AFEB40B4A08C8FB242".into(),
//!     signature: key.sign_base64(&message),
//!     timestamp: 1554208460,
//!     serial_no: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C".into(),
//! };
//! assert!(header.to_header_value().starts_with("WECHATPAY-BRAND-SHA256-RSA2048 brand_id="));
//! # Ok(())
//! # }
//! ```

pub mod activity;
pub mod auth;
pub mod cards;
pub mod datetime;
pub mod diagnosis;
pub mod encryption;
pub mod endpoints;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
pub mod media;
pub mod membership;
pub mod model;
pub mod nonce;
pub mod notify;
pub mod request;
pub mod response;
pub mod secret;
pub mod shared;
pub mod user_cards;
pub mod validation;

/// The path prefix every endpoint of this API family lives under.
pub const API_PREFIX: &str = "/brand/card-member";

/// The primary API host (nearest access point).
pub const PRIMARY_BASE_URL: &str = "https://api.mch.weixin.qq.com";

/// The backup API host (remote access point), for resending after a
/// connection failure to the primary host.
pub const BACKUP_BASE_URL: &str = "https://api2.mch.weixin.qq.com";

/// Requests per second (and burst) each brand may send to one endpoint.
pub const RATE_LIMIT_PER_SECOND: u32 = 5;

/// The limit of `POST /brand/card-member/user-cards/import-by-openid`.
pub const IMPORT_RATE_LIMIT_PER_SECOND: u32 = 10;

/// How far, in seconds, a request or response timestamp may be from the
/// receiver's clock: a difference of this much or more is refused.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;
