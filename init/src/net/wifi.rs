//! Wi-Fi links: PID 1 runs Debian's `wpa_supplicant` on each wireless link, with its
//! control socket in [`WPA_CTRL_DIR`] (the menu's network screen scans and joins through
//! it) and its configuration file on the cache partition. wpa_supplicant itself keeps the
//! known networks there (`update_config=1`, the menu's `SAVE_CONFIG`), so a later boot
//! joins them by itself. The file holds passphrases: only root can read it (0600, in a
//! 0700 directory).
//!
//! Once wpa_supplicant has joined a network (the 4-way handshake done, operstate "up"),
//! the link counts as linked for [`super::bring_up`] and [`super::watch`], which run the
//! same DHCP (or `circular.ip=`) and the same late-network path as for a cable.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::unistd::Pid;

pub use crate::protocol::WPA_CTRL_DIR;

/// The program, in the initramfs.
pub const WPA_SUPPLICANT: &str = "/usr/sbin/wpa_supplicant";

/// Crypto modules WPA2/WPA3 need that the kernel would ask a module helper for
/// (`crypto-ccm(aes)`…); the appliance has none, so PID 1 loads them with the wireless
/// drivers (measured: an access point on mac80211_hwsim failed without them).
pub const CRYPTO_MODULES: &[&str] = &["ctr", "ccm", "cmac", "gcm", "ghash_generic"];

/// Wireless links (those with a `phy80211` or `wireless` entry in sysfs), sorted.
pub fn wireless_links() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/class/net") else { return out };
    for e in rd.flatten() {
        if is_wireless(&e.file_name().to_string_lossy()) {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

/// True for a wireless link.
pub fn is_wireless(name: &str) -> bool {
    let dir = Path::new("/sys/class/net").join(name);
    dir.join("phy80211").exists() || dir.join("wireless").exists()
}

/// A wireless link is linked once wpa_supplicant has joined a network: the kernel says
/// "up" after the handshake ("dormant" before, when the carrier is already on).
pub fn joined(name: &str) -> bool {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("operstate")).is_ok_and(|s| s.trim() == "up")
}

/// The known-networks file on the cache partition.
pub fn config_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join("wifi").join("wpa_supplicant.conf")
}

/// How long [`super::bring_up`] waits for a known Wi-Fi network to be joined (scan,
/// association, handshake; a few seconds on a PC, more under emulation) before the boot
/// goes on offline; it is joined later anyway, through the late-network path.
pub const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// True when the known-networks file names at least one network: worth waiting
/// [`JOIN_WAIT`] for at boot.
pub fn knows_networks(cache_dir: &Path) -> bool {
    std::fs::read_to_string(config_path(cache_dir)).is_ok_and(|t| t.lines().any(|l| l.trim() == "network={"))
}

/// The first lines of a new known-networks file.
pub fn config_header() -> String {
    format!(
        "# Wi-Fi networks this stick knows (written by wpa_supplicant for circular's network screen)\n\
         ctrl_interface={WPA_CTRL_DIR}\nupdate_config=1\n"
    )
}

/// Makes sure the known-networks file exists, readable by root only (an older or
/// hand-made one is made so too). Returns its path.
pub fn prepare_config(cache_dir: &Path) -> std::io::Result<PathBuf> {
    let path = config_path(cache_dir);
    let dir = path.parent().unwrap_or(cache_dir);
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if !path.exists() {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        f.write_all(config_header().as_bytes())?;
        f.sync_all()?;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

/// The arguments of `wpa_supplicant` for one link.
pub fn args(link: &str, config: &Path) -> Vec<String> {
    // nl80211 is every current driver's interface; wext is the fallback for old ones.
    ["-i", link, "-D", "nl80211,wext", "-c"]
        .iter()
        .map(|s| s.to_string())
        .chain([config.display().to_string()])
        .collect()
}

/// Starts wpa_supplicant on every wireless link, logging to `logdir/wpa_supplicant.log`.
/// Returns the links and their processes; a link it could not start on is reported and
/// left out (the appliance works without Wi-Fi).
pub fn start(cache_dir: &Path, logdir: &Path) -> Vec<(String, Pid)> {
    let links = wireless_links();
    if links.is_empty() {
        return Vec::new();
    }
    if !Path::new(WPA_SUPPLICANT).exists() {
        crate::warn!("Wi-Fi ({}): {WPA_SUPPLICANT} is missing from the initramfs", links.join(", "));
        return Vec::new();
    }
    let config = match prepare_config(cache_dir) {
        Ok(p) => p,
        Err(e) => {
            crate::warn!("Wi-Fi: the known-networks file {}: {e}", config_path(cache_dir).display());
            return Vec::new();
        }
    };
    let _ = std::fs::create_dir_all(WPA_CTRL_DIR);
    let mut out = Vec::new();
    for link in links {
        let mut c = crate::procs::command(WPA_SUPPLICANT);
        c.args(args(&link, &config));
        let log = "wpa_supplicant.log";
        c.stdin(Stdio::null())
            .stdout(crate::services::log_file(logdir, log))
            .stderr(crate::services::log_file(logdir, log));
        match c.spawn() {
            Ok(child) => {
                crate::say!("Wi-Fi: {link} ready (known networks in {})", config.display());
                out.push((link, Pid::from_raw(child.id() as i32)));
            }
            Err(e) => crate::warn!("Wi-Fi: starting wpa_supplicant on {link}: {e}"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_known_networks_file_is_root_only_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = prepare_config(dir.path()).unwrap();
        assert_eq!(p, dir.path().join("wifi/wpa_supplicant.conf"));
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(p.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
        assert!(!knows_networks(dir.path()));
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("ctrl_interface=/run/wpa_supplicant\nupdate_config=1\n"), "{text}");
        // What wpa_supplicant saved is kept on the next boot, and a file made readable by
        // others (copied by hand) is made root-only again.
        std::fs::write(&p, "update_config=1\nnetwork={\n\tssid=\"home\"\n\tpsk=\"secret12\"\n}\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(knows_networks(dir.path()));
        prepare_config(dir.path()).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("psk=\"secret12\""));
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn wpa_supplicant_gets_the_link_and_the_file() {
        assert_eq!(
            args("wlan0", Path::new("/cache/wifi/wpa_supplicant.conf")),
            ["-i", "wlan0", "-D", "nl80211,wext", "-c", "/cache/wifi/wpa_supplicant.conf"]
        );
    }
}
