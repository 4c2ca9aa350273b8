"""The RFC 6455 opening handshake, answered from already-parsed request headers.

Only what the RFC asks: ``Sec-WebSocket-Key`` and version 13. ``Origin`` is optional (non-browser clients
send none); ``Limits.ws_origins`` turns on an allow-list. No obsolete ``WebSocket-Location`` headers.
Over HTTP/2 (RFC 8441: extended CONNECT, checked by the HTTP/2 layer) there is no key, no ``Connection``
and no accept token: the version, the origin policy and the extensions are all that is left.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from wsproto.extensions import Extension
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token

from .deflate import InterleavedDeflate


class HandshakeError(Exception):
    """The upgrade is refused: answer ``status`` with ``headers`` and close."""

    def __init__(self, status: int, detail: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or []


@dataclass
class Accepted:
    headers: list[tuple[str, str]]                       # for the 101 answer
    extensions: list[Extension] = field(default_factory=list)


def is_upgrade(headers) -> bool:
    """A GET asking ``Upgrade: websocket``."""
    return "websocket" in (headers.get("upgrade") or "").lower()


def _items(headers, name: str) -> list[str]:
    """The comma-separated items of every ``name`` header, stripped, empty ones dropped."""
    return [item.strip() for value in headers.getall(name) for item in value.split(",") if item.strip()]


def offered_subprotocols(headers) -> list[str]:
    """The subprotocols the client offers (``Sec-WebSocket-Protocol``), in its order of preference."""
    return _items(headers, "sec-websocket-protocol")


def accept(headers, limits, over_h2: bool = False) -> Accepted:
    """Check the request headers and build the answer's headers (101 on HTTP/1.1, 200 on an HTTP/2
    stream), or raise ``HandshakeError``."""
    if not over_h2 and "upgrade" not in (headers.get("connection") or "").lower():
        raise HandshakeError(400, "Connection: Upgrade is missing")
    if (headers.get("sec-websocket-version") or "").strip() != "13":
        raise HandshakeError(426, "only WebSocket version 13 is supported", [("Sec-WebSocket-Version", "13")])
    out: list[tuple[str, str]] = []
    if not over_h2:
        key = (headers.get("sec-websocket-key") or "").strip()
        try:
            if len(base64.b64decode(key, validate=True)) != 16:
                raise ValueError
        except (ValueError, binascii.Error):
            raise HandshakeError(400, "Sec-WebSocket-Key is missing or invalid") from None
        out = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Accept", generate_accept_token(key.encode()).decode())]
    origins = limits.ws_origins
    if origins and headers.get("origin") not in origins:
        raise HandshakeError(403, "this Origin is not allowed")
    extensions: list[Extension] = []
    offers = _items(headers, "sec-websocket-extensions")
    if limits.ws_deflate and offers:
        if not all(offer.isascii() for offer in offers):
            raise HandshakeError(400, "Sec-WebSocket-Extensions is not ASCII")
        deflate = InterleavedDeflate()
        agreed = server_extensions_handshake(offers, [deflate])
        if agreed:
            out.append(("Sec-WebSocket-Extensions", agreed.decode()))
            extensions.append(deflate)
    return Accepted(out, extensions)
