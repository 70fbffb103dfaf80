"""A split on the EC2 lab with STONITH on: the corosync link between two healthy nodes is cut
(each node's route to the other is a blackhole; the client still reaches both), both nodes lose each other and both try to fence. The
device that fences node 1 has a delay (the two-node race guard), so node 1 fences node 2 first,
node 2's machine dies with its instance (its own, delayed fence attempt with it), and exactly
one node survives, holding the VIP. Needs root, corosync, pacemaker, pcs, moto
(scripts/install-deps.sh) and CLOUDHA_BIN. Nothing skips.
"""

import time

import failover
from ec2lab import Ec2Lab

VIP = "10.0.1.100"
DELAY = 5  # seconds node 2 waits before fencing node 1

CLUSTER = (Ec2Lab, "splitaws", ("vip",), {"stonith": True})  # the `lab` fixture


def instance_state(lab, node) -> str:
    out = lab.ec2.describe_instances(InstanceIds=[node.instance_id])
    return out["Reservations"][0]["Instances"][0]["State"]["Name"]


def cut_link(machine, peer) -> None:
    """Blackhole the route to `peer`: corosync (and anything else node to node) is cut, the
    client's subnet and the node's own IMDS and endpoint relay are not."""
    machine.run(["ip", "route", "add", "blackhole", f"{peer.ip}/32"])


def test_a_split_leaves_exactly_one_node_holding_the_vip(lab):
    c = lab.cluster
    n1, n2 = lab.node(1), lab.node(2)
    failover.fence_devices(c, {"cloud": "aws", "endpoint_url": lab.endpoint,
                               "power_timeout": "30"}, delay={"node1": DELAY})
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "cloud": "aws",
              "endpoint_url": lab.endpoint}
    failover.create_vip(c, "node1", params)
    c.wait_running(failover.RSC, "node1", timeout=30)
    for n in c.nodes:
        n.serve_hostname(failover.PORT)
    t = time.monotonic()
    cut_link(n1.machine, n2)
    cut_link(n2.machine, n1)
    print(f"corosync link cut at {t:.3f}")
    c.wait_for(lambda: not any(p.alive() for p in c.daemons["node2"].values()), 40,
               "node2 fenced (its daemons gone with its instance)")
    time.sleep(DELAY + 2)  # past node 2's delayed attempt: it must never have happened
    stops = [x for x in lab.calls(t) if x["action"] == "StopInstances"]
    print("StopInstances:", [(round(x["t"] - t, 3), x["key"], x["status"]) for x in stops])
    assert [x["key"] for x in stops] == [n1.key], "exactly one fence, by node 1"
    assert instance_state(lab, n2) == "stopped"
    assert instance_state(lab, n1) == "running"
    assert all(p.alive() for p in c.daemons["node1"].values()), "node 1 survives"
    c.wait_running(failover.RSC, "node1", timeout=20)
    assert lab.owners(VIP) == [n1.eni_id], lab.owners(VIP)
    poller = c.client.poll_tcp(VIP, failover.PORT, every=0.05, timeout=0.2)
    c.wait_for(lambda: "node1" in [a for _, a in poller.results()], 10, "node1 answering")
    poller.stop()
    print(f"split -> node2 fenced by node1: {stops[0]['t'] - t:.3f}s")
