//! What the parameters mean on this host: underlay device and source, flood destinations,
//! MTU and overlay address (`Plan`), and how an existing device or flood list differs from it.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Instant;

use super::VxlanFdb;
use super::config::Peer;
use super::corosync::corosync_peers;
use crate::agents::Ctx;
use crate::agents::checks::pick_link;
use crate::error::{Error, Result, shown};
use crate::host::{FLOOD_MAC, Host, Link, VxlanConf, contains};

/// VXLAN encapsulation overhead: outer IP + UDP + VXLAN + inner Ethernet.
pub(super) fn overhead(ip: IpAddr) -> u32 {
    if ip.is_ipv4() { 50 } else { 70 }
}

/// What the parameters mean on this host.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) dev: Link,
    pub(super) local: IpAddr,
    /// The flood destinations: every peer but this node, in the given order.
    pub(super) peers: Vec<IpAddr>,
    /// Entries of the list that are this node.
    pub(super) dropped: Vec<IpAddr>,
    /// The MTU the device gets: the mtu parameter, else `room`.
    pub(super) mtu: u32,
    /// The largest MTU the underlay carries after the VXLAN overhead.
    pub(super) room: u32,
    pub(super) address: Option<(IpAddr, u8)>,
}

/// When name resolution gives up: a quarter of the time left stays for the netlink steps,
/// the rollback and the answer.
fn resolve_by(deadline: Instant) -> Instant {
    let now = Instant::now();
    now + deadline.saturating_duration_since(now).mul_f64(0.75)
}

/// What differs between an existing device and the wanted one (learning and MTU are adjusted
/// in place, so they are not listed).
pub(super) fn differences(
    have: &VxlanConf,
    want: &VxlanConf,
    name: &dyn Fn(u32) -> String,
) -> Vec<String> {
    let mut d = Vec::new();
    if have.vni != want.vni {
        d.push(format!("vni {} (wanted {})", have.vni, want.vni));
    }
    if have.port != want.port {
        d.push(format!("dstport {} (wanted {})", have.port, want.port));
    }
    // An unset dev or local on an existing device is fine (the kernel routes); another one is not.
    if have.dev.is_some() && have.dev != want.dev {
        let show = |i: Option<u32>| i.map(name).unwrap_or_else(|| "none".into());
        d.push(format!(
            "dev {} (wanted {})",
            show(have.dev),
            show(want.dev)
        ));
    }
    if have.local.is_some() && have.local != want.local {
        let show = |i: Option<IpAddr>| i.map(|i| i.to_string()).unwrap_or_else(|| "none".into());
        d.push(format!(
            "local {} (wanted {})",
            show(have.local),
            show(want.local)
        ));
    }
    if let Some(g) = have.group {
        d.push(format!("remote/group {g} (the mesh uses neither)"));
    }
    d
}

/// The flood destinations the kernel has, and what to add and remove to reach `desired`.
pub(super) struct Drift {
    pub(super) missing: Vec<IpAddr>,
    pub(super) stale: Vec<IpAddr>,
}

pub(super) fn drift(host: &dyn Host, index: u32, desired: &[IpAddr]) -> Result<Drift> {
    let have: Vec<IpAddr> = host
        .fdb(index)?
        .into_iter()
        .filter(|e| e.mac == FLOOD_MAC)
        .filter_map(|e| e.dst)
        .collect();
    let have_set: HashSet<IpAddr> = have.iter().copied().collect();
    let want_set: HashSet<IpAddr> = desired.iter().copied().collect();
    let missing = desired
        .iter()
        .filter(|ip| !have_set.contains(ip))
        .copied()
        .collect();
    let mut seen = HashSet::new();
    let stale = have
        .into_iter()
        .filter(|ip| !want_set.contains(ip) && seen.insert(*ip))
        .collect();
    Ok(Drift { missing, stale })
}

pub(super) fn list(ips: &[IpAddr]) -> String {
    const SHOWN: usize = 8;
    let mut s: Vec<String> = ips.iter().take(SHOWN).map(|i| i.to_string()).collect();
    if ips.len() > SHOWN {
        s.push(format!("and {} more", ips.len() - SHOWN));
    }
    s.join(", ")
}

impl Plan {
    /// Work out device, source, destinations, MTU and address on this host. Host names are
    /// resolved together, within the action's deadline.
    pub(super) fn new(vx: &VxlanFdb, cx: &Ctx) -> Result<Plan> {
        let host = cx.host;
        let mut words = vx.peers.clone();
        if vx.corosync {
            let mut c = corosync_peers(&cx.paths.corosync_conf)?;
            c.append(&mut words);
            words = c;
        }
        let v4 = family_v4(vx, &words);
        let names: Vec<String> = words
            .iter()
            .filter_map(|w| match w {
                Peer::Name(n) => Some(n.clone()),
                Peer::Addr(_) => None,
            })
            .collect();
        let mut resolved = names
            .clone()
            .into_iter()
            .zip(host.resolve(&names, resolve_by(cx.deadline)))
            .collect::<std::collections::HashMap<_, _>>();
        let mut peers = Vec::new();
        for w in &words {
            let ip = match w {
                Peer::Addr(ip) => *ip,
                Peer::Name(n) => {
                    let all = resolved.remove(n).unwrap_or_else(|| {
                        Err(Error::transient(format!("{} was not resolved", shown(n))))
                    })?;
                    all.iter()
                        .copied()
                        .find(|ip| ip.is_ipv4() == v4)
                        .ok_or_else(|| {
                            Error::host_args(format!(
                                "peer {} has no IPv{} address on this node's resolver \
                                 (found: {})",
                                shown(n),
                                if v4 { 4 } else { 6 },
                                list(&all)
                            ))
                        })?
                }
            };
            if ip.is_ipv4() != v4 {
                return Err(Error::host_args(format!(
                    "peer {ip} is not in the underlay's address family (IPv{})",
                    if v4 { 4 } else { 6 }
                )));
            }
            if !peers.contains(&ip) {
                peers.push(ip);
            }
        }
        let addrs = host.addrs()?;
        let own: HashSet<IpAddr> = addrs.iter().map(|a| a.ip).collect();
        let (dropped, peers): (Vec<IpAddr>, Vec<IpAddr>) = peers
            .into_iter()
            .partition(|ip| own.contains(ip) || Some(*ip) == vx.local);
        if let Some(l) = vx.local
            && !own.contains(&l)
        {
            return Err(Error::host_args(format!(
                "local={l} is not an address of this node"
            )));
        }
        let missing = |name: &str| {
            Error::not_installed(format!("dev={name}: no such interface on this node"))
        };
        let dev = pick_link(host, vx.dev.as_deref(), missing, || match peers.first() {
            Some(p) => match host.route_to(*p)? {
                Some(hop) => Ok(hop.link),
                None => Err(Error::host_args(format!(
                    "this node has no route to the peer {p}; set dev, or fix the \
                     underlay routing"
                ))),
            },
            None => match vx.local.and_then(|l| addrs.iter().find(|a| a.ip == l)) {
                Some(a) => Ok(a.link),
                None => Err(Error::host_args(
                    "no peer other than this node is listed, so the underlay \
                     interface cannot be found from a route; set dev",
                )),
            },
        })?;
        let local = match vx.local {
            Some(l) => l,
            None => {
                let candidates = addrs.iter().filter(|a| {
                    a.link == dev.index
                        && a.ip.is_ipv4() == v4
                        && !matches!(a.ip, IpAddr::V6(v6) if v6.is_unicast_link_local())
                });
                let first = peers.first().copied();
                candidates
                    .max_by_key(|a| first.is_some_and(|p| contains(a.ip, a.prefix, p)))
                    .map(|a| a.ip)
                    .ok_or_else(|| {
                        Error::host_args(format!(
                            "{} has no IPv{} address to use as the underlay source; set local",
                            dev.name,
                            if v4 { 4 } else { 6 }
                        ))
                    })?
            }
        };
        let room = dev.mtu.saturating_sub(overhead(local));
        let mtu = match vx.mtu {
            Some(m) => m,
            None if room < 68 => {
                return Err(Error::host_args(format!(
                    "{} has mtu {}: too small to carry VXLAN (overhead {})",
                    dev.name,
                    dev.mtu,
                    overhead(local)
                )));
            }
            None => room,
        };
        let address = my_address(vx, local, &dropped)?;
        Ok(Plan {
            dev,
            local,
            peers,
            dropped,
            mtu,
            room,
            address,
        })
    }

    /// The device settings this plan asks for.
    pub(super) fn want(&self, vx: &VxlanFdb) -> VxlanConf {
        VxlanConf {
            vni: vx.vni,
            port: vx.port,
            dev: Some(self.dev.index),
            local: Some(self.local),
            group: None,
            learning: vx.learning,
        }
    }
}

/// The underlay family: local's, else the first literal peer's, else IPv4.
fn family_v4(vx: &VxlanFdb, peers: &[Peer]) -> bool {
    vx.local
        .map(|l| l.is_ipv4())
        .or_else(|| {
            peers.iter().find_map(|p| match p {
                Peer::Addr(ip) => Some(ip.is_ipv4()),
                Peer::Name(_) => None,
            })
        })
        .unwrap_or(true)
}

/// This node's overlay address: the single one, or the entry keyed by one of this node's
/// underlay addresses or its host name.
fn my_address(vx: &VxlanFdb, local: IpAddr, own_peers: &[IpAddr]) -> Result<Option<(IpAddr, u8)>> {
    match vx.address.as_slice() {
        [] => Ok(None),
        [a] if a.key.is_none() => Ok(Some((a.ip, a.prefix))),
        all => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            let short = host.split('.').next().unwrap_or_default().to_string();
            let mine = |k: &str| match k.parse::<IpAddr>() {
                Ok(ip) => ip == local || own_peers.contains(&ip),
                Err(_) => k == host || k == short,
            };
            match all.iter().find(|a| a.key.as_deref().is_some_and(mine)) {
                Some(a) => Ok(Some((a.ip, a.prefix))),
                None => Err(Error::host_args(format!(
                    "address lists no entry for this node (underlay {local}, host name \
                     {})",
                    shown(&host)
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

    #[test]
    fn an_mtu_the_underlay_cannot_carry_is_refused_and_nothing_is_made() {
        let host = node1(); // eth0 mtu 1500: 1450 fits over IPv4
        let a = mesh(&[("mtu", "1451"), ("bridge", "br-ov")]);
        let e = with(&host, false, |cx| a.start(cx)).unwrap_err();
        assert_eq!(e.kind, Kind::HostArgs);
        assert!(e.message.contains("at most 1450 fits"), "{}", e.message);
        assert!(host.link_by_name("vxlan10").unwrap().is_none());
        assert!(host.link_by_name("br-ov").unwrap().is_none());
        let ok = mesh(&[("mtu", "1450")]);
        with(&host, false, |cx| ok.start(cx).unwrap());
        with(&host, false, |cx| ok.start(cx).unwrap());
    }

    #[test]
    fn per_node_address_and_ipv6_underlay() {
        let host = FakeHost::default().with_link(2, "eth0", Some(("fd00::2", 64)));
        let a = agent(&[
            ("vni", "20"),
            ("peers", "fd00::1 fd00::2 fd00::3"),
            (
                "address",
                "fd00::1=10.99.0.1/24 fd00::2=10.99.0.2/24 fd00::3=10.99.0.3/24",
            ),
        ])
        .unwrap();
        with(&host, false, |cx| a.start(cx).unwrap());
        let (link, _) = vxlan(&host, "vxlan20");
        assert_eq!(link.mtu, 1430, "1500 - 70 over IPv6");
        assert!(host.has(link.index, "10.99.0.2"));
        assert_eq!(host.flood(link.index), ips(&["fd00::1", "fd00::3"]));
        let other = agent(&[
            ("vni", "20"),
            ("ifname", "mesh0"),
            ("peers", "fd00::1 fd00::2"),
            ("address", "fd00::1=10.99.0.1/24"),
        ])
        .unwrap();
        let e = with(&host, false, |cx| other.start(cx)).unwrap_err();
        assert_eq!(e.kind, Kind::HostArgs);
        assert!(
            e.message.contains("no entry for this node"),
            "{}",
            e.message
        );
        assert!(host.link_by_name("mesh0").unwrap().is_none());
    }

    #[test]
    fn a_resolver_failure_degrades_the_monitor_and_changes_nothing() {
        let host = node1();
        host.names
            .borrow_mut()
            .insert("n2".into(), ips(&["192.168.77.2"]));
        let a = agent(&[("vni", "10"), ("peers", "192.168.77.1 n2 192.168.77.3")]).unwrap();
        with(&host, false, |cx| a.start(cx).unwrap());
        let index = vxlan(&host, "vxlan10").0.index;
        host.names.borrow_mut().clear();
        let before = host.ops.borrow().len();
        for probe in [false, true] {
            match with(&host, probe, |cx| a.monitor(cx)).unwrap() {
                Health::Degraded(why) => assert!(why.contains("'n2'"), "{why}"),
                other => panic!("probe={probe}: {other:?}"),
            }
        }
        assert_eq!(host.ops.borrow().len(), before, "nothing changed");
        assert_eq!(
            host.flood(index),
            ips(&["192.168.77.2", "192.168.77.3"]),
            "the unresolved peer's entry is kept"
        );
        // start fails (1) naming the peer, and stop still works.
        let e = with(&host, false, |cx| a.start(cx)).unwrap_err();
        assert_eq!(e.kind, Kind::Transient);
        assert!(e.message.contains("'n2'"), "{}", e.message);
        with(&host, false, |cx| a.stop(cx).unwrap());
        assert!(host.link_by_name("vxlan10").unwrap().is_none());
    }

    #[test]
    fn host_problems_are_this_hosts() {
        let host = node1();
        for (pairs, kind, needle) in [
            (
                vec![("vni", "10"), ("peers", "10.1.1.1")],
                Kind::HostArgs,
                "no route to the peer 10.1.1.1",
            ),
            (
                vec![("vni", "10"), ("peers", PEERS), ("dev", "eth9")],
                Kind::NotInstalled,
                "dev=eth9",
            ),
            (
                vec![("vni", "10"), ("peers", PEERS), ("local", "192.168.77.50")],
                Kind::HostArgs,
                "not an address of this node",
            ),
            (
                vec![("vni", "10"), ("peers", "192.168.77.1")],
                Kind::HostArgs,
                "set dev",
            ),
            (
                vec![("vni", "10"), ("peers", "nosuchhost 192.168.77.2")],
                Kind::Transient,
                "cannot resolve",
            ),
        ] {
            let e = with(&host, false, |cx| agent(&pairs).unwrap().start(cx)).unwrap_err();
            assert_eq!(e.kind, kind, "{}", e.message);
            assert!(e.message.contains(needle), "{} !~ {needle}", e.message);
        }
        assert!(host.ops.borrow().is_empty(), "nothing changed");
        // A lone node with dev set is a valid (empty) mesh.
        let lone = agent(&[("vni", "10"), ("peers", "192.168.77.1"), ("dev", "eth0")]).unwrap();
        with(&host, false, |cx| lone.start(cx).unwrap());
    }
}
