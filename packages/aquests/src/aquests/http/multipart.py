"""multipart/form-data bodies whose file parts are streamed from disk, not loaded (AQ-04)."""
from __future__ import annotations

import mimetypes
import os
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from .body import CHUNK, Body


def _quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _file_of(value: Any) -> tuple[Any, str, bool] | None:
    """(readable, filename, opened_here) when ``value`` is a file object or an existing path."""
    if hasattr(value, "read"):
        name = os.path.basename(str(getattr(value, "name", "") or "file"))
        return value, name, False
    if isinstance(value, os.PathLike) or (isinstance(value, str) and os.path.isfile(value)):
        return open(value, "rb"), os.path.basename(os.fspath(value)), True
    return None


def encode(fields: Mapping[str, Any]) -> tuple[Body, str]:
    """(body, content-type) for ``fields``; values are str/bytes/numbers, file objects or paths.

    A str value that names an existing file is sent as that file; wrap plain text that could be
    mistaken for a path in ``bytes``.
    """
    if not isinstance(fields, Mapping):
        raise TypeError(f"upload fields must be a dict, got {type(fields).__name__}")
    boundary = uuid.uuid4().hex
    parts: list[tuple[bytes, Any, bool]] = []  # (part head, bytes or file, close it)
    length = 0
    for name, value in fields.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            f = _file_of(v)
            if f is not None:
                fobj, fname, mine = f
                ctype = mimetypes.guess_type(fname)[0] or "application/octet-stream"
                head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"; '
                        f'filename="{_quote(fname)}"\r\nContent-Type: {ctype}\r\n\r\n').encode()
                try:
                    size = os.fstat(fobj.fileno()).st_size - fobj.tell()
                except (OSError, AttributeError, ValueError):
                    data = fobj.read()
                    fobj = data if isinstance(data, bytes) else data.encode()
                    size = len(fobj)
                parts.append((head, fobj, mine))
                length += len(head) + size + 2
            else:
                data = v if isinstance(v, bytes) else str(v).encode()
                head = f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode()
                parts.append((head, data, False))
                length += len(head) + len(data) + 2
    tail = f"--{boundary}--\r\n".encode()
    length += len(tail)

    def gen() -> Iterator[bytes]:
        for head, payload, mine in parts:
            yield head
            if isinstance(payload, bytes):
                yield payload
            else:
                try:
                    while chunk := payload.read(CHUNK):
                        yield chunk
                finally:
                    if mine:
                        payload.close()
            yield b"\r\n"
        yield tail

    return Body(source=gen(), length=length), f"multipart/form-data; boundary={boundary}"
