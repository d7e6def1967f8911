//! Keyed digests: a process secret, a label naming the use, and a value, hashed together
//! (Blake2s), for tables that must not hold the value itself (session cookies, user names in
//! the sign-in failure tables, password hashes).

use blake2::{Blake2s256, Digest};

/// The digest of `value` under `secret`, for the use `label` names.
pub fn digest(secret: &[u8; 32], label: &[u8], value: &str) -> [u8; 32] {
    let mut h = Blake2s256::new();
    h.update(secret);
    h.update(label);
    h.update(value.as_bytes());
    h.finalize().into()
}

/// The first half of [`digest`]: short, and still enough to tell values apart.
pub fn short_digest(secret: &[u8; 32], label: &[u8], value: &str) -> [u8; 16] {
    let full = digest(secret, label, value);
    let mut short = [0u8; 16];
    short.copy_from_slice(&full[..16]);
    short
}
