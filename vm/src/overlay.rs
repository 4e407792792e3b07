//! The guest's writable disk: a qcow2 overlay in the cache directory over the
//! snapshot's dated, read-only image on the blockfs mount.
//!
//! Layout: `<cache_dir>/overlays/<distribution>/<date>.qcow2` is the kept
//! overlay of a snapshot; `<date>.discard-<pid>.qcow2` is a throw-away one,
//! made fresh at each start and deleted when the VM ends. UEFI variables sit
//! beside them as `.vars.fd`. The name `overlays` cannot clash with the block
//! cache, whose directories are two hex digits.
//!
//! The overlays hold what the guest wrote (a person's files), so they are
//! private like the cache: `overlays/` and its distribution directories are
//! real directories of this user, mode 0700 (a looser one is tightened), and
//! every overlay and UEFI variable file is 0600. A kept overlay is used only if
//! it is a regular file of this user (never through a link), a qcow2 whose
//! backing file is this snapshot's `<distribution>/<date>.img` and whose size is
//! the image's; anything else there is refused with [`VmError::NotOurOverlay`]
//! and left alone. A throw-away overlay's name is removed (a link itself, never
//! what it points to) before it is made fresh.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::catalog::{check_date, Firmware, Media};

use crate::command::{DiskChanges, VmSpec};
use crate::error::VmError;
use crate::firmware::{find_ovmf, FirmwareFiles};

/// A snapshot's image on the mount, always by date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The snapshot's date, `YYYY-MM-DD` (also when `latest` was asked for).
    pub date: String,
    /// `<mountpoint>/<distribution>/<date>.img`.
    pub path: PathBuf,
}

/// Finds `<mountpoint>/<distribution>/<entry>.img`. `entry` is a date or
/// `latest`; `latest.img` is a symlink, resolved here to its dated target so an
/// overlay never silently changes its backing when a new week is published.
///
/// # Errors
/// [`VmError::NoImage`] when the link or the dated image is missing (blockfs
/// stopped, or no such snapshot), or the link does not point at a date.
pub fn resolve_image(mountpoint: &Path, distribution: &str, entry: &str) -> Result<ResolvedImage, VmError> {
    let dir = mountpoint.join(distribution);
    let date = if entry == "latest" {
        let link = dir.join("latest.img");
        let target = std::fs::read_link(&link).map_err(|source| VmError::NoImage { image: link.clone(), source })?;
        let stem = target.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        check_date(&stem).map_err(|reason| VmError::NoImage {
            image: link,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
        })?;
        stem
    } else {
        entry.to_string()
    };
    let path = dir.join(format!("{date}.img"));
    std::fs::metadata(&path).map_err(|source| VmError::NoImage { image: path.clone(), source })?;
    Ok(ResolvedImage { date, path })
}

/// `<cache_dir>/overlays/<distribution>`: the directory of a distribution's overlays.
pub fn overlay_dir(cache_dir: &Path, distribution: &str) -> PathBuf {
    cache_dir.join("overlays").join(distribution)
}

/// The overlay file a start with these settings uses: `<date>.qcow2` for kept
/// changes, `<date>.discard-<this process's pid>.qcow2` for a throw-away one.
pub fn overlay_path(cache_dir: &Path, distribution: &str, date: &str, changes: DiskChanges) -> PathBuf {
    let dir = overlay_dir(cache_dir, distribution);
    match changes {
        DiskChanges::Keep => dir.join(format!("{date}.qcow2")),
        DiskChanges::Discard => dir.join(format!("{date}.discard-{}.qcow2", std::process::id())),
    }
}

/// A kept overlay: the guest's saved changes to a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptOverlay {
    /// The overlay file.
    pub path: PathBuf,
    /// Bytes it takes on disk (allocated blocks, not its virtual size).
    pub bytes: u64,
    /// When the guest last wrote it (the epoch if the filesystem cannot say).
    pub modified: SystemTime,
}

/// The kept overlay of a snapshot, or `None` when its changes are not kept.
pub fn kept_overlay(cache_dir: &Path, distribution: &str, date: &str) -> Option<KeptOverlay> {
    let path = overlay_path(cache_dir, distribution, date, DiskChanges::Keep);
    let meta = std::fs::metadata(&path).ok()?;
    Some(KeptOverlay { bytes: meta.blocks() * 512, modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), path })
}

/// Forgets a snapshot's kept changes (overlay and UEFI variables). Files that
/// are already gone are fine.
///
/// # Errors
/// [`VmError::Io`] when a file exists and cannot be removed.
pub fn remove_kept_overlay(cache_dir: &Path, distribution: &str, date: &str) -> Result<(), VmError> {
    let path = overlay_path(cache_dir, distribution, date, DiskChanges::Keep);
    for p in [path.clone(), vars_path(&path)] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(VmError::io(p, e)),
        }
    }
    Ok(())
}

/// The disk files of one start; throw-away ones are deleted by [`PreparedDisk::cleanup`].
#[derive(Debug)]
pub struct PreparedDisk {
    /// The qcow2 file the guest writes to: a disk snapshot's overlay, or a CD's
    /// scratch disk (`None` for a CD without one).
    pub overlay: Option<PathBuf>,
    /// The firmware files, for a UEFI snapshot.
    pub uefi: Option<FirmwareFiles>,
    /// The overlay (and variables) are throw-away: [`PreparedDisk::cleanup`] deletes them.
    pub temporary: bool,
}

impl PreparedDisk {
    /// Deletes a throw-away overlay and its UEFI variables; keeps kept ones.
    pub fn cleanup(&self) {
        if self.temporary {
            // Best effort: a leftover is removed by the next start's sweep.
            if let Some(overlay) = &self.overlay {
                let _ = std::fs::remove_file(overlay);
            }
            if let Some(fw) = &self.uefi {
                let _ = std::fs::remove_file(&fw.vars);
            }
        }
    }
}

fn vars_path(overlay: &Path) -> PathBuf {
    overlay.with_extension("vars.fd")
}

/// Makes (or, for kept changes, reuses) the overlay and UEFI variables of
/// `spec`, under [`overlay_dir`], and first deletes throw-away overlays that
/// crashed runs left there. Reads nothing from the image.
///
/// # Errors
/// [`VmError::Io`] when the directory or the variables cannot be made,
/// [`VmError::NoProgram`] or [`VmError::Overlay`] when `qemu-img` cannot make
/// the overlay, [`VmError::NotQcow2`] when a kept overlay is not qcow2, and
/// [`VmError::NoUefiFirmware`] for a UEFI snapshot without OVMF.
pub fn prepare_overlay(spec: &VmSpec) -> Result<PreparedDisk, VmError> {
    let dir = overlay_dir(&spec.cache_dir, &spec.distribution);
    private_dir(&spec.cache_dir.join("overlays"))?;
    private_dir(&dir)?;
    sweep_dead_discards(&dir);
    let overlay = overlay_path(&spec.cache_dir, &spec.distribution, &spec.date, spec.settings.changes);
    let temporary = spec.settings.changes == DiskChanges::Discard;
    let wanted = spec.media == Media::Disk || spec.settings.scratch_gib > 0;
    let reuse = !temporary && std::fs::symlink_metadata(&overlay).is_ok();
    if !wanted {
        // A CD without a scratch disk: nothing to write to, and a kept scratch
        // disk from an earlier start stays where it is, unused this time.
    } else if reuse {
        match spec.media {
            Media::Disk => check_our_overlay(spec, &overlay)?,
            Media::Cdrom => check_our_scratch(&overlay)?,
        }
        make_private(&overlay)?;
    } else {
        remove_entry(&overlay)?;
        create_qcow2(spec, &overlay)?;
        make_private(&overlay)?;
    }
    let uefi = match spec.firmware {
        Firmware::Bios => None,
        Firmware::Uefi => {
            let ovmf = find_ovmf()?;
            let vars = vars_path(&overlay);
            let keep_vars = reuse && std::fs::symlink_metadata(&vars).is_ok();
            if keep_vars {
                check_our_file(&vars)?;
            } else {
                remove_entry(&vars)?;
                std::fs::copy(ovmf.vars_template, &vars).map_err(|e| VmError::io(&vars, e))?;
            }
            make_private(&vars)?;
            Some(FirmwareFiles { code: PathBuf::from(ovmf.code), vars })
        }
    };
    Ok(PreparedDisk { overlay: wanted.then_some(overlay), uefi, temporary })
}

fn create_qcow2(spec: &VmSpec, overlay: &Path) -> Result<(), VmError> {
    let mut create = Command::new(&spec.qemu_img);
    match spec.media {
        // -u: do not open the backing file. The size comes from the catalog, so
        // creating an overlay costs no read from the (maybe slow) network.
        Media::Disk => create
            .args(["create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b"])
            .arg(spec.image.to_os_string())
            .arg(overlay)
            .arg(spec.image_size.to_string()),
        // An empty disk: sparse, so its size costs nothing until written.
        Media::Cdrom => {
            create.args(["create", "-q", "-f", "qcow2"]).arg(overlay).arg(format!("{}G", spec.settings.scratch_gib))
        }
    };
    let output = create
        .output()
        .map_err(|source| VmError::NoProgram { program: spec.qemu_img.display().to_string(), source })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(VmError::Overlay {
            overlay: overlay.to_path_buf(),
            reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Makes `dir` (0700) if it is missing, then checks that it is a real
/// directory of this user and tightens its mode to 0700.
pub(crate) fn private_dir(dir: &Path) -> Result<(), VmError> {
    let refuse = |reason: String| VmError::NotOurOverlay { path: dir.to_path_buf(), reason };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| VmError::io(dir, e))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| VmError::io(dir, e))?;
    if meta.file_type().is_symlink() {
        return Err(refuse("the directory is a symbolic link, which someone else may have planted".into()));
    }
    if !meta.is_dir() {
        return Err(refuse("it is not a directory".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(refuse(format!("the directory belongs to user {}, not to this user ({me})", meta.uid())));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| VmError::io(dir, e))?;
    }
    Ok(())
}

/// Mode 0600: the guest's writes are the user's alone.
fn make_private(path: &Path) -> Result<(), VmError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| VmError::io(path, e))
}

/// Removes whatever has `path`'s name (a link itself, never what it points
/// to); a missing one is fine. A directory there is refused.
pub(crate) fn remove_entry(path: &Path) -> Result<(), VmError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VmError::io(path, e)),
    }
}

/// Opens a file of this user without following a link (and without blocking
/// on a FIFO), and checks that it is a regular file.
fn check_our_file(path: &Path) -> Result<std::fs::File, VmError> {
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |reason: String| VmError::NotOurOverlay { path: path.to_path_buf(), reason };
    let meta = std::fs::symlink_metadata(path).map_err(|e| VmError::io(path, e))?;
    if meta.file_type().is_symlink() {
        return Err(refuse("it is a symbolic link".into()));
    }
    if !meta.is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(refuse(format!("it belongs to user {}, not to this user ({me})", meta.uid())));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| VmError::io(path, e))?;
    let opened = file.metadata().map_err(|e| VmError::io(path, e))?;
    if opened.ino() != meta.ino() || opened.dev() != meta.dev() || !opened.is_file() {
        return Err(refuse("it changed while it was checked".into()));
    }
    Ok(file)
}

/// A kept overlay must be this user's regular file, a qcow2 whose backing file
/// is this snapshot's dated image (by its last two path components: the mount
/// point itself may change between runs) and whose size is the image's.
fn check_our_overlay(spec: &VmSpec, path: &Path) -> Result<(), VmError> {
    use std::io::{Read, Seek, SeekFrom};
    let refuse = |reason: String| VmError::NotOurOverlay { path: path.to_path_buf(), reason };
    let mut file = check_our_file(path)?;
    let mut header = [0u8; 32];
    if file.read_exact(&mut header).is_err() || &header[..4] != b"QFI\xfb" {
        return Err(VmError::NotQcow2 { path: path.to_path_buf() });
    }
    let be64 = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    let backing_offset = be64(&header[8..16]);
    let backing_len = u32::from_be_bytes(header[16..20].try_into().unwrap_or([0; 4]));
    let size = be64(&header[24..32]);
    if backing_offset == 0 || backing_len == 0 || backing_len > 4096 {
        return Err(refuse("it has no backing file".into()));
    }
    let mut name = vec![0u8; backing_len as usize];
    file.seek(SeekFrom::Start(backing_offset))
        .and_then(|_| file.read_exact(&mut name))
        .map_err(|_| refuse("its backing file name cannot be read".into()))?;
    let backing = PathBuf::from(std::ffi::OsString::from(String::from_utf8_lossy(&name).into_owned()));
    let tail = |p: &Path| -> Vec<std::ffi::OsString> {
        let mut c: Vec<_> = p.components().rev().take(2).map(|c| c.as_os_str().to_os_string()).collect();
        c.reverse();
        c
    };
    let want = PathBuf::from(&spec.distribution).join(format!("{}.img", spec.date));
    if tail(&backing) != tail(&want) {
        return Err(refuse(format!("its backing file is {}, not …/{}", backing.display(), want.display())));
    }
    let rounded = spec.image_size.div_ceil(512) * 512;
    if size != spec.image_size && size != rounded {
        return Err(refuse(format!("its size is {size} bytes, the image's {}", spec.image_size)));
    }
    Ok(())
}

/// A kept scratch disk must be this user's regular file, a qcow2 with no
/// backing file (a disk snapshot's overlay left under a CD's name is not one).
fn check_our_scratch(path: &Path) -> Result<(), VmError> {
    use std::io::Read;
    let mut file = check_our_file(path)?;
    let mut header = [0u8; 16];
    if file.read_exact(&mut header).is_err() || &header[..4] != b"QFI\xfb" {
        return Err(VmError::NotQcow2 { path: path.to_path_buf() });
    }
    if header[8..16] != [0; 8] {
        return Err(VmError::NotOurOverlay {
            path: path.to_path_buf(),
            reason: "it has a backing file, so it is a disk's overlay, not a CD's scratch disk".into(),
        });
    }
    Ok(())
}

/// Deletes throw-away overlays left by a process that no longer runs (a crash
/// or a power cut), so they never fill the cache partition.
fn sweep_dead_discards(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((_, rest)) = name.split_once(".discard-") else {
            continue;
        };
        let pid = rest.split('.').next().unwrap_or("");
        if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Accel, Display, VmSettings, OVMF};

    fn fake_mount() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("bookworm");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("2026-11-15.img"), vec![0u8; 4096]).unwrap();
        std::fs::write(d.join("2026-11-22.img"), vec![0u8; 4096]).unwrap();
        std::os::unix::fs::symlink("2026-11-22.img", d.join("latest.img")).unwrap();
        dir
    }

    #[test]
    fn latest_resolves_to_its_dated_file() {
        let mnt = fake_mount();
        let r = resolve_image(mnt.path(), "bookworm", "latest").unwrap();
        assert_eq!(r.date, "2026-11-22");
        assert_eq!(r.path, mnt.path().join("bookworm/2026-11-22.img"));
        let r = resolve_image(mnt.path(), "bookworm", "2026-11-15").unwrap();
        assert_eq!(r.path, mnt.path().join("bookworm/2026-11-15.img"));
        let err = resolve_image(mnt.path(), "bookworm", "2026-01-01").unwrap_err();
        assert!(err.to_string().contains("not on the blockfs mount"), "{err}");
    }

    fn spec(mnt: &Path, cache: &Path, changes: DiskChanges) -> VmSpec {
        VmSpec::new(
            "bookworm",
            "2026-11-22",
            mnt.join("bookworm/2026-11-22.img"),
            4096,
            Firmware::Bios,
            VmSettings { changes, ..VmSettings::default() },
            Accel::Tcg,
            Display::None,
            cache.to_path_buf(),
        )
    }

    /// Runs one `qemu-io` command on a qcow2 overlay (its backing file is the fake
    /// image) and says whether it succeeded: `read -P 0xNN` succeeds only when every
    /// byte read is that pattern, so this reads the guest's view of the disk.
    fn qemu_io(overlay: &Path, command: &str) -> bool {
        let out =
            std::process::Command::new("qemu-io").args(["-f", "qcow2", "-c", command]).arg(overlay).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        out.status.success() && !text.contains("Pattern verification failed") && !text.contains("failed")
    }

    #[test]
    fn keep_reuses_and_discard_is_fresh() {
        // Checked by what the guest would read, not by file identity: a kept
        // overlay must still hold the guest's writes at the next start, and a
        // discarded one must read as the published image again (ext4 reuses inode
        // numbers, so comparing inodes let a wiped overlay pass).
        if !testkit::need(&["qemu-img", "qemu-io"]) {
            return;
        }
        let mnt = fake_mount();
        let cache = tempfile::tempdir().unwrap();
        let keep = spec(mnt.path(), cache.path(), DiskChanges::Keep);
        let disk = prepare_overlay(&keep).unwrap();
        assert!(!disk.temporary);
        let overlay = disk.overlay.clone().unwrap();
        assert_eq!(overlay, cache.path().join("overlays/bookworm/2026-11-22.qcow2"));
        assert!(qemu_io(&overlay, "read -P 0 0 4096"), "a new overlay reads as the image");
        assert!(qemu_io(&overlay, "write -P 0xa5 0 4096"));

        // The next "keep" start hands back the guest's changes.
        let again = prepare_overlay(&keep).unwrap();
        let again = again.overlay.unwrap();
        assert_eq!(again, overlay);
        assert!(qemu_io(&again, "read -P 0xa5 0 4096"), "the kept changes are gone");
        assert!(kept_overlay(cache.path(), "bookworm", "2026-11-22").is_some());

        // A "discard" start sees the published image, and its writes vanish.
        let discard = spec(mnt.path(), cache.path(), DiskChanges::Discard);
        let d = prepare_overlay(&discard).unwrap();
        let o = d.overlay.clone().unwrap();
        assert!(d.temporary && o.exists());
        assert!(o.to_string_lossy().contains(".discard-"));
        assert!(qemu_io(&o, "read -P 0 0 4096"), "a discard start sees kept changes");
        assert!(qemu_io(&o, "write -P 0x5a 0 4096"));
        d.cleanup();
        assert!(!o.exists());
        let d = prepare_overlay(&discard).unwrap();
        let o = d.overlay.clone().unwrap();
        assert!(qemu_io(&o, "read -P 0 0 4096"), "a discard start sees the last discard's writes");
        d.cleanup();

        // Discarding did not touch what was kept.
        let kept = prepare_overlay(&keep).unwrap().overlay.unwrap();
        assert!(qemu_io(&kept, "read -P 0xa5 0 4096"), "a discard start wiped the kept changes");

        remove_kept_overlay(cache.path(), "bookworm", "2026-11-22").unwrap();
        assert!(kept_overlay(cache.path(), "bookworm", "2026-11-22").is_none());
        let fresh = prepare_overlay(&keep).unwrap().overlay.unwrap();
        assert!(qemu_io(&fresh, "read -P 0 0 4096"), "a removed overlay came back with its changes");
    }

    #[test]
    fn uefi_gets_its_own_copy_of_the_variables() {
        if !testkit::need(&["qemu-img", OVMF[0].code, OVMF[0].vars_template]) {
            return;
        }
        let mnt = fake_mount();
        let cache = tempfile::tempdir().unwrap();
        let mut keep = spec(mnt.path(), cache.path(), DiskChanges::Keep);
        keep.firmware = Firmware::Uefi;
        let disk = prepare_overlay(&keep).unwrap();
        let fw = disk.uefi.clone().unwrap();
        assert_eq!(fw.code, PathBuf::from(OVMF[0].code));
        assert_eq!(fw.vars, cache.path().join("overlays/bookworm/2026-11-22.vars.fd"));
        assert_eq!(std::fs::read(&fw.vars).unwrap(), std::fs::read(OVMF[0].vars_template).unwrap());
        remove_kept_overlay(cache.path(), "bookworm", "2026-11-22").unwrap();
        assert!(!fw.vars.exists() && !disk.overlay.unwrap().exists());
    }

    #[test]
    fn a_kept_file_that_is_not_qcow2_is_refused() {
        let mnt = fake_mount();
        let cache = tempfile::tempdir().unwrap();
        let keep = spec(mnt.path(), cache.path(), DiskChanges::Keep);
        let path = overlay_path(cache.path(), "bookworm", "2026-11-22", DiskChanges::Keep);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"junk").unwrap();
        let err = prepare_overlay(&keep).unwrap_err();
        assert!(matches!(err, VmError::NotQcow2 { .. }), "{err}");
    }

    /// What `qemu-img info` says of a file: its virtual size and backing file.
    fn info(path: &Path) -> (u64, Option<String>) {
        let out = Command::new("qemu-img").args(["info", "--output=json"]).arg(path).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["virtual-size"].as_u64().unwrap(), v["backing-filename"].as_str().map(str::to_string))
    }

    #[test]
    fn a_cd_gets_an_empty_scratch_disk_kept_or_discarded_like_an_overlay() {
        if !testkit::need(&["qemu-img", "qemu-io"]) {
            return;
        }
        let mnt = fake_mount();
        let cache = tempfile::tempdir().unwrap();
        let mut cd = spec(mnt.path(), cache.path(), DiskChanges::Discard);
        cd.media = Media::Cdrom;
        cd.settings.scratch_gib = 3;
        let d = prepare_overlay(&cd).unwrap();
        let scratch = d.overlay.clone().unwrap();
        assert!(d.temporary && scratch.to_string_lossy().contains(".discard-"));
        assert_eq!(info(&scratch), (3 << 30, None), "empty, of the chosen size, over nothing");
        assert_eq!(mode(&scratch), 0o600);
        d.cleanup();
        assert!(!scratch.exists());

        cd.settings.changes = DiskChanges::Keep;
        let k = prepare_overlay(&cd).unwrap();
        let kept = k.overlay.clone().unwrap();
        assert_eq!(kept, cache.path().join("overlays/bookworm/2026-11-22.qcow2"));
        assert!(qemu_io(&kept, "write -P 0x3c 1M 64k"), "the live system writes its files");
        k.cleanup();
        // Kept: the same disk, with what was written, at the next start, whatever size is asked now.
        cd.settings.scratch_gib = 5;
        let again = prepare_overlay(&cd).unwrap();
        assert_eq!(again.overlay.as_ref().unwrap(), &kept);
        assert!(qemu_io(&kept, "read -P 0x3c 1M 64k"), "the kept scratch disk lost its files");
        assert_eq!(info(&kept).0, 3 << 30);

        // No scratch disk this time: nothing attached, the kept one left alone.
        cd.settings.scratch_gib = 0;
        let none = prepare_overlay(&cd).unwrap();
        assert!(none.overlay.is_none());
        none.cleanup();
        assert!(kept.exists());

        // A disk's overlay under that name is not taken for a scratch disk.
        remove_kept_overlay(cache.path(), "bookworm", "2026-11-22").unwrap();
        prepare_overlay(&spec(mnt.path(), cache.path(), DiskChanges::Keep)).unwrap();
        cd.settings.scratch_gib = 3;
        let err = prepare_overlay(&cd).unwrap_err();
        assert!(err.to_string().contains("not a CD's scratch disk"), "{err}");
    }

    #[test]
    fn dead_discards_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join("2026-11-22.discard-999999999.qcow2");
        let alive = dir.path().join(format!("2026-11-22.discard-{}.qcow2", std::process::id()));
        std::fs::write(&dead, b"x").unwrap();
        std::fs::write(&alive, b"x").unwrap();
        sweep_dead_discards(dir.path());
        assert!(!dead.exists() && alive.exists());
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn overlays_are_private_to_their_user() {
        if !testkit::need(&["qemu-img"]) {
            return;
        }
        let mnt = fake_mount();
        let cache = tempfile::tempdir().unwrap();
        // Made before by something with a loose umask: tightened.
        std::fs::create_dir_all(cache.path().join("overlays/bookworm")).unwrap();
        std::fs::set_permissions(cache.path().join("overlays"), std::fs::Permissions::from_mode(0o777)).unwrap();
        for changes in [DiskChanges::Keep, DiskChanges::Discard] {
            let disk = prepare_overlay(&spec(mnt.path(), cache.path(), changes)).unwrap();
            assert_eq!(mode(disk.overlay.as_ref().unwrap()), 0o600, "{changes:?}");
            assert_eq!(mode(&cache.path().join("overlays")), 0o700);
            assert_eq!(mode(&cache.path().join("overlays/bookworm")), 0o700);
            disk.cleanup();
        }
        // A kept overlay left world-readable by an older version is made 0600 on use.
        let kept = overlay_path(cache.path(), "bookworm", "2026-11-22", DiskChanges::Keep);
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare_overlay(&spec(mnt.path(), cache.path(), DiskChanges::Keep)).unwrap();
        assert_eq!(mode(&kept), 0o600);
    }

    #[test]
    fn a_planted_kept_overlay_is_refused_and_left_alone() {
        if !testkit::need(&["qemu-img"]) {
            return;
        }
        let mnt = fake_mount();
        let cache = tempfile::tempdir().unwrap();
        let keep = spec(mnt.path(), cache.path(), DiskChanges::Keep);
        let path = overlay_path(cache.path(), "bookworm", "2026-11-22", DiskChanges::Keep);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();

        // A link to a file of the user's: not followed, not touched.
        let precious = cache.path().join("precious");
        std::fs::write(&precious, b"the user's file").unwrap();
        std::os::unix::fs::symlink(&precious, &path).unwrap();
        let err = prepare_overlay(&keep).unwrap_err();
        assert!(matches!(err, VmError::NotOurOverlay { .. }), "{err}");
        assert_eq!(std::fs::read(&precious).unwrap(), b"the user's file");
        std::fs::remove_file(&path).unwrap();

        // A FIFO: refused at once, never waited on.
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = prepare_overlay(&keep).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::remove_file(&path).unwrap();

        // A real qcow2, but over another image (someone else's disk): refused.
        let other = cache.path().join("other.img");
        std::fs::write(&other, vec![0u8; 4096]).unwrap();
        let made = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&other)
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let err = prepare_overlay(&keep).unwrap_err();
        assert!(err.to_string().contains("backing file"), "{err}");
        assert!(path.exists(), "a refused overlay is left for the person to look at");
        std::fs::remove_file(&path).unwrap();

        // Ours, over the same dated image on another mount point: used.
        prepare_overlay(&keep).unwrap();
        // The same file given to another user (root can, in a test): refused.
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let err = prepare_overlay(&keep).unwrap_err();
            assert!(err.to_string().contains("belongs to user 65534"), "{err}");
            std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        }
        let mut moved = keep.clone();
        let mnt2 = fake_mount();
        moved.image = crate::BaseImage::File(mnt2.path().join("bookworm/2026-11-22.img"));
        prepare_overlay(&moved).unwrap();
        // Another size: refused.
        moved.image_size = 8192;
        assert!(prepare_overlay(&moved).unwrap_err().to_string().contains("size"));
    }

    #[test]
    fn a_planted_overlay_directory_is_refused() {
        let mnt = fake_mount();
        let cache = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), cache.path().join("overlays")).unwrap();
        let err = prepare_overlay(&spec(mnt.path(), cache.path(), DiskChanges::Discard)).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0, "nothing made through the link");
    }
}
