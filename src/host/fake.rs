//! An in-memory host for unit tests: records what agents do without touching the kernel.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Addr, FdbEntry, Host, Link, LinkChange, LinkDetails, RouteHop, VxlanConf, contains};
use crate::error::{Error, Result};
use crate::fault::Fault;

#[derive(Default)]
pub struct FakeHost {
    pub links: RefCell<Vec<Link>>,
    pub addrs: RefCell<Vec<Addr>>,
    /// (link, ip) pairs announced, in order.
    pub announced: RefCell<Vec<(u32, IpAddr)>>,
    /// Armed for the next mutating calls.
    pub writes: Fault,
    /// Kind, master, alias and VXLAN settings by link index (absent: a plain device).
    pub details: RefCell<BTreeMap<u32, LinkDetails>>,
    /// Forwarding entries by link index.
    pub fdb: RefCell<Vec<(u32, FdbEntry)>>,
    /// Names the fake resolver knows.
    pub names: RefCell<BTreeMap<String, Vec<IpAddr>>>,
    /// Every change made through the link and fdb calls, in order ("fdb+ 3 10.0.0.2", ...).
    pub ops: RefCell<Vec<String>>,
    /// When set, fdb_append fails after this many more entries (to test rollback).
    pub fail_fdb_after: RefCell<Option<usize>>,
    /// When set, setting this link up fails (to test rollback of the last start step).
    pub fail_set_up: RefCell<Option<u32>>,
}

impl FakeHost {
    /// A link with a MAC made of its index (`kind` tells plain links from created devices).
    fn push_link(&self, index: u32, name: &str, up: bool, kind: u8, mtu: u32) {
        self.links.borrow_mut().push(Link {
            index,
            name: name.to_string(),
            admin_up: up,
            carrier: up,
            mac: vec![2, 0, 0, 0, kind, index as u8],
            mtu,
        });
    }

    pub fn with_link(self, index: u32, name: &str, cidr: Option<(&str, u8)>) -> Self {
        self.push_link(index, name, true, 0, 1500);
        if let Some((ip, prefix)) = cidr {
            self.addrs.borrow_mut().push(Addr {
                link: index,
                ip: ip.parse().expect("test address"),
                prefix,
            });
        }
        self
    }

    pub fn has(&self, link: u32, ip: &str) -> bool {
        let ip: IpAddr = ip.parse().expect("test address");
        self.addrs
            .borrow()
            .iter()
            .any(|a| a.link == link && a.ip == ip)
    }

    /// The destinations of the all-zero (flood) entries of a link, in kernel order.
    pub fn flood(&self, link: u32) -> Vec<IpAddr> {
        self.fdb
            .borrow()
            .iter()
            .filter(|(l, e)| *l == link && e.mac == super::FLOOD_MAC)
            .filter_map(|(_, e)| e.dst)
            .collect()
    }

    fn log(&self, op: String) {
        self.ops.borrow_mut().push(op);
    }

    fn new_link(&self, name: &str, details: LinkDetails, mtu: u32) -> Result<u32> {
        super::creatable(name)?;
        self.writable()?;
        if self.links.borrow().iter().any(|l| l.name == name) {
            return Err(Error::failed(format!("{name}: File exists")));
        }
        let index = self
            .links
            .borrow()
            .iter()
            .map(|l| l.index)
            .max()
            .unwrap_or(0)
            + 1;
        self.push_link(index, name, false, 1, mtu);
        self.details.borrow_mut().insert(index, details);
        Ok(index)
    }

    fn writable(&self) -> Result<()> {
        self.writes.hit()
    }
}

impl Host for FakeHost {
    fn links(&self) -> Result<Vec<Link>> {
        Ok(self.links.borrow().clone())
    }
    fn addrs(&self) -> Result<Vec<Addr>> {
        Ok(self.addrs.borrow().clone())
    }
    fn route_to(&self, ip: IpAddr) -> Result<Option<RouteHop>> {
        // Connected routes only: the longest prefix among configured addresses.
        Ok(self
            .addrs
            .borrow()
            .iter()
            .filter(|a| contains(a.ip, a.prefix, ip))
            .max_by_key(|a| a.prefix)
            .map(|a| RouteHop {
                link: a.link,
                gateway: None,
            }))
    }
    fn add_addr(&self, link: u32, ip: IpAddr, prefix: u8) -> Result<()> {
        self.writable()?;
        self.addrs.borrow_mut().push(Addr { link, ip, prefix });
        Ok(())
    }
    fn del_addr(&self, link: u32, ip: IpAddr, prefix: u8) -> Result<()> {
        self.writable()?;
        self.addrs
            .borrow_mut()
            .retain(|a| !(a.link == link && a.ip == ip && a.prefix == prefix));
        Ok(())
    }
    fn announce(&self, link: &Link, ip: IpAddr, _count: u32, _interval: Duration) -> Result<()> {
        self.announced.borrow_mut().push((link.index, ip));
        Ok(())
    }

    fn link_details(&self) -> Result<Vec<(Link, LinkDetails)>> {
        let details = self.details.borrow();
        Ok(self
            .links
            .borrow()
            .iter()
            .map(|l| {
                (
                    l.clone(),
                    details.get(&l.index).cloned().unwrap_or_default(),
                )
            })
            .collect())
    }
    fn add_vxlan(&self, name: &str, conf: &VxlanConf, mtu: u32, mac: [u8; 6]) -> Result<u32> {
        let d = LinkDetails {
            kind: Some("vxlan".into()),
            vxlan: Some(conf.clone()),
            ..Default::default()
        };
        let index = self.new_link(name, d, mtu)?;
        if let Some(l) = self
            .links
            .borrow_mut()
            .iter_mut()
            .find(|l| l.index == index)
        {
            l.mac = mac.to_vec();
        }
        self.log(format!("add vxlan {name} {index}"));
        Ok(index)
    }
    fn add_bridge(&self, name: &str) -> Result<u32> {
        let d = LinkDetails {
            kind: Some("bridge".into()),
            ..Default::default()
        };
        let index = self.new_link(name, d, 1500)?;
        self.log(format!("add bridge {name} {index}"));
        Ok(index)
    }
    fn set_link(&self, index: u32, change: &LinkChange) -> Result<()> {
        self.writable()?;
        if change.up == Some(true) && *self.fail_set_up.borrow() == Some(index) {
            return Err(Error::transient(format!(
                "interface {index}: No buffer space"
            )));
        }
        let mut links = self.links.borrow_mut();
        let Some(link) = links.iter_mut().find(|l| l.index == index) else {
            return Err(Error::not_installed(format!(
                "interface {index}: No such device"
            )));
        };
        let mut details = self.details.borrow_mut();
        let d = details.entry(index).or_default();
        if let Some(l) = change.learning {
            match d.vxlan.as_mut() {
                Some(v) => v.learning = l,
                None => return Err(Error::failed("not a vxlan device")),
            }
        }
        if let Some(up) = change.up {
            link.admin_up = up;
            link.carrier = up;
        }
        if let Some(mtu) = change.mtu {
            link.mtu = mtu;
        }
        if let Some(m) = change.master {
            d.master = (m != 0).then_some(m);
        }
        if let Some(a) = &change.alias {
            d.alias = Some(a.clone());
        }
        drop((links, details));
        self.log(format!("set {index} {change:?}"));
        Ok(())
    }
    fn del_link(&self, index: u32) -> Result<()> {
        self.writable()?;
        self.links.borrow_mut().retain(|l| l.index != index);
        self.details.borrow_mut().remove(&index);
        self.addrs.borrow_mut().retain(|a| a.link != index);
        self.fdb.borrow_mut().retain(|(l, _)| *l != index);
        for d in self.details.borrow_mut().values_mut() {
            if d.master == Some(index) {
                d.master = None;
            }
        }
        self.log(format!("del {index}"));
        Ok(())
    }
    fn fdb(&self, index: u32) -> Result<Vec<FdbEntry>> {
        Ok(self
            .fdb
            .borrow()
            .iter()
            .filter(|(l, _)| *l == index)
            .map(|(_, e)| e.clone())
            .collect())
    }
    fn fdb_append(&self, index: u32, mac: [u8; 6], dsts: &[IpAddr]) -> Result<()> {
        self.writable()?;
        for dst in dsts {
            if let Some(n) = self.fail_fdb_after.borrow_mut().as_mut() {
                if *n == 0 {
                    return Err(Error::transient(format!("adding {dst}: No buffer space")));
                }
                *n -= 1;
            }
            let e = FdbEntry {
                mac,
                dst: Some(*dst),
            };
            let mut fdb = self.fdb.borrow_mut();
            if !fdb.iter().any(|(l, x)| *l == index && *x == e) {
                fdb.push((index, e));
                drop(fdb);
                self.log(format!("fdb+ {index} {dst}"));
            }
        }
        Ok(())
    }
    fn fdb_del(&self, index: u32, mac: [u8; 6], dsts: &[IpAddr]) -> Result<()> {
        self.writable()?;
        for dst in dsts {
            self.fdb
                .borrow_mut()
                .retain(|(l, e)| !(*l == index && e.mac == mac && e.dst == Some(*dst)));
            self.log(format!("fdb- {index} {dst}"));
        }
        Ok(())
    }
    fn resolve(&self, names: &[String], _by: Instant) -> Vec<Result<Vec<IpAddr>>> {
        let known = self.names.borrow();
        names
            .iter()
            .map(|n| {
                known.get(n).cloned().ok_or_else(|| {
                    Error::transient(format!(
                        "cannot resolve the peer {}: unknown name",
                        crate::error::shown(n)
                    ))
                })
            })
            .collect()
    }
}
