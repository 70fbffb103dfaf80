"""Sockets inside another network namespace, without Python 3.12's os.setns.

A network namespace belongs to a thread, and a socket keeps the namespace it was created in.
``listen_in(ns_path, addr)`` moves the calling thread into the namespace (libc setns), creates
and binds the socket, and moves the thread back before returning; the rest of the process never
leaves the host's namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()
# Opened at import, by the main thread, while it is still in the host's namespace.
_HOST = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def listen_in(ns_path: str, addr: tuple[str, int], backlog: int = 128) -> socket.socket:
    """A TCP socket listening on addr inside the namespace at ns_path
    (/run/netns/NAME or /proc/PID/ns/net)."""
    fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    with _lock:
        try:
            _setns(fd)
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(addr)
                    s.listen(backlog)
                except BaseException:
                    s.close()
                    raise
            finally:
                try:
                    _setns(_HOST)
                except OSError:
                    # A thread stuck in a node's namespace would send EC2 traffic there.
                    os._exit(97)
        finally:
            os.close(fd)
    return s


def reset(sock: socket.socket) -> None:
    """Abort a TCP connection with a RST and no answer: connect(AF_UNSPEC) on a connected TCP
    socket makes Linux disconnect it the hard way (tcp_disconnect sends a reset)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    unspec = (ctypes.c_char * 16)()  # struct sockaddr, sa_family = AF_UNSPEC (0)
    _libc.connect(sock.fileno(), unspec, 16)
