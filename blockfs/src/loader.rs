//! The block loader: many fetches in flight, one per block however many readers
//! want it, served by priority (a reader waiting now, then readahead, then
//! profile prefetch), with the latest decoded blocks kept in memory.
//!
//! Prefetch never takes the last workers: `DEMAND_RESERVE` of them stay free for
//! readers, so a demand read waits for at most its own fetch.
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
use std::collections::{BinaryHeap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

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
    /// Starts `workers` fetch threads and keeps up to `memory_max` bytes of decoded blocks.
    ///
    /// # Errors
    /// [`Error::Io`] when a thread cannot be started.
    pub fn new(store: Arc<VerifiedStore>, workers: usize, memory_max: u64) -> Result<Loader> {
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
    pub fn request(&self, id: &Sha1Name, len: usize, priority: Priority) {
        let key = BlockKey { id: *id, len };
        if lock(&self.shared.memory).blocks.contains_key(&key) {
            return;
        }
        self.shared.enqueue(key, priority);
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
        let result = self.wait(key);
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
        let mut state = lock(&slot.state);
        loop {
            if let SlotState::Done(result) = &*state {
                return result.clone();
            }
            state = slot.done.wait(state).unwrap_or_else(|p| p.into_inner());
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

    /// Number of queued jobs at prefetch priority (for tests and status).
    pub fn queued_prefetch(&self) -> usize {
        lock(&self.shared.queue).heap.iter().filter(|j| j.priority == Priority::Prefetch).count()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        lock(&self.shared.queue).shutdown = true;
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Shared {
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
                if lock(&self.memory).blocks.contains_key(&key) {
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
                if job.priority == Priority::Prefetch {
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
        let (result, fetched) = self.load(key);
        if let Some(file) = fetched {
            self.store.keep(&key.id, &file);
        }
        result
    }

    /// Loads and verifies one block. A panic below (a bug) becomes an error for
    /// this block's readers, never a thread that is gone and a slot nobody fills.
    fn load(&self, key: BlockKey) -> (BlockResult, Option<Vec<u8>>) {
        let loaded = catch_unwind(AssertUnwindSafe(|| self.store.load_block(&key.id, key.len)));
        match loaded {
            Ok(Ok(loaded)) if loaded.data.len() == key.len => {
                let data = Arc::new(loaded.data);
                self.remember(key, data.clone());
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
            let (result, fetched) = self.load(job.key);
            {
                let mut queue = lock(&self.queue);
                queue.slots.remove(&job.key);
                if job.priority == Priority::Prefetch {
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
