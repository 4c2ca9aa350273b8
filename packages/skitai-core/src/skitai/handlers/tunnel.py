"""WebSocket upgrades through a cluster mount (inventory SK-41: "WebSocket upgrades (101) are tunnelled").

The upgrade request goes to one member over a fresh connection (the mount point cut off, the forwarding
headers of ``forwarding.request_headers`` plus ``Connection: Upgrade`` and the client's ``Upgrade``). When the
member answers ``101``, the client gets that answer and both connections become one byte pipe: frames are
not parsed here, each side's close ends the other, and back-pressure holds both ways (a side that cannot
keep up pauses reading from the other). Any other answer is passed on as it is and the connection closes.
Members that cannot be reached fail over like any request (an upgrade is a GET). A WebSocket that came
over HTTP/2 (RFC 8441) reaches the member as an HTTP/1.1 upgrade too: its stream is the client's side.
"""
from __future__ import annotations

import asyncio
import base64
import os
import ssl
from typing import Any

import httptools

from aquests import codes
from aquests.cluster import Cluster
from aquests.members import Member

from ..http.errors import ClientDisconnected
from ..websocket.protocol import CONNECTIONS
from . import forwarding

MAX_HEAD = 64 * 1024          # bytes of the member's answer head
MAX_REFUSAL_BODY = 1024 * 1024  # bytes of a non-101 answer passed on
PIPE_CHUNK = 64 * 1024


class BadAnswer(Exception):
    """The member's answer to the upgrade is not HTTP we can pass on."""


class Answer:
    """The member's answer to the upgrade, parsed by httptools."""

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.head_done = False
        self.complete = False
        self.status = 0
        self.rest = b""           # bytes after a 101 head: the member's first frames
        self.framed = False       # Content-Length or chunked: a close before the end is a cut, not an end
        self._size = 0
        self._wire = 0            # bytes of the head as they arrive (httptools holds a long line whole)
        self._parser = httptools.HttpResponseParser(self)

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.complete:
            raise BadAnswer("bytes after the answer")   # not a second answer: dropped with the connection

    def on_header(self, name: bytes, value: bytes) -> None:
        self._size += len(name) + len(value) + 4      # as on the wire: ": " and CRLF
        if self._size > MAX_HEAD:
            raise BadAnswer(f"answer head over {MAX_HEAD} bytes")
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.head_done = True
        self.status = self._parser.get_status_code()
        if not 100 <= self.status <= 599:
            raise BadAnswer(f"invalid status code {self.status}")
        self.framed = any(k.lower() == "content-length" or (k.lower() == "transfer-encoding" and "chunked"
                                                           in v.lower()) for k, v in self.headers)

    def on_body(self, data: bytes) -> None:
        if len(self.body) + len(data) > MAX_REFUSAL_BODY:
            raise BadAnswer(f"answer body over {MAX_REFUSAL_BODY} bytes")
        self.body += data

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200 and self.status != 101:
            # an interim answer (103 Early Hints, 100 Continue) is not the answer to the upgrade: wait for
            # that one (interim heads count towards the head limit together)
            self.headers, self.head_done, self.status, self.framed = [], False, 0, False
            return
        self.complete = True

    def feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as up:
            self.rest = data[up.args[0]:]
            self.complete = True
        except httptools.HttpParserError as e:
            if not self.complete:                # bytes after a whole answer go with the connection
                raise BadAnswer(f"malformed answer: {e}") from e
        if not self.head_done:
            self._wire += len(data)
            if self._wire > MAX_HEAD + 4096:
                raise BadAnswer(f"answer head over {MAX_HEAD} bytes")

    def upgrades_to(self, protocol: str) -> bool:
        """Whether the answer's ``Upgrade`` names ``protocol`` (a 101 must, RFC 9110 15.2.2)."""
        wanted = protocol.strip().lower()
        return any(k.lower() == "upgrade" and wanted in (t.strip().lower() for t in v.split(","))
                   for k, v in self.headers)

    async def read(self, reader: asyncio.StreamReader, head_only: bool) -> None:
        while not (self.complete or (head_only and self.head_done)):
            data = await reader.read(PIPE_CHUNK)
            if not data:
                if self.head_done and not self.framed:
                    return                       # an answer delimited by the close
                raise ConnectionResetError("the member closed before the end of its answer to the upgrade"
                                           if self.head_done else "the member closed before answering the upgrade")
            self.feed(data)


def asked_protocol(req: Any) -> str:
    """The protocol the client asks to switch to (an HTTP/2 extended CONNECT has no ``Upgrade``)."""
    return req.headers.get("upgrade") or "websocket"


def request_head(req: Any, target: str, member_host: str, preserve_host: bool) -> bytes:
    from .proxy import forward_args

    headers = forwarding.request_headers(req.headers.items(), **forward_args(req, member_host, preserve_host))
    headers["connection"] = "Upgrade"
    headers["upgrade"] = asked_protocol(req)
    if "sec-websocket-key" not in headers:
        # a WebSocket over HTTP/2 (RFC 8441) has no key; the member speaks RFC 6455 over HTTP/1.1 and wants
        # one. Frames are the same on both, so the tunnel needs nothing else (our 200 drops its Accept).
        headers["sec-websocket-key"] = base64.b64encode(os.urandom(16)).decode()
    lines = [f"{req.method} {target} HTTP/1.1\r\n"] + [f"{k}: {v}\r\n" for k, v in headers.items()]
    return ("".join(lines) + "\r\n").encode("latin-1")


async def open_member(member: Member, verify: Any, timeout: float):
    context = None
    if member.ssl:
        context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        if verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    async with asyncio.timeout(timeout):
        return await asyncio.open_connection(member.host, member.port, ssl=context,
                                             server_hostname=member.host if context else None)


async def tunnel(proxy: Any, exchange: Any, cluster: Cluster) -> None:
    """Answer an ``Upgrade`` request to ``proxy``'s cluster (see the module doc)."""
    req = exchange.request
    target = forwarding.member_target(proxy.point, req.path, req.query)
    failure: tuple[int, str] | None = None
    all_dead = True
    for member in cluster.candidates():
        was_dead = member.fails > 0
        writer = None
        try:
            reader, writer = await open_member(member, proxy.verify, proxy.timeout)
            writer.write(request_head(req, target, member.address, proxy.preserve_host))
            answer = Answer()
            async with asyncio.timeout(proxy.timeout):
                await answer.read(reader, head_only=True)
                if answer.status == 101 and not answer.upgrades_to(asked_protocol(req)):
                    raise BadAnswer("a 101 without an Upgrade to the protocol asked for")
                if answer.status != 101:
                    await answer.read(reader, head_only=False)
        except asyncio.CancelledError:            # shutdown while connecting: not in flight any more
            if writer is not None:
                writer.close()
            cluster.release(member)
            raise
        except (OSError, TimeoutError, BadAnswer) as e:
            if writer is not None:
                writer.close()
            cluster.release(member)
            code = codes.TIMEOUT if isinstance(e, TimeoutError) else codes.REQUEST_FAILED
            failure = (code, f"{member.address}: {str(e) or type(e).__name__}")
            cluster.report(member, False, failure[1])
            all_dead = all_dead and was_dead
            continue
        cluster.report(member, True)
        if answer.status != 101:
            writer.close()
            cluster.release(member)
            headers = forwarding.response_headers(answer.headers) + [("Connection", "close")]
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            exchange.respond(answer.status, headers, bytes(answer.body))
            return
        await splice(exchange, answer, reader, writer, lambda m=member: cluster.release(m))
        return
    proxy.answer_failure(exchange, cluster, failure, all_dead)


async def splice(exchange: Any, answer: Answer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 done: Any) -> None:
    """Switch the client's connection to a ``Pipe`` to the member and pump the member's bytes to it."""
    named = forwarding.connection_named(v for k, v in answer.headers if k.lower() == "connection") - {"upgrade"}
    headers = [(k, v) for k, v in answer.headers
               if k.lower() not in ("date", "server", "content-length") and k.lower() not in named]
    try:
        pipe = exchange.upgrade(lambda: Pipe(writer), headers)
    except (ClientDisconnected, RuntimeError):
        writer.close()
        done()
        return
    try:
        if answer.rest:
            pipe.send(answer.rest)
        while not pipe.closed:
            data = await reader.read(PIPE_CHUNK)
            if not data:
                break
            pipe.send(data)
            await pipe.drained()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        pipe.close()
        writer.close()
        done()


class Pipe(asyncio.Protocol):
    """The client's side of a tunnel: its bytes go to the member's writer. Listed with the server's open
    WebSockets, so a server shutdown closes it (``close(code, reason)``)."""

    def __init__(self, member: asyncio.StreamWriter) -> None:
        self.member = member
        self.loop = asyncio.get_running_loop()
        self.transport: Any = None
        self.closed = False
        self.pump: asyncio.Task | None = asyncio.current_task()     # the task moving the member's bytes
        self._writable = asyncio.Event()
        self._writable.set()
        self._reading_paused = False
        CONNECTIONS.add(self)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.member.is_closing():
            self.close()
            return
        self.member.write(data)
        if self.member.transport.get_write_buffer_size() > 4 * PIPE_CHUNK and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
            asyncio.ensure_future(self._resume_after_drain())

    async def _resume_after_drain(self) -> None:
        try:
            await self.member.drain()
        except OSError:
            self.close()
            return
        if not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        if self.member.can_write_eof() and not self.member.is_closing():
            self.member.write_eof()
        return True                              # keep our side open for the member's last bytes

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._writable.set()
        self.member.close()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    async def drained(self) -> None:
        await self._writable.wait()

    def close(self, code: int = 0, reason: str = "") -> None:
        """Close both sides (``code``/``reason`` of a server shutdown are not sent: frames are not ours)."""
        if not self.closed:
            self.closed = True
            self._writable.set()
            if self.transport is not None:
                self.transport.close()
            self.member.close()
        pump = self.pump
        if pump is not None and not pump.done() and pump is not asyncio.current_task():
            pump.cancel()
