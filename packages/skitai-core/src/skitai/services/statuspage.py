"""The HTML of ``was.status()``: a summary bar, cluster health, per-mount counters, pool and cache."""
from __future__ import annotations

import html
from typing import Any

_CSS = """
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f4f6f9}
header{background:#1f3a5f;color:#fff;padding:14px 28px}header h1{margin:0;font-size:20px}
header small{opacity:.75}main{padding:18px 28px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:18px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:10px 14px;min-width:96px;flex:1}
.card b{display:block;font-size:22px}.card span{color:#5a6473;font-size:12px;text-transform:uppercase}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:12px 18px;margin-bottom:16px}
h2{font-size:15px;margin:0 0 8px}h3{font-size:14px;margin:12px 0 6px}
table{border-collapse:collapse;width:100%}table.members{table-layout:fixed}table.members td:first-child,
table.members th:first-child{width:20%}table.members td:nth-child(2),table.members th:nth-child(2){width:17%}
table.members td:last-child,table.members th:last-child{width:26%}table.narrow{width:auto;min-width:40%}th,td{padding:4px 8px;text-align:left;border-bottom:1px solid #e6e9ef}
th{color:#5a6473;font-weight:600;font-size:12px;white-space:nowrap}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#137333}.dead{color:#b3261e;font-weight:600}.stopped{color:#8a6d00}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;margin-left:6px;background:#e6f4ea}
.badge.bad{background:#fce8e6}
"""


def _e(v: Any) -> str:
    return html.escape(str(v))


def uptime(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + (f"{h}h " if d or h else "") + f"{m}m {s}s"


def _kv(d: dict) -> str:
    if not d:
        return "<p><em>none</em></p>"
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in d.items())
    return f"<table class=narrow>{rows}</table>"


def _member_row(m: dict) -> str:
    if m.get("stopped"):
        state, cls = "stopped", "stopped"
    elif m.get("dead"):
        state, cls = f"dead (retry in {m.get('retry_in', 0)}s)", "dead"
    else:
        state, cls = "alive", "ok"
    nums = "".join(f'<td class="num">{_e(m.get(k, ""))}</td>'
                   for k in ("weight", "inflight", "requests", "failures", "deadtotal"))
    return (f"<tr><td>{_e(m.get('address'))}</td><td class=\"{cls}\">{_e(state)}</td>{nums}"
            f"<td>{_e(m.get('last_error') or '')}</td></tr>")


def _clusters(clusters: dict) -> str:
    if not clusters:
        return "<p><em>no clusters (skitai.alias)</em></p>"
    out = ""
    head = ("<tr><th>member</th><th>state</th><th class=num>weight</th><th class=num>in flight</th>"
            "<th class=num>requests</th><th class=num>failures</th><th class=num>deaths</th>"
            "<th>last error</th></tr>")
    for name, c in clusters.items():
        members = c.get("members") or []
        live = c.get("live", 0)
        bad = " bad" if live < len(members) else ""
        out += (f"<h3>@{_e(name)} <small>{_e(c.get('ctype'))}{' TLS' if c.get('ssl') else ''}</small>"
                f"<span class=\"badge{bad}\">{live}/{len(members)} alive</span></h3>"
                f"<table class=members>{head}{''.join(_member_row(m) for m in members)}</table>")
    return out


def _mounts(mounts: dict) -> str:
    if not mounts:
        return "<p><em>no requests yet</em></p>"
    rows = "".join(f'<tr><td>{_e(p)}</td><td class="num">{_e(n)}</td></tr>' for p, n in mounts.items())
    return f"<table class=narrow><tr><th>mount point</th><th class=num>requests</th></tr>{rows}</table>"


def _cards(data: dict) -> str:
    server, threads, cache = data.get("SERVER", {}), data.get("THREADS", {}), data.get("RCACHE", {})
    cards = [("uptime", uptime(server.get("uptime_seconds", 0))), ("requests", server.get("requests", "-")),
             ("open connections", server.get("connections_open", "-")),
             ("connections", server.get("connections_total", "-")),
             ("threads", threads.get("threads", "-")), ("busy threads", threads.get("busy", "-")),
             ("queued", threads.get("queued", "-")),
             ("cached results", cache.get("current_cached", "-")), ("cache hits", f"{cache.get('ratio', 0)}%")]
    return '<div class="cards">' + "".join(f"<div class=\"card\"><b>{_e(v)}</b><span>{_e(k)}</span></div>"
                                           for k, v in cards) + "</div>"


def render(data: dict, fancy: bool = True) -> str:
    """The page for a ``status.collect`` snapshot (``fancy=False``: no styles, plain tables)."""
    server = data.get("SERVER", {})
    parts = [_cards(data)] if "SERVER" in data else []
    stalled = data.get("THREADS", {}).get("stalled_seconds") or 0
    if stalled:
        parts.insert(0, f"<section class=\"dead\">Every worker thread has been busy with the same request for "
                        f"{_e(stalled)}s: new requests wait or are answered 503 (see the log for where the "
                        f"threads are).</section>")
    sections = (("CLUSTERS", "Clusters", _clusters), ("MOUNTS", "Mounts", _mounts), ("SERVER", "Server", _kv),
                ("THREADS", "Thread pool", _kv), ("RCACHE", "Result cache", _kv), ("CACHEFS", "Response cache (cachefs)", _kv),
                ("OBJECTS", "Registered", _kv))
    for key, title, fn in sections:
        if key in data:
            parts.append(f"<section id=\"{key.lower()}\"><h2>{title}</h2>{fn(data[key])}</section>")
    style = f"<style>{_CSS}</style>" if fancy else ""
    sub = f"pid {_e(server.get('pid', ''))} &middot; started {_e(server.get('started', ''))}" if server else ""
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Skitai status</title>"
            f"{style}</head><body><header><h1>Skitai {_e(server.get('version', ''))} status</h1>"
            f"<small>{sub}</small></header><main>{''.join(parts)}</main></body></html>")
