"""The per-request ``was`` object: WSGI Application Support (the binding to threads is ``binding.py``)."""
from __future__ import annotations

import logging
import sys
import traceback as _tb
from typing import Any

from aquests import verbs

from . import convert, replies, status, statuspage
from .calls import DbVerb, GrpcVerb, HttpVerb, RpcVerb, UploadVerb, WsVerb
from .server import Wasc

_DB = {"postgresql": "postgresql", "pg": "postgresql", "redis": "redis", "mongodb": "mongodb",
       "sqlite3": "sqlite3", "db": None}
# server-level objects reachable from ``was`` too (SK-75's built-in names that exist here)
_SERVER_NAMES = {n: n for n in ("config", "numthreads", "logger", "register", "unregister", "ajob", "clusters",
                                "rcache", "loop", "lock")} | {"cachefs": "httpcache"}
_VERBS = {"upload": UploadVerb, "rpc": RpcVerb, "grpc": GrpcVerb, "ws": WsVerb}


def reserved(name: str) -> bool:
    """True for names ``was`` itself answers (verbs, DB stubs, methods): not for ``wasc.register``."""
    return name in verbs.ALL_NAMES or name in _VERBS or name in _DB or hasattr(Was, name)


class Was:
    """One request's services (``from skitai import was`` resolves to it on the request's thread)."""

    def __init__(self, wasc: Wasc, env: dict | None = None, request: Any = None) -> None:
        self.wasc = wasc
        self.env = env
        self.request = request
        self._calls = 0

    def _txn_ids(self) -> None:
        """``gtxnid``/``ltxnid`` on first use, not per request: most requests never ask."""
        req = self.__dict__.get("request")
        ids = (req.gtxnid, req.ltxnid) if req is not None else ("GTID-C0-R0", 1000)
        self.__dict__.update(gtxnid=ids[0], ltxnid=ids[1])

    # -- request verbs -----------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name == "gtxnid" or name == "ltxnid":
            self._txn_ids()
            return self.__dict__[name]
        if name in verbs.ALL_NAMES:
            return HttpVerb(self, name)
        if name in _VERBS:
            return _VERBS[name](self)
        if name in _DB:
            return DbVerb(self, _DB[name])
        objects = self.__dict__.get("wasc") and self.wasc.objects
        if objects and name in objects:
            return objects[name]
        if name in _SERVER_NAMES:
            return getattr(self.wasc, _SERVER_NAMES[name])
        raise AttributeError(f"was has no attribute {name!r}")

    # -- transaction ids (SK-23a) ------------------------------------------------------------------
    def txnid(self) -> str:
        return f"{self.gtxnid}/{self.ltxnid}"

    def outgoing_headers(self, headers: Any, use_cache: bool = True) -> dict[str, str]:
        """The caller's headers (dict or list of pairs) plus the transaction ids of the next sub-call."""
        out: dict[str, str] = {}
        if headers:
            items = headers.items() if hasattr(headers, "items") else headers
            for k, v in items:
                out[str(k)] = str(v)
        self._calls += 1
        out["X-Gtxn-Id"] = self.gtxnid
        out["X-Ltxn-Id"] = str(self.ltxnid + self._calls)
        if not use_cache:
            out["Cache-Control"] = "no-cache"
        return out

    # -- utilities (SK-70..SK-76) ------------------------------------------------------------------
    tojson = staticmethod(convert.tojson)
    fromjson = staticmethod(convert.fromjson)
    toxml = staticmethod(convert.toxml)
    fromxml = staticmethod(convert.fromxml)
    togrpc = staticmethod(convert.togrpc)
    fromgrpc = staticmethod(convert.fromgrpc)

    def status(self, flt: str | None = None, fancy: bool = True) -> str:
        """The server's status as an HTML page, or JSON when the request prefers application/json."""
        data = status.collect(self.wasc, flt)
        accept = (self.env or {}).get("HTTP_ACCEPT", "")
        if status.wants_json(accept):
            return status.to_json(data)
        return statuspage.render(data, fancy=fancy)

    def redirect(self, url: str, status: int | str = "302 Found", body: str | bytes | None = None,
                 headers: Any = None, start_response: Any = None) -> Any:
        """A no-cache redirect (SK-76). With ``start_response`` it answers now and returns the WSGI body;
        without, it returns a ``Reply`` that is a WSGI app: ``return was.redirect(url)(environ, start_response)``."""
        reply = replies.redirect(url, status, body, headers)
        return reply.send(start_response) if start_response is not None else reply

    render_ei = staticmethod(replies.render_ei)

    def restart(self) -> None:
        self.wasc.restart()

    def shutdown(self) -> None:
        self.wasc.shutdown()

    def log(self, msg: str, category: str = "info", at: str = "app") -> None:
        logging.getLogger(f"skitai.{at}").info("[%s:%s] %s", category, self.txnid(), msg)

    def traceback(self, id: str = "", at: str = "app") -> str:
        """Log the exception being handled under ``id`` (default: the txnid) so it can be searched."""
        ident = id or self.txnid()
        text = "".join(_tb.format_exception(*sys.exc_info()))
        logging.getLogger(f"skitai.{at}").error("[expt:%s] %s", ident, text.rstrip())
        return ident


class ProcessWas(Was):
    """The ``was`` outside any request (start hooks, background threads): attributes set on it are
    shared with every request, like ``wasc.register`` (but replacing an earlier value is allowed)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if "_calls" not in self.__dict__ or name.startswith("_") or name in self.__dict__:
            object.__setattr__(self, name, value)
            return
        if reserved(name):
            raise AttributeError(f"was.{name} is one of was's own names")
        with self.wasc.lock:
            self.wasc.objects[name] = value
