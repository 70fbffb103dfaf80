"""The reliability matrix on the OCI lab (issue 11): vip cloud=oci (instance principals) under
faults x (start, stop, probe, recurring monitor, validate-all), killed at every API call of
start and stop (then what Pacemaker runs next), two nodes racing and six VIPs moving at once.
The cells are those of test_matrix_aws.py (tests/lab/matrix.py runs them); the OCI faults add
clock skew and revoked session tokens; the stand-in does not model read-after-write staleness
(OCI documents none for private IPs), so that cell is EC2's only.
"""

from __future__ import annotations

import cloudvip
import matrix
from ocilab import OciLab

VIP = "10.0.1.100"
REC = matrix.Recorder("oci")


LAB = (OciLab, dict(nodes=2, name="matrixoci"))  # the `lab` fixture


def ready(lab):
    # A probe prepares each node's session key, as Pacemaker's probes do in a cluster; the
    # cells then time federation, not key generation.
    for n in lab.nodes:
        c = AGENTS[0].call(lab, n, "monitor", {"OCF_RESKEY_CRM_meta_timeout": "60000"})
        assert c.rc == 7, c


class OciVip(matrix.LabAgent):
    name = "vip"

    def id_of(self, node) -> str:
        return node.vnic_id

    def params(self, lab) -> dict:
        return {"ip": VIP, "cloud": "oci", "nic": "eth0", "endpoint_url": lab.endpoint,
                "auth_endpoint_url": lab.federation_endpoint, "cloud_check_interval": "0"}

    def owners(self, lab) -> set:
        return set(lab.owners(VIP))

    def configured_on(self, lab) -> list:
        return [n for n in lab.nodes if cloudvip.has_addr(n, VIP)]

    def clear_faults(self, lab):
        lab.faults.clear()
        lab.iam.allow_all()
        lab.set_skew(0)
        matrix.restore_metadata(lab)

    def reset(self, lab):
        self.clear_faults(lab)
        if lab.owners(VIP):
            lab.unassign(VIP)
        for n in lab.nodes:
            n.exec(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
        for n in lab.nodes:
            # Caches and records go, so every cell makes the same calls; the session key
            # stays (see below).
            for f in cloudvip.run_dir(lab, n).rglob("*"):
                if f.is_file() and f.name != "oci-session":
                    f.unlink()
        # Every session token so far is refused: each cell's first call federates again (so
        # federation is a kill point too) with the session key the node keeps, as a real
        # node's would after its token expired (a fresh key costs seconds in a debug build).
        lab.federation.expire_tokens()
        lab.sync()

    def one_owner(self, lab, node) -> list[str]:
        problems = []
        if self.owners(lab) != {node.vnic_id}:
            problems.append(f"OCI has it on {sorted(self.owners(lab))}, not {node.vnic_id}")
        if self.configured_on(lab) != [node]:
            problems.append(f"configured on {[n.name for n in self.configured_on(lab)]}")
        return problems


AGENTS = [OciVip()]

# OCI's own faults besides matrix.API_FAULTS: (inject, what the cluster must see).
CLOUD_FAULTS = {
    # A 401 on a session token federates again once: nothing to see.
    "session tokens revoked": (lambda lab, node: lab.federation.expire_tokens(), matrix.HEALTHY),
    # Every signed request refused (401, "clock is off"): an admin must fix NTP.
    "clock skew (400 s)": (lambda lab, node: lab.set_skew(400), matrix.DENIED),
}

globals().update(matrix.tests(AGENTS, CLOUD_FAULTS, REC))
