//! Instance metadata (`/opc/v2`): the region and the VNIC behind a MAC.

use super::*;

impl Oci {
    /// Instance metadata (v2: the `Authorization: Bearer Oracle` header is required).
    pub(super) async fn metadata(&self, path: &str) -> Result<String> {
        if crate::cloud::metadata_disabled() {
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

    pub(super) fn region(&self) -> Result<(String, String)> {
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

    pub(super) fn vnic(&self, nic: &Link) -> Result<Vnic> {
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
}
