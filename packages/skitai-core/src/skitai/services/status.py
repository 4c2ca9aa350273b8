"""``was.status()``: a snapshot of the server (SK-70), as JSON or as the HTML page of ``statuspage.py``."""
from __future__ import annotations

import json
import os
import platform
import time
from typing import Any

from .server import pool_counters

SECTIONS = ("SERVER", "THREADS", "MOUNTS", "CLUSTERS", "RCACHE", "CACHEFS", "OBJECTS")


def _safe(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:  # a status page must render even if one source fails
        return {"error": repr(exc)}


def _server(wasc: Any) -> dict[str, Any]:
    from .. import __version__

    now = time.time()
    server = {"version": __version__, "pid": os.getpid(), "python": platform.python_version(),
              "workers": getattr(wasc.config, "workers", 1),
              "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wasc.started)),
              "uptime_seconds": round(now - wasc.started, 1)}
    if wasc.server_stats is not None:
        server.update(_safe(wasc.server_stats))
    else:
        server["requests"] = sum(wasc.mount_hits.values())
    return server


def _objects(wasc: Any) -> dict[str, Any]:
    """Registered objects (``wasc.register``) that can tell their own status."""
    out = {}
    for name, obj in sorted(wasc.objects.items()):
        status = getattr(obj, "status", None)
        out[name] = _safe(status) if callable(status) else type(obj).__name__
    return out


def collect(wasc: Any, flt: str | None = None) -> dict[str, Any]:
    """A snapshot of the server; ``flt`` keeps one section (``"CLUSTER:name"`` keeps one cluster)."""
    data = {
        "SERVER": _server(wasc),
        "THREADS": _safe(pool_counters, wasc.numthreads),
        "MOUNTS": dict(sorted(wasc.mount_hits.items())),
        "CLUSTERS": {name: _safe(c.status) for name, c in sorted(wasc.clusters.items())},
        "RCACHE": _safe(wasc.rcache.stats),
        "OBJECTS": _objects(wasc),
    }
    if wasc.httpcache is not None:
        data["CACHEFS"] = _safe(wasc.httpcache.stats)
    if not flt:
        return data
    key = flt.upper()
    if key.startswith("CLUSTER:"):
        name = flt.split(":", 1)[1].lstrip("@")
        return {"CLUSTERS": {name: data["CLUSTERS"][name]}} if name in data["CLUSTERS"] else {}
    return {key: data[key]} if key in data else {}


def wants_json(accept: str) -> bool:
    """True when the client asked for JSON before HTML (a plain browser asks for HTML first)."""
    accept = accept.lower()
    j, h = accept.find("application/json"), accept.find("text/html")
    return j >= 0 and (h < 0 or j < h)


def to_json(data: dict) -> str:
    return json.dumps(data, indent=1, default=str)
