//! `image-build usb`: one small image file for a USB stick, written with `dd`.
//!
//! Layout (MBR): sector 0 holds GRUB's boot.img and the partition table; the
//! post-MBR gap (sectors 1..2047) holds GRUB's i386-pc core.img; p1 is a FAT32
//! ESP (type 0xEF, boot flag) with EFI/BOOT/BOOTX64.EFI, boot/vmlinuz,
//! boot/initramfs.img and boot/grub/grub.cfg; p2 is a small ext4 labelled
//! CIRCULAR, the block cache, which the appliance grows to fill the stick on
//! first boot. Built without loop devices: mkfs.fat/mke2fs write at an
//! offset, mtools copies into the FAT.

mod mbr;

use std::path::{Path, PathBuf};
use std::process::Command;

use mbr::{Part, SECTOR};

const GRUB_CFG: &str = include_str!("../../../grub/grub.cfg.in");
const EARLY_CFG: &str = include_str!("../../../grub/early.cfg.in");

/// GRUB modules built into both core images, so nothing is loaded from disk
/// later (the stick carries no module directories).
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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("{0}")]
    Tool(String),
    #[error("{0}")]
    Invalid(String),
}

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
}

fn io<T>(p: &Path, r: std::io::Result<T>) -> Result<T, Error> {
    r.map_err(|e| Error::Io(p.to_path_buf(), e))
}

fn run(cmd: &mut Command) -> Result<(), Error> {
    let out = cmd.output().map_err(|e| Error::Tool(format!("{cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Fills the grub.cfg template. Values are checked so that no quote or
/// newline can end up in GRUB's script.
pub fn render(template: &str, vars: &[(&str, &str)]) -> Result<String, Error> {
    let mut s = template.to_string();
    for (k, v) in vars {
        if v.chars().any(|c| matches!(c, '"' | '\'' | '\n' | '\\' | '$' | ';')) {
            return Err(Error::Invalid(format!("{k}: characters GRUB would misread in {v:?}")));
        }
        s = s.replace(&format!("@{k}@"), v);
    }
    Ok(s)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

pub fn run_usb(args: &Args) -> Result<(), Error> {
    if !["normal", "offline", "serial"].contains(&args.default_entry.as_str()) {
        return Err(Error::Invalid(format!("--default-entry {}: use normal, offline or serial", args.default_entry)));
    }
    if args
        .server
        .split(',')
        .any(|u| !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("file://")))
    {
        return Err(Error::Invalid(format!(
            "--server {}: each URL must start with http://, https:// or file://",
            args.server
        )));
    }
    if args.cache_label.is_empty() || args.cache_label.len() > 16 {
        return Err(Error::Invalid("--cache-label: 1 to 16 characters (ext4 label)".into()));
    }
    let work = args.out.with_extension("parts");
    io(&work, std::fs::create_dir_all(&work))?;

    // Volume id of the FAT: GRUB's early config finds the stick by it.
    let volid = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_nanos() as u32) ^ 0xc1c0_1a20)
        .unwrap_or(0xc1c0_1a20);
    let fat_uuid = format!("{:04x}-{:04x}", volid >> 16, volid & 0xffff);

    let early = work.join("early.cfg");
    // GRUB's embedded-config reader does not take comments: drop them.
    let early_text: String =
        EARLY_CFG.lines().filter(|l| !l.trim_start().starts_with('#')).map(|l| format!("{l}\n")).collect();
    io(&early, std::fs::write(&early, render(&early_text, &[("FAT_UUID", &fat_uuid)])?))?;
    let cfg = work.join("grub.cfg");
    let timeout = args.timeout.to_string();
    io(
        &cfg,
        std::fs::write(
            &cfg,
            render(
                GRUB_CFG,
                &[
                    ("SERVER", &args.server),
                    ("CACHE_LABEL", &args.cache_label),
                    ("DEFAULT", &args.default_entry),
                    ("TIMEOUT", &timeout),
                    ("EXTRA", &args.extra_args),
                ],
            )?,
        ),
    )?;

    // GRUB images.
    let core = work.join("core.img");
    let mut bios_mods: Vec<&str> = GRUB_MODULES.to_vec();
    bios_mods.extend(["biosdisk", "vga", "vbe"]);
    run(Command::new("grub-mkimage")
        .args(["-O", "i386-pc", "-p", "/boot/grub", "-c"])
        .arg(&early)
        .arg("-o")
        .arg(&core)
        .args(&bios_mods))?;
    let efi = work.join("BOOTX64.EFI");
    let mut efi_mods: Vec<&str> = GRUB_MODULES.to_vec();
    efi_mods.extend(["efi_gop", "efi_uga"]);
    run(Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "/boot/grub", "-c"])
        .arg(&early)
        .arg("-o")
        .arg(&efi)
        .args(&efi_mods))?;
    let boot_img_path = Path::new("/usr/lib/grub/i386-pc/boot.img");
    let boot_img = io(boot_img_path, std::fs::read(boot_img_path))?;
    let core_bytes = io(&core, std::fs::read(&core))?;

    // Sizes.
    let p1_start: u64 = 2048;
    if core_bytes.len() as u64 > (p1_start - 1) * SECTOR {
        return Err(Error::Tool(format!("core.img is {} bytes: larger than the post-MBR gap", core_bytes.len())));
    }
    let size_of = |p: &Path| io(p, std::fs::metadata(p)).map(|m| m.len());
    let content = size_of(&args.kernel)? + size_of(&args.initramfs)? + size_of(&efi)? + 65536;
    // FAT32 wants at least 65525 clusters; with 1 KiB clusters that is ~66 MiB.
    // Leave room to replace the initramfs with a bigger one in place.
    let p1_mib = ((content * 3 / 2) / 1048576 + 16).max(96);
    let p1_sectors = p1_mib * 1048576 / SECTOR;
    let p2_start = p1_start + p1_sectors;
    let p2_sectors = args.cache_mib * 1048576 / SECTOR;
    let total = (p2_start + p2_sectors) * SECTOR;

    let tmp = args.out.with_extension("img.tmp");
    {
        let f = io(&tmp, std::fs::File::create(&tmp))?;
        io(&tmp, f.set_len(total))?;
        let mbr = mbr::build(
            &boot_img,
            volid,
            &[
                Part { bootable: true, kind: 0xef, start: p1_start as u32, sectors: p1_sectors as u32 },
                Part { bootable: false, kind: 0x83, start: p2_start as u32, sectors: p2_sectors as u32 },
            ],
        );
        use std::os::unix::fs::FileExt;
        io(&tmp, f.write_all_at(&mbr, 0))?;
        // boot.img jumps to sector 1 by default, and grub-mkimage has already
        // filled in core.img's own block list for a contiguous image there.
        io(&tmp, f.write_all_at(&core_bytes, SECTOR))?;
        io(&tmp, f.sync_all())?;
    }

    // p1: FAT32 ESP.
    run(Command::new("mkfs.fat")
        .args(["-F", "32", "-s", "2", "-n", "CIRCBOOT", "-i", &format!("{volid:08X}")])
        .arg(format!("--offset={p1_start}"))
        .arg(&tmp)
        .arg((p1_sectors * SECTOR / 1024).to_string()))?;
    let target = format!("{}@@{}", tmp.display(), p1_start * SECTOR);
    run(Command::new("mmd").arg("-i").arg(&target).args(["::/EFI", "::/EFI/BOOT", "::/boot", "::/boot/grub"]))?;
    for (src, dst) in [
        (efi.as_path(), "::/EFI/BOOT/BOOTX64.EFI"),
        (args.kernel.as_path(), "::/boot/vmlinuz"),
        (args.initramfs.as_path(), "::/boot/initramfs.img"),
        (cfg.as_path(), "::/boot/grub/grub.cfg"),
    ] {
        run(Command::new("mcopy").arg("-i").arg(&target).arg(src).arg(dst))?;
    }

    // p2: the cache, ext4 with 4 KiB blocks and room in the group descriptor
    // table to grow online to 2 TiB; no reserved blocks (it is a cache).
    run(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-L", &args.cache_label])
        .arg("-E")
        .arg(format!("offset={},resize=536870912", p2_start * SECTOR))
        .arg(&tmp)
        .arg(format!("{}k", p2_sectors * SECTOR / 1024)))?;

    io(&args.out, std::fs::rename(&tmp, &args.out))?;
    println!("usb: {} ({})", args.out.display(), mib(total));
    println!("  sector 0      GRUB boot.img + MBR (disk signature {volid:08x})");
    println!("  sectors 1-    GRUB i386-pc core.img ({})", mib(core_bytes.len() as u64));
    println!("  p1 FAT32 ESP  {} at sector {p1_start}, volume {fat_uuid}: BOOTX64.EFI ({}), vmlinuz ({}), initramfs.img ({})",
        mib(p1_sectors * SECTOR), mib(size_of(&efi)?), mib(size_of(&args.kernel)?), mib(size_of(&args.initramfs)?));
    println!(
        "  p2 ext4 {:<6} {} at sector {p2_start} (grows to fill the stick on first boot)",
        args.cache_label,
        mib(p2_sectors * SECTOR)
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
}
