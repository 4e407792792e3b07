//! The catalog: what can be booted. Distributions, each with dated snapshots
//! (newest first), each naming its index by hash. It is only trusted once
//! `signing::verify_catalog` has checked its signature and expiry.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::hash::Sha1Name;
use crate::layout;

/// A time as the catalog writes it (RFC 3339, as `generated` and `expires`
/// are stored), for messages and listings: `2026-11-29T23:30:00Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The `format` field of a catalog this crate reads and writes.
pub const CATALOG_FORMAT: &str = "circular-catalog/1";

/// What can be booted: `catalog.json`. Trusted only after
/// [`crate::signing::verify_catalog`] accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// [`CATALOG_FORMAT`].
    pub format: String,
    /// When the publisher signed it (RFC 3339 in the file). A client keeps the
    /// catalog with the later `generated` time (no rollback).
    #[serde(with = "time::serde::rfc3339")]
    pub generated: OffsetDateTime,
    /// After this time (RFC 3339 in the file) clients refuse it.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// Names unique; order as the publisher added them.
    pub distributions: Vec<Distribution>,
}

/// One operating system, with its dated snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    /// Directory name on the mount: see [`check_name`].
    pub name: String,
    /// What people read in the menu, e.g. `Debian 12 (bookworm)`.
    pub title: String,
    /// CPU architecture of the images, e.g. `x86_64` (the default when absent).
    #[serde(default = "default_arch")]
    pub arch: String,
    /// Newest first; the first is the distribution's "latest".
    pub snapshots: Vec<Snapshot>,
}

/// One dated image of a distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `YYYY-MM-DD`, unique within the distribution: see [`check_date`].
    pub date: String,
    /// Name of the snapshot's index, `indexes/<sha1>.json`.
    pub index: Sha1Name,
    /// Size of the image in bytes (the index says the same).
    pub image_size: u64,
    /// Compressed bytes of the snapshot's distinct blocks.
    pub stored_bytes: u64,
    /// Name of the boot profile, `profiles/<sha1>.json`, if one was recorded.
    #[serde(default)]
    pub profile: Option<Sha1Name>,
    /// What the menu proposes for the VM.
    #[serde(default)]
    pub boot: BootSettings,
    /// Free text for people (what changed this week); may be empty.
    #[serde(default)]
    pub notes: String,
    /// How the VM attaches the image: a disk (the default, and all a catalog
    /// written before this field existed can mean) or a CD-ROM.
    #[serde(default)]
    pub media: Media,
    /// How to log in to the booted system, from the publisher, for people
    /// (e.g. `root, no password`); absent when the publisher gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Where the image came from, when the publisher recorded it: the file's
    /// SHA-256 as the distribution publishes it, checked by `image-build add`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// The medium a snapshot's image is, `"disk"` or `"cdrom"` in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    /// A hard disk image, attached under a qcow2 overlay that takes the guest's writes.
    #[default]
    Disk,
    /// An ISO 9660 image (a live or installer CD), attached read-only as a CD
    /// drive that the firmware boots through El Torito.
    Cdrom,
}

impl Media {
    /// `disk` or `cdrom`, as in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Disk => "disk",
            Media::Cdrom => "cdrom",
        }
    }
}

/// Provenance: the file the publisher cut into blocks, as the distribution
/// ships it. The image's bytes are that file's (for a raw image or ISO: the
/// same bytes; a qcow2 or other converted format: the file before conversion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Where the distribution publishes the file, if the publisher said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The file's SHA-256, 64 lowercase hex digits.
    pub sha256: String,
}

/// The VM a snapshot is meant to boot in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSettings {
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// BIOS or UEFI.
    pub firmware: Firmware,
}

impl Default for BootSettings {
    fn default() -> Self {
        BootSettings { memory_mib: 1024, cpus: 2, firmware: Firmware::Bios }
    }
}

/// The guest's firmware, `"bios"` or `"uefi"` in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// SeaBIOS (QEMU's default).
    Bios,
    /// OVMF.
    Uefi,
}

fn default_arch() -> String {
    "x86_64".to_string()
}

impl Catalog {
    /// An empty catalog, generated now.
    pub fn new(now: OffsetDateTime, expires: OffsetDateTime) -> Catalog {
        Catalog { format: CATALOG_FORMAT.to_string(), generated: now, expires, distributions: Vec::new() }
    }

    /// Parses catalog bytes and checks their structure (not the signature:
    /// that is [`crate::signing::verify_catalog`]).
    ///
    /// # Errors
    /// [`Error::Json`] when the bytes are not a catalog's JSON, and what
    /// [`Catalog::validate`] refuses.
    pub fn parse(bytes: &[u8]) -> Result<Catalog> {
        let catalog: Catalog = serde_json::from_slice(bytes)
            .map_err(|source| Error::Json { what: layout::CATALOG.to_string(), source })?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// The canonical bytes that get signed and published: pretty JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Only a time RFC 3339 cannot write (a year before 0) makes this fail;
        // the empty bytes then fail every client's parse, so nothing wrong is
        // ever accepted.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Checks the rules a parsed catalog must follow.
    ///
    /// # Errors
    /// [`Error::Invalid`] for another `format`, a bad or repeated distribution
    /// name, a bad or repeated date, or snapshots not listed newest first.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Error::invalid(layout::CATALOG, reason);
        if self.format != CATALOG_FORMAT {
            return Err(invalid(format!("format is {:?}, this program reads {CATALOG_FORMAT:?}", self.format)));
        }
        let mut names = std::collections::HashSet::new();
        for d in &self.distributions {
            check_name(&d.name).map_err(&invalid)?;
            if !names.insert(d.name.as_str()) {
                return Err(invalid(format!("distribution {:?} is listed twice", d.name)));
            }
            let mut dates = std::collections::HashSet::new();
            for s in &d.snapshots {
                check_date(&s.date).map_err(&invalid)?;
                if !dates.insert(s.date.as_str()) {
                    return Err(invalid(format!("{} has two snapshots dated {}", d.name, s.date)));
                }
            }
            let newest_first = d.snapshots.windows(2).all(|w| w[0].date > w[1].date);
            if !newest_first {
                return Err(invalid(format!("{}'s snapshots are not listed newest first", d.name)));
            }
        }
        Ok(())
    }

    /// The distribution called `name`, if the catalog has it.
    pub fn distribution(&self, name: &str) -> Option<&Distribution> {
        self.distributions.iter().find(|d| d.name == name)
    }

    /// Adds (or replaces) a snapshot, keeping snapshots newest first.
    pub fn add_snapshot(&mut self, name: &str, title: Option<&str>, snapshot: Snapshot) {
        let pos = match self.distributions.iter().position(|d| d.name == name) {
            Some(pos) => pos,
            None => {
                self.distributions.push(Distribution {
                    name: name.to_string(),
                    title: name.to_string(),
                    arch: default_arch(),
                    snapshots: Vec::new(),
                });
                self.distributions.len() - 1
            }
        };
        let dist = &mut self.distributions[pos];
        if let Some(title) = title {
            dist.title = title.to_string();
        }
        dist.snapshots.retain(|s| s.date != snapshot.date);
        dist.snapshots.push(snapshot);
        dist.snapshots.sort_by(|a, b| b.date.cmp(&a.date));
    }

    /// Every snapshot with its distribution's name.
    pub fn snapshots(&self) -> impl Iterator<Item = (&Distribution, &Snapshot)> {
        self.distributions.iter().flat_map(|d| d.snapshots.iter().map(move |s| (d, s)))
    }
}

impl Distribution {
    /// The newest snapshot (the first), shown as `latest.img`.
    pub fn latest(&self) -> Option<&Snapshot> {
        self.snapshots.first()
    }
}

/// Distribution names become directory names on the mount: keep them plain.
///
/// # Errors
/// A sentence saying what a name may be, when `name` is not one.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
        && !name.ends_with(".json");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "distribution name {name:?} must be 1-64 of a-z 0-9 . _ -, start with a letter or digit, and not end in .json"
        ))
    }
}

/// Snapshot dates are calendar dates, `YYYY-MM-DD`.
///
/// # Errors
/// A sentence naming the expected form, when `date` is not a real date in it.
pub fn check_date(date: &str) -> std::result::Result<(), String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(date, format) {
        Ok(_) if date.len() == 10 => Ok(()),
        _ => Err(format!("snapshot date {date:?} is not a date in the form YYYY-MM-DD")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    pub fn snapshot(date: &str) -> Snapshot {
        Snapshot {
            date: date.to_string(),
            index: Sha1Name::of(date.as_bytes()),
            image_size: 1 << 20,
            stored_bytes: 1000,
            profile: None,
            boot: BootSettings::default(),
            notes: String::new(),
            media: Media::Disk,
            login: None,
            source: None,
        }
    }

    #[test]
    fn snapshots_stay_newest_first_and_round_trip() {
        let mut c = Catalog::new(datetime!(2026-11-22 0:00 UTC), datetime!(2026-12-22 0:00 UTC));
        c.add_snapshot("bookworm", Some("Debian 12"), snapshot("2026-11-15"));
        c.add_snapshot("bookworm", None, snapshot("2026-11-22"));
        c.add_snapshot("bookworm", None, snapshot("2026-11-08"));
        let d = c.distribution("bookworm").unwrap();
        let dates: Vec<_> = d.snapshots.iter().map(|s| s.date.as_str()).collect();
        assert_eq!(dates, ["2026-11-22", "2026-11-15", "2026-11-08"]);
        assert_eq!(d.title, "Debian 12");
        assert_eq!(Catalog::parse(&c.to_bytes()).unwrap(), c);
    }

    #[test]
    fn bad_names_dates_and_order_are_refused() {
        for good in ["bookworm", "debian-12", "9front", "ubuntu_24.04"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "Bookworm", ".hidden", "a/b", "status.json"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_date("2026-02-30").is_err());
        assert!(check_date("2026-1-1").is_err());
        check_date("2026-11-22").unwrap();
        for bad in ["+2026-11-22", "02026-11-22", "2026-11-22 ", " 2026-11-22", "2026-011-22"] {
            assert!(check_date(bad).is_err(), "{bad:?}");
        }
        let mut c = Catalog::new(datetime!(2026-11-22 0:00 UTC), datetime!(2026-12-22 0:00 UTC));
        c.add_snapshot("bookworm", None, snapshot("2026-11-22"));
        c.distributions[0].snapshots.push(snapshot("2026-11-29"));
        let err = Catalog::parse(&c.to_bytes()).unwrap_err();
        assert!(err.to_string().contains("newest first"), "{err}");
    }

    #[test]
    fn a_catalog_without_media_reads_as_disks_and_cdrom_round_trips() {
        let mut c = Catalog::new(datetime!(2026-11-22 0:00 UTC), datetime!(2026-12-22 0:00 UTC));
        c.add_snapshot("bookworm", None, snapshot("2026-11-22"));
        // What a catalog written before `media`, `login` and `source` looks like.
        let mut old: serde_json::Value = serde_json::from_slice(&c.to_bytes()).unwrap();
        let snap = old["distributions"][0]["snapshots"][0].as_object_mut().unwrap();
        snap.remove("media");
        assert!(!snap.contains_key("login") && !snap.contains_key("source"));
        let parsed = Catalog::parse(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(parsed.distributions[0].snapshots[0].media, Media::Disk);

        let mut s = snapshot("2026-11-29");
        s.media = Media::Cdrom;
        s.login = Some("user live, password live".into());
        s.source = Some(Source { url: Some("https://cdimage.example/x.iso".into()), sha256: "ab".repeat(32) });
        c.add_snapshot("bookworm", None, s.clone());
        let text = String::from_utf8(c.to_bytes()).unwrap();
        assert!(text.contains("\"media\": \"cdrom\""), "{text}");
        assert_eq!(Catalog::parse(text.as_bytes()).unwrap().distributions[0].snapshots[0], s);
        // A medium this client does not know is refused, not read as a disk.
        let bad = text.replace("\"media\": \"cdrom\"", "\"media\": \"floppy\"");
        assert!(Catalog::parse(bad.as_bytes()).is_err());
    }
    #[test]
    fn times_media_and_arch_read_as_the_catalog_writes_them() {
        assert_eq!(rfc3339(datetime!(2026-11-29 23:30 UTC)), "2026-11-29T23:30:00Z");
        for media in [Media::Disk, Media::Cdrom] {
            assert_eq!(serde_json::to_string(&media).unwrap(), format!("\"{}\"", media.as_str()));
        }
        assert_eq!((Media::Disk.as_str(), Media::Cdrom.as_str()), ("disk", "cdrom"));
        // A distribution added without an arch, or read from a catalog that names none, is x86_64.
        let mut c = Catalog::new(datetime!(2026-11-22 0:00 UTC), datetime!(2026-12-22 0:00 UTC));
        c.add_snapshot("bookworm", None, snapshot("2026-11-22"));
        assert_eq!(c.distributions[0].arch, "x86_64");
        let text = String::from_utf8(c.to_bytes()).unwrap().replace("\"arch\": \"x86_64\",", "");
        assert!(!text.contains("arch"), "the test's catalog still names its arch: {text}");
        assert_eq!(Catalog::parse(text.as_bytes()).unwrap().distributions[0].arch, "x86_64");
    }

    #[test]
    fn every_snapshot_is_listed_and_latest_is_the_newest() {
        let mut c = Catalog::new(datetime!(2026-11-22 0:00 UTC), datetime!(2026-12-22 0:00 UTC));
        c.add_snapshot("bookworm", None, snapshot("2026-11-15"));
        c.add_snapshot("bookworm", None, snapshot("2026-11-22"));
        c.add_snapshot("trixie", None, snapshot("2026-11-08"));
        let all: Vec<_> = c.snapshots().map(|(d, s)| (d.name.as_str(), s.date.as_str())).collect();
        assert_eq!(all, [("bookworm", "2026-11-22"), ("bookworm", "2026-11-15"), ("trixie", "2026-11-08")]);
        assert_eq!(c.distribution("bookworm").unwrap().latest().unwrap().date, "2026-11-22");
        let empty = Distribution { name: "x".into(), title: "x".into(), arch: default_arch(), snapshots: vec![] };
        assert!(empty.latest().is_none());
    }
}
