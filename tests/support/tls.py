"""A server certificate from a test CA (trustme), as the server's SSL context."""
from __future__ import annotations

import ssl
from pathlib import Path

import trustme

from skitai.config import Config
from skitai.tls import make_ssl_context


def server_context(ca: trustme.CA, folder: Path) -> ssl.SSLContext:
    """skitai's own SSL context for 127.0.0.1/localhost, its chain and key written into ``folder``."""
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return make_ssl_context(Config(certfile=str(cert), keyfile=str(key)))
