"""The reliability matrix on the EC2 lab (issue 11): vip cloud=aws and route-table under faults
(x start, stop, probe, recurring monitor, validate-all), killed at every API call of start and
stop (then what Pacemaker runs next), and many resources moving at once.

Every cell checks the exit code against what the cluster must see, that the action ended
within its deadline, and the final ownership: the address held by exactly one ENI (every
route table pointing at one ENI) and configured on exactly that node, or on none. Rows go to
$CLOUDHA_MATRIX_REPORT for `make reliability`.
"""

from __future__ import annotations

import cloudvip
import matrix
from ec2lab import Ec2Lab

VIP = "10.0.1.100"
OVERLAY = "192.168.100.10"
DEST = OVERLAY + "/32"
REC = matrix.Recorder("aws")


LAB = (Ec2Lab, dict(nodes=2, name="matrix"))  # the `lab` fixture


def ready(lab):
    lab.tables = [lab.create_route_table([lab.client_subnet_id])]
    lab.tables += [lab.create_route_table() for _ in range(2)]


class Agent(matrix.LabAgent):
    """How one agent's ownership is read."""

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

# EC2's own faults besides matrix.API_FAULTS: (inject, what the cluster must see).
CLOUD_FAULTS = {
    "IMDS tokens revoked": (lambda lab, node: lab.imds.expire_tokens(), matrix.HEALTHY),
    "stale reads (1.5 s)": (lambda lab, node: lab.set_api_staleness(1.5), matrix.HEALTHY),
}

globals().update(matrix.tests(AGENTS, CLOUD_FAULTS, REC))
