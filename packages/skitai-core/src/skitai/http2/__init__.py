"""HTTP/2 for the server: ``H2Protocol`` (h2 glue), ``H2Exchange``, flow control and abuse guards."""
from __future__ import annotations

import base64
import binascii
import struct
from typing import Any

from h2.exceptions import InvalidSettingsValueError
from h2.settings import Settings

from skitai.http.request import EMPTY_BODY

from .protocol import H2Protocol, goaway_all

__all__ = ["H2Protocol", "goaway_all", "hooks", "h2c_upgrade"]


def h2c_upgrade(exchange: Any) -> Any:
    """The ``upgrades["h2c"]`` handler: ``Upgrade: h2c`` with ``HTTP2-Settings`` and no body switches the
    connection to HTTP/2 (RFC 7540 3.2; the request is answered on stream 1). Anything else stays HTTP/1.1."""
    req = exchange.request
    settings = req.headers.get("http2-settings")
    proto = exchange.proto
    if settings is None or req.body is not EMPTY_BODY or req.scheme == "https":
        return proto.dispatch(exchange)
    settings = settings.strip()
    settings += "=" * (-len(settings) % 4)      # base64url without padding (RFC 7540 3.2.1)
    try:
        # validate: the lenient decoder drops characters outside the alphabet, so "!!!" read as no settings
        payload = base64.b64decode(settings, altchars=b"-_", validate=True)
    except (ValueError, binascii.Error):
        payload = b"?"                           # not a whole number of 6-byte entries: broken
    if not _settings_ok(payload):
        return proto.dispatch(exchange)          # a broken HTTP2-Settings: stay on HTTP/1.1
    exchange.upgrade(lambda: H2Protocol(proto.config, proto.dispatch, upgraded=(req, settings),
                                        conn_no=proto.conn_no),
                     headers=[("Connection", "Upgrade"), ("Upgrade", "h2c")])
    return None


def _settings_ok(payload: bytes) -> bool:
    """A SETTINGS payload of whole 6-byte entries, each value one a client may send (RFC 9113 6.5.2):
    checked before the 101, since after it a bad value could only close the new connection."""
    if len(payload) % 6:
        return False
    peer = Settings(client=True)
    try:
        for offset in range(0, len(payload), 6):
            peer.validate_received_setting(*struct.unpack_from(">HL", payload, offset))
    except InvalidSettingsValueError:
        return False
    return True


def hooks(config: Any, dispatch: Any) -> dict:
    """Keyword arguments for ``skitai.http.server.serve`` that turn HTTP/2 on: h2c upgrade, prior
    knowledge and ALPN ``h2`` (``serve(config, dispatch, ssl=ctx, **hooks(config, dispatch))``)."""
    return {"upgrades": {"h2c": h2c_upgrade}, "h2_prior_knowledge": lambda: H2Protocol(config, dispatch)}
