//! Fixtures for the integration tests: stores written with the library's own
//! format code, nginx on loopback, and real FUSE mounts.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use blockfs::{MountConfig, Mounted};
use circular_format::block;
use circular_format::catalog::{BootSettings, Catalog, Snapshot};
use circular_format::index::Index;
use circular_format::layout::{block_path, index_path, profile_path, CATALOG, CATALOG_SIG};
use circular_format::signing;
use circular_format::Sha1Name;
use ed25519_dalek::SigningKey;
use time::OffsetDateTime;

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub struct TestStore {
    pub dir: PathBuf,
    pub key: SigningKey,
    pub catalog: Catalog,
    pub indexes: Vec<(String, Index)>,
}

impl TestStore {
    pub fn new(dir: &Path) -> TestStore {
        std::fs::create_dir_all(dir).unwrap();
        let now = OffsetDateTime::now_utc();
        TestStore {
            dir: dir.to_path_buf(),
            key: signing::generate(),
            catalog: Catalog::new(now, now + time::Duration::days(7)),
            indexes: Vec::new(),
        }
    }

    /// Publishes `image` as distro/date and re-signs the catalog.
    pub fn add(&mut self, distro: &str, date: &str, image: &[u8], block_size: u32) -> Index {
        let mut blocks = Vec::new();
        let mut stored = 0;
        for chunk in image.chunks(block_size as usize) {
            if block::is_zero(chunk) {
                blocks.push(None);
                continue;
            }
            let enc = block::encode(chunk, 3).unwrap();
            let path = self.dir.join(block_path(&enc.id));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &enc.file).unwrap();
            stored += enc.file.len() as u64;
            blocks.push(Some(enc.id));
        }
        let index = Index { image_size: image.len() as u64, block_size, blocks };
        let bytes = index.to_bytes();
        let id = Sha1Name::of(&bytes);
        let path = self.dir.join(index_path(&id));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let snapshot = Snapshot {
            date: date.into(),
            index: id,
            image_size: image.len() as u64,
            stored_bytes: stored,
            profile: None,
            boot: BootSettings::default(),
            notes: String::new(),
        };
        self.catalog.add_snapshot(distro, None, snapshot);
        self.sign();
        self.indexes.push((format!("{distro}/{date}"), index.clone()));
        index
    }

    pub fn sign(&self) {
        let bytes = self.catalog.to_bytes();
        std::fs::write(self.dir.join(CATALOG), &bytes).unwrap();
        std::fs::write(self.dir.join(CATALOG_SIG), signing::sign(&bytes, &self.key)).unwrap();
    }

    /// Publishes a boot profile for distro/date and re-signs the catalog.
    pub fn add_profile(&mut self, distro: &str, date: &str, blocks: Vec<u32>) {
        let name = format!("{distro}/{date}");
        let (_, index) = self.indexes.iter().find(|(n, _)| *n == name).unwrap();
        let index_id = Sha1Name::of(&index.to_bytes());
        let profile = circular_format::profile::Profile::new(index_id, index.block_size, blocks);
        let bytes = profile.to_bytes();
        let id = Sha1Name::of(&bytes);
        let path = self.dir.join(profile_path(&id));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        let dist = self.catalog.distributions.iter_mut().find(|d| d.name == distro).unwrap();
        dist.snapshots.iter_mut().find(|s| s.date == date).unwrap().profile = Some(id);
        self.sign();
    }

    pub fn block_file(&self, id: &Sha1Name) -> PathBuf {
        self.dir.join(block_path(id))
    }

    pub fn index_file(&self, distro_date: &str) -> PathBuf {
        let (_, index) = self.indexes.iter().find(|(n, _)| n == distro_date).unwrap();
        self.dir.join(index_path(&Sha1Name::of(&index.to_bytes())))
    }
}

/// nginx serving a directory on a free loopback port; stopped on drop.
pub struct Nginx {
    child: Option<Child>,
    pub port: u16,
    run: tempfile::TempDir,
    root: PathBuf,
    /// Extra directives for the server block (for example a rate limit).
    extra: String,
}

impl Nginx {
    pub fn start(root: &Path) -> Nginx {
        Nginx::start_with(root, "")
    }

    /// nginx with extra directives in its server block.
    pub fn start_with(root: &Path, extra: &str) -> Nginx {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut nginx = Nginx {
            child: None,
            port,
            run: tempfile::tempdir().unwrap(),
            root: root.to_path_buf(),
            extra: extra.to_string(),
        };
        nginx.restart();
        nginx
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Starts nginx (again) on the same port.
    pub fn restart(&mut self) {
        let run = self.run.path();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; pid {run}/nginx.pid; error_log {run}/error.log warn;
events {{ worker_connections 256; }}
http {{ access_log {run}/access.log; client_body_temp_path {run}/b; proxy_temp_path {run}/p;
fastcgi_temp_path {run}/f; uwsgi_temp_path {run}/u; scgi_temp_path {run}/s; default_type application/octet-stream;
server {{ listen 127.0.0.1:{port}; root {root}; {extra} }} }}",
            run = run.display(),
            port = self.port,
            root = self.root.display(),
            extra = self.extra
        );
        std::fs::write(run.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(run.join("nginx.conf"))
            .arg("-p")
            .arg(run)
            .spawn()
            .expect("nginx is installed (make deps)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not start: {}", std::fs::read_to_string(run.join("error.log")).unwrap_or_default());
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Paths nginx was asked for, in order.
    pub fn requested_paths(&self) -> Vec<String> {
        std::fs::read_to_string(self.run.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split('"').nth(1)?.split(' ').nth(1).map(str::to_string))
            .collect()
    }

    /// Requests nginx answered for paths containing `needle`.
    pub fn requests_for(&self, needle: &str) -> usize {
        std::fs::read_to_string(self.run.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

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

/// Polls `cond` for up to 10 s; panics naming `what` if it never holds.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}
