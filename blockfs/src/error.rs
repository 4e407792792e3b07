//! The one error type of the blockfs library. Every variant says what went wrong
//! and, where the user can do something about it, what to do. What the format
//! crate refuses (a forged, unsigned or expired catalog, a corrupt block, a bad
//! cache directory) arrives as [`Error::Format`], with the format crate's words.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the client could not mount, fetch or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store file, key or cache directory was refused by the format's rules
    /// (see [`circular_format::Error`]: `Unsigned`, `BadSignature`, `Expired`, …).
    #[error(transparent)]
    Format(#[from] circular_format::Error),

    /// Reading or writing `path` failed (the mount point, the status file, a thread).
    #[error("{path}: {source}")]
    Io {
        /// The file, directory or resource concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file of the client's own (the status file) does not parse.
    #[error("{what} is not valid JSON ({source}); the file is corrupt or truncated: fetch or publish it again")]
    Json {
        /// The file.
        what: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },

    /// Something fetched or given is not what it must be (a file that does not
    /// hash to its name, a mount point that is not a directory).
    #[error("{what} is invalid: {reason}")]
    Invalid {
        /// The file or value concerned.
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A source URL cannot be used.
    #[error("bad source URL {url:?}: {reason}")]
    BadUrl {
        /// The URL (or the list of them).
        url: String,
        /// Why.
        reason: String,
    },

    /// Every source answered, and none has the file.
    #[error("{path} is not on any source ({tried}); the store is incomplete: run `image-build verify` on it")]
    NotFound {
        /// The store path asked for.
        path: String,
        /// What each source said.
        tried: String,
    },

    /// No source answered before the deadline.
    #[error("could not fetch {path} before the {deadline_secs} s deadline; last error: {last}. Check the network cable and the server")]
    Unreachable {
        /// The store path asked for.
        path: String,
        /// The deadline, in seconds.
        deadline_secs: u64,
        /// The last error seen.
        last: String,
    },

    /// Sources answered, but every copy failed verification.
    #[error("no source gave a valid copy of {what}: {detail}")]
    NoValidCopy {
        /// The store path asked for.
        what: String,
        /// What was wrong with each copy.
        detail: String,
    },

    /// Offline (or no source configured) and the cache lacks what is needed.
    #[error("offline and {what} is not in the cache")]
    NotCached {
        /// What is missing.
        what: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Something named `what` is not what it must be, for `reason`.
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid { what: what.into(), reason: reason.into() }
    }
}
