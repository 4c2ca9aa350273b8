"""The server's whole configuration as data.

The launch API (``skitai.mount``, ``alias``, ``enable_*``, ``set_*``) only fills one ``Config``;
``skitai.run()`` turns it into a server. Tests build a ``Config`` directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Mount:
    """One mounted target at ``point`` for virtual host ``host`` ("default" catches every host)."""

    point: str                     # normalised: starts with "/", no trailing slash except the root "/"
    target: Any                    # app object, file path, module, (module, file), directory, "@cluster"
    appname: str = "app"
    pref: Any = None
    host: str = "default"          # a name, ".suffix.com", several names space-separated, "default" or "*"
    source: str | None = None      # for an app object: the file it was defined in (the reloader watches it)


@dataclass
class Cluster:
    """A named group of members (``skitai.alias``); ctype is a PROTO_* or DB_* constant."""

    name: str                      # without the leading "@"
    ctype: str
    members: list[str]
    role: str = ""
    source: str = ""
    ssl: bool = False


@dataclass
class Limits:
    """Every protocol limit has a default here and a setter in the launch API."""

    max_request_line: int = 8 * 1024          # bytes of method + target + version
    max_header_size: int = 64 * 1024          # all header lines together
    max_headers: int = 100                    # header count
    max_body_size: int = 64 * 1024 * 1024     # any request body, bytes (413 above)
    keep_alive: float = 30.0                  # idle seconds between requests (SK-16)
    network_timeout: float = 30.0             # idle seconds while a request is read or a response written
    header_timeout: float = 30.0              # seconds the whole request head may take (slowloris: 408)
    tls_handshake_timeout: float = 10.0       # seconds a TLS handshake may take (a silent or stalled client: cut)
    max_pipelined: int = 16                   # requests queued on one connection before reading pauses
    write_buffer_high: int = 256 * 1024       # transport high-water mark for back-pressure
    # Open connections per worker process (HTTP/1.1, HTTP/2, WebSocket, TLS or not; 0: no cap). At the cap
    # the server stops accepting and new clients wait in the listen backlog. 10000 because an idle
    # keep-alive connection costs tens of KB (a TLS one more): the cap keeps a flood of idle connections
    # to a few hundred MB and under common descriptor limits, far above what one loop serves actively.
    max_connections: int = 10000
    # The WSGI worker pool (threads > 0). Requests waiting for a free thread, at most (running ones not
    # counted; 0: no bound): past it a request is answered 503 with Retry-After at once. 1024 keeps one
    # request per connection of a 1000-connection load test queued, and is already ~25 s of waiting for an
    # app taking 100 ms on 4 threads: beyond that clients time out anyway.
    max_queued_requests: int = 1024
    # Every worker thread busy with the same request for this many seconds (a deadlock, an app that never
    # returns): one error in the log naming the requests and where their threads are (0: no watchdog).
    stall_warning: float = 60.0
    # HTTP/2
    h2_max_concurrent_streams: int = 100
    h2_max_header_list_size: int = 64 * 1024
    h2_idle_timeout: float = 120.0
    h2_flood_window: float = 10.0             # seconds over which the flood counters below run
    h2_max_resets: int = 200                  # RST_STREAM from the client per window (rapid reset)
    h2_max_settings: int = 100                # SETTINGS frames per window
    h2_max_pings: int = 100                   # PING frames per window
    # Frames per window that do nothing for a request (DATA on a closed stream, empty DATA, PRIORITY, unknown
    # types, WINDOW_UPDATE past what our DATA earn, ...; docs/http2-tls-websocket.md): CVE-2019-9518 floods
    h2_max_noop_frames: int = 1000
    h2_max_header_frames: int = 32            # HEADERS + CONTINUATION frames of one header block
    # DATA/CONTINUATION frames per window carrying less than 64 bytes each (a 1-byte DATA flood on an open
    # stream), beyond the few of each read and per request; bigger frames earn the allowance back. ~2900
    # 20-byte gRPC messages back to back per window pass; each such frame costs ~20-50 us of the loop (0: off)
    h2_max_small_frames: int = 2000
    h2_header_table_size: int = 4096          # HPACK dynamic table we let the client use
    h2_window_size: int = 256 * 1024          # receive window per stream: request body buffered at most
    h2_websocket: bool = True                 # WebSocket over HTTP/2 streams (RFC 8441 extended CONNECT)
    # WebSocket
    ws_max_message_size: int = 16 * 1024 * 1024
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0             # no PONG this long after a PING: the peer is gone
    ws_deflate: bool = True                   # accept permessage-deflate when the client offers it
    ws_origins: tuple[str, ...] = ()          # allowed Origin values ("https://a.example"); () allows any
    ws_max_queue: int = 64                    # messages waiting for a busy handler before reading pauses
    ws_direct_writes: bool = True             # worker threads write replies to the socket (plain TCP, when idle)
    # WS_DEDICATE connections open at once (one thread each; 0: no cap): past it the handshake is 503
    ws_max_dedicated: int = 256


@dataclass
class Config:
    address: str = "0.0.0.0"
    port: int = 5000
    threads: int = 4                # 0: apps run on the loop thread
    workers: int = 1                # prefork processes sharing the port (SO_REUSEPORT)
    backlog: int = 1024
    logpath: str | None = None      # None: logs go to the console
    varpath: str | None = None
    verbose: bool = False           # -v: echo file logs to the console too
    workdir: str | None = None      # where relative mount paths point and run() chdirs; None: getswd()
    pidfile: str | None = None      # daemon pid file; None: <varpath>/skitai.pid
    stop_timeout: float = 10.0      # seconds a graceful stop waits for workers before killing them
    mounts: list[Mount] = field(default_factory=list)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    max_ages: dict[str, int] = field(default_factory=dict)     # static path prefix -> seconds
    limits: Limits = field(default_factory=Limits)
    # TLS and the forward listener
    certfile: str | None = None
    keyfile: str | None = None
    passphrase: str | None = None
    forward_port: int | None = None     # enable_forward(80, 443): listen here ...
    forward_to: int | None = None       # ... and redirect to this HTTPS port
    forward_ip: str = ""                # address of the forward listener ("": same as address)
    forward_domain: str | None = None   # host name in the redirect (None: the request's Host)
    # features filled by later issues and plugins
    proxy: bool = False
    proxy_unsecure_https: bool = False
    blacklist_dir: str | None = None
    rcache_objmax: int = 100
    cachefs: dict[str, Any] = field(default_factory=dict)
    gateway: dict[str, Any] = field(default_factory=dict)
    smtpda: dict[str, Any] | None = None
    cron: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)   # plugin-owned settings, keyed by plugin name
