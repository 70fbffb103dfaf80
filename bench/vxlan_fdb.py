#!/usr/bin/env python3
"""Benchmark of the vxlan-fdb agent against the shell approach (one `bridge fdb append` per peer).

Prints figures; asserts nothing. Runs as root inside two private network namespaces
(``cvx-bench-<pid>`` with ``eth0``, its veth peer in ``cvx-bench-<pid>-hub``); the 1000 peers are
addresses of the underlay subnet that nobody holds, and nothing is sent to them during the
timings. Every timing is the wall time of the command alone, measured by a timer running inside
the namespace (so ``ip netns exec`` is not counted).

    CLOUDHA_BIN=.../release/cloudha python3 bench/vxlan_fdb.py [--peers 1000] [--drift 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import subprocess
import sys
import tempfile

NS = f"cvx-bench-{os.getpid()}"
HUB = f"{NS}-hub"
LOCAL = "10.200.0.1"
TIMER = (
    "import subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "d = time.perf_counter() - t\n"
    "sys.stderr.write(r.stderr.decode()) if r.returncode not in (0, 7) else None\n"
    "print(d, r.returncode)\n"
)


def sh(*cmd: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc={p.returncode}\n{p.stdout}{p.stderr}")
    return p


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds taken by argv run inside the namespace."""
    full = ["ip", "netns", "exec", NS, "env", "-i", f"PATH={os.environ['PATH']}"]
    full += [f"{k}={v}" for k, v in (env or {}).items()]
    full += [sys.executable, "-c", TIMER, *argv]
    out = sh(*full).stdout.split()
    if out[1] not in ("0", "7"):
        raise RuntimeError(f"{argv[:3]} exited {out[1]}")
    return float(out[0])


def setup() -> None:
    sh("ip", "netns", "add", NS)
    sh("ip", "netns", "add", HUB)
    sh("ip", "-n", NS, "link", "add", "eth0", "type", "veth", "peer", "name", "p0", "netns", HUB)
    sh("ip", "-n", NS, "addr", "add", f"{LOCAL}/16", "dev", "eth0")
    for ns, dev in ((NS, "eth0"), (NS, "lo"), (HUB, "p0")):
        sh("ip", "-n", ns, "link", "set", dev, "up")


def teardown() -> None:
    for ns in (NS, HUB):
        sh("ip", "netns", "del", ns, check=False)


def clear() -> None:
    sh("ip", "-n", NS, "link", "del", "vxlan10", check=False)


def flood_count() -> int:
    out = sh("ip", "netns", "exec", NS, "bridge", "fdb", "show", "dev", "vxlan10").stdout
    return sum(1 for line in out.splitlines() if line.startswith("00:00:00:00:00:00"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", type=int, default=1000)
    ap.add_argument("--drift", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    binary = os.environ.get("CLOUDHA_BIN")
    if os.geteuid() != 0 or not binary or not os.path.exists(binary):
        print("needs root and CLOUDHA_BIN (the release build: make bench-vxlan)", file=sys.stderr)
        return 2
    net = ipaddress.ip_network("10.200.0.0/16")
    peers = [str(net.network_address + 2 + i) for i in range(args.peers)]
    # The node itself is in the list too, as on a real cluster.
    peer_list = " ".join([LOCAL] + peers)
    tmp = tempfile.mkdtemp(prefix="cvx-bench-")
    agent = os.path.join(tmp, "vxlan-fdb")
    os.symlink(binary, agent)
    env = {
        "OCF_RESKEY_vni": "10",
        "OCF_RESKEY_peers": peer_list,
        "OCF_RESKEY_address": "10.99.0.1/24",
        "OCF_RESOURCE_INSTANCE": "mesh",
        "OCF_RESKEY_CRM_meta_timeout": "20000",
    }
    mon_env = dict(env, OCF_RESKEY_CRM_meta_interval="10000")

    create = (
        "ip link add vxlan10 type vxlan id 10 dstport 4789 dev eth0 local 10.200.0.1\n"
        + "".join(f"bridge fdb append 00:00:00:00:00:00 dev vxlan10 dst {p}\n" for p in peers)
        + "ip addr add 10.99.0.1/24 dev vxlan10\nip link set vxlan10 up\n"
    )
    reappend = "".join(f"bridge fdb append 00:00:00:00:00:00 dev vxlan10 dst {p}\n" for p in peers)
    shell_start = os.path.join(tmp, "start.sh")
    shell_mon = os.path.join(tmp, "monitor.sh")
    batch = os.path.join(tmp, "fdb.batch")
    with open(shell_start, "w") as f:
        f.write("set -e\n" + create)
    with open(shell_mon, "w") as f:
        # What a shell agent's monitor does: append every peer again (append is idempotent).
        f.write("set -e\nbridge fdb show dev vxlan10 >/dev/null\n" + reappend)
    with open(batch, "w") as f:
        f.write("".join(f"fdb append 00:00:00:00:00:00 dev vxlan10 dst {p}\n" for p in peers))
    drift_del = os.path.join(tmp, "drift.batch")
    with open(drift_del, "w") as f:
        f.write("".join(f"fdb del 00:00:00:00:00:00 dev vxlan10 dst {p}\n" for p in peers[: args.drift]))

    results: list[tuple[str, list[float]]] = []

    def record(name: str, samples: list[float]) -> None:
        results.append((name, samples))

    setup()
    try:
        # start
        s = []
        for _ in range(args.runs):
            clear()
            s.append(timed([agent, "start"], env))
            assert flood_count() == args.peers, flood_count()
        record(f"cloudha start, {args.peers} peers", s)
        s = []
        for _ in range(args.runs):
            clear()
            s.append(timed(["sh", shell_start]))
            assert flood_count() == args.peers
        record(f"shell start: {args.peers}x bridge fdb append", s)
        s = []
        for _ in range(args.runs):
            clear()
            s.append(timed(["sh", "-c", create.splitlines()[0] + f" && bridge -batch {batch}"]))
        record(f"shell start: bridge -batch ({args.peers} lines)", s)

        # monitor in sync
        clear()
        timed([agent, "start"], env)
        s = [timed([agent, "monitor"], mon_env) for _ in range(args.runs * 2)]
        record(f"cloudha monitor, {args.peers} in sync", s)
        s = [timed(["sh", shell_mon]) for _ in range(args.runs)]
        record(f"shell monitor: fdb show + {args.peers}x append", s)

        # reconcile drift
        s = []
        for _ in range(args.runs):
            sh("ip", "netns", "exec", NS, "bridge", "-batch", drift_del)
            sh("ip", "netns", "exec", NS, "bridge", "fdb", "append", "00:00:00:00:00:00",
               "dev", "vxlan10", "dst", "10.200.255.254")
            assert flood_count() == args.peers - args.drift + 1
            s.append(timed([agent, "monitor"], mon_env))
            assert flood_count() == args.peers
        record(f"cloudha monitor, {args.drift} missing + 1 stale", s)
        s = []
        for _ in range(args.runs):
            sh("ip", "netns", "exec", NS, "bridge", "-batch", drift_del)
            s.append(timed(["sh", shell_mon]))
            assert flood_count() == args.peers
        record(f"shell monitor, {args.drift} missing (stale kept)", s)

        # stop
        s = []
        for _ in range(args.runs):
            timed([agent, "start"], env)
            s.append(timed([agent, "stop"], env))
        record("cloudha stop", s)
    finally:
        teardown()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)

    width = max(len(n) for n, _ in results)
    print(f"\nvxlan-fdb benchmark ({os.path.basename(binary)} at {binary}; {args.runs} runs)")
    print(f"{'what':<{width}}  {'median ms':>10}  {'min ms':>8}  {'max ms':>8}")
    for name, s in results:
        ms = [x * 1000 for x in s]
        print(f"{name:<{width}}  {statistics.median(ms):>10.1f}  {min(ms):>8.1f}  {max(ms):>8.1f}")
    print("targets: start with 1000 peers <= 200 ms; monitor with 1000 in sync <= 50 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
