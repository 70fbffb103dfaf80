#!/usr/bin/env python3
"""Benchmark of the vip agent (cloud=none) against resource-agents' IPaddr2, in one run.

Prints a table of medians from hyperfine; asserts nothing. Runs as root inside a private network
namespace (``cvb-<pid>``, a veth pair with 10.201.0.1/24); nothing leaves it.

    CLOUDHA_BIN=.../release/cloudha python3 bench/vip.py [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

NS = f"cvb-{os.getpid()}"
VIP = "10.201.0.50"
IPADDR2 = "/usr/lib/ocf/resource.d/heartbeat/IPaddr2"


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc={p.returncode}\n{p.stdout}{p.stderr}")
    return p


def env_prefix(extra: dict[str, str]) -> str:
    base = {
        "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RESOURCE_INSTANCE": "bench",
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESKEY_ip": VIP,
        "OCF_RESKEY_cidr_netmask": "24",
        "OCF_RESKEY_nic": "eth0",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    base.update(extra)
    return "env -i " + " ".join(f"{k}={v}" for k, v in base.items())


def hyperfine(runs: int, cases: list[tuple[str, str, str | None]]) -> dict[str, dict]:
    """cases: (label, command, prepare). Returns hyperfine's result per label."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = ["ip", "netns", "exec", NS, "hyperfine", "-N", "--style", "none", "--runs", str(runs),
               "--warmup", "3", "--export-json", out.name, "-i"]
        for label, command, prepare in cases:
            cmd += ["--prepare", prepare or "true", "-n", label, command]
        sh(*cmd)
        data = json.load(open(out.name))
    return {r["command"]: r for r in data["results"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    ours = os.environ.get("CLOUDHA_BIN")
    if not ours:
        sys.exit("set CLOUDHA_BIN to the cloudha binary")
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "-n", NS, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        sh("ip", "-n", NS, "addr", "add", "10.201.0.1/24", "dev", "eth0")
        for dev in ("lo", "eth0", "eth1"):
            sh("ip", "-n", NS, "link", "set", dev, "up")
        link_dir = tempfile.mkdtemp(prefix="cvb-")
        agent = os.path.join(link_dir, "vip")
        os.symlink(ours, agent)
        rec = {"OCF_RESKEY_CRM_meta_interval": "10000"}
        ra = {"OCF_RESKEY_cloud": "none"}
        quiet = {**ra, "OCF_RESKEY_arp_count": "0"}
        add = f"ip addr replace {VIP}/24 dev eth0"
        dele = f"ip addr flush to {VIP}/32 dev eth0"
        cases = [
            ("cloudha meta-data", f"{env_prefix({})} {agent} meta-data", None),
            ("IPaddr2 meta-data", f"{env_prefix({})} {IPADDR2} meta-data", None),
            ("cloudha recurring monitor", f"{env_prefix({**ra, **rec})} {agent} monitor", add),
            ("IPaddr2 recurring monitor", f"{env_prefix(rec)} {IPADDR2} monitor", add),
            ("cloudha probe (absent)", f"{env_prefix(ra)} {agent} monitor", dele),
            ("IPaddr2 probe (absent)", f"{env_prefix({})} {IPADDR2} monitor", dele),
            ("cloudha start (5 GARP, 200 ms)", f"{env_prefix(ra)} {agent} start", dele),
            ("cloudha start (arp_count=0)", f"{env_prefix(quiet)} {agent} start", dele),
            ("IPaddr2 start (arp in background)", f"{env_prefix({})} {IPADDR2} start", dele),
            ("cloudha stop", f"{env_prefix(ra)} {agent} stop", add),
            ("IPaddr2 stop", f"{env_prefix({})} {IPADDR2} stop", add),
        ]
        res = hyperfine(args.runs, cases)
        print(f"vip (cloud=none) vs IPaddr2, {args.runs} runs each, medians (hyperfine, in a namespace)")
        print(f"{'what':38} {'median ms':>10} {'user ms':>8} {'sys ms':>8}")
        for label, _, _ in cases:
            r = res[label]
            print(f"{label:38} {r['median'] * 1000:10.2f} {r['user'] * 1000:8.2f} {r['system'] * 1000:8.2f}")
        os.unlink(agent)
        os.rmdir(link_dir)
    finally:
        sh("ip", "netns", "del", NS, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
