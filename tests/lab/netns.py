"""Network-namespace helpers for the host-level lab tests.

Everything lives in namespaces named ``cvt-<pid>-<n>-<role>``: nodes get one veth ``eth0`` whose
peer sits in a hub namespace on bridge ``br0``. Nothing is created in the host's own namespace
(the veth pairs are created directly inside the namespaces), so no traffic can leave them.
Namespaces left behind by a crashed earlier run (their pid is gone) are deleted on first use.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time

PREFIX = "cvt-"
_counter = itertools.count()
_swept = False


def sh(*cmd: str, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    """Run a command, capture text output; raise with the output when check fails."""
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> rc={p.returncode}\n{p.stdout}{p.stderr}")
    return p


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces() -> list[str]:
    out = sh("ip", "-j", "netns", "list").stdout.strip()
    return [n["name"] for n in json.loads(out)] if out else []


def sweep_leftovers() -> list[str]:
    """Delete cvt- namespaces whose creating test process is gone. Returns what was deleted."""
    gone = []
    for name in list_namespaces():
        if not name.startswith(PREFIX):
            continue
        try:
            pid = int(name[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            sh("ip", "netns", "del", name, check=False)
            gone.append(name)
    if gone:
        print(f"netns: removed leftovers of a previous run: {gone}", file=sys.stderr)
    return gone


class Node:
    """One namespace with ``lo`` and (after :meth:`Lab.node`) ``eth0`` on the hub bridge."""

    def __init__(self, lab: "Lab", role: str, ns: str):
        self.lab, self.role, self.ns = lab, role, ns
        self.port = None  # the veth peer's name in the hub

    def __repr__(self) -> str:
        return f"Node({self.role}={self.ns})"

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "-n", self.ns, *args, check=check)

    def ipj(self, *args: str):
        out = self.ip("-j", *args).stdout.strip()
        return json.loads(out) if out else []

    def exec(self, *cmd: str, check: bool = True, timeout: float = 60, env=None, **kw):
        return sh("ip", "netns", "exec", self.ns, *cmd, check=check, timeout=timeout, env=env, **kw)

    def popen(self, *cmd: str, **kw) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", self.ns, *cmd], **kw)
        self.lab.procs.append(p)
        return p

    def mac(self, dev: str = "eth0") -> str:
        return self.ipj("link", "show", "dev", dev)[0]["address"]

    def addrs(self, dev: str | None = None) -> list[tuple[str, str, int, list]]:
        """(ifname, address, prefixlen, flags) for every address."""
        args = ["addr", "show"] + (["dev", dev] if dev else [])
        res = []
        for link in self.ipj(*args):
            for a in link.get("addr_info", []):
                flags = [k for k in ("tentative", "dadfailed", "nodad", "deprecated") if a.get(k)]
                res.append((link["ifname"], a["local"], a["prefixlen"], flags))
        return res

    def has(self, addr: str) -> list[tuple[str, str, int, list]]:
        return [a for a in self.addrs() if a[1] == addr]

    def neigh(self, addr: str, dev: str = "eth0") -> dict | None:
        for n in self.ipj("neigh", "show", "dev", dev):
            if n.get("dst") == addr:
                return n
        return None

    def carrier(self, dev: str = "eth0") -> bool:
        return "LOWER_UP" in self.ipj("link", "show", "dev", dev)[0]["flags"]


class Lab:
    """A set of namespaces torn down together. Use as a context manager."""

    def __init__(self):
        global _swept
        if not _swept:
            sweep_leftovers()
            _swept = True
        self.tag = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.hub: Node | None = None
        self.nodes: dict[str, Node] = {}

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def namespace(self, role: str) -> Node:
        ns = f"{self.tag}-{role}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        node = Node(self, role, ns)
        node.ip("link", "set", "lo", "up")
        # IPv6 on: a container's defaults may have it off; forwarding stays off.
        node.exec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", check=False)
        node.exec("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=0", check=False)
        return node

    def _hub(self) -> Node:
        if self.hub is None:
            self.hub = self.namespace("hub")
            # STP off: bridge ports forward at once.
            self.hub.ip("link", "add", "br0", "type", "bridge", "stp_state", "0")
            self.hub.ip("link", "set", "br0", "up")
        return self.hub

    def node(self, role: str, *addrs: str) -> Node:
        """A namespace with eth0 bridged to the hub and the given ``addr/prefix`` (added nodad)."""
        hub = self._hub()
        node = self.namespace(role)
        port = f"p{len(self.nodes)}-{role}"[:15]
        node.ip("link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", hub.ns)
        node.port = port
        hub.ip("link", "set", port, "master", "br0", "up")
        node.ip("link", "set", "eth0", "up")
        for a in addrs:
            extra = ["nodad"] if ":" in a else []
            node.ip("addr", "add", a, "dev", "eth0", *extra)
        self.nodes[role] = node
        wait_for(lambda: node.carrier(), 5, f"carrier on {node}")
        return node

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)
        errors = []
        for ns in reversed(self.namespaces):
            r = sh("ip", "netns", "del", ns, check=False)
            if r.returncode != 0:
                errors.append(r.stderr)
        self.namespaces.clear()
        if errors:
            raise RuntimeError(f"namespace cleanup failed: {errors}")


def poll(pred, timeout: float, step: float):
    """pred() every `step` seconds until it is truthy or `timeout` has passed; its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def wait_for(pred, timeout: float, what: str, step: float = 0.02):
    """Poll pred() until it is truthy; return its value or raise after timeout seconds."""
    v = poll(pred, timeout, step)
    if not v:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return v


# A frame capture running inside a namespace (AF_PACKET, every protocol, one interface). It prints
# one JSON line per frame: {"t": monotonic seconds, "hex": frame}. Stops after `seconds`.
_CAPTURE = r"""
import json, socket, sys, time
dev, seconds = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((dev, 0))
print(json.dumps({"ready": True}), flush=True)
end = time.monotonic() + seconds
while True:
    left = end - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        break
    print(json.dumps({"t": time.monotonic(), "hex": data.hex(), "pkttype": addr[2]}), flush=True)
"""


class Capture:
    """Frames seen on one interface of a node for a while; started before, read after."""

    def __init__(self, node: Node, seconds: float, dev: str = "eth0"):
        self.proc = node.popen(sys.executable, "-c", _CAPTURE, dev, str(seconds),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline()
        if not first.strip():
            raise RuntimeError(f"capture did not start: {self.proc.stderr.read()}")

    def frames(self) -> list[dict]:
        out, err = self.proc.communicate(timeout=60)
        if self.proc.returncode != 0:
            raise RuntimeError(f"capture failed: {err}")
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def arp_frames(frames: list[dict], ip: str) -> list[dict]:
    """Gratuitous ARP frames (ARP, sender IP == target IP == ip), decoded."""
    want = bytes(int(x) for x in ip.split(".")).hex()
    res = []
    for f in frames:
        h = f["hex"]
        if h[24:28] != "0806":
            continue
        res.append(dict(f, op=int(h[40:44], 16), sha=h[44:56], spa=h[56:64], tha=h[64:76],
                        tpa=h[76:84], garp=h[56:64] == want and h[76:84] == want))
    return [r for r in res if r["spa"] == want or r["tpa"] == want]


def icmp6_frames(frames: list[dict]) -> list[dict]:
    """ICMPv6 frames (no extension headers), decoded enough to read neighbour discovery."""
    res = []
    for f in frames:
        b = bytes.fromhex(f["hex"])
        if b[12:14] != b"\x86\xdd" or b[20] != 58:
            continue
        ip6, icmp = b[14:54], b[54:]
        res.append(dict(f, dst_mac=b[0:6].hex(":"), src_mac=b[6:12].hex(":"),
                        hop_limit=ip6[7], src=_v6(ip6[8:24]), dst=_v6(ip6[24:40]),
                        type=icmp[0], code=icmp[1], checksum=icmp[2:4].hex(),
                        flags=icmp[4] if len(icmp) > 4 else None,
                        target=_v6(icmp[8:24]) if len(icmp) >= 24 else None,
                        options=icmp[24:].hex(), icmp_hex=icmp.hex()))
    return res


def _v6(b: bytes) -> str:
    import ipaddress
    return str(ipaddress.IPv6Address(b))


def mac_hex(mac: str) -> str:
    return mac.replace(":", "").lower()


def cloudha_bin() -> str:
    """The binary under test (the Makefile exports CLOUDHA_BIN)."""
    b = os.environ.get("CLOUDHA_BIN")
    if not b:
        raise RuntimeError("CLOUDHA_BIN is not set: run through `make lab`")
    if not os.access(b, os.X_OK):
        raise RuntimeError(f"CLOUDHA_BIN={b} is not executable: run `make build`")
    return b


class Result:
    def __init__(self, p: subprocess.CompletedProcess, elapsed: float):
        self.rc, self.out, self.err, self.elapsed = p.returncode, p.stdout, p.stderr, elapsed

    def __repr__(self) -> str:
        return f"rc={self.rc} in {self.elapsed:.3f}s\nstdout: {self.out}\nstderr: {self.err}"

    def reasons(self) -> list[str]:
        return [l for l in self.err.splitlines() if l.startswith("ocf-exit-reason:")]


def vip(node: Node, action: str, timeout: float = 60, extra_env: dict | None = None,
        **params) -> Result:
    """Call the vip agent the way Pacemaker does: action in argv[1], OCF_RESKEY_* environment."""
    t0 = time.monotonic()
    p = node.exec(cloudha_bin(), "vip", action, check=False, timeout=timeout,
                  env=vip_env(extra_env, **params))
    return Result(p, time.monotonic() - t0)


def host_env(drop: tuple[str, ...] = ("OCF_", "_CRS_", "HA_"), proxies: bool = True) -> dict:
    """This process's environment without the variables an agent must not inherit: those
    starting with `drop`, and any proxy setting unless `proxies`."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(drop) and (proxies or "proxy" not in k.lower())}


def agent_env(params: dict, extra_env: dict | None = None, *, instance: str = "vip1",
              base: dict | None = None, pacemaker: bool = True) -> dict:
    """The one builder of an agent run's environment: `base` (default host_env()), the OCF
    variables naming `instance`, with `pacemaker` also its exit-reason prefix and 20 s timeout,
    then `params` as OCF_RESKEY_* (None drops a parameter), then `extra_env`."""
    env = host_env() if base is None else dict(base)
    env.update({"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": instance,
                "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"})
    if pacemaker:
        env.update({"OCF_EXIT_REASON_PREFIX": "ocf-exit-reason:",
                    "OCF_RESKEY_CRM_meta_timeout": "20000"})
    env.update({f"OCF_RESKEY_{k}": str(v) for k, v in params.items() if v is not None})
    env.update(extra_env or {})
    return env


def vip_env(extra_env: dict | None = None, **params) -> dict:
    """The environment Pacemaker gives the vip agent, with the parameters as OCF_RESKEY_*."""
    return agent_env(params, extra_env)


def vip_popen(node: Node, action: str, extra_env: dict | None = None, **params):
    """Start the agent in the background (killed by PID at lab close if still running)."""
    return node.popen(cloudha_bin(), "vip", action, env=vip_env(extra_env, **params),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
