"""HTTP pieces both cloud stand-ins (ec2lab.server, ocilab.server) serve with: a quiet
HTTP/1.1 handler and the instance metadata handler's reply, which logs every request to the
node it serves, and the control calls both answer alike."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def announce(name: str, **ports: int) -> None:
    """The start line the lab reads (one JSON object of ports on stdout), and the same in the
    log."""
    print(json.dumps(ports), flush=True)
    log(f"{name} server pid {os.getpid()} " + " ".join(f"{k} {v}" for k, v in ports.items()))


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle holds the body until
    # the client's delayed ACK (40 ms a request), which a real cloud never costs.
    disable_nagle_algorithm = True
    sys_version = ""

    def log_message(self, *a):  # the stand-ins keep their own request lists
        pass


class MetadataHandler(QuietHandler):
    """Base of an IMDS handler: self.server.node has .lock and .requests."""

    def send(self, status: int, body: str, ctype: str = "text/plain", extra=None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        node = self.server.node
        with node.lock:
            node.requests.append({"t": time.monotonic(), "method": self.command,
                                  "path": self.path, "status": status})


NOT_SHARED = object()  # shared_control's answer for a path each stand-in routes itself

# The stand-ins answer in about 2 ms; a real cloud API takes tens to hundreds of ms, a change
# more than a read. A service time per call (seconds, reads and writes apart) is slept by the
# request's own thread after the answer is computed and outside every lock, so concurrent calls
# overlap as they do on the real API. Instance metadata is never slowed (real IMDS answers in
# about a millisecond). Default 0; the benchmarks' realistic values (bench/vipbench.py
# REALISTIC) are an assumption, not a measurement of either cloud.
SERVICE = {"read": 0.0, "write": 0.0}


def serve_time(is_read: bool) -> None:
    """Sleep the configured service time of one API call."""
    s = SERVICE["read" if is_read else "write"]
    if s > 0:
        time.sleep(s)


def shared_control(cloud, method: str, path: str, body, query):
    """The /_lab/ control calls of both stand-ins: ping, faults, nodes, IMDS requests, the
    data plane. `cloud` has .faults, .add_node, .imds and .dataplane."""
    if path == "ping":
        return {"pid": os.getpid()}
    if path == "faults":
        if method == "DELETE":
            cloud.faults.set([])
        elif method == "POST":
            cloud.faults.set(body if isinstance(body, list) else [body])
        return cloud.faults.rules
    if path == "nodes":
        cloud.add_node(body)
        return {"ok": True}
    if path == "imds/requests":
        node = cloud.imds[query["node"]]
        with node.lock:
            return list(node.requests)
    if path.startswith("dataplane"):
        return cloud.dataplane.control(path, body)
    if path == "service":
        if method == "POST":
            SERVICE.update({k: float(body[k]) for k in ("read", "write") if k in body})
        return dict(SERVICE)
    return NOT_SHARED


# Held by watch_machines() and by a server's add_node(), so a machine booted again under
# the same name never has its new sockets closed for its old PID 1's death.
MACHINES = threading.RLock()


def watch_machines(pids: dict, close_node, sockets: str) -> None:
    """A crashed machine's namespace must die with it: our listening sockets there would keep
    it (and its addresses) alive, so close them (`close_node(name)`) once its PID 1 is gone.
    Runs forever; start it on a daemon thread."""
    while True:
        time.sleep(0.1)
        for name, pid in list(pids.items()):
            if pid_alive(pid):
                continue
            with MACHINES:
                if pids.get(name) != pid:
                    continue  # booted again meanwhile: add_node() closed the old sockets
                del pids[name]
                log(f"machine {name} (pid {pid}) is gone: closing its {sockets}")
                close_node(name)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def power_off(pid: int | None, what: str) -> None:
    """A stopped instance loses its processes and network: SIGKILL its machine's PID 1 (the
    watch_machines loop then closes its IMDS and relays)."""
    if pid and pid_alive(pid):
        log(f"{what}: killing its machine (pid {pid})")
        os.kill(pid, signal.SIGKILL)
