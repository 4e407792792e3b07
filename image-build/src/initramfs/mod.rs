//! `image-build initramfs`: builds the appliance's kernel + initramfs pair.
//!
//! It takes Debian's kernel package (downloaded with `apt-get download`,
//! cached under `--cache`), keeps only the module classes a PC needs (see
//! `modules::CLASSES`), and adds the Rust binaries, Debian's QEMU with its
//! shared-library closure, firmware and display module, e2fsprogs for the
//! first-boot grow, and busybox for the rescue shell. It prints what it put in
//! and the sizes, and writes the full list beside the image.

mod cpio;
mod debs;
mod elf;
mod firmware;
mod modules;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use cpio::{Archive, Node, Source};

use circular_format::units::format_size;

use crate::appliance::{self, ApplianceError};
use crate::tool::Runner;

/// QEMU's D-Bus display: `circular-presenter` shows the guest through it, full screen on the
/// framebuffer. ui-dbus.so loads ui-opengl.so (and its libgbm, libepoxy, …) even with `gl=off`.
const DISPLAY_PLUGINS: &[&str] =
    &["/usr/lib/x86_64-linux-gnu/qemu/ui-dbus.so", "/usr/lib/x86_64-linux-gnu/qemu/ui-opengl.so"];

/// The archive group of everything the graphical display path adds: the presenter, QEMU's
/// D-Bus display and the libraries only they need. `report` prints its share.
const DISPLAY_GROUP: &str = "display stack";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Publisher's ed25519 public key, built in as /etc/circular/public.key.
    #[arg(long)]
    pub public: PathBuf,
    /// Directory holding circular-init, circular-menu and blockfs.
    #[arg(long, default_value = "target/release")]
    pub bins: PathBuf,
    /// Download and unpack cache for Debian packages.
    #[arg(long, default_value = "build/debs")]
    pub cache: PathBuf,
    /// Output directory: vmlinuz, initramfs.img, initramfs.txt (contents), initramfs.log (tool output).
    #[arg(long, default_value = "build/appliance")]
    pub out: PathBuf,
    /// zstd level (19 is small but slow to build; the kernel unpacks any level).
    #[arg(long, default_value_t = 19)]
    pub level: i32,
    /// Kernel package; default: what `linux-image-amd64` depends on.
    #[arg(long)]
    pub kernel_package: Option<String>,
}

fn io<T>(p: &Path, r: std::io::Result<T>) -> Result<T, ApplianceError> {
    r.map_err(|e| ApplianceError::io(p, e))
}

/// Files below `dir`, recursively (regular files only; symlinks followed).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ApplianceError> {
    for e in io(dir, std::fs::read_dir(dir))? {
        let p = io(dir, e)?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

/// The regular files below `dir` (symlinks followed) and their bytes.
pub(crate) fn files_and_bytes(dir: &Path) -> Result<(usize, u64), ApplianceError> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    let mut bytes = 0;
    for f in &files {
        bytes += io(f, std::fs::metadata(f))?.len();
    }
    Ok((files.len(), bytes))
}

fn add_host_file(a: &mut Archive, host: &Path, group: &str) -> Result<(), ApplianceError> {
    let meta = io(host, std::fs::metadata(host))?;
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    a.add(&elf::dest_for(host), Node::File { source: Source::Path(host.to_path_buf()), mode, size: meta.len() }, group);
    Ok(())
}

/// Host programs run inside the appliance, and what they load at run time.
struct HostParts {
    programs: Vec<&'static str>,
    /// dlopen'ed objects: ldd them too.
    plugins: Vec<&'static str>,
    /// data directories or files copied as they are
    data: Vec<&'static str>,
}

fn host_parts() -> HostParts {
    let mut p = HostParts {
        programs: vec![
            "/usr/bin/qemu-system-x86_64",
            "/usr/bin/qemu-img",
            "/usr/sbin/e2fsck",
            "/usr/sbin/resize2fs",
            "/usr/bin/fusermount3",
            // Wi-Fi (PID 1 runs it on each wireless link; the menu's network screen drives it).
            "/usr/sbin/wpa_supplicant",
        ],
        plugins: vec![
            "/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so",
            // The fallback where the PC has no framebuffer at all.
            "/usr/lib/x86_64-linux-gnu/qemu/ui-curses.so",
        ],
        data: vec![
            "/usr/share/seabios",
            "/usr/lib/ipxe/qemu/efi-virtio.rom",
            "/usr/lib/ipxe/qemu/efi-e1000.rom",
            "/usr/lib/ipxe/qemu/efi-e1000e.rom",
            "/usr/share/qemu/kvmvapic.bin",
            "/usr/share/qemu/linuxboot.bin",
            "/usr/share/qemu/linuxboot_dma.bin",
            "/usr/share/qemu/multiboot_dma.bin",
            "/usr/share/qemu/pvh.bin",
            "/usr/share/qemu/keymaps",
            "/usr/share/qemu/firmware",
            "/usr/share/terminfo/l/linux",
            "/usr/share/terminfo/v/vt100",
            "/usr/share/terminfo/v/vt220",
            "/usr/share/terminfo/x/xterm",
            "/usr/share/terminfo/x/xterm-256color",
            "/usr/share/terminfo/s/screen",
            "/usr/share/terminfo/d/dumb",
            "/lib/terminfo/l/linux",
            "/lib/terminfo/v/vt100",
            "/lib/terminfo/v/vt220",
            "/lib/terminfo/x/xterm",
            "/lib/terminfo/x/xterm-256color",
            "/lib/terminfo/s/screen",
            "/lib/terminfo/d/dumb",
            "/etc/ssl/certs/ca-certificates.crt",
            // QEMU's curses display converts the VGA font from CP437 with
            // iconv, and needs a UTF-8 locale to draw it on the console.
            "/usr/lib/x86_64-linux-gnu/gconv/IBM437.so",
            "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules",
            "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
            "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.d",
            "/usr/lib/locale/C.utf8",
        ],
    };
    // UEFI snapshots: the OVMF build the appliance's launcher will pick (circular-vm's one list).
    if let Ok(ovmf) = circular_vm::find_ovmf() {
        p.data.extend([ovmf.code, ovmf.vars_template]);
    }
    p
}

/// Busybox applets linked for the rescue shell (`circular.shell`).
const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "cp", "mv", "rm", "ln", "mkdir", "mount", "umount", "dmesg", "ip", "ps", "kill", "vi", "less",
    "grep", "sed", "awk", "df", "du", "free", "top", "sync", "ping", "wget", "find", "head", "tail", "hexdump",
    "lsmod", "insmod", "modprobe", "poweroff", "reboot", "blkid", "fdisk", "lsusb", "env", "stty",
];

pub fn run(args: &Args) -> Result<(), ApplianceError> {
    let started = std::time::Instant::now();
    io(&args.out, std::fs::create_dir_all(&args.out))?;
    let mut runner = Runner::new(&args.out.join("initramfs.log"), appliance::hint)?;
    let kernel = fetch_kernel(&mut runner, args)?;
    let subset = module_subset(&mut runner, &kernel, &args.out)?;
    let fw = firmware::collect(&mut runner, &args.cache, &subset.firmware, &args.out.join("firmware"))?;
    let mut archive = fill_archive(&mut runner, args, &kernel, &subset.root)?;
    let held = subset.held.iter().map(|m| format!("{m}\n")).collect::<String>();
    archive.add(
        Path::new(firmware::HELD_MODULES),
        Node::File { size: held.len() as u64, source: Source::Bytes(held.into_bytes()), mode: 0o644 },
        "circular binaries",
    );
    let written = write_outputs(&archive, &kernel, args)?;
    report(&archive, &kernel, &subset, &written, args, started)?;
    println!(
        "  GPU firmware {} in {} files (xz), for {}: {} beside it, for the stick's cache partition ({} named by the drivers are not in Debian's packages)",
        format_size(fw.bytes),
        fw.files,
        subset.held.join(" "),
        args.out.join("firmware").display(),
        fw.missing
    );
    Ok(())
}

/// Debian's kernel package, downloaded and unpacked under `--cache`.
struct Kernel {
    package: String,
    version: String,
    /// `lib/modules/<version>` of the whole package.
    modules: PathBuf,
    vmlinuz: PathBuf,
}

/// Step 1: the kernel, from Debian's package.
fn fetch_kernel(runner: &mut Runner, args: &Args) -> Result<Kernel, ApplianceError> {
    let package = match &args.kernel_package {
        Some(p) => p.clone(),
        None => debs::kernel_package(runner)?,
    };
    let deb = debs::download(runner, &args.cache, &package)?;
    let root = args.cache.join(&package);
    debs::extract(runner, &deb, &root)?;
    let moddir = root.join("lib/modules");
    let version = io(&moddir, std::fs::read_dir(&moddir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| ApplianceError::NoKernelVersion { dir: moddir.clone() })?;
    let vmlinuz = root.join(format!("boot/vmlinuz-{version}"));
    if !vmlinuz.is_file() {
        return Err(ApplianceError::NoVmlinuz { path: vmlinuz });
    }
    // The package ships no modules.dep: make one for the full tree once.
    let modules = moddir.join(&version);
    if !modules.join("modules.dep").exists() {
        runner.run("depmod", Command::new("depmod").arg("-b").arg(&root).arg(&version))?;
    }
    Ok(Kernel { package, version, modules, vmlinuz })
}

/// The modules a PC needs, in a tree of their own with its own modules.dep.
struct ModuleSubset {
    /// Holds `lib/modules/<version>`.
    root: PathBuf,
    /// Files and bytes per module class, for the report.
    by_class: BTreeMap<&'static str, (usize, u64)>,
    /// The firmware files the GPU drivers ask for.
    firmware: std::collections::BTreeSet<String>,
    /// The GPU drivers that ask for firmware (module names, `-` as `_`): PID 1 loads them
    /// once the stick's cache partition, which has it, is mounted.
    held: Vec<String>,
}

/// Step 2: the module subset, byte for byte as Debian signed it (a compressed one is
/// decompressed, never stripped or recompressed: this kernel has no in-kernel module
/// decompression, and the whole initramfs is zstd-compressed anyway). Under Secure Boot
/// the kernel is in lockdown and loads only modules whose appended signature checks, so
/// each one is checked to still carry it.
fn module_subset(runner: &mut Runner, kernel: &Kernel, out: &Path) -> Result<ModuleSubset, ApplianceError> {
    let full = &kernel.modules;
    let dep = modules::parse_dep(&io(full, std::fs::read_to_string(full.join("modules.dep")))?);
    let selected = modules::select(&dep);
    let root = out.join("modroot");
    if root.exists() {
        io(&root, std::fs::remove_dir_all(&root))?;
    }
    let subset = root.join("lib/modules").join(&kernel.version);
    let mut by_class: BTreeMap<&'static str, (usize, u64)> = BTreeMap::new();
    let mut firmware = std::collections::BTreeSet::new();
    let mut held = Vec::new();
    for (m, class) in &selected {
        let bytes = decompress_module(runner, &full.join(m))?;
        check_signed(&full.join(m), &bytes)?;
        if *class == modules::GPU_CLASS {
            let asked = firmware::asked_for(&bytes);
            if !asked.is_empty() {
                held.push(modules::stem(m).rsplit('/').next().unwrap_or_default().replace('-', "_"));
                firmware.extend(asked);
            }
        }
        let dst = subset.join(format!("{}.ko", modules::stem(m)));
        if let Some(parent) = dst.parent() {
            io(parent, std::fs::create_dir_all(parent))?;
        }
        io(&dst, std::fs::write(&dst, &bytes))?;
        let e = by_class.entry(class).or_default();
        e.0 += 1;
        e.1 += bytes.len() as u64;
    }
    for f in ["modules.order", "modules.builtin", "modules.builtin.modinfo"] {
        io(&full.join(f), std::fs::copy(full.join(f), subset.join(f)))?;
    }
    runner.run("depmod", Command::new("depmod").arg("-b").arg(&root).arg(&kernel.version))?;
    Ok(ModuleSubset { root, by_class, firmware, held })
}

/// Step 3: everything the initramfs holds, in the order that decides which of two
/// entries for one path wins (the later).
fn fill_archive(runner: &mut Runner, args: &Args, kernel: &Kernel, modroot: &Path) -> Result<Archive, ApplianceError> {
    let mut a = Archive::new();
    add_skeleton(&mut a);
    let (mut elf_inputs, presenter) = add_circular_files(runner, &mut a, args)?;
    add_busybox(&mut a)?;
    let parts = host_parts();
    elf_inputs.extend(add_host_programs(&mut a, &parts)?);
    let libraries = elf::closure(runner, &elf_inputs)?;
    let mut display_inputs = vec![presenter];
    for plug in DISPLAY_PLUGINS {
        let p = PathBuf::from(plug);
        if !p.is_file() {
            return Err(ApplianceError::MissingHostProgram { path: p });
        }
        add_host_file(&mut a, &p, DISPLAY_GROUP)?;
        display_inputs.push(p);
    }
    for lib in &libraries {
        add_host_file(&mut a, lib, "shared libraries")?;
    }
    for lib in elf::closure(runner, &display_inputs)?.difference(&libraries) {
        add_host_file(&mut a, lib, DISPLAY_GROUP)?;
    }
    add_host_data(&mut a, &parts)?;
    add_modules(&mut a, modroot)?;
    let build_info = format!("kernel {} ({})\n", kernel.package, kernel.version);
    a.add(
        Path::new("etc/circular/build.txt"),
        Node::File { size: build_info.len() as u64, source: Source::Bytes(build_info.into_bytes()), mode: 0o644 },
        "circular binaries",
    );
    Ok(a)
}

/// Directories, device node and symlinks of a merged-/usr root.
fn add_skeleton(a: &mut Archive) {
    for d in ["dev", "proc", "sys", "run", "tmp", "mnt", "var/tmp", "etc", "root", "usr/lib64"] {
        a.add(Path::new(d), Node::Dir { mode: 0o755 }, "directories");
    }
    a.add(Path::new("tmp"), Node::Dir { mode: 0o1777 }, "directories");
    // The kernel opens /dev/console for init's stdio before anything mounts /dev.
    a.add(Path::new("dev/console"), Node::CharDev { mode: 0o600, major: 5, minor: 1 }, "directories");
    for (l, t) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        a.add(Path::new(l), Node::Symlink { target: t.into() }, "directories");
    }
    a.add(Path::new("etc/mtab"), Node::Symlink { target: "/proc/self/mounts".into() }, "directories");
}

/// The Rust binaries (stripped), /init and the publisher's key. Returns the unstripped
/// binaries, whose libraries the archive needs: the presenter's apart, for the display
/// stack's share.
fn add_circular_files(
    runner: &mut Runner,
    a: &mut Archive,
    args: &Args,
) -> Result<(Vec<PathBuf>, PathBuf), ApplianceError> {
    // circular-menu links the ratatui menu and the VM launcher; the desktop
    // program `circular` is not needed on the stick.
    let rust_bins = ["circular-init", "circular-menu", "blockfs", "circular-presenter"];
    let mut elf_inputs: Vec<PathBuf> = Vec::new();
    for name in rust_bins {
        let p = args.bins.join(name);
        if !p.is_file() {
            return Err(ApplianceError::MissingBinary { path: p });
        }
        // Release builds keep debug info (for backtraces on the build host);
        // the stick gets stripped copies.
        let stripped = args.out.join("bin").join(name);
        io(&args.out.join("bin"), std::fs::create_dir_all(args.out.join("bin")))?;
        runner.run("objcopy --strip-debug", Command::new("objcopy").arg("--strip-debug").arg(&p).arg(&stripped))?;
        let meta = io(&stripped, std::fs::metadata(&stripped))?;
        a.add(
            &Path::new("usr/bin").join(name),
            Node::File { source: Source::Path(stripped.clone()), mode: 0o755, size: meta.len() },
            if name == "circular-presenter" { DISPLAY_GROUP } else { "circular binaries" },
        );
        elf_inputs.push(p);
    }
    let presenter = elf_inputs.pop().unwrap_or_default();
    a.add(Path::new("init"), Node::Symlink { target: "usr/bin/circular-init".into() }, "circular binaries");
    let key_len = io(&args.public, std::fs::metadata(&args.public))?.len();
    a.add(
        Path::new("etc/circular/public.key"),
        Node::File { source: Source::Path(args.public.clone()), mode: 0o644, size: key_len },
        "circular binaries",
    );
    Ok((elf_inputs, presenter))
}

/// Busybox (static) and its applets, for the rescue shell.
fn add_busybox(a: &mut Archive) -> Result<(), ApplianceError> {
    add_host_file(a, Path::new("/usr/bin/busybox"), "busybox")?;
    for app in APPLETS {
        let p = Path::new("usr/bin").join(app);
        if !a.contains(&p) {
            a.add(&p, Node::Symlink { target: "busybox".into() }, "busybox");
        }
    }
    Ok(())
}

/// QEMU, e2fsprogs, fusermount3 and QEMU's plugins. Returns them, for their libraries.
fn add_host_programs(a: &mut Archive, parts: &HostParts) -> Result<Vec<PathBuf>, ApplianceError> {
    let mut added = Vec::new();
    for prog in &parts.programs {
        let p = PathBuf::from(prog);
        if !p.is_file() {
            return Err(ApplianceError::MissingHostProgram { path: p });
        }
        add_host_file(a, &p, "qemu and tools")?;
        added.push(p);
    }
    for plug in &parts.plugins {
        let p = PathBuf::from(plug);
        if !p.is_file() {
            return Err(ApplianceError::MissingHostProgram { path: p });
        }
        add_host_file(a, &p, "qemu and tools")?;
        added.push(p);
    }
    Ok(added)
}

/// Firmware, terminfo, certificates and locale data, where the host has them.
fn add_host_data(a: &mut Archive, parts: &HostParts) -> Result<(), ApplianceError> {
    for d in &parts.data {
        let p = PathBuf::from(d);
        if p.is_dir() {
            let mut files = Vec::new();
            walk(&p, &mut files)?;
            for f in files {
                add_host_file(a, &f, "firmware and data")?;
            }
        } else if p.is_file() {
            add_host_file(a, &p, "firmware and data")?;
        }
    }
    Ok(())
}

/// The module subset, under /usr/lib/modules.
fn add_modules(a: &mut Archive, modroot: &Path) -> Result<(), ApplianceError> {
    let mut mods = Vec::new();
    walk(modroot, &mut mods)?;
    for f in mods {
        // walk() only yields paths below modroot.
        let Ok(rel) = f.strip_prefix(modroot) else { continue };
        let len = io(&f, std::fs::metadata(&f))?.len();
        a.add(
            &Path::new("usr").join(rel),
            Node::File { source: Source::Path(f.clone()), mode: 0o644, size: len },
            "kernel modules",
        );
    }
    Ok(())
}

/// What step 4 wrote.
struct Written {
    image: PathBuf,
    /// The cpio archive's size before compression.
    cpio_bytes: u64,
    kernel: PathBuf,
}

/// Step 4: the initramfs, zstd-compressed, and the kernel beside it.
fn write_outputs(a: &Archive, kernel: &Kernel, args: &Args) -> Result<Written, ApplianceError> {
    let image = args.out.join("initramfs.img");
    let tmp = args.out.join("initramfs.img.tmp");
    let file = io(&tmp, std::fs::File::create(&tmp))?;
    let mut enc = io(&tmp, zstd::Encoder::new(std::io::BufWriter::new(file), args.level))?;
    // Checksums let the kernel's unpacker catch a corrupt image early.
    io(&tmp, enc.include_checksum(true))?;
    let cpio_bytes = io(&tmp, a.write(&mut enc))?;
    let mut w = io(&tmp, enc.finish())?;
    io(&tmp, w.flush())?;
    drop(w);
    io(&image, std::fs::rename(&tmp, &image))?;
    let kernel_out = args.out.join("vmlinuz");
    io(&kernel_out, std::fs::copy(&kernel.vmlinuz, &kernel_out))?;
    Ok(Written { image, cpio_bytes, kernel: kernel_out })
}

/// Step 5: the full listing beside the image, and the summary on stdout.
fn report(
    a: &Archive,
    kernel: &Kernel,
    subset: &ModuleSubset,
    written: &Written,
    args: &Args,
    started: std::time::Instant,
) -> Result<(), ApplianceError> {
    let (listing, groups) = listing(a);
    let list = args.out.join("initramfs.txt");
    io(&list, std::fs::write(&list, &listing))?;
    let compressed = io(&written.image, std::fs::metadata(&written.image))?.len();
    let kernel_len = io(&written.kernel, std::fs::metadata(&written.kernel))?.len();
    println!("initramfs: kernel {} ({})", kernel.package, kernel.version);
    println!("  {:<20} {:>6} {:>10}", "what", "files", "bytes");
    for (g, (n, b)) in &groups {
        println!("  {g:<20} {n:>6} {:>10}", format_size(*b));
    }
    println!("  kernel modules by class:");
    for (c, (n, b)) in &subset.by_class {
        println!("    {c:<18} {n:>6} {:>10}", format_size(*b));
    }
    let stack = groups.get(DISPLAY_GROUP).map_or(0, |(_, b)| *b);
    let gpu = subset.by_class.get(modules::GPU_CLASS).map_or(0, |(_, b)| *b);
    println!(
        "  display stack: presenter, QEMU's D-Bus display and their libraries {} + GPU drivers {} = {} of {} cpio ({:.1}%)",
        format_size(stack),
        format_size(gpu),
        format_size(stack + gpu),
        format_size(written.cpio_bytes),
        percent(stack + gpu, written.cpio_bytes)
    );
    println!(
        "  cpio {} -> zstd -{} {} ({})",
        format_size(written.cpio_bytes),
        args.level,
        format_size(compressed),
        written.image.display()
    );
    println!("  kernel {} ({})", format_size(kernel_len), written.kernel.display());
    println!("  full list: {}  ({:.0} s)", list.display(), started.elapsed().as_secs_f64());
    Ok(())
}

/// `part` as a percentage of `whole` (0 for an empty whole).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// One line per entry (`kind size /path`), and files and bytes per group.
fn listing(a: &Archive) -> (String, BTreeMap<&str, (usize, u64)>) {
    let mut groups: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    let mut listing = String::new();
    for (path, e) in a.entries() {
        let (kind, size) = match &e.node {
            Node::Dir { .. } => ("d", 0),
            Node::File { size, .. } => ("f", *size),
            Node::Symlink { target } => {
                listing.push_str(&format!("l {:>10} /{} -> {}\n", 0, path.display(), target));
                continue;
            }
            Node::CharDev { .. } => ("c", 0),
        };
        listing.push_str(&format!("{kind} {size:>10} /{}\n", path.display()));
        if kind == "f" {
            let g = groups.entry(e.group.as_str()).or_default();
            g.0 += 1;
            g.1 += size;
        }
    }
    (listing, groups)
}

/// What the kernel's `sign-file` appends after a module's signature: a module without it
/// would be refused under lockdown (`Lockdown: ... unsigned module loading is restricted`).
pub const MODULE_SIG_MAGIC: &[u8] = b"~Module signature appended~\n";

/// Refuses a module (`path`, its decompressed `bytes`) that no longer ends with its signature.
fn check_signed(path: &Path, bytes: &[u8]) -> Result<(), ApplianceError> {
    if bytes.ends_with(MODULE_SIG_MAGIC) {
        Ok(())
    } else {
        Err(ApplianceError::UnsignedModule { path: path.to_path_buf() })
    }
}

fn decompress_module(runner: &mut Runner, src: &Path) -> Result<Vec<u8>, ApplianceError> {
    let name = src.to_string_lossy();
    if name.ends_with(".ko.zst") {
        let f = io(src, std::fs::File::open(src))?;
        io(src, zstd::decode_all(f))
    } else if name.ends_with(".ko.xz") {
        Ok(runner.output_bytes("xz -dc", Command::new("xz").arg("-dc").arg(src))?)
    } else if name.ends_with(".ko") {
        io(src, std::fs::read(src))
    } else {
        Err(ApplianceError::ModuleCompression { path: src.to_path_buf() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_counts_files_by_group() {
        let mut a = Archive::new();
        add_skeleton(&mut a);
        a.add(
            Path::new("etc/circular/build.txt"),
            Node::File { size: 3, source: Source::Bytes(b"abc".to_vec()), mode: 0o644 },
            "circular binaries",
        );
        let (text, groups) = listing(&a);
        assert!(text.contains("l          0 /bin -> usr/bin\n"), "{text}");
        assert!(text.contains("c          0 /dev/console\n"), "{text}");
        assert!(text.contains("f          3 /etc/circular/build.txt\n"), "{text}");
        assert_eq!(groups.get("circular binaries"), Some(&(1, 3)));
        assert_eq!(groups.len(), 1, "only files are counted");
    }

    #[test]
    fn a_module_without_its_signature_is_refused_by_name() {
        let signed = [b"\x7fELF...module...signature".as_slice(), MODULE_SIG_MAGIC].concat();
        assert!(check_signed(Path::new("/m/ok.ko"), &signed).is_ok());
        // Stripped (the signature gone), or cut short by one byte.
        for bytes in [&b"\x7fELF...module"[..], &signed[..signed.len() - 1]] {
            let err = check_signed(Path::new("/m/kernel/fs/fuse/fuse.ko"), bytes).unwrap_err();
            assert!(matches!(err, ApplianceError::UnsignedModule { .. }), "{err}");
            assert!(err.to_string().contains("/m/kernel/fs/fuse/fuse.ko"), "{err}");
        }
    }

    #[test]
    fn unknown_module_compression_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Runner::new(&dir.path().join("log"), appliance::hint).unwrap();
        let err = decompress_module(&mut r, Path::new("/x/foo.ko.bz2")).unwrap_err();
        assert!(matches!(err, ApplianceError::ModuleCompression { .. }), "{err}");
        let ko = dir.path().join("a.ko.zst");
        std::fs::write(&ko, zstd::encode_all(&b"module"[..], 3).unwrap()).unwrap();
        assert_eq!(decompress_module(&mut r, &ko).unwrap(), b"module");
    }

    #[test]
    fn xz_modules_come_out_byte_for_byte() {
        if !testkit::need(&["xz"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ko = dir.path().join("b.ko");
        let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        std::fs::write(&ko, &bytes).unwrap();
        assert!(Command::new("xz").arg("-k").arg(&ko).status().unwrap().success());
        let mut r = Runner::new(&dir.path().join("log"), appliance::hint).unwrap();
        assert_eq!(decompress_module(&mut r, &dir.path().join("b.ko.xz")).unwrap(), bytes);
    }
}
