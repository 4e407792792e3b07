//! The block cache on the stick (default `/var/tmp/blocks`, as OS Circular had).
//!
//! The directory is a private [`LocalStore`], in a store's layout, so a full
//! cache is itself a store: `blocks/<aa>/<sha1>` (as fetched: compressed),
//! `indexes/<sha1>.json`, `profiles/<sha1>.json`, `catalog.json` and
//! `catalog.json.sig` (the last good, verified catalog), and `tmp/` for writes in
//! progress, emptied at start. The local store gives the atomic writes (a power
//! cut leaves the old file or the new one), and the private directory: 0700, the
//! user's own, no link followed, only regular files read.
//!
//! What the cache adds is policy. It trusts nothing it reads back: callers
//! verify every block and index (see `store`). It enforces a size cap by
//! evicting the least recently used blocks; the catalog, indexes and profiles
//! are small and never evicted.
//!
//! A full or read-only disk means "cache less", never "fail" and never
//! "destroy the offline copy": the cap is enforced only when a block is stored
//! (an `--offline` mount stores nothing, so it evicts nothing), the default cap
//! is never below what the cache holds already (a disk that something else
//! filled does not shrink the cache), blocks of the snapshots that boot offline
//! ([`Cache::keep`]) are never evicted for other blocks, and a write that fails
//! for want of space or a writable disk is logged and skipped: the bytes are
//! served from memory. The catalog and its signature are written as a pair, so a
//! failed write never leaves a signature that does not match the catalog.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use circular_format::layout::{block_path, CATALOG, CATALOG_SIG};
use circular_format::local::{Durability, LocalStore, Visibility};
use circular_format::Sha1Name;

use crate::error::{Error, Result};
use crate::lru::Lru;

/// Room left free on the cache's filesystem when no cap is given: for the
/// guests' overlays and the log.
const DEFAULT_RESERVE_FRACTION: u64 = 10;
const MIN_RESERVE: u64 = 512 << 20;

/// The client's block cache: a private local store with a size cap and a
/// least-recently-used order. Safe to share between threads.
pub struct Cache {
    store: LocalStore,
    /// The cap on block bytes (as stored, compressed).
    max_bytes: u64,
    state: Mutex<State>,
    evicted: AtomicU64,
    /// Blocks evicted since the loader last asked ([`Cache::take_evicted`]).
    evicted_names: Mutex<Vec<Sha1Name>>,
    /// The half of the catalog/signature pair written first, until the other comes.
    pair: Mutex<PendingPair>,
    /// A write already failed for want of space or a writable disk (logged once).
    write_trouble: AtomicBool,
}

/// The catalog's bytes and its signature's, each once given, until both are.
type PendingPair = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The cache's bookkeeping, in memory; the order is rebuilt from file mtimes at start.
#[derive(Default)]
struct State {
    lru: Lru<Sha1Name>,
    /// Blocks whose file mtime this session already moved (the order kept across restarts).
    touched: HashSet<Sha1Name>,
    /// Blocks that must not be evicted now (the snapshot being prefetched).
    protected: HashSet<Sha1Name>,
    /// Blocks of the snapshots that boot offline: never evicted for others.
    kept: HashSet<Sha1Name>,
    /// [`Cache::keep`] has run: until then any block may belong to an offline copy.
    keep_known: bool,
    /// Blocks whose last store was skipped (prefetch waits on them to settle).
    skipped: HashSet<Sha1Name>,
    /// Bytes of writes under way, already counted against the cap.
    reserved: u64,
}

/// What `store_block` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// The block is in the cache (now, or it already was).
    Written,
    /// Not written: making room would evict protected blocks, or the disk is full.
    Skipped(String),
}

impl State {
    /// Picks the oldest unprotected blocks to free `need` bytes; `None` if impossible.
    fn victims(&self, need: u64) -> Option<Vec<Sha1Name>> {
        let (out, freed) = self.evictable(need);
        (freed >= need).then_some(out)
    }

    /// The oldest blocks that may go (neither protected nor kept), until they free `need`
    /// bytes or run out, with the bytes they free.
    fn evictable(&self, need: u64) -> (Vec<Sha1Name>, u64) {
        let mut freed = 0;
        let mut out = Vec::new();
        for (id, size) in self.lru.oldest_first() {
            if freed >= need {
                break;
            }
            if !self.protected.contains(id) && !self.kept.contains(id) {
                freed += size;
                out.push(*id);
            }
        }
        (out, freed)
    }

    fn note_skipped(&mut self, id: Sha1Name) {
        // Bounded: only a prefetch at the cap waits on this.
        if self.skipped.len() >= 4096 {
            self.skipped.clear();
        }
        self.skipped.insert(id);
    }

    /// Bytes over the cap if `incoming` more were added.
    fn excess(&self, incoming: u64, max: u64) -> u64 {
        (self.lru.total() + self.reserved + incoming).saturating_sub(max)
    }
}

impl Cache {
    /// Opens (creating) the cache in `dir`. `max_bytes` `None` means: what the
    /// cache holds now plus the free space, minus a reserve of a tenth of the
    /// filesystem (at least 512 MiB); never less than what it holds now.
    /// Nothing is evicted here: a cap smaller than the cache takes effect with
    /// [`Cache::enforce_cap`] or the next block stored.
    ///
    /// # Errors
    /// [`circular_format::Error::NotPrivate`] (as [`Error::Format`]) when `dir`
    /// or a directory in it is a link or belongs to another user; an I/O error
    /// when it cannot be made or `tmp/` cannot be listed, or when the
    /// filesystem's size cannot be read for the default cap.
    pub fn open(dir: &Path, max_bytes: Option<u64>) -> Result<Cache> {
        let store = LocalStore::create(dir, Visibility::Private)?;
        // Leftovers of writes cut short by a crash or power loss.
        store.clear_tmp()?;
        let scan = store.scan_blocks();
        for problem in &scan.problems {
            log::warn!("cache: {problem}; the blocks there are not counted");
        }
        let mut found: Vec<_> = scan.files.into_iter().filter_map(|f| Some((f.id?, f.len, f.modified))).collect();
        found.sort_by_key(|(_, _, mtime)| *mtime);
        let mut state = State::default();
        for (id, size, _) in found {
            state.lru.insert(id, size);
        }
        let max_bytes = match max_bytes {
            Some(max) => max,
            None => default_cap(dir, state.lru.total())?,
        };
        Ok(Cache {
            store,
            max_bytes,
            state: Mutex::new(state),
            evicted: AtomicU64::new(0),
            evicted_names: Mutex::new(Vec::new()),
            pair: Mutex::new((None, None)),
            write_trouble: AtomicBool::new(false),
        })
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        self.store.root()
    }

    /// The cap on cached block bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes of blocks cached now (as stored, compressed).
    pub fn total_bytes(&self) -> u64 {
        self.lock().lru.total()
    }

    /// Blocks evicted since the cache was opened.
    pub fn evicted_blocks(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// True when block `id` is cached (by the cache's bookkeeping; not read).
    pub fn has_block(&self, id: &Sha1Name) -> bool {
        self.lock().lru.contains(id)
    }

    /// Counts how many of `ids` are cached (one lock for all of them).
    pub fn count_cached<'a>(&self, ids: impl IntoIterator<Item = &'a Sha1Name>) -> u64 {
        let state = self.lock();
        ids.into_iter().filter(|id| state.lru.contains(id)).count() as u64
    }

    /// The stored (compressed) bytes of a block, if cached. Not verified here.
    pub fn read_block(&self, id: &Sha1Name) -> Option<Vec<u8>> {
        if !self.has_block(id) {
            return None;
        }
        let path = block_path(id);
        match self.store.read(&path) {
            Ok(bytes) => {
                let first_use = {
                    let mut state = self.lock();
                    state.lru.touch(id) && state.touched.insert(*id)
                };
                if first_use {
                    // Keeps the order across restarts; failure only costs accuracy.
                    let _ = self.store.touch(&path);
                }
                Some(bytes)
            }
            Err(_) => {
                self.lock().lru.remove(id);
                None
            }
        }
    }

    /// Deletes a block (one that failed verification).
    pub fn remove_block(&self, id: &Sha1Name) {
        self.lock().lru.remove(id);
        let _ = self.store.remove(&block_path(id));
    }

    /// Stores a block's bytes, evicting old blocks to stay under the cap. A full
    /// disk evicts more and tries once again; it never fails the caller's read.
    pub fn store_block(&self, id: &Sha1Name, bytes: &[u8]) -> Stored {
        self.store(id, bytes, true)
    }

    /// Stores a block's bytes only if they fit under the cap and on the disk as
    /// they are: nothing is evicted for them (the background fill).
    pub fn store_block_within_cap(&self, id: &Sha1Name, bytes: &[u8]) -> Stored {
        self.store(id, bytes, false)
    }

    fn store(&self, id: &Sha1Name, bytes: &[u8], evict: bool) -> Stored {
        let size = bytes.len() as u64;
        // Room is made and reserved under one lock, so concurrent writers
        // cannot together overshoot the cap.
        let victims = {
            let mut state = self.lock();
            if state.lru.contains(id) {
                return Stored::Written;
            }
            let need = state.excess(size, self.max_bytes);
            let victims = if need == 0 {
                Some(Vec::new())
            } else if evict {
                state.victims(need)
            } else {
                None
            };
            let Some(victims) = victims else {
                state.note_skipped(*id);
                return Stored::Skipped(
                    "the cache cap is reached and the rest is in use or kept for offline use".into(),
                );
            };
            self.forget(&mut state, &victims);
            state.reserved += size;
            victims
        };
        self.delete_evicted(&victims);
        let path = block_path(id);
        // A lost name after a power cut costs a refetch; the bytes under a
        // name are always whole. One fsync per block, not two, on a slow stick.
        let mut result = self.store.write(&path, bytes, Durability::Contents);
        if evict && matches!(&result, Err(e) if errno(e) == Some(libc::ENOSPC)) {
            // Old blocks make room for new ones, but never the kept or
            // protected ones: if only those are left, this block is not cached.
            if self.evict(size.max(1 << 20) * 16) {
                result = self.store.write(&path, bytes, Durability::Contents);
            }
        }
        let mut state = self.lock();
        state.reserved -= size;
        match result {
            Ok(()) => {
                state.lru.insert(*id, size);
                state.touched.insert(*id);
                state.skipped.remove(id);
                Stored::Written
            }
            Err(e) => {
                state.note_skipped(*id);
                drop(state);
                self.write_failed(&e);
                Stored::Skipped(e.to_string())
            }
        }
    }

    /// Evicts (least recently used, never kept or protected blocks) until the
    /// cache is under its cap. False if it cannot: what is left is kept.
    pub fn enforce_cap(&self) -> bool {
        let victims = {
            let mut state = self.lock();
            let need = state.excess(0, self.max_bytes);
            if need == 0 {
                return true;
            }
            // As many as it takes, or every one that may go.
            let (victims, _) = state.evictable(need);
            self.forget(&mut state, &victims);
            victims
        };
        self.delete_evicted(&victims);
        self.lock().excess(0, self.max_bytes) == 0
    }

    /// Logs a write that failed for want of space or a writable disk, once:
    /// the cache then holds less, and reads go on.
    fn write_failed(&self, e: &circular_format::Error) {
        let trouble = matches!(errno(e), Some(libc::ENOSPC | libc::EROFS | libc::EDQUOT));
        if !trouble {
            log::debug!("cache write failed: {e}");
        } else if !self.write_trouble.swap(true, Ordering::Relaxed) {
            log::warn!(
                "the cache disk is full or read-only ({e}); caching less, reads go on from the network and memory"
            );
        }
    }

    /// Makes room on a full disk: evicts least-recently-used blocks that may go
    /// (neither kept nor protected) until they free `want` bytes, or every one of
    /// them when they hold less. `want` is a batch, not a need: any room lets the
    /// write that met ENOSPC be tried again. False when no block may go, which
    /// is also the case before [`Cache::keep`] has run.
    fn evict(&self, want: u64) -> bool {
        let victims = {
            let mut state = self.lock();
            // Before the mount has said which blocks are kept (the catalog is
            // written first), any block may be an offline copy's: none may go.
            if !state.keep_known {
                return false;
            }
            // Not `victims()`, which is all or nothing: with less than `want`
            // evictable (any cache under 16 MiB), a full disk evicted nothing
            // and stopped caching for good (found by the soak test, e2e/soak.sh).
            let (victims, _) = state.evictable(want);
            if victims.is_empty() {
                return false;
            }
            self.forget(&mut state, &victims);
            victims
        };
        self.delete_evicted(&victims);
        true
    }

    /// Takes evicted blocks out of the index and records them as evicted, under
    /// the state lock: whoever then sees a block gone ([`Cache::has_block`]) also
    /// finds it in [`Cache::take_evicted`]. The files go after the lock is released
    /// ([`Cache::delete_evicted`]).
    fn forget(&self, state: &mut State, victims: &[Sha1Name]) {
        for id in victims {
            state.lru.remove(id);
        }
        self.evicted.fetch_add(victims.len() as u64, Ordering::Relaxed);
        self.evicted_names.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(victims);
    }

    fn delete_evicted(&self, victims: &[Sha1Name]) {
        for id in victims {
            let _ = self.store.remove(&block_path(id));
        }
    }

    /// The blocks evicted since the last call, oldest first (the loader counts
    /// those fetched on a guess and never read as wasted).
    pub fn take_evicted(&self) -> Vec<Sha1Name> {
        std::mem::take(&mut *self.evicted_names.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Would storing `incoming` more bytes evict a protected block? (Prefetch
    /// stops there rather than push out the snapshot it is fetching.)
    pub fn would_evict_protected(&self, incoming: u64) -> bool {
        let state = self.lock();
        let need = state.excess(incoming, self.max_bytes);
        need > 0 && state.victims(need).is_none()
    }

    /// Sets the blocks eviction must leave alone while a prefetch is current.
    pub fn protect(&self, ids: HashSet<Sha1Name>) {
        let mut state = self.lock();
        state.protected = ids;
        state.skipped.clear();
    }

    /// Sets the blocks of the snapshots that boot offline: they are never
    /// evicted to make room for other blocks (see the module documentation).
    pub fn keep(&self, ids: HashSet<Sha1Name>) {
        let mut state = self.lock();
        state.kept = ids;
        state.keep_known = true;
    }

    /// Adds to the blocks kept for offline use ([`Cache::keep`]): a snapshot the
    /// fill has cached whole boots offline from now on.
    pub fn keep_also(&self, ids: impl IntoIterator<Item = Sha1Name>) {
        self.lock().kept.extend(ids);
    }

    /// True when the last attempt to store `id` was skipped (cap or disk full).
    pub fn was_skipped(&self, id: &Sha1Name) -> bool {
        self.lock().skipped.contains(id)
    }

    /// Reads a small file kept beside the blocks (`catalog.json`,
    /// `indexes/…`), named by its [`circular_format::layout`] path; `None` when
    /// it is missing or unreadable. Not verified here.
    pub fn read_file(&self, name: &str) -> Option<Vec<u8>> {
        self.store.read(name).ok()
    }

    /// Writes a small file atomically and durably (`catalog.json`,
    /// `indexes/<sha1>.json`): the name survives a power cut, so the newest
    /// verified catalog is never lost once written.
    ///
    /// `catalog.json` and `catalog.json.sig` are a pair: the one given first is
    /// held until the other comes, then both are written to `tmp/` and renamed
    /// into place together, so a failed write never leaves a signature that
    /// does not match the catalog.
    ///
    /// A disk that is full (after evicting what may be evicted) or read-only
    /// is not an error: the file is not kept, a warning says so, and the caller
    /// goes on with the bytes in memory.
    ///
    /// # Errors
    /// Any other I/O error of the write, as [`Error::Format`].
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        if name == CATALOG || name == CATALOG_SIG {
            let (catalog, sig) = {
                let mut pair = self.pair.lock().unwrap_or_else(|p| p.into_inner());
                if name == CATALOG {
                    pair.0 = Some(bytes.to_vec());
                } else {
                    pair.1 = Some(bytes.to_vec());
                }
                let (Some(catalog), Some(sig)) = (&pair.0, &pair.1) else {
                    return Ok(());
                };
                let both = (catalog.clone(), sig.clone());
                *pair = (None, None);
                both
            };
            let files = [(CATALOG_SIG, sig.as_slice()), (CATALOG, catalog.as_slice())];
            return self.small_write(|| self.store.write_together(&files));
        }
        self.small_write(|| self.store.write(name, bytes, Durability::Named))
    }

    /// Runs a small file's write; on ENOSPC evicts a little (never kept or
    /// protected blocks) and tries once more; a full or read-only disk is
    /// logged and not an error.
    fn small_write(&self, write: impl Fn() -> circular_format::Result<()>) -> Result<()> {
        let mut result = write();
        if matches!(&result, Err(e) if errno(e) == Some(libc::ENOSPC)) && self.evict(4 << 20) {
            result = write();
        }
        match result {
            Err(e) if matches!(errno(&e), Some(libc::ENOSPC | libc::EROFS | libc::EDQUOT)) => {
                self.write_failed(&e);
                Ok(())
            }
            other => Ok(other?),
        }
    }

    /// Deletes a small file (one that failed verification).
    pub fn remove_file(&self, name: &str) {
        let _ = self.store.remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain bookkeeping; a panic elsewhere must not stop reads.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The default cache directory on a desktop, following the XDG base directory
/// rules: `$XDG_CACHE_HOME/circular`, else `$HOME/.cache/circular`, else
/// (no home at all) `/var/tmp/circular-<uid>`, which the private checks then
/// guard. The appliance passes its partition's directory with `--cache`.
pub fn default_dir() -> std::path::PathBuf {
    default_dir_from(|var| std::env::var_os(var), nix::unistd::geteuid().as_raw())
}

/// [`default_dir`] with the environment given (tests).
fn default_dir_from(env: impl Fn(&str) -> Option<std::ffi::OsString>, uid: u32) -> std::path::PathBuf {
    // The XDG rules: a relative path in these variables is invalid and ignored.
    let absolute = |var: &str| env(var).map(std::path::PathBuf::from).filter(|p| p.is_absolute());
    if let Some(xdg) = absolute("XDG_CACHE_HOME") {
        return xdg.join("circular");
    }
    if let Some(home) = absolute("HOME") {
        return home.join(".cache").join("circular");
    }
    std::path::PathBuf::from(format!("/var/tmp/circular-{uid}"))
}

/// The OS error number under a format error, if it is an I/O error.
fn errno(e: &circular_format::Error) -> Option<i32> {
    match e {
        circular_format::Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

fn default_cap(dir: &Path, cached: u64) -> Result<u64> {
    let stat =
        nix::sys::statvfs::statvfs(dir).map_err(|e| Error::io(dir, std::io::Error::from_raw_os_error(e as i32)))?;
    let fragment = stat.fragment_size() as u64;
    let total = stat.blocks() as u64 * fragment;
    let free = stat.blocks_available() as u64 * fragment;
    let reserve = (total / DEFAULT_RESERVE_FRACTION).max(MIN_RESERVE);
    // Room to grow is the free space less the reserve; a disk that something
    // else filled does not shrink the cache (that would destroy offline copies).
    Ok(cached + free.saturating_sub(reserve))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> Sha1Name {
        Sha1Name::of(&n.to_le_bytes())
    }

    #[test]
    fn store_read_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Some(1 << 20)).unwrap();
        assert_eq!(cache.store_block(&id(1), b"one"), Stored::Written);
        assert_eq!(cache.read_block(&id(1)).unwrap(), b"one");
        assert!(cache.read_block(&id(2)).is_none());
        let path = dir.path().join(block_path(&id(1)));
        assert!(path.exists());
        std::fs::write(dir.path().join("tmp/leftover"), b"x").unwrap();
        drop(cache);
        let cache = Cache::open(dir.path(), Some(1 << 20)).unwrap();
        assert_eq!(cache.total_bytes(), 3);
        assert!(!dir.path().join("tmp/leftover").exists());
        cache.remove_block(&id(1));
        assert!(!path.exists());
    }

    #[test]
    fn a_full_disk_evicts_what_may_go_even_when_it_is_less_than_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Some(1 << 30)).unwrap();
        let data = [0u8; 100];
        for n in 0..3 {
            cache.store_block(&id(n), &data);
        }
        cache.protect([id(2)].into_iter().collect());
        // Before the mount says which blocks are kept, any may be an offline copy's.
        assert!(!cache.evict(16 << 20));
        assert_eq!(cache.evicted_blocks(), 0);
        cache.keep(HashSet::new());
        // ENOSPC asks for a 16 MiB batch; 200 evictable bytes must still go.
        assert!(cache.evict(16 << 20));
        assert!(!cache.has_block(&id(0)) && !cache.has_block(&id(1)));
        assert!(cache.has_block(&id(2)), "a protected block was evicted");
        assert_eq!(cache.evicted_blocks(), 2);
        // Only protected blocks left: nothing may go, and it says so.
        assert!(!cache.evict(16 << 20));
        assert_eq!(cache.evicted_blocks(), 2);
    }

    #[test]
    fn evicts_least_recently_used_and_respects_protection() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Some(300)).unwrap();
        let data = [0u8; 100];
        for n in 0..3 {
            cache.store_block(&id(n), &data);
        }
        cache.read_block(&id(0)); // 0 is now the most recent; 1 is the oldest
        cache.store_block(&id(3), &data);
        assert!(!cache.has_block(&id(1)));
        assert!(cache.has_block(&id(0)) && cache.has_block(&id(2)) && cache.has_block(&id(3)));
        assert_eq!(cache.evicted_blocks(), 1);
        cache.protect([id(0), id(2), id(3)].into_iter().collect());
        assert!(cache.would_evict_protected(100));
        assert!(matches!(cache.store_block(&id(4), &data), Stored::Skipped(_)));
        assert!(cache.total_bytes() <= 300);
    }

    #[test]
    fn a_link_planted_as_a_block_is_not_followed_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"someone else's").unwrap();
        let root = dir.path().join("cache");
        let cache = Cache::open(&root, Some(1 << 20)).unwrap();
        cache.store_block(&id(1), b"one");
        let path = root.join(block_path(&id(1)));
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        assert!(cache.read_block(&id(1)).is_none(), "the link is not read");
        assert!(!cache.has_block(&id(1)), "so the block is fetched again");
        assert_eq!(cache.store_block(&id(1), b"one"), Stored::Written);
        assert_eq!(cache.read_block(&id(1)).unwrap(), b"one");
        assert_eq!(std::fs::read(&outside).unwrap(), b"someone else's");
    }

    #[test]
    fn a_cache_whose_tmp_is_a_link_is_refused_and_nothing_is_deleted_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("notes.txt"), b"precious").unwrap();
        let root = dir.path().join("cache");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&victim, root.join("tmp")).unwrap();
        let err = Cache::open(&root, Some(1 << 20)).err().unwrap();
        assert!(matches!(err, Error::Format(circular_format::Error::NotPrivate { .. })), "{err}");
        assert!(victim.join("notes.txt").exists());
    }

    /// Sets a cached block's file mtime `secs_ago` seconds in the past.
    fn age(dir: &Path, n: u32, secs_ago: u64) {
        let file = std::fs::File::options().write(true).open(dir.join(block_path(&id(n)))).unwrap();
        file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago)).unwrap();
    }

    #[test]
    fn the_lru_order_survives_restarts_and_a_use_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Some(300)).unwrap();
        for n in 0..3 {
            assert_eq!(cache.store_block(&id(n), &[n as u8; 100]), Stored::Written);
        }
        drop(cache);
        // Written in earlier sessions: 0 the oldest, 2 the newest.
        age(dir.path(), 0, 3000);
        age(dir.path(), 1, 2000);
        age(dir.path(), 2, 1000);
        // This session uses 0 only: that use must outlive the session.
        let cache = Cache::open(dir.path(), Some(300)).unwrap();
        assert_eq!(cache.read_block(&id(0)).unwrap(), [0u8; 100]);
        drop(cache);
        // Next session: a new block evicts the least recently used, 1,
        // not the hot 0 and not the newest 2 (an order rebuilt backwards).
        let cache = Cache::open(dir.path(), Some(300)).unwrap();
        assert_eq!(cache.store_block(&id(3), &[3u8; 100]), Stored::Written);
        assert!(!cache.has_block(&id(1)), "the least recently used block goes first");
        assert!(cache.has_block(&id(0)), "the block used last session survives the restart");
        assert!(cache.has_block(&id(2)) && cache.has_block(&id(3)));
        assert!(!dir.path().join(block_path(&id(1))).exists(), "its file is deleted");
    }

    #[test]
    fn smaller_cap_on_reopen_evicts() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Some(1000)).unwrap();
        for n in 0..5 {
            cache.store_block(&id(n), &[1u8; 100]);
        }
        drop(cache);
        let cache = Cache::open(dir.path(), Some(250)).unwrap();
        assert_eq!(cache.total_bytes(), 500, "opening evicts nothing");
        assert!(cache.enforce_cap());
        assert!(cache.total_bytes() <= 250);
    }

    #[test]
    fn the_default_directory_follows_xdg() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |var: &str| pairs.iter().find(|(k, _)| *k == var).map(|(_, v)| std::ffi::OsString::from(v))
        };
        let dir = default_dir_from(env(&[("XDG_CACHE_HOME", "/x/cache"), ("HOME", "/home/a")]), 1000);
        assert_eq!(dir, Path::new("/x/cache/circular"));
        let dir = default_dir_from(env(&[("XDG_CACHE_HOME", "relative"), ("HOME", "/home/a")]), 1000);
        assert_eq!(dir, Path::new("/home/a/.cache/circular"));
        assert_eq!(default_dir_from(env(&[]), 1000), Path::new("/var/tmp/circular-1000"));
    }

    #[test]
    fn kept_blocks_are_never_evicted_for_others_and_a_skip_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Some(300)).unwrap();
        let data = [0u8; 100];
        for n in 0..3 {
            cache.store_block(&id(n), &data);
        }
        cache.keep([id(0), id(1)].into_iter().collect());
        assert_eq!(cache.store_block(&id(3), &data), Stored::Written, "2, not kept, makes room");
        assert!(!cache.has_block(&id(2)));
        cache.keep([id(0), id(1), id(3)].into_iter().collect());
        assert!(matches!(cache.store_block(&id(4), &data), Stored::Skipped(_)), "only kept ones are left to evict");
        assert!(cache.was_skipped(&id(4)) && !cache.was_skipped(&id(3)));
        cache.keep([id(0), id(1)].into_iter().collect());
        cache.read_block(&id(3)); // 3 is now the newest; the kept ones are older and still stay
        assert_eq!(cache.store_block(&id(5), &data), Stored::Written);
        assert!(!cache.has_block(&id(3)));
        assert!(cache.has_block(&id(0)) && cache.has_block(&id(1)));
    }

    #[test]
    fn a_cap_below_the_cache_takes_effect_only_when_enforced_and_spares_kept_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Some(1000)).unwrap();
        for n in 0..5 {
            cache.store_block(&id(n), &[1u8; 100]);
        }
        drop(cache);
        let cache = Cache::open(dir.path(), Some(100)).unwrap();
        cache.keep([id(0), id(1), id(2)].into_iter().collect());
        assert!(!cache.enforce_cap(), "the kept blocks alone are over the cap");
        assert_eq!(cache.total_bytes(), 300);
        assert!((0..3).all(|n| cache.has_block(&id(n))));
    }

    #[test]
    fn the_catalog_and_its_signature_are_written_as_a_pair() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), Some(1000)).unwrap();
        cache.write_file(CATALOG_SIG, b"sig 1").unwrap();
        assert!(cache.read_file(CATALOG_SIG).is_none(), "held until its catalog comes");
        cache.write_file(CATALOG, b"catalog 1").unwrap();
        assert_eq!(cache.read_file(CATALOG).unwrap(), b"catalog 1");
        assert_eq!(cache.read_file(CATALOG_SIG).unwrap(), b"sig 1");
        // Either order.
        cache.write_file(CATALOG, b"catalog 2").unwrap();
        assert_eq!(cache.read_file(CATALOG).unwrap(), b"catalog 1");
        cache.write_file(CATALOG_SIG, b"sig 2").unwrap();
        assert_eq!(cache.read_file(CATALOG).unwrap(), b"catalog 2");
        assert_eq!(cache.read_file(CATALOG_SIG).unwrap(), b"sig 2");
        // A pair that cannot be written whole leaves the old catalog: the
        // signature's name is a non-empty directory, so its rename (the first)
        // fails and the catalog is not renamed either.
        std::fs::remove_file(dir.path().join(CATALOG_SIG)).unwrap();
        std::fs::create_dir(dir.path().join(CATALOG_SIG)).unwrap();
        std::fs::write(dir.path().join(CATALOG_SIG).join("x"), b"").unwrap();
        cache.write_file(CATALOG_SIG, b"sig 3").unwrap();
        let _ = cache.write_file(CATALOG, b"catalog 3");
        assert_eq!(cache.read_file(CATALOG).unwrap(), b"catalog 2", "the catalog is not replaced alone");
        assert!(std::fs::read_dir(dir.path().join("tmp")).unwrap().next().is_none(), "no temp file left");
    }
}
