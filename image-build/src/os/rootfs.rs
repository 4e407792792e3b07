//! The root tree's configuration and hygiene: the files `image-build os` writes into
//! the image (sources.list, fstab, GRUB menu, initramfs module list, first-boot units),
//! the leftovers it removes (apt caches and lists, logs, machine-id, SSH host keys), and
//! the timestamp clamping that makes the bytes reproducible.
//!
//! Text generation is pure and unit tested; the functions that touch a tree take its
//! root path and never follow symlinks out of it. Package installation is elsewhere
//! (`chroot.rs`).

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::error::{OsError, Result};

/// Packages every image gets (besides debootstrap's minbase).
pub const BASE_PACKAGES: &[&str] = &["linux-image-amd64", "systemd-sysv", "udev", "systemd-resolved", "zstd"];

/// Kernel modules the initramfs carries: QEMU's disk controllers (virtio-blk,
/// virtio-scsi, IDE on i440fx, AHCI on q35, NVMe) and ext4. A fixed list, because
/// MODULES=dep inside a chroot would look at the build host's hardware.
pub const INITRAMFS_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "sd_mod",
    "sr_mod",
    "ata_piix",
    "ata_generic",
    "pata_acpi",
    "ahci",
    "nvme",
    "ext4",
    "crc32c_generic",
];

pub const HOSTNAME: &str = "debian";
pub const KERNEL_CONSOLE: &str = "console=tty0 console=ttyS0,115200";

pub fn sources_list(suite: &str, mirror: &str, updates: bool) -> String {
    let mut s = format!("deb {mirror} {suite} main\n");
    let rolling = matches!(suite, "sid" | "unstable" | "experimental" | "rc-buggy");
    if updates && !rolling {
        s.push_str(&format!("deb {mirror} {suite}-updates main\n"));
        if let Some(base) = mirror.strip_suffix("/debian") {
            s.push_str(&format!("deb {base}/debian-security {suite}-security main\n"));
        }
    }
    s
}

pub fn fstab(root_uuid: &str) -> String {
    format!(
        "# <file system> <mount point> <type> <options> <dump> <pass>\nUUID={root_uuid} / ext4 errors=remount-ro 0 1\n"
    )
}

/// GRUB's menu. It boots Debian's /vmlinuz and /initrd.img symlinks, which the kernel
/// package keeps pointing at the newest kernel, so upgrades need no update-grub.
pub fn grub_cfg(root_uuid: &str, suite: &str) -> String {
    let args = format!("root=UUID={root_uuid} ro {KERNEL_CONSOLE}");
    format!(
        "# Written by image-build os; kernel upgrades need no update-grub (see docs/OS-IMAGES.md).\n\
         set default=0\n\
         set timeout=1\n\
         serial --unit=0 --speed=115200\n\
         terminal_input console serial\n\
         terminal_output console serial\n\
         menuentry 'Debian GNU/Linux ({suite})' {{\n\
         \tlinux /vmlinuz {args}\n\
         \tinitrd /initrd.img\n\
         }}\n\
         menuentry 'Debian GNU/Linux ({suite}), previous kernel' {{\n\
         \tlinux /vmlinuz.old {args}\n\
         \tinitrd /initrd.img.old\n\
         }}\n"
    )
}

/// core.img's embedded configuration: find the root filesystem by UUID.
pub fn grub_early_cfg(root_uuid: &str) -> String {
    format!("search.fs_uuid {root_uuid} root\nset prefix=($root)/boot/grub\n")
}

const DPKG_EXCLUDES: &str = "\
# image-build os: a small image; copyright files stay.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
";

/// Kernel module directories for hardware that no QEMU machine has: Wi-Fi,
/// Bluetooth, GPUs other than QEMU's, TV and camera capture, ASoC sound, ISDN,
/// comedi and staging. About a third of the modules (123 MiB for 6.1). Checked with
/// the modules' own dependency lists: no module kept for a QEMU device needs one of
/// them (only drivers for other absent hardware do).
pub const SLIM_KERNEL_DIRS: &[&str] = &[
    "drivers/net/wireless",
    "net/wireless",
    "net/mac80211",
    "drivers/bluetooth",
    "net/bluetooth",
    "drivers/gpu/drm/amd",
    "drivers/gpu/drm/radeon",
    "drivers/gpu/drm/nouveau",
    "drivers/gpu/drm/i915",
    "drivers/media/usb",
    "drivers/media/pci",
    "drivers/media/dvb-frontends",
    "drivers/media/i2c",
    "drivers/media/tuners",
    "drivers/media/platform",
    "drivers/media/radio",
    "drivers/media/test-drivers",
    "drivers/media/firewire",
    "drivers/media/spi",
    "drivers/media/mmc",
    "drivers/staging",
    "drivers/comedi",
    "drivers/isdn",
    "sound/soc",
];

pub fn slim_kernel_excludes() -> String {
    let mut s = String::from("# image-build os --slim-kernel: no modules for hardware that QEMU does not have.\n");
    for base in ["/lib/modules", "/usr/lib/modules"] {
        for d in SLIM_KERNEL_DIRS {
            s.push_str(&format!("path-exclude {base}/*/kernel/{d}/*\n"));
        }
    }
    s
}

const NETWORK: &str = "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n";

const SSH_KEYGEN_UNIT: &str = "\
[Unit]
Description=Generate SSH host keys (image-build os images ship none)
Before=ssh.service
ConditionFileIsExecutable=/usr/bin/ssh-keygen
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
";

const POLICY_RC_D: &str = "#!/bin/sh\n# image-build os: no service starts inside the build chroot.\nexit 101\n";

fn write(root: &Path, rel: &str, content: &str, mode: u32) -> Result<()> {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| OsError::io(format!("creating {}", dir.display()), e))?;
    }
    // Unchanged content is not rewritten: in an update, a rewrite would move the file.
    if fs::read(&path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok(());
    }
    if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        remove_if_exists(&path)?;
    }
    fs::write(&path, content).map_err(|e| OsError::io(format!("writing {}", path.display()), e))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .map_err(|e| OsError::io(format!("chmod {}", path.display()), e))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OsError::io(format!("inspecting {}", path.display()), e)),
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(path).map_err(|e| OsError::io(format!("removing {}", path.display()), e))
        }
        Ok(_) => fs::remove_file(path).map_err(|e| OsError::io(format!("removing {}", path.display()), e)),
    }
}

fn link(root: &Path, rel: &str, target: &str) -> Result<()> {
    let path = root.join(rel);
    if fs::read_link(&path).is_ok_and(|t| t == Path::new(target)) {
        return Ok(());
    }
    remove_if_exists(&path)?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| OsError::io(format!("creating {}", dir.display()), e))?;
    }
    symlink(target, &path).map_err(|e| OsError::io(format!("linking {}", path.display()), e))
}

/// Configuration written before packages are installed, so that the kernel's
/// postinst already builds the small initramfs and dpkg already skips the docs.
/// `slim_kernel` adds the dpkg excludes of [`SLIM_KERNEL_DIRS`]; once in an image,
/// they stay for its later weeks (kernels installed later follow them).
pub fn configure_before_install(
    root: &Path,
    suite: &str,
    mirror: &str,
    updates: bool,
    root_uuid: &str,
    slim_kernel: bool,
) -> Result<()> {
    write(root, "etc/dpkg/dpkg.cfg.d/90-image-build-nodoc", DPKG_EXCLUDES, 0o644)?;
    if slim_kernel {
        write(root, "etc/dpkg/dpkg.cfg.d/91-image-build-slim-kernel", &slim_kernel_excludes(), 0o644)?;
    }
    write(root, "etc/initramfs-tools/conf.d/90-image-build", "MODULES=list\n", 0o644)?;
    let mut modules = String::from("# image-build os: the initramfs carries only these (MODULES=list).\n");
    for m in INITRAMFS_MODULES {
        modules.push_str(m);
        modules.push('\n');
    }
    write(root, "etc/initramfs-tools/modules", &modules, 0o644)?;
    write(root, "etc/apt/sources.list", &sources_list(suite, mirror, updates), 0o644)?;
    write(root, "etc/fstab", &fstab(root_uuid), 0o644)?;
    write(root, "etc/hostname", &format!("{HOSTNAME}\n"), 0o644)?;
    write(
        root,
        "etc/hosts",
        &format!("127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        0o644,
    )?;
    write(root, "boot/grub/grub.cfg", &grub_cfg(root_uuid, suite), 0o644)?;
    write(root, "etc/systemd/network/80-image-build-dhcp.network", NETWORK, 0o644)?;
    write(root, "etc/systemd/system/image-build-ssh-hostkeys.service", SSH_KEYGEN_UNIT, 0o644)?;
    link(
        root,
        "etc/systemd/system/multi-user.target.wants/image-build-ssh-hostkeys.service",
        "/etc/systemd/system/image-build-ssh-hostkeys.service",
    )?;
    Ok(())
}

/// Removes what the dpkg excludes would have kept out, from the packages that
/// debootstrap unpacked before the excludes existed; otherwise each later upgrade
/// of such a package deletes its docs and moves blocks for nothing.
pub fn drop_excluded_files(root: &Path) -> Result<()> {
    for dir in ["usr/share/man", "usr/share/info", "usr/share/lintian"] {
        empty_dir(&root.join(dir))?;
    }
    let locale = root.join("usr/share/locale");
    if let Ok(entries) = fs::read_dir(&locale) {
        for entry in entries.flatten() {
            if entry.file_name() != "locale.alias" {
                remove_if_exists(&entry.path())?;
            }
        }
    }
    let doc = root.join("usr/share/doc");
    if let Ok(packages) = fs::read_dir(&doc) {
        for package in packages.flatten() {
            let path = package.path();
            // Symlinked doc directories (to another package's) stay as they are.
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            for entry in
                fs::read_dir(&path).map_err(|e| OsError::io(format!("reading {}", path.display()), e))?.flatten()
            {
                if entry.file_name() != "copyright" {
                    remove_if_exists(&entry.path())?;
                }
            }
        }
    }
    Ok(())
}

/// Enables the units that systemd's packages ship but do not enable in a chroot.
pub fn enable_units(root: &Path) -> Result<()> {
    let lib = "/lib/systemd/system";
    link(
        root,
        "etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service",
        &format!("{lib}/serial-getty@.service"),
    )?;
    link(
        root,
        "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
        &format!("{lib}/systemd-networkd.service"),
    )?;
    link(
        root,
        "etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
        &format!("{lib}/systemd-networkd.socket"),
    )?;
    if root.join("lib/systemd/system/systemd-resolved.service").exists() {
        link(
            root,
            "etc/systemd/system/multi-user.target.wants/systemd-resolved.service",
            &format!("{lib}/systemd-resolved.service"),
        )?;
        link(
            root,
            "etc/systemd/system/dbus-org.freedesktop.resolve1.service",
            &format!("{lib}/systemd-resolved.service"),
        )?;
    }
    Ok(())
}

/// Stops package scripts from starting services in the chroot.
pub fn forbid_services(root: &Path) -> Result<()> {
    write(root, "usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)
}

pub fn allow_services(root: &Path) -> Result<()> {
    remove_if_exists(&root.join("usr/sbin/policy-rc.d"))
}

/// The image's own /etc/resolv.conf is set aside while apt runs in the chroot and
/// the host's is used; [`restore_resolv_conf`] undoes it.
pub fn borrow_host_resolv_conf(root: &Path) -> Result<()> {
    let path = root.join("etc/resolv.conf");
    let saved = root.join("etc/resolv.conf.image-build-saved");
    if fs::symlink_metadata(&path).is_ok() && fs::symlink_metadata(&saved).is_err() {
        fs::rename(&path, &saved).map_err(|e| OsError::io("setting the image's resolv.conf aside", e))?;
    }
    remove_if_exists(&path)?;
    let host = fs::read("/etc/resolv.conf").unwrap_or_default();
    fs::write(&path, host).map_err(|e| OsError::io("writing the build resolv.conf", e))
}

/// Final resolv.conf: systemd-resolved's stub when it is installed, else what the
/// image had, else nothing (the host's never stays in the image).
pub fn restore_resolv_conf(root: &Path) -> Result<()> {
    let path = root.join("etc/resolv.conf");
    let saved = root.join("etc/resolv.conf.image-build-saved");
    if root.join("lib/systemd/system/systemd-resolved.service").exists() {
        remove_if_exists(&saved)?;
        return link(root, "etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf");
    }
    if fs::symlink_metadata(&saved).is_ok() {
        remove_if_exists(&path)?;
        return fs::rename(&saved, &path).map_err(|e| OsError::io("restoring the image's resolv.conf", e));
    }
    remove_if_exists(&path)
}

/// Empties a directory, keeping the directory itself.
fn empty_dir(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(OsError::io(format!("reading {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| OsError::io(format!("reading {}", dir.display()), e))?;
        remove_if_exists(&entry.path())?;
    }
    Ok(())
}

/// Log files are truncated or removed; directories (with their owners and modes,
/// which services rely on) stay.
fn clean_logs(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            clean_logs(&path)?;
        } else if meta.is_file() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Empty login records are part of the packages that own them; the rest is history.
            if matches!(name.as_ref(), "wtmp" | "btmp" | "lastlog" | "faillog") {
                if meta.len() > 0 {
                    fs::write(&path, b"").map_err(|e| OsError::io(format!("truncating {}", path.display()), e))?;
                }
            } else {
                remove_if_exists(&path)?;
            }
        }
    }
    Ok(())
}

/// Removes what must not be baked into an image: caches, package lists, logs,
/// identities (machine-id, SSH host keys, random seed) and backup files.
pub fn remove_leftovers(root: &Path) -> Result<()> {
    for dir in ["var/lib/apt/lists", "var/cache/apt", "tmp", "var/tmp", "var/lib/systemd/coredump"] {
        empty_dir(&root.join(dir))?;
    }
    fs::create_dir_all(root.join("var/lib/apt/lists/partial"))
        .map_err(|e| OsError::io("creating apt's lists directory", e))?;
    fs::create_dir_all(root.join("var/cache/apt/archives/partial"))
        .map_err(|e| OsError::io("creating apt's cache directory", e))?;
    clean_logs(&root.join("var/log"))?;
    for rel in [
        "var/cache/ldconfig/aux-cache",
        "var/lib/systemd/random-seed",
        "var/lib/systemd/credential.secret",
        "var/lib/dbus/machine-id",
        "var/cache/debconf/config.dat-old",
        "var/cache/debconf/templates.dat-old",
        "var/cache/debconf/passwords.dat-old",
        "var/lib/dpkg/status-old",
        "var/lib/dpkg/diversions-old",
        "var/lib/dpkg/statoverride-old",
        "etc/passwd-",
        "etc/group-",
        "etc/shadow-",
        "etc/gshadow-",
        "etc/subuid-",
        "etc/subgid-",
        "root/.bash_history",
        "etc/resolv.conf.image-build-saved.tmp",
    ] {
        remove_if_exists(&root.join(rel))?;
    }
    if let Ok(entries) = fs::read_dir(root.join("etc/ssh")) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("ssh_host_") {
                remove_if_exists(&entry.path())?;
            }
        }
    }
    // Empty, as Debian's cloud images ship it: every machine that boots the image
    // gets its own id from systemd at first boot.
    if fs::read(root.join("etc/machine-id")).map_or(true, |c| !c.is_empty()) {
        write(root, "etc/machine-id", "", 0o444)?;
    }
    Ok(())
}

/// Sets the "last password change" day in /etc/shadow to the build's date, and
/// lets root log in on the console without a password (see docs/OS-IMAGES.md).
pub fn fix_shadow(root: &Path, epoch: i64) -> Result<()> {
    let path = root.join("etc/shadow");
    let text = fs::read_to_string(&path).map_err(|e| OsError::io("reading /etc/shadow", e))?;
    let fixed = shadow_text(&text, epoch);
    if fixed != text {
        let mode = fs::metadata(&path).map(|m| m.permissions().mode()).unwrap_or(0o640);
        fs::write(&path, fixed).map_err(|e| OsError::io("writing /etc/shadow", e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| OsError::io("chmod /etc/shadow", e))?;
    }
    Ok(())
}

pub fn shadow_text(text: &str, epoch: i64) -> String {
    let day = (epoch / 86400).to_string();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut f: Vec<&str> = line.split(':').collect();
        if f.len() >= 3 {
            if !f[2].is_empty() {
                f[2] = &day;
            }
            if f[0] == "root" && (f[1] == "*" || f[1] == "!" || f[1] == "!*") {
                f[1] = "";
            }
        }
        out.push_str(&f.join(":"));
        out.push('\n');
    }
    out
}

/// Copies the host's GRUB modules into /boot/grub/i386-pc, as grub-install would,
/// so that `insmod` works from the menu; they match the core.img built from them.
pub fn copy_grub_modules(root: &Path, grub_dir: &Path) -> Result<()> {
    let dest = root.join("boot/grub/i386-pc");
    fs::create_dir_all(&dest).map_err(|e| OsError::io(format!("creating {}", dest.display()), e))?;
    let entries = fs::read_dir(grub_dir).map_err(|e| OsError::io(format!("reading {}", grub_dir.display()), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let n = name.to_string_lossy();
        if n.ends_with(".mod") || n.ends_with(".lst") {
            fs::copy(entry.path(), dest.join(&name)).map_err(|e| OsError::io(format!("copying {n}"), e))?;
        }
    }
    Ok(())
}

/// Clamps every mtime in the tree to `epoch` and sets atime to the mtime; symlinks
/// are changed themselves, never followed. Returns how many entries were clamped.
pub fn clamp_times(root: &Path, epoch: i64) -> Result<u64> {
    let mut count = 0u64;
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).map_err(|e| OsError::io(format!("inspecting {}", path.display()), e))?;
        if meta.is_dir() {
            let entries = fs::read_dir(&path).map_err(|e| OsError::io(format!("reading {}", path.display()), e))?;
            for entry in entries {
                let entry = entry.map_err(|e| OsError::io(format!("reading {}", path.display()), e))?;
                stack.push(entry.path());
            }
        }
        let (mtime, mtime_ns) = if meta.mtime() > epoch { (epoch, 0) } else { (meta.mtime(), meta.mtime_nsec()) };
        if mtime != meta.mtime() || meta.atime() != mtime || meta.atime_nsec() != mtime_ns {
            let ts = TimeSpec::new(mtime, mtime_ns);
            utimensat(None, &path, &ts, &ts, UtimensatFlags::NoFollowSymlink)
                .map_err(|e| OsError::sys(format!("setting the times of {}", path.display()), e))?;
            count += 1;
        }
    }
    Ok(count)
}

/// Bytes used by the tree (allocated blocks), for the "does it fit" check.
pub fn tree_bytes(root: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        total += meta.blocks() * 512;
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            sources_list("bookworm", "http://deb.debian.org/debian", true),
            "deb http://deb.debian.org/debian bookworm main\n\
             deb http://deb.debian.org/debian bookworm-updates main\n\
             deb http://deb.debian.org/debian-security bookworm-security main\n"
        );
        assert_eq!(sources_list("bookworm", "http://m/debian", false), "deb http://m/debian bookworm main\n");
        assert_eq!(sources_list("sid", "http://m/debian", true), "deb http://m/debian sid main\n");
        assert!(!sources_list("bookworm", "http://m/mirror", true).contains("security"));
    }

    #[test]
    fn slim_kernel_patterns() {
        let s = slim_kernel_excludes();
        assert!(s.contains("path-exclude /lib/modules/*/kernel/drivers/net/wireless/*\n"));
        assert!(s.contains("path-exclude /usr/lib/modules/*/kernel/sound/soc/*\n"));
        assert!(!s.contains("virtio"));
    }

    #[test]
    fn grub_menu_uses_stable_symlinks_and_serial() {
        let c = grub_cfg("u-u-i-d", "bookworm");
        assert!(c.contains("linux /vmlinuz root=UUID=u-u-i-d ro console=tty0 console=ttyS0,115200"));
        assert!(c.contains("initrd /initrd.img\n"));
        assert!(c.contains("terminal_output console serial"));
        assert_eq!(grub_early_cfg("x"), "search.fs_uuid x root\nset prefix=($root)/boot/grub\n");
    }

    #[test]
    fn shadow_dates_and_root() {
        let s = "root:*:20779:0:99999:7:::\ndaemon:*:20779:0:99999:7:::\nuser:$6$x:20779::::::\nweird\n";
        let out = shadow_text(s, 86400 * 20000 + 5);
        assert_eq!(out, "root::20000:0:99999:7:::\ndaemon:*:20000:0:99999:7:::\nuser:$6$x:20000::::::\nweird\n");
    }

    #[test]
    fn clamping() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, "x").unwrap();
        symlink("/nonexistent", dir.path().join("l")).unwrap();
        let n = clamp_times(dir.path(), 1_000_000).unwrap();
        assert_eq!(n, 3);
        assert_eq!(fs::symlink_metadata(&f).unwrap().mtime(), 1_000_000);
        assert_eq!(fs::symlink_metadata(dir.path().join("l")).unwrap().mtime(), 1_000_000);
        assert_eq!(clamp_times(dir.path(), 1_000_000).unwrap(), 0);
    }

    #[test]
    fn leftovers_go() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for p in [
            "var/log/apt/history.log",
            "var/log/wtmp",
            "etc/ssh/ssh_host_rsa_key",
            "etc/ssh/sshd_config",
            "var/lib/apt/lists/x_Packages",
            "etc/machine-id",
        ] {
            fs::create_dir_all(r.join(p).parent().unwrap()).unwrap();
            fs::write(r.join(p), "data").unwrap();
        }
        remove_leftovers(r).unwrap();
        assert!(!r.join("var/log/apt/history.log").exists());
        assert!(r.join("var/log/apt").is_dir());
        assert_eq!(fs::read(r.join("var/log/wtmp")).unwrap(), b"");
        assert!(!r.join("etc/ssh/ssh_host_rsa_key").exists());
        assert!(r.join("etc/ssh/sshd_config").exists());
        assert!(r.join("var/lib/apt/lists/partial").is_dir());
        assert!(!r.join("var/lib/apt/lists/x_Packages").exists());
        assert_eq!(fs::read(r.join("etc/machine-id")).unwrap(), b"");
    }
}
