//! route-table: an overlay IP (outside the VPC's CIDR) reached through VPC route tables whose
//! entry for it points at the active node's ENI — every table that needs it, verified and
//! repaired (the LifeKeeper "backend cluster" pattern, aws-vpc-move-ip's job). Clients in any
//! subnet whose route table holds the entry reach the node; the node itself answers because
//! the address is configured on its interface.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::checks::{check_ifname, no_such_nic, pick_link};
use super::records::{CLOUD_CHECKED, Record, STARTED};
use super::{Action, ActionDecl, Agent, AgentDef, Ctx, Health};
use crate::cloud::aws::Aws;
use crate::cloud::routes::{Change, Dest, EniInfo, Needs, Routes, Selection, Table};
use crate::cloud::{self};
use crate::error::{Error, Kind, Result};
use crate::host::{Host, Link};
use crate::params::{Key, Param, Type, Values};

mod config;
use config::{parse_ip, parse_tables};

const IP: Key<String> = Key::new(
    Param::new(
        "ip",
        "Overlay IP address",
        "The overlay IPv4 address clients use, outside every CIDR block of the VPC (EC2 routes \
         addresses inside the VPC by its local route, so a route table entry for them is \
         refused). A bare address means a /32 route; address/prefix (192.168.100.10/28) routes \
         the whole block 192.168.100.0/28 to this node, and the address itself is the one \
         configured locally.",
    )
    .required()
    .unique_group("address"),
);

const ROUTE_TABLES: Key<String> = Key::new(
    Param::new(
        "route_tables",
        "Route tables",
        "The route tables (rtb-..., separated by commas or spaces) whose route for ip must point \
         at this node's ENI: the tables of every subnet whose clients use the address. auto: \
         every route table of this node's VPC that already holds a route for ip's destination \
         (looked up at each start and cloud check; a table whose route was deleted is then \
         simply no longer managed).",
    )
    .default("auto"),
);

const CREATE_MISSING: Key<bool> = Key::new(
    Param::new(
        "create_missing",
        "Create missing routes",
        "When a listed route table has no route for the destination, create it (CreateRoute) \
         instead of refusing to start. Off by default: a missing route usually means a typo \
         in route_tables, and creating routes changes which clients reach the address.",
    )
    .ty(Type::Boolean)
    .default("false"),
);

const NIC: Key<Option<String>> = Key::new(Param::new(
    "nic",
    "Network interface",
    "The interface whose ENI the routes point at, and where the address is configured. \
         Default: the interface of the route this node uses towards ip (normally the default \
         route).",
));

const SOURCE_DEST_CHECK: Key<SourceDest> = Key::new(
    Param::new(
        "source_dest_check",
        "Source/destination check handling",
        "EC2 drops traffic for an address that is not the ENI's own unless the ENI's \
         source/destination check is off. check: verify it is off at start and refuse to start \
         (exit 2) when it is on. disable: turn it off when it is on \
         (ModifyNetworkInterfaceAttribute, needs that permission). ignore: do not look.",
    )
    .default("check"),
);

static PARAMS: &[Param] = crate::params![
    &[
        IP.param,
        ROUTE_TABLES.param,
        CREATE_MISSING.param,
        NIC.param,
        cloud::params::LOCAL_ADDRESS.param,
        cloud::params::EXPECT_LOCAL_ADDRESS.param,
        SOURCE_DEST_CHECK.param,
    ],
    &cloud::params::AWS_API,
    &[cloud::params::CLOUD_CHECK_INTERVAL.param],
    &crate::log::TRACE,
];

static ACTIONS: [ActionDecl; 7] = [
    ActionDecl::new(Action::Start, 30),
    ActionDecl::new(Action::Stop, 20),
    ActionDecl::new(Action::Monitor, 20).every(10, 0),
    ActionDecl::new(Action::Monitor, 30).every(60, 10),
    ActionDecl::new(Action::MetaData, 5),
    ActionDecl::new(Action::Validate, 30),
    // Only the trace parameters are reloadable: a trace turned on needs no restart.
    ActionDecl::new(Action::ReloadAgent, 20),
];

pub static AGENT: AgentDef = AgentDef {
    name: "route-table",
    shortdesc: "Overlay IP routed to this node through VPC route tables (AWS)",
    longdesc: "Makes an overlay IP address outside the VPC's CIDR reach this node (AWS): every \
               selected VPC route table gets its route for the address pointed at the ENI of \
               nic, and the address is configured on nic.\n\n\
               start reads all tables with one DescribeRouteTables call, changes every table \
               that does not point here at once (ReplaceRoute, or CreateRoute with \
               create_missing), confirms with one more read and adds the address; a table that \
               cannot be changed fails the start with its id in the reason. stop removes the \
               local address and leaves the routes: the next node's start replaces them, and \
               removing them would black-hole clients during a planned move.\n\n\
               monitor at depth 0 checks the local address only; on probes, at \
               OCF_CHECK_LEVEL 10 and every cloud_check_interval seconds it reads the tables: \
               all pointing here is running, none is not running (7), some is repaired in \
               place with a warning (local recovery instead of a failover); blackhole routes \
               are reported. validate-all at OCF_CHECK_LEVEL 10 (or cloudha route-table check) \
               is a pre-flight: metadata, ENI, VPC, the tables, source/destination check and \
               the IAM permissions (DryRun).\n\n\
               Exit codes: a configuration wrong everywhere (no such table, no route and \
               create_missing off) gives 6, a problem of this node (missing interface, table of \
               another VPC, source/destination check on) 2 or 5, a missing permission 4, \
               transient trouble (throttling, 5xx, timeouts) 1; stop of a stopped resource \
               gives 0.",
    params: PARAMS,
    actions: &ACTIONS,
    build: RouteTable::build,
    clone: false,
    examples: &[],
};

crate::choice! {
    enum SourceDest {
        #[default]
        Check = "check",
        Disable = "disable",
        Ignore = "ignore",
    }
}

pub struct RouteTable {
    ip: Ipv4Addr,
    dest: Dest,
    tables: Selection,
    create_missing: bool,
    nic: Option<String>,
    local_address: bool,
    expect_local_address: bool,
    source_dest: SourceDest,
    opts: cloud::Options,
    check_interval: Duration,
}

/// One error for the tables that could not be changed, naming each.
fn combine(what: &str, results: Vec<(String, Result<()>)>) -> Result<()> {
    let total = results.len();
    let failed: Vec<(String, Error)> = results
        .into_iter()
        .filter_map(|(t, r)| r.err().map(|e| (t, e)))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    // A transient failure is retried by a restart; anything else decides the exit code.
    let kind = failed
        .iter()
        .map(|(_, e)| e.kind)
        .find(|k| *k != Kind::Transient)
        .unwrap_or(Kind::Transient);
    let list = failed
        .iter()
        .map(|(t, e)| format!("{t}: {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::new(
        kind,
        format!(
            "{what} failed in {} of {total} route tables: {list}",
            failed.len()
        ),
    ))
}

impl RouteTable {
    fn build(v: &Values) -> Result<Box<dyn Agent>> {
        let (ip, dest) = parse_ip(v.get(&IP).trim())?;
        let tables = parse_tables(&v.get(&ROUTE_TABLES))?;
        let local_address = v.get(&cloud::params::LOCAL_ADDRESS);
        let expect_local_address = v.get(&cloud::params::EXPECT_LOCAL_ADDRESS);
        super::checks::check_expect(local_address, expect_local_address)?;
        if local_address && dest.len < 31 && (ip == dest.net || ip == broadcast(dest)) {
            return Err(Error::config(format!(
                "ip={ip}/{} is the network or broadcast address of {dest}; give a host address \
                 inside the block (it is configured on this node), or local_address=false",
                dest.len
            )));
        }
        let create_missing = v.get(&CREATE_MISSING);
        if create_missing && tables == Selection::Auto {
            return Err(Error::config(
                "create_missing=true needs the route tables listed in route_tables: auto only \
                 finds tables that already hold the route",
            ));
        }
        let nic = v.get(&NIC);
        if let Some(n) = &nic {
            check_ifname("nic", n)?;
        }
        let opts = cloud::Options::from_values(v)?;
        let source_dest = v.get(&SOURCE_DEST_CHECK);
        Ok(Box::new(RouteTable {
            ip,
            dest,
            tables,
            create_missing,
            nic,
            local_address,
            expect_local_address,
            source_dest,
            opts,
            check_interval: v.get(&cloud::params::CLOUD_CHECK_INTERVAL),
        }))
    }

    fn with_routes<T>(&self, cx: &Ctx, f: impl FnOnce(&dyn Routes) -> Result<T>) -> Result<T> {
        if let Some(r) = cx.routes {
            return f(r);
        }
        let aws = Aws::new(&self.opts, &cx.paths.run_dir, cx.deadline)?;
        f(&aws)
    }

    /// A record of this resource (its route's destination) under the run directory.
    fn record(&self, cx: &Ctx, what: &str) -> Record {
        let key = format!("{}_{}", self.dest.net, self.dest.len);
        Record::of(cx, "route-table", &key, what)
    }

    /// The interface whose ENI the routes point at.
    fn link(&self, host: &dyn Host) -> Result<Link> {
        pick_link(host, self.nic.as_deref(), no_such_nic, || {
            let hop = host.route_to(IpAddr::V4(self.ip))?.ok_or_else(|| {
                Error::host_args(format!(
                    "this node has no route towards {} to pick an interface from; set nic",
                    self.ip
                ))
            })?;
            Ok(hop.link)
        })
    }

    /// Say it loudly when the address is inside the VPC: EC2 will not route it by table.
    fn inside_vpc(&self, eni: &EniInfo) -> Option<String> {
        eni.vpc_cidrs
            .iter()
            .find(|c| c.overlaps(&self.dest))
            .map(|c| {
                format!(
                    "ip={} ({}) lies inside CIDR {c} of {}: EC2 delivers addresses of the VPC by \
                 its local route, and a route table entry for a destination inside a VPC CIDR \
                 is refused unless it matches a whole subnet; an overlay IP must be outside \
                 every CIDR block of the VPC",
                    self.ip, self.dest, eni.vpc
                )
            })
    }

    /// The selected tables, checked: in our VPC, holding a route (or allowed to get one).
    fn survey(&self, tables: Vec<Table>, eni: &EniInfo) -> Result<Vec<Table>> {
        if tables.is_empty() {
            return Err(Error::config(format!(
                "route_tables=auto: no route table of {} holds a route for {}; create the route \
                 in the tables of the clients' subnets (aws ec2 create-route \
                 --destination-cidr-block {} ...) or list them with create_missing=true",
                eni.vpc, self.dest, self.dest
            )));
        }
        let foreign: Vec<String> = tables
            .iter()
            .filter(|t| t.vpc != eni.vpc)
            .map(|t| format!("{} ({})", t.id, t.vpc))
            .collect();
        if !foreign.is_empty() {
            return Err(Error::host_args(format!(
                "route tables {} are not in {}, the VPC of this node's ENI {}; a route can only \
                 point at an ENI of the table's own VPC",
                foreign.join(", "),
                eni.vpc,
                eni.id
            )));
        }
        let missing: Vec<&str> = tables
            .iter()
            .filter(|t| t.route.is_none())
            .map(|t| t.id.as_str())
            .collect();
        if !missing.is_empty() && !self.create_missing {
            return Err(Error::config(format!(
                "route tables {} have no route for {}; create it there, fix route_tables, or \
                 set create_missing=true",
                missing.join(", "),
                self.dest
            )));
        }
        for t in tables
            .iter()
            .filter(|t| t.route.as_ref().is_some_and(|r| r.blackhole))
        {
            tracing::warn!(
                "{}: the route for {} is a blackhole (its target {} is gone, detached or \
                 stopped): clients of that table cannot reach {}",
                t.id,
                self.dest,
                t.describe(),
                self.ip
            );
        }
        Ok(tables)
    }

    fn changes(&self, tables: &[Table], eni: &str) -> Vec<Change> {
        tables
            .iter()
            .filter(|t| !t.points_at(eni))
            .map(|t| Change {
                table: t.id.clone(),
                create: t.route.is_none(),
            })
            .collect()
    }

    /// `on`: what EC2 said of the ENI's source/destination check (None: not asked).
    fn source_dest_check(
        &self,
        routes: &dyn Routes,
        eni: &EniInfo,
        nic: &Link,
        on: Option<bool>,
    ) -> Result<()> {
        if self.source_dest == SourceDest::Ignore || on != Some(true) {
            return Ok(());
        }
        if self.source_dest == SourceDest::Disable {
            return routes.disable_source_dest_check(&eni.id);
        }
        Err(Error::host_args(format!(
            "source/destination check is on for {} ({}): EC2 drops the traffic routed to {} \
             there; turn it off (aws ec2 modify-network-interface-attribute \
             --network-interface-id {} --no-source-dest-check) or set source_dest_check=disable",
            eni.id, nic.name, self.ip, eni.id
        )))
    }

    fn local_addrs(&self, host: &dyn Host) -> Result<Vec<crate::host::Addr>> {
        Ok(host
            .addrs()?
            .into_iter()
            .filter(|a| a.ip == IpAddr::V4(self.ip))
            .collect())
    }

    fn configure_local(&self, host: &dyn Host, link: &Link) -> Result<()> {
        let ip = IpAddr::V4(self.ip);
        if !crate::host::only_on(host, link, ip, 32)? {
            tracing::info!("adding {}/32 to {}", self.ip, link.name);
            host.add_addr(link.index, ip, 32)?;
        }
        crate::host::confirm_on(host, link, ip)
    }
}

fn broadcast(d: Dest) -> Ipv4Addr {
    let host = if d.len >= 32 { 0 } else { u32::MAX >> d.len };
    Ipv4Addr::from(u32::from(d.net) | host)
}

impl Agent for RouteTable {
    fn start(&self, cx: &Ctx) -> Result<()> {
        let link = self.link(cx.host)?;
        link.check_usable()?;
        self.with_routes(cx, |routes| {
            let eni = routes.eni(&link)?;
            if let Some(w) = self.inside_vpc(&eni) {
                tracing::warn!("{w}");
            }
            // Every check before the first change: a bad table changes nothing anywhere. The
            // two reads are independent: they go out together.
            let (tables, on) = routes.tables_and_check(
                &self.tables,
                self.dest,
                &eni.vpc,
                &eni.id,
                self.source_dest != SourceDest::Ignore,
            )?;
            let tables = self.survey(tables, &eni)?;
            self.source_dest_check(routes, &eni, &link, on)?;
            let changes = self.changes(&tables, &eni.id);
            if changes.is_empty() {
                tracing::info!(
                    "all {} route tables already send {} to {} ({})",
                    tables.len(),
                    self.dest,
                    eni.id,
                    link.name
                );
            } else {
                for c in &changes {
                    let was = tables.iter().find(|t| t.id == c.table).map(Table::describe);
                    tracing::info!(
                        "{}: {} -> {} (was {})",
                        c.table,
                        self.dest,
                        eni.id,
                        was.unwrap_or_default()
                    );
                }
                combine(
                    &format!("pointing {} at {}", self.dest, eni.id),
                    routes.point(self.dest, &eni.id, &changes),
                )?;
                // EC2 is eventually consistent: a read right after the write may still show
                // the old routes, so read again with a short back-off until the deadline (as
                // vip's confirm does). Still astray then: another node's start may have
                // written after us, which is not ours to fight.
                let mut pause = std::time::Duration::from_millis(50);
                loop {
                    let now = routes.tables(&self.tables, self.dest, &eni.vpc)?;
                    let astray: Vec<String> = now
                        .iter()
                        .filter(|t| !t.points_at(&eni.id))
                        .map(|t| format!("{} -> {}", t.id, t.describe()))
                        .collect();
                    if astray.is_empty() {
                        break;
                    }
                    if cx
                        .deadline
                        .saturating_duration_since(std::time::Instant::now())
                        <= pause
                    {
                        return Err(Error::transient(format!(
                            "EC2 accepted the route changes but still shows {} for {} at the \
                             action's timeout: another node may be taking the address",
                            astray.join(", "),
                            self.dest
                        )));
                    }
                    tracing::debug!("{} not yet shown everywhere; reading again", self.dest);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(800));
                }
            }
            if self.local_address {
                self.configure_local(cx.host, &link)?;
            }
            self.record(cx, STARTED).touch();
            self.record(cx, CLOUD_CHECKED).touch();
            Ok(())
        })
    }

    fn stop(&self, cx: &Ctx) -> Result<()> {
        // Routes stay: the next node's start points them at itself, and taking them away
        // would black-hole clients during a planned move.
        if self.local_address {
            for a in self.local_addrs(cx.host)? {
                let on = crate::host::name_of(cx.host, a.link);
                tracing::info!("removing {}/{} from {on}", a.ip, a.prefix);
                cx.host.del_addr(a.link, a.ip, a.prefix)?;
            }
        }
        for what in [STARTED, CLOUD_CHECKED] {
            self.record(cx, what).remove();
        }
        Ok(())
    }

    fn monitor(&self, cx: &Ctx) -> Result<Health> {
        let link = if self.local_address {
            let present = self.local_addrs(cx.host)?;
            let Some(a) = present.first() else {
                return Ok(Health::NotRunning);
            };
            let link = self.link(cx.host)?;
            if a.link != link.index {
                return Err(Error::failed(format!(
                    "{} is configured on interface {}, not on {}",
                    self.ip, a.link, link.name
                )));
            }
            link.check_usable().map_err(|e| {
                Error::failed(format!(
                    "{} is configured but unusable: {}",
                    self.ip, e.message
                ))
            })?;
            link
        } else {
            if !cx.probe && !self.record(cx, STARTED).exists() {
                return Ok(Health::NotRunning);
            }
            let ip = IpAddr::V4(self.ip);
            if super::checks::owner_took_it_away(self.expect_local_address, cx.host, ip)? {
                return Ok(Health::NotRunning);
            }
            self.link(cx.host)?
        };
        let checked = self.record(cx, CLOUD_CHECKED);
        if !checked.cloud_check_due(cx, self.check_interval) {
            return Ok(Health::Running);
        }
        // Without a local address a probe has only the cloud to go by: no answer, no verdict.
        let local_truth = self.local_address || !cx.probe;
        let outcome = self.with_routes(cx, |routes| {
            let eni = routes.eni(&link)?;
            let tables = routes.tables(&self.tables, self.dest, &eni.vpc)?;
            for t in tables
                .iter()
                .filter(|t| t.route.as_ref().is_some_and(|r| r.blackhole))
            {
                tracing::warn!(
                    "{}: the route for {} is a blackhole (target {} gone or stopped)",
                    t.id,
                    self.dest,
                    t.describe()
                );
            }
            let ours = tables.iter().filter(|t| t.points_at(&eni.id)).count();
            if ours == 0 {
                let elsewhere: Vec<String> = tables
                    .iter()
                    .map(|t| format!("{} -> {}", t.id, t.describe()))
                    .collect();
                tracing::warn!(
                    "{} is configured here but no route table sends {} to {}: {}",
                    self.ip,
                    self.dest,
                    eni.id,
                    if elsewhere.is_empty() {
                        "no table holds a route".to_string()
                    } else {
                        elsewhere.join(", ")
                    }
                );
                return Ok(Health::NotRunning);
            }
            let changes = self.changes(&tables, &eni.id);
            if changes.is_empty() {
                self.record(cx, CLOUD_CHECKED).touch();
                return Ok(Health::Running);
            }
            let missing: Vec<&str> = changes
                .iter()
                .filter(|c| c.create)
                .map(|c| c.table.as_str())
                .collect();
            if !missing.is_empty() && !self.create_missing {
                return Err(Error::failed(format!(
                    "route tables {} no longer hold a route for {} (create_missing is off)",
                    missing.join(", "),
                    self.dest
                )));
            }
            // Local recovery, as LifeKeeper does: put the drifted entries back.
            let drifted: Vec<String> = changes
                .iter()
                .map(|c| {
                    let was = tables.iter().find(|t| t.id == c.table).map(Table::describe);
                    format!("{} -> {}", c.table, was.unwrap_or_default())
                })
                .collect();
            tracing::warn!(
                "{} of {} route tables drifted ({}); pointing them back at {}",
                changes.len(),
                tables.len(),
                drifted.join(", "),
                eni.id
            );
            combine(
                &format!("repairing the route for {}", self.dest),
                routes.point(self.dest, &eni.id, &changes),
            )?;
            self.record(cx, CLOUD_CHECKED).touch();
            Ok(Health::Running)
        });
        match outcome {
            // The cloud API's trouble never turns a healthy resource into "not running" or a
            // ban (Failed is our own verdict on the tables, not the API's).
            Err(e) if local_truth && e.kind != Kind::Failed => Ok(super::judge_cloud_failure(e)),
            other => other,
        }
    }

    fn preflight(&self, cx: &Ctx) -> Result<Vec<String>> {
        let link = self.link(cx.host)?;
        link.check_usable()?;
        self.with_routes(cx, |routes| {
            let eni = routes.eni(&link)?;
            let mut report = vec![format!(
                "{} is {} in {} (VPC CIDR {})",
                link.name,
                eni.id,
                eni.vpc,
                eni.vpc_cidrs
                    .iter()
                    .map(Dest::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )];
            match self.inside_vpc(&eni) {
                Some(w) => {
                    tracing::warn!("{w}");
                    report.push(format!("WARNING: {w}"));
                }
                None => report.push(format!("{} is outside the VPC's CIDR blocks", self.dest)),
            }
            let tables = self.survey(routes.tables(&self.tables, self.dest, &eni.vpc)?, &eni)?;
            for t in &tables {
                let whose = if t.points_at(&eni.id) {
                    " (this node)"
                } else {
                    ""
                };
                report.push(format!(
                    "{}: {} -> {}{whose}",
                    t.id,
                    self.dest,
                    t.describe()
                ));
            }
            // Permissions first: a denied read below would hide the others.
            let needs = Needs {
                replace: true,
                create: self.create_missing,
                read_source_dest_check: self.source_dest != SourceDest::Ignore,
                modify_source_dest_check: self.source_dest == SourceDest::Disable,
            };
            report.extend(routes.permissions(self.dest, &eni.id, &tables, needs)?);
            if self.source_dest != SourceDest::Ignore {
                let on = routes.source_dest_check(&eni.id)?;
                if on && self.source_dest == SourceDest::Check {
                    self.source_dest_check(routes, &eni, &link, Some(on))?;
                }
                report.push(format!(
                    "source/destination check on {}: {}",
                    eni.id,
                    match (on, self.source_dest) {
                        (false, _) => "off",
                        _ => "on (start turns it off)",
                    }
                ));
            }
            Ok(report)
        })
    }

    fn reload(&self, _cx: &Ctx) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
