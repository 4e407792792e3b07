//! `circular-presenter`: shows a running QEMU's guest full screen on the Linux framebuffer and
//! sends the PC's keyboard and mouse to it (see the `presenter` crate).
//!
//! Exit status: 0 when QEMU has gone (the guest powered off), 10 when the user pressed the
//! leave-the-guest chord (Ctrl+Alt+Esc; QEMU keeps running), 1 on an error (printed).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use presenter::{evdev_input, Error, Event, FbdevOutput, Output, Pumped, Qmp, Session};

/// What `circular-presenter` exits with after the chord.
const EXIT_LEFT: u8 = 10;

#[derive(Parser, Debug)]
#[command(
    name = "circular-presenter",
    about = "Show a QEMU guest (-display dbus,p2p=yes,gl=off) full screen on /dev/fb0"
)]
struct Args {
    /// QEMU's QMP socket (a `-qmp unix:PATH,server=on,wait=off` of its own).
    #[arg(long)]
    qmp: PathBuf,
    /// The framebuffer device to draw on.
    #[arg(long, default_value = "/dev/fb0")]
    fbdev: PathBuf,
    /// The console to put in graphics mode (KD_GRAPHICS) while drawing, so the kernel's text
    /// console does not draw over the guest.
    #[arg(long)]
    tty: Option<PathBuf>,
    /// Do not read evdev keyboards and mice (view only).
    #[arg(long)]
    no_input: bool,
}

/// The console in KD_GRAPHICS while this lives; back to KD_TEXT when dropped.
struct GraphicsMode(File);

const KDSETMODE: libc::c_ulong = 0x4B3A;
const KD_TEXT: libc::c_ulong = 0;
const KD_GRAPHICS: libc::c_ulong = 1;

impl GraphicsMode {
    fn enter(tty: &Path) -> Result<GraphicsMode, Error> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(tty)
            .map_err(|source| Error::Io { what: format!("open {}", tty.display()), source })?;
        // SAFETY: KDSETMODE takes an integer argument, not a pointer; the fd is open.
        if unsafe { libc::ioctl(file.as_raw_fd(), KDSETMODE, KD_GRAPHICS) } != 0 {
            return Err(Error::Io {
                what: format!("KDSETMODE on {}", tty.display()),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(GraphicsMode(file))
    }
}

impl Drop for GraphicsMode {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        unsafe { libc::ioctl(self.0.as_raw_fd(), KDSETMODE, KD_TEXT) };
    }
}

fn run(args: &Args) -> Result<u8, Error> {
    let mut output = FbdevOutput::open(&args.fbdev)?;
    let _graphics = args.tty.as_deref().map(GraphicsMode::enter).transpose()?;
    let mut qmp = Qmp::connect(&args.qmp)?;
    let mut session = Session::connect_with(&mut qmp)?;
    // QEMU's exit closes its QMP socket: that read ends the session, with no polling.
    let closed = session.sender();
    std::thread::Builder::new()
        .name("qmp-watch".into())
        .spawn(move || {
            if let Err(e) = qmp.wait_closed() {
                log::warn!("{e}");
            }
            let _ = closed.send(Event::Closed);
        })
        .map_err(|source| Error::Io { what: "thread watching QMP".into(), source })?;
    if !args.no_input {
        let devices = evdev_input::spawn_readers(Arc::clone(session.input()), output.size())?;
        eprintln!("circular-presenter: {} input devices; {} leaves the guest", devices.len(), presenter::CHORD);
    }
    loop {
        match session.pump(&mut output, None)? {
            Pumped::Leave => return Ok(EXIT_LEFT),
            Pumped::Closed => return Ok(0),
            _ => {}
        }
    }
}

/// Warnings (a device not grabbed, a reader that stopped) to stderr, which the menu shows and
/// keeps for a failure's reason.
fn init_log() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                eprintln!("circular-presenter: {}: {}", r.level().as_str().to_lowercase(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Warn);
}

fn main() -> ExitCode {
    init_log();
    let args = Args::parse();
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("circular-presenter: {e}");
            ExitCode::FAILURE
        }
    }
}
