//! The publisher's and the client's command lines, as a person uses them (was
//! e2e/test-store-cli.sh): `image-build keygen/add/verify/gc/sign/list` and `blockfs
//! mount/status` over nginx on loopback, with a real FUSE mount. Checks what the
//! commands print and what the mount holds.
// Test helpers outside #[test] functions may panic too: that is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;

use testkit::{cargo_bin, random_bytes, wait_for, Nginx, TestCommand};

const MIB: usize = 1 << 20;

fn image_build(dir: &Path) -> TestCommand {
    let mut cmd = TestCommand::new(env!("CARGO_BIN_EXE_image-build"));
    cmd.current_dir(dir);
    cmd
}

fn blockfs(dir: &Path) -> TestCommand {
    let mut cmd = TestCommand::new(cargo_bin("blockfs"));
    cmd.current_dir(dir);
    cmd
}

#[track_caller]
fn expect(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

fn block_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![store.join("blocks")];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A `blockfs mount` in the background: SIGTERMed and unmounted on drop, whatever happens.
struct Mount {
    child: Option<Child>,
    mnt: PathBuf,
}

impl Mount {
    fn sigterm(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        TestCommand::new("kill").arg(child.id().to_string()).run();
        child.wait().unwrap()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::process::Command::new("fusermount3").arg("-u").arg(&self.mnt).status();
        }
    }
}

fn mounted(mnt: &Path) -> bool {
    let mnt = format!(" {} ", mnt.display());
    fs::read_to_string("/proc/mounts").unwrap().lines().any(|l| l.contains(&mnt))
}

#[test]
fn publish_verify_mount_gc_as_a_person_would() {
    if !testkit::need(&["nginx", "fusermount3", "qemu-img"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path();

    // -- keygen refuses to overwrite a secret key, and makes it 0600
    image_build(w).args(["keygen", "--secret", "key", "--public", "key.pub"]).run();
    assert_eq!(fs::metadata(w.join("key")).unwrap().permissions().mode() & 0o777, 0o600, "secret key mode");
    let key = fs::read(w.join("key")).unwrap();
    image_build(w).args(["keygen", "--secret", "key", "--public", "key.pub"]).fails_with("refusing to overwrite");
    assert_eq!(fs::read(w.join("key")).unwrap(), key, "the key was overwritten");

    // -- add: a 12.5 MiB image with random data, zero runs and a ragged end
    // (sector-aligned, as qemu-img rounds sizes up to 512 bytes, but not block-aligned).
    let mut img1 = random_bytes(6 * MIB, 1);
    img1.resize(10 * MIB, 0);
    img1.extend(random_bytes(2_500_096, 2));
    fs::write(w.join("img1"), &img1).unwrap();
    let add1 = image_build(w)
        .args(["add", "--store", "store", "--distro", "demo", "--date", "2026-11-15", "--title", "Demo OS"])
        .args(["--key", "key", "img1"])
        .stdout();
    expect(&add1, "blocks: 50 total, 16 zero, 0 already in the store, 34 new");

    // -- the same image again: no block written
    let add2 = image_build(w)
        .args(["add", "--store", "store", "--distro", "demo", "--date", "2026-11-16", "--key", "key", "img1"])
        .stdout();
    expect(&add2, "blocks: 50 total, 16 zero, 34 already in the store, 0 new; 0 B written");

    // -- a date already published is not silently replaced; --replace does it
    let catalog = fs::read(w.join("store/catalog.json")).unwrap();
    let again = ["add", "--store", "store", "--distro", "demo", "--date", "2026-11-16", "--key", "key", "img1"];
    let refused = image_build(w).args(again).fails_with("already published");
    expect(&refused, "--replace");
    assert_eq!(fs::read(w.join("store/catalog.json")).unwrap(), catalog, "a refused add changed the catalog");
    image_build(w).args(again).arg("--replace").run();

    // -- a qcow2 of a changed image: converted, and only the changed block is new
    let mut img2 = img1.clone();
    img2[300_000..300_008].copy_from_slice(b"week two");
    fs::write(w.join("img2"), &img2).unwrap();
    TestCommand::new("qemu-img")
        .current_dir(w)
        .args(["convert", "-f", "raw", "-O", "qcow2", "img2", "img2.qcow2"])
        .run();
    let out = image_build(w)
        .args(["add", "--store", "store", "--distro", "demo", "--date", "2026-11-22", "--key", "key", "img2.qcow2"])
        .run();
    let add3 = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        add3.contains("converting ") && add3.contains(" from qcow2"),
        "expected /converting .* from qcow2/ in:\n{add3}"
    );
    expect(&add3, "33 already in the store, 1 new");

    // -- bad input gets a clear error
    let add = |distro: &str, date: &str, extra: &[&str], key: &str| {
        let mut cmd = image_build(w);
        cmd.args(["add", "--store", "store", "--distro", distro, "--date", date])
            .args(extra)
            .args(["--key", key, "img1"]);
        cmd
    };
    add("Demo", "2026-11-22", &[], "key").fails_with("distribution name");
    add("demo", "2026-13-01", &[], "key").fails_with("YYYY-MM-DD");
    add("demo", "2026-11-30", &["--block-size", "1000"], "key").fails_with("power of two");
    image_build(w).args(["keygen", "--secret", "other", "--public", "other.pub"]).run();
    add("demo", "2026-11-30", &[], "other").fails_with("did not sign this store");

    // -- list and list --json: three snapshots, newest first
    let list = image_build(w).args(["list", "--store", "store"]).stdout();
    expect(&list, "3 snapshots of 1 distribution;");
    let json = image_build(w).args(["list", "--store", "store", "--json"]).stdout();
    let dates: Vec<_> = json.lines().filter(|l| l.contains("\"date\"")).map(str::trim).collect();
    assert_eq!(dates, [r#""date": "2026-11-22","#, r#""date": "2026-11-16","#, r#""date": "2026-11-15","#], "{json}");
    expect(&json, &format!("\"image_size\": {}", img1.len()));
    expect(&json, "\"title\": \"Demo OS\"");

    // -- verify: sound, then each kind of damage is reported
    let verify = |public: &str| image_build(w).args(["verify", "--store", "store", "--public", public]).output();
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    image_build(w).args(["verify", "--store", "store", "--public", "key.pub"]).run();
    expect(&text(&verify("key.pub")), "is sound");
    let block = block_files(&w.join("store"))[0].clone();
    let saved = fs::read(&block).unwrap();
    let mut corrupt = saved.clone();
    corrupt[10] = if corrupt[10] == b'X' { b'Y' } else { b'X' };
    fs::write(&block, &corrupt).unwrap();
    let o = verify("key.pub");
    assert!(!o.status.success(), "verify missed a corrupt block");
    expect(&text(&o), "is corrupt");
    fs::remove_file(&block).unwrap();
    let o = verify("key.pub");
    assert!(!o.status.success(), "verify missed a missing block");
    expect(&text(&o), "is missing");
    fs::write(&block, &saved).unwrap();
    let o = verify("other.pub");
    assert!(!o.status.success(), "verify accepted a wrong key");
    expect(&text(&o), "signature does not match");

    // -- blockfs mount over nginx: byte-for-byte, status, latest, SIGTERM unmounts
    let nginx = Nginx::start(&w.join("store"));
    let mnt = w.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let log = w.join("blockfs.log");
    let child = blockfs(w).args(["mount", "--cache", "cache", "--public", "key.pub", &nginx.url(), "mnt"]).spawn(&log);
    let mut mount = Mount { child: Some(child), mnt: mnt.clone() };
    wait_for("the mount to appear", || mnt.join("status.json").exists());
    assert!(fs::read(mnt.join("demo/2026-11-15.img")).unwrap() == img1, "2026-11-15.img differs");
    assert!(fs::read(mnt.join("demo/latest.img")).unwrap() == img2, "latest.img differs");
    assert_eq!(fs::read_link(mnt.join("demo/latest.img")).unwrap(), Path::new("2026-11-22.img"));
    let status = blockfs(w).args(["status", "mnt"]).stdout();
    expect(&status, "demo/2026-11-22  100% cached: boots offline");
    assert!(status.lines().any(|l| l.starts_with("fetched:") && l.contains(" in 35 blocks")), "{status}");
    let json = blockfs(w).args(["status", "--json", "mnt"]).stdout();
    expect(&json, "\"fetched_blocks\": 35");
    let status = mount.sigterm();
    assert!(status.success(), "blockfs mount exited with {status} on SIGTERM");
    assert!(!mounted(&mnt), "SIGTERM did not unmount");
    expect(&fs::read_to_string(&log).unwrap(), "unmounting");

    // -- gc keeps the newest snapshot and deletes what nothing uses
    let gc = image_build(w).args(["gc", "--store", "store", "--keep", "1", "--key", "key"]).stdout();
    expect(&gc, "2 snapshots dropped");
    expect(&image_build(w).args(["verify", "--store", "store", "--public", "key.pub"]).stdout(), "is sound");
    assert_eq!(block_files(&w.join("store")).len(), 34, "blocks left by gc");

    // -- sign: a new expiry, nothing else
    let before = fs::read_to_string(w.join("store/catalog.json")).unwrap();
    let signed = image_build(w).args(["sign", "--store", "store", "--key", "key", "--valid-days", "3"]).stdout();
    expect(&signed, "signed store; expires ");
    // The expiry is printed as the catalog stores it (RFC 3339), 3 days from now.
    let expires = signed.trim().rsplit(' ').next().unwrap();
    let expires = time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{expires:?} is not RFC 3339: {e}"));
    let hours = (expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((71..=72).contains(&hours), "expires in {hours} h, not 3 days");
    image_build(w)
        .args(["sign", "--store", "store", "--key", "key", "--valid-days", "0"])
        .fails_with("already expired");
    image_build(w).args(["sign", "--store", "store", "--key", "gone.pem"]).fails_with("make a key pair");
    let after = fs::read_to_string(w.join("store/catalog.json")).unwrap();
    let without_times = |s: &str| {
        s.lines().filter(|l| !l.contains("\"generated\"") && !l.contains("\"expires\"")).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(without_times(&before), without_times(&after), "sign changed more than the dates");
    expect(&image_build(w).args(["verify", "--store", "store", "--public", "key.pub"]).stdout(), "is sound");
    image_build(w).args(["sign", "--store", "store", "--key", "other"]).fails_with("did not sign this store");

    // -- bad flags and URLs
    blockfs(w).args(["mount", "--public", "key.pub", "ftp://x/", "mnt"]).fails_with("not supported");
    let missing = blockfs(w).args(["mount", "--public", "nokey", &nginx.url(), "mnt"]).fails_with("nokey");
    expect(&missing, "public key");
}

/// A qcow2 whose backing file is gone (field case 17): `add` refuses it with qemu-img's
/// reason, and the store is as it was: the same catalog bytes, nothing left in tmp/.
#[test]
fn a_qcow2_with_its_backing_file_gone_leaves_the_store_untouched() {
    if !testkit::need(&["qemu-img"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    image_build(dir).args(["keygen", "--secret", "key", "--public", "key.pub"]).run();
    fs::write(dir.join("base.raw"), random_bytes(2 * MIB, 17)).unwrap();
    TestCommand::new("qemu-img")
        .current_dir(dir)
        .args(["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "overlay.qcow2"])
        .run();
    image_build(dir)
        .args(["add", "--store", "store", "--distro", "t", "--date", "2026-11-15", "--key", "key", "base.raw"])
        .run();
    let before = fs::read(dir.join("store/catalog.json")).unwrap();
    fs::rename(dir.join("base.raw"), dir.join("base.moved")).unwrap();
    let refused = image_build(dir)
        .args(["add", "--store", "store", "--distro", "t", "--date", "2026-11-22", "--key", "key", "overlay.qcow2"])
        .fails_with("base.raw");
    assert_eq!(fs::read(dir.join("store/catalog.json")).unwrap(), before, "the catalog changed");
    // A log the error points at exists and holds qemu-img's own words.
    let log = refused.split_whitespace().find(|w| w.ends_with(".log")).expect("the error names its log");
    let text = fs::read_to_string(log).unwrap_or_else(|e| panic!("the error points at {log}: {e}"));
    expect(&text, "base.raw");
    // The publisher's lock file stays (docs/FORMAT.md); nothing of the refused run may.
    let left: Vec<_> = fs::read_dir(dir.join("store/tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).filter(|n| n != ".lock").collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the store's tmp/: {left:?}");
}

/// A guest proposal no VM could boot with is refused before anything is written.
#[test]
fn add_refuses_zero_memory_or_cpus_and_leaves_no_store() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("disk.img"), vec![0u8; 4096]).unwrap();
    image_build(dir.path()).args(["keygen", "--secret", "k", "--public", "k.pub"]).run();
    for (flag, value) in [("--memory-mib", "0"), ("--memory-mib", "31"), ("--cpus", "0")] {
        let err = image_build(dir.path())
            .args(["add", "--store", "st", "--distro", "d", "--date", "2026-11-30", "--key", "k", flag, value])
            .arg("disk.img")
            .fails_with(flag);
        expect(&err, "is not in");
        assert!(!dir.path().join("st").exists(), "{flag} {value} made a store");
    }
}

/// A wrong image path (a typo, a directory) or a bad `--level` is said before
/// anything is written: no empty store is left behind.
#[test]
fn add_of_a_missing_image_or_a_directory_leaves_no_store() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("images")).unwrap();
    fs::write(dir.path().join("disk.img"), vec![1u8; 4096]).unwrap();
    image_build(dir.path()).args(["keygen", "--secret", "k", "--public", "k.pub"]).run();
    let add = |image: &str, extra: &[&str], says: &str| {
        image_build(dir.path())
            .args(["add", "--store", "st", "--distro", "d", "--date", "2026-11-30", "--key", "k"])
            .args(extra)
            .arg(image)
            .fails_with(says);
        assert!(!dir.path().join("st").exists(), "add {image} {extra:?} made a store");
    };
    add("no-such.img", &[], "no-such.img: No such file");
    add("images", &[], "is a directory");
    add("disk.img", &["--level", "20"], "--level 20");
}

/// An image one of whose blocks is half of SHAttered's collision pair (format/testdata) is
/// refused by name, block and byte offset; the catalog stays as it was, and no index
/// names the image.
#[test]
fn add_refuses_an_image_carrying_a_sha1_collision_and_leaves_the_store_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    image_build(dir).args(["keygen", "--secret", "key", "--public", "key.pub"]).run();
    fs::write(dir.join("good.img"), random_bytes(2 * MIB, 41)).unwrap();
    image_build(dir)
        .args(["add", "--store", "store", "--distro", "t", "--date", "2026-11-15", "--key", "key", "good.img"])
        .run();
    let catalog = fs::read(dir.join("store/catalog.json")).unwrap();
    let indexes = fs::read_dir(dir.join("store/indexes")).unwrap().count();

    // Block 5 of 8 (256 KiB blocks) starts with the second half of the pair.
    let mut image = random_bytes(2 * MIB, 42);
    let half = include_bytes!("../../format/testdata/shattered-2-prefix.bin");
    image[5 * 256 * 1024..][..half.len()].copy_from_slice(half);
    fs::write(dir.join("crafted.img"), &image).unwrap();
    let err = image_build(dir)
        .args(["add", "--store", "store", "--distro", "t", "--date", "2026-11-22", "--key", "key", "crafted.img"])
        .fails_with("SHA-1 collision");
    expect(&err, "crafted.img: block 5 (from byte 1310720)");
    expect(&err, "Nothing was published");
    assert_eq!(fs::read(dir.join("store/catalog.json")).unwrap(), catalog, "the catalog changed");
    assert_eq!(fs::read_dir(dir.join("store/indexes")).unwrap().count(), indexes, "an index was written");
}

// `image-build gc` when the store cannot be written: the reduced catalog is published
// before anything is deleted (docs/FORMAT.md), so a gc that cannot publish it must delete
// nothing, and the store keeps a catalog and signature that match, so the next run (and
// every client) can still read it.

/// Every file under the store but its tmp/, sorted.
fn store_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![store.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p != store.join("tmp") {
                    dirs.push(p);
                }
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `chattr +i` on a file for the guard's life: not even root may replace it.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: PathBuf) -> Immutable {
        TestCommand::new("chattr").arg("+i").arg(&path).run();
        Immutable(path)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_gc_that_cannot_publish_the_reduced_catalog_deletes_nothing() {
    if !testkit::need(&["chattr"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    image_build(dir).args(["keygen", "--secret", "key", "--public", "key.pub"]).run();
    for (date, seed) in [("2026-11-15", 1), ("2026-11-22", 2)] {
        fs::write(dir.join("disk.img"), random_bytes(1 << 20, seed)).unwrap();
        image_build(dir)
            .args(["add", "--store", "store", "--distro", "t", "--date", date, "--key", "key", "disk.img"])
            .run();
    }
    let store = dir.join("store");
    let before = store_files(&store);
    let catalog = fs::read(store.join("catalog.json")).unwrap();

    for stuck in ["catalog.json", "catalog.json.sig"] {
        let guard = Immutable::set(store.join(stuck));
        // A filesystem without the immutable flag (tmpfs, overlay) cannot hold this test.
        let attrs = TestCommand::new("lsattr").arg(store.join(stuck)).stdout();
        assert!(attrs.split_whitespace().next().unwrap_or("").contains('i'), "chattr +i did not hold: {attrs}");
        let err = image_build(dir).args(["gc", "--store", "store", "--keep", "1", "--key", "key"]).fails_with(stuck);
        drop(guard);
        assert_eq!(store_files(&store), before, "gc deleted files though {stuck} could not be written: {err}");
        // The pair on disk still verifies: the old catalog, under its own signature.
        assert_eq!(fs::read(store.join("catalog.json")).unwrap(), catalog, "{stuck} stuck left another catalog: {err}");
    }
    // Writable again, the same gc goes through and deletes the older snapshot's files.
    let out = image_build(dir).args(["gc", "--store", "store", "--keep", "1", "--key", "key"]).stdout();
    assert!(out.contains("1 snapshot dropped"), "{out}");
    assert!(store_files(&store).len() < before.len(), "{out}");
}
