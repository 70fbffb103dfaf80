#!/usr/bin/env python3
"""Benchmark of fence_cloudha against fence-agents' fence_aws, in one run on the EC2 lab.

Both agents run inside a lab node's namespace against the same stand-in (moto with the fidelity
fixes, tests/lab/ec2lab), with the node's instance-role credentials from the lab's IMDS, and
get their options on stdin as Pacemaker's fencer passes them. fence_aws runs under
/opt/fence-aws/bin/python (scripts/install-deps.sh: Debian's fence_aws with a boto3 that honours
AWS_ENDPOINT_URL, which is pinned to the lab; Debian's own boto3 would ignore it).

Prints, per agent:
- wall, CPU and max RSS of the whole process tree and the EC2 calls of status, monitor, off
  (until confirmed) and reboot (medians), with the lab's instances stopping at once;
- with the instances taking STOP_DELAY s to stop (as on EC2): how long off took and how long
  after the instance was really stopped the agent returned (its polling granularity);
- the client-observed outage of a node freeze in a two-node Pacemaker cluster with STONITH on
  (one device per node, pcmk_reboot_action=off; fence_aws with pcmk_host_map, as it needs),
  with the fenced failover's milestones.
OCI has no peer agent: fence_cloudha's own figures on the OCI lab follow. Asserts nothing.

    CLOUDHA_BIN=.../release/cloudha python3 bench/fence.py [--runs 5] [--peer-runs 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lab"))

import cloudvip  # noqa: E402
import failover  # noqa: E402
from ec2lab import Ec2Lab  # noqa: E402
from ocilab import OciLab  # noqa: E402
from vipbench import REALISTIC, cells, limit_of, measure, med  # noqa: E402

# What must be sequential: status and monitor read; off asks for the stop (write) and reads until
# the instance is stopped; reboot then asks for the start. (Ours also reads the state before
# the stop, to skip a stop of a stopped instance: one read over the limit.)
LIMITS = {"status": "r", "monitor": "r", "off": "wr", "reboot": "wrw"}

FENCE_AWS = "/usr/sbin/fence_aws"
PEER_PYTHON = "/opt/fence-aws/bin/python"
ACTIONS = ("status", "monitor", "off", "reboot")
STOP_DELAY = 5.0
VIP = "10.0.1.100"


def link(lab, binary: str) -> str:
    """The binary under the name the fencer calls it by (argv[0] picks the agent)."""
    path = lab.dir / "fence_cloudha"
    if not path.exists():
        os.symlink(binary, path)
    return str(path)


class Cloudha:
    name = "fence_cloudha"

    def __init__(self, lab, binary: str, cloud: str):
        self.lab, self.argv = lab, [link(lab, binary)]
        self.options = f"cloud={cloud}\nendpoint_url={lab.endpoint}\n"
        if cloud == "oci":
            self.options += f"auth_endpoint_url={lab.federation_endpoint}\n"

    def env(self, node) -> dict:
        return cloudvip.agent_env(self.lab, node, {})


class FenceAws:
    name = "fence_aws"

    def __init__(self, lab):
        self.lab, self.argv = lab, [PEER_PYTHON, FENCE_AWS]
        self.options = f"region={lab.region}\n"

    def env(self, node) -> dict:
        env = {k: v for k, v in cloudvip.agent_env(self.lab, node, {}).items()
               if not k.startswith("OCF_")}
        env["AWS_ENDPOINT_URL"] = self.lab.endpoint  # the lab's relay inside the node
        return env


def api_calls(lab):
    return lambda since: lab.calls(since)


def call(lab, agent, node, action: str, plug: str | None):
    stdin = agent.options + f"action={action}\n" + (f"plug={plug}\n" if plug else "")
    return measure(lab, node, agent.argv, agent.env(node), api_calls(lab), input=stdin)


def running(lab, target) -> None:
    """The target instance running again (by the lab's own key, not counted), nothing moving."""
    lab.wait_power_settled()
    lab._control("POST", "power", {"delay": 0})
    if isinstance(lab, OciLab):
        lab._control("POST", "instances", {"id": target.instance_id, "running": True})
    else:
        lab.ec2.start_instances(InstanceIds=[target.instance_id])


def actions(lab, agent, runs: int) -> dict[str, list]:
    """status, monitor, off and reboot of node3's instance from node1, `runs` times each."""
    n1, n3 = lab.node(1), lab.node(3)
    out = {a: [] for a in ACTIONS}
    for _ in range(runs):
        for action in ACTIONS:
            running(lab, n3)
            out[action].append(call(lab, agent, n1, action,
                                    None if action == "monitor" else n3.instance_id))
    return out


def slow_stop(lab, agent, runs: int, delay: float) -> list[tuple[float, float, int]]:
    """off with the instance `stopping` for `delay` s: (wall, seconds after the instance was
    stopped that the agent returned, exit code) per run."""
    n1, n3 = lab.node(1), lab.node(3)
    out = []
    for _ in range(runs):
        running(lab, n3)
        lab.set_power_delay(delay)
        r = call(lab, agent, n1, "off", n3.instance_id)
        stopped = [e["t"] for e in lab.power_events(r.start)
                   if e["instance"] == n3.instance_id and e["state"] in ("stopped", "STOPPED")]
        out.append((r.wall, r.end - stopped[0] if stopped else float("nan"), r.rc))
    lab.wait_power_settled()
    lab.set_power_delay(0)
    return out


def print_actions(results: dict, api: str, service=(0.0, 0.0)) -> None:
    print(f"\nAPI service time: reads {service[0] * 1000:.0f} ms, writes "
          f"{service[1] * 1000:.0f} ms\n")
    print(f"| action | agent | wall s | CPU s | max RSS MB | {api} calls | limit s | x limit | "
          f"exit codes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for action in ACTIONS:
        for name, res in results.items():
            runs = res[action]
            lim = limit_of(LIMITS[action], service) if name == "fence_cloudha" else 0
            print(f"| {action} | {name} | "
                  + cells(runs, lim, f"{med([len(r.calls) for r in runs]):g} | "))


def print_slow(slow: dict, delay: float) -> None:
    print(f"\noff with the instance stopping for {delay:.0f} s (medians):\n")
    print("| agent | wall s | returned after stopped, s | exit codes |")
    print("|---|---|---|---|")
    for name, rows in slow.items():
        print(f"| {name} | {med([w for w, _, _ in rows]):.3f} | "
              f"{med([late for _, late, _ in rows]):.3f} | "
              f"{','.join(sorted({str(rc) for _, _, rc in rows}))} |")


FENCE_AWS_WRAPPER = """#!/bin/sh
# fence_aws for the lab's nodes: fence-agents' script under a boto3 that honours
# AWS_ENDPOINT_URL, pinned to the lab's endpoint relay inside the node.
AWS_ENDPOINT_URL={endpoint} exec {python} {script} "$@"
"""


def install_fence_aws(lab) -> None:
    """In every node's mount namespace, /usr/sbin/fence_aws is the pinned wrapper (the fencer
    runs the agent it finds there)."""
    script = lab.dir / "fence_aws.py"
    script.write_bytes(Path(FENCE_AWS).read_bytes())
    wrapper = lab.dir / "fence_aws"
    wrapper.write_text(FENCE_AWS_WRAPPER.format(endpoint=lab.endpoint, python=PEER_PYTHON,
                                                script=script))
    wrapper.chmod(0o755)
    for n in lab.cluster.nodes:
        n.run(["mount", "--bind", str(wrapper), FENCE_AWS])


def cluster_outage(binary: str, agent: str) -> failover.Outcome:
    """A frozen node1 fenced by `agent` in a two-node cluster with STONITH on."""
    with Ec2Lab(nodes=2, name=f"bfence{agent[-3:]}", pacemaker=True, agents=("vip",),
                binary=binary, stonith=True) as lab:
        cloud = {"cloud": "aws", "endpoint_url": lab.endpoint}
        params = {"ip": VIP, "cidr_netmask": "24", "nic": "eth0", **cloud}
        if agent == "fence_aws":
            install_fence_aws(lab)
            fence = {"region": lab.region, "power_timeout": "60"}
            per_node = {n.name: {"pcmk_host_map": f"{n.name}:{n.instance_id}"}
                        for n in lab.nodes}
        else:
            fence, per_node = {**cloud, "power_timeout": "60"}, {}
        return failover.stonith_failover(lab, VIP, params, fence, agent=agent,
                                         per_node=per_node, log=lambda s: None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs of each action per agent")
    ap.add_argument("--peer-runs", type=int, default=5)
    args = ap.parse_args()
    binary = os.environ.get("CLOUDHA_BIN")
    if not binary or not os.access(binary, os.X_OK):
        print("CLOUDHA_BIN must point at the cloudha binary (make bench-fence)", file=sys.stderr)
        return 2
    if not os.access(PEER_PYTHON, os.X_OK):
        print(f"{PEER_PYTHON} is missing: run scripts/install-deps.sh", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    with Ec2Lab(nodes=3, name="benchfence") as lab:
        agents = [Cloudha(lab, binary, "aws"), FenceAws(lab)]
        for a in agents:  # the stand-in's first calls are slow: warm both paths
            actions(lab, a, 1)
        results = {a.name: actions(lab, a, args.runs if a.name == "fence_cloudha"
                                   else args.peer_runs) for a in agents}
        slow = {a.name: slow_stop(lab, a, 3, STOP_DELAY) for a in agents}
        lab.set_service_time(*REALISTIC)
        for a in agents:
            actions(lab, a, 1)
        real = {a.name: actions(lab, a, args.runs if a.name == "fence_cloudha"
                                else args.peer_runs) for a in agents}
        lab.set_service_time(0, 0)
    outages = {a: cluster_outage(binary, a) for a in ("fence_cloudha", "fence_aws")}
    with OciLab(nodes=3, name="benchfenceoci") as lab:
        ours = Cloudha(lab, binary, "oci")
        actions(lab, ours, 1)
        oci = {ours.name: actions(lab, ours, args.runs)}
        oci_slow = {ours.name: slow_stop(lab, ours, 3, STOP_DELAY)}
        lab.set_service_time(*REALISTIC)
        actions(lab, ours, 1)
        oci_real = {ours.name: actions(lab, ours, args.runs)}

    print(f"\nfence_cloudha vs fence_aws on the EC2 lab (medians; {args.runs} and "
          f"{args.peer_runs} runs; {time.monotonic() - t0:.0f} s in all)\n")
    print_actions(results, "EC2")
    print_actions(real, "EC2", REALISTIC)
    print_slow(slow, STOP_DELAY)
    print("\nnode1 frozen in a two-node cluster with STONITH on (seconds after the freeze):\n")
    labels = [label for label, _ in outages["fence_cloudha"].milestones()]
    print("| milestone | " + " | ".join(outages) + " |")
    print("|---|" + "---|" * len(outages))
    for label in labels:
        row = [dict(o.milestones()).get(label) for o in outages.values()]
        print(f"| {label} | " + " | ".join("-" if v is None else f"+{v:.2f}" for v in row) + " |")
    share = []
    for o in outages.values():
        m = dict(o.milestones())
        asked, done = m.get("fencing requested"), m.get("fence confirmed")
        share.append("-" if asked is None or done is None else f"{done - asked:.2f}")
    # When Pacemaker asks for the fence varies by a second from run to run (its transition
    # timing); from the request to the confirmation is the agent's own part.
    print("| fencing requested -> confirmed, s | " + " | ".join(share) + " |")
    print("| client outage | " + " | ".join(
        "-" if o.outage is None else f"{o.outage:.2f}" for o in outages.values()) + " |")
    w = {a: med([r.wall for r in results[a]["status"]]) for a in results}
    print(f"\nstatus: fence_cloudha is {w['fence_aws'] / w['fence_cloudha']:.0f}x faster (wall)")
    print("\nfence_cloudha on the OCI lab (no peer: fence-agents has no OCI agent):\n")
    print_actions(oci, "OCI")
    print_actions(oci_real, "OCI", REALISTIC)
    print_slow(oci_slow, STOP_DELAY)
    return 0


if __name__ == "__main__":
    sys.exit(main())
