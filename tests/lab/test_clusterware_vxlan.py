"""vxlan-fdb as an Oracle Clusterware ACTION_SCRIPT (the stand-in of tests/lab/crs.py): a
local_resource, one instance on every member with the same attributes, as a RAC interconnect
overlay would be registered. Three namespaces on one underlay bridge (netns.py). Needs root.
"""

from __future__ import annotations

import netns
from crs import Crs
from netns import Lab
from test_clusterware_aws import ok, type_attrs

UNDERLAY = {f"rac{i}": f"192.168.78.{i}" for i in range(1, 4)}
OVERLAY = {f"rac{i}": f"10.98.0.{i}" for i in range(1, 4)}


def test_vxlan_fdb_as_a_local_resource_on_every_member(tmp_path):
    script = tmp_path / "vxlan-fdb"
    script.symlink_to(netns.cloudha_bin())
    with Lab() as lab:
        nodes = {m: lab.node(m, f"{ip}/24") for m, ip in UNDERLAY.items()}
        env = netns.host_env(("OCF_", "_CRS_", "HA_", "CLOUDHA_"), proxies=False)
        c = Crs(tmp_path / "crs.json", {
            m: {"argv": ["ip", "netns", "exec", n.ns], "run_dir": str(tmp_path / f"run-{m}"),
                "env": {**env, "CLOUDHA_RUN_DIR": str(tmp_path / f"run-{m}")}}
            for m, n in nodes.items()})
        ok(c, "add", "type", "cloudha.vxlan-fdb.type", "-basetype", "local_resource", "-attr",
           type_attrs("vxlan-fdb"))
        peers = " ".join(UNDERLAY.values())
        address = " ".join(f"{UNDERLAY[m]}={OVERLAY[m]}/24" for m in UNDERLAY)
        ok(c, "add", "resource", "rac-mesh", "-type", "cloudha.vxlan-fdb.type", "-attr",
           f"ACTION_SCRIPT={script},VNI=42,PEERS={peers},ADDRESS={address},CHECK_INTERVAL=1")
        ok(c, "start", "resource", "rac-mesh")
        out = ok(c, "status", "resource", "rac-mesh")
        assert "STATE=ONLINE on rac1, ONLINE on rac2, ONLINE on rac3" in out, out

        def ping(a, b) -> bool:
            p = nodes[a].exec("ping", "-n", "-c", "1", "-W", "2", OVERLAY[b], check=False)
            return p.returncode == 0

        assert all(ping(a, b) for a in UNDERLAY for b in UNDERLAY if a != b)
        c.check_all(now=1e12)
        assert c.state()["resources"]["rac-mesh"]["nodes"] == {m: "ONLINE" for m in UNDERLAY}

        # The device vanishes on rac2: its check says UNPLANNED_OFFLINE (1) and crsd restarts
        # the instance there (a local resource never moves). The new device has the old MAC,
        # so rac1, whose neighbour cache still holds it, reaches rac2 at once.
        nodes["rac2"].ip("link", "del", "vxlan42")
        c.check_all(now=2e12)
        rac2 = [(j["action"], j["rc"]) for j in c.journal("rac-mesh") if j["member"] == "rac2"]
        assert rac2[-3:] == [("check", 1), ("start", 0), ("check", 0)], rac2
        assert ping("rac1", "rac2") and ping("rac2", "rac3")

        # rac3 is lost and comes back: its instance is started again when it rejoins.
        c.member_down("rac3")
        assert c.state()["resources"]["rac-mesh"]["nodes"]["rac3"] == "OFFLINE"
        nodes["rac3"].ip("link", "del", "vxlan42")  # its reboot took the device
        c.member_up("rac3")
        assert c.state()["resources"]["rac-mesh"]["nodes"]["rac3"] == "ONLINE"
        assert ping("rac3", "rac1")

        ok(c, "stop", "resource", "rac-mesh")
        for n in nodes.values():
            assert "vxlan42" not in [l["ifname"] for l in n.ipj("link", "show")]
        assert all(j["rc"] in (0, 1, 2) for j in c.journal("rac-mesh")), c.journal("rac-mesh")
