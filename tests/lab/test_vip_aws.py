"""The vip agent with cloud=aws against the EC2 lab (tests/lab/ec2lab): moto with fidelity
fixes, an IAM stand-in, a fault proxy, IMDSv2 on 169.254.169.254 inside each node's namespace,
and a VPC fabric through which a client sees the address move.

The binary runs inside the node namespaces the way Pacemaker runs it (OCF_RESKEY_* parameters,
action in argv[1]); its credentials come from the node's instance role through IMDS. Needs root
and the packages of scripts/install-deps.sh; nothing here skips.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cloudvip
import netns
from cloudvip import VIP, run_dir
from ec2lab import Ec2Lab

PORT = 8080


LAB = (Ec2Lab, dict(nodes=2, name="vipaws", second_eni=[1]))  # the `lab` fixture
SERVE = PORT


def before_each(lab):
    """Every test starts with VIP assigned to nobody, on no node, no faults, no denials."""
    lab.faults.clear()
    lab.iam.allow_all()
    for owner in lab.owners(VIP):
        lab.ec2.unassign_private_ip_addresses(NetworkInterfaceId=owner, PrivateIpAddresses=[VIP])
    for n in lab.nodes:
        for dev in ("eth0", "eth1"):
            n.exec(["ip", "addr", "del", f"{VIP}/24", "dev", dev])
    lab.sync()


def defaults(lab) -> dict:
    return {"ip": VIP, "cloud": "aws", "nic": "eth0", "endpoint_url": lab.endpoint}


def agent_env(lab, node, extra_env=None, **params) -> dict:
    return cloudvip.agent_env(lab, node, defaults(lab), extra_env, **params)


def vip(lab, node, action, extra_env=None, timeout=30, **params) -> netns.Result:
    return cloudvip.call(lab, node, action, defaults(lab), extra_env, timeout, **params)


def has_vip(node, dev="eth0") -> bool:
    return cloudvip.has_addr(node, VIP, dev)


def ec2_calls(lab, since) -> list[str]:
    return [c["action"] for c in lab.calls(since)]


# ---------------------------------------------------------------- the address cycle


def test_start_from_free_monitor_stop(lab):
    n1 = lab.node(1)
    assert vip(lab, 1, "monitor").rc == 7, "probe of an absent address"
    t = time.monotonic()
    r = vip(lab, 1, "start")
    assert r.rc == 0, r
    calls = ec2_calls(lab, t)
    assert calls[0] == "AssignPrivateIpAddresses" and calls.count("AssignPrivateIpAddresses") == 1
    assert "DescribeNetworkInterfaces" in calls, "start confirms with a read"
    assert lab.owners(VIP) == [n1.eni_id]
    assert has_vip(n1)
    lab.sync()
    assert lab.who_answers(VIP, PORT) == "node1"

    # A recurring monitor at depth 0 makes no API call (checked at start, interval 60 s).
    t = time.monotonic()
    r = vip(lab, 1, "monitor", extra_env={"OCF_RESKEY_CRM_meta_interval": "10000"})
    assert r.rc == 0, r
    assert ec2_calls(lab, t) == []
    # A probe and a depth-10 monitor ask EC2.
    t = time.monotonic()
    assert vip(lab, 1, "monitor").rc == 0
    assert vip(lab, 1, "monitor", extra_env={"OCF_RESKEY_CRM_meta_interval": "10000",
                                             "OCF_CHECK_LEVEL": "10"}).rc == 0
    assert ec2_calls(lab, t) == ["DescribeNetworkInterfaces"] * 2
    # cloud_check_interval=0: every recurring monitor asks.
    t = time.monotonic()
    assert vip(lab, 1, "monitor", cloud_check_interval=0,
               extra_env={"OCF_RESKEY_CRM_meta_interval": "10000"}).rc == 0
    assert ec2_calls(lab, t) == ["DescribeNetworkInterfaces"]

    r = vip(lab, 1, "stop")
    assert r.rc == 0, r
    assert lab.owners(VIP) == [] and not has_vip(n1)
    assert vip(lab, 1, "stop").rc == 0, "stop of a stopped resource"
    assert vip(lab, 1, "monitor").rc == 7


def test_start_takes_the_address_from_the_other_eni_and_the_loser_sees_7(lab):
    n1, n2 = lab.node(1), lab.node(2)
    assert vip(lab, 1, "start").rc == 0
    lab.sync()
    assert lab.who_answers(VIP, PORT) == "node1"
    r = vip(lab, 2, "start")
    assert r.rc == 0, r
    assert lab.owners(VIP) == [n2.eni_id], "EC2 moves the address: exactly one ENI holds it"
    lab.sync()
    assert lab.who_answers(VIP, PORT) == "node2"
    # node1 still has the OS address; its probe asks EC2 and says "not running here".
    assert has_vip(n1)
    r = vip(lab, 1, "monitor")
    assert r.rc == 7, r
    # node1's stop removes its OS address and leaves node2's address alone.
    assert vip(lab, 1, "stop").rc == 0
    assert lab.owners(VIP) == [n2.eni_id] and not has_vip(n1)
    lab.sync()
    assert lab.who_answers(VIP, PORT) == "node2"
    assert vip(lab, 2, "monitor").rc == 0


def test_start_when_already_ours_and_address_on_nobody(lab):
    n1 = lab.node(1)
    lab.assign(VIP, 1)
    r = vip(lab, 1, "start")
    assert r.rc == 0, r
    assert lab.owners(VIP) == [n1.eni_id]
    # Somebody unassigns it behind our back: traffic no longer reaches us: a failure (1).
    lab.unassign(VIP, 1)
    r = vip(lab, 1, "monitor")
    assert r.rc == 1, r
    assert any("not assigned to any interface" in x for x in r.reasons()), r.err


def test_two_nodes_racing_to_start(lab):
    """Both start at once: the last writer wins in EC2, exactly one ENI holds the address and
    the loser's probe says 7."""
    procs = []
    for n in lab.nodes:
        env = agent_env(lab, n)
        procs.append(n.popen([netns.cloudha_bin(), "vip", "start"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    rcs = [p.wait(30) for p in procs]
    assert rcs.count(0) >= 1, rcs
    owners = lab.owners(VIP)
    assert len(owners) == 1, owners
    winner = next(n for n in lab.nodes if n.eni_id == owners[0])
    loser = next(n for n in lab.nodes if n is not winner)
    assert vip(lab, winner, "monitor").rc == 0
    assert vip(lab, loser, "monitor").rc == 7


def test_multi_eni_uses_the_eni_of_nic(lab):
    n1 = lab.node(1)
    eth1 = n1.enis[1]
    r = vip(lab, 1, "start", nic="eth1")
    assert r.rc == 0, r
    assert lab.owners(VIP) == [eth1.id], "the ENI of eth1, not the primary"
    assert has_vip(n1, "eth1") and not has_vip(n1, "eth0")
    assert vip(lab, 1, "stop", nic="eth1").rc == 0
    assert lab.owners(VIP) == []


def test_elastic_ip_follows_and_is_left_alone_by_the_loser(lab):
    alloc, public = lab.allocate_eip()
    n1, n2 = lab.node(1), lab.node(2)
    assert vip(lab, 1, "start", eip_allocation_id=alloc).rc == 0
    assert lab.eip_target(alloc) == (n1.eni_id, VIP)
    assert vip(lab, 2, "start", eip_allocation_id=alloc).rc == 0
    assert lab.eip_target(alloc) == (n2.eni_id, VIP), f"{public} follows the address"
    assert vip(lab, 1, "stop", eip_allocation_id=alloc).rc == 0
    assert lab.eip_target(alloc) == (n2.eni_id, VIP), "node1's stop leaves node2's EIP"
    # The EIP moved away by hand: node2's probe reports a failure, not "running".
    lab.ec2.disassociate_address(
        AssociationId=lab.ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
        ["AssociationId"])
    r = vip(lab, 2, "monitor", eip_allocation_id=alloc)
    assert r.rc == 1 and any("not associated" in x for x in r.reasons()), r
    assert vip(lab, 2, "start", eip_allocation_id=alloc).rc == 0
    assert vip(lab, 2, "stop", eip_allocation_id=alloc).rc == 0
    assert lab.eip_target(alloc) is None and lab.owners(VIP) == []


def test_failover_sequence_leaves_exactly_one_holder(lab):
    for i, node in enumerate([1, 2, 1, 2, 1]):
        other = 2 if node == 1 else 1
        if i:
            assert vip(lab, other, "stop").rc == 0
        assert vip(lab, node, "start").rc == 0
        assert lab.owners(VIP) == [lab.node(node).eni_id]
        lab.sync()
        assert lab.who_answers(VIP, PORT) == f"node{node}"


# ---------------------------------------------------------------- bad inputs, this node


def test_wrong_nic_and_ip_outside_the_subnet(lab):
    n1 = lab.node(1)
    # An interface that is up but is not an ENI of this instance (unknown MAC in IMDS).
    n1.exec(["ip", "link", "add", "x0", "type", "veth", "peer", "name", "x1"], check=True)
    try:
        n1.exec(["ip", "link", "set", "x1", "up"], check=True)
        n1.exec(["ip", "link", "set", "x0", "up"], check=True)
        n1.exec(["ip", "addr", "add", "192.168.77.1/24", "dev", "x0"], check=True)
        t = time.monotonic()
        r = vip(lab, 1, "start", ip="192.168.77.10", nic="x0")
        assert r.rc == 2, r
        assert any("not a network interface (ENI) of this instance" in x for x in r.reasons())
        assert not [c for c in ec2_calls(lab, t) if not c.startswith("Describe")]
        assert "192.168.77.10" not in n1.exec(["ip", "addr"]).stdout
    finally:
        n1.exec(["ip", "link", "del", "x0"])
    t = time.monotonic()
    r = vip(lab, 1, "start", ip="10.0.2.77", cidr_netmask=24)
    assert r.rc == 2, r
    assert any("outside subnet 10.0.1.0/24" in x for x in r.reasons()), r.err
    assert ec2_calls(lab, t) == [], "refused before any EC2 call"
    assert "10.0.2.77" not in n1.exec(["ip", "addr"]).stdout
    # No such interface at all: 5, as for cloud=none.
    assert vip(lab, 1, "start", nic="eth9").rc == 5


def test_permission_denied_changes_nothing(lab):
    n1 = lab.node(1)
    lab.iam.deny("AssignPrivateIpAddresses")
    r = vip(lab, 1, "start")
    assert r.rc == 4, r
    assert any("UnauthorizedOperation" in x and "AssignPrivateIpAddresses" in x
               for x in r.reasons()), r.err
    assert lab.owners(VIP) == [] and not has_vip(n1)
    # A stop under the same denial still succeeds (nothing to release).
    assert vip(lab, 1, "stop").rc == 0
    # A running address whose checks are denied later stays up: the data path does not need
    # the API; the denial makes it degraded (190) with the reason, never a ban or a failover.
    lab.iam.allow_all()
    assert vip(lab, 1, "start").rc == 0
    lab.iam.deny("DescribeNetworkInterfaces")
    r = vip(lab, 1, "monitor")
    assert r.rc == 190, r
    assert "ERROR: cloud check failed" in r.err and "UnauthorizedOperation" in r.err, r.err
    assert len(r.reasons()) == 1 and "UnauthorizedOperation" in r.reasons()[0], r.err
    lab.iam.allow_all()
    assert vip(lab, 1, "stop").rc == 0


def test_preflight_report_and_missing_permissions(lab):
    alloc, _ = lab.allocate_eip()
    t = time.monotonic()
    r = vip(lab, 1, "validate-all", eip_allocation_id=alloc,
            extra_env={"OCF_CHECK_LEVEL": "10"})
    assert r.rc == 0, r
    print(r.out)
    for needle in ("instance metadata (IMDSv2)", lab.node(1).eni_id, "subnet 10.0.1.0/24",
                   "credentials valid, permissions granted", "not assigned to any interface",
                   f"Elastic IP {alloc}: not associated"):
        assert needle in r.out, (needle, r.out)
    calls = lab.calls(t)
    assert lab.owners(VIP) == [] and lab.eip_target(alloc) is None, "the pre-flight changed state"
    assert {c["action"] for c in calls if c["dry_run"]} >= {
        "DescribeNetworkInterfaces", "AssociateAddress", "DisassociateAddress"}
    # The human form, with parameters as words.
    n1 = lab.node(1)
    p = n1.exec([netns.cloudha_bin(), "vip", "check", f"ip={VIP}", "nic=eth0", "cloud=aws",
                 f"endpoint_url={lab.endpoint}"], env=agent_env(lab, n1))
    assert p.returncode == 0 and "permissions granted" in p.stdout, p
    # Missing permissions are all named, exit 4.
    lab.iam.deny("AssignPrivateIpAddresses", "AssociateAddress")
    r = vip(lab, 1, "validate-all", eip_allocation_id=alloc,
            extra_env={"OCF_CHECK_LEVEL": "10"})
    assert r.rc == 4, r
    reason = " ".join(r.reasons())
    assert "ec2:AssignPrivateIpAddresses" in reason and "ec2:AssociateAddress" in reason, reason
    assert lab.owners(VIP) == []


# ---------------------------------------------------------------- faults and deadlines


@pytest.mark.parametrize("kind", ["throttle", "http500", "reset"])
def test_persistent_fault_fails_start_with_1_and_never_6_or_7(lab, kind):
    lab.faults.set(kind)
    r = vip(lab, 1, "start")
    assert r.rc == 1, r
    assert r.elapsed < 20, "bounded by the action's timeout"
    lab.faults.clear()
    assert lab.owners(VIP) == []


@pytest.mark.parametrize("kind", ["throttle", "http500", "reset"])
def test_one_fault_is_retried(lab, kind):
    lab.faults.set(kind, count=1)
    r = vip(lab, 1, "start")
    assert r.rc == 0, r
    assert lab.owners(VIP) == [lab.node(1).eni_id]


def test_answer_slower_than_the_deadline(lab):
    lab.faults.set("slow", delay=30)
    r = vip(lab, 1, "start", extra_env={"OCF_RESKEY_CRM_meta_timeout": "5000"})
    assert r.rc == 1, r
    assert r.elapsed < 5.0, f"must report before Pacemaker's 5 s timeout, took {r.elapsed:.2f}s"


@pytest.mark.parametrize("kind", ["throttle", "http500", "reset", "slow"])
def test_cloud_trouble_in_monitor_keeps_a_healthy_resource_running(lab, kind):
    assert vip(lab, 1, "start").rc == 0
    lab.faults.set(kind, delay=30 if kind == "slow" else None)
    env = {"OCF_RESKEY_CRM_meta_timeout": "5000"}
    r = vip(lab, 1, "monitor", extra_env=env)  # a probe: asks EC2
    assert r.rc == 0, r
    assert "cloud check skipped" in r.err
    r = vip(lab, 1, "monitor", extra_env={**env, "OCF_CHECK_LEVEL": "10",
                                          "OCF_RESKEY_CRM_meta_interval": "60000"})
    assert r.rc == 0, r
    lab.faults.clear()
    assert vip(lab, 1, "stop").rc == 0


def test_stop_during_an_outage_succeeds_and_removes_the_address(lab):
    n1 = lab.node(1)
    assert vip(lab, 1, "start").rc == 0
    lab.faults.set("http500")
    r = vip(lab, 1, "stop")
    assert r.rc == 0, r
    assert not has_vip(n1)
    assert "not released in the cloud" in r.err


# ---------------------------------------------------------------- metadata and credentials


def test_imds_token_is_cached_0600_and_refetched_after_expiry(lab):
    n1 = lab.node(1)
    token = run_dir(lab, n1) / "imds-token"
    token.unlink(missing_ok=True)
    t = time.monotonic()
    assert vip(lab, 1, "start").rc == 0
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    puts = lab.imds.count(n1, path="/latest/api/token", method="PUT", since=t)
    assert vip(lab, 1, "monitor").rc == 0
    assert vip(lab, 1, "monitor").rc == 0
    after = lab.imds.count(n1, path="/latest/api/token", method="PUT", since=t)
    # The SDK's credential provider fetches its own token per process; ours is reused.
    ours_reused = after - puts <= 2
    assert ours_reused, (puts, after)
    old = token.read_text()
    lab.imds.expire_tokens()
    r = vip(lab, 1, "monitor")
    assert r.rc == 0, r
    assert token.read_text() != old, "a 401 fetched and stored a fresh token"


def test_role_arn_assumes_the_role_through_sts(lab):
    n1 = lab.node(1)
    t = time.monotonic()
    role = "arn:aws:iam::123456789012:role/cloudha-network"
    sts = {"AWS_ENDPOINT_URL_STS": lab.endpoint}
    cache = run_dir(lab, n1) / "aws-role-arn_aws_iam__123456789012_role_cloudha-network.json"
    cache.unlink(missing_ok=True)
    r = vip(lab, 1, "start", role_arn=role, extra_env=sts)
    assert r.rc == 0, r
    calls = lab.calls(t)
    assume = [c for c in calls if c["action"] == "AssumeRole"]
    assert len(assume) == 1 and assume[0]["key"] == n1.key, calls
    ec2 = [c for c in calls if c["action"] == "AssignPrivateIpAddresses"]
    assert ec2 and ec2[0]["key"] != n1.key, "EC2 calls are made with the assumed role"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # Later actions reuse the kept credentials: no STS call in a monitor that asks EC2, in a
    # stop, nor in the next start.
    t2 = time.monotonic()
    depth10 = {"OCF_RESKEY_CRM_meta_interval": "60000", "OCF_CHECK_LEVEL": "10"}
    assert vip(lab, 1, "monitor", role_arn=role, extra_env={**sts, **depth10}).rc == 0
    assert vip(lab, 1, "stop", role_arn=role, extra_env=sts).rc == 0
    assert vip(lab, 1, "start", role_arn=role, extra_env=sts).rc == 0
    later = lab.calls(t2)
    print(f"calls of the first start: {[c['action'] for c in calls]}; of monitor + stop + "
          f"start with the kept credentials: {[c['action'] for c in later]}")
    assert not [c for c in later if c["action"] == "AssumeRole"], later
    assert {c["key"] for c in later} == {ec2[0]["key"]}
    # Credentials EC2 refuses (AuthFailure) are dropped: the next action assumes the role again.
    assert vip(lab, 1, "stop", role_arn=role, extra_env=sts).rc == 0
    lab.faults.set("authfailure", keys=[ec2[0]["key"]])
    t3 = time.monotonic()
    r = vip(lab, 1, "start", role_arn=role, extra_env=sts)
    assert r.rc == 4 and "AuthFailure" in r.err, r
    assert not cache.exists(), "refused credentials are not kept"
    lab.faults.clear()
    assert vip(lab, 1, "start", role_arn=role, extra_env=sts).rc == 0
    assert [c["action"] for c in lab.calls(t3)].count("AssumeRole") == 1
    assert vip(lab, 1, "stop", role_arn=role, extra_env=sts).rc == 0


def test_profile_is_found_without_home(lab, tmp_path):
    """Pacemaker may run agents without HOME: the profile files of the user's home directory
    from the password database are used. The test gives root a private, empty /root (a tmpfs
    in a private mount namespace) holding only .aws, so the host's /root is not touched."""
    n1 = lab.node(1)
    binary = lab.dir / "cloudha-copy"  # the build output lives under /root
    if not binary.exists():
        binary.write_bytes(Path(netns.cloudha_bin()).read_bytes())
        binary.chmod(0o755)
    env = agent_env(lab, n1, profile="cluster")
    env.pop("HOME")
    creds = f"[profile cluster]\\nregion = {lab.region}\\n"
    keys = "[cluster]\\naws_access_key_id = AKIAPROFILE\\naws_secret_access_key = x\\n"
    script = (f"mount -t tmpfs none /root && mkdir /root/.aws && "
              f"printf '{creds}' > /root/.aws/config && printf '{keys}' > /root/.aws/credentials"
              f" && exec {' '.join(n1.wrap([str(binary), 'vip', 'start']))}")
    t = time.monotonic()
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
                       env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    keys_used = {c["key"] for c in lab.calls(t) if c["action"] == "AssignPrivateIpAddresses"}
    assert keys_used == {"AKIAPROFILE"}, keys_used
    assert vip(lab, 1, "stop").rc == 0


def test_clusterware_check_codes_with_aws(lab):
    """The same binary as an Oracle Clusterware ACTION_SCRIPT: start, check (ONLINE), the
    address taken by node2 (UNPLANNED_OFFLINE: 1), stop, check (PLANNED_OFFLINE: 2)."""
    n1 = lab.node(1)

    def crs(node, action):
        env = {k: v for k, v in agent_env(lab, lab.node(node)).items()
               if not k.startswith("OCF_")}
        env.update({"_CRS_NAME": "myrac02-vip.ec2", "_CRS_IP": VIP, "_CRS_CLOUD": "aws",
                    "_CRS_NIC": "eth0", "_CRS_ENDPOINT_URL": lab.endpoint,
                    # A check of a started resource is a recurring check: ask EC2 every time.
                    "_CRS_CLOUD_CHECK_INTERVAL": "0", "_CRS_SCRIPT_TIMEOUT": "20"})
        p = lab.node(node).exec([netns.cloudha_bin(), "vip", action], env=env, timeout=30)
        print(f"crs {action} on node{node} -> {p.returncode}\n{p.stdout}{p.stderr}")
        return p.returncode

    assert crs(1, "start") == 0
    assert crs(1, "check") == 0
    assert vip(lab, 2, "start").rc == 0
    assert crs(1, "check") == 1, "taken away while it should run here"
    assert crs(1, "stop") == 0 and not has_vip(n1)
    assert crs(1, "check") == 2
    assert vip(lab, 2, "stop").rc == 0


# ---------------------------------------------------------------- secrets never logged


def test_no_secret_or_key_id_reaches_any_log(lab, tmp_path):
    """Profile credentials with marker values, a profile-based role (STS session token) and
    every log sink on (HA_debug, syslog, Clusterware's CRS_* lines): neither the access key
    id, the secret nor the session token appears anywhere. (aws-config's profile provider logs
    the loaded key id at info level; only cloudha's own events may reach a cluster log.)"""
    import socket
    key_id, secret = "AKIAMARKER0123456789", "MARKERSECRETmarkersecret0123456789abcd"
    (tmp_path / "config").write_text(
        f"[profile base]\nregion = {lab.region}\n"
        f"[profile ha]\nregion = {lab.region}\nsource_profile = base\n"
        "role_arn = arn:aws:iam::123456789012:role/cloudha-ha\n")
    (tmp_path / "credentials").write_text(
        f"[base]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    sock_path = str(tmp_path / "syslog.sock")
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(sock_path)
    sink.settimeout(0.05)
    n1 = lab.node(1)
    seen = []
    base = {"AWS_CONFIG_FILE": str(tmp_path / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
            "HA_debug": "1", "HA_LOGFACILITY": "daemon", "CLOUDHA_SYSLOG_SOCKET": sock_path,
            # The profile's role is assumed through the lab's STS (the SDK's own variable).
            "AWS_ENDPOINT_URL_STS": lab.endpoint,
            "RUST_LOG": "trace"}
    t = time.monotonic()
    try:
        for action in ("start", "monitor", "stop"):
            r = vip(lab, 1, action, extra_env=base, profile="ha")
            assert r.rc == 0, r
            seen += [r.out, r.err]
        # Clusterware: CRS_PROGRESS / CRS_WARNING lines go to stdout.
        conf = tmp_path / "crs"
        conf.mkdir()
        (conf / "vip-crs.conf").write_text(
            f"ip={VIP}\ncloud=aws\nnic=eth0\nendpoint_url={lab.endpoint}\nprofile=ha\n")
        crs = {**base, "_CRS_NAME": "vip-crs", "CLOUDHA_CONFIG_DIR": str(conf)}
        for action in ("start", "check", "stop"):
            env = agent_env(lab, n1, extra_env=crs)
            env = {k: v for k, v in env.items() if not k.startswith("OCF_RESKEY_")}
            p = n1.exec([netns.cloudha_bin(), "vip", action], env=env, timeout=30)
            assert p.returncode in (0, 2), (action, p.stdout, p.stderr)
            seen += [p.stdout, p.stderr]
        while True:
            try:
                seen.append(sink.recv(65536).decode("utf-8", "replace"))
            except OSError:
                break
    finally:
        sink.close()
    keys_used = {c["key"] for c in lab.calls(t) if c["action"] == "AssumeRole"}
    assert keys_used == {key_id}, f"the role was assumed with {keys_used}"
    # The assumed role's own key ids, as the EC2 calls used them.
    role_keys = {c["key"] for c in lab.calls(t) if c["service"] == "ec2" and c["key"]}
    assert role_keys and key_id not in role_keys, role_keys
    text = "\n".join(seen)
    assert any("vip(" in s for s in seen), "the logs were captured"
    for marker in [key_id, secret, *role_keys]:
        assert marker not in text, f"{marker[:8]}... appears in a log"


# ---------------------------------------------------------------- cloud side only (RAC)


def test_cloud_only_follows_relocation_and_leaves_the_os_address_alone(lab):
    """The Clusterware seed: Oracle's ora.<node>.vip owns the address on the OS (played here
    by `ip addr add`), our resource with local_address=false only moves it in EC2. The client
    is served by whichever node EC2 delivers it to; our stop never removes the OS address."""
    n1, n2 = lab.node(1), lab.node(2)
    recurring = {"OCF_RESKEY_CRM_meta_interval": "10000"}
    for n in (n1, n2):  # both "ora vips" up: only the cloud decides who answers
        n.exec(["ip", "addr", "add", f"{VIP}/24", "dev", "eth0"])
    assert vip(lab, 1, "monitor", local_address="false").rc == 7, "probe: EC2 says nobody"
    assert vip(lab, 1, "start", local_address="false").rc == 0
    assert lab.owners(VIP) == [n1.eni_id]
    lab.sync()
    assert lab.who_answers(VIP, PORT) == "node1"
    assert vip(lab, 1, "monitor", recurring, local_address="false").rc == 0
    # Relocation: start on node 2, stop on node 1.
    assert vip(lab, 2, "start", local_address="false").rc == 0
    assert vip(lab, 1, "monitor", recurring, local_address="false",
               cloud_check_interval="0").rc == 7, "EC2 delivers it to node 2 now"
    assert vip(lab, 1, "stop", local_address="false").rc == 0
    assert lab.owners(VIP) == [n2.eni_id], "node 1's stop released nothing it did not hold"
    lab.sync()
    assert lab.who_answers(VIP, PORT) == "node2"
    assert has_vip(n1) and has_vip(n2), "the OS addresses belong to the ora vips"
    assert vip(lab, 1, "monitor", recurring, local_address="false").rc == 7
