"""Small complete answers an app can give without a framework: ``was.redirect`` and ``was.render_ei`` (SK-76).

A plain WSGI app has no response object to set headers on, so ``was.redirect(...)`` returns a ``Reply``
(status line, headers, body) that is itself a WSGI app, and with ``start_response=`` it answers at once:

    return was.redirect("/login", start_response=start_response)
    return was.redirect("/login")(environ, start_response)
"""
from __future__ import annotations

import html
import http
import sys
import traceback
from email.utils import formatdate
from typing import Any

TEXT, HTML, FRAMES = 0, 1, 2


class Reply:
    """A finished answer: ``status`` ("302 Found"), ``headers`` (list of pairs) and ``body`` (bytes)."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def send(self, start_response: Any) -> list[bytes]:
        start_response(self.status, list(self.headers))
        return [self.body]

    def __call__(self, environ: dict, start_response: Any) -> list[bytes]:
        return self.send(start_response)

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


def status_line(status: int | str) -> str:
    """``302`` or ``"302 Object Moved"`` → a status line; only 3xx codes redirect."""
    if isinstance(status, int):
        code, line = status, None
    else:
        head = str(status).strip()
        code = int(head.split(" ", 1)[0]) if head[:3].isdigit() else 0
        line = head
    if not 300 <= code <= 399:
        raise ValueError(f"a redirect needs a 3xx status, not {status!r}")
    if line is None or line == str(code):
        try:
            line = f"{code} {http.HTTPStatus(code).phrase}"
        except ValueError:
            line = f"{code} Redirect"
    return line


def _header_pairs(headers: Any) -> list[tuple[str, str]]:
    if not headers:
        return []
    items = headers.items() if hasattr(headers, "items") else headers
    return [(str(k), str(v)) for k, v in items]


def redirect(url: str, status: int | str = "302 Found", body: str | bytes | None = None,
             headers: Any = None) -> Reply:
    """A redirect to ``url`` that no cache keeps: ``Location``, ``Cache-Control: max-age=0``, ``Expires: now``.

    ``headers`` (pairs or a dict) are added, replacing defaults of the same name; ``body`` replaces the small
    HTML page linking to ``url``.
    """
    if not isinstance(url, str) or not url or any(c in url for c in "\r\n\0"):
        raise ValueError(f"a redirect needs a URL without line breaks: {url!r}")
    line = status_line(status)
    if body is None:
        body = (f"<!DOCTYPE html><html><head><title>{html.escape(line)}</title></head><body>"
                f"<h1>{html.escape(line)}</h1><p>This page has moved to "
                f"<a href=\"{html.escape(url)}\">{html.escape(url)}</a>.</p></body></html>")
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    extra = _header_pairs(headers)
    given = {k.lower() for k, _ in extra}
    defaults = [("Location", url), ("Cache-Control", "max-age=0"), ("Expires", formatdate(usegmt=True)),
                ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data)))]
    return Reply(line, [h for h in defaults if h[0].lower() not in given] + extra, data)


def render_ei(exc_info: tuple | None = None, format: int = TEXT) -> str | list[tuple[str, str, int]]:
    """An exception for people: ``0`` text (the usual traceback), ``1`` an HTML box (escaped), ``2`` the
    frames as ``(file, function, line)``, innermost last. ``exc_info`` defaults to the one being handled."""
    etype, value, tb = exc_info if exc_info is not None else sys.exc_info()
    if etype is None:
        raise ValueError("render_ei() needs an exception: call it in an except block or pass exc_info")
    frames = traceback.extract_tb(tb)
    if format == FRAMES:
        return [(f.filename, f.name, f.lineno or 0) for f in frames]
    if format == TEXT:
        return "".join(traceback.format_exception(etype, value, tb))
    if format != HTML:
        raise ValueError(f"render_ei format is 0 (text), 1 (HTML) or 2 (frames), not {format!r}")
    rows = "".join(f"<tr><td>{html.escape(f.filename)}</td><td>{html.escape(f.name)}</td>"
                   f"<td>{f.lineno}</td></tr>" for f in frames)
    return (f"<div class=\"exception\"><h3>{html.escape(etype.__name__)}</h3>"
            f"<p>{html.escape(str(value))}</p><table><tr><th>file</th><th>function</th><th>line</th></tr>"
            f"{rows}</table></div>")
