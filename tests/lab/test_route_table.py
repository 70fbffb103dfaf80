"""The route-table agent against the EC2 lab (tests/lab/ec2lab): an overlay IP outside the VPC
CIDR, reached by a client in another subnet only through its subnet's route table, whose
route must point at the active node's ENI.

The binary runs inside the node namespaces the way Pacemaker runs it (OCF_RESKEY_* parameters,
action in argv[1]), with the node's instance-role credentials from IMDS. Needs root and the
packages of scripts/install-deps.sh; nothing here skips.
"""

from __future__ import annotations

import subprocess
import time

import pytest

import cloudvip
import netns
from ec2lab import Ec2Lab

OVERLAY = "192.168.100.10"
DEST = OVERLAY + "/32"
PORT = 8080
TABLES = 10  # the client subnet's table + 9 more


LAB = (Ec2Lab, dict(nodes=2, name="rtaws"))  # the `lab` fixture
SERVE = PORT


def ready(lab):
    lab.tables = [lab.create_route_table([lab.client_subnet_id])]
    lab.tables += [lab.create_route_table() for _ in range(TABLES - 1)]


def before_each(lab):
    """No faults, no denials, source/dest check off, no overlay address, no routes."""
    lab.faults.clear()
    lab.iam.allow_all()
    for n in lab.nodes:
        lab.ec2.modify_network_interface_attribute(NetworkInterfaceId=n.eni_id,
                                                   SourceDestCheck={"Value": False})
        n.exec(["ip", "addr", "del", f"{OVERLAY}/32", "dev", "eth0"])
    for t in lab.tables + [lab.main_route_table]:
        lab.set_route(t, DEST, wait=False)
    lab.sync()


def defaults(lab) -> dict:
    return {"ip": OVERLAY, "nic": "eth0", "endpoint_url": lab.endpoint}


def agent_env(lab, node, extra_env=None, **params) -> dict:
    return cloudvip.agent_env(lab, node, defaults(lab), extra_env, "overlay1", **params)


def rt(lab, node, action, extra_env=None, timeout=40, **params) -> netns.Result:
    if isinstance(params.get("route_tables"), list):
        params["route_tables"] = ",".join(params["route_tables"])
    return cloudvip.call(lab, node, action, defaults(lab), extra_env, timeout, "route-table",
                         "overlay1", **params)


RECURRING = {"OCF_RESKEY_CRM_meta_interval": "10000"}
DEPTH10 = {"OCF_RESKEY_CRM_meta_interval": "60000", "OCF_CHECK_LEVEL": "10"}


def targets(lab, tables) -> list:
    return [(lab.route_target(t, DEST) or (None,))[0] for t in tables]


def has_overlay(node) -> bool:
    return f"inet {OVERLAY}/32" in node.exec(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout


def calls(lab, since) -> list[str]:
    return [c["action"] for c in lab.calls(since)]


def point_all(lab, tables, node):
    for t in tables:
        lab.set_route(t, DEST, node, wait=False)
    lab.sync()


# ---------------------------------------------------------------- the cycle


def test_one_table_start_monitor_stop_and_the_client_follows(lab):
    n1, n2 = lab.node(1), lab.node(2)
    table = lab.tables[0]
    point_all(lab, [table], n2)  # routed to node2, which does not serve it
    assert lab.who_answers(OVERLAY, PORT) is None, "node2 has no overlay address"
    assert rt(lab, 1, "monitor", route_tables=table).rc == 7, "probe, stopped"
    t = time.monotonic()
    r = rt(lab, 1, "start", route_tables=table)
    assert r.rc == 0, r
    c = calls(lab, t)
    assert c.count("DescribeRouteTables") == 2 and c.count("ReplaceRoute") == 1, c
    assert targets(lab, [table]) == [n1.eni_id]
    assert has_overlay(n1)
    lab.sync()
    assert lab.who_answers(OVERLAY, PORT) == "node1"

    t = time.monotonic()
    assert rt(lab, 1, "monitor", route_tables=table, extra_env=RECURRING).rc == 0
    assert calls(lab, t) == [], "depth 0, checked at start"
    assert rt(lab, 1, "monitor", route_tables=table).rc == 0
    assert rt(lab, 1, "monitor", route_tables=table, extra_env=DEPTH10).rc == 0
    assert calls(lab, t) == ["DescribeRouteTables"] * 2

    t = time.monotonic()
    assert rt(lab, 1, "stop", route_tables=table).rc == 0
    assert calls(lab, t) == [], "stop makes no API call"
    assert not has_overlay(n1)
    assert targets(lab, [table]) == [n1.eni_id], "stop leaves the route for the next node"
    assert rt(lab, 1, "stop", route_tables=table).rc == 0, "stop of a stopped resource"
    assert rt(lab, 1, "monitor", route_tables=table).rc == 7


def test_ten_tables_two_reads_and_a_planned_move(lab):
    n1, n2 = lab.node(1), lab.node(2)
    point_all(lab, lab.tables[:4], n2)
    point_all(lab, lab.tables[4:], n1)
    t = time.monotonic()
    r = rt(lab, 1, "start", route_tables=lab.tables)
    assert r.rc == 0, r
    c = calls(lab, t)
    assert c.count("DescribeRouteTables") == 2, c
    assert c.count("ReplaceRoute") == 4, "only the tables pointing elsewhere"
    assert targets(lab, lab.tables) == [n1.eni_id] * TABLES
    lab.sync()
    assert lab.who_answers(OVERLAY, PORT) == "node1"
    # Planned move: stop node1, start node2.
    assert rt(lab, 1, "stop", route_tables=lab.tables).rc == 0
    t = time.monotonic()
    r = rt(lab, 2, "start", route_tables=lab.tables)
    assert r.rc == 0, r
    assert calls(lab, t).count("ReplaceRoute") == TABLES
    assert targets(lab, lab.tables) == [n2.eni_id] * TABLES
    lab.sync()
    assert lab.who_answers(OVERLAY, PORT) == "node2"
    assert rt(lab, 2, "stop", route_tables=lab.tables).rc == 0


def test_auto_finds_every_table_of_the_vpc_holding_the_route(lab):
    n1, n2 = lab.node(1), lab.node(2)
    holding = lab.tables[:3]
    point_all(lab, holding, n2)
    r = rt(lab, 1, "start", route_tables="auto")
    assert r.rc == 0, r
    assert targets(lab, holding) == [n1.eni_id] * 3
    assert targets(lab, lab.tables[3:]) == [None] * (TABLES - 3), "tables without the route"
    lab.sync()
    assert lab.who_answers(OVERLAY, PORT) == "node1"
    assert rt(lab, 1, "stop").rc == 0
    # auto with no table holding the route: a configuration error (6), nothing changed.
    point_all(lab, [], n2)
    for t in holding:
        lab.set_route(t, DEST, wait=False)
    r = rt(lab, 1, "start")
    assert r.rc == 6, r
    assert any("no route table of" in x for x in r.reasons()), r.err
    assert not has_overlay(n1)


def test_drift_is_repaired_by_the_monitor_and_a_blackhole_is_reported(lab):
    n1, n2 = lab.node(1), lab.node(2)
    tables = lab.tables[:3]
    point_all(lab, tables, n2)
    assert rt(lab, 1, "start", route_tables=tables).rc == 0
    lab.sync()
    assert lab.who_answers(OVERLAY, PORT) == "node1"
    # Somebody points the client's table at node2: the client loses the address.
    lab.set_route(tables[0], DEST, n2)
    assert lab.who_answers(OVERLAY, PORT) is None
    t = time.monotonic()
    r = rt(lab, 1, "monitor", route_tables=tables, extra_env=DEPTH10)
    assert r.rc == 0, r
    assert "drifted" in r.err and tables[0] in r.err, r.err
    assert calls(lab, t) == ["DescribeRouteTables", "ReplaceRoute"]
    assert targets(lab, tables) == [n1.eni_id] * 3
    lab.sync()
    assert lab.who_answers(OVERLAY, PORT) == "node1", "repaired in place"
    # A route to a detached ENI is a blackhole: reported and repaired.
    spare = lab.ec2.create_network_interface(SubnetId=lab.subnet_id)["NetworkInterface"]
    lab.set_route(tables[1], DEST, eni=spare["NetworkInterfaceId"])
    assert lab.route_target(tables[1], DEST) == (spare["NetworkInterfaceId"], "blackhole")
    r = rt(lab, 1, "monitor", route_tables=tables)  # a probe
    assert r.rc == 0, r
    assert "blackhole" in r.err, r.err
    assert targets(lab, tables) == [n1.eni_id] * 3
    # Every table taken by node2: not running here (7), and nothing is taken back.
    point_all(lab, tables, n2)
    t = time.monotonic()
    r = rt(lab, 1, "monitor", route_tables=tables, extra_env=DEPTH10)
    assert r.rc == 7, r
    assert "ReplaceRoute" not in calls(lab, t)
    assert rt(lab, 1, "stop", route_tables=tables).rc == 0


def test_missing_route_with_and_without_create_missing(lab):
    n1, n2 = lab.node(1), lab.node(2)
    tables = lab.tables[:3]
    point_all(lab, tables[1:], n2)  # tables[0] (the client's) has no route
    t = time.monotonic()
    r = rt(lab, 1, "start", route_tables=tables)
    assert r.rc == 6, r
    reason = " ".join(r.reasons())
    assert tables[0] in reason and "create_missing" in reason, reason
    assert [c for c in calls(lab, t) if not c.startswith("Describe")] == [], "nothing changed"
    assert targets(lab, tables) == [None, n2.eni_id, n2.eni_id]
    assert not has_overlay(n1)
    t = time.monotonic()
    r = rt(lab, 1, "start", route_tables=tables, create_missing="true")
    assert r.rc == 0, r
    c = calls(lab, t)
    assert c.count("CreateRoute") == 1 and c.count("ReplaceRoute") == 2, c
    assert targets(lab, tables) == [n1.eni_id] * 3
    lab.sync()
    assert lab.who_answers(OVERLAY, PORT) == "node1"
    assert rt(lab, 1, "stop", route_tables=tables).rc == 0


def test_source_dest_check_on(lab):
    n1, n2 = lab.node(1), lab.node(2)
    table = lab.tables[0]
    # The lab drops what EC2 drops: routed to node1 with the check on, nothing arrives.
    point_all(lab, [table], n1)
    n1.iproute("addr", "add", f"{OVERLAY}/32", "dev", "eth0")
    lab.set_source_dest_check(1, True)
    assert lab.who_answers(OVERLAY, PORT) is None
    lab.set_source_dest_check(1, False)
    assert lab.who_answers(OVERLAY, PORT) == "node1"
    n1.iproute("addr", "del", f"{OVERLAY}/32", "dev", "eth0")

    point_all(lab, [table], n2)
    lab.set_source_dest_check(1, True)
    t = time.monotonic()
    r = rt(lab, 1, "start", route_tables=table)
    assert r.rc == 2, r
    assert any("source/destination check is on" in x and n1.eni_id in x
               for x in r.reasons()), r.err
    assert "ReplaceRoute" not in calls(lab, t)
    assert targets(lab, [table]) == [n2.eni_id] and not has_overlay(n1)
    r = rt(lab, 1, "start", route_tables=table, source_dest_check="disable")
    assert r.rc == 0, r
    assert lab.source_dest_check(1) is False
    lab.sync()
    assert lab.who_answers(OVERLAY, PORT) == "node1"
    assert rt(lab, 1, "stop", route_tables=table).rc == 0


# ---------------------------------------------------------------- bad input, permissions


def test_unknown_table_foreign_table_and_denied_replace(lab):
    n1, n2 = lab.node(1), lab.node(2)
    tables = lab.tables[:2]
    point_all(lab, tables, n2)
    r = rt(lab, 1, "start", route_tables=tables + ["rtb-0123456789abcdef0"])
    assert r.rc == 6, r
    assert any("rtb-0123456789abcdef0" in x for x in r.reasons()), r.err
    other_vpc = lab.ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    foreign = lab.create_route_table(vpc_id=other_vpc)
    r = rt(lab, 1, "start", route_tables=tables + [foreign])
    assert r.rc == 2, r
    assert any(foreign in x and other_vpc in x for x in r.reasons()), r.err
    assert targets(lab, tables) == [n2.eni_id] * 2 and not has_overlay(n1)
    # Route changes denied to this node (the IAM stand-in denies per action and key, not per
    # table): 4, the failed tables named.
    lab.iam.deny("ReplaceRoute", key=n1.key)
    r = rt(lab, 1, "start", route_tables=tables)
    assert r.rc == 4, r
    reason = " ".join(r.reasons())
    assert "UnauthorizedOperation" in reason and tables[0] in reason, reason
    assert not has_overlay(n1)
    assert rt(lab, 1, "stop", route_tables=tables).rc == 0


def test_preflight(lab):
    n1, n2 = lab.node(1), lab.node(2)
    tables = lab.tables[:3]
    point_all(lab, tables, n2)
    t = time.monotonic()
    r = rt(lab, 1, "validate-all", route_tables=tables, extra_env={"OCF_CHECK_LEVEL": "10"})
    assert r.rc == 0, r
    print(r.out)
    for needle in (n1.eni_id, lab.vpc_id, "outside the VPC's CIDR", tables[2],
                   f"-> {n2.eni_id}", "source/destination check on", ": off",
                   "permissions granted"):
        assert needle in r.out, (needle, r.out)
    dry = {c["action"] for c in lab.calls(t) if c["dry_run"]}
    assert {"ReplaceRoute", "DescribeRouteTables", "DescribeNetworkInterfaces"} <= dry, dry
    assert targets(lab, tables) == [n2.eni_id] * 3, "the pre-flight changed nothing"
    # An address inside the VPC CIDR: a clear warning naming the rule.
    r = rt(lab, 1, "validate-all", ip="10.0.1.200", route_tables=tables,
           create_missing="true", extra_env={"OCF_CHECK_LEVEL": "10"})
    assert "inside CIDR 10.0.0.0/16" in r.out + r.err and "local route" in r.err, r
    # Missing permissions are all named: 4.
    lab.iam.deny("ReplaceRoute", "DescribeNetworkInterfaces")
    r = rt(lab, 1, "validate-all", route_tables=tables, extra_env={"OCF_CHECK_LEVEL": "10"})
    assert r.rc == 4, r
    reason = " ".join(r.reasons())
    assert "ec2:ReplaceRoute on" in reason and "ec2:DescribeNetworkInterfaces" in reason, reason


# ---------------------------------------------------------------- faults and races


@pytest.mark.parametrize("kind", ["throttle", "http500"])
def test_persistent_fault_fails_start_with_1(lab, kind):
    n2 = lab.node(2)
    tables = lab.tables[:3]
    point_all(lab, tables, n2)
    lab.faults.set(kind, actions=["ReplaceRoute"])
    r = rt(lab, 1, "start", route_tables=tables)
    assert r.rc == 1, r
    assert r.elapsed < 20
    assert any(tables[0] in x for x in r.reasons()), r.err
    lab.faults.clear()
    assert not has_overlay(lab.node(1))


@pytest.mark.parametrize("kind", ["throttle", "http500"])
def test_one_fault_is_retried(lab, kind):
    n1, n2 = lab.node(1), lab.node(2)
    tables = lab.tables
    point_all(lab, tables, n2)
    lab.faults.set(kind, count=3)
    r = rt(lab, 1, "start", route_tables=tables)
    assert r.rc == 0, r
    assert targets(lab, tables) == [n1.eni_id] * TABLES
    assert rt(lab, 1, "stop", route_tables=tables).rc == 0


@pytest.mark.parametrize("kind", ["throttle", "http500", "slow"])
def test_cloud_trouble_in_monitor_keeps_a_healthy_resource_running(lab, kind):
    tables = lab.tables[:2]
    point_all(lab, tables, lab.node(2))
    assert rt(lab, 1, "start", route_tables=tables).rc == 0
    lab.faults.set(kind, delay=30 if kind == "slow" else None)
    env = {"OCF_RESKEY_CRM_meta_timeout": "5000"}
    r = rt(lab, 1, "monitor", route_tables=tables, extra_env=env)
    assert r.rc == 0, r
    assert "cloud check skipped" in r.err
    r = rt(lab, 1, "monitor", route_tables=tables, extra_env={**env, **DEPTH10})
    assert r.rc == 0, r
    lab.faults.clear()
    assert rt(lab, 1, "stop", route_tables=tables).rc == 0


def test_two_nodes_racing_to_start(lab):
    """Both start at once on one table: the last writer wins and the loser's probe says 7."""
    table = lab.tables[0]
    lab.set_route(table, DEST, eni=lab.ec2.create_network_interface(
        SubnetId=lab.subnet_id)["NetworkInterface"]["NetworkInterfaceId"])
    procs = [n.popen([netns.cloudha_bin(), "route-table", "start"],
                     env=agent_env(lab, n, route_tables=table),
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in lab.nodes]
    rcs = [p.wait(30) for p in procs]
    for p in procs:
        print(p.stderr.read())
    assert rcs.count(0) >= 1 and set(rcs) <= {0, 1}, rcs
    owner = targets(lab, [table])[0]
    winner = next(n for n in lab.nodes if n.eni_id == owner)
    loser = next(n for n in lab.nodes if n is not winner)
    assert rt(lab, winner, "monitor", route_tables=table).rc == 0
    assert rt(lab, loser, "monitor", route_tables=table).rc == 7
    lab.sync()
    assert lab.who_answers(OVERLAY, PORT) == winner.name
    for n in lab.nodes:
        assert rt(lab, n, "stop", route_tables=table).rc == 0


def test_the_two_reads_of_a_start_go_out_together(lab):
    """The route-table read and the ENI read (source/destination check) are independent: with
    a service time on every call (as on the real API), they overlap instead of queueing."""
    table = lab.tables[0]
    lab.set_route(table, DEST, lab.node(2))
    lab.set_service_time(0.3, 0.1)
    try:
        t = time.monotonic()
        assert rt(lab, 1, "start", route_tables=table).rc == 0
        reads = [c for c in lab.calls(t)
                 if c["action"] in ("DescribeRouteTables", "DescribeNetworkInterfaces")]
    finally:
        lab.set_service_time(0, 0)
    first_tables = next(c for c in reads if c["action"] == "DescribeRouteTables")
    eni = next(c for c in reads if c["action"] == "DescribeNetworkInterfaces")
    a, b = sorted([first_tables, eni], key=lambda c: c["t"])
    print(f"{a['action']} at +0, {b['action']} at +{b['t'] - a['t']:.3f}s "
          f"(each takes {a['duration']:.3f}s)")
    assert b["t"] < a["t"] + a["duration"], "the second read waited for the first"
    assert rt(lab, 1, "stop", route_tables=table).rc == 0
