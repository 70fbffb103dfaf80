"""A local OCI for the lab tests and benchmarks: the Core Services private-IP API with OCI's
request-signature checks, the federation endpoint of instance principals, instance metadata v2
per node, a call log, a deny list, faults, and ec2lab's data plane and Pacemaker form.

Nothing leaves the machine: the stand-in listens on 127.0.0.1 only; 169.254.169.254 exists only
on ``lo`` inside node namespaces; nodes, fabric and client have no link to the host (a node's
default route leads to the fabric, which routes nothing outside the VCN); resolv.conf says
``nameserver 127.0.0.1``; real OCI host names are never configured anywhere. Every process is
started here and stopped by its PID. OciLab *is* an ``ec2lab.Ec2Lab`` whose cloud is
``ocilab.server`` instead of moto: namespaces, fabric, relay, data plane, client, IMDS socket
plumbing and the Pacemaker hook are ec2lab's own code.

Pieces (``python3 -m ocilab.server --spec FILE``, one process per lab, stopped by PID; it exits
when the process that started it is gone)::

    agents (host, or node ns through the relays on the same 127.0.0.1 ports)
      -> endpoint  http://127.0.0.1:PORT      } faults -> signature check (401) -> deny list
      -> tls_endpoint https://127.0.0.1:TPORT } (404/401) -> API /20160918/... or /v1/x509
    lab -> control 127.0.0.1:CPORT /_lab/... (never counted, faulted or authenticated)
    node ns: IMDS v2 on 169.254.169.254:80; relays 127.0.0.1:PORT and :TPORT -> host
    fabric ns: a /32 per private IP to the veth of the VNIC holding it (ec2lab's DataPlane)
    client ns: another subnet routed through the fabric

Plain HTTP is for our agent (endpoint override); HTTPS (the lab's CA, lab.ca_bundle) is for
oci-cli/ocivip, which speak what real OCI speaks. Both ports serve the same API and the same
federation endpoint. (Python's requests lets a REQUESTS_CA_BUNDLE in the environment win over
a session's verify=, so the lab's oci-cli environment sets REQUESTS_CA_BUNDLE too.)

World (defaults): region eu-frankfurt-1 (realm oc1, oraclecloud.com, key FRA); one tenancy,
one compartment, a VCN 10.0.0.0/16 and a *regional* subnet 10.0.1.0/24 (virtual router .1;
.0, .1 and .255 reserved); node i = instance in AD-((i-1)%3+1), primary VNIC 10.0.1.(10+i) on
eth0 with MAC 02:00:17:00:<i>:01, optional second VNIC 10.0.1.(30+i) on eth1 (nic index 1);
client 10.0.2.10. Every node has its own API-key user (RSA 2048) and an instance certificate.
OCIDs look real (ocid1.<type>.oc1.<region|empty>.<60 chars>). MACs are upper-case in the API
and IMDS, as OCI shows them (Linux shows them lower-case).

API (everything else is private)::

    from ocilab import OciLab, reference_sign
    with OciLab(nodes=2, name="oci", region="eu-frankfurt-1",
                pacemaker=False, agents=("vip",), binary=None,  # as Ec2Lab (pcmk.Lab)
                second_vnic=False,     # True (every node) or [node numbers]: eth1 = 2nd VNIC
                client=True, vcn_cidr="10.0.0.0/16", subnet_cidr="10.0.1.0/24",
                client_cidr="10.0.2.0/24", dataplane_lag=0.0,
                token_lifetime=1200.0) as lab:        # everything provisioned and wired
        lab.endpoint                 # "http://127.0.0.1:PORT"; same URL inside nodes
        lab.tls_endpoint             # "https://127.0.0.1:TPORT"; same inside nodes
        lab.federation_endpoint      # lab.endpoint + "/v1/x509"
        lab.tls_federation_endpoint  # lab.tls_endpoint + "/v1/x509"
        lab.ca_bundle                # Path of the lab CA's PEM (trust it for tls_endpoint)
        lab.port, lab.tls_port, lab.control_url
        lab.region, lab.region_key ("FRA"), lab.region_short ("fra": what IMDS instance/region
        says), lab.realm ("oc1"), lab.realm_domain, lab.tenancy, lab.compartment, lab.vcn_id,
        lab.subnet_id, lab.subnet_cidr, lab.vcn_cidr, lab.client_cidr, lab.router,
        lab.prefixlen, lab.fabric, lab.dir (scratch: server.log, spec.json, ca.pem, oci,
        oci-<node>/{config, oci_api_key.pem, oci_api_key_public.pem}), lab.oci_cli,
        lab.up_seconds, lab.down_seconds, lab.pki (the lab CA: .root, .intermediate)
        n = lab.nodes[0]             # OciNode; lab.node(2) / lab.node("node2")
        n.name, n.ns, n.ns_path, n.instance_id, n.vnic_id, n.mac, n.ip, n.ifname,
        n.vnics                      # [Vnic(.id, .mac, .ip, .nic_index (= .device), .ifname)]
        n.user (= n.key), n.fingerprint, n.config_file, n.key_file   # its API key
        n.principals                 # (user OCID, instance OCID): who the call log names
        n.machine, n.exec(...), n.popen(...), n.iproute(...), n.serve_name(port),
        n.poll(ip, port), lab.client (Host), lab.who_answers(ip, port)   # as in ec2lab

        # state, host-side truth (not counted, not authenticated)
        lab.state() -> {"private_ips": [PrivateIp JSON], "vnics": [Vnic JSON]}
        lab.owners(ip) -> [VNIC OCIDs holding ip]
        lab.assign(ip, node, vnic=None, wait=True)   # move (or create) ip onto the VNIC
        lab.unassign(ip, wait=True)                  # delete the private IP
        lab.sync(); lab.set_dataplane_lag(seconds)

        # call log (both endpoints): [{t (monotonic), operation, method, path, principal,
        #   auth ("api_key"|"instance_principal"|"fed-x509"|None), key_id (ST$ shortened),
        #   status (None = reset), code (OCI error code), fault, error (why a 401), tls,
        #   duration}]
        lab.calls(since=None); lab.count(operation=None, since=None, principal=None,
                                         status=None)       # principal: OciNode or OCID

        # faults (both endpoints; through the relays too; a reset stays a reset)
        lab.faults.set(kind, count=None, operations=None, delay=None, principals=None)
        lab.faults.add(...); lab.faults.clear()
            # kind: "throttle" 429 TooManyRequests | "http500" 500 InternalServerError |
            # "reset" TCP RST, no answer | "slow" sleep `delay` s, then answer

        # deny list (after authentication)
        lab.iam.deny(*operations, principal=None, status=404)
            # operations: "GetVnic", "ListPrivateIps", "GetPrivateIp", "UpdatePrivateIp",
            # "CreatePrivateIp", "DeletePrivateIp", "ListVnicAttachments", "GetSubnet",
            # "X509Federation", "*". status 404: NotAuthorizedOrNotFound "Authorization failed
            # or requested resource not found." (OCI's answer to a missing policy); 401:
            # NotAuthenticated (a revoked key)
        lab.iam.allow_all()

        # clocks and tokens
        lab.set_skew(seconds)         # the stand-in's clock runs that much ahead (negative:
                                      # behind) of the machine's: Date checks and token
                                      # iat/exp use it; |skew| > 300 s -> every request 401
        lab.federation.set_lifetime(seconds)  # tokens issued from now on (default 1200)
        lab.federation.expire_tokens()        # every token issued so far -> 401 when used
        lab.federation.tokens() -> [{principal, node, iat, exp, revoked}]

        # IMDS v2 (169.254.169.254:80 in every node)
        lab.imds.requests(node, since=None) -> [{t, method, path, status}]
        lab.imds.count(node, path=None, method=None, since=None)

        # callers
        lab.sdk_config(node) -> config dict for Oracle's SDK (node's API key), host side
        lab.sign(node, method, target, headers=None, body=b"", names=None, key_id=None,
                 key=None) -> headers     # the lab's signer (tampering tests); names: the
                                          # signed header list (default OCI's)
        lab.request(method, target, headers, body=b"", url=None) -> (status, headers, JSON)
                                          # exactly these headers, no client-side magic
        lab.oci_env(node) -> env for oci-cli / the SDK inside node (its API-key config,
                             OCI_CLI_ENDPOINT/FEDERATION_ENDPOINT/CERT_BUNDLE, CA bundle)
        lab.ocivip_env(node, ip, **params) -> env to run resource-agents'
            /usr/lib/ocf/resource.d/heartbeat/ocivip <action> with node.exec: OCF_RESKEY_ocicli
            = lab.dir/oci (oci-cli from /opt/oci-cli or $CLOUDHA_OCI_CLI with --endpoint
            tls_endpoint, OCI_CLI_FEDERATION_ENDPOINT, the CA bundle); ocivip exports
            OCI_CLI_AUTH=instance_principal itself; params as OCF_RESKEY_* (api_delay=0)
        lab.cluster, lab.close()          # as Ec2Lab
    reference_sign(method, url, headers, body, key_pem, key_id, generic_headers=None) -> dict
        # the headers Oracle's SDK (PyPI oci, oci.signer) sends for that request; a given
        # `date` header is kept, so the same request, key and date can be compared byte for
        # byte with another signer. generic_headers=["date", "(request-target)"] for the
        # federation request's form.
    sweep_leftovers()

API paths (under /20160918; JSON camelCase; every answer has opc-request-id, prefixed with the
caller's opc-request-id when sent; single resources have an ETag; errors are {"code",
"message"}):
    GET    /vnics/{id}                              GetVnic
    GET    /privateIps?vnicId= | ?subnetId=[&ipAddress=]   ListPrivateIps (no filter, or
           ipAddress without subnetId -> 400 InvalidParameter; unknown vnic/subnet -> 404)
    GET    /privateIps/{id}                         GetPrivateIp
    PUT    /privateIps/{id} {"vnicId"[, "displayName"]}  UpdatePrivateIp: moves a secondary to
           another VNIC of the subnet, same OCID, new ETag; already there: no-op 200; primary
           -> 400 InvalidParameter; if-match mismatch -> 412 NoEtagMatch; unknown VNIC -> 404
    POST   /privateIps {"vnicId"[, "ipAddress", "displayName"]}  CreatePrivateIp: in use ->
           409 Conflict; outside the subnet, reserved or not an address -> 400
           InvalidParameter; no ipAddress -> the lowest free one
    DELETE /privateIps/{id}                         DeletePrivateIp: 204; primary -> 400
    GET    /vnicAttachments?compartmentId=[&instanceId=&vnicId=]   ListVnicAttachments
    GET    /subnets/{id}                            GetSubnet
    POST   /v1/x509 (no /20160918)                  X509Federation -> {"token": JWT}
    anything else -> 404 NotFound

Signature check (draft-cavage-http-signatures-08 as OCI uses it), else 401 NotAuthenticated
"The required information to complete authentication was not provided or was incorrect." (the
call log's `error` says which check failed):
    Authorization: Signature keyId="..",algorithm="rsa-sha256",headers="..",signature=".."
    [,version="1"] (parameters in any order; version if present must be 1)
    signed headers must include (request-target), host, and date (or x-date); POST/PUT/PATCH
    also content-length, content-type, x-content-sha256 (the federation endpoint does not
    require host: Oracle's SDK does not sign it there); every signed header must be present;
    signing string = "name: value" lines joined by "\\n", (request-target) = "<method lower>
    <path?query as sent>"; x-content-sha256 = base64 SHA-256 of the body; content-length = the
    body's length; Date within 300 s of the stand-in's clock, else 401 with OCI's text "Date
    '<date> UTC' is not within allowed clock skew. Current '...', valid datetime range: [...]";
    RSA PKCS#1 v1.5 SHA-256 signature by the keyId's key:
      <tenancy>/<user>/<fingerprint>   API key: the user's registered key with that fingerprint
                                       (MD5 of the DER public key, lower-case hex with ':')
      ST$<token>                       a JWT (RS256) the federation endpoint issued (forged,
                                       revoked or past exp -> 401); the key is its jwk claim
      <tenancy>/fed-x509/<SHA-1 fp>    only on /v1/x509: fp = upper-case ':' SHA-1 of the body's
                                       certificate, whose chain (via intermediateCertificates)
                                       leads to the lab root, within validity, OU opc-tenant =
                                       keyId tenancy; the key is the certificate's
Federation: body {"certificate", "publicKey", "intermediateCertificates": [..]} (base64 DER
without PEM lines, as Oracle's SDK sends); answer {"token"}: claims sub = opc-instance =
instance OCID, opc-tenant, opc-compartment, ptype "instance", iat, exp, jti, jwk (the session
key). Tokens bind calls to the instance principal (call log principal = instance OCID).

IMDS v2 (under /opc/v2/; header "Authorization: Bearer Oracle" required, else 401;
Forwarded/X-Forwarded-For/X-Forwarded-Host -> 403; /opc/v1 -> 404, the legacy endpoint is
disabled): instance/ (JSON: id, displayName, hostname, compartmentId, tenantId,
availabilityDomain, ociAdName, faultDomain, region (the short name "fra" where OCI has one),
canonicalRegionName, regionInfo {realmKey, realmDomainComponent, regionIdentifier, regionKey},
shape, image, state, timeCreated, metadata, ...), instance/<key>[/<key>] (scalars as text),
vnics/ (array in nic index order: vnicId, privateIp, macAddr, virtualRouterIp,
subnetCidrBlock, nicIndex, vlanTag), identity/cert.pem (leaf: CN a UUID, OU opc-certtype:
instance, opc-compartment:<ocid>, opc-instance:<ocid>, opc-tenant:<ocid>), identity/key.pem,
identity/intermediate.pem. Unknown paths: 404.

The Pacemaker form: ``OciLab(pacemaker=True)`` = Ec2Lab's: pcmk.Lab(network=lab) wires each
machine into the fabric with its VNICs' MACs/IPs, a default route via the virtual router,
169.254.169.254 on lo, its own sysfs, resolv.conf pinned to loopback, IMDS and relays; a
crashed machine's IMDS and relays are closed so its namespace vanishes.
"""

from .lab import OciLab, OciNode, Vnic, sweep_leftovers  # noqa: F401
from .reference import reference_sign  # noqa: F401
