//! A store for tests, written with the publisher's own code.
// Dev-only fixture: a failure to set up is the test's failure, said with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use circular_format::catalog::{Catalog, Firmware};
use circular_format::index::Index;
use circular_format::layout::{block_path, index_path, CATALOG, CATALOG_SIG};
use circular_format::{signing, Sha1Name};
use ed25519_dalek::SigningKey;
use image_build::store_dir::StoreDir;

/// How long the catalogs a [`TestStore`] signs stay valid.
const VALID_DAYS: u32 = 7;

/// A store in `dir`, published with `image_build::add` (the code behind `image-build add`)
/// under a fresh key. `catalog` is the signed catalog as last published; a test may change
/// it and call [`TestStore::sign`] (to publish an expired one, say).
pub struct TestStore {
    pub dir: PathBuf,
    pub key: SigningKey,
    pub catalog: Catalog,
    /// "distro/date" and the index of each snapshot added, in order.
    pub indexes: Vec<(String, Index)>,
    /// The secret key file and the image files handed to the publisher.
    work: tempfile::TempDir,
}

impl TestStore {
    pub fn new(dir: &Path) -> TestStore {
        std::fs::create_dir_all(dir).unwrap();
        let work = tempfile::tempdir().unwrap();
        let secret = work.path().join("key");
        image_build::signing_key_pair(&secret, &work.path().join("key.pub")).unwrap();
        let key = signing::read_secret(&secret).unwrap();
        let now = time::OffsetDateTime::now_utc();
        TestStore {
            dir: dir.to_path_buf(),
            key,
            catalog: Catalog::new(now, now + time::Duration::days(VALID_DAYS.into())),
            indexes: Vec::new(),
            work,
        }
    }

    /// The secret key's file (PEM), for `image-build --key`.
    pub fn secret_file(&self) -> PathBuf {
        self.work.path().join("key")
    }

    /// The public key's file (PEM), for `--public`.
    pub fn public_file(&self) -> PathBuf {
        self.work.path().join("key.pub")
    }

    /// Publishes `image` as distro/date, as `image-build add` does, and returns its index.
    pub fn add(&mut self, distro: &str, date: &str, image: &[u8], block_size: u32) -> Index {
        let file = self.work.path().join(format!("{distro}-{date}.img"));
        std::fs::write(&file, image).unwrap();
        let opts = image_build::add::AddOptions {
            store: self.dir.clone(),
            distro: distro.into(),
            date: date.into(),
            title: None,
            block_size: block_size.into(),
            level: circular_format::block::DEFAULT_LEVEL,
            memory_mib: Some(1024),
            cpus: 2,
            firmware: Firmware::Bios,
            notes: String::new(),
            media: None,
            login: None,
            source_url: None,
            source_sha256: None,
            key: self.secret_file(),
            valid_days: VALID_DAYS,
            image: file.clone(),
            // Tests republish a date on purpose (a changed image under the same name).
            replace: true,
        };
        let report = image_build::add::add(&opts).unwrap_or_else(|e| panic!("image-build add {distro}/{date}: {e}"));
        std::fs::remove_file(file).unwrap();
        let id = report.index.expect("add names the index it wrote");
        let index = Index::parse(&std::fs::read(self.dir.join(index_path(&id))).unwrap(), "index").unwrap();
        self.reload();
        self.indexes.push((format!("{distro}/{date}"), index.clone()));
        index
    }

    /// Signs `catalog` as it is (expiry included) and writes it and its signature.
    pub fn sign(&self) {
        let bytes = self.catalog.to_bytes();
        std::fs::write(self.dir.join(CATALOG), &bytes).unwrap();
        std::fs::write(self.dir.join(CATALOG_SIG), signing::sign(&bytes, &self.key)).unwrap();
    }

    /// Publishes a boot profile for distro/date, as `image-build profile` does after its boot.
    pub fn add_profile(&mut self, distro: &str, date: &str, blocks: Vec<u32>) {
        let dir = StoreDir::open_for_writing(&self.dir).unwrap();
        image_build::profile::publish(&dir, &self.key, distro, date, blocks, VALID_DAYS)
            .unwrap_or_else(|e| panic!("publishing the profile of {distro}/{date}: {e}"));
        self.reload();
    }

    pub fn block_file(&self, id: &Sha1Name) -> PathBuf {
        self.dir.join(block_path(id))
    }

    pub fn index_file(&self, distro_date: &str) -> PathBuf {
        let (_, index) = self.indexes.iter().find(|(n, _)| n == distro_date).unwrap();
        self.dir.join(index_path(&Sha1Name::of(&index.to_bytes())))
    }

    fn reload(&mut self) {
        self.catalog = Catalog::parse(&std::fs::read(self.dir.join(CATALOG)).unwrap()).unwrap();
    }
}
