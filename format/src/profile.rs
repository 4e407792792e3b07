//! Boot profiles: the order in which a snapshot's boot first reads its blocks,
//! recorded once by the publisher (`image-build profile`) and published as
//! `profiles/<sha1>.json`, named by the SHA-1 of its bytes and pinned by the
//! signed catalog. Clients prefetch in this order.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::Sha1Name;
use crate::index::Index;

/// The `format` field of a profile this crate reads and writes.
pub const PROFILE_FORMAT: &str = "circular-profile/1";

/// A boot profile, `profiles/<sha1>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// [`PROFILE_FORMAT`].
    pub format: String,
    /// The index of the snapshot the profile was recorded on.
    pub index: Sha1Name,
    /// That index's block size, in bytes.
    pub block_size: u32,
    /// Block numbers in the order the boot first read them.
    pub blocks: Vec<u32>,
}

impl Profile {
    /// A profile of the snapshot whose index is `index`, in this crate's format.
    pub fn new(index: Sha1Name, block_size: u32, blocks: Vec<u32>) -> Profile {
        Profile { format: PROFILE_FORMAT.to_string(), index, block_size, blocks }
    }

    /// Parses profile bytes. `what` names the file in errors.
    ///
    /// # Errors
    /// [`Error::Json`] when the bytes are not a profile's JSON;
    /// [`Error::Invalid`] for another `format`.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Profile> {
        let profile: Profile =
            serde_json::from_slice(bytes).map_err(|source| Error::Json { what: what.to_string(), source })?;
        if profile.format != PROFILE_FORMAT {
            return Err(Error::invalid(
                what,
                format!("format is {:?}, this program reads {PROFILE_FORMAT:?}", profile.format),
            ));
        }
        Ok(profile)
    }

    /// The canonical bytes (what is stored and hashed): compact JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings, numbers and names cannot fail.
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The profile's stored blocks with their lengths, in order, each once;
    /// zero blocks and numbers past the image are skipped.
    pub fn blocks_in(&self, index: &Index) -> Vec<(Sha1Name, usize)> {
        let mut seen = std::collections::HashSet::new();
        self.blocks
            .iter()
            .filter_map(|&n| {
                let n = n as usize;
                let id = (*index.blocks.get(n)?)?;
                seen.insert(id).then(|| (id, index.block_len(n)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_kept_and_zero_or_unknown_blocks_are_skipped() {
        let (a, b) = (Sha1Name::of(b"a"), Sha1Name::of(b"b"));
        let index = Index { image_size: 4 * 4096, block_size: 4096, blocks: vec![Some(a), None, Some(b), Some(a)] };
        let profile = Profile::new(Sha1Name::of(b"index"), 4096, vec![2, 1, 0, 3, 99]);
        let back = Profile::parse(&profile.to_bytes(), "p").unwrap();
        assert_eq!(back, profile);
        assert_eq!(profile.blocks_in(&index), vec![(b, 4096), (a, 4096)]);
        assert!(Profile::parse(b"{\"format\":\"x\"}", "p").is_err());
    }
}
