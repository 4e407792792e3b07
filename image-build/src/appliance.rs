//! What the two appliance builders, `initramfs` (kernel + initramfs) and `usb` (the stick
//! image), share: one error type, with a variant for each step that can fail, and the
//! words for well-known tool failures.

use std::path::PathBuf;

use crate::disk::DiskError;
use crate::tool::{Symptom, ToolError};

/// Why an appliance build stopped. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApplianceError {
    /// A flag's value cannot be used.
    #[error("{0}")]
    Usage(String),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An external tool is missing or failed (apt-get, dpkg, depmod, grub-mkimage, mkfs.fat …).
    #[error(transparent)]
    Tool(#[from] ToolError),

    /// The stick's MBR or GRUB's boot sectors could not be made.
    #[error(transparent)]
    Disk(#[from] DiskError),

    #[error(
        "`apt-cache depends linux-image-amd64` names no kernel package: run apt-get update, or pass --kernel-package"
    )]
    NoKernelPackage,

    #[error(
        "`apt-get download {package}` left no .deb in {dir}: check apt's sources (apt-get update), or the package name"
    )]
    DebNotDownloaded { package: String, dir: PathBuf },

    #[error("{dir} holds no kernel version: the unpacked kernel package is incomplete; delete it and run again")]
    NoKernelVersion { dir: PathBuf },

    #[error("{path} is missing: the unpacked kernel package is incomplete; delete its directory under --cache and run again")]
    NoVmlinuz { path: PathBuf },

    #[error("{path}: unknown kernel module compression (expected .ko, .ko.xz or .ko.zst)")]
    ModuleCompression { path: PathBuf },

    /// A kernel module lacks the signature Debian appended (`~Module signature appended~`):
    /// under Secure Boot the kernel is in lockdown and would refuse to load it.
    #[error("{path} carries no module signature (it does not end with `~Module signature appended~`): under Secure Boot the kernel would refuse it; use Debian's signed kernel package unmodified (delete its directory under --cache and run again)")]
    UnsignedModule { path: PathBuf },

    #[error("{path} is missing: run cargo build --release (or point --bins at the binaries)")]
    MissingBinary { path: PathBuf },

    #[error("{path} is missing: run make deps")]
    MissingHostProgram { path: PathBuf },

    #[error("{program} needs a library that ldd cannot find ({line}): reinstall the package that provides it")]
    MissingLibrary { program: PathBuf, line: String },

    #[error("grub.cfg @{key}@ = {value:?}: GRUB would misread its quotes, backslashes, `$`, `;` or newlines; remove them from the flag that sets it")]
    GrubUnsafe { key: String, value: String },
}

impl ApplianceError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ApplianceError::Io { path: path.into(), source }
    }
}

/// What to do about a well-known tool failure while building the appliance.
pub fn hint(symptom: Symptom) -> &'static str {
    match symptom {
        Symptom::DiskFull => " (the disk is full: free space on the host)",
        Symptom::NoNetwork => " (Debian's mirror could not be reached: check the network and apt's sources)",
        Symptom::UnknownPackage => {
            " (apt does not know this package: run apt-get update, or check --kernel-package; firmware packages \
             are in Debian's non-free-firmware component: run `make deps`, which writes build/apt/apt.conf, \
             and give it to image-build as APT_CONFIG=build/apt/apt.conf)"
        }
    }
}
