//! Telling the L2 neighbours where an address now lives. The kernel's `arp_notify` only covers
//! links coming up, not an address added to a link that is already up, so after a move the
//! other hosts would keep the old MAC until their entries age out.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::Link;
use crate::error::{Error, Result};

const ETH_P_ARP: u16 = 0x0806;

/// The 42-byte broadcast ARP request whose sender and target are both `ip` (gratuitous ARP).
pub fn garp_frame(mac: &[u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(mac);
    f[28..32].copy_from_slice(&ip.octets());
    // target MAC stays zero
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// An unsolicited neighbour advertisement (RFC 4861 §7.2.6) for `ip` with the override flag
/// and the target link-layer address option. The kernel fills in the ICMPv6 checksum.
pub fn unsolicited_na(mac: &[u8; 6], ip: Ipv6Addr) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0] = 136; // neighbour advertisement
    m[4] = 0x20; // override, not solicited, not router
    m[8..24].copy_from_slice(&ip.octets());
    m[24] = 2; // target link-layer address option
    m[25] = 1; // length in units of 8 bytes
    m[26..32].copy_from_slice(mac);
    m
}

fn os_err(what: &str) -> Error {
    let e = io::Error::last_os_error();
    let msg = format!("{what}: {e}");
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Error::permission(msg),
        _ => Error::failed(msg),
    }
}

fn socket(domain: i32, ty: i32, proto: i32, what: &str) -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before being wrapped.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(os_err(what));
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One datagram `buf` to the socket address `addr` (a `libc::sockaddr_*`) on a raw socket.
fn send_raw<A>(fd: &OwnedFd, buf: &[u8], addr: &A, what: &str) -> Result<()> {
    // SAFETY: buffer and address are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            0,
            (addr as *const A).cast(),
            std::mem::size_of::<A>() as u32,
        )
    };
    if n < 0 { Err(os_err(what)) } else { Ok(()) }
}

/// Send `count` announcements `interval` apart, never past `deadline`.
pub fn send(
    link: &Link,
    ip: IpAddr,
    count: u32,
    interval: Duration,
    deadline: Instant,
) -> Result<()> {
    let mac: [u8; 6] = link.mac.as_slice().try_into().map_err(|_| {
        Error::failed(format!(
            "{} has no Ethernet address; cannot announce {ip}",
            link.name
        ))
    })?;
    let mut sender: Box<dyn FnMut() -> Result<()>> = match ip {
        IpAddr::V4(v4) => {
            let fd = socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                0,
                "opening a packet socket",
            )?;
            let frame = garp_frame(&mac, v4);
            // SAFETY: zeroed sockaddr_ll is a valid value; fields are set below.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ETH_P_ARP.to_be();
            sll.sll_ifindex = link.index as i32;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
            Box::new(move || send_raw(&fd, &frame, &sll, "sending gratuitous ARP"))
        }
        IpAddr::V6(v6) => {
            let fd = socket(
                libc::AF_INET6,
                libc::SOCK_RAW,
                libc::IPPROTO_ICMPV6,
                "opening an ICMPv6 socket",
            )?;
            // Neighbour discovery messages must carry hop limit 255 or receivers drop them.
            let hops: libc::c_int = 255;
            let ifindex: libc::c_int = link.index as i32;
            for (opt, val) in [
                (libc::IPV6_MULTICAST_HOPS, hops),
                (libc::IPV6_MULTICAST_IF, ifindex),
            ] {
                // SAFETY: setsockopt with a c_int value of the right size.
                let rc = unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        libc::IPPROTO_IPV6,
                        opt,
                        (&val as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as u32,
                    )
                };
                if rc < 0 {
                    return Err(os_err("setting up the ICMPv6 socket"));
                }
            }
            let msg = unsolicited_na(&mac, v6);
            // SAFETY: zeroed sockaddr_in6 is valid; fields set below.
            let mut dst: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            dst.sin6_family = libc::AF_INET6 as u16;
            dst.sin6_addr.s6_addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
            dst.sin6_scope_id = link.index;
            Box::new(move || send_raw(&fd, &msg, &dst, "sending neighbour advertisement"))
        }
    };
    for i in 0..count {
        if i > 0 {
            if Instant::now() + interval >= deadline {
                tracing::warn!("stopped announcing {ip} after {i} of {count}: action deadline");
                break;
            }
            std::thread::sleep(interval);
        }
        sender()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_layout() {
        let f = garp_frame(&[2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[28..32], &[10, 0, 0, 5]);
        assert_eq!(&f[38..42], &[10, 0, 0, 5]);
        assert_eq!(&f[32..38], &[0; 6]);
    }

    #[test]
    fn na_layout() {
        let m = unsolicited_na(&[2, 0, 0, 0, 0, 1], "fd00::5".parse().unwrap());
        assert_eq!(m[0], 136);
        assert_eq!(m[4], 0x20);
        assert_eq!(m[24..26], [2, 1]);
    }
}
