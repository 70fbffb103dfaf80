"""Lab tests of the vxlan-fdb agent: a unicast VXLAN mesh between network namespaces.

Four node namespaces share an underlay bridge in a hub namespace (netns.py: nothing in the host's
own namespace). The agent is driven exactly as Pacemaker drives it: through a link named
``vxlan-fdb``, the action as argv[1] and the parameters as OCF_RESKEY_* variables, with the same
parameters on every node (each peer list holds the node itself).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from netns import Lab

BIN = os.environ.get("CLOUDHA_BIN", "")
UNDERLAY = {f"n{i}": f"192.168.77.{i}" for i in range(1, 5)}
UNDERLAY6 = {f"n{i}": f"fd00:77::{i}" for i in range(1, 5)}
OVERLAY = {f"n{i}": f"10.99.0.{i}" for i in range(1, 5)}
ZERO = "00:00:00:00:00:00"
PORT = 5405  # UDP port of the multicast/broadcast receivers (overlay only)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not BIN or not os.path.exists(BIN),
    reason="needs root and CLOUDHA_BIN (make lab)",
)


def peers(*names: str, table=UNDERLAY) -> str:
    return " ".join(table[n] for n in names)


def addresses(names=UNDERLAY) -> str:
    """The per-node overlay address list, the same on every node."""
    return " ".join(f"{names[n]}={OVERLAY[n]}/24" for n in names)


class Mesh:
    """The lab plus a way to call the agent on a node like Pacemaker does."""

    def __init__(self, lab: Lab, agent: str):
        self.lab, self.agent = lab, agent
        self.n = lab.nodes

    def run(self, node: str, action: str, interval_ms: int = 0, extra_env=None, **params):
        env = {
            "PATH": os.environ["PATH"],
            "OCF_ROOT": "/usr/lib/ocf",
            "OCF_RA_VERSION_MAJOR": "1",
            "OCF_RA_VERSION_MINOR": "1",
            "OCF_RESOURCE_INSTANCE": "mesh",
            "OCF_RESKEY_CRM_meta_timeout": "20000",
            "OCF_RESKEY_CRM_meta_interval": str(interval_ms),
        }
        env.update({f"OCF_RESKEY_{k}": str(v) for k, v in params.items()})
        env.update(extra_env or {})
        return self.n[node].exec(self.agent, action, env=env, check=False)

    def must(self, node: str, action: str, **kw):
        p = self.run(node, action, **kw)
        assert p.returncode == 0, f"{action} on {node}: rc={p.returncode}\n{p.stderr}"
        return p

    def flood(self, node: str, dev: str = "vxlan10") -> list[str]:
        out = self.n[node].exec("bridge", "-j", "fdb", "show", "dev", dev).stdout.strip()
        return sorted(e["dst"] for e in json.loads(out or "[]") if e["mac"] == ZERO and "dst" in e)

    def link(self, node: str, dev: str = "vxlan10") -> dict:
        return self.n[node].ipj("-d", "link", "show", "dev", dev)[0]

    def ping(self, src: str, dst_ip: str, count: int = 1) -> bool:
        p = self.n[src].exec("ping", "-n", "-c", str(count), "-W", "2", dst_ip, check=False)
        return p.returncode == 0


@pytest.fixture
def mesh(tmp_path):
    agent = tmp_path / "vxlan-fdb"
    agent.symlink_to(BIN)
    with Lab() as lab:
        for name in UNDERLAY:
            lab.node(name, f"{UNDERLAY[name]}/24", f"{UNDERLAY6[name]}/64")
        yield Mesh(lab, str(agent))


def start_three(m: Mesh, **extra):
    params = dict(vni=10, peers=peers("n1", "n2", "n3"), address=addresses(), **extra)
    for node in ("n1", "n2", "n3"):
        m.must(node, "start", **params)
    return params


def test_unicast_mesh_mtu_and_no_self_entry(mesh):
    params = start_three(mesh)
    for node in ("n1", "n2", "n3"):
        others = sorted(UNDERLAY[o] for o in ("n1", "n2", "n3") if o != node)
        assert mesh.flood(node) == others, f"{node} must flood to the others only"
        assert UNDERLAY[node] not in mesh.flood(node)
        link = mesh.link(node)
        assert link["mtu"] == 1450, "1500 - 50 over IPv4"
        info = link["linkinfo"]["info_data"]
        assert (info["id"], info["port"], info["local"]) == (10, 4789, UNDERLAY[node])
        assert "UP" in link["flags"]
        assert mesh.n[node].has(OVERLAY[node])
    for a in ("n1", "n2", "n3"):
        for b in ("n1", "n2", "n3"):
            if a != b:
                assert mesh.ping(a, OVERLAY[b]), f"{a} -> {b} over the overlay"
    # Full-size frames cross (DF set, 1450 - 28 bytes of ICMP/IP headers).
    p = mesh.n["n1"].exec("ping", "-c1", "-W2", "-M", "do", "-s", "1422", OVERLAY["n2"], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    for node in ("n1", "n2", "n3"):
        mesh.must(node, "monitor", interval_ms=10000, **params)
        mesh.must(node, "monitor", **params)  # probe
    # A second start is harmless and the node still never floods to itself.
    mesh.must("n1", "start", **params)
    assert UNDERLAY["n1"] not in mesh.flood("n1")


RECEIVER = r"""
import socket, struct, sys, time
ip, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
for group in ("230.0.1.0", "224.0.0.251"):
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(group) + socket.inet_aton(ip))
print("ready", flush=True)
s.settimeout(0.2)
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        data, src = s.recvfrom(2048)
    except socket.timeout:
        continue
    print(data.decode(), src[0], flush=True)
"""

SENDER = r"""
import socket, sys, time
ip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
s.bind((ip, 0))
for _ in range(5):
    for dst in ("230.0.1.0", "224.0.0.251", "10.99.0.255"):
        s.sendto(("to-" + dst).encode(), (dst, port))
    time.sleep(0.1)
"""


def test_multicast_and_broadcast_reach_every_other_node(mesh):
    start_three(mesh)
    receivers = {}
    for node in ("n2", "n3"):
        p = mesh.n[node].popen(
            "python3", "-c", RECEIVER, OVERLAY[node], str(PORT), "6",
            stdout=subprocess.PIPE, text=True,
        )
        assert p.stdout.readline().strip() == "ready"
        receivers[node] = p
    mesh.n["n1"].exec("python3", "-c", SENDER, OVERLAY["n1"], str(PORT))
    for node, p in receivers.items():
        out, _ = p.communicate(timeout=15)
        got = {line.split()[0] for line in out.splitlines() if line.startswith("to-")}
        assert got == {"to-230.0.1.0", "to-224.0.0.251", "to-10.99.0.255"}, f"{node}: {out!r}"
        assert all(line.endswith(OVERLAY["n1"]) for line in out.splitlines() if line.startswith("to-"))


def test_monitor_restores_a_deleted_entry_and_removes_a_stale_one(mesh):
    params = start_three(mesh, learning="false")
    n1 = mesh.n["n1"]
    index = mesh.link("n1")["ifindex"]
    n1.exec("bridge", "fdb", "del", ZERO, "dev", "vxlan10", "dst", UNDERLAY["n2"])
    n1.exec("bridge", "fdb", "append", ZERO, "dev", "vxlan10", "dst", "192.168.77.99")
    assert mesh.flood("n1") == sorted([UNDERLAY["n3"], "192.168.77.99"])
    # Without learning every frame follows the flood list: n2 is cut off.
    assert not mesh.ping("n1", OVERLAY["n2"])
    p = mesh.must("n1", "monitor", interval_ms=10000, **params)
    assert "restored 1 missing flood entries (192.168.77.2)" in p.stderr
    assert "removed 1 stale flood entries (192.168.77.99)" in p.stderr
    assert mesh.flood("n1") == sorted([UNDERLAY["n2"], UNDERLAY["n3"]])
    assert mesh.link("n1")["ifindex"] == index, "repaired in place, not recreated"
    assert mesh.ping("n1", OVERLAY["n2"])
    # In sync: nothing to say.
    p = mesh.must("n1", "monitor", interval_ms=10000, **params)
    assert "WARNING" not in p.stderr


def test_reload_adds_a_fourth_peer_without_losing_a_ping(mesh):
    params = start_three(mesh)
    before = {n: mesh.link(n)["ifindex"] for n in ("n1", "n2", "n3")}
    pinger = mesh.n["n1"].popen(
        "ping", "-n", "-i", "0.01", "-c", "300", "-W", "1", OVERLAY["n2"],
        stdout=subprocess.PIPE, text=True,
    )
    time.sleep(0.5)
    four = dict(params, peers=peers("n1", "n2", "n3", "n4"))
    for node in ("n1", "n2", "n3"):
        old = mesh.flood(node)
        mesh.must(node, "reload-agent", **four)
        assert mesh.flood(node) == sorted(old + [UNDERLAY["n4"]]), "exactly the new entry"
    out, _ = pinger.communicate(timeout=30)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m and m.group(1) == m.group(2) == "300", out
    assert {n: mesh.link(n)["ifindex"] for n in ("n1", "n2", "n3")} == before
    mesh.must("n4", "start", **four)
    for node in ("n1", "n2", "n3"):
        assert mesh.ping("n4", OVERLAY[node])
    # n2 leaves the list: its entry goes everywhere else, and nothing else does.
    without_n2 = dict(params, peers=peers("n1", "n3", "n4"))
    for node in ("n1", "n3", "n4"):
        mesh.must(node, "reload-agent", **without_n2)
        assert UNDERLAY["n2"] not in mesh.flood(node)
        assert UNDERLAY[node] not in mesh.flood(node)
        assert len(mesh.flood(node)) == 2
    assert mesh.ping("n1", OVERLAY["n4"])


def test_incompatible_device_is_refused_and_left_intact(mesh):
    n1 = mesh.n["n1"]
    n1.ip("link", "add", "vxlan10", "type", "vxlan", "id", "99", "dstport", "8472", "dev", "eth0")
    params = dict(vni=10, peers=peers("n1", "n2", "n3"))
    p = mesh.run("n1", "start", **params)
    assert p.returncode == 2, p.stderr
    assert "vni 99 (wanted 10)" in p.stderr and "dstport 8472 (wanted 4789)" in p.stderr
    assert "left untouched" in p.stderr
    for action in ("stop", "monitor"):
        mesh.run("n1", action, interval_ms=10000, **params)
        info = mesh.link("n1")["linkinfo"]["info_data"]
        assert (info["id"], info["port"]) == (99, 8472), f"intact after {action}"
    assert mesh.flood("n1") == []
    # A matching device made by hand is adopted, and stop leaves it (without our entries).
    n1.ip("link", "del", "vxlan10")
    n1.ip("link", "add", "vxlan10", "type", "vxlan", "id", "10", "dstport", "4789", "dev", "eth0")
    mesh.must("n1", "start", **params)
    assert mesh.flood("n1") == sorted([UNDERLAY["n2"], UNDERLAY["n3"]])
    mesh.must("n1", "stop", **params)
    assert mesh.flood("n1") == []
    assert mesh.link("n1")["linkinfo"]["info_data"]["id"] == 10


def test_stop_removes_what_it_made_including_the_bridge(mesh):
    params = dict(vni=10, peers=peers("n1", "n2", "n3"), bridge="br-ov", address=addresses())
    for node in ("n1", "n2", "n3"):
        mesh.must(node, "start", **params)
        assert mesh.link(node)["master"] == "br-ov"
        assert mesh.n[node].has(OVERLAY[node])[0][0] == "br-ov"
    assert mesh.ping("n1", OVERLAY["n3"])
    mesh.must("n1", "stop", **params)
    names = [l["ifname"] for l in mesh.n["n1"].ipj("link", "show")]
    assert "vxlan10" not in names and "br-ov" not in names
    assert mesh.run("n1", "monitor", interval_ms=10000, **params).returncode == 7
    mesh.must("n1", "stop", **params)


def test_corosync_nodelist_and_ipv6_underlay(mesh, tmp_path):
    conf = tmp_path / "corosync.conf"
    nodes = "".join(
        f"    node {{\n        ring0_addr: {UNDERLAY6[n]}\n        name: {n}\n        nodeid: {i}\n    }}\n"
        for i, n in enumerate(("n1", "n2", "n3"), 1)
    )
    conf.write_text(f"totem {{\n    version: 2\n}}\nnodelist {{\n{nodes}}}\n")
    params = dict(vni=20, peers_from="corosync", address=addresses(UNDERLAY6))
    env = {"COROSYNC_MAIN_CONFIG_FILE": str(conf)}
    for node in ("n1", "n2", "n3"):
        mesh.must(node, "start", extra_env=env, **params)
        assert mesh.link(node, "vxlan20")["mtu"] == 1430, "1500 - 70 over IPv6"
        assert UNDERLAY6[node] not in mesh.flood(node, "vxlan20")
        assert len(mesh.flood(node, "vxlan20")) == 2
    assert mesh.ping("n3", OVERLAY["n1"])
    p = mesh.run("n1", "start", extra_env={"COROSYNC_MAIN_CONFIG_FILE": str(tmp_path / "none")}, **params)
    assert p.returncode == 5 and "does not exist" in p.stderr


def test_a_resolver_that_never_answers_stays_inside_the_deadline():
    """A peer given by name, and a name server that never answers (resolv.conf in the node's
    namespace points at an address nobody holds): start ends within its 3 s timeout with 1
    and one reason naming the peer; the recurring monitor and stop are not held up."""
    from netns import Lab, cloudha_bin
    import os
    import shutil
    with Lab() as lab:
        node = lab.node("a", "10.78.0.1/24")
        etc = f"/etc/netns/{node.ns}"
        os.makedirs(etc, exist_ok=True)
        try:
            with open(f"{etc}/resolv.conf", "w") as f:
                f.write("nameserver 10.78.0.99\noptions timeout:5 attempts:3\n")
            env = {"PATH": os.environ["PATH"], "OCF_RESKEY_vni": "77",
                   "OCF_RESKEY_peers": "10.78.0.2 hangs.peer.example",
                   "OCF_RESKEY_CRM_meta_timeout": "3000", "OCF_RESOURCE_INSTANCE": "mesh"}
            t0 = time.monotonic()
            p = node.exec(cloudha_bin(), "vxlan-fdb", "start", check=False, env=env)
            took = time.monotonic() - t0
            reasons = [l for l in p.stderr.splitlines() if l.startswith("ocf-exit-reason:")]
            assert p.returncode == 1, p.stderr
            assert took < 3.5, f"start took {took:.1f}s with a 3 s timeout"
            assert len(reasons) == 1 and "hangs.peer.example" in reasons[0], p.stderr
            assert not [l for l in node.ipj("link", "show") if l["ifname"] == "vxlan77"]
            for action, extra, code in [("monitor", {"OCF_RESKEY_CRM_meta_interval": "10000"}, 7),
                                        ("stop", {}, 0)]:
                t0 = time.monotonic()
                p = node.exec(cloudha_bin(), "vxlan-fdb", action, check=False,
                              env={**env, **extra})
                assert p.returncode == code, (action, p.stderr)
                assert time.monotonic() - t0 < 3.5, action
            # A running mesh whose resolver then stops answering: the name is known through
            # the namespace's hosts file for the start, then only DNS (which hangs) knows it.
            with open(f"{etc}/hosts", "w") as f:
                f.write("10.78.0.3 hangs.peer.example\n")
            node.exec(cloudha_bin(), "vxlan-fdb", "start", env=env)
            os.unlink(f"{etc}/hosts")
            for interval, code in [("10000", 190), ("0", 190)]:
                t0 = time.monotonic()
                p = node.exec(cloudha_bin(), "vxlan-fdb", "monitor", check=False,
                              env={**env, "OCF_RESKEY_CRM_meta_interval": interval})
                took = time.monotonic() - t0
                reasons = [l for l in p.stderr.splitlines() if l.startswith("ocf-exit-reason:")]
                assert p.returncode == code, (interval, p.stderr)
                assert took < 3.5, f"monitor took {took:.1f}s with a 3 s timeout"
                assert len(reasons) == 1 and "hangs.peer.example" in reasons[0], p.stderr
            out = node.exec("bridge", "-j", "fdb", "show", "dev", "vxlan77").stdout
            kept = sorted(e["dst"] for e in json.loads(out or "[]") if e["mac"] == ZERO)
            assert kept == ["10.78.0.2", "10.78.0.3"], "the unresolved peer's entry is kept"
            t0 = time.monotonic()
            p = node.exec(cloudha_bin(), "vxlan-fdb", "stop", check=False, env=env)
            assert p.returncode == 0 and time.monotonic() - t0 < 3.5, p.stderr
            assert not [l for l in node.ipj("link", "show") if l["ifname"] == "vxlan77"]
        finally:
            shutil.rmtree(etc, ignore_errors=True)


def test_an_mtu_the_underlay_cannot_carry_is_refused(mesh):
    """eth0 carries 1500: over IPv4 VXLAN adds 50, so 1451 and more are refused (2) with the
    largest mtu that fits, nothing is created, and 1450 works, twice (stable)."""
    params = dict(vni=10, peers=peers("n1", "n2"))
    for mtu in (1451, 9000):
        p = mesh.run("n1", "start", mtu=mtu, **params)
        reasons = [l for l in p.stderr.splitlines() if l.startswith("ocf-exit-reason:")]
        assert p.returncode == 2, p.stderr
        assert len(reasons) == 1 and "1450" in reasons[0], p.stderr
        assert "vxlan10" not in [l["ifname"] for l in mesh.n["n1"].ipj("link", "show")]
    for _ in range(2):
        mesh.must("n1", "start", mtu=1450, **params)
        assert mesh.link("n1")["mtu"] == 1450
    mesh.must("n1", "stop", mtu=1450, **params)


def test_template_names_are_refused_and_nothing_leaks(mesh):
    before = sorted(l["ifname"] for l in mesh.n["n1"].ipj("link", "show"))
    for key, name in [("ifname", "vx%d"), ("bridge", "br%d"), ("dev", "eth%d"), ("ifname", "a:b")]:
        for _ in range(2):
            p = mesh.run("n1", "start", vni=10, peers=peers("n1", "n2"), **{key: name})
            reasons = [l for l in p.stderr.splitlines() if l.startswith("ocf-exit-reason:")]
            assert p.returncode == 6, (key, name, p.stderr)
            assert len(reasons) == 1 and "not a valid interface name" in reasons[0], p.stderr
    assert sorted(l["ifname"] for l in mesh.n["n1"].ipj("link", "show")) == before
