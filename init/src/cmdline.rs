//! The appliance's configuration: the kernel command line that `grub/` sets.

/// Display QEMU uses for the guest, as asked on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Pick by console: curses on a VT, none (guest serial on the console) on a serial line.
    Auto,
    Sdl,
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
    /// `circular.display=sdl|curses|none`.
    pub display: Display,
    /// `circular.nogrow`: leave the cache partition's size alone.
    pub grow: bool,
    /// `circular.menu=PATH`: run this program as the menu (tests, development).
    pub menu: Option<String>,
    /// `circular.ca=FILE`: extra CA certificate(s) (PEM) for `https://` stores
    /// with a private CA; a relative path is on the stick's cache partition.
    pub ca: Option<String>,
    /// `circular.proxy=http://host:port`: reach the stores through this HTTP proxy.
    pub proxy: Option<String>,
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
            menu: None,
            ca: None,
            proxy: None,
        }
    }
}

/// Parses `/proc/cmdline`. Unknown words belong to the kernel and are
/// ignored; a bad value is reported and the default kept, because a typo in
/// GRUB must not stop the appliance from booting.
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
            ("circular.dhcp", Some(v)) => match v.parse() {
                Ok(n) => c.dhcp_timeout_s = n,
                Err(_) => warnings.push(format!("circular.dhcp={v}: not a number of seconds")),
            },
            ("circular.accel", Some(v @ ("kvm" | "tcg"))) => c.accel = Some(v.to_string()),
            ("circular.display", Some(v)) => match v {
                "sdl" => c.display = Display::Sdl,
                "curses" => c.display = Display::Curses,
                "none" => c.display = Display::None,
                _ => warnings.push(format!("circular.display={v}: use sdl, curses or none")),
            },
            ("circular.menu", Some(v)) => c.menu = Some(v.to_string()),
            ("circular.ca", Some(v)) if !v.is_empty() => c.ca = Some(v.to_string()),
            ("circular.proxy", Some(v)) if v.starts_with("http://") || v.starts_with("https://") => {
                c.proxy = Some(v.to_string())
            }
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

    #[test]
    fn defaults_and_warnings() {
        let (c, w) = parse("circular.dhcp=abc circular.bogus \"circular.display=none\" circular.accel=tcg");
        assert_eq!(c.cache_label, "CIRCULAR");
        assert_eq!(c.dhcp_timeout_s, 20);
        assert_eq!(c.display, Display::None);
        assert_eq!(c.accel.as_deref(), Some("tcg"));
        assert_eq!(w.len(), 2);
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
}
