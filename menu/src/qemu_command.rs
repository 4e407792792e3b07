//! `circular qemu-command`: prints the QEMU command line that Circular's VM
//! launcher (`circular-vm`) builds for one disk image, one argument per line,
//! program first, and runs nothing.
//!
//! What it is for: the benchmarks (`bench/coldboot.sh` boots every method with
//! it, so each is timed on the command a person's boot runs, and the repository
//! spells QEMU's `-blockdev` wiring in one place), and a person who wants to see,
//! or rerun by hand, what `circular` starts.
//!
//! What it does not do: make the overlay (the caller runs `qemu-img create -f
//! qcow2 -u -F raw -b BASE OVERLAY SIZE`; the backing path recorded there is
//! never opened) or a CD's scratch disk (`qemu-img create -f qcow2 FILE SIZE`),
//! copy UEFI variables, or mount anything.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use blockfs::catalog::{BootSettings, Firmware, Media};
use circular_vm::{
    detect_accel, find_ovmf, qemu_args, Accel, BaseImage, Display, FirmwareFiles, VmError, VmSettings, VmSpec,
};

/// The options of `circular qemu-command`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The read-only base image: a file, normally a dated image on a blockfs mount.
    #[arg(long, value_name = "FILE", required_unless_present = "url", conflicts_with = "url")]
    pub image: Option<PathBuf>,
    /// Instead of --image: an http:// or https:// URL that QEMU reads itself (its curl driver).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The qcow2 file that takes the guest's writes, made by the caller: the
    /// overlay over a disk image (needed), or a CD's scratch disk (optional).
    #[arg(long, value_name = "FILE")]
    pub overlay: Option<PathBuf>,
    /// disk (under the overlay) or cdrom (a read-only CD drive the firmware boots), as the catalog's `media`.
    #[arg(long, default_value = "disk", value_parser = parse_media)]
    pub media: Media,
    /// The distribution, for QEMU's window title (-name circular:NAME:DATE).
    #[arg(long, value_name = "NAME")]
    pub distribution: String,
    /// The snapshot's date, for QEMU's window title.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: String,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = BootSettings::default().memory_mib)]
    pub memory_mib: u32,
    /// Virtual CPUs.
    #[arg(long, value_name = "N", default_value_t = BootSettings::default().cpus)]
    pub cpus: u32,
    /// kvm or tcg (default: KVM when it works on this machine, else TCG).
    #[arg(long, value_parser = |s: &str| s.parse::<Accel>())]
    pub accel: Option<Accel>,
    /// sdl, gtk, curses or none (the serial console on QEMU's standard input and output).
    #[arg(long, default_value = "none", value_parser = |s: &str| s.parse::<Display>())]
    pub display: Display,
    /// Ask a windowed display for full screen.
    #[arg(long)]
    pub full_screen: bool,
    /// Boot with UEFI (q35 and Debian's OVMF, found as the launcher finds it).
    /// FILE is this VM's own copy of OVMF's variables, made by the caller.
    #[arg(long, value_name = "FILE")]
    pub uefi_vars: Option<PathBuf>,
}

fn parse_media(s: &str) -> Result<Media, String> {
    match s {
        "disk" => Ok(Media::Disk),
        "cdrom" => Ok(Media::Cdrom),
        other => Err(format!("medium {other:?} is not disk or cdrom")),
    }
}

/// Why no command line was printed.
#[derive(Debug, thiserror::Error)]
pub enum QemuCommandError {
    /// A disk image was given without `--overlay`.
    #[error("a disk image needs --overlay FILE (make it with qemu-img create -f qcow2 -u -F raw -b IMAGE FILE SIZE)")]
    NoOverlay,
    /// `--uefi-vars` was given and no OVMF is installed.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// One argument holds a newline, which one-argument-per-line output cannot carry.
    #[error("{0:?} holds a newline, which the one-argument-per-line output cannot carry; rename it")]
    Newline(String),
    /// Standard output could not be written.
    #[error("writing the command line: {0}")]
    Output(#[source] std::io::Error),
}

/// The command line: [`VmSpec::qemu`] first, then [`qemu_args`].
///
/// # Errors
/// [`QemuCommandError::Vm`] for `--uefi-vars` on a machine without OVMF,
/// [`QemuCommandError::NoOverlay`] for a disk without `--overlay`.
pub fn command_line(args: &Args) -> Result<Vec<OsString>, QemuCommandError> {
    if args.media == Media::Disk && args.overlay.is_none() {
        return Err(QemuCommandError::NoOverlay);
    }
    let firmware = if args.uefi_vars.is_some() { Firmware::Uefi } else { Firmware::Bios };
    let settings = VmSettings {
        full_screen: args.full_screen,
        ..VmSettings::from_catalog(&BootSettings { memory_mib: args.memory_mib, cpus: args.cpus, firmware }, false)
    };
    let accel = args.accel.unwrap_or_else(|| detect_accel().accel);
    // The cache directory only places overlays that the launcher makes itself;
    // this one is the caller's.
    let mut spec = VmSpec::new(
        &args.distribution,
        &args.date,
        PathBuf::new(),
        0,
        firmware,
        settings,
        accel,
        args.display,
        PathBuf::new(),
    );
    spec.image = match (&args.image, &args.url) {
        (_, Some(url)) => BaseImage::Url(url.clone()),
        (Some(file), None) => BaseImage::File(file.clone()),
        // clap requires one of the two.
        (None, None) => BaseImage::File(PathBuf::new()),
    };
    spec.media = args.media;
    let uefi = match &args.uefi_vars {
        Some(vars) => Some(FirmwareFiles { code: PathBuf::from(find_ovmf()?.code), vars: vars.clone() }),
        None => None,
    };
    let mut line = vec![spec.qemu.clone().into_os_string()];
    line.extend(qemu_args(&spec, args.overlay.as_deref(), uefi.as_ref()));
    Ok(line)
}

/// Writes [`command_line`] to `out`, one argument per line.
///
/// # Errors
/// Those of [`command_line`]; [`QemuCommandError::Newline`] when an argument
/// holds a newline (nothing is written then); [`QemuCommandError::Output`]
/// when `out` fails.
pub fn run(args: &Args, out: &mut impl Write) -> Result<(), QemuCommandError> {
    let line = command_line(args)?;
    if let Some(bad) = line.iter().find(|a| a.as_encoded_bytes().contains(&b'\n')) {
        return Err(QemuCommandError::Newline(bad.to_string_lossy().into_owned()));
    }
    let mut text = Vec::new();
    for arg in &line {
        text.extend_from_slice(arg.as_encoded_bytes());
        text.push(b'\n');
    }
    out.write_all(&text).and_then(|()| out.flush()).map_err(QemuCommandError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec!["circular", "qemu-command", "--distribution", "bench", "--date", "2026-11-22"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv)?;
        match cli.command {
            Some(Command::QemuCommand(a)) => Ok(a),
            None => panic!("no subcommand parsed"),
        }
    }

    fn printed(args: &Args) -> Vec<String> {
        let mut out = Vec::new();
        run(args, &mut out).unwrap();
        String::from_utf8(out).unwrap().lines().map(str::to_string).collect()
    }

    #[test]
    fn prints_the_launchers_command_one_argument_per_line() {
        let a =
            parse(&["--image", "/mnt/x,y/bench/2026-11-22.img", "--overlay", "/w/o.qcow2", "--accel", "tcg"]).unwrap();
        let lines = printed(&a);
        assert_eq!(lines[0], "qemu-system-x86_64");
        let joined = lines.join(" ");
        for want in [
            "-name circular:bench:2026-11-22",
            "-machine pc",
            "-accel tcg -cpu max",
            "-m 1024",
            "-smp 2",
            "filename=/mnt/x,,y/bench/2026-11-22.img,",
            "filename=/w/o.qcow2",
            "-nographic",
        ] {
            assert!(joined.contains(want), "missing {want:?} in {joined}");
        }
        let vm = VmSpec::new(
            "bench",
            "2026-11-22",
            PathBuf::from("/mnt/x,y/bench/2026-11-22.img"),
            0,
            Firmware::Bios,
            VmSettings::default(),
            Accel::Tcg,
            Display::None,
            PathBuf::new(),
        );
        let launcher: Vec<String> = qemu_args(&vm, Some("/w/o.qcow2".as_ref()), None)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(lines[1..], launcher[..], "exactly what the launcher runs");
    }

    #[test]
    fn a_url_memory_cpus_and_uefi() {
        let a = parse(&[
            "--url",
            "http://127.0.0.1:18951/image.img",
            "--overlay",
            "o.qcow2",
            "--memory-mib",
            "512",
            "--cpus",
            "1",
            "--accel",
            "kvm",
            "--display",
            "sdl",
            "--full-screen",
        ])
        .unwrap();
        let joined = printed(&a).join(" ");
        assert!(joined.contains("driver=http,node-name=base-file,url=http://127.0.0.1:18951/image.img,"), "{joined}");
        assert!(joined.contains("-m 512 -smp 1") && joined.contains("-accel kvm"), "{joined}");
        assert!(joined.contains("-display sdl") && joined.contains("-full-screen"), "{joined}");

        let a = parse(&["--image", "i.img", "--overlay", "o.qcow2", "--accel", "tcg", "--uefi-vars", "/w/o.vars.fd"])
            .unwrap();
        match command_line(&a) {
            Ok(line) => {
                let joined = line.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
                assert!(joined.contains("-machine q35") && joined.contains("unit=1,file=/w/o.vars.fd"), "{joined}");
            }
            Err(e) => assert!(e.to_string().contains("install Debian's ovmf"), "{e}"),
        }
    }

    #[test]
    fn a_cd_with_and_without_a_scratch_disk() {
        let a = parse(&["--image", "/m/memtest/2026-11-22.img", "--media", "cdrom", "--accel", "tcg"]).unwrap();
        let joined = printed(&a).join(" ");
        assert!(joined.contains("-device ide-cd,drive=base,bootindex=0"), "{joined}");
        assert!(!joined.contains("virtio-blk"), "{joined}");
        let a = parse(&["--image", "i.iso", "--media", "cdrom", "--overlay", "/w/s.qcow2", "--accel", "tcg"]).unwrap();
        let joined = printed(&a).join(" ");
        assert!(joined.contains("filename=/w/s.qcow2") && joined.contains("drive=disk,bootindex=1"), "{joined}");
        let a = parse(&["--image", "i.img", "--accel", "tcg"]).unwrap();
        assert!(matches!(command_line(&a), Err(QemuCommandError::NoOverlay)));
        assert!(parse(&["--image", "i.img", "--media", "floppy"]).is_err());
    }

    #[test]
    fn one_base_exactly_and_no_newlines() {
        let err = parse(&["--overlay", "o.qcow2"]).unwrap_err();
        assert!(err.to_string().contains("--image"), "{err}");
        let err = parse(&["--image", "i.img", "--url", "http://x/i.img", "--overlay", "o.qcow2"]).unwrap_err();
        assert!(err.to_string().contains("cannot be used with"), "{err}");
        let a = parse(&["--image", "a\nb.img", "--overlay", "o.qcow2", "--accel", "tcg"]).unwrap();
        let mut out = Vec::new();
        assert!(matches!(run(&a, &mut out), Err(QemuCommandError::Newline(_))));
        assert!(out.is_empty());
    }
}
