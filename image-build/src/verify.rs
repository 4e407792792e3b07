//! `image-build verify`: checks a store the way a client would, all of it.
//! The catalog's signature, every index the catalog names (present, hashing to
//! its name, well formed, matching the catalog's size), and every block an
//! index names (present, decoding to its name). It lists each problem found.

use std::collections::HashSet;
use std::path::Path;

use circular_format::block;
use circular_format::catalog::Catalog;
use circular_format::index::Index;
use circular_format::layout::{CATALOG, CATALOG_SIG};
use circular_format::signing;
use circular_format::Sha1Name;
use time::OffsetDateTime;

use crate::error::{BuildError, Result};
use crate::progress::Progress;
use crate::store_dir::StoreDir;

/// Problems found; empty means the store is sound.
pub fn verify(store_root: &Path, public: &Path) -> Result<Vec<String>> {
    let store = StoreDir::open_for_reading(store_root)?;
    let keys = signing::read_public(public)?;
    let mut problems = Vec::new();
    let bytes = std::fs::read(store_root.join(CATALOG)).map_err(|e| BuildError::io(store_root, e))?;
    let sig = std::fs::read(store_root.join(CATALOG_SIG)).ok();
    let catalog = match signing::verify_catalog(&bytes, sig.as_deref(), &keys, OffsetDateTime::now_utc()) {
        Ok(catalog) => catalog,
        Err(circular_format::Error::Expired { expires, .. }) => {
            problems.push(format!("catalog.json expired at {expires}: re-sign it with `image-build sign`"));
            Catalog::parse(&bytes)?
        }
        Err(e) => {
            problems.push(format!("catalog.json: {e}"));
            return Ok(problems);
        }
    };
    let mut blocks: Vec<(Sha1Name, usize)> = Vec::new();
    let mut seen = HashSet::new();
    for (dist, snap) in catalog.snapshots() {
        let name = format!("{}/{}", dist.name, snap.date);
        let path = store.index_file(&snap.index);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                problems.push(format!("{name}: index {} is missing ({e})", snap.index));
                continue;
            }
        };
        if Sha1Name::of(&bytes) != snap.index {
            problems.push(format!("{name}: index {} does not hash to its name (changed or truncated)", snap.index));
            continue;
        }
        let index = match Index::parse(&bytes, &path.display().to_string()) {
            Ok(index) => index,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        if index.image_size != snap.image_size {
            problems
                .push(format!("{name}: the catalog says {} bytes, the index {}", snap.image_size, index.image_size));
        }
        for (n, id) in index.blocks.iter().enumerate() {
            if let Some(id) = id {
                if seen.insert(*id) {
                    blocks.push((*id, index.block_len(n)));
                }
            }
        }
    }
    problems.extend(check_blocks(&store, &blocks));
    Ok(problems)
}

/// Reads and decodes every block, on all cores.
fn check_blocks(store: &StoreDir, blocks: &[(Sha1Name, usize)]) -> Vec<String> {
    let progress = Progress::count("verifying", blocks.len() as u64);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = blocks.len().div_ceil(threads).max(1);
    let problems = std::thread::scope(|scope| {
        let handles: Vec<_> = blocks
            .chunks(chunk)
            .map(|part| {
                let progress = &progress;
                scope.spawn(move || {
                    let mut problems = Vec::new();
                    for (id, len) in part {
                        let path = store.block_file(id);
                        match std::fs::read(&path) {
                            Err(e) => problems.push(format!("block {id} is missing ({e})")),
                            Ok(file) => match block::decode(id, &file, *len) {
                                Ok(data) if data.len() == *len => {}
                                Ok(data) => problems
                                    .push(format!("block {id} holds {} bytes, its index needs {len}", data.len())),
                                Err(e) => problems.push(e.to_string()),
                            },
                        }
                        progress.advance(1);
                    }
                    problems
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec!["a verifying thread failed".into()]))
            .collect()
    });
    progress.finish();
    problems
}
