//! `image-build profile`: record the order in which a snapshot's boot first
//! reads its blocks, and publish it as the snapshot's boot profile.
//!
//! How: mount the store itself (a `file://` source) with blockfs's library and
//! its read trace on, boot the snapshot headless from that mount with the same
//! VM launcher as the menu (`circular-vm`: guest writes go to a throwaway qcow2
//! overlay), and watch the serial console for a login prompt. The trace's first reads, in order, become
//! `profiles/<sha1>.json`; the catalog names it and is re-signed.
//!
//! Why first reads by the guest, not everything blockfs fetched: readahead and
//! prefetch guess; the profile must say what a boot actually needed, in the
//! order it needed it, so that prefetch can stay ahead of the next boot.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blockfs::trace::Trace;
use blockfs::{MountConfig, Mounted};
use circular_format::catalog::Snapshot;
use circular_format::index::Index;
use circular_format::layout::{index_path, profile_path};
use circular_format::profile::Profile;
use circular_format::{signing, Sha1Name};
use ed25519_dalek::SigningKey;

use crate::error::{BuildError, Result};
use crate::store_dir::StoreDir;
use circular_vm::{Display, Stdio, Vm, VmSettings, VmSpec};

/// KVM or TCG for the profiling boot (the VM launcher's own choice of names).
pub use circular_vm::Accel;

/// What the serial console shows when the boot is done (getty's prompt).
pub const LOGIN_PROMPT: &str = "login:";

/// How long QEMU is given to quit once the boot is judged (SIGTERM), before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

pub struct ProfileOptions {
    pub store: PathBuf,
    pub distro: String,
    pub date: String,
    /// Stop waiting for the login prompt after this long and publish what was read.
    pub timeout: Duration,
    pub key: PathBuf,
    /// Verify the catalog with this key instead of the secret key's public half.
    pub public: Option<PathBuf>,
    pub accel: Accel,
    pub valid_days: u32,
    /// Where QEMU's serial console output is kept (default: a temp dir, dropped).
    pub serial_log: Option<PathBuf>,
    /// The text on the serial console that ends the boot ([`LOGIN_PROMPT`]).
    pub prompt: String,
}

/// What the boot did, for the publisher's report.
pub struct Recorded {
    pub profile_id: Sha1Name,
    pub blocks: usize,
    pub boot_time: Duration,
    pub reached_login: bool,
}

pub fn profile(opts: &ProfileOptions) -> Result<Recorded> {
    let key = signing::read_secret(&opts.key)?;
    let public_keys = match &opts.public {
        Some(p) => signing::read_public(p)?,
        None => vec![key.verifying_key()],
    };
    let store_root = opts.store.canonicalize().map_err(|e| BuildError::io(&opts.store, e))?;
    let dir = StoreDir::open_for_writing(&store_root)?;
    let catalog = dir.read_catalog(&key)?;
    let snapshot = catalog
        .distribution(&opts.distro)
        .and_then(|d| d.snapshots.iter().find(|s| s.date == opts.date))
        .cloned()
        .ok_or_else(|| {
            BuildError::Usage(format!(
                "{} has no snapshot {}/{}; `image-build list` shows what it has",
                store_root.display(),
                opts.distro,
                opts.date
            ))
        })?;

    let work = tempfile::Builder::new()
        .prefix("image-build-profile.")
        .tempdir()
        .map_err(|e| BuildError::io(Path::new("/tmp"), e))?;
    let mountpoint = work.path().join("mnt");
    let cache = work.path().join("cache");
    for d in [&mountpoint, &cache] {
        std::fs::create_dir_all(d).map_err(|e| BuildError::io(d, e))?;
    }
    let trace = Arc::new(Trace::new());
    let url = format!("file://{}", store_root.display());
    let mut config = MountConfig::new(vec![url], public_keys, cache);
    config.trace = Some(trace.clone());
    // Prefetch would fetch an older profile's blocks; the trace ignores them,
    // but a clean boot is easier to reason about.
    config.prefetch = false;
    let mounted = Mounted::start(config, &mountpoint)?;
    let image = mountpoint.join(&opts.distro).join(format!("{}.img", opts.date));

    let serial_log = opts.serial_log.clone().unwrap_or_else(|| work.path().join("serial.log"));
    let boot = boot_until_login(&image, &snapshot, opts, work.path(), &serial_log);
    // The blocks are read; unmount before judging the boot, so a failure below
    // never leaves a mount behind.
    let blocks = trace.first_reads(&snapshot.index);
    mounted.unmount();
    let (reached_login, boot_time) = boot?;
    if blocks.is_empty() {
        return Err(BuildError::Usage(format!(
            "the boot read no block of {}/{}; see the serial console log {}",
            opts.distro,
            opts.date,
            serial_log.display()
        )));
    }

    let n = blocks.len();
    let profile_id = publish(&dir, &key, &opts.distro, &opts.date, blocks, opts.valid_days)?;
    Ok(Recorded { profile_id, blocks: n, boot_time, reached_login })
}

/// Publishes `blocks` (block numbers in the order a boot first read them) as the boot
/// profile of distro/date: writes the profile file, named by the SHA-1 of its bytes, and
/// re-signs the catalog with the snapshot naming it.
pub fn publish(
    dir: &StoreDir,
    key: &SigningKey,
    distro: &str,
    date: &str,
    blocks: Vec<u32>,
    valid_days: u32,
) -> Result<Sha1Name> {
    let mut catalog = dir.read_catalog(key)?;
    let entry = catalog
        .distributions
        .iter_mut()
        .find(|d| d.name == distro)
        .and_then(|d| d.snapshots.iter_mut().find(|s| s.date == date))
        .ok_or_else(|| BuildError::Usage(format!("the store has no snapshot {distro}/{date}")))?;
    let profile = Profile::new(entry.index, snapshot_block_size(dir.root(), &entry.index)?, blocks);
    let bytes = profile.to_bytes();
    let profile_id = Sha1Name::of(&bytes);
    dir.write(&dir.root().join(profile_path(&profile_id)), &bytes)?;
    entry.profile = Some(profile_id);
    dir.write_catalog(&mut catalog, key, valid_days)?;
    Ok(profile_id)
}

/// The block size the snapshot's index was cut with.
fn snapshot_block_size(store: &Path, index: &Sha1Name) -> Result<u32> {
    let path = store.join(index_path(index));
    let bytes = std::fs::read(&path).map_err(|e| BuildError::io(&path, e))?;
    let index = Index::parse(&bytes, &path.display().to_string())?;
    Ok(index.block_size)
}

/// Boots `image` headless and returns whether the login prompt appeared, and
/// when (or when the timeout struck), counted from QEMU's start.
fn boot_until_login(
    image: &Path,
    snapshot: &Snapshot,
    opts: &ProfileOptions,
    work: &Path,
    serial_log: &Path,
) -> Result<(bool, Duration)> {
    // The menu's VM, headless: the same machine, devices and disk path
    // (virtio-blk under a throwaway qcow2 overlay, here in `work`) as a person's
    // boot, so the profile matches what users' boots read. With Display::None the
    // serial console is QEMU's standard output, piped to us.
    let mut spec = VmSpec::new(
        &opts.distro,
        &opts.date,
        image.to_path_buf(),
        snapshot.image_size,
        snapshot.boot.firmware,
        VmSettings::from_catalog(&snapshot.boot, false),
        opts.accel,
        Display::None,
        work.to_path_buf(),
    );
    spec.media = snapshot.media;
    let mut vm = Vm::start(&spec, Stdio::Piped)?;
    let result = match vm.take_stdout() {
        Some(console) => watch_serial(console, &opts.prompt, opts.timeout, serial_log),
        None => Watch::Exited,
    };
    let boot_time = vm.running_for();
    // Done either way: nothing the guest does from here on matters. Stopping
    // also deletes the overlay.
    let outcome = vm.stop(STOP_GRACE)?;
    match result {
        Watch::Login => Ok((true, boot_time)),
        Watch::Timeout => {
            eprintln!(
                "image-build profile: no {:?} within {} s; publishing what the boot read so far (serial log: {})",
                opts.prompt,
                opts.timeout.as_secs(),
                serial_log.display()
            );
            Ok((false, boot_time))
        }
        Watch::Exited => Err(BuildError::BootStopped {
            qemu: spec.qemu.display().to_string(),
            status: outcome.status.to_string(),
            reason: outcome.reason(),
            serial_log: serial_log.to_path_buf(),
        }),
        Watch::Log(e) => Err(BuildError::io(serial_log, e)),
    }
}

enum Watch {
    Login,
    Timeout,
    Exited,
    Log(std::io::Error),
}

/// Copies the console to `log` and looks for the login prompt in it. The
/// console's end (QEMU exited) is [`Watch::Exited`].
fn watch_serial(mut out: impl Read + Send + 'static, prompt: &str, timeout: Duration, log: &Path) -> Watch {
    let mut file = match std::fs::File::create(log) {
        Ok(f) => f,
        Err(e) => return Watch::Log(e),
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    // Reading blocks; a thread turns it into messages the timeout can interrupt.
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut seen = PromptMatcher::new(prompt);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Watch::Timeout;
        }
        match rx.recv_timeout(left) {
            Ok(bytes) => {
                use std::io::Write;
                if let Err(e) = file.write_all(&bytes) {
                    return Watch::Log(e);
                }
                if seen.feed(&bytes) {
                    return Watch::Login;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return Watch::Timeout,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Watch::Exited,
        }
    }
}

/// Finds a text in a stream that arrives in pieces (a prompt split across two
/// reads still counts).
struct PromptMatcher {
    needle: Vec<u8>,
    tail: Vec<u8>,
}

impl PromptMatcher {
    fn new(needle: &str) -> Self {
        PromptMatcher { needle: needle.as_bytes().to_vec(), tail: Vec::new() }
    }

    fn feed(&mut self, bytes: &[u8]) -> bool {
        self.tail.extend_from_slice(bytes);
        let found = self.tail.windows(self.needle.len()).any(|w| w == self.needle.as_slice());
        // Keep only what could still be the start of the needle.
        let keep = self.needle.len().saturating_sub(1).min(self.tail.len());
        self.tail.drain(..self.tail.len() - keep);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_found_across_reads() {
        let mut m = PromptMatcher::new("login:");
        assert!(!m.feed(b"Debian GNU/Linux 12 circular ttyS0\r\n\r\ncircular lo"));
        assert!(m.feed(b"gin: "));
        let mut m = PromptMatcher::new("login:");
        assert!(!m.feed(b"l"));
        assert!(!m.feed(b"ogi"));
        assert!(m.feed(b"n:"));
        assert!(!PromptMatcher::new("login:").feed(b"log in: no"));
    }

    #[test]
    fn the_console_is_logged_until_the_prompt_or_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serial.log");
        let console: &'static [u8] = b"SeaBIOS\r\nDebian GNU/Linux 12 circular ttyS0\r\ncircular login: ";
        let w = watch_serial(console, "login:", Duration::from_secs(10), &log);
        assert!(matches!(w, Watch::Login));
        assert!(std::fs::read_to_string(&log).unwrap().ends_with("login: "));
        let w = watch_serial(&b"Kernel panic"[..], "login:", Duration::from_secs(10), &log);
        assert!(matches!(w, Watch::Exited));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "Kernel panic");
    }

    #[test]
    fn a_silent_console_times_out() {
        let dir = tempfile::tempdir().unwrap();
        // A pipe whose writer stays open: the console of a guest that hangs.
        let (reader, writer) = nix::unistd::pipe().unwrap();
        let w = watch_serial(
            std::fs::File::from(reader),
            "login:",
            Duration::from_millis(200),
            &dir.path().join("serial.log"),
        );
        assert!(matches!(w, Watch::Timeout));
        drop(writer);
    }
}
