//! An in-memory cloud for unit tests: who holds which address, every call counted, and a
//! failure that can be armed for the next calls.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;

use super::{Cloud, CloudKind, Owner};
use crate::error::{Error, Result};
use crate::fault::Fault;
use crate::host::Link;

#[derive(Default)]
pub struct FakeCloud {
    /// Address -> interface name holding it.
    pub holders: RefCell<HashMap<IpAddr, String>>,
    /// Every call, by name.
    pub calls: RefCell<Vec<&'static str>>,
    /// Armed by [`fail`](Self::fail) for the next calls.
    pub fault: Fault,
}

impl FakeCloud {
    pub fn held_by(self, ip: &str, nic: &str) -> Self {
        self.holders
            .borrow_mut()
            .insert(ip.parse().unwrap(), nic.to_string());
        self
    }
    pub fn fail(&self, e: Error, times: u32) {
        self.fault.arm(e, times);
    }
    pub fn holder(&self, ip: &str) -> Option<String> {
        self.holders.borrow().get(&ip.parse().unwrap()).cloned()
    }
    fn call(&self, name: &'static str) -> Result<()> {
        self.calls.borrow_mut().push(name);
        self.fault.hit()
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

/// In-memory route tables for the route-table agent: every table's route for the one
/// destination, every call counted, failures armed per call or per table.
pub struct FakeRoutes {
    pub eni: super::routes::EniInfo,
    pub tables: RefCell<Vec<super::routes::Table>>,
    pub source_dest_check: Cell<bool>,
    pub calls: RefCell<Vec<String>>,
    /// Armed by [`fail`](Self::fail) for the next calls.
    pub fault: Fault,
    /// Changes of these tables fail with the error.
    pub fail_tables: RefCell<HashMap<String, Error>>,
    /// Permissions the pre-flight finds missing.
    pub denied: RefCell<Vec<String>>,
}

impl FakeRoutes {
    /// Our ENI `eni-me` in `vpc-1` (10.0.0.0/16) and the given tables, each pointing at the
    /// given ENI (None: no route).
    pub fn new(tables: &[(&str, Option<&str>)]) -> Self {
        use super::routes::{Dest, EniInfo, Route, Table};
        FakeRoutes {
            eni: EniInfo {
                id: "eni-me".into(),
                vpc: "vpc-1".into(),
                vpc_cidrs: vec![Dest::of("10.0.0.0".parse().unwrap(), 16)],
            },
            tables: RefCell::new(
                tables
                    .iter()
                    .map(|(id, to)| Table {
                        id: id.to_string(),
                        vpc: "vpc-1".into(),
                        route: to.map(|t| Route {
                            eni: Some(t.to_string()),
                            target: t.to_string(),
                            blackhole: false,
                        }),
                    })
                    .collect(),
            ),
            source_dest_check: Cell::new(false),
            calls: RefCell::new(Vec::new()),
            fault: Fault::default(),
            fail_tables: RefCell::new(HashMap::new()),
            denied: RefCell::new(Vec::new()),
        }
    }
    pub fn fail(&self, e: Error, times: u32) {
        self.fault.arm(e, times);
    }
    /// Where the route of `table` points (None: no route).
    pub fn target(&self, table: &str) -> Option<String> {
        self.tables
            .borrow()
            .iter()
            .find(|t| t.id == table)
            .and_then(|t| t.route.as_ref())
            .and_then(|r| r.eni.clone())
    }
    pub fn set(&self, table: &str, eni: Option<&str>, blackhole: bool) {
        for t in self
            .tables
            .borrow_mut()
            .iter_mut()
            .filter(|t| t.id == table)
        {
            t.route = eni.map(|e| super::routes::Route {
                eni: Some(e.to_string()),
                target: e.to_string(),
                blackhole,
            });
        }
    }
    pub fn count(&self, name: &str) -> usize {
        self.calls.borrow().iter().filter(|c| *c == name).count()
    }
    fn call(&self, name: &str) -> Result<()> {
        self.calls.borrow_mut().push(name.to_string());
        self.fault.hit()
    }
}

impl super::routes::Routes for FakeRoutes {
    fn eni(&self, _nic: &Link) -> Result<super::routes::EniInfo> {
        Ok(self.eni.clone())
    }
    fn tables(
        &self,
        sel: &super::routes::Selection,
        _dest: super::routes::Dest,
        vpc: &str,
    ) -> Result<Vec<super::routes::Table>> {
        use super::routes::Selection;
        self.call("describe")?;
        let all = self.tables.borrow();
        match sel {
            Selection::Auto => Ok(all
                .iter()
                .filter(|t| t.vpc == vpc && t.route.is_some())
                .cloned()
                .collect()),
            Selection::Ids(ids) => ids
                .iter()
                .map(|id| {
                    all.iter().find(|t| t.id == *id).cloned().ok_or_else(|| {
                        Error::config(format!(
                            "EC2 DescribeRouteTables failed: InvalidRouteTableID.NotFound: \
                             The routeTable ID '{id}' does not exist"
                        ))
                    })
                })
                .collect(),
        }
    }
    fn point(
        &self,
        _dest: super::routes::Dest,
        eni: &str,
        changes: &[super::routes::Change],
    ) -> Vec<(String, Result<()>)> {
        changes
            .iter()
            .map(|c| {
                let r = self
                    .call(if c.create { "create" } else { "replace" })
                    .and_then(|_| match self.fail_tables.borrow().get(&c.table) {
                        Some(e) => Err(e.clone()),
                        None => Ok(()),
                    })
                    .map(|_| self.set(&c.table, Some(eni), false));
                (c.table.clone(), r)
            })
            .collect()
    }
    fn source_dest_check(&self, _eni: &str) -> Result<bool> {
        self.call("describe-eni")?;
        Ok(self.source_dest_check.get())
    }
    fn disable_source_dest_check(&self, _eni: &str) -> Result<()> {
        self.call("modify-eni")?;
        self.source_dest_check.set(false);
        Ok(())
    }
    fn permissions(
        &self,
        _dest: super::routes::Dest,
        _eni: &str,
        _tables: &[super::routes::Table],
        _needs: super::routes::Needs,
    ) -> Result<Vec<String>> {
        self.call("dry-run")?;
        let denied = self.denied.borrow();
        if denied.is_empty() {
            Ok(vec!["permissions granted".into()])
        } else {
            Err(Error::permission(format!("lacks {}", denied.join(", "))))
        }
    }
    fn describe(&self) -> String {
        "the fake".into()
    }
}

/// In-memory instances for fence_cloudha: a stop or start passes through `stopping` or
/// `pending` for `lag` reads (forever when `stuck`), as the real clouds do.
#[derive(Default)]
pub struct FakePower {
    pub instances: RefCell<Vec<super::power::Instance>>,
    pub own: Option<String>,
    pub calls: RefCell<Vec<String>>,
    pub fault: Fault,
    pub lag: Cell<u32>,
    pub stuck: Cell<bool>,
    /// StartInstances fails (a capacity error, say).
    pub refuse_start: Cell<bool>,
    /// A stop of a stopped instance is a no-op (as EC2's).
    pub idempotent_stop: Cell<bool>,
    /// Reads left until the instance in transit arrives, and where.
    pending: RefCell<HashMap<String, (u32, super::power::PowerState)>>,
}

impl FakePower {
    pub fn with(list: &[(&str, &str, bool)]) -> Self {
        use super::power::{Instance, PowerState};
        let p = FakePower::default();
        *p.instances.borrow_mut() = list
            .iter()
            .map(|(id, name, on)| Instance {
                id: id.to_string(),
                name: name.to_string(),
                state: if *on { PowerState::On } else { PowerState::Off },
            })
            .collect();
        p
    }
    pub fn count(&self, call: &str) -> usize {
        self.calls.borrow().iter().filter(|c| *c == call).count()
    }
    fn call(&self, name: &str) -> Result<()> {
        self.calls.borrow_mut().push(name.to_string());
        self.fault.hit()
    }
    fn set(&self, id: &str, s: super::power::PowerState) {
        for i in self
            .instances
            .borrow_mut()
            .iter_mut()
            .filter(|i| i.id == id)
        {
            i.state = s.clone();
        }
    }
    fn start_moving(&self, id: &str, word: &str, to: super::power::PowerState) {
        self.set(id, super::power::PowerState::Moving(word.into()));
        self.pending
            .borrow_mut()
            .insert(id.to_string(), (self.lag.get(), to));
    }
}

impl super::power::Power for FakePower {
    fn stop_is_idempotent(&self) -> bool {
        self.idempotent_stop.get()
    }
    fn is_id(&self, s: &str) -> bool {
        s.starts_with("i-")
    }
    fn state(&self, id: &str) -> Result<super::power::PowerState> {
        self.call("state")?;
        let arrived = match self.pending.borrow_mut().get_mut(id) {
            Some((0, to)) if !self.stuck.get() => Some(to.clone()),
            Some((n, _)) => {
                *n = n.saturating_sub(1);
                None
            }
            None => None,
        };
        if let Some(to) = arrived {
            self.pending.borrow_mut().remove(id);
            self.set(id, to);
        }
        self.instances
            .borrow()
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.state.clone())
            .ok_or_else(|| Error::config(format!("no instance {id}")))
    }
    fn off(&self, id: &str) -> Result<()> {
        self.call("off")?;
        self.start_moving(id, "stopping", super::power::PowerState::Off);
        Ok(())
    }
    fn on(&self, id: &str) -> Result<()> {
        self.call("on")?;
        if self.refuse_start.get() {
            return Err(Error::failed("InsufficientInstanceCapacity"));
        }
        self.start_moving(id, "pending", super::power::PowerState::On);
        Ok(())
    }
    fn instances(&self) -> Result<Vec<super::power::Instance>> {
        self.call("instances")?;
        Ok(self.instances.borrow().clone())
    }
    fn own_id(&self) -> Option<String> {
        self.own.clone()
    }
    fn preflight(&self, id: &str) -> Result<Vec<String>> {
        self.call("preflight")?;
        Ok(vec![format!("{id}: allowed")])
    }
}
