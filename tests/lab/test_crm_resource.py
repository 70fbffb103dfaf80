"""Pacemaker's own agent runner (crm_resource, no cluster needed) against ocf:cloudha:vip.

crm_resource looks agents up under /usr/lib/ocf/resource.d/<provider>/<agent>. The host's
filesystem is not touched: every call runs in a private mount namespace (unshare --mount) where
a tmpfs over /usr/lib/ocf/resource.d holds only cloudha/vip -> the binary, and inside a private
network namespace (ip netns exec) for the address.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import tempfile

import pytest

from netns import Lab, cloudha_bin

OCF_DIR = "/usr/lib/ocf/resource.d"
REPO = pathlib.Path(__file__).resolve().parents[2]
AGENT = ["--class", "ocf", "--provider", "cloudha", "--agent", "vip"]
IP = "10.77.0.100"

# In a fresh mount namespace: tmpfs over the agents directory, one link, then crm_resource in
# the network namespace ($1). `ip netns exec` makes its own mount namespace from this one.
_WRAP = r"""
set -e
bin=$1; ns=$2; shift 2
mount -t tmpfs -o mode=0755,size=1m cvt-ocf "$CVT_OCF_DIR"
mkdir "$CVT_OCF_DIR/cloudha"
ln -s "$bin" "$CVT_OCF_DIR/cloudha/vip"
[ -n "$EXTRA_AGENT" ] && ln -s "$EXTRA_AGENT" "$CVT_OCF_DIR/cloudha/envdump"
exec ip netns exec "$ns" crm_resource "$@"
"""


def crm(ns: str, *args: str, extra_agent: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCF_", "_CRS_", "HA_"))}
    env.update(CVT_OCF_DIR=OCF_DIR, EXTRA_AGENT=extra_agent)
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", _WRAP,
                        "sh", cloudha_bin(), ns, *args],
                       capture_output=True, text=True, env=env, timeout=120)
    print(f"crm_resource {' '.join(args)} -> rc={p.returncode}\n{p.stdout}{p.stderr}")
    return p


@pytest.fixture
def node():
    assert not os.path.exists(f"{OCF_DIR}/cloudha"), "host already has a cloudha provider"
    with Lab() as lab:
        a = lab.node("a", "10.77.0.1/24")
        lab.node("b", "10.77.0.2/24")
        yield a
    assert not os.path.exists(f"{OCF_DIR}/cloudha"), "the host filesystem was modified"


def opts(**params) -> list[str]:
    out = []
    for k, v in params.items():
        out += ["--option", f"{k}={v}"]
    return out


def test_validate(node):
    p = crm(node.ns, "--validate", *AGENT, *opts(ip=IP, cloud="none"))
    assert p.returncode == 0 and "returned 0 (ok)" in p.stdout
    # Level 10 looks at the host (inside the namespace): interface, prefix.
    p = crm(node.ns, "--validate=10", *AGENT, *opts(ip=IP, cloud="none"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"address: {IP}/24 on eth0" in p.stdout

    # Wrong everywhere -> 6 (not configured), with the agent's exit reason.
    p = crm(node.ns, "--validate", *AGENT, *opts(ip="10.77.0.0", cidr_netmask=24, cloud="none"))
    assert p.returncode == 6, p.stdout + p.stderr
    assert "returned 6 (not configured: ip=10.77.0.0 is the network address" in p.stdout
    p = crm(node.ns, "--validate", *AGENT, *opts(cloud="none"))
    assert p.returncode == 6 and "required parameter 'ip'" in p.stdout
    p = crm(node.ns, "--validate", *AGENT, *opts(ip=IP, cloud="azure"))
    assert p.returncode == 6, p.stdout + p.stderr
    # Wrong on this node only -> 2 (invalid parameter), only found at level 10.
    p = crm(node.ns, "--validate=10", *AGENT, *opts(ip="192.0.2.4", cloud="none"))
    assert p.returncode == 2 and "directly connected" in p.stdout, p.stdout
    assert node.has(IP) == [] and node.has("192.0.2.4") == []


def test_force_start_check_stop(node):
    o = opts(ip=IP, cloud="none", arp_count=1)
    p = crm(node.ns, "--force-check", *AGENT, *o)
    assert p.returncode == 7 and "returned 7 (not running)" in p.stdout

    p = crm(node.ns, "--force-start", *AGENT, *o)
    assert p.returncode == 0 and "returned 0 (ok)" in p.stdout
    assert [(a[0], a[2]) for a in node.has(IP)] == [("eth0", 24)]

    p = crm(node.ns, "--force-check", *AGENT, *o)
    assert p.returncode == 0 and "returned 0 (ok)" in p.stdout
    p = crm(node.ns, "--force-check=10", *AGENT, *o)
    assert p.returncode == 0, p.stdout + p.stderr

    p = crm(node.ns, "--force-start", *AGENT, *o)
    assert p.returncode == 0 and len(node.has(IP)) == 1

    p = crm(node.ns, "--force-stop", *AGENT, *o)
    assert p.returncode == 0 and node.has(IP) == []
    p = crm(node.ns, "--force-check", *AGENT, *o)
    assert p.returncode == 7
    p = crm(node.ns, "--force-stop", *AGENT, *o)
    assert p.returncode == 0 and "nothing to remove" in p.stdout + p.stderr

    p = crm(node.ns, "--force-start", *AGENT, *opts(ip=IP, cloud="none", nic="eth7"))
    assert p.returncode == 5 and "nic=eth7 does not exist" in p.stdout
    assert node.has(IP) == []


def test_show_metadata_is_ocf_1_1(node):
    p = crm(node.ns, "--show-metadata", "ocf:cloudha:vip")
    assert p.returncode == 0, p.stderr
    doc = p.stdout
    assert "<!DOCTYPE" not in doc and "<version>1.1</version>" in doc
    for word in ('type="select"', '<option value="none"/>', 'unique-group="address"',
                 'reloadable="1"', 'name="reload-agent"'):
        assert word in doc, word
    rng = next(d / "ocf-1.1-ra-api.rng" for d in (REPO / "metadata", REPO / "metadata/schemas")
               if (d / "ocf-1.1-ra-api.rng").is_file())
    r = subprocess.run(["xmllint", "--noout", "--relaxng", str(rng), "-"], input=doc,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_pacemaker_declares_ocf_1_1(node):
    """What Pacemaker 2.1.x really puts in an agent's environment (an env-dumping agent)."""
    d = tempfile.mkdtemp(prefix="cvt-env-")
    try:
        script = pathlib.Path(d, "envdump")
        script.write_text(
            "#!/bin/sh\nenv | grep -E '^(OCF_|HA_|PCMK_)' | sort > \"" + d + "/$1\"\n"
            "echo '<?xml version=\"1.0\"?><resource-agent name=\"envdump\"><version>1.1"
            "</version><longdesc lang=\"en\">x</longdesc><shortdesc lang=\"en\">x</shortdesc>"
            "<parameters/><actions/></resource-agent>'\n")
        script.chmod(0o755)
        assert crm(node.ns, "--show-metadata", "ocf:cloudha:envdump",
                   extra_agent=str(script)).returncode == 0
        assert crm(node.ns, "--force-check", "--class", "ocf", "--provider", "cloudha",
                   "--agent", "envdump", *opts(ip=IP), extra_agent=str(script)).returncode == 0

        def env_of(action):
            lines = pathlib.Path(d, action).read_text().splitlines()
            return dict(l.split("=", 1) for l in lines)

        md, mon = env_of("meta-data"), env_of("monitor")
        print("meta-data env:", md, "\nmonitor env:", mon)
        assert md["OCF_RA_VERSION_MAJOR"] == "1" and md["OCF_RA_VERSION_MINOR"] == "1"
        assert mon["OCF_RA_VERSION_MINOR"] == "1"
        assert mon["OCF_RESKEY_CRM_meta_timeout"] == "20000"
        assert "OCF_RESKEY_CRM_meta_interval" not in mon, "--force-check is a probe"
        assert mon["OCF_RESKEY_ip"] == IP
        assert mon["OCF_EXIT_REASON_PREFIX"] == "ocf-exit-reason:"
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)
