"""Ec2Lab: the test-side half of the EC2 lab (see the package docstring for the API)."""

from __future__ import annotations

import ipaddress
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # tests/lab: netns.py and pcmk.py
    sys.path.insert(0, str(HERE.parent))

import netns  # noqa: E402
import pcmk  # noqa: E402

SCRATCH = Path("/tmp/cloudha-ec2lab")
ETC_NETNS = Path("/etc/netns")
AMI = "ami-12c6146b"  # one of moto's stock images: RunInstances needs a known AMI
ROLE = "cloudha-lab-role"
IMDS_IP = "169.254.169.254"

# Answers each TCP connection with the name given on the command line (ip netns namespaces
# share the host's UTS namespace, so the host name would not tell nodes apart).
NAME_SERVER = r"""
import socketserver, sys
name = sys.argv[2].encode() + b"\n"
class H(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(name)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
socketserver.ThreadingTCPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""

ONE_SHOT = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
        c.settimeout(float(sys.argv[3]))
        print(c.recv(256).decode().strip())
except OSError:
    pass
"""


def sh(*cmd, check=True, timeout=30, **kw) -> subprocess.CompletedProcess:
    return netns.sh(*cmd, check=check, timeout=timeout, **kw)


def clean_env(extra: dict | None = None) -> dict:
    """The host's environment without AWS settings or proxies: nothing may lead outward."""
    env = netns.host_env(("AWS_", "OCF_", "HA_"), proxies=False)
    env["NO_PROXY"] = "*"
    env.update(extra or {})
    return env


# ---------------------------------------------------------------- nodes


class Eni:
    """One ENI of a node: .id, .mac, .ip (primary), .device (index), .ifname in the node."""

    def __init__(self, id, mac, ip, device, ifname):
        self.id, self.mac, self.ip, self.device, self.ifname = id, mac, ip, device, ifname

    def __repr__(self):
        return f"Eni({self.id} {self.ifname} {self.mac} {self.ip})"


class Host:
    """Something with a network namespace in the lab: a node or the client."""

    def __init__(self, lab: "Ec2Lab", name: str, ns: str, machine=None):
        self.lab, self.name, self.ns, self.machine = lab, name, ns, machine

    def __repr__(self):
        return f"{type(self).__name__}({self.name})"

    @property
    def ns_path(self) -> str:
        return f"/proc/{self.machine.pid}/ns/net" if self.machine else f"/run/netns/{self.ns}"

    def wrap(self, argv) -> list[str]:
        """argv run inside this host: `ip netns exec` (which also gives it the namespace's
        /sys), or for a Pacemaker machine its network, mount and UTS namespaces (its /run,
        /sys and host name; not its PID namespace, so the PID is the process's own)."""
        if self.machine is not None:
            return ["nsenter", "-t", str(self.machine.pid), "-n", "-m", "-u", "--"] + list(argv)
        return ["ip", "netns", "exec", self.ns] + list(argv)

    def exec(self, argv, env=None, timeout=60, check=False, input=None):
        """Run argv in the namespace, wait; CompletedProcess with text output. env=None: the
        host's environment without AWS_*, OCF_*, HA_* and proxies (the test process has
        AWS_EC2_METADATA_DISABLED=true; a node must not)."""
        p = subprocess.run(self.wrap(argv), capture_output=True, text=True, timeout=timeout,
                           env=clean_env() if env is None else env, input=input)
        if check and p.returncode != 0:
            raise RuntimeError(f"[{self.name}] {' '.join(argv)} -> {p.returncode}\n"
                               f"{p.stdout}{p.stderr}")
        return p

    def popen(self, argv, env=None, **kw) -> subprocess.Popen:
        """Start argv in the namespace; killed by PID when the lab closes."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(self.wrap(argv), env=clean_env() if env is None else env,
                             start_new_session=True, **kw)
        self.lab.procs.append(p)
        return p

    def iproute(self, *args) -> subprocess.CompletedProcess:
        """`ip ARGS` here (raises on failure)."""
        return self.exec(["ip", *args], check=True)

    def serve_name(self, port: int, name: str | None = None):
        """TCP server on 0.0.0.0:port answering every connection with this host's name;
        returns once it listens (a Popen; in the Pacemaker form the machine's own
        serve_hostname, a pcmk.Proc that dies with the machine when it crashes)."""
        if self.machine is not None:
            return self.machine.serve_hostname(port)
        log = open(self.lab.dir / f"{self.name}-serve{port}.log", "ab")
        p = self.popen([sys.executable, "-c", NAME_SERVER, str(port), name or self.name],
                       stdout=log, stderr=subprocess.STDOUT)
        netns.wait_for(lambda: self.exec(["ss", "-Hltn", f"sport = :{port}"]).stdout.strip()
                       or p.poll() is not None, 10, f"server on {self.name}:{port}")
        if p.poll() is not None:
            raise RuntimeError(f"name server on {self.name}:{port} died")
        return p

    def poll(self, ip: str, port: int, every: float = 0.05, timeout: float = 0.2):
        """Connect to ip:port every `every` s from here: a pcmk.Poller (.stop(), .results()
        -> [(time.monotonic(), name | None)]); in the Pacemaker form it runs inside the
        machine."""
        if self.machine is not None:
            return self.machine.poll_tcp(ip, port, every, timeout)
        path = self.lab.dir / f"{self.name}-poll-{ip}-{port}-{len(self.lab.procs)}.log"
        with open(path, "ab") as out:
            p = self.popen([sys.executable, "-c", pcmk.POLLER, ip, str(port), str(every),
                            str(timeout)], stdout=out, stderr=subprocess.STDOUT)
        return pcmk.Poller(pcmk.Proc(f"poll-{ip}", p, p.pid, path))

    def who_answers(self, ip: str, port: int, timeout: float = 0.5) -> str | None:
        out = self.exec([sys.executable, "-c", ONE_SHOT, ip, str(port), str(timeout)],
                        timeout=timeout + 10).stdout.strip()
        return out or None


class Node(Host):
    """An EC2 instance: .instance_id, .eni_id/.mac/.ip/.ifname of its primary ENI (device 0),
    .enis (every ENI, device order), .key (its access key: IMDS role credentials and
    awsvip's profile), .machine (the pcmk.Machine in the Pacemaker form, else None)."""

    def __init__(self, lab, name, ns, instance_id, enis: list[Eni], key, machine=None):
        super().__init__(lab, name, ns, machine)
        self.instance_id, self.enis, self.key = instance_id, enis, key
        p = enis[0]
        self.eni_id, self.mac, self.ip, self.ifname = p.id, p.mac, p.ip, p.ifname


# ---------------------------------------------------------------- control of the server


class _Ctl:
    def __init__(self, lab: "Ec2Lab"):
        self.lab = lab

    def _call(self, method: str, path: str, body=None):
        return self.lab._control(method, path, body)


class Faults(_Ctl):
    """Failures of the endpoint: throttle (503 RequestLimitExceeded), http500 (InternalError),
    reset (TCP RST, no answer), slow (delay s, then the real answer), authfailure (401
    AuthFailure: credentials EC2 no longer accepts)."""

    def set(self, kind: str, count: int | None = None, actions=None, delay: float | None = None,
            keys=None) -> None:
        """Replace the faults: `kind` for the next `count` matching requests (None: until
        cleared), only for `actions` / callers `keys` when given."""
        self._call("POST", "faults", [self._rule(kind, count, actions, delay, keys)])

    def add(self, kind: str, count=None, actions=None, delay=None, keys=None) -> None:
        rules = self._call("GET", "faults") + [self._rule(kind, count, actions, delay, keys)]
        self._call("POST", "faults", rules)

    def clear(self) -> None:
        self._call("DELETE", "faults")

    @staticmethod
    def _rule(kind, count, actions, delay, keys) -> dict:
        return {"kind": kind, "count": count, "actions": _list(actions), "delay": delay,
                "keys": _list(keys)}


class Iam(_Ctl):
    """The deny list (UnauthorizedOperation / STS AccessDenied, 403)."""

    def deny(self, *actions: str, key: str | None = None) -> None:
        """Deny actions ("AssignPrivateIpAddresses", "ec2:...", "*") to every caller, or to
        the access key `key` (a Node's .key) only. Adds to what is already denied."""
        names = [a.split(":", 1)[-1] for a in actions]
        self._call("POST", "iam/deny", {"actions": names, "key": key})

    def allow_all(self) -> None:
        self._call("POST", "iam/allow_all", {})


class Imds(_Ctl):
    """The nodes' metadata services."""

    def expire_tokens(self) -> None:
        """Every token issued so far is invalid from now on (GETs with it answer 401)."""
        self._call("POST", "imds/expire", {})

    def requests(self, node, since: float | None = None) -> list[dict]:
        """[{t, method, path, status}] received by node's IMDS."""
        name = node if isinstance(node, str) else node.name
        reqs = self._call("GET", f"imds/requests?node={name}")
        return [r for r in reqs if since is None or r["t"] >= since]

    def count(self, node, path: str | None = None, method: str | None = None,
              since: float | None = None) -> int:
        return sum(1 for r in self.requests(node, since)
                   if (path is None or r["path"] == path) and
                   (method is None or r["method"] == method))

    def set_lag(self, seconds: float) -> None:
        """local-ipv4s shows the state of `seconds` ago (EC2 remaps asynchronously)."""
        self._call("POST", "imds/lag", {"seconds": seconds})


def _list(x):
    if x is None:
        return None
    return [x] if isinstance(x, str) else list(x)


# ---------------------------------------------------------------- the lab


class Ec2Lab:
    """See the package docstring."""

    def __init__(self, nodes: int = 2, name: str = "aws", region: str = "eu-west-1",
                 pacemaker: bool = False, agents=("vip",), binary: str | None = None,
                 second_eni=False, client: bool = True, vpc_cidr: str = "10.0.0.0/16",
                 subnet_cidr: str = "10.0.1.0/24", client_cidr: str = "10.0.2.0/24",
                 dataplane_lag: float = 0.0, imds_lag: float = 0.0, stonith: bool = False):
        if not 1 <= nodes <= 16:
            raise ValueError("nodes must be 1..16")
        self.count_nodes, self.name, self.region = nodes, name, region
        self.az = region + "a"
        self.pacemaker, self.agents, self.binary = pacemaker, tuple(agents), binary
        self.stonith = stonith
        if second_eni is True:
            second_eni = range(1, nodes + 1)
        self.second_eni = set(second_eni or ())
        self.want_client = client
        self.vpc_cidr, self.subnet_cidr, self.client_cidr = vpc_cidr, subnet_cidr, client_cidr
        self.initial_dataplane_lag, self.initial_imds_lag = dataplane_lag, imds_lag
        self.tag = f"{netns.PREFIX}{os.getpid()}-{next(netns._counter)}"
        # <name>-<n>.<owner pid>: unique per lab, the owner last (sweep_leftovers reads it).
        self.dir = SCRATCH / f"{name}-{self.tag.rsplit('-', 1)[-1]}.{os.getpid()}"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.server: subprocess.Popen | None = None
        self.nodes: list[Node] = []
        self.client: Host | None = None
        self.cluster: pcmk.Lab | None = None
        self.faults, self.iam, self.imds = Faults(self), Iam(self), Imds(self)
        self._instances: dict[str, dict] = {}  # node name -> provisioned instance + ENIs
        self._closing = threading.Event()
        self.boots: list[tuple[float, str, str | None]] = []  # (monotonic, node, error)
        self.up_seconds = self.down_seconds = None

    def __enter__(self) -> "Ec2Lab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- addresses

    def _addr(self, cidr: str, host: int) -> str:
        return str(ipaddress.ip_network(cidr).network_address + host)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet_cidr).prefixlen

    @property
    def router(self) -> str:
        """The VPC router's address in the node subnet (.1, as in EC2)."""
        return self._addr(self.subnet_cidr, 1)

    def node(self, which) -> Node:
        """node(2), node("node2") or a Node."""
        if isinstance(which, Node):
            return which
        name = f"node{which}" if isinstance(which, int) else which
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    # -- bring up

    def start(self) -> "Ec2Lab":
        t0 = time.monotonic()
        sweep_leftovers()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._start_server()
            self._provision()
            self._fabric()
            if self.pacemaker:
                self._start_cluster()
            else:
                for i in range(1, self.count_nodes + 1):
                    self._ns_node(i)
                if self.want_client:
                    self._ns_client()
            self._control("POST", "dataplane", {"lag": self.initial_dataplane_lag})
            if self.initial_imds_lag:
                self.imds.set_lag(self.initial_imds_lag)
            self._write_aws_cli()
        except BaseException:
            self.close()
            raise
        self.up_seconds = time.monotonic() - t0
        return self

    def _start_server(self) -> None:
        env = clean_env({"PYTHONPATH": str(HERE.parent), "AWS_EC2_METADATA_DISABLED": "true",
                         "MOTO_ALLOW_NONEXISTENT_REGION": "true"})
        ports = self._spawn_server("ec2lab.server", ["--region", self.region], env)
        self.port, self.control_port = ports["endpoint"], ports["control"]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.control_url = f"http://127.0.0.1:{self.control_port}"
        self.ec2 = self.client_for("ec2", key="lab", url=self.control_url)

    def _spawn_server(self, module: str, args: list[str], env: dict) -> dict:
        """Start `python3 -m module args` (stopped by its PID at close; it also exits when
        this process does) and return the ports it prints on its first line."""
        log = open(self.dir / "server.log", "ab")
        self.server = subprocess.Popen(
            [sys.executable, "-m", module, *args, "--owner", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env,
            cwd=str(HERE.parent), start_new_session=True)
        ready, _, _ = select.select([self.server.stdout], [], [], 30)
        line = self.server.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"{module} did not start: {self._server_log()}")
        return json.loads(line)

    def _server_log(self) -> str:
        try:
            return (self.dir / "server.log").read_text()[-3000:]
        except OSError:
            return ""

    def client_for(self, service: str = "ec2", key: str = "lab", url: str | None = None):
        """A host-side boto3 client (IMDS disabled, explicit endpoint). Default: straight to
        the control port as the lab (not counted, no faults, no IAM). url=lab.endpoint and a
        node's key make it an agent-like caller."""
        # botocore reads this from the process environment only. Nodes never inherit it:
        # Host.exec/popen and aws_env() strip AWS_* (pcmk.Lab's daemons must too).
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        import boto3
        from botocore.config import Config
        return boto3.client(service, endpoint_url=url or self.control_url,
                            region_name=self.region, aws_access_key_id=key,
                            aws_secret_access_key="lab-secret",
                            config=Config(retries={"total_max_attempts": 1}))

    def _control(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.control_url}/_lab/{path}", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"lab control {method} {path}: {e.read().decode()}") from None

    def _provision(self) -> None:
        """VPC, node subnet, client subnet, one instance per node (+ a second ENI)."""
        ec2 = self.ec2
        self.vpc_id = ec2.create_vpc(CidrBlock=self.vpc_cidr)["Vpc"]["VpcId"]
        self.subnet_id = ec2.create_subnet(VpcId=self.vpc_id, CidrBlock=self.subnet_cidr,
                                           AvailabilityZone=self.az)["Subnet"]["SubnetId"]
        self.client_subnet_id = ec2.create_subnet(
            VpcId=self.vpc_id, CidrBlock=self.client_cidr,
            AvailabilityZone=self.az)["Subnet"]["SubnetId"]
        for i in range(1, self.count_nodes + 1):
            name = f"node{i}"
            inst = ec2.run_instances(
                ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                SubnetId=self.subnet_id, PrivateIpAddress=self._addr(self.subnet_cidr, 10 + i),
                TagSpecifications=[{"ResourceType": "instance",
                                    "Tags": [{"Key": "Name", "Value": name}]}],
            )["Instances"][0]
            nic = inst["NetworkInterfaces"][0]
            enis = [Eni(nic["NetworkInterfaceId"], nic["MacAddress"], nic["PrivateIpAddress"],
                        0, "eth0")]
            if i in self.second_eni:
                e = ec2.create_network_interface(
                    SubnetId=self.subnet_id,
                    PrivateIpAddress=self._addr(self.subnet_cidr, 30 + i),
                    Description=f"{name} eth1")["NetworkInterface"]
                ec2.attach_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"],
                                             InstanceId=inst["InstanceId"], DeviceIndex=1)
                enis.append(Eni(e["NetworkInterfaceId"], e["MacAddress"],
                                e["PrivateIpAddress"], 1, "eth1"))
            self._instances[name] = {"instance_id": inst["InstanceId"], "enis": enis,
                                     "key": f"AKIALAB{name.upper()}"}
        self._warm_up()

    def _warm_up(self) -> None:
        """moto's first call of an action is slow (imports, templates): make them now so no
        test or benchmark times them."""
        ec2 = self.ec2
        ec2.describe_instances()
        ec2.describe_network_interfaces()
        ec2.describe_addresses()
        ec2.describe_route_tables()
        ec2.describe_subnets()
        eni = self._instances["node1"]["enis"][0].id
        ip = self._addr(self.subnet_cidr, 254)
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=[ip])
        ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=[ip])
        self.client_for("sts").get_caller_identity()

    # -- the fabric (VPC router)

    def _fabric(self) -> None:
        self.fabric = self._namespace("fabric")
        # A router that answers ARP for everything it routes elsewhere (proxy_arp; no delay,
        # set per veth: neigh/default has no sysctl outside the host's namespace),
        # forwards, and drops whatever in the VPC has no /32 (EC2 does not answer for it).
        self._sysctls(self.fabric, {"net.ipv4.ip_forward": 1,
                                    "net.ipv4.conf.all.rp_filter": 0,
                                    "net.ipv4.conf.default.rp_filter": 0,
                                    "net.ipv4.conf.default.proxy_arp": 1})
        self._batch(self.fabric, [
            f"addr add {self.router}/32 dev lo",
            f"addr add {self._addr(self.client_cidr, 1)}/32 dev lo",
            f"route add blackhole {self.vpc_cidr}",
        ])
        self._control("POST", "dataplane", {"fabric": self.fabric})

    def _namespace(self, role: str) -> str:
        ns = f"{self.tag}-{role}"
        # resolv.conf pinned to loopback before anything runs there: nothing resolves outward.
        d = ETC_NETNS / ns
        d.mkdir(parents=True, exist_ok=True)
        (d / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def _sysctls(self, ns_or_pid, values: dict) -> None:
        script = "".join(f"echo {v} > /proc/sys/{k.replace('.', '/')}\n"
                         for k, v in values.items())
        if isinstance(ns_or_pid, int):
            sh("nsenter", "-t", str(ns_or_pid), "-n", "--", "sh", "-ec", script)
        else:
            sh("ip", "netns", "exec", ns_or_pid, "sh", "-ec", script)

    def _batch(self, ns_or_pid, cmds: list[str]) -> None:
        argv = (["nsenter", "-t", str(ns_or_pid), "-n", "--", "ip", "-batch", "-"]
                if isinstance(ns_or_pid, int) else ["ip", "-n", ns_or_pid, "-batch", "-"])
        sh(*argv, input="\n".join(cmds) + "\n")

    def _wire(self, target, target_arg: str, fabric_dev: str, ifname: str, mac: str,
              ip: str, cidr: str, router: str) -> None:
        """A veth from the fabric (fabric_dev) into a namespace (ifname, mac, ip/prefix)."""
        prefix = ipaddress.ip_network(cidr).prefixlen
        self._batch(self.fabric, [
            f"link add {fabric_dev} type veth peer name {ifname} netns {target_arg}",
            f"link set {fabric_dev} up",
        ])
        self._sysctls(self.fabric, {f"net.ipv4.conf.{fabric_dev}.proxy_arp": 1,
                                    f"net.ipv4.neigh.{fabric_dev}.proxy_delay": 0,
                                    f"net.ipv4.conf.{fabric_dev}.rp_filter": 0})
        self._batch(target, [
            f"link set {ifname} address {mac}",
            f"addr add {ip}/{prefix} dev {ifname}",
            f"link set {ifname} up",
        ])

    def _node_net(self, target, target_arg: str, name: str) -> dict:
        """eth0 (+eth1) of a node, its routes, IMDS address; returns {eni id: (dev, mac)}."""
        inst = self._instances[name]
        devs = {}
        for eni in inst["enis"]:
            dev = f"v-{name}" + (f"-{eni.device}" if eni.device else "")
            self._wire(target, target_arg, dev, eni.ifname, eni.mac, eni.ip,
                       self.subnet_cidr, self.router)
            devs[eni.id] = (dev, eni.mac)
        self._batch(target, [
            f"addr add {IMDS_IP}/32 dev lo",
            f"route add {self.vpc_cidr} via {self.router} dev eth0",
        ])
        return devs

    def _register(self, name: str, ns_path: str, devs: dict, pid: int | None = None) -> None:
        inst = self._instances[name]
        self._control("POST", "nodes", {"name": name, "netns": ns_path,
                                        "instance_id": inst["instance_id"], "key": inst["key"],
                                        "role": ROLE, "pid": pid})
        self._control("POST", "dataplane", {"devs": devs})

    def _ns_node(self, i: int) -> None:
        name = f"node{i}"
        ns = self._namespace(name)
        devs = self._node_net(ns, ns, name)
        self._register(name, f"/run/netns/{ns}", devs)
        inst = self._instances[name]
        self.nodes.append(Node(self, name, ns, inst["instance_id"], inst["enis"], inst["key"]))

    def _client_net(self, target, target_arg: str) -> None:
        ip = self._addr(self.client_cidr, 10)
        router = self._addr(self.client_cidr, 1)
        self._wire(target, target_arg, "v-client", "eth0", "02:00:00:00:0c:01", ip,
                   self.client_cidr, router)
        # A default route to the VPC router, as every EC2 instance has: overlay IPs outside
        # the VPC CIDR are reached through it (the fabric has no way out, so nothing leaks).
        self._batch(target, [f"route add {self.vpc_cidr} via {router} dev eth0",
                             f"route add default via {router} dev eth0"])
        # The client is not an ENI: a fixed /32 to it in the fabric.
        self._batch(self.fabric, [f"route add {ip}/32 dev v-client",
                                  f"neigh replace {ip} lladdr 02:00:00:00:0c:01 dev v-client "
                                  f"nud permanent"])
        self.client_ip = ip

    def _ns_client(self) -> None:
        ns = self._namespace("client")
        self._client_net(ns, ns)
        self.client = Host(self, "client", ns)

    # -- Pacemaker form

    def address(self, name: str) -> str:
        """pcmk.Lab network hook: the address of machine `name` (nodeN or client)."""
        if name == "client":
            return self._addr(self.client_cidr, 10)
        return self._instances[name]["enis"][0].ip

    def attach(self, machine) -> None:
        """pcmk.Lab network hook: wire machine into the fabric (its ENIs' MACs and IPs), pin
        its resolv.conf, start its IMDS and relay."""
        pid = machine.pid
        conf = self.dir / "resolv.conf"
        conf.write_text("nameserver 127.0.0.1\n")
        machine.run(["mount", "--bind", str(conf), "/etc/resolv.conf"])
        # A sysfs of the machine's own network namespace (as `ip netns exec` does), so
        # /sys/class/net/eth0/address is the ENI's MAC, not a host device's.
        machine.run(["mount", "-t", "sysfs", "lab-sysfs", "/sys"])
        if machine.name == "client":
            self._client_net(pid, str(pid))
            self.client = Host(self, "client", f"pid:{pid}", machine)
            return
        self._wait_old_links_gone(machine.name)
        devs = self._node_net(pid, str(pid), machine.name)
        self._register(machine.name, f"/proc/{pid}/ns/net", devs, pid=pid)
        inst = self._instances[machine.name]
        node = Node(self, machine.name, f"pid:{pid}", inst["instance_id"], inst["enis"],
                    inst["key"], machine)
        # A booted-again node replaces its old self, in place (node(1) stays node1).
        for i, n in enumerate(self.nodes):
            if n.name == node.name:
                self.nodes[i] = node
                return
        self.nodes.append(node)

    def _wait_old_links_gone(self, name: str, timeout: float = 10) -> None:
        """A machine booted again: its old network namespace goes once the last socket in it
        is closed (the stand-in closes its IMDS and relay a moment after the old PID 1 died),
        and with it the fabric's end of its veths; the new ones take the same names."""
        devs = [f"v-{name}" + (f"-{e.device}" if e.device else "")
                for e in self._instances[name]["enis"]]
        netns.wait_for(lambda: all(sh("ip", "-n", self.fabric, "link", "show", "dev", d,
                                      check=False).returncode != 0 for d in devs),
                       timeout, f"the old links of {name} gone", step=0.1)

    def _start_cluster(self) -> None:
        self.cluster = pcmk.Lab(nodes=self.count_nodes, agents=self.agents,
                                name=self.name, client=self.want_client,
                                binary=self.binary, network=self, stonith=self.stonith)
        self.cluster.start()
        threading.Thread(target=self._boot_started_instances, daemon=True).start()

    def _boot_started_instances(self) -> None:
        """A started instance whose machine is gone boots again (pcmk.Lab.boot): the cloud
        says running, so the node comes back and rejoins, as on a real cloud. Runs until
        close(); what it booted, and any failure, is in self.boots."""
        names = {v["instance_id"]: k for k, v in self._instances.items()}
        seen, stopped = 0, set()
        while not self._closing.wait(0.2):
            try:
                events = self._control("GET", "power")["events"]
            except Exception:
                continue
            for e in events[seen:]:
                name = names.get(e["instance"])
                cluster = self.cluster
                if not name or cluster is None:
                    continue
                if e["state"] in ("stopped", "STOPPED"):
                    stopped.add(name)
                elif e["state"] in ("running", "RUNNING") and name in stopped:
                    stopped.discard(name)
                    try:
                        cluster.boot(name)
                        self.boots.append((time.monotonic(), name, None))
                    except Exception as err:  # keep watching; the test sees it in boots
                        self.boots.append((time.monotonic(), name, repr(err)))
            seen = len(events)

    # -- state, directly (not counted)

    def owners(self, ip: str) -> list[str]:
        """ENI ids holding ip (primary or secondary), from the stand-in's state."""
        r = self.ec2.describe_network_interfaces(
            Filters=[{"Name": "addresses.private-ip-address", "Values": [ip]}])
        return sorted(e["NetworkInterfaceId"] for e in r["NetworkInterfaces"])

    def _eni(self, node, eni) -> str:
        if eni is not None:
            return eni if isinstance(eni, str) else eni.id
        return self.node(node).eni_id

    def assign(self, ip: str, node, eni=None, wait: bool = True) -> None:
        """Move ip to node's primary ENI (or `eni`), as AllowReassignment does; by default
        returns once the data plane follows."""
        self.ec2.assign_private_ip_addresses(NetworkInterfaceId=self._eni(node, eni),
                                             PrivateIpAddresses=[ip], AllowReassignment=True)
        if wait:
            self.sync()

    def unassign(self, ip: str, node, eni=None, wait: bool = True) -> None:
        self.ec2.unassign_private_ip_addresses(NetworkInterfaceId=self._eni(node, eni),
                                               PrivateIpAddresses=[ip])
        if wait:
            self.sync()

    def sync(self) -> None:
        """Returns once the data plane mirrors the current state (lag aside)."""
        self._control("POST", "dataplane/sync", {})

    def set_api_staleness(self, seconds: float) -> None:
        """Agents' EC2 writes are acknowledged at once and applied `seconds` later: reads in
        between return the old state (EC2's eventual consistency)."""
        self._control("POST", "stale", {"seconds": seconds})

    def set_power_delay(self, seconds: float) -> None:
        """Instances stay `stopping`/`pending` (OCI: STOPPING/STARTING) this long after a
        power call before the machine is off (or the instance running), as on a real cloud."""
        self._control("POST", "power", {"delay": seconds})

    def wait_power_settled(self, timeout: float = 30) -> None:
        """Returns once no instance is in a middle power state (stopping, pending; OCI:
        STOPPING, STARTING), so no timer of the stand-in changes a state later."""
        middle = ("stopping", "pending", "STOPPING", "STARTING")

        def settled():
            last = {}
            for e in self.power_events():
                last[e["instance"]] = e["state"]
            return not any(s in middle for s in last.values())

        netns.wait_for(settled, timeout, "every instance out of stopping/pending", step=0.1)

    def power_events(self, since: float | None = None) -> list[dict]:
        """Every power state an instance entered: {t (time.monotonic()), instance, state}."""
        events = self._control("GET", "power")["events"]
        return [e for e in events if since is None or e["t"] >= since]

    def set_service_time(self, read: float, write: float) -> None:
        """Every API call of the agents (not the lab's own, not IMDS) takes this long: `read`
        s for Describe*/Get* (OCI: GET), `write` s for the others, overlapping when concurrent
        (tests/lab/standin.py)."""
        self._control("POST", "service", {"read": read, "write": write})

    def set_dataplane_lag(self, seconds: float) -> None:
        """Routes follow the API `seconds` late (EC2's remapping is asynchronous)."""
        self._control("POST", "dataplane", {"lag": seconds})

    def allocate_eip(self) -> tuple[str, str]:
        """(allocation id, public IP) of a new VPC Elastic IP (198.51.100.0/24)."""
        r = self.ec2.allocate_address(Domain="vpc")
        return r["AllocationId"], r["PublicIp"]

    def eip_target(self, allocation_id: str) -> tuple[str, str] | None:
        """(ENI id, private IP) the EIP is associated with, or None."""
        a = self.ec2.describe_addresses(AllocationIds=[allocation_id])["Addresses"][0]
        if not a.get("NetworkInterfaceId"):
            return None
        return a["NetworkInterfaceId"], a["PrivateIpAddress"]

    # -- route tables (overlay IPs)

    @property
    def main_route_table(self) -> str:
        """The VPC's main route table (every subnet without an association uses it)."""
        r = self.ec2.describe_route_tables(Filters=[
            {"Name": "vpc-id", "Values": [self.vpc_id]},
            {"Name": "association.main", "Values": ["true"]}])
        return r["RouteTables"][0]["RouteTableId"]

    def create_route_table(self, subnets=(), vpc_id: str | None = None) -> str:
        """A new route table of the lab VPC (or vpc_id), associated with `subnets` (ids)."""
        rtb = self.ec2.create_route_table(VpcId=vpc_id or self.vpc_id)["RouteTable"][
            "RouteTableId"]
        for s in subnets:
            self.ec2.associate_route_table(RouteTableId=rtb, SubnetId=s)
        return rtb

    def set_route(self, table: str, dest: str, node=None, eni=None, wait: bool = True) -> None:
        """Create or replace the route for dest in table to node's primary ENI (or `eni`);
        node=None and eni=None deletes it."""
        if node is None and eni is None:
            try:
                self.ec2.delete_route(RouteTableId=table, DestinationCidrBlock=dest)
            except Exception as e:  # no such route: nothing to delete
                if "InvalidRoute.NotFound" not in str(e):
                    raise
        else:
            target = self._eni(node, eni)
            try:
                self.ec2.replace_route(RouteTableId=table, DestinationCidrBlock=dest,
                                       NetworkInterfaceId=target)
            except Exception as e:
                if "InvalidParameterValue" not in str(e):
                    raise
                self.ec2.create_route(RouteTableId=table, DestinationCidrBlock=dest,
                                      NetworkInterfaceId=target)
        if wait:
            self.sync()

    def route_target(self, table: str, dest: str) -> tuple[str, str] | None:
        """(target id: ENI id, else gateway/instance id; state) of dest's route in table."""
        rt = self.ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]
        for r in rt["Routes"]:
            if r.get("DestinationCidrBlock") == dest:
                target = (r.get("NetworkInterfaceId") or r.get("InstanceId") or
                          r.get("GatewayId") or "?")
                return target, r.get("State", "active")
        return None

    def set_source_dest_check(self, node, on: bool, eni=None) -> None:
        """Source/destination check of node's primary ENI (or `eni`); the data plane drops
        routed traffic for an ENI with the check on."""
        self.ec2.modify_network_interface_attribute(
            NetworkInterfaceId=self._eni(node, eni), SourceDestCheck={"Value": on})
        self.sync()

    def source_dest_check(self, node, eni=None) -> bool:
        r = self.ec2.describe_network_interfaces(NetworkInterfaceIds=[self._eni(node, eni)])
        return r["NetworkInterfaces"][0]["SourceDestCheck"]

    # -- the call log

    def calls(self, since: float | None = None) -> list[dict]:
        """Requests received on the endpoint (the lab's own excluded), oldest first:
        {t (time.monotonic()), action, key, service, status (None: reset), dry_run, fault,
        duration}."""
        q = f"?since={since}" if since is not None else ""
        return self._control("GET", "calls" + q)

    def count(self, action: str | None = None, since: float | None = None,
              key: str | None = None) -> int:
        return sum(1 for c in self.calls(since)
                   if (action is None or c["action"] == action) and
                   (key is None or c["key"] == key))

    # -- the client

    def who_answers(self, ip: str, port: int, timeout: float = 0.5) -> str | None:
        """Name of the node answering ip:port as seen from the client, or None."""
        return self.client.who_answers(ip, port, timeout)

    # -- peers

    def _write_aws_cli(self) -> None:
        """An `aws` wrapper that always adds --endpoint-url (awsvip's OCF_RESKEY_awscli) and a
        credentials/config pair per node (awsvip passes --profile, which makes botocore
        ignore credentials from the environment)."""
        aws = self.dir / "aws"
        aws.write_text(f"#!/bin/sh\nexec {sys.executable} -m awscli "
                       f"--endpoint-url {self.endpoint} \"$@\"\n")
        aws.chmod(0o755)
        for name, inst in self._instances.items():
            d = self.dir / f"aws-{name}"
            d.mkdir(exist_ok=True)
            (d / "credentials").write_text(
                f"[default]\naws_access_key_id = {inst['key']}\n"
                f"aws_secret_access_key = lab-secret\n")
            (d / "config").write_text(f"[default]\nregion = {self.region}\noutput = text\n")

    def aws_env(self, node) -> dict:
        """Environment for the AWS CLI inside node (no AWS_EC2_METADATA_DISABLED: the node's
        IMDS answers there)."""
        d = self.dir / f"aws-{self.node(node).name}"
        return clean_env({"AWS_SHARED_CREDENTIALS_FILE": str(d / "credentials"),
                          "AWS_CONFIG_FILE": str(d / "config"),
                          "AWS_DEFAULT_REGION": self.region,
                          "AWS_ENDPOINT_URL": self.endpoint})

    def awsvip_env(self, node, ip: str, **params) -> dict:
        """Environment to run resource-agents' awsvip <action> inside node (node.exec)."""
        return netns.agent_env({"secondary_private_ip": ip, "awscli": str(self.dir / "aws"),
                                "profile": "default", **params},
                               instance="awsvip1", base=self.aws_env(node), pacemaker=False)

    # -- teardown

    def close(self) -> None:
        """Stop everything by PID, delete the namespaces; safe to call twice."""
        t0 = time.monotonic()
        errors = []
        self._closing.set()
        if self.cluster is not None:
            try:
                self.cluster.stop()
            except Exception as e:  # keep tearing down
                errors.append(repr(e))
            self.cluster = None
        for p in self.procs:
            _kill(p)
        self.procs.clear()
        if self.server is not None:
            _kill(self.server, signal.SIGTERM)
            self.server = None
        for ns in reversed(self.namespaces):
            r = sh("ip", "netns", "del", ns, check=False)
            if r.returncode != 0:
                errors.append(r.stderr)
            shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)
        self.namespaces.clear()
        if os.environ.get("CLOUDHA_LAB_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        self.down_seconds = time.monotonic() - t0
        if errors:
            raise RuntimeError(f"ec2lab teardown: {errors}")


def _kill(p: subprocess.Popen, sig=signal.SIGKILL) -> None:
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=5)


def sweep_leftovers() -> None:
    """Namespaces, /etc/netns entries and scratch dirs of labs whose owner process is gone
    (the server exits by itself when its owner dies)."""
    netns.sweep_leftovers()
    for base, sep in ((ETC_NETNS, "-"), (SCRATCH, ".")):
        if not base.is_dir():
            continue
        for d in base.iterdir():
            if sep == "-":
                if not d.name.startswith(netns.PREFIX):
                    continue
                owner = d.name[len(netns.PREFIX):].split("-", 1)[0]
            else:
                owner = d.name.rsplit(".", 1)[-1]
            if owner.isdigit() and int(owner) != os.getpid() and not pcmk._alive(int(owner)):
                shutil.rmtree(d, ignore_errors=True)
