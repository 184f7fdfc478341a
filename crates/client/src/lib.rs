//! The card-member SDK: a typed async client for the WeChat Pay brand
//! card-member API that signs, encrypts, retries, fails over and verifies
//! every response.
//!
//! Not written yet: this crate is filled by the SDK issue. The protocol it
//! will speak is in [`card_member_protocol`].

pub use card_member_protocol as protocol;
