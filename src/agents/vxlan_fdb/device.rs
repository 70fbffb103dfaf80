//! Making the host look like the plan: creating or adopting the VXLAN device and bridge,
//! its flood entries and overlay address, and taking back what a failed start made.

use std::net::IpAddr;

use super::plan::{Drift, Plan, differences, drift, list};
use super::{MARK, VxlanFdb};
use crate::error::{Error, Result};
use crate::host::{FLOOD_MAC, Host, Link, LinkChange, LinkDetails, VxlanConf};

/// Bring the flood entries of `index` to `desired`: additions first, so traffic between the
/// remaining peers never stops.
pub(super) fn reconcile(host: &dyn Host, index: u32, desired: &[IpAddr]) -> Result<Drift> {
    let d = drift(host, index, desired)?;
    if !d.missing.is_empty() {
        host.fdb_append(index, FLOOD_MAC, &d.missing)?;
    }
    if !d.stale.is_empty() {
        host.fdb_del(index, FLOOD_MAC, &d.stale)?;
    }
    Ok(d)
}

pub(super) type Links = Vec<(Link, LinkDetails)>;

pub(super) fn find<'a>(all: &'a Links, name: &str) -> Option<&'a (Link, LinkDetails)> {
    all.iter().find(|(l, _)| l.name == name)
}

pub(super) fn ours(d: &LinkDetails) -> bool {
    d.alias.as_deref() == Some(MARK)
}

/// Mark a device start created, so that stop deletes only those.
fn mark(host: &dyn Host, index: u32) -> Result<()> {
    host.set_link(
        index,
        &LinkChange {
            alias: Some(MARK.into()),
            ..Default::default()
        },
    )
}

/// Set learning on the device back to the parameter where it differs; whether it did.
pub(super) fn restore_learning(
    vx: &VxlanFdb,
    host: &dyn Host,
    all: &Links,
    index: u32,
) -> Result<bool> {
    let differs = find(all, &vx.ifname)
        .and_then(|(_, d)| d.vxlan.as_ref())
        .is_some_and(|v| v.learning != vx.learning);
    if differs {
        host.set_link(
            index,
            &LinkChange {
                learning: Some(vx.learning),
                ..Default::default()
            },
        )?;
    }
    Ok(differs)
}

/// What a failed start must undo.
#[derive(Default)]
pub(super) struct Created {
    vxlan: Option<u32>,
    bridge: Option<u32>,
    /// An adopted (pre-existing) device this start made a port of the bridge.
    joined: Option<u32>,
    /// Flood entries this start adds to an adopted device (those of a created one go with it).
    fdb: Option<(u32, Vec<IpAddr>)>,
    /// The overlay address this start added (on a bridge that existed before, it would stay).
    addr: Option<(u32, IpAddr, u8)>,
}

/// Is an existing link this mesh's device? Err with the reason when it is not.
pub(super) fn compatible(
    vx: &VxlanFdb,
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
            w.vni = vx.vni;
            w.port = vx.port;
            differences(have, &w, &name)
        }
    };
    if !diffs.is_empty() {
        return Err(format!("has {}", diffs.join(", ")));
    }
    if let (Some(b), Some(m)) = (&vx.bridge, d.master) {
        let master = name(m);
        if master != *b {
            return Err(format!("is a port of {master}, not of bridge={b}"));
        }
    }
    let _ = link;
    Ok(())
}

/// The link that carries the overlay address.
pub(super) fn address_link<'a>(vx: &VxlanFdb, all: &'a Links, vxlan: &'a Link) -> Option<&'a Link> {
    match &vx.bridge {
        Some(b) => find(all, b).map(|(l, _)| l),
        None => Some(vxlan),
    }
}

/// Put the overlay address on `link`; whether it had to be added.
pub(super) fn ensure_address(
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

/// Create or adopt the device (and bridge), recording in `created` what a failed start must
/// undo.
pub(super) fn bring_up(
    vx: &VxlanFdb,
    host: &dyn Host,
    plan: &Plan,
    created: &mut Created,
) -> Result<()> {
    let want = plan.want(vx);
    let all = host.link_details()?;
    // The bridge first: a refusal must come before anything is created.
    let bridge = match &vx.bridge {
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
    let existing = find(&all, &vx.ifname);
    if let Some((link, d)) = existing
        && let Err(why) = compatible(vx, &all, link, d, Some(&want))
    {
        if !vx.replace {
            return Err(Error::host_args(format!(
                "interface {} already exists on this node and {why}; it was left \
                 untouched. Delete it, choose another ifname, or set \
                 replace_incompatible=true",
                vx.ifname
            )));
        }
        tracing::warn!(
            "interface {} {why}: deleting it (replace_incompatible=true)",
            vx.ifname
        );
        host.del_link(link.index)?;
    }
    let bridge = match (&vx.bridge, bridge) {
        (Some(b), None) => {
            tracing::info!("creating bridge {b}");
            let i = host.add_bridge(b)?;
            created.bridge = Some(i);
            mark(host, i)?;
            Some(i)
        }
        (_, b) => b,
    };
    let all = host.link_details()?;
    let (index, details) = match find(&all, &vx.ifname) {
        Some((link, d)) => {
            tracing::info!("adopting the existing {}", vx.ifname);
            let mut change = LinkChange::default();
            if d.vxlan.as_ref().is_some_and(|v| v.learning != vx.learning) {
                change.learning = Some(vx.learning);
            }
            if link.mtu != plan.mtu {
                tracing::warn!("{} has mtu {}; setting {}", vx.ifname, link.mtu, plan.mtu);
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
                vx.ifname,
                vx.vni,
                vx.port,
                plan.dev.name,
                plan.local,
                plan.mtu
            );
            let i = host.add_vxlan(&vx.ifname, &want, plan.mtu, stable_mac(vx.vni, plan.local))?;
            created.vxlan = Some(i);
            mark(host, i)?;
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
        && ensure_address(host, plan, on, false)?
    {
        created.addr = Some((on, ip, prefix));
    }
    host.set_link(index, &up)?;
    tracing::info!(
        "{} is up with {} flood entries ({}){}",
        vx.ifname,
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
pub(super) fn current(vx: &VxlanFdb, host: &dyn Host) -> Result<Option<(Links, Link)>> {
    let all = host.link_details()?;
    let Some((link, d)) = find(&all, &vx.ifname).cloned() else {
        return Ok(None);
    };
    if let Err(why) = compatible(vx, &all, &link, &d, None) {
        return Err(Error::failed(format!(
            "interface {} {why}: it is not this mesh's device",
            vx.ifname
        )));
    }
    Ok(Some((all, link)))
}

pub(super) fn remove_address(vx: &VxlanFdb, host: &dyn Host, link: u32) -> Result<()> {
    let wanted: Vec<IpAddr> = vx.address.iter().map(|a| a.ip).collect();
    for a in host.addrs()?.into_iter().filter(|a| a.link == link) {
        if wanted.contains(&a.ip) {
            host.del_addr(a.link, a.ip, a.prefix)?;
        }
    }
    Ok(())
}

/// Undo what a failed start (`e`) made: what it added to devices that existed before, then
/// the devices it created.
pub(super) fn rollback(vx: &VxlanFdb, host: &dyn Host, created: &Created, e: &Error) {
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
            tracing::error!("could not take {} out of the bridge: {e2}", vx.ifname);
        }
    }
    for (what, index) in [("VXLAN device", created.vxlan), ("bridge", created.bridge)] {
        if let Some(i) = index {
            tracing::warn!("start failed ({e}): deleting the {what} it created");
            if let Err(e2) = host.del_link(i) {
                tracing::error!("could not delete the {what} ({i}): {e2}");
            }
        }
    }
}

/// The VXLAN device's MAC address, the same every time this node creates it: a locally
/// administered unicast address from the VNI's low byte and the underlay address's last four
/// bytes. The kernel's default is random, and after a restart (a failed monitor, a reboot) the
/// peers' neighbour caches would keep the old MAC for up to their stale time, during which
/// the overlay address does not answer them.
pub(super) fn stable_mac(vni: u32, local: std::net::IpAddr) -> [u8; 6] {
    let tail: [u8; 4] = match local {
        std::net::IpAddr::V4(ip) => ip.octets(),
        std::net::IpAddr::V6(ip) => {
            let o = ip.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, vni as u8, tail[0], tail[1], tail[2], tail[3]]
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

    /// A VXLAN device vxlan10 on eth0 that exists before the agent runs.
    fn existing(host: &FakeHost, vni: u32, port: u16, learning: bool, mtu: u32) -> u32 {
        let conf = VxlanConf {
            vni,
            port,
            dev: Some(2),
            local: None,
            group: None,
            learning,
        };
        host.add_vxlan("vxlan10", &conf, mtu, [2, 0, 0, 0, 0, 10])
            .unwrap()
    }

    #[test]
    fn a_recreated_device_gets_the_same_mac_and_each_node_its_own() {
        let host = node1();
        let mac = |h: &FakeHost| {
            let l = h.links().unwrap();
            l.into_iter().find(|l| l.name == "vxlan10").unwrap()
        };
        with(&host, false, |cx| mesh(&[]).start(cx)).unwrap();
        let first = mac(&host);
        assert_eq!(first.mac, vec![0x02, 10, 192, 168, 77, 1]);
        host.del_link(first.index).unwrap();
        with(&host, false, |cx| mesh(&[]).start(cx)).unwrap();
        assert_eq!(
            mac(&host).mac,
            first.mac,
            "the peers' neighbour caches stay right"
        );
        assert_ne!(
            stable_mac(10, ip("192.168.77.2")),
            stable_mac(10, ip("192.168.77.1"))
        );
        assert_ne!(
            stable_mac(11, ip("192.168.77.1")),
            stable_mac(10, ip("192.168.77.1"))
        );
        assert_eq!(stable_mac(10, ip("fd00:77::1"))[..2], [0x02, 10]);
    }

    #[test]
    fn incompatible_device_is_refused_and_left_alone() {
        let host = node1();
        let index = existing(&host, 11, 8472, true, 1500);
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
        let index = existing(&host, 10, 4789, false, 1450);
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
    fn failed_start_takes_back_what_it_added_to_existing_devices() {
        // An adopted VXLAN device (not a bridge port) and a bridge that both existed before.
        let host = node1();
        let vx = existing(&host, 10, 4789, true, 1450);
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
}
