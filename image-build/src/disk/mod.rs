//! Bootable raw disks in plain files: the MBR partition table (`mbr`) and GRUB for BIOS
//! in the MBR and the gap after it (`grub`). One writer for every disk image
//! `image-build` makes: the Debian images (`os`), the USB stick (`usb`), and, through the
//! hidden `image-build disk` subcommand, the test guest (`e2e/lib/tiny-guest.sh`).
//!
//! It is not a partitioner or a filesystem maker: callers choose the layout and fill the
//! partitions themselves (`mke2fs -E offset=`, `mkfs.fat --offset`), before or after.

pub mod grub;
pub mod mbr;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What can be wrong with a disk layout or with GRUB's images. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("a disk of {size} bytes is too small: it needs more than 2 MiB (1 MiB before the partition, 1 MiB in it)")]
    TooSmall { size: u64 },

    #[error("the MBR cannot describe a disk of 2 TiB or more: make the disk smaller")]
    TooLarge,

    #[error("partition table: {0}")]
    Layout(String),

    #[error("no MBR partition table (missing 0x55AA, or no partition)")]
    NoPartitionTable,

    #[error("partition 1 has type {kind:#04x}, not Linux (0x83)")]
    NotLinux { kind: u8 },

    #[error("partition 1 is empty")]
    EmptyPartition,

    #[error("GRUB's boot.img is {len} bytes, expected 512: reinstall grub-pc-bin")]
    BootImgSize { len: usize },

    #[error("GRUB's core.img is only {len} bytes: it is not a core image (make it with grub-mkimage -O i386-pc)")]
    CoreTooSmall { len: usize },

    #[error(
        "GRUB's core.img needs {need} sectors but only {have} fit before the first partition: \
         embed fewer GRUB modules, or start the partition later"
    )]
    CoreTooBig { need: u64, have: u64 },

    #[error(
        "GRUB's core.img does not start with i386-pc diskboot.img (segment {segment:#x}): make it with grub-mkimage -O i386-pc"
    )]
    NotI386Pc { segment: u16 },

    #[error("GRUB's core.img already has a second block list entry: give the unpatched output of grub-mkimage")]
    BlockListInUse,

    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the boot code went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootArea {
    /// Sectors core.img fills, from [`grub::CORE_LBA`].
    pub core_sectors: u64,
}

/// Makes `image` bootable by a BIOS: writes `mbr` (the partition table) with GRUB's
/// `boot_img` code into sector 0, and `core_img`, with its block list patched, from
/// [`grub::CORE_LBA`]. Nothing else in the file changes, so the partitions' filesystems
/// may be made before or after.
pub fn write_bootable_mbr(
    image: &File,
    path: &Path,
    mbr: &[u8; 512],
    boot_img: &[u8],
    core_img: &[u8],
) -> Result<BootArea, DiskError> {
    let (boot, core) = grub::boot_sectors(mbr, boot_img, core_img)?;
    let io = |source| DiskError::Io { context: "writing the boot sectors of", path: path.to_path_buf(), source };
    image.write_all_at(&boot, 0).map_err(io)?;
    image.write_all_at(&core, grub::CORE_LBA * mbr::SECTOR).map_err(io)?;
    Ok(BootArea { core_sectors: core.len() as u64 / mbr::SECTOR })
}

/// Reads sector 0 of an image.
pub fn read_first_sector(image: &File, path: &Path) -> Result<[u8; 512], DiskError> {
    let mut s = [0u8; 512];
    image.read_exact_at(&mut s, 0).map_err(|source| DiskError::Io {
        context: "reading the MBR of",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(s)
}

/// The disk signature `image-build disk` writes unless told otherwise, so that the same
/// inputs give the same bytes.
const DEFAULT_SIGNATURE: &str = "c1c01a20";

/// `image-build disk`: what the test guest needs from this module, for shell scripts.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// GRUB's i386-pc core image (grub-mkimage -O i386-pc); its prefix must lead to grub.cfg.
    #[arg(long, value_name = "FILE")]
    pub core: PathBuf,
    /// GRUB's MBR boot code.
    #[arg(long, value_name = "FILE", default_value = grub::BOOT_IMG)]
    pub boot_img: PathBuf,
    /// Disk signature, 8 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_signature, default_value = DEFAULT_SIGNATURE)]
    pub signature: u32,
    /// The raw disk image; its length is the disk's size.
    pub image: PathBuf,
}

fn parse_signature(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("{s}: not 8 hex digits ({e})"))
}

/// Writes an MBR with one bootable Linux partition from 1 MiB to the end of the image,
/// and GRUB for BIOS before it. The partition's filesystem is the caller's
/// (`mke2fs -E offset=1048576`).
pub fn run(args: &Args) -> Result<(), DiskError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| DiskError::Io { context: "reading", path: path.to_path_buf(), source })
    };
    let core_img = read(&args.core)?;
    let boot_img = read(&args.boot_img)?;
    let image = OpenOptions::new().read(true).write(true).open(&args.image).map_err(|source| DiskError::Io {
        context: "opening",
        path: args.image.clone(),
        source,
    })?;
    let io = |context, source| DiskError::Io { context, path: args.image.clone(), source };
    let size = image.metadata().map_err(|e| io("inspecting", e))?.len();
    let mbr = mbr::one_linux_partition(size, args.signature)?;
    let area = write_bootable_mbr(&image, &args.image, &mbr, &boot_img, &core_img)?;
    image.sync_all().map_err(|e| io("syncing", e))?;
    let part = mbr::first_partition(&mbr)?;
    println!(
        "disk: {}: GRUB core.img in sectors {}-{}, partition 1 (Linux, bootable) at byte {} ({} bytes)",
        args.image.display(),
        grub::CORE_LBA,
        grub::CORE_LBA + area.core_sectors - 1,
        part.offset,
        part.size
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn signatures() {
        assert_eq!(parse_signature("c1c01a20"), Ok(0xc1c0_1a20));
        assert_eq!(parse_signature("0x00000001"), Ok(1));
        assert!(parse_signature("nope").is_err());
    }

    #[test]
    fn writes_only_the_boot_area() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        std::fs::write(&path, vec![0x5a; 4 << 20]).unwrap();
        let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mbr = mbr::one_linux_partition(4 << 20, 9).unwrap();
        let mut core = vec![0u8; 3 * 512];
        core[510..512].copy_from_slice(&grub::CORE_SEGMENT.to_le_bytes());
        let area = write_bootable_mbr(&f, &path, &mbr, &[0u8; 512], &core).unwrap();
        assert_eq!(area, BootArea { core_sectors: 3 });
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&read_first_sector(&f, &path).unwrap()[..], &bytes[..512]);
        assert_eq!(mbr::first_partition(&read_first_sector(&f, &path).unwrap()).unwrap().offset, 1 << 20);
        assert!(bytes[4 * 512..].iter().all(|&b| b == 0x5a), "nothing after core.img changes");
    }

    /// What the test guest gets (`e2e/lib/tiny-guest.sh`): a 32 MiB ext2 disk from the real
    /// tools, then `image-build disk`. sfdisk sees one bootable Linux partition from 1 MiB
    /// to the end, the filesystem survives, and core.img's block list is patched.
    #[test]
    fn test_guest_disk() {
        if !testkit::need(&["grub-mkimage", "mke2fs", "e2fsck", "sfdisk", grub::BOOT_IMG]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        let core = dir.path().join("core.img");
        std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(Command::new("mke2fs").args(["-q", "-t", "ext2", "-E", "offset=1048576"]).arg(&img).arg("31744k"));
        ok(Command::new("grub-mkimage")
            .args(["-O", "i386-pc", "-p", "(hd0,msdos1)/boot/grub", "-o"])
            .arg(&core)
            .args(["biosdisk", "part_msdos", "ext2", "normal", "linux"]));
        run(&Args { core: core.clone(), boot_img: grub::BOOT_IMG.into(), signature: 0xc1c0_1a20, image: img.clone() })
            .unwrap();

        let dump = Command::new("sfdisk").arg("--dump").arg(&img).output().unwrap();
        let dump = String::from_utf8_lossy(&dump.stdout);
        assert!(dump.contains("disk.img1 : start=        2048, size=       63488, type=83, bootable"), "{dump}");
        ok(Command::new("e2fsck").arg("-fn").arg(format!("{}?offset=1048576", img.display())));
        let bytes = std::fs::read(&img).unwrap();
        let nsec = std::fs::metadata(&core).unwrap().len().div_ceil(512);
        assert_eq!(&bytes[512 + 500..512 + 508], &2u64.to_le_bytes());
        assert_eq!(u64::from(u16::from_le_bytes([bytes[512 + 508], bytes[512 + 509]])), nsec - 1);
    }
}
