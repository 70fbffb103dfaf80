//! vip: a virtual IP address that follows the resource. On a plain L2 network (`cloud=none`)
//! this is IPaddr2's job done through netlink, with gratuitous ARP / unsolicited neighbour
//! advertisement so that neighbours switch at once; on a cloud the provider also tells the
//! cloud API where the address lives.

use std::net::IpAddr;
use std::time::Duration;

use super::checks::{check_ifname, never_unicast, no_such_nic, pick_link};
use super::records::{CLOUD_CHECKED, Record, STARTED};
use super::{ActionDecl, Agent, AgentDef, Ctx, Example, Health, standard_actions};
use crate::cloud::{self, Cloud, CloudChoice, CloudKind, Owner};
use crate::error::{Error, Result, shown};
use crate::host::{Host, Link, contains};
use crate::params::{Key, Param, Type, Values};

pub(crate) const IP: Key<String> = Key::new(
    Param::new(
        "ip",
        "Virtual IP address",
        "The IPv4 or IPv6 address that follows the resource, without a prefix length \
         (for example 10.0.0.200 or fd00::200). Network, broadcast, multicast, loopback, \
         link-local and unspecified addresses are refused.",
    )
    .required()
    .unique_group("address"),
);

pub(crate) const CIDR_NETMASK: Key<Option<u8>> = Key::new(
    Param::new(
        "cidr_netmask",
        "Prefix length",
        "The prefix length of the address (24, not 255.255.255.0). Default: the prefix of the \
         subnet of nic that holds ip; when no subnet of nic holds it, start refuses (2) rather \
         than guess: set it then (32, or 128 for IPv6, for an address of its own). Without \
         nic, a value wider than the subnet that holds ip is refused as well (the address \
         would take the whole wider network for that interface); with nic and cidr_netmask \
         both set, the address is configured as given.",
    )
    .ty(Type::Integer { min: 1, max: 128 }),
);

pub(crate) const NIC: Key<Option<String>> = Key::new(Param::new(
    "nic",
    "Network interface",
    "The interface that carries the address. Default: the interface with a subnet that \
         holds ip (with cidr_netmask, one that holds all of ip/cidr_netmask), else that of the \
         directly connected route towards ip.",
));

pub(crate) const CLOUD: Key<CloudChoice> = Key::new(
    Param::new(
        "cloud",
        "Cloud provider",
        "How the address is moved. none: a plain L2 network (address plus gratuitous ARP). \
         aws: Amazon EC2, the address is a secondary private IPv4 address moved to the ENI of \
         nic with AssignPrivateIpAddresses. oci: Oracle Cloud Infrastructure, the address is \
         a secondary private IP moved to the VNIC of nic (UpdatePrivateIp, or CreatePrivateIp \
         when it does not exist). auto: recognise the cloud from DMI data \
         (/sys/class/dmi/id): aws on EC2, oci on OCI, refused on another cloud DMI names \
         (Azure, Google Cloud, Alibaba Cloud, DigitalOcean, Hetzner, OpenStack: set \
         cloud=none there only for a plain L2 network), none elsewhere.",
    )
    .default("auto"),
);

const ARP_COUNT: Key<u32> = Key::new(
    Param::new(
        "arp_count",
        "Number of announcements",
        "How many gratuitous ARP requests (IPv4) or unsolicited neighbour advertisements (IPv6) \
         to send after the address is added with cloud=none; 0 sends none. Several are sent \
         because Linux neighbours ignore an update arriving within a second of the previous one \
         (locktime). Clouds ignore ARP, so nothing is sent there.",
    )
    .ty(Type::Integer { min: 0, max: 100 })
    .default("5")
    .reloadable(),
);

const ARP_INTERVAL: Key<u64> = Key::new(
    Param::new(
        "arp_interval",
        "Milliseconds between announcements",
        "The pause between two announcements, in milliseconds. The start waits for all of \
         them, bounded by the action's timeout.",
    )
    .ty(Type::Integer {
        min: 10,
        max: 10_000,
    })
    .default("200")
    .reloadable(),
);

pub(crate) static PARAMS: &[Param] = crate::params![
    &[IP.param, CIDR_NETMASK.param, NIC.param, CLOUD.param],
    &cloud::params::AWS_API,
    &[
        cloud::params::EIP_ALLOCATION_ID.param,
        cloud::params::OCI_AUTH.param,
        cloud::params::CONFIG_FILE.param,
        cloud::params::AUTH_ENDPOINT_URL.param,
        cloud::params::DELETE_ON_STOP.param,
        cloud::params::CLOUD_CHECK_INTERVAL.param,
        cloud::params::LOCAL_ADDRESS.param,
        cloud::params::EXPECT_LOCAL_ADDRESS.param,
        ARP_COUNT.param,
        ARP_INTERVAL.param,
    ],
    &crate::log::TRACE,
];

static ACTIONS: [ActionDecl; 7] = standard_actions(20, 20, 20);

pub static AGENT: AgentDef = AgentDef {
    name: "vip",
    shortdesc: "Virtual IP address that moves with the resource",
    longdesc: "Manages a virtual IP address on this node. With cloud=aws or cloud=oci it first \
               moves the address to this instance in the cloud, so that the cloud delivers it \
               here; with cloud=none it is a plain IPaddr2-style address.\n\n\
               start adds the address to the interface through netlink and, on a plain L2 \
               network, announces it to the neighbours (gratuitous ARP, unsolicited neighbour \
               advertisement); stop removes it wherever it is configured on this node; monitor \
               reports running when the address is present on an interface that is up with \
               carrier, not running when it is absent, and a failure when it sits on a dead \
               link or on another interface than nic.\n\n\
               With cloud=aws, start first moves the address to the ENI of nic in EC2 \
               (AssignPrivateIpAddresses with reassignment, one call, plus AssociateAddress when \
               eip_allocation_id is set), then configures it and reads EC2 until it confirms; \
               stop removes the OS address and releases the address in EC2 only if this ENI \
               still holds it (a failed release is logged, never a failed stop: the next node \
               takes the address anyway).\n\n\
               With cloud=oci, start finds the private IP in the subnet of the VNIC of nic and \
               moves it (UpdatePrivateIp) or creates it (CreatePrivateIp), configures it and \
               confirms; stop removes the OS address and deletes the private IP only with \
               delete_on_stop.\n\n\
               The monitor asks the cloud on probes, at OCF_CHECK_LEVEL 10 and every \
               cloud_check_interval seconds: another interface holding the address gives 7, \
               none holding it (or the Elastic IP pointing elsewhere) gives 1, a cloud outage or \
               throttling leaves a resource whose OS address is healthy running, and refused \
               credentials or permissions report it degraded (190, Clusterware PARTIAL) with \
               the reason. validate-all at OCF_CHECK_LEVEL 10 (or cloudha vip check) is a \
               pre-flight: metadata, credentials, ENI or VNIC, subnet and permissions.\n\n\
               Exit codes: a configuration that is wrong everywhere gives 6, a problem of this \
               node only (missing interface, no connected route, interface down, ip outside \
               this ENI's subnet) 2 or 5, a missing cloud permission 4, transient trouble \
               (timeouts, throttling, 5xx) 1; stop of a stopped resource gives 0.\n\n\
               Differences from IPaddr2, kept on purpose (measured with resource-agents' own \
               ocft suites IPaddr2v4 and IPaddr2v6 against cloud=none): when this node cannot \
               carry the address as configured (no interface connected to ip; no cidr_netmask \
               and no subnet of nic that holds ip; without nic, a cidr_netmask wider than the \
               subnet that holds ip), start refuses as IPaddr2 does, but with 2 where IPaddr2 \
               gives 1: OCF 1.1 recommends 2 for parameters invalid in the context of this \
               host, so that Pacemaker may place the resource on another node (with the \
               default start-failure-is-fatal both keep it off this node). IPv6 link-local \
               addresses are refused (6) even with nic: each link of each node has its own \
               fe80::/64, so such an address cannot be one floating service address. \
               cidr_netmask is a prefix length only (IPaddr2 also takes 255.255.255.0), and \
               there is no broadcast, iflabel, lvs_support or clusterip_hash parameter.",
    params: PARAMS,
    actions: &ACTIONS,
    build: Vip::build,
    clone: false,
    examples: &[
        Example {
            intro: "Oracle RAC under Clusterware, as on the seed cluster: Oracle's own \
                    ora.myracnode02.vip owns the address on the OS (and a failed-over node VIP \
                    is INTERMEDIATE on the other node), so this resource only moves it in EC2 \
                    (local_address=false) and follows Oracle's VIP through a hard start and \
                    stop dependency; its parameters are in \
                    /etc/cloudha/myrac02-vip.ec2.conf (ip=10.0.1.200, nic=eth0, cloud=aws, \
                    local_address=false; shipped in /usr/share/doc/cloudha/examples/):",
            lines: &[
                "crsctl add resource myrac02-vip.ec2 -type cluster_resource -attr \"CHECK_INTERVAL=10,ACTION_SCRIPT=/usr/lib/ocf/resource.d/cloudha/vip,PLACEMENT=favored,HOSTING_MEMBERS=myracnode01 myracnode02,AUTO_START=always,START_DEPENDENCIES=hard(intermediate:ora.myracnode02.vip),RELOCATE_BY_DEPENDENCY=1,STOP_DEPENDENCIES=hard(intermediate:ora.myracnode02.vip)\"",
                "crsctl setperm resource myrac02-vip.ec2 -o root",
                "crsctl relocate resource ora.myracnode02.vip -n myracnode02 -f   # ours moves with it",
            ],
        },
        Example {
            intro: "The SCAN addresses: one resource per SCAN VIP, each depending on Oracle's \
                    (a type carries the parameters, so no .conf is needed); when a node is lost, \
                    each follows its SCAN VIP:",
            lines: &[
                "crsctl add resource scan1.ec2 -type cloudha.vip.type -attr \"ACTION_SCRIPT=/usr/lib/ocf/resource.d/cloudha/vip,IP=10.0.1.211,NIC=eth0,CLOUD=aws,LOCAL_ADDRESS=false,START_DEPENDENCIES=hard(intermediate:ora.scan1.vip),STOP_DEPENDENCIES=hard(intermediate:ora.scan1.vip)\"",
            ],
        },
    ],
};

pub struct Vip {
    ip: IpAddr,
    prefix: Option<u8>,
    nic: Option<String>,
    cloud: Option<CloudKind>,
    opts: cloud::Options,
    check_interval: Duration,
    /// false: another resource owns the OS address; this one moves it in the cloud only.
    local_address: bool,
    expect_local_address: bool,
    arp_count: u32,
    arp_interval: Duration,
}

/// Refuse addresses that can never be a virtual IP.
fn check_ip(raw: &str) -> Result<IpAddr> {
    if raw.contains('/') {
        return Err(Error::config(format!(
            "ip={} must be a bare address; put the prefix length in cidr_netmask",
            shown(raw)
        )));
    }
    let ip: IpAddr = raw
        .parse()
        .map_err(|_| Error::config(format!("ip={} is not an IPv4 or IPv6 address", shown(raw))))?;
    let why = never_unicast(ip).or(match ip {
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Some("an IPv4-mapped IPv6 address"),
        _ => None,
    });
    match why {
        Some(w) => Err(Error::config(format!(
            "ip={ip} is {w} and cannot be a virtual IP"
        ))),
        None => Ok(ip),
    }
}

/// Refuse the network and broadcast address of the subnet (they are not host addresses).
fn check_in_subnet(ip: IpAddr, prefix: u8) -> Result<()> {
    let (bits, host) = match ip {
        IpAddr::V4(v4) => (32u32, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (128u32, u128::from(v6)),
    };
    if u32::from(prefix) > bits {
        return Err(Error::config(format!(
            "cidr_netmask={prefix} is too long for {ip}: at most {bits}"
        )));
    }
    let host_bits = bits - u32::from(prefix);
    // /31, /32 (RFC 3021) and IPv6 /127, /128 have no network or broadcast address.
    if host_bits < 2 {
        return Ok(());
    }
    let mask = (1u128 << host_bits) - 1;
    let part = host & mask;
    if part == 0 {
        return Err(Error::config(format!(
            "ip={ip} is the network address of {ip}/{prefix}, not a host address"
        )));
    }
    if ip.is_ipv4() && part == mask {
        return Err(Error::config(format!(
            "ip={ip} is the broadcast address of {ip}/{prefix}, not a host address"
        )));
    }
    Ok(())
}

impl Vip {
    fn build(v: &Values) -> Result<Box<dyn Agent>> {
        let ip = check_ip(&v.get(&IP))?;
        let prefix = v.get(&CIDR_NETMASK);
        if let Some(p) = prefix {
            check_in_subnet(ip, p)?;
        }
        let nic = v.get(&NIC);
        if let Some(n) = &nic {
            check_ifname("nic", n)?;
        }
        let choice = v.get(&CLOUD);
        let cloud = choice.kind();
        let opts = cloud::Options::from_values(v)?;
        use cloud::params::*;
        let set = |k: &Key<Option<String>>| v.get(k).is_some();
        let cloud_only = [
            REGION,
            PROFILE,
            ROLE_ARN,
            ENDPOINT_URL,
            PROXY,
            NO_PROXY,
            EIP_ALLOCATION_ID,
            CONFIG_FILE,
            AUTH_ENDPOINT_URL,
        ];
        if cloud == Some(CloudKind::None)
            && let Some(k) = cloud_only.iter().find(|k| set(k))
        {
            let p = k.param.name;
            return Err(Error::config(format!(
                "{p} is set but cloud=none: set cloud to aws, oci or auto, or remove {p}"
            )));
        }
        for (kind, only) in [
            (CloudKind::Aws, [CONFIG_FILE, AUTH_ENDPOINT_URL]),
            (CloudKind::Oci, [ROLE_ARN, EIP_ALLOCATION_ID]),
        ] {
            if cloud == Some(kind)
                && let Some(k) = only.iter().find(|k| set(k))
            {
                return Err(Error::config(format!(
                    "{} does not apply to {}: remove it",
                    k.param.name,
                    kind.describe()
                )));
            }
        }
        let local_address = v.get(&cloud::params::LOCAL_ADDRESS);
        let expect_local_address = v.get(&cloud::params::EXPECT_LOCAL_ADDRESS);
        super::checks::check_expect(local_address, expect_local_address)?;
        if !local_address && cloud == Some(CloudKind::None) {
            return Err(Error::config(
                "local_address=false with cloud=none leaves nothing to do: the resource would \
                 neither configure the address nor move it in a cloud",
            ));
        }
        if matches!(cloud, Some(CloudKind::Aws | CloudKind::Oci)) && ip.is_ipv6() {
            return Err(Error::config(format!(
                "ip={ip}: cloud={} moves secondary private IPv4 addresses only",
                choice.word()
            )));
        }
        Ok(Box::new(Vip {
            ip,
            prefix,
            nic,
            cloud,
            opts,
            check_interval: v.get(&CLOUD_CHECK_INTERVAL),
            local_address,
            expect_local_address,
            arp_count: v.get(&ARP_COUNT),
            arp_interval: Duration::from_millis(v.get(&ARP_INTERVAL)),
        }))
    }

    /// Run `f` with the cloud this resource lives in.
    fn with_cloud<T>(&self, cx: &Ctx, f: impl FnOnce(&dyn Cloud) -> Result<T>) -> Result<T> {
        if let Some(c) = cx.cloud {
            return f(c);
        }
        let make = |kind| cloud::provider(kind, &self.opts, &cx.paths.run_dir, cx.deadline);
        let cloud = match self.cloud {
            Some(kind) => make(kind)?,
            None => {
                let kind = cloud::detect(&cx.paths.dmi_dir)?;
                make(kind).map_err(|e| {
                    e.context(format!(
                        "cloud=auto: DMI data ({}) says this node runs on {}, where an address \
                         configured only on the OS is unreachable from other hosts",
                        cx.paths.dmi_dir.display(),
                        kind.describe()
                    ))
                })?
            }
        };
        f(cloud.as_ref())
    }

    /// Where the time of the last good cloud check is kept (its mtime).
    fn checked(&self, cx: &Ctx) -> Record {
        Record::of(cx, "vip", &self.ip.to_string(), CLOUD_CHECKED)
    }

    /// The interface the address belongs on, and the prefix length of the subnet there that
    /// holds it (None when no subnet configured on it does). Without nic: the interface of
    /// the subnet that holds ip (with cidr_netmask, one that holds all of ip/cidr_netmask, as
    /// IPaddr2 matches it), else of the connected route towards ip.
    fn placement(&self, host: &dyn Host) -> Result<(Link, Option<u8>)> {
        let addrs = host.addrs()?;
        // The subnets (on `link`, or anywhere) that hold ip, the address itself left out.
        let holders = |link: Option<u32>| {
            addrs.iter().filter(move |a| {
                link.is_none_or(|l| a.link == l)
                    && a.ip != self.ip
                    && contains(a.ip, a.prefix, self.ip)
            })
        };
        let link = pick_link(host, self.nic.as_deref(), no_such_nic, || {
            let fits = holders(None)
                .filter(|a| self.prefix.is_none_or(|p| a.prefix <= p))
                .max_by_key(|a| a.prefix);
            if let Some(a) = fits {
                return Ok(a.link);
            }
            let narrower = holders(None).max_by_key(|a| a.prefix);
            if let (Some(p), Some(narrower)) = (self.prefix, narrower) {
                // The kernel would add a connected route for the whole ip/p on that interface,
                // taking over addresses its subnet does not hold; IPaddr2 refuses it too.
                return Err(Error::host_args(format!(
                    "cidr_netmask={p} is wider than the subnet of {}/{}, which holds {} on \
                     this node: set cidr_netmask={} (or set nic as well to configure {}/{p} \
                     anyway)",
                    narrower.ip, narrower.prefix, self.ip, narrower.prefix, self.ip
                )));
            }
            match host.route_to(self.ip)? {
                Some(hop) if hop.gateway.is_none() => Ok(hop.link),
                _ => Err(Error::host_args(format!(
                    "no interface on this node is directly connected to {}; set nic \
                     (and cidr_netmask)",
                    self.ip
                ))),
            }
        })?;
        let subnet = holders(Some(link.index)).map(|a| a.prefix).max();
        Ok((link, subnet))
    }

    /// The prefix length the OS address gets on `link`: cidr_netmask, else that of the subnet
    /// of `link` that holds ip. With neither there is nothing to go by, and a guess (/32) is
    /// an address that may not answer: refused, as IPaddr2 does.
    fn prefix(&self, link: &Link, subnet: Option<u8>) -> Result<u8> {
        let prefix = match (self.prefix, subnet) {
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => {
                return Err(Error::host_args(format!(
                    "no subnet configured on {} holds {}, so its prefix length is unknown: \
                     set cidr_netmask ({} for an address of its own)",
                    link.name,
                    self.ip,
                    if self.ip.is_ipv4() { 32 } else { 128 }
                )));
            }
        };
        check_in_subnet(self.ip, prefix)?;
        Ok(prefix)
    }
}

impl Agent for Vip {
    fn start(&self, cx: &Ctx) -> Result<()> {
        // The cloud decides whether an OS address is any use at all: ask it first.
        self.with_cloud(cx, |cloud| {
            let (link, subnet) = self.placement(cx.host)?;
            link.check_usable()?;
            // Claim first: if the cloud refuses, the host is exactly as it was (stray copies
            // on other interfaces included).
            if !self.local_address {
                if cloud.kind() == CloudKind::None {
                    return Err(Error::host_args(
                        "local_address=false, but this node is on no cloud (cloud=auto found \
                         plain L2): there is nothing to move",
                    ));
                }
                cloud.claim(self.ip, &link)?;
                cloud.confirm(self.ip, &link)?;
                self.started(cx).touch();
                self.checked(cx).touch();
                return Ok(());
            }
            let prefix = self.prefix(&link, subnet)?;
            cloud.claim(self.ip, &link)?;
            let present = crate::host::only_on(cx.host, &link, self.ip, prefix)?;
            if present {
                tracing::info!("{}/{prefix} is already on {}", self.ip, link.name);
            } else {
                tracing::info!("adding {}/{prefix} to {}", self.ip, link.name);
                cx.host.add_addr(link.index, self.ip, prefix)?;
                if self.arp_count > 0 && cloud.kind() == CloudKind::None {
                    // The address works without the announcement; neighbours just learn it
                    // later.
                    if let Err(e) =
                        cx.host
                            .announce(&link, self.ip, self.arp_count, self.arp_interval)
                    {
                        tracing::warn!("announcing {} on {}: {e}", self.ip, link.name);
                    }
                }
            }
            crate::host::confirm_on(cx.host, &link, self.ip)?;
            if cloud.kind() != CloudKind::None {
                cloud.confirm(self.ip, &link)?;
                self.checked(cx).touch();
            }
            Ok(())
        })
    }

    fn stop(&self, cx: &Ctx) -> Result<()> {
        if !self.local_address {
            // The OS address belongs to whoever configured it: never removed here.
            self.started(cx).remove();
            self.checked(cx).remove();
            self.release(cx, None);
            return Ok(());
        }
        let links = cx.host.links()?;
        let name = |i: u32| {
            links
                .iter()
                .find(|l| l.index == i)
                .map(|l| l.name.clone())
                .unwrap_or_else(|| i.to_string())
        };
        let mut held_on = None;
        for a in cx.host.addrs()?.into_iter().filter(|a| a.ip == self.ip) {
            tracing::info!("removing {}/{} from {}", a.ip, a.prefix, name(a.link));
            cx.host.del_addr(a.link, a.ip, a.prefix)?;
            held_on = links.iter().find(|l| l.index == a.link).cloned();
        }
        if held_on.is_none() {
            tracing::info!(
                "{} is not configured on this node: nothing to remove",
                self.ip
            );
        }
        self.checked(cx).remove();
        self.release(cx, held_on);
        Ok(())
    }

    fn monitor(&self, cx: &Ctx) -> Result<Health> {
        if !self.local_address {
            return self.monitor_cloud_only(cx);
        }
        self.monitor_local(cx)
    }

    fn preflight(&self, cx: &Ctx) -> Result<Vec<String>> {
        self.with_cloud(cx, |cloud| {
            let (link, subnet) = self.placement(cx.host)?;
            link.check_usable()?;
            let mut report = vec![
                format!("cloud: {}", cloud.kind().describe()),
                format!("interface: {} (up, carrier, mtu {})", link.name, link.mtu),
                if self.local_address {
                    let prefix = self.prefix(&link, subnet)?;
                    format!("address: {}/{prefix} on {}", self.ip, link.name)
                } else {
                    format!(
                        "address: {} moved in the cloud only (local_address=false)",
                        self.ip
                    )
                },
            ];
            report.extend(cloud.preflight(self.ip, &link)?);
            Ok(report)
        })
    }

    fn reload(&self, _cx: &Ctx) -> Result<()> {
        // arp_count and arp_interval only matter at the next start; nothing to apply now.
        Ok(())
    }
}

impl Vip {
    /// This node no longer answers for the address: that is the stop. Giving it back in the
    /// cloud is tidiness; a failure there must not fail the stop (Pacemaker would fence the
    /// node), and the next node's start takes the address anyway.
    fn release(&self, cx: &Ctx, held_on: Option<Link>) {
        let released = self.with_cloud(cx, |cloud| {
            if cloud.kind() == CloudKind::None {
                return Ok(());
            }
            let nic = match held_on {
                Some(l) => Some(l),
                None => self.placement(cx.host).ok().map(|(l, _)| l),
            };
            match nic {
                Some(nic) => cloud.release(self.ip, &nic),
                None => Ok(()),
            }
        });
        if let Err(e) = released {
            tracing::warn!(
                "{} is off this node, but not released in the cloud: {e}",
                self.ip
            );
        }
    }

    fn started(&self, cx: &Ctx) -> Record {
        Record::of(cx, "vip", &self.ip.to_string(), STARTED)
    }

    /// local_address=false: no OS address to look at, so the start's marker says whether it
    /// runs here and the cloud whether it still does. A probe has only the cloud to go by.
    fn monitor_cloud_only(&self, cx: &Ctx) -> Result<Health> {
        if !cx.probe && !self.started(cx).exists() {
            return Ok(Health::NotRunning);
        }
        if super::checks::owner_took_it_away(self.expect_local_address, cx.host, self.ip)? {
            return Ok(Health::NotRunning);
        }
        if !cx.probe && !self.checked(cx).cloud_check_due(cx, self.check_interval) {
            return Ok(Health::Running);
        }
        self.with_cloud(cx, |cloud| {
            if cloud.kind() == CloudKind::None {
                return Ok(Health::NotRunning);
            }
            let link = match self.placement(cx.host) {
                Ok((link, _)) => link,
                // Without its interface this node cannot be the one the cloud delivers to.
                Err(e) if cx.probe => {
                    tracing::debug!("{e}: not running here");
                    return Ok(Health::NotRunning);
                }
                Err(e) => return Err(e),
            };
            match cloud.owner(self.ip, &link) {
                Ok(Owner::Us) => {
                    self.started(cx).touch();
                    self.checked(cx).touch();
                    Ok(Health::Running)
                }
                Ok(Owner::Other(who)) if !cx.probe => {
                    tracing::warn!(
                        "{} was started here but {} delivers it to {who}",
                        self.ip,
                        cloud.kind().describe()
                    );
                    Ok(Health::NotRunning)
                }
                Ok(other) if !cx.probe => Err(Error::failed(format!(
                    "{} was started here but in {} it is {}: traffic for it does not reach \
                     this node",
                    self.ip,
                    cloud.kind().describe(),
                    other.describe()
                ))),
                Ok(_) => Ok(Health::NotRunning),
                // Without an answer a probe has no verdict; a started resource rides it out.
                Err(e) if cx.probe => Err(e),
                Err(e) => Ok(super::judge_cloud_failure(e)),
            }
        })
    }

    fn monitor_local(&self, cx: &Ctx) -> Result<Health> {
        let present: Vec<_> = cx
            .host
            .addrs()?
            .into_iter()
            .filter(|a| a.ip == self.ip)
            .collect();
        if present.is_empty() {
            if cx.probe && self.cloud != Some(CloudKind::None) {
                // Pacemaker probes every node: the standby gets ready for a fast failover.
                if let Err(e) = self.with_cloud(cx, |c| c.prepare()) {
                    tracing::debug!("preparing for a later start: {e}");
                }
            }
            return Ok(Health::NotRunning);
        }
        let links = cx.host.links()?;
        let mut link = None;
        for a in &present {
            let Some(l) = links.iter().find(|l| l.index == a.link) else {
                return Err(Error::transient(format!(
                    "{} is on interface {} which vanished while checking",
                    self.ip, a.link
                )));
            };
            if let Some(nic) = self.nic.as_ref().filter(|n| **n != l.name) {
                return Err(Error::failed(format!(
                    "{} is configured on {}, not on nic={nic}",
                    self.ip, l.name
                )));
            }
            l.check_usable().map_err(|e| {
                Error::failed(format!(
                    "{} is configured but unusable: {}",
                    self.ip, e.message
                ))
            })?;
            link = Some(l);
        }
        let link = link.expect("present is not empty");
        if self.cloud == Some(CloudKind::None)
            || !self.checked(cx).cloud_check_due(cx, self.check_interval)
        {
            return Ok(Health::Running);
        }
        self.with_cloud(cx, |cloud| {
            if cloud.kind() == CloudKind::None {
                return Ok(Health::Running);
            }
            match cloud.owner(self.ip, link) {
                Ok(Owner::Us) => {
                    self.checked(cx).touch();
                    Ok(Health::Running)
                }
                Ok(Owner::Other(who)) => {
                    tracing::warn!(
                        "{} is configured here but {} delivers it to {who}",
                        self.ip,
                        cloud.kind().describe()
                    );
                    Ok(Health::NotRunning)
                }
                Ok(other) => Err(Error::failed(format!(
                    "{} is configured on {} but in {} it is {}: traffic for it does not reach \
                     this node",
                    self.ip,
                    link.name,
                    cloud.kind().describe(),
                    other.describe()
                ))),
                // The OS address is healthy and the cloud could not say otherwise: an API
                // outage or an expired credential is trouble of the management plane, not of
                // the address; failing over on it is what users of the script agents complain
                // about. The check is not marked done, so the next monitor asks again.
                Err(e) => Ok(super::judge_cloud_failure(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests;
