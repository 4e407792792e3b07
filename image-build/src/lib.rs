//! The publisher's code behind `image-build` (the binary in `main.rs` is only its command
//! line): cutting images into blocks and publishing them (`add`), signing the catalog,
//! checking (`verify`) and pruning (`gc`) stores, boot profiles, and the appliance builders.
//!
//! It is a library so that tests write their stores with this same code (testkit's
//! `TestStore`) instead of a second publisher; the API is the binary's, not a stable one.

pub mod add;
pub mod appliance;
pub mod disk;
pub mod error;
pub mod feed;
pub mod gc;
pub mod initramfs;
pub mod list;
pub mod os;
pub mod profile;
pub mod progress;
pub mod store_dir;
pub mod tool;
pub mod usb;
pub mod verify;

use std::path::Path;

/// `image-build keygen`: a new key pair, the secret key written mode 0600 and never over
/// an existing file.
pub fn signing_key_pair(secret: &Path, public: &Path) -> error::Result<()> {
    circular_format::signing::write_keypair(&circular_format::signing::generate(), secret, public)?;
    Ok(())
}
