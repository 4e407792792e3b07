//! Errors of `image-build`, each worded for the publisher who must act on it.

use std::path::{Path, PathBuf};

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
    Store(#[from] blockfs::Error),
    /// The VM launcher could not prepare or start QEMU (`image-build profile`).
    #[error(transparent)]
    Vm(#[from] circular_vm::VmError),
    #[error("{0}")]
    Usage(String),
    #[error("{command} failed: {detail}")]
    Tool { command: String, detail: String },
}

impl BuildError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        BuildError::Io { path: path.to_path_buf(), source }
    }
}
