//! `sha256` digests: image IDs, manifest digests, blob digests, diff IDs.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A sha256 digest, written `sha256:<64 lowercase hex>`.
///
/// Stored as the raw 32 bytes: `Copy`, cheap to hash and compare. Image IDs are digests of
/// the config blob ([`crate::model::ImageId`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Only `sha256` is supported.
    #[error("unsupported digest algorithm {0:?}")]
    Algorithm(String),
    /// Not 64 lowercase hex characters.
    #[error("invalid format: no 64-byte hexadecimal value")]
    Hex,
}

impl Digest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// From the 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses `sha256:<64 hex>` (lowercase only).
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        match s.split_once(':') {
            Some(("sha256", hex)) => Self::from_hex(hex),
            Some((alg, _)) => Err(DigestError::Algorithm(alg.to_owned())),
            None => Err(DigestError::Hex),
        }
    }

    /// Parses `sha256:<64 hex>` or the bare 64 hex (image ID input forms).
    pub fn parse_id(s: &str) -> Result<Self, DigestError> {
        if s.len() == 64 && !s.contains(':') {
            Self::from_hex(s)
        } else {
            Self::parse(s)
        }
    }

    /// Parses exactly 64 lowercase hex characters.
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::Hex);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).map_err(|_| DigestError::Hex)?;
        Ok(Self(out))
    }

    /// The 64 lowercase hex characters.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex characters (podman/docker "short ID").
    pub fn short(&self) -> String {
        let mut h = self.hex();
        h.truncate(12);
        h
    }

    /// Whether the hex form starts with `prefix` (lowercase hex expected).
    pub fn hex_starts_with(&self, prefix: &str) -> bool {
        let p = prefix.as_bytes();
        if p.len() > 64 {
            return false;
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        p.iter().enumerate().all(|(i, &c)| {
            let byte = self.0[i / 2];
            let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            HEX[nibble as usize] == c
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256 over streamed data.
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    /// A new hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_forms() {
        let d = Digest::of(b"hello");
        let s = d.to_string();
        assert!(s.starts_with("sha256:2cf24dba"));
        assert_eq!(Digest::parse(&s), Ok(d));
        assert_eq!(Digest::parse_id(&d.hex()), Ok(d));
        assert!(d.hex_starts_with("2cf24d"));
        assert!(!d.hex_starts_with("2cf24e"));
        assert_eq!(Digest::parse("sha256:aa"), Err(DigestError::Hex));
        assert!(Digest::parse(&s.to_uppercase()).is_err());
        assert!(Digest::parse("md5:abc").is_err());
    }
}
