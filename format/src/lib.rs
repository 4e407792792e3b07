//! circular-format: what Circular's publisher (`image-build`) and client
//! (`blockfs`) agree on. One crate, so the two cannot drift apart.
//!
//! What it is:
//! - names: [`Sha1Name`], the SHA-1 that names blocks, indexes and profiles ([`hash`]);
//! - the files of a store: [`block`] (one zstd frame, decoded with a bound and
//!   checked against its name), [`index`] (the LBCAS mapping table),
//!   [`catalog`] (what can be booted), [`profile`] (the boot's read order);
//! - the trust rules: [`signing`] (ed25519 keys, the detached signature, the
//!   checks a client makes before it trusts a catalog, and rollback);
//! - where files go: [`layout`] spells every store path once, and [`local`] is a
//!   store in a local directory (atomic writes, fan-out, a scan of the blocks),
//!   used by both the publisher's store and the client's cache;
//! - [`units`]: the one parser and formatter of byte sizes.
//!
//! What it is not: no FUSE, no HTTP, no threads, and no cache policy (size cap,
//! eviction, what to keep offline): those are `blockfs`'s. Nor does it publish:
//! cutting images into blocks, the order in which a store's files are written
//! and synced, and the publisher's lock are `image-build`'s. The format itself
//! is described in `docs/FORMAT.md`.
//!
//! ```
//! use circular_format::{index::Index, layout, Sha1Name};
//!
//! let a = Sha1Name::of(b"first block");
//! // An image of 2.5 blocks of 4 KiB: the middle block is all zeros (not stored).
//! let bytes = format!(
//!     r#"{{"format":"circular-index/1","image_size":10240,"block_size":4096,"hash":"sha1","compression":"zstd","blocks":["{a}",null,"{a}"]}}"#
//! );
//! let index = Index::parse(bytes.as_bytes(), "example index")?;
//! assert_eq!(index.block_len(0), 4096);
//! assert_eq!(index.block_len(2), 2048); // the last block is short
//! assert_eq!(index.distinct_blocks(), vec![a]);
//! assert_eq!(layout::block_path(&a), format!("blocks/{}/{a}", &a.to_hex()[..2]));
//! # Ok::<(), circular_format::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod block;
pub mod catalog;
pub mod error;
pub mod hash;
pub mod index;
pub mod layout;
pub mod local;
pub mod profile;
pub mod signing;
pub mod units;

pub use error::{Error, Result};
pub use hash::Sha1Name;
