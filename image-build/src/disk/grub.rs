//! GRUB for BIOS on an MBR disk, written by hand: boot.img in the MBR, core.img in the
//! gap between the MBR and the first partition.
//!
//! Why by hand: `grub-bios-setup` refuses plain files and `grub-install` wants a loop
//! device and writes into the mounted filesystem; both make the bytes depend on the
//! host. Here the patching is a pure function of the inputs and is unit tested.

use super::mbr::{self, SECTOR};
use super::DiskError;

/// GRUB's i386-pc images and modules, from Debian's `grub-pc-bin`.
pub const I386_PC_DIR: &str = "/usr/lib/grub/i386-pc";
/// GRUB's MBR boot code.
pub const BOOT_IMG: &str = "/usr/lib/grub/i386-pc/boot.img";
/// core.img starts right after the MBR, as grub-bios-setup puts it on an MBR disk.
pub const CORE_LBA: u64 = 1;

// Offsets in GRUB 2's i386-pc boot.img (include/grub/i386/pc/boot.h).
const BPB_START: usize = 0x3;
const BPB_END: usize = 0x5a;
const KERNEL_SECTOR: usize = 0x5c;
const BOOT_DRIVE: usize = 0x64;
const DRIVE_CHECK: usize = 0x66;
const PART_END: usize = 0x1fe;
/// diskboot.img loads the rest of core.img to this segment (GRUB_BOOT_I386_PC_KERNEL_SEG + 0x20).
pub(super) const CORE_SEGMENT: u16 = 0x820;

/// Does what grub-bios-setup does for an MBR disk with core.img embedded at
/// [`CORE_LBA`]: returns the new first sector and the patched core.img.
///
/// - boot.img keeps the disk's BPB area, signature and partition table, learns where
///   core.img starts, uses the BIOS boot drive (0xff), and skips the floppy-drive
///   check (a hard disk; USB sticks boot as hard disks too).
/// - core.img's first sector (diskboot.img) gets the block list of the remaining
///   sectors: one contiguous run after it, loaded at segment 0x820. grub-mkimage writes
///   the same list for this placement, but checking and writing it here keeps the
///   result right whatever the host's GRUB assumed.
///
/// core.img must end before the first partition in `mbr`. No Reed-Solomon redundancy is
/// added; GRUB boots without it (its redundancy field stays 0).
pub fn boot_sectors(mbr: &[u8; 512], boot_img: &[u8], core_img: &[u8]) -> Result<([u8; 512], Vec<u8>), DiskError> {
    if boot_img.len() != 512 {
        return Err(DiskError::BootImgSize { len: boot_img.len() });
    }
    let gap_end = mbr::entries(mbr).iter().map(|e| e.start).min().ok_or(DiskError::NoPartitionTable)?;
    let nsec = core_img.len().div_ceil(SECTOR as usize);
    if nsec < 2 {
        return Err(DiskError::CoreTooSmall { len: core_img.len() });
    }
    if CORE_LBA + nsec as u64 > gap_end {
        return Err(DiskError::CoreTooBig { need: nsec as u64, have: gap_end.saturating_sub(CORE_LBA) });
    }
    let mut boot = [0u8; 512];
    boot.copy_from_slice(boot_img);
    boot[BPB_START..BPB_END].copy_from_slice(&mbr[BPB_START..BPB_END]);
    boot[mbr::DISK_SIGNATURE..PART_END].copy_from_slice(&mbr[mbr::DISK_SIGNATURE..PART_END]);
    boot[510] = 0x55;
    boot[511] = 0xaa;
    boot[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&CORE_LBA.to_le_bytes());
    boot[BOOT_DRIVE] = 0xff;
    boot[DRIVE_CHECK] = 0x90;
    boot[DRIVE_CHECK + 1] = 0x90;

    let mut core = core_img.to_vec();
    core.resize(nsec * SECTOR as usize, 0);
    // struct grub_pc_bios_boot_blocklist { u64 start; u16 len; u16 segment; } at the
    // end of the first sector; the entry below it must stay zero (the terminator).
    let bl = SECTOR as usize - 12;
    let seg = u16::from_le_bytes([core[bl + 10], core[bl + 11]]);
    if seg != CORE_SEGMENT {
        return Err(DiskError::NotI386Pc { segment: seg });
    }
    let rest = u16::try_from(nsec - 1).map_err(|_| DiskError::CoreTooBig { need: nsec as u64, have: gap_end - 1 })?;
    core[bl..bl + 8].copy_from_slice(&(CORE_LBA + 1).to_le_bytes());
    core[bl + 8..bl + 10].copy_from_slice(&rest.to_le_bytes());
    if core[bl - 12..bl].iter().any(|&b| b != 0) {
        return Err(DiskError::BlockListInUse);
    }
    Ok((boot, core))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::*;

    fn fake_core(sectors: usize) -> Vec<u8> {
        let mut c = vec![0xAB; sectors * 512 - 100];
        c[..512].fill(0);
        c[512 - 2..512].copy_from_slice(&CORE_SEGMENT.to_le_bytes());
        c
    }

    #[test]
    fn grub_patching() {
        let m = mbr::one_linux_partition(1 << 30, 0xdead_beef).unwrap();
        let mut boot_img = vec![0x11u8; 512];
        boot_img[0x1fe] = 0;
        let (boot, core) = boot_sectors(&m, &boot_img, &fake_core(100)).unwrap();
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
        let m = mbr::one_linux_partition(1 << 30, 1).unwrap();
        let boot_img = vec![0u8; 512];
        assert!(matches!(boot_sectors(&m, &boot_img, &[0u8; 4096]), Err(DiskError::NotI386Pc { .. })));
        assert!(matches!(boot_sectors(&m, &boot_img, &fake_core(2048)), Err(DiskError::CoreTooBig { .. })));
        assert!(boot_sectors(&m, &boot_img, &fake_core(2047)).is_ok());
        assert!(matches!(boot_sectors(&m, &[0u8; 100], &fake_core(10)), Err(DiskError::BootImgSize { .. })));
        assert!(matches!(boot_sectors(&[0u8; 512], &boot_img, &fake_core(10)), Err(DiskError::NoPartitionTable)));
    }

    /// The gap ends where the first partition starts, whichever entry holds it.
    #[test]
    fn the_gap_ends_at_the_lowest_partition() {
        let e = |start, sectors| mbr::Entry { bootable: false, kind: mbr::LINUX, start, sectors };
        let m = mbr::build(0, &[e(4096, 100), e(64, 100)]).unwrap();
        let boot_img = vec![0u8; 512];
        assert!(boot_sectors(&m, &boot_img, &fake_core(63)).is_ok());
        assert!(matches!(
            boot_sectors(&m, &boot_img, &fake_core(64)),
            Err(DiskError::CoreTooBig { need: 64, have: 63 })
        ));
    }

    /// A real core.img from the host's grub-mkimage and the real boot.img: the block list
    /// names every sector after the first, starting right after core.img's own first
    /// sector, and boot.img points at core.img.
    #[test]
    fn real_grub_images() {
        if !testkit::need(&["grub-mkimage", BOOT_IMG]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let core_path = dir.path().join("core.img");
        let st = Command::new("grub-mkimage")
            .args(["-O", "i386-pc", "-d", I386_PC_DIR, "-p", "(hd0,msdos1)/boot/grub", "-o"])
            .arg(&core_path)
            .args(["biosdisk", "part_msdos", "ext2", "normal"])
            .status()
            .unwrap();
        assert!(st.success());
        let core_img = std::fs::read(&core_path).unwrap();
        let boot_img = std::fs::read(Path::new(BOOT_IMG)).unwrap();
        let m = mbr::one_linux_partition(32 << 20, 7).unwrap();
        let (boot, core) = boot_sectors(&m, &boot_img, &core_img).unwrap();
        let nsec = core_img.len().div_ceil(512);
        assert_eq!(core.len(), nsec * 512);
        assert_eq!(&core[..core_img.len()][..500], &core_img[..500], "only the block list changes");
        assert_eq!(&core[512..core_img.len()], &core_img[512..], "only the first sector changes");
        assert_eq!(u64::from_le_bytes(core[500..508].try_into().unwrap()), CORE_LBA + 1);
        assert_eq!(u16::from_le_bytes([core[508], core[509]]) as usize, nsec - 1);
        assert_eq!(u64::from_le_bytes(boot[0x5c..0x64].try_into().unwrap()), CORE_LBA);
        assert_eq!(&boot[..3], &boot_img[..3], "boot.img's code stays");
        assert_eq!(&boot[0x5a..0x5c], &boot_img[0x5a..0x5c]);
        assert_eq!(&boot[0x68..0x1b8], &boot_img[0x68..0x1b8]);
        assert_eq!(mbr::entries(&boot), mbr::entries(&m), "the partition table stays");
    }
}
