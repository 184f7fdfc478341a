//! Request and response bodies of the card-member API, gathered from the
//! resource modules ([`crate::user_cards`], [`crate::cards`],
//! [`crate::shared`]) where each lives beside its rules.
//!
//! Optional fields are `Option`s that serialise as absent, never `null`;
//! `null` on input reads as absent. Path parameters are `#[serde(skip)]`.
//! Sensitive fields travel as [`Ciphertext`]: RSA-OAEP under the WeChat Pay
//! public key in requests, under the brand certificate's key in responses.

pub use crate::cards::{
    Card, CardDefinition, CardState, CodeMode, CodeType, CreateCardRequest, CustomFieldDefinition,
    CustomFieldType, JumpInformation, PurchaseInformation, UpdateCardRequest, UserInformationForm,
};
pub use crate::media::{ImageMeta, ImageType, ImageUpload};
pub use crate::membership::{
    ConfirmUserCardRequest, ExchangeCouponConfirmRequest, ExchangeCouponResult, ExchangeDecision,
    ExchangeState, PreAuthToken, PreAuthTokenRequest, UserCardConfirmState,
};
pub use crate::shared::{
    CardType, Ciphertext, CommonField, CommonFieldFlag, CustomField, DateInfo, DateType, ListQuery,
    Page, UserInfo,
};
pub use crate::user_cards::{
    ImportUserCardRequest, InvalidateUserCardRequest, UpdateUserCardRequest, UserCard,
    UserCardState,
};
