//! Short human-readable figures for an 80-column screen.

/// Bytes as `512 B`, `12 MiB`, `1.2 GiB` (binary units: disk images are sized
/// so): the workspace's one size formatter, so the menu and `image-build list`
/// print a snapshot's size alike.
pub use blockfs::format::units::format_size as bytes;

/// A fraction as a whole percentage; never shows 100% before it is exactly 1,
/// so "100%" always means "every block is here".
pub fn percent(fraction: f64) -> String {
    let fraction = fraction.clamp(0.0, 1.0);
    let p = (fraction * 100.0).floor();
    if fraction < 1.0 && p >= 100.0 {
        "99%".to_string()
    } else {
        format!("{p:.0}%")
    }
}

/// A duration as `42 s`, `3 min 5 s`, `1 h 2 min`.
pub fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// How a VM ended, in one line for the menu's notice: "powered off after 3 min 5 s",
/// "QEMU could not start (exit status 1)", "QEMU stopped after 42 s (killed by signal 9)".
pub fn vm_outcome(o: &circular_vm::VmOutcome) -> String {
    if o.powered_off {
        format!("powered off after {}", duration(o.ran_for))
    } else if o.could_not_start {
        format!("QEMU could not start ({})", o.status)
    } else {
        format!("QEMU stopped after {} ({})", duration(o.ran_for), o.status)
    }
}

/// Cuts `text` to at most `width` characters, ending with `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(200 << 20), "200 MiB");
        assert_eq!(bytes(2 << 30), "2.0 GiB");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.456), "45%");
        assert_eq!(percent(0.9999), "99%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(duration(std::time::Duration::from_secs(185)), "3 min 5 s");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn vm_outcomes() {
        let mut o = circular_vm::VmOutcome {
            powered_off: true,
            could_not_start: false,
            status: "exit status 0".to_string(),
            ran_for: std::time::Duration::from_secs(185),
            stderr: String::new(),
        };
        assert_eq!(vm_outcome(&o), "powered off after 3 min 5 s");
        o.powered_off = false;
        o.status = "killed by signal 9".to_string();
        assert_eq!(vm_outcome(&o), "QEMU stopped after 3 min 5 s (killed by signal 9)");
        o.could_not_start = true;
        o.status = "exit status 1".to_string();
        assert_eq!(vm_outcome(&o), "QEMU could not start (exit status 1)");
    }
}
