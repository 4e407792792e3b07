//! The appliance's configuration: the kernel command line that `grub/` sets.

/// Display QEMU uses for the guest, as asked on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// The presenter where the PC has a framebuffer (`/dev/fb0`); without one, curses on a
    /// VT and none (guest serial on the console) on a serial line.
    Auto,
    /// QEMU's D-Bus display drawn full screen by `circular-presenter`.
    Presenter,
    /// QEMU's curses display: the guest's VGA text screen on the console.
    Curses,
    /// Guest's serial console on the appliance console (`-nographic`).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `circular.server=URL[,URL…]`: stores, tried in order.
    pub servers: Vec<String>,
    /// `circular.cache=LABEL`: filesystem label of the cache partition.
    pub cache_label: String,
    /// `circular.offline`: no network at all; boot from the cache.
    pub offline: bool,
    /// `circular.shell`: offer a rescue shell on failure (and in the menu's place on request).
    pub shell: bool,
    /// `circular.dhcp=SECONDS`: how long DHCP may take before going offline.
    pub dhcp_timeout_s: u64,
    /// `circular.accel=kvm|tcg`: override the accelerator choice.
    pub accel: Option<String>,
    /// `circular.display=presenter|curses|none`.
    pub display: Display,
    /// `circular.nogrow`: leave the cache partition's size alone.
    pub grow: bool,
    /// `circular.test.hwsim`, for tests only (no GRUB entry sets it): load
    /// mac80211_hwsim, two simulated Wi-Fi radios (a virtual device, which no modalias
    /// would load).
    pub test_hwsim: bool,
    /// `circular.menu=PATH`: run this program as the menu (tests, development).
    pub menu: Option<String>,
    /// `circular.ca=FILE`: extra CA certificate(s) (PEM) for `https://` stores
    /// with a private CA; a relative path is on the stick's cache partition.
    pub ca: Option<String>,
    /// `circular.proxy=http://host:port`: reach the stores through this HTTP proxy.
    pub proxy: Option<String>,
    /// `circular.ip=ADDR/PREFIX,GATEWAY,DNS[,DNS]`: a fixed IPv4 address instead of DHCP.
    pub ip: Option<FixedIp>,
}

/// A fixed IPv4 configuration for a network without DHCP (`circular.ip=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIp {
    /// This machine's address.
    pub address: std::net::Ipv4Addr,
    /// The network's prefix length (24 for 255.255.255.0), 1 to 32.
    pub prefix: u8,
    /// The default route's next hop; it must be on the network.
    pub gateway: std::net::Ipv4Addr,
    /// Name servers for resolv.conf, one at least.
    pub dns: Vec<std::net::Ipv4Addr>,
}

impl FixedIp {
    /// The netmask of [`FixedIp::prefix`] (24 → 255.255.255.0).
    pub fn netmask(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0))
    }
}

/// Parses the value of `circular.ip=`; the error says what is wrong in a way a
/// person can fix in GRUB's editor.
pub fn parse_ip(v: &str) -> Result<FixedIp, String> {
    const FORM: &str = "give it as circular.ip=ADDRESS/PREFIX,GATEWAY,DNS[,DNS] (IPv4), \
                        e.g. circular.ip=192.168.1.50/24,192.168.1.1,192.168.1.1";
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    let ip = |what: &str, s: &str| -> Result<std::net::Ipv4Addr, String> {
        s.parse().map_err(|_| {
            if s.is_empty() {
                format!("the {what} is missing; {FORM}")
            } else if s.contains(':') {
                format!("{s:?} ({what}) is IPv6; only IPv4 is supported here; {FORM}")
            } else {
                format!("{s:?} is not an IPv4 address ({what}); {FORM}")
            }
        })
    };
    let (addr, prefix) =
        parts[0].split_once('/').ok_or_else(|| format!("the prefix length (/24) is missing; {FORM}"))?;
    let address = ip("address", addr)?;
    let prefix: u8 = match prefix.parse() {
        Ok(p @ 1..=32) => p,
        _ => return Err(format!("/{prefix} is not a prefix length (1 to 32, e.g. /24); {FORM}")),
    };
    let gateway = ip("gateway", parts.get(1).copied().unwrap_or(""))?;
    let dns = match parts.get(2..) {
        Some(rest) if !rest.is_empty() => rest.iter().map(|d| ip("DNS server", d)).collect::<Result<Vec<_>, _>>()?,
        _ => return Err(format!("the DNS server is missing; {FORM}")),
    };
    let fixed = FixedIp { address, prefix, gateway, dns };
    let mask = u32::from(fixed.netmask());
    if u32::from(address) & mask != u32::from(gateway) & mask {
        return Err(format!("the gateway {gateway} is not on the network {address}/{prefix}; {FORM}"));
    }
    if address == gateway {
        return Err(format!("the gateway {gateway} is this machine's own address; {FORM}"));
    }
    Ok(fixed)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            servers: Vec::new(),
            cache_label: "CIRCULAR".into(),
            offline: false,
            shell: false,
            dhcp_timeout_s: 20,
            accel: None,
            display: Display::Auto,
            grow: true,
            test_hwsim: false,
            menu: None,
            ca: None,
            proxy: None,
            ip: None,
        }
    }
}

/// Parses `/proc/cmdline`. Unknown words belong to the kernel and are
/// ignored; a bad value is reported and the default kept, because a typo in
/// GRUB must not stop the appliance from booting.
/// The `--display` the menu gets: what `circular.display=` asked, else the presenter
/// where a framebuffer exists (on a serial console too: the guest shows on the screen and
/// its serial console on the line), else none on a serial line and curses on a VT.
pub fn pick_display(asked: Display, framebuffer: bool, serial_console: bool) -> &'static str {
    match asked {
        Display::Presenter => "presenter",
        Display::Curses => "curses",
        Display::None => "none",
        Display::Auto if framebuffer => "presenter",
        Display::Auto if serial_console => "none",
        Display::Auto => "curses",
    }
}

pub fn parse(cmdline: &str) -> (Config, Vec<String>) {
    let mut c = Config::default();
    let mut warnings = Vec::new();
    for word in split(cmdline) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word.as_str(), None),
        };
        match (key, value) {
            ("circular.server", Some(v)) => {
                c.servers = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
            }
            ("circular.cache", Some(v)) if !v.is_empty() => c.cache_label = v.to_string(),
            ("circular.offline", None) => c.offline = true,
            ("circular.shell", None) => c.shell = true,
            ("circular.nogrow", None) => c.grow = false,
            ("circular.test.hwsim", None) => c.test_hwsim = true,
            ("circular.dhcp", Some(v)) => match v.parse() {
                // 0 s would give no server time to answer: the boot would always start offline.
                Ok(0) => warnings.push(format!("circular.dhcp={v}: give at least 1 second; keeping the default")),
                Ok(n) => c.dhcp_timeout_s = n,
                Err(_) => warnings.push(format!("circular.dhcp={v}: not a number of seconds")),
            },
            ("circular.accel", Some(v @ ("kvm" | "tcg"))) => c.accel = Some(v.to_string()),
            ("circular.display", Some(v)) => match v {
                "presenter" => c.display = Display::Presenter,
                "curses" => c.display = Display::Curses,
                "none" => c.display = Display::None,
                _ => warnings.push(format!("circular.display={v}: use presenter, curses or none")),
            },
            ("circular.menu", Some(v)) => c.menu = Some(v.to_string()),
            ("circular.ca", Some(v)) if !v.is_empty() => c.ca = Some(v.to_string()),
            ("circular.proxy", Some(v)) if v.starts_with("http://") || v.starts_with("https://") => {
                c.proxy = Some(v.to_string())
            }
            ("circular.ip", Some(v)) => match parse_ip(v) {
                Ok(ip) => c.ip = Some(ip),
                Err(e) => warnings.push(format!("circular.ip={v}: {e}. Using DHCP instead")),
            },
            ("circular.proxy", _) => {
                warnings.push(format!("{word}: give the proxy as circular.proxy=http://host:port"))
            }
            (k, _) if k.starts_with("circular.") => warnings.push(format!("{word}: unknown or malformed option")),
            _ => {}
        }
    }
    (c, warnings)
}

/// Splits on whitespace, keeping double-quoted parts together (the kernel's rule).
/// The network screen's saved settings (`protocol::SAVED_NETWORK_SETTINGS`, command-line
/// words): its proxy and fixed address apply where the kernel command line set none, so
/// the command line (a GRUB entry edited by hand) wins. Returns the warnings about them.
pub fn apply_saved(cfg: &mut Config, saved: &str) -> Vec<String> {
    let (s, warnings) = parse(saved);
    if cfg.proxy.is_none() {
        cfg.proxy = s.proxy;
    }
    if cfg.ip.is_none() {
        cfg.ip = s.ip;
    }
    warnings.into_iter().map(|w| format!("network screen's saved settings: {w}")).collect()
}

fn split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in s.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod display_tests {
    use super::*;

    #[test]
    fn the_presenter_is_picked_wherever_there_is_a_framebuffer_unless_asked_otherwise() {
        for serial in [false, true] {
            assert_eq!(pick_display(Display::Auto, true, serial), "presenter");
            assert_eq!(pick_display(Display::Curses, true, serial), "curses");
            assert_eq!(pick_display(Display::None, true, serial), "none");
            assert_eq!(pick_display(Display::Presenter, false, serial), "presenter");
        }
        assert_eq!(pick_display(Display::Auto, false, false), "curses");
        assert_eq!(pick_display(Display::Auto, false, true), "none");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_grub_line() {
        let (c, w) = parse("BOOT_IMAGE=/boot/vmlinuz circular.server=http://10.0.2.2:8080/store,https://m.example/s circular.cache=CIRC2 quiet console=ttyS0,115200 circular.offline\n");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.servers, ["http://10.0.2.2:8080/store", "https://m.example/s"]);
        assert_eq!(c.cache_label, "CIRC2");
        assert!(c.offline);
        assert!(!c.shell);
    }

    /// The kernel line of each entry of the stick's real GRUB menu
    /// (grub/grub.cfg.in, as `image-build usb` fills it), as PID 1 reads it.
    fn grub_entry(id: &str) -> Config {
        let cfg = include_str!("../../grub/grub.cfg.in");
        let args = cfg
            .lines()
            .find_map(|l| l.strip_prefix("set circular_args=\""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("grub.cfg.in sets circular_args")
            .replace("@SERVER@", "http://10.0.2.2:8080/store")
            .replace("@CACHE_LABEL@", "CIRCULAR")
            .replace("@EXTRA@", "");
        let entry = cfg.split("menuentry ").find(|e| e.contains(&format!("--id {id} "))).expect("the entry exists");
        let linux = entry.lines().map(str::trim).find(|l| l.starts_with("linux ")).expect("the entry boots linux");
        let (c, w) =
            parse(&format!("BOOT_IMAGE={}", linux.trim_start_matches("linux ").replace("$circular_args", &args)));
        assert!(w.is_empty(), "entry {id}: {w:?}");
        c
    }

    #[test]
    fn each_grub_entry_asks_for_what_its_title_says() {
        let normal = grub_entry("normal");
        assert!(!normal.offline && !normal.shell);
        assert_eq!(normal.servers, ["http://10.0.2.2:8080/store"]);
        let offline = grub_entry("offline");
        assert!(offline.offline, "the offline entry must boot without the network");
        assert_eq!(offline.cache_label, "CIRCULAR");
        let serial = grub_entry("serial");
        assert!(serial.shell && !serial.offline);
        assert!(normal.grow && offline.grow && serial.grow, "no entry turns growing off");
    }

    #[test]
    fn defaults_and_warnings() {
        let (c, w) = parse("circular.dhcp=abc circular.bogus \"circular.display=none\" circular.accel=tcg");
        assert_eq!(c.cache_label, "CIRCULAR");
        assert_eq!(c.dhcp_timeout_s, 20);
        assert_eq!(c.display, Display::None);
        assert_eq!(c.accel.as_deref(), Some("tcg"));
        assert_eq!(w.len(), 2);
        let (c, w) = parse("circular.display=presenter circular.display=sdl");
        assert_eq!(c.display, Display::Presenter);
        assert_eq!(w, ["circular.display=sdl: use presenter, curses or none"]);
        // No time at all for DHCP is refused: the default stays.
        let (c, w) = parse("circular.dhcp=0");
        assert_eq!(c.dhcp_timeout_s, 20);
        assert!(w.len() == 1 && w[0].contains("at least 1 second"), "{w:?}");
        assert_eq!(parse("circular.dhcp=5").0.dhcp_timeout_s, 5);
    }

    #[test]
    fn a_private_ca_file_is_taken() {
        let (c, w) = parse("circular.server=https://lab.example/store circular.ca=certs/lab-ca.pem");
        assert_eq!(c.ca.as_deref(), Some("certs/lab-ca.pem"));
        assert!(w.is_empty());
    }

    #[test]
    fn a_proxy_is_taken_and_a_malformed_one_is_reported() {
        let (c, w) = parse("circular.proxy=http://squid.school.example:3128 quiet");
        assert_eq!(c.proxy.as_deref(), Some("http://squid.school.example:3128"));
        assert!(w.is_empty());
        let (c, w) = parse("circular.proxy=squid:3128");
        assert_eq!(c.proxy, None);
        assert!(w[0].contains("http://host:port"), "{w:?}");
    }

    #[test]
    fn the_test_radios_are_only_for_tests() {
        assert!(!parse("circular.server=http://s/ quiet").0.test_hwsim);
        assert!(parse("circular.test.hwsim").0.test_hwsim);
        assert!(!parse(include_str!("../../grub/grub.cfg.in")).0.test_hwsim);
    }

    #[test]
    fn saved_settings_apply_where_the_command_line_is_silent() {
        let saved = "circular.proxy=http://squid:3128 circular.ip=10.0.0.5/24,10.0.0.1,10.0.0.1\n";
        let (mut c, _) = parse("circular.server=http://s/");
        assert!(apply_saved(&mut c, saved).is_empty());
        assert_eq!(c.proxy.as_deref(), Some("http://squid:3128"));
        assert_eq!(c.ip.as_ref().map(|i| i.address), Some(std::net::Ipv4Addr::new(10, 0, 0, 5)));
        let (mut c, _) = parse("circular.proxy=http://grub:8080");
        let w = apply_saved(&mut c, "circular.proxy=http://squid:3128 circular.ip=10.0.0.5");
        assert_eq!(c.proxy.as_deref(), Some("http://grub:8080"));
        assert!(c.ip.is_none());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("network screen's saved settings: circular.ip="), "{w:?}");
    }

    #[test]
    fn a_fixed_address_is_taken() {
        let (c, w) = parse("circular.ip=10.0.2.15/24,10.0.2.2,10.0.2.3,1.1.1.1 quiet");
        assert!(w.is_empty(), "{w:?}");
        let ip = c.ip.unwrap();
        assert_eq!(ip.address, std::net::Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(ip.prefix, 24);
        assert_eq!(ip.netmask(), std::net::Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(ip.gateway, std::net::Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(ip.dns, [std::net::Ipv4Addr::new(10, 0, 2, 3), std::net::Ipv4Addr::new(1, 1, 1, 1)]);
        let host = parse_ip("192.168.7.9/32,192.168.7.9,9.9.9.9");
        assert!(host.unwrap_err().contains("own address"));
        assert_eq!(parse_ip("172.16.0.5/12,172.31.255.254,172.16.0.1").unwrap().netmask().to_string(), "255.240.0.0");
    }

    #[test]
    fn a_bad_fixed_address_says_why_and_falls_back_to_dhcp() {
        for (value, why) in [
            ("10.0.2.15/33,10.0.2.2,10.0.2.3", "/33 is not a prefix length"),
            ("10.0.2.15/0,10.0.2.2,10.0.2.3", "/0 is not a prefix length"),
            ("10.0.2.15/x,10.0.2.2,10.0.2.3", "/x is not a prefix length"),
            ("10.0.2.15,10.0.2.2,10.0.2.3", "prefix length (/24) is missing"),
            ("10.0.2.15/24", "the gateway is missing"),
            ("10.0.2.15/24,,10.0.2.3", "the gateway is missing"),
            ("10.0.2.15/24,10.0.2.2", "the DNS server is missing"),
            ("10.0.2.300/24,10.0.2.2,10.0.2.3", "\"10.0.2.300\" is not an IPv4 address (address)"),
            ("10.0.2.15/24,10.0.3.1,10.0.2.3", "not on the network 10.0.2.15/24"),
            ("2001:db8::5/64,2001:db8::1,2001:db8::1", "is IPv6"),
            ("10.0.2.15/24,10.0.2.2,dns.example", "not an IPv4 address (DNS server)"),
        ] {
            let (c, w) = parse(&format!("circular.ip={value}"));
            assert_eq!(c.ip, None, "{value}");
            assert_eq!(w.len(), 1, "{value}: {w:?}");
            assert!(w[0].contains(why), "{value}: {}", w[0]);
            assert!(
                w[0].contains("circular.ip=ADDRESS/PREFIX,GATEWAY,DNS") && w[0].ends_with("Using DHCP instead"),
                "{}",
                w[0]
            );
        }
    }
}
