//! Applies an overlayfs upper directory to the real filesystem, moving as few blocks
//! as possible.
//!
//! apt and dpkg replace every file of an upgraded package (write `.dpkg-new`, rename),
//! even files whose bytes did not change, and each replacement lands in new blocks
//! while the old ones are freed. Run inside an overlay, the upgrade leaves its result
//! in the upper directory; this module then makes the lower (the image) equal to the
//! merged view: files with the same bytes are not touched (metadata only), changed
//! regular files are overwritten in place (ext4 keeps their blocks), new files are
//! created, whiteouts delete. It understands the overlay format with redirect_dir,
//! metacopy and index off (the mount sets them so); it is not a general sync tool.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::AtFlags;
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};

use super::error::{OsError, Result};

/// What applying did, for the user and the docs' measurements.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub unchanged: u64,
    pub rewritten_in_place: u64,
    pub created: u64,
    pub removed: u64,
    pub bytes_written: u64,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files unchanged (left in place), {} rewritten in place, {} created, {} removed, {} MiB written",
            self.unchanged,
            self.rewritten_in_place,
            self.created,
            self.removed,
            self.bytes_written >> 20
        )
    }
}

fn io(ctx: &Path, e: std::io::Error) -> OsError {
    OsError::io(ctx.display().to_string(), e)
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| OsError::Usage(format!("{} contains a NUL byte", p.display())))
}

/// Extended attribute names of `path` (not following symlinks).
fn list_xattrs(path: &Path) -> Result<Vec<CString>> {
    let c = cpath(path)?;
    // SAFETY: c is a valid NUL-terminated path; a null buffer with size 0 asks for the size.
    let size = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if size <= 0 {
        return Ok(Vec::new());
    }
    let mut buf = vec![0u8; size as usize];
    // SAFETY: buf is writable for buf.len() bytes, the size passed.
    let got = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if got < 0 {
        return Err(io(path, std::io::Error::last_os_error()));
    }
    buf.truncate(got as usize);
    Ok(buf.split(|&b| b == 0).filter(|n| !n.is_empty()).filter_map(|n| CString::new(n).ok()).collect())
}

fn get_xattr(path: &Path, name: &CString) -> Result<Option<Vec<u8>>> {
    let c = cpath(path)?;
    // SAFETY: valid NUL-terminated strings; null buffer with size 0 asks for the size.
    let size = unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    if size < 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; size as usize];
    // SAFETY: buf is writable for buf.len() bytes, the size passed.
    let got = unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if got < 0 {
        return Ok(None);
    }
    buf.truncate(got as usize);
    Ok(Some(buf))
}

fn set_xattr(path: &Path, name: &CString, value: &[u8]) -> Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid NUL-terminated strings; value is readable for value.len() bytes.
    let r = unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r < 0 {
        return Err(io(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

fn remove_xattr(path: &Path, name: &CString) -> Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid NUL-terminated strings.
    let r = unsafe { libc::lremovexattr(c.as_ptr(), name.as_ptr()) };
    if r < 0 {
        return Err(io(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

fn overlay_private(name: &CString) -> bool {
    name.as_bytes().starts_with(b"trusted.overlay.")
}

fn is_opaque(dir: &Path) -> Result<bool> {
    let name = CString::new("trusted.overlay.opaque").map_err(|_| OsError::Usage("xattr name".into()))?;
    Ok(get_xattr(dir, &name)?.as_deref() == Some(b"y"))
}

fn remove_any(path: &Path, stats: &mut Applied) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path, e)),
        Ok(m) => {
            if m.is_dir() {
                fs::remove_dir_all(path).map_err(|e| io(path, e))?;
            } else {
                fs::remove_file(path).map_err(|e| io(path, e))?;
            }
            stats.removed += 1;
            Ok(())
        }
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<(std::ffi::OsString, fs::Metadata)>> {
    let mut v = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let meta = fs::symlink_metadata(entry.path()).map_err(|e| io(&entry.path(), e))?;
        v.push((entry.file_name(), meta));
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// Pass 1: whiteouts and opaque directories delete from the lower tree, first, so
/// the space is free before anything new is written.
fn delete_pass(upper: &Path, lower: &Path, stats: &mut Applied) -> Result<()> {
    let entries = sorted_entries(upper)?;
    if is_opaque(upper)? && lower.is_dir() {
        let keep: Vec<&OsStr> = entries.iter().map(|(n, _)| n.as_os_str()).collect();
        for entry in fs::read_dir(lower).map_err(|e| io(lower, e))? {
            let entry = entry.map_err(|e| io(lower, e))?;
            if !keep.contains(&entry.file_name().as_os_str()) {
                remove_any(&entry.path(), stats)?;
            }
        }
    }
    for (name, meta) in &entries {
        let (u, l) = (upper.join(name), lower.join(name));
        if is_whiteout(meta) {
            remove_any(&l, stats)?;
        } else if meta.is_dir() {
            if fs::symlink_metadata(&l).is_ok_and(|m| !m.is_dir()) {
                remove_any(&l, stats)?;
            }
            if l.is_dir() {
                delete_pass(&u, &l, stats)?;
            }
        } else if fs::symlink_metadata(&l).is_ok_and(|m| m.is_dir()) {
            remove_any(&l, stats)?;
        }
    }
    Ok(())
}

/// Makes owner, mode, extended attributes and times of `lower` those of `upper`.
fn sync_metadata(upper: &Path, um: &fs::Metadata, lower: &Path) -> Result<()> {
    let lm = fs::symlink_metadata(lower).map_err(|e| io(lower, e))?;
    if lm.uid() != um.uid() || lm.gid() != um.gid() {
        fchownat(
            None,
            lower,
            Some(Uid::from_raw(um.uid())),
            Some(Gid::from_raw(um.gid())),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| OsError::sys(format!("chown {}", lower.display()), e))?;
    }
    if !um.file_type().is_symlink() {
        // After chown, which clears set-id bits.
        let lm = fs::symlink_metadata(lower).map_err(|e| io(lower, e))?;
        if lm.mode() & 0o7777 != um.mode() & 0o7777 {
            fs::set_permissions(lower, fs::Permissions::from_mode(um.mode() & 0o7777)).map_err(|e| io(lower, e))?;
        }
    }
    let want: Vec<CString> = list_xattrs(upper)?.into_iter().filter(|n| !overlay_private(n)).collect();
    for name in list_xattrs(lower)? {
        if !want.contains(&name) {
            remove_xattr(lower, &name)?;
        }
    }
    for name in &want {
        let value = get_xattr(upper, name)?.unwrap_or_default();
        if get_xattr(lower, name)?.as_deref() != Some(value.as_slice()) {
            set_xattr(lower, name, &value)?;
        }
    }
    let lm = fs::symlink_metadata(lower).map_err(|e| io(lower, e))?;
    if lm.mtime() != um.mtime() || lm.mtime_nsec() != um.mtime_nsec() {
        let t = TimeSpec::new(um.mtime(), um.mtime_nsec());
        utimensat(None, lower, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| OsError::sys(format!("setting the times of {}", lower.display()), e))?;
    }
    Ok(())
}

struct Writer {
    stats: Applied,
    /// Upper inode → the lower path written for it, to keep hard links.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Writer {
    /// Pass 2: creates and updates, depth first; directory times last.
    fn write_pass(&mut self, upper: &Path, lower: &Path) -> Result<()> {
        for (name, um) in sorted_entries(upper)? {
            let (u, l) = (upper.join(&name), lower.join(&name));
            if is_whiteout(&um) {
                continue;
            }
            let lm = fs::symlink_metadata(&l).ok();
            let ft = um.file_type();
            if ft.is_dir() {
                if !lm.as_ref().is_some_and(|m| m.is_dir()) {
                    remove_any(&l, &mut self.stats)?;
                    fs::create_dir(&l).map_err(|e| io(&l, e))?;
                    self.stats.created += 1;
                }
                self.write_pass(&u, &l)?;
                sync_metadata(&u, &um, &l)?;
            } else if ft.is_file() {
                self.file(&u, &um, &l, lm.as_ref())?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&u).map_err(|e| io(&u, e))?;
                let same = lm.as_ref().is_some_and(|m| m.file_type().is_symlink())
                    && fs::read_link(&l).is_ok_and(|t| t == target);
                if same {
                    self.stats.unchanged += 1;
                } else {
                    remove_any(&l, &mut self.stats)?;
                    symlink(&target, &l).map_err(|e| io(&l, e))?;
                    self.stats.created += 1;
                }
                sync_metadata(&u, &um, &l)?;
            } else {
                // FIFOs, sockets and device nodes: rare in an upgrade; recreate them.
                remove_any(&l, &mut self.stats)?;
                let kind = nix::sys::stat::SFlag::from_bits_truncate(um.mode() & libc::S_IFMT);
                let perm = nix::sys::stat::Mode::from_bits_truncate(um.mode() & 0o7777);
                nix::sys::stat::mknod(&l, kind, perm, um.rdev())
                    .map_err(|e| OsError::sys(format!("mknod {}", l.display()), e))?;
                self.stats.created += 1;
                sync_metadata(&u, &um, &l)?;
            }
        }
        Ok(())
    }

    fn file(&mut self, u: &Path, um: &fs::Metadata, l: &Path, lm: Option<&fs::Metadata>) -> Result<()> {
        let key = (um.dev(), um.ino());
        if um.nlink() > 1 {
            if let Some(first) = self.links.get(&key).cloned() {
                let fm = fs::symlink_metadata(&first).map_err(|e| io(&first, e))?;
                if lm.is_some_and(|m| m.dev() == fm.dev() && m.ino() == fm.ino()) {
                    self.stats.unchanged += 1;
                } else {
                    remove_any(l, &mut self.stats)?;
                    fs::hard_link(&first, l).map_err(|e| io(l, e))?;
                    self.stats.created += 1;
                }
                return Ok(());
            }
            self.links.insert(key, l.to_path_buf());
        }
        let new = fs::read(u).map_err(|e| io(u, e))?;
        let lower_file = lm.filter(|m| m.is_file());
        // A lower file shared by hard links is rewritten in place only if the new one
        // is shared too; otherwise the other names would change with it.
        let in_place_ok = lower_file.is_some_and(|m| m.nlink() == 1 || um.nlink() > 1);
        if in_place_ok
            && lower_file.is_some_and(|m| m.len() == new.len() as u64)
            && fs::read(l).is_ok_and(|old| old == new)
        {
            self.stats.unchanged += 1;
        } else if in_place_ok {
            // No O_TRUNC: ext4 overwrites the blocks the file already has.
            let mut f = OpenOptions::new().write(true).open(l).map_err(|e| io(l, e))?;
            f.write_all(&new).map_err(|e| io(l, e))?;
            f.set_len(new.len() as u64).map_err(|e| io(l, e))?;
            self.stats.rewritten_in_place += 1;
            self.stats.bytes_written += new.len() as u64;
        } else {
            remove_any(l, &mut self.stats)?;
            fs::write(l, &new).map_err(|e| io(l, e))?;
            self.stats.created += 1;
            self.stats.bytes_written += new.len() as u64;
        }
        sync_metadata(u, um, l)
    }
}

/// Makes `lower` equal to the overlay of `upper` on it. The overlay must be unmounted.
pub fn apply(upper: &Path, lower: &Path) -> Result<Applied> {
    let mut stats = Applied::default();
    delete_pass(upper, lower, &mut stats)?;
    let mut w = Writer { stats, links: HashMap::new() };
    w.write_pass(upper, lower)?;
    let um = fs::symlink_metadata(upper).map_err(|e| io(upper, e))?;
    sync_metadata(upper, &um, lower)?;
    Ok(w.stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn whiteout(p: &Path) {
        nix::sys::stat::mknod(p, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).unwrap();
    }

    #[test]
    fn applies_like_an_overlay_and_keeps_unchanged_inodes() {
        // Needs root for the whiteout device node; skipped otherwise.
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let (up, low) = (d.path().join("upper"), d.path().join("lower"));
        for p in [&up, &low] {
            fs::create_dir_all(p.join("etc")).unwrap();
        }
        fs::write(low.join("etc/same"), "same").unwrap();
        fs::write(low.join("etc/changed"), "old contents").unwrap();
        fs::write(low.join("etc/gone"), "x").unwrap();
        fs::write(up.join("etc/same"), "same").unwrap();
        fs::write(up.join("etc/changed"), "new").unwrap();
        fs::write(up.join("etc/added"), "added").unwrap();
        whiteout(&up.join("etc/gone"));
        symlink("same", up.join("etc/link")).unwrap();
        let ino_same = fs::metadata(low.join("etc/same")).unwrap().ino();
        let ino_changed = fs::metadata(low.join("etc/changed")).unwrap().ino();

        let s = apply(&up, &low).unwrap();
        assert_eq!(fs::read_to_string(low.join("etc/same")).unwrap(), "same");
        assert_eq!(fs::read_to_string(low.join("etc/changed")).unwrap(), "new");
        assert_eq!(fs::read_to_string(low.join("etc/added")).unwrap(), "added");
        assert!(!low.join("etc/gone").exists());
        assert_eq!(fs::read_link(low.join("etc/link")).unwrap(), Path::new("same"));
        assert_eq!(fs::metadata(low.join("etc/same")).unwrap().ino(), ino_same);
        assert_eq!(fs::metadata(low.join("etc/changed")).unwrap().ino(), ino_changed);
        assert_eq!(s.unchanged, 1);
        assert_eq!(s.rewritten_in_place, 1);
        assert_eq!(s.removed, 1);
        assert_eq!(s.created, 2);
    }

    #[test]
    fn opaque_directory_replaces_lower_contents() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let (up, low) = (d.path().join("upper"), d.path().join("lower"));
        fs::create_dir_all(up.join("dir")).unwrap();
        fs::create_dir_all(low.join("dir")).unwrap();
        fs::write(low.join("dir/old"), "x").unwrap();
        fs::write(low.join("dir/kept"), "k").unwrap();
        fs::write(up.join("dir/kept"), "k").unwrap();
        let name = CString::new("trusted.overlay.opaque").unwrap();
        set_xattr(&up.join("dir"), &name, b"y").unwrap();
        apply(&up, &low).unwrap();
        assert!(!low.join("dir/old").exists());
        assert!(low.join("dir/kept").exists());
        assert!(get_xattr(&low.join("dir"), &name).unwrap().is_none());
    }
}
