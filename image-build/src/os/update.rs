//! `image-build os --update-from PREVIOUS.img --out IMAGE`: next week's snapshot.
//!
//! The previous image is copied (sparse, reflinked where the filesystem can) and its
//! root filesystem loop-mounted. apt upgrades it through an overlay, and only the
//! differences are applied to the image (`overlay.rs`): files whose bytes did not
//! change keep their blocks, changed files are overwritten where they lie. Then the
//! space the upgrade freed is discarded (fstrim through the loop device punches holes,
//! which read as zeros and cost nothing in the store), and the ext4 journal, which the
//! writes filled with transactions, is recreated zeroed. Unlike `build`, the bytes are
//! not reproducible: the kernel's allocator places new files. docs/OS-IMAGES.md has
//! the measurements (and `--direct`, apt straight into the image, for comparison).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::MsFlags;

use super::build::{check_fs, finish_tree};
use super::chroot::{self, apt_get};
use super::error::{OsError, Result};
use super::mounts::Mounts;
use super::overlay;
use super::rootfs;
use crate::disk::{self, mbr};
use crate::tool::Runner;

pub struct UpdateJob<'a> {
    pub previous: &'a Path,
    pub suite: Option<&'a str>,
    pub mirror: &'a str,
    pub packages: &'a [String],
    pub updates: bool,
    pub slim_kernel: bool,
    pub epoch: Option<i64>,
    pub hold: &'a [String],
    pub direct: bool,
    pub cache: Option<&'a Path>,
    pub work: &'a Path,
}

pub fn update(runner: &mut Runner, job: &UpdateJob) -> Result<PathBuf> {
    let image = job.work.join("image.raw");
    let part = {
        let prev =
            File::open(job.previous).map_err(|e| OsError::io(format!("opening {}", job.previous.display()), e))?;
        let sector = disk::read_first_sector(&prev, job.previous)?;
        mbr::first_partition(&sector)
            .map_err(|source| OsError::BadPartitionTable { path: job.previous.to_path_buf(), source })?
    };

    runner.step(&format!("copying {}", job.previous.display()));
    let mut cp = Command::new("cp");
    cp.args(["--sparse=always", "--reflink=auto"]).arg(job.previous).arg(&image);
    runner.run("cp", &mut cp)?;

    let mnt = job.work.join("mnt");
    fs::create_dir_all(&mnt).map_err(|e| OsError::io(format!("creating {}", mnt.display()), e))?;
    let mut outer = Mounts::new();
    mount_root(runner, &mut outer, &image, part, &mnt)?;
    let root_uuid = root_uuid_of(&mnt)?;
    let suite = match job.suite {
        Some(s) => s.to_string(),
        None => chroot::codename(&mnt).ok_or_else(|| OsError::BadImage {
            path: job.previous.to_path_buf(),
            reason: "its /etc/os-release names no VERSION_CODENAME; pass --suite".into(),
        })?,
    };
    runner.note(&format!("suite {suite}, root filesystem UUID {root_uuid}"));

    // apt works on an overlay whose upper directory collects what changed; see overlay.rs.
    let mut over = Mounts::new();
    let upper = job.work.join("upper");
    let target = if job.direct {
        mnt.clone()
    } else {
        let merged = job.work.join("merged");
        let ovwork = job.work.join("overlay-work");
        for d in [&upper, &merged, &ovwork] {
            fs::create_dir_all(d).map_err(|e| OsError::io(format!("creating {}", d.display()), e))?;
        }
        for d in [&mnt, &upper, &ovwork] {
            if d.to_string_lossy().contains([',', ':', '\\']) {
                return Err(OsError::Usage(format!(
                    "{}: overlayfs cannot use a path with , : or \\; write --out elsewhere",
                    d.display()
                )));
            }
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,index=off,metacopy=off",
            mnt.display(),
            upper.display(),
            ovwork.display()
        );
        over.mount("overlay", &merged, Some("overlay"), MsFlags::empty(), Some(&opts))?;
        merged
    };

    rootfs::configure_before_install(&target, &suite, job.mirror, job.updates, &root_uuid, job.slim_kernel)?;
    rootfs::forbid_services(&target)?;
    rootfs::borrow_host_resolv_conf(&target)?;
    let epoch = upgrade(runner, job, &target)?;
    runner.step("removing caches and logs");
    finish_tree(&target, epoch)?;
    if !job.direct {
        over.unmount_all()?;
        runner.step("applying the changes to the image in place");
        let applied = overlay::apply(&upper, &mnt)?;
        runner.note(&applied.to_string());
    }
    outer.unmount_all()?;

    runner.step("recreating the journal and discarding freed blocks");
    tune2fs(runner, &image, part.offset, "^has_journal")?;
    mount_root(runner, &mut outer, &image, part, &mnt)?;
    let trimmed = runner.output("fstrim", Command::new("fstrim").arg("-v").arg(&mnt))?;
    runner.note(trimmed.trim());
    outer.unmount_all()?;
    tune2fs(runner, &image, part.offset, "has_journal")?;
    check_fs(runner, &image, part.offset)?;
    Ok(image)
}

/// apt in the chroot at `root`: update, full-upgrade (with holds), install, autoremove.
/// Returns the SOURCE_DATE_EPOCH used.
fn upgrade(runner: &mut Runner, job: &UpdateJob, root: &Path) -> Result<i64> {
    let mut inner = Mounts::new();
    inner.chroot_basics(root)?;
    if let Some(c) = job.cache {
        let apt_cache = c.join("apt");
        fs::create_dir_all(apt_cache.join("partial"))
            .map_err(|e| OsError::io(format!("creating {}", apt_cache.display()), e))?;
        inner.mount(
            &apt_cache.to_string_lossy(),
            &root.join("var/cache/apt/archives"),
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    runner.step("apt-get update");
    runner.run("apt-get update", &mut apt_get(root, None, &["update"]))?;
    let epoch = match job.epoch {
        Some(e) => e,
        None => chroot::newest_release_date(root)
            .ok_or_else(|| OsError::Usage("no Release date found in apt's lists; pass --source-date-epoch".into()))?,
    };
    runner.note(&format!("SOURCE_DATE_EPOCH={epoch}"));
    let held: Vec<&str> = job.hold.iter().map(String::as_str).collect();
    if !held.is_empty() {
        let mut args = vec!["apt-mark", "hold"];
        args.extend(&held);
        runner.run("apt-mark hold", &mut chroot::in_chroot(root, Some(epoch), &args))?;
    }
    runner.step("apt-get full-upgrade");
    runner.run("apt-get full-upgrade", &mut apt_get(root, Some(epoch), &["full-upgrade"]))?;
    if !job.packages.is_empty() {
        let mut install = vec!["install"];
        install.extend(job.packages.iter().map(String::as_str));
        runner.step(&format!("installing {}", job.packages.join(", ")));
        runner.run("apt-get install", &mut apt_get(root, Some(epoch), &install))?;
    }
    runner.run("apt-get autoremove", &mut apt_get(root, Some(epoch), &["autoremove", "--purge"]))?;
    if !held.is_empty() {
        let mut args = vec!["apt-mark", "unhold"];
        args.extend(&held);
        runner.run("apt-mark unhold", &mut chroot::in_chroot(root, Some(epoch), &args))?;
    }
    inner.unmount_all()?;
    Ok(epoch)
}

/// Loop-mounts the image's root filesystem. `mount -o loop` sets the loop device to
/// autoclear, so it goes away with the mount, also when this process dies.
fn mount_root(runner: &mut Runner, mounts: &mut Mounts, image: &Path, part: mbr::Partition, mnt: &Path) -> Result<()> {
    let mut cmd = Command::new("mount");
    cmd.args(["-t", "ext4", "-o"])
        .arg(format!("loop,offset={},sizelimit={},noatime", part.offset, part.size))
        .arg(image)
        .arg(mnt);
    runner.run("mount -o loop", &mut cmd)?;
    mounts.adopt(mnt);
    Ok(())
}

fn tune2fs(runner: &mut Runner, image: &Path, offset: u64, feature: &str) -> Result<()> {
    let mut cmd = Command::new("tune2fs");
    cmd.args(["-O", feature]).arg(format!("{}?offset={offset}", image.display()));
    Ok(runner.run(&format!("tune2fs -O {feature}"), &mut cmd)?)
}

/// The root filesystem's UUID, as the image's fstab names it.
fn root_uuid_of(root: &Path) -> Result<String> {
    let fstab = fs::read_to_string(root.join("etc/fstab")).unwrap_or_default();
    fstab
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let dev = f.next()?;
            (f.next()? == "/").then(|| dev.strip_prefix("UUID=").map(str::to_string))?
        })
        .next()
        .ok_or_else(|| OsError::BadImage {
            path: root.to_path_buf(),
            reason: "its /etc/fstab mounts / by no UUID= (was it made by image-build os?)".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_uuid() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(d.path().join("etc/fstab"), rootfs::fstab("abc-def")).unwrap();
        assert_eq!(root_uuid_of(d.path()).unwrap(), "abc-def");
        fs::write(d.path().join("etc/fstab"), "/dev/sda1 / ext4 defaults 0 1\n").unwrap();
        assert!(root_uuid_of(d.path()).is_err());
    }
}
