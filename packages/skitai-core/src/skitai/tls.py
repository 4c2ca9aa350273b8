"""TLS for the main listener: the SSL context (ALPN ``h2`` and ``http/1.1``).

The protocol is chosen after the handshake by ``skitai.http.h1`` (ALPN ``h2`` goes to the HTTP/2 factory).

``make_ssl_context(config)`` reads ``config.certfile``/``keyfile``/``passphrase`` (``skitai.enable_ssl``).
The spec's openssl command writes the key and the certificate into ONE PEM file, so ``keyfile`` may be
the same file, ``None``, or a file that does not exist while the certificate file holds the key.
"""
from __future__ import annotations

import os
import ssl
from typing import Any

ALPN = ["h2", "http/1.1"]


class TLSConfigError(ValueError):
    """``enable_ssl()`` names a certificate, key or pass phrase that cannot be used: said in one line."""
# RFC 9113 section 9.2: TLS 1.2+ with an ephemeral key exchange and an AEAD cipher.
_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"


def _holds_key(path: str) -> bool:
    with open(path, "rb") as f:
        return b"PRIVATE KEY-----" in f.read()


def _key_path(certfile: str, keyfile: str | None) -> str | None:
    if keyfile and os.path.exists(keyfile):
        return keyfile
    if _holds_key(certfile):
        return None                     # load_cert_chain takes the key from the certificate file
    raise TLSConfigError(f"enable_ssl: key file {keyfile!r} not found and {certfile!r} holds no private key")


def _no_passphrase() -> str:
    """Called by OpenSSL for an encrypted key when no pass phrase was given: fail, never prompt on the tty."""
    raise TLSConfigError("enable_ssl: the private key is encrypted: give enable_ssl(..., passphrase=...)")


def make_ssl_context(config: Any) -> ssl.SSLContext:
    """A server context with ALPN ``h2`` and ``http/1.1``; a clear ``TLSConfigError`` for a bad file or pass phrase."""
    certfile = config.certfile
    if not certfile or not os.path.exists(certfile):
        raise TLSConfigError(f"enable_ssl: certificate file {certfile!r} not found")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        ctx.load_cert_chain(certfile, _key_path(certfile, config.keyfile), password=config.passphrase or _no_passphrase)
    except ssl.SSLError as e:
        raise TLSConfigError(f"enable_ssl: cannot load {certfile!r} (wrong pass phrase or not a PEM key/cert?): {e}") \
            from None
    ctx.set_alpn_protocols(ALPN)
    return ctx
