//! The QEMU command line for one snapshot: the one place in the project that
//! spells it out. Pure: no file is touched here, so every argument can be
//! checked by a unit test.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::accel::Accel;
use crate::catalog::{BootSettings, Firmware, Media};
use crate::firmware::FirmwareFiles;

/// Where the guest's screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A window (or, with SDL_VIDEODRIVER=kmsdrm, the whole screen without X).
    Sdl,
    /// A GTK window (needs X or Wayland).
    Gtk,
    /// The VGA text screen drawn in this terminal.
    Curses,
    /// QEMU's D-Bus display (`-display dbus,p2p=yes,gl=off`) for `circular-presenter`,
    /// which connects through the QMP socket [`VmSpec::qmp_socket`] and draws the guest
    /// full screen on the framebuffer. The guest gets a USB tablet (an absolute pointer, so
    /// the mouse lands where it is seen) and its serial console is QEMU's standard output.
    Presenter,
    /// No screen: the guest's serial console (multiplexed with QEMU's monitor,
    /// ctrl-a c) is QEMU's standard input and output (`-nographic`). That is this
    /// terminal for a person, or a pipe or file for a program that watches the
    /// console (`image-build profile`, the benchmarks).
    None,
}

impl Display {
    /// The name QEMU's `-display` option and Circular's `--display` use:
    /// `sdl`, `gtk`, `curses`, `presenter` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Display::Sdl => "sdl",
            Display::Gtk => "gtk",
            Display::Curses => "curses",
            Display::Presenter => "presenter",
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
    /// Parses [`Display::as_str`]'s names; the error is a sentence listing them.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sdl" => Ok(Display::Sdl),
            "gtk" => Ok(Display::Gtk),
            "curses" => Ok(Display::Curses),
            "presenter" => Ok(Display::Presenter),
            "none" => Ok(Display::None),
            other => Err(format!("display {other:?} is not sdl, gtk, curses, presenter or none")),
        }
    }
}

/// What happens to the guest's writes when it powers off: to a disk
/// snapshot's overlay, or to the scratch disk beside a CD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskChanges {
    /// A fresh overlay (or empty scratch disk) at every start: the snapshot boots as published.
    Discard,
    /// The snapshot's overlay (or scratch disk) is kept and reused at the next start.
    Keep,
}

/// The size of the empty scratch disk a CD snapshot gets unless the person
/// changes it, in GiB: room for a Debian desktop install. It is a sparse qcow2,
/// so it takes only what the guest writes.
pub const DEFAULT_SCRATCH_GIB: u32 = 16;

/// The settings a person can change before booting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmSettings {
    /// Guest memory in MiB (`-m`).
    pub memory_mib: u32,
    /// Virtual CPUs (`-smp`).
    pub cpus: u32,
    /// Whether the guest's writes outlive this start.
    pub changes: DiskChanges,
    /// Ask a windowed display for full screen.
    pub full_screen: bool,
    /// The empty scratch disk beside a CD snapshot, in GiB (0: none), where an
    /// installer installs and a live system can keep files. A disk snapshot has
    /// its overlay instead and ignores this. A kept scratch disk keeps the size
    /// it was made with.
    pub scratch_gib: u32,
}

impl Default for VmSettings {
    /// The catalog's default boot settings, changes discarded, windowed.
    fn default() -> Self {
        VmSettings::from_catalog(&BootSettings::default(), false)
    }
}

impl VmSettings {
    /// The catalog's memory and CPUs, changes discarded, a
    /// [`DEFAULT_SCRATCH_GIB`] scratch disk for a CD. Memory is at least 64 MiB
    /// and CPUs at least 1, whatever the catalog says.
    pub fn from_catalog(boot: &BootSettings, full_screen: bool) -> Self {
        VmSettings {
            memory_mib: boot.memory_mib.max(64),
            cpus: boot.cpus.max(1),
            changes: DiskChanges::Discard,
            full_screen,
            scratch_gib: DEFAULT_SCRATCH_GIB,
        }
    }
}

/// The snapshot's image: the overlay's read-only backing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseImage {
    /// A file: the dated image on the blockfs mount, which is what every boot
    /// of a person uses (the benchmarks also boot a local copy this way).
    File(PathBuf),
    /// An `http://` or `https://` URL that QEMU reads itself with its curl
    /// block driver, with no blockfs and no cache: the benchmarks' baseline.
    Url(String),
}

impl BaseImage {
    /// The path or URL, as `qemu-img create -b` and a person read it.
    pub fn to_os_string(&self) -> OsString {
        match self {
            BaseImage::File(path) => path.clone().into_os_string(),
            BaseImage::Url(url) => OsString::from(url),
        }
    }
}

/// Everything needed to start one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The distribution's name in the catalog (`bookworm`); names the overlay's directory.
    pub distribution: String,
    /// The snapshot's date, `YYYY-MM-DD`; never "latest" (see [`crate::resolve_image`]).
    pub date: String,
    /// The snapshot's image, read-only; normally the dated file on the blockfs mount.
    pub image: BaseImage,
    /// The image's size in bytes (the catalog's `image_size`): the overlay's
    /// virtual size, so making it reads nothing from the image.
    pub image_size: u64,
    /// BIOS or UEFI, from the catalog.
    pub firmware: Firmware,
    /// Disk or CD-ROM, from the catalog ([`Media::Disk`] unless set).
    pub media: Media,
    /// Memory, CPUs, kept changes, full screen, scratch disk.
    pub settings: VmSettings,
    /// KVM or TCG.
    pub accel: Accel,
    /// Where the guest's screen goes.
    pub display: Display,
    /// The cache directory; overlays go under `<cache_dir>/overlays/`.
    pub cache_dir: PathBuf,
    /// The QEMU system emulator; `qemu-system-x86_64`, found on PATH, unless set.
    pub qemu: PathBuf,
    /// QEMU's image tool; `qemu-img`, found on PATH, unless set.
    pub qemu_img: PathBuf,
}

impl VmSpec {
    /// A spec for the image file `image`, with QEMU's programs found on PATH.
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
            image: BaseImage::File(image),
            image_size,
            firmware,
            media: Media::Disk,
            settings,
            accel,
            display,
            cache_dir,
            qemu: PathBuf::from("qemu-system-x86_64"),
            qemu_img: PathBuf::from("qemu-img"),
        }
    }

    /// QEMU's QMP socket for [`Display::Presenter`]:
    /// `<cache_dir>/run/<distribution>-<date>.qmp`. [`crate::Vm::start`] makes its
    /// directory (mode 0700: QMP controls the VM) and removes a stale socket.
    pub fn qmp_socket(&self) -> PathBuf {
        self.cache_dir.join("run").join(format!("{}-{}.qmp", self.distribution, self.date))
    }
}

/// QEMU's option syntax separates with commas; a comma inside a value is doubled.
fn escape(value: &std::ffi::OsStr) -> String {
    value.to_string_lossy().replace(',', ",,")
}

/// The `-blockdev` node `base-file`: where the image's bytes come from.
fn base_file(image: &BaseImage) -> String {
    match image {
        // Locking is off because the file is on a read-only FUSE mount that many
        // VMs may share, and nobody ever writes it. `cache.direct=on` opens it
        // O_DIRECT: each guest read reaches blockfs as the guest asked it, not
        // widened by the kernel's page-cache readahead, so a boot fetches (and a
        // recorded boot profile lists) only the blocks the guest read. blockfs
        // keeps the blocks itself, so the page cache would only hold them twice.
        BaseImage::File(path) => format!(
            "driver=file,node-name=base-file,filename={},read-only=on,locking=off,cache.direct=on",
            escape(path.as_os_str())
        ),
        // QEMU's curl driver names its protocols `http` and `https`.
        BaseImage::Url(url) => {
            let driver = if url.starts_with("https://") { "https" } else { "http" };
            format!("driver={driver},node-name=base-file,url={},read-only=on", escape(url.as_ref()))
        }
    }
}

/// QEMU's `-sandbox` setting: the seccomp filter on, and every optional restriction too
/// (QEMU's `-sandbox` documentation; libvirt's default `seccomp_sandbox = 1` passes the same).
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// The arguments after the program name ([`VmSpec::qemu`]). `writable` is the
/// qcow2 file the guest writes to: for a disk snapshot, the overlay over the
/// image (with none, the guest gets the image read-only); for a CD, the scratch
/// disk beside it (none: no second drive). `uefi` must be set when the snapshot
/// boots with UEFI firmware (it is ignored for BIOS).
pub fn qemu_args(spec: &VmSpec, writable: Option<&Path>, uefi: Option<&FirmwareFiles>) -> Vec<OsString> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["-name", &format!("circular:{}:{}", spec.distribution, spec.date)]);
    // QEMU runs as root on the appliance and the guest is whatever the catalog names: confine
    // QEMU with its seccomp filter, as libvirt does by default. No obsolete syscalls, no
    // setuid/setgid, no fork/exec, no changes to scheduling or CPU affinity.
    push(&["-sandbox", SANDBOX]);
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
        push(&["-drive", &format!("if=pflash,format=raw,unit=0,readonly=on,file={}", escape(fw.code.as_os_str()))]);
        push(&["-drive", &format!("if=pflash,format=raw,unit=1,file={}", escape(fw.vars.as_os_str()))]);
    }
    push(&["-blockdev", &base_file(&spec.image)]);
    push(&["-blockdev", "driver=raw,node-name=base,file=base-file,read-only=on"]);
    let writable_file =
        |path: &Path| format!("driver=file,node-name=overlay-file,filename={}", escape(path.as_os_str()));
    match (spec.media, writable) {
        // The snapshot's image, read-only, under the guest's qcow2 overlay.
        (Media::Disk, Some(overlay)) => {
            push(&["-blockdev", &writable_file(overlay)]);
            // `backing=base` overrides the path recorded in the overlay.
            push(&["-blockdev", "driver=qcow2,node-name=disk,file=overlay-file,backing=base"]);
            push(&["-device", "virtio-blk-pci,drive=disk,bootindex=0"]);
        }
        (Media::Disk, None) => push(&["-device", "virtio-blk-pci,drive=base,bootindex=0"]),
        // A CD drive on the machine's own IDE (i440fx's PIIX, q35's AHCI): SeaBIOS
        // and OVMF both boot it through El Torito, and a live system finds its
        // medium there as /dev/sr0. A CD is read-only by nature, so no overlay.
        (Media::Cdrom, scratch) => {
            push(&["-device", "ide-cd,drive=base,bootindex=0"]);
            if let Some(scratch) = scratch {
                push(&["-blockdev", &writable_file(scratch)]);
                push(&["-blockdev", "driver=qcow2,node-name=disk,file=overlay-file"]);
                // After the CD: an installed system boots from here once the CD is done.
                push(&["-device", "virtio-blk-pci,drive=disk,bootindex=1"]);
            }
        }
    }
    push(&["-netdev", "user,id=net0"]);
    push(&["-device", "virtio-net-pci,netdev=net0"]);
    match spec.display {
        // The serial console on QEMU's stdio; the guest's power-off ends QEMU. No monitor
        // there: with -nographic alone, ctrl-a c would give whoever sits at the keyboard
        // QEMU's monitor, which can read host files and run commands as root.
        Display::None => push(&["-nographic", "-monitor", "none"]),
        Display::Curses => push(&["-display", "curses", "-monitor", "none", "-parallel", "none", "-serial", "none"]),
        // gl=off: the presenter draws the guest's pixels itself, so no EGL or Mesa is loaded.
        // The tablet sits on its own xHCI controller: i440fx has no USB bus by default.
        Display::Presenter => {
            push(&["-display", "dbus,p2p=yes,gl=off"]);
            push(&["-qmp", &format!("unix:{},server=on,wait=off", escape(spec.qmp_socket().as_os_str()))]);
            push(&["-device", "qemu-xhci,id=circular-input", "-device", "usb-tablet,bus=circular-input.0"]);
            push(&["-monitor", "none", "-parallel", "none", "-serial", "stdio"]);
        }
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
            VmSettings { memory_mib: 1536, cpus: 3, changes: DiskChanges::Discard, full_screen: true, scratch_gib: 0 },
            Accel::Kvm,
            Display::Sdl,
            PathBuf::from("/var/tmp/blocks"),
        )
    }

    fn args(spec: &VmSpec, uefi: Option<&FirmwareFiles>) -> String {
        qemu_args(spec, Some(Path::new("/var/tmp/blocks/overlays/o.qcow2")), uefi)
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
            "filename=/mnt/lbcas/bookworm/2026-11-22.img,read-only=on,locking=off,cache.direct=on",
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
    fn the_presenter_gets_the_dbus_display_its_qmp_socket_a_tablet_and_the_serial_console() {
        let mut s = spec();
        s.display = Display::Presenter;
        assert_eq!(s.qmp_socket(), PathBuf::from("/var/tmp/blocks/run/bookworm-2026-11-22.qmp"));
        let line = args(&s, None);
        for want in [
            "-display dbus,p2p=yes,gl=off",
            "-qmp unix:/var/tmp/blocks/run/bookworm-2026-11-22.qmp,server=on,wait=off",
            "-device qemu-xhci,id=circular-input -device usb-tablet,bus=circular-input.0",
            "-serial stdio",
        ] {
            assert!(line.contains(want), "missing {want:?} in {line}");
        }
        // Full screen is the presenter's own way of drawing, not a QEMU window's.
        assert!(!line.contains("-full-screen"), "{line}");
        assert_eq!("presenter".parse::<Display>(), Ok(Display::Presenter));
        assert!(!Display::Presenter.is_windowed());
    }

    #[test]
    fn uefi_uses_q35_and_pflash() {
        let mut s = spec();
        s.firmware = Firmware::Uefi;
        let fw = FirmwareFiles { code: PathBuf::from(crate::OVMF[0].code), vars: PathBuf::from("/c/o.vars.fd") };
        let line = args(&s, Some(&fw));
        assert!(line.contains("-machine q35"), "{line}");
        assert!(
            line.contains(&format!("if=pflash,format=raw,unit=0,readonly=on,file={}", crate::OVMF[0].code)),
            "{line}"
        );
        assert!(line.contains("if=pflash,format=raw,unit=1,file=/c/o.vars.fd"), "{line}");
    }

    #[test]
    fn commas_in_paths_are_doubled() {
        let mut s = spec();
        s.image = BaseImage::File(PathBuf::from("/mnt/a,b/x.img"));
        let line = args(&s, None);
        assert!(line.contains("filename=/mnt/a,,b/x.img,"), "{line}");
    }

    #[test]
    fn a_url_is_read_by_the_curl_driver_under_the_same_overlay() {
        let mut s = spec();
        s.image = BaseImage::Url("http://127.0.0.1:8080/a,b.img".to_string());
        let line = args(&s, None);
        assert!(
            line.contains("-blockdev driver=http,node-name=base-file,url=http://127.0.0.1:8080/a,,b.img,read-only=on"),
            "{line}"
        );
        assert!(line.contains("driver=qcow2,node-name=disk,file=overlay-file,backing=base"), "{line}");
        assert!(!line.contains("driver=file,node-name=base-file"), "{line}");
        s.image = BaseImage::Url("https://mirror.example/x.img".to_string());
        assert!(args(&s, None).contains("driver=https,node-name=base-file,url=https://mirror.example/x.img,"));
    }

    #[test]
    fn a_cd_is_a_read_only_ide_cd_that_boots_first_and_the_scratch_disk_follows() {
        let mut s = spec();
        s.media = Media::Cdrom;
        let scratch = Path::new("/var/tmp/blocks/overlays/bookworm/2026-11-22.qcow2");
        let line = qemu_args(&s, Some(scratch), None)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        for want in [
            "-machine pc",
            "filename=/mnt/lbcas/bookworm/2026-11-22.img,read-only=on",
            "-blockdev driver=raw,node-name=base,file=base-file,read-only=on -device ide-cd,drive=base,bootindex=0",
            "-blockdev driver=file,node-name=overlay-file,filename=/var/tmp/blocks/overlays/bookworm/2026-11-22.qcow2",
            "-blockdev driver=qcow2,node-name=disk,file=overlay-file -device virtio-blk-pci,drive=disk,bootindex=1",
        ] {
            assert!(line.contains(want), "missing {want:?} in {line}");
        }
        assert!(!line.contains("backing="), "the scratch disk is empty, over nothing: {line}");
        assert_eq!(line.matches("bootindex=0").count(), 1, "{line}");

        // No scratch disk: the CD alone. UEFI: the same drive on q35's AHCI.
        s.firmware = Firmware::Uefi;
        let fw = FirmwareFiles { code: PathBuf::from(crate::OVMF[0].code), vars: PathBuf::from("/c/o.vars.fd") };
        let line = qemu_args(&s, None, Some(&fw))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(line.contains("-machine q35") && line.contains("-device ide-cd,drive=base,bootindex=0"), "{line}");
        assert!(!line.contains("virtio-blk") && !line.contains("overlay-file"), "{line}");
    }

    #[test]
    fn a_disk_without_an_overlay_is_attached_read_only() {
        let line = qemu_args(&spec(), None, None)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(line.contains("read-only=on -device virtio-blk-pci,drive=base,bootindex=0"), "{line}");
        assert!(!line.contains("ide-cd") && !line.contains("overlay-file"), "{line}");
    }

    #[test]
    fn parse_names() {
        assert_eq!("none".parse::<Display>(), Ok(Display::None));
        assert!("vnc".parse::<Display>().is_err());
        assert_eq!("tcg".parse::<Accel>(), Ok(Accel::Tcg));
        assert!(Display::Sdl.is_windowed() && !Display::Curses.is_windowed());
    }

    #[test]
    fn every_display_is_sandboxed_and_has_no_monitor() {
        for display in [Display::None, Display::Curses, Display::Sdl, Display::Gtk, Display::Presenter] {
            let mut s = spec();
            s.display = display;
            let line = args(&s, None);
            assert!(line.contains(&format!("-sandbox {SANDBOX}")), "{display:?}: {line}");
            // The filter itself, spelled out (docs/APPLIANCE.md): a weaker constant must fail here.
            assert!(
                line.contains("-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"),
                "{display:?}: {line}"
            );
            // Nothing outside can connect into the guest.
            assert!(!line.contains("hostfwd") && !line.contains("guestfwd"), "{display:?}: {line}");
            assert!(line.contains("-monitor none"), "{display:?}: {line}");
            assert!(!line.contains("mon:"), "{display:?}: {line}");
        }
    }

    /// What a person at the keyboard would try: ctrl-a c on the serial console, then a monitor
    /// command. Real QEMU, under the real seccomp filter. The same keys on plain `-nographic`
    /// open the monitor, which shows the check can see it.
    #[test]
    fn ctrl_a_c_on_the_console_opens_no_monitor() {
        if !testkit::need(&["qemu-img", "qemu-system-x86_64"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("blank.img");
        std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        let overlay = dir.path().join("o.qcow2");
        let made = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&image)
            .arg(&overlay)
            .status()
            .unwrap();
        assert!(made.success());
        let mut s = spec();
        s.image = BaseImage::File(image);
        s.accel = Accel::Tcg;
        s.display = Display::None;
        s.settings.memory_mib = 64;
        s.settings.cpus = 1;
        let ours = qemu_args(&s, Some(&overlay), None);
        let mut plain: Vec<OsString> = Vec::new();
        let mut it = ours.iter().peekable();
        while let Some(a) = it.next() {
            if a == "-monitor" && it.peek().is_some_and(|v| *v == "none") {
                it.next();
                continue;
            }
            plain.push(a.clone());
        }
        assert!(!monitor_answers(&ours), "ctrl-a c opened QEMU's monitor");
        assert!(monitor_answers(&plain), "the check never saw a monitor, even on plain -nographic");
    }

    /// Runs QEMU with `args`, types ctrl-a c and `info version`, and says whether a monitor answered.
    fn monitor_answers(args: &[OsString]) -> bool {
        use std::io::{Read, Write};
        let mut qemu = std::process::Command::new("qemu-system-x86_64")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let mut stdin = qemu.stdin.take().unwrap();
        let _ = stdin.write_all(b"\x01c");
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = stdin.write_all(b"info version\n");
        std::thread::sleep(std::time::Duration::from_secs(2));
        let _ = qemu.kill();
        let _ = qemu.wait();
        let mut out = String::new();
        let _ = qemu.stdout.take().unwrap().read_to_string(&mut out);
        let mut err = String::new();
        let _ = qemu.stderr.take().unwrap().read_to_string(&mut err);
        assert!(!err.contains("seccomp") && !err.contains("sandbox"), "QEMU refused the sandbox: {err}");
        out.contains("(qemu)")
    }
}
