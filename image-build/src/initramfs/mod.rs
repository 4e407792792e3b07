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
mod modules;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use cpio::{Archive, Node, Source};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("{0}")]
    Tool(String),
    #[error("missing input: {0}")]
    Missing(String),
}

/// Which full-screen display QEMU gets in the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Display {
    /// QEMU's curses display on the text console: small (no Mesa), text-mode
    /// guests and serial consoles only show well.
    Curses,
    /// SDL on KMS/DRM with Mesa (software rendering): real graphics, full
    /// screen, but about four times bigger. Needs qemu-system-gui and Mesa
    /// installed on the build host.
    Sdl,
}

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
    /// Output directory: vmlinuz, initramfs.img, initramfs.txt (contents).
    #[arg(long, default_value = "build/appliance")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "curses")]
    pub display: Display,
    /// zstd level (19 is small but slow to build; the kernel unpacks any level).
    #[arg(long, default_value_t = 19)]
    pub level: i32,
    /// Kernel package; default: what `linux-image-amd64` depends on.
    #[arg(long)]
    pub kernel_package: Option<String>,
}

fn io<T>(p: &Path, r: std::io::Result<T>) -> Result<T, Error> {
    r.map_err(|e| Error::Io(p.to_path_buf(), e))
}

/// Files below `dir`, recursively (regular files only; symlinks followed).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
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

fn add_host_file(a: &mut Archive, host: &Path, group: &str) -> Result<(), Error> {
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

fn host_parts(display: Display) -> HostParts {
    let mut p = HostParts {
        programs: vec![
            "/usr/bin/qemu-system-x86_64",
            "/usr/bin/qemu-img",
            "/usr/sbin/e2fsck",
            "/usr/sbin/resize2fs",
            "/usr/bin/fusermount3",
        ],
        plugins: vec![
            "/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so",
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
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
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
    if display == Display::Sdl {
        p.plugins.extend([
            "/usr/lib/x86_64-linux-gnu/qemu/ui-sdl.so",
            "/usr/lib/x86_64-linux-gnu/qemu/ui-opengl.so",
            "/usr/lib/x86_64-linux-gnu/dri/kms_swrast_dri.so",
            "/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so",
            "/usr/lib/x86_64-linux-gnu/libEGL_mesa.so.0",
            "/usr/lib/x86_64-linux-gnu/libudev.so.1",
        ]);
        p.data.push("/usr/share/glvnd/egl_vendor.d");
    }
    p
}

/// Busybox applets linked for the rescue shell (`circular.shell`).
const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "cp", "mv", "rm", "ln", "mkdir", "mount", "umount", "dmesg", "ip", "ps", "kill", "vi", "less",
    "grep", "sed", "awk", "df", "du", "free", "top", "sync", "ping", "wget", "find", "head", "tail", "hexdump",
    "lsmod", "insmod", "modprobe", "poweroff", "reboot", "blkid", "fdisk", "lsusb", "env", "stty",
];

pub fn run(args: &Args) -> Result<(), Error> {
    let started = std::time::Instant::now();
    // 1. The kernel, from Debian's package.
    let pkg = match &args.kernel_package {
        Some(p) => p.clone(),
        None => debs::kernel_package()?,
    };
    let deb = debs::download(&args.cache, &pkg)?;
    let kroot = args.cache.join(&pkg);
    debs::extract(&deb, &kroot)?;
    let moddir = kroot.join("lib/modules");
    let ver = io(&moddir, std::fs::read_dir(&moddir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| Error::Missing(format!("no kernel version under {}", moddir.display())))?;
    let vmlinuz = kroot.join(format!("boot/vmlinuz-{ver}"));
    if !vmlinuz.is_file() {
        return Err(Error::Missing(vmlinuz.display().to_string()));
    }
    // The package ships no modules.dep: make one for the full tree once.
    let full = moddir.join(&ver);
    if !full.join("modules.dep").exists() {
        run_tool(Command::new("depmod").arg("-b").arg(&kroot).arg(&ver))?;
    }

    // 2. Module subset, decompressed (this kernel has no in-kernel module
    // decompression; the whole initramfs is zstd-compressed anyway).
    let dep = modules::parse_dep(&io(&full, std::fs::read_to_string(full.join("modules.dep")))?);
    let selected = modules::select(&dep);
    let modroot = args.out.join("modroot");
    if modroot.exists() {
        io(&modroot, std::fs::remove_dir_all(&modroot))?;
    }
    let subset = modroot.join("lib/modules").join(&ver);
    let mut class_sizes: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for (m, class) in &selected {
        let src = full.join(m);
        let bytes = decompress_module(&src)?;
        let dst = subset.join(format!("{}.ko", modules::stem(m)));
        if let Some(parent) = dst.parent() {
            io(parent, std::fs::create_dir_all(parent))?;
        }
        io(&dst, std::fs::write(&dst, &bytes))?;
        let e = class_sizes.entry(class).or_default();
        e.0 += 1;
        e.1 += bytes.len() as u64;
    }
    for f in ["modules.order", "modules.builtin", "modules.builtin.modinfo"] {
        io(&full.join(f), std::fs::copy(full.join(f), subset.join(f)))?;
    }
    run_tool(Command::new("depmod").arg("-b").arg(&modroot).arg(&ver))?;

    // 3. The archive.
    let mut a = Archive::new();
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

    // Rust binaries.
    let init = args.bins.join("circular-init");
    // circular-menu links the ratatui menu and the VM launcher; the desktop
    // program `circular` is not needed on the stick.
    let rust_bins = ["circular-init", "circular-menu", "blockfs"];
    let mut elf_inputs: Vec<PathBuf> = Vec::new();
    for name in rust_bins {
        let p = args.bins.join(name);
        if !p.is_file() {
            return Err(Error::Missing(format!("{} (run cargo build --release)", p.display())));
        }
        // Release builds keep debug info (for backtraces on the build host);
        // the stick gets stripped copies.
        let stripped = args.out.join("bin").join(name);
        io(&args.out.join("bin"), std::fs::create_dir_all(args.out.join("bin")))?;
        run_tool(Command::new("objcopy").arg("--strip-debug").arg(&p).arg(&stripped))?;
        let meta = io(&stripped, std::fs::metadata(&stripped))?;
        a.add(
            &Path::new("usr/bin").join(name),
            Node::File { source: Source::Path(stripped.clone()), mode: 0o755, size: meta.len() },
            "circular binaries",
        );
        elf_inputs.push(p);
    }
    let init_len = io(&init, std::fs::metadata(&init))?.len();
    a.add(Path::new("init"), Node::Symlink { target: "usr/bin/circular-init".into() }, "circular binaries");
    let _ = init_len;
    let key_len = io(&args.public, std::fs::metadata(&args.public))?.len();
    a.add(
        Path::new("etc/circular/public.key"),
        Node::File { source: Source::Path(args.public.clone()), mode: 0o644, size: key_len },
        "circular binaries",
    );

    // Busybox (static) for the rescue shell.
    let busybox = PathBuf::from("/usr/bin/busybox");
    add_host_file(&mut a, &busybox, "busybox")?;
    for app in APPLETS {
        let p = Path::new("usr/bin").join(app);
        if !a.contains(&p) {
            a.add(&p, Node::Symlink { target: "busybox".into() }, "busybox");
        }
    }

    // QEMU, e2fsprogs, fusermount3 and their libraries.
    let parts = host_parts(args.display);
    for prog in &parts.programs {
        let p = PathBuf::from(prog);
        if !p.is_file() {
            return Err(Error::Missing(format!("{prog} (run make deps)")));
        }
        add_host_file(&mut a, &p, "qemu and tools")?;
        elf_inputs.push(p);
    }
    for plug in &parts.plugins {
        let p = PathBuf::from(plug);
        if !p.is_file() {
            return Err(Error::Missing(format!(
                "{plug} (for --display {:?}: install its Debian package)",
                args.display
            )));
        }
        add_host_file(&mut a, &p, "qemu and tools")?;
        elf_inputs.push(p);
    }
    for lib in elf::closure(&elf_inputs)? {
        add_host_file(&mut a, &lib, "shared libraries")?;
    }
    for d in &parts.data {
        let p = PathBuf::from(d);
        if p.is_dir() {
            let mut files = Vec::new();
            walk(&p, &mut files)?;
            for f in files {
                add_host_file(&mut a, &f, "firmware and data")?;
            }
        } else if p.is_file() {
            add_host_file(&mut a, &p, "firmware and data")?;
        }
    }
    // Kernel modules.
    let mut mods = Vec::new();
    walk(&modroot, &mut mods)?;
    for f in mods {
        let rel = f.strip_prefix(&modroot).map_err(|_| Error::Tool("module path outside modroot".into()))?;
        let len = io(&f, std::fs::metadata(&f))?.len();
        a.add(
            &Path::new("usr").join(rel),
            Node::File { source: Source::Path(f.clone()), mode: 0o644, size: len },
            "kernel modules",
        );
    }
    let build_info = format!("kernel {pkg} ({ver})\ndisplay {:?}\n", args.display);
    a.add(
        Path::new("etc/circular/build.txt"),
        Node::File { size: build_info.len() as u64, source: Source::Bytes(build_info.into_bytes()), mode: 0o644 },
        "circular binaries",
    );

    // 4. Write it, zstd-compressed.
    io(&args.out, std::fs::create_dir_all(&args.out))?;
    let img = args.out.join("initramfs.img");
    let tmp = args.out.join("initramfs.img.tmp");
    let file = io(&tmp, std::fs::File::create(&tmp))?;
    let mut enc = io(&tmp, zstd::Encoder::new(std::io::BufWriter::new(file), args.level))?;
    // Checksums let the kernel's unpacker catch a corrupt image early.
    io(&tmp, enc.include_checksum(true))?;
    let raw = io(&tmp, a.write(&mut enc))?;
    let mut w = io(&tmp, enc.finish())?;
    io(&tmp, w.flush())?;
    drop(w);
    io(&img, std::fs::rename(&tmp, &img))?;
    let kernel_out = args.out.join("vmlinuz");
    io(&kernel_out, std::fs::copy(&vmlinuz, &kernel_out))?;

    // 5. Report.
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
    let list = args.out.join("initramfs.txt");
    io(&list, std::fs::write(&list, &listing))?;
    let compressed = io(&img, std::fs::metadata(&img))?.len();
    let kernel_len = io(&kernel_out, std::fs::metadata(&kernel_out))?.len();
    println!("initramfs: kernel {pkg} ({ver}), display {:?}", args.display);
    println!("  {:<20} {:>6} {:>10}", "what", "files", "bytes");
    for (g, (n, b)) in &groups {
        println!("  {g:<20} {n:>6} {:>10}", mib(*b));
    }
    println!("  kernel modules by class:");
    for (c, (n, b)) in &class_sizes {
        println!("    {c:<18} {n:>6} {:>10}", mib(*b));
    }
    println!("  cpio {} -> zstd -{} {} ({})", mib(raw), args.level, mib(compressed), img.display());
    println!("  kernel {} ({})", mib(kernel_len), kernel_out.display());
    println!("  full list: {}  ({:.0} s)", list.display(), started.elapsed().as_secs_f64());
    Ok(())
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

fn run_tool(cmd: &mut Command) -> Result<(), Error> {
    let st = cmd.status().map_err(|e| Error::Tool(format!("{cmd:?}: {e}")))?;
    if st.success() {
        Ok(())
    } else {
        Err(Error::Tool(format!("{cmd:?} failed: {st}")))
    }
}

fn decompress_module(src: &Path) -> Result<Vec<u8>, Error> {
    let name = src.to_string_lossy();
    if name.ends_with(".ko.zst") {
        let f = io(src, std::fs::File::open(src))?;
        io(src, zstd::decode_all(f))
    } else if name.ends_with(".ko.xz") {
        let out = Command::new("xz").arg("-dc").arg(src).output().map_err(|e| Error::Tool(format!("xz: {e}")))?;
        if !out.status.success() {
            return Err(Error::Tool(format!("xz -dc {name} failed")));
        }
        Ok(out.stdout)
    } else if name.ends_with(".ko") {
        io(src, std::fs::read(src))
    } else {
        Err(Error::Tool(format!("{name}: unsupported module compression")))
    }
}
