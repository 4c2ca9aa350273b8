"""Check the arguments DB stubs take: ``"host:port"`` servers (default port per database), auth, SQL."""
from __future__ import annotations

from typing import Any

PG_PORT = 5432
REDIS_PORT = 6379
MONGODB_PORT = 27017


def parse_server(server: str, default_port: int) -> tuple[str, int]:
    """``"db.local:6380"`` → ``("db.local", 6380)``; ``"db.local"`` → default port; ``"[::1]:5432"`` works."""
    if not isinstance(server, str) or not server.strip():
        raise ValueError(f"server must be a 'host:port' string, got {server!r}")
    server = server.strip()
    if server.startswith("["):
        host, sep, rest = server[1:].partition("]")
        if not sep:
            raise ValueError(f"bad IPv6 server address {server!r}")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif server.count(":") == 1:
        host, port_text = server.split(":")
    else:
        host, port_text = server, ""
    if not host:
        raise ValueError(f"server {server!r} has no host")
    if not port_text:
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"server {server!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"server {server!r}: port {port} out of range")
    return host, port


def parse_auth(auth) -> tuple[str | None, str | None]:
    """``None``, ``(user, password)``, ``(user,)`` or a bare password string."""
    if auth is None:
        return None, None
    if isinstance(auth, str):
        return None, auth
    if isinstance(auth, (tuple, list)) and 1 <= len(auth) <= 2:
        user = auth[0]
        password = auth[1] if len(auth) == 2 else None
        return (user or None), (password if password not in ("", None) else None)
    raise ValueError(f"auth must be (user, password), got {type(auth).__name__}")


def check_params(sql: Any, params: Any) -> None:
    """Bad SQL arguments are programming errors: raise at call time, not as a failed response."""
    if not isinstance(sql, str) or not sql.strip():
        raise ValueError(f"sql must be a non-empty string, got {sql!r}")
    if params is not None and not isinstance(params, (tuple, list, dict)):
        raise TypeError(f"params must be a tuple, list or dict, got {type(params).__name__}")
