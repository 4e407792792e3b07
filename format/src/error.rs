//! The one error type of the format crate. Every variant says what went wrong
//! and, where someone can act on it, what to do. The wording is part of the
//! interface: the menu recognises a refused catalog in the one-line message of a
//! `blockfs` process that exited (see `menu/src/problem.rs`).

use std::path::PathBuf;

use crate::hash::Sha1Name;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a store file, a key or a local store directory was refused or could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (index, catalog, profile) does not parse.
    #[error("{what} is not valid JSON ({source}); the file is corrupt or truncated: fetch or publish it again")]
    Json {
        /// The file, as people know it (`catalog.json`, `indexes/<sha1>.json`, …).
        what: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },

    /// A file parses but breaks a rule of the format, or an argument is out of range.
    #[error("{what} is invalid: {reason}")]
    Invalid {
        /// The file or value concerned.
        what: String,
        /// The rule it breaks.
        reason: String,
    },

    /// Bytes to publish carry a SHA-1 collision attack (half of a crafted pair with
    /// one SHA-1): named by their hash, they could be swapped for their twin.
    #[error(transparent)]
    Collision(#[from] crate::hash::CollisionDetected),

    /// A block file is not a zstd frame of the bytes its name promises.
    #[error("block {id} is corrupt: {reason}")]
    CorruptBlock {
        /// The block's name.
        id: Sha1Name,
        /// What is wrong with it.
        reason: String,
    },

    /// The catalog has no signature file.
    #[error("the catalog is not signed (no {what}); the publisher must sign it with `image-build` and a secret key")]
    Unsigned {
        /// The file that is missing (`catalog.json.sig`).
        what: String,
    },

    /// The catalog's signature verifies against none of the trusted keys.
    #[error("the catalog's signature does not match any trusted public key; the key file is wrong for this store, or the catalog was changed after signing")]
    BadSignature,

    /// The catalog's `expires` time has passed.
    #[error("the catalog expired at {expires}; the publisher must re-sign it (any `image-build add` or `image-build sign` does), or check this machine's clock (now {now})")]
    Expired {
        /// The catalog's `expires`, RFC 3339.
        expires: String,
        /// The time it was checked against, RFC 3339.
        now: String,
    },

    /// A key file cannot be read, written or parsed.
    #[error("key file {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },

    /// A private local store (the client's cache) is in a directory that is
    /// not safely its own user's.
    #[error("{path} cannot be used as a private cache: {reason}; use a directory of your own (--cache)")]
    NotPrivate {
        /// The directory concerned.
        path: PathBuf,
        /// Why it is not private (a link, another owner, not a directory).
        reason: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// A rule of the format broken by `what`, for `reason`.
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid { what: what.into(), reason: reason.into() }
    }
}
