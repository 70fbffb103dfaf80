"""A real two-node Pacemaker cluster on the EC2 lab moves ocf:cloudha:vip (cloud=aws) when the
node holding it crashes, in the production setup: stonith-enabled=true and one fence_cloudha
device per node (no pcmk_host_map: the Name tag is the node name). The survivor may start the
VIP only once the crashed node is fenced: StopInstances by node 2, the instance stopped, then
the address assigned to node 2's ENI. Pacemaker's reboot starts the instance again, the lab
boots node 1 and it rejoins while the VIP stays on node 2 (resource-stickiness). EC2 ends with
exactly node2's ENI holding the address and the client, in another subnet, is served by node2.
The timeline and the outage the client saw are printed.

The nodes sit on the EC2 lab's VPC fabric (tests/lab/pcmk.py on tests/lab/ec2lab): eth0 has the
ENI's MAC and address, IMDS answers on 169.254.169.254 inside each node, and the fabric delivers
the address only to the ENI EC2 says holds it. Needs root, corosync, pacemaker, pcs, moto
(scripts/install-deps.sh) and CLOUDHA_BIN. Nothing skips.
"""

import failover
from ec2lab import Ec2Lab

VIP = "10.0.1.100"
BOUND = 60.0


CLUSTER = (Ec2Lab, "pcmkaws", ("vip",), {"stonith": True})  # the `lab` fixture


def test_aws_vip_fails_over_to_node2_when_node1_crashes(lab):
    n1, n2 = lab.node(1), lab.node(2)
    cloud = {"cloud": "aws", "endpoint_url": lab.endpoint}
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", **cloud}
    out = failover.stonith_failover(lab, VIP, params, {**cloud, "power_timeout": "30"},
                                    reboot=True, bound=BOUND, fail="crash")
    failover.check_moved_to_node2(lab.cluster, out, BOUND, failover.AGENT, VIP, 24)
    failover.check_fenced_first(lab, out)
    # EC2's view: exactly node2's ENI holds the address (node1 could not release it: it
    # crashed; node2's start took it with AllowReassignment).
    assert lab.owners(VIP) == [n2.eni_id], lab.owners(VIP)
    assert n1.eni_id != n2.eni_id
    failover.check_rejoined(lab, "node1", VIP)
    assert lab.owners(VIP) == [lab.node(2).eni_id], "the rebooted node left the address alone"
