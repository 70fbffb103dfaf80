//! The real host: rtnetlink for links, addresses and routes; raw sockets for announcements.
//! Every call is bounded by the action's deadline.

use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::Handle;

use super::{Addr, Host, Link, RouteHop, announce};
use crate::error::{Error, Kind, Result};

pub struct NetlinkHost {
    rt: tokio::runtime::Runtime,
    handle: Handle,
    deadline: Instant,
}

impl NetlinkHost {
    pub fn new(deadline: Instant) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::transient(format!("cannot start the I/O runtime: {e}")))?;
        let (conn, handle, _) =
            rt.block_on(async { rtnetlink::new_connection() })
                .map_err(|e| {
                    Error::not_installed(format!("cannot open a netlink socket on this host: {e}"))
                })?;
        rt.spawn(conn);
        Ok(NetlinkHost {
            rt,
            handle,
            deadline,
        })
    }

    /// Run one netlink exchange, giving up at the deadline.
    fn run<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, rtnetlink::Error>>,
    ) -> Result<T> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self
            .rt
            .block_on(async { tokio::time::timeout(left, fut).await })
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(what, &e)),
            Err(_) => Err(Error::transient(format!(
                "{what}: no answer from the kernel before the action's deadline"
            ))),
        }
    }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn classify(what: &str, e: &rtnetlink::Error) -> Error {
    let (kind, text) = match errno(e) {
        Some(c) => {
            let text = nix::errno::Errno::from_raw(c).desc();
            let kind = match c {
                libc::EPERM | libc::EACCES => Kind::Permission,
                libc::ENODEV => Kind::NotInstalled,
                libc::EBUSY | libc::EAGAIN | libc::ENOBUFS | libc::EINTR => Kind::Transient,
                _ => Kind::Failed,
            };
            (kind, text.to_string())
        }
        None => (Kind::Failed, e.to_string()),
    };
    let mut err = Error::new(kind, format!("{what}: {text}"));
    if kind == Kind::Permission {
        err = err.context("not permitted (cloudha must run as root or with CAP_NET_ADMIN)");
    }
    err
}

fn link_from(msg: netlink_packet_route::link::LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        carrier: msg.header.flags.contains(LinkFlags::LowerUp),
        mac: Vec::new(),
        mtu: 0,
    };
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Address(a) => link.mac = a,
            LinkAttribute::Mtu(m) => link.mtu = m,
            _ => {}
        }
    }
    link
}

impl Host for NetlinkHost {
    fn links(&self) -> Result<Vec<Link>> {
        let req = self.handle.link().get().execute();
        let msgs: Vec<_> = self.run("listing interfaces", req.try_collect())?;
        Ok(msgs.into_iter().map(link_from).collect())
    }

    fn addrs(&self) -> Result<Vec<Addr>> {
        let req = self.handle.address().get().execute();
        let msgs: Vec<_> = self.run("listing addresses", req.try_collect())?;
        let mut out = Vec::new();
        for m in msgs {
            // IFA_LOCAL is this host's address on point-to-point links; IFA_ADDRESS otherwise.
            let mut local = None;
            let mut address = None;
            for attr in &m.attributes {
                match attr {
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Address(ip) => address = Some(*ip),
                    _ => {}
                }
            }
            if let Some(ip) = local.or(address) {
                out.push(Addr {
                    link: m.header.index,
                    ip,
                    prefix: m.header.prefix_len,
                });
            }
        }
        Ok(out)
    }

    fn route_to(&self, ip: IpAddr) -> Result<Option<RouteHop>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.destination_prefix_length = if ip.is_ipv4() { 32 } else { 128 };
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(ip)));
        let req = self.handle.route().get(msg).execute();
        let answer: Result<Vec<RouteMessage>> = self.run("looking up the route", req.try_collect());
        let msgs = match answer {
            Ok(m) => m,
            // No route at all: the kernel says ENETUNREACH / EHOSTUNREACH.
            Err(e) if e.kind == Kind::Failed => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(m) = msgs.into_iter().next() else {
            return Ok(None);
        };
        let mut hop = RouteHop {
            link: 0,
            gateway: None,
        };
        for attr in m.attributes {
            match attr {
                RouteAttribute::Oif(i) => hop.link = i,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => hop.gateway = Some(g.into()),
                RouteAttribute::Gateway(RouteAddress::Inet6(g)) => hop.gateway = Some(g.into()),
                _ => {}
            }
        }
        Ok((hop.link != 0).then_some(hop))
    }

    fn add_addr(&self, link: u32, ip: IpAddr, prefix: u8) -> Result<()> {
        let mut req = self.handle.address().add(link, ip, prefix);
        if ip.is_ipv6() {
            let m = req.message_mut();
            m.header.flags |= AddressHeaderFlags::Nodad;
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match self.run(&format!("adding {ip}/{prefix}"), req.execute()) {
            Err(e) if e.message.ends_with("File exists") => Ok(()),
            other => other,
        }
    }

    fn del_addr(&self, link: u32, ip: IpAddr, prefix: u8) -> Result<()> {
        // Build the same message the kernel would dump for this address.
        let mut req = self.handle.address().add(link, ip, prefix);
        let msg = req.message_mut().clone();
        let del = self.handle.address().del(msg);
        match self.run(&format!("removing {ip}/{prefix}"), del.execute()) {
            // Already gone (raced with someone else): what stop wants anyway.
            Err(e) if e.kind == Kind::NotInstalled => Ok(()),
            Err(e) if e.message.ends_with("Cannot assign requested address") => Ok(()),
            other => other,
        }
    }

    fn announce(&self, link: &Link, ip: IpAddr, count: u32, interval: Duration) -> Result<()> {
        announce::send(link, ip, count, interval, self.deadline)
    }
}
