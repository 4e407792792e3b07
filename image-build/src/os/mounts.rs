//! Mounts made while building: the chroot's /proc, /sys, /dev and /run, and the
//! previous image's filesystem during an update.
//!
//! Everything is mounted in a private mount namespace that this process enters first
//! ([`enter_private_namespace`]): if the process dies, even by SIGKILL, the kernel drops
//! those mounts, and loop devices set up by `mount -o loop` (autoclear) go with them.
//! On ordinary exits, [`Mounts`] unmounts in reverse order, and [`WorkDir`] refuses to
//! delete a tree that still has anything mounted below it (a bind of /dev included).
//! It does not manage mounts made by other processes outside this namespace.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::error::{OsError, Result};

/// Moves this process into its own mount namespace, with no propagation to the host.
/// Must run before any thread is started (unshare(CLONE_NEWNS) requires it).
pub fn enter_private_namespace() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| OsError::sys("creating a private mount namespace (unshare)", e))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| OsError::sys("making / a private mount", e))?;
    Ok(())
}

/// A stack of mount points, unmounted in reverse order on drop.
#[derive(Default)]
pub struct Mounts {
    stack: Vec<PathBuf>,
}

impl Mounts {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn mount(
        &mut self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        fs::create_dir_all(target).map_err(|e| OsError::io(format!("creating {}", target.display()), e))?;
        mount(Some(source), target, fstype, flags, data)
            .map_err(|e| OsError::sys(format!("mounting {source} on {}", target.display()), e))?;
        self.stack.push(target.to_path_buf());
        Ok(())
    }

    /// Records a mount made by an external command (e.g. `mount -o loop`).
    pub fn adopt(&mut self, target: &Path) {
        self.stack.push(target.to_path_buf());
    }

    /// The chroot's kernel filesystems. /dev is a plain (non-recursive) bind.
    pub fn chroot_basics(&mut self, root: &Path) -> Result<()> {
        let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        self.mount("proc", &root.join("proc"), Some("proc"), nodev, None)?;
        self.mount("sysfs", &root.join("sys"), Some("sysfs"), nodev | MsFlags::MS_RDONLY, None)?;
        self.mount("/dev", &root.join("dev"), None, MsFlags::MS_BIND, None)?;
        self.mount(
            "devpts",
            &root.join("dev/pts"),
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=620"),
        )?;
        self.mount(
            "tmpfs",
            &root.join("run"),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=755"),
        )?;
        Ok(())
    }

    /// Unmounts everything, newest first; reports the first failure after trying all.
    pub fn unmount_all(&mut self) -> Result<()> {
        let mut first_err = None;
        while let Some(target) = self.stack.pop() {
            if let Err(e) = umount2(&target, MntFlags::empty()) {
                // Busy: detach it so nothing below is reachable, then report.
                let _ = umount2(&target, MntFlags::MNT_DETACH);
                if first_err.is_none() {
                    first_err = Some(OsError::sys(format!("unmounting {}", target.display()), e));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        while let Some(target) = self.stack.pop() {
            let _ = umount2(&target, MntFlags::MNT_DETACH);
        }
    }
}

/// Mount points at or below `dir`, deepest first, from /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The work directory next to the output: root tree, logs, temporary image.
/// Removed on drop unless kept; never while something is mounted below it.
pub struct WorkDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl WorkDir {
    /// Creates `path` afresh, removing what an interrupted earlier run left there.
    pub fn create(path: PathBuf, keep: bool) -> Result<Self> {
        if path.exists() {
            eprintln!("    removing {} left by an earlier run", path.display());
            remove_tree(&path)?;
        }
        fs::create_dir_all(&path).map_err(|e| OsError::io(format!("creating {}", path.display()), e))?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("    work directory kept: {}", self.path.display());
            return;
        }
        if let Err(e) = remove_tree(&self.path) {
            eprintln!("image-build: warning: {e}");
        }
    }
}

/// Removes a directory tree after detaching anything mounted below it, and refuses
/// if a mount is still there (deleting through a bind of /dev would hurt the host).
pub fn remove_tree(path: &Path) -> Result<()> {
    for m in mounts_under(path) {
        let _ = umount2(&m, MntFlags::MNT_DETACH);
    }
    let left = mounts_under(path);
    if !left.is_empty() {
        return Err(OsError::Usage(format!(
            "not removing {}: {} is still mounted there; unmount it and delete the directory by hand",
            path.display(),
            left[0].display()
        )));
    }
    fs::remove_dir_all(path).map_err(|e| OsError::io(format!("removing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/x\\"), "/x\\");
    }
}
