//! The one error type of the blockfs library. Every variant says what went wrong
//! and, where the user can do something about it, what to do. What the format
//! crate refuses (a forged, unsigned or expired catalog, a corrupt block, a bad
//! cache directory) arrives as [`Error::Format`], with the format crate's words.
//!
//! Every error has a stable [`ErrorKind`] ([`Error::kind`]) that programs decide
//! on, an errno for the FUSE reply ([`Error::errno`]), and an [`ErrorReport`]
//! (kind and message) for another process: the menu reads it from
//! `status.json` and from the file `blockfs mount --error-file` writes.

use std::path::{Path, PathBuf};

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

    /// Every source answered, and none has a catalog: the URL names no store.
    #[error(
        "there is no Circular store at the source URL ({tried}). Check the URL: it must name the directory \
         that holds catalog.json"
    )]
    NoStore {
        /// What each source said.
        tried: String,
    },

    /// No source answered before the deadline.
    #[error(
        "could not fetch {path} before the {deadline_secs} s deadline; last error: {last}{}",
        crate::source::advice_for_unreachable(.last)
    )]
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
    #[error("offline, and {what} is not in the cache: connect to the network once, so that it is fetched and kept")]
    NotCached {
        /// What is missing.
        what: String,
    },

    /// The mount point cannot be used: missing, not a directory, or the
    /// kernel refused the mount.
    #[error("{path}: {reason}")]
    Mountpoint {
        /// The mount point.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },

    /// A bug in blockfs: a panic caught in a fetch or read thread, or one part
    /// breaking its promise to another. The read concerned fails; the mount goes on.
    #[error("{what}: {detail}; this is a bug in blockfs, please report it with the log")]
    Internal {
        /// What was being done.
        what: String,
        /// What went wrong.
        detail: String,
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

/// The stable kind of an [`Error`]: what a program (the menu) decides on, never
/// the wording. Serialised as a short kebab-case string (`"bad-signature"`);
/// the names are an interface and only ever get added to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The catalog has no signature file.
    Unsigned,
    /// The catalog's signature matches none of the trusted keys.
    BadSignature,
    /// The catalog's `expires` time has passed.
    Expired,
    /// A key file cannot be read or parsed.
    Key,
    /// No source answered before the deadline.
    NoNetwork,
    /// Every source was reached, and every one failed its TLS check: a certificate
    /// from a CA this machine does not trust, expired, not yet valid, or for another
    /// name. The network works; the message says which and what to do.
    Tls,
    /// Offline (or no source), and the cache lacks what is needed.
    NothingCached,
    /// Every source answered, and none has the file.
    NotFound,
    /// Sources answered, but no copy passed verification.
    NoValidCopy,
    /// A block does not hold the bytes its name and its position promise
    /// (corrupt, or a block of another length than the index needs there).
    CorruptBlock,
    /// A store file breaks the format's rules, or does not parse.
    Invalid,
    /// A source URL cannot be used.
    BadUrl,
    /// The cache directory cannot be used (not private to this user).
    Cache,
    /// The mount point is missing, not a directory, or cannot be mounted on.
    Mountpoint,
    /// Reading or writing a local file failed.
    Io,
    /// A bug in blockfs (a panic caught, a broken promise between its parts).
    Internal,
    /// The command line is wrong (only `blockfs mount --error-file` writes it).
    Usage,
    /// A kind this program does not know (written by a newer blockfs, or a
    /// plain message from a process that stopped without saying why).
    #[serde(other)]
    Other,
}

impl ErrorKind {
    /// The kind's stable name, as written in `status.json` and the error file.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unsigned => "unsigned",
            ErrorKind::BadSignature => "bad-signature",
            ErrorKind::Expired => "expired",
            ErrorKind::Key => "key",
            ErrorKind::NoNetwork => "no-network",
            ErrorKind::Tls => "tls",
            ErrorKind::NothingCached => "nothing-cached",
            ErrorKind::NotFound => "not-found",
            ErrorKind::NoValidCopy => "no-valid-copy",
            ErrorKind::CorruptBlock => "corrupt-block",
            ErrorKind::Invalid => "invalid",
            ErrorKind::BadUrl => "bad-url",
            ErrorKind::Cache => "cache",
            ErrorKind::Mountpoint => "mountpoint",
            ErrorKind::Io => "io",
            ErrorKind::Internal => "internal",
            ErrorKind::Usage => "usage",
            ErrorKind::Other => "other",
        }
    }

    /// The kind of what the format crate refused.
    pub fn of_format(e: &circular_format::Error) -> ErrorKind {
        use circular_format::Error as F;
        match e {
            F::Io { .. } => ErrorKind::Io,
            F::Json { .. } | F::Invalid { .. } => ErrorKind::Invalid,
            F::CorruptBlock { .. } => ErrorKind::CorruptBlock,
            F::Unsigned { .. } => ErrorKind::Unsigned,
            F::BadSignature => ErrorKind::BadSignature,
            F::Expired { .. } => ErrorKind::Expired,
            F::Key { .. } => ErrorKind::Key,
            F::NotPrivate { .. } => ErrorKind::Cache,
            // A variant added to the format crate later: say so rather than guess.
            #[allow(unreachable_patterns)]
            _ => ErrorKind::Other,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The stable kind of this error (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Format(e) => ErrorKind::of_format(e),
            Error::Io { .. } => ErrorKind::Io,
            Error::Json { .. } | Error::Invalid { .. } => ErrorKind::Invalid,
            Error::BadUrl { .. } => ErrorKind::BadUrl,
            Error::NotFound { .. } | Error::NoStore { .. } => ErrorKind::NotFound,
            Error::Unreachable { last, .. } if crate::source::only_tls_refusals(last) => ErrorKind::Tls,
            Error::Unreachable { .. } => ErrorKind::NoNetwork,
            Error::NoValidCopy { .. } => ErrorKind::NoValidCopy,
            Error::NotCached { .. } => ErrorKind::NothingCached,
            Error::Mountpoint { .. } => ErrorKind::Mountpoint,
            Error::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// The errno a FUSE read or open answers with when this error stops it.
    ///
    /// | kind | errno | why |
    /// |---|---|---|
    /// | `no-network`, `nothing-cached` | `EIO` | the block is unreachable after the deadline, or offline and not cached: the data cannot be had *now*; QEMU and the guest know EIO as a disk error to retry or report |
    /// | `corrupt-block`, `no-valid-copy`, `not-found`, `invalid` | `EIO` | every copy failed verification, the store lacks it, or the index puts a block where it does not fit: wrong bytes are never returned |
    /// | `io` | the operating system's errno (`ENOSPC`, `EACCES`, …), else `EIO` | a local failure keeps its own name |
    /// | `internal` | `EIO` | a bug in blockfs (logged, and in `status.json`) |
    /// | everything else (trust, keys, URLs, cache, mount point) | `EIO` | these stop a mount before any read; should one reach a read, it is still an I/O error |
    ///
    /// No read ever answers with wrong or zeroed bytes instead of an error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::Format(circular_format::Error::Io { source, .. }) => source.raw_os_error().unwrap_or(libc::EIO),
            _ => libc::EIO,
        }
    }

    /// This error as the menu reads it: kind and message.
    pub fn report(&self) -> ErrorReport {
        ErrorReport { kind: self.kind(), message: self.to_string() }
    }
}

/// An error as written for another process: the stable kind beside the
/// message. `blockfs mount --error-file PATH` writes one when the mount cannot
/// start; `status.json` carries the last one a running mount met
/// (`last_error`). JSON: `{"kind": "bad-signature", "message": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorReport {
    /// What happened, for programs.
    pub kind: ErrorKind,
    /// What happened and what to do, for people.
    pub message: String,
}

impl ErrorReport {
    /// The report as one line of JSON and a newline.
    pub fn to_json(&self) -> Vec<u8> {
        // A string and a unit enum always serialise.
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses a report. A file that is not a report's JSON (a plain message
    /// left by an older writer) becomes kind [`ErrorKind::Other`] with its text.
    /// Blank text is no report.
    pub fn parse(text: &str) -> Option<ErrorReport> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        Some(serde_json::from_str(text).unwrap_or_else(|_| ErrorReport {
            kind: ErrorKind::Other,
            message: text.strip_prefix("blockfs: ").unwrap_or(text).to_string(),
        }))
    }

    /// Reads the report at `path`; `None` when there is none.
    pub fn read(path: &Path) -> Option<ErrorReport> {
        ErrorReport::parse(&std::fs::read_to_string(path).ok()?)
    }

    /// Writes the report to `path` atomically (a temp file beside it, renamed),
    /// so a reader sees the whole report or none.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be written.
    pub fn write(&self, path: &Path) -> Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        circular_format::local::write_atomic(path, &self.to_json(), &dir, circular_format::local::Durability::Named)
            .map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/FORMAT.md's errno table: a local failure keeps its own errno, a bug is EIO.
    #[test]
    fn a_local_failure_keeps_its_errno_and_a_bug_is_eio() {
        let os = |errno| std::io::Error::from_raw_os_error(errno);
        for errno in [libc::ENOSPC, libc::EACCES, libc::EROFS] {
            let e = Error::io("/cache/blocks/ab/x", os(errno));
            assert_eq!((e.errno(), e.kind()), (errno, ErrorKind::Io));
            let e = Error::Format(circular_format::Error::io("/cache/catalog.json", os(errno)));
            assert_eq!(e.errno(), errno);
        }
        let no_errno = Error::io("/x", std::io::Error::other("no errno"));
        assert_eq!(no_errno.errno(), libc::EIO);
        let bug = Error::Internal { what: "reading block 3".into(), detail: "a reader thread panicked".into() };
        assert_eq!((bug.errno(), bug.kind().as_str()), (libc::EIO, "internal"));
        assert!(bug.to_string().contains("this is a bug in blockfs"), "{bug}");
    }
}
