"""The no-panic sweep of the built binary (issue 11): every agent x action x a few hundred
hostile environments, called exactly as Pacemaker and Clusterware call it (through a link named
after the agent, the action in argv[1], parameters in the environment), inside a network
namespace that has no route anywhere (so a cloud client cannot reach a real endpoint or
169.254.169.254; AWS endpoints are pinned to a closed loopback port as well).

Checked for every invocation: no crash (no signal, no exit 101/134, no "panicked"); the exit
code is in the caller's allowed set for that action; at most one reason line
(``ocf-exit-reason:`` / ``CRS_ERROR:``), every line bounded; the action ends within its
deadline (+2 s); the namespace's links and addresses are as before a failed action, and as
before the start after a successful stop. A JSON summary goes to $CLOUDHA_SWEEP_REPORT if set.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from netns import Lab, cloudha_bin

AGENTS = ("vip", "vxlan-fdb", "route-table")

# A configuration of each agent that works on the sweep's node (eth0 10.0.0.1/24).
BASE = {
    "vip": {"ip": "10.0.0.200", "nic": "eth0", "cidr_netmask": "24", "cloud": "none",
            "arp_count": "0"},
    "vxlan-fdb": {"vni": "100", "dev": "eth0", "local": "10.0.0.1",
                  "peers": "10.0.0.2,10.0.0.3"},
    "route-table": {"ip": "192.168.100.1", "route_tables": "rtb-1", "nic": "eth0",
                    "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:9"},
}
# vip with a cloud: pointed at nothing (no route out of the namespace, endpoint closed).
CLOUD_BASES = {
    "vip-aws": ("vip", {"ip": "10.0.0.200", "nic": "eth0", "cloud": "aws",
                        "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:9"}),
    "vip-oci": ("vip", {"ip": "10.0.0.200", "nic": "eth0", "cloud": "oci",
                        "endpoint_url": "http://127.0.0.1:9"}),
}

HOSTILE: list[bytes] = [s.encode() if isinstance(s, str) else s for s in [
    "", " ", "-1", "0", "-0", "1e309", "inf", "-inf", "NaN", "1e-320",
    "18446744073709551616", "-9223372036854775808", "9" * 400, "0x10", "+5", "1_000",
    "x\nocf-exit-reason:forged", "x\r\nCRS_ERROR: forged", "a" * 100_000,
    "../../etc/passwd", "/dev/zero", "/", "..", "vx%d", "eth%s", "%",
    "averyveryverylongname0", "ünïcödé", "\u202eevil", "eth0 eth1", "10.0.0.1/33",
    "fd00::200", "0.0.0.0", "255.255.255.255", "224.0.0.1", "127.0.0.1", "true",
    "host.invalid", "10.0.0.2,10.0.0.2", b"\xff", b"10.0.0.\xff", b"eth\xfe0",
]]

CALLER_VARS = ["OCF_RESKEY_CRM_meta_timeout", "OCF_RESKEY_CRM_meta_interval", "OCF_CHECK_LEVEL",
               "OCF_RA_VERSION_MAJOR", "OCF_RA_VERSION_MINOR", "OCF_RESOURCE_INSTANCE"]

# (action word, extra environment) as the callers use them.
OCF_ACTIONS = [
    ("start", {}), ("monitor", {"OCF_RESKEY_CRM_meta_interval": "10000"}),
    ("monitor", {}), ("validate-all", {}), ("validate-all", {"OCF_CHECK_LEVEL": "10"}),
    ("reload-agent", {}), ("meta-data", {}), ("promote", {}), ("stop", {}),
]
OCF_ALLOWED = {"monitor": {0, 1, 2, 3, 4, 5, 6, 7, 190}, "meta-data": {0}}
OCF_DEFAULT_ALLOWED = {0, 1, 2, 3, 4, 5, 6}  # never 7 outside a monitor
CRS_ACTIONS = ["start", "check", "stop", "clean", "abort"]
LINE_MAX = 1100
TIMEOUT_MS = 3000  # the sweep's action timeout, so cloud retries end quickly

_declared: dict[str, dict[str, int]] = {}


def declared_timeouts(agent: str) -> dict[str, int]:
    """Action timeouts (s) from the agent's meta-data: what applies to an unusable timeout."""
    if agent not in _declared:
        xml = subprocess.run([cloudha_bin(), agent, "meta-data"], capture_output=True,
                             text=True, check=True).stdout
        t = {}
        for m in re.finditer(r'<action name="([^"]+)" timeout="(\d+)s?"', xml):
            t.setdefault(m.group(1), int(m.group(2)))
        _declared[agent] = t
    return _declared[agent]


def params_of(agent: str) -> list[str]:
    xml = subprocess.run([cloudha_bin(), agent, "meta-data"], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r'<parameter name="([^"]+)"', xml)


def deadline_of(agent: str, word: str, env: dict[bytes, bytes], crs: bool) -> float:
    """The seconds the caller allows this action, by the documented rules."""
    decl = declared_timeouts(agent)
    name = {"check": "monitor", "clean": "stop", "abort": "stop"}.get(word, word)
    default = decl.get(name, 20)
    vars_ = ([f"_CRS_{word.upper()}_TIMEOUT".encode(), b"_CRS_SCRIPT_TIMEOUT"] if crs
             else [b"OCF_RESKEY_CRM_meta_timeout"])
    for v in vars_:
        raw = env.get(v)
        if raw is None:
            continue
        try:
            n = float(raw.decode())
        except (UnicodeDecodeError, ValueError):
            continue
        secs = n if crs else n / 1000
        if secs > 0 and secs != float("inf"):
            return min(max(secs, 1.0), 86400)
    return default


def snapshot(ns: str) -> list:
    """Links (name, kind, master, mtu, up) and addresses of the namespace."""
    out = subprocess.run(["ip", "-n", ns, "-j", "-d", "addr", "show"], capture_output=True,
                         text=True, check=True).stdout
    state = []
    for link in json.loads(out or "[]"):
        info = link.get("linkinfo", {})
        state.append(("link", link["ifname"], info.get("info_kind"), link.get("master"),
                      link.get("mtu"), "UP" in link.get("flags", [])))
        for a in link.get("addr_info", []):
            if a.get("scope") == "link" and a.get("family") == "inet6":
                continue  # the kernel's own link-local addresses come and go with the link
            state.append(("addr", link["ifname"], a["local"], a["prefixlen"]))
    return sorted(state, key=repr)


class Sweep:
    def __init__(self, ns: str, links_dir: str, conf_dir: str, run_dir: str):
        self.ns, self.links_dir, self.conf_dir, self.run_dir = ns, links_dir, conf_dir, run_dir
        self.count = 0
        self.failures: list[str] = []
        self.crashes = self.wrong_codes = self.multi_reasons = self.long_lines = 0
        self.leaks = self.late = 0
        self.worst = 0.0  # elapsed / deadline

    def base_env(self, crs: bool) -> dict[bytes, bytes]:
        env = {
            b"PATH": b"/usr/sbin:/usr/bin:/sbin:/bin",
            b"OCF_ROOT": b"/usr/lib/ocf",
            b"OCF_RESOURCE_INSTANCE": b"sweep1",
            b"OCF_RA_VERSION_MAJOR": b"1",
            b"OCF_RA_VERSION_MINOR": b"1",
            b"CLOUDHA_RUN_DIR": self.run_dir.encode(),
            b"CLOUDHA_DMI_DIR": b"/nonexistent",
            b"CLOUDHA_CONFIG_DIR": self.conf_dir.encode(),
            b"AWS_EC2_METADATA_DISABLED": b"true",
            b"AWS_ACCESS_KEY_ID": b"AKIASWEEP",
            b"AWS_SECRET_ACCESS_KEY": b"sweep",
            b"HOME": b"/nonexistent",
        }
        if crs:
            env[b"_CRS_NAME"] = b"sweep1"
            env[b"_CRS_SCRIPT_TIMEOUT"] = str(TIMEOUT_MS // 1000).encode()
        else:
            env[b"OCF_RESKEY_CRM_meta_timeout"] = str(TIMEOUT_MS).encode()
        return env

    def call(self, agent: str, word: str, env: dict[bytes, bytes], crs: bool, label: str):
        before = snapshot(self.ns)
        deadline = deadline_of(agent, word, env, crs)
        t0 = time.monotonic()
        try:
            p = subprocess.run(["ip", "netns", "exec", self.ns,
                                os.path.join(self.links_dir, agent), word],
                               env=env, capture_output=True, timeout=deadline + 10)
            code, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            code, out, err = -9, e.stdout or b"", e.stderr or b""
        elapsed = time.monotonic() - t0
        self.count += 1
        self.worst = max(self.worst, elapsed / max(deadline, 1e-3))
        problems = []
        text_err = err.decode("utf-8", "replace")
        if code < 0 or code in (101, 134) or "panicked" in text_err:
            self.crashes += 1
            problems.append(f"crash (exit {code})")
        if crs:
            allowed = {0, 1, 2, 3, 4, 5} if word == "check" else {0, 1}
        else:
            allowed = OCF_ALLOWED.get(word, OCF_DEFAULT_ALLOWED)
        if code not in allowed:
            self.wrong_codes += 1
            problems.append(f"exit {code} not in {sorted(allowed)}")
        lines = out.split(b"\n") + err.split(b"\n")
        reasons = [l for l in lines if l.startswith((b"ocf-exit-reason:", b"CRS_ERROR:"))]
        if len(reasons) > 1:
            self.multi_reasons += 1
            problems.append(f"{len(reasons)} reason lines")
        if word != "meta-data" and any(len(l) > LINE_MAX for l in lines):
            self.long_lines += 1
            problems.append(f"a line of {max(len(l) for l in lines)} bytes")
        if elapsed > deadline + 2:
            self.late += 1
            problems.append(f"took {elapsed:.1f}s, deadline {deadline:.1f}s")
        failed = code not in (0, 7, 190)
        after = snapshot(self.ns)
        if failed and after != before:
            self.leaks += 1
            problems.append(f"host changed by a failed action: {diff(before, after)}")
        if problems:
            reason = reasons[0][:160].decode("utf-8", "replace") if reasons else ""
            self.failures.append(f"{label} {word}: {'; '.join(problems)} [{reason}]")
        return code, before, after


def diff(a: list, b: list) -> str:
    return f"-{[x for x in a if x not in b]} +{[x for x in b if x not in a]}"


def show(v: bytes) -> str:
    s = repr(v)
    return s if len(s) < 40 else s[:36] + "...'"


def ocf_cases(agent_key: str):
    """(agent, label, parameters) for one base: each parameter set to each hostile value, and
    each caller variable likewise."""
    agent, base = (agent_key, BASE[agent_key]) if agent_key in BASE else CLOUD_BASES[agent_key]
    names = params_of(agent)
    yield agent, f"{agent_key} base", {k.encode(): v.encode() for k, v in base.items()}, {}
    for name, value in itertools.product(names, HOSTILE):
        params = {k.encode(): v.encode() for k, v in base.items()}
        params[name.encode()] = value
        yield agent, f"{agent_key} {name}={show(value)}", params, {}
    for var, value in itertools.product(CALLER_VARS, HOSTILE):
        params = {k.encode(): v.encode() for k, v in base.items()}
        yield agent, f"{agent_key} {var}={show(value)}", params, {var.encode(): value}


def run_ocf(sweep: Sweep, agent_key: str, actions):
    for i, (agent, label, params, callers) in enumerate(ocf_cases(agent_key)):
        env0 = sweep.base_env(crs=False)
        env0.update({b"OCF_RESKEY_" + k: v for k, v in params.items()})
        # Every case gets a start and a stop (what Pacemaker always pairs) and one more action,
        # rotating, so every action meets every kind of value.
        extra = actions[i % len(actions)]
        plan = [("start", {})] + ([extra] if extra[0] not in ("start", "stop") else []) + \
               [("stop", {})]
        before_start = None
        for word, extra_env in plan:
            env = dict(env0)
            env.update({k.encode(): v.encode() for k, v in extra_env.items()})
            env.update(callers)
            code, before, after = sweep.call(agent, word, env, False, label)
            if word == "start":
                before_start = before
            if word == "stop" and code == 0 and before_start is not None \
                    and after != before_start:
                sweep.leaks += 1
                sweep.failures.append(f"{label} stop: left behind {diff(before_start, after)}")
        # Whatever happened, the next case starts from a clean namespace.
        reset(sweep)


def reset(sweep: Sweep):
    for link in json.loads(subprocess.run(["ip", "-n", sweep.ns, "-j", "link", "show"],
                                          capture_output=True, text=True).stdout or "[]"):
        if link["ifname"] not in ("lo", "eth0", "eth1"):
            subprocess.run(["ip", "-n", sweep.ns, "link", "del", link["ifname"]],
                           capture_output=True)
    subprocess.run(["ip", "-n", sweep.ns, "addr", "flush", "dev", "eth0"], capture_output=True)
    subprocess.run(["ip", "-n", sweep.ns, "addr", "add", "10.0.0.1/24", "dev", "eth0"],
                   capture_output=True)


# Clusterware .conf contents: each is either usable or must be refused as unusable.
def conf_variants(agent: str, conf: str):
    good = "".join(f"{k}={v}\n" for k, v in BASE[agent].items())
    yield "good", good.encode(), False
    yield "garbled", good.encode() + b"this is not a pair\n", True
    yield "binary", good.encode() + bytes(range(256)), True
    yield "not UTF-8", good.encode() + b"nic=eth\xff\n", True
    yield "huge", b"# " + b"x" * (2 << 20) + b"\n", True
    yield "forged", good.encode() + b"x\nCRS_ERROR: forged\n", True
    for special in ("directory", "fifo", "symlink loop"):
        yield special, special, True


def place_conf(path: str, what):
    if os.path.islink(path) or os.path.isfile(path) or (os.path.exists(path) and
                                                        not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        os.rmdir(path)
    if what == "directory":
        os.mkdir(path)
    elif what == "fifo":
        os.mkfifo(path)
    elif what == "symlink loop":
        os.symlink(path, path)
    else:
        with open(path, "wb") as f:
            f.write(what)


def run_crs(sweep: Sweep, agent: str):
    path = os.path.join(sweep.conf_dir, "sweep1.conf")
    for name, content, broken in conf_variants(agent, path):
        place_conf(path, content)
        for word in CRS_ACTIONS:
            env = sweep.base_env(crs=True)
            code, _, _ = sweep.call(agent, word, env, True, f"crs {agent} conf={name}")
            if broken:
                want = {"check": 3, "stop": 0, "clean": 0, "abort": 0, "start": 1}[word]
                if code != want:
                    sweep.wrong_codes += 1
                    sweep.failures.append(
                        f"crs {agent} conf={name} {word}: exit {code}, want {want}")
        # Hostile attributes and timeouts with a good file.
        place_conf(path, b"")
        for var, value in itertools.product(
                [f"_CRS_{k.upper()}" for k in params_of(agent)[:6]] +
                ["_CRS_START_TIMEOUT", "_CRS_STOP_TIMEOUT", "_CRS_SCRIPT_TIMEOUT"],
                HOSTILE[::3] if name != "good" else []):
            env = sweep.base_env(crs=True)
            env.update({f"_CRS_{k.upper()}".encode(): v.encode()
                        for k, v in BASE[agent].items()})
            env[var.encode()] = value
            for word in ("start", "check", "stop"):
                sweep.call(agent, word, env, True, f"crs {agent} {var}={show(value)}")
        reset(sweep)
    if os.path.islink(path) or os.path.exists(path):
        place_conf(path, b"")


def test_no_panic_sweep(tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    for a in AGENTS:
        os.symlink(cloudha_bin(), links / a)
    keys = list(BASE) + list(CLOUD_BASES)
    with Lab() as lab:
        sweeps = {}
        for i, key in enumerate(keys):
            node = lab.namespace(f"s{i}")
            # eth0 10.0.0.1/24 on a veth whose other end (eth1) stays in the namespace: no
            # route leaves it.
            node.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
            node.ip("link", "set", "eth0", "up")
            node.ip("link", "set", "eth1", "up")
            node.ip("addr", "add", "10.0.0.1/24", "dev", "eth0")
            d = tmp_path / key
            (d / "conf").mkdir(parents=True)
            sweeps[key] = Sweep(node.ns, str(links), str(d / "conf"), str(d / "run"))

        def work(key):
            s = sweeps[key]
            run_ocf(s, key, OCF_ACTIONS)
            if key in BASE:
                run_crs(s, key)

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(work, keys))
        took = time.monotonic() - t0

    total = {f: sum(getattr(s, f) for s in sweeps.values())
             for f in ("count", "crashes", "wrong_codes", "multi_reasons", "long_lines",
                       "leaks", "late")}
    worst = max(s.worst for s in sweeps.values())
    failures = [f for s in sweeps.values() for f in s.failures]
    summary = dict(total, worst_time_vs_deadline=round(worst, 3), seconds=round(took, 1),
                   failures=len(failures), first_failures=failures[:20])
    print(f"\nsweep: {total['count']} invocations in {took:.0f}s; crashes {total['crashes']}, "
          f"wrong codes {total['wrong_codes']}, multi-line reasons {total['multi_reasons']}, "
          f"long lines {total['long_lines']}, leaks {total['leaks']}, late {total['late']}; "
          f"worst time {worst:.2f} x deadline")
    report = os.environ.get("CLOUDHA_SWEEP_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump(summary, f, indent=1)
    assert not failures, f"{len(failures)} failures, first 20:\n" + "\n".join(failures[:20])
    assert total["count"] >= 3000, "the sweep must stay a sweep"
