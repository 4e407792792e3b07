//! The block loader: many fetches in flight, one per block however many readers
//! want it, served by priority (a reader waiting now, then readahead, then
//! profile prefetch), with the latest decoded blocks kept in memory.
//!
//! Prefetch never takes the last workers: `DEMAND_RESERVE` of them stay free for
//! readers, so a demand read waits for at most its own fetch.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use circular_format::Sha1Name;

use crate::error::{Error, Result};
use crate::lru::Lru;
use crate::store::VerifiedStore;

/// Workers that prefetch may never occupy.
const DEMAND_RESERVE: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Prefetch,
    Readahead,
    Demand,
}

struct Job {
    priority: Priority,
    /// Earlier requests first within a priority.
    seq: u64,
    id: Sha1Name,
    len: usize,
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
    Done(std::result::Result<Arc<Vec<u8>>, String>),
}

/// One block being loaded; readers wait on it.
struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Job>,
    slots: HashMap<Sha1Name, Arc<Slot>>,
    seq: u64,
    running_prefetch: usize,
    shutdown: bool,
}

#[derive(Default)]
struct Memory {
    lru: Lru<Sha1Name>,
    blocks: HashMap<Sha1Name, Arc<Vec<u8>>>,
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

    pub fn store(&self) -> &Arc<VerifiedStore> {
        &self.shared.store
    }

    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    pub fn memory_hits(&self) -> u64 {
        self.shared.memory_hits.load(Ordering::Relaxed)
    }

    /// Asks for a block without waiting (readahead, prefetch, or a demand read
    /// that will wait later, so that all its blocks are fetched at once).
    pub fn request(&self, id: &Sha1Name, len: usize, priority: Priority) {
        if lock(&self.shared.memory).blocks.contains_key(id) {
            return;
        }
        self.shared.enqueue(id, len, priority);
    }

    /// The verified bytes of a block, waiting for them if needed.
    pub fn get(&self, id: &Sha1Name, len: usize) -> std::result::Result<Arc<Vec<u8>>, String> {
        if let Some(data) = self.shared.memory_lookup(id) {
            return Ok(data);
        }
        let slot = self.shared.enqueue(id, len, Priority::Demand);
        let Some(slot) = slot else {
            // Finished between the memory check and the enqueue.
            return self.shared.memory_lookup(id).ok_or_else(|| "block vanished from memory".to_string());
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
        lock(&self.shared.memory).blocks.contains_key(id) || self.shared.store.cache().has_block(id)
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
    fn memory_lookup(&self, id: &Sha1Name) -> Option<Arc<Vec<u8>>> {
        let mut memory = lock(&self.memory);
        let data = memory.blocks.get(id).cloned()?;
        memory.lru.touch(id);
        self.memory_hits.fetch_add(1, Ordering::Relaxed);
        Some(data)
    }

    fn remember(&self, id: &Sha1Name, data: Arc<Vec<u8>>) {
        let mut memory = lock(&self.memory);
        memory.lru.insert(*id, data.len() as u64);
        memory.blocks.insert(*id, data);
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
    fn enqueue(&self, id: &Sha1Name, len: usize, priority: Priority) -> Option<Arc<Slot>> {
        let mut queue = lock(&self.queue);
        let slot = match queue.slots.get(id) {
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
                if lock(&self.memory).blocks.contains_key(id) {
                    return None;
                }
                let slot = Arc::new(Slot { state: Mutex::new(SlotState::Queued(priority)), done: Condvar::new() });
                queue.slots.insert(*id, slot.clone());
                slot
            }
        };
        queue.seq += 1;
        let seq = queue.seq;
        queue.heap.push(Job { priority, seq, id: *id, len });
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
            let runnable = queue.heap.peek().is_some_and(|job| job.priority > Priority::Prefetch || !prefetch_full);
            if runnable {
                let Some(job) = queue.heap.pop() else { continue };
                let Some(slot) = queue.slots.get(&job.id).cloned() else {
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
                return Some((job, slot));
            }
            queue = self.wake.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn work(&self) {
        while let Some((job, slot)) = self.next_job() {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            let loaded = self.store.load_block(&job.id, job.len);
            let (result, fetched) = match loaded {
                Ok(loaded) => {
                    let data = Arc::new(loaded.data);
                    self.remember(&job.id, data.clone());
                    (Ok(data), loaded.fetched)
                }
                Err(e) => {
                    log::error!("block {}: {e}", job.id);
                    (Err(e.to_string()), None)
                }
            };
            {
                let mut queue = lock(&self.queue);
                queue.slots.remove(&job.id);
                if job.priority == Priority::Prefetch {
                    queue.running_prefetch -= 1;
                }
            }
            *lock(&slot.state) = SlotState::Done(result);
            slot.done.notify_all();
            self.wake.notify_all();
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            // The reader has its bytes; the fsync of the cache copy is off its path.
            if let Some(file) = fetched {
                self.store.keep(&job.id, &file);
            }
        }
    }
}
