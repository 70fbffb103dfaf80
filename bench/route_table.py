#!/usr/bin/env python3
"""Benchmark of route-table against resource-agents' aws-vpc-move-ip, in one run on the EC2 lab.

Both agents run inside the lab's node namespaces against the same stand-in (moto with the
fidelity fixes, tests/lab/ec2lab): ours with the node's instance-role credentials from IMDS,
aws-vpc-move-ip with the awscli wrapper and a profile (lab.aws_env). Both configure the
overlay IP as a /32 on eth0 and point 1, 10 and 50 route tables at the node's ENI. Prints a
table (medians; wall and CPU of the whole process tree, its largest RSS, EC2 API calls per
action), the client-observed outage of a planned move node1 -> node2 (the client subnet's
table is one of the tables) and the issue's targets. Asserts nothing.

    CLOUDHA_BIN=.../release/cloudha python3 bench/route_table.py [--runs 5] [--peer-runs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lab"))

import cloudvip  # noqa: E402
import netns  # noqa: E402
import vipbench  # noqa: E402  (bash time + GNU time, as the vip benchmarks)
from vipbench import Run, med  # noqa: E402
from ec2lab import Ec2Lab  # noqa: E402

OVERLAY = "192.168.100.10"
DEST = OVERLAY + "/32"
PORT = 8080
MOVE_IP = "/usr/lib/ocf/resource.d/heartbeat/aws-vpc-move-ip"
SCALES = (1, 10, 50)
ACTIONS = ("start", "probe", "monitor (recurring, depth 0)", "monitor (recurring, monapi)",
           "stop")


def measure(lab, node, argv, env) -> Run:
    """vipbench's measure with room for aws-vpc-move-ip on 50 tables (~6 minutes)."""
    return vipbench.measure(lab, node, argv, env,
                            lambda t: [c for c in lab.calls(t) if c["service"] == "ec2"],
                            timeout=900)


class Cloudha:
    name = "cloudha route-table"

    def __init__(self, lab, binary):
        self.lab, self.binary = lab, binary

    def env(self, node, tables, interval=None):
        extra = {"OCF_RESKEY_CRM_meta_timeout": "60000"}
        if interval:
            extra["OCF_RESKEY_CRM_meta_interval"] = str(interval)
        return cloudvip.agent_env(self.lab, node, {
            "ip": OVERLAY, "nic": "eth0", "route_tables": ",".join(tables),
            "endpoint_url": self.lab.endpoint}, extra)

    def action(self, node, action, tables):
        verb, interval, extra = {
            "start": ("start", None, {}), "stop": ("stop", None, {}),
            "probe": ("monitor", None, {}),
            "monitor (recurring, depth 0)": ("monitor", 10000, {}),
            # Ours has no monapi; its equivalent is a cloud check on every monitor.
            "monitor (recurring, monapi)": ("monitor", 10000,
                                            {"OCF_RESKEY_cloud_check_interval": "0"}),
        }[action]
        env = {**self.env(node, tables, interval), **extra}
        return measure(self.lab, node, [self.binary, "route-table", verb], env)


class MoveIp(vipbench.Peer):
    name = "aws-vpc-move-ip"

    def env(self, node, tables, interval=None, monapi=False):
        env = netns.agent_env({"ip": OVERLAY, "routing_table": ",".join(tables),
                               "interface": "eth0", "awscli": str(self.lab.dir / "aws"),
                               "profile": "default", "monapi": "true" if monapi else "false"},
                              instance="overlay1", base=self.lab.aws_env(node), pacemaker=False)
        return self.with_interval(env, interval)

    def action(self, node, action, tables):
        verb, interval, monapi = {
            "start": ("start", None, False), "stop": ("stop", None, False),
            "probe": ("monitor", None, False),
            "monitor (recurring, depth 0)": ("monitor", 10000, False),
            "monitor (recurring, monapi)": ("monitor", 10000, True),
        }[action]
        return measure(self.lab, node, [MOVE_IP, verb], self.env(node, tables, interval, monapi))


def reset(lab, tables, to_node):
    """Every table routes the overlay IP to `to_node`, no node has the address."""
    for t in tables:
        lab.set_route(t, DEST, to_node, wait=False)
    for n in lab.nodes:
        n.exec(["ip", "addr", "del", f"{OVERLAY}/32", "dev", "eth0"])
    lab.sync()


def cycle(agent, lab, tables, runs) -> dict:
    n1, n2 = lab.node(1), lab.node(2)
    out = {a: [] for a in ACTIONS}
    for _ in range(runs):
        reset(lab, tables, n2)  # start has every table to change
        for a in ACTIONS:
            out[a].append(agent.action(n1, a, tables))
    return out


def planned_move(agent, lab, tables) -> float | None:
    """Client-observed outage of stop on node1 then start on node2."""
    n1, n2 = lab.node(1), lab.node(2)
    reset(lab, tables, n2)
    agent.action(n1, "start", tables)
    lab.sync()
    outage = vipbench.client_outage(
        lab, OVERLAY, lambda: (agent.action(n1, "stop", tables), agent.action(n2, "start", tables)),
        30)
    agent.action(n2, "stop", tables)
    return outage


# What must be sequential in our start: the two reads (sent together), the route changes
# (every table at once), the confirming read; a probe and a monapi monitor read the tables.
LIMITS = {"start": "rwr", "probe": "r", "monitor (recurring, monapi)": "r"}


def print_pass(results, outages, service) -> None:
    """One pass's table: every scale, action and agent, our call-count limit beside ours."""
    print("| tables | action | agent | wall s | CPU s | max RSS MB | EC2 calls | "
          "DescribeRouteTables | limit s | x limit | exit codes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    failures = []
    for n, by_agent in results.items():
        for action in ACTIONS:
            for name, res in by_agent.items():
                runs = res[action]
                ok = [r for r in runs if r.rc in (0, 7)]
                failures += [(n, name, action, r.rc, r.err[-400:]) for r in runs
                             if r.rc not in (0, 7)]
                calls = med([len(r.calls) for r in ok]) if ok else float("nan")
                desc = med([sum(c["action"] == "DescribeRouteTables" for c in r.calls)
                            for r in ok]) if ok else float("nan")
                lim = (vipbench.limit_of(LIMITS.get(action, ""), service)
                       if name == Cloudha.name else 0)
                print(f"| {n} | {action} | {name} | "
                      + vipbench.cells(runs, lim, f"{calls:g} | {desc:g} | "))
    print()
    for n, o in outages.items():
        for name, v in o.items():
            print(f"planned move node1 -> node2 with {n} tables (stop a, start b), client "
                  f"outage, {name}: " + (f"{v:.3f} s" if v is not None else "not measured"))
    for f in failures:
        print(f"unexpected exit: {f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="cycles of cloudha per scale")
    ap.add_argument("--peer-runs", type=int, default=3,
                    help="cycles of aws-vpc-move-ip with 1 table (1 cycle at 10 and 50: "
                         "~2 s and 1 s of sleep per table and call)")
    ap.add_argument("--scales", default=",".join(map(str, SCALES)))
    args = ap.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    binary = os.environ.get("CLOUDHA_BIN")
    if not binary or not os.access(binary, os.X_OK):
        print("CLOUDHA_BIN must point at the cloudha binary (make bench-route-table)",
              file=sys.stderr)
        return 2
    t0 = time.monotonic()
    passes = []
    with Ec2Lab(nodes=2, name="benchrt") as lab:
        for n in lab.nodes:
            n.serve_name(PORT)
            lab.ec2.modify_network_interface_attribute(NetworkInterfaceId=n.eni_id,
                                                       SourceDestCheck={"Value": False})
        # The client subnet's table first, so every scale carries the client's traffic.
        tables = [lab.create_route_table([lab.client_subnet_id])]
        tables += [lab.create_route_table() for _ in range(max(scales) - 1)]
        ours, peer = Cloudha(lab, binary), MoveIp(lab)
        for service in ((0.0, 0.0), vipbench.REALISTIC):
            lab.set_service_time(*service)
            cycle(ours, lab, tables[:1], 1)  # warm moto's paths before timing
            cycle(peer, lab, tables[:1], 1)
            results: dict[int, dict[str, dict]] = {}
            outages = {}
            for n in scales:
                results[n] = {ours.name: cycle(ours, lab, tables[:n], args.runs)}
                # The peer's 50-table cycle takes minutes: at the service time, 1 table only.
                if service == (0.0, 0.0) or n == 1:
                    results[n][peer.name] = cycle(peer, lab, tables[:n],
                                                  args.peer_runs if n == 1 else 1)
                print(f"{n} tables done at {time.monotonic() - t0:.0f} s", file=sys.stderr)
            for n in (1, 10):
                if n in scales:
                    outages[n] = {a.name: planned_move(a, lab, tables[:n])
                                  for a in (ours, peer) if a.name in results[n]}
            passes.append((service, results, outages))

    print(f"\nroute-table vs aws-vpc-move-ip on the EC2 lab (medians; cloudha {args.runs} runs, "
          f"aws-vpc-move-ip {args.peer_runs} runs at 1 table, 1 run at 10 and 50 (1 table only "
          f"at the service time); {time.monotonic() - t0:.0f} s in all)")
    for service, results, outages in passes:
        print(f"\nAPI service time: reads {service[0] * 1000:.0f} ms, writes "
              f"{service[1] * 1000:.0f} ms\n")
        print_pass(results, outages, service)
    results = passes[0][1]
    print("\ntargets:")
    wall = {n: {name: med([r.wall for r in res["start"]]) for name, res in r.items()}
            for n, r in results.items()}
    for n in results:
        w = wall[n]
        print(f"  start, {n} tables: cloudha {w[Cloudha.name]:.3f} s, aws-vpc-move-ip "
              f"{w[MoveIp.name]:.3f} s: {w[MoveIp.name] / w[Cloudha.name]:.0f}x faster "
              f"(target >= 20x)")
        most = max(sum(c["action"] == "DescribeRouteTables" for c in r.calls)
                   for r in results[n][Cloudha.name]["start"]
                   if r.rc in (0, 7)) if results[n][Cloudha.name]["start"] else -1
        print(f"  DescribeRouteTables per cloudha start, {n} tables: at most {most} "
              f"(target <= 2)")
    if 1 in wall and 50 in wall:
        r = wall[50][Cloudha.name] / wall[1][Cloudha.name]
        print(f"  cloudha start, 50 tables / 1 table: {r:.2f}x (target <= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
