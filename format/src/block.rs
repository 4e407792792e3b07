//! Block encoding: one zstd frame of the block's bytes, named by the SHA-1 of the
//! uncompressed bytes. Decoding is bounded by the block size (no decompression
//! bombs) and checks the name before a single byte is handed out.

use crate::error::{Error, Result};
use crate::hash::Sha1Name;

/// The default block size: 256 KiB, as LBCAS used.
pub const DEFAULT_BLOCK_SIZE: u32 = 262_144;
/// Smallest block size a store may use, in bytes.
pub const MIN_BLOCK_SIZE: u32 = 4096;
/// Largest block size a store may use, in bytes (16 MiB).
pub const MAX_BLOCK_SIZE: u32 = 16 << 20;
/// zstd level for published blocks: fast to build, decompresses at memory speed.
pub const DEFAULT_LEVEL: i32 = 3;

/// Checks that a block size (bytes) is a power of two in the supported range,
/// and returns it as the `u32` an index holds.
///
/// # Errors
/// [`Error::Invalid`] when it is not a power of two from [`MIN_BLOCK_SIZE`] to
/// [`MAX_BLOCK_SIZE`].
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
    // `from_ne_bytes` of an unaligned chunk compiles to one load: no `unsafe`
    // alignment view is needed for the speed.
    let words = data.chunks_exact(8);
    let tail = words.remainder();
    words.map(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])).all(|w| w == 0)
        && tail.iter().all(|&b| b == 0)
}

/// An encoded block: its name and the bytes of the file that stores it.
pub struct Encoded {
    /// SHA-1 of the uncompressed bytes (with collision detection).
    pub id: Sha1Name,
    /// The block file: one zstd frame of the bytes.
    pub file: Vec<u8>,
}

/// The most bytes a block file of a `len`-byte block can hold: one zstd frame,
/// which for incompressible data is a little over `len`. zstd's own bound
/// (`ZSTD_COMPRESSBOUND` in zstd.h: `len + len/256`, plus up to 64 bytes under
/// 128 KiB) is below this one. A fetched file longer than this is refused
/// unread, and the cache checks its room against it.
pub fn max_file_len(len: usize) -> u64 {
    len as u64 + len as u64 / 128 + 1024
}

/// Names and compresses one block at zstd `level` (1 to 19).
///
/// # Errors
/// [`Error::Collision`] when the bytes carry a SHA-1 collision attack;
/// [`Error::Invalid`] when zstd refuses (an impossible level).
pub fn encode(data: &[u8], level: i32) -> Result<Encoded> {
    let id = Sha1Name::of_published(data)?;
    let file = zstd::bulk::compress(data, level).map_err(|e| Error::invalid("block compression", e.to_string()))?;
    Ok(Encoded { id, file })
}

/// Decompresses a block file and checks that it holds exactly the block `id`.
/// `max_len` is the block size in bytes: a frame that would expand past it is
/// rejected. The caller still checks the length the index needs (a short last
/// block decodes to fewer bytes).
///
/// # Errors
/// [`Error::CorruptBlock`] when `file` is not one zstd frame of at most
/// `max_len` bytes, or its bytes do not hash to `id`.
pub fn decode(id: &Sha1Name, file: &[u8], max_len: usize) -> Result<Vec<u8>> {
    let corrupt = |reason: String| Error::CorruptBlock { id: *id, reason };
    let mut out = Vec::with_capacity(max_len);
    zstd::bulk::Decompressor::new()
        .and_then(|mut d| d.decompress_to_buffer(file, &mut out))
        .map_err(|e| corrupt(format!("not a zstd frame of at most {max_len} bytes ({e})")))?;
    // decompress_to_buffer never writes past the capacity it was given.
    let actual = Sha1Name::of(&out);
    if actual != *id {
        return Err(corrupt(format!("its bytes hash to {actual}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incompressible_block_fits_its_file_bound() {
        for len in [1, 4096, 65536, 262_144] {
            // xorshift64*: bytes zstd cannot compress.
            let mut x = 0x2545_F491_4F6C_DD1Du64;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x >> 12;
                    x ^= x << 25;
                    x ^= x >> 27;
                    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
                })
                .collect();
            let file = encode(&data, DEFAULT_LEVEL).unwrap().file;
            assert!(file.len() > len, "{len}: the data compressed, so it proves nothing");
            assert!((file.len() as u64) <= max_file_len(len), "{len}: {} bytes", file.len());
        }
        // The bound itself, spelled out (docs/FORMAT.md): a looser one would let
        // a server send more than any block file can be.
        for (len, bound) in [(1, 1025), (4096, 5152), (262_144, 265_216)] {
            assert_eq!(max_file_len(len), bound, "{len}");
        }
    }

    #[test]
    fn round_trip() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let enc = encode(&data, DEFAULT_LEVEL).unwrap();
        assert_eq!(enc.id, Sha1Name::of(&data));
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
