"""How the cloud lab tests and benchmarks call an agent inside a lab node, the way Pacemaker
does: action in argv[1], parameters as OCF_RESKEY_*, no cloud settings in the environment
(credentials come from the node's own identity), an empty HOME and a run directory per node."""

from __future__ import annotations

import time
from pathlib import Path

import netns

VIP = "10.0.1.100"


def run_dir(lab, node) -> Path:
    d = lab.dir / f"run-{node.name}"
    d.mkdir(exist_ok=True)
    return d


def agent_env(lab, node, defaults: dict, extra_env=None, instance="vip1", **params) -> dict:
    """The environment of one call (netns.agent_env): `defaults` then `params` as OCF_RESKEY_*
    (None drops a parameter), then `extra_env`."""
    home = lab.dir / "empty-home"
    home.mkdir(exist_ok=True)
    base = netns.host_env(("AWS_", "OCI_", "OCF_", "HA_"), proxies=False)
    base.update({"HOME": str(home), "CLOUDHA_RUN_DIR": str(run_dir(lab, node)),
                 "CLOUDHA_DMI_DIR": "/nonexistent"})
    return netns.agent_env({**defaults, **params}, extra_env, instance=instance, base=base)


def call(lab, node, action, defaults: dict, extra_env=None, timeout=30, agent="vip",
         instance="vip1", **params) -> netns.Result:
    """Run `cloudha <agent> <action>` in `node` and print what it said."""
    node = lab.node(node)
    t0 = time.monotonic()
    p = node.exec([netns.cloudha_bin(), agent, action], timeout=timeout,
                  env=agent_env(lab, node, defaults, extra_env, instance, **params))
    r = netns.Result(p, time.monotonic() - t0)
    print(f"{node.name} {agent} {action} -> {r.rc} in {r.elapsed:.3f}s\n{p.stderr.strip()}")
    return r


def has_addr(node, ip=VIP, dev="eth0") -> bool:
    return f"inet {ip}/" in node.exec(["ip", "-o", "addr", "show", "dev", dev]).stdout


def check_ring(lab) -> None:
    """Both nodes of a two-node lab cluster online, corosync's ring on their cloud addresses."""
    st = lab.cluster.status()
    assert {n: v["online"] for n, v in st["nodes"].items()} == {"node1": True, "node2": True}
    n1, n2 = lab.nodes
    conf = (lab.cluster.dir / "node1" / "etc-corosync" / "corosync.conf").read_text()
    assert f"ring0_addr: {n1.ip}" in conf and f"ring0_addr: {n2.ip}" in conf


def check_follow_then_crash(lab, vip: str, port: int) -> None:
    """The address answers from whichever node the cloud assigns it to, and a crash of node 1
    takes that node off the network."""
    n1, n2 = lab.nodes
    for n in lab.nodes:
        n.serve_name(port)
        n.machine.run(["ip", "addr", "add", f"{vip}/24", "dev", "eth0"])
    lab.assign(vip, n1)
    assert lab.who_answers(vip, port) == "node1"
    lab.assign(vip, n2)
    assert lab.who_answers(vip, port) == "node2"
    lab.assign(vip, n1)
    lab.cluster.crash("node1")
    netns.wait_for(lambda: lab.who_answers(n1.ip, port, timeout=0.2) is None, 5,
                   "node1 gone from the network")
