"""The PEP 3333 environ of one request, plus ``wsgi.errors`` and ``wsgi.file_wrapper``.

``SCRIPT_NAME`` is the mount point and ``PATH_INFO`` the rest of the percent-decoded path, as latin-1 text
of the decoded bytes (PEP 3333's "bytes as str"). Request headers become ``HTTP_*`` keys (repeated fields
comma-joined); a header whose name contains ``_`` is dropped, since it would collide with the ``-`` form of
another header (a classic way to spoof ``X-Forwarded-For``-like headers).
"""
from __future__ import annotations

import io
import logging
import os
from typing import IO, Any
from urllib.parse import unquote_to_bytes

_app_log = logging.getLogger("skitai.app")


class ErrorStream:
    """``wsgi.errors``: lines written by the app go to the ``skitai.app`` logger."""

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = ""

    def write(self, text: str) -> int:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        data = self._partial + text
        lines = data.split("\n")
        self._partial = lines.pop()
        for line in lines:
            if line:
                _app_log.error("%s", line)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._partial:
            _app_log.error("%s", self._partial)
            self._partial = ""


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks; the server sends real files with ``sendfile``."""

    def __init__(self, filelike: IO[bytes], blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def fileno_or_none(self) -> int | None:
        try:
            fd = self.filelike.fileno()
            os.fstat(fd)
            return fd
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return None

    def __iter__(self):
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block


_KEYS: dict[str, str | None] = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


def _environ_key(name: str) -> str | None:
    """``x-forwarded-for`` → ``HTTP_X_FORWARDED_FOR``; None for names with ``_`` (dropped)."""
    key = _KEYS.get(name, "")
    if key == "":
        key = None if "_" in name else "HTTP_" + name.upper().replace("-", "_")
        if len(_KEYS) < 4096:
            _KEYS[name] = key
    return key


def path_info(path: str, script_name: str) -> str:
    """The percent-decoded ``path`` (latin-1 text of its bytes) with ``script_name`` taken off the front."""
    if "%" in path:
        path = unquote_to_bytes(path).decode("latin-1")
    if script_name and (path == script_name or path.startswith(script_name + "/")):
        return path[len(script_name):]
    return path


ERRORS = ErrorStream()


_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2"}


class EnvironBuilder:
    """Builds environs for one mount point. The keys that do not change between requests of one
    connection (addresses, scheme, server name) are prepared once and copied: on a keep-alive connection
    that is most of the environ."""

    __slots__ = ("script_name", "static", "_conn")

    def __init__(self, script_name: str, *, multithread: bool, multiprocess: bool, errors: Any = None) -> None:
        self.script_name = script_name
        self.static = {
            "SCRIPT_NAME": script_name,
            "SERVER_SOFTWARE": "Skitai",
            "wsgi.version": (1, 0),
            "wsgi.input_terminated": True,
            "wsgi.errors": errors if errors is not None else ERRORS,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "skitai.was": None,
        }
        self._conn: tuple = (None, None, None, None, None)

    def _base(self, req) -> dict[str, Any]:
        client, server = req.client, req.server
        base = dict(self.static)
        base["SERVER_PORT"] = str(server[1]) if server else ""
        base["REMOTE_ADDR"] = client[0] if client else ""
        base["REMOTE_PORT"] = str(client[1]) if client else ""
        base["wsgi.url_scheme"] = req.scheme
        base["SERVER_NAME"] = req.host or (server[0] if server else "")
        self._conn = (client, server, req.scheme, req.authority, base)
        return base

    def __call__(self, exchange, wsgi_input: Any = None) -> dict[str, Any]:
        req = exchange.request
        conn = self._conn
        if conn[0] is req.client and conn[1] is req.server and conn[2] == req.scheme and \
                conn[3] == req.authority:
            env = conn[4].copy()
        else:
            env = self._base(req).copy()
        path = req.path
        script_name = self.script_name
        if "%" in path or script_name:
            path = path_info(path, script_name)
        env["REQUEST_METHOD"] = req.method
        env["PATH_INFO"] = path
        env["QUERY_STRING"] = req.query
        env["REQUEST_URI"] = env["RAW_URI"] = req.target
        env["SERVER_PROTOCOL"] = _PROTOCOLS.get(req.version) or "HTTP/" + req.version
        env["wsgi.input"] = req.body if wsgi_input is None else wsgi_input
        env["skitai.exchange"] = exchange
        keys = _KEYS
        for name, value in req.headers:
            key = keys.get(name, "")
            if key == "":
                key = _environ_key(name)
            if key is None:
                continue
            if key in env:
                env[key] = env[key] + ("; " if key == "HTTP_COOKIE" else ", ") + value
            else:
                env[key] = value
        return env


def build_environ(exchange, script_name: str, *, multithread: bool, multiprocess: bool,
                  errors: Any = None, wsgi_input: Any = None) -> dict[str, Any]:
    """The environ for ``exchange``; ``script_name`` is the mount point without its trailing slash."""
    return EnvironBuilder(script_name, multithread=multithread, multiprocess=multiprocess,
                          errors=errors)(exchange, wsgi_input)
