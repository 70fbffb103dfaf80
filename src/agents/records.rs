//! Run-dir records: small files under the run directory whose existence and mtime remember
//! something about one resource between actions (started, last good cloud check). They live
//! in a tmpfs and are gone at reboot, as they should be.

use std::path::PathBuf;
use std::time::Duration;

use super::Ctx;

/// One record of one resource, `<run_dir>/<agent>/<key>.<what>`.
#[derive(Debug, Clone)]
pub struct Record {
    path: PathBuf,
}

impl Record {
    pub fn of(cx: &Ctx, agent: &str, key: &str, what: &str) -> Self {
        Record {
            path: cx.paths.run_dir.join(agent).join(format!("{key}.{what}")),
        }
    }

    /// Create or refresh the record. Best effort: without it the next monitor just asks the
    /// cloud.
    pub fn touch(&self) {
        if let Err(e) = crate::files::touch(&self.path) {
            tracing::debug!("cannot write {}: {e}", self.path.display());
        }
    }

    /// Forget it; a record that is not there is forgotten already.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    pub fn exists(&self) -> bool {
        crate::files::modified(&self.path).is_some()
    }

    /// How long ago it was last touched; `None` when it is missing (or in the future).
    pub fn age(&self) -> Option<Duration> {
        crate::files::modified(&self.path).and_then(|t| t.elapsed().ok())
    }

    /// Whether a monitor asks the cloud, this being the record of the last good check: probes
    /// and depth >= 10 always, a recurring depth-0 monitor once `interval` has passed.
    pub fn cloud_check_due(&self, cx: &Ctx, interval: Duration) -> bool {
        if cx.probe || cx.check_level >= 10 || interval.is_zero() {
            return true;
        }
        self.age().is_none_or(|a| a >= interval)
    }
}

/// The record every cloud-checking agent keeps: when the cloud last confirmed the resource.
pub const CLOUD_CHECKED: &str = "cloud-checked";

/// The record of a start that configured no local address (local_address=false): without an
/// OS address to look at, it says the resource was started here.
pub const STARTED: &str = "started";
