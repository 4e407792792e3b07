#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Errors keep their kind across the seams: a read's errno and `status.json`'s
//! `last_error` on a live mount, and `blockfs mount --error-file` for a mount
//! that cannot start.

#[allow(unused_imports)] // the fixtures this file does not need
mod common;

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::process::Command;

use blockfs::status::Status;
use blockfs::{ErrorKind, ErrorReport};
use circular_format::index::Index;
use circular_format::layout::{index_path, CATALOG_SIG};
use circular_format::Sha1Name;
use common::{random_bytes, Client, TestStore};

const BS: u32 = 65536;

/// security-cases/memory-cache-length.sh as a test: a signed index that names
/// the short tail block at a full-size position too. Reading the tail first
/// must not make the full-size position panic a reader: it fails with EIO,
/// again and again, while the mount keeps serving everything else and says why
/// in `status.json`.
#[test]
fn a_tail_block_at_a_full_size_position_fails_that_read_and_the_mount_goes_on() {
    if !testkit::need(&["fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(BS as usize + 10, 7);
    let honest = store.add("other", "2026-11-22", &image, BS);
    let bad = Index { image_size: BS as u64 + 10, block_size: BS, blocks: vec![honest.blocks[1], honest.blocks[1]] };
    let bytes = bad.to_bytes();
    let id = Sha1Name::of(&bytes);
    std::fs::write(store.dir.join(index_path(&id)), &bytes).unwrap();
    let mut snapshot = store.catalog.distributions[0].snapshots[0].clone();
    snapshot.index = id;
    store.catalog.add_snapshot("deb", None, snapshot);
    store.sign();

    let client = Client::new();
    let mut config = client.config(vec![format!("file://{}", store.dir.display())], &store);
    config.readahead_blocks = 0;
    config.prefetch = false;
    let m = client.mount(config).unwrap();
    let bad_file = std::fs::File::open(client.image("deb/2026-11-22")).unwrap();
    let mut tail = [0u8; 10];
    bad_file.read_exact_at(&mut tail, u64::from(BS)).unwrap();
    assert_eq!(tail, image[BS as usize..]);
    for _ in 0..40 {
        // A fresh open each time: the page cache must not answer.
        let f = std::fs::File::open(client.image("deb/2026-11-22")).unwrap();
        let err = f.read_at(&mut [0u8; 4096], 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    }
    let mut all = Vec::new();
    std::fs::File::open(client.image("other/2026-11-22")).unwrap().read_to_end(&mut all).unwrap();
    assert_eq!(all, image, "the mount still serves the honest image");
    let status = Status::read(m.mountpoint()).unwrap();
    let last = status.last_error.expect("status.json says why the reads failed");
    assert!(matches!(last.kind, ErrorKind::CorruptBlock | ErrorKind::NoValidCopy), "{last:?}");
    assert!(last.message.contains("where the index needs 65536"), "{last:?}");
}

/// A block file far larger than any compressed block of its size can be is
/// refused as such, before it is read to the end: the limit is the block's
/// length plus zstd's worst-case overhead (a little over 1/128) and a frame
/// header, not the whole file a hostile mirror sends.
#[test]
fn an_oversized_block_file_is_refused_by_its_size() {
    if !testkit::need(&["fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(BS as usize, 8);
    let index = store.add("deb", "2026-11-22", &image, BS);
    let block = index.blocks[0].unwrap();
    // The bound spelled out (not format::block::max_file_len itself), so that a
    // change to that bound shows here: the block's length, 1/128 of it, 1 KiB.
    let limit = BS as usize + BS as usize / 128 + 1024;
    let path = store.dir.join(circular_format::layout::block_path(&block));
    std::fs::write(&path, random_bytes(limit + 1, 9)).unwrap();

    let client = Client::new();
    let mut config = client.config(vec![format!("file://{}", store.dir.display())], &store);
    config.readahead_blocks = 0;
    config.prefetch = false;
    config.store.deadline = std::time::Duration::from_secs(2);
    let m = client.mount(config).unwrap();
    let f = std::fs::File::open(client.image("deb/2026-11-22")).unwrap();
    let err = f.read_at(&mut [0u8; 4096], 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let last = Status::read(m.mountpoint()).unwrap().last_error.expect("status.json says why the read failed");
    assert!(last.message.contains(&format!("larger than the {limit} bytes allowed")), "{last:?}");
}

/// A mount that cannot start writes `{"kind", "message"}` to --error-file; no
/// FUSE is needed, the catalog is refused first.
#[test]
fn a_refused_catalog_is_written_to_the_error_file_with_its_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    store.add("deb", "2026-11-22", &random_bytes(1000, 1), BS);
    let public = tmp.path().join("test.pub");
    circular_format::signing::write_keypair(&store.key, &tmp.path().join("test.key"), &public).unwrap();
    let mountpoint = tmp.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let error_file = tmp.path().join("run/blockfs.error");
    let url = format!("file://{}", store.dir.display());
    let mount = |cache: &str| {
        Command::new(env!("CARGO_BIN_EXE_blockfs"))
            .args(["mount", "--deadline", "5", "--cache"])
            .arg(tmp.path().join(cache))
            .arg("--public")
            .arg(&public)
            .arg("--error-file")
            .arg(&error_file)
            .arg(&url)
            .arg(&mountpoint)
            .output()
            .unwrap()
    };

    // Unsigned.
    std::fs::remove_file(store.dir.join(CATALOG_SIG)).unwrap();
    let out = mount("c1");
    assert!(!out.status.success());
    let report = ErrorReport::read(&error_file).expect("an error file");
    assert_eq!(report.kind, ErrorKind::Unsigned, "{report:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&report.message), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&error_file).unwrap()).unwrap();
    assert_eq!(json["kind"], "unsigned");

    // Signed by another key.
    let other = circular_format::signing::generate();
    let bytes = store.catalog.to_bytes();
    std::fs::write(store.dir.join(CATALOG_SIG), circular_format::signing::sign(&bytes, &other)).unwrap();
    mount("c2");
    assert_eq!(ErrorReport::read(&error_file).unwrap().kind, ErrorKind::BadSignature);

    // A mount point that is a file.
    store.sign();
    let not_dir = tmp.path().join("file");
    std::fs::write(&not_dir, b"").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_blockfs"))
        .args(["mount", "--offline", "--cache"])
        .arg(tmp.path().join("c3"))
        .arg("--public")
        .arg(&public)
        .arg("--error-file")
        .arg(&error_file)
        .arg(&not_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(ErrorReport::read(&error_file).unwrap().kind, ErrorKind::Mountpoint);

    // Offline with an empty cache.
    let out = Command::new(env!("CARGO_BIN_EXE_blockfs"))
        .args(["mount", "--offline", "--cache"])
        .arg(tmp.path().join("c4"))
        .arg("--public")
        .arg(&public)
        .arg("--error-file")
        .arg(&error_file)
        .arg(&mountpoint)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(ErrorReport::read(&error_file).unwrap().kind, ErrorKind::NothingCached);
}

/// Mount point and URL swapped: the usage error says which comes first, rather
/// than "create the mount point first" about the URL.
#[test]
fn swapped_url_and_mount_point_say_which_comes_first() {
    let tmp = tempfile::tempdir().unwrap();
    let error_file = tmp.path().join("error.json");
    let out = Command::new(env!("CARGO_BIN_EXE_blockfs"))
        .args(["mount", "--public", "/nonexistent.pub", "--error-file"])
        .arg(&error_file)
        .arg(tmp.path())
        .arg("http://127.0.0.1:9/store/")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the URL comes first"), "{stderr}");
    assert!(!stderr.contains("create the mount point"), "{stderr}");
    assert_eq!(ErrorReport::read(&error_file).unwrap().kind, ErrorKind::Usage);
}

/// A report left by an earlier failed mount is removed once a mount starts: the
/// appliance shows the error file's problem screen while it exists.
#[test]
fn the_error_file_is_removed_once_a_mount_starts() {
    if !testkit::need(&["fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    store.add("deb", "2026-11-22", &random_bytes(1000, 1), BS);
    let public = tmp.path().join("test.pub");
    circular_format::signing::write_keypair(&store.key, &tmp.path().join("test.key"), &public).unwrap();
    let mountpoint = tmp.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let error_file = tmp.path().join("blockfs.error");
    std::fs::write(&error_file, "{\"kind\": \"no-network\", \"message\": \"from an earlier boot\"}\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_blockfs"))
        .args(["mount", "--cache"])
        .arg(tmp.path().join("cache"))
        .arg("--public")
        .arg(&public)
        .arg("--error-file")
        .arg(&error_file)
        .arg(format!("file://{}", store.dir.display()))
        .arg(&mountpoint)
        .spawn()
        .unwrap();
    let status = mountpoint.join("status.json");
    let start = std::time::Instant::now();
    // Until the mount is up and the old report gone, or 30 s.
    while (!status.exists() || error_file.exists()) && start.elapsed() < std::time::Duration::from_secs(30) {
        assert!(child.try_wait().unwrap().is_none(), "blockfs ended before it mounted");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (mounted, gone) = (status.exists(), !error_file.exists());
    Command::new("kill").arg(child.id().to_string()).status().unwrap();
    child.wait().unwrap();
    assert!(mounted, "the mount did not start in 30 s");
    assert!(gone, "the old error file is still there 30 s after the mount started");
}
