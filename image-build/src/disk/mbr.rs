//! The MBR partition table, written and read by hand.
//!
//! Why by hand: the disks here are plain files, and a partitioner would make the bytes
//! depend on the host's tools (sfdisk picks a random disk signature). Here the table is
//! a pure function of the inputs and is unit tested. It does not support GPT (Circular's
//! guests boot with SeaBIOS; the USB stick boots UEFI from the MBR's ESP).

use super::DiskError;

pub const SECTOR: u64 = 512;
/// Partitions start at 1 MiB, the usual alignment; GRUB's core.img lives before it.
pub const PART_START_LBA: u64 = 2048;

/// Partition type: Linux filesystem.
pub const LINUX: u8 = 0x83;
/// Partition type: EFI system partition (the USB stick's FAT32).
pub const EFI_SYSTEM: u8 = 0xef;

/// Where the disk signature sits (the Windows NT disk id; GRUB keeps it).
pub(super) const DISK_SIGNATURE: usize = 0x1b8;
const TABLE: usize = 0x1be;
const ENTRY_LEN: usize = 16;

/// One primary partition, in sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub bootable: bool,
    pub kind: u8,
    pub start: u64,
    pub sectors: u64,
}

/// A partition as the MBR describes it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub offset: u64,
    pub size: u64,
}

/// The first sector: disk signature, up to four primary partitions and the 0x55AA mark.
/// No boot code yet ([`super::grub::boot_sectors`] adds it). CHS fields are computed
/// with the usual 255 heads × 63 sectors geometry, as sfdisk does.
pub fn build(signature: u32, entries: &[Entry]) -> Result<[u8; 512], DiskError> {
    if entries.len() > 4 {
        return Err(DiskError::Layout(format!("{} partitions: an MBR holds at most four", entries.len())));
    }
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|e| e.start);
    for (i, e) in sorted.iter().enumerate() {
        if e.start == 0 || e.sectors == 0 || e.kind == 0 {
            return Err(DiskError::Layout(format!("partition at sector {} is empty or overlaps the MBR", e.start)));
        }
        if let Some(next) = sorted.get(i + 1) {
            if e.start + e.sectors > next.start {
                return Err(DiskError::Layout(format!(
                    "the partitions at sectors {} and {} overlap",
                    e.start, next.start
                )));
            }
        }
    }
    let mut s = [0u8; 512];
    s[DISK_SIGNATURE..DISK_SIGNATURE + 4].copy_from_slice(&signature.to_le_bytes());
    for (i, p) in entries.iter().enumerate() {
        let start = u32::try_from(p.start).map_err(|_| DiskError::TooLarge)?;
        let sectors = u32::try_from(p.sectors).map_err(|_| DiskError::TooLarge)?;
        let e = &mut s[TABLE + ENTRY_LEN * i..TABLE + ENTRY_LEN * (i + 1)];
        e[0] = if p.bootable { 0x80 } else { 0 };
        e[1..4].copy_from_slice(&chs(p.start));
        e[4] = p.kind;
        e[5..8].copy_from_slice(&chs(p.start + p.sectors - 1));
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&sectors.to_le_bytes());
    }
    s[510] = 0x55;
    s[511] = 0xaa;
    Ok(s)
}

/// The layout of `image-build os` and of the test guest: one bootable Linux (0x83)
/// partition from [`PART_START_LBA`] to the end of a disk of `disk_size` bytes.
pub fn one_linux_partition(disk_size: u64, signature: u32) -> Result<[u8; 512], DiskError> {
    let total = disk_size / SECTOR;
    if total <= PART_START_LBA + 2048 {
        return Err(DiskError::TooSmall { size: disk_size });
    }
    build(signature, &[Entry { bootable: true, kind: LINUX, start: PART_START_LBA, sectors: total - PART_START_LBA }])
}

/// CHS for an LBA with the usual 255 heads × 63 sectors geometry; past cylinder 1023
/// the conventional "use LBA" value.
fn chs(lba: u64) -> [u8; 3] {
    let cyl = lba / (255 * 63);
    if cyl > 1023 {
        return [0xfe, 0xff, 0xff];
    }
    let head = (lba / 63) % 255;
    let sector = lba % 63 + 1;
    [head as u8, (sector as u8) | (((cyl >> 8) as u8) << 6), cyl as u8]
}

/// The table's used entries, in table order.
pub fn entries(sector: &[u8; 512]) -> Vec<Entry> {
    (0..4)
        .map(|i| {
            let e = &sector[TABLE + ENTRY_LEN * i..TABLE + ENTRY_LEN * (i + 1)];
            Entry {
                bootable: e[0] == 0x80,
                kind: e[4],
                start: u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]])),
                sectors: u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]])),
            }
        })
        .filter(|e| e.kind != 0)
        .collect()
}

/// Reads the first partition from an image's MBR: the root filesystem of an image
/// `image-build os` made.
pub fn first_partition(sector: &[u8; 512]) -> Result<Partition, DiskError> {
    if sector[510] != 0x55 || sector[511] != 0xaa {
        return Err(DiskError::NoPartitionTable);
    }
    let e = &sector[TABLE..TABLE + ENTRY_LEN];
    if e[4] != LINUX {
        return Err(DiskError::NotLinux { kind: e[4] });
    }
    let start = u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]]));
    let count = u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]]));
    if start == 0 || count == 0 {
        return Err(DiskError::EmptyPartition);
    }
    Ok(Partition { offset: start * SECTOR, size: count * SECTOR })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_linux_partition_layout() {
        let m = one_linux_partition(2 << 30, 0x1234_5678).unwrap();
        assert_eq!(&m[510..], &[0x55, 0xaa]);
        assert_eq!(&m[0x1b8..0x1bc], &0x1234_5678u32.to_le_bytes());
        let p = first_partition(&m).unwrap();
        assert_eq!(p, Partition { offset: 1 << 20, size: (2 << 30) - (1 << 20) });
        assert_eq!(m[0x1be], 0x80);
        assert_eq!(&m[0x1bf..0x1c2], &[0x20, 0x21, 0x00]); // LBA 2048 = C0 H32 S33
                                                           // Last sector 4194303 = C261 H21 S16: sector 16 | cylinder bits 8-9 (1) << 6, cylinder low byte 5.
        assert_eq!(&m[0x1c3..0x1c6], &[21, 16 | (1 << 6), 5]);
        let big = one_linux_partition(16 << 30, 0).unwrap();
        assert_eq!(&big[0x1c3..0x1c6], &[0xfe, 0xff, 0xff]);
    }

    #[test]
    fn refuses_tiny_and_huge() {
        assert!(matches!(one_linux_partition(1 << 20, 0), Err(DiskError::TooSmall { .. })));
        assert!(matches!(one_linux_partition(3 << 40, 0), Err(DiskError::TooLarge)));
    }

    #[test]
    fn partition_errors() {
        assert!(matches!(first_partition(&[0u8; 512]), Err(DiskError::NoPartitionTable)));
        let mut m = one_linux_partition(1 << 30, 1).unwrap();
        m[0x1c2] = 0x07;
        assert!(first_partition(&m).unwrap_err().to_string().contains("0x07"));
    }

    /// The USB stick's table: an ESP with the boot flag, then the cache.
    #[test]
    fn two_partitions_round_trip() {
        let parts = [
            Entry { bootable: true, kind: EFI_SYSTEM, start: 2048, sectors: 4096 },
            Entry { bootable: false, kind: LINUX, start: 6144, sectors: 100 },
        ];
        let s = build(0x1234_5678, &parts).unwrap();
        assert_eq!(&s[440..444], &[0x78, 0x56, 0x34, 0x12]);
        assert_eq!(s[446], 0x80);
        assert_eq!(s[446 + 4], 0xef);
        assert_eq!(&s[446 + 8..446 + 12], &2048u32.to_le_bytes());
        assert_eq!(s[462], 0);
        assert_eq!(s[462 + 4], 0x83);
        assert_eq!(&s[510..], &[0x55, 0xaa]);
        assert_eq!(entries(&s), parts);
    }

    #[test]
    fn refuses_bad_tables() {
        let e = |start, sectors| Entry { bootable: false, kind: LINUX, start, sectors };
        assert!(build(0, &[e(2048, 100), e(2100, 10)]).is_err());
        assert!(build(0, &[e(0, 100)]).is_err());
        assert!(build(0, &[e(2048, 0)]).is_err());
        assert!(build(0, &[e(1, 1), e(2, 1), e(3, 1), e(4, 1), e(5, 1)]).is_err());
        assert!(build(0, &[e(1 << 32, 1)]).is_err());
        assert!(build(0, &[e(2048, 100), e(2148, 10)]).is_ok());
    }

    /// sfdisk reads the table as written: types, boot flag, start and size.
    #[test]
    fn sfdisk_agrees() {
        if !testkit::need(&["sfdisk"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(8 << 20).unwrap();
        let s = build(
            0xc1c0_1a20,
            &[
                Entry { bootable: true, kind: EFI_SYSTEM, start: 2048, sectors: 8192 },
                Entry { bootable: false, kind: LINUX, start: 10240, sectors: 6144 },
            ],
        )
        .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &s, 0).unwrap();
        let out = std::process::Command::new("sfdisk").arg("--dump").arg(&img).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let dump = String::from_utf8_lossy(&out.stdout);
        assert!(dump.contains("label: dos") && dump.contains("label-id: 0xc1c01a20"), "{dump}");
        assert!(dump.contains("disk.img1 : start=        2048, size=        8192, type=ef, bootable"), "{dump}");
        assert!(dump.contains("disk.img2 : start=       10240, size=        6144, type=83\n"), "{dump}");
    }
}
