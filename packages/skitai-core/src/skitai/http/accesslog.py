"""The request log line (inventory SK-23) written to the stdlib logger ``skitai.request``.

``client_ip:port host method uri HTTP/version status bytes_in bytes_out gtxnid ltxnid "user" token
"user-agent" <handling>ms <delivery>ms`` (absent values are ``-``). Whether the logger would emit anything is
checked by ``refresh()`` (the server's once-a-second tick and ``serve()``), not per request; the tick also
re-creates a log file removed under the server (``logs.reopen_missing``).

Every field a client controls is escaped so that it stays one field of one line: control characters (CR, LF,
ESC, ...) become ``\\xNN``, a space or tab in a bare field (host, target) ``\\x20``/``\\x09``, and ``"`` and
``\\`` inside a quoted field (user, user-agent) ``\\"`` and ``\\\\``. Ordinary text costs one ``str.isprintable()``.
"""
from __future__ import annotations

import logging
import re

from .. import logs

LOGGER = logging.getLogger("skitai.request")
enabled = False


def refresh() -> bool:
    """Re-check whether request lines would go anywhere (level and handlers)."""
    global enabled
    enabled = LOGGER.isEnabledFor(logging.INFO) and LOGGER.hasHandlers()
    logs.reopen_missing()
    return enabled


_BARE = re.compile(f"[{logs.CONTROL} ]")                  # a bare field: no space either
_QUOTED = re.compile(f"[{logs.CONTROL}\"\\\\]")            # a quoted field: no " or \ unescaped


def _bare(value) -> str:
    """A space-delimited field: no space, no control character."""
    if not value:
        return "-"
    value = str(value)
    return value if _BARE.search(value) is None else _BARE.sub(logs.escape_char, value)


def _quoted(value) -> str:
    """A ``"..."`` field: no control character; ``"`` and ``\\`` escaped so the closing quote is ours."""
    if not value:
        return "-"
    value = str(value)
    if not value.isprintable() or '"' in value or "\\" in value:
        value = _QUOTED.sub(logs.escape_char, value)
    return '"' + value + '"'


def format_line(exchange, method: str | None = None) -> str:
    """The SK-23 line for a finished exchange (``method`` overrides, e.g. ``PUSH`` on HTTP/2)."""
    req = exchange.request
    extra = exchange.log_extra_or_none()
    user = token = None
    if extra:
        user, token = extra.get("user"), extra.get("token")
    ip, port = req.client[0], req.client[1] if len(req.client) > 1 else 0
    host = req.headers.get("host") or req.host or "-"
    verb, target, gtxnid, token = method or req.method or "-", req.target or "-", req.gtxnid, token or "-"
    probe = f"{host}{verb}{target}{gtxnid}{token}"
    if not probe.isprintable() or " " in probe:         # rare: escape field by field
        host, verb, target, gtxnid, token = map(_bare, (host, verb, target, gtxnid, token))
    t_resp = exchange.t_respond or exchange.t_done or req.started
    handling = max(0.0, (t_resp - req.started) * 1000) if req.started else 0.0
    delivery = max(0.0, ((exchange.t_done or t_resp) - t_resp) * 1000)
    return (f"{ip}:{port} {host} {verb} {target} HTTP/{req.version} {exchange.status} "
            f"{getattr(req.body, 'received', 0)} {exchange.bytes_out} {gtxnid} {req.ltxnid} "
            f"{_quoted(user)} {token} {_quoted(req.headers.get('user-agent'))} "
            f"{handling:.0f}ms {delivery:.0f}ms")


def log(exchange, method: str | None = None) -> None:
    if enabled:
        try:
            LOGGER.info(format_line(exchange, method))
        except Exception:  # a log line must never break a connection
            logging.getLogger("skitai.server").exception("request log line failed")
