#!/usr/bin/env python3
"""Benchmark of vip cloud=aws against resource-agents' awsvip, in one run on the EC2 lab.

Both agents run inside the lab's node namespaces against the same stand-in (moto with the
fidelity fixes, tests/lab/ec2lab), with credentials from the node's instance role (ours) or a
profile (awsvip passes --profile). awsvip only moves the address in EC2; it is paired with a
local address step (`ip addr add/del`, the cheapest there is) so both do the same work.
Prints a table (medians; wall and CPU of the whole process tree, its largest RSS, EC2 API
calls per action) and the client-observed outage of a planned move node1 -> node2. Asserts
nothing.

    CLOUDHA_BIN=.../release/cloudha python3 bench/aws.py [--runs 10] [--peer-runs 5]
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lab"))

import cloudvip  # noqa: E402
from ec2lab import Ec2Lab  # noqa: E402
import vipbench  # noqa: E402
from vipbench import VIP, measure  # noqa: E402

AWSVIP = "/usr/lib/ocf/resource.d/heartbeat/awsvip"


def ec2_calls(lab):
    return lambda since: [c for c in lab.calls(since) if c["service"] == "ec2"]


def params(lab) -> dict:
    return {"ip": VIP, "cloud": "aws", "nic": "eth0", "cidr_netmask": "24",
            "endpoint_url": lab.endpoint}


class AwsVip(vipbench.Peer):
    """awsvip + the local address step it needs (IPaddr2's job, done as cheaply as possible)."""

    name = "awsvip + ip addr"

    def action(self, node, action, interval=None):
        script = {
            "start": f"{AWSVIP} start && ip addr add {VIP}/24 dev eth0",
            "stop": f"ip addr del {VIP}/24 dev eth0 2>/dev/null; {AWSVIP} stop",
            "monitor": f"{AWSVIP} monitor",
        }[action]
        env = self.with_interval(self.lab.awsvip_env(node, VIP), interval)
        return measure(self.lab, node, ["sh", "-c", script], env, ec2_calls(self.lab))


def reset(lab):
    for owner in lab.owners(VIP):
        lab.ec2.unassign_private_ip_addresses(NetworkInterfaceId=owner, PrivateIpAddresses=[VIP])
    for n in lab.nodes:
        n.exec(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
    lab.sync()


PARALLEL = [f"10.0.1.{110 + i}" for i in range(10)]


def parallel_starts(lab, binary) -> list[str]:
    """Ten vip resources starting at once on node 1 (as Pacemaker's batch-limit allows), then
    stopping at once: total wall time and EC2 calls, ours and awsvip's."""
    node = lab.node(1)

    def ours(action, i, ip):
        env = cloudvip.agent_env(lab, node, {**params(lab), "ip": ip}, instance=f"many{i}")
        return node.exec([binary, "vip", action], env=env, timeout=120).returncode

    def peer(action, i, ip):
        script = {"start": f"{AWSVIP} start && ip addr add {ip}/24 dev eth0",
                  "stop": f"ip addr del {ip}/24 dev eth0 2>/dev/null; {AWSVIP} stop"}[action]
        env = lab.awsvip_env(node, ip)
        env["OCF_RESOURCE_INSTANCE"] = f"many{i}"
        return node.exec(["sh", "-c", script], env=env, timeout=300).returncode

    out = ["", "ten resources on node 1 at once (wall s of all ten, EC2 calls, exit codes):", "",
           "| action | agent | wall s | EC2 calls | exit codes |", "|---|---|---|---|---|"]
    for name, fn in (("cloudha vip", ours), ("awsvip + ip addr", peer)):
        for action in ("start", "stop"):
            t = time.monotonic()
            with ThreadPoolExecutor(len(PARALLEL)) as ex:
                rcs = list(ex.map(lambda a: fn(action, *a), enumerate(PARALLEL)))
            wall = time.monotonic() - t
            calls = [c for c in lab.calls(t) if c["service"] == "ec2"]
            if action == "start":
                held = sum(lab.owners(ip) == [node.eni_id] for ip in PARALLEL)
                action = f"start ({held} of {len(PARALLEL)} held by node 1 after)"
            out.append(f"| {action} | {name} | {wall:.3f} | {len(calls)} | "
                       f"{','.join(sorted(set(map(str, rcs))))} |")
        for ip in PARALLEL:
            for owner in lab.owners(ip):
                lab.ec2.unassign_private_ip_addresses(NetworkInterfaceId=owner,
                                                      PrivateIpAddresses=[ip])
            node.exec(["ip", "addr", "del", f"{ip}/24", "dev", "eth0"])
    return out


def main() -> int:
    # What must be sequential: start moves (write) then confirms (read); stop reads who holds
    # the address, then releases it only if this ENI still does; a probe reads.
    limits = {"start": "wr", "stop": "rw", "probe": "r"}
    return vipbench.main("vip cloud=aws vs awsvip on the EC2 lab", Ec2Lab, params, ec2_calls,
                         AwsVip, reset, "EC2", peer_runs=5, limits=limits,
                         extra=parallel_starts)


if __name__ == "__main__":
    sys.exit(main())
