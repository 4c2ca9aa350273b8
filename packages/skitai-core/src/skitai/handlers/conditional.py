"""Validators and conditional requests for static files (RFC 9110 section 13).

The ETag is strong: ``"<size hex>-<mtime_ns hex>"``. A file rewritten in place changes its mtime (nanosecond
resolution), so two different contents never share a tag in practice, and a strong tag is what If-Range needs.
Preconditions are evaluated in the RFC's order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.
"""
from __future__ import annotations

import re
from datetime import timezone
from email.utils import formatdate, parsedate_to_datetime

_TAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')


def make_etag(size: int, mtime_ns: int) -> str:
    return f'"{size:x}-{mtime_ns:x}"'


def http_date(seconds: float) -> str:
    """An IMF-fixdate such as ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(seconds, usegmt=True)


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch, or ``None`` when the value is no HTTP date."""
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None:                       # asctime and "-0000" forms carry no zone: they mean GMT
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


def _tags(value: str) -> list[tuple[bool, str]] | None:
    """``[(weak, opaque-tag)]`` from an entity-tag list, ``None`` when it does not parse."""
    out, pos = [], 0
    value = value.strip()
    while pos < len(value):
        m = _TAG.match(value, pos)
        if m is None:
            return None
        out.append((bool(m.group(1)), m.group(2)))
        pos = m.end()
    return out


def none_match(value: str, etag: str) -> bool:
    """True when If-None-Match matches ``etag`` by weak comparison (the client's copy is current)."""
    if value.strip() == "*":
        return True
    tags = _tags(value)
    return bool(tags) and any(tag == etag for _, tag in tags)


def strong_match(value: str, etag: str) -> bool:
    """True when If-Match lets the request proceed (``*`` or a strong match)."""
    if value.strip() == "*":
        return True
    tags = _tags(value)
    return bool(tags) and any(not weak and tag == etag for weak, tag in tags)


def modified_since(value: str, last_modified: str, mtime: int) -> bool:
    """False when If-Modified-Since says the client's copy is current; an unparsable date counts as modified."""
    if value == last_modified:       # the usual case: the client echoes our Last-Modified back
        return False
    since = parse_http_date(value)
    return since is None or mtime > since


def precondition(headers, etag: str, last_modified: str, mtime: int) -> int:
    """The status a conditional GET/HEAD earns: 412, 304, or 200 to go on."""
    if_match = headers.get("if-match")
    if if_match is not None:
        if not strong_match(if_match, etag):
            return 412
    else:
        ius = headers.get("if-unmodified-since")
        if ius is not None:
            since = parse_http_date(ius)
            if since is not None and mtime > since:
                return 412
    inm = headers.get("if-none-match")
    if inm is not None:
        return 304 if none_match(inm, etag) else 200
    ims = headers.get("if-modified-since")
    if ims is not None and not modified_since(ims, last_modified, mtime):
        return 304
    return 200


def range_applies(if_range: str | None, etag: str, mtime: int) -> bool:
    """If-Range: the Range header counts only when the validator still matches (strong comparison)."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == etag        # a weak tag never matches strongly
    return parse_http_date(value) == mtime
