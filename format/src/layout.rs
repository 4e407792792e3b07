//! Where each file lives in a store, written once. Paths are relative to the
//! store's root, use `/`, and are the same on a web server, in a publisher's
//! directory and in the client's cache (a full cache is itself a store):
//!
//! ```text
//! catalog.json            CATALOG
//! catalog.json.sig        CATALOG_SIG
//! indexes/<sha1>.json     index_path(id)
//! blocks/<aa>/<sha1>      block_path(id), <aa> = the first two hex digits
//! profiles/<sha1>.json    profile_path(id)
//! feed.xml                FEED (for people; clients never read it)
//! tmp/                    TMP_DIR (a local store's writes in progress; never published)
//! ```
//!
//! A client builds every path itself from a name; it never follows a path a
//! server gives it. So nothing here takes a path apart except
//! [`json_file_name`], which reads back names this module wrote.

use crate::hash::Sha1Name;

/// The signed catalog.
pub const CATALOG: &str = "catalog.json";
/// The catalog's detached signature.
pub const CATALOG_SIG: &str = "catalog.json.sig";
/// The RSS feed of the snapshots, for people (`image-build feed`).
pub const FEED: &str = "feed.xml";
/// Directory of the block files, fanned out by the first two hex digits.
pub const BLOCKS_DIR: &str = "blocks";
/// Directory of the indexes.
pub const INDEXES_DIR: &str = "indexes";
/// Directory of the boot profiles.
pub const PROFILES_DIR: &str = "profiles";
/// A local store's work area: temp files of writes in progress, the
/// publisher's lock. Clients never read it from a server.
pub const TMP_DIR: &str = "tmp";
/// The directories a local store makes when it is created.
pub const DIRS: [&str; 4] = [BLOCKS_DIR, INDEXES_DIR, PROFILES_DIR, TMP_DIR];

/// `blocks/<aa>/<sha1>`: the file of block `id`.
pub fn block_path(id: &Sha1Name) -> String {
    format!("{BLOCKS_DIR}/{}/{}", id.fanout(), id.to_hex())
}

/// `indexes/<sha1>.json`: the index named `id`.
pub fn index_path(id: &Sha1Name) -> String {
    format!("{INDEXES_DIR}/{}", json_name(id))
}

/// `profiles/<sha1>.json`: the boot profile named `id`.
pub fn profile_path(id: &Sha1Name) -> String {
    format!("{PROFILES_DIR}/{}", json_name(id))
}

/// `<sha1>.json`: the file name of an index or a profile, inside its directory.
pub fn json_name(id: &Sha1Name) -> String {
    format!("{}.json", id.to_hex())
}

/// The name in a file name that [`json_name`] wrote; `None` for any other name.
pub fn json_file_name(file_name: &str) -> Option<Sha1Name> {
    file_name.strip_suffix(".json")?.parse().ok()
}

/// The block a file in `blocks/<fanout>/` holds, when its name is a SHA-1 name
/// and it sits in the right fan-out directory; `None` for anything else.
pub fn block_file_name(fanout: &str, file_name: &str) -> Option<Sha1Name> {
    let id: Sha1Name = file_name.parse().ok()?;
    (id.fanout() == fanout).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_the_documented_one() {
        let id: Sha1Name = "a9993e364706816aba3e25717850c26c9cd0d89d".parse().unwrap();
        assert_eq!(block_path(&id), "blocks/a9/a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(index_path(&id), "indexes/a9993e364706816aba3e25717850c26c9cd0d89d.json");
        assert_eq!(profile_path(&id), "profiles/a9993e364706816aba3e25717850c26c9cd0d89d.json");
        assert_eq!((CATALOG, CATALOG_SIG, FEED), ("catalog.json", "catalog.json.sig", "feed.xml"));
    }

    #[test]
    fn names_read_back_only_from_what_was_written() {
        let id = Sha1Name::of(b"x");
        assert_eq!(json_file_name(&json_name(&id)), Some(id));
        assert_eq!(json_file_name(&id.to_hex()), None);
        assert_eq!(json_file_name("catalog.json"), None);
        assert_eq!(block_file_name(&id.fanout(), &id.to_hex()), Some(id));
        let wrong_fanout = if id.fanout() == "00" { "01" } else { "00" };
        assert_eq!(block_file_name(wrong_fanout, &id.to_hex()), None, "a block in the wrong fan-out is not that block");
        assert_eq!(block_file_name(&id.fanout(), "one"), None);
    }
}
