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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
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

/// A key and the keyId that names it to OCI.
struct Signer {
    key_id: String,
    key: SigningKey<Sha256>,
    /// A session token (instance principal) that a 401 may have revoked.
    session: bool,
}

impl Signer {
    fn new(key_id: String, key: RsaPrivateKey, session: bool) -> Self {
        Signer {
            key_id,
            key: SigningKey::<Sha256>::new(key),
            session,
        }
    }

    /// The headers of a signed request (draft-cavage-http-signatures-08 as OCI uses it):
    /// GET/DELETE sign `date (request-target) host`; requests with a body also
    /// `content-length content-type x-content-sha256`.
    fn headers(
        &self,
        method: &str,
        uri: &http::Uri,
        body: Option<&[u8]>,
        date: &str,
    ) -> Vec<(String, String)> {
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .unwrap_or_default()
            .to_string();
        let target = format!(
            "{} {}",
            method.to_ascii_lowercase(),
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
        );
        let mut signed: Vec<(String, String)> = vec![
            ("date".into(), date.to_string()),
            ("(request-target)".into(), target),
            ("host".into(), host),
        ];
        if let Some(body) = body {
            signed.push(("content-length".into(), body.len().to_string()));
            signed.push(("content-type".into(), "application/json".into()));
            signed.push(("x-content-sha256".into(), B64.encode(Sha256::digest(body))));
        }
        let text = signed
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n");
        let signature = B64.encode(self.key.sign(text.as_bytes()).to_bytes());
        let names = signed
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        // The parameter order of Oracle's own SDKs, so the header compares byte for byte.
        let auth = format!(
            "Signature algorithm=\"rsa-sha256\",headers=\"{names}\",keyId=\"{}\",signature=\"{signature}\",version=\"1\"",
            self.key_id
        );
        let mut out: Vec<(String, String)> = signed
            .into_iter()
            .filter(|(k, _)| k != "(request-target)")
            .collect();
        out.push(("authorization".into(), auth));
        out
    }
}

/// Sign one request as the agent would: the headers to send (`date`, `host`, body headers,
/// `authorization`). For cross-checks against Oracle's SDK on the same request, key and date.
pub fn signed_headers(
    key_pem: &str,
    key_id: &str,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    date: &str,
) -> std::result::Result<Vec<(String, String)>, String> {
    let key = parse_key(key_pem)?;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    Ok(Signer::new(key_id.to_string(), key, false).headers(method, &uri, body, date))
}

/// What metadata tells about the VNIC behind one MAC.
#[derive(Debug, Clone)]
struct Vnic {
    id: String,
    subnet: Option<(Ipv4Addr, u8)>,
}

/// A private IP as the API shows it.
/// A session key, generated where the deadline can abandon it: RSA generation is CPU-bound,
/// takes from a few hundred milliseconds to seconds on a slow or busy node, and cannot be
/// interrupted, so it runs on a thread of its own that is left behind at the deadline.
fn generate_session_key(rt: &Bounded) -> Result<RsaPrivateKey> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("session-key".into())
        .spawn(move || {
            let _ = tx.send(RsaPrivateKey::new(&mut rand::thread_rng(), 2048));
        })
        .map_err(|e| Error::transient(format!("cannot start generating a session key: {e}")))?;
    match rx.recv_timeout(rt.left()) {
        Ok(Ok(k)) => Ok(k),
        Ok(Err(e)) => Err(Error::failed(format!("cannot generate a session key: {e}"))),
        Err(_) => Err(Error::transient(
            "generating the session key did not finish within the action's timeout",
        )),
    }
}

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
        let answer = async {
            let resp = if url.starts_with("https://") {
                self.https()?.request(req).await
            } else {
                self.http.request(req).await
            }
            .map_err(|e| unreachable(format!("{e:?}")))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes()
                .to_vec();
            Ok::<_, Error>((status, headers, body))
        };
        tokio::time::timeout(limit, answer)
            .await
            .map_err(|_| unreachable(format!("no answer within {:.1} s", limit.as_secs_f64())))?
    }

    /// Instance metadata (v2: the `Authorization: Bearer Oracle` header is required).
    async fn metadata(&self, path: &str) -> Result<String> {
        if super::metadata_disabled() {
            return Err(Error::not_installed(format!(
                "instance metadata is disabled (CLOUDHA_METADATA_DISABLED or \
                 AWS_EC2_METADATA_DISABLED is true) but cloud=oci needs it for {path}"
            )));
        }
        let url = format!("{METADATA}/{path}");
        let auth = [("authorization".to_string(), "Bearer Oracle".to_string())];
        let (status, _, body) = self.exchange("GET", &url, &auth, None).await.map_err(|e| {
            Error::transient(format!(
                "instance metadata is unreachable ({}); is this an OCI instance?",
                e.message
            ))
        })?;
        match status {
            200 => Ok(String::from_utf8_lossy(&body).into_owned()),
            404 => Err(Error::host_args(format!("instance metadata has no {path}"))),
            s => Err(Error::transient(format!(
                "instance metadata {url} answered HTTP {s}"
            ))),
        }
    }

    fn region(&self) -> Result<(String, String)> {
        if let Some(r) = self.region.borrow().clone() {
            return Ok(r);
        }
        let from_config = || -> Result<Option<String>> {
            if self.auth_mode() == OciAuth::ApiKey {
                Ok(self.config()?.get("region").cloned())
            } else {
                Ok(None)
            }
        };
        let configured = match self.opts.region.clone() {
            Some(r) => Some(r),
            None => from_config()?,
        };
        let found = match configured {
            Some(r) => (r, "oraclecloud.com".to_string()),
            None => self
                .rt
                .run("reading the region from instance metadata", async {
                    let info: Value =
                        serde_json::from_str(&self.metadata("instance/regionInfo").await?)
                            .map_err(|e| Error::transient(format!("instance/regionInfo: {e}")))?;
                    let region = info["regionIdentifier"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let domain = info["realmDomainComponent"]
                        .as_str()
                        .unwrap_or("oraclecloud.com")
                        .to_string();
                    if region.is_empty() {
                        return Err(Error::transient("instance metadata names no region"));
                    }
                    Ok((region, domain))
                })?,
        };
        *self.region.borrow_mut() = Some(found.clone());
        Ok(found)
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

    fn auth_mode(&self) -> OciAuth {
        self.opts.oci_auth
    }

    /// The profile of the OCI config file (`~/.oci/config` format).
    fn config(&self) -> Result<HashMap<String, String>> {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::not_installed(format!(
                "oci_auth=api_key needs the OCI config file {}: {e}",
                path.display()
            ))
        })?;
        let profile = self.opts.profile.as_deref().unwrap_or("DEFAULT");
        parse_oci_config(&text, profile).ok_or_else(|| {
            Error::host_args(format!("profile [{profile}] is not in {}", path.display()))
        })
    }

    fn config_path(&self) -> PathBuf {
        match &self.opts.config_file {
            Some(p) => expand_home(p),
            None => home_dir().join(".oci").join("config"),
        }
    }

    fn signer(&self, fresh: bool) -> Result<Rc<Signer>> {
        if !fresh && let Some(s) = self.signer.borrow().clone() {
            return Ok(s);
        }
        let signer = Rc::new(match self.auth_mode() {
            OciAuth::ApiKey => self.api_key_signer()?,
            OciAuth::InstancePrincipal => self.instance_principal_signer(fresh)?,
        });
        *self.signer.borrow_mut() = Some(signer.clone());
        Ok(signer)
    }

    fn api_key_signer(&self) -> Result<Signer> {
        let conf = self.config()?;
        let path = self.config_path();
        let field = |k: &str| {
            conf.get(k).cloned().ok_or_else(|| {
                Error::host_args(format!("{} has no {k} in its profile", path.display()))
            })
        };
        let (user, fingerprint, tenancy) =
            (field("user")?, field("fingerprint")?, field("tenancy")?);
        let key_file = expand_home(&field("key_file")?);
        if conf.contains_key("pass_phrase") {
            return Err(Error::config(format!(
                "{}: encrypted API keys (pass_phrase) are not supported; use an unencrypted \
                 key readable by root only",
                path.display()
            )));
        }
        let pem = std::fs::read_to_string(&key_file).map_err(|e| {
            Error::not_installed(format!("cannot read key_file {}: {e}", key_file.display()))
        })?;
        let key = parse_key(&pem)
            .map_err(|e| Error::host_args(format!("key_file {}: {e}", key_file.display())))?;
        Ok(Signer::new(
            format!("{tenancy}/{user}/{fingerprint}"),
            key,
            false,
        ))
    }

    /// The session file: `<expiry> <token>` then the session key (PKCS#8 PEM).
    fn session_file(&self) -> PathBuf {
        self.run_dir.join("oci-session")
    }

    fn instance_principal_signer(&self, fresh: bool) -> Result<Signer> {
        let kept = crate::files::read(&self.session_file())
            .ok()
            .and_then(|t| parse_session(&t));
        let mut session_key = None;
        if let Some((exp, token, key)) = kept {
            if !fresh && exp > now_secs() + RENEW_BEFORE {
                return Ok(Signer::new(format!("ST${token}"), key, true));
            }
            // The key outlives its token: generating an RSA key is the slow part of a
            // federation, and a standby node's token has usually expired by the failover.
            session_key = Some(key);
        }
        let (region, domain) = self.region()?;
        // Oracle's SDKs take the full URL (…/v1/x509); a bare host is accepted too.
        let url = match &self.opts.auth_endpoint_url {
            Some(u) if u.trim_end_matches('/').ends_with("/v1/x509") => {
                u.trim_end_matches('/').to_string()
            }
            Some(u) => format!("{}/v1/x509", u.trim_end_matches('/')),
            None => format!("https://auth.{region}.{domain}/v1/x509"),
        };
        let session = match session_key {
            Some(k) => k,
            None => generate_session_key(&self.rt)?,
        };
        // Federation is an API call like the others: throttling and 5xx are retried with
        // back-off inside the deadline (many nodes federate at once after a failover).
        let mut pause = Duration::from_millis(200);
        let (token, key) = loop {
            let session = session.clone();
            let attempt = self.rt.run("instance principal federation", async {
                let cert = self.metadata("identity/cert.pem").await?;
                let leaf_key = self.metadata("identity/key.pem").await?;
                let intermediate = self.metadata("identity/intermediate.pem").await?;
                let (tenancy, fingerprint) = leaf_identity(&cert)?;
                let leaf_key = parse_key(&leaf_key).map_err(|e| {
                    Error::transient(format!("identity/key.pem from metadata: {e}"))
                })?;
                // The token is bound to the public half of the session key.
                let session = session;
                let public = session
                    .to_public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| Error::failed(format!("session key: {e}")))?;
                let body = json!({
                    "certificate": pem_body(&cert),
                    "publicKey": pem_body(&public),
                    "intermediateCertificates": [pem_body(&intermediate)],
                })
                .to_string()
                .into_bytes();
                let signer =
                    Signer::new(format!("{tenancy}/fed-x509/{fingerprint}"), leaf_key, false);
                let (status, headers, answer) =
                    self.signed(&signer, "POST", &url, Some(body)).await?;
                if status != 200 {
                    return Err(api_error(
                        "federation (instance principal)",
                        status,
                        &headers,
                        &answer,
                    ));
                }
                let v: Value = serde_json::from_slice(&answer)
                    .map_err(|e| Error::transient(format!("federation answer: {e}")))?;
                let token = v["token"]
                    .as_str()
                    .ok_or_else(|| Error::transient("federation answer without a token"))?
                    .to_string();
                Ok((token, session))
            });
            match attempt {
                Err(e) if e.kind == Kind::Transient && self.rt.left() > pause => {
                    tracing::debug!("federation: {e}; retrying in {pause:?}");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => break other?,
            }
        };
        self.store_session(&token, &key);
        Ok(Signer::new(format!("ST${token}"), key, true))
    }

    fn store_session(&self, token: &str, key: &RsaPrivateKey) {
        let write = || -> std::io::Result<()> {
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let head = format!("{} {token}\n", token_expiry(token).unwrap_or(0));
            write_private(
                &self.session_file(),
                &[head.as_bytes(), pem.as_bytes()].concat(),
            )
        };
        if let Err(e) = write() {
            tracing::debug!(
                "cannot keep the OCI session in {}: {e}",
                self.run_dir.display()
            );
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
            tracing::debug!("{op}: {err}; retrying in {pause:?}");
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    fn vnic(&self, nic: &Link) -> Result<Vnic> {
        let mac = mac_string(&nic.mac);
        if let Some(v) = self.vnics.borrow().get(&mac) {
            return Ok(v.clone());
        }
        let list = self
            .rt
            .run("reading instance metadata", self.metadata("vnics/"))?;
        let vnics: Value = serde_json::from_str(&list)
            .map_err(|e| Error::transient(format!("instance metadata vnics/: {e}")))?;
        let all = vnics.as_array().cloned().unwrap_or_default();
        let found = all.iter().find(|v| {
            v["macAddr"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case(&mac))
        });
        let Some(v) = found else {
            let known: Vec<&str> = all.iter().filter_map(|v| v["macAddr"].as_str()).collect();
            return Err(Error::host_args(format!(
                "nic={} (MAC {mac}) is not a VNIC of this instance; its VNICs have MACs: {}",
                nic.name,
                known.join(", ")
            )));
        };
        let vnic = Vnic {
            id: v["vnicId"].as_str().unwrap_or_default().to_string(),
            subnet: v["subnetCidrBlock"].as_str().and_then(parse_cidr4),
        };
        self.vnics.borrow_mut().insert(mac, vnic.clone());
        Ok(vnic)
    }

    fn subnet_id(&self, vnic: &Vnic) -> Result<String> {
        if let Some(s) = self.subnet_ids.borrow().get(&vnic.id) {
            return Ok(s.clone());
        }
        // A VNIC never changes subnet: remembered across calls, so probes cost one request.
        let cache = self.run_dir.join("oci-vnic-subnets");
        let known = crate::files::read(&cache).unwrap_or_default();
        if let Some(subnet) = known
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{} ", vnic.id)).map(str::to_string))
        {
            self.subnet_ids
                .borrow_mut()
                .insert(vnic.id.clone(), subnet.clone());
            return Ok(subnet);
        }
        let v = self.api("GetVnic", "GET", &format!("vnics/{}", vnic.id), None)?;
        let subnet = v["subnetId"]
            .as_str()
            .ok_or_else(|| Error::transient(format!("GetVnic {}: no subnetId", vnic.id)))?
            .to_string();
        self.subnet_ids
            .borrow_mut()
            .insert(vnic.id.clone(), subnet.clone());
        let line = format!("{known}{} {subnet}\n", vnic.id);
        if let Err(e) = crate::files::write(&cache, line.as_bytes()) {
            tracing::debug!("cannot remember the subnet in {}: {e}", cache.display());
        }
        Ok(subnet)
    }

    /// The private IP object for `ip` in the VNIC's subnet, if any.
    fn private_ip(&self, ip: Ipv4Addr, vnic: &Vnic) -> Result<Option<PrivateIp>> {
        let subnet = self.subnet_id(vnic)?;
        let v = self.api(
            "ListPrivateIps",
            "GET",
            &format!("privateIps?ipAddress={ip}&subnetId={subnet}"),
            None,
        )?;
        Ok(v.as_array().and_then(|a| a.first()).map(|p| PrivateIp {
            id: p["id"].as_str().unwrap_or_default().to_string(),
            vnic: p["vnicId"].as_str().unwrap_or_default().to_string(),
            primary: p["isPrimary"].as_bool().unwrap_or(false),
        }))
    }

    fn ipv4(ip: IpAddr) -> Result<Ipv4Addr> {
        match ip {
            IpAddr::V4(v4) => Ok(v4),
            IpAddr::V6(_) => Err(Error::config(format!(
                "ip={ip}: cloud=oci moves secondary private IPv4 addresses only"
            ))),
        }
    }

    fn in_subnet(ip: IpAddr, vnic: &Vnic, nic: &Link) -> Result<()> {
        if let Some((net, len)) = vnic.subnet
            && !crate::host::contains(IpAddr::V4(net), len, ip)
        {
            return Err(Error::host_args(format!(
                "ip={ip} is outside subnet {net}/{len} of VNIC {} ({}); a secondary private IP \
                 moves only between VNICs of one subnet",
                vnic.id, nic.name
            )));
        }
        Ok(())
    }
}

impl Cloud for Oci {
    fn kind(&self) -> CloudKind {
        CloudKind::Oci
    }

    fn claim(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        let v4 = Self::ipv4(ip)?;
        let vnic = self.vnic(nic)?;
        Self::in_subnet(ip, &vnic, nic)?;
        match self.private_ip(v4, &vnic)? {
            Some(p) if p.vnic == vnic.id => {
                tracing::info!("{ip} is already on VNIC {}", vnic.id);
                Ok(())
            }
            Some(p) if p.primary => Err(Error::host_args(format!(
                "ip={ip} is the primary address of VNIC {}: only secondary addresses move",
                p.vnic
            ))),
            Some(p) => {
                tracing::info!(
                    "moving {ip} from VNIC {} to {} ({})",
                    p.vnic,
                    vnic.id,
                    nic.name
                );
                self.api(
                    "UpdatePrivateIp",
                    "PUT",
                    &format!("privateIps/{}", p.id),
                    Some(json!({ "vnicId": vnic.id })),
                )
                .map(|_| ())
            }
            None => {
                tracing::info!("creating {ip} on VNIC {} ({})", vnic.id, nic.name);
                self.api(
                    "CreatePrivateIp",
                    "POST",
                    "privateIps",
                    Some(json!({ "vnicId": vnic.id, "ipAddress": v4.to_string() })),
                )
                .map(|_| ())
            }
        }
    }

    fn confirm(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        super::confirm_owner(self, &self.rt, ip, nic)
    }

    fn release(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        if !self.opts.delete_on_stop {
            // The next node's start moves it; deleting would only add a create there.
            return Ok(());
        }
        let v4 = Self::ipv4(ip)?;
        let vnic = self.vnic(nic)?;
        match self.private_ip(v4, &vnic)? {
            Some(p) if p.vnic == vnic.id && !p.primary => {
                // The list is a moment old: another node's start may move the address between
                // it and the delete. Delete only the version we have seen on our VNIC (If-Match
                // with its ETag); a 412 means it changed hands, and is left alone.
                let path = format!("privateIps/{}", p.id);
                let (_, now, h) =
                    self.api_full("GetPrivateIp", "GET", &path, None, None, &[404])?;
                if now["vnicId"].as_str() != Some(vnic.id.as_str()) {
                    tracing::info!("{ip} moved off VNIC {} meanwhile: leaving it", vnic.id);
                    return Ok(());
                }
                let Some(etag) = h.get("etag").and_then(|v| v.to_str().ok()) else {
                    return Err(Error::transient(format!(
                        "GetPrivateIp {}: no ETag to delete it safely",
                        p.id
                    )));
                };
                tracing::info!("deleting {ip} from VNIC {}", vnic.id);
                let (status, _, _) = self.api_full(
                    "DeletePrivateIp",
                    "DELETE",
                    &path,
                    None,
                    Some(etag),
                    &[404, 412],
                )?;
                if status == 412 || status == 404 {
                    tracing::info!(
                        "{ip} changed or went while deleting it (HTTP {status}): another node \
                         holds it now; leaving it"
                    );
                }
                Ok(())
            }
            Some(p) => {
                tracing::info!("{ip} is on VNIC {}: leaving it there", p.vnic);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn owner(&self, ip: IpAddr, nic: &Link) -> Result<Owner> {
        let v4 = Self::ipv4(ip)?;
        let vnic = self.vnic(nic)?;
        Ok(match self.private_ip(v4, &vnic)? {
            Some(p) if p.vnic == vnic.id => Owner::Us,
            Some(p) => Owner::Other(format!("VNIC {}", p.vnic)),
            None => Owner::Nobody,
        })
    }

    /// The session key of instance principals, generated ahead (an RSA key takes a few
    /// hundred milliseconds) so that a failover's federation is one round trip.
    fn prepare(&self) -> Result<()> {
        if self.auth_mode() != OciAuth::InstancePrincipal || self.session_file().exists() {
            return Ok(());
        }
        let key = generate_session_key(&self.rt)?;
        self.store_session("", &key);
        Ok(())
    }

    fn preflight(&self, ip: IpAddr, nic: &Link) -> Result<Vec<String>> {
        let v4 = Self::ipv4(ip)?;
        let mut report = Vec::new();
        let (region, _) = self.region()?;
        let instance = self
            .rt
            .run("reading instance metadata", self.metadata("instance/id"))?;
        report.push(format!(
            "instance metadata: instance {}, region {region}",
            instance.trim()
        ));
        let signer = self.signer(false)?;
        report.push(match self.auth_mode() {
            OciAuth::ApiKey => format!(
                "authentication: API key {} from {}",
                signer.key_id,
                self.config_path().display()
            ),
            OciAuth::InstancePrincipal => {
                "authentication: instance principal (session token from the federation \
                  endpoint)"
                    .to_string()
            }
        });
        let vnic = self.vnic(nic)?;
        Self::in_subnet(ip, &vnic, nic)?;
        report.push(format!(
            "{} (MAC {}) is VNIC {}",
            nic.name,
            mac_string(&nic.mac),
            vnic.id
        ));
        let subnet = self.subnet_id(&vnic)?;
        report.push(format!("GetVnic: allowed; subnet {subnet}"));
        let owner = self.owner(ip, nic)?;
        report.push(format!(
            "ListPrivateIps: allowed; {v4} is {}",
            owner.describe()
        ));
        // Write permission without a change: an update of our own primary address with an
        // ETag that cannot match. OCI checks the policy first: 404 without the permission,
        // 412 (precondition failed) with it.
        let ips = self.api(
            "ListPrivateIps",
            "GET",
            &format!("privateIps?vnicId={}", vnic.id),
            None,
        )?;
        let primary = ips
            .as_array()
            .and_then(|a| a.iter().find(|p| p["isPrimary"].as_bool() == Some(true)))
            .and_then(|p| p["id"].as_str())
            .map(str::to_string);
        if let Some(id) = primary {
            let probe = self.api_full(
                "UpdatePrivateIp (permission probe)",
                "PUT",
                &format!("privateIps/{id}"),
                Some(json!({})),
                Some("\"cloudha-preflight\""),
                &[412],
            );
            match probe {
                Ok((412, _, _)) => {
                    report.push("UpdatePrivateIp: allowed (probed with a stale ETag)".into())
                }
                Ok((s, _, _)) => {
                    return Err(Error::failed(format!(
                        "UpdatePrivateIp (permission probe): HTTP {s} with a stale ETag; \
                         nothing should have matched"
                    )));
                }
                Err(e) if e.kind == Kind::Permission => {
                    return Err(Error::permission(format!(
                        "this node may not update private IPs: {}",
                        e.message
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
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
            "{what} (not authorised or not found: check the OCID and the policy, e.g. allow \
             dynamic-group <nodes> to use virtual-network-family in compartment <compartment>)"
        )),
        409 | 429 => Error::transient(what),
        400 => Error::host_args(what),
        s if s >= 500 => Error::transient(what),
        _ => Error::failed(what),
    }
}

/// `[profile]` sections of `key=value` lines; `#` and `;` comments.
fn parse_oci_config(text: &str, profile: &str) -> Option<HashMap<String, String>> {
    let mut current: Option<String> = None;
    let mut found: Option<HashMap<String, String>> = None;
    let mut default: HashMap<String, String> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_string());
            if name.trim() == profile {
                found.get_or_insert_with(HashMap::new);
            }
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        match current.as_deref() {
            Some("DEFAULT") => {
                default.insert(k.clone(), v.clone());
                if profile == "DEFAULT" {
                    found.get_or_insert_with(HashMap::new).insert(k, v);
                }
            }
            Some(p) if p == profile => {
                found.get_or_insert_with(HashMap::new).insert(k, v);
            }
            _ => {}
        }
    }
    // Like the SDKs: a named profile inherits what it does not set from DEFAULT.
    found.map(|mut f| {
        for (k, v) in default {
            f.entry(k).or_insert(v);
        }
        f
    })
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None => PathBuf::from(p),
    }
}

fn parse_key(pem: &str) -> std::result::Result<RsaPrivateKey, String> {
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| format!("not an unencrypted RSA private key in PEM (PKCS#8 or PKCS#1): {e}"))
}

/// The base64 body of a PEM block, on one line, as the federation endpoint wants it.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect()
}

/// The tenancy OCID (subject OU `opc-tenant:...`) and the SHA-1 fingerprint
/// (upper-case, colon-separated) of the instance's leaf certificate.
fn leaf_identity(cert_pem: &str) -> Result<(String, String)> {
    use x509_cert::der::{Decode, DecodePem, Encode};
    let cert = x509_cert::Certificate::from_pem(cert_pem.as_bytes())
        .map_err(|e| Error::transient(format!("identity/cert.pem from metadata: {e}")))?;
    let der = cert
        .to_der()
        .map_err(|e| Error::transient(format!("identity/cert.pem: {e}")))?;
    let fingerprint = sha1::Sha1::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let ou = x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.4.11");
    let tenancy = cert
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == ou)
        .filter_map(|atv| {
            let raw = atv.value.to_der().ok()?;
            // UTF8String or PrintableString: the value bytes follow the tag and length.
            x509_cert::der::asn1::Utf8StringRef::from_der(&raw)
                .map(|s| s.as_str().to_string())
                .or_else(|_| {
                    x509_cert::der::asn1::PrintableStringRef::from_der(&raw)
                        .map(|s| s.as_str().to_string())
                })
                .ok()
        })
        .find_map(|v| v.strip_prefix("opc-tenant:").map(str::to_string))
        .ok_or_else(|| {
            Error::transient("the instance certificate names no tenancy (OU opc-tenant:...)")
        })?;
    Ok((tenancy, fingerprint))
}

/// `exp` of a JWT, without checking it (the server does).
fn token_expiry(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = B64URL.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?["exp"].as_u64()
}

/// The session file: (expiry, token, session key).
fn parse_session(text: &str) -> Option<(u64, String, RsaPrivateKey)> {
    let (first, pem) = text.split_once('\n')?;
    let (exp, token) = first.split_once(' ')?;
    Some((exp.parse().ok()?, token.to_string(), parse_key(pem).ok()?))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_profiles_inherit_default() {
        let text = "[DEFAULT]\nregion=eu-frankfurt-1\ntenancy=ocid1.tenancy.oc1..t\n\
                    # comment\n[ha]\nuser=ocid1.user.oc1..u\nfingerprint=aa:bb\nkey_file=~/k.pem\n";
        let p = parse_oci_config(text, "ha").unwrap();
        assert_eq!(p["user"], "ocid1.user.oc1..u");
        assert_eq!(p["region"], "eu-frankfurt-1");
        assert!(parse_oci_config(text, "nope").is_none());
        assert_eq!(
            parse_oci_config(text, "DEFAULT").unwrap()["region"],
            "eu-frankfurt-1"
        );
    }

    #[test]
    fn signing_string_and_header_list() {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let s = Signer::new("t/u/f".into(), key.clone(), false);
        let uri: http::Uri = "https://iaas.eu-frankfurt-1.oraclecloud.com/20160918/vnics/x?a=b"
            .parse()
            .unwrap();
        let h = s.headers("GET", &uri, None, "Thu, 05 Jan 2014 21:31:40 GMT");
        let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert!(
            auth.contains("headers=\"date (request-target) host\""),
            "{auth}"
        );
        assert!(auth.contains("keyId=\"t/u/f\""));
        // The signature verifies over exactly the documented signing string.
        let sig = auth
            .split("signature=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        let text = "date: Thu, 05 Jan 2014 21:31:40 GMT\n(request-target): get \
                    /20160918/vnics/x?a=b\nhost: iaas.eu-frankfurt-1.oraclecloud.com";
        use rsa::signature::Verifier;
        let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.to_public_key());
        let sig = rsa::pkcs1v15::Signature::try_from(B64.decode(sig).unwrap().as_slice()).unwrap();
        vk.verify(text.as_bytes(), &sig).unwrap();
        let h = s.headers("PUT", &uri, Some(b"{}"), "Thu, 05 Jan 2014 21:31:40 GMT");
        let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert!(auth.contains(
            "headers=\"date (request-target) host content-length content-type x-content-sha256\""
        ));
        let sha = &h.iter().find(|(k, _)| k == "x-content-sha256").unwrap().1;
        assert_eq!(sha, "RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=");
    }

    #[test]
    fn jwt_expiry() {
        let payload = B64URL.encode(br#"{"exp":1800000000,"sub":"x"}"#);
        assert_eq!(token_expiry(&format!("h.{payload}.s")), Some(1_800_000_000));
        assert_eq!(token_expiry("garbage"), None);
    }
}
