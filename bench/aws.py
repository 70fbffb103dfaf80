#!/usr/bin/env python3
"""Benchmark of vip cloud=aws against resource-agents' awsvip, in one run on the EC2 lab.

Both agents run inside the lab's node namespaces against the same stand-in (moto with the
fidelity fixes, tests/lab/ec2lab), with credentials from the node's instance role (ours) or a
profile (awsvip passes --profile). awsvip only moves the address in EC2; it is paired with a
local address step (`ip addr add/del`, the cheapest there is) so both do the same work.
Prints a table (medians; wall and CPU of the whole process tree, its largest RSS, EC2 API
calls per action) and the client-observed outage of a planned move node1 -> node2. Asserts
nothing.

    CLOUDHA_BIN=.../release/cloudha python3 bench/aws.py [--runs 10] [--peer-runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lab"))

from ec2lab import Ec2Lab  # noqa: E402
from ec2lab.lab import clean_env  # noqa: E402

VIP = "10.0.1.100"
PORT = 8080
AWSVIP = "/usr/lib/ocf/resource.d/heartbeat/awsvip"


class Run:
    def __init__(self, rc, wall, cpu, rss_mb, calls):
        self.rc, self.wall, self.cpu, self.rss_mb, self.calls = rc, wall, cpu, rss_mb, calls


# bash's `time` gives wall and CPU of the tree in milliseconds, GNU time its largest RSS.
# (wait4 from this Python process would report Python's own RSS: a forked child starts as a
# copy of its parent, and that high-water mark survives exec.)
TIMED = 'TIMEFORMAT="%3R %3U %3S"; { time /usr/bin/time -o "$0.rss" -f %M "$@" 2>"$0.err"; } 2>"$0"'


def measure(lab, node, argv, env) -> Run:
    """Run argv in node's namespace: wall, CPU, max RSS, and the EC2 calls the stand-in saw."""
    out = lab.dir / "bench-time"
    t = time.monotonic()
    p = node.exec(["bash", "-c", TIMED, str(out), *argv], env=env, timeout=120)
    calls = [c for c in lab.calls(t) if c["service"] == "ec2"]
    wall, user, sys_ = out.read_text().split()[-3:]
    rss_kb = int(Path(f"{out}.rss").read_text().split()[-1])
    err = Path(f"{out}.err").read_text()
    return Run(p.returncode, float(wall), float(user) + float(sys_), rss_kb / 1024,
               calls if p.returncode in (0, 7) else (calls, err))


class Cloudha:
    name = "cloudha vip"

    def __init__(self, lab, binary):
        self.lab, self.binary = lab, binary

    def env(self, node, interval=None):
        home = self.lab.dir / "bench-home"
        home.mkdir(exist_ok=True)
        env = clean_env({
            "HOME": str(home), "OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "vip1",
            "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
            "OCF_RESKEY_CRM_meta_timeout": "20000",
            "CLOUDHA_RUN_DIR": str(self.lab.dir / f"bench-run-{node.name}"),
            "CLOUDHA_DMI_DIR": "/nonexistent",
            "OCF_RESKEY_ip": VIP, "OCF_RESKEY_cloud": "aws", "OCF_RESKEY_nic": "eth0",
            "OCF_RESKEY_cidr_netmask": "24", "OCF_RESKEY_endpoint_url": self.lab.endpoint})
        env.pop("NO_PROXY", None)
        if interval:
            env["OCF_RESKEY_CRM_meta_interval"] = str(interval)
        return env

    def action(self, node, action, interval=None) -> Run:
        return measure(self.lab, node, [self.binary, "vip", action], self.env(node, interval))


class AwsVip:
    """awsvip + the local address step it needs (IPaddr2's job, done as cheaply as possible)."""

    name = "awsvip + ip addr"

    def __init__(self, lab):
        self.lab = lab

    def env(self, node, interval=None):
        env = self.lab.awsvip_env(node, VIP)
        if interval:
            env["OCF_RESKEY_CRM_meta_interval"] = str(interval)
        return env

    def action(self, node, action, interval=None) -> Run:
        script = {
            "start": f"{AWSVIP} start && ip addr add {VIP}/24 dev eth0",
            "stop": f"ip addr del {VIP}/24 dev eth0 2>/dev/null; {AWSVIP} stop",
            "monitor": f"{AWSVIP} monitor",
        }[action]
        return measure(self.lab, node, ["sh", "-c", script], self.env(node, interval))


def reset(lab):
    for owner in lab.owners(VIP):
        lab.ec2.unassign_private_ip_addresses(NetworkInterfaceId=owner, PrivateIpAddresses=[VIP])
    for n in lab.nodes:
        n.exec(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
    lab.sync()


def cycle(agent, lab, runs) -> dict[str, list[Run]]:
    """start, recurring monitor, probe, stop on node1, `runs` times (address free each time)."""
    n1 = lab.node(1)
    out = {"start": [], "monitor (recurring, depth 0)": [], "probe": [], "stop": []}
    for _ in range(runs):
        reset(lab)
        out["start"].append(agent.action(n1, "start"))
        out["monitor (recurring, depth 0)"].append(agent.action(n1, "monitor", interval=10000))
        out["probe"].append(agent.action(n1, "monitor"))
        out["stop"].append(agent.action(n1, "stop"))
    return out


def planned_move(agent, lab) -> float | None:
    """Client-observed outage of stop on node1 then start on node2 (a planned move)."""
    reset(lab)
    n1, n2 = lab.node(1), lab.node(2)
    agent.action(n1, "start")
    lab.sync()
    poller = lab.client.poll(VIP, PORT, every=0.02, timeout=0.1)
    try:
        deadline = time.monotonic() + 10
        while "node1" not in [a for _, a in poller.results()] and time.monotonic() < deadline:
            time.sleep(0.05)
        t = time.monotonic()
        agent.action(n1, "stop")
        agent.action(n2, "start")
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if any(a == "node2" and ts > t for ts, a in poller.results()):
                break
            time.sleep(0.02)
        time.sleep(0.2)
    finally:
        poller.stop()
    res = poller.results()
    last1 = max((ts for ts, a in res if a == "node1"), default=None)
    first2 = min((ts for ts, a in res if a == "node2" and ts > t), default=None)
    agent.action(n2, "stop")
    return None if last1 is None or first2 is None else first2 - last1


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10, help="cycles of cloudha")
    ap.add_argument("--peer-runs", type=int, default=5, help="cycles of awsvip (~10 s each)")
    args = ap.parse_args()
    binary = os.environ.get("CLOUDHA_BIN")
    if not binary or not os.access(binary, os.X_OK):
        print("CLOUDHA_BIN must point at the cloudha binary (make bench-aws)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    with Ec2Lab(nodes=2, name="benchaws") as lab:
        for n in lab.nodes:
            n.serve_name(PORT)
        ours, peer = Cloudha(lab, binary), AwsVip(lab)
        # moto's first calls are slow: warm both paths before timing.
        cycle(ours, lab, 1)
        cycle(peer, lab, 1)
        results = {ours.name: cycle(ours, lab, args.runs), peer.name: cycle(peer, lab, args.peer_runs)}
        outages = {a.name: planned_move(a, lab) for a in (ours, peer)}

    print(f"\nvip cloud=aws vs awsvip on the EC2 lab (medians; cloudha {args.runs} runs, "
          f"awsvip {args.peer_runs} runs; {time.monotonic() - t0:.0f} s in all)\n")
    print(f"| action | agent | wall s | CPU s | max RSS MB | EC2 calls | exit codes |")
    print(f"|---|---|---|---|---|---|---|")
    failures = []
    for action in results[ours.name]:
        for name, res in results.items():
            runs = res[action]
            ok = [r for r in runs if not isinstance(r.calls, tuple)]
            failures += [(name, action, r.rc, r.calls[1][-500:]) for r in runs
                         if isinstance(r.calls, tuple)]
            calls = med([len(r.calls) for r in ok]) if ok else float("nan")
            print(f"| {action} | {name} | {med([r.wall for r in runs]):.3f} | "
                  f"{med([r.cpu for r in runs]):.3f} | {max(r.rss_mb for r in runs):.1f} | "
                  f"{calls:g} | {','.join(sorted({str(r.rc) for r in runs}))} |")
    print()
    for name, o in outages.items():
        print(f"planned move node1 -> node2 (stop a, start b), client outage, {name}: "
              + (f"{o:.3f} s" if o is not None else "not measured"))
    ratio = {}
    for action in ("start", "monitor (recurring, depth 0)", "stop"):
        a = med([r.wall for r in results[peer.name][action]])
        b = med([r.wall for r in results[ours.name][action]])
        c = med([r.cpu for r in results[peer.name][action]])
        d = med([r.cpu for r in results[ours.name][action]])
        ratio[action] = (a / b if b else float("inf"), c / d if d else float("inf"))
    print()
    for action, (w, c) in ratio.items():
        print(f"{action}: cloudha is {w:.0f}x faster (wall) and uses {c:.0f}x less CPU")
    for f in failures:
        print(f"unexpected exit: {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
