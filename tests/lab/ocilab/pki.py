"""The lab's keys, certificates, tokens and OCI request signatures (cryptography only).

Shared by the server (which verifies) and the lab (which generates the PKI and API keys).
Signatures: draft-cavage-http-signatures-08 as OCI uses it (RSA-SHA256, PKCS#1 v1.5)."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import json
import re
import secrets
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

# ---------------------------------------------------------------- keys


def new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_pem(key) -> str:
    """PKCS#8 PEM, unencrypted (what `oci setup keys` writes)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def public_pem(key) -> str:
    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_private(pem) -> rsa.RSAPrivateKey:
    return serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem,
                                              None)


def load_public(pem):
    return serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)


def api_key_fingerprint(key) -> str:
    """OCI's API key fingerprint: MD5 of the DER SubjectPublicKeyInfo, lower-case hex pairs
    joined by ':'."""
    pub = key.public_key() if hasattr(key, "public_key") else key
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return ":".join(f"{b:02x}" for b in hashlib.md5(der).digest())


def cert_fingerprint(cert: x509.Certificate) -> str:
    """Upper-case hex pairs of the SHA-1 of the DER certificate, ':'-joined (fed-x509 keyIds)."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA1()))


def sign(key, data: bytes) -> bytes:
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def verify(pub, signature: bytes, data: bytes) -> bool:
    try:
        pub.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:
        return False


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int_b64u(n: int) -> str:
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def jwk(pub) -> dict:
    nums = pub.public_numbers()
    return {"kid": "session", "kty": "RSA", "alg": "RS256", "use": "sig",
            "n": _int_b64u(nums.n), "e": _int_b64u(nums.e)}


def jwk_public(j: dict):
    n = int.from_bytes(b64u_dec(j["n"]), "big")
    e = int.from_bytes(b64u_dec(j["e"]), "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


# ---------------------------------------------------------------- certificates


def _name(cn: str, ous=()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou) for ou in ous]
    return x509.Name(attrs)


def make_cert(subject_key, subject: x509.Name, issuer_key, issuer: x509.Name, ca: bool,
              days: float = 365, sans=None) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
    if sans:
        import ipaddress
        names = []
        for s in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                names.append(x509.DNSName(s))
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_cert(pem_or_b64: str) -> x509.Certificate:
    """A certificate from PEM, or from the bare base64 DER the federation request carries."""
    s = pem_or_b64.strip()
    if s.startswith("-----"):
        return x509.load_pem_x509_certificate(s.encode())
    return x509.load_der_x509_certificate(base64.b64decode(s))


def subject_ous(cert: x509.Certificate) -> dict[str, str]:
    """{"opc-tenant": ocid, "opc-instance": ocid, ...} from the subject's OU values."""
    out = {}
    for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME):
        k, _, v = str(a.value).partition(":")
        out[k] = v
    return out


class Pki:
    """The lab as its own CA: root -> intermediate -> one leaf per instance (instance
    principals), and a TLS server certificate for the HTTPS endpoint."""

    def __init__(self):
        self.root_key, self.int_key = new_key(), new_key()
        self.root_name = _name("Lab OCI Root CA")
        self.int_name = _name("Lab OCI Intermediate CA (PKISVC)")
        self.root = make_cert(self.root_key, self.root_name, self.root_key, self.root_name,
                              True, days=3650)
        self.intermediate = make_cert(self.int_key, self.int_name, self.root_key,
                                      self.root_name, True, days=365)

    def leaf(self, tenancy: str, compartment: str, instance: str, days: float = 1):
        """(key, cert) of an instance: subject CN = a UUID, OUs opc-certtype:instance,
        opc-compartment, opc-instance, opc-tenant (as OCI's instance certificates)."""
        key = new_key()
        subject = _name(str(uuid.uuid4()), [f"opc-certtype:instance", f"opc-compartment:{compartment}",
                                   f"opc-instance:{instance}", f"opc-tenant:{tenancy}"])
        return key, make_cert(key, subject, self.int_key, self.int_name, False, days=days)

    def tls(self, names):
        key = new_key()
        return key, make_cert(key, _name(names[0]), self.root_key, self.root_name, False,
                              days=30, sans=names)


def chain_ok(leaf: x509.Certificate, intermediates: list, root: x509.Certificate) -> str | None:
    """None if leaf <- one of intermediates <- root and all are within their validity; else
    why not."""
    now = dt.datetime.now(dt.timezone.utc)
    for c in [leaf, *intermediates]:
        if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
            return f"certificate {c.subject.rfc4514_string()} is not valid now"
    for inter in intermediates:
        try:
            leaf.verify_directly_issued_by(inter)
            inter.verify_directly_issued_by(root)
            return None
        except Exception:
            continue
    return "certificate chain does not lead to the OCI root"


# ---------------------------------------------------------------- tokens (JWT, RS256)


def make_jwt(key, claims: dict) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": "asw"}
    head = b64u(json.dumps(header, separators=(",", ":")).encode())
    body = b64u(json.dumps(claims, separators=(",", ":")).encode())
    sig = sign(key, f"{head}.{body}".encode())
    return f"{head}.{body}.{b64u(sig)}"


def read_jwt(token: str, pub) -> dict | None:
    """The claims if the RS256 signature verifies with pub, else None."""
    try:
        head, body, sig = token.split(".")
        if not verify(pub, b64u_dec(sig), f"{head}.{body}".encode()):
            return None
        return json.loads(b64u_dec(body))
    except Exception:
        return None


# ---------------------------------------------------------------- HTTP signatures

AUTH_RE = re.compile(r'\s*([A-Za-z]+)\s*=\s*"([^"]*)"\s*(?:,|$)')
GENERIC = ["date", "(request-target)", "host"]
BODY = ["content-length", "content-type", "x-content-sha256"]


def parse_authorization(value: str) -> dict | None:
    """{"keyId", "algorithm", "headers", "signature", "version"?} of `Signature k="v",...`,
    or None when it is not a Signature header."""
    if not value or not value.startswith("Signature "):
        return None
    rest = value[len("Signature "):]
    out, pos = {}, 0
    while pos < len(rest):
        m = AUTH_RE.match(rest, pos)
        if not m:
            return None
        out[m.group(1)] = m.group(2)
        pos = m.end()
    return out


def signing_string(method: str, target: str, names: list[str], header) -> str:
    """The string a signature covers: one `name: value` line per signed header, in order;
    (request-target) is `<method lower-case> <path?query>`; header(name) -> value or None."""
    lines = []
    for n in names:
        if n == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        else:
            v = header(n)
            if v is None:
                raise KeyError(n)
            lines.append(f"{n}: {v.strip()}")
    return "\n".join(lines)


def body_sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def http_date(epoch: float | None = None) -> str:
    return email.utils.formatdate(time.time() if epoch is None else epoch, usegmt=True)


def sign_request(method: str, target: str, headers: dict, body: bytes, key, key_id: str,
                 names: list[str] | None = None) -> dict:
    """The lab's own signer (for lab-side callers and tampering tests): adds date, content
    headers and Authorization to a copy of headers (lower-case names)."""
    h = {k.lower(): v for k, v in headers.items()}
    h.setdefault("date", http_date())
    if names is None:
        names = GENERIC + (BODY if method.upper() in ("POST", "PUT", "PATCH") else [])
    if "x-content-sha256" in names:
        h.setdefault("content-type", "application/json")
        h.setdefault("content-length", str(len(body)))
        h.setdefault("x-content-sha256", body_sha256(body))
    s = signing_string(method, target, names, h.get)
    sig = base64.b64encode(sign(key, s.encode())).decode()
    # The parameter order of Oracle's SDK (so both give the same bytes).
    h["authorization"] = (f'Signature algorithm="rsa-sha256",headers="{" ".join(names)}",'
                          f'keyId="{key_id}",signature="{sig}",version="1"')
    return h


def new_ocid(kind: str, region_key: str = "") -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    uniq = "".join(secrets.choice(alphabet) for _ in range(60))
    return f"ocid1.{kind}.oc1.{region_key}.{uniq}"
