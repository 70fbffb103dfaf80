"""The production setup on the EC2 lab with the instance stop taking as long as on EC2: a
two-node Pacemaker cluster with stonith-enabled=true and one fence_cloudha device per node whose
reboot is off (pcmk_reboot_action=off: the fenced instance stays stopped). Node 1 is frozen,
not killed (SIGSTOP: its corosync stops answering while its instance still runs), so the VIP
may move only after node 2 has fenced node 1 through the EC2 API: StopInstances by node 2's
credentials, the instance `stopping` for STOP_DELAY s, then `stopped` with its processes and
network gone, then vip1 started on node 2. The timeline (lost, fencing requested, fenced, start
done, client answered) is printed. Needs root, corosync, pacemaker, pcs, moto
(scripts/install-deps.sh) and CLOUDHA_BIN. Nothing skips.
"""

import failover
from ec2lab import Ec2Lab

VIP = "10.0.1.100"
BOUND = 60.0
STOP_DELAY = 3.0

CLUSTER = (Ec2Lab, "stonaws", ("vip",), {"stonith": True})  # the `lab` fixture


def instance_state(lab, node) -> str:
    out = lab.ec2.describe_instances(InstanceIds=[node.instance_id])
    return out["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_frozen_node1_is_fenced_through_the_api_before_the_vip_moves(lab):
    c = lab.cluster
    n1, n2 = lab.node(1), lab.node(2)
    cloud = {"cloud": "aws", "endpoint_url": lab.endpoint}
    params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", **cloud}
    out = failover.stonith_failover(lab, VIP, params, {**cloud, "power_timeout": "30"},
                                    power_delay=STOP_DELAY, bound=BOUND)
    failover.check_moved_to_node2(c, out, BOUND, failover.AGENT, VIP, 24)
    failover.check_fenced_first(lab, out)
    # Off, not reboot: the instance stays stopped and nothing starts it.
    assert instance_state(lab, n1) == "stopped"
    assert not [x for x in lab.calls(out.crash_at) if x["action"] == "StartInstances"]
    # The stopped instance lost its processes: the frozen daemons are gone, not just stopped.
    c.wait_for(lambda: not any(p.alive() for p in c.daemons["node1"].values()), 10,
               "node1's daemons killed with its instance")
    assert lab.owners(VIP) == [n2.eni_id], lab.owners(VIP)


def test_the_fencer_lists_the_agent_and_reads_its_metadata(lab):
    """What an admin checks first: Pacemaker's fencer finds /usr/sbin/fence_cloudha and reads
    its meta-data (node 2 is the survivor of the test above)."""
    node = lab.cluster.node("node2")
    listed = node.run(["stonith_admin", "--list-installed"]).stdout.split()
    assert "fence_cloudha" in listed, listed
    meta = node.run(["stonith_admin", "--metadata", "--agent", "fence_cloudha"]).stdout
    assert '<resource-agent name="fence_cloudha"' in meta and 'name="plug"' in meta, meta
