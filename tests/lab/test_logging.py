"""Pacemaker's view of our log lines, on a real one-node cluster.

With Pacemaker's usual settings (PCMK_logfacility=daemon, PCMK_logfile) its executor hands every
agent HA_LOGFACILITY and HA_LOGFILE. By ocf-shellfuncs' rules each line then goes to syslog once
and is appended to pacemaker.log once, by the agent, as shell agents do; it must not come back
through the executor, which logs an agent's stderr as "<op>[pid] error output [ ... ]" (at info in
pacemaker.log; in syslog too when PCMK_logpriority lets info through). Before this, each line
reached pacemaker.log only as that relay. Syslog is a socket of this test (the debug build's
CLOUDHA_SYSLOG_SOCKET hook, passed to the agents through pacemakerd's environment).

Needs root, corosync, pacemaker and pcs (scripts/install-deps.sh) and CLOUDHA_BIN (make lab).
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import failover
import pcmk

VIP = "10.77.0.100"
ADD = f"adding {VIP}/24 to eth0"
REMOVE = f"removing {VIP}/24 from eth0"


class Sink:
    """A syslog socket; keeps every datagram it receives."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.2)
        self.lines: list[str] = []
        self.open = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.open:
            try:
                self.lines.append(self.sock.recv(65536).decode("utf-8", "replace"))
            except OSError:
                continue

    def close(self):
        self.open = False
        self.thread.join()
        self.sock.close()


class SyslogLab(pcmk.Lab):
    """A pcmk.Lab whose Pacemaker logs to syslog (facility daemon) and to pacemaker.log."""

    def __init__(self, sink_path: str, **kw):
        super().__init__(**kw)
        self.pacemaker_env = {"PCMK_logfacility": "daemon", "CLOUDHA_SYSLOG_SOCKET": sink_path}


def test_each_line_reaches_syslog_and_pacemaker_log_once():
    with tempfile.TemporaryDirectory(prefix="cloudha-logging-") as tmp:
        os.chmod(tmp, 0o755)
        sink = Sink(str(Path(tmp) / "syslog.sock"))
        try:
            with SyslogLab(sink.sock.getsockname(), nodes=1, agents=("vip",), client=False,
                           name="logging") as lab:
                failover.create_vip(lab, "node1", params={
                    "ip": VIP, "cidr_netmask": "24", "nic": "eth0", "cloud": "none"})
                lab.wait_running(failover.RSC, "node1", timeout=30)
                time.sleep(3)  # a recurring monitor or two
                lab.node(1).run(["crm_resource", "--resource", failover.RSC, "--meta",
                                 "--set-parameter", "target-role", "--parameter-value",
                                 "Stopped"])
                lab.wait_for(lambda: lab.where(failover.RSC) == [], 30, "vip1 stopped")
                time.sleep(0.5)
                log = (lab.dir / "node1" / "log" / "pacemaker.log").read_text(errors="replace")
        finally:
            sink.close()
    ours = [l for l in log.splitlines() if f"vip({failover.RSC})[" in l]
    relayed = [l for l in ours if "pacemaker-execd" in l]
    print(f"\npacemaker.log lines carrying our messages: {len(ours)} "
          f"({len(relayed)} of them the executor's relay of our stderr)")
    print(f"syslog datagrams from us: {len(sink.lines)}")
    for what in (ADD, REMOVE):
        in_log = [l for l in ours if what in l]
        in_syslog = [l for l in sink.lines if what in l]
        print(f"{what!r}: pacemaker.log {len(in_log)}, syslog {len(in_syslog)}")
        assert len(in_syslog) == 1, in_syslog
        # "<30>" is daemon.info; the tag is ocf-shellfuncs' HA_LOGTAG.
        assert in_syslog[0].startswith(f"<30>vip({failover.RSC})["), in_syslog
        assert len(in_log) == 1, in_log
    assert relayed == [], relayed[:5]
