//! The early mounts every Linux userspace expects. The kernel mounts nothing
//! for us (this kernel has DEVTMPFS_MOUNT off), so /dev is ours to mount too.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("mount {what} on {target}: {source}")]
pub struct MountError {
    pub what: String,
    pub target: String,
    #[source]
    pub source: nix::Error,
}

pub fn mount_fs(fstype: &str, target: &str, flags: MsFlags, data: Option<&str>) -> Result<(), MountError> {
    let _ = std::fs::create_dir_all(target);
    mount(Some(fstype), target, Some(fstype), flags, data).map_err(|source| MountError {
        what: fstype.into(),
        target: target.into(),
        source,
    })
}

/// proc, sys, dev (+pts, shm), run, tmp. A failure here is fatal for
/// everything after it, so the caller reports and stops.
pub fn early() -> Result<(), MountError> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", "/proc", nosuid, None)?;
    mount_fs("sysfs", "/sys", nosuid, None)?;
    mount_fs("devtmpfs", "/dev", MsFlags::MS_NOSUID, Some("mode=0755"))?;
    mount_fs("devpts", "/dev/pts", MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some("gid=5,mode=620,ptmxmode=666"))?;
    mount_fs("tmpfs", "/dev/shm", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=1777"))?;
    mount_fs("tmpfs", "/run", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0755"))?;
    mount_fs("tmpfs", "/tmp", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=1777"))?;
    // FUSE's control filesystem is optional; blockfs works without it.
    let _ = mount_fs("fusectl", "/sys/fs/fuse/connections", MsFlags::empty(), None);
    Ok(())
}

/// Unmounts, falling back to a lazy unmount when something still holds it.
pub fn unmount(target: &Path) -> Result<(), nix::Error> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::Error::EINVAL) => Ok(()), // not mounted
        Err(_) => umount2(target, MntFlags::MNT_DETACH),
    }
}
