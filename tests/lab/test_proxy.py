"""The cloud API through a site's HTTP proxy (tests/lab/proxy.py, started and stopped by the
test inside the node's namespace), for both clouds and the fence agent. The API's host name
is one the node cannot reach directly: its /etc/hosts (through `ip netns exec`'s
/etc/netns/<ns>/hosts) sends it to a loopback address nothing listens on, and only the proxy
maps it to the lab's endpoint. Instance metadata must never go through the proxy. Needs root.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import cloudvip
import netns
from cloudvip import has_addr
from ec2lab import Ec2Lab
from ocilab import OciLab

VIP = cloudvip.VIP
PROXY_PORT = 3128
PROXY = f"http://127.0.0.1:{PROXY_PORT}"
NOWHERE = "127.0.0.9"  # where the API's name points without the proxy: connection refused


@contextmanager
def unreachable_names(node, names):
    """The node resolves `names` to NOWHERE: a hosts file next to the resolv.conf the lab pins
    to loopback in /etc/netns/<ns>/ (ip netns exec binds both over /etc)."""
    hosts = Path("/etc/netns") / node.ns / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"{NOWHERE} {n}\n" for n in names))
    try:
        yield
    finally:
        hosts.unlink()


def start_proxy(lab, node, mapping: dict) -> Path:
    log = lab.dir / f"proxy-{node.name}.log"
    log.write_text("")
    p = node.popen([sys.executable, str(Path(__file__).with_name("proxy.py")), str(PROXY_PORT),
                    str(log)] + [f"{k}={v}" for k, v in mapping.items()],
                   stdout=open(lab.dir / "proxy.out", "ab"), stderr=open(lab.dir / "proxy.err", "ab"))
    netns.wait_for(lambda: node.exec(["ss", "-Hltn", f"sport = :{PROXY_PORT}"]).stdout.strip()
                   or p.poll() is not None, 10, "proxy listening")
    assert p.poll() is None, (lab.dir / "proxy.err").read_text()
    return log


def through(log: Path) -> list[dict]:
    return [json.loads(l) for l in log.read_text().splitlines()]


def no_metadata(seen: list[dict]) -> None:
    assert not [r for r in seen if "169.254." in r["target"]], seen


def test_aws_calls_go_through_the_proxy_and_cannot_go_around_it():
    with Ec2Lab(nodes=1, name="proxyaws", client=False) as lab:
        n = lab.node(1)
        name = "ec2.proxy-only.invalid"
        base = {"ip": VIP, "cloud": "aws", "nic": "eth0",
                "endpoint_url": f"http://{name}:{lab.port}"}
        with unreachable_names(n, [name]):
            log = start_proxy(lab, n, {f"{name}:{lab.port}": f"127.0.0.1:{lab.port}"})
            # Directly: refused, with the reason; nothing changed, nothing went to the proxy.
            r = cloudvip.call(lab, n, "start", base, timeout=60)
            assert r.rc == 1 and f"cannot reach 'http://{name}:{lab.port}' (tcp connect error: " \
                "Connection refused" in r.err, r
            assert lab.owners(VIP) == [] and not has_addr(n)
            assert through(log) == []

            # The parameter: every EC2 call through the proxy, metadata (region, ENI, the
            # instance role's credentials) directly.
            r = cloudvip.call(lab, n, "start", base, proxy=PROXY)
            assert r.rc == 0, r
            assert lab.owners(VIP) == [n.eni_id] and has_addr(n)
            seen = through(log)
            assert seen and all(s["target"].startswith(f"http://{name}:") for s in seen), seen
            no_metadata(seen)
            # no_proxy naming the host: direct again, so unreachable (a cloud outage to the
            # monitor: the healthy address stays up, with the warning).
            before = len(through(log))
            r = cloudvip.call(lab, n, "monitor", base, proxy=PROXY, no_proxy=".proxy-only.invalid",
                              cloud_check_interval=0)
            assert r.rc == 0 and f"cannot reach 'http://{name}:" in r.err, r
            assert len(through(log)) == before
            # The environment's proxy (a shell, not Pacemaker), with no parameter and no
            # NO_PROXY: HTTP_PROXY, the weakest, still never takes metadata along.
            before = len(through(log))
            r = cloudvip.call(lab, n, "stop", base, extra_env={"HTTP_PROXY": PROXY})
            assert r.rc == 0 and lab.owners(VIP) == [], r
            assert len(through(log)) > before
            # The fence agent takes the same parameters.
            link = lab.dir / "fence_cloudha"
            link.symlink_to(netns.cloudha_bin())
            before = len(through(log))
            p = n.exec([str(link)], env=cloudvip.agent_env(lab, n, {}), timeout=60,
                       input=f"cloud=aws\nendpoint_url={base['endpoint_url']}\nproxy={PROXY}\n"
                             f"action=list\n")
            assert p.returncode == 0 and n.instance_id in p.stdout, p.stdout + p.stderr
            assert len(through(log)) > before
            no_metadata(through(log))
            # A bad proxy value is a configuration error before any call.
            r = cloudvip.call(lab, n, "start", base, proxy="proxy.example.com:3128")
            assert r.rc == 6 and "proxy=" in r.err and "http://" in r.err, r


def test_oci_calls_tunnel_through_the_proxy_to_the_default_tls_endpoints():
    with OciLab(nodes=1, name="proxyoci", client=False) as lab:
        n = lab.node(1)
        iaas = f"iaas.{lab.region}.{lab.realm_domain}"
        auth = f"auth.{lab.region}.{lab.realm_domain}"
        # No endpoint_url, no auth_endpoint_url: the regional defaults, over TLS (the lab's
        # CA trusted through SSL_CERT_FILE), reachable only through the proxy.
        base = {"ip": VIP, "cloud": "oci", "nic": "eth0"}
        env = {"SSL_CERT_FILE": str(lab.ca_bundle)}
        with unreachable_names(n, [iaas, auth]):
            log = start_proxy(lab, n, {f"{iaas}:443": f"127.0.0.1:{lab.tls_port}",
                                       f"{auth}:443": f"127.0.0.1:{lab.tls_port}"})
            r = cloudvip.call(lab, n, "start", base, extra_env=env, timeout=60)
            assert r.rc == 1 and lab.owners(VIP) == [] and not has_addr(n), r
            assert through(log) == []
            r = cloudvip.call(lab, n, "start", base, extra_env=env, proxy=PROXY)
            assert r.rc == 0, r
            assert lab.owners(VIP) == [n.vnic_id] and has_addr(n)
            seen = through(log)
            assert {(s["method"], s["target"]) for s in seen} == {
                ("CONNECT", f"{iaas}:443"), ("CONNECT", f"{auth}:443")}, seen
            no_metadata(seen)
            r = cloudvip.call(lab, n, "stop", base, extra_env=env, proxy=PROXY)
            assert r.rc == 0 and not has_addr(n), r
