//! Network bring-up: every wired link with carrier gets DHCP, in parallel; the
//! first lease with a router sets the default route and resolv.conf. Anything
//! that fails or times out leaves the appliance offline, which blockfs handles
//! (it boots what is cached).
//!
//! Addresses and routes are set with the classic SIOCSIF*/SIOCADDRT ioctls:
//! IPv4 with one default route is all the appliance needs, and they keep PID 1
//! free of an async netlink stack.

pub mod dhcp;
mod packet;
mod sock;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

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

fn carrier(name: &str) -> bool {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("carrier")).is_ok_and(|s| s.trim() == "1")
}

fn mac(name: &str) -> Option<[u8; 6]> {
    let s = std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("address")).ok()?;
    let v: Vec<u8> = s.trim().split(':').filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
    v.try_into().ok()
}

/// Brings up loopback and every wired link, waits up to `carrier_wait` for
/// carrier, then runs DHCP on the links that have it, until `timeout`.
pub fn bring_up(carrier_wait: Duration, timeout: Duration) -> Vec<Up> {
    if let Err(e) = sock::set_up("lo") {
        crate::warn!("loopback: {e}");
    }
    let links = wired_links();
    if links.is_empty() {
        crate::warn!("no wired network interface found (Wi-Fi is not supported): offline");
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
        with_carrier = links.iter().filter(|l| carrier(l)).cloned().collect();
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
        crate::warn!("no network cable connected ({}): offline", links.join(", "));
        return Vec::new();
    }
    crate::say!("DHCP on {}", with_carrier.join(", "));
    let handles: Vec<_> =
        with_carrier.into_iter().map(|l| std::thread::spawn(move || (l.clone(), lease(&l, timeout)))).collect();
    let mut ups = Vec::new();
    for h in handles {
        match h.join() {
            Ok((_, Ok(up))) => ups.push(up),
            Ok((l, Err(e))) => crate::warn!("{l}: {e}"),
            Err(_) => crate::warn!("a DHCP thread failed"),
        }
    }
    configure(&ups);
    ups
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
    let mut conf = String::from("# written by circular-init from DHCP\n");
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
    for u in ups {
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
