//! vxlan-fdb: a unicast VXLAN full mesh. Every node runs the same clone with the same peer
//! list; each node creates its VXLAN device and one all-zero-MAC flood entry per *other* peer
//! (head-end replication), so broadcast and multicast reach every node over plain unicast UDP —
//! what clouds without multicast need for Oracle's interconnect or for L2 container overlays.
//! The monitor keeps the kernel's flood list equal to the desired one, in place.
//!
//! `config` parses the parameters' lists and addresses, `corosync` reads the peer list from
//! corosync.conf, `plan` works out what the host should look like, `device` makes it so.

mod config;
mod corosync;
mod device;
mod plan;

use std::collections::HashSet;
use std::net::IpAddr;

use super::checks::check_ifname;
use super::{ActionDecl, Agent, AgentDef, Ctx, Health, standard_actions};
use crate::error::{Error, Kind, Result, shown};
use crate::host::{FLOOD_MAC, LinkChange};
use crate::params::{Key, Param, Type, Values};

use config::{OverlayAddr, Peer, check_unicast, parse_addresses, parse_peer, words};
pub use corosync::corosync_ring0;
use device::{
    Created, address_link, bring_up, compatible, current, ensure_address, find, ours, reconcile,
    remove_address, restore_learning, rollback,
};
use plan::{Plan, drift, list, overhead};

const VNI: Key<u32> = Key::new(
    Param::new(
        "vni",
        "VXLAN network identifier",
        "The VNI of the mesh (1-16777215); every node must use the same one.",
    )
    .ty(Type::Integer {
        min: 1,
        max: 16_777_215,
    })
    .required()
    .unique_group("vni"),
);

const DSTPORT: Key<u16> = Key::new(
    Param::new(
        "dstport",
        "UDP port",
        "The UDP port VXLAN packets are sent to and received on. The default is the IANA port \
         4789; it is always set explicitly, because a device created without a port silently \
         uses Linux's historical 8472 and cannot talk to nodes using 4789.",
    )
    .ty(Type::Integer { min: 1, max: 65535 })
    .default("4789"),
);

const DEV: Key<Option<String>> = Key::new(Param::new(
    "dev",
    "Underlay interface",
    "The interface that carries the VXLAN packets. Default: the interface of the route \
         towards the first peer that is not this node.",
));

const LOCAL: Key<Option<String>> = Key::new(Param::new(
    "local",
    "Underlay source address",
    "This node's underlay address, used as the source of VXLAN packets. Default: the \
         address of dev in the peers' address family (the one whose subnet holds the first \
         peer, if any).",
));

const PEERS: Key<Option<String>> = Key::new(
    Param::new(
        "peers",
        "Underlay addresses of the nodes",
        "The underlay addresses (or host names) of every node of the mesh, separated by spaces \
         or commas. The same list is given to every node: each node drops its own addresses \
         from it automatically. With peers_from=corosync these are added to the corosync \
         nodes. Reloadable: reload-agent adds and removes flood entries without touching the \
         device.",
    )
    .reloadable(),
);

crate::choice! {
    /// Where the peer list comes from.
    enum PeersFrom {
        #[default]
        Static = "static",
        Corosync = "corosync",
    }
}

const PEERS_FROM: Key<PeersFrom> = Key::new(
    Param::new(
        "peers_from",
        "Where the peer list comes from",
        "static: the peers parameter. corosync: the ring0_addr of every node of the cluster's \
         own corosync nodelist (/etc/corosync/corosync.conf), plus the peers parameter if \
         set.",
    )
    .default("static")
    .reloadable(),
);

const IFNAME: Key<Option<String>> = Key::new(
    Param::new(
        "ifname",
        "VXLAN interface name",
        "The name of the VXLAN device. Default: vxlan<vni>.",
    )
    .unique_group("ifname"),
);

const ADDRESS: Key<Option<String>> = Key::new(Param::new(
    "address",
    "Overlay address",
    "The overlay address with its prefix length (10.99.0.1/24), put on the VXLAN device, or \
         on the bridge when bridge is set. As a clone runs with the same parameters on every \
         node, a per-node list is accepted too: 'KEY=ADDRESS/PREFIX ...' where KEY is a node's \
         underlay address or host name, e.g. '192.168.1.11=10.99.0.1/24 \
         192.168.1.12=10.99.0.2/24'. Default: no address (pure L2, e.g. for a bridge).",
));

const BRIDGE: Key<Option<String>> = Key::new(Param::new(
    "bridge",
    "Bridge to attach to",
    "Make the VXLAN device a port of this bridge (for container or VM overlays). A missing \
         bridge is created, and deleted again at stop when no other port uses it.",
));

const MTU: Key<Option<u32>> = Key::new(
    Param::new(
        "mtu",
        "MTU of the VXLAN device",
        "Default: the underlay interface's MTU minus the VXLAN overhead (50 bytes over IPv4, 70 \
         over IPv6), so that full-size overlay packets are never black-holed. A larger value \
         than the underlay carries is refused at start.",
    )
    .ty(Type::Integer {
        min: 68,
        max: 65535,
    }),
);

const LEARNING: Key<bool> = Key::new(
    Param::new(
        "learning",
        "Learn remote MAC addresses",
        "With learning, unicast frames go to the one node that owns the destination MAC once it \
         is known; without it every frame is sent to every peer. Reloadable.",
    )
    .ty(Type::Boolean)
    .default("true")
    .reloadable(),
);

const REPLACE_INCOMPATIBLE: Key<bool> = Key::new(
    Param::new(
        "replace_incompatible",
        "Replace an incompatible device",
        "When a device named ifname already exists with other settings (another VNI, port, \
         underlay, or not VXLAN at all), start refuses and leaves it untouched. Set this to \
         true to have start delete that device and create the mesh's own.",
    )
    .ty(Type::Boolean)
    .default("false"),
);

static PARAMS: &[Param] = crate::params![
    &[
        VNI.param,
        DSTPORT.param,
        DEV.param,
        LOCAL.param,
        PEERS.param,
        PEERS_FROM.param,
        IFNAME.param,
        ADDRESS.param,
        BRIDGE.param,
        MTU.param,
        LEARNING.param,
        REPLACE_INCOMPATIBLE.param,
    ],
    &crate::log::TRACE,
];

static ACTIONS: [ActionDecl; 7] = standard_actions(30, 30, 20);

pub static AGENT: AgentDef = AgentDef {
    name: "vxlan-fdb",
    shortdesc: "Unicast VXLAN full mesh (head-end replication) for broadcast and multicast",
    longdesc: "Builds a unicast VXLAN full mesh between the cluster nodes: broadcast and \
               multicast sent on the device reach every other node over unicast UDP \
               (head-end replication), for networks such as cloud VPCs that carry no \
               multicast.\n\n\
               Runs as a clone on every node with the same parameters. start creates the VXLAN \
               device (or adopts an existing one with the same VNI, port and underlay), one \
               all-zero-MAC flood entry per other node, the overlay address, and sets it up. \
               stop deletes the device and bridge it created; on an adopted device it removes \
               only the flood entries and the overlay address.\n\n\
               monitor reports not running when the device is absent; otherwise it restores \
               missing flood entries and removes stale ones in place (logging a warning), \
               without taking the link down. reload-agent applies a new peer list or learning \
               setting the same way.\n\n\
               Exit codes: a configuration wrong everywhere gives 6, a problem of this node (no \
               route to the peers, an incompatible existing device) 2 or 5, transient trouble \
               1.",
    params: PARAMS,
    actions: &ACTIONS,
    build: VxlanFdb::build,
    clone: true,
    examples: &[],
};

/// Marks the devices this agent created (IFLA_IFALIAS), so stop deletes only those.
pub const MARK: &str = "cloudha:vxlan-fdb";

pub struct VxlanFdb {
    vni: u32,
    port: u16,
    dev: Option<String>,
    local: Option<IpAddr>,
    peers: Vec<Peer>,
    /// peers_from=corosync: the nodelist of the file in `Paths::corosync_conf` is added.
    corosync: bool,
    ifname: String,
    address: Vec<OverlayAddr>,
    bridge: Option<String>,
    mtu: Option<u32>,
    learning: bool,
    replace: bool,
}

impl VxlanFdb {
    fn build(v: &Values) -> Result<Box<dyn Agent>> {
        Ok(Box::new(Self::from_values(v)?))
    }

    fn from_values(v: &Values) -> Result<VxlanFdb> {
        let vni = v.get(&VNI);
        let ifname = v.get(&IFNAME).unwrap_or_else(|| format!("vxlan{vni}"));
        check_ifname("ifname", &ifname)?;
        let dev = v.get(&DEV);
        if let Some(d) = &dev {
            check_ifname("dev", d)?;
        }
        let bridge = v.get(&BRIDGE);
        if let Some(b) = &bridge {
            check_ifname("bridge", b)?;
            if *b == ifname {
                return Err(Error::config(format!(
                    "bridge={} is the VXLAN device's own name; choose another bridge name",
                    shown(b)
                )));
            }
        }
        let local = match v.get(&LOCAL).as_deref() {
            Some(raw) => Some(check_unicast(
                "local",
                raw.parse().map_err(|_| {
                    Error::config(format!(
                        "local={} is not an IPv4 or IPv6 address",
                        shown(raw)
                    ))
                })?,
            )?),
            None => None,
        };
        let peers: Vec<Peer> = words(&v.get(&PEERS).unwrap_or_default())
            .map(|w| parse_peer("peers", w))
            .collect::<Result<_>>()?;
        let corosync = v.get(&PEERS_FROM) == PeersFrom::Corosync;
        if !corosync && peers.is_empty() {
            return Err(Error::config(
                "peers is empty: list the underlay address of every node (the same list on \
                 every node), or set peers_from=corosync",
            ));
        }
        let families: HashSet<bool> = peers
            .iter()
            .chain(local.map(Peer::Addr).iter())
            .filter_map(|p| match p {
                Peer::Addr(ip) => Some(ip.is_ipv4()),
                Peer::Name(_) => None,
            })
            .collect();
        if families.len() > 1 {
            return Err(Error::config(
                "peers and local mix IPv4 and IPv6 addresses; one mesh uses one underlay family",
            ));
        }
        let address = parse_addresses(&v.get(&ADDRESS).unwrap_or_default())?;
        Ok(VxlanFdb {
            vni,
            port: v.get(&DSTPORT),
            dev,
            local,
            peers,
            corosync,
            ifname,
            address,
            bridge,
            mtu: v.get(&MTU),
            learning: v.get(&LEARNING),
            replace: v.get(&REPLACE_INCOMPATIBLE),
        })
    }
}

impl Agent for VxlanFdb {
    fn start(&self, cx: &Ctx) -> Result<()> {
        let plan = Plan::new(self, cx)?;
        // The kernel caps a VXLAN device's MTU to what the underlay carries: the first start
        // would quietly get a smaller MTU and every later one find an "incompatible" device.
        if plan.mtu > plan.room {
            return Err(Error::host_args(format!(
                "mtu={} is more than {} (mtu {}) carries after the VXLAN overhead of {} bytes: \
                 at most {} fits; lower mtu or raise the underlay's",
                plan.mtu,
                plan.dev.name,
                plan.dev.mtu,
                overhead(plan.local),
                plan.room
            )));
        }
        let mut created = Created::default();
        let result = bring_up(self, cx.host, &plan, &mut created);
        if let Err(e) = &result {
            // Leave nothing half-made behind.
            rollback(self, cx.host, &created, e);
        }
        result
    }

    fn stop(&self, cx: &Ctx) -> Result<()> {
        let host = cx.host;
        let all = host.link_details()?;
        match find(&all, &self.ifname) {
            None => tracing::info!("{} does not exist: nothing to remove", self.ifname),
            Some((link, d)) => {
                if let Err(why) = compatible(self, &all, link, d, None) {
                    tracing::warn!(
                        "{} {why}: it is not this mesh's device, leaving it alone",
                        self.ifname
                    );
                } else if ours(d) {
                    tracing::info!("deleting {}", self.ifname);
                    host.del_link(link.index)?;
                } else {
                    // Adopted: take back only the flood entries and the overlay address.
                    let flood: Vec<IpAddr> = host
                        .fdb(link.index)?
                        .into_iter()
                        .filter(|e| e.mac == FLOOD_MAC)
                        .filter_map(|e| e.dst)
                        .collect();
                    tracing::info!(
                        "{} was not created by this agent: removing its {} flood entries and \
                         the overlay address, keeping the device",
                        self.ifname,
                        flood.len()
                    );
                    host.fdb_del(link.index, FLOOD_MAC, &flood)?;
                    if let Some(l) = address_link(self, &all, link) {
                        remove_address(self, host, l.index)?;
                    }
                }
            }
        }
        if let Some(b) = &self.bridge {
            let all = host.link_details()?;
            if let Some((bl, bd)) = find(&all, b) {
                let ports = all
                    .iter()
                    .filter(|(_, d)| d.master == Some(bl.index))
                    .count();
                if ours(bd) && ports == 0 {
                    tracing::info!("deleting bridge {b}, which start created");
                    host.del_link(bl.index)?;
                } else {
                    remove_address(self, host, bl.index)?;
                }
            }
        }
        Ok(())
    }

    fn monitor(&self, cx: &Ctx) -> Result<Health> {
        let host = cx.host;
        let Some((all, link)) = current(self, host)? else {
            return Ok(Health::NotRunning);
        };
        if !link.admin_up {
            return Err(Error::failed(format!("{} is down", self.ifname)));
        }
        let plan = match Plan::new(self, cx) {
            Ok(p) => p,
            // The resolver is down or slow: the device and its flood entries still carry
            // traffic, so say so (degraded) instead of failing a healthy mesh; nothing is
            // changed without knowing where the named peers are.
            Err(e) if e.kind == Kind::Transient => {
                tracing::warn!("{}: flood entries left as they are: {e}", self.ifname);
                return Ok(Health::Degraded(format!(
                    "{} runs, but its peer list cannot be checked: {e}",
                    self.ifname
                )));
            }
            Err(e) => return Err(e),
        };
        if cx.probe {
            // A probe tells the truth and changes nothing.
            let d = drift(host, link.index, &plan.peers)?;
            if !d.missing.is_empty() || !d.stale.is_empty() {
                tracing::info!(
                    "{} runs but its flood entries differ ({} missing, {} stale); the \
                     recurring monitor will fix them",
                    self.ifname,
                    d.missing.len(),
                    d.stale.len()
                );
            }
            return Ok(Health::Running);
        }
        let d = reconcile(host, link.index, &plan.peers)?;
        for (done, what, peers) in [
            ("restored", "missing", &d.missing),
            ("removed", "stale", &d.stale),
        ] {
            if !peers.is_empty() {
                tracing::warn!(
                    "{}: {done} {} {what} flood entries ({})",
                    self.ifname,
                    peers.len(),
                    list(peers)
                );
            }
        }
        let details = find(&all, &self.ifname)
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        if let Some(b) = &self.bridge {
            match find(&all, b) {
                Some((bl, _)) => {
                    if details.master != Some(bl.index) {
                        tracing::warn!("{} had left bridge {b}: re-attaching it", self.ifname);
                        host.set_link(
                            link.index,
                            &LinkChange {
                                master: Some(bl.index),
                                ..Default::default()
                            },
                        )?;
                    }
                }
                None => {
                    return Err(Error::failed(format!(
                        "bridge {b} has disappeared from under {}",
                        self.ifname
                    )));
                }
            }
        }
        if restore_learning(self, host, &all, link.index)? {
            tracing::warn!("{}: learning was changed: restored it", self.ifname);
        }
        if let Some(l) = address_link(self, &all, &link) {
            ensure_address(host, &plan, l.index, true)?;
        }
        Ok(Health::Running)
    }

    fn preflight(&self, cx: &Ctx) -> Result<Vec<String>> {
        let plan = Plan::new(self, cx)?;
        let mut lines = vec![
            format!(
                "underlay: {} (mtu {}), local {}",
                plan.dev.name, plan.dev.mtu, plan.local
            ),
            format!("peers: {} ({})", plan.peers.len(), list(&plan.peers)),
            format!(
                "device: {} vni {} dstport {} mtu {}",
                self.ifname, self.vni, self.port, plan.mtu
            ),
        ];
        if !plan.dropped.is_empty() {
            lines.push(format!("this node, left out: {}", list(&plan.dropped)));
        }
        if let Some((ip, p)) = plan.address {
            lines.push(format!("overlay address: {ip}/{p}"));
        }
        let all = cx.host.link_details()?;
        if let Some((link, d)) = find(&all, &self.ifname) {
            let want = plan.want(self);
            match compatible(self, &all, link, d, Some(&want)) {
                Ok(()) => lines.push(format!("{} exists and matches", self.ifname)),
                Err(why) if !self.replace => {
                    return Err(Error::host_args(format!(
                        "interface {} already exists and {why}",
                        self.ifname
                    )));
                }
                Err(why) => lines.push(format!(
                    "{} {why}: start will replace it (replace_incompatible=true)",
                    self.ifname
                )),
            }
        }
        Ok(lines)
    }

    fn reload(&self, cx: &Ctx) -> Result<()> {
        let host = cx.host;
        let Some((all, link)) = current(self, host)? else {
            tracing::info!(
                "{} does not exist: the new settings apply at the next start",
                self.ifname
            );
            return Ok(());
        };
        let plan = Plan::new(self, cx)?;
        let d = reconcile(host, link.index, &plan.peers)?;
        tracing::info!(
            "{}: {} flood entries now; added {}; removed {}",
            self.ifname,
            plan.peers.len(),
            if d.missing.is_empty() {
                "none".into()
            } else {
                list(&d.missing)
            },
            if d.stale.is_empty() {
                "none".into()
            } else {
                list(&d.stale)
            },
        );
        restore_learning(self, host, &all, link.index)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
