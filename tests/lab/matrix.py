"""Shared pieces of the reliability matrix (tests/lab/test_matrix_*.py): calling an agent in a
lab node with a deadline, the cloud adapter over the EC2 and OCI labs, and the recorder whose
rows `make reliability` turns into docs/reliability.md.

A row is one cell: (matrix, agent, case, action) with runs, failures, the worst time against
the deadline and, when it failed, what was seen. Rows are appended as JSON lines to
$CLOUDHA_MATRIX_REPORT when it is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

import cloudvip
import netns

IMDS_IP = "169.254.169.254"

DEADLINE_MS = 6000  # the matrix's action timeout: long enough for retries, short to run
RECURRING = {"OCF_RESKEY_CRM_meta_interval": "10000"}
DEPTH10 = {"OCF_CHECK_LEVEL": "10"}


class Call:
    def __init__(self, rc: int, out: str, err: str, elapsed: float, deadline: float):
        self.rc, self.out, self.err, self.elapsed, self.deadline = rc, out, err, elapsed, deadline

    @property
    def ratio(self) -> float:
        return self.elapsed / self.deadline

    def reasons(self) -> list[str]:
        return [l for l in self.err.splitlines() if l.startswith("ocf-exit-reason:")]

    def __repr__(self) -> str:
        return f"rc={self.rc} in {self.elapsed:.2f}s: {self.reasons()[:1]}"


class LabAgent:
    """How the matrix calls one agent in a lab node: `cloudha <name> <action>` with the
    subclass's params(lab), the matrix's deadline and the agent's name as the instance."""

    name: str

    def params(self, lab) -> dict:
        raise NotImplementedError

    def argv(self) -> list[str]:
        return [netns.cloudha_bin(), self.name]

    def env(self, lab, node, extra=None) -> dict:
        return cloudvip.agent_env(lab, node, self.params(lab),
                                  {"OCF_RESKEY_CRM_meta_timeout": str(DEADLINE_MS),
                                   "OCF_RESOURCE_INSTANCE": self.name, **(extra or {})})

    def call(self, lab, node, action, extra=None) -> Call:
        return run(node, self.argv() + [action], self.env(lab, node, extra), DEADLINE_MS / 1000)


def run(node, argv: list[str], env: dict, deadline_s: float) -> Call:
    t0 = time.monotonic()
    p = node.popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=deadline_s + 10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return Call(p.returncode, out, err, time.monotonic() - t0, deadline_s)


def op_names(lab, since: float) -> list[str]:
    """The API operations the lab received since `since` (EC2 actions or OCI operations)."""
    return [op_of(c) for c in lab.calls(since)]


class Recorder:
    """Collects cells; a test records its cell and then asserts it."""

    def __init__(self, matrix: str):
        self.matrix = matrix

    def cell(self, agent: str, case: str, action: str, calls: list[Call], problems: list[str],
             deadline: float | None = None):
        worst = max((c.ratio for c in calls), default=0.0)
        row = {"matrix": self.matrix, "agent": agent, "case": case, "action": action,
               "runs": len(calls), "failures": len(problems), "worst": round(worst, 3),
               "deadline_s": deadline or (calls[0].deadline if calls else None),
               "problems": problems[:3]}
        path = os.environ.get("CLOUDHA_MATRIX_REPORT")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")
        return row


def check(call: Call, allowed: set[int], problems: list[str], what: str):
    """The checks every call gets: exit code, one reason line at most, within the deadline."""
    if call.rc not in allowed:
        problems.append(f"{what}: exit {call.rc}, want {sorted(allowed)}; {call.reasons()[:1]}")
    if len(call.reasons()) > 1:
        problems.append(f"{what}: {len(call.reasons())} reason lines")
    if call.elapsed > call.deadline + 1.0:
        problems.append(f"{what}: took {call.elapsed:.1f}s, deadline {call.deadline:.1f}s")
    if "panicked" in call.err:
        problems.append(f"{what}: panicked")


# ---------------------------------------------------------------- the faults both labs share

# fault: how to arm it on the lab (node: the node whose action is judged).
API_FAULTS = {
    "none": lambda lab, node: None,
    "throttle burst (2)": lambda lab, node: lab.faults.set("throttle", count=2),
    "throttle": lambda lab, node: lab.faults.set("throttle"),
    "5xx": lambda lab, node: lab.faults.set("http500"),
    "reset": lambda lab, node: lab.faults.set("reset"),
    "slower than the deadline": lambda lab, node: lab.faults.set("slow", delay=30),
    "metadata down": lambda lab, node: node.exec(["ip", "addr", "del", f"{IMDS_IP}/32",
                                                  "dev", "lo"]),
    "permission denied": lambda lab, node: lab.iam.deny("*"),
}
HEALTHY = {"start": {0}, "stop": {0}, "probe": {0}, "probe elsewhere": {7}, "monitor": {0},
           "validate-all 10": {0}}
# The API is unusable: start fails (1, never 6 or 7), stop still succeeds (a failed stop
# fences the node), a probe of the holder cannot judge (1) or keeps it (0), a probe of a node
# without the address needs no API (7), the recurring monitor of a healthy address stays 0.
OUTAGE = {"start": {1}, "stop": {0}, "probe": {0, 1}, "probe elsewhere": {7}, "monitor": {0},
          "validate-all 10": {1}}
# Denied (or every request refused): start 4 (banned here, as it must be), stop 0, the
# recurring monitor degraded (190) with the reason, never 4 for a healthy address; a probe of
# the holder says running-degraded, cannot judge, or not allowed here.
DENIED = {"start": {4}, "stop": {0}, "probe": {0, 1, 4, 190}, "probe elsewhere": {7},
          "monitor": {190}, "validate-all 10": {4}}
API_EXPECT = {
    "none": HEALTHY,
    "throttle burst (2)": HEALTHY,
    "throttle": OUTAGE,
    "5xx": OUTAGE,
    "reset": OUTAGE,
    "slower than the deadline": OUTAGE,
    # No metadata: no credentials, no ENI/VNIC. Monitor: the address is healthy, the next
    # failover is not (degraded). validate-all names the cause (1 transient, 5 not here).
    "metadata down": {"start": {1, 5}, "stop": {0}, "probe": {0, 1, 190},
                      "probe elsewhere": {7}, "monitor": {0, 190}, "validate-all 10": {1, 5}},
    "permission denied": DENIED,
}
ACTIONS = list(HEALTHY)


def restore_metadata(lab):
    for n in lab.nodes:
        n.exec(["ip", "addr", "add", f"{IMDS_IP}/32", "dev", "lo"])


HOLD = 2.0  # how long the lab holds the call the agent is killed in


def _fault_args(lab, op: str) -> dict:
    return {"operations": [op]} if hasattr(lab, "federation_endpoint") else {"actions": [op]}


def kill_inside(node, argv, env, lab, op: str, before: int) -> bool:
    """Start the agent with the lab holding its first call of `op` (a slow fault: the stand-in
    sleeps, then handles the request anyway, as a cloud does with a request whose client died),
    and SIGKILL the agent while it waits there. `before` is how many API calls precede that one
    in a normal run. Returns whether the held call was seen (the agent reached that point)."""
    lab.faults.set("slow", count=1, delay=HOLD, **_fault_args(lab, op))
    t0 = time.monotonic()
    p = node.popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = t0 + 15
    while time.monotonic() < end and p.poll() is None and len(lab.calls(t0)) < before:
        time.sleep(0.01)
    # The calls are sequential: once the earlier ones are answered, the held one is in flight.
    time.sleep(0.3)
    killed = p.poll() is None
    if killed:
        p.kill()
    p.communicate()
    # The held request is logged once the stand-in has handled it.
    reached = False
    while time.monotonic() < t0 + HOLD + 8:
        if any(op_of(c) == op and c.get("fault") == "slow" for c in lab.calls(t0)):
            reached = True
            break
        time.sleep(0.05)
    lab.faults.clear()
    return reached and killed


def op_of(c: dict) -> str:
    return c.get("action") or c.get("operation")


# ---------------------------------------------------------------- the generic cells

def fault_cell(lab, agent, fault, action, faults, expect, rec):
    agent.reset(lab)
    n1, n2 = lab.node(1), lab.node(2)
    problems: list[str] = []
    if action != "start":
        pre = agent.call(lab, n1, "start")
        assert pre.rc == 0, f"set-up start failed: {pre}"
    faults[fault](lab, n1)
    node = n2 if action == "probe elsewhere" else n1
    word, extra = {"start": ("start", {}), "stop": ("stop", {}), "probe": ("monitor", {}),
                   "probe elsewhere": ("monitor", {}), "monitor": ("monitor", RECURRING),
                   "validate-all 10": ("validate-all", DEPTH10)}[action]
    c = agent.call(lab, node, word, extra)
    check(c, expect[fault][action], problems, f"{agent.name} {action} under {fault}")
    if fault.startswith("stale"):
        time.sleep(1.6)  # let the delayed writes land before judging
    agent.clear_faults(lab)
    lab.sync()
    # Final ownership: what Pacemaker would see next.
    if action == "start":
        if c.rc == 0:
            problems += agent.one_owner(lab, n1)
        else:
            # A failed start is followed by a stop on that node: it must succeed and leave
            # the address configured nowhere.
            s = agent.call(lab, n1, "stop")
            check(s, {0}, problems, "the stop after a failed start")
            if agent.configured_on(lab):
                problems.append(f"configured on {[n.name for n in agent.configured_on(lab)]}"
                                " after start failed and stop ran")
    elif action == "stop":
        if agent.configured_on(lab):
            problems.append("still configured after stop")
    else:
        problems += agent.one_owner(lab, n1)
    rec.cell(agent.name, fault, action, [c], problems)
    assert not problems, problems


# ---------------------------------------------------------------- crash consistency


def kill_points(lab, agent, action) -> list[tuple[str, int]]:
    """(operation, calls before it) for the first occurrence of each operation of a normal
    run of `action` (start on node 2 taking over from node 1; stop on node 1). The lab's hold
    takes the first call of the operation, whatever its answer (an expired token's 401 too)."""
    n1, n2 = lab.node(1), lab.node(2)
    # Twice: the second run starts from the state every kill run starts from (the node's
    # earlier session or token as reset leaves it), so the calls are the same.
    for _ in range(2):
        agent.reset(lab)
        assert agent.call(lab, n1, "start").rc == 0
        t0 = time.monotonic()
        c = agent.call(lab, n2 if action == "start" else n1, action)
        assert c.rc == 0, c
    points, seen = [], set()
    for i, call in enumerate(lab.calls(t0)):
        op = op_of(call)
        if op not in seen:
            seen.add(op)
            points.append((op, i))
    return points


def killed_at_every_call(lab, agent, action, rec):
    """SIGKILL the action inside each of its API calls (the request still lands, as with a
    client that died), then run what Pacemaker runs next and check the final state."""
    points = kill_points(lab, agent, action)
    n1, n2 = lab.node(1), lab.node(2)
    if not points:
        # Nothing to kill it between: the action is one host step (route-table's stop only
        # removes the local address). Recorded as such, checked by kill_points' normal run.
        rec.cell(agent.name, "no API call to kill it in", action, [], [], DEADLINE_MS / 1000)
        return
    for op, before in points:
        problems: list[str] = []
        agent.reset(lab)
        assert agent.call(lab, n1, "start").rc == 0
        if action == "start":
            # Failover start on node 2 killed; Pacemaker stops it there (must succeed), then
            # retries the start; node 1's next monitor finds it lost the address and is stopped.
            target = n2
            reached = kill_inside(target, agent.argv() + ["start"],
                                         agent.env(lab, target), lab, op, before)
            lab.sync()
            steps = [(n2, "stop", {0}), (n2, "start", {0}), (n1, "monitor", {7}),
                     (n1, "stop", {0}), (n2, "monitor", {0})]
        else:
            # Stop on node 1 killed: Pacemaker would fence it or retry the stop; the retry
            # must succeed, then node 2 starts.
            target = n2
            reached = kill_inside(n1, agent.argv() + ["stop"], agent.env(lab, n1),
                                         lab, op, before)
            lab.sync()
            steps = [(n1, "stop", {0}), (n2, "start", {0}), (n1, "monitor", {7}),
                     (n2, "monitor", {0})]
        if not reached:
            problems.append(f"never reached {op}")
        calls = []
        for node, word, allowed in steps:
            c = agent.call(lab, node, word)
            calls.append(c)
            check(c, allowed, problems, f"after kill in {op}: {node.name} {word}")
        lab.sync()
        problems += agent.one_owner(lab, target)
        rec.cell(agent.name, f"killed in {op} (#{before + 1})", action, calls, problems)
        assert not problems, problems


# ---------------------------------------------------------------- races


def many_vips_move_at_once(lab, agent, rec, ips):
    """A RAC node failure: node VIP + three SCAN VIPs + two more on one ENI, six vip resources
    started in parallel on the survivor (batch-limit lets Pacemaker do so) while node 1 still
    holds them all."""
    agent.reset(lab)
    n1, n2 = lab.node(1), lab.node(2)

    def env(node, ip):
        e = agent.env(lab, node, {"OCF_RESOURCE_INSTANCE": f"vip-{ip}"})
        e["OCF_RESKEY_ip"] = ip
        return e

    for ip in ips:
        c = run(n1, agent.argv() + ["start"], env(n1, ip), DEADLINE_MS / 1000)
        assert c.rc == 0, c
    t0 = time.monotonic()
    procs = [n2.popen(agent.argv() + ["start"], env=env(n2, ip), stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True) for ip in ips]
    rcs = [p.wait(DEADLINE_MS / 1000 + 10) for p in procs]
    took = time.monotonic() - t0
    for p in procs:
        p.communicate()
    ops = op_names(lab, t0)
    lab.sync()
    problems = []
    if rcs != [0] * len(ips):
        problems.append(f"start codes {rcs}")
    for ip in ips:
        owners = lab.owners(ip)
        if owners != [agent.id_of(n2)]:
            problems.append(f"{ip} held by {owners}")
        c = run(n1, agent.argv() + ["monitor"], env(n1, ip), DEADLINE_MS / 1000)
        if c.rc != 7:
            problems.append(f"node1 probe of {ip}: {c.rc}")
    row = rec.cell(agent.name, f"6 VIPs in parallel ({len(ops)} API calls, {took:.2f} s)",
                   "start", [], problems, DEADLINE_MS / 1000)
    print(f"\n6 VIPs moved in {took:.3f}s with {len(ops)} API calls: {ops}")
    for ip in ips:
        for n in (n1, n2):
            run(n, agent.argv() + ["stop"], env(n, ip), DEADLINE_MS / 1000)
    assert not problems, (problems, row)


def two_nodes_start_at_the_same_moment(lab, agent, rec):
    """Both start at once; after each node's monitor and Pacemaker's recovery (the node whose
    monitor does not say 0 is stopped) exactly one owner remains."""
    problems = []
    for run in range(3):
        agent.reset(lab)
        procs = [n.popen(agent.argv() + ["start"], env=agent.env(lab, n),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n in lab.nodes]
        rcs = [p.wait(DEADLINE_MS / 1000 + 10) for p in procs]
        for p in procs:
            p.communicate()
        lab.sync()
        mons = {n.name: agent.call(lab, n, "monitor", RECURRING).rc for n in lab.nodes}
        keep = [n for n in lab.nodes if mons[n.name] == 0]
        if not keep and 0 not in rcs:
            # Both starts failed (each saw the other's writes): Pacemaker stops both and
            # starts it once more, on one node.
            for n in lab.nodes:
                check(agent.call(lab, n, "stop"), {0}, problems, f"run {run}: stop {n.name}")
            check(agent.call(lab, lab.node(1), "start"), {0}, problems, f"run {run}: restart")
            keep = [lab.node(1)]
        if len(keep) != 1:
            problems.append(f"run {run}: starts {rcs}, monitors {mons}")
            continue
        for n in lab.nodes:
            if n is not keep[0]:
                check(agent.call(lab, n, "stop"), {0}, problems, f"run {run}: stop {n.name}")
        lab.sync()
        problems += [f"run {run}: {p}" for p in agent.one_owner(lab, keep[0])]
    rec.cell(agent.name, "two nodes start at once (3 runs)", "start", [], problems,
             DEADLINE_MS / 1000)
    assert not problems, problems


def tests(agents: list, cloud_faults: dict, rec: "Recorder") -> dict:
    """The matrix's pytest functions for one lab module (which adds them to its globals and
    defines the `lab` fixture): every cell, with the module's agents and recorder, the API
    faults and the cloud's own, {name: (inject(lab, node), what the cluster must see)}."""
    faults = {**API_FAULTS, **{k: inject for k, (inject, _) in cloud_faults.items()}}
    expect = {**API_EXPECT, **{k: seen for k, (_, seen) in cloud_faults.items()}}
    each_agent = pytest.mark.parametrize("agent", agents, ids=lambda a: a.name)

    @pytest.mark.parametrize("action", ACTIONS)
    @pytest.mark.parametrize("fault", list(faults))
    @each_agent
    def test_fault_cell(lab, agent, fault, action):
        fault_cell(lab, agent, fault, action, faults, expect, rec)

    @pytest.mark.parametrize("action", ["start", "stop"])
    @each_agent
    def test_killed_at_every_call(lab, agent, action):
        """SIGKILL the action inside each of its API calls (the request still lands, as with a
        client that died), then run what Pacemaker runs next and check the final state."""
        killed_at_every_call(lab, agent, action, rec)

    def test_many_vips_move_at_once(lab):
        """A RAC node failure: node VIP + three SCAN VIPs + two more on one ENI, six vip
        resources started in parallel on the survivor while node 1 still holds them all."""
        many_vips_move_at_once(lab, agents[0], rec, [f"10.0.1.{110 + i}" for i in range(6)])

    @each_agent
    def test_two_nodes_start_at_the_same_moment(lab, agent):
        two_nodes_start_at_the_same_moment(lab, agent, rec)

    return {f.__name__: f for f in (test_fault_cell, test_killed_at_every_call,
                                    test_many_vips_move_at_once,
                                    test_two_nodes_start_at_the_same_moment)}
