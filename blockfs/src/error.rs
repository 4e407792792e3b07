//! The one error type of the blockfs library. Every variant says what went wrong
//! and, where the user can do something about it, what to do.

use std::path::PathBuf;

use crate::hash::BlockId;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{what} is not valid JSON ({source}); the file is corrupt or truncated: fetch or publish it again")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("{what} is invalid: {reason}")]
    Invalid { what: String, reason: String },

    #[error("block {id} is corrupt: {reason}")]
    CorruptBlock { id: BlockId, reason: String },

    #[error("the catalog is not signed (no {what}); the publisher must sign it with `image-build` and a secret key")]
    Unsigned { what: String },

    #[error("the catalog's signature does not match any trusted public key; the key file is wrong for this store, or the catalog was changed after signing")]
    BadSignature,

    #[error("the catalog expired at {expires}; the publisher must re-sign it (any `image-build add` or `image-build sign` does), or check this machine's clock (now {now})")]
    Expired { expires: String, now: String },

    #[error("key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },

    #[error("bad source URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },

    #[error("{path} is not on any source ({tried}); the store is incomplete: run `image-build verify` on it")]
    NotFound { path: String, tried: String },

    #[error("could not fetch {path} before the {deadline_secs} s deadline; last error: {last}. Check the network cable and the server")]
    Unreachable { path: String, deadline_secs: u64, last: String },

    #[error("no source gave a valid copy of {what}: {detail}")]
    NoValidCopy { what: String, detail: String },

    #[error("offline and {what} is not in the cache")]
    NotCached { what: String },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid { what: what.into(), reason: reason.into() }
    }
}
