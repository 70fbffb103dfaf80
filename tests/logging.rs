//! Logging as resource-agents' ocf-shellfuncs does it: syslog instead of stderr with
//! HA_LOGFACILITY, HA_LOGFILE and HA_DEBUGLOG appended to, trace_ra's per-action trace file,
//! never blocked by a full syslog socket, and lines written for people (no Rust Debug text).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;

use cloudha::agents::{AGENTS, AgentDef};
use cloudha::cloud::fake::{FakeCloud, FakeRoutes};
use cloudha::contract::{self, Env, Invocation, Stand};
use cloudha::host::Host;
use cloudha::host::fake::FakeHost;

/// The binary as Pacemaker starts it: a clean environment, resource vip1, no terminal.
fn ocf(pairs: &[(&str, &str)]) -> Command {
    let mut c = Command::cargo_bin("cloudha").unwrap();
    c.env_clear()
        .env("OCF_RESOURCE_INSTANCE", "vip1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CLOUDHA_DMI_DIR", "/nonexistent")
        .timeout(Duration::from_secs(30));
    for (k, v) in pairs {
        c.env(format!("OCF_RESKEY_{k}"), v);
    }
    c
}

/// A syslog socket for the test hook, and the datagrams it received.
struct Sink {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Sink {
    fn new(dir: &Path) -> Sink {
        let path = dir.join("log.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_nonblocking(true).unwrap();
        Sink { sock, path }
    }
    fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
}

/// The `ocf-exit-reason:` lines of an agent's stderr.
fn reasons(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.starts_with("ocf-exit-reason:"))
        .count()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn syslog_instead_of_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::new(dir.path());
    let out = ocf(&[("ip", "banana")])
        .env("HA_LOGFACILITY", "daemon")
        .env("CLOUDHA_SYSLOG_SOCKET", &sink.path)
        .args(["vip", "start"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let got = sink.lines();
    // daemon = 3, err = 3: 3 * 8 + 3; the tag is ocf-shellfuncs' HA_LOGTAG.
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("<27>vip(vip1)["), "{got:?}");
    assert!(
        got[0].contains("]: ERROR: start failed: ip='banana'"),
        "{got:?}"
    );
    // stderr carries only the exit reason, as ocf_exit_reason does.
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr,
        "ocf-exit-reason:ip='banana' is not an IPv4 or IPv6 address\n"
    );

    // Debug lines go to syslog at debug priority (daemon.debug = 31), not to stderr.
    let out = ocf(&[("ip", "10.0.0.5")])
        .env("HA_LOGFACILITY", "daemon")
        .env("HA_debug", "1")
        .env("CLOUDHA_SYSLOG_SOCKET", &sink.path)
        .args(["vip", "validate-all"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr), "");
    let got = sink.lines();
    assert!(got.len() >= 2, "{got:?}");
    assert!(
        got.iter()
            .all(|l| l.starts_with("<31>vip(vip1)[") && l.contains("]: DEBUG: ")),
        "{got:?}"
    );
}

#[test]
fn stderr_when_syslog_is_off_or_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::new(dir.path());
    let missing = dir.path().join("missing.sock");
    for (facility, socket, warning) in [
        // "none" (Pacemaker's word) and empty mean no syslog.
        ("none", sink.path.as_path(), None),
        ("", sink.path.as_path(), None),
        (
            "bogus",
            sink.path.as_path(),
            Some("HA_LOGFACILITY='bogus' is not"),
        ),
        // No syslog daemon listening: the lines must not be lost.
        ("local5", missing.as_path(), None),
    ] {
        let out = ocf(&[("ip", "banana")])
            .env("HA_LOGFACILITY", facility)
            .env("HA_debug", "1")
            .env("CLOUDHA_SYSLOG_SOCKET", socket)
            .args(["vip", "start"])
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("vip(vip1)[") && stderr.contains("]: DEBUG: 'start' of vip"),
            "{facility}: {stderr}"
        );
        // The failure itself: its reason once, not also the line logged beside it
        // (ocf_exit_reason's `__ha_log --ignore-stderr`), or Pacemaker logs it twice.
        assert_eq!(reasons(&stderr), 1, "{facility}: {stderr}");
        assert!(
            !stderr.contains("ERROR: start failed"),
            "{facility}: {stderr}"
        );
        if let Some(w) = warning {
            assert!(stderr.contains(w), "{stderr}");
        }
        assert!(sink.lines().is_empty(), "{facility}");
    }
}

/// A person at a terminal reads the lines there, and syslog gets nothing (ocf-shellfuncs'
/// `tty` rule); trace_ra shows the debug lines on the terminal rather than in a file.
#[test]
fn on_a_terminal_lines_go_to_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::new(dir.path());
    let bin = assert_cmd::cargo::cargo_bin("cloudha");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{} vip start", bin.display()), "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("OCF_RESOURCE_INSTANCE", "vip1")
        .env("OCF_RESKEY_ip", "10.0.0.5")
        .env("OCF_RESKEY_cidr_netmask", "40")
        .env("OCF_TRACE_RA", "1")
        .env("HA_VARLIB", dir.path())
        .env("HA_LOGFACILITY", "daemon")
        .env("CLOUDHA_SYSLOG_SOCKET", &sink.path)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    let seen = text(&out.stdout);
    assert!(seen.contains("ocf-exit-reason:"), "{seen}");
    assert!(!seen.contains("ERROR: start failed"), "{seen}");
    assert!(seen.contains("]: DEBUG: 'start' of vip 'vip1'"), "{seen}");
    assert!(sink.lines().is_empty());
    assert!(!dir.path().join("trace_ra").exists());
}

#[test]
fn logfile_and_debuglog_are_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let logfile = dir.path().join("ha.log");
    let debuglog = dir.path().join("ha-debug.log");
    let run = |action: &str, ip: &str, debuglog: &Path| {
        ocf(&[("ip", ip)])
            .env("HA_LOGFILE", &logfile)
            .env("HA_DEBUGLOG", debuglog)
            .env("HA_debug", "1")
            .args(["vip", action])
            .output()
            .unwrap()
    };
    let out = run("start", "banana", &debuglog);
    assert_eq!(out.status.code(), Some(6));
    // HA_LOGFILE stands in for stderr: only the exit reason is left there.
    assert_eq!(
        text(&out.stderr),
        "ocf-exit-reason:ip='banana' is not an IPv4 or IPv6 address\n"
    );
    let log = std::fs::read_to_string(&logfile).unwrap();
    let dbg = std::fs::read_to_string(&debuglog).unwrap();
    // ocf-shellfuncs' formats: "`hadate` $HA_LOGTAG:    msg" and "$HA_LOGTAG:\t`hadate`msg",
    // hadate being `date "+%b %d %T "`.
    let stamp = |s: &str| {
        let b = s.as_bytes();
        s.len() == 16
            && b[0].is_ascii_uppercase()
            && b[3] == b' '
            && b[6] == b' '
            && b[9] == b':'
            && b[12] == b':'
            && b[15] == b' '
    };
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "debug lines stay out of HA_LOGFILE: {log}");
    let (date, rest) = lines[0].split_at(16);
    assert!(stamp(date), "{log}");
    assert!(
        rest.starts_with(" vip(vip1)[") && rest.contains("]:    ERROR: start failed: ip='banana'"),
        "{log}"
    );
    assert!(
        dbg.lines().any(|l| l.contains("]:\t")
            && stamp(&l[l.find('\t').unwrap() + 1..][..16])
            && l.contains("DEBUG: 'start' of vip 'vip1'")),
        "{dbg}"
    );
    assert!(dbg.contains("ERROR: start failed"), "{dbg}");
    // Created not world-readable.
    let mode = std::fs::metadata(&logfile).unwrap().permissions().mode();
    assert_eq!(mode & 0o007, 0, "{mode:o}");

    // Appended to, not rewritten; and once only when both name the same file.
    let out = run("start", "pear", &logfile);
    assert_eq!(out.status.code(), Some(6));
    let log = std::fs::read_to_string(&logfile).unwrap();
    assert!(
        log.contains("ip='banana'") && log.contains("ip='pear'"),
        "{log}"
    );
    assert_eq!(log.matches("ip='pear'").count(), 1, "{log}");
    assert!(log.contains("DEBUG: 'start' of vip"), "{log}");
}

fn trace_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn trace_ra_writes_one_file_per_action_where_resource_agents_do() {
    let dir = tempfile::tempdir().unwrap();
    let varlib = dir.path().join("varlib");
    for action in ["validate-all", "start"] {
        let out = ocf(&[
            ("ip", "10.0.0.5"),
            ("trace_ra", "1"),
            ("cidr_netmask", "40"),
        ])
        .env("HA_VARLIB", &varlib)
        .env("OCF_RESOURCE_TYPE", "vip")
        .args(["vip", action])
        .output()
        .unwrap();
        // Tracing is not debugging: the logs stay as they are.
        assert!(
            !text(&out.stderr).contains("DEBUG"),
            "{}",
            text(&out.stderr)
        );
    }
    let files = trace_files(&varlib.join("trace_ra").join("vip"));
    assert_eq!(files.len(), 2, "{files:?}");
    // <resource>.<action>.<date +%F.%T>
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names[0].starts_with("vip1.start.20"), "{names:?}");
    assert!(names[1].starts_with("vip1.validate-all.20"), "{names:?}");
    assert_eq!(names[0].len(), "vip1.start.".len() + 19, "{names:?}");
    let start = std::fs::read_to_string(&files[0]).unwrap();
    assert!(start.contains("trace of vip start for vip1"), "{start}");
    assert!(start.contains("DEBUG: 'start' of vip 'vip1'"), "{start}");
    assert!(start.contains("ERROR: start failed"), "{start}");
    assert!(
        start.contains("DEBUG: 'start' ends with exit code 6"),
        "{start}"
    );
    // Each line timestamped: "YYYY-MM-DD HH:MM:SS.mmm [pid] ".
    assert!(
        start
            .lines()
            .all(|l| l.as_bytes()[4] == b'-' && l.as_bytes()[19] == b'.'),
        "{start}"
    );
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o007, 0, "{mode:o}");

    // trace_file (or OCF_TRACE_FILE) names the file; trace_dir the directory (crmsh's
    // `crm resource trace`); OCF_TRACE_RA turns it on like the parameter.
    let file = dir.path().join("mine").join("trace.txt");
    ocf(&[("ip", "10.0.0.5"), ("trace_file", file.to_str().unwrap())])
        .env("OCF_TRACE_RA", "yes")
        .args(["vip", "validate-all"])
        .assert()
        .code(0);
    let t = std::fs::read_to_string(&file).unwrap();
    assert!(t.contains("DEBUG: 'validate-all' of vip 'vip1'"), "{t}");
    let tdir = dir.path().join("tdir");
    let out = ocf(&[
        ("ip", "10.0.0.5"),
        ("trace_ra", "1"),
        ("trace_dir", tdir.to_str().unwrap()),
    ])
    .env("OCF_TRACE_FILE", "relative/path")
    .args(["vip", "validate-all"])
    .output()
    .unwrap();
    assert!(
        text(&out.stderr).contains("neither a file descriptor (3-9) nor an absolute path"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(trace_files(&tdir.join("vip")).len(), 1);
    // trace_ra=0 writes nothing.
    let quiet = dir.path().join("quiet");
    ocf(&[("ip", "10.0.0.5"), ("trace_ra", "0")])
        .env("HA_VARLIB", &quiet)
        .args(["vip", "validate-all"])
        .assert()
        .code(0);
    assert!(!quiet.exists());
}

/// trace_ra and trace_file are declared parameters of every agent (pcs and crm configure
/// accept them only then), reloadable so that turning a trace on restarts nothing; under
/// Clusterware the attribute TRACE_RA turns it on like OCF_RESKEY_trace_ra.
#[test]
fn trace_ra_is_a_reloadable_parameter_of_every_agent_and_works_under_clusterware() {
    for a in cloudha::agents::AGENTS {
        for name in ["trace_ra", "trace_file"] {
            let p = a.params.iter().find(|p| p.name == name);
            assert!(p.is_some_and(|p| p.reloadable), "{}: {name}", a.name);
        }
        assert!(
            a.advertised()
                .any(|d| d.action == cloudha::action::Action::ReloadAgent),
            "{} must advertise reload-agent",
            a.name
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let varlib = dir.path().join("varlib");
    let mut c = Command::cargo_bin("cloudha").unwrap();
    c.env_clear()
        .env("_CRS_NAME", "myrac-vip")
        .env("_CRS_IP", "10.0.0.5")
        .env("_CRS_TRACE_RA", "1")
        .env("HA_VARLIB", &varlib)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CLOUDHA_DMI_DIR", "/nonexistent")
        .env("CLOUDHA_CONFIG_DIR", dir.path())
        .env("CLOUDHA_RUN_DIR", dir.path().join("run"))
        .args(["vip", "validate"])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(0);
    let files = trace_files(&varlib.join("trace_ra").join("vip"));
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("myrac-vip.validate"), "{name}");
}

/// A syslog daemon that does not read (its queue full) never holds an action: the lines it
/// does not take go to stderr instead.
#[test]
fn a_full_syslog_socket_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::new(dir.path());
    let filler = UnixDatagram::unbound().unwrap();
    filler.connect(&sink.path).unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut queued = 0;
    while filler.send(b"<31>filler").is_ok() {
        queued += 1;
        assert!(queued < 1_000_000, "the socket never filled");
    }
    let t = Instant::now();
    let out = ocf(&[("ip", "banana")])
        .env("HA_LOGFACILITY", "daemon")
        .env("HA_debug", "1")
        .env("CLOUDHA_SYSLOG_SOCKET", &sink.path)
        .timeout(Duration::from_secs(10))
        .args(["vip", "start"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("]: DEBUG: 'start' of vip"), "{stderr}");
    assert_eq!(reasons(&stderr), 1, "{stderr}");
    assert!(!stderr.contains("ERROR: start failed"), "{stderr}");
}

/// Shapes of Rust's Debug formatting that must never reach an admin's log.
fn debug_shapes(line: &str) -> Option<&'static str> {
    const WORDS: &[&str] = &[
        "Some(",
        "None",
        "Ok(",
        "Err(",
        "Ocf",
        "Clusterware {",
        "Duration",
        "PathBuf",
    ];
    if let Some(w) = WORDS.iter().find(|w| line.contains(**w)) {
        return Some(w);
    }
    // `caller Ocf`, `Validate vip`: an enum variant printed with {:?}.
    const VARIANTS: &[&str] = &[
        "Validate",
        "MetaData",
        "ReloadAgent",
        "Monitor",
        "Start",
        "Stop",
        "Clean",
        "Abort",
        "Ignored",
    ];
    if line
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| VARIANTS.contains(&w))
    {
        return Some("an enum variant");
    }
    // A struct dump: `Name { field: ...`.
    let b: Vec<&str> = line.split_whitespace().collect();
    if b.windows(3).any(|w| {
        w[0].starts_with(|c: char| c.is_ascii_uppercase()) && w[1] == "{" && w[2].ends_with(':')
    }) {
        return Some("a struct");
    }
    // A Debug-quoted string ("...") or a Duration's Debug ("1.5s", "300ms").
    if line.contains('"') {
        return Some("a double quote");
    }
    for w in line.split(|c: char| c.is_whitespace() || c == ',' || c == ')' || c == ';') {
        let unit = w.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        if unit.len() < w.len() && ["s", "ms", "µs", "ns"].contains(&unit) {
            return Some("a Duration");
        }
    }
    None
}

/// Each line with a Debug shape, said with the shape.
fn with_debug_shapes<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    lines
        .into_iter()
        .filter_map(|l| debug_shapes(l).map(|why| format!("{why}: {l}")))
        .collect()
}

#[test]
fn the_debug_shapes_check_can_fail() {
    for bad in [
        "vip(x)[1]: DEBUG: Validate vip (caller Ocf, probe false, check level 0, 17.9s left)",
        "federation: e; retrying in 250ms",
        "got Some(3)",
        "Paths { dmi_dir: \"/sys\" }",
    ] {
        assert!(debug_shapes(bad).is_some(), "{bad}");
    }
    assert_eq!(
        debug_shapes(
            "vip(x)[1]: DEBUG: 'start' of vip 'x': called by Oracle Clusterware, check level \
             0, 17.9 s to the deadline"
        ),
        None
    );
}

/// A node as the unit tests know it: lo, eth0 10.0.0.1/24, eth1 192.168.5.1/24.
fn lan() -> FakeHost {
    FakeHost::default()
        .with_link(1, "lo", Some(("127.0.0.1", 8)))
        .with_link(2, "eth0", Some(("10.0.0.1", 24)))
        .with_link(3, "eth1", Some(("192.168.5.1", 24)))
}

/// Working configurations against [`lan`] and the fake clouds.
fn configs(agent: &AgentDef) -> Vec<Vec<(&'static str, &'static str)>> {
    match agent.name {
        "vip" => vec![
            vec![("ip", "10.0.0.200"), ("nic", "eth0"), ("cloud", "none")],
            vec![("ip", "10.0.0.200"), ("nic", "eth0"), ("cloud", "aws")],
            vec![("ip", "10.0.0.201"), ("nic", "eth0"), ("cloud", "aws")],
        ],
        "vxlan-fdb" => vec![vec![
            ("vni", "100"),
            ("dev", "eth0"),
            ("local", "10.0.0.1"),
            ("peers", "10.0.0.2,10.0.0.3"),
        ]],
        "route-table" => vec![vec![
            ("ip", "192.168.100.1"),
            ("route_tables", "rtb-1,rtb-2"),
            ("nic", "eth0"),
        ]],
        _ => vec![vec![]],
    }
}

/// Every agent's actions, in-process against the fakes, with debug lines on and both callers:
/// no line an admin reads carries Rust Debug text.
#[test]
fn log_lines_are_written_for_people() {
    let run = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for agent in AGENTS {
        for params in configs(agent) {
            for crs in [false, true] {
                for (word, interval) in [
                    ("validate-all", "0"),
                    ("monitor", "0"),
                    ("start", "0"),
                    ("monitor", "10000"),
                    ("reload-agent", "0"),
                    ("stop", "0"),
                    ("stop", "0"),
                    ("bogus", "0"),
                ] {
                    let mut env = Env::from_pairs([
                        ("CLOUDHA_RUN_DIR", run.path().display().to_string()),
                        ("CLOUDHA_DMI_DIR", "/nonexistent".to_string()),
                        ("OCF_RESOURCE_INSTANCE", "r1".to_string()),
                        ("OCF_CHECK_LEVEL", "10".to_string()),
                        ("OCF_RESKEY_CRM_meta_interval", interval.to_string()),
                    ]);
                    let word = if crs {
                        env.set("_CRS_NAME", "r1");
                        env.set("CLOUDHA_CONFIG_DIR", "/nonexistent");
                        match word {
                            "monitor" => "check",
                            "validate-all" | "reload-agent" => "clean",
                            w => w,
                        }
                    } else {
                        word
                    };
                    for (k, v) in &params {
                        if crs {
                            env.set(&format!("_CRS_{}", k.to_ascii_uppercase()), v);
                        } else {
                            env.set(&format!("OCF_RESKEY_{k}"), v);
                        }
                    }
                    let who = cloudha::log::Who {
                        agent: agent.name,
                        resource: "r1",
                        caller: contract::Caller::detect(&env),
                        action: Some(word),
                    };
                    let (dispatch, lines) = cloudha::log::capture(who);
                    tracing::dispatcher::with_default(&dispatch, || {
                        let host_fn = |_: Instant| -> cloudha::error::Result<Box<dyn Host>> {
                            Ok(Box::new(lan()))
                        };
                        let cloud = FakeCloud::default().held_by("10.0.0.200", "eth1");
                        let routes =
                            FakeRoutes::new(&[("rtb-1", Some("eni-other")), ("rtb-2", None)]);
                        let stand = Stand {
                            cloud: Some(&cloud),
                            routes: Some(&routes),
                        };
                        if let Ok(inv) = Invocation::new(agent, word, &env, &[]) {
                            contract::answer(&inv, &host_fn, stand);
                        }
                    });
                    all.extend(lines.lock().unwrap().drain(..));
                }
            }
        }
    }
    // The sweep reached the actions: informational lines and debug lines were written.
    assert!(all.iter().any(|l| l.contains(": INFO: ")), "{all:#?}");
    assert!(all.iter().filter(|l| l.contains(": DEBUG: ")).count() > 50);
    let bad = with_debug_shapes(all.iter().map(String::as_str));
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The binary itself (caller setup, the refusal path, fence_cloudha) with debug lines on.
#[test]
fn binary_lines_are_written_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = String::new();
    for (agent, action, params) in [
        ("vip", "validate-all", &[("ip", "10.0.0.5")][..]),
        ("vip", "start", &[("ip", "banana")][..]),
        ("vip", "stop", &[("ip", "banana")][..]),
        ("vip", "bogus", &[][..]),
        ("route-table", "validate-all", &[][..]),
        ("vxlan-fdb", "stop", &[][..]),
    ] {
        for crs in [false, true] {
            let mut c = ocf(params);
            if crs {
                c.env("_CRS_NAME", "r1")
                    .env("CLOUDHA_CONFIG_DIR", dir.path())
                    .env("CLOUDHA_RUN_DIR", dir.path());
            }
            let out = c
                .env("HA_debug", "1")
                .args([agent, action])
                .output()
                .unwrap();
            seen += &text(&out.stderr);
            seen += &text(&out.stdout);
        }
    }
    assert!(seen.contains(": DEBUG: "), "{seen}");
    let bad = with_debug_shapes(seen.lines().filter(|l| !l.starts_with("<?xml")));
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Logging variables an admin got wrong (a directory, a FIFO nobody reads, a full disk, a
/// newline) never hold the action, crash it or forge a line; the lines then go to stderr.
#[test]
fn hostile_logging_variables_never_block_crash_or_forge() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let d = dir.path().to_str().unwrap();
    let f = fifo.to_str().unwrap();
    let forged = "x\nocf-exit-reason:forged";
    for (var, value) in [
        ("HA_LOGFILE", d),
        ("HA_LOGFILE", f),
        ("HA_LOGFILE", "/dev/full"),
        ("HA_DEBUGLOG", f),
        ("HA_LOGTAG", forged),
        ("HA_DATEFMT", "%n%nocf-exit-reason:forged"),
        ("HA_LOGFACILITY", forged),
        ("OCF_TRACE_FILE", f),
        ("OCF_TRACE_FILE", "/dev/full"),
        ("OCF_TRACE_FILE", forged),
    ] {
        let t = Instant::now();
        let out = ocf(&[("ip", "banana")])
            .env("HA_debug", "1")
            .env("OCF_TRACE_RA", "1")
            .env("HA_VARLIB", dir.path().join("varlib"))
            .env("HA_LOGFILE", dir.path().join("ha.log"))
            .env(var, value)
            .timeout(Duration::from_secs(10))
            .args(["vip", "start"])
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{var}={value}: {stderr}");
        assert!(t.elapsed() < Duration::from_secs(5), "{var}={value}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(reasons(&stderr), 1, "{var}={value}: {stderr}");
        let log = std::fs::read_to_string(dir.path().join("ha.log")).unwrap_or_default();
        assert!(
            !log.lines().any(|l| l.starts_with("ocf-exit-reason:")),
            "{var}: {log}"
        );
        // The reason reached the caller above; the line beside it never doubles it there.
        assert!(
            !stderr.contains("ERROR: start failed"),
            "{var}={value}: {stderr}"
        );
    }
}
