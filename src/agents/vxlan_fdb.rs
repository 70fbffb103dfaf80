//! vxlan-fdb: a unicast VXLAN full mesh. Every node runs the same clone with the same peer
//! list; each node creates its VXLAN device and one all-zero-MAC flood entry per *other* peer
//! (head-end replication), so broadcast and multicast reach every node over plain unicast UDP —
//! what clouds without multicast need for Oracle's interconnect or for L2 container overlays.
//! The monitor keeps the kernel's flood list equal to the desired one, in place.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use super::vip::check_ifname;
use super::{ActionDecl, Agent, AgentDef, Ctx, Health, standard_actions};
use crate::error::{Error, Kind, Result, shown};
use crate::host::{FLOOD_MAC, Host, Link, LinkChange, LinkDetails, VxlanConf, contains};
use crate::params::{Param, Type, Values};

static PARAMS: &[Param] = &[
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
    Param::new(
        "dstport",
        "UDP port",
        "The UDP port VXLAN packets are sent to and received on. The default is the IANA port \
         4789; it is always set explicitly, because a device created without a port silently \
         uses Linux's historical 8472 and cannot talk to nodes using 4789.",
    )
    .ty(Type::Integer { min: 1, max: 65535 })
    .default("4789"),
    Param::new(
        "dev",
        "Underlay interface",
        "The interface that carries the VXLAN packets. Default: the interface of the route \
         towards the first peer that is not this node.",
    ),
    Param::new(
        "local",
        "Underlay source address",
        "This node's underlay address, used as the source of VXLAN packets. Default: the \
         address of dev in the peers' address family (the one whose subnet holds the first \
         peer, if any).",
    ),
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
    Param::new(
        "peers_from",
        "Where the peer list comes from",
        "static: the peers parameter. corosync: the ring0_addr of every node of the cluster's \
         own corosync nodelist (/etc/corosync/corosync.conf), plus the peers parameter if \
         set.",
    )
    .ty(Type::Select(&["static", "corosync"]))
    .default("static")
    .reloadable(),
    Param::new(
        "ifname",
        "VXLAN interface name",
        "The name of the VXLAN device. Default: vxlan<vni>.",
    )
    .unique_group("ifname"),
    Param::new(
        "address",
        "Overlay address",
        "The overlay address with its prefix length (10.99.0.1/24), put on the VXLAN device, or \
         on the bridge when bridge is set. As a clone runs with the same parameters on every \
         node, a per-node list is accepted too: 'KEY=ADDRESS/PREFIX ...' where KEY is a node's \
         underlay address or host name, e.g. '192.168.1.11=10.99.0.1/24 \
         192.168.1.12=10.99.0.2/24'. Default: no address (pure L2, e.g. for a bridge).",
    ),
    Param::new(
        "bridge",
        "Bridge to attach to",
        "Make the VXLAN device a port of this bridge (for container or VM overlays). A missing \
         bridge is created, and deleted again at stop when no other port uses it.",
    ),
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
    Param::new(
        "learning",
        "Learn remote MAC addresses",
        "With learning, unicast frames go to the one node that owns the destination MAC once it \
         is known; without it every frame is sent to every peer. Reloadable.",
    )
    .ty(Type::Boolean)
    .default("true")
    .reloadable(),
    Param::new(
        "replace_incompatible",
        "Replace an incompatible device",
        "When a device named ifname already exists with other settings (another VNI, port, \
         underlay, or not VXLAN at all), start refuses and leaves it untouched. Set this to \
         true to have start delete that device and create the mesh's own.",
    )
    .ty(Type::Boolean)
    .default("false"),
];

static ACTIONS: [ActionDecl; 7] = standard_actions(30, 30, 20);

pub static AGENT: AgentDef = AgentDef {
    name: "vxlan-fdb",
    shortdesc: "Unicast VXLAN full mesh (head-end replication) for broadcast and multicast",
    longdesc: "Runs as a clone on every node with the same parameters. start creates the VXLAN \
               device (or adopts an existing one with the same VNI, port and underlay), one \
               all-zero-MAC flood entry per other node, the overlay address, and sets it up. \
               Broadcast and multicast sent on the device reach every other node over unicast \
               UDP. stop deletes the device and bridge it created; on an adopted device it \
               removes only the flood entries and the overlay address. monitor reports not \
               running when the device is absent; otherwise it restores missing flood entries \
               and removes stale ones in place (logging a warning), without taking the link \
               down. reload-agent applies a new peer list or learning setting the same way. \
               Exit codes: a configuration wrong everywhere gives 6, a problem of this node \
               (no route to the peers, an incompatible existing device) 2 or 5, transient \
               trouble 1.",
    params: PARAMS,
    actions: &ACTIONS,
    build: VxlanFdb::build,
};

/// Marks the devices this agent created (IFLA_IFALIAS), so stop deletes only those.
pub const MARK: &str = "cloudha:vxlan-fdb";

/// VXLAN encapsulation overhead: outer IP + UDP + VXLAN + inner Ethernet.
fn overhead(ip: IpAddr) -> u32 {
    if ip.is_ipv4() { 50 } else { 70 }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Peer {
    Addr(IpAddr),
    Name(String),
}

/// One overlay address, for every node or for the node with this key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OverlayAddr {
    key: Option<String>,
    ip: IpAddr,
    prefix: u8,
}

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

/// What the parameters mean on this host.
#[derive(Debug)]
struct Plan {
    dev: Link,
    local: IpAddr,
    /// The flood destinations: every peer but this node, in the given order.
    peers: Vec<IpAddr>,
    /// Entries of the list that are this node.
    dropped: Vec<IpAddr>,
    /// The MTU the device gets: the mtu parameter, else `room`.
    mtu: u32,
    /// The largest MTU the underlay carries after the VXLAN overhead.
    room: u32,
    address: Option<(IpAddr, u8)>,
}

fn check_unicast(param: &str, ip: IpAddr) -> Result<IpAddr> {
    let why = match ip {
        _ if ip.is_unspecified() => Some("the unspecified address"),
        _ if ip.is_multicast() => Some("a multicast address"),
        _ if ip.is_loopback() => Some("a loopback address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("a link-local address"),
        _ => None,
    };
    match why {
        Some(w) => Err(Error::config(format!(
            "{param}: {ip} is {w}; a unicast address is needed"
        ))),
        None => Ok(ip),
    }
}

fn check_name(param: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "{param}: {} is neither an IP address nor a valid host name",
            shown(name)
        )))
    }
}

/// Split a list on spaces and commas.
fn words(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
}

fn parse_peer(param: &str, word: &str) -> Result<Peer> {
    match word.parse::<IpAddr>() {
        Ok(ip) => Ok(Peer::Addr(check_unicast(param, ip)?)),
        Err(_) if word.contains(':') || word.chars().all(|c| c.is_ascii_digit() || c == '.') => {
            Err(Error::config(format!(
                "{param}: {} is not a valid IPv4 or IPv6 address",
                shown(word)
            )))
        }
        Err(_) => {
            check_name(param, word)?;
            Ok(Peer::Name(word.to_string()))
        }
    }
}

fn parse_cidr(raw: &str) -> Result<(IpAddr, u8)> {
    let Some((ip, prefix)) = raw.split_once('/') else {
        return Err(Error::config(format!(
            "address={} needs a prefix length, e.g. 10.99.0.1/24",
            shown(raw)
        )));
    };
    let ip: IpAddr = ip.parse().map_err(|_| {
        Error::config(format!(
            "address={}: {} is not an IP address",
            shown(raw),
            shown(ip)
        ))
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (1..=max).contains(p))
        .ok_or_else(|| {
            Error::config(format!(
                "address={}: the prefix length must be between 1 and {max}",
                shown(raw)
            ))
        })?;
    check_unicast("address", ip)?;
    Ok((ip, prefix))
}

fn parse_addresses(raw: &str) -> Result<Vec<OverlayAddr>> {
    let mut out = Vec::new();
    for w in words(raw) {
        let (key, cidr) = match w.split_once('=') {
            Some((k, c)) => {
                if k.parse::<IpAddr>().is_err() {
                    check_name("address", k)?;
                }
                (Some(k.to_string()), c)
            }
            None => (None, w),
        };
        let (ip, prefix) = parse_cidr(cidr)?;
        if out.iter().any(|a: &OverlayAddr| a.ip == ip) {
            return Err(Error::config(format!(
                "address: {ip} is given twice; each node needs its own overlay address"
            )));
        }
        out.push(OverlayAddr { key, ip, prefix });
    }
    let keyed = out.iter().filter(|a| a.key.is_some()).count();
    if out.len() > 1 && keyed != out.len() {
        return Err(Error::config(
            "address: several addresses must each name their node as KEY=ADDRESS/PREFIX \
             (KEY: the node's underlay address or host name)",
        ));
    }
    Ok(out)
}

/// The ring0_addr of every node in a corosync.conf nodelist.
pub fn corosync_ring0(text: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut pending: Option<String> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line == "{" {
            stack.push(pending.take().unwrap_or_default());
            continue;
        }
        if let Some(name) = line.strip_suffix('{') {
            stack.push(name.trim().to_string());
            continue;
        }
        if line.starts_with('}') {
            stack.pop();
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) => {
                let in_node = stack.len() == 2 && stack[0] == "nodelist" && stack[1] == "node";
                if in_node && k.trim() == "ring0_addr" {
                    out.push(v.trim().trim_matches('"').to_string());
                }
            }
            None => pending = Some(line.to_string()),
        }
    }
    out
}

/// corosync.conf as text: a regular file of bounded size, read without blocking on a FIFO
/// (it would hang the action past its deadline).
fn read_corosync(path: &Path) -> std::io::Result<String> {
    String::from_utf8(crate::files::read_regular(path, true)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn corosync_peers(path: &Path) -> Result<Vec<Peer>> {
    let shown_path = shown(&path.display().to_string());
    let text = match read_corosync(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::not_installed(format!(
                "peers_from=corosync: {shown_path} does not exist on this node"
            )));
        }
        Err(e) => {
            return Err(Error::host_args(format!(
                "peers_from=corosync: cannot read {shown_path}: {e}"
            )));
        }
    };
    let addrs = corosync_ring0(&text);
    if addrs.is_empty() {
        return Err(Error::host_args(format!(
            "peers_from=corosync: {shown_path} has no nodelist with ring0_addr entries"
        )));
    }
    let what = format!("ring0_addr in {shown_path}");
    addrs.iter().map(|a| parse_peer(&what, a)).collect()
}

/// When name resolution gives up: a quarter of the time left stays for the netlink steps,
/// the rollback and the answer.
fn resolve_by(deadline: Instant) -> Instant {
    let now = Instant::now();
    now + deadline.saturating_duration_since(now).mul_f64(0.75)
}

/// What differs between an existing device and the wanted one (learning and MTU are adjusted
/// in place, so they are not listed).
fn differences(have: &VxlanConf, want: &VxlanConf, name: &dyn Fn(u32) -> String) -> Vec<String> {
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
struct Drift {
    missing: Vec<IpAddr>,
    stale: Vec<IpAddr>,
}

fn drift(host: &dyn Host, index: u32, desired: &[IpAddr]) -> Result<Drift> {
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

/// Bring the flood entries of `index` to `desired`: additions first, so traffic between the
/// remaining peers never stops.
fn reconcile(host: &dyn Host, index: u32, desired: &[IpAddr]) -> Result<Drift> {
    let d = drift(host, index, desired)?;
    if !d.missing.is_empty() {
        host.fdb_append(index, FLOOD_MAC, &d.missing)?;
    }
    if !d.stale.is_empty() {
        host.fdb_del(index, FLOOD_MAC, &d.stale)?;
    }
    Ok(d)
}

fn list(ips: &[IpAddr]) -> String {
    const SHOWN: usize = 8;
    let mut s: Vec<String> = ips.iter().take(SHOWN).map(|i| i.to_string()).collect();
    if ips.len() > SHOWN {
        s.push(format!("and {} more", ips.len() - SHOWN));
    }
    s.join(", ")
}

type Links = Vec<(Link, LinkDetails)>;

fn find<'a>(all: &'a Links, name: &str) -> Option<&'a (Link, LinkDetails)> {
    all.iter().find(|(l, _)| l.name == name)
}

fn ours(d: &LinkDetails) -> bool {
    d.alias.as_deref() == Some(MARK)
}

/// What a failed start must undo.
#[derive(Default)]
struct Created {
    vxlan: Option<u32>,
    bridge: Option<u32>,
    /// An adopted (pre-existing) device this start made a port of the bridge.
    joined: Option<u32>,
    /// Flood entries this start adds to an adopted device (those of a created one go with it).
    fdb: Option<(u32, Vec<IpAddr>)>,
    /// The overlay address this start added (on a bridge that existed before, it would stay).
    addr: Option<(u32, IpAddr, u8)>,
}

impl VxlanFdb {
    fn build(v: &Values) -> Result<Box<dyn Agent>> {
        Ok(Box::new(Self::from_values(v)?))
    }

    fn from_values(v: &Values) -> Result<VxlanFdb> {
        // Range-checked by the declarations; try_from keeps a wrong declaration from wrapping.
        let vni = v
            .int("vni")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        let ifname = v
            .str("ifname")
            .map(str::to_string)
            .unwrap_or_else(|| format!("vxlan{vni}"));
        check_ifname("ifname", &ifname)?;
        let dev = v.str("dev").map(str::to_string);
        if let Some(d) = &dev {
            check_ifname("dev", d)?;
        }
        let bridge = v.str("bridge").map(str::to_string);
        if let Some(b) = &bridge {
            check_ifname("bridge", b)?;
            if *b == ifname {
                return Err(Error::config(format!(
                    "bridge={} is the VXLAN device's own name; choose another bridge name",
                    shown(b)
                )));
            }
        }
        let local = match v.str("local") {
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
        let peers: Vec<Peer> = words(v.str("peers").unwrap_or_default())
            .map(|w| parse_peer("peers", w))
            .collect::<Result<_>>()?;
        let corosync = v.str("peers_from") == Some("corosync");
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
        let address = parse_addresses(v.str("address").unwrap_or_default())?;
        Ok(VxlanFdb {
            vni,
            port: v
                .int("dstport")
                .and_then(|n| u16::try_from(n).ok())
                .unwrap_or(4789),
            dev,
            local,
            peers,
            corosync,
            ifname,
            address,
            bridge,
            mtu: v.int("mtu").and_then(|m| u32::try_from(m).ok()),
            learning: v.bool("learning").unwrap_or(true),
            replace: v.bool("replace_incompatible").unwrap_or(false),
        })
    }

    /// The underlay family: local's, else the first literal peer's, else IPv4.
    fn family_v4(&self, peers: &[Peer]) -> bool {
        self.local
            .map(|l| l.is_ipv4())
            .or_else(|| {
                peers.iter().find_map(|p| match p {
                    Peer::Addr(ip) => Some(ip.is_ipv4()),
                    Peer::Name(_) => None,
                })
            })
            .unwrap_or(true)
    }

    /// Work out device, source, destinations, MTU and address on this host. Host names are
    /// resolved together, within the action's deadline.
    fn plan(&self, cx: &Ctx) -> Result<Plan> {
        let host = cx.host;
        let mut words = self.peers.clone();
        if self.corosync {
            let mut c = corosync_peers(&cx.paths.corosync_conf)?;
            c.append(&mut words);
            words = c;
        }
        let v4 = self.family_v4(&words);
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
            .partition(|ip| own.contains(ip) || Some(*ip) == self.local);
        if let Some(l) = self.local
            && !own.contains(&l)
        {
            return Err(Error::host_args(format!(
                "local={l} is not an address of this node"
            )));
        }
        let dev = match &self.dev {
            Some(name) => host.link_by_name(name)?.ok_or_else(|| {
                Error::not_installed(format!("dev={name}: no such interface on this node"))
            })?,
            None => {
                let index = match peers.first() {
                    Some(p) => match host.route_to(*p)? {
                        Some(hop) => hop.link,
                        None => {
                            return Err(Error::host_args(format!(
                                "this node has no route to the peer {p}; set dev, or fix the \
                                 underlay routing"
                            )));
                        }
                    },
                    None => match self.local.and_then(|l| addrs.iter().find(|a| a.ip == l)) {
                        Some(a) => a.link,
                        None => {
                            return Err(Error::host_args(
                                "no peer other than this node is listed, so the underlay \
                                 interface cannot be found from a route; set dev",
                            ));
                        }
                    },
                };
                host.link_by_index(index)?.ok_or_else(|| {
                    Error::transient(format!("interface {index} vanished while looking it up"))
                })?
            }
        };
        let local = match self.local {
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
        let mtu = match self.mtu {
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
        let address = self.my_address(local, &dropped)?;
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

    /// This node's overlay address: the single one, or the entry keyed by one of this node's
    /// underlay addresses or its host name.
    fn my_address(&self, local: IpAddr, own_peers: &[IpAddr]) -> Result<Option<(IpAddr, u8)>> {
        match self.address.as_slice() {
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

    fn want(&self, plan: &Plan) -> VxlanConf {
        VxlanConf {
            vni: self.vni,
            port: self.port,
            dev: Some(plan.dev.index),
            local: Some(plan.local),
            group: None,
            learning: self.learning,
        }
    }

    /// Is an existing link this mesh's device? Err with the reason when it is not.
    fn compatible(
        &self,
        all: &Links,
        link: &Link,
        d: &LinkDetails,
        want: Option<&VxlanConf>,
    ) -> Result<(), String> {
        let Some(have) = d
            .vxlan
            .as_ref()
            .filter(|_| d.kind.as_deref() == Some("vxlan"))
        else {
            return Err(format!(
                "is a {} device, not VXLAN",
                d.kind.as_deref().unwrap_or("plain")
            ));
        };
        let name = |i: u32| {
            all.iter()
                .find(|(l, _)| l.index == i)
                .map(|(l, _)| l.name.clone())
                .unwrap_or_else(|| format!("#{i}"))
        };
        let diffs = match want {
            Some(w) => differences(have, w, &name),
            None => {
                // Without a plan (stop): VNI and port are all we know for sure.
                let mut w = have.clone();
                w.vni = self.vni;
                w.port = self.port;
                differences(have, &w, &name)
            }
        };
        if !diffs.is_empty() {
            return Err(format!("has {}", diffs.join(", ")));
        }
        if let (Some(b), Some(m)) = (&self.bridge, d.master) {
            let master = name(m);
            if master != *b {
                return Err(format!("is a port of {master}, not of bridge={b}"));
            }
        }
        let _ = link;
        Ok(())
    }

    /// The link that carries the overlay address.
    fn address_link<'a>(&self, all: &'a Links, vxlan: &'a Link) -> Option<&'a Link> {
        match &self.bridge {
            Some(b) => find(all, b).map(|(l, _)| l),
            None => Some(vxlan),
        }
    }

    /// Put the overlay address on `link`; whether it had to be added.
    fn ensure_address(
        &self,
        host: &dyn Host,
        plan: &Plan,
        link: u32,
        repair: bool,
    ) -> Result<bool> {
        let Some((ip, prefix)) = plan.address else {
            return Ok(false);
        };
        let present = host.addrs()?.iter().any(|a| a.link == link && a.ip == ip);
        if !present {
            if repair {
                tracing::warn!("overlay address {ip}/{prefix} was missing: restoring it");
            }
            host.add_addr(link, ip, prefix)?;
        }
        Ok(!present)
    }

    fn start_inner(&self, host: &dyn Host, plan: &Plan, created: &mut Created) -> Result<()> {
        let want = self.want(plan);
        let all = host.link_details()?;
        // The bridge first: a refusal must come before anything is created.
        let bridge = match &self.bridge {
            None => None,
            Some(b) => match find(&all, b) {
                Some((l, d)) if d.kind.as_deref() == Some("bridge") => Some(l.index),
                Some((_, d)) => {
                    return Err(Error::host_args(format!(
                        "bridge={b} exists on this node but is a {} device, not a bridge",
                        d.kind.as_deref().unwrap_or("plain")
                    )));
                }
                None => None,
            },
        };
        let existing = find(&all, &self.ifname);
        if let Some((link, d)) = existing
            && let Err(why) = self.compatible(&all, link, d, Some(&want))
        {
            if !self.replace {
                return Err(Error::host_args(format!(
                    "interface {} already exists on this node and {why}; it was left \
                     untouched. Delete it, choose another ifname, or set \
                     replace_incompatible=true",
                    self.ifname
                )));
            }
            tracing::warn!(
                "interface {} {why}: deleting it (replace_incompatible=true)",
                self.ifname
            );
            host.del_link(link.index)?;
        }
        let bridge = match (&self.bridge, bridge) {
            (Some(b), None) => {
                tracing::info!("creating bridge {b}");
                let i = host.add_bridge(b)?;
                created.bridge = Some(i);
                host.set_link(
                    i,
                    &LinkChange {
                        alias: Some(MARK.into()),
                        ..Default::default()
                    },
                )?;
                Some(i)
            }
            (_, b) => b,
        };
        let all = host.link_details()?;
        let (index, details) = match find(&all, &self.ifname) {
            Some((link, d)) => {
                tracing::info!("adopting the existing {}", self.ifname);
                let mut change = LinkChange::default();
                if d.vxlan
                    .as_ref()
                    .is_some_and(|v| v.learning != self.learning)
                {
                    change.learning = Some(self.learning);
                }
                if link.mtu != plan.mtu {
                    tracing::warn!("{} has mtu {}; setting {}", self.ifname, link.mtu, plan.mtu);
                    change.mtu = Some(plan.mtu);
                }
                if change != LinkChange::default() {
                    host.set_link(link.index, &change)?;
                }
                (link.index, d.clone())
            }
            None => {
                tracing::info!(
                    "creating {} (vni {}, dstport {}, dev {}, local {}, mtu {})",
                    self.ifname,
                    self.vni,
                    self.port,
                    plan.dev.name,
                    plan.local,
                    plan.mtu
                );
                let i = host.add_vxlan(&self.ifname, &want, plan.mtu)?;
                created.vxlan = Some(i);
                host.set_link(
                    i,
                    &LinkChange {
                        alias: Some(MARK.into()),
                        ..Default::default()
                    },
                )?;
                (i, LinkDetails::default())
            }
        };
        if let Some(b) = bridge
            && details.master != Some(b)
        {
            host.set_link(
                index,
                &LinkChange {
                    master: Some(b),
                    ..Default::default()
                },
            )?;
            if created.vxlan.is_none() {
                created.joined = Some(index);
            }
        }
        if created.vxlan.is_none() {
            // Recorded before appending: a partial append is undone too (deleting an entry
            // that was never added is not an error).
            created.fdb = Some((index, drift(host, index, &plan.peers)?.missing));
        }
        let d = reconcile(host, index, &plan.peers)?;
        if !d.stale.is_empty() {
            tracing::info!("removed flood entries to {}", list(&d.stale));
        }
        let up = LinkChange {
            up: Some(true),
            ..Default::default()
        };
        if let Some(b) = bridge {
            host.set_link(b, &up)?;
        }
        let on = bridge.unwrap_or(index);
        if let Some((ip, prefix)) = plan.address
            && self.ensure_address(host, plan, on, false)?
        {
            created.addr = Some((on, ip, prefix));
        }
        host.set_link(index, &up)?;
        tracing::info!(
            "{} is up with {} flood entries ({}){}",
            self.ifname,
            plan.peers.len(),
            list(&plan.peers),
            if plan.dropped.is_empty() {
                String::new()
            } else {
                format!("; this node ({}) was left out", list(&plan.dropped))
            }
        );
        Ok(())
    }

    /// The device if it exists and is this mesh's; Err(Failed) when a foreign device holds the
    /// name.
    fn current(&self, host: &dyn Host) -> Result<Option<(Links, Link)>> {
        let all = host.link_details()?;
        let Some((link, d)) = find(&all, &self.ifname).cloned() else {
            return Ok(None);
        };
        if let Err(why) = self.compatible(&all, &link, &d, None) {
            return Err(Error::failed(format!(
                "interface {} {why}: it is not this mesh's device",
                self.ifname
            )));
        }
        Ok(Some((all, link)))
    }
}

impl Agent for VxlanFdb {
    fn start(&self, cx: &Ctx) -> Result<()> {
        let plan = self.plan(cx)?;
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
        let result = self.start_inner(cx.host, &plan, &mut created);
        if let Err(e) = &result {
            // Leave nothing half-made behind: what this start added to devices that existed
            // before, then the devices it created.
            let host = cx.host;
            if let Some((link, ip, prefix)) = created.addr
                && let Err(e2) = host.del_addr(link, ip, prefix)
            {
                tracing::error!("could not remove the overlay address {ip}: {e2}");
            }
            if let Some((index, dsts)) = &created.fdb
                && !dsts.is_empty()
                && let Err(e2) = host.fdb_del(*index, FLOOD_MAC, dsts)
            {
                tracing::error!("could not remove the flood entries it added: {e2}");
            }
            if let Some(index) = created.joined {
                let release = LinkChange {
                    master: Some(0),
                    ..Default::default()
                };
                if let Err(e2) = host.set_link(index, &release) {
                    tracing::error!("could not take {} out of the bridge: {e2}", self.ifname);
                }
            }
            for (what, index) in [("VXLAN device", created.vxlan), ("bridge", created.bridge)] {
                if let Some(i) = index {
                    tracing::warn!("start failed ({e}): deleting the {what} it created");
                    if let Err(e2) = cx.host.del_link(i) {
                        tracing::error!("could not delete the {what} ({i}): {e2}");
                    }
                }
            }
        }
        result
    }

    fn stop(&self, cx: &Ctx) -> Result<()> {
        let host = cx.host;
        let all = host.link_details()?;
        match find(&all, &self.ifname) {
            None => tracing::info!("{} does not exist: nothing to remove", self.ifname),
            Some((link, d)) => {
                if let Err(why) = self.compatible(&all, link, d, None) {
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
                    if let Some(l) = self.address_link(&all, link) {
                        self.remove_address(host, l.index)?;
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
                    self.remove_address(host, bl.index)?;
                }
            }
        }
        Ok(())
    }

    fn monitor(&self, cx: &Ctx) -> Result<Health> {
        let host = cx.host;
        let Some((all, link)) = self.current(host)? else {
            return Ok(Health::NotRunning);
        };
        if !link.admin_up {
            return Err(Error::failed(format!("{} is down", self.ifname)));
        }
        let plan = match self.plan(cx) {
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
        if !d.missing.is_empty() {
            tracing::warn!(
                "{}: restored {} missing flood entries ({})",
                self.ifname,
                d.missing.len(),
                list(&d.missing)
            );
        }
        if !d.stale.is_empty() {
            tracing::warn!(
                "{}: removed {} stale flood entries ({})",
                self.ifname,
                d.stale.len(),
                list(&d.stale)
            );
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
        if details
            .vxlan
            .as_ref()
            .is_some_and(|v| v.learning != self.learning)
        {
            tracing::warn!("{}: learning was changed: restoring it", self.ifname);
            host.set_link(
                link.index,
                &LinkChange {
                    learning: Some(self.learning),
                    ..Default::default()
                },
            )?;
        }
        if let Some(l) = self.address_link(&all, &link) {
            self.ensure_address(host, &plan, l.index, true)?;
        }
        Ok(Health::Running)
    }

    fn preflight(&self, cx: &Ctx) -> Result<Vec<String>> {
        let plan = self.plan(cx)?;
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
            let want = self.want(&plan);
            match self.compatible(&all, link, d, Some(&want)) {
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
        let Some((all, link)) = self.current(host)? else {
            tracing::info!(
                "{} does not exist: the new settings apply at the next start",
                self.ifname
            );
            return Ok(());
        };
        let plan = self.plan(cx)?;
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
        let learning = find(&all, &self.ifname)
            .and_then(|(_, d)| d.vxlan.as_ref())
            .map(|v| v.learning);
        if learning.is_some_and(|l| l != self.learning) {
            host.set_link(
                link.index,
                &LinkChange {
                    learning: Some(self.learning),
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }
}

impl VxlanFdb {
    fn remove_address(&self, host: &dyn Host, link: u32) -> Result<()> {
        let wanted: Vec<IpAddr> = self.address.iter().map(|a| a.ip).collect();
        for a in host.addrs()?.into_iter().filter(|a| a.link == link) {
            if wanted.contains(&a.ip) {
                host.del_addr(a.link, a.ip, a.prefix)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use crate::host::FdbEntry;
    use crate::host::fake::FakeHost;
    use crate::params::{Raw, Source};

    const PEERS: &str = "192.168.77.1 192.168.77.2, 192.168.77.3";

    fn agent(pairs: &[(&str, &str)]) -> Result<VxlanFdb> {
        let mut raw = Raw::default();
        for (k, v) in pairs {
            raw.set(k, v, Source::CommandLine);
        }
        VxlanFdb::from_values(&Values::validate(PARAMS, &raw)?)
    }

    fn mesh(extra: &[(&str, &str)]) -> VxlanFdb {
        let mut p = vec![("vni", "10"), ("peers", PEERS)];
        p.extend_from_slice(extra);
        agent(&p).unwrap()
    }

    fn with<T>(host: &FakeHost, probe: bool, f: impl FnOnce(&Ctx) -> T) -> T {
        crate::agents::with_test_ctx(host, probe, f)
    }

    /// Node 1 of the lab: eth0 192.168.77.1/24.
    fn node1() -> FakeHost {
        FakeHost::default()
            .with_link(1, "lo", Some(("127.0.0.1", 8)))
            .with_link(2, "eth0", Some(("192.168.77.1", 24)))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| ip(s)).collect()
    }

    fn vxlan(host: &FakeHost, name: &str) -> (Link, LinkDetails) {
        host.link_details()
            .unwrap()
            .into_iter()
            .find(|(l, _)| l.name == name)
            .expect("device exists")
    }

    #[test]
    fn start_builds_the_mesh_without_this_node() {
        let host = node1();
        let a = mesh(&[("address", "10.99.0.1/24")]);
        with(&host, false, |cx| a.start(cx).unwrap());
        let (link, d) = vxlan(&host, "vxlan10");
        assert!(link.admin_up);
        assert_eq!(link.mtu, 1450);
        assert_eq!(d.alias.as_deref(), Some(MARK));
        let conf = d.vxlan.unwrap();
        assert_eq!(
            (conf.vni, conf.port, conf.dev, conf.local),
            (10, 4789, Some(2), Some(ip("192.168.77.1")))
        );
        assert_eq!(
            host.flood(link.index),
            ips(&["192.168.77.2", "192.168.77.3"])
        );
        assert!(host.has(link.index, "10.99.0.1"));
        // A second start changes nothing.
        let before = host.ops.borrow().len();
        with(&host, false, |cx| a.start(cx).unwrap());
        let after: Vec<String> = host.ops.borrow()[before..].to_vec();
        assert!(
            after
                .iter()
                .all(|o| o.starts_with("set ") && o.contains("up: Some(true)")),
            "{after:?}"
        );
        assert_eq!(host.flood(link.index).len(), 2);
    }

    #[test]
    fn monitor_repairs_drift_in_place() {
        let host = node1();
        let a = mesh(&[]);
        with(&host, false, |cx| a.start(cx).unwrap());
        let index = vxlan(&host, "vxlan10").0.index;
        host.fdb
            .borrow_mut()
            .retain(|(_, e)| e.dst != Some(ip("192.168.77.2")));
        for stale in ["192.168.77.9", "192.168.77.1"] {
            host.fdb.borrow_mut().push((
                index,
                FdbEntry {
                    mac: FLOOD_MAC,
                    dst: Some(ip(stale)),
                },
            ));
        }
        // A learned unicast entry is none of the agent's business.
        host.fdb.borrow_mut().push((
            index,
            FdbEntry {
                mac: [2, 1, 2, 3, 4, 5],
                dst: Some(ip("192.168.77.3")),
            },
        ));
        // A probe reports and changes nothing.
        let before = host.ops.borrow().len();
        assert_eq!(
            with(&host, true, |cx| a.monitor(cx)).unwrap(),
            Health::Running
        );
        assert_eq!(host.ops.borrow().len(), before);
        assert_eq!(
            with(&host, false, |cx| a.monitor(cx)).unwrap(),
            Health::Running
        );
        let mut flood = host.flood(index);
        flood.sort();
        assert_eq!(flood, ips(&["192.168.77.2", "192.168.77.3"]));
        assert_eq!(host.fdb(index).unwrap().len(), 3, "learned entry kept");
        let ops = host.ops.borrow()[before..].to_vec();
        assert!(
            ops.iter().all(|o| o.starts_with("fdb")),
            "the link is never touched: {ops:?}"
        );
        // In sync: a monitor makes no change at all.
        let before = host.ops.borrow().len();
        assert_eq!(
            with(&host, false, |cx| a.monitor(cx)).unwrap(),
            Health::Running
        );
        assert_eq!(host.ops.borrow().len(), before);
    }

    #[test]
    fn monitor_states() {
        let host = node1();
        let a = mesh(&[]);
        assert_eq!(
            with(&host, false, |cx| a.monitor(cx)).unwrap(),
            Health::NotRunning
        );
        with(&host, false, |cx| a.start(cx).unwrap());
        let index = vxlan(&host, "vxlan10").0.index;
        host.links.borrow_mut().last_mut().unwrap().admin_up = false;
        let e = with(&host, false, |cx| a.monitor(cx)).unwrap_err();
        assert_eq!(e.kind, Kind::Failed);
        assert!(e.message.contains("down"), "{}", e.message);
        host.details
            .borrow_mut()
            .get_mut(&index)
            .unwrap()
            .vxlan
            .as_mut()
            .unwrap()
            .vni = 11;
        let e = with(&host, false, |cx| a.monitor(cx)).unwrap_err();
        assert_eq!(e.kind, Kind::Failed);
        assert!(e.message.contains("vni 11 (wanted 10)"), "{}", e.message);
    }

    #[test]
    fn reload_adds_and_removes_exactly_the_changed_peers() {
        let host = node1();
        with(&host, false, |cx| mesh(&[]).start(cx).unwrap());
        let index = vxlan(&host, "vxlan10").0.index;
        let before = host.ops.borrow().len();
        let grown = agent(&[("vni", "10"), ("peers", &format!("{PEERS} 192.168.77.4"))]).unwrap();
        with(&host, false, |cx| grown.reload(cx).unwrap());
        assert_eq!(
            host.ops.borrow()[before..],
            [format!("fdb+ {index} 192.168.77.4")]
        );
        let before = host.ops.borrow().len();
        let shrunk = agent(&[
            ("vni", "10"),
            ("peers", "192.168.77.1 192.168.77.3 192.168.77.4"),
        ])
        .unwrap();
        with(&host, false, |cx| shrunk.reload(cx).unwrap());
        assert_eq!(
            host.ops.borrow()[before..],
            [format!("fdb- {index} 192.168.77.2")]
        );
        // learning is reloadable and toggled live.
        let before = host.ops.borrow().len();
        let quiet = agent(&[
            ("vni", "10"),
            ("peers", "192.168.77.1 192.168.77.3 192.168.77.4"),
            ("learning", "false"),
        ])
        .unwrap();
        with(&host, false, |cx| quiet.reload(cx).unwrap());
        let ops = host.ops.borrow()[before..].to_vec();
        assert_eq!(ops.len(), 1);
        assert!(ops[0].contains("learning: Some(false)") && !ops[0].contains("up: Some"));
    }

    #[test]
    fn incompatible_device_is_refused_and_left_alone() {
        let host = node1();
        let conf = VxlanConf {
            vni: 11,
            port: 8472,
            dev: Some(2),
            local: None,
            group: None,
            learning: true,
        };
        let index = host.add_vxlan("vxlan10", &conf, 1500).unwrap();
        let before = host.ops.borrow().len();
        let e = with(&host, false, |cx| mesh(&[]).start(cx)).unwrap_err();
        assert_eq!(e.kind, Kind::HostArgs);
        assert!(
            e.message.contains("vni 11 (wanted 10)") && e.message.contains("dstport 8472"),
            "{}",
            e.message
        );
        assert!(e.message.contains("left untouched"), "{}", e.message);
        assert_eq!(host.ops.borrow().len(), before, "nothing changed");
        // stop and monitor leave it alone too.
        with(&host, false, |cx| mesh(&[]).stop(cx).unwrap());
        assert_eq!(host.ops.borrow().len(), before);
        assert_eq!(vxlan(&host, "vxlan10").0.index, index);
        // Only when asked is it replaced.
        with(&host, false, |cx| {
            mesh(&[("replace_incompatible", "true")]).start(cx).unwrap()
        });
        let (_, d) = vxlan(&host, "vxlan10");
        assert_eq!(d.vxlan.unwrap().vni, 10);
        // A non-VXLAN device of that name is refused the same way.
        let host = node1().with_link(7, "vxlan10", None);
        let e = with(&host, false, |cx| mesh(&[]).start(cx)).unwrap_err();
        assert!(
            e.message.contains("plain device, not VXLAN"),
            "{}",
            e.message
        );
    }

    #[test]
    fn adopted_device_keeps_living_after_stop() {
        let host = node1();
        let conf = VxlanConf {
            vni: 10,
            port: 4789,
            dev: Some(2),
            local: None,
            group: None,
            learning: false,
        };
        let index = host.add_vxlan("vxlan10", &conf, 1450).unwrap();
        let a = mesh(&[("address", "10.99.0.1/24")]);
        with(&host, false, |cx| a.start(cx).unwrap());
        assert_eq!(
            vxlan(&host, "vxlan10").0.index,
            index,
            "adopted, not recreated"
        );
        assert!(vxlan(&host, "vxlan10").1.vxlan.unwrap().learning);
        with(&host, false, |cx| a.stop(cx).unwrap());
        let (link, _) = vxlan(&host, "vxlan10");
        assert!(host.flood(link.index).is_empty());
        assert!(!host.has(link.index, "10.99.0.1"));
        // Ours is deleted.
        let host = node1();
        with(&host, false, |cx| a.start(cx).unwrap());
        with(&host, false, |cx| a.stop(cx).unwrap());
        assert!(host.link_by_name("vxlan10").unwrap().is_none());
        with(&host, false, |cx| a.stop(cx).unwrap());
    }

    #[test]
    fn failed_start_leaves_nothing_behind() {
        let host = node1();
        *host.fail_fdb_after.borrow_mut() = Some(1);
        let a = mesh(&[("bridge", "br-ov")]);
        let e = with(&host, false, |cx| a.start(cx)).unwrap_err();
        assert_eq!(e.kind, Kind::Transient);
        assert!(host.link_by_name("vxlan10").unwrap().is_none());
        assert!(host.link_by_name("br-ov").unwrap().is_none());
        assert!(host.fdb.borrow().is_empty());
    }

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
    fn names_the_kernel_would_rewrite_are_refused() {
        for (k, v) in [("ifname", "vx%d"), ("bridge", "br%d"), ("dev", "eth%d")] {
            let Err(e) = agent(&[("vni", "10"), ("peers", "192.168.77.2"), (k, v)]) else {
                panic!("{k}={v} was accepted");
            };
            assert_eq!(e.kind, Kind::Config, "{k}");
            assert!(e.message.contains("template"), "{k}: {}", e.message);
        }
        // And the host refuses to create one whatever the caller checked.
        assert_eq!(node1().add_bridge("x%d").unwrap_err().kind, Kind::Config);
    }

    #[test]
    fn failed_start_takes_back_what_it_added_to_existing_devices() {
        // An adopted VXLAN device (not a bridge port) and a bridge that both existed before.
        let host = node1();
        let conf = VxlanConf {
            vni: 10,
            port: 4789,
            dev: Some(2),
            local: None,
            group: None,
            learning: true,
        };
        let vx = host.add_vxlan("vxlan10", &conf, 1450).unwrap();
        let br = host.add_bridge("br-ov").unwrap();
        host.fdb_append(vx, FLOOD_MAC, &ips(&["192.168.77.2"]))
            .unwrap();
        // The last step (setting the device up) fails.
        let a = mesh(&[("bridge", "br-ov"), ("address", "10.99.0.1/24")]);
        *host.fail_set_up.borrow_mut() = Some(vx);
        let e = with(&host, false, |cx| a.start(cx)).unwrap_err();
        assert_eq!(e.kind, Kind::Transient, "{}", e.message);
        assert_eq!(vxlan(&host, "vxlan10").0.index, vx, "existing device kept");
        assert_eq!(vxlan(&host, "br-ov").0.index, br, "existing bridge kept");
        assert_eq!(
            host.flood(vx),
            ips(&["192.168.77.2"]),
            "only the entry it added is gone"
        );
        assert!(!host.has(br, "10.99.0.1"), "the address it added is gone");
        assert_eq!(
            vxlan(&host, "vxlan10").1.master,
            None,
            "out of the bridge again"
        );
        // Once the fault is gone, start works.
        *host.fail_set_up.borrow_mut() = None;
        with(&host, false, |cx| a.start(cx).unwrap());
        assert!(host.has(br, "10.99.0.1"));
    }

    #[test]
    fn bridge_is_created_and_removed_only_when_unused() {
        let host = node1();
        let a = mesh(&[("bridge", "br-ov"), ("address", "10.99.0.1/24")]);
        with(&host, false, |cx| a.start(cx).unwrap());
        let (br, bd) = vxlan(&host, "br-ov");
        let (_, vd) = vxlan(&host, "vxlan10");
        assert_eq!(bd.alias.as_deref(), Some(MARK));
        assert_eq!(vd.master, Some(br.index));
        assert!(
            host.has(br.index, "10.99.0.1"),
            "the address is on the bridge"
        );
        // A container's veth joins the bridge: stop must keep the bridge.
        host.links.borrow_mut().push(Link {
            index: 50,
            name: "veth-c1".into(),
            admin_up: true,
            carrier: true,
            mac: vec![2; 6],
            mtu: 1450,
        });
        host.details.borrow_mut().insert(
            50,
            LinkDetails {
                master: Some(br.index),
                ..Default::default()
            },
        );
        with(&host, false, |cx| a.stop(cx).unwrap());
        assert!(host.link_by_name("vxlan10").unwrap().is_none());
        assert!(host.link_by_name("br-ov").unwrap().is_some());
        assert!(!host.has(br.index, "10.99.0.1"));
        host.del_link(50).unwrap();
        with(&host, false, |cx| a.stop(cx).unwrap());
        assert!(host.link_by_name("br-ov").unwrap().is_none());
        // An existing non-bridge of that name is refused before anything is created.
        let host = node1().with_link(9, "br-ov", None);
        let e = with(&host, false, |cx| a.start(cx)).unwrap_err();
        assert_eq!(e.kind, Kind::HostArgs);
        assert!(host.link_by_name("vxlan10").unwrap().is_none());
    }

    #[test]
    fn corosync_nodelist() {
        let conf = "totem {\n  version: 2\n  interface {\n    ring0_addr: 10.0.0.99\n  }\n}\n\
                    nodelist {\n  node {\n    ring0_addr: 192.168.77.1 # me\n    name: n1\n  }\n\
                    node\n  {\n    name: n2\n    ring0_addr: n2.example\n  }\n  node {\n\
                    ring0_addr: fd00::3\n  }\n}\nquorum {\n provider: corosync_votequorum\n}\n";
        assert_eq!(
            corosync_ring0(conf),
            ["192.168.77.1", "n2.example", "fd00::3"]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corosync.conf");
        std::fs::write(
            &path,
            "nodelist {\n node {\n  ring0_addr: 192.168.77.1\n }\n node {\n  ring0_addr: n2\n }\n}\n",
        )
        .unwrap();
        let host = node1();
        host.names
            .borrow_mut()
            .insert("n2".into(), ips(&["fd00::2", "192.168.77.2"]));
        let mut a = agent(&[
            ("vni", "10"),
            ("peers_from", "corosync"),
            ("peers", "192.168.77.5"),
        ])
        .unwrap();
        a.corosync = true;
        let with_conf = |conf: &Path, f: &dyn Fn(&Ctx)| {
            crate::agents::with_test_ctx(&host, false, |cx| {
                let paths = crate::agents::Paths {
                    corosync_conf: conf.to_path_buf(),
                    ..cx.paths.clone()
                };
                f(&Ctx {
                    paths: &paths,
                    host: cx.host,
                    check_level: cx.check_level,
                    probe: cx.probe,
                    deadline: cx.deadline,
                    cloud: None,
                    routes: None,
                })
            })
        };
        with_conf(&path, &|cx| a.start(cx).unwrap());
        let index = vxlan(&host, "vxlan10").0.index;
        assert_eq!(host.flood(index), ips(&["192.168.77.2", "192.168.77.5"]));
        with_conf(&dir.path().join("missing.conf"), &|cx| {
            assert_eq!(a.monitor(cx).unwrap_err().kind, Kind::NotInstalled)
        });
        std::fs::write(&path, "totem {\n}\n").unwrap();
        let e = std::cell::RefCell::new(None);
        with_conf(&path, &|cx| {
            *e.borrow_mut() = Some(a.monitor(cx).unwrap_err())
        });
        let e = e.into_inner().unwrap();
        assert!(e.message.contains("no nodelist"), "{}", e.message);
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

    #[test]
    fn nonsense_is_refused_at_build() {
        for (pairs, needle) in [
            (vec![("vni", "10")], "peers is empty"),
            (vec![("vni", "0"), ("peers", "10.0.0.1")], "between 1 and"),
            (
                vec![("vni", "10"), ("peers", "10.0.0.300")],
                "not a valid IPv4",
            ),
            (vec![("vni", "10"), ("peers", "224.0.0.1")], "multicast"),
            (
                vec![("vni", "10"), ("peers", "10.0.0.1 fd00::1")],
                "mix IPv4 and IPv6",
            ),
            (
                vec![("vni", "10"), ("peers", "bad_name!")],
                "valid host name",
            ),
            (
                vec![("vni", "10"), ("peers", "10.0.0.1"), ("dstport", "0")],
                "between 1",
            ),
            (
                vec![
                    ("vni", "10"),
                    ("peers", "10.0.0.1"),
                    ("address", "10.99.0.1"),
                ],
                "prefix",
            ),
            (
                vec![
                    ("vni", "10"),
                    ("peers", "10.0.0.1"),
                    ("address", "10.99.0.1/33"),
                ],
                "between 1 and 32",
            ),
            (
                vec![
                    ("vni", "10"),
                    ("peers", "10.0.0.1"),
                    ("address", "10.99.0.1/24 10.99.0.2/24"),
                ],
                "KEY=ADDRESS",
            ),
            (
                vec![
                    ("vni", "10"),
                    ("peers", "10.0.0.1"),
                    ("ifname", "averyveryverylongname"),
                ],
                "longer than 15",
            ),
            (
                vec![("vni", "10"), ("peers", "10.0.0.1"), ("bridge", "vxlan10")],
                "own name",
            ),
            (
                vec![("vni", "10"), ("peers", "10.0.0.1"), ("peers_from", "dns")],
                "not one of",
            ),
            (
                vec![("vni", "10"), ("peers", "10.0.0.1"), ("mtu", "40")],
                "between 68",
            ),
        ] {
            let e = agent(&pairs).err().expect("must be refused");
            assert_eq!(e.kind, Kind::Config, "{pairs:?}");
            assert!(e.message.contains(needle), "{} !~ {needle}", e.message);
        }
    }
}
