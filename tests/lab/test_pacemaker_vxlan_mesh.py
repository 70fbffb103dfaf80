"""A real three-node Pacemaker cluster runs ocf:cloudha:vxlan-fdb as a clone with
peers_from=corosync; when one node crashes, the two others keep talking over the overlay.

Needs root, corosync, pacemaker and pcs (scripts/install-deps.sh) and CLOUDHA_BIN (make lab).
"""

import re
import time

import pytest

import pcmk

SUBNET = "10.78.0"


def overlay(i: int) -> str:
    return f"10.99.0.{i}"


@pytest.fixture
def lab(request):
    failed_before = request.session.testsfailed
    with pcmk.Lab(nodes=3, agents=("vxlan-fdb",), name="mesh", subnet=SUBNET, client=False) as lab:
        yield lab
        if request.session.testsfailed > failed_before:
            for n in lab.nodes:
                if n.alive():
                    print(lab.log_tail(n, lines=30))


def test_clone_mesh_survives_a_node_crash(lab):
    n1 = lab.node(1)
    # The same parameters on every node: each node picks its own address by underlay key.
    address = " ".join(f"{n.ip}={overlay(i)}/24" for i, n in enumerate(lab.nodes, 1))
    n1.run(
        ["pcs", "resource", "create", "mesh", "ocf:cloudha:vxlan-fdb", "vni=10",
         "peers_from=corosync", f"address={address}", "op", "monitor", "interval=2s", "clone"]
    )
    names = [n.name for n in lab.nodes]
    lab.wait_for(lambda: lab.where("mesh") == names, 60, "mesh running on all three nodes")
    for i, n in enumerate(lab.nodes, 1):
        fdb = n.run(["bridge", "fdb", "show", "dev", "vxlan10"]).stdout
        flood = sorted(l.split()[2] for l in fdb.splitlines() if l.startswith("00:00:00:00:00:00"))
        assert flood == sorted(m.ip for m in lab.nodes if m is not n), f"{n.name}: {fdb}"
        for j in range(1, 4):
            if j != i:
                n.run(["ping", "-c1", "-W2", overlay(j)])
    n2 = lab.node(2)
    pinger = n1.spawn(["ping", "-n", "-i", "0.05", "-c", "120", overlay(2)], "mesh-ping")
    time.sleep(1.5)
    lab.crash(3)
    lab.wait_for(lambda: not lab.status()["nodes"]["node3"]["online"], 30, "node3 seen as lost")
    deadline = time.monotonic() + 20
    while pinger.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    out = pinger.log.read_text()
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m and m.group(1) == m.group(2), f"node1 -> node2 lost packets across the crash:\n{out}"
    n2.run(["ping", "-c1", "-W2", overlay(1)])
    assert lab.where("mesh") == ["node1", "node2"]
    assert not lab.status()["resources"]["mesh"]["failed"]
