//! cloud-ready: a clone that tells, on every node, whether this node could take a vip
//! resource over right now. Each monitor runs that resource's pre-flight (instance metadata,
//! credentials, the ENI or VNIC of nic, the subnet, the permissions a move needs) and
//! publishes the verdict as a node attribute through attrd_updater, as ocf:pacemaker:ping
//! publishes connectivity; a location rule then keeps the VIP off nodes that would fail to
//! take it, and `crm_mon -A` shows why.

use std::process::Command;

use super::records::{Record, STARTED};
use super::{ActionDecl, Agent, AgentDef, Ctx, Example, Health, standard_actions, vip};
use crate::cloud;
use crate::error::{Error, Kind, Result};
use crate::params::{Key, Param, Type, Values};

// Not `name` as in ocf:pacemaker:ping: Clusterware exports its own NAME attribute as
// _CRS_NAME, which a parameter called name would collide with.
const NAME: Key<String> = Key::new(
    Param::new(
        "attribute",
        "Node attribute name",
        "The node attribute that says whether this node is ready: 1 ready, 0 not ready. Its \
         reason goes to <attribute>-reason (absent when ready). Use the name in a location \
         rule of the vip resource.",
    )
    .default("cloudha-ready"),
);

const DAMPEN: Key<u32> = Key::new(
    Param::new(
        "dampen",
        "Seconds to wait before publishing a change",
        "attrd_updater's dampening: a change of the attribute reaches the CIB after this many \
         seconds, so the checks of all nodes land together.",
    )
    .ty(Type::Integer { min: 0, max: 3600 })
    .default("5"),
);

static PARAMS: &[Param] = crate::params![
    &[NAME.param, DAMPEN.param],
    &[
        vip::IP.param,
        vip::CIDR_NETMASK.param,
        vip::NIC.param,
        vip::CLOUD.param
    ],
    &cloud::params::AWS_API,
    &[
        cloud::params::EIP_ALLOCATION_ID.param,
        cloud::params::OCI_AUTH.param,
        cloud::params::CONFIG_FILE.param,
        cloud::params::AUTH_ENDPOINT_URL.param,
        cloud::params::LOCAL_ADDRESS.param,
    ],
    &crate::log::TRACE,
];

static ACTIONS: [ActionDecl; 7] = standard_actions(30, 20, 30);

pub static AGENT: AgentDef = AgentDef {
    name: "cloud-ready",
    shortdesc: "Whether this node can take a vip resource over (node attribute)",
    longdesc: "Publishes, on every node, whether this node could take a vip resource over now, \
               as a node attribute a location rule can use to keep the vip off nodes that could \
               not.\n\n\
               Runs as a clone on every node that may host a vip resource, with that \
               resource's ip, nic, cloud and cloud parameters. Each monitor runs the vip's \
               pre-flight on this node (instance metadata, credentials, the ENI or VNIC of nic, \
               the subnet, the permissions a move needs: the checks of vip validate-all at \
               OCF_CHECK_LEVEL 10) and publishes the node attribute named by attribute: 1 \
               when the node could take the address over now, 0 when it could not, with the \
               reason in <attribute>-reason (crm_mon -A shows both).\n\n\
               A location rule keeps the vip off nodes that are not ready, e.g. pcs constraint \
               location vip1 rule score=-10000 not_defined cloudha-ready or cloudha-ready eq 0 \
               (a finite score: when no node is ready the address stays where it is). \
               Throttling, outages and timeouts of the cloud API leave the attribute as it \
               was, so a passing API problem never marks every node unready at once.\n\n\
               start publishes the first verdict; stop removes the attributes; the clone's own \
               state is a marker under /run/cloudha. The node attributes are set with \
               attrd_updater.",
    params: PARAMS,
    actions: &ACTIONS,
    build,
    clone: true,
    examples: &[Example {
        intro: "The readiness of every node for vip1 (the same ip, nic and cloud settings), and \
                vip1 kept off nodes that could not take it over (a finite score: with no node \
                ready the address stays where it is); crm_mon -A shows cloudha-ready and, on a \
                node that is not ready, cloudha-ready-reason:",
        lines: &[
            "pcs resource create vip1 ocf:cloudha:vip ip=10.0.1.200 nic=eth0 cloud=aws op monitor interval=10s",
            "pcs resource create vip1-ready ocf:cloudha:cloud-ready ip=10.0.1.200 nic=eth0 cloud=aws op monitor interval=30s clone",
            "pcs constraint location vip1 rule score=-10000 not_defined cloudha-ready or cloudha-ready eq 0",
            "crm_mon -1 -A",
        ],
    }],
};

/// Where the verdict goes: Pacemaker's attribute manager (unit tests use a recorder).
pub trait Attributes {
    /// Set (Some) or delete (None) a node attribute of this node.
    fn publish(&self, name: &str, value: Option<&str>, dampen: u32) -> Result<()>;
}

/// attrd_updater, found where Pacemaker installs it even when the caller's PATH is minimal.
struct Attrd;

impl Attributes for Attrd {
    fn publish(&self, name: &str, value: Option<&str>, dampen: u32) -> Result<()> {
        let exe = ["/usr/sbin/attrd_updater", "/usr/bin/attrd_updater"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("attrd_updater");
        let mut cmd = Command::new(exe);
        cmd.args(["-n", name]);
        match value {
            Some(v) => cmd.args(["-U", v, "-d", &format!("{dampen}s")]),
            None => cmd.arg("-D"),
        };
        let out = cmd.output().map_err(|e| {
            Error::not_installed(format!("cannot run {exe} (Pacemaker's CLI tools): {e}"))
        })?;
        if !out.status.success() {
            return Err(Error::failed(format!(
                "{exe} -n {name} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

pub struct Ready {
    name: String,
    dampen: u32,
    vip: Box<dyn Agent>,
    attrs: Box<dyn Attributes>,
}

fn build(v: &Values) -> Result<Box<dyn Agent>> {
    Ok(Box::new(Ready::new(v, Box::new(Attrd))?))
}

impl Ready {
    pub fn new(v: &Values, attrs: Box<dyn Attributes>) -> Result<Ready> {
        let name = v.get(&NAME);
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Error::config(format!(
                "attribute={} must be a node attribute name (letters, digits, -, _ and .)",
                crate::error::shown(&name)
            )));
        }
        Ok(Ready {
            name,
            dampen: v.get(&DAMPEN),
            vip: (vip::AGENT.build)(&v.as_agent(vip::PARAMS)?)?,
            attrs,
        })
    }

    fn started(&self, cx: &Ctx) -> Record {
        Record::of(cx, "cloud-ready", &self.name, STARTED)
    }

    fn reason_name(&self) -> String {
        format!("{}-reason", self.name)
    }

    /// Run the pre-flight and publish what it says; passing trouble publishes nothing.
    fn check(&self, cx: &Ctx) -> Result<()> {
        let (value, reason) = match self.vip.preflight(cx) {
            Ok(_) => ("1", None),
            Err(e) if e.kind == Kind::Transient => {
                tracing::warn!("readiness unknown, {} left as it was: {e}", self.name);
                return Ok(());
            }
            Err(e) => {
                tracing::warn!("this node could not take the address over: {e}");
                ("0", Some(e.message))
            }
        };
        self.attrs.publish(&self.name, Some(value), self.dampen)?;
        self.attrs
            .publish(&self.reason_name(), reason.as_deref(), self.dampen)
    }
}

impl Agent for Ready {
    fn start(&self, cx: &Ctx) -> Result<()> {
        self.check(cx)?;
        self.started(cx).touch();
        Ok(())
    }

    fn stop(&self, cx: &Ctx) -> Result<()> {
        self.started(cx).remove();
        for name in [self.name.clone(), self.reason_name()] {
            // A stale attribute only keeps a rule from trusting this node: log and go on.
            if let Err(e) = self.attrs.publish(&name, None, 0) {
                tracing::warn!("could not remove the node attribute {name}: {e}");
            }
        }
        Ok(())
    }

    fn monitor(&self, cx: &Ctx) -> Result<Health> {
        if !self.started(cx).exists() {
            return Ok(Health::NotRunning);
        }
        if !cx.probe {
            self.check(cx)?;
        }
        Ok(Health::Running)
    }

    fn preflight(&self, cx: &Ctx) -> Result<Vec<String>> {
        self.vip.preflight(cx)
    }

    fn reload(&self, _cx: &Ctx) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::agents::testing::{TestCtx, values};
    use crate::cloud::fake::FakeCloud;
    use crate::host::fake::FakeHost;

    /// One publish: the attribute and its value (None: deleted).
    type Published = (String, Option<String>);

    #[derive(Default, Clone)]
    struct Recorder(Rc<RefCell<Vec<Published>>>);

    impl Attributes for Recorder {
        fn publish(&self, name: &str, value: Option<&str>, _dampen: u32) -> Result<()> {
            self.0
                .borrow_mut()
                .push((name.to_string(), value.map(str::to_string)));
            Ok(())
        }
    }

    impl Recorder {
        fn take(&self) -> Vec<Published> {
            std::mem::take(&mut *self.0.borrow_mut())
        }
    }

    fn pair(name: &str, value: Option<&str>) -> Published {
        (name.to_string(), value.map(str::to_string))
    }

    #[test]
    fn verdicts_are_published_and_passing_trouble_changes_nothing() {
        let rec = Recorder::default();
        let v = values(
            PARAMS,
            &[("ip", "10.0.1.100"), ("nic", "eth0"), ("cloud", "aws")],
        );
        let r = Ready::new(&v.unwrap(), Box::new(rec.clone())).unwrap();
        let host = FakeHost::default()
            .with_link(1, "lo", Some(("127.0.0.1", 8)))
            .with_link(2, "eth0", Some(("10.0.1.10", 24)));
        let cloud = FakeCloud::default();
        let dir = tempfile::tempdir().unwrap();
        let cx = || TestCtx::new(&host).cloud(&cloud).run_dir(dir.path());
        assert_eq!(
            cx().probe(true).run(|c| r.monitor(c)).unwrap(),
            Health::NotRunning
        );
        cx().run(|c| r.start(c)).unwrap();
        let ready = [
            pair("cloudha-ready", Some("1")),
            pair("cloudha-ready-reason", None),
        ];
        assert_eq!(rec.take(), ready);

        cloud.fail(Error::permission("lacks ec2:AssignPrivateIpAddresses"), 1);
        assert_eq!(cx().run(|c| r.monitor(c)).unwrap(), Health::Running);
        let got = rec.take();
        assert_eq!(got[0], pair("cloudha-ready", Some("0")));
        assert!(
            got[1]
                .1
                .as_deref()
                .unwrap()
                .contains("ec2:AssignPrivateIpAddresses")
        );

        cloud.fail(Error::transient("throttled"), 1);
        assert_eq!(cx().run(|c| r.monitor(c)).unwrap(), Health::Running);
        assert!(
            rec.take().is_empty(),
            "a passing API problem publishes nothing"
        );
        assert_eq!(
            cx().probe(true).run(|c| r.monitor(c)).unwrap(),
            Health::Running
        );
        assert!(rec.take().is_empty(), "a probe only looks");
        assert_eq!(cx().run(|c| r.monitor(c)).unwrap(), Health::Running);
        assert_eq!(rec.take(), ready);

        cx().run(|c| r.stop(c)).unwrap();
        assert_eq!(
            rec.take(),
            [
                pair("cloudha-ready", None),
                pair("cloudha-ready-reason", None)
            ]
        );
        assert_eq!(
            cx().probe(true).run(|c| r.monitor(c)).unwrap(),
            Health::NotRunning
        );
    }

    #[test]
    fn a_bad_attribute_name_is_a_configuration_error() {
        let v = values(PARAMS, &[("ip", "10.0.1.100"), ("attribute", "a b")]).unwrap();
        let e = Ready::new(&v, Box::new(Recorder::default())).err().unwrap();
        assert_eq!(e.kind, Kind::Config);
    }
}
