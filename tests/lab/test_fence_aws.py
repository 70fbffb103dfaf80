"""fence_cloudha against the EC2 lab (tests/lab/ec2lab): called the way Pacemaker's fencer calls
a fence agent (options as name=value lines on stdin) from inside a node namespace, with the
node's instance-role credentials from IMDS and the endpoint pinned to the lab. The instance
states are moto's, read back through the lab's own EC2 client. Needs root and the packages of
scripts/install-deps.sh; nothing here skips.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import cloudvip
import netns
from ec2lab import Ec2Lab

LAB = (Ec2Lab, dict(nodes=3, name="fenceaws"))


def before_each(lab):
    lab.faults.clear()
    lab.iam.allow_all()
    settle_power(lab)
    for n in lab.nodes:
        if state(lab, n) != "running":
            lab.ec2.start_instances(InstanceIds=[n.instance_id])


def fence_bin(lab) -> str:
    """The binary under the name the fencer calls it by (argv[0] picks the agent)."""
    link = lab.dir / "fence_cloudha"
    if not link.exists():
        os.symlink(netns.cloudha_bin(), link)
    return str(link)


def fence(lab, node, stdin: str, timeout=60) -> netns.Result:
    node = lab.node(node)
    env = cloudvip.agent_env(lab, node, {})
    t0 = time.monotonic()
    p = node.exec([fence_bin(lab)], env=env, timeout=timeout,
                  input=f"endpoint_url={lab.endpoint}\ncloud=aws\n{stdin}\n")
    r = netns.Result(p, time.monotonic() - t0)
    print(f"{node.name} fence_cloudha <<{stdin!r} -> {r.rc} in {r.elapsed:.3f}s\n"
          f"{p.stdout}{p.stderr.strip()}")
    return r


def state(lab, node) -> str:
    out = lab.ec2.describe_instances(InstanceIds=[node.instance_id])
    return out["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_list_shows_every_instance_by_name(lab):
    r = fence(lab, 1, "action=list")
    assert r.rc == 0, r
    want = {f"{n.instance_id},{n.name}" for n in lab.nodes}
    assert want <= set(r.out.split()), r.out


def test_off_by_nodename_is_confirmed_then_on(lab):
    n3 = lab.node(3)
    # The fencer's own options are ignored; nodename maps to the Name tag.
    t = time.monotonic()
    r = fence(lab, 1, "action=off\nnodename=node3\npcmk_host_check=dynamic-list")
    assert r.rc == 0, r
    assert state(lab, n3) == "stopped"
    calls = [c["action"] for c in lab.calls(t)]
    assert calls.count("StopInstances") == 1, calls
    assert fence(lab, 1, f"action=status\nplug={n3.instance_id}").rc == 2
    assert fence(lab, 2, "action=on\nnodename=node3").rc == 0
    assert state(lab, n3) == "running"
    assert fence(lab, 2, "action=status\nport=" + n3.instance_id).rc == 0


def test_reboot_powers_off_and_on(lab):
    n2 = lab.node(2)
    t = time.monotonic()
    assert fence(lab, 1, f"action=reboot\nplug={n2.instance_id}").rc == 0
    calls = [c["action"] for c in lab.calls(t)]
    assert calls.count("StopInstances") == 1 and calls.count("StartInstances") == 1, calls
    assert state(lab, n2) == "running"
    # The shipped least-privilege policy allows every call the agent made, and no more.
    policy = json.loads((Path(__file__).parents[2] / "packaging/examples/fence_cloudha/"
                         "iam-policy-fence.json").read_text())
    allowed = set()
    for st in policy["Statement"]:
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        allowed |= {a.removeprefix("ec2:") for a in acts}
    assert set(calls) == allowed, (calls, allowed)


def test_never_fences_the_instance_it_runs_on(lab):
    n1 = lab.node(1)
    r = fence(lab, 1, f"action=off\nplug={n1.instance_id}")
    assert r.rc == 1 and "instance this agent runs on" in r.err, r
    assert state(lab, n1) == "running"


def test_denied_stop_fails_and_the_preflight_names_it(lab):
    n2 = lab.node(2)
    lab.iam.deny("StopInstances")
    r = fence(lab, 1, f"action=off\nplug={n2.instance_id}")
    assert r.rc == 1 and "UnauthorizedOperation" in r.err, r
    assert state(lab, n2) == "running"
    r = fence(lab, 1, f"action=validate-all\nplug={n2.instance_id}")
    assert r.rc == 1 and "ec2:StopInstances" in r.err, r
    lab.iam.allow_all()
    r = fence(lab, 1, f"action=validate-all\nplug={n2.instance_id}")
    assert r.rc == 0 and "granted" in r.out, r
    assert state(lab, n2) == "running", "the pre-flight (DryRun) changes nothing"


def test_throttling_is_retried_within_the_deadline(lab):
    n2 = lab.node(2)
    lab.faults.set("throttle", count=2, actions=["StopInstances"])
    r = fence(lab, 1, f"action=off\nplug={n2.instance_id}")
    assert r.rc == 0, r
    assert state(lab, n2) == "stopped"


def test_an_unknown_instance_is_a_failure_not_off(lab):
    r = fence(lab, 1, "action=status\nplug=i-0123456789abcdef0")
    assert r.rc == 1, r
    r = fence(lab, 1, "action=off\nnodename=no-such-node")
    assert r.rc == 1 and "no instance is named" in r.err, r


def settle_power(lab) -> None:
    """No power step of an earlier test may land in the next one; power is instant again."""
    lab.wait_power_settled()
    lab.set_power_delay(0)


def check_off_waits_through_stopping(lab, fence, off_word: str, middle_word: str):
    """With a stop that takes 1.5 s, as a real cloud's does: status says ON while the
    instance is stopping (it may still write), `off` returns only once the cloud reports it
    stopped, and a power_timeout shorter than the stop is a failure, never success."""
    n2, n3 = lab.node(2), lab.node(3)
    lab.set_power_delay(1.5)
    t = time.monotonic()
    result = {}

    def fence_off():
        result["r"] = fence(lab, 1, f"action=off\nplug={n2.instance_id}")
        result["end"] = time.monotonic()

    off = threading.Thread(target=fence_off)
    off.start()
    netns.wait_for(lambda: any(e["instance"] == n2.instance_id and e["state"] == middle_word
                               for e in lab.power_events(t)), 20, f"{n2.name} {middle_word}")
    during = fence(lab, 3, f"action=status\nplug={n2.instance_id}")
    off.join(60)
    r = result["r"]
    assert r.rc == 0, r
    assert during.rc == 0 and "ON" in during.out, ("stopping is not off", during)
    steps = [e for e in lab.power_events(t) if e["instance"] == n2.instance_id]
    assert [e["state"] for e in steps] == [middle_word, off_word], steps
    stopped_at = steps[-1]["t"]
    assert stopped_at - steps[0]["t"] >= 1.4, steps
    # The agent answered after the cloud said stopped, and not much later (its polling).
    late = result["end"] - stopped_at
    print(f"off returned {late:.2f} s after the instance was {off_word}")
    assert late > 0, (late, "off must not succeed before the instance is stopped")
    assert fence(lab, 1, f"action=status\nplug={n2.instance_id}").rc == 2

    lab.set_power_delay(5)
    r = fence(lab, 1, f"action=off\nplug={n3.instance_id}\npower_timeout=2")
    assert r.rc == 1 and "not confirmed" in r.err, r
    assert r.elapsed < 4, r


def test_off_waits_through_stopping_and_a_short_timeout_fails(lab):
    check_off_waits_through_stopping(lab, fence, "stopped", "stopping")


def test_the_peer_fence_aws_fences_in_the_same_lab(lab):
    """fence-agents' fence_aws (bench/fence.py's peer) works against this lab as against EC2:
    the figures of the benchmark compare two agents that both really fence here."""
    n3 = lab.node(3)
    env = {k: v for k, v in cloudvip.agent_env(lab, lab.node(1), {}).items()
           if not k.startswith("OCF_")}
    env["AWS_ENDPOINT_URL"] = lab.endpoint  # Debian's boto3 would ignore it: see install-deps

    def peer(action: str) -> int:
        p = lab.node(1).exec(["/opt/fence-aws/bin/python", "/usr/sbin/fence_aws"], env=env,
                             timeout=120, input=f"region={lab.region}\naction={action}\n"
                                                f"plug={n3.instance_id}\n")
        print(f"fence_aws {action} -> {p.returncode}\n{p.stdout}{p.stderr[-500:]}")
        return p.returncode

    t = time.monotonic()
    assert peer("status") == 0
    assert peer("off") == 0
    assert state(lab, n3) == "stopped"
    assert [c["action"] for c in lab.calls(t)].count("StopInstances") == 1
    assert peer("status") == 2


def test_off_asks_for_the_stop_at_once_and_a_terminated_instance_counts_as_off(lab):
    """StopInstances of a stopped instance is a no-op on EC2, so off sends it without reading
    the state first; a terminated instance refuses it and is fenced for good. (Last in this
    module: node 3's instance stays terminated.)"""
    n3 = lab.node(3)
    t = time.monotonic()
    assert fence(lab, 1, f"action=off\nplug={n3.instance_id}").rc == 0
    calls = [c["action"] for c in lab.calls(t)]
    assert calls[0] == "StopInstances", calls
    lab.wait_power_settled()
    lab.ec2.terminate_instances(InstanceIds=[n3.instance_id])
    lab.wait_power_settled()
    assert state(lab, n3) == "terminated"
    r = fence(lab, 1, f"action=off\nplug={n3.instance_id}")
    assert r.rc == 0, r
