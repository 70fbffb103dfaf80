"""fence_cloudha against the OCI lab (tests/lab/ocilab): called the way Pacemaker's fencer calls
a fence agent (name=value lines on stdin) from inside a node namespace, signing as the node's
instance principal, the endpoints pinned to the lab. InstanceAction STOP/START and GetInstance
are the lab's; a stopped instance's machine would lose its processes. Needs root and the
packages of scripts/install-deps.sh; nothing here skips.
"""

from __future__ import annotations

import time

import cloudvip
import netns
import pytest
from test_fence_aws import check_off_waits_through_stopping, fence_bin, settle_power

pytest.importorskip("oci")
from ocilab import OciLab  # noqa: E402

LAB = (OciLab, dict(nodes=3, name="fenceoci"))


def before_each(lab):
    lab.faults.clear()
    lab.iam.allow_all()
    settle_power(lab)
    for n in lab.nodes:
        lab._control("POST", "instances", {"id": n.instance_id, "running": True})


def running(lab, node) -> bool:
    return lab._control("GET", "instances")[node.instance_id]


def fence(lab, node, stdin: str) -> netns.Result:
    node = lab.node(node)
    env = cloudvip.agent_env(lab, node, {})
    t0 = time.monotonic()
    p = node.exec([fence_bin(lab)], env=env, timeout=60,
                  input=f"cloud=oci\nendpoint_url={lab.endpoint}\n"
                        f"auth_endpoint_url={lab.federation_endpoint}\n{stdin}\n")
    r = netns.Result(p, time.monotonic() - t0)
    print(f"{node.name} fence_cloudha <<{stdin!r} -> {r.rc} in {r.elapsed:.3f}s\n"
          f"{p.stdout}{p.stderr.strip()}")
    return r


def test_list_shows_every_instance_by_display_name(lab):
    r = fence(lab, 1, "action=list")
    assert r.rc == 0, r
    assert {f"{n.instance_id},{n.name}" for n in lab.nodes} <= set(r.out.split()), r.out


def test_off_by_node_name_is_confirmed_then_on(lab):
    n3 = lab.node(3)
    t = time.monotonic()
    # The fencer's default: the node name as the port.
    r = fence(lab, 1, "action=off\nport=node3\nnodename=node3")
    assert r.rc == 0, r
    assert not running(lab, n3)
    actions = [c for c in lab.calls(t) if c["operation"] == "InstanceAction"]
    assert len(actions) == 1, actions
    assert fence(lab, 2, f"action=status\nplug={n3.instance_id}").rc == 2
    assert fence(lab, 2, "action=on\nnodename=node3").rc == 0
    assert running(lab, n3)
    assert fence(lab, 1, f"action=status\nplug={n3.instance_id}").rc == 0


def test_never_fences_the_instance_it_runs_on(lab):
    n1 = lab.node(1)
    r = fence(lab, 1, f"action=off\nplug={n1.instance_id}")
    assert r.rc == 1 and "instance this agent runs on" in r.err, r
    assert running(lab, n1)


def test_denied_power_action_fails_and_changes_nothing(lab):
    n2 = lab.node(2)
    lab.iam.deny("InstanceAction")
    r = fence(lab, 1, f"action=off\nplug={n2.instance_id}")
    assert r.rc == 1 and "InstanceAction" in r.err, r
    assert running(lab, n2)


def test_throttling_is_retried(lab):
    n2 = lab.node(2)
    lab.faults.set("throttle", count=2)
    r = fence(lab, 1, f"action=off\nplug={n2.instance_id}")
    assert r.rc == 0, r
    assert not running(lab, n2)


def test_off_waits_through_stopping_and_a_short_timeout_fails(lab):
    check_off_waits_through_stopping(lab, fence, "STOPPED", "STOPPING")


def test_a_missing_policy_names_the_fencing_policy(lab):
    lab.iam.deny("InstanceAction")
    r = fence(lab, 1, f"action=off\nplug={lab.node(2).instance_id}")
    assert r.rc == 1 and "use instances" in r.err and "oci-policy-fence.txt" in r.err, r
