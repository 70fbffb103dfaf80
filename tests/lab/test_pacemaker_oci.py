"""A real two-node Pacemaker cluster on the OCI lab, in the production setup: stonith-enabled=true
and one fence_cloudha device per node (cloud=oci, instance principals, no pcmk_host_map: the
display name is the node name). Node 1 is frozen, not killed (its corosync stops answering
while its instance still runs), so node 2 must fence it through the OCI API before the VIP may
move: InstanceAction STOP by node 2, the instance STOPPING for 2 s as on a real cloud, then
STOPPED with its machine gone, then the private IP moved to node 2's VNIC. Pacemaker's reboot
then starts the instance again; the lab boots node 1 and it rejoins, and the VIP stays on
node 2 (resource-stickiness). The timeline is printed. Needs root, corosync, pacemaker, pcs,
the lab's Python packages (scripts/install-deps.sh) and CLOUDHA_BIN. Nothing skips.
"""

import failover
from ocilab import OciLab

VIP = "10.0.1.100"
BOUND = 60.0
POWER_DELAY = 2.0

CLUSTER = (OciLab, "pcmkoci", ("vip",), {"stonith": True})  # the `lab` fixture


def test_oci_frozen_node1_is_fenced_then_the_vip_moves_and_node1_rejoins(lab):
    cloud = {"cloud": "oci", "endpoint_url": lab.endpoint,
             "auth_endpoint_url": lab.federation_endpoint}
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", **cloud}
    out = failover.stonith_failover(lab, VIP, params, {**cloud, "power_timeout": "30"},
                                    power_delay=POWER_DELAY, reboot=True, bound=BOUND)
    failover.check_moved_to_node2(lab.cluster, out, BOUND, failover.AGENT, VIP, 24)
    failover.check_fenced_first(lab, out)
    assert lab.owners(VIP) == [lab.node(2).vnic_id], lab.owners(VIP)
    failover.check_rejoined(lab, "node1", VIP)
