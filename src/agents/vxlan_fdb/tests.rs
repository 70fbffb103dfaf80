//! The agent's lifecycle (start, monitor, reload), and the helpers every test module of
//! vxlan_fdb shares.

pub(super) use super::*;
use crate::agents::testing::{TestCtx, values};
pub(super) use crate::error::Kind;
pub(super) use crate::host::fake::FakeHost;
pub(super) use crate::host::{FdbEntry, Host, Link, LinkDetails};

pub(super) const PEERS: &str = "192.168.77.1 192.168.77.2, 192.168.77.3";

pub(super) fn agent(pairs: &[(&str, &str)]) -> Result<VxlanFdb> {
    VxlanFdb::from_values(&values(PARAMS, pairs)?)
}

pub(super) fn mesh(extra: &[(&str, &str)]) -> VxlanFdb {
    let mut p = vec![("vni", "10"), ("peers", PEERS)];
    p.extend_from_slice(extra);
    agent(&p).unwrap()
}

pub(super) fn with<T>(host: &FakeHost, probe: bool, f: impl FnOnce(&Ctx) -> T) -> T {
    TestCtx::new(host).probe(probe).run(f)
}

/// Node 1 of the lab: eth0 192.168.77.1/24.
pub(super) fn node1() -> FakeHost {
    FakeHost::default()
        .with_link(1, "lo", Some(("127.0.0.1", 8)))
        .with_link(2, "eth0", Some(("192.168.77.1", 24)))
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

pub(super) fn vxlan(host: &FakeHost, name: &str) -> (Link, LinkDetails) {
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
    // What one reload with these parameters does, from the state the previous one left.
    let reload = |pairs: &[(&str, &str)]| {
        let before = host.ops.borrow().len();
        let a = agent(pairs).unwrap();
        with(&host, false, |cx| a.reload(cx).unwrap());
        host.ops.borrow()[before..].to_vec()
    };
    let grown = format!("{PEERS} 192.168.77.4");
    assert_eq!(
        reload(&[("vni", "10"), ("peers", &grown)]),
        [format!("fdb+ {index} 192.168.77.4")]
    );
    let shrunk = [
        ("vni", "10"),
        ("peers", "192.168.77.1 192.168.77.3 192.168.77.4"),
    ];
    assert_eq!(reload(&shrunk), [format!("fdb- {index} 192.168.77.2")]);
    // learning is reloadable and toggled live.
    let ops = reload(&[shrunk[0], shrunk[1], ("learning", "false")]);
    assert_eq!(ops.len(), 1);
    assert!(ops[0].contains("learning: Some(false)") && !ops[0].contains("up: Some"));
}
