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
