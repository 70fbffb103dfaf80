//! The agents. Each is one file that declares its parameters and implements [`Agent`] against
//! the host and cloud traits; adding an agent is a new file and one line in [`AGENTS`].

use std::path::PathBuf;
use std::time::Instant;

pub use crate::action::Action;
use crate::cloud::Cloud;
use crate::cloud::routes::Routes;
use crate::error::Result;
use crate::host::Host;
use crate::params::{Param, Values};

pub mod checks;
pub mod ready;
pub mod records;
pub mod route_table;
#[cfg(test)]
pub mod testing;
pub mod vip;
pub mod vxlan_fdb;

/// Every agent this binary carries.
pub static AGENTS: &[&AgentDef] = &[
    &vip::AGENT,
    &vxlan_fdb::AGENT,
    &route_table::AGENT,
    &ready::AGENT,
];

pub fn find(name: &str) -> Option<&'static AgentDef> {
    AGENTS.iter().copied().find(|a| a.name == name)
}

/// An action as advertised in meta-data (timeouts and intervals in seconds).
#[derive(Debug, Clone, Copy)]
pub struct ActionDecl {
    pub action: Action,
    pub timeout: u32,
    pub interval: Option<u32>,
    pub depth: Option<u32>,
}

impl ActionDecl {
    pub const fn new(action: Action, timeout: u32) -> Self {
        ActionDecl {
            action,
            timeout,
            interval: None,
            depth: None,
        }
    }
    pub const fn every(mut self, interval: u32, depth: u32) -> Self {
        self.interval = Some(interval);
        self.depth = Some(depth);
        self
    }
}

/// The standard action set with the given timeouts; `reload-agent` only when a parameter is
/// reloadable.
pub const fn standard_actions(start: u32, stop: u32, monitor: u32) -> [ActionDecl; 7] {
    [
        ActionDecl::new(Action::Start, start),
        ActionDecl::new(Action::Stop, stop),
        ActionDecl::new(Action::Monitor, monitor).every(10, 0),
        ActionDecl::new(Action::Monitor, monitor).every(60, 10),
        ActionDecl::new(Action::MetaData, 5),
        ActionDecl::new(Action::Validate, 20),
        ActionDecl::new(Action::ReloadAgent, 20),
    ]
}

pub struct AgentDef {
    pub name: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    pub params: &'static [Param],
    pub actions: &'static [ActionDecl],
    /// Build the agent from validated values, checking what can be checked without the host
    /// (validate-all at level 0). Host and cloud checks happen in the actions.
    pub build: fn(&Values) -> Result<Box<dyn Agent>>,
    /// Runs as a clone on every node (the examples say so).
    pub clone: bool,
    /// Configurations beyond the generic ones, for the man page.
    pub examples: &'static [Example],
}

/// One configuration example: what it is for, then the commands or file lines.
#[derive(Debug)]
pub struct Example {
    pub intro: &'static str,
    pub lines: &'static [&'static str],
}

impl std::fmt::Debug for AgentDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl AgentDef {
    pub fn has_reloadable(&self) -> bool {
        self.params.iter().any(|p| p.reloadable)
    }
    /// The declared timeout of an action, used when the caller gives none.
    pub fn timeout_of(&self, action: Action) -> Option<u32> {
        let action = action.declared_as();
        self.actions
            .iter()
            .find(|a| a.action == action)
            .map(|a| a.timeout)
    }
    /// The actions this agent advertises: `reload-agent` only when a parameter is reloadable.
    pub fn advertised(&self) -> impl Iterator<Item = &ActionDecl> {
        self.actions
            .iter()
            .filter(|a| a.action != Action::ReloadAgent || self.has_reloadable())
    }
}

/// Files and directories the agents read; tests point them elsewhere.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dmi_dir: PathBuf,
    pub run_dir: PathBuf,
    /// The corosync.conf that vxlan-fdb peers_from=corosync reads.
    pub corosync_conf: PathBuf,
}

/// What an action runs with.
pub struct Ctx<'a> {
    pub host: &'a dyn Host,
    pub paths: &'a Paths,
    /// OCF_CHECK_LEVEL (0, 10, 20).
    pub check_level: u32,
    /// A monitor with no interval: it must tell the truth about a resource someone else may
    /// have started.
    pub probe: bool,
    pub deadline: Instant,
    /// A cloud to use instead of the one the parameters select (unit tests).
    pub cloud: Option<&'a dyn Cloud>,
    /// Route tables to use instead of the EC2 ones (unit tests).
    pub routes: Option<&'a dyn Routes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Running,
    NotRunning,
    /// Running, and the data path is healthy, but something the next failover needs is broken
    /// (credentials, a permission): OCF_DEGRADED (190), Clusterware PARTIAL (4), with the reason.
    Degraded(String),
}

/// The one rule for every agent when the cloud check of a monitor fails while the data path
/// here is healthy: the management plane's trouble never fails over or bans a healthy address.
/// Passing trouble (throttling, outages, timeouts) keeps it running with a warning and the
/// next monitor asks again; anything else (credentials, permissions, a resource the cloud no
/// longer knows) is degraded, with the reason, because the next failover would fail on it.
pub fn judge_cloud_failure(e: crate::error::Error) -> Health {
    if e.kind == crate::error::Kind::Transient {
        tracing::warn!("cloud check skipped, the address stays up: {e}");
        Health::Running
    } else {
        tracing::error!("cloud check failed, the address stays up: {e}");
        Health::Degraded(format!(
            "the address is healthy here, but the cloud API refuses what a failover needs: \
             {e}"
        ))
    }
}

pub trait Agent {
    fn start(&self, cx: &Ctx) -> Result<()>;
    /// Stop; stopping what is not running succeeds.
    fn stop(&self, cx: &Ctx) -> Result<()>;
    fn monitor(&self, cx: &Ctx) -> Result<Health>;
    /// validate-all at OCF_CHECK_LEVEL >= 10: look at this host (and its cloud). Returns the
    /// report lines of what was checked.
    fn preflight(&self, cx: &Ctx) -> Result<Vec<String>>;
    /// Apply reloadable parameters without a restart.
    fn reload(&self, cx: &Ctx) -> Result<()>;
    /// A forced stop (Clusterware `clean`): must succeed on a half-broken resource.
    fn clean(&self, cx: &Ctx) -> Result<()> {
        self.stop(cx)
    }
}

#[cfg(test)]
mod tests {
    /// Oracle Clusterware's own resource attributes (cluster_resource and local_resource),
    /// exported as _CRS_<ATTRIBUTE> next to ours: a parameter whose attribute name is one of
    /// these would read Clusterware's value (a parameter `name` got the resource's name).
    const CRS_BASE: &[&str] = &[
        "ACL",
        "ACTIONS",
        "ACTION_SCRIPT",
        "ACTION_TIMEOUT",
        "ACTIVE_PLACEMENT",
        "AGENT_FILENAME",
        "AUTO_START",
        "CARDINALITY",
        "CHECK_INTERVAL",
        "CHECK_TIMEOUT",
        "CLEAN_TIMEOUT",
        "DEGREE",
        "DELETE_TIMEOUT",
        "DESCRIPTION",
        "ENABLED",
        "FAILURE_INTERVAL",
        "FAILURE_THRESHOLD",
        "HOSTING_MEMBERS",
        "INSTANCE_FAILOVER",
        "INTERMEDIATE_TIMEOUT",
        "LOAD",
        "MODIFY_TIMEOUT",
        "NAME",
        "OFFLINE_CHECK_INTERVAL",
        "PLACEMENT",
        "RELOCATE_BY_DEPENDENCY",
        "RESTART_ATTEMPTS",
        "SCRIPT_TIMEOUT",
        "SERVER_CATEGORY",
        "SERVER_POOLS",
        "START_CONCURRENCY",
        "START_DEPENDENCIES",
        "START_TIMEOUT",
        "STOP_CONCURRENCY",
        "STOP_DEPENDENCIES",
        "STOP_TIMEOUT",
        "TYPE",
        "UPTIME_THRESHOLD",
        "USER_WORKLOAD",
        "USE_STICKINESS",
    ];

    #[test]
    fn no_parameter_collides_with_a_clusterware_attribute() {
        for a in super::AGENTS {
            for p in a.params {
                assert!(
                    !CRS_BASE.contains(&p.crs_attribute().as_str()),
                    "{}: parameter {} is Clusterware's own _CRS_{}",
                    a.name,
                    p.name,
                    p.crs_attribute()
                );
            }
        }
    }
}
