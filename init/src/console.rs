//! Which terminal the menu runs on, and handing it over as a controlling tty.

use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// The firmware's or a KMS driver's framebuffer, which the presenter draws on.
pub const FRAMEBUFFER: &str = "/dev/fb0";

/// The device behind /dev/console: the last entry of
/// /sys/class/tty/console/active (the last `console=` on the command line),
/// with tty0 ("the current VT") resolved to the real VT.
pub fn primary() -> PathBuf {
    let active = std::fs::read_to_string("/sys/class/tty/console/active").unwrap_or_default();
    let name = resolve(&active, &std::fs::read_to_string("/sys/class/tty/tty0/active").unwrap_or_default());
    PathBuf::from("/dev").join(name)
}

pub fn resolve(active: &str, tty0_active: &str) -> String {
    match active.split_whitespace().last() {
        Some("tty0") | None => {
            let vt = tty0_active.trim();
            if vt.is_empty() {
                "tty1".into()
            } else {
                vt.into()
            }
        }
        Some(n) => n.into(),
    }
}

/// TERM for a console device: the Linux VT, or a serial terminal.
pub fn term_for(dev: &std::path::Path) -> &'static str {
    let n = dev.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if n.starts_with("ttyS") || n.starts_with("ttyUSB") || n.starts_with("hvc") {
        "vt220"
    } else {
        "linux"
    }
}

/// What the framebuffer is, from sysfs, for the log: `"EFI VGA, 1280,800 at 32 bpp"`
/// (efifb; a KMS driver's fbdev emulation is named like `bochs-drmdrmfb`). `None`: no
/// framebuffer.
pub fn framebuffer_description() -> Option<String> {
    let sys = std::path::Path::new("/sys/class/graphics/fb0");
    let read = |name: &str| std::fs::read_to_string(sys.join(name)).ok().map(|v| v.trim().to_string());
    let name = read("name")?;
    let size = read("virtual_size").unwrap_or_else(|| "?".into());
    let bpp = read("bits_per_pixel").unwrap_or_else(|| "?".into());
    Some(format!("{name}, {size} at {bpp} bpp"))
}

pub fn is_serial(dev: &std::path::Path) -> bool {
    term_for(dev) == "vt220"
}

/// For use between fork and exec (in `pre_exec`): new session, the console as
/// stdin/stdout/stderr and controlling terminal. Only async-signal-safe calls.
pub fn attach_in_child(fd: &std::fs::File) -> std::io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: setsid, ioctl, dup2 are async-signal-safe and touch only this
    // (child) process's own descriptors and session.
    unsafe {
        if libc::setsid() < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::ioctl(raw, libc::TIOCSCTTY, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        for target in 0..3 {
            if libc::dup2(raw, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_console() {
        assert_eq!(resolve("tty0 ttyS0\n", "tty1"), "ttyS0");
        assert_eq!(resolve("ttyS0 tty0\n", "tty2\n"), "tty2");
        assert_eq!(resolve("", ""), "tty1");
    }
}
