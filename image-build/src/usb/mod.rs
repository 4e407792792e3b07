//! `image-build usb`: one small image file for a USB stick, written with `dd`.
//!
//! Layout (MBR): sector 0 holds GRUB's boot.img and the partition table; the
//! post-MBR gap (sectors 1..2047) holds GRUB's i386-pc core.img; p1 is a FAT32
//! ESP (type 0xEF, boot flag) with Debian's signed UEFI chain (EFI/BOOT/BOOTX64.EFI
//! = shim, mmx64.efi, grubx64.efi, and EFI/debian/grub.cfg, where signed GRUB looks),
//! boot/vmlinuz (Debian's signed kernel), boot/initramfs.img and boot/grub/grub.cfg
//! (for the BIOS core.img); p2 is a small ext4 labelled
//! CIRCULAR, the block cache, which the appliance grows to fill the stick on
//! first boot. Built without loop devices: `crate::disk` writes the MBR and
//! GRUB's boot sectors, mkfs.fat/mke2fs write at an offset, mtools copies into
//! the FAT.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use circular_format::units::format_size;

use crate::appliance::{self, ApplianceError};
use crate::disk::{self, grub, mbr, mbr::SECTOR};
use crate::tool::{self, Runner};

const GRUB_CFG: &str = include_str!("../../../grub/grub.cfg.in");
const EARLY_CFG: &str = include_str!("../../../grub/early.cfg.in");

/// GRUB modules built into the BIOS core image, so nothing is loaded from disk
/// later (the stick carries no module directories). The UEFI side is Debian's signed
/// GRUB, a monolithic image with its own module set.
const GRUB_MODULES: &[&str] = &[
    "part_msdos",
    "part_gpt",
    "fat",
    "ext2",
    "search",
    "search_fs_uuid",
    "search_label",
    "normal",
    "configfile",
    "linux",
    "echo",
    "test",
    "serial",
    "terminal",
    "sleep",
    "ls",
    "cat",
    "minicmd",
    "boot",
    "halt",
    "reboot",
    "gzio",
    "all_video",
    "gfxterm",
    "font",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Store URL(s) the appliance mounts, comma-separated (circular.server=).
    #[arg(long)]
    pub server: String,
    /// Kernel (from `image-build initramfs`).
    #[arg(long, default_value = "build/appliance/vmlinuz")]
    pub kernel: PathBuf,
    /// Initramfs (from `image-build initramfs`).
    #[arg(long, default_value = "build/appliance/initramfs.img")]
    pub initramfs: PathBuf,
    /// Output image file.
    #[arg(long, default_value = "build/circular-usb.img")]
    pub out: PathBuf,
    /// Cache partition label (circular.cache=).
    #[arg(long, default_value = "CIRCULAR")]
    pub cache_label: String,
    /// Initial size of the cache partition in MiB; it grows on first boot.
    #[arg(long, default_value_t = 64)]
    pub cache_mib: u64,
    /// GRUB menu entry booted after the timeout: normal, offline or serial.
    #[arg(long, default_value = "normal")]
    pub default_entry: String,
    /// GRUB menu timeout in seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout: u32,
    /// Extra kernel command-line arguments for every entry.
    #[arg(long, default_value = "")]
    pub extra_args: String,
    /// Firmware for `/firmware` on the cache partition (from `image-build initramfs`, which
    /// writes it beside the initramfs); default: the `firmware` directory beside
    /// `--initramfs`, if any. Not on the FAT partition: firmware names differ only in case
    /// (radeon's BARTS_mc.bin and barts_mc.bin are two files), which FAT cannot tell apart.
    #[arg(long)]
    pub firmware: Option<PathBuf>,
}

impl Args {
    /// The firmware directory to copy onto the ESP, if there is one.
    fn firmware_dir(&self) -> Option<PathBuf> {
        match &self.firmware {
            Some(dir) => Some(dir.clone()),
            None => self.initramfs.parent().map(|p| p.join("firmware")).filter(|d| d.is_dir()),
        }
    }
}

fn io<T>(p: &Path, r: std::io::Result<T>) -> Result<T, ApplianceError> {
    r.map_err(|e| ApplianceError::io(p, e))
}

/// Fills the grub.cfg template. Values are checked so that no quote or
/// newline can end up in GRUB's script.
pub fn render(template: &str, vars: &[(&str, &str)]) -> Result<String, ApplianceError> {
    let mut s = template.to_string();
    for (k, v) in vars {
        if v.chars().any(|c| matches!(c, '"' | '\'' | '\n' | '\\' | '$' | ';')) {
            return Err(ApplianceError::GrubUnsafe { key: k.to_string(), value: v.to_string() });
        }
        s = s.replace(&format!("@{k}@"), v);
    }
    Ok(s)
}

pub fn run_usb(args: &Args) -> Result<(), ApplianceError> {
    check_args(args)?;
    let work = args.out.with_extension("parts");
    io(&work, std::fs::create_dir_all(&work))?;
    let mut runner = Runner::new(&work.join("build.log"), appliance::hint)?;
    let volid = volume_id();
    let cfgs = write_grub_configs(&work, args, volid)?;
    let grub = make_grub_images(&mut runner, &work, &cfgs.early)?;
    let efi_chain = SIGNED_CHAIN.iter().map(|(host, _, _)| size_of(Path::new(host))).sum::<Result<u64, _>>()?;

    let firmware = args.firmware_dir();
    let firmware_bytes = match &firmware {
        Some(dir) => crate::initramfs::files_and_bytes(dir)?.1,
        None => 0,
    };
    let content = size_of(&args.kernel)? + size_of(&args.initramfs)? + efi_chain + 65536;
    // The cache partition gets room for the firmware on top of the cache asked for.
    let layout = Layout::plan(content, args.cache_mib + (firmware_bytes * 5 / 4).div_ceil(1 << 20));
    let tmp = args.out.with_extension("img.tmp");
    create_disk(&tmp, &layout, volid, &grub.core)?;
    let mut esp_files: Vec<(&Path, &str)> =
        SIGNED_CHAIN.iter().map(|(host, fat, _)| (Path::new(*host), *fat)).collect();
    esp_files.extend([
        (cfgs.cfg.as_path(), SIGNED_GRUB_CFG),
        (args.kernel.as_path(), "::/boot/vmlinuz"),
        (args.initramfs.as_path(), "::/boot/initramfs.img"),
        (cfgs.cfg.as_path(), "::/boot/grub/grub.cfg"),
    ]);
    make_esp(&mut runner, &tmp, &layout, volid, &esp_files)?;
    // PID 1 points the kernel's firmware search path at the cache's /firmware (init/src/firmware.rs).
    let cache_root = match &firmware {
        Some(dir) => Some(stage_cache_root(&work, dir)?),
        None => None,
    };
    make_cache(&mut runner, &tmp, &layout, &args.cache_label, cache_root.as_deref())?;
    io(&args.out, std::fs::rename(&tmp, &args.out))?;
    report(args, &layout, volid, &cfgs.fat_uuid, &grub)?;
    if let Some(dir) = &firmware {
        println!("  firmware      {} from {} in p2's /firmware", format_size(firmware_bytes), dir.display());
    }
    Ok(())
}

/// Refuses flags the stick could not use, and a host without GRUB's images, before any work.
fn check_args(args: &Args) -> Result<(), ApplianceError> {
    if !["normal", "offline", "serial"].contains(&args.default_entry.as_str()) {
        return Err(ApplianceError::Usage(format!(
            "--default-entry {}: use normal, offline or serial",
            args.default_entry
        )));
    }
    if args
        .server
        .split(',')
        .any(|u| !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("file://")))
    {
        return Err(ApplianceError::Usage(format!(
            "--server {}: each URL must start with http://, https:// or file://",
            args.server
        )));
    }
    if args.cache_label.is_empty() || args.cache_label.len() > 16 {
        return Err(ApplianceError::Usage("--cache-label: 1 to 16 characters (ext4 label)".into()));
    }
    tool::require_file(grub::BOOT_IMG, "grub-pc-bin")?;
    for (host, _, package) in SIGNED_CHAIN {
        tool::require_file(host, package)?;
    }
    Ok(())
}

/// Debian's signed UEFI boot chain: (file on the build host, path in the ESP, Debian
/// package). The firmware runs the removable-media path `EFI/BOOT/BOOTX64.EFI`: shim,
/// signed by Microsoft's UEFI CA 2011 and 2023, which carries Debian's CA and verifies
/// what it starts; it starts `grubx64.efi` from its own directory (and MokManager,
/// `mmx64.efi`, when a MOK change is pending). Shim's fallback `fbx64.efi` is left out on
/// purpose: from `EFI/BOOT` shim would run it, and it writes boot entries into the PC's
/// NVRAM and reboots. Signed GRUB verifies the kernel through shim.
pub const SIGNED_CHAIN: [(&str, &str, &str); 3] = [
    ("/usr/lib/shim/shimx64.efi.signed", "::/EFI/BOOT/BOOTX64.EFI", "shim-signed"),
    ("/usr/lib/shim/mmx64.efi.signed", "::/EFI/BOOT/mmx64.efi", "shim-helpers-amd64-signed"),
    ("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", "::/EFI/BOOT/grubx64.efi", "grub-efi-amd64-signed"),
];

/// Where signed GRUB reads its menu. Debian builds it with prefix `/EFI/debian`, which
/// GRUB completes with the partition it was loaded from; its embedded config sources
/// `$prefix/x86_64-efi/grub.cfg`, else `$prefix/grub.cfg`, else `$cmdpath/grub.cfg`, and
/// only when `$prefix` does not exist does it search every disk for `/.disk/info` (and
/// could take another disk's config). The directory exists on the stick, so GRUB never
/// searches, and reads this file from the stick's own ESP (docs/APPLIANCE.md).
pub const SIGNED_GRUB_CFG: &str = "::/EFI/debian/grub.cfg";

/// Volume id of the FAT: GRUB's early config finds the stick by it. It is also the
/// disk signature. New for every image, so that two sticks in one PC are told apart.
fn volume_id() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_nanos() as u32) ^ 0xc1c0_1a20)
        .unwrap_or(0xc1c0_1a20)
}

/// GRUB's configuration files in the work directory.
struct GrubConfigs {
    /// Built into the BIOS core image: finds the FAT by its volume id.
    early: PathBuf,
    /// The menu, copied into the FAT.
    cfg: PathBuf,
    /// The volume id as GRUB and blkid write it (`XXXX-XXXX`).
    fat_uuid: String,
}

fn write_grub_configs(work: &Path, args: &Args, volid: u32) -> Result<GrubConfigs, ApplianceError> {
    let fat_uuid = format!("{:04x}-{:04x}", volid >> 16, volid & 0xffff);
    let early = work.join("early.cfg");
    // GRUB's embedded-config reader does not take comments: drop them.
    let early_text: String =
        EARLY_CFG.lines().filter(|l| !l.trim_start().starts_with('#')).map(|l| format!("{l}\n")).collect();
    io(&early, std::fs::write(&early, render(&early_text, &[("FAT_UUID", &fat_uuid)])?))?;
    let cfg = work.join("grub.cfg");
    let timeout = args.timeout.to_string();
    let text = render(
        GRUB_CFG,
        &[
            ("SERVER", &args.server),
            ("CACHE_LABEL", &args.cache_label),
            ("DEFAULT", &args.default_entry),
            ("TIMEOUT", &timeout),
            ("EXTRA", &args.extra_args),
        ],
    )?;
    io(&cfg, std::fs::write(&cfg, text))?;
    Ok(GrubConfigs { early, cfg, fat_uuid })
}

/// GRUB for BIOS PCs (UEFI PCs get Debian's signed GRUB, [`SIGNED_CHAIN`]).
struct GrubImages {
    /// The i386-pc core.img, as grub-mkimage made it (the disk writer patches a copy).
    core: Vec<u8>,
}

fn make_grub_images(runner: &mut Runner, work: &Path, early: &Path) -> Result<GrubImages, ApplianceError> {
    let core = work.join("core.img");
    let mut bios_mods: Vec<&str> = GRUB_MODULES.to_vec();
    bios_mods.extend(["biosdisk", "vga", "vbe"]);
    runner.run(
        "grub-mkimage -O i386-pc",
        Command::new("grub-mkimage")
            .args(["-O", "i386-pc", "-p", "/boot/grub", "-c"])
            .arg(early)
            .arg("-o")
            .arg(&core)
            .args(&bios_mods),
    )?;
    Ok(GrubImages { core: io(&core, std::fs::read(&core))? })
}

fn size_of(p: &Path) -> Result<u64, ApplianceError> {
    io(p, std::fs::metadata(p)).map(|m| m.len())
}

/// Where the two partitions go, in sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    p1_start: u64,
    p1_sectors: u64,
    p2_start: u64,
    p2_sectors: u64,
}

impl Layout {
    /// The ESP holds `content` bytes with room to spare; the cache gets `cache_mib`.
    fn plan(content: u64, cache_mib: u64) -> Layout {
        let p1_start = mbr::PART_START_LBA;
        // FAT32 wants at least 65525 clusters; with 1 KiB clusters that is ~66 MiB.
        // Leave room to replace the initramfs with a bigger one in place.
        let p1_mib = ((content * 3 / 2) / 1048576 + 16).max(96);
        let p1_sectors = p1_mib * 1048576 / SECTOR;
        let p2_start = p1_start + p1_sectors;
        let p2_sectors = cache_mib * 1048576 / SECTOR;
        Layout { p1_start, p1_sectors, p2_start, p2_sectors }
    }

    fn total_bytes(&self) -> u64 {
        (self.p2_start + self.p2_sectors) * SECTOR
    }

    /// p1: the FAT32 ESP, with the boot flag; p2: the ext4 cache.
    fn entries(&self) -> [mbr::Entry; 2] {
        [
            mbr::Entry { bootable: true, kind: mbr::EFI_SYSTEM, start: self.p1_start, sectors: self.p1_sectors },
            mbr::Entry { bootable: false, kind: mbr::LINUX, start: self.p2_start, sectors: self.p2_sectors },
        ]
    }
}

/// The image file at its full size, with the partition table, GRUB's boot.img and core.img.
fn create_disk(tmp: &Path, layout: &Layout, volid: u32, core: &[u8]) -> Result<(), ApplianceError> {
    let f = io(tmp, File::create(tmp))?;
    io(tmp, f.set_len(layout.total_bytes()))?;
    let boot_img = io(Path::new(grub::BOOT_IMG), std::fs::read(grub::BOOT_IMG))?;
    let table = mbr::build(volid, &layout.entries())?;
    disk::write_bootable_mbr(&f, tmp, &table, &boot_img, core)?;
    io(tmp, f.sync_all())
}

/// p1: FAT32 ESP, made in place, with `files` (host path, FAT path) copied in.
fn make_esp(
    runner: &mut Runner,
    tmp: &Path,
    layout: &Layout,
    volid: u32,
    files: &[(&Path, &str)],
) -> Result<(), ApplianceError> {
    runner.run(
        "mkfs.fat",
        Command::new("mkfs.fat")
            .args(["-F", "32", "-s", "2", "-n", "CIRCBOOT", "-i", &format!("{volid:08X}")])
            .arg(format!("--offset={}", layout.p1_start))
            .arg(tmp)
            .arg((layout.p1_sectors * SECTOR / 1024).to_string()),
    )?;
    let target = format!("{}@@{}", tmp.display(), layout.p1_start * SECTOR);
    runner.run(
        "mmd",
        Command::new("mmd").arg("-i").arg(&target).args([
            "::/EFI",
            "::/EFI/BOOT",
            "::/EFI/debian",
            "::/boot",
            "::/boot/grub",
        ]),
    )?;
    for (src, dst) in files {
        runner.run("mcopy", Command::new("mcopy").arg("-i").arg(&target).arg(src).arg(dst))?;
    }
    Ok(())
}

/// p2: the cache, ext4 with 4 KiB blocks and room in the group descriptor table to
/// grow online to 2 TiB; no reserved blocks (it is a cache).
/// `root`, when given, is copied in as the filesystem's top directory (`mke2fs -d`).
fn make_cache(
    runner: &mut Runner,
    tmp: &Path,
    layout: &Layout,
    label: &str,
    root: Option<&Path>,
) -> Result<(), ApplianceError> {
    let mut mke2fs = Command::new("mke2fs");
    mke2fs.args(["-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-L", label]);
    if let Some(root) = root {
        mke2fs.arg("-d").arg(root);
    }
    mke2fs
        .arg("-E")
        .arg(format!("offset={},resize=536870912", layout.p2_start * SECTOR))
        .arg(tmp)
        .arg(format!("{}k", layout.p2_sectors * SECTOR / 1024));
    runner.run("mke2fs", &mut mke2fs)?;
    Ok(())
}

/// `<work>/cache-root/firmware`, a copy of `firmware`: the cache partition's first contents.
fn stage_cache_root(work: &Path, firmware: &Path) -> Result<PathBuf, ApplianceError> {
    let root = work.join("cache-root");
    if root.exists() {
        io(&root, std::fs::remove_dir_all(&root))?;
    }
    copy_tree(firmware, &root.join("firmware"))?;
    Ok(root)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), ApplianceError> {
    io(to, std::fs::create_dir_all(to))?;
    for entry in io(from, std::fs::read_dir(from))? {
        let path = io(from, entry)?.path();
        let dst = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_tree(&path, &dst)?;
        } else {
            io(&dst, std::fs::copy(&path, &dst))?;
        }
    }
    Ok(())
}

fn report(args: &Args, layout: &Layout, volid: u32, fat_uuid: &str, grub: &GrubImages) -> Result<(), ApplianceError> {
    let Layout { p1_start, p1_sectors, p2_start, p2_sectors } = *layout;
    println!("usb: {} ({})", args.out.display(), format_size(layout.total_bytes()));
    println!("  sector 0      GRUB boot.img + MBR (disk signature {volid:08x})");
    println!("  sectors 1-    GRUB i386-pc core.img ({})", format_size(grub.core.len() as u64));
    println!(
        "  p1 FAT32 ESP  {} at sector {p1_start}, volume {fat_uuid}: vmlinuz ({}), initramfs.img ({})",
        format_size(p1_sectors * SECTOR),
        format_size(size_of(&args.kernel)?),
        format_size(size_of(&args.initramfs)?)
    );
    println!(
        "  UEFI chain    EFI/BOOT/BOOTX64.EFI (shim) -> grubx64.efi -> EFI/debian/grub.cfg, Debian's signed binaries"
    );
    println!(
        "  p2 ext4 {:<6} {} at sector {p2_start} (grows to fill the stick on first boot)",
        args.cache_label,
        format_size(p2_sectors * SECTOR)
    );
    println!("  kernel args   circular.server={} circular.cache={} {}", args.server, args.cache_label, args.extra_args);
    println!("  write it:     dd if={} of=/dev/sdX bs=4M conv=fsync", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_and_refuses_quotes() {
        assert_eq!(render("a=@X@ b=@Y@", &[("X", "1"), ("Y", "http://h/s")]).unwrap(), "a=1 b=http://h/s");
        assert!(render("@X@", &[("X", "a\"b")]).is_err());
        assert!(render("@X@", &[("X", "a;reboot")]).is_err());
    }

    #[test]
    fn templates_have_the_three_entries() {
        for id in ["--id normal", "--id offline", "--id serial"] {
            assert!(GRUB_CFG.contains(id), "{id}");
        }
        assert!(EARLY_CFG.contains("@FAT_UUID@"));
    }

    #[test]
    fn layout_leaves_room_and_flags_the_esp() {
        let small = Layout::plan(10 << 20, 64);
        assert_eq!(
            small,
            Layout { p1_start: 2048, p1_sectors: 96 * 2048, p2_start: 2048 + 96 * 2048, p2_sectors: 64 * 2048 }
        );
        assert_eq!(small.total_bytes(), (1 + 96 + 64) << 20);
        // 100 MiB of content: half again, plus 16 MiB.
        assert_eq!(Layout::plan(100 << 20, 8).p1_sectors, 166 * 2048);
        let [esp, cache] = small.entries();
        assert!(esp.bootable && esp.kind == 0xef && esp.start == 2048);
        assert!(!cache.bootable && cache.kind == 0x83 && cache.start == esp.start + esp.sectors);
    }

    #[test]
    fn flags_are_checked_first() {
        let args = |server: &str, entry: &str, label: &str| Args {
            server: server.into(),
            kernel: "/nonexistent".into(),
            initramfs: "/nonexistent".into(),
            out: "/nonexistent/usb.img".into(),
            cache_label: label.into(),
            cache_mib: 8,
            default_entry: entry.into(),
            timeout: 0,
            extra_args: String::new(),
            firmware: None,
        };
        for a in [
            args("ftp://x/", "normal", "CIRCULAR"),
            args("http://x/", "desktop", "CIRCULAR"),
            args("http://x/", "normal", "A-LABEL-LONGER-THAN-16"),
        ] {
            assert!(matches!(run_usb(&a), Err(ApplianceError::Usage(_))));
        }
    }

    /// The whole image from the real tools, with a stand-in kernel and initramfs: the table
    /// sfdisk reads, GRUB's sectors, the files in the FAT, and the cache's ext4.
    #[test]
    fn usb_image_from_real_tools() {
        let tools = [
            "grub-mkimage",
            "mkfs.fat",
            "mmd",
            "mcopy",
            "mke2fs",
            "e2fsck",
            "debugfs",
            "sfdisk",
            grub::BOOT_IMG,
            SIGNED_CHAIN[0].0,
            SIGNED_CHAIN[1].0,
            SIGNED_CHAIN[2].0,
        ];
        if !testkit::need(&tools) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        let initramfs = dir.path().join("initramfs.img");
        std::fs::write(&kernel, b"a kernel").unwrap();
        std::fs::write(&initramfs, b"an initramfs").unwrap();
        // What `image-build initramfs` writes beside the initramfs: the GPU firmware.
        std::fs::create_dir_all(dir.path().join("firmware/radeon")).unwrap();
        std::fs::write(dir.path().join("firmware/radeon/BARTS_mc.bin.xz"), b"upper").unwrap();
        std::fs::write(dir.path().join("firmware/radeon/barts_mc.bin.xz"), b"lower").unwrap();
        let out = dir.path().join("usb.img");
        run_usb(&Args {
            server: "http://store.example/circular/".into(),
            kernel,
            initramfs,
            out: out.clone(),
            cache_label: "CIRCULAR".into(),
            cache_mib: 8,
            default_entry: "serial".into(),
            timeout: 1,
            extra_args: "quiet".into(),
            firmware: None,
        })
        .unwrap();
        // 8 MiB of cache asked for, and a MiB for the 10 bytes of firmware.
        let layout = Layout::plan(0, 9);
        assert_eq!(std::fs::metadata(&out).unwrap().len(), layout.total_bytes());

        let dump = Command::new("sfdisk").arg("--dump").arg(&out).output().unwrap();
        let dump = String::from_utf8_lossy(&dump.stdout);
        assert!(dump.contains("usb.img1 : start=        2048, size=      196608, type=ef, bootable\n"), "{dump}");
        assert!(dump.contains("usb.img2 : start=      198656, size=       18432, type=83\n"), "{dump}");

        let bytes = std::fs::read(&out).unwrap();
        let core = std::fs::read(dir.path().join("usb.parts/core.img")).unwrap();
        let boot_img = std::fs::read(grub::BOOT_IMG).unwrap();
        assert_eq!(&bytes[..3], &boot_img[..3], "GRUB's boot code is in sector 0");
        assert_eq!(&bytes[0x5c..0x64], &1u64.to_le_bytes(), "boot.img loads core.img from sector 1");
        assert_eq!(&bytes[512 + 500..512 + 508], &2u64.to_le_bytes());
        assert_eq!(usize::from(u16::from_le_bytes([bytes[512 + 508], bytes[512 + 509]])), core.len().div_ceil(512) - 1);
        assert_eq!(&bytes[1024..512 + core.len()], &core[512..], "core.img follows its first sector");

        let esp = format!("{}@@{}", out.display(), 2048 * 512);
        let cfg = dir.path().join("grub.cfg");
        let st = Command::new("mcopy").args(["-i", &esp, "::/boot/grub/grub.cfg"]).arg(&cfg).status().unwrap();
        assert!(st.success());
        let cfg = std::fs::read_to_string(&cfg).unwrap();
        assert!(cfg.contains("circular.server=http://store.example/circular/"), "{cfg}");
        let read = |f: &str| {
            let copy = dir.path().join("copy");
            let st = Command::new("mcopy").args(["-o", "-i", &esp, f]).arg(&copy).status();
            assert!(st.unwrap().success(), "{f}");
            std::fs::read(&copy).unwrap()
        };
        assert_eq!(read("::/boot/vmlinuz"), b"a kernel");
        // The firmware is on the cache partition, whose filesystem tells BARTS_mc.bin from barts_mc.bin.
        let p2 = format!("{}?offset={}", out.display(), 198656 * 512);
        let listed =
            Command::new("debugfs").args(["-R", "cat /firmware/radeon/BARTS_mc.bin.xz", &p2]).output().unwrap();
        assert_eq!(listed.stdout, b"upper", "{}", String::from_utf8_lossy(&listed.stderr));
        let listed =
            Command::new("debugfs").args(["-R", "cat /firmware/radeon/barts_mc.bin.xz", &p2]).output().unwrap();
        assert_eq!(listed.stdout, b"lower");
        assert_eq!(read("::/boot/initramfs.img"), b"an initramfs");
        // Debian's signed binaries byte for byte, and signed GRUB's menu where it looks.
        for (host, fat, _) in SIGNED_CHAIN {
            assert_eq!(read(fat), std::fs::read(host).unwrap(), "{fat}");
        }
        assert_eq!(read(SIGNED_GRUB_CFG), cfg.as_bytes());
        // No fallback: from EFI/BOOT, shim would run it and rewrite the PC's boot entries.
        let fallback =
            Command::new("mcopy").args(["-i", &esp, "::/EFI/BOOT/fbx64.efi"]).arg(dir.path().join("fb")).output();
        assert!(!fallback.unwrap().status.success());
        let fsck = Command::new("e2fsck").arg("-fn").arg(format!("{}?offset={}", out.display(), 198656 * 512)).status();
        assert!(fsck.unwrap().success());
    }
}
