//! The client's view of a store: sources plus cache plus trust. It hands out the
//! verified catalog, verified indexes and verified block bytes, from the cache
//! when it can and from the sources when it must, and counts what it did.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use circular_format::block;
use circular_format::catalog::{rfc3339, Catalog};
use circular_format::index::Index;
use circular_format::layout::{block_path, index_path, profile_path, CATALOG, CATALOG_SIG};
use circular_format::profile::Profile;
use circular_format::signing::{check_not_future, verify_catalog, verify_signed};
use circular_format::Sha1Name;
use ed25519_dalek::VerifyingKey;

use crate::cache::{Cache, Stored};
use crate::error::{Error, Result};
use crate::freshness::Clock;
use crate::source::{Network, Sources};
use crate::status::{SnapshotStatus, Status};

/// Upper bounds on what is read from a source, so a broken or hostile server
/// cannot make the client allocate without limit.
const MAX_CATALOG_BYTES: u64 = 16 << 20;
const MAX_SIG_BYTES: u64 = 4096;
const MAX_INDEX_BYTES: u64 = 512 << 20;
/// How long start-up waits for the network before it uses the cached catalog,
/// or, with none cached, gives up: a person is looking at the screen.
const CATALOG_WAIT_WITH_CACHE: Duration = Duration::from_secs(10);
const CATALOG_WAIT_WITHOUT_CACHE: Duration = Duration::from_secs(20);

/// What the client needs to reach and trust a store: where it is, whose
/// signature counts, where the cache lives and how long to wait for the network.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Base URLs, tried in order. Empty, or `offline`, means the cache only.
    pub sources: Vec<String>,
    /// The publisher keys a catalog's signature must verify against (any one).
    pub public_keys: Vec<VerifyingKey>,
    /// The cache directory (blocks, indexes, the last good catalog).
    pub cache_dir: PathBuf,
    /// Cache cap in bytes; `None`: most of the cache's filesystem.
    pub cache_max: Option<u64>,
    /// Use the cache only, even when `sources` are given.
    pub offline: bool,
    /// How long a read waits for an unreachable network before it fails (EIO).
    pub deadline: Duration,
    /// How the sources are reached: extra CA certificates, a proxy.
    pub network: Network,
}

impl StoreConfig {
    /// A configuration with the defaults: no cap beyond the disk's, online, a 60 s deadline.
    pub fn new(sources: Vec<String>, public_keys: Vec<VerifyingKey>, cache_dir: PathBuf) -> Self {
        StoreConfig {
            sources,
            public_keys,
            cache_dir,
            cache_max: None,
            offline: false,
            deadline: Duration::from_secs(60),
            network: Network::default(),
        }
    }
}

#[derive(Default)]
struct Counters {
    fetched_bytes: AtomicU64,
    fetched_blocks: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    corrupt_in_cache: AtomicU64,
}

/// A block's verified bytes, and the fetched file when it came from a source
/// (to be kept in the cache once the reader has its bytes).
pub struct Loaded {
    /// The block's bytes, decompressed and checked against its name and length.
    pub data: Vec<u8>,
    /// The compressed file as the source sent it; `None` when it came from the cache.
    pub fetched: Option<Vec<u8>>,
}

/// The client's store: sources, cache and trust together. Everything it hands
/// out (catalog, indexes, profiles, block bytes) has been verified: the catalog
/// by its signature and expiry, the rest by the SHA-1 names the catalog pins.
/// "Store" alone is the published tree (docs/FORMAT.md); this is the client's
/// checked view of one.
pub struct VerifiedStore {
    sources: Sources,
    cache: Cache,
    catalog: Catalog,
    catalog_bytes: Vec<u8>,
    catalog_from_cache: bool,
    indexes: Mutex<HashMap<Sha1Name, Arc<Index>>>,
    counters: Counters,
}

impl VerifiedStore {
    /// Opens the cache and establishes the catalog (docs/FORMAT.md, "What a
    /// client accepts" and "Freshness"): catalog and signature are fetched as a
    /// pair from one source, every source is tried, and a fresh catalog must
    /// verify, not be expired or from the future, and not be older than the
    /// newest one this client verified. When no source gives one, the cached
    /// catalog is used while it has not expired; a bad answer never beats it.
    pub fn open(config: StoreConfig) -> Result<VerifiedStore> {
        let urls = if config.offline { Vec::new() } else { config.sources.clone() };
        let sources = Sources::with_network(&urls, config.deadline, &config.network)?;
        let cache = Cache::open(&config.cache_dir, config.cache_max)?;
        let keys = &config.public_keys;

        // The cached catalog, checked for its signature only: even expired, it
        // still says how new a catalog this client has seen (rollback protection
        // survives expiry) and bounds the clock from below.
        let mut clock = Clock::system_now();
        let signed = cached_signed(&cache, keys);
        let pin = match &signed {
            Ok((c, _)) if clock.may_pin(c.generated) => Some(c.generated),
            Ok((c, _)) => {
                log::warn!(
                    "the cached catalog says it was generated at {}, in the future: it does not hold this client back",
                    rfc3339(c.generated)
                );
                None
            }
            Err(_) => None,
        };
        clock.newest_seen = pin;
        let note = clock.note();
        if let Some(note) = &note {
            log::warn!("{note}");
        }
        let now = clock.now();
        let cached = match signed {
            Ok((catalog, bytes)) if catalog.expires > now => Ok((catalog, bytes)),
            Ok((catalog, _)) => Err(with_clock_note(
                circular_format::Error::Expired { expires: rfc3339(catalog.expires), now: rfc3339(now) }.into(),
                note.as_deref(),
            )),
            Err(e) => Err(e),
        };

        let (catalog, catalog_bytes, from_cache) = if sources.is_empty() {
            match cached {
                Ok((catalog, bytes)) => (catalog, bytes, true),
                Err(Error::NotCached { .. }) => return Err(Error::NotCached { what: "the signed catalog".into() }),
                Err(e) => return Err(e),
            }
        } else {
            let wait = if cached.is_ok() { CATALOG_WAIT_WITH_CACHE } else { CATALOG_WAIT_WITHOUT_CACHE };
            let wait = wait.min(config.deadline);
            let accept = |bytes: &[u8], sig: Option<&[u8]>| -> Result<Catalog> {
                let fresh = verify_catalog(bytes, sig, keys, now)?;
                if clock.plausible() {
                    check_not_future(&fresh, clock.system)?;
                }
                if let Some(newest) = pin {
                    if circular_format::signing::is_rollback(newest, &fresh) {
                        return Err(Error::invalid(
                            CATALOG,
                            format!(
                                "it is older (generated {}) than the catalog this client already verified (generated {}): \
                                 a stale copy or a rollback, refused",
                                rfc3339(fresh.generated),
                                rfc3339(newest)
                            ),
                        ));
                    }
                }
                Ok(fresh)
            };
            match fetch_catalog_pair(&sources, wait, &accept) {
                Ok((fresh, fresh_bytes, sig)) => {
                    // Signature first: a crash between the two writes leaves a
                    // pair that does not verify, and the next start fetches again.
                    cache.write_file(CATALOG_SIG, &sig)?;
                    cache.write_file(CATALOG, &fresh_bytes)?;
                    (fresh, fresh_bytes, false)
                }
                Err(e) => match cached {
                    Ok((catalog, bytes)) => {
                        log::warn!("no source gave a usable catalog ({e}); using the cached catalog (generated {}, expires {})",
                            rfc3339(catalog.generated), rfc3339(catalog.expires));
                        (catalog, bytes, true)
                    }
                    Err(_) => return Err(with_clock_note(e, note.as_deref())),
                },
            }
        };
        Ok(VerifiedStore {
            sources,
            cache,
            catalog,
            catalog_bytes,
            catalog_from_cache: from_cache,
            indexes: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        })
    }

    /// The verified catalog in use.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// True when no source answered at start and the cached catalog is in use.
    pub fn catalog_from_cache(&self) -> bool {
        self.catalog_from_cache
    }

    /// The exact bytes of the verified catalog.
    pub fn catalog_bytes(&self) -> &[u8] {
        &self.catalog_bytes
    }

    /// The verified block cache on disk.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// An index from memory or the cache, without touching the network.
    pub fn cached_index(&self, id: &Sha1Name) -> Option<Arc<Index>> {
        if let Some(index) = self.lock_indexes().get(id) {
            return Some(index.clone());
        }
        let bytes = self.cached_named(&index_path(id), id)?;
        match Index::parse(&bytes, &index_path(id)) {
            Ok(index) => Some(self.remember(id, index)),
            Err(e) => {
                log::warn!("cached {} is bad ({e}); it will be fetched again", index_path(id));
                self.cache.remove_file(&index_path(id));
                None
            }
        }
    }

    /// The index named `id`: from memory, the cache, or the sources (then cached).
    pub fn index(&self, id: &Sha1Name) -> Result<Arc<Index>> {
        if let Some(index) = self.cached_index(id) {
            return Ok(index);
        }
        let name = index_path(id);
        let index = self.fetch_named(&name, id, MAX_INDEX_BYTES, |bytes| Ok(Index::parse(bytes, &name)?))?;
        Ok(self.remember(id, index))
    }

    /// The boot profile named `id`, from the cache or the sources (then cached).
    pub fn profile(&self, id: &Sha1Name) -> Result<Profile> {
        let name = profile_path(id);
        if let Some(bytes) = self.cached_named(&name, id) {
            if let Ok(profile) = Profile::parse(&bytes, &name) {
                return Ok(profile);
            }
            self.cache.remove_file(&name);
        }
        self.fetch_named(&name, id, MAX_INDEX_BYTES, |bytes| Ok(Profile::parse(bytes, &name)?))
    }

    /// A file named by its hash from the cache, if it is there and hashes right.
    fn cached_named(&self, name: &str, id: &Sha1Name) -> Option<Vec<u8>> {
        let bytes = self.cache.read_file(name)?;
        if Sha1Name::of(&bytes) == *id {
            return Some(bytes);
        }
        log::warn!("cached {name} does not hash to its name; it will be fetched again");
        self.cache.remove_file(name);
        None
    }

    /// Fetches a file named by its hash, checks the hash and `parse`, and keeps
    /// the bytes in the cache.
    fn fetch_named<T>(
        &self,
        name: &str,
        id: &Sha1Name,
        max_bytes: u64,
        parse: impl Fn(&[u8]) -> Result<T>,
    ) -> Result<T> {
        let (value, bytes) = self.sources.fetch(name, max_bytes, |bytes| {
            let actual = Sha1Name::of(&bytes);
            if actual != *id {
                return Err(Error::invalid(name, format!("its bytes hash to {actual}: it was changed or truncated")));
            }
            parse(&bytes).map(|value| (value, bytes))
        })?;
        if let Err(e) = self.cache.write_file(name, &bytes) {
            log::warn!("could not keep {name} in the cache: {e}");
        }
        Ok(value)
    }

    fn remember(&self, id: &Sha1Name, index: Index) -> Arc<Index> {
        let index = Arc::new(index);
        self.lock_indexes().insert(*id, index.clone());
        index
    }

    /// The verified bytes of block `id`, which is `len` bytes long. A cached copy
    /// that fails verification is deleted and the block fetched again.
    pub fn load_block(&self, id: &Sha1Name, len: usize) -> Result<Loaded> {
        if let Some(file) = self.cache.read_block(id) {
            match decode_exact(id, &file, len) {
                Ok(data) => {
                    self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Loaded { data, fetched: None });
                }
                Err(e) => {
                    log::warn!("cached block is bad, fetching it again: {e}");
                    self.counters.corrupt_in_cache.fetch_add(1, Ordering::Relaxed);
                    self.cache.remove_block(id);
                }
            }
        }
        self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        let path = block_path(id);
        let max_file = circular_format::block::max_file_len(len);
        let (data, file) =
            self.sources.fetch(&path, max_file, |file| decode_exact(id, &file, len).map(|data| (data, file)))?;
        self.counters.fetched_bytes.fetch_add(file.len() as u64, Ordering::Relaxed);
        self.counters.fetched_blocks.fetch_add(1, Ordering::Relaxed);
        Ok(Loaded { data, fetched: Some(file) })
    }

    /// Keeps a fetched block file in the cache (after the reader got its bytes).
    pub fn keep(&self, id: &Sha1Name, file: &[u8]) {
        if let Stored::Skipped(why) = self.cache.store_block(id, file) {
            log::debug!("block {id} not cached: {why}");
        }
    }

    /// Keeps a block file the fill fetched, only if it fits under the cap
    /// without evicting anything ([`crate::cache::Cache::store_block_within_cap`]).
    pub fn keep_within_cap(&self, id: &Sha1Name, file: &[u8]) {
        if let Stored::Skipped(why) = self.cache.store_block_within_cap(id, file) {
            log::debug!("filled block {id} not cached: {why}");
        }
    }

    /// Live figures; the caller adds what only it knows (memory hits, in flight).
    pub fn status(&self) -> Status {
        let c = &self.counters;
        let work = self.sources.fetch_counts();
        let snapshots = self
            .catalog
            .snapshots()
            .map(|(dist, snap)| {
                let mut status = SnapshotStatus {
                    distribution: dist.name.clone(),
                    date: snap.date.clone(),
                    ..SnapshotStatus::default()
                };
                if let Some(index) = self.cached_index(&snap.index) {
                    let distinct = index.distinct_blocks();
                    status.index_cached = true;
                    status.total_blocks = distinct.len() as u64;
                    status.cached_blocks = self.cache.count_cached(&distinct);
                }
                status
            })
            .collect();
        Status {
            online: self.sources.online(),
            offline_mode: self.sources.is_empty(),
            sources: self.sources.status(),
            catalog_from_cache: self.catalog_from_cache,
            catalog_generated: rfc3339(self.catalog.generated),
            catalog_expires: rfc3339(self.catalog.expires),
            fetched_bytes: c.fetched_bytes.load(Ordering::Relaxed),
            fetched_blocks: c.fetched_blocks.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            cache_misses: c.cache_misses.load(Ordering::Relaxed),
            retries: work.retries,
            hedged_requests: work.hedged,
            failovers: work.failovers,
            corrupt_blocks: c.corrupt_in_cache.load(Ordering::Relaxed) + self.sources.bad_copies(),
            evicted_blocks: self.cache.evicted_blocks(),
            cache_bytes: self.cache.total_bytes(),
            cache_max_bytes: self.cache.max_bytes(),
            snapshots,
            ..Status::default()
        }
    }

    fn lock_indexes(&self) -> std::sync::MutexGuard<'_, HashMap<Sha1Name, Arc<Index>>> {
        self.indexes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn decode_exact(id: &Sha1Name, file: &[u8], len: usize) -> Result<Vec<u8>> {
    let data = block::decode(id, file, len)?;
    if data.len() != len {
        return Err(circular_format::Error::CorruptBlock {
            id: *id,
            reason: format!("it holds {} bytes where the index needs {len}", data.len()),
        }
        .into());
    }
    Ok(data)
}

/// Adds the clock's warning to a refusal, when the clock is known to be wrong.
fn with_clock_note(e: Error, note: Option<&str>) -> Error {
    match note {
        None => e,
        Some(note) => Error::NoValidCopy { what: CATALOG.into(), detail: format!("{e} ({note})") },
    }
}

/// The cached catalog if its signature verifies, whatever its expiry.
fn cached_signed(cache: &Cache, keys: &[VerifyingKey]) -> Result<(Catalog, Vec<u8>)> {
    let bytes = cache.read_file(CATALOG).ok_or_else(|| Error::NotCached { what: "a catalog".into() })?;
    let sig = cache.read_file(CATALOG_SIG);
    let catalog = verify_signed(&bytes, sig.as_deref(), keys)?;
    Ok((catalog, bytes))
}

/// The rules a fetched pair (catalog bytes, signature) must pass.
type Accept<'a> = dyn Fn(&[u8], Option<&[u8]>) -> Result<Catalog> + 'a;

/// What a source sent instead of a catalog or a signature, in words.
fn describe_answer(bytes: &[u8]) -> Option<&'static str> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
    let head = head.trim_start();
    if head.starts_with("<!doctype") || head.starts_with("<html") || head.contains("<body") {
        Some("an HTML page (a captive portal or a login page? log in to the network, or check the URL)")
    } else {
        None
    }
}

/// Fetches `catalog.json.sig` and `catalog.json` as a pair from one source at a
/// time and gives the first pair `accept` takes. A pair whose signature does not
/// match is fetched again once from that source (the publisher renames the two
/// files one after the other). Sources that do not answer are tried again until
/// `wait`; the error says what each source sent.
fn fetch_catalog_pair(sources: &Sources, wait: Duration, accept: &Accept<'_>) -> Result<(Catalog, Vec<u8>, Vec<u8>)> {
    use crate::source::Miss;
    let started = Instant::now();
    let end = started + wait;
    let n = sources.len();
    let mut backoff = Duration::from_millis(200);
    // The one refusal to return as such when there is nothing else to say.
    let mut single: Option<Error> = None;
    // What each source said last, kept across rounds: a source the deadline
    // leaves unasked in the last round is reported by its previous answer.
    let mut said: Vec<Option<String>> = vec![None; n];
    loop {
        let mut problems: Vec<String> = Vec::new();
        let mut any_transient = false;
        let mut refusals = 0;
        for (i, said) in said.iter_mut().enumerate() {
            let label = sources.label_of(i);
            let now = Instant::now();
            if now >= end {
                any_transient = true;
                problems.push(said.clone().unwrap_or_else(|| format!("{label}: not asked before the deadline")));
                continue;
            }
            let before = problems.len();
            // Each source gets a fair share of what is left, at least 3 s.
            let share = (end - now) / u32::try_from(n - i).unwrap_or(1);
            let source_end = (now + share.max(Duration::from_secs(3))).min(end);
            let mut tries = 0;
            loop {
                tries += 1;
                let sig = match sources.fetch_one(i, CATALOG_SIG, MAX_SIG_BYTES, source_end) {
                    Ok(sig) => Some(sig),
                    Err(Miss::NotFound(_)) => None,
                    Err(Miss::Bad(why)) => {
                        refusals += 1;
                        problems.push(format!("{label}: {CATALOG_SIG}: {why}"));
                        break;
                    }
                    Err(Miss::Transient(why)) => {
                        any_transient = true;
                        problems.push(format!("{label}: {CATALOG_SIG}: {why}"));
                        break;
                    }
                };
                let bytes = match sources.fetch_one(i, CATALOG, MAX_CATALOG_BYTES, source_end) {
                    Ok(bytes) => bytes,
                    Err(Miss::NotFound(why)) => {
                        problems.push(format!("{label}: {CATALOG}: {why}"));
                        break;
                    }
                    Err(Miss::Bad(why)) => {
                        refusals += 1;
                        problems.push(format!("{label}: {CATALOG}: {why}"));
                        break;
                    }
                    Err(Miss::Transient(why)) => {
                        any_transient = true;
                        problems.push(format!("{label}: {CATALOG}: {why}"));
                        break;
                    }
                };
                match accept(&bytes, sig.as_deref()) {
                    Ok(catalog) => return Ok((catalog, bytes, sig.unwrap_or_default())),
                    Err(e) => {
                        let mismatch = matches!(e, Error::Format(circular_format::Error::BadSignature));
                        if mismatch && tries < 2 && Instant::now() + Duration::from_secs(1) < source_end {
                            // Perhaps between the publisher's two renames: once more.
                            log::info!("{label}: {CATALOG} and its signature do not match; fetching the pair again");
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                        let what = describe_answer(&bytes).map(|d| format!("{CATALOG} is {d}")).or_else(|| {
                            sig.as_deref().and_then(describe_answer).map(|d| format!("{CATALOG_SIG} is {d}"))
                        });
                        let text = match (what, mismatch) {
                            (Some(w), _) => w,
                            (None, true) => format!(
                                "{CATALOG} does not match {CATALOG_SIG} or the trusted key: a stale or half-published \
                                 copy (a CDN cache, a mirror mid-sync), a catalog signed by another key, or the wrong --public key"
                            ),
                            (None, false) => e.to_string(),
                        };
                        log::warn!("{label} sent a catalog that is refused: {text}");
                        problems.push(format!("{label}: {text}"));
                        refusals += 1;
                        // With one source, a refusal keeps its own typed error (expired,
                        // unsigned, forged, older, from the future; the warning above names
                        // the source), except an HTML page, which is told as what it is.
                        single =
                            if refusals == 1 && n == 1 && describe_answer(&bytes).is_none() { Some(e) } else { None };
                        break;
                    }
                }
            }
            if let Some(latest) = problems.get(before..).filter(|p| !p.is_empty()).map(|p| p.join("; ")) {
                *said = Some(latest);
            }
        }
        let elapsed = started.elapsed();
        if !any_transient || elapsed >= wait {
            if !any_transient && refusals == 0 {
                return Err(Error::NoStore { tried: problems.join("; ") });
            }
            if refusals == 0 {
                return Err(Error::Unreachable {
                    path: CATALOG.into(),
                    deadline_secs: wait.as_secs(),
                    last: problems.join("; "),
                });
            }
            if let Some(e) = single.filter(|_| problems.len() == 1) {
                return Err(e);
            }
            return Err(Error::NoValidCopy { what: CATALOG.into(), detail: problems.join("; ") });
        }
        std::thread::sleep(backoff.min(wait - elapsed));
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// The trust rules at `VerifiedStore::open`, over `file://` stores and real
/// loopback servers: a bad answer never beats a good cache, and freshness.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_server::{reply, serve};
    use circular_format::signing::{generate, sign};
    use ed25519_dalek::SigningKey;
    use std::path::Path;
    use time::OffsetDateTime;

    fn days(n: i64) -> time::Duration {
        time::Duration::days(n)
    }

    /// Writes a signed, empty catalog generated at `generated` into `dir`.
    fn publish(dir: &Path, key: &SigningKey, generated: OffsetDateTime, expires: OffsetDateTime) -> Vec<u8> {
        let bytes = Catalog::new(generated, expires).to_bytes();
        std::fs::write(dir.join(CATALOG), &bytes).unwrap();
        std::fs::write(dir.join(CATALOG_SIG), sign(&bytes, key)).unwrap();
        bytes
    }

    struct Setup {
        key: SigningKey,
        store: tempfile::TempDir,
        cache: tempfile::TempDir,
        now: OffsetDateTime,
    }

    impl Setup {
        fn new() -> Setup {
            Setup {
                key: generate(),
                store: tempfile::tempdir().unwrap(),
                cache: tempfile::tempdir().unwrap(),
                now: OffsetDateTime::now_utc(),
            }
        }
        fn url(&self) -> String {
            format!("file://{}/", self.store.path().display())
        }
        fn open(&self, sources: Vec<String>) -> Result<VerifiedStore> {
            let mut config = StoreConfig::new(sources, vec![self.key.verifying_key()], self.cache.path().join("c"));
            config.deadline = Duration::from_secs(5);
            VerifiedStore::open(config)
        }
        /// A first, good mount: the cache then holds a verified catalog.
        fn prime(&self) -> Vec<u8> {
            let bytes = publish(self.store.path(), &self.key, self.now - days(7), self.now + days(23));
            let store = self.open(vec![self.url()]).unwrap();
            assert!(!store.catalog_from_cache());
            bytes
        }
    }

    #[test]
    fn a_stale_cdn_copy_with_the_new_signature_falls_back_to_the_cache() {
        let s = Setup::new();
        let old = s.prime();
        // The CDN: the new signature, the old catalog.
        let new = Catalog::new(s.now, s.now + days(30)).to_bytes();
        std::fs::write(s.store.path().join(CATALOG_SIG), sign(&new, &s.key)).unwrap();
        let store = s.open(vec![s.url()]).unwrap();
        assert!(store.catalog_from_cache());
        assert_eq!(store.catalog_bytes(), old.as_slice());
    }

    #[test]
    fn every_source_is_tried_and_a_mirror_signed_by_another_key_loses() {
        let s = Setup::new();
        let other = tempfile::tempdir().unwrap();
        publish(other.path(), &generate(), s.now, s.now + days(30));
        let good = publish(s.store.path(), &s.key, s.now - days(1), s.now + days(30));
        let other_url = format!("file://{}/", other.path().display());
        let store = s.open(vec![other_url.clone(), s.url()]).unwrap();
        assert!(!store.catalog_from_cache());
        assert_eq!(store.catalog_bytes(), good.as_slice());
        // With no cache it is refused: alone, with the format's own error;
        // beside another bad source, with what each one sent.
        std::fs::remove_dir_all(s.cache.path().join("c")).unwrap();
        let err = s.open(vec![other_url.clone()]).err().unwrap();
        assert!(matches!(err, Error::Format(circular_format::Error::BadSignature)), "{err}");
        std::fs::remove_dir_all(s.cache.path().join("c")).unwrap();
        std::fs::remove_file(s.store.path().join(CATALOG_SIG)).unwrap();
        let err = s.open(vec![other_url.clone(), s.url()]).err().unwrap().to_string();
        assert!(err.contains("signed by another key") && err.contains(&other_url), "{err}");
        assert!(err.contains("not signed") && err.contains(&s.url()), "{err}");
    }

    #[test]
    fn a_captive_portal_never_beats_the_cache_and_is_named_as_html() {
        fn portal(_path: &str, stream: &mut std::net::TcpStream) {
            let page = b"<!DOCTYPE html><html><body>Please log in to the hotel WiFi</body></html>\n";
            reply(stream, "200 OK", "Content-Type: text/html\r\n", page);
        }
        let s = Setup::new();
        let old = s.prime();
        let url = serve(portal);
        let store = s.open(vec![url.clone()]).unwrap();
        assert!(store.catalog_from_cache());
        assert_eq!(store.catalog_bytes(), old.as_slice());
        std::fs::remove_dir_all(s.cache.path().join("c")).unwrap();
        let err = s.open(vec![url]).err().unwrap().to_string();
        assert!(err.contains("HTML") && err.contains("127.0.0.1"), "{err}");
        assert!(!err.contains("key file is wrong"), "{err}");
    }

    #[test]
    fn a_catalog_from_the_future_is_refused_and_cannot_pin() {
        let s = Setup::new();
        let far = OffsetDateTime::from_unix_timestamp(4_070_908_800).unwrap(); // 2099-01-01
        publish(s.store.path(), &s.key, far, far + days(300));
        let err = s.open(vec![s.url()]).err().unwrap().to_string();
        assert!(err.contains("future"), "{err}");
        // Planted in the cache (seen while the clock was wrong): the honest one replaces it.
        let cache = s.cache.path().join("c");
        publish(&cache, &s.key, far, far + days(300));
        let honest = publish(s.store.path(), &s.key, s.now, s.now + days(30));
        let store = s.open(vec![s.url()]).unwrap();
        assert!(!store.catalog_from_cache());
        assert_eq!(store.catalog_bytes(), honest.as_slice());
    }

    #[test]
    fn rollback_protection_survives_the_cached_catalogs_expiry() {
        let s = Setup::new();
        // The newest catalog this client verified has just expired...
        let cache = s.cache.path().join("c");
        s.prime();
        publish(&cache, &s.key, s.now - days(2), s.now - days(1));
        // ...and a mirror replays an older one that is still valid.
        publish(s.store.path(), &s.key, s.now - days(20), s.now + days(10));
        let err = s.open(vec![s.url()]).err().unwrap().to_string();
        assert!(err.contains("older"), "{err}");
        // Offline, the expired cached one is refused with its date.
        let err = s.open(Vec::new()).err().unwrap().to_string();
        assert!(err.contains("expired"), "{err}");
        // A newer catalog is taken.
        let newer = publish(s.store.path(), &s.key, s.now, s.now + days(30));
        assert_eq!(s.open(vec![s.url()]).unwrap().catalog_bytes(), newer.as_slice());
    }

    #[test]
    fn any_html_page_is_named_as_one() {
        // Portals differ: a doctype and no <html>, a bare <html> redirect, a fragment.
        for page in [
            "<!DOCTYPE html>\n<title>Log in</title>",
            "  <html><head><meta http-equiv=\"refresh\" content=\"0; url=/login\"></head></html>",
            "<div>hotel</div><body>Please log in</body>",
        ] {
            assert!(describe_answer(page.as_bytes()).is_some_and(|d| d.contains("HTML")), "{page}");
        }
        assert_eq!(describe_answer(br#"{"format":"circular-catalog/1"}"#), None);
    }

    #[test]
    fn a_mismatched_signature_is_fetched_once_more_and_then_the_cache_is_kept() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::OnceLock;
        static SIG_FETCHES: AtomicUsize = AtomicUsize::new(0);
        static PAIR: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
        fn half_published(path: &str, stream: &mut std::net::TcpStream) {
            let (catalog, sig) = PAIR.get().unwrap();
            if path.ends_with(CATALOG_SIG) {
                SIG_FETCHES.fetch_add(1, Ordering::SeqCst);
                reply(stream, "200 OK", "", sig);
            } else if path.ends_with(CATALOG) {
                reply(stream, "200 OK", "", catalog);
            } else {
                reply(stream, "404 Not Found", "", b"");
            }
        }
        let s = Setup::new();
        let old = s.prime();
        // The new catalog is in place, its signature not yet: the old one signs it.
        let new = Catalog::new(s.now, s.now + days(30)).to_bytes();
        PAIR.set((new, sign(&old, &s.key).into_bytes())).unwrap();
        let store = s.open(vec![serve(half_published)]).unwrap();
        assert!(store.catalog_from_cache());
        assert_eq!(store.catalog_bytes(), old.as_slice());
        assert_eq!(SIG_FETCHES.load(Ordering::SeqCst), 2, "the pair is fetched once more, and only once");
    }

    #[test]
    fn a_stalled_first_mirror_leaves_time_for_the_next() {
        // A server that accepts and then says nothing: without a fair share of
        // the wait, it would take all of it and the good mirror is never asked.
        let stall = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stall_url = format!("http://{}/", stall.local_addr().unwrap());
        // Collecting the connections holds them open, unanswered, forever.
        std::thread::spawn(move || stall.incoming().flatten().collect::<Vec<_>>());
        let s = Setup::new();
        let good = publish(s.store.path(), &s.key, s.now - days(1), s.now + days(30));
        let mut config =
            StoreConfig::new(vec![stall_url, s.url()], vec![s.key.verifying_key()], s.cache.path().join("c"));
        config.deadline = Duration::from_secs(8);
        let store = VerifiedStore::open(config).unwrap();
        assert!(!store.catalog_from_cache());
        assert_eq!(store.catalog_bytes(), good.as_slice());
    }

    #[test]
    fn an_oversized_signature_or_catalog_is_a_bad_copy_not_a_missing_store() {
        fn huge_sig(path: &str, stream: &mut std::net::TcpStream) {
            match path.ends_with(CATALOG_SIG) {
                true => reply(stream, "200 OK", "", &vec![b'A'; MAX_SIG_BYTES as usize + 1]),
                false => reply(stream, "200 OK", "", b"{}"),
            }
        }
        fn huge_catalog(path: &str, stream: &mut std::net::TcpStream) {
            match path.ends_with(CATALOG_SIG) {
                true => reply(stream, "200 OK", "", b"c2ln"),
                false => reply(stream, "200 OK", "", &vec![b' '; MAX_CATALOG_BYTES as usize + 1]),
            }
        }
        let s = Setup::new();
        for answer in [huge_sig as fn(&str, &mut std::net::TcpStream), huge_catalog] {
            let err = s.open(vec![serve(answer)]).err().unwrap();
            assert!(matches!(err, Error::NoValidCopy { .. }), "{err}");
            assert!(!err.to_string().contains("no Circular store"), "{err}");
        }
    }

    #[test]
    fn the_same_catalog_fetched_again_is_taken_from_the_source() {
        // Equal generated times are no rollback: a second mount of an unchanged
        // store takes the catalog from the network, not from the cache.
        let s = Setup::new();
        let bytes = s.prime();
        let store = s.open(vec![s.url()]).unwrap();
        assert!(!store.catalog_from_cache(), "the unchanged catalog was refused and the cache used");
        assert_eq!(store.catalog_bytes(), bytes.as_slice());
    }

    #[test]
    fn a_url_with_no_store_says_so_and_names_the_url() {
        fn nothing_here(_path: &str, stream: &mut std::net::TcpStream) {
            reply(stream, "404 Not Found", "", b"not found\n");
        }
        let s = Setup::new();
        let url = serve(nothing_here);
        let err = s.open(vec![url.clone()]).err().unwrap();
        assert!(matches!(err, Error::NoStore { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("no Circular store") && text.contains(&url) && text.contains("404"), "{text}");
        assert!(!text.contains("image-build verify"), "{text}");
    }

    #[test]
    fn a_refused_connection_is_reported_as_refused_after_the_deadline() {
        // A port nothing listens on: bind, learn the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let s = Setup::new();
        let mut config = StoreConfig::new(
            vec![format!("http://127.0.0.1:{port}/")],
            vec![s.key.verifying_key()],
            s.cache.path().join("c"),
        );
        config.deadline = Duration::from_secs(4);
        let err = VerifiedStore::open(config).err().unwrap();
        let text = err.to_string();
        assert!(matches!(err, Error::Unreachable { .. }), "{text}");
        assert!(text.to_lowercase().contains("refused"), "{text}");
        assert!(!text.contains("not asked"), "{text}");
    }
}
