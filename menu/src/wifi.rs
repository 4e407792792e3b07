//! Wi-Fi for the network screen, through Debian's `wpa_supplicant`: PID 1 runs one per
//! wireless link with a control socket in [`CTRL_DIR`] and a configuration file on the
//! cache partition (`update_config=1`), so a network joined here is remembered by
//! wpa_supplicant itself (`SAVE_CONFIG`) and joined again on later boots. This module
//! speaks the control socket's text protocol (wpa_supplicant's `ctrl_iface` commands
//! `SCAN`, `SCAN_RESULTS`, `ADD_NETWORK`, `SET_NETWORK`, `SELECT_NETWORK`, `SAVE_CONFIG`,
//! `STATUS`) with the `wpactrl` crate.

use std::path::{Path, PathBuf};

/// Where PID 1 tells wpa_supplicant to put its control sockets (`ctrl_interface=`), one
/// socket per wireless link, named after it.
pub const CTRL_DIR: &str = "/run/wpa_supplicant";

/// How a network is protected, from its scan flags (`[WPA2-PSK-CCMP][SAE][ESS]`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No passphrase.
    Open,
    /// WPA2-Personal (or WPA-Personal): a passphrase.
    Wpa2,
    /// WPA3-Personal (SAE) only: a passphrase, with protected management frames.
    Wpa3,
    /// WPA2/WPA3 transition mode: either works; both are offered.
    Wpa2Wpa3,
    /// WPA2/WPA3-Enterprise (802.1X) or WEP: the appliance cannot join these.
    Unsupported,
}

impl Security {
    /// From the flags column of `SCAN_RESULTS`.
    pub fn from_flags(flags: &str) -> Security {
        let psk = flags.contains("-PSK");
        let sae = flags.contains("SAE");
        if flags.contains("EAP") || flags.contains("WEP") {
            Security::Unsupported
        } else if psk && sae {
            Security::Wpa2Wpa3
        } else if sae {
            Security::Wpa3
        } else if psk {
            Security::Wpa2
        } else {
            Security::Open
        }
    }

    /// True when joining needs a passphrase.
    pub fn needs_passphrase(self) -> bool {
        !matches!(self, Security::Open | Security::Unsupported)
    }

    /// The words the network screen shows.
    pub fn label(self) -> &'static str {
        match self {
            Security::Open => "open",
            Security::Wpa2 => "WPA2",
            Security::Wpa3 => "WPA3",
            Security::Wpa2Wpa3 => "WPA2/WPA3",
            Security::Unsupported => "802.1X/WEP: not supported",
        }
    }
}

/// One network in range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Its name, as text (invalid UTF-8 bytes replaced).
    pub ssid: String,
    /// The strongest access point's signal in dBm (-30 is very good, -80 is poor).
    pub signal_dbm: i32,
    /// How it is protected.
    pub security: Security,
}

impl Network {
    /// Signal as 0-4 bars, for the screen: -50 dBm and better is 4, each 10 dB less one bar.
    pub fn bars(&self) -> u8 {
        match self.signal_dbm {
            s if s >= -50 => 4,
            s if s >= -60 => 3,
            s if s >= -70 => 2,
            s if s >= -80 => 1,
            _ => 0,
        }
    }
}

/// `SCAN_RESULTS`: a header line, then `bssid<TAB>frequency<TAB>signal<TAB>flags<TAB>ssid`
/// per access point. One entry per name (the strongest access point), strongest first;
/// hidden networks (no name) are left out.
pub fn parse_scan_results(text: &str) -> Vec<Network> {
    let mut out: Vec<Network> = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.splitn(5, '\t').collect();
        let [_bssid, _freq, signal, flags, ssid] = f[..] else { continue };
        let ssid = unescape(ssid);
        let Ok(signal_dbm) = signal.trim().parse::<i32>() else { continue };
        if ssid.is_empty() || ssid.chars().all(|c| c == '\0') {
            continue;
        }
        let net = Network { ssid, signal_dbm, security: Security::from_flags(flags) };
        match out.iter_mut().find(|n| n.ssid == net.ssid) {
            Some(n) if n.signal_dbm < net.signal_dbm => *n = net,
            Some(_) => {}
            None => out.push(net),
        }
    }
    out.sort_by(|a, b| b.signal_dbm.cmp(&a.signal_dbm).then_with(|| a.ssid.cmp(&b.ssid)));
    out
}

/// wpa_supplicant prints SSIDs with `printf_encode`: `\\`, `\"`, `\e`, `\n`, `\r`, `\t` and
/// `\xNN` for other bytes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let (byte, used) = match b[i + 1] {
                b'n' => (b'\n', 2),
                b'r' => (b'\r', 2),
                b't' => (b'\t', 2),
                b'e' => (0x1b, 2),
                b'x' if b.len() >= i + 4 => {
                    match std::str::from_utf8(&b[i + 2..i + 4]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(v) => (v, 4),
                        None => (b'x', 2),
                    }
                }
                other => (other, 2),
            };
            out.push(byte);
            i += used;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What went wrong talking to wpa_supplicant, or with what was typed.
#[derive(Debug, thiserror::Error)]
pub enum WifiError {
    /// No wireless link, or PID 1 did not start wpa_supplicant on it.
    #[error("no Wi-Fi adapter is ready (no wpa_supplicant control socket in {0})")]
    NoAdapter(String),
    /// The control socket refused or did not answer.
    #[error("wpa_supplicant on {0}: {1}")]
    Ctrl(String, String),
    /// A command was answered `FAIL` (or something unexpected).
    #[error("wpa_supplicant refused '{0}': {1}")]
    Refused(String, String),
    /// The passphrase cannot be a WPA passphrase.
    #[error("{0}")]
    Passphrase(String),
}

/// The `SET_NETWORK` settings that join `ssid` with this security and passphrase. The SSID
/// goes as hex and the passphrase quoted, so no character can break the command. WPA
/// passphrases are 8 to 63 printable ASCII characters (IEEE 802.11i); anything else gets a
/// clear error before wpa_supplicant sees it.
pub fn network_settings(
    ssid: &str,
    security: Security,
    passphrase: &str,
) -> Result<Vec<(&'static str, String)>, WifiError> {
    let hex: String = ssid.bytes().map(|b| format!("{b:02x}")).collect();
    let mut s = vec![("ssid", hex)];
    if security.needs_passphrase() {
        let n = passphrase.chars().count();
        if !(8..=63).contains(&n) {
            return Err(WifiError::Passphrase(format!(
                "a Wi-Fi passphrase has 8 to 63 characters (this one has {n}); type it again"
            )));
        }
        if !passphrase.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
            return Err(WifiError::Passphrase(
                "a Wi-Fi passphrase has only plain (ASCII) letters, digits and signs; type it again".into(),
            ));
        }
    }
    let quoted = format!("\"{passphrase}\"");
    match security {
        Security::Open => s.push(("key_mgmt", "NONE".into())),
        Security::Wpa2 => {
            s.push(("key_mgmt", "WPA-PSK".into()));
            s.push(("psk", quoted));
        }
        Security::Wpa3 => {
            s.push(("key_mgmt", "SAE".into()));
            s.push(("sae_password", quoted));
            s.push(("ieee80211w", "2".into()));
        }
        Security::Wpa2Wpa3 => {
            s.push(("key_mgmt", "WPA-PSK SAE".into()));
            s.push(("psk", quoted.clone()));
            s.push(("sae_password", quoted));
            s.push(("ieee80211w", "1".into()));
        }
        Security::Unsupported => {
            return Err(WifiError::Passphrase(
                "this network needs enterprise (802.1X) login or WEP, which the appliance cannot do; use another network or a cable".into(),
            ))
        }
    }
    Ok(s)
}

/// The parts of `STATUS` the screen shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `wpa_state`: DISCONNECTED, SCANNING, ASSOCIATING, 4WAY_HANDSHAKE, COMPLETED…
    pub state: String,
    /// The network joined or being joined.
    pub ssid: Option<String>,
}

impl Status {
    /// From `STATUS`'s `key=value` lines.
    pub fn parse(text: &str) -> Status {
        let mut st = Status::default();
        for l in text.lines() {
            match l.split_once('=') {
                Some(("wpa_state", v)) => st.state = v.to_string(),
                Some(("ssid", v)) => st.ssid = Some(unescape(v)),
                _ => {}
            }
        }
        st
    }

    /// True once the link is joined (the 4-way handshake is done).
    pub fn joined(&self) -> bool {
        self.state == "COMPLETED"
    }
}

/// The wireless links wpa_supplicant runs on: the sockets in `dir`, sorted.
pub fn interfaces(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.retain(|n| !n.starts_with('.') && !n.starts_with("p2p-dev-"));
    v.sort();
    v
}

/// One wireless link's wpa_supplicant.
pub struct Wifi {
    iface: String,
    client: wpactrl::Client,
}

impl Wifi {
    /// The first wireless link with a wpa_supplicant in `dir` (normally [`CTRL_DIR`]).
    pub fn open(dir: &Path) -> Result<Wifi, WifiError> {
        let iface =
            interfaces(dir).into_iter().next().ok_or_else(|| WifiError::NoAdapter(dir.display().to_string()))?;
        Wifi::open_iface(dir, &iface)
    }

    /// wpa_supplicant on `iface`, whose socket is `dir/iface`.
    pub fn open_iface(dir: &Path, iface: &str) -> Result<Wifi, WifiError> {
        let path: PathBuf = dir.join(iface);
        let client = wpactrl::Client::builder()
            .ctrl_path(&path)
            .open()
            .map_err(|e| WifiError::Ctrl(iface.into(), e.to_string()))?;
        Ok(Wifi { iface: iface.into(), client })
    }

    /// The wireless link's name (`wlan0`, `wlp2s0`…).
    pub fn iface(&self) -> &str {
        &self.iface
    }

    fn ask(&mut self, cmd: &str) -> Result<String, WifiError> {
        self.client.request(cmd).map_err(|e| WifiError::Ctrl(self.iface.clone(), e.to_string()))
    }

    /// A command answered `OK`; the error shows it without its value (a passphrase).
    fn ok(&mut self, cmd: &str, shown: &str) -> Result<(), WifiError> {
        let r = self.ask(cmd)?;
        if r.trim() == "OK" {
            Ok(())
        } else {
            Err(WifiError::Refused(shown.into(), r.trim().into()))
        }
    }

    /// Starts a scan; the results come a few seconds later ([`Wifi::networks`]). A scan
    /// already running is fine (`FAIL-BUSY`).
    pub fn scan(&mut self) -> Result<(), WifiError> {
        let r = self.ask("SCAN")?;
        match r.trim() {
            "OK" | "FAIL-BUSY" => Ok(()),
            other => Err(WifiError::Refused("SCAN".into(), other.into())),
        }
    }

    /// The networks of the last scan, strongest first.
    pub fn networks(&mut self) -> Result<Vec<Network>, WifiError> {
        Ok(parse_scan_results(&self.ask("SCAN_RESULTS")?))
    }

    /// Joins `ssid`, replacing any network of that name already known, and saves it to
    /// the configuration file (on the cache partition, readable by root only), so that
    /// later boots join it by themselves. Returns once wpa_supplicant has taken it; the
    /// join itself shows in [`Wifi::status`].
    pub fn connect(&mut self, ssid: &str, security: Security, passphrase: &str) -> Result<(), WifiError> {
        let settings = network_settings(ssid, security, passphrase)?;
        self.forget(ssid)?;
        let id = self.ask("ADD_NETWORK")?.trim().to_string();
        if id.parse::<u32>().is_err() {
            return Err(WifiError::Refused("ADD_NETWORK".into(), id));
        }
        for (key, value) in settings {
            let shown = format!("SET_NETWORK {id} {key}");
            self.ok(&format!("SET_NETWORK {id} {key} {value}"), &shown)?;
        }
        self.ok(&format!("SELECT_NETWORK {id}"), "SELECT_NETWORK")?;
        // SELECT_NETWORK disables the others; known networks must stay candidates for
        // the next boot.
        self.ok("ENABLE_NETWORK all", "ENABLE_NETWORK all")?;
        self.ok("SAVE_CONFIG", "SAVE_CONFIG")
    }

    /// Removes every known network called `ssid`.
    fn forget(&mut self, ssid: &str) -> Result<(), WifiError> {
        let list = self.ask("LIST_NETWORKS")?;
        for line in list.lines().skip(1) {
            let mut f = line.split('\t');
            if let (Some(id), Some(name)) = (f.next(), f.next()) {
                if unescape(name) == ssid {
                    self.ok(&format!("REMOVE_NETWORK {id}"), "REMOVE_NETWORK")?;
                }
            }
        }
        Ok(())
    }

    /// Where the link is: scanning, joining, joined to which network.
    pub fn status(&mut self) -> Result<Status, WifiError> {
        Ok(Status::parse(&self.ask("STATUS")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCAN: &str = "bssid / frequency / signal level / flags / ssid\n\
        02:00:00:00:01:00\t2412\t-30\t[WPA2-PSK-CCMP][ESS]\tcircular-test\n\
        02:00:00:00:02:00\t2437\t-71\t[ESS]\tCafé libre\n\
        02:00:00:00:03:00\t5180\t-45\t[WPA2-PSK-CCMP][ESS]\tcircular-test\n\
        02:00:00:00:04:00\t2462\t-55\t[RSN-SAE-CCMP][ESS]\tHome\\x20\\\"3\\\"\n\
        02:00:00:00:05:00\t2462\t-60\t[WPA2-PSK+SAE-CCMP][ESS]\tmixed\n\
        02:00:00:00:06:00\t2462\t-40\t[WPA2-EAP-CCMP][ESS]\tcorp\n\
        02:00:00:00:07:00\t2462\t-20\t[WPA2-PSK-CCMP][ESS]\t\n";

    #[test]
    fn scan_results_are_one_per_name_strongest_first_with_their_security() {
        let n = parse_scan_results(SCAN);
        let got: Vec<(&str, i32, Security)> = n.iter().map(|n| (n.ssid.as_str(), n.signal_dbm, n.security)).collect();
        assert_eq!(
            got,
            [
                ("circular-test", -30, Security::Wpa2),
                ("corp", -40, Security::Unsupported),
                ("Home \"3\"", -55, Security::Wpa3),
                ("mixed", -60, Security::Wpa2Wpa3),
                ("Café libre", -71, Security::Open),
            ]
        );
        assert_eq!(n[0].bars(), 4);
        assert_eq!(n[4].bars(), 1);
    }

    #[test]
    fn settings_quote_nothing_that_could_break_the_command() {
        let s = network_settings("a b\"c", Security::Wpa2, "pass word\"1").unwrap();
        assert_eq!(s[0], ("ssid", "6120622263".to_string()));
        assert_eq!(s[1], ("key_mgmt", "WPA-PSK".to_string()));
        assert_eq!(s[2], ("psk", "\"pass word\"1\"".to_string()));
        let open = network_settings("x", Security::Open, "").unwrap();
        assert_eq!(open, [("ssid", "78".to_string()), ("key_mgmt", "NONE".to_string())]);
        let sae = network_settings("x", Security::Wpa3, "12345678").unwrap();
        assert!(sae.contains(&("ieee80211w", "2".to_string())));
    }

    #[test]
    fn a_bad_passphrase_says_what_a_good_one_is() {
        let short = network_settings("x", Security::Wpa2, "1234567").unwrap_err().to_string();
        assert!(short.contains("8 to 63 characters (this one has 7)"), "{short}");
        let long = "x".repeat(64);
        assert!(network_settings("x", Security::Wpa2Wpa3, &long).is_err());
        let fancy = network_settings("x", Security::Wpa2, "pässwörd1").unwrap_err().to_string();
        assert!(fancy.contains("ASCII"), "{fancy}");
        let corp = network_settings("corp", Security::Unsupported, "whatever1").unwrap_err().to_string();
        assert!(corp.contains("enterprise"), "{corp}");
    }

    #[test]
    fn status_says_when_the_link_is_joined() {
        let s = Status::parse(
            "bssid=02:00:00:00:01:00\nssid=circular-test\nwpa_state=COMPLETED\naddress=02:00:00:00:00:00\n",
        );
        assert!(s.joined());
        assert_eq!(s.ssid.as_deref(), Some("circular-test"));
        assert!(!Status::parse("wpa_state=SCANNING\n").joined());
    }
}
