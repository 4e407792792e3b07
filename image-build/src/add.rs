//! `image-build add`: cuts a disk image into blocks, stores the new ones, writes
//! the snapshot's index and adds it to the signed catalog.
//!
//! A reader thread streams the image in batches while all cores hash (with
//! collision detection) and compress the previous batch; new blocks are written
//! in image order. Blocks the store already has cost only a `stat`.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use circular_format::block::{self, check_block_size};
use circular_format::catalog::{check_date, check_name, BootSettings, Firmware, Media, Snapshot, Source};
use circular_format::index::Index;
use circular_format::layout::TMP_DIR;
use circular_format::signing;
use circular_format::units::format_size;
use circular_format::Sha1Name;

use crate::error::{BuildError, Result};
use crate::progress::Progress;
use crate::store_dir::StoreDir;

/// Bytes read per batch: enough work to keep every core busy.
const BATCH_BYTES: usize = 32 << 20;

pub struct AddOptions {
    pub store: PathBuf,
    pub distro: String,
    pub date: String,
    pub title: Option<String>,
    pub block_size: u64,
    /// zstd level: higher stores less and takes longer to publish.
    pub level: i32,
    /// Guest memory the menu proposes; `None`: [`propose_memory_mib`] from the medium and size.
    pub memory_mib: Option<u32>,
    pub cpus: u32,
    pub firmware: Firmware,
    pub notes: String,
    /// Disk or CD-ROM; `None`: a CD-ROM when the image is ISO 9660 ([`is_iso9660`]), else a disk.
    pub media: Option<Media>,
    /// How to log in, for people; `None`: the text of `<IMAGE>.login` if
    /// `image-build os` wrote one beside the image, else no hint.
    pub login: Option<String>,
    /// Where the distribution publishes the image (recorded only with `source_sha256`).
    pub source_url: Option<String>,
    /// The SHA-256 the distribution publishes for the image file (64 hex digits):
    /// checked before anything is written, then recorded in the catalog.
    pub source_sha256: Option<String>,
    pub key: PathBuf,
    pub valid_days: u32,
    pub image: PathBuf,
    /// Publish over a snapshot of the same distribution and date. Without it, `add`
    /// refuses: clients that cached that snapshot, or keep a guest's changes on top of
    /// it, would see its bytes change under the same name.
    pub replace: bool,
}

/// The suffix of the login hint file that `image-build os` writes beside its image.
pub const LOGIN_HINT_SUFFIX: &str = ".login";

/// The memory `add` proposes when the publisher gives no `--memory-mib`, in MiB.
///
/// A disk image's system pages from its disk: 1024 MiB. A live CD keeps its
/// writable layer in RAM and caches the squashfs it runs from, so it gets
/// 1024 MiB plus half the image's size, rounded up to 256 MiB, at most 8192.
pub fn propose_memory_mib(media: Media, image_size: u64) -> u32 {
    match media {
        Media::Disk => 1024,
        Media::Cdrom => {
            let half_mib = image_size.div_ceil(2 << 20);
            let mib = (1024 + half_mib).div_ceil(256) * 256;
            u32::try_from(mib.min(8192)).unwrap_or(8192)
        }
    }
}

/// True when `head` (the image's first 32774 bytes or more) holds an ISO 9660
/// volume descriptor: `CD001` at byte 32769 (sector 16 at 2048 bytes, after
/// its type byte), as every CD image, hybrid or not, has.
pub fn is_iso9660(head: &[u8]) -> bool {
    head.get(ISO9660_MAGIC_AT..ISO9660_MAGIC_AT + 5) == Some(b"CD001")
}

/// Where [`is_iso9660`] looks.
const ISO9660_MAGIC_AT: usize = 32769;

fn detect_media(image: &Path) -> Result<Media> {
    let mut head = Vec::with_capacity(ISO9660_MAGIC_AT + 5);
    File::open(image)
        .and_then(|f| f.take((ISO9660_MAGIC_AT + 5) as u64).read_to_end(&mut head))
        .map_err(|e| BuildError::io(image, e))?;
    Ok(if is_iso9660(&head) { Media::Cdrom } else { Media::Disk })
}

/// The image to publish can be opened and is not a directory.
fn check_readable_image(image: &Path) -> Result<()> {
    let file = File::open(image).map_err(|e| BuildError::io(image, e))?;
    let meta = file.metadata().map_err(|e| BuildError::io(image, e))?;
    if meta.is_dir() {
        return Err(BuildError::Usage(format!(
            "{} is a directory: give the disk image or ISO file to publish",
            image.display()
        )));
    }
    Ok(())
}

/// The publisher's `--source-sha256`, lowercased, when it is 64 hex digits.
fn parse_sha256(hex: &str) -> Result<String> {
    let hex = hex.trim().to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(BuildError::Usage(format!(
            "--source-sha256 {hex:?} is not a SHA-256 (64 hex digits, as in the distribution's SHA256SUMS)"
        )))
    }
}

/// SHA-256 of a whole file, as lowercase hex.
fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let mut file = File::open(path).map_err(|e| BuildError::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| BuildError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The login hint: the publisher's `--login`, else the `.login` file beside the image.
fn login_hint(opts: &AddOptions) -> Result<Option<String>> {
    if let Some(text) = &opts.login {
        return Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()));
    }
    let mut file = opts.image.clone().into_os_string();
    file.push(LOGIN_HINT_SUFFIX);
    let file = PathBuf::from(file);
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BuildError::io(&file, e)),
    }
}

/// What `add` did, as printed for the publisher.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AddReport {
    pub blocks: u64,
    pub zero: u64,
    pub existing: u64,
    pub new: u64,
    pub bytes_written: u64,
    pub stored_bytes: u64,
    pub index: Option<Sha1Name>,
}

pub fn add(opts: &AddOptions) -> Result<AddReport> {
    check_name(&opts.distro).map_err(BuildError::Usage)?;
    check_date(&opts.date).map_err(BuildError::Usage)?;
    let block_size = check_block_size(opts.block_size)?;
    if opts.source_url.is_some() && opts.source_sha256.is_none() {
        return Err(BuildError::Usage(
            "--source-url needs --source-sha256: a recorded source is one whose bytes were checked".into(),
        ));
    }
    if !(1..=19).contains(&opts.level) {
        return Err(BuildError::Usage(format!("--level {} is not a zstd level from 1 to 19", opts.level)));
    }
    let key = signing::read_secret(&opts.key)?;
    let login = login_hint(opts)?;
    // Checked before the store is opened: a wrong file leaves the store as it
    // was, and a store that did not exist is not made.
    check_readable_image(&opts.image)?;
    let source = match &opts.source_sha256 {
        Some(want) => {
            let want = parse_sha256(want)?;
            let got = sha256_file(&opts.image)?;
            if got != want {
                return Err(BuildError::SourceMismatch { image: opts.image.clone(), expected: want, actual: got });
            }
            Some(Source { url: opts.source_url.clone(), sha256: want })
        }
        None => None,
    };
    let store = StoreDir::open_for_writing(&opts.store)?;
    let mut catalog = store.read_catalog(&key)?;
    let existing = catalog.distribution(&opts.distro).and_then(|d| d.snapshots.iter().find(|s| s.date == opts.date));
    if let (Some(existing), false) = (existing, opts.replace) {
        return Err(BuildError::Usage(format!(
            "{} {} is already published (index {}): choose another --date, or give --replace to publish this \
             image in its place (clients that cached it, or kept a guest's changes on it, will see it change)",
            opts.distro, opts.date, existing.index
        )));
    }
    let raw = RawImage::open(&opts.image, &store.local().path(TMP_DIR))?;
    let media = match opts.media {
        Some(media) => media,
        None => detect_media(&raw.path)?,
    };
    let started = Instant::now();
    let (mut report, index) = cut_into_blocks(&store, &raw.path, block_size, opts.level)?;
    let index_bytes = index.to_bytes();
    let index_id = Sha1Name::of_published(&index_bytes).map_err(|e| BuildError::Usage(format!("index: {e}")))?;
    store.write(&store.index_file(&index_id), &index_bytes)?;
    let snapshot = Snapshot {
        date: opts.date.clone(),
        index: index_id,
        image_size: index.image_size,
        stored_bytes: report.stored_bytes,
        profile: None,
        boot: BootSettings {
            memory_mib: opts.memory_mib.unwrap_or_else(|| propose_memory_mib(media, index.image_size)),
            cpus: opts.cpus,
            firmware: opts.firmware,
        },
        notes: opts.notes.clone(),
        media,
        login,
        source,
    };
    let boot = snapshot.boot.clone();
    let provenance = snapshot.source.as_ref().map(|s| match &s.url {
        Some(url) => format!("sha256 {} (as published at {url})", s.sha256),
        None => format!("sha256 {}", s.sha256),
    });
    catalog.add_snapshot(&opts.distro, opts.title.as_deref(), snapshot);
    store.write_catalog(&mut catalog, &key, opts.valid_days)?;
    report.index = Some(index_id);
    let r = &report;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "added {}/{}: {} ({}) in {:.1} s, {:.0} MB/s",
        opts.distro,
        opts.date,
        opts.image.display(),
        format_size(index.image_size),
        secs,
        index.image_size as f64 / 1e6 / secs.max(1e-6)
    );
    println!(
        "blocks: {} total, {} zero, {} already in the store, {} new; {} written; snapshot stores {}",
        r.blocks,
        r.zero,
        r.existing,
        r.new,
        format_size(r.bytes_written),
        format_size(r.stored_bytes)
    );
    println!("index:  indexes/{index_id}.json");
    println!(
        "boot:   {}, {} MiB{}, {} CPUs, {}",
        media.as_str(),
        boot.memory_mib,
        if opts.memory_mib.is_none() { " (proposed; --memory-mib to change)" } else { "" },
        boot.cpus,
        match boot.firmware {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    );
    if let Some(p) = provenance {
        println!("source: {p}: the image is bit-identical to that file");
    }
    Ok(report)
}

fn cut_into_blocks(store: &StoreDir, image: &Path, block_size: u32, level: i32) -> Result<(AddReport, Index)> {
    let mut file = File::open(image).map_err(|e| BuildError::io(image, e))?;
    let image_size = file.metadata().map_err(|e| BuildError::io(image, e))?.len();
    let bs = block_size as usize;
    let per_batch = (BATCH_BYTES / bs).max(1);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let progress = Progress::bytes("adding", image_size);

    // The reader runs one batch ahead of the hashing.
    let (tx, rx) = sync_channel::<std::io::Result<Vec<Vec<u8>>>>(1);
    let reader = std::thread::spawn(move || {
        let mut left = image_size;
        while left > 0 {
            let mut batch = Vec::with_capacity(per_batch);
            while batch.len() < per_batch && left > 0 {
                let len = left.min(bs as u64) as usize;
                let mut buf = vec![0u8; len];
                if let Err(e) = file.read_exact(&mut buf) {
                    let _ = tx.send(Err(e));
                    return;
                }
                left -= len as u64;
                batch.push(buf);
            }
            if tx.send(Ok(batch)).is_err() {
                return;
            }
        }
    });

    // Writing (and the stat of blocks the store may have) overlaps the
    // hashing of the next batch.
    let (to_writer, from_encoder) = sync_channel::<Vec<(u64, Option<block::Encoded>)>>(1);
    let (report, ids) = std::thread::scope(|scope| -> Result<(AddReport, Vec<Option<Sha1Name>>)> {
        let writer = scope.spawn(|| write_blocks(store, from_encoder, &progress));
        let mut first_block = 0u64;
        for batch in rx {
            let batch = batch.map_err(|e| BuildError::io(image, e))?;
            let collision = |block| BuildError::Collision {
                image: image.to_path_buf(),
                block,
                offset: block * u64::from(block_size),
            };
            let encoded = encode_parallel(&batch, first_block, threads, level, &collision)?;
            first_block += batch.len() as u64;
            let lens = batch.iter().map(|b| b.len() as u64);
            if to_writer.send(lens.zip(encoded).collect()).is_err() {
                break; // the writer stopped on an error, which join reports
            }
        }
        drop(to_writer);
        writer.join().map_err(|_| BuildError::Usage("the block writer failed".into()))?
    })?;
    let _ = reader.join();
    progress.finish();
    if ids.len() as u64 != image_size.div_ceil(u64::from(block_size)) {
        return Err(BuildError::Usage(format!(
            "{} changed size while it was read; add it again once nothing writes to it",
            image.display()
        )));
    }
    let index = Index { image_size, block_size, blocks: ids };
    Ok((report, index))
}

/// Stores the blocks the store lacks, in image order, and counts what it did.
fn write_blocks(
    store: &StoreDir,
    batches: std::sync::mpsc::Receiver<Vec<(u64, Option<block::Encoded>)>>,
    progress: &Progress,
) -> Result<(AddReport, Vec<Option<Sha1Name>>)> {
    let mut report = AddReport::default();
    let mut ids = Vec::new();
    let mut seen: HashMap<Sha1Name, u64> = HashMap::new();
    for batch in batches {
        for (len, enc) in batch {
            report.blocks += 1;
            progress.advance(len);
            let Some(enc) = enc else {
                report.zero += 1;
                ids.push(None);
                continue;
            };
            ids.push(Some(enc.id));
            if seen.contains_key(&enc.id) {
                report.existing += 1;
                continue;
            }
            let size = match store.block_size_on_disk(&enc.id) {
                Some(size) => {
                    report.existing += 1;
                    size
                }
                None => {
                    store.write(&store.block_file(&enc.id), &enc.file)?;
                    report.new += 1;
                    report.bytes_written += enc.file.len() as u64;
                    enc.file.len() as u64
                }
            };
            seen.insert(enc.id, size);
            report.stored_bytes += size;
        }
    }
    Ok((report, ids))
}

/// Hashes and compresses a batch on `threads` cores; `None` for zero blocks.
/// `first_block` is the image's block number of `batch[0]`; a block that is half of a
/// SHA-1 collision pair is reported by `collision(its block number)`.
fn encode_parallel(
    batch: &[Vec<u8>],
    first_block: u64,
    threads: usize,
    level: i32,
    collision: &(dyn Fn(u64) -> BuildError + Sync),
) -> Result<Vec<Option<block::Encoded>>> {
    let chunk = batch.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(part.len());
                    for (i, data) in part.iter().enumerate() {
                        if block::is_zero(data) {
                            out.push(None);
                            continue;
                        }
                        let encoded = block::encode(data, level).map_err(|e| match e {
                            circular_format::Error::Collision(_) => collision(first_block + (n * chunk + i) as u64),
                            e => BuildError::from(e),
                        })?;
                        out.push(Some(encoded));
                    }
                    Ok::<_, BuildError>(out)
                })
            })
            .collect();
        let mut out = Vec::with_capacity(batch.len());
        for h in handles {
            let part = h.join().map_err(|_| BuildError::Usage("a hashing thread failed".into()))??;
            out.extend(part);
        }
        Ok(out)
    })
}

/// A raw image to read: the file itself, or a raw copy converted by
/// `qemu-img` from qcow2, VMDK, VDI or VHDX (deleted when dropped).
struct RawImage {
    path: PathBuf,
    temporary: bool,
}

impl RawImage {
    fn open(image: &Path, tmp_dir: &Path) -> Result<RawImage> {
        let mut head = [0u8; 72];
        let mut file = File::open(image).map_err(|e| BuildError::io(image, e))?;
        let n = file.read(&mut head).map_err(|e| BuildError::io(image, e))?;
        let Some(format) = detect_format(&head[..n]) else {
            return Ok(RawImage { path: image.to_path_buf(), temporary: false });
        };
        let path = tmp_dir.join(format!("convert-{}.raw", std::process::id()));
        eprintln!("converting {} from {format} to raw with qemu-img", image.display());
        // The log is the system's temporary file, not the store's tmp/ (which keeps nothing
        // of a run), so that the error's "see LOG" still points at a file.
        let log = std::env::temp_dir().join(format!("image-build-convert-{}.log", std::process::id()));
        let mut runner = crate::tool::Runner::new(&log, convert_hint)?;
        let raw = RawImage { path, temporary: true };
        let mut convert = std::process::Command::new("qemu-img");
        convert.args(["convert", "-f", format, "-O", "raw"]).arg(image).arg(&raw.path);
        runner.run(&format!("qemu-img convert {}", image.display()), &mut convert)?;
        let _ = std::fs::remove_file(&log);
        Ok(raw)
    }
}

/// Advice for a failed `qemu-img convert`: the raw copy is as large as the whole image.
fn convert_hint(symptom: crate::tool::Symptom) -> &'static str {
    match symptom {
        crate::tool::Symptom::DiskFull => " (the raw copy needs the image's full size free in the store's tmp/)",
        _ => "",
    }
}

impl Drop for RawImage {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The disk image formats `add` converts, known by their magic numbers.
fn detect_format(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"QFI\xfb") {
        Some("qcow2")
    } else if head.starts_with(b"KDMV") || head.starts_with(b"# Disk DescriptorFile") {
        Some("vmdk")
    } else if head.starts_with(b"vhdxfile") {
        Some("vhdx")
    } else if head.len() >= 68 && head[64..68] == [0x7f, 0x10, 0xda, 0xbe] {
        Some("vdi")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_magic() {
        assert_eq!(detect_format(b"QFI\xfb\0\0\0\x03"), Some("qcow2"));
        assert_eq!(detect_format(b"KDMV...."), Some("vmdk"));
        let mut vdi = vec![0u8; 72];
        vdi[64..68].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(detect_format(&vdi), Some("vdi"));
        assert_eq!(detect_format(&[0u8; 72]), None);
        assert_eq!(detect_format(b"\xeb\x63\x90"), None);
    }

    #[test]
    fn iso9660_by_its_volume_descriptor() {
        let mut iso = vec![0u8; 34816];
        assert!(!is_iso9660(&iso));
        iso[32768..32774].copy_from_slice(b"\x01CD001");
        assert!(is_iso9660(&iso));
        assert!(!is_iso9660(&iso[..32772]), "too short to hold the signature");
        let mut shifted = vec![0u8; 34816];
        shifted[32768..32773].copy_from_slice(b"CD001");
        assert!(!is_iso9660(&shifted), "one byte early is not the signature");
    }

    #[test]
    fn the_login_hint_is_the_flag_else_the_file_os_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("week1.img");
        let opts = |login: Option<&str>| AddOptions {
            replace: true,
            store: dir.path().join("store"),
            distro: "bookworm".into(),
            date: "2026-11-22".into(),
            title: None,
            block_size: 4096,
            level: 3,
            memory_mib: None,
            cpus: 1,
            firmware: Firmware::Bios,
            notes: String::new(),
            media: None,
            login: login.map(str::to_string),
            source_url: None,
            source_sha256: None,
            key: dir.path().join("key"),
            valid_days: 1,
            image: image.clone(),
        };
        assert_eq!(login_hint(&opts(None)).unwrap(), None);
        std::fs::write(dir.path().join("week1.img.login"), "root, no password\n").unwrap();
        assert_eq!(login_hint(&opts(None)).unwrap().as_deref(), Some("root, no password"));
        assert_eq!(login_hint(&opts(Some("user live"))).unwrap().as_deref(), Some("user live"));
        assert_eq!(login_hint(&opts(Some("  "))).unwrap(), None, "an empty --login means no hint");
    }

    #[test]
    fn memory_by_medium_and_size() {
        assert_eq!(propose_memory_mib(Media::Disk, 4 << 30), 1024);
        assert_eq!(propose_memory_mib(Media::Cdrom, 6 << 20), 1280);
        assert_eq!(propose_memory_mib(Media::Cdrom, 4 << 30), 3072);
        assert_eq!(propose_memory_mib(Media::Cdrom, 64 << 30), 8192);
    }

    #[test]
    fn sha256_of_a_file_and_bad_hex() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("abc");
        std::fs::write(&f, b"abc").unwrap();
        // FIPS 180-2's example.
        assert_eq!(sha256_file(&f).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(parse_sha256("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD").is_ok());
        assert!(parse_sha256("ba7816bf").is_err());
        assert!(parse_sha256(&"g".repeat(64)).is_err());
    }
}
