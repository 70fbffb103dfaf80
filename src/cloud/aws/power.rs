//! The power side, for fence_cloudha: StopInstances with Force, StartInstances, and the state
//! and Name tag of instances from DescribeInstances.

use aws_sdk_ec2::types::InstanceStateName;

use super::*;
use crate::cloud::power::{Instance, Power, PowerState};

fn state_of(s: Option<&InstanceStateName>) -> PowerState {
    match s {
        Some(InstanceStateName::Running) => PowerState::On,
        Some(InstanceStateName::Stopped) => PowerState::Off,
        Some(InstanceStateName::Terminated) => PowerState::Gone,
        Some(other) => PowerState::Moving(other.as_str().to_string()),
        None => PowerState::Moving("unknown".into()),
    }
}

fn instance_of(i: &aws_sdk_ec2::types::Instance) -> Instance {
    Instance {
        id: i.instance_id().unwrap_or_default().to_string(),
        name: i
            .tags()
            .iter()
            .find(|t| t.key() == Some("Name"))
            .and_then(|t| t.value())
            .unwrap_or_default()
            .to_string(),
        state: state_of(i.state().and_then(|s| s.name())),
    }
}

impl Power for Aws {
    fn is_id(&self, s: &str) -> bool {
        s.strip_prefix("i-")
            .is_some_and(|h| h.len() >= 8 && h.chars().all(|c| c.is_ascii_hexdigit()))
    }

    fn state(&self, id: &str) -> Result<PowerState> {
        let ec2 = self.ec2()?;
        let out = self.call("DescribeInstances", || {
            ec2.describe_instances().instance_ids(id).send()
        })?;
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(id))
            .map(|i| instance_of(i).state)
            .ok_or_else(|| Error::config(format!("EC2 does not know instance {id}")))
    }

    fn off(&self, id: &str) -> Result<()> {
        let ec2 = self.ec2()?;
        tracing::info!("stopping instance {id} (forced)");
        match self.call("StopInstances", || {
            ec2.stop_instances().instance_ids(id).force(true).send()
        }) {
            Ok(_) => Ok(()),
            // A stopped instance takes StopInstances as a no-op; a terminated one refuses it,
            // and a terminated instance is off for good.
            Err(e) if e.message.contains("IncorrectInstanceState") => match self.state(id)? {
                s if s.is_off() => Ok(()),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn stop_is_idempotent(&self) -> bool {
        true
    }

    fn on(&self, id: &str) -> Result<()> {
        let ec2 = self.ec2()?;
        tracing::info!("starting instance {id}");
        self.call("StartInstances", || {
            ec2.start_instances().instance_ids(id).send()
        })
        .map(|_| ())
    }

    fn instances(&self) -> Result<Vec<Instance>> {
        let ec2 = self.ec2()?;
        self.rt.run("DescribeInstances", async {
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = ec2
                    .describe_instances()
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeInstances", e))?;
                out.extend(
                    page.reservations()
                        .iter()
                        .flat_map(|r| r.instances())
                        .map(instance_of),
                );
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => return Ok(out),
                }
            }
        })
    }

    fn own_id(&self) -> Option<String> {
        let imds = self.imds.as_ref()?;
        self.rt
            .run("reading this instance's id from instance metadata", async {
                imds.get("meta-data/instance-id").await
            })
            .map(|id| id.trim().to_string())
            .inspect_err(|e| tracing::debug!("own instance id unknown: {e}"))
            .ok()
    }

    fn preflight(&self, id: &str) -> Result<Vec<String>> {
        let ec2 = self.ec2()?;
        let mut denied = Vec::new();
        let d = &mut denied;
        self.probe(d, "DescribeInstances", || {
            ec2.describe_instances()
                .instance_ids(id)
                .dry_run(true)
                .send()
        })?;
        self.probe(d, "StopInstances", || {
            ec2.stop_instances()
                .instance_ids(id)
                .force(true)
                .dry_run(true)
                .send()
        })?;
        self.probe(d, "StartInstances", || {
            ec2.start_instances().instance_ids(id).dry_run(true).send()
        })?;
        super::errors::lacking(&denied, &format!(" on {id}"), "iam-policy-fence.json")?;
        let (region, source) = self.region()?;
        Ok(vec![
            format!("EC2 region {region} (from {source})"),
            format!(
                "ec2:DescribeInstances, ec2:StopInstances, ec2:StartInstances on {id}: granted"
            ),
            format!("{id} is {}", self.state(id)?.describe()),
        ])
    }
}
