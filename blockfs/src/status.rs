//! What a running mount is doing, as the file `<mountpoint>/status.json`.
//!
//! The menu and `blockfs status` read it with [`Status::read`]; a person can `cat`
//! it. The mount also shows the verified catalog as `<mountpoint>/catalog.json`,
//! read back with [`read_catalog`].

use std::path::Path;

use circular_format::catalog::Catalog;
use circular_format::layout::CATALOG;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorReport, Result};

/// The status file at the root of the mount. Beside it, the verified catalog
/// under the store's own name ([`circular_format::layout::CATALOG`]).
pub const STATUS_FILE: &str = "status.json";

/// What a running mount reports in `status.json` (and `blockfs status --json`): the menu
/// and people read it. Byte counts are in bytes, block counts in blocks of the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// True when the last request to a source got an answer.
    pub online: bool,
    /// True when the mount was started with `--offline`.
    pub offline_mode: bool,
    /// Each source (mirror) in the order given, with what it last answered.
    pub sources: Vec<SourceStatus>,
    /// True when the catalog came from the cache because no source answered.
    pub catalog_from_cache: bool,
    /// RFC 3339 times of the catalog in use.
    pub catalog_generated: String,
    /// See `catalog_generated`: when the catalog in use expires (RFC 3339).
    pub catalog_expires: String,
    /// Compressed bytes and blocks fetched from sources since the mount started.
    pub fetched_bytes: u64,
    /// See `fetched_bytes`: blocks fetched from sources since the mount started.
    pub fetched_blocks: u64,
    /// Block reads answered from the disk cache, from memory, and from the network.
    pub cache_hits: u64,
    /// See `cache_hits`: block reads answered from memory.
    pub memory_hits: u64,
    /// See `cache_hits`: block reads that had to go to the network.
    pub cache_misses: u64,
    /// Fetches under way right now.
    pub in_flight: u64,
    /// Fetch rounds asked again after a backoff because no source answered
    /// (see [`crate::source::FetchCounts`]).
    #[serde(default)]
    pub retries: u64,
    /// Requests sent to the next source while an earlier one was unanswered after 1.5 s.
    #[serde(default)]
    pub hedged_requests: u64,
    /// Copies that came from another source than the one first asked.
    #[serde(default)]
    pub failovers: u64,
    /// Blocks that failed verification (from a source or the cache) and were refetched.
    pub corrupt_blocks: u64,
    /// Blocks the cache cap evicted (least recently used first).
    pub evicted_blocks: u64,
    /// Compressed bytes fetched on a guess (readahead or the boot profile's
    /// prefetch) that no reader read before the cache evicted them: bytes the
    /// link carried for nothing. Blocks still unread at unmount count too (in
    /// the log line blockfs writes then).
    #[serde(default)]
    pub wasted_bytes: u64,
    /// See `wasted_bytes`: those blocks.
    #[serde(default)]
    pub wasted_blocks: u64,
    /// Compressed bytes fetched on a guess and not read yet (wasted if never read).
    #[serde(default)]
    pub unread_ahead_bytes: u64,
    /// See `unread_ahead_bytes`: those blocks.
    #[serde(default)]
    pub unread_ahead_blocks: u64,
    /// Blocks readahead asks for after a sequential read now (it grows on
    /// hits up to `blockfs mount --readahead`, and shrinks when guesses go unread).
    #[serde(default)]
    pub readahead_window: u64,
    /// Bytes the cache holds, and its cap.
    pub cache_bytes: u64,
    /// See `cache_bytes`: the cap, in bytes.
    pub cache_max_bytes: u64,
    /// Every snapshot of the catalog, with how much of it is cached.
    pub snapshots: Vec<SnapshotStatus>,
    /// The profile prefetch under way, if any.
    pub prefetch: Option<PrefetchStatus>,
    /// The background fill of each snapshot opened since the mount started
    /// (blockfs fills the rest of an opened snapshot into the cache once the
    /// reads have gone quiet, so that it boots offline; see `blockfs::fill`).
    #[serde(default)]
    pub fill: Vec<FillStatus>,
    /// Compressed bytes the fill fetched from sources: part of `fetched_bytes`,
    /// not read by any guest (benches take them out of a boot's bytes).
    #[serde(default)]
    pub fill_bytes: u64,
    /// See `fill_bytes`: those blocks.
    #[serde(default)]
    pub fill_blocks: u64,
    /// The last problem a read or an open of an image met (kind and message),
    /// or the last bug caught; `None` while every read worked. Programs decide
    /// on `kind` (see [`crate::ErrorKind`]), people read `message`.
    #[serde(default)]
    pub last_error: Option<ErrorReport>,
}

/// One source (mirror) as `status.json` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// The base URL as given (`https://…/`, `http://…/` or `file:///…/`).
    pub url: String,
    /// `None` until the source has been asked.
    pub reachable: Option<bool>,
    /// What went wrong the last time it was asked, in words; `None` after a good answer.
    pub last_error: Option<String>,
}

/// How much of one snapshot the cache holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    /// The distribution's name in the catalog (`bookworm`).
    pub distribution: String,
    /// The snapshot's date (`YYYY-MM-DD`).
    pub date: String,
    /// False until the snapshot's index has been fetched; the counts are 0 then.
    pub index_cached: bool,
    /// Distinct stored blocks of the snapshot, and how many of them are cached.
    pub total_blocks: u64,
    /// See `total_blocks`: how many of them are in the cache.
    pub cached_blocks: u64,
}

/// The background fill of one opened snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FillStatus {
    /// The distribution.
    pub distribution: String,
    /// Its snapshot's date (`YYYY-MM-DD`).
    pub date: String,
    /// `waiting` (for its turn, or for the reads to go quiet), `filling`,
    /// `done` (every block cached) or `stopped` (see `stopped`).
    pub state: String,
    /// The snapshot's distinct stored blocks in the cache now.
    pub done_blocks: u64,
    /// See `done_blocks`: all of them.
    pub total_blocks: u64,
    /// Why the fill stopped (a full cache, a failed fetch), if it did.
    pub stopped: Option<String>,
}

/// The boot-profile prefetch of one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrefetchStatus {
    /// The distribution being prefetched.
    pub distribution: String,
    /// Its snapshot's date (`YYYY-MM-DD`).
    pub date: String,
    /// Profile blocks already local (cache or memory).
    pub done_blocks: u64,
    /// Blocks the profile lists (those stored: zero blocks are not counted).
    pub total_blocks: u64,
    /// Why prefetch stopped early, if it did (for example, the cache cap).
    pub stopped: Option<String>,
}

impl SnapshotStatus {
    /// Fraction of the snapshot's blocks in the cache; `None` before its index is known.
    pub fn cached_fraction(&self) -> Option<f64> {
        match (self.index_cached, self.total_blocks) {
            (false, _) => None,
            (true, 0) => Some(1.0),
            (true, total) => Some(self.cached_blocks as f64 / total as f64),
        }
    }

    /// Every block is on the stick: the snapshot boots with no network.
    pub fn fully_cached(&self) -> bool {
        self.index_cached && self.cached_blocks >= self.total_blocks
    }
}

impl Status {
    /// Reads the status of the mount at `mountpoint`.
    pub fn read(mountpoint: &Path) -> Result<Status> {
        let path = mountpoint.join(STATUS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { what: path.display().to_string(), source })
    }

    /// The status of one snapshot, if the catalog has it.
    pub fn snapshot(&self, distribution: &str, date: &str) -> Option<&SnapshotStatus> {
        self.snapshots.iter().find(|s| s.distribution == distribution && s.date == date)
    }

    /// The JSON bytes of `status.json` (pretty, one field per line).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// Reads the verified catalog that the mount at `mountpoint` serves.
pub fn read_catalog(mountpoint: &Path) -> Result<Catalog> {
    let path = mountpoint.join(CATALOG);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    Ok(Catalog::parse(&bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions() {
        let mut s = SnapshotStatus::default();
        assert_eq!(s.cached_fraction(), None);
        assert!(!s.fully_cached());
        s.index_cached = true;
        s.total_blocks = 4;
        s.cached_blocks = 1;
        assert_eq!(s.cached_fraction(), Some(0.25));
        s.cached_blocks = 4;
        assert!(s.fully_cached());
        let status = Status { snapshots: vec![s.clone()], ..Status::default() };
        let back: Status = serde_json::from_slice(&status.to_json()).unwrap();
        assert_eq!(back, status);
    }
}
