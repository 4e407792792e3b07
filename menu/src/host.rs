//! Facts about this machine for the menu: its address, CPUs and memory.

/// The network line's first words, from the kernel's own state (so it
/// follows what happens: a cable plugged in, DHCP answering):
/// "online via eth0 10.0.2.15" once an interface that is up has an address,
/// "DHCP… (eth0)" while a wired link has carrier but no address yet, and
/// "no network (cable unplugged?)" while no link has carrier.
pub fn address() -> Option<String> {
    use nix::net::if_::InterfaceFlags;
    let mut addrs = Vec::new();
    if let Ok(list) = nix::ifaddrs::getifaddrs() {
        for ifa in list {
            if !ifa.flags.contains(InterfaceFlags::IFF_UP) || ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK) {
                continue;
            }
            let Some(addr) = ifa.address else { continue };
            if let Some(sin) = addr.as_sockaddr_in() {
                addrs.push((ifa.interface_name, std::net::IpAddr::V4(sin.ip())));
            } else if let Some(sin6) = addr.as_sockaddr_in6() {
                addrs.push((ifa.interface_name, std::net::IpAddr::V6(sin6.ip())));
            }
        }
    }
    Some(describe(&addrs, &carriers()))
}

/// Every non-loopback interface in /sys/class/net and whether it has carrier.
fn carriers() -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/class/net") else { return out };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "lo" {
            continue;
        }
        let up = std::fs::read_to_string(e.path().join("carrier")).is_ok_and(|s| s.trim() == "1");
        out.push((name, up));
    }
    out.sort();
    out
}

/// [`address`] from its two readings: addresses of interfaces that are up
/// (loopback left out), and the links' carrier.
pub fn describe(addrs: &[(String, std::net::IpAddr)], carriers: &[(String, bool)]) -> String {
    // Link-local IPv6 addresses exist without any network: they do not count.
    let usable = |ip: &std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => !v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 != 0xfe80,
    };
    let best =
        addrs.iter().find(|(_, ip)| ip.is_ipv4() && usable(ip)).or_else(|| addrs.iter().find(|(_, ip)| usable(ip)));
    if let Some((name, ip)) = best {
        return format!("online via {name} {ip}");
    }
    let linked: Vec<&str> = carriers.iter().filter(|(_, up)| *up).map(|(n, _)| n.as_str()).collect();
    if linked.is_empty() {
        "no network (cable unplugged?)".to_string()
    } else {
        format!("DHCP… ({})", linked.join(", "))
    }
}

pub fn cpus() -> u32 {
    std::thread::available_parallelism().ok().and_then(|n| u32::try_from(n.get()).ok()).unwrap_or(1)
}

/// Total memory in MiB, from /proc/meminfo (1024 if it cannot be read).
pub fn memory_mib() -> u32 {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| parse_meminfo(&text)).unwrap_or(1024)
}

fn parse_meminfo(text: &str) -> Option<u32> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    u32::try_from(kib / 1024).ok()
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    #[test]
    fn the_network_words_follow_cable_then_dhcp_then_address() {
        let link = |up| vec![("eth0".to_string(), up)];
        assert_eq!(super::describe(&[], &link(false)), "no network (cable unplugged?)");
        assert_eq!(super::describe(&[], &[]), "no network (cable unplugged?)");
        // A link-local IPv6 address comes with the link, not with the network.
        let ll: IpAddr = "fe80::5054:ff:fe12:3456".parse().unwrap();
        assert_eq!(super::describe(&[("eth0".into(), ll)], &link(true)), "DHCP… (eth0)");
        let v4: IpAddr = "10.0.2.15".parse().unwrap();
        let v6: IpAddr = "2001:db8::15".parse().unwrap();
        assert_eq!(
            super::describe(&[("eth0".into(), v6), ("eth0".into(), v4)], &link(true)),
            "online via eth0 10.0.2.15"
        );
        assert_eq!(super::describe(&[("wlan0".into(), v6)], &[]), "online via wlan0 2001:db8::15");
    }

    #[test]
    fn meminfo() {
        assert_eq!(super::parse_meminfo("MemTotal:       24578048 kB\nMemFree: 1 kB\n"), Some(24002));
        assert_eq!(super::parse_meminfo("nothing"), None);
        assert!(super::cpus() >= 1);
    }
}
