//! The card-member service. Filled by the server issue.
