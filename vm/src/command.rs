//! The QEMU command line for one snapshot. Pure: no file is touched here, so
//! every argument can be checked by a unit test.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::catalog::{BootSettings, Firmware};

use super::accel::Accel;
use super::error::VmError;

/// Where the guest's screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A window (or, with SDL_VIDEODRIVER=kmsdrm, the whole screen without X).
    Sdl,
    /// A GTK window (needs X or Wayland).
    Gtk,
    /// The VGA text screen drawn in this terminal.
    Curses,
    /// No screen: the guest's serial console is this terminal (`-nographic`).
    None,
}

impl Display {
    pub fn as_str(self) -> &'static str {
        match self {
            Display::Sdl => "sdl",
            Display::Gtk => "gtk",
            Display::Curses => "curses",
            Display::None => "none",
        }
    }

    /// True when QEMU draws in its own window and leaves the terminal to the menu.
    pub fn is_windowed(self) -> bool {
        matches!(self, Display::Sdl | Display::Gtk)
    }
}

impl std::str::FromStr for Display {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sdl" => Ok(Display::Sdl),
            "gtk" => Ok(Display::Gtk),
            "curses" => Ok(Display::Curses),
            "none" => Ok(Display::None),
            other => Err(format!("display {other:?} is not sdl, gtk, curses or none")),
        }
    }
}

/// What happens to the guest's writes when it powers off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskChanges {
    /// A fresh overlay at every start: the snapshot boots as published.
    Discard,
    /// The snapshot's overlay is kept and reused at the next start.
    Keep,
}

/// The settings a person can change before booting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmSettings {
    pub memory_mib: u32,
    pub cpus: u32,
    pub changes: DiskChanges,
    /// Ask a windowed display for full screen.
    pub full_screen: bool,
}

impl Default for VmSettings {
    fn default() -> Self {
        VmSettings::from_catalog(&BootSettings::default(), false)
    }
}

impl VmSettings {
    /// The catalog's memory and CPUs, changes discarded.
    pub fn from_catalog(boot: &BootSettings, full_screen: bool) -> Self {
        VmSettings {
            memory_mib: boot.memory_mib.max(64),
            cpus: boot.cpus.max(1),
            changes: DiskChanges::Discard,
            full_screen,
        }
    }
}

/// Everything needed to start one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub distribution: String,
    /// The snapshot's date; never "latest" (see [`super::resolve_image`]).
    pub date: String,
    /// The dated image file on the blockfs mount.
    pub image: PathBuf,
    pub image_size: u64,
    pub firmware: Firmware,
    pub settings: VmSettings,
    pub accel: Accel,
    pub display: Display,
    /// The cache directory; overlays go under `<cache_dir>/overlays/`.
    pub cache_dir: PathBuf,
    /// The QEMU programs, found on PATH unless set.
    pub qemu: PathBuf,
    pub qemu_img: PathBuf,
}

impl VmSpec {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        distribution: &str,
        date: &str,
        image: PathBuf,
        image_size: u64,
        firmware: Firmware,
        settings: VmSettings,
        accel: Accel,
        display: Display,
        cache_dir: PathBuf,
    ) -> Self {
        VmSpec {
            distribution: distribution.to_string(),
            date: date.to_string(),
            image,
            image_size,
            firmware,
            settings,
            accel,
            display,
            cache_dir,
            qemu: PathBuf::from("qemu-system-x86_64"),
            qemu_img: PathBuf::from("qemu-img"),
        }
    }
}

/// UEFI firmware: the read-only code and this VM's own copy of the variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareFiles {
    pub code: PathBuf,
    pub vars: PathBuf,
}

impl FirmwareFiles {
    /// Debian's OVMF (package ovmf), 4 MiB build first.
    pub const CANDIDATES: [(&'static str, &'static str); 2] = [
        ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
        ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ];

    /// The first installed (code, vars template) pair.
    pub fn find() -> Result<(PathBuf, PathBuf), VmError> {
        FirmwareFiles::CANDIDATES
            .iter()
            .find(|(code, vars)| Path::new(code).exists() && Path::new(vars).exists())
            .map(|(code, vars)| (PathBuf::from(code), PathBuf::from(vars)))
            .ok_or_else(|| VmError::NoUefiFirmware {
                looked: FirmwareFiles::CANDIDATES.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", "),
            })
    }
}

/// QEMU's option syntax separates with commas; a comma inside a value is doubled.
fn escape(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

/// The arguments after the program name. `overlay` is the qcow2 file to write
/// to; `uefi` must be set when the snapshot boots with UEFI firmware.
pub fn qemu_args(spec: &VmSpec, overlay: &Path, uefi: Option<&FirmwareFiles>) -> Vec<OsString> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["-name", &format!("circular:{}:{}", spec.distribution, spec.date)]);
    match spec.firmware {
        // The default i440fx machine boots BIOS images from any era.
        Firmware::Bios => push(&["-machine", "pc"]),
        // OVMF wants q35 (SMM-less build here, so no secure boot requirements).
        Firmware::Uefi => push(&["-machine", "q35"]),
    }
    match spec.accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        // `max` gives TCG guests every feature QEMU can emulate (x86-64-v2 and up).
        Accel::Tcg => push(&["-accel", "tcg", "-cpu", "max"]),
    }
    push(&["-m", &spec.settings.memory_mib.to_string()]);
    push(&["-smp", &spec.settings.cpus.to_string()]);
    if let (Firmware::Uefi, Some(fw)) = (spec.firmware, uefi) {
        push(&["-drive", &format!("if=pflash,format=raw,unit=0,readonly=on,file={}", escape(&fw.code))]);
        push(&["-drive", &format!("if=pflash,format=raw,unit=1,file={}", escape(&fw.vars))]);
    }
    // The snapshot's image, read-only. Locking is off because the file is on a
    // read-only FUSE mount that many VMs may share, and nobody ever writes it.
    push(&[
        "-blockdev",
        &format!("driver=file,node-name=base-file,filename={},read-only=on,locking=off", escape(&spec.image)),
    ]);
    push(&["-blockdev", "driver=raw,node-name=base,file=base-file,read-only=on"]);
    push(&["-blockdev", &format!("driver=file,node-name=overlay-file,filename={}", escape(overlay))]);
    // `backing=base` overrides the path recorded in the overlay.
    push(&["-blockdev", "driver=qcow2,node-name=disk,file=overlay-file,backing=base"]);
    push(&["-device", "virtio-blk-pci,drive=disk,bootindex=0"]);
    push(&["-netdev", "user,id=net0"]);
    push(&["-device", "virtio-net-pci,netdev=net0"]);
    match spec.display {
        // Serial console and monitor on this terminal (ctrl-a x quits, ctrl-a c
        // is the monitor); the guest's power-off ends QEMU.
        Display::None => push(&["-nographic"]),
        Display::Curses => push(&["-display", "curses", "-monitor", "none", "-parallel", "none", "-serial", "none"]),
        // One window only: SDL opens a window per console and the last one wins.
        Display::Sdl | Display::Gtk => {
            push(&["-display", spec.display.as_str()]);
            push(&["-monitor", "none", "-parallel", "none", "-serial", "none"]);
            if spec.settings.full_screen {
                push(&["-full-screen"]);
            }
        }
    }
    a.into_iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec::new(
            "bookworm",
            "2026-11-22",
            PathBuf::from("/mnt/lbcas/bookworm/2026-11-22.img"),
            2 << 30,
            Firmware::Bios,
            VmSettings { memory_mib: 1536, cpus: 3, changes: DiskChanges::Discard, full_screen: true },
            Accel::Kvm,
            Display::Sdl,
            PathBuf::from("/var/tmp/blocks"),
        )
    }

    fn args(spec: &VmSpec, uefi: Option<&FirmwareFiles>) -> String {
        qemu_args(spec, Path::new("/var/tmp/blocks/overlays/o.qcow2"), uefi)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn kvm_sdl_full_screen() {
        let line = args(&spec(), None);
        for want in [
            "-machine pc",
            "-accel kvm -cpu host",
            "-m 1536",
            "-smp 3",
            "filename=/mnt/lbcas/bookworm/2026-11-22.img,read-only=on",
            "driver=raw,node-name=base,file=base-file,read-only=on",
            "filename=/var/tmp/blocks/overlays/o.qcow2",
            "driver=qcow2,node-name=disk,file=overlay-file,backing=base",
            "-device virtio-blk-pci,drive=disk",
            "-netdev user,id=net0 -device virtio-net-pci,netdev=net0",
            "-display sdl",
            "-full-screen",
        ] {
            assert!(line.contains(want), "missing {want:?} in {line}");
        }
        assert!(!line.contains("pflash"));
    }

    #[test]
    fn tcg_headless_serial_on_terminal() {
        let mut s = spec();
        s.accel = Accel::Tcg;
        s.display = Display::None;
        let line = args(&s, None);
        assert!(line.contains("-accel tcg -cpu max"), "{line}");
        assert!(line.contains("-nographic"), "{line}");
        assert!(!line.contains("-full-screen"), "{line}");
        assert!(!line.contains("kvm"), "{line}");
    }

    #[test]
    fn window_without_full_screen_and_curses() {
        let mut s = spec();
        s.settings.full_screen = false;
        s.display = Display::Gtk;
        let line = args(&s, None);
        assert!(line.contains("-display gtk") && !line.contains("-full-screen"), "{line}");
        s.display = Display::Curses;
        let line = args(&s, None);
        assert!(line.contains("-display curses") && !line.contains("-full-screen"), "{line}");
    }

    #[test]
    fn uefi_uses_q35_and_pflash() {
        let mut s = spec();
        s.firmware = Firmware::Uefi;
        let fw = FirmwareFiles {
            code: PathBuf::from("/usr/share/OVMF/OVMF_CODE_4M.fd"),
            vars: PathBuf::from("/c/o.vars.fd"),
        };
        let line = args(&s, Some(&fw));
        assert!(line.contains("-machine q35"), "{line}");
        assert!(
            line.contains("if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"),
            "{line}"
        );
        assert!(line.contains("if=pflash,format=raw,unit=1,file=/c/o.vars.fd"), "{line}");
    }

    #[test]
    fn commas_in_paths_are_doubled() {
        let mut s = spec();
        s.image = PathBuf::from("/mnt/a,b/x.img");
        let line = args(&s, None);
        assert!(line.contains("filename=/mnt/a,,b/x.img,"), "{line}");
    }

    #[test]
    fn parse_names() {
        assert_eq!("none".parse::<Display>(), Ok(Display::None));
        assert!("vnc".parse::<Display>().is_err());
        assert_eq!("tcg".parse::<Accel>(), Ok(Accel::Tcg));
        assert!(Display::Sdl.is_windowed() && !Display::Curses.is_windowed());
    }
}
