"""A small HTTP proxy for the lab, started (and stopped, by PID) by a test inside a node's
namespace: CONNECT tunnels and absolute-form requests (`GET http://host:port/path`), as a site's
Squid would take them. It never resolves a name or connects anywhere but through its map:

    python3 proxy.py LISTEN_PORT LOG_FILE NAME:PORT=IP:PORT ...

Any other destination gets 403. Each request is logged as one JSON line: {"method", "target",
"mapped"} (the target as the client asked for it), so a test sees what went through the proxy.
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading

PORT, LOG = int(sys.argv[1]), sys.argv[2]
MAP = dict(a.split("=", 1) for a in sys.argv[3:])
_log_lock = threading.Lock()


def log(method: str, target: str, mapped: str | None) -> None:
    with _log_lock, open(LOG, "a") as f:
        f.write(json.dumps({"method": method, "target": target, "mapped": mapped}) + "\n")


def upstream(hostport: str) -> socket.socket | None:
    to = MAP.get(hostport)
    if to is None:
        return None
    host, port = to.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def read_head(f) -> list[bytes] | None:
    lines = []
    while True:
        line = f.readline(65537)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line)


def read_exact(f, n: int) -> bytes:
    out = b""
    while len(out) < n and (chunk := f.read(n - len(out))):
        out += chunk
    return out


class Handler(socketserver.StreamRequestHandler):
    rbufsize = 0  # unbuffered: nothing of a tunnel's first bytes is left in a buffer

    def handle(self):
        head = read_head(self.rfile)
        if not head:
            return
        method, target, version = head[0].decode("latin-1").split()
        if method == "CONNECT":
            up = upstream(target)
            log(method, target, MAP.get(target))
            if up is None:
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            t = threading.Thread(target=pipe, args=(up, self.connection), daemon=True)
            t.start()
            pipe(self.connection, up)
            t.join(5)
            return
        # Absolute form: one request per upstream connection (Connection: close), then the
        # next request on this client connection, if any.
        while head:
            method, target, version = head[0].decode("latin-1").split()
            rest = target.split("://", 1)[-1]
            hostport, _, path = rest.partition("/")
            if ":" not in hostport:
                hostport += ":80"
            up = upstream(hostport)
            log(method, target, MAP.get(hostport))
            if up is None:
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            length = 0
            headers = []
            for h in head[1:]:
                name = h.split(b":", 1)[0].strip().lower()
                if name == b"content-length":
                    length = int(h.split(b":", 1)[1])
                if name in (b"connection", b"proxy-connection", b"proxy-authorization"):
                    continue
                headers.append(h)
            body = read_exact(self.rfile, length)
            up.sendall(f"{method} /{path} {version}\r\n".encode("latin-1") + b"".join(headers)
                       + b"Connection: close\r\n\r\n" + body)
            answer = b""
            while data := up.recv(65536):
                answer += data
            up.close()
            # Tell the client this connection ends with the answer (the upstream's did).
            self.wfile.write(answer)
            self.wfile.flush()
            head = read_head(self.rfile)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    with Server(("127.0.0.1", PORT), Handler) as s:
        print("listening", flush=True)
        s.serve_forever()
