//! Why a VM could not be prepared or started. Each message says what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{image} is not on the blockfs mount ({source}); is blockfs still running?")]
    NoImage {
        image: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{program} could not be run ({source}); install QEMU (Debian: qemu-system-x86 and qemu-utils)")]
    NoProgram {
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error("qemu-img could not create the overlay {overlay}: {reason}")]
    Overlay { overlay: PathBuf, reason: String },

    #[error("{path} is not a qcow2 overlay; delete it to start from the snapshot again")]
    NotQcow2 { path: PathBuf },

    #[error("no UEFI firmware found (looked for {looked}); install Debian's ovmf package")]
    NoUefiFirmware { looked: String },
}

impl VmError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VmError::Io { path: path.into(), source }
    }
}
