"""Oracle's own signer (PyPI ``oci``) on a given request: the reference our signer is compared
with, byte for byte, on the same request, key and date."""

from __future__ import annotations


def reference_sign(method: str, url: str, headers: dict, body: bytes | str | None,
                   key_pem: str, key_id: str, generic_headers=None) -> dict:
    """The headers oci's signer (oci.signer.AbstractBaseSigner, the code behind oci.Signer and
    every oci auth signer) sends for this request: the given headers (a given `date` is kept)
    plus the ones it adds (date, host, content-type, content-length, x-content-sha256) and
    authorization. generic_headers: what it signs besides the body headers (default
    ["date", "(request-target)", "host"]; the federation request signs ["date",
    "(request-target)"])."""
    from oci._vendor import requests
    from oci.signer import AbstractBaseSigner, load_private_key

    class _Signer(AbstractBaseSigner):
        def __init__(self):
            self.create_signers(key_id, load_private_key(key_pem, None),
                                list(generic_headers or ["date", "(request-target)", "host"]),
                                ["content-length", "content-type", "x-content-sha256"])

    req = requests.Request(method.upper(), url, headers=dict(headers or {}),
                           data=body if body else None).prepare()
    _Signer()(req)
    return dict(req.headers)
