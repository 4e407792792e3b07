//! Block encoding: one zstd frame of the block's bytes, named by the SHA-1 of the
//! uncompressed bytes. Decoding is bounded by the block size (no decompression
//! bombs) and checks the name before a single byte is handed out.

use crate::error::{Error, Result};
use crate::hash::BlockId;

/// The default block size: 256 KiB, as LBCAS used.
pub const DEFAULT_BLOCK_SIZE: u32 = 262_144;
/// Smallest and largest block sizes a store may use.
pub const MIN_BLOCK_SIZE: u32 = 4096;
pub const MAX_BLOCK_SIZE: u32 = 16 << 20;
/// zstd level for published blocks: fast to build, decompresses at memory speed.
pub const DEFAULT_LEVEL: i32 = 3;

/// Checks that a block size is a power of two in the supported range.
pub fn check_block_size(block_size: u64) -> Result<u32> {
    let ok =
        block_size.is_power_of_two() && (u64::from(MIN_BLOCK_SIZE)..=u64::from(MAX_BLOCK_SIZE)).contains(&block_size);
    if !ok {
        return Err(Error::invalid(
            "block size",
            format!("{block_size} is not a power of two between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE}"),
        ));
    }
    Ok(block_size as u32)
}

/// True when every byte is zero: such blocks are not stored (the index says `null`).
pub fn is_zero(data: &[u8]) -> bool {
    // Comparing 8-byte words lets the compiler vectorize; the tail is rare.
    let (head, words, tail) = {
        // SAFETY: u64 has no invalid bit patterns, so viewing aligned bytes as u64 is sound.
        unsafe { data.align_to::<u64>() }
    };
    head.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

/// An encoded block: its name and the bytes of the file that stores it.
pub struct Encoded {
    pub id: BlockId,
    pub file: Vec<u8>,
}

/// Names and compresses one block.
pub fn encode(data: &[u8], level: i32) -> Result<Encoded> {
    let id = BlockId::of_published(data).map_err(|e| Error::invalid("image data", e.to_string()))?;
    let file = zstd::bulk::compress(data, level).map_err(|e| Error::invalid("block compression", e.to_string()))?;
    Ok(Encoded { id, file })
}

/// Decompresses a block file and checks that it holds exactly the block `id`.
/// `max_len` is the block size: a frame that would expand past it is rejected.
pub fn decode(id: &BlockId, file: &[u8], max_len: usize) -> Result<Vec<u8>> {
    let corrupt = |reason: String| Error::CorruptBlock { id: *id, reason };
    let mut out = Vec::with_capacity(max_len);
    zstd::bulk::Decompressor::new()
        .and_then(|mut d| d.decompress_to_buffer(file, &mut out))
        .map_err(|e| corrupt(format!("not a zstd frame of at most {max_len} bytes ({e})")))?;
    // decompress_to_buffer never writes past the capacity it was given.
    let actual = BlockId::of(&out);
    if actual != *id {
        return Err(corrupt(format!("its bytes hash to {actual}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let enc = encode(&data, DEFAULT_LEVEL).unwrap();
        assert_eq!(enc.id, BlockId::of(&data));
        assert_eq!(decode(&enc.id, &enc.file, data.len()).unwrap(), data);
    }

    #[test]
    fn wrong_bytes_are_refused() {
        let enc = encode(b"hello block", 3).unwrap();
        let other = encode(b"another block", 3).unwrap();
        let err = decode(&enc.id, &other.file, 4096).unwrap_err();
        assert!(err.to_string().contains("hash to"), "{err}");
        let err = decode(&enc.id, b"garbage", 4096).unwrap_err();
        assert!(err.to_string().contains("zstd"), "{err}");
        let mut truncated = enc.file.clone();
        truncated.truncate(truncated.len() - 3);
        assert!(decode(&enc.id, &truncated, 4096).is_err());
    }

    #[test]
    fn decompression_bomb_is_refused() {
        let big = vec![7u8; 1 << 20];
        let enc = encode(&big, 3).unwrap();
        assert!(enc.file.len() < 1000);
        let err = decode(&enc.id, &enc.file, 4096).unwrap_err();
        assert!(err.to_string().contains("at most 4096"), "{err}");
    }

    #[test]
    fn zero_detection_and_sizes() {
        assert!(is_zero(&[0u8; 1000]));
        let mut v = vec![0u8; 1001];
        v[1000] = 1;
        assert!(!is_zero(&v));
        v[1000] = 0;
        v[3] = 1;
        assert!(!is_zero(&v[1..]));
        assert!(check_block_size(262_144).is_ok());
        assert!(check_block_size(1000).is_err());
        assert!(check_block_size(1 << 30).is_err());
    }
}
