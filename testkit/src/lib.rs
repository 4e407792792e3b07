//! Dev-only helpers shared by Circular's tests. Never a dependency of a shipped binary.
//!
//! # Outside programs
//! A test that runs QEMU, nginx, FUSE or another program from Debian starts with
//! [`need`]. When a program is missing, the test fails with a message that names the program,
//! the Debian package that provides it (from `setup/programs.tsv`, the list `make deps`
//! installs from) and the fix, instead of panicking deep inside on a `NotFound`.
//!
//! `make check` sets [`HERMETIC_ENV`]: there, tests that need an outside program are skipped
//! (each prints a line saying so), so the fast loop needs nothing installed, no root and no
//! network. `make test` does not set it, so there a missing program is a failure.
//!
//! # Fixtures
//! - [`Nginx`]: nginx serving a directory on a free loopback port, stopped on drop.
//! - [`Squid`]: a caching HTTP proxy on loopback whose requests come from [`SQUID_OUTGOING`].
//! - [`TestStore`]: a store written with the publisher's own code (`image_build::add`,
//!   `image_build::profile::publish`), never a second publisher.
//! - [`TestCommand`]: runs one of the workspace's binaries (or any program) and, when it
//!   does not do what the test expected, panics with the command, its directory, its exit
//!   status, and its stdout and stderr.
//! - [`random_bytes`]: deterministic pseudo-random bytes, so failures reproduce;
//!   [`wait_for`]: polls a condition.

mod command;
mod nginx;
mod squid;
mod store;

pub use command::{cargo_bin, TestCommand};
pub use nginx::Nginx;
pub use squid::{Squid, SQUID_OUTGOING};
pub use store::TestStore;

use std::path::{Path, PathBuf};

/// The environment variable `make check` sets to skip tests that need outside programs.
pub const HERMETIC_ENV: &str = "CIRCULAR_HERMETIC";

/// `setup/programs.tsv`: "program-or-file<TAB>package<TAB>check arguments" lines.
const PROGRAMS: &str = include_str!("../../setup/programs.tsv");

/// The Debian package that provides `program` (a name on `PATH` or an absolute path), as
/// `setup/programs.tsv` says; `None` when the list does not name it.
pub fn package_of(program: &str) -> Option<&'static str> {
    PROGRAMS
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some((cols.next()?, cols.next()?))
        })
        .find(|(what, _)| *what == program)
        .map(|(_, package)| package)
}

/// Finds `program` on `PATH` (or checks an absolute path): the path of the file, or `None`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.starts_with('/') {
        let p = PathBuf::from(program);
        return p.exists().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// The message for a missing program: what, which package, how to get it.
pub fn missing_message(program: &str) -> String {
    match package_of(program) {
        Some(package) => {
            format!("this test needs `{program}` (Debian package `{package}`), which is not installed: run `make deps`")
        }
        None => {
            format!("this test needs `{program}`, which is not installed (and setup/programs.tsv does not name it)")
        }
    }
}

/// Says whether a test that needs `programs` should run.
///
/// Returns `true` when every program is present. Returns `false` (after printing why) when
/// [`HERMETIC_ENV`] is set: the caller returns early, and the test is skipped.
///
/// # Panics
/// When a program is missing and [`HERMETIC_ENV`] is not set, with [`missing_message`]:
/// under `make test` a missing program is a failure, never a silent pass.
#[track_caller]
pub fn need(programs: &[&str]) -> bool {
    if std::env::var_os(HERMETIC_ENV).is_some() {
        // Straight to the process's stderr: cargo's test harness swallows `eprintln!` of a
        // passing test, and a skip must be seen.
        use std::io::Write as _;
        // One line per skipped test, in a shape the suite's summary counts (e2e/suite.sh).
        let test = std::thread::current().name().unwrap_or("a test").to_string();
        let _ = writeln!(std::io::stderr(), "SKIP {test}: needs {} (skipped under make check)", programs.join(", "));
        return false;
    }
    if let Some(missing) = programs.iter().find(|p| find_program(p).is_none()) {
        panic!("{}", missing_message(missing));
    }
    true
}

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

/// Polls `cond` for up to 10 s; panics naming `what` if it never holds.
#[track_caller]
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_the_package_of_each_program_the_issue_named() {
        for (program, package) in [
            ("qemu-img", "qemu-utils"),
            ("qemu-system-x86_64", "qemu-system-x86"),
            ("nginx", "nginx-light"),
            ("fusermount3", "fuse3"),
            ("mkfs.fat", "dosfstools"),
            ("mcopy", "mtools"),
            ("sfdisk", "fdisk"),
            ("mke2fs", "e2fsprogs"),
            ("debootstrap", "debootstrap"),
            ("grub-mkimage", "grub-common"),
            ("busybox", "busybox-static"),
            ("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf"),
            ("/usr/share/seabios/bios-256k.bin", "seabios"),
        ] {
            assert_eq!(package_of(program), Some(package), "{program}");
        }
        assert_eq!(package_of("no-such-program"), None);
    }

    #[test]
    fn a_missing_program_is_named_with_its_package_and_the_fix() {
        let m = missing_message("qemu-img");
        assert!(m.contains("`qemu-img`") && m.contains("`qemu-utils`") && m.contains("make deps"), "{m}");
    }

    #[test]
    fn programs_are_found_on_path_and_absent_ones_are_not() {
        assert!(find_program("sh").is_some());
        assert!(find_program("circular-no-such-program").is_none());
        assert!(find_program("/").is_some());
        assert!(find_program("/no/such/file").is_none());
    }
}
