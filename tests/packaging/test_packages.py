"""The .deb and .rpm that `make packages` builds (packaging/build.sh).

- both packages exist, and their file lists (dpkg-deb -c, rpm -qp), directories included, are
  exactly the expected layout for the agents the packaged binary carries (read from
  `cloudha --help`, so a new agent in the registry must show up as a link, a man page and a
  .conf template);
- every path on the system that the installed README, the guides and the examples README name
  is in the package; the tmpfiles.d entry makes /run/cloudha 0700 (systemd-tmpfiles --root);
- no runtime dependency, no maintainer scripts / scriptlets;
- the examples work: the seed's crsctl registration is there verbatim (apart from the script
  path) and its /etc/cloudha/<name>.conf parses; pcs examples only use declared parameters;
- the .deb is installed on this machine with dpkg -i: crm_resource --show-metadata and
  ocf-tester run against /usr/lib/ocf/resource.d/cloudha/vip (ocf-tester inside a network
  namespace made here, with a veth pair carrying a private subnet); then dpkg -r / dpkg -P
  leave nothing behind. The host is restored even when a test fails (purge in a finalizer);
  a host that already has cloudha installed is not touched (the install tests are skipped);
- the installed binary runs alone in an empty chroot inside a fresh network namespace:
  meta-data, and a cloud=none monitor of an absent address (7);
- the .rpm installs into and erases from a scratch root (rpm --root ... --nodeps), leaving no
  file and no directory but the base system's.

lintian and rpmlint run in test_lint.py.

Needs root, dpkg-deb, rpm, ip, unshare, chroot, crm_resource, ocf-tester, systemd-tmpfiles.
`make test-packages` builds the packages first; run alone, this file builds them itself unless
CLOUDHA_PACKAGES_BUILT=1.
"""

import gzip
import hashlib
import io
import os
import re
import shlex
import shutil
import stat
import subprocess
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OCF_DIR = "/usr/lib/ocf/resource.d/cloudha"
LINK_TARGET = "../../../../sbin/cloudha"
MAX_BINARY = 8 * 1000 * 1000  # bytes: "8 MB"
SEED_CRSCTL = (
    'crsctl add resource myrac02-vip.ec2 -type cluster_resource -attr "CHECK_INTERVAL=10,'
    "ACTION_SCRIPT={path},PLACEMENT=favored,HOSTING_MEMBERS=myracnode01 myracnode02,"
    "AUTO_START=always,START_DEPENDENCIES=hard(intermediate:ora.myracnode02.vip),"
    'RELOCATE_BY_DEPENDENCY=1,STOP_DEPENDENCIES=hard(intermediate:ora.myracnode02.vip)"'
)
# The private subnet inside the namespace the tests create.
NS_NET = "10.77.231"
DOCS = "/usr/share/doc/cloudha"
# Directories the .rpm owns itself (beyond those of its files): the ones no base package
# (filesystem, systemd) provides on an RPM distribution.
RPM_OWNED_DIRS = {
    "/etc/cloudha",
    "/usr/lib/ocf",
    "/usr/lib/ocf/resource.d",
    OCF_DIR,
    "/usr/share/bash-completion",
    "/usr/share/bash-completion/completions",
    "/usr/share/zsh",
    "/usr/share/zsh/site-functions",
    "/usr/share/fish",
    "/usr/share/fish/vendor_completions.d",
    DOCS,
    f"{DOCS}/examples",
    f"{DOCS}/ocft",
    "/usr/share/licenses/cloudha",
}
# What the base system of an RPM distribution owns (the filesystem package; systemd for
# tmpfiles.d): the only directories an `rpm -e` may leave in a scratch root.
RPM_BASE_DIRS = {
    "etc", "usr", "usr/lib", "usr/lib/tmpfiles.d", "usr/sbin", "usr/share", "usr/share/doc",
    "usr/share/licenses", "usr/share/man", "usr/share/man/man7", "usr/share/man/man8",
}  # fmt: skip

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def run(cmd, check=True, **kw):
    """Run a command and capture its output; on an unexpected code, fail with all of it."""
    kw.setdefault("timeout", 120)
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        pytest.fail(
            f"{cmd!r} exited {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
        )
    return p


# --------------------------------------------------------------------------------------------
# fixtures (the packages themselves: conftest.py)


@pytest.fixture(scope="module")
def extracted(packages, tmp_path_factory):
    """The .deb's files, unpacked without installing."""
    d = tmp_path_factory.mktemp("deb-x")
    run(["dpkg-deb", "-x", str(packages["deb"]), str(d)])
    return d


@pytest.fixture(scope="module")
def agents(extracted):
    """The agents the packaged binary carries, from its own --help."""
    out = run([str(extracted / "usr/sbin/cloudha"), "--help"]).stdout
    section = out.split("Commands:", 1)[1].split("\n\n", 1)[0]
    names = [line.split()[0] for line in section.splitlines() if line.strip()]
    names = [n for n in names if n != "help"]
    assert "vip" in names, out
    return names


def expected_layout(agents, fmt):
    """path -> "f" (file), "l" (link) or "d" (directory)."""
    files = {"/usr/sbin/cloudha": "f", "/usr/sbin/fence_cloudha": "l"}
    docs = DOCS
    for a in agents:
        files[f"{OCF_DIR}/{a}"] = "l"
        files[f"/usr/share/man/man7/ocf_cloudha_{a}.7.gz"] = "f"
        files[f"{docs}/examples/{a}.conf"] = "f"
        hand = REPO / "packaging/examples" / a
        if hand.is_dir():
            for f in hand.iterdir():
                files[f"{docs}/examples/{f.name}"] = "f"
    for f in (REPO / "packaging/examples/fence_cloudha").iterdir():
        files[f"{docs}/examples/{f.name}"] = "f"
    for f in (REPO / "packaging/ocft").iterdir():
        files[f"{docs}/ocft/{f.name}"] = "f"
    files.update(
        {
            "/usr/share/man/man8/cloudha.8.gz": "f",
            "/usr/share/man/man8/fence_cloudha.8.gz": "f",
            "/usr/share/bash-completion/completions/cloudha": "f",
            "/usr/share/fish/vendor_completions.d/cloudha.fish": "f",
            "/usr/lib/tmpfiles.d/cloudha.conf": "f",
            f"{docs}/examples/README": "f",
            f"{docs}/README.md": "f",
            f"{docs}/aws.md": "f",
            f"{docs}/oci.md": "f",
        }
    )
    if fmt == "deb":
        files[f"{docs}/copyright"] = "f"
        files[f"{docs}/changelog.Debian.gz"] = "f"
        files["/usr/share/zsh/vendor-completions/_cloudha"] = "f"
        files["/usr/share/lintian/overrides/cloudha"] = "f"
        # A .deb lists every directory of its tree, up to the root.
        dirs = set()
        for p in [*files, "/etc/cloudha/"]:
            parent = os.path.dirname(p)
            while parent != "/":
                dirs.add(parent)
                parent = os.path.dirname(parent)
    else:
        files["/usr/share/licenses/cloudha/LICENSE"] = "f"
        files["/usr/share/zsh/site-functions/_cloudha"] = "f"
        dirs = RPM_OWNED_DIRS
    return {**files, **{d: "d" for d in dirs}}


def deb_entries(deb):
    """path -> (mode string, owner, link target or None)."""
    out = run(["dpkg-deb", "-c", str(deb)]).stdout
    entries = {}
    for line in out.splitlines():
        perms, owner, _size, _date, _time, rest = line.split(None, 5)
        name, _, target = rest.partition(" -> ")
        path = "/" + name.removeprefix("./").rstrip("/")
        entries[path.rstrip("/") or "/"] = (perms, owner, target or None)
    return entries


def rpm_entries(rpm):
    fmt = "[%{FILEMODES:perms}\\t%{FILEUSERNAME}/%{FILEGROUPNAME}\\t%{FILENAMES}\\t%{FILELINKTOS}\\n]"
    out = run(["rpm", "-qp", "--qf", fmt, str(rpm)]).stdout
    entries = {}
    for line in out.splitlines():
        perms, owner, path, target = line.split("\t")
        entries[path] = (perms, owner, target or None)
    return entries


def check_layout(entries, agents, fmt):
    want = expected_layout(agents, fmt)
    got = {p: {"l": "l", "d": "d"}.get(e[0][0], "f") for p, e in entries.items() if p != "/"}
    assert got == want, (
        f"missing: {sorted(set(want) - set(got))}; unexpected: {sorted(set(got) - set(want))}; "
        f"wrong kind: {sorted(p for p in want if p in got and got[p] != want[p])}"
    )
    for p, (perms, owner, target) in entries.items():
        assert owner == "root/root", (p, owner)
        if p == "/usr/sbin/cloudha":
            assert perms == "-rwxr-xr-x", perms
        elif perms.startswith("-"):
            assert perms == "-rw-r--r--", (p, perms)
        elif perms.startswith("d"):
            assert perms == "drwxr-xr-x", (p, perms)
        if p == "/usr/sbin/fence_cloudha":
            assert target == "cloudha", (p, target)
        elif perms.startswith("l"):
            assert target == LINK_TARGET, (p, target)
    for d in ("/etc/cloudha", OCF_DIR):
        assert entries.get(d, ("",))[0].startswith("d"), f"{d} is not a directory of the package"


# --------------------------------------------------------------------------------------------
# the packages as files


def test_binary_is_static_stripped_and_small(extracted):
    b = extracted / "usr/sbin/cloudha"
    size = b.stat().st_size
    desc = run(["file", "-b", str(b)]).stdout.strip()
    print(f"cloudha: {size} bytes ({size / 1e6:.2f} MB); {desc}")
    assert size <= MAX_BINARY, f"{size} bytes > 8 MB"
    assert "static-pie linked" in desc or "statically linked" in desc, desc
    assert "stripped" in desc and "not stripped" not in desc, desc
    sections = run(["objdump", "-h", str(b)]).stdout
    assert " .text " in sections and " .comment " not in sections, sections


def test_deb_layout(packages, agents):
    check_layout(deb_entries(packages["deb"]), agents, "deb")


def test_rpm_layout(packages, agents):
    check_layout(rpm_entries(packages["rpm"]), agents, "rpm")


def test_deb_control_has_no_dependencies_and_no_scripts(packages, tmp_path):
    control = run(["dpkg-deb", "-f", str(packages["deb"])]).stdout
    print(control)
    for field in ("Depends", "Pre-Depends", "Recommends", "Conflicts", "Breaks"):
        assert not re.search(rf"^{field}:", control, re.M), field
    assert re.search(r"^Version: " + re.escape(packages["version"]) + "$", control, re.M)
    assert re.search(r"^Architecture: amd64$", control, re.M)
    run(["dpkg-deb", "-e", str(packages["deb"]), str(tmp_path / "c")])
    assert sorted(os.listdir(tmp_path / "c")) == ["control", "md5sums"]


def test_rpm_has_no_dependencies_and_no_scriptlets(packages):
    rpm = str(packages["rpm"])
    requires = run(["rpm", "-qp", "--requires", rpm]).stdout.split("\n")
    assert all(r.startswith("rpmlib(") for r in requires if r.strip()), requires
    assert run(["rpm", "-qp", "--scripts", rpm]).stdout.strip() == ""
    assert run(["rpm", "-qp", "--triggers", rpm]).stdout.strip() == ""
    info = run(["rpm", "-qip", rpm]).stdout
    assert re.search(r"^License\s*: Apache-2.0$", info, re.M), info
    upstream = packages["version"].rsplit("-", 1)[0]
    assert f"- {packages['version']}" in run(["rpm", "-qp", "--changelog", rpm]).stdout
    assert run(["rpm", "-qp", "--qf", "%{VERSION}", rpm]).stdout == upstream


def source_date_epoch():
    """The packages' timestamps: the date of the top entry of packaging/changelog."""
    out = run(["dpkg-parsechangelog", "-l", str(REPO / "packaging/changelog"), "-S", "Timestamp"])
    return int(out.stdout)


def test_deb_fields_md5sums_and_timestamps(packages, extracted, tmp_path):
    control = run(["dpkg-deb", "-f", str(packages["deb"])]).stdout
    assert re.search(r"^Enhances: pacemaker$", control, re.M), control
    # md5sums (dh_md5sums) covers every regular file with its right sum.
    run(["dpkg-deb", "-e", str(packages["deb"]), str(tmp_path / "c")])
    listed = {}
    for line in (tmp_path / "c/md5sums").read_text().splitlines():
        digest, path = line.split(None, 1)
        listed[path] = digest
    files = {
        str(p.relative_to(extracted)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in extracted.rglob("*")
        if p.is_file() and not p.is_symlink()
    }
    assert listed == files
    # Reproducible: every member carries the changelog's date.
    epoch = source_date_epoch()
    tar = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(packages["deb"])], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        stamps = {m.name: m.mtime for m in t.getmembers()}
    assert set(stamps.values()) == {epoch}, stamps


def test_rpm_fields_changelog_and_timestamps(packages):
    rpm = str(packages["rpm"])
    assert run(["rpm", "-qp", "--enhances", rpm]).stdout.split() == ["pacemaker"]
    qf = "%{PACKAGER}\n%{GROUP}\n%{BUILDTIME}\n"
    packager, group, buildtime = run(["rpm", "-qp", "--qf", qf, rpm]).stdout.splitlines()
    assert "@" in packager and group, (packager, group)
    epoch = source_date_epoch()
    assert int(buildtime) == epoch
    mtimes = run(["rpm", "-qp", "--qf", "[%{FILEMTIMES}\n]", rpm]).stdout.split()
    assert {int(m) for m in mtimes} == {epoch}
    # The spec's own %changelog: its top entry is this version, of the Debian entry's day.
    names = run(["rpm", "-qp", "--qf", "[%{CHANGELOGNAME}\n]", rpm]).stdout.splitlines()
    times = run(["rpm", "-qp", "--qf", "[%{CHANGELOGTIME}\n]", rpm]).stdout.split()
    assert names[0].endswith(f" - {packages['version']}"), names[0]
    assert int(times[0]) // 86400 == epoch // 86400, (times[0], epoch)


def test_tmpfiles_entry_declares_the_run_dir(extracted):
    """The entry, as tmpfiles.d(5) reads it: one `d` line for the agents' run directory."""
    conf = (extracted / "usr/lib/tmpfiles.d/cloudha.conf").read_text()
    lines = [line.split() for line in conf.splitlines() if line.strip() and line[0] != "#"]
    assert lines == [["d", "/run/cloudha", "0700", "root", "root", "-"]], lines
    # The agents' default run directory is the one the entry makes.
    assert 'env_path(env, "CLOUDHA_RUN_DIR", "/run/cloudha")' in (
        REPO / "src/contract.rs"
    ).read_text()


@pytest.mark.skipif(shutil.which("systemd-tmpfiles") is None, reason="needs systemd-tmpfiles")
def test_tmpfiles_entry_makes_the_run_dir(extracted, tmp_path):
    """systemd-tmpfiles accepts the shipped entry and makes /run/cloudha 0700 root:root."""
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    conf = extracted / "usr/lib/tmpfiles.d/cloudha.conf"
    p = run(["systemd-tmpfiles", "--create", f"--root={root}", str(conf)])
    assert p.stderr.strip() == "", p.stderr  # no "Line N: ..." complaint
    st = (root / "run/cloudha").lstat()
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (0, 0)


# Paths the documentation names that belong to other packages or to the admin: the cluster
# stack's configuration and logs, the state directory of resource-agents' traces, home dirs.
FOREIGN_PREFIXES = (
    "/etc/default/",
    "/etc/sysconfig/",
    "/etc/corosync/",
    "/var/log/",
    "/var/lib/heartbeat",
    "/root/",
)


def test_installed_docs_name_only_paths_the_package_has(packages, extracted, agents):
    """Every system path that the installed README, the guides and the examples README name
    is in both packages (or is the run directory the tmpfiles.d entry makes), so they cannot
    go stale again; the installed README speaks of nothing outside the package."""
    docs = extracted / DOCS.lstrip("/")
    readme = (docs / "README.md").read_text()
    assert readme == (REPO / "packaging/README.installed").read_text()
    for repo_only in ("make demo", "make test", "tests/", "bench", "cargo "):
        assert repo_only not in readme, repo_only
    layouts = [expected_layout(agents, "deb"), expected_layout(agents, "rpm")]
    tmpfiles = (extracted / "usr/lib/tmpfiles.d/cloudha.conf").read_text()
    run_dirs = [line.split()[1] for line in tmpfiles.splitlines() if line.startswith("d ")]
    checked = 0
    for name in ("README.md", "aws.md", "oci.md", "examples/README"):
        text = (docs / name).read_text().replace("<resource name>", "<resource-name>")
        for path in re.findall(r"(?<![\w.~/-])/(?:usr|etc|run|var)(?:/[\w.<>$-]+)*/?", text):
            path = path.rstrip("./") or path
            if path.startswith(FOREIGN_PREFIXES):
                continue
            checked += 1
            if any(path == d or path.startswith(d + "/") for d in run_dirs):
                continue
            if "<resource-name>" in path:  # the admin's file: its directory is ours
                path = os.path.dirname(path)
            candidates = [path.replace("<agent>", a) for a in agents]
            assert "<" not in candidates[0], f"{name}: unknown placeholder in {path}"
            for layout in layouts:
                for c in candidates:
                    assert c in layout, f"{name} names {c}, which the package does not have"
        # Example files named in the text (`iam-policy-vip.json`, `pcs-<agent>.sh`) exist.
        for f in re.findall(r"`([\w.<>-]+\.(?:json|txt|sh|conf))`", text):
            if "<resource-name>" in f:
                continue
            names = {f.replace("<agent>", a) for a in agents}
            found = [n for n in names if (docs / "examples" / n).is_file()]
            assert found, f"{name} names the example {f}, which the package does not have"
    assert checked > 10, checked  # the scan found the paths the texts do name


def test_every_agent_link_is_its_agent(extracted, agents):
    for a in agents:
        link = extracted / OCF_DIR.lstrip("/") / a
        assert os.readlink(link) == LINK_TARGET
        xml = run([str(link), "meta-data"]).stdout
        assert ET.fromstring(xml).get("name") == a


@pytest.mark.skipif(shutil.which("man") is None, reason="needs man-db")
def test_man_pages_render_without_warnings(extracted, agents):
    pages = ["usr/share/man/man8/cloudha.8.gz"] + [
        f"usr/share/man/man7/ocf_cloudha_{a}.7.gz" for a in agents
    ]
    for page in pages:
        p = run(
            ["man", "--warnings", "-l", str(extracted / page)],
            env={**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "80", "MANPAGER": "cat"},
        )
        assert p.stderr.strip() == "", f"{page}: {p.stderr}"
        assert "SUPPORTED PARAMETERS" in p.stdout or page.endswith("cloudha.8.gz")
    text = gzip.decompress((extracted / "usr/share/man/man7/ocf_cloudha_vip.7.gz").read_bytes())
    assert b"arp_interval" in text  # the parameters come from the declarations


def test_bash_completion(extracted, agents):
    script = extracted / "usr/share/bash-completion/completions/cloudha"

    def complete(*words):
        w = " ".join(f"'{x}'" for x in words)
        p = run(
            [
                "bash",
                "-c",
                # Calls the function `complete -p` registered, with the arguments bash gives.
                f'source "{script}"; COMP_WORDS=({w}); COMP_CWORD={len(words) - 1}; '
                'fn=$(complete -p "${COMP_WORDS[0]}" | sed -E "s/.* -F ([^ ]+) .*/\\1/"); '
                '"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"; '
                'printf "%s\\n" "${COMPREPLY[@]}"',
            ]
        )
        return p.stdout.split()

    assert set(agents) <= set(complete("cloudha", ""))
    assert "monitor" in complete("cloudha", "vip", "mo")
    assert "ip=" in complete("cloudha", "vip", "start", "i")
    assert complete("cloudha", "vip", "start", "cloud", "=", "") == ["auto", "none", "aws", "oci"]
    assert "check" in complete(f"{OCF_DIR}/vip", "ch")
    assert complete(f"{OCF_DIR}/vip", "start", "i") == []  # through a link: the action only
    for shell, path in (
        ("zsh", "usr/share/zsh/vendor-completions/_cloudha"),
        ("fish", "usr/share/fish/vendor_completions.d/cloudha.fish"),
    ):
        if shutil.which(shell):
            run([shell, "-n", str(extracted / path)])


def test_examples_seed_registration_and_conf(extracted, tmp_path):
    ex = extracted / "usr/share/doc/cloudha/examples"
    crsctl = (ex / "crsctl-vip.sh").read_text()
    assert SEED_CRSCTL.format(path=f"{OCF_DIR}/vip") in crsctl
    assert "@CRS_TYPE_ATTRS@" not in crsctl and "ATTRIBUTE=IP,TYPE=string,FLAGS=REQUIRED" in crsctl
    # The seed's resource reads /etc/cloudha/myrac02-vip.ec2.conf: as Clusterware would call it,
    # in a network namespace where the address is absent, the check must find a valid
    # configuration and say PLANNED_OFFLINE (2); a configuration error would be UNKNOWN (3).
    binary = extracted / "usr/sbin/cloudha"
    link = tmp_path / "vip"
    link.symlink_to(binary)
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "_CRS_NAME": "myrac02-vip.ec2",
        "_CRS_CHECK_INTERVAL": "10",
        "CLOUDHA_CONFIG_DIR": str(ex),
        "CLOUDHA_RUN_DIR": str(tmp_path / "run"),
    }
    # The example leaves the OS address to Oracle's ora vip (local_address=false): a node
    # without the interface cannot be the one EC2 delivers to. With the OS address ours (the
    # _CRS_ attribute overrides the file) the address is absent. Both: PLANNED_OFFLINE.
    assert "\nlocal_address=false\n" in (ex / "myrac02-vip.ec2.conf").read_text()
    for extra in ({}, {"_CRS_LOCAL_ADDRESS": "true"}):
        p = run(["unshare", "--net", str(link), "check"], check=False, env={**env, **extra})
        assert p.returncode == 2, (extra, p.returncode, p.stdout, p.stderr)
    (tmp_path / "bad.conf").write_text((ex / "myrac02-vip.ec2.conf").read_text() + "bogus=1\n")
    p = run(
        ["unshare", "--net", str(link), "check"],
        check=False,
        env={**env, "_CRS_NAME": "bad", "CLOUDHA_CONFIG_DIR": str(tmp_path)},
    )
    assert p.returncode == 3 and "bogus" in p.stdout, (p.returncode, p.stdout, p.stderr)
    # The generated template parses too (everything commented out: ip is missing).
    assert "#ip=" in (ex / "vip.conf").read_text()
    # pcs examples (create and update) use only declared parameters, for every agent with one.
    for pcs_file in sorted(ex.glob("pcs-*.sh")):
        agent = pcs_file.name[len("pcs-"):-len(".sh")]
        if agent.startswith("fence_"):
            continue  # pcs stonith create: run for real by tests/lab/test_examples.py
        agent_link = tmp_path / "pcs" / agent
        agent_link.parent.mkdir(exist_ok=True)
        agent_link.symlink_to(binary)
        declared = {
            e.get("name")
            for e in ET.fromstring(
                run([str(agent_link), "meta-data"], env={"OCF_RA_VERSION_MINOR": "1"}).stdout
            ).iter("parameter")
        }
        pcs = pcs_file.read_text().replace("\\\n", " ")
        for line in pcs.splitlines():
            if line.startswith("pcs resource create") and f"ocf:cloudha:{agent}" in line:
                words = line.split(f"ocf:cloudha:{agent}", 1)[1]
            elif line.startswith("pcs resource update"):
                words = line.split(None, 4)[4]
            else:
                continue
            for w in shlex.split(words.split(" op ")[0].split(" --")[0]):
                assert w.split("=")[0] in declared, (pcs_file.name, w, line)


# --------------------------------------------------------------------------------------------
# the .deb installed on this machine

HOST_PATHS = [
    OCF_DIR,
    "/usr/share/lintian/overrides/cloudha",
    "/usr/sbin/cloudha",
    "/usr/sbin/fence_cloudha",
    "/usr/share/doc/cloudha",
    "/usr/share/man/man8/cloudha.8.gz",
    "/usr/share/man/man8/fence_cloudha.8.gz",
    "/usr/share/bash-completion/completions/cloudha",
    "/usr/share/zsh/vendor-completions/_cloudha",
    "/usr/share/fish/vendor_completions.d/cloudha.fish",
    "/usr/lib/tmpfiles.d/cloudha.conf",
    "/etc/cloudha",
]


def dpkg_installed():
    p = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "cloudha"], capture_output=True, text=True
    )
    return p.returncode == 0 and "installed" in p.stdout and "not-installed" not in p.stdout


def leftovers(agents):
    paths = HOST_PATHS + [f"/usr/share/man/man7/ocf_cloudha_{a}.7.gz" for a in agents]
    return [p for p in paths if os.path.lexists(p)]


@pytest.fixture(scope="module")
def installed(packages, agents):
    if dpkg_installed() or leftovers(agents):
        pytest.skip(f"cloudha is already on this host ({leftovers(agents)}): not touching it")
    run_existed = os.path.exists("/run/cloudha")
    try:
        p = run(["dpkg", "-i", str(packages["deb"])])
        print(p.stdout)
        yield packages["deb"]
    finally:
        if dpkg_installed() or os.path.lexists("/usr/sbin/cloudha"):
            subprocess.run(["dpkg", "-P", "cloudha"], capture_output=True)
        if not run_existed and os.path.isdir("/run/cloudha"):
            shutil.rmtree("/run/cloudha", ignore_errors=True)


@pytest.fixture
def netns():
    """A network namespace with a veth pair (pk0 10.77.231.1/24 <-> pk1), both ends up."""
    name = f"cloudha-pkg-{os.getpid()}"
    run(["ip", "netns", "add", name])
    try:
        ip = ["ip", "-n", name]
        run(ip + ["link", "set", "lo", "up"])
        run(ip + ["link", "add", "pk0", "type", "veth", "peer", "name", "pk1"])
        run(ip + ["addr", "add", f"{NS_NET}.1/24", "dev", "pk0"])
        run(ip + ["link", "set", "pk0", "up"])
        run(ip + ["link", "set", "pk1", "up"])
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_deb_installs_the_layout(installed, agents):
    listed = set(run(["dpkg", "-L", "cloudha"]).stdout.split())
    for a in agents:
        link = f"{OCF_DIR}/{a}"
        assert link in listed
        assert os.path.realpath(link) == "/usr/sbin/cloudha"
    if shutil.which("man"):
        man8 = run(["man", "-w", "8", "cloudha"]).stdout.strip()
        assert man8 == "/usr/share/man/man8/cloudha.8.gz"
        for a in agents:
            page = run(["man", "-w", f"ocf_cloudha_{a}"]).stdout.strip()
            assert page == f"/usr/share/man/man7/ocf_cloudha_{a}.7.gz"
    assert os.path.isdir("/etc/cloudha")


def test_pacemaker_finds_the_installed_fence_agent(installed):
    assert os.path.realpath("/usr/sbin/fence_cloudha") == "/usr/sbin/cloudha"
    out = run(["crm_resource", "--show-metadata", "stonith:fence_cloudha"]).stdout
    assert '<resource-agent name="fence_cloudha"' in out, out
    assert 'name="power_timeout"' in out and 'name="delay"' in out, out
    if shutil.which("man"):
        assert run(["man", "-w", "8", "fence_cloudha"]).stdout.strip() == \
            "/usr/share/man/man8/fence_cloudha.8.gz"


def test_crm_resource_show_metadata(installed, agents):
    for a in agents:
        out = run(["crm_resource", "--show-metadata", f"ocf:cloudha:{a}"]).stdout
        root = ET.fromstring(out[out.index("<resource-agent") :])
        assert root.get("name") == a
        assert root.find("version").text == "1.1", "Pacemaker asks for OCF 1.1"
    run(
        [
            "crm_resource", "--validate", "--class", "ocf", "--provider", "cloudha",
            "--agent", "vip", "--option", f"ip={NS_NET}.100", "--option", "cloud=none",
        ]
    )  # fmt: skip


def test_ocf_tester_against_installed_agent(installed, netns):
    cmd = [
        "ip", "netns", "exec", netns, "ocf-tester", "-n", "t",
        "-o", f"ip={NS_NET}.100", "-o", "cloud=none", "-o", "nic=pk0",
        f"{OCF_DIR}/vip",
    ]  # fmt: skip
    p = run(cmd, check=False, timeout=300)
    print(p.stdout, p.stderr)
    assert p.returncode == 0, f"ocf-tester failed:\n{p.stdout}\n{p.stderr}"
    assert "passed all tests" in p.stdout + p.stderr
    addrs = run(["ip", "-n", netns, "-o", "addr", "show", "dev", "pk0"]).stdout
    assert f"{NS_NET}.100" not in addrs, "the last stop left the address behind"


def test_installed_binary_alone_in_empty_chroot(installed, tmp_path):
    root = tmp_path / "root"
    (root / "sys/class").mkdir(parents=True)  # no /sys/class/dmi: cloud=auto sees no cloud
    shutil.copy2("/usr/sbin/cloudha", root / "cloudha")
    (root / "vip").symlink_to("cloudha")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    chroot = ["unshare", "--net", "chroot", str(root)]
    out = run(chroot + ["/vip", "meta-data"], env=env).stdout
    assert '<resource-agent name="vip"' in out
    out = run(chroot + ["/cloudha", "vip", "meta-data"], env=env).stdout
    assert '<resource-agent name="vip"' in out
    for words, extra in (
        (["/vip", "monitor"], {"OCF_RESKEY_ip": f"{NS_NET}.100", "OCF_RESKEY_cloud": "none"}),
        (["/cloudha", "vip", "monitor", f"ip={NS_NET}.100", "cloud=none"], {}),
        (["/cloudha", "vip", "monitor", f"ip={NS_NET}.100"], {}),  # cloud=auto, no DMI
    ):
        p = run(chroot + words, check=False, env={**env, **extra})
        assert p.returncode == 7, (words, p.returncode, p.stdout, p.stderr)
    assert sorted(os.listdir(root)) == ["cloudha", "sys", "vip"]


def test_deb_remove_and_purge_leave_nothing(installed, agents):
    p = run(["dpkg", "-r", "cloudha"])
    print(p.stdout)
    assert leftovers(agents) == [], "dpkg -r left files behind"
    run(["dpkg", "-P", "cloudha"])
    assert not dpkg_installed()
    assert leftovers(agents) == []
    # Every directory of the package is gone, unless another package still owns it.
    for d, kind in expected_layout(agents, "deb").items():
        if kind == "d" and os.path.lexists(d):
            owned = subprocess.run(["dpkg-query", "-S", d], capture_output=True, text=True)
            assert owned.returncode == 0, f"{d} left behind and owned by no package"
    assert subprocess.run(["dpkg", "-s", "cloudha"], capture_output=True).returncode != 0
    # resource-agents' directory is still there for the other providers.
    assert os.path.isdir("/usr/lib/ocf/resource.d")


# --------------------------------------------------------------------------------------------
# the .rpm in a scratch root


def test_rpm_installs_and_erases_in_scratch_root(packages, agents, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    rpm = ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm"]
    p = run(rpm + ["-i", "--nodeps", str(packages["rpm"])])
    print(p.stdout, p.stderr)
    assert run(rpm + ["-q", "cloudha"]).stdout.startswith("cloudha-")
    binary = root / "usr/sbin/cloudha"
    assert binary.is_file() and os.access(binary, os.X_OK)
    for a in agents:
        link = root / OCF_DIR.lstrip("/") / a
        assert os.readlink(link) == LINK_TARGET
        assert link.resolve() == binary.resolve()
        assert f'<resource-agent name="{a}"' in run([str(link), "meta-data"]).stdout
    assert (root / "usr/share/licenses/cloudha/LICENSE").is_file()
    assert (root / "etc/cloudha").is_dir()
    run(rpm + ["-V", "cloudha"])  # every file as packaged
    run(rpm + ["-e", "cloudha"])
    # Nothing left, directories included, but what the base system owns (and rpm's database).
    left = sorted(
        rel
        for p in root.rglob("*")
        if not (rel := str(p.relative_to(root))).startswith("var")
        and not (p.is_dir() and rel in RPM_BASE_DIRS)
    )
    assert left == [], left
