//! A store on the publisher's disk: where `add`, `gc`, `sign` and `verify` read
//! and write. Files appear atomically (temp file, then rename), blocks are made
//! durable with one `syncfs` before the index that names them, and the index
//! before the catalog, so a crash never publishes a catalog that points at
//! missing bytes. One `add` or `gc` at a time: the store is locked.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use circular_format::catalog::Catalog;
use circular_format::layout::{block_path, index_path, CATALOG, CATALOG_SIG};
use circular_format::signing;
use circular_format::Sha1Name;
use ed25519_dalek::SigningKey;
use time::OffsetDateTime;

use crate::error::{BuildError, Result};

pub struct StoreDir {
    root: PathBuf,
    tmp_counter: AtomicU64,
    _lock: Option<nix::fcntl::Flock<fs::File>>,
}

impl StoreDir {
    /// Opens (creating) a store for writing, and takes its lock.
    pub fn open_for_writing(root: &Path) -> Result<StoreDir> {
        for sub in ["blocks", "indexes", "profiles", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| BuildError::io(&dir, e))?;
        }
        let lock_path = root.join("tmp/.lock");
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
        Ok(StoreDir { root: root.to_path_buf(), tmp_counter: AtomicU64::new(0), _lock: Some(lock) })
    }

    /// Opens a store for reading only (verify, list).
    pub fn open_for_reading(root: &Path) -> Result<StoreDir> {
        if !root.join(CATALOG).exists() {
            return Err(BuildError::Usage(format!(
                "{} holds no catalog.json: is it a store? (`image-build add` makes one)",
                root.display()
            )));
        }
        Ok(StoreDir { root: root.to_path_buf(), tmp_counter: AtomicU64::new(0), _lock: None })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn block_file(&self, id: &Sha1Name) -> PathBuf {
        self.root.join(block_path(id))
    }

    pub fn index_file(&self, id: &Sha1Name) -> PathBuf {
        self.root.join(index_path(id))
    }

    /// Size of a stored block file, if the store has it.
    pub fn block_size_on_disk(&self, id: &Sha1Name) -> Option<u64> {
        fs::metadata(self.block_file(id)).ok().map(|m| m.len())
    }

    /// Writes a file atomically, without fsync (see `sync`).
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.root.join("tmp").join(format!("{}.{n}", std::process::id()));
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::File::create(&tmp)?.write_all(bytes)?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            BuildError::io(path, e)
        })
    }

    /// Makes everything written so far durable (one syncfs for the filesystem).
    pub fn sync(&self) -> Result<()> {
        let dir = fs::File::open(&self.root).map_err(|e| BuildError::io(&self.root, e))?;
        nix::unistd::syncfs(dir.as_raw_fd())
            .map_err(|e| BuildError::io(&self.root, std::io::Error::from_raw_os_error(e as i32)))
    }

    /// The store's catalog, checked against the publisher's own key; a new empty
    /// catalog if the store has none yet.
    pub fn read_catalog(&self, key: &SigningKey) -> Result<Catalog> {
        let path = self.root.join(CATALOG);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let now = OffsetDateTime::now_utc();
                return Ok(Catalog::new(now, now));
            }
            Err(e) => return Err(BuildError::io(&path, e)),
        };
        let sig = fs::read(self.root.join(CATALOG_SIG)).ok();
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
    pub fn write_catalog(&self, catalog: &mut Catalog, key: &SigningKey, valid_days: u32) -> Result<()> {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(OffsetDateTime::now_utc());
        catalog.generated = now;
        catalog.expires = now + time::Duration::days(i64::from(valid_days));
        catalog.validate()?;
        let bytes = catalog.to_bytes();
        let sig = signing::sign(&bytes, key);
        self.sync()?;
        self.write(&self.root.join(CATALOG), &bytes)?;
        self.write(&self.root.join(CATALOG_SIG), sig.as_bytes())?;
        self.sync()
    }
}
