"""Forward proxies: absolute-URI requests for http://, a CONNECT tunnel for https:// (AQ-19)."""
from __future__ import annotations

import asyncio
import base64
from urllib.parse import unquote, urlsplit

import httptools

from .errors import ClientError, ConnectionClosed, ProtocolError
from .url import URL


class Proxy:
    """A parsed proxy address; ``auth`` is the ``Proxy-Authorization`` value when it has credentials."""

    __slots__ = ("host", "port", "auth", "key")

    def __init__(self, spec: str) -> None:
        if not isinstance(spec, str) or not spec:
            raise ValueError(f"proxy must be 'host:port' or 'http://[user:pw@]host:port', got {spec!r}")
        parts = urlsplit(spec if "://" in spec else f"http://{spec}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"unsupported proxy {spec!r} (only http:// proxies are supported)")
        self.host = parts.hostname
        self.port = parts.port or 8080
        self.auth = None
        if parts.username is not None:
            raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.auth = "Basic " + base64.b64encode(raw).decode()
        self.key = f"{self.auth or ''}@{self.host}:{self.port}"  # pools never mix credentials


class _TunnelProtocol(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT; hands the transport over once it says 2xx."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        self.status = 0

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.done.set_exception(ProtocolError(f"malformed proxy response: {exc}"))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if not self.done.done():
            self.done.set_result(self.status)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionClosed("proxy closed the connection during CONNECT"))


async def tunnel(proxy: Proxy, target: URL, infos_addr: tuple, ssl_ctx, protocol: asyncio.Protocol):
    """Open a CONNECT tunnel through ``proxy`` and start TLS to ``target`` over it."""
    loop = asyncio.get_running_loop()
    transport, tp = await loop.create_connection(_TunnelProtocol, infos_addr[0], infos_addr[1])
    try:
        lines = [f"CONNECT {target.host}:{target.port} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"]
        if proxy.auth:
            lines.append(f"Proxy-Authorization: {proxy.auth}\r\n")
        transport.write(("".join(lines) + "\r\n").encode("latin-1"))
        status = await tp.done
        if not 200 <= status < 300:
            raise ClientError(f"proxy {proxy.host}:{proxy.port} refused CONNECT to {target.host}:{target.port} "
                              f"with status {status}")
        tls = await loop.start_tls(transport, tp, ssl_ctx, server_hostname=target.host)
    except BaseException:
        transport.close()
        raise
    tls.set_protocol(protocol)
    protocol.connection_made(tls)
    return tls
