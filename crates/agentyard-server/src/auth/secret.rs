//! The text of an API token, `ayt_<id>_<secret><crc>`: made from fresh randomness, read back
//! from an `Authorization` header, and hashed for the store. The secret itself is never stored.
//!
//! - `id`: 12 characters of lowercase base32hex, public (`token list` shows it);
//! - `secret`: 256 random bits in the same alphabet (52 characters);
//! - `crc`: the CRC32 of everything before it (7 characters), so a typo is refused before any
//!   lookup and secret scanners can tell a real token from noise.

use agentyard_core::auth::{TOKEN_ID_LEN, TokenId};
use data_encoding::BASE32_DNSSEC;
use sha2::{Digest, Sha256};

/// Every token starts with this.
pub const PREFIX: &str = "ayt_";
const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
const SECRET_BYTES: usize = 32;
/// 256 bits in 5-bit characters.
const SECRET_LEN: usize = 52;
/// 32 bits in 5-bit characters.
const CRC_LEN: usize = 7;

/// A token as its holder has it: the id and the secret.
pub struct Secret {
    pub id: TokenId,
    secret: [u8; SECRET_BYTES],
}

/// Why a bearer value is not a token of this server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("it does not start with {PREFIX:?}")]
    Prefix,
    #[error("it is not as long as a token")]
    Length,
    #[error("its id is not a token id")]
    Id,
    #[error("its checksum does not match: it was mistyped or cut")]
    Checksum,
    #[error("its secret is not base32hex")]
    Encoding,
}

impl Secret {
    /// A new token from the thread's cryptographically secure generator (seeded by the OS).
    pub fn generate() -> Self {
        let bits: u64 = rand::random::<u64>() >> 4;
        let id: String = (0..TOKEN_ID_LEN)
            .map(|i| ALPHABET[((bits >> (55 - 5 * i)) & 31) as usize] as char)
            .collect();
        Self {
            id: TokenId::parse(id).expect("12 characters of the alphabet"),
            secret: rand::random(),
        }
    }

    /// Reads a token's text (the value after `Bearer `).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let rest = text.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        if rest.len() != TOKEN_ID_LEN + 1 + SECRET_LEN + CRC_LEN || !rest.is_ascii() {
            return Err(SecretError::Length);
        }
        let (id, rest) = rest.split_at(TOKEN_ID_LEN);
        let id = TokenId::parse(id).map_err(|_| SecretError::Id)?;
        let rest = rest.strip_prefix('_').ok_or(SecretError::Id)?;
        let (secret, crc) = rest.split_at(SECRET_LEN);
        if checksum(&text[..text.len() - CRC_LEN]) != crc {
            return Err(SecretError::Checksum);
        }
        let bytes = BASE32_DNSSEC
            .decode(secret.as_bytes())
            .map_err(|_| SecretError::Encoding)?;
        let secret = bytes.try_into().map_err(|_| SecretError::Encoding)?;
        Ok(Self { id, secret })
    }

    /// What the store keeps: the SHA-256 of the secret. 256 random bits need no slow hash.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }

    /// The token's text: shown once, when it is made.
    pub fn reveal(&self) -> String {
        let head = format!("{PREFIX}{}_{}", self.id, BASE32_DNSSEC.encode(&self.secret));
        let crc = checksum(&head);
        head + &crc
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The CRC32 of `text` in 7 characters of the alphabet.
fn checksum(text: &str) -> String {
    let crc = crc32fast::hash(text.as_bytes());
    // 7 characters of 5 bits hold the 32 bits, the first one only their top 2.
    (0..CRC_LEN as u32)
        .map(|i| ALPHABET[((crc >> (30 - 5 * i)) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_as_made() {
        let made = Secret::generate();
        let text = made.reveal();
        assert!(text.starts_with("ayt_"), "{text}");
        assert_eq!(text.len(), 4 + 12 + 1 + 52 + 7);
        let read = Secret::parse(&text).expect("a real token");
        assert_eq!(read.id, made.id);
        assert_eq!(read.hash(), made.hash());
    }

    #[test]
    fn two_tokens_share_nothing() {
        let (a, b) = (Secret::generate(), Secret::generate());
        assert_ne!(a.id, b.id);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn a_changed_character_anywhere_is_refused() {
        let text = Secret::generate().reveal();
        for i in 4..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let changed = String::from_utf8(bytes).expect("ascii");
            assert!(Secret::parse(&changed).is_err(), "position {i}: {changed}");
        }
    }

    #[test]
    fn what_is_not_a_token_says_why() {
        let text = Secret::generate().reveal();
        assert_eq!(Secret::parse("ghp_abc").unwrap_err(), SecretError::Prefix);
        assert_eq!(Secret::parse(&text[..text.len() - 1]).unwrap_err(), SecretError::Length);
        assert_eq!(
            Secret::parse(&text.replace("ayt_", "ayt_Z")[..text.len()]).unwrap_err(),
            SecretError::Id
        );
    }
}
