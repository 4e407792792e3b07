//! `circular-menu`: the boot menu as the appliance runs it, in its own
//! process on the console (started by circular-init). It is the seam between
//! PID 1 and the `menu` crate: `run_menu` is the one function to swap for
//! `menu::run` when that crate lands. Until then it is a small line-based
//! placeholder that lists the snapshots on the blockfs mount and boots one
//! in QEMU with a qcow2 overlay on the cache partition.
//!
//! Exit codes tell PID 1 what to do next: 0 = show the menu again,
//! 10 = power off, 11 = reboot, 12 = rescue shell.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(Debug, Clone)]
struct Config {
    mountpoint: PathBuf,
    cache_dir: PathBuf,
    accel: String,
    display: String,
    appliance: bool,
    shell_allowed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MenuExit {
    Quit,
    PowerOff,
    Reboot,
    Shell,
}

#[derive(Debug, thiserror::Error)]
enum MenuError {
    #[error("{0}")]
    Usage(String),
    #[error("console: {0}")]
    Io(#[from] std::io::Error),
}

fn parse_args() -> Result<Config, MenuError> {
    let mut c = Config {
        mountpoint: PathBuf::from("/run/circular/lbcas"),
        cache_dir: PathBuf::from("/cache"),
        accel: "tcg".into(),
        display: "none".into(),
        appliance: false,
        shell_allowed: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| MenuError::Usage(format!("{a} needs a value")));
        match a.as_str() {
            "--mountpoint" => c.mountpoint = PathBuf::from(val()?),
            "--cache" => c.cache_dir = PathBuf::from(val()?),
            "--accel" => c.accel = val()?,
            "--display" => c.display = val()?,
            "--appliance" => c.appliance = true,
            "--shell-allowed" => c.shell_allowed = true,
            other => return Err(MenuError::Usage(format!("unknown argument {other}"))),
        }
    }
    Ok(c)
}

fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("circular-menu: {e}");
            return ExitCode::from(2);
        }
    };
    match run_menu(&cfg) {
        Ok(MenuExit::Quit) => ExitCode::SUCCESS,
        Ok(MenuExit::PowerOff) => ExitCode::from(10),
        Ok(MenuExit::Reboot) => ExitCode::from(11),
        Ok(MenuExit::Shell) => ExitCode::from(12),
        Err(e) => {
            eprintln!("circular-menu: {e}");
            ExitCode::from(1)
        }
    }
}

/// Records what the menu did in the kernel log (and so in /cache/log via
/// dmesg, and on a serial console at loglevel 7).
fn note(msg: &str) {
    if let Ok(mut k) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = k.write_all(format!("<6>circular-menu: {msg}\n").as_bytes());
    }
}

/// The one call to replace with `menu::run(menu::MenuConfig { .. })`.
fn run_menu(cfg: &Config) -> Result<MenuExit, MenuError> {
    placeholder(cfg)
}

/// Snapshots on the mount: (label, path), `latest` entries first per distribution.
fn snapshots(mount: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(mount) else { return out };
    let mut distros: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    distros.sort();
    for d in distros {
        let name = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        let mut imgs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "img")).collect();
        imgs.sort();
        imgs.reverse();
        imgs.sort_by_key(|p| !p.ends_with("latest.img"));
        for i in imgs {
            let stem = i.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            out.push((format!("{name} {stem}"), i));
        }
    }
    out
}

fn placeholder(cfg: &Config) -> Result<MenuExit, MenuError> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    loop {
        let snaps = snapshots(&cfg.mountpoint);
        writeln!(out, "\r\n==== Circular boot menu (accel {}) ====\r", cfg.accel)?;
        if snaps.is_empty() {
            writeln!(out, "  (no snapshots: no network and nothing cached, or the store is not mounted)\r")?;
        }
        for (i, (label, _)) in snaps.iter().enumerate() {
            writeln!(out, "  {}) {label}\r", i + 1)?;
        }
        writeln!(out, "  p) power off   r) reboot{}\r", if cfg.shell_allowed { "   s) rescue shell" } else { "" })?;
        write!(out, "choice> ")?;
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(MenuExit::Quit);
        }
        match line.trim() {
            "p" => return Ok(MenuExit::PowerOff),
            "r" => return Ok(MenuExit::Reboot),
            "s" if cfg.shell_allowed => return Ok(MenuExit::Shell),
            "" => continue,
            n => match n.parse::<usize>().ok().and_then(|i| snaps.get(i.wrapping_sub(1))) {
                Some((label, img)) => {
                    writeln!(out, "booting {label} ...\r")?;
                    note(&format!("booting {label} ({})", img.display()));
                    match boot(cfg, label, img) {
                        Ok(status) => {
                            note(&format!("guest finished ({status})"));
                            writeln!(out, "\r\nguest finished ({status})\r")?
                        }
                        Err(e) => {
                            note(&format!("cannot start the guest: {e}"));
                            writeln!(out, "\r\ncannot start the guest: {e}\r")?
                        }
                    }
                }
                None => writeln!(out, "no such entry: {n}\r")?,
            },
        }
    }
}

fn boot(cfg: &Config, label: &str, img: &Path) -> std::io::Result<std::process::ExitStatus> {
    let overlays = cfg.cache_dir.join("overlays");
    std::fs::create_dir_all(&overlays)?;
    let overlay = overlays.join(format!("{}.qcow2", label.replace(' ', "_")));
    let _ = std::fs::remove_file(&overlay);
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(img)
        .arg(&overlay)
        .status()?;
    if !st.success() {
        return Err(std::io::Error::other(format!("qemu-img create failed ({st})")));
    }
    let mut q = Command::new("qemu-system-x86_64");
    q.args(["-accel", &cfg.accel, "-m", "256", "-smp", "1", "-nodefaults", "-no-user-config"])
        .arg("-drive")
        .arg(format!("file={},format=qcow2,if=virtio", overlay.display()))
        .args(["-nic", "user,model=virtio-net-pci"]);
    match cfg.display.as_str() {
        "none" => q.args(["-display", "none", "-serial", "stdio", "-vga", "none"]),
        "curses" => q.args(["-display", "curses", "-vga", "std", "-serial", "none"]),
        "sdl" => q.args(["-display", "sdl", "-full-screen", "-vga", "std", "-monitor", "none", "-parallel", "none"]),
        _ => q.args(["-display", "none"]),
    };
    q.status()
}
