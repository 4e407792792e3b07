//! Mounting: a verified store, its loader and the FUSE filesystem, started
//! together and stopped together. This is the library entry point that the
//! `blockfs` binary and desktop mode share.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use fuser::{BackgroundSession, MountOption};

use crate::error::{Error, Result};
use crate::fs::{BlockFs, Options};
use crate::loader::Loader;
use crate::store::{StoreConfig, VerifiedStore};
use crate::trace::Trace;

/// How to reach and trust a store (`store`), and how hard to work at reading it.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// Sources, keys, cache and deadline: what the verified store reads.
    pub store: StoreConfig,
    /// Fetches in flight at once.
    pub fetchers: usize,
    /// Blocks fetched ahead of a sequential reader.
    pub readahead_blocks: usize,
    /// Decoded blocks kept in memory, in bytes.
    pub memory_cache: u64,
    /// Prefetch a snapshot's boot profile when its image is opened.
    pub prefetch: bool,
    /// Record the blocks readers touch (for `image-build profile`).
    pub trace: Option<Arc<Trace>>,
    /// Fill the rest of each opened snapshot into the cache in the background
    /// ([`crate::fill`]), so that a snapshot booted once boots offline.
    pub fill: bool,
}

impl MountConfig {
    /// The defaults (16 fetchers, 32 blocks of readahead, prefetch and fill on) for `sources` (base
    /// URLs, in failover order), the publisher's `public_keys` and the cache at `cache_dir`.
    pub fn new(sources: Vec<String>, public_keys: Vec<VerifyingKey>, cache_dir: PathBuf) -> Self {
        MountConfig {
            store: StoreConfig::new(sources, public_keys, cache_dir),
            fetchers: 16,
            readahead_blocks: 32,
            memory_cache: 64 << 20,
            prefetch: true,
            trace: None,
            fill: true,
        }
    }
}

/// Reader threads: enough that every fetcher can be kept busy by waiting reads.
const READERS: usize = 32;

/// A live mount. Dropping it unmounts.
pub struct Mounted {
    session: Option<BackgroundSession>,
    loader: Arc<Loader>,
    mountpoint: PathBuf,
}

impl Mounted {
    /// Verifies the catalog (fresh, or cached when offline), then mounts.
    pub fn start(config: MountConfig, mountpoint: &Path) -> Result<Mounted> {
        // A blockfs that was killed (SIGKILL, the OOM killer, a power button)
        // leaves its mount behind. Its attributes stay in the kernel's cache
        // for up to an hour, so a stat of the mount point still works; a
        // question the kernel must ask the dead daemon (statfs) answers
        // ENOTCONN. Such a mount is cleared before mounting again.
        clear_stale_mounts(mountpoint);
        if is_live_fuse_mount(mountpoint) {
            // A second mount would hide the first, whose readers keep it busy.
            return Err(Error::Mountpoint {
                path: mountpoint.to_path_buf(),
                reason: format!(
                    "a FUSE filesystem (another blockfs?) is already mounted here; unmount it first \
                     (`fusermount3 -u {}`) or choose another directory",
                    mountpoint.display()
                ),
            });
        }
        let meta = std::fs::metadata(mountpoint);
        if let Err(e) = &meta {
            return Err(Error::Mountpoint {
                path: mountpoint.to_path_buf(),
                reason: format!("{e}; create the mount point first"),
            });
        } else if meta.as_ref().is_ok_and(|m| !m.is_dir()) {
            return Err(Error::Mountpoint {
                path: mountpoint.to_path_buf(),
                reason: "the mount point is not a directory".into(),
            });
        }
        let fetchers = config.fetchers;
        let memory = config.memory_cache;
        let options = Options {
            readers: READERS,
            prefetch: config.prefetch,
            trace: config.trace.clone(),
            fill_after: config.fill.then_some(crate::fill::QUIET),
        };
        let offline = config.store.offline || config.store.sources.is_empty();
        let store = Arc::new(VerifiedStore::open(config.store)?);
        keep_offline_copies(&store, offline);
        let loader = Arc::new(Loader::new(store.clone(), fetchers, memory, config.readahead_blocks)?);
        let fs = BlockFs::new(loader.clone(), options).map_err(|e| Error::io("reader threads", e))?;
        let mount_options = [
            MountOption::RO,
            MountOption::FSName("circular".into()),
            MountOption::Subtype("blockfs".into()),
            MountOption::DefaultPermissions,
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        let session = fuser::spawn_mount2(fs, mountpoint, &mount_options).map_err(|e| Error::Mountpoint {
            path: mountpoint.to_path_buf(),
            reason: format!("cannot mount: {e} (is fuse3 installed and /dev/fuse present?)"),
        })?;
        widen_kernel_readahead(mountpoint);
        // Fetch every snapshot's index in the background, so that the status
        // file can show how much of each is cached before anyone opens it.
        let indexer = store.clone();
        let _ = std::thread::Builder::new().name("indexes".into()).spawn(move || {
            for (_, snap) in indexer.catalog().snapshots() {
                if let Err(e) = indexer.index(&snap.index) {
                    log::info!("index of {} not available yet: {e}", snap.date);
                }
            }
        });
        Ok(Mounted { session: Some(session), loader, mountpoint: mountpoint.to_path_buf() })
    }

    /// Where the filesystem is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The loader behind the mount (its counters feed `status.json`).
    pub fn loader(&self) -> &Arc<Loader> {
        &self.loader
    }

    /// True once the filesystem was unmounted from outside (`fusermount -u`).
    pub fn is_gone(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Unmounts and waits for the session to end.
    pub fn unmount(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if !session.guard.is_finished() {
            unmount(&self.mountpoint);
        }
        // Dropping the rest of the session closes its side; the thread then ends
        // once the kernel lets go, which a lazy unmount delays until the last
        // open file is closed. Wait a little, never forever.
        let guard = {
            let session = session;
            session.guard
        };
        for _ in 0..50 {
            if guard.is_finished() {
                if let Ok(Err(e)) = guard.join() {
                    log::warn!("FUSE session ended with: {e}");
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        log::warn!("{}: files are still open; it disappears when they are closed", self.mountpoint.display());
    }
}

/// Unmounts now if nothing is open, else lazily (the mount leaves the
/// namespace at once and goes away when its last open file is closed).
fn unmount(mountpoint: &Path) {
    use nix::mount::{umount2, MntFlags};
    match umount2(mountpoint, MntFlags::empty()) {
        Ok(()) => {}
        Err(nix::errno::Errno::EBUSY) => {
            log::warn!("{}: still in use; unmounting lazily", mountpoint.display());
            let _ = umount2(mountpoint, MntFlags::MNT_DETACH);
        }
        // Not root: fusermount3 may unmount what this user mounted.
        Err(_) => {
            let _ = std::process::Command::new("fusermount3")
                .arg("-uz")
                .arg(mountpoint)
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The kernel reads ahead only 128 KiB on a FUSE mount by default; images are
/// read in long runs (a guest booting, a copy), so ask for more. Root only;
/// without it reads still work, in smaller requests.
fn widen_kernel_readahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = meta.dev();
    let bdi = format!("/sys/class/bdi/{}:{}/read_ahead_kb", libc::major(dev), libc::minor(dev));
    if let Err(e) = std::fs::write(&bdi, KERNEL_READAHEAD_KB) {
        log::info!("kernel readahead left at its default ({bdi}: {e})");
    }
}

const KERNEL_READAHEAD_KB: &str = "4096";

/// The snapshots whose every block is cached boot with no network: their
/// blocks are kept (never evicted to make room for others) for as long as this
/// mount runs. Online, a cap smaller than the cache then takes effect on the
/// other blocks; offline nothing is evicted at all.
fn keep_offline_copies(store: &VerifiedStore, offline: bool) {
    let cache = store.cache();
    let mut kept = std::collections::HashSet::new();
    let mut names = Vec::new();
    for (dist, snap) in store.catalog().snapshots() {
        let Some(index) = store.cached_index(&snap.index) else {
            continue;
        };
        let blocks = index.distinct_blocks();
        if cache.count_cached(&blocks) == blocks.len() as u64 {
            names.push(format!("{}/{}", dist.name, snap.date));
            kept.extend(blocks);
        }
    }
    if !names.is_empty() {
        log::info!("kept for offline use (never evicted for other blocks): {}", names.join(", "));
    }
    cache.keep(kept);
    if !offline && !cache.enforce_cap() {
        log::warn!(
            "the cache holds more than its cap of {} bytes, and the rest is kept for offline use; nothing more is cached",
            cache.max_bytes()
        );
    }
}

/// True when `mountpoint` is a FUSE mount whose daemon is gone.
pub fn is_stale_mount(mountpoint: &Path) -> bool {
    let dead = |e: nix::errno::Errno| matches!(e, nix::errno::Errno::ENOTCONN | nix::errno::Errno::ECONNABORTED);
    match nix::sys::statvfs::statvfs(mountpoint) {
        Err(e) => dead(e),
        Ok(_) => false,
    }
}

/// True when `mountpoint` is itself the root of a FUSE mount that answers
/// (not merely a directory inside one, such as a home on sshfs).
fn is_live_fuse_mount(mountpoint: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let fuse =
        nix::sys::statfs::statfs(mountpoint).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::FUSE_SUPER_MAGIC);
    let root_of_a_mount = match (std::fs::metadata(mountpoint), std::fs::metadata(mountpoint.join(".."))) {
        (Ok(dir), Ok(parent)) => dir.dev() != parent.dev(),
        _ => false,
    };
    fuse && root_of_a_mount
}

/// Clears dead mounts left on `mountpoint` (a lazy unmount: a reader that
/// still holds a file of the dead mount keeps it until it closes, and gets
/// errors from it, as it already did). Says so on stderr.
fn clear_stale_mounts(mountpoint: &Path) {
    // Dead mounts can be stacked, one per crash.
    for _ in 0..8 {
        if !is_stale_mount(mountpoint) {
            return;
        }
        log::warn!(
            "{}: a blockfs that stopped without unmounting (killed or crashed) left its mount here; clearing it",
            mountpoint.display()
        );
        if nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH).is_err() {
            // Not root: fusermount3 may unmount what this user mounted.
            let status = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(mountpoint)
                .stderr(std::process::Stdio::null())
                .status();
            if !status.is_ok_and(|s| s.success()) {
                log::warn!(
                    "{}: could not clear the dead mount; run `fusermount3 -u -z {}` (or umount -l as root)",
                    mountpoint.display(),
                    mountpoint.display()
                );
                return;
            }
        }
    }
}
