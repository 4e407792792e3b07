//! The data path of a read, without FUSE: which blocks a byte range of an image
//! touches, asking the loader for all of them at once (and for readahead
//! after them), and assembling the answer. Zero blocks are never fetched.
//!
//! A read gets exactly the bytes the index promises, or an error: a block that
//! does not hold the length its position needs is an error for that read
//! ([`ErrorKind::CorruptBlock`](crate::error::ErrorKind)), never a panic and never
//! short or padded bytes.

use std::ops::Range;
use std::sync::Arc;

use circular_format::index::Index;

use crate::error::Error;
use crate::loader::{Loader, Priority};

/// The answer to a read: a slice of one cached block (no copy), or bytes
/// assembled from several blocks and zeros.
pub enum ReadOut {
    /// `range` of one block's bytes (checked to lie inside them).
    Slice(Arc<Vec<u8>>, Range<usize>),
    /// Bytes assembled from several blocks.
    Owned(Vec<u8>),
}

impl ReadOut {
    /// The bytes of the answer.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            // `read_image` only builds a Slice whose range lies inside the block.
            ReadOut::Slice(block, range) => block.get(range.clone()).unwrap_or_default(),
            ReadOut::Owned(bytes) => bytes,
        }
    }
}

/// Reads `size` bytes at `offset` of the image `index` describes: asks for
/// every block the range touches at once (so they are fetched in parallel),
/// then for the blocks after it that the loader's readahead window gives
/// (`sequential`: the read continues the reader's previous one; see
/// [`Loader::readahead`]), and assembles the answer. A read past the
/// end is short (empty at or after the end), as for any file.
///
/// # Errors
/// The error of the first block that could not be had (see [`Loader::get`]):
/// shared with every other reader waiting on that block, hence the `Arc`.
pub fn read_image(
    loader: &Loader,
    index: &Index,
    offset: u64,
    size: usize,
    sequential: bool,
) -> Result<ReadOut, Arc<Error>> {
    if offset >= index.image_size || size == 0 {
        return Ok(ReadOut::Owned(Vec::new()));
    }
    let end = offset.saturating_add(size as u64).min(index.image_size);
    let block_size = u64::from(index.block_size);
    let first = (offset / block_size) as usize;
    let last = ((end - 1) / block_size) as usize;
    let entry = |n: usize| index.blocks.get(n).copied().flatten();
    for n in first..=last {
        if let Some(id) = entry(n) {
            loader.request(&id, index.block_len(n), Priority::Demand);
        }
    }
    let ahead = loader.readahead(sequential, entry(first).as_ref());
    let ahead_end = (last + 1).saturating_add(ahead).min(index.blocks.len());
    for n in last + 1..ahead_end {
        if let Some(id) = entry(n) {
            loader.request(&id, index.block_len(n), Priority::Readahead);
        }
    }
    let range_in = |n: usize| {
        let block_start = n as u64 * block_size;
        let from = offset.max(block_start) - block_start;
        let to = end.min(block_start + block_size) - block_start;
        from as usize..to as usize
    };
    // The loader promises exactly `block_len` bytes; checked anyway, so that no
    // index can make a read index past a block.
    let checked = |n: usize, data: &Arc<Vec<u8>>, range: &Range<usize>| {
        if data.get(range.clone()).is_some() {
            return Ok(());
        }
        Err(Arc::new(Error::Internal {
            what: format!("block {n} of the image"),
            detail: format!("{} bytes where the read needs {range:?}", data.len()),
        }))
    };
    // The common case, a read inside one stored block, is answered from the block itself.
    if first == last {
        if let Some(id) = entry(first) {
            let data = loader.get(&id, index.block_len(first))?;
            let range = range_in(first);
            checked(first, &data, &range)?;
            return Ok(ReadOut::Slice(data, range));
        }
    }
    let mut out = Vec::with_capacity((end - offset) as usize);
    for n in first..=last {
        let range = range_in(n);
        match entry(n) {
            None => out.resize(out.len() + range.len(), 0),
            Some(id) => {
                let data = loader.get(&id, index.block_len(n))?;
                checked(n, &data, &range)?;
                out.extend_from_slice(&data[range]);
            }
        }
    }
    Ok(ReadOut::Owned(out))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use circular_format::block;
    use circular_format::catalog::{BootSettings, Catalog, Snapshot};
    use circular_format::layout::{block_path, index_path, CATALOG, CATALOG_SIG};
    use circular_format::{signing, Sha1Name};
    use time::OffsetDateTime;

    use super::*;
    use crate::error::ErrorKind;
    use crate::store::{StoreConfig, VerifiedStore};

    pub(crate) const BS: u32 = 4096;

    /// Deterministic bytes that no two seeds share.
    pub(crate) fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed).collect()
    }

    /// Writes block files for `image` cut in `BS` blocks and returns the index
    /// (zero blocks as `None`).
    pub(crate) fn publish(store: &Path, image: &[u8]) -> Index {
        let blocks = image
            .chunks(BS as usize)
            .map(|chunk| {
                if block::is_zero(chunk) {
                    return None;
                }
                let enc = block::encode(chunk, 3).unwrap();
                write(&store.join(block_path(&enc.id)), &enc.file);
                Some(enc.id)
            })
            .collect();
        Index { image_size: image.len() as u64, block_size: BS, blocks }
    }

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// A signed `file://` store with one snapshot per index, opened as a loader
    /// with `memory` bytes of memory cache. The indexes are published as given
    /// (a test may hand-craft one the publisher would not write).
    pub(crate) fn loader(dir: &Path, indexes: &[Index], memory: u64) -> Loader {
        loader_with(dir, indexes, memory, 2, None)
    }

    /// [`loader`] with readahead's largest window and the disk cache's cap (`None`: the default).
    pub(crate) fn loader_with(
        dir: &Path,
        indexes: &[Index],
        memory: u64,
        readahead: usize,
        cache_max: Option<u64>,
    ) -> Loader {
        let store = dir.join("store");
        let now = OffsetDateTime::now_utc();
        let mut catalog = Catalog::new(now, now + time::Duration::days(7));
        for (n, index) in indexes.iter().enumerate() {
            let bytes = index.to_bytes();
            let id = Sha1Name::of(&bytes);
            write(&store.join(index_path(&id)), &bytes);
            let snapshot = Snapshot {
                date: format!("2026-{:02}-{:02}", 1 + n / 28, 1 + n % 28),
                index: id,
                image_size: index.image_size,
                stored_bytes: 0,
                profile: None,
                boot: BootSettings::default(),
                notes: String::new(),
                media: Default::default(),
                login: None,
                source: None,
            };
            catalog.add_snapshot("deb", None, snapshot);
        }
        let key = signing::generate();
        let bytes = catalog.to_bytes();
        write(&store.join(CATALOG), &bytes);
        write(&store.join(CATALOG_SIG), signing::sign(&bytes, &key).as_bytes());
        let mut config =
            StoreConfig::new(vec![format!("file://{}", store.display())], vec![key.verifying_key()], dir.join("cache"));
        config.deadline = std::time::Duration::from_secs(5);
        config.cache_max = cache_max;
        let store = Arc::new(VerifiedStore::open(config).unwrap());
        Loader::new(store, 4, memory, readahead).unwrap()
    }

    fn read(loader: &Loader, index: &Index, offset: u64, size: usize) -> Result<Vec<u8>, Arc<Error>> {
        read_image(loader, index, offset, size, true).map(|out| out.as_slice().to_vec())
    }

    #[test]
    fn reads_span_blocks_zeros_and_a_ragged_tail() {
        let dir = tempfile::tempdir().unwrap();
        // Data, zeros, data, and a 100-byte tail.
        let mut image = bytes(BS as usize, 1);
        image.extend(vec![0u8; BS as usize]);
        image.extend(bytes(BS as usize, 2));
        image.extend(bytes(100, 3));
        let index = publish(&dir.path().join("store"), &image);
        assert_eq!(index.blocks[1], None);
        let loader = loader(dir.path(), std::slice::from_ref(&index), 64 << 20);
        let size = image.len() as u64;
        // Inside one block, across all four (zeros included), the tail alone, past the end.
        for (offset, len) in [(10, 100), (0, image.len()), (100, 3 * BS as usize), (3 * u64::from(BS) + 7, 500)] {
            let want = &image[offset as usize..(offset as usize + len).min(image.len())];
            assert_eq!(read(&loader, &index, offset, len).unwrap(), want, "{offset}+{len}");
        }
        assert!(read(&loader, &index, size, 10).unwrap().is_empty());
        assert!(read(&loader, &index, size + 5000, 10).unwrap().is_empty());
        assert!(read(&loader, &index, 0, 0).unwrap().is_empty());
        // A read inside the zero block is never fetched.
        assert_eq!(read(&loader, &index, u64::from(BS) + 5, 50).unwrap(), vec![0u8; 50]);
        // A huge size does not overflow.
        assert_eq!(read(&loader, &index, size - 1, usize::MAX).unwrap(), &image[image.len() - 1..]);
    }

    #[test]
    fn an_image_of_zero_blocks_reads_as_zeros_and_fetches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index { image_size: 3 * u64::from(BS) - 1, block_size: BS, blocks: vec![None, None, None] };
        let loader = loader(dir.path(), std::slice::from_ref(&index), 64 << 20);
        assert_eq!(read(&loader, &index, 0, 5 * BS as usize).unwrap(), vec![0u8; 3 * BS as usize - 1]);
        assert_eq!(loader.store().status().cache_misses, 0);
        let empty = Index { image_size: 0, block_size: BS, blocks: vec![] };
        assert!(read(&loader, &empty, 0, 10).unwrap().is_empty());
    }

    /// security-cases/memory-cache-length.sh: a signed index that names the
    /// short tail block at a full-size position too. Block 1 (10 bytes) read
    /// first puts it in memory; block 0 must then not get those 10 bytes.
    #[test]
    fn a_tail_block_at_a_full_size_position_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = bytes(BS as usize, 1);
        image.extend(bytes(10, 2));
        let honest = publish(&dir.path().join("store"), &image);
        let tail = honest.blocks[1];
        let bad = Index { image_size: u64::from(BS) + 10, block_size: BS, blocks: vec![tail, tail] };
        let loader = loader(dir.path(), &[bad.clone(), honest.clone()], 64 << 20);
        for _ in 0..3 {
            assert_eq!(read(&loader, &bad, u64::from(BS), 10).unwrap(), &image[BS as usize..]);
            for (offset, len) in [(0, 4096), (0, 10), (5, 20), (0, BS as usize + 10)] {
                let err = read(&loader, &bad, offset, len).unwrap_err();
                // From the disk cache: corrupt-block; from the sources: no valid copy (of the right length).
                assert!(matches!(err.kind(), ErrorKind::CorruptBlock | ErrorKind::NoValidCopy), "{err}");
                assert_eq!(err.errno(), libc::EIO);
                assert!(err.to_string().contains("where the index needs 4096"), "{err}");
            }
        }
        // The honest snapshot beside it still reads.
        assert_eq!(read(&loader, &honest, 0, image.len()).unwrap(), image);
        // The other order: the full-size position first, then the tail.
        let dir = tempfile::tempdir().unwrap();
        publish(&dir.path().join("store"), &image);
        let loader = super::tests::loader(dir.path(), std::slice::from_ref(&bad), 64 << 20);
        assert!(read(&loader, &bad, 0, 4096).is_err());
        assert_eq!(read(&loader, &bad, u64::from(BS), 10).unwrap(), &image[BS as usize..]);
        assert!(read(&loader, &bad, 0, 4096).is_err());
    }

    /// A small index with big blocks cannot make the loader hold many of them:
    /// the fetches in flight together stay under the memory cap, and a block
    /// bigger than the cap still loads (alone).
    #[test]
    fn fetches_in_flight_stay_under_the_memory_cap() {
        let dir = tempfile::tempdir().unwrap();
        let image: Vec<u8> = (0..24u8).flat_map(|n| bytes(BS as usize, n + 1)).collect();
        let index = publish(&dir.path().join("store"), &image);
        let cap = 4 * u64::from(BS);
        let loader = loader(dir.path(), std::slice::from_ref(&index), cap);
        for n in 0..index.blocks.len() {
            loader.request(&index.blocks[n].unwrap(), BS as usize, Priority::Readahead);
        }
        assert_eq!(read(&loader, &index, 0, image.len()).unwrap(), image);
        let peak = loader.peak_fetch_bytes();
        assert!(peak > 0 && peak <= cap, "{peak} bytes in flight, cap {cap}");
        // A cap smaller than one block: one fetch at a time, and reads still work.
        let dir = tempfile::tempdir().unwrap();
        publish(&dir.path().join("store"), &image);
        let loader = super::tests::loader(dir.path(), std::slice::from_ref(&index), 1);
        assert_eq!(read(&loader, &index, 0, image.len()).unwrap(), image);
        assert_eq!(loader.peak_fetch_bytes(), 2 * u64::from(BS));
    }

    /// Any index/length combination: every read gives the right bytes or an
    /// error, never a panic (the lengths come from the index alone).
    #[test]
    fn no_arrangement_of_blocks_panics_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = bytes(2 * BS as usize, 1);
        image.extend(bytes(333, 2));
        let honest = publish(&dir.path().join("store"), &image);
        let names: Vec<Option<Sha1Name>> = honest.blocks.iter().copied().chain([None]).collect();
        let mut indexes = Vec::new();
        for a in &names {
            for b in &names {
                for tail in [1, 333, BS as u64] {
                    let blocks = vec![*a, *b, *a];
                    indexes.push(Index { image_size: 2 * u64::from(BS) + tail, block_size: BS, blocks });
                }
            }
        }
        let loader = loader(dir.path(), &indexes, 1 << 20);
        for index in &indexes {
            for (offset, len) in [(0, 10), (u64::from(BS) - 5, 10), (2 * u64::from(BS), 400), (0, 3 * BS as usize)] {
                if let Ok(bytes) = read(&loader, index, offset, len) {
                    let end = (offset + len as u64).min(index.image_size);
                    assert_eq!(bytes.len() as u64, end - offset);
                }
            }
        }
    }
}
