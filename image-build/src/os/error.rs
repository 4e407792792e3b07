//! Errors of `image-build os`. Each one says what went wrong and what the user can do.

use std::path::PathBuf;

use crate::disk::DiskError;
use crate::tool::{Symptom, ToolError};

#[derive(Debug, thiserror::Error)]
pub enum OsError {
    #[error("image-build os must run as root: it uses chroot, mounts and loop devices (try: sudo image-build os …)")]
    NotRoot,

    #[error("{0}")]
    Usage(String),

    #[error("{path} already exists; pass --force to replace it")]
    OutExists { path: PathBuf },

    #[error(
        "the Debian mirror {mirror} could not be reached for suite `{suite}`: check the network, \
         the --mirror URL and the suite name (full log: {log})\n{tail}"
    )]
    MirrorUnreachable { mirror: String, suite: String, log: PathBuf, tail: String },

    #[error("not enough free space in {dir}: about {need_mib} MiB needed, {have_mib} MiB free; free some space or write --out elsewhere")]
    DiskFull { dir: PathBuf, need_mib: u64, have_mib: u64 },

    #[error(
        "the root filesystem needs about {need_mib} MiB but --size leaves {have_mib} MiB for it; pass a larger --size"
    )]
    ImageTooSmall { need_mib: u64, have_mib: u64 },

    /// A tool is missing or failed (debootstrap, apt, mke2fs, grub-mkimage …).
    #[error(transparent)]
    Tool(#[from] ToolError),

    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },

    #[error("{context}: {source}")]
    Sys { context: String, source: nix::Error },

    #[error("{path} is not an image that `image-build os` can update: {reason}")]
    BadImage { path: PathBuf, reason: String },

    #[error("{path} is not an image that `image-build os` can update: {source}")]
    BadPartitionTable {
        path: PathBuf,
        #[source]
        source: DiskError,
    },

    #[error("ext4 filesystem in the image: {0}")]
    Ext4(String),

    /// The MBR or GRUB's boot sectors could not be made.
    #[error(transparent)]
    Disk(#[from] DiskError),
}

impl OsError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            // Reported as is: the caller's context names the file; the hint is in the text.
            return OsError::Io { context: format!("{} (the disk is full: free some space)", context.into()), source };
        }
        OsError::Io { context: context.into(), source }
    }

    pub fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        OsError::Sys { context: context.into(), source }
    }
}

pub type Result<T> = std::result::Result<T, OsError>;

/// What to do about a well-known tool failure, in `image-build os`'s own flags.
pub fn hint(symptom: Symptom) -> &'static str {
    match symptom {
        Symptom::DiskFull => " (the disk or the image is full: free space on the host, or pass a larger --size)",
        Symptom::NoNetwork => " (the Debian mirror could not be reached: check the network and --mirror)",
        Symptom::UnknownPackage => " (a package in --packages does not exist in this suite)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_flag_to_change() {
        assert!(hint(Symptom::DiskFull).contains("--size"));
        assert!(hint(Symptom::NoNetwork).contains("mirror"));
        assert!(hint(Symptom::UnknownPackage).contains("--packages"));
    }
}
