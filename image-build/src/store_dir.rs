//! A store on the publisher's disk: where `add`, `gc`, `sign` and `verify` read
//! and write. It is a public `LocalStore` (circular-format), as the client's
//! cache is a private one. Files appear atomically (temp file in `tmp/`, fsync,
//! rename), so a file under its name is always whole, even after a crash.
//! Blocks are made durable with one `syncfs` before the index that names them,
//! and the index before the catalog, so a crash never publishes a catalog that
//! points at missing bytes. One `add` or `gc` at a time: the store is locked.

use std::fs;
use std::path::{Path, PathBuf};

use circular_format::catalog::Catalog;
use circular_format::layout::{block_path, index_path, CATALOG, CATALOG_SIG, TMP_DIR};
use circular_format::local::{write_atomic, Durability, LocalStore, Visibility};
use circular_format::signing;
use circular_format::Sha1Name;
use ed25519_dalek::SigningKey;
use time::OffsetDateTime;

use crate::error::{BuildError, Result};

pub struct StoreDir {
    store: LocalStore,
    _lock: Option<nix::fcntl::Flock<fs::File>>,
}

impl StoreDir {
    /// Opens (creating) a store for writing, and takes its lock.
    pub fn open_for_writing(root: &Path) -> Result<StoreDir> {
        let store = LocalStore::create(root, Visibility::Public)?;
        let lock_path = store.path(TMP_DIR).join(".lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| BuildError::io(&lock_path, e))?;
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
            BuildError::Usage(format!(
                "{} is in use by another image-build (add or gc); wait for it to finish",
                root.display()
            ))
        })?;
        Ok(StoreDir { store, _lock: Some(lock) })
    }

    /// Opens a store for reading only (verify, list).
    pub fn open_for_reading(root: &Path) -> Result<StoreDir> {
        if !root.join(CATALOG).exists() {
            return Err(BuildError::Usage(format!(
                "{} holds no catalog.json: is it a store? (`image-build add` makes one)",
                root.display()
            )));
        }
        Ok(StoreDir { store: LocalStore::existing(root, Visibility::Public), _lock: None })
    }

    pub fn root(&self) -> &Path {
        self.store.root()
    }

    /// The local store underneath (its scan of the blocks, its paths).
    pub fn local(&self) -> &LocalStore {
        &self.store
    }

    pub fn block_file(&self, id: &Sha1Name) -> PathBuf {
        self.store.path(&block_path(id))
    }

    pub fn index_file(&self, id: &Sha1Name) -> PathBuf {
        self.store.path(&index_path(id))
    }

    /// Size of a stored block file, if the store has it.
    pub fn block_size_on_disk(&self, id: &Sha1Name) -> Option<u64> {
        self.store.file_len(&block_path(id))
    }

    /// Writes a file of the store (`path` is inside it) atomically. Its bytes
    /// are on disk before it has its name, so a crash never leaves a short
    /// block that a later `add` would take as present; its name becomes
    /// durable at the next `sync`.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        write_atomic(path, bytes, &self.store.path(TMP_DIR), Durability::Contents).map_err(|e| BuildError::io(path, e))
    }

    /// Makes everything written so far durable (one syncfs for the filesystem).
    pub fn sync(&self) -> Result<()> {
        Ok(self.store.sync_filesystem()?)
    }

    /// The store's catalog, checked against the publisher's own key; a new empty
    /// catalog if the store has none yet.
    pub fn read_catalog(&self, key: &SigningKey) -> Result<Catalog> {
        let path = self.store.path(CATALOG);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let now = OffsetDateTime::now_utc();
                return Ok(Catalog::new(now, now));
            }
            Err(e) => return Err(BuildError::io(&path, e)),
        };
        let sig = fs::read(self.store.path(CATALOG_SIG)).ok();
        // Expiry does not matter here: publishing re-signs with a new one.
        let far_past = OffsetDateTime::UNIX_EPOCH;
        signing::verify_catalog(&bytes, sig.as_deref(), &[key.verifying_key()], far_past).map_err(|e| {
            BuildError::Usage(format!(
                "{}: {e}. This key did not sign this store's catalog: use the store's own key",
                path.display()
            ))
        })
    }

    /// Stamps, signs and publishes the catalog: the sync makes everything it
    /// names durable first.
    ///
    /// # Errors
    /// When the catalog or its signature cannot be written. If the signature is
    /// the one that failed, the catalog that was there before is put back, so
    /// the store keeps a pair that verifies (clients, and the next `image-build`
    /// run, would refuse a new catalog under the old signature).
    pub fn write_catalog(&self, catalog: &mut Catalog, key: &SigningKey, valid_days: u32) -> Result<()> {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(OffsetDateTime::now_utc());
        catalog.generated = now;
        catalog.expires = now + time::Duration::days(i64::from(valid_days));
        catalog.validate()?;
        let bytes = catalog.to_bytes();
        let sig = signing::sign(&bytes, key);
        let catalog_path = self.store.path(CATALOG);
        let previous = fs::read(&catalog_path).ok();
        self.sync()?;
        self.write(&catalog_path, &bytes)?;
        if let Err(e) = self.write(&self.store.path(CATALOG_SIG), sig.as_bytes()) {
            match previous {
                Some(previous) => match self.write(&catalog_path, &previous) {
                    Ok(()) => eprintln!("the signature could not be written; the previous catalog was put back"),
                    Err(back) => eprintln!(
                        "the signature could not be written, nor the previous catalog put back ({back}): \
                         catalog.json and its signature no longer match, and clients keep their cached catalog \
                         until the pair is made whole again"
                    ),
                },
                None => {
                    let _ = fs::remove_file(&catalog_path);
                }
            }
            return Err(e);
        }
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_whole_and_one_writer_holds_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(StoreDir::open_for_reading(dir.path()).is_err(), "no catalog.json: not a store yet");
        let store = StoreDir::open_for_writing(dir.path()).expect("open");
        let id = Sha1Name::of(b"block");
        assert_eq!(store.block_size_on_disk(&id), None);
        store.write(&store.block_file(&id), b"zstd frame").expect("write");
        assert_eq!(store.block_size_on_disk(&id), Some(10));
        assert!(store.block_file(&id).starts_with(dir.path().join("blocks")));
        let tmp: Vec<_> =
            fs::read_dir(dir.path().join(TMP_DIR)).expect("tmp").flatten().map(|e| e.file_name()).collect();
        assert_eq!(tmp, [".lock"], "only the lock is left in tmp/");
        let second = StoreDir::open_for_writing(dir.path());
        assert!(matches!(second, Err(BuildError::Usage(m)) if m.contains("in use")));
    }
}
