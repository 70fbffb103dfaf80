//! The checked-in meta-data must be exactly what the binary prints, and valid against both
//! schemas: the DTD ocf-tester uses (OCF 1.0 dialect) and the OCF 1.1 RelaxNG schema.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin;

fn metadata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("metadata")
}

fn generated(agent: &str, minor: &str) -> String {
    let out = Command::new(cargo_bin("cloudha"))
        .args([agent, "meta-data"])
        .env_clear()
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", minor)
        .output()
        .unwrap();
    assert!(out.status.success(), "meta-data failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn xmllint(args: &[&str], cwd: &Path) {
    let out = Command::new("xmllint")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("xmllint (libxml2-utils) must be installed: make deps");
    assert!(
        out.status.success(),
        "xmllint {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn checked_in_metadata_matches_binary_and_validates() {
    let dir = metadata_dir();
    let bless = std::env::var_os("CLOUDHA_BLESS").is_some();
    for agent in cloudha::agents::AGENTS {
        for (file, minor) in [
            (format!("{}.xml", agent.name), "1"),
            (format!("{}.ocf-1.0.xml", agent.name), "0"),
        ] {
            let path = dir.join(&file);
            let now = generated(agent.name, minor);
            if bless {
                std::fs::write(&path, &now).unwrap();
            }
            let kept = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                kept, now,
                "{file} drifted from the binary; regenerate with CLOUDHA_BLESS=1 cargo test --test metadata"
            );
        }
        xmllint(
            &["--noout", "--valid", &format!("{}.ocf-1.0.xml", agent.name)],
            &dir,
        );
        xmllint(
            &[
                "--noout",
                "--relaxng",
                "ocf-1.1-ra-api.rng",
                &format!("{}.xml", agent.name),
            ],
            &dir,
        );
    }
}

#[test]
fn dialects_differ_where_the_dtd_demands() {
    let v11 = generated("vip", "1");
    let v10 = generated("vip", "0");
    assert!(v11.contains("type=\"select\"") && v11.contains("reload-agent"));
    assert!(v11.contains("unique-group=\"address\"") && v11.contains("reloadable=\"1\""));
    assert!(
        !v10.contains("select") && !v10.contains("reload-agent") && !v10.contains("reloadable")
    );
    assert!(v10.contains("<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">"));
}

/// The long description is what `pcs resource describe`, `crm ra info` and `--help` show first:
/// a short paragraph saying what the agent does, then the rest, paragraphs kept apart by a
/// blank line in both dialects and in `--help`.
#[test]
fn long_descriptions_keep_their_paragraphs() {
    for agent in cloudha::agents::AGENTS {
        let want: Vec<String> = cloudha::docs::paragraphs(agent.longdesc).collect();
        assert!(want.len() >= 3, "{}: one block of text", agent.name);
        assert!(
            want[0].len() <= 320,
            "{}: the first paragraph says what it does, briefly: {}",
            agent.name,
            want[0]
        );
        for minor in ["1", "0"] {
            let xml = generated(agent.name, minor);
            let longdesc = xml
                .split("<longdesc lang=\"en\">")
                .nth(1)
                .and_then(|s| s.split("</longdesc>").next())
                .unwrap();
            let got: Vec<&str> = longdesc.split("\n\n").collect();
            assert_eq!(got.len(), want.len(), "{}: {longdesc}", agent.name);
            assert!(got.iter().all(|p| !p.contains('\n')), "{longdesc}");
        }
        let out = Command::new(cargo_bin("cloudha"))
            .args([agent.name, "--help"])
            .env_clear()
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let first = cloudha::docs::wrap(&want[0], 80).join("\n");
        assert!(
            help.starts_with(&format!("{first}\n\n")),
            "{}: --help starts with the first paragraph:\n{help}",
            agent.name
        );
        let description = help.split("\n\nUsage:").next().unwrap();
        assert!(
            description.lines().all(|l| l.chars().count() <= 80),
            "{description}"
        );
        assert_eq!(description.split("\n\n").count(), want.len());
    }
}
