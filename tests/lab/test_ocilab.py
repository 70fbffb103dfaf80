"""Tests of the OCI lab itself (tests/lab/ocilab): request signatures checked as OCI checks them
(and Oracle's own SDK signer accepted, tampering refused), the federation endpoint and instance
principals, IMDS v2, private-IP semantics, the deny list, faults, relays (HTTP and HTTPS), the
data plane, resource-agents' ocivip through oci-cli, a Pacemaker cluster on the fabric, cleanup.

Needs root, iproute2, curl, the `oci` SDK and oci-cli in /opt/oci-cli (scripts/install-deps.sh).
"""

import base64
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

oci = pytest.importorskip("oci")

import cloudvip  # noqa: E402
import netns  # noqa: E402
from ocilab import OciLab, reference_sign  # noqa: E402
from ocilab import pki  # noqa: E402

OCIVIP = "/usr/lib/ocf/resource.d/heartbeat/ocivip"
VIP = "10.0.1.100"
PORT = 8080
NO_RETRY = oci.retry.NoneRetryStrategy()


LAB = (OciLab, dict(nodes=2, name="ocilab-test", second_vnic=[2]))  # the `lab` fixture


def after_each(lab):
    lab.faults.clear()
    lab.iam.allow_all()
    lab.set_skew(0)
    lab.federation.set_lifetime(1200)
    lab.unassign(VIP, wait=False)


def vn(lab, node, url=None):
    """Oracle's SDK as the node's API-key user, from the host."""
    return oci.core.VirtualNetworkClient(lab.sdk_config(node), retry_strategy=NO_RETRY,
                                         service_endpoint=url or lab.endpoint)


def service_error(fn, *a, **kw) -> oci.exceptions.ServiceError:
    with pytest.raises(oci.exceptions.ServiceError) as e:
        fn(*a, **kw)
    return e.value


def imds(node, path, header=True, extra=()):
    argv = ["curl", "-s", "-w", "\n%{http_code}"]
    if header:
        argv += ["-H", "Authorization: Bearer Oracle"]
    for h in extra:
        argv += ["-H", h]
    out = node.exec(argv + [f"http://169.254.169.254{path}"], check=True).stdout
    body, _, code = out.rpartition("\n")
    return int(code), body


def last_call(lab, since):
    return lab.calls(since)[-1]


# ---------------------------------------------------------------- signatures


def test_sdk_api_key_calls_and_shapes(lab):
    n1, n2 = lab.nodes
    t = time.monotonic()
    v = vn(lab, n1).get_vnic(n1.vnic_id)
    assert v.status == 200 and v.headers["opc-request-id"]
    assert (v.data.mac_address, v.data.private_ip, v.data.subnet_id, v.data.is_primary) == \
        (n1.mac, n1.ip, lab.subnet_id, True)
    assert n1.mac == n1.mac.upper()  # OCI shows MACs upper-case; Linux lower-case
    ips = vn(lab, n1).list_private_ips(vnic_id=n2.vnic_id).data
    assert [(p.ip_address, p.is_primary) for p in ips] == [(n2.ip, True)]
    c = lab.calls(t)
    assert [(x["operation"], x["status"], x["auth"], x["principal"]) for x in c] == [
        ("GetVnic", 200, "api_key", n1.user), ("ListPrivateIps", 200, "api_key", n1.user)]
    assert lab.count("GetVnic", since=t, principal=n1) == 1


def test_our_signer_equals_oracles(lab):
    """pki.sign_request and oci's signer give the same headers (RSA PKCS#1 v1.5 is
    deterministic: same request, key and date -> same signature)."""
    n1 = lab.nodes[0]
    key_pem = Path(n1.key_file).read_text()
    kid = f"{lab.tenancy}/{n1.user}/{n1.fingerprint}"
    date = pki.http_date()
    body = json.dumps({"vnicId": n1.vnic_id}).encode()
    target = "/20160918/privateIps/ocid1.privateip.oc1.x?a=b"
    ref = reference_sign("PUT", lab.endpoint + target, {"date": date}, body, key_pem, kid)
    ours = lab.sign(n1, "PUT", target, {"date": date}, body)
    ref = {k.lower(): v for k, v in ref.items()}
    for h in ("authorization", "x-content-sha256", "content-length", "content-type", "date"):
        assert ref[h] == ours[h], h
    assert 'headers="date (request-target) host content-length content-type x-content-sha256"' \
        in ref["authorization"]


def test_reference_signed_requests_accepted_tampered_refused(lab):
    n1, n2 = lab.nodes
    key_pem = Path(n1.key_file).read_text()
    kid = f"{lab.tenancy}/{n1.user}/{n1.fingerprint}"
    url = lab.endpoint
    get = f"/20160918/vnics/{n1.vnic_id}"

    def send(method, target, headers, body=b""):
        t = time.monotonic()
        status, _, data = lab.request(method, target, headers, body)
        return status, data, lab.calls(t)[-1]

    h = reference_sign("GET", url + get, {}, None, key_pem, kid)
    assert send("GET", get, h)[0] == 200
    body = json.dumps({"vnicId": n1.vnic_id, "ipAddress": VIP}).encode()
    h = reference_sign("POST", url + "/20160918/privateIps", {}, body, key_pem, kid)
    status, data, _ = send("POST", "/20160918/privateIps", h, body)
    assert status == 200 and data["ipAddress"] == VIP and data["vnicId"] == n1.vnic_id
    assert lab.owners(VIP) == [n1.vnic_id]

    def refused(method, target, headers, body=b"", reason=None):
        status, data, call = send(method, target, headers, body)
        assert (status, data["code"]) == (401, "NotAuthenticated"), (status, data)
        if reason:
            assert reason in call["error"], call["error"]
        return data

    # The body changed after signing (a move to node2 instead of node1).
    put = f"/20160918/privateIps/{lab.state()['private_ips'][-1]['id']}"
    body = json.dumps({"vnicId": n1.vnic_id}).encode()
    h = reference_sign("PUT", url + put, {}, body, key_pem, kid)
    other = json.dumps({"vnicId": n2.vnic_id}).encode().ljust(len(body))
    refused("PUT", put, h, other, "x-content-sha256")
    assert lab.owners(VIP) == [n1.vnic_id]
    # A signed header changed (the path: another resource).
    h = reference_sign("GET", url + get, {}, None, key_pem, kid)
    refused("GET", f"/20160918/vnics/{n2.vnic_id}", h, reason="does not verify")
    # A required header missing from the signed list (a PUT signed like a GET).
    h = lab.sign(n1, "PUT", put, {}, body, names=["date", "(request-target)", "host"])
    h.update({"content-type": "application/json", "content-length": str(len(body))})
    refused("PUT", put, h, body, "lack")
    # Host not signed on the API.
    h = lab.sign(n1, "GET", get, names=["date", "(request-target)"])
    refused("GET", get, h, reason="lack ['host']")
    # Wrong key: node2's key under node1's keyId; unknown fingerprint; unknown keyId form.
    other_key = Path(lab.nodes[1].key_file).read_text()
    refused("GET", get, reference_sign("GET", url + get, {}, None, other_key, kid),
            reason="does not verify")
    bad_fp = f"{lab.tenancy}/{n1.user}/{lab.nodes[1].fingerprint}"
    refused("GET", get, reference_sign("GET", url + get, {}, None, key_pem, bad_fp),
            reason="no API key")
    refused("GET", get, reference_sign("GET", url + get, {}, None, key_pem, "nonsense"),
            reason="neither")
    # No signature at all.
    refused("GET", get, {"host": "x", "date": pki.http_date()}, reason="no Authorization")
    # Date skew: 6 minutes old -> OCI's clock-skew message; 4 minutes -> fine.
    old = pki.http_date(time.time() - 360)
    data = refused("GET", get, reference_sign("GET", url + get, {"date": old}, None, key_pem,
                                              kid), reason="date skew")
    assert "is not within allowed clock skew" in data["message"]
    recent = pki.http_date(time.time() - 240)
    assert send("GET", get, reference_sign("GET", url + get, {"date": recent}, None,
                                           key_pem, kid))[0] == 200


def test_stand_in_clock_skew(lab):
    n1 = lab.nodes[0]
    lab.set_skew(400)
    e = service_error(vn(lab, n1).get_vnic, n1.vnic_id)
    assert (e.status, e.code) == (401, "NotAuthenticated")
    assert "not within allowed clock skew" in e.message
    lab.set_skew(-400)
    assert service_error(vn(lab, n1).get_vnic, n1.vnic_id).status == 401
    lab.set_skew(200)
    assert vn(lab, n1).get_vnic(n1.vnic_id).status == 200


# ---------------------------------------------------------------- federation


def federate(lab, node, session_key, fp=None, cert_pem=None, tenancy=None):
    """POST /v1/x509 as the SDK does, with the leaf certificate/key the node's IMDS serves."""
    cert_pem = cert_pem or imds(node, "/opc/v2/identity/cert.pem")[1]
    key_pem = imds(node, "/opc/v2/identity/key.pem")[1]
    inter = imds(node, "/opc/v2/identity/intermediate.pem")[1]
    strip = lambda s: "".join(l for l in s.splitlines() if not l.startswith("-----"))  # noqa
    body = json.dumps({"certificate": strip(cert_pem),
                       "publicKey": strip(pki.public_pem(session_key)),
                       "intermediateCertificates": [strip(inter)]}).encode()
    cert = pki.load_cert(cert_pem)
    kid = f"{tenancy or lab.tenancy}/fed-x509/{fp or pki.cert_fingerprint(cert)}"
    h = reference_sign("POST", lab.federation_endpoint, {}, body, key_pem, kid,
                       generic_headers=["date", "(request-target)"])
    return lab.request("POST", "/v1/x509", h, body)


def st_get(lab, token, session_key, target):
    h = reference_sign("GET", lab.endpoint + target, {}, None, pki.private_pem(session_key),
                       f"ST${token}")
    return lab.request("GET", target, h)


def test_federation_tokens(lab):
    n1, n2 = lab.nodes
    session = pki.new_key()
    status, _, data = federate(lab, n1, session)
    assert status == 200, data
    token = data["token"]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == n1.instance_id and claims["opc-tenant"] == lab.tenancy
    assert claims["exp"] - claims["iat"] == 1200
    target = f"/20160918/vnics/{n1.vnic_id}"
    t = time.monotonic()
    assert st_get(lab, token, session, target)[0] == 200
    c = last_call(lab, t)
    assert (c["auth"], c["principal"]) == ("instance_principal", n1.instance_id)
    # Signed with another key than the token's session key.
    assert st_get(lab, token, pki.new_key(), target)[0] == 401
    # A forged token (right shape, not signed by the federation endpoint).
    head, body, _ = token.split(".")
    assert st_get(lab, f"{head}.{body}.{pki.b64u(b'x' * 256)}", session, target)[0] == 401
    # Revoked (expire_tokens) -> 401; a new token works again.
    lab.federation.expire_tokens()
    t = time.monotonic()
    assert st_get(lab, token, session, target)[0] == 401
    assert "revoked" in last_call(lab, t)["error"]
    # Lifetime: expired by its exp claim -> 401.
    lab.federation.set_lifetime(2)
    status, _, data = federate(lab, n1, session)
    assert status == 200
    assert st_get(lab, data["token"], session, target)[0] == 200
    time.sleep(3.1)
    t = time.monotonic()
    assert st_get(lab, data["token"], session, target)[0] == 401
    assert last_call(lab, t)["error"] == "security token expired"
    assert [x["node"] for x in lab.federation.tokens()][-2:] == ["node1", "node1"]
    # Refusals of the federation endpoint itself.
    t = time.monotonic()
    fp2 = pki.cert_fingerprint(pki.load_cert(imds(n2, "/opc/v2/identity/cert.pem")[1]))
    assert federate(lab, n1, session, fp=fp2)[0] == 401  # fingerprint of another cert
    assert federate(lab, n1, session, tenancy="ocid1.tenancy.oc1..other")[0] == 401
    rogue_key, rogue = pki.Pki().leaf(lab.tenancy, lab.compartment, n1.instance_id)
    assert federate(lab, n1, session, cert_pem=pki.cert_pem(rogue))[0] == 401  # other CA
    errors = [c["error"] for c in lab.calls(t)]
    assert "SHA-1 fingerprint" in errors[0] and "unknown tenancy" in errors[1], errors
    assert "chain does not lead to the OCI root" in errors[2], errors


def test_instance_principal_with_oracles_sdk_in_a_node(lab):
    n1 = lab.nodes[0]
    script = (
        "import json, sys, oci\n"
        "s = oci.auth.signers.InstancePrincipalsSecurityTokenSigner("
        "federation_endpoint=sys.argv[1])\n"
        "c = oci.core.VirtualNetworkClient({'region': s.region}, signer=s, "
        "service_endpoint=sys.argv[2], retry_strategy=oci.retry.NoneRetryStrategy())\n"
        "v = c.get_vnic(sys.argv[3]).data\n"
        "print(json.dumps({'region': s.region, 'tenancy': s.tenancy_id, 'mac': v.mac_address}))\n")
    t = time.monotonic()
    r = n1.exec([sys.executable, "-c", script, lab.federation_endpoint, lab.endpoint,
                 n1.vnic_id], check=True, timeout=60)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"region": lab.region, "tenancy": lab.tenancy, "mac": n1.mac}
    ops = [(c["operation"], c["auth"], c["principal"]) for c in lab.calls(t)]
    assert ops == [("X509Federation", "fed-x509", n1.instance_id),
                   ("GetVnic", "instance_principal", n1.instance_id)]
    # The SDK read region and certificates from IMDS (v2, with the header).
    paths = {x["path"] for x in lab.imds.requests(n1, since=t)}
    assert {"/opc/v2/instance/region", "/opc/v2/identity/cert.pem",
            "/opc/v2/identity/key.pem", "/opc/v2/identity/intermediate.pem"} <= paths


# ---------------------------------------------------------------- IMDS


def test_imds_rules_and_paths(lab):
    n1, n2 = lab.nodes
    assert imds(n1, "/opc/v2/instance/", header=False)[0] == 401
    assert imds(n1, "/opc/v1/instance/")[0] == 404  # legacy endpoint disabled
    assert imds(n1, "/opc/v2/instance/", extra=["X-Forwarded-For: 1.2.3.4"])[0] == 403
    status, body = imds(n1, "/opc/v2/instance/")
    inst = json.loads(body)
    assert status == 200 and inst["id"] == n1.instance_id
    assert inst["canonicalRegionName"] == lab.region and inst["region"] == "fra"
    assert inst["compartmentId"] == lab.compartment
    assert inst["regionInfo"] == {"realmDomainComponent": "oraclecloud.com", "realmKey": "oc1",
                                  "regionIdentifier": lab.region, "regionKey": "FRA"}
    assert imds(n1, "/opc/v2/instance/id") == (200, n1.instance_id)
    assert imds(n1, "/opc/v2/instance/region") == (200, "fra")
    assert imds(n1, "/opc/v2/instance/regionInfo/regionIdentifier") == (200, lab.region)
    assert imds(n1, "/opc/v2/instance/nope")[0] == 404
    vnics = json.loads(imds(n2, "/opc/v2/vnics/")[1])
    assert [(v["vnicId"], v["macAddr"], v["privateIp"], v["nicIndex"]) for v in vnics] == \
        [(v.id, v.mac, v.ip, v.nic_index) for v in n2.vnics]
    assert len(vnics) == 2 and vnics[0]["virtualRouterIp"] == lab.router
    assert vnics[0]["subnetCidrBlock"] == lab.subnet_cidr
    cert = pki.load_cert(imds(n1, "/opc/v2/identity/cert.pem")[1])
    assert pki.subject_ous(cert)["opc-tenant"] == lab.tenancy
    assert pki.subject_ous(cert)["opc-instance"] == n1.instance_id
    key = pki.load_private(imds(n1, "/opc/v2/identity/key.pem")[1])
    assert pki.public_pem(key) == pki.public_pem(cert.public_key())
    assert lab.imds.count(n1, path="/opc/v2/instance/id") >= 1
    # The node's own interfaces carry the VNICs' MACs.
    assert n2.exec(["cat", "/sys/class/net/eth1/address"]).stdout.strip() == \
        n2.vnics[1].mac.lower()


# ---------------------------------------------------------------- private IPs


def test_private_ip_semantics(lab):
    n1, n2 = lab.nodes
    c = vn(lab, n1)
    m = oci.core.models
    # Create when absent; in use -> 409; outside the subnet / reserved -> 400.
    p = c.create_private_ip(m.CreatePrivateIpDetails(vnic_id=n2.vnic_id, ip_address=VIP)).data
    assert (p.ip_address, p.vnic_id, p.is_primary) == (VIP, n2.vnic_id, False)
    e = service_error(c.create_private_ip,
                      m.CreatePrivateIpDetails(vnic_id=n1.vnic_id, ip_address=VIP))
    assert (e.status, e.code) == (409, "Conflict")
    for ip in ("10.0.9.9", "10.0.1.1", "10.0.1.0", "10.0.1.255", "nonsense"):
        e = service_error(c.create_private_ip,
                          m.CreatePrivateIpDetails(vnic_id=n1.vnic_id, ip_address=ip))
        assert (e.status, e.code) == (400, "InvalidParameter"), ip
    e = service_error(c.create_private_ip, m.CreatePrivateIpDetails(vnic_id="ocid1.vnic.oc1..x",
                                                                    ip_address="10.0.1.101"))
    assert (e.status, e.code) == (404, "NotAuthorizedOrNotFound")
    # Find by address + subnet, as oci-cli and our agent do.
    found = c.list_private_ips(ip_address=VIP, subnet_id=lab.subnet_id).data
    assert [(x.id, x.vnic_id) for x in found] == [(p.id, n2.vnic_id)]
    assert c.list_private_ips(ip_address="10.0.1.200", subnet_id=lab.subnet_id).data == []
    for kw in ({}, {"ip_address": VIP}):
        assert service_error(c.list_private_ips, **kw).status == 400
    # Move from the other VNIC (same OCID, new ETag); to the second VNIC of node2; back.
    etag = c.get_private_ip(p.id).headers["etag"]
    moved = c.update_private_ip(p.id, m.UpdatePrivateIpDetails(vnic_id=n1.vnic_id))
    assert (moved.data.id, moved.data.vnic_id) == (p.id, n1.vnic_id)
    assert moved.headers["etag"] != etag and lab.owners(VIP) == [n1.vnic_id]
    e = service_error(c.update_private_ip, p.id, m.UpdatePrivateIpDetails(vnic_id=n2.vnic_id),
                      if_match=etag)
    assert (e.status, e.code) == (412, "NoEtagMatch")
    c.update_private_ip(p.id, m.UpdatePrivateIpDetails(vnic_id=n2.vnics[1].id))
    assert lab.owners(VIP) == [n2.vnics[1].id]
    # Already there: a no-op success.
    assert c.update_private_ip(p.id, m.UpdatePrivateIpDetails(
        vnic_id=n2.vnics[1].id)).data.vnic_id == n2.vnics[1].id
    # Primary IPs never move and are never deleted.
    primary = c.list_private_ips(ip_address=n1.ip, subnet_id=lab.subnet_id).data[0]
    assert primary.is_primary
    e = service_error(c.update_private_ip, primary.id,
                      m.UpdatePrivateIpDetails(vnic_id=n2.vnic_id))
    assert (e.status, e.code) == (400, "InvalidParameter")
    assert service_error(c.delete_private_ip, primary.id).status == 400
    # Delete a secondary: gone.
    assert c.delete_private_ip(p.id).status == 204
    assert service_error(c.get_private_ip, p.id).status == 404
    assert lab.owners(VIP) == []
    # Create without an address: the lowest free one.
    q = c.create_private_ip(m.CreatePrivateIpDetails(vnic_id=n1.vnic_id)).data
    assert q.ip_address == "10.0.1.2"
    c.delete_private_ip(q.id)
    # VNIC attachments of an instance (ComputeClient).
    comp = oci.core.ComputeClient(lab.sdk_config(n1), service_endpoint=lab.endpoint,
                                  retry_strategy=NO_RETRY)
    atts = comp.list_vnic_attachments(lab.compartment, instance_id=n2.instance_id).data
    assert sorted((a.vnic_id, a.nic_index) for a in atts) == \
        sorted((v.id, v.nic_index) for v in n2.vnics)


# ---------------------------------------------------------------- deny list, faults


def test_deny_forms(lab):
    n1, n2 = lab.nodes
    lab.assign(VIP, n2)
    pid = [p["id"] for p in lab.state()["private_ips"] if p["ipAddress"] == VIP][0]
    m = oci.core.models
    lab.iam.deny("UpdatePrivateIp", principal=n1)
    e = service_error(vn(lab, n1).update_private_ip, pid,
                      m.UpdatePrivateIpDetails(vnic_id=n1.vnic_id))
    assert (e.status, e.code) == (404, "NotAuthorizedOrNotFound")
    assert e.message == "Authorization failed or requested resource not found."
    assert vn(lab, n1).get_vnic(n1.vnic_id).status == 200  # only that operation
    assert vn(lab, n2).update_private_ip(pid, m.UpdatePrivateIpDetails(
        vnic_id=n2.vnics[1].id)).status == 200  # only that principal
    lab.iam.deny("*", principal=n1, status=401)
    e = service_error(vn(lab, n1).get_vnic, n1.vnic_id)
    assert (e.status, e.code) == (401, "NotAuthenticated")
    lab.iam.allow_all()
    lab.iam.deny("X509Federation")
    status, _, data = federate(lab, n1, pki.new_key())
    assert (status, data["code"]) == (404, "NotAuthorizedOrNotFound")


def test_faults(lab):
    n1 = lab.nodes[0]
    c = vn(lab, n1)
    lab.faults.set("throttle", count=1, operations="GetVnic")
    e = service_error(c.get_vnic, n1.vnic_id)
    assert (e.status, e.code) == (429, "TooManyRequests")
    assert c.get_vnic(n1.vnic_id).status == 200
    lab.faults.set("http500", count=1, principals=n1)
    assert service_error(c.get_vnic, n1.vnic_id).status == 500
    assert c.get_vnic(n1.vnic_id).status == 200
    lab.faults.set("reset", count=1)
    t = time.monotonic()
    with pytest.raises(oci.exceptions.RequestException):
        c.get_vnic(n1.vnic_id)
    assert [(x["fault"], x["status"]) for x in lab.calls(t)] == [("reset", None)]
    lab.faults.set("slow", count=1, delay=0.4)
    t = time.monotonic()
    assert c.get_vnic(n1.vnic_id).status == 200
    assert time.monotonic() - t >= 0.4
    lab.faults.set("throttle", operations="ListPrivateIps", principals="ocid1.user.oc1..x")
    assert c.get_vnic(n1.vnic_id).status == 200


# ---------------------------------------------------------------- relays, TLS, data plane


def test_relays_and_tls(lab, monkeypatch):
    n1 = lab.nodes[0]
    for url in (lab.endpoint, lab.tls_endpoint):
        r = n1.exec(["curl", "-s", "-i", "--cacert", str(lab.ca_bundle),
                     f"{url}/20160918/vnics/{n1.vnic_id}"], check=True)
        assert r.stdout.startswith("HTTP/1.1 401"), r.stdout
        assert "opc-request-id:" in r.stdout.lower()
        assert '"code": "NotAuthenticated"' in r.stdout
    # The HTTPS endpoint refuses clients that do not trust the lab's CA.
    r = n1.exec(["curl", "-s", f"{lab.tls_endpoint}/20160918/vnics/x"])
    assert r.returncode == 60  # peer certificate cannot be authenticated
    # Host side, Oracle's SDK over HTTPS with the lab's CA.
    # (requests lets REQUESTS_CA_BUNDLE, if set, win over a session's verify=)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.ca_bundle))
    c = vn(lab, n1, url=lab.tls_endpoint)
    c.base_client.session.verify = str(lab.ca_bundle)
    t = time.monotonic()
    assert c.get_vnic(n1.vnic_id).status == 200
    assert last_call(lab, t)["tls"] is True


def test_dataplane_follows_moves(lab):
    n1, n2 = lab.nodes
    for n in lab.nodes:
        n.serve_name(PORT)
        n.iproute("addr", "add", f"{VIP}/24", "dev", "eth0")
    try:
        lab.assign(VIP, n1)
        assert lab.who_answers(VIP, PORT) == "node1"
        # A move through the API (as an agent does) is what the client sees.
        pid = [p["id"] for p in lab.state()["private_ips"] if p["ipAddress"] == VIP][0]
        vn(lab, n2).update_private_ip(pid, oci.core.models.UpdatePrivateIpDetails(
            vnic_id=n2.vnic_id))
        lab.sync()
        assert lab.who_answers(VIP, PORT) == "node2"
        lab.unassign(VIP)
        assert lab.who_answers(VIP, PORT) is None
    finally:
        for n in lab.nodes:
            n.iproute("addr", "del", f"{VIP}/24", "dev", "eth0")


# ---------------------------------------------------------------- ocivip


@pytest.mark.skipif(not os.access(OCIVIP, os.X_OK), reason="resource-agents' ocivip missing")
def test_ocivip_start_monitor_stop(lab):
    n1, n2 = lab.nodes
    lab.assign(VIP, n2)
    env = lab.ocivip_env(n1, VIP, api_delay=0)

    def run(action):
        t = time.monotonic()
        r = n1.exec([OCIVIP, action], env=env, timeout=120)
        ops = [(c["operation"], c["status"]) for c in lab.calls(t)]
        print(f"ocivip {action}: rc {r.returncode} {time.monotonic() - t:.2f}s {ops}")
        return r.returncode, ops

    try:
        assert run("monitor") == (7, [("X509Federation", 200), ("ListPrivateIps", 200)])
        rc, ops = run("start")
        assert rc == 0
        # monitor, then oci-cli's assign-private-ip --unassign-if-already-assigned: every
        # oci-cli process federates again.
        assert ops == [("X509Federation", 200), ("ListPrivateIps", 200),
                       ("X509Federation", 200), ("GetVnic", 200), ("ListPrivateIps", 200),
                       ("UpdatePrivateIp", 200), ("GetPrivateIp", 200)]
        assert lab.owners(VIP) == [n1.vnic_id]
        assert VIP in n1.exec(["ip", "-4", "addr", "show", "eth0"]).stdout
        assert run("monitor")[0] == 0
        rc, ops = run("stop")
        assert rc == 0 and ("DeletePrivateIp", 204) in ops
        assert lab.owners(VIP) == []
        assert run("monitor")[0] == 7
    finally:
        n1.exec(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])


# ---------------------------------------------------------------- Pacemaker, cleanup


def test_pacemaker_cluster_on_the_fabric():
    binary = os.environ.get("CLOUDHA_BIN")
    if not binary or not os.access(binary, os.X_OK):
        binary = shutil.which("true")  # the ring is what is tested here, not an agent
    with OciLab(nodes=2, pacemaker=True, agents=(), binary=binary, name="ocilab-pcmk") as lab:
        print(f"\nOCI lab + cluster up in {lab.up_seconds:.2f}s "
              f"(cluster {lab.cluster.up_seconds:.2f}s)")
        cloudvip.check_ring(lab)
        n1 = lab.nodes[0]
        assert n1.machine.run(["cat", "/sys/class/net/eth0/address"]).stdout.strip() == \
            n1.mac.lower()
        assert imds(n1, "/opc/v2/instance/id") == (200, n1.instance_id)
        assert "default via" in n1.machine.run(["ip", "-4", "route"]).stdout
        cloudvip.check_follow_then_crash(lab, VIP, PORT)
    print(f"down in {lab.down_seconds:.2f}s")


def test_cleanup_leaves_nothing():
    with OciLab(nodes=1, name="ocilab-clean", client=False) as lab:
        namespaces = list(lab.namespaces)
        server = lab.server.pid
        scratch = lab.dir
        assert scratch.is_dir() and str(scratch).startswith("/tmp/cloudha-ocilab/")
    assert not set(netns.list_namespaces()) & set(namespaces)
    assert not Path(f"/proc/{server}").exists()
    assert not scratch.exists()
