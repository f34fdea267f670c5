//! The `Idempotency-Key` header of SPEC §6.1.

use crate::DomainError;

/// A validated idempotency key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest key accepted.
    pub const MAX_LEN: usize = 255;

    /// Validates the raw header bytes.
    ///
    /// # Errors
    /// [`DomainError::InvalidIdempotencyKey`] when the key is empty, too long, or holds
    /// anything but visible ASCII (`!` to `~`).
    pub fn parse(raw: &[u8]) -> Result<Self, DomainError> {
        let visible = raw.iter().all(|b| (b'!'..=b'~').contains(b));
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !visible {
            return Err(DomainError::InvalidIdempotencyKey);
        }
        String::from_utf8(raw.to_vec())
            .map(Self)
            .map_err(|_| DomainError::InvalidIdempotencyKey)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_ascii_keys_of_1_to_255_chars_are_accepted() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse(b"order-4/attempt#1~").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
    }

    #[test]
    fn empty_long_and_invisible_keys_are_refused() {
        for bad in [
            &b""[..],
            &[b'k'; 256][..],
            b"has space",
            b"tab\t",
            "ключ".as_bytes(),
            b"\x7f",
        ] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(DomainError::InvalidIdempotencyKey)
            );
        }
    }
}
