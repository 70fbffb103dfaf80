//! Unit tests of the route_table agent against the in-memory fakes.

use super::*;
use crate::agents::testing::{TestCtx, rides_out_cloud_trouble, values};
use crate::cloud::fake::FakeRoutes;
use crate::host::fake::FakeHost;

const IP: &str = "192.168.100.10";

fn agent(pairs: &[(&str, &str)]) -> Result<Box<dyn Agent>> {
    let mut all = vec![("ip", IP), ("nic", "eth0")];
    all.extend_from_slice(pairs);
    (AGENT.build)(&values(PARAMS, &all)?)
}

fn host() -> FakeHost {
    FakeHost::default()
        .with_link(1, "lo", Some(("127.0.0.1", 8)))
        .with_link(2, "eth0", Some(("10.0.1.11", 24)))
}

fn with<T>(
    host: &FakeHost,
    routes: &FakeRoutes,
    probe: bool,
    level: u32,
    run: &std::path::Path,
    f: impl FnOnce(&Ctx) -> T,
) -> T {
    TestCtx::new(host)
        .probe(probe)
        .level(level)
        .run_dir(run)
        .routes(routes)
        .run(f)
}

#[test]
fn start_points_every_table_with_two_reads_then_monitor_and_stop() {
    let h = host();
    let r = FakeRoutes::new(&[
        ("rtb-1", Some("eni-other")),
        ("rtb-2", Some("eni-me")),
        ("rtb-3", Some("eni-other")),
    ]);
    let run = tempfile::tempdir().unwrap();
    let a = agent(&[("route_tables", "rtb-1, rtb-2 rtb-3")]).unwrap();
    with(&h, &r, true, 0, run.path(), |cx| {
        assert_eq!(a.monitor(cx).unwrap(), Health::NotRunning);
        a.start(cx).unwrap();
    });
    assert_eq!(r.count("describe"), 2, "one read before, one confirming");
    assert_eq!(r.count("replace"), 2, "only the tables not already ours");
    assert_eq!(r.count("describe-eni"), 1);
    for t in ["rtb-1", "rtb-2", "rtb-3"] {
        assert_eq!(r.target(t).as_deref(), Some("eni-me"));
    }
    assert!(h.has(2, IP));
    // A recurring depth-0 monitor right after the start asks nobody.
    r.calls.borrow_mut().clear();
    with(&h, &r, false, 0, run.path(), |cx| {
        assert_eq!(a.monitor(cx).unwrap(), Health::Running)
    });
    assert!(r.calls.borrow().is_empty());
    // Already ours: one read, no write.
    with(&h, &r, false, 0, run.path(), |cx| a.start(cx).unwrap());
    assert_eq!(r.count("describe"), 1);
    assert_eq!(r.count("replace"), 0);
    // Stop: the address goes, the routes stay; twice is fine.
    r.calls.borrow_mut().clear();
    with(&h, &r, false, 0, run.path(), |cx| {
        a.stop(cx).unwrap();
        a.stop(cx).unwrap();
        assert_eq!(a.monitor(cx).unwrap(), Health::NotRunning);
    });
    assert!(!h.has(2, IP));
    assert_eq!(r.target("rtb-1").as_deref(), Some("eni-me"));
    assert!(r.calls.borrow().is_empty(), "stop makes no API call");
}

#[test]
fn monitor_verdicts_all_none_some() {
    let h = host();
    let r = FakeRoutes::new(&[("rtb-1", Some("eni-me")), ("rtb-2", Some("eni-me"))]);
    let run = tempfile::tempdir().unwrap();
    let a = agent(&[("route_tables", "rtb-1,rtb-2")]).unwrap();
    with(&h, &r, true, 0, run.path(), |cx| {
        a.start(cx).unwrap();
        assert_eq!(a.monitor(cx).unwrap(), Health::Running);
        // One drifted (even to a blackhole): repaired in place, still running.
        r.set("rtb-2", Some("eni-dead"), true);
        r.calls.borrow_mut().clear();
        assert_eq!(a.monitor(cx).unwrap(), Health::Running);
        assert_eq!(r.count("replace"), 1);
        assert_eq!(r.target("rtb-2").as_deref(), Some("eni-me"));
        // None ours: another node took it.
        r.set("rtb-1", Some("eni-b"), false);
        r.set("rtb-2", Some("eni-b"), false);
        r.calls.borrow_mut().clear();
        assert_eq!(a.monitor(cx).unwrap(), Health::NotRunning);
        assert_eq!(r.count("replace"), 0, "never fights the new holder");
    });
}

#[test]
fn cloud_trouble_keeps_a_healthy_resource_running() {
    let h = host();
    let r = FakeRoutes::new(&[("rtb-1", Some("eni-me"))]);
    let run = tempfile::tempdir().unwrap();
    let a = agent(&[("route_tables", "rtb-1")]).unwrap();
    with(&h, &r, true, 10, run.path(), |cx| {
        a.start(cx).unwrap();
        rides_out_cloud_trouble(a.as_ref(), cx, &r.fault);
        // A failed repair that is transient is logged, not a failure.
        r.tables.borrow_mut().push(Table {
            id: "rtb-2".into(),
            vpc: "vpc-1".into(),
            route: Some(crate::cloud::routes::Route {
                eni: Some("eni-b".into()),
                target: "eni-b".into(),
                blackhole: false,
            }),
        });
        r.fail_tables
            .borrow_mut()
            .insert("rtb-2".into(), Error::transient("InternalError"));
        let b = agent(&[("route_tables", "rtb-1,rtb-2")]).unwrap();
        assert_eq!(b.monitor(cx).unwrap(), Health::Running);
        r.fail_tables
            .borrow_mut()
            .insert("rtb-2".into(), Error::permission("UnauthorizedOperation"));
        // A repair the role may not make: degraded, naming the table, not a ban.
        assert!(matches!(b.monitor(cx).unwrap(), Health::Degraded(why) if why.contains("rtb-2")));
    });
}

#[test]
fn bad_tables_change_nothing() {
    let h = host();
    let run = tempfile::tempdir().unwrap();
    // A table without the route, create_missing off: 6, nothing changed.
    let r = FakeRoutes::new(&[("rtb-1", Some("eni-other")), ("rtb-2", None)]);
    let a = agent(&[("route_tables", "rtb-1,rtb-2")]).unwrap();
    let e = with(&h, &r, false, 0, run.path(), |cx| a.start(cx).unwrap_err());
    assert_eq!(e.kind, Kind::Config);
    assert!(
        e.message.contains("rtb-2") && e.message.contains("create_missing"),
        "{e}"
    );
    assert_eq!(r.target("rtb-1").as_deref(), Some("eni-other"));
    assert!(!h.has(2, IP));
    // With create_missing: created.
    let a = agent(&[("route_tables", "rtb-1,rtb-2"), ("create_missing", "true")]).unwrap();
    with(&h, &r, false, 0, run.path(), |cx| a.start(cx).unwrap());
    assert_eq!(r.count("create"), 1);
    assert_eq!(r.target("rtb-2").as_deref(), Some("eni-me"));
    with(&h, &r, false, 0, run.path(), |cx| a.stop(cx).unwrap());
    // A table of another VPC: this node's problem (2).
    let r = FakeRoutes::new(&[("rtb-1", Some("eni-other"))]);
    r.tables.borrow_mut()[0].vpc = "vpc-9".into();
    let a = agent(&[("route_tables", "rtb-1")]).unwrap();
    let e = with(&h, &r, false, 0, run.path(), |cx| a.start(cx).unwrap_err());
    assert_eq!(e.kind, Kind::HostArgs);
    assert!(e.message.contains("rtb-1 (vpc-9)"), "{e}");
    // No such table: 6 with its id.
    let a = agent(&[("route_tables", "rtb-1,rtb-77")]).unwrap();
    let e = with(&h, &r, false, 0, run.path(), |cx| a.start(cx).unwrap_err());
    assert_eq!(e.kind, Kind::Config);
    assert!(e.message.contains("rtb-77"), "{e}");
    // auto with no table holding the route: 6.
    let r = FakeRoutes::new(&[("rtb-1", None)]);
    let a = agent(&[]).unwrap();
    let e = with(&h, &r, false, 0, run.path(), |cx| a.start(cx).unwrap_err());
    assert_eq!(e.kind, Kind::Config);
    assert!(e.message.contains("auto"), "{e}");
    assert!(!h.has(2, IP));
}

#[test]
fn a_table_that_cannot_be_updated_fails_the_start_with_its_id() {
    let h = host();
    let run = tempfile::tempdir().unwrap();
    let r = FakeRoutes::new(&[("rtb-1", Some("eni-x")), ("rtb-2", Some("eni-x"))]);
    r.fail_tables
        .borrow_mut()
        .insert("rtb-2".into(), Error::permission("UnauthorizedOperation"));
    let a = agent(&[("route_tables", "rtb-1,rtb-2")]).unwrap();
    let e = with(&h, &r, false, 0, run.path(), |cx| a.start(cx).unwrap_err());
    assert_eq!(e.kind, Kind::Permission);
    assert!(e.message.contains("rtb-2: UnauthorizedOperation"), "{e}");
    assert!(e.message.contains("1 of 2"), "{e}");
    assert!(!h.has(2, IP), "no local address after a failed start");
    // Throttled only: transient (1), never 6 or 7.
    r.fail_tables
        .borrow_mut()
        .insert("rtb-2".into(), Error::transient("RequestLimitExceeded"));
    let e = with(&h, &r, false, 0, run.path(), |cx| a.start(cx).unwrap_err());
    assert_eq!(e.kind, Kind::Transient);
}

#[test]
fn source_dest_check() {
    let h = host();
    let run = tempfile::tempdir().unwrap();
    let r = FakeRoutes::new(&[("rtb-1", Some("eni-x"))]);
    r.source_dest_check.set(true);
    let a = agent(&[("route_tables", "rtb-1")]).unwrap();
    let e = with(&h, &r, false, 0, run.path(), |cx| a.start(cx).unwrap_err());
    assert_eq!(e.kind, Kind::HostArgs);
    assert!(e.message.contains("--no-source-dest-check"), "{e}");
    assert_eq!(
        r.target("rtb-1").as_deref(),
        Some("eni-x"),
        "nothing changed"
    );
    let a = agent(&[("route_tables", "rtb-1"), ("source_dest_check", "disable")]).unwrap();
    with(&h, &r, false, 0, run.path(), |cx| a.start(cx).unwrap());
    assert!(!r.source_dest_check.get());
    assert_eq!(r.count("modify-eni"), 1);
}

#[test]
fn nonsense_is_refused_at_build() {
    for (pairs, needle) in [
        (vec![("ip", "192.168.100.0/24")], "network or broadcast"),
        (vec![("ip", "10.1.2.3/4")], "large part"),
        (vec![("ip", "fd00::1")], "IPv4 overlay"),
        (vec![("ip", "169.254.169.254")], "link-local"),
        (vec![("ip", "1.2.3.4/33")], "prefix length"),
        (
            vec![("route_tables", "rtb-1,igw-2")],
            "'igw-2' is not a route table",
        ),
        (vec![("route_tables", " , ")], "empty"),
        (vec![("create_missing", "true")], "auto only"),
        (vec![("role_arn", "admin")], "not an ARN"),
        (vec![("nic", "eth0:1")], "':'"),
    ] {
        let e = agent(&pairs).err().expect("must be refused");
        assert_eq!(e.kind, Kind::Config, "{pairs:?}");
        assert!(e.message.contains(needle), "{} !~ {needle}", e.message);
    }
    assert!(agent(&[("ip", "192.168.100.0/24"), ("local_address", "false")]).is_ok());
    assert!(agent(&[("ip", "192.168.100.10/28")]).is_ok());
}

#[test]
fn without_a_local_address_the_probe_asks_the_cloud() {
    let h = host();
    let run = tempfile::tempdir().unwrap();
    let r = FakeRoutes::new(&[("rtb-1", Some("eni-me"))]);
    let a = agent(&[("route_tables", "rtb-1"), ("local_address", "false")]).unwrap();
    with(&h, &r, true, 0, run.path(), |cx| {
        assert_eq!(a.monitor(cx).unwrap(), Health::Running);
        r.fail(Error::transient("InternalError"), 1);
        assert_eq!(
            a.monitor(cx).unwrap_err().kind,
            Kind::Transient,
            "no verdict"
        );
        r.set("rtb-1", Some("eni-b"), false);
        assert_eq!(a.monitor(cx).unwrap(), Health::NotRunning);
    });
    with(&h, &r, false, 0, run.path(), |cx| {
        assert_eq!(
            a.monitor(cx).unwrap(),
            Health::NotRunning,
            "not started here"
        );
        a.start(cx).unwrap();
        assert!(!h.has(2, IP));
        assert_eq!(a.monitor(cx).unwrap(), Health::Running);
    });
}

#[test]
fn without_a_local_address_the_owners_address_can_count() {
    let h = host();
    let run = tempfile::tempdir().unwrap();
    let r = FakeRoutes::new(&[("rtb-1", Some("eni-b"))]);
    let a = agent(&[
        ("route_tables", "rtb-1"),
        ("local_address", "false"),
        ("expect_local_address", "true"),
    ])
    .unwrap();
    with(&h, &r, false, 0, run.path(), |cx| {
        a.start(cx).unwrap();
        assert_eq!(
            a.monitor(cx).unwrap(),
            Health::NotRunning,
            "nobody configured the address here"
        );
        h.add_addr(2, IP.parse().unwrap(), 32).unwrap();
        assert_eq!(a.monitor(cx).unwrap(), Health::Running);
    });
    assert!(agent(&[("route_tables", "rtb-1"), ("expect_local_address", "true")]).is_err());
}
