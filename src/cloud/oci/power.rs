//! The power side, for fence_cloudha: InstanceAction STOP (hard) and START, the instance's
//! lifecycleState from GetInstance, and ListInstances of this instance's compartment.

use super::*;
use crate::cloud::power::{Instance, Power, PowerState};

fn state_of(v: &Value) -> PowerState {
    match v["lifecycleState"].as_str().unwrap_or_default() {
        "RUNNING" => PowerState::On,
        "STOPPED" => PowerState::Off,
        "TERMINATED" => PowerState::Gone,
        other => PowerState::Moving(other.to_ascii_lowercase()),
    }
}

fn instance_of(v: &Value) -> Instance {
    Instance {
        id: v["id"].as_str().unwrap_or_default().to_string(),
        name: v["displayName"].as_str().unwrap_or_default().to_string(),
        state: state_of(v),
    }
}

impl Oci {
    fn read_metadata(&self, path: &str) -> Result<String> {
        self.rt
            .run("reading instance metadata", self.metadata(path))
            .map(|s| s.trim().to_string())
    }

    fn action(&self, id: &str, action: &str) -> Result<()> {
        tracing::info!("InstanceAction {action} on {id}");
        self.api(
            "InstanceAction",
            "POST",
            &format!("instances/{id}?action={action}"),
            // A POST is signed with its body headers; OCI takes an empty details object.
            Some(serde_json::json!({})),
        )
        .map(|_| ())
    }
}

impl Power for Oci {
    fn is_id(&self, s: &str) -> bool {
        s.starts_with("ocid1.instance.")
    }

    fn state(&self, id: &str) -> Result<PowerState> {
        Ok(state_of(&self.api(
            "GetInstance",
            "GET",
            &format!("instances/{id}"),
            None,
        )?))
    }

    /// STOP is OCI's hard stop (SOFTSTOP would wait for the guest).
    fn off(&self, id: &str) -> Result<()> {
        self.action(id, "STOP")
    }

    fn on(&self, id: &str) -> Result<()> {
        self.action(id, "START")
    }

    fn instances(&self) -> Result<Vec<Instance>> {
        let compartment = self.read_metadata("instance/compartmentId")?;
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut path = format!("instances?compartmentId={compartment}");
            if let Some(p) = &page {
                path.push_str(&format!("&page={p}"));
            }
            let (_, v, headers) = self.api_full("ListInstances", "GET", &path, None, None, &[])?;
            out.extend(v.as_array().into_iter().flatten().map(instance_of));
            match headers.get("opc-next-page").and_then(|h| h.to_str().ok()) {
                Some(p) if !p.is_empty() => page = Some(p.to_string()),
                _ => return Ok(out),
            }
        }
    }

    fn own_id(&self) -> Option<String> {
        self.read_metadata("instance/id")
            .inspect_err(|e| tracing::debug!("own instance id unknown: {e}"))
            .ok()
    }

    /// OCI has no DryRun: what can be checked without acting is reading the instance.
    fn preflight(&self, id: &str) -> Result<Vec<String>> {
        let state = self.state(id)?;
        Ok(vec![
            format!("{id} is {} (GetInstance allowed)", state.describe()),
            "InstanceAction cannot be tried without acting (OCI has no DryRun): the policy \
             must allow INSTANCE_POWER_ACTIONS on these instances"
                .to_string(),
        ])
    }
}
