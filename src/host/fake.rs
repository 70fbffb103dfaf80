//! An in-memory host for unit tests: records what agents do without touching the kernel.

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::Duration;

use super::{Addr, Host, Link, RouteHop, contains};
use crate::error::{Error, Result};

#[derive(Default)]
pub struct FakeHost {
    pub links: RefCell<Vec<Link>>,
    pub addrs: RefCell<Vec<Addr>>,
    /// (link, ip) pairs announced, in order.
    pub announced: RefCell<Vec<(u32, IpAddr)>>,
    /// When set, every mutating call fails with this error.
    pub fail_writes: RefCell<Option<Error>>,
}

impl FakeHost {
    pub fn with_link(self, index: u32, name: &str, cidr: Option<(&str, u8)>) -> Self {
        self.links.borrow_mut().push(Link {
            index,
            name: name.to_string(),
            admin_up: true,
            carrier: true,
            mac: vec![2, 0, 0, 0, 0, index as u8],
            mtu: 1500,
        });
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

    fn writable(&self) -> Result<()> {
        match &*self.fail_writes.borrow() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
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
}
