//! The firmware the GPU drivers ask for, from Debian's non-free-firmware component. It does
//! not go into the initramfs: `image-build usb` puts it on the stick's cache partition
//! (`/firmware` there; ext4, since some names differ only in case), xz-compressed as the
//! kernel's loader reads it (`CONFIG_FW_LOADER_COMPRESS_XZ`, which wants CRC32 checks), and
//! PID 1 loads these drivers once that partition is mounted. The initramfs lists them in
//! [`HELD_MODULES`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::appliance::ApplianceError;
use crate::tool::Runner;

use super::{debs, files_and_bytes, io};

/// Debian's packages with the firmware of amdgpu and radeon (`firmware-amd-graphics`) and of
/// nouveau and i915 (`firmware-misc-nonfree`).
pub const PACKAGES: &[&str] = &["firmware-amd-graphics", "firmware-misc-nonfree"];

/// In the initramfs: the drivers PID 1 holds back until the firmware is there, one per line.
pub const HELD_MODULES: &str = "etc/circular/firmware-modules";

/// The firmware files a module asks for: its `.modinfo` strings `firmware=NAME`
/// (`MODULE_FIRMWARE`), read from the module's bytes.
pub fn asked_for(module: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0firmware=";
    let mut names = Vec::new();
    let mut rest = module;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        let value = &rest[at + KEY.len()..];
        let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
        if let Ok(name) = std::str::from_utf8(&value[..end]) {
            // A format string in .rodata (`firmware=%s`) is not a file name.
            if !name.is_empty() && !name.contains(['%', ' ']) && !name.starts_with('/') && !name.contains("..") {
                names.push(name.to_string());
            }
        }
        rest = &value[end..];
    }
    names
}

/// What [`collect`] wrote.
#[derive(Debug, Default)]
pub struct Collected {
    /// Files written (compressed), and their bytes.
    pub files: usize,
    pub bytes: u64,
    /// Names asked for that the packages do not have (old chips' firmware Debian dropped).
    pub missing: usize,
}

/// Copies the firmware named in `wanted` from [`PACKAGES`] (downloaded and unpacked under
/// `cache`) into `out` (emptied first), keeping the paths under `/lib/firmware`, and
/// compresses each file with xz (CRC32 checks, as the kernel wants).
///
/// # Errors
/// A package cannot be downloaded or unpacked, a file cannot be copied, xz fails.
pub fn collect(
    runner: &mut Runner,
    cache: &Path,
    wanted: &BTreeSet<String>,
    out: &Path,
) -> Result<Collected, ApplianceError> {
    if out.exists() {
        io(out, std::fs::remove_dir_all(out))?;
    }
    io(out, std::fs::create_dir_all(out))?;
    let mut roots = Vec::new();
    for package in PACKAGES {
        let deb = debs::download(runner, cache, package)?;
        let root = cache.join(package);
        debs::extract(runner, &deb, &root)?;
        roots.extend([root.join("lib/firmware"), root.join("usr/lib/firmware")]);
    }
    let mut done = Collected::default();
    let mut copied: Vec<PathBuf> = Vec::new();
    for name in wanted {
        let Some(src) = roots.iter().map(|r| r.join(name)).find(|p| p.is_file()) else {
            done.missing += 1;
            continue;
        };
        let dst = out.join(name);
        if let Some(parent) = dst.parent() {
            io(parent, std::fs::create_dir_all(parent))?;
        }
        // std::fs::copy follows the packages' symlinks (amdgpu has a few).
        io(&dst, std::fs::copy(&src, &dst))?;
        copied.push(dst);
    }
    for chunk in copied.chunks(256) {
        runner.run("xz", Command::new("xz").args(["--check=crc32", "-9", "-T0", "-q"]).args(chunk))?;
    }
    (done.files, done.bytes) = files_and_bytes(out)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_modules_firmware_comes_from_its_modinfo_strings() {
        let module = b"\x7fELF...\0license=GPL\0firmware=amdgpu/navi10_sos.bin\0firmware=radeon/R600_rlc.bin\0\
                       depends=drm\0rodata: firmware=%s\0\0firmware=../../etc/shadow\0";
        assert_eq!(asked_for(module), ["amdgpu/navi10_sos.bin", "radeon/R600_rlc.bin"]);
        assert!(asked_for(b"\0firmware=\0").is_empty());
    }
}
