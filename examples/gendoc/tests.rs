//! What the packages ship from gendoc: pages that groff renders without a warning, the same
//! bytes for the same SOURCE_DATE_EPOCH, every variable and policy file where an admin looks,
//! and completions that load and answer in bash (zsh and fish when installed).

use std::path::{Path, PathBuf};
use std::process::Command;

use cloudha::agents::AGENTS;
use cloudha::docs::{ENVIRONMENT, POLICY_FILES, paragraphs};

use super::{completions, man, man_date, write_all};

fn written(date: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    write_all(&out, date).unwrap();
    (dir, out)
}

fn pages(out: &Path) -> Vec<PathBuf> {
    let mut p: Vec<PathBuf> = std::fs::read_dir(out.join("man"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    p.sort();
    p
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (make deps installs what the tests need)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `s` as roff source carries it (dashes escaped).
fn roffed(s: &str) -> String {
    s.replace('-', "\\-")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The page as man shows it on an 80-column terminal.
fn rendered(page: &Path) -> String {
    let (ok, text, err) = run(Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("LC_ALL", "C.UTF-8")
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("MAN_KEEP_FORMATTING", "")
        .env_remove("MANROFFOPT"));
    assert!(ok && err.trim().is_empty(), "{}: {err}", page.display());
    text
}

#[test]
fn every_page_renders_without_warnings() {
    let (_dir, out) = written("2025-12-06");
    let pages = pages(&out);
    assert_eq!(pages.len(), AGENTS.len() + 2);
    for page in &pages {
        // groff-base: -ww all warnings, -z no output; any warning fails.
        let (ok, _, err) = run(Command::new("groff")
            .args(["-man", "-ww", "-z", "-Tutf8"])
            .arg(page));
        assert!(ok && err.is_empty(), "{}: {err}", page.display());
        rendered(page);
    }
}

#[test]
fn the_date_comes_from_source_date_epoch_and_nothing_else() {
    assert_eq!(man_date(None).unwrap(), "");
    assert_eq!(man_date(Some("0")).unwrap(), "1970-01-01");
    assert_eq!(man_date(Some("951825600")).unwrap(), "2000-02-29");
    assert_eq!(man_date(Some(" 1764979200\n")).unwrap(), "2025-12-06");
    for bad in ["", "yesterday", "1.5", "99999999999999999999"] {
        assert!(man_date(Some(bad)).is_err(), "{bad:?}");
    }
    // Reproducible: the same epoch gives the same bytes, through the real program.
    let date = man_date(Some("1764979200")).unwrap();
    let (_a, first) = written(&date);
    let (_b, second) = written(&date);
    for (x, y) in pages(&first).iter().zip(pages(&second)) {
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(&y).unwrap());
        let text = std::fs::read_to_string(x).unwrap();
        let th = text.lines().find(|l| l.starts_with(".TH ")).unwrap();
        assert!(th.contains(" 2025-12-06 "), "{th}");
    }
    let (_c, other) = written(&man_date(Some("0")).unwrap());
    let vip = |d: &Path| std::fs::read_to_string(d.join("man/ocf_cloudha_vip.7")).unwrap();
    assert_ne!(vip(&first), vip(&other));
    assert_eq!(
        vip(&first).replace("2025-12-06", "1970-01-01"),
        vip(&other),
        "only the date differs"
    );
}

#[test]
fn cloudha_8_lists_the_environment_and_every_policy_file() {
    let page = man::cloudha("");
    let env = page.split(".SH ENVIRONMENT").nth(1).unwrap();
    let env = env.split("\n.SH ").next().unwrap();
    for v in ENVIRONMENT {
        for n in v.names {
            // `<name>` parts are set in italics: look for the literal part before them.
            let literal = n.split('<').next().unwrap();
            assert!(
                env.contains(&format!("\\fB{literal}")),
                "{n} missing from ENVIRONMENT"
            );
        }
    }
    for must in [
        "HA_debug",
        "HA_LOGFACILITY",
        "HA_LOGFILE",
        "HA_DEBUGLOG",
        "HA_VARLIB",
        "OCF_TRACE_RA",
        "OCF_RESKEY_trace_ra",
        "CLOUDHA_CONFIG_DIR",
        "AWS_EC2_METADATA_DISABLED",
        "HTTPS_PROXY",
        "NO_PROXY",
    ] {
        assert!(env.contains(must), "{must}");
    }
    for f in POLICY_FILES {
        assert!(
            page.contains(&roffed(f.file)),
            "{} missing from cloudha(8)",
            f.file
        );
    }
    // The clap part: the option and both ways of calling.
    assert!(
        page.contains("\\-\\-version")
            && page.contains("/usr/lib/ocf/resource.d/cloudha/<agent> <action>")
    );
}

/// Every variable the code reads (a literal passed to an environment lookup) is documented.
#[test]
fn every_variable_the_code_reads_is_documented() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let documented: Vec<&str> = ENVIRONMENT
        .iter()
        .flat_map(|v| v.names.iter().copied())
        .collect();
    let mut files = vec![src];
    let mut seen = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|e| e != "rs")
            || p.starts_with(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/docs"))
        {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        // Code before the unit tests; lab-only hooks (test_hook) are not for admins.
        let code = text.split("#[cfg(test)]\nmod ").next().unwrap();
        for line in code.lines().filter(|l| !l.contains("test_hook(")) {
            for lit in line.split('"').skip(1).step_by(2) {
                let var = lit.trim_start_matches('_');
                let env_like = ["AWS_", "HA_", "CLOUDHA_", "OCF_", "COROSYNC_", "CRS_"]
                    .iter()
                    .any(|p| var.starts_with(p))
                    || lit.eq_ignore_ascii_case("https_proxy")
                    || lit.eq_ignore_ascii_case("all_proxy")
                    || lit.eq_ignore_ascii_case("http_proxy")
                    || lit.eq_ignore_ascii_case("no_proxy");
                let word = lit.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if env_like && word {
                    seen.push((lit.to_string(), p.display().to_string()));
                }
            }
        }
    }
    assert!(
        seen.iter().any(|(v, _)| v == "HA_LOGFACILITY"),
        "the scan finds the reads"
    );
    let missing: Vec<_> = seen
        .iter()
        .filter(|(v, _)| {
            // _CRS_<NAME> and _CRS_<ACTION>_TIMEOUT cover the names built from parameters.
            let covered = documented.contains(&v.as_str()) || v.starts_with("_CRS_");
            !covered
        })
        .collect();
    assert!(
        missing.is_empty(),
        "read but not in docs::ENVIRONMENT: {missing:?}"
    );
}

#[test]
fn policy_files_are_shipped_and_named_on_their_pages() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/examples");
    for f in POLICY_FILES {
        assert!(
            std::fs::read_dir(&examples)
                .unwrap()
                .any(|d| d.unwrap().path().join(f.file).is_file()),
            "{} is not in packaging/examples/*/",
            f.file
        );
    }
    let fence = man::fence("");
    for a in AGENTS {
        let page = man::agent(a, "");
        for f in POLICY_FILES {
            assert_eq!(
                page.contains(&roffed(f.file)),
                f.pages.contains(&a.name),
                "{} on {}",
                f.file,
                a.name
            );
        }
    }
    for f in POLICY_FILES {
        assert_eq!(
            fence.contains(&roffed(f.file)),
            f.pages.contains(&"fence_cloudha"),
            "{}",
            f.file
        );
    }
    let ready = man::agent(cloudha::agents::find("cloud-ready").unwrap(), "");
    assert!(ready.contains(&roffed("iam-policy-vip.json")));
}

#[test]
fn synopsis_shows_the_words_of_selects_and_description_its_paragraphs() {
    let (_dir, out) = written("");
    for a in AGENTS {
        let src =
            std::fs::read_to_string(out.join(format!("man/ocf_cloudha_{}.7", a.name))).unwrap();
        let synopsis = src
            .split(".SH SYNOPSIS")
            .nth(1)
            .unwrap()
            .split(".SH")
            .next()
            .unwrap();
        assert!(!synopsis.contains("select"), "{synopsis}");
        for p in a.params {
            if let cloudha::params::Type::Select(words) = p.ty {
                assert!(synopsis.contains(&format!("\\fB{}=\\fR{}", p.name, words.join("|"))));
            }
        }
        // Paragraphs of the declaration are paragraphs of the page, and man shows them apart.
        let n = paragraphs(a.longdesc).count();
        assert!(n >= 3, "{}: {n} paragraphs", a.name);
        let description = src
            .split(".SH DESCRIPTION")
            .nth(1)
            .unwrap()
            .split(".SH")
            .next()
            .unwrap();
        assert_eq!(description.matches("\n.PP\n").count(), n - 1, "{}", a.name);
        let shown = rendered(&out.join(format!("man/ocf_cloudha_{}.7", a.name)));
        let desc = shown
            .split("DESCRIPTION")
            .nth(1)
            .unwrap()
            .split("SUPPORTED PARAMETERS")
            .next()
            .unwrap();
        assert_eq!(desc.trim().split("\n\n").count(), n, "{}: {desc}", a.name);
    }
    let vxlan = man::agent(cloudha::agents::find("vxlan-fdb").unwrap(), "");
    let example = vxlan
        .split("EXAMPLE PACEMAKER CONFIGURATION")
        .nth(1)
        .unwrap();
    let line = example
        .lines()
        .find(|l| l.starts_with("pcs resource create"))
        .unwrap();
    assert!(line.ends_with(" clone"), "{line}");
}

/// Completes `words` (the last one being completed) the way bash does: through the function
/// `complete -p` registers for the command, with bash's own word splitting at `=`.
fn bash_complete(script: &Path, line: &str) -> Vec<String> {
    let prog = r#"source "$1"
line=$2
COMP_LINE=$line COMP_POINT=${#line}
# bash splits at COMP_WORDBREAKS; this mimics it for the words these tests type.
read -ra COMP_WORDS <<<"${line//=/ = }"
[[ $line == *" " ]] && COMP_WORDS+=("")
[[ $line == *= ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
spec=$(complete -p "${COMP_WORDS[0]}") || exit 3
fn=$(sed -E 's/.* -F ([^ ]+) .*/\1/' <<<"$spec")
"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let (ok, out, err) = run(Command::new("bash")
        .args(["-c", prog, "complete"])
        .arg(script)
        .arg(line));
    assert!(ok && err.is_empty(), "{line}: {err}");
    out.split_whitespace().map(String::from).collect()
}

#[test]
fn completions_load_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let bash = dir.path().join("cloudha.bash");
    std::fs::write(&bash, completions::bash()).unwrap();
    let (ok, spec, err) = run(Command::new("bash").arg("-c").arg(format!(
        "source '{}' && complete -p cloudha /usr/lib/ocf/resource.d/cloudha/vip",
        bash.display()
    )));
    assert!(ok && err.is_empty(), "{err}");
    assert!(spec.contains("-F _cloudha_with_params cloudha"), "{spec}");
    let c = |line: &str| bash_complete(&bash, line);
    let agents: Vec<String> = AGENTS.iter().map(|a| a.name.to_string()).collect();
    let top = c("cloudha ");
    assert!(
        agents.iter().all(|a| top.contains(a)) && top.contains(&"--version".into()),
        "{top:?}"
    );
    assert_eq!(c("cloudha vip mo"), ["monitor"]);
    assert!(c("cloudha vip ").contains(&"validate-all".to_string()));
    assert!(
        !c("cloudha vip ").contains(&"ip=".to_string()),
        "the action comes first"
    );
    assert_eq!(c("cloudha vip start i"), ["ip="]);
    assert_eq!(
        c("cloudha vip start cloud="),
        ["auto", "none", "aws", "oci"]
    );
    assert_eq!(c("cloudha vip start ip=10.0.0.1 cloud=a"), ["auto", "aws"]);
    assert_eq!(
        c("cloudha vxlan-fdb start peers_from="),
        ["static", "corosync"]
    );
    assert!(c("cloudha route-table start ").contains(&"route_tables=".to_string()));
    assert_eq!(c("/usr/lib/ocf/resource.d/cloudha/vip ch"), ["check"]);
    assert!(
        c("/usr/lib/ocf/resource.d/cloudha/vip start i").is_empty(),
        "through a link: the action only"
    );

    for (shell, file, text) in [
        ("zsh", "_cloudha", completions::zsh()),
        ("fish", "cloudha.fish", completions::fish()),
    ] {
        let path = dir.path().join(file);
        std::fs::write(&path, &text).unwrap();
        if have(shell) {
            let (ok, _, err) = run(Command::new(shell).arg("-n").arg(&path));
            assert!(ok, "{shell} -n {file}: {err}");
        } else {
            eprintln!("{shell} is not installed: {file} not loaded");
        }
    }
    if have("fish") {
        let fish = dir.path().join("cloudha.fish");
        let c = |line: &str| {
            let (ok, out, err) = run(Command::new("fish")
                .arg("-c")
                .arg(format!("source {}; complete -C '{line}'", fish.display())));
            assert!(ok && err.is_empty(), "{line}: {err}");
            out.lines()
                .map(|l| l.split('\t').next().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert!(agents.iter().all(|a| c("cloudha ").contains(a)));
        assert_eq!(c("cloudha vip mo"), ["monitor"]);
        assert_eq!(
            c("cloudha vip start cloud="),
            ["cloud=auto", "cloud=aws", "cloud=none", "cloud=oci"] // fish sorts
        );
        assert_eq!(c("/usr/lib/ocf/resource.d/cloudha/vip ch"), ["check"]);
        assert!(c("/usr/lib/ocf/resource.d/cloudha/vip start ").is_empty());
    }
    if have("zsh") {
        for (typed, becomes) in [
            ("cloudha vxl", "cloudha vxlan-fdb "),
            ("cloudha vip sta", "cloudha vip start "),
            ("cloudha vip start cloud=o", "cloudha vip start cloud=oci "),
            ("cloudha vip start ip=10.0.0.1 arp_c", "arp_count="),
        ] {
            let (ok, out, err) = run(Command::new("timeout")
                .args(["20", "zsh", "-f", "-c", ZSH_TYPE, "zsh"])
                .arg(dir.path())
                .args([typed, becomes]));
            assert!(ok, "zsh: {typed:?} did not become {becomes:?}: {out} {err}");
        }
    }
    let zsh = completions::zsh();
    assert!(zsh.starts_with("#compdef cloudha\n"));
    assert!(
        zsh.contains("cloud=aws") && zsh.contains("ip="),
        "zsh offers the parameter words"
    );
    let fish = completions::fish();
    assert!(fish.contains("'cloud=auto cloud=none cloud=aws cloud=oci'"));
}

/// Types `$2` and TAB in an interactive zsh whose fpath has `$1/_cloudha`; succeeds once the
/// line reads `$3` (escape sequences aside), fails after 5 s.
const ZSH_TYPE: &str = r#"setopt extendedglob
zmodload zsh/zpty
zpty -b z 'zsh -f -i'
zpty -w z "PS1='>'; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D; cloudha() { :; }; print RE""ADY"
zpty -r z junk '*READY*' || exit 3
zpty -w -n z "$2"$'\t'
for i in {1..50}; do
    zpty -r -t z chunk && out+=$chunk
    [[ ${out//$'\e'\[[0-9;?]#[A-Za-z]/} == *"$3"* ]] && exit 0
    sleep 0.1
done
print -r -- "${(q)out}"
exit 4
"#;
