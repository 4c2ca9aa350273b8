"""Opening a connection to an origin: DNS, TCP, TLS with ALPN, proxies; picks HTTP/1.1 or HTTP/2."""
from __future__ import annotations

import asyncio
import ssl
from typing import Callable

from . import dns
from .h1 import H1Connection
from .h2 import H2Connection
from .proxy import Proxy, tunnel
from .url import URL


async def open_connection(u: URL, *, proxy: Proxy | None, ssl_ctx: ssl.SSLContext | None,
                          h2_prior: bool, make_h1: Callable[[], H1Connection],
                          make_h2: Callable[[], H2Connection]) -> H1Connection | H2Connection:
    """Connect to ``u``'s origin (through ``proxy`` if given); TLS when ``u`` is https."""
    loop = asyncio.get_running_loop()
    host, port = (proxy.host, proxy.port) if proxy else (u.host, u.port)
    infos = await dns.resolve(host, port)
    last: BaseException | None = None
    for family, _type, _proto, _canon, addr in infos:
        try:
            if u.scheme == "https" and proxy is not None:
                proto: asyncio.Protocol = make_h1()
                transport = await tunnel(proxy, u, addr, ssl_ctx, proto)
            else:
                proto = make_h2() if h2_prior and u.scheme == "http" else make_h1()
                kw = {"ssl": ssl_ctx, "server_hostname": u.host} if u.scheme == "https" else {}
                transport, _ = await loop.create_connection(lambda p=proto: p, addr[0], addr[1],
                                                            family=family, **kw)
            break
        except (ConnectionRefusedError, TimeoutError, OSError) as exc:
            if isinstance(exc, ssl.SSLError):
                raise
            last = exc
    else:
        raise last or OSError(f"cannot connect to {host}:{port}")
    if u.scheme == "https":
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None and sslobj.selected_alpn_protocol() == "h2":
            h2proto = make_h2()
            transport.set_protocol(h2proto)
            h2proto.connection_made(transport)
            return h2proto
    return proto  # type: ignore[return-value]
