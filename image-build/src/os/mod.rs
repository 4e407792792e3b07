//! `image-build os`: builds the bootable Debian raw disk images that Circular
//! publishes, and next week's snapshot of one (`--update-from`).
//!
//! It is the image factory only: turning an image into store blocks is `image-build
//! add`. Modules: `args` (flags, validation), `build` (from scratch), `update`
//! (in-place upgrade), `chroot` (debootstrap and apt), `rootfs` (what goes into and
//! out of the tree), `ext4` (deterministic inode times), `mounts` (private mount
//! namespace, clean-up). The MBR and GRUB's boot sectors come from `crate::disk`, and
//! tools run through `crate::tool` (a log and progress). docs/OS-IMAGES.md explains the
//! choices.

mod args;
mod build;
mod chroot;
mod error;
mod ext4;
mod mounts;
mod overlay;
mod rootfs;
mod update;

use std::path::{Path, PathBuf};
use std::time::Instant;

use sha1::{Digest, Sha1};

use crate::disk::grub;
use crate::tool::{self, Runner};
use args::Mode;
pub use args::OsArgs;
pub use error::OsError;
use error::Result;

/// Fixed identities, derived from the suite so that the same inputs give the same
/// bytes (and different suites do not share a filesystem UUID).
pub struct Ids {
    pub root_uuid: String,
    pub hash_seed: String,
    pub disk_signature: u32,
}

fn uuid_from(label: &str) -> String {
    let d = Sha1::digest(label.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50; // version 5 (name-based, SHA-1)
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

impl Ids {
    pub fn for_suite(suite: &str) -> Self {
        let d = Sha1::digest(format!("image-build os disk {suite}").as_bytes());
        Ids {
            root_uuid: uuid_from(&format!("image-build os root {suite}")),
            hash_seed: uuid_from(&format!("image-build os hash seed {suite}")),
            disk_signature: u32::from_le_bytes([d[0], d[1], d[2], d[3]]),
        }
    }
}

pub fn run(args: &OsArgs) -> Result<()> {
    let started = Instant::now();
    let plan = args.plan()?;
    if !nix::unistd::geteuid().is_root() {
        return Err(OsError::NotRoot);
    }
    preflight(&plan.mode)?;

    let out = absolute(&args.out)?;
    let out_dir = out.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    if !out_dir.is_dir() {
        return Err(OsError::Usage(format!("the directory of --out, {}, does not exist", out_dir.display())));
    }
    if out.exists() && !args.force {
        return Err(OsError::OutExists { path: out });
    }
    if let Mode::Update { previous } = &plan.mode {
        if !previous.is_file() {
            return Err(OsError::Usage(format!("--update-from {}: no such file", previous.display())));
        }
    }
    check_free_space(&out_dir, &plan.mode)?;
    let cache = match &args.cache_dir {
        Some(c) => {
            std::fs::create_dir_all(c).map_err(|e| OsError::io(format!("creating {}", c.display()), e))?;
            Some(absolute(c)?)
        }
        None => None,
    };

    // Before any thread exists (unshare needs a single-threaded process).
    mounts::enter_private_namespace()?;

    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let work = mounts::WorkDir::create(out_dir.join(format!(".{name}.image-build-work")), args.keep_work)?;
    // The log sits next to the output, so that the path in an error message stays
    // valid after the work directory is gone; it is removed after a success.
    let log = out_dir.join(format!("{name}.build.log"));
    let mut runner = Runner::new(&log, error::hint)?;
    let result = match &plan.mode {
        Mode::Build { size } => {
            let suite = plan.suite.as_deref().unwrap_or(args::DEFAULT_SUITE);
            let ids = Ids::for_suite(suite);
            let job = build::BuildJob {
                suite,
                mirror: &plan.mirror,
                packages: &plan.packages,
                updates: plan.updates,
                slim_kernel: args.slim_kernel,
                size: *size,
                epoch: plan.epoch,
                cache: cache.as_deref(),
                work: &work.path,
            };
            build::build(&mut runner, &job, &ids)
        }
        Mode::Update { previous } => {
            let job = update::UpdateJob {
                previous,
                suite: plan.suite.as_deref(),
                mirror: &plan.mirror,
                packages: &plan.packages,
                updates: plan.updates,
                slim_kernel: args.slim_kernel,
                epoch: plan.epoch,
                hold: &plan.hold,
                direct: args.direct,
                cache: cache.as_deref(),
                work: &work.path,
            };
            update::update(&mut runner, &job)
        }
    };
    let image = match result {
        Ok(i) => i,
        Err(e) => {
            eprintln!("    the build log is kept in {}", runner.log_path().display());
            return Err(e);
        }
    };
    if !args.keep_work {
        let _ = std::fs::remove_file(&log);
    }
    std::fs::rename(&image, &out).map_err(|e| OsError::io(format!("moving the image to {}", out.display()), e))?;
    let meta = std::fs::metadata(&out).map_err(|e| OsError::io(format!("inspecting {}", out.display()), e))?;
    use std::os::unix::fs::MetadataExt;
    eprintln!(
        "==> {}: {} MiB disk, {} MiB allocated, in {:.0} s",
        out.display(),
        meta.len() >> 20,
        (meta.blocks() * 512) >> 20,
        started.elapsed().as_secs_f64()
    );
    // rootfs::fix_shadow empties root's password for the console: say so to whoever boots it.
    let mut hint = out.clone().into_os_string();
    hint.push(crate::add::LOGIN_HINT_SUFFIX);
    std::fs::write(&hint, format!("{LOGIN_HINT}\n"))
        .map_err(|e| OsError::io(format!("writing the login hint {}", Path::new(&hint).display()), e))?;
    eprintln!("    login hint for `image-build add`: {} ({LOGIN_HINT})", Path::new(&hint).display());
    Ok(())
}

/// How to log in to the images `os` makes (see `rootfs::fix_shadow`), written
/// beside the image as `<OUT>.login`, which `image-build add` records.
pub const LOGIN_HINT: &str = "root, no password";

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| OsError::io(format!("resolving {}", p.display()), e))
}

fn preflight(mode: &Mode) -> Result<()> {
    let mut tools = vec![("chroot", "coreutils"), ("mount", "mount"), ("e2fsck", "e2fsprogs")];
    match mode {
        Mode::Build { .. } => {
            tools.extend([("debootstrap", "debootstrap"), ("mke2fs", "e2fsprogs"), ("grub-mkimage", "grub-common")]);
            tool::require_file(grub::BOOT_IMG, "grub-pc-bin")?;
        }
        Mode::Update { .. } => tools.extend([("tune2fs", "e2fsprogs"), ("fstrim", "util-linux"), ("cp", "coreutils")]),
    }
    for (tool, package) in tools {
        tool::require_tool(tool, package)?;
    }
    Ok(())
}

/// A rough early check, so a full disk is reported before twenty minutes of work.
fn check_free_space(dir: &Path, mode: &Mode) -> Result<()> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| OsError::sys(format!("statvfs {}", dir.display()), e))?;
    let have = st.blocks_available() as u64 * st.fragment_size() as u64;
    let need = match mode {
        // The tree (about 1 GiB for a small image) plus the image's allocated part.
        Mode::Build { size } => (2u64 << 30).min(*size) + (1 << 30),
        Mode::Update { previous } => {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(previous).map(|m| m.blocks() * 512).unwrap_or(0) + (1 << 30)
        }
    };
    if have < need {
        return Err(OsError::DiskFull { dir: dir.to_path_buf(), need_mib: need >> 20, have_mib: have >> 20 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_per_suite() {
        let a = Ids::for_suite("bookworm");
        let b = Ids::for_suite("bookworm");
        let c = Ids::for_suite("trixie");
        assert_eq!(a.root_uuid, b.root_uuid);
        assert_ne!(a.root_uuid, c.root_uuid);
        assert_ne!(a.root_uuid, a.hash_seed);
        assert_eq!(a.root_uuid.len(), 36);
        assert_eq!(&a.root_uuid[14..15], "5");
    }
}
