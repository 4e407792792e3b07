//! What `circular-init` (PID 1) and `circular-menu` agree on: paths, exit codes and the one
//! test for "the store is mounted". Both binaries use this module, so neither can drift.

use std::path::Path;

/// Where PID 1 mounts the store with blockfs.
pub const MOUNTPOINT: &str = "/run/circular/lbcas";

/// Why blockfs could not mount, for the menu's problem screen (which names the cause:
/// catalog refused, no network…): JSON `{"kind": …, "message": …}` with blockfs's stable
/// error kind. blockfs writes it (`blockfs mount --error-file`); PID 1 writes one in the same
/// form only when blockfs died without writing it, and removes it once the store is mounted;
/// `circular-menu` reads it and chooses the screen by the kind.
pub const BLOCKFS_ERROR: &str = "/run/circular/blockfs.error";

/// Where PID 1 has wpa_supplicant put its control sockets (`ctrl_interface=`), one per
/// wireless link, named after it; the menu's network screen talks to them
/// (`menu::wifi::CTRL_DIR` is the same path, checked by a test).
pub const WPA_CTRL_DIR: &str = "/run/wpa_supplicant";

/// The network screen's saved settings, under the cache directory: kernel-command-line
/// words (`circular.proxy=… circular.ip=…`) that PID 1 applies at boot where the real
/// command line does not set them (`menu::network::SAVED_SETTINGS`, checked by a test).
pub const SAVED_NETWORK_SETTINGS: &str = "network/settings";

/// `circular-menu`'s exit status: what PID 1 does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuExit {
    /// 0: show the menu again.
    Again,
    /// 10: power the PC off.
    PowerOff,
    /// 11: reboot.
    Reboot,
    /// 13: "try again" on a problem screen: start blockfs again now.
    RetryStore,
}

impl MenuExit {
    /// The process exit status that carries this decision.
    pub const fn code(self) -> u8 {
        match self {
            MenuExit::Again => 0,
            MenuExit::PowerOff => 10,
            MenuExit::Reboot => 11,
            MenuExit::RetryStore => 13,
        }
    }

    /// The decision an exit status carries; `None` for any other status (a crash: PID 1
    /// shows the menu again).
    pub fn from_code(code: i32) -> Option<MenuExit> {
        [MenuExit::Again, MenuExit::PowerOff, MenuExit::Reboot, MenuExit::RetryStore]
            .into_iter()
            .find(|e| i32::from(e.code()) == code)
    }
}

/// True when a FUSE filesystem is mounted on `mountpoint` (from `/proc/self/mounts`).
pub fn mounted(mountpoint: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounted_in(&mounts, mountpoint)
}

/// [`mounted`] on the text of a mounts table.
pub fn mounted_in(mounts: &str, mountpoint: &Path) -> bool {
    let want = mountpoint.to_string_lossy();
    mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let _device = f.next();
        f.next() == Some(want.as_ref()) && f.next().is_some_and(|t| t.starts_with("fuse"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_round_trip_and_others_mean_a_crash() {
        for e in [MenuExit::Again, MenuExit::PowerOff, MenuExit::Reboot, MenuExit::RetryStore] {
            assert_eq!(MenuExit::from_code(i32::from(e.code())), Some(e));
        }
        assert_eq!(MenuExit::PowerOff.code(), 10);
        assert_eq!(MenuExit::from_code(101), None);
    }

    #[test]
    fn the_menu_looks_for_wpa_supplicant_where_init_starts_it() {
        assert_eq!(WPA_CTRL_DIR, menu::wifi::CTRL_DIR);
        assert_eq!(SAVED_NETWORK_SETTINGS, menu::network::SAVED_SETTINGS);
    }

    #[test]
    fn only_a_fuse_mount_on_that_exact_path_counts() {
        let p = Path::new(MOUNTPOINT);
        assert!(mounted_in("blockfs /run/circular/lbcas fuse.blockfs ro 0 0\n", p));
        assert!(!mounted_in("tmpfs /run/circular/lbcas tmpfs rw 0 0\n", p));
        assert!(!mounted_in("blockfs /run/circular/lbcas2 fuse.blockfs ro 0 0\n", p));
        assert!(!mounted_in("", p));
    }
}
