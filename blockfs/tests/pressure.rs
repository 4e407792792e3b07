//! Disk pressure and crashes, on real filesystems: a cache on a small tmpfs that
//! something else filled, or that went read-only, must mean "cache less" (the
//! mount starts, reads are right, the offline copy stays); a blockfs killed
//! with SIGKILL must not stop the next mount on the same directory.
//!
//! These need root (to mount a tmpfs of a set size), nginx and fusermount3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use blockfs::status::Status;
use circular_format::layout::block_path;
use common::{random_bytes, wait_for, Client, Nginx, TestStore};

const BS: u32 = 65536;

/// Root can mount a tmpfs. Called after `testkit::need`, which already skips
/// (saying so) under `make check`; anywhere else a test that cannot run fails
/// and says why, as a missing program does: a skip the harness swallows
/// (`eprintln!` of a passing test is not shown) would count as a pass.
fn root() -> bool {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root to mount a tmpfs of a set size: run it as root (make unit), or under make check, which skips it"
    );
    true
}

/// A tmpfs of `size` on `dir`, unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(dir: &Path, size: &str) -> SmallFs {
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs on {}", dir.display());
        SmallFs(dir.to_path_buf())
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) {
        let mut f = fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![0x55u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }

    fn remount_read_only(&self) {
        let ok = Command::new("mount").args(["-o", "remount,ro"]).arg(&self.0).status().unwrap();
        assert!(ok.success());
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn block_files(cache: &Path) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(&e.path(), n);
            } else if t.is_file() {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&cache.join("blocks"), &mut n);
    n
}

/// Two snapshots of random (incompressible) blocks; the first is read whole
/// online so that it boots offline.
fn cached_first_snapshot(tmp: &Path) -> (TestStore, Nginx, Client, Vec<u8>, Vec<u8>, SmallFs) {
    let mut store = TestStore::new(&tmp.join("store"));
    let one = random_bytes(16 * BS as usize + 1000, 1);
    store.add("deb", "2026-11-15", &one, BS);
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let small = SmallFs::mount(&client.cache(), "8m");
    {
        // The default cap leaves a reserve of 512 MiB free: too much for 8 MiB.
        let mut config = client.config(vec![nginx.url()], &store);
        config.store.cache_max = Some(64 << 20);
        let _m = client.mount(config).unwrap();
        assert_eq!(fs::read(client.image("deb/2026-11-15")).unwrap(), one);
    }
    let two = random_bytes(16 * BS as usize, 2);
    store.add("deb", "2026-11-22", &two, BS);
    (store, nginx, client, one, two, small)
}

#[test]
fn a_full_cache_disk_keeps_the_offline_copy_and_the_mount_still_starts() {
    if !testkit::need(&["nginx", "fusermount3", "mount", "umount"]) || !root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, nginx, client, one, two, small) = cached_first_snapshot(tmp.path());
    let cached = block_files(&client.cache());
    assert_eq!(cached, 17);
    small.fill();

    // Offline on the full disk: nothing evicted, the image reads right.
    let mut offline = client.config(vec![], &store);
    offline.store.offline = true;
    {
        let m = client.mount(offline.clone()).unwrap();
        assert_eq!(fs::read(client.image("deb/2026-11-15")).unwrap(), one);
        assert_eq!(m.loader().store().cache().evicted_blocks(), 0);
    }
    assert_eq!(block_files(&client.cache()), cached, "the offline copy is whole");

    // Online on the full disk: the new catalog and signature cannot be kept,
    // and that is not an error; the new snapshot reads right from the network,
    // and is cached less: the offline copy is never evicted for it. (The new
    // snapshot's own blocks may evict one another in what little room the
    // filler left: `ENOSPC` evicts what may go.)
    {
        let m = client.mount(client.config(vec![nginx.url()], &store)).unwrap();
        assert_eq!(fs::read(client.image("deb/2026-11-22")).unwrap(), two);
        assert_eq!(fs::read(client.image("deb/2026-11-15")).unwrap(), one);
        let status = Status::read(m.mountpoint()).unwrap();
        let first = status.snapshot("deb", "2026-11-15").unwrap();
        assert!(first.fully_cached(), "the offline copy lost blocks: {first:?}");
    }
    assert!(block_files(&client.cache()) >= cached, "the offline copy is whole");

    // The catalog and its signature on the disk are still a matching pair:
    // the next offline mount verifies them and reads the first snapshot.
    let _m = client.mount(offline).unwrap();
    assert_eq!(fs::read(client.image("deb/2026-11-15")).unwrap(), one);
}

#[test]
fn a_cap_smaller_than_the_cache_never_evicts_the_snapshot_that_boots_offline() {
    if !testkit::need(&["nginx", "fusermount3", "mount", "umount"]) || !root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, nginx, client, one, two, _small) = cached_first_snapshot(tmp.path());
    let cached = block_files(&client.cache());
    // A cap of a quarter of what is cached: offline, nothing is evicted at all.
    let cap = (cached as u64 * u64::from(BS)) / 4;
    let mut offline = client.config(vec![], &store);
    offline.store.offline = true;
    offline.store.cache_max = Some(cap);
    {
        let m = client.mount(offline).unwrap();
        assert_eq!(fs::read(client.image("deb/2026-11-15")).unwrap(), one);
        assert_eq!(m.loader().store().cache().evicted_blocks(), 0);
    }
    // Online with that cap: the other snapshot reads right, and is not cached
    // at the cost of the one that boots offline.
    let mut online = client.config(vec![nginx.url()], &store);
    online.store.cache_max = Some(cap);
    let m = client.mount(online).unwrap();
    assert_eq!(fs::read(client.image("deb/2026-11-22")).unwrap(), two);
    assert_eq!(m.loader().store().cache().evicted_blocks(), 0);
    let index = &store.indexes[0].1;
    for id in index.blocks.iter().flatten() {
        assert!(client.cache().join(block_path(id)).exists(), "block {id} of the offline copy is kept");
    }
}

#[test]
fn a_read_only_cache_disk_means_cache_less_not_fail() {
    if !testkit::need(&["nginx", "fusermount3", "mount", "umount"]) || !root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, nginx, client, one, two, small) = cached_first_snapshot(tmp.path());
    small.remount_read_only();
    let mut offline = client.config(vec![], &store);
    offline.store.offline = true;
    {
        let _m = client.mount(offline).unwrap();
        assert_eq!(fs::read(client.image("deb/2026-11-15")).unwrap(), one);
    }
    let _m = client.mount(client.config(vec![nginx.url()], &store)).unwrap();
    assert_eq!(fs::read(client.image("deb/2026-11-22")).unwrap(), two);
    assert_eq!(fs::read(client.image("deb/2026-11-15")).unwrap(), one);
}

#[test]
fn a_fifo_planted_as_a_block_does_not_hang_a_read() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(8 * BS as usize, 3);
    let index = store.add("deb", "2026-11-22", &image, BS);
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    // A set cap: the default one follows the host disk's free space, and on a
    // disk less than a tenth free it caches nothing, so there is no block to plant.
    let mut config = client.config(vec![nginx.url()], &store);
    config.store.cache_max = Some(64 << 20);
    {
        let _m = client.mount(config.clone()).unwrap();
        assert_eq!(fs::read(client.image("deb/2026-11-22")).unwrap(), image);
    }
    let planted = client.cache().join(block_path(&index.blocks[3].unwrap()));
    fs::remove_file(&planted).unwrap();
    nix::unistd::mkfifo(&planted, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let _m = client.mount(config).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let path = client.image("deb/2026-11-22");
    std::thread::spawn(move || tx.send(fs::read(path).unwrap()).unwrap());
    let read = rx.recv_timeout(Duration::from_secs(20)).expect("the read did not hang on the FIFO");
    assert_eq!(read, image);
}

/// `blockfs mount` as its own process, so that it can be killed.
fn spawn_blockfs(store: &TestStore, url: &str, cache: &Path, mnt: &Path, log: &Path) -> std::process::Child {
    let key = store.dir.parent().unwrap().join("pub.pem");
    if !key.exists() {
        let secret = store.dir.parent().unwrap().join("sec.pem");
        circular_format::signing::write_keypair(&store.key, &secret, &key).unwrap();
    }
    Command::new(env!("CARGO_BIN_EXE_blockfs"))
        .arg("mount")
        .arg("--public")
        .arg(&key)
        .arg("--cache")
        .arg(cache)
        .arg(url)
        .arg(mnt)
        .stdin(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn mounted(mnt: &Path) -> bool {
    let want = mnt.to_string_lossy().replace(' ', "\\040");
    fs::read_to_string("/proc/self/mounts").unwrap().lines().any(|l| l.split(' ').nth(1) == Some(want.as_str()))
}

#[test]
fn a_killed_blockfs_leaves_no_mount_that_stops_the_next_one_even_with_a_space_in_the_path() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(8 * BS as usize + 77, 4);
    store.add("deb", "2026-11-22", &image, BS);
    let nginx = Nginx::start(&store.dir);
    let mnt = tmp.path().join("my mount");
    fs::create_dir(&mnt).unwrap();
    let cache = tmp.path().join("cache");
    let mut first = spawn_blockfs(&store, &nginx.url(), &cache, &mnt, &tmp.path().join("first.log"));
    let img = mnt.join("deb/2026-11-22.img");
    wait_for("the first mount", || img.exists());
    // A reader holds the image open, as QEMU would, when blockfs is killed.
    let held = fs::File::open(&img).unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(fs::metadata(&mnt).is_ok(), "the dead mount still looks alive to stat (the kernel's cache)");
    assert!(blockfs::mount::is_stale_mount(&mnt), "but it is detected as dead");
    drop(held);

    let log = tmp.path().join("second.log");
    let mut second = spawn_blockfs(&store, &nginx.url(), &cache, &mnt, &log);
    wait_for("the second mount over the dead one", || !blockfs::mount::is_stale_mount(&mnt) && img.exists());
    assert_eq!(fs::read(&img).unwrap(), image);
    let said = fs::read_to_string(&log).unwrap();
    assert!(said.contains("left its mount here; clearing it"), "{said}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(second.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    second.wait().unwrap();
    assert!(!mounted(&mnt), "nothing is left mounted");
}

#[test]
fn a_full_disk_evicts_old_blocks_and_tries_the_write_again() {
    if !testkit::need(&["mount", "umount"]) || !root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    fs::create_dir(&dir).unwrap();
    // 8 MiB holds about 31 blocks: more than 16 blocks' worth (4 MiB), less than the 16 MiB
    // batch, so a batch of 16 blocks only (the floor forgotten) would leave some behind.
    let _small = SmallFs::mount(&dir, "8m");
    // A cap far above the disk: only ENOSPC stops a write here.
    let cache = blockfs::cache::Cache::open(&dir, Some(1 << 30)).unwrap();
    // As a mount does once it knows the offline copies (here none): until then nothing
    // may be evicted, since any block may be an offline copy's.
    cache.keep(std::collections::HashSet::new());
    let block = |n: u64| random_bytes(256 * 1024, 1000 + n);
    let mut ids = Vec::new();
    for n in 0..80 {
        let bytes = block(n);
        let id = circular_format::hash::Sha1Name::of(&bytes);
        // 20 MiB into 8 MiB: every write that meets a full disk must evict
        // older blocks and succeed on its second try.
        let (evicted_before, held) = (cache.evicted_blocks(), ids.iter().filter(|id| cache.has_block(id)).count());
        assert_eq!(cache.store_block(&id, &bytes), blockfs::cache::Stored::Written, "block {n}");
        // One batch is 16 blocks' worth, at least 16 MiB (docs/FORMAT.md), more than this
        // disk holds: a full disk is emptied of what may go at once, not a block at a time.
        let evicted = cache.evicted_blocks() - evicted_before;
        assert!(evicted == 0 || evicted == held as u64, "block {n}: {evicted} of {held} evicted in one batch");
        ids.push(id);
    }
    assert!(cache.evicted_blocks() > 0, "the disk filled, so old blocks went");
    assert!(!cache.has_block(&ids[0]), "the oldest went first");
    assert_eq!(cache.read_block(&ids[79]).unwrap(), block(79), "the newest is on the disk");
    assert!(dir.join(block_path(&ids[79])).exists());
}

/// Without `--cache-max` the cap leaves a tenth of the cache's filesystem free, and at
/// least 512 MiB (docs/FORMAT.md, "Size cap"), for the guests' overlays: on a 64 MiB
/// disk nothing may be cached at all, and on an 8 GiB one (a tmpfs: nothing is
/// allocated) a tenth stays free.
#[test]
fn the_default_cap_leaves_a_tenth_or_512_mib_free() {
    if !testkit::need(&["mount", "umount"]) || !root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (size, total) in [("64m", 64u64 << 20), ("8g", 8u64 << 30)] {
        let dir = tmp.path().join(size);
        let _fs = SmallFs::mount(&dir, size);
        let cache = blockfs::cache::Cache::open(&dir.join("cache"), None).unwrap();
        let stat = nix::sys::statvfs::statvfs(&dir).unwrap();
        let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
        let reserve = (total / 10).max(512 << 20);
        assert_eq!(cache.max_bytes(), free.saturating_sub(reserve), "{size}: free {free}");
    }
}
