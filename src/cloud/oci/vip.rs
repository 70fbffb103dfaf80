//! The vip side: a secondary private IP found, moved to this node's VNIC and confirmed.

use super::*;
use credentials::generate_session_key;

impl Oci {
    pub(super) fn subnet_id(&self, vnic: &Vnic) -> Result<String> {
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
    pub(super) fn private_ip(&self, ip: Ipv4Addr, vnic: &Vnic) -> Result<Option<PrivateIp>> {
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
}

impl Cloud for Oci {
    fn kind(&self) -> CloudKind {
        CloudKind::Oci
    }

    fn claim(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        let v4 = ipv4(ip)?;
        let vnic = self.vnic(nic)?;
        in_subnet(ip, &vnic, nic)?;
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
        crate::cloud::confirm_owner(self, &self.rt, ip, nic)
    }

    fn release(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        if !self.opts.delete_on_stop {
            // The next node's start moves it; deleting would only add a create there.
            return Ok(());
        }
        let v4 = ipv4(ip)?;
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
        let v4 = ipv4(ip)?;
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
        let v4 = ipv4(ip)?;
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
        in_subnet(ip, &vnic, nic)?;
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

fn ipv4(ip: IpAddr) -> Result<Ipv4Addr> {
    crate::cloud::ipv4_only(ip, "cloud=oci moves secondary private IPv4 addresses only")
}

fn in_subnet(ip: IpAddr, vnic: &Vnic, nic: &Link) -> Result<()> {
    crate::cloud::within_subnet(
        ip,
        vnic.subnet,
        &format!("VNIC {} ({})", vnic.id, nic.name),
        "a secondary private IP moves only between VNICs of one subnet",
    )
}
