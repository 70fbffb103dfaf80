"""The VIP failover scenario shared by test_pacemaker_failover.py and demo.py.

Two nodes, vip1 (ocf:cloudha:vip) preferring node1, a hostname server on every node and a
client polling the VIP every 50 ms; node1 is crashed and the client's view is measured.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field

import pcmk

VIP = "10.77.0.100"
PORT = 8080
RSC = "vip1"
AGENT = "ocf:cloudha:vip"
PARAMS = {"ip": VIP, "cidr_netmask": "24", "cloud": "none"}
MONITOR = "2s"


def create_vip(lab: pcmk.Lab, node: str = "node1", params: dict | None = None,
               agent: str = AGENT) -> str:
    """Create vip1 stopped, prefer `node`, then start it (so it never starts elsewhere first).

    Uses pcs (which works without pcsd for these commands) and falls back to cibadmin.
    Returns the tool that did it.
    """
    params = params or PARAMS
    n = lab.node(node)
    pcs = n.run(
        ["pcs", "resource", "create", RSC, agent]
        + [f"{k}={v}" for k, v in params.items()]
        + ["op", "monitor", f"interval={MONITOR}", "--disabled"],
        check=False,
    )
    if pcs.returncode == 0:
        n.run(["pcs", "constraint", "location", RSC, "prefers", f"{node}=100"])
        n.run(["pcs", "resource", "enable", RSC])
        return "pcs"
    print(f"pcs failed ({pcs.returncode}: {pcs.stderr.strip()}); using cibadmin")
    attrs = "".join(
        f'<nvpair id="{RSC}-ia-{k}" name="{k}" value="{v}"/>' for k, v in params.items()
    )
    n.run(["cibadmin", "--create", "-o", "resources", "--xml-text",
           f'<primitive id="{RSC}" class="ocf" provider="cloudha" type="{agent.split(":")[-1]}">'
           f'<instance_attributes id="{RSC}-ia">{attrs}</instance_attributes>'
           f'<meta_attributes id="{RSC}-meta">'
           f'<nvpair id="{RSC}-target-role" name="target-role" value="Stopped"/>'
           f"</meta_attributes><operations>"
           f'<op id="{RSC}-monitor" name="monitor" interval="{MONITOR}"/>'
           f"</operations></primitive>"])
    n.run(["cibadmin", "--create", "-o", "constraints", "--xml-text",
           f'<rsc_location id="loc-{RSC}" rsc="{RSC}" node="{node}" score="100"/>'])
    n.run(["crm_resource", "--resource", RSC, "--meta", "--set-parameter", "target-role",
           "--parameter-value", "Started"])
    return "cibadmin"


@dataclass
class Outcome:
    """What the client saw around the crash (times are time.monotonic())."""

    crash_at: float
    polls: list[tuple[float, str | None]]
    started_seen_at: float | None  # when crm_mon on node2 first showed vip1 Started node2
    tool: str = ""
    events: list[tuple[float, str]] = field(default_factory=list)
    fail: str = "crash"
    # The poller's own lines: a failed attempt says how it failed (TimeoutError: dropped on
    # the way; ConnectionRefusedError: a host holds the address but serves nothing).
    raw: list[tuple[float, str]] = field(default_factory=list)

    def last_from(self, node: str, before: float | None = None) -> float | None:
        ts = [t for t, a in self.polls if a == node and (before is None or t <= before)]
        return ts[-1] if ts else None

    def first_from(self, node: str, after: float) -> float | None:
        ts = [t for t, a in self.polls if a == node and t >= after]
        return ts[0] if ts else None

    @property
    def outage(self) -> float | None:
        """Last answer from node1 before the crash → first answer from node2 after it."""
        last = self.last_from("node1", self.crash_at)
        first = self.first_from("node2", self.crash_at)
        return None if last is None or first is None else first - last

    def segments(self) -> list[tuple[float, float, str, int]]:
        """Runs of identical outcomes: (first time, last time, answer or 'no answer (why)',
        count)."""
        out: list[list] = []
        for t, a in self.raw or self.polls:
            label = f"no answer ({a[1:]})" if a and a.startswith("!") else a or "no answer"
            if out and out[-1][2] == label:
                out[-1][1], out[-1][3] = t, out[-1][3] + 1
            else:
                out.append([t, t, label, 1])
        return [tuple(s) for s in out]

    # What an admin asks of a fenced failover, in order: (label, words of the event).
    MILESTONES = (("node lost", "state is now lost"), ("fencing requested", "Requesting fencing"),
                  ("power call", "cloud: StopInstances"), ("power call", "cloud: InstanceAction"),
                  ("instance stopped", "is stopped"), ("instance stopped", "is STOPPED"),
                  ("fence confirmed", "was terminated"),
                  ("VIP start done", "Result of start operation"))

    def milestones(self) -> list[tuple[str, float]]:
        """(label, seconds after the failure) of each milestone that happened, the first
        answer from node2 last ("client answered")."""
        out = {}
        for label, words in self.MILESTONES:
            ts = [t for t, what in self.events if words in what and t >= self.crash_at]
            if ts and label not in out:
                out[label] = min(ts) - self.crash_at
        first = self.first_from("node2", self.crash_at)
        if first is not None:
            out["client answered"] = first - self.crash_at
        return sorted(out.items(), key=lambda kv: kv[1])

    def timeline(self, window: float = 2.0) -> str:
        """Human-readable timeline relative to the crash, from `window` s before it."""
        rows = [(t, f"client: {label} x{n}" + (f" (until {e - self.crash_at:+.3f}s)"
                                             if n > 1 else ""))
                for t, e, label, n in self.segments() if e >= self.crash_at - window]
        rows.append((self.crash_at, "node1 crashed (SIGKILL of its PID 1)" if self.fail == "crash"
                     else "node1 frozen (SIGSTOP: corosync silent, instance running)"))
        if self.started_seen_at:
            rows.append((self.started_seen_at, "crm_mon on node2: vip1 Started node2"))
        rows += self.events
        rows.sort()
        return "\n".join(f"  {t - self.crash_at:+8.3f}s  {what}" for t, what in rows)


def run(lab: pcmk.Lab, log=print, settle: float = 1.0, bound: float = 30.0,
        vip: str = VIP, params: dict | None = None, agent: str = AGENT,
        fail: str = "crash") -> Outcome:
    """Create vip1 (`agent`) on node1, fail node1 (`crash`: SIGKILL of its PID 1; `freeze`:
    SIGSTOP of its processes, so only fencing can take it down), watch vip1 come back on node2
    (at most `bound` s)."""
    tool = create_vip(lab, "node1", params, agent)
    lab.wait_running(RSC, "node1", timeout=30)
    log(f"vip1 created with {tool} and Started on node1")
    for n in lab.nodes:
        n.serve_hostname(PORT)
    poller = lab.client.poll_tcp(vip, PORT, every=0.05, timeout=0.2)
    # The client must have been served by node1 before the crash, or the outage means nothing.
    lab.wait_for(lambda: "node1" in [a for _, a in poller.results()], 10, "node1 answering")
    time.sleep(settle)
    log(lab.crm_mon(on="node1"))

    crash_at = lab.freeze("node1") if fail == "freeze" else lab.crash("node1")
    log(f"node1: {fail}")
    started_seen_at = None
    end = crash_at + bound
    while time.monotonic() < end:
        if started_seen_at is None and lab.where(RSC, on="node2") == ["node2"]:
            started_seen_at = time.monotonic()
        if started_seen_at and any(a == "node2" and t > crash_at for t, a in poller.results()):
            break
        time.sleep(0.05)
    time.sleep(settle)  # a little "after" for the timeline
    poller.stop()
    return Outcome(crash_at, poller.results(), started_seen_at, tool,
                   pacemaker_events(lab, "node2", crash_at), fail, poller.lines())


# "Nov 22 04:53:54.123 node2 pacemaker-controld  [123] (log_executor_event)  notice: Result of
# start operation for vip1 on node2: ok"; millisecond timestamps, wall clock.
_LOG_LINE = re.compile(r"^(\w{3} +\d+ [\d:.]+) \S+ +(\S+) +\[\d+\] \([^)]*\)\s+\w+: (.*)$")
_WANTED = ("Node node1 state is now lost", "Requesting fencing", "was terminated",
           "Initiating start operation vip1",
           "Result of start operation for vip1", "Result of monitor operation for vip1")


def pacemaker_events(lab: pcmk.Lab, node: str, crash_at: float) -> list[tuple[float, str]]:
    """Interesting lines of node's pacemaker.log after the crash, on the monotonic clock."""
    path = lab.dir / node / "log" / "pacemaker.log"
    if not path.exists():
        return []
    # Log times are wall-clock; translate them through one (wall, monotonic) pair taken now.
    offset = time.time() - time.monotonic()
    year = time.localtime().tm_year
    events = []
    for line in path.read_text(errors="replace").splitlines():
        m = _LOG_LINE.match(line)
        # The controller is the one that acts; the other daemons repeat "state is now lost".
        if not m or m.group(2) != "pacemaker-controld" or not any(w in m.group(3) for w in _WANTED):
            continue
        stamp, _, frac = m.group(1).partition(".")
        try:
            wall = time.mktime(time.strptime(f"{year} {stamp}", "%Y %b %d %H:%M:%S"))
        except ValueError:
            continue
        t = wall + float("0." + (frac or "0")) - offset
        if t >= crash_at - 0.5:
            events.append((t, f"{node} controld: {m.group(3).split(' | ')[0]}"))
    return events


def vip1_failures(status: dict) -> list[dict]:
    return [f for f in status["failures"] if f.get("op_key", "").startswith(RSC + "_")]


@contextlib.contextmanager
def cloud_cluster(request, lab_class, name: str, agents=("vip",), **kw):
    """A cloud lab (ec2lab.Ec2Lab, ocilab.OciLab) with a Pacemaker cluster on it (two nodes
    unless `nodes`), for
    one pytest test (`request`); when the test failed, the nodes' logs are printed."""
    t0 = time.monotonic()
    failed_before = request.session.testsfailed
    kw.setdefault("nodes", 2)
    with lab_class(name=name, pacemaker=True, agents=agents, **kw) as lab:
        print(f"\n{lab_class.__name__} and cluster up in {lab.up_seconds:.1f}s")
        yield lab
        if request.session.testsfailed > failed_before:
            for n in lab.cluster.nodes:
                if n.alive():
                    print(lab.cluster.log_tail(n, lines=30))
    print(f"lab total (up, test, teardown) {time.monotonic() - t0:.1f}s")


def check_moved_to_node2(lab: pcmk.Lab, out: Outcome, bound: float, agent: str, ip: str,
                         prefix: int) -> None:
    """What every crash test asserts: node1 served the client before the crash, node2 after
    it within `bound` and node1 never again, vip1 is Started on node2 without failures, and
    the address is on node2's eth0. Prints the timeline and the outage."""
    print("timeline (seconds relative to the crash):")
    print(out.timeline())
    assert out.last_from("node1", out.crash_at) is not None, "node1 never answered"
    first2 = out.first_from("node2", out.crash_at)
    assert first2 is not None, f"node2 never answered on {ip} within {bound}s"
    assert out.started_seen_at is not None, "crm_mon never showed vip1 Started on node2"
    assert "node1" not in [a for t, a in out.polls if t > first2]
    print(f"client outage (last node1 answer -> first node2 answer): {out.outage:.3f}s")
    print(f"crash -> first node2 answer: {first2 - out.crash_at:.3f}s")
    status = lab.status(on="node2")
    assert status["resources"][RSC]["roles"] == {"node2": "Started"}
    assert vip1_failures(status) == [], status["failures"]
    mon = lab.crm_mon(on="node2", args=("-1",))
    assert re.search(rf"{RSC}\s+\({re.escape(agent)}\):\s+Started node2", mon), mon
    addrs = lab.node("node2").run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
    assert f"inet {ip}/{prefix}" in addrs, addrs


def fence_devices(lab: pcmk.Lab, params: dict, delay: dict | None = None,
                  reboot: bool = False, agent: str = "fence_cloudha",
                  per_node: dict | None = None) -> None:
    """One fence_cloudha device per node (`params` its cloud settings), each kept off the node
    it fences; `delay` {node: seconds} delays the fencing of that node (the two-node race
    guard). nodename maps to the instance by its Name tag: no pcmk_host_map. Pacemaker's
    fencing action is reboot; unless `reboot`, the devices turn it into off (the instance
    stays stopped, as many cloud sites set it). With `reboot` the instance is started again
    and the lab boots its node, which rejoins. `agent` and `per_node` {node: {param: value}}
    let a peer (fence_aws, which needs pcmk_host_map) run in the same setup."""
    delay, per_node = delay or {}, per_node or {}
    names = [n.name for n in lab.nodes]
    for target in names:
        runs_on = next(n for n in names if n != target)
        extra = [f"delay={delay[target]}"] if target in delay else []
        extra += [] if reboot else ["pcmk_reboot_action=off"]
        extra += [f"{k}={v}" for k, v in per_node.get(target, {}).items()]
        lab.node(runs_on).run(["pcs", "stonith", "create", f"fence-{target}", agent]
                              + [f"{k}={v}" for k, v in params.items()] + extra
                              + [f"pcmk_host_list={target}", "op", "monitor",
                                 "interval=60s"])
        lab.node(runs_on).run(["pcs", "constraint", "location", f"fence-{target}", "avoids",
                               f"{target}=INFINITY"])
    for target in names:
        lab.wait_running(f"fence-{target}", next(n for n in names if n != target), timeout=30)


POWER_CALLS = ("StopInstances", "StartInstances", "InstanceAction")
MOVE_CALLS = ("AssignPrivateIpAddresses", "UpdatePrivateIp", "CreatePrivateIp")


def caller(lab, call: dict) -> str:
    """The node whose credentials made a cloud call (EC2: access key; OCI: principal)."""
    for n in lab.nodes:
        if call.get("key") == n.key or call.get("principal") in getattr(n, "principals", ()):
            return n.name
    return "?"


def cloud_events(lab, since: float) -> list[tuple[float, str]]:
    """For a timeline: the successful power and address calls, every power state an instance
    entered (stopping, stopped, pending, running) and the lab's boots, since `since`."""
    names = {n.instance_id: n.name for n in lab.nodes}
    events = []
    for c in lab.calls(since):
        op = c.get("action") or c.get("operation")
        if op in POWER_CALLS + MOVE_CALLS and c["status"] == 200:
            what = " ".join([op] + [v for k, v in (c.get("query") or {}).items()
                                    if k == "action"])
            events.append((c["t"], f"cloud: {what} by {caller(lab, c)}"))
    for e in lab.power_events(since):
        events.append((e["t"], f"cloud: instance of {names.get(e['instance'], e['instance'])} "
                               f"is {e['state']}"))
    for t, name, err in lab.boots:
        if t >= since:
            events.append((t, f"lab: {name} booted again" + (f" FAILED: {err}" if err else "")))
    return events


def stonith_failover(lab, vip: str, params: dict, fence_params: dict, power_delay: float = 0,
                     reboot: bool = False, bound: float = 60.0, log=print,
                     fail: str = "freeze", **devices) -> Outcome:
    """The production setup on a cloud lab with STONITH on (stonith=True): a fence_cloudha
    device per node, resource-stickiness so a rebooted node does not take the VIP back, power
    calls taking `power_delay` s as on a real cloud; node 1 fails (`freeze`: only fencing
    takes it down; `crash`) and the VIP must come back on node 2. The outcome's events hold
    the cloud's side."""
    c = lab.cluster
    c.node("node2").run(["crm_attribute", "--type", "rsc_defaults", "--name",
                         "resource-stickiness", "--update", "1000"])
    fence_devices(c, fence_params, reboot=reboot, **devices)
    lab.set_power_delay(power_delay)
    out = run(c, log=log, bound=bound, vip=vip, params=params, fail=fail)
    out.events += cloud_events(lab, out.crash_at)
    return out


def check_fenced_first(lab, out: Outcome, target: str = "node1", by: str = "node2") -> None:
    """Node 1 was fenced through the cloud API by node 2, exactly once, its machine is gone
    (the frozen daemons died with the instance) and the address moved only after the
    instance was stopped."""
    calls = [x for x in lab.calls(out.crash_at) if x["status"] == 200]
    stops = [x for x in calls if (x.get("action") or x.get("operation")) in
             ("StopInstances", "InstanceAction")
             and (x.get("query") or {}).get("action", "STOP") != "START"]
    assert [caller(lab, x) for x in stops] == [by], stops
    stopped = [e["t"] for e in lab.power_events(out.crash_at)
               if e["instance"] == lab.node(target).instance_id
               and e["state"] in ("stopped", "STOPPED")]
    assert stopped, "the instance never reached stopped"
    moves = [x for x in calls if (x.get("action") or x.get("operation")) in MOVE_CALLS]
    assert moves and moves[0]["t"] > stopped[0], ("the address moved before the fence", moves)
    print(f"{out.fail} -> power call {stops[0]['t'] - out.crash_at:.3f}s, -> stopped "
          f"{stopped[0] - out.crash_at:.3f}s, -> address moved {moves[0]['t'] - out.crash_at:.3f}s")


def check_rejoined(lab, name: str, vip: str, timeout: float = 60) -> None:
    """After a reboot fence: the instance runs again, the lab booted its node, the node is
    online in the cluster again, and the VIP stayed where it was (resource-stickiness)."""
    c = lab.cluster
    c.wait_for(lambda: any(n == name for _, n, _ in lab.boots), timeout,
               f"{name} booted again")
    assert not [b for b in lab.boots if b[2]], lab.boots
    def joined():
        node = (c.status(on="node2", check=False) or {"nodes": {}})["nodes"].get(name, {})
        return node.get("online") and not node.get("pending")

    c.wait_for(joined, timeout, f"{name} online again (joined, not pending)")
    owner = c.where(RSC, on="node2")
    assert owner == ["node2"], owner
    print(f"{name} rejoined; vip1 stays on {owner}")
