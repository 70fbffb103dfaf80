"""A real two-node Pacemaker cluster on the EC2 lab runs ocf:cloudha:route-table: an overlay IP
outside the VPC CIDR, routed by three VPC route tables (one of them the client subnet's). When
node1 crashes, node2's start points every table at node2's ENI and the client, in another
subnet, reaches the overlay IP on node2. The outage the client saw is printed.

Same cluster as test_pacemaker_aws.py; the fabric routes the overlay IP only through the
client subnet's route table (tests/lab/ec2lab). Needs root, corosync, pacemaker, pcs, moto
(scripts/install-deps.sh) and CLOUDHA_BIN. Nothing skips.
"""

import failover
from ec2lab import Ec2Lab

OVERLAY = "192.168.100.10"
DEST = OVERLAY + "/32"
BOUND = 30.0


CLUSTER = (Ec2Lab, "pcmkrt", ("route-table",))  # the `lab` fixture


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
    failover.check_moved_to_node2(lab.cluster, out, BOUND, "ocf:cloudha:route-table",
                                  OVERLAY, 32)
    routed = [lab.route_target(t, DEST) for t in tables]
    assert routed == [(n2.eni_id, "active")] * 3, routed
