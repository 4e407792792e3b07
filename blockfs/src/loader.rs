//! The block loader: many fetches in flight, one per block however many readers
//! want it, served by priority (a reader waiting now, then readahead, then
//! profile prefetch), with the latest decoded blocks kept in memory.
//!
//! Prefetch never takes the last workers: `DEMAND_RESERVE` of them stay free for
//! readers, so a demand read waits for at most its own fetch.
//!
//! Readahead has to earn its bytes, because on a slow link every guessed block
//! delays a needed one. It asks for nothing while a profile prefetch is feeding
//! the guest (the profile already says what the boot needs). Its window starts at
//! one block after a sequential read, doubles on each sequential read whose
//! first block readahead had guessed (a hit), up to the mount's `--readahead`,
//! and halves when guessed blocks go unread: the reader left the stream before
//! reading them, or the cache evicted them unread. Blocks fetched from a source
//! on a guess (readahead or prefetch) and never read before eviction or unmount
//! are counted as wasted ([`Loader::ahead`]).
//!
//! A block is known by its name *and* the length its position in the index
//! needs ([`BlockKey`]): a block decoded for one length is never handed out
//! for a position that needs another. A signed index that names the short tail
//! block at a full-size position gets a clear error for that read (the block
//! does not hold the bytes the index needs), not a panic.
//!
//! Memory follows the lengths the signed index gives (from its image size and
//! block size), never a constant: the decoded blocks kept total at most the
//! memory cap, and the fetches in flight together (file and decoded bytes) hold
//! at most that much again (one fetch always runs, however big its block), so a
//! small index with huge blocks cannot make the client hold many of them at once.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use circular_format::Sha1Name;

use crate::error::{Error, Result};
use crate::lru::Lru;
use crate::store::VerifiedStore;

/// Workers that prefetch may never occupy.
const DEMAND_RESERVE: usize = 2;

/// A block as one position of an index needs it: its name and its length in
/// bytes ([`circular_format::index::Index::block_len`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// The block's name.
    pub id: Sha1Name,
    /// The length the index needs, in bytes.
    pub len: usize,
}

/// What a wait for a block gives: its verified bytes (exactly `len` of them),
/// or why not. Many readers may share one result, hence the `Arc`s.
pub type BlockResult = std::result::Result<Arc<Vec<u8>>, Arc<Error>>;

/// Who is waiting for a block, most urgent last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// The background fill of an opened snapshot ([`crate::fill`]): only when
    /// nothing else waits. Its blocks go to the disk cache within its cap (never
    /// evicting another block) and not into memory, and they are no guess:
    /// they are not counted as unread or wasted.
    Fill,
    /// The boot profile, ahead of the guest: only when nothing else waits.
    Prefetch,
    /// Blocks after a sequential read, on a guess.
    Readahead,
    /// A reader is blocked on it now.
    Demand,
}

struct Job {
    priority: Priority,
    /// Earlier requests first within a priority.
    seq: u64,
    key: BlockKey,
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Job {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.priority.cmp(&other.priority).then_with(|| other.seq.cmp(&self.seq))
    }
}

enum SlotState {
    Queued(Priority),
    Running,
    Done(BlockResult),
}

/// One block being loaded; readers wait on it.
struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Job>,
    slots: HashMap<BlockKey, Arc<Slot>>,
    seq: u64,
    running_prefetch: usize,
    /// Bytes the running fetches hold at most: for each, the fetched file and
    /// the decoded block, twice its length ([`fetch_cost`]).
    running_bytes: u64,
    /// The most `running_bytes` has been (for tests).
    peak_bytes: u64,
    shutdown: bool,
}

/// How many blocks readahead asks for after a sequential read. It starts at
/// one block, doubles on each sequential read that hits (its first block was
/// guessed by readahead), never beyond `max` (the mount's `--readahead`), and
/// halves when guessed blocks go unread. A window of 0 (`max` 0) never reads ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    blocks: usize,
    max: usize,
}

impl Window {
    /// A window that may grow to `max` blocks, starting at one.
    pub fn new(max: usize) -> Window {
        Window { blocks: max.min(1), max }
    }

    /// The blocks to read ahead of a read: 0 after a read that is not sequential;
    /// after a sequential one, the window, doubled first if the read was a hit.
    pub fn next(&mut self, sequential: bool, hit: bool) -> usize {
        if !sequential {
            return 0;
        }
        if hit {
            self.blocks = self.blocks.saturating_mul(2);
        }
        self.blocks = self.blocks.max(1).min(self.max);
        self.blocks
    }

    /// Guessed blocks went unread: half the window (at least one block).
    pub fn shrink(&mut self) {
        self.blocks = (self.blocks / 2).max(1).min(self.max);
    }

    /// The window now, in blocks.
    pub fn blocks(&self) -> usize {
        self.blocks
    }
}

/// What became of the blocks fetched on a guess, for `status.json`. Bytes are
/// the compressed bytes that came from a source (as `fetched_bytes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AheadCounts {
    /// Fetched on a guess (readahead or profile prefetch), never read, and
    /// evicted from the cache (or still unread at unmount).
    pub wasted_blocks: u64,
    /// See `wasted_blocks`: their bytes.
    pub wasted_bytes: u64,
    /// Fetched on a guess and not read yet: wasted if never read.
    pub unread_blocks: u64,
    /// See `unread_blocks`: their bytes.
    pub unread_bytes: u64,
    /// Readahead's window now, in blocks.
    pub window_blocks: u64,
}

/// Blocks guessed by readahead or prefetch, and what became of them.
struct Ahead {
    /// Fetched from a source on a guess and not read yet: bytes moved.
    unread: HashMap<Sha1Name, u64>,
    /// Asked for by readahead since the reader's stream began, not read yet.
    guessed: HashSet<Sha1Name>,
    window: Window,
    wasted_blocks: u64,
    wasted_bytes: u64,
}

impl Ahead {
    /// A guessed block left unread for good (evicted, or unmounted).
    fn waste(&mut self, id: &Sha1Name) -> bool {
        let Some(bytes) = self.unread.remove(id) else { return false };
        self.wasted_blocks += 1;
        self.wasted_bytes += bytes;
        true
    }
}

#[derive(Default)]
struct Memory {
    lru: Lru<BlockKey>,
    blocks: HashMap<BlockKey, Arc<Vec<u8>>>,
}

struct Shared {
    store: Arc<VerifiedStore>,
    queue: Mutex<Queue>,
    wake: Condvar,
    memory: Mutex<Memory>,
    memory_max: u64,
    workers: usize,
    in_flight: AtomicU64,
    memory_hits: AtomicU64,
    /// Profile prefetches running now ([`Loader::prefetching`]).
    prefetching: AtomicUsize,
    ahead: Mutex<Ahead>,
    /// When a reader last asked for a block ([`Loader::quiet_for`]).
    last_read: Mutex<Instant>,
    /// Compressed bytes and blocks the fill fetched from sources.
    fill_bytes: AtomicU64,
    fill_blocks: AtomicU64,
}

/// The block loader of one mount: fetch threads over a [`VerifiedStore`], a
/// priority queue with one slot per [`BlockKey`], and the memory cache.
pub struct Loader {
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent; a panic elsewhere must not stop reads.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Loader {
    /// Starts `workers` fetch threads and keeps up to `memory_max` bytes of
    /// decoded blocks; readahead's window grows to at most `readahead_max` blocks.
    ///
    /// # Errors
    /// [`Error::Io`] when a thread cannot be started.
    pub fn new(store: Arc<VerifiedStore>, workers: usize, memory_max: u64, readahead_max: usize) -> Result<Loader> {
        let workers = workers.max(DEMAND_RESERVE + 1);
        let shared = Arc::new(Shared {
            store,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            memory: Mutex::new(Memory::default()),
            memory_max,
            workers,
            in_flight: AtomicU64::new(0),
            memory_hits: AtomicU64::new(0),
            prefetching: AtomicUsize::new(0),
            ahead: Mutex::new(Ahead {
                unread: HashMap::new(),
                guessed: HashSet::new(),
                window: Window::new(readahead_max),
                wasted_blocks: 0,
                wasted_bytes: 0,
            }),
            last_read: Mutex::new(Instant::now()),
            fill_bytes: AtomicU64::new(0),
            fill_blocks: AtomicU64::new(0),
        });
        let mut threads = Vec::new();
        for n in 0..workers {
            let shared = shared.clone();
            let handle = thread::Builder::new()
                .name(format!("fetch-{n}"))
                .spawn(move || shared.work())
                .map_err(|e| Error::io("fetch thread", e))?;
            threads.push(handle);
        }
        Ok(Loader { shared, threads })
    }

    /// The verified store the blocks come from.
    pub fn store(&self) -> &Arc<VerifiedStore> {
        &self.shared.store
    }

    /// Fetches under way right now.
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Block reads answered from memory since the start.
    pub fn memory_hits(&self) -> u64 {
        self.shared.memory_hits.load(Ordering::Relaxed)
    }

    /// Asks for a block without waiting (readahead, prefetch, or a demand read
    /// that will wait later, so that all its blocks are fetched at once).
    /// Readahead asks for nothing while a profile prefetch runs.
    pub fn request(&self, id: &Sha1Name, len: usize, priority: Priority) {
        let key = BlockKey { id: *id, len };
        if priority == Priority::Readahead && self.shared.prefetching.load(Ordering::Relaxed) > 0 {
            return;
        }
        if lock(&self.shared.memory).blocks.contains_key(&key) {
            return;
        }
        if priority == Priority::Readahead {
            lock(&self.shared.ahead).guessed.insert(key.id);
        }
        self.shared.enqueue(key, priority);
    }

    /// Marks a profile prefetch as running until the guard is dropped: readahead
    /// asks for nothing meanwhile (see the module documentation).
    pub fn prefetching(&self) -> PrefetchGuard<'_> {
        self.shared.prefetching.fetch_add(1, Ordering::Relaxed);
        PrefetchGuard(&self.shared.prefetching)
    }

    /// How many blocks to read ahead of a read whose first block is `first`
    /// (`None`: a zero block), given whether it continues the reader's last
    /// read. Updates the window: a hit is a sequential read whose first block
    /// readahead guessed; a read that is not sequential ends the stream, and
    /// guesses it left unread shrink the window. 0 while a prefetch runs.
    pub fn readahead(&self, sequential: bool, first: Option<&Sha1Name>) -> usize {
        let mut ahead = lock(&self.shared.ahead);
        self.shared.note_evictions(&mut ahead);
        let hit = first.is_some_and(|id| ahead.guessed.remove(id));
        if !sequential && !ahead.guessed.is_empty() {
            ahead.guessed.clear();
            ahead.window.shrink();
        }
        let blocks = ahead.window.next(sequential, hit);
        if self.shared.prefetching.load(Ordering::Relaxed) > 0 {
            return 0;
        }
        blocks
    }

    /// Blocks fetched on a guess: wasted so far, unread now, and readahead's window.
    pub fn ahead(&self) -> AheadCounts {
        let mut ahead = lock(&self.shared.ahead);
        self.shared.note_evictions(&mut ahead);
        AheadCounts {
            wasted_blocks: ahead.wasted_blocks,
            wasted_bytes: ahead.wasted_bytes,
            unread_blocks: ahead.unread.len() as u64,
            unread_bytes: ahead.unread.values().sum(),
            window_blocks: ahead.window.blocks() as u64,
        }
    }

    /// The verified bytes of a block that is `len` bytes long, waiting for them
    /// if needed. The bytes are exactly `len` long.
    ///
    /// # Errors
    /// Why the block could not be had: what [`VerifiedStore::load_block`] says
    /// (unreachable after the deadline, not cached offline, no valid copy, or a
    /// block that does not hold `len` bytes), shared by every waiter; or
    /// [`Error::Internal`] when the fetch thread failed.
    pub fn get(&self, id: &Sha1Name, len: usize) -> BlockResult {
        let key = BlockKey { id: *id, len };
        *lock(&self.shared.last_read) = Instant::now();
        let result = self.wait(key);
        {
            let mut ahead = lock(&self.shared.ahead);
            ahead.unread.remove(id);
            ahead.guessed.remove(id);
        }
        match result {
            // The loader's own promise, checked: a caller may slice by `len`.
            Ok(data) if data.len() != len => Err(Arc::new(Error::Internal {
                what: format!("block {id}"),
                detail: format!("the loader gave {} bytes for a position of {len}", data.len()),
            })),
            other => other,
        }
    }

    fn wait(&self, key: BlockKey) -> BlockResult {
        if let Some(data) = self.shared.memory_lookup(&key) {
            return Ok(data);
        }
        let slot = self.shared.enqueue(key, Priority::Demand);
        let Some(slot) = slot else {
            // Finished between the memory check and the enqueue; evicted since
            // only if memory is tiny: then fetch it (from the disk cache) again.
            if let Some(data) = self.shared.memory_lookup(&key) {
                return Ok(data);
            }
            return self.shared.load_now(key);
        };
        wait_slot(&slot)
    }

    /// Fetches a block into the disk cache at the fill's priority, the lowest
    /// (see [`Priority::Fill`]), and waits for it. A reader that wants the same
    /// block meanwhile takes the fetch over at its own priority.
    ///
    /// # Errors
    /// As [`Loader::get`].
    pub fn fill(&self, id: &Sha1Name, len: usize) -> BlockResult {
        let key = BlockKey { id: *id, len };
        match self.shared.enqueue(key, Priority::Fill) {
            Some(slot) => wait_slot(&slot),
            None => Err(Arc::new(Error::Internal {
                what: format!("block {id}"),
                detail: "the fill's request was not queued".into(),
            })),
        }
    }

    /// Whether a block is in memory or the disk cache (no fetch needed).
    pub fn is_local(&self, id: &Sha1Name) -> bool {
        self.shared.store.cache().has_block(id) || lock(&self.shared.memory).blocks.keys().any(|k| k.id == *id)
    }

    /// The most bytes the fetches in flight held together so far (see [`fetch_cost`]).
    pub fn peak_fetch_bytes(&self) -> u64 {
        lock(&self.shared.queue).peak_bytes
    }

    /// True when no reader has asked for a block for `quiet`, no profile
    /// prefetch runs, and no fetch is queued or running: the link is idle and
    /// the fill may use it ([`crate::fill`]).
    pub fn quiet_for(&self, quiet: Duration) -> bool {
        if lock(&self.shared.last_read).elapsed() < quiet || self.shared.prefetching.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let queue = lock(&self.shared.queue);
        queue.slots.is_empty() && self.in_flight() == 0
    }

    /// Compressed bytes and blocks the fill fetched from sources since the start
    /// (part of `fetched_bytes`; benches take them out of a boot's bytes).
    pub fn fill_fetched(&self) -> (u64, u64) {
        (self.shared.fill_bytes.load(Ordering::Relaxed), self.shared.fill_blocks.load(Ordering::Relaxed))
    }

    /// Number of queued jobs at prefetch priority (for tests and status).
    pub fn queued_prefetch(&self) -> usize {
        lock(&self.shared.queue).heap.iter().filter(|j| j.priority == Priority::Prefetch).count()
    }
}

fn wait_slot(slot: &Slot) -> BlockResult {
    let mut state = lock(&slot.state);
    loop {
        if let SlotState::Done(result) = &*state {
            return result.clone();
        }
        state = slot.done.wait(state).unwrap_or_else(|p| p.into_inner());
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        lock(&self.shared.queue).shutdown = true;
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Unmount: what was fetched on a guess and is still unread was never read.
        let mut ahead = lock(&self.shared.ahead);
        let unread: Vec<Sha1Name> = ahead.unread.keys().copied().collect();
        for id in &unread {
            ahead.waste(id);
        }
        if ahead.wasted_blocks > 0 {
            log::info!(
                "readahead and prefetch fetched {} blocks ({} bytes) that were never read",
                ahead.wasted_blocks,
                ahead.wasted_bytes
            );
        }
    }
}

/// A profile prefetch running ([`Loader::prefetching`]); dropping it ends it.
pub struct PrefetchGuard<'a>(&'a AtomicUsize);

impl Drop for PrefetchGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    /// Counts guessed blocks the disk cache evicted unread as wasted, and
    /// shrinks the window if there were any.
    fn note_evictions(&self, ahead: &mut Ahead) {
        let mut shrink = false;
        for id in self.store.cache().take_evicted() {
            shrink |= ahead.waste(&id);
        }
        if shrink {
            ahead.window.shrink();
        }
    }

    fn memory_lookup(&self, key: &BlockKey) -> Option<Arc<Vec<u8>>> {
        let mut memory = lock(&self.memory);
        let data = memory.blocks.get(key).cloned()?;
        memory.lru.touch(key);
        self.memory_hits.fetch_add(1, Ordering::Relaxed);
        Some(data)
    }

    fn remember(&self, key: BlockKey, data: Arc<Vec<u8>>) {
        let mut memory = lock(&self.memory);
        memory.lru.insert(key, data.len() as u64);
        memory.blocks.insert(key, data);
        while memory.lru.total() > self.memory_max {
            let Some(oldest) = memory.lru.oldest_first().next().map(|(k, _)| *k) else {
                break;
            };
            memory.lru.remove(&oldest);
            memory.blocks.remove(&oldest);
        }
    }

    /// Queues a job unless one at this priority or higher is queued or running.
    /// Returns the slot to wait on, or `None` if the block is already in memory.
    fn enqueue(&self, key: BlockKey, priority: Priority) -> Option<Arc<Slot>> {
        let mut queue = lock(&self.queue);
        let slot = match queue.slots.get(&key) {
            Some(slot) => {
                let mut state = lock(&slot.state);
                match *state {
                    SlotState::Queued(queued) if queued < priority => {
                        *state = SlotState::Queued(priority);
                    }
                    _ => return Some(slot.clone()),
                }
                slot.clone()
            }
            None => {
                // The fill wants the block on disk, which a copy in memory is not.
                if priority != Priority::Fill && lock(&self.memory).blocks.contains_key(&key) {
                    return None;
                }
                let slot = Arc::new(Slot { state: Mutex::new(SlotState::Queued(priority)), done: Condvar::new() });
                queue.slots.insert(key, slot.clone());
                slot
            }
        };
        queue.seq += 1;
        let seq = queue.seq;
        queue.heap.push(Job { priority, seq, key });
        drop(queue);
        self.wake.notify_one();
        Some(slot)
    }

    /// Takes the next job this worker may run, or `None` at shutdown.
    fn next_job(&self) -> Option<(Job, Arc<Slot>)> {
        let mut queue = lock(&self.queue);
        loop {
            if queue.shutdown {
                return None;
            }
            let prefetch_full = queue.running_prefetch + DEMAND_RESERVE >= self.workers;
            // One fetch always runs; more only while their blocks fit the memory cap together.
            let budget_left = |len: usize| {
                queue.running_bytes == 0 || queue.running_bytes + fetch_cost(len) <= self.memory_max.max(1)
            };
            let runnable = queue
                .heap
                .peek()
                .is_some_and(|job| (job.priority > Priority::Prefetch || !prefetch_full) && budget_left(job.key.len));
            if runnable {
                let Some(job) = queue.heap.pop() else { continue };
                let Some(slot) = queue.slots.get(&job.key).cloned() else {
                    continue;
                };
                let mut state = lock(&slot.state);
                // A job for a block already running, done, or re-queued higher is stale.
                if !matches!(*state, SlotState::Queued(p) if p == job.priority) {
                    continue;
                }
                *state = SlotState::Running;
                drop(state);
                if job.priority <= Priority::Prefetch {
                    queue.running_prefetch += 1;
                }
                queue.running_bytes += fetch_cost(job.key.len);
                queue.peak_bytes = queue.peak_bytes.max(queue.running_bytes);
                return Some((job, slot));
            }
            queue = self.wake.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Loads a block on the caller's thread, outside the queue (the rare case
    /// of a block evicted between its fetch and its reader's look).
    fn load_now(&self, key: BlockKey) -> BlockResult {
        let (result, fetched) = self.load(key, Priority::Demand);
        if let Some(file) = fetched {
            self.store.keep(&key.id, &file);
        }
        result
    }

    /// Loads and verifies one block. A panic below (a bug) becomes an error for
    /// this block's readers, never a thread that is gone and a slot nobody fills.
    fn load(&self, key: BlockKey, priority: Priority) -> (BlockResult, Option<Vec<u8>>) {
        let loaded = catch_unwind(AssertUnwindSafe(|| self.store.load_block(&key.id, key.len)));
        match loaded {
            Ok(Ok(loaded)) if loaded.data.len() == key.len => {
                let data = Arc::new(loaded.data);
                // The fill must not push the guest's blocks out of memory.
                if priority != Priority::Fill {
                    self.remember(key, data.clone());
                }
                (Ok(data), loaded.fetched)
            }
            Ok(Ok(loaded)) => {
                let e = Error::Internal {
                    what: format!("block {}", key.id),
                    detail: format!("the store gave {} bytes for a position of {}", loaded.data.len(), key.len),
                };
                log::error!("{e}");
                (Err(Arc::new(e)), None)
            }
            Ok(Err(e)) => {
                log::error!("block {}: {e}", key.id);
                (Err(Arc::new(e)), None)
            }
            Err(panic) => {
                let e = Error::Internal { what: format!("block {}", key.id), detail: panic_text(&*panic) };
                log::error!("{e}");
                (Err(Arc::new(e)), None)
            }
        }
    }

    fn work(&self) {
        while let Some((job, slot)) = self.next_job() {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            let (result, fetched) = self.load(job.key, job.priority);
            let fill = job.priority == Priority::Fill;
            let mut fetched = fetched;
            if let (Some(file), true) = (&fetched, fill) {
                self.fill_bytes.fetch_add(file.len() as u64, Ordering::Relaxed);
                self.fill_blocks.fetch_add(1, Ordering::Relaxed);
                // Nobody waits on a fill but the fill, which looks in the cache next.
                self.store.keep_within_cap(&job.key.id, file);
                fetched = None;
            }
            // Before any reader can see the block, so that its read is noted after this.
            if let (Some(file), true) = (&fetched, job.priority < Priority::Demand && !fill) {
                if result.is_ok() {
                    lock(&self.ahead).unread.insert(job.key.id, file.len() as u64);
                }
            }
            {
                let mut queue = lock(&self.queue);
                queue.slots.remove(&job.key);
                if job.priority <= Priority::Prefetch {
                    queue.running_prefetch -= 1;
                }
                queue.running_bytes -= fetch_cost(job.key.len);
            }
            *lock(&slot.state) = SlotState::Done(result);
            slot.done.notify_all();
            self.wake.notify_all();
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            // The reader has its bytes; the fsync of the cache copy is off its path.
            if let Some(file) = fetched {
                self.store.keep(&job.key.id, &file);
            }
            let mut ahead = lock(&self.ahead);
            self.note_evictions(&mut ahead);
        }
    }
}

/// What one fetch of a block of `len` bytes holds at most: the fetched file
/// (at most about `len`, see `VerifiedStore::load_block`) and the decoded bytes.
fn fetch_cost(len: usize) -> u64 {
    2 * len as u64
}

/// The message of a caught panic.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string());
    format!("internal error ({text})")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use circular_format::index::Index;
    use circular_format::layout::block_path;

    use super::*;
    use crate::reader::read_image;
    use crate::reader::tests::{bytes, loader_with, publish, BS};

    /// An image of `n` distinct blocks, published; its index.
    fn image(dir: &std::path::Path, n: u8) -> Index {
        let image: Vec<u8> = (0..n).flat_map(|k| bytes(BS as usize, k + 1)).collect();
        publish(&dir.join("store"), &image)
    }

    fn id(index: &Index, n: usize) -> Sha1Name {
        index.blocks[n].unwrap()
    }

    /// Queued, being fetched, or fetched: anything a request set going.
    fn asked_for(loader: &Loader, id: &Sha1Name) -> bool {
        let key = BlockKey { id: *id, len: BS as usize };
        lock(&loader.shared.queue).slots.contains_key(&key) || loader.is_local(id)
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn the_window_grows_only_on_sequential_hits_and_halves_on_waste() {
        let mut w = Window::new(8);
        assert_eq!(w.blocks(), 1);
        assert_eq!(w.next(false, true), 0, "no readahead after a read that is not sequential");
        assert_eq!(w.next(true, false), 1, "a sequential read without a hit keeps the window");
        assert_eq!(w.next(true, false), 1);
        assert_eq!(w.next(true, true), 2);
        assert_eq!(w.next(true, true), 4);
        assert_eq!(w.next(true, true), 8);
        assert_eq!(w.next(true, true), 8, "never beyond --readahead");
        w.shrink();
        assert_eq!(w.blocks(), 4);
        w.shrink();
        w.shrink();
        w.shrink();
        assert_eq!(w.blocks(), 1, "at least one block");
        let mut off = Window::new(0);
        assert_eq!(off.next(true, true), 0, "--readahead 0 never reads ahead");
        off.shrink();
        assert_eq!(off.blocks(), 0);
    }

    /// The loader's side of the window: a hit is a read of a block readahead
    /// guessed; leaving the stream with guesses unread halves the window.
    #[test]
    fn hits_grow_the_window_and_abandoned_guesses_shrink_it() {
        let dir = tempfile::tempdir().unwrap();
        let index = image(dir.path(), 16);
        let loader = loader_with(dir.path(), std::slice::from_ref(&index), 64 << 20, 8, None);
        let len = BS as usize;
        assert_eq!(loader.readahead(true, Some(&id(&index, 0))), 1, "starts at one block");
        loader.request(&id(&index, 1), len, Priority::Readahead);
        assert_eq!(loader.readahead(true, Some(&id(&index, 1))), 2, "a hit doubles it");
        assert_eq!(loader.readahead(true, Some(&id(&index, 1))), 2, "the same block again is no hit");
        loader.request(&id(&index, 2), len, Priority::Readahead);
        loader.request(&id(&index, 3), len, Priority::Readahead);
        assert_eq!(loader.readahead(true, Some(&id(&index, 2))), 4);
        // The reader jumps away; block 3 was guessed and never read.
        assert_eq!(loader.readahead(false, Some(&id(&index, 9))), 0);
        assert_eq!(loader.ahead().window_blocks, 2, "the unread guess halved the window");
        // A read of a block nobody guessed is no hit.
        assert_eq!(loader.readahead(true, Some(&id(&index, 10))), 2);
    }

    /// Issue 16: while a profile prefetch feeds the guest, readahead fetches
    /// nothing, however sequential the reads; afterwards it reads ahead again.
    #[test]
    fn readahead_does_not_fetch_during_a_profile_prefetch() {
        let dir = tempfile::tempdir().unwrap();
        let index = image(dir.path(), 12);
        let loader = loader_with(dir.path(), std::slice::from_ref(&index), 64 << 20, 4, None);
        let feeding = loader.prefetching();
        loader.request(&id(&index, 11), BS as usize, Priority::Readahead);
        assert!(!asked_for(&loader, &id(&index, 11)), "a readahead request went out during a prefetch");
        // Sequential reads of blocks 0 to 3: only what they read is fetched.
        for n in 0..4u64 {
            read_image(&loader, &index, n * u64::from(BS), BS as usize, n > 0).unwrap();
        }
        assert_eq!(loader.readahead(true, Some(&id(&index, 4))), 0);
        for n in 4..12 {
            assert!(!asked_for(&loader, &id(&index, n)), "readahead asked for block {n} during a prefetch");
        }
        assert_eq!(loader.store().status().fetched_blocks, 4);
        // The prefetch is over: the same sequential read now reads ahead.
        drop(feeding);
        read_image(&loader, &index, 4 * u64::from(BS), BS as usize, true).unwrap();
        assert!(asked_for(&loader, &id(&index, 5)), "no readahead after the prefetch ended");
    }

    /// Issue 16: blocks fetched on a guess and evicted unread are counted as
    /// wasted, with the bytes the link carried for them; blocks a reader read
    /// are not, whatever brought them in.
    #[test]
    fn wasted_bytes_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let index = image(dir.path(), 8);
        let file_len =
            |n: usize| std::fs::metadata(dir.path().join("store").join(block_path(&id(&index, n)))).unwrap().len();
        // Room for three blocks on the disk: six stored evict three.
        let cap = 3 * file_len(0) + 100;
        let loader = loader_with(dir.path(), std::slice::from_ref(&index), 64 << 20, 4, Some(cap));
        // No snapshot is kept for offline boots: every block may be evicted (as the mount says at start).
        loader.store().cache().keep(HashSet::new());
        let len = BS as usize;
        loader.request(&id(&index, 4), len, Priority::Readahead);
        loader.request(&id(&index, 5), len, Priority::Prefetch);
        wait_until("the guesses to land", || loader.store().cache().has_block(&id(&index, 5)));
        wait_until("the guesses to land", || loader.store().cache().has_block(&id(&index, 4)));
        let ahead = loader.ahead();
        assert_eq!((ahead.unread_blocks, ahead.unread_bytes), (2, file_len(4) + file_len(5)));
        assert_eq!(ahead.wasted_blocks, 0, "nothing evicted yet");
        // A reader reads block 6, which readahead also guessed: not wasted.
        loader.request(&id(&index, 6), len, Priority::Readahead);
        loader.get(&id(&index, 6), len).unwrap();
        // Demand reads push the unread guesses (the oldest) out of the cache.
        for n in 0..4 {
            loader.get(&id(&index, n), len).unwrap();
        }
        let cache = loader.store().cache();
        wait_until("the cache to evict the guesses", || {
            !cache.has_block(&id(&index, 4)) && !cache.has_block(&id(&index, 5))
        });
        let ahead = loader.ahead();
        assert_eq!(ahead.wasted_blocks, 2, "{ahead:?}");
        assert_eq!(ahead.wasted_bytes, file_len(4) + file_len(5), "{ahead:?}");
        assert_eq!(ahead.unread_blocks, 0, "{ahead:?}");
    }
}
