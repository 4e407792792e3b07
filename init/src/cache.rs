//! The cache partition: found by its ext4 label (`circular.cache=`), grown to
//! fill the stick on first boot, checked and mounted. Without it the appliance
//! still works from RAM (nothing survives a reboot), and says so.

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::mount::{mount, MsFlags};

pub const MOUNTPOINT: &str = "/cache";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("partition table: {0}")]
    Table(String),
    #[error("{0} failed: {1}")]
    Tool(String, String),
}

/// What the superblock of an ext2/3/4 filesystem tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ext4 {
    pub label: String,
    pub size_bytes: u64,
}

/// Reads an ext4 superblock (the 1024 bytes at offset 1024).
pub fn parse_superblock(sb: &[u8]) -> Option<Ext4> {
    if sb.len() < 0x160 || u16::from_le_bytes([sb[56], sb[57]]) != 0xef53 {
        return None;
    }
    let le32 = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    let log_bs = le32(24);
    if log_bs > 6 {
        return None;
    }
    let bs = 1024u64 << log_bs;
    let incompat = le32(0x60);
    let hi = if incompat & 0x80 != 0 { u64::from(le32(0x150)) } else { 0 };
    let blocks = u64::from(le32(4)) | (hi << 32);
    let raw = &sb[120..136];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    Some(Ext4 { label: String::from_utf8_lossy(&raw[..end]).into_owned(), size_bytes: blocks * bs })
}

fn read_sysfs_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Block devices (disks and partitions) whose ext4 label is `label`.
pub fn find_by_label(label: &str) -> Option<PathBuf> {
    let rd = std::fs::read_dir("/sys/class/block").ok()?;
    let mut names: Vec<String> = rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for n in names {
        if n.starts_with("loop") || n.starts_with("ram") || n.starts_with("zram") {
            continue;
        }
        let dev = PathBuf::from("/dev").join(&n);
        let Ok(f) = std::fs::File::open(&dev) else { continue };
        let mut sb = vec![0u8; 1024];
        if f.read_exact_at(&mut sb, 1024).is_err() {
            continue;
        }
        if parse_superblock(&sb).is_some_and(|e| e.label == label) {
            return Some(dev);
        }
    }
    None
}

/// Waits for the labelled partition: a USB stick's partitions appear a
/// moment after its driver loads.
pub fn wait_for_label(label: &str, limit: Duration) -> Option<PathBuf> {
    let start = Instant::now();
    loop {
        if let Some(d) = find_by_label(label) {
            return Some(d);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Grows MBR entry `index` (0-based) to the end of the disk, if it is the last
/// partition and at least 1 MiB can be gained. Returns the new length in
/// sectors, or `None` when there is nothing to do. MBR caps at 2^32 sectors.
pub fn grow_mbr_entry(
    sector0: &mut [u8],
    index: usize,
    start: u64,
    disk_sectors: u64,
) -> Result<Option<u64>, CacheError> {
    if sector0.len() < 512 || sector0[510] != 0x55 || sector0[511] != 0xaa {
        return Err(CacheError::Table("no MBR signature".into()));
    }
    if index > 3 {
        return Err(CacheError::Table("logical partitions are not grown".into()));
    }
    let entry = |i: usize| {
        let e = &sector0[446 + 16 * i..446 + 16 * (i + 1)];
        let s = u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]]));
        let n = u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]]));
        (e[4], s, n)
    };
    let (kind, s, n) = entry(index);
    if kind == 0xee {
        return Err(CacheError::Table("GPT disk: grow the partition with a GPT tool".into()));
    }
    if kind == 0 || s != start {
        return Err(CacheError::Table(format!("entry {} does not start at sector {start}", index + 1)));
    }
    let mut limit = disk_sectors.min(1u64 << 32);
    for i in (0..4).filter(|&i| i != index) {
        let (k, os, _) = entry(i);
        if k != 0 && os > s {
            limit = limit.min(os);
        }
    }
    let new = limit - s;
    if new < n + 2048 {
        return Ok(None);
    }
    let new32 = u32::try_from(new.min(u64::from(u32::MAX))).map_err(|_| CacheError::Table("size".into()))?;
    sector0[446 + 16 * index + 12..446 + 16 * index + 16].copy_from_slice(&new32.to_le_bytes());
    Ok(Some(u64::from(new32)))
}

#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: i32,
    devname: [u8; 64],
    volname: [u8; 64],
}

#[repr(C)]
struct BlkpgIoctlArg {
    op: i32,
    flags: i32,
    datalen: i32,
    data: *mut libc::c_void,
}

const BLKPG: libc::c_ulong = 0x1269;
const BLKPG_RESIZE_PARTITION: i32 = 3;

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |e| CacheError::Io(what.to_string(), e)
}

fn run(tool: &str, args: &[&str]) -> Result<(), CacheError> {
    let out = Command::new(tool).args(args).output().map_err(io_err(tool))?;
    // e2fsck exits 1 when it fixed something: that is success for us.
    let ok = out.status.success() || (tool.ends_with("e2fsck") && out.status.code() == Some(1));
    if ok {
        Ok(())
    } else {
        Err(CacheError::Tool(
            format!("{tool} {}", args.join(" ")),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// First boot: grow the partition to the end of the stick (MBR edit +
/// BLKPG so the kernel sees it without a re-read), then the filesystem
/// (offline: e2fsck -f, resize2fs). Also finishes a grow that was cut off
/// between the two steps.
pub fn grow(part: &Path) -> Result<bool, CacheError> {
    let name = part.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let sys = Path::new("/sys/class/block").join(&name);
    let (Some(pno), Some(start), Some(_)) =
        (read_sysfs_u64(&sys.join("partition")), read_sysfs_u64(&sys.join("start")), read_sysfs_u64(&sys.join("size")))
    else {
        return Ok(false); // a whole-disk filesystem: nothing to grow
    };
    let disk_dir = std::fs::canonicalize(&sys).map_err(io_err("sysfs"))?;
    let disk_dir = disk_dir.parent().ok_or_else(|| CacheError::Table("no parent disk".into()))?;
    let disk_name = disk_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let disk_sectors = read_sysfs_u64(&disk_dir.join("size")).ok_or_else(|| CacheError::Table("disk size".into()))?;
    let disk = PathBuf::from("/dev").join(&disk_name);
    let mut grew = false;
    if pno <= 4 {
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&disk).map_err(io_err("open disk"))?;
        let mut s0 = vec![0u8; 512];
        f.read_exact_at(&mut s0, 0).map_err(io_err("read MBR"))?;
        if let Some(new) = grow_mbr_entry(&mut s0, pno as usize - 1, start, disk_sectors)? {
            f.write_all_at(&s0, 0).map_err(io_err("write MBR"))?;
            f.sync_all().map_err(io_err("sync MBR"))?;
            let mut p = BlkpgPartition {
                start: (start * 512) as i64,
                length: (new * 512) as i64,
                pno: pno as i32,
                devname: [0; 64],
                volname: [0; 64],
            };
            let mut arg = BlkpgIoctlArg {
                op: BLKPG_RESIZE_PARTITION,
                flags: 0,
                datalen: std::mem::size_of::<BlkpgPartition>() as i32,
                data: (&mut p as *mut BlkpgPartition).cast(),
            };
            // SAFETY: BLKPG reads a blkpg_ioctl_arg whose data points to `p`,
            // both alive for the call.
            let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKPG, &mut arg) };
            if r < 0 {
                return Err(CacheError::Io("BLKPG resize partition".into(), std::io::Error::last_os_error()));
            }
            crate::say!("cache: partition {} grown to {} MiB", part.display(), new / 2048);
            grew = true;
        }
    }
    // Grow the filesystem if it is smaller than its partition.
    let part_bytes = read_sysfs_u64(&sys.join("size")).unwrap_or(0) * 512;
    let f = std::fs::File::open(part).map_err(io_err("open partition"))?;
    let mut sb = vec![0u8; 1024];
    f.read_exact_at(&mut sb, 1024).map_err(io_err("read superblock"))?;
    drop(f);
    let fs = parse_superblock(&sb).ok_or_else(|| CacheError::Table("no ext4 superblock".into()))?;
    if fs.size_bytes + (1 << 20) < part_bytes {
        let p = part.to_string_lossy();
        crate::say!(
            "cache: growing the filesystem from {} MiB to {} MiB (first boot) ...",
            fs.size_bytes >> 20,
            part_bytes >> 20
        );
        run("e2fsck", &["-f", "-p", &p])?;
        run("resize2fs", &[&p])?;
        grew = true;
    }
    Ok(grew)
}

/// Where the cache lives this boot.
#[derive(Debug, Clone)]
pub struct Cache {
    pub dir: PathBuf,
    pub device: Option<PathBuf>,
}

impl Cache {
    pub fn in_ram(&self) -> bool {
        self.device.is_none()
    }
}

fn mount_ext4(dev: &Path) -> Result<(), nix::Error> {
    mount(
        Some(dev),
        MOUNTPOINT,
        Some("ext4"),
        MsFlags::MS_NOATIME | MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        None::<&str>,
    )
}

/// Finds, grows and mounts the cache; falls back to RAM with a warning.
pub fn setup(label: &str, do_grow: bool) -> Cache {
    let _ = std::fs::create_dir_all(MOUNTPOINT);
    let Some(dev) = wait_for_label(label, Duration::from_secs(15)) else {
        crate::warn!("no partition labelled {label} found: the cache is in RAM and is lost at power-off.");
        crate::warn!("To keep it, write the Circular image to the stick again (it has that partition).");
        return ram();
    };
    crate::say!("cache: {label} is {}", dev.display());
    if do_grow {
        if let Err(e) = grow(&dev) {
            crate::warn!("cache: could not grow {}: {e} (the cache keeps its size)", dev.display());
        }
    }
    let first = mount_ext4(&dev);
    let mounted = match first {
        Ok(()) => Ok(()),
        Err(e) => {
            crate::warn!("cache: mount {}: {e}; checking the filesystem", dev.display());
            let _ = run("e2fsck", &["-y", &dev.to_string_lossy()]);
            mount_ext4(&dev)
        }
    };
    match mounted {
        Ok(()) => Cache { dir: PathBuf::from(MOUNTPOINT), device: Some(dev) },
        Err(e) => {
            crate::warn!("cache: cannot mount {}: {e}. Using RAM instead: nothing is kept.", dev.display());
            ram()
        }
    }
}

/// The cache as it is mounted now (for the shutdown path after a failure).
pub fn current() -> Cache {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let device = mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.len() > 2 && w[1] == MOUNTPOINT && w[2] == "ext4")
        .map(|w| PathBuf::from(w[0]));
    Cache { dir: PathBuf::from(MOUNTPOINT), device }
}

fn ram() -> Cache {
    if let Err(e) = mount(
        Some("tmpfs"),
        MOUNTPOINT,
        Some("tmpfs"),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some("size=50%,mode=0755"),
    ) {
        crate::warn!("tmpfs on {MOUNTPOINT}: {e}");
    }
    Cache { dir: PathBuf::from(MOUNTPOINT), device: None }
}

/// Bytes of the filesystem holding `dir`.
pub fn fs_size(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(st.blocks() as u64 * st.fragment_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbr(parts: &[(u8, u32, u32)]) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        for (i, (k, st, n)) in parts.iter().enumerate() {
            let e = &mut s[446 + 16 * i..];
            e[4] = *k;
            e[8..12].copy_from_slice(&st.to_le_bytes());
            e[12..16].copy_from_slice(&n.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xaa;
        s
    }

    #[test]
    fn grows_last_partition_to_disk_end() {
        let mut s = mbr(&[(0xef, 2048, 196608), (0x83, 198656, 131072)]);
        let new = grow_mbr_entry(&mut s, 1, 198656, 8_000_000).unwrap();
        assert_eq!(new, Some(8_000_000 - 198656));
        assert_eq!(&s[446 + 16 + 12..446 + 32], &((8_000_000u32 - 198656).to_le_bytes()));
        // second time: nothing to do
        assert_eq!(grow_mbr_entry(&mut s, 1, 198656, 8_000_000).unwrap(), None);
    }

    #[test]
    fn stops_at_the_next_partition_and_refuses_gpt() {
        let mut s = mbr(&[(0x83, 2048, 4096), (0x83, 1_000_000, 4096)]);
        assert_eq!(grow_mbr_entry(&mut s, 0, 2048, 8_000_000).unwrap(), Some(1_000_000 - 2048));
        let mut g = mbr(&[(0xee, 1, 0xffff_ffff)]);
        assert!(grow_mbr_entry(&mut g, 0, 1, 8_000_000).is_err());
        let mut wrong = mbr(&[(0x83, 2048, 4096)]);
        assert!(grow_mbr_entry(&mut wrong, 0, 4096, 8_000_000).is_err());
    }

    #[test]
    fn superblock_label_and_size() {
        let mut sb = vec![0u8; 1024];
        sb[56..58].copy_from_slice(&0xef53u16.to_le_bytes());
        sb[4..8].copy_from_slice(&16384u32.to_le_bytes());
        sb[24..28].copy_from_slice(&2u32.to_le_bytes()); // 4 KiB blocks
        sb[120..128].copy_from_slice(b"CIRCULAR");
        let e = parse_superblock(&sb).unwrap();
        assert_eq!(e, Ext4 { label: "CIRCULAR".into(), size_bytes: 64 << 20 });
        sb[56] = 0;
        assert!(parse_superblock(&sb).is_none());
    }
}
