//! Nonces: 32 characters of `0-9a-zA-Z`, as `nonce_str` requires.

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The length of a nonce.
pub const NONCE_LEN: usize = 32;

/// Makes a nonce from random bytes that `fill` writes into the buffers it
/// is handed (pass the system CSPRNG in production, a fixed source in
/// tests). Unbiased: bytes of 248 and above are drawn again, since 248 is
/// the largest multiple of 62 that fits a byte.
pub fn generate_nonce(mut fill: impl FnMut(&mut [u8])) -> String {
    let mut nonce = String::with_capacity(NONCE_LEN);
    let mut buffer = [0u8; 48];
    while nonce.len() < NONCE_LEN {
        fill(&mut buffer);
        for &byte in &buffer {
            if byte < 248 && nonce.len() < NONCE_LEN {
                nonce.push(ALPHABET[usize::from(byte % 62)] as char);
            }
        }
    }
    nonce
}

/// Whether `nonce` has the form the API requires.
pub fn is_valid_nonce(nonce: &str) -> bool {
    nonce.len() == NONCE_LEN && nonce.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_32_alphanumeric_characters() {
        let mut counter = 0u8;
        let nonce = generate_nonce(|buf| {
            for byte in buf {
                *byte = counter;
                counter = counter.wrapping_add(7);
            }
        });
        assert!(is_valid_nonce(&nonce), "{nonce}");
    }

    #[test]
    fn nonce_skips_bytes_that_would_bias_it() {
        let mut calls = 0;
        let nonce = generate_nonce(|buf| {
            calls += 1;
            // The first buffer is all rejected bytes; the second maps to '1'.
            buf.fill(if calls == 1 { 250 } else { 1 });
        });
        assert_eq!(nonce, "1".repeat(32));
        assert_eq!(calls, 2);
    }

    #[test]
    fn nonce_validity_rejects_wrong_length_and_characters() {
        assert!(is_valid_nonce("593BEC0C930BF1AFEB40B4A08C8FB242"));
        assert!(!is_valid_nonce("593BEC0C930BF1AFEB40B4A08C8FB24"));
        assert!(!is_valid_nonce("593BEC0C930BF1AFEB40B4A08C8FB24-"));
    }
}
