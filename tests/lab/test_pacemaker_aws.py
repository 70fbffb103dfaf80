"""A real two-node Pacemaker cluster on the EC2 lab moves ocf:cloudha:vip (cloud=aws) when the
node holding it crashes: EC2 ends with exactly node2's ENI holding the address and the client,
in another subnet, is served by node2. The outage the client saw is printed.

Same cluster as test_pacemaker_failover.py (tests/lab/pcmk.py), but the nodes sit on the EC2
lab's VPC fabric: eth0 has the ENI's MAC and address, IMDS answers on 169.254.169.254 inside
each node, and the fabric delivers the address only to the ENI EC2 says holds it. Needs root,
corosync, pacemaker, pcs, moto (scripts/install-deps.sh) and CLOUDHA_BIN. Nothing skips.
"""

import failover
from ec2lab import Ec2Lab

VIP = "10.0.1.100"
BOUND = 30.0


CLUSTER = (Ec2Lab, "pcmkaws", ("vip",))  # the `lab` fixture


def test_aws_vip_fails_over_to_node2_when_node1_crashes(lab):
    n1, n2 = lab.node(1), lab.node(2)
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "cloud": "aws",
              "endpoint_url": lab.endpoint}
    out = failover.run(lab.cluster, bound=BOUND, vip=VIP, params=params)
    failover.check_moved_to_node2(lab.cluster, out, BOUND, failover.AGENT, VIP, 24)
    # EC2's view: exactly node2's ENI holds the address (node1 could not release it: it
    # crashed; node2's start took it with AllowReassignment).
    assert lab.owners(VIP) == [n2.eni_id], lab.owners(VIP)
    assert n1.eni_id != n2.eni_id
