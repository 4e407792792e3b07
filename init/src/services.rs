//! The two long-running children: blockfs (the FUSE mount of the store) and
//! the menu (a separate process, so a crash in it cannot take PID 1 down).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use nix::unistd::Pid;

use crate::procs;

pub use crate::protocol::{BLOCKFS_ERROR, MOUNTPOINT};
pub const PUBLIC_KEY: &str = "/etc/circular/public.key";
pub const BLOCKFS: &str = "/usr/bin/blockfs";
pub const MENU: &str = "/usr/bin/circular-menu";

/// The message a failed `blockfs mount` printed last ("blockfs: …" on
/// stderr), without the prefix: the fallback when blockfs stopped without
/// writing its error file (killed, or out of memory).
pub fn last_message(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.strip_prefix("blockfs: ").unwrap_or(l).to_string())
}

/// The error file's JSON, `{"kind": …, "message": …}`, as blockfs writes it
/// (PID 1 does not link blockfs, so it writes these two strings itself).
pub fn error_json(kind: &str, message: &str) -> String {
    format!("{{\"kind\":{},\"message\":{}}}\n", json_string(kind), json_string(message))
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Records a failure of PID 1's own around blockfs for the menu (no store
/// configured, blockfs missing or killed), in blockfs's error-file format.
/// `kind` is one of blockfs's kinds (`usage`, `other`, …).
pub fn set_blockfs_error(kind: &str, message: &str) {
    let _ = std::fs::create_dir_all("/run/circular");
    let tmp = format!("{BLOCKFS_ERROR}.tmp");
    let written = std::fs::write(&tmp, error_json(kind, message)).and_then(|()| std::fs::rename(&tmp, BLOCKFS_ERROR));
    if let Err(e) = written {
        crate::warn!("{BLOCKFS_ERROR}: {e}");
    }
}

/// Removes the error file: the store is mounted.
pub fn clear_blockfs_error() {
    let _ = std::fs::remove_file(BLOCKFS_ERROR);
}

/// True when blockfs wrote its error file (JSON) at or after `since`: the
/// report of the run that just failed, not one left from an earlier run.
pub fn blockfs_reported_since(since: SystemTime) -> bool {
    let Ok(meta) = std::fs::metadata(BLOCKFS_ERROR) else {
        return false;
    };
    let fresh = meta.modified().is_ok_and(|m| m >= since);
    fresh && std::fs::read_to_string(BLOCKFS_ERROR).is_ok_and(|t| t.trim_start().starts_with('{'))
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} is missing from the initramfs")]
    Missing(String),
    #[error("starting {0}: {1}")]
    Spawn(String, #[source] std::io::Error),
}

/// Appends to `dir/name` (created), or discards when it cannot be opened.
pub(crate) fn log_file(dir: &Path, name: &str) -> Stdio {
    let _ = std::fs::create_dir_all(dir);
    match OpenOptions::new().create(true).append(true).open(dir.join(name)) {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    }
}

/// Starts `blockfs mount` in the foreground as a child. Its output goes to
/// `logdir/blockfs.log`; when it cannot mount, it writes why to
/// [`BLOCKFS_ERROR`] (`--error-file`).
pub fn start_blockfs(
    servers: &[String],
    offline: bool,
    cache_dir: &Path,
    cache_max: Option<u64>,
    ca: Option<&Path>,
    proxy: Option<&str>,
    logdir: &Path,
) -> Result<Pid, ServiceError> {
    if !Path::new(BLOCKFS).exists() {
        return Err(ServiceError::Missing(BLOCKFS.into()));
    }
    let _ = std::fs::create_dir_all(MOUNTPOINT);
    let blocks = cache_dir.join("blocks");
    let _ = std::fs::create_dir_all(&blocks);
    let mut c = procs::command(BLOCKFS);
    c.args(blockfs_args(servers, offline, &blocks, cache_max, ca, proxy));
    c.stdin(Stdio::null()).stdout(log_file(logdir, "blockfs.log")).stderr(log_file(logdir, "blockfs.log"));
    crate::info!("starting {c:?}");
    let child = c.spawn().map_err(|e| ServiceError::Spawn(BLOCKFS.into(), e))?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// The arguments of `blockfs` (after the program name) for the cache's
/// `blocks` directory. `offline` (circular.offline, or no DHCP lease on any
/// port) mounts the cache alone: `--offline` and no store URL, so blockfs
/// never waits on a network that is not there.
pub fn blockfs_args(
    servers: &[String],
    offline: bool,
    blocks: &Path,
    cache_max: Option<u64>,
    ca: Option<&Path>,
    proxy: Option<&str>,
) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec!["mount".into(), "--cache".into(), blocks.into()];
    if let Some(m) = cache_max {
        a.extend(["--cache-max".into(), m.to_string().into()]);
    }
    a.extend(["--public".into(), PUBLIC_KEY.into()]);
    // Why a mount fails, with its stable kind, for the menu's problem screen.
    a.extend(["--error-file".into(), BLOCKFS_ERROR.into()]);
    if let Some(ca) = ca {
        a.extend(["--ca".into(), ca.into()]);
    }
    if let Some(proxy) = proxy {
        a.extend(["--proxy".into(), proxy.into()]);
    }
    if offline {
        a.push("--offline".into());
    } else {
        a.push(servers.join(",").into());
    }
    a.push(MOUNTPOINT.into());
    a
}

/// True once a FUSE filesystem is mounted at `MOUNTPOINT`.
pub fn mounted() -> bool {
    crate::protocol::mounted(std::path::Path::new(MOUNTPOINT))
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
    /// `circular.accel=`; without it the menu checks KVM itself and asks
    /// before falling back to TCG.
    pub accel: Option<String>,
    pub display: String,
    pub console: PathBuf,
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
    if let Some(accel) = &m.accel {
        c.arg("--accel").arg(accel);
    }
    c.arg("--display").arg(&m.display);
    c.env_clear()
        .env("PATH", "/usr/bin:/usr/sbin")
        .env("HOME", "/root")
        .env("TERM", crate::console::term_for(&m.console))
        .env("LANG", "C.UTF-8")
        .env("TMPDIR", m.cache_dir.join("tmp"));
    if m.display == "sdl" {
        // Full screen on the DRM device: there is no X or Wayland here.
        c.env("SDL_VIDEODRIVER", "kmsdrm");
    }
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
    let tty: File = OpenOptions::new()
        .read(true)
        .write(true)
        .open(console)
        .map_err(|e| ServiceError::Spawn(console.display().to_string(), e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_lease_mounts_the_cache_offline_and_names_no_server() {
        let servers = vec!["http://a.example/c/".to_string(), "http://b.example/c/".to_string()];
        let blocks = Path::new("/cache/blocks");
        let text = |a: Vec<std::ffi::OsString>| a.iter().map(|s| s.to_string_lossy().into_owned()).collect::<Vec<_>>();
        // No DHCP answer (or circular.offline): the cache alone, never a URL to wait on.
        let offline = text(blockfs_args(&servers, true, blocks, Some(7 << 30), None, None));
        assert!(offline.contains(&"--offline".to_string()), "{offline:?}");
        assert!(!offline.iter().any(|a| a.contains("example")), "{offline:?}");
        assert_eq!(offline.last().map(String::as_str), Some(MOUNTPOINT));
        assert_eq!(offline[..3], ["mount", "--cache", "/cache/blocks"]);
        // With a lease: every server in order, one argument, and no --offline.
        let online = text(blockfs_args(
            &servers,
            false,
            blocks,
            None,
            Some(Path::new("/cache/ca.pem")),
            Some("http://proxy:3128"),
        ));
        assert!(!online.contains(&"--offline".to_string()), "{online:?}");
        assert!(online.contains(&"http://a.example/c/,http://b.example/c/".to_string()), "{online:?}");
        assert!(online.windows(2).any(|w| w == ["--ca", "/cache/ca.pem"]), "{online:?}");
        assert!(online.windows(2).any(|w| w == ["--proxy", "http://proxy:3128"]), "{online:?}");
        assert!(online.windows(2).any(|w| w == ["--error-file", BLOCKFS_ERROR]), "{online:?}");
    }

    #[test]
    fn last_message_is_blockfs_error_line() {
        let log = "blockfs: info: fetching catalog.json\nblockfs: the catalog's signature does not match any trusted public key; x\n\n";
        assert_eq!(
            last_message(log).as_deref(),
            Some("the catalog's signature does not match any trusted public key; x")
        );
        assert_eq!(last_message("\n"), None);
    }

    #[test]
    fn fallback_error_json_is_what_blockfs_writes() {
        let json = error_json("other", "blockfs stopped (killed by \"SIGKILL\")\\\n\u{1}");
        assert_eq!(
            json,
            "{\"kind\":\"other\",\"message\":\"blockfs stopped (killed by \\\"SIGKILL\\\")\\\\\\n\\u0001\"}\n"
        );
    }
}
