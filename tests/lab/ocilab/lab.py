"""OciLab: the test-side half of the OCI lab (see the package docstring for the API).

The network half (fabric, nodes, client, Pacemaker form) is ec2lab's: OciLab is an Ec2Lab whose
cloud is ocilab.server instead of moto."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ec2lab import lab as ec2
from ec2lab.lab import Ec2Lab, Eni, Node, clean_env

import netns

from . import pki

HERE = Path(__file__).resolve().parent
SCRATCH = Path("/tmp/cloudha-ocilab")
OCI_CLI = os.environ.get("CLOUDHA_OCI_CLI", "/opt/oci-cli/bin/oci")
# region -> (region key, what /opc/v2/instance/region answers: the short name where OCI has one)
REGIONS = {"eu-frankfurt-1": ("FRA", "fra"), "us-ashburn-1": ("IAD", "iad"),
           "us-phoenix-1": ("PHX", "phx"), "uk-london-1": ("LHR", "lhr"),
           "eu-amsterdam-1": ("AMS", "eu-amsterdam-1"), "eu-paris-1": ("CDG", "eu-paris-1")}


class Vnic(Eni):
    """One VNIC of a node: .id (OCID), .mac (upper-case, as OCI shows it), .ip (its primary
    private IP), .device == .nic_index, .ifname in the node."""

    @property
    def nic_index(self) -> int:
        return self.device

    def __repr__(self):
        return f"Vnic({self.id[:24]}... {self.ifname} {self.mac} {self.ip})"


class OciNode(Node):
    """An OCI instance: .instance_id (OCID), .vnic_id/.mac/.ip/.ifname of its primary VNIC,
    .vnics, .user (its API-key user OCID; also .key), .fingerprint, .config_file and .key_file
    (~/.oci/config form), .principals (user and instance OCIDs), .machine (Pacemaker form)."""

    def __init__(self, node: Node, info: dict):
        super().__init__(node.lab, node.name, node.ns, node.instance_id, node.enis, node.key,
                         node.machine)
        self.vnics = self.enis
        self.vnic_id = self.eni_id
        self.user, self.fingerprint = info["user"], info["fingerprint"]
        self.config_file, self.key_file = info["config_file"], info["key_file"]
        self.principals = (self.user, self.instance_id)


class _Ctl:
    def __init__(self, lab: "OciLab"):
        self.lab = lab

    def _call(self, method: str, path: str, body=None):
        return self.lab._control(method, path, body)


def _principals(who) -> list:
    if who is None:
        return [None]
    if isinstance(who, OciNode):
        return list(who.principals)
    return [who]


class Faults(_Ctl):
    """Failures of both endpoints: throttle (429 TooManyRequests), http500 (500
    InternalServerError), reset (TCP RST, no answer), slow (delay s, then the real answer)."""

    def set(self, kind: str, count: int | None = None, operations=None,
            delay: float | None = None, principals=None) -> None:
        self._call("POST", "faults", [self._rule(kind, count, operations, delay, principals)])

    def add(self, kind: str, count=None, operations=None, delay=None, principals=None) -> None:
        rules = self._call("GET", "faults")
        self._call("POST", "faults", rules + [self._rule(kind, count, operations, delay,
                                                         principals)])

    def clear(self) -> None:
        self._call("DELETE", "faults")

    @staticmethod
    def _rule(kind, count, operations, delay, principals) -> dict:
        keys = None
        if principals is not None:
            keys = [p for w in ([principals] if isinstance(principals, (str, OciNode))
                                else principals) for p in _principals(w)]
        ops = [operations] if isinstance(operations, str) else operations
        return {"kind": kind, "count": count, "actions": ops, "delay": delay, "keys": keys}


class Iam(_Ctl):
    """The deny list (checked after authentication)."""

    def deny(self, *operations: str, principal=None, status: int = 404) -> None:
        """Deny operations ("UpdatePrivateIp", "X509Federation", "*") to everyone, or to
        `principal` (an OciNode: its user and its instance; or an OCID). status 404:
        NotAuthorizedOrNotFound (what OCI answers for missing policies); 401: NotAuthenticated
        (a revoked key). Adds to what is already denied."""
        self._call("POST", "deny", {"rules": [
            {"operation": op, "principal": p, "status": status}
            for op in operations for p in _principals(principal)]})

    def allow_all(self) -> None:
        self._call("POST", "allow_all", {})


class Federation(_Ctl):
    """The federation endpoint's tokens."""

    def set_lifetime(self, seconds: float) -> None:
        """Tokens issued from now on expire `seconds` after issue (default 1200)."""
        self._call("POST", "federation/lifetime", {"seconds": seconds})

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (401), whatever its exp says."""
        self._call("POST", "federation/expire", {})

    def tokens(self) -> list[dict]:
        """[{principal, node, iat, exp, revoked}] issued so far (iat/exp: the stand-in's
        clock, epoch seconds)."""
        return self._call("GET", "federation/tokens")


class Imds(_Ctl):
    def requests(self, node, since: float | None = None) -> list[dict]:
        name = node if isinstance(node, str) else node.name
        return [r for r in self._call("GET", f"imds/requests?node={name}")
                if since is None or r["t"] >= since]

    def count(self, node, path: str | None = None, method: str | None = None,
              since: float | None = None) -> int:
        return sum(1 for r in self.requests(node, since)
                   if (path is None or r["path"] == path) and
                   (method is None or r["method"] == method))


class OciLab(Ec2Lab):
    """See the package docstring."""

    def __init__(self, nodes: int = 2, name: str = "oci", region: str = "eu-frankfurt-1",
                 pacemaker: bool = False, agents=("vip",), binary: str | None = None,
                 second_vnic=False, client: bool = True, vcn_cidr: str = "10.0.0.0/16",
                 subnet_cidr: str = "10.0.1.0/24", client_cidr: str = "10.0.2.0/24",
                 dataplane_lag: float = 0.0, token_lifetime: float = 1200.0,
                 stonith: bool = False):
        super().__init__(nodes=nodes, name=name, region=region, pacemaker=pacemaker,
                         agents=agents, binary=binary, second_eni=second_vnic, client=client,
                         vpc_cidr=vcn_cidr, subnet_cidr=subnet_cidr, client_cidr=client_cidr,
                         dataplane_lag=dataplane_lag, stonith=stonith)
        self.dir = SCRATCH / f"{name}-{self.tag.rsplit('-', 1)[-1]}.{os.getpid()}"
        self.vcn_cidr = vcn_cidr
        self.region_key, self.region_short = REGIONS.get(region, (region[:3].upper(), region))
        self.realm, self.realm_domain = "oc1", "oraclecloud.com"
        self.faults, self.iam, self.imds = Faults(self), Iam(self), Imds(self)
        self.federation = Federation(self)
        self.initial_token_lifetime = token_lifetime
        self._info: dict[str, dict] = {}

    def start(self) -> "OciLab":
        sweep_leftovers()
        super().start()
        if self.initial_token_lifetime != 1200.0:
            self.federation.set_lifetime(self.initial_token_lifetime)
        return self

    # -- the world: OCIDs, PKI, API keys, files

    def _make_world(self) -> dict:
        ocid, rk = pki.new_ocid, self.region.lower()
        self.tenancy = ocid("tenancy", "")
        self.compartment = ocid("compartment", "")
        self.vcn_id, self.subnet_id = ocid("vcn", rk), ocid("subnet", rk)
        self.vpc_id = self.vcn_id
        p = pki.Pki()
        self.pki = p
        tls_key, tls_cert = p.tls(["127.0.0.1", "localhost", f"iaas.{self.region}.{self.realm_domain}",
                                   f"auth.{self.region}.{self.realm_domain}"])
        self.ca_bundle = self.dir / "ca.pem"
        self.ca_bundle.write_text(pki.cert_pem(p.root))
        (self.dir / "tls-cert.pem").write_text(pki.cert_pem(tls_cert) + pki.cert_pem(p.root))
        (self.dir / "tls-key.pem").write_text(pki.private_pem(tls_key))
        instances = []
        for i in range(1, self.count_nodes + 1):
            name = f"node{i}"
            inst_id = ocid("instance", rk)
            ad_n = (i - 1) % 3 + 1
            vnics = []
            for dev in ([0, 1] if i in self.second_eni else [0]):
                ip = self._addr(self.subnet_cidr, (10 if dev == 0 else 30) + i)
                mac = f"02:00:17:00:{i:02X}:{dev + 1:02X}"
                vnics.append({"id": ocid("vnic", rk), "mac": mac, "ip": ip, "nic_index": dev,
                              "private_ip_id": ocid("privateip", rk),
                              "attachment_id": ocid("vnicattachment", rk)})
            key = pki.new_key()
            user, fp = ocid("user", ""), pki.api_key_fingerprint(key)
            d = self.dir / f"oci-{name}"
            d.mkdir(exist_ok=True)
            key_file, config_file = d / "oci_api_key.pem", d / "config"
            key_file.write_text(pki.private_pem(key))
            key_file.chmod(0o600)
            (d / "oci_api_key_public.pem").write_text(pki.public_pem(key))
            config_file.write_text(
                f"[DEFAULT]\nuser={user}\nfingerprint={fp}\ntenancy={self.tenancy}\n"
                f"region={self.region}\nkey_file={key_file}\n")
            config_file.chmod(0o600)
            leaf_key, leaf = p.leaf(self.tenancy, self.compartment, inst_id)
            instances.append({
                "name": name, "id": inst_id, "vnics": vnics, "user": user, "fingerprint": fp,
                "public_pem": pki.public_pem(key), "leaf_cert_pem": pki.cert_pem(leaf),
                "leaf_key_pem": pki.private_pem(leaf_key),
                "ad": f"Uocm:{self.region.upper()}-AD-{ad_n}",
                "ad_name": f"{self.region}-ad-{ad_n}", "fault_domain": "FAULT-DOMAIN-1"})
            self._instances[name] = {
                "instance_id": inst_id, "key": user,
                "enis": [Vnic(v["id"], v["mac"], v["ip"], v["nic_index"], f"eth{v['nic_index']}")
                         for v in vnics]}
            self._info[name] = {"user": user, "fingerprint": fp, "config_file": config_file,
                                "key_file": key_file}
        return {
            "region": self.region, "region_key": self.region_key,
            "region_short": self.region_short, "realm": self.realm,
            "realm_domain": self.realm_domain, "tenancy": self.tenancy,
            "compartment": self.compartment, "image": ocid("image", rk),
            "vcn": {"id": self.vcn_id, "cidr": self.vcn_cidr, "dns": "labvcn"},
            "subnet": {"id": self.subnet_id, "cidr": self.subnet_cidr, "router": self.router,
                       "route_table": ocid("routetable", rk)},
            "instances": instances, "root_pem": pki.cert_pem(p.root),
            "intermediate_pem": pki.cert_pem(p.intermediate),
            "auth_key_pem": pki.private_pem(pki.new_key()),
            "tls_cert_file": str(self.dir / "tls-cert.pem"),
            "tls_key_file": str(self.dir / "tls-key.pem"),
        }

    def _start_server(self) -> None:
        spec = self._make_world()
        spec_file = self.dir / "spec.json"
        spec_file.write_text(json.dumps(spec, indent=1))
        env = clean_env({"PYTHONPATH": str(HERE.parent)})
        ports = self._spawn_server("ocilab.server", ["--spec", str(spec_file)], env)
        self.port, self.tls_port = ports["endpoint"], ports["tls"]
        self.control_port = ports["control"]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.tls_endpoint = f"https://127.0.0.1:{self.tls_port}"
        self.federation_endpoint = f"{self.endpoint}/v1/x509"
        self.tls_federation_endpoint = f"{self.tls_endpoint}/v1/x509"
        self.control_url = f"http://127.0.0.1:{self.control_port}"

    def _provision(self) -> None:
        """Done by _make_world (the server starts with its state)."""

    def _node_net(self, target, target_arg: str, name: str) -> dict:
        devs = super()._node_net(target, target_arg, name)
        # An OCI instance has a default route via the VCN's virtual router (ocivip finds its
        # interface from it); the fabric routes nothing outside the VCN, so nothing leaves.
        self._batch(target, [f"route add default via {self.router} dev eth0"])
        return devs

    def _ns_node(self, i: int) -> None:
        super()._ns_node(i)
        self.nodes[-1] = OciNode(self.nodes[-1], self._info[self.nodes[-1].name])

    def attach(self, machine) -> None:
        super().attach(machine)
        for i, n in enumerate(self.nodes):
            if n.name == machine.name and not isinstance(n, OciNode):
                self.nodes[i] = OciNode(n, self._info[n.name])

    def _write_aws_cli(self) -> None:
        """(Ec2Lab's hook) the `oci` wrapper ocivip runs: oci-cli with --endpoint, the
        federation endpoint and the CA bundle of the HTTPS endpoint."""
        oci = self.dir / "oci"
        oci.write_text(
            "#!/bin/sh\n"
            f"export OCI_CLI_FEDERATION_ENDPOINT={self.tls_federation_endpoint}\n"
            f"export OCI_CLI_CERT_BUNDLE={self.ca_bundle} REQUESTS_CA_BUNDLE={self.ca_bundle}\n"
            "unset CURL_CA_BUNDLE\n"
            "export OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING=True NO_PROXY='*'\n"
            f"exec {OCI_CLI} --endpoint {self.tls_endpoint} \"$@\"\n")
        oci.chmod(0o755)
        self.oci_cli = str(oci)

    # -- state, directly (not counted)

    def state(self) -> dict:
        """{"private_ips": [PrivateIp JSON], "vnics": [Vnic JSON]} of the stand-in."""
        return self._control("GET", "state")

    def owners(self, ip: str) -> list[str]:
        """VNIC OCIDs holding ip (0 or 1 in OCI)."""
        return [p["vnicId"] for p in self.state()["private_ips"] if p["ipAddress"] == ip]

    def _vnic(self, node, vnic) -> str:
        if vnic is not None:
            return vnic if isinstance(vnic, str) else vnic.id
        return self.node(node).vnic_id

    def assign(self, ip: str, node, vnic=None, wait: bool = True) -> None:
        """Put ip on node's primary VNIC (or `vnic`): moved if held, created if not."""
        self._control("POST", "assign", {"ip": ip, "vnic": self._vnic(node, vnic)})
        if wait:
            self.sync()

    def unassign(self, ip: str, node=None, vnic=None, wait: bool = True) -> None:
        """Delete the private IP ip (wherever it is)."""
        self._control("POST", "unassign", {"ip": ip})
        if wait:
            self.sync()

    def set_skew(self, seconds: float) -> None:
        """The stand-in's clock runs `seconds` ahead of the machine's (negative: behind): a
        client's Date looks that much off, and token iat/exp follow the stand-in's clock."""
        self._control("POST", "clock", {"skew": seconds})

    # -- the call log

    def count(self, operation: str | None = None, since: float | None = None,
              principal=None, status: int | None = None) -> int:
        who = set(_principals(principal)) if principal is not None else None
        return sum(1 for c in self.calls(since)
                   if (operation is None or c["operation"] == operation) and
                   (who is None or c["principal"] in who) and
                   (status is None or c["status"] == status))

    # -- callers

    def sign(self, node, method: str, target: str, headers=None, body: bytes = b"",
             names=None, key_id: str | None = None, key=None) -> dict:
        """Headers signing a request with node's API key (the lab's own signer, for tests
        that tamper with what is signed)."""
        n = self.node(node)
        key = key or pki.load_private(Path(n.key_file).read_text())
        kid = key_id or f"{self.tenancy}/{n.user}/{n.fingerprint}"
        h = {"host": f"127.0.0.1:{self.port}", **(headers or {})}
        return pki.sign_request(method, target, h, body, key, kid, names)

    def request(self, method: str, target: str, headers: dict, body: bytes = b"",
                url: str | None = None):
        """Send exactly these headers and body (host side) -> (status, headers, JSON|None)."""
        import http.client
        base = url or self.endpoint
        host, port = base.split("//", 1)[1].split(":")
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            c.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for k, v in headers.items():
                c.putheader(k, v)
            c.endheaders(body or None)
            r = c.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), json.loads(data) if data else None
        finally:
            c.close()

    def sdk_config(self, node) -> dict:
        """An oci SDK config dict for node's API key (host-side callers)."""
        n = self.node(node)
        return {"user": n.user, "fingerprint": n.fingerprint, "tenancy": self.tenancy,
                "region": self.region, "key_file": str(n.key_file)}

    def oci_env(self, node) -> dict:
        """Environment for oci-cli / the oci SDK inside node (config file of its API key;
        OCI_CLI_* endpoints and CA bundle)."""
        n = self.node(node)
        return clean_env({"OCI_CLI_CONFIG_FILE": str(n.config_file),
                          "OCI_CONFIG_FILE": str(n.config_file),
                          "OCI_CLI_ENDPOINT": self.tls_endpoint,
                          "OCI_CLI_FEDERATION_ENDPOINT": self.tls_federation_endpoint,
                          "OCI_CLI_CERT_BUNDLE": str(self.ca_bundle),
                          # requests lets REQUESTS_CA_BUNDLE win over a session's verify=
                          "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
                          "OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING": "True"})

    def ocivip_env(self, node, ip: str, **params) -> dict:
        """Environment to run resource-agents' ocivip <action> inside node (node.exec):
        OCF_RESKEY_ocicli = lab.dir/oci (oci-cli with --endpoint, federation endpoint and
        CA bundle; ocivip itself exports OCI_CLI_AUTH=instance_principal)."""
        return netns.agent_env({"secondary_private_ip": ip, "ocicli": self.oci_cli, **params},
                               instance="ocivip1", base=clean_env(), pacemaker=False)

    # -- EC2 only

    def _ec2_only(self, *a, **kw):
        raise AttributeError("EC2 only: not part of OciLab")

    client_for = allocate_eip = eip_target = aws_env = awsvip_env = _ec2_only

    def close(self) -> None:
        super().close()


def sweep_leftovers() -> None:
    """ec2lab's sweep, plus this lab's scratch dirs of dead owners."""
    ec2.sweep_leftovers()
    if SCRATCH.is_dir():
        for d in SCRATCH.iterdir():
            owner = d.name.rsplit(".", 1)[-1]
            if owner.isdigit() and int(owner) != os.getpid() and \
                    not ec2.pcmk._alive(int(owner)):
                shutil.rmtree(d, ignore_errors=True)
