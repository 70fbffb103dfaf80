//! Contract tests: drive the built binary exactly as Pacemaker (OCF) or Oracle Clusterware
//! would, for inputs that never reach the network, and check exit codes and messages.

use assert_cmd::Command;
use predicates::prelude::*;

/// The binary with a clean environment, as a cluster manager starts it.
fn ocf(pairs: &[(&str, &str)]) -> Command {
    let mut c = Command::cargo_bin("cloudha").unwrap();
    // No test may reach a real metadata service, whatever machine it runs on.
    c.env_clear()
        .env("OCF_RESOURCE_INSTANCE", "vip1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CLOUDHA_DMI_DIR", "/nonexistent");
    for (k, v) in pairs {
        c.env(format!("OCF_RESKEY_{k}"), v);
    }
    c
}

/// The command exited `code` and its stderr holds `text`.
fn says(run: assert_cmd::assert::Assert, code: i32, text: &str) {
    run.code(code).stderr(predicate::str::contains(text));
}

/// (parameters, action, exit code, words the reason must contain)
type Case = (
    &'static [(&'static str, &'static str)],
    &'static str,
    i32,
    &'static str,
);

#[rustfmt::skip]
const BAD_INPUTS: &[Case] = &[
    (&[], "start", 6, "required parameter 'ip' is not set"),
    (&[("ip", "banana")], "start", 6, "is not an IPv4 or IPv6 address"),
    (&[("ip", "10.0.0.256")], "start", 6, "is not an IPv4 or IPv6 address"),
    (&[("ip", "10.0.0.0"), ("cidr_netmask", "24")], "start", 6, "network address of 10.0.0.0/24"),
    (&[("ip", "10.0.0.255"), ("cidr_netmask", "24")], "start", 6, "broadcast address of 10.0.0.255/24"),
    (&[("ip", "fd00::"), ("cidr_netmask", "64")], "start", 6, "network address"),
    (&[("ip", "224.0.0.5")], "start", 6, "multicast"),
    (&[("ip", "ff02::1")], "start", 6, "multicast"),
    (&[("ip", "0.0.0.0")], "start", 6, "unspecified"),
    (&[("ip", "::")], "start", 6, "unspecified"),
    (&[("ip", "255.255.255.255")], "start", 6, "broadcast address"),
    (&[("ip", "127.0.0.2")], "start", 6, "loopback"),
    (&[("ip", "::1")], "start", 6, "loopback"),
    (&[("ip", "169.254.10.10")], "start", 6, "link-local"),
    (&[("ip", "fe80::10")], "start", 6, "link-local"),
    (&[("ip", "::ffff:10.0.0.1")], "start", 6, "IPv4-mapped"),
    (&[("ip", "10.0.0.5/24")], "start", 6, "put the prefix length in cidr_netmask"),
    (&[("ip", "10.0.0.5"), ("cidr_netmask", "0")], "start", 6, "between 1 and 128"),
    (&[("ip", "10.0.0.5"), ("cidr_netmask", "129")], "start", 6, "between 1 and 128"),
    (&[("ip", "10.0.0.5"), ("cidr_netmask", "33")], "start", 6, "too long for 10.0.0.5: at most 32"),
    (&[("ip", "10.0.0.5"), ("cidr_netmask", "255.255.255.0")], "start", 6, "not a whole number"),
    (&[("ip", "10.0.0.5"), ("nic", "averyveryverylongnic")], "start", 6, "longer than 15"),
    (&[("ip", "10.0.0.5"), ("nic", "eth0:1")], "start", 6, "not a valid interface name"),
    (&[("ip", "10.0.0.5"), ("nic", "eth 0")], "start", 6, "not a valid interface name"),
    (&[("ip", "10.0.0.5"), ("nic", "../eth0")], "start", 6, "not a valid interface name"),
    (&[("ip", "10.0.0.5"), ("cloud", "gcp")], "start", 6, "is not one of: auto, none"),
    (&[("ip", "10.0.0.5"), ("arp_count", "-1")], "start", 6, "between 0 and 100"),
    (&[("ip", "10.0.0.5"), ("arp_count", "many")], "start", 6, "not a whole number"),
    (&[("ip", "10.0.0.5"), ("arp_interval", "5")], "start", 6, "between 10 and 10000"),
    (&[("ip", "banana")], "monitor", 6, "is not an IPv4 or IPv6 address"),
    (&[("ip", "banana")], "validate-all", 6, "is not an IPv4 or IPv6 address"),
    (&[("ip", "10.0.0.5")], "frobnicate", 3, "action 'frobnicate' is not implemented"),
    (&[("ip", "10.0.0.5")], "promote", 3, "action 'promote' is not implemented"),
    (&[("ip", "10.0.0.5")], "migrate_to", 3, "is not implemented"),
];

#[test]
fn bad_inputs_get_the_right_code_and_a_reason() {
    assert!(BAD_INPUTS.len() >= 25);
    for (params, action, code, reason) in BAD_INPUTS {
        let out = ocf(params).args(["vip", action]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{params:?} {action}: expected {code}, stderr:\n{stderr}"
        );
        let reasons: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("ocf-exit-reason:"))
            .collect();
        assert_eq!(
            reasons.len(),
            1,
            "{params:?} {action}: one reason line:\n{stderr}"
        );
        assert!(
            reasons[0].contains(reason),
            "{params:?} {action}: reason {:?} lacks {reason:?}",
            reasons[0]
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn stop_with_an_invalid_configuration_succeeds() {
    // Failing a stop makes Pacemaker fence the node; nothing can run with this config.
    ocf(&[("ip", "banana")])
        .args(["vip", "stop"])
        .assert()
        .code(0)
        .stderr(
            predicate::str::contains("nothing to stop")
                .and(predicate::str::contains("ocf-exit-reason").not()),
        );
    ocf(&[]).args(["vip", "stop"]).assert().code(0);
}

#[test]
fn validate_level_0_does_not_touch_the_host() {
    ocf(&[("ip", "10.200.0.5"), ("nic", "no-such-nic")])
        .args(["vip", "validate-all"])
        .assert()
        .code(0);
}

#[test]
fn auto_cloud_on_a_cloud_uses_its_provider() {
    // DMI says EC2: cloud=auto is the AWS provider, which needs instance metadata (disabled
    // here, so no test ever reaches a metadata service) and says so before changing anything.
    // (lo holds no subnet of ip: cidr_netmask is given, else start refuses for that first.)
    let dmi = tempfile::tempdir().unwrap();
    std::fs::write(dmi.path().join("sys_vendor"), "Amazon EC2\n").unwrap();
    says(
        ocf(&[("ip", "10.200.0.5"), ("nic", "lo"), ("cidr_netmask", "32")])
            .env("CLOUDHA_DMI_DIR", dmi.path())
            .args(["vip", "start"])
            .assert(),
        5,
        "ocf-exit-reason:instance metadata is disabled (AWS_EC2_METADATA_DISABLED or",
    );
}

#[test]
fn symlink_dispatch_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("vip");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("cloudha"), &link).unwrap();
    // argv[0] picks the agent, argv[1] is the action, everything else is ignored.
    let mut c = Command::new(&link);
    c.env_clear().arg("meta-data").arg("ignored");
    c.assert()
        .code(0)
        .stdout(predicate::str::contains("<resource-agent name=\"vip\""));
    let mut c = Command::new(&link);
    c.env_clear();
    c.assert()
        .code(2)
        .stderr(predicate::str::contains("ocf-exit-reason:no action given"));
    let mut c = Command::new(&link);
    c.env_clear().arg("--help");
    c.assert()
        .code(0)
        .stdout(predicate::str::contains("cidr_netmask"));
}

#[test]
fn command_line() {
    let bin = || {
        let mut c = Command::cargo_bin("cloudha").unwrap();
        c.env_clear();
        c
    };
    bin()
        .arg("--version")
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with("cloudha "));
    bin()
        .arg("--help")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("vip"));
    bin().args(["vip", "--help"]).assert().code(0).stdout(
        predicate::str::contains("arp_interval").and(predicate::str::contains("_CRS_CIDR_NETMASK")),
    );
    bin().args(["nope", "start"]).assert().code(5);
    says(
        bin().args(["vip", "validate-all", "notkv"]).assert(),
        2,
        "expected name=value",
    );
    says(
        bin()
            .args(["vip", "validate-all", "ip=10.0.0.5", "bogus=1"])
            .assert(),
        6,
        "unknown parameter 'bogus' on the command line",
    );
    bin()
        .args(["vip", "validate-all", "ip=10.0.0.5"])
        .assert()
        .code(0);
}

/// Clusterware: `_CRS_NAME` set, parameters from `_CRS_<NAME>` or /etc/cloudha/<name>.conf.
fn crs(name: &str, conf_dir: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("cloudha").unwrap();
    c.env_clear()
        .env("_CRS_NAME", name)
        .env("CLOUDHA_CONFIG_DIR", conf_dir)
        .env("CLOUDHA_RUN_DIR", conf_dir.join("run"));
    c
}

#[test]
fn clusterware_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    // No parameters anywhere: the message says where they are looked for.
    crs("myrac02-vip.ec2", dir.path())
        .args(["vip", "start"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("CRS_ERROR: required parameter 'ip' is not set")
                .and(predicate::str::contains("myrac02-vip.ec2.conf (not found)")),
        );
    std::fs::write(
        dir.path().join("bad.conf"),
        "ip=10.0.0.5\nthis line is wrong\n",
    )
    .unwrap();
    crs("bad", dir.path())
        .args(["vip", "start"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("bad.conf:2: expected name=value"));
    std::fs::write(dir.path().join("typo.conf"), "ip=10.0.0.5\nnetmask=24\n").unwrap();
    crs("typo", dir.path())
        .args(["vip", "start"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("unknown parameter 'netmask'")
                .and(predicate::str::contains("typo.conf:2")),
        );
    // A check that cannot judge the configuration says UNKNOWN (3), not offline.
    crs("typo", dir.path())
        .args(["vip", "check"])
        .assert()
        .code(3);
    // Actions Clusterware may send that we have nothing to do for succeed.
    for action in ["abort", "modify", "delete", "action"] {
        crs("typo", dir.path())
            .args(["vip", action])
            .assert()
            .code(0);
    }
    // An invalid configuration has nothing to clean or stop.
    crs("typo", dir.path())
        .args(["vip", "clean"])
        .assert()
        .code(0);
    crs("typo", dir.path())
        .args(["vip", "stop"])
        .assert()
        .code(0);
}

#[test]
fn logging_debug_and_syslog() {
    // Debug lines only when asked for, tagged with agent and resource.
    let quiet = ocf(&[("ip", "10.0.0.5")])
        .args(["vip", "validate-all"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("DEBUG"));
    ocf(&[("ip", "10.0.0.5")])
        .env("HA_debug", "1")
        .args(["vip", "validate-all"])
        .assert()
        .code(0)
        .stderr(
            predicate::str::contains("vip(vip1)[").and(predicate::str::contains(
                ": DEBUG: 'validate-all' of vip 'vip1'",
            )),
        );
    // HA_LOGFACILITY sends the lines to syslog with the facility's priority (and no longer to
    // stderr: tests/logging.rs).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    ocf(&[("ip", "banana")])
        .env("HA_LOGFACILITY", "local5")
        .env("CLOUDHA_SYSLOG_SOCKET", &path)
        .args(["vip", "start"])
        .assert()
        .code(6);
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]);
    // local5 = 21, err = 3: 21 * 8 + 3
    assert!(line.starts_with("<171>vip(vip1)["), "{line}");
    assert!(line.contains("ERROR: start failed: ip='banana'"), "{line}");
}

/// Caller numbers at the edges of arithmetic never crash the binary (they did: exit 101, 134
/// in release), in stop least of all. The configuration is incomplete so that no action
/// reaches this host's network.
#[test]
fn hostile_caller_timeouts_never_crash() {
    let values = [
        "inf",
        "-inf",
        "NaN",
        "1e309",
        "-1",
        "0",
        "1e-320",
        "18446744073709551616",
        "99999999999999999999999999999",
        "-9223372036854775808",
        "0x10",
        " ",
        "ms",
    ];
    for agent in ["vip", "vxlan-fdb", "route-table"] {
        for v in values {
            for (action, code) in [("stop", 0), ("start", 6), ("monitor", 6)] {
                let out = ocf(&[])
                    .env("OCF_RESKEY_CRM_meta_timeout", v)
                    .env("OCF_RESKEY_CRM_meta_interval", v)
                    .env("OCF_CHECK_LEVEL", v)
                    .env("OCF_RA_VERSION_MINOR", v)
                    .args([agent, action])
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(
                    out.status.code(),
                    Some(code),
                    "{agent} {action} {v}: {stderr}"
                );
                assert!(!stderr.contains("panicked"), "{stderr}");
            }
        }
    }
    // Clusterware's timeouts are seconds, with the same bounds.
    for v in values {
        let out = ocf(&[])
            .env("_CRS_NAME", "r1")
            .env("CLOUDHA_CONFIG_DIR", "/nonexistent")
            .env("_CRS_STOP_TIMEOUT", v)
            .env("_CRS_SCRIPT_TIMEOUT", v)
            .args(["vip", "stop"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{v}");
    }
}

/// A parameter that is not UTF-8 is named, not read as "not set".
#[test]
fn non_utf8_parameter_is_refused_with_its_name() {
    use std::os::unix::ffi::OsStrExt;
    says(
        ocf(&[])
            .env("OCF_RESKEY_ip", std::ffi::OsStr::from_bytes(b"10.0.0.\xff"))
            .args(["vip", "start"])
            .assert(),
        6,
        "ocf-exit-reason:OCF_RESKEY_ip is not valid UTF-8",
    );
}

/// A newline in a value cannot write a second protocol line; a huge value is not echoed.
#[test]
fn values_cannot_forge_or_flood_the_reason() {
    for v in ["x\nocf-exit-reason:forged", &"z".repeat(100_000)] {
        let out = ocf(&[("ip", v)]).args(["vip", "start"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(6));
        let reasons: Vec<_> = stderr
            .lines()
            .filter(|l| l.starts_with("ocf-exit-reason:"))
            .collect();
        assert_eq!(reasons.len(), 1, "{stderr}");
        assert!(reasons[0].len() < 400, "{} bytes", reasons[0].len());
        assert!(stderr.len() < 2000, "{} bytes of stderr", stderr.len());
    }
}
