"""Parse a ``Range: bytes=...`` header against a file size (RFC 9110 section 14).

One satisfiable range gives a 206 with ``Content-Range``. When several ranges are asked for, they are merged
where they overlap or touch; if one range remains it is served as above, otherwise the whole file is sent with
200 (the RFC lets a server ignore Range; multipart/byteranges is not produced). A header that does not parse,
uses another unit or lists more than ``MAX_RANGES`` ranges is ignored. When no range is satisfiable the
answer is 416 with ``Content-Range: bytes */size``.
"""
from __future__ import annotations

MAX_RANGES = 32
_BEYOND = 1 << 64          # stands for a position written with more digits than any file size needs


def _number(digits: str) -> int:
    """An ASCII digit string as a byte position; a very long one (thousands of digits: ``int()`` refuses
    them, and no file is that big) means "beyond any end"."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) < 20 else _BEYOND


class NotSatisfiable(ValueError):
    """No requested range overlaps the file: answer 416."""


def _spec(text: str, size: int) -> tuple[int, int] | bool | None:
    """One range-spec as half-open ``(start, stop)``; False if unsatisfiable; None if malformed."""
    first, dash, last = text.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not first:                                   # suffix: the last N bytes
        if not last.isdigit() or not last.isascii():
            return None
        n = _number(last)
        return (max(size - n, 0), size) if n and size else False
    if not first.isdigit() or not first.isascii():
        return None
    start = _number(first)
    if last:
        if not last.isdigit() or not last.isascii():
            return None
        end = _number(last)
        if end < start:
            return None
        stop = min(end + 1, size)
    else:
        stop = size
    return (start, stop) if start < size else False


def select(header: str, size: int) -> tuple[int, int] | None:
    """The byte range to send as half-open ``(start, stop)``, or ``None`` to send the whole file.

    Raises ``NotSatisfiable`` when the header is valid but no range overlaps a file of ``size`` bytes.
    """
    unit, eq, rest = header.strip().partition("=")
    if not eq or unit.lower() != "bytes":
        return None
    parts = [p for p in rest.split(",") if p.strip()]
    if not parts or len(parts) > MAX_RANGES:
        return None
    wanted = []
    for part in parts:
        got = _spec(part, size)
        if got is None:
            return None
        if got is not False:
            wanted.append(got)
    if not wanted:
        raise NotSatisfiable(f"bytes */{size}")
    wanted.sort()
    start, stop = wanted[0]
    for s, e in wanted[1:]:
        if s > stop:            # a gap: several ranges remain, send the whole file
            return None
        stop = max(stop, e)
    if start == 0 and stop == size:
        return None
    return start, stop
