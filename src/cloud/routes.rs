//! The cloud side of the route-table agent: VPC route tables whose entry for an overlay
//! destination must point at this node's ENI. The agent speaks only to [`Routes`]; the EC2
//! implementation is `impl Routes for Aws` (cloud/aws/routes.rs), the in-memory one
//! `fake::FakeRoutes`.

use std::fmt;
use std::net::Ipv4Addr;

use crate::error::Result;
use crate::host::Link;

/// A route destination: an IPv4 network in canonical form (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    pub net: Ipv4Addr,
    pub len: u8,
}

impl Dest {
    /// The network of `ip/len`.
    pub fn of(ip: Ipv4Addr, len: u8) -> Dest {
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        };
        Dest {
            net: Ipv4Addr::from(u32::from(ip) & mask),
            len,
        }
    }
    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Dest) -> bool {
        let len = self.len.min(other.len);
        Dest::of(self.net, len) == Dest::of(other.net, len)
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

/// What instance metadata says about the ENI behind `nic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniInfo {
    pub id: String,
    pub vpc: String,
    /// The VPC's IPv4 CIDR blocks (an overlay address must lie outside all of them).
    pub vpc_cidrs: Vec<Dest>,
}

/// Which route tables the resource manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every route table of the VPC that holds a route for the destination.
    Auto,
    Ids(Vec<String>),
}

/// The route for the destination in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The ENI it points at, when it points at an ENI or an instance.
    pub eni: Option<String>,
    /// Its target as EC2 names it (eni-..., i-..., igw-..., ...), for messages.
    pub target: String,
    /// EC2 state blackhole: the target ENI is gone or detached, or its instance stopped.
    pub blackhole: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub id: String,
    pub vpc: String,
    /// None: the table has no route for the destination.
    pub route: Option<Route>,
}

impl Table {
    pub fn points_at(&self, eni: &str) -> bool {
        self.route
            .as_ref()
            .is_some_and(|r| !r.blackhole && r.eni.as_deref() == Some(eni))
    }
    /// Where the route points, for messages.
    pub fn describe(&self) -> String {
        match &self.route {
            None => "no route".to_string(),
            Some(r) if r.blackhole => format!("{} (blackhole)", r.target),
            Some(r) => r.target.clone(),
        }
    }
}

/// One change: point the destination of `table` at the ENI, creating the route when `create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub table: String,
    pub create: bool,
}

/// What the pre-flight should try (with DryRun where EC2 has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub replace: bool,
    pub create: bool,
    pub read_source_dest_check: bool,
    pub modify_source_dest_check: bool,
}

/// Route-table operations. Every call is bounded by the action's deadline.
pub trait Routes {
    /// The ENI behind `nic`, its VPC and the VPC's CIDR blocks (instance metadata only).
    fn eni(&self, nic: &Link) -> Result<EniInfo>;
    /// The selected tables and their route for `dest`: one read of the cloud, whatever the
    /// number of tables.
    fn tables(&self, sel: &Selection, dest: Dest, vpc: &str) -> Result<Vec<Table>>;
    /// Apply every change at once; the outcome of each, by table id, in the order given.
    fn point(&self, dest: Dest, eni: &str, changes: &[Change]) -> Vec<(String, Result<()>)>;
    /// Whether source/destination checking is on for the ENI.
    fn source_dest_check(&self, eni: &str) -> Result<bool>;
    /// `tables`, and with `check` also `source_dest_check`: two independent reads, which a
    /// provider makes at once (a start waits for the slower, not for both in turn).
    fn tables_and_check(
        &self,
        sel: &Selection,
        dest: Dest,
        vpc: &str,
        eni: &str,
        check: bool,
    ) -> Result<(Vec<Table>, Option<bool>)> {
        let tables = self.tables(sel, dest, vpc)?;
        let on = if check {
            Some(self.source_dest_check(eni)?)
        } else {
            None
        };
        Ok((tables, on))
    }
    fn disable_source_dest_check(&self, eni: &str) -> Result<()>;
    /// Try the permissions the resource needs without changing anything (DryRun): report
    /// lines, or a permission error naming every missing `ec2:Action`.
    fn permissions(
        &self,
        dest: Dest,
        eni: &str,
        tables: &[Table],
        needs: Needs,
    ) -> Result<Vec<String>>;
    /// Where the cloud is reached, for reports.
    fn describe(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let d = Dest::of("192.168.100.77".parse().unwrap(), 28);
        assert_eq!(d.to_string(), "192.168.100.64/28");
        let vpc = Dest::of("10.0.0.0".parse().unwrap(), 16);
        assert!(!d.overlaps(&vpc));
        assert!(Dest::of("10.0.9.9".parse().unwrap(), 32).overlaps(&vpc));
        assert!(vpc.overlaps(&Dest::of("10.0.0.0".parse().unwrap(), 8)));
        assert_eq!(
            Dest::of("1.2.3.4".parse().unwrap(), 0).to_string(),
            "0.0.0.0/0"
        );
    }
}
