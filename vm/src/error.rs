//! Why a VM could not be prepared or started. Each message says what to do.

use std::path::PathBuf;

/// Why a VM could not be prepared, started or waited for. How a VM that did
/// start ended is not an error: see [`crate::VmOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A file of the VM (overlay directory, UEFI variables, QEMU's process)
    /// could not be made, read or removed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory, or `qemu` for the process itself.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },

    /// The snapshot's image is not on the blockfs mount (or `latest.img` does
    /// not point at a dated image).
    #[error("{image} is not on the blockfs mount ({source}); is blockfs still running?")]
    NoImage {
        /// The path looked for.
        image: PathBuf,
        /// What the system said, or why the link's target is not a date.
        #[source]
        source: std::io::Error,
    },

    /// `qemu-system-x86_64` or `qemu-img` could not be run at all.
    #[error("{program} could not be run ({source}); install QEMU (Debian: qemu-system-x86 and qemu-utils)")]
    NoProgram {
        /// The program, as given in the [`crate::VmSpec`].
        program: String,
        /// What the system said (usually: not found).
        #[source]
        source: std::io::Error,
    },

    /// `qemu-img create` ran and refused.
    #[error("qemu-img could not create the overlay {overlay}: {reason}")]
    Overlay {
        /// The overlay it was asked to make.
        overlay: PathBuf,
        /// What qemu-img printed on stderr, trimmed.
        reason: String,
    },

    /// A kept overlay exists but is not a qcow2 file, so it is not reused.
    #[error("{path} is not a qcow2 overlay; delete it to start from the snapshot again")]
    NotQcow2 {
        /// The file that is not qcow2.
        path: PathBuf,
    },

    /// A kept overlay (or its directory) that this user did not make for this
    /// snapshot: a link, not a regular file or directory, another user's, or a
    /// qcow2 over another image. It is not used (it could be someone else's
    /// disk handed to the guest, or a link to a file of the user's).
    #[error("{path} is not this user's overlay of this snapshot ({reason}); it was left alone: delete it to start from the snapshot again")]
    NotOurOverlay {
        /// The file or directory refused.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A UEFI snapshot, and no build of [`crate::OVMF`] is installed.
    #[error("no UEFI firmware found (looked for {looked}); install Debian's ovmf package")]
    NoUefiFirmware {
        /// The firmware code files looked for, comma-separated.
        looked: String,
    },
}

impl VmError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VmError::Io { path: path.into(), source }
    }
}
