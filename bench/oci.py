#!/usr/bin/env python3
"""Benchmark of vip cloud=oci against resource-agents' ocivip, in one run on the OCI lab.

Both agents run inside the lab's node namespaces against the same stand-in (tests/lab/ocilab,
which checks every request signature), both as instance principals. ocivip drives oci-cli
(pip, /opt/oci-cli) over HTTPS with the lab's CA, with its default api_delay (a 3 s sleep after
start and stop); it configures the OS address itself, as we do. Prints a table (medians; wall
and CPU of the whole process tree, its largest RSS, API calls per action, federation included)
and the client-observed outage of a planned move node1 -> node2. Asserts nothing.

    CLOUDHA_BIN=.../release/cloudha python3 bench/oci.py [--runs 10] [--peer-runs 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lab"))

from ocilab import OciLab  # noqa: E402
import vipbench  # noqa: E402
from vipbench import VIP, measure  # noqa: E402

OCIVIP = "/usr/lib/ocf/resource.d/heartbeat/ocivip"


def api_calls(lab):
    return lambda since: lab.calls(since)


def params(lab) -> dict:
    return {"ip": VIP, "cloud": "oci", "nic": "eth0", "cidr_netmask": "24",
            "endpoint_url": lab.endpoint, "auth_endpoint_url": lab.federation_endpoint}


class OciVip(vipbench.Peer):
    name = "ocivip (oci-cli)"

    def action(self, node, action, interval=None):
        env = self.with_interval(self.lab.ocivip_env(node, VIP, cidr_netmask=24), interval)
        return measure(self.lab, node, [OCIVIP, action], env, api_calls(self.lab))


def reset(lab):
    if lab.owners(VIP):
        lab.unassign(VIP)
    for n in lab.nodes:
        for dev in ("eth0", "eth0:0"):
            n.exec(["ip", "addr", "del", f"{VIP}/24", "dev", dev])
    lab.sync()


def main() -> int:
    # start: find the private IP object in the subnet (read), move or create it (write),
    # confirm (read); stop leaves the object in place (no call); a probe reads.
    limits = {"start": "rwr", "probe": "r"}
    return vipbench.main("vip cloud=oci vs ocivip on the OCI lab", OciLab, params, api_calls,
                         OciVip, reset, "API", peer_runs=3, limits=limits)


if __name__ == "__main__":
    sys.exit(main())
