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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lab"))

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


def main() -> int:
    # What must be sequential: start moves (write) then confirms (read); stop reads who holds
    # the address, then releases it only if this ENI still does; a probe reads.
    limits = {"start": "wr", "stop": "rw", "probe": "r"}
    return vipbench.main("vip cloud=aws vs awsvip on the EC2 lab", Ec2Lab, params, ec2_calls,
                         AwsVip, reset, "EC2", peer_runs=5, limits=limits)


if __name__ == "__main__":
    sys.exit(main())
