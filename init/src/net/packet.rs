//! IPv4 + UDP framing for DHCP over a packet socket. Before a lease the
//! interface has no address, so the client builds the IP and UDP headers
//! itself (as udhcpc and dhcpcd do) and reads replies before the IP stack
//! would drop them.

use std::net::Ipv4Addr;

pub const CLIENT_PORT: u16 = 68;
pub const SERVER_PORT: u16 = 67;

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An IPv4 packet carrying one UDP datagram.
pub fn build(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0x10]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let ck = fold(sum16(&p[..20], 0));
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    // UDP checksum over the pseudo-header; 0 would also be legal on IPv4.
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let mut ck = fold(sum16(&p[20..], sum16(&pseudo, 0)));
    if ck == 0 {
        ck = 0xffff;
    }
    p[26..28].copy_from_slice(&ck.to_be_bytes());
    p
}

/// The UDP payload of an IPv4 packet to `dport`, with the sender's address.
/// Anything else (other protocols, fragments, bad lengths, an IPv4 header
/// whose checksum does not match) is `None`.
///
/// The UDP checksum is not checked: a packet socket sees a reply from a local
/// DHCP server (a libvirt or tap network with checksum offload) before its UDP
/// checksum is filled in, which is why dhclient refused such leases; the
/// Ethernet frame check already covers the wire. The IPv4 header checksum is
/// always computed by the sender's kernel, so a wrong one is a damaged packet.
pub fn parse(pkt: &[u8], dport: u16) -> Option<(Ipv4Addr, &[u8])> {
    if pkt.len() < 28 || pkt[0] >> 4 != 4 || pkt[9] != 17 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    let frag = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff;
    if ihl < 20 || total > pkt.len() || total < ihl + 8 || frag != 0 {
        return None;
    }
    // A correct header, its checksum included, sums to 0xffff.
    if fold(sum16(&pkt[..ihl], 0)) != 0 {
        return None;
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let udp = &pkt[ihl..total];
    if u16::from_be_bytes([udp[2], udp[3]]) != dport {
        return None;
    }
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if ulen < 8 || ulen > udp.len() {
        return None;
    }
    Some((src, &udp[8..ulen]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_checksum() {
        let p = build(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, CLIENT_PORT, SERVER_PORT, b"hello");
        assert_eq!(p.len(), 33);
        // a correct IPv4 header sums to 0xffff
        assert_eq!(fold(sum16(&p[..20], 0)), 0);
        let (src, payload) = parse(&p, SERVER_PORT).unwrap();
        assert_eq!(src, Ipv4Addr::UNSPECIFIED);
        assert_eq!(payload, b"hello");
        assert!(parse(&p, CLIENT_PORT).is_none());
        assert!(parse(&p[..20], SERVER_PORT).is_none());
    }

    #[test]
    fn a_reply_with_a_bad_ip_header_checksum_is_dropped() {
        let p = build(Ipv4Addr::new(10, 0, 2, 2), Ipv4Addr::BROADCAST, SERVER_PORT, CLIENT_PORT, b"offer");
        assert!(parse(&p, CLIENT_PORT).is_some());
        // One bit flipped in the source address: the header no longer sums right.
        let mut damaged = p.clone();
        damaged[13] ^= 0x01;
        assert!(parse(&damaged, CLIENT_PORT).is_none(), "a damaged header must not give a lease's server");
        // The checksum field itself damaged.
        let mut damaged = p;
        damaged[11] ^= 0x80;
        assert!(parse(&damaged, CLIENT_PORT).is_none());
    }
}
