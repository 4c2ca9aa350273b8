"""The awaitable API: ``await aquests.aio.get(url)`` and ``async with aquests.Session() as s``.

Both run on the caller's event loop over the same machinery as ``fetchall()``. Module-level
functions share the running loop's connection pools; a Session owns its pools and closes them.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import verbs
from .http import url as urlmod
from .http.client import Client
from .http.pool import IDLE_TIMEOUT, MAX_PER_ORIGIN, PoolManager, close_loop_pools
from .response import Response
from .rpc import grpc as grpcmod
from .rpc import xmlrpc
from .rpc.stub import Stub


class _Verbs:
    """get/post/... and their *form/*json/*xml/*nvp variants over ``self.client``."""

    client: Client

    async def request(self, method: str, url: str, **kw: Any) -> Response:
        return await self.client.request(method, url, **kw)

    async def upload(self, url: str, fields: Mapping[str, Any], **kw: Any) -> Response:
        """multipart/form-data POST; file values are open files or paths (streamed)."""
        return await self.client.request("POST", url, files=fields, **kw)

    def rpc(self, url: str, **kw: Any) -> Stub:
        """XML-RPC stub: ``await stub.method(*args)`` (dotted names allowed)."""
        u = urlmod.parse(url)
        client = self.client
        return Stub(lambda name, args: xmlrpc.call(client, u, name, args, **kw), url)

    def grpc(self, url: str, service: Any = None) -> grpcmod.GrpcStub:
        """gRPC stub: ``await stub.Method(msg)``; ``stub.Method.stream(msg)``; ``await stub.Method.open()``."""
        u = urlmod.parse(url)
        client = self.client
        return grpcmod.GrpcStub(client, u, service,
                                lambda stub, desc, req, kw: grpcmod.invoke(client, u, desc, req, **kw))


def _make_verb(name: str):
    method, variant = verbs.split_name(name)
    if method in ("POST", "PUT", "PATCH"):
        async def call(self, url: str, data: Any = None, **kw: Any) -> Response:
            return await self.client.request(method, url, **verbs.body_kwargs(variant, data), **kw)
        call.__doc__ = f"{method} with a {verbs.VARIANTS[variant]} body."
    else:
        async def call(self, url: str, params: Any = None, **kw: Any) -> Response:
            return await self.client.request(method, url, params=params, **kw)
        call.__doc__ = f"{method}; ``params`` go to the query string."
    call.__name__ = call.__qualname__ = name
    return call


for _name in verbs.ALL_NAMES:
    setattr(_Verbs, _name, _make_verb(_name))


class Session(_Verbs):
    """Connection pools and options for a group of requests on one event loop.

    >>> async with aquests.Session(timeout=5) as s:
    ...     r = await s.get("http://127.0.0.1:8080/")
    """

    def __init__(self, *, max_per_origin: int = MAX_PER_ORIGIN, idle_timeout: float = IDLE_TIMEOUT,
                 **options: Any) -> None:
        self.client = Client(pools=PoolManager(max_per_origin, idle_timeout), **options)

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self.client.close()

    @property
    def cookies(self) -> dict[str, str]:
        return self.client.jar.as_dict() if self.client.jar else {}


class _Default(_Verbs):
    """Module-level functions: one client per options set, pools shared per loop."""

    def __init__(self) -> None:
        self.client = Client()


_default = _Default()
request = _default.request


async def close() -> None:
    """Close the running loop's shared connections (module-level functions use them)."""
    await close_loop_pools()


upload = _default.upload
rpc = _default.rpc
grpc = _default.grpc


get, delete, head, options, trace = (_default.get, _default.delete, _default.head, _default.options,
                                     _default.trace)
post, put, patch = _default.post, _default.put, _default.patch
postjson, putjson, patchjson = _default.postjson, _default.putjson, _default.patchjson
postform, putform, patchform = _default.postform, _default.putform, _default.patchform
postxml, putxml, patchxml = _default.postxml, _default.putxml, _default.patchxml
postnvp, putnvp, patchnvp = _default.postnvp, _default.putnvp, _default.patchnvp


# --- db --- (aquests-db) awaitable DB connectors: ``await aquests.aio.postgresql(server, db, auth).execute(sql)``
from .dbapi.aio import mongodb, pg, postgresql, redis, sqlite3  # noqa: E402, F401
