"""A real two-node Pacemaker cluster moves ocf:cloudha:vip when the node holding it crashes.

Needs root, corosync, pacemaker and pcs (scripts/install-deps.sh) and CLOUDHA_BIN (make lab).
Nothing here skips: a missing prerequisite is a failure.
"""

import re
import time

import pytest

import failover
import pcmk

BOUND = 30.0  # seconds within which the VIP must answer from node2 after the crash


@pytest.fixture
def lab(request):
    t0 = time.monotonic()
    failed_before = request.session.testsfailed
    with pcmk.Lab(nodes=2, agents=("vip",), name="failover") as lab:
        print(f"\nlab up in {lab.up_seconds:.1f}s")
        yield lab
        if request.session.testsfailed > failed_before:
            # Enough of the logs to debug a failure from CI output alone.
            for n in lab.nodes:
                if n.alive():
                    print(lab.log_tail(n, lines=30))
    print(f"lab total (up, test, teardown) {time.monotonic() - t0:.1f}s")


def test_vip_fails_over_to_node2_when_node1_crashes(lab):
    out = failover.run(lab, bound=BOUND)
    print(f"resource created with {out.tool}")
    print("timeline (seconds relative to the crash):")
    print(out.timeline())

    # The client was served by node1 until the crash, and by node2 after it, within the bound.
    assert out.last_from("node1", out.crash_at) is not None, "node1 never answered"
    first2 = out.first_from("node2", out.crash_at)
    assert first2 is not None, f"node2 never answered on the VIP within {BOUND}s"
    assert first2 - out.crash_at < BOUND
    assert out.started_seen_at is not None, "crm_mon never showed vip1 Started on node2"
    after = [a for t, a in out.polls if t > first2]
    assert "node1" not in after, "node1 answered after node2 took over"
    print(f"client outage (last node1 answer -> first node2 answer): {out.outage:.3f}s")
    print(f"crash -> first node2 answer: {first2 - out.crash_at:.3f}s")

    # What an operator sees.
    mon = lab.crm_mon(on="node2", args=("-1",))
    assert re.search(r"vip1\s+\(ocf:cloudha:vip\):\s+Started node2", mon), mon
    status = lab.status(on="node2")
    assert status["resources"]["vip1"]["roles"] == {"node2": "Started"}
    assert not status["resources"]["vip1"]["failed"]
    assert failover.vip1_failures(status) == [], status["failures"]
    full = lab.crm_mon(on="node2", args=("-1rf",))
    assert "Failed Resource Actions" not in full, full
    assert "ocf-exit-reason" not in full and "exitreason" not in full, full

    # The address lives on node2's eth0 and nowhere else among the living.
    addrs = lab.node("node2").run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
    assert f"inet {failover.VIP}/24" in addrs, addrs
