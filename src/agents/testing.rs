//! What every agent's unit tests build on: parameters given as pairs, and one way to make the
//! action context around an in-memory host (and cloud or route tables).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Agent, Ctx, Health, Paths};
use crate::cloud::Cloud;
use crate::cloud::routes::Routes;
use crate::error::{Error, Result};
use crate::fault::Fault;
use crate::host::Host;
use crate::params::{Param, Raw, Source, Values};

/// `pairs` as the command line would give them, validated against `decls`.
pub fn values(decls: &'static [Param], pairs: &[(&str, &str)]) -> Result<Values> {
    let mut raw = Raw::default();
    for (k, v) in pairs {
        raw.set(k, v, Source::CommandLine);
    }
    Values::validate(decls, &raw)
}

/// A context for unit tests: no DMI data and no run directory unless given, depth 0, five
/// seconds to go.
pub struct TestCtx<'a> {
    host: &'a dyn Host,
    run_dir: Option<&'a Path>,
    dmi_dir: Option<&'a Path>,
    probe: bool,
    check_level: u32,
    cloud: Option<&'a dyn Cloud>,
    routes: Option<&'a dyn Routes>,
}

impl<'a> TestCtx<'a> {
    pub fn new(host: &'a dyn Host) -> Self {
        TestCtx {
            host,
            run_dir: None,
            dmi_dir: None,
            probe: false,
            check_level: 0,
            cloud: None,
            routes: None,
        }
    }
    /// Run as a probe (a monitor with no interval) when `probe`.
    pub fn probe(mut self, probe: bool) -> Self {
        self.probe = probe;
        self
    }
    pub fn level(mut self, check_level: u32) -> Self {
        self.check_level = check_level;
        self
    }
    pub fn run_dir(mut self, dir: &'a Path) -> Self {
        self.run_dir = Some(dir);
        self
    }
    pub fn dmi_dir(mut self, dir: &'a Path) -> Self {
        self.dmi_dir = Some(dir);
        self
    }
    pub fn cloud(mut self, cloud: &'a dyn Cloud) -> Self {
        self.cloud = Some(cloud);
        self
    }
    pub fn routes(mut self, routes: &'a dyn Routes) -> Self {
        self.routes = Some(routes);
        self
    }
    pub fn run<T>(self, f: impl FnOnce(&Ctx) -> T) -> T {
        let paths = Paths {
            dmi_dir: self.dmi_dir.unwrap_or(Path::new("/nonexistent")).into(),
            run_dir: self.run_dir.unwrap_or(Path::new("/nonexistent")).into(),
            corosync_conf: "/nonexistent".into(),
        };
        f(&Ctx {
            host: self.host,
            paths: &paths,
            check_level: self.check_level,
            probe: self.probe,
            deadline: Instant::now() + Duration::from_secs(5),
            cloud: self.cloud,
            routes: self.routes,
        })
    }
}

/// The rule every cloud agent keeps ([`super::judge_cloud_failure`]), checked the same way for
/// each: with `a` running, a throttled cloud check still reports running, a denied one
/// degraded with the reason (OCF 190, never a ban of a healthy address), and the next good
/// check running again.
pub fn rides_out_cloud_trouble(a: &dyn Agent, cx: &Ctx, cloud: &Fault) {
    cloud.arm(Error::transient("RequestLimitExceeded"), 1);
    assert_eq!(a.monitor(cx).unwrap(), Health::Running);
    cloud.arm(Error::permission("UnauthorizedOperation"), 1);
    assert!(
        matches!(a.monitor(cx).unwrap(), Health::Degraded(why) if why.contains("UnauthorizedOperation"))
    );
    assert_eq!(
        a.monitor(cx).unwrap(),
        Health::Running,
        "fixed: asked again"
    );
}
