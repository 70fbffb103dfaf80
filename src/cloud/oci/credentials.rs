//! Who the calls are made as: an API key from the OCI config file, or the instance principal
//! (the instance's certificate exchanged for a session token, kept 0600 under the run
//! directory and renewed before it expires).

use super::*;

/// A session key, generated where the deadline can abandon it: RSA generation is CPU-bound,
/// takes from a few hundred milliseconds to seconds on a slow or busy node, and cannot be
/// interrupted, so it runs on a thread of its own that is left behind at the deadline.
pub(super) fn generate_session_key(rt: &Bounded) -> Result<RsaPrivateKey> {
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

impl Oci {
    pub(super) fn auth_mode(&self) -> OciAuth {
        self.opts.oci_auth
    }

    /// The profile of the OCI config file (`~/.oci/config` format).
    pub(super) fn config(&self) -> Result<HashMap<String, String>> {
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

    pub(super) fn config_path(&self) -> PathBuf {
        match &self.opts.config_file {
            Some(p) => expand_home(p),
            None => home_dir().join(".oci").join("config"),
        }
    }

    pub(super) fn signer(&self, fresh: bool) -> Result<Rc<Signer>> {
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

    pub(super) fn api_key_signer(&self) -> Result<Signer> {
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
    pub(super) fn session_file(&self) -> PathBuf {
        self.run_dir.join("oci-session")
    }

    pub(super) fn instance_principal_signer(&self, fresh: bool) -> Result<Signer> {
        let kept = crate::files::read(&self.session_file())
            .ok()
            .and_then(|t| parse_session(&t));
        let mut session_key = None;
        if let Some((exp, token, key)) = kept {
            if !fresh && exp > crate::cloud::unix_now() + RENEW_BEFORE {
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
                    tracing::debug!("federation: {e}; retrying in {:.1} s", pause.as_secs_f64());
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => break other?,
            }
        };
        self.store_session(&token, &key);
        Ok(Signer::new(format!("ST${token}"), key, true))
    }

    pub(super) fn store_session(&self, token: &str, key: &RsaPrivateKey) {
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
}

/// `[profile]` sections of `key=value` lines; `#` and `;` comments.
pub(super) fn parse_oci_config(text: &str, profile: &str) -> Option<HashMap<String, String>> {
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

pub(super) fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(crate::cloud::account_home)
}

pub(super) fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None => PathBuf::from(p),
    }
}

pub(super) fn parse_key(pem: &str) -> std::result::Result<RsaPrivateKey, String> {
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| format!("not an unencrypted RSA private key in PEM (PKCS#8 or PKCS#1): {e}"))
}

/// The base64 body of a PEM block, on one line, as the federation endpoint wants it.
pub(super) fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect()
}

/// The tenancy OCID (subject OU `opc-tenant:...`) and the SHA-1 fingerprint
/// (upper-case, colon-separated) of the instance's leaf certificate.
pub(super) fn leaf_identity(cert_pem: &str) -> Result<(String, String)> {
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
pub(super) fn token_expiry(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = B64URL.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?["exp"].as_u64()
}

/// The session file: (expiry, token, session key).
pub(super) fn parse_session(text: &str) -> Option<(u64, String, RsaPrivateKey)> {
    let (first, pem) = text.split_once('\n')?;
    let (exp, token) = first.split_once(' ')?;
    Some((exp.parse().ok()?, token.to_string(), parse_key(pem).ok()?))
}
