//! Profile prefetch: when a snapshot with a boot profile is opened, its boot
//! working set is fetched in profile order, ahead of the guest.
//!
//! One snapshot at a time: opening another replaces the job. Prefetch runs at
//! the lowest priority (readers jump the queue and prefetch never holds the
//! last fetch workers: see `loader`), keeps a bounded number of requests
//! queued, and stops rather than let the cache cap evict the very blocks it is
//! fetching: those are protected from eviction while the job is current.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use circular_format::block::max_file_len;
use circular_format::Sha1Name;

use crate::loader::{Loader, Priority};
use crate::status::PrefetchStatus;

/// Prefetch requests waiting in the loader's queue at most.
const QUEUED: usize = 32;

struct Job {
    distribution: String,
    date: String,
    blocks: Vec<(Sha1Name, usize)>,
    cancel: AtomicBool,
    stopped: Mutex<Option<String>>,
}

/// Runs at most one profile prefetch at a time (the snapshot opened last).
#[derive(Default)]
pub struct Prefetcher {
    current: Mutex<Option<Arc<Job>>>,
}

impl Prefetcher {
    /// Starts prefetching `blocks` (in order) for distribution/date, unless
    /// that snapshot's prefetch is already the current one.
    pub fn start(&self, loader: &Arc<Loader>, distribution: &str, date: &str, blocks: Vec<(Sha1Name, usize)>) {
        let job = Arc::new(Job {
            distribution: distribution.to_string(),
            date: date.to_string(),
            blocks,
            cancel: AtomicBool::new(false),
            stopped: Mutex::new(None),
        });
        {
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(old) = current.as_ref() {
                if old.distribution == distribution && old.date == date {
                    return;
                }
                old.cancel.store(true, Ordering::Relaxed);
            }
            *current = Some(job.clone());
        }
        loader.store().cache().protect(job.blocks.iter().map(|(id, _)| *id).collect());
        let loader = loader.clone();
        let spawned = std::thread::Builder::new().name("prefetch".into()).spawn(move || run(&loader, &job));
        if let Err(e) = spawned {
            log::warn!("prefetch not started: {e}");
        }
    }

    /// Progress of the current job, if any.
    pub fn status(&self, loader: &Loader) -> Option<PrefetchStatus> {
        let job = self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        let done = job.blocks.iter().filter(|(id, _)| loader.is_local(id)).count() as u64;
        let stopped = job.stopped.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Some(PrefetchStatus {
            distribution: job.distribution.clone(),
            date: job.date.clone(),
            done_blocks: done,
            total_blocks: job.blocks.len() as u64,
            stopped,
        })
    }
}

/// How long the cap check waits for requested blocks to land before it gives
/// up on them (a fetch that failed is never cached).
const SETTLE_LIMIT: Duration = Duration::from_secs(120);

fn run(loader: &Loader, job: &Job) {
    // Readahead stays quiet until the profile's blocks are in: the profile says
    // what the boot reads, and a guess would only queue in front of it.
    let _feeding = loader.prefetching();
    let cache = loader.store().cache();
    // Requested but not yet settled (cached, or refused by the cache): they
    // count against the cap already, at their upper bound.
    let mut pending: Vec<(Sha1Name, usize, Instant)> = Vec::new();
    for (id, len) in &job.blocks {
        if job.cancel.load(Ordering::Relaxed) {
            return;
        }
        if loader.is_local(id) {
            continue;
        }
        // The blocks are requested in profile order, and one is requested only
        // when it fits together with every block requested before it, counted
        // at its largest. Stores may land out of order (fetchers run in
        // parallel), but never one that pushes out an earlier one. When the
        // estimate says no, wait for the requested blocks to land and decide
        // on the cache's real figures: the stop is reported only then, with
        // every block requested before it in the cache.
        loop {
            pending.retain(|(p, _, at)| !cache.has_block(p) && !cache.was_skipped(p) && at.elapsed() < SETTLE_LIMIT);
            // Room is checked against the stored (compressed) bound, never the
            // block's length: the cache counts the bytes of block files.
            let incoming: u64 = pending.iter().map(|(_, l, _)| max_file_len(*l)).sum::<u64>() + max_file_len(*len);
            if !cache.would_evict_protected(incoming) {
                break;
            }
            if pending.is_empty() {
                let why = "the cache is full of this snapshot's boot blocks; the rest is fetched as the guest reads it";
                *job.stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.into());
                return;
            }
            if job.cancel.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        while loader.queued_prefetch() >= QUEUED && !job.cancel.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        loader.request(id, *len, Priority::Prefetch);
        pending.push((*id, *len, Instant::now()));
    }
    // Every block is asked for; the prefetch feeds the guest until they land.
    while !job.cancel.load(Ordering::Relaxed) {
        pending.retain(|(p, _, at)| !loader.is_local(p) && !cache.was_skipped(p) && at.elapsed() < SETTLE_LIMIT);
        if pending.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
