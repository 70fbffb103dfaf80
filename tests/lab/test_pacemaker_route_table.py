"""A real two-node Pacemaker cluster on the EC2 lab runs ocf:cloudha:route-table: an overlay IP
outside the VPC CIDR, routed by three VPC route tables (one of them the client subnet's). When
node1 crashes, node2's start points every table at node2's ENI and the client, in another
subnet, reaches the overlay IP on node2. The outage the client saw is printed.

Same cluster as test_pacemaker_aws.py; the fabric routes the overlay IP only through the
client subnet's route table (tests/lab/ec2lab). Needs root, corosync, pacemaker, pcs, moto
(scripts/install-deps.sh) and CLOUDHA_BIN. Nothing skips.
"""

import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import failover  # noqa: E402
from ec2lab import Ec2Lab  # noqa: E402

OVERLAY = "192.168.100.10"
DEST = OVERLAY + "/32"
BOUND = 30.0


@pytest.fixture
def lab(request):
    t0 = time.monotonic()
    failed_before = request.session.testsfailed
    with Ec2Lab(nodes=2, name="pcmkrt", pacemaker=True, agents=("route-table",)) as lab:
        print(f"\nEC2 lab and cluster up in {lab.up_seconds:.1f}s")
        yield lab
        if request.session.testsfailed > failed_before:
            for n in lab.cluster.nodes:
                if n.alive():
                    print(lab.cluster.log_tail(n, lines=30))
    print(f"lab total (up, test, teardown) {time.monotonic() - t0:.1f}s")


def test_route_table_fails_over_to_node2_when_node1_crashes(lab):
    n1, n2 = lab.node(1), lab.node(2)
    tables = [lab.create_route_table([lab.client_subnet_id]), lab.create_route_table(),
              lab.create_route_table()]
    for n in (n1, n2):  # an overlay IP needs the check off (the admin's job here)
        lab.set_source_dest_check(n, False)
    for t in tables:  # the routes exist beforehand (LifeKeeper's rule), pointing at node2
        lab.set_route(t, DEST, n2, wait=False)
    lab.sync()
    params = {"ip": OVERLAY, "route_tables": ",".join(tables), "nic": "eth0",
              "endpoint_url": lab.endpoint}
    out = failover.run(lab.cluster, bound=BOUND, vip=OVERLAY, params=params,
                       agent="ocf:cloudha:route-table")
    print("timeline (seconds relative to the crash):")
    print(out.timeline())

    assert out.last_from("node1", out.crash_at) is not None, "node1 never answered"
    first2 = out.first_from("node2", out.crash_at)
    assert first2 is not None, f"node2 never answered on the overlay IP within {BOUND}s"
    assert out.started_seen_at is not None, "crm_mon never showed vip1 Started on node2"
    assert "node1" not in [a for t, a in out.polls if t > first2]
    print(f"client outage (last node1 answer -> first node2 answer): {out.outage:.3f}s")
    print(f"crash -> first node2 answer: {first2 - out.crash_at:.3f}s")

    routed = [lab.route_target(t, DEST) for t in tables]
    assert routed == [(n2.eni_id, "active")] * 3, routed
    status = lab.cluster.status(on="node2")
    assert status["resources"]["vip1"]["roles"] == {"node2": "Started"}
    assert failover.vip1_failures(status) == [], status["failures"]
    mon = lab.cluster.crm_mon(on="node2", args=("-1",))
    assert re.search(r"vip1\s+\(ocf:cloudha:route-table\):\s+Started node2", mon), mon
    addrs = lab.cluster.node("node2").run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
    assert f"inet {OVERLAY}/32" in addrs, addrs
