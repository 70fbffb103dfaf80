//! Assumed-role credentials kept between processes: every action is a new process, and
//! without a cache each one would pay an STS AssumeRole call (and its latency) before its first
//! EC2 call. The credentials are kept under the run directory, mode 0600 like the IMDS token,
//! and used until shortly before they expire; a file that cannot be read or parsed is ignored.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, future};
use serde_json::{Value, json};

/// Assume the role again when the kept credentials have less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The file for one role: its name comes from the ARN (which has ':' and '/').
pub(super) fn cache_file(run_dir: &Path, role_arn: &str) -> PathBuf {
    let safe: String = role_arn
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    run_dir.join(format!("aws-role-{safe}.json"))
}

/// AssumeRole behind a file cache.
#[derive(Debug)]
pub(super) struct CachedRole<P> {
    pub(super) inner: P,
    pub(super) file: PathBuf,
}

fn read(file: &Path, now: SystemTime) -> Option<Credentials> {
    let v: Value = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
    let expires = UNIX_EPOCH + Duration::from_secs(v["expires"].as_u64()?);
    if expires.duration_since(now).ok()? < RENEW_BEFORE {
        return None;
    }
    Some(Credentials::new(
        v["access_key_id"].as_str()?,
        v["secret_access_key"].as_str()?,
        v["session_token"].as_str().map(str::to_string),
        Some(expires),
        "cloudha-role-cache",
    ))
}

fn write(file: &Path, c: &Credentials) {
    // Credentials without an expiry are not kept: nothing would say when to stop using them.
    let Some(expires) = c.expiry().and_then(|e| e.duration_since(UNIX_EPOCH).ok()) else {
        return;
    };
    let doc = json!({
        "access_key_id": c.access_key_id(),
        "secret_access_key": c.secret_access_key(),
        "session_token": c.session_token(),
        "expires": expires.as_secs(),
    });
    if let Err(e) = crate::cloud::write_private(file, doc.to_string().as_bytes()) {
        tracing::warn!(
            "cannot keep the assumed-role credentials in {}: {e}",
            file.display()
        );
    }
}

/// Forget the kept credentials (the API refused them).
pub(super) fn forget(file: &Path) {
    let _ = std::fs::remove_file(file);
}

impl<P: ProvideCredentials> ProvideCredentials for CachedRole<P> {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        if let Some(c) = read(&self.file, SystemTime::now()) {
            tracing::debug!("assumed-role credentials from {}", self.file.display());
            return future::ProvideCredentials::ready(Ok(c));
        }
        future::ProvideCredentials::new(async move {
            let c: provider::Result = self.inner.provide_credentials().await;
            if let Ok(c) = &c {
                write(&self.file, c);
            }
            c
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_until_shortly_before_expiry_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = cache_file(dir.path(), "arn:aws:iam::123456789012:role/net/ha");
        assert!(file.ends_with("aws-role-arn_aws_iam__123456789012_role_net_ha.json"));
        let now = SystemTime::now();
        let c = Credentials::new(
            "AKIA1",
            "secret",
            Some("tok".into()),
            Some(now + Duration::from_secs(3600)),
            "t",
        );
        write(&file, &c);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = read(&file, now).unwrap();
        assert_eq!(
            (back.access_key_id(), back.session_token()),
            ("AKIA1", Some("tok"))
        );
        assert!(
            read(&file, now + Duration::from_secs(3600 - 299)).is_none(),
            "renewed early"
        );
        std::fs::write(&file, b"{not json").unwrap();
        assert!(read(&file, now).is_none());
        let forever = Credentials::new("AKIA2", "s", None, None, "t");
        forget(&file);
        write(&file, &forever);
        assert!(!file.exists(), "no expiry, not kept");
    }
}
