//! Background fill: once a boot's reads have gone quiet, the rest of each
//! opened snapshot is fetched into the disk cache, so that a snapshot booted
//! once with the network boots again without it (the menu offers an offline
//! boot only when every block is cached).
//!
//! The fill is the lowest priority there is (demand, then readahead and the
//! profile prefetch, then the fill: [`crate::loader::Priority::Fill`]). It asks
//! for one block at a time, and only while the link is idle: no reader has
//! asked for a block for [`QUIET`], no profile prefetch runs and nothing is
//! queued or in flight. A reader's request therefore waits for at most the one
//! fill fetch running, and the fill pauses until the reads are quiet again.
//!
//! It never evicts a block to make room: a block goes in only if it fits under
//! the cache's cap as it is, and the fill stops when the next one would not. A
//! snapshot it has cached whole is kept for offline use from then on (never
//! evicted for other blocks, as the mount does for the snapshots cached whole
//! when it starts).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use circular_format::index::Index;
use circular_format::Sha1Name;

use crate::loader::Loader;
use crate::status::FillStatus;
use circular_format::block::max_file_len;

/// How long the readers must have asked for nothing before the fill starts
/// or goes on: longer than the gaps between a booting guest's reads, so that
/// the fill runs after the boot rather than between its reads.
pub const QUIET: Duration = Duration::from_secs(2);

/// How often the fill looks whether the link is idle.
const POLL: Duration = Duration::from_millis(20);

/// Where one snapshot's fill is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for its turn or for the reads to go quiet.
    Waiting,
    /// Fetching the blocks the cache does not hold.
    Filling,
    /// Every block is cached.
    Done,
    /// Stopped, and why.
    Stopped(String),
}

struct Job {
    distribution: String,
    date: String,
    /// The snapshot's distinct stored blocks with their lengths, in image order.
    blocks: Vec<(Sha1Name, usize)>,
    phase: Mutex<Phase>,
}

#[derive(Default)]
struct State {
    /// Every snapshot opened since the mount started, in the order first opened.
    jobs: VecDeque<Arc<Job>>,
    /// True while the fill thread runs.
    running: bool,
}

/// Fills the snapshots opened on one mount, one after the other.
pub struct Filler {
    quiet: Duration,
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Filler {
    /// A filler that waits for `quiet` without reads ([`QUIET`] on a mount).
    pub fn new(quiet: Duration) -> Filler {
        Filler { quiet, state: Mutex::new(State::default()) }
    }

    /// Adds a snapshot that was opened (its `index`) to the fill, unless it is
    /// there already (a stopped one is tried again), and starts the fill thread
    /// if it is not running.
    pub fn start(self: &Arc<Self>, loader: &Arc<Loader>, distribution: &str, date: &str, index: &Index) {
        let mut state = lock(&self.state);
        let existing = state.jobs.iter().position(|j| j.distribution == distribution && j.date == date);
        match existing {
            Some(n) if !matches!(*lock(&state.jobs[n].phase), Phase::Stopped(_)) => return,
            Some(n) => *lock(&state.jobs[n].phase) = Phase::Waiting,
            None => state.jobs.push_back(Arc::new(Job {
                distribution: distribution.to_string(),
                date: date.to_string(),
                blocks: distinct_blocks(index),
                phase: Mutex::new(Phase::Waiting),
            })),
        }
        if state.running {
            return;
        }
        state.running = true;
        drop(state);
        let filler = self.clone();
        // Weak: the fill must not keep an unmounted loader (and its threads) alive.
        let loader = Arc::downgrade(loader);
        let spawned = std::thread::Builder::new().name("fill".into()).spawn(move || filler.run(&loader));
        if let Err(e) = spawned {
            lock(&self.state).running = false;
            log::warn!("background fill not started: {e}");
        }
    }

    /// Each snapshot opened, with where its fill is.
    pub fn status(&self, loader: &Loader) -> Vec<FillStatus> {
        let jobs: Vec<Arc<Job>> = lock(&self.state).jobs.iter().cloned().collect();
        let cache = loader.store().cache();
        jobs.iter()
            .map(|job| {
                let phase = lock(&job.phase).clone();
                let (state, stopped) = match phase {
                    Phase::Waiting => ("waiting", None),
                    Phase::Filling => ("filling", None),
                    Phase::Done => ("done", None),
                    Phase::Stopped(why) => ("stopped", Some(why)),
                };
                FillStatus {
                    distribution: job.distribution.clone(),
                    date: job.date.clone(),
                    state: state.to_string(),
                    done_blocks: cache.count_cached(job.blocks.iter().map(|(id, _)| id)),
                    total_blocks: job.blocks.len() as u64,
                    stopped,
                }
            })
            .collect()
    }

    fn run(&self, loader: &Weak<Loader>) {
        loop {
            let job = {
                let mut state = lock(&self.state);
                let next = state.jobs.iter().find(|j| *lock(&j.phase) == Phase::Waiting).cloned();
                let Some(job) = next else {
                    state.running = false;
                    return;
                };
                job
            };
            let phase = self.fill(loader, &job);
            if let Phase::Stopped(why) = &phase {
                log::info!("{}/{}: background fill stopped: {why}", job.distribution, job.date);
            }
            *lock(&job.phase) = phase;
        }
    }

    /// Fills one snapshot; what became of it. `Waiting` only when the mount is gone.
    fn fill(&self, loader: &Weak<Loader>, job: &Job) -> Phase {
        for (id, len) in &job.blocks {
            match loader.upgrade() {
                Some(loader) if loader.store().cache().has_block(id) => continue,
                Some(_) => {}
                None => return Phase::Stopped("the mount is ending".into()),
            }
            let Some(loader) = self.wait_for_quiet(loader, job) else {
                return Phase::Stopped("the mount is ending".into());
            };
            let cache = loader.store().cache();
            if cache.total_bytes() + max_file_len(*len) > cache.max_bytes() {
                return Phase::Stopped(
                    "the cache is full; the fill evicts nothing, and the rest is fetched as the guest reads it".into(),
                );
            }
            if let Err(e) = loader.fill(id, *len) {
                return Phase::Stopped(format!("a fetch failed ({e}); opening the snapshot again tries again"));
            }
            if !cache.has_block(id) {
                return Phase::Stopped(
                    "the cache took no more blocks (cap or disk full); the fill evicts nothing".into(),
                );
            }
        }
        if let Some(loader) = loader.upgrade() {
            loader.store().cache().keep_also(job.blocks.iter().map(|(id, _)| *id));
            log::info!("{}/{}: cached whole; it boots offline", job.distribution, job.date);
        }
        Phase::Done
    }

    /// Waits until the link is idle ([`Loader::quiet_for`]); `None` when the
    /// mount is gone meanwhile.
    fn wait_for_quiet(&self, loader: &Weak<Loader>, job: &Job) -> Option<Arc<Loader>> {
        let mut waiting = false;
        loop {
            let loader = loader.upgrade()?;
            if loader.quiet_for(self.quiet) {
                *lock(&job.phase) = Phase::Filling;
                return Some(loader);
            }
            if !waiting {
                *lock(&job.phase) = Phase::Waiting;
                waiting = true;
            }
            drop(loader);
            std::thread::sleep(POLL);
        }
    }
}

/// The distinct stored blocks of an index with the length each needs, in image order.
fn distinct_blocks(index: &Index) -> Vec<(Sha1Name, usize)> {
    let mut seen = HashSet::new();
    index
        .blocks
        .iter()
        .enumerate()
        .filter_map(|(n, id)| id.filter(|id| seen.insert(*id)).map(|id| (id, index.block_len(n))))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use circular_format::layout::block_path;

    use super::*;
    use crate::reader::tests::{bytes, loader_with, publish, BS};

    fn image(dir: &std::path::Path, n: u8) -> Index {
        let image: Vec<u8> = (0..n).flat_map(|k| bytes(BS as usize, k + 1)).collect();
        publish(&dir.join("store"), &image)
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn state(filler: &Filler, loader: &Loader) -> FillStatus {
        filler.status(loader).pop().unwrap()
    }

    /// What the user relies on: a snapshot opened once is cached whole, and
    /// then reads with the store gone (offline).
    #[test]
    fn the_fill_caches_the_whole_snapshot_and_it_then_reads_offline() {
        let dir = tempfile::tempdir().unwrap();
        let index = image(dir.path(), 12);
        let loader = Arc::new(loader_with(dir.path(), std::slice::from_ref(&index), 64 << 20, 0, None));
        loader.get(&index.blocks[0].unwrap(), BS as usize).unwrap();
        let filler = Arc::new(Filler::new(Duration::from_millis(50)));
        filler.start(&loader, "deb", "2026-01-01", &index);
        wait_until("the fill to finish", || state(&filler, &loader).state == "done");
        let s = state(&filler, &loader);
        assert_eq!((s.done_blocks, s.total_blocks), (12, 12));
        assert_eq!(loader.fill_fetched().1, 11, "the block the reader read is not fetched again");
        std::fs::remove_dir_all(dir.path().join("store").join("blocks")).unwrap();
        for (n, id) in index.blocks.iter().enumerate() {
            loader.get(&id.unwrap(), index.block_len(n)).unwrap();
        }
    }

    #[test]
    fn the_fill_waits_until_the_reads_are_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let index = image(dir.path(), 8);
        let loader = Arc::new(loader_with(dir.path(), std::slice::from_ref(&index), 64 << 20, 0, None));
        let filler = Arc::new(Filler::new(Duration::from_secs(2)));
        let first = index.blocks[0].unwrap();
        loader.get(&first, BS as usize).unwrap();
        filler.start(&loader, "deb", "2026-01-01", &index);
        // A guest reading every 10 ms for a second: the link is never quiet for 2 s.
        let reading = Instant::now();
        while reading.elapsed() < Duration::from_secs(1) {
            loader.get(&first, BS as usize).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(loader.fill_fetched().1, 0, "the fill fetched while a reader was reading");
        assert_eq!(state(&filler, &loader).state, "waiting");
        wait_until("the fill after the reads stopped", || state(&filler, &loader).state == "done");
    }

    #[test]
    fn a_reader_pauses_the_fill() {
        let dir = tempfile::tempdir().unwrap();
        let index = image(dir.path(), 200);
        let loader = Arc::new(loader_with(dir.path(), std::slice::from_ref(&index), 64 << 20, 0, None));
        let filler = Arc::new(Filler::new(Duration::from_millis(300)));
        filler.start(&loader, "deb", "2026-01-01", &index);
        wait_until("the fill to start", || loader.fill_fetched().1 > 0);
        let first = index.blocks[0].unwrap();
        loader.get(&first, BS as usize).unwrap();
        let at_first_read = loader.fill_fetched().1;
        let reading = Instant::now();
        while reading.elapsed() < Duration::from_secs(1) {
            loader.get(&first, BS as usize).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        // At most the one fill fetch that was running when the reader came.
        assert!(loader.fill_fetched().1 <= at_first_read + 1, "the fill went on while a reader read");
        assert_ne!(state(&filler, &loader).state, "done");
    }

    #[test]
    fn the_fill_never_evicts_and_stops_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let index = image(dir.path(), 10);
        // Room for the two blocks read and three more, counted at the bound the fill checks.
        let file = |n: usize| {
            let path = dir.path().join("store").join(block_path(&index.blocks[n].unwrap()));
            std::fs::metadata(path).unwrap().len()
        };
        let cap = file(0) + file(1) + 2 * file(2) + max_file_len(BS as usize);
        let loader = Arc::new(loader_with(dir.path(), std::slice::from_ref(&index), 64 << 20, 0, Some(cap)));
        let read: Vec<Sha1Name> = index.blocks[..2].iter().map(|id| id.unwrap()).collect();
        for id in &read {
            loader.get(id, BS as usize).unwrap();
        }
        let filler = Arc::new(Filler::new(Duration::from_millis(50)));
        filler.start(&loader, "deb", "2026-01-01", &index);
        wait_until("the fill to stop", || state(&filler, &loader).state == "stopped");
        let cache = loader.store().cache();
        assert_eq!(cache.evicted_blocks(), 0, "the fill evicted a block");
        assert!(read.iter().all(|id| cache.has_block(id)), "a block the reader read is gone");
        assert!(cache.total_bytes() <= cap);
        let s = state(&filler, &loader);
        assert!(s.done_blocks > 2 && s.done_blocks < 10, "the fill cached what fits: {s:?}");
        assert!(s.stopped.unwrap().contains("cache is full"));
    }

    /// A snapshot the fill cached whole boots offline from then on, so reading
    /// another one never evicts its blocks to make room.
    #[test]
    fn a_snapshot_filled_whole_is_kept_when_another_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let filled = image(dir.path(), 6);
        // Many more blocks than the room left beside the filled snapshot.
        let other_image: Vec<u8> = (0..40).flat_map(|k| bytes(BS as usize, 100 + k)).collect();
        let other = publish(&dir.path().join("store"), &other_image);
        let file = |id: &Sha1Name| std::fs::metadata(dir.path().join("store").join(block_path(id))).unwrap().len();
        let filled_bytes: u64 = filled.blocks.iter().map(|id| file(&id.unwrap())).sum();
        // The filled snapshot and two blocks of the other, counted at the bound the fill checks.
        let cap = filled_bytes + 2 * max_file_len(BS as usize);
        let indexes = [filled.clone(), other.clone()];
        let loader = Arc::new(loader_with(dir.path(), &indexes, 64 << 20, 0, Some(cap)));
        let filler = Arc::new(Filler::new(Duration::from_millis(50)));
        filler.start(&loader, "deb", "2026-01-01", &filled);
        wait_until("the fill to finish", || state(&filler, &loader).state == "done");
        for (n, id) in other.blocks.iter().enumerate() {
            loader.get(&id.unwrap(), other.block_len(n)).unwrap();
        }
        let cache = loader.store().cache();
        assert!(cache.evicted_blocks() > 0, "the other snapshot's reads should have needed room");
        let gone: Vec<_> = filled.blocks.iter().filter(|id| !cache.has_block(&id.unwrap())).collect();
        assert!(gone.is_empty(), "blocks of the snapshot filled whole were evicted: {gone:?}");
    }
}
