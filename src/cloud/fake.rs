//! An in-memory cloud for unit tests: who holds which address, every call counted, and a
//! failure that can be armed for the next calls.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;

use super::{Cloud, CloudKind, Owner};
use crate::error::{Error, Result};
use crate::host::Link;

#[derive(Default)]
pub struct FakeCloud {
    /// Address -> interface name holding it.
    pub holders: RefCell<HashMap<IpAddr, String>>,
    /// Every call, by name.
    pub calls: RefCell<Vec<&'static str>>,
    /// The next `fail_count` calls fail with this error.
    pub fail_with: RefCell<Option<Error>>,
    pub fail_count: Cell<u32>,
}

impl FakeCloud {
    pub fn held_by(self, ip: &str, nic: &str) -> Self {
        self.holders
            .borrow_mut()
            .insert(ip.parse().unwrap(), nic.to_string());
        self
    }
    pub fn fail(&self, e: Error, times: u32) {
        *self.fail_with.borrow_mut() = Some(e);
        self.fail_count.set(times);
    }
    pub fn holder(&self, ip: &str) -> Option<String> {
        self.holders.borrow().get(&ip.parse().unwrap()).cloned()
    }
    fn call(&self, name: &'static str) -> Result<()> {
        self.calls.borrow_mut().push(name);
        if self.fail_count.get() > 0 {
            self.fail_count.set(self.fail_count.get() - 1);
            if let Some(e) = self.fail_with.borrow().clone() {
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Cloud for FakeCloud {
    fn kind(&self) -> CloudKind {
        CloudKind::Aws
    }
    fn claim(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        self.call("claim")?;
        self.holders.borrow_mut().insert(ip, nic.name.clone());
        Ok(())
    }
    fn confirm(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        match self.owner(ip, nic)? {
            Owner::Us => Ok(()),
            other => Err(Error::transient(other.describe())),
        }
    }
    fn release(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        self.call("release")?;
        let mut h = self.holders.borrow_mut();
        if h.get(&ip) == Some(&nic.name) {
            h.remove(&ip);
        }
        Ok(())
    }
    fn owner(&self, ip: IpAddr, nic: &Link) -> Result<Owner> {
        self.call("owner")?;
        Ok(match self.holders.borrow().get(&ip) {
            Some(n) if *n == nic.name => Owner::Us,
            Some(n) => Owner::Other(n.clone()),
            None => Owner::Nobody,
        })
    }
    fn preflight(&self, ip: IpAddr, nic: &Link) -> Result<Vec<String>> {
        Ok(vec![format!("{ip}: {}", self.owner(ip, nic)?.describe())])
    }
}
