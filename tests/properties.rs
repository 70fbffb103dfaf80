//! Property tests of everything that parses outside input: the OCF and Clusterware environment
//! (caller numbers and parameters), the Clusterware .conf file, and every declared parameter
//! of every agent. Each case runs the whole action in-process against the in-memory host and
//! clouds, so the properties are about what the caller really gets:
//! never a panic; an exit code in the caller's allowed set for that action; at most one reason
//! line, one line each, bounded; stop and clean of a configuration that cannot be read succeed.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config;

use cloudha::agents::{AGENTS, AgentDef};
use cloudha::cloud::fake::{FakeCloud, FakeRoutes};
use cloudha::contract::{self, Caller, Env, Invocation, MAX_TIMEOUT, Reply, Stand};
use cloudha::error::{self, LINE_MAX};
use cloudha::host::Host;
use cloudha::host::fake::FakeHost;
use cloudha::params::{Raw, Source, Type};

/// Values at the edges of arithmetic and of the caller protocols, plus plausible ones so that
/// cases also get past validation into the actions.
fn hostile() -> impl Strategy<Value = String> {
    let edges: Vec<String> = [
        "",
        " ",
        "-1",
        "0",
        "1",
        "-0",
        "1e309",
        "inf",
        "-inf",
        "NaN",
        "nan",
        "1e-320",
        "18446744073709551616",
        "18446744073709551615",
        "-9223372036854775808",
        "9223372036854775807",
        "4294967296",
        "0x10",
        "1_000",
        "+5",
        " 20000 ",
        "20000.5",
        "x\nocf-exit-reason:forged",
        "x\r\nCRS_ERROR: forged",
        "\u{0}",
        "vx%d",
        "eth%s",
        "%",
        "../../etc/passwd",
        "/dev/zero",
        "/",
        ".",
        "..",
        "averyveryverylongifname0",
        "ünïcödé",
        "\u{202e}evil",
        "10.0.0.200",
        "10.0.0.1",
        "10.0.1.200",
        "fd00::200",
        "0.0.0.0",
        "255.255.255.255",
        "127.0.0.1",
        "224.0.0.1",
        "eth0",
        "eth1",
        "lo",
        "24",
        "32",
        "33",
        "aws",
        "oci",
        "none",
        "auto",
        "true",
        "false",
        "yes",
        "4789",
        "100",
        "10.0.0.2,10.0.0.3",
        "10.0.0.2 10.0.0.2",
        "host.invalid",
        "rtb-1",
        "rtb-1,rtb-2",
        "eni-me",
        "static",
        "corosync",
        "instance_principal",
        "api_key",
        "60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    prop_oneof![
        6 => proptest::sample::select(edges),
        1 => Just("a".repeat(100_000)),
        1 => Just("9".repeat(400)),
        2 => any::<String>(),
        2 => "[0-9eE.+-]{0,24}",
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|n| n.to_string()),
    ]
}

/// Caller variables that carry numbers (or words) we parse.
const CALLER_VARS: &[&str] = &[
    "OCF_RESKEY_CRM_meta_timeout",
    "OCF_RESKEY_CRM_meta_interval",
    "OCF_CHECK_LEVEL",
    "OCF_RA_VERSION_MAJOR",
    "OCF_RA_VERSION_MINOR",
    "OCF_RESOURCE_INSTANCE",
    "_CRS_START_TIMEOUT",
    "_CRS_STOP_TIMEOUT",
    "_CRS_CHECK_TIMEOUT",
    "_CRS_CLEAN_TIMEOUT",
    "_CRS_SCRIPT_TIMEOUT",
];

const OCF_WORDS: &[&str] = &[
    "start",
    "stop",
    "monitor",
    "status",
    "meta-data",
    "validate-all",
    "reload-agent",
    "promote",
    "",
];
const CRS_WORDS: &[&str] = &["start", "stop", "check", "clean", "abort", "delete", ""];

/// A node as the unit tests know it: lo, eth0 10.0.0.1/24, eth1 192.168.5.1/24.
fn lan() -> FakeHost {
    FakeHost::default()
        .with_link(1, "lo", Some(("127.0.0.1", 8)))
        .with_link(2, "eth0", Some(("10.0.0.1", 24)))
        .with_link(3, "eth1", Some(("192.168.5.1", 24)))
}

/// The exit codes a caller may see from an action.
fn allowed(caller: Caller, word: &str) -> &'static [i32] {
    match (caller, word) {
        (Caller::Ocf, "monitor" | "status") => &[0, 1, 2, 3, 4, 5, 6, 7, 190],
        (Caller::Ocf, "meta-data") => &[0],
        // Never 7 outside a monitor (Pacemaker would read a stop's 7 as "failed").
        (Caller::Ocf, _) => &[0, 1, 2, 3, 4, 5, 6],
        (Caller::Clusterware, "check") => &[0, 1, 2, 3, 4, 5],
        (Caller::Clusterware, _) => &[0, 1],
    }
}

/// Run one call as the binary would, in-process, against fakes.
fn call(agent: &'static AgentDef, word: &str, env: &Env) -> (Caller, Reply, Option<Invocation>) {
    let host_fn = |_: Instant| -> cloudha::error::Result<Box<dyn Host>> { Ok(Box::new(lan())) };
    let cloud = FakeCloud::default().held_by("10.0.0.200", "eth1");
    let routes = FakeRoutes::new(&[("rtb-1", Some("eni-other")), ("rtb-2", Some("eni-me"))]);
    let stand = Stand {
        cloud: Some(&cloud),
        routes: Some(&routes),
    };
    match Invocation::new(agent, word, env, &[]) {
        Ok(inv) => {
            let reply = contract::answer(&inv, &host_fn, stand);
            (inv.caller, reply, Some(inv))
        }
        Err((caller, e)) => {
            let code = match caller {
                Caller::Ocf => contract::ocf_code(e.kind),
                Caller::Clusterware => 1,
            };
            (
                caller,
                Reply {
                    code,
                    stdout: vec![],
                    stderr: vec![error::one_line(&e.message)],
                },
                None,
            )
        }
    }
}

/// The protocol properties of one reply.
fn check_reply(caller: Caller, word: &str, r: &Reply) -> Result<(), TestCaseError> {
    prop_assert!(
        allowed(caller, word).contains(&r.code),
        "{caller:?} {word}: exit {} not allowed; {:?} {:?}",
        r.code,
        r.stdout,
        r.stderr
    );
    let reasons = r
        .stderr
        .iter()
        .chain(&r.stdout)
        .filter(|l| l.starts_with("ocf-exit-reason:") || l.starts_with("CRS_ERROR:"))
        .count();
    prop_assert!(reasons <= 1, "{reasons} reason lines: {:?}", r);
    for l in r.stderr.iter().chain(&r.stdout) {
        if l.starts_with("<?xml") {
            continue; // meta-data
        }
        let body = l.strip_suffix('\n').unwrap_or(l);
        prop_assert!(!body.contains(['\n', '\r']), "a line with a break: {l:?}");
        prop_assert!(body.len() <= LINE_MAX, "a line of {} bytes", body.len());
    }
    Ok(())
}

fn agent_strategy() -> impl Strategy<Value = &'static AgentDef> {
    proptest::sample::select(AGENTS.to_vec())
}

/// A configuration of the agent that works on [`lan`], so that cases reach the actions.
fn base(agent: &AgentDef) -> Vec<(&'static str, String)> {
    let pairs: &[(&'static str, &str)] = match agent.name {
        "vip" => &[("ip", "10.0.0.200"), ("nic", "eth0"), ("cloud", "none")],
        "vxlan-fdb" => &[
            ("vni", "100"),
            ("dev", "eth0"),
            ("local", "10.0.0.1"),
            ("peers", "10.0.0.2,10.0.0.3"),
        ],
        "route-table" => &[
            ("ip", "192.168.100.1"),
            ("route_tables", "rtb-1,rtb-2"),
            ("nic", "eth0"),
        ],
        _ => &[],
    };
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// For an agent: a working configuration with up to four parameters set to values of their
/// type, plausible ones or hostile ones.
fn params_for(agent: &'static AgentDef) -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let per: Vec<_> = agent
        .params
        .iter()
        .map(|p| {
            let own: Vec<String> = match p.ty {
                Type::Select(words) => words.iter().map(|w| w.to_string()).collect(),
                Type::Integer { min, max } => [min - 1, min, max, max.saturating_add(1)]
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
                Type::Boolean => vec!["true".into(), "false".into()],
                Type::String => plausible(p.name)
                    .iter()
                    .map(|v| v.to_string())
                    .chain(p.default.map(str::to_string))
                    .collect(),
            };
            let value = if own.is_empty() {
                hostile().boxed()
            } else {
                prop_oneof![2 => proptest::sample::select(own), 1 => hostile()].boxed()
            };
            (Just(p.name), value).boxed()
        })
        .collect();
    let one = proptest::sample::select((0..per.len()).collect::<Vec<_>>())
        .prop_flat_map(move |i| per[i].clone());
    let base = base(agent);
    proptest::collection::vec(one, 0..5).prop_map(move |changes| {
        let mut params = base.clone();
        for (k, v) in changes {
            params.retain(|(n, _)| *n != k);
            params.push((k, v));
        }
        params
    })
}

/// Values that pass validation for string parameters, so cases reach the actions.
fn plausible(name: &str) -> &'static [&'static str] {
    match name {
        "ip" => &["10.0.0.200", "10.0.1.200", "fd00::200", "192.168.5.9"],
        "nic" | "dev" => &["eth0", "eth1"],
        "local" => &["10.0.0.1"],
        "peers" => &["10.0.0.2,10.0.0.3", "10.0.0.1 10.0.0.2", "peer.example"],
        "route_tables" => &["rtb-1", "rtb-1,rtb-2"],
        "ifname" => &["vx100"],
        "bridge" => &["br0"],
        "address" => &["10.9.0.1/24"],
        "region" => &["eu-west-1"],
        "endpoint_url" | "auth_endpoint_url" => &["http://127.0.0.1:9"],
        "eip_allocation_id" => &["eipalloc-1"],
        "role_arn" => &["arn:aws:iam::123456789012:role/ha"],
        _ => &[],
    }
}

fn base_env(run: &Path) -> Env {
    Env::from_pairs([
        ("CLOUDHA_RUN_DIR", run.display().to_string()),
        ("CLOUDHA_DMI_DIR", "/nonexistent".to_string()),
        ("CLOUDHA_CONFIG_DIR", run.join("conf").display().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ])
}

proptest! {
    #![proptest_config(Config { cases: 3000, ..Config::default() })]

    /// The OCF contract: parameters and caller numbers of every kind, every action word.
    #[test]
    fn ocf_calls(
        (agent, params) in agent_strategy().prop_flat_map(|a| (Just(a), params_for(a))),
        word in proptest::sample::select(OCF_WORDS),
        callers in proptest::collection::vec(
            (proptest::sample::select(CALLER_VARS), hostile()), 0..5),
    ) {
        let run = tempfile::tempdir().unwrap();
        let mut env = base_env(run.path());
        for (k, v) in &params {
            env.set(&format!("OCF_RESKEY_{k}"), v);
        }
        for (k, v) in &callers {
            env.set(k, v);
        }
        let (caller, reply, inv) = call(agent, word, &env);
        prop_assert_eq!(caller, Caller::Ocf);
        check_reply(caller, word, &reply)?;
        if let Some(inv) = inv {
            prop_assert!(inv.deadline <= Instant::now() + MAX_TIMEOUT);
            // A configuration that does not validate has nothing to stop.
            let raw = raw_of(&params);
            if word == "stop"
                && cloudha::params::Values::validate(agent.params, &raw).is_err()
            {
                prop_assert_eq!(reply.code, 0, "stop of an invalid configuration: {:?}", reply);
            }
        }
    }

    /// The Clusterware contract with a .conf file of arbitrary bytes (or a directory in its
    /// place) and arbitrary attributes.
    #[test]
    fn clusterware_calls(
        (agent, params) in agent_strategy().prop_flat_map(|a| (Just(a), params_for(a))),
        word in proptest::sample::select(CRS_WORDS),
        conf in prop_oneof![
            3 => Just(None),
            3 => proptest::collection::vec(any::<u8>(), 0..400).prop_map(Some),
            3 => "([a-z_]{1,12}=[ -~]{0,20}\n|#[ -~]{0,10}\n|\n|[ -~]{0,20}\n){0,8}"
                .prop_map(|s| Some(s.into_bytes())),
        ],
        conf_is_dir in proptest::bool::weighted(0.05),
        callers in proptest::collection::vec(
            (proptest::sample::select(CALLER_VARS), hostile()), 0..4),
    ) {
        let run = tempfile::tempdir().unwrap();
        let mut env = base_env(run.path());
        env.set("_CRS_NAME", "res1");
        let dir = run.path().join("conf");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("res1.conf");
        if conf_is_dir {
            std::fs::create_dir(&path).unwrap();
        } else if let Some(bytes) = &conf {
            std::fs::write(&path, bytes).unwrap();
        }
        for (k, v) in &params {
            env.set(&format!("_CRS_{}", k.to_ascii_uppercase()), v);
        }
        for (k, v) in &callers {
            env.set(k, v);
        }
        let (caller, reply, inv) = call(agent, word, &env);
        prop_assert_eq!(caller, Caller::Clusterware);
        check_reply(caller, word, &reply)?;
        let inv = inv.expect("Clusterware takes every action word");
        if inv.input_error.is_some() {
            match word {
                "stop" | "clean" | "abort" | "delete" => prop_assert_eq!(reply.code, 0),
                "check" => prop_assert_eq!(reply.code, 3, "{:?}", reply),
                "start" => {
                    prop_assert_eq!(reply.code, 1);
                    let line = reply.stdout.iter().find(|l| l.starts_with("CRS_ERROR:"));
                    prop_assert!(
                        line.is_some_and(|l| l.contains("res1.conf")),
                        "start must name the file: {:?}", reply
                    );
                }
                _ => {}
            }
        }
    }

    /// Every declared parameter of every agent through validation and build: never a panic,
    /// and anything refused before touching the host is a configuration error.
    #[test]
    fn declared_parameters(
        (agent, params) in agent_strategy().prop_flat_map(|a| (Just(a), params_for(a))),
    ) {
        let raw = raw_of(&params);
        if let Ok(values) = cloudha::params::Values::validate(agent.params, &raw)
            && let Err(e) = (agent.build)(&values)
        {
            prop_assert_eq!(
                e.kind, cloudha::error::Kind::Config,
                "{}: build refused with {:?}: {}", agent.name, e.kind, e.message
            );
        }
    }

    /// Caller timeouts: bounded, positive, never a panic, whatever the text.
    #[test]
    fn timeouts(raw in hostile(), scale in proptest::sample::select(vec![0.001, 1.0])) {
        if let Some(d) = contract::parse_timeout(&raw, scale) {
            prop_assert!(d >= contract::MIN_TIMEOUT && d <= MAX_TIMEOUT, "{d:?}");
        }
    }

    /// .conf parsing on arbitrary bytes: never a panic; a refusal names the file.
    #[test]
    fn conf_files(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.conf");
        std::fs::write(&path, &bytes).unwrap();
        let mut raw = Raw::default();
        match contract::read_conf(&path, &mut raw) {
            Ok(found) => prop_assert!(found),
            Err(e) => {
                prop_assert_eq!(e.kind, cloudha::error::Kind::Config);
                prop_assert!(e.message.contains("x.conf"), "{}", e.message);
            }
        }
    }
}

fn raw_of(params: &[(&'static str, String)]) -> Raw {
    let mut raw = Raw::default();
    for (k, v) in params {
        raw.set(k, v, Source::Env(format!("OCF_RESKEY_{k}")));
    }
    raw
}

/// Deterministic companions of the properties: the named defect classes, one case each.
#[test]
fn non_utf8_parameter_is_named() {
    let run = tempfile::tempdir().unwrap();
    let env = base_env(run.path()).with_invalid("OCF_RESKEY_ip");
    let agent = cloudha::agents::find("vip").unwrap();
    let (_, r, _) = call(agent, "start", &env);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(
        r.stderr[0].contains("OCF_RESKEY_ip is not valid UTF-8"),
        "{r:?}"
    );
    let (_, r, _) = call(agent, "stop", &env);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn forged_lines_and_floods_are_one_bounded_line() {
    let run = tempfile::tempdir().unwrap();
    let agent = cloudha::agents::find("vip").unwrap();
    for v in ["x\nocf-exit-reason:forged", &"y".repeat(100_000)] {
        let mut env = base_env(run.path());
        env.set("OCF_RESKEY_ip", v);
        let (_, r, _) = call(agent, "start", &env);
        assert_eq!(r.code, 6);
        assert_eq!(r.stderr.len(), 1, "{r:?}");
        assert!(r.stderr[0].len() < 400, "{} bytes", r.stderr[0].len());
        assert!(!r.stderr[0].trim_end().contains('\n'));
    }
}

#[test]
fn extreme_timeouts_fall_back_or_saturate() {
    let run = tempfile::tempdir().unwrap();
    let agent = cloudha::agents::find("vip").unwrap();
    for t in ["inf", "1e309", "-5", "NaN", "18446744073709551616", "0"] {
        let mut env = base_env(run.path());
        env.set("OCF_RESKEY_CRM_meta_timeout", t);
        let inv = Invocation::new(agent, "stop", &env, &[]).unwrap();
        let left = inv.deadline.saturating_duration_since(Instant::now());
        // Unusable values give the declared stop timeout, huge ones at most a day.
        assert!(left <= MAX_TIMEOUT, "{t}: {left:?}");
        assert!(left > Duration::from_secs(1), "{t}: {left:?}");
        assert_eq!(
            inv.warnings.len(),
            usize::from(t != "18446744073709551616"),
            "{t}"
        );
    }
}

#[test]
fn clusterware_broken_conf() {
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().join("conf");
    std::fs::create_dir_all(&dir).unwrap();
    let agent = cloudha::agents::find("vip").unwrap();
    let mut env = base_env(run.path());
    env.set("_CRS_NAME", "res1");
    let path = dir.join("res1.conf");
    for broken in [
        &b"ip=10.0.0.200\nthis is not a pair\n"[..],
        b"ip=10.0.0.200\nnic=\xff\xfe\n",
    ] {
        std::fs::write(&path, broken).unwrap();
        let code = |w| call(agent, w, &env).1;
        assert_eq!(code("check").code, 3);
        assert_eq!(code("stop").code, 0);
        assert_eq!(code("clean").code, 0);
        let start = code("start");
        assert_eq!(start.code, 1);
        assert!(start.stdout[0].contains("res1.conf:2"), "{start:?}");
    }
    // Not a file: a directory, and a FIFO that would hang a plain open().
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    assert_eq!(call(agent, "check", &env).1.code, 3);
    std::fs::remove_dir(&path).unwrap();
    nix_mkfifo(&path);
    let started = Instant::now();
    let r = call(agent, "start", &env).1;
    assert_eq!(r.code, 1);
    assert!(r.stdout[0].contains("not a regular file"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

fn nix_mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Degraded reaches each caller in its own words: OCF 190 with the reason, Clusterware's
/// check PARTIAL (4) with a CRS_WARNING line; the address is kept.
#[test]
fn degraded_is_190_for_ocf_and_partial_for_clusterware() {
    let run = tempfile::tempdir().unwrap();
    let agent = cloudha::agents::find("vip").unwrap();
    let host_fn = |_: Instant| -> cloudha::error::Result<Box<dyn Host>> {
        let h = lan();
        h.addrs.borrow_mut().push(cloudha::host::Addr {
            link: 2,
            ip: "10.0.0.200".parse().unwrap(),
            prefix: 24,
        });
        Ok(Box::new(h))
    };
    for crs in [false, true] {
        let mut env = base_env(run.path());
        if crs {
            env.set("_CRS_NAME", "vip-crs");
            for (k, v) in [("IP", "10.0.0.200"), ("NIC", "eth0"), ("CLOUD", "aws")] {
                env.set(&format!("_CRS_{k}"), v);
            }
            let state = run.path().join("crs").join("vip-crs.state");
            cloudha::files::write(&state, b"online\n").unwrap();
        } else {
            for (k, v) in [("ip", "10.0.0.200"), ("nic", "eth0"), ("cloud", "aws")] {
                env.set(&format!("OCF_RESKEY_{k}"), v);
            }
            env.set("OCF_RESKEY_CRM_meta_interval", "10000");
        }
        let cloud = FakeCloud::default().held_by("10.0.0.200", "eth0");
        cloud.fail(
            cloudha::error::Error::permission("UnauthorizedOperation"),
            1,
        );
        let stand = Stand {
            cloud: Some(&cloud),
            routes: None,
        };
        let word = if crs { "check" } else { "monitor" };
        let inv = Invocation::new(agent, word, &env, &[]).unwrap();
        let r = contract::answer(&inv, &host_fn, stand);
        if crs {
            assert_eq!(r.code, 4, "{r:?}");
            assert!(r.stdout[0].starts_with("CRS_WARNING: degraded:"), "{r:?}");
        } else {
            assert_eq!(r.code, 190, "{r:?}");
            assert!(
                r.stderr[0].starts_with("ocf-exit-reason:")
                    && r.stderr[0].contains("UnauthorizedOperation"),
                "{r:?}"
            );
        }
    }
}
