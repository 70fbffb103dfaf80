"""A real Corosync + Pacemaker cluster of N nodes on one machine, inside namespaces.

Every "machine" (each node, the client, and the hub that carries the bridge) is a process
started with ``unshare --net --mount --uts --ipc --pid --fork --mount-proc`` whose PID 1 is a
``sleep infinity`` renamed to a marker (``cloudha-lab/<lab>/<owner pid>/<machine>``), so a
machine is entered with ``nsenter -t PID -a`` and crashed with one SIGKILL of that PID. Nothing
is added to the host: no ``ip netns`` files, no links in the host's network namespace, no
change under /etc, /var or /usr. Each node gets private mounts (a tmpfs over /run, /dev/shm,
/var/lib/pcsd and /usr/lib/ocf/resource.d; bind mounts of a scratch directory over
/etc/corosync, /var/lib/corosync, /var/lib/pacemaker and /var/log/pacemaker). The scratch
directory is ``/tmp/cloudha-lab/<lab>.<owner pid>``, removed at teardown (kept when
``CLOUDHA_LAB_KEEP=1``).

Addresses (``subnet`` defaults to ``10.77.0``): node i (1-based) is ``<subnet>.<10+i>`` on
``eth0``, the client is ``<subnet>.250``; the bridge in the hub has no address. Node names are
``node1``..``nodeN``, also their host names.

API (everything else is private)::

    with Lab(nodes=2, agents=("vip",), name="pcmk", subnet="10.77.0", client=True,
             binary=None, network=None) as lab:
                                    # binary defaults to $CLOUDHA_BIN; returns when a DC is
                                    # elected and every node is online (lab.up_seconds);
                                    # network: see "Another network" below
        lab.nodes            # [Machine] node1..nodeN;  lab.node("node2") / lab.node(2)
        lab.client           # Machine on the same L2, or None with client=False
        lab.hub              # Machine holding the bridge br0 (use run(..., net_only=True))
        lab.dir              # scratch dir: <node>/log/{pacemaker,corosync}.log, <m>-<name>.log
        m.name, m.ip, m.pid  # m.pid: host PID of the machine's PID 1;  m.alive()
        m.run(argv, check=True, timeout=60, input=None, env=None, net_only=False)
                             # -> CompletedProcess (text, captured); raises if check and rc!=0
        m.sh("shell command", **run_kwargs)
        m.spawn(argv, log_name, env=None) -> Proc   # long-running; .pid (host), .log, .stop()
        m.serve_hostname(port) -> Proc  # TCP 0.0.0.0:port answers the host name; listening
        m.poll_tcp(ip, port, every=0.05, timeout=0.2) -> Poller
                             # .stop(); .results() -> [(time.monotonic(), host name | None)]
        lab.status(on=None) -> {"dc", "nodes": {name: {"online", "standby"}},
                                "resources": {id: {"agent", "roles": {node: role}, "failed"}},
                                "failures": [crm_mon failure attributes]}
        lab.crm_mon(on=None, args=("-1",)) -> str
        lab.where(rsc, on=None) -> sorted node names where rsc is Started/Promoted/Unpromoted
        lab.wait_for(predicate, timeout, what) -> predicate's value  # polls every 0.1 s
        lab.wait_running(rsc, node, timeout=30)   # where(rsc) == [node]
        lab.crash(node) -> time.monotonic() of the SIGKILL of its PID 1
        lab.log_tail(node, lines=40) -> str      # pacemaker + corosync logs, for failures
        lab.stop()
    cleanup_leftovers()      # also run by start()

``node``/``on`` accept 2, "node2" or a Machine; ``on=None`` asks the first node still alive.

Another network (``network=``): an object with ``address(name) -> ip`` and ``attach(machine)``
replaces the hub. For each machine (node1..nodeN, then "client"), ``address`` gives its IP
(corosync's ring0_addr), and ``attach`` is called once the machine exists, has its host name
and ``lo`` up; it must give it a working ``eth0`` before returning (corosync starts next).
There is no hub then (``lab.hub`` is None). ``ec2lab.Ec2Lab(pacemaker=True)`` uses this to put
the nodes on its VPC fabric.

``Lab.stop()`` (also called by ``__exit__`` and when ``start()`` fails) SIGTERMs every
pacemakerd, waits, SIGTERMs corosync, waits, stops spawned processes, then SIGKILLs each PID 1;
the namespaces, links and mounts vanish with their last process. ``start()`` first removes the
leftovers (machines and scratch directories) of labs whose owner process is gone.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import netns

MARK = "cloudha-lab"
SCRATCH = Path("/tmp") / MARK
RUNNING_ROLES = ("Started", "Promoted", "Unpromoted", "Master", "Slave")
UNSHARE = ["unshare", "--net", "--mount", "--uts", "--ipc", "--pid", "--fork", "--mount-proc"]


# ---------------------------------------------------------------- processes by PID


def _alive(pid: int) -> bool:
    """True while pid exists and is not a zombie (a zombie has already died)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pids: list[int], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


def _child_of(popen: subprocess.Popen, timeout: float = 10) -> int:
    """Host PID of the process nsenter/unshare forked (entering a PID namespace needs a fork)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        kids = _children(popen.pid)
        if kids:
            return kids[0]
        if popen.poll() is not None:
            raise RuntimeError(f"{popen.args!r} exited with {popen.returncode} before forking")
        time.sleep(0.01)
    raise RuntimeError(f"{popen.args!r} did not fork within {timeout}s")


class Proc:
    """A long-running process inside a machine, known by its host PID."""

    def __init__(self, name: str, popen: subprocess.Popen, pid: int, log: Path):
        self.name, self.popen, self.pid, self.log = name, popen, pid, log

    def alive(self) -> bool:
        return _alive(self.pid)

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM, then SIGKILL after timeout; reap the nsenter that waits for it."""
        _signal(self.pid, signal.SIGTERM)
        if not _wait_gone([self.pid], timeout):
            _signal(self.pid, signal.SIGKILL)
            _wait_gone([self.pid], 2)
        try:
            self.popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.popen.kill()


# Answers each connection with the host name (the UTS namespace's: the node's name).
HOSTNAME_SERVER = r"""
import socket, socketserver, sys
class H(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(socket.gethostname().encode() + b"\n")
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""

# One line per attempt: "<time.monotonic()> <answer>" or "<time> !<error>". The clock is the
# host's (no time namespaces), so it compares with the test's time.monotonic().
POLLER = r"""
import socket, sys, time
ip, port, every, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
tick = time.monotonic()
while True:
    t = time.monotonic()
    try:
        with socket.create_connection((ip, port), timeout=timeout) as c:
            c.settimeout(timeout)
            answer = c.recv(256).decode().strip() or "!empty"
    except OSError as e:
        answer = "!" + type(e).__name__
    print(f"{t:.4f} {answer}", flush=True)
    tick = max(tick + every, time.monotonic())
    time.sleep(max(0.0, tick - time.monotonic()))
"""


class Poller:
    """A running TCP poller (Machine.poll_tcp). results() -> [(monotonic time, answer)], where
    answer is the server's host name or None when the attempt failed (details in .errors)."""

    def __init__(self, proc: Proc):
        self.proc = proc

    def stop(self) -> None:
        self.proc.stop(timeout=2)

    def lines(self) -> list[tuple[float, str]]:
        out = []
        for line in self.proc.log.read_text().splitlines():
            t, _, answer = line.partition(" ")
            try:
                out.append((float(t), answer))
            except ValueError:
                pass  # a traceback or a torn last line
        return out

    def results(self) -> list[tuple[float, str | None]]:
        return [(t, None if a.startswith("!") else a) for t, a in self.lines()]


# ---------------------------------------------------------------- machines


class Machine:
    """A set of namespaces kept alive by a PID 1 (``sleep infinity``)."""

    def __init__(self, lab: "Lab", name: str, ip: str | None):
        self.lab, self.name, self.ip = lab, name, ip
        self.marker = f"{MARK}/{lab.name}/{os.getpid()}/{name}"
        # exec -a names PID 1 after the lab so a crashed run's leftovers can be found.
        self._unshare = subprocess.Popen(
            UNSHARE + ["--", "bash", "-c", f'exec -a "{self.marker}" sleep infinity'],
            stdin=subprocess.DEVNULL,
            # unshare complains on stderr when its child is SIGKILLed; that is the point here.
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs: list[Proc] = []
        self.pid, self.killed = 0, False
        lab.machines.append(self)  # from now on Lab.stop() kills it, whatever fails next
        self.pid = _child_of(self._unshare)
        lab.wait_for(lambda: _argv(self.pid)[:1] == [self.marker], 10, f"{name} PID 1")

    def alive(self) -> bool:
        return self.pid > 0 and not self.killed and _alive(self.pid)

    def _enter(self, argv: list[str], net_only: bool) -> list[str]:
        # -n only: the host's /proc and files stay visible (ip ... netns PID needs that).
        return ["nsenter", "-t", str(self.pid), "-n" if net_only else "-a", "--"] + list(argv)

    def run(self, argv, check=True, timeout=60, input=None, env=None, net_only=False):
        """Run a command inside the machine and wait for it; output captured as text."""
        r = subprocess.run(
            self._enter(argv, net_only),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        if check and r.returncode != 0:
            raise RuntimeError(
                f"[{self.name}] {' '.join(argv)} -> {r.returncode}\n{r.stdout}{r.stderr}"
            )
        return r

    def sh(self, script: str, **kw):
        return self.run(["sh", "-c", script], **kw)

    def spawn(self, argv, log_name: str, env=None) -> Proc:
        """Start a long-running process in the machine; its output goes to a log file."""
        log = self.lab.dir / f"{self.name}-{log_name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                self._enter(argv, False),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        proc = Proc(log_name, popen, _child_of(popen), log)
        self.procs.append(proc)
        return proc

    def serve_hostname(self, port: int) -> Proc:
        """A TCP server on 0.0.0.0:port that answers every connection with the host name.
        Returns once it listens, so a client's first failures are not the server starting."""
        proc = self.spawn([sys.executable, "-c", HOSTNAME_SERVER, str(port)], f"serve{port}")
        self.lab.wait_for(
            lambda: self.run(["ss", "-Hltn", f"sport = :{port}"], check=False).stdout.strip()
            or not proc.alive(),
            10,
            f"server on {self.name}:{port}",
        )
        if not proc.alive():
            raise RuntimeError(f"server on {self.name}:{port} died: {proc.log.read_text()}")
        return proc

    def poll_tcp(self, ip: str, port: int, every: float = 0.05, timeout: float = 0.2):
        """Connect to ip:port every `every` s from this machine; see Poller."""
        argv = [sys.executable, "-c", POLLER, ip, str(port), str(every), str(timeout)]
        return Poller(self.spawn(argv, f"poll-{ip}-{port}"))

    def kill(self) -> None:
        """SIGKILL PID 1: the kernel kills everything in its PID namespace, the rest follows."""
        if self.killed:
            return  # never signal a PID twice: it may belong to someone else by now
        self.killed = True
        if self.pid > 0:
            # A cloud lab may have powered it off already, and the PID been reused since.
            if _argv(self.pid)[:1] == [self.marker]:
                _signal(self.pid, signal.SIGKILL)
            # PID 1 exits only once every task of its namespace is reaped. A frozen daemon's
            # nsenter stopped itself with its child (it passes stops on), so it would never
            # reap it: kill the wrappers, and the zombies go to the host's init.
            for p in self.procs:
                if p.popen.poll() is None:
                    p.popen.kill()
            _wait_gone([self.pid], 5)
        else:  # unshare never forked: it is all there is
            self._unshare.kill()
        for p in [self._unshare] + [p.popen for p in self.procs]:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


# ---------------------------------------------------------------- configuration files


def _corosync_conf(nodes: list[Machine], cluster: str) -> str:
    entries = "".join(
        f"    node {{\n        name: {n.name}\n        nodeid: {i}\n"
        f"        ring0_addr: {n.ip}\n    }}\n"
        for i, n in enumerate(nodes, 1)
    )
    two = "    two_node: 1\n" if len(nodes) == 2 else ""
    return (
        "totem {\n    version: 2\n"
        f"    cluster_name: {cluster}\n"
        "    transport: knet\n    token: 1000\n"
        "    crypto_cipher: aes256\n    crypto_hash: sha256\n}\n"
        f"nodelist {{\n{entries}}}\n"
        f"quorum {{\n    provider: corosync_votequorum\n{two}}}\n"
        "logging {\n    to_stderr: no\n    to_syslog: no\n    to_logfile: yes\n"
        "    logfile: /var/log/pacemaker/corosync.log\n    timestamp: on\n}\n"
    )


# Seeded before the first start: dc-deadtime=2s makes the first election take ~2 s, not 20 s.
CIB_SEED = """<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-dc-deadtime" name="dc-deadtime" value="2s"/>
        <nvpair id="opt-stonith-enabled" name="stonith-enabled" value="@STONITH@"/>
        <nvpair id="opt-no-quorum-policy" name="no-quorum-policy" value="ignore"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
"""

# Runs inside a fresh node. $1 scratch dir of the node, $2 the binary, $3.. agent names.
# /usr/lib/ocf/resource.d: the host's providers are bind-mounted back onto the tmpfs so
# ocf:heartbeat and ocf:pacemaker agents keep working next to cloudha's links.
NODE_MOUNTS = r"""
set -eu
d=$1; bin=$2; shift 2
mount -t tmpfs -o mode=0755 lab-run /run
mkdir -p /run/crm /run/resource-agents /run/lab/ocf-host /run/lock
chown hacluster:haclient /run/crm; chmod 0750 /run/crm; chmod 1755 /run/resource-agents
mount -t tmpfs -o mode=1777 lab-shm /dev/shm
mount --bind "$d/etc-corosync" /etc/corosync
mount --bind "$d/lib-corosync" /var/lib/corosync
mount --bind "$d/lib-pacemaker" /var/lib/pacemaker
mount --bind "$d/log" /var/log/pacemaker
if [ -d /var/lib/pcsd ]; then mount -t tmpfs -o mode=0700 lab-pcsd /var/lib/pcsd; fi
mount --bind /usr/lib/ocf/resource.d /run/lab/ocf-host
mount -t tmpfs -o mode=0755 lab-ocf /usr/lib/ocf/resource.d
for p in /run/lab/ocf-host/*; do
    [ -d "$p" ] || continue
    mkdir "/usr/lib/ocf/resource.d/${p##*/}"
    mount --bind "$p" "/usr/lib/ocf/resource.d/${p##*/}"
done
mkdir /usr/lib/ocf/resource.d/cloudha
for a in "$@"; do ln -s "$bin" "/usr/lib/ocf/resource.d/cloudha/$a"; done
"""


# With STONITH on: /usr/sbin gets fence_cloudha (a link to the binary) through an overlay in
# the node's mount namespace only, where Pacemaker's fencer looks for fence agents; the host's
# /usr/sbin is never touched. $1 scratch dir of the node, $2 the binary.
NODE_FENCE_AGENT = r"""
set -eu
d=$1; bin=$2
mkdir -p "$d/sbin"
mount -t tmpfs -o mode=0755 lab-sbin "$d/sbin"
mkdir "$d/sbin/up" "$d/sbin/work"
ln -s "$bin" "$d/sbin/up/fence_cloudha"
mount -t overlay lab-usr-sbin -o "lowerdir=/usr/sbin,upperdir=$d/sbin/up,workdir=$d/sbin/work" \
    /usr/sbin
"""


# ---------------------------------------------------------------- the lab


class Lab:
    """N Pacemaker nodes, a client and a bridge. See the module docstring for the API."""

    # Added to (or replacing) pacemakerd's environment on every node, e.g. its log settings.
    pacemaker_env: dict[str, str] = {}

    def __init__(
        self,
        nodes: int = 2,
        agents=("vip",),
        name: str = "pcmk",
        subnet: str = "10.77.0",
        client: bool = True,
        binary: str | None = None,
        network=None,
        stonith: bool = False,
    ):
        if not 1 <= nodes <= 16:
            raise ValueError("nodes must be 1..16")
        self.name, self.count, self.agents, self.subnet = name, nodes, list(agents), subnet
        self.want_client = client
        self.network = network
        self.stonith = stonith
        self.binary = binary or os.environ.get("CLOUDHA_BIN", "")
        self.dir = SCRATCH / f"{name}.{os.getpid()}"
        self.hub: Machine | None = None
        self.client: Machine | None = None
        self.nodes: list[Machine] = []
        self.machines: list[Machine] = []  # every machine started, hub included, for stop()
        self.daemons: dict[str, dict[str, Proc]] = {}  # node name -> corosync/pacemakerd

    # -- context manager

    def __enter__(self) -> "Lab":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- bring up

    def start(self) -> "Lab":
        t0 = time.monotonic()
        if not self.binary or not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"CLOUDHA_BIN={self.binary!r} is not an executable (make build)")
        cleanup_leftovers()
        try:
            self._prepare_dir()
            self._network()
            for n in self.nodes:
                self._node_fs(n)
            for n in self.nodes:
                self._start_corosync(n)
            for n in self.nodes:
                self._start_pacemaker(n)
            self.wait_for(self._cluster_ready, 60, "DC elected and every node online")
        except BaseException:
            print(self.log_tail(self.nodes[0]) if self.nodes else "")
            self.stop()
            raise
        self.up_seconds = time.monotonic() - t0
        return self

    def _prepare_dir(self) -> None:
        self.dir.mkdir(parents=True)
        # A copy, not the build output itself: a concurrent `cargo build` replaces that file
        # and would leave the cluster without an agent for a moment.
        self.bin = self.dir / "cloudha"
        shutil.copy2(self.binary, self.bin)
        subprocess.run(
            ["corosync-keygen", "-k", str(self.dir / "authkey")],
            check=True,
            capture_output=True,
        )

    def _network(self) -> None:
        if self.network is None:
            self.hub = Machine(self, "hub", None)
            self.hub.run(["ip", "link", "add", "name", "br0", "type", "bridge"], net_only=True)
            self.hub.run(["ip", "link", "set", "br0", "up"], net_only=True)
        for i in range(1, self.count + 1):
            self.nodes.append(self._machine(f"node{i}", self._address(f"node{i}", 10 + i)))
        if self.want_client:
            self.client = self._machine("client", self._address("client", 250))

    def _address(self, name: str, host: int) -> str:
        if self.network is not None:
            return self.network.address(name)
        return f"{self.subnet}.{host}"

    def _machine(self, name: str, ip: str) -> Machine:
        """A machine with eth0 on the bridge (veth v-NAME in the hub), or wired by the
        network hook."""
        m = Machine(self, name, ip)
        if self.network is not None:
            m.sh(f"hostname {name} && ip link set lo up")
            self.network.attach(m)
            return m
        hub = f"v-{name}"
        self.hub.run(
            ["ip", "link", "add", "name", hub, "type", "veth",
             "peer", "name", "eth0", "netns", str(m.pid)],
            net_only=True,
        )
        self.hub.run(["ip", "link", "set", hub, "master", "br0", "up"], net_only=True)
        m.sh(
            f"hostname {name} && ip link set lo up && "
            f"ip addr add {ip}/24 dev eth0 && ip link set eth0 up"
        )
        return m

    def _node_fs(self, n: Machine) -> None:
        d = self.dir / n.name
        ha_uid, ha_gid = pwd.getpwnam("hacluster").pw_uid, grp.getgrnam("haclient").gr_gid
        for sub in ("etc-corosync", "lib-corosync", "log", "lib-pacemaker"):
            (d / sub).mkdir(parents=True)
        for sub in ("cib", "pengine", "blackbox", "cores"):
            (d / "lib-pacemaker" / sub).mkdir(mode=0o750)
            os.chown(d / "lib-pacemaker" / sub, ha_uid, ha_gid)
        os.chown(d / "log", ha_uid, ha_gid)
        (d / "log").chmod(0o770)
        cib = d / "lib-pacemaker" / "cib" / "cib.xml"
        cib.write_text(CIB_SEED.replace("@STONITH@", "true" if self.stonith else "false"))
        os.chown(cib, ha_uid, ha_gid)
        cib.chmod(0o600)
        (d / "etc-corosync" / "corosync.conf").write_text(_corosync_conf(self.nodes, self.name))
        shutil.copy2(self.dir / "authkey", d / "etc-corosync" / "authkey")
        self._node_mounts(n)

    def _node_mounts(self, n: Machine) -> None:
        """The node's own /etc/corosync, /var/lib/pacemaker, logs and the agents, mounted in its
        mount namespace (again at every boot: the directories are its disk)."""
        d = self.dir / n.name
        n.run(["sh", "-c", NODE_MOUNTS, "node-mounts", str(d), str(self.bin)] + self.agents)
        if self.stonith:
            n.run(["sh", "-c", NODE_FENCE_AGENT, "node-fence-agent", str(d), str(self.bin)])

    def _start_corosync(self, n: Machine) -> None:
        proc = n.spawn(["setsid", "corosync", "-f"], "corosync")
        self.daemons[n.name] = {"corosync": proc}
        # pacemakerd gives up if corosync's IPC is not there yet.
        self.wait_for(
            lambda: n.run(["corosync-cfgtool", "-s"], check=False, timeout=5).returncode == 0,
            20,
            f"corosync on {n.name}",
        )

    def _start_pacemaker(self, n: Machine) -> None:
        # Agents inherit this environment. The test process's own AWS settings (e.g. the
        # EC2 lab disabling metadata for host-side clients) are not the nodes'.
        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env = {
            **base,
            "PCMK_logfacility": "none",
            "PCMK_logfile": "/var/log/pacemaker/pacemaker.log",
            **self.pacemaker_env,
        }
        self.daemons[n.name]["pacemakerd"] = n.spawn(
            ["setsid", "pacemakerd"], "pacemakerd", env=env
        )

    def _cluster_ready(self) -> bool:
        st = self.status(check=False)
        if not st or not st["dc"]:
            return False
        online = {k for k, v in st["nodes"].items() if v["online"]}
        return online == {n.name for n in self.nodes}

    # -- looking at the cluster

    def node(self, which) -> Machine:
        """node(2) or node("node2")."""
        name = f"node{which}" if isinstance(which, int) else which
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def _live(self, on) -> Machine:
        """The node named by on (2, "node2" or a Machine), or the first live one for None."""
        if on is not None:
            return self.node(on) if not isinstance(on, Machine) else on
        for n in self.nodes:
            if n.alive():
                return n
        raise RuntimeError("no node is alive")

    def crm_mon(self, on=None, args=("-1",)) -> str:
        return self._live(on).run(["crm_mon", *args], check=False, timeout=20).stdout

    def status(self, on=None, check=True) -> dict | None:
        """crm_mon's XML as {"dc": name|None, "nodes": {name: {...}}, "resources": {id: {...}}}.

        A resource entry is {"agent", "roles": {node: role}, "failed"}; "failures" lists the
        failed actions (crm_mon -f) as attribute dicts (op_key, node, exitreason, ...).
        Returns None when crm_mon cannot answer yet (check=False) instead of raising.
        """
        r = self._live(on).run(["crm_mon", "-1", "--output-as=xml"], check=False, timeout=20)
        try:
            root = ET.fromstring(r.stdout)
        except ET.ParseError:
            if check:
                raise RuntimeError(f"crm_mon failed: {r.stdout}{r.stderr}")
            return None
        dc = root.find("summary/current_dc")
        nodes = {
            e.get("name"): {"online": e.get("online") == "true", "standby": e.get("standby"),
                            "pending": e.get("pending") == "true"}
            for e in root.iterfind("nodes/node")
        }
        resources = {}
        for e in root.iter("resource"):
            # A clone lists one <resource> per instance under the same id: merge them.
            rsc = resources.setdefault(
                e.get("id"), {"agent": e.get("resource_agent"), "roles": {}, "failed": False}
            )
            rsc["failed"] |= e.get("failed") == "true"
            for x in e.iterfind("node"):
                rsc["roles"][x.get("name")] = e.get("role")
        failures = [dict(f.attrib) for f in root.iterfind("failures/failure")]
        return {
            "dc": dc.get("name") if dc is not None and dc.get("present") == "true" else None,
            "nodes": nodes,
            "resources": resources,
            "failures": failures,
        }

    def where(self, rsc: str, on=None) -> list[str]:
        """Sorted names of the nodes where rsc has finished starting (not Starting/Stopping)."""
        st = self.status(on, check=False) or {"resources": {}}
        roles = st["resources"].get(rsc, {"roles": {}})["roles"]
        return sorted(n for n, role in roles.items() if role in RUNNING_ROLES)

    def wait_for(self, predicate, timeout: float, what: str):
        """Poll predicate every 0.1 s until it returns something true; return that."""
        value = netns.poll(predicate, timeout, 0.1)
        if not value:
            raise TimeoutError(f"waited {timeout}s for {what}")
        return value

    def wait_running(self, rsc: str, node, timeout: float = 30, on=None) -> None:
        name = self._live(node).name
        self.wait_for(lambda: self.where(rsc, on) == [name], timeout, f"{rsc} on {name}")

    def log_tail(self, node, lines: int = 40) -> str:
        n = self._live(node)
        out = []
        for f in ("pacemaker.log", "corosync.log"):
            p = self.dir / n.name / "log" / f
            if p.exists():
                out.append(f"==> {n.name}/{f} <==")
                out += p.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    # -- failures

    def freeze(self, node) -> float:
        """Hang the node without killing it: SIGSTOP every process of its PID namespace but
        PID 1 (daemons are entered into it, not forked by PID 1), so corosync and the services
        stop answering while the instance still "runs". Returns time.monotonic()."""
        n = self._live(node)
        ns = os.readlink(f"/proc/{n.pid}/ns/pid")
        t = time.monotonic()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == n.pid:
                continue
            try:
                same = os.readlink(f"/proc/{entry}/ns/pid") == ns
            except OSError:
                continue
            if same:
                _signal(int(entry), signal.SIGSTOP)
        return t

    def crash(self, node) -> float:
        """Pull the plug: SIGKILL the node's PID 1. Returns time.monotonic() of the kill."""
        n = self._live(node)
        t = time.monotonic()
        n.kill()
        return t

    def boot(self, node) -> Machine:
        """Power a node on again (after a crash, or a cloud lab's power off): what is left of
        its old machine is killed, then a new machine under the same name and address, wired
        by the network hook as before, its disk (CIB, logs) as it was left, corosync and
        pacemakerd started, so it rejoins the cluster as a rebooted node does. Returns the new
        machine."""
        old = self.node(node)
        old.kill()  # never signals a reused PID
        i = self.nodes.index(old)
        m = self._machine(old.name, old.ip)
        self.nodes[i] = m
        self._node_mounts(m)
        self._start_corosync(m)
        self._start_pacemaker(m)
        return m

    # -- teardown

    def stop(self) -> None:
        """Stop everything this lab started, by PID; safe to call twice or after a failure."""
        live = [n for n in self.nodes if n.alive()]
        for daemon, wait in (("pacemakerd", 30), ("corosync", 10)):
            procs = [self.daemons.get(n.name, {}).get(daemon) for n in live]
            procs = [p for p in procs if p and p.alive()]
            for p in procs:
                _signal(p.pid, signal.SIGTERM)
            _wait_gone([p.pid for p in procs], wait)
        for m in self.machines:
            for p in m.procs:
                if p.alive():
                    p.stop(timeout=2)
        for m in reversed(self.machines):
            m.kill()
        self.machines, self.nodes, self.client, self.hub = [], [], None, None
        if os.environ.get("CLOUDHA_LAB_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


def cleanup_leftovers() -> list[int]:
    """Kill the machines and remove the scratch directories of labs whose owner is gone.

    A lab whose owner still runs (another test at the same time) is left alone: its
    namespaces are private, so it does not get in the way.
    """
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _argv(int(entry.name))
        parts = argv[0].split("/") if argv else []
        if len(parts) == 4 and parts[0] == MARK and parts[2].isdigit():
            if not _alive(int(parts[2])):
                _signal(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    _wait_gone(killed, 5)
    if SCRATCH.is_dir():
        for d in SCRATCH.iterdir():
            owner = d.name.rsplit(".", 1)[-1]
            if owner.isdigit() and not _alive(int(owner)):
                shutil.rmtree(d, ignore_errors=True)
    return killed
