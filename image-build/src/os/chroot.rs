//! Debian's tools, run for the image: debootstrap on the host, apt inside the chroot.
//!
//! Commands get a clean, fixed environment (locale C.UTF-8, no debconf questions,
//! SOURCE_DATE_EPOCH for tools that honour it such as mkinitramfs and shadow), so the
//! host's environment does not leak into the image. The chroot's mounts are made by
//! the caller (`mounts.rs`).

use std::fs;
use std::path::Path;
use std::process::Command;

use super::error::{OsError, Result};
use crate::tool::{Runner, Symptom, ToolError};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn clean_env(cmd: &mut Command, epoch: Option<i64>) {
    cmd.env_clear()
        .env("PATH", PATH)
        .env("LC_ALL", "C.UTF-8")
        .env("LANG", "C.UTF-8")
        .env("HOME", "/root")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("DEBCONF_NONINTERACTIVE_SEEN", "true");
    if let Some(e) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", e.to_string());
    }
}

/// `debootstrap --variant=minbase SUITE ROOT MIRROR`, with a .deb cache when given.
pub fn debootstrap(runner: &mut Runner, suite: &str, mirror: &str, root: &Path, cache: Option<&Path>) -> Result<()> {
    let mut cmd = Command::new("debootstrap");
    clean_env(&mut cmd, None);
    cmd.args(["--variant=minbase", "--components=main"]);
    if let Some(c) = cache {
        cmd.arg(format!("--cache-dir={}", c.display()));
    }
    cmd.arg(suite).arg(root).arg(mirror);
    match runner.run("debootstrap", &mut cmd) {
        Ok(()) => Ok(()),
        Err(ToolError::Failed { symptom: Some(Symptom::NoNetwork), tail, log, .. }) => {
            Err(OsError::MirrorUnreachable { mirror: mirror.into(), suite: suite.into(), log, tail })
        }
        Err(e) => Err(e.into()),
    }
}

/// A command run inside the chroot at `root`.
pub fn in_chroot(root: &Path, epoch: Option<i64>, args: &[&str]) -> Command {
    let mut cmd = Command::new("chroot");
    clean_env(&mut cmd, epoch);
    cmd.arg(root).args(args);
    cmd
}

/// apt-get with the options every image build uses: no recommends, no questions,
/// keep existing configuration files on upgrade, no translations.
pub fn apt_get(root: &Path, epoch: Option<i64>, args: &[&str]) -> Command {
    let mut all = vec![
        "apt-get",
        "-y",
        "-q",
        "-o",
        "APT::Install-Recommends=false",
        "-o",
        "APT::Install-Suggests=false",
        "-o",
        "Acquire::Languages=none",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        "-o",
        "Dpkg::Use-Pty=0",
    ];
    all.extend_from_slice(args);
    in_chroot(root, epoch, &all)
}

/// The newest `Date:` of the Release files apt has fetched: the default
/// SOURCE_DATE_EPOCH, so that the same mirror state gives the same timestamps.
pub fn newest_release_date(root: &Path) -> Option<i64> {
    let lists = root.join("var/lib/apt/lists");
    let mut newest = None;
    for entry in fs::read_dir(lists).ok()?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.ends_with("_InRelease") || name.ends_with("_Release")) {
            continue;
        }
        let Ok(text) = fs::read_to_string(entry.path()) else { continue };
        let date = text.lines().find_map(|l| l.strip_prefix("Date:")).and_then(parse_release_date);
        if let Some(d) = date {
            newest = Some(newest.map_or(d, |n: i64| n.max(d)));
        }
    }
    newest
}

/// Parses a Release file date such as `Sat, 11 Jul 2026 10:16:37 UTC`.
pub fn parse_release_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, clock, zone] = parts.as_slice() else { return None };
    if !matches!(*zone, "UTC" | "GMT" | "+0000" | "UT") {
        return None;
    }
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let m = months.iter().position(|x| x == month)? as u8 + 1;
    let month = time::Month::try_from(m).ok()?;
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    let hms: Vec<u8> = clock.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let [h, mi, s] = hms.as_slice() else { return None };
    let t = time::Time::from_hms(*h, *mi, *s).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc().unix_timestamp())
}

/// Reads `VERSION_CODENAME` from the tree's /etc/os-release.
pub fn codename(root: &Path) -> Option<String> {
    let text = fs::read_to_string(root.join("etc/os-release")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates() {
        assert_eq!(parse_release_date(" Sat, 11 Jul 2026 10:16:37 UTC"), Some(1_783_764_997));
        assert_eq!(parse_release_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(parse_release_date("yesterday"), None);
        assert_eq!(parse_release_date("Sat, 11 Jul 2026 10:16:37 CEST"), None);
    }

    #[test]
    fn apt_command_shape() {
        let c = apt_get(Path::new("/r"), Some(5), &["install", "curl"]);
        let text = crate::tool::describe(&c);
        assert!(text.starts_with("chroot /r apt-get -y -q"), "{text}");
        assert!(text.ends_with("install curl"), "{text}");
        assert!(c.get_envs().any(|(k, v)| k == "SOURCE_DATE_EPOCH" && v == Some("5".as_ref())));
    }

    #[test]
    fn os_release_codename() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(d.path().join("etc/os-release"), "NAME=\"Debian\"\nVERSION_CODENAME=bookworm\n").unwrap();
        assert_eq!(codename(d.path()).as_deref(), Some("bookworm"));
    }
}
