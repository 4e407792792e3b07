//! `image-build gc`: keeps the newest N snapshots of each distribution and
//! deletes the indexes, profiles and blocks that no kept snapshot uses. The
//! new catalog is published first, so a client never sees a catalog that
//! names a deleted file.

use std::collections::HashSet;
use std::path::Path;

use circular_format::index::Index;
use circular_format::layout::{self, INDEXES_DIR, PROFILES_DIR};
use circular_format::signing;
use circular_format::units::format_size;

use crate::error::{BuildError, Result};
use crate::store_dir::StoreDir;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub snapshots_dropped: usize,
    pub files_deleted: u64,
    pub bytes_freed: u64,
}

pub fn gc(root: &Path, keep: usize, key_path: &Path, valid_days: u32) -> Result<GcReport> {
    if keep == 0 {
        return Err(BuildError::Usage("--keep must be at least 1 (gc never empties a distribution)".into()));
    }
    let key = signing::read_secret(key_path)?;
    let store = StoreDir::open_for_writing(root)?;
    let mut catalog = store.read_catalog(&key)?;
    let mut report = GcReport::default();
    for dist in &mut catalog.distributions {
        if dist.snapshots.len() > keep {
            for s in dist.snapshots.drain(keep..) {
                println!("dropping {}/{}", dist.name, s.date);
                report.snapshots_dropped += 1;
            }
        }
    }
    // Everything the kept snapshots need; an unreadable index stops gc, since
    // deleting blocks without knowing what it names could break a snapshot.
    let mut live_blocks = HashSet::new();
    let mut live_files = HashSet::new();
    for (dist, snap) in catalog.snapshots() {
        let path = store.index_file(&snap.index);
        let bytes = std::fs::read(&path).map_err(|e| BuildError::io(&path, e))?;
        let index = Index::parse(&bytes, &format!("{}/{}", dist.name, snap.date))?;
        live_blocks.extend(index.blocks.into_iter().flatten());
        live_files.insert(snap.index);
        live_files.extend(snap.profile);
    }
    if report.snapshots_dropped > 0 {
        store.write_catalog(&mut catalog, &key, valid_days)?;
    }
    // Indexes and profiles are named alike (`<sha1>.json`); a file of another
    // name is not one, and goes too.
    for dir in [INDEXES_DIR, PROFILES_DIR] {
        for entry in read_dir(&store.local().path(dir)) {
            let live =
                entry.file_name().to_str().and_then(layout::json_file_name).is_some_and(|id| live_files.contains(&id));
            if !live {
                delete(&entry.path(), &mut report);
            }
        }
    }
    let scan = store.local().scan_blocks();
    for problem in &scan.problems {
        eprintln!("gc: {problem}; the blocks there were left alone");
    }
    for file in scan.files {
        if !file.id.is_some_and(|id| live_blocks.contains(&id)) {
            delete(&file.path, &mut report);
        }
    }
    println!(
        "gc: {} dropped, {} deleted, {} freed",
        crate::list::counted(report.snapshots_dropped as u64, "snapshot"),
        crate::list::counted(report.files_deleted, "file"),
        format_size(report.bytes_freed)
    );
    Ok(report)
}

fn read_dir(dir: &Path) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(dir).map(|entries| entries.flatten().collect()).unwrap_or_default()
}

fn delete(path: &Path, report: &mut GcReport) {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    match std::fs::remove_file(path) {
        Ok(()) => {
            report.files_deleted += 1;
            report.bytes_freed += size;
        }
        Err(e) => eprintln!("gc: could not delete {}: {e}", path.display()),
    }
}
