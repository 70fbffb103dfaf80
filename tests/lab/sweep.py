"""No-panic sweep of the built binary (issue 11): every agent x action x hostile environments.

Each invocation runs inside a network namespace that holds only ``lo`` and a veth pair (no route
out: neither a real cloud nor 169.254.169.254 can be reached; the cloud endpoints point at
127.0.0.1:9, where nothing listens). Per invocation we check: no crash, an exit code in the
caller's allowed set for the action, at most one reason line, bounded protocol lines, no forged
line, the deadline (+2 s), and that links and addresses are as before whenever the action failed
or should not change the host (stop, monitor, validate, meta-data, check, clean, abort).

Environments are bytes -> bytes so non-UTF-8 values can be passed.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from netns import Lab, Node, cloudha_bin

# A line the binary writes must never be longer than this (reason lines are capped well below).
MAX_LINE = 1100
GRACE = 2.0  # seconds past the deadline we tolerate (process start, exit)
FORGED = b"forged"

# Hostile values for any parameter or caller number. Bytes, so non-UTF-8 can be passed.
HOSTILE: list[bytes] = [
    b"", b" ", b"-1", b"0", b"1e309", b"inf", b"-inf", b"NaN", b"1e-320",
    b"18446744073709551616", b"9" * 400, b"-9223372036854775808", b"0x10",
    b"A" * 100_000,
    b"x\nocf-exit-reason:forged", b"x\nCRS_ERROR: forged", b"x\rforged",
    b"\xff",
    # small but valid timeouts (ms for OCF, s for Clusterware): the work must fit in them
    b"1", b"3000",
    b"../../etc/passwd", b"/dev/zero",
    b"vx%d", b"eth%s",
    b"abcdefghijklmnopq",  # 17 bytes: over IFNAMSIZ-1
    "\u00e9th0\u202e\U0001f600".encode(),
]

OCF_CALLER_NUMBERS = ["OCF_RESKEY_CRM_meta_timeout", "OCF_RESKEY_CRM_meta_interval",
                      "OCF_CHECK_LEVEL", "OCF_RA_VERSION_MAJOR", "OCF_RA_VERSION_MINOR"]
CRS_CALLER_NUMBERS = ["_CRS_START_TIMEOUT", "_CRS_STOP_TIMEOUT", "_CRS_CHECK_TIMEOUT",
                      "_CRS_CLEAN_TIMEOUT", "_CRS_SCRIPT_TIMEOUT", "_CRS_CHECK_INTERVAL"]

# OCF actions: (label, argv action, extra env). Probe and recurring monitor differ by interval.
OCF_ACTIONS = [
    ("start", "start", {}),
    ("stop", "stop", {}),
    ("probe", "monitor", {b"OCF_RESKEY_CRM_meta_interval": b"0"}),
    ("monitor", "monitor", {b"OCF_RESKEY_CRM_meta_interval": b"10000"}),
    ("validate-0", "validate-all", {b"OCF_CHECK_LEVEL": b"0"}),
    ("validate-10", "validate-all", {b"OCF_CHECK_LEVEL": b"10"}),
    ("meta-data", "meta-data", {}),
    ("reload-agent", "reload-agent", {}),
    ("bogus", "no-such-action", {}),
]
CRS_ACTIONS = ["start", "stop", "check", "clean", "abort"]

# Exit codes each caller accepts for each action.
OCF_ALLOWED = {
    "start": set(range(0, 7)), "stop": set(range(0, 7)),
    "probe": set(range(0, 8)) | {190}, "monitor": set(range(0, 8)) | {190},
    # validate-all at depth >= 10 (a hostile OCF_CHECK_LEVEL may raise "validate-0" there too)
    # asks the cloud and the resolver: when they cannot be reached now the honest answer is
    # 1, "could not check, try again", never a ban.
    "validate-0": {0, 1, 2, 3, 4, 5, 6}, "validate-10": {0, 1, 2, 3, 4, 5, 6},
    "meta-data": {0}, "reload-agent": set(range(0, 8)), "bogus": {3},
}
CRS_ALLOWED = {"start": {0, 1}, "stop": {0, 1}, "clean": {0, 1}, "abort": {0, 1},
               "check": set(range(0, 6))}
# Actions after which the host must look exactly as before, whatever the exit code.
READ_ONLY = {"stop", "probe", "monitor", "validate-0", "validate-10", "meta-data", "bogus",
             "check", "clean", "abort"}

# Declared timeouts (seconds) per agent and action, read from meta-data at run time.
_declared: dict[str, dict[str, float]] = {}


def declared(agent: str, action: str) -> float:
    if agent not in _declared:
        out = subprocess.run([cloudha_bin(), agent, "meta-data"], capture_output=True,
                             timeout=10).stdout.decode()
        d = {}
        for m in re.finditer(r'<action name="([^"]+)" timeout="(\d+)s"', out):
            d.setdefault(m.group(1), float(m.group(2)))
        _declared[agent] = d
    name = {"probe": "monitor", "check": "monitor", "clean": "stop", "abort": "stop",
            "validate-0": "validate-all", "validate-10": "validate-all"}.get(action, action)
    return _declared[agent].get(name, 20.0)


def _number(raw: bytes | None, scale: float) -> float | None:
    """A caller number as the caller meant it (None when not a finite positive number)."""
    if raw is None:
        return None
    try:
        v = float(raw.decode().strip()) * scale
    except (ValueError, UnicodeDecodeError):
        return None
    if not math.isfinite(v) or v <= 0:
        return None
    return v


@dataclass
class Variant:
    """One agent configuration the hostile values are applied to."""

    label: str
    agent: str
    params: dict[str, bytes]  # a valid configuration
    # Parameters swept with hostile values (None: every declared one). The cloud variants of vip
    # sweep the parameters their cloud reads; the rest are swept by vip/none.
    swept: tuple[str, ...] | None = None


NOWHERE = b"http://127.0.0.1:9"  # discard port on loopback: connection refused


def cloud_env(tmp: str) -> dict[bytes, bytes]:
    """Keep every SDK away from real endpoints, files and credentials."""
    t = tmp.encode()
    return {
        b"AWS_EC2_METADATA_DISABLED": b"true",
        b"AWS_ENDPOINT_URL": NOWHERE,
        b"AWS_EC2_METADATA_SERVICE_ENDPOINT": NOWHERE,
        b"AWS_CONFIG_FILE": t + b"/no-aws-config",
        b"AWS_SHARED_CREDENTIALS_FILE": t + b"/no-aws-credentials",
        b"AWS_ACCESS_KEY_ID": b"AKIASWEEPMARKER00000",
        b"AWS_SECRET_ACCESS_KEY": b"sweep-marker-secret",
        b"AWS_REGION": b"us-east-1",
        b"OCI_CONFIG_FILE": t + b"/no-oci-config",
        b"HOME": t,
    }


def variants(tmp: str) -> list[Variant]:
    aws = {b"endpoint_url": NOWHERE, b"region": b"us-east-1"}
    return [
        Variant("vip/none", "vip", {"ip": b"10.99.0.100", "cloud": b"none", "nic": b"veth0",
                                    "arp_count": b"1", "arp_interval": b"10"}),
        Variant("vip/aws", "vip", {"ip": b"10.99.0.101", "cloud": b"aws", "nic": b"veth0",
                                   "region": b"us-east-1", "endpoint_url": NOWHERE,
                                   "arp_count": b"1"},
                ("ip", "nic", "cloud", "region", "profile", "role_arn", "endpoint_url",
                 "eip_allocation_id", "delete_on_stop", "cloud_check_interval")),
        Variant("vip/oci", "vip", {"ip": b"10.99.0.102", "cloud": b"oci", "nic": b"veth0",
                                   "oci_auth": b"instance_principal",
                                   "auth_endpoint_url": NOWHERE, "endpoint_url": NOWHERE,
                                   "arp_count": b"1"},
                ("ip", "nic", "cloud", "region", "oci_auth", "config_file", "auth_endpoint_url",
                 "endpoint_url", "delete_on_stop", "cloud_check_interval")),
        Variant("route-table", "route-table", {"ip": b"10.98.0.1", "route_tables": b"rtb-0sweep",
                                               "nic": b"veth0", "region": aws[b"region"],
                                               "endpoint_url": NOWHERE}),
        Variant("vxlan-fdb", "vxlan-fdb", {"vni": b"4242", "dev": b"veth0",
                                           "local": b"10.99.0.1",
                                           "peers": b"10.99.0.2 10.99.0.3",
                                           "ifname": b"vxsw0"}),
    ]


def meta_params(agent: str) -> list[str]:
    out = subprocess.run([cloudha_bin(), agent, "meta-data"], capture_output=True,
                         timeout=10).stdout.decode()
    return re.findall(r'<parameter name="([^"]+)"', out)


@dataclass
class Case:
    caller: str  # "ocf" or "crs"
    variant: Variant
    action: str  # label
    argv_action: str
    env: dict[bytes, bytes]
    diff: dict[bytes, bytes]  # what is hostile (for the report)
    conf: str | None = None  # Clusterware: which .conf variant

    def deadline(self) -> float:
        if self.caller == "ocf":
            t = _number(self.env.get(b"OCF_RESKEY_CRM_meta_timeout"), 0.001)
        else:
            word = {"start": "START", "stop": "STOP", "check": "CHECK",
                    "clean": "CLEAN"}.get(self.action)
            t = None
            for var in ([f"_CRS_{word}_TIMEOUT"] if word else []) + ["_CRS_SCRIPT_TIMEOUT"]:
                t = _number(self.env.get(var.encode()), 1.0)
                if t is not None:
                    break
        d = declared(self.variant.agent, self.action)
        # The binary raises a usable timeout under a second to one (contract::MIN_TIMEOUT).
        t = None if t is None else max(t, 1.0)
        # A usable caller timeout is the deadline; a huge one is bounded by the declared timeout
        # here, since nothing in this namespace can legitimately take longer than that.
        return min(t, d) if t is not None else d


def short(v: bytes) -> str:
    s = repr(v)
    return s if len(s) <= 40 else f"{s[:30]}...({len(v)} bytes)"


@dataclass
class Failure:
    case: Case
    what: str
    rc: int | None
    reason: str

    def line(self) -> str:
        diff = " ".join(f"{k.decode(errors='replace')}={short(v)}"
                        for k, v in self.case.diff.items())
        conf = f" conf={self.case.conf}" if self.case.conf else ""
        return (f"{self.case.caller} {self.case.variant.label} {self.case.action}{conf} "
                f"[{diff}] -> {self.what} rc={self.rc} {self.reason[:300]!r}")


def snapshot(ns: str) -> list:
    """Links and addresses of a namespace, without counters and states that move by themselves."""
    out = subprocess.run(["ip", "-n", ns, "-j", "addr"], capture_output=True, timeout=10,
                         check=True).stdout
    res = []
    for link in json.loads(out or b"[]"):
        addrs = sorted((a.get("family"), a.get("local"), a.get("prefixlen"))
                       for a in link.get("addr_info", [])
                       # the kernel's own IPv6 link-local appears when a link goes up
                       if not (a.get("family") == "inet6" and a.get("scope") == "link"))
        res.append((link["ifname"], link.get("link_type"), link.get("address"), link.get("mtu"),
                    link.get("master"), "UP" in link.get("flags", []), tuple(addrs)))
    return sorted(res)


class Worker:
    """One namespace (lo + veth0/veth1) and run directory; invocations in it run one at a time."""

    def __init__(self, lab: Lab, idx: int, tmp: str):
        self.node: Node = lab.namespace(f"sw{idx}")
        n = self.node
        n.ip("link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
        n.ip("addr", "add", "10.99.0.1/24", "dev", "veth0")
        n.ip("addr", "add", "10.99.0.2/24", "dev", "veth1")
        n.ip("link", "set", "veth0", "up")
        n.ip("link", "set", "veth1", "up")
        self.run_dir = os.path.join(tmp, f"run{idx}")
        os.makedirs(self.run_dir, mode=0o700)
        self.baseline = snapshot(n.ns)
        self.lock = threading.Lock()

    def restore(self) -> None:
        """Put links and addresses back to the baseline (after a leak has been recorded)."""
        base_links = {l[0] for l in self.baseline}
        for link in snapshot(self.node.ns):
            if link[0] not in base_links:
                self.node.ip("link", "del", link[0], check=False)
        base = {l[0]: l for l in self.baseline}
        for link in snapshot(self.node.ns):
            want = set(base[link[0]][6])
            for fam, addr, plen in link[6]:
                if (fam, addr, plen) not in want:
                    self.node.ip("addr", "del", f"{addr}/{plen}", "dev", link[0], check=False)
            if link[3] != base[link[0]][3]:
                self.node.ip("link", "set", link[0], "mtu", str(base[link[0]][3]), check=False)
            if link[5] != base[link[0]][5]:
                self.node.ip("link", "set", link[0], "up" if base[link[0]][5] else "down",
                             check=False)

    def call(self, case: Case, env: dict[bytes, bytes], action: str, limit: float):
        argv = ["ip", "netns", "exec", self.node.ns, cloudha_bin(), case.variant.agent, action]
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, env=env, capture_output=True, timeout=limit)
            return p.returncode, p.stdout, p.stderr, time.monotonic() - t0
        except subprocess.TimeoutExpired as e:  # run() kills the child by its PID
            return None, e.stdout or b"", e.stderr or b"", time.monotonic() - t0

    def run(self, case: Case) -> tuple[list[Failure], float, float, Case]:
        """Run one case; returns its failures, elapsed time, deadline and the case."""
        with self.lock:
            env = dict(case.env)
            env[b"CLOUDHA_RUN_DIR"] = self.run_dir.encode()
            deadline = case.deadline()
            rc, out, err, elapsed = self.call(case, env, case.argv_action, deadline + GRACE + 3)
            fails = check(case, rc, out, err, elapsed, deadline)
            after = snapshot(self.node.ns)
            if after != self.baseline:
                failed = rc != 0 or case.action in READ_ONLY
                if failed:
                    fails.append(Failure(case, "host changed", rc, diff_snap(self.baseline,
                                                                           after)))
                else:
                    # A successful start: its stop (same environment) must undo it all.
                    stop = "stop"
                    self.call(case, env, stop, declared(case.variant.agent, "stop") + GRACE)
                    after = snapshot(self.node.ns)
                    if after != self.baseline:
                        fails.append(Failure(case, "start+stop leaks", rc,
                                             diff_snap(self.baseline, after)))
                if snapshot(self.node.ns) != self.baseline:
                    self.restore()
            return fails, elapsed, deadline, case


def diff_snap(before: list, after: list) -> str:
    b, a = set(before), set(after)
    return f"gone={sorted(b - a)} new={sorted(a - b)}"


PROTO = (b"ocf-exit-reason:", b"CRS_ERROR:", b"CRS_WARNING:", b"CRS_PROGRESS:")


def check(case: Case, rc, out: bytes, err: bytes, elapsed: float, deadline: float) -> list:
    fails = []
    reason_prefix = b"ocf-exit-reason:" if case.caller == "ocf" else b"CRS_ERROR:"
    lines = out.splitlines() + err.splitlines()
    reasons = [l for l in lines if l.startswith(reason_prefix)]
    first = (reasons[0] if reasons else (err.splitlines() or [b""])[-1]).decode(errors="replace")
    if rc is None:
        fails.append(Failure(case, f"killed past deadline {deadline:.1f}s+{GRACE + 3:.0f}",
                             rc, first))
        return fails
    if rc < 0 or rc in (101, 134) or b"panicked at" in err:
        fails.append(Failure(case, "crash", rc, first))
    allowed = (OCF_ALLOWED if case.caller == "ocf" else CRS_ALLOWED)[case.action]
    if rc not in allowed:
        fails.append(Failure(case, "wrong code", rc, first))
    if len(reasons) > 1:
        fails.append(Failure(case, f"{len(reasons)} reason lines", rc, first))
    long = [l for l in err.splitlines() + [l for l in out.splitlines() if l.startswith(PROTO)]
            if len(l) > MAX_LINE]
    if long:
        fails.append(Failure(case, f"line of {max(map(len, long))} bytes", rc, first))
    forged = [l for l in lines if l.startswith(FORGED) or l.startswith(b"\rforged")
              or any(l.startswith(p) and l[len(p):].strip().startswith(FORGED) for p in PROTO)]
    if forged:
        fails.append(Failure(case, "forged line", rc, forged[0].decode(errors="replace")))
    if elapsed > deadline + GRACE:
        fails.append(Failure(case, f"took {elapsed:.2f}s > deadline {deadline:.1f}s+{GRACE}",
                             rc, first))
    return fails


def base_env(tmp: str) -> dict[bytes, bytes]:
    env = {b"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").encode(),
           b"LANG": b"C.UTF-8", b"CLOUDHA_DMI_DIR": os.path.join(tmp, "dmi").encode(),
           b"CLOUDHA_SYSLOG_SOCKET": os.path.join(tmp, "no-syslog").encode()}
    env.update(cloud_env(tmp))
    return env


def ocf_cases(tmp: str, values: list[bytes]) -> list[Case]:
    cases = []
    for v in variants(tmp):
        base = base_env(tmp)
        base.update({b"OCF_ROOT": b"/usr/lib/ocf", b"OCF_RESOURCE_INSTANCE": b"sweep",
                     b"OCF_RA_VERSION_MAJOR": b"1", b"OCF_RA_VERSION_MINOR": b"1",
                     b"OCF_EXIT_REASON_PREFIX": b"ocf-exit-reason:",
                     b"OCF_RESKEY_CRM_meta_timeout": b"20000"})
        base.update({f"OCF_RESKEY_{k}".encode(): val for k, val in v.params.items()})
        hostile: list[dict[bytes, bytes]] = [{}]
        for name in meta_params(v.agent):
            if v.swept is not None and name not in v.swept:
                continue
            hostile += [{f"OCF_RESKEY_{name}".encode(): val} for val in values]
        for var in OCF_CALLER_NUMBERS:
            hostile += [{var.encode(): val} for val in values]
        for h in hostile:
            for label, argv_action, extra in OCF_ACTIONS:
                env = dict(base)
                env.update(extra)
                env.update(h)  # the hostile value wins over the action's own interval/level
                cases.append(Case("ocf", v, label, argv_action, env, h))
    return cases


def make_confs(tmp: str, v: Variant) -> dict[str, str]:
    """Clusterware config directories, one per .conf shape; returns label -> directory."""
    good = b"".join(f"{k}={val.decode()}\n".encode() for k, val in v.params.items())
    shapes = {
        "good": good,
        "garbled": b"=\n==x\nno equals sign here\n[section]\nip 1.2.3.4\n" + good,
        "binary": bytes(range(256)) * 4,
        "huge": good + b"# " + b"x" * (4 << 20) + b"\n",
        "forging": good.replace(b"\n", b"\n", 1) + b"ip=x\rocf-exit-reason:forged\n",
        "missing": None,
    }
    dirs = {}
    for label, content in shapes.items():
        d = os.path.join(tmp, f"conf-{v.label.replace('/', '_')}-{label}")
        os.makedirs(d)
        if content is not None:
            with open(os.path.join(d, "res.conf"), "wb") as f:
                f.write(content)
        dirs[label] = d
    specials = {
        "directory": lambda p: os.mkdir(p),
        "symlink-loop": lambda p: os.symlink("res.conf", p),
        "dangling": lambda p: os.symlink("/nonexistent/cloudha.conf", p),
        "fifo": lambda p: os.mkfifo(p),
        "dev-zero": lambda p: os.symlink("/dev/zero", p),
    }
    for label, make in specials.items():
        d = os.path.join(tmp, f"conf-{v.label.replace('/', '_')}-{label}")
        os.makedirs(d)
        make(os.path.join(d, "res.conf"))
        dirs[label] = d
    return dirs


def crs_cases(tmp: str, values: list[bytes]) -> list[Case]:
    cases = []
    for v in variants(tmp):
        confs = make_confs(tmp, v)
        base = base_env(tmp)
        base.update({b"_CRS_NAME": b"res", b"_CRS_START_TIMEOUT": b"20",
                     b"_CRS_STOP_TIMEOUT": b"20", b"_CRS_CHECK_TIMEOUT": b"20",
                     b"_CRS_CLEAN_TIMEOUT": b"20"})
        hostile: list[tuple[str, dict[bytes, bytes]]] = [(c, {}) for c in confs]
        for name in meta_params(v.agent):
            if v.swept is not None and name not in v.swept:
                continue
            hostile += [("good", {f"_CRS_{name.upper()}".encode(): val}) for val in values]
        for var in CRS_CALLER_NUMBERS + ["_CRS_NAME"]:
            hostile += [("good", {var.encode(): val}) for val in values]
        for conf, h in hostile:
            for action in CRS_ACTIONS:
                env = dict(base)
                env[b"CLOUDHA_CONFIG_DIR"] = confs[conf].encode()
                env.update(h)
                cases.append(Case("crs", v, action, action, env, h, conf))
    return cases


def run_sweep(workers: int = 3, values: list[bytes] | None = None) -> dict:
    values = HOSTILE if values is None else values
    tmp = tempfile.mkdtemp(prefix="cloudha-sweep-")
    os.makedirs(os.path.join(tmp, "dmi"))
    t0 = time.monotonic()
    try:
        with Lab() as lab:
            pool = [Worker(lab, i, tmp) for i in range(workers)]
            cases = ocf_cases(tmp, values) + crs_cases(tmp, values)
            # Spread each variant over the workers; each worker runs its cases in order.
            shards = [cases[i::workers] for i in range(workers)]
            results: list[tuple[list[Failure], float, float, Case]] = []
            lock = threading.Lock()

            def shard(i: int) -> None:
                for c in shards[i]:
                    r = pool[i].run(c)
                    with lock:
                        results.append(r)

            with ThreadPoolExecutor(workers) as ex:
                list(ex.map(shard, range(workers)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fails = [f for r in results for f in r[0]]
    kinds = {"crash": 0, "wrong code": 0, "reason lines": 0, "host changed": 0,
             "start+stop leaks": 0, "forged line": 0, "line of": 0, "took": 0, "killed": 0}
    for f in fails:
        for k in kinds:
            if f.what.startswith(k) or k in f.what:
                kinds[k] += 1
                break
    worst = max(results, key=lambda r: r[1] - r[2])
    # Distinct defect classes: same caller, agent, action and kind of failure; one example each.
    classes: dict[tuple, dict] = {}
    for f in fails:
        kind = f.what.split(" ")[0] if f.what[0].isalpha() else f.what
        # The reason's start tells causes apart without splitting by the echoed value.
        cause = re.sub(r"^(ocf-exit-reason:|CRS_ERROR:)", "", f.reason)[:24]
        key = (f.case.caller, f.case.variant.label, f.case.action, kind, f.rc, cause)
        c = classes.setdefault(key, {"count": 0, "example": f.line()})
        c["count"] += 1
    # The listing starts with one failure of each class, then the rest in order.
    firsts = [c["example"] for c in classes.values()]
    firsts += [f.line() for f in fails if f.line() not in firsts]
    slowest = max(results, key=lambda r: r[1])
    return {
        "invocations": len(results),
        "seconds": round(time.monotonic() - t0, 1),
        "failures": len(fails),
        "crashes": kinds["crash"],
        "wrong_codes": kinds["wrong code"],
        "multi_reason": kinds["reason lines"],
        "leaks": kinds["host changed"] + kinds["start+stop leaks"],
        "forged": kinds["forged line"],
        "long_lines": kinds["line of"],
        "late": kinds["took"] + kinds["killed"],
        "worst_elapsed_s": round(worst[1], 3),
        "worst_deadline_s": round(worst[2], 3),
        "worst_over_deadline_s": round(worst[1] - worst[2], 3),
        "worst_case": Failure(worst[3], "worst vs deadline", None, "").line(),
        "max_elapsed_s": round(slowest[1], 3),
        "max_elapsed_deadline_s": round(slowest[2], 3),
        "max_elapsed_case": Failure(slowest[3], "slowest", None, "").line(),
        "first_failures": firsts[:20],
        "classes": sorted(classes.values(), key=lambda c: -c["count"]),
        "_all": fails,
    }
