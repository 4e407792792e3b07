//! Facts about this machine for the menu: its address, CPUs and memory.

/// "10.0.2.15 on eth0": the first IPv4 address of an interface that is up
/// and not loopback. `None` when there is none (no cable, no DHCP lease yet).
pub fn address() -> Option<String> {
    use nix::net::if_::InterfaceFlags;
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let mut v6 = None;
    for ifa in addrs {
        if !ifa.flags.contains(InterfaceFlags::IFF_UP) || ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK) {
            continue;
        }
        let Some(addr) = ifa.address else { continue };
        if let Some(sin) = addr.as_sockaddr_in() {
            return Some(format!("{} on {}", sin.ip(), ifa.interface_name));
        }
        if let Some(sin6) = addr.as_sockaddr_in6() {
            // Link-local IPv6 addresses exist without any network: skip them.
            if sin6.ip().segments()[0] & 0xffc0 != 0xfe80 && v6.is_none() {
                v6 = Some(format!("{} on {}", sin6.ip(), ifa.interface_name));
            }
        }
    }
    v6
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
    #[test]
    fn meminfo() {
        assert_eq!(super::parse_meminfo("MemTotal:       24578048 kB\nMemFree: 1 kB\n"), Some(24002));
        assert_eq!(super::parse_meminfo("nothing"), None);
        assert!(super::cpus() >= 1);
    }
}
