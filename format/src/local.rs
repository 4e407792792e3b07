//! A store in a local directory, in the layout of [`crate::layout`] that every
//! store has: the publisher's store (`image-build`'s `StoreDir`) and the client's
//! cache (`blockfs`'s `Cache`) are both a [`LocalStore`]. It knows how to write
//! a file so that a crash never leaves half of it under its name, where the
//! fan-out directories go, and how to list the blocks it holds.
//!
//! What it is not: it checks no hash and parses no file (callers verify what
//! they read), and it has no policy. Which blocks to keep, the size cap and
//! eviction belong to the cache; the lock and the publishing order belong to the
//! publisher.
//!
//! # Atomic writes
//! [`write_atomic`] is the one atomic write of the workspace: a temp file is
//! created (never opened through an existing name or link), written, its bytes
//! flushed with `fsync`, and renamed over the target; with
//! [`Durability::Named`] the directory is flushed too, so the new name survives a
//! power cut. A reader therefore sees the whole old file or the whole new one.
//! A local store keeps its temp files in `tmp/` (same filesystem, so the rename
//! is atomic), where leftovers of a crash are easy to find and remove
//! ([`LocalStore::clear_tmp`]). Other files, such as a feed written anywhere,
//! put the temp file beside the target.
//!
//! # Private stores
//! A cache lives in places such as `/var/tmp/blocks`, where another local user
//! could have created the directory first or planted links in it. A store
//! opened as [`Visibility::Private`] is created 0700, must be a real directory
//! owned by the user (its mode is tightened to 0700), follows no link when it
//! opens a file, and reads only regular files (a FIFO planted as a block cannot
//! hang a read). A [`Visibility::Public`] store, which a web server serves, is
//! created with the umask's permissions and is read like any directory.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::hash::Sha1Name;
use crate::layout;

/// Who may read a local store; it decides how the store is created and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// A publisher's store, served as it is: directories made with the umask's
    /// permissions, links followed as any program follows them.
    Public,
    /// A client's cache: the user's own 0700 directory, no link followed, only
    /// regular files read.
    Private,
}

/// How much of a write must survive a power cut once [`write_atomic`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The bytes reach the disk before the file gets its name, so the name
    /// holds the whole file or nothing; the name itself may be lost. Enough for
    /// a block, which is fetched or written again, and it costs one `fsync`
    /// where [`Durability::Named`] costs two.
    Contents,
    /// The bytes and the name: the directory is flushed after the rename.
    Named,
}

/// A block file found by [`LocalStore::scan_blocks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockFile {
    /// The block's name; `None` for a file whose name is not a SHA-1 name, or
    /// that sits in the wrong fan-out directory (nobody would ever read it).
    pub id: Option<Sha1Name>,
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes (compressed, as stored).
    pub len: u64,
    /// Its modification time (a cache's least-recently-used order across restarts).
    pub modified: SystemTime,
}

/// What [`LocalStore::scan_blocks`] found, and what it could not read.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every regular file under `blocks/<aa>/`.
    pub files: Vec<BlockFile>,
    /// Directories or entries that could not be read; the scan went on without them.
    pub problems: Vec<Error>,
}

/// A directory in the store layout. See the module documentation.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    visibility: Visibility,
}

impl LocalStore {
    /// Opens the store in `root`, creating it and the layout's directories
    /// ([`layout::DIRS`]) as needed. A private store is checked first: see the
    /// module documentation.
    ///
    /// # Errors
    /// [`Error::Io`] when a directory cannot be made; [`Error::NotPrivate`] when
    /// a private store's directory, or one of its subdirectories, is a link, is
    /// not a directory, belongs to another user, or cannot be made 0700.
    pub fn create(root: &Path, visibility: Visibility) -> Result<LocalStore> {
        let store = LocalStore { root: root.to_path_buf(), visibility };
        match visibility {
            Visibility::Public => {
                for dir in std::iter::once(root.to_path_buf()).chain(layout::DIRS.iter().map(|d| root.join(d))) {
                    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                }
            }
            Visibility::Private => {
                // Parents that do not exist yet are the user's too: 0700 as well.
                private_dir(root)?;
                for dir in layout::DIRS {
                    private_dir(&root.join(dir))?;
                }
            }
        }
        Ok(store)
    }

    /// A store in `root` that already exists, for reading (verify, list); it
    /// creates and checks nothing.
    pub fn existing(root: &Path, visibility: Visibility) -> LocalStore {
        LocalStore { root: root.to_path_buf(), visibility }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Public or private.
    pub fn visibility(&self) -> Visibility {
        self.visibility
    }

    /// The full path of `relative`, a path from [`layout`] (`blocks/ab/ab…`).
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// The bytes of the file at `relative`. In a private store a link is not
    /// followed and only a regular file is read.
    ///
    /// # Errors
    /// [`Error::Io`] when the file is missing (kind `NotFound`), is a link or
    /// not a regular file (private store), or cannot be read.
    pub fn read(&self, relative: &str) -> Result<Vec<u8>> {
        let path = self.path(relative);
        let read = || -> std::io::Result<Vec<u8>> {
            let mut file = self.open_regular(&path)?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok(bytes)
        };
        read().map_err(|e| Error::io(&path, e))
    }

    /// The size in bytes of the regular file at `relative`; `None` when there is
    /// none (in a private store, a link counts as none).
    pub fn file_len(&self, relative: &str) -> Option<u64> {
        let path = self.path(relative);
        let meta = match self.visibility {
            Visibility::Public => fs::metadata(&path),
            Visibility::Private => fs::symlink_metadata(&path),
        };
        meta.ok().filter(|m| m.is_file()).map(|m| m.len())
    }

    /// Writes `bytes` to `relative` atomically ([`write_atomic`], temp file in
    /// `tmp/`), making the fan-out directory first if needed.
    ///
    /// # Errors
    /// [`Error::Io`] naming the target when any step fails (the temp file is
    /// then removed). `ENOSPC` shows as the source's raw OS error.
    pub fn write(&self, relative: &str, bytes: &[u8], durability: Durability) -> Result<()> {
        let path = self.path(relative);
        if self.visibility == Visibility::Private {
            if let Some(parent) = path.parent() {
                let made = fs::DirBuilder::new().recursive(true).mode(0o700).create(parent);
                made.map_err(|e| Error::io(parent, e))?;
            }
        }
        write_atomic(&path, bytes, &self.path(layout::TMP_DIR), durability).map_err(|e| Error::io(&path, e))
    }

    /// Writes several files of the store's root directory as one step as far as
    /// a failure goes: every file is first written whole to `tmp/` and flushed,
    /// and only when all of them are there are they renamed into place, in the
    /// order given, and the directory flushed. A failed write (a full disk)
    /// therefore leaves all the old files as they were. (A crash between the
    /// renames can still leave a mix; a reader verifies the pair anyway.)
    ///
    /// # Errors
    /// [`Error::Io`] naming the file whose step failed; the temp files are removed.
    pub fn write_together(&self, files: &[(&str, &[u8])]) -> Result<()> {
        let tmp_dir = self.path(layout::TMP_DIR);
        let mut temps: Vec<(PathBuf, PathBuf)> = Vec::new();
        let remove_all = |temps: &[(PathBuf, PathBuf)]| {
            for (tmp, _) in temps {
                let _ = fs::remove_file(tmp);
            }
        };
        for (relative, bytes) in files {
            let target = self.path(relative);
            match write_temp(&target, bytes, &tmp_dir) {
                Ok(tmp) => temps.push((tmp, target)),
                Err(e) => {
                    remove_all(&temps);
                    return Err(Error::io(&target, e));
                }
            }
        }
        for (n, (tmp, target)) in temps.iter().enumerate() {
            if let Err(e) = fs::rename(tmp, target) {
                remove_all(&temps[n..]);
                return Err(Error::io(target, e));
            }
        }
        let mut dirs: Vec<&Path> = temps.iter().filter_map(|(_, t)| t.parent()).collect();
        dirs.dedup();
        for dir in dirs {
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
        }
        Ok(())
    }

    /// Deletes the file at `relative` (a link itself, never what it points to).
    /// A file that is not there is not an error.
    ///
    /// # Errors
    /// [`Error::Io`] when the file exists and cannot be deleted.
    pub fn remove(&self, relative: &str) -> Result<()> {
        let path = self.path(relative);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
            _ => Ok(()),
        }
    }

    /// Sets the modification time of the regular file at `relative` to now (a
    /// cache keeps its use order in mtimes).
    ///
    /// # Errors
    /// [`Error::Io`] when the file is missing, not regular, or its time cannot be set.
    pub fn touch(&self, relative: &str) -> Result<()> {
        let path = self.path(relative);
        self.open_regular(&path).and_then(|f| f.set_modified(SystemTime::now())).map_err(|e| Error::io(&path, e))
    }

    /// Deletes what is in `tmp/`: the leftovers of writes that a crash or a
    /// power cut interrupted. Only for a store that nothing else is writing.
    /// Links are deleted, not followed; directories are left alone.
    ///
    /// # Errors
    /// [`Error::Io`] when `tmp/` cannot be listed.
    pub fn clear_tmp(&self) -> Result<usize> {
        let tmp = self.path(layout::TMP_DIR);
        let entries = match fs::read_dir(&tmp) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(&tmp, e)),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            // DirEntry::file_type does not follow links.
            if entry.file_type().is_ok_and(|t| !t.is_dir()) && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Every regular file under `blocks/<aa>/`, with its size and mtime. Files
    /// whose names are not blocks are listed too (`id: None`), so that a
    /// publisher can count or delete them; a cache skips them.
    pub fn scan_blocks(&self) -> Scan {
        let mut scan = Scan::default();
        let blocks = self.path(layout::BLOCKS_DIR);
        let fanouts = match fs::read_dir(&blocks) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return scan,
            Err(e) => {
                scan.problems.push(Error::io(&blocks, e));
                return scan;
            }
        };
        for fanout in fanouts {
            let fanout = match fanout {
                Ok(fanout) => fanout,
                Err(e) => {
                    scan.problems.push(Error::io(&blocks, e));
                    continue;
                }
            };
            if !self.entry_meta(&fanout).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let dir = fanout.path();
            let files = match fs::read_dir(&dir) {
                Ok(files) => files,
                Err(e) => {
                    scan.problems.push(Error::io(&dir, e));
                    continue;
                }
            };
            let fanout_name = fanout.file_name();
            for file in files {
                let meta = file.and_then(|f| self.entry_meta(&f).map(|m| (f, m)));
                let (file, meta) = match meta {
                    Ok(found) => found,
                    Err(e) => {
                        scan.problems.push(Error::io(&dir, e));
                        continue;
                    }
                };
                if !meta.is_file() {
                    continue;
                }
                let name = file.file_name();
                let id = fanout_name.to_str().zip(name.to_str()).and_then(|(d, n)| layout::block_file_name(d, n));
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                scan.files.push(BlockFile { id, path: file.path(), len: meta.len(), modified });
            }
        }
        scan
    }

    /// Makes everything written to the store's filesystem so far durable, with
    /// one `syncfs` (cheaper than an `fsync` per file when a publisher writes
    /// thousands of blocks before the index that names them).
    ///
    /// # Errors
    /// [`Error::Io`] when the root cannot be opened or the sync fails.
    pub fn sync_filesystem(&self) -> Result<()> {
        use std::os::fd::AsRawFd;
        let dir = fs::File::open(&self.root).map_err(|e| Error::io(&self.root, e))?;
        nix::unistd::syncfs(dir.as_raw_fd())
            .map_err(|e| Error::io(&self.root, std::io::Error::from_raw_os_error(e as i32)))
    }

    /// Opens a file for reading; in a private store without following a link,
    /// and in both only a regular file (`O_NONBLOCK` so a FIFO cannot block the
    /// open; it has no effect on a regular file).
    fn open_regular(&self, path: &Path) -> std::io::Result<fs::File> {
        use nix::fcntl::OFlag;
        let mut flags = OFlag::O_NONBLOCK;
        if self.visibility == Visibility::Private {
            flags |= OFlag::O_NOFOLLOW;
        }
        let file = fs::OpenOptions::new().read(true).custom_flags(flags.bits()).open(path)?;
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"));
        }
        Ok(file)
    }

    /// An entry's metadata: of the link itself in a private store, of what it
    /// points to in a public one.
    fn entry_meta(&self, entry: &fs::DirEntry) -> std::io::Result<fs::Metadata> {
        match self.visibility {
            Visibility::Private => entry.metadata(),
            Visibility::Public => fs::metadata(entry.path()),
        }
    }
}

/// Makes `dir` and missing parents (mode 0700) if it is missing, then checks
/// that it is a real directory owned by this user, tightening its mode to 0700.
fn private_dir(dir: &Path) -> Result<()> {
    let not_private = |reason: String| Error::NotPrivate { path: dir.to_path_buf(), reason };
    // Recursive: "already there" is success, also on a read-only disk.
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| Error::io(dir, e))?;
    // Checked after the create, on what is there now: whoever made it.
    let meta = fs::symlink_metadata(dir).map_err(|e| Error::io(dir, e))?;
    if meta.file_type().is_symlink() {
        return Err(not_private("it is a symbolic link, which someone else may have planted".into()));
    }
    if !meta.is_dir() {
        return Err(not_private("it is not a directory".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(not_private(format!("it belongs to user {}, not to this user ({me})", meta.uid())));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        match fs::set_permissions(dir, fs::Permissions::from_mode(0o700)) {
            Ok(()) => {}
            // A read-only cache disk is used as it is ("cache less, never
            // fail"): nothing can be planted or deleted through it now, and
            // what is read from it is opened without links and verified.
            Err(e) if e.raw_os_error() == Some(nix::libc::EROFS) => {}
            Err(e) => return Err(not_private(format!("its mode is {mode:o} and cannot be set to 700 ({e})"))),
        }
    }
    Ok(())
}

/// Temp files get a number unique within the process (with the PID: across processes).
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `target` atomically: a new temp file in `tmp_dir` (on the
/// same filesystem as `target`), `fsync`, rename over `target`, and with
/// [`Durability::Named`] an `fsync` of `target`'s directory. Makes `target`'s
/// directory if it is missing. The temp file is created exclusively, so a file
/// or link already at its name is never written through.
///
/// # Errors
/// The first I/O error; the temp file is removed then, and `target` is as it was.
pub fn write_atomic(target: &Path, bytes: &[u8], tmp_dir: &Path, durability: Durability) -> std::io::Result<()> {
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    let tmp = write_temp(target, bytes, tmp_dir)?;
    let result = (|| {
        fs::rename(&tmp, target)?;
        if durability == Durability::Named {
            fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to a new temp file in `tmp_dir` named after `target`, and
/// flushes them; returns the temp file's path. Nothing is left on failure.
fn write_temp(target: &Path, bytes: &[u8], tmp_dir: &Path) -> std::io::Result<PathBuf> {
    let name = target.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let mut attempts = 0;
    let (tmp, mut file) = loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = tmp_dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => break (tmp, file),
            // A leftover of a crashed process that had this PID: take the next number.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 100 => attempts += 1,
            Err(e) => return Err(e),
        }
    };
    let result = file.write_all(bytes).and_then(|()| file.sync_data());
    drop(file);
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_lands_in_its_fanout_directory_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        for visibility in [Visibility::Public, Visibility::Private] {
            let root = dir.path().join(format!("{visibility:?}"));
            let store = LocalStore::create(&root, visibility).unwrap();
            let id = Sha1Name::of(b"block");
            store.write(&layout::block_path(&id), b"bytes", Durability::Contents).unwrap();
            store.write(layout::CATALOG, b"catalog", Durability::Named).unwrap();
            let expected = root.join("blocks").join(&id.to_hex()[..2]).join(id.to_hex());
            assert_eq!(fs::read(&expected).unwrap(), b"bytes");
            assert_eq!(store.read(&layout::block_path(&id)).unwrap(), b"bytes");
            assert_eq!(store.read(layout::CATALOG).unwrap(), b"catalog");
            assert_eq!(store.file_len(&layout::block_path(&id)), Some(5));
            assert!(names_in(&root.join("tmp")).is_empty(), "no temp file is left behind");
            // A second write replaces the file whole.
            store.write(layout::CATALOG, b"catalog 2", Durability::Named).unwrap();
            assert_eq!(store.read(layout::CATALOG).unwrap(), b"catalog 2");
            store.remove(layout::CATALOG).unwrap();
            store.remove(layout::CATALOG).unwrap();
            let gone = store.read(layout::CATALOG).unwrap_err();
            assert!(
                matches!(&gone, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
                "{gone}"
            );
        }
    }

    #[test]
    fn a_failed_write_removes_its_temp_file_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::create(dir.path(), Visibility::Public).unwrap();
        store.write("indexes/x.json", b"old", Durability::Named).unwrap();
        // The target's directory is a file: the rename cannot happen.
        fs::write(dir.path().join("profiles-file"), b"").unwrap();
        assert!(store.write("profiles-file/p.json", b"new", Durability::Named).is_err());
        assert!(names_in(&dir.path().join("tmp")).is_empty());
        assert_eq!(store.read("indexes/x.json").unwrap(), b"old");
    }

    #[test]
    fn write_atomic_beside_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("feed.xml");
        write_atomic(&target, b"<rss/>", dir.path(), Durability::Named).unwrap();
        assert_eq!(names_in(dir.path()), ["feed.xml"]);
        assert_eq!(fs::read(&target).unwrap(), b"<rss/>");
    }

    #[test]
    fn scan_finds_every_block_written_and_marks_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::create(dir.path(), Visibility::Private).unwrap();
        let ids: Vec<Sha1Name> = (0..20u32).map(|n| Sha1Name::of(&n.to_le_bytes())).collect();
        for (n, id) in ids.iter().enumerate() {
            store.write(&layout::block_path(id), &vec![1u8; n + 1], Durability::Contents).unwrap();
        }
        let fanout = dir.path().join("blocks").join(ids[0].fanout());
        fs::write(fanout.join("junk"), b"xyz").unwrap();
        let misplaced = ids.iter().find(|id| id.fanout() != ids[0].fanout()).unwrap();
        fs::write(fanout.join(misplaced.to_hex()), b"").unwrap();
        let scan = store.scan_blocks();
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        let mut found: Vec<(Sha1Name, u64)> = scan.files.iter().filter_map(|f| f.id.map(|id| (id, f.len))).collect();
        found.sort();
        let mut expected: Vec<(Sha1Name, u64)> = ids.iter().enumerate().map(|(n, id)| (*id, n as u64 + 1)).collect();
        expected.sort();
        assert_eq!(found, expected);
        assert_eq!(scan.files.iter().filter(|f| f.id.is_none()).count(), 2, "junk and the misplaced copy");
        assert_eq!(LocalStore::existing(&dir.path().join("none"), Visibility::Public).scan_blocks().files, vec![]);
    }

    #[test]
    fn a_private_store_follows_no_link_and_reads_only_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        fs::write(&secret, b"not the cache's").unwrap();
        let root = dir.path().join("cache");
        let store = LocalStore::create(&root, Visibility::Private).unwrap();
        let id = Sha1Name::of(b"b");
        let block = layout::block_path(&id);
        fs::create_dir_all(root.join(&block).parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&secret, root.join(&block)).unwrap();
        std::os::unix::fs::symlink(&secret, root.join(layout::CATALOG)).unwrap();
        assert!(store.read(&block).is_err(), "a link planted as a block is not read");
        assert!(store.read(layout::CATALOG).is_err());
        assert!(store.touch(&block).is_err());
        assert_eq!(store.file_len(&block), None);
        assert!(store.scan_blocks().files.is_empty(), "a link is not a block");
        nix::unistd::mkfifo(&root.join(layout::index_path(&id)), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(store.read(&layout::index_path(&id)).is_err(), "a FIFO is refused at once, not waited on");
        // Writing over the link replaces the link, not the file it points to.
        store.write(&block, b"block", Durability::Contents).unwrap();
        assert_eq!(store.read(&block).unwrap(), b"block");
        assert_eq!(fs::read(&secret).unwrap(), b"not the cache's");
        // The leftovers in tmp/ go; a link there goes, not what it points to.
        fs::write(root.join("tmp/leftover"), b"x").unwrap();
        std::os::unix::fs::symlink(&secret, root.join("tmp/link")).unwrap();
        assert_eq!(store.clear_tmp().unwrap(), 2);
        assert!(secret.exists());
    }

    #[test]
    fn a_private_store_is_0700_and_refuses_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/cache");
        LocalStore::create(&root, Visibility::Private).unwrap();
        for d in [root.clone(), root.join("tmp"), root.join("blocks")] {
            assert_eq!(fs::metadata(&d).unwrap().mode() & 0o777, 0o700, "{}", d.display());
        }
        // A cache made before by something with a looser umask is tightened.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        LocalStore::create(&root, Visibility::Private).unwrap();
        assert_eq!(fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
        // tmp/ pointing at someone's directory: refused, and nothing there is touched.
        let victim = dir.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::write(victim.join("notes.txt"), b"precious").unwrap();
        let planted = dir.path().join("planted");
        fs::create_dir(&planted).unwrap();
        std::os::unix::fs::symlink(&victim, planted.join("tmp")).unwrap();
        let err = LocalStore::create(&planted, Visibility::Private).unwrap_err();
        assert!(matches!(err, Error::NotPrivate { .. }), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(victim.join("notes.txt").exists());
        // The cache directory itself a link: refused too.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        assert!(matches!(LocalStore::create(&link, Visibility::Private), Err(Error::NotPrivate { .. })));
        // A public store follows links, as a web server would.
        LocalStore::create(&planted, Visibility::Public).unwrap();
    }
}
