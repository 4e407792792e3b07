//! UEFI firmware: where Debian's OVMF is installed, and the two files one VM
//! boots with. This is the project's one list of OVMF files: the launcher looks
//! here, and the appliance's initramfs should carry what [`find_ovmf`] finds on
//! the build machine, so the appliance's launcher then finds the same build.
//!
//! BIOS snapshots need nothing from here: QEMU brings SeaBIOS itself.

use std::path::{Path, PathBuf};

use crate::error::VmError;

/// One OVMF build as Debian's `ovmf` package installs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ovmf {
    /// The firmware code (absolute path), mapped read-only into every VM.
    pub code: &'static str,
    /// The template of the UEFI variable store (absolute path). A VM never
    /// boots with it: each gets its own copy ([`FirmwareFiles::vars`]), since
    /// the guest writes its boot entries there.
    pub vars_template: &'static str,
}

impl Ovmf {
    /// True when both files exist on this machine.
    pub fn is_installed(&self) -> bool {
        Path::new(self.code).exists() && Path::new(self.vars_template).exists()
    }
}

/// Debian's OVMF builds, in the order the launcher tries them: the 4 MiB
/// build first (what bookworm's `ovmf` installs), then the older 2 MiB one.
/// Both are SMM-less builds, which boot on the `q35` machine without Secure Boot.
pub const OVMF: [Ovmf; 2] = [
    Ovmf { code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars_template: "/usr/share/OVMF/OVMF_VARS_4M.fd" },
    Ovmf { code: "/usr/share/OVMF/OVMF_CODE.fd", vars_template: "/usr/share/OVMF/OVMF_VARS.fd" },
];

/// The first build in [`OVMF`] whose code and variables template are both installed.
///
/// # Errors
/// [`VmError::NoUefiFirmware`], naming every file looked for, when none is.
pub fn find_ovmf() -> Result<Ovmf, VmError> {
    OVMF.iter()
        .copied()
        .find(Ovmf::is_installed)
        .ok_or_else(|| VmError::NoUefiFirmware { looked: OVMF.iter().map(|o| o.code).collect::<Vec<_>>().join(", ") })
}

/// The UEFI firmware of one VM: the read-only code, and this VM's own copy of
/// the variables (beside its overlay; see [`crate::prepare_overlay`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareFiles {
    /// The firmware code, from [`Ovmf::code`]; QEMU maps it read-only.
    pub code: PathBuf,
    /// This VM's variable store, a copy of [`Ovmf::vars_template`]; QEMU writes it.
    pub vars: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_4m_build_is_tried_first_and_a_miss_names_every_file() {
        assert!(OVMF[0].code.ends_with("OVMF_CODE_4M.fd") && OVMF[0].vars_template.ends_with("OVMF_VARS_4M.fd"));
        match find_ovmf() {
            Ok(found) => assert!(found.is_installed() && OVMF.contains(&found)),
            Err(e) => {
                let text = e.to_string();
                assert!(OVMF.iter().all(|o| text.contains(o.code)), "{text}");
                assert!(text.contains("ovmf"), "{text}");
            }
        }
    }
}
