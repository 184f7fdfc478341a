//! The rules of the card's life, below the wire: a user card's state,
//! its form and its sealed personal data (`user_cards`), the member's side
//! (`member`), the notifications and their delivery (`notifications`),
//! templates (`cards`) and images (`media`). Handlers, the simulated
//! member and the console call down into these; none of them knows HTTP.

pub(crate) mod cards;
pub(crate) mod media;
pub(crate) mod member;
pub(crate) mod notifications;
pub(crate) mod refusal;
pub(crate) mod user_cards;
