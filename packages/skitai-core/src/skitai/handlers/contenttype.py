"""Content types for static files, from the file extension.

The table is Python's built-in one (not the host's ``/etc/mime.types``, so answers do not depend on the
machine) with modern web types on top. Unknown extensions are ``application/octet-stream``; text types
carry ``; charset=utf-8``. Compressed files (``.gz``, ``.br``...) are served as themselves, never with a
``Content-Encoding`` the client did not negotiate.
"""
from __future__ import annotations

import mimetypes
import os

DEFAULT = "application/octet-stream"

_EXTRA = {
    ".js": "text/javascript", ".mjs": "text/javascript", ".cjs": "text/javascript",
    ".json": "application/json", ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml", ".webp": "image/webp", ".avif": "image/avif", ".ico": "image/x-icon",
    ".wasm": "application/wasm",
    ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
    ".md": "text/markdown", ".csv": "text/csv", ".txt": "text/plain", ".xml": "application/xml",
    ".gz": "application/gzip", ".tgz": "application/gzip", ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz", ".zst": "application/zstd", ".br": DEFAULT,
    ".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
    ".opus": "audio/opus", ".flac": "audio/flac",
}
_TEXTUAL = {"application/json", "application/javascript", "application/xml", "application/manifest+json",
            "application/xhtml+xml", "image/svg+xml"}


def _with_charset(ctype: str) -> str:
    if ctype.startswith("text/") or ctype in _TEXTUAL:
        return ctype + "; charset=utf-8"
    return ctype


def _table() -> dict[str, str]:
    table = dict(mimetypes.MimeTypes().types_map[True])     # the built-in map only
    table.update(_EXTRA)
    return {ext: _with_charset(ctype) for ext, ctype in table.items()}


_TABLE = _table()


def content_type(name: str) -> str:
    """The Content-Type value for a file name or path."""
    return _TABLE.get(os.path.splitext(name)[1].lower(), DEFAULT)
