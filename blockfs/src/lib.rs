//! blockfs: Circular's virtual disk, a descendant of LBCAS.
//!
//! What it is: the code that fetches a store's files (the format is the
//! `circular-format` crate's) from HTTP(S) or `file://` sources with failover and
//! verifies every byte, the on-disk block cache, and a read-only FUSE filesystem
//! that shows each snapshot as one image file.
//!
//! What it is not: it does not define the store format or write stores (that is
//! `circular-format`, and `image-build` publishes with it), it never serves
//! writes (guests write to a qcow2 overlay), and it draws no user interface (the
//! menu reads the status this crate reports).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod error;
pub mod fill;
pub mod freshness;
pub mod fs;
pub mod loader;
mod lru;
pub mod mount;
mod pool;
pub mod prefetch;
pub mod reader;
pub mod source;
pub mod status;
pub mod store;
pub mod trace;

/// The store format, for users of blockfs that read catalogs through a mount
/// (the menu) and need no second dependency.
pub use circular_format as format;
pub use circular_format::{catalog, signing};
pub use error::{Error, ErrorKind, ErrorReport, Result};
pub use mount::{MountConfig, Mounted};
pub use source::Network;
pub use store::StoreConfig;
