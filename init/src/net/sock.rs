//! The few raw syscalls networking needs: an AF_PACKET socket bound to one
//! interface for DHCP, and SIOCSIFFLAGS/SIOCSIFADDR/SIOCSIFNETMASK/SIOCADDRT
//! ioctls to configure IPv4.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn ifindex(name: &str) -> io::Result<i32> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))?;
    s.trim().parse().map_err(|_| io::Error::other("bad ifindex"))
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    let b = name.as_bytes();
    if b.len() >= r.ifr_name.len() {
        return Err(io::Error::other("interface name too long"));
    }
    for (d, s) in r.ifr_name.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(r)
}

fn inet_sock() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let fd = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr_in(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(a).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes; the kernel reads
    // the family field to interpret the rest.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

pub fn set_up(name: &str) -> io::Result<()> {
    let s = inet_sock()?;
    let mut r = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write an ifreq we own.
    unsafe {
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut r))?;
        r.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &r))?;
    }
    Ok(())
}

pub fn set_address(name: &str, addr: Ipv4Addr, mask: Ipv4Addr) -> io::Result<()> {
    let s = inet_sock()?;
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_addr = sockaddr_in(addr);
    // SAFETY: the ioctls read an ifreq we own, with an AF_INET address.
    unsafe { check(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFADDR, &r))? };
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_netmask = sockaddr_in(mask);
    // SAFETY: as above.
    unsafe { check(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFNETMASK, &r))? };
    Ok(())
}

/// `struct rtentry` from <linux/route.h> (glibc's libc crate lacks it).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

pub fn add_default_route(name: &str, gw: Ipv4Addr) -> io::Result<()> {
    let s = inet_sock()?;
    let mut dev = std::ffi::CString::new(name).map_err(|_| io::Error::other("bad name"))?.into_bytes_with_nul();
    let rt = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr_in(Ipv4Addr::UNSPECIFIED),
        rt_gateway: sockaddr_in(gw),
        rt_genmask: sockaddr_in(Ipv4Addr::UNSPECIFIED),
        rt_flags: libc::RTF_UP | libc::RTF_GATEWAY,
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: dev.as_mut_ptr().cast(),
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    // SAFETY: SIOCADDRT reads an rtentry; rt_dev points to `dev`, which
    // outlives the call.
    match unsafe { check(libc::ioctl(s.as_raw_fd(), libc::SIOCADDRT, &rt)) } {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// AF_PACKET/SOCK_DGRAM socket for IPv4 frames on one interface: the kernel
/// adds and strips the Ethernet header, we handle IP and UDP.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSocket {
    pub fn open(name: &str) -> io::Result<PacketSocket> {
        let ifindex = ifindex(name)?;
        let proto = (libc::ETH_P_IP as u16).to_be();
        // SAFETY: plain socket(2) call; the fd is owned right away.
        let fd =
            check(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, i32::from(proto)) })?;
        // SAFETY: fd is fresh and ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let sll = Self::addr(ifindex, [0; 6], 0);
        // SAFETY: bind reads a sockaddr_ll of the size we pass.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        })?;
        Ok(PacketSocket { fd, ifindex })
    }

    fn addr(ifindex: i32, mac: [u8; 6], halen: u8) -> libc::sockaddr_ll {
        let mut a = [0u8; 8];
        a[..6].copy_from_slice(&mac);
        libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: (libc::ETH_P_IP as u16).to_be(),
            sll_ifindex: ifindex,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: halen,
            sll_addr: a,
        }
    }

    pub fn send_broadcast(&self, pkt: &[u8]) -> io::Result<()> {
        let to = Self::addr(self.ifindex, [0xff; 6], 6);
        // SAFETY: sendto reads `pkt` and a sockaddr_ll of the size we pass.
        check(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) as libc::c_int
        })?;
        Ok(())
    }

    /// Next packet, or `None` once `until` has passed.
    pub fn recv_until(&self, until: Instant) -> io::Result<Option<Vec<u8>>> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: poll on one pollfd we own.
            let n = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                continue;
            }
            let mut buf = vec![0u8; 2048];
            // SAFETY: recv writes at most buf.len() bytes into buf.
            let k = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if k < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            buf.truncate(k as usize);
            return Ok(Some(buf));
        }
    }
}
