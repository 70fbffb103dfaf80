//! fence_cloudha: STONITH through the cloud's power API, speaking the fence-agents contract
//! Pacemaker's fencer uses (options as `name=value` lines on stdin, or `-o ACTION -n PLUG` for
//! people). `off` stops the instance hard and succeeds only once the cloud reports it stopped;
//! a timeout is a failure, never a success. Parameters are declared once below, as data: the
//! meta-data, `--help` and the option parser come from them.

use std::time::{Duration, Instant};

use crate::cloud::params::AWS_API;
use crate::cloud::power::{Instance, Power, PowerState};
use crate::cloud::{self, CloudKind};
use crate::error::{Error, Result, shown};
use crate::params::{Key, Param, Type, Values};

mod input;
mod metadata;
#[cfg(test)]
mod tests;

pub use input::{Input, parse_args, parse_stdin};
pub use metadata::{getopt, help, xml};

pub const NAME: &str = "fence_cloudha";

crate::choice! {
    /// A fence action, by the fence-agents word.
    pub enum FenceAction {
        #[default]
        Reboot = "reboot",
        Off = "off",
        On = "on",
        Status = "status",
        List = "list",
        ListStatus = "list-status",
        Monitor = "monitor",
        Metadata = "metadata",
        Validate = "validate-all",
    }
}

const ACTION: Key<FenceAction> = Key::new(
    Param::new("action", "Fencing action", "The fencing action.")
        .short('o')
        .default("reboot")
        .caller_supplies(),
);
const PLUG: Key<Option<String>> = Key::new(
    Param::new(
        "plug",
        "Instance to fence",
        "The instance to act on: an EC2 instance id (i-...) or OCI instance OCID, or a name: \
         then the one instance whose Name tag (OCI: display name) is that name (the fencer \
         passes the node name here unless pcmk_host_map maps it), so pcmk_host_map is \
         optional. When it is not given, nodename is looked up the same way.",
    )
    .short('n')
    .caller_supplies(),
);
const PORT: Key<Option<String>> = Key::new(
    Param::new(
        "port",
        "Instance to fence",
        "The same as plug (its older name).",
    )
    .short('n')
    .caller_supplies()
    .replaced_by("plug"),
);
const NODENAME: Key<Option<String>> = Key::new(Param::new(
    "nodename",
    "Node to fence",
    "The cluster node to fence, set by the fencer; mapped to the one instance whose Name tag \
     equals it when plug is not given.",
));
const CLOUD: Key<FenceCloud> = Key::new(
    Param::new(
        "cloud",
        "Cloud provider",
        "aws: Amazon EC2 (StopInstances with Force, StartInstances, DescribeInstances). oci: \
         Oracle Cloud (InstanceAction STOP and START, GetInstance, ListInstances of this \
         instance's compartment). auto: recognise the cloud from DMI data.",
    )
    .default("auto"),
);
const POWER_TIMEOUT: Key<u32> = Key::new(
    Param::new(
        "power_timeout",
        "Seconds to wait for the power state",
        "Wait at most this many seconds for the instance to reach the requested state after \
         the power call; not reaching it is a failure.",
    )
    .ty(Type::Integer { min: 1, max: 3600 })
    .default("60"),
);
const DELAY: Key<u32> = Key::new(
    Param::new(
        "delay",
        "Seconds to wait before fencing",
        "Wait this many seconds before off or reboot. Give it to the device of one node of a \
         two-node cluster (or use pcmk_delay_max) so that after a split the two nodes cannot \
         power each other off at the same time.",
    )
    .ty(Type::Integer { min: 0, max: 3600 })
    .default("0"),
);

crate::choice! {
    /// The clouds fence_cloudha can fence on.
    pub enum FenceCloud {
        #[default]
        Auto = "auto",
        Aws = "aws",
        Oci = "oci",
    }
}

pub static PARAMS: &[Param] = crate::params![
    &[
        ACTION.param,
        PLUG.param,
        PORT.param,
        NODENAME.param,
        CLOUD.param
    ],
    &AWS_API,
    &[
        cloud::params::OCI_AUTH.param,
        cloud::params::CONFIG_FILE.param,
        cloud::params::AUTH_ENDPOINT_URL.param,
        POWER_TIMEOUT.param,
        DELAY.param,
    ],
];

pub const SHORTDESC: &str = "Fence agent for AWS and OCI: powers a node off through the cloud API";
pub const LONGDESC: &str = "fence_cloudha powers off a failed cluster node through the cloud's \
    API, as one static binary (no python, no SDK on the node). off stops the instance hard \
    (EC2 StopInstances with Force, OCI InstanceAction STOP) and succeeds only once the cloud \
    reports it stopped; on starts it; reboot is off then on \
    (success once off is confirmed). status is 0 for running, 2 for stopped, 1 when the cloud \
    cannot tell. list prints id,name for every instance the credentials see. It never fences \
    the instance it runs on. Credentials: on AWS the node's instance profile (or profile, \
    role_arn), needing ec2:DescribeInstances, ec2:StopInstances and ec2:StartInstances; on OCI \
    the instance principal (or an API key), needing INSTANCE_POWER_ACTIONS and read access to \
    the instances.";

/// The settings of one call, read from the validated values.
struct Device {
    action: FenceAction,
    plug: Option<String>,
    nodename: Option<String>,
    cloud: FenceCloud,
    opts: cloud::Options,
    power_timeout: Duration,
    delay: Duration,
}

impl Device {
    fn from_values(v: &Values) -> Result<Device> {
        Ok(Device {
            action: v.get(&ACTION),
            plug: v.get(&PLUG).or(v.get(&PORT)),
            nodename: v.get(&NODENAME),
            cloud: v.get(&CLOUD),
            opts: cloud::Options::from_values(v)?,
            power_timeout: Duration::from_secs(v.get(&POWER_TIMEOUT).into()),
            delay: Duration::from_secs(v.get(&DELAY).into()),
        })
    }

    /// The instance to act on: `plug` when it is an instance id; else the one instance whose
    /// name is `plug` or `nodename` (the fencer passes the node name as the plug when
    /// pcmk_host_map does not map it).
    fn target(&self, power: &dyn Power) -> Result<String> {
        let name = match (&self.plug, &self.nodename) {
            (Some(p), _) if power.is_id(p) => return Ok(p.clone()),
            (Some(p), _) => p,
            (None, Some(n)) => n,
            (None, None) => {
                return Err(Error::config(
                    "no instance given: set plug (the instance id) or nodename",
                ));
            }
        };
        let all = power.instances()?;
        let named: Vec<&Instance> = all.iter().filter(|i| i.name == *name).collect();
        match named.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Err(Error::config(format!(
                "no instance is named {} (Name tag); set plug or pcmk_host_map",
                shown(name)
            ))),
            many => Err(Error::config(format!(
                "{} instances are named {} ({}); set plug or pcmk_host_map",
                many.len(),
                shown(name),
                many.iter()
                    .map(|i| i.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// What the fencer gets: exit code and stdout.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub code: i32,
    pub stdout: String,
}

impl Answer {
    fn ok(stdout: String) -> Self {
        Answer { code: 0, stdout }
    }
}

/// How a call gets its cloud: the real providers, or an in-memory one in tests.
pub type MakePower<'a> =
    &'a dyn Fn(CloudKind, &cloud::Options, Instant) -> Result<Box<dyn Power + 'a>>;

/// Run one fence call; errors come back as exit code 1 with the reason logged.
pub fn run(v: &Values, dmi_dir: &std::path::Path, make: MakePower) -> Result<Answer> {
    let d = Device::from_values(v)?;
    if d.action == FenceAction::Metadata {
        return Ok(Answer::ok(xml()));
    }
    let kind = match d.cloud {
        FenceCloud::Aws => CloudKind::Aws,
        FenceCloud::Oci => CloudKind::Oci,
        FenceCloud::Auto => match cloud::detect(dmi_dir)? {
            k @ (CloudKind::Aws | CloudKind::Oci) => k,
            other => {
                return Err(Error::not_installed(format!(
                    "cloud=auto: DMI data ({}) says this node runs on {}; fence_cloudha fences \
                     on AWS and OCI (set cloud=)",
                    dmi_dir.display(),
                    other.describe()
                )));
            }
        },
    };
    let start = Instant::now();
    // The fencer kills an agent that overstays its own timeout; ours bounds every call.
    let deadline = start + d.delay + d.power_timeout + Duration::from_secs(30);
    let power = make(kind, &d.opts, deadline)?;
    let power = power.as_ref();
    match d.action {
        FenceAction::Metadata => unreachable!("answered above"),
        FenceAction::List | FenceAction::ListStatus => {
            let mut out = String::new();
            for i in power.instances()? {
                out.push_str(&format!("{},{}", i.id, i.name));
                if d.action == FenceAction::ListStatus {
                    out.push_str(if i.state.is_off() { ",off" } else { ",on" });
                }
                out.push('\n');
            }
            Ok(Answer::ok(out))
        }
        FenceAction::Monitor => {
            power.instances()?;
            Ok(Answer::ok(String::new()))
        }
        FenceAction::Status => {
            let id = d.target(power)?;
            // Pending or stopping is not off: it may still write.
            Ok(if power.state(&id)?.is_off() {
                Answer {
                    code: 2,
                    stdout: "Status: OFF\n".into(),
                }
            } else {
                Answer::ok("Status: ON\n".into())
            })
        }
        FenceAction::Validate => {
            let id = d.target(power)?;
            let report = power.preflight(&id)?;
            Ok(Answer::ok(
                report.iter().map(|l| format!("{l}\n")).collect(),
            ))
        }
        FenceAction::Off | FenceAction::Reboot => {
            let id = d.target(power)?;
            refuse_self(power, &id)?;
            if !d.delay.is_zero() {
                tracing::info!(
                    "waiting {} s before fencing {id} (delay)",
                    d.delay.as_secs()
                );
                std::thread::sleep(d.delay);
            }
            power_off(power, &id, d.power_timeout)?;
            if d.action == FenceAction::Reboot {
                // Fenced once off is confirmed. The start is asked for, not waited for: the
                // cluster recovers the node's resources only after we return, and a cloud boot
                // takes far longer than the stop. A refused start leaves it fenced.
                match power.on(&id) {
                    Ok(()) => tracing::info!("{id} is off (fenced); its start is requested"),
                    Err(e) => tracing::error!("{id} is off (fenced) but did not start: {e}"),
                }
            }
            Ok(Answer::ok("Success: Powered OFF\n".into()))
        }
        FenceAction::On => {
            let id = d.target(power)?;
            power_on(power, &id, d.power_timeout)?;
            Ok(Answer::ok("Success: Powered ON\n".into()))
        }
    }
}

fn refuse_self(power: &dyn Power, id: &str) -> Result<()> {
    match power.own_id() {
        Some(own) if own == id => Err(Error::config(format!(
            "refusing to fence {id}: it is the instance this agent runs on"
        ))),
        _ => Ok(()),
    }
}

fn power_off(power: &dyn Power, id: &str, timeout: Duration) -> Result<()> {
    // Where a stop of a stopped instance is a no-op, ask for it at once: one read less before
    // the node is fenced. The confirming reads follow either way.
    if !power.stop_is_idempotent() && power.state(id)?.is_off() {
        tracing::info!("{id} is already off");
        return Ok(());
    }
    power.off(id)?;
    wait_for(power, id, timeout, "stopped", PowerState::is_off)
}

fn power_on(power: &dyn Power, id: &str, timeout: Duration) -> Result<()> {
    if power.state(id)? == PowerState::On {
        tracing::info!("{id} is already on");
        return Ok(());
    }
    power.on(id)?;
    wait_for(power, id, timeout, "running", |s| *s == PowerState::On)
}

/// Read the state until `done`, first at once, then backing off to two reads a second: the
/// fencer waits on us, and a stop is confirmed at most half a second after the cloud says so.
fn wait_for(
    power: &dyn Power,
    id: &str,
    timeout: Duration,
    want: &str,
    done: impl Fn(&PowerState) -> bool,
) -> Result<()> {
    let until = Instant::now() + timeout;
    let mut pause = Duration::from_millis(100);
    let mut last;
    loop {
        last = power.state(id);
        match &last {
            Ok(s) if done(s) => return Ok(()),
            Ok(s) => tracing::debug!("{id}: {}, waiting for {want}", s.describe()),
            Err(e) => tracing::warn!("{id}: state unknown ({e}), asking again"),
        }
        // The last read is at the deadline itself, so a stop that lands just in time counts.
        let now = Instant::now();
        if now >= until {
            break;
        }
        std::thread::sleep(pause.min(until - now));
        pause = (pause * 2).min(Duration::from_millis(500));
    }
    Err(Error::failed(format!(
        "{id} is not {want} after {} s (last seen: {}); not confirmed, so not fenced",
        timeout.as_secs(),
        match last {
            Ok(s) => s.describe().to_string(),
            Err(e) => e.message,
        }
    )))
}
