//! The index: the LBCAS mapping table of one snapshot, from block number to block
//! name (`null` for an all-zero block). It is named by the SHA-1 of its bytes, so the
//! signed catalog pins it and it pins every block.

use serde::{Deserialize, Serialize};

use crate::block::check_block_size;
use crate::error::{Error, Result};
use crate::hash::Sha1Name;

/// The `format` field of an index this crate reads and writes.
pub const INDEX_FORMAT: &str = "circular-index/1";

/// A validated index: `blocks.len() == ceil(image_size / block_size)`, and the
/// block size is a power of two in range (see [`Index::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Size of the image in bytes.
    pub image_size: u64,
    /// Size of every block but the last, in bytes.
    pub block_size: u32,
    /// One entry per block; `None` is a block of zeros that is not stored.
    pub blocks: Vec<Option<Sha1Name>>,
}

#[derive(Serialize, Deserialize)]
struct IndexFile {
    format: String,
    image_size: u64,
    block_size: u64,
    hash: String,
    compression: String,
    blocks: Vec<Option<Sha1Name>>,
}

impl Index {
    /// Parses and validates index bytes. `what` names the file in errors.
    ///
    /// # Errors
    /// [`Error::Json`] when the bytes are not an index's JSON; [`Error::Invalid`]
    /// for another `format`, `hash` or `compression`, a bad block size, or a
    /// block count that does not match the image size.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Index> {
        let file: IndexFile =
            serde_json::from_slice(bytes).map_err(|source| Error::Json { what: what.to_string(), source })?;
        let invalid = |reason: String| Error::invalid(what, reason);
        if file.format != INDEX_FORMAT {
            return Err(invalid(format!("format is {:?}, this program reads {INDEX_FORMAT:?}", file.format)));
        }
        if file.hash != "sha1" || file.compression != "zstd" {
            return Err(invalid(format!(
                "hash {:?} with compression {:?} is not supported (sha1 with zstd is)",
                file.hash, file.compression
            )));
        }
        let block_size = check_block_size(file.block_size).map_err(|e| invalid(e.to_string()))?;
        let expected = file.image_size.div_ceil(u64::from(block_size));
        if file.blocks.len() as u64 != expected {
            return Err(invalid(format!(
                "it lists {} blocks, but an image of {} bytes in blocks of {} has {}; the index is truncated or does not belong to this image",
                file.blocks.len(),
                file.image_size,
                block_size,
                expected
            )));
        }
        Ok(Index { image_size: file.image_size, block_size, blocks: file.blocks })
    }

    /// The canonical bytes of the index (what is stored and hashed): compact
    /// JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = IndexFile {
            format: INDEX_FORMAT.to_string(),
            image_size: self.image_size,
            block_size: u64::from(self.block_size),
            hash: "sha1".to_string(),
            compression: "zstd".to_string(),
            blocks: self.blocks.clone(),
        };
        // Serializing plain strings, numbers and names cannot fail.
        let mut out = serde_json::to_vec(&file).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Length of block `n` in bytes: `block_size`, except for a shorter last
    /// block, and 0 past the end of the image.
    pub fn block_len(&self, n: usize) -> usize {
        let start = n as u64 * u64::from(self.block_size);
        (self.image_size.saturating_sub(start)).min(u64::from(self.block_size)) as usize
    }

    /// The distinct stored blocks, in first-use order.
    pub fn distinct_blocks(&self) -> Vec<Sha1Name> {
        let mut seen = std::collections::HashSet::new();
        self.blocks.iter().flatten().filter(|id| seen.insert(**id)).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Index {
        let a = Sha1Name::of(b"a");
        Index { image_size: 262_144 * 2 + 10, block_size: 262_144, blocks: vec![Some(a), None, Some(a)] }
    }

    #[test]
    fn round_trip_and_lengths() {
        let idx = sample();
        let back = Index::parse(&idx.to_bytes(), "test index").unwrap();
        assert_eq!(back, idx);
        assert_eq!(idx.block_len(0), 262_144);
        assert_eq!(idx.block_len(2), 10);
        assert_eq!(idx.distinct_blocks().len(), 1);
    }

    #[test]
    fn truncated_or_wrong_counts_are_refused() {
        let bytes = sample().to_bytes();
        let err = Index::parse(&bytes[..bytes.len() / 2], "idx").unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let mut idx = sample();
        idx.blocks.pop();
        let err = Index::parse(&idx.to_bytes(), "idx").unwrap_err();
        assert!(err.to_string().contains("lists 2 blocks"), "{err}");
        let text = String::from_utf8(sample().to_bytes()).unwrap();
        let other = text.replace("circular-index/1", "circular-index/9");
        assert!(Index::parse(other.as_bytes(), "idx").is_err());
        let other = text.replace("262144", "1000");
        assert!(Index::parse(other.as_bytes(), "idx").is_err());
        // Either one unsupported is enough to refuse.
        for (from, to) in [("\"sha1\"", "\"sha256\""), ("\"zstd\"", "\"gzip\"")] {
            assert!(text.contains(from), "the index names {from}: {text}");
            let err = Index::parse(text.replace(from, to).as_bytes(), "idx").unwrap_err();
            assert!(err.to_string().contains("is not supported"), "{err}");
        }
    }
}
