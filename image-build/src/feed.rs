//! `image-build feed`: an RSS 2.0 feed of a store's snapshots, newest first, so
//! that people (and scripts) can follow the weekly images, as Jisha's image
//! feeds allowed. Each item carries the distribution (`<category>`), the date
//! (`<pubDate>`, RFC 822), the sizes, and the index hash as the checksum (`<guid>`
//! `sha1:…`, and `<circular:index>`): the index names every block by hash, so it
//! pins the snapshot's bytes.
//!
//! The feed depends only on the catalog (its `generated` time is the feed's
//! `lastBuildDate`), so the same store gives the same bytes. Text is escaped by
//! quick-xml; characters XML 1.0 cannot carry at all (most C0 controls) are
//! replaced first, because escaping cannot make them legal.

use std::path::{Path, PathBuf};

use circular_format::catalog::{Catalog, Distribution, Media, Snapshot};
use circular_format::layout::index_path;
use circular_format::local::{write_atomic, Durability};
use circular_format::units::format_size;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use time::format_description::well_known::Rfc2822;
use time::{Date, OffsetDateTime};

use crate::error::{BuildError, Result};
use crate::list;

/// Our own elements (sizes, distribution, index) for scripts; readers ignore them.
const NAMESPACE: &str = "https://circular.invalid/ns/feed/1";

pub struct FeedOptions {
    pub store: PathBuf,
    /// Where the store is published (`https://…/circular/`); without it, `file://<store>/`.
    pub base_url: Option<String>,
    /// Where to write the feed; stdout without it.
    pub out: Option<PathBuf>,
}

pub fn run(opts: &FeedOptions) -> Result<()> {
    let catalog = list::read_catalog(&opts.store)?;
    let base = match &opts.base_url {
        Some(url) => base_url(url)?,
        None => {
            let abs = std::path::absolute(&opts.store).map_err(|e| BuildError::io(&opts.store, e))?;
            format!("file://{}/", abs.display().to_string().trim_end_matches('/'))
        }
    };
    let index_len = |s: &Snapshot| std::fs::metadata(opts.store.join(index_path(&s.index))).ok().map(|m| m.len());
    let xml = render(&catalog, &base, &index_len)?;
    match &opts.out {
        Some(path) => {
            // Atomic, so a web server never serves half a feed: the temp file
            // goes beside it (the feed may be written anywhere, not only in a store).
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            write_atomic(path, &xml, dir, Durability::Named).map_err(|e| BuildError::io(path, e))?;
            eprintln!(
                "feed: {} written to {}",
                list::counted(list::newest_first(&catalog).len() as u64, "snapshot"),
                path.display()
            );
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&xml).map_err(|e| BuildError::io(Path::new("<stdout>"), e))?;
        }
    }
    Ok(())
}

/// A base URL must be absolute (feed readers resolve nothing) and ends in '/'.
fn base_url(url: &str) -> Result<String> {
    let ok =
        ["https://", "http://", "file://"].iter().any(|p| url.starts_with(p)) && !url.contains(char::is_whitespace);
    if !ok {
        return Err(BuildError::Usage(format!(
            "--base-url {url:?} must be an absolute http://, https:// or file:// URL (where the store is published)"
        )));
    }
    Ok(if url.ends_with('/') { url.to_string() } else { format!("{url}/") })
}

/// The feed's bytes. `index_len` gives an index file's size, for the enclosure.
pub fn render(catalog: &Catalog, base: &str, index_len: &dyn Fn(&Snapshot) -> Option<u64>) -> Result<Vec<u8>> {
    let xml_err = BuildError::Feed;
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None))).map_err(xml_err)?;
    let snapshots = list::newest_first(catalog);
    let distributions: Vec<&str> =
        catalog.distributions.iter().filter(|d| !d.snapshots.is_empty()).map(|d| d.title.as_str()).collect();
    w.create_element("rss")
        .with_attribute(("version", "2.0"))
        .with_attribute(("xmlns:circular", NAMESPACE))
        .write_inner_content(|w| {
            w.create_element("channel").write_inner_content(|w| {
                text(w, "title", "Circular snapshots")?;
                text(w, "link", base)?;
                let about = if distributions.is_empty() {
                    "No snapshots yet.".to_string()
                } else {
                    format!("Bootable disk images served by Circular: {}.", distributions.join(", "))
                };
                text(w, "description", &about)?;
                text(w, "lastBuildDate", &rfc822(catalog.generated))?;
                text(w, "generator", concat!("image-build ", env!("CARGO_PKG_VERSION")))?;
                for (d, s) in &snapshots {
                    item(w, d, s, base, index_len(s))?;
                }
                Ok(())
            })?;
            Ok(())
        })
        .map_err(xml_err)?;
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    Ok(bytes)
}

fn item(
    w: &mut Writer<Vec<u8>>,
    d: &Distribution,
    s: &Snapshot,
    base: &str,
    index_len: Option<u64>,
) -> std::io::Result<()> {
    w.create_element("item").write_inner_content(|w| {
        text(w, "title", &format!("{} — {}", d.title, s.date))?;
        let medium = match s.media {
            Media::Disk => "disk image",
            Media::Cdrom => "CD-ROM image",
        };
        let mut about = format!(
            "{}, snapshot of {}: a {} {medium}, {} stored.",
            d.title,
            s.date,
            format_size(s.image_size),
            format_size(s.stored_bytes)
        );
        let notes = s.notes.trim();
        if !notes.is_empty() {
            // The notes are one line of the menu; here they sit between sentences.
            about.push(' ');
            about.push_str(notes);
            if !notes.ends_with(['.', '!', '?']) {
                about.push('.');
            }
        }
        if let Some(login) = &s.login {
            about.push_str(&format!(" Login: {login}."));
        }
        if let Some(source) = &s.source {
            about.push_str(&format!(" Source: {}.", crate::list::provenance(source)));
        }
        text(w, "description", &about)?;
        w.create_element("category")
            .with_attribute(("domain", "distribution"))
            .write_text_content(BytesText::new(&xml_chars(&d.name)))?;
        // The index hash pins every byte of the snapshot: it is the checksum.
        w.create_element("guid")
            .with_attribute(("isPermaLink", "false"))
            .write_text_content(BytesText::new(&format!("sha1:{}", s.index)))?;
        if let Some(pub_date) = date_rfc822(&s.date) {
            text(w, "pubDate", &pub_date)?;
        }
        // The index is what a client fetches first; RSS wants its exact length.
        if let Some(len) = index_len {
            let url = format!("{base}{}", index_path(&s.index));
            w.create_element("enclosure")
                .with_attribute(("url", xml_chars(&url).as_str()))
                .with_attribute(("length", len.to_string().as_str()))
                .with_attribute(("type", "application/json"))
                .write_empty()?;
        }
        text(w, "circular:distribution", &d.name)?;
        text(w, "circular:date", &s.date)?;
        text(w, "circular:index", &s.index.to_string())?;
        text(w, "circular:imageSize", &s.image_size.to_string())?;
        text(w, "circular:storedBytes", &s.stored_bytes.to_string())?;
        Ok(())
    })?;
    Ok(())
}

fn text(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> std::io::Result<()> {
    w.create_element(name).write_text_content(BytesText::new(&xml_chars(value)))?;
    Ok(())
}

/// Replaces what XML 1.0 forbids even escaped (C0 controls but tab, LF, CR;
/// U+FFFE, U+FFFF) with U+FFFD. Notes come from a command line and may hold anything.
fn xml_chars(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// `Sun, 22 Nov 2026 06:35:09 +0000`: RFC 822 with a four-digit year, as RSS 2.0 asks.
fn rfc822(t: OffsetDateTime) -> String {
    // Rfc2822 formatting fails only for years before 1900; a catalog has none.
    t.to_offset(time::UtcOffset::UTC).format(&Rfc2822).unwrap_or_default()
}

/// A snapshot's date is a day; its pubDate is that day at midnight UTC.
fn date_rfc822(date: &str) -> Option<String> {
    let day = Date::parse(date, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(rfc822(day.midnight().assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list::tests::{catalog, snapshot};

    fn feed(c: &Catalog) -> String {
        String::from_utf8(render(c, "https://img.example/circular/", &|_| Some(321)).expect("render")).expect("utf-8")
    }

    #[test]
    fn dates_are_rfc822() {
        assert_eq!(date_rfc822("2026-11-22").as_deref(), Some("Sun, 22 Nov 2026 00:00:00 +0000"));
        assert_eq!(date_rfc822("2024-02-29").as_deref(), Some("Thu, 29 Feb 2024 00:00:00 +0000"));
        assert_eq!(date_rfc822("2026-13-01"), None);
        let t = time::macros::datetime!(2026-11-22 08:35:09 +02:00);
        assert_eq!(rfc822(t), "Sun, 22 Nov 2026 06:35:09 +0000");
    }

    #[test]
    fn items_newest_first_with_checksum_and_sizes() {
        let xml = feed(&catalog());
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\""), "{xml}");
        assert!(xml.contains("<lastBuildDate>Sun, 22 Nov 2026 06:35:09 +0000</lastBuildDate>"), "{xml}");
        let titles: Vec<&str> =
            xml.lines().filter_map(|l| l.trim().strip_prefix("<title>")?.strip_suffix("</title>")).collect();
        assert_eq!(
            titles,
            [
                "Circular snapshots",
                "Debian 12 (bookworm) — 2026-11-22",
                "Tiny guest — 2026-11-22",
                "Tiny guest — 2026-11-15",
                "Debian 12 (bookworm) — 2026-11-08"
            ]
        );
        let d = "d".repeat(40);
        assert!(xml.contains(&format!("<guid isPermaLink=\"false\">sha1:{d}</guid>")), "{xml}");
        assert!(xml.contains("<category domain=\"distribution\">bookworm</category>"), "{xml}");
        assert!(xml.contains("<pubDate>Sun, 15 Nov 2026 00:00:00 +0000</pubDate>"), "{xml}");
        assert!(xml.contains(&format!(
            "<enclosure url=\"https://img.example/circular/indexes/{d}.json\" length=\"321\" type=\"application/json\"/>"
        )), "{xml}");
        assert!(xml.contains("<circular:imageSize>2147483648</circular:imageSize>"), "{xml}");
        assert!(xml.contains("a 2.0 GiB disk image, 150 MiB stored. security\nupdates.</description>"), "{xml}");
        assert_eq!(xml, feed(&catalog()), "the same catalog gives the same bytes");
    }

    #[test]
    fn escapes_markup_and_drops_what_xml_cannot_carry() {
        let mut c = catalog();
        c.add_snapshot(
            "tiny",
            Some("Tiny <guest> & \"friends\""),
            snapshot("2026-11-29", 'e', "a </description><script>x</script> \u{1} ]]> done"),
        );
        let xml = feed(&c);
        assert!(xml.contains("<title>Tiny &lt;guest&gt; &amp; &quot;friends&quot; — 2026-11-29</title>"), "{xml}");
        assert!(xml.contains("a &lt;/description&gt;&lt;script&gt;x&lt;/script&gt; \u{FFFD} ]]&gt; done"), "{xml}");
        assert!(!xml.contains('\u{1}'));
        assert!(!xml.contains("<script>"));
        // A base URL with markup in it is escaped in the attribute too.
        let odd =
            String::from_utf8(render(&c, "https://x.example/a&b\"c/", &|_| Some(1)).expect("render")).expect("utf-8");
        assert!(odd.contains("url=\"https://x.example/a&amp;b&quot;c/indexes/"), "{odd}");
        // Every start tag is closed: a real parser reads the whole document.
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut depth = 0i32;
        let mut items = 0;
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(e) => {
                    depth += 1;
                    if e.name().as_ref() == b"item" {
                        items += 1;
                    }
                }
                Event::End(_) => depth -= 1,
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!((depth, items), (0, 5));
    }

    #[test]
    fn base_urls() {
        assert_eq!(base_url("https://a.example/c").expect("ok"), "https://a.example/c/");
        assert_eq!(base_url("http://127.0.0.1:8931/").expect("ok"), "http://127.0.0.1:8931/");
        assert!(base_url("a.example/c").is_err());
        assert!(base_url("https://a.example/c d").is_err());
    }

    #[test]
    fn empty_store_feed_is_valid() {
        let c =
            Catalog::new(time::macros::datetime!(2026-11-22 0:00 UTC), time::macros::datetime!(2026-12-22 0:00 UTC));
        let xml = feed(&c);
        assert!(xml.contains("<description>No snapshots yet.</description>") && !xml.contains("<item>"), "{xml}");
    }

    #[test]
    fn writes_a_file_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(circular_format::layout::CATALOG), catalog().to_bytes()).expect("catalog");
        let out = dir.path().join("feed.xml");
        run(&FeedOptions { store: dir.path().to_path_buf(), base_url: None, out: Some(out.clone()) }).expect("feed");
        let xml = std::fs::read_to_string(&out).expect("read");
        let link = format!("<link>file://{}/</link>", dir.path().display());
        assert!(xml.contains(&link), "{xml}");
        // No index files in this store: no enclosures rather than wrong lengths.
        assert!(!xml.contains("<enclosure"), "{xml}");
        assert!(!dir.path().join("feed.xml.tmp").exists());
    }
}
