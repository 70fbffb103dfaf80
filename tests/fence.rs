//! fence_cloudha as the fencer and people call it, for inputs that never reach a cloud: the
//! meta-data against fence-agents' own schema, the exit codes, one reason line.

use std::path::Path;
use std::process::{Command, Output};

/// The binary under the fence agent's name, with a clean environment that reaches no cloud.
fn fence(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let link = dir.join("fence_cloudha");
    if !link.exists() {
        std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("cloudha"), &link).unwrap();
    }
    assert_cmd::Command::new(&link)
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CLOUDHA_DMI_DIR", "/nonexistent")
        .args(args)
        .write_stdin(stdin)
        .output()
        .unwrap()
}

const RNG: &str = "/usr/share/cluster/relaxng/metadata.rng";

#[test]
fn metadata_validates_against_fence_agents_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = fence(dir.path(), &["-o", "metadata"], "");
    assert_eq!(out.status.code(), Some(0));
    let xml = dir.path().join("fence_cloudha.xml");
    std::fs::write(&xml, &out.stdout).unwrap();
    // The same text from stdin, the fencer's way.
    let stdin = fence(dir.path(), &[], "action=metadata\n");
    assert_eq!(stdin.stdout, out.stdout);
    assert!(
        Path::new(RNG).exists(),
        "{RNG} missing: install fence-agents (make deps)"
    );
    let check = Command::new("xmllint")
        .args(["--noout", "--relaxng", RNG])
        .arg(&xml)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn bad_inputs_fail_with_one_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (args, stdin, words) in [
        (&["--bogus"][..], "", "unknown option '--bogus'"),
        (&["-o"][..], "", "needs a value"),
        (&[][..], "action=explode\n", "is not one of: reboot, off"),
        (&[][..], "action=off\npower_timeout=0\n", "power_timeout"),
        (
            &[][..],
            "action=status\ncloud=aws\n",
            "set plug (the instance id) or nodename",
        ),
        (
            &[][..],
            "action=off\nplug=i-1\ncloud=gcp\n",
            "is not one of: auto, aws, oci",
        ),
        (
            &[][..],
            "action=status\nplug=i-1\n",
            "fences on AWS and OCI",
        ),
    ] {
        let out = fence(dir.path(), args, stdin);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?} {stdin:?}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("ERROR:")).collect();
        assert_eq!(errors.len(), 1, "{args:?} {stdin:?}: {err}");
        assert!(errors[0].contains(words), "{args:?} {stdin:?}: {err}");
    }
}

#[test]
fn help_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = fence(dir.path(), &["--help"], "");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "-o, --action",
        "-n, --plug",
        "--power-timeout",
        "--delay",
        "--nodename",
    ] {
        assert!(text.contains(opt), "{opt} missing from --help:\n{text}");
    }
    let out = fence(dir.path(), &["-V"], "");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("fence_cloudha "));
}
