//! The FUSE filesystem: a read-only tree built from the verified catalog.
//!
//! ```text
//! /status.json                 live figures (see `status`)
//! /catalog.json                the verified catalog
//! /<distro>/<date>.img         one image per snapshot, exactly image_size bytes
//! /<distro>/latest.img         symlink to the newest <date>.img
//! ```
//!
//! `latest.img` is a symlink, not a copy, so that a qcow2 overlay can record
//! the dated file as its backing file and never see its base change under it
//! when a new week is published. Reads run on a pool of threads, so the kernel
//! can have many in flight while the loader fetches their blocks in parallel.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use circular_format::index::Index;
use circular_format::layout::CATALOG;
use circular_format::Sha1Name;
use fuser::consts::{FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE};
use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, Request,
};
use libc::{EISDIR, ENOENT, ENOTDIR, EROFS};

use crate::error::{Error, ErrorReport};
use crate::fill::Filler;
use crate::loader::Loader;
use crate::pool::Pool;
use crate::prefetch::Prefetcher;
use crate::reader::read_image;
use crate::status::STATUS_FILE;
use crate::trace::Trace;

/// The catalog does not change while mounted, so the kernel may keep attributes.
const TTL: Duration = Duration::from_secs(3600);
/// Largest read the kernel is asked to send at once.
const MAX_READ: u32 = 1 << 20;

enum Kind {
    Dir,
    Image { dist: usize, snap: usize },
    Latest { target: OsString },
    Status,
    Catalog,
}

struct Node {
    name: OsString,
    parent: u64,
    kind: Kind,
    children: Vec<u64>,
    mtime: SystemTime,
}

enum Handle {
    Image { index_id: Sha1Name, index: Arc<Index>, last_end: AtomicU64 },
    Text(Arc<Vec<u8>>),
}

/// How the filesystem reads.
pub struct Options {
    /// Threads that serve reads (each may wait on the network).
    pub readers: usize,
    /// Prefetch a snapshot's boot profile when its image is opened.
    pub prefetch: bool,
    /// Where to record which blocks readers touch (`--trace`), if anywhere.
    pub trace: Option<Arc<Trace>>,
    /// Fill the rest of an opened snapshot into the cache once reads are quiet
    /// ([`crate::fill`]), after this long without reads; `None`: no fill.
    pub fill_after: Option<std::time::Duration>,
}

/// The last problem a read or an open met, for `status.json` (`last_error`).
#[derive(Default)]
struct LastError(Mutex<Option<ErrorReport>>);

impl LastError {
    fn note(&self, e: &Error) {
        *lock(&self.0) = Some(e.report());
    }
}

/// The FUSE filesystem: `status.json`, `catalog.json`, and `<distribution>/<date>.img` with a
/// `latest.img` link per distribution, all read-only, served from the [`Loader`].
pub struct BlockFs {
    nodes: Vec<Node>,
    problems: Arc<LastError>,
    loader: Arc<Loader>,
    pool: Pool,
    handles: Arc<Mutex<HashMap<u64, Arc<Handle>>>>,
    next_fh: u64,
    options: Options,
    prefetcher: Arc<Prefetcher>,
    filler: Option<Arc<Filler>>,
    uid: u32,
    gid: u32,
}

impl BlockFs {
    /// The filesystem over `loader`'s verified store, with `options`.
    ///
    /// # Errors
    /// When the reader threads cannot be started.
    pub fn new(loader: Arc<Loader>, options: Options) -> std::io::Result<BlockFs> {
        let catalog = loader.store().catalog().clone();
        let root_time = SystemTime::from(catalog.generated);
        let mut nodes = vec![Node {
            name: OsString::from("/"),
            parent: 1,
            kind: Kind::Dir,
            children: Vec::new(),
            mtime: root_time,
        }];
        let add = |nodes: &mut Vec<Node>, parent: u64, name: String, kind: Kind, mtime| {
            nodes.push(Node { name: name.into(), parent, kind, children: Vec::new(), mtime });
            let ino = nodes.len() as u64;
            nodes[(parent - 1) as usize].children.push(ino);
            ino
        };
        add(&mut nodes, 1, STATUS_FILE.into(), Kind::Status, root_time);
        add(&mut nodes, 1, CATALOG.into(), Kind::Catalog, root_time);
        for (d, dist) in catalog.distributions.iter().enumerate() {
            let dir = add(&mut nodes, 1, dist.name.clone(), Kind::Dir, root_time);
            if let Some(latest) = dist.latest() {
                let target = OsString::from(format!("{}.img", latest.date));
                add(&mut nodes, dir, "latest.img".into(), Kind::Latest { target }, date_time(&latest.date));
            }
            for (s, snap) in dist.snapshots.iter().enumerate() {
                let kind = Kind::Image { dist: d, snap: s };
                add(&mut nodes, dir, format!("{}.img", snap.date), kind, date_time(&snap.date));
            }
        }
        Ok(BlockFs {
            nodes,
            problems: Arc::new(LastError::default()),
            loader,
            pool: Pool::new("read", options.readers)?,
            handles: Arc::new(Mutex::new(HashMap::new())),
            next_fh: 1,
            filler: options.fill_after.map(|quiet| Arc::new(Filler::new(quiet))),
            options,
            prefetcher: Arc::new(Prefetcher::default()),

            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        })
    }

    fn node(&self, ino: u64) -> Option<&Node> {
        ino.checked_sub(1).and_then(|i| self.nodes.get(i as usize))
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.node(ino)?;
        let catalog = self.loader.store().catalog();
        let (kind, perm, size) = match &node.kind {
            Kind::Dir => (FileType::Directory, 0o555, 0),
            Kind::Image { dist, snap } => {
                let size = catalog.distributions[*dist].snapshots[*snap].image_size;
                (FileType::RegularFile, 0o444, size)
            }
            Kind::Latest { target } => (FileType::Symlink, 0o777, target.len() as u64),
            // Generated at open, like a file in /proc: its size is not known before.
            Kind::Status => (FileType::RegularFile, 0o444, 0),
            Kind::Catalog => (FileType::RegularFile, 0o444, self.loader.store().catalog_bytes().len() as u64),
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn status_bytes(&self) -> Vec<u8> {
        let mut status = self.loader.store().status();
        status.memory_hits = self.loader.memory_hits();
        status.in_flight = self.loader.in_flight();
        let ahead = self.loader.ahead();
        status.wasted_blocks = ahead.wasted_blocks;
        status.wasted_bytes = ahead.wasted_bytes;
        status.unread_ahead_blocks = ahead.unread_blocks;
        status.unread_ahead_bytes = ahead.unread_bytes;
        status.readahead_window = ahead.window_blocks;
        status.prefetch = self.prefetcher.status(&self.loader);
        if let Some(filler) = &self.filler {
            status.fill = filler.status(&self.loader);
        }
        (status.fill_bytes, status.fill_blocks) = self.loader.fill_fetched();
        status.last_error = lock(&self.problems.0).clone();
        if let Some(panic) = self.pool.last_panic() {
            // A bug outranks an ordinary failure: it is what to report.
            status.last_error = Some(Error::Internal { what: "a read".into(), detail: panic }.report());
        }
        status.to_json()
    }

    fn add_handle(&mut self, handle: Handle) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        lock(&self.handles).insert(fh, Arc::new(handle));
        fh
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Midnight UTC of a snapshot date, as its file's mtime.
fn date_time(date: &str) -> SystemTime {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(date, format).map(|d| SystemTime::from(d.midnight().assume_utc())).unwrap_or(UNIX_EPOCH)
}

impl Filesystem for BlockFs {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        // Bigger reads mean fewer round trips through the kernel; both calls
        // clamp to what the kernel allows.
        if let Err(max) = config.set_max_readahead(MAX_READ) {
            let _ = config.set_max_readahead(max);
        }
        if let Err(max) = config.set_max_write(MAX_READ) {
            let _ = config.set_max_write(max);
        }
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let Some(dir) = self.node(parent) else {
            return reply.error(ENOENT);
        };
        let found = dir.children.iter().copied().find(|&ino| self.node(ino).is_some_and(|n| n.name == name));
        match found.and_then(|ino| self.attr(ino)) {
            Some(attr) => reply.entry(&TTL, &attr, 0),
            None => reply.error(ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(ENOENT),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.node(ino).map(|n| &n.kind) {
            Some(Kind::Latest { target }) => reply.data(target.as_encoded_bytes()),
            _ => reply.error(libc::EINVAL),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(EROFS);
        }
        let Some(node) = self.node(ino) else {
            return reply.error(ENOENT);
        };
        match &node.kind {
            Kind::Dir => reply.error(EISDIR),
            Kind::Latest { .. } => reply.error(libc::ELOOP),
            Kind::Status => {
                let fh = self.add_handle(Handle::Text(Arc::new(self.status_bytes())));
                reply.opened(fh, FOPEN_DIRECT_IO);
            }
            Kind::Catalog => {
                let bytes = Arc::new(self.loader.store().catalog_bytes().to_vec());
                let fh = self.add_handle(Handle::Text(bytes));
                reply.opened(fh, FOPEN_KEEP_CACHE);
            }
            Kind::Image { dist, snap } => {
                let catalog = self.loader.store().catalog();
                let dist = &catalog.distributions[*dist];
                let snap = dist.snapshots[*snap].clone();
                let name = format!("{}/{}.img", dist.name, snap.date);
                let fh = self.next_fh;
                self.next_fh += 1;
                let handles = self.handles.clone();
                let loader = self.loader.clone();
                let prefetcher = self.options.prefetch.then(|| self.prefetcher.clone());
                let filler = self.filler.clone();
                let distribution = dist.name.clone();
                let problems = self.problems.clone();
                // The index may have to come over the network: not on this thread.
                self.pool.execute(move || match loader.store().index(&snap.index) {
                    Ok(index) if index.image_size == snap.image_size => {
                        let handle = Handle::Image {
                            index_id: snap.index,
                            index: index.clone(),
                            last_end: AtomicU64::new(u64::MAX),
                        };
                        lock(&handles).insert(fh, Arc::new(handle));
                        reply.opened(fh, FOPEN_KEEP_CACHE);
                        if let (Some(prefetcher), Some(profile)) = (prefetcher, snap.profile) {
                            match loader.store().profile(&profile) {
                                Ok(p) => prefetcher.start(&loader, &distribution, &snap.date, p.blocks_in(&index)),
                                Err(e) => log::warn!("{name}: no prefetch: {e}"),
                            }
                        }
                        if let Some(filler) = filler {
                            filler.start(&loader, &distribution, &snap.date, &index);
                        }
                    }
                    Ok(index) => {
                        let e = Error::invalid(
                            name,
                            format!(
                                "the catalog says {} bytes, its index {}; the store is inconsistent: publish it again",
                                snap.image_size, index.image_size
                            ),
                        );
                        log::error!("{e}");
                        problems.note(&e);
                        reply.error(e.errno());
                    }
                    Err(e) => {
                        log::error!("{name}: cannot open: {e}");
                        problems.note(&e);
                        reply.error(e.errno());
                    }
                });
            }
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Some(handle) = lock(&self.handles).get(&fh).cloned() else {
            return reply.error(libc::EBADF);
        };
        let offset = offset.max(0) as u64;
        match &*handle {
            Handle::Text(bytes) => {
                let start = (offset as usize).min(bytes.len());
                let end = (start + size as usize).min(bytes.len());
                reply.data(&bytes[start..end]);
            }
            Handle::Image { .. } => {
                let loader = self.loader.clone();
                let trace = self.options.trace.clone();
                let problems = self.problems.clone();
                self.pool.execute(move || {
                    let Handle::Image { index_id, index, last_end } = &*handle else {
                        return reply.error(libc::EIO);
                    };
                    if let Some(trace) = &trace {
                        record_reads(trace, index_id, index, offset, size);
                    }
                    let previous = last_end.swap(offset + u64::from(size), Ordering::Relaxed);
                    let sequential = previous != u64::MAX && offset.abs_diff(previous) <= 2 * u64::from(MAX_READ);
                    match read_image(&loader, index, offset, size as usize, sequential) {
                        Ok(data) => reply.data(data.as_slice()),
                        Err(e) => {
                            log::error!("read at {offset}: {e}");
                            problems.note(&e);
                            reply.error(e.errno())
                        }
                    }
                });
            }
        }
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh);
        reply.ok();
    }

    fn readdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let Some(node) = self.node(ino) else {
            return reply.error(ENOENT);
        };
        if !matches!(node.kind, Kind::Dir) {
            return reply.error(ENOTDIR);
        }
        let mut entries = vec![
            (ino, FileType::Directory, OsString::from(".")),
            (node.parent, FileType::Directory, OsString::from("..")),
        ];
        for &child in &node.children {
            if let (Some(n), Some(attr)) = (self.node(child), self.attr(child)) {
                entries.push((child, attr.kind, n.name.clone()));
            }
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(ino, (i + 1) as i64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let total: u64 = self.loader.store().catalog().snapshots().map(|(_, s)| s.image_size.div_ceil(4096)).sum();
        reply.statfs(total, 0, 0, self.nodes.len() as u64, 0, 4096, 255, 4096);
    }
}

/// Records the blocks a read touches, for boot profiles.
fn record_reads(trace: &Trace, index_id: &Sha1Name, index: &Index, offset: u64, size: u32) {
    if offset >= index.image_size || size == 0 {
        return;
    }
    let block_size = u64::from(index.block_size);
    let last = (offset + u64::from(size)).min(index.image_size) - 1;
    for n in offset / block_size..=last / block_size {
        trace.record(index_id, n as u32);
    }
}
