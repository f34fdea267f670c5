//! Password verification for logins, with the same hashing work whatever the outcome.
//!
//! Keystone stores bcrypt (`$2a$`, `$2b$`, `$2y$`); new hashes may be argon2id (`$argon2id$`).
//! Verification is CPU-bound and slow by design: callers run it on a blocking thread.
//!
//! # Equal work
//! Every login runs exactly one bcrypt and one argon2id verification: the stored hash takes
//! the place of the dummy of its kind, and every other case (unknown account, no hash, a hash
//! in a format this code does not know, a blocked collector, the configured admin) verifies
//! both dummies. So the time a login takes does not tell an existing account from a missing
//! one, nor a bcrypt account from an argon2id one. What is left: a stored hash whose cost
//! differs from the dummy's (bcrypt cost ≠ 10, argon2id parameters ≠ the defaults) takes its
//! own time; Keystone's hashes are bcrypt cost 10.

use argon2::{Argon2, PasswordVerifier};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A bcrypt hash at Keystone's cost (10), verified where an account has no bcrypt hash; its
/// result is always discarded.
pub const DUMMY_HASH: &str = "$2b$10$frzBj3hBO9r0/wNlpIBCgOFg1s39dMRlbIKjN9OCiI91JLQqmhIsS";

/// An argon2id hash with the `argon2` crate's default parameters (m = 19 MiB, t = 2, p = 1),
/// verified where an account has no argon2id hash; its result is always discarded (made with
/// Python's argon2-cffi).
pub const DUMMY_ARGON2ID: &str = "$argon2id$v=19$m=19456,t=2,p=1$4w9AtKJE2TSCYPHrlmwk2w$9+NIW/Egc7vTY+6RbM7Vz+Gq6GjVLykO2xzvczsvw08";

/// The hash verifications one check ran, by algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashWork {
    pub bcrypt: u8,
    pub argon2id: u8,
}

/// What a login is checked against.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A collector's stored hash (any format; unknown formats never match).
    StoredHash(&'a str),
    /// The configured admin password.
    Configured(&'a str),
    /// Nothing that can match: unknown account, no hash, or a collector who may not log in.
    Nothing,
}

/// Whether a login matched, and the work it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginCheck {
    pub matched: bool,
    pub work: HashWork,
}

enum Kind {
    Bcrypt,
    Argon2id,
    Unknown,
}

fn kind(hash: &str) -> Kind {
    if hash.starts_with("$argon2id$") {
        Kind::Argon2id
    } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        Kind::Bcrypt
    } else {
        Kind::Unknown
    }
}

fn bcrypt_verify(work: &mut HashWork, password: &str, hash: &str) -> bool {
    work.bcrypt += 1;
    bcrypt::verify(password, hash).unwrap_or(false)
}

fn argon2id_verify(work: &mut HashWork, password: &str, hash: &str) -> bool {
    work.argon2id += 1;
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Checks a login against `credential`, always running one bcrypt and one argon2id
/// verification (see the module docs).
pub fn check_login(password: &str, credential: Credential<'_>) -> LoginCheck {
    let mut work = HashWork::default();
    let dummy_argon2id = DUMMY_ARGON2ID;
    let matched = match credential {
        Credential::StoredHash(hash) => match kind(hash) {
            Kind::Bcrypt => {
                let matched = bcrypt_verify(&mut work, password, hash);
                argon2id_verify(&mut work, password, dummy_argon2id);
                matched
            }
            Kind::Argon2id => {
                bcrypt_verify(&mut work, password, DUMMY_HASH);
                argon2id_verify(&mut work, password, hash)
            }
            Kind::Unknown => {
                bcrypt_verify(&mut work, password, DUMMY_HASH);
                argon2id_verify(&mut work, password, dummy_argon2id);
                false
            }
        },
        Credential::Configured(expected) => {
            bcrypt_verify(&mut work, password, DUMMY_HASH);
            argon2id_verify(&mut work, password, dummy_argon2id);
            configured_matches(password, expected)
        }
        Credential::Nothing => {
            bcrypt_verify(&mut work, password, DUMMY_HASH);
            argon2id_verify(&mut work, password, dummy_argon2id);
            false
        }
    };
    LoginCheck { matched, work }
}

/// Compares digests, not the strings: a byte comparison stops early on a length mismatch and
/// so tells the configured password's length.
fn configured_matches(password: &str, expected: &str) -> bool {
    let given = Sha256::digest(password.as_bytes());
    let wanted = Sha256::digest(expected.as_bytes());
    given.ct_eq(&wanted).into()
}

/// The PHC prefix of a hash made with the current parameters ([`hash_current`]).
pub const CURRENT_ARGON2ID_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

/// True when a stored hash should be replaced at the next successful login: bcrypt (which
/// ignores everything past 72 bytes of a password) and argon2id with other parameters.
pub fn needs_rehash(stored: &str) -> bool {
    !stored.starts_with(CURRENT_ARGON2ID_PREFIX)
}

/// Why a password could not be hashed (never for a password that just verified).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// Hashes `password` with argon2id and the current parameters (the `argon2` crate's
/// defaults) and a random 16-byte salt, as a PHC string.
///
/// # Errors
/// [`HashError`] when the hasher refuses its input (not for any real password).
pub fn hash_current(password: &str) -> Result<String, HashError> {
    use argon2::PasswordHasher;
    let salt: [u8; 16] = rand::random();
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// True when `password` matches `stored`. Unknown hash formats never match.
pub fn verify(password: &str, stored: &str) -> bool {
    check_login(password, Credential::StoredHash(stored)).matched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_hash_has_the_current_parameters_and_verifies() {
        let hash = hash_current("collector-pass-1").unwrap();
        assert!(hash.starts_with(CURRENT_ARGON2ID_PREFIX), "{hash}");
        assert!(!needs_rehash(&hash));
        assert!(verify("collector-pass-1", &hash));
        assert!(!verify("collector-pass-2", &hash));
        assert!(needs_rehash(DUMMY_HASH));
        assert!(needs_rehash("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"));
        assert!(!needs_rehash(DUMMY_ARGON2ID));
    }

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
    fn every_outcome_costs_one_bcrypt_and_one_argon2id_verification() {
        let one_each = HashWork {
            bcrypt: 1,
            argon2id: 1,
        };
        let cases = [
            ("collector-pass-1", Credential::StoredHash(B2B), true),
            ("wrong", Credential::StoredHash(B2B), false),
            ("collector-pass-1", Credential::StoredHash(ARGON2ID), true),
            ("wrong", Credential::StoredHash(ARGON2ID), false),
            (
                "collector-pass-1",
                Credential::StoredHash("plaintext"),
                false,
            ),
            ("", Credential::StoredHash(""), false),
            (
                "$argon2i$v=19$m=16,t=2,p=1$c2FsdA$aGFzaA",
                Credential::StoredHash("$argon2i$v=19$m=16,t=2,p=1$c2FsdA$aGFzaA"),
                false,
            ),
            ("anything", Credential::Nothing, false),
            ("s3cret", Credential::Configured("s3cret"), true),
            ("s3cret", Credential::Configured("s3cret!"), false),
            ("s3cret", Credential::Configured(""), false),
        ];
        for (password, credential, matched) in cases {
            assert_eq!(
                check_login(password, credential),
                LoginCheck {
                    matched,
                    work: one_each
                },
                "{password:?} against {credential:?}"
            );
        }
    }

    #[test]
    fn the_dummies_are_real_hashes_of_an_unknown_password_with_the_usual_parameters() {
        let defaults = argon2::Params::default();
        assert_eq!(
            (defaults.m_cost(), defaults.t_cost(), defaults.p_cost()),
            (19_456, 2, 1)
        );
        assert!(DUMMY_ARGON2ID.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(DUMMY_HASH.starts_with("$2b$10$"));
        for dummy in [DUMMY_HASH, DUMMY_ARGON2ID] {
            assert!(!verify("keystone", dummy));
            assert!(!verify("", dummy));
        }
        assert!(verify(
            "keystone dummy password, never valid",
            DUMMY_ARGON2ID
        ));
    }
}
