"""The shipped Pacemaker examples, executed as an admin pastes them.

Every `pcs` command of every packaging/examples/*/pcs-*.sh runs, in order, against a scratch
CIB (`pcs -f`), and every crmsh snippet (crm-*.txt) is loaded with `crm configure load update`
into a scratch CIB (CIB_file). The agents are where pcs and crmsh look for their meta-data:
/usr/lib/ocf/resource.d/cloudha/<agent> and /usr/sbin/fence_cloudha are links to $CLOUDHA_BIN
in overlays of a private mount namespace, with crmsh's log in a scratch directory and no
network (a network namespace of its own), so the host stays untouched. Each command must
succeed, and the CIB must hold what the example says: every resource under its own id with
exactly the parameters its create and later updates gave it, which the agent's validate-all
accepts (an update landing on another resource shows there), groups, clones, constraints. The
other commands of the pcs files run too (validate-all, meta-data), except the listed ones that
ask a cloud. Needs root, pcs, crmsh (install-deps).
"""

from __future__ import annotations

import shlex
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netns import cloudha_bin

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "packaging" / "examples"
AGENTS = ("vip", "route-table", "vxlan-fdb", "cloud-ready")

# Commands of the pcs files not run here, each because it talks to a cloud API.
ASK_A_CLOUD = {
    ("pcs-vip.sh", "cloudha vip check"),
    ("pcs-route-table.sh", "cloudha route-table check"),
    ("pcs-fence_cloudha.sh", "fence_cloudha -o status"),
}

MOUNTS = r"""
set -eu
t=$1; shift
mount -t overlay cloudha-ocf -o "lowerdir=/usr/lib/ocf,upperdir=$t/ocf-up,workdir=$t/ocf-work" \
    /usr/lib/ocf
mount -t overlay cloudha-sbin -o "lowerdir=/usr/sbin,upperdir=$t/sbin-up,workdir=$t/sbin-work" \
    /usr/sbin
# crmsh logs every command to /var/log/crmsh/crmsh.log: its log goes to the scratch directory.
if [ -d /var/log/crmsh ]; then mount --bind "$t/crmsh-log" /var/log/crmsh; fi
exec "$@"
"""


class Site:
    """A node as the package leaves it, in a private mount namespace without network."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        for d in ("ocf-up/resource.d/cloudha", "ocf-work", "sbin-up", "sbin-work", "crmsh-log"):
            (tmp / d).mkdir(parents=True)
        for a in AGENTS:
            (tmp / "ocf-up/resource.d/cloudha" / a).symlink_to(cloudha_bin())
        (tmp / "sbin-up/fence_cloudha").symlink_to(cloudha_bin())
        (tmp / "sbin-up/cloudha").symlink_to(cloudha_bin())

    def run(self, argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run(["unshare", "-m", "-n", "--propagation", "private", "sh", "-c",
                            MOUNTS, "sh", str(self.tmp)] + argv, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
        print(f"{shlex.join(argv)} -> {p.returncode}\n{p.stdout}{p.stderr}")
        return p

    def scratch_cib(self, name: str) -> Path:
        cib = self.tmp / name
        p = subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True, check=True)
        cib.write_text(p.stdout)
        return cib


@pytest.fixture
def site(tmp_path):
    assert Path("/usr/lib/ocf/resource.d").is_dir(), "resource-agents (install-deps)"
    watched = (Path("/usr/lib/ocf/resource.d/cloudha"), Path("/usr/sbin/fence_cloudha"),
               Path("/usr/sbin/cloudha"), Path("/var/log/crmsh/crmsh.log"))

    def state():
        return [p.stat().st_size if p.exists() else None for p in watched]

    before = state()
    yield Site(tmp_path)
    assert state() == before, "the host's /usr and crmsh log untouched"


def commands(path: Path) -> list[list[str]]:
    """The commands of a shell example: comments dropped, backslash continuations joined."""
    out, cur = [], ""
    for line in path.read_text().splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append(shlex.split(cur + line, comments=True))
        cur = ""
    assert not cur, f"{path.name}: a continuation runs off the end"
    return out


def pairs(words: list[str]) -> dict[str, str]:
    bad = [w for w in words if "=" not in w]
    assert not bad, f"not name=value: {bad}"
    return dict(w.split("=", 1) for w in words)


class Model:
    """What the pcs commands of one example say the CIB must hold."""

    def __init__(self):
        self.rsc: dict[str, dict] = {}  # id -> {class, provider, type, params, ops}
        self.groups: dict[str, list[str]] = {}
        self.clones: dict[str, tuple[str, dict]] = {}  # clone id -> (child, meta)
        self.locations: list[tuple[str, str, str]] = []  # (rsc, node, score)
        self.orders: list[tuple[str, str]] = []
        self.colocations: list[tuple[str, str, str]] = []
        self.properties: dict[str, str] = {}

    def create(self, cls: str, rid: str, agent: str, words: list[str]) -> None:
        assert rid not in self.rsc, f"{rid} created twice by the example"
        sections: list[tuple[str, list[str]]] = [("params", [])]
        group = None
        it = iter(words)
        for w in it:
            if w == "--group":
                group = next(it)
            elif w in ("op", "meta", "clone"):
                sections.append((w, []))
            else:
                sections[-1][1].append(w)
        ops = []
        if cls == "ocf":
            _, provider, typ = agent.split(":")
        else:
            provider, typ = None, agent
        entry = dict(cls=cls, provider=provider, type=typ, params={}, ops=ops)
        for kind, ws in sections:
            if kind == "params":
                entry["params"] = pairs(ws)
            elif kind == "op":
                # op NAME k=v ... [NAME k=v ...]: a new op starts at each bare word.
                for w in ws:
                    if "=" not in w:
                        ops.append((w, {}))
                    else:
                        k, v = w.split("=", 1)
                        ops[-1][1][k] = v
            elif kind == "clone":
                self.clones[f"{rid}-clone"] = (rid, pairs(ws))
            else:
                raise AssertionError(f"{kind} options are not modelled here: extend the test")
        self.rsc[rid] = entry
        if group:
            self.groups.setdefault(group, []).append(rid)

    def pcs(self, args: list[str]) -> None:
        """Apply one pcs command (its words after `pcs`); forms not modelled fail the test."""
        match args:
            case ["resource", "create", rid, agent, *rest]:
                self.create("ocf", rid, agent, rest)
            case ["stonith", "create", rid, agent, *rest]:
                self.create("stonith", rid, agent, rest)
            case ["resource", "update", rid, *rest]:
                assert rid in self.rsc, f"update of {rid}, which the example never created"
                self.rsc[rid]["params"].update(pairs(rest))
            case ["constraint", "location", rid, "avoids", node_score]:
                node, score = node_score.split("=")
                self.locations.append((rid, node, "-" + score))
            case ["constraint", "order", "start", first, "then", "start", then]:
                self.orders.append((first, then))
            case ["constraint", "colocation", "add", rid, "with", other, score]:
                self.colocations.append((rid, other, score))
            case ["property", "set", *rest]:
                self.properties.update(pairs(rest))
            case _:
                raise AssertionError(f"pcs {shlex.join(args)} is not modelled: extend the test")

    def check(self, site: Site, cib: Path) -> None:
        conf = ET.parse(cib).getroot().find("configuration")
        prims = {p.get("id"): p for p in conf.iter("primitive")}
        assert sorted(prims) == sorted(self.rsc), "one primitive per create, under its own id"
        for rid, want in self.rsc.items():
            p = prims[rid]
            assert (p.get("class"), p.get("provider"), p.get("type")) == (
                want["cls"], want["provider"], want["type"]), rid
            ia = p.find("instance_attributes")
            got = {} if ia is None else {n.get("name"): n.get("value") for n in ia.iter("nvpair")}
            assert got == want["params"], f"{rid}: parameters {got} != {want['params']}"
            if want["provider"] == "cloudha":
                validate(site, want["type"], got)
            ops = [(o.get("name"), o.get("interval")) for o in p.find("operations").iter("op")]
            for name, attrs in want["ops"]:
                assert (name, attrs.get("interval")) in ops, f"{rid}: op {name} {attrs}"
        for gid, members in self.groups.items():
            g = conf.find(f".//group[@id='{gid}']")
            assert g is not None, f"group {gid}"
            assert [p.get("id") for p in g.findall("primitive")] == members, gid
        for cid, (child, meta) in self.clones.items():
            c = conf.find(f".//clone[@id='{cid}']")
            assert c is not None and c.find("primitive").get("id") == child, cid
            got = {n.get("name"): n.get("value") for n in c.iter("nvpair")}
            assert meta.items() <= got.items(), f"{cid}: meta {got}"
        cons = conf.find("constraints")
        locs = {(c.get("rsc"), c.get("node"), c.get("score")) for c in cons.iter("rsc_location")}
        assert set(self.locations) == locs
        orders = {(c.get("first"), c.get("then")) for c in cons.iter("rsc_order")}
        assert set(self.orders) == orders
        cols = {(c.get("rsc"), c.get("with-rsc"), c.get("score"))
                for c in cons.iter("rsc_colocation")}
        assert set(self.colocations) == cols
        props = {n.get("name"): n.get("value") for n in conf.find("crm_config").iter("nvpair")}
        assert self.properties.items() <= props.items()


def validate(site: Site, agent: str, params: dict[str, str]) -> None:
    """The agent agrees with the resource's final parameters (validate-all at level 0 checks
    them offline: an update that landed on the wrong resource, e.g. oci_auth on a cloud=none
    address, is refused here)."""
    p = site.run(["cloudha", agent, "validate-all"] + [f"{k}={v}" for k, v in params.items()])
    assert p.returncode == 0, f"{agent} {params}: {p.stderr}"


PCS_EXAMPLES = sorted(EXAMPLES.glob("*/pcs-*.sh"))
CRM_EXAMPLES = sorted(EXAMPLES.glob("*/crm-*.txt"))


def test_every_agent_with_a_pcs_example_has_a_crm_snippet():
    assert {p.parent.name for p in PCS_EXAMPLES} == {p.parent.name for p in CRM_EXAMPLES}
    assert {"vip", "route-table", "vxlan-fdb", "fence_cloudha"} <= {p.parent.name
                                                                   for p in PCS_EXAMPLES}


def test_the_parser_joins_continuations(tmp_path):
    f = tmp_path / "x.sh"
    f.write_text("# c\npcs a \\\n    b=\"1 2\" \\\n  c\n\nls # trailing\n")
    assert commands(f) == [["pcs", "a", "b=1 2", "c"], ["ls"]]


@pytest.mark.parametrize("example", PCS_EXAMPLES, ids=lambda p: p.name)
def test_pcs_example_runs_as_written(site, example):
    cib = site.scratch_cib("cib.xml")
    model = Model()
    skipped, ran = set(), 0
    for argv in commands(example):
        if argv[0] == "pcs":
            p = site.run(["pcs", "-f", str(cib)] + argv[1:])
            assert p.returncode == 0, f"{shlex.join(argv)}:\n{p.stdout}{p.stderr}"
            model.pcs(argv[1:])
            ran += 1
            continue
        key = next((k for k in ASK_A_CLOUD if k[0] == example.name
                    and shlex.join(argv).startswith(k[1])), None)
        if key:
            skipped.add(key)
            continue
        # The offline commands: validate-all and meta-data, with cloud=none.
        assert argv[0] in ("crm_resource", "cloudha"), f"unknown command {argv}"
        p = site.run(argv)
        assert p.returncode == 0, f"{shlex.join(argv)}:\n{p.stdout}{p.stderr}"
        if "--show-metadata" in argv:
            ET.fromstring(p.stdout)
    assert ran > 0
    assert skipped == {k for k in ASK_A_CLOUD if k[0] == example.name}, "stale skip list"
    model.check(site, cib)


def crm_load(site, cib: Path, snippet: Path):
    p = site.run(["crm", "configure", "load", "update", str(snippet)],
                 env={"CIB_file": str(cib), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                      "HOME": str(site.tmp)})
    # crmsh reports parameter and agent problems as ERROR lines; quorum and node warnings of
    # a CIB without nodes are expected.
    assert p.returncode == 0 and "ERROR" not in p.stdout + p.stderr, p.stdout + p.stderr
    return ET.parse(cib).getroot().find("configuration")


def snippet_commands(snippet: Path) -> list[list[str]]:
    """The commands of a crm snippet as words: continuations joined, comments dropped."""
    text = snippet.read_text().replace("\\\n", " ")
    return [w for w in (shlex.split(line, comments=True) for line in text.splitlines()) if w]


def snippet_ids(snippet: Path) -> dict[str, list[str]]:
    """The objects a crm snippet defines: {kind: [ids]}; groups and clones with members."""
    out: dict[str, list[str]] = {}
    for w in snippet_commands(snippet):
        if w[0] in ("primitive", "group", "clone", "location", "order", "colocation"):
            out.setdefault(w[0], []).append(w[1])
    return out


def test_crm_snippets_load_into_a_cluster_with_fencing(site):
    """The fence snippet first, into an empty CIB (crm_verify refuses a configuration without
    fencing), then every other snippet into a copy of that cluster."""
    fence = EXAMPLES / "fence_cloudha" / "crm-fence_cloudha.txt"
    base = site.scratch_cib("cib-fenced.xml")
    conf = crm_load(site, base, fence)
    for rid in snippet_ids(fence)["primitive"]:
        p = conf.find(f".//primitive[@id='{rid}']")
        assert (p.get("class"), p.get("type")) == ("stonith", "fence_cloudha")
    for snippet in CRM_EXAMPLES:
        if snippet == fence:
            continue
        cib = site.tmp / f"cib-{snippet.stem}.xml"
        cib.write_text(base.read_text())
        conf = crm_load(site, cib, snippet)
        ids = snippet_ids(snippet)
        for w in snippet_commands(snippet):
            if w[:1] == ["primitive"]:
                p = conf.find(f".//primitive[@id='{w[1]}']")
                _, provider, typ = w[2].split(":")
                assert (p.get("provider"), p.get("type")) == (provider, typ), w[1]
                words = w[w.index("params") + 1:]
                want = pairs(words[:words.index("op")] if "op" in words else words)
                got = {n.get("name"): n.get("value")
                       for n in p.find("instance_attributes").iter("nvpair")}
                assert got == want, w[1]
                validate(site, typ, got)
            if w[:1] == ["group"]:
                g = conf.find(f".//group[@id='{w[1]}']")
                assert [p.get("id") for p in g.findall("primitive")] == w[2:]
            if w[:1] == ["clone"]:
                c = conf.find(f".//clone[@id='{w[1]}']")
                assert c.find("primitive").get("id") == w[2]
        for kind, tag in (("location", "rsc_location"), ("order", "rsc_order"),
                          ("colocation", "rsc_colocation")):
            for cid in ids.get(kind, []):
                assert conf.find(f".//{tag}[@id='{cid}']") is not None, cid
