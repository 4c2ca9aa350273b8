"""``was.status()``: what a person running the server wants to see (SK-70), as HTML or JSON."""
from __future__ import annotations

import html
import json
import os
import platform
import time
from typing import Any

SECTIONS = ("SERVER", "THREADS", "MOUNTS", "CLUSTERS", "RCACHE")


def collect(wasc: Any, flt: str | None = None) -> dict[str, Any]:
    """A snapshot of the server; ``flt`` keeps one section (``"CLUSTER:name"`` keeps one cluster)."""
    now = time.time()
    server = {"pid": os.getpid(), "python": platform.python_version(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wasc.started)),
              "uptime_seconds": round(now - wasc.started, 1)}
    if wasc.server_stats is not None:
        try:
            server.update(wasc.server_stats())
        except Exception as exc:  # a status page must render even if one source fails
            server["stats_error"] = repr(exc)
    data = {
        "SERVER": server,
        "THREADS": {"threads": wasc.numthreads},
        "MOUNTS": dict(sorted(wasc.mount_hits.items())),
        "CLUSTERS": {name: c.status() for name, c in sorted(wasc.clusters.items())},
        "RCACHE": wasc.rcache.stats(),
    }
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


_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.4em 0;background:#fff}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f0f0f0}.dead{color:#b00;font-weight:bold}
.ok{color:#070}"""


def _cell(v: Any) -> str:
    if isinstance(v, dict):
        return _table(v)
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        return _rows(v)
    return html.escape(str(v))


def _table(d: dict) -> str:
    if not d:
        return "<em>none</em>"
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in d.items())
    return f"<table>{body}</table>"


def _rows(items: list[dict]) -> str:
    cols = list(items[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = ""
    for it in items:
        cls = ' class="dead"' if it.get("dead") or it.get("stopped") else ""
        body += f"<tr{cls}>" + "".join(f"<td>{_cell(it.get(c))}</td>" for c in cols) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def _clusters(clusters: dict) -> str:
    if not clusters:
        return "<em>no clusters</em>"
    out = ""
    for name, c in clusters.items():
        live, total = c.get("live", 0), len(c.get("members", []))
        health = "ok" if live == total else "dead"
        out += (f"<h3>@{html.escape(name)} <small>({html.escape(str(c.get('ctype')))})</small> "
                f"<span class=\"{health}\">{live}/{total} live</span></h3>" + _rows(c.get("members") or [{}]))
    return out


def to_html(data: dict, fancy: bool = True) -> str:
    parts = []
    for section, value in data.items():
        inner = _clusters(value) if section == "CLUSTERS" else _table(value)
        parts.append(f"<h2>{section.title()}</h2>{inner}")
    style = f"<style>{_CSS}</style>" if fancy else ""
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Skitai status</title>"
            f"{style}</head><body><h1>Skitai status</h1>{''.join(parts)}</body></html>")
