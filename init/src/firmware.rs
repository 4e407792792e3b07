//! Firmware from the stick's FAT partition. `image-build usb` puts the firmware that the
//! GPU drivers ask for (Debian's non-free-firmware, xz-compressed, which the kernel's loader
//! reads: `CONFIG_FW_LOADER_COMPRESS_XZ`) under `/firmware` on the ESP, partition 1 of the
//! disk that holds the cache; the initramfs lists those drivers in [`HELD_MODULES`].
//! Coldplug holds them back; once the cache is found, the ESP is mounted read-only, the
//! kernel's firmware search path points into it, and the drivers load. Without the ESP (a
//! cache in RAM, a stick rewritten by hand) they load all the same: i915 runs without its
//! firmware, amdgpu, radeon and nouveau give up and leave the firmware's framebuffer.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

/// The drivers held back until the firmware is reachable, one module name per line.
pub const HELD_MODULES: &str = "/etc/circular/firmware-modules";

/// Where the ESP is mounted (read-only).
pub const ESP_MOUNTPOINT: &str = "/run/esp";

/// The kernel's extra firmware search path, tried before /lib/firmware
/// (Documentation/driver-api/firmware/fw_search_path.rst).
const SEARCH_PATH: &str = "/sys/module/firmware_class/parameters/path";

/// The module names in [`HELD_MODULES`]'s text.
pub fn held_modules(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

/// Partition 1 of the disk that holds `partition` (`/dev/sda2` → `/dev/sda1`,
/// `/dev/nvme0n1p2` → `/dev/nvme0n1p1`), found in sysfs: `sys_block` is `/sys/class/block`.
pub fn first_partition_beside(partition: &Path, sys_block: &Path) -> Option<PathBuf> {
    let name = partition.file_name()?.to_str()?;
    // /sys/class/block/sda2 links to …/block/sda/sda2: its parent directory is the disk.
    let disk = std::fs::canonicalize(sys_block.join(name)).ok()?.parent()?.to_path_buf();
    for entry in std::fs::read_dir(&disk).ok()?.flatten() {
        let number = std::fs::read_to_string(entry.path().join("partition")).unwrap_or_default();
        if number.trim() == "1" {
            return Some(PathBuf::from("/dev").join(entry.file_name()));
        }
    }
    None
}

/// What [`use_firmware_beside`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct FirmwareDir {
    pub dir: PathBuf,
    /// Files under it, and their bytes.
    pub files: usize,
    pub bytes: u64,
}

/// Mounts partition 1 beside the cache `partition` read-only at [`ESP_MOUNTPOINT`] and
/// makes its `/firmware` the kernel's first firmware search path.
///
/// # Errors
/// A sentence for the log: no partition 1, the mount failed, no `/firmware` on it, the
/// search path could not be set.
pub fn use_firmware_beside(partition: &Path) -> Result<FirmwareDir, String> {
    let esp = first_partition_beside(partition, Path::new("/sys/class/block"))
        .ok_or_else(|| format!("no partition 1 beside {}", partition.display()))?;
    let _ = std::fs::create_dir_all(ESP_MOUNTPOINT);
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount(Some(&esp), ESP_MOUNTPOINT, Some("vfat"), flags, None::<&str>)
        .map_err(|e| format!("mount {} (vfat, read-only) on {ESP_MOUNTPOINT}: {e}", esp.display()))?;
    let dir = Path::new(ESP_MOUNTPOINT).join("firmware");
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
    fn partition_one_is_found_beside_the_cache_in_sysfs() {
        // A sysfs tree as the kernel lays it out: class links into the disk's directory.
        let sys = tempfile::tempdir().unwrap();
        let disk = sys.path().join("devices/pci0/usb1/block/sdb");
        for (part, number) in [("sdb1", "1"), ("sdb2", "2")] {
            std::fs::create_dir_all(disk.join(part)).unwrap();
            std::fs::write(disk.join(part).join("partition"), format!("{number}\n")).unwrap();
        }
        std::fs::create_dir_all(disk.join("queue")).unwrap();
        let class = sys.path().join("class/block");
        std::fs::create_dir_all(&class).unwrap();
        std::os::unix::fs::symlink(disk.join("sdb2"), class.join("sdb2")).unwrap();
        assert_eq!(first_partition_beside(Path::new("/dev/sdb2"), &class), Some(PathBuf::from("/dev/sdb1")));
        assert_eq!(first_partition_beside(Path::new("/dev/sdc2"), &class), None);
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
