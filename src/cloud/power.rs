//! The power side of a cloud, for fencing: an instance's state, stopping it hard, starting it,
//! and the instances a fence device can see (so a node name maps to an instance without
//! `pcmk_host_map`).

use crate::error::Result;

/// What the cloud says about an instance's power.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerState {
    /// Running: it may still be writing.
    On,
    /// Stopped: fenced.
    Off,
    /// On its way somewhere (pending, stopping, shutting-down...), in the cloud's word.
    Moving(String),
    /// Gone for good (terminated): as fenced as it can be.
    Gone,
}

impl PowerState {
    /// Stopped or gone: fenced. Anything else may still be writing.
    pub fn is_off(&self) -> bool {
        matches!(self, PowerState::Off | PowerState::Gone)
    }
    /// For people: the cloud's own word where it has one.
    pub fn describe(&self) -> &str {
        match self {
            PowerState::On => "running",
            PowerState::Off => "stopped",
            PowerState::Moving(w) => w,
            PowerState::Gone => "terminated",
        }
    }
}

/// An instance as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// The `Name` tag (AWS) or display name (OCI); empty when it has none.
    pub name: String,
    pub state: PowerState,
}

pub trait Power {
    /// Whether `s` is written like one of this cloud's instance ids (not a node name).
    fn is_id(&self, s: &str) -> bool;
    fn state(&self, id: &str) -> Result<PowerState>;
    /// A hard stop: no shutdown scripts, no waiting for the guest.
    fn off(&self, id: &str) -> Result<()>;
    /// Whether `off` of an instance that is already off (or gone) just succeeds, so that the
    /// fence need not read the state before asking for the stop (EC2's StopInstances does).
    fn stop_is_idempotent(&self) -> bool {
        false
    }
    fn on(&self, id: &str) -> Result<()>;
    /// Every instance the credentials can see.
    fn instances(&self) -> Result<Vec<Instance>>;
    /// The instance this process runs on, when instance metadata can tell; never fenced.
    fn own_id(&self) -> Option<String>;
    /// Whether the power calls would be allowed (DryRun where the cloud has it): report lines,
    /// or a permission error naming what is missing.
    fn preflight(&self, id: &str) -> Result<Vec<String>>;
}
