"""resource-agents' ocf-tester against the vip agent, and the 1.0 meta-data against ra-api-1.dtd.

ocf-tester validates meta-data with `$agent meta-data | (cd /usr/share/resource-agents &&
xmllint --noout --valid -)`: the document's `<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">`
is a relative system id, and for a document read from stdin xmllint resolves it against the
working directory. So the DTD is found because of the `cd`, and xmllint exits 4 ("failed to
load external entity", "no DTD found") when it is not there. ocf-tester sets no
OCF_RA_VERSION_*, so it gets the OCF 1.0 dialect.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from netns import Lab, cloudha_bin, sh

REPO = pathlib.Path(__file__).resolve().parents[2]


def schemas_dir(name: str) -> pathlib.Path:
    """Where the checkout keeps the schema files (metadata/, formerly metadata/schemas/)."""
    for d in (REPO / "metadata", REPO / "metadata" / "schemas"):
        if (d / name).is_file():
            return d
    raise AssertionError(f"{name} not found under {REPO / 'metadata'}")


OCF_TESTER = "/usr/sbin/ocf-tester"


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCF_", "_CRS_", "HA_"))}
    env.update(extra)
    return env


@pytest.fixture
def agent_link():
    """A directory (0755) with `vip` -> the binary. ocf-tester runs `meta-data` as nobody, who
    must reach the binary: when CLOUDHA_BIN sits under a private directory (/root is 0700), the
    link points at an identical copy in the same world-readable directory instead, as an install
    would (/usr/lib/ocf/resource.d/cloudha/vip -> /usr/sbin/cloudha)."""
    binary = cloudha_bin()
    d = tempfile.mkdtemp(prefix="cvt-ocft-")
    try:
        os.chmod(d, 0o755)
        target = binary
        reach = sh("su", "nobody", "-s", "/bin/sh", "-c", f"test -x '{binary}'", check=False)
        if reach.returncode != 0:
            target = os.path.join(d, "cloudha")
            shutil.copy2(binary, target)
            os.chmod(target, 0o755)
            digest = lambda p: hashlib.sha256(pathlib.Path(p).read_bytes()).hexdigest()
            assert digest(target) == digest(binary)
            print(f"nobody cannot reach {binary}; linking to an identical copy {target}")
        link = os.path.join(d, "vip")
        os.symlink(target, link)
        yield link
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_ocf_tester_passes(agent_link):
    ip = "10.77.0.100"
    with Lab() as lab:
        a = lab.node("a", "10.77.0.1/24")
        lab.node("b", "10.77.0.2/24")
        args = [OCF_TESTER, "-n", "vip1", "-o", f"ip={ip}", "-o", "cloud=none", "-o", "nic=eth0",
                agent_link]
        # Watch the address come and go while ocf-tester runs (start, stop, start, start, stop).
        mon = a.popen("ip", "-o", "monitor", "address", stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)
        p = a.exec(*args, check=False, timeout=300, env=clean_env())
        print(p.stdout, p.stderr)
        time.sleep(0.3)
        os.kill(mon.pid, signal.SIGTERM)
        events = [l for l in mon.communicate(timeout=10)[0].splitlines() if f" {ip}/" in l]
        adds = [l for l in events if not l.startswith("Deleted")]
        dels = [l for l in events if l.startswith("Deleted")]
        print(f"address events during ocf-tester: {len(adds)} added, {len(dels)} deleted")
        assert len(adds) == 2 and len(dels) == 2, events
        assert p.returncode == 0, p.stdout + p.stderr
        assert "passed all tests" in p.stdout
        assert "* rc=" not in p.stdout, "a check failed"
        assert a.has(ip) == [], "ocf-tester ends with a stop: nothing may be left"

        # The same tester must be able to fail: without ip, validate-all refuses (6) and
        # ocf-tester aborts with that code.
        bad = [x for x in args if not x.startswith("ip=")]
        bad.remove("-o")
        q = a.exec(*bad, check=False, timeout=300, env=clean_env())
        print(f"without ip: rc={q.returncode}\n{q.stdout}{q.stderr}")
        assert q.returncode != 0 and "Validation failed" in q.stdout + q.stderr


def meta_data(**env) -> str:
    p = subprocess.run([cloudha_bin(), "vip", "meta-data"], capture_output=True, text=True,
                       env=clean_env(**env), timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def xmllint_valid(doc: str, cwd: pathlib.Path | str) -> subprocess.CompletedProcess:
    """Exactly ocf-tester's check, with the DTD looked up in cwd."""
    return subprocess.run(["xmllint", "--noout", "--valid", "-"], input=doc, capture_output=True,
                          text=True, cwd=cwd, timeout=30)


def test_ocf10_meta_data_is_valid_against_the_repo_dtd(tmp_path):
    SCHEMAS = schemas_dir("ra-api-1.dtd")
    dtd = SCHEMAS / "ra-api-1.dtd"
    doc = meta_data()  # no OCF_RA_VERSION_*: what ocf-tester sees
    assert '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">' in doc
    assert "<version>1.0</version>" in doc
    r = xmllint_valid(doc, SCHEMAS)
    assert r.returncode == 0 and r.stderr == "", r.stderr

    # The DTD really was loaded and applied: elsewhere the same call fails, and a document the
    # DTD does not allow fails next to it.
    r = xmllint_valid(doc, tmp_path)
    print(f"without the DTD next to it: rc={r.returncode}: {r.stderr.strip()}")
    assert r.returncode != 0 and "failed to load external entity" in r.stderr
    r = xmllint_valid(doc.replace("<parameters>", "<parameters><bogus/>", 1), SCHEMAS)
    assert r.returncode != 0 and "bogus" in r.stderr, r.stderr

    # Debian's copy (what ocf-tester uses) is the same file.
    system = pathlib.Path("/usr/share/resource-agents/ra-api-1.dtd")
    if system.is_file():
        assert system.read_bytes() == dtd.read_bytes()
        assert xmllint_valid(doc, system.parent).returncode == 0


def test_ocf11_meta_data_is_valid_against_the_rng():
    rng = schemas_dir("ocf-1.1-ra-api.rng") / "ocf-1.1-ra-api.rng"
    doc = meta_data(OCF_RA_VERSION_MAJOR="1", OCF_RA_VERSION_MINOR="1")
    assert "<!DOCTYPE" not in doc and "<version>1.1</version>" in doc
    r = subprocess.run(["xmllint", "--noout", "--relaxng", str(rng), "-"], input=doc,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # ...and it is not valid against the 1.0 DTD (the dialect choice is real).
    assert 'type="select"' in doc and 'reload-agent' in doc
