//! Fixtures for the integration tests: real FUSE mounts of stores. The stores (written
//! with the publisher's own code), nginx on loopback and the rest come from testkit.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use blockfs::{MountConfig, Mounted};
#[allow(unused_imports)] // each test file uses a different part
pub use testkit::{random_bytes, wait_for, Nginx, TestStore};

/// A mount point and cache directory of one test.
pub struct Client {
    pub dir: tempfile::TempDir,
}

impl Client {
    #[allow(clippy::new_without_default)] // each call makes new directories
    pub fn new() -> Client {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        Client { dir }
    }

    pub fn mountpoint(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn config(&self, sources: Vec<String>, store: &TestStore) -> MountConfig {
        let mut config = MountConfig::new(sources, vec![store.key.verifying_key()], self.cache());
        config.store.deadline = Duration::from_secs(5);
        config
    }

    pub fn mount(&self, config: MountConfig) -> blockfs::Result<Mounted> {
        Mounted::start(config, &self.mountpoint())
    }

    pub fn image(&self, distro_date: &str) -> PathBuf {
        self.mountpoint().join(format!("{distro_date}.img"))
    }
}
