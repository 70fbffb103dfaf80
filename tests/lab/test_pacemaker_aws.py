"""A real two-node Pacemaker cluster on the EC2 lab moves ocf:cloudha:vip (cloud=aws) when the
node holding it crashes: EC2 ends with exactly node2's ENI holding the address and the client,
in another subnet, is served by node2. The outage the client saw is printed.

Same cluster as test_pacemaker_failover.py (tests/lab/pcmk.py), but the nodes sit on the EC2
lab's VPC fabric: eth0 has the ENI's MAC and address, IMDS answers on 169.254.169.254 inside
each node, and the fabric delivers the address only to the ENI EC2 says holds it. Needs root,
corosync, pacemaker, pcs, moto (scripts/install-deps.sh) and CLOUDHA_BIN. Nothing skips.
"""

import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import failover  # noqa: E402
from ec2lab import Ec2Lab  # noqa: E402

VIP = "10.0.1.100"
BOUND = 30.0


@pytest.fixture
def lab(request):
    t0 = time.monotonic()
    failed_before = request.session.testsfailed
    with Ec2Lab(nodes=2, name="pcmkaws", pacemaker=True, agents=("vip",)) as lab:
        print(f"\nEC2 lab and cluster up in {lab.up_seconds:.1f}s")
        yield lab
        if request.session.testsfailed > failed_before:
            for n in lab.cluster.nodes:
                if n.alive():
                    print(lab.cluster.log_tail(n, lines=30))
    print(f"lab total (up, test, teardown) {time.monotonic() - t0:.1f}s")


def test_aws_vip_fails_over_to_node2_when_node1_crashes(lab):
    n1, n2 = lab.node(1), lab.node(2)
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "cloud": "aws",
              "endpoint_url": lab.endpoint}
    out = failover.run(lab.cluster, bound=BOUND, vip=VIP, params=params)
    print("timeline (seconds relative to the crash):")
    print(out.timeline())

    assert out.last_from("node1", out.crash_at) is not None, "node1 never answered"
    first2 = out.first_from("node2", out.crash_at)
    assert first2 is not None, f"node2 never answered on the VIP within {BOUND}s"
    assert out.started_seen_at is not None, "crm_mon never showed vip1 Started on node2"
    assert "node1" not in [a for t, a in out.polls if t > first2]
    print(f"client outage (last node1 answer -> first node2 answer): {out.outage:.3f}s")
    print(f"crash -> first node2 answer: {first2 - out.crash_at:.3f}s")

    # EC2's view: exactly node2's ENI holds the address (node1 could not release it: it
    # crashed; node2's start took it with AllowReassignment).
    assert lab.owners(VIP) == [n2.eni_id], lab.owners(VIP)
    assert n1.eni_id != n2.eni_id
    status = lab.cluster.status(on="node2")
    assert status["resources"]["vip1"]["roles"] == {"node2": "Started"}
    assert failover.vip1_failures(status) == [], status["failures"]
    mon = lab.cluster.crm_mon(on="node2", args=("-1",))
    assert re.search(r"vip1\s+\(ocf:cloudha:vip\):\s+Started node2", mon), mon
    addrs = lab.cluster.node("node2").run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
    assert f"inet {VIP}/24" in addrs, addrs
