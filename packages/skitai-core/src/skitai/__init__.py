"""Skitai App Engine: the launch API.

An app file mounts what it serves and runs the server::

    import skitai
    skitai.mount("/", app)
    skitai.run(address="127.0.0.1", port=5000)

Every call only fills ``skitai.launch.config``; ``run()`` builds the server from it (see docs/launch.md).
"""
from .launch import (
    alias,
    cron,
    enable_blacklist,
    enable_cachefs,
    enable_forward,
    enable_gateway,
    enable_proxy,
    enable_smtpda,
    enable_ssl,
    mount,
    pref,
    run,
    set_keep_alive,
    set_max_age,
    set_max_rcache,
    set_network_timeout,
    vmount,
)
from .launch import LIMIT_SETTERS as _LIMIT_SETTERS
from .paths import abspath, getswd, is_devel, joinpath
from .wasproxy import WasProxy as _WasProxy

__version__ = "1.0.0.dev0"
version_info = tuple(int(p) if p.isdigit() else p for p in __version__.replace(".dev", ".dev.").split("."))
NAME = "Skitai/%d.%d" % version_info[:2]

# every Limits field has a setter: set_max_body_size, set_max_headers, set_ws_max_message_size, ...
globals().update(_LIMIT_SETTERS)

was = _WasProxy()

__all__ = [
    "alias", "cron", "enable_blacklist", "enable_cachefs", "enable_forward", "enable_gateway", "enable_proxy",
    "enable_smtpda", "enable_ssl", "mount", "pref", "run", "set_keep_alive", "set_max_age", "set_max_rcache",
    "set_network_timeout", "vmount", "abspath", "getswd", "is_devel", "joinpath", "was", "NAME",
    "__version__", "version_info",
]

# cluster types (skitai.alias)
PROTO_HTTP = "http"
PROTO_HTTPS = "https"
PROTO_WS = "ws"
PROTO_WSS = "wss"
PROTO_GRPC = "grpc"
PROTO_GRPCS = "grpcs"
DB_PGSQL = "*postgresql"
DB_POSTGRESQL = DB_PGSQL
DB_SQLITE3 = "*sqlite3"
DB_REDIS = "*redis"
DB_MONGODB = "*mongodb"

# websocket designs, events, message encodings and opcodes
WS_SIMPLE = WEBSOCKET_SIMPLE = 1
WS_DEDICATE = WEBSOCKET_DEDICATE = 4
WS_GROUPCHAT = WEBSOCKET_GROUPCHAT = 5
WS_THREADSAFE = 6
WS_EVT_INIT = "init"
WS_EVT_OPEN = "open"
WS_EVT_CLOSE = "close"
WS_EVT_NONE = None
WS_MSG_JSON = "json"
WS_MSG_XMLRPC = "xmlrpc"
WS_MSG_GRPC = "grpc"
WS_MSG_DEFAULT = None
WS_OPCODE_CONTINUATION = 0x0
WS_OPCODE_TEXT = 0x1
WS_OPCODE_BINARY = 0x2
WS_OPCODE_CLOSE = 0x8
WS_OPCODE_PING = 0x9
WS_OPCODE_PONG = 0xA

__all__ += sorted(set(_LIMIT_SETTERS) - set(__all__))
__all__ += [n for n in list(globals()) if n[:3] in ("WS_", "DB_") or n.startswith(("PROTO_", "WEBSOCKET_"))]
