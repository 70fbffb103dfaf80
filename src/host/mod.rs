//! The host side of every agent: links, addresses, routes, announcements. Agents talk only to
//! the [`Host`] trait; [`netlink::NetlinkHost`] is the real kernel, [`fake::FakeHost`] an
//! in-memory stand-in for unit tests.

use std::net::IpAddr;
use std::time::{Duration, Instant};

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

    /// The link can carry an address here: up, with carrier; else a problem of this node.
    pub fn check_usable(&self) -> Result<()> {
        if !self.admin_up {
            return Err(crate::error::Error::host_args(format!(
                "interface {} is down on this node",
                self.name
            )));
        }
        if !self.carrier {
            return Err(crate::error::Error::host_args(format!(
                "interface {} has no carrier on this node (cable, switch or peer down)",
                self.name
            )));
        }
        Ok(())
    }
}

/// An interface's name for a message ("interface 7" when it is gone or cannot be listed).
pub fn name_of(host: &dyn Host, index: u32) -> String {
    host.links()
        .ok()
        .and_then(|l| l.into_iter().find(|l| l.index == index))
        .map_or_else(|| format!("interface {index}"), |l| l.name)
}

/// Remove `ip` from every place but `prefix` on `link` (copies elsewhere would answer for it
/// too); whether it is already there.
pub fn only_on(host: &dyn Host, link: &Link, ip: IpAddr, prefix: u8) -> Result<bool> {
    let mut present = false;
    for a in host.addrs()?.into_iter().filter(|a| a.ip == ip) {
        if a.link == link.index && a.prefix == prefix {
            present = true;
        } else {
            tracing::warn!(
                "removing {}/{} from {} before configuring it on {}",
                a.ip,
                a.prefix,
                name_of(host, a.link),
                link.name
            );
            host.del_addr(a.link, a.ip, a.prefix)?;
        }
    }
    Ok(present)
}

/// The kernel lists `ip` on `link`, read back after adding it.
pub fn confirm_on(host: &dyn Host, link: &Link, ip: IpAddr) -> Result<()> {
    if host
        .addrs()?
        .iter()
        .any(|a| a.ip == ip && a.link == link.index)
    {
        return Ok(());
    }
    Err(crate::error::Error::failed(format!(
        "{ip} was added to {} but the kernel does not list it",
        link.name
    )))
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

/// A link's kind and the settings the mesh agents compare (`ip -d link show`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkDetails {
    /// The rtnetlink kind ("vxlan", "bridge", "veth"); None for plain devices.
    pub kind: Option<String>,
    /// The bridge (or bond) this link is a port of.
    pub master: Option<u32>,
    /// IFLA_IFALIAS: agents mark the devices they created with it.
    pub alias: Option<String>,
    /// Set when kind is "vxlan".
    pub vxlan: Option<VxlanConf>,
}

/// The settings of a VXLAN device that decide whether two nodes can talk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanConf {
    pub vni: u32,
    pub port: u16,
    /// The underlay interface (IFLA_VXLAN_LINK).
    pub dev: Option<u32>,
    /// The underlay source address (IFLA_VXLAN_LOCAL / LOCAL6).
    pub local: Option<IpAddr>,
    /// A default remote or multicast group (IFLA_VXLAN_GROUP / GROUP6), if any.
    pub group: Option<IpAddr>,
    pub learning: bool,
}

/// Changes to an existing link; `None` leaves a setting alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkChange {
    pub up: Option<bool>,
    pub mtu: Option<u32>,
    /// Make the link a port of this bridge; `Some(0)` releases it from its bridge.
    pub master: Option<u32>,
    pub alias: Option<String>,
    /// VXLAN learning (the link must be a vxlan device).
    pub learning: Option<bool>,
}

/// One bridge forwarding database entry of a device (`bridge fdb show dev X`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    /// The remote VTEP for VXLAN entries; None for local and bridge entries.
    pub dst: Option<IpAddr>,
}

/// The all-zero MAC: a VXLAN flood (head-end replication) entry.
pub const FLOOD_MAC: [u8; 6] = [0; 6];

/// A name a new link may be created under: one the kernel keeps as given. Agents check their
/// parameters first (with a reason for the admin); this is the last guard before RTM_NEWLINK,
/// where a '%' would make the kernel pick the name (`vx%d` -> `vx0`) and the device untracked.
pub fn creatable(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| matches!(c, '/' | ':' | '%') || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(crate::error::Error::config(format!(
            "refusing to create an interface named {}: the kernel would refuse or rename it",
            crate::error::shown(name)
        )))
    }
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

    /// Every link with its kind, master, alias and VXLAN settings (one dump).
    fn link_details(&self) -> Result<Vec<(Link, LinkDetails)>>;
    /// Create a VXLAN device, down, with the given MTU and MAC address; returns its index.
    fn add_vxlan(&self, name: &str, conf: &VxlanConf, mtu: u32, mac: [u8; 6]) -> Result<u32>;
    /// Create a bridge, down; returns its index.
    fn add_bridge(&self, name: &str) -> Result<u32>;
    fn set_link(&self, index: u32, change: &LinkChange) -> Result<()>;
    /// Delete a link; deleting one that is already gone is not an error.
    fn del_link(&self, index: u32) -> Result<()>;
    /// The forwarding database entries of one device (entries the device itself holds).
    fn fdb(&self, index: u32) -> Result<Vec<FdbEntry>>;
    /// Append `mac -> dst` entries (`bridge fdb append`): several destinations may share a MAC;
    /// appending one that exists is a no-op.
    fn fdb_append(&self, index: u32, mac: [u8; 6], dsts: &[IpAddr]) -> Result<()>;
    /// Remove `mac -> dst` entries, one destination each; missing ones are not an error.
    fn fdb_del(&self, index: u32, mac: [u8; 6], dsts: &[IpAddr]) -> Result<()>;
    /// Resolve host names to addresses (the system resolver: /etc/hosts, DNS), all at once,
    /// giving up at `by`: one result per name, in order. A name without an answer by then is a
    /// Transient error naming it; the caller's deadline is never exceeded.
    fn resolve(&self, names: &[String], by: Instant) -> Vec<Result<Vec<IpAddr>>>;

    // Derived from `links()`, the same for every host.
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
