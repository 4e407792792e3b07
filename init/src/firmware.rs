//! Firmware from the stick's cache partition. `image-build usb` puts the firmware that the
//! GPU drivers ask for (Debian's non-free-firmware, xz-compressed, which the kernel's loader
//! reads: `CONFIG_FW_LOADER_COMPRESS_XZ`) under `/firmware` on the cache partition (ext4:
//! some names differ only in case, which the FAT partition could not hold); the initramfs
//! lists those drivers in [`HELD_MODULES`]. Coldplug holds them back; once the cache is
//! mounted, the kernel's firmware search path points into it and the drivers load. Without
//! it (a cache in RAM, a stick made without firmware) they load all the same: i915 runs
//! without its firmware, amdgpu, radeon and nouveau give up and leave the firmware's
//! framebuffer to the presenter.

use std::path::{Path, PathBuf};

/// The drivers held back until the firmware is reachable, one module name per line.
pub const HELD_MODULES: &str = "/etc/circular/firmware-modules";

/// The kernel's extra firmware search path, tried before /lib/firmware
/// (Documentation/driver-api/firmware/fw_search_path.rst).
const SEARCH_PATH: &str = "/sys/module/firmware_class/parameters/path";

/// The module names in [`HELD_MODULES`]'s text.
pub fn held_modules(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

/// What [`use_firmware_in`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct FirmwareDir {
    pub dir: PathBuf,
    /// Files under it, and their bytes.
    pub files: usize,
    pub bytes: u64,
}

/// Makes `<cache_dir>/firmware` the kernel's first firmware search path.
///
/// # Errors
/// A sentence for the log: no firmware there, or the search path could not be set.
pub fn use_firmware_in(cache_dir: &Path) -> Result<FirmwareDir, String> {
    let dir = cache_dir.join("firmware");
    let (files, bytes) = count(&dir);
    if files == 0 {
        return Err(format!("{} has no firmware (the stick was made without it)", dir.display()));
    }
    std::fs::write(SEARCH_PATH, dir.as_os_str().as_encoded_bytes()).map_err(|e| format!("{SEARCH_PATH}: {e}"))?;
    Ok(FirmwareDir { dir, files, bytes })
}

/// Regular files below `dir` and their bytes.
fn count(dir: &Path) -> (usize, u64) {
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let (n, b) = count(&entry.path());
            total = (total.0 + n, total.1 + b);
        } else if meta.is_file() {
            total = (total.0 + 1, total.1 + meta.len());
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_list_is_one_module_per_line() {
        assert_eq!(held_modules("amdgpu\n\n# comment\n i915 \nnouveau"), ["amdgpu", "i915", "nouveau"]);
    }

    #[test]
    fn firmware_files_are_counted_below_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("amdgpu")).unwrap();
        std::fs::write(dir.path().join("amdgpu/a.bin.xz"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("b.bin.xz"), [0u8; 5]).unwrap();
        assert_eq!(count(dir.path()), (2, 15));
        assert_eq!(count(&dir.path().join("none")), (0, 0));
    }
}
