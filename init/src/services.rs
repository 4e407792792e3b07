//! The two long-running children: blockfs (the FUSE mount of the store) and
//! the menu (a separate process, so a crash in it cannot take PID 1 down).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::procs;

pub const MOUNTPOINT: &str = "/run/circular/lbcas";
pub const PUBLIC_KEY: &str = "/etc/circular/public.key";
pub const BLOCKFS: &str = "/usr/bin/blockfs";
pub const MENU: &str = "/usr/bin/circular-menu";

/// Exit codes of `circular-menu` (see src/bin/circular-menu.rs).
pub const MENU_POWEROFF: i32 = 10;
pub const MENU_REBOOT: i32 = 11;
pub const MENU_SHELL: i32 = 12;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} is missing from the initramfs")]
    Missing(String),
    #[error("starting {0}: {1}")]
    Spawn(String, #[source] std::io::Error),
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    let _ = std::fs::create_dir_all(dir);
    match OpenOptions::new().create(true).append(true).open(dir.join(name)) {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    }
}

/// Starts `blockfs mount` in the foreground as a child. Its output goes to
/// `logdir/blockfs.log`.
pub fn start_blockfs(servers: &[String], offline: bool, cache_dir: &Path, cache_max: Option<u64>, logdir: &Path) -> Result<Pid, ServiceError> {
    if !Path::new(BLOCKFS).exists() {
        return Err(ServiceError::Missing(BLOCKFS.into()));
    }
    let _ = std::fs::create_dir_all(MOUNTPOINT);
    let blocks = cache_dir.join("blocks");
    let _ = std::fs::create_dir_all(&blocks);
    let mut c = procs::command(BLOCKFS);
    c.arg("mount").arg("--cache").arg(&blocks);
    if let Some(m) = cache_max {
        c.arg("--cache-max").arg(m.to_string());
    }
    c.arg("--public").arg(PUBLIC_KEY);
    if offline {
        c.arg("--offline");
    } else {
        c.arg(servers.join(","));
    }
    c.arg(MOUNTPOINT);
    c.stdin(Stdio::null()).stdout(log_file(logdir, "blockfs.log")).stderr(log_file(logdir, "blockfs.log"));
    crate::info!("starting {c:?}");
    let child = c.spawn().map_err(|e| ServiceError::Spawn(BLOCKFS.into(), e))?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// True once a FUSE filesystem is mounted at `MOUNTPOINT`.
pub fn mounted() -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(MOUNTPOINT) && l.contains("fuse"))
}

/// Waits for the mount; stops early if blockfs exits (reported in `exited`).
pub fn wait_mounted(pid: Pid, limit: Duration) -> Result<(), procs::Exit> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if mounted() {
            return Ok(());
        }
        for (p, e) in procs::reap() {
            if p == pid {
                return Err(e);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// What the menu needs to know; passed as arguments to `circular-menu`.
#[derive(Debug, Clone)]
pub struct MenuArgs {
    pub program: String,
    pub cache_dir: PathBuf,
    pub accel: String,
    pub display: String,
    pub console: PathBuf,
    pub shell_allowed: bool,
}

/// Runs the menu on the console as its own session leader.
pub fn start_menu(m: &MenuArgs) -> Result<Pid, ServiceError> {
    if !Path::new(&m.program).exists() {
        return Err(ServiceError::Missing(m.program.clone()));
    }
    let tty: File = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&m.console)
        .map_err(|e| ServiceError::Spawn(m.console.display().to_string(), e))?;
    let mut c = procs::command(&m.program);
    c.arg("--mountpoint").arg(MOUNTPOINT).arg("--cache").arg(&m.cache_dir);
    c.arg("--accel").arg(&m.accel).arg("--display").arg(&m.display).arg("--appliance");
    if m.shell_allowed {
        c.arg("--shell-allowed");
    }
    c.env_clear()
        .env("PATH", "/usr/bin:/usr/sbin")
        .env("HOME", "/root")
        .env("TERM", crate::console::term_for(&m.console))
        .env("LANG", "C.UTF-8")
        .env("TMPDIR", m.cache_dir.join("tmp"));
    let _ = std::fs::create_dir_all(m.cache_dir.join("tmp"));
    use std::os::unix::process::CommandExt;
    // SAFETY: attach_in_child only makes async-signal-safe calls on the
    // child's own descriptors.
    unsafe {
        let tty2 = tty.try_clone().map_err(|e| ServiceError::Spawn("tty".into(), e))?;
        c.pre_exec(move || crate::console::attach_in_child(&tty2));
    }
    let child = c.spawn().map_err(|e| ServiceError::Spawn(m.program.clone(), e))?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// A rescue shell on the console (only with `circular.shell`).
pub fn start_shell(console: &Path) -> Result<Pid, ServiceError> {
    let tty: File = OpenOptions::new().read(true).write(true).open(console).map_err(|e| ServiceError::Spawn(console.display().to_string(), e))?;
    let mut c = procs::command("/bin/sh");
    c.env("PATH", "/usr/bin:/usr/sbin").env("TERM", crate::console::term_for(console)).env("PS1", "circular-rescue# ");
    use std::os::unix::process::CommandExt;
    // SAFETY: as in start_menu.
    unsafe {
        c.pre_exec(move || crate::console::attach_in_child(&tty));
    }
    let child = c.spawn().map_err(|e| ServiceError::Spawn("/bin/sh".into(), e))?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// KVM when the CPU has VT-x/AMD-V and /dev/kvm opens; TCG otherwise, with a
/// warning the menu repeats before starting a guest.
pub fn choose_accel(forced: Option<&str>) -> String {
    if let Some(a) = forced {
        return a.to_string();
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let virt = cpu.lines().filter(|l| l.starts_with("flags")).any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let dev = OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    if virt && dev {
        "kvm".into()
    } else {
        crate::warn!(
            "no hardware virtualization ({}): guests run emulated (TCG) and are very slow. Enable VT-x/AMD-V in the firmware setup.",
            if virt { "/dev/kvm did not open" } else { "the CPU has no vmx/svm flag" }
        );
        "tcg".into()
    }
}
