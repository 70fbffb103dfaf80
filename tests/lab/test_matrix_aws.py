"""The reliability matrix on the EC2 lab (issue 11): vip cloud=aws and route-table under faults
(x start, stop, probe, recurring monitor, validate-all), killed at every API call of start and
stop (then what Pacemaker runs next), and many resources moving at once.

Every cell checks the exit code against what the cluster must see, that the action ended
within its deadline, and the final ownership: the address held by exactly one ENI (every
route table pointing at one ENI) and configured on exactly that node, or on none. Rows go to
$CLOUDHA_MATRIX_REPORT for `make reliability`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cloudvip  # noqa: E402
import matrix  # noqa: E402
import netns  # noqa: E402
from ec2lab import Ec2Lab  # noqa: E402
from matrix import DEADLINE_MS  # noqa: E402

VIP = "10.0.1.100"
OVERLAY = "192.168.100.10"
DEST = OVERLAY + "/32"
REC = matrix.Recorder("aws")


@pytest.fixture(scope="module")
def lab():
    with Ec2Lab(nodes=2, name="matrix") as lab:
        lab.tables = [lab.create_route_table([lab.client_subnet_id])]
        lab.tables += [lab.create_route_table() for _ in range(2)]
        yield lab


class Agent:
    """How one agent is called and how its ownership is read."""

    def __init__(self, name: str):
        self.name = name

    def params(self, lab) -> dict:
        if self.name == "vip":
            return {"ip": VIP, "cloud": "aws", "nic": "eth0", "endpoint_url": lab.endpoint,
                    "cloud_check_interval": "0"}
        return {"ip": OVERLAY, "nic": "eth0", "endpoint_url": lab.endpoint,
                "route_tables": ",".join(lab.tables), "cloud_check_interval": "0",
                "create_missing": "true"}

    def id_of(self, node) -> str:
        return node.eni_id

    def argv(self) -> list[str]:
        return [netns.cloudha_bin(), self.name]

    def env(self, lab, node, extra=None) -> dict:
        e = cloudvip.agent_env(lab, node, self.params(lab),
                               {"OCF_RESKEY_CRM_meta_timeout": str(DEADLINE_MS),
                                "OCF_RESOURCE_INSTANCE": self.name, **(extra or {})})
        return e

    def call(self, lab, node, action, extra=None) -> matrix.Call:
        return matrix.run(node, self.argv() + [action], self.env(lab, node, extra),
                          DEADLINE_MS / 1000)

    def owners(self, lab) -> set:
        """ENIs the cloud sends the address to (route-table: the targets of every table)."""
        if self.name == "vip":
            return set(lab.owners(VIP))
        return {(lab.route_target(t, DEST) or (None,))[0] for t in lab.tables}

    def configured_on(self, lab) -> list:
        ip, plen = (VIP, 24) if self.name == "vip" else (OVERLAY, 32)
        return [n for n in lab.nodes if f"inet {ip}/{plen}" in
                n.exec(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout]

    def clear_faults(self, lab):
        lab.faults.clear()
        lab.iam.allow_all()
        lab.set_api_staleness(0)
        matrix.restore_metadata(lab)

    def reset(self, lab):
        self.clear_faults(lab)
        if self.name == "vip":
            for owner in lab.owners(VIP):
                lab.ec2.unassign_private_ip_addresses(NetworkInterfaceId=owner,
                                                      PrivateIpAddresses=[VIP])
        else:
            for t in lab.tables:
                lab.set_route(t, DEST, wait=False)
            for n in lab.nodes:
                lab.ec2.modify_network_interface_attribute(
                    NetworkInterfaceId=n.eni_id, SourceDestCheck={"Value": False})
        for n in lab.nodes:
            n.exec(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
            n.exec(["ip", "addr", "del", f"{OVERLAY}/32", "dev", "eth0"])
            for f in cloudvip.run_dir(lab, n).rglob("*"):
                if f.is_file():
                    f.unlink()
        lab.sync()

    def one_owner(self, lab, node) -> list[str]:
        """Problems unless exactly `node` holds the address, in the cloud and on the OS."""
        problems = []
        owners = self.owners(lab)
        if owners != {self.id_of(node)}:
            problems.append(f"cloud sends it to {sorted(map(str, owners))}, not "
                            f"{self.id_of(node)}")
        on = self.configured_on(lab)
        if on != [node]:
            problems.append(f"configured on {[n.name for n in on]}, not [{node.name}]")
        return problems


AGENTS = [Agent("vip"), Agent("route-table")]

# ---------------------------------------------------------------- the fault matrix

FAULTS = {
    **matrix.API_FAULTS,
    "IMDS tokens revoked": lambda lab, node: lab.imds.expire_tokens(),
    "stale reads (1.5 s)": lambda lab, node: lab.set_api_staleness(1.5),
}
EXPECT = {
    **matrix.API_EXPECT,
    "IMDS tokens revoked": matrix.HEALTHY,
    "stale reads (1.5 s)": matrix.HEALTHY,
}
ACTIONS = matrix.ACTIONS


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("agent", AGENTS, ids=lambda a: a.name)
def test_fault_cell(lab, agent, fault, action):
    matrix.fault_cell(lab, agent, fault, action, FAULTS, EXPECT, REC)


@pytest.mark.parametrize("action", ["start", "stop"])
@pytest.mark.parametrize("agent", AGENTS, ids=lambda a: a.name)
def test_killed_at_every_call(lab, agent, action):
    """SIGKILL the action inside each of its API calls (the request still lands, as with a
    client that died), then run what Pacemaker runs next and check the final state."""
    matrix.killed_at_every_call(lab, agent, action, REC)


def test_many_vips_move_at_once(lab):
    """A RAC node failure: node VIP + three SCAN VIPs + two more on one ENI, six vip resources
    started in parallel on the survivor while node 1 still holds them all."""
    matrix.many_vips_move_at_once(lab, AGENTS[0], REC, [f"10.0.1.{110 + i}" for i in range(6)])


@pytest.mark.parametrize("agent", AGENTS, ids=lambda a: a.name)
def test_two_nodes_start_at_the_same_moment(lab, agent):
    matrix.two_nodes_start_at_the_same_moment(lab, agent, REC)
