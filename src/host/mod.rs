//! The host side of every agent: links, addresses, routes, announcements. Agents talk only to
//! the [`Host`] trait; [`netlink::NetlinkHost`] is the real kernel, [`fake::FakeHost`] an
//! in-memory stand-in for unit tests.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::Result;

pub mod announce;
pub mod fake;
pub mod netlink;

/// IFNAMSIZ - 1: the longest interface name the kernel accepts.
pub const MAX_IFNAME: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (IFF_UP).
    pub admin_up: bool,
    /// Carrier present (IFF_LOWER_UP): traffic can actually flow.
    pub carrier: bool,
    pub mac: Vec<u8>,
    pub mtu: u32,
}

impl Link {
    pub fn usable(&self) -> bool {
        self.admin_up && self.carrier
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub link: u32,
    pub ip: IpAddr,
    pub prefix: u8,
}

/// The kernel's answer to "how do I reach this address" (`ip route get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHop {
    pub link: u32,
    /// None when the destination is on-link (directly connected).
    pub gateway: Option<IpAddr>,
}

pub trait Host {
    fn links(&self) -> Result<Vec<Link>>;
    fn addrs(&self) -> Result<Vec<Addr>>;
    /// The route the kernel would use towards `ip`; `None` when there is none.
    fn route_to(&self, ip: IpAddr) -> Result<Option<RouteHop>>;
    /// Add an address; IPv6 addresses are added without duplicate address detection so they
    /// are usable at once (the cluster manager already guarantees a single owner).
    fn add_addr(&self, link: u32, ip: IpAddr, prefix: u8) -> Result<()>;
    /// Remove an address; removing one that is already gone is not an error.
    fn del_addr(&self, link: u32, ip: IpAddr, prefix: u8) -> Result<()>;
    /// Tell the L2 neighbours that `ip` now lives at `link`'s MAC: gratuitous ARP for IPv4,
    /// unsolicited neighbour advertisement for IPv6. Sends `count` times, `interval` apart.
    fn announce(&self, link: &Link, ip: IpAddr, count: u32, interval: Duration) -> Result<()>;

    fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.name == name))
    }
    fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.index == index))
    }
}

/// Does `net/prefix` contain `ip`?
pub fn contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::contains;

    #[test]
    fn containment() {
        let c = |n: &str, p, i: &str| contains(n.parse().unwrap(), p, i.parse().unwrap());
        assert!(c("10.0.0.1", 24, "10.0.0.200"));
        assert!(!c("10.0.0.1", 24, "10.0.1.1"));
        assert!(c("10.0.0.1", 0, "192.168.1.1"));
        assert!(c("fd00::1", 64, "fd00::beef"));
        assert!(!c("fd00::1", 64, "fd01::1"));
        assert!(!c("10.0.0.1", 8, "fd00::1"));
    }
}
