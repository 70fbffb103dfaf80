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

use super::{Addr, FdbEntry, Host, Link, LinkChange, LinkDetails, RouteHop, VxlanConf, announce};
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

fn details_from(msg: &netlink_packet_route::link::LinkMessage) -> LinkDetails {
    use netlink_packet_route::link::{InfoData, InfoVxlan, LinkInfo};
    let mut d = LinkDetails::default();
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::Controller(m) => d.master = Some(*m),
            LinkAttribute::IfAlias(a) if !a.is_empty() => d.alias = Some(a.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => d.kind = Some(k.to_string()),
                        LinkInfo::Data(InfoData::Vxlan(attrs)) => {
                            let mut c = VxlanConf {
                                vni: 0,
                                port: 8472,
                                dev: None,
                                local: None,
                                group: None,
                                learning: true,
                            };
                            for a in attrs {
                                match a {
                                    InfoVxlan::Id(v) => c.vni = *v,
                                    InfoVxlan::Port(p) => c.port = *p,
                                    InfoVxlan::Link(i) if *i != 0 => c.dev = Some(*i),
                                    InfoVxlan::Local(ip) => c.local = Some((*ip).into()),
                                    InfoVxlan::Local6(ip) => c.local = Some((*ip).into()),
                                    InfoVxlan::Group(ip) => c.group = Some((*ip).into()),
                                    InfoVxlan::Group6(ip) => c.group = Some((*ip).into()),
                                    InfoVxlan::Learning(l) => c.learning = *l,
                                    _ => {}
                                }
                            }
                            c.local = c.local.filter(|ip| !ip.is_unspecified());
                            c.group = c.group.filter(|ip| !ip.is_unspecified());
                            d.vxlan = Some(c);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    d
}

/// An AF_BRIDGE neighbour message for `mac -> dst` on `index`, as `bridge fdb` sends it.
fn fdb_message(
    index: u32,
    mac: [u8; 6],
    dst: IpAddr,
) -> netlink_packet_route::neighbour::NeighbourMessage {
    use netlink_packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
    };
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    m.attributes
        .push(NeighbourAttribute::Destination(match dst {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
    m
}

/// Send one request and wait for its ACK; an Error payload with a code is the failure.
async fn request_ack(
    mut handle: Handle,
    msg: netlink_packet_route::RouteNetlinkMessage,
    flags: u16,
) -> Result<(), rtnetlink::Error> {
    use futures::StreamExt;
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = flags;
    let mut response = handle.request(req)?;
    while let Some(m) = response.next().await {
        if let NetlinkPayload::Error(e) = m.payload
            && e.code.is_some()
        {
            return Err(rtnetlink::Error::NetlinkError(e));
        }
    }
    Ok(())
}

/// How many fdb requests are in flight at once.
const FDB_WINDOW: usize = 64;

impl NetlinkHost {
    /// Send one fdb request per destination, pipelined; `ok_errno` lists answers that count
    /// as success (ENOENT when deleting what is already gone).
    fn fdb_batch(
        &self,
        what: &str,
        index: u32,
        mac: [u8; 6],
        dsts: &[IpAddr],
        delete: bool,
    ) -> Result<()> {
        use futures::StreamExt;
        use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
        use netlink_packet_route::RouteNetlinkMessage as M;
        let handle = self.handle.clone();
        let reqs = dsts.iter().map(|dst| {
            let msg = fdb_message(index, mac, *dst);
            let (msg, flags) = if delete {
                (M::DelNeighbour(msg), NLM_F_REQUEST | NLM_F_ACK)
            } else {
                (
                    M::NewNeighbour(msg),
                    NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
                )
            };
            let h = handle.clone();
            let dst = *dst;
            async move { (dst, request_ack(h, msg, flags).await) }
        });
        let fut = async {
            let results: Vec<_> = futures::stream::iter(reqs)
                .buffer_unordered(FDB_WINDOW)
                .collect()
                .await;
            Ok::<_, rtnetlink::Error>(results)
        };
        let results = self.run(what, fut)?;
        let mut failed = Vec::new();
        for (dst, r) in results {
            if let Err(e) = r {
                if delete && errno(&e) == Some(libc::ENOENT) {
                    continue;
                }
                failed.push(classify(&format!("{what} {dst}"), &e));
            }
        }
        match failed.len() {
            0 => Ok(()),
            1 => Err(failed.remove(0)),
            n => {
                let first = failed.remove(0);
                Err(Error::new(
                    first.kind,
                    format!("{} (and {} more)", first.message, n - 1),
                ))
            }
        }
    }

    fn index_of(&self, name: &str) -> Result<u32> {
        match self.link_by_name(name)? {
            Some(l) => Ok(l.index),
            None => Err(Error::transient(format!(
                "{name} was created but the kernel does not list it"
            ))),
        }
    }
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

    fn link_details(&self) -> Result<Vec<(Link, LinkDetails)>> {
        let req = self.handle.link().get().execute();
        let msgs: Vec<_> = self.run("listing interfaces", req.try_collect())?;
        Ok(msgs
            .into_iter()
            .map(|m| {
                let d = details_from(&m);
                (link_from(m), d)
            })
            .collect())
    }

    fn add_vxlan(&self, name: &str, conf: &VxlanConf, mtu: u32, mac: [u8; 6]) -> Result<u32> {
        super::creatable(name)?;
        let mut b = rtnetlink::LinkVxlan::new(name, conf.vni)
            .port(conf.port)
            .learning(conf.learning)
            .mtu(mtu)
            .address(mac.to_vec());
        if let Some(dev) = conf.dev {
            b = b.dev(dev);
        }
        match conf.local {
            Some(IpAddr::V4(ip)) => b = b.local(ip),
            Some(IpAddr::V6(ip)) => b = b.local6(ip),
            None => {}
        }
        match conf.group {
            Some(IpAddr::V4(ip)) => b = b.group(ip),
            Some(IpAddr::V6(ip)) => b = b.group6(ip),
            None => {}
        }
        let req = self.handle.link().add(b.build()).execute();
        self.run(&format!("creating VXLAN device {name}"), req)?;
        self.index_of(name)
    }

    fn add_bridge(&self, name: &str) -> Result<u32> {
        super::creatable(name)?;
        let req = self
            .handle
            .link()
            .add(rtnetlink::LinkBridge::new(name).build())
            .execute();
        self.run(&format!("creating bridge {name}"), req)?;
        self.index_of(name)
    }

    fn set_link(&self, index: u32, change: &LinkChange) -> Result<()> {
        use netlink_packet_route::link::InfoKind;
        use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVxlan};
        if let Some(learning) = change.learning {
            let msg = LinkMessageBuilder::<LinkVxlan>::new_with_info_kind(InfoKind::Vxlan)
                .index(index)
                .learning(learning)
                .build();
            let req = self.handle.link().change(msg).execute();
            self.run(&format!("setting learning on interface {index}"), req)?;
        }
        let mut b = LinkUnspec::new_with_index(index);
        let mut any = false;
        if let Some(mtu) = change.mtu {
            b = b.mtu(mtu);
            any = true;
        }
        if let Some(master) = change.master {
            b = b.controller(master);
            any = true;
        }
        if let Some(alias) = &change.alias {
            b = b.alias(alias.clone());
            any = true;
        }
        match change.up {
            Some(true) => {
                b = b.up();
                any = true;
            }
            Some(false) => {
                b = b.down();
                any = true;
            }
            None => {}
        }
        if any {
            let req = self.handle.link().change(b.build()).execute();
            self.run(&format!("changing interface {index}"), req)?;
        }
        Ok(())
    }

    fn del_link(&self, index: u32) -> Result<()> {
        let req = self.handle.link().del(index).execute();
        match self.run(&format!("deleting interface {index}"), req) {
            Err(e) if e.kind == Kind::NotInstalled => Ok(()),
            other => other,
        }
    }

    fn fdb(&self, index: u32) -> Result<Vec<FdbEntry>> {
        use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute};
        let req = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute();
        let msgs: Vec<_> = self.run("listing forwarding entries", req.try_collect())?;
        let mut out = Vec::new();
        // The dump covers every device: keep this one's.
        for m in msgs.into_iter().filter(|m| m.header.ifindex == index) {
            let mut mac = None;
            let mut dst = None;
            for attr in m.attributes {
                match attr {
                    NeighbourAttribute::LinkLayerAddress(a) => mac = <[u8; 6]>::try_from(a).ok(),
                    // AF_BRIDGE dumps carry NDA_DST as raw bytes: decode them here.
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                        dst = Some(ip.into())
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                        dst = Some(ip.into())
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                        dst = match b.len() {
                            4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
                            _ => None,
                        }
                    }
                    _ => {}
                }
            }
            if let Some(mac) = mac {
                out.push(FdbEntry { mac, dst });
            }
        }
        Ok(out)
    }

    fn fdb_append(&self, index: u32, mac: [u8; 6], dsts: &[IpAddr]) -> Result<()> {
        self.fdb_batch("adding the forwarding entry to", index, mac, dsts, false)
    }

    fn fdb_del(&self, index: u32, mac: [u8; 6], dsts: &[IpAddr]) -> Result<()> {
        self.fdb_batch("removing the forwarding entry to", index, mac, dsts, true)
    }

    fn resolve(&self, names: &[String], by: Instant) -> Vec<Result<Vec<IpAddr>>> {
        resolve_by(names, by.min(self.deadline))
    }
}

/// Resolve names through the system resolver (getaddrinfo: /etc/hosts, DNS), all in parallel,
/// giving up at `by`. getaddrinfo blocks for resolv.conf's timeouts (5 s x attempts by default)
/// and cannot be cancelled, so each lookup runs on its own thread and a lookup still running at
/// `by` is abandoned: the thread is detached and ends with the process.
pub fn resolve_by(names: &[String], by: Instant) -> Vec<Result<Vec<IpAddr>>> {
    use std::net::ToSocketAddrs;
    use std::sync::mpsc;
    let started = Instant::now();
    let fail = |name: &str, why: String| {
        Err(Error::transient(format!(
            "cannot resolve the peer {}: {why}",
            crate::error::shown(name)
        )))
    };
    let mut out: Vec<Option<Result<Vec<IpAddr>>>> = vec![None; names.len()];
    let (tx, rx) = mpsc::channel();
    for (i, name) in names.iter().enumerate() {
        let tx = tx.clone();
        let n = name.clone();
        let spawned = std::thread::Builder::new()
            .name("resolve".into())
            .spawn(move || {
                let r = (n.as_str(), 0u16)
                    .to_socket_addrs()
                    .map(|a| a.map(|s| s.ip()).collect::<Vec<_>>());
                // The receiver is gone when the deadline has passed: nobody waits any more.
                let _ = tx.send((i, r));
            });
        if let Err(e) = spawned {
            out[i] = Some(fail(name, format!("cannot start a resolver thread: {e}")));
        }
    }
    drop(tx);
    while out.iter().any(Option::is_none) {
        let left = by.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, r)) => {
                if let (Some(slot), Some(name)) = (out.get_mut(i), names.get(i)) {
                    *slot = Some(r.or_else(|e| fail(name, e.to_string())));
                }
            }
            // The deadline passed (or every thread is gone): the rest are unanswered.
            Err(_) => break,
        }
    }
    let waited = started.elapsed().as_secs_f64();
    names
        .iter()
        .zip(out)
        .map(|(name, r)| {
            r.unwrap_or_else(|| {
                fail(
                    name,
                    format!(
                        "the resolver gave no answer within {waited:.1} s (the action's \
                         deadline); check resolv.conf and the name servers"
                    ),
                )
            })
        })
        .collect()
}
