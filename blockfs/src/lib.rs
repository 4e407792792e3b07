//! blockfs: Circular's virtual disk, a descendant of LBCAS.
//!
//! What it is: the store format (blocks, indexes, the signed catalog), the code
//! that fetches those files from HTTP(S) or `file://` sources with failover and
//! verifies every byte, the on-disk block cache, and a read-only FUSE filesystem
//! that shows each snapshot as one image file.
//!
//! What it is not: it does not write stores (that is `image-build`, which uses the
//! format types here), it never serves writes (guests write to a qcow2 overlay),
//! and it draws no user interface (the menu reads the status this crate reports).

pub mod block;
pub mod cache;
pub mod catalog;
pub mod error;
pub mod fs;
pub mod hash;
pub mod index;
pub mod loader;
mod lru;
pub mod mount;
mod pool;
pub mod prefetch;
pub mod profile;
pub mod signing;
pub mod source;
pub mod status;
pub mod store;
pub mod trace;
pub mod units;

pub use error::{Error, Result};
pub use hash::BlockId;
pub use mount::{MountConfig, Mounted};
pub use store::StoreConfig;
