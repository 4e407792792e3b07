//! Names of blocks, indexes and profiles: the SHA-1 of the bytes, written as 40
//! lowercase hex digits. [`Sha1Name`] is the one type for all three, since a
//! store names every file by what it holds.
//!
//! Two ways to compute the same digest, each where it belongs:
//! - Publishing names blocks with collision detection (`sha1collisiondetection`,
//!   the algorithm git uses since SHAttered). It gives the plain SHA-1 digest for
//!   every honest input and refuses input crafted as half of a collision pair. A
//!   store built this way holds no block that has a colliding twin.
//! - Reading verifies with plain SHA-1 (`sha1`, hardware SHA extensions where the
//!   CPU has them, about 5x faster here). A mirror that wants to swap a published
//!   block would need a second preimage, which no known SHA-1 attack gives; the
//!   collision attacks need to have shaped the published block, and publishing
//!   refused those.

use std::fmt;
use std::str::FromStr;

use sha1::Digest;
use sha1collisiondetection::Sha1CD;

/// A 20-byte SHA-1 digest naming a block, an index or a profile. It reads and
/// writes (`Display`, `FromStr`, serde) as 40 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha1Name(
    /// The raw digest.
    pub [u8; 20],
);

/// Why bytes could not be hashed: they carry a SHA-1 collision attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the data carries a SHA-1 collision attack")]
pub struct CollisionDetected;

impl Sha1Name {
    /// Plain SHA-1 of `data`: the check a reader makes before using bytes.
    pub fn of(data: &[u8]) -> Sha1Name {
        Sha1Name(sha1::Sha1::digest(data).into())
    }

    /// SHA-1 of `data` for publishing, with collision detection.
    ///
    /// # Errors
    /// [`CollisionDetected`] when `data` was crafted as half of a SHA-1
    /// collision pair; honest data never fails.
    pub fn of_published(data: &[u8]) -> Result<Sha1Name, CollisionDetected> {
        let mut hasher = Sha1CD::default();
        hasher.update(data);
        let mut out = sha1collisiondetection::Output::default();
        hasher.finalize_into_dirty_cd(&mut out).map_err(|_| CollisionDetected)?;
        let mut id = [0u8; 20];
        id.copy_from_slice(&out);
        Ok(Sha1Name(id))
    }

    /// The name as 40 lowercase hex digits (what stores and indexes spell).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(40);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }

    /// The store's fan-out directory: the first two hex digits.
    pub fn fanout(&self) -> String {
        self.to_hex()[..2].to_string()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Why a string is not a SHA-1 name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a SHA-1 name (40 lowercase hex digits)")]
pub struct BadSha1Name(
    /// The text that was refused.
    pub String,
);

/// Parses exactly 40 lowercase hex digits; uppercase is refused, so each name
/// has one spelling (and one path in a store).
impl FromStr for Sha1Name {
    type Err = BadSha1Name;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 40 {
            return Err(BadSha1Name(s.to_string()));
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut id = [0u8; 20];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => id[i] = (hi << 4) | lo,
                _ => return Err(BadSha1Name(s.to_string())),
            }
        }
        Ok(Sha1Name(id))
    }
}

impl fmt::Display for Sha1Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha1Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha1Name({})", self.to_hex())
    }
}

impl serde::Serialize for Sha1Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Sha1Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(Sha1Name::of(b"").to_hex(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(Sha1Name::of(b"abc").to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        assert_eq!(Sha1Name::of_published(&big).unwrap(), Sha1Name::of(&big));
    }

    /// The first 320 bytes of SHAttered's two PDFs (shattered.io, 2017; the copies that
    /// `sha1collisiondetection` ships for its own tests): different bytes, one SHA-1. Any
    /// common suffix keeps the collision, so a block that starts with either is half of a
    /// pair that content addressing cannot tell apart.
    #[test]
    fn publishing_refuses_each_half_of_a_real_collision_pair() {
        let halves: [&[u8]; 2] = [
            include_bytes!("../testdata/shattered-1-prefix.bin"),
            include_bytes!("../testdata/shattered-2-prefix.bin"),
        ];
        assert_ne!(halves[0], halves[1]);
        assert_eq!(Sha1Name::of(halves[0]), Sha1Name::of(halves[1]), "the test data is a collision pair");
        for half in halves {
            assert_eq!(Sha1Name::of_published(half), Err(CollisionDetected));
            let mut block = half.to_vec();
            block.resize(65536, 0x5a);
            assert_eq!(Sha1Name::of_published(&block), Err(CollisionDetected), "with a suffix");
            assert!(matches!(crate::block::encode(&block, 3), Err(crate::Error::Collision(_))));
        }
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let id = Sha1Name::of(b"circular");
        assert_eq!(id.to_hex().parse::<Sha1Name>().unwrap(), id);
        assert_eq!(id.fanout(), id.to_hex()[..2]);
        assert!("ABC".parse::<Sha1Name>().is_err());
        assert!("A9993E364706816ABA3E25717850C26C9CD0D89D".parse::<Sha1Name>().is_err());
        assert!("g9993e364706816aba3e25717850c26c9cd0d89d".parse::<Sha1Name>().is_err());
    }
}
