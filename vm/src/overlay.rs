//! The guest's writable disk: a qcow2 overlay in the cache directory over the
//! snapshot's dated, read-only image on the blockfs mount.
//!
//! Layout: `<cache_dir>/overlays/<distribution>/<date>.qcow2` is the kept
//! overlay of a snapshot; `<date>.discard-<pid>.qcow2` is a throw-away one,
//! made fresh at each start and deleted when the VM ends. UEFI variables sit
//! beside them as `.vars.fd`. The name `overlays` cannot clash with the block
//! cache, whose directories are two hex digits.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::catalog::{check_date, Firmware};

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
    /// The qcow2 overlay the guest writes to.
    pub overlay: PathBuf,
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
            let _ = std::fs::remove_file(&self.overlay);
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
    std::fs::create_dir_all(&dir).map_err(|e| VmError::io(&dir, e))?;
    sweep_dead_discards(&dir);
    let overlay = overlay_path(&spec.cache_dir, &spec.distribution, &spec.date, spec.settings.changes);
    let temporary = spec.settings.changes == DiskChanges::Discard;
    let reuse = !temporary && overlay.exists();
    if reuse {
        check_qcow2(&overlay)?;
    } else {
        let _ = std::fs::remove_file(&overlay);
        create_qcow2(spec, &overlay)?;
    }
    let uefi = match spec.firmware {
        Firmware::Bios => None,
        Firmware::Uefi => {
            let ovmf = find_ovmf()?;
            let vars = vars_path(&overlay);
            if !(reuse && vars.exists()) {
                std::fs::copy(ovmf.vars_template, &vars).map_err(|e| VmError::io(&vars, e))?;
            }
            Some(FirmwareFiles { code: PathBuf::from(ovmf.code), vars })
        }
    };
    Ok(PreparedDisk { overlay, uefi, temporary })
}

fn create_qcow2(spec: &VmSpec, overlay: &Path) -> Result<(), VmError> {
    // -u: do not open the backing file. The size comes from the catalog, so
    // creating an overlay costs no read from the (maybe slow) network.
    let output = Command::new(&spec.qemu_img)
        .args(["create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b"])
        .arg(spec.image.to_os_string())
        .arg(overlay)
        .arg(spec.image_size.to_string())
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

fn check_qcow2(path: &Path) -> Result<(), VmError> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|e| VmError::io(path, e))?;
    match f.read_exact(&mut magic) {
        Ok(()) if &magic == b"QFI\xfb" => Ok(()),
        _ => Err(VmError::NotQcow2 { path: path.to_path_buf() }),
    }
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

    #[test]
    fn keep_reuses_and_discard_is_fresh() {
        if !testkit::need(&["qemu-img"]) {
            return;
        }
        let mnt = fake_mount();
        let cache = tempfile::tempdir().unwrap();
        let keep = spec(mnt.path(), cache.path(), DiskChanges::Keep);
        let disk = prepare_overlay(&keep).unwrap();
        assert!(!disk.temporary);
        assert_eq!(disk.overlay, cache.path().join("overlays/bookworm/2026-11-22.qcow2"));
        // Mark the overlay: a second keep start must hand back the same file.
        let marker = std::fs::metadata(&disk.overlay).unwrap().ino();
        let again = prepare_overlay(&keep).unwrap();
        assert_eq!(std::fs::metadata(&again.overlay).unwrap().ino(), marker);
        assert!(kept_overlay(cache.path(), "bookworm", "2026-11-22").is_some());

        let discard = spec(mnt.path(), cache.path(), DiskChanges::Discard);
        let d = prepare_overlay(&discard).unwrap();
        assert!(d.temporary && d.overlay.exists());
        assert!(d.overlay.to_string_lossy().contains(".discard-"));
        d.cleanup();
        assert!(!d.overlay.exists());

        remove_kept_overlay(cache.path(), "bookworm", "2026-11-22").unwrap();
        assert!(kept_overlay(cache.path(), "bookworm", "2026-11-22").is_none());
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
        assert!(!fw.vars.exists() && !disk.overlay.exists());
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
}
