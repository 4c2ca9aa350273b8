"""Status reasons, status lines, the small HTML error page and the exceptions the protocols raise."""
from __future__ import annotations

import html
from http import HTTPStatus

REASONS: dict[int, str] = {s.value: s.phrase for s in HTTPStatus}
REASONS.setdefault(418, "I'm a teapot")

_STATUS_LINES: dict[int, bytes] = {
    code: f"HTTP/1.1 {code} {reason}\r\n".encode("latin-1") for code, reason in REASONS.items()
}


def reason_of(status: int) -> str:
    return REASONS.get(status, "Unknown")


def status_line(status: int, reason: str | None = None) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n`` from a cache; a custom reason is checked for CR/LF."""
    if reason is None:
        line = _STATUS_LINES.get(status)
        if line is not None:
            return line
        if not 100 <= status <= 999:
            raise ValueError(f"invalid status code {status!r}")
        reason = "Unknown"
    elif "\r" in reason or "\n" in reason or "\0" in reason:
        raise HeaderError("CR, LF or NUL in the reason phrase")
    return f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")


_PAGE = (
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\n"
    "<body><h1>{code} {reason}</h1>\n{detail}</body></html>\n"
)


def error_page(status: int, detail: str = "", *, pre: bool = False) -> bytes:
    """A small HTML page; ``detail`` is escaped (``pre`` keeps a traceback's layout)."""
    text = html.escape(detail)
    if text:
        text = f"<pre>{text}</pre>\n" if pre else f"<p>{text}</p>\n"
    return _PAGE.format(code=status, reason=html.escape(reason_of(status)), detail=text).encode("utf-8")


class HeaderError(ValueError):
    """A handler tried to send a header that would corrupt the response (CR, LF, NUL, not latin-1)."""


class BodyTooLarge(Exception):
    """The request body is over ``Limits.max_body_size`` (the answer is 413)."""

    status = 413


class BadRequest(Exception):
    """The bytes on the wire are not a valid request; ``status`` is the 4xx/5xx to answer."""

    def __init__(self, status: int = 400, detail: str = "") -> None:
        super().__init__(detail or reason_of(status))
        self.status = status
        self.detail = detail or reason_of(status)


class ClientDisconnected(ConnectionError):
    """The client went away while its request body was read or its answer written."""
