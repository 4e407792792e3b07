//! `image-build list`: the catalog as a table for people, newest snapshot first.
//!
//! It reads the publisher's own store, so it parses `catalog.json` and checks its
//! structure but not its signature or expiry (`verify` does that): a publisher
//! wants to see an expired catalog too.

use std::fs;
use std::io::Write;
use std::path::Path;

use circular_format::catalog::{Catalog, Distribution, Snapshot, Source};
use circular_format::layout::CATALOG;
use circular_format::local::{LocalStore, Visibility};
use circular_format::units::format_size;

use crate::error::{BuildError, Result};
use crate::store_dir::StoreDir;

/// Reads and structurally checks a store's catalog (unsigned use: see the module doc).
pub fn read_catalog(store: &Path) -> Result<Catalog> {
    let dir = StoreDir::open_for_reading(store)?;
    let path = dir.root().join(CATALOG);
    let bytes = fs::read(&path).map_err(|e| BuildError::io(&path, e))?;
    Ok(Catalog::parse(&bytes)?)
}

/// Every snapshot of every distribution, newest first. Snapshots of the same
/// day are ordered by distribution name, so the order never depends on the
/// catalog's distribution order.
pub fn newest_first(catalog: &Catalog) -> Vec<(&Distribution, &Snapshot)> {
    let mut all: Vec<_> = catalog.snapshots().collect();
    // Dates are validated YYYY-MM-DD, so text order is date order.
    all.sort_by(|(da, sa), (db, sb)| sb.date.cmp(&sa.date).then_with(|| da.name.cmp(&db.name)));
    all
}

/// Prints the table for `image-build list` (or, with `json`, [`render_json`]).
pub fn run(store: &Path, json: bool, out: &mut impl Write) -> Result<()> {
    let catalog = read_catalog(store)?;
    let on_disk = blocks_on_disk(store)?;
    let text = if json { render_json(&catalog, on_disk) } else { render(&catalog, on_disk) };
    out.write_all(text.as_bytes()).map_err(|e| BuildError::io(Path::new("<stdout>"), e))
}

/// `image-build list --json`: the same rows as the table, for scripts, one JSON object:
///
/// ```text
/// { "generated": RFC 3339, "expires": RFC 3339, "blocks_on_disk": bytes,
///   "distributions": [ { "name", "title", "arch" } ... ]          (catalog order)
///   "snapshots": [ { "distribution", "title", "date", "image_size", "stored_bytes",
///                    "index", "profile" (null if none), "notes",
///                    "memory_mib", "cpus", "firmware", "media" ("disk" or "cdrom"),
///                    "login" (null if none), "source" (null, or { "url" (null if none),
///                    "sha256" }) } ... ] }                              (newest first)
/// ```
pub fn render_json(catalog: &Catalog, blocks_on_disk: u64) -> String {
    let rfc3339 =
        |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let snapshots: Vec<_> = newest_first(catalog)
        .into_iter()
        .map(|(d, s)| {
            serde_json::json!({
                "distribution": d.name,
                "title": d.title,
                "date": s.date,
                "image_size": s.image_size,
                "stored_bytes": s.stored_bytes,
                "index": s.index.to_string(),
                "profile": s.profile.map(|p| p.to_string()),
                "notes": s.notes,
                "memory_mib": s.boot.memory_mib,
                "cpus": s.boot.cpus,
                "firmware": s.boot.firmware,
                "media": s.media,
                "login": s.login,
                "source": s.source,
            })
        })
        .collect();
    let distributions: Vec<_> = catalog
        .distributions
        .iter()
        .map(|d| serde_json::json!({ "name": d.name, "title": d.title, "arch": d.arch }))
        .collect();
    let doc = serde_json::json!({
        "generated": rfc3339(catalog.generated),
        "expires": rfc3339(catalog.expires),
        "blocks_on_disk": blocks_on_disk,
        "distributions": distributions,
        "snapshots": snapshots,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

const HEADER: [&str; 8] = ["DISTRIBUTION", "TITLE", "DATE", "IMAGE", "STORED", "MEDIA", "PROFILE", "NOTES"];

/// The table, plus a footer with what the blocks really take on disk: a
/// snapshot's stored size counts every block it uses, also those it shares.
/// Under it, one line per snapshot that has a login hint or a recorded source.
pub fn render(catalog: &Catalog, blocks_on_disk: u64) -> String {
    let rows: Vec<[String; 8]> = newest_first(catalog)
        .into_iter()
        .map(|(d, s)| {
            [
                one_line(&d.name),
                one_line(&d.title),
                s.date.clone(),
                format_size(s.image_size),
                format_size(s.stored_bytes),
                s.media.as_str().to_string(),
                if s.profile.is_some() { "yes" } else { "no" }.to_string(),
                one_line(&s.notes),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no snapshots in this store\n".to_string();
    }
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header = HEADER.map(str::to_string);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell); // the last column is not padded
            } else {
                // Sizes read better right-aligned, so their units line up.
                let pad = widths[i] - cell.chars().count();
                let (left, right) = if i == 3 || i == 4 { (pad, 0) } else { (0, pad) };
                line.push_str(&" ".repeat(left));
                line.push_str(cell);
                line.push_str(&" ".repeat(right + 2));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push_str(&format!(
        "{} of {}; the blocks take {} on disk (shared blocks counted once)\n",
        counted(rows.len() as u64, "snapshot"),
        counted(catalog.distributions.iter().filter(|d| !d.snapshots.is_empty()).count() as u64, "distribution"),
        format_size(blocks_on_disk)
    ));
    for (d, s) in newest_first(catalog) {
        if let Some(login) = &s.login {
            text.push_str(&format!("{}/{}: login: {}\n", d.name, s.date, one_line(login)));
        }
        if let Some(source) = &s.source {
            text.push_str(&format!("{}/{}: source: {}\n", d.name, s.date, one_line(&provenance(source))));
        }
    }
    text
}

/// What a recorded source proves, in words, for `list` and `feed`.
pub fn provenance(source: &Source) -> String {
    match &source.url {
        Some(url) => format!("bit-identical to {url} (SHA-256 {})", source.sha256),
        None => format!("bit-identical to the file whose SHA-256 is {}", source.sha256),
    }
}

/// Control characters (a newline in notes, say) would break the table's rows.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Total size of the files under `<store>/blocks/<aa>/` (0 when there are none):
/// what the blocks really take, whatever their names.
fn blocks_on_disk(store: &Path) -> Result<u64> {
    let scan = LocalStore::existing(store, Visibility::Public).scan_blocks();
    if let Some(problem) = scan.problems.into_iter().next() {
        return Err(problem.into());
    }
    Ok(scan.files.iter().map(|f| f.len).sum())
}

/// "1 snapshot", "2 snapshots": a count with its noun (English plural by -s).
pub(crate) fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use circular_format::catalog::BootSettings;
    use circular_format::Sha1Name;
    use time::macros::datetime;

    pub fn snapshot(date: &str, hex_digit: char, notes: &str) -> Snapshot {
        let hex: String = std::iter::repeat_n(hex_digit, 40).collect();
        Snapshot {
            date: date.to_string(),
            index: hex.parse::<Sha1Name>().expect("valid hex"),
            image_size: 2 << 30,
            stored_bytes: 150 << 20,
            profile: None,
            boot: BootSettings::default(),
            notes: notes.to_string(),
            media: Default::default(),
            login: None,
            source: None,
        }
    }

    /// Two distributions whose snapshots interleave in time.
    pub fn catalog() -> Catalog {
        let mut c = Catalog::new(datetime!(2026-11-22 06:35:09 UTC), datetime!(2026-12-22 06:35:09 UTC));
        c.add_snapshot("tiny", Some("Tiny guest"), snapshot("2026-11-15", 'a', "first"));
        c.add_snapshot("tiny", None, snapshot("2026-11-22", 'b', "second"));
        c.add_snapshot("bookworm", Some("Debian 12 (bookworm)"), snapshot("2026-11-08", 'c', ""));
        let mut with_profile = snapshot("2026-11-22", 'd', "security\nupdates");
        with_profile.profile = Some(with_profile.index);
        c.add_snapshot("bookworm", None, with_profile);
        c
    }

    #[test]
    fn newest_first_across_distributions() {
        let c = catalog();
        let order: Vec<_> = newest_first(&c).iter().map(|(d, s)| format!("{} {}", d.name, s.date)).collect();
        assert_eq!(order, ["bookworm 2026-11-22", "tiny 2026-11-22", "tiny 2026-11-15", "bookworm 2026-11-08"]);
    }

    #[test]
    fn table_columns_line_up_and_notes_stay_on_one_line() {
        let text = render(&catalog(), 300 << 20);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(lines[0].starts_with("DISTRIBUTION  TITLE"), "{text}");
        assert!(
            lines[1].starts_with(
                "bookworm      Debian 12 (bookworm)  2026-11-22  2.0 GiB  150 MiB  disk   yes      security updates"
            ),
            "{text}"
        );
        assert!(lines[4].starts_with("bookworm") && lines[4].contains(" no"), "{text}");
        // Every row puts DATE in the same column.
        let col = lines[0].find("DATE").expect("header has DATE");
        for line in &lines[1..5] {
            assert_eq!(&line[col..col + 4], "2026", "{text}");
        }
        assert_eq!(
            lines[5],
            "4 snapshots of 2 distributions; the blocks take 300 MiB on disk (shared blocks counted once)"
        );
    }

    #[test]
    fn a_cd_shows_its_medium_login_and_source() {
        let mut c = catalog();
        let mut cd = snapshot("2026-11-29", 'e', "");
        cd.media = circular_format::catalog::Media::Cdrom;
        cd.login = Some("user, password live".into());
        cd.source = Some(Source { url: Some("https://cdimage.example/live.iso".into()), sha256: "0f".repeat(32) });
        c.add_snapshot("live", Some("Live CD"), cd);
        let text = render(&c, 1);
        assert!(text.lines().nth(1).unwrap().contains(" cdrom "), "{text}");
        assert!(text.contains("live/2026-11-29: login: user, password live\n"), "{text}");
        let want = format!(
            "live/2026-11-29: source: bit-identical to https://cdimage.example/live.iso (SHA-256 {})",
            "0f".repeat(32)
        );
        assert!(text.contains(&want), "{text}");
        let v: serde_json::Value = serde_json::from_str(&render_json(&c, 1)).unwrap();
        assert_eq!(v["snapshots"][0]["media"], "cdrom");
        assert_eq!(v["snapshots"][0]["login"], "user, password live");
        assert_eq!(v["snapshots"][0]["source"]["sha256"], "0f".repeat(32));
        assert_eq!(v["snapshots"][1]["media"], "disk");
        assert!(v["snapshots"][1]["source"].is_null());
    }

    #[test]
    fn json_has_the_table_rows_newest_first_with_exact_sizes() {
        let v: serde_json::Value = serde_json::from_str(&render_json(&catalog(), 300 << 20)).expect("JSON");
        assert_eq!(v["blocks_on_disk"], 300 << 20);
        assert_eq!(v["expires"].as_str().map(|s| s.len() >= 20), Some(true), "{v}");
        let snaps = v["snapshots"].as_array().expect("snapshots");
        let order: Vec<_> = snaps.iter().map(|s| format!("{} {}", s["distribution"], s["date"])).collect();
        assert_eq!(
            order,
            [
                "\"bookworm\" \"2026-11-22\"",
                "\"tiny\" \"2026-11-22\"",
                "\"tiny\" \"2026-11-15\"",
                "\"bookworm\" \"2026-11-08\""
            ]
        );
        assert_eq!(snaps[0]["title"], "Debian 12 (bookworm)");
        assert_eq!(snaps[0]["image_size"], 2u64 << 30);
        assert!(snaps[0]["profile"].is_string() && snaps[3]["profile"].is_null(), "{v}");
        assert_eq!(snaps[0]["firmware"], "bios");
        assert_eq!(v["distributions"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn empty_catalog() {
        let c = Catalog::new(datetime!(2026-11-22 0:00 UTC), datetime!(2026-12-22 0:00 UTC));
        assert_eq!(render(&c, 0), "no snapshots in this store\n");
    }

    #[test]
    fn reads_a_store_and_sums_its_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read_catalog(dir.path()).is_err(), "a directory without catalog.json is not a store");
        fs::write(dir.path().join(CATALOG), catalog().to_bytes()).expect("write catalog");
        fs::create_dir_all(dir.path().join("blocks/ab")).expect("mkdir");
        fs::write(dir.path().join("blocks/ab/one"), [0u8; 100]).expect("write");
        fs::write(dir.path().join("blocks/ab/two"), [0u8; 23]).expect("write");
        assert_eq!(blocks_on_disk(dir.path()).expect("sum"), 123);
        let mut out = Vec::new();
        run(dir.path(), false, &mut out).expect("list");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.ends_with("the blocks take 123 B on disk (shared blocks counted once)\n"), "{text}");
    }
}
