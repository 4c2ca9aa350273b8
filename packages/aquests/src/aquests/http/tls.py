"""TLS contexts: certificate verification is on unless the caller passes ``verify=False``."""
from __future__ import annotations

import ssl
from functools import lru_cache


@lru_cache(maxsize=32)
def context(verify: bool | str = True, alpn: tuple[str, ...] = ("http/1.1",),
            cert: str | tuple[str, str] | None = None) -> ssl.SSLContext:
    """A client context. ``verify`` may be a CA bundle path or an SSLContext; ``cert`` a client cert."""
    if isinstance(verify, ssl.SSLContext):
        verify.set_alpn_protocols(list(alpn))
        return verify
    if verify is False:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        ctx = ssl.create_default_context(cafile=verify)
    else:
        ctx = ssl.create_default_context()
    if cert:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
        ctx.load_cert_chain(certfile, keyfile)
    ctx.set_alpn_protocols(list(alpn))
    return ctx
