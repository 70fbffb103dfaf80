//! vip: a virtual IP address that follows the resource. On a plain L2 network (`cloud=none`)
//! this is IPaddr2's job done through netlink, with gratuitous ARP / unsolicited neighbour
//! advertisement so that neighbours switch at once; on a cloud the provider also tells the
//! cloud API where the address lives.

use std::net::IpAddr;
use std::time::Duration;

use super::{ActionDecl, Agent, AgentDef, Ctx, Health, standard_actions};
use crate::cloud::{self, Cloud, CloudKind, Owner};
use crate::error::{Error, Result};
use crate::host::{Host, Link, MAX_IFNAME, contains};
use crate::params::{Param, Type, Values};

static PARAMS: &[Param] = &[
    Param::new(
        "ip",
        "Virtual IP address",
        "The IPv4 or IPv6 address that follows the resource, without a prefix length \
         (for example 10.0.0.200 or fd00::200). Network, broadcast, multicast, loopback, \
         link-local and unspecified addresses are refused.",
    )
    .required()
    .unique_group("address"),
    Param::new(
        "cidr_netmask",
        "Prefix length",
        "The prefix length of the address (24, not 255.255.255.0). Default: the prefix of the \
         subnet of nic that contains ip, or 32 (128 for IPv6) when no subnet of nic contains it.",
    )
    .ty(Type::Integer { min: 1, max: 128 }),
    Param::new(
        "nic",
        "Network interface",
        "The interface that carries the address. Default: the interface of the directly \
         connected route towards ip.",
    ),
    Param::new(
        "cloud",
        "Cloud provider",
        "How the address is moved. none: a plain L2 network (address plus gratuitous ARP). \
         auto: recognise the cloud from DMI data (/sys/class/dmi/id); on a plain network this is \
         none, and on a cloud whose provider this build does not carry the start is refused \
         with a clear reason instead of configuring an address nobody could reach.",
    )
    .ty(Type::Select(&["auto", "none"]))
    .default("auto"),
    Param::new(
        "arp_count",
        "Number of announcements",
        "How many gratuitous ARP requests (IPv4) or unsolicited neighbour advertisements (IPv6) \
         to send after the address is added; 0 sends none. Several are sent because Linux \
         neighbours ignore an update arriving within a second of the previous one (locktime).",
    )
    .ty(Type::Integer { min: 0, max: 100 })
    .default("5")
    .reloadable(),
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
];

static ACTIONS: [ActionDecl; 7] = standard_actions(20, 20, 20);

pub static AGENT: AgentDef = AgentDef {
    name: "vip",
    shortdesc: "Virtual IP address that moves with the resource",
    longdesc: "Manages a virtual IP address on this node: start adds it to the interface \
               through netlink and announces it to the neighbours (gratuitous ARP, unsolicited \
               neighbour advertisement); stop removes it wherever it is configured on this node; \
               monitor reports running when the address is present on an interface that is up \
               with carrier, not running when it is absent, and a failure when it sits on a dead \
               link or on another interface than nic. Exit codes: a configuration that is wrong \
               everywhere gives 6, a problem of this node only (missing interface, no connected \
               route, interface down) 2 or 5, transient trouble 1; stop of a stopped resource \
               gives 0.",
    params: PARAMS,
    actions: &ACTIONS,
    build: Vip::build,
};

pub struct Vip {
    ip: IpAddr,
    prefix: Option<u8>,
    nic: Option<String>,
    cloud: Option<CloudKind>,
    arp_count: u32,
    arp_interval: Duration,
}

/// Refuse interface names the kernel would refuse, with a reason a person can act on.
pub fn check_ifname(param: &str, name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::config(format!(
            "{param}='{name}' is not a valid interface name: {why}"
        )))
    };
    if name.len() > MAX_IFNAME {
        return bad(&format!("longer than {MAX_IFNAME} characters"));
    }
    if name == "." || name == ".." {
        return bad("reserved name");
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad(&format!("contains {c:?}"));
    }
    Ok(())
}

/// Refuse addresses that can never be a virtual IP.
fn check_ip(raw: &str) -> Result<IpAddr> {
    if raw.contains('/') {
        return Err(Error::config(format!(
            "ip='{raw}' must be a bare address; put the prefix length in cidr_netmask"
        )));
    }
    let ip: IpAddr = raw
        .parse()
        .map_err(|_| Error::config(format!("ip='{raw}' is not an IPv4 or IPv6 address")))?;
    let why = match ip {
        _ if ip.is_unspecified() => Some("the unspecified address"),
        _ if ip.is_multicast() => Some("a multicast address"),
        _ if ip.is_loopback() => Some("a loopback address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("a link-local address"),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Some("an IPv4-mapped IPv6 address"),
        _ => None,
    };
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
        let ip = check_ip(v.str("ip").unwrap_or_default())?;
        let prefix = v.int("cidr_netmask").map(|p| p as u8);
        if let Some(p) = prefix {
            check_in_subnet(ip, p)?;
        }
        let nic = v.str("nic").map(str::to_string);
        if let Some(n) = &nic {
            check_ifname("nic", n)?;
        }
        let cloud = match v.str("cloud") {
            Some("none") => Some(CloudKind::None),
            _ => None,
        };
        Ok(Box::new(Vip {
            ip,
            prefix,
            nic,
            cloud,
            arp_count: v.int("arp_count").unwrap_or(5) as u32,
            arp_interval: Duration::from_millis(v.int("arp_interval").unwrap_or(200) as u64),
        }))
    }

    fn cloud(&self, cx: &Ctx) -> Result<Box<dyn Cloud>> {
        match self.cloud {
            Some(kind) => cloud::provider(kind),
            None => {
                let kind = cloud::detect(&cx.paths.dmi_dir);
                cloud::provider(kind).map_err(|e| {
                    e.context(format!(
                        "cloud=auto: DMI data ({}) says this node runs on {}, where an address \
                         configured only on the OS is unreachable from other hosts",
                        cx.paths.dmi_dir.display(),
                        kind.describe()
                    ))
                })
            }
        }
    }

    /// The interface and prefix length the address belongs on.
    fn placement(&self, host: &dyn Host) -> Result<(Link, u8)> {
        let addrs = host.addrs()?;
        let link = match &self.nic {
            Some(name) => host.link_by_name(name)?.ok_or_else(|| {
                Error::not_installed(format!("interface nic={name} does not exist on this node"))
            })?,
            None => {
                // A subnet configured on some interface that holds ip, else a connected route.
                let by_subnet = addrs
                    .iter()
                    .filter(|a| a.ip != self.ip && contains(a.ip, a.prefix, self.ip))
                    .max_by_key(|a| a.prefix)
                    .map(|a| a.link);
                let index = match by_subnet {
                    Some(i) => i,
                    None => match host.route_to(self.ip)? {
                        Some(hop) if hop.gateway.is_none() => hop.link,
                        _ => {
                            return Err(Error::host_args(format!(
                                "no interface on this node is directly connected to {}; set nic \
                                 (and cidr_netmask)",
                                self.ip
                            )));
                        }
                    },
                };
                host.link_by_index(index)?.ok_or_else(|| {
                    Error::transient(format!("interface {index} vanished while looking it up"))
                })?
            }
        };
        let prefix = match self.prefix {
            Some(p) => p,
            None => addrs
                .iter()
                .filter(|a| {
                    a.link == link.index && a.ip != self.ip && contains(a.ip, a.prefix, self.ip)
                })
                .map(|a| a.prefix)
                .max()
                .unwrap_or(if self.ip.is_ipv4() { 32 } else { 128 }),
        };
        check_in_subnet(self.ip, prefix)?;
        Ok((link, prefix))
    }

    fn usable(link: &Link) -> Result<()> {
        if !link.admin_up {
            return Err(Error::host_args(format!(
                "interface {} is down on this node",
                link.name
            )));
        }
        if !link.carrier {
            return Err(Error::host_args(format!(
                "interface {} has no carrier on this node (cable, switch or peer down)",
                link.name
            )));
        }
        Ok(())
    }
}

impl Agent for Vip {
    fn start(&self, cx: &Ctx) -> Result<()> {
        // The cloud decides whether an OS address is any use at all: ask it first.
        let cloud = self.cloud(cx)?;
        let (link, prefix) = self.placement(cx.host)?;
        Self::usable(&link)?;
        // Copies elsewhere (another interface or prefix) would answer for the address too.
        let mut present = false;
        for a in cx.host.addrs()?.into_iter().filter(|a| a.ip == self.ip) {
            if a.link == link.index && a.prefix == prefix {
                present = true;
            } else {
                tracing::warn!(
                    "removing {}/{} from interface {} before configuring it on {}",
                    a.ip,
                    a.prefix,
                    a.link,
                    link.name
                );
                cx.host.del_addr(a.link, a.ip, a.prefix)?;
            }
        }
        cloud.claim(self.ip, &link)?;
        if present {
            tracing::info!("{}/{prefix} is already on {}", self.ip, link.name);
            return Ok(());
        }
        tracing::info!("adding {}/{prefix} to {}", self.ip, link.name);
        cx.host.add_addr(link.index, self.ip, prefix)?;
        if self.arp_count > 0 {
            // The address works without the announcement; neighbours just learn it later.
            if let Err(e) = cx
                .host
                .announce(&link, self.ip, self.arp_count, self.arp_interval)
            {
                tracing::warn!("announcing {} on {}: {e}", self.ip, link.name);
            }
        }
        let confirmed = cx
            .host
            .addrs()?
            .iter()
            .any(|a| a.ip == self.ip && a.link == link.index);
        if !confirmed {
            return Err(Error::failed(format!(
                "{} was added to {} but the kernel does not list it",
                self.ip, link.name
            )));
        }
        Ok(())
    }

    fn stop(&self, cx: &Ctx) -> Result<()> {
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
        // Give the address back in the cloud only when the cloud is known and it is ours.
        let cloud = match self.cloud(cx) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("not releasing {} in the cloud: {e}", self.ip);
                return Ok(());
            }
        };
        let nic = match held_on {
            Some(l) => Some(l),
            None => self.placement(cx.host).ok().map(|(l, _)| l),
        };
        if let Some(nic) = nic {
            cloud.release(self.ip, &nic)?;
        }
        Ok(())
    }

    fn monitor(&self, cx: &Ctx) -> Result<Health> {
        let present: Vec<_> = cx
            .host
            .addrs()?
            .into_iter()
            .filter(|a| a.ip == self.ip)
            .collect();
        if present.is_empty() {
            return Ok(Health::NotRunning);
        }
        let links = cx.host.links()?;
        for a in &present {
            let Some(link) = links.iter().find(|l| l.index == a.link) else {
                return Err(Error::transient(format!(
                    "{} is on interface {} which vanished while checking",
                    self.ip, a.link
                )));
            };
            if let Some(nic) = self.nic.as_ref().filter(|n| **n != link.name) {
                return Err(Error::failed(format!(
                    "{} is configured on {}, not on nic={nic}",
                    self.ip, link.name
                )));
            }
            Self::usable(link).map_err(|e| {
                Error::failed(format!(
                    "{} is configured but unusable: {}",
                    self.ip, e.message
                ))
            })?;
            if cx.check_level >= 10 {
                let cloud = self.cloud(cx)?;
                if let Owner::Other(who) = cloud.owner(self.ip, link)? {
                    tracing::info!(
                        "{} is held by {who} in {}",
                        self.ip,
                        cloud.kind().describe()
                    );
                    return Ok(Health::NotRunning);
                }
            }
        }
        Ok(Health::Running)
    }

    fn preflight(&self, cx: &Ctx) -> Result<Vec<String>> {
        let cloud = self.cloud(cx)?;
        let (link, prefix) = self.placement(cx.host)?;
        Self::usable(&link)?;
        Ok(vec![
            format!("cloud: {}", cloud.kind().describe()),
            format!("interface: {} (up, carrier, mtu {})", link.name, link.mtu),
            format!("address: {}/{prefix} on {}", self.ip, link.name),
        ])
    }

    fn reload(&self, _cx: &Ctx) -> Result<()> {
        // arp_count and arp_interval only matter at the next start; nothing to apply now.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::Paths;
    use crate::host::fake::FakeHost;
    use crate::params::{Raw, Source};
    use std::time::Instant;

    fn agent(pairs: &[(&str, &str)]) -> Result<Box<dyn Agent>> {
        let mut raw = Raw::default();
        for (k, v) in pairs {
            raw.set(k, v, Source::CommandLine);
        }
        (AGENT.build)(&Values::validate(PARAMS, &raw)?)
    }

    fn with<T>(host: &FakeHost, f: impl FnOnce(&Ctx) -> T) -> T {
        crate::agents::with_test_ctx(host, false, f)
    }

    fn lan() -> FakeHost {
        FakeHost::default()
            .with_link(1, "lo", Some(("127.0.0.1", 8)))
            .with_link(2, "eth0", Some(("10.0.0.1", 24)))
            .with_link(3, "eth1", Some(("192.168.5.1", 24)))
    }

    #[test]
    fn start_monitor_stop_cycle() {
        let host = lan();
        let a = agent(&[("ip", "10.0.0.200"), ("cloud", "none")]).unwrap();
        with(&host, |cx| {
            assert_eq!(a.monitor(cx).unwrap(), Health::NotRunning);
            a.start(cx).unwrap();
            assert!(host.has(2, "10.0.0.200"));
            assert_eq!(host.addrs.borrow().last().unwrap().prefix, 24);
            assert_eq!(host.announced.borrow().len(), 1);
            a.start(cx).unwrap(); // idempotent
            assert_eq!(host.addrs.borrow().len(), 4);
            assert_eq!(a.monitor(cx).unwrap(), Health::Running);
            a.stop(cx).unwrap();
            assert!(!host.has(2, "10.0.0.200"));
            a.stop(cx).unwrap(); // idempotent
            assert_eq!(a.monitor(cx).unwrap(), Health::NotRunning);
        });
    }

    #[test]
    fn start_moves_a_copy_from_the_wrong_interface() {
        let host = lan();
        host.add_addr(3, "10.0.0.200".parse().unwrap(), 32).unwrap();
        let a = agent(&[("ip", "10.0.0.200"), ("cloud", "none"), ("nic", "eth0")]).unwrap();
        with(&host, |cx| {
            assert!(
                a.monitor(cx).is_err(),
                "on the wrong interface is a failure"
            );
            a.start(cx).unwrap();
            assert!(host.has(2, "10.0.0.200") && !host.has(3, "10.0.0.200"));
        });
    }

    #[test]
    fn dead_link_is_a_failure_not_stopped() {
        let host = lan();
        let a = agent(&[("ip", "10.0.0.200"), ("cloud", "none")]).unwrap();
        with(&host, |cx| {
            a.start(cx).unwrap();
            host.links.borrow_mut()[1].carrier = false;
            let e = a.monitor(cx).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Failed);
            assert!(e.message.contains("no carrier"), "{}", e.message);
        });
    }

    #[test]
    fn host_problems_are_host_problems() {
        let host = lan();
        with(&host, |cx| {
            let e = agent(&[("ip", "172.16.0.9"), ("cloud", "none")])
                .unwrap()
                .start(cx)
                .unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::HostArgs);
            let e = agent(&[("ip", "10.0.0.9"), ("cloud", "none"), ("nic", "eth9")])
                .unwrap()
                .start(cx)
                .unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::NotInstalled);
            assert!(host.addrs.borrow().len() == 3, "nothing half-changed");
        });
    }

    #[test]
    fn nonsense_is_refused_at_build() {
        for (ip, extra, needle) in [
            ("10.0.0.0", Some(("cidr_netmask", "24")), "network address"),
            (
                "10.0.0.255",
                Some(("cidr_netmask", "24")),
                "broadcast address",
            ),
            ("10.0.0.5", Some(("cidr_netmask", "33")), "too long"),
            ("224.0.0.1", None, "multicast"),
            ("0.0.0.0", None, "unspecified"),
            ("255.255.255.255", None, "broadcast"),
            ("127.0.0.5", None, "loopback"),
            ("fe80::1", None, "link-local"),
            ("10.0.0.5/24", None, "bare address"),
            ("10.0.0.256", None, "not an IPv4 or IPv6"),
            (
                "10.0.0.5",
                Some(("nic", "averyveryverylongname")),
                "longer than 15",
            ),
            ("10.0.0.5", Some(("nic", "eth0:1")), "':'"),
        ] {
            let mut pairs = vec![("ip", ip)];
            pairs.extend(extra);
            let e = agent(&pairs).err().expect("must be refused");
            assert_eq!(e.kind, crate::error::Kind::Config, "{ip}");
            assert!(e.message.contains(needle), "{} !~ {needle}", e.message);
        }
        // /31 has no network address to refuse
        assert!(agent(&[("ip", "10.0.0.0"), ("cidr_netmask", "31")]).is_ok());
    }

    #[test]
    fn auto_cloud_on_aws_is_refused_before_any_change() {
        let dmi = tempfile::tempdir().unwrap();
        std::fs::write(dmi.path().join("sys_vendor"), "Amazon EC2\n").unwrap();
        let host = lan();
        let a = agent(&[("ip", "10.0.0.200")]).unwrap();
        let paths = Paths {
            dmi_dir: dmi.path().into(),
            run_dir: "/nonexistent".into(),
        };
        let cx = Ctx {
            host: &host,
            paths: &paths,
            check_level: 0,
            probe: true,
            deadline: Instant::now() + Duration::from_secs(5),
        };
        let e = a.start(&cx).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::NotInstalled);
        assert!(e.message.contains("Amazon EC2"), "{}", e.message);
        assert!(!host.has(2, "10.0.0.200"));
        assert_eq!(a.monitor(&cx).unwrap(), Health::NotRunning);
        a.stop(&cx).unwrap();
    }

    #[test]
    fn ipv6() {
        let host = FakeHost::default().with_link(2, "eth0", Some(("fd00::1", 64)));
        let a = agent(&[("ip", "fd00::200"), ("cloud", "none")]).unwrap();
        with(&host, |cx| {
            a.start(cx).unwrap();
            assert_eq!(host.addrs.borrow().last().unwrap().prefix, 64);
        });
    }
}
