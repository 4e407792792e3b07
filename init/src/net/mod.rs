//! Network bring-up: every wired link with carrier, and every Wi-Fi link that
//! wpa_supplicant has joined to a network ([`wifi`]), gets DHCP, in parallel; the
//! first lease with a router sets the default route and resolv.conf. When
//! nothing answers by boot the appliance starts offline (blockfs boots what is
//! cached) and [`watch`] keeps looking: a cable plugged in later, or a DHCP
//! server that answers later, brings it online without a reboot.
//!
//! Addresses and routes are set with the classic SIOCSIF*/SIOCADDRT ioctls:
//! IPv4 with one default route is all the appliance needs, and they keep PID 1
//! free of an async netlink stack.

pub mod dhcp;
mod packet;
mod sock;
pub mod wifi;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cmdline::FixedIp;
use dhcp::{Lease, Reply};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}: {1}")]
    Sys(String, #[source] std::io::Error),
    #[error("{0}: no DHCP answer")]
    Timeout(String),
    #[error("{0}: the DHCP server refused (NAK)")]
    Nak(String),
}

/// A configured interface.
#[derive(Debug, Clone)]
pub struct Up {
    pub name: String,
    pub lease: Lease,
}

/// Wired links: Ethernet-type, not loopback, not wireless, not virtual.
pub fn wired_links() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/class/net") else { return out };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let dir = e.path();
        let ty = std::fs::read_to_string(dir.join("type")).unwrap_or_default();
        let virt = std::fs::canonicalize(&dir).map(|p| p.starts_with("/sys/devices/virtual")).unwrap_or(true);
        if ty.trim() == "1" && !virt && !dir.join("wireless").exists() && !dir.join("phy80211").exists() {
            out.push(name);
        }
    }
    out.sort();
    out
}

/// Every link DHCP may run on: the wired ones and the wireless ones.
fn all_links() -> Vec<String> {
    let mut v = wired_links();
    v.extend(wifi::wireless_links());
    v
}

/// Ready for DHCP: a cable with carrier, or a Wi-Fi link joined to a network.
fn linked(name: &str) -> bool {
    if wifi::is_wireless(name) {
        wifi::joined(name)
    } else {
        carrier(name)
    }
}

fn carrier(name: &str) -> bool {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("carrier")).is_ok_and(|s| s.trim() == "1")
}

fn mac(name: &str) -> Option<[u8; 6]> {
    let s = std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("address")).ok()?;
    let v: Vec<u8> = s.trim().split(':').filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
    v.try_into().ok()
}

/// Brings up loopback and every link, waits up to `carrier_wait` for carrier
/// (a Wi-Fi link: for wpa_supplicant to join a known network), then runs DHCP
/// on the links that have it, until `timeout`.
pub fn bring_up(carrier_wait: Duration, timeout: Duration, fixed: Option<&FixedIp>) -> Vec<Up> {
    if let Err(e) = sock::set_up("lo") {
        crate::warn!("loopback: {e}");
    }
    let links = all_links();
    if links.is_empty() {
        crate::warn!("no network interface found (no wired port, no Wi-Fi adapter this kernel knows): offline");
        return Vec::new();
    }
    for l in &links {
        if let Err(e) = sock::set_up(l) {
            crate::warn!("{l}: cannot bring it up: {e}");
        }
    }
    let start = Instant::now();
    let mut with_carrier: Vec<String> = Vec::new();
    while start.elapsed() < carrier_wait {
        with_carrier = links.iter().filter(|l| linked(l)).cloned().collect();
        if with_carrier.len() == links.len() {
            break;
        }
        // Keep waiting for the rest only until at least one link is ready
        // and a short grace period has passed.
        if !with_carrier.is_empty() && start.elapsed() > Duration::from_secs(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if with_carrier.is_empty() {
        crate::warn!("no network cable connected and no known Wi-Fi network joined ({}): offline", links.join(", "));
        return Vec::new();
    }
    match fixed {
        Some(f) => apply_fixed(&with_carrier, f),
        None => dhcp_on(with_carrier, timeout),
    }
}

/// `circular.ip=`: the fixed address on the first of these links (with
/// carrier), then the default route and resolv.conf by the same code as a
/// DHCP lease ([`configure`]). The configuration is given as a lease that
/// never needs renewing.
fn apply_fixed(links: &[String], fixed: &FixedIp) -> Vec<Up> {
    let Some(name) = links.first() else { return Vec::new() };
    let lease = Lease {
        address: fixed.address,
        netmask: fixed.netmask(),
        routers: vec![fixed.gateway],
        dns: fixed.dns.clone(),
        server: Ipv4Addr::UNSPECIFIED,
        lease: Duration::MAX,
    };
    crate::say!("{name}: fixed address {}/{} (circular.ip=)", fixed.address, fixed.prefix);
    if let Err(e) = sock::set_address(name, lease.address, lease.netmask) {
        crate::warn!("{name}: cannot set the fixed address {}: {e}", fixed.address);
        return Vec::new();
    }
    let ups = vec![Up { name: name.clone(), lease }];
    configure(&ups);
    ups
}

/// DHCP on these links in parallel, until `timeout`; the leases obtained are
/// configured (addresses, one default route, resolv.conf).
fn dhcp_on(links: Vec<String>, timeout: Duration) -> Vec<Up> {
    crate::say!("DHCP on {}", links.join(", "));
    let handles: Vec<_> =
        links.into_iter().map(|l| std::thread::spawn(move || (l.clone(), lease(&l, timeout)))).collect();
    let mut ups = Vec::new();
    for h in handles {
        match h.join() {
            Ok((_, Ok(up))) => ups.push(up),
            Ok((l, Err(e))) => crate::warn!("{l}: {e}"),
            Err(_) => crate::warn!("a DHCP thread failed"),
        }
    }
    if !ups.is_empty() {
        configure(&ups);
    }
    ups
}

/// How often [`watch`] reads the links' carrier: a cable plugged in is noticed
/// within this time, at the cost of one small sysfs read per link.
pub const CARRIER_POLL: Duration = Duration::from_secs(1);
/// How long [`watch`] waits before asking DHCP again on a link whose carrier
/// stayed up but got no lease (the DHCP server may come later than the cable).
pub const DHCP_RETRY: Duration = Duration::from_secs(30);

/// Which links to ask DHCP on now, from one reading of the carriers: a link
/// whose carrier has just come up (a cable plugged in, a switch port that
/// woke up), or one that has carrier and was last asked [`DHCP_RETRY`] ago.
/// A link that loses carrier is forgotten, so plugging it in again asks at once.
#[derive(Debug, Default)]
pub struct Watch {
    asked: std::collections::HashMap<String, Instant>,
}

impl Watch {
    /// `carriers`: every wired link and whether it has carrier now.
    pub fn due(&mut self, carriers: &[(String, bool)], now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        for (link, up) in carriers {
            if !up {
                self.asked.remove(link);
                continue;
            }
            let due = self.asked.get(link).is_none_or(|t| now.duration_since(*t) >= DHCP_RETRY);
            if due {
                self.asked.insert(link.clone(), now);
                out.push(link.clone());
            }
        }
        out
    }
}

/// Runs until a lease arrives: reads every link's carrier (Wi-Fi: joined) each
/// [`CARRIER_POLL`] (links that appear later, a USB adapter, are brought up
/// too) and asks DHCP where [`Watch::due`] says. The leases are configured,
/// renewed from then on, and returned. For PID 1's network thread, after
/// [`bring_up`] found nothing at boot.
pub fn watch(timeout: Duration, fixed: Option<&FixedIp>) -> Vec<Up> {
    let mut watch = Watch::default();
    let mut brought_up: Vec<String> = Vec::new();
    loop {
        let links = all_links();
        for l in &links {
            if brought_up.contains(l) {
                continue;
            }
            if let Err(e) = sock::set_up(l) {
                crate::info!("{l}: cannot bring it up yet: {e}");
                continue;
            }
            brought_up.push(l.clone());
        }
        let carriers: Vec<(String, bool)> = links.iter().map(|l| (l.clone(), linked(l))).collect();
        let due = watch.due(&carriers, Instant::now());
        if !due.is_empty() {
            crate::say!("network: carrier on {}", due.join(", "));
            let ups = match fixed {
                Some(f) => apply_fixed(&due, f),
                None => dhcp_on(due, timeout),
            };
            if !ups.is_empty() {
                if fixed.is_none() {
                    keep_leases(ups.clone());
                }
                return ups;
            }
        }
        std::thread::sleep(CARRIER_POLL);
    }
}

/// One interface: DHCP, then address and netmask. Routes and DNS are set by
/// `configure` once all links are done, so that only one default route exists.
fn lease(name: &str, timeout: Duration) -> Result<Up, NetError> {
    let sys = |what: &str| {
        let what = format!("{name}: {what}");
        move |e: std::io::Error| NetError::Sys(what, e)
    };
    let mac = mac(name).ok_or_else(|| NetError::Sys(name.into(), std::io::Error::other("no MAC address")))?;
    let sock = sock::PacketSocket::open(name).map_err(sys("packet socket"))?;
    let deadline = Instant::now() + timeout;
    let lease = exchange(&sock, name, &mac, deadline, None)?;
    sock::set_address(name, lease.address, lease.netmask).map_err(sys("set address"))?;
    Ok(Up { name: name.into(), lease })
}

/// DISCOVER/OFFER/REQUEST/ACK (or just REQUEST/ACK for a renewal), with
/// retransmission at 1, 2, 4, 4… seconds.
fn exchange(
    sock: &sock::PacketSocket,
    name: &str,
    mac: &[u8; 6],
    deadline: Instant,
    renew: Option<&Lease>,
) -> Result<Lease, NetError> {
    let sys = |e: std::io::Error| NetError::Sys(format!("{name}: DHCP"), e);
    let xid = xid(mac);
    let mut offer: Option<Lease> = renew.cloned();
    let mut wait = Duration::from_secs(1);
    while Instant::now() < deadline {
        let msg = match &offer {
            None => dhcp::discover(xid, mac),
            Some(o) => dhcp::request(xid, mac, o, renew.is_some()),
        };
        let pkt =
            packet::build(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, packet::CLIENT_PORT, packet::SERVER_PORT, &msg);
        sock.send_broadcast(&pkt).map_err(sys)?;
        let until = (Instant::now() + wait).min(deadline);
        while let Some(buf) = sock.recv_until(until).map_err(sys)? {
            let Some((from, payload)) = packet::parse(&buf, packet::CLIENT_PORT) else { continue };
            match dhcp::parse_reply(payload, xid, mac, from) {
                Some(Reply::Offer(l)) if offer.is_none() => {
                    crate::info!("{name}: offer {} from {}", l.address, l.server);
                    offer = Some(l);
                    wait = Duration::from_secs(1);
                    break;
                }
                Some(Reply::Ack(l)) if offer.is_some() => return Ok(l),
                Some(Reply::Nak) if offer.is_some() => return Err(NetError::Nak(name.into())),
                _ => {}
            }
        }
        if Instant::now() >= until {
            wait = (wait * 2).min(Duration::from_secs(4));
        }
    }
    Err(NetError::Timeout(name.into()))
}

fn xid(mac: &[u8; 6]) -> u32 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]) ^ t
}

/// Default route via the first lease that has a router, and resolv.conf from
/// every lease's DNS servers.
fn configure(ups: &[Up]) {
    if let Some(up) = ups.iter().find(|u| !u.lease.routers.is_empty()) {
        let gw = up.lease.routers[0];
        if let Err(e) = sock::add_default_route(&up.name, gw) {
            crate::warn!("{}: default route via {gw}: {e}", up.name);
        }
    }
    let mut conf = String::from("# written by circular-init (DHCP, or circular.ip=)\n");
    let mut seen = Vec::new();
    for d in ups.iter().flat_map(|u| u.lease.dns.iter()) {
        if !seen.contains(d) {
            conf.push_str(&format!("nameserver {d}\n"));
            seen.push(*d);
        }
    }
    if let Err(e) = std::fs::write("/etc/resolv.conf", conf) {
        crate::warn!("/etc/resolv.conf: {e}");
    }
    for u in ups.iter().filter(|u| u.lease.lease != Duration::MAX) {
        crate::say!(
            "{}: {}/{} router {} dns {} (lease {} s)",
            u.name,
            u.lease.address,
            dhcp::prefix_len(u.lease.netmask),
            u.lease.routers.first().map_or("none".into(), |r| r.to_string()),
            u.lease.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","),
            u.lease.lease.as_secs()
        );
    }
}

/// Keeps the leases alive: renews each at half its lifetime. Runs in its own
/// thread for the appliance's lifetime; a failed renewal keeps the address
/// (the server usually still has it) and tries again later.
pub fn keep_leases(ups: Vec<Up>) {
    for up in ups {
        std::thread::spawn(move || {
            let mut lease = up.lease.clone();
            loop {
                std::thread::sleep((lease.lease / 2).max(Duration::from_secs(30)));
                let Some(mac) = mac(&up.name) else { return };
                let result = sock::PacketSocket::open(&up.name)
                    .map_err(|e| NetError::Sys(up.name.clone(), e))
                    .and_then(|s| exchange(&s, &up.name, &mac, Instant::now() + Duration::from_secs(20), Some(&lease)));
                match result {
                    Ok(l) => {
                        crate::info!("{}: lease renewed ({} s)", up.name, l.lease.as_secs());
                        if l.address != lease.address {
                            let _ = sock::set_address(&up.name, l.address, l.netmask);
                        }
                        lease = l;
                    }
                    Err(e) => crate::info!("{}: renewal failed: {e}", up.name),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(v: &[(&str, bool)]) -> Vec<(String, bool)> {
        v.iter().map(|(l, c)| (l.to_string(), *c)).collect()
    }

    #[test]
    fn a_cable_plugged_in_later_is_asked_at_once_and_then_only_every_retry() {
        let mut w = Watch::default();
        let t0 = Instant::now();
        // Unplugged: nothing to ask.
        assert!(w.due(&links(&[("eth0", false), ("eth1", false)]), t0).is_empty());
        // Plugged in: ask at once, on that link only.
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(w.due(&links(&[("eth0", true), ("eth1", false)]), t1), ["eth0"]);
        // Still up, no lease yet: not again each poll, only after DHCP_RETRY.
        assert!(w.due(&links(&[("eth0", true)]), t1 + CARRIER_POLL).is_empty());
        assert!(w.due(&links(&[("eth0", true)]), t1 + DHCP_RETRY - CARRIER_POLL).is_empty());
        assert_eq!(w.due(&links(&[("eth0", true)]), t1 + DHCP_RETRY), ["eth0"]);
        // Unplugged and plugged again: asked at once, without waiting for the retry.
        let t2 = t1 + DHCP_RETRY + Duration::from_secs(2);
        assert!(w.due(&links(&[("eth0", false)]), t2).is_empty());
        assert_eq!(w.due(&links(&[("eth0", true), ("eth1", true)]), t2 + CARRIER_POLL), ["eth0", "eth1"]);
    }
}
