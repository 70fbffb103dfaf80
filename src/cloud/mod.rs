//! The cloud side of an agent. Clouds ignore ARP, so moving an address means telling the cloud
//! API; agents do that only through the [`Cloud`] trait. `none` (a plain L2 network) is
//! implemented here, AWS in [`aws`], OCI in [`oci`]. [`fake::FakeCloud`] is
//! an in-memory cloud for unit tests.

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

pub mod aws;
pub mod fake;

pub mod oci;
pub mod params;
pub mod power;
pub mod proxy;
pub mod routes;

use crate::error::{Error, Result, shown};
use crate::host::Link;
use crate::params::{Key, Values};
pub use params::{CloudChoice, OciAuth};

/// Which cloud a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudKind {
    None,
    Aws,
    Oci,
}

impl CloudKind {
    pub fn describe(self) -> &'static str {
        match self {
            CloudKind::None => "no cloud (plain L2 network)",
            CloudKind::Aws => "Amazon EC2",
            CloudKind::Oci => "Oracle Cloud Infrastructure",
        }
    }
}

/// The async runtime of one action: every cloud call goes through [`Bounded::run`], so none
/// outlives the deadline the cluster manager gave us.
pub(crate) struct Bounded {
    rt: tokio::runtime::Runtime,
    deadline: Instant,
}

impl Bounded {
    pub(crate) fn new(deadline: Instant) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::failed(format!("cannot start the async runtime: {e}")))?;
        Ok(Bounded { rt, deadline })
    }

    pub(crate) fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Run one step to completion within the deadline; running out is transient trouble.
    pub(crate) fn run<T>(&self, what: &str, f: impl Future<Output = Result<T>>) -> Result<T> {
        let left = self.left();
        self.rt
            .block_on(async { tokio::time::timeout(left, f).await })
            .unwrap_or_else(|_| {
                Err(Error::transient(format!(
                    "{what}: no answer within the action's timeout (waited {:.1} s)",
                    left.as_secs_f64()
                )))
            })
    }
}

/// The admin's switch that forbids any contact with the instance metadata service (a node that
/// must not reach 169.254.169.254, a test): `CLOUDHA_METADATA_DISABLED=true` for every cloud,
/// and the AWS SDKs' own `AWS_EC2_METADATA_DISABLED=true` for AWS (and, as the one switch
/// people know, for OCI too). An action that needs metadata then fails with the reason.
pub(crate) fn metadata_disabled() -> bool {
    ["CLOUDHA_METADATA_DISABLED", "AWS_EC2_METADATA_DISABLED"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|x| x.trim().eq_ignore_ascii_case("true")))
}

/// Replace `path` atomically with `data`, readable by its owner only (tokens, session keys).
pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    crate::files::write(path, data)
}

/// A MAC as clouds' metadata services print it (lower case; compare case-insensitively).
pub(crate) fn mac_string(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An IPv4 CIDR such as metadata gives for a subnet.
pub(crate) fn parse_cidr4(s: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (net, len) = s.split_once('/')?;
    Some((net.parse().ok()?, len.parse().ok().filter(|l| *l <= 32)?))
}

/// Seconds since the epoch, for token and session expiry (a clock before 1970 reads 0, which
/// only makes tokens look expired).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The home directory of the account we run as, from the password database: Pacemaker runs
/// agents without HOME, and the SDKs' defaults would then find no config files.
pub(crate) fn account_home() -> std::path::PathBuf {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .unwrap_or_else(|| std::path::PathBuf::from("/root"))
}

/// `ip` as IPv4; an IPv6 address is refused with `why`, in the cloud's own terms.
pub(crate) fn ipv4_only(ip: IpAddr, why: &str) -> Result<std::net::Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Ok(v4),
        IpAddr::V6(_) => Err(Error::config(format!("ip={ip}: {why}"))),
    }
}

/// Refuse `ip` outside `subnet` of the cloud interface `of`: a secondary private IP moves only
/// between interfaces of one subnet (`rule` says so in the cloud's terms).
pub(crate) fn within_subnet(
    ip: IpAddr,
    subnet: Option<(std::net::Ipv4Addr, u8)>,
    of: &str,
    rule: &str,
) -> Result<()> {
    match subnet {
        Some((net, len)) if !crate::host::contains(IpAddr::V4(net), len, ip) => {
            Err(Error::host_args(format!(
                "ip={ip} is outside subnet {net}/{len} of {of}; {rule}"
            )))
        }
        _ => Ok(()),
    }
}

/// The last two distinct messages of an error's source chain ("tcp connect error: Connection
/// refused (os error 111)"): the SDK's own layers above them say nothing to an admin.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if chain.last() != Some(&text) {
            chain.push(text);
        }
        cur = s.source();
    }
    let n = chain.len();
    chain[n.saturating_sub(2)..].join(": ")
}

/// One HTTP exchange for the hand-written clients (IMDS, OCI): (status, headers, body), bounded
/// by `limit`; a connection failure or silence is the transient error `unreachable` words.
pub(crate) async fn exchange<C>(
    client: &hyper_util::client::legacy::Client<C, http_body_util::Full<bytes::Bytes>>,
    req: http::Request<http_body_util::Full<bytes::Bytes>>,
    limit: Duration,
    unreachable: impl Fn(String) -> Error,
) -> Result<(u16, http::HeaderMap, bytes::Bytes)>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    use http_body_util::BodyExt;
    let answer = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| unreachable(root_cause(&e)))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        Ok::<_, Error>((status, headers, body))
    };
    tokio::time::timeout(limit, answer)
        .await
        .map_err(|_| unreachable(format!("no answer within {:.1} s", limit.as_secs_f64())))?
}

/// Recognise the cloud from DMI data, which both clouds fill in on every instance shape:
/// EC2 (Xen and Nitro) puts "Amazon EC2" in sys_vendor or an `i-…` board asset tag; OCI puts
/// "OracleCloud.com" in the chassis asset tag. A cloud we have no provider for is refused
/// rather than taken for plain L2: there an address only on the OS answers nobody.
pub fn detect(dmi_dir: &Path) -> Result<CloudKind> {
    let read = |f: &str| {
        std::fs::read_to_string(dmi_dir.join(f))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let vendor = read("sys_vendor");
    let bios = read("bios_version");
    let board_tag = read("board_asset_tag");
    let chassis_tag = read("chassis_asset_tag");
    if chassis_tag == "OracleCloud.com" {
        return Ok(CloudKind::Oci);
    }
    if vendor == "Amazon EC2" || bios.contains("amazon") || board_tag.starts_with("i-") {
        return Ok(CloudKind::Aws);
    }
    match unsupported_cloud(&vendor, &read("product_name"), &chassis_tag) {
        // This node cannot; another (on EC2 or OCI) might: OCF 2 bans it from this node only.
        Some(name) => Err(Error::host_args(format!(
            "cloud=auto: DMI data ({}) says this node runs on {name}, which cloudha has no cloud \
             API support for (AWS and OCI only): an address configured only on the OS would \
             not be reachable from other hosts. Set cloud=none explicitly only if this \
             network really is plain L2",
            dmi_dir.display()
        ))),
        None => Ok(CloudKind::None),
    }
}

/// The clouds DMI identifies that we have no provider for (the marks cloud-init and the
/// clouds' own agents use).
fn unsupported_cloud(vendor: &str, product: &str, chassis_tag: &str) -> Option<&'static str> {
    // Azure's constant chassis asset tag; on-premises Hyper-V has the same vendor and product.
    if chassis_tag == "7783-7084-3265-9085-8269-3286-77" {
        return Some("Microsoft Azure");
    }
    let known = [
        (product.starts_with("Google Compute Engine"), "Google Cloud"),
        (
            vendor == "Alibaba Cloud" || product.starts_with("Alibaba Cloud"),
            "Alibaba Cloud",
        ),
        (vendor == "DigitalOcean", "DigitalOcean"),
        (vendor == "Hetzner", "Hetzner Cloud"),
        (product.starts_with("OpenStack"), "OpenStack"),
    ];
    known
        .into_iter()
        .find(|(hit, _)| *hit)
        .map(|(_, name)| name)
}

/// Who holds a secondary address in the cloud's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Our interface (and the public address, when one is configured).
    Us,
    /// Another interface (its cloud id).
    Other(String),
    /// Nobody.
    Nobody,
    /// Our interface holds the address but what goes with it (an Elastic IP) points elsewhere.
    Partly(String),
}

impl Owner {
    pub fn describe(&self) -> String {
        match self {
            Owner::Us => "held by this node".to_string(),
            Owner::Other(who) => format!("held by {who}"),
            Owner::Nobody => "not assigned to any interface".to_string(),
            Owner::Partly(what) => format!("held by this node, but {what}"),
        }
    }
}

/// Settings of the cloud providers, from the agent's parameters.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub endpoint_url: Option<String>,
    /// The proxy of the cloud API calls (see [`proxy`]) and the hosts reached without it.
    pub proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub eip_allocation_id: Option<String>,
    /// OCI: how calls are authenticated.
    pub oci_auth: OciAuth,
    /// OCI: the config file of api_key authentication.
    pub config_file: Option<String>,
    /// OCI: the federation endpoint of instance principals.
    pub auth_endpoint_url: Option<String>,
    /// OCI: delete the private IP at stop (when this VNIC still holds it).
    pub delete_on_stop: bool,
}

impl Options {
    /// The options from the shared cloud parameters this agent declares (the others keep
    /// their defaults), checked as far as can be without the cloud.
    pub fn from_values(v: &Values) -> Result<Options> {
        use params::*;
        let text = |k: &Key<Option<String>>| v.declares(k).then(|| v.get(k)).flatten();
        let opts = Options {
            region: text(&REGION),
            profile: text(&PROFILE),
            role_arn: text(&ROLE_ARN),
            endpoint_url: text(&ENDPOINT_URL),
            proxy: text(&PROXY),
            no_proxy: text(&NO_PROXY),
            eip_allocation_id: text(&EIP_ALLOCATION_ID),
            oci_auth: if v.declares(&OCI_AUTH) {
                v.get(&OCI_AUTH)
            } else {
                OciAuth::default()
            },
            config_file: text(&CONFIG_FILE),
            auth_endpoint_url: text(&AUTH_ENDPOINT_URL),
            delete_on_stop: v.declares(&DELETE_ON_STOP) && v.get(&DELETE_ON_STOP),
        };
        opts.check()?;
        Ok(opts)
    }

    /// What can be checked without the cloud: a wrong value here is wrong on every node.
    pub fn check(&self) -> Result<()> {
        if let Some(r) = &self.role_arn
            && !r.starts_with("arn:")
        {
            return Err(Error::config(format!(
                "role_arn={} is not an ARN (arn:aws:iam::<account>:role/<name>)",
                shown(r)
            )));
        }
        for (name, url) in [
            ("endpoint_url", &self.endpoint_url),
            ("auth_endpoint_url", &self.auth_endpoint_url),
        ] {
            if let Some(u) = url
                && !(u.starts_with("https://") || u.starts_with("http://"))
            {
                return Err(Error::config(format!(
                    "{name}={} must start with https:// (or http://)",
                    shown(u)
                )));
            }
        }
        if let Some(p) = &self.proxy
            && let Some(why) = proxy::check_url(p)
        {
            return Err(Error::config(format!(
                "proxy={} {why}, e.g. proxy=http://proxy.example.com:3128",
                proxy::redacted(p)
            )));
        }
        if self.no_proxy.is_some() && self.proxy.is_none() {
            return Err(Error::config(
                "no_proxy is set but proxy is not: no_proxy lists the hosts the proxy \
                 parameter is not used for (the environment's NO_PROXY goes with its proxy)",
            ));
        }
        if let Some(a) = &self.eip_allocation_id
            && !a.starts_with("eipalloc-")
        {
            return Err(Error::config(format!(
                "eip_allocation_id={} is not an allocation id (eipalloc-...); the public \
                 address itself is not accepted because it can change owner",
                shown(a)
            )));
        }
        Ok(())
    }
}

/// Read the cloud's view until it shows `ip` on `nic`: clouds apply a move asynchronously.
pub(crate) fn confirm_owner(cloud: &dyn Cloud, rt: &Bounded, ip: IpAddr, nic: &Link) -> Result<()> {
    let mut pause = Duration::from_millis(50);
    loop {
        let owner = cloud.owner(ip, nic)?;
        if owner == Owner::Us {
            return Ok(());
        }
        if rt.left() <= pause {
            return Err(Error::transient(format!(
                "{} accepted the move of {ip} to {} but still reports it {} at the action's \
                 timeout",
                cloud.kind().describe(),
                nic.name,
                owner.describe()
            )));
        }
        tracing::debug!(
            "{ip}: the cloud reports it {}; reading again",
            owner.describe()
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(800));
    }
}

/// The cloud operations the vip agent needs. Every call is bounded by the action's deadline.
pub trait Cloud {
    fn kind(&self) -> CloudKind;
    /// Make the cloud deliver `ip` to `nic`, taking it from whoever holds it (one mutating
    /// call), with the public address that goes with it.
    fn claim(&self, ip: IpAddr, nic: &Link) -> Result<()>;
    /// Wait until the cloud's own view shows `ip` on `nic` (clouds apply moves
    /// asynchronously).
    fn confirm(&self, ip: IpAddr, nic: &Link) -> Result<()>;
    /// Give `ip` back, but only if `nic` still holds it.
    fn release(&self, ip: IpAddr, nic: &Link) -> Result<()>;
    fn owner(&self, ip: IpAddr, nic: &Link) -> Result<Owner>;
    /// What a person should know before trusting failover: report lines, or the first
    /// problem found.
    fn preflight(&self, ip: IpAddr, nic: &Link) -> Result<Vec<String>>;
    /// Local work a later start would otherwise do while the address is down, with no API
    /// call (probes of a stopped resource run it).
    fn prepare(&self) -> Result<()> {
        Ok(())
    }
}

/// A plain L2 network: the OS address and a gratuitous ARP are all it takes.
pub struct NoCloud;

impl Cloud for NoCloud {
    fn kind(&self) -> CloudKind {
        CloudKind::None
    }
    fn claim(&self, _: IpAddr, _: &Link) -> Result<()> {
        Ok(())
    }
    fn confirm(&self, _: IpAddr, _: &Link) -> Result<()> {
        Ok(())
    }
    fn release(&self, _: IpAddr, _: &Link) -> Result<()> {
        Ok(())
    }
    fn owner(&self, _: IpAddr, _: &Link) -> Result<Owner> {
        Ok(Owner::Us)
    }
    fn preflight(&self, _: IpAddr, _: &Link) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// The provider for a cloud.
pub fn provider(
    kind: CloudKind,
    opts: &Options,
    run_dir: &Path,
    deadline: Instant,
) -> Result<Box<dyn Cloud>> {
    match kind {
        CloudKind::None => Ok(Box::new(NoCloud)),
        CloudKind::Aws => Ok(Box::new(aws::Aws::new(opts, run_dir, deadline)?)),
        CloudKind::Oci => Ok(Box::new(oci::Oci::new(opts, run_dir, deadline)?)),
    }
}

/// The power side of the cloud of `kind`, for fencing (a plain L2 network has none).
pub fn power_provider(
    kind: CloudKind,
    opts: &Options,
    run_dir: &Path,
    deadline: Instant,
) -> Result<Box<dyn power::Power>> {
    match kind {
        CloudKind::Aws => Ok(Box::new(aws::Aws::new(opts, run_dir, deadline)?)),
        CloudKind::Oci => Ok(Box::new(oci::Oci::new(opts, run_dir, deadline)?)),
        CloudKind::None => Err(Error::not_installed(
            "a plain L2 network has no power API to fence through",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmi(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (f, v) in files {
            std::fs::write(d.path().join(f), format!("{v}\n")).unwrap();
        }
        d
    }

    #[test]
    fn detection() {
        for (file, value, kind) in [
            ("sys_vendor", "Amazon EC2", CloudKind::Aws),
            ("board_asset_tag", "i-0123456789abcdef0", CloudKind::Aws),
            ("chassis_asset_tag", "OracleCloud.com", CloudKind::Oci),
            ("sys_vendor", "QEMU", CloudKind::None),
            // Hyper-V on premises: Azure's vendor and product without its asset tag.
            ("product_name", "Virtual Machine", CloudKind::None),
        ] {
            assert_eq!(
                detect(dmi(&[(file, value)]).path()).unwrap(),
                kind,
                "{file}={value}"
            );
        }
        assert_eq!(detect(Path::new("/nonexistent")).unwrap(), CloudKind::None);
    }

    #[test]
    fn a_cloud_we_do_not_support_is_refused_by_name() {
        for (file, value, name) in [
            ("product_name", "Google Compute Engine", "Google Cloud"),
            (
                "chassis_asset_tag",
                "7783-7084-3265-9085-8269-3286-77",
                "Microsoft Azure",
            ),
            ("sys_vendor", "Alibaba Cloud", "Alibaba Cloud"),
            ("sys_vendor", "DigitalOcean", "DigitalOcean"),
            ("sys_vendor", "Hetzner", "Hetzner Cloud"),
            ("product_name", "OpenStack Compute", "OpenStack"),
        ] {
            let e = detect(dmi(&[(file, value)]).path()).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::HostArgs, "{file}={value}");
            assert!(
                e.message.contains(name) && e.message.contains("cloud=none"),
                "{e}"
            );
        }
    }
}
