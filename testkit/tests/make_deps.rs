//! `make deps` itself (setup/deps.sh): on a machine where a program is missing or broken, it
//! names the program and the Debian package. Runs `--check` (nothing is installed) with a `PATH`
//! built for the test, so it needs neither root nor network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn deps_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../setup/deps.sh")
}

/// A directory of links to everything on the real `PATH` except `left_out`, plus `stubs`
/// (name, shell body) written as small scripts.
fn fake_path(dir: &Path, left_out: &[&str], stubs: &[(&str, &str)]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in std::env::split_paths(&std::env::var_os("PATH").unwrap()) {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let name = e.file_name();
            let name_str = name.to_string_lossy();
            if left_out.contains(&name_str.as_ref()) || stubs.iter().any(|(s, _)| *s == name_str) {
                continue;
            }
            let _ = symlink(e.path(), bin.join(&name)); // the first on PATH wins, as in a shell
        }
    }
    for (name, body) in stubs {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn check_with_path(path: &Path) -> (bool, String) {
    let out = Command::new("/bin/bash").arg(deps_script()).arg("--check").env("PATH", path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_missing_program_is_named_with_its_package() {
    let dir = tempfile::tempdir().unwrap();
    let path = fake_path(dir.path(), &["qemu-img"], &[]);
    let (ok, stderr) = check_with_path(&path);
    assert!(!ok, "make deps --check passed without qemu-img:\n{stderr}");
    assert!(stderr.contains("'qemu-img' is missing or does not work"), "{stderr}");
    assert!(stderr.contains("Debian package 'qemu-utils'"), "{stderr}");
}

#[test]
fn a_present_but_broken_program_is_named_and_a_working_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = fake_path(dir.path(), &[], &[("qemu-img", "exit 0"), ("nginx", "echo broken >&2; exit 1")]);
    let (ok, stderr) = check_with_path(&path);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("'nginx' is missing or does not work; it comes from the Debian package 'nginx-light'"),
        "{stderr}"
    );
    assert!(!stderr.contains("'qemu-img'"), "a working qemu-img was reported:\n{stderr}");
}

#[test]
fn a_wrong_flag_is_refused_with_what_to_use() {
    let out = Command::new("/bin/bash").arg(deps_script()).arg("--chek").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use --check"));
}
