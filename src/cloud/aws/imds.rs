//! EC2 instance metadata, IMDSv2 only. Every agent call is a new process, so the session token
//! is kept in a file under the run directory (mode 0600) and reused until shortly before it
//! expires; a 401 (token revoked, instance stopped and started) fetches a fresh one once.
//! Every request is bounded by a short timeout and by the action's deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{Error, Result};

/// The standard endpoint; `AWS_EC2_METADATA_SERVICE_ENDPOINT` overrides it as in every AWS SDK.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
/// The longest lifetime EC2 grants a token (6 hours).
const TOKEN_TTL: u64 = 21_600;
/// Renew this long before expiry, so a token never dies between check and use.
const RENEW_BEFORE: u64 = 600;
/// One metadata request never takes longer than this: the service is on the host itself.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Imds {
    endpoint: String,
    token_file: PathBuf,
    deadline: Instant,
    client: Client<HttpConnector, Full<Bytes>>,
    token: std::cell::RefCell<Option<String>>,
}

impl Imds {
    pub fn new(endpoint: &str, run_dir: &Path, deadline: Instant) -> Self {
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(REQUEST_TIMEOUT));
        Imds {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token_file: run_dir.join("imds-token"),
            deadline,
            client: Client::builder(TokioExecutor::new()).build(conn),
            token: Default::default(),
        }
    }

    /// The endpoint from the environment, or None when metadata is disabled there.
    pub fn endpoint_from_env() -> Option<String> {
        if crate::cloud::metadata_disabled() {
            return None;
        }
        Some(
            std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
        )
    }

    /// GET a metadata path (below /latest/), e.g. `meta-data/instance-id`.
    pub async fn get(&self, path: &str) -> Result<String> {
        let token = self.token(false).await?;
        match self.request("GET", path, Some(&token)).await? {
            (200, body) => Ok(body),
            (401, _) => {
                tracing::debug!("metadata token refused; fetching a new one");
                let token = self.token(true).await?;
                match self.request("GET", path, Some(&token)).await? {
                    (200, body) => Ok(body),
                    (status, _) => Err(self.status_error(path, status)),
                }
            }
            (status, _) => Err(self.status_error(path, status)),
        }
    }

    fn status_error(&self, path: &str, status: u16) -> Error {
        let what = format!(
            "instance metadata {}/latest/{path} answered HTTP {status}",
            self.endpoint
        );
        match status {
            404 => Error::host_args(format!("{what} (not found on this instance)")),
            // 403: IMDS is turned off for the instance, or the hop limit is too small.
            403 => Error::not_installed(format!(
                "{what}: instance metadata is disabled for this instance \
                 (aws ec2 modify-instance-metadata-options --http-endpoint enabled)"
            )),
            _ => Error::transient(what),
        }
    }

    async fn token(&self, fresh: bool) -> Result<String> {
        if !fresh {
            if let Some(t) = self.token.borrow().clone() {
                return Ok(t);
            }
            if let Some(t) = self.cached_token() {
                *self.token.borrow_mut() = Some(t.clone());
                return Ok(t);
            }
        }
        let (status, body) = self.request("PUT", "api/token", None).await?;
        match status {
            200 if !body.trim().is_empty() => {
                let token = body.trim().to_string();
                self.store_token(&token);
                *self.token.borrow_mut() = Some(token.clone());
                Ok(token)
            }
            // IMDSv1-only endpoints and proxies in between answer 403/405 to the PUT.
            _ => Err(self.status_error("api/token", status)),
        }
    }

    fn cached_token(&self) -> Option<String> {
        let text = crate::files::read(&self.token_file).ok()?;
        let (expiry, token) = text.trim().split_once(' ')?;
        let expiry: u64 = expiry.parse().ok()?;
        (crate::cloud::unix_now() + RENEW_BEFORE < expiry && !token.is_empty())
            .then(|| token.to_string())
    }

    /// Best effort: a run directory we cannot write only costs one PUT per call.
    fn store_token(&self, token: &str) {
        let line = format!("{} {token}\n", crate::cloud::unix_now() + TOKEN_TTL);
        if let Err(e) = crate::cloud::write_private(&self.token_file, line.as_bytes()) {
            tracing::debug!(
                "cannot cache the metadata token in {}: {e}",
                self.token_file.display()
            );
        }
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> Result<(u16, String)> {
        let url = format!("{}/latest/{path}", self.endpoint);
        let mut req = http::Request::builder().method(method).uri(&url);
        req = match token {
            Some(t) => req.header("X-aws-ec2-metadata-token", t),
            None => req.header(
                "X-aws-ec2-metadata-token-ttl-seconds",
                TOKEN_TTL.to_string(),
            ),
        };
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| Error::config(format!("metadata URL {url}: {e}")))?;
        let left = self.deadline.saturating_duration_since(Instant::now());
        let limit = left.min(REQUEST_TIMEOUT);
        let unreachable = |why: String| {
            Error::transient(format!(
                "instance metadata at {} is unreachable ({why}); is this an EC2 instance?",
                self.endpoint
            ))
        };
        let (status, _, body) =
            crate::cloud::exchange(&self.client, req, limit, unreachable).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
