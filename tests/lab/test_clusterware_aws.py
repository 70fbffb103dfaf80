"""The agents under Oracle Clusterware (a stand-in, tests/lab/crs.py) on the EC2 lab, as the
Clusterware seed runs them: Oracle's own ora.<node>.vip owns the address on the OS and our vip
resource, with local_address=false, only moves it in EC2, hard-depending on Oracle's VIP; the
SCAN case (three addresses, one node lost); route-table as an ACTION_SCRIPT; and the shipped
crsctl examples executed as written.

Members myracnode01/02 are lab nodes node1/node2; an action runs inside the node's namespace
with the _CRS_* environment only (plus the lab's per-node run directory, DMI and config). A
lost member is a node whose network is cut and which Clusterware evicts. Needs root.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import netns
from cloudvip import has_addr, run_dir
from crs import ORA_VIP, Crs
from ec2lab import Ec2Lab

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "packaging" / "examples"
PORT = 8080
SEED_VIP = "10.0.1.200"
SEED_VIP2 = "10.0.1.201"
SCAN = ["10.0.1.211", "10.0.1.212", "10.0.1.213"]
OVERLAY = "192.168.100.10"
OVERLAY2 = "192.168.100.11"
ADDRESSES = [SEED_VIP, SEED_VIP2] + SCAN
MEMBERS = {"myracnode01": 1, "myracnode02": 2}
ORA_TYPE = ("ATTRIBUTE=USR_ORA_VIP,TYPE=string,FLAGS=REQUIRED,ATTRIBUTE=USR_ORA_IF,TYPE=string,"
            "DEFAULT_VALUE=eth0,ATTRIBUTE=HOME_MEMBER,TYPE=string,DEFAULT_VALUE=")

LAB = (Ec2Lab, dict(nodes=2, name="crsaws"))  # the `lab` fixture
SERVE = PORT


def ready(lab):
    lab.tables = [lab.create_route_table([lab.client_subnet_id]), lab.create_route_table()]
    agents = lab.dir / "action-scripts"
    agents.mkdir()
    for a in ("vip", "route-table"):
        (agents / a).symlink_to(netns.cloudha_bin())
    (agents / "ora-vip").write_text(ORA_VIP)
    (agents / "ora-vip").chmod(0o755)
    lab.scripts = agents


def before_each(lab):
    """No address anywhere, every node up, no routes, no markers, no faults."""
    lab.faults.clear()
    lab.iam.allow_all()
    for n in lab.nodes:
        link_up(lab, n)
        lab.ec2.modify_network_interface_attribute(NetworkInterfaceId=n.eni_id,
                                                   SourceDestCheck={"Value": False})
        for ip in ADDRESSES:
            n.exec(["ip", "addr", "del", f"{ip}/24", "dev", "eth0"])
        for ip in (OVERLAY, OVERLAY2):
            n.exec(["ip", "addr", "del", f"{ip}/32", "dev", "eth0"])
        shutil.rmtree(run_dir(lab, n))
    for ip in ADDRESSES:
        for owner in lab.owners(ip):
            lab.ec2.unassign_private_ip_addresses(NetworkInterfaceId=owner,
                                                  PrivateIpAddresses=[ip])
    for t in lab.tables:
        for dest in (OVERLAY, OVERLAY2):
            lab.set_route(t, dest + "/32", wait=False)
    lab.sync()


def link_up(lab, n) -> None:
    """eth0 up with the route the link took with it when it went down."""
    n.exec(["ip", "link", "set", "eth0", "up"], check=True)
    n.exec(["ip", "route", "replace", lab.vpc_cidr, "via", lab.router, "dev", "eth0"], check=True)


def members(lab, conf_dir: Path | None, extra: dict | None = None) -> dict:
    """How the stand-in runs an action on each member: the node's namespace and the
    environment Clusterware gives an ACTION_SCRIPT (none of the test's own), plus what is
    per node in the lab (run directory, DMI saying EC2, where the .conf files are)."""
    out = {}
    for name, i in MEMBERS.items():
        n = lab.node(i)
        dmi = lab.dir / f"dmi-{n.name}"
        dmi.mkdir(exist_ok=True)
        (dmi / "sys_vendor").write_text("Amazon EC2\n")
        env = netns.host_env(("AWS_", "OCI_", "OCF_", "HA_", "_CRS_", "CLOUDHA_"), proxies=False)
        env.update({"HOME": "/nonexistent", "CLOUDHA_RUN_DIR": str(run_dir(lab, n)),
                    "CLOUDHA_DMI_DIR": str(dmi), "CRS_LAB_MEMBER": name,
                    "CRS_LAB_ORA_LOG": str(lab.dir / "ora-vip.log")})
        if conf_dir is not None:
            env["CLOUDHA_CONFIG_DIR"] = str(conf_dir)
        env.update(extra or {})
        out[name] = {"argv": n.wrap([]), "env": env, "run_dir": str(run_dir(lab, n))}
    return out


@pytest.fixture
def crs(lab, tmp_path):
    conf = tmp_path / "etc-cloudha"
    conf.mkdir()
    c = Crs(tmp_path / "crs.json", members(lab, conf))
    c.conf = conf
    (lab.dir / "ora-vip.log").write_text("")
    return c


def ok(c: Crs, *argv: str) -> str:
    rc, out = c.crsctl(list(argv))
    print(f"crsctl {' '.join(argv)} -> {rc}\n{out}")
    assert rc == 0, out
    return out


def node_of(lab, member):
    return lab.node(MEMBERS[member])


def lose(lab, c: Crs, member: str) -> list[str]:
    """The member's network is cut and Clusterware evicts it."""
    node_of(lab, member).exec(["ip", "link", "set", "eth0", "down"], check=True)
    msgs = c.member_down(member)
    print("".join(msgs))
    return msgs


def rejoin(lab, c: Crs, member: str, addresses=()) -> None:
    """The member rebooted (the OS addresses it had are gone) and is back."""
    n = node_of(lab, member)
    for ip in addresses:
        n.exec(["ip", "addr", "del", f"{ip}/24", "dev", "eth0"])
    link_up(lab, n)
    c.member_up(member)


def shipped_line(path: Path, prefix: str) -> list[str]:
    """The argv of the shipped example's command starting with `prefix`."""
    for line in path.read_text().splitlines():
        if line.startswith(prefix):
            return shlex.split(line)[1:]
    raise AssertionError(f"{path.name}: no line starting {prefix!r}")


def type_attrs(agent: str) -> str:
    gendoc = Path(netns.cloudha_bin()).parent / "examples" / "gendoc"
    return subprocess.run([str(gendoc), "crs-type-attrs", agent], check=True, capture_output=True,
                          text=True).stdout.strip()


def add_ora_vip(lab, c: Crs, name: str, ip: str, home: str = "", hosting="myracnode01 myracnode02",
                placement="favored") -> None:
    if "ora.cluster_vip_net1.type" not in c.state()["types"]:
        ok(c, "add", "type", "ora.cluster_vip_net1.type", "-basetype", "cluster_resource",
           "-attr", ORA_TYPE)
    ok(c, "add", "resource", name, "-type", "ora.cluster_vip_net1.type", "-attr",
       f"ACTION_SCRIPT={lab.scripts / 'ora-vip'},USR_ORA_VIP={ip},HOME_MEMBER={home},"
       f"PLACEMENT={placement},HOSTING_MEMBERS={hosting},CHECK_INTERVAL=1")


def answers(lab, ip: str) -> str | None:
    lab.sync()
    return lab.who_answers(ip, PORT)


# ---------------------------------------------------------------- the seed


def test_seed_registration_follows_oracle_vip_and_never_removes_its_address(lab, crs):
    n1, n2 = lab.node(1), lab.node(2)
    add_ora_vip(lab, crs, "ora.myracnode02.vip", SEED_VIP, home="myracnode02",
                hosting="myracnode02 myracnode01")
    # The seed's own registration, from the shipped example, with its .conf file (plus the
    # lab's endpoint); only ACTION_SCRIPT points at this build instead of the installed link.
    example = EXAMPLES / "vip" / "crsctl-vip.sh"
    argv = shipped_line(example, "crsctl add resource myrac02-vip.ec2 ")
    argv = [a.replace("ACTION_SCRIPT=/usr/lib/ocf/resource.d/cloudha/vip",
                      f"ACTION_SCRIPT={lab.scripts / 'vip'}") for a in argv]
    (crs.conf / "myrac02-vip.ec2.conf").write_text(
        (EXAMPLES / "vip" / "myrac02-vip.ec2.conf").read_text() + f"endpoint_url={lab.endpoint}\n")
    ok(crs, *argv)
    ok(crs, "setperm", "resource", "myrac02-vip.ec2", "-o", "root")
    seen = []  # (member, action, rc, address still on that member) after each stop of ours

    def hook(c, res, member, action, rc):
        if res == "myrac02-vip.ec2" and action in ("stop", "clean"):
            seen.append((member, action, rc, has_addr(node_of(lab, member), SEED_VIP)))

    crs.hook = hook

    out = ok(crs, "start", "resource", "myrac02-vip.ec2")
    assert out.index("start 'ora.myracnode02.vip' on 'myracnode02'") < out.index(
        "start 'myrac02-vip.ec2' on 'myracnode02'"), "Oracle's VIP first, then ours, collocated"
    assert crs.where("ora.myracnode02.vip") == ("ONLINE", "myracnode02")
    assert crs.where("myrac02-vip.ec2") == ("ONLINE", "myracnode02")
    assert lab.owners(SEED_VIP) == [n2.eni_id]
    assert answers(lab, SEED_VIP) == "node2"
    crs.check_all(now=1e12)  # crsd's check: still ONLINE
    assert crs.where("myrac02-vip.ec2") == ("ONLINE", "myracnode02")

    # Stopping our resource alone leaves Oracle's address where Oracle put it.
    ok(crs, "stop", "resource", "myrac02-vip.ec2")
    assert has_addr(n2, SEED_VIP) and crs.where("ora.myracnode02.vip") == ("ONLINE", "myracnode02")
    ok(crs, "start", "resource", "myrac02-vip.ec2")

    # myracnode02 is lost: Oracle's VIP fails over to myracnode01 (INTERMEDIATE, away from
    # home) and ours follows it through the hard(intermediate:) dependency.
    lose(lab, crs, "myracnode02")
    assert crs.where("ora.myracnode02.vip") == ("INTERMEDIATE", "myracnode01")
    assert crs.where("myrac02-vip.ec2") == ("ONLINE", "myracnode01")
    assert lab.owners(SEED_VIP) == [n1.eni_id]
    assert answers(lab, SEED_VIP) == "node1"

    # It comes back; moving Oracle's VIP home without -f is refused (ours depends on it) and
    # changes nothing; with -f ours moves with it.
    rejoin(lab, crs, "myracnode02", [SEED_VIP])
    rc, out = crs.crsctl(["relocate", "resource", "ora.myracnode02.vip", "-n", "myracnode02"])
    assert rc == 1 and "CRS-2529" in out and "myrac02-vip.ec2" in out, out
    assert crs.where("myrac02-vip.ec2") == ("ONLINE", "myracnode01")
    ok(crs, "relocate", "resource", "ora.myracnode02.vip", "-n", "myracnode02", "-f")
    assert crs.where("ora.myracnode02.vip") == ("ONLINE", "myracnode02")
    assert crs.where("myrac02-vip.ec2") == ("ONLINE", "myracnode02")
    assert lab.owners(SEED_VIP) == [n2.eni_id]
    assert answers(lab, SEED_VIP) == "node2"
    assert not has_addr(n1, SEED_VIP), "Oracle's VIP took its address along"

    # Every stop of ours succeeded and left the OS address in place; only Oracle's VIP (the
    # stand-in's log) ever removed it.
    assert seen == [("myracnode02", "stop", 0, True), ("myracnode01", "stop", 0, True)], seen
    log = (lab.dir / "ora-vip.log").read_text().split("\n")
    assert [l for l in log if l.endswith(" del")] == [f"myracnode01 {SEED_VIP} del"], log
    for j in crs.journal("myrac02-vip.ec2"):
        assert j["rc"] in (0, 1, 2) and "CRS_ERROR" not in j["stdout"], j


def test_scan_three_addresses_move_together_when_a_node_is_lost(lab, crs):
    n1, n2 = lab.node(1), lab.node(2)
    ok(crs, "add", "type", "cloudha.vip.type", "-basetype", "cluster_resource", "-attr",
       type_attrs("vip"))
    for i, ip in enumerate(SCAN, 1):
        add_ora_vip(lab, crs, f"ora.scan{i}.vip", ip, placement="balanced")
        dep = f"hard(intermediate:ora.scan{i}.vip)"
        ok(crs, "add", "resource", f"scan{i}.ec2", "-type", "cloudha.vip.type", "-attr",
           f"ACTION_SCRIPT={lab.scripts / 'vip'},IP={ip},NIC=eth0,CLOUD=aws,LOCAL_ADDRESS=false,"
           f"ENDPOINT_URL={lab.endpoint},CHECK_INTERVAL=1,START_DEPENDENCIES={dep},"
           f"STOP_DEPENDENCIES={dep},PLACEMENT=balanced")
        ok(crs, "start", "resource", f"ora.scan{i}.vip", "-n", "myracnode01")
        ok(crs, "start", "resource", f"scan{i}.ec2")
    for i, ip in enumerate(SCAN, 1):
        assert crs.where(f"scan{i}.ec2") == ("ONLINE", "myracnode01")
        assert lab.owners(ip) == [n1.eni_id]
        assert answers(lab, ip) == "node1"
    lose(lab, crs, "myracnode01")
    for i, ip in enumerate(SCAN, 1):
        assert crs.where(f"ora.scan{i}.vip") == ("ONLINE", "myracnode02")
        assert crs.where(f"scan{i}.ec2") == ("ONLINE", "myracnode02")
        assert lab.owners(ip) == [n2.eni_id], ip
        assert answers(lab, ip) == "node2", ip
    starts = [j for j in crs.journal(action="start") if j["member"] == "myracnode02"]
    print("failover starts on myracnode02:",
          [(j["resource"], round(j["seconds"], 3)) for j in starts])
    rejoin(lab, crs, "myracnode01", SCAN)


# ---------------------------------------------------------------- route-table


def test_route_table_as_an_action_script(lab, crs):
    n1, n2 = lab.node(1), lab.node(2)
    table = lab.tables[0]
    ok(crs, "add", "type", "cloudha.route-table.type", "-basetype", "cluster_resource", "-attr",
       type_attrs("route-table"))
    ok(crs, "add", "resource", "db-overlay", "-type", "cloudha.route-table.type", "-attr",
       f"ACTION_SCRIPT={lab.scripts / 'route-table'},IP={OVERLAY},ROUTE_TABLES={table},"
       f"NIC=eth0,ENDPOINT_URL={lab.endpoint},CHECK_INTERVAL=1,CLOUD_CHECK_INTERVAL=0,"
       f"PLACEMENT=favored,HOSTING_MEMBERS=myracnode01 myracnode02")
    rc, out = crs.crsctl(["status", "resource", "db-overlay"])
    assert rc == 0 and "STATE=OFFLINE" in out, out
    # Without the route it routes nothing: start fails on both members with the reason.
    rc, out = crs.crsctl(["start", "resource", "db-overlay"])
    assert rc == 1 and out.count("have no route for 192.168.100.10/32") == 2, out
    assert crs.where("db-overlay") == ("OFFLINE", None)
    lab.set_route(table, OVERLAY + "/32", n2)  # the admin creates it, pointing anywhere
    ok(crs, "start", "resource", "db-overlay")
    assert crs.where("db-overlay") == ("ONLINE", "myracnode01")
    assert lab.route_target(table, OVERLAY + "/32")[0] == n1.eni_id
    assert answers(lab, OVERLAY) == "node1"
    crs.check_all(now=1e12)
    assert crs.where("db-overlay") == ("ONLINE", "myracnode01")

    ok(crs, "relocate", "resource", "db-overlay", "-n", "myracnode02")
    assert crs.where("db-overlay") == ("ONLINE", "myracnode02")
    assert lab.route_target(table, OVERLAY + "/32")[0] == n2.eni_id
    assert not has_addr(n1, OVERLAY), "stop removed the overlay address"
    assert answers(lab, OVERLAY) == "node2"

    lose(lab, crs, "myracnode02")
    assert crs.where("db-overlay") == ("ONLINE", "myracnode01")
    assert lab.route_target(table, OVERLAY + "/32")[0] == n1.eni_id
    assert answers(lab, OVERLAY) == "node1"
    rejoin(lab, crs, "myracnode02")

    # The route points elsewhere behind our back: the check says UNPLANNED_OFFLINE (1) and
    # crsd restarts the resource where it was, which points the route back.
    lab.set_route(table, OVERLAY + "/32", n2)
    crs.check_all(now=2e12)
    checks = crs.journal("db-overlay", "check")
    assert checks[-2]["rc"] == 1 and checks[-1]["rc"] == 0, checks[-2:]
    assert crs.where("db-overlay") == ("ONLINE", "myracnode01")
    assert lab.route_target(table, OVERLAY + "/32")[0] == n1.eni_id

    ok(crs, "stop", "resource", "db-overlay")
    assert crs.where("db-overlay") == ("OFFLINE", None) and not has_addr(n1, OVERLAY)


# ---------------------------------------------------------------- the shipped examples


class Site:
    """The machine an admin pastes the examples into: /etc and /usr/lib/ocf are overlays (in a
    private mount namespace, so the host's stay untouched) holding what the package would
    install, `crsctl` on PATH is the stand-in, and commands run on a member's node."""

    def __init__(self, lab, tmp: Path, c: Crs):
        self.lab, self.tmp, self.c = lab, tmp, c
        for d in ("etc-up", "etc-work", "ocf-up/resource.d/cloudha", "ocf-work"):
            (tmp / d).mkdir(parents=True)
        for a in ("vip", "route-table", "vxlan-fdb"):
            (tmp / "ocf-up/resource.d/cloudha" / a).symlink_to(netns.cloudha_bin())
        self.bindir = tmp / "bin"
        c.install_cli(self.bindir)
        assert Path("/usr/lib/ocf").is_dir(), "resource-agents (install-deps) provides it"

    def run(self, member: str, argv: list[str], cwd: Path | None = None):
        t = self.tmp
        mounts = (f"mount -t overlay overlay -o lowerdir=/etc,upperdir={t}/etc-up,"
                  f"workdir={t}/etc-work /etc && mount -t overlay overlay -o lowerdir="
                  f"/usr/lib/ocf,upperdir={t}/ocf-up,workdir={t}/ocf-work /usr/lib/ocf")
        node = node_of(self.lab, member)
        inner = " ".join(shlex.quote(a) for a in node.wrap(argv))
        env = dict(self.c.state()["members"][member]["env"])
        env["PATH"] = f"{self.bindir}:{env['PATH']}"
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"{mounts} && exec {inner}"], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=300)
        print(f"[{member}] {argv} -> {p.returncode}\n{p.stdout}{p.stderr}")
        return p


def example_copy(agent: str, dest: Path, replace: dict) -> Path:
    """packaging/examples/<agent> as the package ships it (@CRS_TYPE_ATTRS@ filled in, as
    packaging/build.sh does), with the lab's ids for the placeholder ones."""
    dest.mkdir(parents=True)
    attrs = type_attrs(agent)
    for f in (EXAMPLES / agent).iterdir():
        text = f.read_text().replace("@CRS_TYPE_ATTRS@", attrs)
        for old, new in replace.items():
            text = text.replace(old, new)
        (dest / f.name).write_text(text)
    return dest


def test_shipped_crsctl_examples_run_as_written(lab, tmp_path):
    n1, n2 = lab.node(1), lab.node(2)
    # Nothing pins the endpoint in the examples (a real site needs none): the lab's EC2 is
    # the node's configured endpoint, as AWS_ENDPOINT_URL_EC2 in the environment.
    c = Crs(tmp_path / "crs.json", members(lab, None, {"AWS_ENDPOINT_URL_EC2": lab.endpoint}))
    (lab.dir / "ora-vip.log").write_text("")
    add_ora_vip(lab, c, "ora.myracnode02.vip", SEED_VIP, home="myracnode02",
                hosting="myracnode02 myracnode01")
    site = Site(lab, tmp_path, c)
    rtb1, rtb2 = lab.tables
    for t in lab.tables:
        lab.set_route(t, OVERLAY + "/32", n2, wait=False)
        lab.set_route(t, OVERLAY2 + "/32", n2, wait=False)

    vip_ex = example_copy("vip", tmp_path / "ex-vip", {})
    p = site.run("myracnode02", ["bash", "./crsctl-vip.sh"], cwd=vip_ex)
    assert p.returncode == 0 and "check: 0" in p.stdout, "the seed's resource checks ONLINE here"
    rt_ex = example_copy("route-table", tmp_path / "ex-rt", {"rtb-0aaaaaaaaaaaaaaa1": rtb1,
                                                             "rtb-0aaaaaaaaaaaaaaa2": rtb2})
    p = site.run("myracnode01", ["bash", "./crsctl-route-table.sh"], cwd=rt_ex)
    assert p.returncode == 0 and "check: 2" in p.stdout, "db-overlay not started: PLANNED_OFFLINE"
    cmds = c.commands()
    assert [x["argv"][:2] for x in cmds if x["rc"] != 0] == [], [x for x in cmds if x["rc"]]
    assert sum(x["argv"][:2] == ["add", "resource"] for x in cmds) == 5  # ora + 2 + 2

    # What the examples registered works: the seed's resource moved the address in EC2 to
    # myracnode02 (where Oracle's VIP is), the typed one starts (cloud=auto finds EC2 by DMI).
    assert c.where("myrac02-vip.ec2") == ("ONLINE", "myracnode02")
    assert lab.owners(SEED_VIP) == [n2.eni_id]
    assert answers(lab, SEED_VIP) == "node2"
    assert site.run("myracnode01", ["crsctl", "start", "resource", "myrac02-vip2"]).returncode == 0
    assert c.where("myrac02-vip2") == ("ONLINE", "myracnode01")
    assert lab.owners(SEED_VIP2) == [n1.eni_id] and has_addr(n1, SEED_VIP2)

    # db-overlay read the example's db-overlay.conf, which the example installed.
    assert rtb1 in (tmp_path / "etc-up" / "cloudha" / "db-overlay.conf").read_text()
    for res in ("db-overlay", "db-overlay2"):
        assert site.run("myracnode01", ["crsctl", "start", "resource", res]).returncode == 0
        assert c.where(res) == ("ONLINE", "myracnode01")
    for t in lab.tables:
        assert lab.route_target(t, OVERLAY + "/32")[0] == n1.eni_id
    assert lab.route_target(rtb1, OVERLAY2 + "/32")[0] == n1.eni_id
    assert answers(lab, OVERLAY) == "node1"
    for res in ("myrac02-vip2", "db-overlay", "db-overlay2", "myrac02-vip.ec2"):
        assert site.run("myracnode01", ["crsctl", "stop", "resource", res]).returncode == 0
    assert not has_addr(n1, SEED_VIP2) and has_addr(n2, SEED_VIP), "Oracle's stays"
    assert not os.path.exists("/etc/cloudha/db-overlay.conf"), "the host's /etc untouched"
