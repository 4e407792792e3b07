//! How this PC started the appliance: BIOS, UEFI, or UEFI with Secure Boot, and the
//! kernel's lockdown mode. PID 1 logs it and the menu shows it in its status line, so a
//! user or a support person can tell at a glance which boot path ran (docs/APPLIANCE.md,
//! "Secure Boot").
//!
//! Sources: `/sys/firmware/efi` exists only when the firmware started the kernel through
//! UEFI; the UEFI variable `SecureBoot` (EFI global variable GUID) is read from efivarfs,
//! whose files are 4 bytes of attributes then the value, here one byte, 1 = on; the
//! lockdown LSM lists its modes in securityfs with the active one in brackets
//! (`none [integrity] confidentiality`).

use std::fmt;
use std::path::Path;

use nix::mount::MsFlags;

/// Where the firmware tells the kernel about UEFI; absent on a BIOS boot.
pub const EFI_DIR: &str = "/sys/firmware/efi";
/// efivarfs's mount point.
pub const EFIVARS: &str = "/sys/firmware/efi/efivars";
/// The UEFI `SecureBoot` variable (global variable GUID 8be4df61-93ca-11d2-aa0d-00e098032b8c).
pub const SECURE_BOOT_VAR: &str = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// securityfs's mount point.
pub const SECURITYFS: &str = "/sys/kernel/security";
/// The lockdown LSM's modes, the active one in brackets.
pub const LOCKDOWN: &str = "/sys/kernel/security/lockdown";

/// The firmware path that started the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Legacy BIOS (or UEFI's CSM): GRUB's i386-pc core image in the MBR gap.
    Bios,
    /// UEFI. `secure_boot` is `None` when the `SecureBoot` variable could not be read
    /// (efivarfs missing), else whether the firmware enforced signatures.
    Uefi { secure_boot: Option<bool> },
}

/// The boot mode: firmware path, and the kernel's lockdown mode (`None`, `integrity`,
/// `confidentiality`; `None` here when securityfs or the lockdown LSM is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootMode {
    pub firmware: Firmware,
    pub lockdown: Option<String>,
}

impl fmt::Display for BootMode {
    /// "BIOS", "UEFI", "UEFI, Secure Boot unknown", or "UEFI Secure Boot", each followed by
    /// ", lockdown MODE" when lockdown is on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.firmware {
            Firmware::Bios => f.write_str("BIOS")?,
            Firmware::Uefi { secure_boot: Some(true) } => f.write_str("UEFI Secure Boot")?,
            Firmware::Uefi { secure_boot: Some(false) } => f.write_str("UEFI")?,
            Firmware::Uefi { secure_boot: None } => f.write_str("UEFI, Secure Boot unknown")?,
        }
        match self.lockdown.as_deref() {
            None | Some("none") => Ok(()),
            Some(mode) => write!(f, ", lockdown {mode}"),
        }
    }
}

/// The `SecureBoot` variable's value from its efivarfs file (4 attribute bytes, then the
/// data): `Some(true)` when the last byte is 1, `None` for a file too short to hold a value.
pub fn parse_secure_boot(var: &[u8]) -> Option<bool> {
    if var.len() < 5 {
        return None;
    }
    var.last().map(|b| *b == 1)
}

/// The active mode from the text of `/sys/kernel/security/lockdown`: the bracketed word
/// (`none [integrity] confidentiality` → `integrity`); `None` when no word is bracketed.
pub fn parse_lockdown(text: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
}

/// The mode from files under `root` (`/` on the appliance; a test passes a directory laid
/// out the same way). Reads only; [`mount_sources`] makes the files appear.
pub fn read_from(root: &Path) -> BootMode {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let firmware = if at(EFI_DIR).is_dir() {
        Firmware::Uefi { secure_boot: std::fs::read(at(SECURE_BOOT_VAR)).ok().and_then(|v| parse_secure_boot(&v)) }
    } else {
        Firmware::Bios
    };
    let lockdown = std::fs::read_to_string(at(LOCKDOWN)).ok().and_then(|t| parse_lockdown(&t));
    BootMode { firmware, lockdown }
}

/// The mode of this boot, from `/`.
pub fn detect() -> BootMode {
    read_from(Path::new("/"))
}

/// Mounts securityfs and, on a UEFI boot, efivarfs (read-only: nothing here writes UEFI
/// variables), where they are not mounted yet. efivarfs is a module in Debian's kernel:
/// load it first. Returns what could not be mounted, for the log; the boot goes on.
pub fn mount_sources() -> Vec<String> {
    let mut problems = Vec::new();
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mounted = |target: &str| mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(target));
    if !mounted(SECURITYFS) {
        if let Err(e) = crate::mounts::mount_fs("securityfs", SECURITYFS, flags, None) {
            problems.push(e.to_string());
        }
    }
    if Path::new(EFI_DIR).is_dir() && !mounted(EFIVARS) {
        if let Err(e) = crate::mounts::mount_fs("efivarfs", EFIVARS, flags | MsFlags::MS_RDONLY, None) {
            problems.push(e.to_string());
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_boot_is_the_byte_after_the_attributes() {
        // What OVMF's secboot firmware with Microsoft's keys gives: attributes 0x06 (boot
        // service + runtime access), value 1.
        assert_eq!(parse_secure_boot(&[6, 0, 0, 0, 1]), Some(true));
        assert_eq!(parse_secure_boot(&[6, 0, 0, 0, 0]), Some(false));
        assert_eq!(parse_secure_boot(&[6, 0, 0, 0]), None, "attributes only, no value");
        assert_eq!(parse_secure_boot(&[]), None);
    }

    #[test]
    fn lockdown_is_the_bracketed_mode() {
        assert_eq!(parse_lockdown("none [integrity] confidentiality\n").as_deref(), Some("integrity"));
        assert_eq!(parse_lockdown("[none] integrity confidentiality\n").as_deref(), Some("none"));
        assert_eq!(parse_lockdown("none integrity [confidentiality]").as_deref(), Some("confidentiality"));
        assert_eq!(parse_lockdown("none integrity confidentiality"), None);
        assert_eq!(parse_lockdown("[]"), None);
    }

    #[test]
    fn the_words_a_support_person_reads() {
        let mode = |firmware, lockdown: Option<&str>| BootMode { firmware, lockdown: lockdown.map(String::from) };
        assert_eq!(mode(Firmware::Bios, Some("none")).to_string(), "BIOS");
        assert_eq!(mode(Firmware::Uefi { secure_boot: Some(false) }, Some("none")).to_string(), "UEFI");
        assert_eq!(
            mode(Firmware::Uefi { secure_boot: Some(true) }, Some("integrity")).to_string(),
            "UEFI Secure Boot, lockdown integrity"
        );
        assert_eq!(mode(Firmware::Uefi { secure_boot: None }, None).to_string(), "UEFI, Secure Boot unknown");
    }

    #[test]
    fn read_from_a_tree_laid_out_like_sys() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sys/kernel/security")).unwrap();
        std::fs::write(root.join("sys/kernel/security/lockdown"), "none [integrity] confidentiality\n").unwrap();
        // No /sys/firmware/efi: a BIOS boot, whatever lockdown says.
        assert_eq!(read_from(root).firmware, Firmware::Bios);
        std::fs::create_dir_all(root.join("sys/firmware/efi/efivars")).unwrap();
        assert_eq!(read_from(root).firmware, Firmware::Uefi { secure_boot: None }, "efivarfs not mounted");
        std::fs::write(root.join(SECURE_BOOT_VAR.trim_start_matches('/')), [6, 0, 0, 0, 1]).unwrap();
        assert_eq!(read_from(root).to_string(), "UEFI Secure Boot, lockdown integrity");
    }
}
