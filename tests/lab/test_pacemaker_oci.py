"""A real two-node Pacemaker cluster on the OCI lab moves ocf:cloudha:vip (cloud=oci, instance
principals) when the node holding it crashes: OCI ends with the private IP on node2's VNIC and
the client, in another subnet, is served by node2. The outage the client saw is printed.

Same cluster as test_pacemaker_failover.py (tests/lab/pcmk.py) on the OCI lab's fabric
(tests/lab/ocilab). Needs root, corosync, pacemaker, pcs, the lab's Python packages
(scripts/install-deps.sh) and CLOUDHA_BIN. Nothing skips.
"""

import failover
from ocilab import OciLab

VIP = "10.0.1.100"
BOUND = 30.0


CLUSTER = (OciLab, "pcmkoci", ("vip",))  # the `lab` fixture


def test_oci_vip_fails_over_to_node2_when_node1_crashes(lab):
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", "cloud": "oci",
              "endpoint_url": lab.endpoint, "auth_endpoint_url": lab.federation_endpoint}
    out = failover.run(lab.cluster, bound=BOUND, vip=VIP, params=params)
    failover.check_moved_to_node2(lab.cluster, out, BOUND, failover.AGENT, VIP, 24)
    assert lab.owners(VIP) == [lab.node(2).vnic_id], lab.owners(VIP)
