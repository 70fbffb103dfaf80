"""The production setup on the EC2 lab: a two-node Pacemaker cluster with stonith-enabled=true
and one fence_cloudha device per node. Node 1 is frozen, not killed (SIGSTOP: its corosync
stops answering while its instance still runs), so the VIP may move only after node 2 has
fenced node 1 through the EC2 API: StopInstances by node 2's credentials, the lab's stopped
instance losing its processes and network, then vip1 started on node 2. The timeline (lost,
fencing requested, fenced, start done, client answered) is printed. Needs root, corosync,
pacemaker, pcs, moto (scripts/install-deps.sh) and CLOUDHA_BIN. Nothing skips.
"""

import failover
from ec2lab import Ec2Lab

VIP = "10.0.1.100"
BOUND = 60.0

CLUSTER = (Ec2Lab, "stonaws", ("vip",), {"stonith": True})  # the `lab` fixture


def instance_state(lab, node) -> str:
    out = lab.ec2.describe_instances(InstanceIds=[node.instance_id])
    return out["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_frozen_node1_is_fenced_through_the_api_before_the_vip_moves(lab):
    c = lab.cluster
    n1, n2 = lab.node(1), lab.node(2)
    failover.fence_devices(c, {"cloud": "aws", "endpoint_url": lab.endpoint,
                               "power_timeout": "30"})
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "cloud": "aws",
              "endpoint_url": lab.endpoint}
    out = failover.run(c, bound=BOUND, vip=VIP, params=params, fail="freeze")
    calls = lab.calls(out.crash_at)
    stops = [x for x in calls if x["action"] == "StopInstances" and x["status"] == 200]
    assigns = [x for x in calls if x["action"] == "AssignPrivateIpAddresses"]
    out.events += [(x["t"], f"EC2 StopInstances by node{2 if x['key'] == n2.key else 1}")
                   for x in stops]
    out.events += [(x["t"], "EC2 AssignPrivateIpAddresses (vip1 start)") for x in assigns]
    failover.check_moved_to_node2(c, out, BOUND, failover.AGENT, VIP, 24)
    # Fenced through the API, by node 2, once; the instance is stopped and its machine gone.
    assert [x["key"] for x in stops] == [n2.key], stops
    assert instance_state(lab, n1) == "stopped"
    # The stopped instance lost its processes: the frozen daemons are gone, not just stopped.
    c.wait_for(lambda: not any(p.alive() for p in c.daemons["node1"].values()), 10,
               "node1's daemons killed with its instance")
    # The address moved only after the fence: the start's claim follows the stop.
    assert assigns and assigns[0]["t"] > stops[0]["t"], (stops, assigns)
    assert lab.owners(VIP) == [n2.eni_id], lab.owners(VIP)
    print(f"freeze -> fenced (StopInstances): {stops[0]['t'] - out.crash_at:.3f}s")
