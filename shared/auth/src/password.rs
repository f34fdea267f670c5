//! Password verification for Keystone's stored hashes.
//!
//! Keystone stores bcrypt (`$2a$`, `$2b$`, `$2y$`); new hashes may be argon2id (`$argon2id$`).
//! Verification is CPU-bound and slow by design: callers run it on a blocking thread.

use argon2::{Argon2, PasswordVerifier};
use subtle::ConstantTimeEq;

/// A bcrypt hash (cost 10, Keystone's cost) of a password nobody knows. Verified against when
/// the account does not exist or cannot log in, so every login costs one hash verification
/// and unknown accounts cannot be told apart by timing.
pub const DUMMY_HASH: &str = "$2b$10$frzBj3hBO9r0/wNlpIBCgOFg1s39dMRlbIKjN9OCiI91JLQqmhIsS";

/// True when `password` matches `stored`. Unknown hash formats never match.
pub fn verify(password: &str, stored: &str) -> bool {
    if stored.starts_with("$argon2") {
        return Argon2::default()
            .verify_password(password.as_bytes(), stored)
            .is_ok();
    }
    if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    false
}

/// Verifies a login against the stored hash, or against [`DUMMY_HASH`] when there is none,
/// so both paths do the same work. Returns whether it matched.
pub fn verify_or_burn(password: &str, stored: Option<&str>) -> bool {
    match stored {
        Some(hash) => verify(password, hash),
        None => {
            let _ = verify(password, DUMMY_HASH);
            false
        }
    }
}

/// Compares a configured secret (the admin password) in constant time, after burning one
/// dummy verification so the admin path costs what a collector login costs.
pub fn verify_configured(password: &str, expected: &str) -> bool {
    let _ = verify(password, DUMMY_HASH);
    password.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by Python's `bcrypt` and `argon2-cffi`, not by the crates used here.
    const B2B: &str = "$2b$10$0mA5zXbrv1rDnT3ekdaQA.7NnP44bbRxCkwFZiPBggjFDYqTcVCHG";
    const B2A: &str = "$2a$10$2zZZC85u/DF8m8Ab9uAZiOt0fkxeEDtsdHeFhrdg8ZUgxoybO1dZ2";
    const ARGON2ID: &str = "$argon2id$v=19$m=65536,t=3,p=4$3m5ec7uX84YH0XANSuBUOw$GkFHGsxUbWDbNysDxeYkyO23/ktQcpkd0hLzGqNorIg";

    #[test]
    fn hashes_from_other_implementations_verify() {
        // $2y$ is PHP's name for the same algorithm as $2b$.
        let b2y = B2B.replacen("$2b$", "$2y$", 1);
        for hash in [B2B, B2A, b2y.as_str(), ARGON2ID] {
            assert!(verify("collector-pass-1", hash), "{hash}");
            assert!(!verify("collector-pass-2", hash), "{hash}");
        }
    }

    #[test]
    fn unknown_formats_and_missing_hashes_never_match() {
        assert!(!verify("x", "plaintext"));
        assert!(!verify("", ""));
        assert!(!verify_or_burn("anything", None));
        assert!(verify_configured("s3cret", "s3cret"));
        assert!(!verify_configured("s3cret", "s3cret!"));
    }
}
