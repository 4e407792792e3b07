//! DHCPv4 client (RFC 2131, the parts a wired PC needs): DISCOVER → OFFER →
//! REQUEST → ACK, with the broadcast flag set so replies reach us before the
//! interface has an address. Messages are encoded and decoded by `dhcproto`;
//! this module decides what to send and what a reply means.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

/// What the server gave us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub server: Ipv4Addr,
    pub lease: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Offer(Lease),
    Ack(Lease),
    Nak,
}

const PARAMS: &[OptionCode] = &[
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::AddressLeaseTime,
    OptionCode::ServerIdentifier,
];

fn base(xid: u32, mac: &[u8; 6], kind: MessageType) -> Message {
    let mut m = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        mac,
    );
    m.set_flags(Flags::default().set_broadcast());
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ParameterRequestList(PARAMS.to_vec()));
    let mut id = vec![1u8];
    id.extend_from_slice(mac);
    opts.insert(DhcpOption::ClientIdentifier(id));
    opts.insert(DhcpOption::Hostname("circular".into()));
    m
}

fn encode(m: &Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(300);
    // Encoding into a Vec only fails for option values that do not fit,
    // which ours always do; an empty packet is then simply not answered.
    let _ = m.encode(&mut Encoder::new(&mut buf));
    buf
}

pub fn discover(xid: u32, mac: &[u8; 6]) -> Vec<u8> {
    encode(&base(xid, mac, MessageType::Discover))
}

/// REQUEST for an offered address (SELECTING), or, with `renew_from`, a
/// renewal of the address we hold (ciaddr set, no server id: REBINDING form,
/// which any server on the link answers).
pub fn request(xid: u32, mac: &[u8; 6], offer: &Lease, renew: bool) -> Vec<u8> {
    let mut m = base(xid, mac, MessageType::Request);
    if renew {
        m.set_ciaddr(offer.address);
    } else {
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(offer.address));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(offer.server));
    }
    encode(&m)
}

/// Interprets a packet from port 67: `None` if it is not a reply to us, or not
/// one we can use.
///
/// Anyone on the link can send anything, and `dhcproto`'s option decoders assert
/// on option lengths (`debug_assert!(len == 4)` and the like, found by the `dhcp`
/// fuzz target), so a panic while decoding is contained here: the packet is
/// ignored and PID 1 goes on.
pub fn parse_reply(bytes: &[u8], xid: u32, mac: &[u8; 6], from: Ipv4Addr) -> Option<Reply> {
    std::panic::catch_unwind(|| interpret(bytes, xid, mac, from)).ok().flatten()
}

fn interpret(bytes: &[u8], xid: u32, mac: &[u8; 6], from: Ipv4Addr) -> Option<Reply> {
    let m = Message::decode(&mut Decoder::new(bytes)).ok()?;
    // Anyone on the link sees our broadcast xid and can answer. dhcproto's `chaddr()` slices
    // its 16-byte field by the packet's `hlen` and panics above 16, so `hlen` is checked
    // first: an Ethernet reply says 6 (RFC 1700 hardware type 1), anything else is not ours.
    if m.opcode() != Opcode::BootReply || m.xid() != xid || m.hlen() != 6 || m.chaddr().get(..6)? != mac {
        return None;
    }
    let opts = m.opts();
    let kind = opts.msg_type()?;
    if kind == MessageType::Nak {
        return Some(Reply::Nak);
    }
    let netmask = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(m)) => *m,
        _ => default_mask(m.yiaddr()),
    };
    let list = |code| match opts.get(code) {
        Some(DhcpOption::Router(v)) | Some(DhcpOption::DomainNameServer(v)) => v.clone(),
        _ => Vec::new(),
    };
    let server = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => from,
    };
    let lease = match opts.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(s)) => Duration::from_secs(u64::from(*s)),
        _ => Duration::from_secs(3600),
    };
    let l = Lease {
        address: m.yiaddr(),
        netmask,
        routers: list(OptionCode::Router),
        dns: list(OptionCode::DomainNameServer),
        server,
        lease,
    };
    if l.address.is_unspecified() {
        return None;
    }
    match kind {
        MessageType::Offer => Some(Reply::Offer(l)),
        MessageType::Ack => Some(Reply::Ack(l)),
        _ => None,
    }
}

fn default_mask(a: Ipv4Addr) -> Ipv4Addr {
    match a.octets()[0] {
        0..=127 => Ipv4Addr::new(255, 0, 0, 0),
        128..=191 => Ipv4Addr::new(255, 255, 0, 0),
        _ => Ipv4Addr::new(255, 255, 255, 0),
    }
}

/// Prefix length of a netmask (for display).
pub fn prefix_len(mask: Ipv4Addr) -> u32 {
    u32::from(mask).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn server_reply(xid: u32, kind: MessageType) -> Vec<u8> {
        let mut m = Message::new_with_id(
            xid,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 0, 2, 15),
            Ipv4Addr::new(10, 0, 2, 2),
            Ipv4Addr::UNSPECIFIED,
            &MAC,
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        o.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 2, 2)]));
        o.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(10, 0, 2, 3)]));
        o.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 2, 2)));
        o.insert(DhcpOption::AddressLeaseTime(86400));
        encode(&m)
    }

    #[test]
    fn a_reply_with_any_hardware_length_is_answered_without_a_panic() {
        // hlen is one byte from the wire; our xid is broadcast, so anyone can send any value.
        let good = server_reply(7, MessageType::Offer);
        assert!(matches!(parse_reply(&good, 7, &MAC, Ipv4Addr::UNSPECIFIED), Some(Reply::Offer(_))));
        for hlen in 0..=255u8 {
            let mut b = good.clone();
            b[2] = hlen;
            let r = parse_reply(&b, 7, &MAC, Ipv4Addr::UNSPECIFIED);
            assert_eq!(r.is_some(), hlen == 6, "hlen {hlen}: {r:?}");
        }
        // Truncated replies: every prefix of a good one.
        for len in 0..good.len() {
            let _ = parse_reply(&good[..len], 7, &MAC, Ipv4Addr::UNSPECIFIED);
        }
    }

    #[test]
    fn any_option_of_any_length_is_read_without_a_panic() {
        // The fuzz target's finding, as a kind: an option whose length the decoder does
        // not expect (a 1-byte lease time, an empty client FQDN, ...) from anyone on the
        // link. Every code, lengths 0 to 6: the reply is used or ignored, never a panic.
        let good = server_reply(7, MessageType::Offer);
        assert_eq!(good.last(), Some(&255), "the reply ends with the End option");
        for code in 1..=254u8 {
            for len in 0..=6u8 {
                let mut b = good[..good.len() - 1].to_vec();
                b.extend([code, len]);
                b.extend(std::iter::repeat_n(0x41, usize::from(len)));
                b.push(255);
                let _ = parse_reply(&b, 7, &MAC, Ipv4Addr::UNSPECIFIED);
            }
        }
    }

    #[test]
    fn discover_is_a_broadcast_request() {
        let d = discover(7, &MAC);
        let m = Message::decode(&mut Decoder::new(&d)).unwrap();
        assert_eq!(m.opcode(), Opcode::BootRequest);
        assert!(m.flags().broadcast());
        assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(&m.chaddr()[..6], &MAC);
    }

    #[test]
    fn offer_then_request_then_ack() {
        let r = parse_reply(&server_reply(7, MessageType::Offer), 7, &MAC, Ipv4Addr::new(10, 0, 2, 2)).unwrap();
        let Reply::Offer(lease) = r else { panic!("{r:?}") };
        assert_eq!(lease.address, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(lease.routers, [Ipv4Addr::new(10, 0, 2, 2)]);
        assert_eq!(lease.dns, [Ipv4Addr::new(10, 0, 2, 3)]);
        assert_eq!(lease.lease, Duration::from_secs(86400));
        assert_eq!(prefix_len(lease.netmask), 24);
        let req = request(7, &MAC, &lease, false);
        let m = Message::decode(&mut Decoder::new(&req)).unwrap();
        assert_eq!(m.opts().get(OptionCode::RequestedIpAddress), Some(&DhcpOption::RequestedIpAddress(lease.address)));
        assert!(matches!(
            parse_reply(&server_reply(7, MessageType::Ack), 7, &MAC, Ipv4Addr::UNSPECIFIED),
            Some(Reply::Ack(_))
        ));
    }

    #[test]
    fn foreign_replies_are_ignored() {
        assert_eq!(parse_reply(&server_reply(8, MessageType::Offer), 7, &MAC, Ipv4Addr::UNSPECIFIED), None);
        assert_eq!(parse_reply(&[1, 2, 3], 7, &MAC, Ipv4Addr::UNSPECIFIED), None);
        // Our xid, but the offer is for another NIC on the link (its MAC in chaddr).
        let mut other = MAC;
        other[5] ^= 0xff;
        assert_eq!(parse_reply(&server_reply(7, MessageType::Offer), 7, &other, Ipv4Addr::UNSPECIFIED), None);
        assert!(matches!(
            parse_reply(&server_reply(7, MessageType::Offer), 7, &MAC, Ipv4Addr::UNSPECIFIED),
            Some(Reply::Offer(_))
        ));
        assert_eq!(parse_reply(&server_reply(7, MessageType::Nak), 7, &MAC, Ipv4Addr::UNSPECIFIED), Some(Reply::Nak));
    }
}
