//! Amazon EC2: a secondary private IPv4 address (and optionally an Elastic IP) moved between
//! ENIs with aws-sdk-ec2. The ENI is the one whose MAC is `nic`'s, found through IMDSv2, never
//! blindly the primary. Every call is bounded by the action's deadline; the SDK's own retries
//! (standard mode, throttling back-off) run inside that bound.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_runtime::env_config::file::{
    EnvConfigFileKind as ProfileFileKind, EnvConfigFiles as ProfileFiles,
};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::Filter;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::imds::Imds;
use super::{Bounded, Cloud, CloudKind, Options, Owner, mac_string, parse_cidr4};
use crate::error::{Error, Kind, Result};
use crate::host::Link;

mod routes;

/// What IMDS tells about the ENI behind one MAC.
#[derive(Debug, Clone)]
struct Eni {
    id: String,
    vpc: String,
    subnet: Option<(Ipv4Addr, u8)>,
}

pub struct Aws {
    rt: Bounded,
    imds: Option<Imds>,
    opts: Options,
    client: RefCell<Option<aws_sdk_ec2::Client>>,
    region: RefCell<Option<(String, &'static str)>>,
    enis: RefCell<HashMap<String, Eni>>,
}

impl Aws {
    pub fn new(opts: &Options, run_dir: &Path, deadline: Instant) -> Result<Self> {
        let rt = Bounded::new(deadline)?;
        let imds = Imds::endpoint_from_env().map(|e| Imds::new(&e, run_dir, deadline));
        Ok(Aws {
            rt,
            imds,
            opts: opts.clone(),
            client: RefCell::new(None),
            region: RefCell::new(None),
            enis: RefCell::new(HashMap::new()),
        })
    }

    fn imds(&self) -> Result<&Imds> {
        self.imds.as_ref().ok_or_else(|| {
            Error::not_installed(
                "instance metadata is disabled (AWS_EC2_METADATA_DISABLED or \
                 CLOUDHA_METADATA_DISABLED is true) but cloud=aws \
                 needs it to find the ENI of nic",
            )
        })
    }

    fn region(&self) -> Result<(String, &'static str)> {
        if let Some(r) = self.region.borrow().clone() {
            return Ok(r);
        }
        let found = if let Some(r) = &self.opts.region {
            (r.clone(), "parameter region")
        } else if let Some(r) = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
        {
            (r, "environment")
        } else {
            let r = self
                .rt
                .run("reading the region from instance metadata", async {
                    self.imds()?.get("meta-data/placement/region").await
                })?;
            (r.trim().to_string(), "instance metadata")
        };
        *self.region.borrow_mut() = Some(found.clone());
        Ok(found)
    }

    /// The EC2 client, built on first use so that monitors which need no API call pay nothing.
    fn ec2(&self) -> Result<aws_sdk_ec2::Client> {
        if let Some(c) = self.client.borrow().clone() {
            return Ok(c);
        }
        let (region, _) = self.region()?;
        let left = self.rt.left();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(left.min(Duration::from_secs(3)))
            .operation_attempt_timeout(left.mul_f64(0.4).max(Duration::from_secs(1)))
            .operation_timeout(left)
            .build();
        let client = self
            .rt
            .run("loading AWS credentials and configuration", async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(aws_config::Region::new(region))
                    .http_client(http_client())
                    .timeout_config(timeouts)
                    .retry_config(RetryConfig::standard().with_max_attempts(4));
                if let Some(p) = &self.opts.profile {
                    loader = loader.profile_name(p);
                }
                if let Some(files) = profile_files_without_home() {
                    loader = loader.profile_files(files);
                }
                let base = loader.load().await;
                let mut conf = aws_sdk_ec2::config::Builder::from(&base);
                if let Some(role) = &self.opts.role_arn {
                    let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                        .session_name(session_name())
                        .configure(&base)
                        .build()
                        .await;
                    conf = conf.credentials_provider(provider);
                }
                // Only EC2 goes to endpoint_url (a VPC interface endpoint); STS keeps its own.
                if let Some(url) = &self.opts.endpoint_url {
                    conf = conf.endpoint_url(url);
                }
                Ok(aws_sdk_ec2::Client::from_conf(conf.build()))
            })?;
        *self.client.borrow_mut() = Some(client.clone());
        Ok(client)
    }

    /// The ENI behind `nic`, by its MAC.
    fn eni(&self, nic: &Link) -> Result<Eni> {
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

    fn ipv4(ip: IpAddr) -> Result<Ipv4Addr> {
        match ip {
            IpAddr::V4(v4) => Ok(v4),
            IpAddr::V6(_) => Err(Error::config(format!(
                "ip={ip}: cloud=aws moves secondary private IPv4 addresses; IPv6 addresses \
                 are assigned to an ENI permanently and are not supported"
            ))),
        }
    }

    /// Every ENI of our VPC that holds `ip` (EC2 may briefly show two during a move).
    fn holders(&self, ip: Ipv4Addr, eni: &Eni) -> Result<Vec<String>> {
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
    fn eip_association(&self, alloc: &str) -> Result<Option<(String, String, String)>> {
        let ec2 = self.ec2()?;
        self.rt.run("DescribeAddresses", async {
            let out = ec2
                .describe_addresses()
                .allocation_ids(alloc)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeAddresses", e))?;
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
        })
    }

    /// One permission probe for the pre-flight: a call that cannot change anything (DryRun,
    /// or no address at all); a denial adds `ec2:<action>` to `denied`.
    fn probe<T, E, F>(
        &self,
        denied: &mut Vec<String>,
        action: &str,
        call: impl FnOnce() -> F,
    ) -> Result<()>
    where
        F: Future<Output = std::result::Result<T, SdkError<E, Resp>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if !self.permitted(action, call)? {
            denied.push(format!("ec2:{action}"));
        }
        Ok(())
    }

    /// Whether a call that cannot change anything (DryRun, or no address at all) is allowed.
    fn permitted<T, E, F>(&self, action: &str, call: impl FnOnce() -> F) -> Result<bool>
    where
        F: Future<Output = std::result::Result<T, SdkError<E, Resp>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let answer = self.rt.run(action, async { Ok(call().await) })?;
        Ok(match answer {
            Ok(_) => true,
            Err(e) => match e.code() {
                Some("DryRunOperation") => true,
                Some("UnauthorizedOperation" | "AccessDenied") => false,
                // Authorised, then refused on the deliberately empty parameters.
                Some(
                    "MissingParameter"
                    | "InvalidParameterValue"
                    | "InvalidParameterCombination"
                    | "InvalidAssociationID.NotFound",
                ) => true,
                _ => return Err(sdk_error(action, e)),
            },
        })
    }
}

type Resp = aws_sdk_ec2::config::http::HttpResponse;

impl Cloud for Aws {
    fn kind(&self) -> CloudKind {
        CloudKind::Aws
    }

    fn claim(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        let v4 = Self::ipv4(ip)?;
        let eni = self.eni(nic)?;
        if let Some((net, len)) = eni.subnet
            && !crate::host::contains(IpAddr::V4(net), len, ip)
        {
            return Err(Error::host_args(format!(
                "ip={ip} is outside subnet {net}/{len} of {} ({}); a secondary private IP \
                 can only move between ENIs of the same subnet",
                eni.id, nic.name
            )));
        }
        let ec2 = self.ec2()?;
        tracing::info!("assigning {ip} to {} ({})", eni.id, nic.name);
        self.rt.run("AssignPrivateIpAddresses", async {
            ec2.assign_private_ip_addresses()
                .network_interface_id(&eni.id)
                .private_ip_addresses(v4.to_string())
                .allow_reassignment(true)
                .send()
                .await
                .map_err(|e| sdk_error("AssignPrivateIpAddresses", e))
        })?;
        if let Some(alloc) = &self.opts.eip_allocation_id {
            tracing::info!("associating Elastic IP {alloc} with {ip} on {}", eni.id);
            self.rt.run("AssociateAddress", async {
                ec2.associate_address()
                    .allocation_id(alloc)
                    .network_interface_id(&eni.id)
                    .private_ip_address(v4.to_string())
                    .allow_reassociation(true)
                    .send()
                    .await
                    .map_err(|e| sdk_error("AssociateAddress", e))
            })?;
        }
        Ok(())
    }

    fn confirm(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        super::confirm_owner(self, &self.rt, ip, nic)
    }

    fn release(&self, ip: IpAddr, nic: &Link) -> Result<()> {
        let v4 = Self::ipv4(ip)?;
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
        let v4 = Self::ipv4(ip)?;
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
        let v4 = Self::ipv4(ip)?;
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
        if !denied.is_empty() {
            return Err(Error::permission(format!(
                "the AWS credentials of this node lack {} (see the IAM policy in \
                 /usr/share/doc/cloudha/examples/)",
                denied.join(", ")
            )));
        }
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

/// The SDK's HTTP client with proxies from the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)
/// and rustls on ring, so no C crypto library is linked.
fn http_client() -> aws_sdk_ec2::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut b =
            aws_smithy_http_client::Connector::builder().proxy_config(ProxyConfig::from_env());
        if let Some(s) = settings {
            b = b.connector_settings(s.clone());
        }
        if let Some(sleep) = components.and_then(|c| c.sleep_impl()) {
            b = b.sleep_impl(sleep);
        }
        b.tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build()
    })
}

/// Pacemaker may run agents without HOME, and the SDK then finds no `~/.aws`: use the home
/// directory of the user we run as (root's /root), still honouring AWS_CONFIG_FILE and
/// AWS_SHARED_CREDENTIALS_FILE.
fn profile_files_without_home() -> Option<ProfileFiles> {
    if std::env::var_os("HOME").is_some() {
        return None;
    }
    let home = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .unwrap_or_else(|| PathBuf::from("/root"));
    let file = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws").join(name))
    };
    Some(
        ProfileFiles::builder()
            .with_file(ProfileFileKind::Config, file("AWS_CONFIG_FILE", "config"))
            .with_file(
                ProfileFileKind::Credentials,
                file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            )
            .build(),
    )
}

fn session_name() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let mut name = format!("cloudha-{host}");
    name.retain(|c| c.is_ascii_alphanumeric() || "=,.@-_".contains(c));
    name.truncate(64);
    name
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Classify an SDK failure: the kind decides the exit code, so throttling and outages must
/// never look like a configuration error or a stopped resource.
fn sdk_error<E>(action: &str, e: SdkError<E, Resp>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let said = match (&code, e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => DisplayErrorContext(&e).to_string(),
    };
    let what = format!("EC2 {action} failed: {said}");
    match &e {
        SdkError::TimeoutError(_) => {
            return Error::transient(format!("EC2 {action}: no answer in time"));
        }
        SdkError::DispatchFailure(d) if d.is_timeout() || d.is_io() => {
            return Error::transient(format!(
                "EC2 {action}: cannot reach the endpoint ({})",
                DisplayErrorContext(&e)
            ));
        }
        SdkError::ResponseError(_) => return Error::transient(what),
        SdkError::ServiceError(_) => {}
        _ => {
            let full = DisplayErrorContext(&e).to_string();
            if full.contains("credentials") || full.contains("identity") {
                return Error::permission(format!(
                    "EC2 {action}: no usable AWS credentials on this node ({full})"
                ));
            }
            return Error::transient(format!("EC2 {action}: {full}"));
        }
    }
    match code.as_deref().unwrap_or("") {
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "RequestThrottled"
        | "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "Unavailable" => Error::transient(what),
        "RequestExpired" | "SignatureDoesNotMatch"
            if said.contains("expired") || said.contains("time") =>
        {
            Error::permission(format!("{what} (is this node's clock right? chrony/NTP)"))
        }
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
            Error::permission(format!(
                "{what} (grant ec2:{action} to this node's role; see the IAM policy in the docs)"
            ))
        }
        "AuthFailure"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "RequestExpired"
        | "Blocked"
        | "OptInRequired" => Error::permission(what),
        "InvalidAllocationID.NotFound" | "InvalidRouteTableID.NotFound" | "RouteLimitExceeded" => {
            Error::config(what)
        }
        // Someone changed the table between our read and our write: try again.
        "RouteAlreadyExists" | "InvalidRoute.NotFound" => Error::transient(what),
        "InvalidNetworkInterfaceID.NotFound"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "PrivateIpAddressLimitExceeded" => Error::host_args(what),
        _ if status.is_some_and(|s| s >= 500) => Error::transient(what),
        _ => Error::failed(what),
    }
}
