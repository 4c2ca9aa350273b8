"""``wasc``: what the whole server process shares with every ``was`` (SK-75).

One ``Wasc`` per worker process: the loop, the config, the clusters, the result cache, the aquests
client whose pools live on the loop, counters for the status page, and the objects apps register
with ``wasc.register(name, obj)`` (reachable as ``was.<name>`` from every app and thread).
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aquests.cluster import Cluster
from aquests.http.client import Client
from aquests.rcache import ResultCache

from .httpcache import ResponseCache


class _Loggers:
    """``wasc.logger.get("app")`` and ``wasc.logger("msg")`` over the stdlib loggers skitai configures."""

    def get(self, name: str = "app") -> logging.Logger:
        return logging.getLogger(f"skitai.{name}")

    def __call__(self, msg: str, category: str = "info", at: str = "app") -> None:
        self.get(at).info("[%s] %s", category, msg)


def server_counters(servers: list[Any], wasc: Wasc) -> dict[str, Any]:
    """Connections and requests of the listeners (``skitai.http.server.Server``) for ``was.status()``."""
    states = [s.state for s in servers if getattr(s, "state", None) is not None]
    return {"listening": ", ".join(str(getattr(s, "port", "?")) for s in servers),
            "connections_open": sum(st.count.open for st in states),     # HTTP/2 and WebSocket too
            "connections_total": sum(st.conn_count for st in states),
            "requests": sum(wasc.mount_hits.values())}


def pool_counters(numthreads: int) -> dict[str, Any]:
    """The WSGI worker pool: its size, busy threads, the requests waiting for a free thread and those turned
    away (``ThreadPool.stats``: 503s past ``max_queued_requests``, requests whose client left while they
    waited, 503s at a stop), how long the oldest job runs and for how long every thread has been stuck
    (``stalled_seconds``, see ``Limits.stall_warning``); and the WS_DEDICATE threads."""
    from ..websocket.designs import DEDICATED

    dedicated = {"ws_dedicated_threads": DEDICATED.used, "ws_dedicated_refused": DEDICATED.refused}
    if numthreads <= 0:
        return {"threads": 0, "mode": "apps run on the event loop thread (threads=0)", **dedicated}
    from ..wsgi import threadpool

    pool = threadpool._pools.get(numthreads)      # never start a pool just to look at it
    if pool is None:
        return {"threads": numthreads, "busy": 0, "queued": 0, **dedicated}
    return {**pool.stats(), **dedicated}


class Wasc:
    """The server-level context. Safe to read from any thread; mutations take ``self.lock``."""

    def __init__(self, config: Any, loop: asyncio.AbstractEventLoop, *, numthreads: int | None = None,
                 stats: Callable[[], dict] | None = None, services: dict[str, Any] | None = None) -> None:
        self.config = config
        self.loop = loop
        self.numthreads = config.threads if numthreads is None else numthreads
        self.started = time.time()
        self.lock = threading.RLock()
        self.logger = _Loggers()
        self.rcache = ResultCache(getattr(config, "rcache_objmax", 100) or 100)
        # shares the loop's connection pools; ``config.extra["was"]`` may hold client options (verify=...)
        self.client = Client(**((getattr(config, "extra", None) or {}).get("was") or {}))
        self.httpcache = ResponseCache.from_config(getattr(config, "cachefs", None), getattr(config, "varpath", None))
        self.clusters: dict[str, Cluster] = {}
        for name, c in (getattr(config, "clusters", None) or {}).items():
            self.add_cluster(name, c.ctype, c.members, role=c.role, source=c.source, ssl=c.ssl)
        self.objects: dict[str, Any] = dict(services or {})   # plugins' was services (was.email)
        self.mount_hits: Counter[str] = Counter()
        self.server_stats = stats        # callable giving the server's counters (``watch`` sets it)
        self.on_shutdown: Callable[[], None] | None = None
        self.on_restart: Callable[[], None] | None = None

    # -- clusters ----------------------------------------------------------------------------------
    def add_cluster(self, name: str, ctype: str, members: Any, **kw: Any) -> Cluster:
        cluster = Cluster(name.lstrip("@"), ctype, members, **kw)
        with self.lock:
            self.clusters[cluster.name] = cluster
        return cluster

    def cluster_of(self, uri: str) -> tuple[Cluster, str]:
        """``"@name/path"`` → (cluster, "/path"); an unknown name is a clear error."""
        name, slash, rest = uri[1:].partition("/")
        cluster = self.clusters.get(name)
        if cluster is None:
            known = ", ".join("@" + n for n in self.clusters) or "none"
            raise ValueError(f"no cluster named @{name} (known: {known}); add it with skitai.alias()")
        return cluster, slash + rest if slash else "/"

    # -- registered objects ------------------------------------------------------------------------
    def register(self, name: str, obj: Any) -> None:
        """Make ``obj`` reachable as ``was.<name>`` from every app and thread."""
        from .was import reserved

        with self.lock:
            if name in self.objects or hasattr(type(self), name) or reserved(name):
                raise AttributeError(f"was.{name} is already registered")
            self.objects[name] = obj

    def unregister(self, name: str) -> Any:
        with self.lock:
            return self.objects.pop(name, None)

    # -- jobs and life-cycle -----------------------------------------------------------------------
    def ajob(self, alias: str, callback: Any = None, timeout: float = 10) -> Any:
        """A fire-and-forget database job on a cluster, usable from ``@app.startup`` (SK-57)."""
        from .was import Was

        cluster, _ = self.cluster_of(alias if alias.startswith("@") else "@" + alias)
        return Was(self).db.lb("@" + cluster.name, callback=callback or (lambda r: None), timeout=timeout)

    def count(self, point: str) -> None:
        self.mount_hits[point] += 1

    def watch(self, servers: list[Any], stop: asyncio.Event | None = None) -> None:
        """Show the listening ``servers``' counters on the status page; ``stop`` ends serving (shutdown)."""
        self.server_stats = lambda: server_counters(servers, self)
        if stop is not None:
            self.on_shutdown = stop.set

    def shutdown(self) -> None:
        """Stop serving gracefully (this worker process only, SK-72): requests in progress finish first."""
        if self.on_shutdown is not None:
            self.loop.call_soon_threadsafe(self.on_shutdown)
        else:
            os.kill(os.getpid(), signal.SIGTERM)

    def restart(self) -> None:
        """Stop gracefully, then run the same command again in this process (``os.execv`` at exit).

        Under prefork (``workers > 1``) only this worker stops and the master starts a fresh one.
        """
        if self.on_restart is not None:
            self.loop.call_soon_threadsafe(self.on_restart)
            return
        if getattr(self.config, "workers", 1) <= 1:
            atexit.register(os.execv, sys.executable, [sys.executable, *sys.argv])
        self.shutdown()
