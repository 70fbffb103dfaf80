"""A stand-in for Oracle Clusterware's resource layer, enough to play the seed's registrations
and to execute the shipped `crsctl` examples against the labs. No Clusterware can run here
(../shared/notes/contracts.md); this drives ACTION_SCRIPTs exactly as its script agent does:

- the action as argv[1] (start, stop, check, clean), every attribute of the resource (the base
  type's and its own type's, defaults included, empty ones too) exported as `_CRS_<ATTRIBUTE>`,
  the action killed at its timeout (START_TIMEOUT etc., else SCRIPT_TIMEOUT), stdout lines
  `CRS_WARNING:`/`CRS_ERROR:`/`CRS_PROGRESS:` forwarded to the crsctl client without the tag;
- a start is followed by a check, whose code is the state: 0 ONLINE, 1 UNPLANNED_OFFLINE,
  2 PLANNED_OFFLINE, 3 UNKNOWN, 4 INTERMEDIATE, 5 FAILED (clean, then recover);
- hard start dependencies collocate (unless `global:`), are started first, and accept an
  INTERMEDIATE target only with `intermediate:`; hard stop dependencies stop (or, with
  `relocate -f`, move) the dependents first, and refuse without -f;
- PLACEMENT favored/restricted follow HOSTING_MEMBERS' order, balanced any member up; a member
  lost takes its resources down without running anything there, then each is started on
  another member, dependency targets first.

State lives in a JSON file, so the `crsctl` command (main() below, installed into a bin
directory by :meth:`Crs.install_cli`) and a test's own calls share one cluster.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

BASE_ATTRS = {
    "ACTION_SCRIPT": "", "AUTO_START": "restore", "CHECK_INTERVAL": "60", "CHECK_TIMEOUT": "0",
    "CLEAN_TIMEOUT": "0", "DESCRIPTION": "", "HOSTING_MEMBERS": "", "PLACEMENT": "balanced",
    "RELOCATE_BY_DEPENDENCY": "1", "RESTART_ATTEMPTS": "1", "SCRIPT_TIMEOUT": "60",
    "START_DEPENDENCIES": "", "START_TIMEOUT": "0", "STOP_DEPENDENCIES": "", "STOP_TIMEOUT": "0",
    "UPTIME_THRESHOLD": "1h", "CARDINALITY": "1",
}
STATES = {0: "ONLINE", 1: "OFFLINE", 2: "OFFLINE", 3: "UNKNOWN", 4: "INTERMEDIATE", 5: "FAILED"}
RUNNING = ("ONLINE", "INTERMEDIATE", "UNKNOWN")
TAGS = ("CRS_WARNING:", "CRS_ERROR:", "CRS_PROGRESS:")


class CrsError(Exception):
    """A refused crsctl command: message in Clusterware's CRS-NNNN style, exit code 1."""


def split_attrs(text: str) -> list[tuple[str, str]]:
    """`-attr "A=v,B=w x,C=hard(a:b) pullup(c)"`: commas inside parentheses or single quotes do
    not split; names are upper-cased (Clusterware's are), values keep their case."""
    parts, depth, quote, cur = [], 0, False, ""
    for ch in text:
        if ch == "'" :
            quote = not quote
            continue
        if ch == "," and depth == 0 and not quote:
            parts.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    if cur.strip():
        parts.append(cur)
    out = []
    for p in parts:
        name, eq, value = p.partition("=")
        if not eq or not name.strip():
            raise CrsError(f"CRS-0158: Invalid attribute specification '{p}'.")
        out.append((name.strip().upper(), value.strip()))
    return out


def parse_deps(text: str) -> list[tuple[str, set, str]]:
    """`hard(intermediate:ora.x.vip) pullup(y)` -> [("hard", {"intermediate"}, "ora.x.vip"),
    ("pullup", set(), "y")]."""
    deps = []
    for kind, inner in re.findall(r"(\w+)\(([^)]*)\)", text):
        for target in inner.replace(",", " ").split():
            *mods, name = target.split(":")
            deps.append((kind, set(mods), name))
    return deps


class Crs:
    """The cluster. `members`: name -> {"argv": prefix that runs a command on that member,
    "env": its environment, "run_dir": wiped when the member comes back (its /run)}."""

    def __init__(self, state: Path, members: dict | None = None):
        self.path = Path(state)
        if members is not None:
            self._save({"members": {m: {**v, "up": True} for m, v in members.items()},
                        "types": {"cluster_resource": {"base": None, "attrs": {}},
                                  "local_resource": {"base": None, "attrs": {}}},
                        "resources": {}, "journal": []})

    # -- state

    def _load(self) -> dict:
        return json.loads(self.path.read_text())

    def _save(self, st: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(st, indent=1))
        tmp.replace(self.path)

    @contextmanager
    def _state(self):
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.st = self._load()
            try:
                yield self.st
            finally:
                self._save(self.st)

    def state(self) -> dict:
        return self._load()

    def where(self, name: str) -> tuple[str, str | None]:
        r = self._load()["resources"][name]
        return r["state"], r["node"]

    def journal(self, resource: str | None = None, action: str | None = None) -> list[dict]:
        return [j for j in self._load()["journal"]
                if (resource is None or j["resource"] == resource)
                and (action is None or j["action"] == action)]

    # -- the crsctl command line

    def crsctl(self, argv: list[str]) -> tuple[int, str]:
        """One crsctl command: (exit code, what it prints)."""
        out: list[str] = []
        with self._state():
            self._out = out
            try:
                self._dispatch(list(argv))
                rc = 0
            except CrsError as e:
                out.append(f"{e}\n")
                rc = 1
            self.st.setdefault("commands", []).append({"argv": list(argv), "rc": rc,
                                                       "out": "".join(out)})
        return rc, "".join(out)

    def commands(self) -> list[dict]:
        """Every crsctl command run so far: argv, rc, out."""
        return self._load().get("commands", [])

    def _dispatch(self, a: list[str]) -> None:
        if len(a) < 2:
            raise CrsError("CRS-4000: Command not recognized: crsctl " + " ".join(a))
        verb, noun, rest = a[0], a[1], a[2:]
        name = rest[0] if rest and not rest[0].startswith("-") else None
        opts = self._options(rest[1:] if name else rest)
        if (verb, noun) == ("add", "type"):
            self._add_type(name, opts)
        elif (verb, noun) == ("add", "resource"):
            self._add_resource(name, opts)
        elif (verb, noun) == ("modify", "resource"):
            self._res(name)["attrs"].update(self._checked_attrs(self._res(name)["type"],
                                                                opts.get("-attr", "")))
        elif (verb, noun) == ("start", "resource"):
            self._start(name, opts.get("-n"), env=self._env_opt(opts))
        elif (verb, noun) == ("stop", "resource"):
            self._stop(name, force="-f" in opts)
        elif (verb, noun) == ("relocate", "resource"):
            self._relocate(name, opts.get("-n"), force="-f" in opts)
        elif (verb, noun) == ("status", "resource"):
            self._status(name, full="-f" in opts)
        elif (verb, noun) == ("setperm", "resource"):
            self._res(name)["owner"] = opts.get("-o", "")
        elif (verb, noun) == ("delete", "resource"):
            r = self._res(name)
            if r["state"] in RUNNING and "-f" not in opts:
                raise CrsError(f"CRS-2730: Resource '{name}' is running; use -f to delete it")
            if r["state"] in RUNNING:
                self._stop(name, force=True)
            del self.st["resources"][name]
        else:
            raise CrsError("CRS-4000: Command not recognized: crsctl " + " ".join(a))

    @staticmethod
    def _options(rest: list[str]) -> dict:
        opts, i = {}, 0
        while i < len(rest):
            o = rest[i]
            if o in ("-f", "-v", "-p", "-t"):
                opts[o] = True
                i += 1
            elif o.startswith("-") and i + 1 < len(rest):
                opts[o] = rest[i + 1]
                i += 2
            else:
                raise CrsError(f"CRS-4000: Command not recognized: '{o}'")
        return opts

    @staticmethod
    def _env_opt(opts: dict) -> dict:
        return dict(split_attrs(opts["-env"])) if "-env" in opts else {}

    def _res(self, name: str | None) -> dict:
        if name not in self.st["resources"]:
            raise CrsError(f"CRS-2613: Could not find resource '{name}'.")
        return self.st["resources"][name]

    # -- types and resources

    def _type_attrs(self, tname: str) -> dict:
        """Every attribute a resource of this type has: name -> default (None: REQUIRED)."""
        attrs = dict(BASE_ATTRS)
        chain = []
        while tname:
            t = self.st["types"][tname]
            chain.append(t)
            tname = t["base"]
        for t in reversed(chain):
            attrs.update(t["attrs"])
        return attrs

    def _add_type(self, name, opts) -> None:
        base = opts.get("-basetype")
        if not name or base not in self.st["types"]:
            raise CrsError(f"CRS-2518: Invalid base type '{base}'")
        attrs, cur = {}, None
        for k, v in split_attrs(opts.get("-attr", "")):
            if k == "ATTRIBUTE":
                cur = v.upper()
                attrs[cur] = ""
            elif cur is None:
                raise CrsError(f"CRS-0158: '{k}' before any ATTRIBUTE")
            elif k == "DEFAULT_VALUE":
                attrs[cur] = v
            elif k == "FLAGS" and "REQUIRED" in v.split("|"):
                attrs[cur] = None
            elif k not in ("TYPE", "FLAGS", "DESCRIPTION"):
                raise CrsError(f"CRS-0158: unknown attribute property '{k}'")
        self.st["types"][name] = {"base": base, "attrs": attrs}

    def _checked_attrs(self, tname: str, text: str) -> dict:
        known = self._type_attrs(tname)
        got = {}
        for k, v in split_attrs(text):
            if k not in known:
                raise CrsError(f"CRS-0160: The attribute '{k}' is not supported in this "
                               f"resource type.")
            if len(v) > 254:
                raise CrsError(f"CRS-0161: The value of attribute '{k}' is too long.")
            got[k] = v
        return got

    def _add_resource(self, name, opts) -> None:
        tname = opts.get("-type")
        if tname not in self.st["types"]:
            raise CrsError(f"CRS-2518: Invalid directory path / type '{tname}'")
        if name in self.st["resources"]:
            raise CrsError(f"CRS-2518: Resource '{name}' already exists.")
        given = self._checked_attrs(tname, opts.get("-attr", ""))
        missing = [k for k, d in self._type_attrs(tname).items() if d is None and k not in given]
        if missing:
            raise CrsError(f"CRS-0162: A value for the required attribute '{missing[0]}' "
                           f"is missing.")
        if not given.get("ACTION_SCRIPT"):
            raise CrsError("CRS-2518: ACTION_SCRIPT is required for a cluster_resource here")
        self.st["resources"][name] = {"type": tname, "attrs": given, "state": "OFFLINE",
                                      "node": None, "target": "OFFLINE", "owner": "",
                                      "restarts": 0, "last_check": 0.0,
                                      "local": self._root(tname) == "local_resource",
                                      "nodes": {}}

    def _root(self, tname: str) -> str:
        while self.st["types"][tname]["base"]:
            tname = self.st["types"][tname]["base"]
        return tname

    def attributes(self, name: str) -> dict:
        """The resource's full attribute set, as exported to its script."""
        r = self.st["resources"][name]
        attrs = {k: ("" if d is None else d) for k, d in self._type_attrs(r["type"]).items()}
        attrs.update(r["attrs"])
        attrs.update({"NAME": name, "TYPE": r["type"]})
        return attrs

    # -- running an action

    def _timeout(self, attrs: dict, action: str) -> float:
        word = {"start": "START", "stop": "STOP", "check": "CHECK", "clean": "CLEAN"}[action]
        t = float(attrs.get(f"{word}_TIMEOUT") or 0)
        return t if t > 0 else float(attrs.get("SCRIPT_TIMEOUT") or 60)

    def _run(self, name: str, member: str, action: str, env: dict | None = None) -> int:
        attrs = self.attributes(name)
        m = self.st["members"][member]
        full = dict(m["env"])
        full.update({f"_CRS_{k}": v for k, v in attrs.items()})
        full.update({f"_CRS_{k}": v for k, v in (env or {}).items()})
        timeout = self._timeout(attrs, action)
        t0 = time.time()
        p = subprocess.Popen(m["argv"] + [attrs["ACTION_SCRIPT"], action], env=full,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, stdin=subprocess.DEVNULL)
        try:
            out, err = p.communicate(timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            rc = None  # Clusterware: the action timed out
        for line in out.splitlines():
            for tag in TAGS:
                if line.startswith(tag):
                    self._out.append(line[len(tag):].strip() + "\n")
        self.st["journal"].append({"t": t0, "resource": name, "member": member,
                                   "action": action, "rc": rc, "seconds": time.time() - t0,
                                   "stdout": out, "stderr": err})
        if self.hook:
            self.hook(self, name, member, action, rc)
        return rc

    hook = None  # callable(crs, resource, member, action, rc) after every action (tests)

    # -- placement and dependencies

    def _hard(self, r: dict, which: str) -> list[tuple[set, str]]:
        return [(mods, t) for kind, mods, t in parse_deps(r["attrs"].get(which, "")) if kind == "hard"]

    def _up(self) -> list[str]:
        return [m for m, v in self.st["members"].items() if v["up"]]

    def _candidates(self, name: str) -> list[str]:
        a = self.attributes(name)
        hosting = a["HOSTING_MEMBERS"].split()
        up = self._up()
        if a["PLACEMENT"] in ("favored", "restricted") and hosting:
            order = [m for m in hosting if m in up]
            if a["PLACEMENT"] == "favored":
                order += [m for m in up if m not in order]
            return order
        return up

    def _running_on(self, name: str, intermediate: bool) -> str | None:
        r = self.st["resources"].get(name)
        ok = ("ONLINE", "INTERMEDIATE") if intermediate else ("ONLINE",)
        return r["node"] if r and r["state"] in ok else None

    # -- local_resource: one instance on every member (HOSTING_MEMBERS, if set), never moved

    def _members_for(self, name: str) -> list[str]:
        hosting = self.attributes(name)["HOSTING_MEMBERS"].split()
        return [m for m in self._up() if not hosting or m in hosting]

    def _start_local(self, r: dict, name: str, member: str | None, env=None) -> None:
        r["target"] = "ONLINE"
        failed = []
        for m in [member] if member else self._members_for(name):
            if r["nodes"].get(m) in RUNNING:
                continue
            self._out.append(f"CRS-2672: Attempting to start '{name}' on '{m}'\n")
            state = "OFFLINE"
            if self._run(name, m, "start", env) == 0:
                state = STATES.get(self._run(name, m, "check", env), "UNKNOWN")
            if state not in RUNNING:
                self._run(name, m, "clean", env)
                failed.append(m)
                state = "OFFLINE"
            r["nodes"][m] = state
            r.setdefault("checked", {})[m] = time.time()
        r["state"] = "ONLINE" if any(s in RUNNING for s in r["nodes"].values()) else "OFFLINE"
        if failed:
            raise CrsError(f"CRS-2674: Start of '{name}' on {', '.join(failed)} failed")

    def _stop_local(self, r: dict, name: str, keep_target: bool) -> None:
        if not keep_target:
            r["target"] = "OFFLINE"
        for m, state in sorted(r["nodes"].items()):
            if state not in RUNNING:
                continue
            if self._run(name, m, "stop") != 0:
                self._run(name, m, "clean")
                raise CrsError(f"CRS-2675: Stop of '{name}' on '{m}' failed")
            r["nodes"][m] = "OFFLINE"
        r["state"] = "OFFLINE"

    def _check_local(self, r: dict, name: str, now: float) -> None:
        every = float(self.attributes(name)["CHECK_INTERVAL"] or 60)
        for m, state in list(r["nodes"].items()):
            if state not in ("ONLINE", "INTERMEDIATE") or m not in self._up():
                continue
            if now - r.setdefault("checked", {}).get(m, 0) < every:
                continue
            r["checked"][m] = now
            got = STATES.get(self._run(name, m, "check"), "UNKNOWN")
            if got in RUNNING:
                r["nodes"][m] = got
                continue
            if got == "FAILED":
                self._run(name, m, "clean")
            r["nodes"][m] = "OFFLINE"
            try:  # a local resource is restarted where it runs, never moved
                self._start_local(r, name, m)
            except CrsError as e:
                self._out.append(f"{e}\n")

    # -- cluster resources

    def _start(self, name: str, member: str | None = None, env=None) -> None:
        r = self._res(name)
        if r["local"]:
            return self._start_local(r, name, member, env)
        if r["state"] in RUNNING:
            self._out.append(f"CRS-5702: Resource '{name}' is already running on "
                             f"'{r['node']}'\n")
            return
        r["target"] = "ONLINE"
        cands = [member] if member else self._candidates(name)
        if member and member not in self._up():
            raise CrsError(f"CRS-2527: Unable to start '{name}' because server '{member}' "
                           f"is not online")
        for mods, target in self._hard(r, "START_DEPENDENCIES"):
            self._res(target)
            at = self._running_on(target, "intermediate" in mods)
            if at is None and self.st["resources"][target]["state"] in RUNNING:
                raise CrsError(f"CRS-2683: '{target}' is {self.st['resources'][target]['state']}"
                               f"; '{name}' needs it ONLINE")
            if "global" in mods:
                if at is None:
                    self._start(target)
                continue
            if at is None:
                self._start(target)
                at = self._running_on(target, "intermediate" in mods)
            cands = [c for c in cands if c == at]
        if not cands:
            raise CrsError(f"CRS-2640: Required resource for '{name}' is not running on any "
                           f"placement candidate")
        for m in cands:
            self._out.append(f"CRS-2672: Attempting to start '{name}' on '{m}'\n")
            rc = self._run(name, m, "start", env)
            if rc == 0:
                code = self._run(name, m, "check", env)
                state = STATES.get(code, "UNKNOWN")
                if state in RUNNING:
                    r.update(state=state, node=m, last_check=time.time())
                    self._out.append(f"CRS-2676: Start of '{name}' on '{m}' succeeded\n")
                    return
            self._out.append(f"CRS-2674: Start of '{name}' on '{m}' failed\n")
            self._run(name, m, "clean", env)
        r.update(state="OFFLINE", node=None)
        raise CrsError(f"CRS-2632: There are no more servers to try to place resource "
                       f"'{name}' on that would satisfy its placement policy")

    def _dependents(self, name: str) -> list[str]:
        return [d for d, r in self.st["resources"].items()
                if r["state"] in RUNNING and any(t == name for _, t in self._hard(r, "STOP_DEPENDENCIES"))]

    def _stop(self, name: str, force: bool, keep_target: bool = False) -> list[str]:
        """Stop `name` (its dependents first, which needs force); returns the dependents
        stopped, in the order they were."""
        r = self._res(name)
        if r["local"]:
            self._stop_local(r, name, keep_target)
            return []
        stopped = []
        for d in self._dependents(name):
            if not force:
                raise CrsError(f"CRS-2529: Unable to act on '{name}' because that would require "
                               f"stopping or relocating '{d}', but the force option was not "
                               f"specified")
            stopped += self._stop(d, force, keep_target) + [d]
        if not keep_target:
            r["target"] = "OFFLINE"
        if r["state"] not in RUNNING:
            return stopped
        m = r["node"]
        self._out.append(f"CRS-2673: Attempting to stop '{name}' on '{m}'\n")
        rc = self._run(name, m, "stop")
        if rc != 0:
            self._run(name, m, "clean")
            r.update(state="UNKNOWN" if rc is None else "FAILED")
            raise CrsError(f"CRS-2675: Stop of '{name}' on '{m}' failed")
        self._out.append(f"CRS-2677: Stop of '{name}' on '{m}' succeeded\n")
        r.update(state="OFFLINE", node=None)
        return stopped

    def _relocate(self, name: str, member: str | None, force: bool) -> None:
        r = self._res(name)
        if r["state"] not in RUNNING:
            raise CrsError(f"CRS-2547: Resource '{name}' is not running")
        frm = r["node"]
        if member is None:
            others = [m for m in self._candidates(name) if m != frm]
            member = others[0] if others else None
        if member is None or member == frm:
            raise CrsError(f"CRS-5702: Resource '{name}' is already running on '{frm}'")
        moved = self._stop(name, force, keep_target=True)
        self._start(name, member)
        for d in moved:
            if self.attributes(d)["RELOCATE_BY_DEPENDENCY"] == "1":
                self._start(d)

    def _status(self, name: str | None, full: bool) -> None:
        names = [name] if name else sorted(self.st["resources"])
        for n in names:
            r = self._res(n)
            state = r["state"] + (f" on {r['node']}" if r["node"] else "")
            if r["local"]:
                state = ", ".join(f"{s} on {m}" for m, s in sorted(r["nodes"].items())) or "OFFLINE"
            if full:
                for k, v in sorted(self.attributes(n).items()):
                    self._out.append(f"{k}={v}\n")
            else:
                self._out.append(f"NAME={n}\nTYPE={r['type']}\n")
            self._out.append(f"TARGET={r['target']}\nSTATE={state}\n\n")

    # -- what crsd does on its own

    def check_all(self, now: float | None = None) -> None:
        """One pass of the check loop: every running resource whose CHECK_INTERVAL elapsed is
        checked, and recovered when the check says so."""
        with self._state():
            self._out = []
            now = time.time() if now is None else now
            for name, r in list(self.st["resources"].items()):
                if r["local"]:
                    self._check_local(r, name, now)
                    continue
                if r["state"] not in ("ONLINE", "INTERMEDIATE") or not r["node"]:
                    continue
                if now - r["last_check"] < float(self.attributes(name)["CHECK_INTERVAL"] or 60):
                    continue
                r["last_check"] = now
                state = STATES.get(self._run(name, r["node"], "check"), "UNKNOWN")
                if state in RUNNING:
                    r["state"] = state
                    continue
                if state == "FAILED":
                    self._run(name, r["node"], "clean")
                self._recover(name)

    def _recover(self, name: str) -> None:
        r = self.st["resources"][name]
        at = r["node"]
        moved = []
        for d in self._dependents(name):
            moved += self._stop(d, True, keep_target=True) + [d]
        r.update(state="OFFLINE", node=None)
        if r["restarts"] < int(self.attributes(name)["RESTART_ATTEMPTS"] or 0) and at in self._up():
            r["restarts"] += 1
            self._try_start(name, at)
        else:
            r["restarts"] = 0
            self._try_start(name, None, avoid=at)
        for d in moved:
            self._try_start(d)

    def _try_start(self, name, member=None, avoid=None) -> None:
        try:
            if member is None and avoid is not None:
                others = [m for m in self._candidates(name) if m != avoid]
                member = others[0] if others else None
                if member is None:
                    return
            self._start(name, member)
        except CrsError as e:
            self._out.append(f"{e}\n")

    def member_down(self, member: str) -> list[str]:
        """The member is evicted: what ran there is OFFLINE (nothing runs on a dead node), then
        started elsewhere, dependency targets before their dependents. Returns crsd's
        messages."""
        with self._state():
            self._out = []
            self.st["members"][member]["up"] = False
            for r in self.st["resources"].values():
                if r["local"] and member in r["nodes"]:
                    r["nodes"][member] = "OFFLINE"
            lost = [n for n, r in self.st["resources"].items()
                    if r["node"] == member and r["state"] in RUNNING]
            for n in lost:
                self.st["resources"][n].update(state="OFFLINE", node=None)
            pending = list(lost)
            while pending:
                ready = [n for n in pending
                         if not any(t in pending for _, t in self._hard(self.st["resources"][n],
                                                                        "START_DEPENDENCIES"))]
                for n in ready or pending[:1]:
                    pending.remove(n)
                    if self.st["resources"][n]["target"] == "ONLINE":
                        self._try_start(n)
            return list(self._out)

    def member_up(self, member: str) -> None:
        """The member rebooted and rejoined: its /run is empty again."""
        with self._state():
            m = self.st["members"][member]
            m["up"] = True
            if m.get("run_dir"):
                for f in Path(m["run_dir"]).glob("*"):
                    if f.is_file():
                        f.unlink()
            self._out = []
            for name, r in self.st["resources"].items():
                if r["local"] and r["target"] == "ONLINE":
                    try:
                        self._start_local(r, name, member)
                    except CrsError as e:
                        self._out.append(f"{e}\n")

    # -- the command

    def install_cli(self, bindir: Path) -> Path:
        """A `crsctl` in bindir that acts on this cluster."""
        bindir.mkdir(parents=True, exist_ok=True)
        exe = bindir / "crsctl"
        exe.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, "
                       f"{str(Path(__file__).parent)!r})\nimport crs\n"
                       f"sys.exit(crs.main({str(self.path)!r}, sys.argv[1:]))\n")
        exe.chmod(0o755)
        return exe


def main(state: str, argv: list[str]) -> int:
    rc, out = Crs(Path(state)).crsctl(argv)
    sys.stdout.write(out)
    return rc


# An ACTION_SCRIPT playing Oracle's ora.<node>.vip / ora.scanN.vip (orarootagent): it owns the
# address on the OS. USR_ORA_VIP is the address, HOME_MEMBER the node it belongs to (away from
# home it is INTERMEDIATE, as a failed-over node VIP is); CRS_LAB_MEMBER says where it runs.
ORA_VIP = r'''#!/usr/bin/python3
import os, subprocess, sys
ip, dev = os.environ["_CRS_USR_ORA_VIP"], os.environ.get("_CRS_USR_ORA_IF") or "eth0"
home, here = os.environ.get("_CRS_HOME_MEMBER", ""), os.environ.get("CRS_LAB_MEMBER", "")
log = os.environ.get("CRS_LAB_ORA_LOG")
def present():
    out = subprocess.run(["ip", "-o", "addr", "show", "dev", dev], capture_output=True, text=True).stdout
    return f" {ip}/" in out
def note(what):
    if log:
        with open(log, "a") as f:
            f.write(f"{here} {ip} {what}\n")
action = sys.argv[1]
if action == "start":
    subprocess.run(["ip", "addr", "replace", f"{ip}/24", "dev", dev], check=True)
    subprocess.run(["arping", "-U", "-c", "1", "-I", dev, ip], capture_output=True)
    note("add")
elif action in ("stop", "clean"):
    if present():
        subprocess.run(["ip", "addr", "del", f"{ip}/24", "dev", dev], check=True)
        note("del")
elif action == "check":
    sys.exit((4 if home and home != here else 0) if present() else 1)
'''
