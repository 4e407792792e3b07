#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The network screen's Wi-Fi client against a real `wpa_supplicant` (Debian's): a network
//! joined is saved to the configuration file wpa_supplicant reads on the next boot, with
//! the passphrase, and joining it again replaces it instead of adding a second copy.
//!
//! No radio is needed for what this checks: wpa_supplicant runs with its `wired` driver on
//! a veth link inside a network namespace of the test's own, so its control socket and
//! configuration handling are the real ones. (Scanning and the join itself over a radio
//! are the appliance e2e's part, with mac80211_hwsim and hostapd.)

use std::path::Path;
use std::process::{Child, Command, Stdio};

use menu::wifi::{Security, Wifi};

struct Supplicant {
    child: Child,
    ns: String,
}

impl Drop for Supplicant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {args:?} failed");
}

/// wpa_supplicant on a veth in a fresh namespace, control sockets in `dir/ctrl`.
fn start(dir: &Path, conf: &Path) -> Option<Supplicant> {
    if !testkit::need(&["wpa_supplicant", "ip"]) {
        return None;
    }
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: a network namespace needs root");
        return None;
    }
    let ns = format!("circular-wifi-{}", std::process::id());
    ip(&["netns", "add", &ns]);
    ip(&["-n", &ns, "link", "add", "wl0", "type", "veth", "peer", "name", "wl1"]);
    ip(&["-n", &ns, "link", "set", "wl0", "up"]);
    let log = std::fs::File::create(dir.join("wpa.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns, "wpa_supplicant", "-D", "wired", "-i", "wl0", "-c"])
        .arg(conf)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let s = Supplicant { child, ns };
    let sock = dir.join("ctrl/wl0");
    testkit::wait_for("wpa_supplicant's control socket", || sock.exists());
    Some(s)
}

#[test]
fn a_joined_network_is_saved_with_its_passphrase_and_replaced_when_joined_again() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("wpa_supplicant.conf");
    let ctrl = dir.path().join("ctrl");
    std::fs::write(&conf, format!("ctrl_interface={}\nupdate_config=1\n", ctrl.display())).unwrap();
    let Some(_wpa) = start(dir.path(), &conf) else { return };

    let mut wifi = Wifi::open(&ctrl).unwrap();
    assert_eq!(wifi.iface(), "wl0");
    wifi.connect("Café \"net\"", Security::Wpa2, "correct horse").unwrap();
    let saved = std::fs::read_to_string(&conf).unwrap();
    // wpa_supplicant writes a UTF-8 SSID with quotes as hex, and the passphrase quoted.
    let hex: String = "Café \"net\"".bytes().map(|b| format!("{b:02x}")).collect();
    assert!(saved.contains(&format!("ssid={hex}")), "{saved}");
    assert!(saved.contains("psk=\"correct horse\""), "{saved}");
    assert!(saved.contains("key_mgmt=WPA-PSK"), "{saved}");

    // A new passphrase for the same network replaces the old entry.
    wifi.connect("Café \"net\"", Security::Wpa2, "battery staple").unwrap();
    wifi.connect("open one", Security::Open, "").unwrap();
    let saved = std::fs::read_to_string(&conf).unwrap();
    assert_eq!(saved.matches("network={").count(), 2, "{saved}");
    assert!(!saved.contains("correct horse"), "{saved}");
    assert!(saved.contains("psk=\"battery staple\""), "{saved}");
    assert!(saved.contains("key_mgmt=NONE"), "{saved}");
    // Both stay enabled, so the next boot may join either.
    assert!(!saved.contains("disabled=1"), "{saved}");

    // A passphrase that cannot be WPA's never reaches wpa_supplicant.
    let e = wifi.connect("x", Security::Wpa2, "short").unwrap_err().to_string();
    assert!(e.contains("8 to 63"), "{e}");
    let st = wifi.status().unwrap();
    assert!(!st.state.is_empty(), "{st:?}");
}
