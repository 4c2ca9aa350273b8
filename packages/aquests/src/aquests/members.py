"""Cluster member strings and per-member state (inventory SK-03, AQ-22).

HTTP-like members are ``"host[:port][ weight]"``; database members are
``"host[:port]/db/user/password[ weight]"``; SQLite members are file paths. The default port
comes from the cluster type (80, or 443 with SSL; 5432 PostgreSQL, 6379 Redis, 27017 MongoDB).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .dbapi import DB_MONGODB, DB_PGSQL, DB_POSTGRESQL, DB_REDIS, DB_SQLITE3

__all__ = ["DB_MONGODB", "DB_PGSQL", "DB_POSTGRESQL", "DB_REDIS", "DB_SQLITE3", "PROTO_HTTP", "PROTO_HTTPS",
           "PROTO_WS", "PROTO_WSS", "Member", "normalize_ctype", "parse_member", "parse_members"]

PROTO_HTTP = "http"
PROTO_HTTPS = "https"
PROTO_WS = "ws"
PROTO_WSS = "wss"

# ctype -> (URL scheme without SSL, URL scheme with SSL, SSL implied by the ctype)
_NET_TYPES = {
    "http": ("http", "https", False), "https": ("http", "https", True),
    "ws": ("ws", "wss", False), "wss": ("ws", "wss", True),
    "rpc": ("http", "https", False), "rpcs": ("http", "https", True),
    "grpc": ("http", "https", False), "grpcs": ("http", "https", True),
}
_DB_PORTS = {DB_POSTGRESQL: 5432, DB_REDIS: 6379, DB_MONGODB: 27017, DB_SQLITE3: 0}
# spellings accepted for DB types (the seed's own example writes 'postresql')
_DB_NAMES = {"postgresql": DB_POSTGRESQL, "pgsql": DB_POSTGRESQL, "pg": DB_POSTGRESQL,
             "postgres": DB_POSTGRESQL, "postresql": DB_POSTGRESQL, "redis": DB_REDIS,
             "mongodb": DB_MONGODB, "mongo": DB_MONGODB, "sqlite3": DB_SQLITE3, "sqlite": DB_SQLITE3}
_HOSTPORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:/\[\]]+))(?::(?P<port>\d{1,5}))?$")


def normalize_ctype(ctype: str) -> str:
    """The canonical cluster type: ``http``/``https``/``ws``/``wss``/``rpc[s]``/``grpc[s]`` or a ``DB_*``."""
    if not isinstance(ctype, str):
        raise TypeError(f"cluster type must be a str, not {type(ctype).__name__}")
    key = ctype.strip().lower()
    if key in _NET_TYPES:
        return key
    db = _DB_NAMES.get(key.lstrip("*"))
    if db is None:
        known = ", ".join(sorted(_NET_TYPES)) + ", " + ", ".join(sorted(set(_DB_PORTS)))
        raise ValueError(f"unknown cluster type {ctype!r}: use one of {known}")
    return db


def is_db(ctype: str) -> bool:
    return ctype.startswith("*")


def ssl_implied(ctype: str) -> bool:
    return ctype in _NET_TYPES and _NET_TYPES[ctype][2]


@dataclass(eq=False)
class Member:
    """One member of a cluster: where it is, how much load it takes, and how it has been doing."""

    spec: str
    address: str  # "host:port" (IPv6 in brackets), or the file path of a SQLite member
    host: str = ""
    port: int = 0
    weight: int = 1
    ssl: bool = False
    scheme: str = ""
    dbname: str | None = None
    user: str | None = None
    password: str | None = None
    # runtime state, guarded by the owning cluster's lock
    inflight: int = 0
    requests: int = 0
    failures: int = 0
    fails: int = 0          # consecutive failures
    deadtotal: int = 0      # times marked dead
    retry_at: float = 0.0   # monotonic time before which the member is skipped (0: alive)
    stopped: bool = False
    last_error: str = field(default="", repr=False)

    @property
    def path(self) -> str:
        """The database file of a SQLite member."""
        return self.address

    @property
    def auth(self) -> tuple[str | None, str | None] | None:
        """``(user, password)`` of a database member (either may be None), or None for neither."""
        if self.user is None and self.password is None:
            return None
        return (self.user, self.password)

    @property
    def server(self) -> str:
        """``host:port`` as the DB stubs take it (the file path for SQLite)."""
        return self.address

    def url(self, path: str = "/") -> str:
        """Absolute URL of ``path`` on this member (HTTP-like clusters)."""
        if not self.scheme:
            raise ValueError(f"member {self.spec!r} is a database member; it has no URL")
        if not path.startswith("/"):
            path = "/" + path
        return f"{self.scheme}://{self.address}{path}"


def parse_member(spec: str, ctype: str, ssl: bool = False) -> Member:
    """Parse one member string of a cluster of type ``ctype`` (already normalized)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"cluster member must be a non-empty string, not {spec!r}")
    spec = spec.strip()
    if ctype == DB_SQLITE3:
        return Member(spec=spec, address=spec, dbname=spec)
    body, weight = _split_weight(spec)
    if is_db(ctype):
        hostport, _, rest = body.partition("/")
        parts = rest.split("/", 2) if rest else []
        parts += [None] * (3 - len(parts))
        host, port = _host_port(hostport, _DB_PORTS[ctype], spec)
        dbname, user, password = (p or None for p in parts)
        return Member(spec=spec, address=_join(host, port), host=host, port=port, weight=weight,
                      dbname=dbname, user=user, password=password)
    plain, secure, implied = _NET_TYPES[ctype]
    use_ssl = bool(ssl) or implied
    if "/" in body:
        raise ValueError(f"bad member {spec!r}: an HTTP member is 'host[:port][ weight]' with no path")
    host, port = _host_port(body, 443 if use_ssl else 80, spec)
    return Member(spec=spec, address=_join(host, port), host=host, port=port, weight=weight, ssl=use_ssl,
                  scheme=secure if use_ssl else plain)


def _split_weight(spec: str) -> tuple[str, int]:
    head, _, tail = spec.rpartition(" ")
    if not head:
        return spec, 1
    tail = tail.strip()
    if not tail.isdigit() or int(tail) < 1:
        raise ValueError(f"bad member {spec!r}: the weight after the space must be a positive integer")
    return head.strip(), int(tail)


def _host_port(text: str, default_port: int, spec: str) -> tuple[str, int]:
    m = _HOSTPORT.match(text)
    if not m:
        raise ValueError(f"bad member {spec!r}: expected host[:port]")
    port = int(m.group("port")) if m.group("port") else default_port
    if not 0 < port < 65536:
        raise ValueError(f"bad member {spec!r}: port {port} is out of range")
    return m.group("v6") or m.group("host"), port


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_members(members: str | list[str] | tuple[str, ...], ctype: str, ssl: bool = False) -> list[Member]:
    """Parse a member string or list; duplicate addresses are an error."""
    if isinstance(members, str):
        members = [members]
    if not isinstance(members, (list, tuple)):
        raise TypeError(f"members must be a str or a list of str, not {type(members).__name__}")
    parsed = [parse_member(m, ctype, ssl) for m in members]
    seen: set[str] = set()
    for m in parsed:
        if m.address in seen:
            raise ValueError(f"member {m.address} is listed twice")
        seen.add(m.address)
    return parsed
