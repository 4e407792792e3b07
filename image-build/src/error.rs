//! Errors of `image-build`, each worded for the publisher who must act on it.

use std::path::{Path, PathBuf};

use crate::appliance::ApplianceError;
use crate::os::OsError;

pub type Result<T, E = BuildError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Format(#[from] circular_format::Error),
    /// The client's errors: only `image-build profile` mounts a store.
    #[error(transparent)]
    Store(#[from] blockfs::Error),
    /// The VM launcher could not prepare or start QEMU (`image-build profile`).
    #[error(transparent)]
    Vm(#[from] circular_vm::VmError),
    #[error("{0}")]
    Usage(String),
    /// `add --source-sha256`: the file is not the one the distribution published.
    #[error(
        "{image}: its SHA-256 is {actual}, not {expected} as given by --source-sha256; \
         the store was not touched. Download the image again, or check the checksum against the distribution's SHA256SUMS"
    )]
    SourceMismatch { image: PathBuf, expected: String, actual: String },
    /// `add`: a block of the image is half of a crafted SHA-1 collision pair
    /// (`sha1collisiondetection`'s check). Stored under its SHA-1 it could be swapped
    /// for its twin, so the image is refused and no catalog names it.
    #[error(
        "{image}: block {block} (from byte {offset}) carries a SHA-1 collision attack: it is half of a crafted pair \
         of blocks with one SHA-1, made to fool content addressing. Nothing was published; do not publish this image, \
         and find out where it came from"
    )]
    Collision { image: PathBuf, block: u64, offset: u64 },
    /// An outside program (qemu-img convert in `add`) failed or is missing.
    #[error(transparent)]
    Run(#[from] crate::tool::ToolError),
    /// The guest's QEMU stopped before the login prompt (`image-build profile`).
    #[error("{qemu} stopped before the login prompt ({status}): {reason}; serial log: {serial_log}")]
    BootStopped { qemu: String, status: String, reason: String, serial_log: PathBuf },
    /// Writing the RSS feed's XML (into memory) failed.
    #[error("writing the RSS feed: {0}")]
    Feed(#[source] std::io::Error),
    /// `image-build os`.
    #[error(transparent)]
    Os(#[from] OsError),
    /// `image-build initramfs` and `image-build usb`.
    #[error(transparent)]
    Appliance(#[from] ApplianceError),
    /// `image-build disk`.
    #[error(transparent)]
    Disk(#[from] crate::disk::DiskError),
}

impl BuildError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        BuildError::Io { path: path.to_path_buf(), source }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// A sub-command's error keeps its type and its cause through `?` (nothing is
    /// flattened into a string on the way to main).
    #[test]
    fn sub_errors_keep_their_type_and_source() {
        let e: BuildError = ApplianceError::io("/x/vmlinuz", std::io::Error::other("gone")).into();
        assert!(matches!(&e, BuildError::Appliance(ApplianceError::Io { .. })));
        assert_eq!(e.to_string(), "/x/vmlinuz: gone");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("gone"));

        let e: BuildError = OsError::Disk(crate::disk::DiskError::TooLarge).into();
        assert!(matches!(&e, BuildError::Os(OsError::Disk(crate::disk::DiskError::TooLarge))));
    }
}
