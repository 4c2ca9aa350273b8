"""Content-Encoding of buffered response bodies: gzip and deflate, bounded on the decoded size.

A few KiB of gzip can inflate to gigabytes; the decoder stops as soon as the decoded bytes pass the
client's ``max_body_size``. Streamed bodies (``stream=True``) are handed out as they came.
"""
from __future__ import annotations

import zlib

from .errors import ProtocolError

ACCEPT = "gzip, deflate"   # what we ask for when the caller did not say (never br: no decoder here)
MAX_CODINGS = 3            # "gzip, gzip, gzip, ..." nested deeper than this is refused
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def codings(header: str) -> list[str] | None:
    """The codings of a Content-Encoding value in the order they were applied; None when one of
    them is not ours to decode (br, zstd, ...): such a body is handed out as it came."""
    out = [c.strip().lower() for c in header.split(",")]
    out = [c for c in out if c and c != "identity"]
    if any(c not in _WBITS for c in out):
        return None
    return out


def decode(content: bytes, header: str, limit: int) -> bytes:
    """``content`` with every coding of ``header`` undone; ProtocolError when it is corrupt or when
    the decoded body would pass ``limit`` bytes."""
    todo = codings(header)
    if not todo or not content:
        return content
    if len(todo) > MAX_CODINGS:
        raise ProtocolError(f"response body with {len(todo)} content codings (at most {MAX_CODINGS})")
    for coding in reversed(todo):
        content = _inflate(content, coding, limit)
    return content


def _inflate(data: bytes, coding: str, limit: int) -> bytes:
    wbits = _WBITS[coding]
    if coding == "deflate" and data[:1] and (data[0] & 0x0F != 8 or int.from_bytes(data[:2], "big") % 31):
        wbits = -zlib.MAX_WBITS  # "deflate" sent without its zlib header (a common server mistake)
    out: list[bytes] = []
    size = 0
    d = zlib.decompressobj(wbits)
    try:
        while True:
            chunk = d.decompress(data, limit + 1 - size)
            size += len(chunk)
            if size > limit:
                raise ProtocolError(f"decoded response body ({coding}) exceeds the {limit}-byte limit "
                                    f"(use stream=True for the raw bytes)")
            out.append(chunk)
            data = d.unconsumed_tail
            if d.eof:
                data = d.unused_data
                if coding != "deflate" and data.strip(b"\0"):
                    d = zlib.decompressobj(wbits)  # another gzip member follows (RFC 1952 2.2)
                    continue
                break
            if not data and not chunk:  # no input left and nothing more came out: cut short
                raise ProtocolError(f"truncated {coding} response body")
    except zlib.error as exc:
        raise ProtocolError(f"corrupt {coding} response body: {exc}") from None
    return b"".join(out)
