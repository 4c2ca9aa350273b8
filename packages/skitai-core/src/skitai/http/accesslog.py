"""The request log line (inventory SK-23) written to the stdlib logger ``skitai.request``.

``client_ip:port host method uri HTTP/version status bytes_in bytes_out gtxnid ltxnid "user" token
"user-agent" <handling>ms <delivery>ms`` (absent values are ``-``). Whether the logger would emit anything is
checked by ``refresh()`` (the server's once-a-second tick and ``serve()``), not per request.
"""
from __future__ import annotations

import logging

LOGGER = logging.getLogger("skitai.request")
enabled = False


def refresh() -> bool:
    """Re-check whether request lines would go anywhere (level and handlers)."""
    global enabled
    enabled = LOGGER.isEnabledFor(logging.INFO) and LOGGER.hasHandlers()
    return enabled


def _quoted(value) -> str:
    if not value:
        return "-"
    return '"' + str(value).replace('"', '\\"') + '"'


def format_line(exchange, method: str | None = None) -> str:
    """The SK-23 line for a finished exchange (``method`` overrides, e.g. ``PUSH`` on HTTP/2)."""
    req = exchange.request
    extra = exchange.log_extra_or_none()
    user = token = None
    if extra:
        user, token = extra.get("user"), extra.get("token")
    ip, port = req.client[0], req.client[1] if len(req.client) > 1 else 0
    host = req.headers.get("host") or req.host or "-"
    t_resp = exchange.t_respond or exchange.t_done or req.started
    handling = max(0.0, (t_resp - req.started) * 1000) if req.started else 0.0
    delivery = max(0.0, ((exchange.t_done or t_resp) - t_resp) * 1000)
    return (f"{ip}:{port} {host} {method or req.method} {req.target} HTTP/{req.version} {exchange.status} "
            f"{getattr(req.body, 'received', 0)} {exchange.bytes_out} {req.gtxnid} {req.ltxnid} "
            f"{_quoted(user)} {token or '-'} {_quoted(req.headers.get('user-agent'))} "
            f"{handling:.0f}ms {delivery:.0f}ms")


def log(exchange, method: str | None = None) -> None:
    if enabled:
        try:
            LOGGER.info(format_line(exchange, method))
        except Exception:  # a log line must never break a connection
            logging.getLogger("skitai.server").exception("request log line failed")
