//! The card-member SDK: a typed async client for the WeChat Pay brand
//! card-member API.
//!
//! Every call goes one way: sensitive fields are encrypted under the WeChat
//! Pay public key, the request is validated against the spec (an invalid
//! request is never sent), serialised, signed at send time with a fresh
//! timestamp and nonce, and sent; a refused connection fails over to the
//! backup host; 429 and 5xx are retried with exponential backoff and jitter
//! (honouring `Retry-After`); every 2xx answer is verified (signature
//! headers, WeChat Pay public key ID, 5-minute window, signature over the
//! raw body) before its body is decoded. An unverified answer is never
//! returned as data, and an answer larger than [`MAX_RESPONSE_BYTES`] is
//! not read.
//!
//! # Layout
//!
//! - [`Client`], [`ClientBuilder`]: configuration and the send path.
//! - [`UserCards`], [`Cards`], [`Activity`], [`Media`]: the calls, grouped
//!   by resource, one method per endpoint; lists as lazy streams
//!   ([`pages`]).
//! - [`UserCardUpdate`], [`UserCardImport`]: requests with sensitive fields
//!   in plaintext ([`SecretString`]); [`DecryptedFields`]: a card's
//!   sensitive fields, decrypted on request with [`Client::decrypt`].
//! - [`Error`]: failures by stage; [`Client::explain`] asks the sandbox
//!   why it refused a request ([`ApiError::is_explained`]).
//!
//! # Quickstart
//!
//! ```no_run
//! use card_member_client::{Client, SecretString, UserCardUpdate};
//!
//! # async fn run() -> Result<(), card_member_client::Error> {
//! // The development setup of `card-member serve`:
//! let client = Client::from_credentials_file("card-member-data/dev/credentials.json")?;
//! // Or for the real API:
//! // let client = Client::builder()
//! //     .brand_id("1001622624")
//! //     .brand_serial_no("1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C")
//! //     .brand_private_key_file("/path/to/apiclient_key.pem")
//! //     .wechatpay_public_key_id("PUB_KEY_ID_...")
//! //     .wechatpay_public_key_file("/path/to/wxp_pub.pem")
//! //     .build()?;
//! let mut update = UserCardUpdate::new("pbLatjvWOibDc5-TBnbUk1pD12o0", "obLatjnx9gnqzS4myYGmLZ7LgLBA");
//! update.level = Some("钻石会员".into());
//! update.phone_number = Some(SecretString::new("13800138000"));
//! let card = client.user_cards().update("478515832665", &update).await?;
//! let fields = client.decrypt(&card)?;
//! assert_eq!(fields.phone_number.unwrap().expose(), "13800138000");
//! # Ok(())
//! # }
//! ```

mod builder;
mod client;
mod error;
mod explain;
mod limiter;
pub mod notify;
pub mod pages;
mod resources;
mod retry;
mod sensitive;

pub use builder::ClientBuilder;
pub use card_member_protocol as protocol;
pub use card_member_protocol::activity::{
    PointsSync, PointsSyncRequest, UserFeed, UserFeedRequest,
};
pub use card_member_protocol::model::{
    Card, CardDefinition, CardState, CardType, CodeMode, CodeType, CommonFieldFlag,
    CreateCardRequest, CustomField, CustomFieldDefinition, CustomFieldType, DateInfo, DateType,
    ExchangeCouponConfirmRequest, ExchangeCouponResult, ExchangeDecision, ExchangeState,
    ImageUpload, JumpInformation, Page, PreAuthToken, PurchaseInformation, UpdateCardRequest,
    UserCard, UserCardConfirmState, UserCardState, UserInformationForm,
};
pub use card_member_protocol::secret::SecretString;
pub use client::{Client, MAX_RESPONSE_BYTES, SignedRequest};
pub use error::{ApiError, BuildError, Error, TransportError, error_chain};
pub use explain::Explanation;
pub use resources::{Activity, Cards, Media, UserCards};
pub use retry::RetryPolicy;
pub use sensitive::{
    CommonFieldValue, DecryptedFields, UserCardImport, UserCardUpdate, UserInformation,
};
