"""The lab's OCI: one process (``python3 -m ocilab.server --spec FILE``) started and stopped by
``OciLab``.

On 127.0.0.1 only it serves the **endpoint** (plain HTTP) and the **TLS endpoint** (HTTPS, the
lab's CA), both: faults -> request signature check -> deny list -> Core Services API
(/20160918/...) and the federation endpoint (/v1/x509), every call logged; and the **control**
port (/_lab/..., JSON, never counted). Inside the node namespaces it is told about: the
instance metadata service v2 on 169.254.169.254:80 and a relay of both endpoint ports, so the
URLs are the same there. The data plane mirrors which VNIC holds which private IP into /32
routes of the fabric namespace (ec2lab's DataPlane).

On start it prints one JSON line ``{"endpoint": PORT, "tls": PORT, "control": PORT}``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import email.utils
import ipaddress
import json
import math
import re
import secrets
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import serialization

from ec2lab import nssock
from ec2lab.server import DataPlane, Faults, NsHTTPServer, Relay, exit_with
from standin import (MACHINES, NOT_SHARED, MetadataHandler, QuietHandler, announce, log,
                     power_off, serve_time, shared_control, watch_machines)

from . import pki

API = "/20160918"
SKEW = 300  # seconds of Date skew OCI accepts either way
STATE = threading.RLock()

MESSAGES = {
    "NotAuthenticated": "The required information to complete authentication was not "
                        "provided or was incorrect.",
    "NotAuthorizedOrNotFound": "Authorization failed or requested resource not found.",
    "TooManyRequests": "Too many requests for the tenancy.",
    "InternalServerError": "Internal Server Error",
}
REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
           404: "Not Found", 409: "Conflict", 412: "Precondition Failed",
           429: "Too Many Requests", 500: "Internal Server Error"}


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def skew_fmt(epoch: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(epoch))


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str | None = None):
        super().__init__(message or MESSAGES.get(code, code))
        self.status, self.code, self.message = status, code, message or MESSAGES.get(code, code)


class AuthError(ApiError):
    """401 NotAuthenticated; .reason is what failed (call log), the message is OCI's."""

    def __init__(self, reason: str, message: str | None = None):
        super().__init__(401, "NotAuthenticated", message)
        self.reason = reason


class Reset(Exception):
    pass


# ---------------------------------------------------------------- the cloud's state


class Cloud:
    def __init__(self, spec: dict, endpoint_port: int, tls_port: int):
        self.spec = spec
        self.endpoint_port, self.tls_port = endpoint_port, tls_port
        self.region, self.tenancy = spec["region"], spec["tenancy"]
        self.compartment = spec["compartment"]
        self.subnet = spec["subnet"]
        self.net = ipaddress.ip_network(self.subnet["cidr"])
        self.root = pki.load_cert(spec["root_pem"])
        self.auth_key = pki.load_private(spec["auth_key_pem"])
        self.instances: dict[str, dict] = {}
        self.vnics: dict[str, dict] = {}
        self.private_ips: dict[str, dict] = {}
        self.keys: dict[tuple[str, str], object] = {}  # (user, fingerprint) -> public key
        self.user_of: dict[str, str] = {}  # user ocid -> node name
        now = time.time()
        for inst in spec["instances"]:
            self.instances[inst["id"]] = {**inst, "created": now, "running": True,
                                          "state": "RUNNING"}
            for v in inst["vnics"]:
                self.vnics[v["id"]] = {**v, "instance": inst["id"], "ad": inst["ad"],
                                       "name": inst["name"], "created": now}
                self.private_ips[v["private_ip_id"]] = {
                    "id": v["private_ip_id"], "ip": v["ip"], "vnic": v["id"], "primary": True,
                    "created": now, "etag": secrets.token_hex(16), "name": v["ip"]}
            self.keys[(inst["user"], inst["fingerprint"])] = pki.load_public(inst["public_pem"])
            self.user_of[inst["user"]] = inst["name"]
        self.faults = Faults()
        self.deny: list[dict] = []
        self.calls: list[dict] = []
        self.calls_lock = threading.Lock()
        self.skew = 0.0
        self.token_lifetime = 1200.0
        self.tokens: dict[str, dict] = {}  # jti -> {principal, iat, exp, revoked}
        self.imds: dict[str, "ImdsNode"] = {}
        self.servers: dict[str, tuple] = {}
        self.pids: dict[str, int] = {}
        self.machine_pids: dict[str, int] = {}  # node name -> its machine's PID 1 (kept)
        self.power_delay = 0.0  # seconds in STOPPING/STARTING, see power()
        self.power_events: list[dict] = []
        self.dataplane = OciDataPlane(self)
        threading.Thread(target=self.watch_machines, daemon=True).start()

    def now(self) -> float:
        """The stand-in's clock (the host's plus the lab-set skew)."""
        return time.time() + self.skew

    # -- views (OCI JSON shapes)

    def vnic_json(self, v: dict) -> dict:
        primary = next(p for p in self.private_ips.values()
                       if p["vnic"] == v["id"] and p["primary"])
        return {"availabilityDomain": v["ad"], "compartmentId": self.compartment,
                "definedTags": {}, "displayName": f"{v['name']}-vnic{v['nic_index']}",
                "freeformTags": {}, "hostnameLabel": v["name"] if v["nic_index"] == 0
                else None, "id": v["id"], "isPrimary": v["nic_index"] == 0,
                "lifecycleState": "AVAILABLE", "macAddress": v["mac"], "nsgIds": [],
                "privateIp": primary["ip"], "publicIp": None, "skipSourceDestCheck": False,
                "subnetId": self.subnet["id"], "timeCreated": iso(v["created"]),
                "vlanId": None}

    def pip_json(self, p: dict) -> dict:
        v = self.vnics[p["vnic"]]
        return {"availabilityDomain": v["ad"], "compartmentId": self.compartment,
                "definedTags": {}, "displayName": p["name"], "freeformTags": {},
                "hostnameLabel": None, "id": p["id"], "ipAddress": p["ip"],
                "ipState": "ASSIGNED", "isPrimary": p["primary"], "lifetime": "EPHEMERAL",
                "routeTableId": None, "subnetId": self.subnet["id"],
                "timeCreated": iso(p["created"]), "vlanId": None, "vnicId": p["vnic"]}

    def attachment_json(self, v: dict) -> dict:
        return {"availabilityDomain": v["ad"], "compartmentId": self.compartment,
                "displayName": f"{v['name']}-attachment{v['nic_index']}",
                "id": v["attachment_id"], "instanceId": v["instance"],
                "lifecycleState": "ATTACHED", "nicIndex": v["nic_index"],
                "subnetId": self.subnet["id"], "timeCreated": iso(v["created"]),
                "vlanTag": 0, "vnicId": v["id"]}

    def subnet_json(self) -> dict:
        s = self.subnet
        return {"availabilityDomain": None, "cidrBlock": s["cidr"],
                "compartmentId": self.compartment, "definedTags": {}, "displayName": "lab",
                "dnsLabel": "lab", "freeformTags": {}, "id": s["id"],
                "lifecycleState": "AVAILABLE", "prohibitPublicIpOnVnic": True,
                "routeTableId": s["route_table"], "securityListIds": [],
                "subnetDomainName": f"lab.{self.spec['vcn']['dns']}.oraclevcn.com",
                "timeCreated": iso(time.time()), "vcnId": self.spec["vcn"]["id"],
                "virtualRouterIp": s["router"], "virtualRouterMac": "00:00:17:00:00:01"}

    def live_vnic(self, vid: str) -> dict | None:
        # A stopped instance keeps its VNICs and their private IPs, as in OCI: the API still
        # shows them (and a private IP on one can be moved away); only its traffic stops.
        return self.vnics.get(vid)

    def pip_by_ip(self, ip: str) -> dict | None:
        return next((p for p in self.private_ips.values() if p["ip"] == ip), None)

    # -- operations on the state (also the lab's own assign/unassign)

    def check_ip(self, ip: str) -> None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise ApiError(400, "InvalidParameter", f"Invalid IP address: {ip}") from None
        if addr not in self.net:
            raise ApiError(400, "InvalidParameter",
                           f"IP address {ip} is not in subnet {self.subnet['id']} "
                           f"(CIDR {self.subnet['cidr']})")
        # OCI reserves the network address, the virtual router (.1) and the broadcast address.
        if addr in (self.net.network_address, self.net.network_address + 1,
                    self.net.broadcast_address):
            raise ApiError(400, "InvalidParameter",
                           f"IP address {ip} is reserved in subnet {self.subnet['id']}")

    def create_ip(self, vid: str, ip: str | None, name: str | None = None) -> dict:
        if ip is None:
            used = {p["ip"] for p in self.private_ips.values()}
            ip = next(str(h) for h in list(self.net.hosts())[1:] if str(h) not in used)
        self.check_ip(ip)
        if self.pip_by_ip(ip):
            raise ApiError(409, "Conflict",
                           f"IP address {ip} is already assigned in subnet {self.subnet['id']}")
        p = {"id": pki.new_ocid("privateip", self.spec["region"]), "ip": ip, "vnic": vid,
             "primary": False, "created": time.time(), "etag": secrets.token_hex(16),
             "name": name or ip}
        self.private_ips[p["id"]] = p
        self.dataplane.wake.set()
        return p

    def move_ip(self, p: dict, vid: str) -> None:
        if p["vnic"] == vid:
            return
        if p["primary"]:
            raise ApiError(400, "InvalidParameter",
                           f"Private IP {p['id']} is the primary private IP of its VNIC and "
                           f"cannot be moved")
        p["vnic"] = vid
        p["etag"] = secrets.token_hex(16)
        self.dataplane.wake.set()

    def delete_ip(self, p: dict) -> None:
        if p["primary"]:
            raise ApiError(400, "InvalidParameter",
                           f"Private IP {p['id']} is the primary private IP of its VNIC and "
                           f"cannot be deleted")
        del self.private_ips[p["id"]]
        self.dataplane.wake.set()

    # -- nodes

    def instance_json(self, inst: dict) -> dict:
        return {"id": inst["id"], "displayName": inst["name"], "compartmentId": self.compartment,
                "availabilityDomain": inst["ad"], "faultDomain": inst["fault_domain"],
                "region": self.region, "shape": "VM.Standard.E4.Flex",
                "lifecycleState": inst["state"],
                "timeCreated": iso(inst["created"])}

    def power(self, inst: dict, action: str) -> None:
        """InstanceAction as OCI does it: STOP is STOPPING (the machine still runs) for
        power_delay seconds, then the machine's PID 1 is killed (its processes and network
        go) and it is STOPPED; START is STARTING, then RUNNING; RESET is both. Each step is
        in power_events. Called holding STATE."""
        steps = {"START": ["STARTING", "RUNNING"], "STOP": ["STOPPING", "STOPPED"],
                 "SOFTSTOP": ["STOPPING", "STOPPED"]}.get(action,
                                                          ["STOPPING", "STOPPED", "STARTING",
                                                           "RUNNING"])
        self.step(inst, steps, action)

    def step(self, inst: dict, steps: list[str], action: str) -> None:
        with STATE:
            state, rest = steps[0], steps[1:]
            if state == "STOPPED" and inst["name"] in self.machine_pids:  # Pacemaker form
                power_off(self.machine_pids[inst["name"]], f"instance {inst['id']} {action}")
                self.dataplane.unplug([v["id"] for v in inst["vnics"]])
            inst["state"], inst["running"] = state, state in ("RUNNING", "STOPPING")
            self.power_events.append({"t": time.monotonic(), "instance": inst["id"],
                                      "state": state})
            if not rest:
                return
            # The middle states last power_delay; the end state follows a middle one.
            pause = self.power_delay if state in ("STOPPING", "STARTING") else 0
            if pause:
                threading.Timer(pause, self.step, (inst, rest, action)).start()
            else:
                self.step(inst, rest, action)

    def add_node(self, spec: dict) -> None:
        with MACHINES:
            self.close_node(spec["name"])  # a machine booted again: its old self is gone
            node = ImdsNode(self, spec)
            imds_sock = nssock.listen_in(spec["netns"], ("169.254.169.254", 80))
            relays = [Relay(nssock.listen_in(spec["netns"], ("127.0.0.1", port)), port)
                      for port in (self.endpoint_port, self.tls_port)]
            server = NsHTTPServer(imds_sock, ImdsHandler, node)
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                             daemon=True).start()
            self.imds[node.name] = node
            self.servers[node.name] = (server, relays)
            if spec.get("pid"):
                self.pids[node.name] = int(spec["pid"])
                self.machine_pids[node.name] = int(spec["pid"])

    def close_node(self, name: str) -> None:
        server, relays = self.servers.pop(name, (None, []))
        if server is not None:
            server.shutdown()
            server.server_close()
        for r in relays:
            r.close()

    def watch_machines(self):
        watch_machines(self.pids, self.close_node, "IMDS and relays")


class OciDataPlane(DataPlane):
    """ec2lab's data plane, fed from this state: {vnic id: [private IPs]}."""

    def snapshot(self) -> dict[str, list[str]]:
        with STATE:
            out = {vid: [] for vid in self.cloud.vnics}
            for p in self.cloud.private_ips.values():
                out[p["vnic"]].append(p["ip"])
            return out

    def route_table_snapshot(self) -> tuple[dict, dict]:
        # The VCN's route rules are not modelled: the fabric routes the private IPs only.
        return {}, {}


# ---------------------------------------------------------------- authentication


def claimed_principal(key_id: str | None) -> str | None:
    """Who the keyId says the caller is (before verification: faults and the call log)."""
    if not key_id:
        return None
    if key_id.startswith("ST$"):
        try:
            return json.loads(pki.b64u_dec(key_id[3:].split(".")[1])).get("sub")
        except Exception:
            return None
    parts = key_id.split("/")
    if len(parts) == 3 and parts[1] != "fed-x509":
        return parts[1]
    return None


class Req:
    """One API request as the gate sees it."""

    def __init__(self, method: str, target: str, headers, body: bytes):
        self.method, self.target, self.headers, self.body = method, target, headers, body
        u = urlsplit(target)
        self.path = u.path
        self.query = {k: v[0] for k, v in parse_qs(u.query).items()}
        self.auth = pki.parse_authorization(headers.get("Authorization", ""))
        self.key_id = (self.auth or {}).get("keyId")
        self.key = self.principal = claimed_principal(self.key_id)  # .key: ec2lab's Faults
        self.action = self.operation = None
        self.kind = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def authenticate(cloud: Cloud, req: Req) -> None:
    """Verifies the request signature as OCI does; sets req.principal/req.kind or raises."""
    a = req.auth
    if a is None:
        raise AuthError("no Authorization: Signature header")
    for k in ("keyId", "signature"):
        if not a.get(k):
            raise AuthError(f"Authorization lacks {k}")
    if a.get("algorithm", "").lower() != "rsa-sha256":
        raise AuthError(f"algorithm {a.get('algorithm')!r} is not rsa-sha256")
    if a.get("version", "1") != "1":
        raise AuthError(f"signature version {a.get('version')!r} is not 1")
    names = a.get("headers", "date").lower().split()
    federation = req.operation == "X509Federation"
    date_name = "date" if "date" in names else "x-date" if "x-date" in names else None
    need = ["(request-target)"] + ([] if federation else ["host"])
    if req.method in ("POST", "PUT", "PATCH"):
        need += pki.BODY
    missing = [n for n in need if n not in names] + ([] if date_name else ["date"])
    if missing:
        raise AuthError(f"signed headers {names} lack {missing}")
    for n in names:
        if n != "(request-target)" and req.header(n) is None:
            raise AuthError(f"signed header {n} is not in the request")
    # Date within 5 minutes of the stand-in's clock.
    try:
        when = email.utils.parsedate_to_datetime(req.header(date_name)).timestamp()
    except (TypeError, ValueError):
        raise AuthError(f"unparsable {date_name}: {req.header(date_name)!r}") from None
    now = cloud.now()
    if abs(now - when) > SKEW:
        raise AuthError(
            "date skew",
            f"Date '{skew_fmt(when)}' is not within allowed clock skew. Current "
            f"'{skew_fmt(now)}', valid datetime range: ['{skew_fmt(now - SKEW)}', "
            f"'{skew_fmt(now + SKEW)}']")
    if "x-content-sha256" in names:
        if req.header("x-content-sha256") != pki.body_sha256(req.body):
            raise AuthError("x-content-sha256 is not the SHA-256 of the body")
    if "content-length" in names and req.header("content-length") != str(len(req.body)):
        raise AuthError("content-length is not the body's length")
    pub = public_key_for(cloud, req, a["keyId"], federation)
    try:
        string = pki.signing_string(req.method, req.target, names, req.header)
    except KeyError as e:
        raise AuthError(f"signed header {e} missing") from None
    try:
        sig = base64.b64decode(a["signature"], validate=True)
    except ValueError:
        raise AuthError("signature is not base64") from None
    if not pki.verify(pub, sig, string.encode()):
        raise AuthError("signature does not verify with the key of keyId")


def public_key_for(cloud: Cloud, req: Req, key_id: str, federation: bool):
    """The public key of keyId; sets req.principal and req.kind."""
    if key_id.startswith("ST$"):
        if federation:
            raise AuthError("the federation endpoint takes fed-x509 keyIds only")
        claims = pki.read_jwt(key_id[3:], cloud.auth_key.public_key())
        if claims is None:
            raise AuthError("security token is not one the federation endpoint issued")
        rec = cloud.tokens.get(claims.get("jti", ""))
        if rec is None or rec["revoked"]:
            raise AuthError("security token was revoked (lab: expire_tokens)")
        if cloud.now() >= claims["exp"]:
            raise AuthError("security token expired")
        req.principal, req.kind = claims["sub"], "instance_principal"
        return pki.jwk_public(claims["jwk"])
    parts = key_id.split("/")
    if len(parts) != 3:
        raise AuthError(f"keyId {key_id!r} is neither ST$<token> nor tenancy/user/fingerprint")
    tenancy, user, fp = parts
    if tenancy != cloud.tenancy:
        raise AuthError(f"unknown tenancy {tenancy}")
    if user == "fed-x509":
        if not federation:
            raise AuthError("fed-x509 keyIds are for the federation endpoint only")
        try:
            body = json.loads(req.body)
            leaf = pki.load_cert(body["certificate"])
            inters = [pki.load_cert(c) for c in body.get("intermediateCertificates") or []]
        except Exception as e:
            raise AuthError(f"federation request without a readable certificate: {e!r}") \
                from None
        if pki.cert_fingerprint(leaf) != fp:
            raise AuthError("keyId fingerprint is not the SHA-1 fingerprint of the certificate")
        ous = pki.subject_ous(leaf)
        if ous.get("opc-tenant") != tenancy:
            raise AuthError("keyId tenancy is not the certificate's opc-tenant")
        why = pki.chain_ok(leaf, inters, cloud.root)
        if why:
            raise AuthError(why)
        req.principal, req.kind = ous.get("opc-instance"), "fed-x509"
        req.federation = (leaf, body)
        return leaf.public_key()
    key = cloud.keys.get((user, fp))
    if key is None:
        raise AuthError(f"no API key {fp} for user {user}")
    req.principal, req.kind = user, "api_key"
    return key


# ---------------------------------------------------------------- operations

ROUTES = [
    ("GET", re.compile(rf"^{API}/vnics/([^/]+)$"), "GetVnic"),
    ("GET", re.compile(rf"^{API}/privateIps$"), "ListPrivateIps"),
    ("POST", re.compile(rf"^{API}/privateIps$"), "CreatePrivateIp"),
    ("GET", re.compile(rf"^{API}/privateIps/([^/]+)$"), "GetPrivateIp"),
    ("PUT", re.compile(rf"^{API}/privateIps/([^/]+)$"), "UpdatePrivateIp"),
    ("DELETE", re.compile(rf"^{API}/privateIps/([^/]+)$"), "DeletePrivateIp"),
    ("GET", re.compile(rf"^{API}/vnicAttachments/?$"), "ListVnicAttachments"),
    ("GET", re.compile(rf"^{API}/subnets/([^/]+)$"), "GetSubnet"),
    ("GET", re.compile(rf"^{API}/instances/?$"), "ListInstances"),
    ("GET", re.compile(rf"^{API}/instances/([^/]+)$"), "GetInstance"),
    ("POST", re.compile(rf"^{API}/instances/([^/]+)$"), "InstanceAction"),
    ("POST", re.compile(r"^/v1/x509$"), "X509Federation"),
]


def route(req: Req):
    for method, rx, op in ROUTES:
        m = rx.match(req.path)
        if m and method == req.method:
            return op, m.groups()
    return None, ()


def json_body(req: Req) -> dict:
    try:
        body = json.loads(req.body or b"{}")
    except ValueError:
        raise ApiError(400, "InvalidParameter", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidParameter", "The request body must be a JSON object")
    return body


def check_if_match(req: Req, p: dict) -> None:
    m = req.header("if-match")
    if m is not None and m != p["etag"]:
        raise ApiError(412, "NoEtagMatch", "The resource's etag does not match if-match")


def operate(cloud: Cloud, req: Req, op: str, args) -> tuple[int, object, dict]:
    """(status, JSON-able body or None, extra headers)."""
    q = req.query
    if op == "X509Federation":
        return federate(cloud, req)
    with STATE:
        if op == "GetVnic":
            v = cloud.live_vnic(args[0])
            if v is None:
                raise ApiError(404, "NotAuthorizedOrNotFound")
            return 200, cloud.vnic_json(v), {"etag": v["id"][-16:]}
        if op == "ListInstances":
            if q.get("compartmentId") != cloud.compartment:
                raise ApiError(404, "NotAuthorizedOrNotFound")
            return 200, [cloud.instance_json(i) for i in cloud.instances.values()], {}
        if op in ("GetInstance", "InstanceAction"):
            inst = cloud.instances.get(args[0])
            if inst is None:
                raise ApiError(404, "NotAuthorizedOrNotFound")
            if op == "InstanceAction":
                action = q.get("action")
                if action not in ("STOP", "SOFTSTOP", "START", "RESET", "SOFTRESET"):
                    raise ApiError(400, "InvalidParameter", f"action {action!r} is not valid")
                cloud.power(inst, action)
            return 200, cloud.instance_json(inst), {"etag": inst["id"][-16:]}
        if op == "GetSubnet":
            if args[0] != cloud.subnet["id"]:
                raise ApiError(404, "NotAuthorizedOrNotFound")
            return 200, cloud.subnet_json(), {}
        if op == "ListVnicAttachments":
            if not q.get("compartmentId"):
                raise ApiError(400, "MissingParameter", "compartmentId is required")
            if q["compartmentId"] != cloud.compartment:
                raise ApiError(404, "NotAuthorizedOrNotFound")
            out = [cloud.attachment_json(v) for v in cloud.vnics.values()
                   if cloud.live_vnic(v["id"]) and
                   q.get("instanceId", v["instance"]) == v["instance"] and
                   q.get("vnicId", v["id"]) == v["id"]]
            return 200, out, {}
        if op == "ListPrivateIps":
            ip, sid, vid = q.get("ipAddress"), q.get("subnetId"), q.get("vnicId")
            if not (sid or vid or q.get("vlanId")):
                raise ApiError(400, "InvalidParameter",
                               "One of subnetId, vnicId or vlanId must be given")
            if ip and not (sid or q.get("vlanId")):
                raise ApiError(400, "InvalidParameter",
                               "ipAddress must be given with subnetId or vlanId")
            if sid and sid != cloud.subnet["id"]:
                raise ApiError(404, "NotAuthorizedOrNotFound")
            if q.get("vlanId"):
                raise ApiError(404, "NotAuthorizedOrNotFound")
            if vid and cloud.live_vnic(vid) is None:
                raise ApiError(404, "NotAuthorizedOrNotFound")
            out = [p for p in cloud.private_ips.values()
                   if cloud.live_vnic(p["vnic"]) and (not ip or p["ip"] == ip) and
                   (not vid or p["vnic"] == vid)]
            out.sort(key=lambda p: (p["vnic"], not p["primary"],
                                    ipaddress.ip_address(p["ip"])))
            return 200, [cloud.pip_json(p) for p in out], {}
        if op == "GetPrivateIp":
            p = cloud.private_ips.get(args[0])
            if p is None or not cloud.live_vnic(p["vnic"]):
                raise ApiError(404, "NotAuthorizedOrNotFound")
            return 200, cloud.pip_json(p), {"etag": p["etag"]}
        if op == "UpdatePrivateIp":
            p = cloud.private_ips.get(args[0])
            if p is None:
                raise ApiError(404, "NotAuthorizedOrNotFound")
            body = json_body(req)
            check_if_match(req, p)
            if body.get("vnicId"):
                target = cloud.live_vnic(body["vnicId"])
                if target is None:
                    raise ApiError(404, "NotAuthorizedOrNotFound")
                cloud.move_ip(p, target["id"])
            if body.get("displayName"):
                p["name"] = body["displayName"]
                p["etag"] = secrets.token_hex(16)
            return 200, cloud.pip_json(p), {"etag": p["etag"]}
        if op == "CreatePrivateIp":
            body = json_body(req)
            if body.get("vlanId"):
                raise ApiError(404, "NotAuthorizedOrNotFound")
            if not body.get("vnicId"):
                raise ApiError(400, "InvalidParameter", "vnicId or vlanId must be given")
            v = cloud.live_vnic(body["vnicId"])
            if v is None:
                raise ApiError(404, "NotAuthorizedOrNotFound")
            p = cloud.create_ip(v["id"], body.get("ipAddress"), body.get("displayName"))
            return 200, cloud.pip_json(p), {"etag": p["etag"]}
        if op == "DeletePrivateIp":
            p = cloud.private_ips.get(args[0])
            if p is None:
                raise ApiError(404, "NotAuthorizedOrNotFound")
            check_if_match(req, p)
            cloud.delete_ip(p)
            return 204, None, {}
    raise ApiError(404, "NotFound", f"{req.method} {req.path} is not part of the lab's API")


def federate(cloud: Cloud, req: Req) -> tuple[int, object, dict]:
    """POST /v1/x509 (already authenticated with the leaf certificate): a session token for
    the publicKey of the body, bound to the instance in the certificate."""
    leaf, body = req.federation
    try:
        der = base64.b64decode(body["publicKey"])
        session = serialization.load_der_public_key(der)
    except Exception:
        raise ApiError(400, "InvalidParameter", "publicKey is not a DER public key") from None
    ous = pki.subject_ous(leaf)
    with STATE:
        inst = cloud.instances.get(ous.get("opc-instance", ""))
        if inst is None or not inst["running"]:
            raise AuthError("instance of the certificate is not running")
        now = cloud.now()
        jti = uuid.uuid4().hex
        claims = {"sub": inst["id"], "opc-instance": inst["id"],
                  "opc-compartment": cloud.compartment, "opc-tenant": cloud.tenancy,
                  "ptype": "instance", "iss": "authService.oracle.com", "aud": "oci",
                  "iat": int(now), "exp": int(now) + math.ceil(cloud.token_lifetime),
                  "jti": jti,
                  "jwk": pki.jwk(session)}
        cloud.tokens[jti] = {"principal": inst["id"], "node": inst["name"], "iat": claims["iat"],
                             "exp": claims["exp"], "revoked": False}
    return 200, {"token": pki.make_jwt(cloud.auth_key, claims)}, {}


# ---------------------------------------------------------------- the gate


class ApiHandler(QuietHandler):
    server_version = "lab-oci"

    def handle_one(self):
        cloud: Cloud = self.server.cloud
        t0 = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Req(self.command, self.path, self.headers, body)
        req.operation, args = route(req)
        req.action = req.operation
        entry = {"t": t0, "operation": req.operation, "method": self.command,
                 "path": req.path, "query": req.query, "principal": req.principal,
                 "auth": None,
                 "key_id": (req.key_id[:24] + "...") if req.key_id and
                 req.key_id.startswith("ST$") else req.key_id,
                 "status": None, "code": None, "fault": None, "error": None,
                 "tls": self.server.tls}
        rid = uuid.uuid4().hex.upper()
        client_rid = self.headers.get("opc-request-id")
        rid = f"{client_rid}/{rid}" if client_rid else rid
        status, payload, extra = 500, None, {}
        try:
            try:
                status, payload, extra = self.gate(cloud, req, entry, args)
                serve_time(self.command == "GET")
            except ApiError as e:
                status, payload = e.status, {"code": e.code, "message": e.message}
                entry["code"] = e.code
                if isinstance(e, AuthError):
                    entry["error"] = e.reason
                    log(f"401 {req.method} {req.path}: {e.reason}")
            except Reset:
                entry["status"] = None
                self.close_connection = True
                return
            except Exception as e:  # a lab bug must show as a 500, and in the log
                log(f"500 {req.method} {req.path}: {e!r}")
                status, payload = 500, {"code": "InternalServerError", "message": repr(e)}
                entry["code"], entry["error"] = "InternalServerError", repr(e)
            entry["status"] = status
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status, REASONS.get(status))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("opc-request-id", rid)
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            if data:
                self.wfile.write(data)
        finally:
            entry["duration"] = time.monotonic() - t0
            with cloud.calls_lock:
                cloud.calls.append(entry)

    def gate(self, cloud: Cloud, req: Req, entry: dict, args):
        fault = cloud.faults.take(req)
        if fault:
            entry["fault"] = fault["kind"]
            if fault["kind"] == "slow":
                time.sleep(float(fault.get("delay") or 1.0))
            elif fault["kind"] == "reset":
                nssock.reset(self.connection)
                raise Reset()
            elif fault["kind"] == "throttle":
                raise ApiError(429, "TooManyRequests")
            else:
                raise ApiError(500, "InternalServerError")
        authenticate(cloud, req)
        entry["principal"], entry["auth"] = req.principal, req.kind
        for rule in cloud.deny:
            if rule["operation"] in ("*", req.operation) and \
                    rule.get("principal") in (None, req.principal):
                if rule.get("status") == 401:
                    raise ApiError(401, "NotAuthenticated")
                raise ApiError(404, "NotAuthorizedOrNotFound")
        if req.operation is None:
            raise ApiError(404, "NotFound", f"{req.method} {req.path} is not part of the "
                                            f"lab's API")
        return operate(cloud, req, req.operation, args)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = handle_one


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cloud, ctx: ssl.SSLContext | None = None):
        super().__init__(("127.0.0.1", 0), ApiHandler)
        self.cloud, self.ctx, self.tls = cloud, ctx, ctx is not None

    def finish_request(self, request, client_address):
        if self.ctx is not None:  # the handshake runs in the request's own thread
            request.settimeout(30)
            request = self.ctx.wrap_socket(request, server_side=True)
            request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        log(f"connection from {client_address}: {sys.exc_info()[1]!r}")


# ---------------------------------------------------------------- IMDS (v2)


class ImdsNode:
    def __init__(self, cloud: Cloud, spec: dict):
        self.cloud, self.name, self.instance_id = cloud, spec["name"], spec["instance_id"]
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def instance(self) -> dict:
        c, s = self.cloud, self.cloud.spec
        inst = c.instances[self.instance_id]
        region_info = {"realmDomainComponent": s["realm_domain"], "realmKey": s["realm"],
                       "regionIdentifier": c.region, "regionKey": s["region_key"]}
        return {"agentConfig": {"allPluginsDisabled": False, "managementDisabled": False,
                                "monitoringDisabled": False},
                "availabilityDomain": inst["ad"], "canonicalRegionName": c.region,
                "compartmentId": c.compartment, "definedTags": {},
                "displayName": inst["name"], "faultDomain": inst["fault_domain"],
                "freeformTags": {}, "hostname": inst["name"], "id": inst["id"],
                "image": s["image"], "metadata": {}, "ociAdName": inst["ad_name"],
                "region": s["region_short"], "regionInfo": region_info,
                "shape": "VM.Standard.E4.Flex",
                "shapeConfig": {"maxVnicAttachments": 2, "memoryInGBs": 16.0, "ocpus": 1.0},
                "state": "Running", "tenantId": c.tenancy,
                "timeCreated": int(inst["created"] * 1000)}

    def vnics(self) -> list[dict]:
        c = self.cloud
        out = []
        for v in sorted((v for v in c.vnics.values() if v["instance"] == self.instance_id),
                        key=lambda v: v["nic_index"]):
            out.append({"macAddr": v["mac"], "nicIndex": v["nic_index"],
                        "privateIp": v["ip"], "subnetCidrBlock": c.subnet["cidr"],
                        "virtualRouterIp": c.subnet["router"], "vlanTag": 0,
                        "vnicId": v["id"]})
        return out

    def answer(self, path: str):
        """(status, body, content type) for GET path (after /opc/v2/)."""
        c = self.cloud
        with STATE:
            if not c.instances[self.instance_id]["running"]:
                return 404, "Not Found", "text/plain"
            inst = c.instances[self.instance_id]
            parts = [p for p in path.split("/") if p]
            if parts[:1] == ["instance"]:
                value = self.instance()
                for p in parts[1:]:
                    if not isinstance(value, dict) or p not in value:
                        return 404, "Not Found", "text/plain"
                    value = value[p]
            elif parts[:1] == ["vnics"]:
                value = self.vnics()
                if len(parts) > 1:
                    return 404, "Not Found", "text/plain"
            elif parts[:1] == ["identity"] and len(parts) == 2:
                value = {"cert.pem": inst["leaf_cert_pem"], "key.pem": inst["leaf_key_pem"],
                         "intermediate.pem": c.spec["intermediate_pem"]}.get(parts[1])
                if value is None:
                    return 404, "Not Found", "text/plain"
            else:
                return 404, "Not Found", "text/plain"
        if isinstance(value, (dict, list)):
            return 200, json.dumps(value, indent=2), "application/json"
        return 200, str(value), "text/plain"


class ImdsHandler(MetadataHandler):
    server_version = "lab-imds"

    def do_GET(self):
        path = urlsplit(self.path).path
        if any(self.headers.get(h) for h in ("Forwarded", "X-Forwarded-For",
                                              "X-Forwarded-Host")):
            return self.send(403, "Forbidden")
        if not path.startswith("/opc/v2/"):
            # /opc/v1 is the legacy endpoint; the lab's instances have it disabled.
            return self.send(404, "Not Found")
        if self.headers.get("Authorization") != "Bearer Oracle":
            return self.send(401, "Unauthorized")
        status, body, ctype = self.server.node.answer(path[len("/opc/v2/"):])
        self.send(status, body, ctype)

    do_HEAD = do_GET

    def do_PUT(self):
        self.send(405, "Method Not Allowed")

    do_POST = do_DELETE = do_PUT


# ---------------------------------------------------------------- control


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null") if length else None
        u = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(u.query).items()}
        try:
            status, result = 200, route_control(self.server.cloud, self.command,
                                                u.path[len("/_lab/"):], body or {}, query)
        except ApiError as e:
            status, result = 400, {"error": f"{e.code}: {e.message}"}
        except (KeyError, ValueError, OSError, StopIteration) as e:
            status, result = 400, {"error": repr(e)}
        data = json.dumps(result).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = do_any


def route_control(c: Cloud, method: str, path: str, body, query):
    shared = shared_control(c, method, path, body, query)
    if shared is not NOT_SHARED:
        return shared
    if path == "deny":
        c.deny.extend(body["rules"])
        return c.deny
    if path == "allow_all":
        c.deny.clear()
        return []
    if path == "calls":
        with c.calls_lock:
            return [x for x in c.calls if "since" not in query or
                    x["t"] >= float(query["since"])]
    if path == "instances":
        with STATE:
            if method == "POST":  # {"id": ..., "running": bool}: the lab's own power switch
                inst = c.instances[body["id"]]
                inst["running"] = bool(body["running"])
                inst["state"] = "RUNNING" if inst["running"] else "STOPPED"
            return {i: x["running"] for i, x in c.instances.items()}
    if path == "power":
        with STATE:
            if method == "POST":
                c.power_delay = float(body["delay"])
            return {"delay": c.power_delay, "events": list(c.power_events)}
    if path == "clock":
        c.skew = float(body["skew"])
        return {"skew": c.skew}
    if path == "federation/lifetime":
        c.token_lifetime = float(body["seconds"])
        return {"ok": True}
    if path == "federation/expire":
        with STATE:
            for t in c.tokens.values():
                t["revoked"] = True
        return {"ok": True}
    if path == "federation/tokens":
        with STATE:
            return list(c.tokens.values())
    if path == "state":
        with STATE:
            return {"private_ips": [c.pip_json(p) for p in c.private_ips.values()],
                    "vnics": [c.vnic_json(v) for v in c.vnics.values()]}
    if path == "assign":  # the lab's own move/create (no auth, not counted)
        with STATE:
            p = c.pip_by_ip(body["ip"])
            if p is None:
                p = c.create_ip(body["vnic"], body["ip"])
            else:
                c.move_ip(p, body["vnic"])
            return c.pip_json(p)
    if path == "unassign":
        with STATE:
            p = c.pip_by_ip(body["ip"])
            if p is not None:
                c.delete_ip(p)
            return {"ok": True}
    raise KeyError(path)


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--owner", type=int)
    args = ap.parse_args()
    if args.owner:
        threading.Thread(target=exit_with, args=(args.owner,), daemon=True).start()
    with open(args.spec) as f:
        spec = json.load(f)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(spec["tls_cert_file"], spec["tls_key_file"])
    plain, tls = ApiServer(None), ApiServer(None, ctx)
    cloud = Cloud(spec, plain.server_port, tls.server_port)
    plain.cloud = tls.cloud = cloud
    control = ThreadingHTTPServer(("127.0.0.1", 0), ControlHandler)
    control.daemon_threads = True
    control.cloud = cloud
    for s in (plain, tls):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    announce("ocilab", endpoint=plain.server_port, tls=tls.server_port, control=control.server_port)
    control.serve_forever()


if __name__ == "__main__":
    main()
