//! `image-build os --suite S --out IMAGE`: a bootable raw image from scratch.
//!
//! Steps: debootstrap (minbase) into a tree; configure it; install the kernel, systemd
//! and the requested packages in a chroot; remove leftovers; clamp timestamps; then,
//! without any loop device or mount, write the MBR, build the ext4 filesystem from the
//! tree with `mke2fs -d` at the partition's offset, normalise its inode times, and
//! embed GRUB. Same inputs (suite, mirror state, packages, size, epoch, host GRUB and
//! e2fsprogs) give the same bytes; docs/OS-IMAGES.md lists what that took.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::MsFlags;

use super::chroot::{self, apt_get};
use super::error::{OsError, Result};
use super::ext4;
use super::mounts::Mounts;
use super::rootfs;
use super::Ids;
use crate::disk::{self, grub, mbr};
use crate::tool::Runner;

/// Modules embedded in core.img, so the menu works without reading any module
/// from disk; grub-mkimage adds their dependencies.
const GRUB_MODULES: &[&str] = &[
    "biosdisk",
    "part_msdos",
    "ext2",
    "search_fs_uuid",
    "normal",
    "linux",
    "echo",
    "test",
    "serial",
    "terminal",
    "configfile",
    "minicmd",
    "boot",
];

/// Everything `build` needs to know.
pub struct BuildJob<'a> {
    pub suite: &'a str,
    pub mirror: &'a str,
    pub packages: &'a [String],
    pub updates: bool,
    pub slim_kernel: bool,
    pub size: u64,
    pub epoch: Option<i64>,
    pub cache: Option<&'a Path>,
    pub work: &'a Path,
}

/// Builds the image into `<work>/image.raw` and returns its path.
pub fn build(runner: &mut Runner, job: &BuildJob, ids: &Ids) -> Result<PathBuf> {
    let root = job.work.join("root");
    let deb_cache = job.cache.map(|c| c.join("debootstrap"));
    let apt_cache = job.cache.map(|c| c.join("apt"));
    for dir in deb_cache.iter().chain(apt_cache.iter()) {
        fs::create_dir_all(dir.join("partial")).map_err(|e| OsError::io(format!("creating {}", dir.display()), e))?;
    }

    runner.step(&format!("debootstrap {} (minbase) from {}", job.suite, job.mirror));
    chroot::debootstrap(runner, job.suite, job.mirror, &root, deb_cache.as_deref())?;

    runner.step("configuring the tree (sources, fstab, GRUB menu, initramfs modules, units)");
    rootfs::configure_before_install(&root, job.suite, job.mirror, job.updates, &ids.root_uuid, job.slim_kernel)?;
    rootfs::drop_excluded_files(&root)?;
    rootfs::forbid_services(&root)?;
    rootfs::borrow_host_resolv_conf(&root)?;

    let epoch = {
        let mut mounts = Mounts::new();
        mounts.chroot_basics(&root)?;
        if let Some(c) = &apt_cache {
            mounts.mount(&c.to_string_lossy(), &root.join("var/cache/apt/archives"), None, MsFlags::MS_BIND, None)?;
        }
        runner.step("apt-get update");
        runner.run("apt-get update", &mut apt_get(&root, None, &["update"]))?;
        let epoch = match job.epoch {
            Some(e) => e,
            None => chroot::newest_release_date(&root).ok_or_else(|| {
                OsError::Usage("no Release date found in apt's lists; pass --source-date-epoch".into())
            })?,
        };
        runner.note(&format!("SOURCE_DATE_EPOCH={epoch}"));
        let mut install: Vec<&str> = vec!["install"];
        install.extend(rootfs::BASE_PACKAGES);
        install.extend(job.packages.iter().map(String::as_str));
        // Security updates first, for what debootstrap took from the point release.
        runner.step("apt-get full-upgrade");
        runner.run("apt-get full-upgrade", &mut apt_get(&root, Some(epoch), &["full-upgrade"]))?;
        runner.step(&format!("installing the kernel, systemd and {} more package(s)", job.packages.len()));
        runner.run("apt-get install", &mut apt_get(&root, Some(epoch), &install))?;
        mounts.unmount_all()?;
        epoch
    };

    runner.step("removing caches, logs and per-machine identities; clamping timestamps");
    finish_tree(&root, epoch)?;
    rootfs::copy_grub_modules(&root, Path::new(grub::I386_PC_DIR))?;
    let clamped = rootfs::clamp_times(&root, epoch)?;
    runner.note(&format!("{clamped} timestamps clamped to {epoch}"));

    let image = job.work.join("image.raw");
    write_image(runner, job.work, &root, &image, job.size, epoch, ids)?;
    Ok(image)
}

/// Host-side clean-up shared by build and update.
pub fn finish_tree(root: &Path, epoch: i64) -> Result<()> {
    rootfs::remove_leftovers(root)?;
    rootfs::enable_units(root)?;
    rootfs::allow_services(root)?;
    rootfs::restore_resolv_conf(root)?;
    rootfs::fix_shadow(root, epoch)
}

/// mke2fs's settings, written to a file of our own so that the host's
/// /etc/mke2fs.conf cannot change the result. GRUB 2.06 reads every feature listed.
const MKE2FS_CONF: &str = "\
[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 5.0
	lazy_itable_init = false
	lazy_journal_init = false
	hash_alg = half_md4

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
";

fn write_image(
    runner: &mut Runner,
    work: &Path,
    root: &Path,
    image: &Path,
    size: u64,
    epoch: i64,
    ids: &Ids,
) -> Result<()> {
    let part =
        mbr::Partition { offset: mbr::PART_START_LBA * mbr::SECTOR, size: size - mbr::PART_START_LBA * mbr::SECTOR };
    let need = rootfs::tree_bytes(root);
    // ext4's metadata, journal and 5% reserve need roughly 12% on top of the files.
    let usable = part.size / 100 * 88;
    if need > usable {
        return Err(OsError::ImageTooSmall { need_mib: (need * 100 / 88) >> 20, have_mib: part.size >> 20 });
    }
    runner.step(&format!("writing the disk image ({} MiB, {} MiB of files)", size >> 20, need >> 20));
    {
        let f = File::create(image).map_err(|e| OsError::io(format!("creating {}", image.display()), e))?;
        f.set_len(size).map_err(|e| OsError::io(format!("sizing {}", image.display()), e))?;
    }
    let conf = work.join("mke2fs.conf");
    fs::write(&conf, MKE2FS_CONF).map_err(|e| OsError::io("writing mke2fs.conf", e))?;
    let blocks = part.size / 4096;
    let mut mkfs = Command::new("mke2fs");
    mkfs.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("MKE2FS_CONFIG", &conf)
        .env("E2FSPROGS_FAKE_TIME", epoch.to_string())
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .args(["-F", "-q", "-t", "ext4", "-b", "4096", "-I", "256", "-i", "16384", "-L", "root", "-U", &ids.root_uuid])
        .arg("-E")
        .arg(format!(
            "offset={},hash_seed={},root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0",
            part.offset, ids.hash_seed
        ))
        .arg("-d")
        .arg(root)
        .arg(image)
        .arg(blocks.to_string());
    runner.run("mke2fs -d", &mut mkfs)?;

    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(|e| OsError::io(format!("opening {}", image.display()), e))?;
    let n = ext4::normalize_times(&f, part.offset)?;
    runner.note(&format!("{n} inodes given deterministic times"));

    let core = work.join("core.img");
    let early = work.join("grub-early.cfg");
    fs::write(&early, rootfs::grub_early_cfg(&ids.root_uuid)).map_err(|e| OsError::io("writing grub-early.cfg", e))?;
    let mut mk = Command::new("grub-mkimage");
    mk.args(["-O", "i386-pc", "-d", grub::I386_PC_DIR, "-p", "/boot/grub", "-c"])
        .arg(&early)
        .arg("-o")
        .arg(&core)
        .args(GRUB_MODULES);
    runner.run("grub-mkimage", &mut mk)?;
    let core_img = fs::read(&core).map_err(|e| OsError::io("reading core.img", e))?;
    let boot_img = fs::read(grub::BOOT_IMG).map_err(|e| OsError::io("reading GRUB's boot.img", e))?;
    let table = mbr::one_linux_partition(size, ids.disk_signature)?;
    disk::write_bootable_mbr(&f, image, &table, &boot_img, &core_img)?;
    f.sync_all().map_err(|e| OsError::io("syncing the image", e))?;
    drop(f);
    check_fs(runner, image, part.offset)
}

/// `e2fsck -fn`: a read-only check that the filesystem is consistent.
pub fn check_fs(runner: &mut Runner, image: &Path, offset: u64) -> Result<()> {
    let mut fsck = Command::new("e2fsck");
    fsck.args(["-f", "-n"]).arg(format!("{}?offset={offset}", image.display()));
    Ok(runner.run("e2fsck -fn (consistency check)", &mut fsck)?)
}
