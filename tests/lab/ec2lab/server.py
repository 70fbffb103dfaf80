"""The lab's EC2: one process (``python3 -m ec2lab.server``) started and stopped by ``Ec2Lab``.

It serves, on 127.0.0.1 only:

* the **endpoint** port (what agents use): fault injection -> call log -> IAM stand-in (deny
  list, DryRun) -> moto's EC2/STS with the ``fidelity`` fixes;
* the **control** port (the lab's own port, never counted, never faulted, no IAM): ``/_lab/...``
  JSON control calls, and moto itself for the lab's bookkeeping (DryRun still honoured);

and, inside the node namespaces it is told about (``POST /_lab/nodes``):

* an IMDSv2 server on 169.254.169.254:80 reading live state from moto;
* a relay on 127.0.0.1:<endpoint port> to the host's endpoint, so the same URL works there;

plus the data plane: /32 routes in the fabric namespace mirroring which ENI holds which private
IP (polled every 50 ms and after each mutating call), optionally lagging like EC2, and the VPC
route tables' routes to ENIs (one kernel table per route table, chosen by the source subnet).

On start it prints one JSON line ``{"endpoint": PORT, "control": PORT}`` to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import ipaddress
import json
import os
import re
import secrets
import socket
import subprocess
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs

from standin import (MACHINES, NOT_SHARED, MetadataHandler, announce, log, pid_alive,
                     power_off, serve_time, shared_control, watch_machines)

from . import nssock

ACCOUNT = "123456789012"
LAB_KEY = "lab"  # the lab's own access key: never counted, never denied
EC2_STATE_CODES = {"pending": 0, "running": 16, "stopping": 64, "stopped": 80}
MOTO = threading.RLock()  # moto is not thread-safe; every touch of its state holds this


# ---------------------------------------------------------------- moto


def moto_app():
    """moto's server app (all services, dispatched on the SigV4 credential scope), patched."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from . import fidelity
    fidelity.apply()
    return DomainDispatcherApplication(create_backend_app)


def backend(region: str):
    from moto.ec2.models import ec2_backends
    return ec2_backends[ACCOUNT][region]


def dry_run_actions() -> frozenset[str]:
    """EC2 actions that take DryRun (from botocore's model of the real API)."""
    import botocore.session
    model = botocore.session.get_session().get_service_model("ec2")
    out = set()
    for name in model.operation_names:
        shape = model.operation_model(name).input_shape
        if shape is not None and "DryRun" in shape.members:
            out.add(name)
    return frozenset(out)


# ---------------------------------------------------------------- requests


class Request:
    """What the gate needs to know about one API request (the body stays readable)."""

    def __init__(self, environ: dict):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(self.body)
        params = parse_qs(environ.get("QUERY_STRING", ""))
        ctype = environ.get("CONTENT_TYPE", "")
        if self.body and "x-www-form-urlencoded" in ctype:
            params.update(parse_qs(self.body.decode("utf-8", "replace")))
        self.params = {k: v[0] for k, v in params.items()}
        auth = environ.get("HTTP_AUTHORIZATION", "")
        m = re.search(r"Credential=([^/,\s]+)/[^/]*/[^/]*/([^/]+)/", auth)
        self.key, self.service = (m.group(1), m.group(2)) if m else (None, None)
        self.action = self.params.get("Action") or environ.get("HTTP_X_AMZ_TARGET", "")
        self.dry_run = self.params.get("DryRun", "false").lower() == "true"


def error_body(service: str | None, code: str, message: str) -> bytes:
    """An error in the service's own XML format (EC2: Response/Errors; STS: ErrorResponse)."""
    rid = str(uuid.uuid4())
    if service == "sts":
        return (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                f"<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
                f"<RequestId>{rid}</RequestId></ErrorResponse>").encode()
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}'
            f"</Code><Message>{message}</Message></Error></Errors><RequestID>{rid}</RequestID>"
            f"</Response>").encode()


def respond(start_response, status: int, body: bytes, ctype: str = "text/xml") -> list[bytes]:
    start_response(status_line(status),
                   [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


class Reset(ConnectionResetError):
    """Raised after the connection was reset: werkzeug drops it without answering."""


# ---------------------------------------------------------------- faults, IAM, call log


class Faults:
    """Injected failures. A rule: kind (throttle|http500|reset|slow|authfailure), count (None =
    until cleared), actions (None = all), keys (None = all callers), delay (slow)."""

    KINDS = ("throttle", "http500", "reset", "slow", "authfailure")

    def __init__(self):
        self.lock = threading.Lock()
        self.rules: list[dict] = []

    def set(self, rules: list[dict]) -> None:
        for r in rules:
            if r.get("kind") not in self.KINDS:
                raise ValueError(f"unknown fault kind {r.get('kind')!r}")
        with self.lock:
            self.rules = [dict(r) for r in rules]

    def take(self, req: Request) -> dict | None:
        """The rule that applies to this request (consuming one of its count), or None."""
        with self.lock:
            for r in self.rules:
                if r.get("actions") and req.action not in r["actions"]:
                    continue
                if r.get("keys") and req.key not in r["keys"]:
                    continue
                if r.get("count") is not None:
                    if r["count"] <= 0:
                        continue
                    r["count"] -= 1
                return dict(r)
        return None


class Iam:
    """The deny list. A rule: action ("*" = any), key (None = any caller)."""

    def __init__(self):
        self.rules: list[dict] = []

    def denied(self, req: Request) -> bool:
        return any(r["action"] in ("*", req.action) and r.get("key") in (None, req.key)
                   for r in self.rules)


class CallLog:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls: list[dict] = []

    def add(self, entry: dict) -> None:
        with self.lock:
            self.calls.append(entry)

    def since(self, t: float | None) -> list[dict]:
        with self.lock:
            return [c for c in self.calls if t is None or c["t"] >= t]


# ---------------------------------------------------------------- the gate (endpoint app)


class Gate:
    """WSGI app of the endpoint: faults -> IAM/DryRun -> moto, every call logged."""

    def __init__(self, cloud: "Cloud", counted: bool):
        self.cloud, self.counted = cloud, counted

    def __call__(self, environ, start_response):
        t0 = time.monotonic()
        req = Request(environ)
        entry = {"t": t0, "action": req.action, "key": req.key, "service": req.service,
                 "dry_run": req.dry_run, "status": None, "fault": None}
        counted = self.counted and req.key != LAB_KEY
        try:
            status, headers, body = self.handle(environ, req, entry)
            if counted:  # the lab's own calls (LAB_KEY, control) are never slowed
                serve_time(req.action.startswith(("Describe", "Get")))
        finally:
            entry["duration"] = time.monotonic() - t0
            if counted:
                self.cloud.calls.add(entry)
        entry["status"] = status
        headers = [h for h in headers if h[0].lower() != "content-length"]
        start_response(status_line(status), headers + [("Content-Length", str(len(body)))])
        return [body]

    def handle(self, environ, req: Request, entry: dict):
        cloud = self.cloud
        fault = cloud.faults.take(req) if self.counted else None
        if fault:
            entry["fault"] = fault["kind"]
            if fault["kind"] == "slow":
                time.sleep(float(fault.get("delay") or 1.0))
            elif fault["kind"] == "reset":
                nssock.reset(environ["werkzeug.socket"])
                raise Reset()
            elif fault["kind"] == "authfailure":
                # What EC2 says to credentials it no longer accepts (e.g. a revoked session).
                return 401, xml_headers(), error_body(
                    req.service, "AuthFailure", "AWS was not able to validate the provided "
                                                "access credentials")
            elif fault["kind"] == "throttle":
                code = "Throttling" if req.service == "sts" else "RequestLimitExceeded"
                return 503, xml_headers(), error_body(req.service, code,
                                                      "Request limit exceeded.")
            else:
                code = "InternalFailure" if req.service == "sts" else "InternalError"
                return 500, xml_headers(), error_body(
                    req.service, code, "An internal error has occurred")
        if req.key != LAB_KEY and cloud.iam.denied(req):
            if req.service == "sts":
                return 403, xml_headers(), error_body(
                    "sts", "AccessDenied", f"User is not authorized to perform: "
                                           f"sts:{req.action}")
            return 403, xml_headers(), error_body(
                "ec2", "UnauthorizedOperation", "You are not authorized to perform this "
                                                "operation.")
        if req.service == "ec2" and req.dry_run and req.action in cloud.dry_run_actions:
            # EC2 checks permissions and stops: nothing is changed.
            return 412, xml_headers(), error_body(
                "ec2", "DryRunOperation", "Request would have succeeded, but DryRun flag is "
                                          "set.")
        return cloud.call_moto(environ, req)


def status_line(status: int) -> str:
    return {200: "200 OK", 400: "400 Bad Request", 403: "403 Forbidden",
            404: "404 Not Found", 412: "412 Precondition Failed",
            500: "500 Internal Server Error", 503: "503 Service Unavailable"}.get(
        status, f"{status} Status")


def xml_headers() -> list[tuple[str, str]]:
    return [("Content-Type", "text/xml;charset=UTF-8")]


# ---------------------------------------------------------------- IMDS


class ImdsNode:
    """One node's instance metadata service (IMDSv2 only: HttpTokens=required)."""

    def __init__(self, cloud: "Cloud", spec: dict):
        self.cloud = cloud
        self.name = spec["name"]
        self.instance_id = spec["instance_id"]
        self.key, self.secret = spec["key"], spec.get("secret", "lab-secret")
        self.role = spec.get("role", "cloudha-lab-role")
        self.tokens: dict[str, float] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    # -- tokens

    def new_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(40)
        with self.lock:
            self.tokens[token] = time.monotonic() + ttl
        return token

    def valid(self, token: str | None) -> bool:
        with self.lock:
            exp = self.tokens.get(token or "")
            return exp is not None and exp > time.monotonic()

    def expire(self) -> None:
        with self.lock:
            self.tokens.clear()

    # -- answers

    def answer(self, path: str):
        """(status, body, content type) for GET path (after /latest/)."""
        with MOTO:
            data = self.cloud.instance_view(self.instance_id)
        if data is None:
            return 404, "Not Found", "text/plain"
        path = path.rstrip("/") if path not in ("meta-data/", "dynamic/") else path
        tree = self.tree(data)
        value = tree.get(path)
        if value is None and path + "/" in tree:
            value = tree[path + "/"]
        if value is None:
            return 404, "Not Found", "text/plain"
        if isinstance(value, (dict, list)):
            return 200, json.dumps(value, indent=2), "text/plain"
        return 200, value, "text/plain"

    def tree(self, d: dict) -> dict:
        region, az = self.cloud.region, d["az"]
        primary = d["enis"][0] if d["enis"] else None
        t = {
            "meta-data/": "ami-id\nhostname\niam/\ninstance-id\ninstance-type\nlocal-hostname\n"
                          "local-ipv4\nmac\nnetwork/\nplacement/\nservices/",
            "meta-data/ami-id": d["ami"],
            "meta-data/instance-id": self.instance_id,
            "meta-data/instance-type": d["type"],
            "meta-data/placement": "availability-zone\nregion",
            "meta-data/placement/availability-zone": az,
            "meta-data/placement/region": region,
            "meta-data/services": "domain\npartition",
            "meta-data/services/domain": "amazonaws.com",
            "meta-data/services/partition": "aws",
            "meta-data/network": "interfaces/",
            "meta-data/network/interfaces": "macs/",
            "meta-data/network/interfaces/macs": "\n".join(e["mac"] + "/" for e in d["enis"]),
            "meta-data/iam": "info\nsecurity-credentials/",
            "meta-data/iam/info": {
                "Code": "Success", "LastUpdated": iso(time.time()),
                "InstanceProfileArn": f"arn:aws:iam::{ACCOUNT}:instance-profile/{self.role}",
                "InstanceProfileId": "AIPALAB" + self.name.upper()},
            "meta-data/iam/security-credentials": self.role,
            f"meta-data/iam/security-credentials/{self.role}": {
                "Code": "Success", "LastUpdated": iso(time.time()), "Type": "AWS-HMAC",
                "AccessKeyId": self.key, "SecretAccessKey": self.secret,
                "Token": f"lab-session-token-{self.name}",
                "Expiration": iso(time.time() + 6 * 3600)},
            "dynamic/": "instance-identity/",
            "dynamic/instance-identity": "document",
            "dynamic/instance-identity/document": {
                "accountId": ACCOUNT, "architecture": "x86_64", "availabilityZone": az,
                "imageId": d["ami"], "instanceId": self.instance_id,
                "instanceType": d["type"], "pendingTime": iso(d["launched"]),
                "privateIp": primary["ips"][0] if primary else None, "region": region,
                "version": "2017-09-30"},
        }
        if primary:
            host = "ip-" + primary["ips"][0].replace(".", "-") + f".{region}.compute.internal"
            t.update({"meta-data/mac": primary["mac"], "meta-data/local-ipv4": primary["ips"][0],
                      "meta-data/hostname": host, "meta-data/local-hostname": host})
        for e in d["enis"]:
            base = f"meta-data/network/interfaces/macs/{e['mac']}"
            keys = {
                "device-number": str(e["device"]), "interface-id": e["id"],
                "local-ipv4s": "\n".join(e["ips"]), "mac": e["mac"], "owner-id": ACCOUNT,
                "subnet-id": e["subnet_id"], "subnet-ipv4-cidr-block": e["subnet_cidr"],
                "vpc-id": e["vpc_id"], "vpc-ipv4-cidr-block": e["vpc_cidr"],
                "vpc-ipv4-cidr-blocks": e["vpc_cidr"],
                "security-group-ids": "\n".join(e["groups"]),
            }
            t[base] = "\n".join(sorted(keys))
            t.update({f"{base}/{k}": v for k, v in keys.items()})
        return t


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ImdsHandler(MetadataHandler):
    server_version = "EC2ws"

    def do_PUT(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.rstrip("/") != "/latest/api/token":
            return self.send(404, "Not Found")
        if self.headers.get("X-Forwarded-For"):
            return self.send(403, "Forbidden")  # IMDS refuses proxied token requests
        try:
            ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= 21600:
            return self.send(400, "Bad Request")
        token = self.server.node.new_token(ttl)
        self.send(200, token, extra={"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})

    def do_GET(self):
        node: ImdsNode = self.server.node
        if not node.valid(self.headers.get("X-aws-ec2-metadata-token")):
            return self.send(401, "Unauthorized")
        if not self.path.startswith("/latest/"):
            return self.send(404, "Not Found")
        status, body, ctype = node.answer(self.path[len("/latest/"):])
        self.send(status, body, ctype)

    do_HEAD = do_GET


class NsHTTPServer(ThreadingHTTPServer):
    """An HTTP server on a socket that was bound elsewhere (in a node's namespace)."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, handler, node):
        super().__init__(sock.getsockname(), handler, bind_and_activate=False)
        self.socket.close()
        self.socket, self.node = sock, node


# ---------------------------------------------------------------- relay


class Relay:
    """Listens on 127.0.0.1:PORT inside a namespace and splices every connection to the host's
    127.0.0.1:PORT (the endpoint), so the EC2 URL is the same inside nodes as on the host."""

    def __init__(self, sock: socket.socket, port: int):
        self.sock, self.port = sock, port
        self.conns: set[socket.socket] = set()
        self.closed = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.closed:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                up.settimeout(None)
            except OSError:
                down.close()
                continue
            pair = Pair(self, down, up)
            threading.Thread(target=pair.pump, args=(down, up), daemon=True).start()
            threading.Thread(target=pair.pump, args=(up, down), daemon=True).start()

    def close(self):
        self.closed = True
        self.sock.close()
        for s in list(self.conns):
            s.close()


class Pair:
    """One relayed connection: two pumps; the second to finish closes both sockets."""

    def __init__(self, relay: Relay, down: socket.socket, up: socket.socket):
        self.relay, self.left, self.lock = relay, 2, threading.Lock()
        self.socks = (down, up)
        for s in self.socks:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            relay.conns.add(s)

    def pump(self, src: socket.socket, dst: socket.socket):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except ConnectionResetError:
            # Pass a reset on as a reset: a fault must look the same inside a node.
            try:
                nssock.reset(dst)
            except OSError:
                pass
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self.lock:
            self.left -= 1
            last = self.left == 0
        if last:
            for s in self.socks:
                self.relay.conns.discard(s)
                s.close()


# ---------------------------------------------------------------- data plane


class DataPlane:
    """Mirrors which ENI holds which private IP into /32 routes of the fabric namespace.

    A held IP: ``route IP/32 dev <veth of the ENI>`` plus a permanent neighbour entry (the VPC
    knows every ENI's MAC and never ARPs). An IP that was held once and is not any more: a
    blackhole route (EC2 drops it silently). History of the state is kept so IMDS and the routes
    can lag behind the API like EC2 does.

    Route tables (not lagged): every VPC route table is a kernel table of its own (100, 101, ...)
    holding its non-local routes: to an ENI of the lab -> ``via <ENI primary IP> dev <veth>
    onlink``, anything else -> blackhole; ``ip rule from <subnet CIDR> lookup <table>`` for
    every subnet (its explicit association, else its VPC's main table), so a client reaches an
    overlay IP only when its own subnet's table routes it, as in EC2.

    What is applied is checked against the kernel (after every change, and once a second):
    an entry the kernel does not hold is applied again on the next cycle, whatever lost it (a
    refused command, a batch `ip` gave up on, a flush by a device that went away)."""

    def __init__(self, cloud: "Cloud"):
        self.cloud = cloud
        self.fabric: str | None = None
        self.devs: dict[str, tuple[str, str]] = {}  # eni id -> (fabric dev, mac)
        self.applied: dict[str, tuple[str, str] | None] = {}  # ip -> (dev, mac) | None
        self.history: list[tuple[float, dict]] = []  # (t, {eni id: [ips]})
        self.lag = 0.0
        self.wake = threading.Event()
        self.synced = threading.Condition()
        self.generation = 0
        # Route tables: rtb id -> kernel table, (rtb, dest) -> target, subnet CIDR -> rtb/pref.
        self.kernel_tables: dict[str, int] = {}
        self.applied_routes: dict[tuple[str, str], tuple[str, str] | None] = {}
        self.applied_rules: dict[str, str] = {}
        self.rule_prefs: dict[str, int] = {}
        # control() (HTTP threads) and sync() (the loop) both change the maps above.
        self.lock = threading.Lock()
        self.verified_at = 0.0
        self.misses: dict[str, int] = {}  # what verify() found missing, times in a row
        threading.Thread(target=self.loop, daemon=True).start()

    def control(self, path: str, body: dict) -> dict:
        """The lab's /_lab/dataplane calls: the fabric, the veths of interfaces (id -> (dev,
        mac)), the lag; /_lab/dataplane/sync. Answers once the routes follow."""
        if path == "dataplane":
            with self.lock:
                if body.get("fabric"):
                    self.fabric = body["fabric"]
                for iface, (dev, mac) in (body.get("devs") or {}).items():
                    self.devs[iface] = (dev, mac)
                    # A booted-again machine's veth is new: what went through the old one is
                    # gone with it, so apply it again.
                    for ip in [ip for ip, t in self.applied.items() if t and t[0] == dev]:
                        del self.applied[ip]
                    for key in [k for k, t in self.applied_routes.items() if t and t[0] == dev]:
                        del self.applied_routes[key]
                if "lag" in body:
                    self.lag = float(body["lag"])
        elif path != "dataplane/sync":
            raise KeyError(path)
        self.wait_synced()
        return {"ok": True}

    def loop(self):
        while True:
            self.wake.wait(0.05)
            self.wake.clear()
            try:
                self.sync()
            except Exception as e:  # keep mirroring whatever one cycle hit
                log("dataplane:", repr(e))
            with self.synced:
                self.generation += 1
                self.synced.notify_all()

    def unplug(self, interfaces: list[str]) -> None:
        """A powered-off instance's links go down with it: delete the fabric's end of each of
        its interfaces' veths (which takes the machine's end too). A machine booted again is
        wired anew (control: devs)."""
        for iface in interfaces:
            dev = self.devs.get(iface, (None,))[0]
            if dev and self.fabric:
                subprocess.run(["ip", "-n", self.fabric, "link", "del", dev],
                               capture_output=True)

    def wait_synced(self, timeout: float = 5.0) -> None:
        """Returns after one full cycle that started after this call."""
        with self.synced:
            target = self.generation + 2
            self.wake.set()
            self.synced.wait_for(lambda: self.generation >= target, timeout)

    def snapshot(self) -> dict[str, list[str]]:
        with MOTO:
            out = {}
            for eni in backend(self.cloud.region).enis.values():
                attached = eni.instance is not None
                out[eni.id] = [a["PrivateIpAddress"] for a in eni.private_ip_addresses] \
                    if attached else []
            return out

    def view(self, lag: float) -> dict[str, list[str]]:
        """The state as it was `lag` seconds ago (the oldest known if older)."""
        cutoff = time.monotonic() - lag
        best = self.history[0][1] if self.history else {}
        for t, state in self.history:
            if t <= cutoff:
                best = state
        return best

    def sync(self):
        with self.lock:
            self._sync()

    def _sync(self):
        now = time.monotonic()
        state = self.snapshot()
        if not self.history or self.history[-1][1] != state:
            self.history.append((now, state))
        # Keep 120 s of history, and always the last entry older than that.
        old = [i for i, (t, _) in enumerate(self.history) if t < now - 120]
        if len(old) > 1:
            del self.history[:old[-1]]
        if self.fabric is None:
            return
        view = self.view(self.lag) if self.lag else state
        want: dict[str, tuple[str, str] | None] = {}
        for eni_id, ips in view.items():
            if eni_id in self.devs:
                for ip in ips:
                    want[ip] = self.devs[eni_id]
        for ip in self.applied:
            want.setdefault(ip, None)
        cmds = []
        for ip, target in want.items():
            if self.applied.get(ip, "new") == target:
                continue
            old = self.applied.get(ip)
            if old and (target is None or old[0] != target[0]):
                # Not `neigh del`: when the kernel has no such entry (the old veth is a
                # booted-again machine's new one) ip exits there, -force or not, and the
                # rest of the batch is never run. A flush that matches nothing succeeds.
                cmds.append(f"neigh flush to {ip} dev {old[0]} nud all")
            if target is None:
                cmds.append(f"route replace blackhole {ip}/32")
            else:
                cmds.append(f"route replace {ip}/32 dev {target[0]}")
                cmds.append(f"neigh replace {ip} lladdr {target[1]} dev {target[0]} "
                            f"nud permanent")
            self.applied[ip] = target
        cmds += self.route_table_cmds()
        if cmds:
            # -force: one failure (a crashed node's veth is gone) must not stop the rest.
            subprocess.run(["ip", "-n", self.fabric, "-force", "-batch", "-"],
                           input="\n".join(cmds) + "\n", text=True, capture_output=True)
        if cmds or now - self.verified_at >= 1.0:
            self.verify()
            self.verified_at = now

    def verify(self) -> None:
        """Forgets every applied entry the kernel does not hold as applied, so the next cycle
        applies it again (and says so in the log); after three tries in a row it is left as it
        is, said once. Entries on a veth that is gone (a machine powered off or crashed) wait
        for it: control() re-applies them when it is back."""
        out = subprocess.run(["ip", "-n", self.fabric, "-j", "-batch", "-"],
                             input="route show table all\nneigh show\nrule show\nlink show\n",
                             text=True, capture_output=True).stdout.splitlines()
        if len(out) != 4:
            return  # the fabric is going away (lab teardown)
        routes, neighs, rules, links = (json.loads(x) for x in out)
        links = {x["ifname"] for x in links}

        def net(dst: str) -> str:
            return str(ipaddress.ip_network("0.0.0.0/0" if dst == "default" else dst,
                                            strict=False))

        kernel = {(str(r.get("table", "main")), net(r["dst"])): r for r in routes if "dst" in r}
        permanent = {(n["dst"], n["dev"]): n.get("lladdr") for n in neighs
                     if "PERMANENT" in n.get("state", [])}
        have_rules = {(x["priority"], net(f"{x['src']}/{x['srclen']}"), str(x.get("table")))
                      for x in rules if "srclen" in x}

        def route_held(table: str, dest: str, target, via) -> bool | None:
            """None: nothing to check (the veth is gone)."""
            r = kernel.get((table, net(dest)))
            if target is None:
                return r is not None and r.get("type") == "blackhole"
            if target[0] not in links:
                return None
            return (r is not None and r.get("dev") == target[0] and "type" not in r
                    and r.get("gateway") == via)

        checks = []  # (what, the map, its key, held)
        for ip, t in self.applied.items():
            held = route_held("main", ip, t, None)
            if held and t is not None:
                held = permanent.get((ip, t[0])) == t[1]
            checks.append((f"{ip} -> {t and t[0]}", self.applied, ip, held))
        for key, t in self.applied_routes.items():
            held = route_held(str(self.kernel_tables[key[0]]), key[1], t, t and t[1])
            checks.append((f"{key[1]} -> {t and t[0]} in {key[0]}", self.applied_routes, key,
                           held))
        for cidr, rtb in self.applied_rules.items():
            held = (self.rule_prefs[cidr], net(cidr), str(self.kernel_tables[rtb])) in have_rules
            checks.append((f"the rule from {cidr} to {rtb}", self.applied_rules, cidr, held))
        for what, table, key, held in checks:
            if held is not False:
                self.misses.pop(what, None)
                continue
            n = self.misses[what] = self.misses.get(what, 0) + 1
            if n <= 3:
                log(f"dataplane: the fabric lacks {what}: applying it again ({n})")
                del table[key]  # a rule comes back with `rule add`, the route with `replace`
            elif n == 4:
                log(f"dataplane: the fabric refuses {what}; left as it is")

    def route_table_snapshot(self) -> tuple[dict, dict]:
        """({(rtb, dest): (fabric dev, ENI primary IP) | None}, {subnet CIDR: rtb}).

        A route delivers to an ENI of the lab when its state is active and the ENI's
        source/destination check is off (EC2 drops traffic for an address that is not the ENI's
        own otherwise); any other route (blackhole, gateway, check on) drops."""
        with MOTO:
            b = backend(self.cloud.region)
            routes, assoc, main = {}, {}, {}
            for rt in b.route_tables.values():
                if rt.main_association_id is not None:
                    main[rt.vpc_id] = rt.id
                for subnet_id in rt._associations.values():
                    assoc[subnet_id] = rt.id
                for r in rt._routes.values():
                    if r.local or not r.destination_cidr_block:
                        continue
                    eni_id, target = r.network_interface_id, None
                    eni = b.enis.get(eni_id) if eni_id else None
                    if (eni is not None and eni_id in self.devs and r.state == "active"
                            and not eni.source_dest_check):
                        target = (self.devs[eni_id][0], eni.private_ip_address)
                    routes[(rt.id, r.destination_cidr_block)] = target
            subnets = {}
            for by_id in b.subnets.values():
                for sn in by_id.values():
                    rtb = assoc.get(sn.id) or main.get(sn.vpc_id)
                    if rtb:
                        subnets[sn.cidr_block] = rtb
            return routes, subnets

    def route_table_cmds(self) -> list[str]:
        routes, subnets = self.route_table_snapshot()
        cmds = []
        for rtb in {t for t, _ in routes} | set(subnets.values()):
            self.kernel_tables.setdefault(rtb, 100 + len(self.kernel_tables))
        for key, target in routes.items():
            if self.applied_routes.get(key, "new") == target:
                continue
            rtb, dest = key
            n = self.kernel_tables[rtb]
            cmds.append(f"route replace blackhole {dest} table {n}" if target is None else
                        f"route replace {dest} via {target[1]} dev {target[0]} onlink table {n}")
            self.applied_routes[key] = target
        for key in [k for k in self.applied_routes if k not in routes]:
            cmds.append(f"route del {key[1]} table {self.kernel_tables[key[0]]}")
            del self.applied_routes[key]
        for cidr, rtb in subnets.items():
            if self.applied_rules.get(cidr) == rtb:
                continue
            known = cidr in self.rule_prefs
            pref = self.rule_prefs.setdefault(cidr, 1000 + len(self.rule_prefs))
            if known:  # a rule applied before, or one verify() found wrong or missing
                cmds.append(f"rule del pref {pref}")
            # No match in the subnet's table falls through to main (the ENIs' own /32s).
            cmds.append(f"rule add from {cidr} lookup {self.kernel_tables[rtb]} pref {pref}")
            self.applied_rules[cidr] = rtb
        return cmds


# ---------------------------------------------------------------- the cloud


class Cloud:
    def __init__(self, region: str, endpoint_port: int):
        self.region, self.endpoint_port = region, endpoint_port
        self.app = moto_app()
        self.dry_run_actions = dry_run_actions()
        self.faults, self.iam, self.calls = Faults(), Iam(), CallLog()
        self.imds: dict[str, ImdsNode] = {}
        self.servers: dict[str, tuple[NsHTTPServer, Relay]] = {}
        self.dataplane = DataPlane(self)
        self.imds_lag = 0.0
        # Eventual consistency of the API: agents' writes are acknowledged at once and take
        # effect `stale` seconds later, so reads in between see the old state (EC2 documents
        # this for its API; clients must retry reads).
        self.stale = 0.0
        self.pids: dict[str, int] = {}
        self.instance_pids: dict[str, int] = {}  # instance id -> its machine's PID 1
        self.power_delay = 0.0  # seconds in stopping/pending, see power()
        self.power_events: list[dict] = []
        threading.Thread(target=self.watch_machines, daemon=True).start()

    def call_moto(self, environ, req: Request, now: bool = False):
        if (self.stale and not now and req.service == "ec2" and req.key != LAB_KEY
                and not req.dry_run and not req.action.startswith(("Describe", "Get"))):
            later = dict(environ, **{"wsgi.input": io.BytesIO(req.body)})
            threading.Timer(self.stale, self.call_moto, (later, req, True)).start()
            rid = str(uuid.uuid4())
            return 200, xml_headers(), (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<{req.action}Response '
                f'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>{rid}'
                f"</requestId><return>true</return></{req.action}Response>").encode()
        out = {}

        def start_response(status, headers, exc_info=None):
            out["status"], out["headers"] = int(status.split()[0]), headers

        with MOTO:
            body = b"".join(self.app(environ, start_response))
        if req.service == "ec2" and not req.action.startswith(("Describe", "Get")):
            self.dataplane.wake.set()
        if (req.action in ("StopInstances", "StartInstances") and out["status"] == 200
                and req.key != LAB_KEY and not req.dry_run):
            self.power([v for k, v in req.params.items() if k.startswith("InstanceId.")],
                       on=req.action == "StartInstances")
        headers = [(k, v) for k, v in out["headers"] if k.lower() != "content-length"]
        return out["status"], headers, body

    def instance_view(self, instance_id: str) -> dict | None:
        """What IMDS shows of an instance, from live state (or lagging, see imds_lag)."""
        b = backend(self.region)
        try:
            inst = b.get_instance(instance_id)
        except Exception:
            return None
        lagged = self.dataplane.view(self.imds_lag) if self.imds_lag else None
        enis = []
        for device, eni in sorted(inst.nics.items()):
            ips = [a["PrivateIpAddress"] for a in eni.private_ip_addresses]
            if lagged is not None and eni.id in lagged:
                ips = lagged[eni.id]
            primary = eni.private_ip_address
            ips = [primary] + [ip for ip in ips if ip != primary]
            vpc = b.get_vpc(eni.subnet.vpc_id)
            enis.append({"id": eni.id, "mac": eni.mac_address, "device": device, "ips": ips,
                         "subnet_id": eni.subnet.id, "subnet_cidr": eni.subnet.cidr_block,
                         "vpc_id": vpc.id, "vpc_cidr": vpc.cidr_block,
                         "groups": [g.id for g in eni.group_set]})
        launched = inst.launch_time.replace(tzinfo=dt.timezone.utc).timestamp()  # naive UTC
        return {"az": inst._placement.zone, "ami": inst.image_id,
                "type": inst.instance_type, "launched": launched, "enis": enis}

    # -- nodes

    def add_node(self, spec: dict) -> None:
        """IMDS and relay inside the node's namespace (spec: name, netns path, instance_id,
        key, optional pid of the machine whose death closes them)."""
        with MACHINES:
            self.close_node(spec["name"])  # a machine booted again: its old self is gone
            node = ImdsNode(self, spec)
            imds_sock = nssock.listen_in(spec["netns"], ("169.254.169.254", 80))
            relay_sock = nssock.listen_in(spec["netns"], ("127.0.0.1", self.endpoint_port))
            server = NsHTTPServer(imds_sock, ImdsHandler, node)
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                             daemon=True).start()
            self.imds[node.name] = node
            self.servers[node.name] = (server, Relay(relay_sock, self.endpoint_port))
            if spec.get("pid"):
                self.pids[node.name] = int(spec["pid"])
                self.instance_pids[spec["instance_id"]] = int(spec["pid"])

    def power(self, instance_ids: list[str], on: bool) -> None:
        """StopInstances/StartInstances as EC2 does them: the instance is `stopping` (its
        machine still runs) for power_delay seconds, then its machine's PID 1 is killed
        (watch_machines closes its IMDS and relay) and it is `stopped`; a start is `pending`
        for power_delay, then `running`. moto applies the end state at once, so the lab sets
        the middle state and a timer the end state. Each step is in power_events."""
        for iid in instance_ids:
            self.power_event(iid, "pending" if on else "stopping")
            if self.power_delay:
                self.set_state(iid, "pending" if on else "stopping")
                threading.Timer(self.power_delay, self.power_done, (iid, on)).start()
            else:
                self.power_done(iid, on)

    def power_done(self, iid: str, on: bool) -> None:
        if not on and iid in self.instance_pids:  # a machine (Pacemaker form) powers off
            power_off(self.instance_pids.get(iid), f"instance {iid} stopped")
            with MOTO:
                enis = [e.id for e in backend(self.region).get_instance(iid).nics.values()]
            self.dataplane.unplug(enis)
        self.set_state(iid, "running" if on else "stopped")
        self.power_event(iid, "running" if on else "stopped")

    def set_state(self, iid: str, name: str) -> None:
        with MOTO:
            inst = backend(self.region).get_instance(iid)
            inst._state.name, inst._state.code = name, EC2_STATE_CODES[name]

    def power_event(self, iid: str, state: str) -> None:
        with MOTO:
            self.power_events.append({"t": time.monotonic(), "instance": iid, "state": state})

    def close_node(self, name: str) -> None:
        server, relay = self.servers.pop(name, (None, None))
        if server is not None:
            server.shutdown()
            server.server_close()
            relay.close()

    def watch_machines(self):
        watch_machines(self.pids, self.close_node, "IMDS and relay")


# ---------------------------------------------------------------- control app


class Control:
    """WSGI app of the control port: /_lab/... JSON, else moto for the lab's own calls."""

    def __init__(self, cloud: Cloud):
        self.cloud = cloud
        self.direct = Gate(cloud, counted=False)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_lab/"):
            return self.direct(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"null") if length else None
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            result = self.route(environ["REQUEST_METHOD"], path[len("/_lab/"):], body, query)
            return respond(start_response, 200, json.dumps(result).encode(),
                           "application/json")
        except (KeyError, ValueError, OSError) as e:
            return respond(start_response, 400, json.dumps({"error": repr(e)}).encode(),
                           "application/json")

    def route(self, method: str, path: str, body, query):
        c = self.cloud
        shared = shared_control(c, method, path, body, query)
        if shared is not NOT_SHARED:
            return shared
        if path == "iam/deny":
            c.iam.rules.extend({"action": a, "key": body.get("key")} for a in body["actions"])
            return c.iam.rules
        if path == "iam/allow_all":
            c.iam.rules.clear()
            return []
        if path == "calls":
            return c.calls.since(float(query["since"]) if "since" in query else None)
        if path == "imds/expire":
            for n in c.imds.values():
                n.expire()
            return {"ok": True}
        if path == "imds/lag":
            c.imds_lag = float(body["seconds"])
            return {"ok": True}
        if path == "stale":
            c.stale = float(body["seconds"])
            return {"ok": True}
        if path == "power":
            if method == "POST":
                c.power_delay = float(body["delay"])
            with MOTO:
                return {"delay": c.power_delay, "events": list(c.power_events)}
        raise KeyError(path)


# ---------------------------------------------------------------- main


def exit_with(owner: int) -> None:
    """A lab whose test process died (SIGKILL, crash) must not leave its EC2 running."""
    while pid_alive(owner):
        time.sleep(1)
    os._exit(0)


def serve(app, port: int = 0):
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        disable_nagle_algorithm = True  # see ImdsHandler

        def log_request(self, *a, **kw):
            pass

    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=Quiet)
    server.daemon_threads = True
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--region", default="eu-west-1")
    ap.add_argument("--owner", type=int, help="exit when this process (the lab's) is gone")
    args = ap.parse_args()
    if args.owner:
        threading.Thread(target=exit_with, args=(args.owner,), daemon=True).start()
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    endpoint_server = serve(lambda e, s: [b""])  # bound first: the relay needs its port
    cloud = Cloud(args.region, endpoint_server.server_port)
    endpoint_server.app = Gate(cloud, counted=True)
    control_server = serve(Control(cloud))
    threading.Thread(target=endpoint_server.serve_forever, daemon=True).start()
    announce("ec2lab", endpoint=endpoint_server.server_port, control=control_server.server_port)
    control_server.serve_forever()


if __name__ == "__main__":
    main()
