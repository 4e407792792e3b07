//! `image-build profile`: record the order in which a snapshot's boot first
//! reads its blocks, and publish it as the snapshot's boot profile.
//!
//! How: mount the store itself (a `file://` source) with blockfs's library and
//! its read trace on, boot the snapshot headless in QEMU from that mount (guest
//! writes go to a throwaway qcow2 overlay), and watch the serial console for a
//! login prompt. The trace's first reads, in order, become
//! `profiles/<sha1>.json`; the catalog names it and is re-signed.
//!
//! Why first reads by the guest, not everything blockfs fetched: readahead and
//! prefetch guess; the profile must say what a boot actually needed, in the
//! order it needed it, so that prefetch can stay ahead of the next boot.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blockfs::trace::Trace;
use blockfs::{MountConfig, Mounted};
use circular_format::catalog::Firmware;
use circular_format::index::Index;
use circular_format::layout::{index_path, profile_path};
use circular_format::profile::Profile;
use circular_format::{signing, Sha1Name};

use crate::error::{BuildError, Result};
use crate::store_dir::StoreDir;

/// What the serial console shows when the boot is done (getty's prompt).
pub const LOGIN_PROMPT: &str = "login:";

/// UEFI firmware pairs (code, variables) in the order Debian's ovmf ships them.
const OVMF: [(&str, &str); 2] = [
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

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
    let boot = boot_until_login(&image, &snapshot.boot, opts, work.path(), &serial_log);
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

    let profile = Profile::new(snapshot.index, snapshot_block_size(&store_root, &snapshot.index)?, blocks);
    let bytes = profile.to_bytes();
    let profile_id = Sha1Name::of(&bytes);
    dir.write(&store_root.join(profile_path(&profile_id)), &bytes)?;
    let mut catalog = catalog;
    let entry = catalog
        .distributions
        .iter_mut()
        .find(|d| d.name == opts.distro)
        .and_then(|d| d.snapshots.iter_mut().find(|s| s.date == opts.date))
        .ok_or_else(|| BuildError::Usage("the snapshot left the catalog while profiling".into()))?;
    entry.profile = Some(profile_id);
    dir.write_catalog(&mut catalog, &key, opts.valid_days)?;
    Ok(Recorded { profile_id, blocks: profile.blocks.len(), boot_time, reached_login })
}

/// The block size the snapshot's index was cut with.
fn snapshot_block_size(store: &Path, index: &Sha1Name) -> Result<u32> {
    let path = store.join(index_path(index));
    let bytes = std::fs::read(&path).map_err(|e| BuildError::io(&path, e))?;
    let index = Index::parse(&bytes, &path.display().to_string())?;
    Ok(index.block_size)
}

/// Boots `image` headless and returns whether the login prompt appeared, and
/// when (or when the timeout struck).
fn boot_until_login(
    image: &Path,
    boot: &blockfs::catalog::BootSettings,
    opts: &ProfileOptions,
    work: &Path,
    serial_log: &Path,
) -> Result<(bool, Duration)> {
    // A throwaway overlay takes the guest's writes; the image stays read-only.
    let overlay = work.join("overlay.qcow2");
    run_tool(
        Command::new("qemu-img").args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"]).arg(image).arg(&overlay),
    )?;
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-name", "circular-profile", "-nodefaults", "-no-user-config"]);
    match boot.firmware {
        Firmware::Bios => qemu.args(["-machine", "pc"]),
        Firmware::Uefi => {
            let (code, vars) = OVMF
                .iter()
                .find(|(c, v)| Path::new(c).exists() && Path::new(v).exists())
                .ok_or_else(|| BuildError::Usage("a UEFI snapshot needs OVMF (Debian: ovmf)".into()))?;
            let vars_copy = work.join("vars.fd");
            std::fs::copy(vars, &vars_copy).map_err(|e| BuildError::io(Path::new(vars), e))?;
            qemu.args(["-machine", "q35", "-drive"])
                .arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={code}"))
                .arg("-drive")
                .arg(format!("if=pflash,format=raw,unit=1,file={}", vars_copy.display()))
        }
    };
    match opts.accel {
        Accel::Kvm => qemu.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => qemu.args(["-accel", "tcg", "-cpu", "max"]),
    };
    // The same disk path as the menu's VMs (virtio-blk under a qcow2 overlay),
    // so the profile matches what users' boots read.
    qemu.args(["-m", &boot.memory_mib.to_string(), "-smp", &boot.cpus.to_string()])
        .arg("-blockdev")
        .arg(format!("driver=file,node-name=base-file,filename={},read-only=on,locking=off", image.display()))
        .args(["-blockdev", "driver=raw,node-name=base,file=base-file,read-only=on"])
        .arg("-blockdev")
        .arg(format!("driver=file,node-name=overlay-file,filename={}", overlay.display()))
        .args(["-blockdev", "driver=qcow2,node-name=disk,file=overlay-file,backing=base"])
        .args(["-device", "virtio-blk-pci,drive=disk,bootindex=0"])
        .args(["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0"])
        .args(["-vga", "std", "-display", "none", "-monitor", "none", "-serial", "stdio"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = qemu.spawn().map_err(|e| BuildError::Tool {
        command: "qemu-system-x86_64".into(),
        detail: format!("{e}; install QEMU (Debian: qemu-system-x86)"),
    })?;
    let result = watch_serial(&mut child, &opts.prompt, opts.timeout, serial_log);
    // Done either way: nothing the guest does from here on matters.
    let _ = child.kill();
    let status = child.wait();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    match result {
        Watch::Login => Ok((true, started.elapsed())),
        Watch::Timeout => {
            eprintln!(
                "image-build profile: no {:?} within {} s; publishing what the boot read so far (serial log: {})",
                opts.prompt,
                opts.timeout.as_secs(),
                serial_log.display()
            );
            Ok((false, started.elapsed()))
        }
        Watch::Exited => Err(BuildError::Tool {
            command: "qemu-system-x86_64".into(),
            detail: format!(
                "it stopped before the login prompt ({}): {}; serial log: {}",
                status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                stderr.trim(),
                serial_log.display()
            ),
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

/// Copies the console to `log` and looks for the login prompt in it.
fn watch_serial(child: &mut Child, prompt: &str, timeout: Duration, log: &Path) -> Watch {
    let Some(mut out) = child.stdout.take() else {
        return Watch::Exited;
    };
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

fn run_tool(cmd: &mut Command) -> Result<()> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .map_err(|e| BuildError::Tool { command: name.clone(), detail: format!("{e}; install qemu-utils") })?;
    if !out.status.success() {
        return Err(BuildError::Tool {
            command: name,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
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
}
