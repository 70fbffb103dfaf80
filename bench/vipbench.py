"""What bench/aws.py, bench/oci.py and bench/route_table.py share: measuring one agent call
inside a lab node (wall, CPU and max RSS of the whole process tree, API calls the stand-in saw),
the start / recurring monitor / probe / stop cycle, the outage a client sees across a planned
move a -> b, and the table."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cloudvip  # tests/lab, on the path of the benchmarks

VIP = cloudvip.VIP
PORT = 8080

# bash's `time` gives wall and CPU of the tree in milliseconds, GNU time its largest RSS.
# (wait4 from the Python process would report Python's own RSS: a forked child starts as a
# copy of its parent, and that high-water mark survives exec.)
TIMED = 'TIMEFORMAT="%3R %3U %3S"; { time /usr/bin/time -o "$0.rss" -f %M "$@" 2>"$0.err"; } 2>"$0"'

ACTIONS = ("start", "monitor (recurring, depth 0)", "probe", "stop")

# The service time the benchmarks also run at: reads 60 ms, writes 150 ms. An assumption (the
# order of magnitude of a regional cloud API seen from inside its region, a change costing more
# than a read), not a measurement of either cloud; the lab adds it to every API call
# (tests/lab/standin.py), never to instance metadata.
REALISTIC = (0.060, 0.150)


class Peer:
    """Base of a resource-agents peer: .lab, and its environment with a recurring interval."""

    def __init__(self, lab):
        self.lab = lab

    @staticmethod
    def with_interval(env: dict, interval=None) -> dict:
        if interval:
            env["OCF_RESKEY_CRM_meta_interval"] = str(interval)
        return env


class Cloudha:
    """Our vip agent with the parameters `defaults`, called as the lab tests call it."""

    name = "cloudha vip"

    def __init__(self, lab, binary, defaults: dict, api_calls):
        self.lab, self.binary, self.defaults, self.api_calls = lab, binary, defaults, api_calls

    def action(self, node, action, interval=None):
        extra = {"OCF_RESKEY_CRM_meta_interval": str(interval)} if interval else None
        env = cloudvip.agent_env(self.lab, node, self.defaults, extra)
        return measure(self.lab, node, [self.binary, "vip", action], env, self.api_calls)


class Run:
    def __init__(self, rc, wall, cpu, rss_mb, calls, err):
        self.rc, self.wall, self.cpu, self.rss_mb, self.calls, self.err = (
            rc, wall, cpu, rss_mb, calls, err)


def measure(lab, node, argv, env, api_calls, timeout: float = 120, input=None) -> Run:
    """Run argv in node's namespace (`input` on its stdin); api_calls(since) -> the API calls
    to count. The Run's .start and .end are time.monotonic() around the call."""
    out = lab.dir / "bench-time"
    t = time.monotonic()
    p = node.exec(["bash", "-c", TIMED, str(out), *argv], env=env, timeout=timeout, input=input)
    end = time.monotonic()
    calls = api_calls(t)
    wall, user, sys_ = out.read_text().split()[-3:]
    rss_kb = int(Path(f"{out}.rss").read_text().split()[-1])
    run = Run(p.returncode, float(wall), float(user) + float(sys_), rss_kb / 1024, calls,
              Path(f"{out}.err").read_text())
    run.start, run.end, run.out = t, end, p.stdout
    return run


def cycle(agent, lab, runs, reset) -> dict[str, list[Run]]:
    """start, recurring monitor, probe, stop on node1, `runs` times (address free each time).
    agent.action(node, action, interval=None) -> Run."""
    n1 = lab.node(1)
    out = {a: [] for a in ACTIONS}
    for _ in range(runs):
        reset(lab)
        out["start"].append(agent.action(n1, "start"))
        out["monitor (recurring, depth 0)"].append(agent.action(n1, "monitor", interval=10000))
        out["probe"].append(agent.action(n1, "monitor"))
        out["stop"].append(agent.action(n1, "stop"))
    return out


def client_outage(lab, ip: str, move, settle: float) -> float | None:
    """The outage a client polling ip:PORT sees across move() (node1 serving before, node2
    after): from node1's last answer to node2's first, None if either is missing."""
    poller = lab.client.poll(ip, PORT, every=0.02, timeout=0.1)
    try:
        deadline = time.monotonic() + 10
        while "node1" not in [a for _, a in poller.results()] and time.monotonic() < deadline:
            time.sleep(0.05)
        t = time.monotonic()
        move()
        end = time.monotonic() + settle
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
    return None if last1 is None or first2 is None else first2 - last1


def planned_move(agent, lab, reset) -> float | None:
    """Client-observed outage of stop on node1 then start on node2."""
    reset(lab)
    n1, n2 = lab.node(1), lab.node(2)
    # As in a cluster: Pacemaker probes the resource on every node before it runs anywhere.
    agent.action(n2, "monitor")
    agent.action(n1, "start")
    lab.sync()
    outage = client_outage(lab, VIP, lambda: (agent.action(n1, "stop"), agent.action(n2, "start")),
                           15)
    agent.action(n2, "stop")
    return outage


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def limit_of(chain: str, service: tuple[float, float]) -> float:
    """The call-count limit of an action: the service times of the calls that must follow one
    another ("r" a read, "w" a write), e.g. "wr" for a move and its confirming read."""
    read, write = service
    return sum(read if c == "r" else write for c in chain)


def cells(runs: list[Run], lim: float | None, middle: str = "") -> str:
    """The cells every benchmark table shares for one agent's runs of one action: wall, CPU and
    max RSS, `middle` (the table's own counts, "| "-separated), the call-count limit and our
    multiple of it (`lim`, None or 0 for none), the exit codes."""
    wall = med([r.wall for r in runs])
    return (f"{wall:.3f} | {med([r.cpu for r in runs]):.3f} | "
            f"{max(r.rss_mb for r in runs):.1f} | {middle}"
            + (f"{lim:.3f} | {wall / lim:.2f} | " if lim else "- | - | ")
            + f"{','.join(sorted({str(r.rc) for r in runs}))} |")


def table(results: dict[str, dict[str, list[Run]]], outages: dict[str, float | None],
          api: str, service: tuple[float, float] = (0.0, 0.0),
          limits: dict[str, str] | None = None) -> None:
    """Print the table (medians), the outages and the ratios ours/peer (first/second); with a
    service time, each of our actions' call-count limit (`limits`: action -> chain) and our
    time as a multiple of it."""
    ours, peer = list(results)
    limits = limits or {}
    print(f"| action | agent | wall s | CPU s | max RSS MB | {api} calls | limit s | x limit "
          f"| exit codes |")
    print("|---|---|---|---|---|---|---|---|---|")
    odd = []
    for action in ACTIONS:
        for name, res in results.items():
            runs = res[action]
            odd += [(name, action, r.rc, r.err.strip()[-300:]) for r in runs
                    if r.rc not in (0, 7)]
            lim = limit_of(limits.get(action, ""), service) if name == ours else None
            print(f"| {action} | {name} | "
                  + cells(runs, lim, f"{med([len(r.calls) for r in runs]):g} | "))
    print()
    for name, o in outages.items():
        print(f"planned move node1 -> node2 (stop a, start b), client outage, {name}: "
              + (f"{o:.3f} s" if o is not None else "not measured"))
    print()
    for action in ("start", "monitor (recurring, depth 0)", "probe", "stop"):
        w = med([r.wall for r in results[peer][action]]) / med([r.wall for r in results[ours][action]])
        c = med([r.cpu for r in results[peer][action]]) / max(
            med([r.cpu for r in results[ours][action]]), 0.001)
        print(f"{action}: {ours} is {w:.0f}x faster (wall) and uses {c:.0f}x less CPU")
    for o in odd:
        print(f"unexpected exit: {o}")


def main(title: str, lab_class, params, api_calls, peer, reset, api: str, peer_runs: int,
         limits: dict[str, str] | None = None, extra=None) -> int:
    """The whole benchmark, in one lab run: our vip agent with `params(lab)`, counting
    `api_calls(lab)(since)`, against `peer(lab)` (.name, .action(node, action, interval=None)
    -> Run), at no service time and at REALISTIC; `limits` are our actions' call chains."""
    ap = argparse.ArgumentParser(description=title)
    ap.add_argument("--runs", type=int, default=10, help="cycles of cloudha")
    ap.add_argument("--peer-runs", type=int, default=peer_runs, help="cycles of the peer")
    args = ap.parse_args()
    binary = os.environ.get("CLOUDHA_BIN")
    if not binary or not os.access(binary, os.X_OK):
        print("CLOUDHA_BIN must point at the cloudha binary (see the Makefile's bench "
              "targets)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    passes = []
    with lab_class(nodes=2, name="bench") as lab:
        for n in lab.nodes:
            n.serve_name(PORT)
        a, b = Cloudha(lab, binary, params(lab), api_calls(lab)), peer(lab)
        for service in ((0.0, 0.0), REALISTIC):
            lab.set_service_time(*service)
            # The stand-ins' first calls are slow: warm both paths before timing.
            cycle(a, lab, 1, reset)
            cycle(b, lab, 1, reset)
            results = {a.name: cycle(a, lab, args.runs, reset),
                       b.name: cycle(b, lab, args.peer_runs, reset)}
            outages = {x.name: planned_move(x, lab, reset) for x in (a, b)}
            # `extra(lab, binary) -> lines`: a further measurement in the same pass.
            lines = extra(lab, binary) if extra else []
            passes.append((service, results, outages, lines))
    print(f"\n{title} (medians; {a.name} {args.runs} runs, {b.name} {args.peer_runs} runs; "
          f"{time.monotonic() - t0:.0f} s in all)")
    for service, results, outages, lines in passes:
        print(f"\nAPI service time: reads {service[0] * 1000:.0f} ms, writes "
              f"{service[1] * 1000:.0f} ms\n")
        table(results, outages, api, service, limits)
        for line in lines:
            print(line)
    return 0
