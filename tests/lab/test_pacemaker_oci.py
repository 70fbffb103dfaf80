"""A real two-node Pacemaker cluster on the OCI lab moves ocf:cloudha:vip (cloud=oci, instance
principals) when the node holding it crashes: OCI ends with the private IP on node2's VNIC and
the client, in another subnet, is served by node2. The outage the client saw is printed.

Same cluster as test_pacemaker_failover.py (tests/lab/pcmk.py) on the OCI lab's fabric
(tests/lab/ocilab). Needs root, corosync, pacemaker, pcs, the lab's Python packages
(scripts/install-deps.sh) and CLOUDHA_BIN. Nothing skips.
"""

import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import failover  # noqa: E402
from ocilab import OciLab  # noqa: E402

VIP = "10.0.1.100"
BOUND = 30.0


@pytest.fixture
def lab(request):
    t0 = time.monotonic()
    failed_before = request.session.testsfailed
    with OciLab(nodes=2, name="pcmkoci", pacemaker=True, agents=("vip",)) as lab:
        print(f"\nOCI lab and cluster up in {lab.up_seconds:.1f}s")
        yield lab
        if request.session.testsfailed > failed_before:
            for n in lab.cluster.nodes:
                if n.alive():
                    print(lab.cluster.log_tail(n, lines=30))
    print(f"lab total (up, test, teardown) {time.monotonic() - t0:.1f}s")


def test_oci_vip_fails_over_to_node2_when_node1_crashes(lab):
    n2 = lab.node(2)
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "cloud": "oci",
              "endpoint_url": lab.endpoint, "auth_endpoint_url": lab.federation_endpoint}
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

    assert lab.owners(VIP) == [n2.vnic_id], lab.owners(VIP)
    status = lab.cluster.status(on="node2")
    assert status["resources"]["vip1"]["roles"] == {"node2": "Started"}
    assert failover.vip1_failures(status) == [], status["failures"]
    mon = lab.cluster.crm_mon(on="node2", args=("-1",))
    assert re.search(r"vip1\s+\(ocf:cloudha:vip\):\s+Started node2", mon), mon
    addrs = lab.cluster.node("node2").run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
    assert f"inet {VIP}/24" in addrs, addrs
