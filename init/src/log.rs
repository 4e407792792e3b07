//! Logging for PID 1: every line goes to /dev/kmsg (so `dmesg` and a serial
//! console show it) and, once the cache partition is mounted, to a file on
//! it, so a failed boot can be read afterwards on another machine. Lines
//! meant for the person at the screen also go to the console, except while
//! the menu owns it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    Error,
    Warn,
    /// Progress the person at the screen wants to see.
    Say,
    Info,
}

struct Sink {
    kmsg: Option<File>,
    file: Option<File>,
    /// Lines logged before the file existed, written to it when it appears.
    pending: Vec<String>,
    console_muted: bool,
}

static SINK: Mutex<Sink> = Mutex::new(Sink { kmsg: None, file: None, pending: Vec::new(), console_muted: false });

fn with<R>(f: impl FnOnce(&mut Sink) -> R) -> R {
    // A poisoned lock only means another thread panicked mid-log: keep logging.
    let mut g = SINK.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g)
}

/// Opens /dev/kmsg (after /dev is mounted).
pub fn open_kmsg() {
    // The kernel rate-limits /dev/kmsg writers to 10 lines per 5 s by
    // default and drops the rest; PID 1's log must be complete.
    let _ = std::fs::write("/proc/sys/kernel/printk_devkmsg", "on\n");
    let f = OpenOptions::new().write(true).open("/dev/kmsg").ok();
    with(|s| s.kmsg = f);
}

/// Starts appending to `path`, first writing what was logged so far.
pub fn open_file(path: &Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(mut f) => with(|s| {
            for l in s.pending.drain(..) {
                let _ = f.write_all(l.as_bytes());
            }
            s.file = Some(f);
        }),
        Err(e) => log(Level::Warn, &format!("cannot write the log file {}: {e}", path.display())),
    }
}

/// Stops writing to the log file (before the cache is unmounted).
pub fn close_file() {
    with(|s| {
        if let Some(f) = s.file.take() {
            let _ = f.sync_all();
        }
    });
}

/// Keeps log lines off the console while a full-screen program owns it.
pub fn mute_console(muted: bool) {
    with(|s| s.console_muted = muted);
}

pub fn log(level: Level, msg: &str) {
    let (prio, tag) = match level {
        Level::Error => (3, "ERROR: "),
        Level::Warn => (4, "WARNING: "),
        Level::Say => (5, ""),
        Level::Info => (6, ""),
    };
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next().map(String::from))
        .unwrap_or_default();
    with(|s| {
        for line in msg.lines() {
            if let Some(k) = s.kmsg.as_mut() {
                let _ = k.write_all(format!("<{prio}>circular: {tag}{line}\n").as_bytes());
            }
            let stamped = format!("[{uptime:>9}] {tag}{line}\n");
            match s.file.as_mut() {
                Some(f) => {
                    let _ = f.write_all(stamped.as_bytes());
                }
                None if s.pending.len() < 10_000 => s.pending.push(stamped),
                None => {}
            }
            if level != Level::Info && !s.console_muted {
                let _ = std::io::stdout().write_all(format!("circular: {tag}{line}\n").as_bytes());
                let _ = std::io::stdout().flush();
            }
        }
    });
}

#[macro_export]
macro_rules! info { ($($a:tt)*) => { $crate::log::log($crate::log::Level::Info, &format!($($a)*)) } }
#[macro_export]
macro_rules! say { ($($a:tt)*) => { $crate::log::log($crate::log::Level::Say, &format!($($a)*)) } }
#[macro_export]
macro_rules! warn { ($($a:tt)*) => { $crate::log::log($crate::log::Level::Warn, &format!($($a)*)) } }
#[macro_export]
macro_rules! error { ($($a:tt)*) => { $crate::log::log($crate::log::Level::Error, &format!($($a)*)) } }
