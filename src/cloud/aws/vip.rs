//! The vip side: a secondary private IPv4 (and an Elastic IP) moved to the ENI behind this
//! node's MAC and confirmed.

use super::*;

/// What IMDS tells about the ENI behind one MAC.
#[derive(Debug, Clone)]
pub(super) struct Eni {
    pub(super) id: String,
    pub(super) vpc: String,
    pub(super) subnet: Option<(Ipv4Addr, u8)>,
}

impl Aws {
    /// The ENI behind `nic`, by its MAC.
    pub(super) fn eni(&self, nic: &Link) -> Result<Eni> {
        let mac = mac_string(&nic.mac);
        if let Some(e) = self.enis.borrow().get(&mac) {
            return Ok(e.clone());
        }
        let imds = self.imds()?;
        let eni = self.rt.run("reading instance metadata", async {
            let base = format!("meta-data/network/interfaces/macs/{mac}");
            let id = match imds.get(&format!("{base}/interface-id")).await {
                Ok(id) => id.trim().to_string(),
                Err(e) if e.kind == Kind::HostArgs => {
                    let known = imds
                        .get("meta-data/network/interfaces/macs/")
                        .await
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(|m| m.trim_end_matches('/').to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(Error::host_args(format!(
                        "nic={} (MAC {mac}) is not a network interface (ENI) of this instance; \
                         the instance's ENIs have MACs: {known}",
                        nic.name
                    )));
                }
                Err(e) => return Err(e),
            };
            let vpc = imds
                .get(&format!("{base}/vpc-id"))
                .await?
                .trim()
                .to_string();
            let subnet = imds
                .get(&format!("{base}/subnet-ipv4-cidr-block"))
                .await
                .ok()
                .and_then(|s| parse_cidr4(s.trim()));
            Ok(Eni { id, vpc, subnet })
        })?;
        tracing::debug!("{} (MAC {mac}) is {} in {}", nic.name, eni.id, eni.vpc);
        self.enis.borrow_mut().insert(mac, eni.clone());
        Ok(eni)
    }

    /// Every ENI of our VPC that holds `ip` (EC2 may briefly show two during a move).
    pub(super) fn holders(&self, ip: Ipv4Addr, eni: &Eni) -> Result<Vec<String>> {
        let ec2 = self.ec2()?;
        self.rt.run("DescribeNetworkInterfaces", async {
            let out = ec2
                .describe_network_interfaces()
                .filters(filter("addresses.private-ip-address", &ip.to_string()))
                .filters(filter("vpc-id", &eni.vpc))
                .send()
                .await
                .map_err(|e| sdk_error("DescribeNetworkInterfaces", e))?;
            Ok(out
                .network_interfaces()
                .iter()
                .filter_map(|n| n.network_interface_id().map(str::to_string))
                .collect())
        })
    }

    /// The Elastic IP's current association: (association id, ENI, private address).
    pub(super) fn eip_association(&self, alloc: &str) -> Result<Option<(String, String, String)>> {
        let ec2 = self.ec2()?;
        let out = self.call("DescribeAddresses", || {
            ec2.describe_addresses().allocation_ids(alloc).send()
        })?;
        let Some(a) = out.addresses().first() else {
            return Err(Error::config(format!(
                "eip_allocation_id={alloc}: no such Elastic IP in this account and region"
            )));
        };
        Ok(match (a.association_id(), a.network_interface_id()) {
            (Some(assoc), Some(eni)) => Some((
                assoc.to_string(),
                eni.to_string(),
                a.private_ip_address().unwrap_or_default().to_string(),
            )),
            _ => None,
        })
    }
}

impl Cloud for Aws {
    fn kind(&self) -> CloudKind {
        CloudKind::Aws
    }

    fn claim(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        let v4 = ipv4(ip)?;
        let eni = self.eni(nic)?;
        crate::cloud::within_subnet(
            ip,
            eni.subnet,
            &format!("{} ({})", eni.id, nic.name),
            "a secondary private IP can only move between ENIs of the same subnet",
        )?;
        let ec2 = self.ec2()?;
        tracing::info!("assigning {ip} to {} ({})", eni.id, nic.name);
        self.call("AssignPrivateIpAddresses", || {
            ec2.assign_private_ip_addresses()
                .network_interface_id(&eni.id)
                .private_ip_addresses(v4.to_string())
                .allow_reassignment(true)
                .send()
        })?;
        if let Some(alloc) = &self.opts.eip_allocation_id {
            tracing::info!("associating Elastic IP {alloc} with {ip} on {}", eni.id);
            self.call("AssociateAddress", || {
                ec2.associate_address()
                    .allocation_id(alloc)
                    .network_interface_id(&eni.id)
                    .private_ip_address(v4.to_string())
                    .allow_reassociation(true)
                    .send()
            })?;
        }
        Ok(())
    }

    fn confirm(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        crate::cloud::confirm_owner(self, &self.rt, ip, nic)
    }

    fn release(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        let v4 = ipv4(ip)?;
        let eni = self.eni(nic)?;
        let ec2 = self.ec2()?;
        if let Some(alloc) = &self.opts.eip_allocation_id {
            match self.eip_association(alloc)? {
                Some((assoc, holder, _)) if holder == eni.id => {
                    tracing::info!("disassociating Elastic IP {alloc} from {}", eni.id);
                    self.rt.run("DisassociateAddress", async {
                        ec2.disassociate_address()
                            .association_id(&assoc)
                            .send()
                            .await
                            .map_err(|e| sdk_error("DisassociateAddress", e))
                    })?;
                }
                Some((_, holder, _)) => {
                    tracing::info!("Elastic IP {alloc} points at {holder}: leaving it there")
                }
                None => {}
            }
        }
        // Never take the address from the node that holds it now.
        if !self.holders(v4, &eni)?.contains(&eni.id) {
            tracing::info!("{ip} is not on {} in EC2: nothing to release", eni.id);
            return Ok(());
        }
        tracing::info!("unassigning {ip} from {}", eni.id);
        self.rt
            .run("UnassignPrivateIpAddresses", async {
                ec2.unassign_private_ip_addresses()
                    .network_interface_id(&eni.id)
                    .private_ip_addresses(v4.to_string())
                    .send()
                    .await
                    .map_err(|e| sdk_error("UnassignPrivateIpAddresses", e))
            })
            .map(|_| ())
    }

    fn owner(&self, ip: IpAddr, nic: &Link) -> Result<Owner> {
        let v4 = ipv4(ip)?;
        let eni = self.eni(nic)?;
        let holders = self.holders(v4, &eni)?;
        let others: Vec<&String> = holders.iter().filter(|h| **h != eni.id).collect();
        if let Some(other) = others.first() {
            return Ok(Owner::Other(other.to_string()));
        }
        if holders.is_empty() {
            return Ok(Owner::Nobody);
        }
        if let Some(alloc) = &self.opts.eip_allocation_id {
            match self.eip_association(alloc)? {
                Some((_, holder, private)) if holder == eni.id && private == v4.to_string() => {}
                Some((_, holder, private)) => {
                    return Ok(Owner::Partly(format!(
                        "Elastic IP {alloc} points at {private} on {holder}"
                    )));
                }
                None => {
                    return Ok(Owner::Partly(format!(
                        "Elastic IP {alloc} is not associated"
                    )));
                }
            }
        }
        Ok(Owner::Us)
    }

    fn preflight(&self, ip: IpAddr, nic: &Link) -> Result<Vec<String>> {
        let mut report = Vec::new();
        let v4 = ipv4(ip)?;
        let imds = self.imds()?;
        let instance = self.rt.run("reading instance metadata", async {
            imds.get("meta-data/instance-id").await
        })?;
        let (region, source) = self.region()?;
        report.push(format!(
            "instance metadata (IMDSv2): instance {}, region {region} (from {source})",
            instance.trim()
        ));
        let eni = self.eni(nic)?;
        match eni.subnet {
            Some((net, len)) if crate::host::contains(IpAddr::V4(net), len, ip) => {
                report.push(format!(
                    "{} (MAC {}) is {}, subnet {net}/{len} holds {ip}",
                    nic.name,
                    mac_string(&nic.mac),
                    eni.id
                ))
            }
            Some((net, len)) => {
                return Err(Error::host_args(format!(
                    "ip={ip} is outside subnet {net}/{len} of {} ({})",
                    eni.id, nic.name
                )));
            }
            None => report.push(format!("{} is {} (subnet unknown)", nic.name, eni.id)),
        }
        let ec2 = self.ec2()?;
        let endpoint = self
            .opts
            .endpoint_url
            .as_deref()
            .unwrap_or("the regional endpoint");
        // DryRun where EC2 has it. Assign/Unassign have none: EC2 checks IAM before the
        // parameters, so a request with no address is refused as UnauthorizedOperation
        // without the permission and as MissingParameter with it, changing nothing.
        let mut denied = Vec::new();
        let id = eni.id.as_str();
        let d = &mut denied;
        self.probe(d, "DescribeNetworkInterfaces", || {
            ec2.describe_network_interfaces()
                .network_interface_ids(id)
                .dry_run(true)
                .send()
        })?;
        self.probe(d, "AssignPrivateIpAddresses", || {
            ec2.assign_private_ip_addresses()
                .network_interface_id(id)
                .send()
        })?;
        self.probe(d, "UnassignPrivateIpAddresses", || {
            ec2.unassign_private_ip_addresses()
                .network_interface_id(id)
                .send()
        })?;
        if let Some(alloc) = &self.opts.eip_allocation_id {
            self.probe(d, "DescribeAddresses", || {
                ec2.describe_addresses()
                    .allocation_ids(alloc)
                    .dry_run(true)
                    .send()
            })?;
            self.probe(d, "AssociateAddress", || {
                ec2.associate_address()
                    .allocation_id(alloc)
                    .network_interface_id(id)
                    .private_ip_address(v4.to_string())
                    .allow_reassociation(true)
                    .dry_run(true)
                    .send()
            })?;
            self.probe(d, "DisassociateAddress", || {
                ec2.disassociate_address()
                    .association_id("eipassoc-00000000000000000")
                    .dry_run(true)
                    .send()
            })?;
        }
        super::errors::lacking(&denied, "", "the IAM policy")?;
        report.push(format!(
            "EC2 API at {endpoint}: credentials valid, permissions granted"
        ));
        let owner = self.owner(ip, nic)?;
        report.push(format!("{ip} in EC2: {}", owner.describe()));
        if let Some(alloc) = &self.opts.eip_allocation_id {
            let target = match self.eip_association(alloc)? {
                Some((_, eni, private)) => format!("associated with {private} on {eni}"),
                None => "not associated".to_string(),
            };
            report.push(format!("Elastic IP {alloc}: {target}"));
        }
        Ok(report)
    }
}

fn ipv4(ip: IpAddr) -> Result<Ipv4Addr> {
    crate::cloud::ipv4_only(
        ip,
        "cloud=aws moves secondary private IPv4 addresses; IPv6 addresses are assigned to an \
         ENI permanently and are not supported",
    )
}
