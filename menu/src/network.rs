//! The network screen (`n` on the appliance's menu): the Wi-Fi networks in range with
//! their signal and security, a masked passphrase, joining (WPA2/WPA3-Personal, open), the
//! HTTP proxy and a fixed address in `circular.ip=` form. This module holds its states,
//! keys and drawing; `run` carries out what it asks ([`NetAction`]) with [`crate::wifi`].

use crossterm::event::KeyCode;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::wifi::{Network, Security};

/// Where the network screen is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetStep {
    /// The list of networks (and the proxy and fixed-address lines under it).
    List,
    /// Typing the passphrase of `networks[selected]`.
    Passphrase,
    /// Typing the proxy URL.
    Proxy,
    /// Typing a fixed address, `ADDR/PREFIX,GATEWAY,DNS[,DNS]`.
    FixedIp,
    /// wpa_supplicant was asked to join this network: waiting for it (the network line
    /// follows, then DHCP).
    Joining(String),
}

/// The network screen's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetScreen {
    /// The last scan's networks, strongest first.
    pub networks: Vec<Network>,
    /// The row chosen: a network, then the proxy row, then the fixed-address row.
    pub selected: usize,
    /// Where the screen is.
    pub step: NetStep,
    /// What is being typed (passphrase, proxy, address).
    pub typed: String,
    /// The proxy setting now (`http://host:port`), if any.
    pub proxy: Option<String>,
    /// The fixed address now (`circular.ip=` form), if any.
    pub fixed_ip: Option<String>,
    /// The last error or news, shown in the screen (wrong passphrase form, no adapter…).
    pub message: Option<String>,
    /// The wireless link, or `None` when the PC has no Wi-Fi adapter ready.
    pub adapter: Option<String>,
}

/// What the screen asks `run` to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetAction {
    /// Nothing.
    None,
    /// Leave the screen.
    Close,
    /// Scan again (`r`).
    Scan,
    /// Join this network.
    Connect {
        /// The network's name.
        ssid: String,
        /// Its security, from the scan.
        security: Security,
        /// As typed (empty for an open network).
        passphrase: String,
    },
    /// Keep this proxy (empty: none).
    SetProxy(String),
    /// Keep this fixed address (empty: back to DHCP).
    SetFixedIp(String),
}

impl NetScreen {
    /// The screen opened on these settings; the networks come with the first scan.
    pub fn new(adapter: Option<String>, proxy: Option<String>, fixed_ip: Option<String>) -> NetScreen {
        NetScreen {
            networks: Vec::new(),
            selected: 0,
            step: NetStep::List,
            typed: String::new(),
            proxy,
            fixed_ip,
            message: None,
            adapter,
        }
    }

    /// Rows in the list: the networks, the proxy row, the fixed-address row.
    fn rows(&self) -> usize {
        self.networks.len() + 2
    }

    /// A new scan's results; the choice stays on the same network when it is still there.
    pub fn set_networks(&mut self, networks: Vec<Network>) {
        let old = self.networks.len();
        let chosen = self.networks.get(self.selected).map(|n| n.ssid.clone());
        self.networks = networks;
        self.selected = match chosen {
            Some(s) => self.networks.iter().position(|n| n.ssid == s).unwrap_or(0),
            // The first scan's results: the strongest network.
            None if old == 0 => 0,
            // On the proxy or fixed-address row: stay there.
            None => self.networks.len() + (self.selected - old).min(1),
        };
    }

    /// One key.
    pub fn on_key(&mut self, code: KeyCode) -> NetAction {
        match self.step.clone() {
            NetStep::List | NetStep::Joining(_) => self.list_key(code),
            NetStep::Passphrase | NetStep::Proxy | NetStep::FixedIp => self.typing_key(code),
        }
    }

    fn list_key(&mut self, code: KeyCode) -> NetAction {
        match code {
            KeyCode::Esc | KeyCode::Left | KeyCode::Char('q') => NetAction::Close,
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected = self.selected.saturating_sub(1);
                NetAction::None
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(self.rows() - 1);
                NetAction::None
            }
            KeyCode::Char('r') => {
                self.message = None;
                NetAction::Scan
            }
            KeyCode::Enter => {
                self.message = None;
                self.typed.clear();
                let n = self.networks.len();
                if self.selected == n {
                    self.typed = self.proxy.clone().unwrap_or_default();
                    self.step = NetStep::Proxy;
                    return NetAction::None;
                }
                if self.selected == n + 1 {
                    self.typed = self.fixed_ip.clone().unwrap_or_default();
                    self.step = NetStep::FixedIp;
                    return NetAction::None;
                }
                let Some(net) = self.networks.get(self.selected).cloned() else { return NetAction::None };
                match net.security {
                    Security::Unsupported => {
                        self.message = Some(format!(
                            "{} needs enterprise (802.1X) login or WEP, which the appliance cannot do.",
                            net.ssid
                        ));
                        NetAction::None
                    }
                    Security::Open => {
                        self.step = NetStep::Joining(net.ssid.clone());
                        NetAction::Connect { ssid: net.ssid, security: Security::Open, passphrase: String::new() }
                    }
                    _ => {
                        self.step = NetStep::Passphrase;
                        NetAction::None
                    }
                }
            }
            _ => NetAction::None,
        }
    }

    fn typing_key(&mut self, code: KeyCode) -> NetAction {
        match code {
            KeyCode::Esc => {
                self.typed.clear();
                self.step = NetStep::List;
                NetAction::None
            }
            KeyCode::Backspace => {
                self.typed.pop();
                NetAction::None
            }
            KeyCode::Char(c) if self.typed.chars().count() < 200 => {
                self.typed.push(c);
                NetAction::None
            }
            KeyCode::Enter => {
                let typed = std::mem::take(&mut self.typed);
                match self.step {
                    NetStep::Passphrase => {
                        let Some(net) = self.networks.get(self.selected).cloned() else {
                            self.step = NetStep::List;
                            return NetAction::None;
                        };
                        self.step = NetStep::Joining(net.ssid.clone());
                        NetAction::Connect { ssid: net.ssid, security: net.security, passphrase: typed }
                    }
                    NetStep::Proxy => {
                        self.step = NetStep::List;
                        NetAction::SetProxy(typed.trim().to_string())
                    }
                    NetStep::FixedIp => {
                        self.step = NetStep::List;
                        NetAction::SetFixedIp(typed.trim().to_string())
                    }
                    _ => NetAction::None,
                }
            }
            _ => NetAction::None,
        }
    }

    /// The join was refused before it started (a passphrase of the wrong form, no
    /// wpa_supplicant): back to the passphrase, with why.
    pub fn join_failed(&mut self, why: String) {
        self.message = Some(why);
        self.step = NetStep::List;
    }

    /// The key help line for this screen.
    pub fn keys(&self) -> &'static str {
        match self.step {
            NetStep::List | NetStep::Joining(_) => "↑↓ choose  Enter join/edit  r scan again  Esc back",
            _ => "type, Enter to confirm, Esc to cancel",
        }
    }
}

/// The network settings made on this screen, on the cache partition (under the menu's
/// cache directory): kernel-command-line words (`circular.proxy=… circular.ip=…`) that
/// PID 1 reads with its command-line parser at the next boot, where the real kernel
/// command line does not set them.
pub const SAVED_SETTINGS: &str = "network/settings";

/// The value of `key` (`circular.proxy`, `circular.ip`) in the saved settings.
pub fn saved_setting(cache_dir: &std::path::Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(cache_dir.join(SAVED_SETTINGS)).ok()?;
    let prefix = format!("{key}=");
    text.split_whitespace().find_map(|w| w.strip_prefix(&prefix)).map(str::to_string)
}

/// Sets (or, with an empty value, removes) `key` in the saved settings.
pub fn save_setting(cache_dir: &std::path::Path, key: &str, value: &str) -> std::io::Result<()> {
    if value.chars().any(char::is_whitespace) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "no spaces, please"));
    }
    let path = cache_dir.join(SAVED_SETTINGS);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let prefix = format!("{key}=");
    let mut words: Vec<String> =
        text.split_whitespace().filter(|w| !w.starts_with(&prefix)).map(str::to_string).collect();
    if !value.is_empty() {
        words.push(format!("{prefix}{value}"));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, words.join(" ") + "\n")?;
    std::fs::rename(&tmp, &path)
}

const BOLD: Style = Style::new().add_modifier(Modifier::BOLD);
const REVERSED: Style = Style::new().add_modifier(Modifier::REVERSED);

/// The signal as bars, `▂▄▆█` style in plain ASCII-safe blocks.
fn bars(n: u8) -> String {
    let full = usize::from(n.min(4));
    format!("{}{}", "▮".repeat(full), "▯".repeat(4 - full))
}

/// Draws the screen into `area`.
pub fn draw(frame: &mut Frame, area: Rect, s: &NetScreen) {
    let mut lines: Vec<Line> = Vec::new();
    match &s.adapter {
        Some(a) => lines.push(Line::styled(format!("Wi-Fi networks in range ({a}):"), BOLD)),
        None => lines.push(Line::styled("No Wi-Fi adapter is ready on this PC (a cable works too).", BOLD)),
    }
    if s.adapter.is_some() && s.networks.is_empty() {
        lines.push(Line::raw("  scanning… (r to scan again)"));
    }
    for (i, n) in s.networks.iter().enumerate() {
        let text = format!("  {} {:>4} dBm  {:<24}  {}", bars(n.bars()), n.signal_dbm, n.ssid, n.security.label());
        lines.push(if i == s.selected { Line::styled(text, REVERSED) } else { Line::raw(text) });
    }
    lines.push(Line::raw(""));
    let k = s.networks.len();
    let proxy = format!("  HTTP proxy:    {}", s.proxy.as_deref().unwrap_or("none"));
    lines.push(if s.selected == k { Line::styled(proxy, REVERSED) } else { Line::raw(proxy) });
    let ip = format!("  Fixed address: {}", s.fixed_ip.as_deref().unwrap_or("none (DHCP)"));
    lines.push(if s.selected == k + 1 { Line::styled(ip, REVERSED) } else { Line::raw(ip) });
    lines.push(Line::raw(""));
    match &s.step {
        NetStep::Passphrase => {
            let name = s.networks.get(s.selected).map(|n| n.ssid.as_str()).unwrap_or("");
            lines.push(Line::styled(format!("Passphrase for {name}:"), BOLD));
            lines.push(Line::raw(format!("  {}_", "*".repeat(s.typed.chars().count()))));
        }
        NetStep::Proxy => {
            lines.push(Line::styled("HTTP proxy (http://host:port; empty for none):", BOLD));
            lines.push(Line::raw(format!("  {}_", s.typed)));
        }
        NetStep::FixedIp => {
            lines.push(Line::styled("Fixed address ADDR/PREFIX,GATEWAY,DNS[,DNS] (empty for DHCP):", BOLD));
            lines.push(Line::raw(format!("  {}_", s.typed)));
            lines.push(Line::raw("  for example 192.168.1.50/24,192.168.1.1,192.168.1.1"));
        }
        NetStep::Joining(ssid) => lines.push(Line::raw(format!("Joining {ssid}… (the network line below follows)"))),
        NetStep::List => {}
    }
    if let Some(m) = &s.message {
        lines.push(Line::styled(m.clone(), BOLD));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn nets() -> Vec<Network> {
        vec![
            Network { ssid: "circular-test".into(), signal_dbm: -30, security: Security::Wpa2 },
            Network { ssid: "corp".into(), signal_dbm: -45, security: Security::Unsupported },
            Network { ssid: "Café libre".into(), signal_dbm: -71, security: Security::Open },
        ]
    }

    fn shown(s: &NetScreen) -> String {
        let mut t = Terminal::new(TestBackend::new(80, 20)).unwrap();
        t.draw(|f| draw(f, f.area(), s)).unwrap();
        let buf = t.backend().buffer();
        let mut out = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    fn has(text: &str, want: &str) {
        assert!(text.contains(want), "missing {want:?} on screen:\n{text}");
    }

    fn typed(s: &mut NetScreen, text: &str) {
        for c in text.chars() {
            assert_eq!(s.on_key(KeyCode::Char(c)), NetAction::None);
        }
    }

    #[test]
    fn the_list_shows_signal_and_security_and_the_passphrase_is_masked() {
        let mut s = NetScreen::new(Some("wlan0".into()), None, None);
        has(&shown(&s), "scanning…");
        s.set_networks(nets());
        let t = shown(&s);
        has(&t, "Wi-Fi networks in range (wlan0):");
        has(&t, "▮▮▮▮  -30 dBm  circular-test             WPA2");
        has(&t, "WPA2");
        has(&t, "▮▯▯▯  -71 dBm  Café libre");
        has(&t, "open");
        has(&t, "HTTP proxy:    none");
        has(&t, "Fixed address: none (DHCP)");

        assert_eq!(s.on_key(KeyCode::Enter), NetAction::None);
        assert_eq!(s.step, NetStep::Passphrase);
        typed(&mut s, "secret pass");
        let t = shown(&s);
        has(&t, "Passphrase for circular-test:");
        has(&t, "***********_");
        assert!(!t.contains("secret"), "the passphrase shows:\n{t}");
        s.on_key(KeyCode::Backspace);
        assert_eq!(
            s.on_key(KeyCode::Enter),
            NetAction::Connect {
                ssid: "circular-test".into(),
                security: Security::Wpa2,
                passphrase: "secret pas".into()
            }
        );
        assert_eq!(s.step, NetStep::Joining("circular-test".into()));
        has(&shown(&s), "Joining circular-test…");
        assert!(s.typed.is_empty(), "the passphrase stays in memory");
    }

    #[test]
    fn an_open_network_joins_at_once_and_an_enterprise_one_says_why_not() {
        let mut s = NetScreen::new(Some("wlan0".into()), None, None);
        s.set_networks(nets());
        s.on_key(KeyCode::Down);
        assert_eq!(s.on_key(KeyCode::Enter), NetAction::None);
        has(&shown(&s), "corp needs enterprise (802.1X) login or WEP");
        s.on_key(KeyCode::Down);
        assert_eq!(
            s.on_key(KeyCode::Enter),
            NetAction::Connect { ssid: "Café libre".into(), security: Security::Open, passphrase: String::new() }
        );
        s.join_failed("wpa_supplicant refused 'SELECT_NETWORK': FAIL".into());
        assert_eq!(s.step, NetStep::List);
        has(&shown(&s), "refused 'SELECT_NETWORK'");
    }

    #[test]
    fn proxy_and_fixed_address_rows_are_edited_and_escape_cancels() {
        let mut s = NetScreen::new(None, Some("http://old:3128".into()), None);
        has(&shown(&s), "No Wi-Fi adapter is ready");
        has(&shown(&s), "HTTP proxy:    http://old:3128");
        s.message = Some("no Wi-Fi adapter is ready (no wpa_supplicant control socket)".into());
        has(&shown(&s), "no wpa_supplicant control socket");
        s.message = None;
        // No networks: the first row is the proxy.
        s.on_key(KeyCode::Enter);
        assert_eq!(s.step, NetStep::Proxy);
        assert_eq!(s.typed, "http://old:3128");
        for _ in 0..4 {
            s.on_key(KeyCode::Backspace);
        }
        typed(&mut s, "8080");
        assert_eq!(s.on_key(KeyCode::Enter), NetAction::SetProxy("http://old:8080".into()));
        s.on_key(KeyCode::Down);
        s.on_key(KeyCode::Enter);
        assert_eq!(s.step, NetStep::FixedIp);
        has(&shown(&s), "ADDR/PREFIX,GATEWAY,DNS");
        typed(&mut s, "10.0.0.5/24");
        s.on_key(KeyCode::Esc);
        assert_eq!(s.step, NetStep::List);
        s.on_key(KeyCode::Enter);
        typed(&mut s, "10.0.0.5/24,10.0.0.1,10.0.0.1");
        assert_eq!(s.on_key(KeyCode::Enter), NetAction::SetFixedIp("10.0.0.5/24,10.0.0.1,10.0.0.1".into()));
        assert_eq!(s.on_key(KeyCode::Esc), NetAction::Close);
    }

    #[test]
    fn settings_are_saved_as_command_line_words_one_per_key() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(saved_setting(dir.path(), "circular.proxy"), None);
        save_setting(dir.path(), "circular.proxy", "http://old:3128").unwrap();
        save_setting(dir.path(), "circular.ip", "10.0.0.5/24,10.0.0.1,10.0.0.1").unwrap();
        save_setting(dir.path(), "circular.proxy", "http://squid:3128").unwrap();
        let text = std::fs::read_to_string(dir.path().join(SAVED_SETTINGS)).unwrap();
        assert_eq!(text, "circular.ip=10.0.0.5/24,10.0.0.1,10.0.0.1 circular.proxy=http://squid:3128\n");
        assert_eq!(saved_setting(dir.path(), "circular.proxy").as_deref(), Some("http://squid:3128"));
        save_setting(dir.path(), "circular.ip", "").unwrap();
        assert_eq!(saved_setting(dir.path(), "circular.ip"), None);
        assert!(save_setting(dir.path(), "circular.proxy", "http://a b").is_err());
    }

    #[test]
    fn a_new_scan_keeps_the_choice_on_the_same_network() {
        let mut s = NetScreen::new(Some("wlan0".into()), None, None);
        s.set_networks(nets());
        s.on_key(KeyCode::Down);
        s.on_key(KeyCode::Down);
        let mut again = nets();
        again.reverse();
        s.set_networks(again);
        assert_eq!(s.networks[s.selected].ssid, "Café libre");
    }
}
