//! `image-build gc` when the store cannot be written: the reduced catalog is published
//! before anything is deleted (docs/FORMAT.md), so a gc that cannot publish it must delete
//! nothing: a client that still holds the old catalog finds every file it names. And the
//! store keeps a catalog and signature that match, so the next run (and every client) can
//! still read it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use testkit::{random_bytes, TestCommand};

fn image_build(dir: &Path) -> TestCommand {
    let mut cmd = TestCommand::new(env!("CARGO_BIN_EXE_image-build"));
    cmd.current_dir(dir);
    cmd
}

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
