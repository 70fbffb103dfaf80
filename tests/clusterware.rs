//! A Clusterware harness: drives the binary exactly as Oracle Clusterware's script agent does
//! (argv[1] = action, every resource attribute exported as `_CRS_<ATTRIBUTE>`, the action
//! killed at its timeout, the exit code read as the check state), inside a network namespace
//! this test creates. Needs root (CI runs as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;

/// A namespace with a veth pair inside it: `ha0` carries 10.66.0.1/24, `ha1` is its peer
/// (taking `ha1` down removes `ha0`'s carrier).
struct Netns(String);

fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip").args(args).output().expect("iproute2");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Netns {
    fn new(tag: &str) -> Netns {
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the Clusterware harness needs root"
        );
        let name = format!("cha-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        ip(&[
            "-n", &name, "link", "add", "ha0", "type", "veth", "peer", "name", "ha1",
        ]);
        ip(&["-n", &name, "addr", "add", "10.66.0.1/24", "dev", "ha0"]);
        for l in ["ha0", "ha1", "lo"] {
            ip(&["-n", &name, "link", "set", l, "up"]);
        }
        Netns(name)
    }
    fn has(&self, addr: &str) -> bool {
        let out = ip(&["-n", &self.0, "-o", "addr", "show"]);
        String::from_utf8_lossy(&out.stdout).contains(&format!(" {addr}/"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// One Clusterware resource: its attributes and where its state and config live.
struct Resource<'a> {
    ns: &'a Netns,
    attrs: Vec<(String, String)>,
    dir: PathBuf,
}

/// What the harness saw of one action.
struct Run {
    code: i32,
    stdout: String,
    took: Duration,
}

impl<'a> Resource<'a> {
    /// The seed's registration: a plain cluster_resource with no custom attributes.
    fn seed(ns: &'a Netns, dir: &Path) -> Self {
        let attrs = [
            ("NAME", "myrac02-vip.ec2"),
            ("TYPE", "cluster_resource"),
            ("CHECK_INTERVAL", "10"),
            ("ACTION_SCRIPT", "/usr/lib/ocf/resource.d/cloudha/vip"),
            ("PLACEMENT", "favored"),
            ("HOSTING_MEMBERS", "myracnode01 myracnode02"),
            ("AUTO_START", "always"),
            (
                "START_DEPENDENCIES",
                "hard(intermediate:ora.myracnode02.vip)",
            ),
            ("RELOCATE_BY_DEPENDENCY", "1"),
            (
                "STOP_DEPENDENCIES",
                "hard(intermediate:ora.myracnode02.vip)",
            ),
            ("SCRIPT_TIMEOUT", "60"),
            ("START_TIMEOUT", "0"),
            ("STOP_TIMEOUT", "0"),
        ];
        Resource {
            ns,
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir: dir.to_path_buf(),
        }
    }

    fn set(&mut self, k: &str, v: &str) {
        self.attrs.retain(|(a, _)| a != k);
        self.attrs.push((k.to_string(), v.to_string()));
    }

    /// The seed's registration with these attributes set (custom attributes or `-env`).
    fn seed_with(ns: &'a Netns, dir: &Path, attrs: &[(&str, &str)]) -> Self {
        let mut r = Resource::seed(ns, dir);
        for (k, v) in attrs {
            r.set(k, v);
        }
        r
    }

    fn run(&self, action: &str) -> Run {
        // The script agent runs the ACTION_SCRIPT itself: argv[0] is the link named after the
        // agent, argv[1] the action, no PATH or working directory to rely on.
        let link = self.dir.join("vip");
        if !link.exists() {
            std::os::unix::fs::symlink(cargo_bin("cloudha"), &link).unwrap();
        }
        let timeout_attr = format!("{}_TIMEOUT", action.to_uppercase());
        let secs = |k: &str| {
            self.attrs
                .iter()
                .find(|(a, _)| a == k)
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .filter(|t| *t > 0)
        };
        let timeout = secs(&timeout_attr)
            .or_else(|| secs("SCRIPT_TIMEOUT"))
            .unwrap_or(60);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns.0])
            .arg(&link)
            .arg(action)
            .env_clear()
            .env("CLOUDHA_CONFIG_DIR", &self.dir)
            .env("CLOUDHA_RUN_DIR", self.dir.join("run"))
            .env("CLOUDHA_DMI_DIR", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.attrs {
            cmd.env(format!("_CRS_{k}"), v);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        // Clusterware kills an action at its timeout; so does the harness.
        let code = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st.code().unwrap_or(-1);
            }
            if started.elapsed() > Duration::from_secs(timeout) {
                let _ = child.kill();
                break -9;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = child.wait_with_output().unwrap();
        Run {
            code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            took: started.elapsed(),
        }
    }
}

const ONLINE: i32 = 0;
const UNPLANNED_OFFLINE: i32 = 1;
const PLANNED_OFFLINE: i32 = 2;
const FAILED: i32 = 5;

#[test]
fn seed_registration_with_a_conf_file_full_lifecycle() {
    let ns = Netns::new("seed");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("myrac02-vip.ec2.conf"),
        "# the seed's VIP\nip=10.66.0.50\ncidr_netmask = 24\ncloud=\"none\"\narp_count=1\n",
    )
    .unwrap();
    let r = Resource::seed(&ns, dir.path());

    assert_eq!(
        r.run("check").code,
        PLANNED_OFFLINE,
        "never started: planned offline"
    );
    let s = r.run("start");
    assert_eq!(s.code, 0, "{}", s.stdout);
    assert!(
        s.stdout
            .contains("CRS_PROGRESS: adding 10.66.0.50/24 to ha0"),
        "{}",
        s.stdout
    );
    assert!(ns.has("10.66.0.50"));
    assert_eq!(r.run("start").code, 0, "start is idempotent");
    assert_eq!(r.run("check").code, ONLINE);

    assert_eq!(r.run("stop").code, 0);
    assert!(!ns.has("10.66.0.50"));
    assert_eq!(r.run("check").code, PLANNED_OFFLINE, "after a clean stop");
    assert_eq!(r.run("stop").code, 0, "stop is idempotent");

    assert_eq!(r.run("start").code, 0);
    // The address vanishes behind Clusterware's back.
    ip(&["-n", &ns.0, "addr", "del", "10.66.0.50/24", "dev", "ha0"]);
    let c = r.run("check");
    assert_eq!(c.code, UNPLANNED_OFFLINE, "{}", c.stdout);
    assert!(c.stdout.contains("CRS_WARNING:"), "{}", c.stdout);
    assert_eq!(r.run("clean").code, 0);
    assert_eq!(r.run("check").code, PLANNED_OFFLINE, "after clean");
}

#[test]
fn custom_attributes_override_the_conf_file() {
    let ns = Netns::new("attr");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r1.conf"), "ip=10.66.0.60\ncloud=none\n").unwrap();
    // A type with custom attributes (crsctl add type ... -attr "ATTRIBUTE=IP,...") or
    // `crsctl start resource -env` sets _CRS_IP, which wins over the file.
    let r = Resource::seed_with(
        &ns,
        dir.path(),
        &[
            ("NAME", "r1"),
            ("IP", "10.66.0.61"),
            ("CIDR_NETMASK", "24"),
            ("ARP_COUNT", "0"),
        ],
    );
    assert_eq!(r.run("start").code, 0);
    assert!(ns.has("10.66.0.61") && !ns.has("10.66.0.60"));
    assert_eq!(r.run("check").code, ONLINE);
    assert_eq!(r.run("stop").code, 0);
    assert!(!ns.has("10.66.0.61"));
}

#[test]
fn deadlines_come_from_the_action_timeouts() {
    let ns = Netns::new("tmo");
    let dir = tempfile::tempdir().unwrap();
    let mut r = Resource::seed_with(
        &ns,
        dir.path(),
        &[
            ("NAME", "slow"),
            ("IP", "10.66.0.70"),
            ("CLOUD", "none"),
            ("ARP_COUNT", "50"),
            ("ARP_INTERVAL", "200"),
        ],
    );
    // 50 announcements 200 ms apart would take 10 s; START_TIMEOUT=2 bounds the start.
    r.set("START_TIMEOUT", "2");
    let s = r.run("start");
    assert_eq!(s.code, 0, "{}", s.stdout);
    assert!(s.took < Duration::from_secs(2), "start took {:?}", s.took);
    assert!(
        s.stdout.contains("CRS_WARNING: stopped announcing"),
        "{}",
        s.stdout
    );
    // START_TIMEOUT=0 falls back to SCRIPT_TIMEOUT.
    assert_eq!(r.run("stop").code, 0);
    r.set("START_TIMEOUT", "0");
    r.set("SCRIPT_TIMEOUT", "1");
    let s = r.run("start");
    assert_eq!(s.code, 0, "{}", s.stdout);
    assert!(s.took < Duration::from_secs(1), "start took {:?}", s.took);
    assert_eq!(r.run("stop").code, 0);
}

#[test]
fn dead_link_is_failed_and_clean_still_succeeds() {
    let ns = Netns::new("dead");
    let dir = tempfile::tempdir().unwrap();
    let r = Resource::seed_with(
        &ns,
        dir.path(),
        &[
            ("NAME", "dead"),
            ("IP", "10.66.0.80"),
            ("CLOUD", "none"),
            ("ARP_COUNT", "0"),
        ],
    );
    assert_eq!(r.run("start").code, 0);
    ip(&["-n", &ns.0, "link", "set", "ha1", "down"]);
    let c = r.run("check");
    assert_eq!(c.code, FAILED, "{}", c.stdout);
    assert!(
        c.stdout
            .contains("CRS_ERROR: 10.66.0.80 is configured but unusable"),
        "{}",
        c.stdout
    );
    // A start on the dead link fails without changing anything.
    assert_eq!(r.run("stop").code, 0);
    assert_eq!(r.run("start").code, 1);
    assert!(!ns.has("10.66.0.80"));
    // clean succeeds on the half-broken resource and removes the address.
    ip(&["-n", &ns.0, "addr", "add", "10.66.0.80/24", "dev", "ha0"]);
    assert_eq!(r.run("clean").code, 0);
    assert!(!ns.has("10.66.0.80"));
}

/// A .conf file that cannot be used (garbled, not text, a directory, a FIFO): check cannot
/// tell (UNKNOWN, so CRS retries instead of acting), stop and clean succeed (nothing can have
/// been started with it), start fails naming the file and line. A running address is left
/// alone by the check.
#[test]
fn broken_conf_file_answers_the_clusterware_way() {
    const UNKNOWN: i32 = 3;
    let ns = Netns::new("badconf");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("myrac02-vip.ec2.conf");
    std::fs::write(
        &conf,
        "ip=10.66.0.51\ncidr_netmask=24\ncloud=none\narp_count=0\n",
    )
    .unwrap();
    let r = Resource::seed(&ns, dir.path());
    assert_eq!(r.run("start").code, 0);
    for (what, line) in [
        (&b"ip=10.66.0.51\nthis line has no equals sign\n"[..], ":2:"),
        (b"ip=10.66.0.51\ncloud=n\xffne\n", ":2:"),
    ] {
        std::fs::write(&conf, what).unwrap();
        let c = r.run("check");
        assert_eq!(c.code, UNKNOWN, "{}", c.stdout);
        assert!(ns.has("10.66.0.51"), "a check never touches the address");
        let s = r.run("start");
        assert_eq!(s.code, 1);
        assert!(
            s.stdout.contains("CRS_ERROR: ")
                && s.stdout.contains(&format!("myrac02-vip.ec2.conf{line}")),
            "{}",
            s.stdout
        );
        assert_eq!(s.stdout.matches("CRS_ERROR:").count(), 1, "{}", s.stdout);
    }
    std::fs::remove_file(&conf).unwrap();
    std::fs::create_dir(&conf).unwrap();
    assert_eq!(r.run("check").code, UNKNOWN);
    assert_eq!(r.run("clean").code, 0);
    std::fs::remove_dir(&conf).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&conf)
            .status()
            .unwrap()
            .success()
    );
    let s = r.run("stop");
    assert_eq!(s.code, 0, "{}", s.stdout);
    assert!(
        s.took < Duration::from_secs(5),
        "a FIFO must not hang the action"
    );
}
