//! Unit tests of the vip agent against the in-memory fakes.

use super::*;
use crate::agents::testing::{TestCtx, rides_out_cloud_trouble, values};
use crate::cloud::fake::FakeCloud;
use crate::error::Kind;
use crate::host::fake::FakeHost;

fn agent(pairs: &[(&str, &str)]) -> Result<Box<dyn Agent>> {
    (AGENT.build)(&values(PARAMS, pairs)?)
}

fn with<T>(host: &FakeHost, f: impl FnOnce(&Ctx) -> T) -> T {
    TestCtx::new(host).run(f)
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
fn auto_cloud_on_a_plain_network_is_none() {
    // No DMI data (TestCtx points at /nonexistent): no cloud API, GARP sent.
    let host = lan();
    let a = agent(&[("ip", "10.0.0.200")]).unwrap();
    with(&host, |cx| {
        a.start(cx).unwrap();
        assert!(host.has(2, "10.0.0.200"));
        assert_eq!(host.announced.borrow().len(), 1);
        assert_eq!(a.monitor(cx).unwrap(), Health::Running);
        a.stop(cx).unwrap();
    });
}

/// A node on a fake cloud: the LAN host, the cloud and a run directory of its own.
struct Rig {
    host: FakeHost,
    cloud: FakeCloud,
    run: tempfile::TempDir,
}

impl Rig {
    fn new(cloud: FakeCloud) -> Self {
        Rig {
            host: lan(),
            cloud,
            run: tempfile::tempdir().unwrap(),
        }
    }
    /// Run `f` as a probe (`probe`) or a recurring depth-0 monitor would be run.
    fn ctx<T>(&self, probe: bool, f: impl FnOnce(&Ctx) -> T) -> T {
        TestCtx::new(&self.host)
            .probe(probe)
            .run_dir(self.run.path())
            .cloud(&self.cloud)
            .run(f)
    }
}

fn aws(pairs: &[(&str, &str)]) -> Box<dyn Agent> {
    let mut all = vec![("ip", "10.0.0.200"), ("cloud", "aws"), ("nic", "eth0")];
    all.extend_from_slice(pairs);
    agent(&all).unwrap()
}

#[test]
fn cloud_start_claims_configures_and_confirms() {
    let rig = Rig::new(FakeCloud::default().held_by("10.0.0.200", "other-eni"));
    let (host, cloud) = (&rig.host, &rig.cloud);
    let a = aws(&[]);
    rig.ctx(false, |cx| {
        a.start(cx).unwrap();
        assert!(host.has(2, "10.0.0.200"));
        assert_eq!(cloud.holder("10.0.0.200").as_deref(), Some("eth0"));
        assert_eq!(*cloud.calls.borrow(), ["claim", "owner"]);
        assert!(host.announced.borrow().is_empty(), "clouds ignore ARP");
    });
}

#[test]
fn recurring_monitor_asks_the_cloud_only_when_due() {
    let rig = Rig::new(FakeCloud::default());
    let cloud = &rig.cloud;
    let a = aws(&[]);
    rig.ctx(false, |cx| a.start(cx).unwrap());
    cloud.calls.borrow_mut().clear();
    rig.ctx(false, |cx| {
        assert_eq!(a.monitor(cx).unwrap(), Health::Running);
    });
    assert!(cloud.calls.borrow().is_empty(), "depth 0, checked at start");
    rig.ctx(true, |cx| {
        assert_eq!(a.monitor(cx).unwrap(), Health::Running);
    });
    assert_eq!(*cloud.calls.borrow(), ["owner"], "a probe always asks");
    // cloud_check_interval=0: every monitor asks.
    let every = aws(&[("cloud_check_interval", "0")]);
    cloud.calls.borrow_mut().clear();
    rig.ctx(false, |cx| {
        every.monitor(cx).unwrap();
    });
    assert_eq!(*cloud.calls.borrow(), ["owner"]);
}

#[test]
fn another_holder_is_not_running_nobody_is_a_failure() {
    let rig = Rig::new(FakeCloud::default());
    let cloud = &rig.cloud;
    let a = aws(&[]);
    rig.ctx(true, |cx| {
        a.start(cx).unwrap();
        cloud
            .holders
            .borrow_mut()
            .insert("10.0.0.200".parse().unwrap(), "eni-b".into());
        assert_eq!(a.monitor(cx).unwrap(), Health::NotRunning);
        cloud.holders.borrow_mut().clear();
        let e = a.monitor(cx).unwrap_err();
        assert_eq!(e.kind, Kind::Failed);
        assert!(e.message.contains("not assigned"), "{}", e.message);
    });
}

#[test]
fn cloud_outage_never_stops_a_healthy_resource() {
    let rig = Rig::new(FakeCloud::default());
    let (host, cloud) = (&rig.host, &rig.cloud);
    let a = aws(&[]);
    rig.ctx(true, |cx| {
        a.start(cx).unwrap();
        rides_out_cloud_trouble(a.as_ref(), cx, &cloud.fault);
        // A failed release does not fail the stop; the OS address is gone.
        cloud.fail(Error::transient("InternalError"), 1);
        a.stop(cx).unwrap();
        assert!(!host.has(2, "10.0.0.200"));
    });
}

#[test]
fn stop_never_releases_another_nodes_address() {
    let rig = Rig::new(FakeCloud::default().held_by("10.0.0.200", "eni-b"));
    let cloud = &rig.cloud;
    let a = aws(&[]);
    rig.ctx(false, |cx| a.stop(cx).unwrap());
    assert_eq!(cloud.holder("10.0.0.200").as_deref(), Some("eni-b"));
}

#[test]
fn failed_claim_changes_nothing_on_the_host() {
    let rig = Rig::new(FakeCloud::default());
    let (host, cloud) = (&rig.host, &rig.cloud);
    let a = aws(&[]);
    // A stray copy on another interface and one with the wrong prefix on eth0 (what
    // start would tidy away): a refused claim must leave both where they are.
    host.addrs.borrow_mut().push(crate::host::Addr {
        link: 3,
        ip: "10.0.0.200".parse().unwrap(),
        prefix: 32,
    });
    for e in [
        Error::permission("UnauthorizedOperation"),
        Error::transient("RequestLimitExceeded"),
        Error::config("InvalidParameterValue"),
    ] {
        let kind = e.kind;
        let before = host.addrs.borrow().clone();
        cloud.fail(e, 1);
        rig.ctx(false, |cx| assert_eq!(a.start(cx).unwrap_err().kind, kind));
        assert_eq!(
            *host.addrs.borrow(),
            before,
            "the host changed before the cloud agreed"
        );
        assert!(!host.has(2, "10.0.0.200"));
    }
}

#[test]
fn aws_parameters_are_checked_at_build() {
    for (pairs, needle) in [
        (vec![("ip", "fd00::5"), ("cloud", "aws")], "IPv4"),
        (
            vec![
                ("ip", "10.0.0.5"),
                ("cloud", "none"),
                ("region", "eu-west-1"),
            ],
            "cloud=none",
        ),
        (
            vec![("ip", "10.0.0.5"), ("eip_allocation_id", "198.51.100.7")],
            "eipalloc-",
        ),
        (
            vec![("ip", "10.0.0.5"), ("role_arn", "admin")],
            "not an ARN",
        ),
        (
            vec![("ip", "10.0.0.5"), ("endpoint_url", "ec2.local")],
            "https://",
        ),
    ] {
        let e = agent(&pairs).err().expect("must be refused");
        assert_eq!(e.kind, Kind::Config);
        assert!(e.message.contains(needle), "{} !~ {needle}", e.message);
    }
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

#[test]
fn auto_on_a_cloud_we_do_not_support_is_refused_and_changes_nothing() {
    let host = lan();
    let dmi = tempfile::tempdir().unwrap();
    std::fs::write(dmi.path().join("product_name"), "Google Compute Engine\n").unwrap();
    let a = agent(&[("ip", "10.0.0.200")]).unwrap();
    let before = host.addrs.borrow().len();
    TestCtx::new(&host).dmi_dir(dmi.path()).run(|cx| {
        let e = a.start(cx).unwrap_err();
        assert_eq!(e.kind, Kind::HostArgs, "{e}");
        assert!(
            e.message.contains("Google Cloud") && e.message.contains("cloud=none"),
            "{e}"
        );
    });
    assert_eq!(host.addrs.borrow().len(), before, "no address added");
    assert!(host.announced.borrow().is_empty());
}

/// The Clusterware seed: Oracle's ora.<node>.vip owns the OS address, this resource only moves
/// it in the cloud (local_address=false).
#[test]
fn cloud_only_moves_the_address_and_never_touches_the_os() {
    let rig = Rig::new(FakeCloud::default().held_by("10.0.0.200", "other-eni"));
    let (host, cloud) = (&rig.host, &rig.cloud);
    // "ora vip": the address is on the OS before we start, and must stay after our stop.
    host.add_addr(2, "10.0.0.200".parse().unwrap(), 24).unwrap();
    let a = aws(&[("local_address", "false")]);
    rig.ctx(true, |cx| {
        assert_eq!(
            a.monitor(cx).unwrap(),
            Health::NotRunning,
            "the cloud says elsewhere"
        );
    });
    rig.ctx(false, |cx| {
        assert_eq!(
            a.monitor(cx).unwrap(),
            Health::NotRunning,
            "not started here"
        );
        a.start(cx).unwrap();
        assert_eq!(cloud.holder("10.0.0.200").as_deref(), Some("eth0"));
        assert_eq!(a.monitor(cx).unwrap(), Health::Running);
    });
    // Another node's start takes it in the cloud: ours reports not running, as a vip would.
    cloud
        .holders
        .borrow_mut()
        .insert("10.0.0.200".parse().unwrap(), "other-eni".into());
    rig.ctx(false, |cx| {
        let deep = TestCtx::new(host)
            .level(10)
            .run_dir(rig.run.path())
            .cloud(cloud);
        deep.run(|cx10| assert_eq!(a.monitor(cx10).unwrap(), Health::NotRunning));
        a.stop(cx).unwrap();
        assert_eq!(a.monitor(cx).unwrap(), Health::NotRunning);
    });
    assert!(
        host.has(2, "10.0.0.200"),
        "the OS address is never removed by us"
    );
    assert!(host.announced.borrow().is_empty());
    // Started without the address on the OS: nothing is added either.
    host.del_addr(2, "10.0.0.200".parse().unwrap(), 24).unwrap();
    rig.ctx(false, |cx| a.start(cx).unwrap());
    assert!(!host.has(2, "10.0.0.200"));
}

#[test]
fn cloud_only_can_count_the_owners_os_address() {
    let rig = Rig::new(FakeCloud::default());
    let host = &rig.host;
    let ip = "10.0.0.200".parse().unwrap();
    host.add_addr(2, ip, 24).unwrap();
    let a = aws(&[("local_address", "false"), ("expect_local_address", "true")]);
    rig.ctx(false, |cx| {
        a.start(cx).unwrap();
        assert_eq!(a.monitor(cx).unwrap(), Health::Running);
    });
    // Oracle's VIP moved away and took its address: not running here, though EC2 still
    // delivers the address to this node.
    host.del_addr(2, ip, 24).unwrap();
    rig.ctx(false, |cx| {
        assert_eq!(a.monitor(cx).unwrap(), Health::NotRunning)
    });
    rig.ctx(true, |cx| {
        assert_eq!(a.monitor(cx).unwrap(), Health::NotRunning)
    });
    assert_eq!(rig.cloud.holder("10.0.0.200").as_deref(), Some("eth0"));
    let e = agent(&[("ip", "10.0.0.200"), ("expect_local_address", "true")])
        .err()
        .unwrap();
    assert_eq!(e.kind, Kind::Config, "meaningless with local_address=true");
}

#[test]
fn cloud_only_rides_out_cloud_trouble_but_a_probe_has_no_verdict() {
    let rig = Rig::new(FakeCloud::default());
    let a = aws(&[("local_address", "false"), ("cloud_check_interval", "0")]);
    rig.ctx(false, |cx| a.start(cx).unwrap());
    rig.ctx(false, |cx| {
        rides_out_cloud_trouble(a.as_ref(), cx, &rig.cloud.fault)
    });
    rig.cloud.fail(Error::transient("RequestLimitExceeded"), 1);
    rig.ctx(true, |cx| assert!(a.monitor(cx).is_err()));
}

#[test]
fn cloud_only_needs_a_cloud() {
    let e = agent(&[
        ("ip", "10.0.0.200"),
        ("cloud", "none"),
        ("local_address", "false"),
    ])
    .err()
    .unwrap();
    assert_eq!(e.kind, Kind::Config);
    assert!(e.message.contains("local_address=false"), "{e}");
}

/// What IPaddr2's ocft suite (IPaddr2v4) calls ambiguous: a prefix length nothing on the
/// node gives, or one wider than the subnet that holds ip. Refused (2, this node), nothing
/// changed; with both nic and cidr_netmask the admin has said exactly what to configure.
#[test]
fn ambiguous_prefix_lengths_are_refused_unless_forced() {
    let host = lan();
    let before = host.addrs.borrow().clone();
    for (pairs, needle) in [
        // eth1 holds no subnet of the address: no prefix to take.
        (
            vec![("nic", "eth1")],
            "no subnet configured on eth1 holds 10.0.0.200",
        ),
        // /16 would claim 10.0.0.0/16 for eth0, whose subnet is a /24.
        (
            vec![("cidr_netmask", "16")],
            "cidr_netmask=16 is wider than the subnet of 10.0.0.1/24",
        ),
    ] {
        let mut all = vec![("ip", "10.0.0.200"), ("cloud", "none")];
        all.extend(pairs);
        let a = agent(&all).unwrap();
        with(&host, |cx| {
            let e = a.start(cx).unwrap_err();
            assert_eq!(e.kind, Kind::HostArgs, "{all:?}");
            assert!(e.message.contains(needle), "{} !~ {needle}", e.message);
            assert!(a.preflight(cx).is_err(), "validate-all says the same");
        });
        assert_eq!(*host.addrs.borrow(), before, "nothing half-changed");
        assert!(host.announced.borrow().is_empty());
    }
    // Forced: nic and cidr_netmask together, whatever the subnets.
    for (nic, prefix, link) in [("eth1", "16", 3), ("eth0", "16", 2), ("eth1", "28", 3)] {
        let a = agent(&[
            ("ip", "10.0.0.200"),
            ("cloud", "none"),
            ("nic", nic),
            ("cidr_netmask", prefix),
        ])
        .unwrap();
        with(&host, |cx| {
            a.start(cx).unwrap();
            assert_eq!(a.monitor(cx).unwrap(), Health::Running);
            let last = host.addrs.borrow().last().unwrap().clone();
            assert_eq!((last.link, last.prefix.to_string()), (link, prefix.into()));
            a.stop(cx).unwrap();
        });
    }
    // Narrower than the subnet is unambiguous (IPaddr2 starts it too).
    let a = agent(&[
        ("ip", "10.0.0.200"),
        ("cloud", "none"),
        ("cidr_netmask", "28"),
    ])
    .unwrap();
    with(&host, |cx| a.start(cx).unwrap());
    assert_eq!(host.addrs.borrow().last().unwrap().prefix, 28);
}

#[test]
fn a_prefix_length_picks_the_subnet_that_holds_all_of_it() {
    // Both hold 192.168.144.2; only eth1's /16 holds 192.168.144.2/16.
    let host = FakeHost::default()
        .with_link(2, "eth0", Some(("192.168.144.1", 24)))
        .with_link(3, "eth1", Some(("192.168.0.1", 16)));
    let on = |pairs: &[(&str, &str)]| {
        let mut all = vec![("ip", "192.168.144.2"), ("cloud", "none")];
        all.extend_from_slice(pairs);
        let a = agent(&all).unwrap();
        with(&host, |cx| {
            a.start(cx).unwrap();
            let last = host.addrs.borrow().last().unwrap().clone();
            a.stop(cx).unwrap();
            (last.link, last.prefix)
        })
    };
    assert_eq!(on(&[]), (2, 24), "the longest subnet that holds ip");
    assert_eq!(on(&[("cidr_netmask", "16")]), (3, 16));
    assert_eq!(on(&[("cidr_netmask", "26")]), (2, 26));
}

#[test]
fn cloud_only_needs_no_prefix_length() {
    // local_address=false configures nothing on the OS: eth1 without the subnet is fine.
    let rig = Rig::new(FakeCloud::default());
    let a = agent(&[
        ("ip", "10.0.0.200"),
        ("cloud", "aws"),
        ("nic", "eth1"),
        ("local_address", "false"),
    ])
    .unwrap();
    rig.ctx(false, |cx| a.start(cx).unwrap());
    assert_eq!(rig.cloud.holder("10.0.0.200").as_deref(), Some("eth1"));
}
