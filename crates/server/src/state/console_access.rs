//! The console's access: its admin token, the session cookies and CSRF
//! tokens made from it (HMAC-SHA256; nothing is kept on the server, and a
//! new token voids every session), and whether it is served at all.

use aws_lc_rs::hmac;
use card_member_protocol::secret::SecretString;

/// How long a console session lasts.
pub(crate) const SESSION_SECS: i64 = 12 * 3600;

/// The console's secrets and switches.
pub(crate) struct ConsoleAccess {
    token: SecretString,
    key: hmac::Key,
    /// Served at all (on, and HTTPS or loopback or allowed insecure).
    pub(crate) open: bool,
    /// The cookie is `Secure` (HTTPS).
    pub(crate) secure: bool,
}

impl std::fmt::Debug for ConsoleAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleAccess")
            .field("token", &self.token)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl ConsoleAccess {
    /// The access of `token`; `open`: served at all; `secure`: cookies over HTTPS only.
    pub(crate) fn new(token: SecretString, open: bool, secure: bool) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, token.expose().as_bytes());
        Self {
            token,
            key,
            open,
            secure,
        }
    }

    pub(crate) fn mac(&self, purpose: &str, value: &str) -> String {
        let tag = hmac::sign(&self.key, format!("{purpose}:{value}").as_bytes());
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn session_cookie(&self, now: i64) -> String {
        let expires = now + SESSION_SECS;
        format!("{expires}.{}", self.mac("session", &expires.to_string()))
    }

    /// Whether `cookie` is a live session of this token.
    pub(crate) fn valid_session(&self, cookie: &str, now: i64) -> bool {
        let Some((expires, mac)) = cookie.split_once('.') else {
            return false;
        };
        let Ok(expiry) = expires.parse::<i64>() else {
            return false;
        };
        expiry > now
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                mac.as_bytes(),
                self.mac("session", expires).as_bytes(),
            )
            .is_ok()
    }

    /// The CSRF token of a session.
    pub(crate) fn csrf(&self, session: &str) -> String {
        self.mac("csrf", session)
    }

    pub(crate) fn token_matches(&self, given: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(
            given.as_bytes(),
            self.token.expose().as_bytes(),
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_good_until_it_expires_and_only_under_its_token() {
        let access = ConsoleAccess::new(SecretString::new("t".repeat(32)), true, false);
        let cookie = access.session_cookie(1_000);
        assert!(access.valid_session(&cookie, 1_001));
        assert!(!access.valid_session(&cookie, 1_000 + SESSION_SECS));
        let other = ConsoleAccess::new(SecretString::new("u".repeat(32)), true, false);
        assert!(!other.valid_session(&cookie, 1_001));
        assert_ne!(access.csrf(&cookie), other.csrf(&cookie));
        assert!(!access.valid_session("garbage", 1_001));
    }
}
