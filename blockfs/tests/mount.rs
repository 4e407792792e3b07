//! Integration tests: a real FUSE mount fed by nginx on loopback, checked the
//! way a user would check it (cmp against the source image, status figures).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use blockfs::status::Status;
use blockfs::Error;
use circular_format::layout::{block_path, index_path, BLOCKS_DIR, CATALOG, CATALOG_SIG};
use circular_format::Error as FormatError;
use common::{random_bytes, Client, Nginx, TestStore};

const BS: u32 = 65536;

/// An image with random blocks, runs of zero blocks, and a repeated block.
fn sparse_image(len: usize, seed: u64) -> Vec<u8> {
    let mut image = random_bytes(len, seed);
    let bs = BS as usize;
    for zero_block in [1, 2, 3, 7, 10] {
        let start = zero_block * bs;
        if start + bs <= len {
            image[start..start + bs].fill(0);
        }
    }
    image.copy_within(0..bs, 5 * bs);
    image
}

fn read_all(path: &std::path::Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn images_read_back_byte_for_byte() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let random = random_bytes(3 << 20, 1);
    let sparse = sparse_image(2 << 20, 2);
    let odd = random_bytes(1_000_003, 3); // not a multiple of the block size
    let big_blocks = random_bytes(1_500_000, 4);
    store.add("random", "2026-11-22", &random, BS);
    let sparse_index = store.add("sparse", "2026-11-22", &sparse, BS);
    store.add("odd", "2026-11-22", &odd, BS);
    store.add("big", "2026-11-22", &big_blocks, 262_144);
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let mounted = client.mount(client.config(vec![nginx.url()], &store)).unwrap();

    assert_eq!(read_all(&client.image("random/2026-11-22")), random);
    assert_eq!(read_all(&client.image("odd/latest")), odd);
    assert_eq!(read_all(&client.image("big/2026-11-22")), big_blocks);
    let sparse_file = client.image("sparse/2026-11-22");
    assert_eq!(fs::metadata(&sparse_file).unwrap().len(), sparse.len() as u64);
    // docs/FORMAT.md: each `<date>.img` is read-only, exactly image_size bytes, mtime = its date.
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(&sparse_file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o222, 0, "a snapshot is writable: {:o}", meta.permissions().mode());
        let midnight = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_305_600); // 2026-11-22T00:00:00Z
        assert_eq!(meta.modified().unwrap(), midnight, "the mtime is not the snapshot's date");
        assert!(fs::OpenOptions::new().write(true).open(&sparse_file).is_err(), "opened for writing");
    }
    // Reads that straddle block edges, at odd offsets, past the end.
    let file = fs::File::open(&sparse_file).unwrap(); // still open at unmount: a lazy unmount
    for (offset, len) in [(0, 10), (65_530, 20), (131_071, 200_000), (2_097_000, 1000), (5_000_000, 10)] {
        let mut buf = vec![0xAA; len];
        let n = file.read_at(&mut buf, offset as u64).unwrap();
        let end = (offset + len).min(sparse.len()).max(offset.min(sparse.len()));
        assert_eq!(&buf[..n], &sparse[offset.min(sparse.len())..end], "at {offset}");
    }
    assert_eq!(read_all(&sparse_file), sparse);

    // Zero blocks are never fetched, and the repeated block only once.
    let status = Status::read(&client.mountpoint()).unwrap();
    let distinct_sparse = sparse_index.distinct_blocks().len();
    assert!(sparse_index.blocks.iter().filter(|b| b.is_none()).count() >= 5);
    let expected = [&random[..], &odd, &big_blocks]
        .iter()
        .zip([BS as usize, BS as usize, 262_144])
        .map(|(img, bs)| img.len().div_ceil(bs))
        .sum::<usize>()
        + distinct_sparse;
    assert_eq!(status.fetched_blocks as usize, expected, "{status:#?}");
    // Cache copies are written just after readers get their bytes.
    common::wait_for("the sparse image to be fully cached", || {
        let status = Status::read(&client.mountpoint()).unwrap();
        status.snapshot("sparse", "2026-11-22").unwrap().fully_cached()
    });
    assert_eq!(nginx.requests_for("/blocks/"), expected);

    // The mount is read-only.
    assert!(fs::OpenOptions::new().write(true).open(&sparse_file).is_err());
    drop(mounted);
    assert!(!client.image("random/2026-11-22").exists(), "unmounted on drop");
}

#[test]
fn snapshots_share_blocks_and_latest_is_the_newest() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let week1 = random_bytes(2 << 20, 10);
    let mut week2 = week1.clone();
    week2[100_000..100_010].copy_from_slice(b"new week!!"); // one block changes
    store.add("deb", "2026-11-15", &week1, BS);
    store.add("deb", "2026-11-22", &week2, BS);
    let blocks_on_server = walk_files(&store.dir.join(BLOCKS_DIR));
    assert_eq!(blocks_on_server, 33, "32 blocks + 1 changed block");

    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let _mounted = client.mount(client.config(vec![nginx.url()], &store)).unwrap();
    let latest = fs::read_link(client.image("deb/latest")).unwrap();
    assert_eq!(latest.to_str(), Some("2026-11-22.img"));
    assert_eq!(read_all(&client.image("deb/2026-11-15")), week1);
    let before = Status::read(&client.mountpoint()).unwrap().fetched_blocks;
    assert_eq!(read_all(&client.image("deb/latest")), week2);
    let after = Status::read(&client.mountpoint()).unwrap().fetched_blocks;
    assert_eq!(after - before, 1, "only the changed block is fetched for the second week");
}

fn walk_files(dir: &std::path::Path) -> usize {
    fs::read_dir(dir).unwrap().flatten().map(|e| if e.path().is_dir() { walk_files(&e.path()) } else { 1 }).sum()
}

#[test]
fn works_offline_from_the_cache() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = sparse_image(1 << 20, 20);
    store.add("deb", "2026-11-22", &image, BS);
    let mut nginx = Nginx::start(&store.dir);
    let client = Client::new();
    {
        let _m = client.mount(client.config(vec![nginx.url()], &store)).unwrap();
        assert_eq!(read_all(&client.image("deb/latest")), image);
    }
    nginx.stop();
    // The server is gone: the cached catalog and blocks carry the mount.
    {
        let m = client.mount(client.config(vec![nginx.url()], &store)).unwrap();
        let status = Status::read(m.mountpoint()).unwrap();
        assert!(status.catalog_from_cache);
        assert!(status.snapshot("deb", "2026-11-22").unwrap().fully_cached());
        assert_eq!(read_all(&client.image("deb/latest")), image);
        assert_eq!(Status::read(m.mountpoint()).unwrap().fetched_blocks, 0);
    }
    // Explicit offline mode, no URL at all.
    let mut config = client.config(Vec::new(), &store);
    config.store.offline = true;
    let _m = client.mount(config).unwrap();
    assert_eq!(read_all(&client.image("deb/2026-11-22")), image);
}

/// status.json is what the menu and `blockfs status` show: each figure must say
/// what the mount really did (a field left at its default would pass for "0").
#[test]
fn status_figures_say_what_the_mount_did() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(1 << 20, 30);
    let index = store.add("deb", "2026-11-22", &image, BS);
    let blocks = index.distinct_blocks().len() as u64;
    let stored = walk_sizes(&store.dir.join(BLOCKS_DIR));
    let catalog: serde_json::Value = serde_json::from_slice(&fs::read(store.dir.join(CATALOG)).unwrap()).unwrap();
    let mut nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let cap = 64 << 20;
    {
        let mut config = client.config(vec![nginx.url()], &store);
        config.store.cache_max = Some(cap);
        let m = client.mount(config).unwrap();
        assert_eq!(read_all(&client.image("deb/latest")), image);
        common::wait_for("the image to be cached", || {
            Status::read(m.mountpoint()).unwrap().snapshot("deb", "2026-11-22").unwrap().fully_cached()
        });
        let s = Status::read(m.mountpoint()).unwrap();
        assert!(s.online && !s.offline_mode && !s.catalog_from_cache, "{s:#?}");
        assert_eq!(Some(s.catalog_generated.as_str()), catalog["generated"].as_str());
        assert_eq!(Some(s.catalog_expires.as_str()), catalog["expires"].as_str());
        assert_eq!((s.fetched_blocks, s.cache_misses, s.cache_hits), (blocks, blocks, 0), "{s:#?}");
        assert_eq!(s.fetched_bytes, stored, "the block files as the server sent them");
        assert!(s.cache_bytes >= stored, "{} < {stored}", s.cache_bytes);
        assert_eq!(s.cache_max_bytes, cap);
    }
    nginx.stop();
    // A second mount, the server gone: every block comes from the cache.
    let m = client.mount(client.config(vec![nginx.url()], &store)).unwrap();
    assert_eq!(read_all(&client.image("deb/latest")), image);
    let s = Status::read(m.mountpoint()).unwrap();
    assert!(!s.online && !s.offline_mode && s.catalog_from_cache, "{s:#?}");
    assert_eq!((s.fetched_blocks, s.fetched_bytes, s.cache_hits), (0, 0, blocks), "{s:#?}");
    drop(m);
    let mut config = client.config(Vec::new(), &store);
    config.store.offline = true;
    let m = client.mount(config).unwrap();
    assert!(Status::read(m.mountpoint()).unwrap().offline_mode);
}

#[test]
fn a_second_mount_on_a_live_mount_is_refused_and_the_first_keeps_serving() {
    if !testkit::need(&["fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = sparse_image(1 << 20, 21);
    store.add("deb", "2026-11-22", &image, BS);
    let url = format!("file://{}/", store.dir.display());
    let client = Client::new();
    let first = client.mount(client.config(vec![url.clone()], &store)).unwrap();
    let err = client.mount(client.config(vec![url.clone()], &store)).err().unwrap().to_string();
    assert!(err.contains("already mounted") && err.contains("fusermount3 -u"), "{err}");
    assert_eq!(read_all(&client.image("deb/latest")), image);
    drop(first);
    // Unmounted, the directory takes a mount again.
    let _again = client.mount(client.config(vec![url], &store)).unwrap();
    assert_eq!(read_all(&client.image("deb/latest")), image);
}

#[test]
fn offline_with_nothing_cached_says_so() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    store.add("deb", "2026-11-22", &random_bytes(100_000, 5), BS);
    let client = Client::new();
    let mut config = client.config(Vec::new(), &store);
    config.store.offline = true;
    let err = client.mount(config).err().unwrap();
    assert!(matches!(err, Error::NotCached { .. }), "{err}");
    // A server that does not answer, and no cache: unreachable, after the deadline.
    let mut config = client.config(vec!["http://127.0.0.1:9/".into()], &store);
    config.store.deadline = Duration::from_millis(300);
    let err = client.mount(config).err().unwrap();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
}

#[test]
fn corrupt_block_on_a_server_is_fetched_from_the_next_one() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(512 << 10, 30);
    let index = store.add("deb", "2026-11-22", &image, BS);
    // A broken mirror: same store, one block's bytes replaced by another block's.
    let mirror = tmp.path().join("mirror");
    copy_dir(&store.dir, &mirror);
    let victim = index.blocks[3].unwrap();
    let other = index.blocks[4].unwrap();
    fs::copy(store.block_file(&other), mirror.join(block_path(&victim))).unwrap();
    let bad = Nginx::start(&mirror);
    let good = Nginx::start(&store.dir);

    let client = Client::new();
    let m = client.mount(client.config(vec![bad.url(), good.url()], &store)).unwrap();
    assert_eq!(read_all(&client.image("deb/latest")), image);
    let status = Status::read(m.mountpoint()).unwrap();
    assert_eq!(status.corrupt_blocks, 1);
    drop(m);

    // With only the broken mirror, the read fails (EIO) rather than return wrong bytes.
    let client = Client::new();
    let _m = client.mount(client.config(vec![bad.url()], &store)).unwrap();
    let mut file = fs::File::open(client.image("deb/latest")).unwrap();
    let mut buf = vec![0; BS as usize];
    file.seek(SeekFrom::Start(3 * u64::from(BS))).unwrap();
    let err = file.read_exact(&mut buf).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let good_part = file.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf[..good_part], &image[..good_part]);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn corrupt_block_in_the_cache_is_deleted_and_fetched_again() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(512 << 10, 40);
    let index = store.add("deb", "2026-11-22", &image, BS);
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    {
        let _m = client.mount(client.config(vec![nginx.url()], &store)).unwrap();
        assert_eq!(read_all(&client.image("deb/latest")), image);
    }
    let id = index.blocks[2].unwrap();
    let cached = client.cache().join(block_path(&id));
    let mut bytes = fs::read(&cached).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&cached, &bytes).unwrap();

    let m = client.mount(client.config(vec![nginx.url()], &store)).unwrap();
    assert_eq!(read_all(&client.image("deb/latest")), image);
    let status = Status::read(m.mountpoint()).unwrap();
    assert_eq!(status.corrupt_blocks, 1);
    assert_eq!(status.fetched_blocks, 1, "only the bad block comes from the network");
    drop(m); // the cache copy is written after the reader has its bytes; unmounting waits for it
    assert_eq!(fs::read(&cached).unwrap(), fs::read(store.block_file(&id)).unwrap());
}

#[test]
fn reads_wait_for_a_restarted_server_and_fail_after_the_deadline() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(4 << 20, 50);
    store.add("deb", "2026-11-22", &image, BS);
    let mut nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let mut config = client.config(vec![nginx.url()], &store);
    config.store.deadline = Duration::from_secs(30);
    config.readahead_blocks = 0;
    let m = client.mount(config).unwrap();
    let path = client.image("deb/latest");
    let mut file = fs::File::open(&path).unwrap();
    let mut head = vec![0; 1 << 20];
    file.read_exact(&mut head).unwrap();
    nginx.stop();
    // The reader blocks while the server is down, and finishes once it is back.
    let reader = std::thread::spawn(move || {
        let mut rest = Vec::new();
        file.read_to_end(&mut rest).map(|_| rest)
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!reader.is_finished(), "the read must wait for the network, not fail");
    nginx.restart();
    let rest = reader.join().unwrap().unwrap();
    assert_eq!([head, rest].concat(), image);
    drop(m);

    // A server that stays away: EIO once the deadline passes.
    let client = Client::new();
    let mut config = client.config(vec![nginx.url()], &store);
    config.store.deadline = Duration::from_secs(1);
    let _m = client.mount(config).unwrap();
    nginx.stop();
    let err = fs::read(client.image("deb/latest")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
}

#[test]
fn a_small_cache_cap_evicts_and_reads_stay_correct() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(4 << 20, 60);
    store.add("deb", "2026-11-22", &image, BS);
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let mut config = client.config(vec![nginx.url()], &store);
    config.store.cache_max = Some(1 << 20);
    config.memory_cache = 256 << 10;
    let m = client.mount(config).unwrap();
    assert_eq!(read_all(&client.image("deb/latest")), image);
    let status = Status::read(m.mountpoint()).unwrap();
    assert!(status.cache_bytes <= 1 << 20, "{}", status.cache_bytes);
    assert!(status.evicted_blocks >= 40, "{}", status.evicted_blocks);
    let on_disk: u64 = walk_sizes(&client.cache().join(BLOCKS_DIR));
    assert!(on_disk <= 1 << 20, "{on_disk}");
    assert!(!status.snapshot("deb", "2026-11-22").unwrap().fully_cached());
}

fn walk_sizes(dir: &std::path::Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| if e.path().is_dir() { walk_sizes(&e.path()) } else { e.metadata().unwrap().len() })
        .sum()
}

#[test]
fn a_full_cache_disk_never_fails_a_read() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(6 << 20, 70);
    store.add("deb", "2026-11-22", &image, BS);
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    // A 2 MiB filesystem for a cache told it may use 1 GiB: the disk fills first.
    fs::create_dir(client.cache()).unwrap();
    let tmpfs =
        nix::mount::mount(Some("tmpfs"), &client.cache(), Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=2m"));
    tmpfs.expect("mount a tmpfs (tests run as root)");
    let mut config = client.config(vec![nginx.url()], &store);
    config.store.cache_max = Some(1 << 30);
    let m = client.mount(config).unwrap();
    let result = fs::read(client.image("deb/latest"));
    drop(m);
    let _ = nix::mount::umount(&client.cache());
    assert_eq!(result.unwrap(), image);
}

#[test]
fn forged_unsigned_expired_and_wrong_key_catalogs_are_refused() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    store.add("deb", "2026-11-22", &random_bytes(100_000, 80), BS);
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let catalog_path = store.dir.join(CATALOG);
    let good = fs::read(&catalog_path).unwrap();

    // Tampered: one byte of the notes changes after signing.
    let tampered = String::from_utf8(good.clone()).unwrap().replace("\"notes\": \"\"", "\"notes\": \"x\"");
    fs::write(&catalog_path, tampered).unwrap();
    let err = client.mount(client.config(vec![nginx.url()], &store)).err().unwrap();
    assert!(matches!(err, Error::Format(FormatError::BadSignature)), "{err}");
    fs::write(&catalog_path, &good).unwrap();

    // Wrong key.
    let mut config = client.config(vec![nginx.url()], &store);
    config.store.public_keys = vec![circular_format::signing::generate().verifying_key()];
    let err = client.mount(config).err().unwrap();
    assert!(matches!(err, Error::Format(FormatError::BadSignature)), "{err}");

    // Unsigned.
    fs::rename(store.dir.join(CATALOG_SIG), tmp.path().join("sig")).unwrap();
    let err = client.mount(client.config(vec![nginx.url()], &store)).err().unwrap();
    assert!(matches!(err, Error::Format(FormatError::Unsigned { .. })), "{err}");
    assert!(err.to_string().contains("not signed"));

    // Expired (validly signed).
    store.catalog.expires = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    store.sign();
    let err = client.mount(client.config(vec![nginx.url()], &store)).err().unwrap();
    assert!(matches!(err, Error::Format(FormatError::Expired { .. })), "{err}");
    assert!(err.to_string().contains("re-sign"));
    assert!(!client.cache().join(CATALOG).exists(), "a refused catalog is never cached");
}

#[test]
fn a_tampered_index_is_refused() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(300_000, 90);
    store.add("deb", "2026-11-22", &image, BS);
    let index_file = store.index_file("deb/2026-11-22");
    let mut bytes = fs::read(&index_file).unwrap();
    // Truncated: the name no longer matches the bytes.
    bytes.truncate(bytes.len() - 50);
    fs::write(&index_file, &bytes).unwrap();
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let _m = client.mount(client.config(vec![nginx.url()], &store)).unwrap();
    let err = fs::File::open(client.image("deb/latest")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(!client.cache().join(index_path(&store.catalog.distributions[0].snapshots[0].index)).exists());
}

#[test]
fn a_down_mirror_is_skipped_for_the_catalog_and_every_block() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(8 * BS as usize + 123, 91);
    store.add("deb", "2026-11-22", &image, BS);
    let nginx = Nginx::start(&store.dir);
    // A mirror that is down: a port nothing listens on any more (connection refused).
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/", listener.local_addr().unwrap().port())
    };
    let client = Client::new();
    let _m = client.mount(client.config(vec![down, nginx.url()], &store)).unwrap();
    assert_eq!(read_all(&client.image("deb/2026-11-22")), image, "every block comes from the live mirror");
    assert!(nginx.requests_for("/blocks/") >= 8, "{:?}", nginx.requested_paths());
    let status = Status::read(&client.mountpoint()).unwrap();
    assert!(status.last_error.is_none(), "{:?}", status.last_error);
    assert_eq!(status.sources[1].reachable, Some(true), "{:?}", status.sources);
}

/// A server that accepts connections and never answers: its URL, and the thread that holds
/// every connection open until the flag is set.
fn stalled_server() -> (String, std::thread::JoinHandle<()>, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    listener.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stopping.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (url, thread, stop)
}

/// FORMAT.md: the catalog is "waited for at most 20 s, or 10 s when a verified catalog is
/// cached". A server that accepts and never answers (a stalled link, a captive portal that
/// swallows the request) must not hold the person at the screen for the long deadline.
#[test]
fn a_stalled_server_costs_ten_seconds_when_a_catalog_is_cached() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(4 * BS as usize, 93);
    store.add("deb", "2026-11-22", &image, BS);
    let client = Client::new();
    {
        let nginx = Nginx::start(&store.dir);
        let _m = client.mount(client.config(vec![nginx.url()], &store)).unwrap();
        assert_eq!(read_all(&client.image("deb/latest")), image);
    }
    let (url, thread, stop) = stalled_server();
    let mut config = client.config(vec![url], &store);
    config.store.deadline = Duration::from_secs(60);
    let started = std::time::Instant::now();
    let m = client.mount(config).unwrap();
    let waited = started.elapsed();
    // 10 s, with room for a loaded machine, and clearly short of the 20 s without a cache.
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(18),
        "waited {:.2} s for a stalled server with a catalog cached",
        waited.as_secs_f64()
    );
    let status = Status::read(m.mountpoint()).unwrap();
    assert!(status.catalog_from_cache, "the cached catalog carries the mount");
    assert_eq!(read_all(&client.image("deb/latest")), image);
    drop(m);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    thread.join().unwrap();
}
