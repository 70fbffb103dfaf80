"""Standby readiness on a three-node Pacemaker cluster on the EC2 lab, with STONITH on: the
ocf:cloudha:cloud-ready clone runs the vip's pre-flight on every node each interval and
publishes cloudha-ready (and its reason) as a node attribute; a location rule keeps vip1 off
a node that could not take it over. vip1 prefers node1, then node2 (node3 least). Node 2's
permission to move the address is revoked: within one interval its attribute says so, with
the reason in crm_mon -A; node 1 crashes; after the fence, the VIP goes to node 3, not to
node 2 where the start would have failed. The readiness check's API calls per interval are
counted. Needs root, corosync, pacemaker, pcs and CLOUDHA_BIN; nothing skips.
"""

import re
import time

import failover
from ec2lab import Ec2Lab

VIP = "10.0.1.100"
RSC = failover.RSC
INTERVAL = 5  # the clone's monitor interval, s
DAMPEN = 1

CLUSTER = (Ec2Lab, "readyaws", ("vip", "cloud-ready"), {"stonith": True, "nodes": 3})


def attribute(c, name="cloudha-ready") -> dict:
    """{node: value} of a node attribute, as attrd holds it (a deleted one has no value)."""
    out = c.node("node3").run(["attrd_updater", "-Q", "-A", "-n", name], check=False).stdout
    return {h: v for h, v in re.findall(r'host="([^"]+)" value="([^"]*)"', out) if v}


def test_a_standby_that_cannot_take_over_is_passed_over(lab):
    c = lab.cluster
    n1, n2, n3 = lab.node(1), lab.node(2), lab.node(3)
    cloud = {"cloud": "aws", "endpoint_url": lab.endpoint}
    kv = [f"{k}={v}" for k, v in cloud.items()]
    c.node("node1").run(["crm_attribute", "--type", "rsc_defaults", "--name",
                         "resource-stickiness", "--update", "1000"])
    failover.fence_devices(c, {**cloud, "power_timeout": "30"})

    # The readiness clone, with the vip's own address, interface and cloud settings.
    c.node("node1").run(["pcs", "resource", "create", "cloud-ready", "ocf:cloudha:cloud-ready",
                         f"ip={VIP}", "nic=eth0", f"dampen={DAMPEN}", *kv, "op", "monitor",
                         f"interval={INTERVAL}s", "clone"])
    c.wait_for(lambda: attribute(c) == {"node1": "1", "node2": "1", "node3": "1"}, 60,
               "every node ready")
    # vip1: node1, else node2, else node3, never a node that is not ready (a finite score,
    # so a VIP stays up when no node is ready).
    c.node("node1").run(["pcs", "resource", "create", RSC, failover.AGENT, f"ip={VIP}",
                         "cidr_netmask=24", "nic=eth0", *kv, "op", "monitor",
                         f"interval={failover.MONITOR}", "--disabled"])
    c.node("node1").run(["pcs", "constraint", "location", RSC, "prefers", "node1=100",
                         "node2=50"])
    c.node("node1").run(["pcs", "constraint", "location", RSC, "rule", "score=-10000",
                         "not_defined", "cloudha-ready", "or", "cloudha-ready", "eq", "0"])
    c.node("node1").run(["pcs", "resource", "enable", RSC])
    c.wait_running(RSC, "node1", timeout=30)

    # The check's cost: API calls made by node 3 (which runs only the clone) over 3 intervals.
    t0 = time.monotonic()
    time.sleep(3 * INTERVAL)
    calls = [x["action"] for x in lab.calls(t0) if x.get("key") == n3.key]
    per = len(calls) / 3
    print(f"readiness calls by node3 in 3 intervals: {len(calls)} ({per:.1f} per interval): "
          f"{sorted(set(calls))}")
    assert 1 <= per <= 4, calls

    # Node 2 loses the permission to move the address.
    t_deny = time.monotonic()
    lab.iam.deny("AssignPrivateIpAddresses", key=n2.key)
    c.wait_for(lambda: attribute(c).get("node2") == "0", INTERVAL + DAMPEN + 5,
               "node2 not ready")
    seen = time.monotonic() - t_deny
    print(f"permission revoked -> node2's cloudha-ready=0 after {seen:.1f}s "
          f"(interval {INTERVAL}s, dampen {DAMPEN}s)")
    reason = attribute(c, "cloudha-ready-reason")
    assert "ec2:AssignPrivateIpAddresses" in reason.get("node2", ""), reason
    assert set(reason) == {"node2"}, reason
    mon = c.crm_mon(on="node3", args=("-1", "-A"))
    print(mon)
    assert "cloudha-ready-reason" in mon and "AssignPrivateIpAddresses" in mon, mon
    assert c.where(RSC, on="node3") == ["node1"], "a standby's trouble moves nothing"

    # Node 1 crashes: fenced, then the VIP goes to node 3.
    for n in c.nodes:
        n.serve_hostname(failover.PORT)
    poller = c.client.poll_tcp(VIP, failover.PORT, every=0.05, timeout=0.2)
    c.wait_for(lambda: "node1" in [a for _, a in poller.results()], 10, "node1 answering")
    crash_at = c.crash("node1")
    c.wait_for(lambda: c.where(RSC, on="node3") == ["node3"], 60, "vip1 on node3")
    c.wait_for(lambda: any(a == "node3" and t > crash_at for t, a in poller.results()), 20,
               "node3 answering")
    poller.stop()
    first3 = min(t for t, a in poller.results() if a == "node3" and t > crash_at)
    print(f"node1 crash -> client answered by node3 after {first3 - crash_at:.2f}s")
    assert lab.owners(VIP) == [n3.eni_id]
    # The moves that went through (the clones' permission probes are refused or rejected).
    moves = [x for x in lab.calls(crash_at)
             if x["action"] == "AssignPrivateIpAddresses" and x["status"] == 200]
    assert moves and all(x["key"] == n3.key for x in moves), moves
    # Node 2 was never tried: a start there would have failed (it lacks the permission) and
    # left a failed action behind.
    status = c.status(on="node3")
    assert failover.vip1_failures(status) == [], status["failures"]
    lab.iam.allow_all()
