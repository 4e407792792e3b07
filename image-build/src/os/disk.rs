//! The raw disk: an MBR with one bootable Linux partition at 1 MiB, and GRUB for BIOS
//! written by hand (boot.img in the MBR, core.img in the gap before the partition).
//!
//! Why by hand: `grub-bios-setup` refuses plain files and `grub-install` wants a loop
//! device and writes into the mounted filesystem; both make the bytes depend on the
//! host. Here the layout is a pure function of the inputs and is unit tested. It does
//! not support GPT or UEFI (Circular's guests boot with SeaBIOS).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use super::error::{OsError, Result};

pub const SECTOR: u64 = 512;
/// The partition starts at 1 MiB, the usual alignment; GRUB's core.img lives before it.
pub const PART_START_LBA: u64 = 2048;

// Offsets in GRUB 2's i386-pc boot.img (include/grub/i386/pc/boot.h).
const BPB_START: usize = 0x3;
const BPB_END: usize = 0x5a;
const KERNEL_SECTOR: usize = 0x5c;
const BOOT_DRIVE: usize = 0x64;
const DRIVE_CHECK: usize = 0x66;
const WINDOWS_NT_MAGIC: usize = 0x1b8;
const PART_END: usize = 0x1fe;
/// diskboot.img loads the rest of core.img to this segment (GRUB_BOOT_I386_PC_KERNEL_SEG + 0x20).
const CORE_SEGMENT: u16 = 0x820;

/// A partition as the MBR describes it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub offset: u64,
    pub size: u64,
}

/// The first sector: disk signature, one bootable Linux (0x83) partition from
/// [`PART_START_LBA`] to the end of the disk, and the 0x55AA mark. No boot code yet.
pub fn mbr(disk_size: u64, signature: u32) -> Result<[u8; 512]> {
    let total = disk_size / SECTOR;
    if total <= PART_START_LBA + 2048 {
        return Err(OsError::Usage(format!("a disk of {disk_size} bytes is too small")));
    }
    let sectors = total - PART_START_LBA;
    let sectors32 =
        u32::try_from(sectors).map_err(|_| OsError::Usage("the MBR cannot describe a disk of 2 TiB or more".into()))?;
    let mut s = [0u8; 512];
    s[WINDOWS_NT_MAGIC..WINDOWS_NT_MAGIC + 4].copy_from_slice(&signature.to_le_bytes());
    let e = &mut s[0x1be..0x1ce];
    e[0] = 0x80;
    e[1..4].copy_from_slice(&chs(PART_START_LBA));
    e[4] = 0x83;
    e[5..8].copy_from_slice(&chs(PART_START_LBA + sectors - 1));
    e[8..12].copy_from_slice(&(PART_START_LBA as u32).to_le_bytes());
    e[12..16].copy_from_slice(&sectors32.to_le_bytes());
    s[510] = 0x55;
    s[511] = 0xaa;
    Ok(s)
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

/// Reads the first partition from an image's MBR.
pub fn first_partition(sector: &[u8; 512]) -> std::result::Result<Partition, String> {
    if sector[510] != 0x55 || sector[511] != 0xaa {
        return Err("no MBR partition table (missing 0x55AA)".into());
    }
    let e = &sector[0x1be..0x1ce];
    if e[4] != 0x83 {
        return Err(format!("partition 1 has type {:#04x}, not Linux (0x83)", e[4]));
    }
    let start = u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as u64;
    let count = u32::from_le_bytes([e[12], e[13], e[14], e[15]]) as u64;
    if start == 0 || count == 0 {
        return Err("partition 1 is empty".into());
    }
    Ok(Partition { offset: start * SECTOR, size: count * SECTOR })
}

/// Does what grub-bios-setup does for an MBR disk with core.img embedded right after
/// the MBR: returns the new first sector and the patched core.img.
///
/// - boot.img keeps the disk's BPB area, signature and partition table, learns that
///   core.img starts at LBA 1, uses the BIOS boot drive (0xff), and skips the
///   floppy-drive check (a hard disk).
/// - core.img's first sector (diskboot.img) gets the block list of the remaining
///   sectors: one contiguous run from LBA 2, loaded at segment 0x820.
///
/// No Reed-Solomon redundancy is added; GRUB boots without it (its redundancy field stays 0).
pub fn grub_boot_sectors(mbr: &[u8; 512], boot_img: &[u8], core_img: &[u8]) -> Result<([u8; 512], Vec<u8>)> {
    if boot_img.len() != 512 {
        return Err(OsError::Grub(format!("boot.img is {} bytes, expected 512", boot_img.len())));
    }
    let nsec = core_img.len().div_ceil(512);
    if nsec < 2 {
        return Err(OsError::Grub("core.img is too small".into()));
    }
    if nsec as u64 >= PART_START_LBA {
        return Err(OsError::Grub(format!(
            "core.img needs {nsec} sectors but only {} fit before the partition",
            PART_START_LBA - 1
        )));
    }
    let mut boot = [0u8; 512];
    boot.copy_from_slice(boot_img);
    boot[BPB_START..BPB_END].copy_from_slice(&mbr[BPB_START..BPB_END]);
    boot[WINDOWS_NT_MAGIC..PART_END].copy_from_slice(&mbr[WINDOWS_NT_MAGIC..PART_END]);
    boot[510] = 0x55;
    boot[511] = 0xaa;
    boot[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&1u64.to_le_bytes());
    boot[BOOT_DRIVE] = 0xff;
    boot[DRIVE_CHECK] = 0x90;
    boot[DRIVE_CHECK + 1] = 0x90;

    let mut core = core_img.to_vec();
    core.resize(nsec * 512, 0);
    // struct grub_pc_bios_boot_blocklist { u64 start; u16 len; u16 segment; } at the
    // end of the first sector; the entry below it must stay zero (the terminator).
    let bl = 512 - 12;
    let seg = u16::from_le_bytes([core[bl + 10], core[bl + 11]]);
    if seg != CORE_SEGMENT {
        return Err(OsError::Grub(format!(
            "core.img does not start with i386-pc diskboot.img (segment {seg:#x}); was it made with -O i386-pc?"
        )));
    }
    core[bl..bl + 8].copy_from_slice(&2u64.to_le_bytes());
    core[bl + 8..bl + 10].copy_from_slice(&((nsec - 1) as u16).to_le_bytes());
    if core[bl - 12..bl].iter().any(|&b| b != 0) {
        return Err(OsError::Grub("core.img's block list area is not empty".into()));
    }
    Ok((boot, core))
}

/// Writes the MBR (with boot code) and core.img to the start of the image file.
pub fn write_boot_area(image: &mut File, boot: &[u8; 512], core: &[u8]) -> Result<()> {
    let ctx = |e| OsError::io("writing the boot sectors", e);
    image.seek(SeekFrom::Start(0)).map_err(ctx)?;
    image.write_all(boot).map_err(ctx)?;
    image.write_all(core).map_err(ctx)?;
    Ok(())
}

pub fn read_first_sector(image: &mut File) -> Result<[u8; 512]> {
    let mut s = [0u8; 512];
    image.seek(SeekFrom::Start(0)).map_err(|e| OsError::io("reading the MBR", e))?;
    image.read_exact(&mut s).map_err(|e| OsError::io("reading the MBR", e))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_core(sectors: usize) -> Vec<u8> {
        let mut c = vec![0xAB; sectors * 512 - 100];
        c[..512].fill(0);
        c[512 - 2..512].copy_from_slice(&CORE_SEGMENT.to_le_bytes());
        c
    }

    #[test]
    fn mbr_layout() {
        let m = mbr(2 << 30, 0x1234_5678).unwrap();
        assert_eq!(&m[510..], &[0x55, 0xaa]);
        assert_eq!(&m[0x1b8..0x1bc], &0x1234_5678u32.to_le_bytes());
        let p = first_partition(&m).unwrap();
        assert_eq!(p, Partition { offset: 1 << 20, size: (2 << 30) - (1 << 20) });
        assert_eq!(m[0x1be], 0x80);
        assert_eq!(&m[0x1bf..0x1c2], &[0x20, 0x21, 0x00]); // LBA 2048 = C0 H32 S33
                                                           // Last sector 4194303 = C261 H21 S16: sector 16 | cylinder bits 8-9 (1) << 6, cylinder low byte 5.
        assert_eq!(&m[0x1c3..0x1c6], &[21, 16 | (1 << 6), 5]);
        let big = mbr(16 << 30, 0).unwrap();
        assert_eq!(&big[0x1c3..0x1c6], &[0xfe, 0xff, 0xff]);
    }

    #[test]
    fn mbr_refuses_tiny_and_huge() {
        assert!(mbr(1 << 20, 0).is_err());
        assert!(mbr(3 << 40, 0).is_err());
    }

    #[test]
    fn partition_errors() {
        assert!(first_partition(&[0u8; 512]).is_err());
        let mut m = mbr(1 << 30, 1).unwrap();
        m[0x1c2] = 0x07;
        assert!(first_partition(&m).unwrap_err().contains("0x07"));
    }

    #[test]
    fn grub_patching() {
        let m = mbr(1 << 30, 0xdead_beef).unwrap();
        let mut boot_img = vec![0x11u8; 512];
        boot_img[0x1fe] = 0;
        let (boot, core) = grub_boot_sectors(&m, &boot_img, &fake_core(100)).unwrap();
        assert_eq!(&boot[0x1b8..0x200], &m[0x1b8..0x200]);
        assert_eq!(&boot[0x5c..0x64], &1u64.to_le_bytes());
        assert_eq!(boot[0x64], 0xff);
        assert_eq!(&boot[0x66..0x68], &[0x90, 0x90]);
        assert_eq!(&boot[0x3..0x5a], &m[0x3..0x5a]);
        assert_eq!(boot[0], 0x11);
        assert_eq!(core.len(), 100 * 512);
        assert_eq!(&core[500..508], &2u64.to_le_bytes());
        assert_eq!(&core[508..510], &99u16.to_le_bytes());
        assert_eq!(&core[510..512], &CORE_SEGMENT.to_le_bytes());
    }

    #[test]
    fn grub_refuses_wrong_core() {
        let m = mbr(1 << 30, 1).unwrap();
        let boot_img = vec![0u8; 512];
        assert!(grub_boot_sectors(&m, &boot_img, &vec![0u8; 4096]).is_err());
        assert!(grub_boot_sectors(&m, &boot_img, &fake_core(2048)).is_err());
        assert!(grub_boot_sectors(&m, &[0u8; 100], &fake_core(10)).is_err());
    }
}
