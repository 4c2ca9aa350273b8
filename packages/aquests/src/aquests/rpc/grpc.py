"""gRPC over HTTP/2: unary and streaming calls with protobuf messages (AQ-07).

Messages are framed as 1 flag byte + 4-byte big-endian length + payload; the call's outcome
comes from the ``grpc-status``/``grpc-message`` trailers (or headers, for trailers-only
answers) and is mapped onto the Response: ``grpc_status``, ``grpc_message`` and, when the
status is not OK, ``error`` (a :class:`GrpcError`) and a reason naming the status.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from functools import lru_cache
from typing import Any, Callable
from urllib.parse import unquote

from .. import codes
from ..http.client import Client
from ..http.exchange_h2 import response_from
from ..http.errors import ClientError, ConnectionClosed, ProtocolError, classify
from ..http.h2 import H2Stream
from ..http.url import URL
from ..response import Headers, Response

try:
    from google.protobuf.message import DecodeError
except ImportError:  # pragma: no cover - the grpc extra is missing; no message can be parsed then
    class DecodeError(Exception):  # type: ignore[no-redef]
        pass

MAX_MESSAGE_SIZE = 4 * 1024 * 1024  # bytes per received message (gRPC's usual default)

STATUS_NAMES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                "UNAUTHENTICATED")


class GrpcError(Exception):
    """A call that ended with a non-OK ``grpc-status``."""

    def __init__(self, status: int, message: str) -> None:
        name = STATUS_NAMES[status] if 0 <= status < len(STATUS_NAMES) else str(status)
        super().__init__(f"gRPC {name} ({status}): {message}" if message else f"gRPC {name} ({status})")
        self.status, self.name, self.message = status, name, message


# -- descriptors ------------------------------------------------------------------------------
def resolve_service(u: URL, service: Any = None):
    """A ServiceDescriptor from a descriptor, a generated ``_pb2`` module, or the URL path."""
    from google.protobuf import descriptor_pool
    from google.protobuf.descriptor import ServiceDescriptor

    if isinstance(service, ServiceDescriptor):
        return service
    named = u.target.split("?", 1)[0].strip("/")
    if service is not None:
        fd = getattr(service, "DESCRIPTOR", service)
        services = getattr(fd, "services_by_name", None)
        if services is None:
            raise TypeError("service must be a ServiceDescriptor or a generated _pb2 module")
        if named:
            for s in services.values():
                if named in (s.full_name, s.name):
                    return s
            raise ValueError(f"no service {named!r} in {fd.name}")
        if len(services) != 1:
            raise ValueError(f"{fd.name} defines {len(services)} services; name one in the URL path "
                             f"or pass service=module.DESCRIPTOR.services_by_name[...]")
        return next(iter(services.values()))
    if not named:
        raise ValueError("grpc(url) needs service= (a descriptor or _pb2 module) or the service's "
                         "full name as the URL path, e.g. http://host:50051/pkg.Service")
    try:
        return descriptor_pool.Default().FindServiceByName(named)
    except KeyError:
        raise ValueError(f"service {named!r} is not registered; import its _pb2 module or pass "
                         f"service=") from None


@lru_cache(maxsize=256)
def message_class(desc) -> type:
    from google.protobuf import message_factory
    return message_factory.GetMessageClass(desc)


def frame(msg: Any, in_cls: type) -> bytes:
    if not isinstance(msg, in_cls):
        raise TypeError(f"expected a {in_cls.DESCRIPTOR.full_name} message, got {type(msg).__name__}")
    data = msg.SerializeToString()
    return b"\x00" + len(data).to_bytes(4, "big") + data


# -- a call -----------------------------------------------------------------------------------
class GrpcCall:
    """An open call: ``await send(msg)``, ``done_writing()``, ``async for reply in call``,
    then ``status``/``message``/``trailers``.

    ``deadline`` (loop time) bounds the whole call, as gRPC deadlines do: a wait past it resets the
    stream and raises ``TimeoutError``. ``raw`` collects the reply bytes only with ``keep_raw=True``
    (whole calls need them for ``content``; a long stream must not grow a buffer without end).
    """

    def __init__(self, st: H2Stream, method, u: URL, max_message_size: int | None = None,
                 deadline: float | None = None, keep_raw: bool = False) -> None:
        self.st = st
        self.method = method
        self.url = u
        self.in_cls = message_class(method.input_type)
        self.out_cls = message_class(method.output_type)
        # read at call time: setting ``aquests.rpc.grpc.MAX_MESSAGE_SIZE`` (the documented knob) takes effect
        self.max_message_size = MAX_MESSAGE_SIZE if max_message_size is None else max_message_size
        self.deadline = deadline
        self.keep_raw = keep_raw
        self.max_raw: int | None = None  # bound of ``raw`` (a whole call: the client's max_body_size)
        self._buf = bytearray()
        self.raw = bytearray()
        self.response: Response | None = None
        self.status: int | None = None
        self.message = ""

    async def send(self, msg: Any) -> None:
        """Send one request message (returns quietly if the server already ended the call)."""
        if self.st.ended:
            return
        data = frame(msg, self.in_cls)
        try:
            async with self._in_time():
                await self.st.send(data)
        except ConnectionClosed:
            if not self.st.ended:
                raise

    @contextlib.asynccontextmanager
    async def _in_time(self) -> AsyncIterator[None]:
        """Bound one wait by the call's deadline; past it the stream is reset."""
        if self.deadline is None:
            yield
            return
        try:
            async with asyncio.timeout_at(self.deadline):
                yield
        except TimeoutError:
            self.cancel()
            raise TimeoutError("no gRPC reply within the call's timeout") from None

    def done_writing(self) -> None:
        if not self.st.ended:
            self.st.end()

    async def headers(self) -> Response:
        """The response head (a Response without data yet)."""
        if self.response is None:
            async with self._in_time():
                head = await self.st.response()
            self.response = response_from(head, self.url, "POST")
            if self.response.status_code != 200:
                raise ProtocolError(f"gRPC server answered HTTP {self.response.status_code}")
            ctype = (self.response.headers.get("content-type") or "").lower()
            if ctype and not ctype.startswith("application/grpc") and "grpc-status" not in self.response.headers:
                self.cancel()  # e.g. an HTML page from a proxy: its bytes are no gRPC frames
                raise ProtocolError(f"not a gRPC answer: content-type {ctype!r}")
        return self.response

    async def read(self) -> Any | None:
        """The next reply message, or None when the server has finished."""
        await self.headers()
        buf = self._buf
        while True:
            if len(buf) >= 5:
                if buf[0] != 0:
                    self.cancel()
                    raise ProtocolError("compressed gRPC messages are not supported" if buf[0] == 1 else
                                        f"bad gRPC message flag {buf[0]:#04x}")
                n = int.from_bytes(buf[1:5], "big")
                if n > self.max_message_size:
                    self.cancel()
                    raise ProtocolError(f"gRPC message of {n} bytes exceeds the {self.max_message_size}-byte limit")
                if len(buf) >= 5 + n:
                    payload = bytes(buf[5:5 + n])
                    del buf[:5 + n]
                    msg = self.out_cls()
                    try:
                        msg.ParseFromString(payload)
                    except DecodeError as exc:
                        self.cancel()
                        raise ProtocolError(f"gRPC reply is not a valid {self.out_cls.DESCRIPTOR.full_name}: "
                                            f"{exc}") from None
                    return msg
            async with self._in_time():
                chunk = await self.st.body.read_chunk()
            if not chunk:
                if buf:
                    raise ProtocolError(f"gRPC stream ended inside a message ({len(buf)} bytes left)")
                self._finish()
                return None
            buf += chunk
            if self.keep_raw:
                self.raw += chunk
                if self.max_raw is not None and len(self.raw) > self.max_raw:
                    self.cancel()
                    raise ProtocolError(f"gRPC replies exceed max_body_size={self.max_raw}")

    def __aiter__(self) -> "GrpcCall":
        return self

    async def __anext__(self) -> Any:
        msg = await self.read()
        if msg is None:
            raise StopAsyncIteration
        return msg

    def _finish(self) -> None:
        src = self.st.trailers or self.st.headers
        d = {k: v for k, v in src}
        if b"grpc-status" not in d:
            raise ProtocolError("gRPC response ended without grpc-status")
        raw = d[b"grpc-status"]
        if not (raw.isdigit() and len(raw) <= 10):  # int() would take " 5", "1_0", "+3" too
            raise ProtocolError(f"bad grpc-status {raw!r}")
        self.status = int(raw)
        self.message = unquote(d.get(b"grpc-message", b"").decode("utf-8", "replace"))
        if self.st.trailers:
            self.response.trailers = Headers(
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.st.trailers])
        if self.status != 0:
            raise GrpcError(self.status, self.message)

    def cancel(self) -> None:
        if not self.st.ended:
            self.st.reset()


def check_request(method, request: Any) -> None:
    """TypeError when ``request`` does not fit the method (a message, or an iterable of them)."""
    if method.client_streaming:
        if isinstance(request, (bytes, str)) or not (
                isinstance(request, AsyncIterable) or hasattr(request, "__iter__")):
            raise TypeError(f"{method.full_name} is client-streaming: pass an iterable of messages")
    else:
        frame(request, message_class(method.input_type))


def call_url(u: URL, method) -> str:
    return f"{u.scheme}://{u.authority}/{method.containing_service.full_name}/{method.name}"


def request_headers(client: Client, u: URL, method, timeout: float, metadata: Any) -> list:
    path = f"/{method.containing_service.full_name}/{method.name}".encode()
    hdrs = [(b":method", b"POST"), (b":scheme", u.scheme.encode()), (b":path", path),
            (b":authority", u.authority.encode()), (b"te", b"trailers"),
            (b"content-type", b"application/grpc"), (b"user-agent", b"aquests/1.0 grpc"),
            (b"grpc-timeout", f"{min(int(timeout * 1000), 99999999)}m".encode())]
    for k, v in (metadata.items() if isinstance(metadata, dict) else (metadata or ())):
        hdrs.append((str(k).lower().encode("latin-1"), str(v).encode("latin-1")))
    return hdrs


async def open_call(client: Client, u: URL, method, *, timeout: float | None = None,
                    metadata: Any = None) -> GrpcCall:
    tmo = timeout or client.timeout
    deadline = asyncio.get_running_loop().time() + tmo
    st = await client.open_stream(u, request_headers(client, u, method, tmo, metadata), timeout=tmo)
    return GrpcCall(st, method, u, deadline=deadline)


async def _send_all(call: GrpcCall, request: Any) -> None:
    if call.method.client_streaming:
        if isinstance(request, AsyncIterable):
            async for m in request:
                await call.send(m)
        else:
            for m in request:
                await call.send(m)
    else:
        await call.send(request)
    call.done_writing()


async def _replies(call: GrpcCall, request: Any) -> AsyncIterator[Any]:
    """Send the request message(s) while yielding the replies; a sender error wins over the read."""
    sender = asyncio.ensure_future(_send_all(call, request))

    def _sender_done(t: asyncio.Future) -> None:
        if not t.cancelled() and t.exception() is not None:
            call.cancel()  # stop waiting for replies to a request we could not send
    sender.add_done_callback(_sender_done)
    try:
        async for m in call:
            yield m
    except Exception:
        if sender.done() and not sender.cancelled() and sender.exception() is not None:
            raise sender.exception() from None
        raise
    finally:
        if not sender.done():
            sender.cancel()
        if call.status is None:
            call.cancel()  # left early (break, error, cancel): free the stream and its slot
        try:
            await sender
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - already reported above
            pass


async def invoke(client: Client, u: URL, method, request: Any, *, timeout: float | None = None,
                 metadata: Any = None) -> Response:
    """Run a whole call; ``data`` is the reply (or the list of replies for server streaming)."""
    check_request(method, request)
    tmo = timeout or client.timeout
    call = None
    try:
        async with asyncio.timeout(tmo):
            call = await open_call(client, u, method, timeout=tmo, metadata=metadata)
            call.keep_raw, call.max_raw = True, client.max_body_size
            replies = [m async for m in _replies(call, request)]
    except GrpcError as exc:
        resp = call.response
        resp.grpc_status, resp.grpc_message = exc.status, exc.message
        resp.error, resp.reason, resp.data = exc, str(exc), None
        resp.content = bytes(call.raw)
        return resp
    except Exception as exc:  # noqa: BLE001 - failures become responses
        if call is not None:
            call.cancel()
        code, reason = classify(exc)
        if isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, (ClientError, OSError)):
            code, reason = codes.REQUEST_FAILED, f"{type(exc).__name__}: {exc}"
        return Response.failed(code, reason, url=call_url(u, method), method="POST", error=exc)
    resp = call.response
    resp.url = call_url(u, method)
    resp.grpc_status, resp.grpc_message = call.status, call.message
    resp.content = bytes(call.raw)
    resp.data = replies if method.server_streaming else (replies[0] if replies else None)
    return resp


# -- stubs ------------------------------------------------------------------------------------
class GrpcMethod:
    """``stub.Method(request)`` runs the call; ``open()`` / ``stream()`` give incremental access."""

    def __init__(self, stub: "GrpcStub", desc) -> None:
        self._stub, self.desc = stub, desc

    def __call__(self, request: Any, **kw: Any) -> Any:
        return self._stub._invoke(self.desc, request, kw)

    async def open(self, *, timeout: float | None = None, metadata: Any = None) -> GrpcCall:
        """An open call for bidirectional use (awaitable API only)."""
        return await open_call(self._stub._client, self._stub._url, self.desc, timeout=timeout,
                               metadata=metadata)

    async def stream(self, request: Any, *, timeout: float | None = None,
                     metadata: Any = None) -> AsyncIterator[Any]:
        """Yield replies as they arrive (raises GrpcError on a non-OK status)."""
        call = await self.open(timeout=timeout, metadata=metadata)
        async with contextlib.aclosing(_replies(call, request)) as replies:  # a break ends the call now
            async for m in replies:
                yield m


class GrpcStub:
    def __init__(self, client: Client | Callable[[], Client], u: URL, service: Any,
                 invoke_fn: Callable[["GrpcStub", Any, Any, dict], Any]) -> None:
        self._client_src = client
        self._url = u
        self._service = resolve_service(u, service)
        self._invoke_fn = invoke_fn

    @property
    def _client(self) -> Client:
        c = self._client_src
        return c if isinstance(c, Client) else c()

    def _invoke(self, desc, request: Any, kw: dict) -> Any:
        return self._invoke_fn(self, desc, request, kw)

    def __getattr__(self, name: str) -> GrpcMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        desc = self._service.methods_by_name.get(name)
        if desc is None:
            raise AttributeError(f"{self._service.full_name} has no method {name!r} "
                                 f"(has: {', '.join(self._service.methods_by_name)})")
        return GrpcMethod(self, desc)

    def __repr__(self) -> str:
        return f"<grpc stub {self._service.full_name} at {self._url.full}>"


__all__ = ["GrpcCall", "GrpcError", "GrpcMethod", "GrpcStub", "invoke", "open_call"]
