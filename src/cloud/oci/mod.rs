//! Oracle Cloud Infrastructure: a secondary private IP moved between VNICs natively, without
//! oci-cli. Requests are signed as OCI requires (draft-cavage HTTP signatures, RSA-SHA256) with
//! an API key (`~/.oci/config`) or an instance principal (the instance's certificate from
//! metadata, exchanged at the federation endpoint for a session token that is kept under the
//! run directory, mode 0600, and renewed before it expires). The VNIC is the one whose MAC is
//! `nic`'s, never blindly the first. Every request is bounded by the action's deadline.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioExecutor;
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer as _};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Bounded, Cloud, CloudKind, OciAuth, Options, Owner, mac_string, parse_cidr4, write_private,
};
use crate::error::{Error, Kind, Result};
use crate::host::Link;

const METADATA: &str = "http://169.254.169.254/opc/v2";
const API_VERSION: &str = "20160918";
/// Renew a session token this long before it expires.
const RENEW_BEFORE: u64 = 300;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type Https = hyper_rustls::HttpsConnector<HttpConnector>;
/// TLS (or plain HTTP) through an HTTP CONNECT tunnel of the proxy.
type Tunneled = hyper_rustls::HttpsConnector<Tunnel<HttpConnector>>;

mod credentials;
mod metadata;
mod power;
mod signing;
mod vip;

use signing::Signer;
pub use signing::signed_headers;

/// What metadata tells about the VNIC behind one MAC.
#[derive(Debug, Clone)]
struct Vnic {
    id: String,
    subnet: Option<(Ipv4Addr, u8)>,
}

/// A private IP as the API shows it.
#[derive(Debug, Clone)]
struct PrivateIp {
    id: String,
    vnic: String,
    primary: bool,
}

pub struct Oci {
    rt: Bounded,
    opts: Options,
    run_dir: PathBuf,
    /// Metadata and plain-HTTP endpoints.
    http: Client<HttpConnector, Full<Bytes>>,
    /// The API over TLS, built on first use: loading the CA store is wasted on probes and
    /// metadata-only calls.
    https: RefCell<Option<Client<Https, Full<Bytes>>>>,
    /// Which requests go through a proxy (parameter or environment); metadata never does.
    proxy: Option<Matcher>,
    tunneled: RefCell<Option<Client<Tunneled, Full<Bytes>>>>,
    signer: RefCell<Option<Rc<Signer>>>,
    /// (region identifier, realm domain), e.g. ("us-ashburn-1", "oraclecloud.com").
    region: RefCell<Option<(String, String)>>,
    vnics: RefCell<HashMap<String, Vnic>>,
    subnet_ids: RefCell<HashMap<String, String>>,
}

impl Oci {
    pub fn new(opts: &Options, run_dir: &Path, deadline: Instant) -> Result<Self> {
        let rt = Bounded::new(deadline)?;
        Ok(Oci {
            rt,
            opts: opts.clone(),
            run_dir: run_dir.to_path_buf(),
            http: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            https: RefCell::new(None),
            proxy: super::proxy::of(opts).map(|p| super::proxy::matcher(&p)),
            tunneled: RefCell::new(None),
            signer: RefCell::new(None),
            region: RefCell::new(None),
            vnics: RefCell::new(HashMap::new()),
            subnet_ids: RefCell::new(HashMap::new()),
        })
    }

    fn https(&self) -> Result<Client<Https, Full<Bytes>>> {
        if let Some(c) = self.https.borrow().clone() {
            return Ok(c);
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Error::not_installed(format!("no CA certificates on this node: {e}")))?
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        *self.https.borrow_mut() = Some(client.clone());
        Ok(client)
    }

    /// The client through the proxy's CONNECT tunnel (one proxy per process: the matcher's).
    fn tunneled(&self, via: &Intercept) -> Result<Client<Tunneled, Full<Bytes>>> {
        if let Some(c) = self.tunneled.borrow().clone() {
            return Ok(c);
        }
        let mut tunnel = Tunnel::new(via.uri().clone(), HttpConnector::new());
        if let Some(auth) = via.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Error::not_installed(format!("no CA certificates on this node: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tunnel);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        *self.tunneled.borrow_mut() = Some(client.clone());
        Ok(client)
    }

    /// One HTTP exchange: (status, headers, body).
    async fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, http::HeaderMap, Vec<u8>)> {
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::config(format!("bad URL {url}: {e}")))?;
        let limit = self.rt.left().min(REQUEST_TIMEOUT);
        let unreachable =
            |why: String| Error::transient(format!("{method} {url}: cannot reach it ({why})"));
        let via = self.proxy.as_ref().and_then(|m| m.intercept(req.uri()));
        let (status, headers, body) = if let Some(via) = via {
            let proxied = |why: String| {
                unreachable(format!(
                    "through the proxy {}: {why}",
                    super::proxy::redacted(&via.uri().to_string())
                ))
            };
            crate::cloud::exchange(&self.tunneled(&via)?, req, limit, proxied).await?
        } else if url.starts_with("https://") {
            crate::cloud::exchange(&self.https()?, req, limit, unreachable).await?
        } else {
            crate::cloud::exchange(&self.http, req, limit, unreachable).await?
        };
        Ok((status, headers, body.to_vec()))
    }

    fn api_base(&self) -> Result<String> {
        match &self.opts.endpoint_url {
            Some(u) => Ok(u.trim_end_matches('/').to_string()),
            None => {
                let (region, domain) = self.region()?;
                Ok(format!("https://iaas.{region}.{domain}"))
            }
        }
    }

    async fn signed(
        &self,
        signer: &Signer,
        method: &str,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, http::HeaderMap, Vec<u8>)> {
        self.signed_with(signer, method, url, body, None).await
    }

    /// A signed request with an `if-match` precondition (not part of the signature, as in
    /// Oracle's SDKs).
    async fn signed_with(
        &self,
        signer: &Signer,
        method: &str,
        url: &str,
        body: Option<Vec<u8>>,
        if_match: Option<&str>,
    ) -> Result<(u16, http::HeaderMap, Vec<u8>)> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| Error::config(format!("bad URL {url}: {e}")))?;
        let date = httpdate::fmt_http_date(SystemTime::now());
        let mut headers = signer.headers(method, &uri, body.as_deref(), &date);
        if let Some(tag) = if_match {
            headers.push(("if-match".into(), tag.to_string()));
        }
        self.exchange(method, url, &headers, body).await
    }

    /// A signed API call with retries for throttling, 5xx and connection trouble (bounded by
    /// the deadline), and one fresh session after a 401 on a session token.
    fn api(&self, op: &str, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.api_full(op, method, path, body, None, &[])
            .map(|(_, v, _)| v)
    }

    /// [`Oci::api`] with an `if-match` precondition; statuses in `expected` (a failed
    /// precondition, a probe's answer) come back as answers, not errors.
    fn api_full(
        &self,
        op: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
        expected: &[u16],
    ) -> Result<(u16, Value, http::HeaderMap)> {
        let url = format!("{}/{API_VERSION}/{path}", self.api_base()?);
        let body = body.map(|b| b.to_string().into_bytes());
        let mut pause = Duration::from_millis(200);
        let mut refreshed = false;
        loop {
            let signer = self.signer(false)?;
            let answer = self.rt.run(
                op,
                self.signed_with(&signer, method, &url, body.clone(), if_match),
            );
            let err = match answer {
                Ok((status, h, bytes))
                    if (200..300).contains(&status) || expected.contains(&status) =>
                {
                    if bytes.is_empty() || !(200..300).contains(&status) {
                        return Ok((status, Value::Null, h));
                    }
                    return serde_json::from_slice(&bytes)
                        .map(|v| (status, v, h))
                        .map_err(|e| Error::transient(format!("{op}: unreadable answer: {e}")));
                }
                Ok((401, _, _)) if signer.session && !refreshed => {
                    tracing::info!("{op}: session token refused; federating again");
                    refreshed = true;
                    self.signer(true)?;
                    continue;
                }
                Ok((status, h, bytes)) => api_error(op, status, &h, &bytes),
                Err(e) => e,
            };
            if err.kind != Kind::Transient || self.rt.left() <= pause {
                return Err(err);
            }
            tracing::debug!("{op}: {err}; retrying in {:.1} s", pause.as_secs_f64());
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

/// The policy statement an operation needs (the fence agent's calls are on instances, the
/// VIP agent's on the VCN); the shipped examples have the full policies.
fn policy_hint(op: &str) -> &'static str {
    match op {
        "InstanceAction" => {
            "allow dynamic-group <nodes> to use instances in compartment <compartment> \
             (INSTANCE_POWER_ACTIONS; see oci-policy-fence.txt)"
        }
        "GetInstance" | "ListInstances" => {
            "allow dynamic-group <nodes> to read instances in compartment <compartment> \
             (see oci-policy-fence.txt)"
        }
        _ => {
            "allow dynamic-group <nodes> to use virtual-network-family in compartment \
             <compartment>"
        }
    }
}

/// Classify an API failure; OCI answers 404 NotAuthorizedOrNotFound for a missing policy.
fn api_error(op: &str, status: u16, headers: &http::HeaderMap, body: &[u8]) -> Error {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v["code"].as_str().unwrap_or("");
    let msg = v["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    let what = format!("OCI {op} failed: HTTP {status} {code}: {msg}");
    match status {
        401 => {
            // The server's clock says whether ours is off; OCI refuses over 5 minutes.
            let skew = headers
                .get("date")
                .and_then(|d| d.to_str().ok())
                .and_then(|d| httpdate::parse_http_date(d).ok())
                .and_then(|server| {
                    let now = SystemTime::now();
                    now.duration_since(server)
                        .or_else(|_| server.duration_since(now))
                        .ok()
                })
                .filter(|d| d.as_secs() >= 60);
            match skew {
                None if msg.contains("clock skew") => Error::permission(format!(
                    "{what} (this node's clock is off: OCI refuses signatures more than 5 \
                     minutes off: fix NTP/chrony)"
                )),
                Some(d) => Error::permission(format!(
                    "{what} (this node's clock differs from OCI's by {} s; OCI refuses \
                     signatures more than 5 minutes off: fix NTP/chrony)",
                    d.as_secs()
                )),
                None => Error::permission(what),
            }
        }
        403 | 404 => Error::permission(format!(
            "{what} (not authorised or not found: check the OCID and the policy, e.g. {})",
            policy_hint(op)
        )),
        409 | 429 => Error::transient(what),
        400 => Error::host_args(what),
        s if s >= 500 => Error::transient(what),
        _ => Error::failed(what),
    }
}

#[cfg(test)]
mod tests;
