"""The vip agent with cloud=oci against the OCI lab (tests/lab/ocilab): a stand-in for the
private-IP API that checks every request signature as OCI does, the federation endpoint of
instance principals, instance metadata v2 inside each node, and a VCN fabric through which a
client sees the address move.

The binary runs inside the node namespaces the way Pacemaker runs it; by default it
authenticates as an instance principal (certificate from metadata -> session token). Needs root
and the packages of scripts/install-deps.sh; nothing here skips.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from pathlib import Path

import pytest

import cloudvip
import netns
from cloudvip import VIP, run_dir
from ocilab import OciLab, reference_sign

PORT = 8080


LAB = (OciLab, dict(nodes=2, name="vipoci"))  # the `lab` fixture
SERVE = PORT


def before_each(lab):
    """VIP exists nowhere, no faults, no denials, the stand-in's clock right."""
    lab.faults.clear()
    lab.iam.allow_all()
    lab.set_skew(0)
    if lab.owners(VIP):
        lab.unassign(VIP)
    for n in lab.nodes:
        n.exec(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
    lab.sync()


def defaults(lab) -> dict:
    return {"ip": VIP, "cloud": "oci", "nic": "eth0", "endpoint_url": lab.endpoint,
            "auth_endpoint_url": lab.federation_endpoint}


def agent_env(lab, node, extra_env=None, **params) -> dict:
    return cloudvip.agent_env(lab, node, defaults(lab), extra_env, **params)


def vip(lab, node, action, extra_env=None, timeout=30, **params) -> netns.Result:
    return cloudvip.call(lab, node, action, defaults(lab), extra_env, timeout, **params)


def has_vip(node) -> bool:
    return cloudvip.has_addr(node, VIP)


def ops(lab, since) -> list[str]:
    return [c["operation"] for c in lab.calls(since) if c["operation"] != "X509Federation"]


# ---------------------------------------------------------------- the address cycle


def test_create_when_absent_monitor_stop(lab):
    n1 = lab.node(1)
    assert vip(lab, 1, "monitor").rc == 7
    t = time.monotonic()
    r = vip(lab, 1, "start")
    assert r.rc == 0, r
    assert "CreatePrivateIp" in ops(lab, t) and "UpdatePrivateIp" not in ops(lab, t)
    assert lab.owners(VIP) == [n1.vnic_id] and has_vip(n1)
    lab.sync()
    assert lab.who_answers(VIP, PORT) == "node1"
    # Every request the stand-in accepted carried a valid signature of the session key.
    assert all(c["status"] and c["status"] < 400 for c in lab.calls(t)), lab.calls(t)
    t = time.monotonic()
    assert vip(lab, 1, "monitor", extra_env={"OCF_RESKEY_CRM_meta_interval": "10000"}).rc == 0
    assert lab.calls(t) == [], "a recurring depth-0 monitor makes no API call"
    assert vip(lab, 1, "monitor").rc == 0
    assert ops(lab, t) == ["ListPrivateIps"], "a probe asks (GetVnic is cached)"
    assert vip(lab, 1, "stop").rc == 0
    assert not has_vip(n1)
    assert lab.owners(VIP) == [n1.vnic_id], "kept by default: the next start moves it"
    assert vip(lab, 1, "monitor").rc == 7


def test_move_from_the_other_vnic_and_the_loser_sees_7(lab):
    n1, n2 = lab.node(1), lab.node(2)
    assert vip(lab, 2, "start").rc == 0
    t = time.monotonic()
    r = vip(lab, 1, "start")
    assert r.rc == 0, r
    assert "UpdatePrivateIp" in ops(lab, t) and "CreatePrivateIp" not in ops(lab, t)
    assert lab.owners(VIP) == [n1.vnic_id]
    lab.sync()
    assert lab.who_answers(VIP, PORT) == "node1"
    assert has_vip(n2)
    assert vip(lab, 2, "monitor").rc == 7, "node2's probe: OCI delivers it to node1"
    assert vip(lab, 2, "stop").rc == 0
    assert lab.owners(VIP) == [n1.vnic_id]
    assert vip(lab, 1, "stop").rc == 0


def test_already_ours_changes_nothing_in_oci(lab):
    lab.assign(VIP, 1)
    t = time.monotonic()
    assert vip(lab, 1, "start").rc == 0
    assert not {"UpdatePrivateIp", "CreatePrivateIp"} & set(ops(lab, t))
    assert vip(lab, 1, "stop").rc == 0


def test_delete_on_stop_only_when_ours(lab):
    n1 = lab.node(1)
    assert vip(lab, 1, "start", delete_on_stop="true").rc == 0
    assert vip(lab, 2, "start").rc == 0
    assert vip(lab, 1, "stop", delete_on_stop="true").rc == 0
    assert lab.owners(VIP) == [lab.node(2).vnic_id], "node2's address is not deleted"
    assert vip(lab, 1, "start").rc == 0
    assert vip(lab, 2, "stop").rc == 0
    assert vip(lab, 1, "stop", delete_on_stop="true").rc == 0
    assert lab.owners(VIP) == [] and not has_vip(n1)


# ---------------------------------------------------------------- this node's problems


def test_wrong_mac_and_ip_outside_the_subnet(lab):
    n1 = lab.node(1)
    n1.exec(["ip", "link", "add", "x0", "type", "veth", "peer", "name", "x1"], check=True)
    try:
        for dev in ("x1", "x0"):
            n1.exec(["ip", "link", "set", dev, "up"], check=True)
        n1.exec(["ip", "addr", "add", "192.168.77.1/24", "dev", "x0"], check=True)
        r = vip(lab, 1, "start", ip="192.168.77.10", nic="x0")
        assert r.rc == 2, r
        assert any("is not a VNIC of this instance" in x for x in r.reasons()), r.err
    finally:
        n1.exec(["ip", "link", "del", "x0"])
    t = time.monotonic()
    r = vip(lab, 1, "start", ip="10.0.2.77", cidr_netmask=24)
    assert r.rc == 2 and any("outside subnet 10.0.1.0/24" in x for x in r.reasons()), r
    assert ops(lab, t) == []
    assert "10.0.2.77" not in n1.exec(["ip", "addr"]).stdout


def test_clock_skew_is_explained_and_changes_nothing(lab):
    n1 = lab.node(1)
    lab.set_skew(600)
    r = vip(lab, 1, "start")
    assert r.rc == 4, r
    assert any("clock" in x for x in r.reasons()), r.err
    assert lab.owners(VIP) == [] and not has_vip(n1)


def test_permission_denied_404_and_401_forms(lab):
    n1 = lab.node(1)
    lab.assign(VIP, 2)
    lab.iam.deny("UpdatePrivateIp")
    r = vip(lab, 1, "start")
    assert r.rc == 4, r
    assert any("NotAuthorizedOrNotFound" in x and "virtual-network-family" in x
               for x in r.reasons()), r.err
    assert lab.owners(VIP) == [lab.node(2).vnic_id] and not has_vip(n1)
    lab.iam.allow_all()
    lab.iam.deny("*", status=401)
    r = vip(lab, 1, "start")
    assert r.rc == 4 and any("NotAuthenticated" in x for x in r.reasons()), r
    assert not has_vip(n1)


def test_auth_failure_in_monitor_never_reports_not_running(lab):
    """ocivip's open issue #2020: an authentication hiccup in monitor -> 7 -> failover. Here:
    degraded (190) with the reason, the address kept."""
    assert vip(lab, 1, "start").rc == 0
    for status in (401, 404):
        lab.iam.deny("ListPrivateIps", status=status)
        r = vip(lab, 1, "monitor")
        assert r.rc == 190, r
        assert "cloud check failed" in r.err and len(r.reasons()) == 1
        lab.iam.allow_all()
    lab.faults.set("throttle")
    r = vip(lab, 1, "monitor", extra_env={"OCF_RESKEY_CRM_meta_timeout": "5000"})
    assert r.rc == 0 and "cloud check skipped" in r.err, r
    lab.faults.clear()
    assert vip(lab, 1, "stop").rc == 0


# ---------------------------------------------------------------- sessions and keys


def test_session_is_cached_0600_and_renewed_when_revoked(lab):
    n1 = lab.node(1)
    session = run_dir(lab, n1) / "oci-session"
    session.unlink(missing_ok=True)
    t = time.monotonic()
    assert vip(lab, 1, "start").rc == 0
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    assert vip(lab, 1, "monitor").rc == 0
    assert vip(lab, 1, "monitor").rc == 0
    assert lab.count("X509Federation", since=t) == 1, "one federation for three calls"
    lab.federation.expire_tokens()
    t = time.monotonic()
    r = vip(lab, 1, "monitor")
    assert r.rc == 0, r
    statuses = [(c["operation"], c["status"]) for c in lab.calls(t)]
    assert ("ListPrivateIps", 401) in statuses and ("X509Federation", 200) in statuses, statuses
    assert statuses[-1] == ("ListPrivateIps", 200), statuses
    assert vip(lab, 1, "stop").rc == 0


def test_api_key_authentication(lab):
    n1 = lab.node(1)
    t = time.monotonic()
    r = vip(lab, 1, "start", oci_auth="api_key", config_file=n1.config_file)
    assert r.rc == 0, r
    calls = lab.calls(t)
    assert calls and {c["auth"] for c in calls} == {"api_key"}, calls
    assert lab.count("X509Federation", since=t) == 0
    assert vip(lab, 1, "stop", oci_auth="api_key", config_file=n1.config_file).rc == 0
    r = vip(lab, 1, "start", oci_auth="api_key", config_file="/nonexistent/config")
    assert r.rc == 5 and any("/nonexistent/config" in x for x in r.reasons()), r


def test_signatures_match_oracles_sdk_byte_for_byte(lab):
    """Our signer and Oracle's (PyPI oci) on the same request, key and date."""
    n1 = lab.node(1)
    signer = Path(netns.cloudha_bin()).parent / "examples" / "oci_sign"
    key_id = f"{lab.tenancy}/{n1.user}/{n1.fingerprint}"
    date = "Sun, 29 Nov 2026 21:00:00 GMT"
    pem = Path(n1.key_file).read_text()
    cases = [
        ("GET", f"{lab.endpoint}/20160918/privateIps?ipAddress={VIP}&subnetId={lab.subnet_id}",
         None),
        ("PUT", f"{lab.endpoint}/20160918/privateIps/ocid1.privateip.oc1.x", '{"vnicId":"v"}'),
        ("POST", f"{lab.endpoint}/20160918/privateIps", '{"vnicId":"v","ipAddress":"10.0.1.9"}'),
        ("DELETE", f"{lab.endpoint}/20160918/privateIps/ocid1.privateip.oc1.x", None),
    ]
    for method, url, body in cases:
        argv = [str(signer), n1.key_file, key_id, method, url, date] + ([body] if body else [])
        ours = json.loads(subprocess.run(argv, capture_output=True, text=True,
                                         check=True).stdout)
        headers = {"date": date}
        if body is not None:
            headers["content-type"] = "application/json"
        theirs = reference_sign(method, url, headers, (body or "").encode(), pem, key_id)
        theirs = {k.lower(): v for k, v in theirs.items()}
        print(method, ours["authorization"])
        assert ours["authorization"] == theirs["authorization"], (method, ours, theirs)
        # The headers the signature covers are the same too.
        signed = ours["authorization"].split('headers="')[1].split('"')[0].split()
        for h in signed:
            if h != "(request-target)":
                assert ours[h] == theirs[h], (h, ours, theirs)


# ---------------------------------------------------------------- faults and the pre-flight


@pytest.mark.parametrize("kind", ["throttle", "http500", "reset"])
def test_persistent_fault_fails_start_with_1(lab, kind):
    vip(lab, 1, "monitor")  # a session first, so the fault hits the API calls
    lab.faults.set(kind, operations=["ListPrivateIps", "CreatePrivateIp", "GetVnic"])
    r = vip(lab, 1, "start", extra_env={"OCF_RESKEY_CRM_meta_timeout": "8000"})
    assert r.rc == 1, r
    assert r.elapsed < 8
    lab.faults.clear()


def test_one_throttle_is_retried(lab):
    lab.faults.set("throttle", count=1, operations=["CreatePrivateIp"])
    r = vip(lab, 1, "start")
    assert r.rc == 0, r
    assert lab.owners(VIP) == [lab.node(1).vnic_id]
    assert vip(lab, 1, "stop").rc == 0


def test_preflight_healthy_and_misconfigured(lab):
    r = vip(lab, 1, "validate-all", extra_env={"OCF_CHECK_LEVEL": "10"})
    assert r.rc == 0, r
    print(r.out)
    for needle in ("instance metadata", "instance principal", lab.node(1).vnic_id,
                   "GetVnic: allowed", "ListPrivateIps: allowed", "UpdatePrivateIp: allowed"):
        assert needle in r.out, (needle, r.out)
    assert lab.owners(VIP) == []
    lab.iam.deny("UpdatePrivateIp")
    r = vip(lab, 1, "validate-all", extra_env={"OCF_CHECK_LEVEL": "10"})
    print(r.err)
    assert r.rc == 4 and any("may not update private IPs" in x for x in r.reasons()), r


def test_probe_of_a_stopped_resource_prepares_the_session_key(lab):
    """Pacemaker probes every node; the standby generates its session key then (no API call),
    so its start at a failover federates with one round trip."""
    n2 = lab.node(2)
    session = run_dir(lab, n2) / "oci-session"
    session.unlink(missing_ok=True)
    t = time.monotonic()
    assert vip(lab, 2, "monitor").rc == 7
    assert lab.calls(t) == [], "a probe of a stopped resource makes no API call"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    key = session.read_text().split("\n", 1)[1]
    assert "PRIVATE KEY" in key
    assert vip(lab, 2, "start").rc == 0
    assert session.read_text().split("\n", 1)[1] == key, "the prepared key was used"
    assert vip(lab, 2, "stop").rc == 0


# ---------------------------------------------------------------- races and switches


def test_delete_on_stop_never_deletes_an_address_moved_meanwhile(lab):
    """node1's stop (delete_on_stop) has read the private IP on its VNIC; node2 takes the
    address before node1's delete lands. The delete carries the ETag node1 saw, so OCI refuses
    it (412) and node2 keeps the address; node1's stop still succeeds."""
    n1 = lab.node(1)
    assert vip(lab, 1, "start", delete_on_stop="true").rc == 0
    lab.faults.set("slow", count=1, delay=1.5, operations=["DeletePrivateIp"])
    p = n1.popen([netns.cloudha_bin(), "vip", "stop"],
                 env=agent_env(lab, n1, delete_on_stop="true"),
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
            c["operation"] == "GetPrivateIp" for c in lab.calls(deadline - 10)):
        time.sleep(0.02)
    lab.assign(VIP, lab.node(2))  # the move lands while node1's delete is on its way
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert lab.owners(VIP) == [lab.node(2).vnic_id], "node2's address was deleted"
    statuses = [c["status"] for c in lab.calls(deadline - 10)
                if c["operation"] == "DeletePrivateIp"]
    assert statuses == [412], statuses


def test_metadata_switch_makes_no_metadata_request(lab):
    """CLOUDHA_METADATA_DISABLED=true: cloud=oci fails with the reason (5) without a single
    request to the node's metadata service."""
    n1 = lab.node(1)
    t = time.time()
    before = lab.imds.count(n1)
    r = vip(lab, 1, "start", extra_env={"CLOUDHA_METADATA_DISABLED": "true"})
    assert r.rc == 5, r
    assert any("metadata is disabled" in x for x in r.reasons()), r.err
    assert lab.imds.count(n1) == before, "metadata was contacted"
    del t
