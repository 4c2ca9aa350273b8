"""Map a raw URL path onto a file under one root, refusing every way out of it.

Rules (the static handler answers 400 for ``BadPath`` and 404 for ``None``):

- The path is percent-decoded exactly once, so ``%252e`` stays the literal name ``%2e`` and never becomes a
  dot segment. The decoded bytes must be valid UTF-8: overlong forms such as ``%c0%ae`` are not, and are
  refused as a bad path.
- NUL, backslashes and other control characters are refused as a bad path, encoded or not.
- ``%2f`` decodes to a plain slash before the path is split, so ``..%2f`` is an ordinary dot segment.
- Empty segments (``//``), dot segments (``.``, ``..``) and hidden names (a segment starting with ``.``,
  except ``.well-known``) are simply not found.
- What remains is joined to the root and resolved with ``realpath``; the result must lie under the root's own
  ``realpath`` (a ``commonpath`` check), so a symlink leading outside the root is not found either.
"""
from __future__ import annotations

import os
from urllib.parse import unquote_to_bytes

VISIBLE_DOTNAMES = frozenset({".well-known"})
_FORBIDDEN = frozenset(chr(c) for c in range(0x20)) | {"\x7f", "\\"}


class BadPath(ValueError):
    """The request path cannot name a file at all (bad encoding, NUL, backslash, control character)."""


def decode(raw: str) -> str:
    """Percent-decode a raw path once into text, or raise ``BadPath``."""
    try:
        data = raw.encode("latin-1")          # the protocol hands the target over as latin-1 text
    except UnicodeEncodeError:
        data = raw.encode("utf-8")            # ... or already as real characters
    try:
        text = unquote_to_bytes(data).decode("utf-8")   # strict: rejects overlong forms and surrogates
    except UnicodeDecodeError:
        raise BadPath("the path is not valid UTF-8") from None
    if not _FORBIDDEN.isdisjoint(text):
        raise BadPath("the path holds a control character or a backslash")
    return text


def split(raw: str) -> tuple[list[str], bool] | None:
    """Split the raw remainder below a mount point into segments and a "wants a directory" flag.

    ``""`` is the mount point itself, ``"/"`` its directory form. ``None`` means nothing can be found there.
    """
    text = decode(raw)
    if not text:
        return [], False
    if text[0] != "/":
        return None
    trailing = text.endswith("/")
    body = text[1:-1] if trailing else text[1:]
    if not body:
        return [], trailing
    segments = body.split("/")
    for seg in segments:
        if not seg or seg == "." or seg == "..":
            return None
        if seg[0] == "." and seg not in VISIBLE_DOTNAMES:
            return None
    return segments, trailing


def contain(root: str, *parts: str) -> str | None:
    """The real path of ``root/parts...`` if it stays inside ``root`` (itself a real path), else ``None``."""
    try:
        real = os.path.realpath(os.path.join(root, *parts))
        if os.path.commonpath((root, real)) != root:
            return None
    except (OSError, ValueError):
        return None
    return real
